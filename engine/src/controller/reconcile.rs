//! The reconcile pipeline of one application: source, render, prepare, watch,
//! compare, decide, and (through `operation`) sync.

use plumb_core::decide::{self, Decision};
use plumb_core::model::{ApplicationSpec, SYNC_OPTIONS_ANNOTATION, annotation, has_option};
use plumb_core::syncopts::{self, ObjectOptions};

use super::error::{self, ReconcileError};
use super::operation::SyncEnd;
use super::status::resource_status;
use super::*;
use crate::destinations::{Dest, Status};

/// Dry runs one application has in flight at once.
pub(super) const COMPARE_CONCURRENCY: usize = 16;

/// What a comparison starts from.
struct Ready {
    sha: String,
    spec_hash: u64,
    /// The hash of the ignoreDifferences rules and the project the
    /// comparison ran under.
    checks: u64,
    prepared: Vec<Prepared>,
    rules: Arc<IgnoreRules>,
    hooks: Vec<PreparedHook>,
    /// The cluster the application deploys to.
    dest: Arc<Dest>,
}

/// A hook of the render, prepared like the other objects but never
/// compared: a sync creates it in its phase.
pub(super) struct PreparedHook {
    prepared: Prepared,
    spec: plumb_core::hooks::HookSpec,
    /// `metadata.generateName`, when it has no name: each operation names
    /// it anew (the prepared name is the prefix until then).
    generate_name: Option<String>,
}

impl PreparedHook {
    /// The hooks one operation runs (one per phase of each hook), named
    /// for that operation: a `generateName` hook gets the prefix and a
    /// suffix from `seed`.
    fn for_operation(hooks: &[PreparedHook], app: &str, seed: &str) -> Vec<plan::Hook> {
        use plumb_core::hooks::DeletePolicy;
        let mut out = Vec::new();
        for h in hooks {
            let mut key = h.prepared.key.clone();
            let mut object = h.prepared.object.clone();
            if let Some(prefix) = &h.generate_name {
                key.name = plumb_core::hooks::generated_name(prefix, seed);
                if let Some(meta) = object.get_mut("metadata").and_then(Value::as_object_mut) {
                    meta.remove("generateName");
                    meta.insert("name".into(), json!(key.name));
                }
                if let Some(annotations) = object
                    .pointer_mut("/metadata/annotations")
                    .and_then(Value::as_object_mut)
                {
                    annotations.insert(TRACKING_ANNOTATION.into(), json!(key.tracking_id(app)));
                }
            }
            for phase in &h.spec.phases {
                out.push(plan::Hook {
                    key: key.clone(),
                    object: object.clone(),
                    phase: *phase,
                    wave: h.spec.wave,
                    recreate: h.spec.delete.contains(&DeletePolicy::BeforeHookCreation),
                    delete_succeeded: h.spec.delete.contains(&DeletePolicy::HookSucceeded),
                    delete_failed: h.spec.delete.contains(&DeletePolicy::HookFailed),
                });
            }
        }
        out
    }
}

/// The desired objects of an application, ready to compare: namespace
/// defaulted by scope, tracking annotation set, kind resolved (`None` while a
/// CRD of the same render is not yet served).
pub(super) struct Prepared {
    pub(super) key: ResourceKey,
    pub(super) object: Value,
    pub(super) kind: Option<Kind>,
}

/// `metadata.<field>` of a manifest as a map, created empty when absent.
fn metadata_map<'a>(
    object: &'a mut Value,
    field: &str,
    origin: &str,
) -> Result<&'a mut serde_json::Map<String, Value>, ReconcileError> {
    object
        .pointer_mut("/metadata")
        .and_then(Value::as_object_mut)
        .map(|meta| meta.entry(field).or_insert_with(|| json!({})))
        .and_then(Value::as_object_mut)
        .ok_or_else(|| {
            ReconcileError::Invalid(format!("{origin}: metadata.{field} is not a mapping"))
        })
}

/// Application objects among an application's desired objects (app of
/// apps) that Plumb will not manage: they are applied like any object, but
/// only Application objects in the namespaces Plumb watches (`--namespace`
/// and `--app-namespaces`; none with `--no-cluster-apps`) are reconciled.
/// One warning condition each, in the spirit of Argo CD's "application
/// destination namespace is not permitted".
fn unmanaged_children(prepared: &[Prepared], managed: Option<&AppNamespaces>) -> Vec<Condition> {
    prepared
        .iter()
        .filter(|p| p.key.group == "argoproj.io" && p.key.kind == "Application")
        .filter(|p| !managed.is_some_and(|m| m.manages(&p.key.namespace)))
        .map(|p| {
            let why = match managed {
                Some(m) if m.has_others() => format!(
                    "Plumb manages Application objects in namespace {} and those of --app-namespaces only",
                    m.home()
                ),
                Some(m) => format!(
                    "Plumb manages Application objects in namespace {} only (--namespace)",
                    m.home()
                ),
                None => "Plumb does not watch Application objects (--no-cluster-apps)".to_string(),
            };
            condition(
                "UnmanagedApplicationWarning",
                format!(
                    "child Application {}/{} is applied as a plain object but not managed: {why}",
                    p.key.namespace, p.key.name
                ),
            )
        })
        .collect()
}

/// With `--managed-namespaces` (`managed`, sorted): why the destination
/// namespace or an object is out of reach (outside them, or of a
/// cluster-scoped kind), naming the first few; `None` when all are within.
fn unmanaged_objects<'a>(
    managed: &[String],
    by: &str,
    destination: &str,
    objects: impl Iterator<Item = &'a Prepared>,
) -> Option<String> {
    let within = |ns: &str| managed.binary_search_by(|m| m.as_str().cmp(ns)).is_ok();
    let list = managed.join(", ");
    if !destination.is_empty() && !within(destination) {
        return Some(format!(
            "namespace {destination} is not managed: Plumb manages namespaces {list} only ({by})"
        ));
    }
    let mut outside = Vec::new();
    let mut count = 0usize;
    for p in objects {
        let namespaced = p
            .kind
            .as_ref()
            .map_or(!p.key.namespace.is_empty(), |k| k.namespaced);
        let why = if !namespaced {
            format!("{} {} is cluster-scoped", p.key.kind, p.key.name)
        } else if !within(&p.key.namespace) {
            format!(
                "{} {}/{} is in namespace {}",
                p.key.kind, p.key.namespace, p.key.name, p.key.namespace
            )
        } else {
            continue;
        };
        count += 1;
        if outside.len() < 5 {
            outside.push(why);
        }
    }
    if count == 0 {
        return None;
    }
    let more = if count > outside.len() {
        format!(" (and {} more)", count - outside.len())
    } else {
        String::new()
    };
    Some(format!(
        "{}{more}: Plumb manages namespaces {list} only ({by})",
        outside.join(", ")
    ))
}

