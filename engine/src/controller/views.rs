//! The API's read-only views that are computed on request: managed resources
//! with diffs, and the resource tree.

use super::reconcile::COMPARE_CONCURRENCY;
use super::*;
use crate::destinations::Dest;

impl Inner {
    /// The cluster an application deploys to, for a view: an unknown or
    /// unreachable one is the request's error.
    async fn dest_for(&self, declared: &Declared) -> Result<Arc<Dest>, ServiceError> {
        let project = plumb_core::project::project_of(&declared.app);
        let (cluster, dest) = self
            .dests
            .resolve(&declared.app.spec.destination, project)
            .await
            .map_err(|e| ServiceError::BadRequest(e.to_string()))?;
        if dest.state().status == crate::destinations::Status::Failed {
            return Err(ServiceError::BadRequest(format!(
                "cluster '{cluster}' ({}) is unreachable: {}",
                dest.server,
                dest.state().message
            )));
        }
        Ok(dest)
    }

    /// A live object's JSON, read from the API server (`None` when it is
    /// gone).
    pub(super) async fn live_value(
        &self,
        dest: &Dest,
        key: &ResourceKey,
        live: &Live,
        managed_fields: bool,
    ) -> Result<Option<Value>, String> {
        let kind = dest
            .cluster
            .resolve(live.api_version(), &key.kind)
            .await
            .map_err(|e| e.to_string())?
            .ok_or_else(|| format!("the cluster no longer serves {}", live.api_version()))?;
        let read = if managed_fields {
            dest.cluster.get_with_managed_fields(&kind, key).await
        } else {
            dest.cluster.get(&kind, key).await
        };
        read.map_err(|e| e.to_string())
    }

    pub(super) async fn managed(&self, name: &str) -> Result<Vec<ManagedResource>, ServiceError> {
        let slot = self
            .slot(name)
            .ok_or_else(|| ServiceError::NotFound(name.to_string()))?;
        let (manifests, namespace, rules) = {
            let mut work = slot.work.lock().await;
            let declared = slot.declared();
            let spec = &declared.app.spec;
            // Rules that cannot be used leave the diff unmasked; the
            // application's condition says why.
            let rules = self
                .ignore_rules(&mut work, spec, hash_json(spec))
                .unwrap_or_default();
            let ns = declared
                .app
                .spec
                .destination
                .namespace
                .clone()
                .unwrap_or_default();
            (work.render.as_ref().map(RenderCache::manifests), ns, rules)
        };
        let manifests = manifests.unwrap_or_default();
        let declared = slot.declared();
        let spec = &declared.app.spec;
        let dest = self.dest_for(&declared).await?;
        let prepared = self
            .prepare(&dest, name, manifests, &namespace, spec)
            .await
            .map_err(|e| ServiceError::Internal(e.to_string()))?;
        let tracked = dest.live.tracked(name);
        let dest = &dest;
        let jobs = prepared.iter().map(|p| {
            let live = tracked.get(&p.key).cloned();
            let matched = rules.matching(&p.key);
            async move {
                let managed_fields = matched.as_ref().is_some_and(|m| m.needs_managed_fields());
                // A live object that cannot be read is said so in the diff,
                // not shown as missing.
                let (live, unread) = match &live {
                    Some(l) => match self.live_value(dest, &p.key, l, managed_fields).await {
                        Ok(value) => (value, None),
                        Err(e) => (None, Some(e)),
                    },
                    None => (None, None),
                };
                let mut comparison: Comparison = match (&live, &p.kind) {
                    (Some(l), Some(kind)) => {
                        let own = super::reconcile::object_options(spec, &p.object);
                        match self.dry_run(dest, kind, &p.object, own).await {
                            Ok(predicted) => match &matched {
                                None => diff::compare(Some(l), &predicted),
                                // Ignored fields are left out of both sides,
                                // so they show in no diff.
                                Some(m) => {
                                    let (mut l, mut predicted) = (l.clone(), predicted);
                                    match m.mask(&mut l, &mut predicted) {
                                        Ok(()) => diff::compare(Some(&l), &predicted),
                                        Err(e) => {
                                            let mut c = diff::compare(Some(&l), &predicted);
                                            c.diff =
                                                format!("# ignoreDifferences: {e}\n{}", c.diff);
                                            c
                                        }
                                    }
                                }
                            },
                            Err(e) => {
                                let mut c = diff::compare(Some(l), &p.object);
                                c.diff = format!("# dry run failed: {e}\n{}", c.diff);
                                c
                            }
                        }
                    }
                    _ => diff::compare(None, &p.object),
                };
                if let Some(e) = unread {
                    comparison.diff = format!("# cannot read the live object: {e}\n");
                }
                ManagedResource {
                    group: p.key.group.clone(),
                    kind: p.key.kind.clone(),
                    namespace: p.key.namespace.clone(),
                    name: p.key.name.clone(),
                    target_state: diff::masked(&p.object).to_string(),
                    live_state: live
                        .as_ref()
                        .map(|l| diff::masked(l).to_string())
                        .unwrap_or_default(),
                    normalized_live_state: json_or_empty(&comparison.normalized_live),
                    predicted_live_state: json_or_empty(&comparison.predicted),
                    diff: comparison.diff,
                    modified: comparison.modified,
                }
            }
        });
        let jobs: Vec<_> = jobs.collect();
        let mut items: Vec<ManagedResource> = futures::stream::iter(jobs)
            .buffered(COMPARE_CONCURRENCY)
            .collect()
            .await;
        for (key, live) in &tracked {
            if prepared.iter().any(|p| &p.key == key) {
                continue;
            }
            let (live_state, normalized_live_state, unified) =
                match self.live_value(dest, key, live, false).await {
                    Ok(Some(live)) => {
                        let c = diff::compare(Some(&live), &Value::Null);
                        (
                            diff::masked(&live).to_string(),
                            json_or_empty(&c.normalized_live),
                            diff::unified_diff(&c.normalized_live, &Value::Null),
                        )
                    }
                    // Deleted since: nothing to prune any more.
                    Ok(None) => continue,
                    Err(e) => (
                        String::new(),
                        String::new(),
                        format!("# cannot read the live object: {e}\n"),
                    ),
                };
            items.push(ManagedResource {
                group: key.group.clone(),
                kind: key.kind.clone(),
                namespace: key.namespace.clone(),
                name: key.name.clone(),
                target_state: String::new(),
                live_state,
                normalized_live_state,
                predicted_live_state: String::new(),
                diff: unified,
                modified: true,
            });
        }
        Ok(items)
    }

