//! Hooks that are real Jobs, end to end: the node simulator runs their
//! Pods, the real Job and Deployment controllers make them Complete,
//! Failed or Available, and the cluster's own records (timestamps, uids,
//! conditions, what a watch saw) show that Plumb ran each hook in its
//! phase. A PreSync migration runs before the Deployment changes and a
//! PostSync Job once it is Healthy; `HookSucceeded` deletes a Job while
//! `BeforeHookCreation` keeps one until the next sync replaces it; a
//! failing PreSync Job stops the sync, and the operation ends only after
//! its SyncFail Job; Helm's hooks from a chart the real `helm` renders.
//! (ConfigMap hooks, `generateName`, `Skip`: tests/hooks.rs.)
//!
//! A Job's Pod "runs" for two seconds on the simulated nodes, then exits 0,
//! or 1 for `command: [false]` (README, "The local control plane").

mod support;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use futures::StreamExt;
use kube::api::{Api, DynamicObject, ListParams};
use kube::core::ApiResource;
use kube::runtime::{WatchStreamExt, watcher};
use serde_json::{Value, json};
use support::{
    GitRepo, Plumb, TestNamespace, application, application_with, configmaps, eventually,
    get_object, resource, str_at,
};

const WAIT: Duration = Duration::from_secs(120);
const HOOK: &str = "argocd.argoproj.io/hook";
const DELETE_POLICY: &str = "argocd.argoproj.io/hook-delete-policy";
const AUTO: &str = "  syncPolicy:\n    automated: {prune: true, selfHeal: true}\n";

fn jobs() -> ApiResource {
    resource("batch", "v1", "Job", "jobs")
}

fn deployments() -> ApiResource {
    resource("apps", "v1", "Deployment", "deployments")
}

fn replicasets() -> ApiResource {
    resource("apps", "v1", "ReplicaSet", "replicasets")
}

fn pods() -> ApiResource {
    resource("", "v1", "Pod", "pods")
}

/// Names unique to one test (tests share one cluster).
fn unique(ns: &TestNamespace, base: &str) -> String {
    format!("{base}-{}", &ns.name[ns.name.len() - 8..])
}

/// A Deployment of one replica of `image`.
fn deployment(name: &str, image: &str) -> String {
    format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: {name}\nspec:\n  replicas: 1\n  selector:\n    matchLabels: {{app: {name}}}\n  template:\n    metadata:\n      labels: {{app: {name}}}\n    spec:\n      containers:\n        - name: main\n          image: {image}\n"
    )
}

/// A Job of one Pod that is never retried, with `annotations` on the Job
/// (its hook annotations) and the container's `command` (a YAML flow
/// sequence; empty: the container exits 0).
fn job(name: &str, annotations: &[(&str, &str)], command: &str) -> String {
    let mut text = format!("apiVersion: batch/v1\nkind: Job\nmetadata:\n  name: {name}\n");
    if !annotations.is_empty() {
        text.push_str("  annotations:\n");
        for (k, v) in annotations {
            text.push_str(&format!("    {k}: \"{v}\"\n"));
        }
    }
    text.push_str(
        "spec:\n  backoffLimit: 0\n  template:\n    spec:\n      restartPolicy: Never\n      containers:\n        - name: main\n          image: busybox:1.36\n",
    );
    if !command.is_empty() {
        text.push_str(&format!("          command: {command}\n"));
    }
    text
}

/// An object that must exist.
async fn object(ar: &ApiResource, ns: &str, name: &str) -> Result<Value> {
    get_object(ar, ns, name)
        .await?
        .with_context(|| format!("{} {ns}/{name} exists", ar.kind))
}

fn uid(object: &Value) -> &str {
    str_at(object, "/metadata/uid")
}

/// The condition `type_` of an object's status, `None` when absent.
fn condition<'a>(object: &'a Value, type_: &str) -> Option<&'a Value> {
    object
        .pointer("/status/conditions")?
        .as_array()?
        .iter()
        .find(|c| c["type"] == type_)
}

/// Whether a Job's `Complete` condition is True.
fn complete(job: &Value) -> bool {
    condition(job, "Complete").is_some_and(|c| c["status"] == "True")
}

