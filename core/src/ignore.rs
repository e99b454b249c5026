//! `ignoreDifferences`: the fields of an object that a comparison leaves
//! out, by JSON Pointer, jq path expression or field manager, and the
//! `RespectIgnoreDifferences` rewrite of a desired object before it is
//! applied.
//!
//! Pure: rules are compiled once ([`IgnoreRules::compile`]), matched to an
//! object by its key ([`IgnoreRules::matching`]), and resolved against each
//! document into concrete paths, which are then removed ([`Matched::mask`])
//! or filled from the live object ([`Matched::respect`]). Not here: reading
//! the live object (the engine does, only for objects a rule matches) and
//! loading `argocd-cm` (only [`server_rule`] parses one of its entries).

use std::cmp::Ordering;
use std::collections::HashMap;
use std::hash::{Hash, Hasher};

use json_patch::jsonptr::PointerBuf;
use serde_json::{Map, Value};

use crate::model::{ResourceIgnoreDifferences, ResourceKey};

/// The most paths one jq expression may yield on one document; past it the
/// expression is an error, so a runaway expression cannot exhaust memory.
pub const MAX_JQ_PATHS: usize = 10_000;

/// Calls a jq path expression may not make: generators that can run
/// without end on a finite document (`range`, `repeat`, ...), and what
/// reaches outside the document (`env`, `now`, `input`) or the process
/// (`halt`, `debug`, `stderr`). With these and local `def`s (the only way
/// to recurse) refused, every expression ends after a number of steps
/// bounded by the document's size.
const REFUSED_JQ_CALLS: &[&str] = &[
    "range",
    "repeat",
    "while",
    "until",
    "recurse",
    "combinations",
    "env",
    "now",
    "input",
    "inputs",
    "halt",
    "halt_error",
    "debug",
    "stderr",
    "debug_empty",
    "stderr_empty",
    "input_filename",
];

/// The error of compiling rules ([`IgnoreRules::compile`]) or parsing a
/// server-wide one ([`server_rule`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RuleError {
    /// A `jsonPointers` entry is not an RFC 6901 pointer.
    #[error("ignoreDifferences: jsonPointers entry {pointer:?} is not a JSON Pointer: {reason}")]
    Pointer {
        /// The pointer as written.
        pointer: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A `jqPathExpressions` entry does not parse, or uses what Plumb does
    /// not evaluate.
    #[error("ignoreDifferences: jqPathExpressions entry {expression:?}: {reason}")]
    Jq {
        /// The expression as written.
        expression: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A server-wide entry (`argocd-cm`) has a key or a text Plumb cannot
    /// read.
    #[error("resource.customizations.ignoreDifferences.{group_kind}: {reason}")]
    ServerRule {
        /// The key's `<group_kind>` part.
        group_kind: String,
        /// What is wrong.
        reason: String,
    },
    /// A server-wide rule that cannot be used, named by the settings key
    /// that holds it.
    #[error("{key}: {reason}")]
    Setting {
        /// The data key, e.g.
        /// `resource.customizations.ignoreDifferences.apps_Deployment`.
        key: String,
        /// What is wrong.
        reason: String,
    },
}

/// An error met while resolving rules against one document.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MaskError {
    /// A jq expression yielded more than [`MAX_JQ_PATHS`] paths.
    #[error("jqPathExpressions entry {0:?} selects more than {MAX_JQ_PATHS} fields")]
    TooManyPaths(String),
}

/// One step of a concrete path in a document.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Step {
    /// A key of an object.
    Key(String),
    /// An index of an array.
    Index(usize),
}

/// A concrete path in a document, from its root.
pub type Path = Vec<Step>;

/// A compiled jq path expression: `path(EXPR)`.
struct Jq {
    source: String,
    filter: jaq_core::Filter<jaq_core::data::JustLut<jaq_json::Val>>,
}

impl std::fmt::Debug for Jq {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Jq").field(&self.source).finish()
    }
}

