//! The renderers that are not plain files: Kustomize and Helm as child
//! processes (`helm template`, `kustomize build` or `kubectl kustomize`),
//! Jsonnet in process, each on a throw-away checkout of exactly the commit.
//!
//! Every tool run has a time limit, an output limit, a cap on concurrent
//! runs and an environment that holds none of Plumb's own (no credentials,
//! no kubeconfig); every path a tool is given is checked to stay inside its
//! repository. A missing binary is an error on the applications that need
//! it, found again by the next render once it is installed.
//!
//! This module is not the directory renderer (`render`, in plumb-core), not
//! a git client (checkouts come from `source::RepoCache`) and not a cache of
//! renders (the controller keeps those, keyed by what a render depends on).

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use crate::cluster::Capabilities;
use crate::model::{ApplicationSource, Manifest};
use crate::render::{self, RenderError};
use crate::source::{RepoCache, SourceError};

pub mod app;
mod chart;
pub mod checkout;
mod helm;
pub mod jsonnet;
mod kustomize;
pub mod run;

use checkout::Checkouts;
use run::{ToolError, ToolRunner};

/// How tools are found and bounded.
#[derive(Clone, Debug)]
pub struct ToolOptions {
    /// `--helm-bin`: the helm binary; `helm` on `PATH` when unset.
    pub helm_bin: Option<PathBuf>,
    /// `--kustomize-bin`: the kustomize binary; `kustomize` on `PATH`, else
    /// `kubectl kustomize`, when unset.
    pub kustomize_bin: Option<PathBuf>,
    /// How long one tool run (or Jsonnet evaluation) may take.
    pub timeout: Duration,
    /// The most a tool may print, in bytes.
    pub max_output: u64,
    /// Tool runs at once.
    pub concurrency: usize,
    /// Where checkouts, pulled charts and the tools' own files live.
    pub root: PathBuf,
}

impl Default for ToolOptions {
    fn default() -> Self {
        ToolOptions {
            helm_bin: None,
            kustomize_bin: None,
            timeout: Duration::from_secs(90),
            max_output: 64 << 20,
            concurrency: 4,
            root: PathBuf::from("plumb-data/tools"),
        }
    }
}