/// Whether a Deployment is rolled out to `image`: what Argo CD's health
/// calls Healthy (every replica updated and available, no old one left,
/// the current generation observed).
fn rolled_out(web: &Value, image: &str) -> bool {
    let int = |p: &str| web.pointer(p).and_then(Value::as_i64).unwrap_or(-1);
    let replicas = int("/spec/replicas");
    str_at(web, "/spec/template/spec/containers/0/image") == image
        && int("/status/observedGeneration") >= int("/metadata/generation")
        && int("/status/updatedReplicas") == replicas
        && int("/status/replicas") == replicas
        && int("/status/availableReplicas") == replicas
}

/// A moment as the API server writes it (RFC 3339, UTC), orderable:
/// the second, then the fraction (Kubernetes' timestamps have none, so
/// two of them within one second compare equal).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Stamp(String, String);

/// The moment at `pointer` of `v`.
fn stamp(v: &Value, pointer: &str) -> Result<Stamp> {
    let text = str_at(v, pointer);
    let Some(rest) = text.strip_suffix('Z').filter(|t| t.len() >= 19) else {
        bail!("{pointer} is not a UTC timestamp: {text:?} in {v}");
    };
    let (second, fraction) = rest.split_at(19);
    Ok(Stamp(
        second.to_string(),
        fraction.trim_start_matches('.').to_string(),
    ))
}

/// Waits until the application's last operation has ended in `phase` at
/// `revision`; returns the application.
async fn wait_operation(plumb: &Plumb, app: &str, revision: &str, phase: &str) -> Result<Value> {
    eventually(
        &format!("{app}'s sync of {revision} is {phase}"),
        WAIT,
        || async move {
            let doc = plumb.app(app).await?;
            let op = &doc["status"]["operationState"];
            let done = op["phase"] == phase && op["syncResult"]["revision"] == revision;
            Ok(done.then_some(doc))
        },
    )
    .await
    .with_context(|| format!("plumb log:\n{}", plumb.log_text()))
}

/// The last operation's result for the hook `kind`/`name`.
fn hook_result<'a>(doc: &'a Value, kind: &str, name: &str) -> Option<&'a Value> {
    doc["status"]["operationState"]["syncResult"]["resources"]
        .as_array()?
        .iter()
        .rev()
        .find(|r| r["kind"] == kind && r["name"] == name && r.get("hookType").is_some())
}

/// Asserts that the last operation lists the hook Job `name` with this
/// hook type, hook phase and sync phase.
fn assert_hook(doc: &Value, name: &str, hook_type: &str, hook_phase: &str) {
    let results = &doc["status"]["operationState"]["syncResult"]["resources"];
    let r = hook_result(doc, "Job", name)
        .unwrap_or_else(|| panic!("hook Job {name} is among the results: {results:#}"));
    assert_eq!(
        (
            str_at(r, "/hookType"),
            str_at(r, "/hookPhase"),
            str_at(r, "/syncPhase")
        ),
        (hook_type, hook_phase, hook_type),
        "{r}"
    );
}

/// One object a [`Recorder`] saw.
#[derive(Clone, Debug)]
struct Record {
    /// When it was first seen (the watch's event count then).
    first: usize,
    /// Its last version seen.
    last: Value,
    /// When it was seen deleted, if it was.
    deleted: Option<usize>,
}

/// What one watch of a kind in a namespace saw, from before a sync on:
/// every object (by uid) in its last version, whether and when it was
/// deleted, in the order the API server delivered the events. The
/// cluster's own record, which keeps objects that lived only briefly.
struct Recorder {
    seen: Arc<Mutex<(usize, BTreeMap<String, Record>)>>,
    task: tokio::task::JoinHandle<()>,
}

