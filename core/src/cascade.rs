//! What deleting an Application does to its resources: the resources
//! finalizer (`resources-finalizer.argocd.argoproj.io`, with its
//! `/foreground` and `/background` variants), which of the application's
//! live objects a cascade deletes or keeps, and when the finalizer may be
//! removed. Pure: the engine's controller reads the live objects, deletes
//! and patches.
//!
//! Argo CD's rules (`shouldBeDeleted` in its application controller): a
//! cascade never deletes a CustomResourceDefinition (that would take every
//! custom resource of the kind with it, also other applications'), nor the
//! Application object itself when it tracks itself, nor an object marked
//! `argocd.argoproj.io/sync-options: Delete=false` or
//! `helm.sh/resource-policy: keep`. `Prune=false` does not protect an object
//! from its application's deletion, as in Argo CD. Plumb has no sync waves
//! yet, so everything is deleted in one wave.

use crate::model::{ResourceKey, has_option};

/// The resources finalizer; deleting an Application that carries it deletes
/// its resources first, with foreground propagation.
pub use crate::appset::RESOURCES_FINALIZER;
/// The variant that deletes with foreground propagation (the default's
/// behaviour, spelled out).
pub const RESOURCES_FINALIZER_FOREGROUND: &str =
    "resources-finalizer.argocd.argoproj.io/foreground";
/// The variant that deletes with background propagation.
pub const RESOURCES_FINALIZER_BACKGROUND: &str =
    "resources-finalizer.argocd.argoproj.io/background";

/// Helm's annotation that keeps an object when its release goes; Argo CD
/// honours it on an application's deletion.
pub const HELM_RESOURCE_POLICY: &str = "helm.sh/resource-policy";

/// How the resources of a deleted Application are deleted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cascade {
    /// Foreground propagation: each object goes after its dependents, and
    /// the finalizer is removed once every deleted object is gone.
    Foreground,
    /// Background propagation: the garbage collector removes dependents
    /// later, and the finalizer is removed once the deletes are accepted.
    Background,
}

impl Cascade {
    /// The propagation policy's name, as the API server spells it.
    pub fn propagation(self) -> &'static str {
        match self {
            Cascade::Foreground => "Foreground",
            Cascade::Background => "Background",
        }
    }
}

/// Whether a finalizer is one of the resources finalizers.
pub fn is_resources_finalizer(finalizer: &str) -> bool {
    matches!(
        finalizer,
        RESOURCES_FINALIZER | RESOURCES_FINALIZER_FOREGROUND | RESOURCES_FINALIZER_BACKGROUND
    )
}

/// The cascade an Application's finalizers ask for; `None` when it has no
/// resources finalizer (its objects stay when it is deleted). Should both
/// variants be present, foreground wins: it is the one that waits.
pub fn cascade<'a>(finalizers: impl IntoIterator<Item = &'a str>) -> Option<Cascade> {
    let mut found = None;
    for f in finalizers {
        match f {
            RESOURCES_FINALIZER | RESOURCES_FINALIZER_FOREGROUND => {
                return Some(Cascade::Foreground);
            }
            RESOURCES_FINALIZER_BACKGROUND => found = Some(Cascade::Background),
            _ => {}
        }
    }
    found
}

/// One live object carrying the deleted application's tracking id.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Owned {
    /// Its identity.
    pub key: ResourceKey,
    /// Its `apiVersion`, needed to delete it.
    pub api_version: String,
    /// Its `metadata.uid`: the delete's precondition, so an object
    /// re-created under the same name meanwhile is not deleted.
    pub uid: String,
    /// Its `argocd.argoproj.io/sync-options` annotation.
    pub sync_options: Option<String>,
    /// Its `helm.sh/resource-policy` annotation.
    pub resource_policy: Option<String>,
    /// Whether it already has a `deletionTimestamp`.
    pub deleting: bool,
}

/// What a cascade does with the application's live objects now.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DeletionPlan {
    /// Objects to delete now.
    pub delete: Vec<Owned>,
    /// Objects already being deleted: a foreground cascade waits for them.
    pub waiting: Vec<ResourceKey>,
    /// Objects the cascade leaves in place, and why.
    pub kept: Vec<(ResourceKey, String)>,
}

/// Why a cascade leaves an object in place, if it does.
fn kept_because(object: &Owned, app: &str, app_namespace: &str) -> Option<&'static str> {
    let options = object.sync_options.as_deref().unwrap_or("");
    if object.key.group == "apiextensions.k8s.io" && object.key.kind == "CustomResourceDefinition" {
        return Some(
            "a CustomResourceDefinition is never deleted with its application (its custom resources would go too)",
        );
    }
    if object.key.group == "argoproj.io"
        && object.key.kind == "Application"
        && object.key.name == app
        && object.key.namespace == app_namespace
    {
        return Some("the application tracks its own Application object");
    }
    if has_option(options.split(',').map(str::trim), "Delete", "false") {
        return Some("Delete=false is set on the object");
    }
    if object
        .resource_policy
        .as_deref()
        .is_some_and(|p| p.split(',').any(|v| v.trim() == "keep"))
    {
        return Some("helm.sh/resource-policy: keep is set on the object");
    }
    None
}

