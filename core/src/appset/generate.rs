//! Runs an ApplicationSet's generators: each turns into parameter sets (and
//! the template they render), `matrix` and `merge` combine their children,
//! a generator's `selector` filters what it made.
//!
//! Everything fails as a whole: one error anywhere, in any generator, makes
//! [`generate`] return `Err`, and the caller then creates, updates and
//! deletes nothing. A generator that fails must never look like a generator
//! that found nothing, or every Application it made would be deleted.

use std::collections::{BTreeSet, HashMap};

use serde_json::Value;

use super::{
    ApplicationSetSpec, ClusterCatalog, Generator, GitView, MatrixGenerator, MergeGenerator,
    Params, clusters, git, list,
    params::go_string,
    selector::{Selector, SelectorError},
};
use crate::template::{TemplateError, TemplateOptions, render_string, render_value};

/// How deep `matrix` and `merge` may nest: a top-level one may hold one more
/// level of them, whose children must be plain generators (Argo CD's limit).
const MAX_NESTING: usize = 2;

/// One parameter set and the template to render it with.
#[derive(Clone, Debug, PartialEq)]
pub struct Generated {
    /// The parameters.
    pub params: Params,
    /// The top-level generator's own `template`, already merged over the
    /// ApplicationSet's (its fields win, the ApplicationSet's fill what it
    /// leaves empty); `None` when the generator has none, so that
    /// `spec.template` applies as it is.
    pub template: Option<Value>,
}

/// The error of [`generate`]. `at` names the generator, as a path in the
/// ApplicationSet: `generators[1].matrix.generators[0].git`.
#[derive(Debug, thiserror::Error)]
pub enum GenerateError {
    /// A generator entry sets no kind.
    #[error("{at}: the generator sets no kind (list, clusters, git, matrix or merge)")]
    NoKind {
        /// Which generator.
        at: String,
    },
    /// A generator entry sets more than one kind.
    #[error("{at}: the generator sets {} kinds ({}); give each its own entry", kinds.len(), kinds.join(", "))]
    SeveralKinds {
        /// Which generator.
        at: String,
        /// The kinds it sets.
        kinds: Vec<String>,
    },
    /// A generator kind Plumb does not implement (`scmProvider`,
    /// `pullRequest`, `plugin`, `clusterDecisionResource`, ...).
    #[error("{at}: the {kind} generator is not supported by Plumb")]
    Unsupported {
        /// Which generator.
        at: String,
        /// The kind, as written.
        kind: String,
    },
    /// `matrix` or `merge` nested deeper than Argo CD allows.
    #[error("{at}: matrix and merge generators nest at most {MAX_NESTING} levels deep")]
    TooDeep {
        /// Which generator.
        at: String,
    },
    /// A generator is malformed (a matrix without two children, a merge
    /// without mergeKeys, a list element that is not an object, ...).
    #[error("{at}: {reason}")]
    Invalid {
        /// Which generator.
        at: String,
        /// What is wrong.
        reason: String,
    },
    /// A git generator could not read its repository.
    #[error("{at}: reading {repo} at {revision:?}: {message}")]
    Git {
        /// Which generator.
        at: String,
        /// The repository URL.
        repo: String,
        /// The revision asked for.
        revision: String,
        /// What failed.
        message: String,
    },
    /// The clusters generator could not list the clusters.
    #[error("{at}: listing clusters: {message}")]
    Clusters {
        /// Which generator.
        at: String,
        /// What failed.
        message: String,
    },
    /// A file of the git files generator is not a JSON or YAML object or
    /// list of objects.
    #[error("{at}: file {file}: {message}")]
    File {
        /// Which generator.
        at: String,
        /// The file's path in the repository.
        file: String,
        /// What is wrong.
        message: String,
    },
    /// A `path` glob does not parse.
    #[error("{at}: path {pattern:?} is not a valid glob: {message}")]
    Glob {
        /// Which generator.
        at: String,
        /// The glob.
        pattern: String,
        /// What is wrong.
        message: String,
    },
    /// A template in a generator (a `values` entry, or the second generator
    /// of a matrix rendered with the first one's parameters) failed.
    #[error("{at}: {what}: {source}")]
    Template {
        /// Which generator.
        at: String,
        /// Which template.
        what: String,
        /// Why.
        #[source]
        source: TemplateError,
    },
    /// A `selector` is not valid.
    #[error("{at}: selector: {source}")]
    Selector {
        /// Which generator.
        at: String,
        /// Why.
        #[source]
        source: SelectorError,
    },
    /// The two generators of a fasttemplate matrix give one parameter two
    /// values.
    #[error("{at}: both generators set parameter {key:?}, to {first:?} and {second:?}")]
    Conflict {
        /// Which matrix.
        at: String,
        /// The parameter.
        key: String,
        /// The first generator's value.
        first: String,
        /// The second generator's value.
        second: String,
    },
    /// Two parameter sets of one child of a merge share their mergeKeys.
    #[error(
        "{at}: generators[{generator}] makes two parameter sets with the merge key {key}; mergeKeys must identify one set"
    )]
    DuplicateMergeKey {
        /// Which merge.
        at: String,
        /// The child (its index).
        generator: usize,
        /// The shared values, as JSON.
        key: String,
    },
}

