//! The sprig functions (strings, regular expressions, defaults, JSON,
//! numbers, lists, dicts, encoding, paths) and Argo CD's additions
//! (`normalize`, `slugify`, `toYaml`, `fromYaml`, `fromYamlArray`), with
//! sprig's argument order (the subject last, so it pipes).

use std::collections::BTreeMap;
use std::rc::Rc;

use base64::Engine as _;
use regex::Regex;
use sha1::Digest as _;

use super::exec::MAX_VALUE;
use super::funcs::{
    FnResult, arity, boolean, int, list, map, new_map, string, strval, to_float64, to_int64,
};
use super::printf::go_quote;
use super::value::{MapCell, V, equal};

/// The longest list `until`, `untilStep` and `seq` build.
const MAX_LIST: i64 = 100_000;

/// Calls the sprig or Argo CD function `name`.
///
/// # Errors
/// With the function's message.
pub(crate) fn call(name: &str, args: Vec<V>) -> FnResult {
    match name {
        // Strings.
        "trim" => str1(args, |s| s.trim().to_string()),
        "trimAll" | "trimall" => str2(args, |cut, s| {
            s.trim_matches(|c| cut.contains(c)).to_string()
        }),
        "trimPrefix" => str2(args, |p, s| s.strip_prefix(p).unwrap_or(s).to_string()),
        "trimSuffix" => str2(args, |p, s| s.strip_suffix(p).unwrap_or(s).to_string()),
        "upper" => str1(args, str::to_uppercase),
        "lower" => str1(args, str::to_lowercase),
        "title" => str1(args, title),
        "untitle" => str1(args, |s| map_word_starts(s, |c| c.to_lowercase().collect())),
        "initials" => str1(args, |s| {
            s.split_whitespace()
                .filter_map(|w| w.chars().next())
                .collect()
        }),
        "nospace" => str1(args, |s| s.chars().filter(|c| !c.is_whitespace()).collect()),
        "swapcase" => str1(args, swapcase),
        "snakecase" => str1(args, |s| split_words(s).join("_")),
        "kebabcase" => str1(args, |s| split_words(s).join("-")),
        "camelcase" => str1(args, camelcase),
        "repeat" => {
            let [n, s] = arity(args)?;
            let (n, s) = (int(&n)?, string(&s)?);
            let n = usize::try_from(n).map_err(|_| "negative repeat count".to_string())?;
            if n.saturating_mul(s.len()) > MAX_VALUE {
                return Err(format!("result larger than {MAX_VALUE} bytes"));
            }
            Ok(V::str(s.repeat(n)))
        }
        "substr" => {
            let [start, end, s] = arity(args)?;
            let (start, end, s) = (int(&start)?, int(&end)?, string(&s)?);
            let len = s.len() as i64;
            let (from, to) = if start < 0 {
                (0, end)
            } else if end < 0 || end > len {
                (start, len)
            } else {
                (start, end)
            };
            if from > to || to > len || from < 0 {
                return Err(format!("slice bounds out of range [{from}:{to}]"));
            }
            Ok(V::str(
                &s[floor_boundary(s, from as usize)..floor_boundary(s, to as usize)],
            ))
        }
        "trunc" => {
            let [c, s] = arity(args)?;
            let (c, s) = (int(&c)?, string(&s)?);
            let len = s.len() as i64;
            Ok(V::str(if c < 0 && len + c > 0 {
                &s[floor_boundary(s, (len + c) as usize)..]
            } else if c >= 0 && len > c {
                &s[..floor_boundary(s, c as usize)]
            } else {
                s
            }))
        }
        "abbrev" => {
            let [w, s] = arity(args)?;
            let (w, s) = (int(&w)?, string(&s)?);
            if w < 4 || s.len() as i64 <= w {
                return Ok(V::str(s));
            }
            Ok(V::str(format!(
                "{}...",
                &s[..floor_boundary(s, (w - 3) as usize)]
            )))
        }
        "contains" => str2b(args, |sub, s| s.contains(sub)),
        "hasPrefix" => str2b(args, |p, s| s.starts_with(p)),
        "hasSuffix" => str2b(args, |p, s| s.ends_with(p)),
        "quote" => join_non_nil(args, |s| go_quote(&s)),
        "squote" => join_non_nil(args, |s| format!("'{s}'")),
        "cat" => join_non_nil(args, |s| s),
        "indent" | "nindent" => {
            let [n, s] = arity(args)?;
            let (n, s) = (int(&n)?, string(&s)?);
            let n = usize::try_from(n).map_err(|_| "negative indent".to_string())?;
            let lines = s.matches('\n').count() + 1;
            if n.saturating_mul(lines).saturating_add(s.len()) > MAX_VALUE {
                return Err(format!("result larger than {MAX_VALUE} bytes"));
            }
            let pad = " ".repeat(n);
            let body = format!("{pad}{}", s.replace('\n', &format!("\n{pad}")));
            Ok(V::str(if name == "nindent" {
                format!("\n{body}")
            } else {
                body
            }))
        }
        "replace" => {
            let [old, new, s] = arity(args)?;
            let (old, new, s) = (string(&old)?, string(&new)?, string(&s)?);
            let count = if old.is_empty() {
                s.chars().count() + 1
            } else {
                s.matches(old).count()
            };
            if count.saturating_mul(new.len()).saturating_add(s.len()) > MAX_VALUE {
                return Err(format!("result larger than {MAX_VALUE} bytes"));
            }
            Ok(V::str(s.replace(old, new)))
        }
        "plural" => {
            let [one, many, n] = arity(args)?;
            Ok(if int(&n)? == 1 {
                V::str(string(&one)?)
            } else {
                V::str(string(&many)?)
            })
        }
        "wrap" => {
            let [n, s] = arity(args)?;
            Ok(V::str(wrap(string(&s)?, int(&n)?, "\n")))
        }
        "wrapWith" => {
            let [n, sep, s] = arity(args)?;
            Ok(V::str(wrap(string(&s)?, int(&n)?, string(&sep)?)))
        }
        "toString" => {
            let [v] = arity(args)?;
            Ok(V::str(strval(&v)?))
        }
        "toStrings" => {
            let [v] = arity(args)?;
            Ok(V::list(strslice(&v)?.into_iter().map(V::str).collect()))
        }
        "join" => {
            let [sep, v] = arity(args)?;
            Ok(V::str(strslice(&v)?.join(string(&sep)?)))
        }
        "splitList" => {
            let [sep, s] = arity(args)?;
            Ok(V::list(
                split(string(&s)?, string(&sep)?, -1)
                    .into_iter()
                    .map(V::str)
                    .collect(),
            ))
        }
        "split" | "splitn" => {
            let (sep, n, s) = if name == "split" {
                let [sep, s] = arity(args)?;
                (sep, -1, s)
            } else {
                let [sep, n, s] = arity(args)?;
                let n = int(&n)?;
                (sep, n, s)
            };
            let parts = split(string(&s)?, string(&sep)?, n);
            Ok(new_map(
                parts
                    .into_iter()
                    .enumerate()
                    .map(|(i, p)| (format!("_{i}"), V::str(p)))
                    .collect(),
            ))
        }
        "sortAlpha" => {
            let [v] = arity(args)?;
            let mut items = match &v {
                V::List(_) => strslice(&v)?,
                other => vec![strval(other)?],
            };
            items.sort();
            Ok(V::list(items.into_iter().map(V::str).collect()))
        }

        // Regular expressions.
        "regexMatch" | "mustRegexMatch" => {
            let [re, s] = arity(args)?;
            let s = string(&s)?;
            match (regex(string(&re)?), name) {
                (Ok(re), _) => Ok(V::Bool(re.is_match(s))),
                // sprig's regexMatch answers false for a bad expression.
                (Err(_), "regexMatch") => Ok(V::Bool(false)),
                (Err(e), _) => Err(e),
            }
        }
        "regexFind" | "mustRegexFind" => {
            let [re, s] = arity(args)?;
            let s = string(&s)?;
            Ok(V::str(
                regex(string(&re)?)?.find(s).map_or("", |m| m.as_str()),
            ))
        }
        "regexFindAll" | "mustRegexFindAll" => {
            let [re, s, n] = arity(args)?;
            let (re, s, n) = (regex(string(&re)?)?, string(&s)?, int(&n)?);
            let limit = usize::try_from(n).unwrap_or(usize::MAX);
            Ok(V::list(
                re.find_iter(s)
                    .take(limit)
                    .map(|m| V::str(m.as_str()))
                    .collect(),
            ))
        }
        "regexReplaceAll" | "mustRegexReplaceAll" => {
            let [re, s, repl] = arity(args)?;
            let (re, s, repl) = (regex(string(&re)?)?, string(&s)?, string(&repl)?);
            bounded(re.replace_all(s, repl).into_owned())
        }
        "regexReplaceAllLiteral" | "mustRegexReplaceAllLiteral" => {
            let [re, s, repl] = arity(args)?;
            let (re, s, repl) = (regex(string(&re)?)?, string(&s)?, string(&repl)?);
            bounded(re.replace_all(s, regex::NoExpand(repl)).into_owned())
        }
        "regexSplit" | "mustRegexSplit" => {
            let [re, s, n] = arity(args)?;
            let (re, s, n) = (regex(string(&re)?)?, string(&s)?, int(&n)?);
            let parts: Vec<V> = match n {
                0 => Vec::new(),
                n if n < 0 => re.split(s).map(V::str).collect(),
                n => re.splitn(s, n as usize).map(V::str).collect(),
            };
            Ok(V::list(parts))
        }
        "regexQuoteMeta" => str1(args, regex::escape),

        // Defaults, flow and types.
        "default" => {
            let Some((fallback, given)) = args.split_first() else {
                return Err("wrong number of args: want at least 1 got 0".into());
            };
            Ok(match given.first() {
                Some(v) if v.truthy() => v.clone(),
                _ => fallback.clone(),
            })
        }
        "empty" => {
            let [v] = arity(args)?;
            Ok(V::Bool(!v.truthy()))
        }
        "coalesce" => Ok(args.into_iter().find(V::truthy).unwrap_or(V::Null)),
        "all" => Ok(V::Bool(args.iter().all(V::truthy))),
        "any" => Ok(V::Bool(args.iter().any(V::truthy))),
        "ternary" => {
            let [yes, no, cond] = arity(args)?;
            Ok(if boolean(&cond)? { yes } else { no })
        }
        "fail" => {
            let [msg] = arity(args)?;
            Err(string(&msg)?.to_string())
        }
        "kindOf" => {
            let [v] = arity(args)?;
            Ok(V::str(v.kind_name()))
        }
        "kindIs" => {
            let [k, v] = arity(args)?;
            Ok(V::Bool(string(&k)? == v.kind_name()))
        }
        "typeOf" => {
            let [v] = arity(args)?;
            Ok(V::str(v.type_name()))
        }
        "typeIs" | "typeIsLike" => {
            let [t, v] = arity(args)?;
            let t = string(&t)?;
            Ok(V::Bool(
                t == v.type_name()
                    || (name == "typeIsLike" && t.strip_prefix('*') == Some(v.type_name())),
            ))
        }
        "deepEqual" => {
            let [a, b] = arity(args)?;
            Ok(V::Bool(equal(&a, &b)?))
        }

        // JSON.
        "toJson" | "mustToJson" => {
            let [v] = arity(args)?;
            Ok(V::str(escape_html_in_json(
                &serde_json::to_string(&json(&v)?).map_err(|e| e.to_string())?,
            )))
        }
        "toPrettyJson" | "mustToPrettyJson" => {
            let [v] = arity(args)?;
            Ok(V::str(escape_html_in_json(
                &serde_json::to_string_pretty(&json(&v)?).map_err(|e| e.to_string())?,
            )))
        }
        "toRawJson" | "mustToRawJson" => {
            let [v] = arity(args)?;
            Ok(V::str(
                serde_json::to_string(&json(&v)?).map_err(|e| e.to_string())?,
            ))
        }
        "fromJson" | "mustFromJson" | "fromJsonArray" | "mustFromJsonArray" => {
            let [s] = arity(args)?;
            let value: serde_json::Value =
                serde_json::from_str(string(&s)?).map_err(|e| e.to_string())?;
            if name.ends_with("Array") && !value.is_array() {
                return Err("the JSON is not an array".into());
            }
            Ok(V::from_json(&value))
        }

        // Numbers.
        "add" => Ok(V::Int(
            args.iter().map(to_int64).fold(0i64, i64::wrapping_add),
        )),
        "add1" => {
            let [v] = arity(args)?;
            Ok(V::Int(to_int64(&v).wrapping_add(1)))
        }
        "sub" => int2(args, |a, b| Ok(a.wrapping_sub(b))),
        "div" => int2(args, |a, b| {
            a.checked_div(b)
                .ok_or_else(|| "integer divide by zero".into())
        }),
        "mod" => int2(args, |a, b| {
            a.checked_rem(b)
                .ok_or_else(|| "integer divide by zero".into())
        }),
        "mul" => {
            let mut args = args.iter();
            let first = args.next().map_or(1, to_int64);
            Ok(V::Int(args.map(to_int64).fold(first, i64::wrapping_mul)))
        }
        "max" | "biggest" | "min" => {
            let values: Vec<i64> = args.iter().map(to_int64).collect();
            let pick = if name == "min" {
                values.iter().min()
            } else {
                values.iter().max()
            };
            pick.map(|v| V::Int(*v))
                .ok_or_else(|| "wrong number of args: want at least 1 got 0".into())
        }
        "addf" => Ok(V::Float(args.iter().map(to_float64).sum())),
        "add1f" => {
            let [v] = arity(args)?;
            Ok(V::Float(to_float64(&v) + 1.0))
        }
        "subf" | "mulf" | "divf" => {
            let Some((first, rest)) = args.split_first() else {
                return Err("wrong number of args: want at least 1 got 0".into());
            };
            let mut acc = to_float64(first);
            for v in rest {
                let x = to_float64(v);
                acc = match name {
                    "subf" => acc - x,
                    "mulf" => acc * x,
                    _ => acc / x,
                };
            }
            Ok(V::Float(acc))
        }
        "maxf" | "minf" => {
            let values = args.iter().map(to_float64);
            let pick = if name == "minf" {
                values.reduce(f64::min)
            } else {
                values.reduce(f64::max)
            };
            pick.map(V::Float)
                .ok_or_else(|| "wrong number of args: want at least 1 got 0".into())
        }
        "floor" => float1(args, f64::floor),
        "ceil" => float1(args, f64::ceil),
        "round" => {
            if args.len() < 2 || args.len() > 3 {
                return Err(format!(
                    "wrong number of args: want 2 or 3 got {}",
                    args.len()
                ));
            }
            let value = to_float64(&args[0]);
            let places = int(&args[1])?;
            let round_on = args.get(2).map_or(0.5, to_float64);
            let pow = 10f64.powi(places.clamp(-300, 300) as i32);
            let digit = pow * value;
            let rounded = if digit.fract().abs() >= round_on {
                digit.ceil()
            } else {
                digit.floor()
            };
            Ok(V::Float(rounded / pow))
        }
        "int" | "int64" => {
            let [v] = arity(args)?;
            Ok(V::Int(to_int64(&v)))
        }
        "float64" => {
            let [v] = arity(args)?;
            Ok(V::Float(to_float64(&v)))
        }
        "atoi" => {
            let [s] = arity(args)?;
            Ok(V::Int(string(&s)?.trim().parse().unwrap_or(0)))
        }
        "toDecimal" => {
            let [v] = arity(args)?;
            Ok(V::Int(i64::from_str_radix(&strval(&v)?, 8).unwrap_or(0)))
        }
        "until" => {
            let [n] = arity(args)?;
            let n = int(&n)?;
            Ok(V::list(
                until_step(0, n, if n < 0 { -1 } else { 1 })?
                    .into_iter()
                    .map(V::Int)
                    .collect(),
            ))
        }
        "untilStep" => {
            let [start, stop, step] = arity(args)?;
            let items = until_step(int(&start)?, int(&stop)?, int(&step)?)?;
            Ok(V::list(items.into_iter().map(V::Int).collect()))
        }
        "seq" => seq(args),

        // Lists.
        "list" | "tuple" => Ok(V::list(args)),
        "first" | "mustFirst" => {
            let [l] = arity(args)?;
            Ok(list(&l, "find first")?
                .0
                .first()
                .cloned()
                .unwrap_or(V::Null))
        }
        "last" | "mustLast" => {
            let [l] = arity(args)?;
            Ok(list(&l, "find last")?.0.last().cloned().unwrap_or(V::Null))
        }
        "rest" | "mustRest" => {
            let [l] = arity(args)?;
            let l = &list(&l, "find rest")?.0;
            Ok(if l.is_empty() {
                V::Null
            } else {
                V::list(l[1..].to_vec())
            })
        }
        "initial" | "mustInitial" => {
            let [l] = arity(args)?;
            let l = &list(&l, "find initial")?.0;
            Ok(if l.is_empty() {
                V::Null
            } else {
                V::list(l[..l.len() - 1].to_vec())
            })
        }
        "append" | "mustAppend" | "push" | "mustPush" | "prepend" | "mustPrepend" => {
            let [l, v] = arity(args)?;
            let mut items = list(&l, "append")?.0.clone();
            if name.to_lowercase().contains("prepend") {
                items.insert(0, v);
            } else {
                items.push(v);
            }
            Ok(V::list(items))
        }
        "concat" => {
            let mut out = Vec::new();
            for l in &args {
                out.extend(list(l, "concat")?.0.iter().cloned());
            }
            Ok(V::list(out))
        }
        "uniq" | "mustUniq" => {
            let [l] = arity(args)?;
            let mut out: Vec<V> = Vec::new();
            for v in &list(&l, "uniq")?.0 {
                if !contains(&out, v)? {
                    out.push(v.clone());
                }
            }
            Ok(V::list(out))
        }
        "without" | "mustWithout" => {
            let Some((l, omit)) = args.split_first() else {
                return Err("wrong number of args: want at least 1 got 0".into());
            };
            let mut out = Vec::new();
            for v in &list(l, "without")?.0 {
                if !contains(omit, v)? {
                    out.push(v.clone());
                }
            }
            Ok(V::list(out))
        }
        "has" | "mustHas" => {
            let [needle, l] = arity(args)?;
            Ok(V::Bool(match &l {
                V::Null => false,
                other => contains(&list(other, "has")?.0, &needle)?,
            }))
        }
        "compact" | "mustCompact" => {
            let [l] = arity(args)?;
            Ok(V::list(
                list(&l, "compact")?
                    .0
                    .iter()
                    .filter(|v| v.truthy())
                    .cloned()
                    .collect(),
            ))
        }
        "reverse" | "mustReverse" => {
            let [l] = arity(args)?;
            Ok(V::list(
                list(&l, "reverse")?.0.iter().rev().cloned().collect(),
            ))
        }
        "chunk" | "mustChunk" => {
            let [size, l] = arity(args)?;
            let size = usize::try_from(int(&size)?)
                .ok()
                .filter(|s| *s > 0)
                .ok_or("chunk size must be positive")?;
            Ok(V::list(
                list(&l, "chunk")?
                    .0
                    .chunks(size)
                    .map(|c| V::list(c.to_vec()))
                    .collect(),
            ))
        }

        // Dicts.
        "dict" => {
            let mut out = BTreeMap::new();
            for pair in args.chunks(2) {
                let key = strval(&pair[0])?;
                out.insert(key, pair.get(1).cloned().unwrap_or_else(|| V::str("")));
            }
            Ok(new_map(out))
        }
        "get" => {
            let [d, k] = arity(args)?;
            Ok(map(&d)?
                .0
                .borrow()
                .get(string(&k)?)
                .cloned()
                .unwrap_or_else(|| V::str("")))
        }
        "set" => {
            let [d, k, v] = arity(args)?;
            let m = map(&d)?;
            refuse_cycle(&v, m)?;
            m.0.borrow_mut().insert(string(&k)?.to_string(), v);
            Ok(d)
        }
        "unset" => {
            let [d, k] = arity(args)?;
            map(&d)?.0.borrow_mut().remove(string(&k)?);
            Ok(d)
        }
        "hasKey" => {
            let [d, k] = arity(args)?;
            Ok(V::Bool(map(&d)?.0.borrow().contains_key(string(&k)?)))
        }
        "pluck" => {
            let Some((k, dicts)) = args.split_first() else {
                return Err("wrong number of args: want at least 1 got 0".into());
            };
            let k = string(k)?;
            let mut out = Vec::new();
            for d in dicts {
                if let Some(v) = map(d)?.0.borrow().get(k) {
                    out.push(v.clone());
                }
            }
            Ok(V::list(out))
        }
        "keys" => {
            let mut out = Vec::new();
            for d in &args {
                out.extend(map(d)?.0.borrow().keys().map(|k| V::str(k.as_str())));
            }
            Ok(V::list(out))
        }
        "values" => {
            let [d] = arity(args)?;
            Ok(V::list(map(&d)?.0.borrow().values().cloned().collect()))
        }
        "pick" | "omit" => {
            let Some((d, keys)) = args.split_first() else {
                return Err("wrong number of args: want at least 1 got 0".into());
            };
            let keys = keys.iter().map(string).collect::<Result<Vec<_>, _>>()?;
            let out = map(d)?
                .0
                .borrow()
                .iter()
                .filter(|(k, _)| keys.contains(&k.as_str()) == (name == "pick"))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            Ok(new_map(out))
        }
        "merge" | "mustMerge" | "mergeOverwrite" | "mustMergeOverwrite" => {
            let Some((dst, srcs)) = args.split_first() else {
                return Err("wrong number of args: want at least 1 got 0".into());
            };
            let target = map(dst)?;
            for src in srcs {
                merge(target, map(src)?, name.contains("Overwrite"), 0)?;
            }
            Ok(dst.clone())
        }
        "dig" => {
            if args.len() < 3 {
                return Err(format!(
                    "wrong number of args: want at least 3 got {}",
                    args.len()
                ));
            }
            let (dict, rest) = args.split_last().ok_or("dig needs a dict")?;
            let (fallback, keys) = rest.split_last().ok_or("dig needs a default")?;
            let mut cur = dict.clone();
            for k in keys {
                let next = map(&cur)?.0.borrow().get(string(k)?).cloned();
                match next {
                    Some(v) => cur = v,
                    None => return Ok(fallback.clone()),
                }
            }
            Ok(cur)
        }
        "deepCopy" | "mustDeepCopy" => {
            let [v] = arity(args)?;
            v.deep_copy()
        }

        // Encoding and paths.
        "b64enc" => {
            let [v] = arity(args)?;
            Ok(V::str(
                base64::engine::general_purpose::STANDARD.encode(strval(&v)?),
            ))
        }
        "b64dec" => {
            let [v] = arity(args)?;
            // sprig returns the decoding error's text instead of failing.
            Ok(V::str(
                match base64::engine::general_purpose::STANDARD.decode(strval(&v)?) {
                    Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
                    Err(e) => e.to_string(),
                },
            ))
        }
        "sha1sum" => str1(args, |s| hex(&sha1::Sha1::digest(s.as_bytes()))),
        "sha256sum" => str1(args, |s| hex(&sha2::Sha256::digest(s.as_bytes()))),
        "sha512sum" => str1(args, |s| hex(&sha2::Sha512::digest(s.as_bytes()))),
        "adler32sum" => str1(args, |s| adler32(s.as_bytes()).to_string()),
        "base" => str1(args, |s| path_base(s).to_string()),
        "dir" => str1(args, path_dir),
        "ext" => str1(args, |s| {
            let base = s.rsplit('/').next().unwrap_or(s);
            base.rfind('.')
                .map_or(String::new(), |i| base[i..].to_string())
        }),
        "clean" => str1(args, path_clean),
        "isAbs" => {
            let [s] = arity(args)?;
            Ok(V::Bool(string(&s)?.starts_with('/')))
        }

        // Argo CD.
        "normalize" => str1(args, normalize),
        "slugify" => slugify(args),
        "toYaml" => {
            let [v] = arity(args)?;
            let text = serde_yaml::to_string(&json(&v)?).map_err(|e| e.to_string())?;
            Ok(V::str(text.strip_suffix('\n').unwrap_or(&text)))
        }
        "fromYaml" | "fromYamlArray" => {
            let [s] = arity(args)?;
            let s = string(&s)?;
            let value: serde_json::Value = if s.trim().is_empty() {
                serde_json::Value::Null
            } else {
                serde_yaml::from_str(s)
                    .map_err(|e| format!("error converting YAML to JSON: {e}"))?
            };
            match (name, value) {
                ("fromYaml", serde_json::Value::Null) => Ok(new_map(BTreeMap::new())),
                ("fromYamlArray", serde_json::Value::Null) => Ok(V::list(Vec::new())),
                ("fromYaml", v @ serde_json::Value::Object(_)) => Ok(V::from_json(&v)),
                ("fromYamlArray", v @ serde_json::Value::Array(_)) => Ok(V::from_json(&v)),
                ("fromYaml", _) => Err("the YAML is not a mapping".into()),
                _ => Err("the YAML is not a sequence".into()),
            }
        }

        _ => Err(format!("function {name:?} not defined")),
    }
}

