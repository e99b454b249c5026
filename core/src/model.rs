//! The data Plumb reasons about: Argo CD's `Application` with its field names,
//! rendered manifests, resource keys and the status Plumb reports.
//!
//! This module holds types and their small helpers only; no I/O, no rules.

use std::collections::BTreeMap;
use std::fmt;

use kube_derive::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Argo CD's compare options of an object (`IgnoreExtraneous`).
pub const COMPARE_OPTIONS_ANNOTATION: &str = "argocd.argoproj.io/compare-options";

/// Argo CD's tracking annotation: `<app>:<group>/<Kind>:<namespace>/<name>`.
pub const TRACKING_ANNOTATION: &str = "argocd.argoproj.io/tracking-id";
/// Per-resource sync options (`Prune=false`, `Delete=false`, ...).
pub const SYNC_OPTIONS_ANNOTATION: &str = "argocd.argoproj.io/sync-options";
/// Asks for a refresh of an application (`normal` or `hard`).
pub const REFRESH_ANNOTATION: &str = "argocd.argoproj.io/refresh";
/// The destination server meaning "the cluster Plumb runs against".
pub const IN_CLUSTER_SERVER: &str = "https://kubernetes.default.svc";
/// The destination name meaning "the cluster Plumb runs against".
pub const IN_CLUSTER_NAME: &str = "in-cluster";
/// The label Plumb sets on every object it applies (value
/// [`MANAGED_LABEL_VALUE`]), so that it can watch only those: objects of the
/// same kinds that Plumb does not manage are never sent to it.
pub const MANAGED_LABEL: &str = "plumb.dev/managed";
/// The value of [`MANAGED_LABEL`].
pub const MANAGED_LABEL_VALUE: &str = "true";
/// The field manager of every server-side apply Plumb makes.
pub const FIELD_MANAGER: &str = "plumb";

/// Argo CD's `Application` (argoproj.io/v1alpha1), the fields Plumb supports.
///
/// Fields Plumb does not know are kept by the CRD
/// (`x-kubernetes-preserve-unknown-fields`) and reported by
/// [`unsupported_fields`] as a warning condition.
#[derive(CustomResource, Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "argoproj.io",
    version = "v1alpha1",
    kind = "Application",
    plural = "applications",
    shortname = "app",
    shortname = "apps",
    namespaced,
    status = "ApplicationStatus",
    printcolumn = r#"{"name":"Sync Status","type":"string","jsonPath":".status.sync.status"}"#,
    printcolumn = r#"{"name":"Health Status","type":"string","jsonPath":".status.health.status"}"#,
    printcolumn = r#"{"name":"Revision","type":"string","jsonPath":".status.sync.revision","priority":10}"#,
    // The generated code names `::kube::core` by default; this crate has
    // kube-core without the `kube` client crate.
    crates(
        kube_core = "::kube_core",
        k8s_openapi = "::k8s_openapi",
        schemars = "::schemars",
        serde = "::serde",
        serde_json = "::serde_json"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct ApplicationSpec {
    /// Where the manifests come from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<ApplicationSource>,
    /// Several sources, rendered together (Argo CD's multi-source
    /// applications); when set, `source` is ignored.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sources: Vec<ApplicationSource>,
    /// Where they go.
    #[serde(default)]
    pub destination: ApplicationDestination,
    /// Argo CD's project; accepted, only `default` has a meaning today.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub project: String,
    /// When and how to sync.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sync_policy: Option<SyncPolicy>,
    /// How many history entries to keep (Argo CD's default: 10).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision_history_limit: Option<i64>,
    /// Fields left out of the comparison, per kind of object (see
    /// [`crate::ignore`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ignore_differences: Vec<ResourceIgnoreDifferences>,
}

/// One entry of `spec.ignoreDifferences` (Argo CD's
/// `ResourceIgnoreDifferences`), or a server-wide rule of `argocd-cm`
/// (`resource.customizations.ignoreDifferences.<group_kind>`), whose group
/// and kind come from its key.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, Eq, Hash, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ResourceIgnoreDifferences {
    /// API group without the version (`apps`; empty for the core group);
    /// a glob (`*`) matches several.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub group: String,
    /// Kind (`Deployment`); a glob (`*`) matches several.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub kind: String,
    /// Only the object of this name; every name when empty.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// Only objects in this namespace; every namespace when empty.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub namespace: String,
    /// RFC 6901 JSON Pointers of fields to ignore (`/spec/replicas`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub json_pointers: Vec<String>,
    /// jq path expressions of fields to ignore
    /// (`.spec.template.spec.containers[] | select(.name == "sidecar")`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub jq_path_expressions: Vec<String>,
    /// Field managers whose fields (in the live object's
    /// `metadata.managedFields`) are ignored.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub managed_fields_managers: Vec<String>,
}

