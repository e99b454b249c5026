//! Merging the application sources (`--apps` files, Application CRs) into the
//! set of managed applications. A change of one application costs work for
//! that application only; a full set (the files, a relist) costs one pass.

use super::*;

/// The applications each source declares, by name (`NAMESPACE/NAME` for
/// an Application object outside the application namespace).
#[derive(Default)]
pub(super) struct Sources {
    files: BTreeMap<String, Arc<Declared>>,
    /// Per watch of Application objects (their namespaces do not overlap).
    cluster: BTreeMap<Watched, BTreeMap<String, Arc<Declared>>>,
}

impl Sources {
    /// The Application objects of the application namespace.
    pub(super) fn home_apps(&self) -> impl Iterator<Item = &Arc<Declared>> {
        self.cluster
            .get(&Watched::Home)
            .into_iter()
            .flat_map(BTreeMap::values)
    }

    fn cluster_app(&self, name: &str) -> Option<&Arc<Declared>> {
        self.cluster.values().find_map(|apps| apps.get(name))
    }
}

/// By name; of two declarations of one name the first is kept.
fn by_name(apps: Vec<Declared>, namespaces: &AppNamespaces) -> BTreeMap<String, Arc<Declared>> {
    let mut out = BTreeMap::new();
    for d in apps {
        let name = app_name(&d, namespaces);
        if out.contains_key(&name) {
            tracing::warn!(app = %name, origin = ?d.origin, "two applications share a name; the first is kept");
            continue;
        }
        out.insert(name, Arc::new(d));
    }
    out
}

/// The watch an Application object in `namespace` comes from.
fn watched_of(namespace: &str, namespaces: &AppNamespaces) -> Watched {
    if namespace == namespaces.home() {
        Watched::Home
    } else if namespaces.exact_others().is_some() {
        Watched::Namespace(namespace.to_string())
    } else {
        Watched::Matching
    }
}

impl Inner {
    /// Applies a batch of source updates.
    pub(super) fn apply_source_updates(self: &Arc<Self>, updates: Vec<SourceUpdate>) {
        // Projects first (the batch lists them first): applications of
        // this batch are compared under them.
        let (projects, updates): (Vec<_>, Vec<_>) = updates.into_iter().partition(|u| {
            matches!(
                u,
                SourceUpdate::ProjectFiles(_)
                    | SourceUpdate::ProjectClusterAll(_)
                    | SourceUpdate::ProjectCluster(..)
            )
        });
        self.apply_project_updates(projects);
        // Names whose declaration may have changed, and their declaration
        // now: a file's wins over an Application object's of the same name.
        let mut listed = false;
        let decided: Vec<(String, Option<Arc<Declared>>)> = {
            let mut sources = self.sources.lock().expect("sources lock is never poisoned");
            let mut touched: BTreeSet<String> = BTreeSet::new();
            for update in updates {
                match update {
                    SourceUpdate::Files(Ok(apps)) => {
                        let files = by_name(apps, &self.namespaces);
                        touched.extend(sources.files.keys().cloned());
                        touched.extend(files.keys().cloned());
                        sources.files = files;
                    }
                    SourceUpdate::Files(Err(e)) => {
                        // A half-edited file must never remove applications.
                        tracing::error!(error = %e, "cannot read --apps; keeping the applications read before");
                    }
                    SourceUpdate::ClusterAll(watched, apps) => {
                        listed |= watched == Watched::Home;
                        let cluster = by_name(apps, &self.namespaces);
                        touched.extend(cluster.keys().cloned());
                        if let Some(before) = sources.cluster.insert(watched, cluster) {
                            touched.extend(before.into_keys());
                        }
                    }
                    SourceUpdate::ClusterApplied(declared) => {
                        let name = app_name(&declared, &self.namespaces);
                        let meta = &declared.app.metadata;
                        let namespace = meta.namespace.as_deref().unwrap_or_default();
                        let watched = watched_of(namespace, &self.namespaces);
                        touched.insert(name.clone());
                        sources
                            .cluster
                            .entry(watched)
                            .or_default()
                            .insert(name, Arc::new(*declared));
                    }
                    SourceUpdate::ClusterDeleted(namespace, name) => {
                        let name = self.namespaces.key(&namespace, &name);
                        for apps in sources.cluster.values_mut() {
                            apps.remove(&name);
                        }
                        touched.insert(name);
                    }
                    update @ (SourceUpdate::AppSetFiles(_)
                    | SourceUpdate::AppSetClusterAll(_)
                    | SourceUpdate::AppSetCluster(..)) => self.apply_appset_update(update),
                    SourceUpdate::ProjectFiles(_)
                    | SourceUpdate::ProjectClusterAll(_)
                    | SourceUpdate::ProjectCluster(..) => {}
                }
            }
            touched
                .into_iter()
                .map(|name| {
                    let file = sources.files.get(&name);
                    let object = sources.cluster_app(&name);
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
                            && current.app.metadata.finalizers == declared.app.metadata.finalizers
                            && current.operation == declared.operation;
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
            if let Some(set) = appsets::owning_appset(&name, &slot.declared().app) {
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
