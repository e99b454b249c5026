//! An application's sources rendered, whatever their kind: plain files
//! straight from the object database, Jsonnet, Kustomize and Helm on
//! checkouts. Used by the controller (which caches the result) and by
//! `plumb render` (which prints it, through [`render_offline`]).

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

use super::{Job, RenderFailure, Tools};
use crate::cluster::Capabilities;
use crate::model::{ApplicationSource, ApplicationSpec, Manifest};
use crate::render::{self, RenderError, SourceKind};
use crate::source::{ReadFilter, RepoCache, SourceError, normalize_url};

/// Why an application's sources did not render.
#[derive(Debug, thiserror::Error)]
pub enum AppRenderError {
    /// A folder's files did not render (or several sources clash).
    #[error("path {path}: {source}")]
    Render {
        /// The folder, or `chart <name>`.
        path: String,
        /// What failed.
        #[source]
        source: RenderError,
    },
    /// A folder could not be read at the revision.
    #[error("path {path}: {source}")]
    Read {
        /// The folder.
        path: String,
        /// What failed.
        #[source]
        source: SourceError,
    },
    /// A Kustomize, Helm or Jsonnet source did not render.
    #[error("path {path}: {source}")]
    Tool {
        /// The folder, or `chart <name>`.
        path: String,
        /// What failed.
        #[source]
        source: RenderFailure,
    },
}

impl AppRenderError {
    /// Worth trying again without a change: a folder that could not be read
    /// for a passing reason, a tool that timed out or is missing.
    pub fn is_spurious(&self) -> bool {
        match self {
            AppRenderError::Render { .. } => false,
            AppRenderError::Read { source, .. } => source.is_spurious(),
            AppRenderError::Tool { source, .. } => source.is_spurious(),
        }
    }
}

/// One source with its revision resolved.
#[derive(Clone, Debug)]
pub struct Resolved {
    pub source: ApplicationSource,
    /// The git URL, normalized, or the chart repository as written.
    pub url: String,
    /// A commit SHA, or a chart version.
    pub revision: String,
}

impl Resolved {
    /// Whether it is a chart from a chart repository.
    pub fn is_chart(&self) -> bool {
        self.source.chart_name().is_some()
    }

    /// A source that only lends its files to others (`ref` without a
    /// path or chart) renders nothing itself.
    pub fn renders(&self) -> bool {
        !(self.source.ref_.as_deref().is_some_and(|r| !r.is_empty())
            && self.source.path.as_deref().is_none_or(str::is_empty)
            && !self.is_chart())
    }

    /// The folder (or `chart <name>`), for messages.
    pub fn shown_path(&self) -> String {
        if let Some(chart) = self.source.chart_name() {
            return format!("chart {chart}");
        }
        self.source
            .path
            .clone()
            .filter(|p| !p.is_empty())
            .unwrap_or_else(|| ".".into())
    }
}

/// Which renderer a source needs, from its options and the names of the
/// files in its folder.
///
/// # Errors
///
/// When the options of several renderers are set, or the folder cannot be
/// listed.
pub fn source_kind(repos: &RepoCache, r: &Resolved) -> Result<SourceKind, AppRenderError> {
    let decided =
        render::source_kind(&r.source, |_| false).map_err(|source| AppRenderError::Render {
            path: r.shown_path(),
            source,
        })?;
    let explicit = r.is_chart()
        || r.source.helm.is_some()
        || r.source.kustomize.is_some()
        || r.source.directory.is_some();
    if explicit || !r.renders() {
        return Ok(decided);
    }
    // Only the folder's listing: no file is read.
    let names = Mutex::new(Vec::new());
    let spy = |file: &str| {
        names
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(file.to_string());
        false
    };
    let path = r.source.path.clone().unwrap_or_default();
    repos
        .read_files(
            &r.url,
            &r.revision,
            &path,
            &ReadFilter {
                recurse: false,
                select: &spy,
                max_file_size: 0,
            },
        )
        .map_err(|source| AppRenderError::Read {
            path: r.shown_path(),
            source,
        })?;
    let names = names
        .into_inner()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    render::source_kind(&r.source, |f| names.iter().any(|n| n == f)).map_err(|source| {
        AppRenderError::Render {
            path: r.shown_path(),
            source,
        }
    })
}

