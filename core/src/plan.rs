//! Decides what a sync does: which objects to apply in which order (wave by
//! wave, then by kind), which to prune, which to leave. A pure function of
//! (desired, live, options); the `sync` module of plumb-engine carries the
//! plan out, and [`crate::waves::next`] says when the next wave may start.

use std::collections::{BTreeMap, HashSet};

use serde_json::Value;

use crate::hooks::SyncPhase;
use crate::model::{ResourceKey, has_option};
use crate::syncopts::{self, BadOption, Origin, Prune};
use crate::waves::wave_of;

/// Argo CD's apply order by kind (gitops-engine's `kindOrder`); kinds not
/// listed (custom resources among them) come after all of these.
const KIND_ORDER: &[&str] = &[
    "Namespace",
    "NetworkPolicy",
    "ResourceQuota",
    "LimitRange",
    "PodSecurityPolicy",
    "PodDisruptionBudget",
    "ServiceAccount",
    "Secret",
    "SecretList",
    "ConfigMap",
    "StorageClass",
    "PersistentVolume",
    "PersistentVolumeClaim",
    "CustomResourceDefinition",
    "ClusterRole",
    "ClusterRoleList",
    "ClusterRoleBinding",
    "ClusterRoleBindingList",
    "Role",
    "RoleList",
    "RoleBinding",
    "RoleBindingList",
    "Service",
    "DaemonSet",
    "Pod",
    "ReplicationController",
    "ReplicaSet",
    "Deployment",
    "HorizontalPodAutoscaler",
    "StatefulSet",
    "Job",
    "CronJob",
    "IngressClass",
    "Ingress",
    "APIService",
];

/// The rank of a kind in the apply order.
pub fn kind_rank(kind: &str) -> usize {
    KIND_ORDER
        .iter()
        .position(|k| *k == kind)
        .unwrap_or(KIND_ORDER.len())
}

/// One object of the desired state, after comparison.
#[derive(Clone, Debug, PartialEq)]
pub struct Desired {
    /// Its identity.
    pub key: ResourceKey,
    /// The object to apply, with the tracking annotation and namespace set.
    pub object: Value,
    /// Whether the live object differs from it (or is missing).
    pub modified: bool,
}

/// A hook to run in one phase of the sync ([`crate::hooks`]): created at
/// its wave, waited for until it completes, never compared nor pruned.
#[derive(Clone, Debug, PartialEq)]
pub struct Hook {
    /// Its identity (a `generateName` hook's name is the operation's).
    pub key: ResourceKey,
    /// The object to apply.
    pub object: Value,
    /// The phase it runs in.
    pub phase: SyncPhase,
    /// Its wave within the phase.
    pub wave: i64,
    /// `BeforeHookCreation`: an object of the same name is deleted first.
    pub recreate: bool,
    /// `HookSucceeded`: deleted once it succeeded.
    pub delete_succeeded: bool,
    /// `HookFailed`: deleted once it failed.
    pub delete_failed: bool,
}

/// One object in the cluster that carries this application's tracking id.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tracked {
    /// Its identity.
    pub key: ResourceKey,
    /// Its `apiVersion`, needed to delete it.
    pub api_version: String,
    /// Its `argocd.argoproj.io/sync-options` annotation.
    pub sync_options: Option<String>,
    /// The `metadata.uid` of the object that was compared. A prune deletes
    /// only this object: one deleted and re-created under the same name
    /// since the comparison has another uid and is left alone.
    pub uid: String,
    /// Its sync wave (its live `argocd.argoproj.io/sync-wave`, 0 without
    /// one or when it is not an integer): prunes go by wave, highest first.
    pub wave: i64,
}

/// How to sync.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PlanOptions {
    /// Prune tracked objects that are no longer desired.
    pub prune: bool,
    /// `PruneLast=true`: prune after everything else (it always is here:
    /// prunes come after the last wave of the Sync phase, highest wave
    /// first; kept so the plan says what was asked).
    pub prune_last: bool,
    /// `ApplyOutOfSyncOnly=true`: apply only objects that differ.
    pub apply_out_of_sync_only: bool,
    /// Allow an empty desired state to prune everything.
    pub allow_empty: bool,
    /// `CreateNamespace=true` with this destination namespace.
    pub create_namespace: Option<String>,
    /// `PrunePropagationPolicy=foreground|background|orphan`: how a prune
    /// deletes an object's dependents (background by default).
    pub prune_propagation: PrunePropagation,
    /// The application's `syncOptions`, under each object's own
    /// `argocd.argoproj.io/sync-options` ([`crate::syncopts`]: `Replace`,
    /// `Force`, `Validate`, `Prune`).
    pub sync_options: Vec<String>,
}

/// How an object is written ([`crate::syncopts`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Write {
    /// `Replace=true`: a PUT of the whole object (a POST when missing)
    /// instead of a server-side apply.
    pub replace: bool,
    /// `Force=true`: with `replace`, delete and create; with an apply,
    /// delete and create when the API server refuses the change of an
    /// immutable field.
    pub force: bool,
    /// `Validate=false`: fields the API server does not know are dropped
    /// rather than refusing the object.
    pub skip_validation: bool,
}

