//! The reconcile loop: keeps every declared application compared with Git and
//! the cluster, syncs when policy or a user says so, and publishes status,
//! history and events.
//!
//! One application is reconciled at a time by one worker (a per-application
//! lock); many applications run in parallel on a bounded pool of workers. The
//! rules live in `render`, `diff`, `plan` and `health`; this module wires them
//! to the edges (git, cluster, store, clock).

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::hash::{Hash, Hasher};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use futures::StreamExt;
use kube::api::{Api, DynamicObject, Patch, PatchParams};
use rand::Rng;
use serde_json::{Value, json};
use tokio::sync::{broadcast, mpsc};
use tokio_util::sync::CancellationToken;

use crate::appns::AppNamespaces;
use crate::cluster::{Cluster, Kind};
use crate::diff::{self, Comparison};
use crate::health;
use crate::ignore::IgnoreRules;
use crate::live::{ChangedApps, Live, LiveObject, LiveState};
use crate::model::{
    Application, ApplicationStatus, Condition, Health, HealthStatusCode, InitiatedBy,
    MANAGED_LABEL, MANAGED_LABEL_VALUE, Manifest, Operation, OperationPhase, OperationState,
    ResourceKey, ResourceResult, ResourceStatus, RevisionHistory, RollbackPin, SyncOperation,
    SyncOperationResource, SyncResult, SyncStatus, SyncStatusCode, SyncStrategy,
    TRACKING_ANNOTATION, group_of, version_of,
};
use crate::plan::{self, Desired, PlanOptions, Tracked};
use crate::registry::{self, Declared, Origin, SourceUpdate, Watched};
use crate::service::{
    AppEvent, AppService, Cascade, ManagedResource, ParentRef, Refresh, ResourceNode, ResourceTree,
    ServiceError, SyncRequest,
};
use crate::source::{RepoCache, normalize_url};
use crate::store::Store;
use crate::sync;

mod appsets;
mod clock;
mod crud;
mod delay;
mod deletion;
mod dora;
mod error;
mod fetch;
mod leader;
mod manifests;
mod operation;
mod options;
mod projects;
mod queue;
mod reconcile;
mod slot;
mod sources;
mod status;
mod views;

pub use clock::{Clock, SystemClock};

/// Status writes to Application objects in flight at once. Each costs the
/// API server far more than an apply of a small object (the object is
/// large and its managed fields are recomputed), so they are kept few, and
/// never block a sync.
const STATUS_WRITERS: usize = 4;
pub use error::ReconcileError;
pub use options::{ControllerOptions, StartError};
use slot::{AppSlot, AppWork, ManualOp, RenderCache, RunningOp, Trigger, WaitingOp};

struct Inner {
    /// Plumb's own cluster: Application, ApplicationSet and AppProject
    /// objects, settings, Secrets. Applications reach their destination
    /// through `dests`.
    cluster: Cluster,
    /// The clusters applications deploy to, each with its live state.
    dests: Arc<crate::destinations::Destinations>,
    repos: Arc<RepoCache>,
    tools: Arc<crate::tools::Tools>,
    store: Store,
    options: ControllerOptions,
    /// The namespaces whose Application objects are managed.
    namespaces: Arc<AppNamespaces>,
    apps: RwLock<BTreeMap<String, Arc<AppSlot>>>,
    sources: Mutex<sources::Sources>,
    events: broadcast::Sender<AppEvent>,
    queue: mpsc::UnboundedSender<String>,
    /// Applications a new commit changed: workers take these first.
    urgent: mpsc::UnboundedSender<String>,
    queued: Mutex<HashSet<String>>,
    fetched: Mutex<HashMap<String, Arc<tokio::sync::OnceCell<()>>>>,
    pollers: Mutex<HashSet<String>>,
    /// The error of the last fetch of each repository URL whose last fetch
    /// failed: its applications show it while they keep the revision
    /// fetched before.
    fetch_errors: Mutex<HashMap<String, String>>,
    /// Applications whose status may need writing to their object.
    status_writes: Arc<ChangedApps>,
    /// Applications to compare again later.
    delays: delay::DelayQueue,
    /// The time, for the policy's backoffs and the delay queue.
    clock: Arc<dyn Clock>,
    /// The last operation id handed out.
    operation_ids: AtomicU64,
    /// ApplicationSets and their passes.
    appsets: appsets::AppSets,
    /// The AppProjects applications are checked against.
    projects: RwLock<projects::Projects>,
    cancel: CancellationToken,
}

