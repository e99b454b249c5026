//! ApplicationSet templates: fasttemplate's `{{ param }}` and Go's
//! text/template (with the sprig functions ApplicationSets allow), applied to
//! every string of a JSON value, and `templatePatch`.
//!
//! It renders; it does not generate parameters (see [`crate::appset`]).

use serde_json::Value;

use crate::appset::Params;

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
/// # Errors
/// When a template does not parse or fails.
pub fn render_value(
    value: &Value,
    params: &Params,
    options: &TemplateOptions,
) -> Result<Value, TemplateError> {
    Ok(match value {
        Value::String(s) => Value::String(render_string(s, params, options)?),
        Value::Array(items) => Value::Array(
            items
                .iter()
                .map(|v| render_value(v, params, options))
                .collect::<Result<_, _>>()?,
        ),
        Value::Object(map) => {
            let mut out = serde_json::Map::new();
            for (k, v) in map {
                out.insert(
                    render_string(k, params, options)?,
                    render_value(v, params, options)?,
                );
            }
            Value::Object(out)
        }
        other => other.clone(),
    })
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
    if options.go_template {
        return Err(TemplateError::Execute {
            template: text.to_string(),
            message: "goTemplate is not implemented yet".into(),
        });
    }
    Ok(fasttemplate(text, params))
}

/// fasttemplate: each `{{ key }}` whose key is a parameter becomes its
/// value; any other tag is left as written.
fn fasttemplate(text: &str, params: &Params) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("{{") {
        let Some(len) = rest[start + 2..].find("}}") else {
            break;
        };
        out.push_str(&rest[..start]);
        let tag = &rest[start..start + 2 + len + 2];
        let key = rest[start + 2..start + 2 + len].trim();
        match params.get(key) {
            Some(Value::String(s)) => out.push_str(s),
            Some(Value::Null) => {}
            Some(other) => out.push_str(&other.to_string()),
            None => out.push_str(tag),
        }
        rest = &rest[start + 2 + len + 2..];
    }
    out.push_str(rest);
    out
}

/// Renders `patch` (a template of a YAML mapping) with `params` and merges
/// it over `application` (JSON merge patch semantics: maps merge, anything
/// else replaces).
///
/// # Errors
/// When the patch does not render or is not a mapping.
pub fn apply_template_patch(
    application: Value,
    patch: &str,
    params: &Params,
    options: &TemplateOptions,
) -> Result<Value, TemplateError> {
    let _ = (application, patch, params, options);
    todo!("issue 9: template helper")
}
