//! Kubernetes label selectors (`matchLabels` and `matchExpressions` with
//! `In`, `NotIn`, `Exists`, `DoesNotExist`), matched against a cluster
//! Secret's labels or, for a generator's `selector`, against the flattened
//! parameter set (Argo CD matches nested parameters by their dotted key and
//! every value as text).
//!
//! As in Argo CD's own copy of the Kubernetes selector, values are not
//! checked against the label-value syntax, so a selector can match a
//! server URL.

use std::collections::BTreeMap;

use super::{LabelSelector, Params, params::flatten};

/// The error of compiling a [`LabelSelector`].
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SelectorError {
    /// An operator other than `In`, `NotIn`, `Exists` and `DoesNotExist`.
    #[error(
        "matchExpressions key {key:?}: unknown operator {operator:?} (use In, NotIn, Exists or DoesNotExist)"
    )]
    UnknownOperator {
        /// The expression's key.
        key: String,
        /// The operator as written.
        operator: String,
    },
    /// `In` or `NotIn` without values: Kubernetes rejects it.
    #[error("matchExpressions key {key:?}: {operator} needs at least one value")]
    MissingValues {
        /// The expression's key.
        key: String,
        /// `In` or `NotIn`.
        operator: String,
    },
    /// `Exists` or `DoesNotExist` with values: Kubernetes rejects it.
    #[error("matchExpressions key {key:?}: {operator} takes no values")]
    UnexpectedValues {
        /// The expression's key.
        key: String,
        /// `Exists` or `DoesNotExist`.
        operator: String,
    },
}

/// One requirement of a compiled selector.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Requirement {
    /// The label is present and has one of the values.
    In(String, Vec<String>),
    /// The label is absent or has none of the values.
    NotIn(String, Vec<String>),
    /// The label is present.
    Exists(String),
    /// The label is absent.
    DoesNotExist(String),
}

/// A checked label selector. An empty selector matches everything.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Selector {
    requirements: Vec<Requirement>,
}

impl Selector {
    /// Checks `selector` once, so that matching many label sets cannot fail.
    ///
    /// # Errors
    /// On an unknown operator, `In`/`NotIn` without values, or
    /// `Exists`/`DoesNotExist` with values.
    pub fn new(selector: &LabelSelector) -> Result<Selector, SelectorError> {
        let mut requirements: Vec<Requirement> = selector
            .match_labels
            .iter()
            .map(|(k, v)| Requirement::In(k.clone(), vec![v.clone()]))
            .collect();
        for expr in &selector.match_expressions {
            let key = expr.key.clone();
            let requirement = match expr.operator.as_str() {
                "In" | "NotIn" => {
                    if expr.values.is_empty() {
                        return Err(SelectorError::MissingValues {
                            key,
                            operator: expr.operator.clone(),
                        });
                    }
                    if expr.operator == "In" {
                        Requirement::In(key, expr.values.clone())
                    } else {
                        Requirement::NotIn(key, expr.values.clone())
                    }
                }
                "Exists" | "DoesNotExist" => {
                    if !expr.values.is_empty() {
                        return Err(SelectorError::UnexpectedValues {
                            key,
                            operator: expr.operator.clone(),
                        });
                    }
                    if expr.operator == "Exists" {
                        Requirement::Exists(key)
                    } else {
                        Requirement::DoesNotExist(key)
                    }
                }
                other => {
                    return Err(SelectorError::UnknownOperator {
                        key,
                        operator: other.to_string(),
                    });
                }
            };
            requirements.push(requirement);
        }
        Ok(Selector { requirements })
    }

    /// Whether the selector has no requirement (and so matches everything).
    pub fn is_empty(&self) -> bool {
        self.requirements.is_empty()
    }