/// A running controller; cheap to clone.
#[derive(Clone)]
pub struct Controller {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Controller {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Controller").finish_non_exhaustive()
    }
}

/// The time now, RFC 3339 in whole seconds (status and API times).
pub(crate) fn now() -> String {
    time::OffsetDateTime::now_utc()
        .replace_nanosecond(0)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default()
}

/// A start time that tells apart operations started within one second (the
/// API and CLI follow an operation by it).
fn now_precise() -> String {
    let t = time::OffsetDateTime::now_utc();
    let millis = t.millisecond();
    t.replace_nanosecond(0)
        .ok()
        .and_then(|t| {
            t.format(&time::macros::format_description!(
                "[year]-[month]-[day]T[hour]:[minute]:[second]"
            ))
            .ok()
        })
        .map(|s| format!("{s}.{millis:03}Z"))
        .unwrap_or_default()
}

fn hash_of<T: Hash + ?Sized>(value: &T) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    value.hash(&mut h);
    h.finish()
}

fn hash_json(value: &impl serde::Serialize) -> u64 {
    hash_of(&serde_json::to_vec(value).expect("JSON values always serialize"))
}

fn condition(type_: &str, message: impl Into<String>) -> Condition {
    Condition {
        type_: type_.into(),
        message: message.into(),
        last_transition_time: Some(now()),
    }
}

/// An application's name: its `metadata.name`, qualified as
/// `NAMESPACE/NAME` for an Application object outside the application
/// namespace (an `--apps` file's applications have no namespace).
fn app_name(d: &Declared, namespaces: &AppNamespaces) -> String {
    let name = d.app.metadata.name.as_deref().unwrap_or_default();
    match d.origin {
        Origin::File(_) => name.to_string(),
        Origin::Cluster => namespaces.key(
            d.app.metadata.namespace.as_deref().unwrap_or_default(),
            name,
        ),
    }
}

