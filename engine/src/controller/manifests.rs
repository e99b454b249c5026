//! Steps 1 and 2 of a reconcile: an application's sources fetched and
//! their revisions resolved, then rendered (plain files, Jsonnet, Kustomize
//! or Helm) unless the render of the same inputs is cached: for Kustomize
//! and Helm, a commit that changes no path a render read (a value file of
//! another application, say) renders nothing.
//!
//! One source or several (`spec.sources`): a revision names each source's
//! commit or chart version, joined by commas when there are several (no
//! commit SHA or chart version holds a comma), so rollback pins and
//! history work the same for both.

use super::error::ReconcileError;
use super::*;
use crate::cluster::Capabilities;
use crate::render::SourceKind;
use crate::tools::app::{self, Resolved};

/// The revision of a set of sources, as one string.
pub(super) fn joined(resolved: &[Resolved]) -> String {
    resolved
        .iter()
        .map(|r| r.revision.as_str())
        .collect::<Vec<_>>()
        .join(",")
}

/// `status.sync.revision` and `revisions` (Argo CD's shape) for the
/// joined revision of `spec`'s sources: the revision alone for one source,
/// each source's in `revisions` for `spec.sources`.
pub(super) fn revisions(
    spec: &crate::model::ApplicationSpec,
    joined: &str,
) -> (String, Vec<String>) {
    if spec.is_multi_source() {
        (
            String::new(),
            joined.split(',').map(str::to_string).collect(),
        )
    } else {
        (joined.to_string(), Vec::new())
    }
}

impl Inner {
    /// Fetches the git sources (hard: now; else once per process and by the
    /// pollers) and resolves each source's revision: `target` (a user's
    /// revision or a rollback pin, one per source joined by commas) or the
    /// source's `targetRevision`.
    pub(super) async fn resolve_sources(
        self: &Arc<Self>,
        spec: &crate::model::ApplicationSpec,
        target: Option<&str>,
        hard: bool,
    ) -> Result<Vec<Resolved>, ReconcileError> {
        let sources = spec.all_sources();
        if sources.is_empty() || sources.iter().any(|s| s.repo_url.is_empty()) {
            return Err(ReconcileError::NoSource);
        }
        let targets: Vec<Option<String>> = match target {
            None => vec![None; sources.len()],
            Some(t) if sources.len() == 1 => vec![Some(t.to_string())],
            Some(t) => {
                let parts: Vec<Option<String>> =
                    t.split(',').map(|p| Some(p.to_string())).collect();
                if parts.len() != sources.len() {
                    return Err(ReconcileError::Invalid(format!(
                        "revision {t:?} does not name one revision per source: this application has {} sources, so write them in order, separated by commas",
                        sources.len()
                    )));
                }
                parts
            }
        };
        let mut out = Vec::with_capacity(sources.len());
        for (source, target) in sources.into_iter().zip(targets) {
            let wanted = target
                .or_else(|| source.target_revision.clone())
                .unwrap_or_default();
            if source.chart_name().is_some() {
                let tools = Arc::clone(&self.tools);
                let chart = source.clone();
                let resolved = tokio::task::spawn_blocking(move || {
                    app::resolve_chart_source(&tools, &chart, &wanted)
                })
                .await
                .map_err(|_| ReconcileError::Task("chart pull"))??;
                out.extend(resolved);
                continue;
            }
            let url = normalize_url(&source.repo_url)?;
            if hard {
                self.fetch_now(&url).await?;
            } else {
                self.ensure_fetched(&url).await?;
            }
            let wanted = if wanted.is_empty() {
                "HEAD".to_string()
            } else {
                wanted
            };
            let repos = Arc::clone(&self.repos);
            let u = url.clone();
            let revision = tokio::task::spawn_blocking(move || repos.resolve(&u, &wanted))
                .await
                .map_err(|_| ReconcileError::Task("resolve"))??;
            out.push(Resolved {
                source: source.clone(),
                url,
                revision,
            });
        }
        Ok(out)
    }

