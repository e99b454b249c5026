//! Status publishing: the Application document the API shows, events on a
//! change, and the bounded status written back to Application CRs.

use super::*;

/// How many history entries and resources the Application CR's status keeps;
/// the full record is in the store and the API.
pub(super) const CR_HISTORY: usize = 5;
pub(super) const CR_RESOURCES: usize = 100;

impl Inner {
    /// The Application document the API shows: spec as declared, status
    /// as computed, full history from the store.
    pub(super) fn document(&self, name: &str, slot: &AppSlot) -> Application {
        let mut app = slot.declared().app.clone();
        let mut status = slot.status();
        status.history = self.store.history(name).unwrap_or_default();
        if status.operation_state.is_none() {
            // Not compared yet since Plumb started: the last operation is
            // in the store.
            status.operation_state = self.store.operation(name).ok().flatten();
        }
        if !self.compares(name) {
            let shard = self.options.shards.of(name);
            status.conditions.push(condition(
                "ShardElsewhere",
                format!(
                    "shard {shard} of {} (holder {:?}) compares and syncs this application, not this replica; its status here is not current: ask that replica",
                    self.options.shards.count(),
                    self.options.shards.lease(shard).holder()
                ),
            ));
        }
        app.metadata.managed_fields = None;
        if slot.declared().origin != Origin::Cluster {
            // An `--apps` file's application is the application namespace's:
            // clients address an application by namespace and name.
            app.metadata.namespace = Some(self.namespaces.home().to_string());
        }
        app.status = Some(status);
        app
    }

    /// Whether `slot` is still the application's: one removed meanwhile
    /// (its Application object went while a reconcile, cascade or sync
    /// still ran) must send no event, since its DELETED event has gone out
    /// and a later MODIFIED would bring it back in clients.
    pub(super) fn is_current(&self, name: &str, slot: &AppSlot) -> bool {
        self.slot(name)
            .is_some_and(|current| std::ptr::eq(Arc::as_ptr(&current), slot))
    }

    /// Makes `status` the application's status. When it changed (beyond
    /// `reconciledAt`), the event stream hears of it and, for an Application
    /// object, the status writer is asked to write it back; an unchanged
    /// status costs neither.
    pub(super) fn publish(self: &Arc<Self>, name: &str, slot: &AppSlot, status: ApplicationStatus) {
        let (changed, health) = {
            // Compared without `reconciledAt`, and without copying either.
            let mut current = slot.status.write().expect("status lock is never poisoned");
            let mut status = status;
            // A condition seen before keeps the time it was first seen, so
            // that a standing warning does not make every reconcile a
            // status change (and a write to the Application object).
            for c in &mut status.conditions {
                if let Some(old) = current
                    .conditions
                    .iter()
                    .find(|o| o.type_ == c.type_ && o.message == c.message)
                {
                    c.last_transition_time.clone_from(&old.last_transition_time);
                }
            }
            current.reconciled_at = None;
            let reconciled_at = status.reconciled_at.take();
            let changed = *current != status;
            let health =
                (current.health.status != status.health.status).then_some(status.health.status);
            status.reconciled_at = reconciled_at;
            *current = status;
            (changed, health)
        };
        if let Some(health) = health
            && self.is_current(name, slot)
        {
            self.record_health(name, health);
        }
        // A slot removed meanwhile tells no one (see `is_current`).
        if changed && self.is_current(name, slot) {
            let declared = slot.declared();
            if declared.origin == Origin::Cluster {
                self.status_writes.push(name.to_string());
            }
            if let Some(set) = appsets::owning_appset(name, &declared.app) {
                self.appsets.mark_dirty(set);
            }
            let _ = self.events.send(AppEvent {
                type_: "MODIFIED",
                application: self.document(name, slot),
            });
        }
    }

    /// The status an Application object should carry: bounded history and
    /// resources, in [`registry::status_document`] form.
    fn cr_status(&self, name: &str, slot: &AppSlot) -> Value {
        let mut status = slot.status();
        let history = self.store.history(name).unwrap_or_default();
        status.history = history
            .iter()
            .rev()
            .take(CR_HISTORY)
            .rev()
            .cloned()
            .collect();
        status.resources.truncate(CR_RESOURCES);
        registry::status_document(&status)
    }

    /// Writes an application's status to its Application object unless the
    /// object already carries it. Runs in the status writer, never in a
    /// reconcile: many changes of one application coalesce into one write,
    /// and a sync never waits for it.
    pub(super) async fn write_cr_status(&self, name: &str) {
        // Only the leader writes; it writes every status when it becomes
        // the leader.
        if !self.owns(name) {
            return;
        }
        let Some(slot) = self.slot(name) else { return };
        if slot.declared().origin != Origin::Cluster {
            return;
        }
        let value = self.cr_status(name, &slot);
        let fingerprint = registry::status_fingerprint(&value);
        if *slot.written() == Some(fingerprint) {
            return;
        }
        let (namespace, object) = self.namespaces.split(name);
        let api: Api<DynamicObject> = Api::namespaced_with(
            self.cluster.client().clone(),
            namespace,
            &registry::application_resource(),
        );
        let mut patch_value = value;
        patch_value["reconciledAt"] = json!(now());
        match api
            .patch_status(
                object,
                &PatchParams::default(),
                &Patch::Merge(json!({ "status": patch_value })),
            )
            .await
        {
            Ok(_) => *slot.written() = Some(fingerprint),
            // Deleted meanwhile (its cascade removed the last finalizer):
            // its removal follows through the watch.
            Err(kube::Error::Api(s)) if s.code == 404 => {
                tracing::debug!(app = %name, "the Application object is gone; its status is not written")
            }
            Err(e) => {
                tracing::warn!(app = %name, error = %e, "cannot write status to the Application object")
            }
        }
    }
}

pub(super) fn resource_status(
    key: &ResourceKey,
    api_version: Option<&Value>,
    modified: bool,
    health: Option<Health>,
    prune: bool,
) -> ResourceStatus {
    let api_version = api_version.and_then(Value::as_str).unwrap_or_default();
    ResourceStatus {
        group: key.group.clone(),
        version: version_of(api_version).to_string(),
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
