//! Carries out stages of a [`crate::plan::SyncPlan`] (one wave's, or the
//! prunes): applies, namespace creation, CRD waits and prunes, stage by
//! stage, stopping before the next stage when one fails.
//!
//! It decides nothing; `plan` did.

use std::time::Duration;

use futures::StreamExt;
use kube::api::PropagationPolicy;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use crate::cluster::{Cluster, ClusterError, Kind};
use crate::live::LiveState;
use crate::model::{ResourceKey, ResourceResult, version_of};
use crate::plan::{PrunePropagation, Stage, StageKind, Step, Write};

/// How many requests one application's sync has in flight at once.
const CONCURRENCY: usize = 8;

/// The outcome of a sync.
#[derive(Debug, Default)]
pub struct SyncOutcome {
    /// One result per step that ran.
    pub resources: Vec<ResourceResult>,
    /// The first failures, in a sentence; empty when all succeeded.
    pub failure: Option<String>,
    /// The `resourceVersion` each applied object had in the apply response,
    /// and the [`crate::diff::fingerprint`] of that response. That response
    /// is the state a dry run would predict, so the caller can record these
    /// objects as in sync without asking again.
    pub applied: Vec<(ResourceKey, String, u64)>,
    /// The sync was terminated before it ended.
    pub terminated: bool,
    /// The uid of each hook created.
    pub hooks: Vec<(ResourceKey, String)>,
}

/// How long deleting the earlier object of a name may take (a hook's
/// `BeforeHookCreation`, `Force=true`) before its creation fails.
const DELETE_WAIT: Duration = Duration::from_secs(60);

fn result(
    key: &ResourceKey,
    api_version: &str,
    status: &str,
    message: impl Into<String>,
) -> ResourceResult {
    ResourceResult {
        group: key.group.clone(),
        version: version_of(api_version).to_string(),
        kind: key.kind.clone(),
        namespace: key.namespace.clone(),
        name: key.name.clone(),
        status: status.to_string(),
        message: message.into(),
        sync_phase: "Sync".to_string(),
        hook_type: String::new(),
        hook_phase: String::new(),
    }
}

/// Deletes the object a hook's name holds, if any, and waits until it is
/// gone (a Job being deleted keeps its name until its Pods are).
async fn clear_hook_name(cluster: &Cluster, kind: &Kind, key: &ResourceKey) -> Result<(), String> {
    let Some(existing) = cluster.get(kind, key).await.map_err(|e| e.to_string())? else {
        return Ok(());
    };
    let uid = existing
        .pointer("/metadata/uid")
        .and_then(Value::as_str)
        .unwrap_or_default();
    match cluster.delete_and_wait(kind, key, uid, DELETE_WAIT).await {
        Ok(()) | Err(ClusterError::Replaced(_)) => Ok(()),
        Err(ClusterError::Timeout { .. }) => Err(format!(
            "the earlier {} {} is still being deleted after {}s (BeforeHookCreation)",
            key.kind,
            key.name,
            DELETE_WAIT.as_secs()
        )),
        Err(e) => Err(e.to_string()),
    }
}

/// The uid of the object a name holds now, if any.
async fn live_uid(
    cluster: &Cluster,
    kind: &Kind,
    key: &ResourceKey,
) -> Result<Option<String>, ClusterError> {
    Ok(cluster.get(kind, key).await?.and_then(|o| {
        o.pointer("/metadata/uid")
            .and_then(Value::as_str)
            .map(str::to_string)
    }))
}

/// Whether the API server refused a write because it changes a field that
/// cannot change (422 Invalid, "field is immutable").
pub fn refused_as_immutable(error: &ClusterError) -> bool {
    matches!(error, ClusterError::Api { code: Some(422), message, .. } if message.contains("immutable"))
}

/// The first field an "is invalid" refusal names (`Job.batch "x" is
/// invalid: spec.template: Invalid value: ...`), without the value it
/// quotes (a whole pod template).
fn immutable_field(message: &str) -> Option<&str> {
    let (_, fields) = message.split_once("is invalid: ")?;
    let field = fields.split(": ").next()?.trim();
    (!field.is_empty() && !field.contains(' ')).then_some(field)
}

