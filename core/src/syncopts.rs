//! The sync options that change how one object is written or pruned
//! (`Replace`, `Force`, `Validate`, `SkipDryRunOnMissingResource`,
//! `Prune`), read from the application's `spec.syncPolicy.syncOptions` and
//! the object's `argocd.argoproj.io/sync-options` annotation together: the
//! object's own value wins, as in Argo CD. Also the application-only
//! `FailOnSharedResource`, and the unknown-field paths of a refused server-side
//! apply that `Validate=false` drops.
//!
//! Not the options the planner reads by themselves (`CreateNamespace`,
//! `PruneLast`, `ApplyOutOfSyncOnly`, `PrunePropagationPolicy`, `Delete`).
//! A value of one of these options that Plumb cannot read (`Replace=maybe`)
//! is an error, never a default: guessing could deploy something else than
//! the user meant.

use serde_json::Value;

use crate::model::{SYNC_OPTIONS_ANNOTATION, annotation};

/// What a prune of an object that left Git does (`Prune=...`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Prune {
    /// `Prune=true` or nothing: pruned when pruning is on.
    #[default]
    Allowed,
    /// `Prune=false`: kept.
    Disabled,
    /// `Prune=confirm`: pruned once a person confirmed it (the
    /// application's `argocd.argoproj.io/deletion-approved` annotation, or
    /// Plumb's confirm-prune API, at or after the operation's start).
    Confirm,
}

/// How one object is synced.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ObjectOptions {
    /// `Replace=true`: written whole (PUT, or POST when missing) instead of
    /// a server-side apply.
    pub replace: bool,
    /// `Force=true`: with `replace`, deleted and created again; with an
    /// apply, deleted and created again when the API server refuses the
    /// change of an immutable field.
    pub force: bool,
    /// `Validate=false` makes this false: fields the API server's schema
    /// does not know are dropped instead of refusing the object.
    pub validate: bool,
    /// `SkipDryRunOnMissingResource=true`: a kind the cluster does not
    /// serve (yet) is not an error; the object is Missing until its CRD
    /// comes.
    pub skip_dry_run_on_missing: bool,
    /// `Prune=...`.
    pub prune: Prune,
}

impl Default for ObjectOptions {
    fn default() -> ObjectOptions {
        ObjectOptions {
            replace: false,
            force: false,
            validate: true,
            skip_dry_run_on_missing: false,
            prune: Prune::Allowed,
        }
    }
}

/// An option of this module with a value Plumb cannot read.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("sync option {text:?} is not one Plumb can read ({key} takes {allowed})")]
pub struct BadOption {
    /// The option as written.
    pub text: String,
    /// Its key, as Argo CD spells it.
    pub key: &'static str,
    /// The values it takes, for the message.
    pub allowed: &'static str,
}

/// The options this module reads, with the values each takes.
const KNOWN: &[(&str, &[&str])] = &[
    ("Replace", &["true", "false"]),
    ("Force", &["true", "false"]),
    ("Validate", &["true", "false"]),
    ("SkipDryRunOnMissingResource", &["true", "false"]),
    ("Prune", &["true", "false", "confirm"]),
    ("FailOnSharedResource", &["true", "false"]),
];

/// The known options among `options` as `(key, value)`, value lowercased,
/// the first of each key winning (Argo CD reads the first too). Items
/// without `=` and other keys are left to their readers.
fn known<'a>(
    options: impl IntoIterator<Item = &'a str>,
) -> Result<Vec<(&'static str, String)>, BadOption> {
    let mut out: Vec<(&'static str, String)> = Vec::new();
    for text in options {
        let Some((key, value)) = text.split_once('=') else {
            continue;
        };
        let Some((known, allowed)) = KNOWN
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key.trim()))
        else {
            continue;
        };
        let value = value.trim().to_ascii_lowercase();
        if !allowed.contains(&value.as_str()) {
            return Err(BadOption {
                text: text.trim().to_string(),
                key: known,
                allowed: match allowed.len() {
                    2 => "true or false",
                    _ => "true, false or confirm",
                },
            });
        }
        if !out.iter().any(|(k, _)| k == known) {
            out.push((known, value));
        }
    }
    Ok(out)
}

