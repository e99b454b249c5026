//! The handlers of `/api/v1/projects...`: list, get, create, update and
//! delete AppProjects, each one [`AppService`] call.

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::routing::get;
use axum::{Json, Router};
use plumb_engine::project::AppProject;
use plumb_engine::service::AppService;
use serde_json::{Value, json};

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
async fn list<S: AppService>(State(state): State<AppState<S>>) -> Json<Items<AppProject>> {
    Json(Items {
        items: state.service.projects(),
    })
}

/// `GET /api/v1/projects/{name}`.
async fn get_one<S: AppService>(
    State(state): State<AppState<S>>,
    name: Result<Path<String>, PathRejection>,
) -> Result<Json<AppProject>, ApiError> {
    let Path(name) = name?;
    Ok(Json(state.service.project(&name)?))
}

/// `POST /api/v1/projects` with `{"project": {...}, "upsert"?: bool}`.
async fn create<S: AppService>(
    State(state): State<AppState<S>>,
    JsonBody(body): JsonBody<Value>,
) -> Result<Json<AppProject>, ApiError> {
    Ok(Json(state.service.create_project(body).await?))
}

/// `PUT /api/v1/projects/{name}` with `{"project": {...}}`.
async fn update<S: AppService>(
    State(state): State<AppState<S>>,
    name: Result<Path<String>, PathRejection>,
    JsonBody(body): JsonBody<Value>,
) -> Result<Json<AppProject>, ApiError> {
    let Path(name) = name?;
    Ok(Json(state.service.update_project(&name, body).await?))
}

/// `DELETE /api/v1/projects/{name}`: `{}`.
async fn delete<S: AppService>(
    State(state): State<AppState<S>>,
    name: Result<Path<String>, PathRejection>,
) -> Result<Json<Value>, ApiError> {
    let Path(name) = name?;
    state.service.delete_project(&name).await?;
    Ok(Json(json!({})))
}