/// Argo CD's condition for objects whose custom health rule failed (their
/// health is Unknown with why): the first, and how many more. Only shown:
/// it changes nothing of what is synced or pruned.
fn health_error(
    prepared: &[Prepared],
    tracked: &BTreeMap<ResourceKey, LiveObject>,
) -> Option<Condition> {
    let mut failed = prepared
        .iter()
        .filter_map(|p| Some((&p.key, tracked.get(&p.key)?)))
        .filter(|(_, live)| live.health_failed());
    let (key, live) = failed.next()?;
    let why = live
        .health()
        .map(|h| h.message.as_str())
        .unwrap_or_default();
    let more = failed.count();
    let mut message = format!(
        "error setting app health: failed to get resource health for {:?} with name {:?} in namespace {:?}: {why}",
        key.kind, key.name, key.namespace
    );
    if more > 0 {
        message.push_str(&format!(" (and {more} more)"));
    }
    Some(condition("ComparisonError", message))
}

/// The application's `spec.syncPolicy.syncOptions`.
fn app_options(spec: &ApplicationSpec) -> impl Iterator<Item = &str> + Clone {
    spec.sync_policy
        .iter()
        .flat_map(|p| p.sync_options.iter().map(String::as_str))
}

/// One object's options under the application's; an option that cannot be
/// read counts as unset here (the plan refuses the sync, and
/// [`option_errors`] says why).
pub(super) fn object_options(spec: &ApplicationSpec, object: &Value) -> ObjectOptions {
    syncopts::of_object(app_options(spec), object).unwrap_or_default()
}

/// An `InvalidSpecError` condition for each sync option Plumb cannot read,
/// in the application's `syncOptions` or an object's annotation: nothing
/// is synced until they are fixed (the plan refuses), and this says so
/// before anyone asks for a sync.
fn option_errors(spec: &ApplicationSpec, prepared: &[Prepared]) -> Vec<Condition> {
    let nothing = "nothing is synced until it is fixed";
    if let Err((_, e)) = syncopts::object_options(app_options(spec), None) {
        return vec![condition(
            "InvalidSpecError",
            format!("spec.syncPolicy.syncOptions: {e}: {nothing}"),
        )];
    }
    prepared
        .iter()
        .filter_map(|p| {
            let (_, e) = syncopts::of_object(app_options(spec), &p.object).err()?;
            Some(condition(
                "InvalidSpecError",
                format!(
                    "{}: annotation {SYNC_OPTIONS_ANNOTATION}: {e}: {nothing}",
                    p.key
                ),
            ))
        })
        .collect()
}

impl Inner {
    /// Compares an application and syncs it when asked or when its policy
    /// says so; publishes the result.
    pub(super) async fn reconcile(
        self: &Arc<Self>,
        name: &str,
        trigger: Trigger,
    ) -> Result<(), ReconcileError> {
        let slot = self
            .slot(name)
            .ok_or_else(|| ReconcileError::NotFound(name.to_string()))?;
        // With several shards, another replica's applications are neither
        // compared nor synced here.
        if !self.compares(name) {
            return Ok(());
        }
        if trigger.op.is_none() {
            self.take_cr_operation(name, &slot);
        }
        let mut work = slot.work.lock().await;
        if !work.loaded {
            work.loaded = true;
            work.policy.last_synced = self
                .store
                .history(name)
                .ok()
                .and_then(|h| h.last().map(RevisionHistory::joined_revision));
        }
        self.reconcile_locked(name, &slot, &mut work, trigger).await
    }