/// The items of an `argocd.argoproj.io/sync-options` annotation.
pub fn annotation_items(text: &str) -> impl Iterator<Item = &str> + Clone {
    text.split(',').map(str::trim).filter(|s| !s.is_empty())
}

/// The options of one object: the application's `syncOptions`, then its
/// own annotation's items over them.
///
/// # Errors
/// [`BadOption`] for a value Plumb cannot read, in either list; the error
/// says which with [`Origin`].
pub fn object_options<'a>(
    app: impl IntoIterator<Item = &'a str>,
    own: Option<&str>,
) -> Result<ObjectOptions, (Origin, BadOption)> {
    let app = known(app).map_err(|e| (Origin::Application, e))?;
    let own = known(own.into_iter().flat_map(annotation_items)).map_err(|e| (Origin::Object, e))?;
    let value = |key: &str| {
        own.iter()
            .chain(&app)
            .find(|(k, _)| *k == key)
            .map(|(_, v)| v.as_str())
    };
    Ok(ObjectOptions {
        replace: value("Replace") == Some("true"),
        force: value("Force") == Some("true"),
        validate: value("Validate") != Some("false"),
        skip_dry_run_on_missing: value("SkipDryRunOnMissingResource") == Some("true"),
        prune: match value("Prune") {
            Some("false") => Prune::Disabled,
            Some("confirm") => Prune::Confirm,
            _ => Prune::Allowed,
        },
    })
}

/// The options of a desired object or a live one (its annotation).
///
/// # Errors
/// As [`object_options`].
pub fn of_object<'a>(
    app: impl IntoIterator<Item = &'a str>,
    object: &Value,
) -> Result<ObjectOptions, (Origin, BadOption)> {
    object_options(app, annotation(object, SYNC_OPTIONS_ANNOTATION))
}

/// `FailOnSharedResource=true` among the application's options.
///
/// # Errors
/// [`BadOption`] for a value of one of this module's options Plumb cannot
/// read.
pub fn fail_on_shared_resource<'a>(
    app: impl IntoIterator<Item = &'a str>,
) -> Result<bool, BadOption> {
    Ok(known(app)?
        .iter()
        .any(|(k, v)| *k == "FailOnSharedResource" && v == "true"))
}

/// Where a bad option was written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Origin {
    /// `spec.syncPolicy.syncOptions`.
    Application,
    /// The object's `argocd.argoproj.io/sync-options` annotation.
    Object,
}

/// One step of a path in a server-side apply error
/// (`.spec.containers[name="web"].bogus`).
#[derive(Clone, Debug, PartialEq)]
enum PathStep {
    /// `.name`: a field of a mapping.
    Field(String),
    /// `[k="v",...]`: the item of a list whose fields have these values.
    Key(Vec<(String, Value)>),
    /// `[=v]`: the item of a list of scalars equal to this.
    Value(Value),
    /// `[3]`: the item at this index.
    Index(usize),
}

/// The paths a server-side apply was refused for as "field not declared
/// in schema" (the API server's message, one path or `errors:` followed
/// by one per line). `None` when the message is another error, or names a
/// path this cannot read: the refusal then stands.
pub fn undeclared_fields(message: &str) -> Option<Vec<String>> {
    const SUFFIX: &str = ": field not declared in schema";
    if !message.contains(SUFFIX) {
        return None;
    }
    let mut paths = Vec::new();
    for line in message.lines() {
        let Some(end) = line.find(SUFFIX) else {
            continue;
        };
        let before = &line[..end];
        // `failed to create typed patch object (ns/name; v1, Kind=X): .a.b`
        // or, one per line after `errors:`, `  .a.b`.
        let start = before
            .rfind("): ")
            .map(|i| i + 3)
            .or_else(|| before.rfind("object: ").map(|i| i + 8))
            .unwrap_or(0);
        let path = before[start..].trim();
        parse_path(path)?;
        paths.push(path.to_string());
    }
    (!paths.is_empty()).then_some(paths)
}

