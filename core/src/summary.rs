//! An application's summary as Argo CD shows it (`status.summary`): the
//! container images its objects run, read from their pod templates.
//!
//! Not here: where the objects come from (the controller gives the
//! rendered ones, so the summary says what Git deploys).

use serde_json::Value;

/// The pod spec of an object that runs Pods: a Pod's own, a CronJob's
/// job template's, any other kind's `spec.template` (Deployment,
/// StatefulSet, DaemonSet, ReplicaSet, Job, ...).
fn pod_spec(object: &Value) -> Option<&Value> {
    match object.get("kind").and_then(Value::as_str) {
        Some("Pod") => object.get("spec"),
        Some("CronJob") => object.pointer("/spec/jobTemplate/spec/template/spec"),
        _ => object.pointer("/spec/template/spec"),
    }
}

/// Every container image of `objects`' pod templates (init and ephemeral
/// containers too), sorted, each once.
pub fn images<'a>(objects: impl IntoIterator<Item = &'a Value>) -> Vec<String> {
    let mut images: Vec<String> = objects
        .into_iter()
        .filter_map(pod_spec)
        .flat_map(|spec| {
            ["containers", "initContainers", "ephemeralContainers"]
                .into_iter()
                .filter_map(|field| spec.get(field).and_then(Value::as_array))
                .flatten()
        })
        .filter_map(|c| c.get("image").and_then(Value::as_str))
        .filter(|image| !image.is_empty())
        .map(str::to_string)
        .collect();
    images.sort();
    images.dedup();
    images
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn images_come_from_every_kind_of_pod_template() {
        let objects = [
            json!({"kind": "Deployment", "spec": {"template": {"spec": {
                "initContainers": [{"image": "busybox:1.36"}],
                "containers": [{"image": "nginx:1.27"}, {"image": "envoy:1.30"}]}}}}),
            json!({"kind": "CronJob", "spec": {"jobTemplate": {"spec": {"template": {"spec": {
                "containers": [{"image": "backup:2"}]}}}}}}),
            json!({"kind": "Pod", "spec": {"containers": [{"image": "nginx:1.27"}]}}),
            json!({"kind": "ConfigMap", "data": {"image": "not-an-image"}}),
        ];
        assert_eq!(
            images(&objects),
            ["backup:2", "busybox:1.36", "envoy:1.30", "nginx:1.27"]
        );
    }
}
