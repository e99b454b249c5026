//! Argo CD's `AppProject` (argoproj.io/v1alpha1) and the rules it sets on
//! its applications: which repositories they may render, which
//! destinations and namespaces they may deploy to, which kinds of objects
//! they may hold, and from which namespaces their Application objects may
//! come. Pure: the engine hands in the projects it watches.
//!
//! It checks; it does not fetch, apply or report.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::model::{
    Application, ApplicationDestination, IN_CLUSTER_NAME, IN_CLUSTER_SERVER, ResourceKey,
};

/// The project an application without `spec.project` belongs to, and the
/// one Plumb assumes (everything allowed) while no object of that name
/// exists.
pub const DEFAULT_PROJECT: &str = "default";

/// Argo CD's `AppProject`. Fields Plumb does not enforce (`syncWindows`,
/// ...) are kept in [`AppProjectSpec::other`] and written
/// back as they came.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct AppProject {
    /// `apiVersion`.
    #[serde(default)]
    pub api_version: String,
    /// `kind`.
    #[serde(default)]
    pub kind: String,
    /// Name, namespace, labels, annotations.
    #[serde(default)]
    pub metadata: k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
    /// The rules.
    #[serde(default)]
    pub spec: AppProjectSpec,
    /// Argo CD's status (tokens of project roles), kept as it is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<Value>,
}

/// `spec` of an AppProject.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct AppProjectSpec {
    /// What the project is for.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    /// Repository URLs its applications may use: globs, `!` denies.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub source_repos: Vec<String>,
    /// Where its applications may deploy.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub destinations: Vec<ProjectDestination>,
    /// Cluster-scoped kinds allowed; none when empty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster_resource_whitelist: Option<Vec<GroupKind>>,
    /// Cluster-scoped kinds refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster_resource_blacklist: Option<Vec<GroupKind>>,
    /// Namespaced kinds allowed: all when absent, none when empty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace_resource_whitelist: Option<Vec<GroupKind>>,
    /// Namespaced kinds refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace_resource_blacklist: Option<Vec<GroupKind>>,
    /// Namespaces (beyond the controller's) whose Application objects may
    /// use the project: names, globs, or regular expressions between
    /// slashes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub source_namespaces: Vec<String>,
    /// `roles`: RBAC roles of the project, whose tokens act as the subject
    /// `proj:PROJECT:ROLE` (see [`role_policy`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub roles: Vec<ProjectRole>,
    /// Every other field (`syncWindows`, `orphanedResources`,
    /// ...), not enforced by Plumb, kept.
    #[serde(flatten)]
    pub other: BTreeMap<String, Value>,
}

/// One entry of `spec.roles`.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ProjectRole {
    /// The role's name, unique in its project.
    #[serde(default)]
    pub name: String,
    /// What the role is for.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    /// `policy.csv` `p` lines whose subject is `proj:PROJECT:ROLE`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub policies: Vec<String>,
    /// SSO groups given the role (kept; Plumb has no SSO).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<String>,
    /// Tokens issued for the role (by Argo CD, or written by hand): a
    /// token whose `iat` or id is listed here is accepted.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub jwt_tokens: Vec<JwtToken>,
}

/// One issued token of a project role, as Argo CD lists them.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, Eq)]
pub struct JwtToken {
    /// Issued at, in seconds since the epoch.
    #[serde(default)]
    pub iat: i64,
    /// Expires at, in seconds since the epoch; 0 for never.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub exp: i64,
    /// The token's id (its `jti`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub id: String,
}

fn is_zero(n: &i64) -> bool {
    *n == 0
}

/// The RBAC subject of a project role's tokens: `proj:PROJECT:ROLE`.
pub fn role_subject(project: &str, role: &str) -> String {
    format!("proj:{project}:{role}")
}