/// How a prune deletes an object's dependents (Kubernetes' propagation
/// policy).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum PrunePropagation {
    /// The object goes at once; the garbage collector deletes its
    /// dependents after.
    #[default]
    Background,
    /// The object goes once its dependents are gone.
    Foreground,
    /// Its dependents are left.
    Orphan,
}

impl PrunePropagation {
    /// Reads `PrunePropagationPolicy=...` from sync options.
    pub fn from_options<'a>(options: impl Iterator<Item = &'a str> + Clone) -> PrunePropagation {
        if has_option(options.clone(), "PrunePropagationPolicy", "foreground") {
            PrunePropagation::Foreground
        } else if has_option(options, "PrunePropagationPolicy", "orphan") {
            PrunePropagation::Orphan
        } else {
            PrunePropagation::Background
        }
    }
}

/// One step of a sync.
#[derive(Clone, Debug, PartialEq)]
pub enum Step {
    /// Create the destination namespace (untracked: never pruned).
    CreateNamespace(String),
    /// Write an object (a server-side apply unless `write` says otherwise).
    Apply {
        /// Its identity.
        key: ResourceKey,
        /// The object.
        object: Value,
        /// How.
        write: Write,
    },
    /// Delete an object that is tracked but no longer desired.
    Prune {
        /// Its identity.
        key: ResourceKey,
        /// Its apiVersion.
        api_version: String,
        /// The uid of the object that was compared (the delete's
        /// precondition).
        uid: String,
        /// How its dependents go.
        propagation: PrunePropagation,
        /// `Prune=confirm`: the prune waits until a person confirms it.
        confirm: bool,
    },
    /// Create a hook (deleting the object of the same name first when
    /// `recreate`).
    Hook {
        /// Its identity.
        key: ResourceKey,
        /// The object.
        object: Value,
        /// The phase it runs in.
        phase: SyncPhase,
        /// Delete an object of the same name before creating it.
        recreate: bool,
    },
    /// An object that would be pruned but is kept, and why.
    PruneSkipped {
        /// Its identity.
        key: ResourceKey,
        /// Its apiVersion.
        api_version: String,
        /// Why it is kept.
        reason: String,
    },
}

/// Stages run in order; a stage runs only when the one before succeeded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StageKind {
    /// Namespaces and CRDs of a wave, which its other objects need to exist
    /// first.
    Foundation,
    /// The rest of a wave, in kind order.
    Main,
    /// Deletions of one wave, in reverse kind order, after the last wave
    /// of the Sync phase.
    Prune,
}

/// A group of steps.
#[derive(Clone, Debug, PartialEq)]
pub struct Stage {
    /// Which stage.
    pub kind: StageKind,
    /// Its steps, in order.
    pub steps: Vec<Step>,
}

/// The objects of one sync wave and the steps that apply them.
#[derive(Clone, Debug, PartialEq)]
pub struct Wave {
    /// The phase it belongs to (PreSync and PostSync waves hold hooks only).
    pub phase: SyncPhase,
    /// Its number (`argocd.argoproj.io/sync-wave`, 0 without one).
    pub wave: i64,
    /// Its stages with at least one step, in order (none when every object
    /// of the wave is in sync and `ApplyOutOfSyncOnly` is set).
    pub stages: Vec<Stage>,
    /// Every desired object of the wave, applied or not: the next wave
    /// waits until they are all ready.
    pub members: Vec<ResourceKey>,
    /// Its hooks (also among `members`): the sync waits until each has
    /// completed, and fails when one fails.
    pub hooks: Vec<ResourceKey>,
}

impl Wave {
    /// Where it comes in the sync: by phase, then by wave.
    pub fn position(&self) -> (SyncPhase, i64) {
        (self.phase, self.wave)
    }
}

/// The prunes of one wave (the wave the objects had when they were
/// applied).
#[derive(Clone, Debug, PartialEq)]
pub struct PruneWave {
    /// Its number.
    pub wave: i64,
    /// Its prunes and kept objects, in reverse kind order.
    pub stage: Stage,
}

/// What a sync will do.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SyncPlan {
    /// The waves with an object or a step, lowest first.
    pub waves: Vec<Wave>,
    /// The prunes (and kept objects) by wave, highest first, after the last
    /// wave of the Sync phase; empty when nothing is gone.
    pub prunes: Vec<PruneWave>,
    /// The SyncFail hooks, created when the sync fails.
    pub fail: Option<Stage>,
}

impl SyncPlan {
    /// Every stage, in order.
    pub fn stages(&self) -> impl Iterator<Item = &Stage> {
        self.waves
            .iter()
            .flat_map(|w| w.stages.iter())
            .chain(self.prunes.iter().map(|p| &p.stage))
    }

    /// Every step, in order.
    pub fn steps(&self) -> impl Iterator<Item = &Step> {
        self.stages().flat_map(|s| s.steps.iter())
    }

    /// The prunes that wait for a person's confirmation (`Prune=confirm`).
    pub fn prunes_to_confirm(&self) -> Vec<&ResourceKey> {
        self.prunes
            .iter()
            .flat_map(|p| p.stage.steps.iter())
            .filter_map(|s| match s {
                Step::Prune {
                    key, confirm: true, ..
                } => Some(key),
                _ => None,
            })
            .collect()
    }
}

