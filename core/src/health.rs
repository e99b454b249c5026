//! Health of live Kubernetes objects, with Argo CD's built-in rules
//! (gitops-engine's `pkg/health`) and its messages.
//!
//! Beside gitops-engine's Go rules, Plumb has in Rust the rules Argo CD ships
//! as Lua scripts for core kinds (CronJob, PodDisruptionBudget,
//! CustomResourceDefinition), with the same outcomes and messages.
//!
//! It is not the Lua interpreter for `resource.customizations` (that is
//! `plumb-engine`'s `lua`, which calls [`health_of`] where no script
//! applies), and it does not wait or watch: it reads one object's `spec`
//! and `status` and says what they mean now. Kinds without a rule get
//! `None`.

use serde_json::Value;

use crate::model::{Health, HealthStatusCode, group_of};

/// The health of a live object, or `None` when its kind has no rule (the
/// caller treats those as healthy, as Argo CD does).
///
/// An object being deleted (`metadata.deletionTimestamp` set) is
/// Progressing "Pending deletion", whatever its kind, as in Argo CD.
pub fn health_of(object: &Value) -> Option<Health> {
    if let Some(pending) = pending_deletion(object) {
        return Some(pending);
    }
    builtin(object)
}

/// Progressing "Pending deletion" for an object being deleted: the rule
/// that comes before every other, a custom script's included.
pub fn pending_deletion(object: &Value) -> Option<Health> {
    object
        .pointer("/metadata/deletionTimestamp")
        .is_some_and(|t| !t.is_null())
        .then(|| Health::new(HealthStatusCode::Progressing, "Pending deletion"))
}

/// The built-in rule of the object's kind alone, without the deletion rule.
fn builtin(object: &Value) -> Option<Health> {
    let api_version = str_at(object, "/apiVersion");
    let kind = str_at(object, "/kind");
    let object = Object(object);
    Some(match (group_of(api_version), kind) {
        ("apps" | "extensions", "Deployment") => deployment(object),
        ("apps" | "extensions", "ReplicaSet") => replica_set(object),
        ("apps", "StatefulSet") => stateful_set(object),
        ("apps" | "extensions", "DaemonSet") => daemon_set(object),
        ("", "Pod") => pod(object),
        ("", "Service") => service(object),
        ("", "PersistentVolumeClaim") => persistent_volume_claim(object),
        ("", "Namespace") => namespace(object),
        ("batch", "Job") => job(object),
        ("batch", "CronJob") => cron_job(object),
        ("extensions" | "networking.k8s.io", "Ingress") => ingress(object),
        ("autoscaling", "HorizontalPodAutoscaler") => horizontal_pod_autoscaler(object),
        ("policy", "PodDisruptionBudget") => pod_disruption_budget(object),
        ("apiregistration.k8s.io", "APIService") => api_service(object),
        ("apiextensions.k8s.io", "CustomResourceDefinition") => custom_resource_definition(object),
        ("argoproj.io", "Application") => application(object),
        ("argoproj.io", "Workflow") => workflow(object),
        _ => return None,
    })
}

/// An application's health from its resources': the worst by
/// [`HealthStatusCode::severity`], Healthy when there are none.
pub fn aggregate(statuses: impl IntoIterator<Item = HealthStatusCode>) -> HealthStatusCode {
    statuses
        .into_iter()
        .max_by_key(|s| s.severity())
        .unwrap_or(HealthStatusCode::Healthy)
}

/// Typed reads of an object given as JSON, with Kubernetes' zero values for
/// absent fields (as a Go client sees them after decoding).
#[derive(Clone, Copy)]
struct Object<'a>(&'a Value);

impl<'a> Object<'a> {
    fn int(self, pointer: &str) -> i64 {
        self.0.pointer(pointer).and_then(Value::as_i64).unwrap_or(0)
    }

    fn opt_int(self, pointer: &str) -> Option<i64> {
        self.0.pointer(pointer).and_then(Value::as_i64)
    }

    fn str(self, pointer: &str) -> &'a str {
        str_at(self.0, pointer)
    }

    fn bool(self, pointer: &str) -> bool {
        self.0
            .pointer(pointer)
            .and_then(Value::as_bool)
            .unwrap_or(false)
    }

    fn list(self, pointer: &str) -> &'a [Value] {
        self.0
            .pointer(pointer)
            .and_then(Value::as_array)
            .map_or(&[], Vec::as_slice)
    }

    fn name(self) -> &'a str {
        self.str("/metadata/name")
    }

    /// `metadata.generation <= status.observedGeneration`: the controller
    /// has seen the current spec.
    fn observed(self) -> bool {
        self.int("/metadata/generation") <= self.int("/status/observedGeneration")
    }

    /// The `status.conditions[]` entry of a type.
    fn condition(self, type_: &str) -> Option<Condition<'a>> {
        self.list("/status/conditions")
            .iter()
            .find(|c| str_at(c, "/type") == type_)
            .map(|c| Condition {
                status: str_at(c, "/status"),
                reason: str_at(c, "/reason"),
                message: str_at(c, "/message"),
            })
    }
}

struct Condition<'a> {
    status: &'a str,
    reason: &'a str,
    message: &'a str,
}

fn str_at<'a>(value: &'a Value, pointer: &str) -> &'a str {
    value
        .pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or_default()
}

fn healthy() -> Health {
    Health::new(HealthStatusCode::Healthy, "")
}

fn progressing(message: impl Into<String>) -> Health {
    Health::new(HealthStatusCode::Progressing, message)
}

fn degraded(message: impl Into<String>) -> Health {
    Health::new(HealthStatusCode::Degraded, message)
}

/// kubectl's `rollout status` logic, as Argo CD borrows it.
fn deployment(d: Object<'_>) -> Health {
    if d.bool("/spec/paused") {
        return Health::new(HealthStatusCode::Suspended, "Deployment is paused");
    }
    if !d.observed() {
        return progressing(
            "Waiting for rollout to finish: observed deployment generation less than desired generation",
        );
    }
    if d.condition("Progressing")
        .is_some_and(|c| c.reason == "ProgressDeadlineExceeded")
    {
        return degraded(format!(
            "Deployment {:?} exceeded its progress deadline",
            d.name()
        ));
    }
    // The API server defaults spec.replicas to 1.
    let replicas = d.opt_int("/spec/replicas").unwrap_or(1);
    let updated = d.int("/status/updatedReplicas");
    let current = d.int("/status/replicas");
    let available = d.int("/status/availableReplicas");
    if updated < replicas {
        return progressing(format!(
            "Waiting for rollout to finish: {updated} out of {replicas} new replicas have been updated..."
        ));
    }
    if current > updated {
        return progressing(format!(
            "Waiting for rollout to finish: {} old replicas are pending termination...",
            current - updated
        ));
    }
    if available < updated {
        return progressing(format!(
            "Waiting for rollout to finish: {available} of {updated} updated replicas are available..."
        ));
    }
    healthy()
}

