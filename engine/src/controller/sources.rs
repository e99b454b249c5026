//! Merging the application sources (`--apps` files, Application CRs) into the
//! set of managed applications. A change of one application costs work for
//! that application only; a full set (the files, a relist) costs one pass.

use super::*;

/// The applications each source declares, by name.
#[derive(Default)]
pub(super) struct Sources {
    files: BTreeMap<String, Arc<Declared>>,
    cluster: BTreeMap<String, Arc<Declared>>,
}

impl Sources {
    /// The Application objects of the namespace.
    pub(super) fn cluster_apps(&self) -> impl Iterator<Item = &Arc<Declared>> {
        self.cluster.values()
    }
}

/// By name; of two declarations of one name the first is kept.
fn by_name(apps: Vec<Declared>) -> BTreeMap<String, Arc<Declared>> {
    let mut out = BTreeMap::new();
    for d in apps {
        let name = app_name(&d);
        if out.contains_key(&name) {
            tracing::warn!(app = %name, origin = ?d.origin, "two applications share a name; the first is kept");
            continue;
        }
        out.insert(name, Arc::new(d));
    }
    out
}

impl Inner {
    /// Applies a batch of source updates.
    pub(super) fn apply_source_updates(self: &Arc<Self>, updates: Vec<SourceUpdate>) {
        // Names whose declaration may have changed, and their declaration
        // now: a file's wins over an Application object's of the same name.
        let mut listed = false;
        let decided: Vec<(String, Option<Arc<Declared>>)> = {
            let mut sources = self.sources.lock().expect("sources lock is never poisoned");
            let mut touched: BTreeSet<String> = BTreeSet::new();
            for update in updates {
                match update {
                    SourceUpdate::Files(Ok(apps)) => {
                        let files = by_name(apps);
                        touched.extend(sources.files.keys().cloned());
                        touched.extend(files.keys().cloned());
                        sources.files = files;
                    }
                    SourceUpdate::Files(Err(e)) => {
                        // A half-edited file must never remove applications.
                        tracing::error!(error = %e, "cannot read --apps; keeping the applications read before");
                    }
                    SourceUpdate::ClusterAll(apps) => {
                        listed = true;
                        let cluster = by_name(apps);
                        touched.extend(sources.cluster.keys().cloned());
                        touched.extend(cluster.keys().cloned());
                        sources.cluster = cluster;
                    }
                    SourceUpdate::ClusterApplied(declared) => {
                        let name = app_name(&declared);
                        touched.insert(name.clone());
                        sources.cluster.insert(name, Arc::new(*declared));
                    }
                    SourceUpdate::ClusterDeleted(name) => {
                        sources.cluster.remove(&name);
                        touched.insert(name);
                    }
                    update @ (SourceUpdate::AppSetFiles(_)
                    | SourceUpdate::AppSetClusterAll(_)
                    | SourceUpdate::AppSetCluster(..)) => self.apply_appset_update(update),
                }
            }
            touched
                .into_iter()
                .map(|name| {
                    let file = sources.files.get(&name);
                    let object = sources.cluster.get(&name);
                    if let (Some(f), Some(o)) = (file, object) {
                        tracing::warn!(app = %name, kept = ?f.origin, ignored = ?o.origin, "two applications share a name");
                    }
                    let winner = file.or(object).cloned();
                    (name, winner)
                })
                .collect()
        };
        let mut changed = Vec::new();
        let mut removed = Vec::new();
        {
            let mut apps = self.apps.write().expect("app map lock is never poisoned");
            for (name, declared) in decided {
                match (declared, apps.get(&name)) {
                    (None, Some(_)) => {
                        if let Some(slot) = apps.remove(&name) {
                            removed.push((name, slot));
                        }
                    }
                    (None, None) => {}
                    (Some(declared), Some(slot)) => {
                        let mut current = slot
                            .declared
                            .write()
                            .expect("declared lock is never poisoned");
                        let same = current.app.spec == declared.app.spec
                            && current.unsupported == declared.unsupported
                            && current.origin == declared.origin
                            && current.app.metadata.deletion_timestamp
                                == declared.app.metadata.deletion_timestamp
                            && current.app.metadata.finalizers == declared.app.metadata.finalizers;
                        // Metadata (labels) may have changed either way;
                        // only a spec change, a deletion or a change of
                        // finalizers needs a new reconcile.
                        *current = declared;
                        if !same {
                            changed.push(name);
                        }
                    }
                    (Some(declared), None) => {
                        apps.insert(name.clone(), AppSlot::new(declared));
                        changed.push(name);
                    }
                }
            }
        }
        for (name, slot) in removed {
            if let Some(set) = appsets::owning_appset(&slot.declared().app) {
                self.appsets.mark_dirty(set);
            }
            if slot.cascaded.load(Ordering::Relaxed) {
                tracing::info!(app = %name, "application removed after its resources were deleted (resources finalizer)");
            } else {
                tracing::info!(app = %name, "application removed; its objects are left in place (no resources finalizer)");
            }
            let app = self.document(&name, &slot);
            let _ = self.events.send(AppEvent {
                type_: "DELETED",
                application: app,
            });
        }
        for name in changed {
            self.enqueue(&name);
        }
        // After the sources took the list in, so a pass sees it.
        if listed {
            self.apps_listed();
        }
    }
}
