//! Plumb's accounts, kept where Argo CD keeps them, in `--namespace`: the
//! Secret `argocd-secret` (bcrypt password hashes, when each changed, the
//! key that signs tokens, the API tokens issued), the ConfigMap
//! `argocd-cm` (which accounts exist and what they may do) and the
//! ConfigMap `argocd-rbac-cm` (`policy.csv`, `policy.default`). All three
//! are watched with [`settings::watch_data`]; reads that must not lag (a
//! login, a token not yet seen) go to the API server.
//!
//! At the first start (no admin password) a random one is generated: its
//! hash goes to `argocd-secret`, the password itself to the Secret
//! `plumb-initial-admin-secret` (key `password`), and the log says where,
//! never what.
//!
//! Not here: what the rules mean (core's `accounts` and `rbac`) and tokens
//! (the API's `auth`).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, ObjectMeta, PostParams};
use rand::Rng;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::account_rules;
use crate::settings::{self, Data, Kind, RawData};

/// The Secret of passwords, the signing key and issued tokens.
pub const SECRET: &str = "argocd-secret";
/// The ConfigMap of RBAC: `policy.csv`, `policy.default`.
pub const RBAC_CONFIG_MAP: &str = "argocd-rbac-cm";
/// The Secret the generated admin password is written to.
pub const INITIAL_ADMIN_SECRET: &str = "plumb-initial-admin-secret";
/// The key of the token signing key in [`SECRET`].
pub const SECRET_KEY: &str = "server.secretkey";

/// Writes of [`SECRET`] retried after a conflict with another writer.
const WRITE_ATTEMPTS: usize = 5;

/// The error of reading or writing accounts.
#[derive(Debug, thiserror::Error)]
pub enum AccountsError {
    /// The API server refused or failed a request.
    #[error("cannot {action} {kind} {namespace}/{name}: {source}")]
    Kube {
        /// read, create or update.
        action: &'static str,
        /// Secret or ConfigMap.
        kind: &'static str,
        /// Its namespace.
        namespace: String,
        /// Its name.
        name: String,
        /// Why.
        #[source]
        source: Box<kube::Error>,
    },
    /// The namespace Plumb keeps accounts in does not exist.
    #[error(
        "namespace {0} does not exist: create it (`kubectl create namespace {0}`), choose another with --namespace, or run with --insecure-disable-auth"
    )]
    NoNamespace(String),
    /// Another writer kept changing the Secret.
    #[error("Secret {0} kept changing while Plumb wrote it; try again")]
    Contended(String),
    /// The change cannot be made (an unknown account, a bad token list).
    #[error("{0}")]
    Invalid(String),
    /// Hashing a password failed.
    #[error("cannot hash the password: {0}")]
    Hash(String),
    /// There is no cluster to write to (accounts from fixed data).
    #[error("accounts are read-only here")]
    ReadOnly,
}

/// The accounts' three objects, watched, and the client that writes them.
#[derive(Clone)]
pub struct Accounts {
    namespace: String,
    client: Option<kube::Client>,
    config: watch::Receiver<Arc<RawData>>,
    rbac: watch::Receiver<Arc<RawData>>,
    secret: watch::Receiver<Arc<RawData>>,
}

impl std::fmt::Debug for Accounts {
    // Never the data: it holds password hashes and the signing key.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Accounts")
            .field("namespace", &self.namespace)
            .finish_non_exhaustive()
    }
}

impl Accounts {
    /// Makes sure `argocd-secret` in `namespace` has a signing key and an
    /// admin password (generating both at the first start), then watches
    /// the three objects, waiting at most `timeout` for each first list.
    ///
    /// # Errors
    /// The namespace does not exist; the Secret cannot be read or written.
    pub async fn start(
        client: kube::Client,
        namespace: &str,
        timeout: Duration,
        cancel: CancellationToken,
    ) -> Result<Accounts, AccountsError> {
        bootstrap(&client, namespace).await?;
        let watch = |kind, name| {
            settings::watch_data(
                client.clone(),
                namespace,
                kind,
                name,
                timeout,
                cancel.clone(),
            )
        };
        let (config, rbac, secret) = tokio::join!(
            watch(Kind::ConfigMap, settings::CONFIG_MAP),
            watch(Kind::ConfigMap, RBAC_CONFIG_MAP),
            watch(Kind::Secret, SECRET),
        );
        Ok(Accounts {
            namespace: namespace.to_string(),
            client: Some(client),
            config,
            rbac,
            secret,
        })
    }

    /// Accounts from fixed data, read-only (tests).
    pub fn fixed(config: &Data, secret: RawData, rbac: &Data) -> Accounts {
        let bytes = |d: &Data| -> RawData {
            d.iter()
                .map(|(k, v)| (k.clone(), v.as_bytes().to_vec()))
                .collect()
        };
        Accounts {
            namespace: "plumb".into(),
            client: None,
            config: watch::channel(Arc::new(bytes(config))).1,
            rbac: watch::channel(Arc::new(bytes(rbac))).1,
            secret: watch::channel(Arc::new(secret)).1,
        }
    }

