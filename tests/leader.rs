//! Leader election over a Lease with three `plumb serve` replicas on the
//! real control plane: exactly one writes (each replica's own count of
//! its requests to the API server says which), every replica serves the
//! read API, a SIGKILLed leader is replaced once its Lease expires, a
//! commit made during the hand-over is deployed exactly once, and the
//! history the dead leader wrote into the Application object is kept.

mod support;

use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use kube::api::{Api, DynamicObject, Patch, PatchParams};
use serde_json::{Value, json};
use support::{GitRepo, Plumb, TestNamespace, applications, eventually, resource};

const WAIT: Duration = Duration::from_secs(120);
/// Short lease times, so that a hand-over takes seconds.
const LEASE: [&str; 6] = [
    "--lease-duration",
    "6",
    "--renew-deadline",
    "4",
    "--retry-period",
    "1",
];

/// Writes (not dry runs) a replica made to anything but its Lease, from
/// its `argocd_app_k8s_request_total`.
async fn writes(plumb: &Plumb) -> Result<u64> {
    let text = reqwest::get(format!("{}/metrics", plumb.url))
        .await?
        .text()
        .await?;
    let mut total = 0;
    for line in text.lines() {
        if !line.starts_with("argocd_app_k8s_request_total{")
            || line.contains("dry_run=\"true\"")
            || line.contains("resource_kind=\"leases\"")
        {
            continue;
        }
        let write = ["Create", "Update", "Patch", "Delete"]
            .iter()
            .any(|v| line.contains(&format!("verb=\"{v}\"")));
        if write {
            let count: f64 = line
                .rsplit(' ')
                .next()
                .and_then(|n| n.parse().ok())
                .context("a counter value")?;
            total += count as u64;
        }
    }
    Ok(total)
}

async fn holder(namespace: &str) -> Result<String> {
    let leases: Api<DynamicObject> = Api::namespaced_with(
        support::client().await,
        namespace,
        &resource("coordination.k8s.io", "v1", "Lease", "leases"),
    );
    Ok(leases
        .get_opt("plumb-controller")
        .await?
        .and_then(|l| {
            l.data
                .pointer("/spec/holderIdentity")
                .and_then(Value::as_str)
                .map(str::to_string)
        })
        .unwrap_or_default())
}

