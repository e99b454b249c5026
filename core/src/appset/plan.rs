//! What one ApplicationSet pass may do: from the Applications it generated
//! and the ones that exist, which to create, update and delete under the
//! `applicationsSync` policy and Plumb's safety rules. A pure function; the
//! engine carries the plan out.
//!
//! The safety rules beyond Argo CD's: a pass with any generator or template
//! error never gets here (nothing is created, updated or deleted); two
//! generated Applications with one name are an error; and deletions that
//! would remove at least a configured share of an ApplicationSet's
//! applications (by default: all of them) are held until a person confirms
//! that exact set of deletions.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

/// Annotation on an ApplicationSet that confirms a held deletion; its value
/// must be the token the `DeletionHeld` condition names, so a confirmation
/// never covers a different set of deletions than the one a person saw.
pub const CONFIRM_DELETION_ANNOTATION: &str = "plumb.dev/confirm-deletion";

/// `spec.syncPolicy.applicationsSync`: what a pass may do.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ApplicationsSync {
    /// Create, update and delete (Argo CD's default).
    #[default]
    Sync,
    /// Create only.
    CreateOnly,
    /// Create and update, never delete.
    CreateUpdate,
    /// Create and delete, never update.
    CreateDelete,
}

impl ApplicationsSync {
    /// Parses Argo CD's names.
    ///
    /// # Errors
    /// For any other name.
    pub fn parse(name: &str) -> Result<ApplicationsSync, String> {
        match name {
            "sync" => Ok(ApplicationsSync::Sync),
            "create-only" => Ok(ApplicationsSync::CreateOnly),
            "create-update" => Ok(ApplicationsSync::CreateUpdate),
            "create-delete" => Ok(ApplicationsSync::CreateDelete),
            other => Err(format!(
                "unknown applicationsSync policy {other:?} (one of create-only, create-update, create-delete, sync)"
            )),
        }
    }

    /// Its name as Argo CD writes it.
    pub fn name(self) -> &'static str {
        match self {
            ApplicationsSync::Sync => "sync",
            ApplicationsSync::CreateOnly => "create-only",
            ApplicationsSync::CreateUpdate => "create-update",
            ApplicationsSync::CreateDelete => "create-delete",
        }
    }

    fn may_update(self) -> bool {
        matches!(
            self,
            ApplicationsSync::Sync | ApplicationsSync::CreateUpdate
        )
    }

    fn may_delete(self) -> bool {
        matches!(
            self,
            ApplicationsSync::Sync | ApplicationsSync::CreateDelete
        )
    }

    /// The policy in force: the ApplicationSet's own when the server lets
    /// ApplicationSets override its policy (as Argo CD's
    /// `applicationsetcontroller.enable.policy.override`), else the
    /// server's.
    ///
    /// # Errors
    /// When the ApplicationSet's policy is not a known name.
    pub fn effective(
        server: ApplicationsSync,
        allow_override: bool,
        own: Option<&str>,
    ) -> Result<ApplicationsSync, String> {
        match own {
            Some(name) if allow_override => ApplicationsSync::parse(name),
            _ => Ok(server),
        }
    }
}

/// An Application that exists in the cluster, as the plan needs it.
#[derive(Clone, Debug, PartialEq)]
pub struct Existing {
    /// Its `metadata` (labels, annotations, finalizers are read).
    pub metadata: Value,
    /// The [`spec_hash`] of its `spec` as stored.
    pub spec_hash: u64,
    /// Whether this ApplicationSet owns it (its owner reference or label).
    pub owned: bool,
}

