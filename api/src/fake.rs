//! An in-memory [`AppService`] for the router's and the client's tests, with
//! two fixed applications: `guestbook` (Synced, Healthy, two history entries)
//! and `shop` (OutOfSync, Degraded, a condition and a resource to prune).
//!
//! Not a model of the controller: it records calls and answers the documented
//! errors, nothing more.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Mutex, MutexGuard};

use plumb_engine::model::{
    Application, InitiatedBy, Operation, OperationPhase, OperationState, ResourceResult,
    RevisionHistory, RollbackPin, SyncOperation, SyncResult, SyncStatusCode,
};
use plumb_engine::service::{
    AppEvent, AppService, ManagedResource, Refresh, ResourceNode, ResourceTree, ServiceError,
    SyncRequest,
};
use serde_json::json;
use tokio::sync::broadcast;

/// The fixed `guestbook` application: Synced and Healthy.
pub fn guestbook() -> Application {
    serde_json::from_value(json!({
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Application",
        "metadata": {"name": "guestbook", "namespace": "plumb"},
        "spec": {
            "project": "default",
            "source": {
                "repoURL": "https://git.example.com/org/deploy.git",
                "targetRevision": "main",
                "path": "apps/guestbook"
            },
            "destination": {"server": "https://kubernetes.default.svc", "namespace": "guestbook"},
            "syncPolicy": {"automated": {"prune": true, "selfHeal": true}}
        },
        "status": {
            "sync": {"status": "Synced", "revision": "53e28ff20cc530b9ada2173fbbd64d48338583ba"},
            "health": {"status": "Healthy"},
            "operationState": {
                "phase": "Succeeded",
                "message": "successfully synced (all tasks run)",
                "startedAt": "2024-05-01T10:00:00Z",
                "finishedAt": "2024-05-01T10:00:04Z",
                "operation": {"sync": {"revision": "53e28ff20cc530b9ada2173fbbd64d48338583ba"}, "initiatedBy": {"automated": true}},
                "syncResult": {
                    "revision": "53e28ff20cc530b9ada2173fbbd64d48338583ba",
                    "resources": [
                        {"group": "", "version": "v1", "kind": "Service", "namespace": "guestbook", "name": "guestbook-ui", "status": "Synced", "message": "service/guestbook-ui unchanged", "syncPhase": "Sync"},
                        {"group": "apps", "version": "v1", "kind": "Deployment", "namespace": "guestbook", "name": "guestbook-ui", "status": "Synced", "message": "deployment.apps/guestbook-ui configured", "syncPhase": "Sync"}
                    ]
                }
            },
            "resources": [
                {"group": "", "version": "v1", "kind": "Service", "namespace": "guestbook", "name": "guestbook-ui", "status": "Synced", "health": {"status": "Healthy"}},
                {"group": "apps", "version": "v1", "kind": "Deployment", "namespace": "guestbook", "name": "guestbook-ui", "status": "Synced", "health": {"status": "Healthy"}}
            ],
            "history": [
                {"id": 1, "revision": "0a1b2c3d4e5f60718293a4b5c6d7e8f901234567", "deployedAt": "2024-04-30T09:00:00Z", "initiatedBy": {"username": "alice"}},
                {"id": 2, "revision": "53e28ff20cc530b9ada2173fbbd64d48338583ba", "deployedAt": "2024-05-01T10:00:04Z", "initiatedBy": {"automated": true}}
            ],
            "reconciledAt": "2024-05-01T10:05:00Z"
        }
    }))
    .expect("the guestbook fixture is a valid Application")
}

/// The fixed `shop` application: OutOfSync and Degraded.
pub fn shop() -> Application {
    serde_json::from_value(json!({
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Application",
        "metadata": {"name": "shop", "namespace": "plumb"},
        "spec": {
            "source": {"repoURL": "/srv/git/shop", "path": "deploy/prod"},
            "destination": {"name": "in-cluster", "namespace": "shop"}
        },
        "status": {
            "sync": {"status": "OutOfSync", "revision": "9f8e7d6c5b4a39281706f5e4d3c2b1a098765432"},
            "health": {"status": "Degraded", "message": "Deployment shop/api: 0 of 2 replicas available"},
            "conditions": [
                {"type": "UnsupportedFieldWarning", "message": "field spec.ignoreDifferences is not supported yet; it is ignored", "lastTransitionTime": "2024-05-01T09:00:00Z"}
            ],
            "resources": [
                {"group": "apps", "version": "v1", "kind": "Deployment", "namespace": "shop", "name": "api", "status": "OutOfSync", "health": {"status": "Degraded", "message": "0 of 2 replicas available"}},
                {"group": "", "version": "v1", "kind": "ConfigMap", "namespace": "shop", "name": "legacy", "status": "OutOfSync", "requiresPruning": true}
            ]
        }
    }))
    .expect("the shop fixture is a valid Application")
}

