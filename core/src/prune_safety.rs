//! Property tests of prune safety across render, ownership and plan: for
//! random files and random live objects, the path a reconcile takes (render
//! the folder, keep the live objects this application owns, plan) never
//! prunes an object without this application's tracking id, never prunes
//! when prune is off, and plans nothing at all when the render failed.

use proptest::prelude::*;
use serde_json::{Value, json};

use crate::decide::{Decision, Input, Memory, decide};
use crate::model::{
    Automated, DirectorySource, MANAGED_LABEL, ResourceKey, SourceFile, TRACKING_ANNOTATION, owner,
};
use crate::plan::{Desired, PlanOptions, Step, SyncPlan, Tracked, plan};
use crate::render::render_directory;

const APP: &str = "shop";
const KINDS: [&str; 3] = ["ConfigMap", "Secret", "Service"];
const NAMESPACES: [&str; 2] = ["a", "b"];
const NAMES: [&str; 3] = ["x", "y", "z"];

/// What a live object's tracking annotation says.
#[derive(Clone, Copy, Debug)]
enum Id {
    /// None at all.
    Missing,
    /// This application's id for this very object.
    Own,
    /// Another application's id for this object.
    OtherApp,
    /// This application's id for another object (a copied annotation).
    Copied,
    /// Not a tracking id.
    Garbage,
}

/// A live object: kind, namespace, name (indices into the universe), its
/// managed label (absent, "true", "false") and its tracking annotation.
fn live_object() -> impl Strategy<Value = Value> {
    (
        0..KINDS.len(),
        0..NAMESPACES.len(),
        0..NAMES.len(),
        prop::option::of(any::<bool>()),
        prop::sample::select(vec![Id::Missing, Id::Own, Id::OtherApp, Id::Copied, Id::Garbage]),
    )
        .prop_map(|(k, ns, n, label, id)| {
            let key = key(k, ns, n);
            let id = match id {
                Id::Missing => None,
                Id::Own => Some(key.tracking_id(APP)),
                Id::OtherApp => Some(key.tracking_id("other")),
                Id::Copied => Some(self::key((k + 1) % KINDS.len(), ns, n).tracking_id(APP)),
                Id::Garbage => Some(format!("{APP}-{}", key.name)),
            };
            let mut metadata = json!({"name": NAMES[n], "namespace": NAMESPACES[ns], "uid": format!("uid-{k}-{ns}-{n}")});
            if let Some(label) = label {
                metadata["labels"] = json!({MANAGED_LABEL: label.to_string()});
            }
            if let Some(id) = id {
                metadata["annotations"] = json!({TRACKING_ANNOTATION: id});
            }
            json!({"apiVersion": "v1", "kind": KINDS[k], "metadata": metadata})
        })
}

fn key(k: usize, ns: usize, n: usize) -> ResourceKey {
    ResourceKey {
        group: String::new(),
        kind: KINDS[k].to_string(),
        namespace: NAMESPACES[ns].to_string(),
        name: NAMES[n].to_string(),
    }
}

/// A file of the application folder: a manifest, or one of the ways a file
/// can be broken (each looks like a manifest, so none is skipped as
/// unrelated YAML).
fn file() -> impl Strategy<Value = (bool, Vec<u8>)> {
    (0..KINDS.len(), 0..NAMESPACES.len(), 0..NAMES.len(), 0..6u8).prop_map(|(k, ns, n, broken)| {
        let good = format!(
            "apiVersion: v1\nkind: {}\nmetadata:\n  name: {}\n  namespace: {}\n",
            KINDS[k], NAMES[n], NAMESPACES[ns]
        );
        let data = match broken {
            // Unclosed flow sequence.
            1 => format!("{good}  labels: [\n").into_bytes(),
            // Invalid UTF-8 inside a value.
            2 => {
                let mut bytes = format!("{good}  labels:\n    team: ").into_bytes();
                bytes.extend_from_slice(b"\xff\xfe\n");
                bytes
            }
            // No name.
            3 => format!("apiVersion: v1\nkind: {}\nmetadata: {{}}\n", KINDS[k]).into_bytes(),
            // A key twice.
            4 => format!("{good}kind: Secret\n").into_bytes(),
            // Not an object.
            5 => b"apiVersion: v1\nkind: [ConfigMap]\nmetadata: 3\n".to_vec(),
            _ => good.into_bytes(),
        };
        (broken != 0, data)
    })
}