    /// Whether every requirement holds for `labels`.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.requirements.iter().all(|r| match r {
            Requirement::In(key, values) => labels.get(key).is_some_and(|v| values.contains(v)),
            Requirement::NotIn(key, values) => labels.get(key).is_none_or(|v| !values.contains(v)),
            Requirement::Exists(key) => labels.contains_key(key),
            Requirement::DoesNotExist(key) => !labels.contains_key(key),
        })
    }

    /// Whether every requirement holds for a parameter set, read as Argo CD
    /// reads it: flattened with `.` and every value as text (see
    /// [`flatten`]).
    pub fn matches_params(&self, params: &Params) -> bool {
        self.is_empty() || self.matches(&flatten(params))
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;
    use crate::appset::LabelSelectorRequirement;

    fn selector(yaml: &str) -> LabelSelector {
        serde_yaml::from_str(yaml).expect("a selector")
    }

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn selector_matches_labels_per_operator() {
        let prod = labels(&[("env", "prod"), ("tier", "web")]);
        let dev = labels(&[("env", "dev")]);
        let none = labels(&[]);
        // (selector, matches prod, matches dev, matches no labels)
        let table = [
            ("{}", true, true, true),
            ("matchLabels: {env: prod}", true, false, false),
            ("matchLabels: {env: prod, tier: web}", true, false, false),
            (
                "matchExpressions: [{key: env, operator: In, values: [prod, staging]}]",
                true,
                false,
                false,
            ),
            (
                "matchExpressions: [{key: env, operator: NotIn, values: [prod]}]",
                false,
                true,
                true,
            ),
            (
                "matchExpressions: [{key: tier, operator: Exists}]",
                true,
                false,
                false,
            ),
            (
                "matchExpressions: [{key: tier, operator: DoesNotExist}]",
                false,
                true,
                true,
            ),
            (
                "{matchLabels: {env: dev}, matchExpressions: [{key: tier, operator: DoesNotExist}]}",
                false,
                true,
                false,
            ),
        ];
        for (yaml, want_prod, want_dev, want_none) in table {
            let compiled = Selector::new(&selector(yaml)).expect("valid");
            assert_eq!(compiled.matches(&prod), want_prod, "{yaml} on prod");
            assert_eq!(compiled.matches(&dev), want_dev, "{yaml} on dev");
            assert_eq!(compiled.matches(&none), want_none, "{yaml} on none");
        }
    }

    #[test]
    fn selector_rejects_unknown_operators_and_wrong_values() {
        let requirement = |operator: &str, values: &[&str]| LabelSelector {
            match_expressions: vec![LabelSelectorRequirement {
                key: "env".into(),
                operator: operator.into(),
                values: values.iter().map(|v| v.to_string()).collect(),
            }],
            ..LabelSelector::default()
        };
        let table = [
            (
                requirement("Gt", &["1"]),
                SelectorError::UnknownOperator {
                    key: "env".into(),
                    operator: "Gt".into(),
                },
            ),
            (
                requirement("in", &["a"]),
                SelectorError::UnknownOperator {
                    key: "env".into(),
                    operator: "in".into(),
                },
            ),
            (
                requirement("In", &[]),
                SelectorError::MissingValues {
                    key: "env".into(),
                    operator: "In".into(),
                },
            ),
            (
                requirement("Exists", &["x"]),
                SelectorError::UnexpectedValues {
                    key: "env".into(),
                    operator: "Exists".into(),
                },
            ),
        ];
        for (sel, err) in table {
            assert_eq!(Selector::new(&sel), Err(err));
        }
    }

    #[test]
    fn selector_matches_params_by_dotted_key_and_text_value() {
        let Value::Object(params) = json!({
            "path": {"basename": "web", "segments": ["apps", "web"]},
            "replicas": 3,
            "enabled": true
        }) else {
            unreachable!("an object literal")
        };
        let table = [
            ("matchLabels: {path.basename: web}", true),
            ("matchLabels: {path.segments.0: apps}", true),
            ("matchLabels: {replicas: '3'}", true),
            ("matchLabels: {enabled: 'true'}", true),
            ("matchLabels: {path.basename: api}", false),
            ("matchExpressions: [{key: path, operator: Exists}]", false),
        ];
        for (yaml, want) in table {
            let compiled = Selector::new(&selector(yaml)).expect("valid");
            assert_eq!(compiled.matches_params(&params), want, "{yaml}");
        }
    }
}
