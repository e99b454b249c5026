//! `ignoreDifferences` and `RespectIgnoreDifferences` end to end: another
//! client (standing in for an HPA or a webhook) changes fields with a field
//! manager of its own, on the real local control plane.

mod support;

use std::time::Duration;

use anyhow::{Context, Result};
use kube::api::{Api, DynamicObject, Patch, PatchParams};
use serde_json::{Value, json};
use support::{
    GitRepo, Plumb, TestNamespace, application_with, configmap_value, eventually, get_object,
    resource, wait_configmap,
};

const WAIT: Duration = Duration::from_secs(90);
/// The field manager of the other client.
const OTHER: &str = "hpa-sim";

fn deployments() -> kube::core::ApiResource {
    resource("apps", "v1", "Deployment", "deployments")
}

fn deployment(image: &str) -> String {
    format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  replicas: 1\n  selector:\n    matchLabels: {{app: web}}\n  template:\n    metadata:\n      labels: {{app: web}}\n    spec:\n      containers:\n        - name: web\n          image: {image}\n"
    )
}

fn settings(color: &str) -> String {
    format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\ndata:\n  color: {color}\n"
    )
}

/// A repository with the Deployment `web` and the ConfigMap `settings`.
fn repo() -> Result<GitRepo> {
    let repo = GitRepo::new(None)?;
    repo.write("deployment.yaml", &deployment("nginx:1.25"))?;
    repo.write("configmap.yaml", &settings("blue"))?;
    repo.commit("web and settings")?;
    Ok(repo)
}

/// An application of `repo` into `ns`, self-healing, with `extra` laid
/// over its spec (`ignoreDifferences`, more sync options).
fn app(ns: &str, repo: &GitRepo, sync_options: &[&str], extra: Value) -> String {
    let mut options = vec!["CreateNamespace=true"];
    options.extend_from_slice(sync_options);
    let mut spec = json!({
        "source": {"repoURL": repo.url(), "targetRevision": "main", "path": "."},
        "syncPolicy": {"automated": {"prune": true, "selfHeal": true}, "syncOptions": options},
    });
    if let (Some(spec), Value::Object(extra)) = (spec.as_object_mut(), extra) {
        spec.extend(extra);
    }
    application_with(ns, ns, spec)
}

fn replicas_ignored() -> Value {
    json!({"ignoreDifferences": [{"group": "apps", "kind": "Deployment", "jsonPointers": ["/spec/replicas"]}]})
}

/// Patches the Deployment `web` as another client would (an Update with
/// field manager [`OTHER`]).
async fn patch_web(ns: &str, patch: Value) -> Result<()> {
    let api: Api<DynamicObject> = Api::namespaced_with(support::client().await, ns, &deployments());
    let params = PatchParams {
        field_manager: Some(OTHER.into()),
        ..Default::default()
    };
    api.patch("web", &params, &Patch::Strategic(patch)).await?;
    Ok(())
}

async fn web(ns: &str) -> Result<Value> {
    get_object(&deployments(), ns, "web")
        .await?
        .context("deployment web exists")
}

async fn replicas(ns: &str) -> Result<i64> {
    Ok(web(ns)
        .await?
        .pointer("/spec/replicas")
        .and_then(Value::as_i64)
        .unwrap_or_default())
}

async fn image(ns: &str) -> Result<String> {
    Ok(web(ns)
        .await?
        .pointer("/spec/template/spec/containers/0/image")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string())
}

/// The Deployment's entry of the managed-resources API.
async fn web_diff(plumb: &Plumb, app: &str) -> Result<Value> {
    let items = plumb
        .get(&format!("/api/v1/applications/{app}/managed-resources"))
        .await?;
    items["items"]
        .as_array()
        .and_then(|items| items.iter().find(|i| i["kind"] == "Deployment"))
        .cloned()
        .context("the Deployment is listed")
}

