//! A sync in depth, end to end: hooks (`argocd.argoproj.io/hook`, Helm's
//! `helm.sh/hook`) in their phases with their delete policies,
//! `generateName` hooks, `Skip`, a failed PreSync hook stopping the sync,
//! hooks never compared nor pruned; `syncPolicy.retry`; and a sync started
//! through the Application object's `operation` field. Real git
//! repositories, a real `plumb serve`, the real local control plane.

mod support;

use std::time::Duration;

use anyhow::{Context, Result};
use kube::api::{Api, DynamicObject, ListParams, Patch, PatchParams};
use serde_json::{Value, json};
use support::{
    GitRepo, Plumb, TestNamespace, application, configmaps, eventually, get_object, resource,
    str_at,
};

const WAIT: Duration = Duration::from_secs(90);

/// Names unique to one test (tests share one cluster).
fn unique(ns: &TestNamespace, base: &str) -> String {
    format!("{base}-{}", &ns.name[ns.name.len() - 8..])
}

/// A ConfigMap manifest with `annotations` (YAML lines, indented by four).
fn configmap(name: &str, annotations: &[(&str, &str)]) -> String {
    let mut text = format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\n");
    if !annotations.is_empty() {
        text.push_str("  annotations:\n");
        for (k, v) in annotations {
            text.push_str(&format!("    {k}: \"{v}\"\n"));
        }
    }
    text.push_str(&format!("data:\n  from: {name}\n"));
    text
}

