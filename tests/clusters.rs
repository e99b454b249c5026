//! Several clusters end to end: a second real control plane started by
//! `scripts/dev-cluster up --instance 2`, a cluster Secret for it (bearer
//! token and CA), one application per cluster (one by server, one by
//! name), the second cluster stopped (its application says so, naming the
//! cluster, while the first keeps syncing new commits) and started again
//! (its application recovers without a restart of Plumb). Also the
//! clusters API, `plumb cluster list`, the metrics, and that the token
//! appears in no API answer and not in Plumb's log.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};
use base64::Engine;
use kube::api::{Api, DynamicObject};
use serde_json::{Value, json};
use support::{GitRepo, Plumb, TestNamespace, configmaps, eventually, wait_configmap};

const WAIT: Duration = Duration::from_secs(120);
/// The second instance's API server (`--instance 2`: the first's port + 10).
const SECOND_SERVER: &str = "https://127.0.0.1:36453";

/// The second control plane, in a state folder of this test; stopped and
/// wiped when dropped (also when the test fails).
struct SecondCluster {
    state: PathBuf,
}

impl SecondCluster {
    fn script(&self, command: &str) -> Result<String> {
        let out = Command::new(support::root().join("scripts/dev-cluster"))
            .args([command, "--instance", "2"])
            .env("PLUMB_CLUSTER_DIR", &self.state)
            .stderr(Stdio::inherit())
            .output()
            .with_context(|| format!("scripts/dev-cluster {command} --instance 2"))?;
        ensure!(
            out.status.success(),
            "scripts/dev-cluster {command} --instance 2 failed"
        );
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    }

    fn up(state: &Path) -> Result<SecondCluster> {
        let cluster = SecondCluster {
            state: state.to_path_buf(),
        };
        cluster.script("up")?;
        Ok(cluster)
    }

    fn token(&self) -> Result<String> {
        Ok(std::fs::read_to_string(self.state.join("admin-token"))?
            .trim()
            .to_string())
    }

    fn ca(&self) -> Result<String> {
        Ok(base64::engine::general_purpose::STANDARD
            .encode(std::fs::read(self.state.join("pki/ca.crt"))?))
    }

    async fn client(&self) -> Result<kube::Client> {
        plumb_engine::cluster::connect(Some(&self.state.join("kubeconfig")), None)
            .await
            .context("a client of the second cluster")
    }

    /// `data.<key>` of a ConfigMap on the second cluster.
    async fn configmap_value(&self, ns: &str, name: &str, key: &str) -> Result<Option<String>> {
        let api: Api<DynamicObject> = Api::namespaced_with(self.client().await?, ns, &configmaps());
        Ok(api.get_opt(name).await?.and_then(|o| {
            o.data
                .pointer(&format!("/data/{key}"))
                .and_then(Value::as_str)
                .map(str::to_string)
        }))
    }
}

impl Drop for SecondCluster {
    fn drop(&mut self) {
        let _ = self.script("down");
    }
}

fn configmap(name: &str, value: &str) -> String {
    format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\ndata:\n  value: {value}\n")
}

/// An automated Application of the `--apps` file with this destination.
fn application(name: &str, repo: &str, destination: Value) -> String {
    let app = json!({
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Application",
        "metadata": {"name": name},
        "spec": {
            "project": "default",
            "source": {"repoURL": repo, "targetRevision": "main", "path": "app"},
            "destination": destination,
            "syncPolicy": {"automated": {"prune": true}, "syncOptions": ["CreateNamespace=true"]}
        }
    });
    serde_yaml::to_string(&app).expect("JSON is YAML")
}

/// The first condition of `type_` whose message holds `part`, once there.
async fn wait_condition(plumb: &Plumb, app: &str, type_: &str, part: &str) -> Result<String> {
    eventually(
        &format!("{app} has a {type_} condition with {part:?}"),
        WAIT,
        || async move {
            let doc = plumb.app(app).await?;
            Ok(doc
                .pointer("/status/conditions")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter(|c| c["type"] == type_)
                .filter_map(|c| c["message"].as_str())
                .find(|m| m.contains(part))
                .map(str::to_string))
        },
    )
    .await
    .with_context(|| format!("plumb log:\n{}", plumb.log_text()))
}

