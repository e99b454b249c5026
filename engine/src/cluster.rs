//! The Kubernetes API as Plumb uses it: kind resolution through discovery,
//! server-side apply (real and dry run), deletion, namespaces and CRD
//! readiness. Watches live in `live`; the rules about what to call live in
//! `plan` and `controller`.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use kube::api::{
    Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams, Preconditions,
    PropagationPolicy, ValidationDirective,
};
use kube::core::{ApiResource, GroupVersionKind};
use kube::discovery::Scope;
use serde_json::{Value, json};

use crate::model::{FIELD_MANAGER, ResourceKey, group_of};

/// The error of a cluster call.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// The API server refused or failed the request.
    #[error("{action} {target}: {message}")]
    Api {
        /// What Plumb tried (`apply`, `delete`, `dry-run apply`, ...).
        action: &'static str,
        /// The object or kind concerned.
        target: String,
        /// The API server's message.
        message: String,
        /// The HTTP status, when the server answered.
        code: Option<u16>,
        /// The client error.
        #[source]
        source: kube::Error,
    },
    /// The API server did not answer in time.
    #[error("{action} {target}: no answer within {after:?} (--request-timeout)")]
    Timeout {
        /// What Plumb tried.
        action: &'static str,
        /// The object concerned.
        target: String,
        /// The limit.
        after: Duration,
    },
    /// The object to delete was deleted and re-created under the same name
    /// since it was compared; the new one is not Plumb's to delete.
    #[error("{0} was re-created since it was compared (another uid); it is left in place")]
    Replaced(String),
    /// This replica does not hold the leader Lease (any more): it writes
    /// nothing.
    #[error("{action} {target}: this replica is not the leader; it writes nothing")]
    NotLeader {
        /// What Plumb would have done.
        action: &'static str,
        /// The object concerned.
        target: String,
    },
    /// A CRD did not become Established in time.
    #[error(
        "CustomResourceDefinition {0} did not become Established within {1:?} (see its status.conditions, e.g. NamesAccepted)"
    )]
    CrdNotEstablished(String, Duration),
}

impl ClusterError {
    fn api(action: &'static str, target: impl Into<String>, source: kube::Error) -> ClusterError {
        let (message, code) = match &source {
            kube::Error::Api(status) => (status.message.clone(), Some(status.code)),
            other => (other.to_string(), None),
        };
        ClusterError::Api {
            action,
            target: target.into(),
            message,
            code,
            source,
        }
    }

    /// The HTTP status code of a refused request.
    pub fn code(&self) -> Option<u16> {
        match self {
            ClusterError::Api { code, .. } => *code,
            ClusterError::CrdNotEstablished(..)
            | ClusterError::Replaced(_)
            | ClusterError::NotLeader { .. }
            | ClusterError::Timeout { .. } => None,
        }
    }

    /// Worth retrying: the server did not answer, or answered 429/5xx.
    pub fn is_spurious(&self) -> bool {
        match self {
            ClusterError::Api { code, .. } => code.is_none_or(|c| c == 429 || c >= 500),
            ClusterError::CrdNotEstablished(..) | ClusterError::Timeout { .. } => true,
            ClusterError::Replaced(_) | ClusterError::NotLeader { .. } => false,
        }
    }
}

/// A kind the API server serves.
#[derive(Clone, Debug)]
pub struct Kind {
    /// Group, version, kind and plural.
    pub resource: ApiResource,
    /// Whether objects of the kind live in namespaces.
    pub namespaced: bool,
}

/// A connection to one cluster, with a cache of resolved kinds.
#[derive(Clone)]
pub struct Cluster {
    client: kube::Client,
    kinds: Arc<RwLock<HashMap<(String, String), Kind>>>,
    /// Namespaces seen to exist, so that `CreateNamespace=true` costs one
    /// request per namespace rather than one per sync. An apply that finds
    /// its namespace gone forgets it.
    namespaces: Arc<std::sync::Mutex<std::collections::HashSet<String>>>,
    /// How long one apply or dry run may take.
    request_timeout: Duration,
    /// Told when a request gets no answer in time: the cluster's prober
    /// (`destinations`) asks whether the server still answers.
    alarm: Option<Arc<tokio::sync::Notify>>,
    /// The version and API versions last discovered, and when.
    capabilities: Arc<tokio::sync::Mutex<Option<Discovered>>>,
    /// Asked before every write (apply, replace, delete, namespace
    /// creation): a replica that is not the leader writes nothing.
    fence: crate::lease::Leadership,
}

