//! Plumb's settings in Argo CD's shape: the `argocd-cm` ConfigMap in Plumb's
//! namespace (watched: an edit takes effect without a restart; absent means
//! nothing is customized) and the optional file of `plumb serve
//! --resource-customizations` (the same data map as YAML, read at start).
//! Where both set a key, the file's value wins: it is what the operator
//! started Plumb with, as `--apps` files win over objects.
//!
//! Today they hold the resource customizations (`core::customizations`),
//! and [`Settings::health_of`] is the health of a live object under them: a
//! custom `health.lua` where one applies (run by [`crate::lua`]), the
//! built-in rule otherwise.
//!
//! Not the place that acts on a change: [`crate::live::LiveState`] takes
//! new settings and re-reads the kinds whose rule changed.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind};
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use serde_json::Value;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::customizations::{Customizations, HealthRule};
use crate::health;
use crate::ignore::{self, IgnoreRules, RuleError};
use crate::lua;
use crate::model::{Health, HealthStatusCode, ResourceIgnoreDifferences, group_of};

/// The ConfigMap Argo CD keeps its settings in.
pub const CONFIG_MAP: &str = "argocd-cm";

/// An `argocd-cm`-style data map.
pub type Data = BTreeMap<String, String>;

/// The settings in force.
#[derive(Debug)]
pub struct Settings {
    customizations: Customizations,
    /// The server-wide `ignoreDifferences` rules of the customizations, or
    /// the first one that cannot be used.
    ignore_differences: Result<Vec<ResourceIgnoreDifferences>, RuleError>,
    /// Changes with every change of the settings (0: the built-in ones).
    generation: u64,
    limits: lua::Limits,
}

impl Default for Settings {
    /// The built-in settings: nothing customized.
    fn default() -> Settings {
        Settings::new(Customizations::default(), 0)
    }
}

/// A live object's health under the settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObjectHealth {
    /// The health, `None` where no rule applies (taken as Healthy).
    pub health: Option<Health>,
    /// Whether a custom rule failed (an error in the script, a limit, a
    /// broken setting): the health is then Unknown with why.
    pub failed: bool,
}

impl Settings {
    /// Settings with these customizations; `generation` tells them apart
    /// from the ones before.
    pub fn new(customizations: Customizations, generation: u64) -> Settings {
        Settings {
            ignore_differences: server_ignore_rules(&customizations),
            customizations,
            generation,
            limits: lua::Limits::default(),
        }
    }

    /// The same settings with other bounds for scripts.
    pub fn with_limits(mut self, limits: lua::Limits) -> Settings {
        self.limits = limits;
        self
    }

    /// Which settings these are.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// The customizations.
    pub fn customizations(&self) -> &Customizations {
        &self.customizations
    }

    /// The server-wide `ignoreDifferences` rules
    /// (`resource.customizations.ignoreDifferences.<group_kind>`, or the
    /// `ignoreDifferences` of a `resource.customizations` entry), which
    /// every application's comparison uses beside its own.
    ///
    /// # Errors
    /// The first rule that cannot be used, naming its data key.
    pub fn ignore_differences(&self) -> Result<&[ResourceIgnoreDifferences], RuleError> {
        self.ignore_differences.as_deref().map_err(Clone::clone)
    }

    /// The custom health rule of a group kind, if any: what a change of the
    /// settings is compared on.
    pub fn health_rule(&self, group: &str, kind: &str) -> Option<HealthRule<'_>> {
        self.customizations.health(group, kind)
    }

    /// The health of a live object: Progressing "Pending deletion" while it
    /// is deleted, else its custom script's verdict when its kind has one
    /// (a script's failure is Unknown with the error, naming the key), else
    /// the built-in rule. Scripts run only for kinds that have one.
    pub fn health_of(&self, object: &Value) -> ObjectHealth {
        let fine = |health| ObjectHealth {
            health,
            failed: false,
        };
        if let Some(pending) = health::pending_deletion(object) {
            return fine(Some(pending));
        }
        let text = |p: &str| {
            object
                .pointer(p)
                .and_then(Value::as_str)
                .unwrap_or_default()
        };
        let group = group_of(text("/apiVersion"));
        let failed = |message: String| ObjectHealth {
            health: Some(Health::new(HealthStatusCode::Unknown, message)),
            failed: true,
        };
        match self.customizations.health(group, text("/kind")) {
            None => fine(health::health_of(object)),
            Some(HealthRule::Broken(problem)) => failed(problem.to_string()),
            Some(HealthRule::Script {
                script,
                use_open_libs,
                key,
            }) => match lua::health(script, use_open_libs, object, &self.limits) {
                Ok(health) => fine(health),
                Err(e) => failed(format!("{key}: {e}")),
            },
        }
    }
}