/// Why a source did not render.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RenderFailure {
    /// Something in the repository or the application must change: a
    /// missing file, a path out of the repository, options that cannot be
    /// used, output that is not manifests.
    #[error("{0}")]
    Input(String),
    /// The tool is missing, failed, timed out or printed too much.
    #[error(transparent)]
    Tool(#[from] ToolError),
    /// Jsonnet did not evaluate.
    #[error(transparent)]
    Jsonnet(#[from] jsonnet::JsonnetError),
    /// The repository could not be read (or checked out).
    #[error("{0}")]
    Source(String),
    /// Plumb could not write its own files.
    #[error("{0}")]
    Internal(String),
}

impl RenderFailure {
    /// Worth trying again without a change: a tool that timed out or is
    /// missing (it may be installed since), a checkout that failed to write.
    pub fn is_spurious(&self) -> bool {
        match self {
            RenderFailure::Tool(e) => e.is_spurious() || matches!(e, ToolError::NotFound { .. }),
            RenderFailure::Jsonnet(e) => e.is_spurious(),
            RenderFailure::Internal(_) => true,
            RenderFailure::Source(_) | RenderFailure::Input(_) => false,
        }
    }
}

impl From<RenderError> for RenderFailure {
    fn from(e: RenderError) -> Self {
        RenderFailure::Input(e.to_string())
    }
}

impl From<checkout::CheckoutError> for RenderFailure {
    fn from(e: checkout::CheckoutError) -> Self {
        if e.is_spurious() {
            RenderFailure::Internal(e.to_string())
        } else {
            RenderFailure::Source(e.to_string())
        }
    }
}

impl From<SourceError> for RenderFailure {
    fn from(e: SourceError) -> Self {
        RenderFailure::Source(e.to_string())
    }
}

/// A binary found, and the version it reports (part of render cache keys).
#[derive(Clone, Debug)]
struct Found {
    path: PathBuf,
    version: String,
    /// `kubectl`, run as `kubectl kustomize`.
    kubectl: bool,
}

/// The tools, their limits and the checkouts they run on. Every method
/// blocks; call from `spawn_blocking`.
pub struct Tools {
    options: ToolOptions,
    runner: ToolRunner,
    checkouts: Checkouts,
    helm: Mutex<Option<Found>>,
    kustomize: Mutex<Option<Found>>,
    charts: chart::Charts,
}

impl std::fmt::Debug for Tools {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tools")
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

/// A path of a repository a render read. The render stays what it is
/// while every path it read holds the same content.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Input {
    /// The repository URL, normalized.
    pub url: String,
    /// The repository path of a folder or file.
    pub path: String,
}

/// What a tool rendered, and what it read to do it.
#[derive(Clone, Debug)]
pub struct Rendered {
    /// The manifests.
    pub manifests: Vec<Manifest>,
    /// The repository paths read.
    pub inputs: Vec<Input>,
}

/// Adds, for every symbolic link inside the folders and files of `inputs`
/// on `url`, the path it points to: a link's target can change without the
/// folder holding the link changing.
fn add_link_targets(inputs: &mut Vec<Input>, url: &str, root: &Path) {
    let mut targets = Vec::new();
    let mut pending: Vec<String> = inputs
        .iter()
        .filter(|i| i.url == url)
        .map(|i| i.path.clone())
        .collect();
    while let Some(path) = pending.pop() {
        let on_disk = root.join(&path);
        let Ok(meta) = std::fs::symlink_metadata(&on_disk) else {
            continue;
        };
        if meta.file_type().is_symlink() {
            if let Ok(target) = std::fs::read_link(&on_disk)
                && let Ok(resolved) = crate::repo_path::join(
                    crate::repo_path::parent(&path),
                    &target.to_string_lossy(),
                )
            {
                targets.push(resolved);
            }
        } else if meta.is_dir() {
            for entry in std::fs::read_dir(&on_disk).into_iter().flatten().flatten() {
                let name = entry.file_name().to_string_lossy().into_owned();
                pending.push(if path.is_empty() {
                    name
                } else {
                    format!("{path}/{name}")
                });
            }
        }
    }
    inputs.extend(targets.into_iter().map(|path| Input {
        url: url.to_string(),
        path,
    }));
}

/// A source to render with a tool.
#[derive(Clone, Copy, Debug)]
pub struct Job<'a> {
    /// The application's name (Helm's default release name).
    pub app: &'a str,
    /// The source.
    pub source: &'a ApplicationSource,
    /// Its repository URL, normalized; a chart repository for charts.
    pub url: &'a str,
    /// The commit SHA, or the chart version for a chart.
    pub revision: &'a str,
    /// The destination namespace.
    pub namespace: &'a str,
    /// The application's other git sources by `ref`: URL and commit.
    pub refs: &'a HashMap<String, (String, String)>,
    /// The destination cluster's version and API versions (Helm).
    pub capabilities: &'a Capabilities,
}

impl Tools {
    /// Tools bounded by `options`. Binaries are looked for at the first
    /// render that needs them (and again while missing). Folders left by a
    /// previous process under `options.root` are cleared.
    ///
    /// # Errors
    ///
    /// When `options.root` cannot be created.
    pub fn new(options: ToolOptions) -> std::io::Result<Tools> {
        std::fs::create_dir_all(&options.root)?;
        let scratch = options.root.join("home");
        let _ = std::fs::remove_dir_all(&scratch);
        std::fs::create_dir_all(&scratch)?;
        Ok(Tools {
            runner: ToolRunner::new(options.concurrency, scratch),
            checkouts: Checkouts::new(options.root.join("checkouts"), CHECKOUTS_KEPT)
                .map_err(std::io::Error::other)?,
            charts: chart::Charts::new(options.root.join("charts"))?,
            helm: Mutex::new(None),
            kustomize: Mutex::new(None),
            options,
        })
    }

    /// The version of the tool a source of `kind` runs, for cache keys:
    /// `None` when it is missing (the render fails anyway).
    pub fn version(&self, kind: render::SourceKind) -> Option<String> {
        match kind {
            render::SourceKind::Helm => self.find_helm().ok().map(|f| f.version),
            render::SourceKind::Kustomize => self.find_kustomize().ok().map(|f| f.version),
            render::SourceKind::Directory => Some(String::new()),
        }
    }

