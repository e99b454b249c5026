//! App of apps end to end: a parent Application whose manifests are child
//! Applications, the resources finalizer's cascades, the parent's health
//! from its children's, and Application objects in `argocd`. Real git
//! repositories, a real `plumb serve`, the real local control plane.

mod support;

use std::time::Duration;

use anyhow::{Context, Result};
use kube::api::{Api, DeleteParams, DynamicObject};
use serde_json::{Value, json};
use support::{
    GitRepo, Plumb, TestNamespace, applications, configmaps, eventually, get_object, resource,
    str_at,
};

const WAIT: Duration = Duration::from_secs(90);
const FINALIZER: &str = "resources-finalizer.argocd.argoproj.io";
const FINALIZER_BACKGROUND: &str = "resources-finalizer.argocd.argoproj.io/background";

/// An Application manifest (YAML) in `namespace`, deploying `path` of
/// `repo` to `target` with automated sync and prune, with `finalizer`.
fn app(
    name: &str,
    namespace: &str,
    repo: &str,
    path: &str,
    target: &str,
    finalizer: Option<&str>,
) -> String {
    let mut metadata = json!({"name": name, "namespace": namespace});
    if let Some(f) = finalizer {
        metadata["finalizers"] = json!([f]);
    }
    let value = json!({
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Application",
        "metadata": metadata,
        "spec": {
            "project": "default",
            "source": {"repoURL": repo, "targetRevision": "main", "path": path},
            "destination": {"server": "https://kubernetes.default.svc", "namespace": target},
            "syncPolicy": {
                "automated": {"prune": true, "selfHeal": true},
                "syncOptions": ["CreateNamespace=true"]
            }
        }
    });
    serde_yaml::to_string(&value).expect("a JSON value is also YAML")
}

fn configmap(name: &str) -> String {
    format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\ndata:\n  from: {name}\n")
}

fn deployment(name: &str) -> String {
    format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: {name}\nspec:\n  replicas: 1\n  selector:\n    matchLabels: {{app: {name}}}\n  template:\n    metadata:\n      labels: {{app: {name}}}\n    spec:\n      containers:\n        - name: main\n          image: registry.invalid/never:1\n"
    )
}

/// Creates an Application object from its YAML manifest.
async fn create_app(yaml: &str) -> Result<()> {
    let value: Value = serde_yaml::from_str(yaml)?;
    let namespace = str_at(&value, "/metadata/namespace").to_string();
    let api: Api<DynamicObject> =
        Api::namespaced_with(support::client().await, &namespace, &applications());
    api.create(&Default::default(), &serde_json::from_value(value)?)
        .await?;
    Ok(())
}

async fn delete_app(namespace: &str, name: &str) -> Result<()> {
    let api: Api<DynamicObject> =
        Api::namespaced_with(support::client().await, namespace, &applications());
    api.delete(name, &DeleteParams::default()).await?;
    Ok(())
}

async fn exists(ar: &kube::core::ApiResource, ns: &str, name: &str) -> Result<bool> {
    Ok(get_object(ar, ns, name).await?.is_some())
}

/// Waits until an object exists (`true`) or is gone (`false`).
async fn wait_exists(
    ar: &kube::core::ApiResource,
    ns: &str,
    name: &str,
    want: bool,
    plumb: &Plumb,
) -> Result<()> {
    eventually(
        &format!("{} {ns}/{name} exists: {want}", ar.kind),
        WAIT,
        || async move { Ok((exists(ar, ns, name).await? == want).then_some(())) },
    )
    .await
    .with_context(|| format!("plumb log:\n{}", plumb.log_text()))
}

/// Names unique to one test: `base-<suffix of the namespace's name>`.
fn unique_names(ns: &TestNamespace) -> impl Fn(&str) -> String {
    let suffix = ns.name[ns.name.len() - 8..].to_string();
    move |base| format!("{base}-{suffix}")
}

/// The parent's `status.resources` entry of a child Application.
fn child_resource<'a>(parent: &'a Value, child: &str) -> Option<&'a Value> {
    parent
        .pointer("/status/resources")?
        .as_array()?
        .iter()
        .find(|r| r["kind"] == "Application" && r["name"] == child)
}

