//! The scale harness: generates N applications in a real git repository,
//! measures the API server's own server-side-apply ceiling, then Plumb's cold
//! sync, no-op resync, commit-to-live latency (webhook and polling), memory
//! and git load against a real control plane, and prints one markdown table.
//!
//! Run it with `scripts/bench [--apps N] [--objects single|full|helm]
//! [--source file|cr|appset]`, which
//! starts the local control plane and builds Plumb first; directly, with
//! `cargo bench --bench scale -- --kubeconfig PATH [...]`. Timings are
//! printed, never asserted.

mod appset;
mod cluster;
mod fixture;
mod plumb;
mod shards;

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use clap::Parser;

use crate::cluster::Requests;
use crate::fixture::Objects;
use crate::plumb::{CpuSample, Launch, Plumb};

/// Plumb's scale benchmark.
#[derive(Parser, Debug, Clone)]
#[command(name = "scale")]
struct Args {
    /// Number of applications.
    #[arg(long, default_value_t = 100)]
    apps: usize,
    /// Objects per application: one ConfigMap, or ConfigMap + Service +
    /// ServiceAccount + Deployment (replicas 0).
    #[arg(long, value_enum, default_value_t = Objects::Single)]
    objects: Objects,
    /// Where Plumb reads the applications: an `--apps` file, Application
    /// objects (CRs) in a namespace of the cluster, or one ApplicationSet
    /// there that generates those objects.
    #[arg(long, value_enum, default_value_t = Source::File)]
    source: Source,
    /// Kubeconfig of the cluster (also `PLUMB_BENCH_KUBECONFIG`).
    #[arg(long, env = "PLUMB_BENCH_KUBECONFIG")]
    kubeconfig: Option<PathBuf>,
    /// The Plumb binary to measure.
    #[arg(long, default_value = "target/release/plumb")]
    plumb: PathBuf,
    /// `plumb serve --workers`.
    #[arg(long, default_value_t = 16)]
    workers: usize,
    /// Requests in flight in the ceiling loop.
    #[arg(long, default_value_t = 32)]
    ceiling_concurrency: usize,
    /// Destination namespaces the applications are spread over.
    #[arg(long, default_value_t = 10)]
    namespaces: usize,
    /// `--repo-poll-interval` of the first Plumb process (cold sync,
    /// resync, webhook commits); Plumb's default.
    #[arg(long, default_value_t = 60)]
    poll_interval: u64,
    /// `--repo-poll-interval` of the second Plumb process (polling commits,
    /// fetch counting).
    #[arg(long, default_value_t = 5)]
    short_poll_interval: u64,
    /// Commits measured through the webhook.
    #[arg(long, default_value_t = 20)]
    webhook_commits: usize,
    /// Commits measured through polling.
    #[arg(long, default_value_t = 5)]
    poll_commits: usize,
    /// Pause between two measured commits, in milliseconds.
    #[arg(long, default_value_t = 1000)]
    commit_gap_ms: u64,
    /// Give up on the cold sync after this many seconds (default
    /// 300 + apps / 10).
    #[arg(long)]
    sync_timeout: Option<u64>,
    /// Run N replicas of `plumb serve --shards N` on the Application
    /// objects (needs `--source cr`) and measure only their cold sync: the
    /// scale-out figures. 0: one ordinary Plumb and every phase.
    #[arg(long, default_value_t = 0)]
    shards: usize,
    /// Also write the report to this file.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Passed by `cargo bench`; ignored.
    #[arg(long, hide = true)]
    bench: bool,
}

/// Where Plumb reads the applications.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum Source {
    /// `plumb serve --apps FILE --no-cluster-apps`.
    File,
    /// `plumb serve --namespace NS`, the N Applications created there as
    /// objects first.
    Cr,
    /// `plumb serve --namespace NS` on an empty namespace, then one
    /// ApplicationSet created there whose git directories generator makes
    /// the N Applications (not with `--objects helm`).
    Appset,
}

/// The rows of the final table.
#[derive(Default)]
struct Report {
    header: Vec<String>,
    rows: Vec<[String; 4]>,
}

impl Report {
    fn add(
        &mut self,
        phase: &str,
        metric: &str,
        value: impl Into<String>,
        note: impl Into<String>,
    ) {
        let row = [phase.into(), metric.into(), value.into(), note.into()];
        eprintln!("scale: {} | {} | {} | {}", row[0], row[1], row[2], row[3]);
        self.rows.push(row);
    }

    fn markdown(&self) -> String {
        let mut out = String::new();
        for line in &self.header {
            let _ = writeln!(out, "{line}");
        }
        let _ = writeln!(out);
        let _ = writeln!(out, "| phase | metric | value | notes |");
        let _ = writeln!(out, "|---|---|---|---|");
        for [a, b, c, d] in &self.rows {
            let _ = writeln!(out, "| {a} | {b} | {c} | {d} |");
        }
        out
    }
}

fn secs(d: Duration) -> String {
    format!("{:.2} s", d.as_secs_f64())
}

fn millis(d: Duration) -> String {
    format!("{:.0} ms", d.as_secs_f64() * 1000.0)
}

/// "p50 / p99" of sorted samples, in milliseconds.
fn p50_p99(sorted: &[Duration]) -> String {
    format!(
        "{} / {}",
        millis(quantile(sorted, 0.5)),
        millis(quantile(sorted, 0.99))
    )
}

