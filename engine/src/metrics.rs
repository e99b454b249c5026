//! Prometheus metrics under Argo CD's names and labels, so the dashboards
//! Argo CD users have keep working, and Plumb's own beside them.
//!
//! Counters and histograms are recorded where things happen (a reconcile,
//! an operation's end, a fetch, a render, each request to the API server
//! through [`Metrics::k8s_layer`]); gauges that describe the present (each
//! application's `argocd_app_info`, the objects held, the connection, the
//! queue, the DORA figures of each project and application) are built at
//! scrape time from a [`Snapshot`] the controller takes, so they cost
//! nothing between scrapes. The text is Prometheus'
//! text format 0.0.4, as Argo CD serves it.
//!
//! Not here: serving `/metrics` (the API does) and deciding what a
//! snapshot holds (the controller does).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::encoding::prometheus_text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// Argo CD's buckets for `argocd_app_reconcile`, in seconds.
const RECONCILE_BUCKETS: [f64; 7] = [0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0];
/// Buckets for git requests, operations and renders, in seconds.
const DURATION_BUCKETS: [f64; 10] = [0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0];

/// `argocd_app_reconcile`'s labels.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReconcileLabels {
    /// The application's namespace.
    pub namespace: String,
    /// Its destination server.
    pub dest_server: String,
}

/// `argocd_app_sync_total`'s labels.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SyncLabels {
    /// The application.
    pub name: String,
    /// Its namespace.
    pub namespace: String,
    /// Its project.
    pub project: String,
    /// Its destination server.
    pub dest_server: String,
    /// How the operation ended: `Succeeded`, `Failed`, `Error`.
    pub phase: String,
}

/// `argocd_app_k8s_request_total`'s labels. Requests are not attributed to
/// an application (Argo CD's `name` and `project`): one client serves all.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct K8sLabels {
    /// The API server.
    pub server: String,
    /// `Get`, `List`, `Watch`, `Create`, `Update`, `Patch`, `Delete`.
    pub verb: String,
    /// The resource of the path (`deployments`), empty for others.
    pub resource_kind: String,
    /// The namespace of the path, empty when cluster-wide.
    pub resource_namespace: String,
    /// The HTTP status, or `error` when no response came.
    pub response_code: String,
    /// Whether it was a dry run.
    pub dry_run: String,
}

/// `argocd_git_request_*`'s labels.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct GitLabels {
    /// The repository URL.
    pub repo: String,
    /// `fetch` (Plumb has no `ls-remote`: a fetch resolves references).
    pub request_type: String,
}

/// `plumb_operation_duration_seconds`' labels.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PhaseLabels {
    /// How the operation ended.
    pub phase: String,
}

/// `plumb_render_duration_seconds`' labels.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ToolLabels {
    /// `Directory` (plain files and Jsonnet), `Kustomize`, `Helm` (Argo
    /// CD's source types), several joined by `+` for an application of
    /// several sources.
    pub tool: String,
}

/// `argocd_app_info`'s labels: one series per application, value 1.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AppInfo {
    /// The application.
    pub name: String,
    /// Its namespace.
    pub namespace: String,
    /// Its project.
    pub project: String,
    /// Its first source's repository.
    pub repo: String,
    /// Its destination server.
    pub dest_server: String,
    /// Its destination namespace.
    pub dest_namespace: String,
    /// `Synced`, `OutOfSync`, `Unknown`.
    pub sync_status: String,
    /// Its health.
    pub health_status: String,
    /// The running operation (`sync`), empty when none.
    pub operation: String,
    /// Whether automated sync is on.
    pub autosync_enabled: String,
}

/// What the scrape-time gauges show.
#[derive(Clone, Debug, Default)]
pub struct Snapshot {
    /// Each application.
    pub apps: Vec<AppInfo>,
    /// Each connected cluster.
    pub clusters: Vec<ClusterGauge>,
    /// Applications waiting in the work queue.
    pub queue_depth: u64,
    /// The DORA figures over the last `window_seconds`.
    pub dora: Option<DoraSnapshot>,
}

/// The DORA part of a [`Snapshot`].
#[derive(Clone, Debug, Default)]
pub struct DoraSnapshot {
    /// The window the figures cover.
    pub window_seconds: i64,
    /// Per project, by name.
    pub projects: Vec<(String, plumb_core::dora::Dora)>,
    /// Per application with something in the window: its labels and
    /// figures.
    pub apps: Vec<(DoraApp, plumb_core::dora::Dora)>,
}