/// One rule, compiled.
#[derive(Debug)]
struct Rule {
    group: String,
    kind: String,
    name: String,
    namespace: String,
    pointers: Vec<(String, PointerBuf)>,
    jq: Vec<Jq>,
    managers: Vec<String>,
}

impl Rule {
    fn matches(&self, key: &ResourceKey) -> bool {
        glob(&self.group, &key.group)
            && glob(&self.kind, &key.kind)
            && (self.name.is_empty() || self.name == key.name)
            && (self.namespace.is_empty() || self.namespace == key.namespace)
    }
}

/// Argo CD's glob match of a rule's group or kind: `*` any run of
/// characters, `?` one; the whole text must match. An empty pattern matches
/// only the empty text (the core group).
pub(crate) fn glob(pattern: &str, text: &str) -> bool {
    fn go(p: &[char], t: &[char]) -> bool {
        match p.split_first() {
            None => t.is_empty(),
            Some(('*', rest)) => (0..=t.len()).any(|i| go(rest, &t[i..])),
            Some(('?', rest)) => !t.is_empty() && go(rest, &t[1..]),
            Some((c, rest)) => t.first() == Some(c) && go(rest, &t[1..]),
        }
    }
    // Patterns are short: the backtracking is over a rule's group or kind.
    let (p, t): (Vec<char>, Vec<char>) = (pattern.chars().collect(), text.chars().collect());
    go(&p, &t)
}

/// The rules of one application (its own and the server-wide ones),
/// compiled: pointers parsed, jq expressions compiled.
#[derive(Debug, Default)]
pub struct IgnoreRules {
    rules: Vec<Rule>,
    hash: u64,
}

impl IgnoreRules {
    /// Compiles `rules`.
    ///
    /// # Errors
    /// The first pointer that is not a JSON Pointer, or jq expression that
    /// does not parse or makes a refused call, as [`RuleError`].
    pub fn compile<'a>(
        rules: impl IntoIterator<Item = &'a ResourceIgnoreDifferences>,
    ) -> Result<IgnoreRules, RuleError> {
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        let mut out = Vec::new();
        for rule in rules {
            rule.hash(&mut hasher);
            let pointers = rule
                .json_pointers
                .iter()
                .map(|p| {
                    PointerBuf::parse(p.as_str())
                        .map(|parsed| (p.clone(), parsed))
                        .map_err(|e| RuleError::Pointer {
                            pointer: p.clone(),
                            reason: e.to_string(),
                        })
                })
                .collect::<Result<Vec<_>, _>>()?;
            let jq = rule
                .jq_path_expressions
                .iter()
                .map(|e| compile_jq(e))
                .collect::<Result<Vec<_>, _>>()?;
            out.push(Rule {
                group: rule.group.clone(),
                kind: rule.kind.clone(),
                name: rule.name.clone(),
                namespace: rule.namespace.clone(),
                pointers,
                jq,
                managers: rule.managed_fields_managers.clone(),
            });
        }
        Ok(IgnoreRules {
            rules: out,
            hash: hasher.finish(),
        })
    }

    /// Whether there are no rules at all.
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// A hash of the rules as written: a comparison remembered under one
    /// set of rules is not reused under another.
    pub fn hash(&self) -> u64 {
        self.hash
    }

    /// What the rules ignore of the object `key` (merged over every rule
    /// that matches it, as Argo CD merges them); `None` when no rule
    /// matches, so such an object is compared as if there were no rules.
    pub fn matching(&self, key: &ResourceKey) -> Option<Matched<'_>> {
        let rules: Vec<&Rule> = self.rules.iter().filter(|r| r.matches(key)).collect();
        if rules.is_empty() {
            return None;
        }
        Some(Matched { rules })
    }
}

/// What the rules that match one object ignore of it.
#[derive(Debug)]
pub struct Matched<'a> {
    rules: Vec<&'a Rule>,
}