/// The operation's message while prunes wait for confirmation: the first
/// objects by name, and how to confirm.
pub fn confirmation_message(keys: &[&ResourceKey]) -> String {
    let mut named: Vec<String> = keys
        .iter()
        .take(3)
        .map(|k| {
            if k.namespace.is_empty() {
                format!("{} {}", k.kind, k.name)
            } else {
                format!("{} {}/{}", k.kind, k.namespace, k.name)
            }
        })
        .collect();
    if keys.len() > 3 {
        named.push(format!("{} more", keys.len() - 3));
    }
    format!(
        "waiting for pruning confirmation of {} (Prune=confirm): confirm with `plumb app confirm-prune NAME` \
         or annotate the application with argocd.argoproj.io/deletion-approved set to the time now (RFC 3339)",
        named.join(", ")
    )
}

/// Why a sync is refused.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    /// The render produced nothing while objects are tracked.
    #[error(
        "the desired state is empty but {tracked} objects are tracked: refusing to sync (and prune) them all; \
         set spec.syncPolicy.automated.allowEmpty=true if that is what you want"
    )]
    EmptyRender {
        /// How many tracked objects would go.
        tracked: usize,
    },
    /// A sync option's value cannot be read (`Replace=maybe`).
    #[error("{where_}: {error}: nothing is synced until it is fixed")]
    InvalidOption {
        /// Where it is written.
        where_: String,
        /// What is wrong.
        error: BadOption,
    },
    /// An object's sync wave is not an integer.
    #[error(
        "{key}: annotation argocd.argoproj.io/sync-wave is {text:?}, not an integer: nothing is synced until it is fixed"
    )]
    InvalidWave {
        /// The object.
        key: ResourceKey,
        /// The annotation's text.
        text: String,
    },
}

fn order_key(key: &ResourceKey) -> (usize, &str, &str, &str, &str) {
    (
        kind_rank(&key.kind),
        &key.group,
        &key.kind,
        &key.namespace,
        &key.name,
    )
}

fn is_foundation(key: &ResourceKey) -> bool {
    (key.group.is_empty() && key.kind == "Namespace")
        || (key.group == "apiextensions.k8s.io" && key.kind == "CustomResourceDefinition")
}

/// Plans a sync without hooks.
///
/// # Errors
/// As [`plan_with_hooks`].
pub fn plan(
    desired: &[Desired],
    tracked: &[Tracked],
    options: &PlanOptions,
) -> Result<SyncPlan, PlanError> {
    plan_with_hooks(desired, &[], tracked, options)
}