/// The `ignoreDifferences` rules of the customizations, in key order, each
/// checked by compiling it; the first that cannot be used is the error,
/// naming its data key.
fn server_ignore_rules(
    customizations: &Customizations,
) -> Result<Vec<ResourceIgnoreDifferences>, RuleError> {
    let mut rules = Vec::new();
    for (group_kind, entry) in customizations.entries() {
        let sourced = match &entry.ignore_differences {
            None => continue,
            Some(Ok(sourced)) => sourced,
            Some(Err(problem)) => {
                return Err(RuleError::Setting {
                    key: problem.key.clone(),
                    reason: problem.message.clone(),
                });
            }
        };
        let setting = |reason: String| RuleError::Setting {
            key: sourced.key.clone(),
            reason,
        };
        let rule = ignore::server_rule(group_kind, &sourced.text).map_err(|e| match e {
            RuleError::ServerRule { reason, .. } => setting(reason),
            other => setting(other.to_string()),
        })?;
        IgnoreRules::compile([&rule]).map_err(|e| setting(e.to_string()))?;
        rules.push(rule);
    }
    Ok(rules)
}

/// The error of [`read_file`].
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    /// The file cannot be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The file is not a YAML mapping of keys to text.
    #[error("{path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
}

/// The data map of a `--resource-customizations` file: a YAML mapping of
/// `argocd-cm` keys to their text, or a whole ConfigMap (its `data`).
/// Scalars that are not text (`true`) are taken as their text.
///
/// # Errors
/// When the file cannot be read or is not such a mapping.
pub fn read_file(path: &Path) -> Result<Data, SettingsError> {
    let text = std::fs::read_to_string(path).map_err(|source| SettingsError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    parse_data(&text).map_err(|message| SettingsError::Parse {
        path: path.to_path_buf(),
        message,
    })
}

fn parse_data(text: &str) -> Result<Data, String> {
    use serde_yaml::Value as Yaml;
    let yaml: Yaml = serde_yaml::from_str(text).map_err(|e| format!("not valid YAML: {e}"))?;
    let map = match yaml {
        Yaml::Null => return Ok(Data::new()),
        Yaml::Mapping(map) => map,
        _ => return Err("expected a mapping of argocd-cm keys to text".into()),
    };
    let is_config_map = map.get("kind").and_then(Yaml::as_str) == Some("ConfigMap");
    let map = if is_config_map {
        match map.get("data") {
            Some(Yaml::Mapping(data)) => data.clone(),
            None | Some(Yaml::Null) => return Ok(Data::new()),
            Some(_) => return Err("the ConfigMap's data is not a mapping".into()),
        }
    } else {
        map
    };
    map.into_iter()
        .map(|(k, v)| {
            let key = k
                .as_str()
                .ok_or_else(|| format!("key {k:?} is not text"))?
                .to_string();
            let value = match v {
                Yaml::String(s) => s,
                Yaml::Bool(b) => b.to_string(),
                Yaml::Number(n) => n.to_string(),
                _ => return Err(format!("{key}: the value is not text")),
            };
            Ok((key, value))
        })
        .collect()
}

/// The data in force: the ConfigMap's, with the file's keys over it.
pub fn merge(config_map: &Data, file: &Data) -> Data {
    let mut data = config_map.clone();
    data.extend(file.iter().map(|(k, v)| (k.clone(), v.clone())));
    data
}

/// Logs what is wrong in the settings, once per change.
fn report(customizations: &Customizations) {
    for problem in customizations.problems() {
        tracing::error!(%problem, "resource customization ignored");
    }
    for (group_kind, entry) in customizations.entries() {
        match &entry.health {
            Some(Ok(script)) => {
                if let Err(e) = lua::check(&script.text) {
                    tracing::error!(key = %script.key, error = %e, "health.lua does not compile; objects of {group_kind} are Unknown");
                }
            }
            Some(Err(problem)) => tracing::error!(%problem, "objects of {group_kind} are Unknown"),
            None => {}
        }
        if let Some(Err(problem)) = &entry.use_open_libs {
            tracing::error!(%problem, "objects of {group_kind} are Unknown");
        }
    }
    if let Err(e) = server_ignore_rules(customizations) {
        tracing::error!(error = %e, "no application is compared until this ignoreDifferences rule is fixed");
    }
}

/// The `data` of one watched object, by key; a Secret's values decoded
/// from base64, a ConfigMap's as their bytes. Empty while the object does
/// not exist.
pub type RawData = BTreeMap<String, Vec<u8>>;

/// The kinds [`watch_data`] watches.
#[derive(Clone, Copy, Debug)]
pub enum Kind {
    /// A ConfigMap (`data`).
    ConfigMap,
    /// A Secret (`data`, base64).
    Secret,
}

/// A data map's values as text (a value that is not UTF-8 is left out).
pub fn text_data(raw: &RawData) -> Data {
    raw.iter()
        .filter_map(|(k, v)| Some((k.clone(), String::from_utf8(v.clone()).ok()?)))
        .collect()
}

/// Watches the `data` of the object `name` of `kind` in `namespace` until
/// `cancel`, and waits at most `timeout` for its first list (past it, the
/// data is empty until the watch delivers). A watch that fails (the object
/// may not be read) is logged and retried. The same watch serves
/// `argocd-cm` here and the accounts' objects (`crate::accounts`).
pub async fn watch_data(
    client: kube::Client,
    namespace: &str,
    kind: Kind,
    name: &str,
    timeout: Duration,
    cancel: CancellationToken,
) -> watch::Receiver<Arc<RawData>> {
    let (tx, rx) = watch::channel(Arc::new(RawData::new()));
    let (listed_tx, mut listed) = watch::channel(false);
    let (kind_name, plural) = match kind {
        Kind::ConfigMap => ("ConfigMap", "configmaps"),
        Kind::Secret => ("Secret", "secrets"),
    };
    let resource =
        ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk("", "v1", kind_name), plural);
    let api: Api<DynamicObject> = Api::namespaced_with(client, namespace, &resource);
    let config = watcher::Config::default().fields(&format!("metadata.name={name}"));
    let name = name.to_string();
    tokio::spawn(async move {
        let mut stream = watcher::watcher(api, config).default_backoff().boxed();
        let mut seen = false;
        loop {
            let event = tokio::select! {
                () = cancel.cancelled() => return,
                event = stream.next() => event,
            };
            let Some(event) = event else { return };
            let data = match event {
                Ok(Event::Apply(object) | Event::InitApply(object)) => {
                    seen = true;
                    let value =
                        serde_json::to_value(object).expect("a DynamicObject always serializes");
                    object_data(&value, kind)
                }
                Ok(Event::Delete(_)) => RawData::new(),
                Ok(Event::Init) => {
                    seen = false;
                    continue;
                }
                Ok(Event::InitDone) => {
                    let _ = listed_tx.send(true);
                    if seen {
                        continue;
                    }
                    // Gone while the watch was down.
                    RawData::new()
                }
                Err(e) => {
                    tracing::warn!(error = %e, "watch of {kind_name} {name} failed; retrying");
                    continue;
                }
            };
            if **tx.borrow() != data {
                let _ = tx.send(Arc::new(data));
            }
        }
    });
    let _ = tokio::time::timeout(timeout, listed.wait_for(|l| *l)).await;
    rx
}

