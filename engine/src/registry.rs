//! Where applications come from: `--apps` files and folders of
//! multi-document YAML (watched with notify), and `Application` objects in
//! Plumb's namespace (watched through the API). The files report the full
//! set they hold; the cluster reports its full set after each (re)list and
//! then one application per change of its spec, labels, annotations,
//! finalizers or deletion timestamp, so
//! that a status write (Plumb's own, among others) costs nothing. Updates
//! wait in [`Updates`], which is bounded and coalescing. ApplicationSets
//! and AppProjects come the same two ways.
//!
//! It parses and watches; it does not reconcile.

use std::collections::{BTreeMap, HashMap};
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use kube::api::{Api, DynamicObject};
use kube::core::{ApiResource, GroupVersionKind};
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use notify::RecursiveMode;
use serde_json::Value;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::appset::ApplicationSet;
use crate::model::{Application, ApplicationStatus, unsupported_fields};
use crate::project::AppProject;

/// Where an application was declared.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Origin {
    /// A file given with `--apps`.
    File(PathBuf),
    /// An `Application` object in the cluster.
    Cluster,
}

/// An application as declared, with what Plumb does not support in it.
#[derive(Clone, Debug)]
pub struct Declared {
    /// The application.
    pub app: Application,
    /// Paths of unsupported fields (`spec.source.helm`, ...).
    pub unsupported: Vec<String>,
    /// Where it came from.
    pub origin: Origin,
    /// For an Application object: the [`status_fingerprint`] of the status
    /// it carries. The status itself is not kept (Plumb computes its own).
    pub status_fingerprint: Option<u64>,
    /// The [`crate::appset::plan::spec_hash`] of the spec as written, unknown
    /// fields included: how an ApplicationSet tells whether an Application
    /// it generated still holds what it would write.
    pub spec_hash: u64,
    /// An Application object's top-level `operation` (Argo CD's way to ask
    /// for a sync through the object), as written.
    pub operation: Option<Value>,
}

impl Declared {
    /// The unsupported fields under `spec.source` or `spec.sources`: they
    /// could change what is rendered, so an application that has any is
    /// not rendered at all.
    pub fn unsupported_source_fields(&self) -> Vec<&str> {
        self.unsupported
            .iter()
            .map(String::as_str)
            .filter(|f| f.starts_with("spec.source"))
            .collect()
    }
}

/// An Application status in the form Plumb writes it: without
/// `reconciledAt` (it changes at every write) and without empty strings
/// (kube-apiserver 1.20 reads an empty string in a merge patch of a custom
/// resource as null and then refuses it; an absent field means the same).
pub fn status_document(status: &ApplicationStatus) -> Value {
    fn drop_empty_strings(value: &mut Value) {
        match value {
            Value::Object(map) => {
                map.retain(|_, v| v.as_str() != Some(""));
                map.values_mut().for_each(drop_empty_strings);
            }
            Value::Array(items) => items.iter_mut().for_each(drop_empty_strings),
            _ => {}
        }
    }
    let mut value = serde_json::to_value(status).expect("a status always serializes");
    if let Value::Object(map) = &mut value {
        map.remove("reconciledAt");
    }
    drop_empty_strings(&mut value);
    value
}

/// A hash of a [`status_document`]: what Plumb remembers of a status it
/// wrote (or found), to tell whether a new one differs without keeping it.
pub fn status_fingerprint(document: &Value) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    serde_json::to_vec(document)
        .expect("JSON values always serialize")
        .hash(&mut h);
    h.finish()
}

/// A change of one source's applications.
#[derive(Debug)]
pub enum SourceUpdate {
    /// Every application of `--apps` (all files together), or the error
    /// reading them.
    Files(Result<Vec<Declared>, String>),
    /// Every Application object one watch sees (its [`Watched`] scope),
    /// after a (re)list.
    ClusterAll(Watched, Vec<Declared>),
    /// One Application object was added, or its spec, labels or annotations
    /// changed.
    ClusterApplied(Box<Declared>),
    /// One Application object was deleted: its namespace and name.
    ClusterDeleted(String, String),
    /// Every ApplicationSet of `--apps`, or the error reading them.
    AppSetFiles(Result<Vec<DeclaredSet>, String>),
    /// Every ApplicationSet object of the namespace, after a (re)list.
    AppSetClusterAll(Vec<DeclaredSet>),
    /// One ApplicationSet object was added or changed (`Some`), or deleted.
    AppSetCluster(String, Option<Box<DeclaredSet>>),
    /// Every AppProject of `--apps`, or the error reading them.
    ProjectFiles(Result<Vec<AppProject>, String>),
    /// Every AppProject object of the namespace, after a (re)list.
    ProjectClusterAll(Vec<AppProject>),
    /// One AppProject object was added or changed (`Some`), or deleted.
    ProjectCluster(String, Option<Box<AppProject>>),
}

/// Source updates waiting for the controller. Bounded by the number of
/// applications and coalescing: a newer update of the same thing (the files,
/// the cluster's full set, one application) replaces the one still waiting.
/// Pushing never blocks, so it works from notify's thread and from tasks.
#[derive(Debug, Default)]
pub struct Updates {
    pending: std::sync::Mutex<Pending>,
    wake: tokio::sync::Notify,
}

#[derive(Debug, Default)]
struct Pending {
    files: Option<Result<Vec<Declared>, String>>,
    appset_files: Option<Result<Vec<DeclaredSet>, String>>,
    appset_cluster_all: Option<Vec<DeclaredSet>>,
    appset_cluster: BTreeMap<String, Option<Box<DeclaredSet>>>,
    project_files: Option<Result<Vec<AppProject>, String>>,
    project_cluster_all: Option<Vec<AppProject>>,
    project_cluster: BTreeMap<String, Option<Box<AppProject>>>,
    cluster_all: BTreeMap<Watched, Vec<Declared>>,
    /// Per Application object (namespace, name): the watch that saw it and
    /// its new declaration, or `None` when deleted.
    cluster: BTreeMap<ObjectId, (Watched, Option<Box<Declared>>)>,
}

