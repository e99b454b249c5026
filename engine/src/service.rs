//! What the HTTP API (and through it the CLI and UI) may ask of a running
//! controller: the operations and the Argo CD-shaped documents they return.
//!
//! This is a contract only; the controller implements it.

use std::future::Future;

use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;

use crate::appset::ApplicationSet;
use crate::model::{Application, Health};

/// How hard a refresh is: `normal` compares again with the cached repo,
/// `hard` fetches the repository first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Refresh {
    /// Compare again.
    Normal,
    /// Fetch, render and compare again.
    Hard,
}

/// Body of `POST /api/v1/applications/{name}/sync`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SyncRequest {
    /// Revision to sync to instead of `targetRevision`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision: Option<String>,
    /// Allow pruning.
    #[serde(default)]
    pub prune: bool,
    /// Compute and report, change nothing.
    #[serde(default)]
    pub dry_run: bool,
    /// Retry a failed attempt (Argo CD's `retryStrategy`); the
    /// application's `syncPolicy.retry` when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_strategy: Option<crate::model::RetryStrategy>,
    /// `{"apply": {"force": bool}}` (no hooks) or `{"hook": {...}}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strategy: Option<crate::model::SyncStrategy>,
    /// Sync only these objects (null or empty: all of them).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<Vec<crate::model::SyncOperationResource>>,
    /// Sync options for this operation: `{"items": ["Replace=true"]}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sync_options: Option<SyncOptionItems>,
}

/// Argo CD's `SyncOptions` message: `{"items": [...]}`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
pub struct SyncOptionItems {
    /// `Name=value` options.
    #[serde(default)]
    pub items: Vec<String>,
}

/// One item of `GET .../managed-resources`, Argo CD's `ResourceDiff`: states
/// are JSON documents encoded as strings; Secret values are masked.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ManagedResource {
    /// API group.
    pub group: String,
    /// Kind.
    pub kind: String,
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// The object as rendered from Git (`""` when not desired).
    pub target_state: String,
    /// The object in the cluster (`""` when missing).
    pub live_state: String,
    /// The live object after normalization.
    pub normalized_live_state: String,
    /// What the API server says the object would be after applying.
    pub predicted_live_state: String,
    /// Unified diff of normalized live against predicted, YAML.
    pub diff: String,
    /// Whether the object differs.
    pub modified: bool,
}

/// A reference from a tree node to its owner.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ParentRef {
    /// API group.
    pub group: String,
    /// Kind.
    pub kind: String,
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// UID.
    pub uid: String,
}

/// One node of `GET .../resource-tree`.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ResourceNode {
    /// API group.
    pub group: String,
    /// API version.
    pub version: String,
    /// Kind.
    pub kind: String,
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// UID.
    pub uid: String,
    /// Owners (empty for the application's own objects).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub parent_refs: Vec<ParentRef>,
    /// Health, where a rule exists.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health: Option<Health>,
    /// `metadata.resourceVersion`.
    #[serde(default)]
    pub resource_version: String,
    /// `metadata.creationTimestamp`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_at: Option<String>,
}

/// `GET .../resource-tree`: the application's objects and what they own.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ResourceTree {
    /// Every node.
    pub nodes: Vec<ResourceNode>,
}

/// An event on `GET /api/v1/stream/applications`.
#[derive(Clone, Debug, Serialize)]
pub struct AppEvent {
    /// `ADDED`, `MODIFIED` or `DELETED`.
    #[serde(rename = "type")]
    pub type_: &'static str,
    /// The application after the change.
    pub application: Application,
}

/// How `DELETE /api/v1/applications/NAME` deletes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cascade {
    /// The application's resources go first, then the application
    /// (`cascade=true`, the default): the resources finalizer, foreground
    /// (Argo CD's default) or background.
    Resources {
        /// Delete with background propagation.
        background: bool,
    },
    /// Only the Application object goes; its resources stay
    /// (`cascade=false`).
    ObjectOnly,
}

