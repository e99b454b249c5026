//! The handlers of `/api/v1/projects...`: list and get AppProjects, each
//! one [`AppService`] call.

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::routing::get;
use axum::{Json, Router};
use plumb_engine::project::AppProject;
use plumb_engine::service::AppService;

use crate::error::ApiError;
use crate::routes::{AppState, Items};

/// The AppProject routes.
pub(crate) fn routes<S: AppService>() -> Router<AppState<S>> {
    Router::new()
        .route("/api/v1/projects", get(list::<S>))
        .route("/api/v1/projects/{name}", get(get_one::<S>))
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
