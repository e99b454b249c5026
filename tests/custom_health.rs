//! Custom health in Lua end to end, configured as in Argo CD: a custom
//! resource (its CRD installed by the same application) judged by a
//! `health.lua` given through the `argocd-cm` ConfigMap in Plumb's
//! namespace (watched: added while Plumb runs) or through the
//! `--resource-customizations` file; a script that fails or never ends is
//! Unknown saying why. Real git repositories, a real `plumb
//! serve`, the real local control plane.

mod support;

use std::time::Duration;

use anyhow::{Context, Result};
use kube::api::{Api, DynamicObject, PostParams};
use serde_json::{Value, json};
use support::{GitRepo, Plumb, TestNamespace, application, configmaps, eventually, resource};

const AUTO: &str = "  syncPolicy:\n    automated: {prune: true, selfHeal: true}\n    syncOptions: [CreateNamespace=true]\n";

/// A script in Argo CD users' style: Healthy when `spec.ready`, Degraded
/// otherwise; an error when `spec.ready` is missing.
const WIDGET_HEALTH: &str = r#"hs = {}
if obj.spec.ready == nil then
  error("spec.ready is missing")
end
if obj.spec.ready then
  hs.status = "Healthy"
  hs.message = "widget is ready"
else
  hs.status = "Degraded"
  hs.message = "widget is not ready"
end
return hs
"#;

/// A group of its own for one test's CRD (CRDs are cluster-wide).
fn group_of(ns: &TestNamespace) -> String {
    format!("h{}.health.plumb.test", &ns.name[ns.name.len() - 8..])
}

fn crd(group: &str) -> String {
    format!(
        "apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\nmetadata:\n  name: widgets.{group}\nspec:\n  group: {group}\n  scope: Namespaced\n  names:\n    plural: widgets\n    kind: Widget\n  versions:\n  - name: v1\n    served: true\n    storage: true\n    schema:\n      openAPIV3Schema:\n        type: object\n        x-kubernetes-preserve-unknown-fields: true\n"
    )
}

/// A Widget whose spec is `spec` (YAML flow).
fn widget(group: &str, spec: &str) -> String {
    format!("apiVersion: {group}/v1\nkind: Widget\nmetadata:\n  name: w\nspec: {spec}\n")
}

/// Deletes the test's CRD when dropped (Plumb does not prune CRDs here:
/// the application stays).
struct CrdGuard(String);

impl Drop for CrdGuard {
    fn drop(&mut self) {
        let name = format!("widgets.{}", self.0);
        support::in_drop(move |client| async move {
            let api: Api<DynamicObject> = Api::all_with(
                client,
                &resource(
                    "apiextensions.k8s.io",
                    "v1",
                    "CustomResourceDefinition",
                    "customresourcedefinitions",
                ),
            );
            let _ = api.delete(&name, &Default::default()).await;
        });
    }
}

/// A repository with the CRD and a Widget of `spec`.
fn widget_repo(group: &str, spec: &str) -> Result<GitRepo> {
    let repo = GitRepo::new(None)?;
    repo.write("app/crd.yaml", &crd(group))?;
    repo.write("app/widget.yaml", &widget(group, spec))?;
    repo.commit("a widget")?;
    Ok(repo)
}

/// The application's resource entry of the Widget.
fn widget_entry(app: &Value) -> Option<&Value> {
    app.pointer("/status/resources")?
        .as_array()?
        .iter()
        .find(|r| r["kind"] == "Widget")
}

/// Waits until the application's health is `health` and its Widget's
/// health message says `message`; returns the application.
async fn wait_widget(plumb: &Plumb, app: &str, health: &str, message: &str) -> Result<Value> {
    eventually(
        &format!("{app} is {health} with a Widget saying {message:?}"),
        Duration::from_secs(90),
        || async move {
            let doc = plumb.app(app).await?;
            let app_health = doc["status"]["health"]["status"].as_str().unwrap_or("");
            let said = widget_entry(&doc)
                .and_then(|w| w.pointer("/health/message"))
                .and_then(Value::as_str)
                .unwrap_or("");
            Ok((doc["status"]["sync"]["status"] == "Synced"
                && app_health == health
                && said.contains(message))
            .then_some(doc))
        },
    )
    .await
    .with_context(|| format!("plumb log:\n{}", plumb.log_text()))
}