#[tokio::test]
async fn children_deploy_and_a_child_removed_from_git_is_pruned_with_or_without_its_resources()
-> Result<()> {
    let (apps, target) = (
        TestNamespace::new("aoa-apps").await,
        TestNamespace::new("aoa-target").await,
    );
    apps.create().await?;
    // Tracking ids name applications only: Plumb processes of tests running
    // at once on one cluster must not share application names.
    let name = unique_names(&apps);
    let repo = GitRepo::new(None)?;
    let url = repo.url();
    // child-a deletes its resources when it goes (background variant);
    // child-b has no finalizer and leaves them.
    repo.write(
        "parent/a.yaml",
        &app(
            &name("child-a"),
            &apps.name,
            &url,
            "a",
            &target.name,
            Some(FINALIZER_BACKGROUND),
        ),
    )?;
    repo.write(
        "parent/b.yaml",
        &app(&name("child-b"), &apps.name, &url, "b", &target.name, None),
    )?;
    repo.write("a/cm.yaml", &configmap("from-a"))?;
    repo.write("b/cm.yaml", &configmap("from-b"))?;
    repo.commit("app of apps")?;
    let work = tempfile::tempdir()?;
    let plumb = Plumb::start_watching(work.path(), "", &apps.name).await?;
    create_app(&app(
        &name("parent"),
        &apps.name,
        &url,
        "parent",
        &apps.name,
        None,
    ))
    .await?;

    plumb
        .wait_status(&name("child-a"), "Synced", Some("Healthy"))
        .await?;
    plumb
        .wait_status(&name("child-b"), "Synced", Some("Healthy"))
        .await?;
    wait_exists(&configmaps(), &target.name, "from-a", true, &plumb).await?;
    wait_exists(&configmaps(), &target.name, "from-b", true, &plumb).await?;
    // The parent lists its children with their own health.
    let parent = plumb
        .wait_status(&name("parent"), "Synced", Some("Healthy"))
        .await?;
    for child in [&name("child-a"), &name("child-b")] {
        let r = child_resource(&parent, child).context("the parent lists its child")?;
        assert_eq!(r["status"], "Synced", "{r}");
        assert_eq!(r["health"]["status"], "Healthy", "{r}");
    }
    let tree = plumb
        .get(&format!(
            "/api/v1/applications/{}/resource-tree",
            name("parent")
        ))
        .await?;
    let node = tree["nodes"]
        .as_array()
        .and_then(|n| {
            n.iter()
                .find(|n| n["kind"] == "Application" && n["name"] == name("child-a"))
        })
        .context("the tree has the child")?;
    assert_eq!(node["health"]["status"], "Healthy", "{node}");

    // Both children leave Git: the parent prunes both Application objects;
    // child-a's finalizer deletes its ConfigMap first, child-b's stays.
    repo.remove("parent/a.yaml")?;
    repo.remove("parent/b.yaml")?;
    repo.write("parent/keep.yaml", &configmap("parent-keeps-something"))?;
    repo.commit("children leave")?;
    wait_exists(&applications(), &apps.name, &name("child-a"), false, &plumb).await?;
    wait_exists(&applications(), &apps.name, &name("child-b"), false, &plumb).await?;
    wait_exists(&configmaps(), &target.name, "from-a", false, &plumb).await?;
    assert!(
        exists(&configmaps(), &target.name, "from-b").await?,
        "a child without the finalizer leaves its resources"
    );
    let log = plumb.log_text();
    assert!(
        log.contains("application removed; its objects are left in place (no resources finalizer)"),
        "{log}"
    );
    assert!(log.contains("resources finalizer removed"), "{log}");
    plumb
        .wait_status(&name("parent"), "Synced", Some("Healthy"))
        .await?;
    Ok(())
}