    pub(super) async fn reconcile_locked(
        self: &Arc<Self>,
        name: &str,
        slot: &AppSlot,
        work: &mut AppWork,
        trigger: Trigger,
    ) -> Result<(), ReconcileError> {
        let declared = slot.declared();
        if self.finalize_deleted(name, slot, work, &declared).await {
            return Ok(());
        }
        // A sync terminated while it waited for a wave ends here, whatever
        // the rest of this reconcile meets (a render that fails, say).
        if work
            .waiting
            .as_ref()
            .is_some_and(|w| w.run.cancel.is_cancelled())
        {
            self.end_waiting(name, slot, work, "Operation terminated");
        }
        let spec = &declared.app.spec;
        let destination = &spec.destination;
        let mut status = slot.status();
        status
            .conditions
            .retain(|c| c.type_ != "UnsupportedFieldWarning");
        let mut warnings: Vec<Condition> = declared
            .unsupported
            .iter()
            .filter(|f| !f.starts_with("spec.source"))
            .map(|f| {
                condition(
                    "UnsupportedFieldWarning",
                    format!("field {f} is not supported yet; it is ignored"),
                )
            })
            .collect();
        status.rollback = self.store.pin(name)?;
        status.operation_state = self.store.operation(name).ok().flatten();
        let op = trigger.op.clone();

        let Ready {
            sha,
            spec_hash,
            checks,
            prepared,
            hooks,
            rules,
            dest,
        } = match self.ready(name, work, &declared, &status, &trigger).await {
            Ok(Some(ready)) => ready,
            Ok(None) => return Ok(()),
            Err((error, revision)) => {
                work.last_key = None;
                status.sync.status = SyncStatusCode::Unknown;
                status.health = Health::new(HealthStatusCode::Unknown, "");
                let mut conditions = vec![condition(error.condition_type(), error.to_string())];
                conditions.append(&mut warnings);
                // A render error at the last revision fetched does not hide
                // that fetching a newer one fails.
                let shown = error.to_string();
                let sources = if revision.is_some() {
                    spec.all_sources()
                } else {
                    Vec::new()
                };
                for source in &sources {
                    if let Some(fetch) = self
                        .fetch_error(&source.repo_url)
                        .filter(|fetch| !shown.contains(fetch.as_str()))
                    {
                        conditions.push(condition(
                            "ComparisonError",
                            format!("{fetch}; showing the last revision fetched"),
                        ));
                    }
                }
                status.conditions = conditions;
                status.reconciled_at = Some(now());
                if let Some(revision) = revision {
                    (status.sync.revision, status.sync.revisions) =
                        manifests::revisions(spec, &revision);
                }
                self.publish(name, slot, status);
                // Transient failures come back by themselves, backing off;
                // permanent ones wait for a change of the application or Git.
                if error.is_spurious() {
                    self.enqueue_after_jittered(name, error::retry_after(work.failures));
                    work.failures = work.failures.saturating_add(1);
                }
                return Err(error);
            }
        };
        work.failures = 0;
        let managed_namespaces = self.options.watch_cluster_apps.then_some(&*self.namespaces);
        let unmanaged = unmanaged_children(&prepared, managed_namespaces);
        for c in &unmanaged {
            if !status.conditions.iter().any(|old| old.message == c.message) {
                tracing::warn!(app = %name, "{}", c.message);
            }
        }
        warnings.extend(unmanaged);
        warnings.extend(option_errors(spec, &prepared));
        // A repository whose fetches fail: the application keeps the
        // revision fetched before (nothing is pruned for it) and says so.
        for source in spec.all_sources() {
            if let Some(error) = self.fetch_error(&source.repo_url) {
                warnings.push(condition(
                    "ComparisonError",
                    format!("{error}; showing the last revision fetched, {sha}"),
                ));
            }
        }

        // Compare, then sync when asked or when policy says so, then compare
        // again so the status shows the outcome.
        let mut synced_now = false;
        let mut held = false;
        let mut waiting = false;
        loop {
            let live_generation = dest.live.generation(name);
            let tracked = dest.live.tracked(name);
            let (modified, errors) = self
                .compare(&dest, work, spec, &prepared, &tracked, &rules)
                .await;
            // Hooks are created by syncs and deleted by their policies:
            // never compared, listed nor pruned.
            let wanted: HashSet<&ResourceKey> = prepared.iter().map(|p| &p.key).collect();
            let extras: Vec<Tracked> = tracked
                .iter()
                .filter(|(_, v)| !v.is_hook())
                .filter(|(k, _)| !wanted.contains(k))
                .map(|(k, v)| Tracked {
                    key: k.clone(),
                    api_version: v.api_version().to_string(),
                    sync_options: v.sync_options().map(str::to_string),
                    uid: v.uid().to_string(),
                    wave: v.wave(),
                })
                .collect();
            // Extras already being deleted (a pruned child Application
            // whose finalizer is deleting its own resources, an object
            // with finalizers of its own) are still shown as needing
            // pruning, but no sync deletes them again or starts for them.
            let going = |t: &&Tracked| tracked.get(&t.key).is_some_and(|l| l.deleting());
            let prunable: Vec<Tracked> = extras.iter().filter(|t| !going(t)).cloned().collect();

            let mut resources: Vec<ResourceStatus> = Vec::new();
            let mut healths = Vec::new();
            for (p, m) in prepared.iter().zip(&modified) {
                let live = tracked.get(&p.key);
                let h = match live {
                    None => Health::new(HealthStatusCode::Missing, ""),
                    Some(l) => l
                        .health()
                        .cloned()
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
                let h = live.and_then(|l| l.health().cloned());
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
            // IgnoreExtraneous: an object Git no longer has that does not
            // count against the sync status, nor start an automated sync.
            let extraneous =
                |t: &Tracked| tracked.get(&t.key).is_none_or(|l| !l.ignore_extraneous());
            let out_of_sync = modified.iter().any(|m| *m) || extras.iter().any(extraneous);
            let (revision, revisions) = manifests::revisions(spec, &sha);
            status.sync = SyncStatus {
                status: if out_of_sync {
                    SyncStatusCode::OutOfSync
                } else {
                    SyncStatusCode::Synced
                },
                revision,
                revisions,
            };
            let worst = health::aggregate(healths);
            status.health = Health::new(worst, "");
            status.resources = resources;
            status.summary.images = plumb_core::summary::images(prepared.iter().map(|p| &p.object));
            let mut conditions: Vec<Condition> = errors
                .into_iter()
                .map(|e| condition("ComparisonError", e))
                .collect();
            conditions.append(&mut warnings.clone());
            conditions.extend(health_error(&prepared, &tracked));
            conditions.extend(self.shared_warnings(&dest, name, &prepared, &tracked));
            status.conditions = conditions;
            status.reconciled_at = Some(now());

            if synced_now {
                if waiting {
                    // Compared again at every reconcile until the operation
                    // ends: each may let the next wave start.
                    work.last_key = None;
                } else if prepared.iter().any(|p| p.kind.is_none()) {
                    // Kinds a CRD of this sync introduced can only be watched
                    // and compared now that the CRD is served.
                    work.last_key = None;
                    self.enqueue(name);
                } else {
                    work.last_key = Some((sha.clone(), spec_hash, live_generation, checks));
                }
                break;
            }

            // Decide: an operation waiting for a wave goes on; a user's
            // operation runs; otherwise the policy says.
            let automated = spec.automated().cloned();
            // A retry waits out its backoff.
            if let Some(at) = work.waiting.as_ref().and_then(|w| w.not_before)
                && let Some(left) = at.checked_duration_since(self.clock.now())
                && !left.is_zero()
            {
                self.enqueue_after(name, left);
                work.last_key = None;
                break;
            }
            let resume = work.waiting.take();
            let run = match (&resume, &op) {
                (Some(w), _) => Some(w.run.clone()),
                (None, Some(o)) => Some(o.clone()),
                (None, None) => {
                    let input = decide::Input {
                        automated: automated.as_ref(),
                        pinned: status.rollback.is_some(),
                        revision: &sha,
                        modified: modified.iter().any(|m| *m),
                        extras: prunable.iter().any(extraneous),
                    };
                    // The cluster answers again: a sync that failed while
                    // it did not (or failed of it after) is retried now,
                    // once, not after its backoff.
                    if let Some(failure) = work.policy.failure.as_mut()
                        && slot.reconnected.swap(false, Ordering::SeqCst)
                    {
                        tracing::info!(app = %name, "the cluster answers again; the failed automated sync is retried now");
                        failure.retry_at = self.clock.now();
                    }
                    let (decision, memory) = decide::decide(&input, &work.policy, self.clock.now());
                    // A RollingSync holds the sync until its step opens;
                    // the policy's memory stays as if nothing was decided.
                    let waiting = match decision {
                        Decision::Sync { .. } => self.rollout_gate(name, &declared.app, &sha),
                        _ => None,
                    };
                    if let Some(why) = waiting {
                        status.conditions.push(condition("RolloutWaiting", why));
                        held = true;
                    } else {
                        work.policy = memory;
                    }
                    match decision {
                        _ if held => None,
                        Decision::Idle => None,
                        Decision::RequeueAfter(delay) => {
                            self.enqueue_after(name, delay);
                            work.last_key = None;
                            break;
                        }
                        Decision::Sync { prune, self_heal } => {
                            let differing: Vec<String> = prepared
                                .iter()
                                .zip(&modified)
                                .filter(|(_, m)| **m)
                                .map(|(p, _)| p.key.to_string())
                                .collect();
                            tracing::debug!(app = %name, self_heal, ?differing, prune = extras.len(), "automated sync");
                            Some(ManualOp {
                                prune,
                                initiated_by: InitiatedBy {
                                    username: String::new(),
                                    automated: true,
                                },
                                retry: spec.sync_policy.as_ref().and_then(|p| p.retry.clone()),
                                ..ManualOp::default()
                            })
                        }
                    }
                }
            };
            let Some(mut run) = run else {
                // A held application compares again when its step opens.
                work.last_key = (!held).then(|| (sha.clone(), spec_hash, live_generation, checks));
                break;
            };
            if resume.is_none() && run.initiated_by.automated && !self.owns(name) {
                // Another replica syncs this application; this one has
                // compared it (a new leader compares again).
                work.last_key = Some((sha.clone(), spec_hash, live_generation, checks));
                break;
            }
            if resume.is_none()
                && run.initiated_by.automated
                && !self.begin_automated(slot, &mut run)
            {
                // A user's operation is waiting for this reconcile; it runs
                // next and compares again.
                work.last_key = None;
                break;
            }
            // The operation's own sync options (and a forced strategy)
            // count after the application's.
            let op_spec = run.spec_for(spec);
            let spec = &*op_spec;
            let plan_options = PlanOptions {
                prune: run.prune,
                prune_last: spec.sync_option("PruneLast"),
                apply_out_of_sync_only: spec.sync_option("ApplyOutOfSyncOnly"),
                allow_empty: automated.as_ref().is_some_and(|a| a.allow_empty),
                // With --managed-namespaces the namespace exists (its Role
                // lives there) and Plumb may not read namespaces.
                create_namespace: spec
                    .sync_option("CreateNamespace")
                    .then(|| destination.namespace.clone())
                    .flatten()
                    .filter(|n| !n.is_empty() && dest.live.namespaces().is_none()),
                prune_propagation: plan::PrunePropagation::from_options(app_options(spec)),
                sync_options: app_options(spec).map(str::to_string).collect(),
            };
            let mut desired: Vec<Desired> = prepared
                .iter()
                .zip(&modified)
                .map(|(p, m)| Desired {
                    key: p.key.clone(),
                    object: p.object.clone(),
                    modified: *m,
                })
                .collect();
            let respect_all = spec.sync_option("RespectIgnoreDifferences");
            let unrespected = self
                .respect_ignored(&dest, &mut desired, &prepared, &rules, respect_all)
                .await;
            // Applying would overwrite fields the rules keep: the sync
            // fails rather than doing that.
            let mut refused = (!unrespected.is_empty()).then(|| {
                format!(
                    "RespectIgnoreDifferences: {}; nothing was applied",
                    unrespected.join("; ")
                )
            });
            // FailOnSharedResource: checked when the operation starts,
            // before anything is applied (not again between its waves).
            if refused.is_none()
                && resume.is_none()
                && syncopts::fail_on_shared_resource(app_options(spec)).unwrap_or(false)
            {
                refused = self.shared_refusal(&dest, name, &prepared, &tracked).await;
            }
            // A selective sync applies and prunes only the objects it names.
            desired.retain(|d| run.includes(&d.key));
            let prunable: Vec<Tracked> = prunable
                .iter()
                .filter(|t| run.includes(&t.key))
                .cloned()
                .collect();
            if !run.resources.is_empty()
                && desired.is_empty()
                && prunable.is_empty()
                && refused.is_none()
            {
                refused = Some(
                    "none of the resources to sync is part of the application; nothing was applied"
                        .into(),
                );
            }
            let seed = format!("{}/{}", run.started_at, run.id);
            let run_hooks = if run.runs_hooks() {
                PreparedHook::for_operation(&hooks, name, &seed)
            } else {
                Vec::new()
            };
            let end = self
                .run_sync(
                    &dest,
                    name,
                    slot,
                    work,
                    &mut status,
                    &desired,
                    &run_hooks,
                    &prunable,
                    &plan_options,
                    &run,
                    resume,
                    &sha,
                    spec,
                    refused,
                )
                .await;
            synced_now = true;
            let SyncEnd::Ended { succeeded } = end else {
                waiting = true;
                continue;
            };
            if run.initiated_by.automated {
                let (memory, retry) =
                    decide::after_automated_sync(&work.policy, &sha, succeeded, self.clock.now());
                work.policy = memory;
                if let Some(wait) = retry {
                    self.enqueue_after(name, wait);
                }
            }
            if run.dry_run {
                break;
            }
        }
        self.publish(name, slot, status);
        Ok(())
    }

    /// Everything a comparison needs: the source fetched, the revision
    /// resolved, the folder rendered and prepared, every kind watched.
    /// `None` when nothing changed since the last comparison; on failure,
    /// the error and the revision it happened at, when known.
    async fn ready(
        self: &Arc<Self>,
        name: &str,
        work: &mut AppWork,
        declared: &Declared,
        status: &ApplicationStatus,
        trigger: &Trigger,
    ) -> Result<Option<Ready>, (ReconcileError, Option<String>)> {
        let spec = &declared.app.spec;
        // A source field Plumb does not know could change what is deployed:
        // nothing is rendered rather than something else.
        let source_fields = declared.unsupported_source_fields();
        if !source_fields.is_empty() {
            let error = ReconcileError::UnsupportedSource(source_fields.join(", "));
            return Err((error, None));
        }
        // The project's rules, from the watch (no request): an application
        // its project refuses is neither rendered nor compared, synced or
        // pruned.
        let project = self.project(&declared.app);
        let app_namespace = match declared.origin {
            Origin::Cluster => declared.app.metadata.namespace.as_deref(),
            Origin::File(_) => None,
        };
        // The destination through the catalogue of clusters (by server or
        // by name); the project's rules see both, as Argo CD's do.
        let project_name = plumb_core::project::project_of(&declared.app);
        let (cluster_name, dest) = self
            .dests
            .resolve(&spec.destination, project_name)
            .await
            .map_err(|e| (ReconcileError::from(e), None))?;
        plumb_core::project::check_app_at(
            &declared.app,
            &plumb_core::clusters::resolved_destination(
                &spec.destination,
                &cluster_name,
                &dest.server,
            ),
            app_namespace,
            self.namespaces.home(),
            project.as_ref().map(|k| &*k.project),
        )
        .map_err(|e| (ReconcileError::Project(e), None))?;
        // A cluster that does not answer (its prober says so) fails its
        // applications at once: no worker waits on it, nothing is synced
        // or pruned there. Its prober queues them again when it answers.
        let state = dest.state();
        match state.status {
            Status::Successful => {}
            Status::Unknown if trigger.op.is_none() && work.waiting.is_none() => {
                return Ok(None);
            }
            Status::Unknown | Status::Failed => {
                let error = ReconcileError::Unreachable {
                    cluster: cluster_name,
                    server: dest.server.clone(),
                    message: if state.message.is_empty() {
                        "not connected yet".into()
                    } else {
                        state.message
                    },
                };
                return Err((error, None));
            }
        }
        if work.dest != dest.id {
            // Verdicts of another cluster say nothing about this one.
            work.compared.clear();
            work.dest = dest.id;
        }
        // Revision: a user's, a rollback pin's, or each source's target.
        // A sync waiting for a wave goes on at the revision it started
        // with.
        let op = trigger.op.as_ref();
        let target = work
            .waiting
            .as_ref()
            .map(|w| w.sha.clone())
            .or_else(|| op.and_then(|o| o.revision.clone()))
            .or_else(|| status.rollback.as_ref().map(|p| p.revision.clone()));
        let resolved = self
            .resolve_sources(spec, target.as_deref(), trigger.hard)
            .await
            .map_err(|e| (e, None))?;
        let sha = manifests::joined(&resolved);

        let spec_hash = hash_json(spec);
        // Rules that cannot be used stop the comparison: without them the
        // application would look OutOfSync and be synced over what they keep.
        let rules = self
            .ignore_rules(work, spec, spec_hash)
            .map_err(|e| (e, Some(sha.clone())))?;
        let live_generation = dest.live.generation(name);
        // A change of the project, or of the cluster's connection,
        // compares again: it may refuse a kind.
        // So does a repository whose fetches start or stop failing: its
        // condition comes and goes.
        let fetch_errors: Vec<Option<String>> = spec
            .all_sources()
            .iter()
            .map(|s| self.fetch_error(&s.repo_url))
            .collect();
        let checks = hash_of(&(
            rules.hash(),
            project.as_ref().map(|k| k.hash),
            dest.id,
            fetch_errors,
        ));
        let key = (sha.clone(), spec_hash, live_generation, checks);
        if op.is_none() && !trigger.force && work.last_key.as_ref() == Some(&key) {
            return Ok(None);
        }
        // The comparison cache is keyed by the desired object and the live
        // resourceVersion, so a normal refresh may reuse it (and costs no
        // dry-run requests); a hard refresh asks the API server again.
        if trigger.hard {
            work.compared.clear();
        }
        let at = |error: ReconcileError| (error, Some(sha.clone()));
        let manifests = self
            .render_sources(&dest, name, work, spec, spec_hash, &resolved, trigger.hard)
            .await
            .map_err(at)?;
        let (manifests, hook_manifests) =
            plumb_core::hooks::split(manifests).map_err(|why| at(ReconcileError::Hooks(why)))?;
        // A generateName hook is named by each operation; until then its
        // prefix stands for its name.
        let mut specs = Vec::with_capacity(hook_manifests.len());
        let mut hook_objects = Vec::with_capacity(hook_manifests.len());
        for h in hook_manifests {
            let mut manifest = h.manifest;
            let generate_name = manifest
                .object
                .pointer("/metadata/name")
                .and_then(Value::as_str)
                .is_none_or(str::is_empty)
                .then(|| {
                    manifest
                        .object
                        .pointer("/metadata/generateName")
                        .and_then(Value::as_str)
                        .map(str::to_string)
                })
                .flatten();
            if let Some(prefix) = &generate_name
                && let Some(meta) = manifest
                    .object
                    .get_mut("metadata")
                    .and_then(Value::as_object_mut)
            {
                meta.insert("name".into(), json!(prefix));
            }
            specs.push((h.spec, generate_name));
            hook_objects.push(manifest);
        }

        // Resolve kinds, default namespaces, track.
        let namespace = spec.destination.namespace.as_deref().unwrap_or("");
        let prepared = self
            .prepare(&dest, name, manifests, namespace, spec)
            .await
            .map_err(at)?;
        // A wave that is not a number would fail every sync: it stops the
        // comparison, as an unreadable hook does, so nothing is pruned.
        if let Some(e) = prepared.iter().find_map(|p| {
            plumb_core::waves::wave_of(&p.object).err().map(|text| {
                plumb_core::plan::PlanError::InvalidWave {
                    key: p.key.clone(),
                    text,
                }
            })
        }) {
            return Err(at(ReconcileError::Invalid(e.to_string())));
        }
        let hooks: Vec<PreparedHook> = self
            .prepare(&dest, name, hook_objects, namespace, spec)
            .await
            .map_err(at)?
            .into_iter()
            .zip(specs)
            .map(|(prepared, (spec, generate_name))| PreparedHook {
                prepared,
                spec,
                generate_name,
            })
            .collect();

        // A kind (or a namespace) the project refuses stops everything of
        // the render before it is compared: nothing applied, nothing
        // pruned.
        let known = project.as_ref().map(|k| &*k.project);
        for p in prepared.iter().chain(hooks.iter().map(|h| &h.prepared)) {
            let namespaced = p
                .kind
                .as_ref()
                .map_or(!p.key.namespace.is_empty(), |k| k.namespaced);
            plumb_core::project::check_resource(&declared.app, known, &p.key, namespaced)
                .map_err(|e| at(ReconcileError::ProjectResource(e)))?;
        }

        // With --managed-namespaces, an object outside them (or of a
        // cluster-scoped kind) cannot be watched, so neither applied nor
        // pruned safely: the render stops here, before any write.
        if let Some(managed) = dest.live.namespaces() {
            let objects = prepared.iter().chain(hooks.iter().map(|h| &h.prepared));
            let by = if Arc::ptr_eq(&dest, self.dests.own()) {
                "--managed-namespaces"
            } else {
                "the cluster Secret's namespaces"
            };
            if let Some(why) = unmanaged_objects(managed, by, namespace, objects) {
                return Err(at(ReconcileError::NotManaged(why)));
            }
        }

        // Without every kind's live objects the comparison would take
        // missing for absent and the prune set would be wrong: a kind that
        // cannot be listed stops this application (and only this one).
        let mut unwatched = Vec::new();
        let mut kinds = self.kinds_to_watch(&dest, name, &prepared).await;
        for h in &hooks {
            if let Some(kind) = &h.prepared.kind
                && !kinds.iter().any(|k| k.resource == kind.resource)
            {
                kinds.push(kind.clone());
            }
        }
        for kind in kinds {
            if let Err(e) = dest.live.watch(&kind, self.options.watch_timeout).await {
                unwatched.push(e);
            }
        }
        if !unwatched.is_empty() {
            return Err(at(ReconcileError::Unwatched(unwatched)));
        }
        Ok(Some(Ready {
            sha,
            spec_hash,
            checks,
            prepared,
            hooks,
            rules,
            dest,
        }))
    }

    /// Resolves kinds and scopes, defaults namespaces and adds the tracking
    /// annotation. A kind the cluster does not serve is an error unless a CRD
    /// of the same render defines it, or the object (or the application)
    /// says `SkipDryRunOnMissingResource=true`: then its CRD is expected
    /// from elsewhere, and the object is Missing, not dry-run, until it is.
    pub(super) async fn prepare(
        &self,
        dest: &Dest,
        app: &str,
        manifests: Vec<Manifest>,
        namespace: &str,
        spec: &ApplicationSpec,
    ) -> Result<Vec<Prepared>, ReconcileError> {
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
            let kind = dest
                .cluster
                .resolve(m.api_version(), m.kind())
                .await
                .map_err(|e| ReconcileError::Discovery(e.to_string()))?;
            let namespaced = match &kind {
                Some(k) => k.namespaced,
                None if crd_kinds
                    .contains(&(group_of(m.api_version()).to_string(), m.kind().to_string()))
                    || object_options(spec, &m.object).skip_dry_run_on_missing =>
                {
                    m.namespace().is_some() || !namespace.is_empty()
                }
                None => {
                    return Err(ReconcileError::Invalid(format!(
                        "{}: the cluster does not know {} {} (and no CustomResourceDefinition in this application defines it; \
                         set SkipDryRunOnMissingResource=true if its CRD comes from elsewhere)",
                        m.origin,
                        m.api_version(),
                        m.kind()
                    )));
                }
            };
            let Manifest { mut object, origin } = m;
            let meta = object
                .get_mut("metadata")
                .and_then(Value::as_object_mut)
                .ok_or_else(|| {
                    ReconcileError::Invalid(format!("{}: metadata is not a mapping", origin))
                })?;
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
            let key = ResourceKey::of(&object)
                .ok_or_else(|| ReconcileError::Invalid(format!("{}: no kind or name", origin)))?;
            if !seen.insert(key.clone()) {
                return Err(ReconcileError::Invalid(format!(
                    "{}: {key} is declared twice",
                    origin
                )));
            }
            metadata_map(&mut object, "annotations", &origin)?
                .insert(TRACKING_ANNOTATION.into(), json!(key.tracking_id(app)));
            metadata_map(&mut object, "labels", &origin)?
                .insert(MANAGED_LABEL.into(), json!(MANAGED_LABEL_VALUE));
            out.push(Prepared { key, object, kind });
        }
        Ok(out)
    }

    /// The kinds to watch for an application: its desired kinds, plus the
    /// kinds of its last sync as recorded in the store, so that objects of a
    /// kind that left the desired state are still seen (and pruned), also
    /// after a restart.
    pub(super) async fn kinds_to_watch(
        &self,
        dest: &Dest,
        app: &str,
        prepared: &[Prepared],
    ) -> Vec<Kind> {
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
            if let Ok(Some(kind)) = dest.cluster.resolve(&api_version, &r.kind).await {
                out.push(kind);
            }
        }
        out
    }