/// A plain directory: its YAML and JSON files read straight from the
/// object database, its Jsonnet files (when it has any) evaluated on a
/// checkout.
fn render_directory(
    repos: &RepoCache,
    tools: &Tools,
    r: &Resolved,
    max_file_size: u64,
) -> Result<Vec<Manifest>, AppRenderError> {
    let shown = r.shown_path();
    let directory = r.source.directory.clone().unwrap_or_default();
    let render_error = |source| AppRenderError::Render {
        path: shown.clone(),
        source,
    };
    let wanted = render::FileFilter::new(&directory).map_err(render_error)?;
    let jsonnet_files = std::sync::atomic::AtomicUsize::new(0);
    let select = |file: &str| {
        if wanted.selects_jsonnet(file) {
            jsonnet_files.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        wanted.selects(file)
    };
    let path = r.source.path.clone().unwrap_or_default();
    let filter = ReadFilter {
        recurse: directory.recurse,
        select: &select,
        max_file_size,
    };
    let files = repos
        .read_files(&r.url, &r.revision, &path, &filter)
        .map_err(|source| AppRenderError::Read {
            path: shown.clone(),
            source,
        })?;
    let mut manifests = render::render_directory(&files, &directory).map_err(render_error)?;
    if jsonnet_files.into_inner() == 0 {
        return Ok(manifests);
    }
    let failed = |source: RenderFailure| AppRenderError::Tool {
        path: shown.clone(),
        source,
    };
    let checkout = tools.checkout(repos, &r.url, &r.revision).map_err(failed)?;
    let app_path = crate::repo_path::normalize(&path)
        .map_err(|e| failed(RenderFailure::Input(format!("spec.source.path {e}"))))?;
    let evaluated = super::jsonnet::evaluate(
        checkout.path(),
        &app_path,
        &directory,
        &tools.jsonnet_limits(),
    )
    .map_err(|e| failed(e.into()))?;
    for output in evaluated {
        let mut objects =
            render::render_value(&output.origin, output.object).map_err(render_error)?;
        manifests.append(&mut objects);
    }
    render::check_duplicates(&manifests).map_err(render_error)?;
    Ok(manifests)
}

/// What [`render_all`] renders for one application.
#[derive(Clone, Copy, Debug)]
pub struct AppSources<'a> {
    /// The application's name (Helm's default release name).
    pub app: &'a str,
    /// The destination namespace.
    pub namespace: &'a str,
    /// Each source, resolved, with the renderer it needs.
    pub sources: &'a [(Resolved, SourceKind)],
    /// The destination cluster's version and API versions (Helm).
    pub capabilities: &'a Capabilities,
    /// The largest manifest file read, in bytes.
    pub max_file_size: u64,
}

/// Renders every source of an application that renders (not the sources
/// that only lend value files), in order. Blocks.
///
/// # Errors
///
/// The first source that fails, or two sources defining the same object.
pub fn render_all(
    repos: &RepoCache,
    tools: &Tools,
    a: &AppSources<'_>,
) -> Result<Vec<Manifest>, AppRenderError> {
    render_app(repos, tools, a).map(|r| r.manifests)
}

/// An application's render, and the repository paths it read.
#[derive(Clone, Debug)]
pub struct RenderedApp {
    /// The manifests of every source, in order.
    pub manifests: Vec<Manifest>,
    /// When every source that renders is a Kustomize or Helm source: the
    /// repository paths they read, so that a later commit that changes
    /// none of them needs no new render. `None` otherwise (a directory is
    /// read straight from the object database at each commit).
    pub inputs: Option<Vec<super::Input>>,
}