#[tokio::test]
async fn deleting_a_parent_with_the_finalizer_cascades_to_its_childrens_resources() -> Result<()> {
    let (apps, target) = (
        TestNamespace::new("aoa-del-apps").await,
        TestNamespace::new("aoa-del-target").await,
    );
    apps.create().await?;
    // Tracking ids name applications only: Plumb processes of tests running
    // at once on one cluster must not share application names.
    let name = unique_names(&apps);
    let repo = GitRepo::new(None)?;
    let url = repo.url();
    repo.write(
        "parent/c.yaml",
        &app(
            &name("child-c"),
            &apps.name,
            &url,
            "c",
            &target.name,
            Some(FINALIZER),
        ),
    )?;
    repo.write("c/cm.yaml", &configmap("from-c"))?;
    // Kept by its own sync option, as Argo CD keeps it.
    repo.write(
        "c/kept.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: kept\n  annotations:\n    argocd.argoproj.io/sync-options: Delete=false\ndata: {k: v}\n",
    )?;
    repo.write("parent/own.yaml", &configmap("parent-own"))?;
    // Held by a finalizer of someone else's: a foreground cascade waits.
    repo.write(
        "parent/held.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: held\n  finalizers: [plumb.test/hold]\ndata: {k: v}\n",
    )?;
    repo.commit("app of apps")?;
    let work = tempfile::tempdir()?;
    let plumb = Plumb::start_watching(work.path(), "", &apps.name).await?;
    create_app(&app(
        &name("parent"),
        &apps.name,
        &url,
        "parent",
        &apps.name,
        Some(FINALIZER),
    ))
    .await?;
    plumb
        .wait_status(&name("child-c"), "Synced", Some("Healthy"))
        .await?;
    plumb
        .wait_status(&name("parent"), "Synced", Some("Healthy"))
        .await?;
    wait_exists(&configmaps(), &target.name, "from-c", true, &plumb).await?;

    delete_app(&apps.name, &name("parent")).await?;
    // While an object of the parent is still going, the parent stays, and
    // the API shows the deletion in progress; its syncs have stopped.
    let deleting = eventually("the parent shows its cascade waiting", WAIT, || async {
        let doc = plumb.app(&name("parent")).await?;
        let waiting = str_at(&doc, "/status/health/status") == "Progressing"
            && str_at(&doc, "/status/health/message").contains("1 still going")
            && !str_at(&doc, "/metadata/deletionTimestamp").is_empty();
        Ok(waiting.then_some(doc))
    })
    .await
    .with_context(|| format!("plumb log:\n{}", plumb.log_text()))?;
    assert!(
        exists(&applications(), &apps.name, &name("parent")).await?,
        "{deleting}"
    );
    wait_exists(&applications(), &apps.name, &name("child-c"), false, &plumb).await?;
    let (code, answer) = plumb
        .post(
            &format!("/api/v1/applications/{}/sync", name("parent")),
            json!({}),
        )
        .await?;
    assert_eq!(
        code, 400,
        "no sync of an application being deleted: {answer}"
    );
    // Its holder lets the ConfigMap go: the parent's object goes last.
    let held: Api<DynamicObject> =
        Api::namespaced_with(support::client().await, &apps.name, &configmaps());
    held.patch(
        "held",
        &kube::api::PatchParams::default(),
        &kube::api::Patch::Merge(json!({"metadata": {"finalizers": null}})),
    )
    .await?;
    wait_exists(&applications(), &apps.name, &name("parent"), false, &plumb).await?;
    assert!(!exists(&configmaps(), &apps.name, "parent-own").await?);
    assert!(!exists(&applications(), &apps.name, &name("child-c")).await?);
    assert!(!exists(&configmaps(), &target.name, "from-c").await?);
    assert!(
        exists(&configmaps(), &target.name, "kept").await?,
        "Delete=false keeps an object from its application's deletion"
    );
    eventually("the applications are gone from the API", WAIT, || async {
        let list = plumb.get("/api/v1/applications").await?;
        Ok(list["items"]
            .as_array()
            .is_none_or(|items| items.is_empty())
            .then_some(()))
    })
    .await?;
    Ok(())
}

