//! ApplicationSets: Argo CD's `ApplicationSet` (argoproj.io/v1alpha1) with
//! its field names, the generators that turn it into parameter sets, and the
//! pure rules of what a pass may create, update and delete.
//!
//! [`generate`] runs the generators (`list`, `clusters`, `git`, `matrix`,
//! `merge`; any other kind is an error) with Argo CD's rules and parameter
//! names; [`selector`] matches label selectors; [`params`] holds the rules
//! the generators share.
//!
//! Generators read git and the cluster catalog only through the
//! [`GitView`] and [`ClusterCatalog`] traits, so that every rule is tested
//! without a repository or a cluster. Template rendering lives in
//! [`crate::template`]. This module does no I/O and does not apply
//! anything: the engine's `appsets` controller does.

mod clusters;
mod generate;
mod git;
mod list;
pub mod model;
pub mod params;
pub mod plan;
pub mod render;
pub mod rollout;
pub mod selector;
#[cfg(test)]
mod tests;

pub use generate::{GenerateError, Generated, fill_template, generate};
pub use model::*;

/// One parameter set: what one generated Application is rendered from.
/// For fasttemplate the keys are flat (`path.basename`); for goTemplate
/// they nest (`path` -> `basename`).
pub type Params = serde_json::Map<String, serde_json::Value>;

/// One entry of a git tree, as a generator sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GitFile {
    /// Path from the repository root, `/`-separated, no leading `/`.
    pub path: String,
    /// Its content.
    pub content: Vec<u8>,
}

/// Read access to git for the git generator, at one repository and revision.
pub trait GitView {
    /// Every directory of the tree of `repo_url` at `revision` (`HEAD` when
    /// empty), as paths from the root (`apps/web`), without the root. As
    /// Argo CD's repo server does, leave out hidden folders (a name that
    /// starts with `.`) and everything under them. Any order: the
    /// generator sorts.
    ///
    /// # Errors
    /// When the repository cannot be fetched or the revision resolved.
    fn directories(&self, repo_url: &str, revision: &str) -> Result<Vec<String>, String>;

    /// Every file of the tree whose path matches one of `patterns` (globs
    /// as Argo CD's git files generator reads them, `**` included), with
    /// its content.
    ///
    /// # Errors
    /// When the repository cannot be fetched, the revision resolved or a
    /// file read.
    fn files(
        &self,
        repo_url: &str,
        revision: &str,
        patterns: &[String],
    ) -> Result<Vec<GitFile>, String>;
}

/// One cluster a `clusters` generator may select: the in-cluster
/// destination or an Argo CD cluster Secret.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ClusterEntry {
    /// The cluster's name (`in-cluster` for the local one).
    pub name: String,
    /// Its API server URL.
    pub server: String,
    /// The Secret's labels (empty for in-cluster without a Secret).
    pub labels: std::collections::BTreeMap<String, String>,
    /// The Secret's annotations.
    pub annotations: std::collections::BTreeMap<String, String>,
    /// The Secret's `project` (empty when it has none): the project the
    /// cluster is scoped to.
    pub project: String,
    /// True for the local cluster when no Secret describes it. It has no
    /// labels, so (as in Argo CD) a clusters generator with a non-empty
    /// selector never selects it; it gets no `metadata` parameters.
    pub secretless: bool,
}

/// The clusters Plumb knows.
pub trait ClusterCatalog {
    /// Every cluster, in-cluster first.
    ///
    /// # Errors
    /// When the cluster Secrets cannot be listed: a generator must then
    /// fail, never see no clusters.
    fn clusters(&self) -> Result<Vec<ClusterEntry>, String>;
}
