//! Merging the application sources (`--apps` files, Application CRs) into the
//! set of managed applications.

use super::*;

impl Inner {
    pub(super) fn apply_source_update(self: &Arc<Self>, update: SourceUpdate) {
        let merged = {
            let mut sources = self.sources.lock().expect("sources lock is never poisoned");
            match update {
                SourceUpdate::Files(Ok(apps)) => sources.0 = apps,
                SourceUpdate::Files(Err(e)) => {
                    // A half-edited file must never remove applications.
                    tracing::error!(error = %e, "cannot read --apps; keeping the applications read before");
                    return;
                }
                SourceUpdate::Cluster(apps) => sources.1 = apps,
            }
            let mut merged: BTreeMap<String, Declared> = BTreeMap::new();
            for d in sources.0.iter().chain(sources.1.iter()) {
                let name = app_name(d);
                if let Some(first) = merged.get(&name) {
                    tracing::warn!(app = %name, kept = ?first.origin, ignored = ?d.origin, "two applications share a name");
                    continue;
                }
                merged.insert(name, d.clone());
            }
            merged
        };
        let mut changed = Vec::new();
        let mut removed = Vec::new();
        {
            let mut apps = self.apps.write().expect("app map lock is never poisoned");
            apps.retain(|name, slot| {
                let keep = merged.contains_key(name);
                if !keep {
                    removed.push((name.clone(), Arc::clone(slot)));
                }
                keep
            });
            for (name, declared) in merged {
                match apps.get(&name) {
                    Some(slot) => {
                        let mut current = slot
                            .declared
                            .write()
                            .expect("declared lock is never poisoned");
                        let same = current.app.spec == declared.app.spec
                            && current.unsupported == declared.unsupported
                            && current.origin == declared.origin;
                        // Status written back to the CR comes round as an
                        // update; only the spec matters.
                        current.app.metadata = declared.app.metadata.clone();
                        if !same {
                            *current = declared;
                            changed.push(name);
                        }
                    }
                    None => {
                        apps.insert(name.clone(), AppSlot::new(declared));
                        changed.push(name);
                    }
                }
            }
        }
        for (name, slot) in removed {
            tracing::info!(app = %name, "application removed; its objects are left in place");
            let app = self.document(&name, &slot);
            let _ = self.events.send(AppEvent {
                type_: "DELETED",
                application: app,
            });
        }
        for name in changed {
            self.enqueue(&name);
        }
    }
}
