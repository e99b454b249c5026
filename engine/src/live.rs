//! The live state: one watch per kind that any application uses, of the
//! objects that carry Plumb's label (the API server sends no others), keeping
//! those with a valid tracking annotation, indexed by application. A change to an application's objects is sent to the
//! controller at once, which is how drift is seen without polling.
//!
//! Two modes. Cluster-wide (the default): one watch of each kind across
//! all namespaces. Namespaced (`--managed-namespaces`, Argo CD's
//! namespace-scoped install): one watch per managed namespace of each
//! namespaced kind, none of cluster-scoped kinds, so that a Role in each
//! managed namespace is all the RBAC Plumb needs to deploy; the watches of
//! one kind feed one index as a single cluster-wide watch would.
//!
//! Not a general cache: untracked objects are dropped as they stream by.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use kube::api::{Api, DynamicObject};
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use serde_json::Value;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::cascade::HELM_RESOURCE_POLICY;
use crate::cluster::Kind;
use crate::diff;
use crate::model::{
    COMPARE_OPTIONS_ANNOTATION, Health, MANAGED_LABEL, MANAGED_LABEL_VALUE, ResourceKey,
    SYNC_OPTIONS_ANNOTATION, annotation, owner,
};
use crate::settings::Settings;

/// What Plumb keeps of a tracked object: what every reconcile reads of it,
/// read once when it arrives, and a fingerprint of its normalized form
/// ([`crate::diff::fingerprint`]) to compare a prediction with. Not its
/// text: a JSON tree of a small object costs ten times its text, and the
/// text is needed only to show a diff, which reads the object from the API
/// server ([`crate::cluster::Cluster::get`]).
#[derive(Debug, Clone)]
pub struct Live {
    api_version: Box<str>,
    resource_version: Box<str>,
    uid: Box<str>,
    created_at: Option<Box<str>>,
    sync_options: Option<Box<str>>,
    resource_policy: Option<Box<str>>,
    deleting: bool,
    health: Option<Health>,
    /// Whether a custom health rule failed on it (its health is then
    /// Unknown with why).
    health_failed: bool,
    /// The generation of the settings its health was assessed under.
    settings: u64,
    /// An Application object's `status.sync.status` (empty without one).
    app_sync: Option<Box<str>>,
    /// A sync hook: never compared, listed or pruned.
    hook: bool,
    /// `argocd.argoproj.io/compare-options: IgnoreExtraneous`: not in Git,
    /// yet it does not make the application OutOfSync.
    ignore_extraneous: bool,
    /// Its `argocd.argoproj.io/sync-wave` (0 without one or when it is not
    /// an integer): the order of its prune.
    wave: i64,
    fingerprint: u64,
}

impl Live {
    /// What Plumb keeps of `object`, its health assessed under `settings`.
    pub fn new(object: &Value, settings: &Settings) -> Live {
        let health = settings.health_of(object);
        let text = |pointer: &str| -> Box<str> {
            object
                .pointer(pointer)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .into()
        };
        Live {
            api_version: text("/apiVersion"),
            resource_version: text("/metadata/resourceVersion"),
            uid: text("/metadata/uid"),
            created_at: object
                .pointer("/metadata/creationTimestamp")
                .and_then(Value::as_str)
                .map(Into::into),
            sync_options: annotation(object, SYNC_OPTIONS_ANNOTATION).map(Into::into),
            resource_policy: annotation(object, HELM_RESOURCE_POLICY).map(Into::into),
            deleting: object
                .pointer("/metadata/deletionTimestamp")
                .is_some_and(|t| !t.is_null()),
            health: health.health,
            health_failed: health.failed,
            settings: settings.generation(),
            app_sync: (text("/kind").as_ref() == "Application"
                && text("/apiVersion").starts_with("argoproj.io/"))
            .then(|| text("/status/sync/status")),
            hook: crate::hooks::is_hook(object),
            ignore_extraneous: annotation(object, COMPARE_OPTIONS_ANNOTATION).is_some_and(|o| {
                o.split(',')
                    .any(|x| x.trim().eq_ignore_ascii_case("IgnoreExtraneous"))
            }),
            wave: plumb_core::waves::wave_of(object).unwrap_or(0),
            fingerprint: diff::fingerprint(object),
        }
    }