/// An object's namespace and name.
type ObjectId = (String, String);

/// Which watch of Application objects a full list comes from: the
/// application namespace's, one of `--app-namespaces`' named namespaces, or
/// the one of every namespace `--app-namespaces`' patterns match. Each
/// watch's list replaces what that watch listed before, and only that.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Watched {
    /// The application namespace (`--namespace`).
    Home,
    /// One more namespace, named.
    Namespace(String),
    /// Every namespace a pattern matches, but the application namespace.
    Matching,
}

impl Updates {
    fn pending(&self) -> std::sync::MutexGuard<'_, Pending> {
        self.pending
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The `--apps` files now hold `apps` (or could not be read). A read
    /// that failed does not replace a good one still waiting: the
    /// controller keeps the last good set anyway, and it must see it.
    pub fn files(&self, apps: Result<Vec<Declared>, String>) {
        let mut pending = self.pending();
        if let (Err(e), Some(Ok(_))) = (&apps, &pending.files) {
            tracing::error!(error = %e, "cannot read --apps; keeping the applications read before");
            return;
        }
        pending.files = Some(apps);
        drop(pending);
        self.wake.notify_one();
    }

    /// The `--apps` files now hold `sets` (or could not be read); as
    /// [`Updates::files`], a failed read does not replace a good one.
    pub fn appset_files(&self, sets: Result<Vec<DeclaredSet>, String>) {
        let mut pending = self.pending();
        if let (Err(_), Some(Ok(_))) = (&sets, &pending.appset_files) {
            return;
        }
        pending.appset_files = Some(sets);
        drop(pending);
        self.wake.notify_one();
    }

    /// The namespace now holds exactly these ApplicationSet objects.
    pub fn appset_cluster_all(&self, sets: Vec<DeclaredSet>) {
        let mut pending = self.pending();
        pending.appset_cluster.clear();
        pending.appset_cluster_all = Some(sets);
        drop(pending);
        self.wake.notify_one();
    }

    /// One ApplicationSet object was added or changed (`Some`), or deleted.
    pub fn appset_cluster(&self, name: &str, set: Option<DeclaredSet>) {
        self.pending()
            .appset_cluster
            .insert(name.to_string(), set.map(Box::new));
        self.wake.notify_one();
    }

    /// The `--apps` files now hold `projects` (or could not be read); as
    /// [`Updates::files`], a failed read does not replace a good one.
    pub fn project_files(&self, projects: Result<Vec<AppProject>, String>) {
        let mut pending = self.pending();
        if let (Err(_), Some(Ok(_))) = (&projects, &pending.project_files) {
            return;
        }
        pending.project_files = Some(projects);
        drop(pending);
        self.wake.notify_one();
    }

    /// The namespace now holds exactly these AppProject objects.
    pub fn project_cluster_all(&self, projects: Vec<AppProject>) {
        let mut pending = self.pending();
        pending.project_cluster.clear();
        pending.project_cluster_all = Some(projects);
        drop(pending);
        self.wake.notify_one();
    }

    /// One AppProject object was added or changed (`Some`), or deleted.
    pub fn project_cluster(&self, name: &str, project: Option<AppProject>) {
        self.pending()
            .project_cluster
            .insert(name.to_string(), project.map(Box::new));
        self.wake.notify_one();
    }

    /// What `watched` sees now holds exactly `apps`; the single changes it
    /// reported before are superseded.
    pub fn cluster_all(&self, watched: Watched, apps: Vec<Declared>) {
        let mut pending = self.pending();
        pending.cluster.retain(|_, (from, _)| *from != watched);
        pending.cluster_all.insert(watched, apps);
        drop(pending);
        self.wake.notify_one();
    }

    /// One Application object was added or changed.
    pub fn cluster_applied(&self, watched: Watched, declared: Declared) {
        let meta = &declared.app.metadata;
        let object = (
            meta.namespace.clone().unwrap_or_default(),
            meta.name.clone().unwrap_or_default(),
        );
        self.pending()
            .cluster
            .insert(object, (watched, Some(Box::new(declared))));
        self.wake.notify_one();
    }

    /// One Application object was deleted.
    pub fn cluster_deleted(&self, watched: Watched, namespace: &str, name: &str) {
        self.pending()
            .cluster
            .insert((namespace.to_string(), name.to_string()), (watched, None));
        self.wake.notify_one();
    }

    /// Waits for updates and takes all that wait, in the order they apply:
    /// the files, the cluster's full set, then single changes.
    pub async fn next(&self) -> Vec<SourceUpdate> {
        loop {
            let batch = {
                let mut pending = self.pending();
                let mut batch = Vec::new();
                // Projects first: the applications of this batch are
                // checked against them.
                if let Some(projects) = pending.project_files.take() {
                    batch.push(SourceUpdate::ProjectFiles(projects));
                }
                if let Some(projects) = pending.project_cluster_all.take() {
                    batch.push(SourceUpdate::ProjectClusterAll(projects));
                }
                for (name, change) in std::mem::take(&mut pending.project_cluster) {
                    batch.push(SourceUpdate::ProjectCluster(name, change));
                }
                if let Some(files) = pending.files.take() {
                    batch.push(SourceUpdate::Files(files));
                }
                if let Some(sets) = pending.appset_files.take() {
                    batch.push(SourceUpdate::AppSetFiles(sets));
                }
                if let Some(sets) = pending.appset_cluster_all.take() {
                    batch.push(SourceUpdate::AppSetClusterAll(sets));
                }
                for (name, change) in std::mem::take(&mut pending.appset_cluster) {
                    batch.push(SourceUpdate::AppSetCluster(name, change));
                }
                for (watched, all) in std::mem::take(&mut pending.cluster_all) {
                    batch.push(SourceUpdate::ClusterAll(watched, all));
                }
                for ((namespace, name), (_, change)) in std::mem::take(&mut pending.cluster) {
                    batch.push(match change {
                        Some(declared) => SourceUpdate::ClusterApplied(declared),
                        None => SourceUpdate::ClusterDeleted(namespace, name),
                    });
                }
                batch
            };
            if !batch.is_empty() {
                return batch;
            }
            self.wake.notified().await;
        }
    }
}