impl Controller {
    /// Starts the controller: opens the store, marks syncs a previous process
    /// left unfinished, starts the sources, workers, pollers and resyncs.
    ///
    /// # Errors
    /// When the data directory or the store cannot be opened.
    pub async fn start(
        client: kube::Client,
        options: ControllerOptions,
        cancel: CancellationToken,
    ) -> Result<Controller, StartError> {
        std::fs::create_dir_all(&options.data_dir).map_err(|source| StartError::DataDir {
            path: options.data_dir.display().to_string(),
            source,
        })?;
        let store = Store::open(&options.data_dir.join("store"))?;
        let tools = crate::tools::Tools::new(crate::tools::ToolOptions {
            root: options.data_dir.join("tools"),
            ..options.tools.clone()
        })
        .map_err(|source| StartError::DataDir {
            path: options.data_dir.join("tools").display().to_string(),
            source,
        })?;
        for app in store.recover_interrupted(&now())? {
            tracing::warn!(
                app,
                "a sync was interrupted by a restart; it is recorded as not finished"
            );
        }
        let namespaces = Arc::new(AppNamespaces::new(
            &options.namespace,
            &options.app_namespaces,
        )?);
        let file_settings = match &options.resource_customizations {
            Some(path) => crate::settings::read_file(path)?,
            None => crate::settings::Data::new(),
        };
        let changes = Arc::new(ChangedApps::default());
        let own_alarm = Arc::new(tokio::sync::Notify::new());
        let live = LiveState::scoped(
            client.clone(),
            Arc::clone(&changes),
            cancel.clone(),
            Some(Arc::clone(&own_alarm)),
            Some(options.managed_namespaces.clone()),
        );
        if let Some(managed) = live.namespaces() {
            tracing::info!(namespaces = %managed.join(","), "deploying to these namespaces only (--managed-namespaces)");
        }
        // Settings first, so the first reconciles see the customizations;
        // each change re-assesses the kinds whose health rule it changes.
        let mut settings = crate::settings::SettingsSource::watch(
            client.clone(),
            &options.namespace,
            file_settings,
            options.watch_timeout,
            cancel.clone(),
        )
        .await;
        let dests = crate::destinations::Destinations::new(
            client.clone(),
            live,
            own_alarm,
            Arc::clone(&changes),
            crate::destinations::DestOptions {
                namespace: options.namespace.clone(),
                request_timeout: options.request_timeout,
                metrics: Some(Arc::clone(&options.metrics)),
                // One shard: every write asks its Lease. Several: each
                // operation's writes ask its application's (`write_cluster`).
                fence: if options.shards.count() == 1 {
                    options.shards.lease(0).clone()
                } else {
                    crate::lease::Leadership::always()
                },
            },
            cancel.clone(),
        )
        .await;
        dests.set_settings(settings.current());
        let (queue_tx, queue_rx) = mpsc::unbounded_channel();
        let (urgent_tx, urgent_rx) = mpsc::unbounded_channel();
        let (events, _) = broadcast::channel(1024);
        let inner = Arc::new(Inner {
            cluster: dests.own().cluster.clone(),
            dests: Arc::clone(&dests),
            repos: Arc::new({
                let repos = RepoCache::new(options.data_dir.join("repos"));
                repos.set_max_object_size(options.max_git_object_size);
                repos
            }),
            tools: Arc::new(tools),
            store,
            options: options.clone(),
            namespaces: Arc::clone(&namespaces),
            apps: RwLock::default(),
            sources: Mutex::default(),
            events,
            queue: queue_tx,
            urgent: urgent_tx,
            queued: Mutex::default(),
            fetched: Mutex::default(),
            pollers: Mutex::default(),
            fetch_errors: Mutex::default(),
            delays: delay::DelayQueue::default(),
            status_writes: Arc::default(),
            clock: Arc::new(SystemClock),
            operation_ids: AtomicU64::new(0),
            appsets: appsets::AppSets::default(),
            projects: RwLock::default(),
            cancel: cancel.clone(),
        });

        // Workers share one queue (a name is queued at most once at a time)
        // and take the urgent queue first.
        let queue_rx = Arc::new(tokio::sync::Mutex::new(queue_rx));
        let urgent_rx = Arc::new(tokio::sync::Mutex::new(urgent_rx));
        for _ in 0..options.workers.max(1) {
            let (inner, queue_rx, urgent_rx) = (
                Arc::clone(&inner),
                Arc::clone(&queue_rx),
                Arc::clone(&urgent_rx),
            );
            tokio::spawn(async move {
                loop {
                    let name = tokio::select! {
                        biased;
                        () = inner.cancel.cancelled() => return,
                        name = async { urgent_rx.lock().await.recv().await } => name,
                        name = async { queue_rx.lock().await.recv().await } => name,
                    };
                    let Some(name) = name else { return };
                    inner
                        .queued
                        .lock()
                        .expect("queue lock is never poisoned")
                        .remove(&name);
                    let began = std::time::Instant::now();
                    let result = inner.reconcile(&name, Trigger::default()).await;
                    inner.reconciled(&name, began.elapsed());
                    if let Err(e) = result {
                        tracing::debug!(app = %name, error = %e, "reconcile skipped");
                    }
                }
            });
        }

        // Status write-back to Application objects, a few at a time, off
        // the reconcile path.
        let weak = Arc::downgrade(&inner);
        let writes = Arc::clone(&inner.status_writes);
        let stop = cancel.clone();
        tokio::spawn(async move {
            loop {
                let names = tokio::select! {
                    () = stop.cancelled() => return,
                    names = writes.next() => names,
                };
                let Some(inner) = weak.upgrade() else { return };
                futures::stream::iter(names)
                    .for_each_concurrent(STATUS_WRITERS, |name| {
                        let inner = Arc::clone(&inner);
                        async move { inner.write_cr_status(&name).await }
                    })
                    .await;
            }
        });

        // Settings as they change: the kinds whose health rule changed are
        // assessed again (the live state requeues their applications); a
        // change of the server-wide ignoreDifferences rules compares every
        // application again.
        let weak = Arc::downgrade(&inner);
        tokio::spawn(async move {
            while let Some(current) = settings.changed().await {
                let Some(inner) = weak.upgrade() else { return };
                let before = inner.dests.own().live.settings();
                inner.dests.set_settings(Arc::clone(&current));
                if before.ignore_differences() != current.ignore_differences() {
                    for name in inner.names() {
                        inner.enqueue(&name);
                    }
                }
            }
        });

        // Requeues that were delayed come due.
        let weak = Arc::downgrade(&inner);
        tokio::spawn(inner.delays.clone().run(cancel.clone(), move |name| {
            if let Some(inner) = weak.upgrade() {
                inner.enqueue(name);
            }
        }));

        // Changes of tracked objects requeue their application at once.
        let weak = Arc::downgrade(&inner);
        let changed = Arc::clone(&changes);
        let stop = cancel.clone();
        tokio::spawn(async move {
            loop {
                let apps = tokio::select! {
                    () = stop.cancelled() => return,
                    apps = changed.next() => apps,
                };
                let Some(inner) = weak.upgrade() else { return };
                for app in apps {
                    inner.enqueue(&app);
                }
            }
        });

        // A cluster whose connection state changed (or whose Secret did):
        // its applications are compared again ("*": every application, the
        // catalogue changed).
        let weak = Arc::downgrade(&inner);
        let touched = dests.touched();
        let stop = cancel.clone();
        tokio::spawn(async move {
            loop {
                let servers = tokio::select! {
                    () = stop.cancelled() => return,
                    servers = touched.next() => servers,
                };
                let Some(inner) = weak.upgrade() else { return };
                inner.requeue_clusters(&servers);
            }
        });
        // The cluster catalogue, from Argo CD's cluster Secrets.
        crate::destinations::watch_secrets(client.clone(), Arc::clone(&dests), cancel.clone());

        // Credentials for https repositories, from Argo CD's repository Secrets.
        crate::repocreds::watch(
            client.clone(),
            &options.namespace,
            Arc::clone(&inner.repos),
            cancel.clone(),
        );

        // Application sources.
        let updates = Arc::new(registry::Updates::default());
        if !options.apps.is_empty() {
            registry::watch_files(options.apps.clone(), Arc::clone(&updates), cancel.clone());
        }
        if options.watch_cluster_apps {
            registry::watch_cluster(
                client.clone(),
                namespaces,
                Arc::clone(&updates),
                cancel.clone(),
            );
            registry::watch_projects(
                client.clone(),
                options.namespace.clone(),
                Arc::clone(&updates),
                cancel.clone(),
            );
            registry::watch_appsets(
                client,
                options.namespace.clone(),
                Arc::clone(&updates),
                cancel.clone(),
            );
        }
        inner.start_appsets();
        inner.follow_leadership();
        let weak = Arc::downgrade(&inner);
        let stop = cancel.clone();
        tokio::spawn(async move {
            loop {
                let batch = tokio::select! {
                    () = stop.cancelled() => return,
                    batch = updates.next() => batch,
                };
                let Some(inner) = weak.upgrade() else { return };
                inner.apply_source_updates(batch);
            }
        });

        // Periodic full resync; cheap for unchanged applications.
        let weak = Arc::downgrade(&inner);
        let resync = options.resync_interval;
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(resync).await;
                let Some(inner) = weak.upgrade() else { return };
                if inner.cancel.is_cancelled() {
                    return;
                }
                for name in inner.names() {
                    inner.enqueue(&name);
                }
            }
        });
        Ok(Controller { inner })
    }

    /// Number of real repository fetches made so far.
    pub fn fetch_count(&self) -> u64 {
        self.inner.repos.fetch_count()
    }

    /// Fetches the repositories at `url` now and reconciles the applications
    /// that use it (a webhook). Returns how many applications were queued.
    pub async fn repo_changed(&self, url: &str) -> usize {
        let inner = Arc::clone(&self.inner);
        let Ok(url) = normalize_url(url) else {
            return 0;
        };
        let apps = inner.apps_on(&url);
        if apps.is_empty() && !inner.appsets.reads_repo(&url) {
            return 0;
        }
        if let Err(e) = inner.fetch_now(&url).await {
            tracing::warn!(url = %url, error = %e, "fetch after a repository change failed");
        }
        inner.appsets_fetched(&url).await;
        let count = apps.len();
        inner.refresh_after_fetch(&url, apps).await;
        count
    }
}