#[tokio::test]
async fn the_parent_is_healthy_only_when_every_child_is() -> Result<()> {
    let (apps, target) = (
        TestNamespace::new("aoa-health-apps").await,
        TestNamespace::new("aoa-health-target").await,
    );
    apps.create().await?;
    // Tracking ids name applications only: Plumb processes of tests running
    // at once on one cluster must not share application names.
    let name = unique_names(&apps);
    let repo = GitRepo::new(None)?;
    let url = repo.url();
    repo.write(
        "parent/ok.yaml",
        &app(
            &name("child-ok"),
            &apps.name,
            &url,
            "ok",
            &target.name,
            Some(FINALIZER),
        ),
    )?;
    repo.write(
        "parent/slow.yaml",
        &app(
            &name("child-slow"),
            &apps.name,
            &url,
            "slow",
            &target.name,
            Some(FINALIZER),
        ),
    )?;
    repo.write("ok/cm.yaml", &configmap("ok"))?;
    // Its image is on a `.invalid` registry: the node simulator never
    // pulls it, so the Deployment never becomes available.
    repo.write("slow/deploy.yaml", &deployment("never-ready"))?;
    repo.commit("one child never gets healthy")?;
    let work = tempfile::tempdir()?;
    let plumb = Plumb::start_watching(work.path(), "", &apps.name).await?;
    create_app(&app(
        &name("parent"),
        &apps.name,
        &url,
        "parent",
        &apps.name,
        Some(FINALIZER),
    ))
    .await?;

    plumb
        .wait_status(&name("child-slow"), "Synced", Some("Progressing"))
        .await?;
    plumb
        .wait_status(&name("child-ok"), "Synced", Some("Healthy"))
        .await?;
    let parent = plumb
        .wait_status(&name("parent"), "Synced", Some("Progressing"))
        .await?;
    let slow =
        child_resource(&parent, &name("child-slow")).context("the parent lists child-slow")?;
    assert_eq!(slow["health"]["status"], "Progressing", "{slow}");
    // The child's status is on its object, where the parent reads it.
    let cr = get_object(&applications(), &apps.name, &name("child-slow"))
        .await?
        .context(name("child-slow"))?;
    assert_eq!(str_at(&cr, "/status/health/status"), "Progressing", "{cr}");

    // The Deployment leaves child-slow's path: the child, then the parent
    // become Healthy.
    repo.remove("slow/deploy.yaml")?;
    repo.write("slow/cm.yaml", &configmap("slow-now-fine"))?;
    repo.commit("child-slow is fine now")?;
    plumb
        .wait_status(&name("child-slow"), "Synced", Some("Healthy"))
        .await?;
    let parent = plumb
        .wait_status(&name("parent"), "Synced", Some("Healthy"))
        .await?;
    let slow =
        child_resource(&parent, &name("child-slow")).context("the parent lists child-slow")?;
    assert_eq!(slow["health"]["status"], "Healthy", "{slow}");

    // Once settled, the parent's object is not written again by the
    // children's status (nothing changed in it).
    let rv = |v: &Value| str_at(v, "/metadata/resourceVersion").to_string();
    let mut before = rv(&get_object(&applications(), &apps.name, &name("parent"))
        .await?
        .context("parent")?);
    let mut stable = 0;
    for _ in 0..20 {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let now = rv(&get_object(&applications(), &apps.name, &name("parent"))
            .await?
            .context("parent")?);
        if now == before {
            stable += 1;
            if stable == 4 {
                break;
            }
        } else {
            stable = 0;
            before = now;
        }
    }
    assert_eq!(stable, 4, "the parent's object settles");

    // Clean up through the cascade.
    delete_app(&apps.name, &name("parent")).await?;
    wait_exists(&applications(), &apps.name, &name("parent"), false, &plumb).await?;
    assert!(!exists(&configmaps(), &target.name, "ok").await?);
    Ok(())
}

