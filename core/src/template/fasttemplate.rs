//! fasttemplate, Argo CD's default template engine: `{{ key }}` (spaces
//! optional) becomes the value of the flat parameter `key`; any other tag is
//! left as written.

use serde_json::Value;

use crate::appset::Params;

/// Renders `text`.
///
/// Like Argo CD, a string without `{{ ... }}` on one line is returned
/// unchanged (so a lone `{{` in, say, a Helm value passes through), and a
/// string with one is an error when some `{{` never closes.
///
/// Argo CD replaces only string parameters; here a number or bool becomes
/// its JSON text and null becomes empty, since Plumb's generators may give
/// them, and a tag left as written would be worse.
///
/// # Errors
/// When a templated string has a `{{` without a `}}` after it.
pub(crate) fn render(text: &str, params: &Params) -> Result<String, String> {
    if !text.lines().any(|line| {
        line.find("{{")
            .is_some_and(|start| line[start + 2..].contains("}}"))
    }) {
        return Ok(text.to_string());
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("{{") {
        let Some(len) = rest[start + 2..].find("}}") else {
            return Err(format!(
                "cannot find end tag \"}}}}\" after {:?}",
                &rest[start..]
            ));
        };
        out.push_str(&rest[..start]);
        let tag = &rest[start + 2..start + 2 + len];
        let key = tag.trim();
        match params.get(key) {
            Some(Value::String(s)) if !key.is_empty() => out.push_str(s),
            Some(Value::Null) if !key.is_empty() => {}
            Some(other) if !key.is_empty() => out.push_str(&other.to_string()),
            _ => {
                out.push_str("{{");
                out.push_str(tag);
                out.push_str("}}");
            }
        }
        rest = &rest[start + 2 + len + 2..];
    }
    out.push_str(rest);
    Ok(out)
}
