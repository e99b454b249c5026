//! What `plumb serve` configures the controller with, and the error of starting it.

use super::*;

/// What `plumb serve` is configured with.
#[derive(Clone, Debug)]
pub struct ControllerOptions {
    /// Namespace whose `Application` objects are managed.
    pub namespace: String,
    /// More namespaces whose `Application` objects are managed: names,
    /// globs or `/regular expressions/` (`--app-namespaces`).
    pub app_namespaces: Vec<String>,
    /// The only namespaces of Plumb's own cluster that applications may
    /// deploy to (`--managed-namespaces`): watched one by one, no
    /// cluster-scoped kind. Empty: the whole cluster.
    pub managed_namespaces: Vec<String>,
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
    /// The largest git object fetched or read, in bytes (0: no limit).
    pub max_git_object_size: u64,
    /// How long a repository fetch may take.
    pub fetch_timeout: Duration,
    /// How long the first list of a watched kind may take.
    pub watch_timeout: Duration,
    /// How long a CRD of a sync may take to become Established.
    pub crd_timeout: Duration,
    /// How long one apply, dry run, read or delete of an object may take.
    pub request_timeout: Duration,
    /// What ApplicationSets may create, update and delete.
    pub appset_policy: plumb_core::appset::plan::ApplicationsSync,
    /// Let each ApplicationSet's `syncPolicy.applicationsSync` override
    /// `appset_policy`.
    pub appset_policy_override: bool,
    /// An ApplicationSet pass that would delete at least this percentage of
    /// its applications is held until confirmed (100: only a drop to none).
    pub appset_max_delete_percent: u8,
    /// A file of `argocd-cm` keys (`--resource-customizations`), over the
    /// `argocd-cm` ConfigMap in `namespace`.
    pub resource_customizations: Option<PathBuf>,
    /// Server-wide `ignoreDifferences` rules (Argo CD's
    /// `resource.customizations.ignoreDifferences.*` of `argocd-cm`, each
    /// read by [`plumb_core::ignore::server_rule`]), applied to every
    /// application together with its own.
    pub ignore_differences: Vec<crate::model::ResourceIgnoreDifferences>,
    /// Helm, Kustomize and Jsonnet: binaries and limits (`root` is set
    /// from `data_dir`).
    pub tools: crate::tools::ToolOptions,
    /// The window of the `plumb_dora_*` gauges (`--dora-window`).
    pub dora_window: Duration,
    /// How long after a deployment a failure counts against it in the
    /// `plumb_dora_*` gauges (`--dora-failure-window`).
    pub dora_failure_window: Duration,
    /// The shards and which this replica holds (one shard always held
    /// without leader election; one elected shard with `--leader-elect`;
    /// several with `--shards`).
    pub shards: crate::lease::Shards,
    /// Where the controller records its metrics (the Kubernetes client
    /// given to [`super::Controller::start`] may count into the same).
    pub metrics: Arc<crate::metrics::Metrics>,
}

impl Default for ControllerOptions {
    fn default() -> Self {
        ControllerOptions {
            namespace: "plumb".into(),
            app_namespaces: Vec::new(),
            managed_namespaces: Vec::new(),
            apps: Vec::new(),
            data_dir: PathBuf::from("plumb-data"),
            repo_poll_interval: Duration::from_secs(60),
            resync_interval: Duration::from_secs(180),
            workers: 16,
            watch_cluster_apps: true,
            max_manifest_size: 8 << 20,
            max_git_object_size: 128 << 20,
            fetch_timeout: Duration::from_secs(120),
            watch_timeout: Duration::from_secs(30),
            crd_timeout: Duration::from_secs(60),
            request_timeout: crate::cluster::DEFAULT_REQUEST_TIMEOUT,
            appset_policy: plumb_core::appset::plan::ApplicationsSync::Sync,
            appset_policy_override: false,
            appset_max_delete_percent: 100,
            resource_customizations: None,
            ignore_differences: Vec::new(),
            tools: crate::tools::ToolOptions::default(),
            shards: crate::lease::Shards::single(crate::lease::Leadership::always()),
            dora_window: Duration::from_secs(30 * 86_400),
            dora_failure_window: Duration::from_secs(3_600),
            metrics: Arc::default(),
        }
    }
}

/// The error of starting the controller.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The store could not be opened.
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    /// A pattern of `--app-namespaces` does not compile.
    #[error(transparent)]
    AppNamespaces(#[from] crate::appns::PatternError),
    /// The `--resource-customizations` file cannot be read.
    #[error(transparent)]
    Settings(#[from] crate::settings::SettingsError),
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