/// The error of reading application files.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// A file or folder could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The path.
        path: String,
        /// What the OS said.
        #[source]
        source: std::io::Error,
    },
    /// A document is not valid YAML or not a valid Application.
    #[error("{path} document {document}: {message}")]
    Invalid {
        /// The file.
        path: String,
        /// 1-based document index.
        document: usize,
        /// What is wrong.
        message: String,
    },
}

/// Parses one `Application` from its JSON form.
///
/// # Errors
/// When the object does not decode as an Application.
pub fn declared_from_value(mut value: Value, origin: Origin) -> Result<Declared, String> {
    // Items of a list response carry no type; they are Applications.
    if let Value::Object(map) = &mut value {
        map.entry("apiVersion")
            .or_insert_with(|| Value::String("argoproj.io/v1alpha1".into()));
        map.entry("kind")
            .or_insert_with(|| Value::String("Application".into()));
    }
    let unsupported = unsupported_fields(&value);
    let spec_hash = crate::appset::plan::spec_hash(value.get("spec").unwrap_or(&Value::Null));
    let operation = match origin {
        Origin::Cluster => value.get("operation").filter(|o| !o.is_null()).cloned(),
        Origin::File(_) => None,
    };
    let mut app: Application = serde_json::from_value(value).map_err(|e| e.to_string())?;
    if app.metadata.name.as_deref().unwrap_or("").is_empty() {
        return Err("an Application needs metadata.name".into());
    }
    // Never read, and larger than the rest of the object once Plumb has
    // written a status to it.
    app.metadata.managed_fields = None;
    let status_fingerprint = match origin {
        Origin::Cluster => app
            .status
            .take()
            .map(|s| status_fingerprint(&status_document(&s))),
        Origin::File(_) => None,
    };
    Ok(Declared {
        app,
        unsupported,
        origin,
        status_fingerprint,
        spec_hash,
        operation,
    })
}

fn yaml_files(path: &Path, out: &mut Vec<PathBuf>) -> Result<(), RegistryError> {
    let read_err = |source| RegistryError::Read {
        path: path.display().to_string(),
        source,
    };
    if path.is_dir() {
        let mut entries: Vec<PathBuf> = std::fs::read_dir(path)
            .map_err(read_err)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .collect();
        entries.sort();
        for entry in entries {
            yaml_files(&entry, out)?;
        }
    } else if path
        .extension()
        .is_some_and(|e| e == "yaml" || e == "yml" || e == "json")
        || !path.exists()
    {
        out.push(path.to_path_buf());
    }
    Ok(())
}

/// Whether a document is an Argo CD object of `kind`.
fn is_argo(value: &Value, kind: &str) -> bool {
    value.get("kind").and_then(Value::as_str) == Some(kind)
        && value
            .get("apiVersion")
            .and_then(Value::as_str)
            .is_some_and(|v| v.starts_with("argoproj.io/"))
}

/// Every document of `kind` in the given files and folders (recursively;
/// `.yaml`, `.yml`, `.json`), decoded by `decode`.
fn load_kind<T>(
    paths: &[PathBuf],
    kind: &str,
    decode: impl Fn(Value, &Path) -> Result<T, String>,
) -> Result<Vec<T>, RegistryError> {
    let mut files = Vec::new();
    for path in paths {
        yaml_files(path, &mut files)?;
    }
    let mut out = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file).map_err(|source| RegistryError::Read {
            path: file.display().to_string(),
            source,
        })?;
        for (i, doc) in documents(&text).enumerate() {
            let invalid = |message: String| RegistryError::Invalid {
                path: file.display().to_string(),
                document: i + 1,
                message,
            };
            let value: Value = serde_yaml::from_str(doc).map_err(|e| invalid(e.to_string()))?;
            if value.is_null() || !is_argo(&value, kind) {
                continue;
            }
            out.push(decode(value, &file).map_err(invalid)?);
        }
    }
    Ok(out)
}

/// Reads every Application in the given files and folders (recursively;
/// `.yaml`, `.yml`, `.json`). Other kinds of documents are ignored.
///
/// # Errors
/// A missing or unreadable path, or a malformed document, fails the whole
/// read so that a half-edited file never removes applications.
pub fn load_files(paths: &[PathBuf]) -> Result<Vec<Declared>, RegistryError> {
    load_kind(paths, "Application", |value, file| {
        declared_from_value(value, Origin::File(file.to_path_buf()))
    })
}

/// An ApplicationSet as declared, with what Plumb does not support in it.
#[derive(Clone, Debug)]
pub struct DeclaredSet {
    /// The ApplicationSet (its status, if any, is dropped: Plumb writes its
    /// own).
    pub set: ApplicationSet,
    /// Paths of unsupported `spec` fields.
    pub unsupported: Vec<String>,
    /// Whether it is an object in the cluster (else a file of `--apps`).
    pub in_cluster: bool,
}

impl DeclaredSet {
    /// Its name.
    pub fn name(&self) -> &str {
        self.set.metadata.name.as_deref().unwrap_or_default()
    }
}

/// Reads every ApplicationSet in the given files and folders, as
/// [`load_files`] reads Applications.
///
/// # Errors
/// As [`load_files`]; an ApplicationSet without a name is malformed.
pub fn load_appset_files(paths: &[PathBuf]) -> Result<Vec<DeclaredSet>, RegistryError> {
    load_kind(paths, "ApplicationSet", |value, _| {
        appset_from_value(value, false)
    })
}