/// `spec.source`.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ApplicationSource {
    /// Git URL, `file://` URL or local path.
    #[serde(rename = "repoURL", default)]
    pub repo_url: String,
    /// Branch, tag, commit SHA (full or short) or `HEAD` (the default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_revision: Option<String>,
    /// Folder inside the repository; the root when empty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// Options of a plain directory of manifests (and its Jsonnet files).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub directory: Option<DirectorySource>,
    /// Options of a Helm chart.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub helm: Option<HelmSource>,
    /// Options of a Kustomize folder.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kustomize: Option<KustomizeSource>,
    /// A chart in a Helm repository (`repoURL` is then the chart
    /// repository, `targetRevision` the chart version).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chart: Option<String>,
    /// In `spec.sources`: the name other sources use as `$<ref>/...` to
    /// read value files from this one's repository.
    #[serde(rename = "ref", default, skip_serializing_if = "Option::is_none")]
    pub ref_: Option<String>,
    /// In `spec.sources`: a name for the source (shown, not interpreted).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

impl ApplicationSource {
    /// The chart of a source that is a chart in a chart repository (or an
    /// OCI registry), rather than a folder of a git repository; `None` for
    /// an unset or empty `chart`.
    pub fn chart_name(&self) -> Option<&str> {
        self.chart.as_deref().filter(|c| !c.is_empty())
    }
}

/// `spec.source.helm`.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HelmSource {
    /// Release name; the application's name when empty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub release_name: Option<String>,
    /// Value files, relative to the chart (or `$<ref>/path` from another source).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub value_files: Vec<String>,
    /// Values as a YAML string (after the value files).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub values: Option<String>,
    /// Values as an object; wins over `values`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "any_object")]
    pub values_object: Option<Value>,
    /// `--set` (or `--set-string`) parameters, last.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub parameters: Vec<HelmParameter>,
    /// `--set-file` parameters: a value read from a file of the repository.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub file_parameters: Vec<HelmFileParameter>,
    /// A missing value file is skipped instead of an error.
    #[serde(default)]
    pub ignore_missing_value_files: bool,
    /// Leave the chart's `crds/` out.
    #[serde(default)]
    pub skip_crds: bool,
    /// Leave the chart's tests out.
    #[serde(default)]
    pub skip_tests: bool,
    /// Skip the chart's values schema validation.
    #[serde(default)]
    pub skip_schema_validation: bool,
    /// The release namespace; the destination's when empty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// The Kubernetes version templates see; the cluster's when empty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kube_version: Option<String>,
    /// The API versions templates see; the cluster's when empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub api_versions: Vec<String>,
    /// Helm major version (`v3`); accepted, Plumb runs the helm it has.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// Pass repository credentials to every domain; accepted, no effect.
    #[serde(default)]
    pub pass_credentials: bool,
}

fn any_object(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({"type": "object", "x-kubernetes-preserve-unknown-fields": true})
}

/// `spec.source.helm.parameters[]`.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HelmParameter {
    /// Dotted path of the value.
    #[serde(default)]
    pub name: String,
    /// The value, parsed as Helm's `--set` does.
    #[serde(default)]
    pub value: String,
    /// Keep the value a string (`--set-string`).
    #[serde(default)]
    pub force_string: bool,
}

/// `spec.source.helm.fileParameters[]`.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HelmFileParameter {
    /// Dotted path of the value.
    #[serde(default)]
    pub name: String,
    /// File of the repository, relative to the chart.
    #[serde(default)]
    pub path: String,
}

/// `spec.source.kustomize`.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct KustomizeSource {
    /// Prefix for every object's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name_prefix: Option<String>,
    /// Suffix for every object's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name_suffix: Option<String>,
    /// Namespace for every namespaced object.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Image overrides: `name=newName:tag`, `name:tag`, `name@digest`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub images: Vec<String>,
    /// Labels added to every object (and selectors).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub common_labels: BTreeMap<String, String>,
    /// Annotations added to every object.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub common_annotations: BTreeMap<String, String>,
    /// Overwrite labels the kustomization already sets.
    #[serde(default)]
    pub force_common_labels: bool,
    /// Overwrite annotations the kustomization already sets.
    #[serde(default)]
    pub force_common_annotations: bool,
    /// Add `commonLabels` to objects but not to selectors.
    #[serde(default)]
    pub label_without_selector: bool,
    /// Replica counts by object name.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub replicas: Vec<KustomizeReplica>,
    /// Patches, inline or from a file of the repository.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub patches: Vec<KustomizePatch>,
    /// Components, relative to the path.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub components: Vec<String>,
    /// Skip a component that does not exist instead of failing.
    #[serde(default)]
    pub ignore_missing_components: bool,
    /// Kustomize version; accepted, Plumb runs the kustomize it has.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
}

/// `spec.source.kustomize.replicas[]`.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct KustomizeReplica {
    /// Name of the Deployment, StatefulSet, ...
    #[serde(default)]
    pub name: String,
    /// The count, a number or a string holding one.
    #[serde(default)]
    #[schemars(schema_with = "int_or_string")]
    pub count: Value,
}

fn int_or_string(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({"x-kubernetes-int-or-string": true})
}