fn replica_set(rs: Object<'_>) -> Health {
    if !rs.observed() {
        return progressing(
            "Waiting for rollout to finish: observed replica set generation less than desired generation",
        );
    }
    if let Some(failure) = rs
        .condition("ReplicaFailure")
        .filter(|c| c.status == "True")
    {
        return degraded(failure.message);
    }
    let replicas = rs.opt_int("/spec/replicas").unwrap_or(1);
    let available = rs.int("/status/availableReplicas");
    if available < replicas {
        return progressing(format!(
            "Waiting for rollout to finish: {available} out of {replicas} new replicas are available..."
        ));
    }
    healthy()
}

/// Argo CD's order: observed, ready, then the update strategy decides.
/// A RollingUpdate with `rollingUpdate` set (the API server sets
/// `partition: 0` by default) is judged on the partition alone, so in
/// practice the revision comparison applies only when `rollingUpdate` is
/// absent.
fn stateful_set(sts: Object<'_>) -> Health {
    let observed_generation = sts.int("/status/observedGeneration");
    if observed_generation == 0 || sts.int("/metadata/generation") > observed_generation {
        return progressing("Waiting for statefulset spec update to be observed...");
    }
    let replicas = sts.opt_int("/spec/replicas").unwrap_or(1);
    let ready = sts.int("/status/readyReplicas");
    let updated = sts.int("/status/updatedReplicas");
    if ready < replicas {
        return progressing(format!(
            "Waiting for {} pods to be ready...",
            replicas - ready
        ));
    }
    // The API server defaults the strategy to RollingUpdate.
    let strategy = match sts.str("/spec/updateStrategy/type") {
        "" => "RollingUpdate",
        other => other,
    };
    if strategy == "RollingUpdate"
        && sts
            .0
            .pointer("/spec/updateStrategy/rollingUpdate")
            .is_some_and(Value::is_object)
    {
        if let Some(partition) = sts.opt_int("/spec/updateStrategy/rollingUpdate/partition") {
            let want = replicas - partition;
            if updated < want {
                return progressing(format!(
                    "Waiting for partitioned roll out to finish: {updated} out of {want} new pods have been updated..."
                ));
            }
        }
        return Health::new(
            HealthStatusCode::Healthy,
            format!("partitioned roll out complete: {updated} new pods have been updated..."),
        );
    }
    if strategy == "OnDelete" {
        return Health::new(
            HealthStatusCode::Healthy,
            format!("statefulset has {ready} ready pods"),
        );
    }
    let update_revision = sts.str("/status/updateRevision");
    let current_revision = sts.str("/status/currentRevision");
    if update_revision != current_revision {
        return progressing(format!(
            "waiting for statefulset rolling update to complete {updated} pods at revision {update_revision}..."
        ));
    }
    Health::new(
        HealthStatusCode::Healthy,
        format!(
            "statefulset rolling update complete {} pods at revision {current_revision}...",
            sts.int("/status/currentReplicas")
        ),
    )
}

fn daemon_set(ds: Object<'_>) -> Health {
    if !ds.observed() {
        return progressing(
            "Waiting for rollout to finish: observed daemon set generation less than desired generation",
        );
    }
    let desired = ds.int("/status/desiredNumberScheduled");
    let updated = ds.int("/status/updatedNumberScheduled");
    let available = ds.int("/status/numberAvailable");
    if ds.str("/spec/updateStrategy/type") == "OnDelete" {
        return Health::new(
            HealthStatusCode::Healthy,
            format!("daemon set {updated} out of {desired} new pods have been updated"),
        );
    }
    if updated < desired {
        return progressing(format!(
            "Waiting for daemon set {:?} rollout to finish: {updated} out of {desired} new pods have been updated...",
            ds.name()
        ));
    }
    if available < desired {
        return progressing(format!(
            "Waiting for daemon set {:?} rollout to finish: {available} of {desired} updated pods are available...",
            ds.name()
        ));
    }
    healthy()
}

/// Argo CD's pod rule. Waiting reasons count against a pod only with
/// `restartPolicy: Always` (the default): a hook pod with `Never` or
/// `OnFailure` that cannot pull its image yet must not fail its sync early.
fn pod(p: Object<'_>) -> Health {
    let restart_always = matches!(p.str("/spec/restartPolicy"), "" | "Always");
    let message = p.str("/status/message");
    if restart_always {
        let failing: Vec<&str> = p
            .list("/status/containerStatuses")
            .iter()
            .filter_map(|c| c.pointer("/state/waiting"))
            .filter_map(|w| {
                let reason = str_at(w, "/reason");
                let bad = reason.starts_with("Err")
                    || reason.ends_with("Error")
                    || reason.ends_with("BackOff");
                // Argo CD shows the message only; the reason says as much
                // when the kubelet gave no message.
                bad.then(|| {
                    Some(str_at(w, "/message"))
                        .filter(|m| !m.is_empty())
                        .unwrap_or(reason)
                })
            })
            .collect();
        if !failing.is_empty() {
            return degraded(failing.join(", "));
        }
    }
    match p.str("/status/phase") {
        "Pending" => progressing(message),
        "Succeeded" => Health::new(HealthStatusCode::Healthy, message),
        "Failed" => {
            if !message.is_empty() {
                return degraded(message);
            }
            let mut statuses = p
                .list("/status/initContainerStatuses")
                .iter()
                .chain(p.list("/status/containerStatuses"));
            degraded(statuses.find_map(container_failure).unwrap_or_default())
        }
        "Running" if restart_always => {
            let ready = p.condition("Ready").is_some_and(|c| c.status == "True");
            if ready {
                return Health::new(HealthStatusCode::Healthy, message);
            }
            let restarted = p.list("/status/containerStatuses").iter().any(|c| {
                c.pointer("/lastState/terminated")
                    .is_some_and(|t| !t.is_null())
            });
            if restarted {
                degraded(message)
            } else {
                progressing(message)
            }
        }
        // Pods that run to completion (typically hooks) are Progressing
        // until they succeed or fail.
        "Running" => progressing(message),
        _ => Health::new(HealthStatusCode::Unknown, message),
    }
}

