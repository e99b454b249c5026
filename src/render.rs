//! `plumb render`: an application's sources rendered offline, as the
//! controller renders them, from an Application file or from flags that
//! mirror its fields.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow, bail};
use plumb_engine::cluster::Capabilities;
use plumb_engine::controller::ControllerOptions;
use plumb_engine::model::{
    ApplicationDestination, ApplicationSource, ApplicationSpec, DirectorySource, HelmFileParameter,
    HelmParameter, HelmSource, JsonnetSource, JsonnetVar, KustomizeSource,
};
use plumb_engine::registry;
use plumb_engine::source::RepoCache;
use plumb_engine::tools::Tools;
use plumb_engine::tools::app::{self, OfflineApp};

use crate::ToolArgs;

/// The application name when neither `--app` nor `--name` gives one.
const DEFAULT_NAME: &str = "render";

#[derive(clap::Args)]
pub struct RenderArgs {
    /// An Application manifest (multi-document YAML): render its
    /// `spec.source` or `spec.sources`, with its name and destination
    /// namespace.
    #[arg(
        long,
        value_name = "FILE",
        conflicts_with_all = ["SourceArgs", "HelmArgs", "KustomizeArgs", "DirectoryArgs"]
    )]
    app: Option<PathBuf>,
    /// With --app, the Application of the file to render (default: the
    /// first); else the application's name (default: `render`), Helm's
    /// default release name.
    #[arg(long)]
    name: Option<String>,
    /// Where to keep the repository cache.
    #[arg(long, default_value_os_t = std::env::temp_dir().join("plumb-render"))]
    data_dir: PathBuf,
    #[command(flatten)]
    source: SourceArgs,
    #[command(flatten)]
    directory: DirectoryArgs,
    #[command(flatten)]
    helm: HelmArgs,
    #[command(flatten)]
    kustomize: KustomizeArgs,
    /// The Kubernetes version Helm templates see (default: Helm's own).
    #[arg(long, value_name = "VERSION", help_heading = "Helm")]
    kube_version: Option<String>,
    /// An API version Helm templates see (`apps/v1`, `monitoring.coreos.com/v1/ServiceMonitor`);
    /// repeatable.
    #[arg(long = "api-versions", value_name = "VERSION", help_heading = "Helm")]
    api_versions: Vec<String>,
    #[command(flatten, next_help_heading = "Tools")]
    tools: ToolArgs,
}

/// `spec.source` and `spec.destination.namespace`.
#[derive(clap::Args)]
#[command(next_help_heading = "Source")]
struct SourceArgs {
    /// Repository URL or local path; with --chart, the chart repository.
    #[arg(long, value_name = "URL", required_unless_present = "app")]
    repo: Option<String>,
    /// Folder inside the repository.
    #[arg(long)]
    path: Option<String>,
    /// Branch, tag or commit (default: HEAD); with --chart, the chart
    /// version or a constraint (default: the newest).
    #[arg(long)]
    revision: Option<String>,
    /// A chart of the chart repository --repo (a Helm source).
    #[arg(long)]
    chart: Option<String>,
    /// The destination namespace (Helm's release namespace).
    #[arg(long)]
    namespace: Option<String>,
}

/// `spec.source.directory`, with its Jsonnet options.
#[derive(clap::Args)]
#[command(next_help_heading = "Directory and Jsonnet")]
struct DirectoryArgs {
    /// Descend into sub-folders.
    #[arg(long)]
    recurse: bool,
    /// Glob (or `{a,b}` list of globs) of the files to read.
    #[arg(long, value_name = "GLOB")]
    include: Option<String>,
    /// Glob (or `{a,b}` list of globs) of the files to skip.
    #[arg(long, value_name = "GLOB")]
    exclude: Option<String>,
    /// A Jsonnet external variable, a string; repeatable.
    #[arg(long, value_name = "NAME=VALUE", value_parser = key_value)]
    ext_var: Vec<(String, String)>,
    /// A Jsonnet external variable, as code; repeatable.
    #[arg(long, value_name = "NAME=CODE", value_parser = key_value)]
    ext_code: Vec<(String, String)>,
    /// A Jsonnet top-level argument, a string; repeatable.
    #[arg(long, value_name = "NAME=VALUE", value_parser = key_value)]
    tla: Vec<(String, String)>,
    /// A Jsonnet top-level argument, as code; repeatable.
    #[arg(long, value_name = "NAME=CODE", value_parser = key_value)]
    tla_code: Vec<(String, String)>,
    /// A Jsonnet library folder, relative to the repository root; repeatable.
    #[arg(long, value_name = "DIR")]
    jsonnet_lib: Vec<String>,
}

