//! Keeps the simulated Nodes registered and alive, as a kubelet does:
//! registers each Node, posts its status when it changed or a heartbeat is
//! due, and renews its Lease in `kube-node-lease` every few seconds (what
//! kube-controller-manager's node lifecycle controller watches). Not the
//! Pods: `pods` reports those.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Node;
use kube::Api;
use kube::api::{Patch, PatchParams, PostParams};
use tokio_util::sync::CancellationToken;

use crate::node::{Capacity, LEASE_NAMESPACE, SimNode};

/// How often Leases are renewed (a kubelet's default).
const RENEW_EVERY: Duration = Duration::from_secs(10);
/// How long a Lease holds (a kubelet's default).
const LEASE_SECONDS: i32 = 40;
/// How often the status is posted when nothing changed (a kubelet posts
/// every five minutes; a minute keeps `kubectl get nodes` lively).
const HEARTBEAT_SECONDS: i64 = 60;

/// The error of one pass over one node.
#[derive(Debug, thiserror::Error)]
pub enum KeepError {
    /// A request about the node failed.
    #[error("node {node}: {what}: {source}")]
    Request {
        node: String,
        what: &'static str,
        #[source]
        source: kube::Error,
    },
}

/// Keeps `nodes` alive until `stop`; a failed pass is logged and retried
/// at the next tick (an API server restart only delays a renewal).
/// `ready` is cancelled after the first pass in which every node succeeded.
pub async fn keep(
    client: kube::Client,
    nodes: Vec<SimNode>,
    capacity: Capacity,
    stop: CancellationToken,
    ready: CancellationToken,
) {
    let mut tick = tokio::time::interval(RENEW_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        let mut all = true;
        for node in &nodes {
            if let Err(e) = keep_one(&client, node, &capacity).await {
                all = false;
                tracing::warn!(error = %e, "cannot keep a node alive; retrying");
            }
        }
        if all {
            ready.cancel();
        }
    }
}

async fn keep_one(
    client: &kube::Client,
    node: &SimNode,
    capacity: &Capacity,
) -> Result<(), KeepError> {
    let name = node.name().to_string();
    let err = |what: &'static str| {
        let node = name.clone();
        move |source| KeepError::Request { node, what, source }
    };
    let nodes: Api<Node> = Api::all(client.clone());
    let live = match nodes.get_opt(&name).await.map_err(err("read"))? {
        Some(live) => live,
        None => {
            tracing::info!(node = %name, "registering node");
            nodes
                .create(&PostParams::default(), &node.object())
                .await
                .map_err(err("register"))?
        }
    };
    let now = crate::now();
    if let Some(status) = node.status(capacity, live.status.as_ref(), now, HEARTBEAT_SECONDS) {
        let patch = serde_json::json!({ "status": status });
        nodes
            .patch_status(&name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .map_err(err("post status"))?;
    }
    let leases: Api<Lease> = Api::namespaced(client.clone(), LEASE_NAMESPACE);
    match leases.get_opt(&name).await.map_err(err("read lease"))? {
        Some(current) => {
            let renewed = node.lease(Some(current), now, LEASE_SECONDS);
            leases
                .replace(&name, &PostParams::default(), &renewed)
                .await
                .map_err(err("renew lease"))?;
        }
        None => {
            let lease = with_owner(node.lease(None, now, LEASE_SECONDS), &live);
            leases
                .create(&PostParams::default(), &lease)
                .await
                .map_err(err("create lease"))?;
        }
    }
    Ok(())
}

/// The Lease owned by its Node, so it goes when the Node does.
fn with_owner(mut lease: Lease, node: &Node) -> Lease {
    if let (Some(name), Some(uid)) = (&node.metadata.name, &node.metadata.uid) {
        lease.metadata.owner_references = Some(vec![
            k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference {
                api_version: "v1".into(),
                kind: "Node".into(),
                name: name.clone(),
                uid: uid.clone(),
                ..Default::default()
            },
        ]);
    }
    lease
}
