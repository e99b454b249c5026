//! Shared support for end-to-end tests: the real local control plane, a
//! namespace per test, git repositories built with the real `git`, and a real
//! `plumb serve` process.
//!
//! A test that needs the cluster and cannot get one fails with a message
//! saying how to start it; it never passes by skipping.

#![allow(dead_code)] // each test binary uses part of this module

pub mod browser;
pub mod faults;
pub mod replicas;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use kube::api::{Api, DeleteParams, DynamicObject, PostParams};
use kube::core::{ApiResource, GroupVersionKind};
use serde_json::{Value, json};

/// The repository's root.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The kubeconfig of the test cluster: `PLUMB_TEST_KUBECONFIG`, or the local
/// control plane started (once, shared by all test processes through the
/// script's lock) with `scripts/dev-cluster up`.
pub fn kubeconfig() -> PathBuf {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        if let Ok(p) = std::env::var("PLUMB_TEST_KUBECONFIG") {
            return PathBuf::from(p);
        }
        let out = Command::new(root().join("scripts/dev-cluster"))
            .arg("up")
            .stderr(Stdio::inherit())
            .output()
            .unwrap_or_else(|e| panic!("cannot run scripts/dev-cluster up: {e}"));
        assert!(
            out.status.success(),
            "the end-to-end tests need a Kubernetes API server and `scripts/dev-cluster up` failed \
             (see its output above). Start it by hand with `scripts/dev-cluster up`, or point \
             PLUMB_TEST_KUBECONFIG at a cluster's kubeconfig."
        );
        PathBuf::from(
            String::from_utf8_lossy(&out.stdout)
                .trim()
                .lines()
                .last()
                .unwrap_or_default(),
        )
    })
    .clone()
}

/// A client of the test cluster.
pub async fn client() -> kube::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    plumb_engine::cluster::connect(Some(&kubeconfig()), None)
        .await
        .unwrap_or_else(|e| {
            panic!("cannot connect to the test cluster: {e}; is `scripts/dev-cluster up` running?")
        })
}

/// An `ApiResource` for a kind.
pub fn resource(group: &str, version: &str, kind: &str, plural: &str) -> ApiResource {
    ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(group, version, kind), plural)
}

/// The `configmaps` resource.
pub fn configmaps() -> ApiResource {
    resource("", "v1", "ConfigMap", "configmaps")
}

/// The `applications.argoproj.io` resource.
pub fn applications() -> ApiResource {
    resource("argoproj.io", "v1alpha1", "Application", "applications")
}

/// The `applicationsets.argoproj.io` resource.
pub fn appsets() -> ApiResource {
    resource(
        "argoproj.io",
        "v1alpha1",
        "ApplicationSet",
        "applicationsets",
    )
}

/// The string at a JSON pointer, or `""`.
pub fn str_at<'a>(v: &'a Value, pointer: &str) -> &'a str {
    v.pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or_default()
}

/// A namespace of its own for one test, deleted when dropped.
pub struct TestNamespace {
    pub name: String,
}

impl TestNamespace {
    /// A new, unique namespace name (not created: Plumb's CreateNamespace or
    /// the test creates it).
    pub async fn new(prefix: &str) -> TestNamespace {
        let suffix = format!(
            "{:x}",
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default()
                .as_nanos()
        );
        let name = format!("{prefix}-{}", &suffix[suffix.len() - 8..]);
        TestNamespace { name }
    }

    /// Creates the namespace.
    pub async fn create(&self) -> Result<()> {
        let api: Api<DynamicObject> = Api::all_with(
            client().await,
            &resource("", "v1", "Namespace", "namespaces"),
        );
        let ns: DynamicObject = serde_json::from_value(
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": self.name}}),
        )?;
        api.create(&Default::default(), &ns).await?;
        Ok(())
    }
}

