//! The Plumb process under test: starting `plumb serve` on a free loopback
//! port, its HTTP API as the benchmark uses it, its CPU and memory from
//! `/proc`, and stopping it.
//!
//! Also the `/proc` readings of other processes (kube-apiserver, etcd), so
//! the report can say where CPU went.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use futures::StreamExt;
use serde::Deserialize;
use serde_json::Value;

/// Clock ticks per second of `/proc/PID/stat` times.
pub fn clock_ticks() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(100.0)
}

/// User + system CPU seconds of a process so far.
pub fn cpu_seconds(pid: u32, ticks: f64) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may hold spaces) start at `state`.
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / ticks)
}

/// `VmHWM` and `VmRSS` of a process, in MiB.
pub fn memory_mib(pid: u32) -> Option<(f64, f64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| -> Option<f64> {
        let line = status.lines().find(|l| l.starts_with(name))?;
        let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
        Some(kib / 1024.0)
    };
    Some((field("VmHWM:")?, field("VmRSS:")?))
}

/// PIDs of processes whose command name is `comm` (first match only).
pub fn pid_of(comm: &str) -> Option<u32> {
    let entries = std::fs::read_dir("/proc").ok()?;
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .find(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim() == comm)
        })
}

/// CPU seconds of several processes at one moment, by name.
#[derive(Clone, Debug, Default)]
pub struct CpuSample(pub BTreeMap<String, f64>);

impl CpuSample {
    pub fn take(pids: &[(String, u32)], ticks: f64) -> CpuSample {
        CpuSample(
            pids.iter()
                .filter_map(|(name, pid)| Some((name.clone(), cpu_seconds(*pid, ticks)?)))
                .collect(),
        )
    }

    /// Seconds used by `name` since `before`.
    pub fn since(&self, before: &CpuSample, name: &str) -> Option<f64> {
        Some(self.0.get(name)? - before.0.get(name)?)
    }
}

/// How to start Plumb.
#[derive(Clone)]
pub struct Launch<'a> {
    pub binary: &'a Path,
    pub apps_file: &'a Path,
    /// Read the applications from Application objects in this namespace
    /// instead of `apps_file`.
    pub apps_namespace: Option<&'a str>,
    pub kubeconfig: &'a Path,
    pub data_dir: &'a Path,
    pub poll_interval: u64,
    pub workers: usize,
    /// Prepended to PATH (the `git-upload-pack` counting wrapper).
    pub path_prefix: &'a Path,
    /// stderr goes here.
    pub log: &'a Path,
    /// `PLUMB_LOG` (`warn` unless a phase reads Plumb's info lines).
    pub log_filter: &'a str,
    /// Log as JSON lines (`PLUMB_LOG_FORMAT=json`), for phases that parse
    /// the log.
    pub json_log: bool,
    /// More arguments for `plumb serve`.
    pub extra: &'a [String],
}

/// A running `plumb serve`.
pub struct Plumb {
    child: Child,
    pub base: String,
    pub http: reqwest::Client,
    pub log: PathBuf,
    pub command: String,
}

/// A loopback port nobody listens on right now.
fn free_port() -> Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").context("bind a loopback port")?;
    Ok(listener.local_addr().context("local address")?.port())
}