    /// Its sync wave, the order of its prune (0 when it has none or it is
    /// not an integer).
    pub fn wave(&self) -> i64 {
        self.wave
    }

    /// The fingerprint of its normalized form.
    pub fn fingerprint(&self) -> u64 {
        self.fingerprint
    }

    /// Its `apiVersion`.
    pub fn api_version(&self) -> &str {
        &self.api_version
    }

    /// Its `metadata.resourceVersion`.
    pub fn resource_version(&self) -> &str {
        &self.resource_version
    }

    /// Its `metadata.uid`.
    pub fn uid(&self) -> &str {
        &self.uid
    }

    /// Its `metadata.creationTimestamp`.
    pub fn created_at(&self) -> Option<&str> {
        self.created_at.as_deref()
    }

    /// Its `argocd.argoproj.io/sync-options` annotation.
    pub fn sync_options(&self) -> Option<&str> {
        self.sync_options.as_deref()
    }

    /// Its `helm.sh/resource-policy` annotation.
    pub fn resource_policy(&self) -> Option<&str> {
        self.resource_policy.as_deref()
    }

    /// Whether it has a `deletionTimestamp` (it is going).
    pub fn deleting(&self) -> bool {
        self.deleting
    }

    /// Its health, where Plumb knows how to assess its kind.
    pub fn health(&self) -> Option<&Health> {
        self.health.as_ref()
    }

    /// Whether it says `argocd.argoproj.io/compare-options:
    /// IgnoreExtraneous`.
    pub fn ignore_extraneous(&self) -> bool {
        self.ignore_extraneous
    }

    /// Whether it is a sync hook (`argocd.argoproj.io/hook` or
    /// `helm.sh/hook`).
    pub fn is_hook(&self) -> bool {
        self.hook
    }

    /// Whether a custom health rule failed on it.
    pub fn health_failed(&self) -> bool {
        self.health_failed
    }

    /// For an Application object (app of apps), its `status.sync.status`:
    /// empty while it has none.
    pub fn app_sync(&self) -> Option<&str> {
        self.app_sync.as_deref()
    }
}

/// A shared [`Live`] object.
pub type LiveObject = Arc<Live>;

/// Identifies a watched kind: `apiVersion` and `kind`.
type KindId = (String, String);

/// One application's tracked objects, and the index's change counter at
/// their last change.
#[derive(Default)]
struct AppObjects {
    objects: HashMap<ResourceKey, LiveObject>,
    generation: u64,
}

#[derive(Default)]
struct Index {
    /// Per watched kind: tracked objects and the application tracking each.
    by_kind: HashMap<KindId, HashMap<ResourceKey, (String, LiveObject)>>,
    /// Per application with tracked objects: those objects. An application
    /// without any has no entry (and generation 0), so applications that
    /// come and go leave nothing behind.
    by_app: HashMap<String, AppObjects>,
    /// Changes so far, over all applications: a generation never repeats.
    changes: u64,
}

impl Index {
    fn bump(&mut self, app: &str) {
        self.changes += 1;
        let generation = self.changes;
        match self.by_app.get_mut(app) {
            Some(entry) => entry.generation = generation,
            None => {
                self.by_app.insert(
                    app.to_string(),
                    AppObjects {
                        generation,
                        ..AppObjects::default()
                    },
                );
            }
        }
    }

    fn remove(&mut self, kind: &KindId, key: &ResourceKey) -> Option<String> {
        let (app, _) = self.by_kind.get_mut(kind)?.remove(key)?;
        let emptied = self.by_app.get_mut(&app).is_some_and(|entry| {
            entry.objects.remove(key);
            entry.objects.is_empty()
        });
        if emptied {
            // Generation 0 again: "no objects", a state of its own.
            self.by_app.remove(&app);
        } else {
            self.bump(&app);
        }
        Some(app)
    }

    /// Whether the index holds exactly this version of the object for `app`,
    /// assessed under the settings of `generation`.
    fn holds(
        &self,
        kind: &KindId,
        key: &ResourceKey,
        app: &str,
        resource_version: &str,
        generation: u64,
    ) -> bool {
        self.held(kind, key, app, resource_version)
            .is_some_and(|o| o.settings == generation)
    }

