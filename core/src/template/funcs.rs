//! The functions a template may call: Go's builtins, the sprig functions
//! Argo CD allows (not `env`, `expandenv` or `getHostByName`, and none that
//! read the clock or randomness, which a pure renderer cannot), and Argo
//! CD's own `normalize`, `slugify`, `toYaml`, `fromYaml`, `fromYamlArray`
//! (`tpl` lives in the executor, which it needs).
//!
//! Arguments follow Go's conversions: a parameter typed `string` in Go
//! takes only a string (nil is "invalid value"), one typed `int` takes an
//! integer, and sprig's `interface{}` parameters take anything, converting
//! as sprig's `toInt64`/`strval` do.

use std::collections::BTreeMap;
use std::rc::Rc;

use super::printf::{fmt_v, sprint, sprintf, sprintln};
use super::sprig;
use super::value::{List, MapCell, V, equal};

/// The result of a function.
pub(crate) type FnResult = Result<V, String>;

/// Every function name a template may use.
pub(crate) const NAMES: &[&str] = &[
    // Go's builtins.
    "and",
    "or",
    "not",
    "len",
    "index",
    "slice",
    "print",
    "printf",
    "println",
    "eq",
    "ne",
    "lt",
    "le",
    "gt",
    "ge",
    "html",
    "js",
    "urlquery",
    "call",
    // sprig: strings.
    "trim",
    "trimAll",
    "trimall",
    "trimPrefix",
    "trimSuffix",
    "upper",
    "lower",
    "title",
    "untitle",
    "repeat",
    "substr",
    "nospace",
    "trunc",
    "abbrev",
    "initials",
    "contains",
    "hasPrefix",
    "hasSuffix",
    "quote",
    "squote",
    "cat",
    "indent",
    "nindent",
    "replace",
    "plural",
    "snakecase",
    "camelcase",
    "kebabcase",
    "swapcase",
    "wrap",
    "wrapWith",
    "toString",
    "toStrings",
    "join",
    "splitList",
    "split",
    "splitn",
    "sortAlpha",
    // sprig: regular expressions.
    "regexMatch",
    "mustRegexMatch",
    "regexFind",
    "mustRegexFind",
    "regexFindAll",
    "mustRegexFindAll",
    "regexReplaceAll",
    "mustRegexReplaceAll",
    "regexReplaceAllLiteral",
    "mustRegexReplaceAllLiteral",
    "regexSplit",
    "mustRegexSplit",
    "regexQuoteMeta",
    // sprig: defaults, flow and types.
    "default",
    "empty",
    "coalesce",
    "all",
    "any",
    "ternary",
    "fail",
    "kindOf",
    "kindIs",
    "typeOf",
    "typeIs",
    "typeIsLike",
    "deepEqual",
    // sprig: JSON.
    "toJson",
    "mustToJson",
    "toPrettyJson",
    "mustToPrettyJson",
    "toRawJson",
    "mustToRawJson",
    "fromJson",
    "mustFromJson",
    "fromJsonArray",
    "mustFromJsonArray",
    // sprig: numbers.
    "add",
    "add1",
    "sub",
    "div",
    "mod",
    "mul",
    "max",
    "biggest",
    "min",
    "floor",
    "ceil",
    "round",
    "int",
    "int64",
    "float64",
    "atoi",
    "toDecimal",
    "addf",
    "add1f",
    "subf",
    "divf",
    "mulf",
    "maxf",
    "minf",
    "until",
    "untilStep",
    "seq",
    // sprig: lists.
    "list",
    "tuple",
    "first",
    "mustFirst",
    "last",
    "mustLast",
    "rest",
    "mustRest",
    "initial",
    "mustInitial",
    "append",
    "mustAppend",
    "push",
    "mustPush",
    "prepend",
    "mustPrepend",
    "concat",
    "uniq",
    "mustUniq",
    "without",
    "mustWithout",
    "has",
    "mustHas",
    "compact",
    "mustCompact",
    "reverse",
    "mustReverse",
    "mustSlice",
    "chunk",
    "mustChunk",
    // sprig: dicts.
    "dict",
    "get",
    "set",
    "unset",
    "hasKey",
    "pluck",
    "keys",
    "values",
    "pick",
    "omit",
    "merge",
    "mustMerge",
    "mergeOverwrite",
    "mustMergeOverwrite",
    "dig",
    "deepCopy",
    "mustDeepCopy",
    // sprig: encoding and paths.
    "b64enc",
    "b64dec",
    "sha1sum",
    "sha256sum",
    "sha512sum",
    "adler32sum",
    "base",
    "dir",
    "ext",
    "clean",
    "isAbs",
    // Argo CD.
    "normalize",
    "slugify",
    "toYaml",
    "fromYaml",
    "fromYamlArray",
    "tpl",
];

