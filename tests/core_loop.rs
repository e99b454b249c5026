//! The core loop end to end: real git repositories, a real `plumb serve`, the
//! real local control plane. Each test has its own namespace(s), repository
//! and server.

mod support;

use std::time::Duration;

use anyhow::{Context, Result};
use kube::api::{Api, DynamicObject, Patch, PatchParams};
use serde_json::{Value, json};
use support::{
    GitRepo, Plumb, TestNamespace, application, configmap_value, configmaps, eventually,
    get_object, resource, str_at, wait_configmap,
};

const AUTO: &str = "  syncPolicy:\n    automated: {prune: true, selfHeal: true}\n    syncOptions: [CreateNamespace=true]\n";
const AUTO_NO_PRUNE_NO_HEAL: &str = "  syncPolicy:\n    automated: {prune: false, selfHeal: false}\n    syncOptions: [CreateNamespace=true]\n";
const WAIT: Duration = Duration::from_secs(90);

fn deployments() -> kube::core::ApiResource {
    resource("apps", "v1", "Deployment", "deployments")
}

/// The first item of the array at `pointer` whose `key` is `want`.
fn find_in<'a>(v: &'a Value, pointer: &str, key: &str, want: &str) -> Option<&'a Value> {
    v.pointer(pointer)?
        .as_array()?
        .iter()
        .find(|item| item[key] == want)
}

fn settings(color: &str) -> String {
    format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\ndata:\n  color: {color}\n"
    )
}

#[tokio::test]
async fn first_sync_creates_the_namespace_and_every_object_including_a_service_without_protocol()
-> Result<()> {
    let ns = TestNamespace::new("first").await;
    let repo = GitRepo::new(Some("e2e/basic"))?;
    let work = tempfile::tempdir()?;
    // Argo CD's `spec.info` (links shown in its UI) is not supported yet.
    let extra = format!("{AUTO}  info:\n    - name: owner\n      value: team-a\n");
    let plumb = Plumb::start(
        work.path(),
        &application(&ns.name, &repo.url(), ".", &ns.name, &extra),
    )
    .await?;

    let app = plumb.wait_status(&ns.name, "Synced", None).await?;
    assert_eq!(str_at(&app, "/status/sync/revision"), repo.head()?);
    assert_eq!(str_at(&app, "/status/operationState/phase"), "Succeeded");
    // The simulated nodes "run" nginx: the Deployment becomes available.
    plumb
        .wait_status(&ns.name, "Synced", Some("Healthy"))
        .await?;

    let namespace =
        get_object(&resource("", "v1", "Namespace", "namespaces"), "", &ns.name).await?;
    assert!(
        namespace.is_some(),
        "CreateNamespace=true created the namespace"
    );
    let service = get_object(&resource("", "v1", "Service", "services"), &ns.name, "web")
        .await?
        .context("Service web exists")?;
    assert_eq!(str_at(&service, "/spec/ports/0/protocol"), "TCP");
    let cm = get_object(&configmaps(), &ns.name, "settings")
        .await?
        .context("ConfigMap exists")?;
    assert_eq!(
        str_at(&cm, "/metadata/annotations/argocd.argoproj.io~1tracking-id"),
        format!("{}:/ConfigMap:{}/settings", ns.name, ns.name)
    );
    assert_eq!(str_at(&cm, "/metadata/labels/plumb.dev~1managed"), "true");

    let tree = eventually(
        "the resource tree shows the Deployment's ReplicaSet",
        WAIT,
        || async {
            let tree = plumb
                .get(&format!("/api/v1/applications/{}/resource-tree", ns.name))
                .await?;
            let owned =
                tree["nodes"].as_array().into_iter().flatten().any(|n| {
                    n["kind"] == "ReplicaSet" && n["parentRefs"][0]["kind"] == "Deployment"
                });
            Ok(owned.then_some(tree))
        },
    )
    .await?;
    assert!(find_in(&tree, "/nodes", "kind", "ConfigMap").is_some());

    let resources = app
        .pointer("/status/resources")
        .and_then(Value::as_array)
        .context("resources")?;
    assert_eq!(resources.len(), 4, "{resources:#?}");
    assert!(resources.iter().all(|r| r["status"] == "Synced"));
    let history = app
        .pointer("/status/history")
        .and_then(Value::as_array)
        .context("history")?;
    assert_eq!(history.len(), 1);
    let warning = find_in(
        &app,
        "/status/conditions",
        "type",
        "UnsupportedFieldWarning",
    )
    .context("unsupported field reported")?;
    assert!(
        warning["message"]
            .as_str()
            .unwrap_or_default()
            .contains("spec.info"),
        "{warning}"
    );
    Ok(())
}