/// Files (broken or not, contents), live objects, prune, allowEmpty.
type Inputs = (Vec<(bool, Vec<u8>)>, Vec<Value>, bool, bool);

fn inputs() -> impl Strategy<Value = Inputs> {
    (
        prop::collection::vec(file(), 0..6),
        prop::collection::vec(live_object(), 0..12),
        any::<bool>(),
        any::<bool>(),
    )
}

/// What a reconcile does with them: render the folder (a failed render
/// plans nothing), keep the live objects this application owns, and plan
/// the sync with the owned objects no longer desired as prune candidates.
fn reconcile_plan(
    files: &[(bool, Vec<u8>)],
    live: &[Value],
    prune: bool,
    allow_empty: bool,
) -> Option<SyncPlan> {
    let files: Vec<SourceFile> = files
        .iter()
        .enumerate()
        .map(|(i, (_, data))| SourceFile {
            path: format!("f{i}.yaml"),
            data: data.clone(),
        })
        .collect();
    let manifests = render_directory(&files, &DirectorySource::default()).ok()?;
    let desired: Vec<Desired> = manifests
        .into_iter()
        .map(|m| Desired {
            key: ResourceKey::of(&m.object).expect("render checked the key"),
            object: m.object,
            modified: true,
        })
        .collect();
    let mut owned: Vec<Tracked> = Vec::new();
    for object in live {
        let Some((app, key)) = owner(object) else {
            continue;
        };
        if app != APP || owned.iter().any(|t| t.key == key) {
            continue;
        }
        owned.push(Tracked {
            key,
            api_version: "v1".into(),
            sync_options: None,
            uid: object["metadata"]["uid"]
                .as_str()
                .unwrap_or_default()
                .into(),
            wave: crate::waves::wave_of(object).unwrap_or(0),
        });
    }
    let extras: Vec<Tracked> = owned
        .into_iter()
        .filter(|t| !desired.iter().any(|d| d.key == t.key))
        .collect();
    let options = PlanOptions {
        prune,
        allow_empty,
        ..Default::default()
    };
    plan(&desired, &extras, &options).ok()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    /// Every prune names a live object that carries Plumb's label and this
    /// application's tracking id for that very object, and is not desired;
    /// nothing is pruned with prune off; a folder with a broken file fails
    /// to render, so nothing is planned (a partial render would prune what
    /// the broken file holds).
    #[test]
    fn prunes_only_this_apps_tracked_objects((files, live, prune, allow_empty) in inputs()) {
        let broken = files.iter().any(|(broken, _)| *broken);
        let planned = reconcile_plan(&files, &live, prune, allow_empty);
        if broken {
            prop_assert!(planned.is_none(), "a broken file rendered and planned");
            return Ok(());
        }
        let Some(p) = planned else { return Ok(()) };
        for step in p.steps() {
            if let Step::Prune { key, uid, .. } = step {
                prop_assert!(prune, "pruned {key} with prune off");
                let ours = live.iter().any(|o| {
                    o["metadata"]["uid"].as_str() == Some(uid.as_str())
                        && o.pointer(&format!("/metadata/labels/{}", MANAGED_LABEL.replace('/', "~1"))) == Some(&json!("true"))
                        && o.pointer(&format!("/metadata/annotations/{}", TRACKING_ANNOTATION.replace('/', "~1")))
                            == Some(&json!(key.tracking_id(APP)))
                });
                prop_assert!(ours, "pruned {key}, which does not carry {APP}'s tracking id");
            }
        }
    }

    /// The automated policy never asks for a pruning sync when
    /// `automated.prune` is off.
    #[test]
    fn automated_sync_prunes_only_when_the_policy_says_so(
        prune in any::<bool>(), self_heal in any::<bool>(), pinned in any::<bool>(),
        modified in any::<bool>(), extras in any::<bool>(), synced_before in any::<bool>(),
    ) {
        let automated = Automated { prune, self_heal, allow_empty: false };
        let input = Input { automated: Some(&automated), pinned, revision: "abc", modified, extras };
        let memory = Memory { last_synced: synced_before.then(|| "abc".to_string()), ..Default::default() };
        let (decision, _) = decide(&input, &memory, std::time::Instant::now());
        if let Decision::Sync { prune: p, .. } = decision {
            prop_assert_eq!(p, prune);
            prop_assert!(!pinned);
        }
    }
}
