//! `--shards N`: the cold sync of the Application objects by N replicas of
//! `plumb serve --shards N`, started together, each with its own data
//! folder and identity; the Leases `plumb-controller-I` share the shards
//! out. Measured: start to every application Synced by the replica that
//! holds its shard, CPU and memory per replica, the API requests of all
//! clients, and how the applications and the writes fell to the replicas.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Result, bail};

use crate::cluster::Requests;
use crate::plumb::{self, CpuSample, Launch, Plumb};
use crate::{Report, millis, secs};

/// Everything the phase needs from the harness.
pub struct Setup<'a> {
    pub shards: usize,
    pub apps: usize,
    pub total_objects: usize,
    pub launch: Launch<'a>,
    pub work: &'a Path,
    pub every: Duration,
    pub timeout: Duration,
    pub server_pids: &'a [(String, u32)],
}

/// Starts the replicas, waits for the cold sync, reports, stops them.
pub async fn cold_sync(client: &kube::Client, setup: Setup<'_>, report: &mut Report) -> Result<()> {
    let n = setup.apps;
    let ticks = plumb::clock_ticks();
    let (req0, cpu0) = (
        Requests::sample(client).await.ok(),
        CpuSample::take(setup.server_pids, ticks),
    );
    let started = Instant::now();
    let mut replicas: Vec<Plumb> = Vec::new();
    for i in 0..setup.shards {
        let data_dir = setup.work.join(format!("plumb-data-{i}"));
        let log = setup.work.join(format!("plumb-replica-{i}.log"));
        let extra = vec![
            "--shards".to_string(),
            setup.shards.to_string(),
            "--identity".to_string(),
            format!("replica-{i}"),
        ];
        let launch = Launch {
            data_dir: &data_dir,
            log: &log,
            extra: &extra,
            ..setup.launch.clone()
        };
        let replica = Plumb::start(&launch).await?;
        if i == 0 {
            report
                .header
                .push(format!("- replica 0's command: `{}`", replica.command));
        }
        replicas.push(replica);
    }
    let healthz = started.elapsed();

    // Every application counts once: on the replica that holds its shard
    // (the others list it with a ShardElsewhere condition).
    let mut synced_at = None;
    let mut owners: Vec<usize> = vec![0; replicas.len()];
    loop {
        for replica in &mut replicas {
            if let Some(status) = replica.exited()? {
                bail!("a replica exited with {status}:\n{}", replica.log_tail());
            }
        }
        let mut synced = 0;
        let mut owned_total = 0;
        for (i, replica) in replicas.iter().enumerate() {
            if let Ok(owned) = replica.owned().await {
                owners[i] = owned.len();
                owned_total += owned.len();
                synced += owned.iter().filter(|(_, sync, _)| sync == "Synced").count();
            }
        }
        if owned_total == n && synced == n {
            synced_at = Some(started.elapsed());
            break;
        }
        if started.elapsed() > setup.timeout {
            break;
        }
        tokio::time::sleep(setup.every).await;
    }
    let (req1, cpu1) = (
        Requests::sample(client).await.ok(),
        CpuSample::take(setup.server_pids, ticks),
    );
    let Some(synced) = synced_at else {
        bail!(
            "not every application Synced by its shard's replica within {} (owned per replica: {owners:?})",
            secs(setup.timeout)
        );
    };
    let rate = setup.total_objects as f64 / synced.as_secs_f64();
    report.add(
        "shards",
        &format!("{} replica(s) started to all {n} applications Synced", setup.shards),
        secs(synced),
        format!(
            "{rate:.0} objects/s; every /healthz answered after {}; each replica's list read every {}",
            millis(healthz),
            millis(setup.every)
        ),
    );
    report.add(
        "shards",
        "applications per replica",
        format!("{owners:?}"),
        "the applications each replica compares and syncs (its shards' share of the FNV-1a hash of the names)",
    );
    let server_cpu: Vec<String> = setup
        .server_pids
        .iter()
        .filter_map(|(name, _)| Some(format!("{name} {:.1} s", cpu1.since(&cpu0, name)?)))
        .collect();
    for (i, replica) in replicas.iter().enumerate() {
        let cpu = plumb::cpu_seconds(replica.pid(), ticks).unwrap_or(f64::NAN);
        let memory = plumb::memory_mib(replica.pid())
            .map(|(hwm, rss)| format!("VmHWM {hwm:.0} MiB, VmRSS {rss:.0} MiB"))
            .unwrap_or_default();
        let writes: u64 = replica
            .writes()
            .await
            .map(|w| w.iter().map(|(_, n)| n).sum())
            .unwrap_or_default();
        report.add(
            "shards",
            &format!("replica {i}"),
            format!("CPU {cpu:.1} s; {memory}"),
            format!("{} applications; {writes} writes to the API server besides its Leases (its own request counter)", owners[i]),
        );
    }
    report.add(
        "shards",
        "API server CPU",
        server_cpu.join(", "),
        "during the cold sync",
    );
    if let (Some(a), Some(b)) = (&req0, &req1) {
        let d = b.since(a);
        report.add(
            "shards",
            "API requests",
            format!(
                "{:.2} per object",
                (d.writes + d.dry_runs + d.reads) as f64 / setup.total_objects as f64
            ),
            format!(
                "writes {}; dry runs {}; reads {} (all clients of the API server)",
                d.writes_text(),
                d.dry_runs,
                d.reads
            ),
        );
    }
    for mut replica in replicas {
        replica.stop();
    }
    Ok(())
}
