//! Argo CD's sync options that change how objects are written and pruned,
//! end to end: `Replace`, `Force`, `Validate=false`, `FailOnSharedResource`,
//! `SkipDryRunOnMissingResource` and `Prune=confirm` (confirmed through the
//! application's `argocd.argoproj.io/deletion-approved` annotation, the API
//! and the CLI). Real git repositories, a real `plumb serve`, the real
//! local control plane.

mod support;

use std::time::Duration;

use anyhow::{Context, Result};
use kube::api::{Api, DynamicObject, Patch, PatchParams, PostParams};
use serde_json::{Value, json};
use support::{
    GitRepo, Plumb, TestNamespace, application_with, configmaps, eventually, get_object, resource,
    str_at,
};

const WAIT: Duration = Duration::from_secs(90);

/// Names unique to one test (tests share one cluster).
fn unique(ns: &TestNamespace, base: &str) -> String {
    format!("{base}-{}", &ns.name[ns.name.len() - 8..])
}

/// A ConfigMap with `data.color` and, when given, the sync-options
/// annotation.
fn configmap(name: &str, sync_options: Option<&str>, color: &str) -> String {
    let mut text = format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\n");
    if let Some(options) = sync_options {
        text.push_str(&format!(
            "  annotations:\n    argocd.argoproj.io/sync-options: \"{options}\"\n"
        ));
    }
    text.push_str(&format!("data:\n  color: {color}\n"));
    text
}

/// An application `name` of `repo`'s folder `path` into `ns`, synced by
/// hand only, with `sync_options` besides `CreateNamespace=true`.
fn app(name: &str, ns: &str, repo: &GitRepo, path: &str, sync_options: &[&str]) -> String {
    let mut options = vec!["CreateNamespace=true"];
    options.extend_from_slice(sync_options);
    application_with(
        name,
        ns,
        json!({
            "source": {"repoURL": repo.url(), "targetRevision": "main", "path": path},
            "syncPolicy": {"syncOptions": options},
        }),
    )
}

/// Waits until `app` has seen `revision` (a commit reaches Plumb through
/// its watch of the repository folder).
async fn seen(plumb: &Plumb, app: &str, revision: &str) -> Result<()> {
    eventually(&format!("{app} has seen {revision}"), WAIT, || async {
        let doc = plumb.app(app).await?;
        Ok((str_at(&doc, "/status/sync/revision") == revision).then_some(()))
    })
    .await
    .with_context(|| format!("plumb log:\n{}", plumb.log_text()))
}

/// Syncs `app` at `revision` (with prune) and waits until the operation
/// ends; returns the application then.
async fn sync(plumb: &Plumb, app: &str, revision: &str) -> Result<Value> {
    seen(plumb, app, revision).await?;
    plumb
        .operate(
            &format!("/api/v1/applications/{app}/sync"),
            json!({"revision": revision, "prune": true}),
        )
        .await
}

/// The operation's result for the object `kind`/`name`.
fn result_of<'a>(app: &'a Value, kind: &str, name: &str) -> Option<&'a Value> {
    app.pointer("/status/operationState/syncResult/resources")?
        .as_array()?
        .iter()
        .find(|r| r["kind"] == kind && r["name"] == name)
}

/// The message of the operation's result for `kind`/`name`.
fn message_of(app: &Value, kind: &str, name: &str) -> String {
    result_of(app, kind, name)
        .and_then(|r| r["message"].as_str())
        .unwrap_or_default()
        .to_string()
}

async fn configmap_object(ns: &str, name: &str) -> Result<Option<Value>> {
    get_object(&configmaps(), ns, name).await
}

/// Patches a ConfigMap as another client would (an Update with field
/// manager `other`).
async fn patch_as_other(ns: &str, name: &str, patch: Value) -> Result<()> {
    let api: Api<DynamicObject> = Api::namespaced_with(support::client().await, ns, &configmaps());
    let params = PatchParams {
        field_manager: Some("other".into()),
        ..Default::default()
    };
    api.patch(name, &params, &Patch::Merge(patch)).await?;
    Ok(())
}

