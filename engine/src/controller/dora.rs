//! The DORA events of each application, recorded as they happen (a
//! deployment when a sync changed the revision, a failed sync, a change of
//! health), and the metrics computed from them on request
//! (`plumb_core::dora` holds the rules).

use plumb_core::dora::{self, Event};

use super::*;
use crate::service::{DoraReport, NamedDora};

/// Who starts a rollback operation (`initiatedBy.username`).
pub(super) const ROLLBACK_USER: &str = "rollback";

/// Seconds since the epoch of an RFC 3339 time, `now` when it does not
/// parse.
fn seconds(at: &str) -> i64 {
    time::OffsetDateTime::parse(at, &time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| time::OffsetDateTime::now_utc())
        .unix_timestamp()
}

/// The first source's revision of a joined revision (`a,b` with sources).
fn first(revision: &str) -> &str {
    revision.split(',').next().unwrap_or_default()
}

impl Inner {
    /// Records `event` of `name`; a failure is logged (the metrics lose
    /// one event, nothing else does).
    fn record(&self, name: &str, event: &Event) {
        if let Err(e) = self.store.record_event(name, event) {
            tracing::warn!(app = %name, error = %e, "cannot record a DORA event");
        }
    }

    /// A sync succeeded and `entry` is in the history: a deployment when
    /// it changed the revision (`previous`, the one deployed before).
    pub(super) async fn record_deployment(
        &self,
        name: &str,
        spec: &crate::model::ApplicationSpec,
        previous: Option<String>,
        entry: &RevisionHistory,
    ) {
        let revision = entry.joined_revision();
        if previous.as_deref() == Some(revision.as_str()) {
            return;
        }
        // The commits it made live, from the first git source's repository
        // (a chart has no commits: no lead time).
        let git = spec
            .all_sources()
            .into_iter()
            .position(|s| s.chart_name().is_none());
        let changes = match git {
            Some(index) => {
                let url = spec.all_sources()[index].repo_url.clone();
                let new = revision
                    .split(',')
                    .nth(index)
                    .unwrap_or_default()
                    .to_string();
                let old = previous
                    .as_deref()
                    .and_then(|p| p.split(',').nth(index))
                    .map(str::to_string);
                let repos = Arc::clone(&self.repos);
                tokio::task::spawn_blocking(move || repos.changes(&url, old.as_deref(), &new, 500))
                    .await
                    .ok()
                    .and_then(Result::ok)
                    .unwrap_or_default()
            }
            None => crate::source::Changes::default(),
        };
        self.record(
            name,
            &Event::Deployed {
                at: seconds(&entry.deployed_at),
                revision: first(&revision).to_string(),
                commit_times: changes.commit_times,
                rollback: entry.initiated_by.username == ROLLBACK_USER,
                revert: changes.revert,
            },
        );
    }

    /// A sync ended Failed or Error.
    pub(super) fn record_sync_failed(&self, name: &str) {
        self.record(
            name,
            &Event::SyncFailed {
                at: time::OffsetDateTime::now_utc().unix_timestamp(),
            },
        );
    }

    /// The application's health is `health` now: recorded when it is not
    /// what was recorded last (Healthy when nothing was, so a healthy
    /// application costs nothing).
    pub(super) fn record_health(&self, name: &str, health: HealthStatusCode) {
        let now = (
            health == HealthStatusCode::Healthy,
            health == HealthStatusCode::Degraded,
        );
        match self.store.last_health(name) {
            Ok(last) if last == now => {}
            Ok(_) => self.record(
                name,
                &Event::Health {
                    at: time::OffsetDateTime::now_utc().unix_timestamp(),
                    healthy: now.0,
                    degraded: now.1,
                },
            ),
            Err(e) => tracing::warn!(app = %name, error = %e, "cannot read the DORA events"),
        }
    }

    /// The metrics of `apps` (name and project) over the last `window`
    /// seconds, a deployment's failure looked for up to `failure_window`
    /// seconds after it: per application, per project, and in all.
    pub(super) fn dora(
        &self,
        apps: &[(String, String)],
        window: i64,
        failure_window: i64,
    ) -> Result<DoraReport, ServiceError> {
        let to = time::OffsetDateTime::now_utc().unix_timestamp();
        let from = to - window;
        let mut total = dora::Samples::default();
        let mut projects: BTreeMap<&str, dora::Samples> = BTreeMap::new();
        let mut applications = Vec::with_capacity(apps.len());
        for (name, project) in apps {
            let events = self
                .store
                .events(name)
                .map_err(|e| ServiceError::Internal(e.to_string()))?;
            let samples = dora::samples(&events, from, to, failure_window);
            applications.push(NamedDora {
                name: name.clone(),
                project: Some(project.clone()),
                metrics: samples.summary(window),
            });
            projects.entry(project).or_default().merge(samples.clone());
            total.merge(samples);
        }
        let time = |s: i64| {
            time::OffsetDateTime::from_unix_timestamp(s)
                .ok()
                .and_then(|t| {
                    t.format(&time::format_description::well_known::Rfc3339)
                        .ok()
                })
                .unwrap_or_default()
        };
        Ok(DoraReport {
            from: time(from),
            to: time(to),
            total: total.summary(window),
            projects: projects
                .into_iter()
                .map(|(name, samples)| NamedDora {
                    name: name.to_string(),
                    project: None,
                    metrics: samples.summary(window),
                })
                .collect(),
            applications,
        })
    }

    /// The DORA gauges of a scrape: every project, and each application
    /// with something in the window (`--dora-window`); `None` (and a
    /// warning) when the store cannot be read.
    pub(super) fn dora_snapshot(
        &self,
        slots: &[(String, Arc<AppSlot>)],
    ) -> Option<crate::metrics::DoraSnapshot> {
        let apps: Vec<(String, String)> = slots
            .iter()
            .map(|(name, slot)| {
                let project = plumb_core::project::project_of(&slot.declared().app).to_string();
                (name.clone(), project)
            })
            .collect();
        let window = i64::try_from(self.options.dora_window.as_secs()).unwrap_or(i64::MAX);
        let failure_window =
            i64::try_from(self.options.dora_failure_window.as_secs()).unwrap_or(i64::MAX);
        let report = match self.dora(&apps, window, failure_window) {
            Ok(report) => report,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the DORA events for the metrics");
                return None;
            }
        };
        let touched = |d: &dora::Dora| d.deployments > 0 || d.restores > 0 || d.unrestored > 0;
        Some(crate::metrics::DoraSnapshot {
            window_seconds: window,
            projects: report
                .projects
                .into_iter()
                .map(|p| (p.name, p.metrics))
                .collect(),
            apps: report
                .applications
                .into_iter()
                .filter(|a| touched(&a.metrics))
                .map(|a| {
                    let (namespace, short) = self.namespaces.split(&a.name);
                    let labels = crate::metrics::DoraApp {
                        name: short.to_string(),
                        namespace: namespace.to_string(),
                        project: a.project.unwrap_or_default(),
                    };
                    (labels, a.metrics)
                })
                .collect(),
        })
    }
}
