//! Sync waves: an object's wave (`argocd.argoproj.io/sync-wave`), and the
//! rule a sync operation follows from one wave to the next. Not the plan
//! itself (`plan` groups the steps by wave) and not the running of it (the
//! engine's operation applies a wave, then asks [`next`] again, in the same
//! reconcile or in a later one).
//!
//! Argo CD's rule, kept: the PreSync phase, the Sync phase and the PostSync
//! phase follow each other, each by waves, lowest first; a wave starts when
//! every object of the waves before it is Healthy (an Application object is
//! as healthy as its `status.health` says, and here must also be Synced, so
//! that an app of apps moves on only when the child has deployed). Prunes
//! come after the last wave of the Sync phase, without waiting. A hook must
//! complete (be Healthy: a Job Complete, a Pod Succeeded) before the sync
//! goes on or ends, and a failed one (Degraded) fails the sync; the other
//! objects of the last wave are not waited for (a sync ends when its last
//! wave is applied, as a sync without waves does). A failed sync runs its
//! SyncFail hooks as a last phase, and ends once each has completed or
//! failed.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::hooks::SyncPhase;
use crate::model::{HealthStatusCode, ResourceKey, annotation};
use crate::plan::{PruneWave, Step, SyncPlan, Wave};

/// An object's sync wave; absent means 0.
pub const SYNC_WAVE_ANNOTATION: &str = "argocd.argoproj.io/sync-wave";

/// The wave of an object: its [`SYNC_WAVE_ANNOTATION`] as an integer, 0
/// without one.
///
/// # Errors
/// The annotation's text when it is not an integer. (Argo CD falls back to
/// wave 0 there; a typo would then silently reorder a sync.)
pub fn wave_of(object: &Value) -> Result<i64, String> {
    match annotation(object, SYNC_WAVE_ANNOTATION) {
        None => Ok(0),
        Some(text) => text.trim().parse().map_err(|_| text.to_string()),
    }
}

/// What a wave waits for, as the live state shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Readiness {
    /// Its health (objects whose health Plumb cannot assess count as
    /// Healthy, as in the application's health).
    pub health: HealthStatusCode,
    /// The health's message.
    pub message: String,
    /// For an Application object: its `status.sync.status` (empty when it
    /// has none yet).
    pub sync: Option<String>,
    /// Its deletion has begun (it waits on finalizers or, deleted in the
    /// foreground, on its dependents).
    pub deleting: bool,
    /// Its sync wave, as the live object says.
    pub wave: i64,
}

impl Readiness {
    /// Why the object holds the next wave back, or `None` when it does not.
    fn holds(&self) -> Option<String> {
        let health = format!("{:?}", self.health);
        let with_message = |what: String| {
            if self.message.is_empty() {
                what
            } else {
                format!("{what} ({})", self.message)
            }
        };
        if self.health != HealthStatusCode::Healthy {
            return Some(with_message(format!("is {health}")));
        }
        match self.sync.as_deref() {
            Some("Synced") | None => None,
            Some("") => Some("has no sync status yet".to_string()),
            Some(other) => Some(format!("is {other}")),
        }
    }
}

/// How far a sync operation has gone through its waves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Progress {
    /// No wave applied yet.
    Start,
    /// Every wave up to and including this one was applied.
    Applied {
        /// The phase of the last wave applied.
        phase: SyncPhase,
        /// The last wave applied.
        wave: i64,
    },
    /// Every wave of the PreSync and Sync phases was applied, and the
    /// prunes of every wave down to and including this one ran (more, of
    /// lower waves, may be left).
    Pruning {
        /// The last prune wave run.
        wave: i64,
    },
    /// Every wave of the PreSync and Sync phases was applied, and all the
    /// prunes ran (or there were none).
    Pruned,
    /// The sync failed and its SyncFail hooks were created: it ends,
    /// Failed, once each of them has completed or failed.
    Failing,
}