    fn find_helm(&self) -> Result<Found, ToolError> {
        let mut cached = lock(&self.helm);
        if let Some(found) = cached.as_ref() {
            return Ok(found.clone());
        }
        let path = run::find_tool("helm", self.options.helm_bin.as_deref())?;
        let version = self.runner.tool_version(&path, &["version", "--short"])?;
        let found = Found {
            path,
            version,
            kubectl: false,
        };
        *cached = Some(found.clone());
        Ok(found)
    }

    fn find_kustomize(&self) -> Result<Found, ToolError> {
        let mut cached = lock(&self.kustomize);
        if let Some(found) = cached.as_ref() {
            return Ok(found.clone());
        }
        let found = match run::find_tool("kustomize", self.options.kustomize_bin.as_deref()) {
            Ok(path) => Found {
                version: self.runner.tool_version(&path, &["version"])?,
                path,
                kubectl: false,
            },
            Err(missing) if self.options.kustomize_bin.is_none() => {
                let path = run::find_tool("kubectl", None).map_err(|_| missing.clone())?;
                Found {
                    version: self.runner.tool_version(&path, &["version", "--client"])?,
                    path,
                    kubectl: true,
                }
            }
            Err(e) => return Err(e),
        };
        *cached = Some(found.clone());
        Ok(found)
    }

    /// Runs helm with `args` in `cwd`, with Helm's homes in Plumb's scratch
    /// folder.
    fn helm(&self, args: &[String], cwd: &Path) -> Result<Vec<u8>, RenderFailure> {
        let helm = self.find_helm()?;
        let command = run::ToolCommand::new("helm", &helm.path, cwd).args(args);
        Ok(self.runner.run(&command, &self.limits())?)
    }

    fn kustomize_build(&self, root: &Path, dir: &str) -> Result<Vec<u8>, RenderFailure> {
        let tool = self.find_kustomize()?;
        let mut args: Vec<String> = Vec::new();
        if tool.kubectl {
            args.push("kustomize".into());
        } else {
            args.push("build".into());
        }
        args.push(if dir.is_empty() {
            ".".into()
        } else {
            dir.into()
        });
        let command = run::ToolCommand::new("kustomize", &tool.path, root).args(&args);
        Ok(self.runner.run(&command, &self.limits())?)
    }

    fn limits(&self) -> run::Limits {
        run::Limits {
            timeout: self.options.timeout,
            max_output: usize::try_from(self.options.max_output).unwrap_or(usize::MAX),
        }
    }

