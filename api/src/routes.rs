//! The router and the handlers of `/api/v1/applications/...`: each one
//! turns a request into one [`AppService`] call and its answer into Argo CD's
//! JSON shape.
//!
//! Not here: the event stream ([`crate::stream`]), the UI files
//! ([`crate::ui`]) and error bodies ([`crate::error`]).

use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::rejection::QueryRejection;
use axum::extract::{FromRequestParts, Path, Query, State};
use axum::http::header;
use axum::http::request::Parts;
use axum::http::{Method, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router, middleware};
use plumb_engine::model::Application;
use plumb_engine::service::{
    AppService, Cascade, ManagedResource, Refresh, ResourceTree, SyncRequest,
};
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;
use tower_http::trace::{
    DefaultMakeSpan, DefaultOnFailure, DefaultOnRequest, DefaultOnResponse, TraceLayer,
};
use tracing::Level;

use crate::auth::{self, Auth, Caller, enforce_app};
use crate::error::{ApiError, JsonBody};
use crate::{origin, stream, ui, webhook};

/// What every handler shares.
pub(crate) struct AppState<S> {
    /// The controller (or a fake).
    pub service: Arc<S>,
    /// Cancelled when the server shuts down; ends the event streams.
    pub shutdown: CancellationToken,
    /// How callers are authenticated.
    pub auth: Auth,
}

// A derive would require `S: Clone`; only the `Arc` is cloned.
impl<S> Clone for AppState<S> {
    fn clone(&self) -> Self {
        AppState {
            service: Arc::clone(&self.service),
            shutdown: self.shutdown.clone(),
            auth: self.auth.clone(),
        }
    }
}

/// Every route, with request tracing at debug level.
pub(crate) fn router<S: AppService>(
    service: Arc<S>,
    shutdown: CancellationToken,
    auth: Auth,
) -> Router {
    let webhook = webhook::routes(Arc::clone(&service));
    let state = AppState {
        service,
        shutdown,
        auth,
    };
    Router::new()
        .merge(webhook)
        .merge(crate::session::routes::<S>())
        .merge(crate::appsets::routes::<S>())
        .merge(crate::projects::routes::<S>())
        .merge(crate::clusters::routes::<S>())
        .merge(crate::dora::routes::<S>())
        .route(
            "/api/v1/applications",
            get(list::<S>).post(create_application::<S>),
        )
        .route(
            "/api/v1/applications/{name}",
            get(get_application::<S>)
                .put(update_application::<S>)
                .delete(delete_application::<S>),
        )
        .route("/api/v1/applications/{name}/sync", post(sync::<S>))
        .route("/api/v1/applications/{name}/rollback", post(rollback::<S>))
        .route(
            "/api/v1/applications/{name}/operation",
            delete(terminate_operation::<S>),
        )
        .route(
            "/api/v1/applications/{name}/confirm-prune",
            post(confirm_prune::<S>),
        )
        .route(
            "/api/v1/applications/{name}/managed-resources",
            get(managed_resources::<S>),
        )
        .route(
            "/api/v1/applications/{name}/resource-tree",
            get(resource_tree::<S>),
        )
        .route(
            "/api/v1/applications/{name}/revisions/{revision}/metadata",
            get(revision_metadata::<S>),
        )
        .route(
            "/api/v1/stream/applications",
            get(stream::applications::<S>),
        )
        .route("/api/v1/settings", get(settings::<S>))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz::<S>))
        .route("/metrics", get(metrics::<S>))
        .route("/", get(ui::index))
        .route("/ui/{file}", get(ui::file))
        .fallback(|method: Method, uri: Uri| async move { ApiError::no_route(method, &uri) })
        .method_not_allowed_fallback(|method: Method, uri: Uri| async move {
            ApiError::MethodNotAllowed {
                method,
                path: uri.path().to_owned(),
            }
        })
        .layer(middleware::from_fn_with_state(
            state.clone(),
            auth::authenticate::<S>,
        ))
        .layer(middleware::from_fn(origin::reject_cross_site))
        .layer(middleware::map_response(crate::redact::redact_response))
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(DefaultMakeSpan::new().level(Level::DEBUG))
                .on_request(DefaultOnRequest::new().level(Level::DEBUG))
                .on_response(DefaultOnResponse::new().level(Level::DEBUG))
                // `ApiError` already logs server errors with their message.
                .on_failure(DefaultOnFailure::new().level(Level::DEBUG)),
        )
        .with_state(state)
}