impl Matched<'_> {
    /// Whether a rule names field managers: the live object's
    /// `metadata.managedFields` is then needed.
    pub fn needs_managed_fields(&self) -> bool {
        self.rules.iter().any(|r| !r.managers.is_empty())
    }

    /// The concrete paths the rules select in `document`; fields managed by
    /// the rules' managers are looked up in `managed_fields` (the live
    /// object's `metadata.managedFields`). A jq expression that fails on
    /// this document (it iterates over a field that is absent, say) selects
    /// nothing, as in Argo CD. Sorted, without duplicates.
    ///
    /// # Errors
    /// [`MaskError::TooManyPaths`] when an expression selects too much.
    pub fn paths(
        &self,
        document: &Value,
        managed_fields: Option<&Value>,
    ) -> Result<Vec<Path>, MaskError> {
        let mut out: Vec<Path> = Vec::new();
        for rule in &self.rules {
            for (_, pointer) in &rule.pointers {
                if let Some(path) = resolve_pointer(document, pointer) {
                    out.push(path);
                }
            }
            for jq in &rule.jq {
                out.extend(jq_paths(jq, document)?);
            }
        }
        let managers: Vec<&str> = self
            .rules
            .iter()
            .flat_map(|r| r.managers.iter().map(String::as_str))
            .collect();
        if !managers.is_empty() {
            for entry in managed_fields
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                let manager = entry.get("manager").and_then(Value::as_str);
                if !manager.is_some_and(|m| managers.contains(&m)) {
                    continue;
                }
                if let Some(Value::Object(set)) = entry.get("fieldsV1") {
                    fields_v1_paths(set, document, &mut Vec::new(), &mut out);
                }
            }
        }
        out.sort_by(path_order);
        out.dedup();
        Ok(out)
    }

    /// Removes the ignored fields from both sides of a comparison: the live
    /// object (with its `managedFields`, which are read before anything is
    /// removed) and the predicted one. Each side's paths are resolved on
    /// that side, as Argo CD normalizes each.
    ///
    /// # Errors
    /// As [`Matched::paths`].
    pub fn mask(&self, live: &mut Value, predicted: &mut Value) -> Result<(), MaskError> {
        let managed = live.pointer("/metadata/managedFields").cloned();
        let live_paths = self.paths(live, managed.as_ref())?;
        let predicted_paths = self.paths(predicted, managed.as_ref())?;
        remove_paths(live, &live_paths);
        remove_paths(predicted, &predicted_paths);
        Ok(())
    }

    /// `RespectIgnoreDifferences`: the desired object with its ignored
    /// fields taken from the live one. Ignored fields are removed from
    /// `desired`, then those the live object has are copied in at the same
    /// place (list items by position), so an apply keeps their live values.
    /// Never copied: `status` and what the API server writes in `metadata`
    /// (`managedFields`, `resourceVersion`, `uid`, ...), which an apply must
    /// not carry.
    ///
    /// # Errors
    /// As [`Matched::paths`].
    pub fn respect(&self, desired: &mut Value, live: &Value) -> Result<(), MaskError> {
        let managed = live.pointer("/metadata/managedFields");
        let desired_paths = self.paths(desired, managed)?;
        let live_paths = self.paths(live, managed)?;
        remove_paths(desired, &desired_paths);
        let clean_live = crate::diff::normalize(live);
        for path in &live_paths {
            if path.first() == Some(&Step::Key("status".into())) {
                continue;
            }
            if let Some(value) = get_path(&clean_live, path) {
                set_path(desired, path, value.clone());
            }
        }
        Ok(())
    }
}

/// The path a pointer names in `document`, if it is there. `-` and
/// indices past the end name nothing.
fn resolve_pointer(document: &Value, pointer: &PointerBuf) -> Option<Path> {
    let mut at = document;
    let mut path = Vec::new();
    for token in pointer.tokens() {
        let token = token.decoded();
        match at {
            Value::Object(map) => {
                at = map.get(token.as_ref())?;
                path.push(Step::Key(token.into_owned()));
            }
            Value::Array(items) => {
                let i: usize = token.parse().ok()?;
                at = items.get(i)?;
                path.push(Step::Index(i));
            }
            _ => return None,
        }
    }
    Some(path)
}