/// `spec.source.helm`.
#[derive(clap::Args)]
#[command(next_help_heading = "Helm")]
struct HelmArgs {
    /// Helm's release name (default: the application's name).
    #[arg(long)]
    release_name: Option<String>,
    /// A value file, relative to the chart (or `$ref/...`); repeatable.
    #[arg(long, value_name = "FILE")]
    values: Vec<String>,
    /// Values as a JSON (or YAML) object, over the value files.
    #[arg(long, value_name = "JSON", alias = "helm-values-object")]
    values_object: Option<String>,
    /// A value (`helm template --set`); repeatable.
    #[arg(long, value_name = "KEY=VALUE", value_parser = key_value)]
    set: Vec<(String, String)>,
    /// A value kept a string (`--set-string`); repeatable.
    #[arg(long, value_name = "KEY=VALUE", value_parser = key_value)]
    set_string: Vec<(String, String)>,
    /// A value read from a file relative to the chart (`--set-file`);
    /// repeatable.
    #[arg(long, value_name = "KEY=PATH", value_parser = key_value)]
    set_file: Vec<(String, String)>,
    /// Leave the chart's `crds/` out.
    #[arg(long)]
    skip_crds: bool,
    /// Leave the chart's tests out.
    #[arg(long)]
    skip_tests: bool,
    /// Skip a value file that does not exist instead of failing.
    #[arg(long)]
    ignore_missing_value_files: bool,
}

/// `spec.source.kustomize`.
#[derive(clap::Args)]
#[command(next_help_heading = "Kustomize")]
struct KustomizeArgs {
    /// A prefix for every object's name.
    #[arg(long)]
    name_prefix: Option<String>,
    /// A suffix for every object's name.
    #[arg(long, allow_hyphen_values = true)]
    name_suffix: Option<String>,
    /// The namespace of every namespaced object.
    #[arg(long, value_name = "NAMESPACE")]
    kustomize_namespace: Option<String>,
    /// An image override (`name=newName:tag`, `name:tag`, `name@digest`);
    /// repeatable.
    #[arg(long, value_name = "IMAGE")]
    image: Vec<String>,
    /// A label added to every object (and selectors); repeatable.
    #[arg(long, value_name = "KEY=VALUE", value_parser = key_value)]
    common_label: Vec<(String, String)>,
    /// An annotation added to every object; repeatable.
    #[arg(long, value_name = "KEY=VALUE", value_parser = key_value)]
    common_annotation: Vec<(String, String)>,
}

/// `KEY=VALUE`, split at the first `=`.
fn key_value(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((key, value)) if !key.is_empty() => Ok((key.to_string(), value.to_string())),
        _ => Err(format!("{text:?} is not KEY=VALUE")),
    }
}

impl DirectoryArgs {
    /// `directory`, when a flag sets any of its options.
    fn source(self) -> Option<DirectorySource> {
        let vars = |pairs: Vec<(String, String)>, code: bool| {
            pairs
                .into_iter()
                .map(move |(name, value)| JsonnetVar { name, value, code })
        };
        let jsonnet = JsonnetSource {
            ext_vars: vars(self.ext_var, false)
                .chain(vars(self.ext_code, true))
                .collect(),
            tlas: vars(self.tla, false)
                .chain(vars(self.tla_code, true))
                .collect(),
            libs: self.jsonnet_lib,
        };
        let jsonnet = (jsonnet != JsonnetSource::default()).then_some(jsonnet);
        let directory = DirectorySource {
            recurse: self.recurse,
            include: self.include,
            exclude: self.exclude,
            jsonnet,
        };
        (directory != DirectorySource::default()).then_some(directory)
    }
}