/// `spec.source.kustomize.patches[]`, Kustomize's own patch fields.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct KustomizePatch {
    /// A file holding the patch, relative to the path.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// The patch itself (strategic merge or JSON 6902, YAML or JSON).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub patch: Option<String>,
    /// Which objects it applies to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "any_object")]
    pub target: Option<Value>,
    /// `allowNameChange`, `allowKindChange`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "any_object")]
    pub options: Option<Value>,
}

/// `spec.source.directory`.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DirectorySource {
    /// Descend into sub-folders.
    #[serde(default)]
    pub recurse: bool,
    /// Glob (or `{a,b}` list of globs) of files to read, relative to the path.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub include: Option<String>,
    /// Glob (or `{a,b}` list of globs) of files to skip.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exclude: Option<String>,
    /// How the folder's `.jsonnet` files are evaluated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jsonnet: Option<JsonnetSource>,
}

/// `spec.source.directory.jsonnet`.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct JsonnetSource {
    /// External variables (`std.extVar`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ext_vars: Vec<JsonnetVar>,
    /// Top-level arguments of each file's function.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tlas: Vec<JsonnetVar>,
    /// Library folders searched by `import`, relative to the repository root.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub libs: Vec<String>,
}

/// A Jsonnet external variable or top-level argument.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct JsonnetVar {
    /// Its name.
    #[serde(default)]
    pub name: String,
    /// Its value: a string, or Jsonnet code when `code` is set.
    #[serde(default)]
    pub value: String,
    /// `value` is Jsonnet code rather than a string.
    #[serde(default)]
    pub code: bool,
}

/// `spec.destination`.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ApplicationDestination {
    /// API server URL; `https://kubernetes.default.svc` is Plumb's own cluster.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server: Option<String>,
    /// Cluster name; `in-cluster` is Plumb's own cluster.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Namespace for namespaced objects that name none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
}

/// `spec.syncPolicy`.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SyncPolicy {
    /// Sync by itself when Git or the cluster changes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub automated: Option<Automated>,
    /// `CreateNamespace=true`, `PruneLast=true`, `ApplyOutOfSyncOnly=true`, ...
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sync_options: Vec<String>,
    /// Retry a failed sync operation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry: Option<RetryStrategy>,
}

/// `spec.syncPolicy.retry` (and a sync request's `retryStrategy`).
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RetryStrategy {
    /// Retries after the first attempt; negative: no limit.
    #[serde(default)]
    pub limit: i64,
    /// The waits between attempts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backoff: Option<Backoff>,
}

/// `spec.syncPolicy.retry.backoff`.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Backoff {
    /// The first wait, a Go duration (`5s`, `1m30s`); 5 s by default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration: Option<String>,
    /// Each wait is the one before times this; 2 by default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub factor: Option<i64>,
    /// The longest wait, a Go duration; 3 minutes by default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_duration: Option<String>,
}

/// `spec.syncPolicy.automated`.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Automated {
    /// Delete tracked objects that are no longer in Git.
    #[serde(default)]
    pub prune: bool,
    /// Undo changes made in the cluster.
    #[serde(default)]
    pub self_heal: bool,
    /// Allow a sync (and prune) when the render is empty.
    #[serde(default)]
    pub allow_empty: bool,
}

impl ApplicationSpec {
    /// Whether `spec.syncPolicy.syncOptions` holds `name=true`.
    pub fn sync_option(&self, name: &str) -> bool {
        self.sync_policy
            .as_ref()
            .is_some_and(|p| has_option(p.sync_options.iter().map(String::as_str), name, "true"))
    }

    /// The sources to render: `spec.sources` when set, else `spec.source`.
    pub fn all_sources(&self) -> Vec<&ApplicationSource> {
        if self.sources.is_empty() {
            self.source.iter().collect()
        } else {
            self.sources.iter().collect()
        }
    }

    /// Whether the application uses `spec.sources` (Argo CD's multi-source
    /// shape in its status and history).
    pub fn is_multi_source(&self) -> bool {
        !self.sources.is_empty()
    }

    /// The automated policy, if any.
    pub fn automated(&self) -> Option<&Automated> {
        self.sync_policy.as_ref().and_then(|p| p.automated.as_ref())
    }

    /// History entries to keep.
    pub fn history_limit(&self) -> usize {
        self.revision_history_limit
            .map_or(10, |n| usize::try_from(n.max(1)).unwrap_or(10))
    }
}

/// Whether a list of `Key=Value` options holds `key=value` (case-insensitive).
pub fn has_option<'a>(options: impl IntoIterator<Item = &'a str>, key: &str, value: &str) -> bool {
    options.into_iter().any(|o| {
        o.split_once('=').is_some_and(|(k, v)| {
            k.trim().eq_ignore_ascii_case(key) && v.trim().eq_ignore_ascii_case(value)
        })
    })
}

