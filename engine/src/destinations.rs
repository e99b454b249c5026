//! The clusters applications deploy to, each with its own connection:
//! the catalogue read from cluster Secrets (watched), and per cluster a
//! [`Dest`] (client, kinds, live state and watches, connection state)
//! built when an application first targets it.
//!
//! A cluster's connection state comes from its prober: one task per
//! cluster that asks the API server its version, at once when a watch of
//! that cluster cannot reach it or a request to it times out, every minute
//! otherwise, and with a short backoff while it does not answer. Reconciles only read that state, so
//! an application on an unreachable cluster fails at once with a condition
//! naming the cluster, and no worker waits on it. A change of the state
//! queues that cluster's applications again (through [`Destinations::touched`]).
//!
//! Not the rules: parsing the Secrets and resolving a destination are
//! `plumb_core::clusters` (pure). Credentials are kept in memory only, in
//! the client; they are never logged, shown or written anywhere.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use futures::StreamExt;
use kube::api::{Api, DynamicObject};
use kube::core::{ApiResource, GroupVersionKind};
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use serde::Serialize;
use serde_json::{Value, json};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::cluster::Cluster;
use crate::clusters::{
    Catalog, ClusterConfig, ClusterSecret, Connection, DestinationError, SECRET_TYPE_LABEL,
};
use crate::live::{ChangedApps, LiveState};
use crate::model::{ApplicationDestination, IN_CLUSTER_SERVER};
use crate::settings::Settings;

/// Noted in [`Destinations::touched`] when the catalogue changed: every
/// application is concerned.
pub const ALL: &str = "*";

/// How often a cluster that answers is asked again.
const PROBE_EVERY: Duration = Duration::from_secs(60);
/// The longest wait between two probes of a cluster that does not answer.
const PROBE_BACKOFF_MAX: Duration = Duration::from_secs(10);

/// Whether Plumb can talk to a cluster (Argo CD's connection status).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum Status {
    /// Not asked yet.
    Unknown,
    /// The API server answered the last probe.
    Successful,
    /// It did not (or refused).
    Failed,
}

/// A cluster's connection state, as the last probe left it.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ConnectionState {
    /// Answered or not.
    pub status: Status,
    /// Why not (never a credential), or empty.
    pub message: String,
    /// When the last probe was made (RFC 3339).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attempted_at: Option<String>,
    /// The server's version when it answered.
    #[serde(skip)]
    pub version: Option<String>,
}

impl Default for ConnectionState {
    fn default() -> ConnectionState {
        ConnectionState {
            status: Status::Unknown,
            message: String::new(),
            attempted_at: None,
            version: None,
        }
    }
}

/// One cluster as Plumb uses it: its client, its live state and its
/// connection state.
pub struct Dest {
    /// Its server URL (the key of the destination).
    pub server: String,
    /// Its client, kinds and capabilities.
    pub cluster: Cluster,
    /// The live state of Plumb's objects there, fed by its own watches.
    pub live: Arc<LiveState>,
    /// Tells apart two connections to the same server (a changed Secret
    /// builds a new one): part of what a comparison is keyed by.
    pub id: u64,
    connection: Connection,
    state: Mutex<ConnectionState>,
    probe: Arc<Notify>,
    cancel: CancellationToken,
}

impl std::fmt::Debug for Dest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dest")
            .field("server", &self.server)
            .finish_non_exhaustive()
    }
}