#[tokio::test]
async fn a_commit_that_changes_a_field_is_applied_and_git_revert_rolls_it_back() -> Result<()> {
    let ns = TestNamespace::new("change").await;
    let repo = GitRepo::new(Some("e2e/basic"))?;
    let work = tempfile::tempdir()?;
    let plumb = Plumb::start(
        work.path(),
        &application(&ns.name, &repo.url(), ".", &ns.name, AUTO),
    )
    .await?;
    plumb.wait_status(&ns.name, "Synced", None).await?;

    repo.write("configmap.yaml", &settings("green"))?;
    let changed = repo.commit("make it green")?;
    wait_configmap(&ns.name, "settings", "color", "green").await?;

    repo.git(&["revert", "--no-edit", "HEAD"])?;
    let reverted = repo.head()?;
    wait_configmap(&ns.name, "settings", "color", "blue").await?;
    let app = eventually("history shows three deployments", WAIT, || async {
        let app = plumb.app(&ns.name).await?;
        let n = app
            .pointer("/status/history")
            .and_then(Value::as_array)
            .map_or(0, Vec::len);
        Ok((n == 3).then_some(app))
    })
    .await?;
    let revisions: Vec<&str> = app["status"]["history"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|h| h["revision"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(&revisions[1..], [changed.as_str(), reverted.as_str()]);
    Ok(())
}

#[tokio::test]
async fn a_webhook_deploys_a_commit_without_waiting_for_the_poll() -> Result<()> {
    let (changed, untouched) = (
        TestNamespace::new("hook-a").await,
        TestNamespace::new("hook-b").await,
    );
    let repo = GitRepo::new(None)?;
    for dir in ["a", "b"] {
        repo.write(&format!("{dir}/configmap.yaml"), &settings("blue"))?;
    }
    repo.commit("two folders")?;
    let work = tempfile::tempdir()?;
    let apps = format!(
        "{}---\n{}",
        application(&changed.name, &repo.url(), "a", &changed.name, AUTO),
        application(&untouched.name, &repo.url(), "b", &untouched.name, AUTO),
    );
    // An hour between polls: only the webhook can bring the commit in.
    let plumb = Plumb::start_polling_every(work.path(), &apps, 3600).await?;
    plumb.wait_status(&changed.name, "Synced", None).await?;
    plumb.wait_status(&untouched.name, "Synced", None).await?;

    repo.write("a/configmap.yaml", &settings("green"))?;
    let head = repo.commit("make a green")?;
    // A GitHub push event names the repository by several URLs; the one the
    // applications use is among them.
    let (code, answer) = plumb
        .post_with_headers(
            "/api/webhook",
            &[("X-GitHub-Event", "push")],
            json!({"ref": "refs/heads/main", "repository": {
                "html_url": "https://github.example/team/unrelated",
                "clone_url": repo.url(),
            }}),
        )
        .await?;
    assert_eq!((code, &answer["refreshed"]), (200, &json!(2)), "{answer}");
    wait_configmap(&changed.name, "settings", "color", "green").await?;
    // The other application moves to the new revision too, unchanged.
    eventually("both applications show the new revision", WAIT, || async {
        let b = plumb.app(&untouched.name).await?;
        Ok((b.pointer("/status/sync/revision") == Some(&json!(head))).then_some(()))
    })
    .await?;
    assert_eq!(
        plumb.app(&untouched.name).await?["status"]["sync"]["status"],
        "Synced"
    );

    // A push to a repository no application uses fetches nothing: the
    // data directory still holds only the one repository.
    let unused = GitRepo::new(None)?;
    unused.write("x.yaml", &settings("red"))?;
    unused.commit("unused")?;
    let (code, answer) = plumb
        .post("/api/webhook", json!({"repoURL": unused.url()}))
        .await?;
    assert_eq!((code, &answer["refreshed"]), (200, &json!(0)), "{answer}");
    let cached = std::fs::read_dir(plumb.data_dir.join("repos"))?.count();
    assert_eq!(cached, 1, "repositories cloned into the data directory");
    Ok(())
}

#[tokio::test]
async fn a_removed_file_is_pruned_only_when_prune_is_on() -> Result<()> {
    let (on, off) = (
        TestNamespace::new("prune-on").await,
        TestNamespace::new("prune-off").await,
    );
    let repo = GitRepo::new(None)?;
    for dir in ["on", "off"] {
        repo.write(
            &format!("{dir}/keep.yaml"),
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: keep}\ndata: {a: b}\n",
        )?;
        repo.write(
            &format!("{dir}/gone.yaml"),
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: gone}\ndata: {a: b}\n",
        )?;
    }
    repo.commit("two folders")?;
    let work = tempfile::tempdir()?;
    let apps = format!(
        "{}---\n{}",
        application(&on.name, &repo.url(), "on", &on.name, AUTO),
        application(
            &off.name,
            &repo.url(),
            "off",
            &off.name,
            AUTO_NO_PRUNE_NO_HEAL
        )
    );
    let plumb = Plumb::start(work.path(), &apps).await?;
    plumb.wait_status(&on.name, "Synced", None).await?;
    plumb.wait_status(&off.name, "Synced", None).await?;

    repo.remove("on/gone.yaml")?;
    repo.remove("off/gone.yaml")?;
    repo.commit("remove gone")?;
    eventually("gone is pruned with prune on", WAIT, || async {
        Ok(get_object(&configmaps(), &on.name, "gone")
            .await?
            .is_none()
            .then_some(()))
    })
    .await?;
    let app = plumb.wait_status(&off.name, "OutOfSync", None).await?;
    let gone = find_in(&app, "/status/resources", "name", "gone").context("gone listed")?;
    assert_eq!(gone["requiresPruning"], true);
    assert!(
        get_object(&configmaps(), &off.name, "gone")
            .await?
            .is_some(),
        "prune off keeps the object"
    );
    assert!(get_object(&configmaps(), &on.name, "keep").await?.is_some());

    // A manual sync with prune removes it.
    let app = plumb
        .operate(
            &format!("/api/v1/applications/{}/sync", off.name),
            json!({"prune": true}),
        )
        .await?;
    assert_eq!(str_at(&app, "/status/operationState/phase"), "Succeeded");
    assert!(
        get_object(&configmaps(), &off.name, "gone")
            .await?
            .is_none()
    );
    Ok(())
}

