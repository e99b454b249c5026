//! Argo CD's `ApplicationSet` types with their field names. The template is
//! kept as JSON (every string of it may be a template); generators are typed.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::model::Condition;

/// The resources finalizer: deleting an Application that carries it deletes
/// its resources first (`/background` and `/foreground` variants too).
pub const RESOURCES_FINALIZER: &str = "resources-finalizer.argocd.argoproj.io";

/// An `ApplicationSet` object.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ApplicationSet {
    /// `apiVersion`.
    #[serde(default)]
    pub api_version: String,
    /// `kind`.
    #[serde(default)]
    pub kind: String,
    /// Name, namespace, uid, labels, annotations.
    #[serde(default)]
    pub metadata: k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
    /// What to generate.
    #[serde(default)]
    pub spec: ApplicationSetSpec,
    /// What Plumb reports.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<ApplicationSetStatus>,
}

/// `spec`.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ApplicationSetSpec {
    /// The generators; their parameter sets together make the applications.
    #[serde(default)]
    pub generators: Vec<Generator>,
    /// The Application template (`metadata` and `spec`), as JSON.
    #[serde(default)]
    pub template: Value,
    /// A template of a YAML mapping merged over each rendered Application.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template_patch: Option<String>,
    /// Go text/template instead of fasttemplate.
    #[serde(default)]
    pub go_template: bool,
    /// `missingkey=error` and the like.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub go_template_options: Vec<String>,
    /// What may be created, updated and deleted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sync_policy: Option<AppSetSyncPolicy>,
    /// How changes roll out (`RollingSync`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strategy: Option<Strategy>,
}

/// One generator. Exactly one kind is set; `other` holds kinds Plumb does
/// not support (`scmProvider`, `pullRequest`, `plugin`,
/// `clusterDecisionResource`, ...), reported, never ignored.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Generator {
    /// `list`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub list: Option<ListGenerator>,
    /// `clusters`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clusters: Option<ClustersGenerator>,
    /// `git`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub git: Option<GitGenerator>,
    /// `matrix`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub matrix: Option<MatrixGenerator>,
    /// `merge`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub merge: Option<MergeGenerator>,
    /// Keeps only the parameter sets it matches.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<LabelSelector>,
    /// Generator kinds Plumb does not support.
    #[serde(flatten)]
    pub other: BTreeMap<String, Value>,
}

/// `list`.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ListGenerator {
    /// The parameter sets, as objects.
    #[serde(default)]
    pub elements: Vec<Value>,
    /// The same as a YAML list in a string (may itself be a template of
    /// an outer matrix's parameters).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub elements_yaml: Option<String>,
    /// A template merged over the ApplicationSet's for these applications.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<Value>,
}

/// `clusters`.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ClustersGenerator {
    /// Which clusters (by their Secret's labels).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<LabelSelector>,
    /// Extra parameters, `values.<key>` (may use the cluster's parameters).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub values: BTreeMap<String, String>,
    /// A template merged over the ApplicationSet's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<Value>,
}

/// `git`.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct GitGenerator {
    /// The repository.
    #[serde(rename = "repoURL", default)]
    pub repo_url: String,
    /// Branch, tag or commit; `HEAD` when empty.
    #[serde(default)]
    pub revision: String,
    /// Folders: one parameter set per matching directory.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub directories: Vec<GitPathItem>,
    /// Files: one parameter set per object in each matching JSON/YAML file.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub files: Vec<GitPathItem>,
    /// Prefix of the path parameters (`<prefix>.path`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub path_param_prefix: String,
    /// Extra parameters, `values.<key>`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub values: BTreeMap<String, String>,
    /// Accepted; Plumb regenerates on every fetch of the repository.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requeue_after_seconds: Option<i64>,
    /// A template merged over the ApplicationSet's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<Value>,
}

/// One `directories` or `files` entry.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct GitPathItem {
    /// A glob.
    #[serde(default)]
    pub path: String,
    /// Matching paths are removed instead of added.
    #[serde(default)]
    pub exclude: bool,
}