impl Inner {
    /// Every application's slot, taken out of the map's lock (to walk them
    /// without holding it).
    fn slots(&self) -> Vec<(String, Arc<AppSlot>)> {
        self.apps
            .read()
            .expect("app map lock is never poisoned")
            .iter()
            .map(|(n, s)| (n.clone(), Arc::clone(s)))
            .collect()
    }

    /// Queues again the applications whose destination is one of
    /// `servers` (all of them for `*`, a change of the catalogue), and marks
    /// those whose cluster answers again as reconnected.
    fn requeue_clusters(&self, servers: &[String]) {
        let all = servers.iter().any(|s| s == crate::destinations::ALL);
        // Those of `servers` that answer now (their state changed: they did
        // not before): their applications are marked reconnected, so that
        // an automated sync that failed meanwhile is retried at once.
        let answering: Vec<String> = self
            .dests
            .connected()
            .iter()
            .filter(|d| {
                servers.contains(&d.server)
                    && d.state().status == crate::destinations::Status::Successful
            })
            .map(|d| d.server.clone())
            .collect();
        let slots = self.slots();
        let catalog = self.dests.catalog();
        for (name, slot) in slots {
            let declared = slot.declared();
            let project = plumb_core::project::project_of(&declared.app);
            let server = catalog
                .resolve(&declared.app.spec.destination, project)
                .ok()
                .map(|e| e.server.as_str());
            if server.is_some_and(|s| answering.iter().any(|a| a == s)) {
                slot.reconnected.store(true, Ordering::SeqCst);
            }
            if all || server.is_some_and(|s| servers.iter().any(|x| x == s)) {
                self.enqueue(&name);
            }
        }
    }