/// The application's `status.reconciledAt` (RFC 3339, seconds).
async fn reconciled_at(plumb: &Plumb, app: &str) -> Result<String> {
    Ok(plumb.app(app).await?["status"]["reconciledAt"]
        .as_str()
        .unwrap_or_default()
        .to_string())
}

/// The Deployment's sync status in the application's status.
async fn web_sync(plumb: &Plumb, app: &str) -> Result<String> {
    let doc = plumb.app(app).await?;
    Ok(doc["status"]["resources"]
        .as_array()
        .and_then(|r| r.iter().find(|i| i["kind"] == "Deployment"))
        .map(|r| r["status"].as_str().unwrap_or_default().to_string())
        .unwrap_or_default())
}

#[tokio::test]
async fn fields_another_manager_changes_are_ignored_by_pointer_jq_or_manager() -> Result<()> {
    let (control, pointer, jq, managers) = (
        TestNamespace::new("ign-none").await,
        TestNamespace::new("ign-ptr").await,
        TestNamespace::new("ign-jq").await,
        TestNamespace::new("ign-mgr").await,
    );
    let repo = repo()?;
    let work = tempfile::tempdir()?;
    let apps = [
        app(&control.name, &repo, &[], json!({})),
        app(&pointer.name, &repo, &[], replicas_ignored()),
        app(
            &jq.name,
            &repo,
            &[],
            json!({"ignoreDifferences": [{"group": "apps", "kind": "Deployment",
                "jqPathExpressions": [".spec.template.spec.containers[] | select(.name == \"web\") | .image"]}]}),
        ),
        app(
            &managers.name,
            &repo,
            &[],
            json!({"ignoreDifferences": [{"group": "*", "kind": "*", "managedFieldsManagers": [OTHER]}]}),
        ),
    ]
    .join("---\n");
    let plumb = Plumb::start(work.path(), &apps).await?;
    let mut before = Vec::new();
    for ns in [&control, &pointer, &jq, &managers] {
        plumb.wait_status(&ns.name, "Synced", None).await?;
        before.push(reconciled_at(&plumb, &ns.name).await?);
    }
    // reconciledAt counts seconds: a later one is of a comparison made
    // after the changes below.
    tokio::time::sleep(Duration::from_millis(1100)).await;

    for ns in [&control, &pointer, &managers] {
        patch_web(&ns.name, json!({"spec": {"replicas": 3}})).await?;
    }
    patch_web(
        &jq.name,
        json!({"spec": {"template": {"spec": {"containers": [{"name": "web", "image": "nginx:1.26"}]}}}}),
    )
    .await?;

    // Without a rule the change is drift, and self-heal undoes it.
    eventually("self-heal puts replicas back to 1", WAIT, || async {
        Ok((replicas(&control.name).await? == 1).then_some(()))
    })
    .await?;
    plumb.wait_status(&control.name, "Synced", None).await?;

    // With one, the application compares the changed object (a change of
    // its objects is compared at once), finds its Deployment Synced, shows
    // no diff, and leaves it alone.
    for (ns, before) in [&pointer, &jq, &managers].into_iter().zip(&before[1..]) {
        eventually(
            &format!("{} compared the change", ns.name),
            WAIT,
            || async { Ok((reconciled_at(&plumb, &ns.name).await? > *before).then_some(())) },
        )
        .await?;
    }
    for ns in [&pointer, &jq, &managers] {
        let app = plumb.wait_status(&ns.name, "Synced", None).await?;
        assert_eq!(web_sync(&plumb, &ns.name).await?, "Synced", "{app:#}");
        let diff = web_diff(&plumb, &ns.name).await?;
        assert_eq!(diff["diff"], "", "{}: {diff:#}", ns.name);
        assert_eq!(diff["modified"], false, "{}", ns.name);
        assert!(
            plumb.history_len(&ns.name).await? == 1,
            "{}: no sync after the first",
            ns.name
        );
    }
    assert_eq!(replicas(&pointer.name).await?, 3);
    assert_eq!(replicas(&managers.name).await?, 3);
    assert_eq!(image(&jq.name).await?, "nginx:1.26");
    Ok(())
}