fn parse_path(path: &str) -> Option<Vec<PathStep>> {
    let mut steps = Vec::new();
    let mut rest = path;
    while !rest.is_empty() {
        if let Some(after) = rest.strip_prefix('.') {
            let end = after.find(['.', '[']).unwrap_or(after.len());
            if end == 0 {
                return None;
            }
            steps.push(PathStep::Field(after[..end].to_string()));
            rest = &after[end..];
        } else if let Some(after) = rest.strip_prefix('[') {
            let (inner, tail) = split_bracket(after)?;
            rest = tail;
            if let Some(value) = inner.strip_prefix('=') {
                steps.push(PathStep::Value(serde_json::from_str(value).ok()?));
            } else if let Ok(index) = inner.parse() {
                steps.push(PathStep::Index(index));
            } else {
                // `k1="v1",k2=80`: read as the JSON object it nearly is.
                let mut keys = Vec::new();
                let mut text = inner;
                while !text.is_empty() {
                    let (key, after_key) = text.split_once('=')?;
                    let mut stream =
                        serde_json::Deserializer::from_str(after_key).into_iter::<Value>();
                    let value = stream.next()?.ok()?;
                    let used = stream.byte_offset();
                    keys.push((key.to_string(), value));
                    let after_value = &after_key[used..];
                    if after_value.is_empty() {
                        break;
                    }
                    text = after_value.strip_prefix(',')?;
                }
                steps.push(PathStep::Key(keys));
            }
        } else {
            return None;
        }
    }
    (!steps.is_empty()).then_some(steps)
}

/// The text inside a `[...]` (quotes respected) and what follows it.
fn split_bracket(text: &str) -> Option<(&str, &str)> {
    let mut quoted = false;
    let mut escaped = false;
    for (i, c) in text.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            ']' if !quoted => return Some((&text[..i], &text[i + 1..])),
            _ => {}
        }
    }
    None
}

/// Removes the field at a path of [`undeclared_fields`] from an object.
/// Returns whether it was there.
pub fn remove_field(object: &mut Value, path: &str) -> bool {
    let Some(steps) = parse_path(path) else {
        return false;
    };
    let Some((last, parents)) = steps.split_last() else {
        return false;
    };
    let mut at = object;
    for step in parents {
        let Some(next) = child(at, step) else {
            return false;
        };
        at = next;
    }
    match (last, at) {
        (PathStep::Field(name), Value::Object(map)) => map.remove(name).is_some(),
        (step, Value::Array(items)) => match items.iter().position(|i| matches(i, step)) {
            Some(position) => {
                items.remove(position);
                true
            }
            None => false,
        },
        _ => false,
    }
}

fn child<'v>(value: &'v mut Value, step: &PathStep) -> Option<&'v mut Value> {
    match (step, value) {
        (PathStep::Field(name), Value::Object(map)) => map.get_mut(name),
        (PathStep::Index(i), Value::Array(items)) => items.get_mut(*i),
        (step, Value::Array(items)) => items.iter_mut().find(|i| matches(i, step)),
        _ => None,
    }
}