fn container_failure(status: &Value) -> Option<String> {
    let terminated = status
        .pointer("/state/terminated")
        .filter(|t| t.is_object())?;
    let message = str_at(terminated, "/message");
    if !message.is_empty() {
        return Some(message.to_string());
    }
    if str_at(terminated, "/reason") == "OOMKilled" {
        return Some("OOMKilled".into());
    }
    let exit_code = terminated
        .get("exitCode")
        .and_then(Value::as_i64)
        .unwrap_or(0);
    (exit_code != 0).then(|| {
        format!(
            "container {:?} failed with exit code {exit_code}",
            str_at(status, "/name")
        )
    })
}

fn service(s: Object<'_>) -> Health {
    let waiting_for_address =
        s.str("/spec/type") == "LoadBalancer" && s.list("/status/loadBalancer/ingress").is_empty();
    if waiting_for_address {
        progressing("")
    } else {
        healthy()
    }
}

fn persistent_volume_claim(pvc: Object<'_>) -> Health {
    let status = match pvc.str("/status/phase") {
        "Lost" => HealthStatusCode::Degraded,
        "Pending" => HealthStatusCode::Progressing,
        "Bound" => HealthStatusCode::Healthy,
        _ => HealthStatusCode::Unknown,
    };
    Health::new(status, "")
}

/// Argo CD reads the Failed / Complete / Suspended conditions without
/// looking at their status; Plumb requires `status: "True"`, which is what
/// the Job controller sets, so a condition turned `False` is not believed.
fn job(j: Object<'_>) -> Health {
    let is_true = |type_: &str| j.condition(type_).filter(|c| c.status == "True");
    if let Some(failed) = is_true("Failed") {
        return degraded(failed.message);
    }
    if let Some(complete) = is_true("Complete") {
        return Health::new(HealthStatusCode::Healthy, complete.message);
    }
    if let Some(suspended) = is_true("Suspended") {
        return Health::new(HealthStatusCode::Suspended, suspended.message);
    }
    if j.bool("/spec/suspend") {
        return Health::new(HealthStatusCode::Suspended, "Job is suspended");
    }
    let running = j
        .condition("Complete")
        .map(|c| c.message)
        .unwrap_or_default();
    progressing(running)
}

/// Argo CD's CronJob script: a suspended CronJob is Healthy (Argo CD keeps
/// it out of Suspended on purpose), one whose last run did not succeed is
/// Degraded, and any other with a status Healthy with what is known.
fn cron_job(cj: Object<'_>) -> Health {
    if cj.bool("/spec/suspend") {
        return Health::new(HealthStatusCode::Healthy, "CronJob is Suspended");
    }
    if !cj.0.pointer("/status").is_some_and(Value::is_object) {
        return progressing("Waiting for CronJob");
    }
    let scheduled =
        cj.0.pointer("/status/lastScheduleTime")
            .and_then(Value::as_str);
    let succeeded =
        cj.0.pointer("/status/lastSuccessfulTime")
            .and_then(Value::as_str);
    let message = match (scheduled, succeeded) {
        (None, _) => "CronJob has not been scheduled yet",
        (Some(_), None) => "The CronJob never completed successfully. It may not be healthy",
        (Some(_), Some(_)) if !cj.list("/status/active").is_empty() => {
            "The job is running. Its last execution may not have been successful"
        }
        // RFC 3339 times in UTC compare as text.
        (Some(scheduled), Some(succeeded)) if succeeded < scheduled => {
            return degraded("CronJob has not completed its last execution successfully");
        }
        (Some(_), Some(_)) => "CronJob has completed its last execution successfully",
    };
    Health::new(HealthStatusCode::Healthy, message)
}

/// Healthy once the load balancer reports an address.
fn ingress(i: Object<'_>) -> Health {
    if i.list("/status/loadBalancer/ingress").is_empty() {
        progressing("")
    } else {
        healthy()
    }
}

/// `autoscaling/v1` carries the conditions in an annotation (as JSON), the
/// later versions in `status.conditions`. A failing condition Argo CD knows
/// makes it Degraded, an `AbleToScale` or `ScalingLimited` that is true
/// Healthy; otherwise it waits to autoscale.
fn horizontal_pod_autoscaler(hpa: Object<'_>) -> Health {
    const DEGRADED: [(&str, &str); 8] = [
        ("AbleToScale", "FailedGetScale"),
        ("AbleToScale", "FailedUpdateScale"),
        ("ScalingActive", "FailedGetResourceMetric"),
        ("ScalingActive", "FailedGetObjectMetric"),
        ("ScalingActive", "FailedGetPodsMetric"),
        ("ScalingActive", "FailedGetExternalMetric"),
        ("ScalingActive", "FailedComputeMetricsReplicas"),
        ("ScalingActive", "InvalidSelector"),
    ];
    let waiting = || progressing("Waiting to Autoscale");
    let from_annotation;
    let conditions: &[Value] = if str_at(hpa.0, "/apiVersion") == "autoscaling/v1" {
        let Some(text) =
            crate::model::annotation(hpa.0, "autoscaling.alpha.kubernetes.io/conditions")
        else {
            return waiting();
        };
        from_annotation = match serde_json::from_str::<Vec<Value>>(text) {
            Ok(list) => list,
            Err(e) => {
                return Health::new(
                    HealthStatusCode::Unknown,
                    format!("failed to convert conditions annotation to typed: {e}"),
                );
            }
        };
        &from_annotation
    } else {
        hpa.list("/status/conditions")
    };
    if let Some(c) = conditions.iter().find(|c| {
        let (type_, reason) = (str_at(c, "/type"), str_at(c, "/reason"));
        DEGRADED.contains(&(type_, reason))
    }) {
        return degraded(str_at(c, "/message"));
    }
    if let Some(c) = conditions.iter().find(|c| {
        matches!(str_at(c, "/type"), "AbleToScale" | "ScalingLimited")
            && str_at(c, "/status") == "True"
    }) {
        return Health::new(HealthStatusCode::Healthy, str_at(c, "/message"));
    }
    waiting()
}

