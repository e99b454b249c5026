//! `GET /api/v1/stream/applications`: application changes as server-sent
//! events, each `data: {"result": {"type": "...", "application": {...}}}`
//! like Argo CD's watch stream.
//!
//! As in Argo CD, the stream opens with an `ADDED` event per application, so
//! a client needs no separate list call and misses nothing between the two.
//! A subscriber that falls behind the broadcast is sent every application
//! again as `MODIFIED` instead of being cut off.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::response::sse::{Event, KeepAlive, Sse};
use futures::{Stream, StreamExt, future, stream};
use plumb_engine::service::{AppEvent, AppService};
use serde::{Deserialize, Serialize};
use tokio_stream::wrappers::BroadcastStream;
use tokio_stream::wrappers::errors::BroadcastStreamRecvError;

use crate::error::ApiError;
use crate::routes::AppState;

/// How often an idle stream sends a keep-alive comment, so proxies and
/// browsers do not time it out.
const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// The query of the stream.
#[derive(Deserialize)]
pub(crate) struct StreamQuery {
    /// Only events of the application of this name (`NAMESPACE/NAME`, or
    /// with `appNamespace`).
    name: Option<String>,
    /// The namespace of the application `name` names.
    #[serde(rename = "appNamespace")]
    app_namespace: Option<String>,
}

/// Argo CD's envelope of a watch event.
#[derive(Serialize)]
struct Envelope<'a> {
    result: &'a AppEvent,
}

/// `GET /api/v1/stream/applications[?name=NAME[&appNamespace=NAMESPACE]]`.
pub(crate) async fn applications<S: AppService>(
    State(state): State<AppState<S>>,
    caller: crate::auth::Caller,
    query: Result<Query<StreamQuery>, QueryRejection>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let Query(query) = query?;
    // (namespace if given, name)
    let name = query.name.filter(|n| !n.is_empty()).map(|n| {
        let namespace = query.app_namespace.filter(|ns| !ns.is_empty());
        match n.split_once('/') {
            Some((ns, n)) => (Some(ns.to_string()), n.to_string()),
            None => (namespace, n),
        }
    });
    // Subscribe before listing: a change between the two is sent twice, never lost.
    let receiver = state.service.subscribe();
    let initial = every_application(&*state.service, "ADDED").await;
    let service = Arc::clone(&state.service);
    let app_namespace = state.service.app_namespace();
    let changes = BroadcastStream::new(receiver)
        .then(move |item| {
            let service = Arc::clone(&service);
            async move {
                match item {
                    Ok(event) => vec![event],
                    Err(BroadcastStreamRecvError::Lagged(missed)) => {
                        tracing::debug!(
                            missed,
                            "event stream subscriber lagged; resending every application"
                        );
                        every_application(&*service, "MODIFIED").await
                    }
                }
            }
        })
        .flat_map(stream::iter);
    let events = stream::iter(initial)
        .chain(changes)
        // Only what the caller may see.
        .filter(move |event| {
            future::ready(caller.can(
                "applications",
                "get",
                &crate::auth::app_object(&event.application, &app_namespace),
            ))
        })
        .filter(move |event| {
            future::ready(name.as_ref().is_none_or(|(namespace, n)| {
                let meta = &event.application.metadata;
                meta.name.as_ref() == Some(n)
                    && namespace
                        .as_ref()
                        .is_none_or(|ns| meta.namespace.as_ref() == Some(ns))
            }))
        })
        .filter_map(|event| future::ready(to_sse(&event)))
        .map(Ok)
        .take_until(state.shutdown.clone().cancelled_owned());
    Ok(Sse::new(events).keep_alive(KeepAlive::new().interval(KEEP_ALIVE).text("keep-alive")))
}

/// An event of type `type_` for every application.
async fn every_application<S: AppService>(service: &S, type_: &'static str) -> Vec<AppEvent> {
    service
        .list()
        .await
        .into_iter()
        .map(|application| AppEvent { type_, application })
        .collect()
}