    /// How many applications deploy to `server`.
    fn applications_on(&self, server: &str) -> usize {
        let catalog = self.dests.catalog();
        self.apps
            .read()
            .expect("app map lock is never poisoned")
            .values()
            .filter(|slot| {
                let declared = slot.declared();
                let project = plumb_core::project::project_of(&declared.app);
                catalog
                    .resolve(&declared.app.spec.destination, project)
                    .is_ok_and(|e| e.server == server)
            })
            .count()
    }

    /// Records one reconcile of a managed application in
    /// `argocd_app_reconcile`.
    fn reconciled(&self, name: &str, took: Duration) {
        let Some(slot) = self.slot(name) else { return };
        let declared = slot.declared();
        let (namespace, _) = self.namespaces.split(name);
        self.options.metrics.reconciled(
            crate::metrics::ReconcileLabels {
                namespace: namespace.to_string(),
                dest_server: declared
                    .app
                    .spec
                    .destination
                    .server
                    .clone()
                    .unwrap_or_default(),
            },
            took.as_secs_f64(),
        );
    }

    /// The present as the metrics' gauges show it: each application, the
    /// objects held, whether the API server answers (asked now, bounded by
    /// `--request-timeout`), the queue.
    async fn metrics_snapshot(&self) -> crate::metrics::Snapshot {
        let slots = self.slots();
        let apps = slots
            .iter()
            .map(|(name, slot)| {
                let declared = slot.declared();
                let spec = &declared.app.spec;
                let (namespace, short) = self.namespaces.split(name);
                let status = slot.status.read().expect("status lock is never poisoned");
                crate::metrics::AppInfo {
                    name: short.to_string(),
                    namespace: namespace.to_string(),
                    project: spec.project.clone(),
                    repo: spec
                        .all_sources()
                        .first()
                        .map(|s| s.repo_url.clone())
                        .unwrap_or_default(),
                    dest_server: spec.destination.server.clone().unwrap_or_default(),
                    dest_namespace: spec.destination.namespace.clone().unwrap_or_default(),
                    sync_status: format!("{:?}", status.sync.status),
                    health_status: format!("{:?}", status.health.status),
                    operation: if slot.running().is_some() {
                        "sync".into()
                    } else {
                        String::new()
                    },
                    autosync_enabled: spec.automated().is_some().to_string(),
                }
            })
            .collect();
        // Versions from each cluster's prober: a scrape makes no request.
        let clusters = self
            .dests
            .connected()
            .iter()
            .map(|d| {
                let state = d.state();
                crate::metrics::ClusterGauge {
                    server: d.server.clone(),
                    k8s_version: (state.status == crate::destinations::Status::Successful)
                        .then(|| state.version.unwrap_or_default()),
                    objects: d.live.len() as u64,
                }
            })
            .collect();
        let dora = self.dora_snapshot(&slots);
        crate::metrics::Snapshot {
            apps,
            clusters,
            dora,
            queue_depth: self
                .queued
                .lock()
                .expect("queue lock is never poisoned")
                .len() as u64,
        }
    }