/// The clusters API's entry for `server`, once its status is `status`.
async fn wait_cluster(plumb: &Plumb, server: &str, status: &str) -> Result<Value> {
    eventually(
        &format!("cluster {server} is {status}"),
        WAIT,
        || async move {
            let list = plumb.get("/api/v1/clusters").await?;
            Ok(list["items"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|c| c["server"] == server && c["connectionState"]["status"] == status)
                .cloned())
        },
    )
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn applications_on_two_clusters_and_one_going_away() -> Result<()> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let work = tempfile::tempdir()?;
    let second = SecondCluster::up(&work.path().join("second-cluster"))?;
    let token = second.token()?;
    ensure!(token.len() > 10, "the second cluster has a bearer token");

    let ns = TestNamespace::new("clusters").await;
    ns.create().await?;
    let suffix = &ns.name[ns.name.len() - 8..];
    let (local_ns, remote_ns) = (format!("local-{suffix}"), format!("remote-{suffix}"));
    // The local application's namespace is removed with the test's.
    let _local = TestNamespace {
        name: local_ns.clone(),
    };

    // The cluster Secret, in Plumb's namespace, as Argo CD declares one.
    let secrets: Api<DynamicObject> = Api::namespaced_with(
        support::client().await,
        &ns.name,
        &support::resource("", "v1", "Secret", "secrets"),
    );
    let config = json!({"bearerToken": token, "tlsClientConfig": {"insecure": false, "caData": second.ca()?}});
    secrets
        .create(
            &Default::default(),
            &serde_json::from_value(json!({
                "apiVersion": "v1", "kind": "Secret",
                "metadata": {"name": "second-cluster", "labels": {"argocd.argoproj.io/secret-type": "cluster"}},
                "stringData": {"name": "second", "server": SECOND_SERVER, "config": config.to_string()}
            }))?,
        )
        .await?;

    let local_repo = GitRepo::new(None)?;
    local_repo.write("app/cm.yaml", &configmap("local", "one"))?;
    local_repo.commit("local one")?;
    let remote_repo = GitRepo::new(None)?;
    remote_repo.write("app/cm.yaml", &configmap("remote", "one"))?;
    remote_repo.commit("remote one")?;
    let apps = [
        // The cluster Plumb runs against, by server.
        application(
            "local",
            &local_repo.url(),
            json!({"server": "https://kubernetes.default.svc", "namespace": local_ns}),
        ),
        // The second cluster, by the name its Secret gives it.
        application(
            "remote",
            &remote_repo.url(),
            json!({"name": "second", "namespace": remote_ns}),
        ),
        // A name no Secret has.
        application(
            "nowhere",
            &remote_repo.url(),
            json!({"name": "missing-cluster", "namespace": remote_ns}),
        ),
    ]
    .join("---\n");
    let plumb = Plumb::start_watching(work.path(), &apps, &ns.name).await?;

    plumb
        .wait_status("local", "Synced", Some("Healthy"))
        .await?;
    plumb
        .wait_status("remote", "Synced", Some("Healthy"))
        .await?;
    wait_configmap(&local_ns, "local", "value", "one").await?;
    ensure!(
        second
            .configmap_value(&remote_ns, "remote", "value")
            .await?
            == Some("one".into()),
        "the remote application's ConfigMap is on the second cluster"
    );
    ensure!(
        support::configmap_value(&remote_ns, "remote", "value")
            .await?
            .is_none(),
        "and not on the first"
    );
    let invalid =
        wait_condition(&plumb, "nowhere", "InvalidSpecError", "'missing-cluster'").await?;
    ensure!(invalid.contains("unknown"), "{invalid}");

    // The clusters API: both, connected, without credentials.
    let listed = wait_cluster(&plumb, SECOND_SERVER, "Successful").await?;
    ensure!(listed["name"] == "second", "{listed}");
    ensure!(
        listed["info"]["serverVersion"]
            .as_str()
            .is_some_and(|v| v.starts_with("v1.")),
        "{listed}"
    );
    ensure!(listed["info"]["applicationsCount"] == 1, "{listed}");
    ensure!(
        listed["config"] == json!({"tlsClientConfig": {"insecure": false}}),
        "{listed}"
    );
    let all = plumb.get("/api/v1/clusters").await?;
    let local = all["items"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|c| c["server"] == "https://kubernetes.default.svc")
        .cloned()
        .context("in-cluster is listed")?;
    ensure!(local["name"] == "in-cluster", "{local}");
    ensure!(
        local["connectionState"]["status"] == "Successful",
        "{local}"
    );
    let one = plumb
        .get("/api/v1/clusters/https%3A%2F%2F127.0.0.1%3A36453")
        .await?;
    ensure!(one["name"] == "second", "{one}");
    let table = support::cli(&["cluster", "list", "--server", &plumb.url])?;
    ensure!(
        table.lines().next().is_some_and(|h| h.contains("SERVER")
            && h.contains("NAME")
            && h.contains("VERSION")
            && h.contains("STATUS")),
        "{table}"
    );
    ensure!(
        table
            .lines()
            .any(|l| l.contains(SECOND_SERVER) && l.contains("second") && l.contains("Successful")),
        "{table}"
    );
    let metrics = reqwest::get(format!("{}/metrics", plumb.url))
        .await?
        .text()
        .await?;
    ensure!(
        metrics.lines().any(|l| l.starts_with(&format!(
            "argocd_cluster_connection_status{{server=\"{SECOND_SERVER}\",k8s_version=\"v1."
        )) && l.ends_with(" 1")),
        "{metrics}"
    );

    // The second cluster goes away: its application says so, naming it;
    // the first keeps syncing new commits.
    second.script("stop")?;
    let down = wait_condition(&plumb, "remote", "ComparisonError", "'second'").await?;
    ensure!(down.contains("unreachable"), "{down}");
    ensure!(!down.contains(&token), "{down}");
    local_repo.write("app/cm.yaml", &configmap("local", "two"))?;
    local_repo.commit("local two")?;
    wait_configmap(&local_ns, "local", "value", "two").await?;
    plumb
        .wait_status("local", "Synced", Some("Healthy"))
        .await?;
    let failed = wait_cluster(&plumb, SECOND_SERVER, "Failed").await?;
    ensure!(
        failed["connectionState"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "{failed}"
    );
    // A commit meanwhile for the second cluster's application.
    remote_repo.write("app/cm.yaml", &configmap("remote", "two"))?;
    remote_repo.commit("remote two")?;

    // It comes back: its application recovers by itself and syncs the
    // commit it missed.
    second.script("up")?;
    eventually("the remote ConfigMap has the new value", WAIT, || async {
        Ok((second
            .configmap_value(&remote_ns, "remote", "value")
            .await?
            == Some("two".into()))
        .then_some(()))
    })
    .await
    .with_context(|| format!("plumb log:\n{}", plumb.log_text()))?;
    let app = plumb
        .wait_status("remote", "Synced", Some("Healthy"))
        .await?;
    let conditions = app["status"]["conditions"].to_string();
    ensure!(!conditions.contains("unreachable"), "{conditions}");
    wait_cluster(&plumb, SECOND_SERVER, "Successful").await?;

    // The token is in no answer of the API and not in the log.
    for path in [
        "/api/v1/clusters",
        "/api/v1/applications",
        "/api/v1/applications/remote",
    ] {
        let body = plumb.get(path).await?.to_string();
        ensure!(!body.contains(&token), "{path} shows the bearer token");
    }
    let log = plumb.log_text();
    if log.contains(&token) {
        bail!("Plumb's log holds the bearer token");
    }
    ensure!(
        log.contains("connecting to cluster"),
        "the log says when it connects"
    );
    Ok(())
}