impl Dest {
    /// Its connection state now.
    pub fn state(&self) -> ConnectionState {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Asks the prober to check the cluster now.
    pub fn nudge(&self) {
        self.probe.notify_one();
    }
}

impl Drop for Dest {
    fn drop(&mut self) {
        // Its watches and prober end with it.
        self.cancel.cancel();
    }
}

/// Why an application's destination cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum DestError {
    /// It names no cluster of the catalogue (an InvalidSpecError).
    #[error(transparent)]
    Unknown(#[from] DestinationError),
    /// The cluster's Secret does not give a usable configuration.
    #[error("cluster '{cluster}' ({server}): cannot build a client from its Secret: {message}")]
    Config {
        /// The cluster's name.
        cluster: String,
        /// Its server.
        server: String,
        /// Why (no credential).
        message: String,
    },
}

/// What [`Destinations`] needs beyond the client of Plumb's own cluster.
#[derive(Clone, Debug)]
pub struct DestOptions {
    /// Where the cluster Secrets are (`--namespace`).
    pub namespace: String,
    /// How long a request (and a probe) may take (`--request-timeout`).
    pub request_timeout: Duration,
    /// Requests counted per server.
    pub metrics: Option<Arc<crate::metrics::Metrics>>,
    /// Writes to any cluster only while this replica leads.
    pub fence: crate::lease::Leadership,
}

/// The catalogue and the clusters connected so far.
pub struct Destinations {
    own: Arc<Dest>,
    catalog: RwLock<Arc<Catalog>>,
    /// Cluster Secrets that cannot be used, by Secret name: the reason.
    invalid: Mutex<BTreeMap<String, String>>,
    remote: Mutex<HashMap<String, Arc<Dest>>>,
    changes: Arc<ChangedApps>,
    touched: Arc<ChangedApps>,
    settings: RwLock<Arc<Settings>>,
    options: DestOptions,
    ids: AtomicU64,
    cancel: CancellationToken,
}

impl std::fmt::Debug for Destinations {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Destinations").finish_non_exhaustive()
    }
}

/// One cluster as `GET /api/v1/clusters` shows it (Argo CD's shape,
/// credentials removed).
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ClusterView {
    /// Its server URL.
    pub server: String,
    /// Its name.
    pub name: String,
    /// Its configuration without credentials.
    pub config: Value,
    /// The namespaces it is limited to (empty: all).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub namespaces: Vec<String>,
    /// The project it is scoped to.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub project: String,
    /// Its connection state.
    pub connection_state: ConnectionState,
    /// Version, applications and connection state.
    pub info: ClusterInfo,
}

/// `info` of a [`ClusterView`].
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ClusterInfo {
    /// The server's version (empty until it answered).
    pub server_version: String,
    /// Applications whose destination is this cluster.
    pub applications_count: usize,
    /// Its connection state.
    pub connection_state: ConnectionState,
    /// Objects of Plumb's applications held in its live state.
    pub cache_info: Value,
}

impl Destinations {
    /// The destinations with Plumb's own cluster (`client`), probed once
    /// before this returns (bounded by the request timeout). Changes of
    /// tracked objects on any cluster go to `changes`; a cluster whose
    /// connection state changes is noted (by server) in [`Destinations::touched`].
    pub async fn new(
        client: kube::Client,
        own_live: Arc<LiveState>,
        own_alarm: Arc<Notify>,
        changes: Arc<ChangedApps>,
        options: DestOptions,
        cancel: CancellationToken,
    ) -> Arc<Destinations> {
        let touched = Arc::new(ChangedApps::default());
        let own = Arc::new(Dest {
            server: IN_CLUSTER_SERVER.into(),
            cluster: Cluster::new(client)
                .with_request_timeout(options.request_timeout)
                .with_alarm(Arc::clone(&own_alarm))
                .with_fence(options.fence.clone()),
            live: own_live,
            id: 0,
            connection: Connection::Own,
            state: Mutex::default(),
            probe: own_alarm,
            cancel: cancel.child_token(),
        });
        probe_once(&own, options.request_timeout, &touched).await;
        spawn_prober(
            Arc::downgrade(&own),
            options.request_timeout,
            Arc::clone(&touched),
        );
        Arc::new(Destinations {
            own,
            catalog: RwLock::new(Arc::new(Catalog::default())),
            invalid: Mutex::default(),
            remote: Mutex::default(),
            changes,
            touched,
            settings: RwLock::default(),
            options,
            ids: AtomicU64::new(1),
            cancel,
        })
    }

    /// Servers whose connection state changed (or whose Secret changed):
    /// their applications are to be compared again.
    pub fn touched(&self) -> Arc<ChangedApps> {
        Arc::clone(&self.touched)
    }

