//! Per-application state: the declared application, its published status, the
//! memory between reconciles, and the operation it runs now (at most one).

use super::*;

/// A sync operation asked of one reconcile: by a user (sync, rollback) or
/// by automated sync.
#[derive(Clone, Debug, Default)]
pub(super) struct ManualOp {
    pub(super) revision: Option<String>,
    pub(super) prune: bool,
    pub(super) dry_run: bool,
    pub(super) initiated_by: InitiatedBy,
    /// Identifies the operation in [`AppSlot::operation`]; 0 until started.
    pub(super) id: u64,
    /// When the request started it (empty for automated syncs).
    pub(super) started_at: String,
    /// Fires when the operation is terminated.
    pub(super) cancel: CancellationToken,
    /// Retry a failed attempt (`syncPolicy.retry`, or the request's).
    pub(super) retry: Option<crate::model::RetryStrategy>,
    /// A selective sync's objects (empty: every object).
    pub(super) resources: Vec<SyncOperationResource>,
    /// `apply` (no hooks) or `hook`, with `force`.
    pub(super) strategy: Option<SyncStrategy>,
    /// Sync options of this operation, read after the application's.
    pub(super) sync_options: Vec<String>,
}

impl ManualOp {
    /// Whether hooks run: not in a selective sync (as in Argo CD) nor with
    /// the `apply` strategy.
    pub(super) fn runs_hooks(&self) -> bool {
        self.resources.is_empty() && !self.strategy.as_ref().is_some_and(SyncStrategy::apply_only)
    }

    /// Whether the operation includes the object `key` (every object unless
    /// it is a selective sync).
    pub(super) fn includes(&self, key: &ResourceKey) -> bool {
        self.resources.is_empty() || self.resources.iter().any(|r| r.matches(key))
    }

    /// The application's spec as this operation sees it: its own sync
    /// options (and `Force=true` for a forced strategy) after the
    /// application's, so that they win where both set one.
    pub(super) fn spec_for<'a>(
        &self,
        spec: &'a crate::model::ApplicationSpec,
    ) -> std::borrow::Cow<'a, crate::model::ApplicationSpec> {
        let force = self.strategy.as_ref().is_some_and(SyncStrategy::force);
        if self.sync_options.is_empty() && !force {
            return std::borrow::Cow::Borrowed(spec);
        }
        let mut spec = spec.clone();
        let policy = spec.sync_policy.get_or_insert_with(Default::default);
        policy
            .sync_options
            .extend(self.sync_options.iter().cloned());
        if force {
            policy.sync_options.push("Force=true".into());
        }
        std::borrow::Cow::Owned(spec)
    }

    /// The operation as `status.operationState.operation` shows it, syncing
    /// to `revision`.
    pub(super) fn operation(&self, revision: &str) -> Operation {
        Operation {
            sync: Some(SyncOperation {
                revision: revision.to_string(),
                prune: self.prune,
                dry_run: self.dry_run,
                resources: self.resources.clone(),
                sync_strategy: self.strategy.clone(),
                sync_options: self.sync_options.clone(),
            }),
            initiated_by: self.initiated_by.clone(),
        }
    }
}

/// The operation an application runs now. At most one per application,
/// decided under the slot's lock, so two requests never both start one.
pub(super) struct RunningOp {
    pub(super) id: u64,
    pub(super) started_at: String,
    pub(super) initiated_by: InitiatedBy,
    pub(super) cancel: CancellationToken,
}

/// A sync operation between two of its waves. It holds no task and no
/// worker: it applied the waves up to `progress` and the next one waits for
/// the live state of those. Every reconcile of the application (a watch
/// event of its objects, the [`WAVE_RECHECK`] backstop, a refresh) continues
/// it before anything else; its [`RunningOp`] stays in the slot meanwhile,
/// so no other operation starts.
///
/// [`WAVE_RECHECK`]: super::operation::WAVE_RECHECK
pub(super) struct WaitingOp {
    pub(super) run: ManualOp,
    /// The revision it syncs: the rest of the operation applies the same
    /// commit, whatever Git does meanwhile.
    pub(super) sha: String,
    /// How far it got (always past a wave).
    pub(super) progress: plumb_core::waves::Progress,
    /// The results of the steps run so far.
    pub(super) resources: Vec<ResourceResult>,
    /// The message last recorded; a reconcile that waits for the same
    /// thing writes nothing.
    pub(super) message: String,
    /// The uid of each hook it created: the live object of that name is
    /// this sync's hook only when the uids match (an earlier sync's
    /// completed Job of the same name is not).
    pub(super) hook_uids: BTreeMap<ResourceKey, String>,
    /// Why the sync failed, while it waits for its SyncFail hooks
    /// (`Progress::Failing`): the operation ends with this message.
    pub(super) failure: Option<String>,
    /// Failed attempts retried so far (`syncPolicy.retry`).
    pub(super) retried: u32,
    /// A retry waits until then before it starts again from the first wave.
    pub(super) not_before: Option<Instant>,
}