/// `matrix`: every combination of its two generators' parameter sets.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct MatrixGenerator {
    /// Exactly two.
    #[serde(default)]
    pub generators: Vec<Generator>,
    /// A template merged over the ApplicationSet's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<Value>,
}

/// `merge`: the first generator's sets, overridden by the others' sets
/// that share the values of `mergeKeys`.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct MergeGenerator {
    /// Two or more.
    #[serde(default)]
    pub generators: Vec<Generator>,
    /// The parameters that identify a set.
    #[serde(default)]
    pub merge_keys: Vec<String>,
    /// A template merged over the ApplicationSet's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<Value>,
}

/// A Kubernetes label selector.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct LabelSelector {
    /// Every label must have this value.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub match_labels: BTreeMap<String, String>,
    /// Every expression must hold.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub match_expressions: Vec<LabelSelectorRequirement>,
}

/// One `matchExpressions` entry.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct LabelSelectorRequirement {
    /// The label.
    pub key: String,
    /// `In`, `NotIn`, `Exists`, `DoesNotExist`.
    pub operator: String,
    /// The values of `In` and `NotIn`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub values: Vec<String>,
}

/// `spec.syncPolicy`.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct AppSetSyncPolicy {
    /// Generated Applications get no resources finalizer, so deleting them
    /// leaves their resources.
    #[serde(default)]
    pub preserve_resources_on_deletion: bool,
    /// `create-only`, `create-update`, `create-delete` or `sync` (the
    /// default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub applications_sync: Option<String>,
}

/// `spec.strategy`.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Strategy {
    /// `AllAtOnce` (the default) or `RollingSync`.
    #[serde(rename = "type", default)]
    pub type_: String,
    /// The steps of a `RollingSync`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rolling_sync: Option<RollingSync>,
}

/// `spec.strategy.rollingSync`.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RollingSync {
    /// In order.
    #[serde(default)]
    pub steps: Vec<RollingSyncStep>,
}

/// One step: the applications it selects, and how many may change at once.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RollingSyncStep {
    /// Selects applications by label.
    #[serde(default)]
    pub match_expressions: Vec<LabelSelectorRequirement>,
    /// A number or a percentage (`"25%"`); all when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_update: Option<Value>,
}

/// `status`.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ApplicationSetStatus {
    /// `ErrorOccurred`, `ParametersGenerated`, `ResourcesUpToDate`,
    /// `RolloutProgressing`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<AppSetCondition>,
    /// Each generated application's progress under a RollingSync.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub application_status: Vec<AppSetApplicationStatus>,
    /// Each generated application with its sync and health.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub resources: Vec<AppSetResource>,
}

/// One condition, with Argo CD's `status` and `reason`.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct AppSetCondition {
    /// Its type.
    #[serde(rename = "type")]
    pub type_: String,
    /// `True` or `False`.
    pub status: String,
    /// Why, in one word.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub reason: String,
    /// What happened.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
    /// When it last changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_transition_time: Option<String>,
}

impl From<&AppSetCondition> for Condition {
    fn from(c: &AppSetCondition) -> Condition {
        Condition {
            type_: c.type_.clone(),
            message: c.message.clone(),
            last_transition_time: c.last_transition_time.clone(),
        }
    }
}

/// One application's progress under a RollingSync.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct AppSetApplicationStatus {
    /// The application's name.
    pub application: String,
    /// `Waiting`, `Pending`, `Progressing` or `Healthy`.
    pub status: String,
    /// The step (1-based, as text) that selects it.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub step: String,
    /// What it waits for.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
    /// The revisions it is moving to.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub target_revisions: Vec<String>,
    /// When `status` last changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_transition_time: Option<String>,
}

/// One generated application in `status.resources`.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct AppSetResource {
    /// `argoproj.io`.
    pub group: String,
    /// `v1alpha1`.
    pub version: String,
    /// `Application`.
    pub kind: String,
    /// Its namespace.
    pub namespace: String,
    /// Its name.
    pub name: String,
    /// Its sync status.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub status: String,
    /// Its health.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health: Option<crate::model::Health>,
}

