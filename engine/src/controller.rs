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

use crate::cluster::{Cluster, Kind};
use crate::diff::{self, Comparison};
use crate::health;
use crate::live::LiveState;
use crate::model::{
    Application, ApplicationStatus, Condition, Health, HealthStatusCode, IN_CLUSTER_NAME,
    IN_CLUSTER_SERVER, InitiatedBy, Manifest, Operation, OperationPhase, OperationState,
    ResourceKey, ResourceResult, ResourceStatus, RevisionHistory, RollbackPin,
    SYNC_OPTIONS_ANNOTATION, SyncOperation, SyncResult, SyncStatus, SyncStatusCode,
    TRACKING_ANNOTATION, annotation, group_of,
};
use crate::plan::{self, Desired, PlanOptions, Tracked};
use crate::registry::{self, Declared, Origin, SourceUpdate};
use crate::render;
use crate::service::{
    AppEvent, AppService, ManagedResource, ParentRef, Refresh, ResourceNode, ResourceTree,
    ServiceError, SyncRequest,
};
use crate::source::{ReadFilter, RepoCache, normalize_url};
use crate::store::Store;
use crate::sync;

/// How many history entries and resources the Application CR's status keeps;
/// the full record is in the store and the API.
const CR_HISTORY: usize = 5;
const CR_RESOURCES: usize = 100;
/// Dry runs one application has in flight at once.
const COMPARE_CONCURRENCY: usize = 16;

/// What `plumb serve` is configured with.
#[derive(Clone, Debug)]
pub struct ControllerOptions {
    /// Namespace whose `Application` objects are managed.
    pub namespace: String,
    /// `--apps` files and folders.
    pub apps: Vec<PathBuf>,
    /// Where repositories and the store live.
    pub data_dir: PathBuf,
    /// How often each repository is fetched.
    pub repo_poll_interval: Duration,
    /// How often every application is compared again without a trigger.
    pub resync_interval: Duration,
    /// Applications reconciled at once.
    pub workers: usize,
    /// Watch `Application` objects in the cluster.
    pub watch_cluster_apps: bool,
    /// The largest manifest file read, in bytes.
    pub max_manifest_size: u64,
    /// How long a repository fetch may take.
    pub fetch_timeout: Duration,
    /// How long the first list of a watched kind may take.
    pub watch_timeout: Duration,
    /// How long a CRD of a sync may take to become Established.
    pub crd_timeout: Duration,
}

impl Default for ControllerOptions {
    fn default() -> Self {
        ControllerOptions {
            namespace: "plumb".into(),
            apps: Vec::new(),
            data_dir: PathBuf::from("plumb-data"),
            repo_poll_interval: Duration::from_secs(60),
            resync_interval: Duration::from_secs(180),
            workers: 16,
            watch_cluster_apps: true,
            max_manifest_size: 8 << 20,
            fetch_timeout: Duration::from_secs(120),
            watch_timeout: Duration::from_secs(30),
            crd_timeout: Duration::from_secs(60),
        }
    }
}

/// The error of starting the controller.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The store could not be opened.
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    /// The data directory could not be created.
    #[error("cannot create data directory {path}: {source}")]
    DataDir {
        /// The folder.
        path: String,
        /// What the OS said.
        #[source]
        source: std::io::Error,
    },
}

/// A sync operation asked of one reconcile: by a user (sync, rollback) or
/// by automated sync.
#[derive(Clone, Debug, Default)]
struct ManualOp {
    revision: Option<String>,
    prune: bool,
    dry_run: bool,
    initiated_by: InitiatedBy,
    /// Identifies the operation in [`AppSlot::operation`]; 0 until started.
    id: u64,
    /// When the request started it (empty for automated syncs).
    started_at: String,
    /// Fires when the operation is terminated.
    cancel: CancellationToken,
}

/// The operation an application runs now. At most one per application,
/// decided under the slot's lock, so two requests never both start one.
struct RunningOp {
    id: u64,
    started_at: String,
    initiated_by: InitiatedBy,
    cancel: CancellationToken,
}

/// How often a running sync publishes its progress.
const PROGRESS_EVERY: Duration = Duration::from_millis(500);

/// What a reconcile was asked to do beyond comparing.
#[derive(Clone, Debug, Default)]
struct Trigger {
    op: Option<ManualOp>,
    /// Compare again even if nothing seems to have changed.
    force: bool,
    /// Fetch the repository first.
    hard: bool,
}

/// Per-application memory between reconciles.
#[derive(Default)]
struct AppWork {
    /// (revision, spec hash, live generation) of the last full comparison.
    last_key: Option<(String, u64, u64)>,
    /// Render of (revision, spec hash).
    render: Option<(String, u64, Arc<Vec<Manifest>>)>,
    /// Per resource: (desired hash, live resourceVersion) -> modified, error.
    compared: HashMap<ResourceKey, (u64, String, bool)>,
    /// The revision of the last successful sync (from the store at first use).
    last_synced: Option<String>,
    loaded: bool,
    /// Self-heal backoff.
    heal_attempts: u32,
    last_heal: Option<Instant>,
    /// Automated sync failures: revision, count, when to retry.
    failed_auto: Option<(String, u32, Instant)>,
    /// The status last written to the Application CR.
    written: Option<Value>,
}

struct AppSlot {
    declared: RwLock<Declared>,
    status: RwLock<ApplicationStatus>,
    work: tokio::sync::Mutex<AppWork>,
    operation: Mutex<Option<RunningOp>>,
}

impl AppSlot {
    fn new(declared: Declared) -> Arc<AppSlot> {
        Arc::new(AppSlot {
            declared: RwLock::new(declared),
            status: RwLock::default(),
            work: tokio::sync::Mutex::default(),
            operation: Mutex::default(),
        })
    }

    fn declared(&self) -> Declared {
        self.declared
            .read()
            .expect("declared lock is never poisoned")
            .clone()
    }

    fn running(&self) -> std::sync::MutexGuard<'_, Option<RunningOp>> {
        self.operation
            .lock()
            .expect("operation lock is never poisoned")
    }

    fn status(&self) -> ApplicationStatus {
        self.status
            .read()
            .expect("status lock is never poisoned")
            .clone()
    }
}

struct Inner {
    cluster: Cluster,
    live: Arc<LiveState>,
    repos: Arc<RepoCache>,
    store: Store,
    options: ControllerOptions,
    apps: RwLock<BTreeMap<String, Arc<AppSlot>>>,
    sources: Mutex<(Vec<Declared>, Vec<Declared>)>,
    events: broadcast::Sender<AppEvent>,
    queue: mpsc::UnboundedSender<String>,
    /// Applications a new commit changed: workers take these first.
    urgent: mpsc::UnboundedSender<String>,
    queued: Mutex<HashSet<String>>,
    fetched: Mutex<HashMap<String, Arc<tokio::sync::OnceCell<()>>>>,
    pollers: Mutex<HashSet<String>>,
    /// The last operation id handed out.
    operation_ids: AtomicU64,
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

fn now() -> String {
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

/// Whether the repository file `changed` lies in the application folder
/// `path` (`""`, `.` and `/` name the repository root).
fn path_contains(path: &str, changed: &str) -> bool {
    let folder = path.trim_start_matches("./").trim_matches('/');
    folder.is_empty()
        || folder == "."
        || changed == folder
        || changed
            .strip_prefix(folder)
            .is_some_and(|rest| rest.starts_with('/'))
}

fn app_name(d: &Declared) -> String {
    d.app.metadata.name.clone().unwrap_or_default()
}

/// The desired objects of an application, ready to compare: namespace
/// defaulted by scope, tracking annotation set, kind resolved (`None` while a
/// CRD of the same render is not yet served).
struct Prepared {
    key: ResourceKey,
    object: Value,
    kind: Option<Kind>,
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
        for app in store.recover_interrupted(&now())? {
            tracing::warn!(
                app,
                "a sync was interrupted by a restart; it is recorded as not finished"
            );
        }
        let (changes_tx, mut changes_rx) = mpsc::unbounded_channel();
        let live = LiveState::new(client.clone(), changes_tx, cancel.clone());
        let (queue_tx, queue_rx) = mpsc::unbounded_channel();
        let (urgent_tx, urgent_rx) = mpsc::unbounded_channel();
        let (events, _) = broadcast::channel(1024);
        let inner = Arc::new(Inner {
            cluster: Cluster::new(client.clone()),
            live,
            repos: Arc::new(RepoCache::new(options.data_dir.join("repos"))),
            store,
            options: options.clone(),
            apps: RwLock::default(),
            sources: Mutex::default(),
            events,
            queue: queue_tx,
            urgent: urgent_tx,
            queued: Mutex::default(),
            fetched: Mutex::default(),
            pollers: Mutex::default(),
            operation_ids: AtomicU64::new(0),
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
                    if let Err(e) = inner.reconcile(&name, Trigger::default()).await {
                        tracing::debug!(app = %name, error = %e, "reconcile skipped");
                    }
                }
            });
        }

