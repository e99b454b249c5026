//! Sync operations: started under the application's lock, run as tasks the
//! controller owns, terminated on request, recorded before and after.

use plumb_core::decide;
use plumb_core::waves::{self, Next, Progress, Readiness};

use super::*;
use crate::destinations::Dest;

/// How often a running sync publishes its progress.
const PROGRESS_EVERY: Duration = Duration::from_millis(500);

/// When a sync waiting for a wave looks again if no watch event of its
/// objects came first (a backstop: the watch requeues the application at
/// each change of its objects, child Applications' status among them).
pub(super) const WAVE_RECHECK: Duration = Duration::from_secs(5);

/// How a call of [`Inner::run_sync`] ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum SyncEnd {
    /// The operation ended (recorded, the application freed).
    Ended {
        /// Whether it succeeded.
        succeeded: bool,
    },
    /// The operation waits for a wave, parked in `AppWork::waiting`.
    Waiting,
}

/// What the gate between waves reads of the live objects. A hook's name
/// counts only as the object this sync created (`hook_uids`): an earlier
/// sync's hook of the same name, or one not created yet, is Missing.
fn readiness(
    tracked: &BTreeMap<ResourceKey, LiveObject>,
    hook_uids: &BTreeMap<ResourceKey, String>,
) -> BTreeMap<ResourceKey, Readiness> {
    tracked
        .iter()
        .filter(|(key, live)| {
            !live.is_hook() || hook_uids.get(*key).is_some_and(|uid| uid == live.uid())
        })
        .map(|(key, live)| {
            let (health, message) = live.health().map_or_else(
                || (HealthStatusCode::Healthy, String::new()),
                |h| (h.status, h.message.clone()),
            );
            let sync = live.app_sync().map(str::to_string);
            (
                key.clone(),
                Readiness {
                    health,
                    message,
                    sync,
                    deleting: live.deleting(),
                    wave: live.wave(),
                },
            )
        })
        .collect()
}

/// Sets each hook's `hookPhase` (and, when it ended, its message) in the
/// results from its live readiness: Succeeded when Healthy, Failed when
/// Degraded, Running otherwise.
fn hook_results(
    results: &mut [ResourceResult],
    live: &BTreeMap<ResourceKey, Readiness>,
    hook_uids: &BTreeMap<ResourceKey, String>,
) {
    for r in results.iter_mut().filter(|r| !r.hook_type.is_empty()) {
        let key = ResourceKey {
            group: r.group.clone(),
            kind: r.kind.clone(),
            namespace: r.namespace.clone(),
            name: r.name.clone(),
        };
        if r.status == "SyncFailed" || !hook_uids.contains_key(&key) {
            continue;
        }
        let (phase, message) = match live.get(&key) {
            Some(x) if x.health == HealthStatusCode::Healthy => ("Succeeded", x.message.clone()),
            Some(x) if x.health == HealthStatusCode::Degraded => ("Failed", x.message.clone()),
            _ => ("Running", String::new()),
        };
        r.hook_phase = phase.to_string();
        if !message.is_empty() {
            r.message = message;
        } else if phase == "Succeeded" {
            r.message = "hook completed".to_string();
        }
    }
}

/// The field `name` of an operation's `sync`, `None` when absent or null.
fn sync_field<T: serde::de::DeserializeOwned>(
    sync: &Value,
    name: &str,
) -> Result<Option<T>, String> {
    match sync.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => serde_json::from_value(v.clone())
            .map(Some)
            .map_err(|e| format!("sync.{name}: {e}")),
    }
}