/// The fixed managed resources of `shop`: one modified Deployment, one
/// ConfigMap to prune.
fn shop_resources() -> Vec<ManagedResource> {
    vec![
        ManagedResource {
            group: "apps".into(),
            kind: "Deployment".into(),
            namespace: "shop".into(),
            name: "api".into(),
            target_state: r#"{"apiVersion":"apps/v1","kind":"Deployment","spec":{"replicas":3}}"#
                .into(),
            live_state: r#"{"apiVersion":"apps/v1","kind":"Deployment","spec":{"replicas":2}}"#
                .into(),
            normalized_live_state:
                r#"{"apiVersion":"apps/v1","kind":"Deployment","spec":{"replicas":2}}"#.into(),
            predicted_live_state:
                r#"{"apiVersion":"apps/v1","kind":"Deployment","spec":{"replicas":3}}"#.into(),
            diff:
                "--- live\n+++ desired\n@@ -3,2 +3,2 @@\n spec:\n-  replicas: 2\n+  replicas: 3\n"
                    .into(),
            modified: true,
        },
        ManagedResource {
            group: String::new(),
            kind: "Service".into(),
            namespace: "shop".into(),
            name: "api".into(),
            target_state: r#"{"apiVersion":"v1","kind":"Service"}"#.into(),
            live_state: r#"{"apiVersion":"v1","kind":"Service"}"#.into(),
            normalized_live_state: r#"{"apiVersion":"v1","kind":"Service"}"#.into(),
            predicted_live_state: r#"{"apiVersion":"v1","kind":"Service"}"#.into(),
            diff: String::new(),
            modified: false,
        },
    ]
}

/// The in-memory service.
pub struct FakeService {
    apps: Mutex<BTreeMap<String, Application>>,
    resources: BTreeMap<String, Vec<ManagedResource>>,
    busy: BTreeSet<String>,
    broken: BTreeSet<String>,
    events: broadcast::Sender<AppEvent>,
    calls: Mutex<Calls>,
    /// What `ready` says is still awaited; ready when `None`.
    awaiting: Mutex<Option<String>>,
}

/// What the service was asked.
#[derive(Default)]
struct Calls {
    refreshes: Vec<(String, Option<Refresh>)>,
    syncs: Vec<(String, SyncRequest)>,
    rollbacks: Vec<(String, i64)>,
    terminated: Vec<String>,
    prunes_confirmed: Vec<String>,
    repositories: Vec<String>,
}