fn phase(app: &Value) -> &str {
    str_at(app, "/status/operationState/phase")
}

#[tokio::test]
async fn replace_writes_the_whole_object_where_apply_keeps_other_managers_fields() -> Result<()> {
    let ns = TestNamespace::new("so-replace").await;
    let name = unique(&ns, "replace");
    let repo = GitRepo::new(None)?;
    repo.write(
        "app/replaced.yaml",
        &configmap("replaced", Some("Replace=true"), "blue"),
    )?;
    repo.write("app/applied.yaml", &configmap("applied", None, "blue"))?;
    let revision = repo.commit("two ConfigMaps")?;
    let work = tempfile::tempdir()?;
    let plumb = Plumb::start(work.path(), &app(&name, &ns.name, &repo, "app", &[])).await?;

    let doc = sync(&plumb, &name, &revision).await?;
    assert_eq!(phase(&doc), "Succeeded", "{doc:#}");
    assert_eq!(
        message_of(&doc, "ConfigMap", "replaced"),
        "created (Replace=true)"
    );
    assert_eq!(
        message_of(&doc, "ConfigMap", "applied"),
        "applied (server-side)"
    );

    // Another manager adds a field to both. Neither is drift: a
    // server-side apply of Git's object keeps fields it does not own.
    for cm in ["replaced", "applied"] {
        patch_as_other(&ns.name, cm, json!({"data": {"extra": "theirs"}})).await?;
    }
    let before = configmap_object(&ns.name, "replaced")
        .await?
        .context("replaced exists")?;
    let reconciled = |doc: &Value| str_at(doc, "/status/reconciledAt").to_string();
    let compared = reconciled(&plumb.app(&name).await?);
    // reconciledAt counts seconds: a later one is of a comparison made
    // after the changes above.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    plumb
        .get(&format!("/api/v1/applications/{name}?refresh=hard"))
        .await?;
    eventually("the application is compared again", WAIT, || async {
        let doc = plumb.app(&name).await?;
        Ok((reconciled(&doc) > compared).then_some(doc))
    })
    .await?;
    plumb.wait_status(&name, "Synced", None).await?;
    // A comparison writes nothing, Replace or not.
    let after = configmap_object(&ns.name, "replaced")
        .await?
        .context("replaced exists")?;
    assert_eq!(
        str_at(&after, "/metadata/resourceVersion"),
        str_at(&before, "/metadata/resourceVersion")
    );

    // A sync replaces the one object: the other manager's field is gone
    // from it, and stays in the one applied.
    let doc = sync(&plumb, &name, &revision).await?;
    assert_eq!(phase(&doc), "Succeeded", "{doc:#}");
    assert_eq!(
        message_of(&doc, "ConfigMap", "replaced"),
        "replaced (Replace=true)"
    );
    let replaced = configmap_object(&ns.name, "replaced")
        .await?
        .context("replaced exists")?;
    assert_eq!(replaced["data"], json!({"color": "blue"}), "{replaced:#}");
    assert_eq!(
        str_at(&replaced, "/metadata/uid"),
        str_at(&before, "/metadata/uid"),
        "a replace without Force keeps the object"
    );
    let applied = configmap_object(&ns.name, "applied")
        .await?
        .context("applied exists")?;
    assert_eq!(applied["data"]["extra"], "theirs", "{applied:#}");
    plumb.wait_status(&name, "Synced", Some("Healthy")).await?;
    Ok(())
}

fn jobs() -> kube::core::ApiResource {
    resource("batch", "v1", "Job", "jobs")
}

/// A Job whose one container runs `true` with `args`.
fn job(name: &str, sync_options: Option<&str>, args: &str) -> String {
    let annotations = sync_options
        .map(|o| format!("  annotations:\n    argocd.argoproj.io/sync-options: \"{o}\"\n"))
        .unwrap_or_default();
    format!(
        "apiVersion: batch/v1\nkind: Job\nmetadata:\n  name: {name}\n{annotations}spec:\n  backoffLimit: 0\n  template:\n    spec:\n      restartPolicy: Never\n      containers:\n        - name: run\n          image: busybox\n          command: [\"true\"]\n          args: [\"{args}\"]\n"
    )
}