/// The SSE event of an application event; `None` (logged) if it cannot be
/// encoded, which would be a bug in the model's serialization.
fn to_sse(event: &AppEvent) -> Option<Event> {
    match Event::default().json_data(Envelope { result: event }) {
        Ok(sse) => Some(sse),
        Err(error) => {
            tracing::error!(%error, "cannot encode an application event; skipping it");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use axum::body::{Body, BodyDataStream};
    use axum::http::{Request, StatusCode};
    use tower::ServiceExt;

    use super::*;
    use crate::fake::FakeService;

    /// The next data frame of `body` as text, waiting at most 5 s.
    async fn next_text(body: &mut BodyDataStream) -> String {
        let frame = tokio::time::timeout(Duration::from_secs(5), body.next())
            .await
            .expect("a frame within 5s")
            .expect("the stream is open")
            .expect("a data frame");
        String::from_utf8(frame.to_vec()).expect("utf-8")
    }

    fn data(text: &str) -> serde_json::Value {
        let line = text
            .lines()
            .find_map(|l| l.strip_prefix("data: "))
            .expect("a data line");
        serde_json::from_str(line).expect("json")
    }

    #[tokio::test]
    async fn stream_opens_with_every_application_then_follows_changes() {
        let service = Arc::new(FakeService::with_fixtures());
        let app = crate::app(Arc::clone(&service));
        let response = app
            .oneshot(
                Request::get("/api/v1/stream/applications")
                    .body(Body::empty())
                    .expect("request"),
            )
            .await
            .expect("infallible");
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.headers()["content-type"], "text/event-stream");
        let mut body = response.into_body().into_data_stream();
        let first = data(&next_text(&mut body).await);
        assert_eq!(first["result"]["type"], "ADDED");
        assert_eq!(
            first["result"]["application"]["metadata"]["name"],
            "guestbook"
        );
        let second = data(&next_text(&mut body).await);
        assert_eq!(second["result"]["application"]["metadata"]["name"], "shop");

        service.publish(AppEvent {
            type_: "MODIFIED",
            application: service.application("shop"),
        });
        let change = data(&next_text(&mut body).await);
        assert_eq!(change["result"]["type"], "MODIFIED");
        assert_eq!(change["result"]["application"]["metadata"]["name"], "shop");
        assert_eq!(change["result"]["application"]["kind"], "Application");
    }

    #[tokio::test]
    async fn a_lagged_subscriber_gets_every_application_again_and_stays_open() {
        let service = Arc::new(FakeService::with_fixtures());
        let app = crate::app(Arc::clone(&service));
        let response = app
            .oneshot(
                Request::get("/api/v1/stream/applications?name=guestbook")
                    .body(Body::empty())
                    .expect("request"),
            )
            .await
            .expect("infallible");
        let mut body = response.into_body().into_data_stream();
        assert_eq!(data(&next_text(&mut body).await)["result"]["type"], "ADDED");
        // Overflow the broadcast channel before the stream reads again.
        for _ in 0..(FakeService::CHANNEL_CAPACITY + 5) {
            service.publish(AppEvent {
                type_: "DELETED",
                application: service.application("guestbook"),
            });
        }
        let resent = data(&next_text(&mut body).await);
        assert_eq!(resent["result"]["type"], "MODIFIED");
        assert_eq!(
            resent["result"]["application"]["metadata"]["name"],
            "guestbook"
        );
        // The remaining buffered events still arrive.
        assert_eq!(
            data(&next_text(&mut body).await)["result"]["type"],
            "DELETED"
        );
    }

    #[tokio::test]
    async fn stream_ends_at_shutdown() {
        let service = Arc::new(FakeService::with_fixtures());
        let shutdown = tokio_util::sync::CancellationToken::new();
        let app = crate::routes::router(service, shutdown.clone(), crate::Auth::disabled());
        let response = app
            .oneshot(
                Request::get("/api/v1/stream/applications")
                    .body(Body::empty())
                    .expect("request"),
            )
            .await
            .expect("infallible");
        let mut body = response.into_body().into_data_stream();
        next_text(&mut body).await;
        next_text(&mut body).await;
        shutdown.cancel();
        let end = tokio::time::timeout(Duration::from_secs(5), body.next())
            .await
            .expect("ends");
        assert!(end.is_none());
    }
}
