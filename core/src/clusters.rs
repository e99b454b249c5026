//! The clusters applications deploy to, as Argo CD declares them: cluster
//! Secrets (label `argocd.argoproj.io/secret-type: cluster`, keys `name`,
//! `server`, `config`, optional `namespaces` and `project`) read into a
//! [`Catalog`], and an application's destination resolved through it.
//!
//! Pure: parsing, validation, masking and resolution. Connecting to a
//! cluster, watching the Secrets and probing the servers live in the
//! engine. A credential read here never appears in an error, a `Debug`
//! output or a masked view.

use std::collections::BTreeMap;

use base64::Engine;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::model::{ApplicationDestination, IN_CLUSTER_NAME, IN_CLUSTER_SERVER};

/// The label that says what an Argo CD Secret is.
pub const SECRET_TYPE_LABEL: &str = "argocd.argoproj.io/secret-type";
/// The value of [`SECRET_TYPE_LABEL`] on a cluster Secret.
pub const CLUSTER_SECRET_TYPE: &str = "cluster";

/// The TLS part of a cluster's `config` (Argo CD's `tlsClientConfig`).
#[derive(Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct TlsClientConfig {
    /// Skip the verification of the server's certificate.
    #[serde(default)]
    pub insecure: bool,
    /// The name the server's certificate is checked against, when it is
    /// not the URL's host.
    #[serde(default)]
    pub server_name: Option<String>,
    /// The certificate authorities (PEM, base64-encoded in the JSON).
    #[serde(default)]
    pub ca_data: Option<String>,
    /// A client certificate (PEM, base64-encoded in the JSON).
    #[serde(default)]
    pub cert_data: Option<String>,
    /// The client certificate's key (PEM, base64-encoded in the JSON).
    #[serde(default)]
    pub key_data: Option<String>,
}

/// A cluster Secret's `config`: how to authenticate to the API server.
#[derive(Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ClusterConfig {
    /// A bearer token (a ServiceAccount's, say).
    #[serde(default)]
    pub bearer_token: Option<String>,
    /// Basic authentication's user.
    #[serde(default)]
    pub username: Option<String>,
    /// Basic authentication's password.
    #[serde(default)]
    pub password: Option<String>,
    /// TLS settings.
    #[serde(default)]
    pub tls_client_config: TlsClientConfig,
}

impl std::fmt::Debug for ClusterConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Credentials are never printed: only whether they are set.
        f.debug_struct("ClusterConfig")
            .field("bearerToken", &self.bearer_token.as_ref().map(|_| "***"))
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "***"))
            .field("insecure", &self.tls_client_config.insecure)
            .field("serverName", &self.tls_client_config.server_name)
            .field("caData", &self.tls_client_config.ca_data.is_some())
            .field("certData", &self.tls_client_config.cert_data.is_some())
            .field(
                "keyData",
                &self.tls_client_config.key_data.as_ref().map(|_| "***"),
            )
            .finish()
    }
}

impl ClusterConfig {
    /// The configuration as the API shows it (Argo CD's shape with the
    /// secrets removed): the TLS settings that are not credentials, and
    /// the user name.
    pub fn masked(&self) -> Value {
        let mut tls = json!({"insecure": self.tls_client_config.insecure});
        if let Some(name) = &self.tls_client_config.server_name {
            tls["serverName"] = json!(name);
        }
        let mut out = json!({"tlsClientConfig": tls});
        if let Some(user) = &self.username {
            out["username"] = json!(user);
        }
        out
    }
}

/// One cluster Secret, read and checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClusterSecret {
    /// The Secret's own name (`metadata.name`).
    pub secret: String,
    /// The cluster's name (`name`; the server when absent).
    pub name: String,
    /// The API server's URL (`server`), without a trailing `/`.
    pub server: String,
    /// How to connect (`config`).
    pub config: ClusterConfig,
    /// `namespaces`: the namespaces Plumb may manage there (empty: all).
    pub namespaces: Vec<String>,
    /// `project`: the only project whose applications may use it (empty:
    /// any).
    pub project: String,
    /// The Secret's labels (for ApplicationSets' cluster generator).
    pub labels: BTreeMap<String, String>,
    /// The Secret's annotations.
    pub annotations: BTreeMap<String, String>,
}