/// The `policy.csv` text of a project role: its `p` lines that are its
/// own (subject `proj:PROJECT:ROLE`) and reach only objects of the project
/// (`PROJECT/...`), as Argo CD requires. The lines left out are returned
/// with why, for the caller to report; a role's policy never reaches
/// another project.
pub fn role_policy(project: &str, role: &ProjectRole) -> (String, Vec<String>) {
    let subject = role_subject(project, &role.name);
    let prefix = format!("{project}/");
    let mut text = String::new();
    let mut refused = Vec::new();
    for line in &role.policies {
        let fields: Vec<&str> = line.split(',').map(str::trim).collect();
        let ok = match fields.as_slice() {
            ["p", s, _resource, _action, object, ..] => {
                *s == subject && object.starts_with(&prefix) && !object.contains("..")
            }
            _ => false,
        };
        if ok {
            text.push_str(line);
            text.push('\n');
        } else {
            refused.push(format!(
                "project {project} role {}: policy {line:?} ignored: a role's lines are `p, {subject}, RESOURCE, ACTION, {project}/OBJECT[, allow|deny]`",
                role.name
            ));
        }
    }
    (text, refused)
}

/// One entry of `spec.destinations`.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ProjectDestination {
    /// API server URL glob.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub server: String,
    /// Cluster name glob.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// Namespace glob.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub namespace: String,
}

/// A group and kind, each a glob (`*`); the core group is `""`.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, Eq)]
pub struct GroupKind {
    /// API group.
    #[serde(default)]
    pub group: String,
    /// Kind.
    #[serde(default)]
    pub kind: String,
}

impl AppProject {
    /// Its name.
    pub fn name(&self) -> &str {
        self.metadata.name.as_deref().unwrap_or_default()
    }

    /// Argo CD's `default` project as Argo CD creates it: every
    /// repository, destination and kind allowed.
    pub fn default_in(namespace: &str) -> AppProject {
        AppProject {
            api_version: "argoproj.io/v1alpha1".into(),
            kind: "AppProject".into(),
            metadata: k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
                name: Some(DEFAULT_PROJECT.into()),
                namespace: Some(namespace.into()),
                ..Default::default()
            },
            spec: AppProjectSpec {
                source_repos: vec!["*".into()],
                destinations: vec![ProjectDestination {
                    server: "*".into(),
                    name: String::new(),
                    namespace: "*".into(),
                }],
                cluster_resource_whitelist: Some(vec![GroupKind {
                    group: "*".into(),
                    kind: "*".into(),
                }]),
                ..Default::default()
            },
            status: None,
        }
    }
}

/// The project an application names (`default` when it names none).
pub fn project_of(app: &Application) -> &str {
    match app.spec.project.as_str() {
        "" => DEFAULT_PROJECT,
        p => p,
    }
}

/// Why an application may not be reconciled under its project, as Argo CD
/// words it (an `InvalidSpecError`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// The project does not exist.
    #[error("Application referencing project {0} which does not exist")]
    NoProject(String),
    /// The Application object's namespace is not one of the project's
    /// `sourceNamespaces`.
    #[error(
        "application namespace {namespace} is not permitted in project '{project}' (spec.sourceNamespaces)"
    )]
    Namespace {
        /// The Application object's namespace.
        namespace: String,
        /// The project.
        project: String,
    },
    /// A source's repository is not in `sourceRepos`.
    #[error("application repo {repo} is not permitted in project '{project}'")]
    Repo {
        /// The repository URL.
        repo: String,
        /// The project.
        project: String,
    },
    /// The destination matches no entry of `destinations` (or a denying one).
    #[error(
        "application destination server '{server}' and namespace '{namespace}' do not match any of the allowed destinations in project '{project}'"
    )]
    Destination {
        /// The destination server (or name when it has no server).
        server: String,
        /// The destination namespace.
        namespace: String,
        /// The project.
        project: String,
    },
}

/// Checks an application against its project: the project exists (or is
/// `default`, assumed when absent), the Application object's namespace may
/// use it (`app_namespace` outside `home`, the controller's namespace, must
/// be in `sourceNamespaces`), every source's repository and the
/// destination are allowed. `project` is the project named by
/// [`project_of`], `None` when no object of that name exists.
///
/// # Errors
/// The first rule the application breaks.
pub fn check_app(
    app: &Application,
    app_namespace: Option<&str>,
    home: &str,
    project: Option<&AppProject>,
) -> Result<(), Refusal> {
    check_app_at(app, &app.spec.destination, app_namespace, home, project)
}