/// The known paths of an Application manifest; anything else is unsupported.
/// Items of `spec.sources` are checked as `spec.source`.
const SUPPORTED_FIELDS: &[&str] = &[
    "apiVersion",
    "kind",
    "metadata",
    "status",
    "operation",
    "spec",
    "spec.source",
    "spec.sources",
    "spec.source.repoURL",
    "spec.source.targetRevision",
    "spec.source.path",
    "spec.source.chart",
    "spec.source.ref",
    "spec.source.name",
    "spec.source.directory",
    "spec.source.directory.recurse",
    "spec.source.directory.include",
    "spec.source.directory.exclude",
    "spec.source.directory.jsonnet",
    "spec.source.directory.jsonnet.extVars",
    "spec.source.directory.jsonnet.tlas",
    "spec.source.directory.jsonnet.libs",
    "spec.source.helm",
    "spec.source.helm.releaseName",
    "spec.source.helm.valueFiles",
    "spec.source.helm.values",
    "spec.source.helm.valuesObject",
    "spec.source.helm.parameters",
    "spec.source.helm.fileParameters",
    "spec.source.helm.ignoreMissingValueFiles",
    "spec.source.helm.skipCrds",
    "spec.source.helm.skipTests",
    "spec.source.helm.skipSchemaValidation",
    "spec.source.helm.namespace",
    "spec.source.helm.kubeVersion",
    "spec.source.helm.apiVersions",
    "spec.source.helm.version",
    "spec.source.helm.passCredentials",
    "spec.source.kustomize",
    "spec.source.kustomize.namePrefix",
    "spec.source.kustomize.nameSuffix",
    "spec.source.kustomize.namespace",
    "spec.source.kustomize.images",
    "spec.source.kustomize.commonLabels",
    "spec.source.kustomize.commonAnnotations",
    "spec.source.kustomize.forceCommonLabels",
    "spec.source.kustomize.forceCommonAnnotations",
    "spec.source.kustomize.labelWithoutSelector",
    "spec.source.kustomize.replicas",
    "spec.source.kustomize.patches",
    "spec.source.kustomize.components",
    "spec.source.kustomize.ignoreMissingComponents",
    "spec.source.kustomize.version",
    "spec.destination",
    "spec.destination.server",
    "spec.destination.name",
    "spec.destination.namespace",
    "spec.project",
    "spec.syncPolicy",
    "spec.syncPolicy.automated",
    "spec.syncPolicy.automated.prune",
    "spec.syncPolicy.automated.selfHeal",
    "spec.syncPolicy.automated.allowEmpty",
    "spec.syncPolicy.syncOptions",
    "spec.syncPolicy.retry",
    "spec.syncPolicy.retry.limit",
    "spec.syncPolicy.retry.backoff",
    "spec.syncPolicy.retry.backoff.duration",
    "spec.syncPolicy.retry.backoff.factor",
    "spec.syncPolicy.retry.backoff.maxDuration",
    "spec.revisionHistoryLimit",
    "spec.ignoreDifferences",
];

/// Known fields whose values are free-form maps: their keys are not fields.
const FREE_FORM_FIELDS: &[&str] = &[
    "metadata",
    "status",
    "operation",
    "spec.source.helm.valuesObject",
    "spec.source.kustomize.commonLabels",
    "spec.source.kustomize.commonAnnotations",
];

/// Paths of fields in an Application manifest that Plumb does not support
/// yet, in document order (`spec.source.plugin`, `spec.syncPolicy.retry`,
/// ...). Values under `metadata`, `status` and `operation` are never
/// reported; an unknown field of `spec.sources[1]` is reported as
/// `spec.sources[1].<field>`.
pub fn unsupported_fields(manifest: &Value) -> Vec<String> {
    /// `shown` is the path as reported, `known` as looked up.
    fn walk(shown: &str, known: &str, value: &Value, out: &mut Vec<String>) {
        let Value::Object(map) = value else { return };
        for (key, child) in map {
            let join = |prefix: &str| {
                if prefix.is_empty() {
                    key.clone()
                } else {
                    format!("{prefix}.{key}")
                }
            };
            let (shown, known) = (join(shown), join(known));
            if !SUPPORTED_FIELDS.contains(&known.as_str()) {
                out.push(shown);
            } else if known == "spec.sources" {
                for (i, item) in child.as_array().into_iter().flatten().enumerate() {
                    walk(&format!("{shown}[{i}]"), "spec.source", item, out);
                }
            } else if !FREE_FORM_FIELDS.contains(&known.as_str()) {
                walk(&shown, &known, child, out);
            }
        }
    }
    let mut out = Vec::new();
    walk("", "", manifest, &mut out);
    out
}