async fn scale(ns: &str, name: &str, replicas: i64) -> Result<()> {
    let api: Api<DynamicObject> = Api::namespaced_with(support::client().await, ns, &deployments());
    api.patch(
        name,
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"replicas": replicas}})),
    )
    .await?;
    Ok(())
}

async fn replicas(ns: &str, name: &str) -> Result<i64> {
    let d = get_object(&deployments(), ns, name)
        .await?
        .context("deployment exists")?;
    Ok(d.pointer("/spec/replicas")
        .and_then(Value::as_i64)
        .unwrap_or_default())
}

#[tokio::test]
async fn drift_is_healed_with_self_heal_and_only_reported_without() -> Result<()> {
    let (heal, report) = (
        TestNamespace::new("heal").await,
        TestNamespace::new("noheal").await,
    );
    let repo = GitRepo::new(Some("e2e/basic"))?;
    let work = tempfile::tempdir()?;
    let apps = format!(
        "{}---\n{}",
        application(&heal.name, &repo.url(), ".", &heal.name, AUTO),
        application(
            &report.name,
            &repo.url(),
            ".",
            &report.name,
            AUTO_NO_PRUNE_NO_HEAL
        )
    );
    let plumb = Plumb::start(work.path(), &apps).await?;
    plumb.wait_status(&heal.name, "Synced", None).await?;
    plumb.wait_status(&report.name, "Synced", None).await?;

    scale(&heal.name, "web", 5).await?;
    scale(&report.name, "web", 5).await?;
    eventually("self-heal puts replicas back to 1", WAIT, || async {
        Ok((replicas(&heal.name, "web").await? == 1).then_some(()))
    })
    .await?;
    plumb.wait_status(&heal.name, "Synced", None).await?;

    let app = plumb.wait_status(&report.name, "OutOfSync", None).await?;
    let web =
        find_in(&app, "/status/resources", "kind", "Deployment").context("deployment listed")?;
    assert_eq!(web["status"], "OutOfSync");
    assert_eq!(
        replicas(&report.name, "web").await?,
        5,
        "without selfHeal the drift stays"
    );
    let diff = plumb
        .get(&format!(
            "/api/v1/applications/{}/managed-resources",
            report.name
        ))
        .await?;
    let item = find_in(&diff, "/items", "kind", "Deployment").context("deployment diff")?;
    assert!(
        item["diff"]
            .as_str()
            .unwrap_or_default()
            .contains("replicas"),
        "{item:#}"
    );
    Ok(())
}