/// Reads every AppProject in the given files and folders, as
/// [`load_files`] reads Applications.
///
/// # Errors
/// As [`load_files`]; an AppProject without a name is malformed.
pub fn load_project_files(paths: &[PathBuf]) -> Result<Vec<AppProject>, RegistryError> {
    load_kind(paths, "AppProject", |value, _| project_from_value(value))
}

/// Parses one `AppProject` from its JSON form (its status and managed
/// fields dropped: Plumb reads the spec only).
///
/// # Errors
/// When the object does not decode as an AppProject or has no name.
pub fn project_from_value(value: Value) -> Result<AppProject, String> {
    let mut project: AppProject = serde_json::from_value(value).map_err(|e| e.to_string())?;
    if project.name().is_empty() {
        return Err("an AppProject needs metadata.name".into());
    }
    project.metadata.managed_fields = None;
    Ok(project)
}

/// Parses one `ApplicationSet` from its JSON form.
///
/// # Errors
/// When the object does not decode as an ApplicationSet or has no name.
pub fn appset_from_value(value: Value, in_cluster: bool) -> Result<DeclaredSet, String> {
    let unsupported =
        crate::appset::unsupported_spec_fields(value.get("spec").unwrap_or(&Value::Null));
    let mut set: ApplicationSet = serde_json::from_value(value).map_err(|e| e.to_string())?;
    if set.metadata.name.as_deref().unwrap_or("").is_empty() {
        return Err("an ApplicationSet needs metadata.name".into());
    }
    set.metadata.managed_fields = None;
    set.status = None;
    Ok(DeclaredSet {
        set,
        unsupported,
        in_cluster,
    })
}

/// The documents of a YAML stream, split at `---` lines, so that each is
/// parsed on its own: serde_yaml reads a whole multi-document stream into
/// memory before the first document, which for an apps file of 10,000
/// Applications costs tens of megabytes at once. A `---` inside a block
/// scalar is indented, so it never starts a line. A document that is only
/// comments or empty parses as null and is skipped by the caller, as before.
fn documents(text: &str) -> impl Iterator<Item = &str> {
    let mut rest = text;
    let mut done = false;
    std::iter::from_fn(move || {
        if done {
            return None;
        }
        let mut offset = 0;
        loop {
            let line_end = rest[offset..].find('\n').map(|i| offset + i + 1);
            let line = &rest[offset..line_end.unwrap_or(rest.len())];
            let marker = line.trim_end();
            let is_start =
                marker == "---" || marker.starts_with("--- ") || marker.starts_with("---\t");
            if is_start && offset > 0 {
                let doc = &rest[..offset];
                rest = &rest[offset..];
                return Some(doc);
            }
            if is_start {
                // The marker opening this document: skip it (a value after
                // it on the line, `--- {a: 1}`, stays with the document).
                let after = &line[3..];
                if after.trim().is_empty() {
                    rest = &rest[line.len()..];
                    offset = 0;
                    continue;
                }
            }
            match line_end {
                Some(end) => offset = end,
                None => {
                    done = true;
                    return Some(rest);
                }
            }
        }
    })
}

/// Reads `--apps` now and again whenever a file under them changes, sending
/// each snapshot. Runs until `cancel` fires.
pub fn watch_files(paths: Vec<PathBuf>, updates: Arc<Updates>, cancel: CancellationToken) {
    // Absolute, so that the paths events carry compare equal to them.
    let paths: Vec<PathBuf> = paths
        .into_iter()
        .map(|p| std::path::absolute(&p).unwrap_or(p))
        .collect();
    let send = {
        let updates = updates.clone();
        let paths = paths.clone();
        move || {
            updates.files(load_files(&paths).map_err(|e| e.to_string()));
            updates.appset_files(load_appset_files(&paths).map_err(|e| e.to_string()));
            updates.project_files(load_project_files(&paths).map_err(|e| e.to_string()));
        }
    };
    send();
    let (tx, mut rx) = mpsc::unbounded_channel::<()>();
    let watched = paths.clone();
    let debouncer = notify_debouncer_full::new_debouncer(
        Duration::from_millis(200),
        None,
        move |result: notify_debouncer_full::DebounceEventResult| {
            // Only events on the apps files themselves count: the folder of
            // an apps file may also hold the data directory, whose writes
            // must not make every poll re-read the applications.
            let relevant = result.is_ok_and(|events| {
                events
                    .iter()
                    .flat_map(|e| &e.paths)
                    .any(|p| is_apps_file(&watched, p))
            });
            if relevant {
                let _ = tx.send(());
            }
        },
    );
    let mut debouncer = match debouncer {
        Ok(d) => d,
        Err(e) => {
            tracing::error!(error = %e, "cannot watch --apps; edits need a restart");
            return;
        }
    };
    for path in &paths {
        // A folder is watched whole; a file through its parent, so that
        // editors that replace the file (write a temporary, rename) are seen.
        let (target, mode) = if path.is_dir() {
            (path.clone(), RecursiveMode::Recursive)
        } else {
            (
                path.parent()
                    .filter(|p| !p.as_os_str().is_empty())
                    .map_or_else(|| PathBuf::from("."), Path::to_path_buf),
                RecursiveMode::NonRecursive,
            )
        };
        if let Err(e) = debouncer.watch(&target, mode) {
            tracing::error!(path = %target.display(), error = %e, "cannot watch --apps path");
        }
    }
    tokio::spawn(async move {
        let _debouncer = debouncer;
        loop {
            tokio::select! {
                () = cancel.cancelled() => return,
                event = rx.recv() => if event.is_none() { return },
            }
            send();
        }
    });
}

/// Whether a changed path is one of the `--apps` files: a file named
/// there, or a manifest file inside a folder named there. A name starting
/// with `..` counts too: Kubernetes updates a mounted ConfigMap by swapping
/// its `..data` link, so the files' own paths see no event.
fn is_apps_file(apps: &[PathBuf], changed: &Path) -> bool {
    let swapped = changed
        .file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.starts_with(".."));
    swapped
        || apps.iter().any(|root| {
            if changed == root {
                return true;
            }
            changed.starts_with(root)
                && changed
                    .extension()
                    .and_then(|e| e.to_str())
                    .is_some_and(|e| matches!(e, "yaml" | "yml" | "json"))
        })
}