    /// Plumb's own cluster.
    pub fn own(&self) -> &Arc<Dest> {
        &self.own
    }

    /// The catalogue now.
    pub fn catalog(&self) -> Arc<Catalog> {
        Arc::clone(&self.catalog.read().expect("catalog lock is never poisoned"))
    }

    /// The server a destination resolves to, without connecting (for
    /// counting and requeueing).
    pub fn server_of(&self, dest: &ApplicationDestination, project: &str) -> Option<String> {
        self.catalog()
            .resolve(dest, project)
            .ok()
            .map(|e| e.server.clone())
    }

    /// The cluster an application's destination names, connected (a new
    /// client, live state and prober) the first time it is asked for.
    ///
    /// # Errors
    /// When the destination names no cluster, or its Secret's
    /// configuration cannot make a client.
    pub async fn resolve(
        &self,
        dest: &ApplicationDestination,
        project: &str,
    ) -> Result<(String, Arc<Dest>), DestError> {
        let catalog = self.catalog();
        let entry = catalog.resolve(dest, project)?;
        let config = match &entry.connection {
            Connection::Own => return Ok((entry.name.clone(), Arc::clone(&self.own))),
            Connection::Secret(config) => config,
        };
        if let Some(d) = self.lock_remote().get(&entry.server)
            && d.connection == entry.connection
            && same_scope(&d.live, &entry.namespaces)
        {
            return Ok((entry.name.clone(), Arc::clone(d)));
        }
        let client = self
            .client_for(&entry.server, config)
            .await
            .map_err(|message| DestError::Config {
                cluster: entry.name.clone(),
                server: entry.server.clone(),
                message,
            })?;
        let mut remote = self.lock_remote();
        // Another reconcile may have connected it meanwhile: one wins.
        if let Some(d) = remote.get(&entry.server)
            && d.connection == entry.connection
            && same_scope(&d.live, &entry.namespaces)
        {
            return Ok((entry.name.clone(), Arc::clone(d)));
        }
        let cancel = self.cancel.child_token();
        let alarm = Arc::new(Notify::new());
        // The Secret's `namespaces`: watched one by one, and the only ones
        // its applications may deploy to.
        let live = LiveState::scoped(
            client.clone(),
            Arc::clone(&self.changes),
            cancel.clone(),
            Some(Arc::clone(&alarm)),
            Some(entry.namespaces.clone()),
        );
        live.set_settings(Arc::clone(
            &self
                .settings
                .read()
                .expect("settings lock is never poisoned"),
        ));
        let d = Arc::new(Dest {
            server: entry.server.clone(),
            cluster: Cluster::new(client)
                .with_request_timeout(self.options.request_timeout)
                .with_alarm(Arc::clone(&alarm))
                .with_fence(self.options.fence.clone()),
            live,
            id: self.ids.fetch_add(1, Ordering::Relaxed),
            connection: entry.connection.clone(),
            state: Mutex::default(),
            probe: alarm,
            cancel,
        });
        tracing::info!(cluster = %entry.name, server = %entry.server, "connecting to cluster");
        spawn_prober(
            Arc::downgrade(&d),
            self.options.request_timeout,
            Arc::clone(&self.touched),
        );
        remote.insert(entry.server.clone(), Arc::clone(&d));
        Ok((entry.name.clone(), d))
    }