/// The labels of an application's DORA series.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DoraApp {
    /// The application.
    pub name: String,
    /// Its namespace.
    pub namespace: String,
    /// Its project.
    pub project: String,
}

/// One project's DORA series' label.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DoraProject {
    project: String,
}

/// The DORA figures of `series` (labels and figures) into `registry`, one
/// family per figure under `plumb_dora_{scope}_`; a median or a rate
/// without a sample is left out rather than shown as 0.
fn register_dora<L>(registry: &mut Registry, scope: &str, series: &[(L, &plumb_core::dora::Dora)])
where
    L: Clone + std::fmt::Debug + std::hash::Hash + Eq + EncodeLabelSet + Send + Sync + 'static,
{
    type Float = Gauge<f64, std::sync::atomic::AtomicU64>;
    type Figure = fn(&plumb_core::dora::Dora) -> Option<f64>;
    let figures: [(&str, &str, Figure); 7] = [
        (
            "deployments",
            "Deployments (successful syncs that changed the revision) in the window",
            |d| Some(d.deployments as f64),
        ),
        (
            "deployments_per_day",
            "Deployment frequency over the window, per day",
            |d| Some(d.deployments_per_day),
        ),
        (
            "lead_time_seconds",
            "Median lead time for changes, commit to live, in the window",
            |d| d.lead_time_seconds,
        ),
        (
            "change_failure_ratio",
            "Failed deployments over deployments in the window",
            |d| d.change_failure_rate,
        ),
        (
            "failed_deployments",
            "Deployments in the window that failed",
            |d| Some(d.failed_deployments as f64),
        ),
        (
            "time_to_restore_seconds",
            "Median time to restore of the failures restored in the window",
            |d| d.time_to_restore_seconds,
        ),
        (
            "unrestored_failures",
            "Failures in the window not restored yet",
            |d| Some(d.unrestored as f64),
        ),
    ];
    for (name, help, value) in figures {
        let family: Family<L, Float> = Family::default();
        for (labels, dora) in series {
            if let Some(v) = value(dora) {
                family.get_or_create(labels).set(v);
            }
        }
        registry.register(format!("plumb_dora_{scope}_{name}"), help, family);
    }
}

/// One cluster in a [`Snapshot`].
#[derive(Clone, Debug, Default)]
pub struct ClusterGauge {
    /// Its API server, as applications name it.
    pub server: String,
    /// Its version when it answered its last probe, `None` when it did not.
    pub k8s_version: Option<String>,
    /// The tracked objects held in its live state.
    pub objects: u64,
}

/// The metrics of one Plumb.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    reconcile: Family<ReconcileLabels, Histogram>,
    syncs: Family<SyncLabels, Counter>,
    k8s_requests: Family<K8sLabels, Counter>,
    git_requests: Family<GitLabels, Counter>,
    git_durations: Family<GitLabels, Histogram>,
    operations: Family<PhaseLabels, Histogram>,
    renders: Family<ToolLabels, Histogram>,
}

fn reconcile_histogram() -> Histogram {
    Histogram::new(RECONCILE_BUCKETS)
}

fn duration_histogram() -> Histogram {
    Histogram::new(DURATION_BUCKETS)
}

fn histograms<L>(constructor: fn() -> Histogram) -> Family<L, Histogram>
where
    L: Clone + std::hash::Hash + Eq,
{
    Family::new_with_constructor(constructor)
}

impl Default for Metrics {
    fn default() -> Metrics {
        let mut registry = Registry::default();
        let reconcile = histograms(reconcile_histogram);
        let syncs = Family::default();
        let k8s_requests = Family::default();
        let git_requests = Family::default();
        let git_durations = histograms(duration_histogram);
        let operations = histograms(duration_histogram);
        let renders = histograms(duration_histogram);
        registry.register(
            "argocd_app_reconcile",
            "Application reconciliation performance in seconds",
            reconcile.clone(),
        );
        registry.register(
            "argocd_app_sync",
            "Number of application syncs",
            syncs.clone(),
        );
        registry.register(
            "argocd_app_k8s_request",
            "Number of Kubernetes requests executed",
            k8s_requests.clone(),
        );
        registry.register(
            "argocd_git_request",
            "Number of git requests performed",
            git_requests.clone(),
        );
        registry.register(
            "argocd_git_request_duration_seconds",
            "Git requests duration seconds",
            git_durations.clone(),
        );
        registry.register(
            "plumb_operation_duration_seconds",
            "Duration of sync operations by how they ended",
            operations.clone(),
        );
        registry.register(
            "plumb_render_duration_seconds",
            "Duration of rendering an application's sources, by tool",
            renders.clone(),
        );
        Metrics {
            registry,
            reconcile,
            syncs,
            k8s_requests,
            git_requests,
            git_durations,
            operations,
            renders,
        }
    }
}