/// [`check_app`] with the destination as the cluster catalogue resolved
/// it (server and name both filled in: `clusters::resolved_destination`),
/// so a project entry by server admits an application that names the
/// cluster, and the other way round.
///
/// # Errors
/// As [`check_app`].
pub fn check_app_at(
    app: &Application,
    dest: &ApplicationDestination,
    app_namespace: Option<&str>,
    home: &str,
    project: Option<&AppProject>,
) -> Result<(), Refusal> {
    let name = project_of(app);
    let assumed;
    let (project, is_assumed) = match project {
        Some(p) => (p, false),
        None if name == DEFAULT_PROJECT => {
            assumed = AppProject::default_in(home);
            (&assumed, true)
        }
        None => return Err(Refusal::NoProject(name.to_string())),
    };
    // The assumed default project admits every namespace of
    // `--app-namespaces` (the operator named them, and Plumb managed them
    // so before it had projects); a `default` object is held to its
    // `sourceNamespaces` as Argo CD holds it.
    if !is_assumed
        && let Some(ns) = app_namespace.filter(|ns| !ns.is_empty() && *ns != home)
        && !project
            .spec
            .source_namespaces
            .iter()
            .any(|p| namespace_match(p, ns))
    {
        return Err(Refusal::Namespace {
            namespace: ns.to_string(),
            project: name.to_string(),
        });
    }
    for source in app.spec.all_sources() {
        if !repo_permitted(project, &source.repo_url) {
            return Err(Refusal::Repo {
                repo: source.repo_url.clone(),
                project: name.to_string(),
            });
        }
    }
    if !destination_permitted(project, dest) {
        return Err(Refusal::Destination {
            server: dest
                .server
                .clone()
                .filter(|s| !s.is_empty())
                .or_else(|| dest.name.clone())
                .unwrap_or_default(),
            namespace: dest.namespace.clone().unwrap_or_default(),
            project: name.to_string(),
        });
    }
    Ok(())
}

/// A namespace pattern of `sourceNamespaces`: a name, a glob, or a regular
/// expression between slashes (as Argo CD reads them).
fn namespace_match(pattern: &str, namespace: &str) -> bool {
    match pattern
        .strip_prefix('/')
        .and_then(|rest| rest.strip_suffix('/'))
        .filter(|_| pattern.len() > 1)
    {
        Some(body) => regex::Regex::new(body).is_ok_and(|re| re.is_match(namespace)),
        None => glob(pattern, namespace),
    }
}

/// A repository URL as Argo CD compares them: lower case, without a
/// trailing `/` or `.git`.
fn normalize_repo(url: &str) -> String {
    let url = url.trim().to_lowercase();
    let url = url.trim_end_matches('/');
    url.strip_suffix(".git").unwrap_or(url).to_string()
}

/// Argo CD's `IsSourcePermitted`: some entry matches, and no `!` entry
/// matches. An entry `!x` counts as a match of every URL that is not `x`
/// (Argo CD's `globMatch` with negation), so any denial in the list allows
/// every URL it does not deny, as in Argo CD. Globs use `/` as a
/// separator: `https://host/team/*` matches `https://host/team/web` but not
/// `https://host/team/a/b`; `**` crosses it; `*` alone matches all.
pub fn repo_permitted(project: &AppProject, repo_url: &str) -> bool {
    let repo = normalize_repo(repo_url);
    let mut any = false;
    for entry in &project.spec.source_repos {
        let (deny, pattern) = split_deny(entry);
        let matched = glob_with(&normalize_repo(pattern), &repo, Some('/'));
        if deny && matched {
            return false;
        }
        any |= deny || matched;
    }
    any
}

fn split_deny(pattern: &str) -> (bool, &str) {
    match pattern.strip_prefix('!') {
        Some(rest) => (true, rest),
        None => (false, pattern),
    }
}

/// A glob of a project entry, `!` negating: whether it matches `text`.
fn entry_match(pattern: &str, text: &str) -> bool {
    let (deny, pattern) = split_deny(pattern);
    glob(pattern, text) != deny
}