    fn lock_remote(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<Dest>>> {
        self.remote
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// A client from a cluster Secret's configuration, built in memory
    /// (nothing is written to disk).
    async fn client_for(
        &self,
        server: &str,
        config: &ClusterConfig,
    ) -> Result<kube::Client, String> {
        let tls = &config.tls_client_config;
        let mut cluster = json!({"server": server});
        if tls.insecure {
            cluster["insecure-skip-tls-verify"] = json!(true);
        } else if let Some(ca) = &tls.ca_data {
            cluster["certificate-authority-data"] = json!(ca.trim());
        }
        if let Some(name) = &tls.server_name {
            cluster["tls-server-name"] = json!(name);
        }
        let mut user = json!({});
        if let Some(token) = &config.bearer_token {
            user["token"] = json!(token);
        }
        if let (Some(u), Some(p)) = (&config.username, &config.password) {
            user["username"] = json!(u);
            user["password"] = json!(p);
        }
        if let (Some(c), Some(k)) = (&tls.cert_data, &tls.key_data) {
            user["client-certificate-data"] = json!(c.trim());
            user["client-key-data"] = json!(k.trim());
        }
        let kubeconfig: kube::config::Kubeconfig = serde_json::from_value(json!({
            "apiVersion": "v1", "kind": "Config",
            "clusters": [{"name": "c", "cluster": cluster}],
            "users": [{"name": "u", "user": user}],
            "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u"}}],
            "current-context": "c",
        }))
        .map_err(|_| "the configuration does not make a kubeconfig".to_string())?;
        let mut kube_config = kube::Config::from_custom_kubeconfig(
            kubeconfig,
            &kube::config::KubeConfigOptions::default(),
        )
        .await
        .map_err(|e| e.to_string())?;
        kube_config.connect_timeout = Some(self.options.request_timeout);
        let builder =
            kube::client::ClientBuilder::try_from(kube_config).map_err(|e| e.to_string())?;
        Ok(match &self.options.metrics {
            Some(metrics) => builder.with_layer(&metrics.k8s_layer(server)).build(),
            None => builder.build(),
        })
    }

    /// Takes new settings for every cluster's live state.
    pub fn set_settings(&self, settings: Arc<Settings>) {
        *self
            .settings
            .write()
            .expect("settings lock is never poisoned") = Arc::clone(&settings);
        self.own.live.set_settings(Arc::clone(&settings));
        let remote: Vec<Arc<Dest>> = self.lock_remote().values().cloned().collect();
        for d in remote {
            d.live.set_settings(Arc::clone(&settings));
        }
    }

    /// Takes the cluster Secrets as they are now: the catalogue is
    /// replaced, connections whose Secret changed or went away are
    /// dropped (their watches stop), and the servers concerned are noted
    /// as touched.
    pub fn set_secrets(&self, secrets: &[Value]) {
        let mut valid: Vec<ClusterSecret> = Vec::new();
        let mut invalid = BTreeMap::new();
        for s in secrets {
            match crate::clusters::parse_secret(s) {
                Some(Ok(c)) => valid.push(c),
                Some(Err(e)) => {
                    let name = s
                        .pointer("/metadata/name")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_string();
                    invalid.insert(name, e.to_string());
                }
                None => {}
            }
        }
        {
            let mut known = self
                .invalid
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            for (name, why) in &invalid {
                if known.get(name) != Some(why) {
                    tracing::warn!(secret = %name, "{why}");
                }
            }
            *known = invalid;
        }
        let catalog = Catalog::new(valid);
        let old = std::mem::replace(
            &mut *self
                .catalog
                .write()
                .expect("catalog lock is never poisoned"),
            Arc::new(catalog.clone()),
        );
        if *old == catalog {
            return;
        }
        // A connection whose Secret changed or went away is dropped (its
        // watches and prober stop); the next reconcile connects anew.
        {
            let mut remote = self.lock_remote();
            remote.retain(|server, d| {
                catalog.by_server(server).is_some_and(|e| {
                    e.connection == d.connection && same_scope(&d.live, &e.namespaces)
                })
            });
        }
        tracing::info!(
            clusters = catalog.entries().len(),
            "cluster catalogue changed"
        );
        // Which applications a change concerns depends on names and
        // servers before and after: all are compared again (a change of a
        // Secret is rare; an unchanged application costs no request).
        self.touched.push(ALL.to_string());
    }

    /// Every cluster of the catalogue with its state; `count` says how
    /// many applications target a server.
    pub fn views(&self, count: &dyn Fn(&str) -> usize) -> Vec<ClusterView> {
        let catalog = self.catalog();
        let remote = self.lock_remote();
        catalog
            .entries()
            .iter()
            .map(|e| {
                let dest = match e.connection {
                    Connection::Own => Some(&self.own),
                    Connection::Secret(_) => remote.get(&e.server),
                };
                let (state, objects) = dest.map_or_else(
                    || {
                        (
                            ConnectionState {
                                message: "no application targets this cluster yet; it is connected when one does".into(),
                                ..ConnectionState::default()
                            },
                            0,
                        )
                    },
                    |d| (d.state(), d.live.len()),
                );
                ClusterView {
                    server: e.server.clone(),
                    name: e.name.clone(),
                    config: e.masked_config(),
                    namespaces: e.namespaces.clone(),
                    project: e.project.clone(),
                    connection_state: state.clone(),
                    info: ClusterInfo {
                        server_version: state.version.clone().unwrap_or_default(),
                        applications_count: count(&e.server),
                        connection_state: state,
                        cache_info: json!({"resourcesCount": objects}),
                    },
                }
            })
            .collect()
    }

    /// Every connected cluster (own first), for metrics.
    pub fn connected(&self) -> Vec<Arc<Dest>> {
        let mut out = vec![Arc::clone(&self.own)];
        let mut remote: Vec<Arc<Dest>> = self.lock_remote().values().cloned().collect();
        remote.sort_by(|a, b| a.server.cmp(&b.server));
        out.extend(remote);
        out
    }
}