#[tokio::test]
async fn force_recreates_an_object_whose_immutable_field_changed() -> Result<()> {
    let ns = TestNamespace::new("so-force").await;
    let (forced, plain) = (unique(&ns, "forced"), unique(&ns, "plain"));
    let repo = GitRepo::new(None)?;
    repo.write(
        "forced/job.yaml",
        &job("migrate", Some("Force=true"), "one"),
    )?;
    repo.write("plain/job.yaml", &job("report", None, "one"))?;
    let first = repo.commit("two Jobs")?;
    let work = tempfile::tempdir()?;
    let apps = [
        app(&forced, &ns.name, &repo, "forced", &[]),
        app(&plain, &ns.name, &repo, "plain", &[]),
    ]
    .join("---\n");
    let plumb = Plumb::start(work.path(), &apps).await?;
    for app in [&forced, &plain] {
        let doc = sync(&plumb, app, &first).await?;
        assert_eq!(phase(&doc), "Succeeded", "{doc:#}");
    }
    let uid = |name: &'static str| {
        let ns = ns.name.clone();
        async move {
            get_object(&jobs(), &ns, name)
                .await?
                .map(|j| str_at(&j, "/metadata/uid").to_string())
                .context("the Job exists")
        }
    };
    let (migrate_before, report_before) = (uid("migrate").await?, uid("report").await?);

    // A Job's pod template cannot change.
    repo.write(
        "forced/job.yaml",
        &job("migrate", Some("Force=true"), "two"),
    )?;
    repo.write("plain/job.yaml", &job("report", None, "two"))?;
    let second = repo.commit("new arguments")?;

    let doc = sync(&plumb, &plain, &second).await?;
    assert_eq!(phase(&doc), "Failed", "{doc:#}");
    assert!(
        message_of(&doc, "Job", "report").contains("field is immutable"),
        "{doc:#}"
    );
    assert_eq!(uid("report").await?, report_before);

    let doc = sync(&plumb, &forced, &second).await?;
    assert_eq!(phase(&doc), "Succeeded", "{doc:#}");
    let message = message_of(&doc, "Job", "migrate");
    assert!(
        message.contains("immutable")
            && message.contains(&format!(
                "deleted (uid {migrate_before}) and created again (Force=true)"
            )),
        "{message}"
    );
    let migrate_after = uid("migrate").await?;
    assert_ne!(migrate_after, migrate_before, "a new Job");
    let job = get_object(&jobs(), &ns.name, "migrate")
        .await?
        .context("the Job exists")?;
    assert_eq!(
        job.pointer("/spec/template/spec/containers/0/args/0"),
        Some(&json!("two"))
    );
    eventually("the forced application is Synced", WAIT, || async {
        let doc = plumb.app(&forced).await?;
        Ok((str_at(&doc, "/status/sync/status") == "Synced").then_some(()))
    })
    .await
    .with_context(|| format!("plumb log:\n{}", plumb.log_text()))?;
    Ok(())
}