/// Argo CD's `isDestinationMatched`: some entry matches the server or the
/// name, and the namespace; no `!` entry's part fails. The controller
/// passes the destination resolved through the cluster catalogue (server
/// and name both set, as Argo CD infers the one from the other); a bare
/// in-cluster server or name is filled in here as well.
pub fn destination_permitted(project: &AppProject, dest: &ApplicationDestination) -> bool {
    let server = dest.server.as_deref().filter(|s| !s.is_empty());
    let name = dest.name.as_deref().filter(|s| !s.is_empty());
    let (server, name) = match (server, name) {
        (None, None) => (IN_CLUSTER_SERVER, IN_CLUSTER_NAME),
        (Some(IN_CLUSTER_SERVER), None) | (None, Some(IN_CLUSTER_NAME)) => {
            (IN_CLUSTER_SERVER, IN_CLUSTER_NAME)
        }
        (s, n) => (s.unwrap_or_default(), n.unwrap_or_default()),
    };
    let namespace = dest.namespace.as_deref().unwrap_or_default();
    let mut any = false;
    for entry in &project.spec.destinations {
        let name_ok = !name.is_empty() && entry_match(&entry.name, name);
        let server_ok = !server.is_empty() && entry_match(&entry.server, server);
        let namespace_ok = entry_match(&entry.namespace, namespace);
        if (server_ok || name_ok) && namespace_ok {
            any = true;
        } else if (!name_ok && entry.name.starts_with('!'))
            || (!server_ok && entry.server.starts_with('!'))
            || (!namespace_ok && entry.namespace.starts_with('!'))
        {
            return false;
        }
    }
    any
}

/// Argo CD's `IsGroupKindPermitted`: a cluster-scoped kind needs an entry
/// of `clusterResourceWhitelist` (none when it is empty) and none of the
/// blacklist; a namespaced kind is allowed unless blacklisted or a present
/// whitelist (an empty one too) omits it.
pub fn kind_permitted(project: &AppProject, group: &str, kind: &str, namespaced: bool) -> bool {
    let listed = |list: &Option<Vec<GroupKind>>| {
        list.iter()
            .flatten()
            .any(|gk| glob(&gk.group, group) && glob(&gk.kind, kind))
    };
    let spec = &project.spec;
    if namespaced {
        let allowed = spec.namespace_resource_whitelist.is_none()
            || listed(&spec.namespace_resource_whitelist);
        allowed && !listed(&spec.namespace_resource_blacklist)
    } else {
        listed(&spec.cluster_resource_whitelist) && !listed(&spec.cluster_resource_blacklist)
    }
}

/// A rendered object the project refuses (a `ComparisonError`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResourceRefusal {
    /// Its group and kind are not permitted.
    #[error("resource {group}:{kind} {name} is not permitted in project {project}")]
    Kind {
        /// API group (empty for the core group).
        group: String,
        /// Kind.
        kind: String,
        /// `namespace/name`, or the name of a cluster-scoped object.
        name: String,
        /// The project.
        project: String,
    },
    /// Its namespace is not a destination of the project.
    #[error("namespace {namespace} of {name} is not permitted in project '{project}'")]
    Namespace {
        /// The namespace.
        namespace: String,
        /// `group/Kind namespace/name` of the object.
        name: String,
        /// The project.
        project: String,
    },
}

/// Checks one rendered object (its key, and whether its kind is
/// namespaced) against the project of application `app`, as Argo CD does
/// before a sync: the kind is permitted, and a namespaced object's
/// namespace is a destination of the project (on the application's
/// cluster). `None` for the project means `default`, assumed.
///
/// # Errors
/// The rule the object breaks.
pub fn check_resource(
    app: &Application,
    project: Option<&AppProject>,
    key: &ResourceKey,
    namespaced: bool,
) -> Result<(), ResourceRefusal> {
    let Some(project) = project else {
        // The assumed default project allows everything; another missing
        // project was refused by `check_app` already.
        return Ok(());
    };
    let name = project_of(app).to_string();
    if !kind_permitted(project, &key.group, &key.kind, namespaced) {
        return Err(ResourceRefusal::Kind {
            group: key.group.clone(),
            kind: key.kind.clone(),
            name: if namespaced {
                format!("{}/{}", key.namespace, key.name)
            } else {
                key.name.clone()
            },
            project: name,
        });
    }
    if namespaced {
        let dest = ApplicationDestination {
            namespace: Some(key.namespace.clone()),
            ..app.spec.destination.clone()
        };
        if !destination_permitted(project, &dest) {
            return Err(ResourceRefusal::Namespace {
                namespace: key.namespace.clone(),
                name: key.to_string(),
                project: name,
            });
        }
    }
    Ok(())
}

