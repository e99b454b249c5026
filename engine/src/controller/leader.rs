//! Which applications this replica writes for (leader election and shards
//! are in `crate::lease`; every write asks [`Inner::owns`] or goes through
//! a fenced `Cluster`), and what it does when it takes a shard (the one
//! shard of leader election included): it takes the history the previous
//! holder wrote into the Application objects' status into its store,
//! writes the status of the shard's applications, compares them again (an
//! automated sync a follower skipped starts now, an `operation` field a
//! follower left is started) and, with shard 0, passes every
//! ApplicationSet.

use super::*;

/// Application objects read per page when the history is taken over.
const PAGE: u32 = 500;

impl Inner {
    /// Whether this replica holds shard 0: it runs the ApplicationSets.
    pub(super) fn leads(&self) -> bool {
        self.options.shards.lease(0).is_leader()
    }

    /// Whether this replica writes for `name` now.
    pub(super) fn owns(&self, name: &str) -> bool {
        self.options.shards.owns(name)
    }

    /// Whether this replica compares `name`: every application with one
    /// shard (followers compare too), only its shards' with several.
    pub(super) fn compares(&self, name: &str) -> bool {
        self.options.shards.count() == 1 || self.owns(name)
    }

    /// The cluster an operation of `name` writes through: with several
    /// shards, fenced by the application's shard (one shard: the cluster's
    /// own fence is its Lease already).
    pub(super) fn write_cluster(&self, cluster: &Cluster, name: &str) -> Cluster {
        if self.options.shards.count() == 1 {
            cluster.clone()
        } else {
            cluster
                .clone()
                .with_fence(self.options.shards.lease_of(name).clone())
        }
    }

    /// Follows the election of each shard: each time this replica takes
    /// one, [`Inner::took_over`].
    pub(super) fn follow_leadership(self: &Arc<Self>) {
        for index in 0..self.options.shards.count() {
            let lease = self.options.shards.lease(index);
            if !lease.elects() {
                continue;
            }
            let mut changes = lease.subscribe();
            let weak = Arc::downgrade(self);
            let stop = self.cancel.clone();
            tokio::spawn(async move {
                loop {
                    tokio::select! {
                        () = stop.cancelled() => return,
                        changed = changes.changed() => if changed.is_err() { return },
                    }
                    let leads = *changes.borrow_and_update();
                    let Some(inner) = weak.upgrade() else { return };
                    if leads {
                        inner.took_over(index).await;
                    }
                }
            });
        }
    }

    /// This replica took shard `index`.
    async fn took_over(self: &Arc<Self>, index: usize) {
        let imported = match self.import_cr_history().await {
            Ok(n) => n,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the Application objects' history; the store's is used");
                0
            }
        };
        tracing::info!(
            shard = index,
            imported,
            "holding the shard: its applications are compared again and their status written"
        );
        for name in self.names() {
            if self.options.shards.of(&name) != index {
                continue;
            }
            let Some(slot) = self.slot(&name) else {
                continue;
            };
            if slot.declared().origin == Origin::Cluster {
                self.status_writes.push(name.clone());
            }
            // The policy reads its last sync from the history taken over,
            // and the comparison is made again; a reconcile running now
            // (a follower's comparison) is waited for in a task of its own.
            let inner = Arc::clone(self);
            tokio::spawn(async move {
                {
                    let mut work = slot.work.lock().await;
                    work.loaded = false;
                    work.last_key = None;
                }
                inner.enqueue(&name);
            });
        }
        if index == 0 {
            self.pass_every_appset();
        }
    }

    /// An operation the Application object shows `Running` was cut off
    /// with its leader: it is recorded as Failed, saying so (the next
    /// reconcile syncs again where the policy says to), unless this
    /// replica's store holds a later one.
    fn take_over_operation(&self, name: &str, object: &DynamicObject) {
        let Some(op) = object
            .data
            .pointer("/status/operationState")
            .and_then(|v| serde_json::from_value::<OperationState>(v.clone()).ok())
        else {
            return;
        };
        if op.phase != OperationPhase::Running {
            return;
        }
        let newer = self
            .store
            .operation(name)
            .ok()
            .flatten()
            .is_some_and(|mine| mine.started_at >= op.started_at);
        if newer {
            return;
        }
        let mut op = op;
        op.phase = OperationPhase::Failed;
        op.message = format!(
            "the leader running this operation (it started at {}) stopped before it finished; it did not finish",
            op.started_at
        );
        op.finished_at = Some(now());
        match self.store.set_operation(name, &op) {
            Ok(()) => {
                tracing::warn!(app = %name, "an operation of the previous leader was cut off; recorded as Failed")
            }
            Err(e) => {
                tracing::warn!(app = %name, error = %e, "cannot record the cut-off operation")
            }
        }
    }

    /// Takes the `status.history` of every managed Application object into
    /// the store; returns how many entries were new.
    async fn import_cr_history(&self) -> Result<usize, kube::Error> {
        let api: Api<DynamicObject> = if self.namespaces.has_others() {
            Api::all_with(
                self.cluster.client().clone(),
                &registry::application_resource(),
            )
        } else {
            Api::namespaced_with(
                self.cluster.client().clone(),
                self.namespaces.home(),
                &registry::application_resource(),
            )
        };
        let mut imported = 0;
        let mut params = kube::api::ListParams::default().limit(PAGE);
        loop {
            let page = api.list(&params).await?;
            for object in &page.items {
                let namespace = object.metadata.namespace.as_deref().unwrap_or_default();
                if !self.namespaces.manages(namespace) {
                    continue;
                }
                let name = self.namespaces.key(
                    namespace,
                    object.metadata.name.as_deref().unwrap_or_default(),
                );
                self.take_over_operation(&name, object);
                let Some(history) = object.data.pointer("/status/history") else {
                    continue;
                };
                let Ok(entries) = serde_json::from_value::<Vec<RevisionHistory>>(history.clone())
                else {
                    tracing::warn!(app = %name, "the Application's status.history cannot be read; not taken over");
                    continue;
                };
                match self.store.import_history(&name, &entries) {
                    Ok(n) => imported += n,
                    Err(e) => {
                        tracing::warn!(app = %name, error = %e, "cannot store the Application's history")
                    }
                }
            }
            match page.metadata.continue_.filter(|c| !c.is_empty()) {
                Some(token) => params = params.continue_token(&token),
                None => return Ok(imported),
            }
        }
    }
}
