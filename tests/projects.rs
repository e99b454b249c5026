//! AppProjects end to end: a project that refuses an application's
//! destination, then its repository, then a kind of its render, each
//! shown on the application with nothing applied or pruned, and the
//! application syncing once the project is edited to allow it; the
//! projects API. Real git repositories, a real `plumb serve`, the real
//! local control plane.

mod support;

use std::time::Duration;

use anyhow::{Context, Result};
use kube::api::{Api, DynamicObject, Patch, PatchParams};
use serde_json::{Value, json};
use support::{GitRepo, Plumb, TestNamespace, configmaps, eventually, get_object, resource};

const WAIT: Duration = Duration::from_secs(90);

fn appprojects() -> kube::core::ApiResource {
    resource("argoproj.io", "v1alpha1", "AppProject", "appprojects")
}

/// Names unique to one test: `base-<suffix of the namespace's name>`.
fn unique(ns: &TestNamespace) -> impl Fn(&str) -> String {
    let suffix = ns.name[ns.name.len() - 8..].to_string();
    move |base| format!("{base}-{suffix}")
}

fn configmap(name: &str) -> String {
    format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\ndata:\n  from: {name}\n")
}

async fn create(ar: &kube::core::ApiResource, namespace: &str, value: Value) -> Result<()> {
    let api: Api<DynamicObject> = Api::namespaced_with(support::client().await, namespace, ar);
    api.create(&Default::default(), &serde_json::from_value(value)?)
        .await?;
    Ok(())
}

/// Replaces the spec of an AppProject (a merge patch of `spec`).
async fn patch_project(namespace: &str, name: &str, spec: Value) -> Result<()> {
    let api: Api<DynamicObject> =
        Api::namespaced_with(support::client().await, namespace, &appprojects());
    api.patch(
        name,
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": spec})),
    )
    .await?;
    Ok(())
}

/// An automated Application object with the project `project`.
fn application(name: &str, namespace: &str, project: &str, repo: &str, target: &str) -> Value {
    json!({
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Application",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "project": project,
            "source": {"repoURL": repo, "targetRevision": "main", "path": "app"},
            "destination": {"server": "https://kubernetes.default.svc", "namespace": target},
            "syncPolicy": {"automated": {"prune": true, "selfHeal": true}}
        }
    })
}

/// Waits until the application shows a condition of `type_` whose message
/// holds every part of `wants`; returns the document.
async fn wait_condition(plumb: &Plumb, app: &str, type_: &str, wants: &[&str]) -> Result<Value> {
    wait_condition_at(plumb, app, None, type_, wants).await
}

/// [`wait_condition`], at Git revision `revision` when given.
async fn wait_condition_at(
    plumb: &Plumb,
    app: &str,
    revision: Option<&str>,
    type_: &str,
    wants: &[&str],
) -> Result<Value> {
    eventually(
        &format!("{app} shows {type_} {wants:?}"),
        WAIT,
        || async move {
            let doc = plumb.app(app).await?;
            let at = revision.is_none_or(|r| doc["status"]["sync"]["revision"] == r);
            let found = at
                && doc
                    .pointer("/status/conditions")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .any(|c| {
                        c["type"] == type_
                            && wants
                                .iter()
                                .all(|w| c["message"].as_str().unwrap_or_default().contains(w))
                    });
            Ok(found.then_some(doc))
        },
    )
    .await
    .with_context(|| format!("plumb log:\n{}", plumb.log_text()))
}