        // Changes of tracked objects requeue their application at once.
        let weak = Arc::downgrade(&inner);
        tokio::spawn(async move {
            while let Some(app) = changes_rx.recv().await {
                let Some(inner) = weak.upgrade() else { return };
                inner.enqueue(&app);
            }
        });

        // Credentials for https repositories, from Argo CD's repository Secrets.
        crate::repocreds::watch(
            client.clone(),
            &options.namespace,
            Arc::clone(&inner.repos),
            cancel.clone(),
        );

        // Application sources.
        let (updates_tx, mut updates_rx) = mpsc::unbounded_channel();
        if !options.apps.is_empty() {
            registry::watch_files(options.apps.clone(), updates_tx.clone(), cancel.clone());
        }
        if options.watch_cluster_apps {
            registry::watch_cluster(
                client,
                options.namespace.clone(),
                updates_tx,
                cancel.clone(),
            );
        }
        let weak = Arc::downgrade(&inner);
        tokio::spawn(async move {
            while let Some(update) = updates_rx.recv().await {
                let Some(inner) = weak.upgrade() else { return };
                inner.apply_source_update(update);
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
        if apps.is_empty() {
            return 0;
        }
        if let Err(e) = inner.fetch_now(&url).await {
            tracing::warn!(url = %url, error = %e, "fetch after a repository change failed");
        }
        let count = apps.len();
        inner.refresh_after_fetch(&url, apps).await;
        count
    }
}

impl Inner {
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

    fn enqueue(&self, name: &str) {
        if self
            .queued
            .lock()
            .expect("queue lock is never poisoned")
            .insert(name.to_string())
        {
            let _ = self.queue.send(name.to_string());
        }
    }

    /// Queues an application ahead of the ordinary queue. It may also be in
    /// that queue; the second reconcile finds nothing new and costs little.
    fn enqueue_urgent(&self, name: &str) {
        self.queued
            .lock()
            .expect("queue lock is never poisoned")
            .insert(name.to_string());
        let _ = self.urgent.send(name.to_string());
    }

    /// Queues the applications on `url` after a fetch: first those whose
    /// folder the new commit changed (or that have no revision yet), then
    /// the rest, which still need their status moved to the new revision.
    /// With thousands of applications on one repository, the one a commit
    /// touched goes live without waiting for all the others.
    async fn refresh_after_fetch(self: &Arc<Self>, url: &str, apps: Vec<String>) {
        let wanted: Vec<(String, String, String, String)> = apps
            .into_iter()
            .filter_map(|name| {
                let slot = self.slot(&name)?;
                let source = slot
                    .declared
                    .read()
                    .expect("declared lock is never poisoned")
                    .app
                    .spec
                    .source
                    .clone()?;
                let revision = slot
                    .status
                    .read()
                    .expect("status lock is never poisoned")
                    .sync
                    .revision
                    .clone();
                Some((
                    name,
                    source.target_revision.unwrap_or_default(),
                    source.path.unwrap_or_default(),
                    revision,
                ))
            })
            .collect();
        let repos = Arc::clone(&self.repos);
        let url = url.to_string();
        let split = tokio::task::spawn_blocking(move || {
            // One resolve and one tree diff per (target, deployed revision).
            let mut changes: HashMap<(String, String), Option<Vec<String>>> = HashMap::new();
            let (mut first, mut rest) = (Vec::new(), Vec::new());
            for (name, target, path, deployed) in wanted {
                let changed = changes
                    .entry((target.clone(), deployed.clone()))
                    .or_insert_with(|| {
                        if deployed.is_empty() {
                            return None;
                        }
                        let now = repos.resolve(&url, &target).ok()?;
                        if now == deployed {
                            return Some(Vec::new());
                        }
                        repos.changed_paths(&url, &deployed, &now).ok()
                    });
                match changed {
                    Some(paths) if !paths.iter().any(|p| path_contains(&path, p)) => {
                        rest.push(name);
                    }
                    _ => first.push(name),
                }
            }
            (first, rest)
        })
        .await;
        let Ok((first, rest)) = split else { return };
        for name in &first {
            self.enqueue_urgent(name);
        }
        for name in &rest {
            self.enqueue(name);
        }
    }

    fn enqueue_after(self: &Arc<Self>, name: &str, delay: Duration) {
        let weak = Arc::downgrade(self);
        let name = name.to_string();
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            if let Some(inner) = weak.upgrade() {
                inner.enqueue(&name);
            }
        });
    }

    fn apply_source_update(self: &Arc<Self>, update: SourceUpdate) {
        let merged = {
            let mut sources = self.sources.lock().expect("sources lock is never poisoned");
            match update {
                SourceUpdate::Files(Ok(apps)) => sources.0 = apps,
                SourceUpdate::Files(Err(e)) => {
                    // A half-edited file must never remove applications.
                    tracing::error!(error = %e, "cannot read --apps; keeping the applications read before");
                    return;
                }
                SourceUpdate::Cluster(apps) => sources.1 = apps,
            }
            let mut merged: BTreeMap<String, Declared> = BTreeMap::new();
            for d in sources.0.iter().chain(sources.1.iter()) {
                let name = app_name(d);
                if let Some(first) = merged.get(&name) {
                    tracing::warn!(app = %name, kept = ?first.origin, ignored = ?d.origin, "two applications share a name");
                    continue;
                }
                merged.insert(name, d.clone());
            }
            merged
        };
        let mut changed = Vec::new();
        let mut removed = Vec::new();
        {
            let mut apps = self.apps.write().expect("app map lock is never poisoned");
            apps.retain(|name, slot| {
                let keep = merged.contains_key(name);
                if !keep {
                    removed.push((name.clone(), Arc::clone(slot)));
                }
                keep
            });
            for (name, declared) in merged {
                match apps.get(&name) {
                    Some(slot) => {
                        let mut current = slot
                            .declared
                            .write()
                            .expect("declared lock is never poisoned");
                        let same = current.app.spec == declared.app.spec
                            && current.unsupported == declared.unsupported
                            && current.origin == declared.origin;
                        // Status written back to the CR comes round as an
                        // update; only the spec matters.
                        current.app.metadata = declared.app.metadata.clone();
                        if !same {
                            *current = declared;
                            changed.push(name);
                        }
                    }
                    None => {
                        apps.insert(name.clone(), AppSlot::new(declared));
                        changed.push(name);
                    }
                }
            }
        }
        for (name, slot) in removed {
            tracing::info!(app = %name, "application removed; its objects are left in place");
            let app = self.document(&name, &slot);
            let _ = self.events.send(AppEvent {
                type_: "DELETED",
                application: app,
            });
        }
        for name in changed {
            self.enqueue(&name);
        }
    }

    fn apps_on(&self, url: &str) -> Vec<String> {
        let apps = self.apps.read().expect("app map lock is never poisoned");
        apps.iter()
            .filter(|(_, slot)| {
                let d = slot
                    .declared
                    .read()
                    .expect("declared lock is never poisoned");
                d.app
                    .spec
                    .source
                    .as_ref()
                    .and_then(|s| normalize_url(&s.repo_url).ok())
                    .as_deref()
                    == Some(url)
            })
            .map(|(n, _)| n.clone())
            .collect()
    }

