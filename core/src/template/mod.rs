//! ApplicationSet templates: fasttemplate's `{{ param }}` and Go's
//! text/template (with the sprig functions ApplicationSets allow), applied to
//! every string of a JSON value, and `templatePatch`.
//!
//! It renders; it does not generate parameters (see [`crate::appset`]).
//!
//! Go templates are our own implementation over JSON values, in layers:
//! [`lex`] splits a template into tokens, [`parse`] builds a tree with Go's
//! checks, [`exec`] runs it with bounds on output, work and nesting, and
//! [`funcs`]/[`sprig`] are the functions, formatted by [`printf`] as Go's
//! fmt would.

mod exec;
mod fasttemplate;
mod funcs;
mod lex;
mod parse;
mod printf;
mod sprig;
mod value;

use serde_json::Value;

use crate::appset::Params;
use exec::ExecOptions;
use value::V;

/// How to render.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TemplateOptions {
    /// Go text/template (`goTemplate: true`) instead of fasttemplate.
    pub go_template: bool,
    /// `goTemplateOptions: ["missingkey=error"]`: a missing key is an error
    /// (Go's default prints `<no value>`).
    pub missing_key_error: bool,
}

impl TemplateOptions {
    /// From an ApplicationSet's `goTemplate` and `goTemplateOptions`.
    pub fn new(go_template: bool, go_template_options: &[String]) -> TemplateOptions {
        TemplateOptions {
            go_template,
            missing_key_error: go_template_options
                .iter()
                .any(|o| o.trim() == "missingkey=error"),
        }
    }
}

/// The error of rendering a template.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TemplateError {
    /// A template does not parse.
    #[error("template {template:?} does not parse: {message}")]
    Parse {
        /// The template text (shortened).
        template: String,
        /// What is wrong.
        message: String,
    },
    /// A template failed while executing (a missing key under
    /// `missingkey=error`, a function's error, ...).
    #[error("template {template:?} failed: {message}")]
    Execute {
        /// The template text (shortened).
        template: String,
        /// What failed.
        message: String,
    },
    /// A `templatePatch` does not render to a YAML or JSON mapping.
    #[error("templatePatch: {0}")]
    Patch(String),
}

/// Renders every string in `value` (map keys too) with `params`.
///
/// With `goTemplate` every string is its own template (as in Argo CD, an
/// `{{ if }}` cannot span two fields) and renders to a string.
///
/// # Errors
/// When a template does not parse or fails.
pub fn render_value(
    value: &Value,
    params: &Params,
    options: &TemplateOptions,
) -> Result<Value, TemplateError> {
    let engine = Engine::new(params, options);
    engine.value(value, 0)
}

/// Renders one string.
///
/// # Errors
/// When the template does not parse or fails.
pub fn render_string(
    text: &str,
    params: &Params,
    options: &TemplateOptions,
) -> Result<String, TemplateError> {
    Engine::new(params, options).string(text)
}

/// How deep [`render_value`] descends into a JSON value (serde_json parses
/// at most 128 levels, so a real value never reaches it).
const MAX_VALUE_DEPTH: usize = 256;

/// One rendering: the options and the parameters, converted once for Go
/// templates.
struct Engine<'p> {
    params: &'p Params,
    options: &'p TemplateOptions,
    data: Option<V>,
}

impl<'p> Engine<'p> {
    fn new(params: &'p Params, options: &'p TemplateOptions) -> Engine<'p> {
        let data = options.go_template.then(|| V::from_params(params));
        Engine {
            params,
            options,
            data,
        }
    }

    fn value(&self, value: &Value, depth: usize) -> Result<Value, TemplateError> {
        if depth > MAX_VALUE_DEPTH {
            return Err(TemplateError::Execute {
                template: String::new(),
                message: format!("the template nests deeper than {MAX_VALUE_DEPTH} levels"),
            });
        }
        Ok(match value {
            Value::String(s) => Value::String(self.string(s)?),
            Value::Array(items) => Value::Array(
                items
                    .iter()
                    .map(|v| self.value(v, depth + 1))
                    .collect::<Result<_, _>>()?,
            ),
            Value::Object(map) => {
                let mut out = serde_json::Map::new();
                for (k, v) in map {
                    out.insert(self.string(k)?, self.value(v, depth + 1)?);
                }
                Value::Object(out)
            }
            other => other.clone(),
        })
    }

    fn string(&self, text: &str) -> Result<String, TemplateError> {
        let Some(data) = &self.data else {
            return fasttemplate::render(text, self.params).map_err(|message| {
                TemplateError::Parse {
                    template: shorten(text),
                    message,
                }
            });
        };
        // Most fields hold no action; skip the parser for them.
        if !text.contains("{{") {
            return Ok(text.to_string());
        }
        let tree = parse::parse(text).map_err(|message| TemplateError::Parse {
            template: shorten(text),
            message,
        })?;
        let options = ExecOptions {
            missing_key_error: self.options.missing_key_error,
        };
        exec::execute(&tree, data, options).map_err(|message| TemplateError::Execute {
            template: shorten(text),
            message,
        })
    }
}

/// The template text for an error message: at most 200 characters.
fn shorten(text: &str) -> String {
    const MAX: usize = 200;
    match text.char_indices().nth(MAX) {
        Some((i, _)) => format!("{}...", &text[..i]),
        None => text.to_string(),
    }
}

/// Renders `patch` (a template of a YAML or JSON mapping) with `params` and
/// merges it over `application`: maps merge recursively, a null removes the
/// key, anything else (lists too) replaces. A patch that renders to nothing
/// but white space changes nothing.
///
/// # Errors
/// When the patch does not render, does not parse, or is not a mapping.
pub fn apply_template_patch(
    application: Value,
    patch: &str,
    params: &Params,
    options: &TemplateOptions,
) -> Result<Value, TemplateError> {
    let rendered = render_string(patch, params, options)?;
    if rendered.trim().is_empty() {
        return Ok(application);
    }
    // As Argo CD: text that starts with `{` is JSON, anything else YAML.
    let parsed: Value = if rendered.trim_start().starts_with('{') {
        serde_json::from_str(&rendered).map_err(|e| {
            TemplateError::Patch(format!("the rendered patch is not valid JSON: {e}"))
        })?
    } else {
        serde_yaml::from_str(&rendered).map_err(|e| {
            TemplateError::Patch(format!("the rendered patch is not valid YAML: {e}"))
        })?
    };
    let Value::Object(patch) = parsed else {
        return Err(TemplateError::Patch(format!(
            "the rendered patch must be a mapping, not {}",
            json_kind(&parsed)
        )));
    };
    let Value::Object(mut target) = application else {
        return Err(TemplateError::Patch(format!(
            "the application to patch must be a mapping, not {}",
            json_kind(&application)
        )));
    };
    merge_patch(&mut target, patch);
    Ok(Value::Object(target))
}

/// Merges `patch` into `target` (JSON merge patch, RFC 7386).
fn merge_patch(target: &mut serde_json::Map<String, Value>, patch: serde_json::Map<String, Value>) {
    for (key, value) in patch {
        match value {
            Value::Null => {
                target.remove(&key);
            }
            Value::Object(inner) => match target.get_mut(&key) {
                Some(Value::Object(existing)) => merge_patch(existing, inner),
                _ => {
                    // Nulls inside a new map still mean "absent".
                    let mut fresh = serde_json::Map::new();
                    merge_patch(&mut fresh, inner);
                    target.insert(key, Value::Object(fresh));
                }
            },
            other => {
                target.insert(key, other);
            }
        }
    }
}

fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a bool",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a mapping",
    }
}

#[cfg(test)]
mod tests;
