//! The benchmark's inputs: a real git repository (built with the `git`
//! binary) holding N application folders of M objects each, and the
//! `--apps` file of N Argo CD Applications pointing at it.
//!
//! Not here: applying anything; the objects are also returned as JSON so the
//! ceiling loop applies exactly what Plumb and kubectl read from the files.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};

/// Which objects each application folder holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Objects {
    /// One ConfigMap of about 2 KB.
    Single,
    /// ConfigMap + Service + ServiceAccount + a Deployment scaled to 0.
    Full,
    /// One ConfigMap, as in `single`, rendered by `helm template` from one
    /// chart shared by every application, each with a value file of its own.
    Helm,
}

impl Objects {
    /// Objects per application.
    pub fn per_app(self) -> usize {
        match self {
            Objects::Single | Objects::Helm => 1,
            Objects::Full => 4,
        }
    }
}

/// The generated repository and applications.
pub struct Fixture {
    /// The working copy (commits are made here; Plumb fetches it).
    pub repo: PathBuf,
    /// `file://` URL of `repo`, as the Applications name it.
    pub repo_url: String,
    /// The `--apps` file.
    pub apps_file: PathBuf,
    /// The Applications, as written to the apps file.
    pub applications: Vec<Value>,
    /// Application names, index-aligned with `objects`.
    pub app_names: Vec<String>,
    /// Destination namespace of each application.
    pub app_namespaces: Vec<String>,
    /// The objects of each application, without namespace.
    pub objects: Vec<Vec<Value>>,
}

/// Application folder of app `i` inside the repository.
pub fn app_dir(i: usize) -> String {
    format!("apps/app-{i:05}")
}

/// The chart every application of the `helm` fixture renders.
pub const CHART_DIR: &str = "chart";

/// The value file of app `i` in the `helm` fixture, relative to the chart.
pub fn values_file(i: usize) -> String {
    format!("../values/app-{i:05}.yaml")
}

/// The chart's one template: the ConfigMap of [`configmap`], from values.
const CHART_TEMPLATE: &str = "apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ .Values.name }}
  labels:
    app.kubernetes.io/part-of: plumb-bench
data:
  rev: {{ .Values.rev | quote }}
  payload: {{ .Values.payload | quote }}
";

/// The values that make the chart render `configmap(i, rev)`.
fn values_of(i: usize, rev: u32) -> Value {
    let cm = configmap(i, rev);
    json!({"name": cm["metadata"]["name"], "rev": rev.to_string(), "payload": cm["data"]["payload"]})
}

/// Writes app `i`'s value file of the `helm` fixture at revision `rev`.
fn write_values(repo: &Path, i: usize, rev: u32) -> Result<()> {
    let path = repo.join(CHART_DIR).join(values_file(i));
    let text = serde_yaml::to_string(&values_of(i, rev)).context("serialize values")?;
    std::fs::write(&path, text).with_context(|| format!("write {}", path.display()))
}

/// A chart whose template renders `count` ConfigMaps (for the render
/// measurement), in `dir`.
pub fn write_big_chart(dir: &Path, count: usize) -> Result<()> {
    std::fs::create_dir_all(dir.join("templates"))?;
    std::fs::write(
        dir.join("Chart.yaml"),
        "apiVersion: v2\nname: big\nversion: 0.1.0\n",
    )?;
    std::fs::write(dir.join("values.yaml"), format!("count: {count}\n"))?;
    std::fs::write(
        dir.join("templates/configmaps.yaml"),
        "{{- range $i := until (int .Values.count) }}
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: big-{{ $i }}
  labels:
    app.kubernetes.io/part-of: plumb-bench
data:
  index: {{ $i | quote }}
  payload: {{ printf \"line of configmap %05d: %s\" $i (repeat 32 \"x\") | quote }}
{{- end }}
",
    )?;
    Ok(())
}

/// About 2 KB of text, distinct per application and revision.
fn payload(i: usize) -> String {
    (0..32)
        .map(|line| format!("line {line:02} of application {i:05}: {}\n", "x".repeat(32)))
        .collect()
}

/// The ConfigMap of app `i` at revision `rev`; the harness changes `rev` to
/// make a commit that changes exactly one object.
pub fn configmap(i: usize, rev: u32) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": format!("cm-{i:05}"),
            "labels": {"app.kubernetes.io/part-of": "plumb-bench"}
        },
        "data": {"rev": rev.to_string(), "payload": payload(i)}
    })
}

/// The objects of app `i`.
fn objects_of(i: usize, objects: Objects) -> Vec<Value> {
    let mut out = vec![configmap(i, 0)];
    if objects == Objects::Full {
        let name = format!("app-{i:05}");
        let labels = json!({"app.kubernetes.io/name": name});
        out.push(json!({
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": {"name": name}
        }));
        out.push(json!({
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": name, "labels": labels},
            "spec": {
                "selector": labels,
                "ports": [{"name": "http", "port": 80, "targetPort": 8080, "protocol": "TCP"}]
            }
        }));
        out.push(json!({
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": name, "labels": labels},
            "spec": {
                "replicas": 0,
                "selector": {"matchLabels": labels},
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {
                        "serviceAccountName": name,
                        "containers": [{
                            "name": "app",
                            "image": "registry.k8s.io/pause:3.9",
                            "ports": [{"containerPort": 8080, "protocol": "TCP"}]
                        }]
                    }
                }
            }
        }));
    }
    out
}

/// File name of an object inside its application folder.
fn file_name(object: &Value) -> String {
    let kind = object["kind"].as_str().unwrap_or("object").to_lowercase();
    format!("{kind}.yaml")
}

