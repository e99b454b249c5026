//! Application namespaces: the one Plumb runs in (`--namespace`) and the
//! others it manages Application objects in (`--app-namespaces`, Argo CD's
//! `application.namespaces`), and how an application is named across them.
//!
//! An application in the application namespace is named by its object's
//! name, as before; one in another namespace is `NAMESPACE/NAME`, the form
//! Argo CD's CLI takes. In tracking ids (and anywhere a name must be a label
//! value) the slash becomes an underscore, `NAMESPACE_NAME`, as Argo CD
//! writes its instance names. Kubernetes names never hold `_` or `/`, so
//! each form maps back to the other without loss.

use std::borrow::Cow;

use globset::{Glob, GlobMatcher};
use regex::Regex;

/// The namespaces whose Application objects Plumb manages.
#[derive(Clone, Debug)]
pub struct AppNamespaces {
    home: String,
    patterns: Vec<Pattern>,
}

#[derive(Clone, Debug)]
enum Pattern {
    Exact(String),
    Glob(GlobMatcher),
    Regex(Regex),
}

/// A pattern of `--app-namespaces` that does not compile.
#[derive(Debug, thiserror::Error)]
#[error("--app-namespaces pattern {pattern:?}: {message}")]
pub struct PatternError {
    /// The pattern as given.
    pub pattern: String,
    /// Why it does not compile.
    pub message: String,
}

impl AppNamespaces {
    /// The application namespace `home` and the patterns of the others:
    /// names, shell globs (`team-*`), or regular expressions between
    /// slashes (`/^team-(a|b)$/`), as Argo CD reads `application.namespaces`.
    ///
    /// # Errors
    /// When a glob or regular expression does not compile, or a pattern is
    /// empty.
    pub fn new(home: &str, patterns: &[String]) -> Result<AppNamespaces, PatternError> {
        let error = |pattern: &str, message: String| PatternError {
            pattern: pattern.to_string(),
            message,
        };
        let mut compiled = Vec::with_capacity(patterns.len());
        for p in patterns {
            let p = p.trim();
            if p.is_empty() {
                return Err(error(p, "empty pattern".into()));
            }
            let pattern = if let Some(body) = p
                .strip_prefix('/')
                .and_then(|rest| rest.strip_suffix('/'))
                .filter(|_| p.len() > 1)
            {
                Pattern::Regex(Regex::new(body).map_err(|e| error(p, e.to_string()))?)
            } else if p.contains(['*', '?', '[']) {
                Pattern::Glob(
                    Glob::new(p)
                        .map_err(|e| error(p, e.kind().to_string()))?
                        .compile_matcher(),
                )
            } else {
                Pattern::Exact(p.to_string())
            };
            compiled.push(pattern);
        }
        Ok(AppNamespaces {
            home: home.to_string(),
            patterns: compiled,
        })
    }

    /// The application namespace (`--namespace`).
    pub fn home(&self) -> &str {
        &self.home
    }

    /// Whether Application objects in `namespace` are managed.
    pub fn manages(&self, namespace: &str) -> bool {
        namespace == self.home
            || self.patterns.iter().any(|p| match p {
                Pattern::Exact(name) => name == namespace,
                Pattern::Glob(glob) => glob.is_match(namespace),
                Pattern::Regex(re) => re.is_match(namespace),
            })
    }

    /// The namespaces beyond the application namespace, when each is named
    /// exactly (each can be watched on its own); `None` when a glob or a
    /// regular expression asks for a watch of every namespace.
    pub fn exact_others(&self) -> Option<Vec<&str>> {
        let mut out = Vec::new();
        for p in &self.patterns {
            match p {
                Pattern::Exact(name) if name == &self.home => {}
                Pattern::Exact(name) => {
                    if !out.contains(&name.as_str()) {
                        out.push(name.as_str());
                    }
                }
                Pattern::Glob(_) | Pattern::Regex(_) => return None,
            }
        }
        Some(out)
    }

    /// Whether any namespace beyond the application namespace is managed.
    pub fn has_others(&self) -> bool {
        !self.patterns.is_empty()
    }

    /// The name of the application whose object is `namespace`/`name`.
    pub fn key(&self, namespace: &str, name: &str) -> String {
        app_key(namespace, name, &self.home)
    }