/// The fake's mutexes are only poisoned by a test that already failed.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl FakeService {
    /// Capacity of the broadcast channel.
    pub const CHANNEL_CAPACITY: usize = 16;

    /// Makes `ready` answer that `what` is awaited (`None`: ready).
    pub fn set_awaiting(&self, what: Option<&str>) {
        *lock(&self.awaiting) = what.map(str::to_string);
    }

    /// `guestbook` and `shop`.
    pub fn with_fixtures() -> FakeService {
        let apps = [guestbook(), shop()]
            .into_iter()
            .map(|a| (a.metadata.name.clone().unwrap_or_default(), a))
            .collect();
        FakeService {
            apps: Mutex::new(apps),
            resources: BTreeMap::from([("shop".to_owned(), shop_resources())]),
            busy: BTreeSet::new(),
            broken: BTreeSet::new(),
            events: broadcast::channel(Self::CHANNEL_CAPACITY).0,
            calls: Mutex::new(Calls::default()),
            awaiting: Mutex::new(None),
        }
    }

    /// The fixtures plus `count` copies of `guestbook` named `copy-000`...,
    /// for lists longer than one piece of the streamed body.
    pub fn with_copies(count: usize) -> FakeService {
        let service = FakeService::with_fixtures();
        {
            let mut apps = lock(&service.apps);
            for i in 0..count {
                let mut app = guestbook();
                let name = format!("copy-{i:03}");
                app.metadata.name = Some(name.clone());
                apps.insert(name, app);
            }
        }
        service
    }

    /// Syncs of `name` answer Conflict.
    pub fn busy(mut self, name: &str) -> FakeService {
        self.busy.insert(name.to_owned());
        self
    }

    /// Managed resources of `name` answer Internal.
    pub fn broken(mut self, name: &str) -> FakeService {
        self.broken.insert(name.to_owned());
        self
    }

    /// The application `name` as stored now.
    pub fn application(&self, name: &str) -> Application {
        lock(&self.apps)
            .get(name)
            .cloned()
            .expect("a fixture application")
    }

    /// Sends an event to every subscriber (none is fine).
    pub fn publish(&self, event: AppEvent) {
        let _ = self.events.send(event);
    }

    /// Every `get` call's name and refresh.
    pub fn refreshes(&self) -> Vec<(String, Option<Refresh>)> {
        lock(&self.calls).refreshes.clone()
    }

    /// Every `sync` call.
    pub fn syncs(&self) -> Vec<(String, SyncRequest)> {
        lock(&self.calls).syncs.clone()
    }

    /// Every `confirm_prune` call that found its application.
    pub fn prunes_confirmed(&self) -> Vec<String> {
        lock(&self.calls).prunes_confirmed.clone()
    }

    /// Every `terminate_operation` call that found an operation.
    pub fn terminated(&self) -> Vec<String> {
        lock(&self.calls).terminated.clone()
    }

    /// Every `rollback` call.
    pub fn rollbacks(&self) -> Vec<(String, i64)> {
        lock(&self.calls).rollbacks.clone()
    }

    /// Applies `change` to the application `name`, publishes it as MODIFIED
    /// and returns it.
    fn update(
        &self,
        name: &str,
        change: impl FnOnce(&mut Application) -> Result<(), ServiceError>,
    ) -> Result<Application, ServiceError> {
        let mut apps = lock(&self.apps);
        let app = apps
            .get_mut(name)
            .ok_or_else(|| ServiceError::NotFound(name.to_owned()))?;
        change(app)?;
        let app = app.clone();
        drop(apps);
        self.publish(AppEvent {
            type_: "MODIFIED",
            application: app.clone(),
        });
        Ok(app)
    }
}

/// A finished sync of `revision` with one synced resource.
fn finished_sync(revision: &str, request: &SyncRequest) -> OperationState {
    OperationState {
        phase: OperationPhase::Succeeded,
        message: "successfully synced (all tasks run)".into(),
        started_at: "2024-05-02T12:00:00Z".into(),
        finished_at: Some("2024-05-02T12:00:03Z".into()),
        sync_result: Some(SyncResult {
            revision: revision.into(),
            resources: vec![ResourceResult {
                group: "apps".into(),
                version: "v1".into(),
                kind: "Deployment".into(),
                namespace: "shop".into(),
                name: "api".into(),
                status: "Synced".into(),
                message: "deployment.apps/api configured".into(),
                sync_phase: "Sync".into(),
                ..ResourceResult::default()
            }],
        }),
        operation: Some(Operation {
            sync: Some(SyncOperation {
                revision: revision.into(),
                prune: request.prune,
                dry_run: request.dry_run,
                ..SyncOperation::default()
            }),
            initiated_by: InitiatedBy {
                username: "admin".into(),
                automated: false,
            },
        }),
        retry_count: 0,
    }
}

impl AppService for FakeService {
    fn ready(&self) -> Result<(), String> {
        lock(&self.awaiting).clone().map_or(Ok(()), Err)
    }

    fn names(&self) -> Vec<String> {
        lock(&self.apps).keys().cloned().collect()
    }

    fn app_namespace(&self) -> String {
        "plumb".into()
    }

    fn document(&self, name: &str) -> Option<Application> {
        lock(&self.apps).get(name).cloned()
    }

    async fn get(&self, name: &str, refresh: Option<Refresh>) -> Result<Application, ServiceError> {
        lock(&self.calls).refreshes.push((name.to_owned(), refresh));
        lock(&self.apps)
            .get(name)
            .cloned()
            .ok_or_else(|| ServiceError::NotFound(name.to_owned()))
    }