/// What Helm templates see of a cluster (`.Capabilities`): its version
/// and the API versions it serves.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Capabilities {
    /// The API server's version (`v1.33.9`).
    pub kube_version: String,
    /// Every served `group/version` and `group/version/Kind`, sorted, as
    /// Argo CD passes them to `helm template --api-versions`.
    pub api_versions: Vec<String>,
}

/// Capabilities, and when they were discovered.
type Discovered = (std::time::Instant, Arc<Capabilities>);

/// How long discovered [`Capabilities`] are used before asking again.
const CAPABILITIES_TTL: Duration = Duration::from_secs(300);

/// The default of [`Cluster::with_request_timeout`].
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster").finish_non_exhaustive()
    }
}

impl Cluster {
    /// Wraps a client.
    pub fn new(client: kube::Client) -> Cluster {
        Cluster {
            client,
            kinds: Arc::default(),
            namespaces: Arc::default(),
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            alarm: None,
            capabilities: Arc::default(),
            fence: crate::lease::Leadership::always(),
        }
    }

    /// The same cluster writing only while `fence` says this replica leads.
    #[must_use]
    pub fn with_fence(mut self, fence: crate::lease::Leadership) -> Cluster {
        self.fence = fence;
        self
    }

    /// The refusal of a write when this replica is not the leader (any
    /// more).
    fn fenced(&self, action: &'static str, target: impl std::fmt::Display) -> Option<ClusterError> {
        (!self.fence.is_leader()).then(|| ClusterError::NotLeader {
            action,
            target: target.to_string(),
        })
    }

    /// The same cluster with applies, dry runs, reads and deletes of objects
    /// bounded by `timeout`.
    #[must_use]
    pub fn with_request_timeout(mut self, timeout: Duration) -> Cluster {
        self.request_timeout = timeout;
        self
    }

    /// The same cluster telling `alarm` whenever a request times out.
    #[must_use]
    pub fn with_alarm(mut self, alarm: Arc<tokio::sync::Notify>) -> Cluster {
        self.alarm = Some(alarm);
        self
    }

    /// A request got no answer in time.
    fn timed_out(&self) {
        if let Some(alarm) = &self.alarm {
            alarm.notify_one();
        }
    }

    /// The client.
    pub fn client(&self) -> &kube::Client {
        &self.client
    }

    /// Resolves `apiVersion` + `kind` through discovery; `None` when the
    /// server does not serve it. Known kinds are cached; unknown ones are
    /// asked again next time (a CRD may have been created since).
    ///
    /// # Errors
    /// When discovery fails for another reason than "not found".
    pub async fn resolve(
        &self,
        api_version: &str,
        kind: &str,
    ) -> Result<Option<Kind>, ClusterError> {
        let cache_key = (api_version.to_string(), kind.to_string());
        if let Some(k) = self
            .kinds
            .read()
            .expect("kind cache lock is never poisoned")
            .get(&cache_key)
        {
            return Ok(Some(k.clone()));
        }
        let (group, version) = match api_version.rsplit_once('/') {
            Some((g, v)) => (g, v),
            None => ("", api_version),
        };
        let gvk = GroupVersionKind::gvk(group, version, kind);
        let discovered = tokio::time::timeout(
            self.request_timeout,
            kube::discovery::pinned_kind(&self.client, &gvk),
        )
        .await
        .map_err(|_| {
            self.timed_out();
            ClusterError::Timeout {
                action: "discover",
                target: format!("{api_version} {kind}"),
                after: self.request_timeout,
            }
        })?;
        match discovered {
            Ok((resource, caps)) => {
                let k = Kind {
                    resource,
                    namespaced: caps.scope == Scope::Namespaced,
                };
                self.kinds
                    .write()
                    .expect("kind cache lock is never poisoned")
                    .insert(cache_key, k.clone());
                Ok(Some(k))
            }
            Err(kube::Error::Api(s)) if s.code == 404 => Ok(None),
            Err(kube::Error::Discovery(_)) => Ok(None),
            Err(e) => Err(ClusterError::api(
                "discover",
                format!("{api_version} {kind}"),
                e,
            )),
        }
    }