    /// Fetches a repository, giving up after `--fetch-timeout` (or when
    /// Plumb stops): the fetch is told to stop, and nothing waits for it.
    async fn fetch_now(self: &Arc<Self>, url: &str) -> Result<(), String> {
        let repos = Arc::clone(&self.repos);
        let url_owned = url.to_string();
        let interrupt = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&interrupt);
        let task =
            tokio::task::spawn_blocking(move || repos.fetch_interruptible(&url_owned, &flag));
        let timeout = self.options.fetch_timeout;
        let result = tokio::select! {
            joined = tokio::time::timeout(timeout, task) => joined,
            () = self.cancel.cancelled() => {
                interrupt.store(true, Ordering::SeqCst);
                return Err(format!("fetching {url} was cancelled: Plumb is stopping"));
            }
        };
        match result {
            Ok(joined) => joined
                .map_err(|e| format!("fetch task failed: {e}"))?
                .map_err(|e| e.to_string()),
            Err(_) => {
                interrupt.store(true, Ordering::SeqCst);
                Err(format!(
                    "fetching {url} did not finish within {timeout:?} (--fetch-timeout); it is tried again later"
                ))
            }
        }
    }

    /// Fetches a repository the first time any application needs it; later
    /// fetches happen on the poll interval, once per repository.
    async fn ensure_fetched(self: &Arc<Self>, url: &str) -> Result<(), String> {
        let cell = {
            let mut fetched = self
                .fetched
                .lock()
                .expect("fetch map lock is never poisoned");
            Arc::clone(fetched.entry(url.to_string()).or_default())
        };
        let result = cell
            .get_or_try_init(|| async { self.fetch_now(url).await })
            .await
            .map(|_| ());
        if result.is_ok() {
            self.ensure_poller(url);
        }
        result
    }

    fn ensure_poller(self: &Arc<Self>, url: &str) {
        if !self
            .pollers
            .lock()
            .expect("poller set lock is never poisoned")
            .insert(url.to_string())
        {
            return;
        }
        let weak = Arc::downgrade(self);
        let url = url.to_string();
        let interval = self.options.repo_poll_interval;
        tokio::spawn(async move {
            loop {
                // Jitter spreads the fetches of many repositories.
                let jitter = rand::rng().random_range(0.9..1.1);
                tokio::time::sleep(interval.mul_f64(jitter)).await;
                let Some(inner) = weak.upgrade() else { return };
                if inner.cancel.is_cancelled() {
                    return;
                }
                let apps = inner.apps_on(&url);
                if apps.is_empty() {
                    inner
                        .pollers
                        .lock()
                        .expect("poller set lock is never poisoned")
                        .remove(&url);
                    return;
                }
                if let Err(e) = inner.fetch_now(&url).await {
                    tracing::warn!(url = %url, error = %e, "poll fetch failed");
                }
                inner.refresh_after_fetch(&url, apps).await;
            }
        });
    }

    /// The Application document the API shows: spec as declared, status
    /// as computed, full history from the store.
    fn document(&self, name: &str, slot: &AppSlot) -> Application {
        let declared = slot.declared();
        let mut app = declared.app;
        let mut status = slot.status();
        status.history = self.store.history(name).unwrap_or_default();
        if status.operation_state.is_none() {
            // Not compared yet since Plumb started: the last operation is
            // in the store.
            status.operation_state = self.store.operation(name).ok().flatten();
        }
        app.metadata.managed_fields = None;
        app.status = Some(status);
        app
    }

    fn publish(self: &Arc<Self>, name: &str, slot: &AppSlot, status: ApplicationStatus) {
        let changed = {
            let mut current = slot.status.write().expect("status lock is never poisoned");
            let mut a = current.clone();
            let mut b = status.clone();
            a.reconciled_at = None;
            b.reconciled_at = None;
            *current = status;
            a != b
        };
        if changed {
            let _ = self.events.send(AppEvent {
                type_: "MODIFIED",
                application: self.document(name, slot),
            });
        }
    }

    async fn write_cr_status(&self, name: &str, slot: &AppSlot, work: &mut AppWork) {
        if slot.declared().origin != Origin::Cluster {
            return;
        }
        let mut status = slot.status();
        status.reconciled_at = None;
        let history = self.store.history(name).unwrap_or_default();
        status.history = history
            .iter()
            .rev()
            .take(CR_HISTORY)
            .rev()
            .cloned()
            .collect();
        status.resources.truncate(CR_RESOURCES);
        let value = serde_json::to_value(&status).expect("status always serializes");
        if work.written.as_ref() == Some(&value) {
            return;
        }
        let api: Api<DynamicObject> = Api::namespaced_with(
            self.cluster.client().clone(),
            &self.options.namespace,
            &registry::application_resource(),
        );
        let mut patch_value = value.clone();
        // kube-apiserver (1.20 at least) reads an empty string in a merge
        // patch of a custom resource as null and then refuses it as "must be
        // of type string"; an absent field means the same to readers.
        drop_empty_strings(&mut patch_value);
        patch_value["reconciledAt"] = json!(now());
        match api
            .patch_status(
                name,
                &PatchParams::default(),
                &Patch::Merge(json!({ "status": patch_value })),
            )
            .await
        {
            Ok(_) => work.written = Some(value),
            Err(e) => {
                tracing::warn!(app = %name, error = %e, "cannot write status to the Application object")
            }
        }
    }

    /// Compares an application and syncs it when asked or when its policy
    /// says so; publishes the result.
    async fn reconcile(self: &Arc<Self>, name: &str, trigger: Trigger) -> Result<(), ServiceError> {
        let slot = self
            .slot(name)
            .ok_or_else(|| ServiceError::NotFound(name.to_string()))?;
        let mut work = slot.work.lock().await;
        if !work.loaded {
            work.loaded = true;
            work.last_synced = self
                .store
                .history(name)
                .ok()
                .and_then(|h| h.last().map(|e| e.revision.clone()));
        }
        let result = self.reconcile_locked(name, &slot, &mut work, trigger).await;
        self.write_cr_status(name, &slot, &mut work).await;
        result
    }

    async fn reconcile_locked(
        self: &Arc<Self>,
        name: &str,
        slot: &AppSlot,
        work: &mut AppWork,
        trigger: Trigger,
    ) -> Result<(), ServiceError> {
        let declared = slot.declared();
        let spec = &declared.app.spec;
        let mut status = slot.status();
        status
            .conditions
            .retain(|c| c.type_ != "UnsupportedFieldWarning");
        let mut warnings: Vec<Condition> = declared
            .unsupported
            .iter()
            .map(|f| {
                condition(
                    "UnsupportedFieldWarning",
                    format!("field {f} is not supported yet; it is ignored"),
                )
            })
            .collect();
        status.rollback = self
            .store
            .pin(name)
            .map_err(|e| ServiceError::Internal(e.to_string()))?;
        status.operation_state = self.store.operation(name).ok().flatten();

        let fail = |status: &mut ApplicationStatus,
                    warnings: &mut Vec<Condition>,
                    type_: &str,
                    message: String| {
            status.sync.status = SyncStatusCode::Unknown;
            status.health = Health::new(HealthStatusCode::Unknown, "");
            let mut conditions = vec![condition(type_, message)];
            conditions.append(warnings);
            status.conditions = conditions;
            status.reconciled_at = Some(now());
        };

        // Spec checks.
        let Some(source) = spec.source.clone().filter(|s| !s.repo_url.is_empty()) else {
            fail(
                &mut status,
                &mut warnings,
                "InvalidSpecError",
                "spec.source.repoURL is required".into(),
            );
            self.publish(name, slot, status);
            return Err(ServiceError::BadRequest(format!(
                "application {name} has no spec.source.repoURL"
            )));
        };
        let dest = &spec.destination;
        let in_cluster = dest
            .server
            .as_deref()
            .is_none_or(|s| s == IN_CLUSTER_SERVER || s.is_empty())
            && dest
                .name
                .as_deref()
                .is_none_or(|n| n == IN_CLUSTER_NAME || n.is_empty());
        if !in_cluster {
            let message = format!(
                "destination {} is not supported yet: only {IN_CLUSTER_SERVER} (name {IN_CLUSTER_NAME}) is",
                dest.server
                    .as_deref()
                    .or(dest.name.as_deref())
                    .unwrap_or_default()
            );
            fail(&mut status, &mut warnings, "InvalidSpecError", message);
            self.publish(name, slot, status);
            return Ok(());
        }
        let url = match normalize_url(&source.repo_url) {
            Ok(u) => u,
            Err(e) => {
                fail(&mut status, &mut warnings, "ComparisonError", e.to_string());
                self.publish(name, slot, status);
                return Ok(());
            }
        };

        // Revision.
        let op = trigger.op.clone();
        let target = op
            .as_ref()
            .and_then(|o| o.revision.clone())
            .or_else(|| status.rollback.as_ref().map(|p| p.revision.clone()))
            .or_else(|| source.target_revision.clone())
            .unwrap_or_else(|| "HEAD".into());
        let fetched = if trigger.hard {
            self.fetch_now(&url).await
        } else {
            self.ensure_fetched(&url).await
        };
        if let Err(e) = fetched {
            fail(&mut status, &mut warnings, "ComparisonError", e);
            self.publish(name, slot, status);
            self.enqueue_after(name, Duration::from_secs(15));
            return Err(ServiceError::Internal(format!(
                "cannot fetch {}",
                source.repo_url
            )));
        }
        let repos = Arc::clone(&self.repos);
        let (u, t) = (url.clone(), target.clone());
        let sha = match tokio::task::spawn_blocking(move || repos.resolve(&u, &t)).await {
            Ok(Ok(sha)) => sha,
            Ok(Err(e)) => {
                fail(&mut status, &mut warnings, "ComparisonError", e.to_string());
                self.publish(name, slot, status);
                return Err(ServiceError::BadRequest(e.to_string()));
            }
            Err(e) => return Err(ServiceError::Internal(format!("resolve task failed: {e}"))),
        };

        let spec_hash = hash_json(spec);
        let live_generation = self.live.generation(name);
        let key = (sha.clone(), spec_hash, live_generation);
        if op.is_none() && !trigger.force && work.last_key.as_ref() == Some(&key) {
            return Ok(());
        }
        // The comparison cache is keyed by the desired object and the live
        // resourceVersion, so a normal refresh may reuse it (and costs no
        // dry-run requests); a hard refresh asks the API server again.
        if trigger.hard {
            work.compared.clear();
        }

        // Render.
        let manifests = match &work.render {
            Some((s, h, m)) if *s == sha && *h == spec_hash && !trigger.hard => Arc::clone(m),
            _ => {
                let repos = Arc::clone(&self.repos);
                let (u, s, path) = (
                    url.clone(),
                    sha.clone(),
                    source.path.clone().unwrap_or_default(),
                );
                let directory = source.directory.clone().unwrap_or_default();
                let max_file_size = self.options.max_manifest_size;
                let rendered = tokio::task::spawn_blocking(move || {
                    let wanted = render::FileFilter::new(&directory).map_err(|e| e.to_string())?;
                    let select = |file: &str| wanted.selects(file);
                    let filter = ReadFilter {
                        recurse: directory.recurse,
                        select: &select,
                        max_file_size,
                    };
                    let files = repos
                        .read_files(&u, &s, &path, &filter)
                        .map_err(|e| e.to_string())?;
                    render::render_directory(&files, &directory).map_err(|e| e.to_string())
                })
                .await
                .map_err(|e| ServiceError::Internal(format!("render task failed: {e}")))?;
                match rendered {
                    Ok(m) => {
                        let m = Arc::new(m);
                        work.render = Some((sha.clone(), spec_hash, Arc::clone(&m)));
                        m
                    }
                    Err(e) => {
                        work.last_key = None;
                        let path = source.path.as_deref().unwrap_or(".");
                        fail(
                            &mut status,
                            &mut warnings,
                            "ComparisonError",
                            format!("path {path}: {e}"),
                        );
                        status.sync.revision = sha;
                        self.publish(name, slot, status);
                        if op.is_some() {
                            return Err(ServiceError::BadRequest(format!(
                                "render failed; nothing was synced: {e}"
                            )));
                        }
                        return Ok(());
                    }
                }
            }
        };

        // Resolve kinds, default namespaces, track.
        let prepared = match self
            .prepare(name, &manifests, dest.namespace.as_deref().unwrap_or(""))
            .await
        {
            Ok(p) => p,
            Err(e) => {
                work.last_key = None;
                fail(&mut status, &mut warnings, "ComparisonError", e.clone());
                status.sync.revision = sha;
                self.publish(name, slot, status);
                if op.is_some() {
                    return Err(ServiceError::BadRequest(format!("nothing was synced: {e}")));
                }
                self.enqueue_after(name, Duration::from_secs(30));
                return Ok(());
            }
        };
        // Without every kind's live objects the comparison would take
        // missing for absent and the prune set would be wrong: a kind that
        // cannot be listed stops this application (and only this one).
        let mut unwatched = Vec::new();
        for kind in self.kinds_to_watch(name, &prepared).await {
            if let Err(e) = self.live.watch(&kind, self.options.watch_timeout).await {
                unwatched.push(e.to_string());
            }
        }
        if !unwatched.is_empty() {
            work.last_key = None;
            let message = format!(
                "{}; nothing is synced or pruned until Plumb can list it",
                unwatched.join("; ")
            );
            fail(
                &mut status,
                &mut warnings,
                "ComparisonError",
                message.clone(),
            );
            status.sync.revision = sha;
            self.publish(name, slot, status);
            self.enqueue_after(name, Duration::from_secs(30));
            if op.is_some() {
                return Err(ServiceError::BadRequest(format!(
                    "nothing was synced: {message}"
                )));
            }
            return Ok(());
        }

        // Compare, then sync when asked or when policy says so, then compare
        // again so the status shows the outcome.
        let mut synced_now = false;
        loop {
            let live_generation = self.live.generation(name);
            let tracked = self.live.tracked(name);
            let (modified, errors) = self.compare(work, &prepared, &tracked).await;
            let extras: Vec<Tracked> = tracked
                .iter()
                .filter(|(k, _)| !prepared.iter().any(|p| &p.key == *k))
                .map(|(k, v)| Tracked {
                    key: k.clone(),
                    api_version: v
                        .get("apiVersion")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_string(),
                    sync_options: annotation(v, SYNC_OPTIONS_ANNOTATION).map(str::to_string),
                    uid: v
                        .pointer("/metadata/uid")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_string(),
                })
                .collect();

            let mut resources: Vec<ResourceStatus> = Vec::new();
            let mut healths = Vec::new();
            for (p, m) in prepared.iter().zip(&modified) {
                let live = tracked.get(&p.key);
                let h = match live {
                    None => Health::new(HealthStatusCode::Missing, ""),
                    Some(l) => health::health_of(l)
                        .unwrap_or_else(|| Health::new(HealthStatusCode::Healthy, "")),
                };
                healths.push(h.status);
                resources.push(resource_status(
                    &p.key,
                    p.object.get("apiVersion"),
                    *m,
                    Some(h),
                    false,
                ));
            }
            for t in &extras {
                let live = tracked.get(&t.key);
                let h = live.and_then(|l| health::health_of(l));
                resources.push(resource_status(
                    &t.key,
                    Some(&json!(t.api_version)),
                    true,
                    h,
                    true,
                ));
            }
            resources.sort_by(|a, b| {
                (&a.group, &a.kind, &a.namespace, &a.name).cmp(&(
                    &b.group,
                    &b.kind,
                    &b.namespace,
                    &b.name,
                ))
            });
            let out_of_sync = modified.iter().any(|m| *m) || !extras.is_empty();
            status.sync = SyncStatus {
                status: if out_of_sync {
                    SyncStatusCode::OutOfSync
                } else {
                    SyncStatusCode::Synced
                },
                revision: sha.clone(),
            };
            let worst = health::aggregate(healths);
            status.health = Health::new(worst, "");
            status.resources = resources;
            let mut conditions: Vec<Condition> = errors
                .into_iter()
                .map(|e| condition("ComparisonError", e))
                .collect();
            conditions.append(&mut warnings.clone());
            status.conditions = conditions;
            status.reconciled_at = Some(now());

            if synced_now {
                if prepared.iter().any(|p| p.kind.is_none()) {
                    // Kinds a CRD of this sync introduced can only be watched
                    // and compared now that the CRD is served.
                    work.last_key = None;
                    self.enqueue(name);
                } else {
                    work.last_key = Some((sha.clone(), spec_hash, live_generation));
                }
                break;
            }

            // Decide.
            let automated = spec.automated().cloned();
            let auto = match (&op, &automated) {
                (Some(_), _) => None,
                (None, Some(a)) if status.rollback.is_none() => {
                    let prunable = extras.iter().any(|_| a.prune);
                    let needs = modified.iter().any(|m| *m) || prunable;
                    let new_revision = work.last_synced.as_deref() != Some(sha.as_str());
                    if !needs {
                        if new_revision {
                            // Nothing to change at a new revision: the
                            // revision is deployed as it is.
                            work.last_synced = Some(sha.clone());
                        }
                        None
                    } else if new_revision {
                        Some((a.clone(), false))
                    } else if a.self_heal {
                        Some((a.clone(), true))
                    } else {
                        None
                    }
                }
                _ => None,
            };
            if let Some((_, true)) = &auto {
                // Self-heal with backoff when drift keeps coming back.
                let recent = work
                    .last_heal
                    .is_some_and(|t| t.elapsed() < Duration::from_secs(30));
                work.heal_attempts = if recent { work.heal_attempts + 1 } else { 0 };
                let delay = Duration::from_secs(1 << work.heal_attempts.min(6))
                    .saturating_sub(Duration::from_secs(1));
                if let Some(last) = work.last_heal.filter(|_| !delay.is_zero())
                    && last.elapsed() < delay
                {
                    self.enqueue_after(name, delay - last.elapsed());
                    work.last_key = None;
                    break;
                }
                work.last_heal = Some(Instant::now());
            }
            if auto.is_some() {
                // An automated sync that failed at this revision waits for
                // its backoff (a retry is queued when it failed).
                if let Some((rev, _, retry_at)) = &work.failed_auto
                    && *rev == sha
                    && Instant::now() < *retry_at
                {
                    work.last_key = None;
                    break;
                }
            }
            if let Some((_, heal)) = &auto {
                let differing: Vec<String> = prepared
                    .iter()
                    .zip(&modified)
                    .filter(|(_, m)| **m)
                    .map(|(p, _)| p.key.to_string())
                    .collect();
                tracing::debug!(app = %name, self_heal = heal, ?differing, prune = extras.len(), "automated sync");
            }
            let run = match (&op, &auto) {
                (Some(o), _) => Some(o.clone()),
                (None, Some((a, _))) => Some(ManualOp {
                    prune: a.prune,
                    initiated_by: InitiatedBy {
                        username: String::new(),
                        automated: true,
                    },
                    ..ManualOp::default()
                }),
                _ => None,
            };
            let Some(mut run) = run else {
                work.last_key = Some((sha.clone(), spec_hash, live_generation));
                break;
            };
            if run.initiated_by.automated && !self.begin_automated(slot, &mut run) {
                // A user's operation is waiting for this reconcile; it runs
                // next and compares again.
                work.last_key = None;
                break;
            }
            let plan_options = PlanOptions {
                prune: run.prune,
                prune_last: spec.sync_option("PruneLast"),
                apply_out_of_sync_only: spec.sync_option("ApplyOutOfSyncOnly"),
                allow_empty: automated.as_ref().is_some_and(|a| a.allow_empty),
                create_namespace: spec
                    .sync_option("CreateNamespace")
                    .then(|| dest.namespace.clone())
                    .flatten()
                    .filter(|n| !n.is_empty()),
            };
            let desired: Vec<Desired> = prepared
                .iter()
                .zip(&modified)
                .map(|(p, m)| Desired {
                    key: p.key.clone(),
                    object: p.object.clone(),
                    modified: *m,
                })
                .collect();
            let succeeded = self
                .run_sync(
                    name,
                    slot,
                    work,
                    &mut status,
                    &desired,
                    &extras,
                    &plan_options,
                    &run,
                    &sha,
                    &source,
                )
                .await;
            if run.initiated_by.automated {
                work.failed_auto = if succeeded {
                    None
                } else {
                    let n = work
                        .failed_auto
                        .as_ref()
                        .filter(|(r, _, _)| *r == sha)
                        .map_or(0, |(_, n, _)| *n)
                        + 1;
                    let wait = Duration::from_secs(5 * (1 << n.min(6)));
                    self.enqueue_after(name, wait);
                    Some((sha.clone(), n, Instant::now() + wait))
                };
            }
            synced_now = true;
            if run.dry_run {
                break;
            }
        }
        self.publish(name, slot, status);
        Ok(())
    }

    /// Resolves kinds and scopes, defaults namespaces and adds the tracking
    /// annotation. A kind the cluster does not serve is an error unless a CRD
    /// of the same render defines it.
    async fn prepare(
        &self,
        app: &str,
        manifests: &[Manifest],
        namespace: &str,
    ) -> Result<Vec<Prepared>, String> {
        let crd_kinds: HashSet<(String, String)> = manifests
            .iter()
            .filter(|m| m.kind() == "CustomResourceDefinition")
            .filter_map(|m| {
                let group = m.object.pointer("/spec/group")?.as_str()?;
                let kind = m.object.pointer("/spec/names/kind")?.as_str()?;
                Some((group.to_string(), kind.to_string()))
            })
            .collect();
        let mut out = Vec::with_capacity(manifests.len());
        let mut seen = HashSet::new();
        for m in manifests {
            let kind = self
                .cluster
                .resolve(m.api_version(), m.kind())
                .await
                .map_err(|e| e.to_string())?;
            let mut object = m.object.clone();
            let namespaced = match &kind {
                Some(k) => k.namespaced,
                None if crd_kinds
                    .contains(&(group_of(m.api_version()).to_string(), m.kind().to_string())) =>
                {
                    m.namespace().is_some() || !namespace.is_empty()
                }
                None => {
                    return Err(format!(
                        "{}: the cluster does not know {} {} (and no CustomResourceDefinition in this application defines it)",
                        m.origin,
                        m.api_version(),
                        m.kind()
                    ));
                }
            };
            let meta = object
                .get_mut("metadata")
                .and_then(Value::as_object_mut)
                .ok_or_else(|| format!("{}: metadata is not a mapping", m.origin))?;
            if namespaced {
                if meta
                    .get("namespace")
                    .and_then(Value::as_str)
                    .is_none_or(str::is_empty)
                {
                    let ns = if namespace.is_empty() {
                        "default"
                    } else {
                        namespace
                    };
                    meta.insert("namespace".into(), json!(ns));
                }
            } else {
                meta.remove("namespace");
            }
            let key =
                ResourceKey::of(&object).ok_or_else(|| format!("{}: no kind or name", m.origin))?;
            if !seen.insert(key.clone()) {
                return Err(format!("{}: {key} is declared twice", m.origin));
            }
            let annotations = object
                .pointer_mut("/metadata")
                .and_then(Value::as_object_mut)
                .map(|meta| meta.entry("annotations").or_insert_with(|| json!({})))
                .and_then(Value::as_object_mut)
                .ok_or_else(|| format!("{}: metadata.annotations is not a mapping", m.origin))?;
            annotations.insert(TRACKING_ANNOTATION.into(), json!(key.tracking_id(app)));
            out.push(Prepared { key, object, kind });
        }
        Ok(out)
    }

    /// The kinds to watch for an application: its desired kinds, plus the
    /// kinds of its last sync as recorded in the store, so that objects of a
    /// kind that left the desired state are still seen (and pruned), also
    /// after a restart.
    async fn kinds_to_watch(&self, app: &str, prepared: &[Prepared]) -> Vec<Kind> {
        let mut seen = BTreeSet::new();
        let mut out: Vec<Kind> = prepared
            .iter()
            .filter_map(|p| p.kind.clone())
            .filter(|k| seen.insert((k.resource.api_version.clone(), k.resource.kind.clone())))
            .collect();
        let previous = self
            .store
            .operation(app)
            .ok()
            .flatten()
            .and_then(|op| op.sync_result)
            .map(|r| r.resources);
        for r in previous.unwrap_or_default() {
            let api_version = if r.group.is_empty() {
                r.version.clone()
            } else {
                format!("{}/{}", r.group, r.version)
            };
            if r.version.is_empty() || !seen.insert((api_version.clone(), r.kind.clone())) {
                continue;
            }
            if let Ok(Some(kind)) = self.cluster.resolve(&api_version, &r.kind).await {
                out.push(kind);
            }
        }
        out
    }

    /// Compares every desired object with its live counterpart; returns
    /// per-object "modified" and the errors met.
    async fn compare(
        &self,
        work: &mut AppWork,
        prepared: &[Prepared],
        tracked: &BTreeMap<ResourceKey, Arc<Value>>,
    ) -> (Vec<bool>, Vec<String>) {
        let jobs = prepared.iter().map(|p| {
            let live = tracked.get(&p.key).cloned();
            let desired_hash = hash_json(&p.object);
            let rv = live
                .as_ref()
                .and_then(|l| l.pointer("/metadata/resourceVersion"))
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string();
            let cached = work
                .compared
                .get(&p.key)
                .filter(|(h, r, _)| *h == desired_hash && *r == rv)
                .map(|(_, _, m)| *m);
            async move {
                // Only a dry run's verdict is remembered: "modified because
                // the kind is not served yet" must not outlive the CRD's
                // arrival, or the object would stay OutOfSync for good.
                let outcome = match (cached, &live, &p.kind) {
                    (Some(m), _, _) => Ok((m, true)),
                    (None, None, _) | (None, _, None) => Ok((true, false)),
                    (None, Some(l), Some(kind)) => {
                        match self.cluster.apply(kind, &p.object, true).await {
                            Ok(predicted) => {
                                Ok((diff::compare(Some(l), &predicted).modified, true))
                            }
                            Err(e) => Err(e.to_string()),
                        }
                    }
                };
                (p.key.clone(), desired_hash, rv, outcome)
            }
        });
        // Collected first: a lazy `map` kept across the await makes the
        // future not `Send` (higher-ranked closure lifetimes).
        let jobs: Vec<_> = jobs.collect();
        let results: Vec<_> = futures::stream::iter(jobs)
            .buffered(COMPARE_CONCURRENCY)
            .collect()
            .await;
        let mut modified = Vec::with_capacity(results.len());
        let mut errors = Vec::new();
        work.compared
            .retain(|k, _| prepared.iter().any(|p| &p.key == k));
        for (key, h, rv, outcome) in results {
            match outcome {
                Ok((m, cacheable)) => {
                    if cacheable && !rv.is_empty() {
                        work.compared.insert(key, (h, rv, m));
                    }
                    modified.push(m);
                }
                Err(e) => {
                    work.compared.remove(&key);
                    errors.push(format!("{key}: {e}"));
                    modified.push(true);
                }
            }
        }
        (modified, errors)
    }

    /// Registers an automated sync as the application's operation, unless
    /// another operation (a user's, waiting for this reconcile) holds it.
    fn begin_automated(&self, slot: &AppSlot, run: &mut ManualOp) -> bool {
        let mut running = slot.running();
        if running.is_some() {
            return false;
        }
        run.id = self.operation_ids.fetch_add(1, Ordering::Relaxed) + 1;
        run.started_at = now_precise();
        *running = Some(RunningOp {
            id: run.id,
            started_at: run.started_at.clone(),
            initiated_by: run.initiated_by.clone(),
            cancel: run.cancel.clone(),
        });
        true
    }

    /// Records how an operation ended, then frees the application for the
    /// next one. In that order: a new operation's `Running` record must not
    /// be overwritten by the end of the old one.
    fn end_operation(&self, name: &str, slot: &AppSlot, id: u64, op: &OperationState) {
        let dry_run = op
            .operation
            .as_ref()
            .and_then(|o| o.sync.as_ref())
            .is_some_and(|s| s.dry_run);
        if !dry_run && let Err(e) = self.store.set_operation(name, op) {
            tracing::error!(app = %name, error = %e, "cannot record the sync operation");
        }
        let mut running = slot.running();
        if running.as_ref().is_some_and(|r| r.id == id) {
            *running = None;
        }
    }

    #[allow(clippy::too_many_arguments)] // one call site; the pieces are all distinct state
    async fn run_sync(
        self: &Arc<Self>,
        name: &str,
        slot: &AppSlot,
        work: &mut AppWork,
        status: &mut ApplicationStatus,
        desired: &[Desired],
        extras: &[Tracked],
        options: &PlanOptions,
        run: &ManualOp,
        sha: &str,
        source: &crate::model::ApplicationSource,
    ) -> bool {
        let started = run.started_at.clone();
        let mut op = OperationState {
            phase: OperationPhase::Running,
            message: "syncing".into(),
            started_at: started.clone(),
            finished_at: None,
            sync_result: None,
            operation: Some(Operation {
                sync: Some(SyncOperation {
                    revision: sha.to_string(),
                    prune: run.prune,
                    dry_run: run.dry_run,
                }),
                initiated_by: run.initiated_by.clone(),
            }),
        };
        if !run.dry_run
            && let Err(e) = self.store.set_operation(name, &op)
        {
            tracing::error!(app = %name, error = %e, "cannot record the sync operation");
        }
        status.operation_state = Some(op.clone());
        self.publish(name, slot, status.clone());

        // Progress, resource by resource, for the API and the event stream;
        // a sync shorter than PROGRESS_EVERY publishes none.
        let progress_state = Mutex::new((Vec::<ResourceResult>::new(), Instant::now()));
        let progress = |r: &ResourceResult| {
            let resources = {
                let mut p = progress_state
                    .lock()
                    .expect("progress lock is never poisoned");
                p.0.push(r.clone());
                if p.1.elapsed() < PROGRESS_EVERY {
                    return;
                }
                p.1 = Instant::now();
                p.0.clone()
            };
            let mut state = op.clone();
            state.message = format!("syncing: {} of the planned steps done", resources.len());
            state.sync_result = Some(SyncResult {
                revision: sha.to_string(),
                resources,
            });
            slot.status
                .write()
                .expect("status lock is never poisoned")
                .operation_state = Some(state);
            let _ = self.events.send(AppEvent {
                type_: "MODIFIED",
                application: self.document(name, slot),
            });
        };

        let (phase, message, resources) = match plan::plan(desired, extras, options) {
            Err(e) => (OperationPhase::Failed, e.to_string(), Vec::new()),
            Ok(plan) if run.dry_run => {
                let steps = plan.steps().count();
                (
                    OperationPhase::Succeeded,
                    format!("dry run: {steps} steps planned, nothing changed"),
                    Vec::new(),
                )
            }
            Ok(plan) => {
                let execution = sync::Execution {
                    cancel: &run.cancel,
                    progress: &progress,
                    crd_timeout: self.options.crd_timeout,
                };
                let outcome = sync::execute(&self.cluster, &self.live, &plan, &execution).await;
                // An apply response is what a dry run would now predict: the
                // comparison after the sync needs no request for these.
                let by_key: BTreeMap<&ResourceKey, &Value> =
                    desired.iter().map(|d| (&d.key, &d.object)).collect();
                for (key, version) in outcome.applied {
                    if let Some(object) = by_key.get(&key) {
                        let hash = hash_json(object);
                        work.compared.insert(key, (hash, version, false));
                    }
                }
                match outcome.failure {
                    Some(_) if outcome.terminated => (
                        OperationPhase::Failed,
                        "Operation terminated".into(),
                        outcome.resources,
                    ),
                    Some(f) => (
                        OperationPhase::Failed,
                        format!("one or more objects failed to apply: {f}"),
                        outcome.resources,
                    ),
                    None => (
                        OperationPhase::Succeeded,
                        "successfully synced (all tasks run)".into(),
                        outcome.resources,
                    ),
                }
            }
        };
        op.phase = phase;
        op.message = message;
        op.finished_at = Some(now());
        op.sync_result = Some(SyncResult {
            revision: sha.to_string(),
            resources,
        });
        let succeeded = phase == OperationPhase::Succeeded;
        if !run.dry_run && succeeded {
            work.last_synced = Some(sha.to_string());
            let entry = RevisionHistory {
                id: 0,
                revision: sha.to_string(),
                deployed_at: now(),
                deploy_started_at: Some(started),
                initiated_by: run.initiated_by.clone(),
                source: Some(source.clone()),
            };
            let limit = slot.declared().app.spec.history_limit();
            if let Err(e) = self.store.append_history(name, entry, limit) {
                tracing::error!(app = %name, error = %e, "cannot record history");
            }
        }
        self.end_operation(name, slot, run.id, &op);
        tracing::info!(app = %name, revision = %sha, phase = ?op.phase, message = %op.message, "sync finished");
        status.operation_state = Some(op);
        succeeded
    }

    /// Starts a user's sync or rollback as an operation the controller owns
    /// and returns at once, with the operation `Running`. Refused when the
    /// application runs one already: the check and the start happen under
    /// one lock, so of two concurrent requests exactly one starts.
    fn start_operation(
        self: &Arc<Self>,
        name: &str,
        mut op: ManualOp,
        rollback: Option<RollbackPin>,
    ) -> Result<Application, ServiceError> {
        let slot = self
            .slot(name)
            .ok_or_else(|| ServiceError::NotFound(name.to_string()))?;
        op.id = self.operation_ids.fetch_add(1, Ordering::Relaxed) + 1;
        op.started_at = now_precise();
        let state = OperationState {
            phase: OperationPhase::Running,
            message: "waiting to start".into(),
            started_at: op.started_at.clone(),
            finished_at: None,
            sync_result: None,
            operation: Some(Operation {
                sync: Some(SyncOperation {
                    revision: op.revision.clone().unwrap_or_default(),
                    prune: op.prune,
                    dry_run: op.dry_run,
                }),
                initiated_by: op.initiated_by.clone(),
            }),
        };
        {
            let mut running = slot.running();
            if let Some(r) = running.as_ref() {
                let by = if r.initiated_by.automated {
                    "automated sync".to_string()
                } else {
                    r.initiated_by.username.clone()
                };
                return Err(ServiceError::Conflict(format!(
                    "another operation is already in progress for {name}: a sync started at {} by {by}",
                    r.started_at
                )));
            }
            // Written before any work starts, so a crash from here on is
            // recorded as an operation that did not finish.
            if !op.dry_run {
                let internal = |e: crate::store::StoreError| ServiceError::Internal(e.to_string());
                self.store.set_operation(name, &state).map_err(internal)?;
                match &rollback {
                    Some(pin) => self.store.set_pin(name, pin),
                    None => self.store.clear_pin(name),
                }
                .map_err(internal)?;
            }
            *running = Some(RunningOp {
                id: op.id,
                started_at: op.started_at.clone(),
                initiated_by: op.initiated_by.clone(),
                cancel: op.cancel.clone(),
            });
        }
        let mut status = slot.status();
        status.operation_state = Some(state);
        if let Some(pin) = rollback {
            status.rollback = Some(pin);
        }
        self.publish(name, &slot, status);
        let document = self.document(name, &slot);
        let inner = Arc::clone(self);
        let name = name.to_string();
        tokio::spawn(async move { inner.run_operation(name, op).await });
        Ok(document)
    }

    /// Runs a started operation to its end. One that ended before it
    /// reached the sync (the render failed, the revision is unknown, it was
    /// terminated while waiting) is recorded here as Failed.
    async fn run_operation(self: Arc<Self>, name: String, op: ManualOp) {
        let outcome = self
            .reconcile(
                &name,
                Trigger {
                    op: Some(op.clone()),
                    force: true,
                    hard: false,
                },
            )
            .await;
        let Some(slot) = self.slot(&name) else { return };
        if slot.running().as_ref().is_none_or(|r| r.id != op.id) {
            return;
        }
        let message = if op.cancel.is_cancelled() {
            "Operation terminated".to_string()
        } else {
            match outcome {
                Err(e) => e.to_string(),
                Ok(()) => slot
                    .status()
                    .conditions
                    .first()
                    .map_or_else(|| "nothing was synced".into(), |c| c.message.clone()),
            }
        };
        let mut state = slot
            .status()
            .operation_state
            .filter(|s| s.started_at == op.started_at)
            .unwrap_or_default();
        state.started_at.clone_from(&op.started_at);
        state.phase = OperationPhase::Failed;
        state.message = message;
        state.finished_at = Some(now());
        if state.operation.is_none() {
            state.operation = Some(Operation {
                sync: Some(SyncOperation {
                    revision: op.revision.clone().unwrap_or_default(),
                    prune: op.prune,
                    dry_run: op.dry_run,
                }),
                initiated_by: op.initiated_by.clone(),
            });
        }
        tracing::info!(app = %name, message = %state.message, "operation ended before it synced");
        self.end_operation(&name, &slot, op.id, &state);
        let mut status = slot.status();
        status.operation_state = Some(state);
        self.publish(&name, &slot, status);
        // The Application object's status follows on the next reconcile.
        self.enqueue(&name);
    }

    /// Terminates the running operation of an application (Argo CD's
    /// terminate-op): no further step starts, and the operation ends Failed.
    fn terminate_operation(&self, name: &str) -> Result<Application, ServiceError> {
        let slot = self
            .slot(name)
            .ok_or_else(|| ServiceError::NotFound(name.to_string()))?;
        match slot.running().as_ref() {
            Some(r) => r.cancel.cancel(),
            None => {
                return Err(ServiceError::BadRequest(format!(
                    "no operation is in progress for {name}"
                )));
            }
        }
        tracing::info!(app = %name, "operation terminated on request");
        Ok(self.document(name, &slot))
    }

    async fn managed(&self, name: &str) -> Result<Vec<ManagedResource>, ServiceError> {
        let slot = self
            .slot(name)
            .ok_or_else(|| ServiceError::NotFound(name.to_string()))?;
        let (manifests, namespace) = {
            let work = slot.work.lock().await;
            let declared = slot.declared();
            let ns = declared
                .app
                .spec
                .destination
                .namespace
                .clone()
                .unwrap_or_default();
            (work.render.as_ref().map(|(_, _, m)| Arc::clone(m)), ns)
        };
        let manifests = manifests.unwrap_or_default();
        let prepared = self
            .prepare(name, &manifests, &namespace)
            .await
            .map_err(ServiceError::Internal)?;
        let tracked = self.live.tracked(name);
        let jobs = prepared.iter().map(|p| {
            let live = tracked.get(&p.key).cloned();
            async move {
                let comparison: Comparison = match (&live, &p.kind) {
                    (Some(l), Some(kind)) => {
                        match self.cluster.apply(kind, &p.object, true).await {
                            Ok(predicted) => diff::compare(Some(l), &predicted),
                            Err(e) => {
                                let mut c = diff::compare(Some(l), &p.object);
                                c.diff = format!("# dry run failed: {e}\n{}", c.diff);
                                c
                            }
                        }
                    }
                    _ => diff::compare(None, &p.object),
                };
                ManagedResource {
                    group: p.key.group.clone(),
                    kind: p.key.kind.clone(),
                    namespace: p.key.namespace.clone(),
                    name: p.key.name.clone(),
                    target_state: diff::masked(&p.object).to_string(),
                    live_state: live
                        .as_ref()
                        .map(|l| diff::masked(l).to_string())
                        .unwrap_or_default(),
                    normalized_live_state: json_or_empty(&comparison.normalized_live),
                    predicted_live_state: json_or_empty(&comparison.predicted),
                    diff: comparison.diff,
                    modified: comparison.modified,
                }
            }
        });
        let jobs: Vec<_> = jobs.collect();
        let mut items: Vec<ManagedResource> = futures::stream::iter(jobs)
            .buffered(COMPARE_CONCURRENCY)
            .collect()
            .await;
        for (key, live) in &tracked {
            if prepared.iter().any(|p| &p.key == key) {
                continue;
            }
            let comparison = diff::compare(Some(live), &Value::Null);
            items.push(ManagedResource {
                group: key.group.clone(),
                kind: key.kind.clone(),
                namespace: key.namespace.clone(),
                name: key.name.clone(),
                target_state: String::new(),
                live_state: diff::masked(live).to_string(),
                normalized_live_state: json_or_empty(&comparison.normalized_live),
                predicted_live_state: String::new(),
                diff: diff::unified_diff(&comparison.normalized_live, &Value::Null),
                modified: true,
            });
        }
        Ok(items)
    }

    async fn tree(&self, name: &str) -> Result<ResourceTree, ServiceError> {
        self.slot(name)
            .ok_or_else(|| ServiceError::NotFound(name.to_string()))?;
        let tracked = self.live.tracked(name);
        let mut nodes: Vec<ResourceNode> = tracked.values().map(|v| node(v, Vec::new())).collect();
        // Children: what the application's workloads own, found through
        // ownerReferences in the namespaces the application uses.
        let namespaces: BTreeSet<String> = tracked
            .keys()
            .filter(|k| {
                matches!(
                    k.kind.as_str(),
                    "Deployment" | "StatefulSet" | "DaemonSet" | "Job" | "CronJob" | "ReplicaSet"
                )
            })
            .map(|k| k.namespace.clone())
            .collect();
        let mut owners: HashMap<String, ParentRef> = tracked
            .values()
            .filter_map(|v| parent_ref(v).map(|p| (p.uid.clone(), p)))
            .collect();
        for (api_version, kind) in [
            ("batch/v1", "Job"),
            ("apps/v1", "ReplicaSet"),
            ("v1", "Pod"),
        ] {
            let Ok(Some(k)) = self.cluster.resolve(api_version, kind).await else {
                continue;
            };
            for ns in &namespaces {
                let Ok(objects) = self.cluster.list(&k, ns).await else {
                    continue;
                };
                for mut o in objects {
                    o["apiVersion"] = json!(api_version);
                    o["kind"] = json!(kind);
                    let parents: Vec<ParentRef> = o
                        .pointer("/metadata/ownerReferences")
                        .and_then(Value::as_array)
                        .into_iter()
                        .flatten()
                        .filter_map(|r| owners.get(r.get("uid")?.as_str()?).cloned())
                        .collect();
                    if parents.is_empty() {
                        continue;
                    }
                    if let Some(p) = parent_ref(&o) {
                        owners.insert(p.uid.clone(), p);
                    }
                    nodes.push(node(&o, parents));
                }
            }
        }
        Ok(ResourceTree { nodes })
    }
}

