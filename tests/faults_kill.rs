//! `plumb serve` killed with SIGKILL at random points of a sync, 20 times:
//! after each restart no history record is lost or duplicated, an
//! operation cut off says so, and the next sync converges.

mod support;

use std::time::{Duration, Instant};

use anyhow::{Result, ensure};
use serde_json::{Value, json};
use support::{
    GitRepo, Plumb, TestNamespace, application, configmaps, eventually, get_object, str_at,
};

const OBJECTS: usize = 30;
const ROUNDS: u64 = 20;

/// (id, revision) of each history entry.
fn history(app: &Value) -> Vec<(i64, String)> {
    app["status"]["history"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|h| {
            (
                h["id"].as_i64().unwrap_or(-1),
                h["revision"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

/// The objects of round `round`: three waves of ConfigMaps, so a sync has
/// steps to be cut between.
fn write_objects(repo: &GitRepo, round: u64) -> Result<()> {
    for i in 0..OBJECTS {
        repo.write(
            &format!("app/cm-{i}.yaml"),
            &format!(
                "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cm-{i}\n  annotations:\n    argocd.argoproj.io/sync-wave: \"{}\"\ndata:\n  round: \"{round}\"\n",
                i % 3
            ),
        )?;
    }
    Ok(())
}

/// The last lines of a log.
fn tail(log: &str) -> String {
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}

/// A small deterministic generator (xorshift), so a failing run can be
/// replayed with its seed.
fn next(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

#[tokio::test]
async fn sigkill_during_syncs_loses_and_duplicates_no_history() -> Result<()> {
    let ns = TestNamespace::new("sigkill").await;
    let repo = GitRepo::new(None)?;
    write_objects(&repo, 0)?;
    repo.commit("round 0")?;
    let work = tempfile::tempdir()?;
    let name = ns.name.clone();
    // Manual syncs only (the test starts each), keeping every record.
    let apps = application(
        &name,
        &repo.url(),
        "app",
        &ns.name,
        "  revisionHistoryLimit: 1000\n  syncPolicy:\n    syncOptions: [CreateNamespace=true]\n",
    );
    let mut plumb = Plumb::start(work.path(), &apps).await?;
    let sync = json!({"prune": true});
    let first = plumb
        .operate(&format!("/api/v1/applications/{name}/sync"), sync.clone())
        .await?;
    ensure!(
        str_at(&first, "/status/operationState/phase") == "Succeeded",
        "{first}"
    );

    let seed = std::env::var("PLUMB_KILL_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(1, |d| d.as_nanos() as u64 | 1)
        });
    eprintln!("PLUMB_KILL_SEED={seed}");
    let mut rng = seed;
    let (mut cut, mut completed, mut recovery) = (0, 0, Duration::ZERO);
    for round in 1..=ROUNDS {
        let before = history(&plumb.app(&name).await?);
        write_objects(&repo, round)?;
        let head = repo.commit(&format!("round {round}"))?;
        // Once Plumb has fetched it (it polls every 2 s).
        eventually(
            &format!("round {round} is fetched"),
            Duration::from_secs(60),
            || async {
                let app = plumb.app(&name).await?;
                Ok((str_at(&app, "/status/sync/revision") == head).then_some(()))
            },
        )
        .await?;
        let started = plumb
            .start_operation(&format!("/api/v1/applications/{name}/sync"), sync.clone())
            .await?;
        ensure!(str_at(&started, "/status/operationState/phase") == "Running");
        // A random point of the sync (or just after it).
        tokio::time::sleep(Duration::from_millis(next(&mut rng) % 1500)).await;
        let killed = Instant::now();
        plumb = plumb.restart().await?;

        let app = plumb.app(&name).await?;
        let after = history(&app);
        let phase = str_at(&app, "/status/operationState/phase").to_string();
        let message = str_at(&app, "/status/operationState/message").to_string();
        // Nothing lost or changed, at most the one new record, ids unique
        // and increasing.
        ensure!(
            after.starts_with(&before),
            "round {round}: {before:?} became {after:?}"
        );
        ensure!(after.len() <= before.len() + 1, "round {round}: {after:?}");
        ensure!(
            after.windows(2).all(|w| w[0].0 < w[1].0),
            "round {round}: {after:?}"
        );
        if let Some((_, revision)) = after.get(before.len()) {
            ensure!(revision == &head, "round {round}: a record of {revision}");
        }
        match phase.as_str() {
            "Succeeded" => {
                ensure!(
                    after.len() == before.len() + 1,
                    "round {round}: a success without its record"
                );
                completed += 1;
            }
            "Failed" => {
                ensure!(
                    message.contains("Plumb stopped while this operation ran"),
                    "round {round}: {message}\n{}",
                    tail(&plumb.log_text())
                );
                cut += 1;
                // The history record and the operation's end are one
                // write: an operation that did not finish has no record.
                ensure!(
                    after.len() == before.len(),
                    "round {round}: a record beside an operation that did not finish: {after:?}"
                );
            }
            other => anyhow::bail!("round {round}: the operation is {other}: {message}"),
        }
        // The next sync converges: every object at this round's value.
        if phase != "Succeeded" {
            let done = plumb
                .operate(&format!("/api/v1/applications/{name}/sync"), sync.clone())
                .await?;
            ensure!(
                str_at(&done, "/status/operationState/phase") == "Succeeded",
                "round {round}: {done}"
            );
            let last = history(&done);
            ensure!(
                last.len() == after.len() + 1 && last.starts_with(&after),
                "round {round}: {last:?}"
            );
        }
        for i in 0..OBJECTS {
            let cm = eventually(
                &format!("cm-{i} at round {round}"),
                Duration::from_secs(60),
                || async {
                    let cm = get_object(&configmaps(), &ns.name, &format!("cm-{i}")).await?;
                    Ok(cm.filter(|cm| str_at(cm, "/data/round") == round.to_string()))
                },
            )
            .await?;
            ensure!(str_at(&cm, "/data/round") == round.to_string());
        }
        recovery = recovery.max(killed.elapsed());
    }
    let app = plumb.wait_status(&name, "Synced", None).await?;
    let all = history(&app);
    ensure!(
        all.len() == 1 + ROUNDS as usize,
        "one record per finished sync: {all:?}"
    );
    eprintln!(
        "{ROUNDS} kills: {cut} cut a sync off, {completed} came after it ended; longest kill-to-converged {recovery:?}"
    );
    Ok(())
}