/// `GET /api/v1/dora`: the DORA metrics of a window, in all, per project
/// and per application.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DoraReport {
    /// The window's start, RFC 3339.
    pub from: String,
    /// Its end (now).
    pub to: String,
    /// Every application asked for together.
    pub total: crate::dora::Dora,
    /// Per project, by name.
    pub projects: Vec<NamedDora>,
    /// Per application.
    pub applications: Vec<NamedDora>,
}

/// The metrics of one project or application.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NamedDora {
    /// Its name.
    pub name: String,
    /// An application's project.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project: Option<String>,
    /// The figures.
    #[serde(flatten)]
    pub metrics: crate::dora::Dora,
}

/// The error of a service call; the API maps each to a status code.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// No application of that name (404).
    #[error("application {0} not found")]
    NotFound(String),
    /// No ApplicationSet of that name (404).
    #[error("applicationset {0} not found")]
    AppSetNotFound(String),
    /// No AppProject of that name (404).
    #[error("appproject {0} not found")]
    ProjectNotFound(String),
    /// No cluster with that server (404).
    #[error("cluster {0} not found")]
    ClusterNotFound(String),
    /// The request cannot be carried out as given (400).
    #[error("{0}")]
    BadRequest(String),
    /// A sync is already running for the application (409).
    #[error("{0}")]
    Conflict(String),
    /// This replica does not hold the leader Lease: it starts no sync
    /// (503); the holder is named.
    #[error("this replica is not the leader (the leader is {0:?}); send the request to it")]
    NotLeader(String),
    /// Something failed inside Plumb (500); the message is safe to show.
    #[error("{0}")]
    Internal(String),
}

/// What an ApplicationSet would do now (`plumb appset generate --server`,
/// `POST /api/v1/applicationsets/generate`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AppSetPreview {
    /// The Applications it generates, as they would be applied.
    pub applications: Vec<serde_json::Value>,
    /// Names it would create.
    pub create: Vec<String>,
    /// Names it would update.
    pub update: Vec<String>,
    /// Names it would delete.
    pub delete: Vec<String>,
    /// Names the policy or the deletion share rule keeps.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub kept: Vec<String>,
    /// Why deletions would be held, if they would.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub held: Option<String>,
}

