//! Refuses state-changing requests that a browser sends on behalf of another
//! site (cross-site request forgery): the API has no authentication yet, so
//! without this any web page open on an operator's machine could sync or roll
//! back applications of a `plumb serve` on localhost.
//!
//! Not authentication: requests without browser headers (curl, the CLI,
//! scripts) pass.

use axum::extract::Request;
use axum::http::{HeaderMap, Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::error::ApiError;

/// Middleware: passes safe methods; for others, refuses a request whose
/// `Origin` is not this server (as named by `Host` or `X-Forwarded-Host`) or
/// whose `Sec-Fetch-Site` says another site sent it.
pub(crate) async fn reject_cross_site(request: Request, next: Next) -> Response {
    let method = request.method();
    if method == Method::GET || method == Method::HEAD || method == Method::OPTIONS {
        return next.run(request).await;
    }
    match cross_site_reason(request.headers()) {
        Some(reason) => ApiError::CrossSite(reason).into_response(),
        None => next.run(request).await,
    }
}

/// Why the headers show a cross-site request, or `None` when they do not.
fn cross_site_reason(headers: &HeaderMap) -> Option<String> {
    let value = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    if let Some(site @ ("cross-site" | "same-site")) = value("sec-fetch-site") {
        return Some(format!(
            "refusing a {site} request: send it from Plumb's own UI or without a browser"
        ));
    }
    let origin = value(header::ORIGIN.as_str())?;
    let origin_host = origin
        .strip_prefix("http://")
        .or_else(|| origin.strip_prefix("https://"))
        .unwrap_or(origin);
    // Headers cross-site pages can set without a CORS preflight do not
    // include either of these, so a match proves the request is same-origin.
    let ours = [value(header::HOST.as_str()), value("x-forwarded-host")];
    if ours
        .into_iter()
        .flatten()
        .any(|host| host.eq_ignore_ascii_case(origin_host))
    {
        None
    } else {
        Some(format!(
            "refusing a request from origin {origin}: it is not this server"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, HeaderValue::from_static(value));
        }
        map
    }

    #[test]
    fn requests_without_browser_headers_pass() {
        assert_eq!(
            cross_site_reason(&headers(&[("host", "localhost:8080")])),
            None
        );
    }

    #[test]
    fn same_origin_requests_pass_also_behind_a_proxy() {
        let direct = headers(&[
            ("host", "localhost:8080"),
            ("origin", "http://localhost:8080"),
        ]);
        assert_eq!(cross_site_reason(&direct), None);
        let proxied = headers(&[
            ("host", "10.0.0.7:8080"),
            ("x-forwarded-host", "plumb.example.com"),
            ("origin", "https://plumb.example.com"),
            ("sec-fetch-site", "same-origin"),
        ]);
        assert_eq!(cross_site_reason(&proxied), None);
    }

    #[test]
    fn other_origins_are_refused() {
        let evil = headers(&[
            ("host", "localhost:8080"),
            ("origin", "https://evil.example"),
        ]);
        assert!(cross_site_reason(&evil).is_some());
        let null = headers(&[("host", "localhost:8080"), ("origin", "null")]);
        assert!(cross_site_reason(&null).is_some());
        let fetch = headers(&[("host", "localhost:8080"), ("sec-fetch-site", "cross-site")]);
        assert!(cross_site_reason(&fetch).is_some());
    }
}
