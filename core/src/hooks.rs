//! Sync hooks: objects applied at a moment of the sync rather than kept in
//! sync (`argocd.argoproj.io/hook`), and Helm's hooks as Argo CD maps them
//! (`helm.sh/hook`). Which phase a hook runs in, its wave, what deletes it
//! afterwards, and the name of a `generateName` hook. The plan places hooks
//! in its waves ([`crate::plan::plan_with_hooks`]); [`crate::waves::next`]
//! waits for them and fails the sync when one fails.

use serde_json::Value;

use crate::model::{Manifest, annotation};
use crate::waves::{SYNC_WAVE_ANNOTATION, wave_of};

/// Marks an object as a sync hook: `PreSync`, `Sync`, `PostSync`,
/// `SyncFail` or `Skip`, several separated by commas.
pub const HOOK_ANNOTATION: &str = "argocd.argoproj.io/hook";
/// When a hook is deleted: `BeforeHookCreation` (the default),
/// `HookSucceeded`, `HookFailed`, several separated by commas.
pub const HOOK_DELETE_POLICY_ANNOTATION: &str = "argocd.argoproj.io/hook-delete-policy";
/// Helm's hook annotation (`pre-install`, `post-upgrade`, ...).
pub const HELM_HOOK_ANNOTATION: &str = "helm.sh/hook";
/// Helm's hook order, used as the wave when there is no sync-wave.
pub const HELM_HOOK_WEIGHT_ANNOTATION: &str = "helm.sh/hook-weight";
/// Helm's hook delete policy (`before-hook-creation`, `hook-succeeded`,
/// `hook-failed`).
pub const HELM_HOOK_DELETE_POLICY_ANNOTATION: &str = "helm.sh/hook-delete-policy";

/// The phases of a sync, in order. A failed sync runs its `SyncFail`
/// hooks instead of what is left.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SyncPhase {
    /// Before anything is applied (a database migration, say).
    PreSync,
    /// With the application's objects.
    Sync,
    /// Once every object of the sync is Healthy (a smoke test).
    PostSync,
    /// Only when the sync failed.
    SyncFail,
}

impl SyncPhase {
    /// Argo CD's name of the phase.
    pub fn as_str(self) -> &'static str {
        match self {
            SyncPhase::PreSync => "PreSync",
            SyncPhase::Sync => "Sync",
            SyncPhase::PostSync => "PostSync",
            SyncPhase::SyncFail => "SyncFail",
        }
    }
}

/// What deletes a hook object.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum DeletePolicy {
    /// The object of the same name is deleted before the hook is created
    /// again (the default).
    BeforeHookCreation,
    /// Deleted once it succeeded.
    HookSucceeded,
    /// Deleted once it failed.
    HookFailed,
}

/// An object's hook annotations, read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HookSpec {
    /// The phases it runs in (empty: `Skip`, never applied).
    pub phases: Vec<SyncPhase>,
    /// Its wave within each phase.
    pub wave: i64,
    /// What deletes it.
    pub delete: Vec<DeletePolicy>,
}

