//! Plumb's reconciliation engine.
//!
//! ```text
//!  registry (apps) -> source (git) -> render -> live (watches) -> diff -> plan -> sync
//!                                                                                |
//!                       status, history (store) <- controller <------------------+
//! ```
//!
//! `render`, `diff` (after the dry run), `plan` and `health` are pure
//! functions of their inputs; git, Kubernetes, disk and the clock sit at the
//! edges.

pub mod model;
pub mod service;