impl Drop for TestNamespace {
    fn drop(&mut self) {
        let name = self.name.clone();
        in_drop(move |client| async move {
            // The test's plumb is gone: nothing would remove the resources
            // finalizer of its Application objects, and the namespace would
            // stay Terminating for good.
            let apps: Api<DynamicObject> = Api::namespaced_with(
                client.clone(),
                &name,
                &resource("argoproj.io", "v1alpha1", "Application", "applications"),
            );
            if let Ok(list) = apps.list(&Default::default()).await {
                let clear = kube::api::Patch::Merge(json!({"metadata": {"finalizers": null}}));
                for app in list.items {
                    if let Some(app_name) = app.metadata.name {
                        let _ = apps
                            .patch(&app_name, &kube::api::PatchParams::default(), &clear)
                            .await;
                    }
                }
            }
            let api: Api<DynamicObject> =
                Api::all_with(client, &resource("", "v1", "Namespace", "namespaces"));
            let _ = api.delete(&name, &DeleteParams::background()).await;
        });
    }
}

/// Runs `cleanup` against the cluster from a `Drop`: Drop cannot await; a
/// short-lived runtime on another thread can. It needs a client of its
/// own: a client's connection task runs on the runtime that made it, which
/// this join blocks. Failures are ignored (it is a cleanup).
pub fn in_drop<F, Fut>(cleanup: F)
where
    F: FnOnce(kube::Client) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()>,
{
    let _ = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .ok()?;
        let _ = rustls::crypto::ring::default_provider().install_default();
        rt.block_on(async {
            let client = plumb_engine::cluster::connect(Some(&kubeconfig()), None)
                .await
                .ok()?;
            cleanup(client).await;
            Some(())
        })
    })
    .join();
}