/// Reads an object's hook annotations: `None` when it is not a hook. Argo
/// CD's annotation wins over Helm's. Helm's `pre-install`/`pre-upgrade`
/// run in PreSync and `post-install`/`post-upgrade` in PostSync, as Argo CD
/// maps them; its other hooks (`pre-delete`, `test`, ...) are never run:
/// such an object is skipped, as Argo CD skips it.
///
/// # Errors
/// A sentence naming what is wrong: an unknown hook type or delete policy,
/// or a wave or hook weight that is not an integer.
pub fn hook_spec(object: &Value) -> Result<Option<HookSpec>, String> {
    let list = |text: &str| -> Vec<String> {
        text.split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect()
    };
    if let Some(text) = annotation(object, HOOK_ANNOTATION) {
        let mut phases = Vec::new();
        let mut skip = false;
        for t in list(text) {
            match t.as_str() {
                "PreSync" => phases.push(SyncPhase::PreSync),
                "Sync" => phases.push(SyncPhase::Sync),
                "PostSync" => phases.push(SyncPhase::PostSync),
                "SyncFail" => phases.push(SyncPhase::SyncFail),
                "Skip" => skip = true,
                other => {
                    return Err(format!(
                        "{HOOK_ANNOTATION} {other:?} is not a hook type (PreSync, Sync, PostSync, SyncFail, Skip)"
                    ));
                }
            }
        }
        if phases.is_empty() && !skip {
            return Err(format!("{HOOK_ANNOTATION} is empty"));
        }
        if skip {
            phases.clear();
        }
        let wave = wave_of(object)
            .map_err(|t| format!("{SYNC_WAVE_ANNOTATION} {t:?} is not an integer"))?;
        let mut delete = Vec::new();
        for p in annotation(object, HOOK_DELETE_POLICY_ANNOTATION)
            .map(list)
            .unwrap_or_default()
        {
            delete.push(match p.as_str() {
                "BeforeHookCreation" => DeletePolicy::BeforeHookCreation,
                "HookSucceeded" => DeletePolicy::HookSucceeded,
                "HookFailed" => DeletePolicy::HookFailed,
                other => {
                    return Err(format!(
                        "{HOOK_DELETE_POLICY_ANNOTATION} {other:?} is not a delete policy (BeforeHookCreation, HookSucceeded, HookFailed)"
                    ));
                }
            });
        }
        return Ok(Some(finish(phases, wave, delete)));
    }
    let Some(text) = annotation(object, HELM_HOOK_ANNOTATION) else {
        return Ok(None);
    };
    let mut phases = Vec::new();
    for t in list(text) {
        let phase = match t.as_str() {
            "pre-install" | "pre-upgrade" => SyncPhase::PreSync,
            "post-install" | "post-upgrade" => SyncPhase::PostSync,
            // Never run by a sync (crd-install is Helm 2's and long gone).
            "pre-delete" | "post-delete" | "pre-rollback" | "post-rollback" | "test"
            | "test-success" | "test-failure" | "crd-install" => continue,
            other => {
                return Err(format!(
                    "{HELM_HOOK_ANNOTATION} {other:?} is not a Helm hook"
                ));
            }
        };
        if !phases.contains(&phase) {
            phases.push(phase);
        }
    }
    let wave = match annotation(object, SYNC_WAVE_ANNOTATION) {
        Some(_) => wave_of(object)
            .map_err(|t| format!("{SYNC_WAVE_ANNOTATION} {t:?} is not an integer"))?,
        None => match annotation(object, HELM_HOOK_WEIGHT_ANNOTATION) {
            None => 0,
            Some(w) => w
                .trim()
                .parse()
                .map_err(|_| format!("{HELM_HOOK_WEIGHT_ANNOTATION} {w:?} is not an integer"))?,
        },
    };
    let mut delete = Vec::new();
    for p in annotation(object, HELM_HOOK_DELETE_POLICY_ANNOTATION)
        .map(list)
        .unwrap_or_default()
    {
        delete.push(match p.as_str() {
            "before-hook-creation" => DeletePolicy::BeforeHookCreation,
            "hook-succeeded" => DeletePolicy::HookSucceeded,
            "hook-failed" => DeletePolicy::HookFailed,
            other => {
                return Err(format!(
                    "{HELM_HOOK_DELETE_POLICY_ANNOTATION} {other:?} is not a Helm delete policy"
                ));
            }
        });
    }
    Ok(Some(finish(phases, wave, delete)))
}

fn finish(phases: Vec<SyncPhase>, wave: i64, mut delete: Vec<DeletePolicy>) -> HookSpec {
    if delete.is_empty() {
        delete.push(DeletePolicy::BeforeHookCreation);
    }
    delete.sort();
    delete.dedup();
    HookSpec {
        phases,
        wave,
        delete,
    }
}

/// A rendered object that is a hook, with its annotations read.
#[derive(Clone, Debug, PartialEq)]
pub struct HookManifest {
    /// The object as rendered.
    pub manifest: Manifest,
    /// Its hook annotations.
    pub spec: HookSpec,
}