/// What a reconcile was asked to do beyond comparing.
#[derive(Clone, Debug, Default)]
pub(super) struct Trigger {
    pub(super) op: Option<ManualOp>,
    /// Compare again even if nothing seems to have changed.
    pub(super) force: bool,
    /// Fetch the repository first.
    pub(super) hard: bool,
}

/// The render of (revision, spec hash), kept between reconciles as each
/// manifest's JSON text: a JSON tree costs many times its text, and the
/// render is read again only when something changed.
pub(super) struct RenderCache {
    pub(super) revision: String,
    pub(super) spec_hash: u64,
    /// The tools' versions, the cluster's capabilities and the chart
    /// versions the render used.
    pub(super) tool_key: String,
    /// For a render of Kustomize and Helm sources only: every repository
    /// path it read with the object id it had, so that a commit that
    /// changes none of them reuses the render.
    pub(super) inputs: Option<Vec<(crate::tools::Input, Option<String>)>>,
    manifests: Box<[(Box<str>, Box<str>)]>,
}

impl RenderCache {
    pub(super) fn new(
        revision: String,
        spec_hash: u64,
        tool_key: String,
        inputs: Option<Vec<(crate::tools::Input, Option<String>)>>,
        manifests: &[Manifest],
    ) -> RenderCache {
        RenderCache {
            revision,
            spec_hash,
            tool_key,
            inputs,
            manifests: manifests
                .iter()
                .map(|m| (m.object.to_string().into(), m.origin.as_str().into()))
                .collect(),
        }
    }

    /// The manifests, as render made them.
    pub(super) fn manifests(&self) -> Vec<Manifest> {
        self.manifests
            .iter()
            .map(|(json, origin)| Manifest {
                object: serde_json::from_str(json).expect("a manifest's own JSON text parses"),
                origin: origin.to_string(),
            })
            .collect()
    }
}

/// Per-application memory between reconciles.
#[derive(Default)]
pub(super) struct AppWork {
    /// (revision, spec hash, live generation, ignore rules' hash) of the
    /// last full comparison.
    pub(super) last_key: Option<(String, u64, u64, u64)>,
    /// Render of (revision, spec hash).
    pub(super) render: Option<RenderCache>,
    /// Per resource: (desired hash, live resourceVersion, live fingerprint)
    /// of the last verdict, and the verdict (modified).
    pub(super) compared: HashMap<ResourceKey, (u64, String, u64, bool)>,
    /// What the automated-sync policy remembers; its `last_synced` comes
    /// from the store at first use.
    pub(super) policy: plumb_core::decide::Memory,
    pub(super) loaded: bool,
    /// Transient failures in a row, for the retry backoff.
    pub(super) failures: u32,
    /// The sync operation waiting for a wave, if any.
    pub(super) waiting: Option<WaitingOp>,
    /// The compiled `ignoreDifferences` rules, with the spec hash and the
    /// settings' generation they were compiled for.
    pub(super) ignore: Option<((u64, u64), Arc<IgnoreRules>)>,
    /// The id of the cluster connection `compared` was made against
    /// (`destinations::Dest::id`; 0 is Plumb's own cluster).
    pub(super) dest: u64,
}