    /// The application's `ignoreDifferences` rules with the server-wide
    /// ones (`--ignore-differences`, then the settings'), compiled once per
    /// spec and settings.
    ///
    /// # Errors
    /// [`ReconcileError::IgnoreDifferences`] for a rule that cannot be
    /// used (a malformed pointer, a jq expression that does not parse), the
    /// application's or a server-wide one.
    pub(super) fn ignore_rules(
        &self,
        work: &mut AppWork,
        spec: &ApplicationSpec,
        spec_hash: u64,
    ) -> Result<Arc<IgnoreRules>, ReconcileError> {
        let settings = self.dests.own().live.settings();
        let at = (spec_hash, settings.generation());
        if let Some((compiled_at, rules)) = &work.ignore
            && *compiled_at == at
        {
            return Ok(Arc::clone(rules));
        }
        let rules = Arc::new(IgnoreRules::compile(
            spec.ignore_differences
                .iter()
                .chain(&self.options.ignore_differences)
                .chain(settings.ignore_differences()?),
        )?);
        work.ignore = Some((at, Arc::clone(&rules)));
        Ok(rules)
    }

    /// A live object as the API server has it now, with its
    /// `managedFields` when `managed_fields`; `None` when it is gone.
    async fn read_live(
        &self,
        dest: &Dest,
        kind: &Kind,
        key: &ResourceKey,
        managed_fields: bool,
    ) -> Result<Option<Value>, String> {
        let read = if managed_fields {
            dest.cluster.get_with_managed_fields(kind, key).await
        } else {
            dest.cluster.get(kind, key).await
        };
        read.map_err(|e| e.to_string())
    }