/// Kinds a replace never deletes, whatever `Force` says: deleting a CRD
/// deletes every object of its kind, deleting a namespace everything in it
/// (Argo CD updates them instead too).
fn never_recreated(key: &ResourceKey) -> bool {
    (key.group.is_empty() && key.kind == "Namespace")
        || (key.group == "apiextensions.k8s.io" && key.kind == "CustomResourceDefinition")
}

/// Deletes the object of `key` (the one that is there now) and waits
/// until its name is free: the first half of a `Force=true` write.
/// Returns the deleted object's uid, if there was one.
async fn delete_for_force(
    cluster: &Cluster,
    kind: &Kind,
    key: &ResourceKey,
) -> Result<Option<String>, String> {
    let Some(uid) = live_uid(cluster, kind, key)
        .await
        .map_err(|e| e.to_string())?
    else {
        return Ok(None);
    };
    match cluster.delete_and_wait(kind, key, &uid, DELETE_WAIT).await {
        Ok(()) | Err(ClusterError::Replaced(_)) => Ok(Some(uid)),
        Err(e) => Err(format!(
            "Force=true: cannot delete it before creating it again: {e}"
        )),
    }
}

/// Writes one object as its options say: a server-side apply (with
/// `Force`, deleted and created again when a field it changes is
/// immutable), or a replace (with `Force`, deleted and created again).
/// Returns the object as the server has it and what was done.
async fn write(
    cluster: &Cluster,
    kind: &Kind,
    key: &ResourceKey,
    object: &Value,
    how: Write,
) -> Result<(Value, String), String> {
    let validate = !how.skip_validation;
    let apply = move || async move {
        if validate {
            cluster
                .apply_strict(kind, object, false)
                .await
                .map(|o| (o, Vec::new()))
        } else {
            cluster.apply_unvalidated(kind, object, false).await
        }
    };
    let dropped = |paths: &[String]| {
        if paths.is_empty() {
            String::new()
        } else {
            format!(
                "; fields the API server does not know were left out (Validate=false): {}",
                paths.join(", ")
            )
        }
    };
    if how.replace {
        if how.force && !never_recreated(key) {
            let deleted = delete_for_force(cluster, kind, key).await?;
            let (created, _) = cluster
                .replace(kind, object, validate)
                .await
                .map_err(|e| e.to_string())?;
            let message = match deleted {
                Some(uid) => {
                    format!("deleted (uid {uid}) and created again (Replace=true, Force=true)")
                }
                None => "created (Replace=true)".to_string(),
            };
            return Ok((created, message));
        }
        let (written, created) = cluster
            .replace(kind, object, validate)
            .await
            .map_err(|e| e.to_string())?;
        let message = if created {
            "created (Replace=true)"
        } else {
            "replaced (Replace=true)"
        };
        return Ok((written, message.to_string()));
    }
    match apply().await {
        Ok((applied, paths)) => Ok((applied, format!("applied (server-side){}", dropped(&paths)))),
        Err(e) if how.force && refused_as_immutable(&e) && !never_recreated(key) => {
            let deleted = delete_for_force(cluster, kind, key).await?;
            let (applied, paths) = apply().await.map_err(|e| e.to_string())?;
            let uid = deleted.map(|u| format!(" (uid {u})")).unwrap_or_default();
            let field = match &e {
                ClusterError::Api { message, .. } => immutable_field(message),
                _ => None,
            }
            .unwrap_or("a field");
            Ok((
                applied,
                format!(
                    "the API server refused to change {field} (immutable): deleted{uid} and created again (Force=true){}",
                    dropped(&paths)
                ),
            ))
        }
        Err(e) => Err(e.to_string()),
    }
}

async fn resolve(cluster: &Cluster, api_version: &str, key: &ResourceKey) -> Result<Kind, String> {
    match cluster.resolve(api_version, &key.kind).await {
        Ok(Some(kind)) => Ok(kind),
        Ok(None) => Err(format!(
            "the cluster does not serve {api_version} {}",
            key.kind
        )),
        Err(e) => Err(e.to_string()),
    }
}