pub(super) struct AppSlot {
    /// Shared with the source it came from: one copy per application.
    pub(super) declared: RwLock<Arc<Declared>>,
    pub(super) status: RwLock<ApplicationStatus>,
    pub(super) work: tokio::sync::Mutex<AppWork>,
    pub(super) operation: Mutex<Option<RunningOp>>,
    /// The fingerprint of the status last written to the Application object
    /// (or found on it).
    pub(super) written: Mutex<Option<u64>>,
    /// The deletion of its Application object was seen (logged once).
    pub(super) deletion_seen: AtomicBool,
    /// Its cascade deleted its resources and removed the resources
    /// finalizer.
    pub(super) cascaded: AtomicBool,
    /// Its cluster answers again after it did not: an automated sync that
    /// failed meanwhile is retried at once, not after its backoff.
    pub(super) reconnected: AtomicBool,
    /// A hash of the `operation` of its object that last started a sync,
    /// until the object no longer has one: the same request is started
    /// once, even before Plumb's clearing of the field is seen.
    pub(super) cr_operation: Mutex<Option<u64>>,
    /// When prunes were last confirmed through the API (RFC 3339), for
    /// `Prune=confirm`: it counts for operations started then or before,
    /// as the application's `argocd.argoproj.io/deletion-approved`
    /// annotation does. Not kept over a restart (nor is the operation).
    pub(super) prunes_confirmed: Mutex<Option<String>>,
}

impl AppSlot {
    pub(super) fn new(declared: Arc<Declared>) -> Arc<AppSlot> {
        Arc::new(AppSlot {
            written: Mutex::new(declared.status_fingerprint),
            declared: RwLock::new(declared),
            status: RwLock::default(),
            work: tokio::sync::Mutex::default(),
            operation: Mutex::default(),
            deletion_seen: AtomicBool::new(false),
            cascaded: AtomicBool::new(false),
            reconnected: AtomicBool::new(false),
            cr_operation: Mutex::default(),
            prunes_confirmed: Mutex::default(),
        })
    }

    pub(super) fn declared(&self) -> Arc<Declared> {
        Arc::clone(
            &self
                .declared
                .read()
                .expect("declared lock is never poisoned"),
        )
    }

    pub(super) fn written(&self) -> std::sync::MutexGuard<'_, Option<u64>> {
        self.written
            .lock()
            .expect("written-status lock is never poisoned")
    }

    pub(super) fn running(&self) -> std::sync::MutexGuard<'_, Option<RunningOp>> {
        self.operation
            .lock()
            .expect("operation lock is never poisoned")
    }

    /// Whether the prunes of an operation started at `started_at` are
    /// confirmed: the application's `argocd.argoproj.io/deletion-approved`
    /// annotation, or a confirmation through the API, at or after the
    /// start (to the second, as Argo CD compares them).
    pub(super) fn prunes_confirmed(&self, started_at: &str) -> bool {
        let declared = self.declared();
        let annotation = declared
            .app
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(DELETION_APPROVED_ANNOTATION))
            .cloned();
        let api = self
            .prunes_confirmed
            .lock()
            .expect("confirmation lock is never poisoned")
            .clone();
        annotation
            .into_iter()
            .chain(api)
            .any(|at| confirmed_since(&at, started_at))
    }

    /// Whether its Application object is being deleted.
    pub(super) fn deleting(&self) -> bool {
        let declared = self.declared();
        declared.origin == Origin::Cluster && declared.app.metadata.deletion_timestamp.is_some()
    }

    pub(super) fn status(&self) -> ApplicationStatus {
        self.status
            .read()
            .expect("status lock is never poisoned")
            .clone()
    }
}

/// The application annotation that confirms prunes (`Prune=confirm`), with
/// an RFC 3339 time at or after the operation's start (Argo CD's).
pub(super) const DELETION_APPROVED_ANNOTATION: &str = "argocd.argoproj.io/deletion-approved";

/// Whether the confirmation time `at` is at or after `started_at`, both RFC
/// 3339, compared to the second (an operation's start has milliseconds, a
/// confirmation's annotation usually not). A time that does not parse
/// confirms nothing.
fn confirmed_since(at: &str, started_at: &str) -> bool {
    use time::format_description::well_known::Rfc3339;
    let seconds = |text: &str| {
        time::OffsetDateTime::parse(text.trim(), &Rfc3339)
            .ok()
            .map(time::OffsetDateTime::unix_timestamp)
    };
    match (seconds(at), seconds(started_at)) {
        (Some(at), Some(started)) => at >= started,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::confirmed_since;

    #[test]
    fn a_confirmation_counts_from_the_second_the_operation_started() {
        let started = "2026-05-01T10:00:00.750Z";
        assert!(confirmed_since("2026-05-01T10:00:00Z", started));
        assert!(confirmed_since("2026-05-01T12:00:01+02:00", started));
        assert!(!confirmed_since("2026-05-01T09:59:59Z", started));
        assert!(!confirmed_since("2026-05-01T11:00:00+02:00", started));
        assert!(!confirmed_since("yesterday", started));
        assert!(!confirmed_since("", started));
    }
}