    /// The object held for `app` at this version, whatever the settings.
    fn held(
        &self,
        kind: &KindId,
        key: &ResourceKey,
        app: &str,
        resource_version: &str,
    ) -> Option<&LiveObject> {
        self.by_kind
            .get(kind)
            .and_then(|m| m.get(key))
            .filter(|(a, o)| a == app && o.resource_version() == resource_version)
            .map(|(_, o)| o)
    }

    /// Replaces the object held at the same version (its health assessed
    /// again) without counting it as a change.
    fn refresh(&mut self, kind: &KindId, key: &ResourceKey, app: &str, object: LiveObject) {
        if let Some(entry) = self.by_kind.get_mut(kind).and_then(|m| m.get_mut(key)) {
            entry.1 = Arc::clone(&object);
        }
        if let Some(entry) = self.by_app.get_mut(app) {
            entry.objects.insert(key.clone(), object);
        }
    }

    fn upsert(
        &mut self,
        kind: &KindId,
        key: ResourceKey,
        app: String,
        object: LiveObject,
    ) -> Vec<String> {
        let mut touched = Vec::new();
        if self
            .by_kind
            .get(kind)
            .and_then(|m| m.get(&key))
            .is_some_and(|previous| previous.0 != app)
        {
            touched.extend(self.remove(kind, &key));
        }
        self.by_kind
            .entry(kind.clone())
            .or_default()
            .insert(key.clone(), (app.clone(), object.clone()));
        self.by_app
            .entry(app.clone())
            .or_default()
            .objects
            .insert(key, object);
        self.bump(&app);
        touched.push(app);
        touched
    }
}

/// The object as JSON with its type set, and without what is large and never
/// compared (`managedFields`). Items of a list response carry no
/// `apiVersion`/`kind`, so they come from the watched kind.
fn slim(object: DynamicObject, kind: &Kind) -> Value {
    let mut value = serde_json::to_value(object).expect("a DynamicObject always serializes");
    if let Value::Object(map) = &mut value {
        map.entry("apiVersion")
            .or_insert_with(|| Value::String(kind.resource.api_version.clone()));
        map.entry("kind")
            .or_insert_with(|| Value::String(kind.resource.kind.clone()));
        if let Some(Value::Object(meta)) = map.get_mut("metadata") {
            meta.remove("managedFields");
        }
    }
    value
}

/// Whether a watch's error says the API server could not be reached (as
/// opposed to an answer refusing the request).
fn unreachable(error: &watcher::Error) -> bool {
    match error {
        watcher::Error::InitialListFailed(e)
        | watcher::Error::WatchStartFailed(e)
        | watcher::Error::WatchFailed(e) => !matches!(e, kube::Error::Api(_)),
        watcher::Error::WatchError(_) | watcher::Error::NoResourceVersion => false,
    }
}

/// The error of [`LiveState::watch`].
#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    /// The kind's first list did not complete in time: Plumb may not list
    /// it, or the API server does not answer. The watch keeps trying, and
    /// the kind becomes usable as soon as a list succeeds.
    #[error("cannot list {kind} ({api_version}) within {waited:?}: {last_error}")]
    FirstList {
        /// The kind.
        kind: String,
        /// Its apiVersion.
        api_version: String,
        /// How long Plumb waits for a first list (`--watch-timeout`).
        waited: Duration,
        /// What the API server said last, or that it said nothing.
        last_error: String,
    },
}

/// One kind's watch: whether its first list is indexed, since when it was
/// started, and its last error.
struct WatchEntry {
    ready: watch::Receiver<bool>,
    /// Asks the watch to list its kind again (the settings changed its
    /// health rule).
    relist: Arc<tokio::sync::Notify>,
    started: Instant,
    last_error: Arc<Mutex<Option<String>>>,
}

/// Applications whose tracked objects changed, waiting to be compared again:
/// each name at most once, however many of its objects changed meanwhile.
#[derive(Debug, Default)]
pub struct ChangedApps {
    pending: Mutex<std::collections::BTreeSet<String>>,
    wake: tokio::sync::Notify,
}

