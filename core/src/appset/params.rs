//! The small rules every generator shares: Argo CD's name sanitizing, Go's
//! `%v` text of a value, the dotted flattening of nested parameters, the
//! `path` parameters of a folder, and the `values` a generator adds.
//!
//! Argo CD is written in Go and decodes YAML and JSON into Go maps, so a
//! fasttemplate parameter is whatever Go's `fmt.Sprintf("%v", v)` prints:
//! `1e+06` for a million, `<nil>` for null. Plumb prints the same so that an
//! ApplicationSet written for Argo CD generates the same names here.

use std::collections::BTreeMap;

use serde_json::Value;

use super::Params;
use crate::template::{TemplateError, TemplateOptions, render_string};

/// The longest name Kubernetes accepts for most objects (a DNS subdomain).
const MAX_DNS_NAME_LENGTH: usize = 253;

/// Argo CD's `nameNormalized`/`basenameNormalized`: lowercase, every
/// character other than `a-z`, `0-9`, `-` and `.` replaced by `-`, cut to
/// 253 characters, with `-` and `.` trimmed from both ends.
pub fn sanitize_name(name: &str) -> String {
    let replaced: String = name
        .to_lowercase()
        .chars()
        .map(|c| match c {
            'a'..='z' | '0'..='9' | '-' | '.' => c,
            _ => '-',
        })
        .collect();
    // Every character is ASCII now, so a byte cut is a character cut.
    let cut = &replaced[..replaced.len().min(MAX_DNS_NAME_LENGTH)];
    cut.trim_matches(|c| c == '-' || c == '.').to_string()
}

/// Go's `fmt.Sprintf("%v", v)` of a value decoded from JSON or YAML, where
/// every number is a `float64`.
pub fn go_string(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Null => "<nil>".to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.as_f64().map_or_else(|| n.to_string(), go_float),
        Value::Array(items) => {
            let inner: Vec<String> = items.iter().map(go_string).collect();
            format!("[{}]", inner.join(" "))
        }
        Value::Object(map) => {
            // Go prints a map's keys sorted.
            let sorted: BTreeMap<&String, &Value> = map.iter().collect();
            let inner: Vec<String> = sorted
                .into_iter()
                .map(|(k, v)| format!("{k}:{}", go_string(v)))
                .collect();
            format!("map[{}]", inner.join(" "))
        }
    }
}

/// Go's `%v` of a `float64`: the shortest digits that read back as the same
/// number, in exponent form when the decimal exponent is below -4 or 6 and
/// above (`1e+06`, `1.5e-05`, `123456`).
fn go_float(f: f64) -> String {
    if f.is_nan() {
        return "NaN".to_string();
    }
    if f.is_infinite() {
        return if f > 0.0 { "+Inf" } else { "-Inf" }.to_string();
    }
    if f == 0.0 {
        return if f.is_sign_negative() { "-0" } else { "0" }.to_string();
    }
    let scientific = format!("{f:e}");
    let Some((mantissa, exponent)) = scientific.split_once('e') else {
        return format!("{f}");
    };
    let Ok(exponent) = exponent.parse::<i32>() else {
        return format!("{f}");
    };
    if (-4..6).contains(&exponent) {
        format!("{f}")
    } else {
        let sign = if exponent < 0 { '-' } else { '+' };
        format!("{mantissa}e{sign}{:02}", exponent.abs())
    }
}

/// The flat, all-string view of a parameter set that Argo CD matches a
/// generator's `selector` against and that fasttemplate reads a nested
/// file with: nested keys joined with `.`, list items by their index,
/// empty maps and lists dropped, every leaf printed by [`go_string`].
pub fn flatten(params: &Params) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for (key, value) in params {
        flatten_into(&mut out, key.clone(), value);
    }
    out
}

fn flatten_into(out: &mut BTreeMap<String, String>, key: String, value: &Value) {
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                flatten_into(out, format!("{key}.{k}"), v);
            }
        }
        Value::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                flatten_into(out, format!("{key}.{i}"), v);
            }
        }
        leaf => {
            out.insert(key, go_string(leaf));
        }
    }
}