#[tokio::test]
async fn validate_false_leaves_out_fields_the_api_server_refuses() -> Result<()> {
    let ns = TestNamespace::new("so-validate").await;
    let name = unique(&ns, "validate");
    let repo = GitRepo::new(None)?;
    // `bogus` is no field of a ConfigMap: a server-side apply refuses it.
    let with_bogus =
        |cm: &str, options: Option<&str>| format!("{}bogus: x\n", configmap(cm, options, "blue"));
    repo.write("app/strict.yaml", &with_bogus("strict", None))?;
    repo.write(
        "app/loose.yaml",
        &with_bogus("loose", Some("Validate=false")),
    )?;
    let revision = repo.commit("unknown fields")?;
    let work = tempfile::tempdir()?;
    let plumb = Plumb::start(work.path(), &app(&name, &ns.name, &repo, "app", &[])).await?;

    let doc = sync(&plumb, &name, &revision).await?;
    assert_eq!(phase(&doc), "Failed", "{doc:#}");
    let strict = result_of(&doc, "ConfigMap", "strict").context("strict has a result")?;
    assert_eq!(strict["status"], "SyncFailed", "{doc:#}");
    assert!(
        strict["message"]
            .as_str()
            .is_some_and(|m| m.contains(".bogus: field not declared in schema")),
        "{strict:#}"
    );
    let loose = result_of(&doc, "ConfigMap", "loose").context("loose has a result")?;
    assert_eq!(loose["status"], "Synced", "{doc:#}");
    assert!(
        loose["message"]
            .as_str()
            .is_some_and(|m| m.contains("(Validate=false): .bogus")),
        "{loose:#}"
    );
    assert!(configmap_object(&ns.name, "strict").await?.is_none());
    let object = configmap_object(&ns.name, "loose")
        .await?
        .context("loose exists")?;
    assert_eq!(object["data"]["color"], "blue");
    assert!(object.get("bogus").is_none(), "{object:#}");

    // Compared the same way: the object without validation is in sync.
    eventually("loose is Synced in the status", WAIT, || async {
        let doc = plumb.app(&name).await?;
        let entry = doc
            .pointer("/status/resources")
            .and_then(Value::as_array)
            .and_then(|r| r.iter().find(|r| r["name"] == "loose").cloned());
        Ok(entry.filter(|e| e["status"] == "Synced").map(|_| ()))
    })
    .await
    .with_context(|| format!("plumb log:\n{}", plumb.log_text()))?;
    Ok(())
}

#[tokio::test]
async fn fail_on_shared_resource_fails_the_sync_before_anything_is_applied() -> Result<()> {
    let ns = TestNamespace::new("so-shared").await;
    let (first, second) = (unique(&ns, "first"), unique(&ns, "second"));
    let repo = GitRepo::new(None)?;
    repo.write("first/shared.yaml", &configmap("shared", None, "blue"))?;
    repo.write("second/shared.yaml", &configmap("shared", None, "green"))?;
    repo.write("second/own.yaml", &configmap("own", None, "green"))?;
    let revision = repo.commit("one ConfigMap in two applications")?;
    let work = tempfile::tempdir()?;
    let apps = [
        app(&first, &ns.name, &repo, "first", &[]),
        app(
            &second,
            &ns.name,
            &repo,
            "second",
            &["FailOnSharedResource=true"],
        ),
    ]
    .join("---\n");
    let plumb = Plumb::start(work.path(), &apps).await?;
    let doc = sync(&plumb, &first, &revision).await?;
    assert_eq!(phase(&doc), "Succeeded", "{doc:#}");

    let doc = sync(&plumb, &second, &revision).await?;
    assert_eq!(phase(&doc), "Failed", "{doc:#}");
    let message = str_at(&doc, "/status/operationState/message");
    assert!(
        message.starts_with(&format!(
            "Shared resource found: ConfigMap/shared is part of applications {second} and {first}"
        )) && message.ends_with("nothing was applied"),
        "{message}"
    );
    assert!(
        configmap_object(&ns.name, "own").await?.is_none(),
        "nothing applied"
    );
    let shared = configmap_object(&ns.name, "shared")
        .await?
        .context("shared exists")?;
    assert_eq!(shared["data"]["color"], "blue");
    assert!(
        str_at(
            &shared,
            "/metadata/annotations/argocd.argoproj.io~1tracking-id"
        )
        .starts_with(&format!("{first}:")),
        "{shared:#}"
    );
    // The comparison says so too, as Argo CD's SharedResourceWarning.
    let doc = plumb.app(&second).await?;
    let conditions = doc["status"]["conditions"].to_string();
    assert!(conditions.contains("SharedResourceWarning"), "{doc:#}");
    Ok(())
}

/// A group of its own for one test's CRDs (CRDs are cluster-wide).
fn group_of(ns: &TestNamespace, prefix: &str) -> String {
    format!(
        "{prefix}{}.syncopts.plumb.test",
        &ns.name[ns.name.len() - 8..]
    )
}