/// The `applications.argoproj.io` resource.
pub fn application_resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("argoproj.io", "v1alpha1", "Application"),
        "applications",
    )
}

/// What makes an Application object worth reading again: its generation
/// (bumped by spec changes, not by status writes), labels, annotations,
/// and whether it is being deleted and with which finalizers (a deletion
/// changes neither the generation nor the spec, and must stop its syncs and
/// start its cascade at once).
fn fingerprint(object: &DynamicObject) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    object.metadata.generation.hash(&mut h);
    object.metadata.labels.hash(&mut h);
    object.metadata.annotations.hash(&mut h);
    object
        .metadata
        .deletion_timestamp
        .as_ref()
        .map(|t| t.0.to_string())
        .hash(&mut h);
    object.metadata.finalizers.hash(&mut h);
    h.finish()
}

/// The error of [`remove_resources_finalizers`].
#[derive(Debug, thiserror::Error)]
#[error("cannot remove the resources finalizer of Application {namespace}/{name}: {source}")]
pub struct FinalizerError {
    /// The Application's namespace.
    pub namespace: String,
    /// The Application's name.
    pub name: String,
    /// What the API server said (a 422 when the finalizers changed between
    /// the read and the patch: read again and retry).
    #[source]
    pub source: kube::Error,
}

/// Removes the resources finalizers (every variant) from an Application
/// object, and nothing else: the object is read, and a JSON patch removes
/// each of them by index after a `test` that the index still holds it, so
/// another controller's finalizer added or removed meanwhile makes the
/// patch fail rather than be dropped. Returns whether the object still
/// exists.
///
/// # Errors
/// When the read or the patch fails (also when the finalizers changed in
/// between: the caller retries).
pub async fn remove_resources_finalizers(
    client: kube::Client,
    namespace: &str,
    name: &str,
) -> Result<bool, FinalizerError> {
    let error = |source| FinalizerError {
        namespace: namespace.to_string(),
        name: name.to_string(),
        source,
    };
    let api: Api<DynamicObject> = Api::namespaced_with(client, namespace, &application_resource());
    let Some(object) = api.get_opt(name).await.map_err(error)? else {
        return Ok(false);
    };
    let finalizers = object.metadata.finalizers.unwrap_or_default();
    let mut operations = Vec::new();
    // From the last index down, so each removal leaves the earlier
    // indexes as they were read.
    for (i, f) in finalizers.iter().enumerate().rev() {
        if crate::cascade::is_resources_finalizer(f) {
            let path = format!("/metadata/finalizers/{i}");
            operations.push(serde_json::json!({"op": "test", "path": path, "value": f}));
            operations.push(serde_json::json!({"op": "remove", "path": path}));
        }
    }
    if operations.is_empty() {
        return Ok(true);
    }
    let patch = kube::api::Patch::Json::<()>(
        serde_json::from_value(Value::Array(operations))
            .expect("test and remove operations are a valid JSON patch"),
    );
    match api
        .patch(name, &kube::api::PatchParams::default(), &patch)
        .await
    {
        Ok(_) => Ok(true),
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(false),
        Err(e) => Err(error(e)),
    }
}

/// Decodes an Application object; a broken one is logged and skipped.
fn declared_from_object(object: DynamicObject) -> Option<Declared> {
    let value = serde_json::to_value(object).expect("a DynamicObject always serializes");
    declared_from_value(value, Origin::Cluster)
        .inspect_err(
            |e| tracing::warn!(error = %e, "ignoring an Application object that does not decode"),
        )
        .ok()
}

/// What a watch of Argo CD objects hands on: the full set after each
/// (re)list, then one object at a time.
trait Sink<T>: Send + 'static {
    /// The watched namespaces now hold exactly `all`.
    fn all(&self, all: Vec<T>);
    /// One object was added or changed (`Some`), or deleted.
    fn one(&self, namespace: &str, name: &str, object: Option<T>);
}

struct AppSink(Arc<Updates>, Watched);

impl Sink<Declared> for AppSink {
    fn all(&self, all: Vec<Declared>) {
        self.0.cluster_all(self.1.clone(), all);
    }
    fn one(&self, namespace: &str, name: &str, object: Option<Declared>) {
        match object {
            Some(d) => self.0.cluster_applied(self.1.clone(), d),
            None => self.0.cluster_deleted(self.1.clone(), namespace, name),
        }
    }
}

struct SetSink(Arc<Updates>);

impl Sink<DeclaredSet> for SetSink {
    fn all(&self, all: Vec<DeclaredSet>) {
        self.0.appset_cluster_all(all);
    }
    fn one(&self, _namespace: &str, name: &str, object: Option<DeclaredSet>) {
        self.0.appset_cluster(name, object);
    }
}

struct ProjectSink(Arc<Updates>);

impl Sink<AppProject> for ProjectSink {
    fn all(&self, all: Vec<AppProject>) {
        self.0.project_cluster_all(all);
    }
    fn one(&self, _namespace: &str, name: &str, object: Option<AppProject>) {
        self.0.project_cluster(name, object);
    }
}

/// Where a watch looks: one namespace, or every namespace whose name
/// passes a filter.
enum Scope {
    Namespace(String),
    Matching(Arc<dyn Fn(&str) -> bool + Send + Sync>),
}