/// The paths `path(EXPR)` yields on `document`, at most [`MAX_JQ_PATHS`].
fn jq_paths(jq: &Jq, document: &Value) -> Result<Vec<Path>, MaskError> {
    use jaq_core::{Ctx, Vars, unwrap_valr};
    let text = serde_json::to_vec(document).expect("a JSON value always serializes");
    let Ok(input) = jaq_json::read::parse_single(&text) else {
        return Ok(Vec::new());
    };
    let ctx = Ctx::<jaq_core::data::JustLut<jaq_json::Val>>::new(&jq.filter.lut, Vars::new([]));
    let mut out = Vec::new();
    for result in jq.filter.id.run((ctx, input)).map(unwrap_valr) {
        // An error ends the expression on this document, like Argo CD's
        // failed patch, which is skipped.
        let Ok(value) = result else { break };
        if out.len() == MAX_JQ_PATHS {
            return Err(MaskError::TooManyPaths(jq.source.clone()));
        }
        let Ok(Value::Array(steps)) = serde_json::from_str::<Value>(&value.to_string()) else {
            continue;
        };
        let path: Option<Path> = steps
            .into_iter()
            .map(|s| match s {
                Value::String(k) => Some(Step::Key(k)),
                Value::Number(n) => n
                    .as_u64()
                    .and_then(|i| usize::try_from(i).ok())
                    .map(Step::Index),
                _ => None,
            })
            .collect();
        // A path to nothing (`.absent`) is no field to ignore.
        if let Some(path) = path.filter(|p| get_path(document, p).is_some()) {
            out.push(path);
        }
    }
    Ok(out)
}

/// Compiles `path(EXPR)`, refusing local definitions and the calls of
/// [`REFUSED_JQ_CALLS`].
fn compile_jq(expression: &str) -> Result<Jq, RuleError> {
    use jaq_core::load::{Arena, File, Loader};
    let error = |reason: String| RuleError::Jq {
        expression: expression.to_string(),
        reason,
    };
    let term = jaq_core::load::parse(expression, |p| p.term())
        .ok_or_else(|| error("does not parse as jq".into()))?;
    if let Some(refused) = refused_in(&term) {
        return Err(error(refused));
    }
    let code = format!("path({expression})");
    let defs = jaq_core::defs()
        .chain(jaq_std::defs())
        .chain(jaq_json::defs());
    // Every function is defined (the standard library's own definitions
    // call some of the refused ones); the expression itself may not call
    // those, and cannot define its own.
    let funs = jaq_core::funs()
        .chain(jaq_std::funs())
        .chain(jaq_json::funs());
    let arena = Arena::default();
    let modules = Loader::new(defs)
        .load(
            &arena,
            File {
                code: code.as_str(),
                path: (),
            },
        )
        .map_err(|errors| error(format!("does not parse as jq: {}", describe(&errors))))?;
    let filter = jaq_core::Compiler::default()
        .with_funs(funs)
        .compile(modules)
        .map_err(|errors| error(format!("does not compile: {}", describe(&errors))))?;
    Ok(Jq {
        source: expression.to_string(),
        filter,
    })
}

/// A short text of jaq's load or compile errors.
fn describe<F, E: std::fmt::Debug>(errors: &[(F, E)]) -> String {
    errors
        .iter()
        .map(|(_, e)| format!("{e:?}"))
        .collect::<Vec<_>>()
        .join("; ")
}