/// The sync an Application object's `operation` field asks for, as Argo
/// CD writes it: `sync` with `revision`, `prune`, `dryRun`, and
/// `initiatedBy.username`, `retry`, and `resources`, `syncStrategy`,
/// `syncOptions`.
fn cr_operation(requested: &Value) -> Result<ManualOp, String> {
    let sync = requested
        .get("sync")
        .filter(|s| s.is_object())
        .ok_or("it has no sync (only sync operations exist)")?;
    let flag = |name: &str| sync.get(name).and_then(Value::as_bool).unwrap_or(false);
    let retry = match requested.get("retry") {
        None | Some(Value::Null) => None,
        Some(r) => Some(
            serde_json::from_value::<crate::model::RetryStrategy>(r.clone())
                .map_err(|e| format!("retry: {e}"))?,
        ),
    };
    let resources: Option<Vec<SyncOperationResource>> = sync_field(sync, "resources")?;
    let strategy: Option<SyncStrategy> = sync_field(sync, "syncStrategy")?;
    let sync_options: Option<Vec<String>> = sync_field(sync, "syncOptions")?;
    let username = requested
        .pointer("/initiatedBy/username")
        .and_then(Value::as_str)
        .filter(|u| !u.is_empty())
        .unwrap_or("operation field");
    Ok(ManualOp {
        revision: sync
            .get("revision")
            .and_then(Value::as_str)
            .filter(|r| !r.is_empty())
            .map(str::to_string),
        prune: flag("prune"),
        dry_run: flag("dryRun"),
        initiated_by: InitiatedBy {
            username: username.to_string(),
            automated: false,
        },
        retry,
        resources: resources.unwrap_or_default(),
        strategy,
        sync_options: sync_options.unwrap_or_default(),
        ..ManualOp::default()
    })
}

impl Inner {
    /// Writes an operation's state to the store; a failure is logged (the
    /// operation goes on: the store is its record, not its driver).
    fn record_operation(&self, name: &str, op: &OperationState) {
        if let Err(e) = self.store.set_operation(name, op) {
            tracing::error!(app = %name, error = %e, "cannot record the sync operation");
        }
    }

    /// The readiness of an application's live objects for the gate.
    fn readiness(
        &self,
        dest: &Dest,
        name: &str,
        hook_uids: &BTreeMap<ResourceKey, String>,
    ) -> BTreeMap<ResourceKey, Readiness> {
        readiness(&dest.live.tracked(name), hook_uids)
    }

    /// Deletes the hooks whose policy says so: `HookSucceeded` ones that
    /// succeeded, `HookFailed` ones that failed (as the results say).
    async fn delete_hooks(
        &self,
        dest: &Dest,
        name: &str,
        hooks: &[plan::Hook],
        results: &[ResourceResult],
        hook_uids: &BTreeMap<ResourceKey, String>,
    ) {
        for h in hooks {
            let Some(uid) = hook_uids.get(&h.key) else {
                continue;
            };
            let ended = results
                .iter()
                .rev()
                .find(|r| {
                    r.kind == h.key.kind
                        && r.name == h.key.name
                        && r.namespace == h.key.namespace
                        && !r.hook_type.is_empty()
                })
                .map(|r| r.hook_phase.as_str());
            let go = match ended {
                Some("Succeeded") => h.delete_succeeded,
                Some("Failed") => h.delete_failed,
                _ => false,
            };
            if !go {
                continue;
            }
            let api_version = h
                .object
                .get("apiVersion")
                .and_then(Value::as_str)
                .unwrap_or_default();
            match dest.cluster.resolve(api_version, &h.key.kind).await {
                Ok(Some(kind)) => match dest.cluster.delete(&kind, &h.key, Some(uid)).await {
                    Ok(()) | Err(crate::cluster::ClusterError::Replaced(_)) => {
                        tracing::info!(app = %name, hook = %h.key, "hook deleted by its delete policy");
                    }
                    Err(e) => {
                        tracing::warn!(app = %name, hook = %h.key, error = %e, "cannot delete a hook")
                    }
                },
                Ok(None) => {}
                Err(e) => {
                    tracing::warn!(app = %name, hook = %h.key, error = %e, "cannot delete a hook")
                }
            }
        }
    }

    /// Runs stages of the plan for an operation.
    async fn execute(
        &self,
        name: &str,
        dest: &Dest,
        run: &ManualOp,
        stages: &[&plan::Stage],
        progress: &(dyn Fn(&ResourceResult) + Send + Sync),
    ) -> sync::SyncOutcome {
        let execution = sync::Execution {
            cancel: &run.cancel,
            progress,
            crd_timeout: self.options.crd_timeout,
        };
        let cluster = self.write_cluster(&dest.cluster, name);
        sync::execute(&cluster, &dest.live, stages, &execution).await
    }