/// Argo CD's PodDisruptionBudget script: a condition turned `False` for any
/// reason but `InsufficientPods` (which has valid uses) makes it Degraded;
/// otherwise the last condition's reason says it is Healthy.
fn pod_disruption_budget(pdb: Object<'_>) -> Health {
    let mut health = progressing("Waiting for status");
    for c in pdb.list("/status/conditions") {
        let reason = str_at(c, "/reason");
        let message = format!("PodDisruptionBudget has {reason}");
        if str_at(c, "/status") == "False" && reason != "InsufficientPods" {
            return degraded(message);
        }
        health = Health::new(HealthStatusCode::Healthy, message);
    }
    health
}

/// The aggregator's `Available` condition decides.
fn api_service(api: Object<'_>) -> Health {
    match api.condition("Available") {
        Some(c) => {
            let status = if c.status == "True" {
                HealthStatusCode::Healthy
            } else {
                HealthStatusCode::Progressing
            };
            Health::new(status, format!("{}: {}", c.reason, c.message))
        }
        None => progressing("Waiting to be processed"),
    }
}

/// Argo CD's CRD script: conditions in their order; Terminating, names not
/// accepted and a non-structural schema win over Established.
fn custom_resource_definition(crd: Object<'_>) -> Health {
    let conditions = crd.list("/status/conditions");
    if conditions.is_empty() {
        return progressing("Status conditions not found");
    }
    let mut established = false;
    for c in conditions {
        let (type_, status) = (str_at(c, "/type"), str_at(c, "/status"));
        let message = str_at(c, "/message");
        match (type_, status) {
            ("Terminating", "True") => {
                return progressing(format!("CRD is terminating: {message}"));
            }
            ("NamesAccepted", "False") => {
                return degraded(format!("CRD names have not been accepted: {message}"));
            }
            ("NonStructuralSchema", "True") => {
                return degraded(format!("Schema violations found: {message}"));
            }
            ("Established", "True") => established = true,
            ("Established", _) if str_at(c, "/reason") == "Installing" => {
                return progressing("CRD is being installed");
            }
            _ => {}
        }
    }
    if established {
        Health::new(HealthStatusCode::Healthy, "CRD is healthy")
    } else {
        degraded("CRD is not established")
    }
}

/// An Argo Workflow by its phase, with its message.
fn workflow(wf: Object<'_>) -> Health {
    let message = wf.str("/status/message");
    let status = match wf.str("/status/phase") {
        "" | "Pending" | "Running" => HealthStatusCode::Progressing,
        "Succeeded" => HealthStatusCode::Healthy,
        "Failed" | "Error" => HealthStatusCode::Degraded,
        _ => HealthStatusCode::Unknown,
    };
    Health::new(status, message)
}

/// Argo CD has no built-in Namespace rule (it counts as healthy); Plumb
/// reports a namespace being deleted, since everything in it is going.
fn namespace(ns: Object<'_>) -> Health {
    match ns.str("/status/phase") {
        "Terminating" => progressing("namespace is terminating"),
        _ => healthy(),
    }
}

/// A child Application (app of apps) is as healthy as it says it is: its
/// own `status.health`. Without a status yet it is Progressing, as in the
/// rule Argo CD documents for `resource.customizations`.
fn application(app: Object<'_>) -> Health {
    let status = match app.str("/status/health/status") {
        "" => HealthStatusCode::Progressing,
        s => serde_json::from_value(Value::String(s.to_string()))
            .unwrap_or(HealthStatusCode::Unknown),
    };
    // The child's own sync status goes in the message when its health
    // says nothing more: the parent's resource row shows whether the child
    // object matches Git (the parent's comparison, as in Argo CD), and the
    // message whether the child's resources match its Git.
    let message = match (
        app.str("/status/health/message"),
        app.str("/status/sync/status"),
    ) {
        ("", "") => String::new(),
        ("", sync) => format!("sync: {sync}"),
        (message, _) => message.to_string(),
    };
    Health::new(status, message)
}

#[cfg(test)]
mod tests {
    use super::*;
    use HealthStatusCode::{Degraded, Healthy, Missing, Progressing, Suspended, Unknown};
    use serde_json::json;

    fn health(object: Value) -> Health {
        health_of(&object).expect("kind has a rule")
    }

    fn assert_health(object: Value, status: HealthStatusCode, message: &str) {
        let got = health(object.clone());
        assert_eq!(got, Health::new(status, message), "for {object}");
    }

