//! Repository credentials from Argo CD's repository Secrets: Secrets in
//! Plumb's namespace labelled `argocd.argoproj.io/secret-type: repository`
//! (one repository) or `repo-creds` (every repository under a URL prefix),
//! with `url`, `username` and `password` (a token is a password) keys.
//!
//! It reads them and hands them to the repository cache; the values are
//! never logged or stored anywhere else.

use std::sync::Arc;

use base64::Engine;
use futures::StreamExt;
use kube::api::{Api, DynamicObject};
use kube::core::{ApiResource, GroupVersionKind};
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use crate::source::{Credentials, RepoCache};

/// The label Argo CD's repository Secrets carry.
pub const SECRET_TYPE_LABEL: &str = "argocd.argoproj.io/secret-type";

/// A text value of a Secret: from `stringData` (as written) or `data`
/// (base64, as read back); `None` when absent or not UTF-8.
pub fn secret_field(secret: &Value, key: &str) -> Option<String> {
    if let Some(v) = secret
        .pointer(&format!("/stringData/{key}"))
        .and_then(Value::as_str)
    {
        return Some(v.to_string());
    }
    let encoded = secret.pointer(&format!("/data/{key}"))?.as_str()?;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .ok()?;
    String::from_utf8(bytes).ok()
}

/// The URL prefix and credentials a repository Secret holds, if it is one.
pub fn from_secret(secret: &Value) -> Option<(String, Credentials)> {
    let kind = secret
        .pointer("/metadata/labels")?
        .get(SECRET_TYPE_LABEL)?
        .as_str()?;
    if kind != "repository" && kind != "repo-creds" {
        return None;
    }
    let field = |key: &str| secret_field(secret, key);
    let url = field("url")?;
    Some((
        url,
        Credentials {
            username: field("username"),
            password: field("password"),
        },
    ))
}

/// Watches repository Secrets in `namespace` and keeps `repos`' credentials
/// up to date until `cancel` fires. A deleted Secret withdraws its
/// credentials.
pub fn watch(
    client: kube::Client,
    namespace: &str,
    repos: Arc<RepoCache>,
    cancel: CancellationToken,
) {
    let resource =
        ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk("", "v1", "Secret"), "secrets");
    let api: Api<DynamicObject> = Api::namespaced_with(client, namespace, &resource);
    let config = watcher::Config::default().labels(SECRET_TYPE_LABEL);
    tokio::spawn(async move {
        let mut stream = watcher::watcher(api, config).default_backoff().boxed();
        loop {
            let event = tokio::select! {
                () = cancel.cancelled() => return,
                event = stream.next() => event,
            };
            let Some(event) = event else { return };
            match event {
                Ok(Event::Apply(s) | Event::InitApply(s)) => {
                    let value = serde_json::to_value(s).expect("a DynamicObject always serializes");
                    if let Some((url, creds)) = from_secret(&value) {
                        tracing::info!(url = %url, "repository credentials loaded");
                        repos.set_credentials(&url, creds);
                    }
                }
                Ok(Event::Delete(s)) => {
                    let value = serde_json::to_value(s).expect("a DynamicObject always serializes");
                    if let Some((url, _)) = from_secret(&value) {
                        repos.set_credentials(&url, Credentials::default());
                    }
                }
                Ok(Event::Init | Event::InitDone) => {}
                Err(e) => tracing::debug!(error = %e, "repository Secret watch failed; retrying"),
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn repository_secrets_give_url_and_credentials() {
        let secret = json!({
            "metadata": {"name": "repo", "labels": {SECRET_TYPE_LABEL: "repository"}},
            "data": {
                "url": base64::engine::general_purpose::STANDARD.encode("https://git.example/team/apps.git"),
                "username": base64::engine::general_purpose::STANDARD.encode("bot"),
                "password": base64::engine::general_purpose::STANDARD.encode("token-123")
            }
        });
        let (url, creds) = from_secret(&secret).expect("a repository secret");
        assert_eq!(url, "https://git.example/team/apps.git");
        assert_eq!(creds.username.as_deref(), Some("bot"));
        assert_eq!(creds.password.as_deref(), Some("token-123"));
        assert!(
            !format!("{creds:?}").contains("token-123"),
            "Debug hides the password"
        );
    }

    #[test]
    fn repo_creds_templates_and_string_data_are_read() {
        let secret = json!({
            "metadata": {"labels": {SECRET_TYPE_LABEL: "repo-creds"}},
            "stringData": {"url": "https://git.example/team", "password": "t"}
        });
        let (url, creds) = from_secret(&secret).expect("a repo-creds secret");
        assert_eq!(url, "https://git.example/team");
        assert_eq!(creds.username, None);
    }

    #[test]
    fn other_secrets_are_ignored() {
        let plain = json!({"metadata": {"labels": {SECRET_TYPE_LABEL: "cluster"}}, "data": {"url": "eA=="}});
        assert!(from_secret(&plain).is_none());
        assert!(from_secret(&json!({"metadata": {}})).is_none());
    }
}