    /// Application `app` as Plumb names it: `HOME/NAME` (the application
    /// namespace written out) is `NAME`.
    pub fn canonical<'a>(&self, app: &'a str) -> &'a str {
        match app.split_once('/') {
            Some((namespace, name)) if namespace == self.home => name,
            _ => app,
        }
    }

    /// The namespace and object name of application `app`.
    pub fn split<'a>(&'a self, app: &'a str) -> (&'a str, &'a str) {
        match app.split_once('/') {
            Some((namespace, name)) => (namespace, name),
            None => (self.home.as_str(), app),
        }
    }
}

/// The name of the application whose object is `namespace`/`name`, where
/// `home` is the application namespace: `name` there, `namespace/name`
/// elsewhere.
pub fn app_key(namespace: &str, name: &str, home: &str) -> String {
    if namespace.is_empty() || namespace == home {
        name.to_string()
    } else {
        format!("{namespace}/{name}")
    }
}

/// Argo CD's instance name of application `app` in tracking ids:
/// `NAMESPACE_NAME` for `NAMESPACE/NAME`, the name alone otherwise.
pub fn instance_name(app: &str) -> Cow<'_, str> {
    match app.split_once('/') {
        Some((namespace, name)) => Cow::Owned(format!("{namespace}_{name}")),
        None => Cow::Borrowed(app),
    }
}

/// The application an instance name stands for (the inverse of
/// [`instance_name`]).
pub fn app_of_instance(instance: &str) -> Cow<'_, str> {
    match instance.split_once('_') {
        Some((namespace, name)) => Cow::Owned(format!("{namespace}/{name}")),
        None => Cow::Borrowed(instance),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_instance_names_and_back() {
        // (namespace, name, application, instance name)
        let table = [
            ("plumb", "shop", "shop", "shop"),
            ("", "shop", "shop", "shop"),
            ("team-a", "shop", "team-a/shop", "team-a_shop"),
            ("team.b", "web.v2", "team.b/web.v2", "team.b_web.v2"),
        ];
        for (namespace, name, app, instance) in table {
            assert_eq!(app_key(namespace, name, "plumb"), app, "{namespace}/{name}");
            assert_eq!(instance_name(app), instance);
            assert_eq!(app_of_instance(instance), app);
        }
        let ns = AppNamespaces::new("plumb", &[]).expect("no patterns");
        assert_eq!(ns.split("shop"), ("plumb", "shop"));
        assert_eq!(ns.split("team-a/shop"), ("team-a", "shop"));
        assert_eq!(ns.canonical("plumb/shop"), "shop");
        assert_eq!(ns.canonical("team-a/shop"), "team-a/shop");
        assert_eq!(ns.canonical("shop"), "shop");
    }

    #[test]
    fn patterns_are_names_globs_or_regular_expressions() {
        let patterns: Vec<String> = ["team-a", "dev-*", "/^prod-(eu|us)$/"]
            .map(String::from)
            .into();
        let ns = AppNamespaces::new("argocd", &patterns).expect("valid patterns");
        // (namespace, managed)
        let table = [
            ("argocd", true),
            ("team-a", true),
            ("team-ab", false),
            ("dev-1", true),
            ("dev", false),
            ("prod-eu", true),
            ("prod-eu-2", false),
            ("default", false),
        ];
        for (namespace, managed) in table {
            assert_eq!(ns.manages(namespace), managed, "{namespace}");
        }
        assert!(
            ns.exact_others().is_none(),
            "a glob watches every namespace"
        );

        let exact = AppNamespaces::new("argocd", &["a".into(), "argocd".into(), "a".into()])
            .expect("names");
        assert_eq!(exact.exact_others(), Some(vec!["a"]));
        assert!(
            !AppNamespaces::new("argocd", &[])
                .expect("none")
                .has_others()
        );
    }

    #[test]
    fn a_broken_pattern_is_an_error_naming_it() {
        for bad in ["/(/", "[a", " "] {
            let err = AppNamespaces::new("plumb", &[bad.to_string()]).expect_err(bad);
            assert!(err.to_string().contains("--app-namespaces"), "{err}");
        }
    }
}
