//! The four DORA metrics of one application, computed from what happened to
//! it: deployments (with the commit times they made live), failed syncs and
//! health changes. Pure: the engine records the events and the clock.
//!
//! Definitions (times are Unix seconds):
//!
//! - a **deployment** is a successful sync that changed the deployed
//!   revision (a rollback is one too);
//! - **deployment frequency** is deployments in the window per day;
//! - **lead time for changes** is, for every commit a deployment made
//!   live, the time from the commit to the end of that sync;
//! - a deployment **failed** when, within the failure window after it and
//!   before the next deployment, a sync failed or health became Degraded,
//!   or when the next deployment is a rollback or a revert commit (however
//!   late it comes); **change failure rate** is failed deployments over
//!   deployments;
//! - **time to restore** runs from the first sign of a failure to the next
//!   deployment after it once the application is Healthy (at that
//!   deployment if it already is, else when it becomes so).

use serde::{Deserialize, Serialize};

/// One thing that happened to an application.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum Event {
    /// A successful sync that changed the deployed revision.
    #[serde(rename_all = "camelCase")]
    Deployed {
        /// When the sync finished.
        at: i64,
        /// The revision made live.
        revision: String,
        /// The commit times of the changes it made live (the commits since
        /// the revision deployed before, or the deployed commit alone).
        commit_times: Vec<i64>,
        /// Started as a rollback to an earlier revision.
        rollback: bool,
        /// Its commit reverts an earlier one (`Revert "..."`, `git revert`'s
        /// message).
        revert: bool,
    },
    /// A sync operation ended Failed or Error.
    #[serde(rename_all = "camelCase")]
    SyncFailed {
        /// When it ended.
        at: i64,
    },
    /// The application's health changed.
    #[serde(rename_all = "camelCase")]
    Health {
        /// When it was seen.
        at: i64,
        /// Whether it is Healthy now.
        healthy: bool,
        /// Whether it is Degraded now.
        degraded: bool,
    },
}

impl Event {
    /// When it happened.
    pub fn at(&self) -> i64 {
        match self {
            Event::Deployed { at, .. } | Event::SyncFailed { at } | Event::Health { at, .. } => *at,
        }
    }
}

/// Whether a commit message is a revert, as `git revert` writes it.
pub fn is_revert_message(message: &str) -> bool {
    let first = message.lines().next().unwrap_or_default().trim();
    first.starts_with("Revert \"") || first.starts_with("Revert '") || first.starts_with("revert:")
}

/// The raw figures of one or more applications over a window, before
/// they are summarized; [`Samples::merge`] adds applications up (a
/// project's figures).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Samples {
    /// Deployments in the window.
    pub deployments: usize,
    /// Those that failed.
    pub failed: usize,
    /// Every lead time in the window, seconds.
    pub lead_times: Vec<i64>,
    /// Every time to restore of a failure that began in the window and was
    /// restored, seconds.
    pub restores: Vec<i64>,
    /// Failures in the window not restored yet.
    pub unrestored: usize,
}

impl Samples {
    /// Adds `other`'s figures to these.
    pub fn merge(&mut self, other: Samples) {
        self.deployments += other.deployments;
        self.failed += other.failed;
        self.lead_times.extend(other.lead_times);
        self.restores.extend(other.restores);
        self.unrestored += other.unrestored;
    }

    /// The metrics over a window of `window_seconds`.
    pub fn summary(&self, window_seconds: i64) -> Dora {
        let days = window_seconds.max(1) as f64 / 86_400.0;
        Dora {
            deployments: self.deployments,
            deployments_per_day: self.deployments as f64 / days,
            lead_time_seconds: median(&self.lead_times),
            change_failure_rate: (self.deployments > 0)
                .then(|| self.failed as f64 / self.deployments as f64),
            failed_deployments: self.failed,
            time_to_restore_seconds: median(&self.restores),
            restores: self.restores.len(),
            unrestored: self.unrestored,
        }
    }
}

/// The DORA metrics of a window, as the API serves them.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Dora {
    /// Deployments in the window.
    pub deployments: usize,
    /// Deployment frequency.
    pub deployments_per_day: f64,
    /// The median lead time for changes; `None` without deployments.
    pub lead_time_seconds: Option<f64>,
    /// Failed deployments over deployments; `None` without deployments.
    pub change_failure_rate: Option<f64>,
    /// Deployments that failed.
    pub failed_deployments: usize,
    /// The median time to restore; `None` when nothing was restored.
    pub time_to_restore_seconds: Option<f64>,
    /// Failures restored.
    pub restores: usize,
    /// Failures not restored yet.
    pub unrestored: usize,
}