fn crd(group: &str) -> String {
    format!(
        "apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\nmetadata:\n  name: gadgets.{group}\nspec:\n  group: {group}\n  scope: Namespaced\n  names:\n    plural: gadgets\n    kind: Gadget\n  versions:\n  - name: v1\n    served: true\n    storage: true\n    schema:\n      openAPIV3Schema:\n        type: object\n        x-kubernetes-preserve-unknown-fields: true\n"
    )
}

/// A Gadget, with the sync-options annotation when given.
fn gadget(group: &str, sync_options: Option<&str>) -> String {
    let annotations = sync_options
        .map(|o| format!("  annotations:\n    argocd.argoproj.io/sync-options: \"{o}\"\n"))
        .unwrap_or_default();
    format!(
        "apiVersion: {group}/v1\nkind: Gadget\nmetadata:\n  name: g\n{annotations}spec:\n  size: 3\n"
    )
}

/// Deletes CRDs when dropped.
struct CrdGuard(Vec<String>);

impl Drop for CrdGuard {
    fn drop(&mut self) {
        let names = std::mem::take(&mut self.0);
        support::in_drop(move |client| async move {
            let api: Api<DynamicObject> = Api::all_with(client, &crds());
            for name in names {
                let _ = api.delete(&name, &Default::default()).await;
            }
        });
    }
}

fn crds() -> kube::core::ApiResource {
    resource(
        "apiextensions.k8s.io",
        "v1",
        "CustomResourceDefinition",
        "customresourcedefinitions",
    )
}

fn gadgets(group: &str) -> kube::core::ApiResource {
    resource(group, "v1", "Gadget", "gadgets")
}

/// The status entry of the Gadget.
fn gadget_entry(app: &Value) -> Option<Value> {
    app.pointer("/status/resources")?
        .as_array()?
        .iter()
        .find(|r| r["kind"] == "Gadget")
        .cloned()
}

