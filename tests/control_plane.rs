//! Proves the test harness talks to a real control plane: server-side apply
//! through kube, the controller-manager's Deployment -> ReplicaSet, and
//! namespace deletion with its finalizer.

mod support;

use std::time::Duration;

use kube::api::{Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams};
use serde_json::json;
use support::{TestNamespace, client, eventually, resource};

#[tokio::test]
async fn deployment_gets_a_replicaset_and_namespace_deletion_completes() -> anyhow::Result<()> {
    let ns = TestNamespace::new("harness").await;
    ns.create().await?;
    let client = client().await;
    let version = client.apiserver_version().await?;
    println!(
        "real API server: {} at {}",
        version.git_version,
        support::kubeconfig().display()
    );

    let deployments: Api<DynamicObject> = Api::namespaced_with(
        client.clone(),
        &ns.name,
        &resource("apps", "v1", "Deployment", "deployments"),
    );
    let deployment = json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web"},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "web", "image": "nginx:1.25",
                    "ports": [{"containerPort": 80, "protocol": "TCP"}]}]}}
        }
    });
    deployments
        .patch(
            "web",
            &PatchParams::apply("plumb-test").force(),
            &Patch::Apply(&deployment),
        )
        .await?;

    let replicasets: Api<DynamicObject> = Api::namespaced_with(
        client.clone(),
        &ns.name,
        &resource("apps", "v1", "ReplicaSet", "replicasets"),
    );
    let rs = eventually(
        "the controller-manager creates a ReplicaSet",
        Duration::from_secs(60),
        || {
            let replicasets = replicasets.clone();
            async move {
                Ok(replicasets
                    .list(&ListParams::default())
                    .await?
                    .items
                    .into_iter()
                    .next())
            }
        },
    )
    .await?;
    let owner = rs.metadata.owner_references.unwrap_or_default();
    assert_eq!(
        owner.first().map(|o| o.kind.as_str()),
        Some("Deployment"),
        "the ReplicaSet is owned by the Deployment"
    );
    println!(
        "controller-manager created ReplicaSet {}",
        rs.metadata.name.unwrap_or_default()
    );

    let namespaces: Api<DynamicObject> = Api::all_with(
        client.clone(),
        &resource("", "v1", "Namespace", "namespaces"),
    );
    namespaces
        .delete(&ns.name, &DeleteParams::background())
        .await?;
    eventually("the namespace disappears", Duration::from_secs(90), || {
        let (namespaces, name) = (namespaces.clone(), ns.name.clone());
        async move { Ok(namespaces.get_opt(&name).await?.is_none().then_some(())) }
    })
    .await?;
    println!("namespace {} deleted by the namespace controller", ns.name);
    Ok(())
}