impl Metrics {
    /// One reconcile of an application took `seconds`.
    pub fn reconciled(&self, labels: ReconcileLabels, seconds: f64) {
        self.reconcile.get_or_create(&labels).observe(seconds);
    }

    /// A sync operation ended (`labels.phase`) after `seconds`.
    pub fn synced(&self, labels: SyncLabels, seconds: f64) {
        self.operations
            .get_or_create(&PhaseLabels {
                phase: labels.phase.clone(),
            })
            .observe(seconds);
        self.syncs.get_or_create(&labels).inc();
    }

    /// A fetch of `repo` took `seconds`.
    pub fn fetched(&self, repo: &str, seconds: f64) {
        let labels = GitLabels {
            repo: repo.to_string(),
            request_type: "fetch".into(),
        };
        self.git_requests.get_or_create(&labels).inc();
        self.git_durations.get_or_create(&labels).observe(seconds);
    }

    /// A render with `tool` took `seconds`.
    pub fn rendered(&self, tool: &str, seconds: f64) {
        self.renders
            .get_or_create(&ToolLabels {
                tool: tool.to_string(),
            })
            .observe(seconds);
    }

    /// A layer for the Kubernetes client that counts each request to
    /// `server` in `argocd_app_k8s_request_total`.
    pub fn k8s_layer(self: &Arc<Self>, server: &str) -> K8sLayer {
        K8sLayer {
            metrics: Arc::clone(self),
            server: Arc::from(server),
        }
    }

    /// The metrics as Prometheus text, with the gauges of `snapshot`.
    pub fn text(&self, snapshot: &Snapshot) -> String {
        let mut now = Registry::default();
        let info: Family<AppInfo, Gauge> = Family::default();
        for app in &snapshot.apps {
            info.get_or_create(app).set(1);
        }
        now.register("argocd_app_info", "Information about application", info);
        let objects: Family<Vec<(String, String)>, Gauge> = Family::default();
        for c in &snapshot.clusters {
            objects
                .get_or_create(&vec![("server".into(), c.server.clone())])
                .set(i64::try_from(c.objects).unwrap_or(i64::MAX));
        }
        now.register(
            "argocd_cluster_api_resource_objects",
            "Number of k8s resource objects in the cache",
            objects,
        );
        let connection: Family<Vec<(String, String)>, Gauge> = Family::default();
        for c in &snapshot.clusters {
            connection
                .get_or_create(&vec![
                    ("server".into(), c.server.clone()),
                    (
                        "k8s_version".into(),
                        c.k8s_version.clone().unwrap_or_default(),
                    ),
                ])
                .set(i64::from(c.k8s_version.is_some()));
        }
        now.register(
            "argocd_cluster_connection_status",
            "The k8s cluster current connection status",
            connection,
        );
        let queue: Gauge = Gauge::default();
        queue.set(i64::try_from(snapshot.queue_depth).unwrap_or(i64::MAX));
        now.register(
            "plumb_queue_depth",
            "Applications waiting in the work queue",
            queue,
        );
        if let Some(dora) = &snapshot.dora {
            let window: Gauge = Gauge::default();
            window.set(dora.window_seconds);
            now.register(
                "plumb_dora_window_seconds",
                "The window the plumb_dora_* figures cover (--dora-window)",
                window,
            );
            let projects: Vec<_> = dora
                .projects
                .iter()
                .map(|(p, d)| (DoraProject { project: p.clone() }, d))
                .collect();
            register_dora(&mut now, "project", &projects);
            let apps: Vec<_> = dora.apps.iter().map(|(a, d)| (a.clone(), d)).collect();
            register_dora(&mut now, "app", &apps);
        }
        let mut text = String::new();
        encode(&mut text, &now).expect("writing to a String does not fail");
        encode(&mut text, &self.registry).expect("writing to a String does not fail");
        text
    }
}