    fn deployment(generation: i64, spec: Value, status: Value) -> Value {
        json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "generation": generation}, "spec": spec, "status": status})
    }

    #[test]
    fn kinds_without_a_rule_have_no_health() {
        assert_eq!(
            health_of(&json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}})),
            None
        );
        assert_eq!(
            health_of(
                &json!({"apiVersion": "example.com/v1", "kind": "Deployment", "metadata": {"name": "d"}})
            ),
            None
        );
        assert_eq!(
            health_of(&json!({"apiVersion": "apps/v1", "kind": "Ingress"})),
            None
        );
    }

    #[test]
    fn objects_being_deleted_are_progressing_whatever_their_kind() {
        let cm = json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "c", "deletionTimestamp": "2024-01-01T00:00:00Z", "finalizers": ["x"]}});
        assert_health(cm, Progressing, "Pending deletion");
    }

    #[test]
    fn aggregate_is_the_worst_status_and_healthy_when_empty() {
        assert_eq!(aggregate([]), Healthy);
        assert_eq!(aggregate([Healthy, Suspended]), Suspended);
        assert_eq!(aggregate([Suspended, Progressing, Healthy]), Progressing);
        assert_eq!(aggregate([Progressing, Missing]), Missing);
        assert_eq!(aggregate([Missing, Degraded, Healthy]), Degraded);
        assert_eq!(aggregate([Degraded, Unknown]), Unknown);
    }

    #[test]
    fn paused_deployment_is_suspended() {
        assert_health(
            deployment(1, json!({"paused": true}), json!({})),
            Suspended,
            "Deployment is paused",
        );
    }

    #[test]
    fn deployment_without_status_is_progressing() {
        assert_health(
            deployment(1, json!({"replicas": 2}), json!(null)),
            Progressing,
            "Waiting for rollout to finish: observed deployment generation less than desired generation",
        );
    }

    #[test]
    fn deployment_with_unobserved_generation_is_progressing() {
        let status = json!({"observedGeneration": 1, "replicas": 1, "updatedReplicas": 1, "availableReplicas": 1});
        assert_health(
            deployment(2, json!({"replicas": 1}), status),
            Progressing,
            "Waiting for rollout to finish: observed deployment generation less than desired generation",
        );
    }

    #[test]
    fn deployment_past_its_progress_deadline_is_degraded() {
        let status = json!({"observedGeneration": 3, "replicas": 1, "updatedReplicas": 1,
            "conditions": [{"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded"}]});
        assert_health(
            deployment(3, json!({"replicas": 1}), status),
            Degraded,
            "Deployment \"web\" exceeded its progress deadline",
        );
    }

    #[test]
    fn deployment_with_replicas_not_yet_updated_is_progressing() {
        let status = json!({"observedGeneration": 2, "replicas": 3, "updatedReplicas": 1, "availableReplicas": 3});
        assert_health(
            deployment(2, json!({"replicas": 3}), status),
            Progressing,
            "Waiting for rollout to finish: 1 out of 3 new replicas have been updated...",
        );
    }

    #[test]
    fn deployment_replicas_default_to_one() {
        let status = json!({"observedGeneration": 1});
        assert_health(
            deployment(1, json!({}), status),
            Progressing,
            "Waiting for rollout to finish: 0 out of 1 new replicas have been updated...",
        );
    }

    #[test]
    fn deployment_with_old_replicas_pending_termination_is_progressing() {
        let status = json!({"observedGeneration": 2, "replicas": 4, "updatedReplicas": 3, "availableReplicas": 3});
        assert_health(
            deployment(2, json!({"replicas": 3}), status),
            Progressing,
            "Waiting for rollout to finish: 1 old replicas are pending termination...",
        );
    }

    #[test]
    fn deployment_without_available_replicas_no_kubelet_is_progressing() {
        // What a control plane without nodes shows: pods are created and
        // updated but never become available.
        let status = json!({"observedGeneration": 1, "replicas": 1, "updatedReplicas": 1, "unavailableReplicas": 1,
            "conditions": [{"type": "Available", "status": "False", "reason": "MinimumReplicasUnavailable"},
                           {"type": "Progressing", "status": "True", "reason": "ReplicaSetUpdated"}]});
        assert_health(
            deployment(1, json!({"replicas": 1}), status),
            Progressing,
            "Waiting for rollout to finish: 0 of 1 updated replicas are available...",
        );
    }

    #[test]
    fn rolled_out_deployment_is_healthy() {
        let status = json!({"observedGeneration": 5, "replicas": 2, "updatedReplicas": 2, "availableReplicas": 2});
        assert_health(deployment(5, json!({"replicas": 2}), status), Healthy, "");
    }

    #[test]
    fn deployment_scaled_to_zero_is_healthy() {
        assert_health(
            deployment(2, json!({"replicas": 0}), json!({"observedGeneration": 2})),
            Healthy,
            "",
        );
    }

    #[test]
    fn extensions_deployment_uses_the_same_rule() {
        let mut d = deployment(1, json!({"paused": true}), json!({}));
        d["apiVersion"] = json!("extensions/v1beta1");
        assert_health(d, Suspended, "Deployment is paused");
    }

    fn replica_set(generation: i64, replicas: i64, status: Value) -> Value {
        json!({"apiVersion": "apps/v1", "kind": "ReplicaSet",
            "metadata": {"name": "web-1", "generation": generation}, "spec": {"replicas": replicas}, "status": status})
    }

    #[test]
    fn replica_set_rules() {
        assert_health(
            replica_set(2, 1, json!({"observedGeneration": 1})),
            Progressing,
            "Waiting for rollout to finish: observed replica set generation less than desired generation",
        );
        let failure = json!({"observedGeneration": 1, "conditions": [{"type": "ReplicaFailure", "status": "True",
            "reason": "FailedCreate", "message": "pods \"web-1-x\" is forbidden: exceeded quota"}]});
        assert_health(
            replica_set(1, 1, failure),
            Degraded,
            "pods \"web-1-x\" is forbidden: exceeded quota",
        );
        assert_health(
            replica_set(
                1,
                2,
                json!({"observedGeneration": 1, "availableReplicas": 1}),
            ),
            Progressing,
            "Waiting for rollout to finish: 1 out of 2 new replicas are available...",
        );
        assert_health(
            replica_set(
                1,
                2,
                json!({"observedGeneration": 1, "availableReplicas": 2}),
            ),
            Healthy,
            "",
        );
    }

    fn stateful_set(generation: i64, spec: Value, status: Value) -> Value {
        json!({"apiVersion": "apps/v1", "kind": "StatefulSet",
            "metadata": {"name": "db", "generation": generation}, "spec": spec, "status": status})
    }

    #[test]
    fn stateful_set_not_yet_observed_is_progressing() {
        let want = "Waiting for statefulset spec update to be observed...";
        assert_health(
            stateful_set(1, json!({"replicas": 1}), json!({})),
            Progressing,
            want,
        );
        assert_health(
            stateful_set(3, json!({"replicas": 1}), json!({"observedGeneration": 2})),
            Progressing,
            want,
        );
    }

    #[test]
    fn stateful_set_waits_for_ready_pods() {
        let status = json!({"observedGeneration": 1, "readyReplicas": 1});
        assert_health(
            stateful_set(1, json!({"replicas": 3}), status),
            Progressing,
            "Waiting for 2 pods to be ready...",
        );
    }

    #[test]
    fn stateful_set_with_partition_waits_for_its_share() {
        let spec = json!({"replicas": 3, "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"partition": 1}}});
        let status = json!({"observedGeneration": 1, "readyReplicas": 3, "updatedReplicas": 1});
        assert_health(
            stateful_set(1, spec.clone(), status),
            Progressing,
            "Waiting for partitioned roll out to finish: 1 out of 2 new pods have been updated...",
        );
        let status = json!({"observedGeneration": 1, "readyReplicas": 3, "updatedReplicas": 2});
        assert_health(
            stateful_set(1, spec, status),
            Healthy,
            "partitioned roll out complete: 2 new pods have been updated...",
        );
    }

    #[test]
    fn stateful_set_on_delete_is_healthy_once_observed_and_ready() {
        let spec = json!({"replicas": 2, "updateStrategy": {"type": "OnDelete"}});
        let status = json!({"observedGeneration": 1, "readyReplicas": 2, "currentRevision": "a", "updateRevision": "b"});
        assert_health(
            stateful_set(1, spec, status),
            Healthy,
            "statefulset has 2 ready pods",
        );
    }

    #[test]
    fn stateful_set_rolling_update_compares_revisions() {
        let spec = json!({"replicas": 2, "updateStrategy": {"type": "RollingUpdate"}});
        let status = json!({"observedGeneration": 1, "readyReplicas": 2, "updatedReplicas": 1, "currentReplicas": 1,
            "currentRevision": "db-1", "updateRevision": "db-2"});
        assert_health(
            stateful_set(1, spec.clone(), status),
            Progressing,
            "waiting for statefulset rolling update to complete 1 pods at revision db-2...",
        );
        let status = json!({"observedGeneration": 1, "readyReplicas": 2, "updatedReplicas": 2, "currentReplicas": 2,
            "currentRevision": "db-2", "updateRevision": "db-2"});
        assert_health(
            stateful_set(1, spec, status),
            Healthy,
            "statefulset rolling update complete 2 pods at revision db-2...",
        );
    }

    fn daemon_set(generation: i64, strategy: &str, status: Value) -> Value {
        json!({"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": "agent", "generation": generation},
            "spec": {"updateStrategy": {"type": strategy}}, "status": status})
    }

    #[test]
    fn daemon_set_rules() {
        assert_health(
            daemon_set(2, "RollingUpdate", json!({"observedGeneration": 1})),
            Progressing,
            "Waiting for rollout to finish: observed daemon set generation less than desired generation",
        );
        let partial = json!({"observedGeneration": 1, "desiredNumberScheduled": 3, "updatedNumberScheduled": 2, "numberAvailable": 3});
        assert_health(
            daemon_set(1, "RollingUpdate", partial.clone()),
            Progressing,
            "Waiting for daemon set \"agent\" rollout to finish: 2 out of 3 new pods have been updated...",
        );
        assert_health(
            daemon_set(1, "OnDelete", partial),
            Healthy,
            "daemon set 2 out of 3 new pods have been updated",
        );
        let unavailable = json!({"observedGeneration": 1, "desiredNumberScheduled": 3, "updatedNumberScheduled": 3, "numberAvailable": 1});
        assert_health(
            daemon_set(1, "RollingUpdate", unavailable),
            Progressing,
            "Waiting for daemon set \"agent\" rollout to finish: 1 of 3 updated pods are available...",
        );
        let done = json!({"observedGeneration": 1, "desiredNumberScheduled": 3, "updatedNumberScheduled": 3, "numberAvailable": 3});
        assert_health(daemon_set(1, "RollingUpdate", done), Healthy, "");
    }

    fn pod(restart_policy: Option<&str>, status: Value) -> Value {
        let mut spec = json!({"containers": [{"name": "app", "image": "x"}]});
        if let Some(policy) = restart_policy {
            spec["restartPolicy"] = json!(policy);
        }
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": spec, "status": status})
    }

    #[test]
    fn pending_pod_is_progressing_with_its_message() {
        assert_health(
            pod(
                None,
                json!({"phase": "Pending", "message": "0/1 nodes are available"}),
            ),
            Progressing,
            "0/1 nodes are available",
        );
    }

    #[test]
    fn running_ready_pod_is_healthy() {
        let status =
            json!({"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]});
        assert_health(pod(Some("Always"), status), Healthy, "");
    }

    #[test]
    fn running_pod_not_ready_is_progressing_or_degraded_after_a_restart() {
        let status = json!({"phase": "Running", "conditions": [{"type": "Ready", "status": "False"}],
            "containerStatuses": [{"name": "app", "ready": false, "state": {"running": {}}}]});
        assert_health(pod(None, status), Progressing, "");
        let status = json!({"phase": "Running", "conditions": [{"type": "Ready", "status": "False"}],
            "containerStatuses": [{"name": "app", "state": {"running": {}}, "lastState": {"terminated": {"exitCode": 1}}}]});
        assert_health(pod(None, status), Degraded, "");
    }

    #[test]
    fn running_pod_that_runs_to_completion_is_progressing() {
        let status =
            json!({"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]});
        assert_health(pod(Some("Never"), status.clone()), Progressing, "");
        assert_health(pod(Some("OnFailure"), status), Progressing, "");
    }

    #[test]
    fn succeeded_pod_is_healthy() {
        assert_health(
            pod(Some("Never"), json!({"phase": "Succeeded"})),
            Healthy,
            "",
        );
    }

    #[test]
    fn failed_pod_is_degraded_with_the_best_message() {
        assert_health(
            pod(
                Some("Never"),
                json!({"phase": "Failed", "message": "evicted"}),
            ),
            Degraded,
            "evicted",
        );
        let status = json!({"phase": "Failed",
            "initContainerStatuses": [{"name": "init", "state": {"terminated": {"exitCode": 0}}}],
            "containerStatuses": [{"name": "app", "state": {"terminated": {"exitCode": 2}}}]});
        assert_health(
            pod(Some("Never"), status),
            Degraded,
            "container \"app\" failed with exit code 2",
        );
        let status = json!({"phase": "Failed", "containerStatuses": [{"name": "app",
            "state": {"terminated": {"exitCode": 137, "reason": "OOMKilled"}}}]});
        assert_health(pod(Some("Never"), status), Degraded, "OOMKilled");
    }

    #[test]
    fn crash_looping_or_unpullable_containers_make_a_pod_degraded() {
        let status = json!({"phase": "Running", "containerStatuses": [
            {"name": "a", "state": {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off 5m0s restarting failed container"}}},
            {"name": "b", "state": {"waiting": {"reason": "ImagePullBackOff", "message": "Back-off pulling image \"x\""}}},
            {"name": "c", "state": {"waiting": {"reason": "ErrImagePull"}}},
            {"name": "d", "state": {"waiting": {"reason": "ContainerCreating"}}}
        ]});
        assert_health(
            pod(None, status),
            Degraded,
            "back-off 5m0s restarting failed container, Back-off pulling image \"x\", ErrImagePull",
        );
        let status = json!({"phase": "Pending", "containerStatuses": [
            {"name": "a", "state": {"waiting": {"reason": "CreateContainerConfigError", "message": "secret \"s\" not found"}}}]});
        assert_health(
            pod(Some("Always"), status),
            Degraded,
            "secret \"s\" not found",
        );
    }

    #[test]
    fn waiting_reasons_do_not_fail_hook_pods() {
        let status = json!({"phase": "Pending", "containerStatuses": [
            {"name": "a", "state": {"waiting": {"reason": "ImagePullBackOff", "message": "Back-off"}}}]});
        assert_health(pod(Some("Never"), status), Progressing, "");
    }

    #[test]
    fn pod_in_unknown_phase_is_unknown() {
        assert_health(
            pod(None, json!({"phase": "Unknown", "message": "node lost"})),
            Unknown,
            "node lost",
        );
    }

    #[test]
    fn service_rules() {
        let svc = |type_: &str, status: Value| json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"}, "spec": {"type": type_}, "status": status});
        assert_health(svc("ClusterIP", json!({})), Healthy, "");
        assert_health(
            svc("LoadBalancer", json!({"loadBalancer": {}})),
            Progressing,
            "",
        );
        assert_health(
            svc(
                "LoadBalancer",
                json!({"loadBalancer": {"ingress": [{"ip": "10.0.0.1"}]}}),
            ),
            Healthy,
            "",
        );
    }

    #[test]
    fn persistent_volume_claim_rules() {
        let pvc = |phase: &str| json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "data"}, "status": {"phase": phase}});
        assert_health(pvc("Bound"), Healthy, "");
        assert_health(pvc("Pending"), Progressing, "");
        assert_health(pvc("Lost"), Degraded, "");
        assert_health(pvc(""), Unknown, "");
    }

    fn job(spec: Value, conditions: Value) -> Value {
        json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "migrate"}, "spec": spec,
            "status": {"conditions": conditions}})
    }

    #[test]
    fn job_rules() {
        assert_health(
            job(
                json!({}),
                json!([{"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded",
                "message": "Job has reached the specified backoff limit"}]),
            ),
            Degraded,
            "Job has reached the specified backoff limit",
        );
        assert_health(
            job(json!({}), json!([{"type": "Complete", "status": "True"}])),
            Healthy,
            "",
        );
        assert_health(
            job(json!({"suspend": true}), json!([])),
            Suspended,
            "Job is suspended",
        );
        assert_health(
            job(
                json!({"suspend": true}),
                json!([{"type": "Suspended", "status": "True", "message": "Job suspended"}]),
            ),
            Suspended,
            "Job suspended",
        );
        assert_health(job(json!({}), json!([])), Progressing, "");
        assert_health(
            job(json!({}), json!([{"type": "Failed", "status": "False"}])),
            Progressing,
            "",
        );
    }

    #[test]
    fn namespace_rules() {
        let ns = |status: Value| json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "n"}, "status": status});
        assert_health(ns(json!({"phase": "Active"})), Healthy, "");
        assert_health(ns(json!(null)), Healthy, "");
        assert_health(
            ns(json!({"phase": "Terminating"})),
            Progressing,
            "namespace is terminating",
        );
    }

    #[test]
    fn child_application_reports_its_own_health() {
        let app = |status: Value| json!({"apiVersion": "argoproj.io/v1alpha1", "kind": "Application", "metadata": {"name": "child"}, "status": status});
        assert_health(
            app(json!({"health": {"status": "Degraded", "message": "web: crash"}})),
            Degraded,
            "web: crash",
        );
        assert_health(app(json!({"health": {"status": "Healthy"}})), Healthy, "");
        assert_health(
            app(json!({"health": {"status": "Healthy"}, "sync": {"status": "OutOfSync"}})),
            Healthy,
            "sync: OutOfSync",
        );
        assert_health(
            app(json!({"health": {"status": "Suspended"}})),
            Suspended,
            "",
        );
        assert_health(app(json!({})), Progressing, "");
        assert_health(app(json!({"health": {"status": "Weird"}})), Unknown, "");
    }

    #[test]
    fn cron_job_rules() {
        let cj = |spec: Value, status: Value| json!({"apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": "nightly"}, "spec": spec, "status": status});
        let at = |t: &str| json!(t);
        assert_health(
            cj(json!({"suspend": true}), json!({})),
            Healthy,
            "CronJob is Suspended",
        );
        assert_health(
            cj(json!({}), json!(null)),
            Progressing,
            "Waiting for CronJob",
        );
        assert_health(
            cj(json!({}), json!({})),
            Healthy,
            "CronJob has not been scheduled yet",
        );
        assert_health(
            cj(
                json!({}),
                json!({"lastScheduleTime": at("2024-01-02T00:00:00Z")}),
            ),
            Healthy,
            "The CronJob never completed successfully. It may not be healthy",
        );
        assert_health(
            cj(
                json!({}),
                json!({"lastScheduleTime": "2024-01-02T00:00:00Z", "lastSuccessfulTime": "2024-01-01T00:00:10Z",
                    "active": [{"name": "nightly-2"}]}),
            ),
            Healthy,
            "The job is running. Its last execution may not have been successful",
        );
        assert_health(
            cj(
                json!({}),
                json!({"lastScheduleTime": "2024-01-02T00:00:00Z", "lastSuccessfulTime": "2024-01-01T00:00:10Z"}),
            ),
            Degraded,
            "CronJob has not completed its last execution successfully",
        );
        assert_health(
            cj(
                json!({}),
                json!({"lastScheduleTime": "2024-01-02T00:00:00Z", "lastSuccessfulTime": "2024-01-02T00:00:10Z"}),
            ),
            Healthy,
            "CronJob has completed its last execution successfully",
        );
    }

    #[test]
    fn ingress_rules() {
        for api_version in ["networking.k8s.io/v1", "extensions/v1beta1"] {
            let ing = |status: Value| json!({"apiVersion": api_version, "kind": "Ingress", "metadata": {"name": "web"}, "status": status});
            assert_health(ing(json!({})), Progressing, "");
            assert_health(ing(json!({"loadBalancer": {}})), Progressing, "");
            assert_health(
                ing(json!({"loadBalancer": {"ingress": [{"hostname": "lb.example.com"}]}})),
                Healthy,
                "",
            );
        }
    }

    #[test]
    fn horizontal_pod_autoscaler_rules_from_status_conditions() {
        let hpa = |conditions: Value| {
            json!({"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
            "metadata": {"name": "web"}, "status": {"conditions": conditions}})
        };
        assert_health(hpa(json!([])), Progressing, "Waiting to Autoscale");
        assert_health(
            hpa(json!([
                {"type": "AbleToScale", "status": "True", "reason": "SucceededGetScale", "message": "the HPA controller was able to get the target's current scale"},
                {"type": "ScalingActive", "status": "False", "reason": "FailedGetResourceMetric", "message": "missing request for cpu"}])),
            Degraded,
            "missing request for cpu",
        );
        assert_health(
            hpa(json!([
                {"type": "AbleToScale", "status": "True", "reason": "ReadyForNewScale", "message": "recommended size matches current size"},
                {"type": "ScalingActive", "status": "True", "reason": "ValidMetricFound", "message": "ok"}])),
            Healthy,
            "recommended size matches current size",
        );
        assert_health(
            hpa(json!([{"type": "ScalingActive", "status": "True", "reason": "ValidMetricFound"}])),
            Progressing,
            "Waiting to Autoscale",
        );
        let mut beta =
            hpa(json!([{"type": "ScalingLimited", "status": "True", "message": "too many"}]));
        beta["apiVersion"] = json!("autoscaling/v2beta2");
        assert_health(beta, Healthy, "too many");
    }

    #[test]
    fn horizontal_pod_autoscaler_v1_reads_the_conditions_annotation() {
        let hpa = |annotations: Value| {
            json!({"apiVersion": "autoscaling/v1", "kind": "HorizontalPodAutoscaler",
            "metadata": {"name": "web", "annotations": annotations}, "status": {}})
        };
        assert_health(hpa(json!({})), Progressing, "Waiting to Autoscale");
        let key = "autoscaling.alpha.kubernetes.io/conditions";
        assert_health(hpa(json!({key: "[]"})), Progressing, "Waiting to Autoscale");
        let failing = r#"[{"type":"AbleToScale","status":"False","reason":"FailedGetScale","message":"no scale"}]"#;
        assert_health(hpa(json!({key: failing})), Degraded, "no scale");
        let fine = r#"[{"type":"AbleToScale","status":"True","reason":"SucceededRescale","message":"rescaled"}]"#;
        assert_health(hpa(json!({key: fine})), Healthy, "rescaled");
        let broken = health(hpa(json!({key: "[{"})));
        assert_eq!(broken.status, Unknown);
        assert!(
            broken
                .message
                .starts_with("failed to convert conditions annotation to typed: "),
            "{broken:?}"
        );
    }

    #[test]
    fn pod_disruption_budget_rules() {
        let pdb = |status: Value| json!({"apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "metadata": {"name": "web"}, "status": status});
        assert_health(pdb(json!({})), Progressing, "Waiting for status");
        assert_health(
            pdb(
                json!({"conditions": [{"type": "DisruptionAllowed", "status": "True", "reason": "SufficientPods"}]}),
            ),
            Healthy,
            "PodDisruptionBudget has SufficientPods",
        );
        assert_health(
            pdb(
                json!({"conditions": [{"type": "DisruptionAllowed", "status": "False", "reason": "InsufficientPods"}]}),
            ),
            Healthy,
            "PodDisruptionBudget has InsufficientPods",
        );
        assert_health(
            pdb(
                json!({"conditions": [{"type": "DisruptionAllowed", "status": "False", "reason": "SyncFailed"}]}),
            ),
            Degraded,
            "PodDisruptionBudget has SyncFailed",
        );
    }

    #[test]
    fn api_service_rules() {
        for api_version in [
            "apiregistration.k8s.io/v1",
            "apiregistration.k8s.io/v1beta1",
        ] {
            let api = |conditions: Value| {
                json!({"apiVersion": api_version, "kind": "APIService",
                "metadata": {"name": "v1beta1.metrics.k8s.io"}, "status": {"conditions": conditions}})
            };
            assert_health(api(json!([])), Progressing, "Waiting to be processed");
            assert_health(
                api(
                    json!([{"type": "Available", "status": "True", "reason": "Passed", "message": "all checks passed"}]),
                ),
                Healthy,
                "Passed: all checks passed",
            );
            assert_health(
                api(
                    json!([{"type": "Available", "status": "False", "reason": "MissingEndpoints", "message": "no endpoints"}]),
                ),
                Progressing,
                "MissingEndpoints: no endpoints",
            );
        }
    }

    #[test]
    fn custom_resource_definition_rules() {
        let crd = |status: Value| {
            json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
            "metadata": {"name": "widgets.example.com"}, "status": status})
        };
        let established = json!({"type": "Established", "status": "True", "reason": "InitialNamesAccepted", "message": "the initial names have been accepted"});
        let names = json!({"type": "NamesAccepted", "status": "True", "reason": "NoConflicts"});
        assert_health(crd(json!({})), Progressing, "Status conditions not found");
        assert_health(
            crd(json!({"conditions": []})),
            Progressing,
            "Status conditions not found",
        );
        assert_health(
            crd(json!({"conditions": [names, established]})),
            Healthy,
            "CRD is healthy",
        );
        assert_health(
            crd(
                json!({"conditions": [{"type": "Established", "status": "False", "reason": "Installing"}]}),
            ),
            Progressing,
            "CRD is being installed",
        );
        assert_health(
            crd(json!({"conditions": [names]})),
            Degraded,
            "CRD is not established",
        );
        assert_health(
            crd(
                json!({"conditions": [{"type": "NamesAccepted", "status": "False", "message": "\"widgets\" is already in use"}, established]}),
            ),
            Degraded,
            "CRD names have not been accepted: \"widgets\" is already in use",
        );
        assert_health(
            crd(
                json!({"conditions": [established, {"type": "NonStructuralSchema", "status": "True", "message": "spec.versions[0].schema.openAPIV3Schema: Required value"}]}),
            ),
            Degraded,
            "Schema violations found: spec.versions[0].schema.openAPIV3Schema: Required value",
        );
        assert_health(
            crd(
                json!({"conditions": [established, {"type": "Terminating", "status": "True", "message": "instances are being deleted"}]}),
            ),
            Progressing,
            "CRD is terminating: instances are being deleted",
        );
    }

    #[test]
    fn workflow_rules() {
        let wf = |status: Value| json!({"apiVersion": "argoproj.io/v1alpha1", "kind": "Workflow", "metadata": {"name": "w"}, "status": status});
        assert_health(wf(json!({})), Progressing, "");
        assert_health(wf(json!({"phase": "Running"})), Progressing, "");
        assert_health(wf(json!({"phase": "Succeeded"})), Healthy, "");
        assert_health(
            wf(json!({"phase": "Failed", "message": "child failed"})),
            Degraded,
            "child failed",
        );
        assert_health(wf(json!({"phase": "Error"})), Degraded, "");
        assert_health(wf(json!({"phase": "Odd"})), Unknown, "");
    }
}