impl HelmArgs {
    /// `helm`, when a flag sets any of its options.
    fn source(self) -> Result<Option<HelmSource>> {
        let values_object = self
            .values_object
            .map(|text| {
                let value: serde_json::Value = serde_yaml::from_str(&text)
                    .context("--values-object is not valid JSON or YAML")?;
                if !value.is_object() {
                    bail!("--values-object must be an object, such as '{{\"replicas\": 2}}'");
                }
                Ok(value)
            })
            .transpose()?;
        let parameters = |pairs: Vec<(String, String)>, force_string: bool| {
            pairs.into_iter().map(move |(name, value)| HelmParameter {
                name,
                value,
                force_string,
            })
        };
        let helm = HelmSource {
            release_name: self.release_name,
            value_files: self.values,
            values_object,
            parameters: parameters(self.set, false)
                .chain(parameters(self.set_string, true))
                .collect(),
            file_parameters: self
                .set_file
                .into_iter()
                .map(|(name, path)| HelmFileParameter { name, path })
                .collect(),
            skip_crds: self.skip_crds,
            skip_tests: self.skip_tests,
            ignore_missing_value_files: self.ignore_missing_value_files,
            ..Default::default()
        };
        Ok((helm != HelmSource::default()).then_some(helm))
    }
}

impl KustomizeArgs {
    /// `kustomize`, when a flag sets any of its options.
    fn source(self) -> Option<KustomizeSource> {
        let map = |pairs: Vec<(String, String)>| pairs.into_iter().collect::<BTreeMap<_, _>>();
        let kustomize = KustomizeSource {
            name_prefix: self.name_prefix,
            name_suffix: self.name_suffix,
            namespace: self.kustomize_namespace,
            images: self.image,
            common_labels: map(self.common_label),
            common_annotations: map(self.common_annotation),
            ..Default::default()
        };
        (kustomize != KustomizeSource::default()).then_some(kustomize)
    }
}

/// The application to render and its name: from `--app`, or built from
/// the flags as Argo CD's CLI builds one (a flag of a renderer makes its
/// options present, so the source is of that kind).
fn application(
    file: Option<&Path>,
    name: Option<String>,
    source: SourceArgs,
    flags: (DirectoryArgs, HelmArgs, KustomizeArgs),
) -> Result<(String, ApplicationSpec)> {
    if let Some(file) = file {
        return from_file(file, name.as_deref());
    }
    let (directory, helm, kustomize) = flags;
    let spec = ApplicationSpec {
        source: Some(ApplicationSource {
            repo_url: source.repo.context("--repo (or --app) is required")?,
            target_revision: source.revision,
            path: source.path,
            chart: source.chart,
            directory: directory.source(),
            helm: helm.source()?,
            kustomize: kustomize.source(),
            ..Default::default()
        }),
        destination: ApplicationDestination {
            namespace: source.namespace,
            ..Default::default()
        },
        ..Default::default()
    };
    Ok((name.unwrap_or_else(|| DEFAULT_NAME.into()), spec))
}