/// Why a cluster Secret cannot be used. Never quotes a credential.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    /// It has no `server` key.
    #[error("cluster Secret {0}: the key `server` is missing")]
    NoServer(String),
    /// `server` is not an http(s) URL.
    #[error("cluster Secret {secret}: server {server:?} is not an https:// (or http://) URL")]
    BadServer {
        /// The Secret.
        secret: String,
        /// Its `server`.
        server: String,
    },
    /// A key's value is not base64 of UTF-8 text.
    #[error("cluster Secret {secret}: the key `{key}` is not base64 of UTF-8 text")]
    BadData {
        /// The Secret.
        secret: String,
        /// The key.
        key: String,
    },
    /// `config` is not the JSON of a cluster configuration. Only the
    /// position is given: serde's message may quote the value.
    #[error(
        "cluster Secret {secret}: `config` is not a cluster configuration (JSON with bearerToken, username/password, tlsClientConfig); the error is at line {line} column {column}"
    )]
    BadConfig {
        /// The Secret.
        secret: String,
        /// The line of the error.
        line: usize,
        /// Its column.
        column: usize,
    },
    /// A field of `tlsClientConfig` that holds PEM data is not base64.
    #[error("cluster Secret {secret}: config.tlsClientConfig.{field} is not base64-encoded PEM")]
    BadPem {
        /// The Secret.
        secret: String,
        /// The field.
        field: &'static str,
    },
    /// A client certificate without its key, or a key without its
    /// certificate.
    #[error(
        "cluster Secret {0}: config.tlsClientConfig needs both certData and keyData, or neither"
    )]
    HalfClientCert(String),
    /// `username` without `password` or the other way round.
    #[error("cluster Secret {0}: config needs both username and password, or neither")]
    HalfBasicAuth(String),
}

fn string_map(secret: &Value, field: &str) -> BTreeMap<String, String> {
    secret
        .pointer(&format!("/metadata/{field}"))
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
        .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
        .collect()
}

/// A text value of a Secret: `stringData` as written, or `data` (base64)
/// as read back. `Ok(None)` when absent.
fn field(secret: &Value, name: &str, key: &str) -> Result<Option<String>, SecretError> {
    if let Some(v) = secret
        .pointer(&format!("/stringData/{key}"))
        .and_then(Value::as_str)
    {
        return Ok(Some(v.to_string()));
    }
    let Some(encoded) = secret
        .pointer(&format!("/data/{key}"))
        .and_then(Value::as_str)
    else {
        return Ok(None);
    };
    base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .map(Some)
        .ok_or_else(|| SecretError::BadData {
            secret: name.to_string(),
            key: key.to_string(),
        })
}

/// Whether `secret` is labelled as a cluster Secret.
pub fn is_cluster_secret(secret: &Value) -> bool {
    secret
        .pointer("/metadata/labels")
        .and_then(|l| l.get(SECRET_TYPE_LABEL))
        .and_then(Value::as_str)
        == Some(CLUSTER_SECRET_TYPE)
}

/// Reads a cluster Secret. `None` when the Secret is not labelled as one.
///
/// # Errors
/// When it is one but cannot be used (see [`SecretError`]).
pub fn parse_secret(secret: &Value) -> Option<Result<ClusterSecret, SecretError>> {
    is_cluster_secret(secret).then(|| parse_labelled(secret))
}