fn str1(args: Vec<V>, f: impl FnOnce(&str) -> String) -> FnResult {
    let [s] = arity(args)?;
    Ok(V::str(f(string(&s)?)))
}

fn str2(args: Vec<V>, f: impl FnOnce(&str, &str) -> String) -> FnResult {
    let [a, b] = arity(args)?;
    Ok(V::str(f(string(&a)?, string(&b)?)))
}

fn str2b(args: Vec<V>, f: impl FnOnce(&str, &str) -> bool) -> FnResult {
    let [a, b] = arity(args)?;
    Ok(V::Bool(f(string(&a)?, string(&b)?)))
}

fn int2(args: Vec<V>, f: impl FnOnce(i64, i64) -> Result<i64, String>) -> FnResult {
    let [a, b] = arity(args)?;
    Ok(V::Int(f(to_int64(&a), to_int64(&b))?))
}

fn float1(args: Vec<V>, f: impl FnOnce(f64) -> f64) -> FnResult {
    let [v] = arity(args)?;
    Ok(V::Float(f(to_float64(&v))))
}

fn bounded(s: String) -> FnResult {
    if s.len() > MAX_VALUE {
        return Err(format!("result larger than {MAX_VALUE} bytes"));
    }
    Ok(V::str(s))
}

/// The largest char boundary of `s` at or below `i`.
fn floor_boundary(s: &str, i: usize) -> usize {
    let mut i = i.min(s.len());
    while !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

/// Non-nil arguments, each through sprig's `strval` and `f`, joined by
/// spaces (`quote`, `squote`, `cat`).
fn join_non_nil(args: Vec<V>, f: impl Fn(String) -> String) -> FnResult {
    let mut parts = Vec::new();
    for a in args.iter().filter(|a| !matches!(a, V::Null)) {
        parts.push(f(strval(a)?));
    }
    Ok(V::str(parts.join(" ")))
}

/// sprig's `strslice`: a list's non-nil items as strings; a string alone;
/// nil as none.
fn strslice(v: &V) -> Result<Vec<String>, String> {
    match v {
        V::Null => Ok(Vec::new()),
        V::List(l) => {
            l.0.iter()
                .filter(|v| !matches!(v, V::Null))
                .map(strval)
                .collect()
        }
        other => Ok(vec![strval(other)?]),
    }
}

/// Go's `strings.SplitN` (n < 0: all).
fn split(s: &str, sep: &str, n: i64) -> Vec<String> {
    if n == 0 {
        return Vec::new();
    }
    if sep.is_empty() {
        let chars: Vec<String> = s.chars().map(String::from).collect();
        if n > 0 && chars.len() > n as usize {
            let (head, tail) = chars.split_at(n as usize - 1);
            let mut out = head.to_vec();
            out.push(tail.concat());
            return out;
        }
        return chars;
    }
    if n < 0 {
        s.split(sep).map(String::from).collect()
    } else {
        s.splitn(n as usize, sep).map(String::from).collect()
    }
}

fn regex(pattern: &str) -> Result<Regex, String> {
    Regex::new(pattern).map_err(|e| format!("error parsing regexp: {e}"))
}

fn contains(items: &[V], needle: &V) -> Result<bool, String> {
    for item in items {
        if equal(item, needle)? {
            return Ok(true);
        }
    }
    Ok(false)
}

fn json(v: &V) -> Result<serde_json::Value, String> {
    let mut value = v.to_json()?;
    integral_floats(&mut value);
    Ok(value)
}

/// Go's JSON writes the float64 3.0 as `3`; serde_json would write `3.0`.
fn integral_floats(value: &mut serde_json::Value) {
    let mut stack = vec![value];
    while let Some(v) = stack.pop() {
        match v {
            serde_json::Value::Number(n) => {
                if let Some(f) = n
                    .as_f64()
                    .filter(|f| n.is_f64() && f.fract() == 0.0 && f.abs() < 9.0e15)
                {
                    *n = serde_json::Number::from(f as i64);
                }
            }
            serde_json::Value::Array(items) => stack.extend(items.iter_mut()),
            serde_json::Value::Object(map) => stack.extend(map.values_mut()),
            _ => {}
        }
    }
}

/// Go's `json.Marshal` escapes `<`, `>` and `&` (and U+2028/U+2029) so the
/// JSON is safe inside HTML; they only occur inside strings, so replacing
/// them in the text is exact.
fn escape_html_in_json(s: &str) -> String {
    s.replace('<', "\\u003c")
        .replace('>', "\\u003e")
        .replace('&', "\\u0026")
        .replace('\u{2028}', "\\u2028")
        .replace('\u{2029}', "\\u2029")
}

fn until_step(start: i64, stop: i64, step: i64) -> Result<Vec<i64>, String> {
    let count = if step == 0 || (stop < start && step > 0) || (stop >= start && step < 0) {
        0
    } else {
        (stop.abs_diff(start).div_ceil(step.unsigned_abs())) as i64
    };
    if count > MAX_LIST {
        return Err(format!("list longer than {MAX_LIST} items"));
    }
    Ok((0..count).map(|i| start + i * step).collect())
}

fn seq(args: Vec<V>) -> FnResult {
    let params = args.iter().map(int).collect::<Result<Vec<_>, _>>()?;
    let items = match params.as_slice() {
        [] => Vec::new(),
        [end] => {
            let step = if *end < 1 { -1 } else { 1 };
            until_step(1, end + step, step)?
        }
        [start, end] => {
            let step = if end < start { -1 } else { 1 };
            until_step(*start, end + step, step)?
        }
        [start, step, end] => {
            let inc = if end < start { -1 } else { 1 };
            if (inc < 0 && *step > 0) || (inc > 0 && *step < 0) {
                Vec::new()
            } else {
                until_step(*start, end + inc, *step)?
            }
        }
        _ => {
            return Err(format!(
                "wrong number of args: want at most 3 got {}",
                params.len()
            ));
        }
    };
    Ok(V::str(
        items
            .iter()
            .map(i64::to_string)
            .collect::<Vec<_>>()
            .join(" "),
    ))
}

/// Refuses to put into `target` a value that contains `target`: the map
/// would contain itself, which nothing could print or free.
fn refuse_cycle(value: &V, target: &Rc<MapCell>) -> Result<(), String> {
    if value.contains_map(target)? {
        return Err("a dict cannot contain itself".into());
    }
    Ok(())
}

/// mergo's merge of maps, as sprig's `merge` (dst wins unless its value is
/// empty) and `mergeOverwrite` (src wins, even with an empty value: sprig's
/// documented `key: false` over `key: true`); maps on both sides merge
/// recursively, in place.
fn merge(
    dst: &Rc<MapCell>,
    src: &Rc<MapCell>,
    overwrite: bool,
    depth: usize,
) -> Result<(), String> {
    if depth > super::value::MAX_DEPTH {
        return Err(super::value::too_deep());
    }
    if Rc::ptr_eq(dst, src) {
        return Ok(());
    }
    // Copy the entries first: src may be inside dst, and no borrow may be
    // held while dst changes.
    let entries: Vec<(String, V)> = src
        .0
        .borrow()
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    for (key, value) in entries {
        let existing = dst.0.borrow().get(&key).cloned();
        match (&existing, &value) {
            (Some(V::Map(d)), V::Map(s)) => merge(d, s, overwrite, depth + 1)?,
            _ => {
                if overwrite || existing.as_ref().is_none_or(|v| !v.truthy()) {
                    refuse_cycle(&value, dst)?;
                    dst.0.borrow_mut().insert(key, value);
                }
            }
        }
    }
    Ok(())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn adler32(data: &[u8]) -> u32 {
    const MOD: u32 = 65521;
    let (mut a, mut b) = (1u32, 0u32);
    for byte in data {
        a = (a + u32::from(*byte)) % MOD;
        b = (b + a) % MOD;
    }
    (b << 16) | a
}

/// `strings.Title`: upper-cases the first letter of each word; as in Go, a
/// word starts after ASCII other than letters, digits and `_`, or after
/// Unicode white space.
fn title(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut prev = ' ';
    for c in s.chars() {
        let separator = if prev.is_ascii() {
            !(prev.is_ascii_alphanumeric() || prev == '_')
        } else {
            !prev.is_alphanumeric() && prev.is_whitespace()
        };
        if separator {
            out.extend(c.to_uppercase());
        } else {
            out.push(c);
        }
        prev = c;
    }
    out
}

/// Applies `f` to the first letter of each white-space separated word.
fn map_word_starts(s: &str, f: impl Fn(char) -> String) -> String {
    let mut out = String::with_capacity(s.len());
    let mut at_start = true;
    for c in s.chars() {
        if c.is_whitespace() {
            at_start = true;
            out.push(c);
        } else if at_start {
            out.push_str(&f(c));
            at_start = false;
        } else {
            out.push(c);
        }
    }
    out
}

fn swapcase(s: &str) -> String {
    s.chars()
        .flat_map(|c| {
            if c.is_uppercase() {
                c.to_lowercase().collect::<Vec<_>>()
            } else if c.is_lowercase() {
                c.to_uppercase().collect()
            } else {
                vec![c]
            }
        })
        .collect()
}

/// Lower-case words for `snakecase` and `kebabcase`: breaks at
/// non-alphanumerics, before an upper-case letter that follows a lower-case
/// one or a digit, and before the last upper-case letter of a run that a
/// lower-case letter follows (`HTTPServer` is `http` `server`).
fn split_words(s: &str) -> Vec<String> {
    let chars: Vec<char> = s.chars().collect();
    let mut words = Vec::new();
    let mut cur = String::new();
    for (i, &c) in chars.iter().enumerate() {
        if !c.is_alphanumeric() {
            if !cur.is_empty() {
                words.push(std::mem::take(&mut cur));
            }
            continue;
        }
        if c.is_uppercase() && !cur.is_empty() {
            let prev = chars[i - 1];
            let next_lower = chars.get(i + 1).is_some_and(|n| n.is_lowercase());
            if prev.is_lowercase() || prev.is_ascii_digit() || (prev.is_uppercase() && next_lower) {
                words.push(std::mem::take(&mut cur));
            }
        }
        cur.extend(c.to_lowercase());
    }
    if !cur.is_empty() {
        words.push(cur);
    }
    words
}

/// xstrings' `ToCamelCase`: words split at `_`, `-` and white space, each
/// with its first letter upper-cased, joined.
fn camelcase(s: &str) -> String {
    s.split(|c: char| c == '_' || c == '-' || c.is_whitespace())
        .filter(|w| !w.is_empty())
        .map(|w| {
            let mut chars = w.chars();
            let first = chars
                .next()
                .map(|c| c.to_uppercase().collect::<String>())
                .unwrap_or_default();
            format!("{first}{}", chars.as_str())
        })
        .collect()
}

/// goutils' `WrapCustom` without wrapping long words: breaks lines at the
/// last space within `width`, a longer word at the next space.
fn wrap(s: &str, width: i64, newline: &str) -> String {
    let width = usize::try_from(width).unwrap_or(1).max(1);
    let bytes = s.as_bytes();
    let mut out = String::new();
    let mut offset = 0;
    while bytes.len() - offset > width {
        if bytes[offset] == b' ' {
            offset += 1;
            continue;
        }
        let window_end = (offset + width + 1).min(bytes.len());
        let space = bytes[offset..window_end]
            .iter()
            .rposition(|b| *b == b' ')
            .map(|p| p + offset);
        match space {
            Some(at) if at > offset => {
                out.push_str(&s[offset..at]);
                out.push_str(newline);
                offset = at + 1;
            }
            _ => match bytes[offset + width..].iter().position(|b| *b == b' ') {
                Some(p) => {
                    let at = offset + width + p;
                    out.push_str(&s[offset..at]);
                    out.push_str(newline);
                    offset = at + 1;
                }
                None => {
                    out.push_str(&s[offset..]);
                    offset = bytes.len();
                }
            },
        }
    }
    out.push_str(&s[offset..]);
    out
}

/// Go's `path.Base`.
fn path_base(s: &str) -> &str {
    if s.is_empty() {
        return ".";
    }
    let trimmed = s.trim_end_matches('/');
    if trimmed.is_empty() {
        return "/";
    }
    trimmed.rsplit('/').next().unwrap_or(trimmed)
}

/// Go's `path.Dir`.
fn path_dir(s: &str) -> String {
    let dir = match s.rfind('/') {
        Some(i) => &s[..=i],
        None => "",
    };
    path_clean(dir)
}

/// Go's `path.Clean`.
fn path_clean(s: &str) -> String {
    if s.is_empty() {
        return ".".into();
    }
    let rooted = s.starts_with('/');
    let mut parts: Vec<&str> = Vec::new();
    for part in s.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                if parts.last().is_some_and(|p| *p != "..") {
                    parts.pop();
                } else if !rooted {
                    parts.push("..");
                }
            }
            p => parts.push(p),
        }
    }
    let joined = parts.join("/");
    match (rooted, joined.is_empty()) {
        (true, _) => format!("/{joined}"),
        (false, true) => ".".into(),
        (false, false) => joined,
    }
}