/// Whether `name` is a function.
pub(crate) fn exists(name: &str) -> bool {
    NAMES.contains(&name)
}

/// Calls the function `name`.
///
/// # Errors
/// With the function's own message: wrong arguments, or its failure.
pub(crate) fn call(name: &str, args: Vec<V>) -> FnResult {
    match name {
        "not" => {
            let [v] = arity(args)?;
            Ok(V::Bool(!v.truthy()))
        }
        "len" => {
            let [v] = arity(args)?;
            length(&v)
        }
        "index" => index(args),
        "slice" | "mustSlice" => slice(args),
        "print" => Ok(V::str(sprint(&args)?)),
        "println" => Ok(V::str(sprintln(&args)?)),
        "printf" => {
            let Some((format, rest)) = args.split_first() else {
                return Err("wrong number of args: want at least 1 got 0".into());
            };
            Ok(V::str(sprintf(string(format)?, rest)?))
        }
        "eq" => eq(args),
        "ne" => {
            let [a, b] = arity(args)?;
            Ok(V::Bool(!eq_one(&a, &b)?))
        }
        "lt" | "le" | "gt" | "ge" => {
            let [a, b] = arity(args)?;
            let ord = compare(&a, &b)?;
            Ok(V::Bool(match name {
                "lt" => ord.is_lt(),
                "le" => ord.is_le(),
                "gt" => ord.is_gt(),
                _ => ord.is_ge(),
            }))
        }
        "html" => Ok(V::str(html_escape(&escaper_input(&args)?))),
        "js" => Ok(V::str(js_escape(&escaper_input(&args)?))),
        "urlquery" => Ok(V::str(query_escape(&escaper_input(&args)?))),
        "call" => Err("call is not supported: template data holds no functions".into()),
        "and" | "or" | "tpl" => Err(format!("internal: {name} is evaluated by the executor")),
        _ => sprig::call(name, args),
    }
}

/// The arguments as exactly `N` values.
///
/// # Errors
/// When there are not `N`.
pub(crate) fn arity<const N: usize>(args: Vec<V>) -> Result<[V; N], String> {
    <[V; N]>::try_from(args).map_err(|a| format!("wrong number of args: want {N} got {}", a.len()))
}

/// A Go `string` parameter.
///
/// # Errors
/// When the value is not a string.
pub(crate) fn string(v: &V) -> Result<&str, String> {
    match v {
        V::Str(s) => Ok(s),
        V::Null => Err("invalid value; expected string".into()),
        other => Err(format!(
            "wrong type for value; expected string; got {}",
            other.type_name()
        )),
    }
}

/// A Go `int` parameter (a float with an integer value passes, as JSON
/// does not tell them apart).
///
/// # Errors
/// When the value is not an integer.
pub(crate) fn int(v: &V) -> Result<i64, String> {
    match v {
        V::Int(i) => Ok(*i),
        V::Float(f) if f.fract() == 0.0 && f.abs() < 9.2e18 => Ok(*f as i64),
        V::Null => Err("invalid value; expected int".into()),
        other => Err(format!(
            "wrong type for value; expected int; got {}",
            other.type_name()
        )),
    }
}

/// A Go `bool` parameter.
///
/// # Errors
/// When the value is not a bool.
pub(crate) fn boolean(v: &V) -> Result<bool, String> {
    match v {
        V::Bool(b) => Ok(*b),
        V::Null => Err("invalid value; expected bool".into()),
        other => Err(format!(
            "wrong type for value; expected bool; got {}",
            other.type_name()
        )),
    }
}

