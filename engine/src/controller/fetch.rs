//! Fetch triage: one fetch per repository (bounded in time), one poller per
//! repository, and after a fetch the applications a commit changed first.

use super::error::ReconcileError;
use super::*;

/// Whether the repository file `changed` lies in the application folder
/// `path` (`""`, `.` and `/` name the repository root).
pub(super) fn path_contains(path: &str, changed: &str) -> bool {
    let folder = path.trim_start_matches("./").trim_matches('/');
    folder.is_empty()
        || folder == "."
        || changed == folder
        || changed
            .strip_prefix(folder)
            .is_some_and(|rest| rest.starts_with('/'))
}

impl Inner {
    pub(super) fn apps_on(&self, url: &str) -> Vec<String> {
        let apps = self.apps.read().expect("app map lock is never poisoned");
        apps.iter()
            .filter(|(_, slot)| {
                let d = slot
                    .declared
                    .read()
                    .expect("declared lock is never poisoned");
                d.app.spec.all_sources().iter().any(|s| {
                    s.chart_name().is_none()
                        && normalize_url(&s.repo_url).ok().as_deref() == Some(url)
                })
            })
            .map(|(n, _)| n.clone())
            .collect()
    }

    /// Fetches a repository, giving up after `--fetch-timeout` (or when
    /// Plumb stops): the fetch is told to stop, and nothing waits for it.
    pub(super) async fn fetch_now(self: &Arc<Self>, url: &str) -> Result<(), ReconcileError> {
        let result = self.fetch_once(url).await;
        let mut errors = self
            .fetch_errors
            .lock()
            .expect("fetch error lock is never poisoned");
        match &result {
            Ok(()) => {
                errors.remove(url);
            }
            Err(ReconcileError::Cancelled) => {}
            Err(e) => {
                errors.insert(url.to_string(), e.to_string());
            }
        }
        result
    }

    /// The error of the last fetch of `url`, while it is failing.
    pub(super) fn fetch_error(&self, url: &str) -> Option<String> {
        self.fetch_errors
            .lock()
            .expect("fetch error lock is never poisoned")
            .get(url)
            .cloned()
    }

