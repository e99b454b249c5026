//! Several `plumb serve` replicas on one namespace (leader election,
//! shards): the repository they deploy, their start with short lease
//! times, who holds a Lease, and what each replica wrote by its own count.

use std::path::Path;

use anyhow::{Context, Result};
use kube::api::{Api, DynamicObject};
use serde_json::Value;

use super::{GitRepo, Plumb, client, resource};

/// Lease times short enough for a hand-over of seconds.
pub const SHORT_LEASE: [&str; 6] = [
    "--lease-duration",
    "6",
    "--renew-deadline",
    "4",
    "--retry-period",
    "1",
];

/// A ConfigMap `settings` with `v` as its value.
pub fn settings(v: &str) -> String {
    format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\ndata: {{v: \"{v}\"}}\n")
}

/// A repository whose `app` folder holds [`settings`] `1`, and that commit.
pub fn settings_repo() -> Result<(GitRepo, String)> {
    let repo = GitRepo::new(None)?;
    repo.write("app/settings.yaml", &settings("1"))?;
    let first = repo.commit("v1")?;
    Ok((repo, first))
}

/// Starts one replica per work folder, watching `namespace`, named
/// `replica-I`, with `args` and [`SHORT_LEASE`].
pub async fn start(works: &[&Path], namespace: &str, args: &[&str]) -> Result<Vec<Option<Plumb>>> {
    let mut replicas = Vec::new();
    for (i, work) in works.iter().enumerate() {
        let identity = format!("replica-{i}");
        let mut all: Vec<&str> = args.to_vec();
        all.extend(["--identity", identity.as_str()]);
        all.extend(SHORT_LEASE);
        replicas.push(Some(
            Plumb::start_watching_with_args(work, "", namespace, &all).await?,
        ));
    }
    Ok(replicas)
}

/// The holder of the Lease `name` in `namespace` (empty when none).
pub async fn holder(namespace: &str, name: &str) -> Result<String> {
    let leases: Api<DynamicObject> = Api::namespaced_with(
        client().await,
        namespace,
        &resource("coordination.k8s.io", "v1", "Lease", "leases"),
    );
    Ok(leases
        .get_opt(name)
        .await?
        .and_then(|l| {
            l.data
                .pointer("/spec/holderIdentity")
                .and_then(Value::as_str)
                .map(str::to_string)
        })
        .unwrap_or_default())
}

/// Each series of the replica's `argocd_app_k8s_request_total` that is a
/// write (create, update, patch, delete; not a dry run) of anything but a
/// Lease: the line and its count.
pub async fn writes(plumb: &Plumb) -> Result<Vec<(String, u64)>> {
    let text = reqwest::get(format!("{}/metrics", plumb.url))
        .await?
        .text()
        .await?;
    let mut out = Vec::new();
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
            out.push((line.to_string(), count as u64));
        }
    }
    Ok(out)
}