/// Why a parsed jq term is refused: a local `def` or a call of
/// [`REFUSED_JQ_CALLS`].
fn refused_in(term: &jaq_core::load::parse::Term<&str>) -> Option<String> {
    use jaq_core::load::lex::StrPart;
    use jaq_core::load::parse::{BinaryOp, Pattern, Term};
    use jaq_core::path::Part;
    fn pattern(p: &Pattern<&str>) -> Option<String> {
        match p {
            Pattern::Var(_) => None,
            Pattern::Arr(items) => items.iter().find_map(pattern),
            Pattern::Obj(entries) => entries
                .iter()
                .find_map(|(k, v)| refused_in(k).or_else(|| pattern(v))),
        }
    }
    fn all<'t, 's: 't>(terms: impl IntoIterator<Item = &'t Term<&'s str>>) -> Option<String> {
        terms.into_iter().find_map(refused_in)
    }
    match term {
        Term::Id | Term::Recurse | Term::Num(_) | Term::Var(_) | Term::Break(_) => None,
        Term::Def(..) => Some("local definitions (def) are not evaluated".into()),
        Term::Call(name, args) => {
            // `recurse` alone is `..`, which ends with the document.
            let refused =
                REFUSED_JQ_CALLS.contains(name) && !(*name == "recurse" && args.is_empty());
            if refused {
                Some(format!(
                    "{name} is not evaluated (it may not end, or reads outside the object)"
                ))
            } else {
                all(args)
            }
        }
        Term::Str(_, parts) => parts.iter().find_map(|p| match p {
            StrPart::Term(t) => refused_in(t),
            _ => None,
        }),
        Term::Arr(t) => t.as_deref().and_then(refused_in),
        Term::Obj(entries) => entries
            .iter()
            .find_map(|(k, v)| refused_in(k).or_else(|| v.as_ref().and_then(refused_in))),
        Term::Neg(t) | Term::Label(_, t) => refused_in(t),
        Term::BinOp(l, op, r) => {
            let bound = match op {
                BinaryOp::Pipe(Some(p)) => pattern(p),
                _ => None,
            };
            bound.or_else(|| refused_in(l)).or_else(|| refused_in(r))
        }
        Term::Fold(_, t, p, rest) => refused_in(t).or_else(|| pattern(p)).or_else(|| all(rest)),
        Term::TryCatch(t, c) => refused_in(t).or_else(|| c.as_deref().and_then(refused_in)),
        Term::IfThenElse(branches, otherwise) => branches
            .iter()
            .find_map(|(c, t)| refused_in(c).or_else(|| refused_in(t)))
            .or_else(|| otherwise.as_deref().and_then(refused_in)),
        Term::Path(t, path) => refused_in(t).or_else(|| {
            path.0.iter().find_map(|(part, _)| match part {
                Part::Index(i) => refused_in(i),
                Part::Range(from, to) => from
                    .as_ref()
                    .and_then(refused_in)
                    .or_else(|| to.as_ref().and_then(refused_in)),
            })
        }),
    }
}

