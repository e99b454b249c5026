//! `GET /api/v1/dora`: the DORA metrics of the applications the caller may
//! read, in all, per project and per application.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::routing::get;
use axum::{Json, Router};
use plumb_engine::project::DEFAULT_PROJECT;
use plumb_engine::service::{AppService, DoraReport};
use serde::Deserialize;

use crate::auth::{self, Caller};
use crate::error::ApiError;
use crate::routes::AppState;

/// The DORA route.
pub(crate) fn routes<S: AppService>() -> Router<AppState<S>> {
    Router::new().route("/api/v1/dora", get(report::<S>))
}

/// The query of `GET /api/v1/dora`.
#[derive(Deserialize)]
struct DoraQuery {
    /// One application (`NAME` or `NAMESPACE/NAME`).
    app: Option<String>,
    /// The applications of one project.
    project: Option<String>,
    /// How far back: `30d` (the default), `12h`, `90m`, `3600s` or seconds.
    window: Option<String>,
    /// How long after a deployment a failure counts against it (`1h`).
    #[serde(rename = "failureWindow")]
    failure_window: Option<String>,
}

/// A duration as the query writes it: a number with `d`, `h`, `m` or `s`
/// (seconds without one).
fn parse_duration(name: &str, text: Option<&str>, default: i64) -> Result<i64, ApiError> {
    let Some(text) = text.filter(|t| !t.is_empty()) else {
        return Ok(default);
    };
    let (number, unit) = match text.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => (&text[..i], c),
        _ => (text, 's'),
    };
    let scale = match unit {
        'd' => 86_400,
        'h' => 3_600,
        'm' => 60,
        's' => 1,
        _ => 0,
    };
    match number.parse::<i64>() {
        Ok(n) if n > 0 && scale > 0 => Ok(n.saturating_mul(scale)),
        _ => Err(ApiError::BadRequest(format!(
            "invalid {name} {text:?}: expected a positive duration like 30d, 12h, 90m or 3600s"
        ))),
    }
}

/// `GET /api/v1/dora[?app=&project=&window=30d&failureWindow=1h]`.
async fn report<S: AppService>(
    State(state): State<AppState<S>>,
    caller: Caller,
    query: Result<Query<DoraQuery>, QueryRejection>,
) -> Result<Json<DoraReport>, ApiError> {
    let Query(query) = query?;
    let window = parse_duration("window", query.window.as_deref(), 30 * 86_400)?;
    let failure_window = parse_duration("failureWindow", query.failure_window.as_deref(), 3_600)?;
    let home = state.service.app_namespace();
    let mut apps = Vec::new();
    for name in state.service.names() {
        if query.app.as_ref().is_some_and(|a| *a != name) {
            continue;
        }
        let Some(app) = state.service.document(&name) else {
            continue;
        };
        let project = if app.spec.project.is_empty() {
            DEFAULT_PROJECT.to_string()
        } else {
            app.spec.project.clone()
        };
        if query.project.as_ref().is_some_and(|p| *p != project)
            || !caller.can("applications", "get", &auth::app_object(&app, &home))
        {
            continue;
        }
        apps.push((name, project));
    }
    Ok(Json(state.service.dora(&apps, window, failure_window)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_like_the_window_is_written() {
        assert_eq!(parse_duration("window", None, 7).ok(), Some(7));
        assert_eq!(
            parse_duration("window", Some("30d"), 7).ok(),
            Some(30 * 86_400)
        );
        assert_eq!(
            parse_duration("window", Some("12h"), 7).ok(),
            Some(12 * 3_600)
        );
        assert_eq!(parse_duration("window", Some("90m"), 7).ok(), Some(5_400));
        assert_eq!(parse_duration("window", Some("45"), 7).ok(), Some(45));
        for bad in ["0d", "-1h", "3w", "d", "x1h"] {
            assert!(parse_duration("window", Some(bad), 7).is_err(), "{bad}");
        }
    }
}
