//! `manifests/namespace-install.yaml` on the real control plane: Plumb with
//! namespaced RBAC only, deploying to the namespaces it is given. The
//! install (moved to a fresh namespace, as a user would with another
//! namespace) and `manifests/namespaced/deployer.yaml` in two fresh managed
//! namespaces grant its ServiceAccount what Plumb needs there and nothing
//! cluster-wide (asked with `kubectl auth can-i --as`); `plumb serve
//! --managed-namespaces` with that ServiceAccount's token syncs an
//! application into a managed namespace, and an application aiming at an
//! unmanaged namespace, or declaring a cluster-scoped object, gets a
//! condition with nothing written.

mod support;

use std::time::Duration;

use anyhow::{Context, Result, ensure};
use kube::api::{Api, DeleteParams, DynamicObject, Patch, PatchParams};
use serde_json::{Value, json};
use support::{GitRepo, Plumb, TestNamespace, applications, eventually, kubectl, root};

/// Applies YAML documents.
fn apply(documents: &[Value]) -> Result<()> {
    let text = documents
        .iter()
        .map(serde_yaml::to_string)
        .collect::<Result<Vec<_>, _>>()?
        .join("---\n");
    let out = kubectl(&["apply", "-f", "-"], &text)?;
    ensure!(
        out.status.success(),
        "kubectl apply: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(())
}

/// The documents of a manifest file of the repository, moved from the
/// namespace `plumb` to `home` (the Namespace object, every namespaced
/// object and the ServiceAccount of each binding), and the others to
/// `namespace` when given: what a user installing elsewhere changes.
fn relocated(path: &str, home: &str, namespace: Option<&str>) -> Result<Vec<Value>> {
    let text = std::fs::read_to_string(root().join(path))?;
    let mut out = Vec::new();
    for document in serde_yaml::Deserializer::from_str(&text) {
        let mut object: Value = serde::Deserialize::deserialize(document)?;
        if object.is_null() {
            continue;
        }
        if object["kind"] == "Namespace" {
            object["metadata"]["name"] = json!(home);
        } else if object["metadata"].get("namespace").is_some() {
            object["metadata"]["namespace"] = json!(home);
        } else if let Some(ns) = namespace {
            object["metadata"]["namespace"] = json!(ns);
        }
        if let Some(subjects) = object.get_mut("subjects").and_then(Value::as_array_mut) {
            for subject in subjects {
                subject["namespace"] = json!(home);
            }
        }
        out.push(object);
    }
    Ok(out)
}

fn app(name: &str, home: &str, repo: &GitRepo, path: &str, destination: &str) -> Value {
    json!({
        "apiVersion": "argoproj.io/v1alpha1", "kind": "Application",
        "metadata": {"name": name, "namespace": home},
        "spec": {
            "project": "default",
            "source": {"repoURL": repo.url(), "targetRevision": "main", "path": path},
            "destination": {"server": "https://kubernetes.default.svc", "namespace": destination},
            "syncPolicy": {"automated": {"prune": true}, "syncOptions": ["CreateNamespace=true"]},
        },
    })
}

/// An application deploying `scoped/` to `namespace` of the cluster
/// Secret `scoped`.
fn scoped_app(name: &str, home: &str, repo: &GitRepo, namespace: &str) -> Value {
    let mut app = app(name, home, repo, "scoped", namespace);
    app["spec"]["destination"] = json!({"name": "scoped", "namespace": namespace});
    app
}

/// The application's status once it has a condition of `kind` containing
/// `text`.
async fn condition(apps: &Api<DynamicObject>, name: &str, kind: &str, text: &str) -> Result<Value> {
    eventually(
        &format!("{name} has a {kind} saying {text:?}"),
        Duration::from_secs(120),
        || async {
            let object = apps.get(name).await?;
            let status = object.data.get("status").cloned().unwrap_or_default();
            let found = status["conditions"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|c| {
                    c["type"] == kind && c["message"].as_str().is_some_and(|m| m.contains(text))
                });
            Ok(found.then_some(status))
        },
    )
    .await
}

#[tokio::test]
async fn the_namespaced_install_grants_only_its_namespaces_and_plumb_deploys_only_there()
-> Result<()> {
    // The CRDs, as the admin applies them once.
    let out = kubectl(&["apply", "-f", "manifests/crds.yaml"], "")?;
    ensure!(
        out.status.success(),
        "kubectl apply -f manifests/crds.yaml: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let home = TestNamespace::new("nsi-home").await;
    let managed = [
        TestNamespace::new("nsi-a").await,
        TestNamespace::new("nsi-b").await,
    ];
    let other = TestNamespace::new("nsi-other").await;
    for ns in managed.iter().chain([&other]) {
        ns.create().await?;
    }
    apply(&relocated(
        "manifests/namespace-install.yaml",
        &home.name,
        None,
    )?)?;
    // What manifests/namespaced/deployer.yaml says to do per namespace.
    for ns in &managed {
        apply(&relocated(
            "manifests/namespaced/deployer.yaml",
            &home.name,
            Some(&ns.name),
        )?)?;
    }
    let account = format!("system:serviceaccount:{}:plumb", home.name);
    let (a, b) = (managed[0].name.as_str(), managed[1].name.as_str());
    eventually(
        "the RoleBindings are in force",
        Duration::from_secs(30),
        || async { Ok(support::can_i(&account, "list", "configmaps", Some(b))?.then_some(())) },
    )
    .await?;

    // In its own namespace: its objects, settings, Secrets and Lease.
    let own = [
        ("list", "applications.argoproj.io"),
        ("watch", "applications.argoproj.io"),
        ("patch", "applications.argoproj.io/status"),
        ("watch", "applicationsets.argoproj.io"),
        ("watch", "appprojects.argoproj.io"),
        ("watch", "configmaps"),
        ("watch", "secrets"),
        ("create", "secrets"),
        ("update", "leases.coordination.k8s.io"),
    ];
    for (verb, resource) in own {
        ensure!(
            support::can_i(&account, verb, resource, Some(&home.name))?,
            "{verb} {resource} in {} is not granted",
            home.name
        );
    }
    // In each managed namespace: whatever an application deploys.
    let deploy = [
        ("list", "configmaps"),
        ("watch", "configmaps"),
        ("create", "configmaps"),
        ("patch", "configmaps"),
        ("delete", "configmaps"),
        ("watch", "deployments.apps"),
        ("patch", "deployments.apps"),
        ("list", "pods"),
        ("create", "roles.rbac.authorization.k8s.io"),
        ("bind", "roles.rbac.authorization.k8s.io"),
        ("escalate", "roles.rbac.authorization.k8s.io"),
    ];
    for ns in [a, b] {
        for (verb, resource) in deploy {
            ensure!(
                support::can_i(&account, verb, resource, Some(ns))?,
                "{verb} {resource} in {ns} is not granted"
            );
        }
    }
    // Nothing elsewhere, nothing cluster-wide.
    let elsewhere = [
        ("list", "pods"),
        ("list", "configmaps"),
        ("create", "configmaps"),
        ("watch", "deployments.apps"),
    ];
    for (verb, resource) in elsewhere {
        ensure!(
            !support::can_i(&account, verb, resource, Some(&other.name))?,
            "{verb} {resource} in the unmanaged {} is granted",
            other.name
        );
        ensure!(
            !support::can_i(&account, verb, resource, None)?,
            "{verb} {resource} in every namespace is granted"
        );
    }
    let cluster = [
        ("create", "clusterroles.rbac.authorization.k8s.io"),
        ("create", "clusterrolebindings.rbac.authorization.k8s.io"),
        ("get", "namespaces"),
        ("create", "namespaces"),
        ("get", "customresourcedefinitions.apiextensions.k8s.io"),
        ("impersonate", "serviceaccounts"),
    ];
    for (verb, resource) in cluster {
        ensure!(
            !support::can_i(&account, verb, resource, None)?,
            "{verb} {resource} is granted to the namespaced install"
        );
    }

    // plumb serve as that ServiceAccount, deploying to a and b only.
    let work = tempfile::tempdir()?;
    let kubeconfig = support::service_account_kubeconfig(&home.name, "plumb", work.path()).await?;
    let repo = GitRepo::new(None)?;
    let config_map = |name: &str| {
        format!(
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\ndata: {{installed: \"yes\"}}\n"
        )
    };
    repo.write("app/settings.yaml", &config_map("settings"))?;
    repo.write("app/extra.yaml", &config_map("extra"))?;
    repo.write("cluster/settings.yaml", &config_map("settings"))?;
    repo.write(
        "cluster/role.yaml",
        "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata:\n  name: nsi-never\nrules: []\n",
    )?;
    repo.write("scoped/settings.yaml", &config_map("scoped"))?;
    repo.commit("settings")?;
    // The same control plane through a cluster Secret (another server
    // URL: another connection) limited to a by its `namespaces`.
    let account_config: Value = serde_yaml::from_str(&std::fs::read_to_string(&kubeconfig)?)?;
    let scoped_secret = json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "nsi-scoped", "namespace": home.name,
            "labels": {"argocd.argoproj.io/secret-type": "cluster"}},
        "stringData": {
            "name": "scoped",
            "server": account_config["clusters"][0]["cluster"]["server"],
            "namespaces": a,
            "config": json!({
                "bearerToken": account_config["users"][0]["user"]["token"],
                "tlsClientConfig": {"insecure": false,
                    "caData": account_config["clusters"][0]["cluster"]["certificate-authority-data"]},
            }).to_string(),
        },
    });
    apply(&[scoped_secret])?;
    let managed_flag = format!("--managed-namespaces={a},{b}");
    let plumb =
        Plumb::start_as_installed_with(work.path(), &home.name, kubeconfig, &[&managed_flag])
            .await?;
    eventually("plumb serve is ready", Duration::from_secs(60), || async {
        let status = reqwest::get(format!("{}/readyz", plumb.url))
            .await?
            .status();
        Ok(status.is_success().then_some(()))
    })
    .await
    .with_context(|| format!("log:\n{}", plumb.log_text()))?;

    let apps: Api<DynamicObject> =
        Api::namespaced_with(support::client().await, &home.name, &applications());
    let params = PatchParams::apply("install-namespaced-test").force();
    let apps_of = [
        ("inside", app("inside", &home.name, &repo, "app", b)),
        (
            "outside",
            app("outside", &home.name, &repo, "app", &other.name),
        ),
        ("cluster", app("cluster", &home.name, &repo, "cluster", a)),
        ("scoped-in", scoped_app("scoped-in", &home.name, &repo, a)),
        ("scoped-out", scoped_app("scoped-out", &home.name, &repo, b)),
    ];
    for (name, object) in &apps_of {
        apps.patch(name, &params, &Patch::Apply(object)).await?;
    }

    // Into a managed namespace: deployed, its status written.
    let synced = eventually(
        "inside is Synced and Healthy in its object's status",
        Duration::from_secs(120),
        || async {
            let object = apps.get("inside").await?;
            let status = object.data.get("status").cloned().unwrap_or_default();
            Ok(
                (status["sync"]["status"] == "Synced" && status["health"]["status"] == "Healthy")
                    .then_some(()),
            )
        },
    )
    .await;
    // Its watches see its objects there: a file removed is pruned.
    let pruned = match &synced {
        Ok(()) => {
            repo.remove("app/extra.yaml")?;
            repo.commit("no extra")?;
            eventually(
                "the removed ConfigMap is pruned from the managed namespace",
                Duration::from_secs(120),
                || async {
                    Ok(support::configmap_value(b, "extra", "installed")
                        .await?
                        .is_none()
                        .then_some(()))
                },
            )
            .await
        }
        Err(_) => Ok(()),
    };
    // An unmanaged namespace, and a cluster-scoped object beside a
    // ConfigMap of a managed namespace: a condition, nothing written.
    let outside = condition(&apps, "outside", "ComparisonError", "is not managed").await;
    let cluster = condition(
        &apps,
        "cluster",
        "ComparisonError",
        "ClusterRole nsi-never is cluster-scoped",
    )
    .await;
    let scoped_in = eventually(
        "scoped-in is Synced through the cluster Secret",
        Duration::from_secs(120),
        || async {
            let object = apps.get("scoped-in").await?;
            let status = object.data.get("status").cloned().unwrap_or_default();
            Ok((status["sync"]["status"] == "Synced").then_some(()))
        },
    )
    .await;
    let scoped_out = condition(
        &apps,
        "scoped-out",
        "ComparisonError",
        "(the cluster Secret's namespaces)",
    )
    .await;
    let scoped_deployed = support::configmap_value(a, "scoped", "installed").await;
    let scoped_leaked = support::configmap_value(b, "scoped", "installed").await;
    let deployed = support::configmap_value(b, "settings", "installed").await;
    let leaked = support::configmap_value(&other.name, "settings", "installed").await;
    let early = support::configmap_value(a, "settings", "installed").await;
    let role = support::get_object(
        &support::resource(
            "rbac.authorization.k8s.io",
            "v1",
            "ClusterRole",
            "clusterroles",
        ),
        "",
        "nsi-never",
    )
    .await;
    for (name, _) in &apps_of {
        let _ = apps.delete(name, &DeleteParams::default()).await;
    }
    let log = plumb.log_text();
    synced.with_context(|| format!("log:\n{log}"))?;
    pruned.with_context(|| format!("log:\n{log}"))?;
    let outside = outside.with_context(|| format!("log:\n{log}"))?;
    let cluster = cluster.with_context(|| format!("log:\n{log}"))?;
    ensure!(
        deployed?.as_deref() == Some("yes"),
        "the ConfigMap was not deployed to {b}"
    );
    ensure!(
        leaked?.is_none(),
        "a ConfigMap was written to the unmanaged {}",
        other.name
    );
    ensure!(
        early?.is_none(),
        "the ConfigMap of an application declaring a ClusterRole was written to {a}"
    );
    ensure!(role?.is_none(), "the ClusterRole was created");
    scoped_in.with_context(|| format!("log:\n{log}"))?;
    let scoped_out = scoped_out.with_context(|| format!("log:\n{log}"))?;
    ensure!(
        scoped_deployed?.as_deref() == Some("yes"),
        "the ConfigMap was not deployed to {a} through the cluster Secret"
    );
    ensure!(
        scoped_leaked?.is_none(),
        "a ConfigMap was written to {b}, outside the cluster Secret's namespaces"
    );
    ensure!(
        scoped_out["sync"]["status"] == "Unknown",
        "scoped-out is {}",
        scoped_out["sync"]["status"]
    );
    let secrets: Api<DynamicObject> = Api::namespaced_with(
        support::client().await,
        &home.name,
        &support::resource("", "v1", "Secret", "secrets"),
    );
    let _ = secrets.delete("nsi-scoped", &DeleteParams::default()).await;
    for status in [&outside, &cluster] {
        ensure!(
            status["sync"]["status"] == "Unknown",
            "an application out of reach is {}, not Unknown",
            status["sync"]["status"]
        );
        ensure!(
            status["operationState"].is_null()
                || status["operationState"]["syncResult"]["resources"]
                    .as_array()
                    .is_none_or(Vec::is_empty),
            "an application out of reach was synced: {}",
            status["operationState"]
        );
    }
    Ok(())
}
