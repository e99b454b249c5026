//! What ApplicationSet generators read, behind core's traits: git trees
//! through the repository cache ([`RepoView`]) and the clusters Plumb knows
//! ([`Clusters`], from Argo CD's cluster Secrets); and [`applications`],
//! which generates and renders an ApplicationSet with them (blocking; the
//! controller and `plumb appset generate` both call it). Secret values
//! other than a cluster's name and server are never read.

use plumb_core::appset::render::Owner;
use plumb_core::appset::{ClusterCatalog, ClusterEntry, GitFile, GitView};
use serde_json::Value;

use crate::model::{IN_CLUSTER_NAME, IN_CLUSTER_SERVER};
use crate::repocreds::{SECRET_TYPE_LABEL, secret_field};
use crate::source::{ReadFilter, RepoCache, SourceError, normalize_url};
use plumb_core::appset::Generator;

/// The largest file a git files generator reads.
const MAX_GENERATOR_FILE: u64 = 1 << 20;

/// The Applications an ApplicationSet generates: its generators run over
/// `repos` and `clusters`, each parameter set rendered into an owned
/// Application in `namespace`. Blocking (it may fetch a repository a
/// matrix names through a parameter).
///
/// # Errors
/// The first generator or template error, as a message.
pub fn applications(
    repos: &RepoCache,
    declared: &crate::registry::DeclaredSet,
    clusters: Result<Vec<ClusterEntry>, String>,
    namespace: &str,
) -> Result<Vec<Value>, String> {
    let generated = plumb_core::appset::generate(
        &declared.set.spec,
        &RepoView::new(repos),
        &Clusters(clusters),
    )
    .map_err(|e| e.to_string())?;
    let owner = Owner {
        name: declared.name(),
        namespace,
        uid: if declared.in_cluster {
            declared.set.metadata.uid.as_deref()
        } else {
            None
        },
    };
    plumb_core::appset::render::applications(&declared.set, &generated, &owner)
        .map_err(|e| e.to_string())
}

/// The repositories the git generators read, normalized; templated URLs
/// (inside a matrix) are left to the generator.
pub fn git_urls(generators: &[Generator]) -> Vec<String> {
    let mut out: Vec<String> = git_revisions(generators)
        .into_iter()
        .map(|(url, _)| url)
        .collect();
    out.dedup();
    out
}

/// The (repository, revision) pairs the git generators read, normalized;
/// an empty revision is `HEAD`.
pub fn git_revisions(generators: &[Generator]) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut pending: Vec<&Generator> = generators.iter().collect();
    while let Some(g) = pending.pop() {
        if let Some(git) = &g.git
            && !git.repo_url.contains("{{")
            && let Ok(url) = normalize_url(&git.repo_url)
        {
            let revision = if git.revision.is_empty() {
                "HEAD"
            } else {
                &git.revision
            };
            out.push((url, revision.to_string()));
        }
        for nested in [
            g.matrix.as_ref().map(|m| &m.generators),
            g.merge.as_ref().map(|m| &m.generators),
        ]
        .into_iter()
        .flatten()
        {
            pending.extend(nested);
        }
    }
    out.sort();
    out.dedup();
    out
}

/// Whether any generator lists clusters.
pub fn uses_clusters(generators: &[Generator]) -> bool {
    generators.iter().any(|g| {
        g.clusters.is_some()
            || g.matrix
                .as_ref()
                .is_some_and(|m| uses_clusters(&m.generators))
            || g.merge
                .as_ref()
                .is_some_and(|m| uses_clusters(&m.generators))
    })
}

/// Git as the generators see it: blocking reads of the repository cache.
pub struct RepoView<'a> {
    repos: &'a RepoCache,
}

impl<'a> RepoView<'a> {
    pub fn new(repos: &'a RepoCache) -> RepoView<'a> {
        RepoView { repos }
    }

    /// The commit of `revision`, fetching first a repository no pass has
    /// fetched yet (a matrix may name it through a parameter).
    fn resolve(&self, url: &str, revision: &str) -> Result<String, String> {
        let revision = if revision.is_empty() {
            "HEAD"
        } else {
            revision
        };
        match self.repos.resolve(url, revision) {
            Err(SourceError::NotFetched { .. }) => {
                self.repos.fetch(url).map_err(|e| e.to_string())?;
                self.repos.resolve(url, revision).map_err(|e| e.to_string())
            }
            other => other.map_err(|e| e.to_string()),
        }
    }
}

impl GitView for RepoView<'_> {
    fn directories(&self, repo_url: &str, revision: &str) -> Result<Vec<String>, String> {
        let commit = self.resolve(repo_url, revision)?;
        let mut dirs = self
            .repos
            .directories(repo_url, &commit)
            .map_err(|e| e.to_string())?;
        // Hidden folders and what is under them are not generated from.
        dirs.retain(|d| !d.split('/').any(|segment| segment.starts_with('.')));
        Ok(dirs)
    }

