//! ApplicationSets: declared as objects in the application namespace or in
//! `--apps` files, each turned into Applications by a pass (fetch, list
//! clusters, generate, render, plan, apply) and its status published and
//! written back. The rules (generators, templates, the plan) are pure, in
//! core's `appset` and `template`; this room fetches, lists and applies.
//!
//! A pass never half-applies: any generator or template error, a duplicate
//! name or an unsupported field means nothing is created, updated or
//! deleted. The Applications it creates are ordinary Application objects,
//! managed like any other once they exist.

use plumb_core::appset::plan::{
    self as appset_plan, AppSetPlan, ApplicationsSync, CONFIRM_DELETION_ANNOTATION, Existing,
    PlanRules,
};
use plumb_core::appset::render::APPLICATIONSET_LABEL;
use plumb_core::appset::rollout;
use plumb_core::appset::{
    AppSetApplicationStatus, AppSetCondition, AppSetResource, ApplicationSet, ApplicationSetStatus,
    ClusterEntry, RollingSync,
};

use super::*;
use crate::registry::DeclaredSet;

/// How often the applications' statuses are gathered into their
/// ApplicationSets' status (they change one application at a time; a
/// batch costs one status write per ApplicationSet).
const STATUS_BATCH: Duration = Duration::from_secs(2);

/// ApplicationSets as declared, their published views and their queue.
#[derive(Default)]
pub(super) struct AppSets {
    files: Mutex<BTreeMap<String, Arc<DeclaredSet>>>,
    cluster: Mutex<BTreeMap<String, Arc<DeclaredSet>>>,
    /// What the API shows: each ApplicationSet with its status.
    views: RwLock<BTreeMap<String, Arc<ApplicationSet>>>,
    /// ApplicationSets waiting for a pass.
    queued: Mutex<BTreeSet<String>>,
    wake: Arc<tokio::sync::Notify>,
    /// ApplicationSets whose applications' status changed since the last
    /// status batch.
    dirty: Mutex<BTreeSet<String>>,
    /// Deletions confirmed through the API, by ApplicationSet: the token.
    confirmations: Mutex<HashMap<String, String>>,
    /// The status last written to each ApplicationSet object.
    written: Mutex<HashMap<String, u64>>,
    /// The progressive syncs, by ApplicationSet.
    rollouts: Mutex<HashMap<String, Rollout>>,
    /// Whether the first full list of Application objects has arrived: a
    /// pass before it would take every Application for missing (and
    /// re-apply them all, or overwrite one it does not own).
    pub(super) listed: std::sync::atomic::AtomicBool,
    /// The commit each git generator's (repository, revision) resolved to
    /// at a set's last pass: a fetch that moved none of them needs no pass.
    revisions: Mutex<HashMap<String, Resolved>>,
}

/// The commit each (repository, revision) of a set's git generators
/// resolved to.
type Resolved = BTreeMap<(String, String), String>;

/// A RollingSync between status batches: the steps, what each application
/// is at, which are syncing and which wait for their step.
#[derive(Default)]
struct Rollout {
    steps: rollout::Steps,
    states: BTreeMap<String, rollout::AppState>,
    /// Applications the gate let sync that are not yet done.
    in_flight: BTreeSet<String>,
    /// Applications the gate held: queued again when the rollout moves.
    waiting: BTreeSet<String>,
    /// What the gate decides from, hashed: the rollout moved when it
    /// changes.
    print: u64,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl AppSets {
    fn enqueue(&self, name: &str) {
        if lock(&self.queued).insert(name.to_string()) {
            self.wake.notify_one();
        }
    }

    /// The ApplicationSet of that name: a file's wins over an object's.
    fn declared(&self, name: &str) -> Option<Arc<DeclaredSet>> {
        let file = lock(&self.files).get(name).cloned();
        file.or_else(|| lock(&self.cluster).get(name).cloned())
    }

    fn names(&self) -> BTreeSet<String> {
        let mut names: BTreeSet<String> = lock(&self.files).keys().cloned().collect();
        names.extend(lock(&self.cluster).keys().cloned());
        names
    }

    /// An application of this ApplicationSet changed its status.
    pub(super) fn mark_dirty(&self, appset: &str) {
        lock(&self.dirty).insert(appset.to_string());
    }

    /// The ApplicationSets, with status, sorted by name.
    pub(super) fn views(&self) -> Vec<ApplicationSet> {
        self.views
            .read()
            .expect("views lock is never poisoned")
            .values()
            .map(|v| (**v).clone())
            .collect()
    }

    /// One ApplicationSet with its status.
    pub(super) fn view(&self, name: &str) -> Option<ApplicationSet> {
        self.views
            .read()
            .expect("views lock is never poisoned")
            .get(name)
            .map(|v| (**v).clone())
    }

    /// Whether any ApplicationSet's git generator reads `url`.
    pub(super) fn reads_repo(&self, url: &str) -> bool {
        !self.on_repo(url).is_empty()
    }

    /// The ApplicationSets whose git generators read `url`.
    pub(super) fn on_repo(&self, url: &str) -> Vec<String> {
        self.names()
            .into_iter()
            .filter(|name| {
                self.declared(name).is_some_and(|d| {
                    crate::generators::git_urls(&d.set.spec.generators)
                        .iter()
                        .any(|u| u == url)
                })
            })
            .collect()
    }
}

/// The ApplicationSet application `key` belongs to: Plumb's label, or an
/// owner reference to an ApplicationSet (one Argo CD generated). Only an
/// application of the application namespace belongs to one (sets generate
/// there); a label copied onto an object elsewhere does not count.
pub(super) fn owning_appset<'a>(key: &str, app: &'a Application) -> Option<&'a str> {
    if key.contains('/') {
        return None;
    }
    app.metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(APPLICATIONSET_LABEL))
        .map(String::as_str)
        .or_else(|| {
            app.metadata
                .owner_references
                .iter()
                .flatten()
                .find(|o| o.kind == "ApplicationSet" && o.api_version.starts_with("argoproj.io/"))
                .map(|o| o.name.as_str())
        })
}