/// The `applications.argoproj.io` CRD, generated from [`Application`].
///
/// `spec` and `status` keep unknown fields
/// (`x-kubernetes-preserve-unknown-fields`), so that fields Plumb does not
/// support survive in the cluster and can be reported instead of being
/// silently pruned by the API server.
pub fn application_crd() -> Value {
    use kube_core::CustomResourceExt;
    /// schemars writes `default: null` for `#[serde(default)]` fields, which
    /// API servers reject in a structural schema; defaults are Plumb's own
    /// business (serde applies them), so the CRD carries none.
    fn strip_defaults(value: &mut Value) {
        match value {
            Value::Object(map) => {
                map.remove("default");
                map.values_mut().for_each(strip_defaults);
            }
            Value::Array(items) => items.iter_mut().for_each(strip_defaults),
            _ => {}
        }
    }
    let mut crd = serde_json::to_value(Application::crd()).expect("a CRD always serializes");
    strip_defaults(&mut crd);
    if let Some(Value::Array(versions)) = crd.pointer_mut("/spec/versions") {
        for version in versions {
            for field in ["spec", "status"] {
                let pointer = format!("/schema/openAPIV3Schema/properties/{field}");
                if let Some(Value::Object(schema)) = version.pointer_mut(&pointer) {
                    schema.insert(
                        "x-kubernetes-preserve-unknown-fields".into(),
                        Value::Bool(true),
                    );
                }
            }
            // Argo CD's top-level `operation`: setting it starts a sync
            // (read raw by the registry; the API server must keep it).
            if let Some(Value::Object(properties)) =
                version.pointer_mut("/schema/openAPIV3Schema/properties")
            {
                properties.insert(
                    "operation".into(),
                    serde_json::json!({
                        "description": "A sync to start (Argo CD's operation field); Plumb clears it once the sync has started.",
                        "type": "object",
                        "x-kubernetes-preserve-unknown-fields": true
                    }),
                );
            }
        }
    }
    crd
}

/// [`application_crd`] as YAML, as committed in `manifests/crds/`.
pub fn application_crd_yaml() -> String {
    serde_yaml::to_string(&application_crd()).expect("a CRD always serializes")
}

/// The identity of a Kubernetes object: group, kind, namespace, name.
/// Orders as Argo CD sorts resources in its UI and API.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ResourceKey {
    /// API group; empty for the core group.
    pub group: String,
    /// Kind, e.g. `Deployment`.
    pub kind: String,
    /// Namespace; empty for cluster-scoped objects.
    pub namespace: String,
    /// Name.
    pub name: String,
}

impl ResourceKey {
    /// The key of a Kubernetes object given as JSON, if it has kind and name.
    pub fn of(object: &Value) -> Option<ResourceKey> {
        let api_version = object.get("apiVersion")?.as_str()?;
        let kind = object.get("kind")?.as_str()?;
        let meta = object.get("metadata")?;
        let name = meta.get("name")?.as_str()?;
        let namespace = meta.get("namespace").and_then(Value::as_str).unwrap_or("");
        Some(ResourceKey {
            group: group_of(api_version).to_string(),
            kind: kind.to_string(),
            namespace: namespace.to_string(),
            name: name.to_string(),
        })
    }

    /// Argo CD's tracking id of this object for application `app` (an
    /// application in another namespace, `NAMESPACE/NAME`, is written by
    /// its instance name `NAMESPACE_NAME`: [`crate::appns::instance_name`]).
    pub fn tracking_id(&self, app: &str) -> String {
        format!(
            "{}:{}/{}:{}/{}",
            crate::appns::instance_name(app),
            self.group,
            self.kind,
            self.namespace,
            self.name
        )
    }
}

impl fmt::Display for ResourceKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let group = if self.group.is_empty() {
            String::new()
        } else {
            format!(".{}", self.group)
        };
        if self.namespace.is_empty() {
            write!(f, "{}{group}/{}", self.kind, self.name)
        } else {
            write!(f, "{}{group} {}/{}", self.kind, self.namespace, self.name)
        }
    }
}

/// The API group of an `apiVersion` (`apps/v1` -> `apps`, `v1` -> ``).
pub fn group_of(api_version: &str) -> &str {
    api_version.rsplit_once('/').map_or("", |(g, _)| g)
}

/// The version of an `apiVersion` (`apps/v1` → `v1`, `v1` → `v1`).
pub fn version_of(api_version: &str) -> &str {
    api_version.rsplit_once('/').map_or(api_version, |(_, v)| v)
}

/// The application a tracking id names, if it is well formed
/// (`NAMESPACE_NAME` stands for the application `NAMESPACE/NAME`).
pub fn tracking_app(tracking_id: &str) -> Option<std::borrow::Cow<'_, str>> {
    let (app, rest) = tracking_id.split_once(':')?;
    rest.contains('/')
        .then(|| crate::appns::app_of_instance(app))
}

/// The application an object belongs to: it carries Plumb's label, and its
/// tracking annotation names the object itself, so a copied annotation does
/// not make it ours. Only such objects are ever compared, listed or pruned
/// for that application.
pub fn owner(object: &Value) -> Option<(String, ResourceKey)> {
    let label = object
        .pointer("/metadata/labels")
        .and_then(|labels| labels.get(MANAGED_LABEL))
        .and_then(Value::as_str);
    if label != Some(MANAGED_LABEL_VALUE) {
        return None;
    }
    let id = annotation(object, TRACKING_ANNOTATION)?;
    let app = tracking_app(id)?;
    let key = ResourceKey::of(object)?;
    (key.tracking_id(&app) == id).then(|| (app.into_owned(), key))
}