/// Argo CD's glob (gobwas/glob without separators) for the patterns
/// projects use: `*` any run of characters, `?` one, the rest literal; the
/// whole text must match.
pub fn glob(pattern: &str, text: &str) -> bool {
    glob_with(pattern, text, None)
}

/// Argo CD's `glob.Match` with an optional separator (`/` for
/// `sourceRepos`): `*` and `?` do not cross it, `**` does; a pattern that is
/// `*` alone matches everything, as Argo CD's `globMatch` says. Table
/// driven, so a pattern of many stars costs pattern length times text
/// length, never more.
fn glob_with(pattern: &str, text: &str, separator: Option<char>) -> bool {
    #[derive(Clone, Copy)]
    enum Token {
        AnyRun,
        SegmentRun,
        One,
        Char(char),
    }
    if pattern == "*" {
        return true;
    }
    let mut tokens = Vec::new();
    let mut chars = pattern.chars().peekable();
    while let Some(c) = chars.next() {
        tokens.push(match c {
            '*' if chars.peek() == Some(&'*') => {
                chars.next();
                Token::AnyRun
            }
            '*' if separator.is_some() => Token::SegmentRun,
            '*' => Token::AnyRun,
            '?' => Token::One,
            c => Token::Char(c),
        });
    }
    let text: Vec<char> = text.chars().collect();
    let crosses = |c: char| separator != Some(c);
    // matches[j]: tokens[i..] match text[j..], for the current i (from the
    // end of the pattern back to its start).
    let n = text.len();
    let mut next = vec![false; n + 1];
    next[n] = true;
    for token in tokens.iter().rev() {
        let mut here = vec![false; n + 1];
        for j in (0..=n).rev() {
            here[j] = match token {
                Token::AnyRun => next[j] || (j < n && here[j + 1]),
                Token::SegmentRun => next[j] || (j < n && crosses(text[j]) && here[j + 1]),
                Token::One => j < n && crosses(text[j]) && next[j + 1],
                Token::Char(c) => j < n && text[j] == *c && next[j + 1],
            };
        }
        next = here;
    }
    next[0]
}

/// The `appprojects.argoproj.io` CRD. `spec` and `status` keep every
/// field (`x-kubernetes-preserve-unknown-fields`), so the fields Plumb does
/// not enforce (`roles`, `syncWindows`) survive as written.
pub fn appproject_crd() -> Value {
    let open = serde_json::json!({"type": "object", "x-kubernetes-preserve-unknown-fields": true});
    serde_json::json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": "appprojects.argoproj.io"},
        "spec": {
            "group": "argoproj.io",
            "names": {
                "kind": "AppProject",
                "listKind": "AppProjectList",
                "plural": "appprojects",
                "singular": "appproject",
                "shortNames": ["appproj", "appprojs"]
            },
            "scope": "Namespaced",
            "versions": [{
                "name": "v1alpha1",
                "served": true,
                "storage": true,
                "schema": {"openAPIV3Schema": {
                    "type": "object",
                    "required": ["metadata", "spec"],
                    "properties": {
                        "apiVersion": {"type": "string"},
                        "kind": {"type": "string"},
                        "metadata": {"type": "object"},
                        "spec": open,
                        "status": open
                    }
                }}
            }]
        }
    })
}