/// Plans a sync: PreSync hooks by wave, then the objects and Sync hooks by
/// wave, the prunes, then PostSync hooks by wave; SyncFail hooks aside.
///
/// # Errors
/// [`PlanError::EmptyRender`] when nothing is desired, objects are tracked and
/// `allow_empty` is off; [`PlanError::InvalidWave`] and
/// [`PlanError::InvalidOption`] for annotations or options that cannot be
/// read.
pub fn plan_with_hooks(
    desired: &[Desired],
    hooks: &[Hook],
    tracked: &[Tracked],
    options: &PlanOptions,
) -> Result<SyncPlan, PlanError> {
    syncopts::object_options(app_options(options), None).map_err(|(_, error)| {
        PlanError::InvalidOption {
            where_: "spec.syncPolicy.syncOptions".into(),
            error,
        }
    })?;
    if desired.is_empty() && !tracked.is_empty() && !options.allow_empty {
        return Err(PlanError::EmptyRender {
            tracked: tracked.len(),
        });
    }
    let mut by_wave: BTreeMap<(SyncPhase, i64), Vec<&Desired>> = BTreeMap::new();
    for d in desired {
        let wave = wave_of(&d.object).map_err(|text| PlanError::InvalidWave {
            key: d.key.clone(),
            text,
        })?;
        // Read up front, so an option nobody can read refuses the sync
        // also when its object would not be applied.
        syncopts::of_object(app_options(options), &d.object)
            .map_err(|e| invalid_option(&d.key, e))?;
        by_wave.entry((SyncPhase::Sync, wave)).or_default().push(d);
    }
    let mut hooks_by_wave: BTreeMap<(SyncPhase, i64), Vec<&Hook>> = BTreeMap::new();
    let mut fail_hooks: Vec<&Hook> = Vec::new();
    for h in hooks {
        if h.phase == SyncPhase::SyncFail {
            fail_hooks.push(h);
        } else {
            hooks_by_wave.entry((h.phase, h.wave)).or_default().push(h);
            by_wave.entry((h.phase, h.wave)).or_default();
        }
    }
    let mut create_namespace = options.create_namespace.as_ref().filter(|ns| {
        !desired
            .iter()
            .any(|d| d.key.kind == "Namespace" && d.key.group.is_empty() && &d.key.name == *ns)
    });
    if create_namespace.is_some() && by_wave.is_empty() {
        by_wave.insert((SyncPhase::Sync, 0), Vec::new());
    }
    let mut waves = Vec::with_capacity(by_wave.len());
    for ((phase, wave), mut objects) in by_wave {
        objects.sort_by(|a, b| order_key(&a.key).cmp(&order_key(&b.key)));
        let mut wave_hooks = hooks_by_wave.remove(&(phase, wave)).unwrap_or_default();
        wave_hooks.sort_by(|a, b| order_key(&a.key).cmp(&order_key(&b.key)));
        // The destination namespace comes before the first wave (a PreSync
        // hook may need it too).
        let mut foundation: Vec<Step> = create_namespace
            .take()
            .map(|ns| Step::CreateNamespace(ns.clone()))
            .into_iter()
            .collect();
        let mut main = Vec::new();
        for d in objects
            .iter()
            .filter(|d| d.modified || !options.apply_out_of_sync_only)
        {
            let own = syncopts::of_object(app_options(options), &d.object)
                .map_err(|e| invalid_option(&d.key, e))?;
            let step = Step::Apply {
                key: d.key.clone(),
                object: d.object.clone(),
                write: Write {
                    replace: own.replace,
                    force: own.force,
                    skip_validation: !own.validate,
                },
            };
            if is_foundation(&d.key) {
                foundation.push(step)
            } else {
                main.push(step)
            }
        }
        main.extend(wave_hooks.iter().copied().map(hook_step));
        let stages = [(StageKind::Foundation, foundation), (StageKind::Main, main)]
            .into_iter()
            .filter(|(_, steps)| !steps.is_empty())
            .map(|(kind, steps)| Stage { kind, steps })
            .collect();
        let hooks: Vec<ResourceKey> = wave_hooks.iter().map(|h| h.key.clone()).collect();
        waves.push(Wave {
            phase,
            wave,
            stages,
            members: objects
                .iter()
                .map(|d| d.key.clone())
                .chain(hooks.iter().cloned())
                .collect(),
            hooks,
        });
    }
    fail_hooks.sort_by(|a, b| (a.wave, order_key(&a.key)).cmp(&(b.wave, order_key(&b.key))));
    let fail: Vec<Step> = fail_hooks.into_iter().map(hook_step).collect();

    let wanted: HashSet<&ResourceKey> = desired.iter().map(|d| &d.key).collect();
    let mut gone: BTreeMap<i64, Vec<&Tracked>> = BTreeMap::new();
    for t in tracked.iter().filter(|t| !wanted.contains(&t.key)) {
        gone.entry(t.wave).or_default().push(t);
    }
    let mut prunes = Vec::with_capacity(gone.len());
    for (wave, mut objects) in gone.into_iter().rev() {
        objects.sort_by(|a, b| order_key(&b.key).cmp(&order_key(&a.key)));
        let steps: Vec<Step> = objects
            .into_iter()
            .map(|t| prune_step(t, options))
            .collect::<Result<_, _>>()?;
        prunes.push(PruneWave {
            wave,
            stage: Stage {
                kind: StageKind::Prune,
                steps,
            },
        });
    }
    Ok(SyncPlan {
        waves,
        prunes,
        fail: (!fail.is_empty()).then_some(Stage {
            kind: StageKind::Main,
            steps: fail,
        }),
    })
}

fn hook_step(h: &Hook) -> Step {
    Step::Hook {
        key: h.key.clone(),
        object: h.object.clone(),
        phase: h.phase,
        recreate: h.recreate,
    }
}

fn app_options(options: &PlanOptions) -> impl Iterator<Item = &str> {
    options.sync_options.iter().map(String::as_str)
}

fn invalid_option(key: &ResourceKey, (origin, error): (Origin, BadOption)) -> PlanError {
    let where_ = match origin {
        Origin::Application => "spec.syncPolicy.syncOptions".to_string(),
        Origin::Object => format!(
            "{key}: annotation {}",
            crate::model::SYNC_OPTIONS_ANNOTATION
        ),
    };
    PlanError::InvalidOption { where_, error }
}