/// One object of an application's desired state, as rendered from Git.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// The object, as JSON.
    pub object: Value,
    /// Where it came from: `path/in/repo.yaml#<document index>`.
    pub origin: String,
}

impl Manifest {
    /// `apiVersion` of the object (validated by render).
    pub fn api_version(&self) -> &str {
        self.object
            .get("apiVersion")
            .and_then(Value::as_str)
            .unwrap_or_default()
    }

    /// `kind` of the object (validated by render).
    pub fn kind(&self) -> &str {
        self.object
            .get("kind")
            .and_then(Value::as_str)
            .unwrap_or_default()
    }

    /// `metadata.name` of the object (validated by render).
    pub fn name(&self) -> &str {
        self.object
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or_default()
    }

    /// `metadata.namespace`, if set.
    pub fn namespace(&self) -> Option<&str> {
        self.object
            .pointer("/metadata/namespace")
            .and_then(Value::as_str)
    }

    /// An annotation's value.
    pub fn annotation(&self, key: &str) -> Option<&str> {
        annotation(&self.object, key)
    }
}

/// One file read from a source tree, with its path relative to the
/// application's `path`, `/`-separated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SourceFile {
    /// Path relative to the application folder (`base/web.yaml`).
    pub path: String,
    /// Contents.
    pub data: Vec<u8>,
}

/// An annotation of a Kubernetes object given as JSON.
pub fn annotation<'a>(object: &'a Value, key: &str) -> Option<&'a str> {
    object
        .get("metadata")?
        .get("annotations")?
        .get(key)?
        .as_str()
}

/// `status.sync.status`.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum SyncStatusCode {
    /// Not compared yet, or the comparison failed.
    #[default]
    Unknown,
    /// Live state equals the desired state.
    Synced,
    /// Live state differs from the desired state.
    OutOfSync,
}

/// `status.health.status`, with Argo CD's values.
#[derive(
    Deserialize,
    Serialize,
    Clone,
    Copy,
    Debug,
    Default,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    JsonSchema,
)]
pub enum HealthStatusCode {
    /// Health cannot be told.
    #[default]
    Unknown,
    /// Ready and working.
    Healthy,
    /// Not yet ready; may become healthy.
    Progressing,
    /// Paused or suspended by design.
    Suspended,
    /// Failed or failing.
    Degraded,
    /// Not in the cluster.
    Missing,
}

impl HealthStatusCode {
    /// How bad a status is, for the worst-of rule that gives an
    /// application's health from its resources' (Argo CD's order).
    pub fn severity(self) -> u8 {
        match self {
            HealthStatusCode::Healthy => 0,
            HealthStatusCode::Suspended => 1,
            HealthStatusCode::Progressing => 2,
            HealthStatusCode::Missing => 3,
            HealthStatusCode::Degraded => 4,
            HealthStatusCode::Unknown => 5,
        }
    }
}

/// A health status with its message.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
pub struct Health {
    /// The status.
    pub status: HealthStatusCode,
    /// Why, when not healthy.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
}

impl Health {
    /// A health with a status and a message.
    pub fn new(status: HealthStatusCode, message: impl Into<String>) -> Health {
        Health {
            status,
            message: message.into(),
        }
    }
}

/// `status` of an Application, with Argo CD's field names.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ApplicationStatus {
    /// Comparison result.
    #[serde(default)]
    pub sync: SyncStatus,
    /// Aggregated health.
    #[serde(default)]
    pub health: Health,
    /// The last (or running) sync operation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operation_state: Option<OperationState>,
    /// Resources of the application (bounded on the CR; full in the store).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub resources: Vec<ResourceStatus>,
    /// Errors and warnings.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// Deployed revisions, oldest first (bounded on the CR; full in the store).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub history: Vec<RevisionHistory>,
    /// When the application was last compared.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reconciled_at: Option<String>,
    /// Set while automated sync is suspended by a rollback (Plumb's own field).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollback: Option<RollbackPin>,
    /// What it deploys, at a glance.
    #[serde(default, skip_serializing_if = "ApplicationSummary::is_empty")]
    pub summary: ApplicationSummary,
}

/// `status.summary`.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ApplicationSummary {
    /// The container images of its objects' pod templates, as Git renders
    /// them, sorted.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub images: Vec<String>,
}

impl ApplicationSummary {
    /// Whether it says nothing.
    pub fn is_empty(&self) -> bool {
        self.images.is_empty()
    }
}

/// `status.sync`.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SyncStatus {
    /// Synced, OutOfSync or Unknown.
    pub status: SyncStatusCode,
    /// The commit SHA compared against.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub revision: String,
    /// With `spec.sources`: the revision of each source, in order (a commit
    /// SHA, or a chart version).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub revisions: Vec<String>,
}

/// A rollback that pinned a revision and suspended automated sync.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RollbackPin {
    /// The revision the application is pinned to.
    pub revision: String,
    /// The history id rolled back to.
    pub history_id: i64,
    /// When.
    pub at: String,
}

