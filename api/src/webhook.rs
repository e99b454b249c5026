//! `POST /api/webhook`: push notifications from Git hosts (GitHub, GitLab,
//! Gitea/Gogs, Bitbucket) or any tool that names a repository URL; each URL
//! the payload names is handed to [`AppService::refresh_repository`], which
//! fetches it now and queues the applications that use it.
//!
//! Not here: which applications a repository feeds, or fetching it; the
//! controller does both. The optional shared secret (`PLUMB_WEBHOOK_SECRET`)
//! is the only authentication this route has.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use hmac::{KeyInit, Mac};
use plumb_engine::service::AppService;
use serde::Serialize;
use serde_json::Value;

use crate::error::ApiError;

/// The environment variable holding the shared secret; unset or empty means
/// webhooks are accepted without one.
pub(crate) const SECRET_ENV: &str = "PLUMB_WEBHOOK_SECRET";

type HmacSha256 = hmac::Hmac<sha2::Sha256>;

/// What the webhook handler shares.
struct WebhookState<S> {
    service: Arc<S>,
    /// The shared secret, when one is configured.
    secret: Option<Arc<[u8]>>,
}

// A derive would require `S: Clone`; only the `Arc`s are cloned.
impl<S> Clone for WebhookState<S> {
    fn clone(&self) -> Self {
        WebhookState {
            service: Arc::clone(&self.service),
            secret: self.secret.clone(),
        }
    }
}

/// The webhook route, with the secret read from [`SECRET_ENV`] now.
pub(crate) fn routes<S: AppService, T: Clone + Send + Sync + 'static>(
    service: Arc<S>,
) -> Router<T> {
    let secret = std::env::var(SECRET_ENV).ok().filter(|s| !s.is_empty());
    routes_with_secret(service, secret)
}

/// The webhook route with an explicit secret (`None`: no secret required).
pub(crate) fn routes_with_secret<S: AppService, T: Clone + Send + Sync + 'static>(
    service: Arc<S>,
    secret: Option<String>,
) -> Router<T> {
    let state = WebhookState {
        service,
        secret: secret.map(|s| Arc::from(s.into_bytes())),
    };
    Router::new()
        .route("/api/webhook", post(receive::<S>))
        .with_state(state)
}

/// The answer: how many applications were queued.
#[derive(Debug, Serialize)]
struct Refreshed {
    /// Applications queued for reconciliation, summed over the URLs.
    refreshed: usize,
    /// Why nothing was done, for events that are not pushes.
    #[serde(skip_serializing_if = "Option::is_none")]
    ignored: Option<String>,
}

/// The error of a webhook request.
#[derive(Debug)]
enum WebhookError {
    /// Malformed, oversized or without a repository URL (via [`ApiError`]).
    Api(ApiError),
    /// A secret is configured and the request did not prove it knows it.
    Unauthorized(&'static str),
}

impl From<ApiError> for WebhookError {
    fn from(error: ApiError) -> Self {
        WebhookError::Api(error)
    }
}

impl From<BytesRejection> for WebhookError {
    fn from(rejection: BytesRejection) -> Self {
        WebhookError::Api(rejection.into())
    }
}

impl IntoResponse for WebhookError {
    fn into_response(self) -> Response {
        match self {
            WebhookError::Api(error) => error.into_response(),
            WebhookError::Unauthorized(message) => {
                tracing::warn!(message, "webhook refused");
                // Argo CD's error shape; 16 is gRPC's UNAUTHENTICATED.
                let body = serde_json::json!({"error": message, "code": 16, "message": message});
                (StatusCode::UNAUTHORIZED, Json(body)).into_response()
            }
        }
    }
}

/// The Git host that sent a request, told by its event header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Provider {
    GitHub,
    GitLab,
    /// Gitea and Gogs send the same payload.
    Gitea,
    /// Bitbucket Cloud and Bitbucket Server (Data Center).
    Bitbucket,
    /// No known event header: `{"repository": {"url": ...}}` or `{"repoURL": ...}`.
    Generic,
}

impl Provider {
    /// The provider and its event name from the request's headers.
    fn of(headers: &HeaderMap) -> (Provider, String) {
        let value = |name: &str| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        if let Some(event) = value("x-github-event") {
            (Provider::GitHub, event)
        } else if let Some(event) = value("x-gitlab-event") {
            (Provider::GitLab, event)
        } else if let Some(event) = value("x-gitea-event").or_else(|| value("x-gogs-event")) {
            (Provider::Gitea, event)
        } else if let Some(event) = value("x-event-key") {
            (Provider::Bitbucket, event)
        } else {
            (Provider::Generic, String::new())
        }
    }