impl ChangedApps {
    /// Notes a change of `app`'s objects.
    pub fn push(&self, app: String) {
        self.pending
            .lock()
            .expect("changed-apps lock is never poisoned")
            .insert(app);
        self.wake.notify_one();
    }

    /// Waits for changes and takes every application noted so far.
    pub async fn next(&self) -> Vec<String> {
        loop {
            let apps = std::mem::take(
                &mut *self
                    .pending
                    .lock()
                    .expect("changed-apps lock is never poisoned"),
            );
            if !apps.is_empty() {
                return apps.into_iter().collect();
            }
            self.wake.notified().await;
        }
    }
}

/// The watch-backed live state of every tracked object.
pub struct LiveState {
    client: kube::Client,
    settings: std::sync::RwLock<Arc<Settings>>,
    index: Mutex<Index>,
    watches: Mutex<HashMap<KindId, WatchEntry>>,
    changes: Arc<ChangedApps>,
    cancel: CancellationToken,
    /// Told when a watch cannot reach the API server (not when the server
    /// refuses): the destination's prober asks whether it answers.
    unreachable: Option<Arc<tokio::sync::Notify>>,
    /// The namespaces watched, sorted and without duplicates; `None`:
    /// every namespace, and cluster-scoped kinds too.
    namespaces: Option<Arc<[String]>>,
}

impl std::fmt::Debug for LiveState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LiveState").finish_non_exhaustive()
    }
}

impl LiveState {
    /// A live state whose changes are noted, by application, in `changes`.
    /// Watches stop when `cancel` fires.
    pub fn new(
        client: kube::Client,
        changes: Arc<ChangedApps>,
        cancel: CancellationToken,
    ) -> Arc<LiveState> {
        LiveState::with_alarm(client, changes, cancel, None)
    }

    /// [`LiveState::new`] that tells `unreachable` when a watch cannot
    /// reach the API server (a connection refused, a timeout; not an
    /// answer such as 403).
    pub fn with_alarm(
        client: kube::Client,
        changes: Arc<ChangedApps>,
        cancel: CancellationToken,
        unreachable: Option<Arc<tokio::sync::Notify>>,
    ) -> Arc<LiveState> {
        LiveState::scoped(client, changes, cancel, unreachable, None)
    }

    /// [`LiveState::with_alarm`] that watches only `namespaces` (one watch
    /// per namespace and kind, no cluster-scoped kind) when it is `Some`
    /// and not empty; every namespace otherwise.
    pub fn scoped(
        client: kube::Client,
        changes: Arc<ChangedApps>,
        cancel: CancellationToken,
        unreachable: Option<Arc<tokio::sync::Notify>>,
        namespaces: Option<Vec<String>>,
    ) -> Arc<LiveState> {
        let namespaces = namespaces
            .map(|names| {
                names
                    .into_iter()
                    .map(|n| n.trim().to_string())
                    .filter(|n| !n.is_empty())
                    .collect::<std::collections::BTreeSet<String>>()
            })
            .filter(|names| !names.is_empty())
            .map(|names| names.into_iter().collect::<Vec<_>>().into());
        Arc::new(LiveState {
            client,
            settings: std::sync::RwLock::new(Arc::new(Settings::default())),
            index: Mutex::default(),
            watches: Mutex::default(),
            changes,
            cancel,
            unreachable,
            namespaces,
        })
    }

    /// The namespaces it is limited to (sorted), or `None` for the whole
    /// cluster.
    pub fn namespaces(&self) -> Option<&[String]> {
        self.namespaces.as_deref()
    }

    /// The settings objects are assessed under.
    pub fn settings(&self) -> Arc<Settings> {
        Arc::clone(
            &self
                .settings
                .read()
                .expect("settings lock is never poisoned"),
        )
    }