/// Watches objects of `resource` in `namespace`: the full set after each
/// (re)list, then each object whose spec, labels, annotations, finalizers
/// or deletion changed ([`fingerprint`]). An update of the status alone
/// (Plumb writes it back) is dropped here, without decoding the object.
/// Objects are read as raw JSON so that unsupported fields can be reported.
fn watch_objects<T: Send + 'static>(
    client: kube::Client,
    scope: Scope,
    resource: ApiResource,
    decode: fn(DynamicObject) -> Option<T>,
    sink: impl Sink<T>,
    cancel: CancellationToken,
) {
    tokio::spawn(async move {
        let (api, wanted): (Api<DynamicObject>, _) = match scope {
            Scope::Namespace(namespace) => {
                (Api::namespaced_with(client, &namespace, &resource), None)
            }
            Scope::Matching(wanted) => (Api::all_with(client, &resource), Some(wanted)),
        };
        let wanted = |o: &DynamicObject| {
            wanted
                .as_ref()
                .is_none_or(|w| w(o.metadata.namespace.as_deref().unwrap_or_default()))
        };
        let mut stream = watcher::watcher(api, watcher::Config::default())
            .default_backoff()
            .boxed();
        // What each object looked like when last read, by namespace and name.
        let mut seen: HashMap<ObjectId, u64> = HashMap::new();
        let mut relist: Option<(Vec<T>, HashMap<ObjectId, u64>)> = None;
        let id = |o: &DynamicObject| {
            (
                o.metadata.namespace.clone().unwrap_or_default(),
                o.metadata.name.clone().unwrap_or_default(),
            )
        };
        loop {
            let event = tokio::select! {
                () = cancel.cancelled() => return,
                event = stream.next() => event,
            };
            let Some(event) = event else { return };
            match event {
                Ok(Event::Init) => relist = Some((Vec::new(), HashMap::new())),
                Ok(Event::InitApply(o)) => {
                    if let Some((objects, prints)) = relist.as_mut().filter(|_| wanted(&o)) {
                        prints.insert(id(&o), fingerprint(&o));
                        objects.extend(decode(o));
                    }
                }
                Ok(Event::InitDone) => {
                    let (objects, prints) = relist.take().unwrap_or_default();
                    seen = prints;
                    sink.all(objects);
                }
                Ok(Event::Apply(o)) if wanted(&o) => {
                    let (namespace, name) = id(&o);
                    let print = fingerprint(&o);
                    if seen.insert((namespace.clone(), name.clone()), print) == Some(print) {
                        continue;
                    }
                    if let Some(object) = decode(o) {
                        sink.one(&namespace, &name, Some(object));
                    }
                }
                Ok(Event::Delete(o)) if wanted(&o) => {
                    let (namespace, name) = id(&o);
                    seen.remove(&(namespace.clone(), name.clone()));
                    sink.one(&namespace, &name, None);
                }
                Ok(Event::Apply(_) | Event::Delete(_)) => {}
                Err(
                    watcher::Error::InitialListFailed(kube::Error::Api(s))
                    | watcher::Error::WatchStartFailed(kube::Error::Api(s)),
                ) if s.code == 403 => {
                    // Not Plumb's to mend: say it where an operator looks.
                    tracing::warn!(kind = %resource.kind, error = %s.message, "Plumb may not list or watch these objects (RBAC); retrying");
                }
                Err(e) => {
                    tracing::debug!(kind = %resource.kind, error = %e, "watch failed (is the CRD installed?); retrying");
                }
            }
        }
    });
}

/// Watches `Application` objects in the application namespace and in the
/// namespaces of `--app-namespaces` (see [`watch_objects`]): one watch per
/// named namespace, or, when a pattern matches namespaces not named, one
/// watch of every namespace whose events are filtered here.
pub fn watch_cluster(
    client: kube::Client,
    namespaces: Arc<crate::appns::AppNamespaces>,
    updates: Arc<Updates>,
    cancel: CancellationToken,
) {
    let watch = |scope, watched| {
        watch_objects(
            client.clone(),
            scope,
            application_resource(),
            declared_from_object,
            AppSink(Arc::clone(&updates), watched),
            cancel.clone(),
        );
    };
    watch(
        Scope::Namespace(namespaces.home().to_string()),
        Watched::Home,
    );
    match namespaces.exact_others() {
        Some(others) => {
            for namespace in others {
                watch(
                    Scope::Namespace(namespace.to_string()),
                    Watched::Namespace(namespace.to_string()),
                );
            }
        }
        None => {
            let filter = Arc::clone(&namespaces);
            watch(
                Scope::Matching(Arc::new(move |namespace: &str| {
                    namespace != filter.home() && filter.manages(namespace)
                })),
                Watched::Matching,
            );
        }
    }
}

/// The `applicationsets.argoproj.io` resource.
pub fn applicationset_resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("argoproj.io", "v1alpha1", "ApplicationSet"),
        "applicationsets",
    )
}

/// Decodes an ApplicationSet object; a broken one is logged and skipped.
fn declared_set_from_object(object: DynamicObject) -> Option<DeclaredSet> {
    let value = serde_json::to_value(object).expect("a DynamicObject always serializes");
    appset_from_value(value, true)
        .inspect_err(|e| {
            tracing::warn!(error = %e, "ignoring an ApplicationSet object that does not decode");
        })
        .ok()
}

/// Watches `ApplicationSet` objects in `namespace` (see [`watch_objects`]).
pub fn watch_appsets(
    client: kube::Client,
    namespace: String,
    updates: Arc<Updates>,
    cancel: CancellationToken,
) {
    watch_objects(
        client,
        Scope::Namespace(namespace),
        applicationset_resource(),
        declared_set_from_object,
        SetSink(updates),
        cancel,
    );
}

/// The `appprojects.argoproj.io` resource.
pub fn appproject_resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("argoproj.io", "v1alpha1", "AppProject"),
        "appprojects",
    )
}

/// Decodes an AppProject object; a broken one is logged and skipped (its
/// applications then find no project and are refused).
fn project_from_object(object: DynamicObject) -> Option<AppProject> {
    let value = serde_json::to_value(object).expect("a DynamicObject always serializes");
    project_from_value(value)
        .inspect_err(|e| {
            tracing::warn!(error = %e, "ignoring an AppProject object that does not decode");
        })
        .ok()
}