/// Argo CD's list documents: `{"items": [...]}`.
#[derive(Serialize)]
pub(crate) struct Items<T> {
    /// The elements.
    pub items: Vec<T>,
}

/// `GET /healthz`: the process answers.
async fn healthz() -> &'static str {
    "ok"
}

/// `GET /readyz`: 200 once the caches are filled (a Deployment's
/// readiness probe), 503 with what is awaited before.
async fn readyz<S: AppService>(State(state): State<AppState<S>>) -> Response {
    match state.service.ready() {
        Ok(()) => "ok".into_response(),
        Err(waiting) => ApiError::Unavailable(waiting).into_response(),
    }
}

/// `GET /metrics`: Prometheus' text format, 404 where the service keeps
/// none.
async fn metrics<S: AppService>(State(state): State<AppState<S>>) -> Response {
    match state.service.metrics().await {
        Some(text) => (
            [(
                axum::http::header::CONTENT_TYPE,
                "text/plain; version=0.0.4; charset=utf-8",
            )],
            text,
        )
            .into_response(),
        None => ApiError::no_route(Method::GET, &Uri::from_static("/metrics")).into_response(),
    }
}

/// Applications serialized per piece of the list body.
const LIST_CHUNK: usize = 64;

/// `GET /api/v1/applications`: `{"items": [...]}`, written a few
/// applications at a time, so that the whole list (tens of megabytes at
/// 10,000 applications) is never held in memory, as documents or as text.
async fn list<S: AppService>(
    State(state): State<AppState<S>>,
    caller: Caller,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(pairs) = query?;
    let filter = ListFilter::parse(&pairs)?;
    let names = state.service.names();
    let service = Arc::clone(&state.service);
    let app_namespace = service.app_namespace();
    let mut first = true;
    let pieces = (0..names.len()).step_by(LIST_CHUNK).map(move |start| {
        let end = (start + LIST_CHUNK).min(names.len());
        let mut text = Vec::with_capacity((end - start) * 2048);
        for name in &names[start..end] {
            // Gone since the names were read: left out.
            let Some(app) = service.document(name) else {
                continue;
            };
            if !filter.keeps(&app)
                || !caller.can(
                    "applications",
                    "get",
                    &auth::app_object(&app, &app_namespace),
                )
            {
                continue;
            }
            if !std::mem::take(&mut first) {
                text.push(b',');
            }
            serde_json::to_writer(&mut text, &app).expect("an Application always serializes");
        }
        Ok::<_, std::convert::Infallible>(Bytes::from(text))
    });
    let body = futures::stream::iter(
        std::iter::once(Ok(Bytes::from_static(b"{\"items\":[")))
            .chain(pieces)
            .chain(std::iter::once(Ok(Bytes::from_static(b"]}")))),
    );
    Ok((
        [(header::CONTENT_TYPE, "application/json")],
        Body::from_stream(body),
    )
        .into_response())
}

/// Argo CD's filters of the application list, as Backstage's plugins send
/// them: `name`, `selector` (labels, `kubectl -l`'s text form),
/// `projects` or `project` (repeated or comma separated), `appNamespace`,
/// `repo`. Absent ones keep everything.
#[derive(Debug, Default)]
struct ListFilter {
    name: Option<String>,
    selector: Option<plumb_engine::appset::selector::Selector>,
    projects: Vec<String>,
    app_namespace: Option<String>,
    repo: Option<String>,
}

impl ListFilter {
    fn parse(pairs: &[(String, String)]) -> Result<ListFilter, ApiError> {
        let mut filter = ListFilter::default();
        for (key, value) in pairs {
            let value = value.trim();
            if value.is_empty() {
                continue;
            }
            match key.as_str() {
                "name" => filter.name = Some(value.to_string()),
                "selector" => {
                    filter.selector = Some(
                        plumb_engine::selector::parse(value)
                            .map_err(|e| ApiError::BadRequest(format!("selector: {e}")))?,
                    );
                }
                "projects" | "project" => filter
                    .projects
                    .extend(value.split(',').map(|p| p.trim().to_string())),
                "appNamespace" => filter.app_namespace = Some(value.to_string()),
                "repo" => filter.repo = Some(value.to_string()),
                _ => {}
            }
        }
        Ok(filter)
    }