/// How a request to the API server is counted: verb, resource, namespace,
/// dry run, read from its method and path.
fn classify(method: &http::Method, uri: &http::Uri) -> (String, String, String, String) {
    let query = uri.query().unwrap_or("");
    let has = |pair: &str| query.split('&').any(|p| p.eq_ignore_ascii_case(pair));
    let segments: Vec<&str> = uri.path().split('/').filter(|s| !s.is_empty()).collect();
    // /api/v1/... or /apis/GROUP/VERSION/...
    let rest: &[&str] = match segments.as_slice() {
        ["api", _, rest @ ..] | ["apis", _, _, rest @ ..] => rest,
        _ => &[],
    };
    let (namespace, rest) = match rest {
        ["namespaces", ns, rest @ ..] if !rest.is_empty() => (*ns, rest),
        _ => ("", rest),
    };
    let (resource, named) = match rest {
        [] => ("", false),
        [resource] => (*resource, false),
        [resource, ..] => (*resource, true),
    };
    let verb = match *method {
        http::Method::GET if has("watch=true") || has("watch=1") => "Watch",
        http::Method::GET if named => "Get",
        http::Method::GET => "List",
        http::Method::POST => "Create",
        http::Method::PUT => "Update",
        http::Method::PATCH => "Patch",
        http::Method::DELETE => "Delete",
        _ => method.as_str(),
    };
    (
        verb.to_string(),
        resource.to_string(),
        namespace.to_string(),
        has("dryRun=All").to_string(),
    )
}

/// See [`Metrics::k8s_layer`].
#[derive(Clone, Debug)]
pub struct K8sLayer {
    metrics: Arc<Metrics>,
    server: Arc<str>,
}

impl<S> tower::Layer<S> for K8sLayer {
    type Service = K8sCounted<S>;

    fn layer(&self, inner: S) -> K8sCounted<S> {
        K8sCounted {
            inner,
            layer: self.clone(),
        }
    }
}

/// A Kubernetes client's service that counts its requests.
#[derive(Clone, Debug)]
pub struct K8sCounted<S> {
    inner: S,
    layer: K8sLayer,
}

