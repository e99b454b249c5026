//! Application objects created and deleted through the API, as Argo CD's
//! `POST /api/v1/applications` and `DELETE /api/v1/applications/NAME`:
//! both write the Application object in the cluster, and the watch brings
//! the change back like any other edit of it.

use kube::api::{DeleteParams, PostParams};

use super::*;
use crate::cascade::{
    RESOURCES_FINALIZER, RESOURCES_FINALIZER_BACKGROUND, RESOURCES_FINALIZER_FOREGROUND,
};
use crate::service::Cascade;

/// The object a create request writes: its JSON with `apiVersion` and
/// `kind` set and what only the API server may set removed; `namespace`
/// is the one asked for or `home`.
fn object_to_create(mut body: Value, home: &str) -> Result<(String, String, Value), ServiceError> {
    let bad = |m: String| ServiceError::BadRequest(m);
    let Some(map) = body.as_object_mut() else {
        return Err(bad("the body must be an Application object".into()));
    };
    map.insert("apiVersion".into(), json!("argoproj.io/v1alpha1"));
    map.insert("kind".into(), json!("Application"));
    map.remove("status");
    let metadata = map
        .entry("metadata")
        .or_insert_with(|| json!({}))
        .as_object_mut()
        .ok_or_else(|| bad("metadata must be an object".into()))?;
    for server_set in [
        "resourceVersion",
        "uid",
        "creationTimestamp",
        "deletionTimestamp",
        "generation",
        "managedFields",
        "selfLink",
    ] {
        metadata.remove(server_set);
    }
    let name = metadata
        .get("name")
        .and_then(Value::as_str)
        .filter(|n| !n.is_empty())
        .ok_or_else(|| bad("metadata.name is required".into()))?
        .to_string();
    let namespace = match metadata.get("namespace").and_then(Value::as_str) {
        Some(ns) if !ns.is_empty() => ns.to_string(),
        _ => home.to_string(),
    };
    metadata.insert("namespace".into(), json!(namespace));
    serde_json::from_value::<Application>(body.clone())
        .map_err(|e| bad(format!("application spec for {name} is invalid: {e}")))?;
    Ok((namespace, name, body))
}

/// The finalizers an Application object keeps for `cascade`: every other
/// finalizer as it is, the resources finalizer as asked.
fn finalizers_for(current: &[String], cascade: Cascade) -> Vec<String> {
    let ours = [
        RESOURCES_FINALIZER,
        RESOURCES_FINALIZER_FOREGROUND,
        RESOURCES_FINALIZER_BACKGROUND,
    ];
    let mut kept: Vec<String> = current
        .iter()
        .filter(|f| !ours.contains(&f.as_str()))
        .cloned()
        .collect();
    match cascade {
        Cascade::Resources { background: false } => kept.push(RESOURCES_FINALIZER.into()),
        Cascade::Resources { background: true } => {
            kept.push(RESOURCES_FINALIZER_BACKGROUND.into());
        }
        Cascade::ObjectOnly => {}
    }
    kept
}

/// A refusal of the API server, as the service's error.
fn kube_error(action: &str, name: &str, e: &kube::Error) -> ServiceError {
    match e {
        kube::Error::Api(status) if status.code == 409 => ServiceError::BadRequest(format!(
            "cannot {action} application {name}: {}",
            status.message
        )),
        kube::Error::Api(status) if status.code == 404 => ServiceError::NotFound(name.into()),
        kube::Error::Api(status) if status.code < 500 => ServiceError::BadRequest(format!(
            "cannot {action} application {name}: {}",
            status.message
        )),
        _ => ServiceError::Internal(format!("cannot {action} application {name}: {e}")),
    }
}

impl Inner {
    /// The Application objects of `namespace`.
    fn application_api(&self, namespace: &str) -> Api<DynamicObject> {
        Api::namespaced_with(
            self.cluster.client().clone(),
            namespace,
            &registry::application_resource(),
        )
    }