/// `status.operationState`.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct OperationState {
    /// Running, Succeeded, Failed, Error.
    pub phase: OperationPhase,
    /// What happened, in a sentence.
    #[serde(default)]
    pub message: String,
    /// When the operation started.
    pub started_at: String,
    /// When it finished.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<String>,
    /// The outcome for each resource.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sync_result: Option<SyncResult>,
    /// The operation that ran (`{"sync": {...}}`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operation: Option<Operation>,
    /// How many times a failed attempt was retried (`syncPolicy.retry`).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub retry_count: i64,
}

fn is_zero(n: &i64) -> bool {
    *n == 0
}

/// `status.operationState.operation`.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Operation {
    /// The sync that was asked for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sync: Option<SyncOperation>,
    /// Who or what started it.
    #[serde(default)]
    pub initiated_by: InitiatedBy,
}

/// `operation.sync`.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SyncOperation {
    /// The revision asked for.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub revision: String,
    /// Whether prune was allowed.
    #[serde(default)]
    pub prune: bool,
    /// Whether this was a dry run.
    #[serde(default)]
    pub dry_run: bool,
    /// Only these objects, when not empty (a selective sync: no hooks run,
    /// nothing else is applied or pruned).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub resources: Vec<SyncOperationResource>,
    /// `apply` (no hooks) or `hook` (the default), each with `force`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sync_strategy: Option<SyncStrategy>,
    /// Sync options for this operation, after the application's.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sync_options: Vec<String>,
}

/// One object of a selective sync (`operation.sync.resources[]`).
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SyncOperationResource {
    /// API group; empty for the core group.
    #[serde(default)]
    pub group: String,
    /// Kind.
    pub kind: String,
    /// Name.
    pub name: String,
    /// Namespace; empty matches an object in any namespace.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub namespace: String,
}

impl SyncOperationResource {
    /// Whether `key` is this object (Argo CD's rule: an empty namespace
    /// matches any).
    pub fn matches(&self, key: &ResourceKey) -> bool {
        self.group == key.group
            && self.kind == key.kind
            && self.name == key.name
            && (self.namespace.is_empty() || self.namespace == key.namespace)
    }
}

/// `operation.sync.syncStrategy`: Argo CD's `apply` (kubectl apply, no
/// hooks) or `hook` (hooks run; the default).
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SyncStrategy {
    /// Apply only: hooks do not run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub apply: Option<SyncStrategyForce>,
    /// Hooks run (the default strategy).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hook: Option<SyncStrategyForce>,
}

impl SyncStrategy {
    /// Whether hooks are skipped (`apply`).
    pub fn apply_only(&self) -> bool {
        self.apply.is_some() && self.hook.is_none()
    }

    /// Whether the strategy asks for force (delete and create again what
    /// an apply cannot change).
    pub fn force(&self) -> bool {
        [&self.apply, &self.hook]
            .into_iter()
            .flatten()
            .any(|s| s.force)
    }
}

/// `syncStrategy.apply` / `syncStrategy.hook`.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SyncStrategyForce {
    /// Force the write.
    #[serde(default)]
    pub force: bool,
}

/// `initiatedBy`.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct InitiatedBy {
    /// The user, for a manual sync.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub username: String,
    /// True when automated sync started it.
    #[serde(default)]
    pub automated: bool,
}

/// The phase of a sync operation.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum OperationPhase {
    /// Under way.
    #[default]
    Running,
    /// Every step succeeded.
    Succeeded,
    /// A step failed.
    Failed,
    /// The operation could not run (render, diff or internal failure).
    Error,
    /// Termination was asked for and is under way (Argo CD's phase; Plumb
    /// ends a terminated operation `Failed` directly).
    Terminating,
}

/// `status.operationState.syncResult`.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SyncResult {
    /// The revision synced.
    pub revision: String,
    /// One entry per resource acted on.
    #[serde(default)]
    pub resources: Vec<ResourceResult>,
}

/// `syncResult.resources[]`.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ResourceResult {
    /// API group.
    #[serde(default)]
    pub group: String,
    /// API version.
    #[serde(default)]
    pub version: String,
    /// Kind.
    pub kind: String,
    /// Namespace.
    #[serde(default)]
    pub namespace: String,
    /// Name.
    pub name: String,
    /// Synced, SyncFailed, Pruned, PruneSkipped.
    pub status: String,
    /// What happened.
    #[serde(default)]
    pub message: String,
    /// `PreSync`, `Sync`, `PostSync` or `SyncFail`.
    #[serde(default)]
    pub sync_phase: String,
    /// For a hook: its type (`PreSync`, `Sync`, `PostSync`, `SyncFail`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub hook_type: String,
    /// For a hook: `Running`, `Succeeded` or `Failed`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub hook_phase: String,
}

