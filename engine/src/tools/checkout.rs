//! Throw-away checkouts of one commit for tools that read files from disk
//! (`helm template`, `kustomize build`), kept under one root folder and
//! reused while the commit stays the same.
//!
//! Rules:
//!
//! - A checkout is keyed by the normalized repository URL and the full
//!   commit SHA (a branch name is resolved first, so a moved branch never
//!   hits a stale checkout). It is written by [`RepoCache::checkout`], the
//!   only code that reads git, into `<root>/<commit>-<n>.partial` and renamed
//!   to `<root>/<commit>-<n>` once complete: a crash or a failed build never
//!   leaves a half-written checkout where a tool could find it.
//! - Two callers asking for the same key at once build it once: the second
//!   waits for the first.
//! - When more than `max_kept` checkouts exist, the least recently used
//!   ones nobody holds (no [`Arc<Checkout>`] outside the cache) are removed;
//!   a checkout in use is never removed under its user.
//! - Everything under the root belongs to this cache: [`Checkouts::new`]
//!   removes whatever a previous process left there.
//!
//! # Writing into a checkout
//!
//! A checkout is shared by every application on that commit, so it is
//! read-only by agreement, with two ways out:
//!
//! - A change that is the same for every application at this commit (`helm
//!   dependency build` filling a chart's `charts/` from its `Chart.lock`) is
//!   made in place under [`Checkout::write_lock`]. Every tool run that reads
//!   a checkout in place holds [`Checkout::read_lock`] meanwhile, so it
//!   never sees half-written files. Take the lock before asking the tool
//!   runner for a slot, and never wait for a lock while holding a slot.
//! - A change of one application's own (`kustomize edit set image`, values
//!   written next to a chart) goes into a [`WritableCopy`], a private copy
//!   of the whole checkout removed when dropped.
//!
//! Every function here blocks (disk, git): call it from `spawn_blocking`,
//! and drop a [`WritableCopy`] there too (dropping removes a folder).

use std::collections::HashMap;
use std::fmt;
use std::ops::Deref;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{
    Arc, Condvar, Mutex, MutexGuard, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard,
};

use crate::source::{RepoCache, SourceError, normalize_url};

/// Suffix of a checkout still being written.
const PARTIAL_SUFFIX: &str = ".partial";
/// Infix of a private copy's folder name.
const COPY_INFIX: &str = ".copy-";

/// The error returned by [`Checkouts`] and [`Checkout::writable_copy`].
#[derive(Debug, thiserror::Error)]
pub enum CheckoutError {
    /// The commit could not be resolved or written out: not fetched, no
    /// such revision, a symbolic link leaving the repository, a disk error.
    #[error(transparent)]
    Source(#[from] SourceError),
    /// A file system operation on the checkouts folder failed.
    #[error("{action} {path} failed; check the permissions and free space of Plumb's data folder")]
    Io {
        /// What Plumb was doing.
        action: &'static str,
        /// The path it was doing it to.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
}

impl CheckoutError {
    /// Whether trying again later may succeed without anyone changing
    /// anything.
    pub fn is_spurious(&self) -> bool {
        match self {
            CheckoutError::Source(err) => err.is_spurious(),
            CheckoutError::Io { .. } => false,
        }
    }
}

/// `(normalized URL, full commit SHA)`.
type Key = (String, String);

/// A cache of checkouts under one root folder; share it in an `Arc`.
pub struct Checkouts {
    root: PathBuf,
    max_kept: usize,
    state: Mutex<State>,
    /// Signalled whenever a build ends, however it ends.
    built: Condvar,
    /// Numbers folder names, so no two folders ever share one.
    names: Arc<AtomicU64>,
    /// Builds started (the tests watch it).
    builds: AtomicU64,
}

#[derive(Default)]
struct State {
    entries: HashMap<Key, Entry>,
    /// A logical clock for least-recently-used order.
    tick: u64,
}

enum Entry {
    /// A caller is writing it; others wait on [`Checkouts::built`].
    Building,
    /// Complete; the cache's own reference, and when it was last handed out.
    Ready {
        checkout: Arc<Checkout>,
        last_used: u64,
    },
}

impl fmt::Debug for Checkouts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Not the keys: a URL may carry credentials.
        f.debug_struct("Checkouts")
            .field("root", &self.root)
            .field("max_kept", &self.max_kept)
            .finish_non_exhaustive()
    }
}