    /// Registers an automated sync as the application's operation, unless
    /// another operation (a user's, waiting for this reconcile) holds it.
    pub(super) fn begin_automated(&self, slot: &AppSlot, run: &mut ManualOp) -> bool {
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
    ///
    /// `recorded`: the store holds `op` already (written with its history
    /// record).
    pub(super) fn end_operation(
        &self,
        name: &str,
        slot: &AppSlot,
        id: u64,
        op: &OperationState,
        recorded: bool,
    ) {
        let dry_run = op
            .operation
            .as_ref()
            .and_then(|o| o.sync.as_ref())
            .is_some_and(|s| s.dry_run);
        if !dry_run && !recorded {
            self.record_operation(name, op);
        }
        let mut running = slot.running();
        if running.as_ref().is_some_and(|r| r.id == id) {
            *running = None;
        }
        drop(running);
        // A sync asked through the object while this one ran starts now.
        if slot.declared().operation.is_some() {
            self.enqueue(name);
        }
    }

    /// Starts the sync an Application object asks for in its `operation`
    /// field (Argo CD's `kubectl patch app NAME --type merge -p
    /// '{"operation": {"sync": {...}}}'`), once, and clears the field. One
    /// asked while another operation runs waits until it ends.
    pub(super) fn take_cr_operation(self: &Arc<Self>, name: &str, slot: &AppSlot) {
        let declared = slot.declared();
        let mut seen = slot
            .cr_operation
            .lock()
            .expect("operation lock is never poisoned");
        let Some(requested) = declared.operation.as_ref() else {
            *seen = None;
            return;
        };
        let print = hash_json(requested);
        if *seen == Some(print) || slot.running().is_some() {
            return;
        }
        let op = match cr_operation(requested) {
            Ok(op) => op,
            Err(why) => {
                tracing::warn!(app = %name, why, "the Application's operation field is not a sync Plumb can run; it is cleared");
                *seen = Some(print);
                self.clear_cr_operation(name);
                return;
            }
        };
        match self.start_operation(name, op, None) {
            Ok(_) => {
                tracing::info!(app = %name, "sync started by the Application's operation field");
                *seen = Some(print);
                self.clear_cr_operation(name);
            }
            // The leader starts it (a follower that becomes the leader
            // reads the field again).
            Err(ServiceError::Conflict(_) | ServiceError::NotLeader(_)) => {}
            Err(e) => {
                tracing::warn!(app = %name, error = %e, "cannot start the sync the Application's operation field asks for");
                *seen = Some(print);
                self.clear_cr_operation(name);
            }
        }
    }

    /// Removes the `operation` field of an Application object (a merge
    /// patch of that field only).
    fn clear_cr_operation(self: &Arc<Self>, name: &str) {
        let (namespace, object) = self.namespaces.split(name);
        let api: Api<DynamicObject> = Api::namespaced_with(
            self.cluster.client().clone(),
            namespace,
            &registry::application_resource(),
        );
        let (app, object) = (name.to_string(), object.to_string());
        tokio::spawn(async move {
            let patch = Patch::Merge(json!({"operation": null}));
            if let Err(e) = api.patch(&object, &PatchParams::default(), &patch).await {
                tracing::warn!(app = %app, error = %e, "cannot clear the Application's operation field");
            }
        });
    }

    /// Ends a sync operation waiting between waves, Failed with `message`
    /// (it was terminated, or its application is being deleted), with the
    /// results of the waves it applied.
    pub(super) fn end_waiting(
        self: &Arc<Self>,
        name: &str,
        slot: &AppSlot,
        work: &mut AppWork,
        message: &str,
    ) {
        let Some(waiting) = work.waiting.take() else {
            return;
        };
        let op = OperationState {
            phase: OperationPhase::Failed,
            message: message.to_string(),
            started_at: waiting.run.started_at.clone(),
            finished_at: Some(now()),
            sync_result: Some(SyncResult {
                revision: waiting.sha.clone(),
                resources: waiting.resources,
            }),
            operation: Some(waiting.run.operation(&waiting.sha)),
            retry_count: i64::from(waiting.retried),
        };
        if waiting.run.initiated_by.automated {
            let (memory, _) =
                decide::after_automated_sync(&work.policy, &waiting.sha, false, self.clock.now());
            work.policy = memory;
        }
        tracing::info!(app = %name, message, "sync operation ended while waiting for a wave");
        self.end_operation(name, slot, waiting.run.id, &op, false);
        let mut status = slot.status();
        status.operation_state = Some(op);
        self.publish(name, slot, status);
    }

    /// Runs a sync operation, or continues one that waited for a wave
    /// (`resume`): plans it, then applies wave after wave while the waves
    /// before are ready, then prunes. When a wave must wait, the operation
    /// is parked in `work.waiting` (recorded `Running` with what it waits
    /// for) and this returns at once: the reconcile ends, and a later one
    /// continues it.
    #[allow(clippy::too_many_arguments)] // one call site; the pieces are all distinct state
    pub(super) async fn run_sync(
        self: &Arc<Self>,
        dest: &Dest,
        name: &str,
        slot: &AppSlot,
        work: &mut AppWork,
        status: &mut ApplicationStatus,
        desired: &[Desired],
        hooks: &[plan::Hook],
        extras: &[Tracked],
        options: &PlanOptions,
        run: &ManualOp,
        resume: Option<WaitingOp>,
        sha: &str,
        spec: &crate::model::ApplicationSpec,
        refused: Option<String>,
    ) -> SyncEnd {
        let started = run.started_at.clone();
        let retried = resume.as_ref().map_or(0, |w| w.retried);
        let mut op = OperationState {
            phase: OperationPhase::Running,
            message: "syncing".into(),
            started_at: started.clone(),
            finished_at: None,
            sync_result: None,
            operation: Some(run.operation(sha)),
            retry_count: i64::from(retried),
        };
        let (mut stand, mut results, recorded, mut hook_uids, mut failure) = match resume {
            Some(w) => (w.progress, w.resources, w.message, w.hook_uids, w.failure),
            None => {
                if !run.dry_run {
                    self.record_operation(name, &op);
                }
                status.operation_state = Some(op.clone());
                self.publish(name, slot, status.clone());
                (
                    Progress::Start,
                    Vec::new(),
                    String::new(),
                    BTreeMap::new(),
                    None,
                )
            }
        };
        let done_before = results.len();

        // Progress, resource by resource, for the API and the event stream;
        // a sync shorter than PROGRESS_EVERY publishes none.
        let progress_state = Mutex::new((results.clone(), Instant::now()));
        let running = op.clone();
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
            let mut state = running.clone();
            state.message = format!(
                "syncing: {} of the planned steps done",
                resources.len() - done_before
            );
            state.sync_result = Some(SyncResult {
                revision: sha.to_string(),
                resources,
            });
            slot.status
                .write()
                .expect("status lock is never poisoned")
                .operation_state = Some(state);
            if self.is_current(name, slot) {
                let _ = self.events.send(AppEvent {
                    type_: "MODIFIED",
                    application: self.document(name, slot),
                });
            }
        };

        let planned = match refused {
            Some(why) => Err(why),
            None => {
                plan::plan_with_hooks(desired, hooks, extras, options).map_err(|e| e.to_string())
            }
        };
        let (phase, message) = match planned {
            Err(e) => (OperationPhase::Failed, e),
            Ok(plan) if run.dry_run => {
                let steps = plan.steps().count();
                (
                    OperationPhase::Succeeded,
                    format!("dry run: {steps} steps planned, nothing changed"),
                )
            }
            Ok(plan) => {
                // A failure whose SyncFail hooks are not created yet.
                let mut failed: Option<String> = None;
                let outcome = loop {
                    if run.cancel.is_cancelled() {
                        break (OperationPhase::Failed, "Operation terminated".into());
                    }
                    // A failed sync runs its SyncFail hooks, as a phase of
                    // its own: it ends once they have (`Next::Failed`).
                    if let Some(message) = failed.take() {
                        let Some(fail) = &plan.fail else {
                            break (OperationPhase::Failed, message);
                        };
                        let ran = self.execute(name, dest, run, &[fail], &progress).await;
                        hook_uids.extend(ran.hooks);
                        results.extend(ran.resources);
                        match ran.failure {
                            Some(_) if ran.terminated => {
                                break (OperationPhase::Failed, "Operation terminated".into());
                            }
                            // One that could not be created is not waited for.
                            Some(f) => {
                                break (
                                    OperationPhase::Failed,
                                    format!("{message}; a SyncFail hook failed to apply: {f}"),
                                );
                            }
                            None => {}
                        }
                        stand = Progress::Failing;
                        failure = Some(message);
                        continue;
                    }
                    // The live state is read only when a wave or a hook is
                    // waited for: a sync of one wave without hooks costs
                    // what it did before waves existed.
                    // (A plan made again while prunes wait leaves out what
                    // is being deleted: the prune waves left decide.)
                    let prunes_wait = match stand {
                        Progress::Pruning { wave } => plan.prunes.iter().any(|p| p.wave < wave),
                        _ => false,
                    };
                    let waits = stand != Progress::Start
                        && (plan.waves.len() > 1 || prunes_wait || !hook_uids.is_empty());
                    let live = if waits {
                        self.readiness(dest, name, &hook_uids)
                    } else {
                        BTreeMap::new()
                    };
                    let next = match waves::next(&plan, stand, &live) {
                        // Prune=confirm: the prunes (all of them, and what
                        // comes after) wait until a person confirms them.
                        Next::Prune(_)
                            if !plan.prunes_to_confirm().is_empty()
                                && !slot.prunes_confirmed(&run.started_at) =>
                        {
                            Next::Wait {
                                next: 0,
                                message: plan::confirmation_message(&plan.prunes_to_confirm()),
                            }
                        }
                        next => next,
                    };
                    let stages: Vec<&plan::Stage> = match next {
                        Next::Apply(wave) => {
                            stand = Progress::Applied {
                                phase: wave.phase,
                                wave: wave.wave,
                            };
                            wave.stages.iter().collect()
                        }
                        Next::Prune(None) => {
                            stand = Progress::Pruned;
                            Vec::new()
                        }
                        Next::Prune(Some(prunes)) => {
                            stand = Progress::Pruning { wave: prunes.wave };
                            vec![&prunes.stage]
                        }
                        Next::Done => {
                            break (
                                OperationPhase::Succeeded,
                                "successfully synced (all tasks run)".into(),
                            );
                        }
                        Next::Fail { message } => {
                            failed = Some(message);
                            continue;
                        }
                        Next::Failed => {
                            let message = failure.take();
                            break (
                                OperationPhase::Failed,
                                message.unwrap_or_else(|| "sync failed".into()),
                            );
                        }
                        Next::Wait { message, .. } => {
                            op.message = match &failure {
                                Some(why) => format!("{why}; {message}"),
                                None => message,
                            };
                            hook_results(&mut results, &live, &hook_uids);
                            op.sync_result = Some(SyncResult {
                                revision: sha.to_string(),
                                resources: results.clone(),
                            });
                            if op.message != recorded {
                                tracing::info!(app = %name, message = %op.message, "sync waits for a wave");
                                self.record_operation(name, &op);
                            }
                            status.operation_state = Some(op.clone());
                            work.waiting = Some(WaitingOp {
                                run: run.clone(),
                                sha: sha.to_string(),
                                progress: stand,
                                resources: results,
                                message: op.message,
                                hook_uids,
                                failure,
                                retried,
                                not_before: None,
                            });
                            self.enqueue_after(name, WAVE_RECHECK);
                            return SyncEnd::Waiting;
                        }
                    };
                    let outcome = self.execute(name, dest, run, &stages, &progress).await;
                    // An apply response is what a dry run would now predict:
                    // the comparison after the sync needs no request for these.
                    let by_key: BTreeMap<&ResourceKey, &Value> =
                        desired.iter().map(|d| (&d.key, &d.object)).collect();
                    for (key, version, print) in outcome.applied {
                        if let Some(object) = by_key.get(&key) {
                            let hash = hash_json(object);
                            work.compared.insert(key, (hash, version, print, false));
                        }
                    }
                    hook_uids.extend(outcome.hooks);
                    results.extend(outcome.resources);
                    match outcome.failure {
                        Some(_) if outcome.terminated => {
                            break (OperationPhase::Failed, "Operation terminated".into());
                        }
                        Some(f) => {
                            failed = Some(format!("one or more objects failed to apply: {f}"))
                        }
                        None => {}
                    }
                };
                // Then hooks go as their delete policies say.
                let live = if hook_uids.is_empty() {
                    BTreeMap::new()
                } else {
                    self.readiness(dest, name, &hook_uids)
                };
                hook_results(&mut results, &live, &hook_uids);
                self.delete_hooks(dest, name, hooks, &results, &hook_uids)
                    .await;
                outcome
            }
        };
        let mut message = message;
        // A failed attempt is tried again from the first wave, at the same
        // revision, while the retry strategy allows.
        if phase == OperationPhase::Failed
            && !run.dry_run
            && !run.cancel.is_cancelled()
            && let Some(strategy) = &run.retry
        {
            match decide::retry_wait(strategy, retried) {
                Ok(Some(wait)) => {
                    let attempt = retried + 1;
                    op.retry_count = i64::from(attempt);
                    op.message = format!(
                        "retrying (attempt {attempt}) in {:.1}s after: {message}",
                        wait.as_secs_f64()
                    );
                    op.sync_result = Some(SyncResult {
                        revision: sha.to_string(),
                        resources: results,
                    });
                    tracing::info!(app = %name, message = %op.message, "sync failed; retrying");
                    self.record_operation(name, &op);
                    status.operation_state = Some(op.clone());
                    work.waiting = Some(WaitingOp {
                        run: run.clone(),
                        sha: sha.to_string(),
                        progress: Progress::Start,
                        resources: Vec::new(),
                        message: op.message,
                        hook_uids: BTreeMap::new(),
                        failure: None,
                        retried: attempt,
                        not_before: Some(self.clock.now() + wait),
                    });
                    self.enqueue_after(name, wait);
                    return SyncEnd::Waiting;
                }
                Ok(None) => {}
                Err(e) => message = format!("{message} (not retried: syncPolicy.retry: {e})"),
            }
        }
        op.phase = phase;
        op.message = message;
        op.finished_at = Some(now());
        op.sync_result = Some(SyncResult {
            revision: sha.to_string(),
            resources: results,
        });
        let succeeded = phase == OperationPhase::Succeeded;
        let mut recorded = false;
        if !run.dry_run && succeeded {
            work.policy.last_synced = Some(sha.to_string());
            let (revision, revisions) = manifests::revisions(spec, sha);
            let entry = RevisionHistory {
                id: 0,
                revision,
                deployed_at: now(),
                deploy_started_at: Some(started),
                initiated_by: run.initiated_by.clone(),
                source: spec.source.clone().filter(|_| !spec.is_multi_source()),
                revisions,
                sources: spec.sources.clone(),
            };
            let limit = spec.history_limit();
            let previous = self
                .store
                .history(name)
                .ok()
                .and_then(|h| h.last().map(RevisionHistory::joined_revision));
            // The record and the operation's end in one write: a crash
            // leaves both or neither.
            match self.store.append_history_ending(name, entry, limit, &op) {
                Ok(entry) => {
                    recorded = true;
                    self.record_deployment(name, spec, previous, &entry).await;
                }
                Err(e) => tracing::error!(app = %name, error = %e, "cannot record history"),
            }
        } else if !run.dry_run && !run.cancel.is_cancelled() {
            // A terminated operation is the user's decision, not a failure.
            self.record_sync_failed(name);
        }
        self.end_operation(name, slot, run.id, &op, recorded);
        if !run.dry_run {
            let (namespace, short) = self.namespaces.split(name);
            let took = time::OffsetDateTime::parse(
                &op.started_at,
                &time::format_description::well_known::Rfc3339,
            )
            .map_or(0.0, |at| {
                (time::OffsetDateTime::now_utc() - at)
                    .as_seconds_f64()
                    .max(0.0)
            });
            self.options.metrics.synced(
                crate::metrics::SyncLabels {
                    name: short.to_string(),
                    namespace: namespace.to_string(),
                    project: spec.project.clone(),
                    dest_server: spec.destination.server.clone().unwrap_or_default(),
                    phase: format!("{:?}", op.phase),
                },
                took,
            );
        }
        tracing::info!(app = %name, revision = %sha, phase = ?op.phase, message = %op.message, "sync finished");
        status.operation_state = Some(op);
        SyncEnd::Ended { succeeded }
    }