/// A hash of a JSON value that does not depend on the order of map keys
/// (the API server returns a custom resource's fields sorted, a template
/// writes them in any order), stable across restarts: FNV-1a over a
/// canonical walk.
pub fn spec_hash(value: &Value) -> u64 {
    fn eat(h: &mut u64, bytes: &[u8]) {
        for b in bytes {
            *h ^= u64::from(*b);
            *h = h.wrapping_mul(0x0100_0000_01b3);
        }
    }
    fn walk(value: &Value, h: &mut u64) {
        match value {
            Value::Null => eat(h, b"n"),
            Value::Bool(b) => eat(h, if *b { b"t" } else { b"f" }),
            Value::Number(n) => {
                eat(h, b"#");
                eat(h, n.to_string().as_bytes());
            }
            Value::String(s) => {
                eat(h, b"\"");
                eat(h, s.as_bytes());
                eat(h, b"\"");
            }
            Value::Array(items) => {
                eat(h, b"[");
                for item in items {
                    walk(item, h);
                    eat(h, b",");
                }
                eat(h, b"]");
            }
            Value::Object(map) => {
                let mut keys: Vec<&String> = map.keys().collect();
                keys.sort();
                eat(h, b"{");
                for k in keys {
                    walk(&Value::String(k.clone()), h);
                    eat(h, b":");
                    walk(&map[k], h);
                    eat(h, b",");
                }
                eat(h, b"}");
            }
        }
    }
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    walk(value, &mut h);
    h
}

/// The rules a pass follows, besides the policy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlanRules {
    /// What may be created, updated and deleted.
    pub policy: ApplicationsSync,
    /// Deletions are held when they would remove at least this percentage
    /// of the ApplicationSet's applications (100: only when they would
    /// remove all of them; 0 or less holds every deletion).
    pub max_delete_percent: u8,
    /// The tokens that confirm a held deletion: the value of
    /// [`CONFIRM_DELETION_ANNOTATION`] on the ApplicationSet and one given
    /// through the API. Any of them that names this pass's deletions lets
    /// them go ahead.
    pub confirmations: Vec<String>,
}

/// Deletions held until a person confirms them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HeldDeletion {
    /// The applications that would be deleted.
    pub names: Vec<String>,
    /// How many the ApplicationSet owns now.
    pub owned: usize,
    /// The value of [`CONFIRM_DELETION_ANNOTATION`] that confirms exactly
    /// these deletions.
    pub token: String,
}

/// What one pass does.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct AppSetPlan {
    /// Applications to create.
    pub create: Vec<Value>,
    /// Applications whose generated fields changed, to apply again.
    pub update: Vec<Value>,
    /// Owned applications no longer generated, to delete.
    pub delete: Vec<String>,
    /// Generated applications that match what exists.
    pub unchanged: Vec<String>,
    /// Deletions the policy forbids or the share rule holds (not in
    /// `delete`).
    pub kept: Vec<String>,
    /// Updates the policy forbids (not in `update`).
    pub not_updated: Vec<String>,
    /// Generated applications whose name belongs to an Application this
    /// ApplicationSet does not own: left alone, reported.
    pub conflicts: Vec<String>,
    /// Set when the share rule holds the deletions.
    pub held: Option<HeldDeletion>,
}

/// The error of planning a pass.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PlanError {
    /// Two generated Applications have one name.
    #[error("two generated applications are named {0:?}; nothing was created, updated or deleted")]
    DuplicateName(String),
    /// A generated Application has no name.
    #[error(
        "a generated application has no metadata.name; nothing was created, updated or deleted"
    )]
    NoName,
}

fn name_of(object: &Value) -> Option<&str> {
    object
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .filter(|n| !n.is_empty())
}

/// Whether `existing` already holds what `desired` would set: the same
/// spec, and every label, annotation and finalizer of `desired`. Fields
/// others added (labels, the status, an operation) do not count.
pub fn up_to_date(desired: &Value, existing: &Existing) -> bool {
    let same_map = |field: &str| {
        let want = desired
            .pointer(&format!("/metadata/{field}"))
            .and_then(Value::as_object);
        let have = existing.metadata.get(field).and_then(Value::as_object);
        want.into_iter()
            .flatten()
            .all(|(k, v)| have.and_then(|h| h.get(k)) == Some(v))
    };
    let finalizers = |metadata: Option<&Value>| -> BTreeSet<String> {
        metadata
            .and_then(|m| m.get("finalizers"))
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .map(str::to_string)
            .collect()
    };
    let empty = Value::Object(serde_json::Map::new());
    spec_hash(desired.get("spec").unwrap_or(&empty)) == existing.spec_hash
        && same_map("labels")
        && same_map("annotations")
        && finalizers(desired.get("metadata")).is_subset(&finalizers(Some(&existing.metadata)))
}