impl Checkouts {
    /// A cache keeping its checkouts under `root` (created if missing),
    /// holding at most `max_kept` that nobody uses.
    ///
    /// Everything already under `root` is removed: checkouts, partial ones and
    /// copies a previous process left.
    ///
    /// # Errors
    ///
    /// [`CheckoutError::Io`] when `root` cannot be created or emptied.
    pub fn new(root: impl Into<PathBuf>, max_kept: usize) -> Result<Checkouts, CheckoutError> {
        let root = root.into();
        std::fs::create_dir_all(&root).map_err(io("creating the checkouts folder", &root))?;
        let entries =
            std::fs::read_dir(&root).map_err(io("listing the checkouts folder", &root))?;
        for entry in entries {
            let entry = entry.map_err(io("listing the checkouts folder", &root))?;
            let path = entry.path();
            let is_dir = entry.file_type().is_ok_and(|kind| kind.is_dir());
            let removed = if is_dir {
                std::fs::remove_dir_all(&path)
            } else {
                std::fs::remove_file(&path)
            };
            removed.map_err(io("removing the leftover checkout", &path))?;
        }
        Ok(Checkouts {
            root,
            max_kept,
            state: Mutex::new(State::default()),
            built: Condvar::new(),
            names: Arc::new(AtomicU64::new(0)),
            builds: AtomicU64::new(0),
        })
    }

    /// The checkout of `commit` of `url`, written from `repos` unless one is
    /// kept already. `commit` is anything [`RepoCache::resolve`] accepts; it
    /// is resolved first (no network access), and the checkout is that of
    /// the full SHA.
    ///
    /// Keep the returned `Arc` while a tool uses the folder, and drop it
    /// then: a held checkout is never removed, and one nobody holds may be
    /// removed by the next `get`.
    ///
    /// # Errors
    ///
    /// [`CheckoutError::Source`] with the errors of
    /// [`RepoCache::resolve`] and [`RepoCache::checkout`] (a symbolic link
    /// leaving the repository is [`SourceError::PathEscapes`]), and
    /// [`CheckoutError::Io`] when the folder cannot be written. A failed
    /// build leaves nothing behind and is tried again by the next `get`.
    pub fn get(
        &self,
        repos: &RepoCache,
        url: &str,
        commit: &str,
    ) -> Result<Arc<Checkout>, CheckoutError> {
        let url = normalize_url(url)?;
        let commit = repos.resolve(&url, commit)?;
        let key = (url, commit);

        let mut state = self.lock();
        loop {
            state.tick += 1;
            let tick = state.tick;
            match state.entries.get_mut(&key) {
                Some(Entry::Ready {
                    checkout,
                    last_used,
                }) => {
                    *last_used = tick;
                    return Ok(Arc::clone(checkout));
                }
                Some(Entry::Building) => {
                    state = self
                        .built
                        .wait(state)
                        .unwrap_or_else(PoisonError::into_inner);
                }
                None => break,
            }
        }
        state.entries.insert(key.clone(), Entry::Building);
        drop(state);

        // From here on the entry is ours: however this ends (an error, a
        // panic), the guard takes a leftover `Building` out and wakes the
        // waiters, who then find the checkout or build it themselves.
        let guard = BuildGuard {
            checkouts: self,
            key: &key,
        };
        let path = self.build(repos, &key)?;
        let checkout = Arc::new(Checkout {
            path,
            commit: key.1.clone(),
            lock: RwLock::new(()),
            root: self.root.clone(),
            names: Arc::clone(&self.names),
        });
        let doomed = {
            let mut state = self.lock();
            state.tick += 1;
            let last_used = state.tick;
            state.entries.insert(
                key.clone(),
                Entry::Ready {
                    checkout: Arc::clone(&checkout),
                    last_used,
                },
            );
            self.evict(&mut state)
        };
        drop(guard);
        remove_folders(doomed);
        Ok(checkout)
    }

    /// Removes the least recently used checkouts nobody holds while more than
    /// `max_kept` exist. [`get`](Self::get) does so after every build; this
    /// is for a caller that wants the disk back sooner.
    pub fn prune(&self) {
        let doomed = self.evict(&mut self.lock());
        remove_folders(doomed);
    }

    /// How many complete checkouts the cache holds (held or not).
    pub fn len(&self) -> usize {
        self.lock()
            .entries
            .values()
            .filter(|entry| matches!(entry, Entry::Ready { .. }))
            .count()
    }

