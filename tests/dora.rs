//! DORA metrics from a real history: commits synced by automated sync on
//! the real control plane, a change whose PostSync Job fails, and the
//! `git revert` that restores it. The API's figures and `plumb dora`'s
//! table follow from what happened.

mod support;

use std::time::Duration;

use anyhow::{Context, Result};
use serde_json::json;
use support::{GitRepo, Plumb, TestNamespace, application_with, cli, eventually};

#[tokio::test]
async fn commits_a_failure_and_a_revert_give_the_expected_figures() -> Result<()> {
    let ns = TestNamespace::new("dora").await;
    let repo = GitRepo::new(None)?;
    repo.write(
        "app/settings.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\ndata: {v: \"1\"}\n",
    )?;
    let first = repo.commit("Deploy settings v1")?;
    let name = format!("{}-app", ns.name);
    let apps = application_with(
        &name,
        &ns.name,
        json!({
            "source": {"repoURL": repo.url(), "targetRevision": "main", "path": "app"},
            "syncPolicy": {"automated": {"prune": true}, "syncOptions": ["CreateNamespace=true"]},
        }),
    );
    let work = tempfile::tempdir()?;
    let plumb = Plumb::start(work.path(), &apps).await?;
    plumb.wait_status(&name, "Synced", Some("Healthy")).await?;

    // A change whose PostSync Job fails: the ConfigMap changes, the
    // automated sync fails.
    repo.write(
        "app/settings.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\ndata: {v: \"2\"}\n",
    )?;
    repo.write(
        "app/migrate.yaml",
        "apiVersion: batch/v1\nkind: Job\nmetadata:\n  name: migrate\n  annotations:\n    argocd.argoproj.io/hook: PostSync\nspec:\n  backoffLimit: 0\n  template:\n    spec:\n      restartPolicy: Never\n      containers:\n        - name: main\n          image: busybox:1.36\n          command: [\"false\"]\n",
    )?;
    let broken = repo.commit("Deploy settings v2 with a migration")?;
    eventually(
        "the sync of the broken change fails",
        Duration::from_secs(120),
        || async {
            let app = plumb.app(&name).await?;
            let op = &app["status"]["operationState"];
            Ok(
                (op["phase"] == "Failed" && op["syncResult"]["revision"] == broken.as_str())
                    .then_some(()),
            )
        },
    )
    .await?;

    // `git revert` restores it: a deployment of a revert commit (the
    // ConfigMap goes back to v1).
    repo.git(&["revert", "--no-edit", "HEAD"])?;
    let reverted = repo.head()?;
    eventually(
        "the revert is deployed",
        Duration::from_secs(120),
        || async {
            let app = plumb.app(&name).await?;
            Ok((app["status"]["sync"]["status"] == "Synced"
                && app["status"]["sync"]["revision"] == reverted.as_str())
            .then_some(()))
        },
    )
    .await?;

    let report = plumb
        .get(&format!(
            "/api/v1/dora?app={name}&window=1d&failureWindow=1h"
        ))
        .await?;
    let app = report["applications"]
        .as_array()
        .and_then(|a| a.first())
        .context("the application's figures")?;
    assert_eq!(app["name"], name.as_str(), "{report:#}");
    // Two deployments (the first commit and the revert); the first was
    // followed by a failed sync, so half of them failed.
    assert_eq!(app["deployments"], 2, "{report:#}");
    assert_eq!(app["failedDeployments"], 1, "{report:#}");
    assert_eq!(app["changeFailureRate"], 0.5, "{report:#}");
    // Restored by the revert's deployment, the application Healthy all along.
    assert_eq!(app["restores"], 1, "{report:#}");
    assert_eq!(app["unrestored"], 0, "{report:#}");
    assert!(app["timeToRestoreSeconds"].as_f64().is_some(), "{report:#}");
    assert!(
        app["leadTimeSeconds"].as_f64().is_some_and(|s| s >= 0.0),
        "{report:#}"
    );
    assert!(
        app["deploymentsPerDay"]
            .as_f64()
            .is_some_and(|d| (d - 2.0).abs() < 1e-9)
    );
    assert_eq!(report["projects"][0]["name"], "default");
    assert_eq!(report["projects"][0]["deployments"], 2);
    assert_ne!(first, reverted);

    // The same figures as Prometheus gauges over --dora-window (30 days
    // by default): deployments, the failure rate, one restore.
    let metrics = reqwest::get(format!("{}/metrics", plumb.url))
        .await?
        .text()
        .await?;
    let labels = format!("{{name=\"{name}\",namespace=\"plumb\",project=\"default\"}}");
    for line in [
        format!("plumb_dora_app_deployments{labels} 2.0"),
        format!("plumb_dora_app_change_failure_ratio{labels} 0.5"),
        format!("plumb_dora_app_failed_deployments{labels} 1.0"),
        format!("plumb_dora_app_unrestored_failures{labels} 0.0"),
        "plumb_dora_project_deployments{project=\"default\"} 2.0".to_string(),
        "plumb_dora_window_seconds 2592000".to_string(),
    ] {
        assert!(metrics.lines().any(|l| l == line), "{line}\n{metrics}");
    }
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with(&format!("plumb_dora_app_time_to_restore_seconds{labels} "))),
        "{metrics}"
    );

    // A malformed window is the client's mistake.
    let bad = reqwest::get(format!("{}/api/v1/dora?window=soon", plumb.url)).await?;
    assert_eq!(bad.status(), 400);

    // The CLI prints the same figures.
    let table = cli(&[
        "dora", "--server", &plumb.url, "--app", &name, "--window", "1d",
    ])?;
    let row = table
        .lines()
        .find(|l| l.starts_with("app"))
        .context("the application's row")?;
    assert!(row.contains(&name) && row.contains("50%"), "{table}");
    Ok(())
}
