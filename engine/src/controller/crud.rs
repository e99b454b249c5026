//! Application and AppProject objects written through the API, as Argo
//! CD's create, update and delete of `/api/v1/applications` and
//! `/api/v1/projects`: each writes the object in the cluster, and the
//! watch brings the change back like any other edit of it. Everything is
//! checked before anything is written.

use kube::api::{DeleteParams, PostParams};
use plumb_core::project::{AppProject, DEFAULT_PROJECT, project_of};

use super::*;
use crate::cascade::{
    RESOURCES_FINALIZER, RESOURCES_FINALIZER_BACKGROUND, RESOURCES_FINALIZER_FOREGROUND,
};
use crate::service::Cascade;

/// What the API writes: Applications or AppProjects.
#[derive(Clone, Copy)]
enum Written {
    Application,
    Project,
}

impl Written {
    fn kind(self) -> &'static str {
        match self {
            Written::Application => "Application",
            Written::Project => "AppProject",
        }
    }

    /// How messages name it.
    fn noun(self) -> &'static str {
        match self {
            Written::Application => "application",
            Written::Project => "project",
        }
    }
}

/// The object a request writes: its JSON with `apiVersion` and `kind` set
/// and what only the API server may set removed; `namespace` is the one
/// asked for or `home`. Returns namespace, name and object.
fn object_to_write(
    mut body: Value,
    what: Written,
    home: &str,
) -> Result<(String, String, Value), ServiceError> {
    let bad = |m: String| ServiceError::BadRequest(m);
    let Some(map) = body.as_object_mut() else {
        return Err(bad(format!("the body must be an {} object", what.kind())));
    };
    map.insert("apiVersion".into(), json!("argoproj.io/v1alpha1"));
    map.insert("kind".into(), json!(what.kind()));
    map.remove("status");
    let metadata = map
        .entry("metadata")
        .or_insert_with(|| json!({}))
        .as_object_mut()
        .ok_or_else(|| bad("metadata must be an object".into()))?;
    for server_set in [
        "uid",
        "creationTimestamp",
        "deletionTimestamp",
        "generation",
        "managedFields",
        "selfLink",
    ] {
        metadata.remove(server_set);
    }
    if metadata
        .get("resourceVersion")
        .is_some_and(|v| v.as_str().is_none_or(str::is_empty))
    {
        metadata.remove("resourceVersion");
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
    let decoded = match what {
        Written::Application => serde_json::from_value::<Application>(body.clone()).map(drop),
        Written::Project => serde_json::from_value::<AppProject>(body.clone()).map(drop),
    };
    decoded.map_err(|e| bad(format!("{} spec for {name} is invalid: {e}", what.noun())))?;
    Ok((namespace, name, body))
}

/// Argo CD's project body: `{"project": {...}, "upsert": bool}`.
fn project_body(body: Value) -> Result<(Value, bool), ServiceError> {
    let upsert = body.get("upsert").and_then(Value::as_bool).unwrap_or(false);
    match body {
        Value::Object(mut map) => match map.remove("project") {
            Some(project @ Value::Object(_)) => Ok((project, upsert)),
            _ => Err(ServiceError::BadRequest(
                "the body must be {\"project\": {...}}".into(),
            )),
        },
        _ => Err(ServiceError::BadRequest(
            "the body must be {\"project\": {...}}".into(),
        )),
    }
}

/// The finalizers an Application (or AppProject) object keeps for `cascade`: every other
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
fn kube_error(action: &str, what: Written, name: &str, e: &kube::Error) -> ServiceError {
    let noun = what.noun();
    match e {
        kube::Error::Api(status) if status.code == 404 => match what {
            Written::Application => ServiceError::NotFound(name.into()),
            Written::Project => ServiceError::ProjectNotFound(name.into()),
        },
        kube::Error::Api(status) if status.code < 500 => {
            ServiceError::BadRequest(format!("cannot {action} {noun} {name}: {}", status.message))
        }
        _ => ServiceError::Internal(format!("cannot {action} {noun} {name}: {e}")),
    }
}

/// `existing` with the spec of `asked`, and its labels and annotations
/// added (Argo CD's upsert and update).
fn with_spec_of(mut existing: DynamicObject, asked: &Value) -> DynamicObject {
    existing.data["spec"] = asked["spec"].clone();
    for field in ["labels", "annotations"] {
        let Some(Value::Object(values)) = asked["metadata"].get(field) else {
            continue;
        };
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
        for (k, v) in values {
            if let Some(v) = v.as_str() {
                map.insert(k.clone(), v.to_string());
            }
        }
    }
    if let Some(version) = asked["metadata"]["resourceVersion"].as_str() {
        existing.metadata.resource_version = Some(version.to_string());
    }
    existing
}

/// `object` decoded as `T` without its status (Plumb's own is not the
/// object's).
fn decoded<T: serde::de::DeserializeOwned>(object: &DynamicObject) -> Result<T, ServiceError> {
    let mut value =
        serde_json::to_value(object).map_err(|e| ServiceError::Internal(e.to_string()))?;
    if let Some(map) = value.as_object_mut() {
        map.remove("status");
    }
    serde_json::from_value(value).map_err(|e| ServiceError::Internal(e.to_string()))
}

impl Inner {
    /// The objects of `what` in `namespace`.
    fn api_of(&self, what: Written, namespace: &str) -> Api<DynamicObject> {
        let resource = match what {
            Written::Application => registry::application_resource(),
            Written::Project => registry::appproject_resource(),
        };
        Api::namespaced_with(self.cluster.client().clone(), namespace, &resource)
    }

    /// Creates `object`; when one of its name exists and `upsert`, replaces
    /// its spec (and adds its labels and annotations).
    async fn create_or_replace(
        &self,
        what: Written,
        namespace: &str,
        name: &str,
        object: &Value,
        upsert: bool,
    ) -> Result<DynamicObject, ServiceError> {
        let api = self.api_of(what, namespace);
        let dynamic: DynamicObject = serde_json::from_value(object.clone())
            .map_err(|e| ServiceError::BadRequest(e.to_string()))?;
        match api.create(&PostParams::default(), &dynamic).await {
            Err(kube::Error::Api(status)) if status.code == 409 && upsert => {
                self.replace_spec(what, namespace, name, object).await
            }
            Err(e) => Err(kube_error("create", what, name, &e)),
            Ok(created) => Ok(created),
        }
    }

    /// Replaces the spec of the existing object `name` with `asked`'s (a
    /// `resourceVersion` in `asked` must be the object's).
    async fn replace_spec(
        &self,
        what: Written,
        namespace: &str,
        name: &str,
        asked: &Value,
    ) -> Result<DynamicObject, ServiceError> {
        let api = self.api_of(what, namespace);
        let existing = api
            .get(name)
            .await
            .map_err(|e| kube_error("read", what, name, &e))?;
        api.replace(name, &PostParams::default(), &with_spec_of(existing, asked))
            .await
            .map_err(|e| kube_error("update", what, name, &e))
    }

    /// The AppProject object `name` as the API server has it now.
    async fn read_project(&self, name: &str) -> Result<Option<AppProject>, ServiceError> {
        let home = self.namespaces.home().to_string();
        match self.api_of(Written::Project, &home).get_opt(name).await {
            Ok(Some(object)) => decoded(&object).map(Some),
            Ok(None) => Ok(None),
            Err(e) => Err(kube_error("read", Written::Project, name, &e)),
        }
    }

    /// The checks of an application to write: cluster objects are read,
    /// its namespace is managed, its project admits it. Returns its
    /// namespace, short name, key and object.
    async fn application_to_write(
        &self,
        body: Value,
    ) -> Result<(String, String, String, Value, Application), ServiceError> {
        if !self.options.watch_cluster_apps {
            return Err(ServiceError::BadRequest(
                "this Plumb reads Applications from --apps files only (--no-cluster-apps): add the application there".into(),
            ));
        }
        let (namespace, short, object) =
            object_to_write(body, Written::Application, self.namespaces.home())?;
        if !self.namespaces.manages(&namespace) {
            return Err(ServiceError::BadRequest(format!(
                "namespace {namespace} is not one Plumb manages Applications in (--namespace, --app-namespaces)"
            )));
        }
        let name = self.namespaces.key(&namespace, &short);
        let app: Application = serde_json::from_value(object.clone())
            .map_err(|e| ServiceError::BadRequest(e.to_string()))?;
        let project = match self.project(&app) {
            Some(known) => Some((*known.project).clone()),
            // Created a moment ago (Backstage creates the project, then
            // the application): the watch may not have brought it yet.
            None => self.read_project(project_of(&app)).await?,
        };
        // The destination through the catalogue of clusters, as a
        // reconcile resolves it: an unknown cluster is refused here too.
        let (cluster_name, dest) = self
            .dests
            .resolve(&app.spec.destination, project_of(&app))
            .await
            .map_err(|e| {
                ServiceError::BadRequest(format!(
                    "application spec for {name} is invalid: InvalidSpecError: {e}"
                ))
            })?;
        plumb_core::project::check_app_at(
            &app,
            &plumb_core::clusters::resolved_destination(
                &app.spec.destination,
                &cluster_name,
                &dest.server,
            ),
            Some(&namespace),
            self.namespaces.home(),
            project.as_ref(),
        )
        .map_err(|e| {
            ServiceError::BadRequest(format!(
                "application spec for {name} is invalid: InvalidSpecError: {e}"
            ))
        })?;
        if let Some(slot) = self.slot(&name)
            && let Origin::File(path) = &slot.declared().origin
        {
            return Err(ServiceError::BadRequest(format!(
                "application {name} is defined in {}; change it there",
                path.display()
            )));
        }
        Ok((namespace, short, name, object, app))
    }

    /// Creates the Application object `body`. One that exists with the
    /// same spec is returned as it is; with another spec it is an error
    /// unless `upsert`, which replaces its spec, labels and annotations.
    pub(super) async fn create_application(
        &self,
        body: Value,
        upsert: bool,
    ) -> Result<Application, ServiceError> {
        let (namespace, short, name, object, app) = self.application_to_write(body).await?;
        if let Some(slot) = self.slot(&name) {
            if slot.declared().app.spec == app.spec {
                return Ok(self.document(&name, &slot));
            }
            if !upsert {
                return Err(ServiceError::BadRequest(format!(
                    "existing application spec is different, use upsert flag to force update ({name})"
                )));
            }
        }
        let written = self
            .create_or_replace(Written::Application, &namespace, &short, &object, upsert)
            .await?;
        tracing::info!(app = %name, upsert, "application written through the API");
        decoded(&written)
    }

    /// Replaces the spec of the Application object `name` with `body`'s
    /// (Argo CD's update, `PUT /api/v1/applications/NAME`).
    pub(super) async fn update_application(
        &self,
        name: &str,
        body: Value,
    ) -> Result<Application, ServiceError> {
        let (namespace, short, key, object, _) = self.application_to_write(body).await?;
        if key != name {
            return Err(ServiceError::BadRequest(format!(
                "the body names application {key}, the path {name}"
            )));
        }
        self.slot(name)
            .ok_or_else(|| ServiceError::NotFound(name.to_string()))?;
        let written = self
            .replace_spec(Written::Application, &namespace, &short, &object)
            .await?;
        tracing::info!(app = %name, "application updated through the API");
        decoded(&written)
    }

    /// Deletes the Application object of `name`, after setting or removing
    /// the resources finalizer as `cascade` asks.
    pub(super) async fn delete_application(
        &self,
        name: &str,
        cascade: Cascade,
    ) -> Result<(), ServiceError> {
        let what = Written::Application;
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
        let api = self.api_of(what, namespace);
        let object = api
            .get(short)
            .await
            .map_err(|e| kube_error("read", what, name, &e))?;
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
                .map_err(|e| kube_error("delete", what, name, &e))?;
        }
        api.delete(short, &DeleteParams::default())
            .await
            .map_err(|e| kube_error("delete", what, name, &e))?;
        tracing::info!(app = %name, ?cascade, "application deleted through the API");
        Ok(())
    }

    /// The checks of a project to write: in `--namespace`, not one of a
    /// file. Returns its name and object.
    fn project_to_write(
        &self,
        project: Value,
    ) -> Result<(String, Value, AppProject), ServiceError> {
        let home = self.namespaces.home();
        let (namespace, name, object) = object_to_write(project, Written::Project, home)?;
        if namespace != home {
            return Err(ServiceError::BadRequest(format!(
                "AppProjects are read from {home} only, not {namespace}"
            )));
        }
        if self
            .projects
            .read()
            .expect("projects lock is never poisoned")
            .in_files(&name)
        {
            return Err(ServiceError::BadRequest(format!(
                "project {name} is defined in an --apps file; change it there"
            )));
        }
        let project: AppProject = serde_json::from_value(object.clone())
            .map_err(|e| ServiceError::BadRequest(e.to_string()))?;
        Ok((name, object, project))
    }

    /// Creates an AppProject (Argo CD's `{"project": {...}, "upsert"}`).
    /// One that exists with the same spec is returned; another spec needs
    /// `upsert`.
    pub(super) async fn create_project(&self, body: Value) -> Result<AppProject, ServiceError> {
        let (project, upsert) = project_body(body)?;
        let (name, object, asked) = self.project_to_write(project)?;
        let known = self
            .projects
            .read()
            .expect("projects lock is never poisoned")
            .get(&name);
        if let Some(known) = known {
            if known.project.spec == asked.spec {
                return Ok((*known.project).clone());
            }
            if !upsert {
                return Err(ServiceError::BadRequest(format!(
                    "existing project spec is different, use upsert flag to force update ({name})"
                )));
            }
        }
        let home = self.namespaces.home().to_string();
        let written = self
            .create_or_replace(Written::Project, &home, &name, &object, upsert)
            .await?;
        tracing::info!(project = %name, upsert, "project written through the API");
        decoded(&written)
    }

    /// Replaces the spec of the AppProject `name` (`PUT
    /// /api/v1/projects/NAME` with `{"project": {...}}`).
    pub(super) async fn update_project(
        &self,
        name: &str,
        body: Value,
    ) -> Result<AppProject, ServiceError> {
        let (project, _) = project_body(body)?;
        let (named, object, _) = self.project_to_write(project)?;
        if named != name {
            return Err(ServiceError::BadRequest(format!(
                "the body names project {named}, the path {name}"
            )));
        }
        let home = self.namespaces.home().to_string();
        let written = self
            .replace_spec(Written::Project, &home, name, &object)
            .await?;
        tracing::info!(project = %name, "project updated through the API");
        decoded(&written)
    }

    /// Deletes the AppProject `name`, which no application may use (as
    /// Argo CD refuses).
    pub(super) async fn delete_project(&self, name: &str) -> Result<(), ServiceError> {
        if self
            .projects
            .read()
            .expect("projects lock is never poisoned")
            .in_files(name)
        {
            return Err(ServiceError::BadRequest(format!(
                "project {name} is defined in an --apps file; remove it there"
            )));
        }
        let users = self
            .apps
            .read()
            .expect("app map lock is never poisoned")
            .values()
            .filter(|s| project_of(&s.declared().app) == name)
            .count();
        if users > 0 {
            return Err(ServiceError::BadRequest(format!(
                "project {name} is referenced by {users} applications"
            )));
        }
        let home = self.namespaces.home().to_string();
        let api = self.api_of(Written::Project, &home);
        // Argo CD's resources finalizer on a project holds it while
        // applications use it; none does now, and Plumb removes it here
        // (nothing else would).
        if let Ok(Some(object)) = api.get_opt(name).await {
            let current = object.metadata.finalizers.clone().unwrap_or_default();
            let wanted = finalizers_for(&current, Cascade::ObjectOnly);
            if wanted != current {
                let patch = Patch::Merge(json!({"metadata": {"finalizers": wanted}}));
                api.patch(name, &PatchParams::default(), &patch)
                    .await
                    .map_err(|e| kube_error("delete", Written::Project, name, &e))?;
            }
        }
        match api.delete(name, &DeleteParams::default()).await {
            Err(kube::Error::Api(status)) if status.code == 404 && name == DEFAULT_PROJECT => {
                Err(ServiceError::BadRequest(format!(
                    "project {DEFAULT_PROJECT} is assumed while no object of that name exists; there is nothing to delete"
                )))
            }
            Err(e) => Err(kube_error("delete", Written::Project, name, &e)),
            Ok(_) => {
                tracing::info!(project = %name, "project deleted through the API");
                Ok(())
            }
        }
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
            object_to_write(body, Written::Application, "plumb").expect("a valid application");
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
                object_to_write(body, Written::Application, "plumb"),
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
