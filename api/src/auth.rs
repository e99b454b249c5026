//! Who is calling and what they may do: Argo CD's sessions and tokens
//! (HS256 JWTs signed with `server.secretkey`), read from
//! `Authorization: Bearer` or the `argocd.token` cookie, and its RBAC
//! (`core::rbac`) asked per route.
//!
//! A token's `sub` says what it is, as in Argo CD: `NAME:login` a session
//! from a password (valid while the account is enabled, may log in, and
//! its password has not changed since), `NAME:apiKey` an account's API
//! token (valid while its id is listed in `accounts.NAME.tokens`),
//! `proj:PROJECT:ROLE` a project role's token (valid while the role exists
//! and its id is listed in the role's `jwtTokens` or in Plumb's list in
//! `argocd-secret`). Every token's `exp` is checked.
//!
//! The [`authenticate`] middleware puts a [`Caller`] in every request; the
//! handlers ask it. With authentication off (`--insecure-disable-auth`, and
//! routers built by [`crate::app`]) every caller may do everything.
//!
//! Not here: where accounts are kept (the engine's `accounts`), the routes
//! of sessions and tokens ([`crate::session`]).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::extract::{FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use plumb_engine::account_rules::{self, TokenRecord};
use plumb_engine::accounts::{self, Accounts, SECRET_KEY};
use plumb_engine::model::Application;
use plumb_engine::project::{self, AppProject};
use plumb_engine::rbac::Policy;
use plumb_engine::service::AppService;
use plumb_engine::settings::RawData;
use serde::{Deserialize, Serialize};

use crate::error::ApiError;
use crate::routes::AppState;

/// The cookie a session is kept in, Argo CD's.
pub const COOKIE: &str = "argocd.token";

/// How long a session from a password lasts (Argo CD's default).
pub const SESSION_LIFETIME: Duration = Duration::from_secs(24 * 60 * 60);

/// Failed logins of one user, in [`FAILURE_WINDOW`], after which the next
/// attempts are refused without checking the password until the window
/// has passed since the last failure.
const MAX_FAILURES: u32 = 5;
/// See [`MAX_FAILURES`].
const FAILURE_WINDOW: Duration = Duration::from_secs(300);
/// Users whose failures are remembered at most (an attacker trying many
/// names cannot grow the map without bound).
const MAX_TRACKED_USERS: usize = 10_000;

/// How the server authenticates.
#[derive(Clone)]
pub struct Auth {
    inner: Option<Arc<Enabled>>,
}

/// Authentication on.
struct Enabled {
    accounts: Accounts,
    metrics_require_auth: bool,
    /// The policy parsed from the `argocd-rbac-cm` data it was parsed from.
    policy: Mutex<Option<(Arc<RawData>, Arc<Policy>)>>,
    /// The accounts of `argocd-cm`, from the data they were read from.
    #[allow(clippy::type_complexity)] // a cache entry: (source, value)
    account_list: Mutex<Option<(Arc<RawData>, Arc<BTreeMap<String, account_rules::Account>>)>>,
    /// Failed logins per user: how many, and when the last was.
    failures: Mutex<HashMap<String, (u32, Instant)>>,
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Auth")
            .field("enabled", &self.inner.is_some())
            .finish()
    }
}

impl Auth {
    /// No authentication: every request acts as the admin.
    pub fn disabled() -> Auth {
        Auth { inner: None }
    }

    /// Authentication with `accounts`; `/metrics` needs a token too when
    /// `metrics_require_auth`.
    pub fn enabled(accounts: Accounts, metrics_require_auth: bool) -> Auth {
        Auth {
            inner: Some(Arc::new(Enabled {
                accounts,
                metrics_require_auth,
                policy: Mutex::new(None),
                account_list: Mutex::new(None),
                failures: Mutex::new(HashMap::new()),
            })),
        }
    }

    /// Whether requests are authenticated.
    pub fn is_enabled(&self) -> bool {
        self.inner.is_some()
    }

    pub(crate) fn accounts(&self) -> Option<&Accounts> {
        self.inner.as_ref().map(|e| &e.accounts)
    }
}

