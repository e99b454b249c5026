//! The routes of logging in and of tokens, in Argo CD's shapes:
//! `POST/DELETE /api/v1/session`, `GET /api/v1/session/userinfo`,
//! `POST /api/v1/account/{name}/token` (and `DELETE .../token/{id}`),
//! `PUT /api/v1/account/password`, and
//! `POST /api/v1/projects/{project}/roles/{role}/token` (and `DELETE
//! .../token/{id}`), and `GET /api/v1/account/can-i/{resource}/{action}/{object}`
//! (what the web UI asks before it offers a button).
//!
//! Not here: checking tokens ([`crate::auth`]).

use std::time::Duration;

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post, put};
use axum::{Json, Router};
use plumb_engine::account_rules::{self, TokenRecord};
use plumb_engine::accounts::{self, AccountsError};
use plumb_engine::service::AppService;
use plumb_engine::settings::RawData;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::auth::{self, COOKIE, Caller, Identity, SESSION_LIFETIME};
use crate::error::{ApiError, JsonBody};
use crate::routes::AppState;

/// The answer to every failed login, whoever the user (Argo CD's words).
const INVALID_LOGIN: &str = "Invalid username or password";

/// The session and token routes.
pub(crate) fn routes<S: AppService>() -> Router<AppState<S>> {
    Router::new()
        .route("/api/v1/session", post(login::<S>).delete(logout))
        .route("/api/v1/session/userinfo", get(userinfo))
        .route("/api/v1/account/password", put(update_password::<S>))
        .route(
            "/api/v1/account/can-i/{resource}/{action}/{*object}",
            get(can_i),
        )
        .route("/api/v1/account/{name}/token", post(account_token::<S>))
        .route(
            "/api/v1/account/{name}/token/{id}",
            delete(revoke_account_token::<S>),
        )
        .route(
            "/api/v1/projects/{name}/roles/{role}/token",
            post(project_token::<S>),
        )
        .route(
            "/api/v1/projects/{name}/roles/{role}/token/{id}",
            delete(revoke_project_token::<S>),
        )
}

/// The body of `POST /api/v1/session`.
#[derive(Deserialize)]
struct Login {
    #[serde(default)]
    username: String,
    #[serde(default)]
    password: String,
}

