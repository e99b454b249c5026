//! Where applications come from: `--apps` files and folders of
//! multi-document YAML (watched with notify), and `Application` objects in
//! Plumb's namespace (watched through the API). Each source reports the full
//! set it holds; the controller adds, changes and forgets applications.
//!
//! It parses and watches; it does not reconcile.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
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

use crate::model::{Application, unsupported_fields};

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
}

/// A full snapshot of one source's applications, or the error reading it.
#[derive(Debug)]
pub enum SourceUpdate {
    /// Applications from `--apps` (all files together).
    Files(Result<Vec<Declared>, String>),
    /// Applications from the cluster namespace.
    Cluster(Vec<Declared>),
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
    let app: Application = serde_json::from_value(value).map_err(|e| e.to_string())?;
    if app.metadata.name.as_deref().unwrap_or("").is_empty() {
        return Err("an Application needs metadata.name".into());
    }
    Ok(Declared {
        app,
        unsupported,
        origin,
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

/// Reads every Application in the given files and folders (recursively;
/// `.yaml`, `.yml`, `.json`). Other kinds of documents are ignored.
///
/// # Errors
/// A missing or unreadable path, or a malformed document, fails the whole
/// read so that a half-edited file never removes applications.
pub fn load_files(paths: &[PathBuf]) -> Result<Vec<Declared>, RegistryError> {
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
        for (i, doc) in serde_yaml::Deserializer::from_str(&text).enumerate() {
            let invalid = |message: String| RegistryError::Invalid {
                path: file.display().to_string(),
                document: i + 1,
                message,
            };
            let value = Value::deserialize_from(doc).map_err(|e| invalid(e.to_string()))?;
            if value.is_null() {
                continue;
            }
            let is_app = value.get("kind").and_then(Value::as_str) == Some("Application")
                && value
                    .get("apiVersion")
                    .and_then(Value::as_str)
                    .is_some_and(|v| v.starts_with("argoproj.io/"));
            if !is_app {
                continue;
            }
            out.push(declared_from_value(value, Origin::File(file.clone())).map_err(invalid)?);
        }
    }
    Ok(out)
}

/// Small helper so a YAML document can be read straight into JSON.
trait DeserializeFrom: Sized {
    fn deserialize_from(doc: serde_yaml::Deserializer<'_>) -> Result<Self, serde_yaml::Error>;
}

impl DeserializeFrom for Value {
    fn deserialize_from(doc: serde_yaml::Deserializer<'_>) -> Result<Self, serde_yaml::Error> {
        serde::Deserialize::deserialize(doc)
    }
}

/// Reads `--apps` now and again whenever a file under them changes, sending
/// each snapshot. Runs until `cancel` fires.
pub fn watch_files(
    paths: Vec<PathBuf>,
    updates: mpsc::UnboundedSender<SourceUpdate>,
    cancel: CancellationToken,
) {
    // Absolute, so that the paths events carry compare equal to them.
    let paths: Vec<PathBuf> = paths
        .into_iter()
        .map(|p| std::path::absolute(&p).unwrap_or(p))
        .collect();
    let send = {
        let updates = updates.clone();
        let paths = paths.clone();
        move || {
            let _ = updates.send(SourceUpdate::Files(
                load_files(&paths).map_err(|e| e.to_string()),
            ));
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

/// Watches `Application` objects in `namespace`, sending a full snapshot
/// after each change. Objects are read as raw JSON so that unsupported fields
/// can be reported.
pub fn watch_cluster(
    client: kube::Client,
    namespace: String,
    updates: mpsc::UnboundedSender<SourceUpdate>,
    cancel: CancellationToken,
) {
    tokio::spawn(async move {
        let api: Api<DynamicObject> =
            Api::namespaced_with(client, &namespace, &application_resource());
        let mut stream = watcher::watcher(api, watcher::Config::default())
            .default_backoff()
            .boxed();
        let mut current: BTreeMap<String, Value> = BTreeMap::new();
        let mut buffer: Option<BTreeMap<String, Value>> = None;
        loop {
            let event = tokio::select! {
                () = cancel.cancelled() => return,
                event = stream.next() => event,
            };
            let Some(event) = event else { return };
            let changed = match event {
                Ok(Event::Init) => {
                    buffer = Some(BTreeMap::new());
                    false
                }
                Ok(Event::InitApply(o)) => {
                    if let (Some(b), Some(name)) = (buffer.as_mut(), o.metadata.name.clone()) {
                        b.insert(
                            name,
                            serde_json::to_value(o).expect("a DynamicObject always serializes"),
                        );
                    }
                    false
                }
                Ok(Event::InitDone) => {
                    current = buffer.take().unwrap_or_default();
                    true
                }
                Ok(Event::Apply(o)) => {
                    let name = o.metadata.name.clone().unwrap_or_default();
                    current.insert(
                        name,
                        serde_json::to_value(o).expect("a DynamicObject always serializes"),
                    );
                    true
                }
                Ok(Event::Delete(o)) => {
                    current.remove(o.metadata.name.as_deref().unwrap_or_default());
                    true
                }
                Err(e) => {
                    tracing::debug!(error = %e, "Application watch failed (is the CRD installed?); retrying");
                    false
                }
            };
            if changed {
                let apps = current
                    .values()
                    .filter_map(|v| match declared_from_value(v.clone(), Origin::Cluster) {
                        Ok(d) => Some(d),
                        Err(e) => {
                            tracing::warn!(error = %e, "ignoring an Application object that does not decode");
                            None
                        }
                    })
                    .collect();
                let _ = updates.send(SourceUpdate::Cluster(apps));
            }
        }
    });
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
            "apiVersion: argoproj.io/v1alpha1\nkind: Application\nmetadata: {name: one}\nspec:\n  source: {repoURL: /r, path: a, helm: {}}\n  destination: {namespace: x}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: ignored}\n---\napiVersion: argoproj.io/v1alpha1\nkind: Application\nmetadata: {name: two}\nspec: {destination: {namespace: y}}\n",
        )
        .expect("write");
        std::fs::write(dir.path().join("notes.txt"), "not yaml: [").expect("write");
        let apps = load_files(&[dir.path().to_path_buf()]).expect("load");
        let names: Vec<_> = apps
            .iter()
            .map(|d| d.app.metadata.name.clone().unwrap_or_default())
            .collect();
        assert_eq!(names, ["one", "two"]);
        assert_eq!(apps[0].unsupported, ["spec.source.helm"]);
    }

    fn app_yaml(name: &str) -> String {
        format!(
            "apiVersion: argoproj.io/v1alpha1\nkind: Application\nmetadata: {{name: {name}}}\nspec: {{}}\n"
        )
    }

    /// Waits for the next snapshot and returns its application names.
    async fn next_names(rx: &mut mpsc::UnboundedReceiver<SourceUpdate>) -> Vec<String> {
        let update = tokio::time::timeout(Duration::from_secs(20), rx.recv())
            .await
            .expect("a snapshot within 20 s")
            .expect("the watcher is running");
        match update {
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

        let (tx, mut rx) = mpsc::unbounded_channel();
        let cancel = CancellationToken::new();
        watch_files(vec![root.join("apps.yaml")], tx, cancel.clone());
        assert_eq!(next_names(&mut rx).await, ["first"]);

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
        assert_eq!(next_names(&mut rx).await, ["second"]);
        cancel.cancel();
    }

    #[test]
    fn malformed_file_fails_the_whole_read_with_the_document() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("apps.yaml");
        std::fs::write(&file, "apiVersion: argoproj.io/v1alpha1\nkind: Application\nmetadata: {name: ok}\nspec: {}\n---\nkind: [\n").expect("write");
        let err = load_files(&[file]).expect_err("malformed").to_string();
        assert!(err.contains("apps.yaml document 2"), "{err}");
    }

    #[test]
    fn an_application_without_a_name_is_refused() {
        let value = serde_json::json!({"apiVersion": "argoproj.io/v1alpha1", "kind": "Application", "metadata": {}});
        assert!(declared_from_value(value, Origin::Cluster).is_err());
    }
}