fn parse_labelled(secret: &Value) -> Result<ClusterSecret, SecretError> {
    let name = secret
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let get = |key: &str| field(secret, &name, key);
    let server = get("server")?
        .map(|s| s.trim().trim_end_matches('/').to_string())
        .filter(|s| !s.is_empty())
        .ok_or_else(|| SecretError::NoServer(name.clone()))?;
    let has_host = |rest: &str| !rest.is_empty() && !rest.starts_with('/');
    let valid = server
        .strip_prefix("https://")
        .or_else(|| server.strip_prefix("http://"))
        .is_some_and(has_host);
    if !valid {
        return Err(SecretError::BadServer {
            secret: name,
            server,
        });
    }
    let config = match get("config")? {
        Some(text) if !text.trim().is_empty() => serde_json::from_str::<ClusterConfig>(&text)
            .map_err(|e| SecretError::BadConfig {
                secret: name.clone(),
                line: e.line(),
                column: e.column(),
            })?,
        _ => ClusterConfig::default(),
    };
    let tls = &config.tls_client_config;
    for (field, value) in [
        ("caData", &tls.ca_data),
        ("certData", &tls.cert_data),
        ("keyData", &tls.key_data),
    ] {
        if let Some(v) = value
            && base64::engine::general_purpose::STANDARD
                .decode(v.trim())
                .is_err()
        {
            return Err(SecretError::BadPem {
                secret: name,
                field,
            });
        }
    }
    if tls.cert_data.is_some() != tls.key_data.is_some() {
        return Err(SecretError::HalfClientCert(name));
    }
    if config.username.is_some() != config.password.is_some() {
        return Err(SecretError::HalfBasicAuth(name));
    }
    let namespaces = get("namespaces")?
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .map(str::to_string)
        .collect();
    Ok(ClusterSecret {
        name: get("name")?
            .filter(|n| !n.trim().is_empty())
            .unwrap_or_else(|| server.clone()),
        server,
        config,
        namespaces,
        project: get("project")?.unwrap_or_default(),
        labels: string_map(secret, "labels"),
        annotations: string_map(secret, "annotations"),
        secret: name,
    })
}

/// How Plumb reaches a cluster of the catalogue.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Connection {
    /// With Plumb's own client (`--kubeconfig`, or in-cluster): the server
    /// `https://kubernetes.default.svc`.
    Own,
    /// With a cluster Secret's configuration.
    Secret(ClusterConfig),
}

/// One cluster of the catalogue.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// Its name.
    pub name: String,
    /// Its server URL.
    pub server: String,
    /// How to connect.
    pub connection: Connection,
    /// The Secret it comes from (`None` for the implicit in-cluster).
    pub secret: Option<String>,
    /// The namespaces it may be managed in (empty: all).
    pub namespaces: Vec<String>,
    /// The project it is scoped to (empty: any).
    pub project: String,
}

impl Entry {
    /// The configuration as the API shows it, secrets removed.
    pub fn masked_config(&self) -> Value {
        match &self.connection {
            Connection::Own => json!({"tlsClientConfig": {"insecure": false}}),
            Connection::Secret(c) => c.masked(),
        }
    }
}

/// Every cluster applications may deploy to: the cluster Secrets, and the
/// one Plumb runs against (`in-cluster`, `https://kubernetes.default.svc`)
/// unless a Secret names that server (then it is known by that Secret's
/// name, and reached with Plumb's own client).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Catalog {
    entries: Vec<Entry>,
}

impl Default for Catalog {
    fn default() -> Catalog {
        Catalog::new(Vec::new())
    }
}

/// Why an application's destination names no cluster.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DestinationError {
    /// No cluster of that name.
    #[error(
        "destination cluster name '{0}' is unknown: no cluster Secret has that name (labelled argocd.argoproj.io/secret-type: cluster in Plumb's namespace)"
    )]
    UnknownName(String),
    /// No cluster with that server.
    #[error(
        "destination server '{0}' is unknown: no cluster Secret has that server (labelled argocd.argoproj.io/secret-type: cluster in Plumb's namespace)"
    )]
    UnknownServer(String),
    /// Several clusters have that name.
    #[error("destination cluster name '{0}' is ambiguous: {1} cluster Secrets have that name")]
    Ambiguous(String, usize),
    /// Name and server are both set and name different clusters.
    #[error(
        "destination name '{name}' and server '{server}' are different clusters; set only one of them"
    )]
    Mismatch {
        /// The destination's name.
        name: String,
        /// Its server.
        server: String,
    },
    /// The cluster is scoped to another project.
    #[error(
        "cluster '{cluster}' is scoped to project '{scoped}'; application's project is '{project}'"
    )]
    Project {
        /// The cluster's name.
        cluster: String,
        /// The project it is scoped to.
        scoped: String,
        /// The application's project.
        project: String,
    },
}

