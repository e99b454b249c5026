//! The `--source appset` side of the harness: the one ApplicationSet whose
//! git `directories` generator turns the fixture's folders into the same
//! Applications the `--apps` file declares, the watch that times their
//! creation, and the `ApplicationSet pass` lines of Plumb's log.
//!
//! Not here: starting Plumb or reading its API (`plumb`), the fixture
//! itself (`fixture`).

use std::collections::HashSet;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use futures::StreamExt;
use kube::api::{Api, DynamicObject, ListParams, Patch, PatchParams, WatchEvent, WatchParams};
use kube::core::{ApiResource, GroupVersionKind};
use serde_json::{Value, json};

use crate::fixture::Fixture;

/// The ApplicationSet's name.
pub const NAME: &str = "bench";

/// The label Plumb puts on every Application an ApplicationSet generates.
pub const LABEL: &str = "plumb.dev/applicationset";

/// `PLUMB_LOG` for the appset source: warnings, and the pass lines.
pub const LOG_FILTER: &str = "warn,plumb_engine::controller::appsets=info";

fn resource(kind: &str, plural: &str) -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("argoproj.io", "v1alpha1", kind),
        plural,
    )
}

/// The ApplicationSet: one parameter set per `apps/*` folder, rendered
/// into the Application the `--apps` file holds for that folder (name
/// `b<run>-<i>`, destination `bench-<run>-<i mod namespaces>`, automated
/// sync with prune, `CreateNamespace=true`). The index comes back from the
/// folder's name (`app-00042`). `preserveResourcesOnDeletion` keeps the
/// resources finalizer off, as the file's Applications have none (and the
/// harness's cleanup deletes the namespace after Plumb has stopped).
pub fn manifest(fx: &Fixture, run: &str, namespace: &str, namespaces: usize) -> Value {
    let index = r#"(atoi (trimPrefix "app-" .path.basename))"#;
    json!({
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "ApplicationSet",
        "metadata": {"name": NAME, "namespace": namespace},
        "spec": {
            "goTemplate": true,
            "goTemplateOptions": ["missingkey=error"],
            "generators": [{"git": {
                "repoURL": fx.repo_url,
                "revision": "main",
                "directories": [{"path": "apps/*"}]
            }}],
            "syncPolicy": {"preserveResourcesOnDeletion": true},
            "template": {
                "metadata": {"name": format!(r#"b{run}-{{{{ trimPrefix "app-" .path.basename }}}}"#)},
                "spec": {
                    "project": "default",
                    "source": {"repoURL": fx.repo_url, "targetRevision": "main", "path": "{{ .path.path }}"},
                    "destination": {
                        "server": "https://kubernetes.default.svc",
                        "namespace": format!("bench-{run}-{{{{ mod {index} {} }}}}", namespaces.max(1))
                    },
                    "syncPolicy": {
                        "automated": {"prune": true},
                        "syncOptions": ["CreateNamespace=true"]
                    }
                }
            }
        }
    })
}

/// Checks that `generated` (the output of `plumb appset generate -o json`)
/// holds exactly the fixture's Applications: same names, paths and
/// destination namespaces, automated sync with prune.
pub fn check_generated(fx: &Fixture, generated: &[Value]) -> Result<()> {
    if generated.len() != fx.applications.len() {
        bail!(
            "the ApplicationSet generated {} Applications, the fixture has {}",
            generated.len(),
            fx.applications.len()
        );
    }
    let by_name: std::collections::HashMap<&str, &Value> = generated
        .iter()
        .filter_map(|a| Some((a.pointer("/metadata/name")?.as_str()?, a)))
        .collect();
    for want in &fx.applications {
        let name = want["metadata"]["name"].as_str().unwrap_or_default();
        let Some(got) = by_name.get(name) else {
            bail!("the ApplicationSet generated no Application {name}");
        };
        for field in [
            "/spec/source/repoURL",
            "/spec/source/path",
            "/spec/source/targetRevision",
            "/spec/destination/namespace",
            "/spec/destination/server",
            "/spec/syncPolicy",
            "/spec/project",
        ] {
            if got.pointer(field) != want.pointer(field) {
                bail!(
                    "Application {name}: {field} is {:?}, the fixture's is {:?}",
                    got.pointer(field),
                    want.pointer(field)
                );
            }
        }
    }
    Ok(())
}

/// Creates the ApplicationSet object.
pub async fn create(client: &kube::Client, namespace: &str, manifest: &Value) -> Result<()> {
    let api: Api<DynamicObject> = Api::namespaced_with(
        client.clone(),
        namespace,
        &resource("ApplicationSet", "applicationsets"),
    );
    api.patch(
        NAME,
        &PatchParams::apply("bench").force(),
        &Patch::Apply(manifest),
    )
    .await
    .with_context(|| format!("create ApplicationSet {namespace}/{NAME}"))?;
    Ok(())
}

/// Sets the annotation `plumb.dev/bench-touch` on the ApplicationSet: a
/// change that makes Plumb run a pass without changing what it generates.
pub async fn touch(client: &kube::Client, namespace: &str, value: &str) -> Result<()> {
    let api: Api<DynamicObject> = Api::namespaced_with(
        client.clone(),
        namespace,
        &resource("ApplicationSet", "applicationsets"),
    );
    let patch = json!({"metadata": {"annotations": {"plumb.dev/bench-touch": value}}});
    api.patch(NAME, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .with_context(|| format!("annotate ApplicationSet {namespace}/{NAME}"))?;
    Ok(())
}

/// When the generated Applications appeared, from the harness's watch.
pub struct Created {
    /// The first one.
    pub first: Option<Duration>,
    /// The `expected`-th distinct one.
    pub all: Option<Duration>,
    /// How many distinct ones were seen.
    pub seen: usize,
}

/// Watches the Applications with the ApplicationSet's label in `namespace`
/// from now on, until `expected` distinct names were added or `timeout`
/// passed; times are from `since`. Starts the watch before returning, so
/// nothing created after the call is missed.
pub async fn watch_created(
    client: &kube::Client,
    namespace: &str,
    expected: usize,
    since: Instant,
    timeout: Duration,
) -> Result<tokio::task::JoinHandle<Created>> {
    let api: Api<DynamicObject> = Api::namespaced_with(
        client.clone(),
        namespace,
        &resource("Application", "applications"),
    );
    let selector = format!("{LABEL}={NAME}");
    let list = api
        .list_metadata(&ListParams::default().labels(&selector))
        .await
        .with_context(|| format!("list Applications in {namespace}"))?;
    let mut version = list.metadata.resource_version.unwrap_or_default();
    let mut names: HashSet<String> = list
        .items
        .into_iter()
        .filter_map(|o| o.metadata.name)
        .collect();
    Ok(tokio::spawn(async move {
        let mut first = (!names.is_empty()).then(|| since.elapsed());
        while names.len() < expected && since.elapsed() < timeout {
            let params = WatchParams::default().labels(&selector).timeout(60);
            let Ok(stream) = api.watch(&params, &version).await else {
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            };
            let mut stream = stream.boxed();
            while let Some(event) = stream.next().await {
                match event {
                    Ok(WatchEvent::Added(o)) | Ok(WatchEvent::Modified(o)) => {
                        if let Some(v) = o.metadata.resource_version.clone() {
                            version = v;
                        }
                        if let Some(name) = o.metadata.name
                            && names.insert(name)
                            && first.is_none()
                        {
                            first = Some(since.elapsed());
                        }
                    }
                    Ok(WatchEvent::Bookmark(b)) => version = b.metadata.resource_version,
                    Ok(WatchEvent::Deleted(_)) => {}
                    // Too old a version: start again from a list.
                    Ok(WatchEvent::Error(_)) | Err(_) => {
                        if let Ok(list) = api
                            .list_metadata(&ListParams::default().labels(&selector))
                            .await
                        {
                            version = list.metadata.resource_version.unwrap_or_default();
                            names.extend(list.items.into_iter().filter_map(|o| o.metadata.name));
                        }
                        break;
                    }
                }
                if names.len() >= expected {
                    break;
                }
            }
        }
        Created {
            first,
            all: (names.len() >= expected).then(|| since.elapsed()),
            seen: names.len(),
        }
    }))
}

/// One `ApplicationSet pass` line of Plumb's log (JSON format).
#[derive(Clone, Debug, Default)]
pub struct Pass {
    pub created: u64,
    pub updated: u64,
    pub deleted: u64,
    pub unchanged: u64,
    pub errors: u64,
    pub elapsed_ms: u64,
}

impl Pass {
    /// `created 0, updated 0, deleted 0, unchanged 10000, errors 0`.
    pub fn counts(&self) -> String {
        format!(
            "created {}, updated {}, deleted {}, unchanged {}, errors {}",
            self.created, self.updated, self.deleted, self.unchanged, self.errors
        )
    }

    /// Whether the pass wrote no Application.
    pub fn wrote_nothing(&self) -> bool {
        self.created == 0 && self.updated == 0 && self.deleted == 0
    }
}

/// The pass lines in Plumb's log so far, in order.
pub fn passes(log: &Path) -> Vec<Pass> {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    text.lines()
        .filter(|l| l.contains("ApplicationSet pass"))
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["fields"]["message"] == "ApplicationSet pass")
        .map(|v| {
            let f = &v["fields"];
            let n = |k: &str| f[k].as_u64().unwrap_or(0);
            Pass {
                created: n("created"),
                updated: n("updated"),
                deleted: n("deleted"),
                unchanged: n("unchanged"),
                errors: n("errors"),
                elapsed_ms: n("elapsed_ms"),
            }
        })
        .collect()
}

/// The error of the first pass that failed before applying anything.
fn failed_pass(log: &Path) -> Option<String> {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    text.lines()
        .filter(|l| l.contains("ApplicationSet pass changed nothing"))
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find_map(|v| Some(v["fields"]["error"].as_str()?.to_owned()))
}

/// Waits (polling the log every 20 ms) until Plumb logged more than
/// `before` pass lines; returns the time from `since` and the first new
/// line.
pub async fn wait_pass(
    log: &Path,
    before: usize,
    since: Instant,
    timeout: Duration,
) -> Result<(Duration, Pass)> {
    loop {
        let all = passes(log);
        if all.len() > before {
            return Ok((since.elapsed(), all[before].clone()));
        }
        if let Some(error) = failed_pass(log) {
            bail!("an ApplicationSet pass changed nothing: {error}");
        }
        if since.elapsed() > timeout {
            bail!("Plumb logged no ApplicationSet pass within {timeout:?}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
