//! Pods that "run" on the local control plane, end to end: Plumb syncs
//! Deployments and Jobs from a real git repository, the real kube-scheduler
//! binds their Pods to `plumb-nodesim`'s nodes, the simulator reports them
//! as a kubelet would, and the real controllers make Deployments Available
//! and Jobs Complete or Failed, which Plumb shows as Argo CD's health.
//!
//! The simulator's conventions (README, "The local control plane"): an
//! image on a `.invalid` registry never pulls; a Pod exits with its
//! `plumb.dev/sim-exit-code` annotation, or 1 for a `false` command, or N
//! for `exit N`.

mod support;

use std::time::Duration;

use anyhow::{Context, Result};
use kube::api::{Api, DynamicObject, ListParams};
use serde_json::Value;
use support::{
    GitRepo, Plumb, TestNamespace, application, eventually, get_object, resource, str_at,
};

const AUTO: &str = "  syncPolicy:\n    automated: {prune: true, selfHeal: true}\n    syncOptions: [CreateNamespace=true]\n";
const WAIT: Duration = Duration::from_secs(120);

fn deployments() -> kube::core::ApiResource {
    resource("apps", "v1", "Deployment", "deployments")
}

fn jobs() -> kube::core::ApiResource {
    resource("batch", "v1", "Job", "jobs")
}

fn deployment(name: &str, replicas: u32, image: &str) -> String {
    format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: {name}\nspec:\n  replicas: {replicas}\n  selector:\n    matchLabels: {{app: {name}}}\n  template:\n    metadata:\n      labels: {{app: {name}}}\n    spec:\n      containers:\n        - name: main\n          image: {image}\n"
    )
}

/// A Job of one Pod that is never retried; `annotations` and `command` go
/// on its Pod template (YAML flow mappings / sequences, or empty).
fn job(name: &str, annotations: &str, command: &str) -> String {
    let annotations = if annotations.is_empty() {
        String::new()
    } else {
        format!("    metadata:\n      annotations: {annotations}\n")
    };
    let command = if command.is_empty() {
        String::new()
    } else {
        format!("          command: {command}\n")
    };
    format!(
        "apiVersion: batch/v1\nkind: Job\nmetadata:\n  name: {name}\nspec:\n  backoffLimit: 0\n  template:\n{annotations}    spec:\n      restartPolicy: Never\n      containers:\n        - name: main\n          image: busybox:1.36\n{command}"
    )
}

/// The condition `type_` of an object's status, `None` when absent.
fn condition<'a>(object: &'a Value, type_: &str) -> Option<&'a Value> {
    object
        .pointer("/status/conditions")?
        .as_array()?
        .iter()
        .find(|c| c["type"] == type_)
}

/// The Pods of namespace `ns`.
async fn pods(ns: &str) -> Result<Vec<Value>> {
    let api: Api<DynamicObject> = Api::namespaced_with(
        support::client().await,
        ns,
        &resource("", "v1", "Pod", "pods"),
    );
    Ok(api
        .list(&ListParams::default())
        .await?
        .items
        .into_iter()
        .map(|p| serde_json::to_value(p).expect("objects serialize"))
        .collect())
}

/// Starts Plumb on a repository holding `files`, one application deploying
/// them into a namespace of its own.
async fn deploy(
    prefix: &str,
    files: &[(&str, String)],
) -> Result<(TestNamespace, GitRepo, tempfile::TempDir, Plumb)> {
    let ns = TestNamespace::new(prefix).await;
    let repo = GitRepo::new(None)?;
    for (path, text) in files {
        repo.write(path, text)?;
    }
    repo.commit("workloads")?;
    let work = tempfile::tempdir()?;
    let plumb = Plumb::start(
        work.path(),
        &application(&ns.name, &repo.url(), ".", &ns.name, AUTO),
    )
    .await?;
    Ok((ns, repo, work, plumb))
}

#[tokio::test]
async fn a_deployment_synced_by_plumb_becomes_available_and_healthy() -> Result<()> {
    let (ns, _repo, _work, plumb) = deploy(
        "pods-web",
        &[("web.yaml", deployment("web", 2, "nginx:1.25"))],
    )
    .await?;

    let app = eventually("the application is Synced and Healthy", WAIT, || async {
        let app = plumb.app(&ns.name).await?;
        let done = str_at(&app, "/status/sync/status") == "Synced"
            && str_at(&app, "/status/health/status") == "Healthy";
        Ok(done.then_some(app))
    })
    .await
    .with_context(|| format!("plumb log:\n{}", plumb.log_text()))?;
    let resource = app
        .pointer("/status/resources")
        .and_then(Value::as_array)
        .and_then(|r| r.iter().find(|r| r["kind"] == "Deployment"))
        .context("the Deployment is listed")?;
    assert_eq!(resource["health"]["status"], "Healthy", "{resource}");

    let web = get_object(&deployments(), &ns.name, "web")
        .await?
        .context("the Deployment exists")?;
    assert_eq!(web["status"]["availableReplicas"], 2, "{web:#}");
    let available = condition(&web, "Available").context("an Available condition")?;
    assert_eq!(available["status"], "True", "{web:#}");

    let pods = pods(&ns.name).await?;
    assert_eq!(pods.len(), 2, "{pods:#?}");
    for pod in &pods {
        assert_eq!(str_at(pod, "/status/phase"), "Running", "{pod:#}");
        assert!(
            str_at(pod, "/spec/nodeName").starts_with("plumb-node-"),
            "bound by kube-scheduler to a simulated node: {pod:#}"
        );
        assert!(!str_at(pod, "/status/podIP").is_empty(), "{pod:#}");
        let ready = condition(pod, "Ready").context("a Ready condition")?;
        assert_eq!(ready["status"], "True", "{pod:#}");
    }
    Ok(())
}

