//! `helm template` of a chart: from a folder of a checkout (with its local
//! subcharts and `file://` dependencies) or pulled from a chart repository.
//! Every file Helm is given (value files, `--set-file` files, local
//! dependencies) is checked to stay inside its repository first.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde_json::Value;

use super::checkout::Checkout;
use super::{Input, RenderFailure, Tools};
use crate::cluster::Capabilities;
use crate::helm::{self, Template, ValueFile};
use crate::model::HelmSource;
use crate::repo_path;

/// One `helm template` to run.
pub(super) struct Chart<'a> {
    /// The checkout (or pulled chart's folder) the chart is in.
    pub(super) root: &'a Path,
    /// The checkout, whose locks guard `helm dependency build` (`None`
    /// for a pulled chart, which comes with its dependencies).
    pub(super) checkout: Option<&'a Checkout>,
    /// The chart's folder, a path inside `root`.
    pub(super) chart: &'a str,
    /// The repository URL of the checkout (`None` for a pulled chart).
    pub(super) url: Option<&'a str>,
    /// The checkouts of the application's other sources, by `ref`, with
    /// their repository URLs.
    pub(super) refs: &'a HashMap<String, (PathBuf, String)>,
    /// `spec.source.helm`.
    pub(super) options: &'a HelmSource,
    /// The release name.
    pub(super) release: &'a str,
    /// The release namespace.
    pub(super) namespace: &'a str,
    /// The destination cluster's version and API versions.
    pub(super) capabilities: &'a Capabilities,
    /// A private folder for the files Plumb writes (inline values).
    pub(super) scratch: &'a Path,
}

/// Renders a chart and returns what Helm printed.
///
/// # Errors
///
/// [`RenderFailure::Input`] for a missing chart or value file, a path that
/// leaves its repository or values that are not YAML;
/// [`RenderFailure::Tool`] when Helm is missing or fails.
/// Renders a chart; returns what Helm printed and the repository paths it
/// read (the chart's folder, value files, `--set-file` files and local
/// dependencies).
pub(super) fn template(
    tools: &Tools,
    c: &Chart<'_>,
) -> Result<(Vec<u8>, Vec<Input>), RenderFailure> {
    let mut inputs = Vec::new();
    let mut read = |url: Option<&str>, path: &str| {
        if let Some(url) = url {
            inputs.push(Input {
                url: url.to_string(),
                path: path.to_string(),
            });
        }
    };
    if c.url.is_some() {
        for path in chart_inputs(c.root, c.chart) {
            read(c.url, &path);
        }
    }
    let chart_dir = c.root.join(c.chart);
    let shown = if c.chart.is_empty() { "." } else { c.chart };
    let chart_yaml = std::fs::read_to_string(chart_dir.join("Chart.yaml")).map_err(|_| {
        RenderFailure::Input(format!("{shown} has no Chart.yaml: it is not a Helm chart"))
    })?;
    let chart_yaml: Value = serde_yaml::from_str(&chart_yaml)
        .map_err(|e| RenderFailure::Input(format!("{shown}/Chart.yaml is not YAML: {e}")))?;
    for dependency in dependencies(tools, c, &chart_dir, &chart_yaml)? {
        read(c.url, &dependency);
    }
    // A dependency build of another render must not change the chart
    // while Helm reads it.
    let _reading = c.checkout.map(Checkout::read_lock);

    let mut value_files = Vec::new();
    for entry in &c.options.value_files {
        let (root, path) = match ValueFile::parse(entry) {
            ValueFile::Chart(path) => {
                let path = join(c.chart, &path, "valueFiles")?;
                read(c.url, &path);
                (c.root, path)
            }
            ValueFile::Ref { name, path } => {
                let (root, url) = c.refs.get(&name).ok_or_else(|| {
                    RenderFailure::Input(format!(
                        "valueFiles {entry:?}: no source of this application has ref: {name}"
                    ))
                })?;
                let path = join("", &path, "valueFiles")?;
                read(Some(url), &path);
                (root.as_path(), path)
            }
            ValueFile::Remote(url) => {
                return Err(RenderFailure::Input(format!(
                    "valueFiles {url:?}: value files from a URL are not supported; commit the file or take it from another source with ref"
                )));
            }
        };
        let file = root.join(&path);
        if !file.is_file() {
            if c.options.ignore_missing_value_files {
                continue;
            }
            return Err(RenderFailure::Input(format!(
                "value file {entry:?} does not exist (set helm.ignoreMissingValueFiles to skip missing ones)"
            )));
        }
        value_files.push(file.to_string_lossy().into_owned());
    }
    if let Some(text) = helm::inline_values(c.options).map_err(RenderFailure::Input)? {
        let file = c.scratch.join("values.yaml");
        std::fs::write(&file, text)
            .map_err(|e| RenderFailure::Internal(format!("cannot write the inline values: {e}")))?;
        value_files.push(file.to_string_lossy().into_owned());
    }
    let mut file_parameters = Vec::new();
    for p in &c.options.file_parameters {
        let path = join(c.chart, &p.path, "fileParameters")?;
        read(c.url, &path);
        let file = c.root.join(&path);
        if !file.is_file() {
            return Err(RenderFailure::Input(format!(
                "fileParameters {}: {:?} does not exist",
                p.name, p.path
            )));
        }
        file_parameters.push((p.name.clone(), file.to_string_lossy().into_owned()));
    }
    let kube_version = c
        .options
        .kube_version
        .as_deref()
        .filter(|v| !v.is_empty())
        .unwrap_or(&c.capabilities.kube_version);
    let api_versions = if c.options.api_versions.is_empty() {
        &c.capabilities.api_versions
    } else {
        &c.options.api_versions
    };
    let chart_arg = chart_dir.to_string_lossy();
    let args = helm::template_args(&Template {
        release: c.release,
        chart: &chart_arg,
        namespace: c.namespace,
        value_files,
        file_parameters,
        kube_version: Some(kube_version),
        api_versions,
        options: c.options,
    });
    let out = tools.helm(&args, &chart_dir)?;
    Ok((out, inputs))
}