/// A list parameter.
///
/// # Errors
/// When the value is not a list.
pub(crate) fn list<'a>(v: &'a V, func: &str) -> Result<&'a Rc<List>, String> {
    match v {
        V::List(l) => Ok(l),
        other => Err(format!("cannot {func} on type {}", other.type_name())),
    }
}

/// A map parameter.
///
/// # Errors
/// When the value is not a map.
pub(crate) fn map(v: &V) -> Result<&Rc<MapCell>, String> {
    match v {
        V::Map(m) => Ok(m),
        V::Null => Err("invalid value; expected map[string]interface {}".into()),
        other => Err(format!(
            "wrong type for value; expected map[string]interface {{}}; got {}",
            other.type_name()
        )),
    }
}

/// sprig's `strval`: a string as is, anything else as `%v`.
///
/// # Errors
/// When the value nests too deep.
pub(crate) fn strval(v: &V) -> Result<String, String> {
    match v {
        V::Str(s) => Ok(s.to_string()),
        other => fmt_v(other),
    }
}

/// sprig's `toInt64` (spf13/cast): numbers truncate, strings parse (with
/// Go's base prefixes), bools are 0/1, anything else is 0.
pub(crate) fn to_int64(v: &V) -> i64 {
    match v {
        V::Int(i) => *i,
        V::Float(f) => *f as i64,
        V::Bool(b) => i64::from(*b),
        V::Str(s) => {
            let t = s.trim();
            // cast drops a zero fraction ("3.0" is 3).
            let t = t.strip_suffix(".0").unwrap_or(t);
            match super::lex::parse_number(t) {
                Ok(super::lex::Number::Int(i)) => i,
                _ => 0,
            }
        }
        _ => 0,
    }
}

/// sprig's `toFloat64`.
pub(crate) fn to_float64(v: &V) -> f64 {
    match v {
        V::Int(i) => *i as f64,
        V::Float(f) => *f,
        V::Bool(b) => f64::from(u8::from(*b)),
        V::Str(s) => s.trim().parse().unwrap_or(0.0),
        _ => 0.0,
    }
}

fn length(v: &V) -> FnResult {
    Ok(V::Int(match v {
        V::Str(s) => s.len(),
        V::List(l) => l.0.len(),
        V::Map(m) => m.0.borrow().len(),
        V::Null => return Err("len of nil pointer".into()),
        other => return Err(format!("len of type {}", other.type_name())),
    } as i64))
}

fn index(args: Vec<V>) -> FnResult {
    let mut it = args.into_iter();
    let Some(mut item) = it.next() else {
        return Err("wrong number of args: want at least 1 got 0".into());
    };
    for key in it {
        item = match (&item, &key) {
            (V::List(l), _) => {
                let i = int(&key).map_err(|_| {
                    format!("cannot index slice/array with type {}", key.type_name())
                })?;
                usize::try_from(i)
                    .ok()
                    .and_then(|i| l.0.get(i))
                    .cloned()
                    .ok_or_else(|| format!("index out of range: {i}"))?
            }
            (V::Map(m), V::Str(k)) => m.0.borrow().get(&**k).cloned().unwrap_or(V::Null),
            (V::Map(_), _) => {
                return Err(format!(
                    "value has type {}; should be string",
                    key.type_name()
                ));
            }
            (V::Str(s), _) => {
                let i = int(&key)?;
                usize::try_from(i)
                    .ok()
                    .and_then(|i| s.as_bytes().get(i))
                    .map(|b| V::Int(i64::from(*b)))
                    .ok_or_else(|| format!("index out of range: {i}"))?
            }
            (V::Null, _) => return Err("index of untyped nil".into()),
            (other, _) => return Err(format!("can't index item of type {}", other.type_name())),
        };
    }
    Ok(item)
}