fn drop_empty_strings(value: &mut Value) {
    match value {
        Value::Object(map) => {
            map.retain(|_, v| v.as_str() != Some(""));
            map.values_mut().for_each(drop_empty_strings);
        }
        Value::Array(items) => items.iter_mut().for_each(drop_empty_strings),
        _ => {}
    }
}

fn json_or_empty(value: &Value) -> String {
    if value.is_null() {
        String::new()
    } else {
        value.to_string()
    }
}

fn resource_status(
    key: &ResourceKey,
    api_version: Option<&Value>,
    modified: bool,
    health: Option<Health>,
    prune: bool,
) -> ResourceStatus {
    let api_version = api_version.and_then(Value::as_str).unwrap_or_default();
    ResourceStatus {
        group: key.group.clone(),
        version: api_version
            .rsplit('/')
            .next()
            .unwrap_or_default()
            .to_string(),
        kind: key.kind.clone(),
        namespace: key.namespace.clone(),
        name: key.name.clone(),
        status: if modified {
            SyncStatusCode::OutOfSync
        } else {
            SyncStatusCode::Synced
        },
        health,
        requires_pruning: prune,
    }
}

fn parent_ref(object: &Value) -> Option<ParentRef> {
    let key = ResourceKey::of(object)?;
    Some(ParentRef {
        group: key.group,
        kind: key.kind,
        namespace: key.namespace,
        name: key.name,
        uid: object.pointer("/metadata/uid")?.as_str()?.to_string(),
    })
}

