//! Kubernetes label selectors in their text form (`app=web,tier!=db,
//! env in (prod,staging),!legacy`), as `kubectl -l` and Argo CD's
//! `?selector=` take them: parsed once, then matched against labels.
//!
//! The text becomes the structured `matchLabels`/`matchExpressions` form,
//! and [`crate::appset::selector::Selector`] (the one ApplicationSet
//! generators use) matches it.

use crate::appset::model::{LabelSelector, LabelSelectorRequirement};
use crate::appset::selector::Selector;

/// Splits at commas outside parentheses.
fn split_top(text: &str) -> Result<Vec<&str>, String> {
    let mut parts = Vec::new();
    let (mut depth, mut start) = (0usize, 0usize);
    for (i, c) in text.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth = depth.checked_sub(1).ok_or("unbalanced parentheses")?,
            ',' if depth == 0 => {
                parts.push(&text[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    if depth != 0 {
        return Err("unbalanced parentheses".into());
    }
    parts.push(&text[start..]);
    Ok(parts)
}

/// A label key or value as Kubernetes allows it (a key may have a DNS
/// prefix: `app.kubernetes.io/name`).
fn valid(word: &str, key: bool) -> bool {
    let allowed =
        |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') || (key && c == '/');
    (!key || !word.is_empty()) && word.chars().all(allowed)
}

fn key(word: &str) -> Result<String, String> {
    let word = word.trim();
    if valid(word, true) {
        Ok(word.to_string())
    } else {
        Err(format!("{word:?} is not a label key"))
    }
}

fn value(word: &str) -> Result<String, String> {
    let word = word.trim();
    if valid(word, false) {
        Ok(word.to_string())
    } else {
        Err(format!("{word:?} is not a label value"))
    }
}

/// `(a, b)` as its values.
fn set(text: &str) -> Result<Vec<String>, String> {
    let inner = text
        .trim()
        .strip_prefix('(')
        .and_then(|t| t.strip_suffix(')'))
        .ok_or_else(|| format!("expected a parenthesized list of values, found {text:?}"))?;
    inner.split(',').map(value).collect()
}

/// Parses the text form into a selector.
///
/// # Errors
/// What is wrong with it, naming the part.
pub fn parse(text: &str) -> Result<Selector, String> {
    let mut selector = LabelSelector::default();
    let mut expression = |key: String, operator: &str, values: Vec<String>| {
        selector.match_expressions.push(LabelSelectorRequirement {
            key,
            operator: operator.to_string(),
            values,
        });
    };
    if !text.trim().is_empty() {
        for part in split_top(text)? {
            let part = part.trim();
            if let Some((k, v)) = part.split_once("!=") {
                expression(key(k)?, "NotIn", vec![value(v)?]);
            } else if let Some((k, v)) = part.split_once("==").or_else(|| part.split_once('=')) {
                expression(key(k)?, "In", vec![value(v)?]);
            } else if let Some((k, rest)) = part.split_once(" notin ") {
                expression(key(k)?, "NotIn", set(rest)?);
            } else if let Some((k, rest)) = part.split_once(" in ") {
                expression(key(k)?, "In", set(rest)?);
            } else if let Some(k) = part.strip_prefix('!') {
                expression(key(k)?, "DoesNotExist", Vec::new());
            } else {
                expression(key(part)?, "Exists", Vec::new());
            }
        }
    }
    Selector::new(&selector).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn each_form_matches_as_kubectl_does() {
        let web = labels(&[
            ("app", "web"),
            ("env", "prod"),
            ("app.kubernetes.io/part-of", "shop"),
        ]);
        for (selector, expected) in [
            ("", true),
            ("app=web", true),
            ("app==web", true),
            ("app=api", false),
            ("app!=api", true),
            ("tier!=db", true),
            ("env in (prod, staging)", true),
            ("env in (staging)", false),
            ("env notin (staging)", true),
            ("tier notin (db)", true),
            ("app", true),
            ("tier", false),
            ("!tier", true),
            ("!app", false),
            ("app=web,env in (prod,staging),!legacy", true),
            ("app.kubernetes.io/part-of=shop", true),
            ("app=web,env=dev", false),
        ] {
            let parsed = parse(selector).expect(selector);
            assert_eq!(parsed.matches(&web), expected, "{selector}");
        }
    }

    #[test]
    fn malformed_selectors_are_errors() {
        for bad in [
            "env in prod",
            "env in (prod",
            "a=b c",
            "=web",
            "env in (a b)",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }
}