    /// Whether the cache holds no complete checkout.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Writes the checkout of `key` into a partial folder and moves it into
    /// place; returns where it is. A failed build leaves nothing behind.
    fn build(&self, repos: &RepoCache, (url, commit): &Key) -> Result<PathBuf, CheckoutError> {
        self.builds.fetch_add(1, Ordering::Relaxed);
        let n = self.names.fetch_add(1, Ordering::Relaxed);
        let short = commit.get(..12).unwrap_or(commit);
        let path = self.root.join(format!("{short}-{n}"));
        let partial = self.root.join(format!("{short}-{n}{PARTIAL_SUFFIX}"));
        // The root may have been removed behind our back; make it again.
        std::fs::create_dir_all(&self.root)
            .map_err(io("creating the checkouts folder", &self.root))?;
        std::fs::create_dir(&partial).map_err(io("creating the checkout folder", &partial))?;
        let result = repos
            .checkout(url, commit, &partial)
            .map_err(CheckoutError::from)
            .and_then(|()| {
                std::fs::rename(&partial, &path)
                    .map_err(io("moving the finished checkout to", &path))
            });
        if result.is_err() {
            remove_folders(vec![partial]);
        }
        result.map(|()| path)
    }

    /// Takes the least recently used checkouts nobody holds out of `state`
    /// while more than `max_kept` are kept; returns their folders, to be
    /// removed once the lock is released.
    fn evict(&self, state: &mut State) -> Vec<PathBuf> {
        let ready = state
            .entries
            .values()
            .filter(|entry| matches!(entry, Entry::Ready { .. }))
            .count();
        let Some(excess) = ready.checked_sub(self.max_kept).filter(|n| *n > 0) else {
            return Vec::new();
        };
        // A count of one is the cache's own reference. Nobody can clone it
        // meanwhile: only the cache has it, and the cache is locked.
        let mut idle: Vec<(u64, Key)> = state
            .entries
            .iter()
            .filter_map(|(key, entry)| match entry {
                Entry::Ready {
                    checkout,
                    last_used,
                } if Arc::strong_count(checkout) == 1 => Some((*last_used, key.clone())),
                _ => None,
            })
            .collect();
        idle.sort();
        idle.into_iter()
            .take(excess)
            .filter_map(|(_, key)| match state.entries.remove(&key) {
                Some(Entry::Ready { checkout, .. }) => Some(checkout.path.clone()),
                _ => None,
            })
            .collect()
    }
}

/// Cleans up after a build of `key`, however it ended.
struct BuildGuard<'a> {
    checkouts: &'a Checkouts,
    key: &'a Key,
}

impl Drop for BuildGuard<'_> {
    fn drop(&mut self) {
        let mut state = self.checkouts.lock();
        if matches!(state.entries.get(self.key), Some(Entry::Building)) {
            state.entries.remove(self.key);
        }
        drop(state);
        self.checkouts.built.notify_all();
    }
}

/// One commit's files in a folder; see the [module documentation](self) on
/// writing into it.
#[derive(Debug)]
pub struct Checkout {
    path: PathBuf,
    commit: String,
    lock: RwLock<()>,
    /// Where private copies go (the cache's root, which it cleans).
    root: PathBuf,
    names: Arc<AtomicU64>,
}

impl Checkout {
    /// The folder holding the commit's tree.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The full SHA of the commit checked out.
    pub fn commit(&self) -> &str {
        &self.commit
    }