impl std::fmt::Debug for Login {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Login")
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

fn accounts_error(e: AccountsError) -> ApiError {
    match e {
        AccountsError::Invalid(m) => ApiError::BadRequest(m),
        other => ApiError::Internal(other.to_string()),
    }
}

/// The cookie of a session, or the one that ends it.
fn cookie(token: Option<&str>) -> HeaderValue {
    let text = match token {
        Some(token) => format!("{COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict"),
        None => format!("{COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0"),
    };
    let mut value = HeaderValue::from_str(&text).unwrap_or(HeaderValue::from_static(""));
    value.set_sensitive(true);
    value
}

/// Whether `password` is the password of `hash` (bcrypt on a blocking
/// thread). Without a hash, a dummy one is checked so that an unknown user
/// costs as much time as a known one.
async fn password_matches(password: String, hash: Option<Vec<u8>>) -> bool {
    static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    tokio::task::spawn_blocking(move || match hash {
        Some(hash) => accounts::verify_password(&password, &hash),
        None => {
            let dummy = DUMMY.get_or_init(|| {
                accounts::hash_password("not a password of anyone").unwrap_or_default()
            });
            let _ = accounts::verify_password(&password, dummy.as_bytes());
            false
        }
    })
    .await
    .unwrap_or(false)
}

/// `POST /api/v1/session` with `{username, password}`: `{token}` and the
/// session cookie.
async fn login<S: AppService>(
    State(state): State<AppState<S>>,
    JsonBody(body): JsonBody<Login>,
) -> Result<Response, ApiError> {
    let Some(store) = state.auth.accounts() else {
        return Err(ApiError::BadRequest(
            "authentication is disabled on this server (--insecure-disable-auth)".into(),
        ));
    };
    let user = body.username.trim().to_string();
    state.auth.check_failures(&user)?;
    let (config, secret) = store.fresh().await.map_err(accounts_error)?;
    let account = account_rules::accounts(&config)
        .remove(&user)
        .filter(|a| a.enabled && a.login);
    let hash = account
        .as_ref()
        .and_then(|_| secret.get(&account_rules::password_key(&user)).cloned())
        .filter(|h| !h.is_empty());
    let ok = password_matches(body.password, hash).await && account.is_some();
    state.auth.record(&user, ok);
    if !ok {
        tracing::info!(user = %user, "failed login");
        return Err(ApiError::Unauthenticated(INVALID_LOGIN.into()));
    }
    let (token, _) = auth::sign(
        &secret,
        format!("{user}:login"),
        auth::new_id(),
        Some(SESSION_LIFETIME),
    )?;
    tracing::info!(user = %user, "logged in");
    let mut response = Json(json!({ "token": token })).into_response();
    response
        .headers_mut()
        .insert(header::SET_COOKIE, cookie(Some(&token)));
    Ok(response)
}

/// `DELETE /api/v1/session`: clears the session cookie.
async fn logout() -> Response {
    let mut response = Json(json!({})).into_response();
    response
        .headers_mut()
        .insert(header::SET_COOKIE, cookie(None));
    response
}

/// `GET /api/v1/session/userinfo`: `{loggedIn, username}`.
async fn userinfo(request: axum::extract::Request) -> Json<Value> {
    match request.extensions().get::<Caller>() {
        Some(caller) => Json(json!({
            "loggedIn": true,
            "username": caller.username(),
            "iss": "argocd",
            "authDisabled": caller.identity == Identity::Anyone,
        })),
        None => Json(json!({ "loggedIn": false })),
    }
}

/// `GET /api/v1/account/can-i/{resource}/{action}/{object}`: whether the
/// caller may do `action` on `object` (`PROJECT/NAME`, which may hold
/// slashes) of `resource`, as Argo CD answers it: `{"value": "yes"|"no"}`.
async fn can_i(
    caller: Caller,
    path: Result<Path<(String, String, String)>, PathRejection>,
) -> Result<Json<Value>, ApiError> {
    let Path((resource, action, object)) = path?;
    let object = object.trim_start_matches('/');
    let value = if caller.can(&resource, &action, object) {
        "yes"
    } else {
        "no"
    };
    Ok(Json(json!({ "value": value })))
}

/// The body of the token routes, Argo CD's: `expiresIn` in seconds (0 or
/// absent: never), `id` (a random one when absent).
#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct TokenRequest {
    #[serde(default)]
    expires_in: i64,
    #[serde(default)]
    id: String,
}

impl TokenRequest {
    fn lifetime(&self) -> Result<Option<Duration>, ApiError> {
        match self.expires_in {
            n if n < 0 => Err(ApiError::BadRequest(
                "expiresIn must not be negative".into(),
            )),
            0 => Ok(None),
            n => Ok(Some(Duration::from_secs(n.unsigned_abs()))),
        }
    }

    fn id(&self) -> Result<String, ApiError> {
        let id = self.id.trim();
        if id.is_empty() {
            return Ok(auth::new_id());
        }
        if id.len() > 128 || !id.chars().all(|c| c.is_ascii_graphic() && c != '"') {
            return Err(ApiError::BadRequest(format!("invalid token id {id:?}")));
        }
        Ok(id.to_string())
    }
}

/// Adds `record` to the token list at `key`, refusing a second token of
/// one id.
fn add_token(data: &mut RawData, key: &str, record: &TokenRecord) -> Result<(), AccountsError> {
    let text = data.get(key).and_then(|t| std::str::from_utf8(t).ok());
    let mut tokens = account_rules::parse_tokens(text).map_err(AccountsError::Invalid)?;
    if tokens.iter().any(|t| t.id == record.id) {
        return Err(AccountsError::Invalid(format!(
            "a token with id {} already exists",
            record.id
        )));
    }
    tokens.push(record.clone());
    let text = serde_json::to_string(&tokens).expect("token records always serialize");
    data.insert(key.to_string(), text.into_bytes());
    Ok(())
}