fn appset_condition(
    type_: &str,
    status: bool,
    reason: &str,
    message: impl Into<String>,
) -> AppSetCondition {
    AppSetCondition {
        type_: type_.into(),
        status: if status { "True" } else { "False" }.into(),
        reason: reason.into(),
        message: message.into(),
        last_transition_time: Some(now()),
    }
}

/// The RollingSync of an ApplicationSet, if it has one.
///
/// # Errors
/// An unknown strategy type.
fn rolling_sync(set: &ApplicationSet) -> Result<Option<&RollingSync>, String> {
    let Some(strategy) = &set.spec.strategy else {
        return Ok(None);
    };
    match strategy.type_.as_str() {
        "" | "AllAtOnce" => Ok(None),
        "RollingSync" => {
            Ok(Some(strategy.rolling_sync.as_ref().ok_or(
                "strategy.type RollingSync needs strategy.rollingSync.steps",
            )?))
        }
        other => Err(format!(
            "unknown strategy.type {other:?} (AllAtOnce or RollingSync)"
        )),
    }
}

/// The conditions of a pass that failed before anything was applied.
fn failed(message: &str) -> Vec<AppSetCondition> {
    vec![
        appset_condition(
            "ErrorOccurred",
            true,
            "ApplicationGenerationFromParamsError",
            message,
        ),
        appset_condition("ParametersGenerated", false, "ErrorOccurred", message),
        appset_condition("ResourcesUpToDate", false, "ErrorOccurred", message),
    ]
}

/// What a pass did, for its conditions.
fn outcome_conditions(plan: &AppSetPlan, errors: &[String]) -> Vec<AppSetCondition> {
    let mut out = Vec::new();
    if errors.is_empty() {
        out.push(appset_condition(
            "ErrorOccurred",
            false,
            "ApplicationSetUpToDate",
            "",
        ));
    } else {
        out.push(appset_condition(
            "ErrorOccurred",
            true,
            "ApplicationSetApplyError",
            shorten_list(errors),
        ));
    }
    out.push(appset_condition(
        "ParametersGenerated",
        true,
        "ParametersGenerated",
        "Successfully generated parameters for all Applications",
    ));
    let mut pending = Vec::new();
    if !plan.conflicts.is_empty() {
        pending.push(format!(
            "applications not owned by this ApplicationSet are left alone: {}",
            shorten_list(&plan.conflicts)
        ));
    }
    if let Some(held) = &plan.held {
        pending.push(format!(
            "deleting {} of its {} applications is held",
            held.names.len(),
            held.owned
        ));
    }
    if errors.is_empty() && pending.is_empty() {
        out.push(appset_condition(
            "ResourcesUpToDate",
            true,
            "ApplicationSetUpToDate",
            "All applications have been generated successfully",
        ));
    } else {
        let mut why = vec![shorten_list(errors)];
        why.retain(|w| !w.is_empty());
        why.extend(pending);
        out.push(appset_condition(
            "ResourcesUpToDate",
            false,
            "ErrorOccurred",
            why.join("; "),
        ));
    }
    if let Some(held) = &plan.held {
        out.push(appset_condition(
            "DeletionHeld",
            true,
            "DeletionNeedsConfirmation",
            format!(
                "this pass would delete {} of the {} applications it owns ({}); nothing was deleted. If that is meant, annotate the ApplicationSet with {}={} or POST /api/v1/applicationsets/NAME/confirm-deletion {{\"token\": \"{}\"}}",
                held.names.len(),
                held.owned,
                shorten_list(&held.names),
                CONFIRM_DELETION_ANNOTATION,
                held.token,
                held.token
            ),
        ));
    }
    out
}