/// Writes one object as YAML.
pub fn write_object(dir: &Path, object: &Value) -> Result<()> {
    let path = dir.join(file_name(object));
    let text = serde_yaml::to_string(object).context("serialize an object")?;
    std::fs::write(&path, text).with_context(|| format!("write {}", path.display()))
}

/// Runs git in `repo`; fails with its stderr.
pub fn git(repo: &Path, args: &[&str]) -> Result<String> {
    let output = Command::new("git")
        .arg("-C")
        .arg(repo)
        .args(args)
        .env("GIT_AUTHOR_NAME", "plumb-bench")
        .env("GIT_AUTHOR_EMAIL", "bench@plumb.invalid")
        .env("GIT_COMMITTER_NAME", "plumb-bench")
        .env("GIT_COMMITTER_EMAIL", "bench@plumb.invalid")
        .output()
        .with_context(|| format!("run git {args:?} (is git installed?)"))?;
    if !output.status.success() {
        bail!(
            "git {args:?} failed: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&output.stdout).trim().to_owned())
}

/// Builds the repository and the apps file under `work`.
///
/// Applications are named `b<run>-<i>`, their destinations are spread over
/// `namespaces` namespaces `bench-<run>-<k>`, with automated sync, prune and
/// `CreateNamespace=true`.
pub fn generate(
    work: &Path,
    run: &str,
    apps: usize,
    objects: Objects,
    namespaces: usize,
) -> Result<Fixture> {
    let repo = work.join("repo");
    std::fs::create_dir_all(&repo).with_context(|| format!("create {}", repo.display()))?;
    git(&repo, &["init", "-q", "-b", "main"])?;
    let mut all = Vec::with_capacity(apps);
    if objects == Objects::Helm {
        let chart = repo.join(CHART_DIR);
        std::fs::create_dir_all(chart.join("templates"))?;
        std::fs::create_dir_all(repo.join("values"))?;
        std::fs::write(
            chart.join("Chart.yaml"),
            "apiVersion: v2\nname: bench\nversion: 0.1.0\n",
        )?;
        std::fs::write(chart.join("templates/configmap.yaml"), CHART_TEMPLATE)?;
        for i in 0..apps {
            write_values(&repo, i, 0)?;
            all.push(vec![configmap(i, 0)]);
        }
    } else {
        for i in 0..apps {
            let dir = repo.join(app_dir(i));
            std::fs::create_dir_all(&dir).with_context(|| format!("create {}", dir.display()))?;
            let objs = objects_of(i, objects);
            for object in &objs {
                write_object(&dir, object)?;
            }
            all.push(objs);
        }
    }
    git(&repo, &["add", "-A"])?;
    git(
        &repo,
        &["commit", "-q", "-m", "bench: initial applications"],
    )?;
    let repo = repo
        .canonicalize()
        .with_context(|| format!("canonicalize {}", repo.display()))?;
    let repo_url = format!("file://{}", repo.display());

    let mut app_names = Vec::with_capacity(apps);
    let mut app_namespaces = Vec::with_capacity(apps);
    let mut docs = String::new();
    let mut applications = Vec::with_capacity(apps);
    for i in 0..apps {
        let name = format!("b{run}-{i:05}");
        let namespace = format!("bench-{run}-{}", i % namespaces.max(1));
        let source = if objects == Objects::Helm {
            json!({"repoURL": repo_url, "targetRevision": "main", "path": CHART_DIR,
                "helm": {"valueFiles": [values_file(i)]}})
        } else {
            json!({"repoURL": repo_url, "targetRevision": "main", "path": app_dir(i)})
        };
        let app = json!({
            "apiVersion": "argoproj.io/v1alpha1",
            "kind": "Application",
            "metadata": {"name": name, "namespace": "plumb"},
            "spec": {
                "project": "default",
                "source": source,
                "destination": {"server": "https://kubernetes.default.svc", "namespace": namespace},
                "syncPolicy": {
                    "automated": {"prune": true},
                    "syncOptions": ["CreateNamespace=true"]
                }
            }
        });
        docs.push_str("---\n");
        docs.push_str(&serde_yaml::to_string(&app).context("serialize an Application")?);
        applications.push(app);
        app_names.push(name);
        app_namespaces.push(namespace);
    }
    // In a folder of its own: Plumb watches the folder of an `--apps` file,
    // and the work folder also holds its data dir and the repository.
    let apps_dir = work.join("apps");
    std::fs::create_dir_all(&apps_dir).with_context(|| format!("create {}", apps_dir.display()))?;
    let apps_file = apps_dir.join("apps.yaml");
    std::fs::write(&apps_file, docs).with_context(|| format!("write {}", apps_file.display()))?;
    Ok(Fixture {
        repo,
        repo_url,
        apps_file,
        applications,
        app_names,
        app_namespaces,
        objects: all,
    })
}

/// Changes app `i`'s ConfigMap to revision `rev` and commits; returns the
/// new commit.
pub fn commit_change(fixture: &Fixture, i: usize, rev: u32) -> Result<String> {
    if fixture.repo.join(CHART_DIR).is_dir() {
        write_values(&fixture.repo, i, rev)?;
    } else {
        let dir = fixture.repo.join(app_dir(i));
        write_object(&dir, &configmap(i, rev))?;
    }
    git(
        &fixture.repo,
        &[
            "commit",
            "-q",
            "-a",
            "-m",
            &format!("bench: app {i} rev {rev}"),
        ],
    )?;
    git(&fixture.repo, &["rev-parse", "HEAD"])
}