/// Removes the token `id` from the list at `key`; whether it was there.
fn remove_token(data: &mut RawData, key: &str, id: &str) -> Result<bool, AccountsError> {
    let text = data.get(key).and_then(|t| std::str::from_utf8(t).ok());
    let mut tokens = account_rules::parse_tokens(text).map_err(AccountsError::Invalid)?;
    let before = tokens.len();
    tokens.retain(|t| t.id != id);
    let removed = tokens.len() != before;
    let text = serde_json::to_string(&tokens).expect("token records always serialize");
    data.insert(key.to_string(), text.into_bytes());
    Ok(removed)
}

fn path_pair(
    path: Result<Path<(String, String)>, PathRejection>,
) -> Result<(String, String), ApiError> {
    Ok(path?.0)
}

/// `POST /api/v1/account/{name}/token` with `{expiresIn?, id?}`: a token
/// of the account (needs `accounts, update, NAME`; the account needs the
/// `apiKey` capability).
async fn account_token<S: AppService>(
    State(state): State<AppState<S>>,
    caller: Caller,
    name: Result<Path<String>, PathRejection>,
    JsonBody(body): JsonBody<TokenRequest>,
) -> Result<Json<Value>, ApiError> {
    let Path(name) = name?;
    caller.enforce("accounts", "update", &name)?;
    let store = state
        .auth
        .accounts()
        .ok_or_else(|| ApiError::BadRequest("authentication is disabled on this server".into()))?;
    let lifetime = body.lifetime()?;
    let id = body.id()?;
    let (config, secret) = store.fresh().await.map_err(accounts_error)?;
    let account = account_rules::accounts(&config)
        .remove(&name)
        .ok_or_else(|| ApiError::BadRequest(format!("account {name} does not exist")))?;
    if !account.api_key {
        return Err(ApiError::BadRequest(format!(
            "account {name} does not have the apiKey capability (argocd-cm: accounts.{name}: apiKey)"
        )));
    }
    let (token, claims) = auth::sign(&secret, format!("{name}:apiKey"), id.clone(), lifetime)?;
    let record = TokenRecord {
        id,
        iat: claims.iat,
        exp: claims.exp.unwrap_or(0),
    };
    let key = account_rules::tokens_key(&name);
    store
        .edit_secret(|data| add_token(data, &key, &record))
        .await
        .map_err(accounts_error)?;
    tracing::info!(account = %name, id = %record.id, "issued an API token");
    Ok(Json(json!({ "token": token })))
}

/// `DELETE /api/v1/account/{name}/token/{id}`: revokes a token (needs
/// `accounts, update, NAME`).
async fn revoke_account_token<S: AppService>(
    State(state): State<AppState<S>>,
    caller: Caller,
    path: Result<Path<(String, String)>, PathRejection>,
) -> Result<Json<Value>, ApiError> {
    let (name, id) = path_pair(path)?;
    caller.enforce("accounts", "update", &name)?;
    let store = state
        .auth
        .accounts()
        .ok_or_else(|| ApiError::BadRequest("authentication is disabled on this server".into()))?;
    let key = account_rules::tokens_key(&name);
    let mut removed = false;
    store
        .edit_secret(|data| {
            removed = remove_token(data, &key, &id)?;
            Ok(())
        })
        .await
        .map_err(accounts_error)?;
    if !removed {
        return Err(ApiError::BadRequest(format!(
            "account {name} has no token {id}"
        )));
    }
    tracing::info!(account = %name, id = %id, "revoked an API token");
    Ok(Json(json!({})))
}

/// The body of `PUT /api/v1/account/password`.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PasswordChange {
    #[serde(default)]
    current_password: String,
    #[serde(default)]
    new_password: String,
}

