//! Argo CD's RBAC in its `policy.csv` form: who may do what to which
//! object. Parsed once, then asked per request; pure, so the rules are
//! tested without a server.
//!
//! A policy line is `p, SUBJECT, RESOURCE, ACTION, OBJECT[, allow|deny]`
//! (an application's object is `PROJECT/NAME`, or `PROJECT/NAMESPACE/NAME`
//! outside the application namespace); `g, SUBJECT, ROLE` gives a user or
//! group a role, roles may hold roles. Resource, action and object match
//! as globs (`*` any run of characters, `/` included), as Argo CD's default
//! glob mode. A deny wins over any allow. The built-in `role:readonly`
//! (every `get`) and `role:admin` (everything) are always there, and
//! `policy.default` is a role every authenticated subject has.
//!
//! Not here: who the subject is (authentication) and where the text comes
//! from (`argocd-rbac-cm`, a project's roles); the API's `auth` asks it.

use std::collections::{BTreeSet, VecDeque};

use crate::ignore::glob;

/// Argo CD's built-in policy: `role:readonly` may get everything,
/// `role:admin` may do everything and has `role:readonly`.
const BUILT_IN: &str = "\
p, role:readonly, *, get, *, allow
p, role:admin, *, *, *, allow
g, role:admin, role:readonly
g, admin, role:admin
";

/// One `p` line.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Rule {
    subject: String,
    resource: String,
    action: String,
    object: String,
    allow: bool,
}

/// A parsed policy.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Policy {
    rules: Vec<Rule>,
    /// `g` lines: (member, role).
    grants: Vec<(String, String)>,
    /// `policy.default`.
    default_role: Option<String>,
}

impl Policy {
    /// The built-in roles with `csv`'s lines, and `default_role` for every
    /// authenticated subject (Argo CD's `policy.default`, empty for none).
    ///
    /// # Errors
    /// The first line that is neither a `p` nor a `g` line of the right
    /// shape, with its number.
    pub fn parse(csv: &str, default_role: &str) -> Result<Policy, String> {
        let mut policy = Policy {
            default_role: Some(default_role.trim())
                .filter(|r| !r.is_empty())
                .map(str::to_string),
            ..Policy::default()
        };
        for (source, text) in [("built-in policy", BUILT_IN), ("policy.csv", csv)] {
            for (n, line) in text.lines().enumerate() {
                let line = line.trim();
                if line.is_empty() || line.starts_with('#') {
                    continue;
                }
                let fields: Vec<&str> = line.split(',').map(str::trim).collect();
                let bad = |why: &str| format!("{source} line {}: {why}: {line:?}", n + 1);
                match fields.as_slice() {
                    ["p", subject, resource, action, object, rest @ ..] => {
                        let allow = match rest {
                            [] | ["allow"] => true,
                            ["deny"] => false,
                            _ => return Err(bad("the effect must be allow or deny")),
                        };
                        if [subject, resource, action, object]
                            .iter()
                            .any(|f| f.is_empty())
                        {
                            return Err(bad("an empty field"));
                        }
                        policy.rules.push(Rule {
                            subject: subject.to_string(),
                            resource: resource.to_string(),
                            action: action.to_string(),
                            object: object.to_string(),
                            allow,
                        });
                    }
                    ["g", member, role] if !member.is_empty() && !role.is_empty() => {
                        policy.grants.push((member.to_string(), role.to_string()));
                    }
                    _ => {
                        return Err(bad(
                            "expected `p, subject, resource, action, object[, effect]` or `g, subject, role`",
                        ));
                    }
                }
            }
        }
        Ok(policy)
    }

    /// This policy with `csv`'s lines added (a project role's policy,
    /// already checked by `project::role_policy`).
    ///
    /// # Errors
    /// As [`Policy::parse`].
    pub fn with(&self, csv: &str) -> Result<Policy, String> {
        let extra = Policy::parse(csv, "")?;
        let mut policy = self.clone();
        for rule in extra.rules {
            if !policy.rules.contains(&rule) {
                policy.rules.push(rule);
            }
        }
        for grant in extra.grants {
            if !policy.grants.contains(&grant) {
                policy.grants.push(grant);
            }
        }
        Ok(policy)
    }

    /// Every subject `subjects` act as: themselves, the default role, and
    /// every role granted to any of them, transitively.
    fn closure(&self, subjects: &[&str]) -> BTreeSet<String> {
        let mut seen: BTreeSet<String> = BTreeSet::new();
        let mut queue: VecDeque<String> = subjects
            .iter()
            .map(|s| s.to_string())
            .chain(self.default_role.clone())
            .collect();
        while let Some(subject) = queue.pop_front() {
            if !seen.insert(subject.clone()) {
                continue;
            }
            for (member, role) in &self.grants {
                if *member == subject && !seen.contains(role) {
                    queue.push_back(role.clone());
                }
            }
        }
        seen
    }