/// The paths of `document` a manager's `fieldsV1` set owns. `f:NAME` is a
/// key, `k:{...}` the list item with those key fields, `v:VALUE` the list
/// item equal to it, `i:N` the item at N; `.` marks the node itself. A node
/// owned with nothing listed under it is owned whole; a list item marked
/// `.` is owned whole (its manager added it); a map marked `.` with members
/// listed is owned member by member (others may own its other members).
fn fields_v1_paths(
    set: &Map<String, Value>,
    document: &Value,
    prefix: &mut Path,
    out: &mut Vec<Path>,
) {
    // List items are found through an index built once per list and kind
    // of key, so a long list with many owned items is not searched once
    // per item.
    let mut by_key: HashMap<Vec<String>, HashMap<String, usize>> = HashMap::new();
    let mut by_value: Option<HashMap<String, usize>> = None;
    for (key, child) in set {
        if key == "." {
            continue;
        }
        let found = if let Some(name) = key.strip_prefix("f:") {
            document
                .get(name)
                .map(|value| (Step::Key(name.to_string()), value))
        } else if let Some(fields) = key.strip_prefix("k:") {
            let fields: Option<Map<String, Value>> = serde_json::from_str(fields).ok();
            document.as_array().zip(fields).and_then(|(items, fields)| {
                let mut names: Vec<String> = fields.keys().cloned().collect();
                names.sort();
                let wanted = canonical(&Value::Array(
                    names.iter().map(|n| fields[n].clone()).collect(),
                ));
                let index = by_key.entry(names).or_insert_with_key(|names| {
                    let mut index = HashMap::new();
                    for (i, item) in items.iter().enumerate() {
                        let values: Option<Vec<Value>> =
                            names.iter().map(|n| item.get(n).cloned()).collect();
                        if let Some(values) = values {
                            index.entry(canonical(&Value::Array(values))).or_insert(i);
                        }
                    }
                    index
                });
                index.get(&wanted).map(|&i| (Step::Index(i), &items[i]))
            })
        } else if let Some(value) = key.strip_prefix("v:") {
            let value: Option<Value> = serde_json::from_str(value).ok();
            document.as_array().zip(value).and_then(|(items, value)| {
                let index = by_value.get_or_insert_with(|| {
                    let mut index = HashMap::new();
                    for (i, item) in items.iter().enumerate() {
                        index.entry(canonical(item)).or_insert(i);
                    }
                    index
                });
                index
                    .get(&canonical(&value))
                    .map(|&i| (Step::Index(i), &items[i]))
            })
        } else if let Some(index) = key.strip_prefix("i:") {
            let i: Option<usize> = index.parse().ok();
            document
                .as_array()
                .and_then(|items| i.and_then(|i| items.get(i).map(|item| (Step::Index(i), item))))
        } else {
            None
        };
        let Some((step, value)) = found else { continue };
        let is_item = matches!(step, Step::Index(_));
        prefix.push(step);
        let members = child
            .as_object()
            .map(|m| m.keys().filter(|k| *k != ".").count())
            .unwrap_or(0);
        let marked = child.get(".").is_some();
        if members == 0 || (is_item && marked) {
            out.push(prefix.clone());
        } else if let Some(child) = child.as_object() {
            fields_v1_paths(child, value, prefix, out);
        }
        prefix.pop();
    }
}

/// A value's JSON text with object keys sorted: equal for equal values.
fn canonical(value: &Value) -> String {
    fn sorted(value: &Value) -> Value {
        match value {
            Value::Object(map) => {
                let mut entries: Vec<(&String, &Value)> = map.iter().collect();
                entries.sort_by(|a, b| a.0.cmp(b.0));
                Value::Object(
                    entries
                        .into_iter()
                        .map(|(k, v)| (k.clone(), sorted(v)))
                        .collect(),
                )
            }
            Value::Array(items) => Value::Array(items.iter().map(sorted).collect()),
            other => other.clone(),
        }
    }
    sorted(value).to_string()
}

/// Orders paths so that removing them in reverse never shifts an index of
/// a path still to be removed: by step, indices by number.
fn path_order(a: &Path, b: &Path) -> Ordering {
    for (x, y) in a.iter().zip(b) {
        let o = match (x, y) {
            (Step::Key(x), Step::Key(y)) => x.cmp(y),
            (Step::Index(x), Step::Index(y)) => x.cmp(y),
            (Step::Key(_), Step::Index(_)) => Ordering::Less,
            (Step::Index(_), Step::Key(_)) => Ordering::Greater,
        };
        if o != Ordering::Equal {
            return o;
        }
    }
    a.len().cmp(&b.len())
}

/// The value at `path`, if any.
pub fn get_path<'v>(document: &'v Value, path: &[Step]) -> Option<&'v Value> {
    path.iter().try_fold(document, |at, step| match step {
        Step::Key(k) => at.as_object()?.get(k),
        Step::Index(i) => at.as_array()?.get(*i),
    })
}

/// Removes `paths` (sorted by [`path_order`]) from `document`, last first,
/// so the indices of the others stay right; a path already gone (under one
/// removed before) is skipped.
fn remove_paths(document: &mut Value, paths: &[Path]) {
    for path in paths.iter().rev() {
        let Some((last, parent)) = path.split_last() else {
            // The root: nothing of the document is compared.
            *document = Value::Null;
            continue;
        };
        let parent = parent
            .iter()
            .try_fold(&mut *document, |at, step| match step {
                Step::Key(k) => at.as_object_mut()?.get_mut(k),
                Step::Index(i) => at.as_array_mut()?.get_mut(*i),
            });
        match (parent, last) {
            (Some(Value::Object(map)), Step::Key(k)) => {
                map.remove(k);
            }
            (Some(Value::Array(items)), Step::Index(i)) if *i < items.len() => {
                items.remove(*i);
            }
            _ => {}
        }
    }
}

