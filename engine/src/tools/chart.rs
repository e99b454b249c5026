//! Charts from Helm chart repositories (`https://`) and OCI registries
//! (`oci://`), pulled with `helm pull` and kept unpacked under the tools'
//! folder, one folder per repository, chart and version.
//!
//! An exact version is pulled once and kept. A version constraint
//! (`1.2.*`, `>=1.0 <2`, empty for the newest) is resolved by pulling what
//! it allows, at most every [`CONSTRAINT_TTL`], so a new chart version is
//! seen without asking the repository on every reconcile.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::{RenderFailure, Tools, hash_json, lock};

/// How long a constraint's resolution is used before asking again.
const CONSTRAINT_TTL: Duration = Duration::from_secs(180);

/// A chart repository, a chart and a version constraint.
type Constraint = (String, String, String);

/// The cache of pulled charts.
pub(super) struct Charts {
    root: PathBuf,
    /// Pulls run one at a time (they share Helm's repository cache).
    pulling: std::sync::Mutex<()>,
    /// (url, chart, constraint) -> (when, version).
    resolved: std::sync::Mutex<HashMap<Constraint, (Instant, String)>>,
}

/// Whether `version` names one version (`1.2.3`, `v1.2.3-rc.1`) rather
/// than a constraint.
fn is_exact(version: &str) -> bool {
    let v = version.strip_prefix('v').unwrap_or(version);
    !v.is_empty()
        && v.starts_with(|c: char| c.is_ascii_digit())
        && v.chars()
            .all(|c| c.is_ascii_alphanumeric() || ".-+".contains(c))
        && !v.split(['.', '-', '+']).any(|p| p == "x" || p == "X")
}

impl Charts {
    pub(super) fn new(root: PathBuf) -> std::io::Result<Charts> {
        std::fs::create_dir_all(&root)?;
        // Pulls a previous process left unfinished.
        for entry in std::fs::read_dir(&root)?.flatten() {
            if entry.file_name().to_string_lossy().ends_with(".partial") {
                let _ = std::fs::remove_dir_all(entry.path());
            }
        }
        Ok(Charts {
            root,
            pulling: std::sync::Mutex::new(()),
            resolved: std::sync::Mutex::new(HashMap::new()),
        })
    }

    /// The exact version `version` stands for, pulling it when needed.
    pub(super) fn resolve(
        &self,
        tools: &Tools,
        url: &str,
        chart: &str,
        version: &str,
    ) -> Result<String, RenderFailure> {
        if is_exact(version) {
            self.get(tools, url, chart, version)?;
            return Ok(version.to_string());
        }
        let key = (url.to_string(), chart.to_string(), version.to_string());
        if let Some((at, exact)) = lock(&self.resolved).get(&key)
            && at.elapsed() < CONSTRAINT_TTL
        {
            return Ok(exact.clone());
        }
        let exact = self.pull(tools, url, chart, version)?;
        lock(&self.resolved).insert(key, (Instant::now(), exact.clone()));
        Ok(exact)
    }

    /// The folder of `chart` at the exact `version`, pulled when missing.
    pub(super) fn get(
        &self,
        tools: &Tools,
        url: &str,
        chart: &str,
        version: &str,
    ) -> Result<PathBuf, RenderFailure> {
        let folder = self.folder(url, chart, version);
        if folder.join("Chart.yaml").is_file() {
            return Ok(folder);
        }
        let pulled = self.pull(tools, url, chart, version)?;
        if pulled != version {
            return Err(RenderFailure::Input(format!(
                "chart {chart} {version} from {url}: the repository sent version {pulled}"
            )));
        }
        Ok(folder)
    }

    fn folder(&self, url: &str, chart: &str, version: &str) -> PathBuf {
        self.root
            .join(format!("{:016x}", hash_json(&(url, chart))))
            .join(version)
            .join(chart)
    }

    /// Pulls what `version` allows and files it under its exact version;
    /// returns that version.
    fn pull(
        &self,
        tools: &Tools,
        url: &str,
        chart: &str,
        version: &str,
    ) -> Result<String, RenderFailure> {
        if chart.contains('/') || chart.contains("..") || chart.is_empty() {
            return Err(RenderFailure::Input(format!(
                "spec.source.chart {chart:?} is not a chart name"
            )));
        }
        let _one_at_a_time = lock(&self.pulling);
        let partial = self.root.join(format!(
            "{:016x}.{}.partial",
            hash_json(&(url, chart, version)),
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&partial);
        std::fs::create_dir_all(&partial).map_err(internal)?;
        let cleanup = Cleanup(&partial);
        let mut args: Vec<String> = vec!["pull".into()];
        if let Some(registry) = url.strip_prefix("oci://") {
            args.push(format!("oci://{}/{chart}", registry.trim_end_matches('/')));
        } else if url.starts_with("https://") || url.starts_with("http://") {
            args.extend([chart.to_string(), "--repo".into(), url.to_string()]);
        } else {
            return Err(RenderFailure::Input(format!(
                "chart {chart}: repoURL {url:?} is not a chart repository (https:// or oci://)"
            )));
        }
        if !version.is_empty() && version != "*" {
            args.extend(["--version".into(), version.to_string()]);
        }
        args.extend([
            "--untar".into(),
            "--untardir".into(),
            partial.to_string_lossy().into_owned(),
        ]);
        tools.helm(&args, &partial)?;
        let unpacked = partial.join(chart);
        let chart_yaml = std::fs::read_to_string(unpacked.join("Chart.yaml")).map_err(|_| {
            RenderFailure::Input(format!(
                "chart {chart} from {url}: the pulled archive holds no {chart}/Chart.yaml"
            ))
        })?;
        let exact = serde_yaml::from_str::<Value>(&chart_yaml)
            .ok()
            .and_then(|v| v.get("version").and_then(Value::as_str).map(str::to_string))
            .ok_or_else(|| {
                RenderFailure::Input(format!(
                    "chart {chart} from {url}: Chart.yaml has no version"
                ))
            })?;
        let folder = self.folder(url, chart, &exact);
        if !folder.join("Chart.yaml").is_file() {
            let parent = folder.parent().unwrap_or(&self.root);
            std::fs::create_dir_all(parent).map_err(internal)?;
            let _ = std::fs::remove_dir_all(&folder);
            std::fs::rename(&unpacked, &folder).map_err(internal)?;
        }
        drop(cleanup);
        Ok(exact)
    }
}

fn internal(e: std::io::Error) -> RenderFailure {
    RenderFailure::Internal(format!("cannot write the chart cache: {e}"))
}

/// Removes a folder when dropped.
struct Cleanup<'a>(&'a Path);

impl Drop for Cleanup<'_> {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(self.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_versions_and_constraints() {
        for exact in ["1.2.3", "v1.2.3", "0.1.0-rc.1", "1.0.0+build"] {
            assert!(is_exact(exact), "{exact}");
        }
        for constraint in [
            "",
            "*",
            "1.2.*",
            "1.x",
            ">=1.0",
            "^1.2",
            "~1.2",
            "1.0 - 2.0",
        ] {
            assert!(!is_exact(constraint), "{constraint}");
        }
    }
}