/// The fields of an ApplicationSet's `spec` Plumb reads; generators are
/// checked by kind when generating.
const SUPPORTED_SPEC_FIELDS: &[&str] = &[
    "generators",
    "template",
    "templatePatch",
    "goTemplate",
    "goTemplateOptions",
    "syncPolicy",
    "syncPolicy.preserveResourcesOnDeletion",
    "syncPolicy.applicationsSync",
    "strategy",
    "strategy.type",
    "strategy.rollingSync",
    "strategy.rollingSync.steps",
];

/// Paths of the fields of an ApplicationSet's `spec` that Plumb does not
/// support (`preservedFields`, `ignoreApplicationDifferences`, ...). Each
/// could change what is generated or kept, so an ApplicationSet with any is
/// not applied at all.
pub fn unsupported_spec_fields(spec: &Value) -> Vec<String> {
    let mut out = Vec::new();
    let mut pending: Vec<(String, &Value)> = vec![(String::new(), spec)];
    while let Some((prefix, value)) = pending.pop() {
        let Value::Object(map) = value else { continue };
        for (key, child) in map {
            let path = if prefix.is_empty() {
                key.clone()
            } else {
                format!("{prefix}.{key}")
            };
            if !SUPPORTED_SPEC_FIELDS.contains(&path.as_str()) {
                out.push(format!("spec.{path}"));
            } else if matches!(path.as_str(), "syncPolicy" | "strategy") {
                pending.push((path, child));
            }
        }
    }
    out.sort();
    out
}

/// The `applicationsets.argoproj.io` CRD. `spec` and `status` keep every
/// field (`x-kubernetes-preserve-unknown-fields`): Plumb reads the spec
/// itself and reports what it does not support, rather than letting the API
/// server prune it silently.
pub fn applicationset_crd() -> Value {
    let open = serde_json::json!({"type": "object", "x-kubernetes-preserve-unknown-fields": true});
    serde_json::json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": "applicationsets.argoproj.io"},
        "spec": {
            "group": "argoproj.io",
            "names": {
                "kind": "ApplicationSet",
                "listKind": "ApplicationSetList",
                "plural": "applicationsets",
                "singular": "applicationset",
                "shortNames": ["appset", "appsets"]
            },
            "scope": "Namespaced",
            "versions": [{
                "name": "v1alpha1",
                "served": true,
                "storage": true,
                "subresources": {"status": {}},
                "schema": {"openAPIV3Schema": {
                    "type": "object",
                    "required": ["metadata", "spec"],
                    "properties": {
                        "apiVersion": {"type": "string"},
                        "kind": {"type": "string"},
                        "metadata": {"type": "object"},
                        "spec": open,
                        "status": open
                    }
                }}
            }]
        }
    })
}

/// [`applicationset_crd`] as YAML, as committed in `manifests/crds/`.
pub fn applicationset_crd_yaml() -> String {
    serde_yaml::to_string(&applicationset_crd()).expect("a CRD always serializes")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_spec_fields_are_reported_with_their_path() {
        let spec = serde_json::json!({
            "generators": [{"list": {"elements": []}}],
            "template": {"metadata": {"anything": 1}},
            "syncPolicy": {"applicationsSync": "sync", "preserveResourcesOnDeletion": true},
            "preservedFields": {"labels": ["a"]},
            "strategy": {"type": "RollingSync", "deletionOrder": "Reverse"},
        });
        assert_eq!(
            unsupported_spec_fields(&spec),
            ["spec.preservedFields", "spec.strategy.deletionOrder"]
        );
    }

    #[test]
    fn committed_applicationset_crd_is_current() {
        let committed = include_str!("../../../manifests/crds/applicationset.yaml");
        assert_eq!(
            committed,
            applicationset_crd_yaml(),
            "manifests/crds/applicationset.yaml is stale: run `cargo run -- crd applicationset > manifests/crds/applicationset.yaml`"
        );
    }
}