/// What a running sync is given besides its plan.
pub struct Execution<'a> {
    /// Fires when the operation is terminated.
    pub cancel: &'a CancellationToken,
    /// Hears each step's result as it ends.
    pub progress: &'a (dyn Fn(&ResourceResult) + Send + Sync),
    /// How long a CRD of the sync may take to become Established.
    pub crd_timeout: Duration,
}

async fn run_step(
    cluster: &Cluster,
    live: &LiveState,
    step: &Step,
    crd_timeout: Duration,
) -> StepResult {
    let mut applied_version = None;
    let result = match step {
        Step::CreateNamespace(name) => {
            let key = ResourceKey {
                group: String::new(),
                kind: "Namespace".into(),
                namespace: String::new(),
                name: name.clone(),
            };
            match cluster.ensure_namespace(name).await {
                Ok(()) => result(
                    &key,
                    "v1",
                    "Synced",
                    "namespace created (CreateNamespace=true)",
                ),
                Err(e) => result(&key, "v1", "SyncFailed", e.to_string()),
            }
        }
        Step::Apply {
            key,
            object,
            write: how,
        } => {
            let api_version = object
                .get("apiVersion")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let kind = match resolve(cluster, api_version, key).await {
                Ok(kind) => kind,
                Err(message) => return (result(key, api_version, "SyncFailed", message), None),
            };
            match write(cluster, &kind, key, object, *how).await {
                Ok((applied, message)) => {
                    applied_version = applied
                        .pointer("/metadata/resourceVersion")
                        .and_then(Value::as_str)
                        .map(|v| (v.to_string(), crate::diff::fingerprint(&applied)));
                    live.observe_applied(api_version, &key.kind, &applied);
                    // Its custom resources come in a later stage.
                    if kind.resource.kind == "CustomResourceDefinition"
                        && let Err(e) = cluster.wait_crd_established(&key.name, crd_timeout).await
                    {
                        return (result(key, api_version, "SyncFailed", e.to_string()), None);
                    }
                    result(key, api_version, "Synced", message)
                }
                Err(message) => result(key, api_version, "SyncFailed", message),
            }
        }
        Step::Prune {
            key,
            api_version,
            uid,
            propagation,
            ..
        } => {
            let kind = match resolve(cluster, api_version, key).await {
                Ok(kind) => kind,
                Err(message) => return (result(key, api_version, "SyncFailed", message), None),
            };
            let propagation = match propagation {
                PrunePropagation::Background => PropagationPolicy::Background,
                PrunePropagation::Foreground => PropagationPolicy::Foreground,
                PrunePropagation::Orphan => PropagationPolicy::Orphan,
            };
            match cluster
                .delete_with(&kind, key, Some(uid), propagation)
                .await
            {
                Ok(still) => {
                    // One whose deletion waits (finalizers, foreground) stays
                    // in the live state, as answered (being deleted), until
                    // its watch says it is gone: the prunes of a lower wave
                    // wait for it.
                    match still {
                        None => live.observe_deleted(api_version, &key.kind, key),
                        Some(object) => live.observe_applied(api_version, &key.kind, &object),
                    }
                    result(key, api_version, "Pruned", "pruned")
                }
                Err(e @ ClusterError::Replaced(_)) => {
                    result(key, api_version, "PruneSkipped", e.to_string())
                }
                Err(e) => result(key, api_version, "SyncFailed", e.to_string()),
            }
        }
        Step::PruneSkipped {
            key,
            api_version,
            reason,
        } => result(key, api_version, "PruneSkipped", reason.clone()),
        Step::Hook {
            key,
            object,
            phase,
            recreate,
        } => {
            let api_version = object
                .get("apiVersion")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let hook_result = |status: &str, message: String, hook_phase: &str| ResourceResult {
                sync_phase: phase.as_str().to_string(),
                hook_type: phase.as_str().to_string(),
                hook_phase: hook_phase.to_string(),
                ..result(key, api_version, status, message)
            };
            let kind = match resolve(cluster, api_version, key).await {
                Ok(kind) => kind,
                Err(message) => return (hook_result("SyncFailed", message, "Failed"), None),
            };
            if *recreate && let Err(message) = clear_hook_name(cluster, &kind, key).await {
                return (hook_result("SyncFailed", message, "Failed"), None);
            }
            match cluster.apply_strict(&kind, object, false).await {
                Ok(applied) => {
                    live.observe_applied(api_version, &key.kind, &applied);
                    let uid = applied
                        .pointer("/metadata/uid")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_string();
                    return (
                        hook_result("Synced", "hook created".into(), "Running"),
                        Some((uid, 0)),
                    );
                }
                Err(e) => hook_result("SyncFailed", e.to_string(), "Failed"),
            }
        }
    };
    (result, applied_version)
}

