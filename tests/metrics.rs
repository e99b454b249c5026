//! `/metrics` end to end: a real `plumb serve` on the real local control
//! plane, scraped and parsed as Prometheus would, before and after a sync.

mod support;

use anyhow::{Context, Result};
use prometheus_parse::{Sample, Scrape, Value};
use serde_json::json;
use support::{GitRepo, Plumb, TestNamespace, application};

/// Scrapes `/metrics` and parses it with a Prometheus text-format parser.
async fn scrape(plumb: &Plumb) -> Result<Scrape> {
    let response = reqwest::get(format!("{}/metrics", plumb.url)).await?;
    anyhow::ensure!(response.status().is_success(), "{}", response.status());
    let kind = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    anyhow::ensure!(kind.starts_with("text/plain; version=0.0.4"), "{kind}");
    let text = response.text().await?;
    Ok(Scrape::parse(text.lines().map(|l| Ok(l.to_string())))?)
}

/// The samples of `metric` whose labels include `labels`.
fn samples<'s>(scrape: &'s Scrape, metric: &str, labels: &[(&str, &str)]) -> Vec<&'s Sample> {
    scrape
        .samples
        .iter()
        .filter(|s| s.metric == metric)
        .filter(|s| labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
        .collect()
}

/// The sum of a counter's or gauge's matching samples, or of a histogram's
/// observation counts.
fn total(scrape: &Scrape, metric: &str, labels: &[(&str, &str)]) -> f64 {
    samples(scrape, metric, labels)
        .iter()
        .map(|s| match &s.value {
            Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => *v,
            Value::Histogram(buckets) => buckets
                .iter()
                .find(|b| b.less_than.is_infinite())
                .map_or(0.0, |b| b.count),
            Value::Summary(_) => 0.0,
        })
        .sum()
}

#[tokio::test]
async fn metrics_have_argo_cd_names_and_move_after_a_sync() -> Result<()> {
    let ns = TestNamespace::new("metrics").await;
    let repo = GitRepo::new(None)?;
    repo.write(
        "app/settings.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\ndata: {k: v}\n",
    )?;
    repo.commit("settings")?;
    let url = repo.url();
    let work = tempfile::tempdir()?;
    let plumb = Plumb::start(
        work.path(),
        &application(
            &ns.name,
            &url,
            "app",
            &ns.name,
            "  syncPolicy:\n    syncOptions: [CreateNamespace=true]\n",
        ),
    )
    .await?;
    plumb.wait_status(&ns.name, "OutOfSync", None).await?;

    let before = scrape(&plumb).await?;
    let app = [("name", ns.name.as_str())];
    let info = samples(&before, "argocd_app_info", &app);
    let info = info.first().context("argocd_app_info of the application")?;
    for (label, value) in [
        ("namespace", "plumb"),
        ("project", "default"),
        ("repo", url.as_str()),
        ("dest_server", "https://kubernetes.default.svc"),
        ("dest_namespace", ns.name.as_str()),
        ("sync_status", "OutOfSync"),
        ("autosync_enabled", "false"),
    ] {
        assert_eq!(info.labels.get(label), Some(value), "{label}: {info:?}");
    }
    assert_eq!(info.value, Value::Gauge(1.0));
    assert_eq!(
        total(
            &before,
            "argocd_cluster_connection_status",
            &[("server", "https://kubernetes.default.svc")]
        ),
        1.0
    );
    assert!(
        total(
            &before,
            "argocd_git_request_total",
            &[("repo", &url), ("request_type", "fetch")]
        ) >= 1.0
    );
    assert!(
        total(
            &before,
            "argocd_git_request_duration_seconds",
            &[("repo", &url)]
        ) >= 1.0
    );
    assert!(total(&before, "argocd_app_reconcile", &[("namespace", "plumb")]) >= 1.0);
    assert!(
        total(
            &before,
            "plumb_render_duration_seconds",
            &[("tool", "Directory")]
        ) >= 1.0
    );
    assert!(!samples(&before, "plumb_queue_depth", &[]).is_empty());
    assert_eq!(total(&before, "argocd_app_sync_total", &app), 0.0);
    let patches = |s: &Scrape| {
        total(
            s,
            "argocd_app_k8s_request_total",
            &[
                ("verb", "Patch"),
                ("resource_kind", "configmaps"),
                ("resource_namespace", &ns.name),
            ],
        )
    };

    let doc = plumb
        .operate(&format!("/api/v1/applications/{}/sync", ns.name), json!({}))
        .await?;
    assert_eq!(
        doc["status"]["operationState"]["phase"], "Succeeded",
        "{doc}"
    );
    plumb
        .wait_status(&ns.name, "Synced", Some("Healthy"))
        .await?;

    let after = scrape(&plumb).await?;
    assert_eq!(
        total(
            &after,
            "argocd_app_sync_total",
            &[
                ("name", &ns.name),
                ("phase", "Succeeded"),
                ("project", "default")
            ]
        ),
        1.0
    );
    assert_eq!(
        total(
            &after,
            "plumb_operation_duration_seconds",
            &[("phase", "Succeeded")]
        ),
        1.0
    );
    assert!(patches(&after) > patches(&before));
    // The apply was counted with its response code.
    assert_eq!(
        total(
            &after,
            "argocd_app_k8s_request_total",
            &[
                ("verb", "Patch"),
                ("dry_run", "false"),
                ("response_code", "201"),
                ("resource_namespace", &ns.name)
            ],
        ),
        1.0
    );
    let info = samples(&after, "argocd_app_info", &app);
    assert_eq!(
        info.first().and_then(|s| s.labels.get("sync_status")),
        Some("Synced"),
        "{info:?}"
    );
    assert!(total(&after, "argocd_cluster_api_resource_objects", &[]) >= 1.0);
    Ok(())
}