/// Sets `value` at `path` in `document`, creating missing objects on the
/// way; an index inserts at that position (at the end when past it). A
/// step that does not fit what is there (a key into a list) sets nothing.
fn set_path(document: &mut Value, path: &[Step], value: Value) {
    let Some((last, parent)) = path.split_last() else {
        *document = value;
        return;
    };
    let mut at = document;
    for (n, step) in parent.iter().enumerate() {
        let next_is_index = matches!(path[n + 1], Step::Index(_));
        let fresh = || {
            if next_is_index {
                Value::Array(Vec::new())
            } else {
                Value::Object(Map::new())
            }
        };
        at = match (at, step) {
            (Value::Object(map), Step::Key(k)) => map.entry(k.clone()).or_insert_with(fresh),
            (Value::Array(items), Step::Index(i)) => {
                if *i >= items.len() {
                    items.push(fresh());
                }
                let i = (*i).min(items.len() - 1);
                &mut items[i]
            }
            _ => return,
        };
    }
    match (at, last) {
        (Value::Object(map), Step::Key(k)) => {
            map.insert(k.clone(), value);
        }
        (Value::Array(items), Step::Index(i)) => {
            let i = (*i).min(items.len());
            items.insert(i, value);
        }
        _ => {}
    }
}

/// A server-wide rule of `argocd-cm`: the text of
/// `resource.customizations.ignoreDifferences.<group_kind>` (YAML with
/// `jsonPointers`, `jqPathExpressions`, `managedFieldsManagers`) as the
/// rule of that group and kind. `group_kind` is the key's last part as
/// Argo CD writes it: `apps_Deployment`, `Service` (the core group), or
/// `all` (every group and kind); `apps/Deployment` is read too.
///
/// # Errors
/// [`RuleError::ServerRule`] for a key with more than one `_` (or `/`) or
/// a text that is not such a YAML mapping; the pointers and expressions
/// themselves are checked by [`IgnoreRules::compile`].
pub fn server_rule(group_kind: &str, text: &str) -> Result<ResourceIgnoreDifferences, RuleError> {
    let error = |reason: String| RuleError::ServerRule {
        group_kind: group_kind.to_string(),
        reason,
    };
    let (group, kind) = if group_kind == "all" {
        ("*".to_string(), "*".to_string())
    } else {
        let parts: Vec<&str> = group_kind.split(['_', '/']).collect();
        match parts.as_slice() {
            [kind] if !kind.is_empty() => (String::new(), kind.to_string()),
            [group, kind] if !kind.is_empty() => (group.to_string(), kind.to_string()),
            _ => {
                return Err(error(
                    "the key must end in <group>_<kind>, <kind> or all".into(),
                ));
            }
        }
    };
    /// The fields of an `argocd-cm` entry (Argo CD's `OverrideIgnoreDiff`).
    #[derive(serde::Deserialize, Default)]
    #[serde(rename_all = "camelCase", deny_unknown_fields)]
    struct Entry {
        #[serde(default, rename = "jsonPointers", alias = "jSONPointers")]
        json_pointers: Vec<String>,
        #[serde(default)]
        jq_path_expressions: Vec<String>,
        #[serde(default)]
        managed_fields_managers: Vec<String>,
    }
    let entry: Entry = if text.trim().is_empty() {
        Entry::default()
    } else {
        serde_yaml::from_str::<Option<Entry>>(text)
            .map_err(|e| error(e.to_string()))?
            .unwrap_or_default()
    };
    Ok(ResourceIgnoreDifferences {
        group,
        kind,
        name: String::new(),
        namespace: String::new(),
        json_pointers: entry.json_pointers,
        jq_path_expressions: entry.jq_path_expressions,
        managed_fields_managers: entry.managed_fields_managers,
    })
}

#[cfg(test)]
mod tests;
