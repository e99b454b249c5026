//! What Plumb hands to `helm template`, as pure functions: the arguments
//! from `spec.source.helm` (Argo CD's order: value files, then `values` /
//! `valuesObject`, then parameters), where each value file comes from, and
//! the local dependencies a `Chart.yaml` names.

use serde_json::Value;

use crate::model::HelmSource;

/// Where a `valueFiles` entry is read from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ValueFile {
    /// A path relative to the chart's folder.
    Chart(String),
    /// `$<ref>/path`: a path from the root of the source whose `ref` is
    /// that name.
    Ref {
        /// The `ref` name, without `$`.
        name: String,
        /// The path inside that source's repository.
        path: String,
    },
    /// An `http(s)://` URL, which Plumb does not fetch.
    Remote(String),
}

impl ValueFile {
    /// Classifies an entry of `valueFiles`.
    pub fn parse(entry: &str) -> ValueFile {
        if entry.starts_with("http://") || entry.starts_with("https://") {
            return ValueFile::Remote(entry.to_string());
        }
        if let Some(rest) = entry.strip_prefix('$') {
            let (name, path) = rest.split_once('/').unwrap_or((rest, ""));
            return ValueFile::Ref {
                name: name.to_string(),
                path: path.to_string(),
            };
        }
        ValueFile::Chart(entry.to_string())
    }
}

/// `values` / `valuesObject` as the text of one values file, `None` when
/// neither is set. `valuesObject` wins, as in Argo CD.
///
/// # Errors
///
/// A message when `values` is not YAML.
pub fn inline_values(options: &HelmSource) -> Result<Option<String>, String> {
    if let Some(object) = options.values_object.as_ref().filter(|v| !v.is_null()) {
        return serde_json::to_string(object)
            .map(Some)
            .map_err(|e| e.to_string());
    }
    match options.values.as_deref().filter(|v| !v.trim().is_empty()) {
        None => Ok(None),
        Some(text) => {
            serde_yaml::from_str::<serde_yaml::Value>(text).map_err(|e| {
                format!(
                    "spec.source.helm.values is not YAML: {e}; fix the text or use valuesObject"
                )
            })?;
            Ok(Some(text.to_string()))
        }
    }
}

/// Everything `helm template` is given, resolved by the caller.
#[derive(Clone, Debug)]
pub struct Template<'a> {
    /// The release name.
    pub release: &'a str,
    /// The chart's folder (on disk).
    pub chart: &'a str,
    /// The release namespace.
    pub namespace: &'a str,
    /// Value files (on disk), in order, the inline values last.
    pub value_files: Vec<String>,
    /// `--set-file` parameters: name and file (on disk).
    pub file_parameters: Vec<(String, String)>,
    /// The Kubernetes version templates see (`--kube-version`).
    pub kube_version: Option<&'a str>,
    /// The API versions templates see (`--api-versions`).
    pub api_versions: &'a [String],
    /// The source's options (parameters and switches).
    pub options: &'a HelmSource,
}

/// The arguments of `helm template` (without the program name).
pub fn template_args(t: &Template<'_>) -> Vec<String> {
    let mut args: Vec<String> = vec!["template".into(), t.release.into(), t.chart.into()];
    if !t.namespace.is_empty() {
        args.push("--namespace".into());
        args.push(t.namespace.into());
    }
    if !t.options.skip_crds {
        args.push("--include-crds".into());
    } else {
        args.push("--skip-crds".into());
    }
    if t.options.skip_tests {
        args.push("--skip-tests".into());
    }
    if t.options.skip_schema_validation {
        args.push("--skip-schema-validation".into());
    }
    if let Some(v) = t.kube_version.filter(|v| !v.is_empty()) {
        args.push("--kube-version".into());
        args.push(v.into());
    }
    for v in t.api_versions {
        args.push("--api-versions".into());
        args.push(v.clone());
    }
    for f in &t.value_files {
        args.push("--values".into());
        args.push(f.clone());
    }
    for p in &t.options.parameters {
        args.push(
            if p.force_string {
                "--set-string"
            } else {
                "--set"
            }
            .into(),
        );
        args.push(format!("{}={}", p.name, set_value(&p.value)));
    }
    for (name, path) in &t.file_parameters {
        args.push("--set-file".into());
        args.push(format!("{name}={path}"));
    }
    args
}