/// A short token naming a set of deletions, the same across restarts and
/// versions of Plumb.
fn token(names: &[String]) -> String {
    format!("{:016x}", spec_hash(&Value::from(names.to_vec())))
}

/// Plans one pass.
///
/// # Errors
/// When two generated Applications share a name or one has none: the whole
/// pass is refused (a last-one-wins would deploy something the user did
/// not write twice).
pub fn plan(
    desired: Vec<Value>,
    existing: &BTreeMap<String, Existing>,
    rules: &PlanRules,
) -> Result<AppSetPlan, PlanError> {
    let mut seen = BTreeSet::new();
    for app in &desired {
        let name = name_of(app).ok_or(PlanError::NoName)?;
        if !seen.insert(name.to_string()) {
            return Err(PlanError::DuplicateName(name.to_string()));
        }
    }
    let mut out = AppSetPlan::default();
    for app in desired {
        let name = name_of(&app).expect("checked above").to_string();
        match existing.get(&name) {
            None => out.create.push(app),
            Some(e) if !e.owned => out.conflicts.push(name),
            Some(e) if up_to_date(&app, e) => out.unchanged.push(name),
            Some(_) if rules.policy.may_update() => out.update.push(app),
            Some(_) => out.not_updated.push(name),
        }
    }
    let owned = existing.values().filter(|e| e.owned).count();
    let gone: Vec<String> = existing
        .iter()
        .filter(|(name, e)| e.owned && !seen.contains(*name))
        .map(|(name, _)| name.clone())
        .collect();
    if gone.is_empty() {
        return Ok(out);
    }
    if !rules.policy.may_delete() {
        out.kept = gone;
        return Ok(out);
    }
    // Held when the share deleted reaches the limit: `gone / owned >=
    // limit / 100`, in integers.
    let reaches_limit = gone.len() * 100 >= usize::from(rules.max_delete_percent) * owned;
    let token = token(&gone);
    if reaches_limit && !rules.confirmations.contains(&token) {
        out.held = Some(HeldDeletion {
            names: gone.clone(),
            owned,
            token,
        });
        out.kept = gone;
    } else {
        out.delete = gone;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn app(name: &str, path: &str) -> Value {
        json!({"metadata": {"name": name, "labels": {"env": "dev"}, "finalizers": ["resources-finalizer.argocd.argoproj.io"]},
               "spec": {"source": {"repoURL": "r", "path": path}}})
    }

    fn existing(apps: &[(&str, &str, bool)]) -> BTreeMap<String, Existing> {
        apps.iter()
            .map(|(name, path, owned)| (name.to_string(), existing_of(&app(name, path), *owned)))
            .collect()
    }

    /// As the cluster has it: keys sorted, with what others added (a
    /// label, the status), which does not make it out of date.
    fn existing_of(app: &Value, owned: bool) -> Existing {
        let mut metadata = app["metadata"].clone();
        metadata["labels"]["extra"] = json!("x");
        let spec: serde_json::Map<String, Value> = app["spec"]
            .as_object()
            .expect("a spec")
            .iter()
            .rev()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        Existing {
            metadata,
            spec_hash: spec_hash(&Value::Object(spec)),
            owned,
        }
    }

    fn rules(policy: ApplicationsSync) -> PlanRules {
        PlanRules {
            policy,
            max_delete_percent: 100,
            confirmations: Vec::new(),
        }
    }

    fn names(apps: &[Value]) -> Vec<&str> {
        apps.iter().filter_map(name_of).collect()
    }

    #[test]
    fn each_policy_creates_updates_and_deletes_what_it_allows() {
        use ApplicationsSync::*;
        // Existing: a (unchanged), b (changed), c (gone); desired adds d.
        let have = existing(&[("a", "a", true), ("b", "old", true), ("c", "c", true)]);
        let want = || vec![app("a", "a"), app("b", "new"), app("d", "d")];
        /// (policy, create, update, delete, kept, not updated)
        type Case = (
            ApplicationsSync,
            &'static [&'static str],
            &'static [&'static str],
            &'static [&'static str],
            &'static [&'static str],
            &'static [&'static str],
        );
        let cases: [Case; 4] = [
            (Sync, &["d"], &["b"], &["c"], &[], &[]),
            (CreateOnly, &["d"], &[], &[], &["c"], &["b"]),
            (CreateUpdate, &["d"], &["b"], &[], &["c"], &[]),
            (CreateDelete, &["d"], &[], &["c"], &[], &["b"]),
        ];
        for (policy, create, update, delete, kept, not_updated) in cases {
            let p = plan(want(), &have, &rules(policy)).expect("plans");
            assert_eq!(names(&p.create), create, "{policy:?} create");
            assert_eq!(names(&p.update), update, "{policy:?} update");
            assert_eq!(p.delete, delete, "{policy:?} delete");
            assert_eq!(p.kept, kept, "{policy:?} kept");
            assert_eq!(p.not_updated, not_updated, "{policy:?} not updated");
            assert_eq!(p.unchanged, ["a"], "{policy:?} unchanged");
            assert!(p.held.is_none());
        }
    }

    #[test]
    fn duplicate_generated_names_refuse_the_whole_pass() {
        let have = existing(&[("a", "a", true)]);
        let err = plan(
            vec![app("x", "1"), app("x", "2")],
            &have,
            &rules(ApplicationsSync::Sync),
        )
        .expect_err("duplicate");
        assert_eq!(err, PlanError::DuplicateName("x".into()));
        let nameless = json!({"metadata": {}, "spec": {}});
        assert_eq!(
            plan(vec![nameless], &have, &rules(ApplicationsSync::Sync)),
            Err(PlanError::NoName)
        );
    }

    #[test]
    fn a_drop_to_zero_is_held_until_that_exact_set_is_confirmed() {
        let have = existing(&[("a", "a", true), ("b", "b", true)]);
        let p = plan(Vec::new(), &have, &rules(ApplicationsSync::Sync)).expect("plans");
        assert!(p.delete.is_empty());
        assert_eq!(p.kept, ["a", "b"]);
        let held = p.held.expect("held");
        assert_eq!((held.names.len(), held.owned), (2, 2));

        // A confirmation of another set does not count.
        let mut confirmed = rules(ApplicationsSync::Sync);
        confirmed.confirmations = vec![token(&["a".to_string()])];
        assert!(
            plan(Vec::new(), &have, &confirmed)
                .expect("plans")
                .held
                .is_some()
        );
        // An older confirmation beside it does not hide it.
        confirmed.confirmations.push(held.token);
        let p = plan(Vec::new(), &have, &confirmed).expect("plans");
        assert_eq!(p.delete, ["a", "b"]);
        assert!(p.held.is_none());
    }

    #[test]
    fn the_share_rule_holds_deletions_at_or_over_the_limit() {
        let have = existing(&[
            ("a", "a", true),
            ("b", "b", true),
            ("c", "c", true),
            ("d", "d", true),
        ]);
        // (limit %, apps kept in Git, held)
        let cases = [
            (100, 1, false),
            (100, 0, true),
            (50, 3, false),
            (50, 2, true),
            (25, 3, true),
            (0, 3, true),
        ];
        for (limit, keep, held) in cases {
            let want = ["a", "b", "c", "d"][..keep]
                .iter()
                .map(|n| app(n, n))
                .collect();
            let mut r = rules(ApplicationsSync::Sync);
            r.max_delete_percent = limit;
            let p = plan(want, &have, &r).expect("plans");
            assert_eq!(p.held.is_some(), held, "limit {limit}% keeping {keep}");
            assert_eq!(p.delete.is_empty(), held, "limit {limit}% keeping {keep}");
        }
    }

    #[test]
    fn applications_it_does_not_own_are_neither_updated_nor_deleted() {
        let have = existing(&[("mine", "a", true), ("theirs", "a", false)]);
        let p = plan(
            vec![app("theirs", "b")],
            &have,
            &PlanRules {
                policy: ApplicationsSync::Sync,
                max_delete_percent: 100,
                confirmations: Vec::new(),
            },
        )
        .expect("plans");
        assert_eq!(p.conflicts, ["theirs"]);
        assert!(p.update.is_empty());
        // `mine` goes, and it is all this set owns: held.
        assert_eq!(p.kept, ["mine"]);
        assert!(p.held.is_some());
    }

    #[test]
    fn up_to_date_ignores_what_others_added_but_not_a_removed_finalizer() {
        let desired = app("a", "a");
        let mut live = existing_of(&desired, true);
        live.metadata["annotations"] = json!({"note": "x"});
        assert!(up_to_date(&desired, &live));
        let mut changed = desired.clone();
        changed["metadata"]["labels"]["env"] = json!("prod");
        assert!(!up_to_date(&changed, &live));
        changed = desired.clone();
        changed["spec"]["source"]["path"] = json!("b");
        assert!(!up_to_date(&changed, &live));
        live.metadata["finalizers"] = json!([]);
        assert!(!up_to_date(&desired, &live));
    }

    proptest::proptest! {
        /// For any generated names (duplicates included) and any existing
        /// applications, owned or not: a plan never creates, updates or
        /// deletes an application it does not own, never deletes one it
        /// still generates, touches each name at most once, and never
        /// deletes every owned application without a confirmation.
        #[test]
        fn a_plan_never_touches_what_it_does_not_own_nor_drops_everything_unconfirmed(
            wanted in proptest::collection::vec(0u8..12, 0..10),
            have in proptest::collection::btree_map(0u8..12, proptest::bool::ANY, 0..10),
            policy in 0u8..4,
        ) {
            let policy = [ApplicationsSync::Sync, ApplicationsSync::CreateOnly,
                          ApplicationsSync::CreateUpdate, ApplicationsSync::CreateDelete][usize::from(policy)];
            let name = |n: &u8| format!("app-{n}");
            let existing: BTreeMap<String, Existing> = have
                .iter()
                .map(|(n, owned)| (name(n), existing_of(&app(&name(n), "old"), *owned)))
                .collect();
            let desired: Vec<Value> = wanted.iter().map(|n| app(&name(n), "new")).collect();
            let unique: BTreeSet<&u8> = wanted.iter().collect();
            match plan(desired, &existing, &rules(policy)) {
                Err(PlanError::DuplicateName(_)) => proptest::prop_assert!(unique.len() < wanted.len()),
                Err(e) => proptest::prop_assert!(false, "unexpected {e}"),
                Ok(p) => {
                    proptest::prop_assert_eq!(unique.len(), wanted.len());
                    let mut touched = BTreeSet::new();
                    for n in names(&p.create).into_iter().chain(names(&p.update)).chain(p.delete.iter().map(String::as_str)) {
                        proptest::prop_assert!(touched.insert(n.to_string()), "{} twice", n);
                    }
                    for n in names(&p.update).into_iter().chain(p.delete.iter().map(String::as_str)) {
                        proptest::prop_assert!(existing.get(n).is_some_and(|e| e.owned), "{} not owned", n);
                    }
                    for n in names(&p.create) {
                        proptest::prop_assert!(!existing.contains_key(n));
                    }
                    for n in &p.delete {
                        proptest::prop_assert!(!wanted.iter().any(|w| &name(w) == n));
                    }
                    let owned = existing.values().filter(|e| e.owned).count();
                    proptest::prop_assert!(owned == 0 || p.delete.len() < owned);
                }
            }
        }
    }

    #[test]
    fn spec_hash_ignores_key_order_only() {
        let a = json!({"a": 1, "b": {"c": [1, "x"], "d": null}});
        let b = json!({"b": {"d": null, "c": [1, "x"]}, "a": 1});
        assert_eq!(spec_hash(&a), spec_hash(&b));
        assert_ne!(
            spec_hash(&a),
            spec_hash(&json!({"a": 1, "b": {"c": ["x", 1], "d": null}}))
        );
        assert_ne!(spec_hash(&json!("1")), spec_hash(&json!(1)));
    }

    #[test]
    fn the_policy_in_force_is_the_servers_unless_overrides_are_allowed() {
        use ApplicationsSync::*;
        assert_eq!(
            ApplicationsSync::effective(Sync, false, Some("create-only")),
            Ok(Sync)
        );
        assert_eq!(
            ApplicationsSync::effective(Sync, true, Some("create-only")),
            Ok(CreateOnly)
        );
        assert_eq!(
            ApplicationsSync::effective(CreateUpdate, true, None),
            Ok(CreateUpdate)
        );
        assert!(ApplicationsSync::effective(Sync, true, Some("yes")).is_err());
    }
}