/// [`appproject_crd`] as YAML, as committed in `manifests/crds/`.
pub fn appproject_crd_yaml() -> String {
    serde_yaml::to_string(&appproject_crd()).expect("a CRD always serializes")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn project(spec: Value) -> AppProject {
        serde_json::from_value(json!({
            "apiVersion": "argoproj.io/v1alpha1", "kind": "AppProject",
            "metadata": {"name": "team", "namespace": "plumb"}, "spec": spec
        }))
        .expect("a valid project")
    }

    fn app(project: &str, repo: &str, server: &str, namespace: &str) -> Application {
        serde_json::from_value(json!({
            "apiVersion": "argoproj.io/v1alpha1", "kind": "Application",
            "metadata": {"name": "web"},
            "spec": {"project": project, "source": {"repoURL": repo, "path": "."},
                     "destination": {"server": server, "namespace": namespace}}
        }))
        .expect("a valid application")
    }

    const IN: &str = IN_CLUSTER_SERVER;

    #[test]
    fn globs_match_as_argo_cd_without_separators() {
        assert!(glob("*", "https://github.com/a/b"));
        assert!(glob(
            "https://github.com/team-a/*",
            "https://github.com/team-a/x/y"
        ));
        assert!(!glob(
            "https://github.com/team-a/*",
            "https://github.com/team-b/x"
        ));
        assert!(glob("team-?", "team-a"));
        assert!(!glob("team-?", "team-ab"));
        assert!(glob("", ""));
        assert!(!glob("", "x"));
        assert!(glob("*a*b*c", "xxaxxbxxc"));
        assert!(!glob("*a*a*a*a*a*b", &"a".repeat(200)));
        assert!(glob_with("a/*/c", "a/b/c", Some('/')));
        assert!(!glob_with("a/*", "a/b/c", Some('/')));
        assert!(glob_with("a/**", "a/b/c", Some('/')));
        assert!(!glob_with("a?b", "a/b", Some('/')));
    }

    #[test]
    fn the_missing_default_project_allows_everything_and_another_is_refused() {
        let a = app("", "https://x/y", IN, "anything");
        assert_eq!(check_app(&a, Some("plumb"), "plumb", None), Ok(()));
        let a = app("default", "https://x/y", "https://other", "ns");
        assert_eq!(check_app(&a, None, "plumb", None), Ok(()));
        let a = app("team", "https://x/y", IN, "ns");
        assert_eq!(
            check_app(&a, None, "plumb", None),
            Err(Refusal::NoProject("team".into()))
        );
    }

    #[test]
    fn a_destination_resolved_through_the_catalogue_is_checked_by_server_and_name() {
        // The project lists the cluster by server; the application names
        // it: the resolved destination carries both, and they agree.
        let by_server = project(json!({"sourceRepos": ["*"],
            "destinations": [{"server": "https://prod:6443", "namespace": "*"}]}));
        let mut a = app("team", "https://git/r", IN, "ns");
        a.spec.destination.server = None;
        a.spec.destination.name = Some("prod".into());
        assert!(matches!(
            check_app(&a, None, "plumb", Some(&by_server)),
            Err(Refusal::Destination { .. })
        ));
        let resolved =
            crate::clusters::resolved_destination(&a.spec.destination, "prod", "https://prod:6443");
        assert_eq!(
            check_app_at(&a, &resolved, None, "plumb", Some(&by_server)),
            Ok(())
        );
        // And the other way round: listed by name, named by server.
        let by_name = project(json!({"sourceRepos": ["*"],
            "destinations": [{"name": "prod", "namespace": "*"}]}));
        let b = app("team", "https://git/r", "https://prod:6443", "ns");
        let resolved =
            crate::clusters::resolved_destination(&b.spec.destination, "prod", "https://prod:6443");
        assert_eq!(
            check_app_at(&b, &resolved, None, "plumb", Some(&by_name)),
            Ok(())
        );
        let other = crate::clusters::resolved_destination(
            &b.spec.destination,
            "staging",
            "https://staging:6443",
        );
        assert!(check_app_at(&b, &other, None, "plumb", Some(&by_name)).is_err());
    }

    #[test]
    fn source_repos_allow_by_glob_and_deny_with_a_bang() {
        let p = project(
            json!({"sourceRepos": ["https://git.example/team/*", "!https://git.example/team/secret"]}),
        );
        assert!(repo_permitted(&p, "https://git.example/team/web.git"));
        assert!(repo_permitted(&p, "HTTPS://git.example/team/web/"));
        assert!(!repo_permitted(&p, "https://git.example/team/secret"));
        // Argo CD counts a denial that does not match as a match.
        assert!(repo_permitted(&p, "https://git.example/other/web"));
        let p = project(json!({"sourceRepos": ["https://git.example/team/*"]}));
        assert!(!repo_permitted(&p, "https://git.example/other/web"));
        assert!(
            !repo_permitted(&p, "https://git.example/team/a/b"),
            "* stays in its segment"
        );
        let p = project(json!({"sourceRepos": ["https://git.example/**"]}));
        assert!(repo_permitted(&p, "https://git.example/team/a/b"));
        // Denials alone allow the rest, as in Argo CD.
        let p = project(json!({"sourceRepos": ["!https://bad/*"]}));
        assert!(repo_permitted(&p, "https://good/x"));
        assert!(!repo_permitted(&p, "https://bad/x"));
        // None at all allows nothing.
        assert!(!repo_permitted(&project(json!({})), "https://good/x"));
        let a = app("team", "https://elsewhere/r", IN, "ns");
        let p = project(
            json!({"sourceRepos": ["https://git.example/*"], "destinations": [{"server": "*", "namespace": "*"}]}),
        );
        assert_eq!(
            check_app(&a, None, "plumb", Some(&p)),
            Err(Refusal::Repo {
                repo: "https://elsewhere/r".into(),
                project: "team".into()
            })
        );
    }

    #[test]
    fn every_source_of_a_multi_source_application_is_checked() {
        let mut a = app("team", "https://ok/a", IN, "ns");
        a.spec.sources = vec![a.spec.source.clone().expect("a source"); 2];
        a.spec.sources[1].repo_url = "https://bad/b".into();
        let p = project(
            json!({"sourceRepos": ["https://ok/*"], "destinations": [{"server": "*", "namespace": "*"}]}),
        );
        assert!(matches!(
            check_app(&a, None, "plumb", Some(&p)),
            Err(Refusal::Repo { repo, .. }) if repo == "https://bad/b"
        ));
    }

    #[test]
    fn destinations_match_server_or_name_and_namespace() {
        let p = project(json!({"destinations": [{"server": IN, "namespace": "team-*"}]}));
        let dest = |server: Option<&str>, name: Option<&str>, ns: &str| ApplicationDestination {
            server: server.map(str::to_string),
            name: name.map(str::to_string),
            namespace: Some(ns.into()),
        };
        assert!(destination_permitted(&p, &dest(Some(IN), None, "team-a")));
        assert!(destination_permitted(
            &p,
            &dest(None, Some("in-cluster"), "team-a")
        ));
        assert!(destination_permitted(&p, &dest(None, None, "team-a")));
        assert!(!destination_permitted(
            &p,
            &dest(Some(IN), None, "kube-system")
        ));
        assert!(!destination_permitted(
            &p,
            &dest(Some("https://other"), None, "team-a")
        ));
        let by_name = project(json!({"destinations": [{"name": "in-cluster", "namespace": "*"}]}));
        assert!(destination_permitted(&by_name, &dest(Some(IN), None, "x")));
        // A denying entry wins over an allowing one.
        let p = project(json!({"destinations": [
            {"server": "*", "namespace": "*"},
            {"server": "*", "namespace": "!kube-system"}
        ]}));
        assert!(destination_permitted(&p, &dest(Some(IN), None, "team-a")));
        assert!(!destination_permitted(
            &p,
            &dest(Some(IN), None, "kube-system")
        ));
        assert!(!destination_permitted(
            &project(json!({})),
            &dest(Some(IN), None, "x")
        ));
    }

    #[test]
    fn an_application_outside_the_home_namespace_needs_source_namespaces() {
        let spec = json!({"sourceRepos": ["*"], "destinations": [{"server": "*", "namespace": "*"}],
                          "sourceNamespaces": ["team-*", "/^ops$/"]});
        let p = project(spec);
        let a = app("team", "https://r", IN, "x");
        assert_eq!(check_app(&a, Some("plumb"), "plumb", Some(&p)), Ok(()));
        assert_eq!(check_app(&a, Some("team-a"), "plumb", Some(&p)), Ok(()));
        assert_eq!(check_app(&a, Some("ops"), "plumb", Some(&p)), Ok(()));
        assert!(matches!(
            check_app(&a, Some("dev"), "plumb", Some(&p)),
            Err(Refusal::Namespace { namespace, .. }) if namespace == "dev"
        ));
        // The assumed default project admits every namespace Plumb
        // manages; a `default` object is held to its list.
        let a = app("", "https://r", IN, "x");
        assert_eq!(check_app(&a, Some("dev"), "plumb", None), Ok(()));
        let default = AppProject::default_in("plumb");
        assert!(check_app(&a, Some("dev"), "plumb", Some(&default)).is_err());
    }

    #[test]
    fn kinds_follow_argo_cds_white_and_blacklists() {
        let open = project(json!({}));
        assert!(kind_permitted(&open, "", "ConfigMap", true));
        assert!(
            !kind_permitted(&open, "rbac.authorization.k8s.io", "ClusterRole", false),
            "a project without clusterResourceWhitelist allows no cluster-scoped kind"
        );
        let default = AppProject::default_in("plumb");
        assert!(kind_permitted(
            &default,
            "rbac.authorization.k8s.io",
            "ClusterRole",
            false
        ));
        let p = project(json!({
            "clusterResourceWhitelist": [{"group": "rbac.authorization.k8s.io", "kind": "*"}],
            "clusterResourceBlacklist": [{"group": "*", "kind": "ClusterRoleBinding"}],
            "namespaceResourceBlacklist": [{"group": "", "kind": "ConfigMap"}]
        }));
        assert!(kind_permitted(
            &p,
            "rbac.authorization.k8s.io",
            "ClusterRole",
            false
        ));
        assert!(!kind_permitted(
            &p,
            "rbac.authorization.k8s.io",
            "ClusterRoleBinding",
            false
        ));
        assert!(!kind_permitted(&p, "", "Namespace", false));
        assert!(!kind_permitted(&p, "", "ConfigMap", true));
        assert!(kind_permitted(&p, "", "Secret", true));
        let only = project(
            json!({"namespaceResourceWhitelist": [{"group": "apps", "kind": "Deployment"}]}),
        );
        assert!(kind_permitted(&only, "apps", "Deployment", true));
        assert!(!kind_permitted(&only, "", "ConfigMap", true));
        let none = project(json!({"namespaceResourceWhitelist": []}));
        assert!(
            !kind_permitted(&none, "", "ConfigMap", true),
            "an empty whitelist allows nothing"
        );
    }

    #[test]
    fn a_refused_object_names_itself_and_the_project() {
        let p = project(
            json!({"destinations": [{"server": "*", "namespace": "web"}],
                               "namespaceResourceBlacklist": [{"group": "", "kind": "ConfigMap"}]}),
        );
        let a = app("team", "https://r", IN, "web");
        let key = |kind: &str, namespace: &str| ResourceKey {
            group: String::new(),
            kind: kind.into(),
            namespace: namespace.into(),
            name: "cfg".into(),
        };
        let e = check_resource(&a, Some(&p), &key("ConfigMap", "web"), true).expect_err("refused");
        assert_eq!(
            e.to_string(),
            "resource :ConfigMap web/cfg is not permitted in project team"
        );
        assert_eq!(
            check_resource(&a, Some(&p), &key("Secret", "web"), true),
            Ok(())
        );
        assert!(matches!(
            check_resource(&a, Some(&p), &key("Secret", "other"), true),
            Err(ResourceRefusal::Namespace { namespace, .. }) if namespace == "other"
        ));
        assert_eq!(
            check_resource(&a, None, &key("Namespace", ""), false),
            Ok(())
        );
    }

    #[test]
    fn unknown_fields_survive_a_round_trip() {
        let value = json!({
            "apiVersion": "argoproj.io/v1alpha1", "kind": "AppProject",
            "metadata": {"name": "team"},
            "spec": {"description": "d", "sourceRepos": ["*"],
                     "roles": [{"name": "ci", "policies": ["p, proj:team:ci, applications, sync, team/*, allow"]}],
                     "syncWindows": [{"kind": "deny", "schedule": "* * * * *", "duration": "1h"}]}
        });
        let p: AppProject = serde_json::from_value(value.clone()).expect("decodes");
        assert!(p.spec.other.contains_key("syncWindows"));
        assert_eq!(serde_json::to_value(&p).expect("encodes"), value);
    }

    #[test]
    fn committed_appproject_crd_is_current() {
        let committed = include_str!("../../manifests/crds/appproject.yaml");
        assert_eq!(
            committed,
            appproject_crd_yaml(),
            "manifests/crds/appproject.yaml is stale: run `cargo run -- crd appproject > manifests/crds/appproject.yaml`"
        );
    }
}