/// Who a request comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Identity {
    /// Authentication is off: anyone, as the admin.
    Anyone,
    /// A local account (a session or an API token).
    Account(String),
    /// A project role's token.
    ProjectRole {
        /// The project.
        project: String,
        /// The role.
        role: String,
    },
}

/// The authenticated caller of a request and the policy that applies.
#[derive(Clone, Debug)]
pub(crate) struct Caller {
    pub identity: Identity,
    /// `None` when authentication is off.
    policy: Option<Arc<Policy>>,
}

impl Caller {
    fn anyone() -> Caller {
        Caller {
            identity: Identity::Anyone,
            policy: None,
        }
    }

    /// The RBAC subject.
    fn subject(&self) -> String {
        match &self.identity {
            Identity::Anyone => account_rules::ADMIN.to_string(),
            Identity::Account(name) => name.clone(),
            Identity::ProjectRole { project, role } => project::role_subject(project, role),
        }
    }

    /// The name `userinfo` shows.
    pub fn username(&self) -> String {
        self.subject()
    }

    /// Whether the caller may do `action` on `object` of `resource`.
    pub fn can(&self, resource: &str, action: &str, object: &str) -> bool {
        match &self.policy {
            None => true,
            Some(policy) => policy.allows(&[&self.subject()], resource, action, object),
        }
    }

    /// [`Caller::can`], or a 403.
    ///
    /// # Errors
    /// [`ApiError::Forbidden`] when it may not.
    pub fn enforce(&self, resource: &str, action: &str, object: &str) -> Result<(), ApiError> {
        if self.can(resource, action, object) {
            Ok(())
        } else {
            Err(ApiError::Forbidden(format!(
                "permission denied: {resource}, {action}, {object}, sub: {}",
                self.subject()
            )))
        }
    }
}

impl<St: Send + Sync> FromRequestParts<St> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &St) -> Result<Self, Self::Rejection> {
        // The middleware always sets one; without it, nobody is trusted.
        parts
            .extensions
            .get::<Caller>()
            .cloned()
            .ok_or_else(|| ApiError::Unauthenticated("no session information".into()))
    }
}

/// The RBAC object of an application: `PROJECT/NAME`, or
/// `PROJECT/NAMESPACE/NAME` outside the application namespace.
pub(crate) fn app_object(app: &Application, app_namespace: &str) -> String {
    let project = if app.spec.project.is_empty() {
        project::DEFAULT_PROJECT
    } else {
        &app.spec.project
    };
    let name = app.metadata.name.as_deref().unwrap_or_default();
    match app.metadata.namespace.as_deref() {
        Some(ns) if !ns.is_empty() && ns != app_namespace => format!("{project}/{ns}/{name}"),
        _ => format!("{project}/{name}"),
    }
}

/// Checks that the caller may do `action` on the application `name`. An
/// application that does not exist is left to the handler (its 404).
///
/// # Errors
/// [`ApiError::Forbidden`].
pub(crate) fn enforce_app<S: AppService>(
    caller: &Caller,
    service: &S,
    name: &str,
    action: &str,
) -> Result<(), ApiError> {
    if caller.policy.is_none() {
        return Ok(());
    }
    match service.document(name) {
        Some(app) => caller.enforce(
            "applications",
            action,
            &app_object(&app, &service.app_namespace()),
        ),
        None => Ok(()),
    }
}

/// The claims of Plumb's (and Argo CD's) tokens.
#[derive(Serialize, Deserialize, Debug, Clone)]
pub(crate) struct Claims {
    /// `NAME:login`, `NAME:apiKey` or `proj:PROJECT:ROLE`.
    pub sub: String,
    /// Issued at (seconds since the epoch).
    #[serde(default)]
    pub iat: i64,
    /// Expires at; absent for never.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exp: Option<i64>,
    /// The token's id.
    #[serde(default)]
    pub jti: String,
    /// The issuer, Argo CD's.
    #[serde(default)]
    pub iss: String,
}