/// A parameter's value as `--set` must see it to mean the value itself:
/// commas separate assignments for Helm, so they are escaped, unless the
/// value is a `{a,b}` list. Commas already escaped stay as they are.
fn set_value(value: &str) -> String {
    if value.starts_with('{') && value.ends_with('}') {
        return value.to_string();
    }
    let mut out = String::with_capacity(value.len());
    let mut escaped = false;
    for c in value.chars() {
        if c == ',' && !escaped {
            out.push('\\');
        }
        escaped = c == '\\' && !escaped;
        out.push(c);
    }
    out
}

/// The `file://` repositories of a `Chart.yaml`'s dependencies, as written
/// (paths relative to the chart), and whether it has dependencies from
/// elsewhere (a chart repository or OCI registry).
pub fn local_dependencies(chart_yaml: &Value) -> (Vec<String>, bool) {
    let mut local = Vec::new();
    let mut remote = false;
    for dep in chart_yaml
        .get("dependencies")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        match dep.get("repository").and_then(Value::as_str) {
            Some(repo) if repo.starts_with("file://") => {
                local.push(repo.trim_start_matches("file://").to_string());
            }
            Some(repo) if !repo.is_empty() => remote = true,
            _ => {}
        }
    }
    (local, remote)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::HelmParameter;
    use serde_json::json;

    #[test]
    fn value_files_by_origin() {
        assert_eq!(
            ValueFile::parse("values-prod.yaml"),
            ValueFile::Chart("values-prod.yaml".into())
        );
        assert_eq!(
            ValueFile::parse("$values/envs/prod.yaml"),
            ValueFile::Ref {
                name: "values".into(),
                path: "envs/prod.yaml".into()
            }
        );
        assert!(matches!(
            ValueFile::parse("https://x/v.yaml"),
            ValueFile::Remote(_)
        ));
    }

    #[test]
    fn arguments_in_argo_cds_order() {
        let options = HelmSource {
            parameters: vec![
                HelmParameter {
                    name: "image.tag".into(),
                    value: "1.2,3".into(),
                    force_string: false,
                },
                HelmParameter {
                    name: "port".into(),
                    value: "80".into(),
                    force_string: true,
                },
                HelmParameter {
                    name: "list".into(),
                    value: "{a,b}".into(),
                    force_string: false,
                },
            ],
            skip_crds: true,
            ..Default::default()
        };
        let api_versions = vec!["apps/v1".to_string()];
        let args = template_args(&Template {
            release: "web",
            chart: "/c",
            namespace: "prod",
            value_files: vec!["/c/values-prod.yaml".into(), "/tmp/inline.yaml".into()],
            file_parameters: vec![("config".into(), "/c/config.txt".into())],
            kube_version: Some("1.33.0"),
            api_versions: &api_versions,
            options: &options,
        });
        assert_eq!(
            args.join(" "),
            "template web /c --namespace prod --skip-crds --kube-version 1.33.0 \
             --api-versions apps/v1 --values /c/values-prod.yaml --values /tmp/inline.yaml \
             --set image.tag=1.2\\,3 --set-string port=80 --set list={a,b} \
             --set-file config=/c/config.txt"
        );
    }

    #[test]
    fn inline_values_prefer_the_object() {
        let mut options = HelmSource {
            values: Some("a: 1".into()),
            ..Default::default()
        };
        assert_eq!(inline_values(&options), Ok(Some("a: 1".into())));
        options.values_object = Some(json!({"b": 2}));
        assert_eq!(inline_values(&options), Ok(Some("{\"b\":2}".into())));
        let broken = HelmSource {
            values: Some("a: [".into()),
            ..Default::default()
        };
        assert!(inline_values(&broken).is_err());
        assert_eq!(inline_values(&HelmSource::default()), Ok(None));
    }

    #[test]
    fn dependencies_from_files_and_elsewhere() {
        let chart = json!({"dependencies": [
            {"name": "a", "repository": "file://../a"},
            {"name": "b", "repository": "https://charts.example.com"},
            {"name": "c"}
        ]});
        assert_eq!(local_dependencies(&chart), (vec!["../a".to_string()], true));
    }
}
