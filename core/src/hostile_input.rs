//! Hostile and broken manifest files against the pure render: YAML bombs,
//! deep nesting, invalid UTF-8, duplicate keys, a stream of 100,000
//! objects. Each ends in a clear error naming the file (or, for the big
//! stream, a complete render), never a panic or an unbounded expansion.

use std::time::Instant;

use crate::model::{DirectorySource, SourceFile};
use crate::render::{RenderError, render_directory, render_stream};

fn render(path: &str, data: Vec<u8>) -> Result<usize, RenderError> {
    let files = [SourceFile {
        path: path.into(),
        data,
    }];
    render_directory(&files, &DirectorySource::default()).map(|m| m.len())
}

/// Billion laughs: nine levels of nine aliases, 9^9 (387 million) strings
/// once expanded. serde_yaml refuses to expand aliases past a repetition
/// limit, so the render fails at once instead of filling memory.
pub(crate) fn billion_laughs() -> String {
    let mut text = String::from("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: bomb\n");
    text.push_str(
        "a0: &a0 [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n",
    );
    for level in 1..9 {
        let prev = level - 1;
        let refs = vec![format!("*a{prev}"); 9].join(",");
        text.push_str(&format!("a{level}: &a{level} [{refs}]\n"));
    }
    text.push_str("data:\n  boom: *a8\n");
    text
}

#[test]
fn a_billion_laughs_yaml_bomb_is_a_parse_error() {
    let started = Instant::now();
    let error = render("bomb.yaml", billion_laughs().into_bytes()).expect_err("a bomb");
    let message = error.to_string();
    assert!(
        message.starts_with("render bomb.yaml document 1"),
        "{message}"
    );
    assert!(message.contains("repetition limit"), "{message}");
    // Not a timing assertion: the time is printed for RELIABILITY.md.
    eprintln!("billion laughs refused in {:?}", started.elapsed());
}

#[test]
fn deeply_nested_yaml_and_json_are_parse_errors() {
    let depth = 100_000;
    let yaml = format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: deep\ndata: {}{}\n",
        "[".repeat(depth),
        "]".repeat(depth)
    );
    // libyaml's scanner is quadratic in the depth of flow collections
    // (100,000 levels took minutes): the depth is checked before it runs.
    let started = Instant::now();
    let message = render("deep.yaml", yaml.into_bytes())
        .expect_err("too deep")
        .to_string();
    assert!(
        message.starts_with("render deep.yaml document 1 line 5"),
        "{message}"
    );
    assert!(message.contains("nested deeper than 1000"), "{message}");
    eprintln!(
        "100,000 nested flow sequences refused in {:?}",
        started.elapsed()
    );
    // Block nesting is linear for libyaml; serde_yaml refuses it past its
    // recursion limit.
    let block = format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: deep\ndata:\n  x:\n  {}1\n",
        "- ".repeat(depth)
    );
    let message = render("block.yaml", block.into_bytes())
        .expect_err("too deep")
        .to_string();
    assert!(message.contains("recursion limit"), "{message}");

    let json = format!(
        "{{\"apiVersion\": \"v1\", \"kind\": \"ConfigMap\", \"metadata\": {{\"name\": \"deep\"}}, \"data\": {}{}}}",
        "[".repeat(depth),
        "]".repeat(depth)
    );
    let message = render("deep.json", json.into_bytes())
        .expect_err("too deep")
        .to_string();
    assert!(message.starts_with("render deep.json"), "{message}");
    assert!(message.contains("recursion limit"), "{message}");
}

#[test]
fn brackets_in_quotes_comments_and_words_are_not_nesting() {
    let text = format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: fine # {}\ndata:\n  a: \"{}\"\n  b: '{}'\n  c: don't{}\n  d: [[[1]], {{x: [2]}}]\n",
        "[".repeat(2000),
        "[".repeat(2000),
        "{".repeat(2000),
        "]".repeat(10)
    );
    assert_eq!(render("fine.yaml", text.into_bytes()).expect("renders"), 1);
}

#[test]
fn invalid_utf8_is_a_parse_error_naming_the_file() {
    let mut data =
        b"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: bad\ndata:\n  k: \"".to_vec();
    data.extend_from_slice(b"\xc3\x28\xff\"\n");
    let message = render("bad.yaml", data.clone())
        .expect_err("not UTF-8")
        .to_string();
    assert!(
        message.starts_with("render bad.yaml document 1"),
        "{message}"
    );
    // A tool's output (helm, kustomize) with the same bytes: the invalid
    // bytes become U+FFFD, never a panic.
    let rendered = render_stream("helm template", &data).expect("lossy UTF-8");
    assert_eq!(rendered.len(), 1);
}

#[test]
fn duplicate_keys_are_a_parse_error() {
    let data =
        b"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: twice\ndata:\n  k: one\n  k: two\n";
    let message = render("dup.yaml", data.to_vec())
        .expect_err("duplicate key")
        .to_string();
    assert!(
        message.starts_with("render dup.yaml document 1"),
        "{message}"
    );
    assert!(message.contains("duplicate"), "{message}");
}

#[test]
fn a_stream_of_100000_objects_renders_completely() {
    let mut text = String::new();
    for i in 0..100_000 {
        text.push_str(&format!(
            "---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cm-{i}\ndata:\n  i: \"{i}\"\n"
        ));
    }
    let started = Instant::now();
    let count = render("many.yaml", text.into_bytes()).expect("renders");
    assert_eq!(count, 100_000);
    eprintln!("100,000 objects rendered in {:?}", started.elapsed());
}
