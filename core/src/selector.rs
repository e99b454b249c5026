//! Kubernetes label selectors in their text form (`app=web,tier!=db,
//! env in (prod,staging),!legacy`), as `kubectl -l` and Argo CD's
//! `?selector=` take them: parsed once, then matched against labels.
//!
//! Not here: the structured `matchLabels`/`matchExpressions` form
//! (ApplicationSet generators read that one).

use std::collections::BTreeMap;

/// One requirement of a selector.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Requirement {
    /// `key=value` or `key==value`.
    Equals(String, String),
    /// `key!=value` (also true when the key is absent).
    NotEquals(String, String),
    /// `key in (a,b)`.
    In(String, Vec<String>),
    /// `key notin (a,b)` (also true when the key is absent).
    NotIn(String, Vec<String>),
    /// `key`.
    Exists(String),
    /// `!key`.
    NotExists(String),
}

/// A parsed label selector: every requirement must hold. The empty
/// selector matches everything.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Selector(Vec<Requirement>);

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

impl Selector {
    /// Parses the text form.
    ///
    /// # Errors
    /// What is wrong with it, naming the part.
    pub fn parse(text: &str) -> Result<Selector, String> {
        let mut requirements = Vec::new();
        if text.trim().is_empty() {
            return Ok(Selector(requirements));
        }
        for part in split_top(text)? {
            let part = part.trim();
            let requirement = if let Some((k, v)) = part.split_once("!=") {
                Requirement::NotEquals(key(k)?, value(v)?)
            } else if let Some((k, v)) = part.split_once("==") {
                Requirement::Equals(key(k)?, value(v)?)
            } else if let Some((k, v)) = part.split_once('=') {
                Requirement::Equals(key(k)?, value(v)?)
            } else if let Some((k, rest)) = part.split_once(" notin ") {
                Requirement::NotIn(key(k)?, set(rest)?)
            } else if let Some((k, rest)) = part.split_once(" in ") {
                Requirement::In(key(k)?, set(rest)?)
            } else if let Some(k) = part.strip_prefix('!') {
                Requirement::NotExists(key(k)?)
            } else {
                Requirement::Exists(key(part)?)
            };
            requirements.push(requirement);
        }
        Ok(Selector(requirements))
    }

    /// Whether `labels` satisfy every requirement.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.0.iter().all(|r| match r {
            Requirement::Equals(k, v) => labels.get(k) == Some(v),
            Requirement::NotEquals(k, v) => labels.get(k) != Some(v),
            Requirement::In(k, vs) => labels.get(k).is_some_and(|l| vs.contains(l)),
            Requirement::NotIn(k, vs) => labels.get(k).is_none_or(|l| !vs.contains(l)),
            Requirement::Exists(k) => labels.contains_key(k),
            Requirement::NotExists(k) => !labels.contains_key(k),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
            let parsed = Selector::parse(selector).expect(selector);
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
            assert!(Selector::parse(bad).is_err(), "{bad}");
        }
    }
}