impl Catalog {
    /// The catalogue of these Secrets (in the order given; for one server
    /// named twice the first Secret wins), with in-cluster first unless a
    /// Secret names its server.
    pub fn new(mut secrets: Vec<ClusterSecret>) -> Catalog {
        secrets.sort_by(|a, b| a.secret.cmp(&b.secret));
        let mut entries: Vec<Entry> = Vec::with_capacity(secrets.len() + 1);
        for s in secrets {
            if entries.iter().any(|e| e.server == s.server) {
                continue;
            }
            let connection = if s.server == IN_CLUSTER_SERVER {
                Connection::Own
            } else {
                Connection::Secret(s.config)
            };
            entries.push(Entry {
                name: s.name,
                server: s.server,
                connection,
                secret: Some(s.secret),
                namespaces: s.namespaces,
                project: s.project,
            });
        }
        if !entries.iter().any(|e| e.server == IN_CLUSTER_SERVER) {
            entries.insert(
                0,
                Entry {
                    name: IN_CLUSTER_NAME.into(),
                    server: IN_CLUSTER_SERVER.into(),
                    connection: Connection::Own,
                    secret: None,
                    namespaces: Vec::new(),
                    project: String::new(),
                },
            );
        }
        Catalog { entries }
    }

    /// Every cluster, in-cluster first when it has no Secret.
    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    /// The cluster with this server URL.
    pub fn by_server(&self, server: &str) -> Option<&Entry> {
        let server = server.trim_end_matches('/');
        self.entries.iter().find(|e| e.server == server)
    }

    /// The cluster an application's destination names: by `server`, by
    /// `name`, or both when they agree; none at all means in-cluster (as
    /// Plumb has always read it). `project` is the application's project.
    ///
    /// # Errors
    /// When it names no cluster, an ambiguous name, two clusters, or a
    /// cluster scoped to another project.
    pub fn resolve(
        &self,
        dest: &ApplicationDestination,
        project: &str,
    ) -> Result<&Entry, DestinationError> {
        let server = dest.server.as_deref().filter(|s| !s.is_empty());
        let name = dest.name.as_deref().filter(|s| !s.is_empty());
        let by_name = |name: &str| {
            let mut found = self.entries.iter().filter(|e| e.name == name);
            match (found.next(), found.count()) {
                (None, _) => Err(DestinationError::UnknownName(name.to_string())),
                (Some(e), 0) => Ok(e),
                (Some(_), more) => Err(DestinationError::Ambiguous(name.to_string(), more + 1)),
            }
        };
        let by_server = |server: &str| {
            self.by_server(server)
                .ok_or_else(|| DestinationError::UnknownServer(server.to_string()))
        };
        let entry = match (server, name) {
            (None, None) => by_server(IN_CLUSTER_SERVER)?,
            (Some(s), None) => by_server(s)?,
            (None, Some(n)) => by_name(n)?,
            (Some(s), Some(n)) => {
                let e = by_server(s)?;
                if e.name != n {
                    return Err(DestinationError::Mismatch {
                        name: n.to_string(),
                        server: s.to_string(),
                    });
                }
                e
            }
        };
        if !entry.project.is_empty() && entry.project != project {
            return Err(DestinationError::Project {
                cluster: entry.name.clone(),
                scoped: entry.project.clone(),
                project: project.to_string(),
            });
        }
        Ok(entry)
    }
}

