//! Watches the Pods bound to the simulated nodes and carries out what
//! `pod::decide` says: replace a Pod's status, delete a Pod being deleted,
//! or look again later. The decisions are `pod`'s; this is only the I/O.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{DeleteParams, PostParams, Preconditions};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::watcher;
use kube::{Api, ResourceExt};
use tokio_util::sync::CancellationToken;

use crate::pod::{Decision, NodeView, Timing, decide};

/// What every reconcile needs.
struct Context {
    client: kube::Client,
    nodes: Vec<NodeView>,
    timing: Timing,
}

/// The error of one reconcile of one Pod.
#[derive(Debug, thiserror::Error)]
pub enum PodError {
    /// Writing the Pod's status failed (a conflict included: the watch
    /// brings the newer Pod and it is decided again).
    #[error("pod {pod}: cannot write its status: {source}")]
    Status {
        pod: String,
        #[source]
        source: kube::Error,
    },
    /// Deleting a Pod being deleted failed.
    #[error("pod {pod}: cannot delete it: {source}")]
    Delete {
        pod: String,
        #[source]
        source: kube::Error,
    },
}

/// Reports the status of every Pod bound to `nodes` until `stop`. The
/// watch restarts with back-off when the API server goes away.
pub async fn report(
    client: kube::Client,
    nodes: Vec<NodeView>,
    timing: Timing,
    stop: CancellationToken,
) {
    let pods: Api<Pod> = Api::all(client.clone());
    // Every bound Pod (the field selector cannot say "one of these
    // nodes"); the others are ignored in `reconcile`.
    let config = watcher::Config::default().fields("spec.nodeName!=");
    let context = Arc::new(Context {
        client,
        nodes,
        timing,
    });
    Controller::new(pods, config)
        .trigger_backoff(QuickBackoff::default())
        .graceful_shutdown_on(async move { stop.cancelled().await })
        .run(reconcile, on_error, context)
        .for_each(|result| async move {
            if let Err(e) = result {
                tracing::debug!(error = %e, "pod reconcile");
            }
        })
        .await;
}

async fn reconcile(pod: Arc<Pod>, ctx: Arc<Context>) -> Result<Action, PodError> {
    let node_name = pod.spec.as_ref().and_then(|s| s.node_name.as_deref());
    let Some(node) = ctx
        .nodes
        .iter()
        .find(|n| Some(n.name.as_str()) == node_name)
    else {
        return Ok(Action::await_change());
    };
    let namespace = pod.namespace().unwrap_or_default();
    let name = pod.name_any();
    let api: Api<Pod> = Api::namespaced(ctx.client.clone(), &namespace);
    let id = format!("{namespace}/{name}");
    match decide(&pod, node, crate::now(), &ctx.timing) {
        Decision::Wait(None) => Ok(Action::await_change()),
        Decision::Wait(Some(seconds)) => Ok(Action::requeue(Duration::from_secs(
            u64::try_from(seconds).unwrap_or(1),
        ))),
        Decision::Write(status) => {
            let mut updated = (*pod).clone();
            tracing::info!(pod = %id, phase = status.phase.as_deref().unwrap_or(""), "status");
            updated.status = Some(*status);
            api.replace_status(&name, &PostParams::default(), &updated)
                .await
                .map_err(|source| PodError::Status { pod: id, source })?;
            // The write comes back through the watch and is decided again.
            Ok(Action::await_change())
        }
        Decision::Delete => {
            tracing::info!(pod = %id, "deleting (grace period 0)");
            let params = DeleteParams {
                grace_period_seconds: Some(0),
                preconditions: Some(Preconditions {
                    uid: pod.metadata.uid.clone(),
                    resource_version: None,
                }),
                ..Default::default()
            };
            match api.delete(&name, &params).await {
                Ok(_) => Ok(Action::await_change()),
                // Gone already, or another Pod of that name now.
                Err(kube::Error::Api(e)) if e.code == 404 || e.code == 409 => {
                    Ok(Action::await_change())
                }
                Err(source) => Err(PodError::Delete { pod: id, source }),
            }
        }
    }
}

/// The watch's back-off after an error: doubling from half a second to five
/// seconds (kube's default goes to 30 s; on a loopback control plane an
/// API server restart should be caught up within seconds), reset by a
/// success.
#[derive(Default)]
struct QuickBackoff {
    attempt: u32,
}

impl Iterator for QuickBackoff {
    type Item = Duration;

    fn next(&mut self) -> Option<Duration> {
        let millis = 500u64.saturating_mul(1 << self.attempt.min(4)).min(5_000);
        self.attempt = self.attempt.saturating_add(1);
        Some(Duration::from_millis(millis))
    }
}

impl kube::runtime::utils::Backoff for QuickBackoff {
    fn reset(&mut self) {
        self.attempt = 0;
    }
}

fn on_error(_pod: Arc<Pod>, error: &PodError, _ctx: Arc<Context>) -> Action {
    tracing::warn!(error = %error, "retrying");
    Action::requeue(Duration::from_secs(1))
}