/// `--namespace argocd`, literally, as repositories written for Argo CD
/// have it. The namespace is shared by every test run on the cluster, so
/// the names are unique and the test deletes what it made.
#[tokio::test]
async fn application_objects_in_argocd_are_managed_with_namespace_argocd() -> Result<()> {
    let target = TestNamespace::new("aoa-argocd-target").await;
    let elsewhere = TestNamespace::new("aoa-elsewhere").await;
    elsewhere.create().await?;
    let namespaces: Api<DynamicObject> = Api::all_with(
        support::client().await,
        &resource("", "v1", "Namespace", "namespaces"),
    );
    if namespaces.get_opt("argocd").await?.is_none() {
        let ns: DynamicObject = serde_json::from_value(
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "argocd"}}),
        )?;
        match namespaces.create(&Default::default(), &ns).await {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 409 => {}
            Err(e) => return Err(e.into()),
        }
    }
    let suffix = &target.name[target.name.len() - 8..];
    let (parent, child, stray) = (
        format!("parent-{suffix}"),
        format!("child-{suffix}"),
        format!("stray-{suffix}"),
    );
    let repo = GitRepo::new(None)?;
    let url = repo.url();
    repo.write(
        "parent/child.yaml",
        &app(
            &child,
            "argocd",
            &url,
            "child",
            &target.name,
            Some(FINALIZER),
        ),
    )?;
    // An Application outside the managed namespace: applied, not managed.
    repo.write(
        "parent/stray.yaml",
        &app(&stray, &elsewhere.name, &url, "child", &target.name, None),
    )?;
    repo.write("child/cm.yaml", &configmap(&format!("cm-{suffix}")))?;
    repo.commit("app of apps for argocd")?;
    let work = tempfile::tempdir()?;
    let plumb = Plumb::start_watching(work.path(), "", "argocd").await?;
    create_app(&app(
        &parent,
        "argocd",
        &url,
        "parent",
        "argocd",
        Some(FINALIZER),
    ))
    .await?;

    let outcome = async {
        plumb.wait_status(&child, "Synced", Some("Healthy")).await?;
        wait_exists(
            &configmaps(),
            &target.name,
            &format!("cm-{suffix}"),
            true,
            &plumb,
        )
        .await?;
        // Nothing reports the stray child's health, so, as with Argo CD's
        // health check of Applications, it stays Progressing and so does
        // the parent; the warning says why.
        let doc = plumb
            .wait_status(&parent, "Synced", Some("Progressing"))
            .await?;
        let warning = doc["status"]["conditions"]
            .as_array()
            .and_then(|cs| {
                cs.iter()
                    .find(|c| c["type"] == "UnmanagedApplicationWarning")
            })
            .with_context(|| format!("a warning names the stray child: {doc}"))?;
        assert!(str_at(warning, "/message").contains(&stray), "{warning}");
        assert!(exists(&applications(), &elsewhere.name, &stray).await?);
        assert!(
            plumb.app(&stray).await.is_err(),
            "the stray child is not managed"
        );
        anyhow::Ok(())
    }
    .await;
    // Clean up whatever happened: the parent's cascade takes the child
    // (and its ConfigMap) and the stray object.
    delete_app("argocd", &parent).await?;
    wait_exists(&applications(), "argocd", &parent, false, &plumb).await?;
    outcome?;
    assert!(!exists(&applications(), "argocd", &child).await?);
    assert!(!exists(&configmaps(), &target.name, &format!("cm-{suffix}")).await?);
    Ok(())
}

