//! `plumb render` and `plumb crd`, offline: the real binary on real git
//! repositories (and a chart repository on loopback), no cluster. Helm and
//! Kustomize are the real ones from `PATH` (`scripts/test` puts the folder
//! `scripts/tools` prints on it).

mod support;

use std::io::Read;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};
use support::{ChartServer, GitRepo, str_at};

fn plumb() -> Command {
    Command::new(env!("CARGO_BIN_EXE_plumb"))
}

/// Runs `plumb render ARGS --data-dir <a new folder>`.
fn render(args: &[&str]) -> Result<Output> {
    let cache = tempfile::tempdir()?;
    let out = plumb()
        .arg("render")
        .args(args)
        .arg("--data-dir")
        .arg(cache.path())
        .output()?;
    let left: Vec<_> = std::fs::read_dir(cache.path())?
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|name| name.starts_with("tools-"))
        .collect();
    assert!(
        left.is_empty(),
        "the tools' folder of the run is removed: {left:?}"
    );
    Ok(out)
}

/// The documents `plumb render ARGS` prints; fails with its stderr when it
/// fails.
fn rendered(args: &[&str]) -> Result<Vec<Value>> {
    let out = render(args)?;
    if !out.status.success() {
        bail!(
            "plumb render {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let text = String::from_utf8(out.stdout)?;
    Ok(serde_yaml::Deserializer::from_str(&text)
        .map(serde::Deserialize::deserialize)
        .collect::<Result<_, _>>()?)
}

/// The stderr of `plumb render ARGS`, which must fail with status 2 and
/// print nothing on stdout.
fn render_error(args: &[&str]) -> Result<String> {
    let out = render(args)?;
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        out.stdout.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(!err.contains("panicked"), "{err}");
    Ok(err)
}

/// The object of `kind` named `name` among `docs`.
fn object<'a>(docs: &'a [Value], kind: &str, name: &str) -> Result<&'a Value> {
    docs.iter()
        .find(|d| d["kind"] == kind && d["metadata"]["name"] == name)
        .with_context(|| format!("no {kind} {name} in {docs:#?}"))
}