    async fn fetch_once(self: &Arc<Self>, url: &str) -> Result<(), ReconcileError> {
        let repos = Arc::clone(&self.repos);
        let url_owned = url.to_string();
        let interrupt = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&interrupt);
        let metrics = Arc::clone(&self.options.metrics);
        let task = tokio::task::spawn_blocking(move || {
            let began = std::time::Instant::now();
            let fetched = repos.fetch_interruptible(&url_owned, &flag);
            metrics.fetched(&url_owned, began.elapsed().as_secs_f64());
            fetched
        });
        let timeout = self.options.fetch_timeout;
        let result = tokio::select! {
            joined = tokio::time::timeout(timeout, task) => joined,
            () = self.cancel.cancelled() => {
                interrupt.store(true, Ordering::SeqCst);
                return Err(ReconcileError::Cancelled);
            }
        };
        match result {
            Ok(joined) => Ok(joined.map_err(|_| ReconcileError::Task("fetch"))??),
            Err(_) => {
                interrupt.store(true, Ordering::SeqCst);
                Err(ReconcileError::FetchTimeout {
                    url: url.to_string(),
                    timeout,
                })
            }
        }
    }

    /// Fetches a repository the first time any application needs it; later
    /// fetches happen on the poll interval, once per repository.
    pub(super) async fn ensure_fetched(self: &Arc<Self>, url: &str) -> Result<(), ReconcileError> {
        let cell = {
            let mut fetched = self
                .fetched
                .lock()
                .expect("fetch map lock is never poisoned");
            Arc::clone(fetched.entry(url.to_string()).or_default())
        };
        let result = cell
            .get_or_try_init(|| async { self.fetch_now(url).await })
            .await
            .map(|_| ());
        if result.is_ok() {
            self.ensure_poller(url);
        }
        result
    }

    pub(super) fn ensure_poller(self: &Arc<Self>, url: &str) {
        if !self
            .pollers
            .lock()
            .expect("poller set lock is never poisoned")
            .insert(url.to_string())
        {
            return;
        }
        let weak = Arc::downgrade(self);
        let url = url.to_string();
        let interval = self.options.repo_poll_interval;
        tokio::spawn(async move {
            loop {
                // Jitter spreads the fetches of many repositories.
                let jitter = rand::rng().random_range(0.9..1.1);
                tokio::time::sleep(interval.mul_f64(jitter)).await;
                let Some(inner) = weak.upgrade() else { return };
                if inner.cancel.is_cancelled() {
                    return;
                }
                let apps = inner.apps_on(&url);
                if apps.is_empty() && !inner.appsets.reads_repo(&url) {
                    inner
                        .pollers
                        .lock()
                        .expect("poller set lock is never poisoned")
                        .remove(&url);
                    return;
                }
                if let Err(e) = inner.fetch_now(&url).await {
                    tracing::warn!(url = %url, error = %e, "poll fetch failed");
                }
                inner.appsets_fetched(&url).await;
                inner.refresh_after_fetch(&url, apps).await;
            }
        });
    }

    /// Queues the applications on `url` after a fetch: first those whose
    /// folder the new commit changed (or that have no revision yet), then
    /// the rest, which still need their status moved to the new revision.
    /// With thousands of applications on one repository, the one a commit
    /// touched goes live without waiting for all the others.
    pub(super) async fn refresh_after_fetch(self: &Arc<Self>, url: &str, apps: Vec<String>) {
        let mut several = Vec::new();
        let wanted: Vec<(String, String, String, String)> = apps
            .into_iter()
            .filter_map(|name| {
                let slot = self.slot(&name)?;
                let spec = slot
                    .declared
                    .read()
                    .expect("declared lock is never poisoned")
                    .app
                    .spec
                    .clone();
                // Which of several sources changed is not worth working
                // out here: such an application goes first.
                if spec.is_multi_source() {
                    several.push(name);
                    return None;
                }
                let source = spec.source?;
                let revision = slot
                    .status
                    .read()
                    .expect("status lock is never poisoned")
                    .sync
                    .revision
                    .clone();
                Some((
                    name,
                    source.target_revision.unwrap_or_default(),
                    source.path.unwrap_or_default(),
                    revision,
                ))
            })
            .collect();
        let repos = Arc::clone(&self.repos);
        let url = url.to_string();
        let split = tokio::task::spawn_blocking(move || {
            // One resolve and one tree diff per (target, deployed revision).
            let mut changes: HashMap<(String, String), Option<Vec<String>>> = HashMap::new();
            let (mut first, mut rest) = (Vec::new(), Vec::new());
            for (name, target, path, deployed) in wanted {
                let changed = changes
                    .entry((target.clone(), deployed.clone()))
                    .or_insert_with(|| {
                        if deployed.is_empty() {
                            return None;
                        }
                        let now = repos.resolve(&url, &target).ok()?;
                        if now == deployed {
                            return Some(Vec::new());
                        }
                        repos.changed_paths(&url, &deployed, &now).ok()
                    });
                match changed {
                    Some(paths) if !paths.iter().any(|p| path_contains(&path, p)) => {
                        rest.push(name);
                    }
                    _ => first.push(name),
                }
            }
            (first, rest)
        })
        .await;
        let Ok((first, rest)) = split else { return };
        for name in several.iter().chain(&first) {
            self.enqueue_urgent(name);
        }
        for name in &rest {
            self.enqueue(name);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::path_contains;

    #[test]
    fn a_changed_file_belongs_to_the_folder_it_is_in() {
        assert!(path_contains("apps/a", "apps/a/cm.yaml"));
        assert!(path_contains("./apps/a/", "apps/a/sub/cm.yaml"));
        assert!(path_contains("apps/a", "apps/a"));
        assert!(!path_contains("apps/a", "apps/ab/cm.yaml"));
        assert!(!path_contains("apps/a", "apps/b/cm.yaml"));
        for root in ["", ".", "/", "./"] {
            assert!(path_contains(root, "anything/at/all.yaml"), "{root:?}");
        }
    }
}