/// Argo CD's "applications in any namespace": `--app-namespaces` adds
/// namespaces whose Application objects Plumb manages. One in another
/// namespace is `NAMESPACE/NAME`; the same name in two namespaces is two
/// applications, whose objects (side by side in one target namespace) are
/// told apart by their tracking ids (`NAMESPACE_NAME`), so neither prunes
/// the other's. A parent in the application namespace may put its child in
/// another managed namespace; a namespace not listed stays unmanaged.
#[tokio::test]
async fn application_objects_in_app_namespaces_are_managed_by_namespace_and_name() -> Result<()> {
    let (home, team, other, target) = (
        TestNamespace::new("appns-home").await,
        TestNamespace::new("appns-team").await,
        TestNamespace::new("appns-other").await,
        TestNamespace::new("appns-target").await,
    );
    for ns in [&home, &team, &other] {
        ns.create().await?;
    }
    let name = unique_names(&home);
    let (web, parent, child, stray) = (name("web"), name("parent"), name("child"), name("stray"));
    let repo = GitRepo::new(None)?;
    let url = repo.url();
    repo.write("home/cm.yaml", &configmap("from-home"))?;
    repo.write("team/cm.yaml", &configmap("from-team"))?;
    repo.write("child/cm.yaml", &configmap("from-child"))?;
    repo.write(
        "parent/child.yaml",
        &app(&child, &team.name, &url, "child", &target.name, None),
    )?;
    repo.commit("applications in two namespaces")?;
    let work = tempfile::tempdir()?;
    let plumb = Plumb::start_watching_with_args(
        work.path(),
        "",
        &home.name,
        &["--app-namespaces", &team.name],
    )
    .await?;
    create_app(&app(&web, &home.name, &url, "home", &target.name, None)).await?;
    create_app(&app(
        &web,
        &team.name,
        &url,
        "team",
        &target.name,
        Some(FINALIZER),
    ))
    .await?;
    create_app(&app(&parent, &home.name, &url, "parent", &home.name, None)).await?;
    create_app(&app(&stray, &other.name, &url, "team", &target.name, None)).await?;

    let team_web = format!("{}/{web}", team.name);
    let team_child = format!("{}/{child}", team.name);
    plumb.wait_status(&web, "Synced", Some("Healthy")).await?;
    plumb
        .wait_status(&team_web, "Synced", Some("Healthy"))
        .await?;
    plumb
        .wait_status(&team_child, "Synced", Some("Healthy"))
        .await?;
    for cm in ["from-home", "from-team", "from-child"] {
        wait_exists(&configmaps(), &target.name, cm, true, &plumb).await?;
    }
    // Tracking ids: the instance name of an application elsewhere.
    let from_team = get_object(&configmaps(), &target.name, "from-team")
        .await?
        .context("from-team exists")?;
    assert_eq!(
        str_at(
            &from_team,
            "/metadata/annotations/argocd.argoproj.io~1tracking-id"
        ),
        format!("{}_{web}:/ConfigMap:{}/from-team", team.name, target.name)
    );
    // Argo CD's query form names the same application.
    let by_query = plumb
        .get(&format!(
            "/api/v1/applications/{web}?appNamespace={}",
            team.name
        ))
        .await?;
    assert_eq!(str_at(&by_query, "/metadata/namespace"), team.name);
    assert_eq!(str_at(&by_query, "/spec/source/path"), "team");
    // The status goes back to the object in its own namespace.
    eventually(
        "the team's Application object carries its status",
        WAIT,
        || {
            let (ns, web) = (team.name.clone(), web.clone());
            async move {
                let object = get_object(&applications(), &ns, &web).await?;
                Ok(object.filter(|o| str_at(o, "/status/sync/status") == "Synced"))
            }
        },
    )
    .await?;
    // The parent's child in the team namespace is managed: no warning.
    let doc = plumb
        .wait_status(&parent, "Synced", Some("Healthy"))
        .await?;
    assert!(
        !doc.to_string().contains("UnmanagedApplicationWarning"),
        "{doc}"
    );
    // A namespace not listed is not managed.
    assert!(plumb.app(&format!("{}/{stray}", other.name)).await.is_err());
    // The CLI lists and gets it by NAMESPACE/NAME.
    let listed = support::cli(&["app", "list", "--server", &plumb.url])?;
    assert!(listed.contains(&format!("\n{team_web} ")), "{listed}");
    assert!(listed.contains(&format!("\n{web} ")), "{listed}");
    let got = support::cli(&["app", "get", &team_web, "--server", &plumb.url])?;
    assert!(got.contains("team"), "{got}");

    // Deleting the team's web (resources finalizer) deletes its ConfigMap
    // only; the application of the same name at home keeps its own.
    delete_app(&team.name, &web).await?;
    wait_exists(&applications(), &team.name, &web, false, &plumb).await?;
    wait_exists(&configmaps(), &target.name, "from-team", false, &plumb).await?;
    assert!(exists(&configmaps(), &target.name, "from-home").await?);
    plumb.wait_status(&web, "Synced", Some("Healthy")).await?;
    assert!(plumb.app(&team_web).await.is_err(), "gone from Plumb too");
    delete_app(&home.name, &parent).await?;
    Ok(())
}

/// `--app-namespaces` with a glob: every namespace it matches, also one
/// created after Plumb started, is managed.
#[tokio::test]
async fn a_glob_in_app_namespaces_manages_every_namespace_it_matches() -> Result<()> {
    let home = TestNamespace::new("appns-glob-home").await;
    home.create().await?;
    let suffix = home.name[home.name.len() - 8..].to_string();
    let first = TestNamespace {
        name: format!("g{suffix}-first"),
    };
    let later = TestNamespace {
        name: format!("g{suffix}-later"),
    };
    let target = TestNamespace::new("appns-glob-target").await;
    first.create().await?;
    let repo = GitRepo::new(None)?;
    let url = repo.url();
    repo.write("a/cm.yaml", &configmap("from-first"))?;
    repo.write("b/cm.yaml", &configmap("from-later"))?;
    repo.commit("two folders")?;
    let work = tempfile::tempdir()?;
    let pattern = format!("g{suffix}-*");
    let plumb = Plumb::start_watching_with_args(
        work.path(),
        "",
        &home.name,
        &["--app-namespaces", &pattern],
    )
    .await?;
    create_app(&app("one", &first.name, &url, "a", &target.name, None)).await?;
    plumb
        .wait_status(&format!("{}/one", first.name), "Synced", Some("Healthy"))
        .await?;
    later.create().await?;
    create_app(&app("two", &later.name, &url, "b", &target.name, None)).await?;
    plumb
        .wait_status(&format!("{}/two", later.name), "Synced", Some("Healthy"))
        .await?;
    wait_exists(&configmaps(), &target.name, "from-first", true, &plumb).await?;
    wait_exists(&configmaps(), &target.name, "from-later", true, &plumb).await?;
    Ok(())
}
