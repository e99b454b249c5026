//! Plumb's reconciliation engine.
//!
//! ```text
//!  registry (apps) -> source (git) -> render -> live (watches) -> diff -> plan -> sync
//!                                                                                |
//!                       status, history (store) <- controller <------------------+
//! ```
//!
//! The types (`model`) and the pure rules (`render`, `diff` after the dry
//! run, `plan`, `health`, the automated-sync `decide`) live in `plumb-core`
//! and are re-exported here under their old paths. This crate is the edges
//! around them: git, Kubernetes, disk and the clock.

pub use plumb_core::{
    accounts as account_rules, appns, appset, cascade, clusters, customizations, decide, diff,
    dora, health, helm, hooks, ignore, kustomize, model, plan, project, rbac, render, repo_path,
    selector, shard, summary, syncopts, template, waves,
};

pub mod accounts;
pub mod cluster;
pub mod controller;
pub mod destinations;
pub mod generators;
pub mod lease;
pub mod live;
pub mod lua;
pub mod metrics;
pub mod registry;
pub mod repocreds;
pub mod service;
pub mod settings;
pub mod source;
pub mod store;
pub mod sync;
pub mod tools;
