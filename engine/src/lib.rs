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
pub mod source;
pub mod store;
pub mod diff;
pub mod plan;
pub mod cluster;
pub mod live;
pub mod sync;
pub mod registry;
pub mod controller;
pub mod render;
pub mod health;
