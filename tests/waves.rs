//! Sync waves end to end: an app of apps whose children deploy wave by wave
//! (the next wave only once the previous one is Synced and Healthy), a
//! plain application's waves in order, terminate of a sync waiting for a
//! wave. (Hooks: tests/hooks.rs.) Real git repositories, a real
//! `plumb serve`, the real local control plane (a Deployment whose image is
//! on a `.invalid` registry never becomes Available: the node simulator
//! never pulls it).

mod support;

use std::time::Duration;

use anyhow::{Context, Result};
use serde_json::{Value, json};
use support::{
    GitRepo, Plumb, TestNamespace, application, applications, configmaps, eventually, get_object,
    str_at,
};

const WAIT: Duration = Duration::from_secs(90);
const WAVE: &str = "argocd.argoproj.io/sync-wave";
const MANUAL: &str = "";

/// Names unique to one test: `base-<suffix of the namespace's name>`
/// (tracking ids name applications only, and tests share one cluster).
fn unique_names(ns: &TestNamespace) -> impl Fn(&str) -> String {
    let suffix = ns.name[ns.name.len() - 8..].to_string();
    move |base| format!("{base}-{suffix}")
}

/// A child Application (YAML) in `namespace` with sync wave `wave`,
/// deploying `path` of `repo` to `target`, automated.
fn child(name: &str, namespace: &str, wave: i64, repo: &str, path: &str, target: &str) -> String {
    let value = json!({
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Application",
        "metadata": {"name": name, "namespace": namespace, "annotations": {WAVE: wave.to_string()}},
        "spec": {
            "project": "default",
            "source": {"repoURL": repo, "targetRevision": "main", "path": path},
            "destination": {"server": "https://kubernetes.default.svc", "namespace": target},
            "syncPolicy": {"automated": {"prune": true, "selfHeal": true}}
        }
    });
    serde_yaml::to_string(&value).expect("a JSON value is also YAML")
}

fn configmap(name: &str, wave: Option<i64>) -> String {
    let annotations = wave.map_or_else(String::new, |w| {
        format!("  annotations:\n    {WAVE}: \"{w}\"\n")
    });
    format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\n{annotations}data:\n  from: {name}\n"
    )
}

fn deployment(name: &str, replicas: u32, wave: Option<i64>) -> String {
    let annotations = wave.map_or_else(String::new, |w| {
        format!("  annotations:\n    {WAVE}: \"{w}\"\n")
    });
    format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: {name}\n{annotations}spec:\n  replicas: {replicas}\n  selector:\n    matchLabels: {{app: {name}}}\n  template:\n    metadata:\n      labels: {{app: {name}}}\n    spec:\n      containers:\n        - name: main\n          image: registry.invalid/never:1\n"
    )
}

async fn object(ar: &kube::core::ApiResource, ns: &str, name: &str) -> Result<Option<Value>> {
    get_object(ar, ns, name).await
}

/// The names of the resources of the application's last operation, in
/// the order it went through them, of those whose status is `status` (all
/// with `None`).
fn operated<'a>(doc: &'a Value, status: Option<&str>) -> Result<Vec<&'a str>> {
    Ok(doc
        .pointer("/status/operationState/syncResult/resources")
        .and_then(Value::as_array)
        .context("the operation lists its resources")?
        .iter()
        .filter(|r| status.is_none_or(|s| r["status"] == s))
        .filter_map(|r| r["name"].as_str())
        .collect())
}

/// Waits until an object exists; returns it.
async fn wait_object(
    ar: &kube::core::ApiResource,
    ns: &str,
    name: &str,
    plumb: &Plumb,
) -> Result<Value> {
    eventually(
        &format!("{} {ns}/{name} exists", ar.kind),
        WAIT,
        || async move { object(ar, ns, name).await },
    )
    .await
    .with_context(|| format!("plumb log:\n{}", plumb.log_text()))
}

/// Waits until the application's operation is Running with a message
/// containing `text`; returns the application.
async fn wait_waiting(plumb: &Plumb, app: &str, text: &str) -> Result<Value> {
    eventually(&format!("{app} waits: {text}"), WAIT, || async move {
        let doc = plumb.app(app).await?;
        let phase = str_at(&doc, "/status/operationState/phase");
        let message = str_at(&doc, "/status/operationState/message");
        Ok((phase == "Running" && message.contains(text)).then_some(doc))
    })
    .await
    .with_context(|| format!("plumb log:\n{}", plumb.log_text()))
}

