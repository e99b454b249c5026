//! Plumb's HTTP API: Argo CD-shaped REST under `/api/v1`, a server-sent
//! event stream of application changes, `/healthz` and the embedded web UI.
//! The CLI's side of the same API is the `plumb-cli` crate.
//!
//! ```text
//!  plumb app ... (client) --HTTP-->  app(): Router
//!  web UI (plumb-ui)      --HTTP-->    |- routes   /api/v1/applications/...  -> AppService
//!                         <--SSE---    |- stream   /api/v1/stream/applications <- AppService::subscribe
//!                                      |- ui       /, /ui/{file}
//!                                      '- error    ApiError: every failure as {"error","code","message"}
//! ```
//!
//! The router knows nothing of how applications are reconciled: it calls the
//! [`AppService`] trait, which the controller implements and tests fake.

mod appsets;
mod auth;
mod clusters;
mod dora;
mod error;
mod origin;
mod projects;
mod redact;
mod routes;
mod session;
mod stream;
mod ui;
mod webhook;

/// An in-memory service for tests of the router and of HTTP clients; with
/// the `fake` feature only.
#[cfg(any(test, feature = "fake"))]
pub mod fake;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use plumb_engine::service::AppService;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub use auth::{Auth, COOKIE};
pub use error::ApiError;

/// The error of [`serve`] and [`serve_on`].
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The listen address could not be bound (in use, not local, or a
    /// privileged port).
    #[error("cannot listen on {addr}")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// Why binding failed.
        #[source]
        source: std::io::Error,
    },
    /// Accepting or serving connections failed.
    #[error("the HTTP server failed")]
    Serve(#[source] std::io::Error),
}

/// Every route of the API and the web UI, calling `service`, without
/// authentication (every caller acts as the admin).
///
/// Server-sent event streams of a router built here end only when the client
/// goes away; [`serve`] also ends them at shutdown.
pub fn app<S: AppService>(service: Arc<S>) -> Router {
    app_with_auth(service, Auth::disabled())
}

/// [`app`] with callers authenticated by `auth`.
pub fn app_with_auth<S: AppService>(service: Arc<S>, auth: Auth) -> Router {
    routes::router(service, CancellationToken::new(), auth)
}

/// Binds `listen` and serves [`app`] until `shutdown` completes, then stops
/// accepting, ends open event streams and waits for requests in flight.
///
/// # Errors
/// [`ServeError::Bind`] when the address cannot be bound;
/// [`ServeError::Serve`] when serving fails.
pub async fn serve<S: AppService>(
    service: Arc<S>,
    auth: Auth,
    listen: SocketAddr,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    let listener = TcpListener::bind(listen)
        .await
        .map_err(|source| ServeError::Bind {
            addr: listen,
            source,
        })?;
    serve_on(service, auth, listener, shutdown).await
}