/// What a sync operation does next.
#[derive(Debug, PartialEq)]
pub enum Next<'p> {
    /// Apply this wave now.
    Apply(&'p Wave),
    /// Wait: an object of an applied wave is not ready; compare again when
    /// the live state changes.
    Wait {
        /// The wave that waits.
        next: i64,
        /// What it waits for, for the operation's message.
        message: String,
    },
    /// Every wave of the Sync phase is applied: run the prunes of this wave
    /// (`None`: there are none, go on).
    Prune(Option<&'p PruneWave>),
    /// Everything was applied, and every hook completed: the sync is done.
    Done,
    /// A hook failed: the sync fails (and runs its SyncFail hooks).
    Fail {
        /// Which hook, and what it says.
        message: String,
    },
    /// The SyncFail hooks of a failed sync have all completed or failed:
    /// the sync ends, Failed.
    Failed,
}

/// How many objects a waiting message names.
const NAMED: usize = 3;

/// Decides the next step of a sync operation from its plan, how far it got,
/// and the live readiness of the objects of the waves it applied (an
/// object absent from `live` is Missing). `live` is read only when there is
/// a wave or a hook to wait for, so a sync of one wave without hooks needs
/// none.
pub fn next<'p>(
    plan: &'p SyncPlan,
    progress: Progress,
    live: &BTreeMap<ResourceKey, Readiness>,
) -> Next<'p> {
    let position = match progress {
        Progress::Start => None,
        Progress::Applied { phase, wave } => Some((phase, wave)),
        Progress::Pruning { .. } | Progress::Pruned => Some((SyncPhase::Sync, i64::MAX)),
        Progress::Failing => return after_failure(plan, live),
    };
    // The next prune wave, lower than the last one run.
    let next_prunes = match progress {
        Progress::Pruning { wave } => plan.prunes.iter().find(|p| p.wave < wave),
        Progress::Pruned => None,
        _ => plan.prunes.first(),
    };
    let pruned = match progress {
        Progress::Pruned => true,
        Progress::Pruning { .. } => next_prunes.is_none(),
        Progress::Applied { phase, .. } => phase > SyncPhase::Sync,
        Progress::Start | Progress::Failing => false,
    };
    let applied: Vec<&Wave> = plan
        .waves
        .iter()
        .take_while(|w| position.is_some_and(|p| w.position() <= p))
        .collect();
    // A failed hook fails the sync.
    for key in applied.iter().flat_map(|w| w.hooks.iter()) {
        if let Some(r) = live.get(key)
            && r.health == HealthStatusCode::Degraded
        {
            let why = if r.message.is_empty() {
                String::new()
            } else {
                format!(": {}", r.message)
            };
            return Next::Fail {
                message: format!("hook {} {} failed{why}", key.kind, key.name),
            };
        }
    }
    let upcoming = plan
        .waves
        .iter()
        .find(|w| position.is_none_or(|p| w.position() > p));
    if !pruned && upcoming.is_none_or(|w| w.phase > SyncPhase::Sync) {
        // A lower wave's prunes wait until the objects of the waves above
        // that are being deleted are gone (finalizers, foreground
        // deletion). Read from the live state, not the plan: a plan made
        // again while the operation waits leaves out what is already being
        // deleted.
        if let (Progress::Pruning { wave }, Some(next_prunes)) = (progress, next_prunes) {
            let left: Vec<String> = live
                .iter()
                .filter(|(_, r)| r.deleting && r.wave > next_prunes.wave)
                .map(|(key, _)| format!("{} {} is still there", key.kind, key.name))
                .collect();
            if !left.is_empty() {
                return Next::Wait {
                    next: next_prunes.wave,
                    message: format!(
                        "waiting for the prunes of wave {wave} to be deleted before pruning wave {}: {}",
                        next_prunes.wave,
                        named(left)
                    ),
                };
            }
        }
        return Next::Prune(next_prunes);
    }
    let Some(upcoming) = upcoming else {
        // Nothing left to apply: done once every hook has completed.
        let running = waiting_for(applied.iter().flat_map(|w| w.hooks.iter()), live);
        if running.is_empty() {
            return Next::Done;
        }
        return Next::Wait {
            next: position.map_or(0, |(_, wave)| wave),
            message: format!("waiting for hooks to complete: {}", named(running)),
        };
    };
    let held = waiting_for(applied.iter().flat_map(|w| w.members.iter()), live);
    if held.is_empty() {
        return Next::Apply(upcoming);
    }
    let before = match position {
        _ if matches!(progress, Progress::Pruning { .. } | Progress::Pruned) => {
            "the Sync phase".to_string()
        }
        Some((phase, wave)) if phase == upcoming.phase => format!("wave {wave}"),
        Some((phase, wave)) => format!("{} wave {wave}", phase.as_str()),
        None => "the start".to_string(),
    };
    let after = if Some(upcoming.phase) == position.map(|(p, _)| p) {
        format!("wave {}", upcoming.wave)
    } else {
        format!("{} wave {}", upcoming.phase.as_str(), upcoming.wave)
    };
    Next::Wait {
        next: upcoming.wave,
        message: format!(
            "waiting for {before} to be healthy before {after}: {}",
            named(held)
        ),
    }
}