/// Go's `path.Base`: the last element of a `/` path, `.` for an empty path
/// and `/` for the root.
pub(crate) fn go_base(path: &str) -> &str {
    if path.is_empty() {
        return ".";
    }
    let trimmed = path.trim_end_matches('/');
    if trimmed.is_empty() {
        return "/";
    }
    trimmed.rsplit('/').next().unwrap_or(trimmed)
}

/// Go's `path.Dir` for the clean, relative paths git gives: everything
/// before the last `/`, `.` when there is none.
pub(crate) fn go_dir(path: &str) -> &str {
    match path.rfind('/') {
        Some(0) => "/",
        Some(i) => &path[..i],
        None => ".",
    }
}

/// A file's name, when the path parameters describe a file of a folder.
pub(crate) struct PathParams<'a> {
    /// The folder (for a file, the folder that holds it).
    pub folder: &'a str,
    /// The file's own path, for the files generator.
    pub file: Option<&'a str>,
}

/// Adds the `path` parameters of the git generators to `params`:
/// fasttemplate's flat `path`, `path.basename`, `path.basenameNormalized`,
/// `path[N]` (and for a file `path.filename`, `path.filenameNormalized`),
/// or goTemplate's `path` object with `path`, `basename`,
/// `basenameNormalized`, `segments` (and `filename`, `filenameNormalized`).
/// With a `prefix`, fasttemplate's keys start with `prefix.` and
/// goTemplate's object moves under `prefix.path`.
pub(crate) fn add_path_params(
    params: &mut Params,
    at: PathParams<'_>,
    prefix: &str,
    go_template: bool,
) {
    let basename = go_base(at.folder);
    let filename = at.file.map(go_base);
    if go_template {
        let mut path = Params::new();
        path.insert("path".into(), Value::String(at.folder.to_string()));
        path.insert("basename".into(), Value::String(basename.to_string()));
        if let Some(filename) = filename {
            path.insert("filename".into(), Value::String(filename.to_string()));
        }
        path.insert(
            "basenameNormalized".into(),
            Value::String(sanitize_name(basename)),
        );
        if let Some(filename) = filename {
            path.insert(
                "filenameNormalized".into(),
                Value::String(sanitize_name(filename)),
            );
        }
        let segments = at
            .folder
            .split('/')
            .map(|s| Value::String(s.to_string()))
            .collect();
        path.insert("segments".into(), Value::Array(segments));
        if prefix.is_empty() {
            params.insert("path".into(), Value::Object(path));
        } else {
            let mut outer = Params::new();
            outer.insert("path".into(), Value::Object(path));
            params.insert(prefix.to_string(), Value::Object(outer));
        }
        return;
    }
    let name = if prefix.is_empty() {
        "path".to_string()
    } else {
        format!("{prefix}.path")
    };
    let text = |s: &str| Value::String(s.to_string());
    params.insert(name.clone(), text(at.folder));
    params.insert(format!("{name}.basename"), text(basename));
    if let Some(filename) = filename {
        params.insert(format!("{name}.filename"), text(filename));
    }
    params.insert(
        format!("{name}.basenameNormalized"),
        Value::String(sanitize_name(basename)),
    );
    if let Some(filename) = filename {
        params.insert(
            format!("{name}.filenameNormalized"),
            Value::String(sanitize_name(filename)),
        );
    }
    // The index counts every segment, so `path[1]` stays the second segment
    // even where an empty one is skipped.
    for (i, segment) in at.folder.split('/').enumerate() {
        if !segment.is_empty() {
            params.insert(format!("{name}[{i}]"), text(segment));
        }
    }
}

/// Renders a generator's `values` with the parameters it has so far and adds
/// them: `values.<key>` for fasttemplate, a `values` object for goTemplate.
/// Values see only the generator's own parameters, never each other, so one
/// value cannot expand another (Argo CD's guard against a billion laughs).
///
/// # Errors
/// When a value's template does not parse or fails; the error names the key.
pub(crate) fn add_values(
    params: &mut Params,
    values: &BTreeMap<String, String>,
    options: &TemplateOptions,
) -> Result<(), (String, TemplateError)> {
    if values.is_empty() {
        return Ok(());
    }
    let mut rendered = Params::new();
    for (key, template) in values {
        let text = render_string(template, params, options).map_err(|e| (key.clone(), e))?;
        rendered.insert(key.clone(), Value::String(text));
    }
    if options.go_template {
        params.insert("values".into(), Value::Object(rendered));
    } else {
        for (key, value) in rendered {
            params.insert(format!("values.{key}"), value);
        }
    }
    Ok(())
}

