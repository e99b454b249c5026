//! What the renderers beyond plain files run on: the sandboxed runner of
//! external tools (`run`), throw-away checkouts of one commit (`checkout`)
//! and the in-process Jsonnet evaluator (`jsonnet`).

pub mod checkout;
pub mod jsonnet;
pub mod run;