impl GenerateError {
    /// Whether trying again later may succeed: reading git or the cluster
    /// Secrets failed. Every other error stays until the ApplicationSet
    /// (or a file it reads) changes.
    pub fn is_spurious(&self) -> bool {
        matches!(
            self,
            GenerateError::Git { .. } | GenerateError::Clusters { .. }
        )
    }
}

/// Everything a generator reads, besides itself.
pub(crate) struct Context<'a> {
    /// Git, for the git generator.
    pub git: &'a dyn GitView,
    /// The clusters, for the clusters generator.
    pub clusters: &'a dyn ClusterCatalog,
    /// goTemplate or fasttemplate, and Go's options.
    pub options: TemplateOptions,
}

/// The parameter sets (with their templates) of every generator of `spec`,
/// in the order of `spec.generators`, each generator's sets in its own
/// deterministic order.
///
/// # Errors
/// When any generator fails, is malformed or unsupported: see
/// [`GenerateError`]. Nothing is returned then, so that a caller cannot act
/// on part of the sets.
pub fn generate(
    spec: &ApplicationSetSpec,
    git: &dyn GitView,
    clusters: &dyn ClusterCatalog,
) -> Result<Vec<Generated>, GenerateError> {
    // Check the shape of every generator first: an unsupported kind deep in
    // a matrix is an error even when the matrix's first child finds nothing.
    for (i, generator) in spec.generators.iter().enumerate() {
        check_shape(generator, &format!("generators[{i}]"), 0)?;
    }
    let context = Context {
        git,
        clusters,
        options: TemplateOptions::new(spec.go_template, &spec.go_template_options),
    };
    let mut out = Vec::new();
    for (i, generator) in spec.generators.iter().enumerate() {
        let sets = params_of(generator, &context, &format!("generators[{i}]"), 0)?;
        let template = own_template(generator).map(|own| fill_template(own, &spec.template));
        out.extend(sets.into_iter().map(|params| Generated {
            params,
            template: template.clone(),
        }));
    }
    Ok(out)
}

/// The kind a generator sets.
#[derive(Clone, Copy)]
enum Kind<'a> {
    List(&'a super::ListGenerator),
    Clusters(&'a super::ClustersGenerator),
    Git(&'a super::GitGenerator),
    Matrix(&'a MatrixGenerator),
    Merge(&'a MergeGenerator),
}

impl Kind<'_> {
    fn name(self) -> &'static str {
        match self {
            Kind::List(_) => "list",
            Kind::Clusters(_) => "clusters",
            Kind::Git(_) => "git",
            Kind::Matrix(_) => "matrix",
            Kind::Merge(_) => "merge",
        }
    }
}

/// The one kind `generator` sets.
fn kind_of<'a>(generator: &'a Generator, at: &str) -> Result<Kind<'a>, GenerateError> {
    let mut known = Vec::new();
    if let Some(g) = &generator.list {
        known.push(Kind::List(g));
    }
    if let Some(g) = &generator.clusters {
        known.push(Kind::Clusters(g));
    }
    if let Some(g) = &generator.git {
        known.push(Kind::Git(g));
    }
    if let Some(g) = &generator.matrix {
        known.push(Kind::Matrix(g));
    }
    if let Some(g) = &generator.merge {
        known.push(Kind::Merge(g));
    }
    // A null field is an unset Go pointer in Argo CD: not a kind.
    let unknown: Vec<&String> = generator
        .other
        .iter()
        .filter(|(_, v)| !v.is_null())
        .map(|(k, _)| k)
        .collect();
    if known.len() + unknown.len() > 1 {
        let kinds = known
            .iter()
            .map(|k| k.name().to_string())
            .chain(unknown.iter().map(|k| k.to_string()))
            .collect();
        return Err(GenerateError::SeveralKinds {
            at: at.to_string(),
            kinds,
        });
    }
    if let Some(kind) = unknown.first() {
        return Err(GenerateError::Unsupported {
            at: at.to_string(),
            kind: kind.to_string(),
        });
    }
    known
        .pop()
        .ok_or_else(|| GenerateError::NoKind { at: at.to_string() })
}