/// The repository paths of a chart that `helm template` reads: the whole
/// folder when a template uses `.Files` (it may read any file there),
/// else only what Helm itself loads, so that a value file of another
/// environment beside the chart is not one of them.
fn chart_inputs(root: &Path, chart: &str) -> Vec<String> {
    fn uses_files(dir: &Path) -> bool {
        std::fs::read_dir(dir)
            .into_iter()
            .flatten()
            .flatten()
            .any(|entry| {
                let path = entry.path();
                if path.is_dir() {
                    uses_files(&path)
                } else {
                    std::fs::read_to_string(&path).is_ok_and(|t| t.contains(".Files"))
                }
            })
    }
    if uses_files(&root.join(chart).join("templates")) {
        return vec![chart.to_string()];
    }
    [
        "Chart.yaml",
        "Chart.lock",
        "requirements.yaml",
        "requirements.lock",
        "values.yaml",
        "values.schema.json",
        ".helmignore",
        "templates",
        "charts",
        "crds",
    ]
    .iter()
    .map(|name| {
        if chart.is_empty() {
            (*name).to_string()
        } else {
            format!("{chart}/{name}")
        }
    })
    .collect()
}

/// `path` (from the chart folder `base`) as a repository path.
fn join(base: &str, path: &str, field: &str) -> Result<String, RenderFailure> {
    repo_path::join(base, path).map_err(|e| RenderFailure::Input(format!("{field}: {e}")))
}

/// Checks the chart's `file://` dependencies stay inside the repository,
/// and runs `helm dependency build` when the chart declares dependencies
/// its `charts/` folder does not hold yet. Returns the dependencies'
/// folders.
fn dependencies(
    tools: &Tools,
    c: &Chart<'_>,
    chart_dir: &Path,
    chart_yaml: &Value,
) -> Result<Vec<String>, RenderFailure> {
    let (local, _) = helm::local_dependencies(chart_yaml);
    let mut folders = Vec::with_capacity(local.len());
    for path in &local {
        let dependency = join(c.chart, path, "Chart.yaml dependencies")?;
        if !c.root.join(&dependency).join("Chart.yaml").is_file() {
            return Err(RenderFailure::Input(format!(
                "Chart.yaml dependency file://{path} is not a chart of the repository"
            )));
        }
        folders.push(dependency);
    }
    let names: Vec<&str> = chart_yaml
        .get("dependencies")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|d| d.get("name").and_then(Value::as_str))
        .collect();
    let present = |name: &str| {
        std::fs::read_dir(chart_dir.join("charts"))
            .into_iter()
            .flatten()
            .flatten()
            .any(|entry| {
                let file = entry.file_name().to_string_lossy().into_owned();
                file == name || (file.starts_with(&format!("{name}-")) && file.ends_with(".tgz"))
            })
    };
    if names.iter().all(|n| present(n)) {
        return Ok(folders);
    }
    let Some(checkout) = c.checkout else {
        return Err(RenderFailure::Input(format!(
            "chart {}: its dependencies are not in its charts/ folder",
            c.chart
        )));
    };
    // Written into the checkout, once, for every application on this
    // commit: renders of the same checkout wait.
    let _writing = checkout.write_lock();
    if names.iter().all(|n| present(n)) {
        return Ok(folders);
    }
    let args: Vec<String> = vec![
        "dependency".into(),
        "build".into(),
        chart_dir.to_string_lossy().into_owned(),
        "--skip-refresh".into(),
    ];
    tools.helm(&args, chart_dir)?;
    Ok(folders)
}