    fn files(
        &self,
        repo_url: &str,
        revision: &str,
        patterns: &[String],
    ) -> Result<Vec<GitFile>, String> {
        let mut set = globset::GlobSetBuilder::new();
        for pattern in patterns {
            let glob = globset::GlobBuilder::new(pattern.trim_start_matches('/'))
                .literal_separator(true)
                .build()
                .map_err(|e| format!("file pattern {pattern:?}: {e}"))?;
            set.add(glob);
        }
        let set = set.build().map_err(|e| e.to_string())?;
        let commit = self.resolve(repo_url, revision)?;
        let select = |path: &str| set.is_match(path);
        let files = self
            .repos
            .read_files(
                repo_url,
                &commit,
                "",
                &ReadFilter {
                    recurse: true,
                    select: &select,
                    max_file_size: MAX_GENERATOR_FILE,
                },
            )
            .map_err(|e| e.to_string())?;
        Ok(files
            .into_iter()
            .map(|f| GitFile {
                path: f.path,
                content: f.data,
            })
            .collect())
    }
}

/// The clusters as listed before the pass, or why they could not be.
pub struct Clusters(pub Result<Vec<ClusterEntry>, String>);

impl ClusterCatalog for Clusters {
    fn clusters(&self) -> Result<Vec<ClusterEntry>, String> {
        self.0.clone()
    }
}

/// The clusters of Argo CD's cluster Secrets (label
/// `argocd.argoproj.io/secret-type: cluster`, keys `name` and `server`),
/// after the in-cluster destination unless a Secret describes it.
pub fn clusters_from_secrets(secrets: &[Value]) -> Vec<ClusterEntry> {
    let mut out: Vec<ClusterEntry> = secrets.iter().filter_map(cluster_of).collect();
    out.sort_by(|a, b| a.name.cmp(&b.name));
    if !out.iter().any(|c| c.server == IN_CLUSTER_SERVER) {
        out.insert(
            0,
            ClusterEntry {
                name: IN_CLUSTER_NAME.into(),
                server: IN_CLUSTER_SERVER.into(),
                secretless: true,
                ..ClusterEntry::default()
            },
        );
    }
    out
}

fn cluster_of(secret: &Value) -> Option<ClusterEntry> {
    let map = |field: &str| -> std::collections::BTreeMap<String, String> {
        secret
            .pointer(&format!("/metadata/{field}"))
            .and_then(Value::as_object)
            .into_iter()
            .flatten()
            .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
            .collect()
    };
    let labels = map("labels");
    if labels.get(SECRET_TYPE_LABEL).map(String::as_str) != Some("cluster") {
        return None;
    }
    let field = |key: &str| secret_field(secret, key);
    let server = field("server")?;
    Some(ClusterEntry {
        name: field("name").unwrap_or_else(|| server.clone()),
        server,
        labels,
        annotations: map("annotations"),
        project: field("project").unwrap_or_default(),
        secretless: false,
    })
}

#[cfg(test)]
mod tests {
    use base64::Engine;
    use serde_json::json;

    use super::*;

    fn secret(name: &str, server: &str, labels: Value) -> Value {
        let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
        json!({"metadata": {"name": format!("s-{name}"), "labels": labels},
               "data": {"name": b64(name), "server": b64(server), "config": b64("{\"bearerToken\": \"secret\"}")}})
    }

    #[test]
    fn cluster_secrets_become_clusters_after_in_cluster() {
        let secrets = [
            secret(
                "prod",
                "https://prod:6443",
                json!({SECRET_TYPE_LABEL: "cluster", "env": "prod"}),
            ),
            secret(
                "repo",
                "https://git",
                json!({SECRET_TYPE_LABEL: "repository"}),
            ),
        ];
        let clusters = clusters_from_secrets(&secrets);
        let names: Vec<&str> = clusters.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["in-cluster", "prod"]);
        assert_eq!(
            clusters[1].labels.get("env").map(String::as_str),
            Some("prod")
        );
        // A Secret for the local cluster replaces the implicit one (and its
        // labels make it selectable).
        let local = [secret(
            "local",
            IN_CLUSTER_SERVER,
            json!({SECRET_TYPE_LABEL: "cluster", "env": "dev"}),
        )];
        let clusters = clusters_from_secrets(&local);
        assert_eq!(clusters.len(), 1);
        assert_eq!(clusters[0].name, "local");
        assert!(!clusters[0].secretless);
        assert!(clusters_from_secrets(&[])[0].secretless);
    }
}
