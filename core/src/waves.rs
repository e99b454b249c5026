//! Sync waves: an object's wave (`argocd.argoproj.io/sync-wave`), and the
//! rule a sync operation follows from one wave to the next. Not the plan
//! itself (`plan` groups the steps by wave) and not the running of it (the
//! engine's operation applies a wave, then asks [`next`] again, in the same
//! reconcile or in a later one).
//!
//! Argo CD's rule, kept: waves are applied lowest first; a wave starts when
//! every object of the waves before it is Healthy (an Application object is
//! as healthy as its `status.health` says, and here must also be Synced, so
//! that an app of apps moves on only when the child has deployed); the last
//! wave is not waited for (a sync ends when its last wave is applied, as a
//! sync without waves does). Prunes come after the last wave.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::model::{HealthStatusCode, Manifest, ResourceKey, annotation};
use crate::plan::{SyncPlan, Wave};

/// An object's sync wave; absent means 0.
pub const SYNC_WAVE_ANNOTATION: &str = "argocd.argoproj.io/sync-wave";

/// Marks an object as a sync hook (`PreSync`, `Sync`, `PostSync`,
/// `SyncFail`, `Skip`, ...). Plumb runs no hooks yet and refuses to sync an
/// application that has any.
pub const HOOK_ANNOTATION: &str = "argocd.argoproj.io/hook";

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

/// The [`HOOK_ANNOTATION`] of an object, when it has one.
pub fn hook_of(object: &Value) -> Option<&str> {
    annotation(object, HOOK_ANNOTATION)
}

/// Why a render with sync hooks is not synced: one clause per hook
/// (`Job migrate is a PreSync hook`, the first three), or `None` when it
/// has none. Plumb runs no hooks yet; applying the rest without them would
/// half-apply what the author meant (a migration skipped, a `Skip` object
/// applied), so the whole application waits until they are removed.
pub fn unsupported_hooks(manifests: &[Manifest]) -> Option<String> {
    let hooks: Vec<String> = manifests
        .iter()
        .filter_map(|m| {
            hook_of(&m.object).map(|hook| format!("{} {} is a {hook} hook", m.kind(), m.name()))
        })
        .collect();
    if hooks.is_empty() {
        return None;
    }
    let more = match hooks.len().saturating_sub(NAMED) {
        0 => String::new(),
        n => format!(" (and {n} more)"),
    };
    Some(format!(
        "sync hooks ({HOOK_ANNOTATION}) are not supported yet: {}{more}; nothing is synced until they are removed",
        hooks.into_iter().take(NAMED).collect::<Vec<_>>().join(", ")
    ))
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
    /// Every wave up to and including `wave` was applied.
    Applied {
        /// The last wave applied.
        wave: i64,
    },
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
    /// Every wave is applied: prune, and the sync is done.
    Prune,
}

/// How many objects a waiting message names.
const NAMED: usize = 3;

/// Decides the next step of a sync operation from its plan, how far it got,
/// and the live readiness of the objects of the waves it applied (an
/// object absent from `live` is Missing). `live` is read only when there is
/// a wave to wait for, so a sync of one wave needs none.
pub fn next<'p>(
    plan: &'p SyncPlan,
    progress: Progress,
    live: &BTreeMap<ResourceKey, Readiness>,
) -> Next<'p> {
    let applied = match progress {
        Progress::Start => {
            return plan.waves.first().map_or(Next::Prune, Next::Apply);
        }
        Progress::Applied { wave } => wave,
    };
    let Some(upcoming) = plan.waves.iter().find(|w| w.wave > applied) else {
        return Next::Prune;
    };
    let held: Vec<String> = plan
        .waves
        .iter()
        .take_while(|w| w.wave <= applied)
        .flat_map(|w| w.members.iter())
        .filter_map(|key| {
            let why = match live.get(key) {
                None => Some("is Missing".to_string()),
                Some(r) => r.holds(),
            };
            why.map(|why| format!("{} {} {why}", key.kind, key.name))
        })
        .collect();
    if held.is_empty() {
        return Next::Apply(upcoming);
    }
    let more = match held.len().saturating_sub(NAMED) {
        0 => String::new(),
        n => format!(" (and {n} more)"),
    };
    Next::Wait {
        next: upcoming.wave,
        message: format!(
            "waiting for wave {} to be healthy before wave {}: {}{more}",
            applied,
            upcoming.wave,
            held.into_iter().take(NAMED).collect::<Vec<_>>().join("; ")
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::{Desired, PlanOptions, plan};
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

    #[test]
    fn hook_is_read_from_its_annotation() {
        let hook = json!({"metadata": {"annotations": {HOOK_ANNOTATION: "PreSync"}}});
        assert_eq!(hook_of(&hook), Some("PreSync"));
        assert_eq!(hook_of(&json!({"metadata": {}})), None);
    }

    #[test]
    fn any_hook_refuses_the_whole_render() {
        let manifest = |kind: &str, name: &str, hook: Option<&str>| Manifest {
            object: match hook {
                Some(h) => {
                    json!({"kind": kind, "metadata": {"name": name, "annotations": {HOOK_ANNOTATION: h}}})
                }
                None => json!({"kind": kind, "metadata": {"name": name}}),
            },
            origin: format!("{name}.yaml#0"),
        };
        let plain = [manifest("ConfigMap", "c", None)];
        assert_eq!(unsupported_hooks(&plain), None);
        let with_hooks = [
            manifest("ConfigMap", "c", None),
            manifest("Job", "migrate", Some("PreSync")),
            manifest("Pod", "skipped", Some("Skip")),
        ];
        assert_eq!(
            unsupported_hooks(&with_hooks).as_deref(),
            Some(
                "sync hooks (argocd.argoproj.io/hook) are not supported yet: Job migrate is a PreSync hook, \
                 Pod skipped is a Skip hook; nothing is synced until they are removed"
            )
        );
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
        let applied = |wave| Progress::Applied { wave };
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
        ];
        for (progress, live, expected) in cases {
            let got = match next(&p, progress, &live) {
                Next::Apply(w) => apply(w.wave),
                Next::Wait { next, message } => format!("wait {next}: {message}"),
                Next::Prune => "prune".into(),
            };
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
        let applied = Progress::Applied { wave: 0 };
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
        assert_eq!(
            next(&p, Progress::Applied { wave: 5 }, &BTreeMap::new()),
            Next::Prune
        );
        let empty = SyncPlan::default();
        assert_eq!(next(&empty, Progress::Start, &BTreeMap::new()), Next::Prune);
    }

    #[test]
    fn a_long_wait_names_three_objects() {
        let mut d: Vec<Desired> = ["a", "b", "c", "d", "e"]
            .iter()
            .map(|n| desired("ConfigMap", n, None))
            .collect();
        d.push(desired("ConfigMap", "z", Some("1")));
        let p = plan(&d, &[], &PlanOptions::default()).expect("plan");
        let Next::Wait { message, .. } = next(&p, Progress::Applied { wave: 0 }, &BTreeMap::new())
        else {
            panic!("waits")
        };
        assert!(
            message.ends_with("ConfigMap c is Missing (and 2 more)"),
            "{message}"
        );
    }
}
