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

pub mod cluster;
pub mod controller;
pub mod diff;
pub mod health;
pub mod live;
pub mod model;
pub mod plan;
pub mod registry;
pub mod render;
pub mod repocreds;
pub mod service;
pub mod source;
pub mod store;
pub mod sync;