impl Recorder {
    /// Starts the watch and waits until it has listed what exists.
    async fn start(ns: &str, ar: &ApiResource) -> Result<Recorder> {
        let api: Api<DynamicObject> = Api::namespaced_with(support::client().await, ns, ar);
        let seen = Arc::new(Mutex::new((0, BTreeMap::new())));
        let (ready, listed) = tokio::sync::oneshot::channel();
        let task = tokio::spawn({
            let seen = Arc::clone(&seen);
            async move {
                let mut ready = Some(ready);
                let mut events = watcher(api, watcher::Config::default())
                    .default_backoff()
                    .boxed();
                while let Some(event) = events.next().await {
                    let (object, deleted) = match event {
                        Ok(watcher::Event::Apply(o) | watcher::Event::InitApply(o)) => (o, false),
                        Ok(watcher::Event::Delete(o)) => (o, true),
                        Ok(watcher::Event::InitDone) => {
                            if let Some(ready) = ready.take() {
                                let _ = ready.send(());
                            }
                            continue;
                        }
                        Ok(watcher::Event::Init) | Err(_) => continue,
                    };
                    let object = serde_json::to_value(object).expect("objects serialize");
                    let mut seen = seen.lock().expect("never poisoned");
                    seen.0 += 1;
                    let at = seen.0;
                    let record = seen
                        .1
                        .entry(uid(&object).to_string())
                        .or_insert_with(|| Record {
                            first: at,
                            last: Value::Null,
                            deleted: None,
                        });
                    record.last = object;
                    if deleted {
                        record.deleted = Some(at);
                    }
                }
            }
        });
        tokio::time::timeout(Duration::from_secs(60), listed)
            .await
            .context("the watch lists within a minute")??;
        Ok(Recorder { seen, task })
    }

    /// The objects named `name` it saw, in the order they appeared.
    fn named(&self, name: &str) -> Vec<Record> {
        let seen = self.seen.lock().expect("never poisoned");
        let mut out: Vec<Record> = seen
            .1
            .values()
            .filter(|r| str_at(&r.last, "/metadata/name") == name)
            .cloned()
            .collect();
        out.sort_by_key(|r| r.first);
        out
    }