    /// What a server-side apply of `object` would make of the live object:
    /// a dry run, without validation for `Validate=false` (then the fields
    /// the server does not know are left out, as the sync will).
    pub(super) async fn dry_run(
        &self,
        dest: &Dest,
        kind: &Kind,
        object: &Value,
        own: ObjectOptions,
    ) -> Result<Value, crate::cluster::ClusterError> {
        if own.validate {
            dest.cluster.apply_strict(kind, object, true).await
        } else {
            dest.cluster
                .apply_unvalidated(kind, object, true)
                .await
                .map(|(predicted, _)| predicted)
        }
    }

    /// `SharedResourceWarning` (as Argo CD's): a desired object that the
    /// live index holds for another application (its tracking annotation
    /// names that one). Costs no request.
    fn shared_warnings(
        &self,
        dest: &Dest,
        app: &str,
        prepared: &[Prepared],
        tracked: &BTreeMap<ResourceKey, LiveObject>,
    ) -> Vec<Condition> {
        prepared
            .iter()
            .filter(|p| !tracked.contains_key(&p.key))
            .filter_map(|p| {
                let other = dest.live.holder(&p.key)?;
                (other != app).then(|| {
                    condition(
                        "SharedResourceWarning",
                        format!(
                            "{}/{} is part of applications {app} and {other}",
                            p.key.kind, p.key.name
                        ),
                    )
                })
            })
            .collect()
    }