#[tokio::test]
async fn skip_dry_run_on_missing_resource_waits_for_a_crd_from_elsewhere() -> Result<()> {
    let ns = TestNamespace::new("so-skipdry").await;
    let (later, together) = (group_of(&ns, "later"), group_of(&ns, "together"));
    let _guard = CrdGuard(vec![
        format!("gadgets.{later}"),
        format!("gadgets.{together}"),
    ]);
    let (waits, refused, joint) = (
        unique(&ns, "waits"),
        unique(&ns, "refused"),
        unique(&ns, "joint"),
    );
    let repo = GitRepo::new(None)?;
    // A Gadget whose CRD some other tool installs, with and without the
    // option; and one whose CRD is in its own application.
    repo.write(
        "waits/gadget.yaml",
        &gadget(&later, Some("SkipDryRunOnMissingResource=true")),
    )?;
    repo.write("waits/settings.yaml", &configmap("settings", None, "blue"))?;
    repo.write("refused/gadget.yaml", &gadget(&later, None))?;
    repo.write("joint/crd.yaml", &crd(&together))?;
    repo.write(
        "joint/gadget.yaml",
        &gadget(&together, Some("SkipDryRunOnMissingResource=true")),
    )?;
    let revision = repo.commit("gadgets")?;
    let work = tempfile::tempdir()?;
    let apps = [
        app(&waits, &format!("{}-w", ns.name), &repo, "waits", &[]),
        app(&refused, &format!("{}-r", ns.name), &repo, "refused", &[]),
        app(&joint, &ns.name, &repo, "joint", &[]),
    ]
    .join("---\n");
    let _more = (
        TestNamespace {
            name: format!("{}-w", ns.name),
        },
        TestNamespace {
            name: format!("{}-r", ns.name),
        },
    );
    let plumb = Plumb::start(work.path(), &apps).await?;

    // Without the option an unknown kind stops the application.
    eventually("refused says why", WAIT, || async {
        let doc = plumb.app(&refused).await?;
        let conditions = doc["status"]["conditions"].to_string();
        Ok(conditions
            .contains("SkipDryRunOnMissingResource=true")
            .then_some(()))
    })
    .await
    .with_context(|| format!("plumb log:\n{}", plumb.log_text()))?;
    // With it the Gadget is Missing, not dry-run, and nothing is wrong.
    let doc = plumb.wait_status(&waits, "OutOfSync", None).await?;
    let entry = gadget_entry(&doc).context("the Gadget is listed")?;
    assert_eq!(entry["status"], "OutOfSync", "{doc:#}");
    assert_eq!(entry["health"]["status"], "Missing", "{doc:#}");
    let conditions = doc["status"]["conditions"].to_string();
    assert!(!conditions.contains("Error"), "{doc:#}");

    // The CRD comes from elsewhere; the next sync creates the Gadget.
    let api: Api<DynamicObject> = Api::all_with(support::client().await, &crds());
    let object: DynamicObject = serde_yaml::from_str(&crd(&later))?;
    api.create(&PostParams::default(), &object).await?;
    eventually("the CRD is served", WAIT, || async {
        let crd = get_object(&crds(), "", &format!("gadgets.{later}")).await?;
        let established = crd.is_some_and(|c| {
            c.pointer("/status/conditions")
                .and_then(Value::as_array)
                .is_some_and(|cs| {
                    cs.iter()
                        .any(|c| c["type"] == "Established" && c["status"] == "True")
                })
        });
        Ok(established.then_some(()))
    })
    .await?;
    let doc = sync(&plumb, &waits, &revision).await?;
    assert_eq!(phase(&doc), "Succeeded", "{doc:#}");
    assert!(
        get_object(&gadgets(&later), &format!("{}-w", ns.name), "g")
            .await?
            .is_some()
    );
    plumb.wait_status(&waits, "Synced", None).await?;

    // A CRD in the same application is waited for within the sync, with
    // the option as without it.
    let doc = sync(&plumb, &joint, &revision).await?;
    assert_eq!(phase(&doc), "Succeeded", "{doc:#}");
    assert!(
        get_object(&gadgets(&together), &ns.name, "g")
            .await?
            .is_some()
    );
    plumb.wait_status(&joint, "Synced", None).await?;
    Ok(())
}

/// A repository with `keep` and two ConfigMaps that will leave Git:
/// `guarded` (Prune=confirm) and `free`. Returns it and its first commit.
fn prune_repo() -> Result<(GitRepo, String)> {
    let repo = GitRepo::new(None)?;
    repo.write("app/keep.yaml", &configmap("keep", None, "blue"))?;
    repo.write(
        "app/guarded.yaml",
        &configmap("guarded", Some("Prune=confirm"), "blue"),
    )?;
    repo.write("app/free.yaml", &configmap("free", None, "blue"))?;
    let first = repo.commit("three ConfigMaps")?;
    Ok((repo, first))
}

/// Syncs the first commit, removes two ConfigMaps from Git, starts a sync
/// with prune and waits until it waits for the confirmation; returns the
/// started operation's answer.
async fn sync_until_confirmation_is_asked(
    plumb: &Plumb,
    app: &str,
    ns: &str,
    repo: &GitRepo,
    first: &str,
) -> Result<Value> {
    let doc = sync(plumb, app, first).await?;
    assert_eq!(phase(&doc), "Succeeded", "{doc:#}");
    repo.remove("app/guarded.yaml")?;
    repo.remove("app/free.yaml")?;
    let second = repo.commit("two leave Git")?;
    seen(plumb, app, &second).await?;
    let started = plumb
        .start_operation(
            &format!("/api/v1/applications/{app}/sync"),
            json!({"revision": second, "prune": true}),
        )
        .await?;
    let waiting = eventually("the sync waits for a confirmation", WAIT, || async {
        let doc = plumb.app(app).await?;
        let message = str_at(&doc, "/status/operationState/message");
        Ok(
            (phase(&doc) == "Running" && message.contains("waiting for pruning confirmation"))
                .then(|| message.to_string()),
        )
    })
    .await
    .with_context(|| format!("plumb log:\n{}", plumb.log_text()))?;
    assert!(
        waiting.starts_with("waiting for pruning confirmation of ConfigMap ")
            && waiting.contains(&format!("ConfigMap {ns}/guarded")),
        "{waiting}"
    );
    // Nothing is pruned meanwhile, not even the object without the option.
    for cm in ["guarded", "free"] {
        assert!(
            configmap_object(ns, cm).await?.is_some(),
            "{cm} is still there"
        );
    }
    Ok(started)
}