/// The `data` of an object of `kind` as JSON.
pub fn object_data(object: &Value, kind: Kind) -> RawData {
    use base64::Engine;
    object
        .get("data")
        .and_then(Value::as_object)
        .map(|data| {
            data.iter()
                .filter_map(|(k, v)| {
                    let text = v.as_str()?;
                    let bytes = match kind {
                        Kind::ConfigMap => text.as_bytes().to_vec(),
                        Kind::Secret => base64::engine::general_purpose::STANDARD
                            .decode(text)
                            .ok()?,
                    };
                    Some((k.clone(), bytes))
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The settings as they change: the ConfigMap watched, merged with the
/// file read at start.
#[derive(Clone, Debug)]
pub struct SettingsSource {
    rx: watch::Receiver<Arc<Settings>>,
}

impl SettingsSource {
    /// Fixed settings from a data map (tests, and Plumb without a cluster).
    pub fn fixed(data: &Data) -> SettingsSource {
        let (_, rx) = watch::channel(Arc::new(Settings::new(Customizations::parse(data), 1)));
        SettingsSource { rx }
    }

    /// Starts watching `argocd-cm` in `namespace`, with `file`'s data over
    /// it, and waits at most `timeout` for the ConfigMap's first list (so
    /// the first reconciles see the customizations); past it, Plumb starts
    /// with the file's settings alone and takes the ConfigMap's when they
    /// come. A ConfigMap Plumb may not read is logged and retried.
    pub async fn watch(
        client: kube::Client,
        namespace: &str,
        file: Data,
        timeout: Duration,
        cancel: CancellationToken,
    ) -> SettingsSource {
        let initial = Customizations::parse(&file);
        report(&initial);
        let (tx, rx) = watch::channel(Arc::new(Settings::new(initial, 1)));
        let mut objects = watch_data(
            client,
            namespace,
            Kind::ConfigMap,
            CONFIG_MAP,
            timeout,
            cancel.clone(),
        )
        .await;
        let mut apply = {
            let mut generation = 1;
            move |raw: &RawData| {
                let current = text_data(raw);
                let customizations = Customizations::parse(&merge(&current, &file));
                if customizations == *tx.borrow().customizations() {
                    return;
                }
                report(&customizations);
                generation += 1;
                tracing::info!(generation, "resource customizations changed");
                let _ = tx.send(Arc::new(Settings::new(customizations, generation)));
            }
        };
        apply(&objects.borrow_and_update());
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    () = cancel.cancelled() => return,
                    changed = objects.changed() => if changed.is_err() { return },
                }
                let raw = Arc::clone(&objects.borrow_and_update());
                apply(&raw);
            }
        });
        SettingsSource { rx }
    }

    /// The settings in force now.
    pub fn current(&self) -> Arc<Settings> {
        Arc::clone(&self.rx.borrow())
    }

    /// Waits for the next change; `None` once the source has stopped.
    pub async fn changed(&mut self) -> Option<Arc<Settings>> {
        self.rx.changed().await.ok()?;
        Some(self.current())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn data(pairs: &[(&str, &str)]) -> Data {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn settings(pairs: &[(&str, &str)]) -> Settings {
        Settings::new(Customizations::parse(&data(pairs)), 1)
    }

    fn widget(ready: bool) -> Value {
        json!({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"},
            "status": {"ready": ready}})
    }

    const WIDGET: &str = "if obj.status.ready then return {status = 'Healthy'} end return {status = 'Degraded', message = 'not ready'}";

    #[test]
    fn ignore_differences_entries_are_server_wide_rules() {
        let s = settings(&[
            (
                "resource.customizations.ignoreDifferences.apps_Deployment",
                "jsonPointers:\n- /spec/replicas\n",
            ),
            (
                "resource.customizations.ignoreDifferences.all",
                "managedFieldsManagers:\n- kube-controller-manager\n",
            ),
            (
                "resource.customizations",
                "example.com/Widget:\n  ignoreDifferences: |\n    jqPathExpressions:\n    - .spec.size\n",
            ),
        ]);
        let rules = s.ignore_differences().expect("usable");
        let by_kind = |group: &str, kind: &str| {
            rules
                .iter()
                .find(|r| r.group == group && r.kind == kind)
                .unwrap_or_else(|| panic!("a rule for {group}/{kind} in {rules:?}"))
        };
        assert_eq!(
            by_kind("apps", "Deployment").json_pointers,
            ["/spec/replicas"]
        );
        assert_eq!(
            by_kind("*", "*").managed_fields_managers,
            ["kube-controller-manager"]
        );
        assert_eq!(
            by_kind("example.com", "Widget").jq_path_expressions,
            [".spec.size"]
        );
        assert_eq!(settings(&[]).ignore_differences(), Ok(&[][..]));
    }

    #[test]
    fn an_ignore_differences_entry_that_cannot_be_used_names_its_key() {
        for (text, says) in [
            (
                "jqPathExpressions:\n- .spec |||\n",
                "jqPathExpressions entry",
            ),
            ("jsonPointers:\n- spec/replicas\n", "is not a JSON Pointer"),
            ("jsonPointer: /spec\n", "unknown field"),
        ] {
            let key = "resource.customizations.ignoreDifferences.apps_Deployment";
            let error = settings(&[(key, text)])
                .ignore_differences()
                .expect_err(text)
                .to_string();
            assert!(error.starts_with(&format!("{key}: ")), "{error}");
            assert!(error.contains(says), "{error}");
        }
    }

    #[test]
    fn a_custom_script_decides_for_its_kind() {
        let s = settings(&[("resource.customizations.health.example.com_Widget", WIDGET)]);
        assert_eq!(
            s.health_of(&widget(false)),
            ObjectHealth {
                health: Some(Health::new(HealthStatusCode::Degraded, "not ready")),
                failed: false
            }
        );
        assert_eq!(
            s.health_of(&widget(true)).health,
            Some(Health::new(HealthStatusCode::Healthy, ""))
        );
        // Other kinds keep their built-in rule, or none.
        let cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}});
        assert_eq!(s.health_of(&cm).health, None);
    }

    #[test]
    fn a_custom_script_overrides_the_built_in_rule() {
        let pvc = json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "d"},
            "status": {"phase": "Pending"}});
        assert_eq!(
            settings(&[]).health_of(&pvc).health.map(|h| h.status),
            Some(HealthStatusCode::Progressing)
        );
        let s = settings(&[(
            "resource.customizations.health.PersistentVolumeClaim",
            "return {status = 'Healthy', message = obj.status.phase}",
        )]);
        assert_eq!(
            s.health_of(&pvc).health,
            Some(Health::new(HealthStatusCode::Healthy, "Pending"))
        );
    }

    #[test]
    fn deletion_comes_before_any_script() {
        let s = settings(&[("resource.customizations.health.example.com_Widget", WIDGET)]);
        let mut w = widget(false);
        w["metadata"]["deletionTimestamp"] = json!("2024-01-01T00:00:00Z");
        assert_eq!(
            s.health_of(&w).health,
            Some(Health::new(
                HealthStatusCode::Progressing,
                "Pending deletion"
            ))
        );
    }

    #[test]
    fn a_failing_script_is_unknown_and_names_its_key() {
        let s = settings(&[(
            "resource.customizations.health.example.com_Widget",
            "return obj.spec.size",
        )]);
        let got = s.health_of(&widget(true));
        assert!(got.failed);
        assert_eq!(
            got.health,
            Some(Health::new(
                HealthStatusCode::Unknown,
                "resource.customizations.health.example.com_Widget: health.lua:1: attempt to index field 'spec' (a nil value)"
            ))
        );
        let s = settings(&[
            ("resource.customizations.health.example.com_Widget", WIDGET),
            (
                "resource.customizations.useOpenLibs.example.com_Widget",
                "perhaps",
            ),
        ]);
        let got = s.health_of(&widget(true));
        assert!(got.failed);
        assert_eq!(
            got.health,
            Some(Health::new(
                HealthStatusCode::Unknown,
                "resource.customizations.useOpenLibs.example.com_Widget: \"perhaps\" is not a boolean"
            ))
        );
    }

    #[test]
    fn the_file_wins_over_the_config_map_key_by_key() {
        let cm = data(&[("a", "cm"), ("b", "cm")]);
        let file = data(&[("b", "file"), ("c", "file")]);
        assert_eq!(
            merge(&cm, &file),
            data(&[("a", "cm"), ("b", "file"), ("c", "file")])
        );
    }

    #[test]
    fn a_file_is_a_data_map_or_a_whole_config_map() {
        let plain = "resource.customizations.useOpenLibs.example.com_Widget: true\nresource.customizations.health.example.com_Widget: |\n  return {}\n";
        let want = data(&[
            (
                "resource.customizations.useOpenLibs.example.com_Widget",
                "true",
            ),
            (
                "resource.customizations.health.example.com_Widget",
                "return {}\n",
            ),
        ]);
        assert_eq!(parse_data(plain), Ok(want.clone()));
        let config_map = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: argocd-cm\ndata:\n  resource.customizations.useOpenLibs.example.com_Widget: \"true\"\n  resource.customizations.health.example.com_Widget: |\n    return {}\n";
        assert_eq!(parse_data(config_map), Ok(want));
        assert_eq!(parse_data(""), Ok(Data::new()));
        assert!(parse_data("- a list").is_err());
        assert!(parse_data("key: [1, 2]").is_err());
    }
}