/// The names of the ConfigMaps in `ns`.
async fn configmap_names(ns: &str) -> Result<Vec<String>> {
    let api: Api<DynamicObject> = Api::namespaced_with(support::client().await, ns, &configmaps());
    let mut names: Vec<String> = api
        .list(&ListParams::default())
        .await?
        .items
        .into_iter()
        .filter_map(|o| o.metadata.name)
        .filter(|n| n != "kube-root-ca.crt")
        .collect();
    names.sort();
    Ok(names)
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

/// The entries of the last operation's results for hooks: (kind, name,
/// hookType, hookPhase), sorted.
fn hook_results(doc: &Value) -> Vec<(String, String, String, String)> {
    let mut out: Vec<_> = doc["status"]["operationState"]["syncResult"]["resources"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|r| r.get("hookType").is_some())
        .map(|r| {
            (
                str_at(r, "/kind").to_string(),
                str_at(r, "/name").to_string(),
                str_at(r, "/hookType").to_string(),
                str_at(r, "/hookPhase").to_string(),
            )
        })
        .collect();
    out.sort();
    out
}

/// PreSync, Sync and PostSync hooks run with the sync; `HookSucceeded`
/// deletes one once done; a `generateName` hook is a new object at each
/// sync; `Skip` and Helm's `test` hooks are never applied; SyncFail hooks
/// wait for a failure; and no hook is compared, listed among the
/// resources or pruned.
#[tokio::test]
async fn hooks_run_in_their_phases_and_go_by_their_delete_policies() -> Result<()> {
    let ns = TestNamespace::new("hooks-phases").await;
    ns.create().await?;
    let app = unique(&ns, "hooks");
    let repo = GitRepo::new(None)?;
    repo.write("app/plain.yaml", &configmap("plain", &[]))?;
    repo.write(
        "app/pre.yaml",
        &configmap(
            "pre",
            &[
                ("argocd.argoproj.io/hook", "PreSync"),
                ("argocd.argoproj.io/hook-delete-policy", "HookSucceeded"),
            ],
        ),
    )?;
    repo.write(
        "app/during.yaml",
        &configmap("during", &[("argocd.argoproj.io/hook", "Sync")]),
    )?;
    repo.write(
        "app/post.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  generateName: post-\n  annotations:\n    argocd.argoproj.io/hook: PostSync\ndata: {k: v}\n",
    )?;
    repo.write(
        "app/helm-pre.yaml",
        &configmap(
            "helm-pre",
            &[
                ("helm.sh/hook", "pre-install,pre-upgrade"),
                ("helm.sh/hook-weight", "-1"),
            ],
        ),
    )?;
    repo.write(
        "app/skipped.yaml",
        &configmap("skipped", &[("argocd.argoproj.io/hook", "Skip")]),
    )?;
    repo.write(
        "app/helm-test.yaml",
        &configmap("helm-test", &[("helm.sh/hook", "test")]),
    )?;
    repo.write(
        "app/on-fail.yaml",
        &configmap("on-fail", &[("argocd.argoproj.io/hook", "SyncFail")]),
    )?;
    let first = repo.commit("hooks")?;
    let work = tempfile::tempdir()?;
    let plumb = Plumb::start(
        work.path(),
        &application(
            &app,
            &repo.url(),
            "app",
            &ns.name,
            "  syncPolicy:\n    automated: {prune: true, selfHeal: true}\n",
        ),
    )
    .await?;

    let doc = wait_operation(&plumb, &app, &first, "Succeeded").await?;
    assert_eq!(
        hook_results(&doc)
            .into_iter()
            .map(|(kind, name, t, p)| format!(
                "{kind} {} {t} {p}",
                if name.starts_with("post-") {
                    "post-*"
                } else {
                    &name
                }
            ))
            .collect::<Vec<_>>(),
        [
            "ConfigMap during Sync Succeeded",
            "ConfigMap helm-pre PreSync Succeeded",
            "ConfigMap post-* PostSync Succeeded",
            "ConfigMap pre PreSync Succeeded",
        ],
        "{doc}"
    );
    let names = configmap_names(&ns.name).await?;
    let posts: Vec<&String> = names.iter().filter(|n| n.starts_with("post-")).collect();
    assert_eq!(posts.len(), 1, "{names:?}");
    assert_eq!(posts[0].len(), "post-".len() + 5, "{names:?}");
    for present in ["plain", "during", "helm-pre"] {
        assert!(names.iter().any(|n| n == present), "{present}: {names:?}");
    }
    // HookSucceeded deleted it; Skip, Helm's test and SyncFail never ran.
    for absent in ["pre", "skipped", "helm-test", "on-fail"] {
        assert!(!names.iter().any(|n| n == absent), "{absent}: {names:?}");
    }
    // Hooks are not the application's resources, and it is Synced.
    let doc = plumb.wait_status(&app, "Synced", Some("Healthy")).await?;
    let listed: Vec<&str> = doc["status"]["resources"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|r| str_at(r, "/name"))
        .collect();
    assert_eq!(listed, ["plain"], "{doc}");

    // A new commit syncs again: a new post-* hook, the old one stays (its
    // policy is BeforeHookCreation, and its name is not taken again);
    // nothing of the hooks is pruned.
    repo.write("app/more.yaml", &configmap("more", &[]))?;
    let second = repo.commit("more")?;
    wait_operation(&plumb, &app, &second, "Succeeded").await?;
    let names = configmap_names(&ns.name).await?;
    assert_eq!(
        names.iter().filter(|n| n.starts_with("post-")).count(),
        2,
        "{names:?}"
    );
    for present in ["plain", "more", "during", "helm-pre"] {
        assert!(names.iter().any(|n| n == present), "{present}: {names:?}");
    }
    plumb.wait_status(&app, "Synced", Some("Healthy")).await?;
    Ok(())
}

/// A PreSync migration Job that fails (its container exits 1 on the node
/// simulator: `command: [false]`) stops the sync before anything else of
/// it is applied, and the SyncFail hooks run; `HookFailed` deletes it.
#[tokio::test]
async fn a_failed_presync_hook_stops_the_sync_and_runs_the_syncfail_hooks() -> Result<()> {
    let ns = TestNamespace::new("hooks-fail").await;
    ns.create().await?;
    let app = unique(&ns, "hookfail");
    let repo = GitRepo::new(None)?;
    repo.write("app/plain.yaml", &configmap("plain", &[]))?;
    let first = repo.commit("plain")?;
    let work = tempfile::tempdir()?;
    let plumb = Plumb::start(
        work.path(),
        &application(
            &app,
            &repo.url(),
            "app",
            &ns.name,
            "  syncPolicy:\n    automated: {prune: true}\n",
        ),
    )
    .await?;
    wait_operation(&plumb, &app, &first, "Succeeded").await?;

    repo.write(
        "app/migrate.yaml",
        "apiVersion: batch/v1\nkind: Job\nmetadata:\n  name: migrate\n  annotations:\n    argocd.argoproj.io/hook: PreSync\n    argocd.argoproj.io/hook-delete-policy: HookFailed\nspec:\n  backoffLimit: 0\n  template:\n    spec:\n      restartPolicy: Never\n      containers:\n        - name: main\n          image: example.com/migrate:1\n          command: [\"false\"]\n",
    )?;
    repo.write(
        "app/page.yaml",
        &configmap("page", &[("argocd.argoproj.io/hook", "SyncFail")]),
    )?;
    repo.write("app/new.yaml", &configmap("new", &[]))?;
    let second = repo.commit("a migration that fails")?;
    let doc = wait_operation(&plumb, &app, &second, "Failed").await?;
    let message = str_at(&doc, "/status/operationState/message");
    assert!(message.contains("hook Job migrate failed"), "{message}");
    assert!(
        get_object(&configmaps(), &ns.name, "new").await?.is_none(),
        "nothing of the Sync phase was applied"
    );
    assert!(
        get_object(&configmaps(), &ns.name, "page").await?.is_some(),
        "the SyncFail hook ran"
    );
    let hooks = hook_results(&doc);
    assert!(
        hooks.contains(&(
            "Job".into(),
            "migrate".into(),
            "PreSync".into(),
            "Failed".into()
        )),
        "{hooks:?}"
    );
    // HookFailed: the failed hook is deleted.
    eventually("the failed hook is deleted", WAIT, || async {
        let gone = get_object(&resource("batch", "v1", "Job", "jobs"), &ns.name, "migrate")
            .await?
            .is_none_or(|p| p["metadata"]["deletionTimestamp"].is_string());
        Ok(gone.then_some(()))
    })
    .await?;
    Ok(())
}

/// A hook annotation Plumb cannot read is a clear condition, and nothing of
/// the render is applied.
#[tokio::test]
async fn an_unknown_hook_type_is_a_condition_and_nothing_is_applied() -> Result<()> {
    let ns = TestNamespace::new("hooks-bad").await;
    ns.create().await?;
    let app = unique(&ns, "hookbad");
    let repo = GitRepo::new(None)?;
    repo.write("app/plain.yaml", &configmap("plain", &[]))?;
    repo.write(
        "app/later.yaml",
        &configmap("later", &[("argocd.argoproj.io/hook", "PostDeploy")]),
    )?;
    repo.commit("a hook type that does not exist")?;
    let work = tempfile::tempdir()?;
    let plumb = Plumb::start(
        work.path(),
        &application(
            &app,
            &repo.url(),
            "app",
            &ns.name,
            "  syncPolicy:\n    automated: {prune: true}\n",
        ),
    )
    .await?;
    let doc = eventually("the hook condition", WAIT, || async {
        let doc = plumb.app(&app).await?;
        let message = str_at(&doc, "/status/conditions/0/message");
        Ok(message.contains("PostDeploy").then_some(doc))
    })
    .await
    .with_context(|| format!("plumb log:\n{}", plumb.log_text()))?;
    let message = str_at(&doc, "/status/conditions/0/message");
    assert!(
        message
            .contains("ConfigMap later: argocd.argoproj.io/hook \"PostDeploy\" is not a hook type")
            && message.contains("nothing is synced"),
        "{doc}"
    );
    assert_eq!(str_at(&doc, "/status/sync/status"), "Unknown", "{doc}");
    assert!(configmap_names(&ns.name).await?.is_empty());
    Ok(())
}

/// `syncPolicy.retry`: a sync that fails is tried again from the start, as
/// many times as `limit` says, and the operation counts the retries. The
/// failure is a PreSync hook the API server refuses (an invalid ConfigMap
/// key): hooks are not dry-run, so it fails at apply, every time.
#[tokio::test]
async fn a_failed_sync_is_retried_up_to_its_limit() -> Result<()> {
    let ns = TestNamespace::new("hooks-retry").await;
    ns.create().await?;
    let app = unique(&ns, "retry");
    let repo = GitRepo::new(None)?;
    repo.write("app/plain.yaml", &configmap("plain", &[]))?;
    repo.write(
        "app/bad.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: bad\n  annotations:\n    argocd.argoproj.io/hook: PreSync\ndata:\n  \"not a key!\": x\n",
    )?;
    let revision = repo.commit("a hook the API server refuses")?;
    let work = tempfile::tempdir()?;
    let plumb = Plumb::start(
        work.path(),
        &application(
            &app,
            &repo.url(),
            "app",
            &ns.name,
            "  syncPolicy:\n    automated: {prune: true}\n    retry:\n      limit: 2\n      backoff: {duration: 1s, factor: 2, maxDuration: 2s}\n",
        ),
    )
    .await?;
    let doc = wait_operation(&plumb, &app, &revision, "Failed").await?;
    let op = &doc["status"]["operationState"];
    assert_eq!(op["retryCount"], 2, "{op}");
    assert!(str_at(op, "/message").contains("ConfigMap bad"), "{op}");
    let retries = plumb.log_text().matches("sync failed; retrying").count();
    assert_eq!(retries, 2, "two retries, then it gave up");
    // Nothing after the failed hook was applied.
    assert!(
        get_object(&configmaps(), &ns.name, "plain")
            .await?
            .is_none()
    );
    Ok(())
}

/// Argo CD's `operation` field: patching it onto the Application object
/// starts that sync (here a manual application's first sync, with prune),
/// as `kubectl patch app NAME --type merge -p '{"operation": ...}'` does;
/// Plumb clears the field once the sync has started.
#[tokio::test]
async fn patching_operation_on_the_application_object_starts_a_sync() -> Result<()> {
    let (apps, target) = (
        TestNamespace::new("hooks-op-apps").await,
        TestNamespace::new("hooks-op-target").await,
    );
    apps.create().await?;
    target.create().await?;
    let app = unique(&apps, "byfield");
    let repo = GitRepo::new(None)?;
    repo.write("app/cm.yaml", &configmap("from-field", &[]))?;
    let revision = repo.commit("one ConfigMap")?;
    let work = tempfile::tempdir()?;
    let plumb = Plumb::start_watching(work.path(), "", &apps.name).await?;
    let api: Api<DynamicObject> = Api::namespaced_with(
        support::client().await,
        &apps.name,
        &support::applications(),
    );
    let object: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "argoproj.io/v1alpha1", "kind": "Application",
        "metadata": {"name": app, "namespace": apps.name},
        "spec": {"project": "default",
                 "source": {"repoURL": repo.url(), "targetRevision": "main", "path": "app"},
                 "destination": {"server": "https://kubernetes.default.svc", "namespace": target.name}}
    }))?;
    api.create(&Default::default(), &object).await?;
    plumb.wait_status(&app, "OutOfSync", None).await?;
    api.patch(
        &app,
        &PatchParams::default(),
        &Patch::Merge(json!({"operation": {
            "sync": {"revision": revision, "prune": true},
            "initiatedBy": {"username": "kubectl"}
        }})),
    )
    .await?;
    let doc = wait_operation(&plumb, &app, &revision, "Succeeded").await?;
    assert_eq!(
        str_at(
            &doc,
            "/status/operationState/operation/initiatedBy/username"
        ),
        "kubectl",
        "{doc}"
    );
    assert!(
        get_object(&configmaps(), &target.name, "from-field")
            .await?
            .is_some()
    );
    eventually("the operation field is cleared", WAIT, || async {
        let object = get_object(&support::applications(), &apps.name, &app).await?;
        Ok(object.filter(|o| o.get("operation").is_none()).map(|_| ()))
    })
    .await?;
    // One start only: the sync's history has one entry.
    assert_eq!(plumb.history_len(&app).await?, 1);
    Ok(())
}