#[tokio::test]
async fn children_deploy_wave_by_wave_once_the_previous_wave_is_synced_and_healthy() -> Result<()> {
    let (apps, target) = (
        TestNamespace::new("waves-apps").await,
        TestNamespace::new("waves-target").await,
    );
    apps.create().await?;
    target.create().await?;
    let name = unique_names(&apps);
    let repo = GitRepo::new(None)?;
    let url = repo.url();
    let (a, b, c) = (name("wave-a"), name("wave-b"), name("wave-c"));
    repo.write(
        "parent/a.yaml",
        &child(&a, &apps.name, 0, &url, "a", &target.name),
    )?;
    repo.write(
        "parent/b.yaml",
        &child(&b, &apps.name, 1, &url, "b", &target.name),
    )?;
    repo.write(
        "parent/c.yaml",
        &child(&c, &apps.name, 2, &url, "c", &target.name),
    )?;
    // The image never pulls: one replica never becomes Available; child a
    // stays Progressing.
    repo.write("a/web.yaml", &deployment("web", 1, None))?;
    repo.write("b/cm.yaml", &configmap("from-b", None))?;
    repo.write("c/cm.yaml", &configmap("from-c", None))?;
    repo.commit("an app of apps in three waves")?;
    let work = tempfile::tempdir()?;
    let parent = name("parent");
    let plumb = Plumb::start_watching(
        work.path(),
        &application(
            &parent,
            &url,
            "parent",
            &apps.name,
            "  syncPolicy:\n    automated: {prune: true}\n",
        ),
        &apps.name,
    )
    .await?;

    // Wave 0 is applied and deploys, but is not Healthy: wave 1 waits.
    plumb.wait_status(&a, "Synced", Some("Progressing")).await?;
    // The message follows the child: it may first say Missing, until the
    // parent sees the child's own status.
    let waiting = wait_waiting(&plumb, &parent, &format!("Application {a} is Progressing")).await?;
    let message = str_at(&waiting, "/status/operationState/message");
    assert!(message.contains("waiting for wave 0"), "{message}");
    // Long enough for several watch events and backstop rechecks.
    tokio::time::sleep(Duration::from_secs(6)).await;
    assert!(
        object(&applications(), &apps.name, &b).await?.is_none(),
        "wave 1 must not start while wave 0 is Progressing"
    );
    assert_eq!(
        str_at(&plumb.app(&parent).await?, "/status/operationState/phase"),
        "Running"
    );
    // A sync asked meanwhile is refused: the waiting operation holds the
    // application.
    let (code, body) = plumb
        .post(&format!("/api/v1/applications/{parent}/sync"), json!({}))
        .await?;
    assert_eq!(code, 409, "{body}");

    // Fixed in Git: no replica is Available at once. Waves 1 and 2 follow,
    // each only once the wave before is Synced and Healthy.
    repo.write("a/web.yaml", &deployment("web", 0, None))?;
    repo.commit("web: no replicas")?;
    wait_object(&applications(), &apps.name, &b, &plumb).await?;
    let a_then = object(&applications(), &apps.name, &a)
        .await?
        .context("child a exists")?;
    assert_eq!(str_at(&a_then, "/status/health/status"), "Healthy");
    assert_eq!(str_at(&a_then, "/status/sync/status"), "Synced");
    wait_object(&applications(), &apps.name, &c, &plumb).await?;
    let b_then = object(&applications(), &apps.name, &b)
        .await?
        .context("child b exists")?;
    assert_eq!(str_at(&b_then, "/status/health/status"), "Healthy");
    assert_eq!(str_at(&b_then, "/status/sync/status"), "Synced");

    let done = plumb
        .wait_status(&parent, "Synced", Some("Healthy"))
        .await?;
    eventually("the parent's operation succeeds", WAIT, || async {
        let doc = plumb.app(&parent).await?;
        Ok((str_at(&doc, "/status/operationState/phase") == "Succeeded").then_some(()))
    })
    .await
    .with_context(|| format!("{done}\nplumb log:\n{}", plumb.log_text()))?;
    let doc = plumb.app(&parent).await?;
    let applied = operated(&doc, None)?;
    assert_eq!(applied, [a.as_str(), b.as_str(), c.as_str()], "{doc}");
    plumb.wait_status(&c, "Synced", Some("Healthy")).await?;
    wait_object(&configmaps(), &target.name, "from-c", &plumb).await?;
    Ok(())
}

