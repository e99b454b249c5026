//! Cluster and disk faults end to end: the API server answering 429 and 503
//! through a misbehaving proxy; the data dir's disk full; and, on a
//! control plane of the test's own (`--instance 3`), kube-apiserver stopped
//! and restarted during a sync of 1,000 objects and etcd paused (SIGSTOP)
//! for 30 s. Each time the operation ends Failed or completes and is
//! recorded, nothing is wrongly pruned, and Plumb recovers on its own.

mod support;

use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use kube::api::{Api, DynamicObject, ListParams, PostParams};
use serde_json::{Value, json};
use support::faults::{FaultyProxy, OwnCluster, SmallDisk};
use support::{
    GitRepo, Plumb, TestNamespace, application, configmap_value, configmaps, eventually,
    kubeconfig, str_at, wait_configmap,
};

const AUTO: &str = "  syncPolicy:\n    automated: {prune: true, selfHeal: true}\n    syncOptions: [CreateNamespace=true]\n";
const WAIT: Duration = Duration::from_secs(180);

/// `count` ConfigMaps in one file, each with `value`.
fn many(count: usize, value: &str) -> String {
    (0..count)
        .map(|i| format!("---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cm-{i}\ndata:\n  v: \"{value}\"\n"))
        .collect()
}

/// An untracked ConfigMap: Plumb must never delete it.
async fn create_untracked(client: kube::Client, ns: &str, name: &str) -> Result<()> {
    let api: Api<DynamicObject> = Api::namespaced_with(client, ns, &configmaps());
    let cm: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": ns},
        "data": {"v": "mine"},
    }))?;
    api.create(&PostParams::default(), &cm).await?;
    Ok(())
}

fn history_len(app: &Value) -> usize {
    app["status"]["history"].as_array().map_or(0, Vec::len)
}

#[tokio::test]
async fn throttling_429_and_503_are_retried_and_the_sync_converges() -> Result<()> {
    let ns = TestNamespace::new("throttle").await;
    ns.create().await?;
    create_untracked(support::client().await, &ns.name, "untracked").await?;
    let repo = GitRepo::new(None)?;
    repo.write("app/many.yaml", &many(50, "one"))?;
    repo.commit("one")?;
    let work = tempfile::tempdir()?;
    // The shared cluster's API server, by its kubeconfig.
    let text = std::fs::read_to_string(kubeconfig())?;
    let config: Value = serde_yaml::from_str(&text)?;
    let server = config["clusters"][0]["cluster"]["server"]
        .as_str()
        .context("a server")?;
    let address: std::net::SocketAddr = server.trim_start_matches("https://").parse()?;
    // Every 4th request fails, from the start: discovery, watches, dry
    // runs and applies all meet 429 and 503.
    let proxy = FaultyProxy::start(address, 4)?;
    let proxied = proxy.kubeconfig(&kubeconfig(), work.path())?;
    let apps = application(&ns.name, &repo.url(), "app", &ns.name, AUTO);
    let plumb = Plumb::start_as(work.path(), &apps, &[], Some(proxied)).await?;
    let started = Instant::now();
    plumb.wait_status(&ns.name, "Synced", None).await?;
    wait_configmap(&ns.name, "cm-49", "v", "one").await?;
    repo.write("app/many.yaml", &many(40, "two"))?;
    repo.commit("two, ten fewer")?;
    wait_configmap(&ns.name, "cm-0", "v", "two").await?;
    eventually("the ten removed are pruned", WAIT, || async {
        Ok(configmap_value(&ns.name, "cm-45", "v")
            .await?
            .is_none()
            .then_some(()))
    })
    .await?;
    let app = plumb.wait_status(&ns.name, "Synced", None).await?;
    let faults = proxy.faults.load(std::sync::atomic::Ordering::SeqCst);
    let requests = proxy.requests.load(std::sync::atomic::Ordering::SeqCst);
    eprintln!(
        "429/503 on every 4th request: {faults} of {requests} refused; converged twice in {:?}; operation {}",
        started.elapsed(),
        str_at(&app, "/status/operationState/phase")
    );
    ensure!(faults > 10, "only {faults} faults injected");
    ensure!(history_len(&app) >= 2, "{}", app["status"]["history"]);
    ensure!(
        configmap_value(&ns.name, "untracked", "v")
            .await?
            .as_deref()
            == Some("mine"),
        "an untracked object was deleted"
    );
    for i in 0..40 {
        ensure!(
            configmap_value(&ns.name, &format!("cm-{i}"), "v")
                .await?
                .as_deref()
                == Some("two")
        );
    }
    Ok(())
}