/// Checks kinds, nesting and the counts of children, without generating.
fn check_shape(generator: &Generator, at: &str, depth: usize) -> Result<(), GenerateError> {
    let kind = kind_of(generator, at)?;
    let at = format!("{at}.{}", kind.name());
    let children = match kind {
        Kind::Matrix(m) => {
            if m.generators.len() != 2 {
                return Err(GenerateError::Invalid {
                    at,
                    reason: format!(
                        "a matrix combines exactly two generators, this one has {}",
                        m.generators.len()
                    ),
                });
            }
            &m.generators
        }
        Kind::Merge(m) => {
            if m.generators.len() < 2 {
                return Err(GenerateError::Invalid {
                    at,
                    reason: format!(
                        "a merge needs at least two generators, this one has {}",
                        m.generators.len()
                    ),
                });
            }
            if m.merge_keys.is_empty() {
                return Err(GenerateError::Invalid {
                    at,
                    reason: "a merge needs at least one mergeKey".into(),
                });
            }
            &m.generators
        }
        Kind::List(_) | Kind::Clusters(_) | Kind::Git(_) => return Ok(()),
    };
    if depth >= MAX_NESTING {
        return Err(GenerateError::TooDeep { at });
    }
    for (i, child) in children.iter().enumerate() {
        check_shape(child, &format!("{at}.generators[{i}]"), depth + 1)?;
    }
    Ok(())
}

/// The parameter sets of one generator, filtered by its `selector`.
pub(crate) fn params_of(
    generator: &Generator,
    context: &Context<'_>,
    at: &str,
    depth: usize,
) -> Result<Vec<Params>, GenerateError> {
    let kind = kind_of(generator, at)?;
    let at = format!("{at}.{}", kind.name());
    // Compile the selector before generating: a bad selector fails fast.
    let selector = generator
        .selector
        .as_ref()
        .map(Selector::new)
        .transpose()
        .map_err(|source| GenerateError::Selector {
            at: at.clone(),
            source,
        })?;
    let go_template = context.options.go_template;
    let sets = match kind {
        Kind::List(g) => list::generate(g, go_template, &at)?,
        Kind::Clusters(g) => clusters::generate(g, context, &at)?,
        Kind::Git(g) => git::generate(g, context, &at)?,
        Kind::Matrix(_) | Kind::Merge(_) if depth >= MAX_NESTING => {
            return Err(GenerateError::TooDeep { at });
        }
        Kind::Matrix(g) => matrix(g, context, &at, depth)?,
        Kind::Merge(g) => merge(g, context, &at, depth)?,
    };
    Ok(match selector {
        Some(selector) => sets
            .into_iter()
            .filter(|set| selector.matches_params(set))
            .collect(),
        None => sets,
    })
}

/// Every pair of a set of the first generator and a set of the second, the
/// second generated anew for each set of the first with its own strings
/// rendered with that set's parameters.
fn matrix(
    m: &MatrixGenerator,
    context: &Context<'_>,
    at: &str,
    depth: usize,
) -> Result<Vec<Params>, GenerateError> {
    let [first, second] = m.generators.as_slice() else {
        return Err(GenerateError::Invalid {
            at: at.to_string(),
            reason: format!(
                "a matrix combines exactly two generators, this one has {}",
                m.generators.len()
            ),
        });
    };
    let first_sets = params_of(first, context, &format!("{at}.generators[0]"), depth + 1)?;
    let second_at = format!("{at}.generators[1]");
    let second_json = serde_json::to_value(second).map_err(|e| GenerateError::Invalid {
        at: second_at.clone(),
        reason: format!("cannot read the generator as JSON: {e}"),
    })?;
    // Most second generators render the same for many sets of the first
    // (often they use no parameter at all); generate each distinct
    // rendering once, so a matrix reads git once, not once per set.
    let mut cache: HashMap<String, Vec<Params>> = HashMap::new();
    let templated = second_json.to_string().contains("{{");
    let mut out = Vec::new();
    for a in &first_sets {
        // A string without `{{` renders to itself in both template
        // languages, so a generator without one needs no rendering.
        let rendered = if a.is_empty() || !templated {
            second_json.clone()
        } else {
            render_generator(&second_json, a, &context.options).map_err(|source| {
                GenerateError::Template {
                    at: second_at.clone(),
                    what: "rendering it with the first generator's parameters".into(),
                    source,
                }
            })?
        };
        let cache_key = rendered.to_string();
        if !cache.contains_key(&cache_key) {
            let generator: Generator =
                serde_json::from_value(rendered).map_err(|e| GenerateError::Invalid {
                    at: second_at.clone(),
                    reason: format!(
                        "rendered with the first generator's parameters, it is no longer a generator: {e}"
                    ),
                })?;
            let sets = params_of(&generator, context, &second_at, depth + 1)?;
            cache.insert(cache_key.clone(), sets);
        }
        for b in cache.get(&cache_key).into_iter().flatten() {
            out.push(combine(a, b, context.options.go_template, at)?);
        }
    }
    Ok(out)
}

