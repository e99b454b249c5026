//! The `list` generator: one parameter set per element of `elements`, then
//! one per item of `elementsYaml` (a YAML list in a string, typically
//! rendered from a matrix's first generator).
//!
//! Argo CD's rules, kept here: under goTemplate an element is the parameter
//! set as written. Under fasttemplate every value must be text, except
//! `values`, a map of text that becomes `values.<key>`; anything else is an
//! error, not a silent conversion. Items of `elementsYaml` are taken as
//! written in both modes.

use serde_json::Value;

use super::{ListGenerator, Params, generate::GenerateError, params::yaml_to_json};

/// The sets of `list`, `elements` first.
pub(crate) fn generate(
    list: &ListGenerator,
    go_template: bool,
    at: &str,
) -> Result<Vec<Params>, GenerateError> {
    let mut out = Vec::with_capacity(list.elements.len());
    for (i, element) in list.elements.iter().enumerate() {
        let invalid = |reason: String| GenerateError::Invalid {
            at: format!("{at}.elements[{i}]"),
            reason,
        };
        let element = match element {
            Value::Object(map) => map,
            // A null element is an empty map once Go decodes it.
            Value::Null => {
                out.push(Params::new());
                continue;
            }
            other => {
                return Err(invalid(format!(
                    "an element must be an object, not {other}"
                )));
            }
        };
        if go_template {
            out.push(element.clone());
            continue;
        }
        let mut params = Params::new();
        for (key, value) in element {
            match (key.as_str(), value) {
                ("values", Value::Object(values)) => {
                    for (k, v) in values {
                        let Value::String(_) = v else {
                            return Err(invalid(format!(
                                "values.{k} must be text under fasttemplate, not {v} (quote it, or use goTemplate)"
                            )));
                        };
                        params.insert(format!("values.{k}"), v.clone());
                    }
                }
                ("values", other) => {
                    return Err(invalid(format!(
                        "values must be a map of text under fasttemplate, not {other}"
                    )));
                }
                (_, Value::String(_)) => {
                    params.insert(key.clone(), value.clone());
                }
                _ => {
                    return Err(invalid(format!(
                        "{key} must be text under fasttemplate, not {value} (quote it, or use goTemplate)"
                    )));
                }
            }
        }
        out.push(params);
    }
    if let Some(yaml) = list.elements_yaml.as_deref().filter(|y| !y.is_empty()) {
        let invalid = |reason: String| GenerateError::Invalid {
            at: format!("{at}.elementsYaml"),
            reason,
        };
        let parsed: serde_yaml::Value =
            serde_yaml::from_str(yaml).map_err(|e| invalid(format!("not YAML: {e}")))?;
        match yaml_to_json(parsed).map_err(invalid)? {
            Value::Null => {}
            Value::Array(items) => {
                for (i, item) in items.into_iter().enumerate() {
                    match item {
                        Value::Object(map) => out.push(map),
                        Value::Null => out.push(Params::new()),
                        other => {
                            return Err(invalid(format!(
                                "item {i} must be an object, not {other}"
                            )));
                        }
                    }
                }
            }
            other => return Err(invalid(format!("must be a list of objects, not {other}"))),
        }
    }
    Ok(out)
}