#[tokio::test]
async fn a_full_data_disk_fails_writes_clearly_and_loses_nothing_stored() -> Result<()> {
    let ns = TestNamespace::new("diskfull").await;
    let repo = GitRepo::new(None)?;
    repo.write("app/cm.yaml", &many(3, "one"))?;
    repo.commit("one")?;
    let work = tempfile::tempdir()?;
    let disk = SmallDisk::mount(&work.path().join("data"), 16)?;
    let name = ns.name.clone();
    let apps = application(
        &name,
        &repo.url(),
        "app",
        &ns.name,
        "  syncPolicy:\n    syncOptions: [CreateNamespace=true]\n",
    );
    let plumb = Plumb::start(work.path(), &apps).await?;
    let sync = format!("/api/v1/applications/{name}/sync");
    let first = plumb.operate(&sync, json!({})).await?;
    ensure!(
        str_at(&first, "/status/operationState/phase") == "Succeeded",
        "{first}"
    );
    let before = first["status"]["history"].clone();
    ensure!(history_len(&first) == 1);

    repo.write("app/cm.yaml", &many(3, "two"))?;
    let head = repo.commit("two")?;
    eventually("the commit is fetched", WAIT, || async {
        let app = plumb.app(&name).await?;
        Ok((str_at(&app, "/status/sync/revision") == head).then_some(()))
    })
    .await?;
    let filler = disk.fill()?;
    // A sync while the disk is full: refused with a clear error, or run
    // with a clear error about what could not be recorded.
    let (code, answer) = plumb.post(&sync, json!({"revision": head})).await?;
    eprintln!("sync on a full disk: {code} {answer}");
    if code == 200 {
        let app = plumb.wait_operation(&answer).await?;
        eprintln!(
            "  ended {}: {}",
            str_at(&app, "/status/operationState/phase"),
            str_at(&app, "/status/operationState/message")
        );
    } else {
        ensure!(code >= 500 || code == 507 || code == 400, "{code} {answer}");
        ensure!(
            answer.to_string().to_lowercase().contains("space")
                || answer.to_string().contains("store"),
            "{answer}"
        );
    }
    // The API keeps answering, and what was stored is still there.
    let app = plumb.app(&name).await?;
    let history = app["status"]["history"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    ensure!(
        history.first() == before.as_array().and_then(|h| h.first()),
        "{history:?} vs {before}"
    );
    let log = plumb.log_text();
    eprintln!(
        "log lines about the disk: {}",
        log.lines()
            .filter(|l| l.contains("No space") || l.contains("store"))
            .take(5)
            .collect::<Vec<_>>()
            .join("\n")
    );

    // Space comes back. sled refuses every write after an I/O error until
    // the database is opened again: the store does that on its own, so the
    // next sync is recorded with no restart of Plumb, and nothing stored
    // before is lost.
    std::fs::remove_file(filler)?;
    let after = plumb.app(&name).await?;
    ensure!(
        after["status"]["history"][0] == before[0],
        "{}",
        after["status"]["history"]
    );
    let recovered = Instant::now();
    let done = plumb.operate(&sync, json!({"revision": head})).await?;
    ensure!(
        str_at(&done, "/status/operationState/phase") == "Succeeded",
        "{done}"
    );
    eprintln!(
        "sync recorded {:?} after space came back",
        recovered.elapsed()
    );
    // The first record is intact and the new one is the last; the sync on
    // the full disk may have left a record or not (its write failed after
    // sled took it in, or before), so the length is one or two more.
    let records = |app: &Value| -> Vec<(i64, String)> {
        app["status"]["history"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|h| {
                (
                    h["id"].as_i64().unwrap_or(-1),
                    str_at(h, "/revision").to_string(),
                )
            })
            .collect()
    };
    let history = records(&done);
    ensure!(
        done["status"]["history"][0] == before[0]
            && (2..=3).contains(&history.len())
            && history
                .last()
                .is_some_and(|(_, revision)| revision == &head)
            && history.windows(2).all(|w| w[0].0 < w[1].0),
        "{}",
        done["status"]["history"]
    );
    // And it is on disk: a restart shows the same history.
    let plumb = plumb.restart().await?;
    let reread = plumb.app(&name).await?;
    ensure!(
        records(&reread) == history,
        "after a restart: {}",
        reread["status"]["history"]
    );
    wait_configmap(&ns.name, "cm-0", "v", "two").await?;
    drop(plumb);
    drop(disk);
    Ok(())
}

/// Waits until every `cm-N` of `count` has `v` = `value` on `client`.
async fn all_have(client: &kube::Client, ns: &str, count: usize, value: &str) -> Result<()> {
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), ns, &configmaps());
    eventually(
        &format!("{count} ConfigMaps have v={value}"),
        WAIT,
        || async {
            let list = api.list(&ListParams::default()).await?;
            let done = list
                .items
                .iter()
                .filter(|o| o.data.pointer("/data/v").and_then(Value::as_str) == Some(value))
                .count();
            Ok((done == count).then_some(()))
        },
    )
    .await
}