/// `argocd.argoproj.io/compare-options: IgnoreExtraneous` on an object that
/// left Git keeps the application Synced (and automated sync does not run
/// for it); `PrunePropagationPolicy=orphan` prunes a Deployment and leaves
/// its ReplicaSet (kube-controller-manager made it) in place.
#[tokio::test]
async fn ignore_extraneous_and_prune_propagation_orphan() -> Result<()> {
    let ns = TestNamespace::new("hooks-options").await;
    ns.create().await?;
    let (kept_app, pruned_app) = (unique(&ns, "extraneous"), unique(&ns, "orphan"));
    let repo = GitRepo::new(None)?;
    repo.write("kept/plain.yaml", &configmap("kept-plain", &[]))?;
    repo.write(
        "kept/extra.yaml",
        &configmap(
            "kept-extra",
            &[("argocd.argoproj.io/compare-options", "IgnoreExtraneous")],
        ),
    )?;
    repo.write(
        "pruned/web.yaml",
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  replicas: 0\n  selector:\n    matchLabels: {app: web}\n  template:\n    metadata:\n      labels: {app: web}\n    spec:\n      containers:\n        - name: main\n          image: registry.invalid/web:1\n",
    )?;
    repo.write("pruned/cm.yaml", &configmap("pruned-plain", &[]))?;
    repo.commit("two applications")?;
    let work = tempfile::tempdir()?;
    let apps = format!(
        "{}---\n{}",
        application(
            &kept_app,
            &repo.url(),
            "kept",
            &ns.name,
            "  syncPolicy:\n    automated: {selfHeal: true}\n",
        ),
        application(
            &pruned_app,
            &repo.url(),
            "pruned",
            &ns.name,
            "  syncPolicy:\n    automated: {prune: true}\n    syncOptions: [PrunePropagationPolicy=orphan]\n",
        )
    );
    let plumb = Plumb::start(work.path(), &apps).await?;
    plumb.wait_status(&kept_app, "Synced", None).await?;
    plumb.wait_status(&pruned_app, "Synced", None).await?;
    let replicasets = resource("apps", "v1", "ReplicaSet", "replicasets");
    let rs_api: Api<DynamicObject> =
        Api::namespaced_with(support::client().await, &ns.name, &replicasets);
    let rs_names = || async {
        let list = rs_api.list(&ListParams::default()).await?;
        anyhow::Ok(
            list.items
                .into_iter()
                .filter_map(|o| o.metadata.name)
                .filter(|n| n.starts_with("web-"))
                .collect::<Vec<_>>(),
        )
    };
    let rs = eventually("the Deployment's ReplicaSet", WAIT, || async {
        let names = rs_names().await?;
        Ok((!names.is_empty()).then_some(names))
    })
    .await?;

    repo.remove("kept/extra.yaml")?;
    repo.remove("pruned/web.yaml")?;
    let revision = repo.commit("both leave Git")?;
    // The pruned Deployment goes; its ReplicaSet stays (orphaned).
    eventually("the Deployment is pruned", WAIT, || async {
        let gone = get_object(
            &resource("apps", "v1", "Deployment", "deployments"),
            &ns.name,
            "web",
        )
        .await?
        .is_none();
        Ok(gone.then_some(()))
    })
    .await
    .with_context(|| format!("plumb log:\n{}", plumb.log_text()))?;
    // Orphaned: the garbage collector removed its owner reference before
    // the Deployment went (with background propagation it would still
    // name the Deployment until it is collected).
    assert_eq!(
        rs_names().await?,
        rs,
        "the ReplicaSet is orphaned, not deleted"
    );
    let owners = rs_api.get(&rs[0]).await?.metadata.owner_references;
    assert!(owners.as_ref().is_none_or(Vec::is_empty), "{owners:?}");
    // The IgnoreExtraneous object stays, and the application is Synced at
    // the new revision with the object listed as needing pruning.
    let doc = eventually(
        "the kept application compares the new revision",
        WAIT,
        || async {
            let doc = plumb.app(&kept_app).await?;
            Ok((doc["status"]["sync"]["revision"] == revision.as_str()).then_some(doc))
        },
    )
    .await?;
    assert_eq!(str_at(&doc, "/status/sync/status"), "Synced", "{doc}");
    let extra = doc["status"]["resources"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|r| r["name"] == "kept-extra")
        .cloned()
        .context("the extraneous object is listed")?;
    assert_eq!(extra["requiresPruning"], true, "{extra}");
    assert!(
        get_object(&configmaps(), &ns.name, "kept-extra")
            .await?
            .is_some()
    );
    Ok(())
}