/// The median of `values`, `None` when there are none.
fn median(values: &[i64]) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    let mut sorted = values.to_vec();
    sorted.sort_unstable();
    let mid = sorted.len() / 2;
    Some(if sorted.len().is_multiple_of(2) {
        (sorted[mid - 1] + sorted[mid]) as f64 / 2.0
    } else {
        sorted[mid] as f64
    })
}

/// The figures of one application's `events` (in any order) for the window
/// `[from, to]`; a deployment's failure is looked for up to
/// `failure_window` seconds after it.
pub fn samples(events: &[Event], from: i64, to: i64, failure_window: i64) -> Samples {
    let mut events: Vec<&Event> = events.iter().collect();
    events.sort_by_key(|e| e.at());
    let deployments: Vec<(usize, &Event)> = events
        .iter()
        .enumerate()
        .filter(|(_, e)| matches!(e, Event::Deployed { .. }))
        .map(|(i, e)| (i, *e))
        .collect();
    let in_window = |at: i64| at >= from && at <= to;
    let mut out = Samples::default();
    for (n, (index, deployment)) in deployments.iter().enumerate() {
        let Event::Deployed {
            at, commit_times, ..
        } = deployment
        else {
            continue;
        };
        let next = deployments.get(n + 1).map(|(i, e)| (*i, *e));
        if in_window(*at) {
            out.deployments += 1;
            out.lead_times
                .extend(commit_times.iter().map(|c| (at - c).max(0)));
        }
        let Some(failed_at) = failure_after(&events, *index, *at, next, failure_window) else {
            continue;
        };
        if in_window(*at) {
            out.failed += 1;
        }
        if in_window(failed_at) {
            match restored_at(&events, failed_at) {
                Some(restored) => out.restores.push(restored - failed_at),
                None => out.unrestored += 1,
            }
        }
    }
    out
}

/// When the deployment at `events[index]` (finished `at`) showed its first
/// sign of failure, if it did: a failed sync or Degraded health within
/// `failure_window` and before the next deployment, or the next deployment
/// being a rollback or a revert.
fn failure_after(
    events: &[&Event],
    index: usize,
    at: i64,
    next: Option<(usize, &Event)>,
    failure_window: i64,
) -> Option<i64> {
    let end = next.map_or(events.len(), |(i, _)| i);
    let within = events[index + 1..end]
        .iter()
        .take_while(|e| e.at() <= at + failure_window)
        .find(|e| {
            matches!(
                e,
                Event::SyncFailed { .. } | Event::Health { degraded: true, .. }
            )
        })
        .map(|e| e.at());
    let undone = match next {
        Some((
            _,
            Event::Deployed {
                at,
                rollback,
                revert,
                ..
            },
        )) if *rollback || *revert => Some(*at),
        _ => None,
    };
    within.or(undone)
}