    /// `FailOnSharedResource=true`: the operation's message when a desired
    /// object is tracked by another application (read from the API server,
    /// so an object another tool tracks counts too), else `None`. Objects
    /// this application tracks are its own and are not read.
    async fn shared_refusal(
        &self,
        dest: &Dest,
        app: &str,
        prepared: &[Prepared],
        tracked: &BTreeMap<ResourceKey, LiveObject>,
    ) -> Option<String> {
        let jobs: Vec<_> = prepared
            .iter()
            .filter(|p| !tracked.contains_key(&p.key))
            .filter_map(|p| Some((p, p.kind.as_ref()?)))
            .map(|(p, kind)| async move {
                let live = self.read_live(dest, kind, &p.key, false).await;
                (p, live)
            })
            .collect();
        let read: Vec<_> = futures::stream::iter(jobs)
            .buffered(COMPARE_CONCURRENCY)
            .collect()
            .await;
        let mut shared = Vec::new();
        for (p, live) in read {
            match live {
                Ok(Some(live)) => {
                    let other = annotation(&live, TRACKING_ANNOTATION)
                        .and_then(crate::model::tracking_app)
                        .filter(|other| other != app);
                    if let Some(other) = other {
                        shared.push(format!(
                            "{}/{} is part of applications {app} and {other}",
                            p.key.kind, p.key.name
                        ));
                    }
                }
                Ok(None) => {}
                Err(e) => shared.push(format!("{}: cannot read the live object: {e}", p.key)),
            }
        }
        (!shared.is_empty()).then(|| {
            format!(
                "Shared resource found: {} (FailOnSharedResource=true); nothing was applied",
                shared.join("; ")
            )
        })
    }

