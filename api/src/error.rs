//! How every failure of the API reaches the client: one [`ApiError`] with a
//! status code and Argo CD's error body, and the extractors whose rejections
//! become one.
//!
//! Not here: what the service's errors mean; that is
//! [`ServiceError`](plumb_engine::service::ServiceError).

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection, QueryRejection};
use axum::extract::{FromRequest, Request};
use axum::http::{Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use plumb_engine::service::ServiceError;
use serde::Serialize;
use serde::de::DeserializeOwned;

/// The error of a request; its response is Argo CD's error document,
/// `{"error": "...", "code": N, "message": "..."}`, where `code` is the gRPC
/// status code Argo CD's API would give (5 not found, 3 invalid argument, ...)
/// and the HTTP status carries the HTTP meaning.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The service refused the request or failed; mapped by kind.
    #[error(transparent)]
    Service(#[from] ServiceError),
    /// The request is malformed: its body, query or path (400).
    #[error("{0}")]
    BadRequest(String),
    /// The request body is larger than the server accepts (413).
    #[error("{0}")]
    PayloadTooLarge(String),
    /// A state-changing request sent by a page of another site (403).
    #[error("{0}")]
    CrossSite(String),
    /// The request carries no valid token (401, Argo CD's Unauthenticated).
    #[error("{0}")]
    Unauthenticated(String),
    /// The caller may not do this (403, Argo CD's PermissionDenied).
    #[error("{0}")]
    Forbidden(String),
    /// Too many failed logins (429, ResourceExhausted).
    #[error("{0}")]
    TooManyRequests(String),
    /// The server cannot do what was asked (500).
    #[error("{0}")]
    Internal(String),
    /// Not ready to answer yet (503, Unavailable).
    #[error("{0}")]
    Unavailable(String),
    /// No route has this path (404).
    #[error("no route for {method} {path}")]
    NoRoute {
        /// The request's method.
        method: Method,
        /// The request's path.
        path: String,
    },
    /// The path exists, but not with this method (405).
    #[error("{method} is not allowed on {path}")]
    MethodNotAllowed {
        /// The request's method.
        method: Method,
        /// The request's path.
        path: String,
    },
}

/// Argo CD's error body (grpc-gateway's shape).
#[derive(Serialize)]
struct ErrorBody<'a> {
    error: &'a str,
    code: u16,
    message: &'a str,
}

impl ApiError {
    /// The HTTP status and the gRPC code Argo CD would answer with.
    fn codes(&self) -> (StatusCode, u16) {
        match self {
            ApiError::Service(
                ServiceError::NotFound(_)
                | ServiceError::AppSetNotFound(_)
                | ServiceError::ProjectNotFound(_)
                | ServiceError::ClusterNotFound(_),
            ) => (StatusCode::NOT_FOUND, 5),
            ApiError::Service(ServiceError::BadRequest(_)) | ApiError::BadRequest(_) => {
                (StatusCode::BAD_REQUEST, 3)
            }
            // Argo CD answers "another operation is already in progress" with
            // FailedPrecondition.
            ApiError::Service(ServiceError::Conflict(_)) => (StatusCode::CONFLICT, 9),
            ApiError::Service(ServiceError::NotLeader(_)) => (StatusCode::SERVICE_UNAVAILABLE, 14),
            ApiError::Service(ServiceError::Internal(_)) => (StatusCode::INTERNAL_SERVER_ERROR, 13),
            ApiError::PayloadTooLarge(_) => (StatusCode::PAYLOAD_TOO_LARGE, 8),
            ApiError::CrossSite(_) | ApiError::Forbidden(_) => (StatusCode::FORBIDDEN, 7),
            ApiError::Unauthenticated(_) => (StatusCode::UNAUTHORIZED, 16),
            ApiError::TooManyRequests(_) => (StatusCode::TOO_MANY_REQUESTS, 8),
            ApiError::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, 13),
            ApiError::Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, 14),
            ApiError::NoRoute { .. } => (StatusCode::NOT_FOUND, 5),
            ApiError::MethodNotAllowed { .. } => (StatusCode::METHOD_NOT_ALLOWED, 12),
        }
    }

    /// A 404 for a request no route matched.
    pub(crate) fn no_route(method: Method, uri: &Uri) -> ApiError {
        ApiError::NoRoute {
            method,
            path: uri.path().to_owned(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = self.codes();
        let message = self.to_string();
        if status.is_server_error() {
            tracing::error!(%status, %message, "request failed");
        } else {
            tracing::debug!(%status, %message, "request refused");
        }
        let body = ErrorBody {
            error: &message,
            code,
            message: &message,
        };
        (status, Json(body)).into_response()
    }
}

impl From<BytesRejection> for ApiError {
    fn from(rejection: BytesRejection) -> ApiError {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::PayloadTooLarge(rejection.body_text())
        } else {
            ApiError::BadRequest(format!(
                "cannot read the request body: {}",
                rejection.body_text()
            ))
        }
    }
}

impl From<QueryRejection> for ApiError {
    fn from(rejection: QueryRejection) -> ApiError {
        ApiError::BadRequest(rejection.body_text())
    }
}

impl From<PathRejection> for ApiError {
    fn from(rejection: PathRejection) -> ApiError {
        ApiError::BadRequest(rejection.body_text())
    }
}

/// A JSON request body whose every failure is an [`ApiError`] (axum's `Json`
/// answers in plain text). An empty body counts as `{}`, so
/// `curl -X POST .../sync` works; the content type is not checked, as
/// `curl -d` sends a form type by default.
pub(crate) struct JsonBody<T>(pub T);

impl<T, St> FromRequest<St> for JsonBody<T>
where
    T: DeserializeOwned,
    St: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &St) -> Result<Self, ApiError> {
        let bytes = Bytes::from_request(request, state).await?;
        let text: &[u8] = if bytes.iter().all(u8::is_ascii_whitespace) {
            b"{}"
        } else {
            &bytes
        };
        serde_json::from_slice(text)
            .map(JsonBody)
            .map_err(|e| ApiError::BadRequest(format!("invalid JSON body: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn body_of(error: ApiError) -> (StatusCode, serde_json::Value) {
        let response = error.into_response();
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .expect("body");
        (status, serde_json::from_slice(&bytes).expect("json"))
    }

    #[tokio::test]
    async fn service_errors_map_to_status_and_argo_cd_codes() {
        let cases = [
            (ServiceError::NotFound("web".into()), 404, 5),
            (ServiceError::BadRequest("bad".into()), 400, 3),
            (ServiceError::Conflict("busy".into()), 409, 9),
            (ServiceError::Internal("broke".into()), 500, 13),
        ];
        for (error, status, code) in cases {
            let message = error.to_string();
            let (got_status, body) = body_of(ApiError::from(error)).await;
            assert_eq!(got_status.as_u16(), status);
            assert_eq!(
                body,
                serde_json::json!({"error": message, "code": code, "message": message})
            );
        }
    }

    #[tokio::test]
    async fn error_body_keeps_argo_cd_field_order() {
        let response = ApiError::BadRequest("x".into()).into_response();
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .expect("body");
        assert_eq!(&bytes[..], br#"{"error":"x","code":3,"message":"x"}"#);
    }
}