    /// Takes new settings: every watched kind whose health rule they change
    /// is listed again, so its objects' health is assessed again (the index
    /// keeps no object's text). An object whose health comes out the same
    /// is not a change: its application is not compared again.
    pub fn set_settings(&self, settings: Arc<Settings>) {
        let old = std::mem::replace(
            &mut *self
                .settings
                .write()
                .expect("settings lock is never poisoned"),
            Arc::clone(&settings),
        );
        let watches = self
            .watches
            .lock()
            .expect("watch map lock is never poisoned");
        for ((api_version, kind), entry) in watches.iter() {
            let group = crate::model::group_of(api_version);
            if old.health_rule(group, kind) != settings.health_rule(group, kind) {
                tracing::info!(%kind, %api_version, "health rule changed; listing the kind again");
                entry.relist.notify_one();
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Index> {
        self.index
            .lock()
            .expect("live index lock is never poisoned")
    }

    /// Starts watching a kind unless it is watched, and waits until its
    /// first list has been indexed, at most until `timeout` after the watch
    /// started: a kind that failed to list before fails again at once rather
    /// than holding every reconcile that uses it.
    ///
    /// # Errors
    /// [`WatchError::FirstList`] when the first list has not completed by
    /// then.
    pub async fn watch(self: &Arc<Self>, kind: &Kind, timeout: Duration) -> Result<(), WatchError> {
        if self.namespaces.is_some() && !kind.namespaced {
            // Namespaced mode holds nothing of a cluster-scoped kind (and
            // may not list it): the reconcile refuses such objects.
            return Ok(());
        }
        let id = (
            kind.resource.api_version.clone(),
            kind.resource.kind.clone(),
        );
        let (mut ready, started, last_error) = {
            let mut watches = self
                .watches
                .lock()
                .expect("watch map lock is never poisoned");
            let entry = watches.entry(id.clone()).or_insert_with(|| {
                let (tx, rx) = watch::channel(false);
                let last_error = Arc::new(Mutex::new(None));
                let relist = Arc::new(tokio::sync::Notify::new());
                let this = Arc::clone(self);
                let (kind, errors, again) =
                    (kind.clone(), Arc::clone(&last_error), Arc::clone(&relist));
                tokio::spawn(async move { this.run_watch(id, kind, tx, errors, again).await });
                WatchEntry {
                    ready: rx,
                    relist,
                    started: Instant::now(),
                    last_error,
                }
            });
            (
                entry.ready.clone(),
                entry.started,
                Arc::clone(&entry.last_error),
            )
        };
        let remaining = timeout.saturating_sub(started.elapsed());
        // The sender lives as long as the watch task; if it ended (cancel),
        // there is nothing to wait for.
        match tokio::time::timeout(remaining, ready.wait_for(|r| *r)).await {
            Ok(_) => Ok(()),
            Err(_) => Err(WatchError::FirstList {
                kind: kind.resource.kind.clone(),
                api_version: kind.resource.api_version.clone(),
                waited: timeout,
                last_error: last_error
                    .lock()
                    .expect("watch error lock is never poisoned")
                    .clone()
                    .unwrap_or_else(|| "the API server has not answered".into()),
            }),
        }
    }

    async fn run_watch(
        self: Arc<Self>,
        id: KindId,
        kind: Kind,
        ready: watch::Sender<bool>,
        last_error: Arc<Mutex<Option<String>>>,
        relist: Arc<tokio::sync::Notify>,
    ) {
        // One watch of the whole cluster, or one per managed namespace;
        // their events are told apart by the index of their scope.
        let scopes: Vec<Option<String>> = match &self.namespaces {
            None => vec![None],
            Some(names) => names.iter().cloned().map(Some).collect(),
        };
        let selector = format!("{MANAGED_LABEL}={MANAGED_LABEL_VALUE}");
        let start = || {
            futures::stream::select_all(scopes.iter().enumerate().map(|(i, scope)| {
                let api: Api<DynamicObject> = match scope {
                    None => Api::all_with(self.client.clone(), &kind.resource),
                    Some(ns) => Api::namespaced_with(self.client.clone(), ns, &kind.resource),
                };
                watcher::watcher(api, watcher::Config::default().labels(&selector))
                    .default_backoff()
                    .map(move |event| (i, event))
                    .boxed()
            }))
        };
        let mut stream = start();
        // Per scope, keys seen since its current (re)list began: what was
        // not seen by its end is gone. Objects stream into the index one by
        // one, so a relist never holds a second copy of a kind.
        let mut listing: Vec<Option<HashSet<ResourceKey>>> = vec![None; scopes.len()];
        // Per scope, whether its first list is indexed: the kind is ready
        // once every scope's is.
        let mut listed = vec![false; scopes.len()];
        loop {
            let event = tokio::select! {
                () = self.cancel.cancelled() => return,
                () = relist.notified() => {
                    // A new watch starts with a list of its own.
                    stream = start();
                    listing.iter_mut().for_each(|l| *l = None);
                    continue;
                }
                event = stream.next() => event,
            };
            let Some((scope, event)) = event else { return };
            match event {
                Ok(Event::Init) => listing[scope] = Some(HashSet::new()),
                Ok(Event::InitApply(object)) => {
                    let value = slim(object, &kind);
                    if let (Some(seen), Some((_, key))) = (listing[scope].as_mut(), owner(&value)) {
                        seen.insert(key);
                    }
                    self.apply(&id, value);
                }
                Ok(Event::InitDone) => {
                    let seen = listing[scope].take().unwrap_or_default();
                    self.forget_unseen(&id, &seen, scopes[scope].as_deref());
                    listed[scope] = true;
                    if listed.iter().all(|l| *l) {
                        *last_error
                            .lock()
                            .expect("watch error lock is never poisoned") = None;
                        let _ = ready.send(true);
                    }
                }
                Ok(Event::Apply(object)) => self.apply(&id, slim(object, &kind)),
                Ok(Event::Delete(object)) => {
                    let value = slim(object, &kind);
                    if let Some(key) = ResourceKey::of(&value) {
                        let app = self.lock().remove(&id, &key);
                        self.notify(app);
                    }
                }
                Err(e) => {
                    let namespace = scopes[scope].as_deref().unwrap_or_default();
                    tracing::warn!(kind = %kind.resource.kind, namespace, error = %e, "watch failed; retrying");
                    if let Some(alarm) = &self.unreachable
                        && unreachable(&e)
                    {
                        alarm.notify_one();
                    }
                    let message = match &scopes[scope] {
                        None => e.to_string(),
                        Some(ns) => format!("in namespace {ns}: {e}"),
                    };
                    *last_error
                        .lock()
                        .expect("watch error lock is never poisoned") = Some(message);
                }
            }
        }
    }

    fn apply(&self, id: &KindId, value: Value) {
        let Some(key) = ResourceKey::of(&value) else {
            return;
        };
        let touched = match owner(&value) {
            Some((app, key)) => {
                let version = value
                    .pointer("/metadata/resourceVersion")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                let settings = self.settings();
                if self
                    .lock()
                    .holds(id, &key, &app, version, settings.generation())
                {
                    // The same version (Plumb's own apply, seen first in its
                    // response, or a relist): nothing changed.
                    return;
                }
                // Assessed outside the index's lock: a custom health script
                // may take a while.
                let live = Arc::new(Live::new(&value, &settings));
                let mut index = self.lock();
                if index.held(id, &key, &app, version).is_some_and(|held| {
                    held.health() == live.health() && held.health_failed() == live.health_failed()
                }) {
                    // Assessed again under new settings, with the same
                    // outcome: not a change of the application.
                    index.refresh(id, &key, &app, live);
                    return;
                }
                index.upsert(id, key, app, live)
            }
            None => self.lock().remove(id, &key).into_iter().collect(),
        };
        for app in touched {
            self.notify(Some(app));
        }
    }

    /// After a (re)list of a kind in `namespace` (all of them: `None`):
    /// forgets the objects there that it did not see.
    fn forget_unseen(&self, id: &KindId, seen: &HashSet<ResourceKey>, namespace: Option<&str>) {
        let mut touched = Vec::new();
        {
            let mut index = self.lock();
            let gone: Vec<ResourceKey> = index
                .by_kind
                .get(id)
                .map(|m| {
                    m.keys()
                        .filter(|k| namespace.is_none_or(|ns| k.namespace == ns))
                        .filter(|k| !seen.contains(*k))
                        .cloned()
                        .collect()
                })
                .unwrap_or_default();
            for key in gone {
                touched.extend(index.remove(id, &key));
            }
        }
        for app in touched {
            self.notify(Some(app));
        }
    }

    fn notify(&self, app: Option<String>) {
        if let Some(app) = app {
            self.changes.push(app);
        }
    }

    /// The objects tracked by an application.
    pub fn tracked(&self, app: &str) -> BTreeMap<ResourceKey, LiveObject> {
        self.lock()
            .by_app
            .get(app)
            .map(|entry| {
                entry
                    .objects
                    .iter()
                    .map(|(k, v)| (k.clone(), Arc::clone(v)))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The application the index holds an object for, whatever its
    /// version (`SharedResourceWarning`); `None` when no watched kind holds
    /// it.
    pub fn holder(&self, key: &ResourceKey) -> Option<String> {
        self.lock()
            .by_kind
            .iter()
            .filter(|((api_version, kind), _)| {
                kind == &key.kind && crate::model::group_of(api_version) == key.group
            })
            .find_map(|(_, objects)| objects.get(key).map(|(app, _)| app.clone()))
    }

    /// A value that changes whenever an object of the application changes
    /// (never repeating), and 0 while it has none.
    pub fn generation(&self, app: &str) -> u64 {
        self.lock()
            .by_app
            .get(app)
            .map_or(0, |entry| entry.generation)
    }

    /// Records an object the controller just applied (or began to delete,
    /// as the API server answered the delete), so the comparison that
    /// follows sees it before its watch event arrives (which is then
    /// dropped: same version).
    pub fn observe_applied(&self, api_version: &str, kind: &str, object: &Value) {
        let id = (api_version.to_string(), kind.to_string());
        if let Some((app, key)) = owner(object) {
            let settings = self.settings();
            let live = Live::new(object, &settings);
            let mut index = self.lock();
            if !index.holds(
                &id,
                &key,
                &app,
                live.resource_version(),
                settings.generation(),
            ) {
                index.upsert(&id, key, app, Arc::new(live));
            }
        }
    }

    /// Forgets an object the controller just deleted.
    pub fn observe_deleted(&self, api_version: &str, kind: &str, key: &ResourceKey) {
        let id = (api_version.to_string(), kind.to_string());
        self.lock().remove(&id, key);
    }

    /// How many tracked objects are held, for metrics.
    pub fn len(&self) -> usize {
        self.lock().by_app.values().map(|e| e.objects.len()).sum()
    }

    /// Whether no tracked object is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::TRACKING_ANNOTATION;
    use serde_json::json;

    #[test]
    fn only_objects_whose_tracking_id_names_themselves_are_owned() {
        let good = json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "c", "namespace": "n", "labels": {MANAGED_LABEL: "true"},
                "annotations": {TRACKING_ANNOTATION: "app:/ConfigMap:n/c"}}});
        assert_eq!(owner(&good).map(|(a, _)| a), Some("app".to_string()));
        let unlabelled = json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "c", "namespace": "n", "annotations": {TRACKING_ANNOTATION: "app:/ConfigMap:n/c"}}});
        assert_eq!(owner(&unlabelled), None);
        let copied = json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "other", "namespace": "n", "labels": {MANAGED_LABEL: "true"},
                "annotations": {TRACKING_ANNOTATION: "app:/ConfigMap:n/c"}}});
        assert_eq!(owner(&copied), None);
        let untracked = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}});
        assert_eq!(owner(&untracked), None);
    }

    #[test]
    fn list_items_without_a_type_get_the_watched_kind() {
        let kind = Kind {
            resource: kube::core::ApiResource::from_gvk_with_plural(
                &kube::core::GroupVersionKind::gvk("", "v1", "ConfigMap"),
                "configmaps",
            ),
            namespaced: true,
        };
        let item: DynamicObject = serde_json::from_value(json!({
            "metadata": {"name": "c", "namespace": "n", "managedFields": [{}],
                "labels": {MANAGED_LABEL: "true"},
                "annotations": {TRACKING_ANNOTATION: "app:/ConfigMap:n/c"}}
        }))
        .expect("an untyped list item decodes");
        let value = slim(item, &kind);
        assert_eq!(value["apiVersion"], "v1");
        assert!(value.pointer("/metadata/managedFields").is_none());
        assert_eq!(owner(&value).map(|(a, _)| a), Some("app".to_string()));
    }

    fn config_map_key() -> ResourceKey {
        ResourceKey {
            group: String::new(),
            kind: "ConfigMap".into(),
            namespace: "n".into(),
            name: "c".into(),
        }
    }

    #[test]
    fn index_moves_objects_between_applications_and_bumps_both() {
        let mut index = Index::default();
        let kind = ("v1".to_string(), "ConfigMap".to_string());
        let key = config_map_key();
        let object = || Arc::new(Live::new(&json!({}), &Settings::default()));
        index.upsert(&kind, key.clone(), "a".into(), object());
        let touched = index.upsert(&kind, key.clone(), "b".into(), object());
        assert_eq!(touched, ["a", "b"]);
        assert!(!index.by_app.contains_key("a"));
        assert_eq!(index.by_app["b"].objects.len(), 1);
        let b = index.by_app["b"].generation;
        assert!(b > 1, "{b}");
        assert_eq!(index.remove(&kind, &key), Some("b".to_string()));
        assert!(index.by_app.is_empty());
        // The generations of a new object are new.
        index.upsert(&kind, key.clone(), "b".into(), object());
        assert!(index.by_app["b"].generation > b);
    }

    #[test]
    fn the_same_version_is_held_once() {
        let mut index = Index::default();
        let kind = ("v1".to_string(), "ConfigMap".to_string());
        let key = config_map_key();
        let object = json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "c", "namespace": "n", "resourceVersion": "7", "uid": "u"},
            "data": {"k": "v"}});
        index.upsert(
            &kind,
            key.clone(),
            "a".into(),
            Arc::new(Live::new(&object, &Settings::default())),
        );
        assert!(index.holds(&kind, &key, "a", "7", 0));
        assert!(!index.holds(&kind, &key, "a", "8", 0));
        assert!(!index.holds(&kind, &key, "b", "7", 0));
        // Under other settings, the same version is assessed again.
        assert!(!index.holds(&kind, &key, "a", "7", 1));
        let held = &index.by_app["a"].objects[&key];
        assert_eq!(held.uid(), "u");
        assert_eq!(held.fingerprint(), diff::fingerprint(&object));
    }

    #[test]
    fn an_object_assessed_again_the_same_is_not_a_change() {
        let mut index = Index::default();
        let kind = ("example.com/v1".to_string(), "Widget".to_string());
        let key = ResourceKey {
            group: "example.com".into(),
            kind: "Widget".into(),
            namespace: "n".into(),
            name: "w".into(),
        };
        let object = json!({"apiVersion": "example.com/v1", "kind": "Widget",
            "metadata": {"name": "w", "namespace": "n", "resourceVersion": "7"}});
        let data = |script: &str| {
            [(
                "resource.customizations.health.example.com_Widget".to_string(),
                script.to_string(),
            )]
            .into_iter()
            .collect()
        };
        let first = Settings::new(
            crate::customizations::Customizations::parse(&data("return {status = 'Healthy'}")),
            1,
        );
        index.upsert(
            &kind,
            key.clone(),
            "a".into(),
            Arc::new(Live::new(&object, &first)),
        );
        let generation = index.by_app["a"].generation;
        // New settings with the same verdict: held again, not bumped.
        let same = Settings::new(
            crate::customizations::Customizations::parse(&data(
                "return {status = 'Healthy', message = nil}",
            )),
            2,
        );
        assert!(!index.holds(&kind, &key, "a", "7", 2));
        let again = Arc::new(Live::new(&object, &same));
        let held = index.held(&kind, &key, "a", "7").expect("held");
        assert_eq!(held.health(), again.health());
        index.refresh(&kind, &key, "a", again);
        assert!(index.holds(&kind, &key, "a", "7", 2));
        assert_eq!(index.by_app["a"].generation, generation);
        // Another verdict is a change.
        let other = Settings::new(
            crate::customizations::Customizations::parse(&data("return {status = 'Degraded'}")),
            3,
        );
        let changed = Live::new(&object, &other);
        assert_eq!(
            changed.health().map(|h| h.status),
            Some(crate::model::HealthStatusCode::Degraded)
        );
    }
}