#[tokio::test]
async fn respect_ignore_differences_keeps_the_live_value_through_a_sync() -> Result<()> {
    let (respect, plain, annotated) = (
        TestNamespace::new("respect").await,
        TestNamespace::new("norespect").await,
        TestNamespace::new("respect-ann").await,
    );
    let repo = repo()?;
    let work = tempfile::tempdir()?;
    let apps = [
        app(
            &respect.name,
            &repo,
            &["RespectIgnoreDifferences=true"],
            replicas_ignored(),
        ),
        app(&plain.name, &repo, &[], replicas_ignored()),
        // The per-object option, in the annotation of the Deployment of
        // the second commit below; this application has none of its own.
        app(&annotated.name, &repo, &[], replicas_ignored()),
    ]
    .join("---\n");
    let plumb = Plumb::start(work.path(), &apps).await?;
    for ns in [&respect, &plain, &annotated] {
        plumb.wait_status(&ns.name, "Synced", None).await?;
        patch_web(&ns.name, json!({"spec": {"replicas": 4}})).await?;
    }

    // A change elsewhere in the object syncs it.
    let mut next = deployment("nginx:1.27");
    next = next.replace(
        "  name: web\n",
        "  name: web\n  annotations:\n    marker: two\n",
    );
    repo.write("deployment.yaml", &next)?;
    repo.commit("nginx 1.27")?;
    for ns in [&respect, &plain] {
        eventually(&format!("{} runs nginx 1.27", ns.name), WAIT, || async {
            Ok((image(&ns.name).await? == "nginx:1.27").then_some(()))
        })
        .await?;
    }
    assert_eq!(
        replicas(&respect.name).await?,
        4,
        "the other manager's replicas stay"
    );
    assert_eq!(
        replicas(&plain.name).await?,
        1,
        "without the option Git's value is applied"
    );
    for ns in [&respect, &plain] {
        plumb.wait_status(&ns.name, "Synced", None).await?;
    }
    assert_eq!(replicas(&respect.name).await?, 4);

    // Per object: `argocd.argoproj.io/sync-options` on the Deployment. The
    // third application had no option for the commit above: Git's value.
    eventually(
        &format!("{} runs nginx 1.27", annotated.name),
        WAIT,
        || async { Ok((image(&annotated.name).await? == "nginx:1.27").then_some(())) },
    )
    .await?;
    plumb.wait_status(&annotated.name, "Synced", None).await?;
    assert_eq!(replicas(&annotated.name).await?, 1);
    patch_web(&annotated.name, json!({"spec": {"replicas": 4}})).await?;
    let annotated_yaml = deployment("nginx:1.28").replace(
        "  name: web\n",
        "  name: web\n  annotations:\n    argocd.argoproj.io/sync-options: RespectIgnoreDifferences=true\n",
    );
    repo.write("deployment.yaml", &annotated_yaml)?;
    repo.commit("nginx 1.28, respecting")?;
    eventually(
        &format!("{} runs nginx 1.28", annotated.name),
        WAIT,
        || async { Ok((image(&annotated.name).await? == "nginx:1.28").then_some(())) },
    )
    .await?;
    assert_eq!(replicas(&annotated.name).await?, 4);
    Ok(())
}