#[tokio::test]
async fn rollback_by_history_id_pins_the_revision_until_the_next_manual_sync() -> Result<()> {
    let ns = TestNamespace::new("rollback").await;
    let repo = GitRepo::new(Some("e2e/basic"))?;
    let first = repo.head()?;
    let work = tempfile::tempdir()?;
    let plumb = Plumb::start(
        work.path(),
        &application(&ns.name, &repo.url(), ".", &ns.name, AUTO),
    )
    .await?;
    plumb.wait_status(&ns.name, "Synced", None).await?;
    repo.write("configmap.yaml", &settings("green"))?;
    repo.commit("green")?;
    wait_configmap(&ns.name, "settings", "color", "green").await?;

    let app = plumb
        .operate(
            &format!("/api/v1/applications/{}/rollback", ns.name),
            json!({"id": 0}),
        )
        .await?;
    assert_eq!(str_at(&app, "/status/rollback/revision"), first);
    assert_eq!(
        configmap_value(&ns.name, "settings", "color")
            .await?
            .as_deref(),
        Some("blue")
    );

    // A new commit does not undo the rollback while it is pinned.
    repo.write("configmap.yaml", &settings("red"))?;
    repo.commit("red")?;
    let app = plumb
        .get(&format!("/api/v1/applications/{}?refresh=hard", ns.name))
        .await?;
    assert_eq!(
        str_at(&app, "/status/sync/revision"),
        first,
        "pinned to the rolled-back revision"
    );
    assert_eq!(str_at(&app, "/status/sync/status"), "Synced");
    assert_eq!(
        configmap_value(&ns.name, "settings", "color")
            .await?
            .as_deref(),
        Some("blue")
    );

    // The next manual sync clears the pin and deploys the branch again.
    let app = plumb
        .operate(&format!("/api/v1/applications/{}/sync", ns.name), json!({}))
        .await?;
    assert!(
        app.pointer("/status/rollback").is_none_or(Value::is_null),
        "{app:#}"
    );
    assert_eq!(
        configmap_value(&ns.name, "settings", "color")
            .await?
            .as_deref(),
        Some("red")
    );
    Ok(())
}