    fn keeps(&self, app: &Application) -> bool {
        let meta = &app.metadata;
        let empty = std::collections::BTreeMap::new();
        let labels = meta.labels.as_ref().unwrap_or(&empty);
        self.name
            .as_ref()
            .is_none_or(|n| meta.name.as_ref() == Some(n))
            && self
                .app_namespace
                .as_ref()
                .is_none_or(|ns| meta.namespace.as_ref() == Some(ns))
            && (self.projects.is_empty() || self.projects.contains(&app.spec.project))
            && self.repo.as_ref().is_none_or(|r| {
                app.spec
                    .all_sources()
                    .iter()
                    .any(|s| s.repo_url.trim_end_matches('/') == r.trim_end_matches('/'))
            })
            && self.selector.as_ref().is_none_or(|s| s.matches(labels))
    }
}

/// `GET /api/v1/settings`: what clients need to know of the server (in
/// Argo CD's field names): the application namespace, where an application
/// is named without its namespace.
async fn settings<S: AppService>(State(state): State<AppState<S>>) -> Json<serde_json::Value> {
    Json(serde_json::json!({ "controllerNamespace": state.service.app_namespace() }))
}

/// The application a request names: `{name}` in the path, which may be
/// `NAMESPACE/NAME` (the slash encoded as `%2F`) or be qualified by Argo
/// CD's `?appNamespace=NAMESPACE`. An application in the application
/// namespace is found by either form.
pub(crate) struct AppName(pub String);

/// The part of a query [`AppName`] reads; other parameters are the
/// handler's.
#[derive(Deserialize)]
struct AppNamespaceQuery {
    #[serde(rename = "appNamespace")]
    app_namespace: Option<String>,
}

impl<St: Send + Sync> FromRequestParts<St> for AppName {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &St) -> Result<Self, Self::Rejection> {
        let Path(mut params) =
            Path::<std::collections::HashMap<String, String>>::from_request_parts(parts, state)
                .await?;
        let name = params.remove("name").unwrap_or_default();
        let Query(query) = Query::<AppNamespaceQuery>::from_request_parts(parts, state).await?;
        Ok(AppName(match query.app_namespace {
            Some(namespace) if !namespace.is_empty() && !name.contains('/') => {
                format!("{namespace}/{name}")
            }
            _ => name,
        }))
    }
}

/// The query of `GET /api/v1/applications/{name}`.
#[derive(Deserialize)]
struct GetQuery {
    /// `normal` or `hard`; absent or empty for none.
    refresh: Option<String>,
}

/// Parses Argo CD's `refresh` query value.
fn parse_refresh(value: Option<&str>) -> Result<Option<Refresh>, ApiError> {
    match value {
        None | Some("") => Ok(None),
        Some("normal") => Ok(Some(Refresh::Normal)),
        Some("hard") => Ok(Some(Refresh::Hard)),
        Some(other) => Err(ApiError::BadRequest(format!(
            "invalid refresh {other:?}: expected \"normal\" or \"hard\""
        ))),
    }
}

/// `GET /api/v1/applications/{name}[?refresh=normal|hard]`.
async fn get_application<S: AppService>(
    State(state): State<AppState<S>>,
    caller: Caller,
    AppName(name): AppName,
    query: Result<Query<GetQuery>, QueryRejection>,
) -> Result<Json<Application>, ApiError> {
    enforce_app(&caller, &*state.service, &name, "get")?;
    let Query(query) = query?;
    let refresh = parse_refresh(query.refresh.as_deref())?;
    Ok(Json(state.service.get(&name, refresh).await?))
}

/// The query of `POST /api/v1/applications`.
#[derive(Deserialize)]
struct CreateQuery {
    /// Replace the spec of an existing application that differs.
    #[serde(default)]
    upsert: Option<String>,
}

/// A boolean query value as Argo CD's gateway reads it.
fn query_flag(name: &str, value: Option<&str>, default: bool) -> Result<bool, ApiError> {
    match value {
        None | Some("") => Ok(default),
        Some("true" | "1") => Ok(true),
        Some("false" | "0") => Ok(false),
        Some(other) => Err(ApiError::BadRequest(format!(
            "invalid {name} {other:?}: expected true or false"
        ))),
    }
}

/// `POST /api/v1/applications[?upsert=true]` with an Application: creates
/// the Application object.
async fn create_application<S: AppService>(
    State(state): State<AppState<S>>,
    caller: Caller,
    query: Result<Query<CreateQuery>, QueryRejection>,
    JsonBody(app): JsonBody<serde_json::Value>,
) -> Result<Json<Application>, ApiError> {
    let Query(query) = query?;
    let upsert = query_flag("upsert", query.upsert.as_deref(), false)?;
    let object = body_object(&app, &state.service.app_namespace())?;
    caller.enforce("applications", "create", &object)?;
    if upsert {
        caller.enforce("applications", "update", &object)?;
    }
    Ok(Json(state.service.create(app, upsert).await?))
}