#[tokio::test]
async fn api_server_restart_and_paused_etcd_during_syncs_of_1000_objects() -> Result<()> {
    let state = tempfile::tempdir()?;
    let cluster = OwnCluster::up(state.path(), 3)?;
    let client = cluster.client().await?;
    let ns = "faults";
    let namespaces: Api<DynamicObject> = Api::all_with(
        client.clone(),
        &support::resource("", "v1", "Namespace", "namespaces"),
    );
    namespaces
        .create(
            &PostParams::default(),
            &serde_json::from_value(
                json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}),
            )?,
        )
        .await?;
    create_untracked(client.clone(), ns, "untracked").await?;
    let repo = GitRepo::new(None)?;
    repo.write("app/many.yaml", &many(1000, "one"))?;
    repo.commit("one")?;
    let work = tempfile::tempdir()?;
    let apps = application("thousand", &repo.url(), "app", ns, AUTO);
    let plumb = Plumb::start_as(work.path(), &apps, &[], Some(cluster.kubeconfig())).await?;

    // 1. The API server goes away while the first sync runs.
    eventually("the sync of 1,000 objects runs", WAIT, || async {
        let app = plumb.app("thousand").await?;
        Ok((str_at(&app, "/status/operationState/phase") == "Running").then_some(()))
    })
    .await?;
    let restart = cluster.stop_api_server()?;
    let down = Instant::now();
    // The outage: what Plumb does meanwhile is what is under test.
    tokio::time::sleep(Duration::from_secs(10)).await;
    let during = plumb.app("thousand").await?;
    eprintln!(
        "API server down 10 s: the operation is {} ({})",
        str_at(&during, "/status/operationState/phase"),
        str_at(&during, "/status/operationState/message")
    );
    restart()?;
    all_have(&client, ns, 1000, "one").await?;
    let app = plumb.wait_status("thousand", "Synced", None).await?;
    eprintln!(
        "API server back: converged {:?} after it went down; operation {}: {}",
        down.elapsed(),
        str_at(&app, "/status/operationState/phase"),
        str_at(&app, "/status/operationState/message")
    );
    ensure!(history_len(&app) >= 1, "the sync is recorded");
    // The failed sync was retried when the cluster answered again, not
    // after its backoff.
    ensure!(
        plumb
            .log_text()
            .contains("the cluster answers again; the failed automated sync is retried now"),
        "no prompt retry:\n{}",
        plumb.log_text()
    );
    let after_restart = history_len(&app);

    // 2. etcd paused for 30 s during the next sync.
    repo.write("app/many.yaml", &many(1000, "two"))?;
    repo.commit("two")?;
    eventually("the second sync runs", WAIT, || async {
        let app = plumb.app("thousand").await?;
        Ok((str_at(&app, "/status/operationState/phase") == "Running"
            && history_len(&app) == after_restart)
            .then_some(()))
    })
    .await?;
    cluster.signal("etcd", "STOP")?;
    let paused = Instant::now();
    tokio::time::sleep(Duration::from_secs(15)).await;
    // Plumb's own API keeps answering meanwhile.
    let during = plumb.app("thousand").await?;
    eprintln!(
        "etcd paused 15 s: Plumb answers; the operation is {}",
        str_at(&during, "/status/operationState/phase")
    );
    tokio::time::sleep(Duration::from_secs(15)).await;
    cluster.signal("etcd", "CONT")?;
    let pause = paused.elapsed();
    let resumed = Instant::now();
    all_have(&client, ns, 1000, "two").await?;
    let app = plumb.wait_status("thousand", "Synced", None).await?;
    eprintln!(
        "etcd resumed after {:?}: converged {:?} later; operation {}: {}",
        pause,
        resumed.elapsed(),
        str_at(&app, "/status/operationState/phase"),
        str_at(&app, "/status/operationState/message")
    );
    ensure!(
        history_len(&app) > after_restart,
        "the second sync is recorded"
    );

    // Nothing was pruned that should not be.
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), ns, &configmaps());
    ensure!(
        api.get_opt("untracked").await?.is_some(),
        "the untracked object was deleted"
    );
    let count = api
        .list(&ListParams::default())
        .await?
        .items
        .iter()
        .filter(|o| {
            o.metadata
                .name
                .as_deref()
                .is_some_and(|n| n.starts_with("cm-"))
        })
        .count();
    ensure!(count == 1000, "{count} of 1000");
    drop(plumb);
    drop(cluster);
    Ok(())
}