/// One set of a matrix. goTemplate: both merged deeply, the first
/// generator's values winning. fasttemplate: every value as text, and one
/// key with two different values is an error (Argo CD's rules).
fn combine(a: &Params, b: &Params, go_template: bool, at: &str) -> Result<Params, GenerateError> {
    if go_template {
        let mut out = b.clone();
        deep_merge(&mut out, a);
        return Ok(out);
    }
    let mut out: Params = a
        .iter()
        .map(|(k, v)| (k.clone(), Value::String(go_string(v))))
        .collect();
    for (key, value) in b {
        let text = go_string(value);
        if let Some(Value::String(current)) = out.get(key)
            && *current != text
        {
            return Err(GenerateError::Conflict {
                at: at.to_string(),
                key: key.clone(),
                first: current.clone(),
                second: text,
            });
        }
        out.insert(key.clone(), Value::String(text));
    }
    Ok(out)
}

/// Merges `over` into `base`: objects key by key, anything else replaced.
fn deep_merge(base: &mut Params, over: &Params) {
    for (key, value) in over {
        match (base.get_mut(key), value) {
            (Some(Value::Object(inner)), Value::Object(over_inner)) => {
                deep_merge(inner, over_inner)
            }
            _ => {
                base.insert(key.clone(), value.clone());
            }
        }
    }
}

/// The first generator's sets, each overridden by the sets of the later
/// generators that share its `mergeKeys` values; later sets that match no
/// set of the first are dropped.
fn merge(
    m: &MergeGenerator,
    context: &Context<'_>,
    at: &str,
    depth: usize,
) -> Result<Vec<Params>, GenerateError> {
    if m.merge_keys.is_empty() {
        return Err(GenerateError::Invalid {
            at: at.to_string(),
            reason: "a merge needs at least one mergeKey".into(),
        });
    }
    let keys: BTreeSet<&str> = m.merge_keys.iter().map(String::as_str).collect();
    let mut per_generator = Vec::with_capacity(m.generators.len());
    for (i, child) in m.generators.iter().enumerate() {
        per_generator.push(params_of(
            child,
            context,
            &format!("{at}.generators[{i}]"),
            depth + 1,
        )?);
    }
    let mut sets = per_generator.into_iter();
    let mut base = sets.next().unwrap_or_default();
    let base_index = index_by_merge_key(&base, &keys, at, 0)?;
    for (i, overrides) in sets.enumerate() {
        let index = index_by_merge_key(&overrides, &keys, at, i + 1)?;
        for (key, &base_position) in &base_index {
            let Some(&over_position) = index.get(key) else {
                continue;
            };
            let over = &overrides[over_position];
            let target = &mut base[base_position];
            if context.options.go_template {
                deep_merge(target, over);
            } else {
                for (k, v) in over {
                    target.insert(k.clone(), v.clone());
                }
            }
        }
    }
    Ok(base)
}

/// Each set's position by the JSON of its merge-key values (a missing key
/// counts as `null`, so two sets that both lack it collide).
fn index_by_merge_key(
    sets: &[Params],
    keys: &BTreeSet<&str>,
    at: &str,
    generator: usize,
) -> Result<HashMap<String, usize>, GenerateError> {
    let mut index = HashMap::with_capacity(sets.len());
    for (position, set) in sets.iter().enumerate() {
        let identity: Params = keys
            .iter()
            .map(|k| (k.to_string(), set.get(*k).cloned().unwrap_or(Value::Null)))
            .collect();
        let key = Value::Object(identity).to_string();
        if index.insert(key.clone(), position).is_some() {
            return Err(GenerateError::DuplicateMergeKey {
                at: at.to_string(),
                generator,
                key,
            });
        }
    }
    Ok(index)
}