    /// Whether the event says commits were pushed (other events, such as
    /// GitHub's `ping`, are acknowledged and ignored).
    fn is_push(self, event: &str) -> bool {
        match self {
            Provider::GitHub | Provider::Gitea => event.eq_ignore_ascii_case("push"),
            Provider::GitLab => matches!(event, "Push Hook" | "Tag Push Hook" | "System Hook"),
            Provider::Bitbucket => matches!(event, "repo:push" | "repo:refs_changed"),
            Provider::Generic => true,
        }
    }

    /// JSON pointers of the payload's string fields that name the repository.
    fn url_pointers(self) -> &'static [&'static str] {
        match self {
            Provider::GitHub | Provider::Gitea => &[
                "/repository/html_url",
                "/repository/clone_url",
                "/repository/ssh_url",
                "/repository/git_url",
                "/repository/svn_url",
                "/repository/url",
            ],
            Provider::GitLab => &[
                "/project/web_url",
                "/project/git_http_url",
                "/project/git_ssh_url",
                "/project/http_url",
                "/project/ssh_url",
                "/project/url",
                "/repository/homepage",
                "/repository/url",
                "/repository/git_http_url",
                "/repository/git_ssh_url",
            ],
            Provider::Bitbucket => &["/repository/links/html/href"],
            Provider::Generic => &["/repoURL", "/repository/url"],
        }
    }
}

/// Every distinct URL the payload names for its repository, in the order
/// the provider's fields are listed.
fn repository_urls(provider: Provider, payload: &Value) -> Vec<String> {
    let mut urls: Vec<String> = provider
        .url_pointers()
        .iter()
        .filter_map(|p| payload.pointer(p).and_then(Value::as_str))
        .map(str::to_owned)
        .collect();
    if provider == Provider::Bitbucket {
        // Bitbucket Server lists its clone URLs (HTTP and SSH).
        for list in ["/repository/links/clone", "/repository/links/self"] {
            let hrefs = payload.pointer(list).and_then(Value::as_array);
            urls.extend(
                hrefs
                    .into_iter()
                    .flatten()
                    .filter_map(|l| l.get("href").and_then(Value::as_str))
                    .map(str::to_owned),
            );
        }
        // Bitbucket Cloud names only its web page; its clone URLs follow
        // from the host and the full name, as Argo CD derives them.
        let full_name = payload
            .pointer("/repository/full_name")
            .and_then(Value::as_str);
        let host = payload
            .pointer("/repository/links/html/href")
            .and_then(Value::as_str)
            .and_then(|href| href.split_once("://"))
            .and_then(|(_, rest)| rest.split('/').next());
        if let (Some(full_name), Some(host)) = (full_name, host) {
            urls.push(format!("https://{host}/{full_name}.git"));
            urls.push(format!("git@{host}:{full_name}.git"));
        }
    }
    let mut seen = std::collections::HashSet::new();
    urls.retain(|u| !u.trim().is_empty() && seen.insert(u.clone()));
    urls
}

/// Checks the request against the shared secret: GitHub's (and Gitea's,
/// Bitbucket Server's) `X-Hub-Signature-256: sha256=<hex HMAC of the body>`,
/// Gitea's and Gogs' bare-hex `X-Gitea-Signature`/`X-Gogs-Signature`, or
/// GitLab's `X-Gitlab-Token: <secret>`. Every comparison is constant-time.
fn verify(secret: &[u8], headers: &HeaderMap, body: &[u8]) -> Result<(), WebhookError> {
    let value = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let signature = value("x-hub-signature-256")
        .map(|s| s.strip_prefix("sha256=").unwrap_or(""))
        .or_else(|| value("x-gitea-signature"))
        .or_else(|| value("x-gogs-signature"));
    if let Some(signature) = signature {
        let expected = decode_hex(signature.trim()).ok_or(WebhookError::Unauthorized(
            "the webhook signature is not hex",
        ))?;
        let mut mac = HmacSha256::new_from_slice(secret)
            .map_err(|_| WebhookError::Unauthorized("the webhook secret is unusable"))?;
        mac.update(body);
        return mac
            .verify_slice(&expected)
            .map_err(|_| WebhookError::Unauthorized("the webhook signature does not match"));
    }
    if let Some(token) = value("x-gitlab-token") {
        // HMACs of equal length compared in constant time: neither the
        // token's content nor its length shows in the timing.
        let keyed = |data: &[u8]| {
            HmacSha256::new_from_slice(secret).map(|mut mac| {
                mac.update(data);
                mac
            })
        };
        let (Ok(ours), Ok(theirs)) = (keyed(secret), keyed(token.as_bytes())) else {
            return Err(WebhookError::Unauthorized("the webhook secret is unusable"));
        };
        return theirs
            .verify(&ours.finalize().into_bytes())
            .map_err(|_| WebhookError::Unauthorized("the X-Gitlab-Token does not match"));
    }
    Err(WebhookError::Unauthorized(
        "a webhook secret is configured: sign the payload (X-Hub-Signature-256) or send X-Gitlab-Token",
    ))
}