    /// Hold while a tool reads the checkout in place, so that no change
    /// made under [`write_lock`](Self::write_lock) is half done meanwhile.
    pub fn read_lock(&self) -> RwLockReadGuard<'_, ()> {
        self.lock.read().unwrap_or_else(PoisonError::into_inner)
    }

    /// Hold while changing the checkout in place, which is only for changes
    /// that are the same for every application at this commit (`helm
    /// dependency build`). Waits for the readers to finish.
    pub fn write_lock(&self) -> RwLockWriteGuard<'_, ()> {
        self.lock.write().unwrap_or_else(PoisonError::into_inner)
    }

    /// A private copy of the whole checkout for changes of one
    /// application's own, removed when dropped. Files keep their
    /// permissions and symbolic links stay links (relative ones, so they
    /// point inside the copy).
    ///
    /// Takes [`read_lock`](Self::read_lock) while copying: do not call it
    /// while holding a lock of this checkout.
    ///
    /// # Errors
    ///
    /// [`CheckoutError::Io`] when the copy cannot be written; nothing is
    /// left behind then.
    pub fn writable_copy(&self) -> Result<WritableCopy, CheckoutError> {
        let _reading = self.read_lock();
        let n = self.names.fetch_add(1, Ordering::Relaxed);
        let name = self
            .path
            .file_name()
            .map(|name| name.to_string_lossy().into_owned())
            .unwrap_or_default();
        let copy = WritableCopy {
            path: self.root.join(format!("{name}{COPY_INFIX}{n}")),
        };
        std::fs::create_dir(&copy.path).map_err(io("creating the copy folder", &copy.path))?;
        // On error `copy` is dropped, which removes what was written.
        copy_tree(&self.path, &copy.path)?;
        Ok(copy)
    }
}

impl Deref for Checkout {
    type Target = Path;

    fn deref(&self) -> &Path {
        &self.path
    }
}

impl AsRef<Path> for Checkout {
    fn as_ref(&self) -> &Path {
        &self.path
    }
}

/// A private, writable copy of a [`Checkout`]; its folder is removed when
/// it is dropped (drop it on a blocking thread).
#[derive(Debug)]
pub struct WritableCopy {
    path: PathBuf,
}

impl WritableCopy {
    /// The copy's folder.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Deref for WritableCopy {
    type Target = Path;

    fn deref(&self) -> &Path {
        &self.path
    }
}

impl AsRef<Path> for WritableCopy {
    fn as_ref(&self) -> &Path {
        &self.path
    }
}

impl Drop for WritableCopy {
    fn drop(&mut self) {
        remove_folders(vec![self.path.clone()]);
    }
}

/// Copies the contents of folder `from` into the existing empty folder `to`:
/// folders, files with their permissions, symbolic links as links.
fn copy_tree(from: &Path, to: &Path) -> Result<(), CheckoutError> {
    let mut pending = vec![(from.to_owned(), to.to_owned())];
    while let Some((source, dest)) = pending.pop() {
        let entries = std::fs::read_dir(&source).map_err(io("reading", &source))?;
        for entry in entries {
            let entry = entry.map_err(io("reading", &source))?;
            let (source, dest) = (entry.path(), dest.join(entry.file_name()));
            let kind = entry.file_type().map_err(io("reading", &source))?;
            if kind.is_symlink() {
                let target =
                    std::fs::read_link(&source).map_err(io("reading the link", &source))?;
                std::os::unix::fs::symlink(target, &dest)
                    .map_err(io("creating the symbolic link", &dest))?;
            } else if kind.is_dir() {
                std::fs::create_dir(&dest).map_err(io("creating the folder", &dest))?;
                pending.push((source, dest));
            } else {
                std::fs::copy(&source, &dest).map_err(io("copying to", &dest))?;
            }
        }
    }
    Ok(())
}

/// Removes folders, logging (not failing on) what cannot be removed: the
/// next [`Checkouts::new`] removes it.
fn remove_folders(folders: Vec<PathBuf>) {
    for folder in folders {
        if let Err(err) = std::fs::remove_dir_all(&folder)
            && err.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!(path = %folder.display(), %err, "could not remove a checkout folder");
        }
    }
}

