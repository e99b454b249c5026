//! `kustomize build` of an application's folder in a checkout: every local
//! path the kustomizations refer to is checked to stay inside the
//! repository first, the options of `spec.source.kustomize` are applied to
//! a copy of the folder's kustomization, and the real `kustomize` (or
//! `kubectl kustomize`) builds it.

use std::collections::{BTreeSet, VecDeque};
use std::path::Path;

use serde_json::Value;

use super::checkout::Checkout;
use super::{RenderFailure, Tools};
use crate::kustomize::{self, Reference};
use crate::model::KustomizeSource;
use crate::render::KUSTOMIZATION_FILES;
use crate::repo_path;

/// The kustomization file of a folder of the checkout, if it has one.
fn kustomization_file(root: &Path, dir: &str) -> Option<std::path::PathBuf> {
    KUSTOMIZATION_FILES
        .iter()
        .map(|name| root.join(dir).join(name))
        .find(|p| p.is_file())
}

/// Checks that every local path the kustomization of `app` refers to, and
/// the kustomizations of the folders it refers to in turn, stays inside the
/// repository. Returns the repository paths the build reads: the folders
/// visited and every path referred to.
///
/// # Errors
///
/// [`RenderFailure::Input`] naming the field and path of the first
/// reference that leaves the repository, or a kustomization that is not
/// YAML.
pub(super) fn check_references(root: &Path, app: &str) -> Result<BTreeSet<String>, RenderFailure> {
    let mut visited = BTreeSet::new();
    let mut files = BTreeSet::new();
    let mut pending = VecDeque::from([app.to_string()]);
    while let Some(dir) = pending.pop_front() {
        if !visited.insert(dir.clone()) {
            continue;
        }
        let Some(file) = kustomization_file(root, &dir) else {
            continue;
        };
        let text = std::fs::read_to_string(&file)
            .map_err(|e| RenderFailure::Input(format!("cannot read {}: {e}", shown(&dir))))?;
        let parsed: Value = serde_yaml::from_str(&text).map_err(|e| {
            RenderFailure::Input(format!(
                "the kustomization in {} is not YAML: {e}",
                shown(&dir)
            ))
        })?;
        for reference in kustomize::references(&parsed) {
            let path = kustomize::resolve(&dir, &reference).map_err(RenderFailure::Input)?;
            if root.join(&path).is_dir() {
                pending.push_back(path);
            } else {
                files.insert(path);
            }
        }
    }
    visited.append(&mut files);
    Ok(visited)
}

fn shown(dir: &str) -> &str {
    if dir.is_empty() { "." } else { dir }
}

/// Builds the application folder `app` of `checkout` with `options`
/// applied, and returns what Kustomize printed.
///
/// Options are applied as Argo CD's `kustomize edit` applies them, to the
/// application's own kustomization, but on a copy: the folder is copied
/// next to itself (same depth, so its relative paths still hold) and the
/// copy's kustomization is edited; the checkout's files stay as
/// committed. An application at the repository's root gets a private copy
/// of the whole checkout instead.
///
/// # Errors
///
/// [`RenderFailure::Input`] for a folder without a kustomization, a path
/// that leaves the repository or an option that cannot be used;
/// [`RenderFailure::Tool`] when Kustomize is missing or fails.
pub(super) fn build(
    tools: &Tools,
    checkout: &Checkout,
    app: &str,
    options: &KustomizeSource,
) -> Result<(Vec<u8>, BTreeSet<String>), RenderFailure> {
    let root = checkout.path();
    if kustomization_file(root, app).is_none() {
        return Err(RenderFailure::Input(format!(
            "{} has no kustomization.yaml, kustomization.yml or Kustomization file",
            shown(app)
        )));
    }
    let mut inputs = check_references(root, app)?;
    if !kustomize::needs_edit(options) {
        let _reading = checkout.read_lock();
        return Ok((tools.kustomize_build(root, app)?, inputs));
    }
    let components = components(root, app, options, &mut inputs)?;
    for (i, patch) in options.patches.iter().enumerate() {
        if let Some(path) = patch.path.as_deref().filter(|_| patch.patch.is_none()) {
            let reference = Reference {
                field: "spec.source.kustomize.patches[].path",
                path: path.to_string(),
            };
            let file = kustomize::resolve(app, &reference).map_err(RenderFailure::Input)?;
            if !root.join(&file).is_file() {
                return Err(RenderFailure::Input(format!(
                    "spec.source.kustomize.patches[{i}].path {path:?}: there is no file {file}"
                )));
            }
            inputs.insert(file);
        }
    }
    if app.is_empty() {
        let copy = checkout.writable_copy()?;
        edit_kustomization(copy.path(), options, &components)?;
        return Ok((tools.kustomize_build(copy.path(), "")?, inputs));
    }
    let _reading = checkout.read_lock();
    let edited = edited_copy(root, app, options, &components)?;
    Ok((tools.kustomize_build(root, &edited)?, inputs))
}

