//! The handlers of `/api/v1/projects...`: list, get, create, update and
//! delete AppProjects, each one [`AppService`] call.

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::routing::get;
use axum::{Json, Router};
use plumb_engine::project::AppProject;
use plumb_engine::service::AppService;
use serde_json::{Value, json};

use crate::auth::Caller;
use crate::error::{ApiError, JsonBody};
use crate::routes::{AppState, Items};

/// The AppProject routes.
pub(crate) fn routes<S: AppService>() -> Router<AppState<S>> {
    Router::new()
        .route("/api/v1/projects", get(list::<S>).post(create::<S>))
        .route(
            "/api/v1/projects/{name}",
            get(get_one::<S>).put(update::<S>).delete(delete::<S>),
        )
}

/// `GET /api/v1/projects`: `{"items": [...]}`.
async fn list<S: AppService>(
    State(state): State<AppState<S>>,
    caller: Caller,
) -> Json<Items<AppProject>> {
    let mut items = state.service.projects();
    items.retain(|p| caller.can("projects", "get", p.name()));
    Json(Items { items })
}

/// `GET /api/v1/projects/{name}`.
async fn get_one<S: AppService>(
    State(state): State<AppState<S>>,
    caller: Caller,
    name: Result<Path<String>, PathRejection>,
) -> Result<Json<AppProject>, ApiError> {
    let Path(name) = name?;
    caller.enforce("projects", "get", &name)?;
    Ok(Json(state.service.project(&name)?))
}

/// `POST /api/v1/projects` with `{"project": {...}, "upsert"?: bool}`.
async fn create<S: AppService>(
    State(state): State<AppState<S>>,
    caller: Caller,
    JsonBody(body): JsonBody<Value>,
) -> Result<Json<AppProject>, ApiError> {
    let name = body
        .pointer("/project/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default();
    caller.enforce("projects", "create", name)?;
    if body.get("upsert").and_then(Value::as_bool) == Some(true) {
        caller.enforce("projects", "update", name)?;
    }
    Ok(Json(state.service.create_project(body).await?))
}

/// `PUT /api/v1/projects/{name}` with `{"project": {...}}`.
async fn update<S: AppService>(
    State(state): State<AppState<S>>,
    caller: Caller,
    name: Result<Path<String>, PathRejection>,
    JsonBody(body): JsonBody<Value>,
) -> Result<Json<AppProject>, ApiError> {
    let Path(name) = name?;
    caller.enforce("projects", "update", &name)?;
    Ok(Json(state.service.update_project(&name, body).await?))
}

/// `DELETE /api/v1/projects/{name}`: `{}`.
async fn delete<S: AppService>(
    State(state): State<AppState<S>>,
    caller: Caller,
    name: Result<Path<String>, PathRejection>,
) -> Result<Json<Value>, ApiError> {
    let Path(name) = name?;
    caller.enforce("projects", "delete", &name)?;
    state.service.delete_project(&name).await?;
    Ok(Json(json!({})))
}