#[tokio::test]
async fn a_plain_application_applies_its_waves_in_order() -> Result<()> {
    let ns = TestNamespace::new("waves-plain").await;
    ns.create().await?;
    let name = unique_names(&ns)("plain");
    let repo = GitRepo::new(None)?;
    // Names in the opposite order of their waves, and a Namespace-free
    // kind order that would put them otherwise.
    repo.write("app/z.yaml", &configmap("z-first", Some(-1)))?;
    repo.write("app/m.yaml", &configmap("m-second", None))?;
    repo.write("app/a.yaml", &configmap("a-third", Some(1)))?;
    repo.commit("three waves")?;
    let work = tempfile::tempdir()?;
    let plumb = Plumb::start(
        work.path(),
        &application(&name, &repo.url(), "app", &ns.name, MANUAL),
    )
    .await?;
    plumb.wait_status(&name, "OutOfSync", None).await?;
    let doc = plumb
        .operate(&format!("/api/v1/applications/{name}/sync"), json!({}))
        .await?;
    assert_eq!(
        str_at(&doc, "/status/operationState/phase"),
        "Succeeded",
        "{doc}"
    );
    let applied = operated(&doc, None)?;
    assert_eq!(applied, ["z-first", "m-second", "a-third"]);
    // The cluster saw them created in that order.
    let mut versions = Vec::new();
    for cm in ["z-first", "m-second", "a-third"] {
        let live = object(&configmaps(), &ns.name, cm)
            .await?
            .context("applied")?;
        let rv: u64 = str_at(&live, "/metadata/resourceVersion").parse()?;
        versions.push(rv);
    }
    assert!(versions.is_sorted(), "{versions:?}");
    plumb.wait_status(&name, "Synced", Some("Healthy")).await?;
    Ok(())
}

#[tokio::test]
async fn terminate_stops_a_sync_waiting_for_a_wave() -> Result<()> {
    let ns = TestNamespace::new("waves-term").await;
    ns.create().await?;
    let name = unique_names(&ns)("term");
    let repo = GitRepo::new(None)?;
    repo.write("app/web.yaml", &deployment("web", 1, None))?;
    repo.write("app/later.yaml", &configmap("later", Some(1)))?;
    repo.commit("a wave that never becomes healthy")?;
    let work = tempfile::tempdir()?;
    let plumb = Plumb::start(
        work.path(),
        &application(&name, &repo.url(), "app", &ns.name, MANUAL),
    )
    .await?;
    plumb.wait_status(&name, "OutOfSync", None).await?;
    let started = plumb
        .start_operation(&format!("/api/v1/applications/{name}/sync"), json!({}))
        .await?;
    let waiting = wait_waiting(
        &plumb,
        &name,
        "waiting for wave 0 to be healthy before wave 1",
    )
    .await?;
    let message = str_at(&waiting, "/status/operationState/message");
    assert!(
        message.contains("Deployment web is Progressing"),
        "{message}"
    );
    let operation = format!("{}/api/v1/applications/{name}/operation", plumb.url);
    let answer = reqwest::Client::new().delete(&operation).send().await?;
    assert!(answer.status().is_success(), "{}", answer.status());
    let doc = plumb.wait_operation(&started).await?;
    assert_eq!(str_at(&doc, "/status/operationState/phase"), "Failed");
    assert_eq!(
        str_at(&doc, "/status/operationState/message"),
        "Operation terminated"
    );
    assert!(object(&configmaps(), &ns.name, "later").await?.is_none());
    // The application is free again.
    let (code, body) = plumb
        .post(
            &format!("/api/v1/applications/{name}/sync"),
            json!({"dryRun": true}),
        )
        .await?;
    assert_eq!(code, 200, "{body}");
    Ok(())
}

/// A wave that is not a number is a condition naming the object, and
/// nothing of the render is synced or pruned while it stays.
#[tokio::test]
async fn a_wave_that_is_not_a_number_is_a_condition_and_nothing_is_pruned() -> Result<()> {
    let ns = TestNamespace::new("waves-bad").await;
    ns.create().await?;
    let name = unique_names(&ns)("badwave");
    let repo = GitRepo::new(None)?;
    repo.write("app/keep.yaml", &configmap("keep", None))?;
    repo.write("app/leaving.yaml", &configmap("leaving", None))?;
    repo.commit("two objects")?;
    let work = tempfile::tempdir()?;
    let plumb = Plumb::start(
        work.path(),
        &application(
            &name,
            &repo.url(),
            "app",
            &ns.name,
            "  syncPolicy:\n    automated: {prune: true}\n",
        ),
    )
    .await?;
    plumb.wait_status(&name, "Synced", Some("Healthy")).await?;

    // One object's wave becomes a word, another leaves Git.
    repo.write(
        "app/keep.yaml",
        &configmap("keep", None).replace(
            "metadata:\n",
            &format!("metadata:\n  annotations:\n    {WAVE}: \"first\"\n"),
        ),
    )?;
    repo.remove("app/leaving.yaml")?;
    let sha = repo.commit("a wave that is a word")?;
    let doc = eventually("the wave condition", WAIT, || async {
        let doc = plumb.app(&name).await?;
        let said = doc["status"]["sync"]["revision"] == sha.as_str()
            && str_at(&doc, "/status/conditions/0/message").contains("\"first\"");
        Ok(said.then_some(doc))
    })
    .await
    .with_context(|| format!("plumb log:\n{}", plumb.log_text()))?;
    assert_eq!(str_at(&doc, "/status/conditions/0/type"), "ComparisonError");
    assert!(
        str_at(&doc, "/status/conditions/0/message").contains(&format!(
            "ConfigMap {}/keep: annotation {WAVE} is \"first\", not an integer",
            ns.name
        )),
        "{doc}"
    );
    assert_eq!(str_at(&doc, "/status/sync/status"), "Unknown", "{doc}");
    assert_eq!(plumb.history_len(&name).await?, 1, "{doc}");
    assert!(object(&configmaps(), &ns.name, "leaving").await?.is_some());
    let keep = object(&configmaps(), &ns.name, "keep")
        .await?
        .context("kept")?;
    assert!(
        keep.pointer(&format!(
            "/metadata/annotations/{}",
            WAVE.replace('/', "~1")
        ))
        .is_none()
    );
    Ok(())
}