/// The first few of a list, and how many more: a pass over thousands of
/// applications must not write a condition of thousands of names.
fn shorten_list(names: &[String]) -> String {
    const SHOWN: usize = 10;
    let mut text = names
        .iter()
        .take(SHOWN)
        .cloned()
        .collect::<Vec<_>>()
        .join(", ");
    if names.len() > SHOWN {
        text.push_str(&format!(" and {} more", names.len() - SHOWN));
    }
    text
}

/// The `applications.argoproj.io` kind, for applies and deletes.
fn application_kind() -> Kind {
    Kind {
        resource: registry::application_resource(),
        namespaced: true,
    }
}

impl Inner {
    /// Starts the ApplicationSet worker and the status batcher.
    pub(super) fn start_appsets(self: &Arc<Self>) {
        if !self.options.watch_cluster_apps {
            // No list will come; a pass reports why it cannot run.
            self.appsets.listed.store(true, Ordering::SeqCst);
        }
        let weak = Arc::downgrade(self);
        let stop = self.cancel.clone();
        let wake = Arc::clone(&self.appsets.wake);
        tokio::spawn(async move {
            loop {
                let names = loop {
                    let Some(inner) = weak.upgrade() else { return };
                    let names = std::mem::take(&mut *lock(&inner.appsets.queued));
                    drop(inner);
                    if !names.is_empty() {
                        break names;
                    }
                    // A notify while nobody waits leaves a permit: no
                    // enqueue between the take and here is lost.
                    tokio::select! {
                        () = stop.cancelled() => return,
                        () = wake.notified() => {}
                    }
                };
                let Some(inner) = weak.upgrade() else { return };
                // One at a time: a pass of a large set is CPU-bound, and
                // the applications it creates are the work that matters.
                for name in names {
                    inner.appset_pass(&name).await;
                }
            }
        });
        let weak = Arc::downgrade(self);
        let stop = self.cancel.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(STATUS_BATCH);
            loop {
                tokio::select! {
                    () = stop.cancelled() => return,
                    _ = tick.tick() => {}
                }
                let Some(inner) = weak.upgrade() else { return };
                let dirty = std::mem::take(&mut *lock(&inner.appsets.dirty));
                for name in dirty {
                    inner.appset_refresh_status(&name).await;
                }
            }
        });
        // Generators read git and the cluster's Secrets: look again on the
        // repository poll interval.
        let weak = Arc::downgrade(self);
        let interval = self.options.repo_poll_interval;
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(interval).await;
                let Some(inner) = weak.upgrade() else { return };
                if inner.cancel.is_cancelled() {
                    return;
                }
                for name in inner.appsets.names() {
                    inner.appsets.enqueue(&name);
                }
            }
        });
    }

    /// Applies ApplicationSet source updates.
    pub(super) fn apply_appset_update(&self, update: SourceUpdate) {
        let sets = &self.appsets;
        let mut touched = BTreeSet::new();
        let by_name = |list: Vec<DeclaredSet>| -> BTreeMap<String, Arc<DeclaredSet>> {
            list.into_iter()
                .map(|d| (d.name().to_string(), Arc::new(d)))
                .collect()
        };
        match update {
            SourceUpdate::AppSetFiles(Ok(list)) => {
                let new = by_name(list);
                let mut files = lock(&sets.files);
                for (name, old) in files.iter() {
                    if !new.contains_key(name) {
                        tracing::warn!(appset = %name, "ApplicationSet removed from --apps; the applications it generated are left in place");
                    }
                    if new
                        .get(name)
                        .is_none_or(|n| n.set != old.set || n.unsupported != old.unsupported)
                    {
                        touched.insert(name.clone());
                    }
                }
                touched.extend(new.keys().filter(|n| !files.contains_key(*n)).cloned());
                *files = new;
            }
            SourceUpdate::AppSetFiles(Err(e)) => {
                tracing::error!(error = %e, "cannot read ApplicationSets in --apps; keeping the ones read before");
            }
            SourceUpdate::AppSetClusterAll(list) => {
                let new = by_name(list);
                let mut cluster = lock(&sets.cluster);
                touched.extend(cluster.keys().cloned());
                touched.extend(new.keys().cloned());
                *cluster = new;
            }
            SourceUpdate::AppSetCluster(name, Some(set)) => {
                lock(&sets.cluster).insert(name.clone(), Arc::new(*set));
                touched.insert(name);
            }
            SourceUpdate::AppSetCluster(name, None) => {
                lock(&sets.cluster).remove(&name);
                touched.insert(name);
            }
            _ => {}
        }
        for name in touched {
            sets.enqueue(&name);
        }
    }

    /// One pass of an ApplicationSet: generate, plan, apply, publish.
    async fn appset_pass(self: &Arc<Self>, name: &str) {
        // Only the leader writes Applications; it passes every set when it
        // becomes the leader.
        if !self.leads() {
            return;
        }
        let Some(declared) = self.appsets.declared(name) else {
            self.appsets
                .views
                .write()
                .expect("views lock is never poisoned")
                .remove(name);
            lock(&self.appsets.written).remove(name);
            lock(&self.appsets.rollouts).remove(name);
            lock(&self.appsets.confirmations).remove(name);
            lock(&self.appsets.revisions).remove(name);
            return;
        };
        if !self.appsets.listed.load(Ordering::SeqCst) {
            // `apps_listed` queues every set once the list is in.
            return;
        }
        let started = Instant::now();
        let conditions = match self.appset_apply(&declared).await {
            Ok((plan, errors)) => {
                tracing::info!(
                    appset = %name,
                    created = plan.create.len(),
                    updated = plan.update.len(),
                    deleted = plan.delete.len(),
                    unchanged = plan.unchanged.len(),
                    held = plan.held.as_ref().map_or(0, |h| h.names.len()),
                    errors = errors.len(),
                    elapsed_ms = started.elapsed().as_millis() as u64,
                    "ApplicationSet pass"
                );
                outcome_conditions(&plan, &errors)
            }
            Err(message) => {
                tracing::warn!(appset = %name, error = %message, "ApplicationSet pass changed nothing");
                failed(&message)
            }
        };
        self.appset_publish(name, &declared, conditions).await;
    }

    /// Generates and applies; returns the plan carried out and the errors
    /// of single applies, or why nothing was done.
    async fn appset_apply(
        self: &Arc<Self>,
        declared: &Arc<DeclaredSet>,
    ) -> Result<(AppSetPlan, Vec<String>), String> {
        let (plan, existing) = self.appset_plan(declared).await?;
        let errors = self.appset_execute(&plan, &existing).await;
        Ok((plan, errors))
    }

    /// Generates and plans a pass: the plan, and the Applications it was
    /// planned against.
    async fn appset_plan(
        self: &Arc<Self>,
        declared: &Arc<DeclaredSet>,
    ) -> Result<(AppSetPlan, BTreeMap<String, Existing>), String> {
        if !declared.unsupported.is_empty() {
            return Err(format!(
                "fields Plumb does not support yet: {}; nothing is generated until they are removed",
                declared.unsupported.join(", ")
            ));
        }
        if let Some(strategy) = rolling_sync(&declared.set)? {
            rollout::steps(strategy, &[]).map_err(|e| e.to_string())?;
        }

        if !self.options.watch_cluster_apps {
            return Err(
                "ApplicationSets create Application objects, which --no-cluster-apps turns off"
                    .into(),
            );
        }
        let own_policy = declared
            .set
            .spec
            .sync_policy
            .as_ref()
            .and_then(|p| p.applications_sync.as_deref());
        let policy = ApplicationsSync::effective(
            self.options.appset_policy,
            self.options.appset_policy_override,
            own_policy,
        )?;
        let desired = self.appset_generate(declared).await?;
        let name = declared.name();
        let existing = self.appset_existing(name, &desired);
        // Either confirmation counts: one given through the API earlier
        // (for other deletions, say) must not hide the annotation's.
        let confirmations = lock(&self.appsets.confirmations)
            .get(name)
            .cloned()
            .into_iter()
            .chain(
                declared
                    .set
                    .metadata
                    .annotations
                    .as_ref()
                    .and_then(|a| a.get(CONFIRM_DELETION_ANNOTATION))
                    .cloned(),
            )
            .collect();
        let rules = PlanRules {
            policy,
            max_delete_percent: self.options.appset_max_delete_percent,
            confirmations,
        };
        let plan = appset_plan::plan(desired, &existing, &rules).map_err(|e| e.to_string())?;
        Ok((plan, existing))
    }

    /// What an ApplicationSet manifest would do now, without doing it.
    pub(super) async fn preview_appset(
        self: &Arc<Self>,
        value: Value,
    ) -> Result<crate::service::AppSetPreview, ServiceError> {
        let declared = registry::appset_from_value(value, false)
            .map(Arc::new)
            .map_err(ServiceError::BadRequest)?;
        if !self.appsets.listed.load(Ordering::SeqCst) {
            return Err(ServiceError::Conflict(
                "Plumb has not listed the Application objects yet; try again in a moment".into(),
            ));
        }
        let (plan, _) = self
            .appset_plan(&declared)
            .await
            .map_err(ServiceError::BadRequest)?;
        let names = |apps: &[Value]| -> Vec<String> {
            apps.iter()
                .filter_map(|a| a.pointer("/metadata/name").and_then(Value::as_str))
                .map(str::to_string)
                .collect()
        };
        let mut applications = plan.create.clone();
        applications.extend(plan.update.iter().cloned());
        Ok(crate::service::AppSetPreview {
            create: names(&plan.create),
            update: names(&plan.update),
            delete: plan.delete.clone(),
            kept: plan.kept.clone(),
            held: plan.held.as_ref().map(|h| {
                format!(
                    "deleting {} of its {} applications would be held until confirmed (token {})",
                    h.names.len(),
                    h.owned,
                    h.token
                )
            }),
            applications,
        })
    }

    /// The Applications an ApplicationSet generates now.
    async fn appset_generate(
        self: &Arc<Self>,
        declared: &Arc<DeclaredSet>,
    ) -> Result<Vec<Value>, String> {
        let spec = &declared.set.spec;
        for url in crate::generators::git_urls(&spec.generators) {
            self.ensure_fetched(&url)
                .await
                .map_err(|e| format!("git generator: {e}"))?;
        }
        let clusters: Result<Vec<ClusterEntry>, String> =
            if crate::generators::uses_clusters(&spec.generators) {
                self.cluster_catalog().await
            } else {
                Ok(Vec::new())
            };
        let repos = Arc::clone(&self.repos);
        let namespace = self.options.namespace.clone();
        let name = declared.name().to_string();
        let declared = Arc::clone(declared);
        let (revisions, apps) = tokio::task::spawn_blocking(move || {
            // Resolved before generating: a commit landing meanwhile is
            // then seen as a move by the next fetch.
            let revisions = crate::generators::git_revisions(&declared.set.spec.generators)
                .into_iter()
                .filter_map(|(url, revision)| {
                    let commit = repos.resolve(&url, &revision).ok()?;
                    Some(((url, revision), commit))
                })
                .collect::<BTreeMap<_, _>>();
            let apps = crate::generators::applications(&repos, &declared, clusters, &namespace);
            (revisions, apps)
        })
        .await
        .map_err(|_| "the generator task failed".to_string())?;
        lock(&self.appsets.revisions).insert(name, revisions);
        apps
    }

    /// The Applications a pass compares with: the ones this ApplicationSet
    /// owns and any holding a name it generates.
    fn appset_existing(&self, name: &str, desired: &[Value]) -> BTreeMap<String, Existing> {
        let wanted: HashSet<&str> = desired
            .iter()
            .filter_map(|a| a.pointer("/metadata/name").and_then(Value::as_str))
            .collect();
        let sources = self.sources.lock().expect("sources lock is never poisoned");
        sources
            .home_apps()
            .filter_map(|d| {
                let app_name = d.app.metadata.name.as_deref().unwrap_or_default();
                let owned = owning_appset(app_name, &d.app) == Some(name);
                (owned || wanted.contains(app_name)).then(|| {
                    (
                        app_name.to_string(),
                        Existing {
                            metadata: serde_json::to_value(&d.app.metadata)
                                .expect("metadata always serializes"),
                            spec_hash: d.spec_hash,
                            owned,
                        },
                    )
                })
            })
            .collect()
    }

    /// Carries out a plan: applies and deletes, a few at a time. Returns
    /// the errors, one per application that failed.
    async fn appset_execute(
        &self,
        plan: &AppSetPlan,
        existing: &BTreeMap<String, Existing>,
    ) -> Vec<String> {
        const AT_ONCE: usize = 8;
        let kind = Arc::new(application_kind());
        let applies: Vec<_> = plan
            .create
            .iter()
            .chain(&plan.update)
            .map(|object| {
                let (cluster, kind, object) =
                    (self.cluster.clone(), Arc::clone(&kind), object.clone());
                async move {
                    let name = object
                        .pointer("/metadata/name")
                        .and_then(Value::as_str)
                        .unwrap_or_default();
                    cluster
                        .apply(&kind, &object, false)
                        .await
                        .err()
                        .map(|e| format!("{name}: {e}"))
                }
            })
            .collect();
        let deletes: Vec<_> = plan
            .delete
            .iter()
            .map(|name| {
                let key = ResourceKey {
                    group: "argoproj.io".into(),
                    kind: "Application".into(),
                    namespace: self.options.namespace.clone(),
                    name: name.clone(),
                };
                let uid = existing
                    .get(name)
                    .and_then(|e| e.metadata.get("uid"))
                    .and_then(Value::as_str)
                    .map(str::to_string);
                let (cluster, kind) = (self.cluster.clone(), Arc::clone(&kind));
                async move {
                    cluster
                        .delete(&kind, &key, uid.as_deref())
                        .await
                        .err()
                        .map(|e| format!("{}: {e}", key.name))
                }
            })
            .collect();
        let mut errors: Vec<String> = futures::stream::iter(applies)
            .buffer_unordered(AT_ONCE)
            .filter_map(|e| async move { e })
            .collect()
            .await;
        let delete_errors: Vec<String> = futures::stream::iter(deletes)
            .buffer_unordered(AT_ONCE)
            .filter_map(|e| async move { e })
            .collect()
            .await;
        errors.extend(delete_errors);
        errors.sort();
        errors
    }

    /// The clusters a `clusters` generator chooses from: the in-cluster
    /// destination and Argo CD's cluster Secrets in the namespace.
    async fn cluster_catalog(&self) -> Result<Vec<ClusterEntry>, String> {
        let kind = Kind {
            resource: kube::core::ApiResource::from_gvk_with_plural(
                &kube::core::GroupVersionKind::gvk("", "v1", "Secret"),
                "secrets",
            ),
            namespaced: true,
        };
        let secrets = self
            .cluster
            .list(&kind, &self.options.namespace)
            .await
            .map_err(|e| format!("clusters generator: cannot list cluster Secrets: {e}"))?;
        Ok(crate::generators::clusters_from_secrets(&secrets))
    }

    /// Publishes an ApplicationSet's status: its conditions (kept from the
    /// last pass when `conditions` is `None`) and its applications' status.
    async fn appset_publish(
        &self,
        name: &str,
        declared: &DeclaredSet,
        conditions: Vec<AppSetCondition>,
    ) {
        let previous = self.appsets.view(name).and_then(|v| v.status);
        let mut conditions = conditions;
        conditions.retain(|c| c.type_ != "RolloutProgressing");
        let application_status = match rolling_sync(&declared.set) {
            Ok(Some(strategy)) => {
                let (statuses, progressing) = self.rollout_refresh(name, strategy, &previous);
                conditions.push(progressing);
                statuses
            }
            _ => {
                lock(&self.appsets.rollouts).remove(name);
                Vec::new()
            }
        };
        let mut status = ApplicationSetStatus {
            conditions,
            application_status,
            resources: self.appset_resources(name),
        };
        // A condition that did not change keeps the time it last changed.
        for c in &mut status.conditions {
            if let Some(old) = previous.as_ref().and_then(|p| {
                p.conditions
                    .iter()
                    .find(|o| o.type_ == c.type_ && o.status == c.status && o.message == c.message)
            }) {
                c.last_transition_time.clone_from(&old.last_transition_time);
            }
        }
        let mut view = declared.set.clone();
        view.status = Some(status);
        let view = Arc::new(view);
        self.appsets
            .views
            .write()
            .expect("views lock is never poisoned")
            .insert(name.to_string(), Arc::clone(&view));
        if declared.in_cluster {
            self.write_appset_status(name, &view).await;
        }
    }

    /// Gathers the applications' status into an ApplicationSet's, keeping
    /// the conditions of its last pass.
    async fn appset_refresh_status(&self, name: &str) {
        let (Some(declared), Some(view)) = (self.appsets.declared(name), self.appsets.view(name))
        else {
            return;
        };
        let conditions = view.status.map(|s| s.conditions).unwrap_or_default();
        self.appset_publish(name, &declared, conditions).await;
    }

    /// Recomputes an ApplicationSet's RollingSync from its applications'
    /// status now: the steps, which applications are done, which stop
    /// syncing; queues the ones that waited so they ask the gate again.
    /// Returns each application's progress and the `RolloutProgressing`
    /// condition.
    fn rollout_refresh(
        &self,
        name: &str,
        strategy: &RollingSync,
        previous: &Option<ApplicationSetStatus>,
    ) -> (Vec<AppSetApplicationStatus>, AppSetCondition) {
        let mut members = Vec::new();
        let mut states = BTreeMap::new();
        {
            let apps = self.apps.read().expect("app map lock is never poisoned");
            for (app, slot) in apps.iter() {
                let declared = slot.declared();
                if owning_appset(app, &declared.app) != Some(name) {
                    continue;
                }
                let labels: BTreeMap<String, String> = declared
                    .app
                    .metadata
                    .labels
                    .clone()
                    .unwrap_or_default()
                    .into_iter()
                    .collect();
                members.push((app.clone(), labels));
                let status = slot.status.read().expect("status lock is never poisoned");
                let repo = declared
                    .app
                    .spec
                    .all_sources()
                    .first()
                    .and_then(|s| normalize_url(&s.repo_url).ok())
                    .unwrap_or_default();
                states.insert(
                    app.clone(),
                    rollout::AppState {
                        done: status.sync.status == SyncStatusCode::Synced
                            && status.health.status == HealthStatusCode::Healthy,
                        repo,
                        revision: status.sync.revision.clone(),
                    },
                );
            }
        }
        let steps = rollout::steps(strategy, &members).unwrap_or_default();
        let waiting = {
            let mut rollouts = lock(&self.appsets.rollouts);
            let r = rollouts.entry(name.to_string()).or_default();
            r.in_flight
                .retain(|a| states.get(a).is_some_and(|s| !s.done));
            let print = hash_of(&(
                &steps.steps,
                states
                    .iter()
                    .map(|(a, s)| (a, s.done, &s.revision))
                    .collect::<Vec<_>>(),
                &r.in_flight,
            ));
            r.steps = steps;
            r.states = states;
            // Held applications ask again only when what the gate reads
            // moved: a held one costs nothing while its step stays shut.
            if std::mem::replace(&mut r.print, print) == print {
                r.waiting.clone()
            } else {
                let waiting = std::mem::take(&mut r.waiting);
                for app in &waiting {
                    self.enqueue(app);
                }
                waiting
            }
        };
        let rollouts = lock(&self.appsets.rollouts);
        let r = rollouts.get(name).expect("inserted above");
        let old_time = |app: &str, status: &str| {
            previous
                .as_ref()
                .and_then(|p| {
                    p.application_status
                        .iter()
                        .find(|a| a.application == app && a.status == status)
                })
                .and_then(|a| a.last_transition_time.clone())
        };
        let mut statuses = Vec::new();
        for (i, names) in r.steps.steps.iter().enumerate() {
            for app in names {
                let state = r.states.get(app).cloned().unwrap_or_default();
                let (status, message) = if state.done {
                    ("Healthy", "Synced and Healthy".to_string())
                } else if r.in_flight.contains(app) {
                    ("Progressing", "syncing".to_string())
                } else if waiting.contains(app) {
                    (
                        "Waiting",
                        format!("waiting for the steps before step {}", i + 1),
                    )
                } else {
                    ("Pending", "not yet synced".to_string())
                };
                statuses.push(AppSetApplicationStatus {
                    application: app.clone(),
                    status: status.into(),
                    step: (i + 1).to_string(),
                    message,
                    target_revisions: vec![state.revision.clone()]
                        .into_iter()
                        .filter(|r| !r.is_empty())
                        .collect(),
                    last_transition_time: old_time(app, status).or_else(|| Some(now())),
                });
            }
        }
        let pending = statuses.iter().filter(|s| s.status != "Healthy").count();
        let progressing = if pending == 0 {
            appset_condition(
                "RolloutProgressing",
                false,
                "ApplicationSetRolloutComplete",
                "every step is Synced and Healthy",
            )
        } else {
            appset_condition(
                "RolloutProgressing",
                true,
                "ApplicationSetModified",
                format!("{pending} applications are not yet Synced and Healthy"),
            )
        };
        (statuses, progressing)
    }

    /// Whether an application's automated sync to `revision` waits for its
    /// ApplicationSet's RollingSync; `None` when it may go (or belongs to no
    /// rollout). An application let through counts as syncing in its step
    /// until it is Synced and Healthy.
    pub(super) fn rollout_gate(
        &self,
        app_name: &str,
        app: &Application,
        revision: &str,
    ) -> Option<String> {
        let set = owning_appset(app_name, app)?;
        let declared = self.appsets.declared(set)?;
        if !matches!(rolling_sync(&declared.set), Ok(Some(_))) {
            return None;
        }
        let mut rollouts = lock(&self.appsets.rollouts);
        let Some(r) = rollouts.get_mut(set) else {
            // Not computed yet (a start, a new set): wait for the batch.
            drop(rollouts);
            self.appsets.mark_dirty(set);
            lock(&self.appsets.rollouts)
                .entry(set.to_string())
                .or_default()
                .waiting
                .insert(app_name.to_string());
            return Some("waiting for the ApplicationSet's rollout to be computed".into());
        };
        let repo = app
            .spec
            .all_sources()
            .first()
            .and_then(|s| normalize_url(&s.repo_url).ok())
            .unwrap_or_default();
        match rollout::gate(
            &r.steps,
            &r.states,
            &r.in_flight,
            app_name,
            (&repo, revision),
        ) {
            rollout::Gate::Open => {
                r.in_flight.insert(app_name.to_string());
                None
            }
            rollout::Gate::Waiting(why) => {
                r.waiting.insert(app_name.to_string());
                Some(format!("ApplicationSet {set}: {why}"))
            }
        }
    }

    /// Each application the ApplicationSet owns, with its sync and health.
    fn appset_resources(&self, name: &str) -> Vec<AppSetResource> {
        let apps = self.apps.read().expect("app map lock is never poisoned");
        apps.iter()
            .filter(|(app, slot)| owning_appset(app, &slot.declared().app) == Some(name))
            .map(|(app, slot)| {
                let status = slot.status.read().expect("status lock is never poisoned");
                AppSetResource {
                    group: "argoproj.io".into(),
                    version: "v1alpha1".into(),
                    kind: "Application".into(),
                    namespace: self.options.namespace.clone(),
                    name: app.clone(),
                    status: serde_json::to_value(status.sync.status)
                        .ok()
                        .and_then(|v| v.as_str().map(str::to_string))
                        .unwrap_or_default(),
                    health: Some(status.health.clone()),
                }
            })
            .collect()
    }

    /// Writes the status to the ApplicationSet object unless it already
    /// carries it (Plumb's own write is the only writer it compares with).
    async fn write_appset_status(&self, name: &str, view: &ApplicationSet) {
        // Bounded like an Application's: a set of thousands would pass
        // etcd's object size limit; the API shows every entry.
        let mut status = view.status.clone().unwrap_or_default();
        status.resources.truncate(status::CR_RESOURCES);
        status.application_status.truncate(status::CR_RESOURCES);
        let document = json!({ "status": status });
        let print = registry::status_fingerprint(&document);
        if lock(&self.appsets.written).get(name) == Some(&print) {
            return;
        }
        let api: Api<DynamicObject> = Api::namespaced_with(
            self.cluster.client().clone(),
            &self.options.namespace,
            &registry::applicationset_resource(),
        );
        let (params, patch) = (PatchParams::default(), Patch::Merge(&document));
        let write = api.patch_status(name, &params, &patch);
        match tokio::time::timeout(self.options.request_timeout, write).await {
            Ok(Ok(_)) => {
                lock(&self.appsets.written).insert(name.to_string(), print);
            }
            Ok(Err(e)) => {
                tracing::warn!(appset = %name, error = %e, "cannot write ApplicationSet status")
            }
            Err(_) => tracing::warn!(appset = %name, "writing ApplicationSet status timed out"),
        }
    }

    /// Confirms the deletions an ApplicationSet's pass held, if `token`
    /// names them, and runs a pass.
    pub(super) fn confirm_appset_deletion(
        &self,
        name: &str,
        token: &str,
    ) -> Result<(), ServiceError> {
        if self.appsets.declared(name).is_none() {
            return Err(ServiceError::AppSetNotFound(name.to_string()));
        }
        lock(&self.appsets.confirmations).insert(name.to_string(), token.to_string());
        self.appsets.enqueue(name);
        Ok(())
    }

    /// Queues a pass of every ApplicationSet (a new leader's).
    pub(super) fn pass_every_appset(&self) {
        for name in self.appsets.names() {
            self.appsets.enqueue(&name);
        }
    }

    /// The first full list of Application objects is in: every set may
    /// run its pass now.
    pub(super) fn apps_listed(&self) {
        if !self.appsets.listed.swap(true, Ordering::SeqCst) {
            self.pass_every_appset();
        }
    }

    /// After a fetch of `url`: runs a pass of every ApplicationSet whose git
    /// generators' revisions on it now resolve to another commit than at
    /// its last pass (a fetch that moved nothing costs no pass).
    pub(super) async fn appsets_fetched(&self, url: &str) {
        let sets = self.appsets.on_repo(url);
        if sets.is_empty() {
            return;
        }
        let wanted: Vec<(String, Resolved)> = {
            let revisions = lock(&self.appsets.revisions);
            sets.into_iter()
                .map(|name| {
                    let last = revisions.get(&name).cloned().unwrap_or_default();
                    (name, last)
                })
                .collect()
        };
        let repos = Arc::clone(&self.repos);
        let url = url.to_string();
        let moved = tokio::task::spawn_blocking(move || {
            wanted
                .into_iter()
                .filter(|(_, last)| {
                    // A set with no record yet (or an unresolvable revision)
                    // runs its pass.
                    last.is_empty()
                        || last.iter().any(|((u, revision), commit)| {
                            u == &url
                                && repos.resolve(u, revision).ok().as_deref()
                                    != Some(commit.as_str())
                        })
                })
                .map(|(name, _)| name)
                .collect::<Vec<_>>()
        })
        .await
        .unwrap_or_default();
        for name in moved {
            self.appsets.enqueue(&name);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pass_over_many_applications_writes_short_conditions() {
        let errors: Vec<String> = (0..500).map(|i| format!("app-{i}: refused")).collect();
        let plan = AppSetPlan {
            conflicts: (0..500).map(|i| format!("theirs-{i}")).collect(),
            ..AppSetPlan::default()
        };
        let conditions = outcome_conditions(&plan, &errors);
        for c in &conditions {
            assert!(
                c.message.len() < 1000,
                "{}: {} bytes",
                c.type_,
                c.message.len()
            );
        }
        let error = conditions
            .iter()
            .find(|c| c.type_ == "ErrorOccurred")
            .expect("ErrorOccurred");
        assert_eq!(error.status, "True");
        assert!(error.message.ends_with("and 490 more"), "{}", error.message);
    }
}
