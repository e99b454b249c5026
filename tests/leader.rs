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
use support::{Plumb, TestNamespace, applications, eventually, replicas};

const WAIT: Duration = Duration::from_secs(120);

/// Writes a replica made to anything but its Lease.
async fn writes(plumb: &Plumb) -> Result<u64> {
    Ok(replicas::writes(plumb).await?.iter().map(|(_, n)| n).sum())
}

async fn holder(namespace: &str) -> Result<String> {
    replicas::holder(namespace, "plumb-controller").await
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
    let (repo, first) = replicas::settings_repo()?;
    let works: Vec<tempfile::TempDir> = (0..3)
        .map(|_| tempfile::tempdir())
        .collect::<std::io::Result<_>>()?;
    let paths: Vec<&std::path::Path> = works.iter().map(|w| w.path()).collect();
    let mut replicas = replicas::start(&paths, &ns.name, &["--leader-elect"]).await?;

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
        let lines = replicas::writes(replica).await?;
        let n: u64 = lines.iter().map(|(_, n)| n).sum();
        if i == index {
            ensure!(n > 0, "the leader {leader} wrote nothing");
        } else {
            ensure!(n == 0, "follower replica-{i} wrote {n} times: {lines:?}");
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
    repo.write("app/settings.yaml", &replicas::settings("2"))?;
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

    // The new leader is stopped as Kubernetes stops a Pod (SIGTERM): it
    // gives the Lease up on its way out, and the last replica takes it.
    let index: usize = new_leader
        .strip_prefix("replica-")
        .and_then(|i| i.parse().ok())
        .context("the new leader is a replica")?;
    let mut stopping = replicas[index].take().context("the new leader runs")?;
    stopping.terminate()?;
    let log = stopping.log_text();
    ensure!(log.contains("released the lease"), "{log}");
    let last = eventually("the last replica takes the Lease", WAIT, || async {
        let h = holder(&ns.name).await?;
        Ok((!h.is_empty() && h != new_leader).then_some(h))
    })
    .await?;
    ensure!(last != leader, "the killed replica holds the Lease: {last}");
    Ok(())
}

/// A leader killed while its operation waits on a wave leaves that
/// operation `Running` in the Application object; the replica that takes
/// over records it as Failed, saying the operation did not finish, and
/// does not carry it on by itself (no automated policy: the later wave is
/// never applied).
#[tokio::test]
async fn an_operation_cut_off_by_the_leaders_death_is_recorded_as_failed() -> Result<()> {
    let ns = TestNamespace::new("leader-cut").await;
    ns.create().await?;
    let repo = support::GitRepo::new(None)?;
    // Wave 0 never becomes Healthy (nodesim never pulls a `.invalid`
    // image), so the operation waits there, Running.
    repo.write(
        "app/stuck.yaml",
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: stuck\n  annotations: {argocd.argoproj.io/sync-wave: \"0\"}\n\
         spec:\n  replicas: 1\n  selector: {matchLabels: {app: stuck}}\n  template:\n    metadata: {labels: {app: stuck}}\n\
         \x20   spec: {containers: [{name: c, image: \"registry.invalid/never:1\"}]}\n",
    )?;
    repo.write(
        "app/after.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: after\n  annotations: {argocd.argoproj.io/sync-wave: \"1\"}\ndata: {v: \"1\"}\n",
    )?;
    repo.commit("a wave that never gets healthy")?;
    let works: Vec<tempfile::TempDir> = (0..2)
        .map(|_| tempfile::tempdir())
        .collect::<std::io::Result<_>>()?;
    let paths: Vec<&std::path::Path> = works.iter().map(|w| w.path()).collect();
    let mut replicas = replicas::start(&paths, &ns.name, &["--leader-elect"]).await?;

    let apps: Api<DynamicObject> =
        Api::namespaced_with(support::client().await, &ns.name, &applications());
    let name = "waits";
    let app = json!({
        "apiVersion": "argoproj.io/v1alpha1", "kind": "Application",
        "metadata": {"name": name, "namespace": ns.name},
        "spec": {
            "project": "default",
            "source": {"repoURL": repo.url(), "targetRevision": "main", "path": "app"},
            "destination": {"server": "https://kubernetes.default.svc", "namespace": ns.name},
        },
    });
    apps.patch(
        name,
        &PatchParams::apply("leader-test").force(),
        &Patch::Apply(&app),
    )
    .await?;
    let leader = eventually("a leader", WAIT, || async {
        let h = holder(&ns.name).await?;
        Ok((!h.is_empty()).then_some(h))
    })
    .await?;
    let index: usize = leader
        .strip_prefix("replica-")
        .and_then(|i| i.parse().ok())
        .with_context(|| format!("the holder {leader:?} is one of the replicas"))?;
    let url = replicas[index]
        .as_ref()
        .context("the leader runs")?
        .url
        .clone();
    eventually("the leader knows the application", WAIT, || {
        let url = url.clone();
        async move {
            let r = reqwest::get(format!("{url}/api/v1/applications/{name}")).await?;
            Ok(r.status().is_success().then_some(()))
        }
    })
    .await?;
    let started = reqwest::Client::new()
        .post(format!("{url}/api/v1/applications/{name}/sync"))
        .json(&json!({}))
        .send()
        .await?;
    ensure!(
        started.status().is_success(),
        "sync answered {}: {}",
        started.status(),
        started.text().await?
    );
    let phase = |want: &'static str| {
        let apps = apps.clone();
        move || {
            let apps = apps.clone();
            async move {
                let object = apps.get(name).await?;
                let op = object
                    .data
                    .pointer("/status/operationState")
                    .cloned()
                    .unwrap_or_default();
                Ok((op["phase"] == want).then_some(op))
            }
        }
    };
    eventually(
        "the operation Running in the object",
        WAIT,
        phase("Running"),
    )
    .await?;
    let client = support::client().await;
    let deployments: Api<DynamicObject> = Api::namespaced_with(
        client.clone(),
        &ns.name,
        &support::resource("apps", "v1", "Deployment", "deployments"),
    );
    eventually("wave 0 applied", WAIT, || {
        let deployments = deployments.clone();
        async move { Ok(deployments.get_opt("stuck").await?.map(|_| ())) }
    })
    .await?;
    // Still waiting on wave 0's health when the leader dies.
    eventually("the operation still Running", WAIT, phase("Running")).await?;

    drop(replicas[index].take());
    let failed = eventually(
        "the new leader records the operation as Failed",
        WAIT,
        phase("Failed"),
    )
    .await?;
    let message = failed["message"].as_str().unwrap_or_default();
    ensure!(message.contains("did not finish"), "{failed}");
    let new_leader = holder(&ns.name).await?;
    ensure!(new_leader != leader, "the Lease moved: {new_leader}");
    // The survivor shows the same in its API, and nothing carried the
    // operation on: wave 1 was never applied.
    let survivor = replicas
        .iter()
        .flatten()
        .next()
        .context("a replica is left")?;
    let shown = survivor.app(name).await?;
    ensure!(
        shown["status"]["operationState"]["phase"] == "Failed",
        "{}",
        shown["status"]["operationState"]
    );
    let configmaps: Api<k8s_openapi::api::core::v1::ConfigMap> = Api::namespaced(client, &ns.name);
    ensure!(
        configmaps.get_opt("after").await?.is_none(),
        "wave 1 was applied after the hand-over"
    );
    Ok(())
}