#[tokio::test]
async fn a_server_wide_rule_applies_to_every_application() -> Result<()> {
    let ns = TestNamespace::new("ign-server").await;
    let repo = repo()?;
    let work = tempfile::tempdir()?;
    let rule = work.path().join("deployment-rule.yaml");
    std::fs::write(&rule, "jsonPointers:\n- /spec/replicas\n")?;
    let flag = format!("apps_Deployment={}", rule.display());
    let plumb = Plumb::start_with_args(
        work.path(),
        &app(&ns.name, &repo, &[], json!({})),
        &["--ignore-differences", &flag],
    )
    .await?;
    plumb.wait_status(&ns.name, "Synced", None).await?;
    let before = reconciled_at(&plumb, &ns.name).await?;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    patch_web(&ns.name, json!({"spec": {"replicas": 2}})).await?;
    eventually("the change is compared", WAIT, || async {
        Ok((reconciled_at(&plumb, &ns.name).await? > before).then_some(()))
    })
    .await?;
    let app = plumb.wait_status(&ns.name, "Synced", None).await?;
    assert_eq!(plumb.history_len(&ns.name).await?, 1, "{app:#}");
    let diff = web_diff(&plumb, &ns.name).await?;
    assert_eq!(diff["diff"], "", "{diff:#}");
    assert_eq!(replicas(&ns.name).await?, 2);

    // The ConfigMap is not covered: its drift is healed. That sync applies
    // the Deployment too, with Git's replicas (no RespectIgnoreDifferences),
    // as Argo CD does.
    let api: Api<DynamicObject> =
        Api::namespaced_with(support::client().await, &ns.name, &support::configmaps());
    api.patch(
        "settings",
        &PatchParams::default(),
        &Patch::Merge(json!({"data": {"color": "red"}})),
    )
    .await?;
    wait_configmap(&ns.name, "settings", "color", "blue").await?;
    Ok(())
}

/// Waits until the application has a `ComparisonError` whose message
/// names `text`; returns the application.
async fn wait_comparison_error(plumb: &Plumb, app: &str, text: &str) -> Result<Value> {
    eventually(
        &format!("{app} says what is wrong ({text})"),
        WAIT,
        || async {
            let doc = plumb.app(app).await?;
            let said = doc["status"]["conditions"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|c| {
                    c["type"] == "ComparisonError"
                        && c["message"].as_str().unwrap_or_default().contains(text)
                });
            Ok(said.then_some(doc))
        },
    )
    .await
}

/// Creates or replaces `argocd-cm` in `ns` with `data`, and waits until
/// Plumb has taken the settings of `generation` (2 for the first change:
/// its log says so once per change).
async fn set_argocd_cm(plumb: &Plumb, ns: &str, data: Value, generation: usize) -> Result<()> {
    let api: Api<DynamicObject> =
        Api::namespaced_with(support::client().await, ns, &support::configmaps());
    let cm: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "argocd-cm", "namespace": ns},
        "data": data,
    }))?;
    api.patch(
        "argocd-cm",
        &PatchParams::apply("ignore-differences-test").force(),
        &Patch::Apply(cm),
    )
    .await?;
    eventually("Plumb takes the new settings", WAIT, || async {
        let changes = plumb
            .log_text()
            .matches("resource customizations changed")
            .count();
        Ok((changes + 1 >= generation).then_some(()))
    })
    .await
}