    pub(super) async fn tree(&self, name: &str) -> Result<ResourceTree, ServiceError> {
        let slot = self
            .slot(name)
            .ok_or_else(|| ServiceError::NotFound(name.to_string()))?;
        let dest = self.dest_for(&slot.declared()).await?;
        let tracked = dest.live.tracked(name);
        let mut nodes: Vec<ResourceNode> = tracked
            .iter()
            .map(|(key, live)| tracked_node(key, live))
            .collect();
        // Children: what the application's workloads own, found through
        // ownerReferences in the namespaces the application uses.
        let namespaces: BTreeSet<String> = tracked
            .keys()
            .filter(|k| {
                matches!(
                    k.kind.as_str(),
                    "Deployment" | "StatefulSet" | "DaemonSet" | "Job" | "CronJob" | "ReplicaSet"
                )
            })
            .map(|k| k.namespace.clone())
            .collect();
        let mut owners: HashMap<String, ParentRef> = tracked
            .iter()
            .map(|(key, live)| {
                let parent = ParentRef {
                    group: key.group.clone(),
                    kind: key.kind.clone(),
                    namespace: key.namespace.clone(),
                    name: key.name.clone(),
                    uid: live.uid().to_string(),
                };
                (parent.uid.clone(), parent)
            })
            .collect();
        let settings = self.dests.own().live.settings();
        for (api_version, kind) in [
            ("batch/v1", "Job"),
            ("apps/v1", "ReplicaSet"),
            ("v1", "Pod"),
        ] {
            let Ok(Some(k)) = dest.cluster.resolve(api_version, kind).await else {
                continue;
            };
            for ns in &namespaces {
                let Ok(objects) = dest.cluster.list(&k, ns).await else {
                    continue;
                };
                for mut o in objects {
                    o["apiVersion"] = json!(api_version);
                    o["kind"] = json!(kind);
                    let parents: Vec<ParentRef> = o
                        .pointer("/metadata/ownerReferences")
                        .and_then(Value::as_array)
                        .into_iter()
                        .flatten()
                        .filter_map(|r| owners.get(r.get("uid")?.as_str()?).cloned())
                        .collect();
                    if parents.is_empty() {
                        continue;
                    }
                    if let Some(p) = parent_ref(&o) {
                        owners.insert(p.uid.clone(), p);
                    }
                    nodes.push(node(&o, parents, &settings));
                }
            }
        }
        Ok(ResourceTree { nodes })
    }
}

fn json_or_empty(value: &Value) -> String {
    if value.is_null() {
        String::new()
    } else {
        value.to_string()
    }
}

fn parent_ref(object: &Value) -> Option<ParentRef> {
    let key = ResourceKey::of(object)?;
    Some(ParentRef {
        group: key.group,
        kind: key.kind,
        namespace: key.namespace,
        name: key.name,
        uid: object.pointer("/metadata/uid")?.as_str()?.to_string(),
    })
}

/// The node of an object the application tracks.
fn tracked_node(key: &ResourceKey, live: &Live) -> ResourceNode {
    ResourceNode {
        group: key.group.clone(),
        version: version_of(live.api_version()).to_string(),
        kind: key.kind.clone(),
        namespace: key.namespace.clone(),
        name: key.name.clone(),
        uid: live.uid().to_string(),
        parent_refs: Vec::new(),
        health: live.health().cloned(),
        resource_version: live.resource_version().to_string(),
        created_at: live.created_at().map(str::to_string),
    }
}

fn node(
    object: &Value,
    parent_refs: Vec<ParentRef>,
    settings: &crate::settings::Settings,
) -> ResourceNode {
    let key = ResourceKey::of(object).unwrap_or_else(|| ResourceKey {
        group: String::new(),
        kind: String::new(),
        namespace: String::new(),
        name: String::new(),
    });
    let text = |p: &str| {
        object
            .pointer(p)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    let api_version = text("/apiVersion");
    ResourceNode {
        group: key.group,
        version: version_of(&api_version).to_string(),
        kind: key.kind,
        namespace: key.namespace,
        name: key.name,
        uid: text("/metadata/uid"),
        parent_refs,
        health: settings.health_of(object).health,
        resource_version: text("/metadata/resourceVersion"),
        created_at: object
            .pointer("/metadata/creationTimestamp")
            .and_then(Value::as_str)
            .map(str::to_string),
    }
}
