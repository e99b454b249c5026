//! Comparison of a live object with what a server-side-apply dry run
//! predicts it would become: normalization, Secret masking and unified diffs.
//!
//! Pure: the dry run itself happens in plumb-engine's `cluster`; this module
//! only compares documents. Because the prediction comes from the API server,
//! defaulted fields appear on both sides and are never drift.

use std::collections::BTreeMap;

use serde_json::{Map, Value};
use similar::TextDiff;

/// The annotation kubectl's client-side apply leaves behind; never state.
const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";
/// Metadata written by the API server, never by a user.
const SERVER_METADATA: &[&str] = &[
    "managedFields",
    "resourceVersion",
    "uid",
    "generation",
    "creationTimestamp",
    "selfLink",
];

/// The outcome of comparing one object.
#[derive(Clone, Debug, PartialEq)]
pub struct Comparison {
    /// True when the live object would change (or is missing).
    pub modified: bool,
    /// Normalized live object, Secret values masked; `Null` when missing.
    pub normalized_live: Value,
    /// Normalized predicted object, Secret values masked.
    pub predicted: Value,
    /// Unified YAML diff of `normalized_live` against `predicted`.
    pub diff: String,
}

/// Removes what the API server writes and users never own: `status`, server
/// metadata and kubectl's last-applied annotation.
pub fn normalize(object: &Value) -> Value {
    let mut out = object.clone();
    let Value::Object(map) = &mut out else {
        return out;
    };
    map.remove("status");
    if let Some(Value::Object(meta)) = map.get_mut("metadata") {
        for field in SERVER_METADATA {
            meta.remove(*field);
        }
        if let Some(Value::Object(annotations)) = meta.get_mut("annotations") {
            annotations.remove(LAST_APPLIED);
            if annotations.is_empty() {
                meta.remove("annotations");
            }
        }
    }
    out
}

/// A 64-bit fingerprint of an object's normalized form: equal for objects
/// [`compare`] finds equal (map keys in any order), so a live object can be
/// remembered by its fingerprint alone and compared with a prediction
/// without keeping its text.
pub fn fingerprint(object: &Value) -> u64 {
    use std::hash::{Hash, Hasher};
    fn feed(value: &Value, h: &mut std::collections::hash_map::DefaultHasher) {
        match value {
            Value::Null => 0u8.hash(h),
            Value::Bool(b) => (1u8, b).hash(h),
            Value::Number(n) => (2u8, n.to_string()).hash(h),
            Value::String(s) => (3u8, s).hash(h),
            Value::Array(items) => {
                (4u8, items.len()).hash(h);
                for item in items {
                    feed(item, h);
                }
            }
            Value::Object(map) => {
                (5u8, map.len()).hash(h);
                let mut entries: Vec<(&String, &Value)> = map.iter().collect();
                entries.sort_by(|a, b| a.0.cmp(b.0));
                for (key, item) in entries {
                    key.hash(h);
                    feed(item, h);
                }
            }
        }
    }
    let mut h = std::collections::hash_map::DefaultHasher::new();
    feed(&normalize(object), &mut h);
    h.finish()
}

fn is_secret(object: &Value) -> bool {
    object.get("kind").and_then(Value::as_str) == Some("Secret")
        && object.get("apiVersion").and_then(Value::as_str) == Some("v1")
}

/// Replaces the values of Secrets' `data` and `stringData` by runs of `+`.
/// Equal values get equal masks and different values different ones, across
/// all the given objects, so a diff still shows which keys changed without
/// showing any value.
pub fn mask_secrets(objects: &mut [&mut Value]) {
    let mut masks: BTreeMap<String, String> = BTreeMap::new();
    for object in objects.iter() {
        if !is_secret(object) {
            continue;
        }
        for field in ["data", "stringData"] {
            if let Some(Value::Object(values)) = object.get(field) {
                for value in values.values() {
                    let n = masks.len();
                    masks
                        .entry(secret_text(value))
                        .or_insert_with(|| "+".repeat(8 + n));
                }
            }
        }
    }
    for object in objects.iter_mut() {
        if !is_secret(object) {
            continue;
        }
        for field in ["data", "stringData"] {
            if let Some(Value::Object(values)) = object.get_mut(field) {
                for value in values.values_mut() {
                    let mask = masks.get(&secret_text(value)).cloned().unwrap_or_default();
                    *value = Value::String(mask);
                }
            }
        }
    }
}

/// Secret values are strings; anything else is compared by its JSON text.
fn secret_text(value: &Value) -> String {
    value
        .as_str()
        .map_or_else(|| value.to_string(), str::to_string)
}

/// A copy of an object with Secret values masked, for documents shown on
/// their own (target and live states in the API).
pub fn masked(object: &Value) -> Value {
    let mut out = object.clone();
    mask_secrets(&mut [&mut out]);
    out
}