    fn api(&self, kind: &Kind, namespace: &str) -> Api<DynamicObject> {
        if kind.namespaced && !namespace.is_empty() {
            Api::namespaced_with(self.client.clone(), namespace, &kind.resource)
        } else {
            Api::all_with(self.client.clone(), &kind.resource)
        }
    }

    /// Server-side applies `object` with field manager `plumb`, forcing
    /// conflicts, with the server's default field validation; with
    /// `dry_run`, only asks what the result would be. Returns the object as
    /// the server has (or would have) it.
    ///
    /// # Errors
    /// When the server refuses the apply (invalid object, admission, ...).
    pub async fn apply(
        &self,
        kind: &Kind,
        object: &Value,
        dry_run: bool,
    ) -> Result<Value, ClusterError> {
        self.apply_as(kind, object, dry_run, None).await
    }

    /// [`Cluster::apply`] of an application's object: strict field
    /// validation (an unknown or duplicate field refuses the object, as
    /// `kubectl apply` validates by default).
    ///
    /// # Errors
    /// As [`Cluster::apply`].
    pub async fn apply_strict(
        &self,
        kind: &Kind,
        object: &Value,
        dry_run: bool,
    ) -> Result<Value, ClusterError> {
        self.apply_as(kind, object, dry_run, Some(ValidationDirective::Strict))
            .await
    }

    /// [`Cluster::apply_strict`] for `Validate=false`: field validation `Ignore`,
    /// and the fields a server-side apply refuses as "not declared in
    /// schema" (it does so whatever the validation asked, and servers
    /// before 1.25 know no other) are dropped from the object and the
    /// apply asked again, as a create or update without validation would
    /// drop them. Returns the object and the paths dropped.
    ///
    /// # Errors
    /// As [`Cluster::apply`], and when the refusal names a field this
    /// cannot find in the object.
    pub async fn apply_unvalidated(
        &self,
        kind: &Kind,
        object: &Value,
        dry_run: bool,
    ) -> Result<(Value, Vec<String>), ClusterError> {
        let mut object = object.clone();
        let mut dropped = Vec::new();
        // Each refusal lists every unknown field it met; a few rounds cover
        // a server that reports them one level at a time.
        let mut rounds = 0;
        loop {
            let result = self
                .apply_as(kind, &object, dry_run, Some(ValidationDirective::Ignore))
                .await;
            rounds += 1;
            let undeclared = match &result {
                Err(ClusterError::Api { message, .. }) if rounds < 4 => {
                    crate::syncopts::undeclared_fields(message)
                }
                _ => None,
            };
            match undeclared {
                Some(paths)
                    if paths
                        .iter()
                        .all(|p| crate::syncopts::remove_field(&mut object, p)) =>
                {
                    dropped.extend(paths);
                }
                _ => return result.map(|applied| (applied, dropped)),
            }
        }
    }

    async fn apply_as(
        &self,
        kind: &Kind,
        object: &Value,
        dry_run: bool,
        validation: Option<ValidationDirective>,
    ) -> Result<Value, ClusterError> {
        let key = key_of(kind, object);
        let mut params = PatchParams::apply(FIELD_MANAGER).force();
        params.field_validation = validation;
        if dry_run {
            params = params.dry_run();
        }
        let action = if dry_run { "dry-run apply" } else { "apply" };
        if let Some(refused) = self.fenced(action, &key).filter(|_| !dry_run) {
            return Err(refused);
        }
        let api = self.api(kind, &key.namespace);
        let patch = Patch::Apply(object);
        let result = self
            .within(action, &key, api.patch(&key.name, &params, &patch))
            .await?;
        if let Err(kube::Error::Api(status)) = &result
            && status.code == 404
            && !key.namespace.is_empty()
        {
            self.known_namespaces().remove(&key.namespace);
        }
        let result = result.map_err(|e| ClusterError::api(action, key.to_string(), e))?;
        Ok(serde_json::to_value(result).expect("a DynamicObject always serializes"))
    }

