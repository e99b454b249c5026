//! The `clusters` generator: one parameter set per cluster of the
//! [`ClusterCatalog`] whose Secret's labels match `selector`.
//!
//! Parameters, as Argo CD gives them: `name`, `nameNormalized`, `server`,
//! `project` and the Secret's labels and annotations (fasttemplate:
//! `metadata.labels.<key>`; goTemplate: a `metadata` object with `labels`
//! and `annotations`, each only when not empty), then `values`. The local
//! cluster without a Secret has no labels to match, so any non-empty
//! selector leaves it out, and it has no `metadata`.

use serde_json::Value;

use super::{
    ClusterEntry, ClustersGenerator, Params,
    generate::{Context, GenerateError},
    params::{add_values, sanitize_name},
    selector::Selector,
};

/// The sets of `clusters`, in the catalog's order.
pub(crate) fn generate(
    generator: &ClustersGenerator,
    context: &Context<'_>,
    at: &str,
) -> Result<Vec<Params>, GenerateError> {
    let selector =
        Selector::new(&generator.selector.clone().unwrap_or_default()).map_err(|source| {
            GenerateError::Selector {
                at: format!("{at}.selector"),
                source,
            }
        })?;
    // A catalog that cannot be read must fail the generator: "no clusters"
    // would delete every Application this generator made.
    let clusters = context
        .clusters
        .clusters()
        .map_err(|message| GenerateError::Clusters {
            at: at.to_string(),
            message,
        })?;
    let go_template = context.options.go_template;
    let mut out = Vec::new();
    for cluster in &clusters {
        if !selector.is_empty() && (cluster.secretless || !selector.matches(&cluster.labels)) {
            continue;
        }
        let mut params = cluster_params(cluster, go_template);
        add_values(&mut params, &generator.values, &context.options).map_err(|(key, source)| {
            GenerateError::Template {
                at: at.to_string(),
                what: format!("values.{key}"),
                source,
            }
        })?;
        out.push(params);
    }
    Ok(out)
}

/// A cluster's own parameters, before `values`.
fn cluster_params(cluster: &ClusterEntry, go_template: bool) -> Params {
    let text = |s: &str| Value::String(s.to_string());
    let mut params = Params::new();
    params.insert("name".into(), text(&cluster.name));
    // Argo CD does not normalize the local cluster's name (`in-cluster`
    // already is a valid name).
    let normalized = if cluster.secretless {
        cluster.name.clone()
    } else {
        sanitize_name(&cluster.name)
    };
    params.insert("nameNormalized".into(), Value::String(normalized));
    params.insert("server".into(), text(&cluster.server));
    params.insert("project".into(), text(&cluster.project));
    if cluster.secretless {
        return params;
    }
    if go_template {
        let as_object = |map: &std::collections::BTreeMap<String, String>| {
            Value::Object(map.iter().map(|(k, v)| (k.clone(), text(v))).collect())
        };
        let mut metadata = Params::new();
        if !cluster.annotations.is_empty() {
            metadata.insert("annotations".into(), as_object(&cluster.annotations));
        }
        if !cluster.labels.is_empty() {
            metadata.insert("labels".into(), as_object(&cluster.labels));
        }
        params.insert("metadata".into(), Value::Object(metadata));
    } else {
        for (k, v) in &cluster.annotations {
            params.insert(format!("metadata.annotations.{k}"), text(v));
        }
        for (k, v) in &cluster.labels {
            params.insert(format!("metadata.labels.{k}"), text(v));
        }
    }
    params
}
