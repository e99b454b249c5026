//! Sharding over Leases with three `plumb serve --shards 3` replicas on the
//! real control plane: every application is synced by exactly one replica,
//! the one holding its shard (a stable FNV-1a hash of its name), and when
//! a replica is SIGKILLed its shard goes to another, which deploys the
//! next commit of its applications.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use kube::api::{Api, DynamicObject, Patch, PatchParams};
use serde_json::json;
use support::{Plumb, TestNamespace, applications, eventually, replicas};

const WAIT: Duration = Duration::from_secs(150);
const SHARDS: usize = 3;

/// The namespaces a replica wrote ConfigMaps into (not dry runs), from its
/// `argocd_app_k8s_request_total`.
async fn written_namespaces(plumb: &Plumb) -> Result<BTreeSet<String>> {
    Ok(replicas::writes(plumb)
        .await?
        .into_iter()
        .filter(|(l, _)| l.contains("resource_kind=\"configmaps\"") && l.contains("verb=\"Patch\""))
        .filter_map(|(l, _)| {
            let at = l.find("resource_namespace=\"")? + "resource_namespace=\"".len();
            Some(l[at..].split('"').next()?.to_string())
        })
        .collect())
}

async fn holders(namespace: &str) -> Result<Vec<String>> {
    let mut out = Vec::new();
    for i in 0..SHARDS {
        out.push(replicas::holder(namespace, &format!("plumb-controller-{i}")).await?);
    }
    Ok(out)
}

#[tokio::test]
async fn each_application_is_synced_by_its_shards_holder_and_a_dead_replicas_shard_moves()
-> Result<()> {
    let ns = TestNamespace::new("shards").await;
    ns.create().await?;
    let (repo, first) = replicas::settings_repo()?;
    let works: Vec<tempfile::TempDir> = (0..SHARDS)
        .map(|_| tempfile::tempdir())
        .collect::<std::io::Result<_>>()?;
    let paths: Vec<&std::path::Path> = works.iter().map(|w| w.path()).collect();
    let mut replicas = replicas::start(&paths, &ns.name, &["--shards", "3"]).await?;

    // Six applications, each deploying into a namespace of its own; two
    // per shard, so that every shard (shard 0, whose holder dies, too)
    // has applications to move.
    let apps: Api<DynamicObject> =
        Api::namespaced_with(support::client().await, &ns.name, &applications());
    let mut targets = Vec::new();
    let mut per_shard = [0usize; SHARDS];
    while targets.len() < 2 * SHARDS {
        let target = TestNamespace::new("sharded").await;
        let shard = plumb_engine::shard::shard_of(&target.name, SHARDS);
        if per_shard[shard] < 2 {
            per_shard[shard] += 1;
            targets.push(target);
        }
        // Names from the clock: distinct ones.
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let names: Vec<String> = targets.iter().map(|t| t.name.clone()).collect();
    ensure!(
        names.iter().collect::<BTreeSet<_>>().len() == names.len(),
        "{names:?}"
    );
    for name in &names {
        let app = json!({
            "apiVersion": "argoproj.io/v1alpha1", "kind": "Application",
            "metadata": {"name": name, "namespace": ns.name},
            "spec": {
                "project": "default",
                "source": {"repoURL": repo.url(), "targetRevision": "main", "path": "app"},
                "destination": {"server": "https://kubernetes.default.svc", "namespace": name},
                "syncPolicy": {"automated": {"prune": true}, "syncOptions": ["CreateNamespace=true"]},
            },
        });
        apps.patch(
            name,
            &PatchParams::apply("shards-test").force(),
            &Patch::Apply(&app),
        )
        .await?;
    }
    let all_synced = |revision: String| {
        let (apps, names) = (apps.clone(), names.clone());
        move || {
            let (apps, names, revision) = (apps.clone(), names.clone(), revision.clone());
            async move {
                for name in &names {
                    let object = apps.get(name).await?;
                    let status = object.data.get("status").cloned().unwrap_or_default();
                    if status["sync"]["status"] != "Synced"
                        || status["sync"]["revision"] != revision.as_str()
                    {
                        return Ok(None);
                    }
                }
                Ok(Some(()))
            }
        }
    };
    eventually(
        "every application synced at v1",
        WAIT,
        all_synced(first.clone()),
    )
    .await?;

    // Each application's namespace was written by one replica only: the
    // holder of the application's shard.
    let holders_now = holders(&ns.name).await?;
    let mut writers: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    for (i, replica) in replicas.iter().enumerate() {
        let replica = replica.as_ref().context("running")?;
        for written in written_namespaces(replica).await? {
            writers.entry(written).or_default().push(i);
        }
    }
    for name in &names {
        let shard = plumb_engine::shard::shard_of(name, SHARDS);
        let writer = writers.get(name).cloned().unwrap_or_default();
        ensure!(
            writer.len() == 1,
            "{name} (shard {shard}) was written by replicas {writer:?}; holders {holders_now:?}"
        );
        ensure!(
            holders_now[shard] == format!("replica-{}", writer[0]),
            "{name} is shard {shard}, held by {:?}, but replica-{} wrote it",
            holders_now[shard],
            writer[0]
        );
        // Every other replica lists it as another shard's, naming the holder.
        for (i, replica) in replicas.iter().enumerate() {
            let replica = replica.as_ref().context("running")?;
            if i == writer[0] {
                continue;
            }
            let shown = replica.app(name).await?;
            let elsewhere = shown["status"]["conditions"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|c| c["type"] == "ShardElsewhere")
                .with_context(|| format!("replica-{i} shows {name} without ShardElsewhere"))?;
            ensure!(
                elsewhere["message"]
                    .as_str()
                    .is_some_and(|m| m.contains(&holders_now[shard])),
                "{elsewhere}"
            );
        }
    }

    // The holder of shard 0 dies: its shard goes to another replica, which
    // deploys the next commit of its applications too.
    let victim: usize = holders_now[0]
        .strip_prefix("replica-")
        .and_then(|i| i.parse().ok())
        .context("shard 0 is held by a replica")?;
    drop(replicas[victim].take());
    repo.write("app/settings.yaml", &replicas::settings("2"))?;
    let second = repo.commit("v2")?;
    eventually(
        "every application synced at v2",
        WAIT,
        all_synced(second.clone()),
    )
    .await?;
    let after = holders(&ns.name).await?;
    ensure!(
        after.iter().all(|h| !h.is_empty() && *h != holders_now[0]),
        "holders after the kill and the v2 sync of shard 0's applications: {after:?}"
    );
    Ok(())
}