fn matches(item: &Value, step: &PathStep) -> bool {
    match step {
        PathStep::Key(keys) => keys.iter().all(|(k, v)| item.get(k) == Some(v)),
        PathStep::Value(v) => item == v,
        PathStep::Field(_) | PathStep::Index(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn options(app: &[&str], own: Option<&str>) -> ObjectOptions {
        object_options(app.iter().copied(), own).expect("readable options")
    }

    #[test]
    fn nothing_set_applies_validates_and_prunes() {
        assert_eq!(options(&[], None), ObjectOptions::default());
        assert!(ObjectOptions::default().validate);
    }

    #[test]
    fn the_objects_own_value_wins_over_the_applications() {
        let o = options(
            &["Replace=true", "Prune=confirm", "Validate=false"],
            Some("Replace=false, Prune=true"),
        );
        assert!(!o.replace);
        assert_eq!(o.prune, Prune::Allowed);
        assert!(
            !o.validate,
            "the application's value stands where the object says nothing"
        );
        let o = options(&["Prune=confirm"], Some("Force=true,Replace=true"));
        assert!(o.force && o.replace);
        assert_eq!(o.prune, Prune::Confirm);
        assert_eq!(options(&[], Some("Prune=false")).prune, Prune::Disabled);
    }

    #[test]
    fn keys_and_values_are_read_without_regard_to_case_or_spaces() {
        let o = options(
            &[" replace = TRUE "],
            Some(" skipDryRunOnMissingResource=True ,prune=Confirm"),
        );
        assert!(o.replace && o.skip_dry_run_on_missing);
        assert_eq!(o.prune, Prune::Confirm);
    }

    #[test]
    fn a_value_plumb_cannot_read_is_an_error_naming_where_it_is() {
        let err = object_options(["Replace=maybe"], None).expect_err("refused");
        assert_eq!(err.0, Origin::Application);
        assert_eq!(err.1.text, "Replace=maybe");
        assert!(err.1.to_string().contains("true or false"), "{}", err.1);
        let err = object_options([], Some("Validate=false,Prune=later")).expect_err("refused");
        assert_eq!(err.0, Origin::Object);
        assert!(err.1.to_string().contains("confirm"), "{}", err.1);
        assert!(fail_on_shared_resource(["FailOnSharedResource=yes"]).is_err());
    }

    #[test]
    fn other_options_are_left_to_their_readers() {
        assert_eq!(
            options(
                &["CreateNamespace=true", "PruneLast=maybe", "Replace"],
                Some("Delete=false")
            ),
            ObjectOptions::default()
        );
        assert!(fail_on_shared_resource(["FailOnSharedResource=true"]).expect("readable"));
        assert!(!fail_on_shared_resource(["CreateNamespace=true"]).expect("readable"));
    }

    #[test]
    fn undeclared_fields_are_read_from_the_api_servers_messages() {
        assert_eq!(
            undeclared_fields(
                "failed to create typed patch object: .bogus: field not declared in schema"
            ),
            Some(vec![".bogus".to_string()])
        );
        assert_eq!(
            undeclared_fields(
                "failed to create typed patch object (ns/web; apps/v1, Kind=Deployment): .spec.template.spec.containers[name=\"web\"].bogus: field not declared in schema"
            ),
            Some(vec![
                ".spec.template.spec.containers[name=\"web\"].bogus".to_string()
            ])
        );
        assert_eq!(
            undeclared_fields(
                "failed to create typed patch object: errors:\n  .spec.a: field not declared in schema\n  .spec.b: field not declared in schema"
            ),
            Some(vec![".spec.a".to_string(), ".spec.b".to_string()])
        );
        assert_eq!(
            undeclared_fields("Invalid value: spec.selector is immutable"),
            None
        );
    }

    #[test]
    fn undeclared_fields_are_removed_where_the_path_points() {
        let mut object = json!({
            "bogus": 1,
            "spec": {"containers": [
                {"name": "a", "image": "x", "bogus": true},
                {"name": "web", "image": "y", "bogus": true}
            ], "ports": [{"containerPort": 80, "protocol": "TCP", "x": 1}], "finalizers": ["a", "b"]}
        });
        assert!(remove_field(&mut object, ".bogus"));
        assert!(remove_field(
            &mut object,
            ".spec.containers[name=\"web\"].bogus"
        ));
        assert!(remove_field(
            &mut object,
            ".spec.ports[containerPort=80,protocol=\"TCP\"].x"
        ));
        assert!(remove_field(&mut object, ".spec.finalizers[=\"b\"]"));
        assert!(!remove_field(&mut object, ".spec.nothing"));
        assert_eq!(
            object,
            json!({"spec": {"containers": [
                {"name": "a", "image": "x", "bogus": true},
                {"name": "web", "image": "y"}
            ], "ports": [{"containerPort": 80, "protocol": "TCP"}], "finalizers": ["a"]}})
        );
    }
}