#[tokio::test]
async fn a_project_refusing_the_destination_then_the_repository_holds_the_app_until_edited()
-> Result<()> {
    let (apps, target) = (
        TestNamespace::new("proj-apps").await,
        TestNamespace::new("proj-target").await,
    );
    apps.create().await?;
    target.create().await?;
    let name = unique(&apps);
    let (app, project, cm) = (name("web"), name("team"), name("cfg"));
    let repo = GitRepo::new(None)?;
    repo.write("app/cm.yaml", &configmap(&cm))?;
    repo.commit("a config map")?;

    // Plumb installs the AppProject CRD.
    let work = tempfile::tempdir()?;
    let plumb = Plumb::start_watching(work.path(), "", &apps.name).await?;
    create(
        &appprojects(),
        &apps.name,
        json!({
            "apiVersion": "argoproj.io/v1alpha1", "kind": "AppProject",
            "metadata": {"name": project, "namespace": apps.name},
            "spec": {
                "description": "team web",
                "sourceRepos": [repo.url()],
                "destinations": [{"server": "*", "namespace": "somewhere-else"}],
                "roles": [{"name": "ci", "policies": ["p, proj:team:ci, applications, get, team/*, allow"]}]
            }
        }),
    )
    .await?;
    create(
        &support::applications(),
        &apps.name,
        application(&app, &apps.name, &project, &repo.url(), &target.name),
    )
    .await?;

    wait_condition(
        &plumb,
        &app,
        "InvalidSpecError",
        &[
            &format!("namespace '{}'", target.name),
            "do not match any of the allowed destinations",
            &project,
        ],
    )
    .await?;
    assert!(
        get_object(&configmaps(), &target.name, &cm)
            .await?
            .is_none()
    );

    // The destination allowed, the repository no longer.
    patch_project(
        &apps.name,
        &project,
        json!({"sourceRepos": ["https://git.example/*"],
               "destinations": [{"server": "https://kubernetes.default.svc", "namespace": "proj-target-*"}]}),
    )
    .await?;
    wait_condition(
        &plumb,
        &app,
        "InvalidSpecError",
        &["application repo", "is not permitted in project", &project],
    )
    .await?;
    assert!(
        get_object(&configmaps(), &target.name, &cm)
            .await?
            .is_none()
    );

    // Both allowed: the application syncs at once.
    patch_project(&apps.name, &project, json!({"sourceRepos": ["*"]})).await?;
    plumb.wait_status(&app, "Synced", Some("Healthy")).await?;
    assert!(
        get_object(&configmaps(), &target.name, &cm)
            .await?
            .is_some()
    );

    // The projects API: the object (its unknown fields kept) and the
    // assumed default; an unknown project is a 404 in Plumb's JSON error.
    let list = plumb.get("/api/v1/projects").await?;
    let names: Vec<&str> = list["items"]
        .as_array()
        .context("items")?
        .iter()
        .filter_map(|p| p.pointer("/metadata/name").and_then(Value::as_str))
        .collect();
    assert!(names.contains(&project.as_str()), "{list}");
    assert!(names.contains(&"default"), "{list}");
    let one = plumb.get(&format!("/api/v1/projects/{project}")).await?;
    assert_eq!(one["spec"]["sourceRepos"], json!(["*"]), "{one}");
    assert_eq!(one["spec"]["description"], "team web", "{one}");
    assert_eq!(one["spec"]["roles"][0]["name"], "ci", "{one}");
    let missing = reqwest::get(format!("{}/api/v1/projects/{}", plumb.url, name("nope"))).await?;
    assert_eq!(missing.status().as_u16(), 404);
    let body: Value = missing.json().await?;
    assert_eq!(body["code"], 5, "{body}");
    assert!(
        body["message"]
            .as_str()
            .unwrap_or_default()
            .contains("not found"),
        "{body}"
    );
    Ok(())
}