/// [`render_all`], also returning what the render read.
///
/// # Errors
///
/// As [`render_all`].
pub fn render_app(
    repos: &RepoCache,
    tools: &Tools,
    a: &AppSources<'_>,
) -> Result<RenderedApp, AppRenderError> {
    let refs: HashMap<String, (String, String)> = a
        .sources
        .iter()
        .filter(|(r, _)| !r.is_chart())
        .filter_map(|(r, _)| {
            let name = r.source.ref_.clone().filter(|n| !n.is_empty())?;
            Some((name, (r.url.clone(), r.revision.clone())))
        })
        .collect();
    let mut all = Vec::new();
    let mut inputs = Some(Vec::new());
    for (r, kind) in a.sources.iter().filter(|(r, _)| r.renders()) {
        let mut manifests = match kind {
            SourceKind::Directory => {
                inputs = None;
                render_directory(repos, tools, r, a.max_file_size)?
            }
            _ => {
                let rendered = tools
                    .render(
                        repos,
                        *kind,
                        &Job {
                            app: a.app,
                            source: &r.source,
                            url: &r.url,
                            revision: &r.revision,
                            namespace: a.namespace,
                            refs: &refs,
                            capabilities: a.capabilities,
                        },
                    )
                    .map_err(|source| AppRenderError::Tool {
                        path: r.shown_path(),
                        source,
                    })?;
                if let Some(inputs) = inputs.as_mut() {
                    inputs.extend(rendered.inputs);
                }
                rendered.manifests
            }
        };
        all.append(&mut manifests);
    }
    if a.sources.len() > 1 {
        render::check_duplicates(&all).map_err(|source| AppRenderError::Render {
            path: "spec.sources".into(),
            source,
        })?;
    }
    if let Some(inputs) = inputs.as_mut() {
        inputs.sort();
        inputs.dedup();
    }
    Ok(RenderedApp {
        manifests: all,
        inputs,
    })
}

/// Why [`resolve_offline`] or [`render_offline`] failed.
#[derive(Debug, thiserror::Error)]
pub enum OfflineError {
    /// The application names no source, or a source without a `repoURL`.
    #[error(
        "the application has no source: spec.source.repoURL (or a repoURL for each of spec.sources) is required"
    )]
    NoSource,
    /// A repository URL is invalid, a fetch failed or a revision is not in
    /// the repository.
    #[error(transparent)]
    Source(#[from] SourceError),
    /// A chart version could not be resolved, or a source did not render.
    #[error(transparent)]
    Render(#[from] AppRenderError),
}

/// Fetches the git sources of `spec` (each repository once) and resolves
/// each source's `targetRevision` as the controller does: a commit SHA of
/// a git source (`HEAD` when unset), the exact chart version of a chart
/// source (the newest when unset), pulling the chart. Blocks.
///
/// The controller does the same with its own fetch scheduling and time
/// limits (`controller::manifests`); this is the one-shot form for the
/// command line.
///
/// # Errors
///
/// [`OfflineError::NoSource`] without a source; the first fetch,
/// resolution or chart pull that fails.
pub fn resolve_offline(
    repos: &RepoCache,
    tools: &Tools,
    spec: &ApplicationSpec,
) -> Result<Vec<Resolved>, OfflineError> {
    let sources = spec.all_sources();
    if sources.is_empty() || sources.iter().any(|s| s.repo_url.is_empty()) {
        return Err(OfflineError::NoSource);
    }
    let mut fetched = HashSet::new();
    let mut out = Vec::with_capacity(sources.len());
    for source in sources {
        let wanted = source.target_revision.clone().unwrap_or_default();
        if let Some(resolved) = resolve_chart_source(tools, source, &wanted)? {
            out.push(resolved);
            continue;
        }
        let url = normalize_url(&source.repo_url)?;
        if fetched.insert(url.clone()) {
            repos.fetch(&url)?;
        }
        let wanted = if wanted.is_empty() { "HEAD" } else { &wanted };
        let revision = repos.resolve(&url, wanted)?;
        out.push(Resolved {
            source: source.clone(),
            url,
            revision,
        });
    }
    Ok(out)
}

/// A chart source (`spec.source.chart`) with `version` (a user's or its
/// `targetRevision`) resolved to an exact chart version, pulled into the
/// chart cache; `None` for a git source. Blocks.
///
/// # Errors
///
/// [`AppRenderError::Tool`] when the chart cannot be pulled.
pub fn resolve_chart_source(
    tools: &Tools,
    source: &ApplicationSource,
    version: &str,
) -> Result<Option<Resolved>, AppRenderError> {
    let Some(chart) = source.chart_name() else {
        return Ok(None);
    };
    let url = source.repo_url.trim_end_matches('/').to_string();
    let revision = tools
        .resolve_chart(&url, chart, version)
        .map_err(|failure| AppRenderError::Tool {
            path: format!("chart {chart}"),
            source: failure,
        })?;
    Ok(Some(Resolved {
        source: source.clone(),
        url,
        revision,
    }))
}

/// What [`render_offline`] renders.
#[derive(Clone, Copy, Debug)]
pub struct OfflineApp<'a> {
    /// The application's name (Helm's default release name).
    pub app: &'a str,
    /// Its sources (`spec.source` or `spec.sources`) and destination
    /// namespace.
    pub spec: &'a ApplicationSpec,
    /// What Helm templates see of a cluster; the default is Helm's own.
    pub capabilities: &'a Capabilities,
    /// The largest manifest file read, in bytes.
    pub max_file_size: u64,
}

