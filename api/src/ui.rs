//! Serves the web UI's files, embedded by `plumb-ui`: `/` is `index.html`,
//! `/ui/{file}` the rest.
//!
//! The pages' own headers live here: no caching (the binary is the version),
//! no sniffing, no framing (the UI has buttons that sync and roll back), and
//! a content security policy that allows this server only.

use axum::extract::Path;
use axum::http::{HeaderValue, Method, Uri, header};
use axum::response::{IntoResponse, Response};

use crate::error::ApiError;

/// Only this server's scripts, styles and connections; no inline code.
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     img-src 'self'; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// `GET /`.
pub(crate) async fn index() -> Response {
    serve("index.html", &Uri::from_static("/"))
}

/// `GET /ui/{file}`.
pub(crate) async fn file(Path(file): Path<String>, uri: Uri) -> Response {
    serve(&file, &uri)
}

/// The embedded file `name` with its headers, or a 404.
fn serve(name: &str, uri: &Uri) -> Response {
    let Some((content_type, bytes)) = plumb_ui::asset(name) else {
        return ApiError::no_route(Method::GET, uri).into_response();
    };
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
            (
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            ),
            (header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY")),
            (
                header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_static(CONTENT_SECURITY_POLICY),
            ),
        ],
        bytes,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use axum::body::Body;
    use axum::http::{Request, StatusCode};
    use tower::ServiceExt;

    use crate::fake::FakeService;

    async fn fetch(uri: &str) -> (StatusCode, Option<String>, Vec<u8>) {
        let app = crate::app(Arc::new(FakeService::with_fixtures()));
        let response = app
            .oneshot(Request::get(uri).body(Body::empty()).expect("request"))
            .await
            .expect("infallible");
        let status = response.status();
        let content_type = response
            .headers()
            .get("content-type")
            .map(|v| v.to_str().expect("ascii").to_owned());
        let body = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .expect("body");
        (status, content_type, body.to_vec())
    }

    #[tokio::test]
    async fn root_serves_index_html_as_html() {
        let (status, content_type, body) = fetch("/").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(content_type.as_deref(), Some("text/html; charset=utf-8"));
        let html = String::from_utf8(body).expect("utf-8");
        assert!(html.contains("<title>Plumb</title>"));
        assert!(html.contains("ui/app.js"));
    }

    #[tokio::test]
    async fn ui_files_are_served_with_their_types() {
        let (status, content_type, _) = fetch("/ui/app.js").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(
            content_type.as_deref(),
            Some("text/javascript; charset=utf-8")
        );
        let (_, content_type, _) = fetch("/ui/style.css").await;
        assert_eq!(content_type.as_deref(), Some("text/css; charset=utf-8"));
    }

    #[tokio::test]
    async fn unknown_ui_files_are_json_404s() {
        let (status, content_type, _) = fetch("/ui/secret.txt").await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert_eq!(content_type.as_deref(), Some("application/json"));
        let (status, _, _) = fetch("/ui/..%2FCargo.toml").await;
        assert_eq!(status, StatusCode::NOT_FOUND);
    }
}
