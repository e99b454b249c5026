//! `manifests/install.yaml` on the real control plane: it is the Kustomize
//! base built, one `kubectl apply` installs it, its ServiceAccount holds
//! every permission Plumb uses and not the ones it never needs (asked with
//! `kubectl auth can-i --as`), and `plumb serve` running outside the
//! cluster with that ServiceAccount's token syncs an application and
//! writes its status (there is no kubelet to run the Deployment's Pod).

mod support;

use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use kube::api::{Api, DeleteParams, DynamicObject, Patch, PatchParams};
use serde_json::json;
use support::{GitRepo, Plumb, TestNamespace, applications, eventually, root};

/// The namespace install.yaml installs into.
const NAMESPACE: &str = "plumb";
const ACCOUNT: &str = "system:serviceaccount:plumb:plumb";

/// `kubectl auth can-i` as Plumb's ServiceAccount: yes or no.
fn can(verb: &str, resource: &str, namespace: Option<&str>) -> Result<bool> {
    support::can_i(ACCOUNT, verb, resource, namespace)
}

#[test]
fn install_yaml_is_the_kustomize_base_built() -> Result<()> {
    let out = Command::new("bash")
        .arg(root().join("scripts/manifests"))
        .arg("--check")
        .output()?;
    ensure!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(())
}

#[tokio::test]
async fn the_install_grants_what_plumb_uses_and_plumb_syncs_with_its_token() -> Result<()> {
    let out = support::kubectl(&["apply", "-f", "manifests/install.yaml"], "")?;
    ensure!(
        out.status.success(),
        "kubectl apply -f manifests/install.yaml: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    // What Plumb does in its own namespace, and in the cluster.
    let own = [
        ("get", "applications.argoproj.io"),
        ("list", "applications.argoproj.io"),
        ("watch", "applications.argoproj.io"),
        ("create", "applications.argoproj.io"),
        ("update", "applications.argoproj.io"),
        ("patch", "applications.argoproj.io"),
        ("delete", "applications.argoproj.io"),
        ("patch", "applications.argoproj.io/status"),
        ("watch", "applicationsets.argoproj.io"),
        ("patch", "applicationsets.argoproj.io/status"),
        ("create", "appprojects.argoproj.io"),
        ("delete", "appprojects.argoproj.io"),
        ("watch", "configmaps"),
        ("watch", "secrets"),
        ("create", "secrets"),
        ("update", "secrets"),
        ("get", "leases.coordination.k8s.io"),
        ("create", "leases.coordination.k8s.io"),
        ("update", "leases.coordination.k8s.io"),
    ];
    for (verb, resource) in own {
        ensure!(
            can(verb, resource, Some(NAMESPACE))?,
            "{verb} {resource} in {NAMESPACE} is not granted"
        );
    }
    let cluster = [
        ("list", "configmaps"),
        ("watch", "deployments.apps"),
        ("create", "deployments.apps"),
        ("patch", "deployments.apps"),
        ("delete", "deployments.apps"),
        ("get", "namespaces"),
        ("create", "namespaces"),
        ("get", "customresourcedefinitions.apiextensions.k8s.io"),
        ("create", "clusterroles.rbac.authorization.k8s.io"),
        ("bind", "clusterroles.rbac.authorization.k8s.io"),
        ("escalate", "roles.rbac.authorization.k8s.io"),
    ];
    for (verb, resource) in cluster {
        ensure!(
            can(verb, resource, None)?,
            "{verb} {resource} in every namespace is not granted"
        );
    }
    // What it never does.
    let never = [
        ("impersonate", "users"),
        ("impersonate", "serviceaccounts"),
        ("deletecollection", "secrets"),
        ("approve", "certificatesigningrequests.certificates.k8s.io"),
        ("get", "/logs"),
    ];
    for (verb, resource) in never {
        let namespace = (!resource.starts_with('/')).then_some(NAMESPACE);
        ensure!(
            !can(verb, resource, namespace)?,
            "{verb} {resource} is granted, and Plumb never needs it"
        );
    }

    // plumb serve as the ServiceAccount: an Application object in the
    // install's namespace is synced, and its status written back.
    let work = tempfile::tempdir()?;
    let kubeconfig = support::service_account_kubeconfig(NAMESPACE, "plumb", work.path()).await?;
    let target = TestNamespace::new("installed").await;
    let repo = GitRepo::new(None)?;
    repo.write(
        "app/settings.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\ndata: {installed: \"yes\"}\n",
    )?;
    repo.commit("settings")?;
    let name = target.name.clone();
    let plumb = Plumb::start_as_installed(work.path(), NAMESPACE, kubeconfig).await?;
    // Ready once the first list of Application objects is in.
    eventually("plumb serve is ready", Duration::from_secs(60), || async {
        let status = reqwest::get(format!("{}/readyz", plumb.url))
            .await?
            .status();
        Ok(status.is_success().then_some(()))
    })
    .await?;

    let apps: Api<DynamicObject> =
        Api::namespaced_with(support::client().await, NAMESPACE, &applications());
    let app = json!({
        "apiVersion": "argoproj.io/v1alpha1", "kind": "Application",
        "metadata": {"name": name, "namespace": NAMESPACE},
        "spec": {
            "project": "default",
            "source": {"repoURL": repo.url(), "targetRevision": "main", "path": "app"},
            "destination": {"server": "https://kubernetes.default.svc", "namespace": target.name},
            "syncPolicy": {"automated": {"prune": true}, "syncOptions": ["CreateNamespace=true"]},
        },
    });
    apps.patch(
        &name,
        &PatchParams::apply("install-test").force(),
        &Patch::Apply(&app),
    )
    .await?;
    let result = eventually(
        "the application is Synced and Healthy in its object's status",
        Duration::from_secs(120),
        || async {
            let object = apps.get(&name).await?;
            let status = object.data.get("status").cloned().unwrap_or_default();
            Ok(
                (status["sync"]["status"] == "Synced" && status["health"]["status"] == "Healthy")
                    .then_some(()),
            )
        },
    )
    .await;
    let value = support::configmap_value(&target.name, "settings", "installed").await;
    let _ = apps.delete(&name, &DeleteParams::default()).await;
    result.with_context(|| format!("log:\n{}", plumb.log_text()))?;
    ensure!(
        value?.as_deref() == Some("yes"),
        "the ConfigMap was not deployed"
    );
    // The admin password was written by Plumb itself (Secrets granted).
    let secrets: Api<DynamicObject> = Api::namespaced_with(
        support::client().await,
        NAMESPACE,
        &support::resource("", "v1", "Secret", "secrets"),
    );
    ensure!(
        secrets
            .get_opt("plumb-initial-admin-secret")
            .await?
            .is_some(),
        "no initial admin secret"
    );
    Ok(())
}