/// Converts a YAML value to JSON as Argo CD's YAML reader does: mapping keys
/// that are numbers or booleans become their text, tags are dropped.
///
/// # Errors
/// On a key that is a list, a mapping or null, and on a number JSON cannot
/// hold (`.nan`, `.inf`).
pub(crate) fn yaml_to_json(value: serde_yaml::Value) -> Result<Value, String> {
    use serde_yaml::Value as Y;
    Ok(match value {
        Y::Null => Value::Null,
        Y::Bool(b) => Value::Bool(b),
        Y::Number(n) => {
            if let Some(i) = n.as_i64() {
                Value::from(i)
            } else if let Some(u) = n.as_u64() {
                Value::from(u)
            } else {
                let f = n.as_f64().unwrap_or(f64::NAN);
                serde_json::Number::from_f64(f)
                    .map(Value::Number)
                    .ok_or_else(|| format!("the number {n} has no JSON form"))?
            }
        }
        Y::String(s) => Value::String(s),
        Y::Sequence(items) => Value::Array(
            items
                .into_iter()
                .map(yaml_to_json)
                .collect::<Result<_, _>>()?,
        ),
        Y::Mapping(mapping) => {
            let mut out = Params::new();
            for (key, value) in mapping {
                let key = match key {
                    Y::String(s) => s,
                    Y::Number(n) => n.to_string(),
                    Y::Bool(b) => b.to_string(),
                    other => return Err(format!("a mapping key must be text, not {other:?}")),
                };
                out.insert(key, yaml_to_json(value)?);
            }
            Value::Object(out)
        }
        Y::Tagged(tagged) => yaml_to_json(tagged.value)?,
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn sanitize_name_lowercases_replaces_and_trims() {
        let cases = [
            ("Prod_EU", "prod-eu"),
            ("-a.b-", "a.b"),
            ("my app/v1", "my-app-v1"),
            ("ünïcode", "n-code"),
            ("..x..", "x"),
        ];
        for (input, expected) in cases {
            assert_eq!(sanitize_name(input), expected, "{input}");
        }
        assert_eq!(sanitize_name(&"a".repeat(300)).len(), 253);
    }

    #[test]
    fn go_string_prints_numbers_as_go_float64() {
        let cases = [
            (json!(3), "3"),
            (json!(1.5), "1.5"),
            (json!(123456), "123456"),
            (json!(1000000), "1e+06"),
            (json!(1234567), "1.234567e+06"),
            (json!(0.0001), "0.0001"),
            (json!(0.00001), "1e-05"),
            (json!(-2), "-2"),
            (json!(null), "<nil>"),
            (json!(true), "true"),
            (json!(["a", 1]), "[a 1]"),
            (json!({"b": 1, "a": "x"}), "map[a:x b:1]"),
        ];
        for (value, expected) in cases {
            assert_eq!(go_string(&value), expected, "{value}");
        }
    }

    #[test]
    fn flatten_joins_keys_indexes_lists_and_drops_empty_containers() {
        let params = json!({
            "a": {"b": {"c": 1}, "empty": {}},
            "list": ["x", {"y": true}],
            "none": [],
            "n": null
        });
        let Value::Object(params) = params else {
            unreachable!("an object literal")
        };
        let flat = flatten(&params);
        let expected: BTreeMap<String, String> = [
            ("a.b.c", "1"),
            ("list.0", "x"),
            ("list.1.y", "true"),
            ("n", "<nil>"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        assert_eq!(flat, expected);
    }

    #[test]
    fn go_base_and_dir_follow_go_path_package() {
        assert_eq!(go_base("a/b/c"), "c");
        assert_eq!(go_base("c"), "c");
        assert_eq!(go_base(""), ".");
        assert_eq!(go_base("."), ".");
        assert_eq!(go_dir("a/b/c.json"), "a/b");
        assert_eq!(go_dir("c.json"), ".");
    }
}