    /// Waits until it has seen `count` objects named `name`, each of them
    /// deleted (its watch event may come after a read that finds it gone);
    /// returns them in the order they appeared.
    async fn wait_deleted(&self, name: &str, count: usize) -> Result<Vec<Record>> {
        eventually(
            &format!("{count} {name} seen, all deleted"),
            WAIT,
            || async move {
                let seen = self.named(name);
                let done = seen.len() == count && seen.iter().all(|r| r.deleted.is_some());
                Ok(done.then_some(seen))
            },
        )
        .await
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Reads, again and again until stopped, the PostSync Job, then the
/// Deployment, then the PreSync Job, and notes each reading that proves an
/// order broken: the Deployment read after a new PostSync Job was seen is
/// not rolled out yet, or the Deployment has the new image and the
/// PreSync Job read after it is not this sync's, completed. (The other
/// order of reads would prove nothing: the Job could have completed
/// between them.)
struct Sampler {
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<(usize, Vec<String>)>,
}

impl Sampler {
    fn start(ns: &str, old_pre: String, old_post: String, image: &'static str) -> Sampler {
        let stop = Arc::new(AtomicBool::new(false));
        let (ns, stopped) = (ns.to_string(), Arc::clone(&stop));
        let task = tokio::spawn(async move {
            let client = support::client().await;
            let jobs: Api<DynamicObject> = Api::namespaced_with(client.clone(), &ns, &jobs());
            let deployments: Api<DynamicObject> = Api::namespaced_with(client, &ns, &deployments());
            let value = |o: DynamicObject| serde_json::to_value(o).expect("objects serialize");
            let (mut readings, mut broken) = (0, Vec::new());
            while !stopped.load(Ordering::SeqCst) {
                tokio::time::sleep(Duration::from_millis(100)).await;
                // A reading that fails proves nothing either way: skip it.
                let Ok(post) = jobs.get_opt("smoke").await.map(|o| o.map(value)) else {
                    continue;
                };
                let Ok(web) = deployments.get("web").await.map(value) else {
                    continue;
                };
                let Ok(pre) = jobs.get_opt("migrate").await.map(|o| o.map(value)) else {
                    continue;
                };
                readings += 1;
                if let Some(post) = post.filter(|p| uid(p) != old_post)
                    && !rolled_out(&web, image)
                {
                    broken.push(format!(
                        "PostSync Job {} existed while the Deployment was not rolled out: {:#}",
                        uid(&post),
                        web["status"]
                    ));
                }
                let new_image = str_at(&web, "/spec/template/spec/containers/0/image") == image;
                if new_image
                    && !pre
                        .as_ref()
                        .is_some_and(|p| uid(p) != old_pre && complete(p))
                {
                    broken.push(format!(
                        "the Deployment had {image} while the PreSync Job was {:#}",
                        pre.unwrap_or_default()
                    ));
                }
            }
            (readings, broken)
        });
        Sampler { stop, task }
    }

    /// Stops; returns how many readings it took and the broken orders.
    async fn stop(self) -> Result<(usize, Vec<String>)> {
        self.stop.store(true, Ordering::SeqCst);
        Ok(self.task.await?)
    }
}

/// A PreSync migration Job runs to completion before the Deployment
/// changes, and a PostSync Job starts only once the Deployment is rolled
/// out and Healthy, as the cluster's own timestamps and a reader of both
/// show; the operation lists each hook with its phases.
#[tokio::test]
async fn a_presync_job_runs_before_the_deployment_changes_and_a_postsync_job_after_it_is_healthy()
-> Result<()> {
    let ns = TestNamespace::new("hookjobs-order").await;
    ns.create().await?;
    let app = unique(&ns, "order");
    let repo = GitRepo::new(None)?;
    repo.write("app/web.yaml", &deployment("web", "example.com/web:1"))?;
    repo.write(
        "app/migrate.yaml",
        &job("migrate", &[(HOOK, "PreSync")], ""),
    )?;
    repo.write("app/smoke.yaml", &job("smoke", &[(HOOK, "PostSync")], ""))?;
    let first = repo.commit("web 1, its migration and its smoke test")?;
    let work = tempfile::tempdir()?;
    let plumb = Plumb::start(
        work.path(),
        &application(&app, &repo.url(), "app", &ns.name, AUTO),
    )
    .await?;
    wait_operation(&plumb, &app, &first, "Succeeded").await?;
    let old_pre = uid(&object(&jobs(), &ns.name, "migrate").await?).to_string();
    let old_post = uid(&object(&jobs(), &ns.name, "smoke").await?).to_string();
    let generation = object(&deployments(), &ns.name, "web").await?["metadata"]["generation"]
        .as_i64()
        .context("a generation")?;

    let sampler = Sampler::start(
        &ns.name,
        old_pre.clone(),
        old_post.clone(),
        "example.com/web:2",
    );
    repo.write("app/web.yaml", &deployment("web", "example.com/web:2"))?;
    let second = repo.commit("web 2")?;
    let doc = wait_operation(&plumb, &app, &second, "Succeeded").await?;
    let (readings, broken) = sampler.stop().await?;
    assert!(readings > 0, "the reader read");
    assert!(broken.is_empty(), "{readings} readings: {broken:#?}");

    // The PreSync Job of this sync (a new one: BeforeHookCreation replaced
    // the first sync's) completed before the Deployment's new ReplicaSet
    // was created.
    let migrate = object(&jobs(), &ns.name, "migrate").await?;
    assert_ne!(uid(&migrate), old_pre, "the PreSync Job ran again");
    assert!(complete(&migrate), "{migrate:#}");
    let migrated = stamp(&migrate, "/status/completionTime")?;
    let web = object(&deployments(), &ns.name, "web").await?;
    assert_eq!(web["metadata"]["generation"], generation + 1, "{web:#}");
    let rs_api: Api<DynamicObject> =
        Api::namespaced_with(support::client().await, &ns.name, &replicasets());
    let new_rs = rs_api
        .list(&ListParams::default())
        .await?
        .items
        .into_iter()
        .map(|rs| serde_json::to_value(rs).expect("objects serialize"))
        .find(|rs| str_at(rs, "/spec/template/spec/containers/0/image") == "example.com/web:2")
        .context("the Deployment's new ReplicaSet")?;
    let rolled = stamp(&new_rs, "/metadata/creationTimestamp")?;
    assert!(migrated <= rolled, "{migrated:?} <= {rolled:?}");

    // The Deployment controller wrote when the new ReplicaSet became
    // available; the PostSync Job was created after that.
    assert!(rolled_out(&web, "example.com/web:2"), "{web:#}");
    let progressing = condition(&web, "Progressing").context("a Progressing condition")?;
    assert_eq!(progressing["reason"], "NewReplicaSetAvailable", "{web:#}");
    assert!(
        str_at(progressing, "/message").contains(str_at(&new_rs, "/metadata/name")),
        "{progressing}"
    );
    let available = stamp(progressing, "/lastUpdateTime")?;
    let smoke = object(&jobs(), &ns.name, "smoke").await?;
    assert_ne!(uid(&smoke), old_post, "the PostSync Job ran again");
    assert!(complete(&smoke), "{smoke:#}");
    let smoked = stamp(&smoke, "/metadata/creationTimestamp")?;
    assert!(available <= smoked, "{available:?} <= {smoked:?}");

    // Plumb's record says the same.
    assert_hook(&doc, "migrate", "PreSync", "Succeeded");
    assert_hook(&doc, "smoke", "PostSync", "Succeeded");
    let results = doc["status"]["operationState"]["syncResult"]["resources"]
        .as_array()
        .context("results")?;
    let web_result = results
        .iter()
        .find(|r| r["kind"] == "Deployment" && r["name"] == "web")
        .context("the Deployment's result")?;
    assert_eq!(str_at(web_result, "/syncPhase"), "Sync", "{web_result}");
    assert_eq!(str_at(web_result, "/status"), "Synced", "{web_result}");
    Ok(())
}

/// `HookSucceeded` deletes a Job (and the garbage collector its Pod) once
/// it succeeded; a Job without a delete policy (`BeforeHookCreation`)
/// stays until the next sync deletes it and creates it again.
#[tokio::test]
async fn hook_succeeded_deletes_a_job_and_before_hook_creation_replaces_one_at_the_next_sync()
-> Result<()> {
    let ns = TestNamespace::new("hookjobs-policy").await;
    ns.create().await?;
    let app = unique(&ns, "policy");
    let repo = GitRepo::new(None)?;
    repo.write(
        "app/settings.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\ndata:\n  color: blue\n",
    )?;
    repo.write(
        "app/seed.yaml",
        &job(
            "seed",
            &[(HOOK, "PreSync"), (DELETE_POLICY, "HookSucceeded")],
            "",
        ),
    )?;
    repo.write("app/report.yaml", &job("report", &[(HOOK, "PostSync")], ""))?;
    let first = repo.commit("a seed Job deleted when done, a report Job kept")?;
    let recorder = Recorder::start(&ns.name, &jobs()).await?;
    let work = tempfile::tempdir()?;
    let plumb = Plumb::start(
        work.path(),
        &application(&app, &repo.url(), "app", &ns.name, AUTO),
    )
    .await?;
    let doc = wait_operation(&plumb, &app, &first, "Succeeded").await?;
    assert_hook(&doc, "seed", "PreSync", "Succeeded");
    assert_hook(&doc, "report", "PostSync", "Succeeded");

    // The seed Job completed, then was deleted, with its Pod.
    let seeds = recorder.wait_deleted("seed", 1).await?;
    assert!(complete(&seeds[0].last), "it completed first: {seeds:#?}");
    assert!(get_object(&jobs(), &ns.name, "seed").await?.is_none());
    let pod_api: Api<DynamicObject> =
        Api::namespaced_with(support::client().await, &ns.name, &pods());
    eventually("the seed Job's Pod is gone", WAIT, || async {
        let left = pod_api
            .list(&ListParams::default().labels("job-name=seed"))
            .await?
            .items;
        Ok(left.is_empty().then_some(()))
    })
    .await?;
    // The report Job stays.
    let report = object(&jobs(), &ns.name, "report").await?;
    assert!(complete(&report), "{report:#}");

    // The next sync deletes the report Job, then creates it again; the
    // seed Job runs again and goes again.
    repo.write(
        "app/settings.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\ndata:\n  color: green\n",
    )?;
    let second = repo.commit("green")?;
    let doc = wait_operation(&plumb, &app, &second, "Succeeded").await?;
    assert_hook(&doc, "seed", "PreSync", "Succeeded");
    assert_hook(&doc, "report", "PostSync", "Succeeded");
    let again = object(&jobs(), &ns.name, "report").await?;
    assert_ne!(uid(&again), uid(&report), "a new report Job");
    assert!(complete(&again), "{again:#}");
    let reports = recorder.named("report");
    assert_eq!(reports.len(), 2, "{reports:#?}");
    let replaced = reports[0]
        .deleted
        .context("the first report Job was deleted")?;
    assert!(
        replaced < reports[1].first,
        "deleted before the new one was created: {reports:#?}"
    );
    let seeds = recorder.wait_deleted("seed", 2).await?;
    assert!(seeds.iter().all(|s| complete(&s.last)), "{seeds:#?}");
    assert!(get_object(&jobs(), &ns.name, "seed").await?.is_none());
    Ok(())
}

/// A PreSync migration Job that fails stops the sync before the
/// Deployment changes; the SyncFail Job runs, and the operation ends
/// Failed only once it has completed (Argo CD runs SyncFail hooks as a
/// phase of the operation).
#[tokio::test]
async fn a_failing_presync_job_stops_the_sync_and_it_ends_after_its_syncfail_job() -> Result<()> {
    let ns = TestNamespace::new("hookjobs-fail").await;
    ns.create().await?;
    let app = unique(&ns, "fail");
    let repo = GitRepo::new(None)?;
    repo.write("app/web.yaml", &deployment("web", "example.com/web:1"))?;
    let first = repo.commit("web 1")?;
    let work = tempfile::tempdir()?;
    // Manual syncs: an automated one would try the failed revision again.
    let plumb = Plumb::start(
        work.path(),
        &application(&app, &repo.url(), "app", &ns.name, ""),
    )
    .await?;
    let sync = format!("/api/v1/applications/{app}/sync");
    let doc = plumb.operate(&sync, json!({})).await?;
    assert_eq!(
        str_at(&doc, "/status/operationState/phase"),
        "Succeeded",
        "{doc:#}"
    );
    assert_eq!(
        str_at(&doc, "/status/operationState/syncResult/revision"),
        first
    );
    let before = object(&deployments(), &ns.name, "web").await?;

    repo.write("app/web.yaml", &deployment("web", "example.com/web:2"))?;
    repo.write(
        "app/migrate.yaml",
        &job("migrate", &[(HOOK, "PreSync")], "[\"false\"]"),
    )?;
    repo.write("app/notify.yaml", &job("notify", &[(HOOK, "SyncFail")], ""))?;
    let second = repo.commit("web 2 and a migration that fails")?;
    eventually("the application sees the new commit", WAIT, || async {
        let doc = plumb.app(&app).await?;
        Ok((str_at(&doc, "/status/sync/revision") == second).then_some(()))
    })
    .await?;
    let doc = plumb.operate(&sync, json!({})).await?;
    let op = &doc["status"]["operationState"];
    assert_eq!(str_at(op, "/phase"), "Failed", "{op:#}");
    assert_eq!(str_at(op, "/syncResult/revision"), second, "{op:#}");
    assert!(
        str_at(op, "/message").contains("hook Job migrate failed"),
        "{op:#}"
    );

    // The Deployment was not changed.
    let web = object(&deployments(), &ns.name, "web").await?;
    assert_eq!(
        web["metadata"]["generation"], before["metadata"]["generation"],
        "{web:#}"
    );
    assert_eq!(
        str_at(&web, "/spec/template/spec/containers/0/image"),
        "example.com/web:1"
    );
    let migrate = object(&jobs(), &ns.name, "migrate").await?;
    assert!(
        condition(&migrate, "Failed").is_some_and(|c| c["status"] == "True"),
        "{migrate:#}"
    );

    // The SyncFail Job completed before the operation ended.
    let notify = object(&jobs(), &ns.name, "notify").await?;
    assert!(complete(&notify), "{notify:#}");
    let notified = stamp(&notify, "/status/completionTime")?;
    let finished = stamp(op, "/finishedAt")?;
    assert!(notified <= finished, "{notified:?} <= {finished:?}");
    assert_hook(&doc, "migrate", "PreSync", "Failed");
    assert_hook(&doc, "notify", "SyncFail", "Succeeded");
    Ok(())
}

/// Helm's hooks in a chart's output, as the real `helm template` writes
/// them: `pre-install,pre-upgrade` Jobs run in PreSync by their
/// `helm.sh/hook-weight`, `hook-succeeded` deletes one once done, the
/// `post-install` Job runs in PostSync, and the `test` Pod is never
/// created.
#[tokio::test]
async fn helm_hooks_run_in_their_phases_by_weight_with_their_delete_policy() -> Result<()> {
    let ns = TestNamespace::new("hookjobs-helm").await;
    ns.create().await?;
    let app = unique(&ns, "helmhooks");
    let repo = GitRepo::new(None)?;
    repo.write(
        "chart/Chart.yaml",
        "apiVersion: v2\nname: shop\nversion: 0.1.0\n",
    )?;
    repo.write("chart/values.yaml", "color: blue\n")?;
    repo.write(
        "chart/templates/settings.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Release.Name }}-settings\ndata:\n  color: {{ .Values.color | quote }}\n",
    )?;
    repo.write(
        "chart/templates/db-migrate.yaml",
        &job(
            "{{ .Release.Name }}-db-migrate",
            &[
                ("helm.sh/hook", "pre-install,pre-upgrade"),
                ("helm.sh/hook-weight", "-1"),
                ("helm.sh/hook-delete-policy", "hook-succeeded"),
            ],
            "",
        ),
    )?;
    repo.write(
        "chart/templates/cache-warm.yaml",
        &job(
            "{{ .Release.Name }}-cache-warm",
            &[
                ("helm.sh/hook", "pre-install,pre-upgrade"),
                ("helm.sh/hook-weight", "1"),
            ],
            "",
        ),
    )?;
    repo.write(
        "chart/templates/smoke.yaml",
        &job(
            "{{ .Release.Name }}-smoke",
            &[("helm.sh/hook", "post-install")],
            "",
        ),
    )?;
    repo.write(
        "chart/templates/test.yaml",
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {{ .Release.Name }}-test\n  annotations:\n    helm.sh/hook: test\nspec:\n  restartPolicy: Never\n  containers:\n    - name: main\n      image: busybox:1.36\n",
    )?;
    let revision = repo.commit("a chart with hooks")?;
    let job_record = Recorder::start(&ns.name, &jobs()).await?;
    let pod_record = Recorder::start(&ns.name, &pods()).await?;
    let work = tempfile::tempdir()?;
    let spec = json!({
        "source": {
            "repoURL": repo.url(), "targetRevision": "main", "path": "chart",
            "helm": {"releaseName": "shop"},
        },
        "syncPolicy": {"automated": {"prune": true, "selfHeal": true}},
    });
    let plumb = Plumb::start(work.path(), &application_with(&app, &ns.name, spec)).await?;
    let doc = wait_operation(&plumb, &app, &revision, "Succeeded").await?;
    assert_hook(&doc, "shop-db-migrate", "PreSync", "Succeeded");
    assert_hook(&doc, "shop-cache-warm", "PreSync", "Succeeded");
    assert_hook(&doc, "shop-smoke", "PostSync", "Succeeded");
    assert!(
        hook_result(&doc, "Pod", "shop-test").is_none(),
        "{:#}",
        doc["status"]["operationState"]
    );

    // hook-succeeded: the migration Job completed, then was deleted; the
    // others stay.
    let migrate = job_record.wait_deleted("shop-db-migrate", 1).await?;
    let migrate = &migrate[0];
    assert!(complete(&migrate.last), "{:#}", migrate.last);
    assert!(
        get_object(&jobs(), &ns.name, "shop-db-migrate")
            .await?
            .is_none()
    );
    let warm = object(&jobs(), &ns.name, "shop-cache-warm").await?;
    let smoke = object(&jobs(), &ns.name, "shop-smoke").await?;
    assert!(complete(&warm) && complete(&smoke), "{warm:#}\n{smoke:#}");

    // By weight: -1 completed before 1 was created; PreSync completed
    // before the chart's objects were applied, and PostSync came after.
    let migrated = stamp(&migrate.last, "/status/completionTime")?;
    let warm_created = stamp(&warm, "/metadata/creationTimestamp")?;
    assert!(migrated <= warm_created, "{migrated:?} <= {warm_created:?}");
    let warmed = stamp(&warm, "/status/completionTime")?;
    let settings = object(&configmaps(), &ns.name, "shop-settings").await?;
    let applied = stamp(&settings, "/metadata/creationTimestamp")?;
    assert!(warmed <= applied, "{warmed:?} <= {applied:?}");
    let smoke_created = stamp(&smoke, "/metadata/creationTimestamp")?;
    assert!(applied <= smoke_created, "{applied:?} <= {smoke_created:?}");

    // Helm's test hook is never run.
    assert!(
        pod_record.named("shop-test").is_empty(),
        "the test Pod was never created"
    );
    assert!(get_object(&pods(), &ns.name, "shop-test").await?.is_none());
    Ok(())
}