/// Compares a live object (or its absence) with the predicted one.
pub fn compare(live: Option<&Value>, predicted: &Value) -> Comparison {
    let mut normalized_live = live.map(normalize).unwrap_or(Value::Null);
    let mut predicted = normalize(predicted);
    let modified = normalized_live != predicted;
    mask_secrets(&mut [&mut normalized_live, &mut predicted]);
    let diff = if modified {
        unified_diff(&normalized_live, &predicted)
    } else {
        String::new()
    };
    Comparison {
        modified,
        normalized_live,
        predicted,
        diff,
    }
}

/// YAML text of an object for humans; `""` for `Null`.
pub fn to_yaml(object: &Value) -> String {
    if object.is_null() {
        return String::new();
    }
    serde_yaml::to_string(&sorted(object))
        .unwrap_or_else(|e| format!("# not representable as YAML: {e}\n"))
}

/// A copy with object keys sorted, so that diffs do not depend on the order
/// in which the API server or Git wrote fields.
fn sorted(value: &Value) -> Value {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            let mut out = Map::new();
            for k in keys {
                out.insert(k.clone(), sorted(&map[k]));
            }
            Value::Object(out)
        }
        Value::Array(items) => Value::Array(items.iter().map(sorted).collect()),
        other => other.clone(),
    }
}

/// A unified diff of two objects' YAML.
pub fn unified_diff(live: &Value, predicted: &Value) -> String {
    let (a, b) = (to_yaml(live), to_yaml(predicted));
    TextDiff::from_lines(&a, &b)
        .unified_diff()
        .context_radius(3)
        .header("live", "desired")
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn server_written_fields_are_not_drift() {
        let live = json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "c", "uid": "1", "resourceVersion": "9", "managedFields": [],
                "creationTimestamp": "t", "annotations": {LAST_APPLIED: "{}"}},
            "data": {"a": "1"}});
        let predicted = json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "c", "uid": "1", "resourceVersion": "10", "managedFields": [{}]},
            "data": {"a": "1"}});
        let c = compare(Some(&live), &predicted);
        assert!(!c.modified, "{}", c.diff);
        assert!(c.diff.is_empty());
    }

    #[test]
    fn changed_field_shows_in_a_unified_diff() {
        let live = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"},
            "spec": {"replicas": 3}, "status": {"replicas": 3}});
        let predicted = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"},
            "spec": {"replicas": 1}});
        let c = compare(Some(&live), &predicted);
        assert!(c.modified);
        insta::assert_snapshot!(c.diff);
    }

    #[test]
    fn secret_values_never_appear_in_a_diff() {
        let live = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"},
            "data": {"password": "b2xkLXNlY3JldA==", "user": "YWRtaW4="}});
        let predicted = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"},
            "data": {"password": "bmV3LXNlY3JldA==", "user": "YWRtaW4="}, "stringData": {"token": "hunter2"}});
        let c = compare(Some(&live), &predicted);
        assert!(c.modified);
        for secret in [
            "b2xkLXNlY3JldA==",
            "bmV3LXNlY3JldA==",
            "YWRtaW4=",
            "hunter2",
        ] {
            assert!(!c.diff.contains(secret), "{secret} leaked: {}", c.diff);
            assert!(!c.predicted.to_string().contains(secret));
            assert!(!c.normalized_live.to_string().contains(secret));
        }
        // The changed key shows as changed, the unchanged one does not.
        assert!(
            c.diff
                .lines()
                .any(|l| l.starts_with('-') && l.contains("password")),
            "{}",
            c.diff
        );
        assert!(
            !c.diff
                .lines()
                .any(|l| l.starts_with('-') && l.contains("user")),
            "{}",
            c.diff
        );
    }

    #[test]
    fn a_missing_object_is_modified_and_diffs_against_nothing() {
        let predicted = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}});
        let c = compare(None, &predicted);
        assert!(c.modified);
        assert!(c.diff.contains("+kind: ConfigMap"), "{}", c.diff);
    }

    #[test]
    fn fingerprints_agree_with_compare() {
        let live = json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "c", "resourceVersion": "5", "uid": "u", "managedFields": []},
            "data": {"a": "1", "b": "2"}});
        let same_other_order = json!({"kind": "ConfigMap", "apiVersion": "v1",
            "data": {"b": "2", "a": "1"}, "metadata": {"name": "c", "resourceVersion": "6"}});
        let changed = json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "c"}, "data": {"a": "1", "b": "3"}});
        let number = json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "c"}, "data": {"a": 1, "b": "2"}});
        for other in [&same_other_order, &changed, &number] {
            assert_eq!(
                fingerprint(&live) == fingerprint(other),
                !compare(Some(&live), other).modified,
                "{other}"
            );
        }
        assert_eq!(fingerprint(&live), fingerprint(&same_other_order));
    }
}