    async fn sync(&self, name: &str, request: SyncRequest) -> Result<Application, ServiceError> {
        lock(&self.calls)
            .syncs
            .push((name.to_owned(), request.clone()));
        if self.busy.contains(name) {
            return Err(ServiceError::Conflict(format!(
                "another sync is running for {name}"
            )));
        }
        if request.revision.as_deref() == Some("nope") {
            return Err(ServiceError::BadRequest("revision nope not found".into()));
        }
        self.update(name, |app| {
            let status = app.status.get_or_insert_default();
            let revision = request
                .revision
                .clone()
                .unwrap_or_else(|| status.sync.revision.clone());
            status.operation_state = Some(finished_sync(&revision, &request));
            if !request.dry_run {
                status.sync.status = SyncStatusCode::Synced;
                status.sync.revision = revision.clone();
                let id = status.history.last().map_or(1, |h| h.id + 1);
                status.history.push(RevisionHistory {
                    id,
                    revision,
                    deployed_at: "2024-05-02T12:00:03Z".into(),
                    initiated_by: InitiatedBy {
                        username: "admin".into(),
                        automated: false,
                    },
                    ..Default::default()
                });
            }
            Ok(())
        })
    }

    async fn rollback(&self, name: &str, id: i64) -> Result<Application, ServiceError> {
        lock(&self.calls).rollbacks.push((name.to_owned(), id));
        self.update(name, |app| {
            let status = app.status.get_or_insert_default();
            let entry = status
                .history
                .iter()
                .find(|h| h.id == id)
                .cloned()
                .ok_or_else(|| {
                    ServiceError::BadRequest(format!("history id {id} not found for {name}"))
                })?;
            let request = SyncRequest {
                revision: Some(entry.revision.clone()),
                ..Default::default()
            };
            status.operation_state = Some(finished_sync(&entry.revision, &request));
            status.sync.revision = entry.revision.clone();
            status.rollback = Some(RollbackPin {
                revision: entry.revision,
                history_id: id,
                at: "2024-05-02T12:00:03Z".into(),
            });
            Ok(())
        })
    }

    async fn terminate_operation(&self, name: &str) -> Result<Application, ServiceError> {
        let app = lock(&self.apps)
            .get(name)
            .cloned()
            .ok_or_else(|| ServiceError::NotFound(name.to_owned()))?;
        if !self.busy.contains(name) {
            return Err(ServiceError::BadRequest(format!(
                "no operation is in progress for {name}"
            )));
        }
        lock(&self.calls).terminated.push(name.to_owned());
        Ok(app)
    }

    fn confirm_prune(&self, name: &str) -> Result<Application, ServiceError> {
        let app = lock(&self.apps)
            .get(name)
            .cloned()
            .ok_or_else(|| ServiceError::NotFound(name.to_owned()))?;
        lock(&self.calls).prunes_confirmed.push(name.to_owned());
        Ok(app)
    }

    async fn managed_resources(&self, name: &str) -> Result<Vec<ManagedResource>, ServiceError> {
        if !lock(&self.apps).contains_key(name) {
            return Err(ServiceError::NotFound(name.to_owned()));
        }
        if self.broken.contains(name) {
            return Err(ServiceError::Internal(format!(
                "comparison failed for {name}"
            )));
        }
        Ok(self.resources.get(name).cloned().unwrap_or_default())
    }

    async fn resource_tree(&self, name: &str) -> Result<ResourceTree, ServiceError> {
        let apps = lock(&self.apps);
        let app = apps
            .get(name)
            .ok_or_else(|| ServiceError::NotFound(name.to_owned()))?;
        let resources = app
            .status
            .as_ref()
            .map(|s| s.resources.as_slice())
            .unwrap_or_default();
        let nodes = resources
            .iter()
            .map(|r| ResourceNode {
                group: r.group.clone(),
                version: r.version.clone(),
                kind: r.kind.clone(),
                namespace: r.namespace.clone(),
                name: r.name.clone(),
                uid: format!("uid-{}", r.name),
                health: r.health.clone(),
                resource_version: "1".into(),
                ..Default::default()
            })
            .collect();
        Ok(ResourceTree { nodes })
    }

    async fn refresh_repository(&self, url: &str) -> usize {
        // The fake's applications all count as using every repository.
        lock(&self.calls).repositories.push(url.to_string());
        lock(&self.apps).len()
    }

    fn subscribe(&self) -> broadcast::Receiver<AppEvent> {
        self.events.subscribe()
    }
}