/// Seconds since the epoch.
pub(crate) fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// A random token id.
pub(crate) fn new_id() -> String {
    let bytes: [u8; 16] = rand::random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Signs a token for `sub`, valid for `lifetime` (forever when `None`),
/// with the id `jti`.
///
/// # Errors
/// The server has no signing key yet, or signing fails.
pub(crate) fn sign(
    secret: &RawData,
    sub: String,
    jti: String,
    lifetime: Option<Duration>,
) -> Result<(String, Claims), ApiError> {
    let key = secret
        .get(SECRET_KEY)
        .filter(|k| !k.is_empty())
        .ok_or_else(|| ApiError::Internal("the server has no token signing key".into()))?;
    let iat = now();
    let claims = Claims {
        sub,
        iat,
        exp: lifetime.map(|l| iat.saturating_add(i64::try_from(l.as_secs()).unwrap_or(i64::MAX))),
        jti,
        iss: "argocd".into(),
    };
    let failed =
        |e: jsonwebtoken::errors::Error| ApiError::Internal(format!("cannot sign a token: {e}"));
    let key = EncodingKey::from_secret(key).map_err(failed)?;
    let token =
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &key).map_err(failed)?;
    Ok((token, claims))
}

/// The token's claims if it is signed with the server's key and not expired.
fn decode(secret: &RawData, token: &str) -> Result<Claims, String> {
    let key = secret
        .get(SECRET_KEY)
        .filter(|k| !k.is_empty())
        .ok_or("the server has no token signing key")?;
    let mut validation = Validation::new(Algorithm::HS256);
    validation.required_spec_claims.clear();
    validation.validate_exp = false;
    validation.validate_aud = false;
    let key = DecodingKey::from_secret(key).map_err(|e| format!("invalid signing key: {e}"))?;
    let data = jsonwebtoken::decode::<Claims>(token, &key, &validation)
        .map_err(|e| format!("invalid token: {e}"))?;
    let claims = data.claims;
    if claims.exp.is_some_and(|exp| exp <= now()) {
        return Err("token is expired".into());
    }
    Ok(claims)
}

/// The token of a request: `Authorization: Bearer`, else the cookie.
pub(crate) fn token_of(headers: &HeaderMap) -> Option<String> {
    if let Some(value) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    {
        let mut parts = value.trim().splitn(2, ' ');
        if parts
            .next()
            .is_some_and(|s| s.eq_ignore_ascii_case("bearer"))
            && let Some(token) = parts.next().map(str::trim).filter(|t| !t.is_empty())
        {
            return Some(token.to_string());
        }
    }
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value.trim().to_string())
        .filter(|v| !v.is_empty())
}

/// Whether `id` is in the token list at `key` of `secret`.
fn listed(secret: &RawData, key: &str, id: &str) -> bool {
    let text = secret.get(key).and_then(|t| std::str::from_utf8(t).ok());
    account_rules::parse_tokens(text)
        .unwrap_or_default()
        .iter()
        .any(|t: &TokenRecord| t.id == id)
}

impl Enabled {
    /// The accounts of `argocd-cm`, read once per change of it (the
    /// ConfigMap may be large: resource customizations live there too).
    fn account_list(&self) -> Arc<BTreeMap<String, account_rules::Account>> {
        let data = self.accounts.config_raw();
        let mut cached = self.account_list.lock().expect("never poisoned");
        if let Some((from, list)) = &*cached
            && Arc::ptr_eq(from, &data)
        {
            return Arc::clone(list);
        }
        let relevant: BTreeMap<String, String> = data
            .iter()
            .filter(|(k, _)| k.starts_with("accounts.") || k.starts_with("admin."))
            .filter_map(|(k, v)| Some((k.clone(), String::from_utf8(v.clone()).ok()?)))
            .collect();
        let list = Arc::new(account_rules::accounts(&relevant));
        *cached = Some((data, Arc::clone(&list)));
        list
    }

