//! An Application object being deleted: its syncs stop at once, and with
//! the resources finalizer its resources are deleted (the cascade) before
//! the finalizer is removed and the object goes. Without the finalizer
//! nothing is deleted: the objects stay, as before. An application of an
//! `--apps` file has no object and never comes here.
//!
//! The rules (which variant, which objects, when the finalizer may go) are
//! `plumb_core::cascade`; this module reads the live index, deletes through
//! `cluster` and patches the finalizer through `registry`. It never sleeps:
//! a cascade still waiting is compared again when the live watch reports its
//! objects' changes, and after [`CASCADE_RECHECK`] at the latest.

use kube::api::PropagationPolicy;
use plumb_core::cascade::{self, Cascade, Owned};

use super::*;

/// When a cascade still waiting looks again if no watch event came first.
const CASCADE_RECHECK: Duration = Duration::from_secs(2);

/// The condition type of a cascade that failed (Argo CD's `DeletionError`).
const DELETION_ERROR: &str = "DeletionError";

/// Deletes a cascade has in flight at once.
const DELETE_CONCURRENCY: usize = 8;

impl Inner {
    /// When the application's Application object is being deleted: advances
    /// its cascade (if it has the resources finalizer), publishes what it
    /// is doing and returns true; nothing else may run for it then (no
    /// comparison that could sync, no operation). False otherwise.
    pub(super) async fn finalize_deleted(
        self: &Arc<Self>,
        name: &str,
        slot: &AppSlot,
        work: &mut AppWork,
        declared: &Declared,
    ) -> bool {
        let meta = &declared.app.metadata;
        if declared.origin != Origin::Cluster || meta.deletion_timestamp.is_none() {
            return false;
        }
        // The leader advances the cascade; a follower only waits for it.
        if !self.owns(name) {
            return true;
        }
        // An operation still running must not apply anything more.
        if let Some(running) = slot.running().as_ref() {
            running.cancel.cancel();
        }
        self.end_waiting(
            name,
            slot,
            work,
            "the Application object is being deleted: the operation stopped",
        );
        let mut status = slot.status();
        status.conditions.retain(|c| c.type_ != DELETION_ERROR);
        let finalizers = meta.finalizers.clone().unwrap_or_default();
        let Some(cascade) = cascade::cascade(finalizers.iter().map(String::as_str)) else {
            let message = if slot.cascaded.load(Ordering::Relaxed) {
                "the Application object is being deleted; its resources were deleted, other finalizers hold it"
            } else {
                "the Application object is being deleted without the resources finalizer: its resources are left in place"
            };
            if !slot.deletion_seen.swap(true, Ordering::Relaxed) {
                tracing::info!(app = %name, "{message}");
            }
            status.health = Health::new(HealthStatusCode::Progressing, message);
            self.publish(name, slot, status);
            return true;
        };
        if !slot.deletion_seen.swap(true, Ordering::Relaxed) {
            tracing::info!(app = %name, cascade = ?cascade, "the Application object is being deleted with the resources finalizer: deleting its resources first");
        }

        // The cascade deletes on the application's cluster; while that
        // cannot be reached (or named), the finalizer stays and nothing is
        // deleted.
        let project = plumb_core::project::project_of(&declared.app);
        let dest = match self
            .dests
            .resolve(&declared.app.spec.destination, project)
            .await
        {
            Ok((_, d)) if d.state().status == crate::destinations::Status::Successful => d,
            other => {
                let why = match other {
                    Ok((cluster, d)) => ReconcileError::Unreachable {
                        cluster,
                        server: d.server.clone(),
                        message: d.state().message,
                    }
                    .to_string(),
                    Err(e) => e.to_string(),
                };
                status.health = Health::new(
                    HealthStatusCode::Progressing,
                    "the application's resources cannot be deleted yet",
                );
                status.conditions.push(condition(DELETION_ERROR, why));
                self.enqueue_after_jittered(name, error::retry_after(work.failures));
                work.failures = work.failures.saturating_add(1);
                status.reconciled_at = Some(now());
                self.publish(name, slot, status);
                return true;
            }
        };
        // Every kind the application may have objects of must be watched,
        // or the cascade would miss them and remove the finalizer early.
        let unwatched = self
            .watch_kinds_for_deletion(&dest, name, work, declared)
            .await;
        let tracked = dest.live.tracked(name);
        let owned: Vec<Owned> = tracked
            .iter()
            .map(|(key, live)| Owned {
                key: key.clone(),
                api_version: live.api_version().to_string(),
                uid: live.uid().to_string(),
                sync_options: live.sync_options().map(str::to_string),
                resource_policy: live.resource_policy().map(str::to_string),
                deleting: live.deleting(),
            })
            .collect();
        let (app_namespace, app_object) = self.namespaces.split(name);
        let plan = cascade::deletion_plan(&owned, app_object, app_namespace);
        let propagation = match cascade {
            Cascade::Foreground => PropagationPolicy::Foreground,
            Cascade::Background => PropagationPolicy::Background,
        };
        let deletes: Vec<_> = plan
            .delete
            .iter()
            .map(|o| {
                let propagation = propagation.clone();
                let dest = &dest;
                async move {
                    let kind = match dest.cluster.resolve(&o.api_version, &o.key.kind).await {
                        Ok(Some(kind)) => kind,
                        Ok(None) => return Ok(()),
                        Err(e) => return Err(format!("{}: {e}", o.key)),
                    };
                    match dest
                        .cluster
                        .delete_with(&kind, &o.key, Some(&o.uid), propagation)
                        .await
                    {
                        Ok(_) => Ok(()),
                        // Not the object that carried the tracking id any more:
                        // not this cascade's to delete.
                        Err(crate::cluster::ClusterError::Replaced(_)) => Ok(()),
                        Err(e) => Err(e.to_string()),
                    }
                }
            })
            .collect();
        let mut failures: Vec<String> = futures::stream::iter(deletes)
            .buffer_unordered(DELETE_CONCURRENCY)
            .filter_map(|r| async move { r.err() })
            .collect()
            .await;
        failures.extend(unwatched);
        for (key, reason) in &plan.kept {
            tracing::debug!(app = %name, object = %key, reason, "kept by the cascade");
        }
        let done = failures.is_empty() && cascade::finalizer_done(cascade, &plan, true);
        let message = if done {
            match registry::remove_resources_finalizers(
                self.cluster.client().clone(),
                app_namespace,
                app_object,
            )
            .await
            {
                Ok(_) => {
                    slot.cascaded.store(true, Ordering::Relaxed);
                    tracing::info!(app = %name, deleted = plan.delete.len(), kept = plan.kept.len(), "resources deleted; resources finalizer removed");
                    "resources deleted; the resources finalizer is removed".to_string()
                }
                Err(e) => {
                    failures.push(e.to_string());
                    "resources deleted; removing the resources finalizer failed".to_string()
                }
            }
        } else {
            format!(
                "deleting the application's resources ({} propagation): {} deleted now, {} still going, {} kept",
                cascade.propagation().to_lowercase(),
                plan.delete.len(),
                plan.waiting.len(),
                plan.kept.len()
            )
        };
        status.health = Health::new(HealthStatusCode::Progressing, message);
        if !failures.is_empty() {
            tracing::warn!(app = %name, failures = ?failures, "the cascade of a deleted application failed in part; retrying");
            status.conditions.push(condition(
                DELETION_ERROR,
                failures.into_iter().take(3).collect::<Vec<_>>().join("; "),
            ));
            self.enqueue_after_jittered(name, error::retry_after(work.failures));
            work.failures = work.failures.saturating_add(1);
        } else {
            work.failures = 0;
            if !done {
                self.enqueue_after(name, CASCADE_RECHECK);
            }
        }
        status.reconciled_at = Some(now());
        self.publish(name, slot, status);
        true
    }

    /// Watches the kinds a deleted application may have objects of: those
    /// of its last render (rendered now when there is none since Plumb
    /// started) and of its last sync. Returns the kinds that cannot be
    /// watched, as failures.
    async fn watch_kinds_for_deletion(
        self: &Arc<Self>,
        dest: &crate::destinations::Dest,
        name: &str,
        work: &mut AppWork,
        declared: &Declared,
    ) -> Vec<String> {
        let namespace = declared
            .app
            .spec
            .destination
            .namespace
            .clone()
            .unwrap_or_default();
        let prepared = match work.render.as_ref().map(RenderCache::manifests) {
            Some(manifests) => self
                .prepare(dest, name, manifests, &namespace, &declared.app.spec)
                .await
                .unwrap_or_default(),
            None => Vec::new(),
        };
        let mut failures = Vec::new();
        for kind in self.kinds_to_watch(dest, name, &prepared).await {
            if let Err(e) = dest.live.watch(&kind, self.options.watch_timeout).await {
                failures.push(e.to_string());
            }
        }
        failures
    }
}