/// After the confirmation: the operation succeeds and both are pruned.
async fn pruned_after_confirmation(plumb: &Plumb, started: &Value, ns: &str) -> Result<()> {
    let doc = plumb.wait_operation(started).await?;
    assert_eq!(phase(&doc), "Succeeded", "{doc:#}");
    for cm in ["guarded", "free"] {
        assert_eq!(
            result_of(&doc, "ConfigMap", cm).map(|r| r["status"].clone()),
            Some(json!("Pruned")),
            "{doc:#}"
        );
        assert!(configmap_object(ns, cm).await?.is_none(), "{cm} is pruned");
    }
    assert!(configmap_object(ns, "keep").await?.is_some());
    Ok(())
}

#[tokio::test]
async fn prune_confirm_waits_until_confirmed_through_the_api() -> Result<()> {
    let ns = TestNamespace::new("so-confirm-api").await;
    let name = unique(&ns, "confirm");
    let (repo, first) = prune_repo()?;
    let work = tempfile::tempdir()?;
    let plumb = Plumb::start(work.path(), &app(&name, &ns.name, &repo, "app", &[])).await?;
    let started = sync_until_confirmation_is_asked(&plumb, &name, &ns.name, &repo, &first).await?;
    let (code, answer) = plumb
        .post(
            &format!("/api/v1/applications/{name}/confirm-prune"),
            json!({}),
        )
        .await?;
    assert_eq!(code, 200, "{answer}");
    pruned_after_confirmation(&plumb, &started, &ns.name).await
}

#[tokio::test]
async fn prune_confirm_waits_until_confirmed_through_the_cli() -> Result<()> {
    let ns = TestNamespace::new("so-confirm-cli").await;
    let name = unique(&ns, "confirm");
    let (repo, first) = prune_repo()?;
    let work = tempfile::tempdir()?;
    // The application's Prune=confirm holds every prune.
    let apps = app(&name, &ns.name, &repo, "app", &["Prune=confirm"]);
    let plumb = Plumb::start(work.path(), &apps).await?;
    let started = sync_until_confirmation_is_asked(&plumb, &name, &ns.name, &repo, &first).await?;
    let said = support::cli(&["app", "confirm-prune", &name, "--server", &plumb.url])?;
    assert!(
        said.starts_with(&format!("prunes of {name} confirmed")),
        "{said}"
    );
    pruned_after_confirmation(&plumb, &started, &ns.name).await
}

#[tokio::test]
async fn prune_confirm_waits_until_the_application_is_annotated() -> Result<()> {
    let ns = TestNamespace::new("so-confirm-ann").await;
    let name = unique(&ns, "confirm");
    let (repo, first) = prune_repo()?;
    let work = tempfile::tempdir()?;
    let apps = app(&name, &ns.name, &repo, "app", &[]);
    let plumb = Plumb::start(work.path(), &apps).await?;
    let started = sync_until_confirmation_is_asked(&plumb, &name, &ns.name, &repo, &first).await?;
    // Argo CD's way: argocd.argoproj.io/deletion-approved on the
    // application, a time at or after the operation's start (its start
    // itself will do).
    let at = str_at(&started, "/status/operationState/startedAt").to_string();
    let mut annotated: Value = serde_yaml::from_str(&apps)?;
    annotated["metadata"]["annotations"] = json!({"argocd.argoproj.io/deletion-approved": at});
    plumb.set_apps(&serde_yaml::to_string(&annotated)?)?;
    pruned_after_confirmation(&plumb, &started, &ns.name).await
}
