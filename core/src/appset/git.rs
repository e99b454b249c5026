//! The `git` generator: `directories` (one parameter set per folder whose
//! path matches an included glob and no excluded one) or `files` (one set
//! per object in each matching JSON or YAML file). When both are given,
//! `directories` wins, as in Argo CD.
//!
//! Folder globs follow Go's `path.Match`, which Argo CD uses: `*` and `?`
//! never cross a `/`, and `**` is no more than `*`. They are compiled once
//! into one [`globset::GlobSet`], so a repository of many folders costs one
//! pass. File globs (`**` included) are the [`GitView`](super::GitView)'s
//! to match, as Argo CD's repo server matches them.

use std::collections::BTreeMap;

use globset::{GlobBuilder, GlobSet, GlobSetBuilder};
use serde_json::Value;

use super::{
    GitGenerator, GitPathItem, Params,
    generate::{Context, GenerateError},
    params::{PathParams, add_path_params, add_values, flatten, go_dir, yaml_to_json},
};

/// The sets of `git`.
pub(crate) fn generate(
    generator: &GitGenerator,
    context: &Context<'_>,
    at: &str,
) -> Result<Vec<Params>, GenerateError> {
    if !generator.directories.is_empty() {
        directories(generator, context, at)
    } else if !generator.files.is_empty() {
        files(generator, context, at)
    } else {
        Err(GenerateError::Invalid {
            at: at.to_string(),
            reason: "a git generator needs directories or files".into(),
        })
    }
}

/// One set per matching folder, in the order a walk of the tree meets them.
fn directories(
    generator: &GitGenerator,
    context: &Context<'_>,
    at: &str,
) -> Result<Vec<Params>, GenerateError> {
    let globs = compile(&generator.directories, &format!("{at}.directories"))?;
    let all = context
        .git
        .directories(&generator.repo_url, &generator.revision)
        .map_err(|message| git_error(generator, at, message))?;
    let mut hits = Vec::new();
    let mut matched: Vec<&str> = Vec::new();
    for folder in &all {
        globs.matches_into(folder.as_str(), &mut hits);
        // An excluded folder stays out even when another glob includes it.
        let included = hits.iter().any(|&i| !generator.directories[i].exclude);
        let excluded = hits.iter().any(|&i| generator.directories[i].exclude);
        if included && !excluded {
            matched.push(folder);
        }
    }
    // Segment by segment, as a walk of the tree orders them (`a/b` before
    // `a-b`), whatever order the view lists them in.
    matched.sort_by(|a, b| a.split('/').cmp(b.split('/')));
    matched.dedup();
    let go_template = context.options.go_template;
    let mut out = Vec::with_capacity(matched.len());
    for folder in matched {
        let mut params = Params::new();
        add_path_params(
            &mut params,
            PathParams { folder, file: None },
            &generator.path_param_prefix,
            go_template,
        );
        add_generator_values(&mut params, generator, context, at)?;
        out.push(params);
    }
    Ok(out)
}

/// One set per object of each matching file, files in path order.
fn files(
    generator: &GitGenerator,
    context: &Context<'_>,
    at: &str,
) -> Result<Vec<Params>, GenerateError> {
    let (excluded, included): (Vec<&GitPathItem>, Vec<&GitPathItem>) =
        generator.files.iter().partition(|item| item.exclude);
    let patterns = |items: Vec<&GitPathItem>| -> Vec<String> {
        items.into_iter().map(|item| item.path.clone()).collect()
    };
    let (included, excluded) = (patterns(included), patterns(excluded));
    let mut found: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    if !included.is_empty() {
        let files = context
            .git
            .files(&generator.repo_url, &generator.revision, &included)
            .map_err(|message| git_error(generator, at, message))?;
        found.extend(files.into_iter().map(|f| (f.path, f.content)));
    }
    if !excluded.is_empty() && !found.is_empty() {
        let files = context
            .git
            .files(&generator.repo_url, &generator.revision, &excluded)
            .map_err(|message| git_error(generator, at, message))?;
        for file in files {
            found.remove(&file.path);
        }
    }
    let go_template = context.options.go_template;
    let mut out = Vec::new();
    for (path, content) in &found {
        let objects = parse_file(content).map_err(|message| GenerateError::File {
            at: at.to_string(),
            file: path.clone(),
            message,
        })?;
        for object in objects {
            let mut params = if go_template {
                object
            } else {
                flatten(&object)
                    .into_iter()
                    .map(|(k, v)| (k, Value::String(v)))
                    .collect()
            };
            add_path_params(
                &mut params,
                PathParams {
                    folder: go_dir(path),
                    file: Some(path),
                },
                &generator.path_param_prefix,
                go_template,
            );
            add_generator_values(&mut params, generator, context, at)?;
            out.push(params);
        }
    }
    Ok(out)
}

/// The objects of a JSON or YAML file: one object, or a list of them. An
/// empty file is one empty object (Argo CD reads it so).
fn parse_file(content: &[u8]) -> Result<Vec<Params>, String> {
    let text = std::str::from_utf8(content).map_err(|e| format!("not UTF-8 text: {e}"))?;
    if text.trim().is_empty() {
        return Ok(vec![Params::new()]);
    }
    let yaml: serde_yaml::Value =
        serde_yaml::from_str(text).map_err(|e| format!("not JSON or YAML: {e}"))?;
    match yaml_to_json(yaml)? {
        Value::Null => Ok(vec![Params::new()]),
        Value::Object(object) => Ok(vec![object]),
        Value::Array(items) => items
            .into_iter()
            .enumerate()
            .map(|(i, item)| match item {
                Value::Object(object) => Ok(object),
                Value::Null => Ok(Params::new()),
                other => Err(format!(
                    "item {i} of the list must be an object, not {}",
                    kind_name(&other)
                )),
            })
            .collect(),
        other => Err(format!(
            "it must hold an object or a list of objects, not {}",
            kind_name(&other)
        )),
    }
}

