//! The handlers of `/api/v1/applicationsets/...`: list, get, confirm a held
//! deletion, and preview what a manifest would generate. Each is one
//! [`AppService`] call.

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::routing::{get, post};
use axum::{Json, Router};
use plumb_engine::appset::ApplicationSet;
use plumb_engine::service::{AppService, AppSetPreview};
use serde::Deserialize;

use crate::auth::Caller;
use crate::error::{ApiError, JsonBody};
use crate::routes::{AppState, Items};

/// The ApplicationSet routes.
pub(crate) fn routes<S: AppService>() -> Router<AppState<S>> {
    Router::new()
        .route("/api/v1/applicationsets", get(list::<S>))
        .route("/api/v1/applicationsets/generate", post(generate::<S>))
        .route("/api/v1/applicationsets/{name}", get(get_one::<S>))
        .route(
            "/api/v1/applicationsets/{name}/confirm-deletion",
            post(confirm_deletion::<S>),
        )
}

/// `GET /api/v1/applicationsets`: `{"items": [...]}`.
async fn list<S: AppService>(
    State(state): State<AppState<S>>,
    caller: Caller,
) -> Json<Items<ApplicationSet>> {
    let mut items = state.service.appsets();
    items.retain(|set| caller.can("applicationsets", "get", &appset_object(set)));
    Json(Items { items })
}

/// The RBAC object of an ApplicationSet, as Argo CD's: `PROJECT/NAME`,
/// the project its template names (`default` when none or templated).
fn appset_object(set: &ApplicationSet) -> String {
    let project = set
        .spec
        .template
        .pointer("/spec/project")
        .and_then(serde_json::Value::as_str)
        .filter(|p| !p.is_empty())
        .unwrap_or(plumb_engine::project::DEFAULT_PROJECT);
    format!(
        "{project}/{}",
        set.metadata.name.as_deref().unwrap_or_default()
    )
}

/// `GET /api/v1/applicationsets/{name}`.
async fn get_one<S: AppService>(
    State(state): State<AppState<S>>,
    caller: Caller,
    name: Result<Path<String>, PathRejection>,
) -> Result<Json<ApplicationSet>, ApiError> {
    let Path(name) = name?;
    let set = state.service.appset(&name)?;
    caller.enforce("applicationsets", "get", &appset_object(&set))?;
    Ok(Json(set))
}

/// The body of `POST .../confirm-deletion`.
#[derive(Deserialize)]
struct Confirm {
    /// The token the `DeletionHeld` condition names.
    token: String,
}

/// `POST /api/v1/applicationsets/{name}/confirm-deletion` with
/// `{"token": "..."}`: lets the held deletions go ahead.
async fn confirm_deletion<S: AppService>(
    State(state): State<AppState<S>>,
    caller: Caller,
    name: Result<Path<String>, PathRejection>,
    JsonBody(body): JsonBody<Confirm>,
) -> Result<Json<ApplicationSet>, ApiError> {
    let Path(name) = name?;
    let set = state.service.appset(&name)?;
    caller.enforce("applicationsets", "delete", &appset_object(&set))?;
    Ok(Json(
        state.service.confirm_appset_deletion(&name, &body.token)?,
    ))
}

/// `POST /api/v1/applicationsets/generate` with an ApplicationSet
/// manifest (JSON): what it would create, update and delete now.
async fn generate<S: AppService>(
    State(state): State<AppState<S>>,
    caller: Caller,
    JsonBody(set): JsonBody<serde_json::Value>,
) -> Result<Json<AppSetPreview>, ApiError> {
    // Argo CD asks `create` of a preview: it reads repositories and clusters.
    let project = set
        .pointer("/spec/template/spec/project")
        .and_then(serde_json::Value::as_str)
        .filter(|p| !p.is_empty())
        .unwrap_or(plumb_engine::project::DEFAULT_PROJECT);
    let name = set
        .pointer("/metadata/name")
        .and_then(serde_json::Value::as_str)
        .unwrap_or_default();
    caller.enforce("applicationsets", "create", &format!("{project}/{name}"))?;
    Ok(Json(state.service.preview_appset(set).await?))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use axum::body::Body;
    use axum::http::{Request, StatusCode, header};
    use serde_json::{Value, json};
    use tower::ServiceExt;

    use crate::fake::FakeService;

    async fn call(request: Request<Body>) -> (StatusCode, Value) {
        let app = crate::app(Arc::new(FakeService::with_fixtures()));
        let response = app.oneshot(request).await.expect("router is infallible");
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .expect("body");
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }

    fn get(path: &str) -> Request<Body> {
        Request::get(path).body(Body::empty()).expect("request")
    }

    fn post(path: &str, body: &Value) -> Request<Body> {
        Request::post(path)
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(body.to_string()))
            .expect("request")
    }

    #[tokio::test]
    async fn applicationset_routes_answer_in_argo_cds_shapes() {
        let (status, body) = call(get("/api/v1/applicationsets")).await;
        assert_eq!((status, body), (StatusCode::OK, json!({"items": []})));
        let (status, body) = call(get("/api/v1/applicationsets/web")).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert_eq!(body["message"], "applicationset web not found");
        let (status, _) = call(post(
            "/api/v1/applicationsets/web/confirm-deletion",
            &json!({"token": "t"}),
        ))
        .await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        // A body without the token is the client's mistake.
        let (status, _) = call(post(
            "/api/v1/applicationsets/web/confirm-deletion",
            &json!({}),
        ))
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        let (status, _) = call(post("/api/v1/applicationsets/generate", &json!({}))).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
    }
}
