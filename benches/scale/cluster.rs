//! The benchmark's side of the API server: a `kube` client from the
//! kubeconfig, the bare server-side-apply loop that measures the ceiling,
//! kube-apiserver's request counters, namespaces and object polls.
//!
//! Not here: Plumb; this module never talks to it.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use futures::StreamExt;
use kube::api::{Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams};
use kube::core::{ApiResource, GroupVersionKind};
use serde_json::{Value, json};

/// Connects with a kubeconfig file.
pub async fn connect(kubeconfig: &Path) -> Result<kube::Client> {
    let file = kube::config::Kubeconfig::read_from(kubeconfig)
        .with_context(|| format!("read kubeconfig {}", kubeconfig.display()))?;
    let config = kube::Config::from_custom_kubeconfig(file, &Default::default())
        .await
        .context("use the kubeconfig")?;
    kube::Client::try_from(config).context("build a Kubernetes client")
}

/// The resource of a generated object's kind (the fixture uses four).
pub fn resource_of(object: &Value) -> Result<ApiResource> {
    let api_version = object["apiVersion"].as_str().unwrap_or_default();
    let kind = object["kind"].as_str().unwrap_or_default();
    let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
    let plural = match kind {
        "ConfigMap" => "configmaps",
        "Service" => "services",
        "ServiceAccount" => "serviceaccounts",
        "Deployment" => "deployments",
        "Namespace" => "namespaces",
        other => bail!("the harness does not know the plural of {other}"),
    };
    Ok(ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk(group, version, kind),
        plural,
    ))
}

fn name_of(object: &Value) -> &str {
    object
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default()
}

/// Creates the namespaces (those already there are fine).
pub async fn create_namespaces(client: &kube::Client, names: &[String]) -> Result<()> {
    let api: Api<DynamicObject> = Api::all_with(
        client.clone(),
        &resource_of(&json!({"apiVersion": "v1", "kind": "Namespace"}))?,
    );
    for name in names {
        let ns: DynamicObject = serde_json::from_value(json!({
            "apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}
        }))
        .context("a namespace literal")?;
        match api.create(&PostParams::default(), &ns).await {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 409 => {}
            Err(e) => return Err(e).with_context(|| format!("create namespace {name}")),
        }
    }
    Ok(())
}

/// Applies the Application CRD (as Plumb would install it) and waits until
/// the API server serves it.
pub async fn apply_and_wait_crd(client: &kube::Client, crd: &Value) -> Result<()> {
    let resource = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("apiextensions.k8s.io", "v1", "CustomResourceDefinition"),
        "customresourcedefinitions",
    );
    let api: Api<DynamicObject> = Api::all_with(client.clone(), &resource);
    let name = name_of(crd).to_owned();
    api.patch(
        &name,
        &PatchParams::apply("bench").force(),
        &Patch::Apply(crd),
    )
    .await
    .with_context(|| format!("apply CRD {name}"))?;
    let start = Instant::now();
    loop {
        let established = api.get(&name).await.ok().is_some_and(|o| {
            o.data
                .pointer("/status/conditions")
                .and_then(Value::as_array)
                .is_some_and(|cs| {
                    cs.iter()
                        .any(|c| c["type"] == "Established" && c["status"] == "True")
                })
        });
        if established {
            return Ok(());
        }
        if start.elapsed() > Duration::from_secs(60) {
            bail!("CRD {name} not Established after 60 s");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Creates the Applications as objects in `namespace` (server-side apply,
/// `concurrency` in flight); returns how many were created.
pub async fn create_applications(
    client: &kube::Client,
    namespace: &str,
    applications: &[Value],
    concurrency: usize,
) -> Result<usize> {
    let resource = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("argoproj.io", "v1alpha1", "Application"),
        "applications",
    );
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), namespace, &resource);
    let params = PatchParams::apply("bench").force();
    let results: Vec<Result<()>> = futures::stream::iter(applications)
        .map(|app| {
            let (api, params) = (&api, &params);
            let mut app = app.clone();
            app["metadata"]["namespace"] = json!(namespace);
            async move {
                let name = name_of(&app).to_owned();
                api.patch(&name, params, &Patch::Apply(&app))
                    .await
                    .map(|_| ())
                    .with_context(|| format!("create Application {name}"))
            }
        })
        .buffer_unordered(concurrency.max(1))
        .collect()
        .await;
    let created = results.iter().filter(|r| r.is_ok()).count();
    if let Some(Err(e)) = results.into_iter().find(Result::is_err) {
        return Err(e);
    }
    Ok(created)
}