#[tokio::test]
async fn an_empty_render_does_not_prune() -> Result<()> {
    let ns = TestNamespace::new("empty").await;
    let repo = GitRepo::new(None)?;
    repo.write("app/settings.yaml", &settings("blue"))?;
    repo.write("app/README.md", "manifests live here\n")?;
    repo.commit("one configmap")?;
    let work = tempfile::tempdir()?;
    let plumb = Plumb::start(
        work.path(),
        &application(&ns.name, &repo.url(), "app", &ns.name, AUTO),
    )
    .await?;
    plumb.wait_status(&ns.name, "Synced", None).await?;

    repo.remove("app/settings.yaml")?;
    repo.commit("remove every manifest")?;
    let app = eventually("the sync is refused", WAIT, || async {
        let app = plumb.app(&ns.name).await?;
        Ok((str_at(&app, "/status/operationState/phase") == "Failed").then_some(app))
    })
    .await?;
    assert!(
        str_at(&app, "/status/operationState/message").contains("empty"),
        "{app:#}"
    );
    assert!(
        get_object(&configmaps(), &ns.name, "settings")
            .await?
            .is_some(),
        "nothing was pruned"
    );
    Ok(())
}

#[tokio::test]
async fn a_broken_manifest_in_one_app_leaves_another_syncing() -> Result<()> {
    let (good, bad) = (
        TestNamespace::new("good").await,
        TestNamespace::new("bad").await,
    );
    let repo = GitRepo::new(None)?;
    repo.write("good/settings.yaml", &settings("blue"))?;
    repo.write("bad/settings.yaml", &settings("blue"))?;
    repo.commit("two apps")?;
    let work = tempfile::tempdir()?;
    let apps = format!(
        "{}---\n{}",
        application(&good.name, &repo.url(), "good", &good.name, AUTO),
        application(&bad.name, &repo.url(), "bad", &bad.name, AUTO)
    );
    let plumb = Plumb::start(work.path(), &apps).await?;
    plumb.wait_status(&bad.name, "Synced", None).await?;

    repo.write(
        "bad/settings.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: settings\ndata: [\n",
    )?;
    repo.write("good/settings.yaml", &settings("green"))?;
    repo.commit("break one, change the other")?;
    wait_configmap(&good.name, "settings", "color", "green").await?;
    let app = plumb.wait_status(&bad.name, "Unknown", None).await?;
    let condition = find_in(&app, "/status/conditions", "type", "ComparisonError")
        .context("a comparison error")?;
    assert!(
        condition["message"]
            .as_str()
            .unwrap_or_default()
            .contains("settings.yaml"),
        "{condition}"
    );
    assert_eq!(
        configmap_value(&bad.name, "settings", "color")
            .await?
            .as_deref(),
        Some("blue"),
        "nothing pruned or changed"
    );
    Ok(())
}