    /// Writes `object` whole (`Replace=true`, as `kubectl replace`): a PUT
    /// over the object of that name at its current `resourceVersion`, or a
    /// POST when there is none; field validation `Strict`, or `Ignore`
    /// when `validate` is false. Returns the object as the server has it,
    /// and whether it was created.
    ///
    /// # Errors
    /// When the server refuses the write (an immutable field changed, a
    /// conflicting write in between, ...).
    pub async fn replace(
        &self,
        kind: &Kind,
        object: &Value,
        validate: bool,
    ) -> Result<(Value, bool), ClusterError> {
        let key = key_of(kind, object);
        let live = self.get(kind, &key).await?;
        let mut object = object.clone();
        let created = live.is_none();
        if let Some(live) = live
            && let Some(meta) = object.get_mut("metadata").and_then(Value::as_object_mut)
        {
            meta.insert(
                "resourceVersion".into(),
                live.pointer("/metadata/resourceVersion")
                    .cloned()
                    .unwrap_or_default(),
            );
        }
        let validation = if validate {
            ValidationDirective::Strict
        } else {
            ValidationDirective::Ignore
        };
        let action = if created { "create" } else { "replace" };
        if let Some(refused) = self.fenced(action, &key) {
            return Err(refused);
        }
        let url = {
            use kube::Resource;
            DynamicObject::url_path(
                &kind.resource,
                Some(key.namespace.as_str()).filter(|n| kind.namespaced && !n.is_empty()),
            )
        };
        let request = kube::core::Request::new(url);
        let params = PostParams {
            dry_run: false,
            field_manager: Some(FIELD_MANAGER.to_string()),
        };
        let body = serde_json::to_vec(&object).expect("a JSON value always serializes");
        let mut request = if created {
            request.create(&params, body)
        } else {
            request.replace(&key.name, &params, body)
        }
        .map_err(|e| ClusterError::api(action, key.to_string(), kube::Error::BuildRequest(e)))?;
        // kube's `PostParams` has no `fieldValidation`; its URL always has
        // a query already.
        let uri = format!("{}&fieldValidation={}", request.uri(), validation.as_str());
        if let Ok(uri) = uri.parse() {
            *request.uri_mut() = uri;
        }
        let result = self
            .within(action, &key, self.client.request::<DynamicObject>(request))
            .await?
            .map_err(|e| ClusterError::api(action, key.to_string(), e))?;
        Ok((
            serde_json::to_value(result).expect("a DynamicObject always serializes"),
            created,
        ))
    }

    /// Deletes the object with `uid` (background propagation) and waits
    /// until its name is free, at most `timeout` (`Force=true`: a delete
    /// before a create, as `kubectl replace --force`).
    ///
    /// # Errors
    /// [`ClusterError::Replaced`] when the name holds another object;
    /// [`ClusterError::Timeout`] when it is still there after `timeout`;
    /// otherwise when a request fails.
    pub async fn delete_and_wait(
        &self,
        kind: &Kind,
        key: &ResourceKey,
        uid: &str,
        timeout: Duration,
    ) -> Result<(), ClusterError> {
        self.delete(kind, key, Some(uid)).await?;
        let deadline = tokio::time::Instant::now() + timeout;
        let mut pause = Duration::from_millis(50);
        loop {
            let still = self
                .get(kind, key)
                .await?
                .is_some_and(|o| o.pointer("/metadata/uid").and_then(Value::as_str) == Some(uid));
            if !still {
                return Ok(());
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(ClusterError::Timeout {
                    action: "wait for the deletion of",
                    target: key.to_string(),
                    after: timeout,
                });
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_secs(1));
        }
    }