    /// The namespace the objects are in.
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// `argocd-cm`'s data as last watched.
    pub fn config(&self) -> Data {
        settings::text_data(&self.config.borrow())
    }

    /// `argocd-cm`'s data as last watched, as watched (the same `Arc`
    /// until it changes, so a caller can keep what it read from it).
    pub fn config_raw(&self) -> Arc<RawData> {
        Arc::clone(&self.config.borrow())
    }

    /// `argocd-rbac-cm`'s data as last watched (the same `Arc` until it
    /// changes, so a caller can keep what it parsed from it).
    pub fn rbac(&self) -> Arc<RawData> {
        Arc::clone(&self.rbac.borrow())
    }

    /// `argocd-secret`'s data as last watched.
    pub fn secret(&self) -> Arc<RawData> {
        Arc::clone(&self.secret.borrow())
    }

    /// `argocd-cm` and `argocd-secret` as the API server has them now.
    ///
    /// # Errors
    /// A read fails.
    pub async fn fresh(&self) -> Result<(Data, RawData), AccountsError> {
        let Some(client) = &self.client else {
            return Ok((self.config(), (*self.secret()).clone()));
        };
        let config_maps: Api<k8s_openapi::api::core::v1::ConfigMap> =
            Api::namespaced(client.clone(), &self.namespace);
        let config = config_maps
            .get_opt(settings::CONFIG_MAP)
            .await
            .map_err(|source| AccountsError::Kube {
                action: "read",
                kind: "ConfigMap",
                namespace: self.namespace.clone(),
                name: settings::CONFIG_MAP.into(),
                source: Box::new(source),
            })?
            .and_then(|cm| cm.data)
            .unwrap_or_default();
        let secret = read_secret(client, &self.namespace, SECRET)
            .await?
            .map(|s| secret_data(&s))
            .unwrap_or_default();
        Ok((config.into_iter().collect(), secret))
    }

    /// `argocd-secret` as the API server has it now.
    ///
    /// # Errors
    /// The read fails.
    pub async fn fresh_secret(&self) -> Result<RawData, AccountsError> {
        let Some(client) = &self.client else {
            return Ok((*self.secret()).clone());
        };
        Ok(read_secret(client, &self.namespace, SECRET)
            .await?
            .map(|s| secret_data(&s))
            .unwrap_or_default())
    }

    /// Changes `argocd-secret`'s data with `edit` (read, edited, written
    /// with its resourceVersion; retried when another writer came first).
    ///
    /// # Errors
    /// What `edit` returns; a read or write fails; [`AccountsError::ReadOnly`]
    /// for fixed accounts.
    pub async fn edit_secret(
        &self,
        mut edit: impl FnMut(&mut RawData) -> Result<(), AccountsError> + Send,
    ) -> Result<(), AccountsError> {
        let Some(client) = &self.client else {
            return Err(AccountsError::ReadOnly);
        };
        edit_secret(client, &self.namespace, &mut edit).await
    }
}

/// A password's bcrypt hash (blocking: call it on a blocking thread).
///
/// # Errors
/// bcrypt fails (a password longer than 72 bytes).
pub fn hash_password(password: &str) -> Result<String, AccountsError> {
    bcrypt::hash(password, bcrypt::DEFAULT_COST).map_err(|e| AccountsError::Hash(e.to_string()))
}

/// Whether `password` matches the bcrypt `hash` (blocking).
pub fn verify_password(password: &str, hash: &[u8]) -> bool {
    std::str::from_utf8(hash)
        .ok()
        .is_some_and(|hash| bcrypt::verify(password, hash.trim()).unwrap_or(false))
}

/// When an account's password last changed, in seconds since the epoch.
pub fn password_mtime(secret: &RawData, account: &str) -> Option<i64> {
    let text = secret.get(&account_rules::password_mtime_key(account))?;
    let text = std::str::from_utf8(text).ok()?;
    time::OffsetDateTime::parse(text.trim(), &time::format_description::well_known::Rfc3339)
        .ok()
        .map(time::OffsetDateTime::unix_timestamp)
}

/// Now, as `passwordMtime` is written.
pub fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .replace_nanosecond(0)
        .unwrap_or_else(|_| time::OffsetDateTime::now_utc())
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// A random password of 24 letters and digits.
fn random_password() -> String {
    rand::rng()
        .sample_iter(&rand::distr::Alphanumeric)
        .take(24)
        .map(char::from)
        .collect()
}