/// The `q` quantile (nearest rank) of sorted samples.
fn quantile(sorted: &[Duration], q: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

fn command_output(program: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(program).args(args).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// Runs `helm` with `args`; fails with its stderr.
fn helm(args: &[&str]) -> Result<Vec<u8>> {
    let out = Command::new("helm")
        .args(args)
        .output()
        .context("run helm (is it on PATH? scripts/bench puts scripts/tools' folder there)")?;
    if !out.status.success() {
        bail!(
            "helm {args:?}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(out.stdout)
}

/// The Helm fixture's reference points, measured in the same run: every
/// application's `helm template` run by hand (one at a time, and four at
/// once as Plumb's `--tool-concurrency` default), and the render of a
/// chart of 1,000 objects by hand and by `plumb render`.
fn helm_by_hand(
    args: &Args,
    fx: &fixture::Fixture,
    work: &Path,
    report: &mut Report,
) -> Result<()> {
    let chart = fx.repo.join(fixture::CHART_DIR);
    let chart = chart.to_string_lossy();
    let template = |i: usize| -> Result<Vec<u8>> {
        let values = fx
            .repo
            .join(fixture::CHART_DIR)
            .join(fixture::values_file(i));
        helm(&[
            "template",
            &fx.app_names[i],
            &chart,
            "--namespace",
            &fx.app_namespaces[i],
            "--include-crds",
            "--values",
            &values.to_string_lossy(),
        ])
    };
    let n = fx.app_names.len();
    let started = Instant::now();
    for i in 0..n {
        template(i)?;
    }
    let one = started.elapsed();
    report.add(
        "helm by hand",
        &format!("`helm template` of each of the {n} applications, one at a time"),
        secs(one),
        format!(
            "{:.1} ms per application; `helm` {}",
            one.as_secs_f64() * 1000.0 / n.max(1) as f64,
            command_output("helm", &["version", "--short"]).unwrap_or_default()
        ),
    );
    let started = Instant::now();
    let next = std::sync::atomic::AtomicUsize::new(0);
    std::thread::scope(|scope| -> Result<()> {
        let workers: Vec<_> = (0..4)
            .map(|_| {
                scope.spawn(|| -> Result<()> {
                    loop {
                        let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        if i >= n {
                            return Ok(());
                        }
                        template(i)?;
                    }
                })
            })
            .collect();
        for w in workers {
            w.join().map_err(|_| anyhow!("a helm thread panicked"))??;
        }
        Ok(())
    })?;
    report.add(
        "helm by hand",
        &format!("`helm template` of each of the {n} applications, 4 at once"),
        secs(started.elapsed()),
        "the floor under Plumb's render work in the cold sync (`--tool-concurrency 4`)",
    );

    // One chart of 1,000 objects.
    let big = work.join("big-chart");
    fixture::write_big_chart(&big.join("big"), 1000)?;
    fixture::git(&big, &["init", "-q", "-b", "main"])?;
    fixture::git(&big, &["add", "-A"])?;
    fixture::git(&big, &["commit", "-q", "-m", "a chart of 1,000 ConfigMaps"])?;
    let big_chart = big.join("big");
    let mut by_hand = Vec::new();
    for _ in 0..5 {
        let started = Instant::now();
        let out = helm(&[
            "template",
            "big",
            &big_chart.to_string_lossy(),
            "--include-crds",
        ])?;
        by_hand.push(started.elapsed());
        let docs = String::from_utf8_lossy(&out)
            .matches("\nkind: ConfigMap")
            .count();
        if docs != 1000 {
            bail!("the big chart rendered {docs} ConfigMaps, not 1000");
        }
    }
    by_hand.sort();
    report.add(
        "render",
        "`helm template` of a chart of 1,000 ConfigMaps, by hand (median of 5)",
        millis(quantile(&by_hand, 0.5)),
        format!("min {}, max {}", millis(by_hand[0]), millis(by_hand[4])),
    );
    let mut by_plumb = Vec::new();
    for k in 0..5 {
        let data = work.join(format!("render-data-{k}"));
        let started = Instant::now();
        let out = Command::new(&args.plumb)
            .args(["render", "--repo"])
            .arg(&big)
            .args(["--path", "big", "--data-dir"])
            .arg(&data)
            .output()
            .context("run plumb render")?;
        by_plumb.push(started.elapsed());
        if !out.status.success() {
            bail!(
                "plumb render: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        let docs = String::from_utf8_lossy(&out.stdout)
            .matches("\nkind: ConfigMap")
            .count();
        if docs != 1000 {
            bail!("plumb render printed {docs} ConfigMaps, not 1000");
        }
    }
    by_plumb.sort();
    report.add(
        "render",
        "`plumb render` of the same chart from its git repository (median of 5)",
        millis(quantile(&by_plumb, 0.5)),
        format!(
            "min {}, max {}; each run a new process: clone, checkout, `helm template`, parse, normalize, print",
            millis(by_plumb[0]),
            millis(by_plumb[4])
        ),
    );
    Ok(())
}

/// The ApplicationSet's generation outside the server: `plumb appset
/// generate --offline` of it, three times (the first clones the fixture
/// repository into an empty cache, the others fetch into it), and a check
/// that it generates exactly the fixture's Applications.
fn appset_by_hand(
    args: &Args,
    fx: &fixture::Fixture,
    work: &Path,
    namespace: &str,
    manifest: &serde_json::Value,
    report: &mut Report,
) -> Result<()> {
    let file = work.join("appset.yaml");
    std::fs::write(
        &file,
        serde_yaml::to_string(manifest).context("serialize the ApplicationSet")?,
    )
    .with_context(|| format!("write {}", file.display()))?;
    let data = work.join("appset-generate");
    let mut times = Vec::new();
    let mut generated = Vec::new();
    for _ in 0..3 {
        let started = Instant::now();
        let out = Command::new(&args.plumb)
            .args([
                "appset",
                "generate",
                "--offline",
                "-o",
                "json",
                "--namespace",
                namespace,
            ])
            .arg("--data-dir")
            .arg(&data)
            .arg(&file)
            .output()
            .context("run plumb appset generate")?;
        times.push(started.elapsed());
        if !out.status.success() {
            bail!(
                "plumb appset generate: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        generated = serde_json::from_slice(&out.stdout)
            .context("parse the output of plumb appset generate")?;
    }
    appset::check_generated(fx, &generated)?;
    report.add(
        "appset",
        "`plumb appset generate --offline` of the ApplicationSet, one process",
        format!(
            "{} / {}",
            millis(times[0]),
            millis(times[1].min(times[2]))
        ),
        format!(
            "cold (clone into an empty cache) / warm (best of 2, fetch into it); {} Applications printed as JSON, checked equal to the `--apps` file's (name, source, destination, project, sync policy)",
            generated.len()
        ),
    );
    Ok(())
}

fn main() -> ExitCode {
    let args = Args::parse();
    let Some(kubeconfig) = args.kubeconfig.clone() else {
        eprintln!(
            "scale: no cluster given, nothing measured. Run `scripts/bench`, or pass \
             --kubeconfig PATH (or PLUMB_BENCH_KUBECONFIG) after `cargo bench --bench scale --`."
        );
        return ExitCode::SUCCESS;
    };
    let _ = rustls::crypto::ring::default_provider().install_default();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("scale: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(args, kubeconfig)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("scale: failed: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args, kubeconfig: PathBuf) -> Result<()> {
    let client = cluster::connect(&kubeconfig).await?;
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default();
    let run_id = format!("{:05x}", stamp % 0x10_0000);
    let work = tempfile::Builder::new()
        .prefix("plumb-bench-")
        .tempdir()
        .context("create a work folder")?;
    let mut report = Report::default();
    let outcome = tokio::select! {
        r = phases(&args, &kubeconfig, &client, &run_id, work.path(), &mut report) => r,
        _ = tokio::signal::ctrl_c() => Err(anyhow!("interrupted")),
    };
    // Plumb was stopped when its handle was dropped; the namespaces go now,
    // whether the phases succeeded or not.
    let prefix = format!("bench-{run_id}-");
    eprintln!("scale: cleaning up namespaces {prefix}*");
    let cleanup = async {
        let names = cluster::namespaces_with_prefix(&client, &prefix).await?;
        let start = Instant::now();
        let left = cluster::delete_namespaces(&client, &names, Duration::from_secs(600)).await?;
        Ok::<_, anyhow::Error>((names.len(), left, start.elapsed()))
    };
    match cleanup.await {
        Ok((n, 0, took)) => eprintln!("scale: deleted {n} namespaces in {}", secs(took)),
        Ok((n, left, _)) => eprintln!("scale: deleted {n} namespaces; {left} still terminating"),
        Err(e) => eprintln!("scale: cleanup failed: {e:#}"),
    }
    let text = report.markdown();
    println!("{text}");
    if let Some(out) = &args.out {
        std::fs::write(out, &text).with_context(|| format!("write {}", out.display()))?;
    }
    if let Err(e) = &outcome {
        println!("\n**The run failed:** {e:#}");
    }
    outcome
}

/// Everything measured, in order. Adds rows to `report` as it goes, so a
/// failure still reports what was measured before it.
async fn phases(
    args: &Args,
    kubeconfig: &Path,
    client: &kube::Client,
    run_id: &str,
    work: &Path,
    report: &mut Report,
) -> Result<()> {
    let n = args.apps;
    let per_app = args.objects.per_app();
    let total = n * per_app;
    let ticks = plumb::clock_ticks();

    // What ran where.
    let cores = std::thread::available_parallelism().map_or(0, usize::from);
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let mem_gib = meminfo
        .lines()
        .find(|l| l.starts_with("MemTotal:"))
        .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        .map_or(0.0, |kib| kib / 1024.0 / 1024.0);
    let cpu_model = std::fs::read_to_string("/proc/cpuinfo")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split_once(':'))
        .map(|(_, m)| m.trim().to_owned())
        .unwrap_or_default();
    let commit = command_output("git", &["rev-parse", "--short", "HEAD"]).unwrap_or_default();
    let dirty = command_output("git", &["status", "--porcelain", "--untracked-files=no"])
        .is_some_and(|s| !s.is_empty());
    let command = std::env::var("PLUMB_BENCH_COMMAND").unwrap_or_else(|_| {
        format!(
            "cargo bench --bench scale -- {}",
            std::env::args().skip(1).collect::<Vec<_>>().join(" ")
        )
    });
    let server = cluster::server_version(client).await;
    let date = command_output("date", &["-u", "+%Y-%m-%d %H:%M UTC"]).unwrap_or_default();
    report.header = vec![
        format!(
            "### Plumb scale benchmark: {n} applications x {per_app} object(s) ({total} objects)"
        ),
        String::new(),
        format!("- date: {date}"),
        format!(
            "- machine: {cores} cores ({cpu_model}), {mem_gib:.1} GiB memory, Linux {}",
            command_output("uname", &["-r"]).unwrap_or_default()
        ),
        format!(
            "- commit: {commit}{}",
            if dirty {
                " (with uncommitted changes)"
            } else {
                ""
            }
        ),
        format!("- command: `{command}`"),
        format!(
            "- cluster: kube-apiserver {server}, etcd and kube-controller-manager on the same machine (loopback), sharing its cores with Plumb and this harness"
        ),
        format!(
            "- Plumb: `--workers {}`, cold sync with `--repo-poll-interval {}`, polling commits with `--repo-poll-interval {}`; run id {run_id}",
            args.workers, args.poll_interval, args.short_poll_interval
        ),
        format!(
            "- applications from: {}",
            match args.source {
                Source::File => "an `--apps` file (`--no-cluster-apps`)",
                Source::Cr =>
                    "Application objects in the cluster (`--namespace`), status written back",
                Source::Appset =>
                    "one ApplicationSet in the cluster (`--namespace`) whose git directories generator creates the Application objects after Plumb started; cold-sync times run from the ApplicationSet's creation",
            }
        ),
    ];
    let server_pids: Vec<(String, u32)> = ["kube-apiserver", "etcd"]
        .into_iter()
        .filter_map(|name| Some((name.to_owned(), plumb::pid_of(name)?)))
        .collect();
    let metrics_ok = match Requests::sample(client).await {
        Ok(_) => true,
        Err(e) => {
            report.add(
                "setup",
                "API request counters",
                "unavailable",
                format!("{e:#}"),
            );
            false
        }
    };
    let sample = || async {
        if metrics_ok {
            Requests::sample(client).await.ok()
        } else {
            None
        }
    };
    let server_cpu = |before: &CpuSample, after: &CpuSample| -> String {
        server_pids
            .iter()
            .filter_map(|(name, _)| Some(format!("{name} {:.1} s", after.since(before, name)?)))
            .collect::<Vec<_>>()
            .join(", ")
    };

    // Inputs.
    let started = Instant::now();
    let fx = fixture::generate(work, run_id, n, args.objects, args.namespaces)?;
    report.add(
        "setup",
        "generate repo + apps file",
        secs(started.elapsed()),
        format!(
            "{n} folders, {total} objects, one commit, `git` {}",
            command_output("git", &["--version"]).unwrap_or_default()
        ),
    );

    if args.objects == Objects::Helm {
        helm_by_hand(args, &fx, work, report)?;
    }

    // In CR and appset mode the applications are objects in the cluster.
    let apps_namespace = format!("bench-{run_id}-apps");
    let appset_manifest = appset::manifest(&fx, run_id, &apps_namespace, args.namespaces);
    if args.source == Source::Appset && args.objects == Objects::Helm {
        bail!(
            "--source appset generates from the fixture's folders; --objects helm has one chart, not a folder per application"
        );
    }
    if args.shards > 0 && args.source != Source::Cr {
        bail!("--shards runs on Application objects: pass --source cr");
    }
    if matches!(args.source, Source::Cr | Source::Appset) {
        cluster::create_namespaces(client, std::slice::from_ref(&apps_namespace)).await?;
        let mut crds = vec!["manifests/crds/application.yaml"];
        if args.source == Source::Appset {
            crds.push("manifests/crds/applicationset.yaml");
        }
        for path in crds {
            let crd = std::fs::read_to_string(path)
                .with_context(|| format!("read {path} (run from the repository root)"))?;
            let crd: serde_json::Value = serde_yaml::from_str(&crd).context("parse the CRD")?;
            cluster::apply_and_wait_crd(client, &crd).await?;
        }
    }
    if args.source == Source::Appset {
        appset_by_hand(args, &fx, work, &apps_namespace, &appset_manifest, report)?;
    }
    if args.source == Source::Cr {
        let started = Instant::now();
        let created =
            cluster::create_applications(client, &apps_namespace, &fx.applications, 32).await?;
        report.add(
            "setup",
            "create the Application objects",
            secs(started.elapsed()),
            format!("{created} Applications in namespace {apps_namespace}, 32 in flight"),
        );
    }

    if args.shards > 0 {
        return shards_only(args, kubeconfig, client, &fx, &apps_namespace, work, report).await;
    }

    // 1. Ceiling, at Plumb's concurrency and at the harness's; the higher
    // rate is the ceiling Plumb is compared with.
    let mut concurrencies = vec![args.workers, args.ceiling_concurrency];
    concurrencies.dedup();
    let mut ceiling_ns: Vec<String> = Vec::new();
    let mut ceiling_rate: f64 = 0.0;
    for concurrency in concurrencies {
        let namespaces: Vec<String> = (0..args.namespaces)
            .map(|k| format!("bench-{run_id}-ceil{concurrency}-{k}"))
            .collect();
        cluster::create_namespaces(client, &namespaces).await?;
        ceiling_ns.extend(namespaces.iter().cloned());
        let (req0, cpu0) = (sample().await, CpuSample::take(&server_pids, ticks));
        let ceiling = cluster::ceiling(
            client,
            &fx.objects,
            |i| namespaces[i % namespaces.len()].clone(),
            concurrency,
        )
        .await?;
        let (req1, cpu1) = (sample().await, CpuSample::take(&server_pids, ticks));
        let rate = ceiling.applied as f64 / ceiling.elapsed.as_secs_f64();
        ceiling_rate = ceiling_rate.max(rate);
        let requests = match (&req0, &req1) {
            (Some(a), Some(b)) => {
                let d = b.since(a);
                format!(
                    "; API requests (all clients): {} writes, {} dry runs, {} reads",
                    d.writes, d.dry_runs, d.reads
                )
            }
            _ => String::new(),
        };
        report.add(
            "ceiling",
            &format!("server-side apply, bare kube loop, {concurrency} in flight"),
            format!("{rate:.0} objects/s"),
            format!(
                "{} objects in {}, {} failed{}; CPU {}{requests}",
                ceiling.applied,
                secs(ceiling.elapsed),
                ceiling.failed,
                ceiling
                    .first_error
                    .map(|e| format!(" (first: {e})"))
                    .unwrap_or_default(),
                server_cpu(&cpu0, &cpu1)
            ),
        );
    }

    // kubectl, the tool a user would reach for.
    let kubectl_ns = format!("bench-{run_id}-kubectl");
    let mut kubectl_time = None;
    if args.objects == Objects::Helm {
        // There is no folder of manifests to apply; the `helm by hand`
        // rows are this mode's reference instead.
        report.add(
            "kubectl",
            "`kubectl apply --server-side -R`",
            "not run",
            "--objects helm has no folder of manifests; see the `helm by hand` rows",
        );
    } else if Path::new("/usr/bin/kubectl").exists()
        || command_output("kubectl", &["version", "--client"]).is_some()
    {
        cluster::create_namespaces(client, std::slice::from_ref(&kubectl_ns)).await?;
        let dir = fx.repo.join("apps");
        let started = Instant::now();
        let timeout = Duration::from_secs(300 + n as u64 / 10);
        let mut child = Command::new("kubectl")
            .arg("--kubeconfig")
            .arg(kubeconfig)
            .args(["apply", "--server-side", "-R", "-n", &kubectl_ns, "-f"])
            .arg(&dir)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .context("start kubectl")?;
        let status = loop {
            if let Some(status) = child.try_wait().context("wait for kubectl")? {
                break Some(status);
            }
            if started.elapsed() > timeout {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        let elapsed = started.elapsed();
        match status {
            Some(s) if s.success() => {
                kubectl_time = Some(elapsed);
                report.add(
                    "kubectl",
                    "`kubectl apply --server-side -R`",
                    secs(elapsed),
                    format!(
                        "{:.0} objects/s, one namespace; {}",
                        total as f64 / elapsed.as_secs_f64(),
                        command_output("kubectl", &["version", "--client"])
                            .unwrap_or_default()
                            .lines()
                            .next()
                            .unwrap_or_default()
                    ),
                );
            }
            Some(s) => {
                let mut stderr = String::new();
                if let Some(mut e) = child.stderr.take() {
                    use std::io::Read as _;
                    let _ = e.read_to_string(&mut stderr);
                }
                let first = stderr.lines().next().unwrap_or_default().to_owned();
                report.add(
                    "kubectl",
                    "`kubectl apply --server-side -R`",
                    "failed",
                    format!("{s}: {first}"),
                );
            }
            None => report.add(
                "kubectl",
                "`kubectl apply --server-side -R`",
                "timed out",
                format!("killed after {}", secs(timeout)),
            ),
        }
    } else {
        report.add(
            "kubectl",
            "`kubectl apply --server-side -R`",
            "not measured",
            "kubectl is not installed",
        );
    }

    // Plumb starts on a cluster without the objects above.
    let mut gone: Vec<String> = ceiling_ns.clone();
    gone.push(kubectl_ns);
    let started = Instant::now();
    let left = cluster::delete_namespaces(client, &gone, Duration::from_secs(600)).await?;
    report.add(
        "setup",
        "delete ceiling + kubectl namespaces",
        secs(started.elapsed()),
        if left == 0 {
            "before Plumb starts, so it meets an empty cluster".to_owned()
        } else {
            format!("{left} still terminating after 600 s")
        },
    );

    // 2. Cold sync.
    let upload_log = work.join("upload-pack.log");
    let wrapper = plumb::upload_pack_wrapper(work, &upload_log)?;
    let data_dir = work.join("plumb-data");
    let binary = args.plumb.canonicalize().with_context(|| {
        format!(
            "the Plumb binary {} (build it with `cargo build --release --bin plumb`)",
            args.plumb.display()
        )
    })?;
    let launch = Launch {
        binary: &binary,
        apps_file: &fx.apps_file,
        apps_namespace: matches!(args.source, Source::Cr | Source::Appset)
            .then_some(apps_namespace.as_str()),
        kubeconfig,
        data_dir: &data_dir,
        poll_interval: args.poll_interval,
        workers: args.workers,
        path_prefix: &wrapper,
        log: &work.join("plumb-1.log"),
        log_filter: if args.source == Source::Appset {
            appset::LOG_FILTER
        } else {
            "warn"
        },
        json_log: args.source == Source::Appset,
        extra: &[],
    };
    let list_every = match n {
        0..=100 => Duration::from_millis(100),
        101..=1000 => Duration::from_millis(500),
        _ => Duration::from_secs(2),
    };
    let timeout = Duration::from_secs(args.sync_timeout.unwrap_or(300 + n as u64 / 10));
    let (req0, cpu0) = (sample().await, CpuSample::take(&server_pids, ticks));
    let started = Instant::now();
    let mut plumb = Plumb::start(&launch).await?;
    let pid = plumb.pid();
    let healthz = started.elapsed();
    report
        .header
        .push(format!("- Plumb command: `{}`", plumb.command));
    // With an ApplicationSet, the clock starts when it is created: Plumb
    // runs first with no applications.
    let (started, created) = if args.source == Source::Appset {
        let started = Instant::now();
        let watch = appset::watch_created(client, &apps_namespace, n, started, timeout).await?;
        appset::create(client, &apps_namespace, &appset_manifest).await?;
        let (logged, pass) = appset::wait_pass(launch.log, 0, started, timeout).await?;
        report.add(
            "appset",
            "ApplicationSet created to its first pass logged",
            secs(logged),
            format!(
                "the pass took {} by its own clock (`elapsed_ms`: generate, plan, apply the Applications 8 at a time); {}",
                millis(Duration::from_millis(pass.elapsed_ms)),
                pass.counts()
            ),
        );
        (started, Some(watch))
    } else {
        (started, None)
    };
    let synced = plumb.wait_synced(n, started, list_every, timeout).await?;
    if let Some(watch) = created {
        let created = watch.await.context("the Application watch")?;
        let at = |d: Option<Duration>| d.map_or("not seen".to_owned(), secs);
        report.add(
            "appset",
            "ApplicationSet created to its first Application object",
            at(created.first),
            "seen by a watch of the namespace with the label selector `plumb.dev/applicationset=bench`",
        );
        report.add(
            "appset",
            &format!("ApplicationSet created to all {n} Application objects"),
            at(created.all),
            format!(
                "{} seen; {:.0} Applications/s after the first",
                created.seen,
                match (created.first, created.all) {
                    (Some(a), Some(b)) if b > a => n as f64 / (b - a).as_secs_f64(),
                    _ => f64::NAN,
                }
            ),
        );
    }
    let (req1, cpu1) = (sample().await, CpuSample::take(&server_pids, ticks));
    let plumb_cpu = plumb::cpu_seconds(pid, ticks).unwrap_or(f64::NAN);
    let rate = total as f64 / synced.synced.as_secs_f64();
    let start_is = if args.source == Source::Appset {
        "ApplicationSet created"
    } else {
        "start"
    };
    report.add(
        "cold sync",
        &format!("{start_is} to all applications Synced"),
        secs(synced.synced),
        format!(
            "{rate:.0} objects/s = {:.0}% of the ceiling; /healthz answered after {}; status read every {}",
            100.0 * rate / ceiling_rate,
            millis(healthz),
            millis(list_every)
        ),
    );
    report.add(
        "cold sync",
        &format!("{start_is} to all Synced and Healthy"),
        synced.healthy.map_or("not reached".to_owned(), secs),
        format!("health: {:?}", synced.health),
    );
    if let Some(k) = kubectl_time {
        report.add(
            "cold sync",
            "Plumb time / kubectl time",
            format!("{:.2}", synced.synced.as_secs_f64() / k.as_secs_f64()),
            format!("kubectl took {}", secs(k)),
        );
    }
    report.add(
        "cold sync",
        "CPU",
        format!("Plumb {plumb_cpu:.1} s"),
        server_cpu(&cpu0, &cpu1),
    );
    if let (Some(a), Some(b)) = (&req0, &req1) {
        let d = b.since(a);
        report.add(
            "cold sync",
            "API requests",
            format!(
                "{:.2} per object",
                (d.writes + d.dry_runs + d.reads) as f64 / total as f64
            ),
            format!(
                "writes {}; dry runs {}; reads {} (all clients of the API server)",
                d.writes_text(),
                d.dry_runs,
                d.reads
            ),
        );
    }
    report.add(
        "git",
        "git-upload-pack runs during cold sync",
        plumb::upload_pack_count(&upload_log).to_string(),
        "one repository for all applications",
    );
    let memory = |report: &mut Report, when: &str, pid: u32| {
        if let Some((hwm, rss)) = plumb::memory_mib(pid) {
            report.add(
                "memory",
                when,
                format!("VmHWM {hwm:.0} MiB, VmRSS {rss:.0} MiB"),
                "",
            );
        }
    };
    memory(report, "after cold sync", pid);

    // 3. No-op resync.
    tokio::time::sleep(Duration::from_secs(3)).await;
    if args.source == Source::Appset {
        // A pass that finds every Application as generated: an annotation
        // on the ApplicationSet changes nothing it generates.
        let before = appset::passes(launch.log).len();
        let (req0, cpu0) = (sample().await, CpuSample::take(&server_pids, ticks));
        let plumb_cpu0 = plumb::cpu_seconds(pid, ticks).unwrap_or(f64::NAN);
        let started = Instant::now();
        appset::touch(client, &apps_namespace, "1").await?;
        let (logged, pass) =
            appset::wait_pass(launch.log, before, started, Duration::from_secs(300)).await?;
        let plumb_cpu1 = plumb::cpu_seconds(pid, ticks).unwrap_or(f64::NAN);
        let (req1, cpu1) = (sample().await, CpuSample::take(&server_pids, ticks));
        report.add(
            "appset no-op pass",
            "annotation on the ApplicationSet to its pass logged",
            millis(logged),
            format!(
                "the pass took {} by its own clock; {}{}",
                millis(Duration::from_millis(pass.elapsed_ms)),
                pass.counts(),
                if pass.wrote_nothing() {
                    ""
                } else {
                    " (**it wrote**)"
                }
            ),
        );
        report.add(
            "appset no-op pass",
            "Plumb CPU",
            format!("{:.2} s", plumb_cpu1 - plumb_cpu0),
            server_cpu(&cpu0, &cpu1),
        );
        if let (Some(a), Some(b)) = (&req0, &req1) {
            let d = b.since(a);
            let applies = d
                .writes_by
                .iter()
                .find(|(what, _)| what == "APPLY applications")
                .map_or(0, |(_, k)| *k);
            report.add(
                "appset no-op pass",
                "Application applies (APPLY applications)",
                applies.to_string(),
                format!(
                    "all writes of all clients in that window: {}; {} dry runs, {} reads",
                    d.writes_text(),
                    d.dry_runs,
                    d.reads
                ),
            );
        }
    }
    let plumb_namespaces: Vec<String> = {
        let mut v = fx.app_namespaces.clone();
        v.sort();
        v.dedup();
        v
    };
    for mode in ["normal", "hard"] {
        let phase = format!("resync ({mode})");
        let versions0 = cluster::configmap_versions(client, &plumb_namespaces).await?;
        let (req0, cpu0) = (sample().await, CpuSample::take(&server_pids, ticks));
        let plumb_cpu0 = plumb::cpu_seconds(pid, ticks).unwrap_or(f64::NAN);
        let uploads0 = plumb::upload_pack_count(&upload_log);
        let started = Instant::now();
        let failures = plumb.refresh_all(&fx.app_names, mode, args.workers).await;
        let wall = started.elapsed();
        let plumb_cpu1 = plumb::cpu_seconds(pid, ticks).unwrap_or(f64::NAN);
        let (req1, cpu1) = (sample().await, CpuSample::take(&server_pids, ticks));
        let uploads = plumb::upload_pack_count(&upload_log) - uploads0;
        let versions1 = cluster::configmap_versions(client, &plumb_namespaces).await?;
        let rewritten = versions1
            .iter()
            .filter(|(k, v)| versions0.get(*k) != Some(*v))
            .count();
        let still_synced = plumb
            .statuses()
            .await?
            .iter()
            .filter(|s| s.1 == "Synced")
            .count();
        let what = if mode == "normal" {
            "compare again, reusing the cached render and dry-run results"
        } else {
            "fetch, render and dry-run every object again"
        };
        report.add(
            &phase,
            &format!("`?refresh={mode}` of every application"),
            millis(wall),
            format!(
                "{what}; {} requests in flight, {failures} failed; {still_synced}/{n} Synced after; {uploads} git-upload-pack runs",
                args.workers
            ),
        );
        report.add(
            &phase,
            "Plumb CPU",
            format!("{:.2} s", plumb_cpu1 - plumb_cpu0),
            format!(
                "{:.0} µs per application (HTTP handling included); {}",
                (plumb_cpu1 - plumb_cpu0) * 1e6 / n as f64,
                server_cpu(&cpu0, &cpu1)
            ),
        );
        if let (Some(a), Some(b)) = (&req0, &req1) {
            let d = b.since(a);
            report.add(
                &phase,
                "API writes (not dry runs)",
                d.writes_text(),
                format!(
                    "all clients of the API server (kube-controller-manager and kube-apiserver update leases and endpoints); {} dry-run applies, {} reads",
                    d.dry_runs, d.reads
                ),
            );
        }
        report.add(
            &phase,
            "bench ConfigMaps whose resourceVersion changed",
            format!("{rewritten} of {}", versions0.len()),
            "0: Plumb wrote none of its objects",
        );
    }
    let one = &fx.app_names[n / 2];
    let started = Instant::now();
    let failed = plumb
        .refresh_all(std::slice::from_ref(one), "hard", 1)
        .await;
    report.add(
        "resync (hard)",
        "`?refresh=hard` of one application",
        millis(started.elapsed()),
        if failed == 0 {
            "fetch + render + compare".to_owned()
        } else {
            "failed".to_owned()
        },
    );
    memory(report, "after resyncs", pid);

    // 3b. What a Prometheus scrape and a DORA report cost at this size:
    // both are computed when asked (the DORA figures from the stored
    // events of every application).
    for (path, what) in [
        (
            "/metrics",
            "a Prometheus scrape (DORA gauges per application and project included)",
        ),
        (
            "/api/v1/dora?window=30d",
            "the DORA report of every application and project",
        ),
    ] {
        const TIMES: usize = 5;
        let cpu0 = plumb::cpu_seconds(pid, ticks).unwrap_or(f64::NAN);
        let mut walls = Vec::with_capacity(TIMES);
        let mut bytes = 0;
        for _ in 0..TIMES {
            let (wall, size) = plumb.timed_get(path).await?;
            walls.push(wall);
            bytes = size;
        }
        let cpu = (plumb::cpu_seconds(pid, ticks).unwrap_or(f64::NAN) - cpu0) / TIMES as f64;
        walls.sort();
        report.add(
            "scrape",
            &format!("`GET {path}`, median of {TIMES}"),
            millis(walls[TIMES / 2]),
            format!(
                "{what}; {:.1} MiB; Plumb CPU {:.0} ms per request",
                bytes as f64 / (1024.0 * 1024.0),
                cpu * 1e3
            ),
        );
    }

    // 4a. One commit, through the webhook.
    let bare = work.join("bare.git");
    fixture::git(
        work,
        &[
            "clone",
            "--bare",
            "-q",
            &fx.repo_url,
            &bare.display().to_string(),
        ],
    )?;
    let mut revs: HashMap<usize, u32> = HashMap::new();
    let mut latencies = Vec::new();
    let mut posts = Vec::new();
    let mut fetches = Vec::new();
    let mut refreshed = 0;
    let passes_before = appset::passes(launch.log).len();
    for r in 0..args.webhook_commits {
        let idx = ((2 * r + 1) * n) / (2 * args.webhook_commits.max(1));
        let rev = revs.entry(idx).or_insert(0);
        *rev += 1;
        let rev = *rev;
        fixture::commit_change(&fx, idx, rev)?;
        let started = Instant::now();
        let answer = plumb.webhook(&fx.repo_url).await?;
        posts.push(started.elapsed());
        refreshed = answer["refreshed"].as_u64().unwrap_or(0);
        let latency = cluster::wait_for_rev(
            client,
            &fx.app_namespaces[idx],
            &format!("cm-{idx:05}"),
            &rev.to_string(),
            started,
            Duration::from_secs(120),
        )
        .await?;
        latencies.push(latency);
        if r < 5 {
            let started = Instant::now();
            fixture::git(
                &bare,
                &["fetch", "-q", "origin", "+refs/heads/*:refs/heads/*"],
            )?;
            fetches.push(started.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(args.commit_gap_ms)).await;
    }
    latencies.sort();
    posts.sort();
    fetches.sort();
    report.add(
        "one commit",
        "commit to live, webhook: p50 / p99",
        p50_p99(&latencies),
        format!(
            "{} commits, each to a different application spread over the list, {} apart; min {}, max {}; p99 of {} samples is their maximum",
            latencies.len(),
            millis(Duration::from_millis(args.commit_gap_ms)),
            millis(quantile(&latencies, 0.0)),
            millis(quantile(&latencies, 1.0)),
            latencies.len()
        ),
    );
    report.add(
        "one commit",
        "webhook POST answered: p50 / max",
        format!("{} / {}", millis(quantile(&posts, 0.5)), millis(quantile(&posts, 1.0))),
        format!("includes Plumb's fetch; each webhook queued {refreshed} applications (every application on the repository)"),
    );
    report.add(
        "git",
        "incremental fetch of one commit (git CLI, file://, bare clone)",
        format!("{} p50", millis(quantile(&fetches, 0.5))),
        format!(
            "{} fetches, max {}",
            fetches.len(),
            millis(quantile(&fetches, 1.0))
        ),
    );
    if args.source == Source::Appset {
        // Each webhook also runs a pass of the ApplicationSet (its generator
        // reads the repository), beside the applications' reconciles.
        let passes: Vec<appset::Pass> = appset::passes(launch.log)
            .into_iter()
            .skip(passes_before)
            .collect();
        let mut took: Vec<Duration> = passes
            .iter()
            .map(|p| Duration::from_millis(p.elapsed_ms))
            .collect();
        took.sort();
        let wrote = passes.iter().filter(|p| !p.wrote_nothing()).count();
        report.add(
            "one commit",
            "ApplicationSet passes during the webhook commits: p50 / max",
            format!(
                "{} / {}",
                millis(quantile(&took, 0.5)),
                millis(quantile(&took, 1.0))
            ),
            format!(
                "{} passes for {} webhooks (each webhook queues one; queued ones coalesce); {wrote} of them wrote an Application",
                passes.len(),
                args.webhook_commits
            ),
        );
    }
    memory(report, "after webhook commits", pid);
    plumb.stop();
    drop(plumb);

    // 4b and 6. A second process polling every few seconds.
    let launch = Launch {
        poll_interval: args.short_poll_interval,
        log: &work.join("plumb-2.log"),
        ..launch
    };
    let started = Instant::now();
    let mut plumb = Plumb::start(&launch).await?;
    let pid = plumb.pid();
    let synced = plumb.wait_synced(n, started, list_every, timeout).await?;
    report.add(
        "restart",
        "restart (same data dir) to all Synced",
        secs(synced.synced),
        format!(
            "Plumb CPU {:.1} s",
            plumb::cpu_seconds(pid, ticks).unwrap_or(f64::NAN)
        ),
    );
    if args.source == Source::Appset {
        // Read after all Synced: the line is there already, so only the
        // pass's own clock means anything.
        let (_, pass) = appset::wait_pass(launch.log, 0, started, Duration::from_secs(300)).await?;
        report.add(
            "restart",
            "the ApplicationSet's first pass after the restart",
            millis(Duration::from_millis(pass.elapsed_ms)),
            format!("by the pass's own clock (`elapsed_ms`); {}", pass.counts()),
        );
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let intervals = 3;
    let window = Duration::from_secs(args.short_poll_interval * intervals);
    let count0 = plumb::upload_pack_count(&upload_log);
    let passes0 = appset::passes(launch.log).len();
    let (req0, cpu_p0) = (
        sample().await,
        plumb::cpu_seconds(pid, ticks).unwrap_or(f64::NAN),
    );
    tokio::time::sleep(window).await;
    let count1 = plumb::upload_pack_count(&upload_log);
    let passes1 = appset::passes(launch.log).len();
    let (req1, cpu_p1) = (
        sample().await,
        plumb::cpu_seconds(pid, ticks).unwrap_or(f64::NAN),
    );
    report.add(
        "git",
        "git-upload-pack runs per poll interval",
        format!("{:.1}", (count1 - count0) as f64 / intervals as f64),
        format!(
            "{} runs in {} = {intervals} intervals of {} s (jitter ±10%), one repository, {n} applications; counted by a PATH wrapper around git-upload-pack",
            count1 - count0,
            secs(window),
            args.short_poll_interval
        ),
    );
    report.add(
        "idle",
        "Plumb CPU while idle",
        format!("{:.2} s in {}", cpu_p1 - cpu_p0, secs(window)),
        format!(
            "polls every {} s requeue all {n} applications{}",
            args.short_poll_interval,
            if args.source == Source::Appset {
                format!(
                    "; {} ApplicationSet passes in the window (one after each fetch, one per interval)",
                    passes1 - passes0
                )
            } else {
                String::new()
            }
        ),
    );
    if let (Some(a), Some(b)) = (&req0, &req1) {
        let d = b.since(a);
        report.add(
            "idle",
            "API writes while idle",
            d.writes_text(),
            format!("all clients; {} dry runs, {} reads", d.dry_runs, d.reads),
        );
    }
    let mut polled = Vec::new();
    for r in 0..args.poll_commits {
        let idx = ((2 * r + 1) * n) / (2 * args.poll_commits.max(1));
        let rev = revs.entry(idx).or_insert(0);
        *rev += 1;
        let rev = *rev;
        fixture::commit_change(&fx, idx, rev)?;
        let started = Instant::now();
        let latency = cluster::wait_for_rev(
            client,
            &fx.app_namespaces[idx],
            &format!("cm-{idx:05}"),
            &rev.to_string(),
            started,
            Duration::from_secs(args.short_poll_interval * 4 + 60),
        )
        .await?;
        polled.push(latency);
        tokio::time::sleep(Duration::from_millis(args.commit_gap_ms)).await;
    }
    polled.sort();
    report.add(
        "one commit",
        "commit to live, polling: p50 / p99",
        p50_p99(&polled),
        format!(
            "{} commits with `--repo-poll-interval {}`: dominated by the interval; min {}, max {}",
            polled.len(),
            args.short_poll_interval,
            millis(quantile(&polled, 0.0)),
            millis(quantile(&polled, 1.0))
        ),
    );
    memory(report, "second process, end", pid);
    plumb.stop();
    if polled.is_empty() && args.poll_commits > 0 {
        bail!("no polling commit was measured");
    }
    Ok(())
}

/// `--shards N`: only the cold sync, by N replicas (see `shards.rs`).
async fn shards_only(
    args: &Args,
    kubeconfig: &Path,
    client: &kube::Client,
    fx: &fixture::Fixture,
    apps_namespace: &str,
    work: &Path,
    report: &mut Report,
) -> Result<()> {
    let n = args.apps;
    report.header.push(format!(
        "- shards: {} replicas of `plumb serve --shards {}` started together, each with its own data folder and `--identity replica-I`; default Lease timing",
        args.shards, args.shards
    ));
    let binary = args.plumb.canonicalize().with_context(|| {
        format!(
            "the Plumb binary {} (build it with `cargo build --release --bin plumb`)",
            args.plumb.display()
        )
    })?;
    let upload_log = work.join("upload-pack.log");
    let wrapper = plumb::upload_pack_wrapper(work, &upload_log)?;
    let server_pids: Vec<(String, u32)> = ["kube-apiserver", "etcd"]
        .into_iter()
        .filter_map(|name| Some((name.to_owned(), plumb::pid_of(name)?)))
        .collect();
    let data_dir = work.join("plumb-data");
    let log = work.join("plumb.log");
    let setup = shards::Setup {
        shards: args.shards,
        apps: n,
        total_objects: n * args.objects.per_app(),
        launch: Launch {
            binary: &binary,
            apps_file: &fx.apps_file,
            apps_namespace: Some(apps_namespace),
            kubeconfig,
            data_dir: &data_dir,
            poll_interval: args.poll_interval,
            workers: args.workers,
            path_prefix: &wrapper,
            log: &log,
            log_filter: "warn",
            json_log: false,
            extra: &[],
        },
        work,
        every: match n {
            0..=100 => Duration::from_millis(100),
            101..=1000 => Duration::from_millis(500),
            _ => Duration::from_secs(2),
        },
        timeout: Duration::from_secs(args.sync_timeout.unwrap_or(300 + n as u64 / 10)),
        server_pids: &server_pids,
    };
    shards::cold_sync(client, setup, report).await
}