    /// The policy of `argocd-rbac-cm`, parsed once per change of it.
    fn policy(&self) -> Arc<Policy> {
        let data = self.accounts.rbac();
        let mut cached = self
            .policy
            .lock()
            .expect("the policy lock is never poisoned");
        if let Some((from, policy)) = &*cached
            && Arc::ptr_eq(from, &data)
        {
            return Arc::clone(policy);
        }
        let text = |key: &str| {
            data.get(key)
                .and_then(|v| std::str::from_utf8(v).ok())
                .unwrap_or_default()
                .to_string()
        };
        let default_role = text("policy.default");
        let policy = match Policy::parse(&text("policy.csv"), &default_role) {
            Ok(policy) => policy,
            Err(e) => {
                tracing::error!(error = %e, "argocd-rbac-cm's policy.csv cannot be read; only the built-in roles and policy.default apply until it is fixed");
                Policy::parse("", &default_role).unwrap_or_default()
            }
        };
        let policy = Arc::new(policy);
        *cached = Some((data, Arc::clone(&policy)));
        policy
    }

    /// The caller a token stands for.
    async fn caller<S: AppService>(&self, service: &S, token: &str) -> Result<Caller, String> {
        let secret = self.accounts.secret();
        let claims = decode(&secret, token)?;
        let policy = self.policy();
        if let Some(rest) = claims.sub.strip_prefix("proj:") {
            let (project, role) = rest.split_once(':').ok_or("invalid token subject")?;
            let project = service
                .project(project)
                .map_err(|_| format!("project {project} does not exist"))?;
            return self.project_caller(&project, role, &claims, policy).await;
        }
        let (name, kind) = claims
            .sub
            .rsplit_once(':')
            .unwrap_or((claims.sub.as_str(), "login"));
        let all = self.account_list();
        let account = all
            .get(name)
            .filter(|a| a.enabled)
            .ok_or_else(|| format!("account {name} does not exist or is disabled"))?;
        match kind {
            "apiKey" => {
                let key = account_rules::tokens_key(name);
                let known = listed(&secret, &key, &claims.jti)
                    || match self.accounts.fresh_secret().await {
                        Ok(fresh) => listed(&fresh, &key, &claims.jti),
                        Err(e) => return Err(e.to_string()),
                    };
                if !account.api_key || !known {
                    return Err("token is revoked".into());
                }
            }
            "login" => {
                if !account.login {
                    return Err(format!("account {name} may not log in"));
                }
                if accounts::password_mtime(&secret, name).is_some_and(|m| claims.iat < m) {
                    return Err("the account's password changed since this session began".into());
                }
            }
            _ => return Err("invalid token subject".into()),
        }
        Ok(Caller {
            identity: Identity::Account(name.to_string()),
            policy: Some(policy),
        })
    }

    /// The caller of a project role's token.
    async fn project_caller(
        &self,
        project: &AppProject,
        role: &str,
        claims: &Claims,
        policy: Arc<Policy>,
    ) -> Result<Caller, String> {
        let name = project.name();
        let role = project
            .spec
            .roles
            .iter()
            .find(|r| r.name == role)
            .ok_or_else(|| format!("project {name} has no role {role}"))?;
        let in_spec = role.jwt_tokens.iter().any(|t| {
            (!t.id.is_empty() && t.id == claims.jti) || (t.id.is_empty() && t.iat == claims.iat)
        });
        let key = account_rules::project_tokens_key(name, &role.name);
        let known = in_spec
            || listed(&self.accounts.secret(), &key, &claims.jti)
            || match self.accounts.fresh_secret().await {
                Ok(fresh) => listed(&fresh, &key, &claims.jti),
                Err(e) => return Err(e.to_string()),
            };
        if !known {
            return Err("token is revoked".into());
        }
        let (csv, refused) = project::role_policy(name, role);
        for why in refused {
            tracing::warn!("{why}");
        }
        let policy = policy
            .with(&csv)
            .map_err(|e| format!("project {name} role {}: {e}", role.name))?;
        Ok(Caller {
            identity: Identity::ProjectRole {
                project: name.to_string(),
                role: role.name.clone(),
            },
            policy: Some(Arc::new(policy)),
        })
    }

    /// Refuses a login when the user failed too often lately.
    pub(crate) fn check_failures(&self, user: &str) -> Result<(), ApiError> {
        let failures = self.failures.lock().expect("never poisoned");
        match failures.get(user) {
            Some((count, last)) if *count >= MAX_FAILURES && last.elapsed() < FAILURE_WINDOW => {
                Err(ApiError::TooManyRequests(
                    "too many failed login attempts; try again later".into(),
                ))
            }
            _ => Ok(()),
        }
    }

