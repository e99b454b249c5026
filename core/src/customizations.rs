//! Argo CD's resource customizations, read from an `argocd-cm`-style data
//! map: per group and kind, a custom health script (`health.lua` and its
//! `useOpenLibs`) and the raw text of `ignoreDifferences`.
//!
//! It parses and looks up; it does not run scripts (`plumb-engine`'s `lua`
//! does) nor apply ignoreDifferences (it keeps their YAML text unparsed for
//! the diff to read). A broken entry never hides the others: each problem
//! is kept beside the group kind it belongs to, or in [`Customizations::problems`]
//! when it belongs to none.
//!
//! The keys, as Argo CD spells them:
//!
//! - `resource.customizations.<type>.<group_kind>`, with `<type>` one of
//!   `health`, `useOpenLibs`, `ignoreDifferences` (and `actions`,
//!   `ignoreResourceUpdates`, `knownTypeFields`, which Plumb accepts and
//!   does not use). `<group_kind>` is `<group>_<Kind>`, `<Kind>` alone for
//!   the core group, or `all` for every kind (`*/*`).
//! - `resource.customizations`, the older single key: YAML mapping
//!   `<group>/<Kind>` (or `<Kind>` for the core group, or a glob such as
//!   `*.aws.crossplane.io/*`) to `health.lua`, `health.lua.useOpenLibs`,
//!   `ignoreDifferences`, ... A field given by both forms is the one of the
//!   split key, as in Argo CD.

use std::collections::BTreeMap;

use globset::{GlobBuilder, GlobMatcher};
use serde_yaml::Value as Yaml;

/// The older single key, and the prefix of the split ones.
pub const CUSTOMIZATIONS_KEY: &str = "resource.customizations";

/// Something wrong in the settings, with the data key it comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    /// The data key, e.g. `resource.customizations.useOpenLibs.example.com_Widget`.
    pub key: String,
    /// What is wrong with it.
    pub message: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.key, self.message)
    }
}

/// A setting as given, or why it could not be read.
pub type Setting<T> = Result<T, Problem>;

/// A text setting and the data key it was read from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sourced {
    /// The text.
    pub text: String,
    /// The data key that gave it (for the old single key:
    /// `resource.customizations` followed by the entry, e.g.
    /// `resource.customizations (example.com/Widget)`).
    pub key: String,
}

/// What is customized for one group kind (or glob of them).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Customization {
    /// `health.lua`.
    pub health: Option<Setting<Sourced>>,
    /// `useOpenLibs` (default false).
    pub use_open_libs: Option<Setting<bool>>,
    /// `ignoreDifferences`, as unparsed YAML text.
    pub ignore_differences: Option<Setting<Sourced>>,
}

/// The health rule a custom setting gives a group kind.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HealthRule<'a> {
    /// Run this script.
    Script {
        /// The Lua source.
        script: &'a str,
        /// Whether Argo CD's `useOpenLibs` is on.
        use_open_libs: bool,
        /// The data key the script came from, for messages.
        key: &'a str,
    },
    /// The setting is broken: the health is Unknown with this problem (the
    /// built-in rule is not used instead, which would hide the mistake).
    Broken(&'a Problem),
}

/// Resource customizations parsed from a data map.
#[derive(Clone, Debug, Default)]
pub struct Customizations {
    /// By Argo CD's override key: `group/Kind`, `Kind` for the core group,
    /// or a glob.
    entries: BTreeMap<String, Customization>,
    /// Glob keys among `entries`, compiled, in key order.
    globs: Vec<(String, GlobMatcher)>,
    /// Problems that belong to no group kind.
    problems: Vec<Problem>,
}

impl PartialEq for Customizations {
    fn eq(&self, other: &Self) -> bool {
        self.entries == other.entries && self.problems == other.problems
    }
}

/// The override key of a group and kind, as Argo CD writes it: `Kind` for
/// the core group, `group/Kind` otherwise.
pub fn override_key(group: &str, kind: &str) -> String {
    if group.is_empty() {
        kind.to_string()
    } else {
        format!("{group}/{kind}")
    }
}

fn is_glob(key: &str) -> bool {
    key.contains(['*', '?', '[', '{'])
}

/// `_Kind` and `/Kind` name the core group too (Argo CD would never match
/// them; tools such as argocd-operator write them).
fn normalize_key(key: &str) -> &str {
    key.strip_prefix('/').unwrap_or(key)
}