/// Plans the cascade of application `app` (whose Application object lives in
/// `app_namespace`) over the live objects carrying its tracking id.
pub fn deletion_plan(owned: &[Owned], app: &str, app_namespace: &str) -> DeletionPlan {
    let mut plan = DeletionPlan::default();
    for object in owned {
        if let Some(reason) = kept_because(object, app, app_namespace) {
            plan.kept.push((object.key.clone(), reason.to_string()));
        } else if object.deleting {
            plan.waiting.push(object.key.clone());
        } else {
            plan.delete.push(object.clone());
        }
    }
    plan.delete.sort_by(|a, b| a.key.cmp(&b.key));
    plan.waiting.sort();
    plan.kept.sort();
    plan
}

/// Whether the finalizer may be removed, given the plan of this pass and
/// whether every delete it asked for was accepted. Objects the cascade
/// keeps never hold it.
pub fn finalizer_done(cascade: Cascade, plan: &DeletionPlan, all_accepted: bool) -> bool {
    match cascade {
        // Gone means gone: nothing left to delete and nothing still going.
        Cascade::Foreground => plan.delete.is_empty() && plan.waiting.is_empty(),
        // The garbage collector finishes what an accepted delete started.
        Cascade::Background => all_accepted,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn owned(group: &str, kind: &str, name: &str) -> Owned {
        Owned {
            key: ResourceKey {
                group: group.into(),
                kind: kind.into(),
                namespace: if kind == "CustomResourceDefinition" {
                    String::new()
                } else {
                    "ns".into()
                },
                name: name.into(),
            },
            api_version: "v1".into(),
            uid: format!("uid-{name}"),
            sync_options: None,
            resource_policy: None,
            deleting: false,
        }
    }

    #[test]
    fn the_finalizer_variant_decides_the_propagation() {
        assert_eq!(
            cascade([RESOURCES_FINALIZER]),
            Some(Cascade::Foreground),
            "the plain finalizer is foreground, as in Argo CD"
        );
        assert_eq!(
            cascade(["other", RESOURCES_FINALIZER_FOREGROUND]),
            Some(Cascade::Foreground)
        );
        assert_eq!(
            cascade([RESOURCES_FINALIZER_BACKGROUND, "other"]),
            Some(Cascade::Background)
        );
        assert_eq!(
            cascade([RESOURCES_FINALIZER_BACKGROUND, RESOURCES_FINALIZER]),
            Some(Cascade::Foreground)
        );
        assert_eq!(cascade(["foregroundDeletion", "example.com/x"]), None);
        assert_eq!(cascade([]), None);
        assert!(!is_resources_finalizer(
            "resources-finalizer.argocd.argoproj.io/sideways"
        ));
        assert_eq!(Cascade::Background.propagation(), "Background");
    }

    #[test]
    fn the_cascade_keeps_crds_itself_and_objects_marked_to_stay() {
        let mut keep_delete = owned("", "ConfigMap", "kept");
        keep_delete.sync_options = Some("Replace=true, Delete=false".into());
        let mut no_prune = owned("", "ConfigMap", "no-prune");
        no_prune.sync_options = Some("Prune=false".into());
        let mut helm_keep = owned("", "Secret", "helm");
        helm_keep.resource_policy = Some("keep".into());
        let mut going = owned("", "ConfigMap", "going");
        going.deleting = true;
        let objects = [
            owned("", "ConfigMap", "plain"),
            keep_delete,
            no_prune,
            helm_keep,
            going,
            owned("apiextensions.k8s.io", "CustomResourceDefinition", "x.y"),
            owned("argoproj.io", "Application", "parent"),
            owned("argoproj.io", "Application", "child"),
        ];
        let plan = deletion_plan(&objects, "parent", "ns");
        let deleted: Vec<String> = plan.delete.iter().map(|o| o.key.to_string()).collect();
        assert_eq!(
            deleted,
            [
                "ConfigMap ns/no-prune",
                "ConfigMap ns/plain",
                "Application.argoproj.io ns/child"
            ],
            "Prune=false does not keep an object from its application's deletion"
        );
        assert_eq!(plan.waiting.len(), 1);
        let kept: Vec<&str> = plan.kept.iter().map(|(k, _)| k.name.as_str()).collect();
        assert_eq!(kept, ["kept", "helm", "x.y", "parent"]);
        // The same object in another namespace is not "itself".
        let other = deletion_plan(
            &[owned("argoproj.io", "Application", "parent")],
            "parent",
            "plumb",
        );
        assert_eq!(other.delete.len(), 1);
    }

    #[test]
    fn foreground_waits_until_everything_is_gone_background_until_accepted() {
        let mut going = owned("", "ConfigMap", "going");
        going.deleting = true;
        let mut kept = owned("", "ConfigMap", "kept");
        kept.sync_options = Some("Delete=false".into());
        let first = deletion_plan(&[owned("", "ConfigMap", "a"), kept.clone()], "app", "plumb");
        assert!(!finalizer_done(Cascade::Foreground, &first, true));
        assert!(finalizer_done(Cascade::Background, &first, true));
        assert!(!finalizer_done(Cascade::Background, &first, false));
        let later = deletion_plan(&[going, kept.clone()], "app", "plumb");
        assert!(!finalizer_done(Cascade::Foreground, &later, true));
        let done = deletion_plan(&[kept], "app", "plumb");
        assert!(
            finalizer_done(Cascade::Foreground, &done, true),
            "a kept object never holds the finalizer"
        );
        assert!(finalizer_done(
            Cascade::Foreground,
            &DeletionPlan::default(),
            true
        ));
    }
}