    /// The manifests of `resolved`, rendered, or from the application's
    /// render cache when the spec, the tools' versions, (for Helm) the
    /// cluster's capabilities and chart versions are those of the last
    /// render, and either the revisions are too or (Kustomize and Helm
    /// sources only) no repository path the last render read changed
    /// content since.
    #[allow(clippy::too_many_arguments)] // one call site; the cluster is for Helm's capabilities
    pub(super) async fn render_sources(
        self: &Arc<Self>,
        dest: &crate::destinations::Dest,
        name: &str,
        work: &mut AppWork,
        spec: &crate::model::ApplicationSpec,
        spec_hash: u64,
        resolved: &[Resolved],
        hard: bool,
    ) -> Result<Vec<Manifest>, ReconcileError> {
        // Which renderer each source needs (reads folder listings only).
        let repos = Arc::clone(&self.repos);
        let listing = resolved.to_vec();
        let kinds = tokio::task::spawn_blocking(move || {
            listing
                .iter()
                .map(|r| app::source_kind(&repos, r))
                .collect::<Result<Vec<_>, _>>()
        })
        .await
        .map_err(|_| ReconcileError::Task("render"))??;

        let helm = resolved
            .iter()
            .zip(&kinds)
            .any(|(r, k)| r.renders() && *k == SourceKind::Helm);
        let capabilities = if helm {
            dest.cluster
                .capabilities()
                .await
                .map_err(|e| ReconcileError::Discovery(e.to_string()))?
        } else {
            Arc::new(Capabilities::default())
        };
        let key = joined(resolved);
        let mut tool_key = String::new();
        for kind in kinds.iter().filter(|k| **k != SourceKind::Directory) {
            let tools = Arc::clone(&self.tools);
            let kind = *kind;
            let version = tokio::task::spawn_blocking(move || tools.version(kind))
                .await
                .map_err(|_| ReconcileError::Task("render"))?;
            tool_key.push_str(version.as_deref().unwrap_or("missing"));
            tool_key.push('|');
        }
        if helm {
            tool_key.push_str(&format!("{:x}|", hash_of(&*capabilities)));
        }
        for chart in resolved.iter().filter(|r| r.is_chart()) {
            tool_key.push_str(&chart.revision);
            tool_key.push('|');
        }
        // The commits a render's inputs are read at: one per repository
        // (an application whose sources read one repository at two
        // commits keeps no inputs).
        let mut commits: HashMap<String, String> = HashMap::new();
        let mut one_commit_per_url = true;
        for r in resolved.iter().filter(|r| !r.is_chart()) {
            if commits
                .insert(r.url.clone(), r.revision.clone())
                .is_some_and(|c| c != r.revision)
            {
                one_commit_per_url = false;
            }
        }
        if !hard
            && let Some(r) = work.render.as_mut()
            && r.spec_hash == spec_hash
            && r.tool_key == tool_key
        {
            if r.revision == key {
                return Ok(r.manifests());
            }
            if let Some(inputs) = r.inputs.clone()
                && one_commit_per_url
            {
                let repos = Arc::clone(&self.repos);
                let at = commits.clone();
                let unchanged = tokio::task::spawn_blocking(move || {
                    input_ids(&repos, &at, inputs.iter().map(|(i, _)| i))
                        .is_some_and(|now| inputs.iter().map(|(_, id)| id).eq(now.iter()))
                })
                .await
                .map_err(|_| ReconcileError::Task("render"))?;
                if unchanged {
                    // Nothing this render read changed: it holds at `key`.
                    tracing::debug!(app = %name, revision = %key, "render reused: nothing it read changed");
                    r.revision = key;
                    return Ok(r.manifests());
                }
            }
        }

        let repos = Arc::clone(&self.repos);
        let tools = Arc::clone(&self.tools);
        let jobs: Vec<(Resolved, SourceKind)> = resolved.iter().cloned().zip(kinds).collect();
        let app = name.to_string();
        let namespace = spec.destination.namespace.clone().unwrap_or_default();
        let max_file_size = self.options.max_manifest_size;
        let at = commits;
        let metrics = Arc::clone(&self.options.metrics);
        let (manifests, inputs) = tokio::task::spawn_blocking(move || {
            let tool = jobs
                .iter()
                .map(|(_, kind)| kind.name())
                .collect::<Vec<_>>()
                .join("+");
            let began = std::time::Instant::now();
            let rendered = app::render_app(
                &repos,
                &tools,
                &app::AppSources {
                    app: &app,
                    namespace: &namespace,
                    sources: &jobs,
                    capabilities: &capabilities,
                    max_file_size,
                },
            );
            metrics.rendered(&tool, began.elapsed().as_secs_f64());
            let rendered = rendered?;
            // Each input with the object id it has at the rendered commit.
            let inputs = rendered
                .inputs
                .filter(|_| one_commit_per_url)
                .and_then(|inputs| {
                    let ids = input_ids(&repos, &at, inputs.iter())?;
                    Some(inputs.into_iter().zip(ids).collect::<Vec<_>>())
                });
            Ok::<_, ReconcileError>((rendered.manifests, inputs))
        })
        .await
        .map_err(|_| ReconcileError::Task("render"))??;
        tracing::debug!(app = %name, revision = %key, inputs = inputs.as_ref().map(Vec::len), "rendered");
        work.render = Some(RenderCache::new(
            key, spec_hash, tool_key, inputs, &manifests,
        ));
        Ok(manifests)
    }
}

/// The object id of each input at the commit of its repository in `at`.
/// `None` when one cannot be read.
fn input_ids<'a>(
    repos: &RepoCache,
    at: &HashMap<String, String>,
    inputs: impl Iterator<Item = &'a crate::tools::Input>,
) -> Option<Vec<Option<String>>> {
    let mut ids = Vec::new();
    for input in inputs {
        let commit = at.get(&input.url)?;
        let mut id = repos
            .path_ids(&input.url, commit, std::slice::from_ref(&input.path))
            .ok()?;
        ids.push(id.pop().flatten());
    }
    Some(ids)
}