/// `PUT /api/v1/account/password` with `{currentPassword, newPassword}`:
/// the caller's own password. Its sessions end (`passwordMtime`).
async fn update_password<S: AppService>(
    State(state): State<AppState<S>>,
    caller: Caller,
    JsonBody(body): JsonBody<PasswordChange>,
) -> Result<Json<Value>, ApiError> {
    let Identity::Account(name) = &caller.identity else {
        return Err(ApiError::BadRequest(
            "only a logged-in account can change its password".into(),
        ));
    };
    let store = state
        .auth
        .accounts()
        .ok_or_else(|| ApiError::BadRequest("authentication is disabled on this server".into()))?;
    if body.new_password.len() < 8 || body.new_password.len() > 72 {
        return Err(ApiError::BadRequest(
            "the new password must be 8 to 72 bytes long".into(),
        ));
    }
    state.auth.check_failures(name)?;
    let (_, secret) = store.fresh().await.map_err(accounts_error)?;
    let key = account_rules::password_key(name);
    let hash = secret.get(&key).cloned().filter(|h| !h.is_empty());
    let ok = password_matches(body.current_password, hash).await;
    state.auth.record(name, ok);
    if !ok {
        return Err(ApiError::Unauthenticated(
            "the current password is wrong".into(),
        ));
    }
    let new = body.new_password;
    let hashed = tokio::task::spawn_blocking(move || accounts::hash_password(&new))
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?
        .map_err(accounts_error)?;
    let mtime_key = account_rules::password_mtime_key(name);
    store
        .edit_secret(|data| {
            data.insert(key.clone(), hashed.clone().into_bytes());
            data.insert(mtime_key.clone(), accounts::now_rfc3339().into_bytes());
            Ok(())
        })
        .await
        .map_err(accounts_error)?;
    tracing::info!(account = %name, "password changed");
    Ok(Json(json!({})))
}

/// `POST /api/v1/projects/{project}/roles/{role}/token` with
/// `{expiresIn?, id?}`: a token acting as `proj:PROJECT:ROLE` (needs
/// `projects, update, PROJECT`). Its id is listed in `argocd-secret`
/// (`projects.PROJECT.roles.ROLE.tokens`), not in the project, which may
/// come from a file.
async fn project_token<S: AppService>(
    State(state): State<AppState<S>>,
    caller: Caller,
    path: Result<Path<(String, String)>, PathRejection>,
    JsonBody(body): JsonBody<TokenRequest>,
) -> Result<Json<Value>, ApiError> {
    let (project, role) = path_pair(path)?;
    caller.enforce("projects", "update", &project)?;
    let store = state
        .auth
        .accounts()
        .ok_or_else(|| ApiError::BadRequest("authentication is disabled on this server".into()))?;
    let found = state.service.project(&project)?;
    if !found.spec.roles.iter().any(|r| r.name == role) {
        return Err(ApiError::BadRequest(format!(
            "project {project} has no role {role}"
        )));
    }
    let lifetime = body.lifetime()?;
    let id = body.id()?;
    let secret = store.secret();
    let (token, claims) = auth::sign(
        &secret,
        plumb_engine::project::role_subject(&project, &role),
        id.clone(),
        lifetime,
    )?;
    let record = TokenRecord {
        id,
        iat: claims.iat,
        exp: claims.exp.unwrap_or(0),
    };
    let key = account_rules::project_tokens_key(&project, &role);
    store
        .edit_secret(|data| add_token(data, &key, &record))
        .await
        .map_err(accounts_error)?;
    tracing::info!(%project, %role, id = %record.id, "issued a project role token");
    Ok(Json(
        json!({ "token": token, "id": record.id, "iat": record.iat }),
    ))
}