/// Splits a render into the objects kept in sync and the hooks; `Skip`
/// hooks (and Helm hooks a sync never runs) are in neither.
///
/// # Errors
/// Every object whose hook annotations are wrong, one sentence each (the
/// first three, and how many more): nothing of such a render is synced.
pub fn split(manifests: Vec<Manifest>) -> Result<(Vec<Manifest>, Vec<HookManifest>), String> {
    let mut plain = Vec::with_capacity(manifests.len());
    let mut hooks = Vec::new();
    let mut errors = Vec::new();
    for m in manifests {
        match hook_spec(&m.object) {
            Ok(None) => plain.push(m),
            Ok(Some(spec)) if spec.phases.is_empty() => {}
            Ok(Some(spec)) => hooks.push(HookManifest { manifest: m, spec }),
            Err(e) => errors.push(format!("{} {}: {e}", m.kind(), m.name())),
        }
    }
    if errors.is_empty() {
        return Ok((plain, hooks));
    }
    let more = match errors.len().saturating_sub(3) {
        0 => String::new(),
        n => format!(" (and {n} more)"),
    };
    Err(format!(
        "{}{more}; nothing is synced until it is fixed",
        errors.into_iter().take(3).collect::<Vec<_>>().join("; ")
    ))
}

/// The name a `generateName` hook gets in one operation: the prefix and a
/// suffix from `seed` (the operation's identity), so that every sync
/// creates a new object and an operation that waits finds its own again.
pub fn generated_name(prefix: &str, seed: &str) -> String {
    // FNV-1a: stable across builds and platforms, unlike DefaultHasher.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in seed.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let suffix: String = (0..5)
        .map(|i| ALPHABET[((h >> (i * 8)) % ALPHABET.len() as u64) as usize] as char)
        .collect();
    format!("{prefix}{suffix}")
}

/// Whether a live object is a hook (by either annotation): hooks are
/// never compared, listed among the application's resources, nor pruned.
pub fn is_hook(object: &Value) -> bool {
    annotation(object, HOOK_ANNOTATION).is_some()
        || annotation(object, HELM_HOOK_ANNOTATION).is_some()
}

#[cfg(test)]
mod tests {
    use super::*;
    use DeletePolicy::{BeforeHookCreation, HookFailed, HookSucceeded};
    use SyncPhase::{PostSync, PreSync, Sync, SyncFail};
    use serde_json::json;

    fn with(annotations: Value) -> Value {
        json!({"kind": "Job", "metadata": {"name": "j", "annotations": annotations}})
    }

    #[test]
    fn hook_annotations_read_as_argo_cd_reads_them() {
        // (annotations, phases, wave, delete policies)
        let cases: Vec<(Value, Vec<SyncPhase>, i64, Vec<DeletePolicy>)> = vec![
            (
                json!({HOOK_ANNOTATION: "PreSync"}),
                vec![PreSync],
                0,
                vec![BeforeHookCreation],
            ),
            (
                json!({HOOK_ANNOTATION: "PreSync, PostSync", SYNC_WAVE_ANNOTATION: "-2",
                       HOOK_DELETE_POLICY_ANNOTATION: "HookSucceeded,HookFailed"}),
                vec![PreSync, PostSync],
                -2,
                vec![HookSucceeded, HookFailed],
            ),
            (
                json!({HOOK_ANNOTATION: "Sync"}),
                vec![Sync],
                0,
                vec![BeforeHookCreation],
            ),
            (
                json!({HOOK_ANNOTATION: "SyncFail"}),
                vec![SyncFail],
                0,
                vec![BeforeHookCreation],
            ),
            (
                json!({HOOK_ANNOTATION: "Skip"}),
                vec![],
                0,
                vec![BeforeHookCreation],
            ),
            (
                json!({HOOK_ANNOTATION: "PreSync,Skip"}),
                vec![],
                0,
                vec![BeforeHookCreation],
            ),
            // Helm's, mapped.
            (
                json!({HELM_HOOK_ANNOTATION: "pre-install,pre-upgrade", HELM_HOOK_WEIGHT_ANNOTATION: "5",
                       HELM_HOOK_DELETE_POLICY_ANNOTATION: "hook-succeeded,before-hook-creation"}),
                vec![PreSync],
                5,
                vec![BeforeHookCreation, HookSucceeded],
            ),
            (
                json!({HELM_HOOK_ANNOTATION: "post-upgrade"}),
                vec![PostSync],
                0,
                vec![BeforeHookCreation],
            ),
            (
                json!({HELM_HOOK_ANNOTATION: "test"}),
                vec![],
                0,
                vec![BeforeHookCreation],
            ),
            (
                json!({HELM_HOOK_ANNOTATION: "pre-delete,post-install"}),
                vec![PostSync],
                0,
                vec![BeforeHookCreation],
            ),
            // Argo CD's wins; the sync-wave wins over Helm's weight.
            (
                json!({HOOK_ANNOTATION: "PostSync", HELM_HOOK_ANNOTATION: "pre-install"}),
                vec![PostSync],
                0,
                vec![BeforeHookCreation],
            ),
            (
                json!({HELM_HOOK_ANNOTATION: "pre-install", HELM_HOOK_WEIGHT_ANNOTATION: "5",
                       SYNC_WAVE_ANNOTATION: "1"}),
                vec![PreSync],
                1,
                vec![BeforeHookCreation],
            ),
        ];
        for (annotations, phases, wave, delete) in cases {
            let spec = hook_spec(&with(annotations.clone()))
                .expect("valid")
                .expect("a hook");
            assert_eq!(
                spec,
                HookSpec {
                    phases,
                    wave,
                    delete
                },
                "{annotations}"
            );
        }
        assert_eq!(hook_spec(&with(json!({"other": "x"}))), Ok(None));
    }