/// Runs the real `helm` from `PATH` with its homes in `home`, so nothing of
/// the user's Helm configuration is read or written.
fn helm(home: &Path, args: &[&str]) -> Result<()> {
    let out = Command::new("helm")
        .args(args)
        .env("HELM_CONFIG_HOME", home.join("config"))
        .env("HELM_CACHE_HOME", home.join("cache"))
        .env("HELM_DATA_HOME", home.join("data"))
        .output()
        .context("cannot run helm: run the tests with scripts/test, which puts it on PATH")?;
    if !out.status.success() {
        bail!(
            "helm {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}

#[test]
fn render_prints_the_normalized_manifests_of_a_repository_folder() -> Result<()> {
    let repo = GitRepo::new(Some("e2e/basic"))?;
    let cache = tempfile::tempdir()?;
    let out = plumb()
        .args(["render", "--repo", &repo.url(), "--path", ".", "--data-dir"])
        .arg(cache.path())
        .output()?;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout)?;
    let docs: Vec<serde_json::Value> = serde_yaml::Deserializer::from_str(&text)
        .map(serde::Deserialize::deserialize)
        .collect::<Result<_, _>>()?;
    let kinds: Vec<&str> = docs
        .iter()
        .map(|d| d["kind"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(kinds, ["ConfigMap", "Deployment", "Secret", "Service"]);
    assert_eq!(
        docs[3]["spec"]["ports"][0]["protocol"], "TCP",
        "protocol defaulted"
    );
    Ok(())
}

#[test]
fn render_of_a_missing_repository_fails_with_a_clear_message() -> Result<()> {
    let cache = tempfile::tempdir()?;
    let out = plumb()
        .args([
            "render",
            "--repo",
            "/nonexistent/plumb-repo",
            "--path",
            ".",
            "--data-dir",
        ])
        .arg(cache.path())
        .output()?;
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("/nonexistent/plumb-repo") && !err.contains("panicked"),
        "{err}"
    );
    Ok(())
}

#[test]
fn output_into_a_closed_pipe_is_not_a_crash() -> Result<()> {
    let mut child = plumb()
        .arg("crd")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    drop(child.stdout.take());
    let status = child.wait()?;
    let mut err = String::new();
    child.stderr.take().map(|mut e| e.read_to_string(&mut err));
    assert!(status.success(), "{err}");
    Ok(())
}

#[test]
fn render_builds_a_kustomize_overlay_with_the_kustomize_flags() -> Result<()> {
    let repo = GitRepo::new(Some("e2e/kustomize"))?;
    let url = repo.url();
    let docs = rendered(&[
        "--repo",
        &url,
        "--path",
        "overlays/prod",
        "--revision",
        "main",
        "--name-suffix",
        "-v2",
        "--image",
        "nginx:1.29",
        "--common-label",
        "team=shop",
        "--common-annotation",
        "owner=plumb",
    ])?;
    assert_eq!(docs.len(), 2, "{docs:#?}");
    let cm = object(&docs, "ConfigMap", "prod-web-config-v2")?;
    assert_eq!(
        str_at(cm, "/data/env"),
        "prod",
        "the overlay's patch: {cm:#}"
    );
    assert_eq!(str_at(cm, "/data/greeting"), "hello", "the base: {cm:#}");
    assert_eq!(str_at(cm, "/metadata/labels/team"), "shop", "{cm:#}");
    assert_eq!(str_at(cm, "/metadata/annotations/owner"), "plumb", "{cm:#}");
    let deployment = object(&docs, "Deployment", "prod-web-v2")?;
    assert_eq!(deployment["spec"]["replicas"], 3, "{deployment:#}");
    assert_eq!(
        str_at(deployment, "/spec/template/spec/containers/0/image"),
        "nginx:1.29",
        "--image over the overlay's images: {deployment:#}"
    );
    Ok(())
}

#[test]
fn render_templates_a_helm_chart_with_value_files_set_and_capabilities() -> Result<()> {
    let repo = GitRepo::new(Some("e2e/helm"))?;
    repo.write(
        "charts/web/templates/capabilities.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Release.Name }}-capabilities\n\
         data:\n  kube: {{ .Capabilities.KubeVersion.Version | quote }}\n\
         \x20 widgets: {{ .Capabilities.APIVersions.Has \"example.com/v1/Widget\" | quote }}\n",
    )?;
    repo.commit("capabilities")?;
    let url = repo.url();
    let docs = rendered(&[
        "--repo",
        &url,
        "--path",
        "charts/web",
        "--namespace",
        "prod",
        "--release-name",
        "shop",
        "--values",
        "values-prod.yaml",
        "--set",
        "shape=hexagon",
        "--set",
        "count=5",
        "--set-string",
        "flag=true",
        "--kube-version",
        "1.30.2",
        "--api-versions",
        "example.com/v1/Widget",
    ])?;
    let cm = object(&docs, "ConfigMap", "shop-settings")?;
    for (key, want, why) in [
        ("tier", "free", "the chart's values.yaml"),
        (
            "color",
            "red",
            "--values values-prod.yaml over the defaults",
        ),
        ("shape", "hexagon", "--set over the value file"),
        ("countKind", "int64", "--set is typed"),
        ("flag", "true", "--set-string"),
        ("flagKind", "string", "--set-string keeps a string"),
        ("namespace", "prod", "--namespace is the release namespace"),
    ] {
        assert_eq!(str_at(cm, &format!("/data/{key}")), want, "{why}: {cm:#}");
    }
    let sidecar = object(&docs, "ConfigMap", "shop-sidecar")?;
    assert_eq!(str_at(sidecar, "/data/message"), "from values-prod");
    let deployment = object(&docs, "Deployment", "shop-web")?;
    assert_eq!(deployment["spec"]["replicas"], 2, "{deployment:#}");
    let caps = object(&docs, "ConfigMap", "shop-capabilities")?;
    assert_eq!(str_at(caps, "/data/kube"), "v1.30.2", "{caps:#}");
    assert_eq!(str_at(caps, "/data/widgets"), "true", "{caps:#}");
    Ok(())
}

#[test]
fn render_pulls_a_chart_from_a_chart_repository() -> Result<()> {
    let (served, home) = (tempfile::tempdir()?, tempfile::tempdir()?);
    let server = ChartServer::start(served.path())?;
    let chart = support::root().join("fixtures/e2e/helm/charts/web");
    let destination = served.path().to_string_lossy().into_owned();
    helm(
        home.path(),
        &[
            "package",
            &chart.to_string_lossy(),
            "--destination",
            &destination,
        ],
    )?;
    helm(
        home.path(),
        &["repo", "index", &destination, "--url", &server.url],
    )?;
    let docs = rendered(&[
        "--repo",
        &server.url,
        "--chart",
        "web",
        "--set",
        "color=teal",
    ])?;
    let cm = object(&docs, "ConfigMap", "render-settings")?;
    assert_eq!(
        str_at(cm, "/data/color"),
        "teal",
        "the newest version, the release named after the application: {cm:#}"
    );
    object(&docs, "Deployment", "render-web")?;
    Ok(())
}

#[test]
fn render_evaluates_jsonnet_with_tlas_ext_vars_and_libraries() -> Result<()> {
    let repo = GitRepo::new(Some("e2e/jsonnet"))?;
    let url = repo.url();
    let docs = rendered(&[
        "--repo",
        &url,
        "--path",
        "app",
        "--tla-code",
        "replicas=3",
        "--tla",
        "color=teal",
        "--ext-var",
        "env=staging",
        "--jsonnet-lib",
        "lib",
    ])?;
    let cm = object(&docs, "ConfigMap", "web-config")?;
    for (key, want, why) in [
        ("color", "teal", "--tla"),
        ("replicas", "3", "--tla-code"),
        ("env", "staging", "--ext-var"),
        ("greeting", "hello from util.libsonnet", "--jsonnet-lib"),
    ] {
        assert_eq!(str_at(cm, &format!("/data/{key}")), want, "{why}: {cm:#}");
    }
    let deployment = object(&docs, "Deployment", "web")?;
    assert_eq!(
        deployment["spec"]["replicas"], 3,
        "--tla-code passes a number: {deployment:#}"
    );
    Ok(())
}

#[test]
fn render_of_an_application_file_with_a_value_file_from_a_second_source() -> Result<()> {
    let charts = GitRepo::new(Some("e2e/helm"))?;
    let values = GitRepo::new(None)?;
    values.write(
        "envs/prod.yaml",
        "color: purple\nsidecar:\n  message: from the values repository\n",
    )?;
    values.commit("prod values")?;
    let application = |name: &str, spec: Value| {
        json!({
            "apiVersion": "argoproj.io/v1alpha1",
            "kind": "Application",
            "metadata": {"name": name, "namespace": "plumb"},
            "spec": spec,
        })
    };
    let other = application(
        "other",
        json!({"source": {"repoURL": charts.url(), "path": "charts/web"}}),
    );
    let multi = application(
        "multi",
        json!({
            "destination": {"server": "https://kubernetes.default.svc", "namespace": "shop"},
            "sources": [
                {
                    "repoURL": charts.url(),
                    "targetRevision": "main",
                    "path": "charts/web",
                    "helm": {"valueFiles": ["$values/envs/prod.yaml"]},
                },
                {"repoURL": values.url(), "targetRevision": "main", "ref": "values"},
            ],
        }),
    );
    let dir = tempfile::tempdir()?;
    let file = dir.path().join("apps.yaml");
    std::fs::write(
        &file,
        format!(
            "{}---\n{}",
            serde_yaml::to_string(&other)?,
            serde_yaml::to_string(&multi)?
        ),
    )?;
    let file = file.to_string_lossy();
    let docs = rendered(&["--app", &file, "--name", "multi"])?;
    let cm = object(&docs, "ConfigMap", "multi-settings")?;
    assert_eq!(
        str_at(cm, "/data/color"),
        "purple",
        "the value file of the second source: {cm:#}"
    );
    assert_eq!(str_at(cm, "/data/size"), "small", "the chart's defaults");
    assert_eq!(
        str_at(cm, "/data/namespace"),
        "shop",
        "the destination namespace: {cm:#}"
    );
    let sidecar = object(&docs, "ConfigMap", "multi-sidecar")?;
    assert_eq!(
        str_at(sidecar, "/data/message"),
        "from the values repository"
    );
    assert_eq!(docs.len(), 3, "the ref source renders nothing: {docs:#?}");

    let first = rendered(&["--app", &file])?;
    object(&first, "ConfigMap", "other-settings").context("the first Application")?;
    let err = render_error(&["--app", &file, "--name", "missing"])?;
    assert!(
        err.contains("no Application named missing") && err.contains("other, multi"),
        "{err}"
    );
    Ok(())
}

#[test]
fn render_without_helm_names_the_helm_bin_flag() -> Result<()> {
    let repo = GitRepo::new(Some("e2e/helm"))?;
    let url = repo.url();
    let err = render_error(&[
        "--repo",
        &url,
        "--path",
        "charts/web",
        "--helm-bin",
        "/nonexistent/helm",
    ])?;
    assert!(
        err.contains("charts/web") && err.contains("--helm-bin"),
        "the message names the source and the flag: {err}"
    );
    Ok(())
}

#[test]
fn render_of_a_failing_chart_template_prints_helms_error() -> Result<()> {
    let repo = GitRepo::new(Some("e2e/helm"))?;
    repo.write(
        "charts/web/templates/broken.yaml",
        "{{ fail \"the chart refuses these values\" }}\n",
    )?;
    repo.commit("broken template")?;
    let url = repo.url();
    let err = render_error(&["--repo", &url, "--path", "charts/web"])?;
    assert!(
        err.contains("charts/web") && err.contains("the chart refuses these values"),
        "the message names the source and says what Helm said: {err}"
    );
    assert_eq!(
        err.matches("the chart refuses these values").count(),
        1,
        "the cause is printed once: {err}"
    );
    Ok(())
}

#[test]
fn render_builds_file_dependencies_and_refuses_those_out_of_the_repository() -> Result<()> {
    let repo = GitRepo::new(None)?;
    repo.write(
        "common/Chart.yaml",
        "apiVersion: v2\nname: common\nversion: 0.1.0\n",
    )?;
    repo.write(
        "common/templates/cm.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: '{{ .Release.Name }}-common'}\ndata: {from: common}\n",
    )?;
    let chart = |repository: &str| {
        format!(
            "apiVersion: v2\nname: app\nversion: 0.1.0\ndependencies:\n  - name: common\n    version: 0.1.0\n    repository: {repository}\n"
        )
    };
    repo.write("app/Chart.yaml", &chart("file://../common"))?;
    repo.write(
        "app/templates/cm.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: '{{ .Release.Name }}-app'}\ndata: {from: app}\n",
    )?;
    repo.commit("a chart with a file:// dependency")?;
    let url = repo.url();
    // `charts/` does not hold the dependency: Plumb runs `helm dependency
    // build` on its checkout first.
    let docs = rendered(&["--repo", &url, "--path", "app", "--name", "web"])?;
    object(&docs, "ConfigMap", "web-app")?;
    object(&docs, "ConfigMap", "web-common")?;

    repo.write("app/Chart.yaml", &chart("file://../../../etc"))?;
    repo.commit("a dependency out of the repository")?;
    let err = render_error(&["--repo", &url, "--path", "app"])?;
    assert!(
        err.contains("outside the repository") && err.contains("Chart.yaml dependencies"),
        "{err}"
    );
    Ok(())
}

#[test]
fn render_refuses_a_value_file_out_of_the_repository() -> Result<()> {
    let repo = GitRepo::new(Some("e2e/helm"))?;
    let url = repo.url();
    let err = render_error(&[
        "--repo",
        &url,
        "--path",
        "charts/web",
        "--values",
        "../../../../../etc/passwd",
    ])?;
    assert!(
        err.contains("valueFiles") && err.contains("outside the repository"),
        "{err}"
    );
    assert!(
        !err.contains("root:x:0:0"),
        "nothing of the file is shown: {err}"
    );
    Ok(())
}