    /// Deletes an object in the background (its dependents are collected by
    /// the garbage collector), but only the object with `uid` when one is
    /// given: an object deleted and re-created under the same name since it
    /// was read is a different object, and is kept. An object already gone
    /// is not an error.
    ///
    /// # Errors
    /// [`ClusterError::Replaced`] when the name now belongs to another
    /// object; otherwise when the server refuses the deletion.
    pub async fn delete(
        &self,
        kind: &Kind,
        key: &ResourceKey,
        uid: Option<&str>,
    ) -> Result<(), ClusterError> {
        self.delete_with(kind, key, uid, PropagationPolicy::Background)
            .await
            .map(drop)
    }

    /// Like [`Cluster::delete`], with the given propagation: `Foreground`
    /// keeps the object (with a `deletionTimestamp`) until the garbage
    /// collector has deleted its dependents. The object as the API server
    /// answered it when its deletion waits (finalizers, dependents), `None`
    /// when it is gone.
    ///
    /// # Errors
    /// As [`Cluster::delete`].
    pub async fn delete_with(
        &self,
        kind: &Kind,
        key: &ResourceKey,
        uid: Option<&str>,
        propagation: PropagationPolicy,
    ) -> Result<Option<Value>, ClusterError> {
        if let Some(refused) = self.fenced("delete", key) {
            return Err(refused);
        }
        let params = DeleteParams {
            propagation_policy: Some(propagation),
            preconditions: uid.filter(|u| !u.is_empty()).map(|uid| Preconditions {
                uid: Some(uid.to_string()),
                resource_version: None,
            }),
            ..Default::default()
        };
        match self
            .within(
                "delete",
                key,
                self.api(kind, &key.namespace).delete(&key.name, &params),
            )
            .await?
        {
            // The object back (left) when its deletion waits on finalizers
            // or, in the foreground, on its dependents; a status (right)
            // when it is gone.
            Ok(answer) => Ok(answer.left().map(|object| {
                serde_json::to_value(object).expect("a DynamicObject always serializes")
            })),
            Err(kube::Error::Api(s)) if s.code == 404 => Ok(None),
            // The API server answers a failed uid precondition with 409.
            Err(kube::Error::Api(s)) if s.code == 409 && params.preconditions.is_some() => {
                Err(ClusterError::Replaced(key.to_string()))
            }
            Err(e) => Err(ClusterError::api("delete", key.to_string(), e)),
        }
    }

    /// Creates a namespace unless it exists. Reads first, so an existing
    /// namespace costs no write.
    ///
    /// # Errors
    /// When the namespace can be neither read nor created.
    pub async fn ensure_namespace(&self, name: &str) -> Result<(), ClusterError> {
        if self.known_namespaces().contains(name) {
            return Ok(());
        }
        let api: Api<DynamicObject> = Api::all_with(self.client.clone(), &namespace_resource());
        let exists = api
            .get_opt(name)
            .await
            .map_err(|e| ClusterError::api("get", format!("Namespace/{name}"), e))?
            .is_some();
        if !exists {
            if let Some(refused) = self.fenced("create", format!("Namespace/{name}")) {
                return Err(refused);
            }
            let ns: DynamicObject = serde_json::from_value(json!({
                "apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}
            }))
            .expect("a namespace literal always parses");
            match api.create(&PostParams::default(), &ns).await {
                Ok(_) => {}
                Err(kube::Error::Api(s)) if s.code == 409 => {}
                Err(e) => return Err(ClusterError::api("create", format!("Namespace/{name}"), e)),
            }
        }
        self.known_namespaces().insert(name.to_string());
        Ok(())
    }