#[tokio::test]
async fn a_kind_the_project_forbids_stops_the_whole_render_and_prunes_nothing() -> Result<()> {
    let (apps, target) = (
        TestNamespace::new("projk-apps").await,
        TestNamespace::new("projk-target").await,
    );
    apps.create().await?;
    target.create().await?;
    let name = unique(&apps);
    let (app, project) = (name("kinds"), name("team"));
    let (old, new, role) = (name("old"), name("new"), name("reader"));
    let repo = GitRepo::new(None)?;
    repo.write("app/old.yaml", &configmap(&old))?;
    repo.commit("the old config map")?;
    let allow_all = json!({
        "sourceRepos": ["*"],
        "destinations": [{"server": "*", "namespace": "*"}]
    });
    // Plumb installs the AppProject CRD.
    let work = tempfile::tempdir()?;
    let plumb = Plumb::start_watching(work.path(), "", &apps.name).await?;
    create(
        &appprojects(),
        &apps.name,
        json!({
            "apiVersion": "argoproj.io/v1alpha1", "kind": "AppProject",
            "metadata": {"name": project, "namespace": apps.name},
            "spec": allow_all
        }),
    )
    .await?;
    create(
        &support::applications(),
        &apps.name,
        application(&app, &apps.name, &project, &repo.url(), &target.name),
    )
    .await?;
    plumb.wait_status(&app, "Synced", Some("Healthy")).await?;
    assert!(
        get_object(&configmaps(), &target.name, &old)
            .await?
            .is_some()
    );

    // The project now refuses ConfigMaps; Git drops the old one and adds
    // a new one and a ClusterRole (cluster-scoped: this project has no
    // clusterResourceWhitelist, so it refuses it too).
    patch_project(
        &apps.name,
        &project,
        json!({"namespaceResourceBlacklist": [{"group": "", "kind": "ConfigMap"}]}),
    )
    .await?;
    repo.remove("app/old.yaml")?;
    repo.write("app/new.yaml", &configmap(&new))?;
    repo.write(
        "app/role.yaml",
        &format!("apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata:\n  name: {role}\nrules: []\n"),
    )?;
    let head = repo.commit("new config map and a cluster role")?;
    let doc = wait_condition_at(
        &plumb,
        &app,
        Some(&head),
        "ComparisonError",
        &[
            "is not permitted in project",
            &project,
            "nothing of the application is applied or pruned",
        ],
    )
    .await?;
    let message = doc.to_string();
    assert!(
        message.contains(&format!(":ConfigMap {}/{new}", target.name))
            || message.contains(&format!("rbac.authorization.k8s.io:ClusterRole {role}")),
        "{message}"
    );
    // Nothing applied, nothing pruned.
    assert!(
        get_object(&configmaps(), &target.name, &old)
            .await?
            .is_some()
    );
    assert!(
        get_object(&configmaps(), &target.name, &new)
            .await?
            .is_none()
    );
    let roles = resource(
        "rbac.authorization.k8s.io",
        "v1",
        "ClusterRole",
        "clusterroles",
    );
    assert!(get_object(&roles, "", &role).await?.is_none());

    // ConfigMaps allowed again: the ClusterRole is still refused, by name.
    let mut spec = allow_all.clone();
    spec["namespaceResourceBlacklist"] = json!(null);
    patch_project(&apps.name, &project, spec).await?;
    wait_condition(
        &plumb,
        &app,
        "ComparisonError",
        &[&format!("resource rbac.authorization.k8s.io:ClusterRole {role} is not permitted in project {project}")],
    )
    .await?;
    assert!(
        get_object(&configmaps(), &target.name, &old)
            .await?
            .is_some()
    );
    assert!(
        get_object(&configmaps(), &target.name, &new)
            .await?
            .is_none()
    );

    // Cluster roles whitelisted: the sync applies and prunes.
    patch_project(
        &apps.name,
        &project,
        json!({"clusterResourceWhitelist": [{"group": "rbac.authorization.k8s.io", "kind": "ClusterRole"}]}),
    )
    .await?;
    plumb.wait_status(&app, "Synced", Some("Healthy")).await?;
    eventually("the old config map is pruned", WAIT, || async {
        Ok(get_object(&configmaps(), &target.name, &old)
            .await?
            .is_none()
            .then_some(()))
    })
    .await?;
    assert!(
        get_object(&configmaps(), &target.name, &new)
            .await?
            .is_some()
    );
    assert!(get_object(&roles, "", &role).await?.is_some());
    // The cluster role outlives the test's namespaces: remove it.
    let api: Api<DynamicObject> = Api::all_with(support::client().await, &roles);
    let _ = api.delete(&role, &Default::default()).await;
    Ok(())
}