/// Polls `check` until it returns `Some`, or fails after `timeout` with the
/// last observation. Waiting for a condition is not a timing assertion: the
/// timeout only bounds a hang.
pub async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<Option<T>>>,
{
    let start = Instant::now();
    loop {
        let last = match check().await {
            Ok(Some(v)) => return Ok(v),
            Ok(None) => "not yet".to_string(),
            Err(e) => format!("{e:#}"),
        };
        if start.elapsed() > timeout {
            bail!("{what}: still not true after {timeout:?} (last: {last})");
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// A git repository in a temporary folder, driven with the real `git`.
pub struct GitRepo {
    pub dir: tempfile::TempDir,
}

impl GitRepo {
    /// A new repository on branch `main` holding a copy of `fixtures/<tree>`
    /// (or empty when `tree` is `None`), committed.
    pub fn new(tree: Option<&str>) -> Result<GitRepo> {
        let repo = GitRepo {
            dir: tempfile::tempdir()?,
        };
        repo.git(&["init", "-q", "-b", "main"])?;
        if let Some(tree) = tree {
            copy_tree(&root().join("fixtures").join(tree), repo.dir.path())?;
        }
        repo.commit("initial")?;
        Ok(repo)
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// The repository as a `file://` URL.
    pub fn url(&self) -> String {
        format!("file://{}", self.dir.path().display())
    }

    /// Runs git in the repository; returns its output.
    pub fn git(&self, args: &[&str]) -> Result<String> {
        let out = Command::new("git")
            .args(args)
            .current_dir(self.dir.path())
            .env("GIT_AUTHOR_NAME", "Plumb Test")
            .env("GIT_AUTHOR_EMAIL", "test@plumb.invalid")
            .env("GIT_COMMITTER_NAME", "Plumb Test")
            .env("GIT_COMMITTER_EMAIL", "test@plumb.invalid")
            .output()
            .with_context(|| format!("git {args:?}"))?;
        if !out.status.success() {
            bail!(
                "git {args:?} failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    }

    /// Writes a file (creating folders).
    pub fn write(&self, path: &str, contents: &str) -> Result<()> {
        let p = self.dir.path().join(path);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(p, contents)?;
        Ok(())
    }

    /// Removes a file.
    pub fn remove(&self, path: &str) -> Result<()> {
        std::fs::remove_file(self.dir.path().join(path))?;
        Ok(())
    }

    /// Makes `path` a symbolic link to `target` (creating folders).
    pub fn symlink(&self, target: &str, path: &str) -> Result<()> {
        let p = self.dir.path().join(path);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::os::unix::fs::symlink(target, p)?;
        Ok(())
    }

    /// Commits everything; returns the new commit's SHA.
    pub fn commit(&self, message: &str) -> Result<String> {
        self.git(&["add", "-A"])?;
        self.git(&["commit", "-q", "--allow-empty", "-m", message])?;
        self.head()
    }

    /// The SHA of HEAD.
    pub fn head(&self) -> Result<String> {
        self.git(&["rev-parse", "HEAD"])
    }
}

/// Copies the folder `from` into `to`, recursively.
pub fn copy_tree(from: &Path, to: &Path) -> Result<()> {
    for entry in std::fs::read_dir(from).with_context(|| format!("fixture {}", from.display()))? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            std::fs::create_dir_all(&target)?;
            copy_tree(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), target)?;
        }
    }
    Ok(())
}

/// A free TCP port on loopback.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("loopback has a free port")
}

/// A running `plumb serve`, killed when dropped.
pub struct Plumb {
    child: Child,
    pub url: String,
    pub data_dir: PathBuf,
    pub apps_file: PathBuf,
    port: u16,
    log: PathBuf,
    options: ServeOptions,
}

/// How a test's `plumb serve` runs, kept for a restart.
#[derive(Clone)]
struct ServeOptions {
    /// Also manage `Application` objects in this namespace.
    cluster_apps: Option<String>,
    /// `--repo-poll-interval`, in seconds.
    poll_seconds: u64,
    /// More arguments for `plumb serve`.
    extra_args: Vec<String>,
    /// `--kubeconfig`, when not the test cluster's admin one.
    kubeconfig: Option<PathBuf>,
    /// Authentication on; off (`--insecure-disable-auth`) for every test
    /// that is not about it.
    auth: bool,
}

impl ServeOptions {
    /// The admin's identity, no extra arguments.
    fn polling(cluster_apps: Option<String>, poll_seconds: u64) -> ServeOptions {
        ServeOptions {
            cluster_apps,
            poll_seconds,
            extra_args: Vec::new(),
            kubeconfig: None,
            auth: false,
        }
    }
}

/// The poll interval of the tests: short, so commits land quickly.
const TEST_POLL_SECONDS: u64 = 2;

impl Plumb {
    /// Starts `plumb serve` on the test cluster with `apps_yaml` as its
    /// `--apps` file, and waits until its API answers.
    pub async fn start(work: &Path, apps_yaml: &str) -> Result<Plumb> {
        Plumb::start_in(
            work,
            apps_yaml,
            ServeOptions::polling(None, TEST_POLL_SECONDS),
        )
        .await
    }

    /// Like [`Plumb::start`] with a repository poll interval of `seconds`.
    pub async fn start_polling_every(work: &Path, apps_yaml: &str, seconds: u64) -> Result<Plumb> {
        Plumb::start_in(work, apps_yaml, ServeOptions::polling(None, seconds)).await
    }

    /// Like [`Plumb::start`] with more `plumb serve` arguments.
    pub async fn start_with_args(work: &Path, apps_yaml: &str, args: &[&str]) -> Result<Plumb> {
        Plumb::start_as(work, apps_yaml, args, None).await
    }

    /// Like [`Plumb::start_with_args`], talking to the cluster with
    /// `kubeconfig` (another identity) instead of the admin's.
    pub async fn start_as(
        work: &Path,
        apps_yaml: &str,
        args: &[&str],
        kubeconfig: Option<PathBuf>,
    ) -> Result<Plumb> {
        let options = ServeOptions {
            cluster_apps: None,
            poll_seconds: TEST_POLL_SECONDS,
            extra_args: args.iter().map(|a| a.to_string()).collect(),
            kubeconfig,
            auth: false,
        };
        Plumb::start_in(work, apps_yaml, options).await
    }

    /// Like [`Plumb::start`], also managing `Application` objects in
    /// `namespace` of the cluster.
    pub async fn start_watching(work: &Path, apps_yaml: &str, namespace: &str) -> Result<Plumb> {
        let options = ServeOptions::polling(Some(namespace.to_string()), TEST_POLL_SECONDS);
        Plumb::start_in(work, apps_yaml, options).await
    }

    /// Like [`Plumb::start_watching`] with a repository poll interval of
    /// `seconds` (long: nothing but a change compares an application again).
    pub async fn start_watching_polling_every(
        work: &Path,
        apps_yaml: &str,
        namespace: &str,
        seconds: u64,
    ) -> Result<Plumb> {
        let options = ServeOptions::polling(Some(namespace.to_string()), seconds);
        Plumb::start_in(work, apps_yaml, options).await
    }

    /// Like [`Plumb::start_watching`] with more `plumb serve` arguments.
    pub async fn start_watching_with_args(
        work: &Path,
        apps_yaml: &str,
        namespace: &str,
        args: &[&str],
    ) -> Result<Plumb> {
        let mut options = ServeOptions::polling(Some(namespace.to_string()), TEST_POLL_SECONDS);
        options.extra_args = args.iter().map(|a| a.to_string()).collect();
        Plumb::start_in(work, apps_yaml, options).await
    }

    /// Like [`Plumb::start_with_auth`] without `--apps`, talking to the
    /// cluster with `kubeconfig` (an installed ServiceAccount's identity).
    pub async fn start_as_installed(
        work: &Path,
        namespace: &str,
        kubeconfig: PathBuf,
    ) -> Result<Plumb> {
        Plumb::start_as_installed_with(work, namespace, kubeconfig, &[]).await
    }

    /// [`Plumb::start_as_installed`] with more arguments for `plumb serve`.
    pub async fn start_as_installed_with(
        work: &Path,
        namespace: &str,
        kubeconfig: PathBuf,
        args: &[&str],
    ) -> Result<Plumb> {
        let mut options = ServeOptions::polling(Some(namespace.to_string()), TEST_POLL_SECONDS);
        options.kubeconfig = Some(kubeconfig);
        options.extra_args = args.iter().map(|a| a.to_string()).collect();
        options.auth = true;
        Plumb::start_in(work, "", options).await
    }

    /// Like [`Plumb::start_watching_with_args`] with authentication and
    /// RBAC on (accounts in `namespace`).
    pub async fn start_with_auth(
        work: &Path,
        apps_yaml: &str,
        namespace: &str,
        args: &[&str],
    ) -> Result<Plumb> {
        let mut options = ServeOptions::polling(Some(namespace.to_string()), TEST_POLL_SECONDS);
        options.extra_args = args.iter().map(|a| a.to_string()).collect();
        options.auth = true;
        Plumb::start_in(work, apps_yaml, options).await
    }

    async fn start_in(work: &Path, apps_yaml: &str, options: ServeOptions) -> Result<Plumb> {
        let apps_file = work.join("apps.yaml");
        std::fs::write(&apps_file, apps_yaml)?;
        Plumb::start_with(
            work.join("data"),
            apps_file,
            free_port(),
            work.join("plumb.log"),
            options,
        )
        .await
    }

    async fn start_with(
        data_dir: PathBuf,
        apps_file: PathBuf,
        port: u16,
        log: PathBuf,
        options: ServeOptions,
    ) -> Result<Plumb> {
        let log_file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)?;
        // PLUMB_TEST_BIN: a copy of the binary to test, for worktrees that
        // share one target directory (their builds overwrite each other's
        // `plumb`, as cargo names path packages' artifacts alike).
        let bin = std::env::var_os("PLUMB_TEST_BIN")
            .unwrap_or_else(|| env!("CARGO_BIN_EXE_plumb").into());
        let mut command = Command::new(bin);
        command
            .args(["serve", "--repo-poll-interval"])
            .arg(options.poll_seconds.to_string())
            .arg("--listen")
            .arg(format!("127.0.0.1:{port}"));
        match &options.cluster_apps {
            Some(ns) => command.arg("--namespace").arg(ns),
            None => command.arg("--no-cluster-apps"),
        };
        if !options.auth {
            command.arg("--insecure-disable-auth");
        }
        let child = command
            .args(&options.extra_args)
            .arg("--kubeconfig")
            .arg(options.kubeconfig.clone().unwrap_or_else(kubeconfig))
            .arg("--data-dir")
            .arg(&data_dir)
            .arg("--apps")
            .arg(&apps_file)
            .env("PLUMB_LOG", "info,plumb_engine=debug")
            .stdout(Stdio::null())
            .stderr(log_file)
            .spawn()
            .context("cannot start plumb serve")?;
        let plumb = Plumb {
            child,
            url: format!("http://127.0.0.1:{port}"),
            data_dir,
            apps_file,
            port,
            log,
            options,
        };
        let http = reqwest::Client::new();
        let healthz = format!("{}/healthz", plumb.url);
        eventually(
            "plumb serve answers /healthz",
            Duration::from_secs(60),
            || {
                let (http, healthz) = (http.clone(), healthz.clone());
                async move {
                    Ok(http
                        .get(&healthz)
                        .send()
                        .await
                        .ok()
                        .filter(|r| r.status().is_success())
                        .map(|_| ()))
                }
            },
        )
        .await
        .with_context(|| format!("log:\n{}", plumb.log_text()))?;
        Ok(plumb)
    }

    /// Stops the server (SIGKILL, as a crash would) and starts it again with
    /// the same data directory, apps file and port.
    pub async fn restart(mut self) -> Result<Plumb> {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let (data_dir, apps_file, port, log) = (
            self.data_dir.clone(),
            self.apps_file.clone(),
            self.port,
            self.log.clone(),
        );
        let options = self.options.clone();
        std::mem::forget(self);
        Plumb::start_with(data_dir, apps_file, port, log, options).await
    }

    /// Stops the server as Kubernetes stops a Pod (SIGTERM) and waits until
    /// it has exited.
    pub fn terminate(&mut self) -> Result<std::process::ExitStatus> {
        let sent = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()?;
        anyhow::ensure!(sent.success(), "kill -TERM failed");
        Ok(self.child.wait()?)
    }

    /// Replaces the `--apps` file (the server watches it).
    pub fn set_apps(&self, apps_yaml: &str) -> Result<()> {
        std::fs::write(&self.apps_file, apps_yaml)?;
        Ok(())
    }

    /// The server's log so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// GET a JSON document from the API.
    pub async fn get(&self, path: &str) -> Result<Value> {
        let r = reqwest::get(format!("{}{path}", self.url)).await?;
        let status = r.status();
        let body: Value = r.json().await?;
        if !status.is_success() {
            bail!("GET {path}: {status}: {body}");
        }
        Ok(body)
    }

    /// POST a JSON body; returns status and body.
    pub async fn post(&self, path: &str, body: Value) -> Result<(u16, Value)> {
        self.post_with_headers(path, &[], body).await
    }

    /// POST a JSON body with extra headers; returns status and body.
    pub async fn post_with_headers(
        &self,
        path: &str,
        headers: &[(&str, &str)],
        body: Value,
    ) -> Result<(u16, Value)> {
        let mut request = reqwest::Client::new()
            .post(format!("{}{path}", self.url))
            .json(&body);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let r = request.send().await?;
        let status = r.status().as_u16();
        let body = r.json().await.unwrap_or(Value::Null);
        Ok((status, body))
    }

    /// POST an operation (sync, rollback), retrying while another operation
    /// of the application runs (409), as a script driving Argo CD would;
    /// then follow it until it ends and return the application as it was
    /// then.
    pub async fn operate(&self, path: &str, body: Value) -> Result<Value> {
        let started = self.start_operation(path, body).await?;
        self.wait_operation(&started).await
    }

    /// POST an operation, retrying on 409; returns the answer, which shows
    /// the operation `Running`.
    pub async fn start_operation(&self, path: &str, body: Value) -> Result<Value> {
        eventually(
            &format!("POST {path} is accepted"),
            Duration::from_secs(60),
            || {
                let body = body.clone();
                async move {
                    let (code, answer) = self.post(path, body).await?;
                    match code {
                        200 => Ok(Some(answer)),
                        409 => Ok(None),
                        _ => bail!("POST {path} answered {code}: {answer}"),
                    }
                }
            },
        )
        .await
    }

    /// Waits until the operation shown in `started` (an answer of
    /// [`Plumb::start_operation`]) has ended; returns the application then.
    pub async fn wait_operation(&self, started: &Value) -> Result<Value> {
        let name = started
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .context("the answer names the application")?
            .to_string();
        let ours = started
            .pointer("/status/operationState/startedAt")
            .and_then(Value::as_str)
            .context("the answer shows the operation")?
            .to_string();
        eventually(
            &format!("the operation of {name} started at {ours} ends"),
            Duration::from_secs(120),
            || {
                let (name, ours) = (name.clone(), ours.clone());
                async move {
                    let app = self.app(&name).await?;
                    let op = app.pointer("/status/operationState");
                    let at = op
                        .and_then(|o| o.get("startedAt"))
                        .and_then(Value::as_str)
                        .unwrap_or_default();
                    let phase = op
                        .and_then(|o| o.get("phase"))
                        .and_then(Value::as_str)
                        .unwrap_or_default();
                    Ok((at == ours && phase != "Running").then_some(app))
                }
            },
        )
        .await
        .with_context(|| format!("plumb log:\n{}", tail(&self.log_text(), 40)))
    }

    /// An application's document.
    pub async fn app(&self, name: &str) -> Result<Value> {
        // `NAMESPACE/NAME` is one path segment.
        let name = name.replace('/', "%2F");
        self.get(&format!("/api/v1/applications/{name}")).await
    }

    /// Waits until an application's sync and health status are as given
    /// (health `None`: any), returning its document.
    /// How many history entries the application has.
    pub async fn history_len(&self, name: &str) -> Result<usize> {
        Ok(self
            .app(name)
            .await?
            .pointer("/status/history")
            .and_then(Value::as_array)
            .map_or(0, Vec::len))
    }

    pub async fn wait_status(&self, name: &str, sync: &str, health: Option<&str>) -> Result<Value> {
        eventually(
            &format!("{name} is {sync}/{health:?}"),
            Duration::from_secs(90),
            || async move {
                let app = self.app(name).await?;
                let s = app
                    .pointer("/status/sync/status")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                let h = app
                    .pointer("/status/health/status")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                Ok((s == sync && health.is_none_or(|x| x == h)).then_some(app))
            },
        )
        .await
        .with_context(|| format!("plumb log:\n{}", tail(&self.log_text(), 40)))
    }
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

impl Drop for Plumb {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs the `plumb` binary (a client command: `app`, `appset`, ...) and
/// returns what it printed; an exit other than 0 is an error with stderr.
pub fn cli(args: &[&str]) -> Result<String> {
    let bin =
        std::env::var_os("PLUMB_TEST_BIN").unwrap_or_else(|| env!("CARGO_BIN_EXE_plumb").into());
    let out = std::process::Command::new(bin)
        .args(args)
        .env_remove("PLUMB_SERVER")
        .env_remove("PLUMB_AUTH_TOKEN")
        .env_remove("ARGOCD_AUTH_TOKEN")
        .output()?;
    anyhow::ensure!(
        out.status.success(),
        "plumb {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(String::from_utf8(out.stdout)?)
}

/// An Application manifest for the `--apps` file.
pub fn application(
    name: &str,
    repo: &str,
    path: &str,
    namespace: &str,
    extra_spec: &str,
) -> String {
    format!(
        "apiVersion: argoproj.io/v1alpha1\nkind: Application\nmetadata:\n  name: {name}\nspec:\n  project: default\n  source:\n    repoURL: {repo}\n    targetRevision: main\n    path: {path}\n  destination:\n    server: https://kubernetes.default.svc\n    namespace: {namespace}\n{extra_spec}"
    )
}

/// An Application manifest for the `--apps` file with any spec: `spec`
/// (`source` or `sources`, `syncPolicy`, ...) laid over the default project
/// and the in-cluster destination `namespace`.
pub fn application_with(name: &str, namespace: &str, spec: Value) -> String {
    let mut full = json!({
        "project": "default",
        "destination": {"server": "https://kubernetes.default.svc", "namespace": namespace},
    });
    if let (Some(full), Value::Object(spec)) = (full.as_object_mut(), spec) {
        full.extend(spec);
    }
    let app = json!({
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Application",
        "metadata": {"name": name},
        "spec": full,
    });
    serde_yaml::to_string(&app).expect("a JSON value is also YAML")
}

/// A Helm chart repository on loopback: a static file server for `dir`
/// (its `index.yaml` and chart archives). GET and HEAD answer 200 with the
/// file or 404; every answer closes its connection. Stops when dropped.
pub struct ChartServer {
    /// `http://127.0.0.1:<port>`, without a trailing slash.
    pub url: String,
    port: u16,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl ChartServer {
    /// Serves `dir` (read at each request, so files may be added later).
    pub fn start(dir: &Path) -> Result<ChartServer> {
        use std::sync::atomic::Ordering;
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        let port = listener.local_addr()?.port();
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (root, stopped) = (dir.to_path_buf(), std::sync::Arc::clone(&stop));
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                if stopped.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(stream) = stream else { continue };
                let root = root.clone();
                std::thread::spawn(move || {
                    let _ = serve_file(stream, &root);
                });
            }
        });
        Ok(ChartServer {
            url: format!("http://127.0.0.1:{port}"),
            port,
            stop,
        })
    }
}

impl Drop for ChartServer {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        // Wakes the accepting thread, which then sees the flag.
        let _ = std::net::TcpStream::connect(("127.0.0.1", self.port));
    }
}

/// Answers one HTTP/1.x request on `stream` with a file of `root`.
fn serve_file(stream: std::net::TcpStream, root: &Path) -> std::io::Result<()> {
    use std::io::{BufRead, Write};
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut reader = std::io::BufReader::new(stream.try_clone()?);
    let mut request = String::new();
    reader.read_line(&mut request)?;
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header)? == 0 || header.trim().is_empty() {
            break;
        }
    }
    let mut words = request.split_whitespace();
    let (method, target) = (
        words.next().unwrap_or_default(),
        words.next().unwrap_or_default(),
    );
    let path = target.split(['?', '#']).next().unwrap_or_default();
    let servable = matches!(method, "GET" | "HEAD")
        && !path.ends_with('/')
        && !path.split('/').any(|part| part == "..");
    let body = if servable {
        std::fs::read(root.join(path.trim_start_matches('/'))).ok()
    } else {
        None
    };
    let (status, body) = match body {
        Some(body) => ("200 OK", body),
        None => ("404 Not Found", b"not found\n".to_vec()),
    };
    let mut stream = stream;
    write!(
        stream,
        "HTTP/1.1 {status}\r\nContent-Type: application/octet-stream\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )?;
    if method != "HEAD" {
        stream.write_all(&body)?;
    }
    stream.flush()
}

/// Reads an object from the cluster, `None` when absent.
/// A kubeconfig for the test cluster as the ServiceAccount `name` of
/// `namespace` (which must exist), with a token of an hour from the
/// TokenRequest API, written into `dir`.
pub async fn service_account_kubeconfig(
    namespace: &str,
    name: &str,
    dir: &Path,
) -> Result<PathBuf> {
    let accounts: Api<DynamicObject> = Api::namespaced_with(
        client().await,
        namespace,
        &resource("", "v1", "ServiceAccount", "serviceaccounts"),
    );
    let request = json!({
        "apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
        "spec": {"expirationSeconds": 3600}
    });
    let answer: Value = accounts
        .create_subresource("token", name, &PostParams::default(), &request)
        .await?;
    let token = answer
        .pointer("/status/token")
        .and_then(Value::as_str)
        .context("a token in the TokenRequest's status")?;
    let mut config: Value = serde_yaml::from_str(&std::fs::read_to_string(kubeconfig())?)?;
    config["users"][0]["user"] = json!({ "token": token });
    let path = dir.join(format!("kubeconfig-{namespace}-{name}"));
    std::fs::write(&path, serde_yaml::to_string(&config)?)?;
    Ok(path)
}

pub async fn get_object(ar: &ApiResource, namespace: &str, name: &str) -> Result<Option<Value>> {
    let api: Api<DynamicObject> = if namespace.is_empty() {
        Api::all_with(client().await, ar)
    } else {
        Api::namespaced_with(client().await, namespace, ar)
    };
    Ok(api
        .get_opt(name)
        .await?
        .map(|o| serde_json::to_value(o).expect("objects serialize")))
}

/// `data.<key>` of a ConfigMap, `None` when it or the key is absent.
pub async fn configmap_value(ns: &str, name: &str, key: &str) -> Result<Option<String>> {
    let configmaps = resource("", "v1", "ConfigMap", "configmaps");
    Ok(get_object(&configmaps, ns, name).await?.and_then(|o| {
        o.pointer(&format!("/data/{key}"))
            .and_then(Value::as_str)
            .map(str::to_string)
    }))
}

/// Waits (up to 90 s) until a ConfigMap has `key` = `want`.
pub async fn wait_configmap(ns: &str, name: &str, key: &str, want: &str) -> Result<()> {
    eventually(
        &format!("ConfigMap {ns}/{name} has {key}={want}"),
        Duration::from_secs(90),
        || async move {
            Ok((configmap_value(ns, name, key).await?.as_deref() == Some(want)).then_some(()))
        },
    )
    .await
}

/// `kubectl ARGS` against the test cluster, from the repository's root,
/// with `stdin` as its input.
pub fn kubectl(args: &[&str], stdin: &str) -> Result<std::process::Output> {
    use std::io::Write as _;
    let mut child = std::process::Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(kubeconfig())
        .args(args)
        .current_dir(root())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .context("running kubectl (scripts/tools puts it on PATH)")?;
    child
        .stdin
        .take()
        .context("kubectl's stdin")?
        .write_all(stdin.as_bytes())?;
    Ok(child.wait_with_output()?)
}

/// `kubectl auth can-i VERB RESOURCE --as ACCOUNT`, in `namespace` or
/// across all namespaces: yes or no.
pub fn can_i(account: &str, verb: &str, resource: &str, namespace: Option<&str>) -> Result<bool> {
    let mut args = vec!["auth", "can-i", verb, resource, "--as", account];
    match namespace {
        Some(ns) => args.extend(["-n", ns]),
        None => args.push("--all-namespaces"),
    }
    let out = kubectl(&args, "")?;
    let answer = String::from_utf8_lossy(&out.stdout).trim().to_string();
    anyhow::ensure!(
        answer == "yes" || answer == "no",
        "kubectl auth can-i {verb} {resource}: {answer:?} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(answer == "yes")
}