/// The step of a failed sync whose SyncFail hooks were created: wait
/// while one of them runs (Argo CD keeps the operation running until its
/// SyncFail hooks have completed), end once each has completed or failed
/// (a failed SyncFail hook does not fail the sync twice).
fn after_failure<'p>(plan: &SyncPlan, live: &BTreeMap<ResourceKey, Readiness>) -> Next<'p> {
    use HealthStatusCode::{Degraded, Healthy};
    let running: Vec<String> = plan
        .fail
        .iter()
        .flat_map(|stage| stage.steps.iter())
        .filter_map(|step| match step {
            Step::Hook { key, .. } => Some(key),
            _ => None,
        })
        .filter_map(|key| match live.get(key) {
            Some(r) if matches!(r.health, Healthy | Degraded) => None,
            Some(r) => Some(format!("{} {} is {:?}", key.kind, key.name, r.health)),
            None => Some(format!("{} {} is Missing", key.kind, key.name)),
        })
        .collect();
    if running.is_empty() {
        return Next::Failed;
    }
    Next::Wait {
        next: 0,
        message: format!("waiting for SyncFail hooks to complete: {}", named(running)),
    }
}

/// Why each of `keys` is not ready yet, as `Kind name is ...`.
fn waiting_for<'a>(
    keys: impl Iterator<Item = &'a ResourceKey>,
    live: &BTreeMap<ResourceKey, Readiness>,
) -> Vec<String> {
    keys.filter_map(|key| {
        let why = match live.get(key) {
            None => Some("is Missing".to_string()),
            Some(r) => r.holds(),
        };
        why.map(|why| format!("{} {} {why}", key.kind, key.name))
    })
    .collect()
}