impl Plumb {
    /// Starts `plumb serve` (with `--apps FILE --no-cluster-apps`, or with
    /// `--namespace NS` for Application objects) and waits (30 s at most)
    /// until `/healthz` answers.
    pub async fn start(launch: &Launch<'_>) -> Result<Plumb> {
        let port = free_port()?;
        let listen = format!("127.0.0.1:{port}");
        let source: Vec<String> = match launch.apps_namespace {
            Some(ns) => vec!["--namespace".into(), ns.into()],
            None => vec![
                "--apps".into(),
                launch.apps_file.display().to_string(),
                "--no-cluster-apps".into(),
            ],
        };
        let mut args: Vec<String> = vec![
            "serve".into(),
            "--kubeconfig".into(),
            launch.kubeconfig.display().to_string(),
            "--data-dir".into(),
            launch.data_dir.display().to_string(),
            "--listen".into(),
            listen.clone(),
            "--repo-poll-interval".into(),
            launch.poll_interval.to_string(),
            "--workers".into(),
            launch.workers.to_string(),
            // The benchmark measures the controller, not logins.
            "--insecure-disable-auth".into(),
        ];
        args.extend(source);
        args.extend(launch.extra.iter().cloned());
        let command = format!("{} {}", launch.binary.display(), args.join(" "));
        let path = format!(
            "{}:{}",
            launch.path_prefix.display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let log = std::fs::File::create(launch.log)
            .with_context(|| format!("create {}", launch.log.display()))?;
        let mut command_line = Command::new(launch.binary);
        if launch.json_log {
            command_line.env("PLUMB_LOG_FORMAT", "json");
        }
        let child = command_line
            .args(&args)
            .env("PATH", path)
            .env("PLUMB_LOG", launch.log_filter)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .with_context(|| format!("start {}", launch.binary.display()))?;
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(120))
            .pool_max_idle_per_host(64)
            .build()
            .context("build the HTTP client")?;
        let mut plumb = Plumb {
            child,
            base: format!("http://{listen}"),
            http,
            log: launch.log.to_path_buf(),
            command,
        };
        let start = Instant::now();
        loop {
            if let Ok(r) = plumb
                .http
                .get(format!("{}/healthz", plumb.base))
                .send()
                .await
                && r.status().is_success()
            {
                return Ok(plumb);
            }
            if let Some(status) = plumb.child.try_wait().context("check plumb")? {
                bail!("plumb exited with {status} at start:\n{}", plumb.log_tail());
            }
            if start.elapsed() > Duration::from_secs(30) {
                plumb.stop();
                bail!(
                    "plumb did not answer /healthz within 30s:\n{}",
                    plumb.log_tail()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The last lines of Plumb's log.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }

    /// The exit status, once it has exited.
    pub fn exited(&mut self) -> Result<Option<std::process::ExitStatus>> {
        self.child.try_wait().context("check plumb")
    }

    /// `(name, sync status, health status)` of the applications this
    /// replica compares (listed without a `ShardElsewhere` condition).
    pub async fn owned(&self) -> Result<Vec<(String, String, String)>> {
        Ok(self
            .list()
            .await?
            .into_iter()
            .filter_map(|a| {
                let status = a.status.unwrap_or_default();
                let elsewhere = status.conditions.iter().any(|c| c.kind == "ShardElsewhere");
                (!elsewhere).then_some((a.metadata.name, status.sync.status, status.health.status))
            })
            .collect())
    }

    /// One GET of `path` (as a scraper or the UI would send it): how long
    /// until the whole body was read, and its size in bytes.
    pub async fn timed_get(&self, path: &str) -> Result<(Duration, usize)> {
        let started = Instant::now();
        let response = self
            .http
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .with_context(|| format!("GET {path}"))?
            .error_for_status()
            .with_context(|| format!("GET {path}"))?;
        let body = response
            .bytes()
            .await
            .with_context(|| format!("read {path}"))?;
        Ok((started.elapsed(), body.len()))
    }

    /// Plumb's own count of its writes to the API server (its
    /// `argocd_app_k8s_request_total` series of create, update, patch and
    /// delete that are not dry runs), Leases left out: `(series, count)`.
    pub async fn writes(&self) -> Result<Vec<(String, u64)>> {
        let text = self
            .http
            .get(format!("{}/metrics", self.base))
            .send()
            .await
            .context("GET /metrics")?
            .text()
            .await
            .context("read /metrics")?;
        Ok(text
            .lines()
            .filter(|l| {
                l.starts_with("argocd_app_k8s_request_total{")
                    && !l.contains("dry_run=\"true\"")
                    && !l.contains("resource_kind=\"leases\"")
                    && ["Create", "Update", "Patch", "Delete"]
                        .iter()
                        .any(|v| l.contains(&format!("verb=\"{v}\"")))
            })
            .filter_map(|l| {
                let (series, n) = l.rsplit_once(' ')?;
                Some((series.to_string(), n.parse::<f64>().ok()? as u64))
            })
            .collect())
    }

    async fn list(&self) -> Result<Vec<Item>> {
        let bytes = self
            .http
            .get(format!("{}/api/v1/applications", self.base))
            .send()
            .await
            .context("list applications")?
            .error_for_status()
            .context("list applications")?
            .bytes()
            .await
            .context("read the application list")?;
        // Typed and minimal: the list of 10,000 applications is tens of MB,
        // and this process shares the cores with the one it measures.
        let list: List = serde_json::from_slice(&bytes).context("parse the application list")?;
        Ok(list.items)
    }

    /// `(name, sync status, health status)` of every application.
    pub async fn statuses(&self) -> Result<Vec<(String, String, String)>> {
        Ok(self
            .list()
            .await?
            .into_iter()
            .map(|a| {
                let status = a.status.unwrap_or_default();
                (a.metadata.name, status.sync.status, status.health.status)
            })
            .collect())
    }

    /// Waits until `expected` applications are listed and all are Synced;
    /// returns (time all Synced, time all Synced and Healthy if reached,
    /// final health counts). Polls every `every`.
    pub async fn wait_synced(
        &mut self,
        expected: usize,
        since: Instant,
        every: Duration,
        timeout: Duration,
    ) -> Result<Synced> {
        let mut synced_at = None;
        let mut last = Vec::new();
        loop {
            if let Some(status) = self.child.try_wait().context("check plumb")? {
                bail!("plumb exited with {status}:\n{}", self.log_tail());
            }
            if let Ok(statuses) = self.statuses().await {
                let synced = statuses.iter().filter(|s| s.1 == "Synced").count();
                let healthy = statuses
                    .iter()
                    .filter(|s| s.1 == "Synced" && s.2 == "Healthy")
                    .count();
                if statuses.len() == expected && synced == expected && synced_at.is_none() {
                    synced_at = Some(since.elapsed());
                }
                if statuses.len() == expected && healthy == expected {
                    let at = since.elapsed();
                    return Ok(Synced {
                        synced: synced_at.unwrap_or(at),
                        healthy: Some(at),
                        health: health_counts(&statuses),
                    });
                }
                last = statuses;
            }
            // Healthy may never come (e.g. Deployments without a kubelet):
            // give it 30 s after Synced.
            if let Some(at) = synced_at
                && since.elapsed() > at + Duration::from_secs(30)
            {
                return Ok(Synced {
                    synced: at,
                    healthy: None,
                    health: health_counts(&last),
                });
            }
            if since.elapsed() > timeout {
                let synced = last.iter().filter(|s| s.1 == "Synced").count();
                bail!(
                    "only {synced} of {expected} applications Synced after {timeout:?} (listed {}); health {:?}\n{}",
                    last.len(),
                    health_counts(&last),
                    self.log_tail()
                );
            }
            tokio::time::sleep(every).await;
        }
    }

    /// `GET /api/v1/applications/NAME?refresh=MODE` for every name, with
    /// `concurrency` requests in flight; returns how many failed.
    pub async fn refresh_all(&self, names: &[String], mode: &str, concurrency: usize) -> usize {
        futures::stream::iter(names.iter())
            .map(|name| async move {
                let url = format!("{}/api/v1/applications/{name}?refresh={mode}", self.base);
                match self.http.get(url).send().await {
                    Ok(r) if r.status().is_success() => 0,
                    _ => 1,
                }
            })
            .buffer_unordered(concurrency.max(1))
            .collect::<Vec<usize>>()
            .await
            .into_iter()
            .sum()
    }

    /// `POST /api/webhook` with the generic payload; returns the answer.
    pub async fn webhook(&self, repo_url: &str) -> Result<Value> {
        let body = serde_json::json!({"repository": {"url": repo_url}});
        self.http
            .post(format!("{}/api/webhook", self.base))
            .json(&body)
            .send()
            .await
            .context("POST /api/webhook")?
            .error_for_status()
            .context("POST /api/webhook")?
            .json()
            .await
            .context("parse the webhook answer")
    }

    /// Stops Plumb: SIGINT (its graceful shutdown), then SIGKILL after 10 s.
    pub fn stop(&mut self) {
        if matches!(self.child.try_wait(), Ok(Some(_))) {
            return;
        }
        let _ = Command::new("kill")
            .args(["-INT", &self.child.id().to_string()])
            .status();
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(10) {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Plumb {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The parts of `GET /api/v1/applications` the harness reads.
#[derive(Deserialize)]
struct List {
    items: Vec<Item>,
}

#[derive(Deserialize)]
struct Item {
    metadata: Meta,
    #[serde(default)]
    status: Option<Status>,
}

#[derive(Deserialize)]
struct Meta {
    #[serde(default)]
    name: String,
}

#[derive(Deserialize, Default)]
struct Status {
    #[serde(default)]
    sync: Code,
    #[serde(default)]
    health: Code,
    #[serde(default)]
    conditions: Vec<Condition>,
}

#[derive(Deserialize)]
struct Condition {
    #[serde(rename = "type", default)]
    kind: String,
}

#[derive(Deserialize, Default)]
struct Code {
    #[serde(default)]
    status: String,
}

/// What `wait_synced` saw.
pub struct Synced {
    pub synced: Duration,
    pub healthy: Option<Duration>,
    pub health: BTreeMap<String, usize>,
}

fn health_counts(statuses: &[(String, String, String)]) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for (_, _, health) in statuses {
        *out.entry(if health.is_empty() {
            "-".into()
        } else {
            health.clone()
        })
        .or_default() += 1;
    }
    out
}

/// Writes the `git-upload-pack` wrapper that logs one line per spawn into
/// `log` and runs the real program; returns the folder to put first on PATH.
pub fn upload_pack_wrapper(work: &Path, log: &Path) -> Result<PathBuf> {
    let exec_path = Command::new("git")
        .arg("--exec-path")
        .output()
        .context("run git --exec-path")?;
    let exec_path = String::from_utf8_lossy(&exec_path.stdout).trim().to_owned();
    let dir = work.join("bin");
    std::fs::create_dir_all(&dir).with_context(|| format!("create {}", dir.display()))?;
    let wrapper = dir.join("git-upload-pack");
    let script = format!(
        "#!/bin/sh\necho \"$(date +%s.%N) $*\" >> '{}'\nexec '{}/git-upload-pack' \"$@\"\n",
        log.display(),
        exec_path
    );
    std::fs::write(&wrapper, script).with_context(|| format!("write {}", wrapper.display()))?;
    let status = Command::new("chmod")
        .arg("+x")
        .arg(&wrapper)
        .status()
        .context("chmod the wrapper")?;
    if !status.success() {
        bail!("chmod +x {} failed", wrapper.display());
    }
    Ok(dir)
}

/// Lines in the wrapper's log: `git-upload-pack` spawns so far.
pub fn upload_pack_count(log: &Path) -> usize {
    std::fs::read_to_string(log)
        .map(|t| t.lines().count())
        .unwrap_or(0)
}