    fn names(&self) -> Vec<String> {
        self.apps
            .read()
            .expect("app map lock is never poisoned")
            .keys()
            .cloned()
            .collect()
    }

    fn slot(&self, name: &str) -> Option<Arc<AppSlot>> {
        self.apps
            .read()
            .expect("app map lock is never poisoned")
            .get(name)
            .cloned()
    }
}

impl AppService for Controller {
    fn ready(&self) -> Result<(), String> {
        if !self.inner.options.watch_cluster_apps
            || self.inner.appsets.listed.load(Ordering::SeqCst)
        {
            Ok(())
        } else {
            Err("the first list of Application objects has not arrived yet".into())
        }
    }

    fn names(&self) -> Vec<String> {
        self.inner.names()
    }

    fn app_namespace(&self) -> String {
        self.inner.namespaces.home().to_string()
    }

    fn document(&self, name: &str) -> Option<Application> {
        let name = self.inner.namespaces.canonical(name);
        let slot = self.inner.slot(name)?;
        Some(self.inner.document(name, &slot))
    }

    async fn get(&self, name: &str, refresh: Option<Refresh>) -> Result<Application, ServiceError> {
        let name = self.inner.namespaces.canonical(name);
        let slot = self
            .inner
            .slot(name)
            .ok_or_else(|| ServiceError::NotFound(name.to_string()))?;
        if let Some(r) = refresh {
            let hard = r == Refresh::Hard;
            if let Err(e) = self
                .inner
                .reconcile(
                    name,
                    Trigger {
                        op: None,
                        force: true,
                        hard,
                    },
                )
                .await
            {
                tracing::debug!(app = %name, error = %e, "refresh found a problem; it is in the status");
            }
        }
        Ok(self.inner.document(name, &slot))
    }

    async fn sync(&self, name: &str, request: SyncRequest) -> Result<Application, ServiceError> {
        let name = self.inner.namespaces.canonical(name);
        let retry = request.retry_strategy.or_else(|| {
            self.inner
                .slot(name)
                .and_then(|s| s.declared().app.spec.sync_policy.clone())
                .and_then(|p| p.retry)
        });
        let op = ManualOp {
            revision: request.revision.filter(|r| !r.is_empty()),
            prune: request.prune,
            dry_run: request.dry_run,
            retry,
            initiated_by: InitiatedBy {
                username: "api".into(),
                automated: false,
            },
            resources: request.resources.unwrap_or_default(),
            strategy: request.strategy,
            sync_options: request.sync_options.map(|o| o.items).unwrap_or_default(),
            ..ManualOp::default()
        };
        self.inner.start_operation(name, op, None)
    }

    fn dora(
        &self,
        apps: &[(String, String)],
        window: i64,
        failure_window: i64,
    ) -> Result<crate::service::DoraReport, ServiceError> {
        self.inner.dora(apps, window, failure_window)
    }

    async fn create(&self, app: Value, upsert: bool) -> Result<Application, ServiceError> {
        self.inner.create_application(app, upsert).await
    }

    async fn update(&self, name: &str, app: Value) -> Result<Application, ServiceError> {
        let name = self.inner.namespaces.canonical(name);
        self.inner.update_application(name, app).await
    }

    async fn create_project(
        &self,
        body: Value,
    ) -> Result<crate::project::AppProject, ServiceError> {
        self.inner.create_project(body).await
    }

    async fn update_project(
        &self,
        name: &str,
        body: Value,
    ) -> Result<crate::project::AppProject, ServiceError> {
        self.inner.update_project(name, body).await
    }

    async fn delete_project(&self, name: &str) -> Result<(), ServiceError> {
        self.inner.delete_project(name).await
    }

    async fn delete(&self, name: &str, cascade: Cascade) -> Result<(), ServiceError> {
        let name = self.inner.namespaces.canonical(name);
        self.inner.delete_application(name, cascade).await
    }