/// The first [`NAMED`] of `items`, and how many more.
fn named(items: Vec<String>) -> String {
    let more = match items.len().saturating_sub(NAMED) {
        0 => String::new(),
        n => format!(" (and {n} more)"),
    };
    format!(
        "{}{more}",
        items.into_iter().take(NAMED).collect::<Vec<_>>().join("; ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::{Desired, Hook, PlanOptions, Tracked, plan, plan_with_hooks};
    use HealthStatusCode::{Degraded, Healthy, Progressing};
    use serde_json::json;

    fn key(kind: &str, name: &str) -> ResourceKey {
        ResourceKey {
            group: String::new(),
            kind: kind.into(),
            namespace: "ns".into(),
            name: name.into(),
        }
    }

    fn desired(kind: &str, name: &str, wave: Option<&str>) -> Desired {
        let annotations = match wave {
            Some(w) => json!({SYNC_WAVE_ANNOTATION: w}),
            None => json!({}),
        };
        Desired {
            key: key(kind, name),
            object: json!({"kind": kind, "metadata": {"name": name, "annotations": annotations}}),
            modified: true,
        }
    }

    fn ready(health: HealthStatusCode, sync: Option<&str>) -> Readiness {
        Readiness {
            health,
            message: String::new(),
            sync: sync.map(Into::into),
            deleting: false,
            wave: 0,
        }
    }

    #[test]
    fn wave_is_the_annotation_as_an_integer_or_zero() {
        let with = |text: &str| json!({"metadata": {"annotations": {SYNC_WAVE_ANNOTATION: text}}});
        let cases = [
            (json!({"metadata": {}}), Ok(0)),
            (with("2"), Ok(2)),
            (with("-1"), Ok(-1)),
            (with(" 3 "), Ok(3)),
            (with("1a"), Err("1a".to_string())),
            (with(""), Err(String::new())),
        ];
        for (object, expected) in cases {
            assert_eq!(wave_of(&object), expected, "{object}");
        }
    }

    /// (progress, live readiness of a/b/c, expected next step)
    #[test]
    fn next_wave_starts_when_every_earlier_object_is_ready() {
        let d = [
            desired("ConfigMap", "a", Some("-1")),
            desired("ConfigMap", "b", None),
            desired("ConfigMap", "c", Some("1")),
        ];
        let p = plan(&d, &[], &PlanOptions::default()).expect("plan");
        assert_eq!(
            p.waves.iter().map(|w| w.wave).collect::<Vec<_>>(),
            [-1, 0, 1]
        );
        let all_healthy: BTreeMap<ResourceKey, Readiness> = ["a", "b", "c"]
            .map(|n| (key("ConfigMap", n), ready(Healthy, None)))
            .into();
        let with = |name: &str, r: Readiness| {
            let mut live = all_healthy.clone();
            live.insert(key("ConfigMap", name), r);
            live
        };
        let without = |name: &str| {
            let mut live = all_healthy.clone();
            live.remove(&key("ConfigMap", name));
            live
        };
        let applied = |wave| Progress::Applied {
            phase: SyncPhase::Sync,
            wave,
        };
        let apply = |wave: i64| format!("apply {wave}");
        let cases: Vec<(Progress, BTreeMap<ResourceKey, Readiness>, String)> = vec![
            (Progress::Start, BTreeMap::new(), apply(-1)),
            (applied(-1), all_healthy.clone(), apply(0)),
            (
                applied(-1),
                with("a", ready(Progressing, None)),
                "wait 0: waiting for wave -1 to be healthy before wave 0: ConfigMap a is Progressing".into(),
            ),
            (
                applied(-1),
                without("a"),
                "wait 0: waiting for wave -1 to be healthy before wave 0: ConfigMap a is Missing".into(),
            ),
            // Only the waves applied count: c (wave 1) is not awaited yet.
            (applied(-1), with("c", ready(Degraded, None)), apply(0)),
            (
                applied(0),
                with("a", ready(Degraded, None)),
                "wait 1: waiting for wave 0 to be healthy before wave 1: ConfigMap a is Degraded".into(),
            ),
            (applied(0), all_healthy.clone(), apply(1)),
            // The last wave is not waited for.
            (applied(1), with("c", ready(Progressing, None)), "prune".into()),
            (Progress::Pruned, with("c", ready(Progressing, None)), "done".into()),
        ];
        for (progress, live, expected) in cases {
            let got = describe(next(&p, progress, &live));
            assert_eq!(got, expected, "{progress:?}");
        }
    }

    #[test]
    fn a_child_application_must_also_be_synced() {
        let d = [
            desired("Application", "child-a", None),
            desired("Application", "child-b", Some("1")),
        ];
        let p = plan(&d, &[], &PlanOptions::default()).expect("plan");
        let at = |r: Readiness| -> BTreeMap<ResourceKey, Readiness> {
            [(key("Application", "child-a"), r)].into()
        };
        let applied = Progress::Applied {
            phase: SyncPhase::Sync,
            wave: 0,
        };
        let message = |r: Readiness| match next(&p, applied, &at(r)) {
            Next::Wait { message, .. } => message,
            other => format!("{other:?}"),
        };
        let cases = [
            (
                ready(Healthy, Some("OutOfSync")),
                "Application child-a is OutOfSync",
            ),
            (
                ready(Healthy, Some("")),
                "Application child-a has no sync status yet",
            ),
            (
                Readiness {
                    message: "Waiting for rollout".into(),
                    ..ready(Progressing, Some("Synced"))
                },
                "Application child-a is Progressing (Waiting for rollout)",
            ),
        ];
        for (r, expected) in cases {
            let got = message(r);
            assert!(got.ends_with(expected), "{got}");
        }
        assert!(matches!(
            next(&p, applied, &at(ready(Healthy, Some("Synced")))),
            Next::Apply(w) if w.wave == 1
        ));
    }

    #[test]
    fn one_wave_never_waits() {
        let d = [desired("ConfigMap", "a", Some("5"))];
        let p = plan(&d, &[], &PlanOptions::default()).expect("plan");
        assert!(
            matches!(next(&p, Progress::Start, &BTreeMap::new()), Next::Apply(w) if w.wave == 5)
        );
        let applied = Progress::Applied {
            phase: SyncPhase::Sync,
            wave: 5,
        };
        assert_eq!(next(&p, applied, &BTreeMap::new()), Next::Prune(None));
        assert_eq!(next(&p, Progress::Pruned, &BTreeMap::new()), Next::Done);
        let empty = SyncPlan::default();
        assert_eq!(
            next(&empty, Progress::Start, &BTreeMap::new()),
            Next::Prune(None)
        );
        assert_eq!(next(&empty, Progress::Pruned, &BTreeMap::new()), Next::Done);
    }

    /// Prunes go wave by wave, highest first; a lower wave's prunes wait
    /// until the objects of higher waves being deleted are gone, the last
    /// wave's are not waited for.
    #[test]
    fn prunes_go_wave_by_wave_waiting_for_deletions() {
        let gone = |name: &str, wave: i64| Tracked {
            key: key("ConfigMap", name),
            api_version: "v1".into(),
            sync_options: None,
            uid: format!("uid-{name}"),
            wave,
        };
        let options = PlanOptions {
            prune: true,
            ..Default::default()
        };
        let d = [desired("ConfigMap", "kept", None)];
        let p = plan(&d, &[gone("late", 3), gone("early", -1)], &options).expect("plan");
        let applied = Progress::Applied {
            phase: SyncPhase::Sync,
            wave: 0,
        };
        let none = BTreeMap::new();
        assert_eq!(describe(next(&p, applied, &none)), "prune 3");
        let deleting = |wave| Readiness {
            deleting: true,
            wave,
            ..ready(Progressing, None)
        };
        let still = BTreeMap::from([(key("ConfigMap", "late"), deleting(3))]);
        assert_eq!(
            describe(next(&p, Progress::Pruning { wave: 3 }, &still)),
            "wait -1: waiting for the prunes of wave 3 to be deleted before pruning wave -1: ConfigMap late is still there"
        );
        assert_eq!(
            describe(next(&p, Progress::Pruning { wave: 3 }, &none)),
            "prune -1"
        );
        // Only a deletion above the next prune wave holds it.
        let below = BTreeMap::from([(key("ConfigMap", "other"), deleting(-1))]);
        assert_eq!(
            describe(next(&p, Progress::Pruning { wave: 3 }, &below)),
            "prune -1"
        );
        // After the last prune wave: done, its deletions not waited for.
        let early = BTreeMap::from([(key("ConfigMap", "early"), deleting(-1))]);
        assert_eq!(
            describe(next(&p, Progress::Pruning { wave: -1 }, &early)),
            "done"
        );
    }

    #[test]
    fn a_long_wait_names_three_objects() {
        let mut d: Vec<Desired> = ["a", "b", "c", "d", "e"]
            .iter()
            .map(|n| desired("ConfigMap", n, None))
            .collect();
        d.push(desired("ConfigMap", "z", Some("1")));
        let p = plan(&d, &[], &PlanOptions::default()).expect("plan");
        let applied = Progress::Applied {
            phase: SyncPhase::Sync,
            wave: 0,
        };
        let Next::Wait { message, .. } = next(&p, applied, &BTreeMap::new()) else {
            panic!("waits")
        };
        assert!(
            message.ends_with("ConfigMap c is Missing (and 2 more)"),
            "{message}"
        );
    }

    fn describe(n: Next<'_>) -> String {
        match n {
            Next::Apply(w) if w.phase == SyncPhase::Sync => format!("apply {}", w.wave),
            Next::Apply(w) => format!("apply {} {}", w.phase.as_str(), w.wave),
            Next::Wait { next, message } => format!("wait {next}: {message}"),
            Next::Prune(None) => "prune".into(),
            Next::Prune(Some(p)) => format!("prune {}", p.wave),
            Next::Done => "done".into(),
            Next::Fail { message } => format!("fail: {message}"),
            Next::Failed => "failed".into(),
        }
    }

    fn hook(kind: &str, name: &str, phase: SyncPhase, wave: i64) -> Hook {
        Hook {
            key: key(kind, name),
            object: json!({"kind": kind, "metadata": {"name": name}}),
            phase,
            wave,
            recreate: true,
            delete_succeeded: false,
            delete_failed: false,
        }
    }

    /// PreSync hooks, then the objects, the prunes, then PostSync hooks:
    /// each hook must complete before the sync goes on or ends, and a
    /// failed one fails it. (progress, live, expected)
    #[test]
    fn hooks_run_in_their_phase_and_must_complete() {
        let d = [desired("Deployment", "web", None)];
        let hooks = [
            hook("Job", "migrate", SyncPhase::PreSync, 0),
            hook("Job", "smoke", SyncPhase::PostSync, 0),
            hook("Pod", "page", SyncPhase::SyncFail, 0),
        ];
        let p = plan_with_hooks(&d, &hooks, &[], &PlanOptions::default()).expect("plan");
        assert_eq!(
            p.waves.iter().map(|w| w.position()).collect::<Vec<_>>(),
            [
                (SyncPhase::PreSync, 0),
                (SyncPhase::Sync, 0),
                (SyncPhase::PostSync, 0)
            ]
        );
        assert_eq!(p.fail.as_ref().map(|s| s.steps.len()), Some(1));
        let at = |items: &[(&str, &str, Readiness)]| -> BTreeMap<ResourceKey, Readiness> {
            items
                .iter()
                .map(|(kind, name, r)| (key(kind, name), r.clone()))
                .collect()
        };
        let applied = |phase, wave| Progress::Applied { phase, wave };
        let migrate_running = ready(Progressing, None);
        let cases: Vec<(Progress, BTreeMap<ResourceKey, Readiness>, &str)> = vec![
            (Progress::Start, at(&[]), "apply PreSync 0"),
            (
                applied(SyncPhase::PreSync, 0),
                at(&[("Job", "migrate", migrate_running)]),
                "wait 0: waiting for PreSync wave 0 to be healthy before Sync wave 0: Job migrate is Progressing",
            ),
            (
                applied(SyncPhase::PreSync, 0),
                at(&[(
                    "Job",
                    "migrate",
                    Readiness {
                        message: "BackoffLimitExceeded".into(),
                        ..ready(Degraded, None)
                    },
                )]),
                "fail: hook Job migrate failed: BackoffLimitExceeded",
            ),
            (
                applied(SyncPhase::PreSync, 0),
                at(&[("Job", "migrate", ready(Healthy, None))]),
                "apply 0",
            ),
            // The prunes come before PostSync, without waiting.
            (
                applied(SyncPhase::Sync, 0),
                at(&[("Job", "migrate", ready(Healthy, None))]),
                "prune",
            ),
            // PostSync waits for the Sync phase to be healthy.
            (
                Progress::Pruned,
                at(&[
                    ("Job", "migrate", ready(Healthy, None)),
                    ("Deployment", "web", ready(Progressing, None)),
                ]),
                "wait 0: waiting for the Sync phase to be healthy before PostSync wave 0: Deployment web is Progressing",
            ),
            (
                Progress::Pruned,
                at(&[
                    ("Job", "migrate", ready(Healthy, None)),
                    ("Deployment", "web", ready(Healthy, None)),
                ]),
                "apply PostSync 0",
            ),
            // The last hook is waited for, not the last objects.
            (
                applied(SyncPhase::PostSync, 0),
                at(&[
                    ("Job", "migrate", ready(Healthy, None)),
                    ("Deployment", "web", ready(Healthy, None)),
                ]),
                "wait 0: waiting for hooks to complete: Job smoke is Missing",
            ),
            (
                applied(SyncPhase::PostSync, 0),
                at(&[
                    ("Job", "migrate", ready(Healthy, None)),
                    ("Job", "smoke", ready(Healthy, None)),
                ]),
                "done",
            ),
        ];
        for (progress, live, expected) in cases {
            assert_eq!(
                describe(next(&p, progress, &live)),
                expected,
                "{progress:?}"
            );
        }
    }

    /// A failed sync whose SyncFail hooks were created ends once each has
    /// completed or failed, whatever the hook that failed it says; a hook
    /// not created by this sync (absent here) is waited for.
    #[test]
    fn a_failed_sync_ends_once_its_syncfail_hooks_have_ended() {
        let d = [desired("Deployment", "web", None)];
        let hooks = [
            hook("Job", "migrate", SyncPhase::PreSync, 0),
            hook("Job", "notify", SyncPhase::SyncFail, 0),
            hook("ConfigMap", "page", SyncPhase::SyncFail, 1),
        ];
        let p = plan_with_hooks(&d, &hooks, &[], &PlanOptions::default()).expect("plan");
        let with = |notify: Option<Readiness>| {
            let mut live: BTreeMap<ResourceKey, Readiness> = [
                (key("Job", "migrate"), ready(Degraded, None)),
                (key("ConfigMap", "page"), ready(Healthy, None)),
            ]
            .into();
            if let Some(r) = notify {
                live.insert(key("Job", "notify"), r);
            }
            live
        };
        let cases = [
            (
                with(None),
                "wait 0: waiting for SyncFail hooks to complete: Job notify is Missing",
            ),
            (
                with(Some(ready(Progressing, None))),
                "wait 0: waiting for SyncFail hooks to complete: Job notify is Progressing",
            ),
            (with(Some(ready(Healthy, None))), "failed"),
            (with(Some(ready(Degraded, None))), "failed"),
        ];
        for (live, expected) in cases {
            assert_eq!(
                describe(next(&p, Progress::Failing, &live)),
                expected,
                "{live:?}"
            );
        }
        // The failure that started it was seen before.
        let applied = Progress::Applied {
            phase: SyncPhase::PreSync,
            wave: 0,
        };
        assert_eq!(
            describe(next(&p, applied, &with(None))),
            "fail: hook Job migrate failed"
        );
    }
}