/// The RBAC object (`PROJECT/NAME`) of an Application in a request body.
fn body_object(app: &serde_json::Value, app_namespace: &str) -> Result<String, ApiError> {
    let decoded: Application = serde_json::from_value(app.clone())
        .map_err(|e| ApiError::BadRequest(format!("the body is not an Application: {e}")))?;
    Ok(auth::app_object(&decoded, app_namespace))
}

/// `PUT /api/v1/applications/{name}` with an Application: replaces the
/// spec of its object.
async fn update_application<S: AppService>(
    State(state): State<AppState<S>>,
    caller: Caller,
    AppName(name): AppName,
    JsonBody(app): JsonBody<serde_json::Value>,
) -> Result<Json<Application>, ApiError> {
    // As it is, and as it would be (its project may change).
    enforce_app(&caller, &*state.service, &name, "update")?;
    let object = body_object(&app, &state.service.app_namespace())?;
    caller.enforce("applications", "update", &object)?;
    Ok(Json(state.service.update(&name, app).await?))
}

/// The query of `DELETE /api/v1/applications/{name}`.
#[derive(Deserialize)]
struct DeleteQuery {
    /// `false` deletes the Application object only.
    cascade: Option<String>,
    /// `foreground` (the default) or `background`.
    #[serde(rename = "propagationPolicy")]
    propagation_policy: Option<String>,
}

/// `DELETE /api/v1/applications/{name}[?cascade=false][&propagationPolicy=background]`:
/// `{}` once the Application object's deletion has begun.
async fn delete_application<S: AppService>(
    State(state): State<AppState<S>>,
    caller: Caller,
    AppName(name): AppName,
    query: Result<Query<DeleteQuery>, QueryRejection>,
) -> Result<Json<serde_json::Value>, ApiError> {
    enforce_app(&caller, &*state.service, &name, "delete")?;
    let Query(query) = query?;
    let cascade = if query_flag("cascade", query.cascade.as_deref(), true)? {
        let background = match query.propagation_policy.as_deref() {
            None | Some("" | "foreground") => false,
            Some("background") => true,
            Some(other) => {
                return Err(ApiError::BadRequest(format!(
                    "invalid propagationPolicy {other:?}: expected foreground or background"
                )));
            }
        };
        Cascade::Resources { background }
    } else {
        Cascade::ObjectOnly
    };
    state.service.delete(&name, cascade).await?;
    Ok(Json(serde_json::json!({})))
}

/// `POST /api/v1/applications/{name}/sync` with `{revision?, prune?, dryRun?}`.
async fn sync<S: AppService>(
    State(state): State<AppState<S>>,
    caller: Caller,
    AppName(name): AppName,
    JsonBody(request): JsonBody<SyncRequest>,
) -> Result<Json<Application>, ApiError> {
    enforce_app(&caller, &*state.service, &name, "sync")?;
    Ok(Json(state.service.sync(&name, request).await?))
}

/// The body of `POST /api/v1/applications/{name}/rollback`.
#[derive(Deserialize)]
struct RollbackRequest {
    /// The history id to roll back to.
    id: i64,
}

/// `POST /api/v1/applications/{name}/rollback` with `{"id": N}`.
async fn rollback<S: AppService>(
    State(state): State<AppState<S>>,
    caller: Caller,
    AppName(name): AppName,
    JsonBody(request): JsonBody<RollbackRequest>,
) -> Result<Json<Application>, ApiError> {
    enforce_app(&caller, &*state.service, &name, "sync")?;
    Ok(Json(state.service.rollback(&name, request.id).await?))
}

/// `DELETE /api/v1/applications/{name}/operation`: terminate the running
/// operation (Argo CD's terminate-op).
async fn terminate_operation<S: AppService>(
    State(state): State<AppState<S>>,
    caller: Caller,
    AppName(name): AppName,
) -> Result<Json<Application>, ApiError> {
    enforce_app(&caller, &*state.service, &name, "sync")?;
    Ok(Json(state.service.terminate_operation(&name).await?))
}

/// `POST /api/v1/applications/{name}/confirm-prune`: confirm the prunes
/// `Prune=confirm` holds (Argo CD's "Confirm Pruning").
async fn confirm_prune<S: AppService>(
    State(state): State<AppState<S>>,
    caller: Caller,
    AppName(name): AppName,
) -> Result<Json<Application>, ApiError> {
    enforce_app(&caller, &*state.service, &name, "delete")?;
    Ok(Json(state.service.confirm_prune(&name)?))
}