    async fn rollback(&self, name: &str, id: i64) -> Result<Application, ServiceError> {
        let name = self.inner.namespaces.canonical(name);
        self.inner
            .slot(name)
            .ok_or_else(|| ServiceError::NotFound(name.to_string()))?;
        let history = self
            .inner
            .store
            .history(name)
            .map_err(|e| ServiceError::Internal(e.to_string()))?;
        let entry = history.iter().find(|e| e.id == id).ok_or_else(|| {
            ServiceError::BadRequest(format!("application {name} has no history entry {id}"))
        })?;
        let pin = RollbackPin {
            revision: entry.joined_revision(),
            history_id: id,
            at: now(),
        };
        let prune = self
            .inner
            .slot(name)
            .is_some_and(|s| s.declared().app.spec.automated().is_some_and(|a| a.prune));
        let op = ManualOp {
            revision: Some(entry.joined_revision()),
            prune,
            dry_run: false,
            initiated_by: InitiatedBy {
                username: dora::ROLLBACK_USER.into(),
                automated: false,
            },
            ..ManualOp::default()
        };
        self.inner.start_operation(name, op, Some(pin))
    }

    async fn terminate_operation(&self, name: &str) -> Result<Application, ServiceError> {
        let name = self.inner.namespaces.canonical(name);
        self.inner.terminate_operation(name)
    }

    fn confirm_prune(&self, name: &str) -> Result<Application, ServiceError> {
        let name = self.inner.namespaces.canonical(name);
        self.inner.confirm_prune(name)
    }

    async fn managed_resources(&self, name: &str) -> Result<Vec<ManagedResource>, ServiceError> {
        let name = self.inner.namespaces.canonical(name);
        self.inner.managed(name).await
    }

    async fn revision_metadata(
        &self,
        name: &str,
        revision: &str,
    ) -> Result<crate::source::CommitMetadata, ServiceError> {
        let name = self.inner.namespaces.canonical(name);
        let slot = self
            .inner
            .slot(name)
            .ok_or_else(|| ServiceError::NotFound(name.to_string()))?;
        let url = slot
            .declared()
            .app
            .spec
            .all_sources()
            .iter()
            .find(|s| s.chart_name().is_none())
            .map(|s| s.repo_url.clone())
            .ok_or_else(|| ServiceError::BadRequest(format!("{name} has no git source")))?;
        let repos = Arc::clone(&self.inner.repos);
        let revision = revision.to_string();
        tokio::task::spawn_blocking(move || repos.commit_metadata(&url, &revision))
            .await
            .map_err(|_| ServiceError::Internal("reading the commit failed".into()))?
            .map_err(|e| match e {
                crate::source::SourceError::Corrupt { .. } => ServiceError::Internal(e.to_string()),
                other => ServiceError::BadRequest(other.to_string()),
            })
    }

    async fn resource_tree(&self, name: &str) -> Result<ResourceTree, ServiceError> {
        let name = self.inner.namespaces.canonical(name);
        self.inner.tree(name).await
    }

    async fn refresh_repository(&self, url: &str) -> usize {
        self.repo_changed(url).await
    }

    fn subscribe(&self) -> broadcast::Receiver<AppEvent> {
        self.inner.events.subscribe()
    }

    fn appsets(&self) -> Vec<crate::appset::ApplicationSet> {
        self.inner.appsets.views()
    }

    fn projects(&self) -> Vec<crate::project::AppProject> {
        self.inner
            .projects
            .read()
            .expect("projects lock is never poisoned")
            .list(self.inner.namespaces.home())
    }

    fn appset(&self, name: &str) -> Result<crate::appset::ApplicationSet, ServiceError> {
        self.inner
            .appsets
            .view(name)
            .ok_or_else(|| ServiceError::AppSetNotFound(name.to_string()))
    }

    fn confirm_appset_deletion(
        &self,
        name: &str,
        token: &str,
    ) -> Result<crate::appset::ApplicationSet, ServiceError> {
        self.inner.confirm_appset_deletion(name, token)?;
        self.appset(name)
    }

    async fn preview_appset(
        &self,
        set: Value,
    ) -> Result<crate::service::AppSetPreview, ServiceError> {
        self.inner.preview_appset(set).await
    }

    fn clusters(&self) -> Vec<crate::destinations::ClusterView> {
        self.inner
            .dests
            .views(&|server| self.inner.applications_on(server))
    }

    async fn metrics(&self) -> Option<String> {
        let snapshot = self.inner.metrics_snapshot().await;
        Some(self.inner.options.metrics.text(&snapshot))
    }
}