fn io(action: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> CheckoutError {
    let path = path.to_owned();
    move |source| CheckoutError::Io {
        action,
        path,
        source,
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Barrier;

    use super::*;

    use crate::source::tests::git;

    /// An upstream repository, a fetched cache of it and a checkouts root.
    struct Fixture {
        upstream: tempfile::TempDir,
        _data: tempfile::TempDir,
        repos: RepoCache,
        root: PathBuf,
        url: String,
    }

    impl Fixture {
        /// Writes `content` to `path` upstream, commits, fetches; returns the
        /// commit.
        fn commit(&self, path: &str, content: &str) -> String {
            let file = self.upstream.path().join(path);
            std::fs::create_dir_all(file.parent().expect("parent")).expect("mkdir");
            std::fs::write(file, content).expect("write");
            git(self.upstream.path(), &["add", "-A"]);
            git(self.upstream.path(), &["commit", "-q", "-m", path]);
            self.repos.fetch(&self.url).expect("fetch");
            git(self.upstream.path(), &["rev-parse", "HEAD"])
        }

        fn checkouts(&self, max_kept: usize) -> Checkouts {
            Checkouts::new(&self.root, max_kept).expect("new")
        }

        /// The names of the folders under the root, sorted.
        fn folders(&self) -> Vec<String> {
            let mut names: Vec<String> = std::fs::read_dir(&self.root)
                .expect("root")
                .map(|entry| {
                    entry
                        .expect("entry")
                        .file_name()
                        .to_string_lossy()
                        .into_owned()
                })
                .collect();
            names.sort();
            names
        }
    }

    fn fixture() -> (Fixture, String) {
        let upstream = tempfile::tempdir().expect("tempdir");
        git(upstream.path(), &["init", "-q"]);
        let data = tempfile::tempdir().expect("tempdir");
        let fx = Fixture {
            url: upstream.path().display().to_string(),
            repos: RepoCache::new(data.path().join("repos")),
            root: data.path().join("checkouts"),
            upstream,
            _data: data,
        };
        let first = fx.commit("chart/Chart.yaml", "name: web\n");
        (fx, first)
    }

    fn read(dir: &Path, path: &str) -> String {
        std::fs::read_to_string(dir.join(path)).expect(path)
    }

    #[test]
    fn get_reuses_the_checkout_while_the_commit_is_the_same() {
        let (fx, first) = fixture();
        let checkouts = fx.checkouts(4);
        let by_branch = checkouts.get(&fx.repos, &fx.url, "main").expect("main");
        assert_eq!(by_branch.commit(), first);
        assert_eq!(read(by_branch.path(), "chart/Chart.yaml"), "name: web\n");
        let by_sha = checkouts.get(&fx.repos, &fx.url, &first).expect("sha");
        assert!(Arc::ptr_eq(&by_branch, &by_sha), "one checkout per commit");
        let by_path = checkouts
            .get(&fx.repos, &format!("file://{}/", fx.url), &first[..8])
            .expect("another spelling of the URL and SHA");
        assert!(Arc::ptr_eq(&by_branch, &by_path));

        // The branch moves: a new checkout, the old one untouched.
        let second = fx.commit("chart/Chart.yaml", "name: web\nversion: 2\n");
        let moved = checkouts.get(&fx.repos, &fx.url, "main").expect("main");
        assert_eq!(moved.commit(), second);
        assert_ne!(moved.path(), by_branch.path());
        assert_eq!(read(&moved, "chart/Chart.yaml"), "name: web\nversion: 2\n");
        assert_eq!(read(&by_branch, "chart/Chart.yaml"), "name: web\n");
        assert_eq!(checkouts.len(), 2);
        assert_eq!(checkouts.builds.load(Ordering::Relaxed), 2);
        assert!(
            fx.folders()
                .iter()
                .all(|name| !name.ends_with(PARTIAL_SUFFIX)),
            "{:?}",
            fx.folders()
        );
    }

    #[test]
    fn concurrent_gets_of_one_commit_build_it_once() {
        let (fx, first) = fixture();
        let checkouts = fx.checkouts(4);
        let threads = 8;
        let start = Barrier::new(threads);
        let got: Vec<Arc<Checkout>> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..threads)
                .map(|_| {
                    scope.spawn(|| {
                        start.wait();
                        checkouts.get(&fx.repos, &fx.url, &first)
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|handle| handle.join().expect("thread").expect("get"))
                .collect()
        });
        assert!(got.iter().all(|checkout| Arc::ptr_eq(checkout, &got[0])));
        assert_eq!(checkouts.builds.load(Ordering::Relaxed), 1);
        assert_eq!(fx.folders().len(), 1, "{:?}", fx.folders());
    }

    #[test]
    fn old_checkouts_are_removed_beyond_max_kept_but_never_while_held() {
        let (fx, first) = fixture();
        let second = fx.commit("b.yaml", "b\n");
        let third = fx.commit("c.yaml", "c\n");
        let checkouts = fx.checkouts(1);

        let one = checkouts.get(&fx.repos, &fx.url, &first).expect("first");
        let two = checkouts.get(&fx.repos, &fx.url, &second).expect("second");
        assert!(one.path().is_dir() && two.path().is_dir(), "both are held");
        assert_eq!(checkouts.len(), 2);

        let one_path = one.path().to_owned();
        drop(one);
        let three = checkouts.get(&fx.repos, &fx.url, &third).expect("third");
        assert!(!one_path.exists(), "the idle first one went");
        assert!(two.path().is_dir() && three.path().is_dir());
        assert_eq!(checkouts.len(), 2);

        let (two_path, three_path) = (two.path().to_owned(), three.path().to_owned());
        drop(two);
        drop(three);
        checkouts.prune();
        assert_eq!(checkouts.len(), 1);
        assert!(!two_path.exists(), "the least recently used one went");
        assert!(three_path.is_dir());
        assert_eq!(fx.folders().len(), 1);
    }

    #[test]
    fn leftovers_of_a_previous_process_are_removed_at_new() {
        let (fx, first) = fixture();
        let before = fx.checkouts(4);
        let kept = before.get(&fx.repos, &fx.url, &first).expect("get");
        std::fs::create_dir_all(fx.root.join("abc-7.partial/chart")).expect("mkdir");
        std::fs::write(fx.root.join("stray-file"), "x").expect("write");
        assert_eq!(fx.folders().len(), 3);
        drop(kept);
        drop(before);

        let after = fx.checkouts(4);
        assert!(fx.folders().is_empty(), "{:?}", fx.folders());
        assert!(after.is_empty());
        let again = after.get(&fx.repos, &fx.url, &first).expect("get");
        assert_eq!(read(&again, "chart/Chart.yaml"), "name: web\n");
    }

    #[test]
    fn a_failed_build_leaves_nothing_and_is_tried_again() {
        let (fx, _) = fixture();
        std::os::unix::fs::symlink("../../etc/passwd", fx.upstream.path().join("chart/evil"))
            .expect("symlink");
        let evil = fx.commit("chart/values.yaml", "a: 1\n");
        let checkouts = fx.checkouts(4);
        for _ in 0..2 {
            let err = checkouts
                .get(&fx.repos, &fx.url, &evil)
                .expect_err("escapes");
            assert!(
                matches!(err, CheckoutError::Source(SourceError::PathEscapes { .. })),
                "{err}"
            );
            assert!(
                err.to_string().contains("chart/evil -> ../../etc/passwd"),
                "{err}"
            );
            assert!(fx.folders().is_empty(), "{:?}", fx.folders());
        }
        assert_eq!(checkouts.builds.load(Ordering::Relaxed), 2);
        let err = checkouts
            .get(&fx.repos, &fx.url, "no-such-branch")
            .expect_err("unknown");
        assert!(matches!(
            err,
            CheckoutError::Source(SourceError::RevisionNotFound { .. })
        ));
    }

    #[test]
    fn a_writable_copy_is_private_and_removed_when_dropped() {
        let (fx, _) = fixture();
        std::os::unix::fs::symlink("Chart.yaml", fx.upstream.path().join("chart/link.yaml"))
            .expect("symlink");
        let commit = fx.commit("chart/values.yaml", "replicas: 1\n");
        let checkouts = fx.checkouts(4);
        let checkout = checkouts.get(&fx.repos, &fx.url, &commit).expect("get");

        let copy = checkout.writable_copy().expect("copy");
        assert_ne!(copy.path(), checkout.path());
        assert_eq!(read(&copy, "chart/values.yaml"), "replicas: 1\n");
        assert_eq!(
            std::fs::read_link(copy.join("chart/link.yaml")).expect("still a link"),
            Path::new("Chart.yaml")
        );
        std::fs::write(copy.join("chart/values.yaml"), "replicas: 3\n").expect("write");
        std::fs::create_dir(copy.join("chart/charts")).expect("mkdir");
        assert_eq!(read(&checkout, "chart/values.yaml"), "replicas: 1\n");
        assert!(!checkout.join("chart/charts").exists());

        let copy_path = copy.path().to_owned();
        drop(copy);
        assert!(!copy_path.exists());
    }

    #[test]
    fn the_write_lock_waits_for_readers() {
        let (fx, first) = fixture();
        let checkouts = fx.checkouts(4);
        let checkout = checkouts.get(&fx.repos, &fx.url, &first).expect("get");
        let reading = checkout.read_lock();
        assert!(checkout.lock.try_write().is_err(), "a reader holds it");
        let second_reader = checkout.lock.try_read().expect("readers share it");
        drop(reading);
        drop(second_reader);
        let _writing = checkout.write_lock();
        assert!(
            checkout.lock.try_read().is_err(),
            "the writer holds it alone"
        );
    }
}