/// Prunes go wave by wave, highest first, as in Argo CD: the prunes of a
/// lower wave wait until what the higher wave deleted is gone. A finalizer
/// holds the wave-2 object's deletion; the wave-0 object stays until it is
/// released.
#[tokio::test]
async fn prunes_go_wave_by_wave_highest_first_waiting_for_each_deletion() -> Result<()> {
    const HOLD: &str = "plumb.test/hold";
    let ns = TestNamespace::new("waves-prune").await;
    ns.create().await?;
    let name = unique_names(&ns)("prune");
    let repo = GitRepo::new(None)?;
    repo.write("app/keep.yaml", &configmap("keep", None))?;
    repo.write("app/early.yaml", &configmap("early", Some(0)))?;
    let held = configmap("late", Some(2)).replace(
        "metadata:\n",
        &format!("metadata:\n  finalizers: [\"{HOLD}\"]\n"),
    );
    repo.write("app/late.yaml", &held)?;
    repo.commit("three objects")?;
    let work = tempfile::tempdir()?;
    let plumb = Plumb::start(
        work.path(),
        &application(&name, &repo.url(), "app", &ns.name, MANUAL),
    )
    .await?;
    plumb.wait_status(&name, "OutOfSync", None).await?;
    let sync = format!("/api/v1/applications/{name}/sync");
    let doc = plumb.operate(&sync, json!({})).await?;
    assert_eq!(str_at(&doc, "/status/operationState/phase"), "Succeeded");

    repo.remove("app/early.yaml")?;
    repo.remove("app/late.yaml")?;
    repo.commit("only keep")?;
    plumb.wait_status(&name, "OutOfSync", None).await?;
    let api: kube::Api<kube::api::DynamicObject> =
        kube::Api::namespaced_with(support::client().await, &ns.name, &configmaps());
    let outcome = async {
        let started = plumb.start_operation(&sync, json!({"prune": true})).await?;
        let waiting = wait_waiting(
            &plumb,
            &name,
            "waiting for the prunes of wave 2 to be deleted before pruning wave 0: ConfigMap late is still there",
        )
        .await?;
        // Wave 2's prune was sent (the object is being deleted); wave 0's not.
        let late = object(&configmaps(), &ns.name, "late")
            .await?
            .context("late is held by its finalizer")?;
        assert!(
            late.pointer("/metadata/deletionTimestamp").is_some(),
            "{late}"
        );
        anyhow::ensure!(
            object(&configmaps(), &ns.name, "early").await?.is_some(),
            "wave 0 was pruned before wave 2's deletion ended: {waiting:#}"
        );
        release(&api, "late").await?;
        let doc = plumb.wait_operation(&started).await?;
        assert_eq!(
            str_at(&doc, "/status/operationState/phase"),
            "Succeeded",
            "{doc}"
        );
        assert_eq!(operated(&doc, Some("Pruned"))?, ["late", "early"]);
        assert!(object(&configmaps(), &ns.name, "early").await?.is_none());
        assert!(object(&configmaps(), &ns.name, "keep").await?.is_some());
        plumb.wait_status(&name, "Synced", Some("Healthy")).await?;
        anyhow::Ok(())
    }
    .await;
    // Whatever happened, the namespace must be deletable.
    release(&api, "late").await?;
    outcome.with_context(|| format!("plumb log:\n{}", plumb.log_text()))
}

/// Drops the test's finalizer from a ConfigMap (gone already is fine).
async fn release(api: &kube::Api<kube::api::DynamicObject>, name: &str) -> Result<()> {
    let patch = kube::api::Patch::Merge(json!({"metadata": {"finalizers": null}}));
    match api
        .patch(name, &kube::api::PatchParams::default(), &patch)
        .await
    {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(status)) if status.code == 404 => Ok(()),
        Err(e) => Err(e).context("remove the finalizer"),
    }
}