/// Watches `AppProject` objects in `namespace` (see [`watch_objects`]).
pub fn watch_projects(
    client: kube::Client,
    namespace: String,
    updates: Arc<Updates>,
    cancel: CancellationToken,
) {
    watch_objects(
        client,
        Scope::Namespace(namespace),
        appproject_resource(),
        project_from_object,
        ProjectSink(updates),
        cancel,
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_apps_files_count_as_changes() {
        let apps = [PathBuf::from("/w/apps.yaml"), PathBuf::from("/w/more")];
        assert!(is_apps_file(&apps, Path::new("/w/apps.yaml")));
        assert!(is_apps_file(&apps, Path::new("/w/more/team/a.yml")));
        // The data directory beside the apps file, and non-manifest files.
        assert!(!is_apps_file(&apps, Path::new("/w/data/db")));
        assert!(!is_apps_file(&apps, Path::new("/w/other.yaml")));
        assert!(!is_apps_file(&apps, Path::new("/w/more/.apps.yaml.swp")));
        // A mounted ConfigMap changes by swapping its `..data` link.
        assert!(is_apps_file(&apps, Path::new("/w/..data")));
        assert!(is_apps_file(&apps, Path::new("/w/..2026_11_22_07_00.123")));
    }

    #[test]
    fn load_files_reads_applications_and_reports_unsupported_fields() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(
            dir.path().join("apps.yaml"),
            "apiVersion: argoproj.io/v1alpha1\nkind: Application\nmetadata: {name: one}\nspec:\n  source: {repoURL: /r, path: a, plugin: {}}\n  destination: {namespace: x}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: ignored}\n---\napiVersion: argoproj.io/v1alpha1\nkind: Application\nmetadata: {name: two}\nspec: {destination: {namespace: y}}\n",
        )
        .expect("write");
        std::fs::write(dir.path().join("notes.txt"), "not yaml: [").expect("write");
        let apps = load_files(&[dir.path().to_path_buf()]).expect("load");
        let names: Vec<_> = apps
            .iter()
            .map(|d| d.app.metadata.name.clone().unwrap_or_default())
            .collect();
        assert_eq!(names, ["one", "two"]);
        assert_eq!(apps[0].unsupported, ["spec.source.plugin"]);
    }

    fn app_yaml(name: &str) -> String {
        format!(
            "apiVersion: argoproj.io/v1alpha1\nkind: Application\nmetadata: {{name: {name}}}\nspec: {{}}\n"
        )
    }

    /// Waits for the next snapshot and returns its application names.
    async fn next_names(updates: &Updates) -> Vec<String> {
        let mut batch = tokio::time::timeout(Duration::from_secs(20), updates.next())
            .await
            .expect("a snapshot within 20 s");
        // The files' AppProjects, Applications, then ApplicationSets.
        assert_eq!(batch.len(), 3, "{batch:?}");
        assert!(
            matches!(batch[0], SourceUpdate::ProjectFiles(Ok(_))),
            "{batch:?}"
        );
        assert!(
            matches!(batch[2], SourceUpdate::AppSetFiles(Ok(_))),
            "{batch:?}"
        );
        batch.remove(0);
        match batch.remove(0) {
            SourceUpdate::Files(Ok(apps)) => apps
                .iter()
                .map(|d| d.app.metadata.name.clone().unwrap_or_default())
                .collect(),
            other => panic!("unexpected update {other:?}"),
        }
    }

    #[tokio::test]
    async fn a_mounted_configmap_swapping_its_data_link_is_seen_and_data_dir_writes_are_not() {
        // The layout kubelet gives a ConfigMap volume: apps.yaml -> ..data/apps.yaml,
        // ..data -> ..<timestamp>; an update writes a new timestamp folder
        // and renames a new ..data link over the old one.
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path();
        std::fs::create_dir(root.join("..v1")).expect("mkdir");
        std::fs::write(root.join("..v1/apps.yaml"), app_yaml("first")).expect("write");
        std::os::unix::fs::symlink("..v1", root.join("..data")).expect("link");
        std::os::unix::fs::symlink("..data/apps.yaml", root.join("apps.yaml")).expect("link");

        let updates = Arc::new(Updates::default());
        let cancel = CancellationToken::new();
        watch_files(
            vec![root.join("apps.yaml")],
            Arc::clone(&updates),
            cancel.clone(),
        );
        assert_eq!(next_names(&updates).await, ["first"]);

        // A data directory beside the file: its writes are not edits.
        std::fs::create_dir_all(root.join("data/store")).expect("mkdir");
        std::fs::write(root.join("data/store/db"), "x").expect("write");
        std::fs::write(root.join("data/store/db"), "y").expect("write");

        std::fs::create_dir(root.join("..v2")).expect("mkdir");
        std::fs::write(root.join("..v2/apps.yaml"), app_yaml("second")).expect("write");
        std::os::unix::fs::symlink("..v2", root.join("..data_tmp")).expect("link");
        std::fs::rename(root.join("..data_tmp"), root.join("..data")).expect("swap");
        // The next snapshot is the swapped content; the data dir writes
        // before it caused none.
        assert_eq!(next_names(&updates).await, ["second"]);
        cancel.cancel();
    }

    #[test]
    fn a_stream_splits_into_its_documents_at_marker_lines_only() {
        let docs: Vec<&str> =
            documents("---\na: 1\n---\nb: |\n  text\n  ---\n  more\n--- {c: 3}\n---\n\n").collect();
        assert_eq!(
            docs,
            [
                "a: 1\n",
                "b: |\n  text\n  ---\n  more\n",
                "--- {c: 3}\n",
                "\n"
            ]
        );
        let values: Vec<Value> = docs
            .iter()
            .map(|d| serde_yaml::from_str(d).expect("each document parses"))
            .collect();
        assert_eq!(values[1]["b"], "text\n---\nmore\n");
        assert_eq!(values[2]["c"], 3);
        assert!(values[3].is_null());
        assert_eq!(documents("x: 1").collect::<Vec<_>>(), ["x: 1"]);
    }

    #[test]
    fn malformed_file_fails_the_whole_read_with_the_document() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("apps.yaml");
        std::fs::write(&file, "apiVersion: argoproj.io/v1alpha1\nkind: Application\nmetadata: {name: ok}\nspec: {}\n---\nkind: [\n").expect("write");
        let err = load_files(&[file]).expect_err("malformed").to_string();
        assert!(err.contains("apps.yaml document 2"), "{err}");
    }

    fn declared(name: &str, path: &str) -> Declared {
        declared_in("plumb", name, path)
    }

    fn declared_in(namespace: &str, name: &str, path: &str) -> Declared {
        let value = serde_json::json!({
            "apiVersion": "argoproj.io/v1alpha1", "kind": "Application",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {"source": {"repoURL": "file:///r", "path": path}}
        });
        declared_from_value(value, Origin::Cluster).expect("valid")
    }

    fn describe(batch: &[SourceUpdate]) -> Vec<String> {
        batch
            .iter()
            .map(|u| match u {
                SourceUpdate::Files(_) => "files".to_string(),
                SourceUpdate::ClusterAll(watched, apps) => {
                    format!("all:{watched:?}:{}", apps.len())
                }
                SourceUpdate::ClusterApplied(d) => format!(
                    "applied:{}:{}",
                    d.app.metadata.name.as_deref().unwrap_or_default(),
                    d.app
                        .spec
                        .source
                        .as_ref()
                        .and_then(|s| s.path.as_deref())
                        .unwrap_or_default()
                ),
                SourceUpdate::ClusterDeleted(namespace, name) => {
                    format!("deleted:{namespace}/{name}")
                }
                SourceUpdate::AppSetFiles(_) => "appset files".to_string(),
                SourceUpdate::AppSetClusterAll(_) | SourceUpdate::AppSetCluster(..) => {
                    "appset objects".to_string()
                }
                SourceUpdate::ProjectFiles(_)
                | SourceUpdate::ProjectClusterAll(_)
                | SourceUpdate::ProjectCluster(..) => "projects".to_string(),
            })
            .collect()
    }

    #[tokio::test]
    async fn waiting_updates_coalesce_per_application() {
        let updates = Updates::default();
        let home = || Watched::Home;
        updates.cluster_applied(home(), declared("a", "v1"));
        updates.cluster_applied(home(), declared("b", "v1"));
        updates.cluster_applied(home(), declared("a", "v2"));
        updates.cluster_deleted(home(), "plumb", "b");
        updates.files(Ok(Vec::new()));
        updates.files(Ok(vec![declared("f", "x")]));
        updates.files(Err("a half-written file".into()));
        let batch = updates.next().await;
        assert_eq!(
            describe(&batch),
            ["files", "applied:a:v2", "deleted:plumb/b"]
        );
        assert!(
            matches!(&batch[0], SourceUpdate::Files(Ok(apps)) if apps.len() == 1),
            "the good read waiting is not replaced by a failed one"
        );
        // A relist replaces the single changes still waiting.
        updates.cluster_applied(home(), declared("c", "v1"));
        updates.cluster_all(home(), vec![declared("a", "v3"), declared("d", "v1")]);
        updates.cluster_applied(home(), declared("d", "v2"));
        assert_eq!(
            describe(&updates.next().await),
            ["all:Home:2", "applied:d:v2"]
        );
        // Another namespace's relist replaces its own changes only; the
        // same name in two namespaces is two objects.
        let team = || Watched::Namespace("team".into());
        updates.cluster_applied(home(), declared("a", "v4"));
        updates.cluster_applied(team(), declared_in("team", "a", "t1"));
        updates.cluster_applied(team(), declared_in("team", "b", "t1"));
        updates.cluster_all(team(), vec![declared_in("team", "b", "t2")]);
        assert_eq!(
            describe(&updates.next().await),
            ["all:Namespace(\"team\"):1", "applied:a:v4"]
        );
    }

    #[test]
    fn a_status_write_leaves_the_fingerprint_alone() {
        let object = |generation: i64, labels: serde_json::Value, status: &str| -> DynamicObject {
            serde_json::from_value(serde_json::json!({
                "apiVersion": "argoproj.io/v1alpha1", "kind": "Application",
                "metadata": {"name": "a", "generation": generation, "labels": labels,
                             "resourceVersion": status},
                "spec": {}, "status": {"sync": {"status": status}}
            }))
            .expect("valid object")
        };
        let first = fingerprint(&object(1, serde_json::json!({"team": "a"}), "Synced"));
        assert_eq!(
            first,
            fingerprint(&object(1, serde_json::json!({"team": "a"}), "OutOfSync")),
            "status and resourceVersion do not count"
        );
        assert_ne!(
            first,
            fingerprint(&object(2, serde_json::json!({"team": "a"}), "Synced"))
        );
        assert_ne!(
            first,
            fingerprint(&object(1, serde_json::json!({"team": "b"}), "Synced"))
        );
        let mut deleting = object(1, serde_json::json!({"team": "a"}), "Synced");
        deleting.metadata.finalizers = Some(vec![crate::cascade::RESOURCES_FINALIZER.into()]);
        let with_finalizer = fingerprint(&deleting);
        assert_ne!(first, with_finalizer, "a finalizer counts");
        deleting.metadata.deletion_timestamp = Some(
            serde_json::from_value(serde_json::json!("2026-01-01T00:00:00Z")).expect("a timestamp"),
        );
        assert_ne!(
            with_finalizer,
            fingerprint(&deleting),
            "a deletion counts: it arrives as an update"
        );
    }

    #[test]
    fn an_application_without_a_name_is_refused() {
        let value = serde_json::json!({"apiVersion": "argoproj.io/v1alpha1", "kind": "Application", "metadata": {}});
        assert!(declared_from_value(value, Origin::Cluster).is_err());
    }
}