    fn known_namespaces(&self) -> std::sync::MutexGuard<'_, std::collections::HashSet<String>> {
        self.namespaces
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Waits until a CRD reports the `Established` condition, asking again
    /// after 100 ms, then twice as long each time up to 2 s.
    ///
    /// # Errors
    /// [`ClusterError::CrdNotEstablished`] after `timeout`.
    pub async fn wait_crd_established(
        &self,
        name: &str,
        timeout: Duration,
    ) -> Result<(), ClusterError> {
        let resource = ApiResource::from_gvk_with_plural(
            &GroupVersionKind::gvk("apiextensions.k8s.io", "v1", "CustomResourceDefinition"),
            "customresourcedefinitions",
        );
        let api: Api<DynamicObject> = Api::all_with(self.client.clone(), &resource);
        let deadline = tokio::time::Instant::now() + timeout;
        let mut pause = Duration::from_millis(100);
        loop {
            if let Ok(Ok(Some(crd))) = tokio::time::timeout_at(deadline, api.get_opt(name)).await {
                let established = crd
                    .data
                    .pointer("/status/conditions")
                    .and_then(Value::as_array)
                    .is_some_and(|cs| {
                        cs.iter()
                            .any(|c| c["type"] == "Established" && c["status"] == "True")
                    });
                // Established comes a moment before discovery serves the
                // kind: wait for both, or the next apply of one of its
                // objects finds "not served".
                if established && self.serves_kind_of(&crd.data).await {
                    return Ok(());
                }
            }
            let now = tokio::time::Instant::now();
            if now >= deadline {
                return Err(ClusterError::CrdNotEstablished(name.to_string(), timeout));
            }
            tokio::time::sleep(pause.min(deadline - now)).await;
            pause = (pause * 2).min(Duration::from_secs(2));
        }
    }

    /// Whether discovery serves the kind a CRD defines (its first served
    /// version); a CRD that does not say is taken as served.
    async fn serves_kind_of(&self, crd: &Value) -> bool {
        let group = crd.pointer("/spec/group").and_then(Value::as_str);
        let kind = crd.pointer("/spec/names/kind").and_then(Value::as_str);
        let version = crd
            .pointer("/spec/versions")
            .and_then(Value::as_array)
            .and_then(|vs| {
                vs.iter()
                    .find(|v| v["served"] != false)
                    .and_then(|v| v["name"].as_str())
            });
        let (Some(group), Some(kind), Some(version)) = (group, kind, version) else {
            return true;
        };
        matches!(
            self.resolve(&format!("{group}/{version}"), kind).await,
            Ok(Some(_))
        )
    }

    /// Runs one request to the API server, giving up after
    /// `--request-timeout`.
    async fn within<T>(
        &self,
        action: &'static str,
        target: &ResourceKey,
        call: impl std::future::Future<Output = T>,
    ) -> Result<T, ClusterError> {
        tokio::time::timeout(self.request_timeout, call)
            .await
            .map_err(|_| {
                self.timed_out();
                ClusterError::Timeout {
                    action,
                    target: target.to_string(),
                    after: self.request_timeout,
                }
            })
    }

    /// The cluster's version and served API versions, discovered at most
    /// every five minutes (in one aggregated discovery request per API
    /// root), bounded by the request timeout.
    ///
    /// # Errors
    /// When discovery fails or times out.
    pub async fn capabilities(&self) -> Result<Arc<Capabilities>, ClusterError> {
        let mut cached = self.capabilities.lock().await;
        if let Some((at, caps)) = cached.as_ref()
            && at.elapsed() < CAPABILITIES_TTL
        {
            return Ok(Arc::clone(caps));
        }
        let timeout = |_| ClusterError::Timeout {
            action: "discover",
            target: "the API server's version and API versions".into(),
            after: self.request_timeout,
        };
        let discover = |e| ClusterError::api("discover", "API versions", e);
        let version = tokio::time::timeout(self.request_timeout, self.client.apiserver_version())
            .await
            .map_err(timeout)?
            .map_err(discover)?;
        let discovery = kube::discovery::Discovery::new(self.client.clone());
        let discovery = tokio::time::timeout(self.request_timeout, discovery.run_aggregated())
            .await
            .map_err(timeout)?
            .map_err(discover)?;
        let mut api_versions = std::collections::BTreeSet::new();
        for group in discovery.groups() {
            for version in group.versions() {
                let gv = if group.name().is_empty() {
                    version.to_string()
                } else {
                    format!("{}/{version}", group.name())
                };
                for (resource, _) in group.versioned_resources(version) {
                    api_versions.insert(format!("{gv}/{}", resource.kind));
                }
                api_versions.insert(gv);
            }
        }
        let caps = Arc::new(Capabilities {
            kube_version: kube_version(&version),
            api_versions: api_versions.into_iter().collect(),
        });
        *cached = Some((std::time::Instant::now(), Arc::clone(&caps)));
        Ok(caps)
    }