/// `DELETE /api/v1/projects/{project}/roles/{role}/token/{id}`: revokes a
/// token Plumb issued (needs `projects, update, PROJECT`).
async fn revoke_project_token<S: AppService>(
    State(state): State<AppState<S>>,
    caller: Caller,
    path: Result<Path<std::collections::HashMap<String, String>>, PathRejection>,
) -> Result<Json<Value>, ApiError> {
    let Path(params) = path?;
    let get = |k: &str| params.get(k).cloned().unwrap_or_default();
    let (project, role, id) = (get("name"), get("role"), get("id"));
    caller.enforce("projects", "update", &project)?;
    let store = state
        .auth
        .accounts()
        .ok_or_else(|| ApiError::BadRequest("authentication is disabled on this server".into()))?;
    let key = account_rules::project_tokens_key(&project, &role);
    let mut removed = false;
    store
        .edit_secret(|data| {
            removed = remove_token(data, &key, &id)?;
            Ok(())
        })
        .await
        .map_err(accounts_error)?;
    if !removed {
        return Err(ApiError::BadRequest(format!(
            "project {project} role {role} has no token {id} issued by Plumb (tokens in the project's jwtTokens are revoked by editing the project)"
        )));
    }
    Ok(Json(json!({})))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::Arc;

    use axum::body::Body;
    use axum::http::{Request, StatusCode};
    use plumb_engine::accounts::{Accounts, SECRET_KEY};
    use tower::ServiceExt;

    use super::*;
    use crate::auth::Auth;
    use crate::fake::FakeService;

    /// A server whose `viewer` may only read `default/guestbook`.
    fn auth() -> Auth {
        let config = BTreeMap::from([("accounts.viewer".to_string(), "apiKey".to_string())]);
        let secret = RawData::from([
            (SECRET_KEY.to_string(), b"k".repeat(32)),
            (
                "accounts.viewer.tokens".to_string(),
                br#"[{"id":"t1","iat":0,"exp":0}]"#.to_vec(),
            ),
        ]);
        let rbac = BTreeMap::from([(
            "policy.csv".to_string(),
            "p, viewer, applications, get, default/guestbook, allow\n".to_string(),
        )]);
        Auth::enabled(Accounts::fixed(&config, secret, &rbac), false)
    }

    async fn can_i(auth: &Auth, sub: &str, path: &str) -> (StatusCode, Value) {
        let secret = auth.accounts().expect("enabled").secret();
        let lifetime = sub.ends_with(":login").then_some(SESSION_LIFETIME);
        let (token, _) = auth::sign(&secret, sub.into(), "t1".into(), lifetime).expect("signs");
        let app = crate::app_with_auth(Arc::new(FakeService::with_fixtures()), auth.clone());
        let request = Request::get(format!("/api/v1/account/can-i/{path}"))
            .header("Authorization", format!("Bearer {token}"))
            .body(Body::empty())
            .expect("request");
        let response = app.oneshot(request).await.expect("infallible");
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
    async fn can_i_answers_yes_or_no_from_the_policy() {
        let auth = auth();
        let cases = [
            ("viewer:apiKey", "applications/get/default/guestbook", "yes"),
            ("viewer:apiKey", "applications/sync/default/guestbook", "no"),
            ("viewer:apiKey", "applications/get/default/shop", "no"),
            (
                "viewer:apiKey",
                "applications/get/default%2Fguestbook",
                "yes",
            ),
            ("admin:login", "applications/sync/default/guestbook", "yes"),
            ("admin:login", "applicationsets/delete/default/set", "yes"),
        ];
        for (sub, path, want) in cases {
            let (status, body) = can_i(&auth, sub, path).await;
            assert_eq!(status, StatusCode::OK, "{path}: {body}");
            assert_eq!(body, json!({ "value": want }), "{sub} {path}");
        }
    }

    #[tokio::test]
    async fn can_i_needs_a_login() {
        let app = crate::app_with_auth(Arc::new(FakeService::with_fixtures()), auth());
        let request = Request::get("/api/v1/account/can-i/applications/get/default/guestbook")
            .body(Body::empty())
            .expect("request");
        let response = app.oneshot(request).await.expect("infallible");
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    }
}