#[tokio::test]
async fn a_rule_in_argocd_cm_takes_effect_while_plumb_runs() -> Result<()> {
    let ns = TestNamespace::new("ign-cm").await;
    ns.create().await?;
    let repo = repo()?;
    let work = tempfile::tempdir()?;
    // Git is polled once an hour: only the settings' change can have the
    // application compared again at the end.
    let plumb = Plumb::start_watching_polling_every(
        work.path(),
        &app(&ns.name, &repo, &[], json!({})),
        &ns.name,
        3600,
    )
    .await?;
    plumb.wait_status(&ns.name, "Synced", None).await?;

    // The rule arrives in argocd-cm: the replicas another client sets stay.
    let key = "resource.customizations.ignoreDifferences.apps_Deployment";
    set_argocd_cm(
        &plumb,
        &ns.name,
        json!({key: "jsonPointers:\n- /spec/replicas\n"}),
        2,
    )
    .await?;
    let before = reconciled_at(&plumb, &ns.name).await?;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    patch_web(&ns.name, json!({"spec": {"replicas": 2}})).await?;
    eventually("the change is compared", WAIT, || async {
        Ok((reconciled_at(&plumb, &ns.name).await? > before).then_some(()))
    })
    .await?;
    let app = plumb.wait_status(&ns.name, "Synced", None).await?;
    assert_eq!(plumb.history_len(&ns.name).await?, 1, "{app:#}");
    assert_eq!(web_diff(&plumb, &ns.name).await?["diff"], "");
    assert_eq!(replicas(&ns.name).await?, 2);

    // A rule that cannot be used stops the comparison, naming its key;
    // nothing is synced over the replicas meanwhile.
    set_argocd_cm(
        &plumb,
        &ns.name,
        json!({key: "jqPathExpressions:\n- .spec |||\n"}),
        3,
    )
    .await?;
    let app = wait_comparison_error(&plumb, &ns.name, key).await?;
    assert_eq!(app["status"]["sync"]["status"], "Unknown", "{app:#}");
    assert_eq!(replicas(&ns.name).await?, 2);

    // Without the rule, the application is compared again at once (no
    // change of Git or of its objects is needed) and self-heal restores
    // Git's replicas.
    set_argocd_cm(&plumb, &ns.name, json!({}), 4).await?;
    eventually("Git's replicas are back", WAIT, || async {
        Ok((replicas(&ns.name).await? == 1).then_some(()))
    })
    .await?;
    plumb.wait_status(&ns.name, "Synced", None).await?;
    Ok(())
}

#[tokio::test]
async fn a_rule_that_cannot_be_used_stops_the_application_without_applying_or_pruning() -> Result<()>
{
    let (pointer, jq) = (
        TestNamespace::new("ign-badptr").await,
        TestNamespace::new("ign-badjq").await,
    );
    let repo = repo()?;
    let work = tempfile::tempdir()?;
    let good = [
        app(&pointer.name, &repo, &[], json!({})),
        app(&jq.name, &repo, &[], json!({})),
    ]
    .join("---\n");
    let plumb = Plumb::start(work.path(), &good).await?;
    for ns in [&pointer, &jq] {
        plumb.wait_status(&ns.name, "Synced", None).await?;
    }
    let bad = [
        app(
            &pointer.name,
            &repo,
            &[],
            json!({"ignoreDifferences": [{"kind": "ConfigMap", "jsonPointers": ["data/color"]}]}),
        ),
        app(
            &jq.name,
            &repo,
            &[],
            json!({"ignoreDifferences": [{"kind": "ConfigMap", "jqPathExpressions": [".data.color |||"]}]}),
        ),
    ]
    .join("---\n");
    plumb.set_apps(&bad)?;
    for (ns, named) in [(&pointer, "data/color"), (&jq, ".data.color |||")] {
        let app = wait_comparison_error(&plumb, &ns.name, named).await?;
        assert_eq!(app["status"]["sync"]["status"], "Unknown", "{app:#}");
    }
    // Git now drops the ConfigMap and changes the Deployment: nothing of it
    // reaches the cluster while the rules are wrong.
    repo.remove("configmap.yaml")?;
    repo.write("deployment.yaml", &deployment("nginx:1.27"))?;
    let sha = repo.commit("drop settings")?;
    for ns in [&pointer, &jq] {
        eventually(&format!("{} saw the commit", ns.name), WAIT, || async {
            let app = plumb.app(&ns.name).await?;
            Ok((app["status"]["sync"]["revision"] == sha.as_str()).then_some(()))
        })
        .await?;
    }
    for ns in [&pointer, &jq] {
        assert_eq!(
            configmap_value(&ns.name, "settings", "color")
                .await?
                .as_deref(),
            Some("blue")
        );
        assert_eq!(image(&ns.name).await?, "nginx:1.25");
    }
    Ok(())
}