/// The operations a running controller offers.
pub trait AppService: Send + Sync + 'static {
    /// Every application with its status, sorted by name.
    fn list(&self) -> impl Future<Output = Vec<Application>> + Send {
        async move {
            self.names()
                .iter()
                .filter_map(|name| self.document(name))
                .collect()
        }
    }

    /// Whether the caches are filled (the first list of Application objects
    /// is in): `/readyz`. `Err` says what is still awaited.
    ///
    /// # Errors
    /// While the first list has not arrived.
    fn ready(&self) -> Result<(), String> {
        Ok(())
    }

    /// The name of every application, sorted: with [`AppService::document`],
    /// a list can be read (and sent) one application at a time.
    fn names(&self) -> Vec<String>;

    /// The application namespace (`--namespace`): an application there is
    /// named by its name alone, one in another namespace (`--app-namespaces`)
    /// `NAMESPACE/NAME`.
    fn app_namespace(&self) -> String;

    /// One application with its status as it is, without refreshing; `None`
    /// when there is no such application (any more).
    fn document(&self, name: &str) -> Option<Application>;

    /// One application with its full history; refreshes first when asked.
    ///
    /// # Errors
    /// [`ServiceError::NotFound`] for an unknown name.
    fn get(
        &self,
        name: &str,
        refresh: Option<Refresh>,
    ) -> impl Future<Output = Result<Application, ServiceError>> + Send;

    /// Starts a sync operation and returns at once, with
    /// `status.operationState` `Running`; the controller runs it to its end.
    /// A revision that turns out not to exist ends the operation Failed.
    ///
    /// # Errors
    /// NotFound; Conflict when an operation is running.
    fn sync(
        &self,
        name: &str,
        request: SyncRequest,
    ) -> impl Future<Output = Result<Application, ServiceError>> + Send;

    /// Starts a sync to the revision of history entry `id`, pins it and
    /// suspends automated sync until the next manual sync; returns at once.
    ///
    /// # Errors
    /// NotFound for an unknown application; BadRequest for an unknown id;
    /// Conflict when an operation is running.
    fn rollback(
        &self,
        name: &str,
        id: i64,
    ) -> impl Future<Output = Result<Application, ServiceError>> + Send;

    /// The DORA metrics of `apps` (name and project) over the last
    /// `window` seconds, a deployment's failure looked for up to
    /// `failure_window` seconds after it.
    ///
    /// # Errors
    /// Internal when the store cannot be read.
    fn dora(
        &self,
        apps: &[(String, String)],
        window: i64,
        failure_window: i64,
    ) -> Result<DoraReport, ServiceError> {
        let _ = (apps, window, failure_window);
        Err(ServiceError::BadRequest(
            "DORA metrics are not served here".into(),
        ))
    }

    /// Creates the Application object `app` (Argo CD's create: one with
    /// the same spec is returned as it is; another spec needs `upsert`).
    ///
    /// # Errors
    /// BadRequest for an invalid application, one its project refuses, one
    /// of a file, or a different existing spec without `upsert`.
    fn create(
        &self,
        app: serde_json::Value,
        upsert: bool,
    ) -> impl Future<Output = Result<Application, ServiceError>> + Send {
        let _ = (app, upsert);
        async {
            Err(ServiceError::BadRequest(
                "creating applications is not served here".into(),
            ))
        }
    }

    /// Replaces the spec of the Application object `name` with `app`'s
    /// (and adds its labels and annotations).
    ///
    /// # Errors
    /// NotFound; BadRequest as [`AppService::create`], or for a stale
    /// `metadata.resourceVersion`.
    fn update(
        &self,
        name: &str,
        app: serde_json::Value,
    ) -> impl Future<Output = Result<Application, ServiceError>> + Send {
        let _ = app;
        let missing = ServiceError::NotFound(name.to_string());
        async { Err(missing) }
    }

    /// Creates an AppProject from Argo CD's body `{"project": {...},
    /// "upsert": bool}`.
    ///
    /// # Errors
    /// BadRequest for an invalid project, one of a file, or a different
    /// existing spec without `upsert`.
    fn create_project(
        &self,
        body: serde_json::Value,
    ) -> impl Future<Output = Result<crate::project::AppProject, ServiceError>> + Send {
        let _ = body;
        async {
            Err(ServiceError::BadRequest(
                "creating projects is not served here".into(),
            ))
        }
    }

    /// Replaces the spec of the AppProject `name` (`{"project": {...}}`).
    ///
    /// # Errors
    /// ProjectNotFound; BadRequest as [`AppService::create_project`].
    fn update_project(
        &self,
        name: &str,
        body: serde_json::Value,
    ) -> impl Future<Output = Result<crate::project::AppProject, ServiceError>> + Send {
        let _ = body;
        let missing = ServiceError::ProjectNotFound(name.to_string());
        async { Err(missing) }
    }

    /// Deletes the AppProject `name`; one that applications use stays.
    ///
    /// # Errors
    /// ProjectNotFound; BadRequest while applications use it.
    fn delete_project(&self, name: &str) -> impl Future<Output = Result<(), ServiceError>> + Send {
        let missing = ServiceError::ProjectNotFound(name.to_string());
        async { Err(missing) }
    }

    /// Deletes the Application object `name`, with its resources first
    /// unless `cascade` says otherwise.
    ///
    /// # Errors
    /// NotFound; BadRequest for an application of a file.
    fn delete(
        &self,
        name: &str,
        cascade: Cascade,
    ) -> impl Future<Output = Result<(), ServiceError>> + Send {
        let _ = cascade;
        let missing = ServiceError::NotFound(name.to_string());
        async { Err(missing) }
    }

    /// Terminates the running operation: no further step starts and it ends
    /// Failed ("Operation terminated").
    ///
    /// # Errors
    /// NotFound; BadRequest when no operation is in progress.
    fn terminate_operation(
        &self,
        name: &str,
    ) -> impl Future<Output = Result<Application, ServiceError>> + Send;

    /// Confirms the prunes that `Prune=confirm` holds in the application's
    /// sync (as the `argocd.argoproj.io/deletion-approved` annotation set
    /// to the time now would): a sync waiting for it goes on.
    ///
    /// # Errors
    /// NotFound.
    fn confirm_prune(&self, name: &str) -> Result<Application, ServiceError> {
        Err(ServiceError::NotFound(name.to_string()))
    }

    /// Target, live and predicted state of every resource, with diffs.
    ///
    /// # Errors
    /// NotFound; Internal when the comparison fails.
    fn managed_resources(
        &self,
        name: &str,
    ) -> impl Future<Output = Result<Vec<ManagedResource>, ServiceError>> + Send;

    /// The application's objects and the objects they own.
    ///
    /// # Errors
    /// NotFound.
    fn resource_tree(
        &self,
        name: &str,
    ) -> impl Future<Output = Result<ResourceTree, ServiceError>> + Send;

    /// A repository changed (a webhook said so): fetch it now and reconcile
    /// the applications that use it. Returns how many were queued.
    fn refresh_repository(&self, url: &str) -> impl Future<Output = usize> + Send;

    /// A stream of changes to applications.
    fn subscribe(&self) -> broadcast::Receiver<AppEvent>;

    /// Every ApplicationSet with its status, sorted by name.
    fn appsets(&self) -> Vec<ApplicationSet> {
        Vec::new()
    }

    /// One ApplicationSet with its status.
    ///
    /// # Errors
    /// [`ServiceError::AppSetNotFound`].
    fn appset(&self, name: &str) -> Result<ApplicationSet, ServiceError> {
        Err(ServiceError::AppSetNotFound(name.to_string()))
    }

    /// Confirms the deletions an ApplicationSet holds, if `token` is the
    /// one its `DeletionHeld` condition names, and runs a pass.
    ///
    /// # Errors
    /// [`ServiceError::AppSetNotFound`].
    fn confirm_appset_deletion(
        &self,
        name: &str,
        token: &str,
    ) -> Result<ApplicationSet, ServiceError> {
        let _ = token;
        Err(ServiceError::AppSetNotFound(name.to_string()))
    }

    /// What the ApplicationSet `set` (a manifest) would create, update and
    /// delete in the cluster now; nothing is applied.
    ///
    /// # Errors
    /// BadRequest when it does not decode or its generators fail.
    fn preview_appset(
        &self,
        set: serde_json::Value,
    ) -> impl Future<Output = Result<AppSetPreview, ServiceError>> + Send {
        let _ = set;
        async {
            Err(ServiceError::BadRequest(
                "ApplicationSets are not served here".into(),
            ))
        }
    }

    /// The commit `revision` of the application's (first) repository:
    /// author, date, message, tags.
    ///
    /// # Errors
    /// NotFound for an unknown application; BadRequest when the revision is
    /// not in the repository (or the application has no git source).
    fn revision_metadata(
        &self,
        name: &str,
        revision: &str,
    ) -> impl Future<Output = Result<crate::source::CommitMetadata, ServiceError>> + Send {
        let _ = revision;
        let missing = ServiceError::NotFound(name.to_string());
        async { Err(missing) }
    }

    /// Every AppProject, sorted by name; `default` as Plumb assumes it
    /// when no object of that name exists.
    fn projects(&self) -> Vec<crate::project::AppProject> {
        vec![crate::project::AppProject::default_in(
            &self.app_namespace(),
        )]
    }

    /// One AppProject (`default` as assumed when no object of that name
    /// exists).
    ///
    /// # Errors
    /// [`ServiceError::ProjectNotFound`].
    fn project(&self, name: &str) -> Result<crate::project::AppProject, ServiceError> {
        self.projects()
            .into_iter()
            .find(|p| p.name() == name)
            .ok_or_else(|| ServiceError::ProjectNotFound(name.to_string()))
    }

    /// Every cluster applications may deploy to (cluster Secrets and
    /// in-cluster), with its connection state; no credentials.
    fn clusters(&self) -> Vec<crate::destinations::ClusterView> {
        Vec::new()
    }

    /// The metrics in Prometheus' text format, `None` where there are none.
    fn metrics(&self) -> impl Future<Output = Option<String>> + Send {
        async { None }
    }
}