/// A step's result and, for an apply, the applied `resourceVersion` and
/// fingerprint (for a hook: its uid, and 0).
type StepResult = (ResourceResult, Option<(String, u64)>);

/// Runs a step unless the sync was terminated; abandons it when the sync is
/// terminated while it runs.
async fn guarded<'a>(
    cluster: &Cluster,
    live: &LiveState,
    step: &'a Step,
    run: &Execution<'_>,
) -> Option<(&'a Step, StepResult)> {
    if run.cancel.is_cancelled() {
        return None;
    }
    let ran = tokio::select! {
        () = run.cancel.cancelled() => return None,
        ran = run_step(cluster, live, step, run.crd_timeout) => ran,
    };
    (run.progress)(&ran.0);
    Some((step, ran))
}

/// Executes stages of a plan (a wave's, or the prunes). Within the foundation stage steps run one by one
/// (namespaces before the CRDs and objects in them); within the main and
/// prune stages they run concurrently, since kind order only matters
/// between stages for objects that reference each other by name.
///
/// Once `run.cancel` fires no step starts, a step in flight is abandoned
/// (an apply is idempotent; the next comparison sees what it did) and the
/// outcome says the sync was terminated.
pub async fn execute(
    cluster: &Cluster,
    live: &LiveState,
    stages: &[&Stage],
    run: &Execution<'_>,
) -> SyncOutcome {
    let mut outcome = SyncOutcome::default();
    for stage in stages {
        let results: Vec<Option<(&Step, StepResult)>> = if stage.kind == StageKind::Foundation {
            let mut out = Vec::new();
            for s in &stage.steps {
                out.push(guarded(cluster, live, s, run).await);
            }
            out
        } else {
            let steps: Vec<_> = stage
                .steps
                .iter()
                .map(|s| guarded(cluster, live, s, run))
                .collect();
            futures::stream::iter(steps)
                .buffered(CONCURRENCY)
                .collect()
                .await
        };
        let mut failed: Vec<String> = Vec::new();
        for (step, (r, version)) in results.into_iter().flatten() {
            if r.status == "SyncFailed" {
                failed.push(format!("{} {}: {}", r.kind, r.name, r.message));
            }
            match (step, version) {
                (Step::Apply { key, .. }, Some((version, print))) => {
                    outcome.applied.push((key.clone(), version, print));
                }
                (Step::Hook { key, .. }, Some((uid, _))) => {
                    outcome.hooks.push((key.clone(), uid));
                }
                _ => {}
            }
            outcome.resources.push(r);
        }
        if run.cancel.is_cancelled() {
            outcome.terminated = true;
            outcome.failure = Some("the operation was terminated".into());
            break;
        }
        if !failed.is_empty() {
            let more = if failed.len() > 3 {
                format!(" (and {} more)", failed.len() - 3)
            } else {
                String::new()
            };
            outcome.failure = Some(format!(
                "{}{more}",
                failed.into_iter().take(3).collect::<Vec<_>>().join("; ")
            ));
            break;
        }
    }
    outcome
}

#[cfg(test)]
mod tests {
    use super::immutable_field;

    #[test]
    fn the_immutable_field_is_named_without_its_value() {
        assert_eq!(
            immutable_field(
                "Job.batch \"migrate\" is invalid: spec.template: Invalid value: core.PodTemplateSpec{ObjectMeta:v1.ObjectMeta{Name:\"\"}}: field is immutable"
            ),
            Some("spec.template")
        );
        assert_eq!(immutable_field("field is immutable"), None);
    }
}