/// The revisions of the Application object's `status.history`, by id.
fn history(app: &DynamicObject) -> Vec<(i64, String)> {
    app.data
        .pointer("/status/history")
        .and_then(Value::as_array)
        .map(|h| {
            h.iter()
                .map(|e| {
                    (
                        e["id"].as_i64().unwrap_or(-1),
                        e["revision"].as_str().unwrap_or_default().to_string(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test]
async fn one_replica_writes_and_a_killed_leader_hands_over_without_losing_history() -> Result<()> {
    let ns = TestNamespace::new("leader").await;
    ns.create().await?;
    let repo = GitRepo::new(None)?;
    let settings = |v: &str| {
        format!(
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\ndata: {{v: \"{v}\"}}\n"
        )
    };
    repo.write("app/settings.yaml", &settings("1"))?;
    let first = repo.commit("v1")?;

    let works: Vec<tempfile::TempDir> = (0..3)
        .map(|_| tempfile::tempdir())
        .collect::<std::io::Result<_>>()?;
    let mut replicas: Vec<Option<Plumb>> = Vec::new();
    for (i, work) in works.iter().enumerate() {
        let identity = format!("replica-{i}");
        let mut args = vec!["--leader-elect", "--identity", identity.as_str()];
        args.extend(LEASE);
        replicas.push(Some(
            Plumb::start_watching_with_args(work.path(), "", &ns.name, &args).await?,
        ));
    }

    let apps: Api<DynamicObject> =
        Api::namespaced_with(support::client().await, &ns.name, &applications());
    let name = "guarded";
    let app = json!({
        "apiVersion": "argoproj.io/v1alpha1", "kind": "Application",
        "metadata": {"name": name, "namespace": ns.name},
        "spec": {
            "project": "default",
            "source": {"repoURL": repo.url(), "targetRevision": "main", "path": "app"},
            "destination": {"server": "https://kubernetes.default.svc", "namespace": ns.name},
            "syncPolicy": {"automated": {"prune": true}},
        },
    });
    apps.patch(
        name,
        &PatchParams::apply("leader-test").force(),
        &Patch::Apply(&app),
    )
    .await?;
    let synced_at = |revision: String| {
        let apps = apps.clone();
        move || {
            let (apps, revision) = (apps.clone(), revision.clone());
            async move {
                let object = apps.get(name).await?;
                let status = object.data.get("status").cloned().unwrap_or_default();
                Ok((status["sync"]["status"] == "Synced"
                    && status["sync"]["revision"] == revision.as_str()
                    && status["health"]["status"] == "Healthy")
                    .then_some(object))
            }
        }
    };
    eventually("v1 synced by the leader", WAIT, synced_at(first.clone())).await?;
    support::wait_configmap(&ns.name, "settings", "v", "1").await?;

    // Exactly one replica holds the Lease, and only it wrote.
    let leader = holder(&ns.name).await?;
    let index: usize = leader
        .strip_prefix("replica-")
        .and_then(|i| i.parse().ok())
        .with_context(|| format!("the holder {leader:?} is one of the replicas"))?;
    for (i, replica) in replicas.iter().enumerate() {
        let replica = replica.as_ref().context("running")?;
        let n = writes(replica).await?;
        if i == index {
            ensure!(n > 0, "the leader {leader} wrote nothing");
        } else {
            ensure!(n == 0, "follower replica-{i} wrote {n} times");
        }
        // Every replica answers the read API from its own watches.
        let seen = replica.app(name).await?;
        ensure!(
            seen["status"]["sync"]["revision"] == first.as_str(),
            "replica-{i} shows {}",
            seen["status"]["sync"]
        );
    }
    // A follower does not start syncs; it names the leader.
    let follower = replicas
        .iter()
        .enumerate()
        .find(|(i, _)| *i != index)
        .and_then(|(_, r)| r.as_ref())
        .context("a follower")?;
    let refused = reqwest::Client::new()
        .post(format!("{}/api/v1/applications/{name}/sync", follower.url))
        .json(&json!({}))
        .send()
        .await?;
    ensure!(
        refused.status() == 503,
        "a follower's sync answered {}",
        refused.status()
    );
    let message = refused.text().await?;
    ensure!(message.contains(&leader), "{message}");

    // The leader dies (SIGKILL: no release); a commit lands meanwhile.
    let killed = Instant::now();
    drop(replicas[index].take());
    repo.write("app/settings.yaml", &settings("2"))?;
    let second = repo.commit("v2")?;
    let new_leader = eventually("another replica takes the Lease", WAIT, || async {
        let h = holder(&ns.name).await?;
        Ok((!h.is_empty() && h != leader).then_some(h))
    })
    .await?;
    let handed_over = killed.elapsed();
    let object = eventually(
        "v2 synced by the new leader",
        WAIT,
        synced_at(second.clone()),
    )
    .await?;
    support::wait_configmap(&ns.name, "settings", "v", "2").await?;
    eprintln!("hand-over from {leader} to {new_leader} after {handed_over:?}");

    // The history keeps v1 (written by the dead leader) and has v2 once.
    let entries = history(&object);
    let revisions: Vec<&str> = entries.iter().map(|(_, r)| r.as_str()).collect();
    ensure!(
        revisions == [first.as_str(), second.as_str()],
        "history {entries:?}"
    );
    ensure!(entries[0].0 < entries[1].0, "ids {entries:?}");
    // Still exactly one writer: the follower left has written nothing.
    for (i, replica) in replicas.iter().enumerate() {
        let Some(replica) = replica else { continue };
        let n = writes(replica).await?;
        if format!("replica-{i}") == new_leader {
            ensure!(n > 0, "the new leader wrote nothing");
        } else {
            ensure!(n == 0, "follower replica-{i} wrote {n} times");
        }
    }
    Ok(())
}