    /// `RespectIgnoreDifferences` (on the application, or in an object's
    /// `argocd.argoproj.io/sync-options`): each desired object that a rule
    /// matches takes the live values of its ignored fields, read from the
    /// API server (only those objects are read). Its tracking annotation
    /// and label stay Plumb's. Returns the objects that could not be read.
    async fn respect_ignored(
        &self,
        dest: &Dest,
        desired: &mut [Desired],
        prepared: &[Prepared],
        rules: &IgnoreRules,
        respect_all: bool,
    ) -> Vec<String> {
        if rules.is_empty() {
            return Vec::new();
        }
        let jobs = desired.iter_mut().zip(prepared).filter_map(|(d, p)| {
            let matched = rules.matching(&p.key)?;
            let kind = p.kind.as_ref()?;
            let own = annotation(&p.object, SYNC_OPTIONS_ANNOTATION).is_some_and(|o| {
                has_option(
                    o.split(',').map(str::trim),
                    "RespectIgnoreDifferences",
                    "true",
                )
            });
            (respect_all || own).then_some((d, p, matched, kind))
        });
        let jobs: Vec<_> = jobs
            .map(|(d, p, matched, kind)| async move {
                let live = self
                    .read_live(dest, kind, &p.key, matched.needs_managed_fields())
                    .await
                    .map_err(|e| format!("{}: cannot read the live object: {e}", p.key))?;
                let Some(live) = live else { return Ok(()) };
                let mut object = p.object.clone();
                matched
                    .respect(&mut object, &live)
                    .map_err(|e| format!("{}: {e}", p.key))?;
                for (field, name) in [
                    ("annotations", TRACKING_ANNOTATION),
                    ("labels", MANAGED_LABEL),
                ] {
                    let pointer = format!("/metadata/{field}");
                    let ours = p
                        .object
                        .pointer(&pointer)
                        .and_then(|m| m.get(name))
                        .cloned();
                    if let (Some(ours), Some(meta)) = (ours, object.get_mut("metadata")) {
                        meta.as_object_mut()
                            .map(|m| m.entry(field).or_insert_with(|| json!({})))
                            .and_then(Value::as_object_mut)
                            .map(|m| m.insert(name.to_string(), ours));
                    }
                }
                d.object = object;
                Ok::<(), String>(())
            })
            .collect();
        futures::stream::iter(jobs)
            .buffered(COMPARE_CONCURRENCY)
            .filter_map(|r| async move { r.err() })
            .collect()
            .await
    }