/// Prune or keep one tracked object that is no longer desired.
fn prune_step(t: &Tracked, plan: &PlanOptions) -> Result<Step, PlanError> {
    let annotation = t.sync_options.as_deref().unwrap_or("");
    let options = || annotation.split(',').map(str::trim);
    let own = syncopts::object_options(app_options(plan), t.sync_options.as_deref())
        .map_err(|e| invalid_option(&t.key, e))?;
    let reason = if own.prune == Prune::Disabled {
        Some("Prune=false is set on the object or the application")
    } else if has_option(options(), "Delete", "false") {
        Some("Delete=false is set on the object")
    } else if !plan.prune {
        Some("pruning is disabled: enable automated.prune or sync with prune")
    } else {
        None
    };
    Ok(match reason {
        Some(reason) => Step::PruneSkipped {
            key: t.key.clone(),
            api_version: t.api_version.clone(),
            reason: reason.to_string(),
        },
        None => Step::Prune {
            key: t.key.clone(),
            api_version: t.api_version.clone(),
            uid: t.uid.clone(),
            propagation: plan.prune_propagation,
            confirm: own.prune == Prune::Confirm,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn key(group: &str, kind: &str, name: &str) -> ResourceKey {
        ResourceKey {
            group: group.into(),
            kind: kind.into(),
            namespace: "ns".into(),
            name: name.into(),
        }
    }

    fn desired(group: &str, kind: &str, name: &str, modified: bool) -> Desired {
        Desired {
            key: key(group, kind, name),
            object: json!({"kind": kind}),
            modified,
        }
    }

    fn tracked(kind: &str, name: &str, sync_options: Option<&str>) -> Tracked {
        Tracked {
            key: key("", kind, name),
            api_version: "v1".into(),
            sync_options: sync_options.map(Into::into),
            uid: format!("uid-{name}"),
            wave: 0,
        }
    }

    fn names(plan: &SyncPlan) -> Vec<String> {
        plan.steps()
            .map(|s| match s {
                Step::CreateNamespace(n) => format!("create-namespace {n}"),
                Step::Apply { key, .. } => format!("apply {}/{}", key.kind, key.name),
                Step::Prune { key, .. } => format!("prune {}/{}", key.kind, key.name),
                Step::PruneSkipped { key, reason, .. } => {
                    format!("keep {}/{} ({reason})", key.kind, key.name)
                }
                Step::Hook { key, phase, .. } => {
                    format!("hook {} {}/{}", phase.as_str(), key.kind, key.name)
                }
            })
            .collect()
    }

    #[test]
    fn namespaces_and_crds_come_first_then_kind_order() {
        let d = [
            desired("apps", "Deployment", "web", true),
            desired("example.com", "Widget", "w", true),
            desired("", "Service", "web", true),
            desired(
                "apiextensions.k8s.io",
                "CustomResourceDefinition",
                "widgets.example.com",
                true,
            ),
            desired("", "ConfigMap", "cfg", true),
            desired("", "Namespace", "ns", true),
        ];
        let p = plan(&d, &[], &PlanOptions::default()).expect("plan");
        assert_eq!(p.waves.len(), 1);
        assert_eq!(p.waves[0].stages[0].kind, StageKind::Foundation);
        assert_eq!(
            names(&p),
            [
                "apply Namespace/ns",
                "apply CustomResourceDefinition/widgets.example.com",
                "apply ConfigMap/cfg",
                "apply Service/web",
                "apply Deployment/web",
                "apply Widget/w",
            ]
        );
    }

    #[test]
    fn create_namespace_is_a_foundation_step_unless_declared() {
        let options = PlanOptions {
            create_namespace: Some("ns".into()),
            ..Default::default()
        };
        let p = plan(&[desired("", "ConfigMap", "c", true)], &[], &options).expect("plan");
        assert_eq!(names(&p), ["create-namespace ns", "apply ConfigMap/c"]);
        let declared = [desired("", "Namespace", "ns", true)];
        let p = plan(&declared, &[], &options).expect("plan");
        assert_eq!(names(&p), ["apply Namespace/ns"]);
    }

    #[test]
    fn prune_only_when_allowed_and_in_reverse_kind_order_last() {
        let d = [desired("", "ConfigMap", "keep", false)];
        let t = [
            tracked("ConfigMap", "keep", None),
            tracked("ConfigMap", "old", None),
            tracked("Service", "old", None),
        ];
        let on = plan(
            &d,
            &t,
            &PlanOptions {
                prune: true,
                ..Default::default()
            },
        )
        .expect("plan");
        assert_eq!(
            names(&on),
            [
                "apply ConfigMap/keep",
                "prune Service/old",
                "prune ConfigMap/old"
            ]
        );
        assert_eq!(on.stages().last().expect("stage").kind, StageKind::Prune);
        let off = plan(&d, &t, &PlanOptions::default()).expect("plan");
        assert!(
            names(&off)[1].starts_with("keep Service/old (pruning is disabled"),
            "{:?}",
            names(&off)
        );
    }

    /// Prunes go by the wave the objects carry in the cluster, highest
    /// first, each wave in reverse kind order.
    #[test]
    fn prunes_go_by_wave_highest_first() {
        let at = |kind: &str, name: &str, wave: i64, options: Option<&str>| Tracked {
            wave,
            ..tracked(kind, name, options)
        };
        let t = [
            at("ConfigMap", "zero", 0, None),
            at("Deployment", "two", 2, None),
            at("Service", "zero", 0, None),
            at("ConfigMap", "minus", -1, None),
            at("ConfigMap", "kept", 2, Some("Prune=false")),
        ];
        let p = plan(
            &[desired("", "ConfigMap", "c", true)],
            &t,
            &PlanOptions {
                prune: true,
                ..Default::default()
            },
        )
        .expect("plan");
        let waves: Vec<i64> = p.prunes.iter().map(|w| w.wave).collect();
        assert_eq!(waves, [2, 0, -1]);
        assert_eq!(
            names(&p)[1..],
            [
                "prune Deployment/two",
                "keep ConfigMap/kept (Prune=false is set on the object or the application)",
                "prune Service/zero",
                "prune ConfigMap/zero",
                "prune ConfigMap/minus",
            ]
        );
    }

    #[test]
    fn prune_false_and_delete_false_annotations_keep_objects() {
        let t = [
            tracked("ConfigMap", "a", Some("Prune=false")),
            tracked("ConfigMap", "b", Some("ServerSideApply=true, Delete=false")),
        ];
        let p = plan(
            &[desired("", "ConfigMap", "c", true)],
            &t,
            &PlanOptions {
                prune: true,
                ..Default::default()
            },
        )
        .expect("plan");
        assert_eq!(
            names(&p),
            [
                "apply ConfigMap/c",
                "keep ConfigMap/b (Delete=false is set on the object)",
                "keep ConfigMap/a (Prune=false is set on the object or the application)",
            ]
        );
    }

    #[test]
    fn empty_render_refuses_unless_allow_empty() {
        let t = [tracked("ConfigMap", "a", None)];
        let options = PlanOptions {
            prune: true,
            ..Default::default()
        };
        assert_eq!(
            plan(&[], &t, &options),
            Err(PlanError::EmptyRender { tracked: 1 })
        );
        let allowed = PlanOptions {
            allow_empty: true,
            ..options
        };
        assert_eq!(
            names(&plan(&[], &t, &allowed).expect("plan")),
            ["prune ConfigMap/a"]
        );
    }

    #[test]
    fn apply_out_of_sync_only_skips_synced_objects() {
        let d = [
            desired("", "ConfigMap", "same", false),
            desired("", "ConfigMap", "changed", true),
        ];
        let options = PlanOptions {
            apply_out_of_sync_only: true,
            ..Default::default()
        };
        assert_eq!(
            names(&plan(&d, &[], &options).expect("plan")),
            ["apply ConfigMap/changed"]
        );
    }

    fn in_wave(group: &str, kind: &str, name: &str, wave: &str) -> Desired {
        let mut d = desired(group, kind, name, true);
        d.object = json!({
            "kind": kind,
            "metadata": {"annotations": {crate::waves::SYNC_WAVE_ANNOTATION: wave}},
        });
        d
    }

    /// Waves order first, kinds within a wave (Argo CD: phase, wave, kind,
    /// name); the destination namespace comes before the first wave; prunes
    /// after the last.
    #[test]
    fn waves_come_before_kind_order_and_prunes_after_the_last_wave() {
        let d = [
            in_wave("", "Namespace", "late", "1"),
            in_wave("apps", "Deployment", "web", "-1"),
            desired("", "ConfigMap", "cfg", true),
            in_wave("", "Service", "web", "-1"),
            in_wave("", "ConfigMap", "late", "1"),
        ];
        let options = PlanOptions {
            prune: true,
            create_namespace: Some("ns".into()),
            ..Default::default()
        };
        let p = plan(&d, &[tracked("Secret", "old", None)], &options).expect("plan");
        let waves: Vec<(i64, Vec<String>)> = p
            .waves
            .iter()
            .map(|w| (w.wave, w.members.iter().map(|k| k.name.clone()).collect()))
            .collect();
        assert_eq!(
            waves,
            [
                (-1, vec!["web".to_string(), "web".to_string()]),
                (0, vec!["cfg".to_string()]),
                (1, vec!["late".to_string(), "late".to_string()]),
            ]
        );
        assert_eq!(
            names(&p),
            [
                "create-namespace ns",
                "apply Service/web",
                "apply Deployment/web",
                "apply ConfigMap/cfg",
                "apply Namespace/late",
                "apply ConfigMap/late",
                "prune Secret/old",
            ]
        );
    }

    #[test]
    fn a_wave_in_sync_keeps_its_members_but_has_no_steps() {
        let mut same = in_wave("", "ConfigMap", "same", "1");
        same.modified = false;
        let d = [desired("", "ConfigMap", "changed", true), same];
        let options = PlanOptions {
            apply_out_of_sync_only: true,
            ..Default::default()
        };
        let p = plan(&d, &[], &options).expect("plan");
        assert_eq!(p.waves.len(), 2);
        assert!(p.waves[1].stages.is_empty());
        assert_eq!(p.waves[1].members[0].name, "same");
    }

    #[test]
    fn a_wave_that_is_not_an_integer_refuses_the_sync() {
        let d = [in_wave("", "ConfigMap", "c", "one")];
        assert_eq!(
            plan(&d, &[], &PlanOptions::default()),
            Err(PlanError::InvalidWave {
                key: key("", "ConfigMap", "c"),
                text: "one".into()
            })
        );
    }

    fn annotated(kind: &str, name: &str, options: &str) -> Desired {
        Desired {
            key: key("", kind, name),
            object: json!({"kind": kind, "metadata": {"annotations": {crate::model::SYNC_OPTIONS_ANNOTATION: options}}}),
            modified: true,
        }
    }

    fn write_of(plan: &SyncPlan, name: &str) -> Write {
        plan.steps()
            .find_map(|s| match s {
                Step::Apply { key, write, .. } if key.name == name => Some(*write),
                _ => None,
            })
            .expect("the object is applied")
    }

    #[test]
    fn replace_force_and_validate_reach_each_apply_the_objects_own_winning() {
        let d = [
            annotated("ConfigMap", "replaced", "Replace=true,Force=true"),
            annotated("ConfigMap", "loose", "Validate=false, Replace=false"),
            desired("", "ConfigMap", "plain", true),
        ];
        let options = PlanOptions {
            sync_options: vec!["Replace=true".into()],
            ..Default::default()
        };
        let p = plan(&d, &[], &options).expect("plan");
        let all = Write {
            replace: true,
            force: true,
            skip_validation: false,
        };
        assert_eq!(write_of(&p, "replaced"), all);
        assert_eq!(
            write_of(&p, "loose"),
            Write {
                skip_validation: true,
                ..Write::default()
            }
        );
        assert_eq!(
            write_of(&p, "plain"),
            Write {
                replace: true,
                ..Write::default()
            }
        );
        let p = plan(&d[2..], &[], &PlanOptions::default()).expect("plan");
        assert_eq!(write_of(&p, "plain"), Write::default());
    }

    #[test]
    fn an_option_value_plumb_cannot_read_refuses_the_whole_sync() {
        let ok = desired("", "ConfigMap", "ok", true);
        let bad = annotated("ConfigMap", "bad", "Replace=maybe");
        let err = plan(&[ok.clone(), bad], &[], &PlanOptions::default()).expect_err("refused");
        assert!(
            err.to_string()
                .starts_with("ConfigMap ns/bad: annotation argocd.argoproj.io/sync-options: sync option \"Replace=maybe\""),
            "{err}"
        );
        // Also when the object is in sync and would not be applied.
        let mut quiet = annotated("ConfigMap", "bad", "Force=yes");
        quiet.modified = false;
        let only_changed = PlanOptions {
            apply_out_of_sync_only: true,
            ..Default::default()
        };
        assert!(plan(&[ok.clone(), quiet], &[], &only_changed).is_err());
        let app = PlanOptions {
            sync_options: vec!["FailOnSharedResource=perhaps".into()],
            ..Default::default()
        };
        let err = plan(std::slice::from_ref(&ok), &[], &app).expect_err("refused");
        assert!(
            err.to_string().starts_with("spec.syncPolicy.syncOptions:"),
            "{err}"
        );
        let prune = PlanOptions {
            prune: true,
            ..Default::default()
        };
        let gone = tracked("ConfigMap", "gone", Some("Prune=soon"));
        assert!(matches!(
            plan(&[ok], &[gone], &prune),
            Err(PlanError::InvalidOption { .. })
        ));
    }

    #[test]
    fn prune_confirm_marks_the_prune_and_the_plan_names_it() {
        let d = [desired("", "ConfigMap", "kept", true)];
        let t = [
            tracked("ConfigMap", "asks", Some("Prune=confirm")),
            tracked("ConfigMap", "free", None),
            tracked("ConfigMap", "overrides", Some("Prune=true")),
        ];
        let on = PlanOptions {
            prune: true,
            ..Default::default()
        };
        let p = plan(&d, &t, &on).expect("plan");
        let to_confirm: Vec<&str> = p
            .prunes_to_confirm()
            .iter()
            .map(|k| k.name.as_str())
            .collect();
        assert_eq!(to_confirm, ["asks"]);
        let message = confirmation_message(&p.prunes_to_confirm());
        assert!(
            message.starts_with("waiting for pruning confirmation of ConfigMap ns/asks"),
            "{message}"
        );

        // The application's Prune=confirm holds every prune but the one
        // whose object says otherwise.
        let all = PlanOptions {
            sync_options: vec!["Prune=confirm".into()],
            ..on.clone()
        };
        let p = plan(&d, &t, &all).expect("plan");
        let to_confirm: Vec<&str> = p
            .prunes_to_confirm()
            .iter()
            .map(|k| k.name.as_str())
            .collect();
        assert_eq!(to_confirm.len(), 2);
        assert!(to_confirm.contains(&"asks") && to_confirm.contains(&"free"));

        // The application's Prune=false keeps every object but those that
        // say otherwise themselves.
        let none = PlanOptions {
            sync_options: vec!["Prune=false".into()],
            ..on
        };
        let p = plan(&d, &t, &none).expect("plan");
        assert_eq!(
            names(&p)[1..],
            [
                "prune ConfigMap/overrides".to_string(),
                "keep ConfigMap/free (Prune=false is set on the object or the application)"
                    .to_string(),
                "prune ConfigMap/asks".to_string(),
            ]
        );
        let to_confirm: Vec<&str> = p
            .prunes_to_confirm()
            .iter()
            .map(|k| k.name.as_str())
            .collect();
        assert_eq!(to_confirm, ["asks"]);
        // Without prune nothing waits for a confirmation.
        let off = PlanOptions::default();
        assert!(
            plan(&d, &t, &off)
                .expect("plan")
                .prunes_to_confirm()
                .is_empty()
        );
    }

    #[test]
    fn many_objects_to_confirm_are_named_three_and_counted() {
        let keys: Vec<ResourceKey> = ["a", "b", "c", "d", "e"]
            .iter()
            .map(|n| key("", "ConfigMap", n))
            .collect();
        let refs: Vec<&ResourceKey> = keys.iter().collect();
        let message = confirmation_message(&refs);
        assert!(
            message.starts_with("waiting for pruning confirmation of ConfigMap ns/a, ConfigMap ns/b, ConfigMap ns/c, 2 more (Prune=confirm)"),
            "{message}"
        );
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        /// Objects drawn from a small universe, so that desired and tracked
        /// sets overlap; waves from -2 to 2, some without the annotation.
        fn object() -> impl Strategy<Value = (String, String, Option<i64>, bool)> {
            (
                prop::sample::select(vec!["ConfigMap", "Service", "Namespace", "Secret"]),
                prop::sample::select(vec!["a", "b", "c", "d"]),
                prop::option::of(-2i64..=2),
                any::<bool>(),
            )
                .prop_map(|(k, n, w, m)| (k.to_string(), n.to_string(), w, m))
        }

        fn inputs() -> impl Strategy<Value = (Vec<Desired>, Vec<Tracked>, PlanOptions)> {
            (
                prop::collection::vec(object(), 0..8),
                prop::collection::vec(
                    (
                        object(),
                        prop::option::of(prop::sample::select(vec![
                            "Prune=false",
                            "Delete=false",
                            "ServerSideApply=true",
                            "Prune=confirm",
                        ])),
                    ),
                    0..8,
                ),
                any::<(bool, bool, bool, bool)>(),
            )
                .prop_map(|(d, t, (prune, out_of_sync_only, allow_empty, ns))| {
                    let mut seen = std::collections::HashSet::new();
                    let desired = d
                        .into_iter()
                        .filter(|(k, n, _, _)| seen.insert((k.clone(), n.clone())))
                        .map(|(k, n, w, m)| {
                            let mut d = in_wave("", &k, &n, "0");
                            d.key = key("", &k, &n);
                            d.modified = m;
                            d.object = match w {
                                Some(w) => json!({"kind": k, "metadata": {"annotations": {crate::waves::SYNC_WAVE_ANNOTATION: w.to_string()}}}),
                                None => json!({"kind": k, "metadata": {}}),
                            };
                            d
                        })
                        .collect();
                    let mut seen = std::collections::HashSet::new();
                    let tracked = t
                        .into_iter()
                        .filter(|((k, n, _, _), _)| seen.insert((k.clone(), n.clone())))
                        .map(|((k, n, w, _), o)| Tracked {
                            wave: w.unwrap_or(0),
                            ..tracked(&k, &n, o)
                        })
                        .collect();
                    let options = PlanOptions {
                        prune,
                        apply_out_of_sync_only: out_of_sync_only,
                        allow_empty,
                        create_namespace: ns.then(|| "ns".to_string()),
                        ..Default::default()
                    };
                    (desired, tracked, options)
                })
        }

        proptest! {
            /// The planner prunes only objects it was given as tracked (the
            /// engine gives it only those carrying this application's
            /// tracking id), only the very object compared (its uid), never
            /// one still desired, never one that says Prune=false or
            /// Delete=false, and nothing when prune is off.
            #[test]
            fn prunes_only_tracked_undesired_objects_when_allowed((desired, tracked, options) in inputs()) {
                let Ok(p) = plan(&desired, &tracked, &options) else {
                    prop_assert!(desired.is_empty() && !tracked.is_empty() && !options.allow_empty);
                    return Ok(());
                };
                for step in p.steps() {
                    if let Step::Prune { key, uid, .. } = step {
                        prop_assert!(options.prune);
                        let t = tracked.iter().find(|t| &t.key == key);
                        prop_assert!(t.is_some_and(|t| &t.uid == uid));
                        prop_assert!(!desired.iter().any(|d| &d.key == key));
                        let opts = t.and_then(|t| t.sync_options.clone()).unwrap_or_default();
                        prop_assert!(!opts.contains("Prune=false") && !opts.contains("Delete=false"));
                    }
                }
                // Prunes only in the prune stage, after every wave.
                let is_prune = |s: &Step| matches!(s, Step::Prune { .. } | Step::PruneSkipped { .. });
                for wave in &p.waves {
                    let pruned = wave.stages.iter().flat_map(|s| &s.steps).any(is_prune);
                    prop_assert!(!pruned, "a prune in wave {}", wave.wave);
                }
                // Prune waves descend, and each holds the objects of its wave.
                prop_assert!(p.prunes.windows(2).all(|w| w[0].wave > w[1].wave));
                for prunes in &p.prunes {
                    for step in &prunes.stage.steps {
                        let (Step::Prune { key, .. } | Step::PruneSkipped { key, .. }) = step else {
                            prop_assert!(false, "not a prune: {step:?}");
                            continue;
                        };
                        let t = tracked.iter().find(|t| &t.key == key);
                        prop_assert_eq!(t.map(|t| t.wave), Some(prunes.wave));
                    }
                }
            }

            /// An empty render with tracked objects never plans anything
            /// unless allowEmpty.
            #[test]
            fn an_empty_render_never_prunes_without_allow_empty((_, tracked, options) in inputs()) {
                let planned = plan(&[], &tracked, &options);
                if !tracked.is_empty() && !options.allow_empty {
                    prop_assert!(planned.is_err());
                }
            }

            /// Waves ascend; every desired object is in exactly one wave, and
            /// applied at most once.
            #[test]
            fn waves_ascend_and_hold_each_object_once((desired, tracked, options) in inputs()) {
                let Ok(p) = plan(&desired, &tracked, &options) else { return Ok(()) };
                prop_assert!(p.waves.windows(2).all(|w| w[0].wave < w[1].wave));
                let members: Vec<&ResourceKey> = p.waves.iter().flat_map(|w| &w.members).collect();
                prop_assert_eq!(members.len(), desired.len());
                for d in &desired {
                    prop_assert!(members.contains(&&d.key));
                    let applies_it = |s: &&Step| matches!(s, Step::Apply { key, .. } if key == &d.key);
                    let applies = p.steps().filter(applies_it).count();
                    prop_assert!(applies <= 1);
                }
            }
        }
    }
}