/// Lower- or upper-case hex to bytes; `None` for anything else.
fn decode_hex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    let digit = |c: u8| (c as char).to_digit(16);
    text.as_bytes()
        .chunks(2)
        .map(|pair| u8::try_from(digit(pair[0])? * 16 + digit(pair[1])?).ok())
        .collect()
}

/// `application/x-www-form-urlencoded` bodies (GitHub's "form" content type)
/// carry the JSON in the `payload` field.
fn form_payload(body: &[u8]) -> Option<Vec<u8>> {
    let text = std::str::from_utf8(body).ok()?;
    let encoded = text
        .split('&')
        .find_map(|pair| pair.strip_prefix("payload="))?;
    let bytes = encoded.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 2;
            }
            other => out.push(other),
        }
        i += 1;
    }
    Some(out)
}

/// `POST /api/webhook`.
async fn receive<S: AppService>(
    State(state): State<WebhookState<S>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Refreshed>, WebhookError> {
    let body = body?;
    if let Some(secret) = &state.secret {
        verify(secret, &headers, &body)?;
    }
    let (provider, event) = Provider::of(&headers);
    if !provider.is_push(&event) {
        tracing::debug!(?provider, event, "webhook event ignored");
        return Ok(Json(Refreshed {
            refreshed: 0,
            ignored: Some(format!("{event} is not a push event")),
        }));
    }
    let form = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| t.starts_with("application/x-www-form-urlencoded"));
    // `curl -d` labels a JSON body as a form too: only a `payload` field
    // makes it one.
    let json = match form.then(|| form_payload(&body)).flatten() {
        Some(payload) => payload,
        None => body.to_vec(),
    };
    let payload: Value = serde_json::from_slice(&json)
        .map_err(|e| ApiError::BadRequest(format!("invalid JSON body: {e}")))?;
    let urls = repository_urls(provider, &payload);
    if urls.is_empty() {
        return Err(ApiError::BadRequest(format!(
            "the {provider:?} payload names no repository URL (expected {})",
            provider.url_pointers().join(", ")
        ))
        .into());
    }
    // The URLs name one repository; fetching them one after another would
    // add up their latencies.
    let counts =
        futures::future::join_all(urls.iter().map(|u| state.service.refresh_repository(u))).await;
    let refreshed = counts.into_iter().sum();
    tracing::info!(?provider, ?urls, refreshed, "webhook: repository refreshed");
    Ok(Json(Refreshed {
        refreshed,
        ignored: None,
    }))
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use axum::body::Body;
    use axum::http::Request;
    use plumb_engine::model::Application;
    use plumb_engine::service::{
        AppEvent, ManagedResource, Refresh, ResourceTree, ServiceError, SyncRequest,
    };
    use serde_json::json;
    use tokio::sync::broadcast;
    use tower::ServiceExt;

    use super::*;
    use crate::fake::FakeService;

    /// The fake service, also recording the URLs of `refresh_repository`.
    struct Recording {
        inner: FakeService,
        urls: Mutex<Vec<String>>,
    }

    impl Recording {
        fn new() -> Arc<Recording> {
            Arc::new(Recording {
                inner: FakeService::with_fixtures(),
                urls: Mutex::default(),
            })
        }

        fn urls(&self) -> Vec<String> {
            self.urls.lock().expect("not poisoned").clone()
        }
    }

    impl AppService for Recording {
        fn names(&self) -> Vec<String> {
            self.inner.names()
        }
        fn app_namespace(&self) -> String {
            self.inner.app_namespace()
        }
        fn document(&self, name: &str) -> Option<Application> {
            self.inner.document(name)
        }
        async fn get(
            &self,
            name: &str,
            refresh: Option<Refresh>,
        ) -> Result<Application, ServiceError> {
            self.inner.get(name, refresh).await
        }
        async fn sync(
            &self,
            name: &str,
            request: SyncRequest,
        ) -> Result<Application, ServiceError> {
            self.inner.sync(name, request).await
        }
        async fn rollback(&self, name: &str, id: i64) -> Result<Application, ServiceError> {
            self.inner.rollback(name, id).await
        }
        async fn terminate_operation(&self, name: &str) -> Result<Application, ServiceError> {
            self.inner.terminate_operation(name).await
        }
        async fn managed_resources(
            &self,
            name: &str,
        ) -> Result<Vec<ManagedResource>, ServiceError> {
            self.inner.managed_resources(name).await
        }
        async fn resource_tree(&self, name: &str) -> Result<ResourceTree, ServiceError> {
            self.inner.resource_tree(name).await
        }
        async fn refresh_repository(&self, url: &str) -> usize {
            self.urls.lock().expect("not poisoned").push(url.to_owned());
            self.inner.refresh_repository(url).await
        }
        fn subscribe(&self) -> broadcast::Receiver<AppEvent> {
            self.inner.subscribe()
        }
    }

    fn webhook(headers: &[(&str, &str)], body: &str) -> Request<Body> {
        let mut request = Request::post("/api/webhook").header(header::HOST, "localhost:8080");
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        request.body(Body::from(body.to_owned())).expect("request")
    }

    async fn call(app: &Router, request: Request<Body>) -> (StatusCode, Value) {
        let response = app.clone().oneshot(request).await.expect("infallible");
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .expect("body");
        (status, serde_json::from_slice(&bytes).expect("a JSON body"))
    }

    /// Posts `body` with `headers` through the whole router (no secret) and
    /// returns the status, the answer and the URLs refreshed.
    async fn post(headers: &[(&str, &str)], body: &str) -> (StatusCode, Value, Vec<String>) {
        let service = Recording::new();
        let app = routes_with_secret(Arc::clone(&service), None)
            .layer(axum::middleware::from_fn(crate::origin::reject_cross_site));
        let (status, answer) = call(&app, webhook(headers, body)).await;
        (status, answer, service.urls())
    }

    fn sign(secret: &str, body: &str) -> String {
        let mut mac = HmacSha256::new_from_slice(secret.as_bytes()).expect("any key length");
        mac.update(body.as_bytes());
        let bytes = mac.finalize().into_bytes();
        let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        format!("sha256={hex}")
    }

    const GITHUB_PUSH: &str = r#"{
        "ref": "refs/heads/main",
        "after": "53e28ff20cc530b9ada2173fbbd64d48338583ba",
        "repository": {
            "full_name": "org/deploy",
            "html_url": "https://github.com/org/deploy",
            "clone_url": "https://github.com/org/deploy.git",
            "ssh_url": "git@github.com:org/deploy.git",
            "git_url": "git://github.com/org/deploy.git",
            "svn_url": "https://github.com/org/deploy",
            "url": "https://github.com/org/deploy"
        }
    }"#;

    #[tokio::test]
    async fn github_push_refreshes_every_url_of_the_repository() {
        let (status, body, urls) = post(&[("x-github-event", "push")], GITHUB_PUSH).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(
            urls,
            [
                "https://github.com/org/deploy",
                "https://github.com/org/deploy.git",
                "git@github.com:org/deploy.git",
                "git://github.com/org/deploy.git",
            ]
        );
        // The fake counts both of its applications for every URL.
        assert_eq!(body, json!({"refreshed": 8}));
    }

    #[tokio::test]
    async fn github_ping_is_acknowledged_without_refreshing() {
        let (status, body, urls) = post(&[("x-github-event", "ping")], r#"{"zen": "hi"}"#).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body["refreshed"], 0);
        assert!(urls.is_empty());
    }

    #[tokio::test]
    async fn github_form_encoded_payload_is_read() {
        let body = format!(
            "payload={}",
            r#"{"repository":{"clone_url":"https://github.com/org/deploy.git"}}"#
                .replace('{', "%7B")
                .replace('}', "%7D")
                .replace('"', "%22")
                .replace(':', "%3A")
        );
        let (status, answer, urls) = post(
            &[
                ("x-github-event", "push"),
                ("content-type", "application/x-www-form-urlencoded"),
            ],
            &body,
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{answer}");
        assert_eq!(urls, ["https://github.com/org/deploy.git"]);
    }

    #[tokio::test]
    async fn json_labelled_as_a_form_is_read_as_json() {
        // What `curl -d '{...}'` sends.
        let (status, _, urls) = post(
            &[("content-type", "application/x-www-form-urlencoded")],
            r#"{"repoURL": "file:///srv/git/deploy"}"#,
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(urls, ["file:///srv/git/deploy"]);
    }

    #[tokio::test]
    async fn gitlab_push_hook_refreshes_project_urls() {
        let payload = r#"{
            "object_kind": "push",
            "project": {
                "web_url": "https://gitlab.example.com/org/deploy",
                "git_http_url": "https://gitlab.example.com/org/deploy.git",
                "git_ssh_url": "git@gitlab.example.com:org/deploy.git",
                "http_url": "https://gitlab.example.com/org/deploy.git",
                "ssh_url": "git@gitlab.example.com:org/deploy.git"
            },
            "repository": {
                "url": "git@gitlab.example.com:org/deploy.git",
                "homepage": "https://gitlab.example.com/org/deploy",
                "git_http_url": "https://gitlab.example.com/org/deploy.git",
                "git_ssh_url": "git@gitlab.example.com:org/deploy.git"
            }
        }"#;
        let (status, body, urls) = post(&[("x-gitlab-event", "Push Hook")], payload).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(
            urls,
            [
                "https://gitlab.example.com/org/deploy",
                "https://gitlab.example.com/org/deploy.git",
                "git@gitlab.example.com:org/deploy.git",
            ]
        );
        assert_eq!(body["refreshed"], 6);
    }

    #[tokio::test]
    async fn gitea_and_gogs_pushes_refresh_repository_urls() {
        let payload = r#"{
            "ref": "refs/heads/main",
            "repository": {
                "html_url": "https://gitea.example.com/org/deploy",
                "clone_url": "https://gitea.example.com/org/deploy.git",
                "ssh_url": "git@gitea.example.com:org/deploy.git"
            }
        }"#;
        for header in ["x-gitea-event", "x-gogs-event"] {
            let (status, _, urls) = post(&[(header, "push")], payload).await;
            assert_eq!(status, StatusCode::OK);
            assert_eq!(
                urls,
                [
                    "https://gitea.example.com/org/deploy",
                    "https://gitea.example.com/org/deploy.git",
                    "git@gitea.example.com:org/deploy.git",
                ],
                "{header}"
            );
        }
    }

    #[tokio::test]
    async fn bitbucket_cloud_push_refreshes_web_and_derived_clone_urls() {
        let payload = r#"{
            "push": {"changes": []},
            "repository": {
                "full_name": "org/deploy",
                "links": {"html": {"href": "https://bitbucket.org/org/deploy"}}
            }
        }"#;
        let (status, _, urls) = post(&[("x-event-key", "repo:push")], payload).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(
            urls,
            [
                "https://bitbucket.org/org/deploy",
                "https://bitbucket.org/org/deploy.git",
                "git@bitbucket.org:org/deploy.git",
            ]
        );
    }

    #[tokio::test]
    async fn bitbucket_server_refs_changed_refreshes_clone_urls() {
        let payload = r#"{
            "eventKey": "repo:refs_changed",
            "repository": {
                "slug": "deploy",
                "links": {
                    "clone": [
                        {"href": "ssh://git@bitbucket.example.com:7999/org/deploy.git", "name": "ssh"},
                        {"href": "https://bitbucket.example.com/scm/org/deploy.git", "name": "http"}
                    ],
                    "self": [{"href": "https://bitbucket.example.com/projects/ORG/repos/deploy/browse"}]
                }
            }
        }"#;
        let (status, _, urls) = post(&[("x-event-key", "repo:refs_changed")], payload).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(
            urls,
            [
                "ssh://git@bitbucket.example.com:7999/org/deploy.git",
                "https://bitbucket.example.com/scm/org/deploy.git",
                "https://bitbucket.example.com/projects/ORG/repos/deploy/browse",
            ]
        );
    }

    #[tokio::test]
    async fn generic_payloads_name_the_url_directly() {
        let (status, body, urls) =
            post(&[], r#"{"repository": {"url": "file:///srv/git/deploy"}}"#).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(urls, ["file:///srv/git/deploy"]);
        assert_eq!(body, json!({"refreshed": 2}));
        let (status, _, urls) = post(&[], r#"{"repoURL": "https://git.example.com/a.git"}"#).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(urls, ["https://git.example.com/a.git"]);
    }

    #[tokio::test]
    async fn bad_json_is_400_in_argo_cd_error_shape() {
        let (status, body, urls) = post(&[("x-github-event", "push")], "{not json").await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(body["code"], 3);
        assert!(
            body["message"]
                .as_str()
                .expect("message")
                .starts_with("invalid JSON body"),
            "{body}"
        );
        assert_eq!(body["error"], body["message"]);
        assert!(urls.is_empty());
    }

    #[tokio::test]
    async fn payload_without_a_url_is_400() {
        let (status, body, urls) = post(&[], r#"{"repository": {}}"#).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert!(
            body["message"]
                .as_str()
                .expect("message")
                .contains("names no repository URL"),
            "{body}"
        );
        assert!(urls.is_empty());
    }

    #[tokio::test]
    async fn webhook_is_mounted_on_the_app_router_and_passes_the_origin_check() {
        // Git hosts send no Origin nor Sec-Fetch-Site header.
        let app = crate::app(Arc::new(FakeService::with_fixtures()));
        let (status, body) = call(
            &app,
            webhook(
                &[
                    ("x-github-event", "push"),
                    ("user-agent", "GitHub-Hookshot/1"),
                ],
                GITHUB_PUSH,
            ),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["refreshed"], 8);
    }

    /// A router with a secret, through the same Origin check as the app.
    fn secured(service: &Arc<Recording>) -> Router {
        routes_with_secret(Arc::clone(service), Some("s3cret".into()))
            .layer(axum::middleware::from_fn(crate::origin::reject_cross_site))
    }

    #[tokio::test]
    async fn valid_github_signature_is_accepted() {
        let service = Recording::new();
        let signature = sign("s3cret", GITHUB_PUSH);
        let (status, body) = call(
            &secured(&service),
            webhook(
                &[
                    ("x-github-event", "push"),
                    ("x-hub-signature-256", &signature),
                ],
                GITHUB_PUSH,
            ),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(service.urls().len(), 4);
    }

    #[tokio::test]
    async fn bad_or_missing_signature_is_401() {
        let service = Recording::new();
        let wrong_key = sign("other", GITHUB_PUSH);
        let tampered = sign("s3cret", "{}");
        for headers in [
            vec![("x-hub-signature-256", wrong_key.as_str())],
            vec![("x-hub-signature-256", tampered.as_str())],
            vec![("x-hub-signature-256", "sha256=zz")],
            vec![("x-hub-signature-256", "md5=00")],
            vec![],
        ] {
            let mut headers = headers;
            headers.push(("x-github-event", "push"));
            let (status, body) = call(&secured(&service), webhook(&headers, GITHUB_PUSH)).await;
            assert_eq!(status, StatusCode::UNAUTHORIZED, "{headers:?}");
            assert_eq!(body["code"], 16);
            assert_eq!(body["error"], body["message"]);
        }
        assert!(service.urls().is_empty());
    }

    #[tokio::test]
    async fn gitlab_token_must_equal_the_secret() {
        let service = Recording::new();
        let payload =
            r#"{"project": {"git_http_url": "https://gitlab.example.com/org/deploy.git"}}"#;
        let (status, _) = call(
            &secured(&service),
            webhook(
                &[("x-gitlab-event", "Push Hook"), ("x-gitlab-token", "wrong")],
                payload,
            ),
        )
        .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert!(service.urls().is_empty());
        let (status, _) = call(
            &secured(&service),
            webhook(
                &[
                    ("x-gitlab-event", "Push Hook"),
                    ("x-gitlab-token", "s3cret"),
                ],
                payload,
            ),
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(
            service.urls(),
            ["https://gitlab.example.com/org/deploy.git"]
        );
    }

    #[test]
    fn hex_decoding_accepts_only_pairs_of_hex_digits() {
        assert_eq!(decode_hex("00ff10"), Some(vec![0, 255, 16]));
        assert_eq!(decode_hex("ABcd"), Some(vec![0xab, 0xcd]));
        assert_eq!(decode_hex("abc"), None);
        assert_eq!(decode_hex("zz"), None);
        assert_eq!(decode_hex(""), Some(vec![]));
    }
}
