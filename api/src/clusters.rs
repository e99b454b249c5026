//! The handlers of `/api/v1/clusters...`: the clusters applications may
//! deploy to, with their connection state (Argo CD's shape), credentials
//! never included.

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::routing::get;
use axum::{Json, Router};
use plumb_engine::destinations::ClusterView;
use plumb_engine::service::{AppService, ServiceError};

use crate::auth::Caller;
use crate::error::ApiError;
use crate::routes::{AppState, Items};

/// The cluster routes.
pub(crate) fn routes<S: AppService>() -> Router<AppState<S>> {
    Router::new()
        .route("/api/v1/clusters", get(list::<S>))
        .route("/api/v1/clusters/{server}", get(get_one::<S>))
}

/// `GET /api/v1/clusters`: `{"items": [...]}`.
async fn list<S: AppService>(
    State(state): State<AppState<S>>,
    caller: Caller,
) -> Json<Items<ClusterView>> {
    let mut items = state.service.clusters();
    // Argo CD's RBAC object of a cluster is its server URL.
    items.retain(|c| caller.can("clusters", "get", &c.server));
    Json(Items { items })
}

/// `GET /api/v1/clusters/{server}`: the server URL percent-encoded (as
/// Argo CD's), or the cluster's name.
async fn get_one<S: AppService>(
    State(state): State<AppState<S>>,
    caller: Caller,
    server: Result<Path<String>, PathRejection>,
) -> Result<Json<ClusterView>, ApiError> {
    let Path(server) = server?;
    let wanted = server.trim_end_matches('/');
    let clusters = state.service.clusters();
    let found = clusters
        .iter()
        .position(|c| c.server == wanted)
        .or_else(|| clusters.iter().position(|c| c.name == wanted));
    match found {
        Some(i) => {
            caller.enforce("clusters", "get", &clusters[i].server)?;
            Ok(Json(clusters[i].clone()))
        }
        None => Err(ApiError::Service(ServiceError::ClusterNotFound(server))),
    }
}