#[tokio::test]
async fn a_lua_rule_in_argocd_cm_judges_a_custom_resource_and_follows_its_changes() -> Result<()> {
    let ns = TestNamespace::new("luacm").await;
    ns.create().await?;
    let group = group_of(&ns);
    let _crd = CrdGuard(group.clone());
    let work = tempfile::tempdir()?;
    let repo = widget_repo(&group, "{ready: false}")?;
    let plumb = Plumb::start_watching(
        work.path(),
        &application(&ns.name, &repo.url(), "app", &ns.name, AUTO),
        &ns.name,
    )
    .await?;

    // No argocd-cm: no rule for Widgets, which count as Healthy; the CRD
    // has its built-in rule.
    let app = plumb
        .wait_status(&ns.name, "Synced", Some("Healthy"))
        .await?;
    let crd_entry = app["status"]["resources"]
        .as_array()
        .and_then(|r| r.iter().find(|r| r["kind"] == "CustomResourceDefinition"))
        .cloned()
        .unwrap_or_default();
    assert_eq!(crd_entry["health"]["message"], "CRD is healthy", "{app}");

    // The rule arrives in argocd-cm while Plumb runs: the Widget is judged
    // again at once, without a restart.
    let cm: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "argocd-cm", "namespace": ns.name},
        "data": {format!("resource.customizations.health.{group}_Widget"): WIDGET_HEALTH},
    }))?;
    Api::<DynamicObject>::namespaced_with(support::client().await, &ns.name, &configmaps())
        .create(&PostParams::default(), &cm)
        .await?;
    let app = wait_widget(&plumb, &ns.name, "Degraded", "widget is not ready").await?;
    assert_eq!(
        widget_entry(&app).map(|w| &w["health"]["status"]),
        Some(&json!("Degraded"))
    );

    // The object changes (through Git): the script runs again.
    repo.write("app/widget.yaml", &widget(&group, "{ready: true}"))?;
    repo.commit("the widget is ready")?;
    wait_widget(&plumb, &ns.name, "Healthy", "widget is ready").await?;
    Ok(())
}

#[tokio::test]
async fn a_lua_rule_in_the_customizations_file_reports_a_failing_script_and_recovers() -> Result<()>
{
    let ns = TestNamespace::new("luafile").await;
    let group = group_of(&ns);
    let _crd = CrdGuard(group.clone());
    let work = tempfile::tempdir()?;
    // Argo CD's older single key, as a whole ConfigMap in a file.
    let indented: String = WIDGET_HEALTH
        .lines()
        .map(|l| format!("          {l}\n"))
        .collect();
    let file = work.path().join("argocd-cm.yaml");
    std::fs::write(
        &file,
        format!(
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: argocd-cm\ndata:\n  resource.customizations: |\n    {group}/Widget:\n      health.lua: |\n{indented}"
        ),
    )?;
    let repo = widget_repo(&group, "{size: 3}")?;
    let file_arg = file.display().to_string();
    let plumb = Plumb::start_with_args(
        work.path(),
        &application(&ns.name, &repo.url(), "app", &ns.name, AUTO),
        &["--resource-customizations", &file_arg],
    )
    .await?;

    // The script fails on this Widget: Unknown, saying where, with Argo
    // CD's condition; the sync itself went through.
    let app = wait_widget(&plumb, &ns.name, "Unknown", "spec.ready is missing").await?;
    let said = widget_entry(&app)
        .and_then(|w| w["health"]["message"].as_str())
        .unwrap_or_default()
        .to_string();
    assert!(
        said.starts_with(&format!(
            "resource.customizations ({group}/Widget): health.lua:"
        )),
        "{said}"
    );
    let conditions = app["status"]["conditions"].to_string();
    assert!(
        conditions.contains("error setting app health")
            && conditions.contains("spec.ready is missing"),
        "{conditions}"
    );

    repo.write("app/widget.yaml", &widget(&group, "{size: 3, ready: true}"))?;
    repo.commit("the widget says it is ready")?;
    let app = wait_widget(&plumb, &ns.name, "Healthy", "widget is ready").await?;
    assert!(
        !app["status"]["conditions"]
            .to_string()
            .contains("error setting app health"),
        "{app}"
    );
    Ok(())
}

/// A script that never ends is stopped at its limit: the Widget is Unknown
/// saying so, the sync still went through, and the application's other
/// objects are unaffected.
#[tokio::test]
async fn a_lua_rule_that_loops_forever_is_stopped_and_reported() -> Result<()> {
    let ns = TestNamespace::new("lualoop").await;
    let group = group_of(&ns);
    let _crd = CrdGuard(group.clone());
    let work = tempfile::tempdir()?;
    let file = work.path().join("customizations.yaml");
    std::fs::write(
        &file,
        format!("resource.customizations.health.{group}_Widget: |\n  while true do end\n"),
    )?;
    let repo = widget_repo(&group, "{ready: true}")?;
    repo.write(
        "app/settings.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\ndata: {k: v}\n",
    )?;
    repo.commit("settings beside the widget")?;
    let file_arg = file.display().to_string();
    let plumb = Plumb::start_with_args(
        work.path(),
        &application(&ns.name, &repo.url(), "app", &ns.name, AUTO),
        &["--resource-customizations", &file_arg],
    )
    .await?;
    let app = wait_widget(&plumb, &ns.name, "Unknown", "does the script loop forever").await?;
    let said = widget_entry(&app)
        .and_then(|w| w["health"]["message"].as_str())
        .unwrap_or_default();
    assert!(
        said.starts_with(&format!("resource.customizations.health.{group}_Widget: ")),
        "{said}"
    );
    let settings = app["status"]["resources"]
        .as_array()
        .and_then(|r| r.iter().find(|r| r["kind"] == "ConfigMap"))
        .cloned()
        .unwrap_or_default();
    assert_eq!(settings["status"], "Synced", "{app}");
    assert!(
        support::configmap_value(&ns.name, "settings", "k")
            .await?
            .is_some()
    );
    Ok(())
}
