//! Plumb's pure rules: the Argo CD model types, the render of a plain
//! directory of files, normalize and diff, the sync plan and its waves,
//! health, and the automated-sync decision.
//!
//! ```text
//!  model (Application, Manifest, ResourceKey, status types)
//!    |
//!  render (files -> manifests) -> diff (dry run vs live) -> plan -> decide
//!                                 health (live objects) -> waves (gate)
//! ```
//!
//! Everything here is a function of its arguments: no I/O, no clock, no
//! kube client, gix, sled or tokio, so it builds and tests in seconds. It is
//! not the engine: reading git, talking to clusters, storing history and
//! running the controller live in `plumb-engine`, which calls into this crate
//! and re-exports its modules under the same names.

pub mod accounts;
pub mod appns;
pub mod appset;
pub mod cascade;
pub mod clusters;
pub mod customizations;
pub mod decide;
pub mod diff;
pub mod dora;
pub mod health;
pub mod helm;
pub mod hooks;
#[cfg(test)]
mod hostile_input;
pub mod ignore;
pub mod kustomize;
pub mod model;
pub mod plan;
pub mod project;
#[cfg(test)]
mod prune_safety;
pub mod rbac;
pub mod render;
pub mod repo_path;
pub mod selector;
pub mod shard;
pub mod summary;
pub mod syncopts;
pub mod template;
pub mod waves;