/// The outcome of the ceiling loop.
pub struct Ceiling {
    /// Objects applied successfully.
    pub applied: usize,
    /// Failed applies, with the first error.
    pub failed: usize,
    pub first_error: Option<String>,
    /// Wall time of the loop.
    pub elapsed: Duration,
}

/// Server-side applies every object (into `namespace_of(app index)`) with
/// `concurrency` requests in flight: no Plumb logic, the API server's limit.
pub async fn ceiling(
    client: &kube::Client,
    objects: &[Vec<Value>],
    namespace_of: impl Fn(usize) -> String,
    concurrency: usize,
) -> Result<Ceiling> {
    let mut jobs = Vec::new();
    for (i, objs) in objects.iter().enumerate() {
        for object in objs {
            let api: Api<DynamicObject> =
                Api::namespaced_with(client.clone(), &namespace_of(i), &resource_of(object)?);
            jobs.push((api, object.clone()));
        }
    }
    let params = PatchParams::apply("bench").force();
    let start = Instant::now();
    let results: Vec<Result<(), String>> = futures::stream::iter(jobs)
        .map(|(api, object)| {
            let params = params.clone();
            async move {
                api.patch(name_of(&object), &params, &Patch::Apply(&object))
                    .await
                    .map(|_| ())
                    .map_err(|e| format!("{}: {e}", name_of(&object)))
            }
        })
        .buffer_unordered(concurrency.max(1))
        .collect()
        .await;
    let elapsed = start.elapsed();
    let failed = results.iter().filter(|r| r.is_err()).count();
    Ok(Ceiling {
        applied: results.len() - failed,
        failed,
        first_error: results.into_iter().find_map(Result::err),
        elapsed,
    })
}

/// One sample of kube-apiserver's `apiserver_request_total` counters, keyed
/// by (verb, dry_run, resource).
#[derive(Clone, Debug, Default)]
pub struct Requests(BTreeMap<(String, String, String), f64>);

/// Verbs that change state. kube-apiserver reports server-side apply
/// (PATCH with the apply content type) as `APPLY`.
const WRITE_VERBS: &[&str] = &[
    "POST",
    "PUT",
    "PATCH",
    "APPLY",
    "DELETE",
    "DELETECOLLECTION",
];

/// What changed between two samples.
#[derive(Clone, Debug, Default)]
pub struct RequestDelta {
    /// Writes that were not dry runs.
    pub writes: u64,
    /// Dry-run writes (Plumb's comparisons).
    pub dry_runs: u64,
    /// GET, LIST and WATCH requests.
    pub reads: u64,
    /// Non-dry-run writes per `verb resource`, largest first.
    pub writes_by: Vec<(String, u64)>,
}

impl RequestDelta {
    /// `12 (PUT leases 8, APPLY configmaps 4)`.
    pub fn writes_text(&self) -> String {
        if self.writes_by.is_empty() {
            return self.writes.to_string();
        }
        let parts: Vec<String> = self
            .writes_by
            .iter()
            .take(6)
            .map(|(what, n)| format!("{what} {n}"))
            .collect();
        format!("{} ({})", self.writes, parts.join(", "))
    }
}

impl Requests {
    /// Reads `/metrics` (the kubeconfig's credentials need access to it).
    pub async fn sample(client: &kube::Client) -> Result<Requests> {
        let request = http::Request::get("/metrics")
            .body(Vec::new())
            .context("build the /metrics request")?;
        let text = client
            .request_text(request)
            .await
            .context("read kube-apiserver /metrics")?;
        Ok(Requests::parse(&text))
    }

    /// Parses the Prometheus text format, keeping `apiserver_request_total`.
    pub fn parse(text: &str) -> Requests {
        let mut out = BTreeMap::new();
        for line in text.lines() {
            let Some(rest) = line.strip_prefix("apiserver_request_total{") else {
                continue;
            };
            let Some((labels, value)) = rest.rsplit_once("} ") else {
                continue;
            };
            let Ok(value) = value.trim().parse::<f64>() else {
                continue;
            };
            let mut verb = String::new();
            let mut dry_run = String::new();
            let mut resource = String::new();
            for pair in labels.split("\",") {
                let Some((key, val)) = pair.split_once("=\"") else {
                    continue;
                };
                let val = val.trim_end_matches('"').to_owned();
                match key {
                    "verb" => verb = val,
                    "dry_run" => dry_run = val,
                    "resource" => resource = val,
                    _ => {}
                }
            }
            *out.entry((verb, dry_run, resource)).or_insert(0.0) += value;
        }
        Requests(out)
    }