    /// Renders a Kustomize or Helm source (one whose kind is not
    /// `Directory`).
    ///
    /// # Errors
    ///
    /// [`RenderFailure`] saying what to fix.
    pub fn render(
        &self,
        repos: &RepoCache,
        kind: render::SourceKind,
        job: &Job<'_>,
    ) -> Result<Rendered, RenderFailure> {
        let path = crate::repo_path::normalize(job.source.path.as_deref().unwrap_or(""))
            .map_err(|e| RenderFailure::Input(format!("spec.source.path {e}")))?;
        match kind {
            render::SourceKind::Kustomize => {
                let checkout = self.checkouts.get(repos, job.url, job.revision)?;
                let options = job.source.kustomize.clone().unwrap_or_default();
                let (out, read) = kustomize::build(self, &checkout, &path, &options)?;
                let label = format!("kustomize build {}", shown(&path));
                let mut inputs: Vec<Input> = read
                    .into_iter()
                    .map(|path| Input {
                        url: job.url.to_string(),
                        path,
                    })
                    .collect();
                add_link_targets(&mut inputs, job.url, checkout.path());
                Ok(Rendered {
                    manifests: render::render_stream(&label, &out)?,
                    inputs,
                })
            }
            render::SourceKind::Helm => {
                let options = job.source.helm.clone().unwrap_or_default();
                let mut refs = HashMap::new();
                let mut held = Vec::new();
                for (name, (url, commit)) in job.refs {
                    let checkout = self.checkouts.get(repos, url, commit)?;
                    refs.insert(name.clone(), (checkout.path().to_path_buf(), url.clone()));
                    held.push(checkout);
                }
                let scratch = tempfile_dir(&self.options.root)?;
                let release = options
                    .release_name
                    .clone()
                    .filter(|r| !r.is_empty())
                    .unwrap_or_else(|| job.app.to_string());
                let namespace = options
                    .namespace
                    .clone()
                    .filter(|n| !n.is_empty())
                    .unwrap_or_else(|| job.namespace.to_string());
                let mut git_chart = None;
                let (out, mut inputs) = match job.source.chart_name() {
                    Some(name) => {
                        let pulled = self.charts.get(self, job.url, name, job.revision)?;
                        helm::template(
                            self,
                            &helm::Chart {
                                root: pulled.parent().unwrap_or(&pulled),
                                url: None,
                                checkout: None,
                                chart: name_of(&pulled),
                                refs: &refs,
                                options: &options,
                                release: &release,
                                namespace: &namespace,
                                capabilities: job.capabilities,
                                scratch: scratch.path(),
                            },
                        )?
                    }
                    None => {
                        let checkout =
                            git_chart.insert(self.checkouts.get(repos, job.url, job.revision)?);
                        helm::template(
                            self,
                            &helm::Chart {
                                root: checkout.path(),
                                url: Some(job.url),
                                checkout: Some(checkout),
                                chart: &path,
                                refs: &refs,
                                options: &options,
                                release: &release,
                                namespace: &namespace,
                                capabilities: job.capabilities,
                                scratch: scratch.path(),
                            },
                        )?
                    }
                };
                for (root, url) in refs.values() {
                    add_link_targets(&mut inputs, url, root);
                }
                if let Some(checkout) = git_chart.as_ref() {
                    add_link_targets(&mut inputs, job.url, checkout.path());
                }
                drop(held);
                Ok(Rendered {
                    manifests: render::render_stream("helm template", &out)?,
                    inputs,
                })
            }
            render::SourceKind::Directory => Err(RenderFailure::Internal(
                "a directory source is rendered from the object database, not by a tool".into(),
            )),
        }
    }

    /// The newest chart version of `chart` in the chart repository `url`
    /// that `version` allows (the exact version when it names one), pulling
    /// it into the chart cache when it is not there yet.
    ///
    /// # Errors
    ///
    /// [`RenderFailure::Tool`] when helm cannot pull it.
    pub fn resolve_chart(
        &self,
        url: &str,
        chart: &str,
        version: &str,
    ) -> Result<String, RenderFailure> {
        self.charts.resolve(self, url, chart, version)
    }

    /// A checkout of `commit` of `url` (for Jsonnet).
    ///
    /// # Errors
    ///
    /// When the commit cannot be written out.
    pub fn checkout(
        &self,
        repos: &RepoCache,
        url: &str,
        commit: &str,
    ) -> Result<Arc<checkout::Checkout>, RenderFailure> {
        Ok(self.checkouts.get(repos, url, commit)?)
    }

    /// The limits a Jsonnet evaluation runs under.
    pub fn jsonnet_limits(&self) -> jsonnet::JsonnetLimits {
        jsonnet::JsonnetLimits {
            timeout: self.options.timeout,
            max_output_bytes: usize::try_from(self.options.max_output).unwrap_or(usize::MAX),
            ..jsonnet::JsonnetLimits::default()
        }
    }
}

/// How many checkouts are kept when nobody uses them.
const CHECKOUTS_KEPT: usize = 16;

fn shown(path: &str) -> &str {
    if path.is_empty() { "." } else { path }
}

fn name_of(path: &Path) -> &str {
    path.file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default()
}

fn tempfile_dir(root: &Path) -> Result<tempfile::TempDir, RenderFailure> {
    let scratch = root.join("scratch");
    std::fs::create_dir_all(&scratch)
        .and_then(|()| tempfile::tempdir_in(&scratch))
        .map_err(|e| RenderFailure::Internal(format!("cannot create a scratch folder: {e}")))
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A stable hash of a serializable value (for folder names).
fn hash_json(value: &impl serde::Serialize) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    serde_json::to_vec(value)
        .expect("JSON values always serialize")
        .hash(&mut h);
    h.finish()
}
