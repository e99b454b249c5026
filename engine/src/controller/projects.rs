//! The AppProjects applications are checked against: those of the `--apps`
//! files and the objects in `--namespace` (a file's wins over an object's
//! of the same name, as for ApplicationSets), each kept with a hash so that
//! a reconcile can tell a changed project from the one it last compared
//! under. A change of a project requeues its applications.
//!
//! It holds and merges; the rules are `plumb_core::project`'s.

use plumb_core::project::{AppProject, project_of};

use super::*;

/// A project as the controller holds it.
#[derive(Clone, Debug)]
pub(super) struct Known {
    pub(super) project: Arc<AppProject>,
    /// A hash of its spec: part of the key that skips an unchanged
    /// comparison.
    pub(super) hash: u64,
}

impl Known {
    fn new(project: AppProject) -> (String, Known) {
        let hash = hash_json(&project.spec);
        (
            project.name().to_string(),
            Known {
                project: Arc::new(project),
                hash,
            },
        )
    }
}

/// The projects of each source, by name.
#[derive(Default)]
pub(super) struct Projects {
    files: BTreeMap<String, Known>,
    cluster: BTreeMap<String, Known>,
}

impl Projects {
    /// The project of that name, if one exists.
    pub(super) fn get(&self, name: &str) -> Option<Known> {
        self.files
            .get(name)
            .or_else(|| self.cluster.get(name))
            .cloned()
    }

    /// Whether an `--apps` file defines the project `name`.
    pub(super) fn in_files(&self, name: &str) -> bool {
        self.files.contains_key(name)
    }

    /// Every project by name, `default` as assumed when none of that name
    /// exists.
    pub(super) fn list(&self, home: &str) -> Vec<AppProject> {
        let mut out: BTreeMap<&str, AppProject> = BTreeMap::new();
        for (name, known) in self.cluster.iter().chain(&self.files) {
            out.insert(name, (*known.project).clone());
        }
        out.entry(plumb_core::project::DEFAULT_PROJECT)
            .or_insert_with(|| AppProject::default_in(home));
        out.into_values().collect()
    }

    fn hashes(&self) -> BTreeMap<String, u64> {
        self.cluster
            .iter()
            .chain(&self.files)
            .map(|(name, k)| (name.clone(), k.hash))
            .collect()
    }

    /// Takes one update in; returns the names of the projects whose
    /// effective spec changed (added, edited or removed).
    pub(super) fn apply(&mut self, update: SourceUpdate) -> BTreeSet<String> {
        let before = self.hashes();
        match update {
            SourceUpdate::ProjectFiles(Ok(projects)) => {
                self.files = projects.into_iter().map(Known::new).collect();
            }
            SourceUpdate::ProjectFiles(Err(e)) => {
                tracing::error!(error = %e, "cannot read the AppProjects of --apps; keeping those read before");
            }
            SourceUpdate::ProjectClusterAll(projects) => {
                self.cluster = projects.into_iter().map(Known::new).collect();
            }
            SourceUpdate::ProjectCluster(name, Some(project)) => {
                let (_, known) = Known::new(*project);
                self.cluster.insert(name, known);
            }
            SourceUpdate::ProjectCluster(name, None) => {
                self.cluster.remove(&name);
            }
            _ => {}
        }
        let after = self.hashes();
        before
            .keys()
            .chain(after.keys())
            .filter(|name| before.get(*name) != after.get(*name))
            .cloned()
            .collect()
    }
}

impl Inner {
    /// Takes project updates in and requeues the applications of every
    /// project that changed.
    pub(super) fn apply_project_updates(&self, updates: Vec<SourceUpdate>) {
        let changed: BTreeSet<String> = {
            let mut projects = self
                .projects
                .write()
                .expect("projects lock is never poisoned");
            updates
                .into_iter()
                .flat_map(|u| projects.apply(u))
                .collect()
        };
        if changed.is_empty() {
            return;
        }
        tracing::info!(projects = ?changed, "AppProjects changed; their applications are compared again");
        let apps: Vec<String> = self
            .apps
            .read()
            .expect("app map lock is never poisoned")
            .iter()
            .filter(|(_, slot)| changed.contains(project_of(&slot.declared().app)))
            .map(|(name, _)| name.clone())
            .collect();
        for name in apps {
            self.enqueue(&name);
        }
    }

    /// The project an application names, if it exists.
    pub(super) fn project(&self, app: &plumb_core::model::Application) -> Option<Known> {
        self.projects
            .read()
            .expect("projects lock is never poisoned")
            .get(project_of(app))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn project(name: &str, repos: &[&str]) -> AppProject {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": name}, "spec": {"sourceRepos": repos}
        }))
        .expect("a project")
    }

    #[test]
    fn a_file_wins_and_only_real_changes_are_reported() {
        let mut projects = Projects::default();
        let changed = projects.apply(SourceUpdate::ProjectClusterAll(vec![
            project("a", &["x"]),
            project("b", &["x"]),
        ]));
        assert_eq!(changed, BTreeSet::from(["a".into(), "b".into()]));
        // The same list again changes nothing.
        let same = projects.apply(SourceUpdate::ProjectClusterAll(vec![
            project("a", &["x"]),
            project("b", &["x"]),
        ]));
        assert!(same.is_empty());
        let changed = projects.apply(SourceUpdate::ProjectFiles(Ok(vec![project("a", &["y"])])));
        assert_eq!(changed, BTreeSet::from(["a".into()]));
        assert_eq!(
            projects.get("a").expect("a").project.spec.source_repos,
            ["y"]
        );
        let changed = projects.apply(SourceUpdate::ProjectCluster("b".into(), None));
        assert_eq!(changed, BTreeSet::from(["b".into()]));
        assert!(projects.get("b").is_none());
        let names: Vec<String> = projects
            .list("plumb")
            .iter()
            .map(|p| p.name().to_string())
            .collect();
        assert_eq!(names, ["a", "default"]);
    }
}