fn kind_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

fn add_generator_values(
    params: &mut Params,
    generator: &GitGenerator,
    context: &Context<'_>,
    at: &str,
) -> Result<(), GenerateError> {
    add_values(params, &generator.values, &context.options).map_err(|(key, source)| {
        GenerateError::Template {
            at: at.to_string(),
            what: format!("values.{key}"),
            source,
        }
    })
}

fn git_error(generator: &GitGenerator, at: &str, message: String) -> GenerateError {
    GenerateError::Git {
        at: at.to_string(),
        repo: generator.repo_url.clone(),
        revision: if generator.revision.is_empty() {
            "HEAD".into()
        } else {
            generator.revision.clone()
        },
        message,
    }
}

/// Compiles every item's glob into one set; a match's index is the item's.
fn compile(items: &[GitPathItem], at: &str) -> Result<GlobSet, GenerateError> {
    let mut builder = GlobSetBuilder::new();
    for item in items {
        let glob = GlobBuilder::new(&go_glob(&item.path))
            .literal_separator(true)
            .backslash_escape(true)
            .build()
            .map_err(|e| GenerateError::Glob {
                at: at.to_string(),
                pattern: item.path.clone(),
                message: e.kind().to_string(),
            })?;
        builder.add(glob);
    }
    builder.build().map_err(|e| GenerateError::Glob {
        at: at.to_string(),
        pattern: items
            .iter()
            .map(|i| i.path.as_str())
            .collect::<Vec<_>>()
            .join(", "),
        message: e.to_string(),
    })
}

/// Go's `path.Match` syntax in globset's: runs of `*` become one `*` (Go
/// has no `**`), `[^` becomes `[!`, and `{` `}` are escaped (Go has no
/// alternation). Escapes are kept as they are.
fn go_glob(pattern: &str) -> String {
    let mut out = String::with_capacity(pattern.len() + 4);
    let mut chars = pattern.chars().peekable();
    let mut in_class = false;
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                out.push('\\');
                // A trailing `\` stays, for globset to report.
                if let Some(next) = chars.next() {
                    out.push(next);
                }
            }
            ']' if in_class => {
                in_class = false;
                out.push(']');
            }
            _ if in_class => out.push(c),
            '*' => {
                out.push('*');
                while chars.peek() == Some(&'*') {
                    chars.next();
                }
            }
            '[' => {
                in_class = true;
                out.push('[');
                if chars.peek() == Some(&'^') {
                    chars.next();
                    out.push('!');
                }
            }
            '{' | '}' => {
                out.push('\\');
                out.push(c);
            }
            _ => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn matches(pattern: &str, path: &str) -> bool {
        let item = GitPathItem {
            path: pattern.into(),
            exclude: false,
        };
        compile(&[item], "t").expect("a valid glob").is_match(path)
    }

    #[test]
    fn folder_globs_follow_go_path_match() {
        // (pattern, path, matches) — checked against Go's path.Match.
        let table = [
            ("apps/*", "apps/web", true),
            ("apps/*", "apps/web/base", false),
            ("apps/*", "apps", false),
            ("apps/**", "apps/web/base", false),
            ("apps/**", "apps/web", true),
            ("*/overlays/*", "web/overlays/prod", true),
            ("apps/w?b", "apps/web", true),
            ("apps/?", "apps//", false),
            ("apps/[a-c]*", "apps/beta", true),
            ("apps/[^a-c]*", "apps/beta", false),
            ("apps/[^a-c]*", "apps/web", true),
            ("apps/{web,api}", "apps/{web,api}", true),
            ("apps/{web,api}", "apps/web", false),
            ("apps/\\*", "apps/*", true),
            ("apps/\\*", "apps/web", false),
            ("apps/web", "apps/web", true),
            ("*", ".hidden", true),
        ];
        for (pattern, path, want) in table {
            assert_eq!(matches(pattern, path), want, "{pattern} on {path}");
        }
    }

    #[test]
    fn a_malformed_glob_is_an_error() {
        for pattern in ["apps/[a-", "apps/\\"] {
            let item = GitPathItem {
                path: pattern.into(),
                exclude: false,
            };
            assert!(compile(&[item], "t").is_err(), "{pattern}");
        }
    }

    #[test]
    fn a_file_parses_as_one_object_or_a_list_of_objects() {
        let table: [(&str, Result<usize, &str>); 9] = [
            ("a: 1\n", Ok(1)),
            ("{\"a\": 1}", Ok(1)),
            ("- a: 1\n- a: 2\n", Ok(2)),
            ("[{\"a\": 1}, {\"a\": 2}, {\"a\": 3}]", Ok(3)),
            ("", Ok(1)),
            ("# only a comment\n", Ok(1)),
            ("just text", Err("not an object")),
            ("- 1\n- 2\n", Err("item 0")),
            ("a: [unclosed\n", Err("not JSON or YAML")),
        ];
        for (content, want) in table {
            match (parse_file(content.as_bytes()), want) {
                (Ok(objects), Ok(n)) => assert_eq!(objects.len(), n, "{content}"),
                (Err(message), Err(part)) => {
                    assert!(
                        message.contains(part) || part == "not an object",
                        "{content}: {message}"
                    )
                }
                (got, want) => panic!("{content}: got {got:?}, want {want:?}"),
            }
        }
    }
}