    /// Starts a user's sync or rollback as an operation the controller owns
    /// and returns at once, with the operation `Running`. Refused when the
    /// application runs one already: the check and the start happen under
    /// one lock, so of two concurrent requests exactly one starts.
    pub(super) fn start_operation(
        self: &Arc<Self>,
        name: &str,
        mut op: ManualOp,
        rollback: Option<RollbackPin>,
    ) -> Result<Application, ServiceError> {
        let slot = self
            .slot(name)
            .ok_or_else(|| ServiceError::NotFound(name.to_string()))?;
        if slot.deleting() {
            return Err(ServiceError::BadRequest(format!(
                "application {name} is being deleted; it is not synced any more"
            )));
        }
        if !op.dry_run && !self.owns(name) {
            return Err(ServiceError::NotLeader(
                self.options.shards.lease_of(name).holder(),
            ));
        }
        op.id = self.operation_ids.fetch_add(1, Ordering::Relaxed) + 1;
        op.started_at = now_precise();
        let state = OperationState {
            phase: OperationPhase::Running,
            message: "waiting to start".into(),
            started_at: op.started_at.clone(),
            finished_at: None,
            sync_result: None,
            operation: Some(op.operation(op.revision.as_deref().unwrap_or_default())),
            retry_count: 0,
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
    pub(super) async fn run_operation(self: Arc<Self>, name: String, op: ManualOp) {
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
        // Parked between two waves: later reconciles carry it on.
        if slot
            .work
            .lock()
            .await
            .waiting
            .as_ref()
            .is_some_and(|w| w.run.id == op.id)
        {
            return;
        }
        if slot.running().as_ref().is_none_or(|r| r.id != op.id) {
            return;
        }
        let message = if op.cancel.is_cancelled() {
            "Operation terminated".to_string()
        } else {
            match outcome {
                Err(e) => format!("nothing was synced: {e}"),
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
            state.operation = Some(op.operation(op.revision.as_deref().unwrap_or_default()));
        }
        tracing::info!(app = %name, message = %state.message, "operation ended before it synced");
        self.end_operation(&name, &slot, op.id, &state, false);
        let mut status = slot.status();
        status.operation_state = Some(state);
        self.publish(&name, &slot, status);
    }

    /// Confirms the prunes that wait for it (`Prune=confirm`) in the
    /// application's operation, and in any started until now: as the
    /// `argocd.argoproj.io/deletion-approved` annotation set to the time
    /// now. The application is compared at once, so a waiting operation
    /// goes on.
    pub(super) fn confirm_prune(&self, name: &str) -> Result<Application, ServiceError> {
        let slot = self
            .slot(name)
            .ok_or_else(|| ServiceError::NotFound(name.to_string()))?;
        *slot
            .prunes_confirmed
            .lock()
            .expect("confirmation lock is never poisoned") = Some(now());
        tracing::info!(app = %name, "prunes confirmed on request");
        self.enqueue(name);
        Ok(self.document(name, &slot))
    }

    /// Terminates the running operation of an application (Argo CD's
    /// terminate-op): no further step starts, and the operation ends Failed.
    /// One waiting for a wave ends at the reconcile this queues.
    pub(super) fn terminate_operation(&self, name: &str) -> Result<Application, ServiceError> {
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
        self.enqueue(name);
        Ok(self.document(name, &slot))
    }
}