fn node(object: &Value, parent_refs: Vec<ParentRef>) -> ResourceNode {
    let key = ResourceKey::of(object).unwrap_or_else(|| ResourceKey {
        group: String::new(),
        kind: String::new(),
        namespace: String::new(),
        name: String::new(),
    });
    let text = |p: &str| {
        object
            .pointer(p)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    let api_version = text("/apiVersion");
    ResourceNode {
        group: key.group,
        version: api_version
            .rsplit('/')
            .next()
            .unwrap_or_default()
            .to_string(),
        kind: key.kind,
        namespace: key.namespace,
        name: key.name,
        uid: text("/metadata/uid"),
        parent_refs,
        health: health::health_of(object),
        resource_version: text("/metadata/resourceVersion"),
        created_at: object
            .pointer("/metadata/creationTimestamp")
            .and_then(Value::as_str)
            .map(str::to_string),
    }
}

impl AppService for Controller {
    async fn list(&self) -> Vec<Application> {
        let apps: Vec<(String, Arc<AppSlot>)> = self
            .inner
            .apps
            .read()
            .expect("app map lock is never poisoned")
            .iter()
            .map(|(n, s)| (n.clone(), Arc::clone(s)))
            .collect();
        apps.iter()
            .map(|(n, s)| self.inner.document(n, s))
            .collect()
    }

    async fn get(&self, name: &str, refresh: Option<Refresh>) -> Result<Application, ServiceError> {
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
        let op = ManualOp {
            revision: request.revision.filter(|r| !r.is_empty()),
            prune: request.prune,
            dry_run: request.dry_run,
            initiated_by: InitiatedBy {
                username: "api".into(),
                automated: false,
            },
            ..ManualOp::default()
        };
        self.inner.start_operation(name, op, None)
    }

    async fn rollback(&self, name: &str, id: i64) -> Result<Application, ServiceError> {
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
            revision: entry.revision.clone(),
            history_id: id,
            at: now(),
        };
        let prune = self
            .inner
            .slot(name)
            .is_some_and(|s| s.declared().app.spec.automated().is_some_and(|a| a.prune));
        let op = ManualOp {
            revision: Some(entry.revision.clone()),
            prune,
            dry_run: false,
            initiated_by: InitiatedBy {
                username: "rollback".into(),
                automated: false,
            },
            ..ManualOp::default()
        };
        self.inner.start_operation(name, op, Some(pin))
    }

    async fn terminate_operation(&self, name: &str) -> Result<Application, ServiceError> {
        self.inner.terminate_operation(name)
    }

    async fn managed_resources(&self, name: &str) -> Result<Vec<ManagedResource>, ServiceError> {
        self.inner.managed(name).await
    }

    async fn resource_tree(&self, name: &str) -> Result<ResourceTree, ServiceError> {
        self.inner.tree(name).await
    }

    async fn refresh_repository(&self, url: &str) -> usize {
        self.repo_changed(url).await
    }

    fn subscribe(&self) -> broadcast::Receiver<AppEvent> {
        self.inner.events.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::path_contains;

    #[test]
    fn a_changed_file_belongs_to_the_folder_it_is_in() {
        assert!(path_contains("apps/a", "apps/a/cm.yaml"));
        assert!(path_contains("./apps/a/", "apps/a/sub/cm.yaml"));
        assert!(path_contains("apps/a", "apps/a"));
        assert!(!path_contains("apps/a", "apps/ab/cm.yaml"));
        assert!(!path_contains("apps/a", "apps/b/cm.yaml"));
        for root in ["", ".", "/", "./"] {
            assert!(path_contains(root, "anything/at/all.yaml"), "{root:?}");
        }
    }
}