    /// Counts a failed login, or forgets the failures after a success.
    pub(crate) fn record(&self, user: &str, success: bool) {
        let mut failures = self.failures.lock().expect("never poisoned");
        if success {
            failures.remove(user);
            return;
        }
        if failures.len() >= MAX_TRACKED_USERS && !failures.contains_key(user) {
            failures.retain(|_, (_, last)| last.elapsed() < FAILURE_WINDOW);
            if failures.len() >= MAX_TRACKED_USERS {
                failures.clear();
            }
        }
        let entry = failures
            .entry(user.to_string())
            .or_insert((0, Instant::now()));
        if entry.1.elapsed() >= FAILURE_WINDOW {
            entry.0 = 0;
        }
        entry.0 += 1;
        entry.1 = Instant::now();
    }
}

impl Auth {
    pub(crate) fn check_failures(&self, user: &str) -> Result<(), ApiError> {
        self.inner
            .as_ref()
            .map_or(Ok(()), |e| e.check_failures(user))
    }

    pub(crate) fn record(&self, user: &str, success: bool) {
        if let Some(e) = &self.inner {
            e.record(user, success);
        }
    }
}

/// Paths any client may reach without a token: the UI's files, health and
/// readiness,
/// logging in, webhooks (they carry their own HMAC), and `/metrics` unless
/// closed.
fn is_open(method: &Method, path: &str, metrics_open: bool) -> bool {
    path == "/"
        || path == "/healthz"
        || path == "/readyz"
        || path.starts_with("/ui/")
        || path == "/api/webhook"
        || path.starts_with("/api/webhook/")
        || path == "/api/v1/session"
        || (path == "/api/v1/session/userinfo" && method == Method::GET)
        || (path == "/metrics" && metrics_open)
}