/// A top-level generator's own `template`. Children of a matrix or merge
/// may carry one too, but Argo CD does not use it, and neither does Plumb.
fn own_template(generator: &Generator) -> Option<&Value> {
    generator
        .list
        .as_ref()
        .and_then(|g| g.template.as_ref())
        .or_else(|| {
            generator
                .clusters
                .as_ref()
                .and_then(|g| g.template.as_ref())
        })
        .or_else(|| generator.git.as_ref().and_then(|g| g.template.as_ref()))
        .or_else(|| generator.matrix.as_ref().and_then(|g| g.template.as_ref()))
        .or_else(|| generator.merge.as_ref().and_then(|g| g.template.as_ref()))
}

/// A generator's template over the ApplicationSet's, as Argo CD merges them
/// (mergo without override): what the generator sets wins, and what it
/// leaves empty (absent, null, `""`, `0`, `false`, an empty list or map) is
/// taken from the ApplicationSet's, map by map.
pub fn fill_template(own: &Value, base: &Value) -> Value {
    match (own, base) {
        (Value::Object(own_map), Value::Object(base_map)) => {
            let mut out = own_map.clone();
            for (key, base_value) in base_map {
                let merged = match own_map.get(key) {
                    Some(own_value) if !is_go_zero(own_value) => {
                        fill_template(own_value, base_value)
                    }
                    _ => base_value.clone(),
                };
                out.insert(key.clone(), merged);
            }
            Value::Object(out)
        }
        (own, base) if is_go_zero(own) => base.clone(),
        (own, _) => own.clone(),
    }
}

/// Whether a value is Go's zero value of its type, as mergo sees it.
fn is_go_zero(value: &Value) -> bool {
    match value {
        Value::Null => true,
        Value::Bool(b) => !b,
        Value::Number(n) => n.as_f64() == Some(0.0),
        Value::String(s) => s.is_empty(),
        Value::Array(items) => items.is_empty(),
        Value::Object(map) => map.is_empty(),
    }
}

/// Renders the JSON of a generator with `params`, as Argo CD interpolates a
/// matrix's second generator: every string, except `list.elements` (raw
/// JSON that Argo CD never renders; `elementsYaml` exists for that) and
/// children's `template`s (never used). Under goTemplate a `values` entry
/// that fails (it may name the generator's own parameters, unknown yet) is
/// kept as written, to be rendered when the generator runs.
fn render_generator(
    generator: &Value,
    params: &Params,
    options: &TemplateOptions,
) -> Result<Value, TemplateError> {
    let Value::Object(fields) = generator else {
        return render_value(generator, params, options);
    };
    let mut out = Params::new();
    for (field, value) in fields {
        let rendered = match (field.as_str(), value) {
            ("list" | "clusters" | "git" | "matrix" | "merge", Value::Object(kind)) => {
                Value::Object(render_kind(kind, params, options)?)
            }
            _ => render_value(value, params, options)?,
        };
        out.insert(field.clone(), rendered);
    }
    Ok(Value::Object(out))
}

/// One generator kind's fields, rendered as [`render_generator`] says.
fn render_kind(
    kind: &Params,
    params: &Params,
    options: &TemplateOptions,
) -> Result<Params, TemplateError> {
    let mut out = Params::new();
    for (field, value) in kind {
        let rendered = match (field.as_str(), value) {
            ("template" | "elements", _) => value.clone(),
            ("generators", Value::Array(children)) => Value::Array(
                children
                    .iter()
                    .map(|c| render_generator(c, params, options))
                    .collect::<Result<_, _>>()?,
            ),
            ("values", Value::Object(values)) if options.go_template => {
                let strict = TemplateOptions {
                    missing_key_error: true,
                    ..options.clone()
                };
                let mut rendered = Params::new();
                for (key, v) in values {
                    let text = match v {
                        Value::String(s) => match render_string(s, params, &strict) {
                            Ok(text) => Value::String(text),
                            Err(TemplateError::Execute { .. }) => v.clone(),
                            Err(e) => return Err(e),
                        },
                        other => other.clone(),
                    };
                    rendered.insert(key.clone(), text);
                }
                Value::Object(rendered)
            }
            _ => render_value(value, params, options)?,
        };
        out.insert(field.clone(), rendered);
    }
    Ok(out)
}