    /// One object as the server has it now (without `managedFields`), or
    /// `None` when it does not exist.
    ///
    /// # Errors
    /// When the read fails or times out.
    pub async fn get(&self, kind: &Kind, key: &ResourceKey) -> Result<Option<Value>, ClusterError> {
        self.read(kind, key, false).await
    }

    /// The object as [`Cluster::get`] reads it, with its
    /// `metadata.managedFields` (which `ignoreDifferences` by field manager
    /// needs).
    ///
    /// # Errors
    /// As [`Cluster::get`].
    pub async fn get_with_managed_fields(
        &self,
        kind: &Kind,
        key: &ResourceKey,
    ) -> Result<Option<Value>, ClusterError> {
        self.read(kind, key, true).await
    }

    async fn read(
        &self,
        kind: &Kind,
        key: &ResourceKey,
        managed_fields: bool,
    ) -> Result<Option<Value>, ClusterError> {
        let api = self.api(kind, &key.namespace);
        let result = self.within("read", key, api.get_opt(&key.name)).await?;
        let found = result.map_err(|e| ClusterError::api("read", key.to_string(), e))?;
        Ok(found.map(|mut o| {
            if !managed_fields {
                o.metadata.managed_fields = None;
            }
            let mut value = serde_json::to_value(o).expect("a DynamicObject always serializes");
            value["apiVersion"] = Value::String(kind.resource.api_version.clone());
            value["kind"] = Value::String(kind.resource.kind.clone());
            value
        }))
    }

    /// Objects of `kind` in `namespace` (all namespaces when empty).
    ///
    /// # Errors
    /// When the list fails.
    pub async fn list(&self, kind: &Kind, namespace: &str) -> Result<Vec<Value>, ClusterError> {
        let list = tokio::time::timeout(
            self.request_timeout,
            self.api(kind, namespace).list(&ListParams::default()),
        )
        .await
        .map_err(|_| {
            self.timed_out();
            ClusterError::Timeout {
                action: "list",
                target: kind.resource.kind.clone(),
                after: self.request_timeout,
            }
        })?
        .map_err(|e| ClusterError::api("list", kind.resource.kind.clone(), e))?;
        Ok(list
            .items
            .into_iter()
            .map(|o| serde_json::to_value(o).expect("a DynamicObject always serializes"))
            .collect())
    }
}

/// The server's version as Helm's `--kube-version` takes it: its
/// `gitVersion` when that is a plain `vX.Y.Z[...]`, else `vMAJOR.MINOR.0`
/// (providers write `1` and `33+`).
fn kube_version(info: &k8s_openapi::apimachinery::pkg::version::Info) -> String {
    let plain = info
        .git_version
        .strip_prefix('v')
        .and_then(|v| v.split(['.', '-', '+']).next())
        .is_some_and(|major| !major.is_empty() && major.chars().all(|c| c.is_ascii_digit()))
        && !info.git_version.starts_with("v0.0.0");
    if plain {
        return info.git_version.clone();
    }
    let digits = |s: &str| s.chars().filter(char::is_ascii_digit).collect::<String>();
    format!("v{}.{}.0", digits(&info.major), digits(&info.minor))
}

/// The identity of an object to write, from the object, or from its kind
/// when it has none (the server then says what is missing).
fn key_of(kind: &Kind, object: &Value) -> ResourceKey {
    ResourceKey::of(object).unwrap_or_else(|| ResourceKey {
        group: group_of(kind.resource.api_version.as_str()).into(),
        kind: kind.resource.kind.clone(),
        namespace: String::new(),
        name: String::new(),
    })
}

fn namespace_resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk("", "v1", "Namespace"), "namespaces")
}

/// Connects to the cluster of a kubeconfig (or the environment's default:
/// `$KUBECONFIG`, `~/.kube/config`, in-cluster), with an optional context.
///
/// # Errors
/// When the kubeconfig cannot be read or names no usable cluster.
pub async fn connect(
    kubeconfig: Option<&std::path::Path>,
    context: Option<&str>,
) -> Result<kube::Client, ConnectError> {
    connect_counted(kubeconfig, context, None).await
}