/// When the application was restored after a failure at `failed_at`: the
/// first deployment after it (a rollback or revert counts) once the
/// application is Healthy.
fn restored_at(events: &[&Event], failed_at: i64) -> Option<i64> {
    let mut healthy = events
        .iter()
        .take_while(|e| e.at() <= failed_at)
        .filter_map(|e| match e {
            Event::Health { healthy, .. } => Some(*healthy),
            _ => None,
        })
        .last()
        .unwrap_or(true);
    let mut deployed = false;
    for e in events.iter().filter(|e| e.at() >= failed_at) {
        match e {
            Event::Health { healthy: h, .. } => healthy = *h,
            Event::Deployed { .. } => deployed = true,
            Event::SyncFailed { .. } => {}
        }
        if deployed && healthy {
            return Some(e.at());
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: i64 = 3600;
    const DAY: i64 = 24 * HOUR;

    fn deployed(at: i64, commits: &[i64]) -> Event {
        Event::Deployed {
            at,
            revision: format!("r{at}"),
            commit_times: commits.to_vec(),
            rollback: false,
            revert: false,
        }
    }

    fn health(at: i64, healthy: bool) -> Event {
        Event::Health {
            at,
            healthy,
            degraded: !healthy,
        }
    }

    #[test]
    fn frequency_and_lead_time_of_clean_deployments() {
        let events = [
            deployed(DAY, &[DAY - HOUR]),
            deployed(2 * DAY, &[2 * DAY - 3 * HOUR, 2 * DAY - HOUR]),
            deployed(3 * DAY, &[3 * DAY - 2 * HOUR]),
        ];
        let dora = samples(&events, 0, 10 * DAY, HOUR).summary(10 * DAY);
        assert_eq!(dora.deployments, 3);
        assert!((dora.deployments_per_day - 0.3).abs() < 1e-9);
        // Lead times 1h, 3h, 1h, 2h: the median is 1.5h.
        assert_eq!(dora.lead_time_seconds, Some(1.5 * HOUR as f64));
        assert_eq!(dora.change_failure_rate, Some(0.0));
        assert_eq!(dora.time_to_restore_seconds, None);
    }

    #[test]
    fn a_failed_sync_fails_the_deployment_until_the_next_healthy_deployment() {
        let events = [
            deployed(DAY, &[DAY - HOUR]),
            Event::SyncFailed { at: DAY + 600 },
            deployed(DAY + 3 * HOUR, &[DAY + 2 * HOUR]),
        ];
        let dora = samples(&events, 0, 10 * DAY, HOUR).summary(10 * DAY);
        assert_eq!((dora.deployments, dora.failed_deployments), (2, 1));
        assert_eq!(dora.change_failure_rate, Some(0.5));
        // Healthy all along: restored by the next deployment.
        assert_eq!(dora.time_to_restore_seconds, Some((3 * HOUR - 600) as f64));
    }

    #[test]
    fn degraded_health_fails_and_restoring_waits_for_healthy() {
        let events = [
            health(0, true),
            deployed(DAY, &[DAY - HOUR]),
            health(DAY + 60, false),
            deployed(DAY + HOUR, &[DAY + 1800]),
            health(DAY + HOUR + 300, true),
        ];
        let dora = samples(&events, 0, 10 * DAY, HOUR).summary(10 * DAY);
        assert_eq!(dora.failed_deployments, 1);
        assert_eq!(dora.time_to_restore_seconds, Some((HOUR + 300 - 60) as f64));
        // Degraded later than the failure window: not this deployment's.
        let late = [
            deployed(DAY, &[]),
            health(DAY + 2 * HOUR, false),
            deployed(DAY + 3 * HOUR, &[]),
        ];
        assert_eq!(samples(&late, 0, 10 * DAY, HOUR).failed, 0);
    }

    #[test]
    fn a_rollback_or_a_revert_marks_the_deployment_before_it_failed() {
        for (rollback, revert) in [(true, false), (false, true)] {
            let events = [
                deployed(DAY, &[DAY - HOUR]),
                Event::Deployed {
                    at: 2 * DAY,
                    revision: "back".into(),
                    commit_times: vec![2 * DAY - 600],
                    rollback,
                    revert,
                },
            ];
            let s = samples(&events, 0, 10 * DAY, HOUR);
            assert_eq!((s.deployments, s.failed), (2, 1));
            // The rollback is itself the restoring deployment.
            assert_eq!(s.restores, vec![0]);
        }
    }

    #[test]
    fn a_failure_not_restored_yet_is_counted_apart() {
        let events = [deployed(DAY, &[]), health(DAY + 60, false)];
        let s = samples(&events, 0, 10 * DAY, HOUR);
        assert_eq!((s.failed, s.unrestored, s.restores.len()), (1, 1, 0));
    }

    #[test]
    fn only_the_window_counts_and_applications_add_up() {
        let a = [
            deployed(DAY, &[DAY - HOUR]),
            deployed(5 * DAY, &[5 * DAY - HOUR]),
        ];
        let b = [deployed(6 * DAY, &[6 * DAY - 3 * HOUR])];
        let mut project = samples(&a, 4 * DAY, 7 * DAY, HOUR);
        assert_eq!(project.deployments, 1);
        project.merge(samples(&b, 4 * DAY, 7 * DAY, HOUR));
        let dora = project.summary(3 * DAY);
        assert_eq!(dora.deployments, 2);
        assert_eq!(dora.lead_time_seconds, Some(2.0 * HOUR as f64));
        assert_eq!(
            samples(&[], 0, DAY, HOUR).summary(DAY).change_failure_rate,
            None
        );
    }

    #[test]
    fn revert_messages_are_git_s() {
        assert!(is_revert_message(
            "Revert \"Deploy v2\"\n\nThis reverts commit abc."
        ));
        assert!(!is_revert_message("Deploy v2"));
        assert!(!is_revert_message("Reverted nothing"));
    }
}