/// The Application named `name` (or the first) of `file`.
fn from_file(file: &Path, name: Option<&str>) -> Result<(String, ApplicationSpec)> {
    // The message already holds the error's causes (as below).
    let declared = registry::load_files(&[file.to_path_buf()]).map_err(|e| anyhow!("{e}"))?;
    let names = || {
        declared
            .iter()
            .filter_map(|d| d.app.metadata.name.clone())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let chosen = match name {
        Some(name) => declared
            .iter()
            .find(|d| d.app.metadata.name.as_deref() == Some(name))
            .ok_or_else(|| {
                anyhow!(
                    "{} holds no Application named {name} (it holds: {})",
                    file.display(),
                    names()
                )
            })?,
        None => declared.first().ok_or_else(|| {
            anyhow!(
                "{} holds no Application (apiVersion argoproj.io/v1alpha1, kind Application)",
                file.display()
            )
        })?,
    };
    let app_name = chosen.app.metadata.name.clone().unwrap_or_default();
    // As the controller: a source field Plumb does not know could change
    // what is rendered, so nothing is rendered rather than something else.
    let source_fields = chosen.unsupported_source_fields();
    if !source_fields.is_empty() {
        bail!(
            "application {app_name}: {} not supported by Plumb; remove it to render",
            source_fields.join(", ")
        );
    }
    Ok((app_name, chosen.app.spec.clone()))
}

/// Renders what `args` name and returns the manifests as a YAML stream.
///
/// # Errors
///
/// A bad flag or Application file, a repository or chart that cannot be
/// fetched, a source that does not render.
pub fn render(args: RenderArgs) -> Result<String> {
    let RenderArgs {
        app,
        name,
        source,
        directory,
        helm,
        kustomize,
        kube_version,
        api_versions,
        tools,
        data_dir,
    } = args;
    let (name, spec) = application(app.as_deref(), name, source, (directory, helm, kustomize))?;
    let capabilities = Capabilities {
        kube_version: kube_version.unwrap_or_default(),
        api_versions,
    };
    std::fs::create_dir_all(&data_dir)
        .with_context(|| format!("cannot create {}", data_dir.display()))?;
    // The repository cache is shared by every `plumb render` of the data
    // folder (as before); the tools' folder is this process's own, since
    // `Tools::new` clears the checkouts and scratch files it finds there.
    let tools_root = tempfile::Builder::new()
        .prefix("tools-")
        .tempdir_in(&data_dir)
        .with_context(|| format!("cannot create a folder in {}", data_dir.display()))?;
    let tools = Tools::new(tools.options(tools_root.path().to_path_buf()))
        .with_context(|| format!("cannot create {}", tools_root.path().display()))?;
    let repos = RepoCache::new(&data_dir);
    let manifests = app::render_offline(
        &repos,
        &tools,
        &OfflineApp {
            app: &name,
            spec: &spec,
            capabilities: &capabilities,
            max_file_size: ControllerOptions::default().max_manifest_size,
        },
    )
    // The message already holds the error's causes, which `{:#}` in `main`
    // would print a second time.
    .map_err(|e| anyhow!("{e}"))?;
    let mut text = String::new();
    for manifest in manifests {
        text.push_str("---\n");
        text.push_str(&serde_yaml::to_string(&manifest.object)?);
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: RenderArgs,
    }

    fn spec(flags: &[&str]) -> ApplicationSpec {
        let cli = Cli::try_parse_from(
            ["render", "--repo", "https://git.example/r"]
                .iter()
                .chain(flags),
        )
        .expect("the flags parse");
        let RenderArgs {
            app,
            name,
            source,
            directory,
            helm,
            kustomize,
            ..
        } = cli.args;
        let (app_name, spec) =
            application(app.as_deref(), name, source, (directory, helm, kustomize))
                .expect("an application");
        assert_eq!(app_name, DEFAULT_NAME);
        spec
    }

    #[test]
    fn without_a_renderers_flag_the_folder_decides() {
        let spec = spec(&[
            "--path",
            "apps/web",
            "--revision",
            "v1",
            "--namespace",
            "shop",
        ]);
        let source = spec.source.expect("a source");
        assert_eq!(source.path.as_deref(), Some("apps/web"));
        assert_eq!(source.target_revision.as_deref(), Some("v1"));
        assert_eq!(spec.destination.namespace.as_deref(), Some("shop"));
        assert_eq!(
            (source.helm, source.kustomize, source.directory),
            (None, None, None)
        );
    }

    #[test]
    fn a_renderers_flag_makes_its_options_present() {
        let helm = spec(&["--set", "a.b=1,2", "--set-string", "c=d=e"])
            .source
            .expect("source");
        let parameters = helm.helm.expect("helm options").parameters;
        assert_eq!(
            parameters
                .iter()
                .map(|p| (p.name.as_str(), p.value.as_str(), p.force_string))
                .collect::<Vec<_>>(),
            [("a.b", "1,2", false), ("c", "d=e", true)]
        );
        let kustomize = spec(&["--common-label", "team=web"])
            .source
            .expect("source");
        assert_eq!(
            kustomize
                .kustomize
                .expect("kustomize options")
                .common_labels,
            BTreeMap::from([("team".to_string(), "web".to_string())])
        );
        let jsonnet = spec(&["--tla-code", "n=1+1", "--ext-var", "env=dev"])
            .source
            .expect("source");
        let jsonnet = jsonnet
            .directory
            .expect("directory options")
            .jsonnet
            .expect("jsonnet");
        assert_eq!(
            (jsonnet.tlas[0].value.as_str(), jsonnet.tlas[0].code),
            ("1+1", true)
        );
        assert_eq!(
            (jsonnet.ext_vars[0].value.as_str(), jsonnet.ext_vars[0].code),
            ("dev", false)
        );
    }

    #[test]
    fn a_pair_without_an_equals_sign_is_refused() {
        assert!(Cli::try_parse_from(["render", "--repo", "r", "--set", "novalue"]).is_err());
        assert!(Cli::try_parse_from(["render", "--repo", "r", "--tla", "=x"]).is_err());
    }

    #[test]
    fn values_object_must_be_an_object() {
        let cli = Cli::try_parse_from(["render", "--repo", "r", "--values-object", "[1]"])
            .expect("the flags parse");
        let err = cli.args.helm.source().expect_err("not an object");
        assert!(err.to_string().contains("--values-object"), "{err}");
    }
}