/// The first condition of a type on an application, as text.
fn condition_message(app: &Value, type_: &str) -> String {
    app["status"]["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|c| c["type"] == type_)
        .map(|c| c["message"].as_str().unwrap_or_default().to_string())
        .unwrap_or_default()
}

#[tokio::test]
async fn bad_sources_are_errors_on_their_own_application_only() -> Result<()> {
    let good = TestNamespace::new("srcgood").await;
    let repo = GitRepo::new(None)?;
    repo.write("good/settings.yaml", &settings("blue"))?;
    repo.write(
        "unknown/widget.yaml",
        "apiVersion: nowhere.plumb.dev/v1\nkind: Nope\nmetadata: {name: n}\n",
    )?;
    repo.commit("sources")?;
    let work = tempfile::tempdir()?;
    let prefix = &good.name;
    let bad = |suffix: &str, repo_url: &str, path: &str, revision: &str| {
        application(&format!("{prefix}-{suffix}"), repo_url, path, prefix, AUTO).replace(
            "targetRevision: main",
            &format!("targetRevision: {revision}"),
        )
    };
    let apps = [
        application(prefix, &repo.url(), "good", prefix, AUTO),
        bad("unreachable", "file:///nonexistent/plumb-repo", ".", "main"),
        bad("norevision", &repo.url(), "good", "no-such-branch"),
        bad("unknownkind", &repo.url(), "unknown", "main"),
        bad("escape", &repo.url(), "../outside", "main"),
    ]
    .join("---\n");
    let plumb = Plumb::start(work.path(), &apps).await?;
    plumb.wait_status(prefix, "Synced", None).await?;
    for (suffix, says) in [
        ("unreachable", "nonexistent/plumb-repo"),
        ("norevision", "no-such-branch"),
        ("unknownkind", "Nope"),
        ("escape", "outside"),
    ] {
        let name = format!("{prefix}-{suffix}");
        let app = eventually(
            &format!("{name} reports a comparison error"),
            WAIT,
            || async {
                let app = plumb.app(&name).await?;
                Ok((!condition_message(&app, "ComparisonError").is_empty()).then_some(app))
            },
        )
        .await?;
        let message = condition_message(&app, "ComparisonError");
        assert!(message.contains(says), "{name}: {message}");
        assert_eq!(str_at(&app, "/status/sync/status"), "Unknown", "{name}");
        assert!(
            app.pointer("/status/operationState")
                .is_none_or(Value::is_null),
            "{name} never synced"
        );
    }
    Ok(())
}

#[tokio::test]
async fn editing_the_apps_file_adds_and_removes_applications_without_a_restart() -> Result<()> {
    let (first, second) = (
        TestNamespace::new("file1").await,
        TestNamespace::new("file2").await,
    );
    let repo = GitRepo::new(None)?;
    repo.write("app/settings.yaml", &settings("blue"))?;
    repo.commit("one app")?;
    let work = tempfile::tempdir()?;
    let one = application(&first.name, &repo.url(), "app", &first.name, AUTO);
    let two = application(&second.name, &repo.url(), "app", &second.name, AUTO);
    let plumb = Plumb::start(work.path(), &one).await?;
    plumb.wait_status(&first.name, "Synced", None).await?;

    plumb.set_apps(&format!("{one}---\n{two}"))?;
    plumb.wait_status(&second.name, "Synced", None).await?;

    plumb.set_apps(&two)?;
    eventually(
        "the removed application is no longer managed",
        WAIT,
        || async {
            let r =
                reqwest::get(format!("{}/api/v1/applications/{}", plumb.url, first.name)).await?;
            Ok((r.status() == 404).then_some(()))
        },
    )
    .await?;
    assert!(
        get_object(&configmaps(), &first.name, "settings")
            .await?
            .is_some(),
        "a removed application's objects stay in the cluster"
    );
    Ok(())
}

#[tokio::test]
async fn a_restart_of_plumb_serve_keeps_history_and_does_not_resync() -> Result<()> {
    let ns = TestNamespace::new("restart").await;
    let repo = GitRepo::new(Some("e2e/basic"))?;
    let work = tempfile::tempdir()?;
    let plumb = Plumb::start(
        work.path(),
        &application(&ns.name, &repo.url(), ".", &ns.name, AUTO),
    )
    .await?;
    let before = plumb.wait_status(&ns.name, "Synced", None).await?;
    let plumb = plumb.restart().await?;
    let after = plumb.wait_status(&ns.name, "Synced", None).await?;
    assert_eq!(before["status"]["history"], after["status"]["history"]);
    assert_eq!(after["status"]["history"].as_array().map(Vec::len), Some(1));
    Ok(())
}

#[tokio::test]
async fn secret_values_never_appear_in_diffs_or_api_documents() -> Result<()> {
    let ns = TestNamespace::new("secret").await;
    let repo = GitRepo::new(Some("e2e/basic"))?;
    let work = tempfile::tempdir()?;
    let plumb = Plumb::start(
        work.path(),
        &application(&ns.name, &repo.url(), ".", &ns.name, AUTO_NO_PRUNE_NO_HEAL),
    )
    .await?;
    plumb.wait_status(&ns.name, "Synced", None).await?;

    // Drift the Secret in the cluster so there is a diff to show.
    let api: Api<DynamicObject> = Api::namespaced_with(
        support::client().await,
        &ns.name,
        &resource("", "v1", "Secret", "secrets"),
    );
    api.patch(
        "creds",
        &PatchParams::default(),
        &Patch::Merge(json!({"stringData": {"password": "cluster-secret-value-2"}})),
    )
    .await?;
    plumb.wait_status(&ns.name, "OutOfSync", None).await?;

    let managed = plumb
        .get(&format!(
            "/api/v1/applications/{}/managed-resources",
            ns.name
        ))
        .await?;
    let secret = find_in(&managed, "/items", "kind", "Secret").context("secret item")?;
    assert_eq!(secret["modified"], true);
    assert!(
        secret["diff"]
            .as_str()
            .unwrap_or_default()
            .contains("password"),
        "{secret:#}"
    );
    let documents = [
        managed.to_string(),
        plumb.get("/api/v1/applications").await?.to_string(),
    ];
    for leaked in [
        "git-secret-value-1",
        "cluster-secret-value-2",
        "Z2l0LXNlY3JldC12YWx1ZS0x",
        "Y2x1c3Rlci1zZWNyZXQtdmFsdWUtMg==",
    ] {
        for doc in &documents {
            assert!(!doc.contains(leaked), "{leaked} appears in an API document");
        }
        assert!(
            !plumb.log_text().contains(leaked),
            "{leaked} appears in the log"
        );
    }
    Ok(())
}

#[tokio::test]
async fn a_crd_and_its_custom_resource_sync_in_one_go() -> Result<()> {
    // The CRD is cluster-wide and outlives the test: remove it first, so the
    // sync always meets a kind the cluster does not serve yet.
    let crds: Api<DynamicObject> = Api::all_with(
        support::client().await,
        &resource(
            "apiextensions.k8s.io",
            "v1",
            "CustomResourceDefinition",
            "customresourcedefinitions",
        ),
    );
    let _ = crds
        .delete("widgets.e2e.plumb.dev", &Default::default())
        .await;
    eventually(
        "the Widget CRD from an earlier run is gone",
        Duration::from_secs(60),
        || async {
            Ok(crds
                .get_opt("widgets.e2e.plumb.dev")
                .await?
                .is_none()
                .then_some(()))
        },
    )
    .await?;
    let ns = TestNamespace::new("crd").await;
    let repo = GitRepo::new(Some("e2e/crd"))?;
    let work = tempfile::tempdir()?;
    let plumb = Plumb::start(
        work.path(),
        &application(&ns.name, &repo.url(), ".", &ns.name, AUTO),
    )
    .await?;
    plumb
        .wait_status(&ns.name, "Synced", Some("Healthy"))
        .await?;
    let widget = get_object(
        &resource("e2e.plumb.dev", "v1", "Widget", "widgets"),
        &ns.name,
        "gizmo",
    )
    .await?;
    assert_eq!(
        widget.and_then(|w| w.pointer("/spec/size").and_then(Value::as_i64)),
        Some(3)
    );
    Ok(())
}

#[tokio::test]
async fn application_objects_in_the_cluster_are_managed_and_get_status() -> Result<()> {
    let (apps_ns, target) = (
        TestNamespace::new("apps").await,
        TestNamespace::new("target").await,
    );
    apps_ns.create().await?;
    let repo = GitRepo::new(Some("e2e/basic"))?;
    let work = tempfile::tempdir()?;
    let plumb = Plumb::start_watching(work.path(), "", &apps_ns.name).await?;

    let manifest: Value = serde_yaml::from_str(&application(
        "from-cluster",
        &repo.url(),
        ".",
        &target.name,
        AUTO,
    ))?;
    let api: Api<DynamicObject> = Api::namespaced_with(
        support::client().await,
        &apps_ns.name,
        &resource("argoproj.io", "v1alpha1", "Application", "applications"),
    );
    api.create(&Default::default(), &serde_json::from_value(manifest)?)
        .await?;
    plumb.wait_status("from-cluster", "Synced", None).await?;
    let cr = eventually(
        "status is written to the Application object",
        WAIT,
        || async {
            let cr = get_object(
                &resource("argoproj.io", "v1alpha1", "Application", "applications"),
                &apps_ns.name,
                "from-cluster",
            )
            .await?;
            Ok(cr.filter(|c| str_at(c, "/status/sync/status") == "Synced"))
        },
    )
    .await?;
    assert_eq!(str_at(&cr, "/status/sync/revision"), repo.head()?);
    assert!(
        get_object(&configmaps(), &target.name, "settings")
            .await?
            .is_some()
    );

    // Once written, a status that has not changed is not written again,
    // also not by a new process that finds it on the object.
    let written = |cr: &Value| str_at(cr, "/metadata/resourceVersion").to_string();
    let object = || async {
        get_object(
            &resource("argoproj.io", "v1alpha1", "Application", "applications"),
            &apps_ns.name,
            "from-cluster",
        )
        .await?
        .context("the Application object")
    };
    // The writer may still be writing what followed the sync (history,
    // health): wait until the object stays the same for a few seconds.
    let mut before = written(&cr);
    let settling = std::time::Instant::now();
    loop {
        tokio::time::sleep(Duration::from_secs(3)).await;
        let now = written(&object().await?);
        if now == before {
            break;
        }
        before = now;
        anyhow::ensure!(
            settling.elapsed() < WAIT,
            "the Application object keeps changing"
        );
    }
    let plumb = plumb.restart().await?;
    plumb.wait_status("from-cluster", "Synced", None).await?;
    plumb
        .get("/api/v1/applications/from-cluster?refresh=normal")
        .await?;
    // The status writer runs after the reconcile; give it its turn.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let after = object().await?;
    assert_eq!(written(&after), before, "{after:#}");
    Ok(())
}

#[tokio::test]
async fn only_objects_with_plumbs_label_are_watched() -> Result<()> {
    use plumb_engine::cluster::Cluster;
    use plumb_engine::live::LiveState;
    use plumb_engine::model::ResourceKey;

    let ns = TestNamespace::new("labelled").await;
    ns.create().await?;
    let client = support::client().await;
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), &ns.name, &configmaps());
    let app = ns.name.clone();
    let key = |name: &str| ResourceKey {
        group: String::new(),
        kind: "ConfigMap".into(),
        namespace: ns.name.clone(),
        name: name.into(),
    };
    // Both carry a tracking annotation naming themselves; only one carries
    // the label Plumb sets when it applies.
    for (name, labels) in [
        ("applied-by-plumb", json!({"plumb.dev/managed": "true"})),
        ("annotated-by-hand", json!({})),
    ] {
        let object = json!({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": name, "labels": labels, "annotations": {
                "argocd.argoproj.io/tracking-id": key(name).tracking_id(&app)
            }},
        });
        api.patch(name, &PatchParams::apply("e2e"), &Patch::Apply(&object))
            .await?;
    }
    let kind = Cluster::new(client.clone())
        .resolve("v1", "ConfigMap")
        .await?
        .context("ConfigMaps are served")?;
    let cancel = tokio_util::sync::CancellationToken::new();
    let live = LiveState::new(client, Default::default(), cancel.clone());
    live.watch(&kind, Duration::from_secs(30)).await?;
    let tracked: Vec<ResourceKey> = live.tracked(&app).into_keys().collect();
    cancel.cancel();
    assert_eq!(tracked, [key("applied-by-plumb")]);
    Ok(())
}