/// The destination with both its server and its name filled in from the
/// cluster it resolved to, for the project's destination rules (Argo CD
/// infers the one from the other before it checks them).
pub fn resolved_destination(
    dest: &ApplicationDestination,
    name: &str,
    server: &str,
) -> ApplicationDestination {
    ApplicationDestination {
        server: Some(server.to_string()),
        name: Some(name.to_string()),
        ..dest.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b64(s: &str) -> String {
        base64::engine::general_purpose::STANDARD.encode(s)
    }

    fn secret(name: &str, data: &[(&str, &str)]) -> Value {
        let data: serde_json::Map<String, Value> = data
            .iter()
            .map(|(k, v)| (k.to_string(), json!(b64(v))))
            .collect();
        json!({"metadata": {"name": name, "labels": {SECRET_TYPE_LABEL: "cluster", "env": "prod"}},
               "data": data})
    }

    fn dest(server: Option<&str>, name: Option<&str>) -> ApplicationDestination {
        ApplicationDestination {
            server: server.map(str::to_string),
            name: name.map(str::to_string),
            ..ApplicationDestination::default()
        }
    }

    #[test]
    fn a_cluster_secret_is_read_with_its_config() {
        let config = format!(
            r#"{{"bearerToken": "tok-123", "tlsClientConfig": {{"insecure": false, "caData": "{}", "serverName": "kube"}}}}"#,
            b64("-----BEGIN CERTIFICATE-----")
        );
        let s = parse_secret(&secret(
            "c2",
            &[
                ("name", "second"),
                ("server", "https://127.0.0.1:36453/"),
                ("config", &config),
                ("namespaces", "a, b"),
                ("project", "team"),
            ],
        ))
        .expect("a cluster secret")
        .expect("valid");
        assert_eq!(s.name, "second");
        assert_eq!(s.server, "https://127.0.0.1:36453");
        assert_eq!(s.config.bearer_token.as_deref(), Some("tok-123"));
        assert_eq!(s.namespaces, ["a", "b"]);
        assert_eq!(s.project, "team");
        assert_eq!(s.labels.get("env").map(String::as_str), Some("prod"));
        let shown = format!("{s:?} {}", s.config.masked());
        assert!(!shown.contains("tok-123"), "{shown}");
        assert_eq!(
            s.config.masked(),
            json!({"tlsClientConfig": {"insecure": false, "serverName": "kube"}})
        );
    }

    #[test]
    fn string_data_and_a_missing_name_are_accepted() {
        let s = json!({"metadata": {"name": "x", "labels": {SECRET_TYPE_LABEL: "cluster"}},
            "stringData": {"server": "https://k.example", "config": "{\"username\": \"u\", \"password\": \"p\"}"}});
        let s = parse_secret(&s).expect("cluster").expect("valid");
        assert_eq!(s.name, "https://k.example");
        assert_eq!(s.config.username.as_deref(), Some("u"));
    }

    #[test]
    fn other_secrets_are_not_cluster_secrets() {
        let repo = json!({"metadata": {"labels": {SECRET_TYPE_LABEL: "repository"}}});
        assert!(parse_secret(&repo).is_none());
        assert!(parse_secret(&json!({"metadata": {}})).is_none());
    }

    #[test]
    fn bad_secrets_say_what_is_wrong_without_quoting_credentials() {
        let err = |data: &[(&str, &str)]| {
            parse_secret(&secret("s", data))
                .expect("cluster")
                .expect_err("invalid")
        };
        assert_eq!(err(&[("name", "x")]), SecretError::NoServer("s".into()));
        assert!(matches!(
            err(&[("server", "kube:6443")]),
            SecretError::BadServer { .. }
        ));
        let bad = err(&[
            ("server", "https://k"),
            ("config", r#"{"bearerToken": 12345678}"#),
        ]);
        assert!(matches!(bad, SecretError::BadConfig { .. }));
        assert!(!bad.to_string().contains("12345678"), "{bad}");
        let not_json = err(&[("server", "https://k"), ("config", "tok-secret")]);
        assert!(!not_json.to_string().contains("tok-secret"), "{not_json}");
        assert!(matches!(
            err(&[
                ("server", "https://k"),
                ("config", r#"{"tlsClientConfig": {"caData": "%%%"}}"#)
            ]),
            SecretError::BadPem {
                field: "caData",
                ..
            }
        ));
        assert_eq!(
            err(&[
                ("server", "https://k"),
                ("config", r#"{"tlsClientConfig": {"certData": "YQ=="}}"#)
            ]),
            SecretError::HalfClientCert("s".into())
        );
        assert_eq!(
            err(&[("server", "https://k"), ("config", r#"{"username": "u"}"#)]),
            SecretError::HalfBasicAuth("s".into())
        );
        let s = json!({"metadata": {"name": "s", "labels": {SECRET_TYPE_LABEL: "cluster"}},
            "data": {"server": "!!"}});
        assert!(matches!(
            parse_secret(&s).expect("cluster"),
            Err(SecretError::BadData { .. })
        ));
    }

    fn catalog() -> Catalog {
        let read = |name: &str, server: &str| {
            parse_secret(&secret(
                &format!("s-{name}"),
                &[("name", name), ("server", server)],
            ))
            .expect("cluster")
            .expect("valid")
        };
        Catalog::new(vec![
            read("second", "https://second:6443"),
            read("third", "https://third:6443"),
        ])
    }

    #[test]
    fn destinations_resolve_by_server_or_name() {
        let c = catalog();
        let names: Vec<&str> = c.entries().iter().map(|e| e.name.as_str()).collect();
        assert_eq!(names, ["in-cluster", "second", "third"]);
        let server = |d| c.resolve(&d, "default").map(|e| e.server.clone());
        assert_eq!(server(dest(None, None)), Ok(IN_CLUSTER_SERVER.into()));
        assert_eq!(
            server(dest(None, Some("in-cluster"))),
            Ok(IN_CLUSTER_SERVER.into())
        );
        assert_eq!(
            server(dest(None, Some("second"))),
            Ok("https://second:6443".into())
        );
        assert_eq!(
            server(dest(Some("https://third:6443/"), None)),
            Ok("https://third:6443".into())
        );
        assert_eq!(
            server(dest(Some("https://second:6443"), Some("second"))),
            Ok("https://second:6443".into())
        );
        assert_eq!(
            server(dest(None, Some("fourth"))),
            Err(DestinationError::UnknownName("fourth".into()))
        );
        assert_eq!(
            server(dest(Some("https://fourth"), None)),
            Err(DestinationError::UnknownServer("https://fourth".into()))
        );
        assert!(matches!(
            server(dest(Some("https://second:6443"), Some("third"))),
            Err(DestinationError::Mismatch { .. })
        ));
        let message = DestinationError::UnknownName("fourth".into()).to_string();
        assert!(message.contains("'fourth'"), "{message}");
    }

    #[test]
    fn a_secret_for_the_local_server_renames_in_cluster() {
        let local = parse_secret(&secret(
            "s-local",
            &[("name", "local"), ("server", IN_CLUSTER_SERVER)],
        ))
        .expect("cluster")
        .expect("valid");
        let c = Catalog::new(vec![local]);
        assert_eq!(c.entries().len(), 1);
        assert_eq!(c.entries()[0].connection, Connection::Own);
        assert_eq!(
            c.resolve(&dest(None, Some("local")), "p")
                .map(|e| e.server.as_str()),
            Ok(IN_CLUSTER_SERVER)
        );
        assert_eq!(
            c.resolve(&dest(None, Some("in-cluster")), "p"),
            Err(DestinationError::UnknownName("in-cluster".into()))
        );
    }

    #[test]
    fn duplicates_and_project_scopes() {
        let read = |secret_name: &str, name: &str, server: &str, project: &str| {
            parse_secret(&secret(
                secret_name,
                &[("name", name), ("server", server), ("project", project)],
            ))
            .expect("cluster")
            .expect("valid")
        };
        let c = Catalog::new(vec![
            read("b", "x", "https://one", ""),
            read("a", "x", "https://two", "team"),
            read("c", "y", "https://one", ""),
        ]);
        // The first Secret (by name) of a server wins.
        assert_eq!(
            c.by_server("https://one").map(|e| e.name.as_str()),
            Some("x")
        );
        assert_eq!(c.entries().len(), 3);
        assert_eq!(
            c.resolve(&dest(None, Some("x")), "team"),
            Err(DestinationError::Ambiguous("x".into(), 2))
        );
        assert!(matches!(
            c.resolve(&dest(Some("https://two"), None), "other"),
            Err(DestinationError::Project { .. })
        ));
        assert!(c.resolve(&dest(Some("https://two"), None), "team").is_ok());
    }

    #[test]
    fn resolved_destinations_carry_server_and_name() {
        let c = catalog();
        let d = dest(None, Some("second"));
        let entry = c.resolve(&d, "default").expect("known");
        let full = resolved_destination(&d, &entry.name, &entry.server);
        assert_eq!(full.server.as_deref(), Some("https://second:6443"));
        assert_eq!(full.name.as_deref(), Some("second"));
    }
}