#[tokio::test]
async fn a_job_completes_and_plumb_shows_it_healthy() -> Result<()> {
    let (ns, _repo, _work, plumb) =
        deploy("pods-job", &[("job.yaml", job("migrate", "", ""))]).await?;

    plumb
        .wait_status(&ns.name, "Synced", Some("Healthy"))
        .await?;
    let migrate = get_object(&jobs(), &ns.name, "migrate")
        .await?
        .context("the Job exists")?;
    let complete = condition(&migrate, "Complete").context("a Complete condition")?;
    assert_eq!(complete["status"], "True", "{migrate:#}");
    assert_eq!(migrate["status"]["succeeded"], 1, "{migrate:#}");
    let pods = pods(&ns.name).await?;
    assert!(
        pods.iter()
            .all(|p| str_at(p, "/status/phase") == "Succeeded"),
        "{pods:#?}"
    );
    Ok(())
}

#[tokio::test]
async fn a_job_whose_pod_fails_ends_failed_and_plumb_shows_it_degraded() -> Result<()> {
    let (ns, _repo, _work, plumb) = deploy(
        "pods-fail",
        &[
            (
                "annotated.yaml",
                job("annotated", "{plumb.dev/sim-exit-code: \"1\"}", ""),
            ),
            ("exits.yaml", job("exits", "", "[sh, -c, exit 3]")),
        ],
    )
    .await?;

    plumb
        .wait_status(&ns.name, "Synced", Some("Degraded"))
        .await?;
    for name in ["annotated", "exits"] {
        let failed = eventually(&format!("Job {name} is Failed"), WAIT, || async {
            let job = get_object(&jobs(), &ns.name, name)
                .await?
                .context("the Job exists")?;
            let failed = condition(&job, "Failed").is_some_and(|c| c["status"] == "True");
            Ok(failed.then_some(job))
        })
        .await?;
        assert_eq!(failed["status"]["failed"], 1, "{failed:#}");
    }
    let codes: Vec<i64> = pods(&ns.name)
        .await?
        .iter()
        .map(|p| {
            assert_eq!(str_at(p, "/status/phase"), "Failed", "{p:#}");
            p.pointer("/status/containerStatuses/0/state/terminated/exitCode")
                .and_then(Value::as_i64)
                .unwrap_or_default()
        })
        .collect();
    let mut codes = codes;
    codes.sort();
    assert_eq!(codes, [1, 3]);
    Ok(())
}

#[tokio::test]
async fn a_deployment_whose_image_cannot_be_pulled_stays_progressing() -> Result<()> {
    let (ns, _repo, _work, plumb) = deploy(
        "pods-pull",
        &[(
            "stuck.yaml",
            deployment("stuck", 1, "registry.invalid/never:1"),
        )],
    )
    .await?;

    plumb
        .wait_status(&ns.name, "Synced", Some("Progressing"))
        .await?;
    // The Pod is bound and its status reported: the image never pulls.
    let pod = eventually("the Pod waits in ImagePullBackOff", WAIT, || async {
        let pods = pods(&ns.name).await?;
        Ok(pods.into_iter().find(|p| {
            str_at(p, "/status/containerStatuses/0/state/waiting/reason") == "ImagePullBackOff"
        }))
    })
    .await?;
    assert_eq!(str_at(&pod, "/status/phase"), "Pending", "{pod:#}");
    let ready = condition(&pod, "Ready").context("a Ready condition")?;
    assert_eq!(ready["status"], "False", "{pod:#}");

    // With the Pod's status settled, the Deployment has nothing available
    // and the application is still Progressing.
    let stuck = get_object(&deployments(), &ns.name, "stuck")
        .await?
        .context("the Deployment exists")?;
    assert!(
        stuck["status"]["availableReplicas"].as_i64().unwrap_or(0) == 0,
        "{stuck:#}"
    );
    let app = plumb.app(&ns.name).await?;
    assert_eq!(
        str_at(&app, "/status/health/status"),
        "Progressing",
        "{app:#}"
    );
    Ok(())
}