/// An application rendered without a cluster or a controller: its sources
/// resolved ([`resolve_offline`]), each source's renderer chosen
/// ([`source_kind`]) and every source rendered ([`render_all`]), as a
/// reconcile does. Blocks.
///
/// # Errors
///
/// As [`resolve_offline`] and [`render_all`].
pub fn render_offline(
    repos: &RepoCache,
    tools: &Tools,
    a: &OfflineApp<'_>,
) -> Result<Vec<Manifest>, OfflineError> {
    let resolved = resolve_offline(repos, tools, a.spec)?;
    let mut sources = Vec::with_capacity(resolved.len());
    for r in resolved {
        let kind = source_kind(repos, &r)?;
        sources.push((r, kind));
    }
    let namespace = a.spec.destination.namespace.clone().unwrap_or_default();
    Ok(render_all(
        repos,
        tools,
        &AppSources {
            app: a.app,
            namespace: &namespace,
            sources: &sources,
            capabilities: a.capabilities,
            max_file_size: a.max_file_size,
        },
    )?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tools(root: &std::path::Path) -> Tools {
        Tools::new(super::super::ToolOptions {
            root: root.join("tools"),
            ..Default::default()
        })
        .expect("a temporary folder is writable")
    }

    #[test]
    fn an_application_without_a_repository_url_is_no_source() {
        let dir = tempfile::tempdir().expect("temporary folder");
        let repos = RepoCache::new(dir.path().join("repos"));
        let tools = tools(dir.path());
        for spec in [
            ApplicationSpec::default(),
            ApplicationSpec {
                sources: vec![ApplicationSource::default()],
                ..Default::default()
            },
        ] {
            let err = resolve_offline(&repos, &tools, &spec).expect_err("no source");
            assert!(matches!(err, OfflineError::NoSource), "{err}");
        }
    }

    #[test]
    fn a_missing_repository_names_its_url() {
        let dir = tempfile::tempdir().expect("temporary folder");
        let repos = RepoCache::new(dir.path().join("repos"));
        let tools = tools(dir.path());
        let spec = ApplicationSpec {
            source: Some(ApplicationSource {
                repo_url: "/nonexistent/plumb-offline".into(),
                ..Default::default()
            }),
            ..Default::default()
        };
        let err = resolve_offline(&repos, &tools, &spec).expect_err("no repository");
        assert!(matches!(err, OfflineError::Source(_)), "{err:?}");
        assert!(
            err.to_string().contains("/nonexistent/plumb-offline"),
            "{err}"
        );
    }
}