    /// Compares every desired object with its live counterpart; returns
    /// per-object "modified" and the errors met.
    ///
    /// An object no `ignoreDifferences` rule matches is compared by
    /// fingerprints: the live one kept by [`LiveState`], the prediction's
    /// from the dry run. One a rule matches is read from the API server
    /// beside the dry run, both sides are masked, then fingerprinted; its
    /// verdict is remembered under the rules' hash and reused only for the
    /// same live resourceVersion.
    pub(super) async fn compare(
        &self,
        dest: &Dest,
        work: &mut AppWork,
        spec: &ApplicationSpec,
        prepared: &[Prepared],
        tracked: &BTreeMap<ResourceKey, LiveObject>,
        rules: &IgnoreRules,
    ) -> (Vec<bool>, Vec<String>) {
        let jobs = prepared.iter().map(|p| {
            let own = object_options(spec, &p.object);
            let live = tracked.get(&p.key).cloned();
            let matched = rules.matching(&p.key);
            let desired_hash = match matched {
                None => hash_json(&p.object),
                Some(_) => hash_json(&(&p.object, rules.hash())),
            };
            let rv = live
                .as_ref()
                .map(|l| l.resource_version().to_string())
                .unwrap_or_default();
            let live_print = live.as_ref().map(|l| l.fingerprint());
            // The same desired object against the same live version, or
            // against a new version that differs only where no apply
            // reaches (status, server metadata): a child Application's
            // status write changes its resourceVersion and nothing a dry
            // run would predict, so it costs the parent no request.
            let cached = work
                .compared
                .get(&p.key)
                .filter(|(h, r, f, _)| {
                    // A masked verdict may depend on managedFields, which
                    // no fingerprint covers: only the same version counts.
                    let same_print = matched.is_none() && Some(*f) == live_print;
                    *h == desired_hash && !rv.is_empty() && (*r == rv || same_print)
                })
                .map(|(_, _, _, m)| *m);
            async move {
                // Only a dry run's verdict is remembered: "modified because
                // the kind is not served yet" must not outlive the CRD's
                // arrival, or the object would stay OutOfSync for good.
                let outcome = match (cached, &live, &p.kind) {
                    (Some(m), _, _) => Ok((m, true)),
                    (None, None, _) | (None, _, None) => Ok((true, false)),
                    (None, Some(l), Some(kind)) => match &matched {
                        None => match self.dry_run(dest, kind, &p.object, own).await {
                            Ok(predicted) => {
                                Ok((diff::fingerprint(&predicted) != l.fingerprint(), true))
                            }
                            // Force=true re-creates an object whose change
                            // is refused as immutable: it differs, and a
                            // sync will do that.
                            Err(e) if own.force && sync::refused_as_immutable(&e) => {
                                Ok((true, false))
                            }
                            Err(e) => Err(e.to_string()),
                        },
                        Some(m) => {
                            let (live, predicted) = futures::join!(
                                self.read_live(dest, kind, &p.key, m.needs_managed_fields()),
                                self.dry_run(dest, kind, &p.object, own)
                            );
                            match (live, predicted) {
                                (Ok(Some(mut live)), Ok(mut predicted)) => m
                                    .mask(&mut live, &mut predicted)
                                    .map(|()| {
                                        let differs = diff::fingerprint(&predicted)
                                            != diff::fingerprint(&live);
                                        (differs, true)
                                    })
                                    .map_err(|e| e.to_string()),
                                // Deleted since the watch saw it: missing.
                                (Ok(None), Ok(_)) => Ok((true, false)),
                                (Err(e), _) => Err(format!("cannot read the live object: {e}")),
                                (_, Err(e)) => Err(e.to_string()),
                            }
                        }
                    },
                };
                (p.key.clone(), desired_hash, rv, live_print, outcome)
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
        for (key, h, rv, live_print, outcome) in results {
            match outcome {
                Ok((m, cacheable)) => {
                    if let (true, Some(print)) = (cacheable && !rv.is_empty(), live_print) {
                        work.compared.insert(key, (h, rv, print, m));
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
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prepared(kind: &str, namespace: &str, name: &str, namespaced: bool) -> Prepared {
        let plural = format!("{}s", kind.to_lowercase());
        Prepared {
            key: ResourceKey {
                group: String::new(),
                kind: kind.into(),
                namespace: namespace.into(),
                name: name.into(),
            },
            object: json!({}),
            kind: Some(Kind {
                resource: kube::core::ApiResource::from_gvk_with_plural(
                    &kube::core::GroupVersionKind::gvk("", "v1", kind),
                    &plural,
                ),
                namespaced,
            }),
        }
    }

    #[test]
    fn only_namespaced_objects_of_managed_namespaces_are_within_reach() {
        let managed = ["a".to_string(), "b".to_string()];
        let inside = [
            prepared("ConfigMap", "a", "x", true),
            prepared("Secret", "b", "y", true),
        ];
        assert_eq!(
            unmanaged_objects(&managed, "--managed-namespaces", "a", inside.iter()),
            None
        );
        // The destination first, whatever the objects.
        let why = unmanaged_objects(&managed, "--managed-namespaces", "c", inside.iter())
            .expect("refused");
        assert!(why.starts_with("namespace c is not managed"), "{why}");
        assert!(
            why.contains("namespaces a, b only (--managed-namespaces)"),
            "{why}"
        );
        // An object elsewhere, or cluster-scoped, with the destination within.
        let mixed = [
            prepared("ConfigMap", "a", "x", true),
            prepared("ConfigMap", "c", "z", true),
            prepared("Namespace", "", "c", false),
        ];
        let why = unmanaged_objects(&managed, "--managed-namespaces", "a", mixed.iter())
            .expect("refused");
        assert!(why.contains("ConfigMap c/z is in namespace c"), "{why}");
        assert!(why.contains("Namespace c is cluster-scoped"), "{why}");
        // Many: the first five, and how many more.
        let many: Vec<Prepared> = (0..8)
            .map(|i| prepared("ConfigMap", "c", &format!("m{i}"), true))
            .collect();
        let why =
            unmanaged_objects(&managed, "--managed-namespaces", "", many.iter()).expect("refused");
        assert!(why.contains("(and 3 more)"), "{why}");
        assert!(!why.contains("m5"), "{why}");
    }
}