/// Argo CD's `normalize`: lower case, every character but `a-z`, `0-9`,
/// `-` and `.` becomes `-`, at most 253 characters, no `-` or `.` at
/// either end — a valid DNS subdomain name when anything is left.
pub(crate) fn normalize(s: &str) -> String {
    let mut out: String = s
        .to_lowercase()
        .chars()
        .map(|c| {
            if c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.' {
                c
            } else {
                '-'
            }
        })
        .collect();
    out.truncate(253);
    out.trim_matches(['-', '.']).to_string()
}

/// Argo CD's `slugify [maxSize=50] [smartTruncate=true] text`:
/// [`normalize`], then gosimple/slug: anything but letters, digits, `-` and
/// `_` becomes `-`, runs of `-` collapse, `-`/`_` trimmed, and the result
/// cut to `maxSize` — at the last `-` within it when smart.
fn slugify(args: Vec<V>) -> FnResult {
    let Some((text, options)) = args.split_last() else {
        return Err("wrong number of args: want at least 1 got 0".into());
    };
    let max = match options.first() {
        Some(v) => int(v)?,
        None => 50,
    };
    let smart = match options.get(1) {
        Some(v) => boolean(v)?,
        None => true,
    };
    let max =
        usize::try_from(max).map_err(|_| "slugify: maxSize must not be negative".to_string())?;
    let mut slug = normalize(string(text)?);
    if !smart && slug.len() >= max {
        slug.truncate(max);
    }
    let mut collapsed = String::with_capacity(slug.len());
    for c in slug.chars() {
        let c = if c.is_ascii_alphanumeric() || c == '_' {
            c
        } else {
            '-'
        };
        if !(c == '-' && collapsed.ends_with('-')) {
            collapsed.push(c);
        }
    }
    let mut slug = collapsed.trim_matches(['-', '_']).to_string();
    if smart && max > 0 && slug.len() > max {
        slug = match slug.as_bytes()[..=max].iter().rposition(|b| *b == b'-') {
            Some(i) => slug[..i].to_string(),
            None => slug[..max].to_string(),
        };
    }
    Ok(V::str(slug))
}