/// The components to add, checked to stay inside the repository, and
/// without those missing when `ignoreMissingComponents` is set.
fn components(
    root: &Path,
    app: &str,
    options: &KustomizeSource,
    inputs: &mut BTreeSet<String>,
) -> Result<Vec<String>, RenderFailure> {
    let mut out = Vec::new();
    for component in &options.components {
        let reference = Reference {
            field: "spec.source.kustomize.components",
            path: component.clone(),
        };
        let path = kustomize::resolve(app, &reference).map_err(RenderFailure::Input)?;
        if !root.join(&path).is_dir() {
            if options.ignore_missing_components {
                continue;
            }
            return Err(RenderFailure::Input(format!(
                "spec.source.kustomize.components: {component:?} is not a folder of the repository (set ignoreMissingComponents to skip it)"
            )));
        }
        inputs.append(&mut check_references(root, &path)?);
        out.push(component.clone());
    }
    Ok(out)
}

/// Edits the kustomization file of the folder `dir` (on disk) in place.
fn edit_kustomization(
    dir: &Path,
    options: &KustomizeSource,
    components: &[String],
) -> Result<(), RenderFailure> {
    let file = kustomization_file(dir, "").ok_or_else(|| {
        RenderFailure::Internal("the copied folder lost its kustomization".into())
    })?;
    let text = std::fs::read_to_string(&file).map_err(|e| {
        RenderFailure::Internal(format!("cannot read the copied kustomization: {e}"))
    })?;
    let mut kustomization: Value = serde_yaml::from_str(&text)
        .map_err(|e| RenderFailure::Input(format!("the kustomization is not YAML: {e}")))?;
    kustomize::edit(&mut kustomization, options, components).map_err(RenderFailure::Input)?;
    let text = serde_yaml::to_string(&kustomization)
        .map_err(|e| RenderFailure::Internal(format!("cannot write the kustomization: {e}")))?;
    std::fs::write(&file, text)
        .map_err(|e| RenderFailure::Internal(format!("cannot write the kustomization: {e}")))
}

/// Copies the folder `app` of the checkout to a sibling named after the
/// options and edits the copy's kustomization; returns the copy's
/// repository path. A copy made before for the same options is reused.
fn edited_copy(
    root: &Path,
    app: &str,
    options: &KustomizeSource,
    components: &[String],
) -> Result<String, RenderFailure> {
    let key = super::hash_json(&(app, options, components));
    let name = app.rsplit('/').next().unwrap_or(app);
    let edited = format!("{}/{EDITED}{name}-{key:016x}", repo_path::parent(app))
        .trim_start_matches('/')
        .to_string();
    let target = root.join(&edited);
    if target.is_dir() {
        return Ok(edited);
    }
    let internal = |e: std::io::Error| {
        RenderFailure::Internal(format!(
            "cannot copy {app} to apply spec.source.kustomize: {e}"
        ))
    };
    let partial = root.join(format!(
        "{edited}.partial-{}-{}",
        std::process::id(),
        PARTIALS.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    ));
    copy_folder(&root.join(app), &partial).map_err(internal)?;
    let done = edit_kustomization(&partial, options, components).and_then(|()| {
        match std::fs::rename(&partial, &target) {
            // Another render made the same copy meanwhile.
            Err(_) if target.is_dir() => Ok(()),
            other => other.map_err(internal),
        }
    });
    if done.is_err() || partial.exists() {
        let _ = std::fs::remove_dir_all(&partial);
    }
    done.map(|()| edited)
}

/// The prefix of the edited copies of application folders.
const EDITED: &str = ".plumb-kustomize-";

/// Tells apart the partial copies of one process.
static PARTIALS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Copies a folder of the checkout: files, folders, and symbolic links as
/// links (the checkout only holds links that stay inside the repository,
/// and the copy is at the same depth).
fn copy_folder(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::create_dir(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        let kind = entry.file_type()?;
        if kind.is_symlink() {
            std::os::unix::fs::symlink(std::fs::read_link(entry.path())?, &target)?;
        } else if kind.is_dir() {
            copy_folder(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), &target)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(root: &Path, path: &str, text: &str) {
        let file = root.join(path);
        std::fs::create_dir_all(file.parent().expect("has a parent")).expect("mkdir");
        std::fs::write(file, text).expect("write");
    }

    #[test]
    fn references_are_followed_and_escapes_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path();
        write(root, "base/kustomization.yaml", "resources: [cm.yaml]\n");
        write(
            root,
            "overlays/dev/kustomization.yaml",
            "resources: [../../base]\npatches: [{path: p.yaml}]\n",
        );
        let visited = check_references(root, "overlays/dev").expect("inside");
        assert_eq!(
            visited.into_iter().collect::<Vec<_>>(),
            [
                "base",
                "base/cm.yaml",
                "overlays/dev",
                "overlays/dev/p.yaml"
            ]
        );
        write(
            root,
            "base/kustomization.yaml",
            "resources: [cm.yaml, ../../../etc]\n",
        );
        let error = check_references(root, "overlays/dev").expect_err("escapes");
        assert!(
            error.to_string().contains("outside the repository")
                && error.to_string().contains("in base"),
            "{error}"
        );
    }
}