/// Go's `strconv.ParseBool`, which Argo CD uses for `useOpenLibs`.
fn parse_bool(text: &str) -> Option<bool> {
    match text.trim() {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

impl Customizations {
    /// Reads the customizations in `data` (an `argocd-cm`'s `data`); every
    /// other key is ignored. Never fails as a whole: see [`Self::problems`]
    /// and the `Err` settings of each entry.
    pub fn parse(data: &BTreeMap<String, String>) -> Customizations {
        let mut this = Customizations::default();
        if let Some(text) = data.get(CUSTOMIZATIONS_KEY) {
            this.parse_single_key(text);
        }
        let prefix = format!("{CUSTOMIZATIONS_KEY}.");
        for (key, value) in data {
            if let Some(rest) = key.strip_prefix(&prefix) {
                this.parse_split_key(key, rest, value);
            }
        }
        for key in this.entries.keys() {
            if !is_glob(key) {
                continue;
            }
            match GlobBuilder::new(key).literal_separator(false).build() {
                Ok(glob) => this.globs.push((key.clone(), glob.compile_matcher())),
                Err(e) => this.problems.push(Problem {
                    key: format!("{CUSTOMIZATIONS_KEY} ({key})"),
                    message: format!("not a valid glob of group kinds: {e}"),
                }),
            }
        }
        this
    }

    fn entry(&mut self, group_kind: &str) -> &mut Customization {
        self.entries
            .entry(normalize_key(group_kind).to_string())
            .or_default()
    }

    fn parse_single_key(&mut self, text: &str) {
        if text.trim().is_empty() {
            return;
        }
        let map = match serde_yaml::from_str::<Yaml>(text) {
            Ok(Yaml::Mapping(map)) => map,
            Ok(Yaml::Null) => return,
            Ok(_) => {
                self.problems.push(Problem {
                    key: CUSTOMIZATIONS_KEY.into(),
                    message: "expected a mapping of group/Kind to customizations".into(),
                });
                return;
            }
            Err(e) => {
                self.problems.push(Problem {
                    key: CUSTOMIZATIONS_KEY.into(),
                    message: format!("not valid YAML: {e}"),
                });
                return;
            }
        };
        for (group_kind, fields) in map {
            let Some(group_kind) = group_kind.as_str().map(str::to_string) else {
                self.problems.push(Problem {
                    key: CUSTOMIZATIONS_KEY.into(),
                    message: format!("entry key {group_kind:?} is not a group/Kind"),
                });
                continue;
            };
            let key = format!("{CUSTOMIZATIONS_KEY} ({group_kind})");
            let problem = |message: String| Problem {
                key: key.clone(),
                message,
            };
            let entry = self.entry(&group_kind);
            let fields = match fields {
                Yaml::Mapping(fields) => fields,
                Yaml::Null => continue,
                _ => {
                    let broken = problem(
                        "expected a mapping with health.lua, ignoreDifferences, ...".into(),
                    );
                    entry.health = Some(Err(broken.clone()));
                    entry.ignore_differences = Some(Err(broken));
                    continue;
                }
            };
            for (field, value) in fields {
                match field.as_str() {
                    Some("health.lua") => {
                        entry.health = Some(match value {
                            Yaml::String(text) => Ok(Sourced {
                                text,
                                key: key.clone(),
                            }),
                            _ => Err(problem("health.lua is not a string".into())),
                        });
                    }
                    Some("health.lua.useOpenLibs") => {
                        entry.use_open_libs = Some(match value {
                            Yaml::Bool(b) => Ok(b),
                            Yaml::String(s) => parse_bool(&s).ok_or_else(|| {
                                problem(format!("health.lua.useOpenLibs: {s:?} is not a boolean"))
                            }),
                            other => Err(problem(format!(
                                "health.lua.useOpenLibs: {other:?} is not a boolean"
                            ))),
                        });
                    }
                    Some("ignoreDifferences") => {
                        entry.ignore_differences = Some(match value {
                            Yaml::String(text) => Ok(Sourced {
                                text,
                                key: key.clone(),
                            }),
                            // Argo CD wants a string of YAML; a mapping says
                            // the same, so keep it as that text.
                            mapping @ Yaml::Mapping(_) => serde_yaml::to_string(&mapping)
                                .map(|text| Sourced {
                                    text,
                                    key: key.clone(),
                                })
                                .map_err(|e| problem(format!("ignoreDifferences: {e}"))),
                            _ => Err(problem("ignoreDifferences is not YAML text".into())),
                        });
                    }
                    // Argo CD's other fields, and unknown ones (which Argo CD
                    // ignores too), have nothing to do with health.
                    _ => {}
                }
            }
        }
    }

    fn parse_split_key(&mut self, key: &str, rest: &str, value: &str) {
        let problem = |message: String| Problem {
            key: key.to_string(),
            message,
        };
        // `<type>.<group_kind>`: the group kind may hold dots, the type not.
        let Some((type_, group_kind)) = rest.split_once('.') else {
            // Argo CD skips keys without a group kind.
            return;
        };
        let group_kind = match group_kind.split('_').collect::<Vec<_>>()[..] {
            ["all"] => "*/*".to_string(),
            [kind] if !kind.is_empty() => kind.to_string(),
            [group, kind] if !kind.is_empty() => override_key(group, kind),
            _ => {
                self.problems.push(problem(format!(
                    "{group_kind:?} is not a group kind: expected <group>_<Kind>, <Kind> or all"
                )));
                return;
            }
        };
        match type_ {
            "health" => {
                self.entry(&group_kind).health = Some(Ok(Sourced {
                    text: value.to_string(),
                    key: key.to_string(),
                }));
            }
            "useOpenLibs" => {
                self.entry(&group_kind).use_open_libs = Some(
                    parse_bool(value)
                        .ok_or_else(|| problem(format!("{value:?} is not a boolean"))),
                );
            }
            "ignoreDifferences" => {
                self.entry(&group_kind).ignore_differences = Some(Ok(Sourced {
                    text: value.to_string(),
                    key: key.to_string(),
                }));
            }
            "actions" | "ignoreResourceUpdates" | "knownTypeFields" => {}
            other => self.problems.push(problem(format!(
                "customization type {other:?} is not known (health, useOpenLibs, ignoreDifferences, actions, ignoreResourceUpdates, knownTypeFields)"
            ))),
        }
    }

    /// Whether nothing is customized.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty() && self.problems.is_empty()
    }

    /// Problems that belong to no group kind (the old single key that is
    /// not YAML, an unknown customization type, a bad group kind).
    pub fn problems(&self) -> &[Problem] {
        &self.problems
    }

    /// Every entry, by Argo CD's override key (`group/Kind`, `Kind`, or a
    /// glob), in key order.
    pub fn entries(&self) -> impl Iterator<Item = (&str, &Customization)> {
        self.entries.iter().map(|(k, v)| (k.as_str(), v))
    }

    /// The entry of exactly this group kind, without globs.
    pub fn get(&self, group: &str, kind: &str) -> Option<&Customization> {
        self.entries.get(&override_key(group, kind))
    }

    /// The entries that apply to a group kind: its own first, then the
    /// globs that match it, in key order.
    pub fn matching(
        &self,
        group: &str,
        kind: &str,
    ) -> impl Iterator<Item = (&str, &Customization)> {
        let key = override_key(group, kind);
        let exact = self.entries.get_key_value(&key);
        let globs = self.globs.iter().filter_map(move |(pattern, glob)| {
            glob.is_match(&key)
                .then(|| self.entries.get_key_value(pattern))
                .flatten()
        });
        exact.into_iter().chain(globs).map(|(k, v)| (k.as_str(), v))
    }

    /// The custom health rule of a group kind: its own entry's script,
    /// else the first glob (in key order) with one. Argo CD picks among
    /// several matching globs at random; Plumb's pick is stable.
    pub fn health(&self, group: &str, kind: &str) -> Option<HealthRule<'_>> {
        let (_, entry) = self
            .matching(group, kind)
            .find(|(_, e)| e.health.is_some())?;
        let script = match entry.health.as_ref()? {
            Ok(script) => script,
            Err(problem) => return Some(HealthRule::Broken(problem)),
        };
        let use_open_libs = match &entry.use_open_libs {
            None => false,
            Some(Ok(b)) => *b,
            Some(Err(problem)) => return Some(HealthRule::Broken(problem)),
        };
        Some(HealthRule::Script {
            script: &script.text,
            use_open_libs,
            key: &script.key,
        })
    }

    /// The raw `ignoreDifferences` YAML of every entry that applies to a
    /// group kind (its own, then matching globs), with the data key it came
    /// from; a broken one as its problem. Plumb does not parse it here.
    pub fn ignore_differences(
        &self,
        group: &str,
        kind: &str,
    ) -> impl Iterator<Item = Result<&Sourced, &Problem>> {
        self.matching(group, kind)
            .filter_map(|(_, e)| e.ignore_differences.as_ref())
            .map(Result::as_ref)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(pairs: &[(&str, &str)]) -> Customizations {
        Customizations::parse(
            &pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        )
    }

    fn script<'a>(
        c: &'a Customizations,
        group: &str,
        kind: &str,
    ) -> Option<(&'a str, bool, &'a str)> {
        match c.health(group, kind)? {
            HealthRule::Script {
                script,
                use_open_libs,
                key,
            } => Some((script, use_open_libs, key)),
            HealthRule::Broken(p) => panic!("broken: {p}"),
        }
    }

    #[test]
    fn split_keys_name_group_and_kind_with_an_underscore() {
        let c = parse(&[
            (
                "resource.customizations.health.cert-manager.io_Certificate",
                "return {status = 'Healthy'}",
            ),
            (
                "resource.customizations.useOpenLibs.cert-manager.io_Certificate",
                "true",
            ),
            (
                "resource.customizations.health.PersistentVolumeClaim",
                "core",
            ),
            (
                "resource.customizations.ignoreDifferences.apps_Deployment",
                "jsonPointers:\n- /spec/replicas\n",
            ),
            ("url", "https://argo.example.com"),
        ]);
        assert_eq!(
            script(&c, "cert-manager.io", "Certificate"),
            Some((
                "return {status = 'Healthy'}",
                true,
                "resource.customizations.health.cert-manager.io_Certificate"
            ))
        );
        assert_eq!(
            script(&c, "", "PersistentVolumeClaim").map(|s| (s.0, s.1)),
            Some(("core", false))
        );
        assert_eq!(script(&c, "apps", "Deployment"), None);
        assert_eq!(script(&c, "other.io", "Certificate"), None);
        let ignore: Vec<_> = c.ignore_differences("apps", "Deployment").collect();
        assert_eq!(ignore.len(), 1);
        let raw = ignore[0].expect("parsed");
        assert_eq!(raw.text, "jsonPointers:\n- /spec/replicas\n");
        assert_eq!(
            raw.key,
            "resource.customizations.ignoreDifferences.apps_Deployment"
        );
        assert!(c.problems().is_empty());
    }

    #[test]
    fn the_single_key_holds_yaml_per_group_kind() {
        let c = parse(&[(
            "resource.customizations",
            r#"
cert-manager.io/Certificate:
  health.lua.useOpenLibs: true
  health.lua: |
    hs = {}
    return hs
PersistentVolumeClaim:
  health.lua: pvc
apps/Deployment:
  ignoreDifferences: |
    jsonPointers:
    - /spec/replicas
  actions: |
    discovery.lua: ignored
"#,
        )]);
        assert_eq!(
            script(&c, "cert-manager.io", "Certificate"),
            Some((
                "hs = {}\nreturn hs\n",
                true,
                "resource.customizations (cert-manager.io/Certificate)"
            ))
        );
        assert_eq!(
            script(&c, "", "PersistentVolumeClaim").map(|s| s.0),
            Some("pvc")
        );
        let raw: Vec<_> = c
            .ignore_differences("apps", "Deployment")
            .map(|r| r.expect("parsed").text.as_str())
            .collect();
        assert_eq!(raw, ["jsonPointers:\n- /spec/replicas\n"]);
    }

    #[test]
    fn a_split_key_wins_over_the_single_key_field_by_field() {
        let c = parse(&[
            (
                "resource.customizations",
                "example.com/Widget:\n  health.lua: old\n  health.lua.useOpenLibs: true\n",
            ),
            ("resource.customizations.health.example.com_Widget", "new"),
        ]);
        assert_eq!(
            script(&c, "example.com", "Widget"),
            Some((
                "new",
                true,
                "resource.customizations.health.example.com_Widget"
            ))
        );
    }

    #[test]
    fn globs_and_all_match_many_kinds_and_the_exact_entry_wins() {
        let c = parse(&[
            (
                "resource.customizations",
                "\"*.aws.crossplane.io/*\":\n  health.lua: crossplane\n\"*/*\":\n  ignoreDifferences: 'jsonPointers: [/status]'\n",
            ),
            (
                "resource.customizations.health.ec2.aws.crossplane.io_Special",
                "special",
            ),
            (
                "resource.customizations.ignoreDifferences.all",
                "jqPathExpressions: [.x]",
            ),
        ]);
        assert_eq!(
            script(&c, "ec2.aws.crossplane.io", "Instance").map(|s| s.0),
            Some("crossplane")
        );
        assert_eq!(
            script(&c, "ec2.aws.crossplane.io", "Special").map(|s| s.0),
            Some("special")
        );
        assert_eq!(script(&c, "gcp.crossplane.io", "Instance"), None);
        // `*/*` needs a slash: core kinds (`Pod`) are not matched by it, as
        // in Argo CD; `all` is `*/*`.
        let raw: Vec<_> = c
            .ignore_differences("apps", "Deployment")
            .map(|r| r.expect("parsed").text.as_str())
            .collect();
        assert_eq!(raw, ["jqPathExpressions: [.x]"]);
        assert_eq!(c.ignore_differences("", "Pod").count(), 0);
    }

    #[test]
    fn use_open_libs_takes_go_booleans_and_a_bad_one_breaks_only_its_kind() {
        for (text, want) in [
            ("true", true),
            ("1", true),
            ("T", true),
            ("false", false),
            ("0", false),
        ] {
            let c = parse(&[
                ("resource.customizations.health.example.com_Widget", "s"),
                (
                    "resource.customizations.useOpenLibs.example.com_Widget",
                    text,
                ),
            ]);
            assert_eq!(
                script(&c, "example.com", "Widget").map(|s| s.1),
                Some(want),
                "{text}"
            );
        }
        let c = parse(&[
            ("resource.customizations.health.example.com_Widget", "s"),
            (
                "resource.customizations.useOpenLibs.example.com_Widget",
                "yes please",
            ),
            ("resource.customizations.health.example.com_Gadget", "g"),
        ]);
        match c.health("example.com", "Widget") {
            Some(HealthRule::Broken(p)) => {
                assert_eq!(
                    p.key,
                    "resource.customizations.useOpenLibs.example.com_Widget"
                );
                assert_eq!(
                    p.to_string(),
                    "resource.customizations.useOpenLibs.example.com_Widget: \"yes please\" is not a boolean"
                );
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(script(&c, "example.com", "Gadget").map(|s| s.0), Some("g"));
    }

    #[test]
    fn problems_that_belong_to_no_kind_are_kept_apart() {
        let c = parse(&[
            ("resource.customizations", "[not: a mapping"),
            ("resource.customizations.health.a_b_c", "x"),
            ("resource.customizations.healthz.apps_Deployment", "x"),
            ("resource.customizations.actions.apps_Deployment", "ignored"),
            (
                "resource.customizations.health",
                "no group kind: skipped as in Argo CD",
            ),
            ("resource.customizations.health.example.com_Widget", "fine"),
        ]);
        let keys: Vec<_> = c.problems().iter().map(|p| p.key.as_str()).collect();
        assert_eq!(
            keys,
            [
                "resource.customizations",
                "resource.customizations.health.a_b_c",
                "resource.customizations.healthz.apps_Deployment"
            ]
        );
        assert_eq!(
            script(&c, "example.com", "Widget").map(|s| s.0),
            Some("fine")
        );
    }

    #[test]
    fn a_broken_entry_of_the_single_key_breaks_only_its_kind() {
        let c = parse(&[(
            "resource.customizations",
            "example.com/Widget: just text\nexample.com/Gadget:\n  health.lua: g\n  health.lua.useOpenLibs: sometimes\nexample.com/Gizmo:\n  health.lua: ok\n",
        )]);
        assert!(matches!(
            c.health("example.com", "Widget"),
            Some(HealthRule::Broken(p)) if p.key == "resource.customizations (example.com/Widget)"
        ));
        assert!(matches!(
            c.ignore_differences("example.com", "Widget").next(),
            Some(Err(_))
        ));
        assert!(matches!(
            c.health("example.com", "Gadget"),
            Some(HealthRule::Broken(p)) if p.message.contains("sometimes")
        ));
        assert_eq!(script(&c, "example.com", "Gizmo").map(|s| s.0), Some("ok"));
        assert!(c.problems().is_empty());
    }

    #[test]
    fn core_kinds_written_with_an_empty_group_are_core_kinds() {
        let c = parse(&[
            ("resource.customizations.health._ConfigMap", "cm"),
            (
                "resource.customizations",
                "/Secret:\n  health.lua: secret\n",
            ),
        ]);
        assert_eq!(script(&c, "", "ConfigMap").map(|s| s.0), Some("cm"));
        assert_eq!(script(&c, "", "Secret").map(|s| s.0), Some("secret"));
    }

    #[test]
    fn empty_settings_customize_nothing() {
        assert!(parse(&[]).is_empty());
        assert!(parse(&[("resource.customizations", "")]).is_empty());
        assert!(parse(&[("url", "x")]).is_empty());
    }
}