/// Like [`serve`], on a listener the caller bound (tests bind `127.0.0.1:0`
/// and read the port from the listener).
///
/// # Errors
/// [`ServeError::Serve`] when serving fails.
pub async fn serve_on<S: AppService>(
    service: Arc<S>,
    auth: Auth,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    let streams_done = CancellationToken::new();
    let router = routes::router(service, streams_done.clone(), auth);
    match listener.local_addr() {
        Ok(addr) => tracing::info!(%addr, "serving the API and the web UI"),
        Err(error) => tracing::warn!(%error, "serving on a listener without a local address"),
    }
    // Graceful shutdown waits for every connection to close, and an event
    // stream never closes by itself: end the streams when shutdown begins.
    let signal = async move {
        shutdown.await;
        streams_done.cancel();
    };
    axum::serve(listener, router)
        .with_graceful_shutdown(signal)
        .await
        .map_err(ServeError::Serve)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::fake::FakeService;
    use plumb_engine::service::AppEvent;

    /// Reads from `response` until one complete SSE event (ending in a blank
    /// line) has arrived, and returns the text of its `data:` lines.
    async fn next_event(response: &mut reqwest::Response, buffer: &mut String) -> String {
        loop {
            if let Some(end) = buffer.find("\n\n") {
                let event: String = buffer.drain(..end + 2).collect();
                let data: Vec<&str> = event
                    .lines()
                    .filter_map(|l| l.strip_prefix("data: "))
                    .collect();
                if data.is_empty() {
                    continue; // a keep-alive comment
                }
                return data.join("\n");
            }
            let chunk = tokio::time::timeout(Duration::from_secs(5), response.chunk())
                .await
                .expect("an event within 5s")
                .expect("read the stream")
                .expect("the stream is still open");
            buffer.push_str(std::str::from_utf8(&chunk).expect("utf-8"));
        }
    }

    #[tokio::test]
    async fn serves_over_tcp_streams_events_and_shuts_down_with_streams_open() {
        let service = Arc::new(FakeService::with_fixtures());
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(serve_on(
            service.clone(),
            Auth::disabled(),
            listener,
            async {
                let _ = stopped.await;
            },
        ));
        let base = format!("http://{addr}");
        let http = reqwest::Client::new();

        let health = http
            .get(format!("{base}/healthz"))
            .send()
            .await
            .expect("healthz");
        assert_eq!(health.status(), 200);
        assert_eq!(health.text().await.expect("body"), "ok");

        let list: serde_json::Value = http
            .get(format!("{base}/api/v1/applications"))
            .send()
            .await
            .expect("list")
            .json()
            .await
            .expect("json");
        assert_eq!(list["items"][0]["metadata"]["name"], "guestbook");

        let mut stream = http
            .get(format!("{base}/api/v1/stream/applications?name=guestbook"))
            .send()
            .await
            .expect("stream");
        assert_eq!(stream.status(), 200);
        assert_eq!(stream.headers()["content-type"], "text/event-stream");
        let mut buffer = String::new();
        let first: serde_json::Value =
            serde_json::from_str(&next_event(&mut stream, &mut buffer).await).expect("json");
        assert_eq!(first["result"]["type"], "ADDED");
        assert_eq!(
            first["result"]["application"]["metadata"]["name"],
            "guestbook"
        );

        // A change to another application is filtered out; one to guestbook arrives.
        let mut shop = service.application("shop");
        shop.status.get_or_insert_default().sync.revision = "ignored".into();
        service.publish(AppEvent {
            type_: "MODIFIED",
            application: shop,
        });
        let mut guestbook = service.application("guestbook");
        guestbook.status.get_or_insert_default().sync.revision = "f".repeat(40);
        service.publish(AppEvent {
            type_: "MODIFIED",
            application: guestbook,
        });
        let second: serde_json::Value =
            serde_json::from_str(&next_event(&mut stream, &mut buffer).await).expect("json");
        assert_eq!(second["result"]["type"], "MODIFIED");
        assert_eq!(
            second["result"]["application"]["status"]["sync"]["revision"],
            "f".repeat(40)
        );

        // Shutdown completes although the event stream is still open.
        stop.send(()).expect("server still running");
        let outcome = tokio::time::timeout(Duration::from_secs(5), server)
            .await
            .expect("shutdown within 5s despite an open event stream")
            .expect("server task");
        assert!(outcome.is_ok(), "{outcome:?}");
    }

    #[tokio::test]
    async fn bind_error_names_the_address() {
        let taken = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = taken.local_addr().expect("addr");
        let error = serve(
            Arc::new(FakeService::with_fixtures()),
            Auth::disabled(),
            addr,
            async {},
        )
        .await
        .expect_err("the address is taken");
        assert!(matches!(error, ServeError::Bind { .. }), "{error:?}");
        assert_eq!(error.to_string(), format!("cannot listen on {addr}"));
        assert!(std::error::Error::source(&error).is_some());
    }
}