/// Whether a live state watches exactly the namespaces a cluster Secret
/// lists (none listed: the whole cluster).
fn same_scope(live: &LiveState, namespaces: &[String]) -> bool {
    let wanted: std::collections::BTreeSet<&str> = namespaces
        .iter()
        .map(|n| n.trim())
        .filter(|n| !n.is_empty())
        .collect();
    match live.namespaces() {
        None => wanted.is_empty(),
        Some(held) => held.iter().map(String::as_str).eq(wanted.iter().copied()),
    }
}

/// Asks the cluster's API server its version and records the outcome;
/// notes the server as touched when the status changed.
async fn probe_once(d: &Dest, timeout: Duration, touched: &ChangedApps) -> Status {
    let answer = tokio::time::timeout(timeout, d.cluster.client().apiserver_version()).await;
    let (status, message, version) = match answer {
        Ok(Ok(info)) => (Status::Successful, String::new(), Some(info.git_version)),
        Ok(Err(kube::Error::Api(s))) => (
            Status::Failed,
            format!("the API server refused: {} ({})", s.message, s.code),
            None,
        ),
        Ok(Err(e)) => (
            Status::Failed,
            format!("cannot reach the API server: {e}"),
            None,
        ),
        Err(_) => (
            Status::Failed,
            format!("the API server did not answer within {timeout:?} (--request-timeout)"),
            None,
        ),
    };
    let changed = {
        let mut state = d
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let changed = state.status != status;
        *state = ConnectionState {
            status,
            message: message.clone(),
            attempted_at: Some(crate::controller::now()),
            version: version.or_else(|| state.version.take()),
        };
        changed
    };
    if changed {
        match status {
            Status::Successful => tracing::info!(server = %d.server, "cluster answers"),
            _ => tracing::warn!(server = %d.server, "cluster unreachable: {message}"),
        }
        touched.push(d.server.clone());
    }
    status
}

/// The prober of one cluster: probes at once, then every
/// [`PROBE_EVERY`] while it answers, with a backoff up to
/// [`PROBE_BACKOFF_MAX`] while it does not, and whenever nudged. Ends with
/// the cluster.
fn spawn_prober(d: std::sync::Weak<Dest>, timeout: Duration, touched: Arc<ChangedApps>) {
    tokio::spawn(async move {
        let mut backoff = Duration::from_millis(500);
        loop {
            let Some(dest) = d.upgrade() else { return };
            let (probe, cancel) = (Arc::clone(&dest.probe), dest.cancel.clone());
            let status = probe_once(&dest, timeout, &touched).await;
            drop(dest);
            let wait = if status == Status::Successful {
                backoff = Duration::from_millis(500);
                PROBE_EVERY
            } else {
                backoff = (backoff * 2).min(PROBE_BACKOFF_MAX);
                backoff
            };
            tokio::select! {
                () = cancel.cancelled() => return,
                () = probe.notified() => {}
                () = tokio::time::sleep(wait) => {}
            }
        }
    });
}