/// `status.resources[]`.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ResourceStatus {
    /// API group.
    #[serde(default)]
    pub group: String,
    /// API version.
    #[serde(default)]
    pub version: String,
    /// Kind.
    pub kind: String,
    /// Namespace.
    #[serde(default)]
    pub namespace: String,
    /// Name.
    pub name: String,
    /// Synced or OutOfSync.
    pub status: SyncStatusCode,
    /// Health of the live object.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health: Option<Health>,
    /// True when the object is tracked but no longer desired.
    #[serde(default)]
    pub requires_pruning: bool,
}

/// `status.conditions[]`.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    /// Argo CD's condition types: `ComparisonError`, `SyncError`,
    /// `InvalidSpecError`, `UnsupportedFieldWarning` (Plumb's).
    #[serde(rename = "type")]
    pub type_: String,
    /// What is wrong and what to do.
    pub message: String,
    /// When it was first seen.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_transition_time: Option<String>,
}

/// `status.history[]`.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RevisionHistory {
    /// Increasing id, the handle for rollback.
    pub id: i64,
    /// Commit SHA deployed.
    pub revision: String,
    /// When the sync finished.
    pub deployed_at: String,
    /// When it started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deploy_started_at: Option<String>,
    /// Who or what started it.
    #[serde(default)]
    pub initiated_by: InitiatedBy,
    /// The source deployed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<ApplicationSource>,
    /// With `spec.sources`: the revision of each source deployed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub revisions: Vec<String>,
    /// With `spec.sources`: the sources deployed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sources: Vec<ApplicationSource>,
}

impl RevisionHistory {
    /// The revision deployed as one string: with several sources, each
    /// source's revision in order, joined by commas.
    pub fn joined_revision(&self) -> String {
        if self.revisions.is_empty() {
            self.revision.clone()
        } else {
            self.revisions.join(",")
        }
    }
}

/// Labels and annotations that are Kubernetes metadata but not state.
pub type StringMap = BTreeMap<String, String>;

#[cfg(test)]
mod tests {

    #[test]
    fn group_and_version_of_an_api_version() {
        assert_eq!((group_of("apps/v1"), version_of("apps/v1")), ("apps", "v1"));
        assert_eq!((group_of("v1"), version_of("v1")), ("", "v1"));
    }

    use super::*;
    use serde_json::json;

    #[test]
    fn unsupported_fields_lists_unknown_paths_only() {
        let app = json!({
            "apiVersion": "argoproj.io/v1alpha1",
            "kind": "Application",
            "metadata": {"name": "a", "finalizers": ["x"]},
            "spec": {
                "source": {"repoURL": "r", "path": "p", "plugin": {"name": "x"},
                    "helm": {"values": "", "valuesObject": {"any": 1}}},
                "sources": [{"repoURL": "r", "kustomize": {"commonLabels": {"a": "b"}}},
                    {"repoURL": "r", "helm": {"postRenderer": "x"}}],
                "destination": {"namespace": "n"},
                "ignoreDifferences": [{"group": "apps", "kind": "Deployment",
                    "jsonPointers": ["/spec/replicas"]}],
                "syncPolicy": {"automated": {"prune": true}, "retry": {"limit": 2},
                    "managedNamespaceMetadata": {}}
            }
        });
        assert_eq!(
            unsupported_fields(&app),
            vec![
                "spec.source.plugin",
                "spec.sources[1].helm.postRenderer",
                "spec.syncPolicy.managedNamespaceMetadata"
            ]
        );
    }

    #[test]
    fn committed_crd_matches_the_rust_types() {
        let committed = include_str!("../../manifests/crds/application.yaml");
        assert_eq!(
            committed,
            application_crd_yaml(),
            "manifests/crds/application.yaml is stale: run `cargo run -- crd > manifests/crds/application.yaml`"
        );
    }

    #[test]
    fn sync_options_are_case_insensitive_key_value_pairs() {
        let spec = ApplicationSpec {
            sync_policy: Some(SyncPolicy {
                automated: None,
                sync_options: vec!["CreateNamespace=true".into(), "prunelast = TRUE".into()],
                retry: None,
            }),
            ..Default::default()
        };
        assert!(spec.sync_option("CreateNamespace"));
        assert!(spec.sync_option("PruneLast"));
        assert!(!spec.sync_option("ApplyOutOfSyncOnly"));
    }

    #[test]
    fn resource_key_and_tracking_id_follow_argo_cd() {
        let obj = json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "prod"}});
        let key = ResourceKey::of(&obj).expect("has a key");
        assert_eq!(key.tracking_id("shop"), "shop:apps/Deployment:prod/web");
        assert_eq!(
            tracking_app("shop:apps/Deployment:prod/web").as_deref(),
            Some("shop")
        );
        assert_eq!(
            key.tracking_id("team-a/shop"),
            "team-a_shop:apps/Deployment:prod/web"
        );
        assert_eq!(
            tracking_app("team-a_shop:apps/Deployment:prod/web").as_deref(),
            Some("team-a/shop")
        );
        let ns = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "prod"}});
        assert_eq!(
            ResourceKey::of(&ns).expect("key").tracking_id("shop"),
            "shop:/Namespace:/prod"
        );
    }
}