/// Like [`connect`], counting every request in `metrics`
/// (`argocd_app_k8s_request_total`, the server named as applications name
/// the cluster Plumb runs against) when given.
///
/// # Errors
/// As [`connect`].
pub async fn connect_counted(
    kubeconfig: Option<&std::path::Path>,
    context: Option<&str>,
    metrics: Option<&Arc<crate::metrics::Metrics>>,
) -> Result<kube::Client, ConnectError> {
    let options = kube::config::KubeConfigOptions {
        context: context.map(str::to_string),
        ..Default::default()
    };
    let unusable =
        |e: &dyn std::fmt::Display| ConnectError(format!("no usable cluster configuration: {e}"));
    let config = match (kubeconfig, context) {
        (Some(path), _) => {
            let file = kube::config::Kubeconfig::read_from(path).map_err(|e| {
                ConnectError(format!("cannot read kubeconfig {}: {e}", path.display()))
            })?;
            kube::Config::from_custom_kubeconfig(file, &options)
                .await
                .map_err(|e| unusable(&e))?
        }
        (None, Some(_)) => kube::Config::from_kubeconfig(&options)
            .await
            .map_err(|e| unusable(&e))?,
        (None, None) => kube::Config::infer().await.map_err(|e| unusable(&e))?,
    };
    let builder = kube::client::ClientBuilder::try_from(config)
        .map_err(|e| ConnectError(format!("cannot build a Kubernetes client: {e}")))?;
    Ok(match metrics {
        Some(metrics) => builder
            .with_layer(&metrics.k8s_layer(crate::model::IN_CLUSTER_SERVER))
            .build(),
        None => builder.build(),
    })
}

/// The error of [`connect`].
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConnectError(String);

/// The annotation on a CRD Plumb installed: the digest of what it applied.
const CRD_DIGEST: &str = "plumb.dev/crd-digest";

/// Installs a CRD (`applications.argoproj.io`, `applicationsets...`), or
/// updates the one an earlier Plumb installed (a newer schema keeps fields
/// the old one pruned), waiting at most `timeout` for it to become
/// Established. One that already carries this version's digest is not
/// written again (a restart, or every replica of several, writes nothing).
/// A CRD of that name another tool installed (Argo CD's own) is left alone.
///
/// # Errors
/// When the CRD can be neither read nor applied, or is not Established in
/// time.
pub async fn ensure_crd(
    cluster: &Cluster,
    mut crd: Value,
    timeout: Duration,
) -> Result<(), ClusterError> {
    // The digest of what this version applies, kept on the object: a
    // restart (or another replica) finding it there writes nothing.
    let digest = format!("{:08x}", plumb_core::shard::fnv1a32(&crd.to_string()));
    if let Some(meta) = crd.get_mut("metadata").and_then(Value::as_object_mut) {
        let annotations = meta
            .entry("annotations")
            .or_insert_with(|| Value::Object(serde_json::Map::new()));
        if let Some(annotations) = annotations.as_object_mut() {
            annotations.insert(CRD_DIGEST.into(), Value::String(digest.clone()));
        }
    }
    let resource = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("apiextensions.k8s.io", "v1", "CustomResourceDefinition"),
        "customresourcedefinitions",
    );
    let kind = Kind {
        resource,
        namespaced: false,
    };
    let name = crd
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let api = cluster.api(&kind, "");
    let existing = api
        .get_opt(&name)
        .await
        .map_err(|e| ClusterError::api("get", format!("CustomResourceDefinition/{name}"), e))?;
    // A CRD Plumb installed is brought up to this version's schema (an
    // apply of the same schema changes nothing); one another tool installed
    // (Argo CD's own) is left as it is.
    let ours = existing.as_ref().is_none_or(|crd| {
        crd.metadata
            .managed_fields
            .iter()
            .flatten()
            .any(|f| f.manager.as_deref() == Some(FIELD_MANAGER))
    });
    let current = existing.as_ref().is_some_and(|crd| {
        crd.metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(CRD_DIGEST))
            == Some(&digest)
    });
    if ours && !current {
        cluster.apply(&kind, &crd, false).await?;
    }
    if ours {
        cluster.wait_crd_established(&name, timeout).await?;
    }
    Ok(())
}