/// The middleware: finds the caller of every request, and answers 401 to
/// a request without a valid token where one is needed.
pub(crate) async fn authenticate<S: AppService>(
    State(state): State<AppState<S>>,
    mut request: Request,
    next: Next,
) -> Response {
    let Some(enabled) = state.auth.inner.clone() else {
        request.extensions_mut().insert(Caller::anyone());
        return next.run(request).await;
    };
    let open = is_open(
        request.method(),
        request.uri().path(),
        !enabled.metrics_require_auth,
    );
    let refused = match token_of(request.headers()) {
        Some(token) => match enabled.caller(&*state.service, &token).await {
            Ok(caller) => {
                request.extensions_mut().insert(caller);
                None
            }
            Err(why) => Some(format!("invalid session: {why}")),
        },
        None => Some("no session information".to_string()),
    };
    match refused {
        Some(why) if !open => ApiError::Unauthenticated(why).into_response(),
        _ => next.run(request).await,
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use axum::body::Body;
    use axum::http::{Request as HttpRequest, StatusCode};
    use serde_json::Value;
    use tower::ServiceExt;

    use super::*;
    use crate::fake::FakeService;

    fn auth() -> Auth {
        let config = BTreeMap::from([("accounts.ci".to_string(), "apiKey".to_string())]);
        let secret = RawData::from([
            (SECRET_KEY.to_string(), b"k".repeat(32)),
            (
                "accounts.ci.tokens".to_string(),
                br#"[{"id":"t1","iat":0,"exp":0}]"#.to_vec(),
            ),
        ]);
        let rbac = BTreeMap::from([(
            "policy.csv".to_string(),
            "p, role:ci, applications, get, default/guestbook, allow\ng, ci, role:ci\n".to_string(),
        )]);
        Auth::enabled(Accounts::fixed(&config, secret, &rbac), false)
    }

    fn token(auth: &Auth, sub: &str, jti: &str, lifetime: Option<Duration>) -> String {
        let secret = auth.accounts().expect("enabled").secret();
        sign(&secret, sub.into(), jti.into(), lifetime)
            .expect("signs")
            .0
    }

    async fn call(
        auth: &Auth,
        method: &str,
        path: &str,
        token: Option<&str>,
    ) -> (StatusCode, Value) {
        let app = crate::app_with_auth(Arc::new(FakeService::with_fixtures()), auth.clone());
        let mut request = HttpRequest::builder().method(method).uri(path);
        if let Some(token) = token {
            request = request.header("Authorization", format!("Bearer {token}"));
        }
        let response = app
            .oneshot(request.body(Body::empty()).expect("request"))
            .await
            .expect("infallible");
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .expect("body");
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }

    #[tokio::test]
    async fn a_request_without_a_valid_token_is_401_in_argo_cd_s_shape() {
        let auth = auth();
        let (status, body) = call(&auth, "GET", "/api/v1/applications", None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert_eq!(body["code"], 16);
        assert_eq!(call(&auth, "GET", "/healthz", None).await.0, StatusCode::OK);
        // Revoked (not listed), expired, or signed with another key.
        let revoked = token(&auth, "ci:apiKey", "t2", None);
        let expired = {
            let secret = auth.accounts().expect("enabled").secret();
            let mut claims = sign(&secret, "ci:apiKey".into(), "t1".into(), None)
                .expect("signs")
                .1;
            claims.exp = Some(1);
            jsonwebtoken::encode(
                &Header::new(Algorithm::HS256),
                &claims,
                &EncodingKey::from_secret(&b"k".repeat(32)).expect("a key"),
            )
            .expect("signs")
        };
        let foreign = jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &Claims {
                sub: "admin:login".into(),
                iat: now(),
                exp: None,
                jti: "x".into(),
                iss: String::new(),
            },
            &EncodingKey::from_secret(b"another key").expect("a key"),
        )
        .expect("signs");
        for bad in [revoked, expired, foreign] {
            let (status, body) = call(&auth, "GET", "/api/v1/applications", Some(&bad)).await;
            assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
        }
    }

    #[tokio::test]
    async fn rbac_filters_the_list_and_refuses_what_it_does_not_allow() {
        let auth = auth();
        let ci = token(&auth, "ci:apiKey", "t1", None);
        let (status, body) = call(&auth, "GET", "/api/v1/applications", Some(&ci)).await;
        assert_eq!(status, StatusCode::OK);
        let names: Vec<&str> = body["items"]
            .as_array()
            .expect("items")
            .iter()
            .filter_map(|a| a["metadata"]["name"].as_str())
            .collect();
        assert_eq!(names, ["guestbook"]);
        let (status, body) = call(&auth, "GET", "/api/v1/applications/shop", Some(&ci)).await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        assert_eq!(body["code"], 7);
        let (status, _) = call(
            &auth,
            "POST",
            "/api/v1/applications/guestbook/sync",
            Some(&ci),
        )
        .await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        // admin's session may do everything.
        let admin = token(&auth, "admin:login", "s1", Some(SESSION_LIFETIME));
        let (status, body) = call(&auth, "GET", "/api/v1/applications", Some(&admin)).await;
        assert_eq!(status, StatusCode::OK);
        assert!(body["items"].as_array().expect("items").len() >= 2);
    }

    #[test]
    fn a_user_who_failed_too_often_is_refused_until_a_success_or_the_window() {
        let auth = auth();
        for _ in 0..MAX_FAILURES {
            assert!(auth.check_failures("admin").is_ok());
            auth.record("admin", false);
        }
        assert!(matches!(
            auth.check_failures("admin"),
            Err(ApiError::TooManyRequests(_))
        ));
        // Another user is not affected; a success forgets the failures.
        assert!(auth.check_failures("ci").is_ok());
        auth.record("admin", true);
        assert!(auth.check_failures("admin").is_ok());
    }

    #[test]
    fn the_token_comes_from_the_bearer_header_or_the_cookie() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::COOKIE,
            "a=b; argocd.token=t2".parse().expect("header"),
        );
        assert_eq!(token_of(&headers).as_deref(), Some("t2"));
        headers.insert(header::AUTHORIZATION, "Bearer t1".parse().expect("header"));
        assert_eq!(token_of(&headers).as_deref(), Some("t1"));
        assert_eq!(token_of(&HeaderMap::new()), None);
    }
}