impl<S, B, R> tower::Service<http::Request<B>> for K8sCounted<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<R>>,
    S::Future: Send + 'static,
    S::Error: 'static,
    R: 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let (verb, resource_kind, resource_namespace, dry_run) =
            classify(request.method(), request.uri());
        let layer = self.layer.clone();
        let response = self.inner.call(request);
        Box::pin(async move {
            let response = response.await;
            let response_code = match &response {
                Ok(r) => r.status().as_u16().to_string(),
                Err(_) => "error".to_string(),
            };
            layer
                .metrics
                .k8s_requests
                .get_or_create(&K8sLabels {
                    server: layer.server.to_string(),
                    verb,
                    resource_kind,
                    resource_namespace,
                    response_code,
                    dry_run,
                })
                .inc();
            response
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn classified(method: http::Method, uri: &str) -> [String; 4] {
        let (a, b, c, d) = classify(&method, &uri.parse().expect("a URI"));
        [a, b, c, d]
    }

    #[test]
    fn requests_are_classified_by_verb_resource_and_namespace() {
        use http::Method;
        let cases = [
            (
                Method::GET,
                "/api/v1/namespaces/web/configmaps/settings",
                ["Get", "configmaps", "web", "false"],
            ),
            (
                Method::GET,
                "/apis/apps/v1/deployments?watch=true&resourceVersion=5",
                ["Watch", "deployments", "", "false"],
            ),
            (
                Method::GET,
                "/apis/apps/v1/namespaces/web/deployments?labelSelector=a",
                ["List", "deployments", "web", "false"],
            ),
            (
                Method::PATCH,
                "/apis/apps/v1/namespaces/web/deployments/api?fieldManager=plumb&dryRun=All&force=true",
                ["Patch", "deployments", "web", "true"],
            ),
            (
                Method::PATCH,
                "/apis/argoproj.io/v1alpha1/namespaces/plumb/applications/a/status",
                ["Patch", "applications", "plumb", "false"],
            ),
            (
                Method::DELETE,
                "/api/v1/namespaces/gone",
                ["Delete", "namespaces", "", "false"],
            ),
            (
                Method::POST,
                "/api/v1/namespaces",
                ["Create", "namespaces", "", "false"],
            ),
            (Method::GET, "/version", ["List", "", "", "false"]),
        ];
        for (method, uri, expected) in cases {
            assert_eq!(classified(method, uri), expected.map(String::from), "{uri}");
        }
    }

    #[test]
    fn the_text_has_argo_cd_names_and_the_snapshot_gauges() {
        let metrics = Metrics::default();
        metrics.synced(
            SyncLabels {
                name: "web".into(),
                namespace: "plumb".into(),
                project: "default".into(),
                dest_server: "https://kubernetes.default.svc".into(),
                phase: "Succeeded".into(),
            },
            1.5,
        );
        metrics.fetched("https://git.example/repo.git", 0.2);
        let snapshot = Snapshot {
            apps: vec![AppInfo {
                name: "web".into(),
                namespace: "plumb".into(),
                project: "default".into(),
                repo: "https://git.example/repo.git".into(),
                dest_server: "https://kubernetes.default.svc".into(),
                dest_namespace: "web".into(),
                sync_status: "Synced".into(),
                health_status: "Healthy".into(),
                operation: String::new(),
                autosync_enabled: "true".into(),
            }],
            clusters: vec![
                ClusterGauge {
                    server: "https://127.0.0.1:6443".into(),
                    k8s_version: Some("v1.20.2".into()),
                    objects: 3,
                },
                ClusterGauge {
                    server: "https://second:6443".into(),
                    k8s_version: None,
                    objects: 0,
                },
            ],
            queue_depth: 0,
            dora: Some(DoraSnapshot {
                window_seconds: 86_400,
                projects: vec![(
                    "default".into(),
                    plumb_core::dora::Dora {
                        deployments: 2,
                        deployments_per_day: 2.0,
                        lead_time_seconds: Some(90.0),
                        change_failure_rate: Some(0.5),
                        failed_deployments: 1,
                        ..Default::default()
                    },
                )],
                apps: vec![(
                    DoraApp {
                        name: "web".into(),
                        namespace: "plumb".into(),
                        project: "default".into(),
                    },
                    plumb_core::dora::Dora::default(),
                )],
            }),
        };
        let text = metrics.text(&snapshot);
        for line in [
            "argocd_app_sync_total{name=\"web\",namespace=\"plumb\",project=\"default\",dest_server=\"https://kubernetes.default.svc\",phase=\"Succeeded\"} 1",
            "argocd_git_request_total{repo=\"https://git.example/repo.git\",request_type=\"fetch\"} 1",
            "argocd_cluster_api_resource_objects{server=\"https://127.0.0.1:6443\"} 3",
            "argocd_cluster_connection_status{server=\"https://127.0.0.1:6443\",k8s_version=\"v1.20.2\"} 1",
            "argocd_cluster_connection_status{server=\"https://second:6443\",k8s_version=\"\"} 0",
            "argocd_cluster_api_resource_objects{server=\"https://second:6443\"} 0",
            "plumb_queue_depth 0",
            "plumb_dora_window_seconds 86400",
            "plumb_dora_project_deployments{project=\"default\"} 2.0",
            "plumb_dora_project_lead_time_seconds{project=\"default\"} 90.0",
            "plumb_dora_project_change_failure_ratio{project=\"default\"} 0.5",
            "plumb_dora_app_deployments{name=\"web\",namespace=\"plumb\",project=\"default\"} 0.0",
        ] {
            assert!(text.lines().any(|l| l == line), "{line}\n{text}");
        }
        assert!(
            text.lines()
                .any(|l| l.starts_with("argocd_app_info{name=\"web\"")
                    && l.contains("health_status=\"Healthy\"")
                    && l.ends_with(" 1")),
            "{text}"
        );
        assert!(
            text.lines()
                .any(|l| l
                    == "plumb_operation_duration_seconds_bucket{phase=\"Succeeded\",le=\"2\"} 1"),
            "{text}"
        );
        // No restore, no lead time: the medians are left out, not 0.
        assert!(
            !text.contains("plumb_dora_project_time_to_restore_seconds{"),
            "{text}"
        );
        assert!(
            !text.contains("plumb_dora_app_lead_time_seconds{"),
            "{text}"
        );
    }
}