    /// Whether `subjects` (a user and their groups) may do `action` on
    /// `object` of `resource`: some rule of theirs allows it and none
    /// denies it.
    pub fn allows(&self, subjects: &[&str], resource: &str, action: &str, object: &str) -> bool {
        let subjects = self.closure(subjects);
        let mut allowed = false;
        for rule in &self.rules {
            if subjects.contains(&rule.subject)
                && glob(&rule.resource, resource)
                && glob(&rule.action, action)
                && glob(&rule.object, object)
            {
                if !rule.allow {
                    return false;
                }
                allowed = true;
            }
        }
        allowed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CSV: &str = "
# CI may sync team-a's applications, nothing else.
p, role:ci, applications, get, team-a/*, allow
p, role:ci, applications, sync, team-a/*, allow
p, role:ci, applications, sync, team-a/frozen, deny
g, ci-bot, role:ci
g, platform, role:admin
g, role:lead, role:ci
g, alice, role:lead
";

    #[test]
    fn a_ci_role_syncs_one_project_and_nothing_else() {
        let policy = Policy::parse(CSV, "").expect("parses");
        let ci = ["ci-bot"];
        assert!(policy.allows(&ci, "applications", "sync", "team-a/web"));
        assert!(policy.allows(&ci, "applications", "get", "team-a/web"));
        assert!(!policy.allows(&ci, "applications", "sync", "team-b/web"));
        assert!(!policy.allows(&ci, "applications", "delete", "team-a/web"));
        assert!(!policy.allows(&ci, "clusters", "get", "https://kubernetes.default.svc"));
        // A deny wins over the allow that also matches.
        assert!(!policy.allows(&ci, "applications", "sync", "team-a/frozen"));
        // Roles hold roles.
        assert!(policy.allows(&["alice"], "applications", "sync", "team-a/web"));
        // A group given admin may do everything.
        assert!(policy.allows(&["bob", "platform"], "projects", "delete", "default"));
        assert!(!policy.allows(&["bob"], "applications", "get", "team-a/web"));
    }

    #[test]
    fn the_default_role_and_the_built_in_roles() {
        let readonly = Policy::parse("", "role:readonly").expect("parses");
        assert!(readonly.allows(&["anyone"], "applications", "get", "default/web"));
        assert!(!readonly.allows(&["anyone"], "applications", "sync", "default/web"));
        let none = Policy::parse("", "").expect("parses");
        assert!(!none.allows(&["anyone"], "applications", "get", "default/web"));
        assert!(none.allows(&["role:admin"], "accounts", "update", "alice"));
    }

    #[test]
    fn a_line_it_cannot_read_is_an_error_naming_it() {
        for (csv, says) in [
            ("p, role:x, applications, get", "line 1"),
            ("q, a, b", "expected"),
            ("p, role:x, applications, get, */*, maybe", "allow or deny"),
            ("\ng, alice", "policy.csv line 2"),
        ] {
            let error = Policy::parse(csv, "").expect_err(csv);
            assert!(error.contains(says), "{error}");
        }
    }

    #[test]
    fn admin_is_an_admin_and_a_project_role_reaches_its_project_only() {
        let policy = Policy::parse("", "").expect("parses");
        assert!(policy.allows(&["admin"], "applications", "sync", "team-a/web"));
        let role = crate::project::ProjectRole {
            name: "deploy".into(),
            policies: vec![
                "p, proj:team-a:deploy, applications, sync, team-a/*, allow".into(),
                "p, proj:team-a:deploy, applications, sync, team-b/*, allow".into(),
                "p, proj:team-a:deploy, applications, sync, *, allow".into(),
                "p, proj:team-b:deploy, applications, sync, team-a/*, allow".into(),
            ],
            ..Default::default()
        };
        let (csv, refused) = crate::project::role_policy("team-a", &role);
        assert_eq!(refused.len(), 3, "{refused:?}");
        let with = policy.with(&csv).expect("parses");
        let subject = ["proj:team-a:deploy"];
        assert!(with.allows(&subject, "applications", "sync", "team-a/web"));
        assert!(!with.allows(&subject, "applications", "sync", "team-b/web"));
        assert!(!policy.allows(&subject, "applications", "sync", "team-a/web"));
    }
}