/// `GET /api/v1/applications/{name}/managed-resources`.
async fn managed_resources<S: AppService>(
    State(state): State<AppState<S>>,
    caller: Caller,
    AppName(name): AppName,
) -> Result<Json<Items<ManagedResource>>, ApiError> {
    enforce_app(&caller, &*state.service, &name, "get")?;
    Ok(Json(Items {
        items: state.service.managed_resources(&name).await?,
    }))
}

/// `GET /api/v1/applications/{name}/resource-tree`.
async fn resource_tree<S: AppService>(
    State(state): State<AppState<S>>,
    caller: Caller,
    AppName(name): AppName,
) -> Result<Json<ResourceTree>, ApiError> {
    enforce_app(&caller, &*state.service, &name, "get")?;
    Ok(Json(state.service.resource_tree(&name).await?))
}

/// `GET /api/v1/applications/{name}/revisions/{revision}/metadata`: the
/// commit's author, date, message and tags (Argo CD's revision metadata).
async fn revision_metadata<S: AppService>(
    State(state): State<AppState<S>>,
    caller: Caller,
    AppName(name): AppName,
    Path(params): Path<std::collections::HashMap<String, String>>,
) -> Result<Json<plumb_engine::source::CommitMetadata>, ApiError> {
    enforce_app(&caller, &*state.service, &name, "get")?;
    let revision = params.get("revision").map_or("", String::as_str);
    Ok(Json(
        state.service.revision_metadata(&name, revision).await?,
    ))
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use axum::http::{Request, StatusCode, header};
    use serde_json::{Value, json};
    use tower::ServiceExt;

    use super::*;
    use crate::fake::FakeService;

    fn fixture_app() -> (Arc<FakeService>, Router) {
        let service = Arc::new(FakeService::with_fixtures());
        let app = crate::app(Arc::clone(&service));
        (service, app)
    }

    async fn call(app: &Router, request: Request<Body>) -> (StatusCode, Value) {
        let response = app
            .clone()
            .oneshot(request)
            .await
            .expect("router is infallible");
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .expect("body");
        let value = serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
        (status, value)
    }

    fn get(uri: &str) -> Request<Body> {
        Request::get(uri).body(Body::empty()).expect("request")
    }

    fn post(uri: &str, body: &str) -> Request<Body> {
        Request::post(uri)
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(body.to_owned()))
            .expect("request")
    }

    #[tokio::test]
    async fn list_returns_every_application_as_items() {
        let (_, app) = fixture_app();
        let (status, body) = call(&app, get("/api/v1/applications")).await;
        assert_eq!(status, StatusCode::OK);
        insta::assert_json_snapshot!("list_response", body);
    }

    #[tokio::test]
    async fn the_list_takes_argo_cd_s_filters() {
        let (_, app) = fixture_app();
        let names = |body: &serde_json::Value| -> Vec<String> {
            body["items"]
                .as_array()
                .expect("items")
                .iter()
                .map(|a| a["metadata"]["name"].as_str().expect("a name").to_string())
                .collect()
        };
        for (query, expected) in [
            ("", vec!["guestbook", "shop"]),
            ("?name=shop", vec!["shop"]),
            ("?projects=default", vec!["guestbook"]),
            ("?project=other&project=default", vec!["guestbook"]),
            (
                "?appNamespace=plumb&selector=%21team",
                vec!["guestbook", "shop"],
            ),
            ("?selector=team%3Da", vec![]),
            ("?appNamespace=elsewhere", vec![]),
            (
                "?repo=https://git.example.com/org/deploy.git",
                vec!["guestbook"],
            ),
        ] {
            let (status, body) = call(&app, get(&format!("/api/v1/applications{query}"))).await;
            assert_eq!(status, StatusCode::OK, "{query}");
            assert_eq!(names(&body), expected, "{query}");
        }
        let (status, body) = call(&app, get("/api/v1/applications?selector=env%20in%20prod")).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert!(
            body["message"]
                .as_str()
                .unwrap_or_default()
                .starts_with("selector: "),
            "{body}"
        );
    }

    #[tokio::test]
    async fn a_list_longer_than_one_piece_of_the_body_is_one_valid_document() {
        let app = crate::app(Arc::new(FakeService::with_copies(2 * LIST_CHUNK + 5)));
        let (status, body) = call(&app, get("/api/v1/applications")).await;
        assert_eq!(status, StatusCode::OK);
        let names: Vec<&str> = body["items"]
            .as_array()
            .expect("items")
            .iter()
            .map(|a| a["metadata"]["name"].as_str().expect("a name"))
            .collect();
        assert_eq!(names.len(), 2 * LIST_CHUNK + 7);
        assert_eq!(names[0], "copy-000");
        assert_eq!(names.last(), Some(&"shop"));
    }

    #[tokio::test]
    async fn an_application_in_another_namespace_is_named_either_way() {
        let (service, app) = fixture_app();
        for uri in [
            "/api/v1/applications/team-a%2Fguestbook/sync",
            "/api/v1/applications/guestbook/sync?appNamespace=team-a",
            // An explicit namespace in the path wins over the query's.
            "/api/v1/applications/team-a%2Fguestbook/sync?appNamespace=other",
        ] {
            let (status, _) = call(&app, post(uri, "{}")).await;
            // The fake holds no such application; the name is what counts.
            assert_eq!(status, StatusCode::NOT_FOUND, "{uri}");
        }
        let (status, _) = call(&app, post("/api/v1/applications/guestbook/sync", "{}")).await;
        assert_eq!(status, StatusCode::OK);
        let names: Vec<String> = service.syncs().into_iter().map(|(n, _)| n).collect();
        assert_eq!(
            names,
            [
                "team-a/guestbook",
                "team-a/guestbook",
                "team-a/guestbook",
                "guestbook"
            ]
        );
        let (status, body) = call(&app, get("/api/v1/settings")).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body, json!({"controllerNamespace": "plumb"}));
    }

    #[tokio::test]
    async fn projects_list_the_assumed_default_and_an_unknown_one_is_a_404() {
        let (_, app) = fixture_app();
        let (status, body) = call(&app, get("/api/v1/projects")).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body["items"][0]["metadata"]["name"], "default");
        assert_eq!(body["items"][0]["spec"]["sourceRepos"], json!(["*"]));
        let (status, body) = call(&app, get("/api/v1/projects/default")).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body["metadata"]["namespace"], "plumb");
        let (status, body) = call(&app, get("/api/v1/projects/nope")).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert_eq!(body["code"], 5);
        assert_eq!(body["message"], "appproject nope not found");
    }

    #[tokio::test]
    async fn clusters_are_listed_and_an_unknown_server_is_a_404() {
        let (_, app) = fixture_app();
        let (status, body) = call(&app, get("/api/v1/clusters")).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body, json!({"items": []}));
        let (status, body) = call(
            &app,
            get("/api/v1/clusters/https%3A%2F%2Fprod.example%3A6443"),
        )
        .await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert_eq!(body["code"], 5);
        assert_eq!(
            body["message"],
            "cluster https://prod.example:6443 not found"
        );
    }

    #[tokio::test]
    async fn get_returns_the_full_kubernetes_object() {
        let (service, app) = fixture_app();
        let (status, body) = call(&app, get("/api/v1/applications/guestbook")).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body["apiVersion"], "argoproj.io/v1alpha1");
        assert_eq!(body["kind"], "Application");
        assert_eq!(body["metadata"]["name"], "guestbook");
        assert_eq!(
            body["spec"]["source"]["repoURL"],
            "https://git.example.com/org/deploy.git"
        );
        assert_eq!(body["status"]["sync"]["status"], "Synced");
        assert_eq!(body["status"]["health"]["status"], "Healthy");
        assert_eq!(service.refreshes(), vec![("guestbook".to_owned(), None)]);
    }

    #[tokio::test]
    async fn get_passes_the_refresh_kind() {
        let (service, app) = fixture_app();
        for query in ["refresh=normal", "refresh=hard", "refresh="] {
            let (status, _) = call(&app, get(&format!("/api/v1/applications/shop?{query}"))).await;
            assert_eq!(status, StatusCode::OK, "{query}");
        }
        assert_eq!(
            service.refreshes(),
            vec![
                ("shop".to_owned(), Some(Refresh::Normal)),
                ("shop".to_owned(), Some(Refresh::Hard)),
                ("shop".to_owned(), None),
            ]
        );
    }

    #[tokio::test]
    async fn get_with_an_unknown_refresh_is_a_bad_request() {
        let (_, app) = fixture_app();
        let (status, body) = call(&app, get("/api/v1/applications/shop?refresh=soft")).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(
            body,
            json!({
                "error": "invalid refresh \"soft\": expected \"normal\" or \"hard\"",
                "code": 3,
                "message": "invalid refresh \"soft\": expected \"normal\" or \"hard\"",
            })
        );
    }

    #[tokio::test]
    async fn unknown_application_is_not_found() {
        let (_, app) = fixture_app();
        for uri in [
            "/api/v1/applications/nope",
            "/api/v1/applications/nope/managed-resources",
            "/api/v1/applications/nope/resource-tree",
        ] {
            let (status, body) = call(&app, get(uri)).await;
            assert_eq!(status, StatusCode::NOT_FOUND, "{uri}");
            assert_eq!(body["code"], 5);
            assert_eq!(body["message"], "application nope not found");
        }
        let (status, _) = call(&app, post("/api/v1/applications/nope/sync", "{}")).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
    }

    #[tokio::test]
    async fn sync_passes_the_request_and_returns_the_application() {
        let (service, app) = fixture_app();
        let (status, body) = call(
            &app,
            post(
                "/api/v1/applications/shop/sync",
                r#"{"revision":"v2","prune":true,"dryRun":true}"#,
            ),
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body["metadata"]["name"], "shop");
        assert_eq!(body["status"]["operationState"]["phase"], "Succeeded");
        assert_eq!(
            service.syncs(),
            vec![(
                "shop".to_owned(),
                SyncRequest {
                    revision: Some("v2".into()),
                    prune: true,
                    dry_run: true,
                    ..SyncRequest::default()
                }
            )]
        );
    }

    #[tokio::test]
    async fn sync_with_an_empty_body_is_a_default_sync() {
        let (service, app) = fixture_app();
        let request = Request::post("/api/v1/applications/shop/sync")
            .body(Body::empty())
            .expect("request");
        let (status, _) = call(&app, request).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(
            service.syncs(),
            vec![("shop".to_owned(), SyncRequest::default())]
        );
    }

    #[tokio::test]
    async fn invalid_json_body_is_a_json_bad_request() {
        let (service, app) = fixture_app();
        let (status, body) = call(&app, post("/api/v1/applications/shop/sync", "{prune")).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(body["code"], 3);
        let message = body["message"].as_str().expect("message");
        assert!(message.starts_with("invalid JSON body: "), "{message}");
        let (status, body) = call(
            &app,
            post("/api/v1/applications/shop/sync", r#"{"prune":"yes"}"#),
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert!(
            body["message"]
                .as_str()
                .expect("message")
                .contains("invalid type"),
            "{body}"
        );
        assert!(service.syncs().is_empty());
    }

    #[tokio::test]
    async fn sync_conflict_is_409() {
        let service = Arc::new(FakeService::with_fixtures().busy("shop"));
        let app = crate::app(service);
        let (status, body) = call(&app, post("/api/v1/applications/shop/sync", "{}")).await;
        assert_eq!(status, StatusCode::CONFLICT);
        assert_eq!(body["code"], 9);
        assert_eq!(body["message"], "another sync is running for shop");
    }

    #[tokio::test]
    async fn sync_to_an_unknown_revision_is_a_bad_request() {
        let (_, app) = fixture_app();
        let (status, body) = call(
            &app,
            post("/api/v1/applications/shop/sync", r#"{"revision":"nope"}"#),
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(body["message"], "revision nope not found");
    }

    #[tokio::test]
    async fn confirm_prune_confirms_and_is_404_for_an_unknown_application() {
        let service = Arc::new(FakeService::with_fixtures());
        let app = crate::app(Arc::clone(&service));
        let (status, body) = call(&app, post("/api/v1/applications/shop/confirm-prune", "")).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["metadata"]["name"], "shop");
        assert_eq!(service.prunes_confirmed(), vec!["shop".to_owned()]);
        let (status, _) = call(&app, post("/api/v1/applications/nope/confirm-prune", "")).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
    }

    #[tokio::test]
    async fn terminate_op_cancels_a_running_operation_and_is_400_without_one() {
        let service = Arc::new(FakeService::with_fixtures().busy("shop"));
        let app = crate::app(Arc::clone(&service));
        let delete = |path: &str| {
            Request::delete(path)
                .body(Body::empty())
                .expect("a valid request")
        };
        let (status, body) = call(&app, delete("/api/v1/applications/shop/operation")).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["metadata"]["name"], "shop");
        assert_eq!(service.terminated(), vec!["shop".to_owned()]);
        let (status, body) = call(&app, delete("/api/v1/applications/guestbook/operation")).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(body["message"], "no operation is in progress for guestbook");
        let (status, _) = call(&app, delete("/api/v1/applications/nope/operation")).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
    }

    #[tokio::test]
    async fn rollback_takes_a_history_id() {
        let (service, app) = fixture_app();
        let (status, body) = call(
            &app,
            post("/api/v1/applications/guestbook/rollback", r#"{"id": 1}"#),
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body["status"]["rollback"]["historyId"], 1);
        assert_eq!(service.rollbacks(), vec![("guestbook".to_owned(), 1)]);
    }

    #[tokio::test]
    async fn rollback_without_an_id_or_to_an_unknown_one_is_a_bad_request() {
        let (_, app) = fixture_app();
        let (status, body) = call(&app, post("/api/v1/applications/guestbook/rollback", "")).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert!(
            body["message"]
                .as_str()
                .expect("message")
                .contains("missing field `id`"),
            "{body}"
        );
        let (status, body) = call(
            &app,
            post("/api/v1/applications/guestbook/rollback", r#"{"id": 42}"#),
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(body["message"], "history id 42 not found for guestbook");
    }

    #[tokio::test]
    async fn managed_resources_are_items_with_diffs() {
        let (_, app) = fixture_app();
        let (status, body) = call(&app, get("/api/v1/applications/shop/managed-resources")).await;
        assert_eq!(status, StatusCode::OK);
        let items = body["items"].as_array().expect("items");
        assert_eq!(items.len(), 2);
        assert_eq!(items[0]["kind"], "Deployment");
        assert_eq!(items[0]["modified"], true);
        assert!(
            items[0]["diff"]
                .as_str()
                .expect("diff")
                .contains("-  replicas: 2")
        );
        assert!(items[0].get("targetState").is_some());
    }

    #[tokio::test]
    async fn internal_errors_are_500_with_the_service_message_only() {
        let service = Arc::new(FakeService::with_fixtures().broken("shop"));
        let app = crate::app(service);
        let (status, body) = call(&app, get("/api/v1/applications/shop/managed-resources")).await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(
            body,
            json!({"error": "comparison failed for shop", "code": 13, "message": "comparison failed for shop"})
        );
    }

    #[tokio::test]
    async fn resource_tree_has_nodes() {
        let (_, app) = fixture_app();
        let (status, body) = call(&app, get("/api/v1/applications/guestbook/resource-tree")).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body["nodes"][0]["kind"], "Service");
        assert_eq!(body["nodes"][1]["kind"], "Deployment");
    }

    #[tokio::test]
    async fn healthz_answers_ok() {
        let (_, app) = fixture_app();
        assert_eq!(
            call(&app, get("/healthz")).await,
            (StatusCode::OK, json!("ok"))
        );
    }

    #[tokio::test]
    async fn readyz_answers_503_until_the_caches_are_filled() {
        let (service, app) = fixture_app();
        service.set_awaiting(Some("the first list"));
        let (status, body) = call(&app, get("/readyz")).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(body["message"], "the first list");
        service.set_awaiting(None);
        assert_eq!(
            call(&app, get("/readyz")).await,
            (StatusCode::OK, json!("ok"))
        );
    }

    #[tokio::test]
    async fn unknown_paths_and_methods_answer_json_errors() {
        let (_, app) = fixture_app();
        let (status, body) = call(&app, get("/api/v1/nothing")).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert_eq!(body["message"], "no route for GET /api/v1/nothing");
        let (status, body) = call(&app, post("/api/v1/settings", "{}")).await;
        assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(body["message"], "POST is not allowed on /api/v1/settings");
        let (status, _) = call(&app, get("/api/v1/applications/shop/sync")).await;
        assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    }

    #[tokio::test]
    async fn oversized_bodies_are_413() {
        let (_, app) = fixture_app();
        let big = format!(r#"{{"revision":"{}"}}"#, "a".repeat(3 * 1024 * 1024));
        let (status, body) = call(&app, post("/api/v1/applications/shop/sync", &big)).await;
        assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
        assert_eq!(body["code"], 8);
    }

    #[tokio::test]
    async fn cross_site_posts_are_refused() {
        let (service, app) = fixture_app();
        let request = Request::post("/api/v1/applications/shop/sync")
            .header(header::HOST, "localhost:8080")
            .header(header::ORIGIN, "https://evil.example")
            .body(Body::empty())
            .expect("request");
        let (status, body) = call(&app, request).await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        assert_eq!(body["code"], 7);
        assert!(service.syncs().is_empty());
        let same_origin = Request::post("/api/v1/applications/shop/sync")
            .header(header::HOST, "localhost:8080")
            .header(header::ORIGIN, "http://localhost:8080")
            .body(Body::empty())
            .expect("request");
        assert_eq!(call(&app, same_origin).await.0, StatusCode::OK);
    }
}