/// Watches the cluster Secrets in `namespace` and keeps `dests`'
/// catalogue up to date until `cancel` fires: added, changed and removed
/// Secrets take effect without a restart.
pub fn watch_secrets(client: kube::Client, dests: Arc<Destinations>, cancel: CancellationToken) {
    let resource =
        ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk("", "v1", "Secret"), "secrets");
    let api: Api<DynamicObject> = Api::namespaced_with(client, &dests.options.namespace, &resource);
    let config = watcher::Config::default().labels(&format!("{SECRET_TYPE_LABEL}=cluster"));
    tokio::spawn(async move {
        let mut stream = watcher::watcher(api, config).default_backoff().boxed();
        let mut secrets: BTreeMap<String, Value> = BTreeMap::new();
        let mut listing: Option<BTreeMap<String, Value>> = None;
        loop {
            let event = tokio::select! {
                () = cancel.cancelled() => return,
                event = stream.next() => event,
            };
            let Some(event) = event else { return };
            let name_of = |s: &DynamicObject| s.metadata.name.clone().unwrap_or_default();
            let value = |s: DynamicObject| {
                serde_json::to_value(s).expect("a DynamicObject always serializes")
            };
            match event {
                Ok(Event::Init) => listing = Some(BTreeMap::new()),
                Ok(Event::InitApply(s)) => {
                    let name = name_of(&s);
                    listing
                        .get_or_insert_with(BTreeMap::new)
                        .insert(name, value(s));
                }
                Ok(Event::InitDone) => {
                    secrets = listing.take().unwrap_or_default();
                    dests.set_secrets(&secrets.values().cloned().collect::<Vec<_>>());
                }
                Ok(Event::Apply(s)) => {
                    secrets.insert(name_of(&s), value(s));
                    dests.set_secrets(&secrets.values().cloned().collect::<Vec<_>>());
                }
                Ok(Event::Delete(s)) => {
                    secrets.remove(&name_of(&s));
                    dests.set_secrets(&secrets.values().cloned().collect::<Vec<_>>());
                }
                // The message names the request, never a Secret's data.
                Err(e) => tracing::debug!(error = %e, "cluster Secret watch failed; retrying"),
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cluster_is_shown_in_argo_cd_s_shape_without_credentials() {
        let state = ConnectionState {
            status: Status::Failed,
            message: "cannot reach the API server: connection refused".into(),
            attempted_at: Some("2026-01-01T00:00:00Z".into()),
            version: Some("v1.20.2".into()),
        };
        let config: ClusterConfig = serde_json::from_value(json!({
            "bearerToken": "tok-secret",
            "tlsClientConfig": {"insecure": true, "keyData": "a2V5", "certData": "Y2VydA=="}
        }))
        .expect("a config");
        let view = ClusterView {
            server: "https://prod:6443".into(),
            name: "prod".into(),
            config: config.masked(),
            namespaces: Vec::new(),
            project: String::new(),
            connection_state: state.clone(),
            info: ClusterInfo {
                server_version: "v1.20.2".into(),
                applications_count: 2,
                connection_state: state,
                cache_info: json!({"resourcesCount": 3}),
            },
        };
        let shown = serde_json::to_value(&view).expect("serializes");
        assert_eq!(shown["connectionState"]["status"], "Failed");
        assert_eq!(
            shown["connectionState"]["attemptedAt"],
            "2026-01-01T00:00:00Z"
        );
        assert_eq!(shown["info"]["serverVersion"], "v1.20.2");
        assert_eq!(shown["info"]["applicationsCount"], 2);
        assert_eq!(shown["info"]["connectionState"]["status"], "Failed");
        assert_eq!(
            shown["config"],
            json!({"tlsClientConfig": {"insecure": true}})
        );
        let text = shown.to_string();
        for secret in ["tok-secret", "a2V5", "Y2VydA=="] {
            assert!(!text.contains(secret), "{text}");
        }
        assert!(shown.get("namespaces").is_none(), "{text}");
    }
}