fn slice(args: Vec<V>) -> FnResult {
    let Some((item, indices)) = args.split_first() else {
        return Err("wrong number of args: want at least 1 got 0".into());
    };
    if indices.len() > 2 {
        return Err(format!("too many slice indexes: {}", indices.len()));
    }
    let len = match item {
        V::Str(s) => s.len(),
        V::List(l) => l.0.len(),
        V::Null => return Err("slice of untyped nil".into()),
        other => return Err(format!("can't slice item of type {}", other.type_name())),
    };
    let bound = |i: usize| -> Result<usize, String> {
        match indices.get(i) {
            None => Ok(if i == 0 { 0 } else { len }),
            Some(v) => {
                let n = to_int64(v);
                usize::try_from(n)
                    .ok()
                    .filter(|n| *n <= len)
                    .ok_or_else(|| format!("index out of range: {n}"))
            }
        }
    };
    let (start, end) = (bound(0)?, bound(1)?);
    if start > end {
        return Err(format!("invalid slice index: {start} > {end}"));
    }
    Ok(match item {
        V::Str(s) => V::str(
            s.get(start..end)
                .ok_or_else(|| format!("slice {start}:{end} splits a character"))?,
        ),
        V::List(l) => V::list(l.0[start..end].to_vec()),
        _ => V::Null,
    })
}

/// The basic kind of a value for Go's comparisons.
#[derive(PartialEq)]
enum Kind {
    Bool,
    Number,
    Str,
    Other,
}

fn kind(v: &V) -> Kind {
    match v {
        V::Bool(_) => Kind::Bool,
        V::Int(_) | V::Float(_) => Kind::Number,
        V::Str(_) => Kind::Str,
        _ => Kind::Other,
    }
}

fn eq_one(a: &V, b: &V) -> Result<bool, String> {
    let (ka, kb) = (kind(a), kind(b));
    if ka != kb && ka != Kind::Other && kb != Kind::Other {
        return Err("incompatible types for comparison".into());
    }
    equal(a, b)
}

fn eq(args: Vec<V>) -> FnResult {
    let Some((first, rest)) = args.split_first() else {
        return Err("missing argument for comparison".into());
    };
    if rest.is_empty() {
        return Err("missing argument for comparison".into());
    }
    for other in rest {
        if eq_one(first, other)? {
            return Ok(V::Bool(true));
        }
    }
    Ok(V::Bool(false))
}

fn compare(a: &V, b: &V) -> Result<std::cmp::Ordering, String> {
    match (a, b) {
        (V::Int(x), V::Int(y)) => Ok(x.cmp(y)),
        (V::Str(x), V::Str(y)) => Ok(x.cmp(y)),
        (V::Int(_) | V::Float(_), V::Int(_) | V::Float(_)) => to_float64(a)
            .partial_cmp(&to_float64(b))
            .ok_or_else(|| "cannot compare NaN".to_string()),
        _ if kind(a) != kind(b) && kind(a) != Kind::Other && kind(b) != Kind::Other => {
            Err("incompatible types for comparison".into())
        }
        _ => Err("invalid type for comparison".into()),
    }
}

/// The text the escapers work on: a lone string as is, else `fmt.Sprint`.
fn escaper_input(args: &[V]) -> Result<String, String> {
    match args {
        [V::Str(s)] => Ok(s.to_string()),
        _ => sprint(args),
    }
}

fn html_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '"' => out.push_str("&#34;"),
            '\'' => out.push_str("&#39;"),
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '\0' => out.push('\u{fffd}'),
            c => out.push(c),
        }
    }
    out
}

fn js_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\'' => out.push_str("\\'"),
            '"' => out.push_str("\\\""),
            '<' => out.push_str("\\u003C"),
            '>' => out.push_str("\\u003E"),
            '&' => out.push_str("\\u0026"),
            '=' => out.push_str("\\u003D"),
            c if (c as u32) < 0x20 || c.is_control() => {
                out.push_str(&format!("\\u{:04X}", c as u32))
            }
            c => out.push(c),
        }
    }
    out
}

/// Go's `url.QueryEscape`.
pub(crate) fn query_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            b' ' => out.push('+'),
            b => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// A map value from entries.
pub(crate) fn new_map(entries: BTreeMap<String, V>) -> V {
    V::map(entries)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_listed_function_is_dispatched() {
        for name in NAMES {
            if matches!(*name, "and" | "or" | "tpl") {
                continue;
            }
            if let Err(e) = call(name, Vec::new()) {
                assert!(!e.contains("not defined"), "{name}: {e}");
            }
        }
    }

    #[test]
    fn removed_sprig_functions_do_not_exist() {
        for name in [
            "env",
            "expandenv",
            "getHostByName",
            "now",
            "randAlpha",
            "uuidv4",
        ] {
            assert!(!exists(name), "{name}");
        }
    }
}