    /// Creates the Application object `body`. One that exists with the
    /// same spec is returned as it is; with another spec it is an error
    /// unless `upsert`, which replaces its spec, labels and annotations.
    pub(super) async fn create_application(
        &self,
        body: Value,
        upsert: bool,
    ) -> Result<Application, ServiceError> {
        if !self.options.watch_cluster_apps {
            return Err(ServiceError::BadRequest(
                "this Plumb reads Applications from --apps files only (--no-cluster-apps): add the application there".into(),
            ));
        }
        let (namespace, short, object) = object_to_create(body, self.namespaces.home())?;
        if !self.namespaces.manages(&namespace) {
            return Err(ServiceError::BadRequest(format!(
                "namespace {namespace} is not one Plumb manages Applications in (--namespace, --app-namespaces)"
            )));
        }
        let name = self.namespaces.key(&namespace, &short);
        let app: Application = serde_json::from_value(object.clone())
            .map_err(|e| ServiceError::BadRequest(e.to_string()))?;
        let project = self.project(&app);
        plumb_core::project::check_app(
            &app,
            Some(&namespace),
            self.namespaces.home(),
            project.as_ref().map(|k| &*k.project),
        )
        .map_err(|e| {
            ServiceError::BadRequest(format!(
                "application spec for {name} is invalid: InvalidSpecError: {e}"
            ))
        })?;
        if let Some(slot) = self.slot(&name) {
            let declared = slot.declared();
            if let Origin::File(path) = &declared.origin {
                return Err(ServiceError::BadRequest(format!(
                    "application {name} is defined in {}; change it there",
                    path.display()
                )));
            }
            if declared.app.spec == app.spec {
                return Ok(self.document(&name, &slot));
            }
            if !upsert {
                return Err(ServiceError::BadRequest(format!(
                    "existing application spec is different, use upsert flag to force update ({name})"
                )));
            }
        }
        let api = self.application_api(&namespace);
        let dynamic: DynamicObject = serde_json::from_value(object.clone())
            .map_err(|e| ServiceError::BadRequest(e.to_string()))?;
        let written = match api.create(&PostParams::default(), &dynamic).await {
            Err(kube::Error::Api(status)) if status.code == 409 && upsert => {
                let mut existing = api
                    .get(&short)
                    .await
                    .map_err(|e| kube_error("read", &name, &e))?;
                existing.data["spec"] = object["spec"].clone();
                for field in ["labels", "annotations"] {
                    if let Some(Value::Object(asked)) = object["metadata"].get(field) {
                        let map = match field {
                            "labels" => existing
                                .metadata
                                .labels
                                .get_or_insert_with(Default::default),
                            _ => existing
                                .metadata
                                .annotations
                                .get_or_insert_with(Default::default),
                        };
                        for (k, v) in asked {
                            if let Some(v) = v.as_str() {
                                map.insert(k.clone(), v.to_string());
                            }
                        }
                    }
                }
                api.replace(&short, &PostParams::default(), &existing)
                    .await
                    .map_err(|e| kube_error("update", &name, &e))?
            }
            Err(e) => return Err(kube_error("create", &name, &e)),
            Ok(created) => created,
        };
        tracing::info!(app = %name, upsert, "application created through the API");
        let mut value =
            serde_json::to_value(&written).map_err(|e| ServiceError::Internal(e.to_string()))?;
        if let Some(map) = value.as_object_mut() {
            map.remove("status");
        }
        serde_json::from_value(value).map_err(|e| ServiceError::Internal(e.to_string()))
    }

    /// Deletes the Application object of `name`, after setting or removing
    /// the resources finalizer as `cascade` asks.
    pub(super) async fn delete_application(
        &self,
        name: &str,
        cascade: Cascade,
    ) -> Result<(), ServiceError> {
        let slot = self
            .slot(name)
            .ok_or_else(|| ServiceError::NotFound(name.to_string()))?;
        if let Origin::File(path) = &slot.declared().origin {
            return Err(ServiceError::BadRequest(format!(
                "application {name} is defined in {}; remove it there",
                path.display()
            )));
        }
        let (namespace, short) = self.namespaces.split(name);
        let api = self.application_api(namespace);
        let object = api
            .get(short)
            .await
            .map_err(|e| kube_error("read", name, &e))?;
        let current = object.metadata.finalizers.clone().unwrap_or_default();
        let wanted = finalizers_for(&current, cascade);
        if wanted != current {
            let patch = Patch::Merge(json!({
                "metadata": {
                    "finalizers": wanted,
                    "resourceVersion": object.metadata.resource_version,
                }
            }));
            api.patch(short, &PatchParams::default(), &patch)
                .await
                .map_err(|e| kube_error("delete", name, &e))?;
        }
        api.delete(short, &DeleteParams::default())
            .await
            .map_err(|e| kube_error("delete", name, &e))?;
        tracing::info!(app = %name, ?cascade, "application deleted through the API");
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_created_object_loses_what_only_the_server_sets() {
        let body = json!({
            "metadata": {"name": "web", "resourceVersion": "", "uid": "u", "labels": {"a": "b"}},
            "spec": {"destination": {"server": "https://kubernetes.default.svc", "namespace": "web"},
                     "project": "default",
                     "source": {"repoURL": "https://example.com/r.git", "path": "web"}},
            "status": {"sync": {"status": "Synced"}}
        });
        let (namespace, name, object) =
            object_to_create(body, "plumb").expect("a valid application");
        assert_eq!((namespace.as_str(), name.as_str()), ("plumb", "web"));
        assert_eq!(object["kind"], "Application");
        assert_eq!(object["metadata"]["namespace"], "plumb");
        assert!(object.get("status").is_none());
        assert!(object["metadata"].get("resourceVersion").is_none());
        assert!(object["metadata"].get("uid").is_none());
        assert_eq!(object["metadata"]["labels"]["a"], "b");
    }

    #[test]
    fn bad_bodies_are_the_clients_mistake() {
        for body in [
            json!([]),
            json!({"metadata": {}}),
            json!({"metadata": {"name": "x"}, "spec": {"source": 3}}),
        ] {
            assert!(matches!(
                object_to_create(body, "plumb"),
                Err(ServiceError::BadRequest(_))
            ));
        }
    }

    #[test]
    fn cascade_sets_or_removes_only_the_resources_finalizer() {
        let current = vec!["other.io/keep".to_string(), RESOURCES_FINALIZER.to_string()];
        assert_eq!(
            finalizers_for(&current, Cascade::ObjectOnly),
            vec!["other.io/keep"]
        );
        assert_eq!(
            finalizers_for(&current, Cascade::Resources { background: true }),
            vec!["other.io/keep", RESOURCES_FINALIZER_BACKGROUND]
        );
        assert_eq!(
            finalizers_for(
                &["other.io/keep".into()],
                Cascade::Resources { background: false }
            ),
            vec!["other.io/keep", RESOURCES_FINALIZER]
        );
    }
}