    #[test]
    fn wrong_hook_annotations_are_errors_naming_the_value() {
        let cases = [
            (
                json!({HOOK_ANNOTATION: "PreSnyc"}),
                "\"PreSnyc\" is not a hook type",
            ),
            (json!({HOOK_ANNOTATION: " "}), "is empty"),
            (
                json!({HOOK_ANNOTATION: "PreSync", HOOK_DELETE_POLICY_ANNOTATION: "Never"}),
                "\"Never\" is not a delete policy",
            ),
            (
                json!({HOOK_ANNOTATION: "PreSync", SYNC_WAVE_ANNOTATION: "one"}),
                "\"one\" is not an integer",
            ),
            (
                json!({HELM_HOOK_ANNOTATION: "pre-instal"}),
                "is not a Helm hook",
            ),
            (
                json!({HELM_HOOK_ANNOTATION: "pre-install", HELM_HOOK_WEIGHT_ANNOTATION: "x"}),
                "helm.sh/hook-weight \"x\"",
            ),
        ];
        for (annotations, needle) in cases {
            let err = hook_spec(&with(annotations.clone())).expect_err("invalid");
            assert!(err.contains(needle), "{annotations}: {err}");
        }
    }

    #[test]
    fn a_render_splits_into_objects_and_hooks_and_skips_skip() {
        let m = |name: &str, annotations: Value| Manifest {
            object: json!({"kind": "Job", "metadata": {"name": name, "annotations": annotations}}),
            origin: format!("{name}.yaml#0"),
        };
        let (plain, hooks) = split(vec![
            m("app", json!({})),
            m("migrate", json!({HOOK_ANNOTATION: "PreSync"})),
            m("never", json!({HOOK_ANNOTATION: "Skip"})),
        ])
        .expect("valid");
        assert_eq!(plain.len(), 1);
        assert_eq!(hooks.len(), 1);
        assert_eq!(hooks[0].manifest.name(), "migrate");
        let err = split(vec![m("bad", json!({HOOK_ANNOTATION: "Later"}))]).expect_err("bad");
        assert!(err.starts_with("Job bad: "), "{err}");
        assert!(
            err.ends_with("nothing is synced until it is fixed"),
            "{err}"
        );
    }

    #[test]
    fn generated_names_are_stable_per_seed_and_differ_between_seeds() {
        let a = generated_name("migrate-", "op-1");
        assert_eq!(a, generated_name("migrate-", "op-1"));
        assert_ne!(a, generated_name("migrate-", "op-2"));
        assert!(
            a.starts_with("migrate-") && a.len() == "migrate-".len() + 5,
            "{a}"
        );
        assert!(
            a.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        );
    }
}