/// The first start's work: a signing key and an admin password, if missing.
async fn bootstrap(client: &kube::Client, namespace: &str) -> Result<(), AccountsError> {
    let namespaces: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(client.clone());
    match namespaces.get_opt(namespace).await {
        Ok(Some(_)) => {}
        Ok(None) => return Err(AccountsError::NoNamespace(namespace.to_string())),
        // Plumb may not read namespaces; the Secret's write will say more.
        Err(e) => tracing::debug!(error = %e, "cannot check namespace {namespace}"),
    }
    let key = account_rules::password_key(account_rules::ADMIN);
    let current = read_secret(client, namespace, SECRET)
        .await?
        .map(|s| secret_data(&s))
        .unwrap_or_default();
    let generated = if current.get(&key).is_none_or(Vec::is_empty) {
        let clear = random_password();
        let to_hash = clear.clone();
        let hashed = tokio::task::spawn_blocking(move || hash_password(&to_hash))
            .await
            .map_err(|e| AccountsError::Hash(e.to_string()))??;
        Some((clear, hashed))
    } else {
        None
    };
    let mut password: Option<String> = None;
    edit_secret(client, namespace, &mut |data: &mut RawData| {
        if data.get(SECRET_KEY).is_none_or(Vec::is_empty) {
            data.insert(SECRET_KEY.into(), rand::random::<[u8; 32]>().to_vec());
            tracing::info!(
                "generated the token signing key ({SECRET_KEY} in Secret {namespace}/{SECRET})"
            );
        }
        password = None;
        if let Some((clear, hashed)) = &generated
            && data.get(&key).is_none_or(Vec::is_empty)
        {
            data.insert(key.clone(), hashed.clone().into_bytes());
            data.insert(
                account_rules::password_mtime_key(account_rules::ADMIN),
                now_rfc3339().into_bytes(),
            );
            password = Some(clear.clone());
        }
        Ok(())
    })
    .await?;
    if let Some(password) = password {
        let api: Api<Secret> = Api::namespaced(client.clone(), namespace);
        let secret = Secret {
            metadata: ObjectMeta {
                name: Some(INITIAL_ADMIN_SECRET.into()),
                namespace: Some(namespace.into()),
                ..Default::default()
            },
            data: Some(BTreeMap::from([(
                "password".to_string(),
                ByteString(password.into_bytes()),
            )])),
            ..Default::default()
        };
        let written = match api.create(&PostParams::default(), &secret).await {
            Err(kube::Error::Api(e)) if e.code == 409 => {
                api.replace(INITIAL_ADMIN_SECRET, &PostParams::default(), &secret)
                    .await
            }
            other => other,
        };
        written.map_err(|source| AccountsError::Kube {
            action: "write",
            kind: "Secret",
            namespace: namespace.into(),
            name: INITIAL_ADMIN_SECRET.into(),
            source: Box::new(source),
        })?;
        tracing::warn!(
            "generated a password for the admin account; read it with: kubectl -n {namespace} get secret {INITIAL_ADMIN_SECRET} -o jsonpath='{{.data.password}}' | base64 -d"
        );
    }
    Ok(())
}

async fn read_secret(
    client: &kube::Client,
    namespace: &str,
    name: &str,
) -> Result<Option<Secret>, AccountsError> {
    let api: Api<Secret> = Api::namespaced(client.clone(), namespace);
    api.get_opt(name)
        .await
        .map_err(|source| AccountsError::Kube {
            action: "read",
            kind: "Secret",
            namespace: namespace.into(),
            name: name.into(),
            source: Box::new(source),
        })
}

fn secret_data(secret: &Secret) -> RawData {
    secret
        .data
        .iter()
        .flatten()
        .map(|(k, v)| (k.clone(), v.0.clone()))
        .chain(
            secret
                .string_data
                .iter()
                .flatten()
                .map(|(k, v)| (k.clone(), v.as_bytes().to_vec())),
        )
        .collect()
}

async fn edit_secret(
    client: &kube::Client,
    namespace: &str,
    edit: &mut (dyn FnMut(&mut RawData) -> Result<(), AccountsError> + Send),
) -> Result<(), AccountsError> {
    let api: Api<Secret> = Api::namespaced(client.clone(), namespace);
    let failed = |action, source| AccountsError::Kube {
        action,
        kind: "Secret",
        namespace: namespace.into(),
        name: SECRET.into(),
        source: Box::new(source),
    };
    for _ in 0..WRITE_ATTEMPTS {
        let existing = read_secret(client, namespace, SECRET).await?;
        let before = existing.as_ref().map(secret_data).unwrap_or_default();
        let mut data = before.clone();
        edit(&mut data)?;
        if existing.is_some() && data == before {
            return Ok(());
        }
        let mut secret = existing.unwrap_or_else(|| Secret {
            metadata: ObjectMeta {
                name: Some(SECRET.into()),
                namespace: Some(namespace.into()),
                labels: Some(BTreeMap::from([(
                    "app.kubernetes.io/part-of".to_string(),
                    "argocd".to_string(),
                )])),
                ..Default::default()
            },
            type_: Some("Opaque".into()),
            ..Default::default()
        });
        secret.string_data = None;
        secret.data = Some(data.into_iter().map(|(k, v)| (k, ByteString(v))).collect());
        let result = if secret.metadata.resource_version.is_some() {
            api.replace(SECRET, &PostParams::default(), &secret).await
        } else {
            api.create(&PostParams::default(), &secret).await
        };
        match result {
            Ok(_) => return Ok(()),
            Err(kube::Error::Api(e)) if e.code == 409 => continue,
            Err(source) => return Err(failed("write", source)),
        }
    }
    Err(AccountsError::Contended(SECRET.into()))
}