    /// The requests counted since `before`.
    pub fn since(&self, before: &Requests) -> RequestDelta {
        let mut delta = RequestDelta::default();
        let mut by: BTreeMap<String, u64> = BTreeMap::new();
        for ((verb, dry_run, resource), after) in &self.0 {
            let was = before
                .0
                .get(&(verb.clone(), dry_run.clone(), resource.clone()))
                .copied()
                .unwrap_or(0.0);
            let n = (after - was).max(0.0).round() as u64;
            if n == 0 {
                continue;
            }
            if WRITE_VERBS.contains(&verb.as_str()) {
                if dry_run.is_empty() {
                    delta.writes += n;
                    *by.entry(format!("{verb} {resource}")).or_default() += n;
                } else {
                    delta.dry_runs += n;
                }
            } else {
                delta.reads += n;
            }
        }
        let mut by: Vec<(String, u64)> = by.into_iter().collect();
        by.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        delta.writes_by = by;
        delta
    }
}

/// `data.rev` of a ConfigMap, or `None` when it is missing.
pub async fn configmap_rev(
    client: &kube::Client,
    namespace: &str,
    name: &str,
) -> Result<Option<String>> {
    let api: Api<DynamicObject> = Api::namespaced_with(
        client.clone(),
        namespace,
        &resource_of(&json!({"apiVersion": "v1", "kind": "ConfigMap"}))?,
    );
    let object = api
        .get_opt(name)
        .await
        .with_context(|| format!("get ConfigMap {namespace}/{name}"))?;
    Ok(object.and_then(|o| {
        o.data
            .pointer("/data/rev")
            .and_then(Value::as_str)
            .map(str::to_owned)
    }))
}

/// Polls a ConfigMap every 20 ms until its `data.rev` is `rev`; returns the
/// time from `since`, or an error after `timeout`.
pub async fn wait_for_rev(
    client: &kube::Client,
    namespace: &str,
    name: &str,
    rev: &str,
    since: Instant,
    timeout: Duration,
) -> Result<Duration> {
    loop {
        if configmap_rev(client, namespace, name).await?.as_deref() == Some(rev) {
            return Ok(since.elapsed());
        }
        if since.elapsed() > timeout {
            bail!("ConfigMap {namespace}/{name} did not reach rev {rev} within {timeout:?}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// `metadata.resourceVersion` of every ConfigMap in the namespaces, by
/// `namespace/name`.
pub async fn configmap_versions(
    client: &kube::Client,
    namespaces: &[String],
) -> Result<BTreeMap<String, String>> {
    let resource = resource_of(&json!({"apiVersion": "v1", "kind": "ConfigMap"}))?;
    let mut out = BTreeMap::new();
    for ns in namespaces {
        let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), ns, &resource);
        let list = api
            .list(&ListParams::default().labels("app.kubernetes.io/part-of=plumb-bench"))
            .await
            .with_context(|| format!("list ConfigMaps in {ns}"))?;
        for object in list.items {
            let name = object.metadata.name.clone().unwrap_or_default();
            let rv = object.metadata.resource_version.clone().unwrap_or_default();
            out.insert(format!("{ns}/{name}"), rv);
        }
    }
    Ok(out)
}

/// Namespaces whose name starts with `prefix`.
pub async fn namespaces_with_prefix(client: &kube::Client, prefix: &str) -> Result<Vec<String>> {
    let api: Api<DynamicObject> = Api::all_with(
        client.clone(),
        &resource_of(&json!({"apiVersion": "v1", "kind": "Namespace"}))?,
    );
    let list = api
        .list(&ListParams::default())
        .await
        .context("list namespaces")?;
    Ok(list
        .items
        .into_iter()
        .filter_map(|n| n.metadata.name)
        .filter(|n| n.starts_with(prefix))
        .collect())
}

/// Deletes the namespaces and waits (at most `timeout`) until they are gone;
/// returns how many are still terminating.
pub async fn delete_namespaces(
    client: &kube::Client,
    names: &[String],
    timeout: Duration,
) -> Result<usize> {
    let api: Api<DynamicObject> = Api::all_with(
        client.clone(),
        &resource_of(&json!({"apiVersion": "v1", "kind": "Namespace"}))?,
    );
    for name in names {
        match api.delete(name, &DeleteParams::background()).await {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 404 => {}
            Err(e) => return Err(e).with_context(|| format!("delete namespace {name}")),
        }
    }
    let start = Instant::now();
    loop {
        let mut left = 0;
        for name in names {
            if api.get_opt(name).await?.is_some() {
                left += 1;
            }
        }
        if left == 0 || start.elapsed() > timeout {
            return Ok(left);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// kube-apiserver's version.
pub async fn server_version(client: &kube::Client) -> String {
    match client.apiserver_version().await {
        Ok(info) => info.git_version,
        Err(e) => format!("unknown ({e})"),
    }
}
