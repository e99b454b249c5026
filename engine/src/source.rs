//! The git repository cache: one bare mirror per repository URL, fetched with
//! gix and shared by every application on it; revisions resolved and trees
//! read straight from the object database.
//!
//! This module is not a working-tree manager (the mirrors have no working
//! tree; [`RepoCache::checkout`] writes one commit's files into a folder the
//! caller owns, and `tools::checkout` keeps those), not a renderer (it hands
//! back bytes, not manifests) and not a scheduler (callers decide when to
//! fetch; every function here blocks and belongs in `spawn_blocking`).
//!
//! Layout and rules:
//!
//! - Each repository lives in `<root>/<sha1 of the normalized URL>.git`, a bare
//!   repository in mirror layout: the remote's `refs/heads/*` and `refs/tags/*`
//!   are stored under the same names locally, and `HEAD` is a symbolic ref to
//!   the remote's default branch. Every fetch passes these refspecs explicitly
//!   (nothing about the remote is written to the repository's config, so no URL
//!   and no credential ever lands on disk).
//! - Branches and tags deleted upstream are pruned on the next fetch, so a
//!   deleted branch stops resolving instead of silently pinning its last commit.
//! - A clone is made in `<hash>.git.partial` and renamed into place only once it
//!   succeeded: a failed or interrupted clone never leaves a half-written
//!   repository behind. A cached repository that cannot be opened any more is
//!   removed and cloned again by the next fetch.
//! - One process owns a cache root; two processes sharing one root are not
//!   supported.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use gix::ObjectId;
use gix::bstr::{BStr, BString, ByteSlice};
use gix::objs::tree::EntryKind;
use gix::protocol::handshake::Ref;
use gix::refs::transaction::{Change, LogChange, PreviousValue, RefEdit, RefLog};
use gix::remote::fetch::RefMap;

use crate::model::SourceFile;

/// Fetch every branch into the same name locally (mirror layout).
const HEADS_REFSPEC: &str = "+refs/heads/*:refs/heads/*";
/// Fetch every tag into the same name locally, moving tags that moved upstream.
const TAGS_REFSPEC: &str = "+refs/tags/*:refs/tags/*";
/// How often a caller waiting for another fetch of the same URL checks
/// whether it should give up.
const LOCK_POLL: std::time::Duration = std::time::Duration::from_millis(20);
/// Suffix of a clone that is still being written.
const PARTIAL_SUFFIX: &str = ".git.partial";
/// The user name sent with a token when none was configured; forges that
/// authenticate by token (GitHub, Gitea) accept any non-empty name.
const DEFAULT_TOKEN_USERNAME: &str = "git";
/// How many symbolic links resolving one link may pass through, as with
/// Linux's `MAXSYMLINKS`: past it the kernel refuses to follow the path.
const MAX_LINK_HOPS: usize = 40;
/// How many tree entries (plus one per tree) the [`TreeCache`] holds at most.
/// An entry takes about 32 bytes plus its name and a tree about 150 bytes
/// more, so this is some 9 MB held in large trees and at most about 20 MB held
/// in one-entry trees. Ten thousand one-file applications in one repository
/// count about 30,000 (2 MB), so several revisions of such a layout fit.
const TREE_CACHE_ENTRIES: usize = 200_000;

/// The error returned by [`RepoCache`] and [`normalize_url`].
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// The repository URL or local path could not be understood.
    #[error(
        "invalid repository URL {url:?}: {reason}; use an https://, ssh:// or file:// URL or a local path"
    )]
    InvalidUrl {
        /// The URL as given, without credentials.
        url: String,
        /// Why it was rejected.
        reason: String,
    },
    /// Cloning or fetching failed: the network, the server, authentication, or
    /// no repository at that URL. Worth retrying.
    #[error("could not fetch {url}: {message}; check the URL, network access and credentials")]
    Unreachable {
        /// The repository URL, without credentials.
        url: String,
        /// What went wrong, without credentials.
        message: String,
    },
    /// The repository was never fetched into this cache, so nothing can be read from it yet.
    #[error(
        "repository {url} has not been fetched yet; fetch it before resolving revisions or reading files"
    )]
    NotFetched {
        /// The repository URL, without credentials.
        url: String,
    },
    /// No branch, tag or commit of that name exists in the fetched repository.
    #[error(
        "revision {revision:?} not found in {url}: no branch, tag or commit of that name; check targetRevision and that it was pushed"
    )]
    RevisionNotFound {
        /// The repository URL, without credentials.
        url: String,
        /// The revision as asked for.
        revision: String,
    },
    /// A short commit SHA matches more than one commit.
    #[error(
        "revision {revision:?} is ambiguous in {url}: it is the prefix of several commits; use more hex digits"
    )]
    AmbiguousRevision {
        /// The repository URL, without credentials.
        url: String,
        /// The revision as asked for.
        revision: String,
    },
    /// The path does not name a folder in that revision, or a symbolic link in
    /// it cannot be followed.
    #[error(
        "path {path:?} not found at revision {revision} of {url}: {detail}; check the application's path"
    )]
    PathNotFound {
        /// The repository URL, without credentials.
        url: String,
        /// The revision the path was looked up in.
        revision: String,
        /// The path as asked for, or the symbolic link that could not be followed.
        path: String,
        /// What exactly is wrong with it.
        detail: String,
    },
    /// The path, or a symbolic link in the tree, points outside the repository.
    #[error(
        "path {path:?} in {url} leaves the repository (a `..` component, an absolute path or a symbolic link pointing outside); Plumb only reads files inside the repository"
    )]
    PathEscapes {
        /// The repository URL, without credentials.
        url: String,
        /// The offending path, or `link -> target` for a symbolic link.
        path: String,
    },
    /// A tree entry has a name git itself refuses to check out (`..`, a
    /// `/`, `.git`).
    #[error(
        "{path:?} at revision {revision} of {url} cannot be checked out: {reason}; git refuses such paths too, so fix the repository"
    )]
    UnsafePath {
        /// The repository URL, without credentials.
        url: String,
        /// The revision checked out.
        revision: String,
        /// The entry's repository path.
        path: String,
        /// Why the name is refused.
        reason: &'static str,
    },
    /// The fetch was abandoned (its time was up) before it finished. Worth
    /// retrying.
    #[error("fetching {url} was abandoned before it finished; it is tried again later")]
    Interrupted {
        /// The repository URL, without credentials.
        url: String,
    },
    /// A file that would be rendered is larger than the limit for one
    /// manifest file.
    #[error(
        "{path} at revision {revision} of {url} is {size} bytes, over the {limit}-byte limit for one manifest file (--max-manifest-size); split it or exclude it with directory.exclude"
    )]
    FileTooLarge {
        /// The repository URL, without credentials.
        url: String,
        /// The revision read.
        revision: String,
        /// The file, relative to the application's folder.
        path: String,
        /// Its size in bytes.
        size: u64,
        /// The limit in bytes.
        limit: u64,
    },
    /// The cached copy of the repository could not be read or updated.
    #[error(
        "the cached copy of {url} could not be used ({action}); a hard refresh fetches it again, and removing the cache folder forces a fresh clone"
    )]
    Corrupt {
        /// The repository URL, without credentials.
        url: String,
        /// What Plumb was doing.
        action: String,
        /// The underlying error.
        #[source]
        source: gix::Error,
    },
    /// A file system operation on the cache folder failed.
    #[error(
        "{action} {path} for {url} failed; check the cache folder's permissions and free space"
    )]
    Io {
        /// The repository URL, without credentials.
        url: String,
        /// What Plumb was doing.
        action: &'static str,
        /// The path it was doing it to.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
}

impl SourceError {
    /// Whether trying again later may succeed without anyone changing anything
    /// (network and server failures).
    pub fn is_spurious(&self) -> bool {
        matches!(
            self,
            SourceError::Unreachable { .. } | SourceError::Interrupted { .. }
        )
    }
}

/// Credentials for https repositories. The password may be a token.
///
/// `Debug` never shows the password.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Credentials {
    /// The user name; a placeholder is sent when only a token is given.
    pub username: Option<String>,
    /// The password or token.
    pub password: Option<String>,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

/// Who fetches a URL now: the interrupt flag of that fetch. A fetch whose
/// caller gave up (its interrupt is set) no longer holds the URL, even while
/// its thread is still blocked in a read that never returns: the next fetch
/// may start. The two never share a folder ([`RepoCache::clone_into`] clones
/// into a folder of its own, ref updates take git's lock files), so the
/// abandoned one, if it ever wakes, can only fail.
#[derive(Default)]
struct FetchLock {
    holder: Mutex<Option<Arc<AtomicBool>>>,
}

impl FetchLock {
    /// Takes the URL for the fetch with interrupt flag `me`, unless a fetch
    /// that was not abandoned holds it.
    fn try_acquire(&self, me: &Arc<AtomicBool>) -> bool {
        let mut holder = self.holder.lock().unwrap_or_else(PoisonError::into_inner);
        if holder.as_ref().is_some_and(|h| !h.load(Ordering::SeqCst)) {
            return false;
        }
        *holder = Some(Arc::clone(me));
        true
    }

    /// Gives the URL back, if the fetch `me` still holds it.
    fn release(&self, me: &Arc<AtomicBool>) {
        let mut holder = self.holder.lock().unwrap_or_else(PoisonError::into_inner);
        if holder.as_ref().is_some_and(|h| Arc::ptr_eq(h, me)) {
            *holder = None;
        }
    }
}

/// Releases a [`FetchLock`] when the fetch ends, however it ends.
struct FetchGuard<'a> {
    lock: &'a FetchLock,
    me: Arc<AtomicBool>,
}

impl Drop for FetchGuard<'_> {
    fn drop(&mut self) {
        self.lock.release(&self.me);
    }
}

/// Per-URL state: the fetch lock, the coalescing counters and the open repository.
#[derive(Default)]
struct Slot {
    /// Serialises clones and fetches of this URL (but not with a fetch that
    /// was abandoned).
    fetch_lock: FetchLock,
    /// How many fetches were started; only changed while `fetch_lock` is held.
    started: AtomicU64,
    /// The sequence number (from `started`) of the last fetch that succeeded.
    succeeded: AtomicU64,
    /// Callers inside [`RepoCache::fetch`] waiting for or holding `fetch_lock`.
    waiting: AtomicUsize,
    /// The repository, opened once and replaced after every fetch.
    repo: RwLock<Option<Arc<gix::ThreadSafeRepository>>>,
}

/// The git repository cache: bare mirrors under one root folder, one per URL.
///
/// Which files [`RepoCache::read_files`] reads.
pub struct ReadFilter<'a> {
    /// Descend into sub-folders.
    pub recurse: bool,
    /// Whether a file (path relative to the folder read) is wanted; the
    /// contents of the others are never loaded.
    pub select: &'a (dyn Fn(&str) -> bool + Sync),
    /// The largest wanted file, in bytes; a larger one is an error.
    pub max_file_size: u64,
}

/// A commit as Argo CD's revision metadata shows it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct CommitMetadata {
    /// `Name <email>`.
    pub author: String,
    /// The author's date, RFC 3339 with its offset.
    pub date: String,
    /// The whole message.
    pub message: String,
    /// The tags that point at it.
    pub tags: Vec<String>,
}

/// The error of reading (`action`) the commit `id` of `url`.
fn corrupt_commit(url: &str, id: ObjectId) -> impl Fn(&str, gix::Error) -> SourceError + '_ {
    move |action, source| SourceError::Corrupt {
        url: display_url(url),
        action: format!("{action} of commit {id}"),
        source,
    }
}

/// What a deployment made live ([`RepoCache::changes`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Changes {
    /// Commit times (Unix seconds) of the commits it brought.
    pub commit_times: Vec<i64>,
    /// Whether its commit is a revert.
    pub revert: bool,
}

/// Cheap to share in an `Arc`; every method blocks.
pub struct RepoCache {
    root: PathBuf,
    slots: Mutex<HashMap<String, Arc<Slot>>>,
    credentials: RwLock<Vec<(String, Credentials)>>,
    fetches: AtomicU64,
    trees: TreeCache,
    /// The largest git object read or fetched, in bytes (0: no limit).
    max_object_size: AtomicU64,
}

impl fmt::Debug for RepoCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RepoCache")
            .field("root", &self.root)
            .field("fetches", &self.fetch_count())
            .finish_non_exhaustive()
    }
}

impl RepoCache {
    /// A cache keeping its repositories under `root` (created on the first clone).
    pub fn new(root: impl Into<PathBuf>) -> RepoCache {
        RepoCache::with_tree_cache_entries(root, TREE_CACHE_ENTRIES)
    }

    /// A cache whose decoded-tree cache holds at most `max_entries` tree entries.
    fn with_tree_cache_entries(root: impl Into<PathBuf>, max_entries: usize) -> RepoCache {
        RepoCache {
            root: root.into(),
            slots: Mutex::new(HashMap::new()),
            credentials: RwLock::new(Vec::new()),
            fetches: AtomicU64::new(0),
            trees: TreeCache::new(max_entries),
            max_object_size: AtomicU64::new(0),
        }
    }

    /// Refuses git objects larger than `bytes` (0: no limit), so a
    /// repository with a huge file costs at most about that much memory:
    /// gix inflates every object whole to hash it when it indexes a fetched
    /// pack. A fetch that meets a larger object fails, naming the limit.
    /// Applies to repositories opened after the call.
    pub fn set_max_object_size(&self, bytes: u64) {
        self.max_object_size.store(bytes, Ordering::Relaxed);
    }

    fn open_options(&self) -> gix::open::Options {
        open_options(self.max_object_size.load(Ordering::Relaxed))
    }

    fn open_repo(&self, dir: &Path) -> gix::Result<gix::ThreadSafeRepository> {
        gix::ThreadSafeRepository::open_opts(dir, self.open_options())
    }

    /// Use `creds` for https URLs that start with `url_prefix` (the longest
    /// matching prefix wins). Replaces credentials set before for the same prefix.
    ///
    /// Credentials are handed to gix in memory for each fetch; they are never
    /// written to disk or into error messages.
    pub fn set_credentials(&self, url_prefix: &str, creds: Credentials) {
        let mut all = self
            .credentials
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        match all.iter_mut().find(|(prefix, _)| prefix == url_prefix) {
            Some((_, existing)) => *existing = creds,
            None => all.push((url_prefix.to_owned(), creds)),
        }
    }

    /// How many clones and fetches went to the network so far (failed ones included).
    pub fn fetch_count(&self) -> u64 {
        self.fetches.load(Ordering::Relaxed)
    }

    /// Clone `url` if it is not cached yet, fetch it otherwise.
    ///
    /// Fetches of one URL are serialised. A caller that had to wait returns
    /// without fetching again if a fetch that *started after it was called*
    /// succeeded meanwhile: that fetch saw everything pushed before the call.
    /// A fetch that was already running when the caller arrived does not count,
    /// as it may have missed a commit pushed just before the call (the webhook
    /// case).
    ///
    /// # Errors
    ///
    /// [`SourceError::Unreachable`] when the remote cannot be cloned or fetched,
    /// [`SourceError::InvalidUrl`], and [`SourceError::Io`] or
    /// [`SourceError::Corrupt`] when the cache folder cannot be written.
    pub fn fetch(&self, url: &str) -> Result<(), SourceError> {
        self.fetch_interruptible(url, &Arc::new(AtomicBool::new(false)))
    }

    /// [`fetch`](Self::fetch), abandoned once `interrupt` is set: a caller
    /// waiting for another fetch of the URL stops waiting, and a transfer
    /// under way stops at its next read. A transfer blocked in a read that
    /// never returns (a server that accepts and then says nothing) keeps
    /// its thread until the connection fails, but not the URL: the next
    /// fetch of it starts at once.
    ///
    /// # Errors
    ///
    /// Those of [`fetch`](Self::fetch), and [`SourceError::Interrupted`].
    pub fn fetch_interruptible(
        &self,
        url: &str,
        interrupt: &Arc<AtomicBool>,
    ) -> Result<(), SourceError> {
        let url = normalize_url(url)?;
        let slot = self.slot(&url);
        let ticket = slot.started.load(Ordering::SeqCst);
        slot.waiting.fetch_add(1, Ordering::SeqCst);
        while !slot.fetch_lock.try_acquire(interrupt) {
            if interrupt.load(Ordering::SeqCst) {
                slot.waiting.fetch_sub(1, Ordering::SeqCst);
                return Err(SourceError::Interrupted {
                    url: display_url(&url),
                });
            }
            std::thread::sleep(LOCK_POLL);
        }
        let _guard = FetchGuard {
            lock: &slot.fetch_lock,
            me: Arc::clone(interrupt),
        };
        slot.waiting.fetch_sub(1, Ordering::SeqCst);
        if slot.succeeded.load(Ordering::SeqCst) > ticket {
            return Ok(());
        }
        let sequence = slot.started.fetch_add(1, Ordering::SeqCst) + 1;
        self.fetches.fetch_add(1, Ordering::Relaxed);
        self.clone_or_fetch(&url, &slot, interrupt)?;
        // An abandoned fetch that finishes late must not move it back.
        slot.succeeded.fetch_max(sequence, Ordering::SeqCst);
        Ok(())
    }

    /// The full commit SHA `revision` names in the fetched copy of `url`; no
    /// network access.
    ///
    /// `revision` is a branch (`refs/heads/<r>`), a tag (`refs/tags/<r>`,
    /// annotated tags peeled to their commit), a full ref name, a full or short
    /// (at least 4 hex digits) commit SHA, or `HEAD`/empty for the remote's
    /// default branch. Branches win over tags, names win over short SHAs.
    ///
    /// # Errors
    ///
    /// [`SourceError::NotFetched`] before the first successful fetch,
    /// [`SourceError::RevisionNotFound`], [`SourceError::AmbiguousRevision`],
    /// and [`SourceError::Corrupt`] when the cached copy cannot be read.
    pub fn resolve(&self, url: &str, revision: &str) -> Result<String, SourceError> {
        let url = normalize_url(url)?;
        let repo = self.open(&url)?;
        resolve_commit(&repo, &url, revision).map(|id| id.to_string())
    }

    /// Who made the commit `revision` resolves to, when, what it says, and
    /// the tags that point at it (Argo CD's revision metadata). No network
    /// access: the commit must have been fetched.
    ///
    /// # Errors
    /// The errors of [`resolve`](Self::resolve), and
    /// [`SourceError::Corrupt`] when the commit cannot be read.
    pub fn commit_metadata(
        &self,
        url: &str,
        revision: &str,
    ) -> Result<CommitMetadata, SourceError> {
        let (repo, url, id) = self.commit_of(url, revision)?;
        let corrupt = corrupt_commit(&url, id);
        let commit = repo.find_commit(id).map_err(|e| corrupt("reading", e))?;
        let author = commit
            .author()
            .map_err(|e| corrupt("reading the author", e))?;
        let seconds = author.time().map_err(|e| corrupt("reading the date", e))?;
        let date = time::OffsetDateTime::from_unix_timestamp(seconds.seconds)
            .ok()
            .and_then(|at| {
                let offset = time::UtcOffset::from_whole_seconds(seconds.offset).ok()?;
                at.to_offset(offset)
                    .format(&time::format_description::well_known::Rfc3339)
                    .ok()
            })
            .unwrap_or_default();
        let message = commit
            .message_raw()
            .map_err(|e| corrupt("reading the message", e))?
            .to_str_lossy()
            .trim_end()
            .to_string();
        let mut tags = Vec::new();
        let platform = repo.references().map_err(|e| corrupt("listing tags", e))?;
        for reference in platform.tags().map_err(|e| corrupt("listing tags", e))? {
            let Ok(mut reference) = reference else {
                continue;
            };
            let name = reference.name().shorten().to_str_lossy().into_owned();
            let Ok(target) = reference.peel_to_id() else {
                continue;
            };
            if peel_to_commit(&repo, target.detach()).ok().flatten() == Some(id) {
                tags.push(name);
            }
        }
        tags.sort();
        Ok(CommitMetadata {
            author: format!("{} <{}>", author.name, author.email),
            date,
            message,
            tags,
        })
    }

    /// The fetched copy of `url`, the URL normalized, and the commit
    /// `revision` resolves to in it.
    fn commit_of(
        &self,
        url: &str,
        revision: &str,
    ) -> Result<(gix::Repository, String, ObjectId), SourceError> {
        let url = normalize_url(url)?;
        let repo = self.open(&url)?;
        let id = resolve_commit(&repo, &url, revision)?;
        Ok((repo, url, id))
    }

    /// What deploying `revision` after `previous` made live: the commit
    /// times of the commits `revision` has and `previous` has not (at most
    /// `limit`, newest first; `revision`'s own alone without `previous` or
    /// when `previous` is not in the repository), and whether `revision`'s
    /// commit is a revert. No network access.
    ///
    /// # Errors
    /// The errors of [`resolve`](Self::resolve) for `revision`, and
    /// [`SourceError::Corrupt`] when a commit cannot be read.
    pub fn changes(
        &self,
        url: &str,
        previous: Option<&str>,
        revision: &str,
        limit: usize,
    ) -> Result<Changes, SourceError> {
        let (repo, url, id) = self.commit_of(url, revision)?;
        let corrupt = corrupt_commit(&url, id);
        let commit = repo.find_commit(id).map_err(|e| corrupt("reading", e))?;
        let message = commit
            .message_raw()
            .map_err(|e| corrupt("reading the message", e))?
            .to_str_lossy()
            .into_owned();
        let own = commit
            .time()
            .map_err(|e| corrupt("reading the date", e))?
            .seconds;
        let hidden = previous.and_then(|p| resolve_commit(&repo, &url, p).ok());
        let mut commit_times = Vec::new();
        if let Some(hidden) = hidden.filter(|h| *h != id) {
            let walk = repo
                .rev_walk([id])
                .with_hidden([hidden])
                .all()
                .map_err(|e| corrupt("walking the history", e))?;
            for info in walk.take(limit) {
                let info = info.map_err(|e| corrupt("walking the history", e))?;
                // Read from the commit: `Info::commit_time` is set only by a
                // walk sorted by date, and panics otherwise.
                let time = info
                    .object()
                    .map_err(|e| corrupt("walking the history", e))?
                    .time()
                    .map_err(|e| corrupt("reading a date in the history", e))?;
                commit_times.push(time.seconds);
            }
        }
        if commit_times.is_empty() {
            commit_times.push(own);
        }
        Ok(Changes {
            commit_times,
            revert: plumb_core::dora::is_revert_message(&message),
        })
    }

    /// The files below `path` in the tree of `commit`, read from the object
    /// database, sorted by path, with paths relative to `path`.
    ///
    /// `path` is `/`-separated and relative to the repository root (`""` or `.`
    /// for the root). Without `recurse` only the folder's direct children are
    /// returned. `commit` is normally a full SHA from [`resolve`](Self::resolve);
    /// any revision `resolve` accepts works.
    ///
    /// Symbolic links are followed one level: the target, taken relative to the
    /// link's folder, must stay inside the repository and be a regular file; the
    /// file is returned under the link's path. Submodules are skipped.
    ///
    /// # Errors
    ///
    /// [`SourceError::PathEscapes`] for a path with a `..` component, an absolute
    /// path, or a link pointing outside the repository;
    /// [`SourceError::PathNotFound`] when `path` is missing or not a folder, or a
    /// link cannot be followed; the errors of [`resolve`](Self::resolve).
    pub fn read_dir(
        &self,
        url: &str,
        commit: &str,
        path: &str,
        recurse: bool,
    ) -> Result<Vec<SourceFile>, SourceError> {
        let everything = |_: &str| true;
        self.read_files(
            url,
            commit,
            path,
            &ReadFilter {
                recurse,
                select: &everything,
                max_file_size: u64::MAX,
            },
        )
    }

    /// Like [`read_dir`](Self::read_dir), reading only the files `filter`
    /// selects: the others' contents are never loaded, whatever their size.
    ///
    /// # Errors
    ///
    /// Those of [`read_dir`](Self::read_dir), and
    /// [`SourceError::FileTooLarge`] for a selected file over
    /// `filter.max_file_size`.
    pub fn read_files(
        &self,
        url: &str,
        commit: &str,
        path: &str,
        filter: &ReadFilter<'_>,
    ) -> Result<Vec<SourceFile>, SourceError> {
        let recurse = filter.recurse;
        let url = normalize_url(url)?;
        let components = split_repo_path(path).ok_or_else(|| SourceError::PathEscapes {
            url: display_url(&url),
            path: path.to_owned(),
        })?;
        self.with_tree(&url, commit, |reader, root| {
        let mut folder = root;
        for (depth, name) in components.iter().enumerate() {
            // Only needed for an error; the walk itself must stay cheap.
            let so_far = || components[..=depth].join("/");
            let tree = reader.tree(folder)?;
            let entry = tree
                .find(name.as_bytes())
                .ok_or_else(|| reader.not_found(path, format!("there is no `{}`", so_far())))?;
            folder = match entry.kind {
                EntryKind::Tree => entry.oid,
                EntryKind::Blob | EntryKind::BlobExecutable => {
                    return Err(
                        reader.not_found(path, format!("`{}` is a file, not a folder", so_far()))
                    );
                }
                EntryKind::Link => {
                    return Err(reader.not_found(
                        path,
                        format!("`{}` is a symbolic link; point the application at the folder it links to", so_far()),
                    ));
                }
                EntryKind::Commit => {
                    return Err(reader.not_found(
                        path,
                        format!("`{}` is a submodule, which Plumb does not read", so_far()),
                    ));
                }
            };
        }

        let mut files = Vec::new();
        // (folder relative to `path`, tree id)
        let mut pending = vec![(String::new(), folder)];
        while let Some((relative, tree_id)) = pending.pop() {
            let tree = reader.tree(tree_id)?;
            for entry in tree.iter() {
                let name = entry.name.to_str_lossy();
                let child = join_path(&relative, &name);
                match entry.kind {
                    EntryKind::Tree => {
                        if recurse {
                            pending.push((child, entry.oid));
                        }
                    }
                    EntryKind::Blob | EntryKind::BlobExecutable => {
                        if !(filter.select)(&child) {
                            continue;
                        }
                        reader.check_size(entry.oid, &child, filter.max_file_size)?;
                        let data = reader.blob(entry.oid)?;
                        files.push(SourceFile { path: child, data });
                    }
                    EntryKind::Link => {
                        if !(filter.select)(&child) {
                            continue;
                        }
                        let link = join_components(&components, &child);
                        let data =
                            reader.follow_link(root, &link, entry.oid, filter.max_file_size)?;
                        files.push(SourceFile { path: child, data });
                    }
                    EntryKind::Commit => {}
                }
            }
        }
        files.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(files)
        })
    }

    /// Every folder in the tree of `commit`, as paths from the root
    /// (`apps/web`), sorted, without the root itself. Reads trees only,
    /// never a file's content. Submodules and links are not folders.
    ///
    /// # Errors
    ///
    /// The errors of [`resolve`](Self::resolve), and
    /// [`SourceError::Corrupt`] when a tree cannot be read.
    pub fn directories(&self, url: &str, commit: &str) -> Result<Vec<String>, SourceError> {
        let url = normalize_url(url)?;
        self.with_tree(&url, commit, |reader, root| {
            let mut out = Vec::new();
            let mut pending = vec![(String::new(), root)];
            while let Some((relative, tree_id)) = pending.pop() {
                let tree = reader.tree(tree_id)?;
                for entry in tree.iter() {
                    if entry.kind == EntryKind::Tree {
                        let child = join_path(&relative, &entry.name.to_str_lossy());
                        out.push(child.clone());
                        pending.push((child, entry.oid));
                    }
                }
            }
            out.sort();
            Ok(out)
        })
    }

    /// The object id of each of `paths` (repository paths, `/`-separated)
    /// in the tree of `commit`: the id of the folder's tree or the file's
    /// blob, `None` where nothing is at that path. Two commits that give a
    /// path the same id hold the same content there. No network access.
    ///
    /// # Errors
    ///
    /// The errors of [`resolve`](Self::resolve), and
    /// [`SourceError::Corrupt`] when a tree cannot be read.
    pub fn path_ids(
        &self,
        url: &str,
        commit: &str,
        paths: &[String],
    ) -> Result<Vec<Option<String>>, SourceError> {
        let url = normalize_url(url)?;
        self.with_tree(&url, commit, |reader, root| {
            let mut out = Vec::with_capacity(paths.len());
            for path in paths {
                // (id, whether it is a tree)
                let mut current = Some((root, true));
                for name in path.split('/').filter(|p| !p.is_empty() && *p != ".") {
                    let Some((folder, true)) = current else {
                        current = None;
                        break;
                    };
                    current = reader
                        .tree(folder)?
                        .find(name.as_bytes())
                        .filter(|e| e.kind != EntryKind::Commit)
                        .map(|e| (e.oid, e.kind == EntryKind::Tree));
                }
                out.push(current.map(|(id, _)| id.to_string()));
            }
            Ok(out)
        })
    }

    /// Runs `read` with a reader of the tree of `commit` in the cached
    /// copy of `url` (normalized) and the id of that tree.
    fn with_tree<T>(
        &self,
        url: &str,
        commit: &str,
        read: impl FnOnce(&TreeReader<'_>, ObjectId) -> Result<T, SourceError>,
    ) -> Result<T, SourceError> {
        let repo = self.open(url)?;
        let reader = TreeReader {
            repo: &repo,
            url,
            revision: commit,
            trees: &self.trees,
        };
        let root = reader.commit_tree(resolve_commit(&repo, url, commit)?)?;
        read(&reader, root)
    }

    /// Repository-relative paths of the files that differ between the trees of
    /// `from` and `to` (added, removed or modified), sorted. Any revision
    /// [`resolve`](Self::resolve) accepts works; no network access.
    ///
    /// A changed submodule or symbolic link counts as a changed file.
    ///
    /// # Errors
    ///
    /// The errors of [`resolve`](Self::resolve).
    pub fn changed_paths(
        &self,
        url: &str,
        from: &str,
        to: &str,
    ) -> Result<Vec<String>, SourceError> {
        let url = normalize_url(url)?;
        let repo = self.open(&url)?;
        let from_id = resolve_commit(&repo, &url, from)?;
        let to_id = resolve_commit(&repo, &url, to)?;
        let from_reader = TreeReader {
            repo: &repo,
            url: &url,
            revision: from,
            trees: &self.trees,
        };
        let to_reader = TreeReader {
            repo: &repo,
            url: &url,
            revision: to,
            trees: &self.trees,
        };
        let from_tree = from_reader.commit_tree(from_id)?;
        let to_tree = to_reader.commit_tree(to_id)?;
        let mut changed = Vec::new();
        diff_trees(
            &from_reader,
            "",
            Some(from_tree),
            Some(to_tree),
            &mut changed,
        )?;
        changed.sort();
        changed.dedup();
        Ok(changed)
    }

    /// Writes the whole tree of `commit` into `dest`, an existing empty
    /// folder, straight from the object database: no `git` binary, no index
    /// and no `.git` folder in `dest`. Any revision
    /// [`resolve`](Self::resolve) accepts works; no network access.
    ///
    /// Regular files keep their executable bit (`0755`, else `0644`, less the
    /// umask, as git does). Symbolic links are created as links, only when
    /// their target, taken relative to the link's folder and following the
    /// repository's other links on the way, stays inside the repository (as
    /// Argo CD refuses out-of-bounds links); a target that does not exist in
    /// the tree is allowed when it stays inside. Submodules are skipped.
    ///
    /// Nothing is ever written through a link: every file and folder is
    /// created new, so `dest` must be empty. On error `dest` may hold part of
    /// the tree; the caller removes it.
    ///
    /// # Errors
    ///
    /// [`SourceError::PathEscapes`] for a symbolic link pointing outside the
    /// repository (absolute, or `..` past the root, also through other
    /// links); [`SourceError::PathNotFound`] for a link that loops;
    /// [`SourceError::UnsafePath`] for a tree entry git itself refuses to
    /// check out (`..`, `.git`); [`SourceError::Io`] when `dest` cannot be
    /// written; the errors of [`resolve`](Self::resolve).
    pub fn checkout(&self, url: &str, commit: &str, dest: &Path) -> Result<(), SourceError> {
        use std::io::Write as _;
        use std::os::unix::ffi::OsStrExt as _;
        use std::os::unix::fs::OpenOptionsExt as _;

        let url = normalize_url(url)?;
        self.with_tree(&url, commit, |reader, root| {
            let io = |action: &'static str, path: &Path| {
                let path = path.to_owned();
                let url = display_url(&url);
                move |source| SourceError::Io {
                    url,
                    action,
                    path,
                    source,
                }
            };

            // Folders still to write: the repository path, where it goes, and
            // the trees from the root's children down to it (for links).
            let mut pending = vec![(String::new(), dest.to_owned(), Vec::<ObjectId>::new(), root)];
            while let Some((relative, folder, chain, tree_id)) = pending.pop() {
                let tree = reader.tree(tree_id)?;
                for entry in tree.iter() {
                    let child = join_path(&relative, &entry.name.to_str_lossy());
                    if let Some(reason) = unsafe_entry_name(entry.name) {
                        return Err(SourceError::UnsafePath {
                            url: display_url(&url),
                            revision: commit.to_owned(),
                            path: child,
                            reason,
                        });
                    }
                    let path = folder.join(std::ffi::OsStr::from_bytes(entry.name));
                    match entry.kind {
                        EntryKind::Tree => {
                            std::fs::create_dir(&path).map_err(io("creating the folder", &path))?;
                            let mut below = chain.clone();
                            below.push(entry.oid);
                            pending.push((child, path, below, entry.oid));
                        }
                        EntryKind::Blob | EntryKind::BlobExecutable => {
                            let mode = if entry.kind == EntryKind::BlobExecutable {
                                0o755
                            } else {
                                0o644
                            };
                            let data = reader.blob(entry.oid)?;
                            std::fs::OpenOptions::new()
                                .write(true)
                                .create_new(true)
                                .mode(mode)
                                .open(&path)
                                .and_then(|mut file| file.write_all(&data))
                                .map_err(io("writing", &path))?;
                        }
                        EntryKind::Link => {
                            let target = reader.blob(entry.oid)?;
                            reader.check_link_stays_inside(root, &chain, &child, &target)?;
                            std::os::unix::fs::symlink(std::ffi::OsStr::from_bytes(&target), &path)
                                .map_err(io("creating the symbolic link", &path))?;
                        }
                        EntryKind::Commit => {}
                    }
                }
            }
            Ok(())
        })
    }

    /// The slot of a normalized URL, created on first use.
    fn slot(&self, url: &str) -> Arc<Slot> {
        let mut slots = self.slots.lock().unwrap_or_else(PoisonError::into_inner);
        Arc::clone(slots.entry(url.to_owned()).or_default())
    }

    /// Where the bare repository of a normalized URL lives.
    fn repo_dir(&self, url: &str) -> PathBuf {
        self.root.join(format!("{}.git", url_digest(url)))
    }

    /// Where a clone of a normalized URL is written before it is complete.
    /// A folder of its own for one clone of `url`: a clone abandoned while
    /// blocked never shares it with the next.
    fn partial_dir(&self, url: &str) -> PathBuf {
        static CLONES: AtomicU64 = AtomicU64::new(0);
        let n = CLONES.fetch_add(1, Ordering::Relaxed);
        self.root.join(format!(
            "{}{PARTIAL_SUFFIX}-{}-{n}",
            url_digest(url),
            std::process::id()
        ))
    }

    /// Removes the partial clones of `url` that earlier clones left (a crash,
    /// or an abandoned clone still blocked: it then fails).
    fn remove_partials(&self, url: &str) -> Result<(), SourceError> {
        let prefix = format!("{}{PARTIAL_SUFFIX}", url_digest(url));
        let Ok(entries) = std::fs::read_dir(&self.root) else {
            return Ok(());
        };
        for entry in entries.flatten() {
            if entry.file_name().to_string_lossy().starts_with(&prefix) {
                remove_dir(url, &entry.path())?;
            }
        }
        Ok(())
    }

    /// A thread-local handle on the cached repository of a normalized URL,
    /// opening it from disk on first use (for example after a restart).
    fn open(&self, url: &str) -> Result<gix::Repository, SourceError> {
        let slot = self.slot(url);
        if let Some(repo) = slot
            .repo
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
        {
            return Ok(repo.to_thread_local());
        }
        let dir = self.repo_dir(url);
        if !dir.is_dir() {
            return Err(SourceError::NotFetched {
                url: display_url(url),
            });
        }
        let repo = self
            .open_repo(&dir)
            .map_err(|source| SourceError::Corrupt {
                url: display_url(url),
                action: format!("opening {}", dir.display()),
                source,
            })?;
        let local = repo.to_thread_local();
        let mut cached = slot.repo.write().unwrap_or_else(PoisonError::into_inner);
        cached.get_or_insert_with(|| Arc::new(repo));
        Ok(local)
    }

    /// Clone or fetch; the caller holds the slot's fetch lock.
    fn clone_or_fetch(
        &self,
        url: &str,
        slot: &Slot,
        interrupt: &AtomicBool,
    ) -> Result<(), SourceError> {
        let dir = self.repo_dir(url);
        let cached = slot
            .repo
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        let existing = match cached {
            Some(repo) => Some(repo),
            None if dir.exists() => match self.open_repo(&dir) {
                Ok(repo) => Some(Arc::new(repo)),
                Err(_) => {
                    // Not a repository any more (disk trouble, manual meddling):
                    // start over rather than fail forever.
                    remove_dir(url, &dir)?;
                    None
                }
            },
            None => None,
        };

        match existing {
            Some(repo) => {
                let mut local = repo.to_thread_local();
                self.fetch_into(&mut local, url, interrupt)?;
            }
            None => self.clone_into(url, &dir, interrupt)?,
        }

        // Re-open so the new packs and refs are picked up without relying on
        // the old handle's refresh heuristics.
        let reopened = self
            .open_repo(&dir)
            .map_err(|source| SourceError::Corrupt {
                url: display_url(url),
                action: format!("opening {} after the fetch", dir.display()),
                source,
            })?;
        *slot.repo.write().unwrap_or_else(PoisonError::into_inner) = Some(Arc::new(reopened));
        Ok(())
    }

    /// Clone into a partial folder and move it into place once complete.
    fn clone_into(&self, url: &str, dir: &Path, interrupt: &AtomicBool) -> Result<(), SourceError> {
        self.remove_partials(url)?;
        let partial = self.partial_dir(url);
        std::fs::create_dir_all(&self.root).map_err(|source| SourceError::Io {
            url: display_url(url),
            action: "creating the cache folder",
            path: self.root.clone(),
            source,
        })?;
        let result = (|| {
            let repo = gix::ThreadSafeRepository::init_opts(
                &partial,
                gix::create::Kind::Bare,
                gix::create::Options::default(),
                self.open_options(),
            )
            .map_err(|source| SourceError::Corrupt {
                url: display_url(url),
                action: format!("creating a bare repository in {}", partial.display()),
                source,
            })?;
            let mut local = repo.to_thread_local();
            self.fetch_into(&mut local, url, interrupt)?;
            drop(local);
            drop(repo);
            std::fs::rename(&partial, dir).map_err(|source| SourceError::Io {
                url: display_url(url),
                action: "moving the finished clone to",
                path: dir.to_owned(),
                source,
            })
        })();
        if result.is_err() && partial.exists() {
            // Best effort: the next clone removes it anyway.
            let _ = std::fs::remove_dir_all(&partial);
        }
        result
    }

    /// Fetch all branches and tags of `url` into `repo`, point `HEAD` at the
    /// remote's default branch and prune refs deleted upstream.
    fn fetch_into(
        &self,
        repo: &mut gix::Repository,
        url: &str,
        interrupt: &AtomicBool,
    ) -> Result<(), SourceError> {
        repo.committer_or_set_generic_fallback()
            .map_err(|source| SourceError::Corrupt {
                url: display_url(url),
                action: "setting an identity for ref updates".to_owned(),
                source,
            })?;
        let creds = self.credentials_for(url);
        let limit = self.max_object_size.load(Ordering::Relaxed);
        let unreachable = |err: gix::Error| {
            let mut message = scrub_secrets(&error_chain(&err), creds.as_ref());
            if limit > 0 && message.contains("too large to fit in memory") {
                message = format!(
                    "an object in the repository is larger than {limit} bytes (--max-git-object-size; \
                     git objects are held whole in memory while a fetch indexes them) ({message})"
                );
            }
            SourceError::Unreachable {
                url: display_url(url),
                message,
            }
        };

        let ref_map = {
            let remote = repo
                .remote_at(url)
                .map_err(unreachable)?
                .with_refspecs([HEADS_REFSPEC, TAGS_REFSPEC], gix::remote::Direction::Fetch)
                .map_err(unreachable)?
                // The tags refspec fetches every tag; no implicit tag following.
                .with_fetch_tags(gix::remote::fetch::Tags::None);
            let mut connection = remote
                .connect(gix::remote::Direction::Fetch)
                .map_err(unreachable)?;
            if let Some(creds) = creds.clone().filter(|_| is_http(url)) {
                connection.set_credentials(move |action| credential_helper(&creds, action));
            }
            // `HEAD` is asked for (without a destination) so the server tells
            // us which branch it points to.
            let head = gix::refspec::parse("HEAD".into(), gix::refspec::parse::Operation::Fetch)
                .expect("HEAD is a valid fetch refspec")
                .to_owned();
            let options = gix::remote::ref_map::Options {
                extra_refspecs: vec![head],
                ..Default::default()
            };
            let outcome = connection
                .prepare_fetch(gix::progress::Discard, options)
                .map_err(unreachable)?
                .with_write_packed_refs_only(true)
                .receive(gix::progress::Discard, interrupt)
                .map_err(unreachable)?;
            outcome.ref_map
        };

        let corrupt = |action: &str| {
            let action = action.to_owned();
            move |source| SourceError::Corrupt {
                url: display_url(url),
                action,
                source,
            }
        };
        update_head(repo, &ref_map)
            .map_err(corrupt("pointing HEAD at the remote's default branch"))?;
        prune(repo, &ref_map).map_err(corrupt("removing branches and tags deleted upstream"))?;
        Ok(())
    }

    /// The credentials configured for the longest prefix of `url`.
    fn credentials_for(&self, url: &str) -> Option<Credentials> {
        let all = self
            .credentials
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        all.iter()
            .filter(|(prefix, _)| url.starts_with(prefix.as_str()))
            .max_by_key(|(prefix, _)| prefix.len())
            .map(|(_, creds)| creds.clone())
    }
}

/// Turn a repository URL or local path into the key the cache uses.
///
/// Local paths (absolute or relative) and `file://` URLs become
/// `file:///absolute/path`, canonicalized when the path exists; https, ssh,
/// git and scp-like (`git@host:org/repo`) URLs are returned as they are,
/// without a trailing `/`.
///
/// # Errors
///
/// [`SourceError::InvalidUrl`] for an empty input or a path that is not UTF-8
/// or has no absolute form.
pub fn normalize_url(url_or_path: &str) -> Result<String, SourceError> {
    let input = url_or_path.trim();
    let invalid = |reason: &str| SourceError::InvalidUrl {
        url: scrub_secrets(input, None),
        reason: reason.to_owned(),
    };
    if input.is_empty() {
        return Err(invalid("it is empty"));
    }
    let local = match input.strip_prefix("file://") {
        Some(path) => path,
        None if input.contains("://") => {
            let trimmed = input.trim_end_matches('/');
            return match trimmed.split_once("://") {
                Some((scheme, rest)) if !scheme.is_empty() && !rest.is_empty() => {
                    Ok(trimmed.to_owned())
                }
                _ => Err(invalid("it has no host")),
            };
        }
        None if is_scp_like(input) => return Ok(input.trim_end_matches('/').to_owned()),
        None => input,
    };
    if local.is_empty() {
        return Err(invalid("it names no path"));
    }
    let path = Path::new(local);
    let absolute = match std::fs::canonicalize(path) {
        Ok(path) => path,
        // A path that does not exist (yet) still gets a stable key; fetching
        // it reports the repository as unreachable.
        Err(_) => std::path::absolute(path)
            .map_err(|err| invalid(&format!("it has no absolute form: {err}")))?,
    };
    let absolute = absolute
        .to_str()
        .ok_or_else(|| invalid("the path is not valid UTF-8"))?;
    let trimmed = match absolute.trim_end_matches('/') {
        "" => "/",
        trimmed => trimmed,
    };
    Ok(format!("file://{trimmed}"))
}

/// The cache folder name of a normalized URL: its SHA-1 in hex.
fn url_digest(url: &str) -> ObjectId {
    let mut hasher = gix::hash::hasher(gix::hash::Kind::Sha1);
    hasher.update(url.as_bytes());
    hasher
        .try_finalize()
        .expect("sha1 collision detection cannot trigger on a URL")
}

/// `user@host:path` as git understands it: a colon with no slash before it.
fn is_scp_like(input: &str) -> bool {
    match input.find(':') {
        Some(colon) => colon > 0 && !input[..colon].contains('/'),
        None => false,
    }
}

fn is_http(url: &str) -> bool {
    url.starts_with("https://") || url.starts_with("http://")
}

/// A URL fit for messages: any `user:password@` removed.
fn display_url(url: &str) -> String {
    scrub_secrets(url, None)
}

/// Remove the user-info part of every URL in `text`, and any occurrence of the
/// configured password.
fn scrub_secrets(text: &str, creds: Option<&Credentials>) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(pos) = rest.find("://") {
        let (head, tail) = rest.split_at(pos + 3);
        out.push_str(head);
        let end = tail
            .find(|c: char| {
                c == '/' || c.is_whitespace() || matches!(c, '"' | '\'' | '`' | '>' | ')' | ']')
            })
            .unwrap_or(tail.len());
        let authority = &tail[..end];
        match authority.rfind('@') {
            Some(at) => out.push_str(&authority[at + 1..]),
            None => out.push_str(authority),
        }
        rest = &tail[end..];
    }
    out.push_str(rest);
    match creds.and_then(|creds| creds.password.as_deref()) {
        Some(password) if !password.is_empty() => out.replace(password, "<redacted>"),
        _ => out,
    }
}

/// An error and its sources on one line, `outer: inner: root cause`.
fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut text = err.to_string();
    let mut last = text.clone();
    let mut source = err.source();
    while let Some(cause) = source {
        let message = cause.to_string();
        // Wrappers often repeat their cause's message verbatim.
        if message != last && !last.ends_with(&message) {
            text.push_str(": ");
            text.push_str(&message);
        }
        last = message;
        source = cause.source();
    }
    text
}

/// Answer gix's credential requests with the configured credentials.
fn credential_helper(
    creds: &Credentials,
    action: gix::credentials::helper::Action,
) -> gix::Result<Option<gix::credentials::protocol::Outcome>> {
    match action {
        gix::credentials::helper::Action::Get(context) => {
            let username = creds
                .username
                .clone()
                .or_else(|| context.username.clone())
                .unwrap_or_else(|| DEFAULT_TOKEN_USERNAME.to_owned());
            Ok(Some(gix::credentials::protocol::Outcome {
                identity: gix::sec::identity::Account {
                    username,
                    password: creds.password.clone().unwrap_or_default(),
                    oauth_refresh_token: None,
                },
                next: context.into(),
            }))
        }
        // Nothing is stored or erased: the credentials live in memory only.
        gix::credentials::helper::Action::Store(_) | gix::credentials::helper::Action::Erase(_) => {
            Ok(None)
        }
    }
}

/// How every cached repository is opened.
fn open_options(max_object_size: u64) -> gix::open::Options {
    // A server has no terminal to ask for a password on.
    let mut overrides = vec!["gitoxide.credentials.terminalPrompt=false".to_string()];
    if max_object_size > 0 {
        overrides.push(format!("gitoxide.objects.allocLimit={max_object_size}"));
    }
    gix::open::Options::default()
        .with(gix::sec::Trust::Full)
        .open_path_as_is(true)
        .config_overrides(overrides)
}

fn remove_dir(url: &str, dir: &Path) -> Result<(), SourceError> {
    std::fs::remove_dir_all(dir).map_err(|source| SourceError::Io {
        url: display_url(url),
        action: "removing the unusable repository",
        path: dir.to_owned(),
        source,
    })
}

/// Point the bare repository's `HEAD` at the branch the remote's `HEAD` names.
fn update_head(repo: &gix::Repository, ref_map: &RefMap) -> gix::Result<()> {
    let Some(target) = remote_default_branch(ref_map) else {
        return Ok(());
    };
    let Ok(target) = gix::refs::FullName::try_from(target) else {
        // A name we cannot store; keep the previous HEAD.
        return Ok(());
    };
    if repo.head_name()?.as_ref() == Some(&target) {
        return Ok(());
    }
    repo.edit_reference(RefEdit {
        change: Change::Update {
            log: LogChange {
                mode: RefLog::AndReference,
                force_create_reflog: false,
                message: "plumb: follow the remote's default branch".into(),
            },
            expected: PreviousValue::Any,
            new: gix::refs::Target::Symbolic(target),
        },
        name: "HEAD".try_into().expect("HEAD is a valid ref name"),
        deref: false,
    })?;
    Ok(())
}

/// The branch the remote's `HEAD` points to. Servers that do not say (no
/// `symref` capability) get git clone's guess: a branch at the same commit,
/// `main` then `master` first.
fn remote_default_branch(ref_map: &RefMap) -> Option<BString> {
    let mut head_id = None;
    for remote_ref in &ref_map.remote_refs {
        match remote_ref {
            Ref::Symbolic {
                full_ref_name,
                target,
                ..
            }
            | Ref::Unborn {
                full_ref_name,
                target,
            } if full_ref_name == "HEAD" => {
                return Some(target.clone());
            }
            Ref::Direct {
                full_ref_name,
                object,
            } if full_ref_name == "HEAD" => head_id = Some(*object),
            _ => {}
        }
    }
    let head_id = head_id?;
    let branches: Vec<&BStr> = ref_map
        .remote_refs
        .iter()
        .filter_map(|remote_ref| match remote_ref.unpack() {
            (name, Some(id), _) if name.starts_with(b"refs/heads/") && id == head_id.as_ref() => {
                Some(name)
            }
            _ => None,
        })
        .collect();
    ["refs/heads/main", "refs/heads/master"]
        .into_iter()
        .find_map(|preferred| branches.iter().find(|name| **name == preferred))
        .or_else(|| branches.iter().min())
        .map(|name| (*name).to_owned())
}

/// Delete local branches and tags the remote no longer has.
fn prune(repo: &gix::Repository, ref_map: &RefMap) -> gix::Result<()> {
    let remote: HashSet<&BStr> = ref_map.remote_refs.iter().map(|r| r.unpack().0).collect();
    let platform = repo.references()?;
    let mut edits = Vec::new();
    for reference in platform.local_branches()?.chain(platform.tags()?) {
        let reference = reference?;
        if !remote.contains(reference.name().as_bstr()) {
            edits.push(RefEdit {
                change: Change::Delete {
                    expected: PreviousValue::MustExist,
                    log: RefLog::AndReference,
                },
                name: reference.name().to_owned(),
                deref: false,
            });
        }
    }
    if !edits.is_empty() {
        repo.edit_references(edits)?;
    }
    Ok(())
}

/// The commit `revision` names; see [`RepoCache::resolve`].
fn resolve_commit(
    repo: &gix::Repository,
    url: &str,
    revision: &str,
) -> Result<ObjectId, SourceError> {
    let not_found = || SourceError::RevisionNotFound {
        url: display_url(url),
        revision: revision.to_owned(),
    };
    let corrupt = |source| SourceError::Corrupt {
        url: display_url(url),
        action: format!("resolving revision {revision:?}"),
        source,
    };
    let rev = revision.trim();
    let is_hex = !rev.is_empty() && rev.bytes().all(|b| b.is_ascii_hexdigit());

    if rev.is_empty() || rev == "HEAD" {
        let head = repo.head().map_err(corrupt)?;
        // An unborn HEAD: the remote is empty.
        let id = head.id().ok_or_else(not_found)?.detach();
        return peel_to_commit(repo, id)
            .map_err(corrupt)?
            .ok_or_else(not_found);
    }
    if is_hex && rev.len() == repo.object_hash().len_in_hex() {
        let id = ObjectId::from_hex(rev.as_bytes()).map_err(|_| not_found())?;
        return peel_to_commit(repo, id)
            .map_err(corrupt)?
            .ok_or_else(not_found);
    }

    let mut names = Vec::with_capacity(3);
    if rev.starts_with("refs/") {
        names.push(rev.to_owned());
    }
    names.push(format!("refs/heads/{rev}"));
    names.push(format!("refs/tags/{rev}"));
    for name in &names {
        // A name git would refuse (spaces, `..`) cannot exist; keep looking.
        let Ok(Some(mut reference)) = repo.try_find_reference(name.as_str()) else {
            continue;
        };
        let id = reference.peel_to_id().map_err(corrupt)?.detach();
        return peel_to_commit(repo, id)
            .map_err(corrupt)?
            .ok_or_else(not_found);
    }

    if is_hex && rev.len() >= 4 {
        let prefix = gix::hash::Prefix::from_hex(rev).map_err(|_| not_found())?;
        let mut candidates = HashSet::new();
        repo.objects
            .lookup_prefix(prefix, Some(&mut candidates))
            .map_err(corrupt)?;
        let mut commits = Vec::new();
        for id in candidates {
            if repo.find_header(id).map_err(corrupt)?.kind() == gix::object::Kind::Commit {
                commits.push(id);
            }
        }
        return match commits.as_slice() {
            [] => Err(not_found()),
            [id] => Ok(*id),
            _ => Err(SourceError::AmbiguousRevision {
                url: display_url(url),
                revision: revision.to_owned(),
            }),
        };
    }
    Err(not_found())
}

/// The commit `id` is or (through tags) points to; `None` when the object is
/// missing or is not a commit.
fn peel_to_commit(repo: &gix::Repository, id: ObjectId) -> gix::Result<Option<ObjectId>> {
    let Some(object) = repo.try_find_object(id)? else {
        return Ok(None);
    };
    Ok(object
        .peel_to_kind(gix::object::Kind::Commit)
        .ok()
        .map(|commit| commit.id))
}

/// Decoded trees by object id, shared by every repository of a [`RepoCache`].
///
/// Ids are content addresses, so a cached tree is never stale and needs no
/// invalidation when refs move; the same tree reached through another URL or
/// commit is the same tree. Without this cache every `read_dir` of
/// `apps/app-NNNNN` inflated and decoded the root and the 10,000-entry `apps/`
/// tree again, which made reading all applications quadratic.
///
/// The bound is the number of entries held (plus one per tree, so that many
/// tiny trees count too), because entries, not trees, are what costs memory.
/// When a tree does not fit, the cache is cleared wholesale rather than
/// evicting the least recently used trees: hits then need only the read lock
/// and no recency bookkeeping, so the many blocking readers never serialise on
/// a write, and the hot trees (the root, `apps/`) are simply decoded once more
/// after a clear, one decode per `max_entries` entries inserted. A tree larger
/// than the whole bound is returned uncached.
struct TreeCache {
    max_entries: usize,
    state: RwLock<TreeCacheState>,
    /// Trees decoded so far, that is cache misses (the tests watch it).
    decoded: AtomicU64,
}

#[derive(Default)]
struct TreeCacheState {
    trees: gix::hashtable::HashMap<ObjectId, Arc<IndexedTree>>,
    /// The sum of [`IndexedTree::cost`] over `trees`; at most `max_entries`.
    held: usize,
}

impl TreeCache {
    fn new(max_entries: usize) -> TreeCache {
        TreeCache {
            max_entries,
            state: RwLock::new(TreeCacheState::default()),
            decoded: AtomicU64::new(0),
        }
    }

    fn get(&self, id: &ObjectId) -> Option<Arc<IndexedTree>> {
        let state = self.state.read().unwrap_or_else(PoisonError::into_inner);
        state.trees.get(id).map(Arc::clone)
    }

    /// Index `decoded`, the tree `id`, and keep it if it fits the bound.
    fn insert(
        &self,
        id: ObjectId,
        decoded: &gix::objs::TreeRef<'_>,
    ) -> gix::Result<Arc<IndexedTree>> {
        self.decoded.fetch_add(1, Ordering::Relaxed);
        let tree = Arc::new(IndexedTree::new(decoded)?);
        let cost = tree.cost();
        if cost > self.max_entries {
            return Ok(tree);
        }
        let mut state = self.state.write().unwrap_or_else(PoisonError::into_inner);
        if let Some(cached) = state.trees.get(&id) {
            // Another thread decoded it meanwhile; keep one copy.
            return Ok(Arc::clone(cached));
        }
        if state.held + cost > self.max_entries {
            tracing::debug!(
                trees = state.trees.len(),
                entries = state.held,
                "the tree cache is full; clearing it"
            );
            state.trees.clear();
            state.held = 0;
        }
        state.trees.insert(id, Arc::clone(&tree));
        state.held += cost;
        Ok(tree)
    }
}

/// A decoded tree as the [`TreeCache`] keeps it: the entries in the tree's own
/// order, their names end to end in one buffer (no allocation per entry), and
/// the entry positions sorted by name, so looking up one name in a tree of
/// 10,000 entries is a binary search instead of a scan. About 32 bytes plus
/// the name per entry.
///
/// The sorted index is separate because git orders a folder `a` as if it were
/// named `a/`, after `a.txt`, so the tree's own order is not byte order.
struct IndexedTree {
    /// Every entry's name, in entry order.
    names: Box<[u8]>,
    /// The entries as the tree object lists them.
    entries: Box<[IndexedEntry]>,
    /// Positions in `entries` sorted by name, equal names (only in a malformed
    /// tree) by position, so a lookup finds the first as a scan would.
    by_name: Box<[u32]>,
}

struct IndexedEntry {
    /// Where the name ends in `names`; it starts where the previous one ends.
    name_end: u32,
    kind: EntryKind,
    oid: ObjectId,
}

/// One entry of an [`IndexedTree`].
#[derive(Clone, Copy)]
struct TreeEntry<'a> {
    name: &'a BStr,
    kind: EntryKind,
    oid: ObjectId,
}

impl IndexedTree {
    /// # Errors
    ///
    /// When the names or the number of entries do not fit the 32-bit positions
    /// (a tree object of 4 GiB or more).
    fn new(tree: &gix::objs::TreeRef<'_>) -> gix::Result<IndexedTree> {
        let names_len: usize = tree.entries.iter().map(|entry| entry.filename.len()).sum();
        if u32::try_from(names_len).is_err() || u32::try_from(tree.entries.len()).is_err() {
            return Err(gix::Error::from_error(gix::error::unsupported(
                "the tree is too large for Plumb to index (4 GiB or more)",
            )));
        }
        // From here on every position and name offset fits `u32`.
        let mut names = Vec::with_capacity(names_len);
        let entries = tree
            .entries
            .iter()
            .map(|entry| {
                names.extend_from_slice(entry.filename);
                IndexedEntry {
                    name_end: names.len() as u32,
                    kind: entry.mode.kind(),
                    oid: entry.oid.to_owned(),
                }
            })
            .collect();
        let mut tree = IndexedTree {
            names: names.into_boxed_slice(),
            entries,
            by_name: Box::default(),
        };
        let mut by_name: Vec<u32> = (0..tree.entries.len() as u32).collect();
        // Stable, so equal names keep their order; trees come nearly sorted,
        // which the sort takes advantage of.
        by_name.sort_by(|a, b| tree.name(*a).cmp(tree.name(*b)));
        tree.by_name = by_name.into_boxed_slice();
        Ok(tree)
    }

    /// What the tree counts against the cache's bound.
    fn cost(&self) -> usize {
        self.entries.len() + 1
    }

    fn name(&self, position: u32) -> &[u8] {
        let position = position as usize;
        let start = match position.checked_sub(1) {
            Some(previous) => self.entries[previous].name_end as usize,
            None => 0,
        };
        &self.names[start..self.entries[position].name_end as usize]
    }

    fn entry(&self, position: u32) -> TreeEntry<'_> {
        let entry = &self.entries[position as usize];
        TreeEntry {
            name: self.name(position).as_bstr(),
            kind: entry.kind,
            oid: entry.oid,
        }
    }

    /// The entries in the tree's own order.
    fn iter(&self) -> impl Iterator<Item = TreeEntry<'_>> {
        // `new` made sure every position fits `u32`.
        (0..self.entries.len() as u32).map(|position| self.entry(position))
    }

    /// The first entry named `name`.
    fn find(&self, name: &[u8]) -> Option<TreeEntry<'_>> {
        let at = self
            .by_name
            .partition_point(|position| self.name(*position) < name);
        let position = *self.by_name.get(at)?;
        (self.name(position) == name).then(|| self.entry(position))
    }
}

/// Reads trees and blobs of one revision, turning failures into [`SourceError`]s.
struct TreeReader<'a> {
    repo: &'a gix::Repository,
    url: &'a str,
    revision: &'a str,
    trees: &'a TreeCache,
}

impl TreeReader<'_> {
    fn corrupt(&self, action: String) -> impl FnOnce(gix::Error) -> SourceError + '_ {
        move |source| SourceError::Corrupt {
            url: display_url(self.url),
            action,
            source,
        }
    }

    fn not_found(&self, path: &str, detail: String) -> SourceError {
        SourceError::PathNotFound {
            url: display_url(self.url),
            revision: self.revision.to_owned(),
            path: path.to_owned(),
            detail,
        }
    }

    fn commit_tree(&self, commit: ObjectId) -> Result<ObjectId, SourceError> {
        let commit = self
            .repo
            .find_commit(commit)
            .map_err(self.corrupt(format!("reading commit {commit}")))?;
        commit
            .tree_id()
            .map(gix::Id::detach)
            .map_err(self.corrupt(format!("reading the tree of commit {}", commit.id)))
    }

    /// The tree `id`, from the cache or decoded (and cached).
    fn tree(&self, id: ObjectId) -> Result<Arc<IndexedTree>, SourceError> {
        if let Some(tree) = self.trees.get(&id) {
            return Ok(tree);
        }
        let tree = self
            .repo
            .find_tree(id)
            .map_err(self.corrupt(format!("reading tree {id}")))?;
        tree.decode()
            .and_then(|decoded| self.trees.insert(id, &decoded))
            .map_err(self.corrupt(format!("decoding tree {id}")))
    }

    /// The tree `id` while following a symbolic link: `None` when the object
    /// is not a tree (as with gix's path lookup, used here before the cache) or
    /// cannot be decoded; the link then reports a target that does not exist.
    ///
    /// # Errors
    ///
    /// When the object cannot be read, for example a submodule's commit.
    fn tree_on_link_path(&self, id: ObjectId) -> gix::Result<Option<Arc<IndexedTree>>> {
        if let Some(tree) = self.trees.get(&id) {
            return Ok(Some(tree));
        }
        let object = self.repo.find_object(id)?;
        if object.kind != gix::object::Kind::Tree {
            return Ok(None);
        }
        let tree = object.into_tree();
        Ok(tree
            .decode()
            .and_then(|decoded| self.trees.insert(id, &decoded))
            .ok())
    }

    fn blob(&self, id: ObjectId) -> Result<Vec<u8>, SourceError> {
        let mut blob = self
            .repo
            .find_blob(id)
            .map_err(self.corrupt(format!("reading blob {id}")))?;
        Ok(std::mem::take(&mut blob.data))
    }

    /// Fails when the blob `id` (the file `path`) is over `limit` bytes,
    /// reading only the object's header.
    fn check_size(&self, id: ObjectId, path: &str, limit: u64) -> Result<(), SourceError> {
        if limit == u64::MAX {
            return Ok(());
        }
        let size = self
            .repo
            .find_header(id)
            .map_err(self.corrupt(format!("reading the header of blob {id}")))?
            .size();
        if size > limit {
            return Err(SourceError::FileTooLarge {
                url: display_url(self.url),
                revision: self.revision.to_owned(),
                path: path.to_owned(),
                size,
                limit,
            });
        }
        Ok(())
    }

    /// The contents of the file the link at repository path `link` points
    /// to, at most `limit` bytes.
    fn follow_link(
        &self,
        root: ObjectId,
        link: &str,
        link_blob: ObjectId,
        limit: u64,
    ) -> Result<Vec<u8>, SourceError> {
        let target = String::from_utf8_lossy(&self.blob(link_blob)?).into_owned();
        let escapes = || SourceError::PathEscapes {
            url: display_url(self.url),
            path: format!("{link} -> {target}"),
        };
        if target.starts_with('/') {
            return Err(escapes());
        }
        let mut parts: Vec<&str> = link.split('/').collect();
        parts.pop(); // the link's own name
        for component in target.split('/') {
            match component {
                "" | "." => {}
                ".." => {
                    if parts.pop().is_none() {
                        return Err(escapes());
                    }
                }
                name => parts.push(name),
            }
        }
        let broken =
            |why: &str| self.not_found(link, format!("it is a symbolic link to `{target}`, {why}"));
        let Some((file, folders)) = parts.split_last() else {
            return Err(broken("which is the repository root, not a file"));
        };
        // Like gix's `Tree::lookup_entry`: every folder on the way is read
        // whatever its mode says, and anything that is not a tree ends the
        // lookup with nothing found.
        let mut tree = self.tree(root)?;
        for folder in folders {
            let entry = tree
                .find(folder.as_bytes())
                .ok_or_else(|| broken("which does not exist"))?;
            tree = self
                .tree_on_link_path(entry.oid)
                .map_err(self.corrupt(format!("looking up {}", parts.join("/"))))?
                .ok_or_else(|| broken("which does not exist"))?;
        }
        let entry = tree
            .find(file.as_bytes())
            .ok_or_else(|| broken("which does not exist"))?;
        match entry.kind {
            EntryKind::Blob | EntryKind::BlobExecutable => {
                self.check_size(entry.oid, link, limit)?;
                self.blob(entry.oid)
            }
            EntryKind::Link => Err(broken(
                "which is itself a symbolic link (only one level is followed)",
            )),
            EntryKind::Tree => Err(broken(
                "which is a folder; point the application at the folder instead",
            )),
            EntryKind::Commit => Err(broken("which is a submodule")),
        }
    }

    /// Fails unless the symbolic link at repository path `link`, whose
    /// target is `target`, resolves inside the repository. `chain` holds the
    /// trees from the root's children down to the link's folder.
    ///
    /// The target is taken relative to the link's folder and every link met
    /// on the way is followed as the kernel would follow it, so a link
    /// through another link that leaves (`a -> b/x`, `b -> ../..`) leaves
    /// too. Parts of the target missing from the tree are taken as plain
    /// names (a tool could create them later), so `missing/../..` at the
    /// root still leaves.
    fn check_link_stays_inside(
        &self,
        root: ObjectId,
        chain: &[ObjectId],
        link: &str,
        target: &[u8],
    ) -> Result<(), SourceError> {
        let target = String::from_utf8_lossy(target);
        // The last link followed on the way, for the message.
        let mut through: Option<(String, String)> = None;
        let escapes = |through: &Option<(String, String)>| SourceError::PathEscapes {
            url: display_url(self.url),
            path: match through {
                None => format!("{link} -> {target}"),
                Some((inner, inner_target)) => {
                    format!("{link} -> {target} (through {inner} -> {inner_target})")
                }
            },
        };
        if target.starts_with('/') {
            return Err(escapes(&through));
        }
        // The folder reached so far, one (name, tree) per component below
        // the root; no tree for a part missing from the repository.
        let mut folders: Vec<(String, Option<ObjectId>)> = link
            .split('/')
            .zip(chain)
            .map(|(name, id)| (name.to_owned(), Some(*id)))
            .collect();
        let mut pending: std::collections::VecDeque<String> =
            target.split('/').map(str::to_owned).collect();
        let mut hops = 0;
        while let Some(component) = pending.pop_front() {
            match component.as_str() {
                "" | "." => {}
                ".." => {
                    if folders.pop().is_none() {
                        return Err(escapes(&through));
                    }
                }
                name => {
                    let folder = match folders.last() {
                        Some((_, tree)) => *tree,
                        None => Some(root),
                    };
                    let entry = match folder {
                        Some(id) => self
                            .tree(id)?
                            .find(name.as_bytes())
                            .map(|entry| (entry.kind, entry.oid)),
                        None => None,
                    };
                    match entry {
                        Some((EntryKind::Link, id)) => {
                            hops += 1;
                            if hops > MAX_LINK_HOPS {
                                return Err(self.not_found(
                                    link,
                                    format!(
                                        "it is a symbolic link to `{target}`, which goes through more than {MAX_LINK_HOPS} links (a loop)"
                                    ),
                                ));
                            }
                            let mut inner: Vec<&str> =
                                folders.iter().map(|(name, _)| name.as_str()).collect();
                            inner.push(name);
                            let inner_target =
                                String::from_utf8_lossy(&self.blob(id)?).into_owned();
                            let absolute = inner_target.starts_with('/');
                            for part in inner_target.split('/').rev() {
                                pending.push_front(part.to_owned());
                            }
                            through = Some((inner.join("/"), inner_target));
                            if absolute {
                                return Err(escapes(&through));
                            }
                        }
                        Some((EntryKind::Tree, id)) => folders.push((name.to_owned(), Some(id))),
                        _ => folders.push((name.to_owned(), None)),
                    }
                }
            }
        }
        Ok(())
    }
}

/// Why git would refuse to check out a tree entry named `name`, if it would.
fn unsafe_entry_name(name: &BStr) -> Option<&'static str> {
    if name.is_empty() || name == "." || name == ".." || name.contains(&b'/') || name.contains(&0) {
        return Some("its name would leave its folder");
    }
    if name.eq_ignore_ascii_case(b".git") {
        return Some(
            "a `.git` entry could make tools take the folder for a repository with settings chosen by whoever wrote it",
        );
    }
    None
}

/// Collect the paths that differ between two trees (either may be absent).
fn diff_trees(
    reader: &TreeReader<'_>,
    prefix: &str,
    from: Option<ObjectId>,
    to: Option<ObjectId>,
    changed: &mut Vec<String>,
) -> Result<(), SourceError> {
    fn entries(tree: Option<&IndexedTree>) -> BTreeMap<&BStr, (EntryKind, ObjectId)> {
        tree.into_iter()
            .flat_map(IndexedTree::iter)
            .map(|entry| (entry.name, (entry.kind, entry.oid)))
            .collect()
    }
    if from == to {
        return Ok(());
    }
    let from_tree = from.map(|id| reader.tree(id)).transpose()?;
    let to_tree = to.map(|id| reader.tree(id)).transpose()?;
    let old = entries(from_tree.as_deref());
    let new = entries(to_tree.as_deref());
    let names: std::collections::BTreeSet<&BStr> = old.keys().chain(new.keys()).copied().collect();
    for name in names {
        let path = join_path(prefix, &name.to_str_lossy());
        let before = old.get(name).copied();
        let after = new.get(name).copied();
        if before == after {
            continue;
        }
        let tree_of = |side: Option<(EntryKind, ObjectId)>| {
            side.filter(|(kind, _)| *kind == EntryKind::Tree)
                .map(|(_, id)| id)
        };
        let (old_tree, new_tree) = (tree_of(before), tree_of(after));
        if old_tree.is_some() || new_tree.is_some() {
            diff_trees(reader, &path, old_tree, new_tree, changed)?;
        }
        let is_leaf = |side: Option<(EntryKind, ObjectId)>| {
            side.is_some_and(|(kind, _)| kind != EntryKind::Tree)
        };
        if is_leaf(before) || is_leaf(after) {
            changed.push(path);
        }
    }
    Ok(())
}

/// The components of a repository-relative folder path; `None` when it is
/// absolute or has a `..` component.
fn split_repo_path(path: &str) -> Option<Vec<&str>> {
    if path.starts_with('/') {
        return None;
    }
    let mut components = Vec::new();
    for component in path.split('/') {
        match component {
            "" | "." => {}
            ".." => return None,
            name => components.push(name),
        }
    }
    Some(components)
}

fn join_path(folder: &str, name: &str) -> String {
    if folder.is_empty() {
        name.to_owned()
    } else {
        format!("{folder}/{name}")
    }
}

/// `base` components followed by a relative path, as one repository path.
fn join_components(base: &[&str], relative: &str) -> String {
    let mut path = base.join("/");
    if !path.is_empty() {
        path.push('/');
    }
    path.push_str(relative);
    path
}

#[cfg(test)]
pub(crate) mod tests {
    use std::process::Command;
    use std::sync::Barrier;
    use std::time::Duration;

    use super::*;

    /// Run `git` in `dir` with a fixed identity and no user or system config;
    /// returns trimmed stdout.
    pub(crate) fn git(dir: &Path, args: &[&str]) -> String {
        let output = Command::new("git")
            .args(["-c", "init.defaultBranch=main", "-c", "core.symlinks=true"])
            .args(args)
            .current_dir(dir)
            .env("GIT_AUTHOR_NAME", "Plumb Test")
            .env("GIT_AUTHOR_EMAIL", "test@plumb.invalid")
            .env("GIT_COMMITTER_NAME", "Plumb Test")
            .env("GIT_COMMITTER_EMAIL", "test@plumb.invalid")
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .output()
            .expect("git runs");
        assert!(
            output.status.success(),
            "git {args:?} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout)
            .expect("utf-8")
            .trim()
            .to_owned()
    }

    fn write(dir: &Path, path: &str, content: &str) {
        let file = dir.join(path);
        std::fs::create_dir_all(file.parent().expect("has a parent")).expect("mkdir");
        std::fs::write(file, content).expect("write");
    }

    fn commit_all(dir: &Path, message: &str) -> String {
        git(dir, &["add", "-A"]);
        git(dir, &["commit", "-q", "-m", message]);
        git(dir, &["rev-parse", "HEAD"])
    }

    /// An upstream repository and a cache (with its own root) pointed at it.
    struct Fixture {
        upstream: tempfile::TempDir,
        cache_root: tempfile::TempDir,
        cache: RepoCache,
        url: String,
    }

    impl Fixture {
        fn dir(&self) -> &Path {
            self.upstream.path()
        }
    }

    /// Upstream layout:
    ///
    /// ```text
    /// README.md
    /// apps/web/deploy.yaml, apps/web/svc.yaml, apps/web/base/cm.yaml
    /// apps/api/deploy.yaml
    /// ```
    ///
    /// with an annotated tag `v1` and a lightweight tag `light` on the first commit.
    fn fixture() -> (Fixture, String) {
        let upstream = tempfile::tempdir().expect("tempdir");
        let dir = upstream.path();
        git(dir, &["init", "-q"]);
        write(dir, "README.md", "readme\n");
        write(dir, "apps/web/deploy.yaml", "kind: Deployment\n");
        write(dir, "apps/web/svc.yaml", "kind: Service\n");
        write(dir, "apps/web/base/cm.yaml", "kind: ConfigMap\n");
        write(dir, "apps/api/deploy.yaml", "kind: Deployment\nname: api\n");
        let first = commit_all(dir, "first");
        git(dir, &["tag", "-a", "v1", "-m", "release v1"]);
        git(dir, &["tag", "light"]);
        let cache_root = tempfile::tempdir().expect("tempdir");
        let cache = RepoCache::new(cache_root.path().join("repos"));
        let url = format!("file://{}", dir.display());
        (
            Fixture {
                upstream,
                cache_root,
                cache,
                url,
            },
            first,
        )
    }

    fn paths(files: &[SourceFile]) -> Vec<&str> {
        files.iter().map(|file| file.path.as_str()).collect()
    }

    #[test]
    fn repo_cache_is_send_and_sync() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<RepoCache>();
        assert_send_sync::<SourceError>();
    }

    #[test]
    fn clone_then_resolve_branch_tags_shas_and_head() {
        let (fx, first) = fixture();
        write(
            fx.dir(),
            "apps/web/deploy.yaml",
            "kind: Deployment\nreplicas: 2\n",
        );
        let second = commit_all(fx.dir(), "second");
        git(fx.dir(), &["branch", "feature", &first]);

        fx.cache.fetch(&fx.url).expect("clone");
        assert_eq!(fx.cache.fetch_count(), 1);

        let resolve = |rev: &str| fx.cache.resolve(&fx.url, rev).expect(rev);
        assert_eq!(resolve("main"), second);
        assert_eq!(resolve("refs/heads/main"), second);
        assert_eq!(resolve("feature"), first);
        assert_eq!(
            resolve("v1"),
            first,
            "annotated tag is peeled to its commit"
        );
        assert_eq!(resolve("light"), first);
        assert_eq!(resolve(&first), first);
        assert_eq!(resolve(&first[..7]), first);
        assert_eq!(resolve(&second[..4]), second);
        assert_eq!(resolve("HEAD"), second);
        assert_eq!(
            resolve(""),
            second,
            "empty means the remote's default branch"
        );
    }

    #[test]
    fn head_follows_a_default_branch_other_than_main() {
        let (fx, _) = fixture();
        git(fx.dir(), &["checkout", "-q", "-b", "trunk"]);
        write(fx.dir(), "trunk.txt", "t\n");
        let trunk = commit_all(fx.dir(), "on trunk");

        fx.cache.fetch(&fx.url).expect("clone");
        assert_eq!(fx.cache.resolve(&fx.url, "HEAD").expect("HEAD"), trunk);

        git(fx.dir(), &["checkout", "-q", "main"]);
        fx.cache.fetch(&fx.url).expect("fetch");
        let main = git(fx.dir(), &["rev-parse", "main"]);
        assert_eq!(
            fx.cache.resolve(&fx.url, "HEAD").expect("HEAD"),
            main,
            "HEAD follows the remote's default branch after a fetch"
        );
    }

    #[test]
    fn fetch_sees_a_new_upstream_commit() {
        let (fx, first) = fixture();
        fx.cache.fetch(&fx.url).expect("clone");
        assert_eq!(fx.cache.resolve(&fx.url, "main").expect("main"), first);

        write(fx.dir(), "apps/web/new.yaml", "kind: Secret\n");
        let second = commit_all(fx.dir(), "second");
        assert_eq!(
            fx.cache.resolve(&fx.url, "main").expect("main"),
            first,
            "resolve never goes to the network"
        );

        fx.cache.fetch(&fx.url).expect("fetch");
        assert_eq!(fx.cache.fetch_count(), 2);
        assert_eq!(fx.cache.resolve(&fx.url, "main").expect("main"), second);
        let files = fx
            .cache
            .read_dir(&fx.url, &second, "apps/web", false)
            .expect("read");
        assert!(paths(&files).contains(&"new.yaml"));
    }

    /// What a deployment made live: the commit times between the previous
    /// deployment and this one (each commit's own date), and whether it is
    /// a revert.
    #[test]
    fn changes_lists_the_commit_times_since_the_previous_revision() {
        let (fx, first) = fixture();
        let dated = |date: &str, message: &str| {
            write(fx.dir(), &format!("apps/{message}.yaml"), "kind: Secret\n");
            git(fx.dir(), &["add", "-A"]);
            let out = Command::new("git")
                .args(["commit", "-q", "-m", message])
                .env("GIT_AUTHOR_DATE", date)
                .env("GIT_COMMITTER_DATE", date)
                .current_dir(fx.dir())
                .status()
                .expect("git commit");
            assert!(out.success());
            git(fx.dir(), &["rev-parse", "HEAD"])
        };
        dated("2026-01-01T10:00:00Z", "second");
        let third = dated("2026-01-02T10:00:00Z", "third");
        fx.cache.fetch(&fx.url).expect("clone");
        let changes = fx
            .cache
            .changes(&fx.url, Some(&first), &third, 10)
            .expect("changes");
        assert_eq!(changes.commit_times, [1_767_348_000, 1_767_261_600]);
        assert!(!changes.revert);
        // Without a previous deployment: the commit's own time.
        let alone = fx
            .cache
            .changes(&fx.url, None, &third, 10)
            .expect("changes");
        assert_eq!(alone.commit_times, [1_767_348_000]);
    }

    #[test]
    fn fetch_prunes_branches_and_tags_deleted_upstream_and_moves_tags() {
        let (fx, first) = fixture();
        git(fx.dir(), &["branch", "doomed"]);
        fx.cache.fetch(&fx.url).expect("clone");
        assert!(fx.cache.resolve(&fx.url, "doomed").is_ok());

        git(fx.dir(), &["branch", "-D", "doomed"]);
        git(fx.dir(), &["tag", "-d", "light"]);
        write(fx.dir(), "x.txt", "x\n");
        let second = commit_all(fx.dir(), "second");
        git(fx.dir(), &["tag", "-f", "-a", "v1", "-m", "moved"]);
        fx.cache.fetch(&fx.url).expect("fetch");

        assert!(matches!(
            fx.cache.resolve(&fx.url, "doomed"),
            Err(SourceError::RevisionNotFound { .. })
        ));
        assert!(matches!(
            fx.cache.resolve(&fx.url, "light"),
            Err(SourceError::RevisionNotFound { .. })
        ));
        assert_eq!(fx.cache.resolve(&fx.url, "v1").expect("v1"), second);
        assert_ne!(first, second);
    }

    #[test]
    fn read_dir_without_recurse_lists_only_direct_children() {
        let (fx, first) = fixture();
        fx.cache.fetch(&fx.url).expect("clone");
        let files = fx
            .cache
            .read_dir(&fx.url, &first, "apps/web", false)
            .expect("read");
        assert_eq!(paths(&files), ["deploy.yaml", "svc.yaml"]);
        assert_eq!(files[0].data, b"kind: Deployment\n");
    }

    #[test]
    fn read_files_loads_only_selected_files_and_refuses_an_oversized_one() {
        let (fx, _) = fixture();
        let dir = fx.dir();
        write(dir, "apps/web/blob.bin", &"x".repeat(4096));
        write(dir, "apps/web/link.yaml", "");
        std::fs::remove_file(dir.join("apps/web/link.yaml")).expect("remove");
        std::os::unix::fs::symlink("blob.bin", dir.join("apps/web/link.yaml")).expect("link");
        let commit = commit_all(dir, "a large file beside the manifests");
        fx.cache.fetch(&fx.url).expect("clone");
        let yaml_only = |path: &str| path.ends_with("deploy.yaml") || path.ends_with("svc.yaml");
        let filter = ReadFilter {
            recurse: true,
            select: &yaml_only,
            max_file_size: 1024,
        };
        let files = fx
            .cache
            .read_files(&fx.url, &commit, "apps/web", &filter)
            .expect("the large file is never read");
        assert_eq!(paths(&files), ["deploy.yaml", "svc.yaml"]);

        let everything = |_: &str| true;
        let filter = ReadFilter {
            select: &everything,
            ..filter
        };
        let err = fx
            .cache
            .read_files(&fx.url, &commit, "apps/web", &filter)
            .expect_err("over the limit");
        assert!(
            matches!(&err, SourceError::FileTooLarge { path, size: 4096, limit: 1024, .. } if path == "blob.bin"),
            "{err}"
        );
        // A link to a large file is refused the same way.
        let link_only = |path: &str| path == "link.yaml";
        let filter = ReadFilter {
            select: &link_only,
            ..filter
        };
        let err = fx
            .cache
            .read_files(&fx.url, &commit, "apps/web", &filter)
            .expect_err("over the limit");
        assert!(
            matches!(&err, SourceError::FileTooLarge { size: 4096, .. }),
            "{err}"
        );
    }

    #[test]
    fn read_dir_with_recurse_returns_sorted_paths_relative_to_the_folder() {
        let (fx, first) = fixture();
        fx.cache.fetch(&fx.url).expect("clone");
        let files = fx
            .cache
            .read_dir(&fx.url, &first, "apps/web/", true)
            .expect("read");
        assert_eq!(paths(&files), ["base/cm.yaml", "deploy.yaml", "svc.yaml"]);

        for root in ["", "."] {
            let files = fx
                .cache
                .read_dir(&fx.url, &first, root, true)
                .expect("read root");
            assert_eq!(
                paths(&files),
                [
                    "README.md",
                    "apps/api/deploy.yaml",
                    "apps/web/base/cm.yaml",
                    "apps/web/deploy.yaml",
                    "apps/web/svc.yaml"
                ]
            );
        }
        let top = fx
            .cache
            .read_dir(&fx.url, "main", "", false)
            .expect("by branch name");
        assert_eq!(paths(&top), ["README.md"]);
    }

    #[test]
    fn read_dir_rejects_dotdot_and_absolute_paths() {
        let (fx, first) = fixture();
        fx.cache.fetch(&fx.url).expect("clone");
        for path in ["..", "apps/../..", "apps/web/../../..", "/etc", "apps/.."] {
            let err = fx
                .cache
                .read_dir(&fx.url, &first, path, true)
                .expect_err(path);
            assert!(
                matches!(err, SourceError::PathEscapes { .. }),
                "{path}: {err}"
            );
            assert!(!err.is_spurious());
        }
    }

    #[test]
    fn read_dir_symlink_out_of_the_repository_is_path_escapes() {
        let (fx, _) = fixture();
        std::os::unix::fs::symlink("../../../etc/passwd", fx.dir().join("apps/web/evil.yaml"))
            .expect("symlink");
        let commit = commit_all(fx.dir(), "evil link");
        fx.cache.fetch(&fx.url).expect("clone");

        let err = fx
            .cache
            .read_dir(&fx.url, &commit, "apps/web", false)
            .expect_err("escapes");
        match &err {
            SourceError::PathEscapes { path, .. } => {
                assert!(path.starts_with("apps/web/evil.yaml"), "{path}")
            }
            other => panic!("expected PathEscapes, got {other:?}"),
        }
        let absolute = fx.dir().join("apps/api/abs.yaml");
        std::os::unix::fs::symlink("/etc/hostname", absolute).expect("symlink");
        let commit = commit_all(fx.dir(), "absolute link");
        fx.cache.fetch(&fx.url).expect("fetch");
        let err = fx
            .cache
            .read_dir(&fx.url, &commit, "apps/api", false)
            .expect_err("absolute");
        assert!(matches!(err, SourceError::PathEscapes { .. }), "{err}");
    }

    #[test]
    fn read_dir_symlink_inside_the_repository_returns_the_target_content() {
        let (fx, _) = fixture();
        std::os::unix::fs::symlink("../api/deploy.yaml", fx.dir().join("apps/web/api.yaml"))
            .expect("symlink");
        let commit = commit_all(fx.dir(), "inner link");
        fx.cache.fetch(&fx.url).expect("clone");

        let files = fx
            .cache
            .read_dir(&fx.url, &commit, "apps/web", false)
            .expect("read");
        assert_eq!(paths(&files), ["api.yaml", "deploy.yaml", "svc.yaml"]);
        assert_eq!(files[0].data, b"kind: Deployment\nname: api\n");
    }

    #[test]
    fn read_dir_symlink_to_a_link_or_missing_file_is_an_error() {
        let (fx, _) = fixture();
        std::os::unix::fs::symlink("nowhere.yaml", fx.dir().join("apps/web/dangling.yaml"))
            .expect("symlink");
        let commit = commit_all(fx.dir(), "dangling");
        fx.cache.fetch(&fx.url).expect("clone");
        let err = fx
            .cache
            .read_dir(&fx.url, &commit, "apps/web", false)
            .expect_err("dangling");
        assert!(matches!(err, SourceError::PathNotFound { .. }), "{err}");
        assert!(err.to_string().contains("does not exist"), "{err}");

        std::fs::remove_file(fx.dir().join("apps/web/dangling.yaml")).expect("rm");
        std::os::unix::fs::symlink("svc.yaml", fx.dir().join("apps/web/one.yaml"))
            .expect("symlink");
        std::os::unix::fs::symlink("one.yaml", fx.dir().join("apps/web/two.yaml"))
            .expect("symlink");
        let commit = commit_all(fx.dir(), "chain");
        fx.cache.fetch(&fx.url).expect("fetch");
        let err = fx
            .cache
            .read_dir(&fx.url, &commit, "apps/web", false)
            .expect_err("chain");
        assert!(err.to_string().contains("itself a symbolic link"), "{err}");
    }

    #[test]
    fn read_dir_skips_submodules() {
        let (fx, first) = fixture();
        git(
            fx.dir(),
            &[
                "update-index",
                "--add",
                "--cacheinfo",
                &format!("160000,{first},apps/web/sub"),
            ],
        );
        git(fx.dir(), &["commit", "-q", "-m", "submodule"]);
        let commit = git(fx.dir(), &["rev-parse", "HEAD"]);
        fx.cache.fetch(&fx.url).expect("clone");
        let files = fx
            .cache
            .read_dir(&fx.url, &commit, "apps/web", true)
            .expect("read");
        assert_eq!(paths(&files), ["base/cm.yaml", "deploy.yaml", "svc.yaml"]);
    }

    /// Checks `commit` of the fixture out into a new temporary folder.
    fn checkout(fx: &Fixture, commit: &str) -> Result<tempfile::TempDir, SourceError> {
        let dest = tempfile::tempdir().expect("tempdir");
        fx.cache.checkout(&fx.url, commit, dest.path())?;
        Ok(dest)
    }

    /// Every path below `dir`, relative and sorted, folders with a `/`, links
    /// as `link -> target`.
    fn listing(dir: &Path) -> Vec<String> {
        let mut out = Vec::new();
        let mut pending = vec![dir.to_owned()];
        while let Some(folder) = pending.pop() {
            for entry in std::fs::read_dir(&folder).expect("read_dir") {
                let path = entry.expect("entry").path();
                let relative = path
                    .strip_prefix(dir)
                    .expect("below")
                    .to_string_lossy()
                    .into_owned();
                let kind = std::fs::symlink_metadata(&path).expect("lstat").file_type();
                if kind.is_symlink() {
                    let target = std::fs::read_link(&path).expect("read_link");
                    out.push(format!("{relative} -> {}", target.display()));
                } else if kind.is_dir() {
                    out.push(format!("{relative}/"));
                    pending.push(path);
                } else {
                    out.push(relative);
                }
            }
        }
        out.sort();
        out
    }

    #[test]
    fn checkout_writes_files_folders_executable_bits_and_inner_links() {
        use std::os::unix::fs::PermissionsExt as _;

        let (fx, first) = fixture();
        let dir = fx.dir();
        write(dir, "scripts/run.sh", "#!/bin/sh\necho hi\n");
        let mut perms = std::fs::metadata(dir.join("scripts/run.sh"))
            .expect("stat")
            .permissions();
        perms.set_mode(0o755);
        std::fs::set_permissions(dir.join("scripts/run.sh"), perms).expect("chmod");
        std::os::unix::fs::symlink("../api/deploy.yaml", dir.join("apps/web/api.yaml"))
            .expect("symlink");
        std::os::unix::fs::symlink("web", dir.join("apps/current")).expect("symlink");
        std::os::unix::fs::symlink("not-yet/there.yaml", dir.join("apps/dangling.yaml"))
            .expect("symlink");
        commit_all(dir, "links and a script");
        git(
            dir,
            &[
                "update-index",
                "--add",
                "--cacheinfo",
                &format!("160000,{first},apps/sub"),
            ],
        );
        git(dir, &["commit", "-q", "-m", "submodule"]);
        fx.cache.fetch(&fx.url).expect("clone");

        let dest = checkout(&fx, "main").expect("checkout");
        let root = dest.path();
        assert_eq!(
            listing(root),
            [
                "README.md",
                "apps/",
                "apps/api/",
                "apps/api/deploy.yaml",
                "apps/current -> web",
                "apps/dangling.yaml -> not-yet/there.yaml",
                "apps/web/",
                "apps/web/api.yaml -> ../api/deploy.yaml",
                "apps/web/base/",
                "apps/web/base/cm.yaml",
                "apps/web/deploy.yaml",
                "apps/web/svc.yaml",
                "scripts/",
                "scripts/run.sh",
            ],
            "no .git folder, no submodule"
        );
        let read = |path: &str| std::fs::read_to_string(root.join(path)).expect(path);
        assert_eq!(read("apps/web/api.yaml"), "kind: Deployment\nname: api\n");
        assert_eq!(read("apps/current/svc.yaml"), "kind: Service\n");
        let mode = |path: &str| {
            std::fs::metadata(root.join(path))
                .expect(path)
                .permissions()
                .mode()
        };
        assert_eq!(mode("scripts/run.sh") & 0o111, 0o111, "executable kept");
        assert_eq!(mode("README.md") & 0o111, 0, "plain file not executable");

        // An older commit is checked out as it was.
        let old = checkout(&fx, &first).expect("first");
        assert!(!old.path().join("scripts").exists());
        assert_eq!(
            std::fs::read_to_string(old.path().join("apps/api/deploy.yaml")).expect("read"),
            "kind: Deployment\nname: api\n"
        );
    }

    #[test]
    fn checkout_refuses_links_out_of_the_repository_naming_link_and_target() {
        let (fx, _) = fixture();
        let dir = fx.dir().to_owned();
        fx.cache.fetch(&fx.url).expect("clone");
        // (link, target, extra link needed), each in a commit of its own.
        let cases = [
            ("apps/web/evil.yaml", "../../../etc/passwd", None),
            ("apps/abs.yaml", "/etc/hostname", None),
            ("up", "..", None),
            ("apps/web/gone.yaml", "missing/../../../..", None),
            // `apps/root` stays inside; going up from it leaves.
            ("apps/web/through", "../root/..", Some(("apps/root", ".."))),
            // `apps/etc` leaves by itself, and so does what goes through it.
            (
                "apps/web/via.yaml",
                "../etc2/passwd",
                Some(("apps/etc2", "/etc")),
            ),
        ];
        for (link, target, helper) in cases {
            let mut links = vec![(link, target)];
            links.extend(helper);
            for (link, target) in &links {
                std::os::unix::fs::symlink(target, dir.join(link)).expect("symlink");
            }
            let commit = commit_all(&dir, "an escaping link");
            fx.cache.fetch(&fx.url).expect("fetch");
            let err = checkout(&fx, &commit).expect_err(link);
            match &err {
                SourceError::PathEscapes { path, .. } => {
                    // The helper may be reported instead when it leaves by itself.
                    let named = links
                        .iter()
                        .any(|(link, target)| path.starts_with(&format!("{link} -> {target}")));
                    assert!(named, "{link}: {path}");
                }
                other => panic!("{link}: expected PathEscapes, got {other:?}"),
            }
            assert!(!err.is_spurious());
            for (link, _) in &links {
                std::fs::remove_file(dir.join(link)).expect("rm");
            }
        }
        // A link through another one is reported with both.
        std::os::unix::fs::symlink("..", dir.join("apps/root")).expect("symlink");
        std::os::unix::fs::symlink("../root/../x", dir.join("apps/web/through")).expect("symlink");
        let commit = commit_all(&dir, "through another link");
        fx.cache.fetch(&fx.url).expect("fetch");
        let err = checkout(&fx, &commit).expect_err("through");
        assert!(
            err.to_string()
                .contains("apps/web/through -> ../root/../x (through apps/root -> ..)"),
            "{err}"
        );
    }

    #[test]
    fn checkout_refuses_a_link_loop_and_keeps_links_that_stay_inside() {
        let (fx, _) = fixture();
        let dir = fx.dir();
        // `apps/root -> ..` points at the root itself: inside.
        std::os::unix::fs::symlink("..", dir.join("apps/root")).expect("symlink");
        std::os::unix::fs::symlink(
            "../root/apps/api/deploy.yaml",
            dir.join("apps/web/far.yaml"),
        )
        .expect("symlink");
        let inside = commit_all(dir, "links inside");
        std::os::unix::fs::symlink("b", dir.join("a")).expect("symlink");
        std::os::unix::fs::symlink("a", dir.join("b")).expect("symlink");
        let looping = commit_all(dir, "a loop");
        fx.cache.fetch(&fx.url).expect("clone");

        let dest = checkout(&fx, &inside).expect("inside");
        assert_eq!(
            std::fs::read_to_string(dest.path().join("apps/web/far.yaml")).expect("read"),
            "kind: Deployment\nname: api\n"
        );
        let err = checkout(&fx, &looping).expect_err("loop");
        assert!(matches!(err, SourceError::PathNotFound { .. }), "{err}");
        assert!(err.to_string().contains("a loop"), "{err}");
    }

    #[test]
    fn checkout_refuses_a_dot_git_entry() {
        let (fx, _) = fixture();
        let dir = fx.dir();
        // git refuses `.git` in its index, so the tree is written by hand.
        let blob = git(dir, &["hash-object", "-w", "README.md"]);
        let inner = git_with_input(dir, &["mktree"], &format!("100644 blob {blob}\t.git\n"));
        let root = git_with_input(dir, &["mktree"], &format!("040000 tree {inner}\tapps\n"));
        let commit = git(dir, &["commit-tree", &root, "-m", "a .git entry"]);
        git(dir, &["update-ref", "refs/heads/evil", &commit]);
        fx.cache.fetch(&fx.url).expect("clone");

        let err = checkout(&fx, "evil").expect_err(".git");
        match &err {
            SourceError::UnsafePath { path, .. } => assert_eq!(path, "apps/.git"),
            other => panic!("expected UnsafePath, got {other:?}"),
        }
    }

    #[test]
    fn checkout_before_the_first_fetch_is_not_fetched() {
        let (fx, _) = fixture();
        let err = checkout(&fx, "main").expect_err("not fetched");
        assert!(matches!(err, SourceError::NotFetched { .. }), "{err}");
    }

    /// Run `git` in `dir` with `input` on its standard input; returns
    /// trimmed stdout.
    fn git_with_input(dir: &Path, args: &[&str], input: &str) -> String {
        use std::io::Write as _;
        let mut child = Command::new("git")
            .args(args)
            .current_dir(dir)
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("git runs");
        child
            .stdin
            .take()
            .expect("piped")
            .write_all(input.as_bytes())
            .expect("write");
        let output = child.wait_with_output().expect("git runs");
        assert!(output.status.success(), "git {args:?} failed");
        String::from_utf8(output.stdout)
            .expect("utf-8")
            .trim()
            .to_owned()
    }

    #[test]
    fn read_dir_missing_path_is_path_not_found() {
        let (fx, first) = fixture();
        fx.cache.fetch(&fx.url).expect("clone");
        let err = fx
            .cache
            .read_dir(&fx.url, &first, "apps/nope", true)
            .expect_err("missing");
        match &err {
            SourceError::PathNotFound { path, revision, .. } => {
                assert_eq!(path, "apps/nope");
                assert_eq!(revision, &first);
            }
            other => panic!("expected PathNotFound, got {other:?}"),
        }
    }

    #[test]
    fn read_dir_on_a_file_is_path_not_found_saying_it_is_a_file() {
        let (fx, first) = fixture();
        fx.cache.fetch(&fx.url).expect("clone");
        let err = fx
            .cache
            .read_dir(&fx.url, &first, "apps/web/deploy.yaml", false)
            .expect_err("a file");
        assert!(matches!(err, SourceError::PathNotFound { .. }));
        assert!(err.to_string().contains("is a file, not a folder"), "{err}");
    }

    #[test]
    fn unknown_revision_is_revision_not_found() {
        let (fx, _) = fixture();
        fx.cache.fetch(&fx.url).expect("clone");
        for revision in [
            "nope",
            "deadbeef",
            "0123456789012345678901234567890123456789",
            "a b",
        ] {
            let err = fx.cache.resolve(&fx.url, revision).expect_err(revision);
            assert!(
                matches!(err, SourceError::RevisionNotFound { .. }),
                "{revision}: {err}"
            );
            assert!(err.to_string().contains(revision));
        }
        let err = fx
            .cache
            .read_dir(&fx.url, "nope", "", true)
            .expect_err("read");
        assert!(matches!(err, SourceError::RevisionNotFound { .. }));
    }

    #[test]
    fn cloning_an_empty_repository_succeeds_and_head_does_not_resolve() {
        let upstream = tempfile::tempdir().expect("tempdir");
        git(upstream.path(), &["init", "-q"]);
        let root = tempfile::tempdir().expect("tempdir");
        let cache = RepoCache::new(root.path());
        let url = upstream.path().to_str().expect("utf-8 path");
        cache.fetch(url).expect("clone of an empty repository");
        let err = cache.resolve(url, "HEAD").expect_err("no commits");
        assert!(matches!(err, SourceError::RevisionNotFound { .. }), "{err}");

        write(upstream.path(), "a.yaml", "a: 1\n");
        let first = commit_all(upstream.path(), "first");
        cache.fetch(url).expect("fetch");
        assert_eq!(cache.resolve(url, "HEAD").expect("HEAD"), first);
    }

    #[test]
    fn an_object_over_the_size_limit_fails_the_fetch_naming_the_limit() {
        let upstream = tempfile::tempdir().expect("tempdir");
        git(upstream.path(), &["init", "-q"]);
        write(upstream.path(), "a.yaml", "a: 1\n");
        let first = commit_all(upstream.path(), "first");
        let url = upstream.path().to_str().expect("utf-8 path");
        let root = tempfile::tempdir().expect("tempdir");
        let cache = RepoCache::new(root.path());
        cache.set_max_object_size(1 << 20);
        cache.fetch(url).expect("clone under the limit");
        // A 2 MiB file: the fetch fails, the last fetched commit stays.
        write(upstream.path(), "big.yaml", &"x".repeat(2 << 20));
        commit_all(upstream.path(), "big");
        let err = cache.fetch(url).expect_err("over the limit");
        assert!(matches!(err, SourceError::Unreachable { .. }), "{err}");
        assert!(
            err.to_string()
                .contains("larger than 1048576 bytes (--max-git-object-size"),
            "{err}"
        );
        assert_eq!(cache.resolve(url, "HEAD").expect("HEAD"), first);
        // Without a limit it is fetched.
        let unlimited = RepoCache::new(root.path().join("unlimited"));
        unlimited.fetch(url).expect("no limit");
    }

    #[test]
    fn reading_before_the_first_fetch_is_not_fetched() {
        let (fx, _) = fixture();
        let err = fx.cache.resolve(&fx.url, "main").expect_err("not fetched");
        assert!(matches!(err, SourceError::NotFetched { .. }), "{err}");
        assert_eq!(fx.cache.fetch_count(), 0);
    }

    #[test]
    fn a_new_cache_on_the_same_root_reads_without_fetching() {
        let (fx, first) = fixture();
        fx.cache.fetch(&fx.url).expect("clone");
        let restarted = RepoCache::new(fx.cache.root.clone());
        assert_eq!(restarted.resolve(&fx.url, "main").expect("main"), first);
        assert_eq!(restarted.fetch_count(), 0);
        restarted
            .fetch(&fx.url)
            .expect("fetch into the existing clone");
        assert_eq!(restarted.resolve(&fx.url, "v1").expect("v1"), first);
    }

    #[test]
    fn unreachable_repository_is_unreachable_spurious_and_leaves_nothing_behind() {
        let root = tempfile::tempdir().expect("tempdir");
        let cache = RepoCache::new(root.path().join("repos"));
        let err = cache
            .fetch("file:///nonexistent/plumb-repo")
            .expect_err("unreachable");
        assert!(matches!(err, SourceError::Unreachable { .. }), "{err}");
        assert!(err.is_spurious());
        assert!(
            err.to_string().contains("file:///nonexistent/plumb-repo"),
            "{err}"
        );
        assert_eq!(cache.fetch_count(), 1);
        let leftovers: Vec<_> = std::fs::read_dir(root.path().join("repos"))
            .map(|entries| {
                entries
                    .map(|entry| entry.expect("entry").file_name())
                    .collect()
            })
            .unwrap_or_default();
        assert!(
            leftovers.is_empty(),
            "half-written clone left behind: {leftovers:?}"
        );
        assert!(matches!(
            cache.resolve("file:///nonexistent/plumb-repo", "main"),
            Err(SourceError::NotFetched { .. })
        ));
    }

    #[test]
    fn unreachable_error_never_shows_credentials() {
        let root = tempfile::tempdir().expect("tempdir");
        let cache = RepoCache::new(root.path());
        cache.set_credentials(
            "https://",
            Credentials {
                username: Some("bob".into()),
                password: Some("s3cr3t-token".into()),
            },
        );
        // Port 9 on loopback refuses connections: no real network is used.
        let err = cache
            .fetch("https://alice:hunter2@127.0.0.1:9/org/repo.git")
            .expect_err("unreachable");
        let text = format!("{err} {err:?}");
        assert!(matches!(err, SourceError::Unreachable { .. }), "{text}");
        assert!(!text.contains("hunter2"), "{text}");
        assert!(!text.contains("s3cr3t-token"), "{text}");
        assert!(!text.contains("alice:"), "{text}");
    }

    #[test]
    fn configured_credentials_are_offered_when_asked_but_never_over_plain_http() {
        use std::io::{BufRead, BufReader, Write};
        use std::net::TcpListener;

        // A server that asks for credentials. gix asks our helper, gets the
        // configured identity and refuses to send it in clear text, which
        // shows the helper is wired in without needing TLS in a unit test.
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let server = std::thread::spawn(move || {
            let (mut stream, _) = listener.accept().expect("accept");
            let mut reader = BufReader::new(stream.try_clone().expect("clone"));
            let mut line = String::new();
            while reader.read_line(&mut line).expect("read") > 0 && line != "\r\n" {
                line.clear();
            }
            stream
                .write_all(
                    b"HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Basic realm=\"plumb\"\r\n\
                      Content-Length: 0\r\nConnection: close\r\n\r\n",
                )
                .expect("write");
        });

        let root = tempfile::tempdir().expect("tempdir");
        let cache = RepoCache::new(root.path());
        cache.set_credentials(
            &format!("http://127.0.0.1:{port}/"),
            Credentials {
                username: Some("bob".into()),
                password: Some("s3cr3t-token".into()),
            },
        );
        let err = cache
            .fetch(&format!("http://127.0.0.1:{port}/org/repo.git"))
            .expect_err("plain http with credentials");
        server.join().expect("server");
        let text = format!("{err} {err:?}");
        assert!(matches!(err, SourceError::Unreachable { .. }), "{text}");
        assert!(text.contains("clear text"), "{text}");
        assert!(!text.contains("s3cr3t-token"), "{text}");
    }

    #[test]
    fn a_corrupt_cached_repository_is_cloned_again() {
        let (fx, first) = fixture();
        fx.cache.fetch(&fx.url).expect("clone");
        let url = normalize_url(&fx.url).expect("url");
        let dir = fx.cache.repo_dir(&url);
        std::fs::remove_dir_all(&dir).expect("rm");
        std::fs::create_dir_all(&dir).expect("mkdir");
        std::fs::write(dir.join("junk"), "junk").expect("write");

        let fresh = RepoCache::new(fx.cache.root.clone());
        fresh.fetch(&fx.url).expect("re-clone");
        assert_eq!(fresh.resolve(&fx.url, "main").expect("main"), first);
    }

    #[test]
    fn concurrent_fetches_of_one_url_do_one_network_fetch() {
        let (fx, _) = fixture();
        fx.cache.fetch(&fx.url).expect("clone");
        write(fx.dir(), "apps/web/new.yaml", "kind: Secret\n");
        let second = commit_all(fx.dir(), "second");
        let before = fx.cache.fetch_count();

        let url = normalize_url(&fx.url).expect("url");
        let slot = fx.cache.slot(&url);
        // Hold the lock so all eight callers queue up behind it, each having
        // taken its ticket after the upstream commit.
        let held = Arc::new(AtomicBool::new(false));
        assert!(slot.fetch_lock.try_acquire(&held));
        let threads = 8;
        let start = Barrier::new(threads);
        std::thread::scope(|scope| {
            let handles: Vec<_> = (0..threads)
                .map(|_| {
                    scope.spawn(|| {
                        start.wait();
                        fx.cache.fetch(&fx.url)
                    })
                })
                .collect();
            while slot.waiting.load(Ordering::SeqCst) < threads {
                std::thread::sleep(Duration::from_millis(5));
            }
            slot.fetch_lock.release(&held);
            for handle in handles {
                handle.join().expect("thread").expect("fetch");
            }
        });
        assert_eq!(fx.cache.fetch_count() - before, 1);
        assert_eq!(fx.cache.resolve(&fx.url, "main").expect("main"), second);
    }

    #[test]
    fn an_abandoned_fetch_does_not_hold_the_url() {
        let lock = FetchLock::default();
        let (first, second, third) = (
            Arc::new(AtomicBool::new(false)),
            Arc::new(AtomicBool::new(false)),
            Arc::new(AtomicBool::new(false)),
        );
        assert!(lock.try_acquire(&first));
        assert!(!lock.try_acquire(&second));
        // Its caller gave up: the thread may still be blocked in a read.
        first.store(true, Ordering::SeqCst);
        assert!(lock.try_acquire(&second));
        // The abandoned fetch ending late does not free the URL.
        lock.release(&first);
        assert!(!lock.try_acquire(&third));
        lock.release(&second);
        assert!(lock.try_acquire(&third));
    }

    #[test]
    fn fetch_queued_behind_an_already_running_fetch_fetches_again() {
        let (fx, _) = fixture();
        fx.cache.fetch(&fx.url).expect("clone");
        let before = fx.cache.fetch_count();
        let url = normalize_url(&fx.url).expect("url");
        let slot = fx.cache.slot(&url);

        // Play a fetch that is running when the caller arrives...
        let held = Arc::new(AtomicBool::new(false));
        assert!(slot.fetch_lock.try_acquire(&held));
        let running = slot.started.fetch_add(1, Ordering::SeqCst) + 1;
        std::thread::scope(|scope| {
            let caller = scope.spawn(|| fx.cache.fetch(&fx.url));
            while slot.waiting.load(Ordering::SeqCst) < 1 {
                std::thread::sleep(Duration::from_millis(5));
            }
            // ...and succeeds while the caller waits: it may have missed a
            // commit pushed just before the call, so the caller fetches itself.
            slot.succeeded.store(running, Ordering::SeqCst);
            slot.fetch_lock.release(&held);
            caller.join().expect("thread").expect("fetch");
        });
        assert_eq!(fx.cache.fetch_count() - before, 1);
    }

    #[test]
    fn path_ids_change_only_where_content_changed() {
        let (fx, first) = fixture();
        write(
            fx.dir(),
            "apps/web/deploy.yaml",
            "kind: Deployment\nreplicas: 5\n",
        );
        let second = commit_all(fx.dir(), "second");
        fx.cache.fetch(&fx.url).expect("fetch");
        let paths: Vec<String> = [
            "apps/web",
            "apps/api",
            "apps/api/deploy.yaml",
            "nope",
            "apps/api/deploy.yaml/x",
        ]
        .map(String::from)
        .to_vec();
        let before = fx.cache.path_ids(&fx.url, &first, &paths).expect("ids");
        let after = fx.cache.path_ids(&fx.url, &second, &paths).expect("ids");
        assert_ne!(before[0], after[0], "the changed folder");
        assert_eq!(before[1], after[1], "an untouched folder");
        assert_eq!(before[2], after[2], "an untouched file");
        assert!(before[1].is_some() && before[2].is_some());
        assert_eq!((before[3].as_deref(), before[4].as_deref()), (None, None));
    }

    #[test]
    fn changed_paths_lists_added_removed_and_modified_files() {
        let (fx, first) = fixture();
        write(
            fx.dir(),
            "apps/web/deploy.yaml",
            "kind: Deployment\nreplicas: 3\n",
        );
        std::fs::remove_file(fx.dir().join("apps/api/deploy.yaml")).expect("rm");
        write(fx.dir(), "apps/db/sts.yaml", "kind: StatefulSet\n");
        let second = commit_all(fx.dir(), "second");
        fx.cache.fetch(&fx.url).expect("clone");

        let changed = fx
            .cache
            .changed_paths(&fx.url, &first, &second)
            .expect("diff");
        assert_eq!(
            changed,
            [
                "apps/api/deploy.yaml",
                "apps/db/sts.yaml",
                "apps/web/deploy.yaml"
            ]
        );
        assert!(
            fx.cache
                .changed_paths(&fx.url, &second, "main")
                .expect("same")
                .is_empty()
        );
        let back = fx
            .cache
            .changed_paths(&fx.url, "main", "v1")
            .expect("reverse");
        assert_eq!(back, changed);
    }

    #[test]
    fn changed_paths_sees_a_file_replaced_by_a_folder() {
        let (fx, first) = fixture();
        std::fs::remove_file(fx.dir().join("README.md")).expect("rm");
        write(fx.dir(), "README.md/inner.txt", "now a folder\n");
        let second = commit_all(fx.dir(), "file to folder");
        fx.cache.fetch(&fx.url).expect("clone");
        let changed = fx
            .cache
            .changed_paths(&fx.url, &first, &second)
            .expect("diff");
        assert_eq!(changed, ["README.md", "README.md/inner.txt"]);
    }

    /// Trees decoded so far by `cache` (its tree cache's misses).
    fn trees_decoded(cache: &RepoCache) -> u64 {
        cache.trees.decoded.load(Ordering::Relaxed)
    }

    /// What the trees `cache` keeps count against its bound.
    fn tree_entries_held(cache: &RepoCache) -> usize {
        cache.trees.state.read().expect("not poisoned").held
    }

    #[test]
    fn read_dir_decodes_each_tree_once_across_calls() {
        let (fx, first) = fixture();
        fx.cache.fetch(&fx.url).expect("clone");
        let read = |path: &str| fx.cache.read_dir(&fx.url, &first, path, false).expect(path);

        assert_eq!(paths(&read("apps/web")), ["deploy.yaml", "svc.yaml"]);
        assert_eq!(trees_decoded(&fx.cache), 3, "the root, apps and apps/web");
        assert_eq!(paths(&read("apps/api")), ["deploy.yaml"]);
        assert_eq!(
            trees_decoded(&fx.cache),
            4,
            "the root and apps come from the cache; only apps/api is new"
        );
        assert_eq!(paths(&read("apps/web")), ["deploy.yaml", "svc.yaml"]);
        assert_eq!(trees_decoded(&fx.cache), 4, "everything is cached now");

        write(fx.dir(), "apps/api/svc.yaml", "kind: Service\n");
        let second = commit_all(fx.dir(), "second");
        fx.cache.fetch(&fx.url).expect("fetch");
        let changed = fx
            .cache
            .changed_paths(&fx.url, &first, &second)
            .expect("diff");
        assert_eq!(changed, ["apps/api/svc.yaml"]);
        assert_eq!(
            trees_decoded(&fx.cache),
            7,
            "the diff decodes only the new root, apps and apps/api"
        );
    }

    #[test]
    fn tree_cache_is_cleared_when_full_and_never_holds_more_than_its_bound() {
        let (fx, first) = fixture();
        fx.cache.fetch(&fx.url).expect("clone");
        // Costs (entries + 1): root 3, apps 3, apps/web 4, apps/api 2.
        let cache = RepoCache::with_tree_cache_entries(fx.cache_root.path().join("repos"), 8);
        let read = |path: &str| {
            let files = cache.read_dir(&fx.url, &first, path, false).expect(path);
            assert!(tree_entries_held(&cache) <= 8, "after reading {path}");
            files
        };

        read("apps/api");
        assert_eq!((trees_decoded(&cache), tree_entries_held(&cache)), (3, 8));
        read("apps/api");
        assert_eq!(trees_decoded(&cache), 3, "a full cache still answers");

        assert_eq!(paths(&read("apps/web")), ["deploy.yaml", "svc.yaml"]);
        assert_eq!(
            (trees_decoded(&cache), tree_entries_held(&cache)),
            (4, 4),
            "apps/web did not fit, so the cache was cleared and holds only it"
        );

        assert_eq!(paths(&read("apps/api")), ["deploy.yaml"]);
        assert_eq!(
            (trees_decoded(&cache), tree_entries_held(&cache)),
            (7, 5),
            "the root, apps and apps/api were decoded again; apps cleared it once more"
        );
    }

    #[test]
    fn a_tree_larger_than_the_whole_tree_cache_is_read_but_not_kept() {
        let (fx, first) = fixture();
        fx.cache.fetch(&fx.url).expect("clone");
        // The root costs 3 (README.md, apps).
        let cache = RepoCache::with_tree_cache_entries(fx.cache_root.path().join("repos"), 2);
        for round in 1..=2 {
            let files = cache.read_dir(&fx.url, &first, "", false).expect("root");
            assert_eq!(paths(&files), ["README.md"]);
            assert_eq!(trees_decoded(&cache), round);
            assert_eq!(tree_entries_held(&cache), 0);
        }
    }

    #[test]
    fn read_dir_finds_folders_whose_git_order_differs_from_byte_order() {
        let (fx, _) = fixture();
        // git sorts a folder `app` as `app/`, after `app-x` and `app.d`; the
        // cache's name index must find each of them all the same.
        for (folder, file) in [
            ("app", "a.yaml"),
            ("app-x", "b.yaml"),
            ("app.d", "c.yaml"),
            ("app0", "d.yaml"),
        ] {
            write(fx.dir(), &format!("{folder}/{file}"), folder);
        }
        write(fx.dir(), "app.yaml", "a file beside the folders\n");
        let head = commit_all(fx.dir(), "look-alike names");
        fx.cache.fetch(&fx.url).expect("clone");

        for (folder, file) in [
            ("app", "a.yaml"),
            ("app-x", "b.yaml"),
            ("app.d", "c.yaml"),
            ("app0", "d.yaml"),
        ] {
            let files = fx
                .cache
                .read_dir(&fx.url, &head, folder, false)
                .expect(folder);
            assert_eq!(paths(&files), [file], "in {folder}");
            assert_eq!(files[0].data, folder.as_bytes());
        }
        let err = fx
            .cache
            .read_dir(&fx.url, &head, "app.yaml", false)
            .expect_err("a file");
        assert!(err.to_string().contains("`app.yaml` is a file"), "{err}");
        let err = fx
            .cache
            .read_dir(&fx.url, &head, "app.", false)
            .expect_err("no such folder");
        assert!(err.to_string().contains("there is no `app.`"), "{err}");
    }

    #[test]
    fn normalize_url_turns_a_relative_path_into_a_canonical_file_url() {
        let cwd = std::env::current_dir().expect("cwd");
        let expected = format!(
            "file://{}",
            std::fs::canonicalize(&cwd).expect("canonical").display()
        );
        assert_eq!(normalize_url(".").expect("dot"), expected);
        assert_eq!(normalize_url("./").expect("dot slash"), expected);
        assert_eq!(
            normalize_url(&format!("file://{}/", cwd.display())).expect("file url"),
            expected
        );
        let parent = std::fs::canonicalize(cwd.join("..")).expect("parent");
        assert_eq!(
            normalize_url("..").expect("parent"),
            format!("file://{}", parent.display())
        );
        assert_eq!(
            normalize_url("/nonexistent/repo/").expect("missing path"),
            "file:///nonexistent/repo"
        );
    }

    #[test]
    fn normalize_url_keeps_remote_urls_and_strips_a_trailing_slash() {
        for (input, expected) in [
            (
                "https://github.com/org/repo/",
                "https://github.com/org/repo",
            ),
            (
                "https://github.com/org/repo.git",
                "https://github.com/org/repo.git",
            ),
            (
                "ssh://git@github.com/org/repo",
                "ssh://git@github.com/org/repo",
            ),
            ("git@github.com:org/repo.git", "git@github.com:org/repo.git"),
        ] {
            assert_eq!(normalize_url(input).expect(input), expected);
        }
        assert!(matches!(
            normalize_url("  "),
            Err(SourceError::InvalidUrl { .. })
        ));
        assert!(matches!(
            normalize_url("https://"),
            Err(SourceError::InvalidUrl { .. })
        ));
    }

    #[test]
    fn credentials_debug_hides_the_password() {
        let creds = Credentials {
            username: Some("bob".into()),
            password: Some("s3cr3t".into()),
        };
        let shown = format!("{creds:?}");
        assert!(!shown.contains("s3cr3t"), "{shown}");
        assert!(
            shown.contains("bob") && shown.contains("<redacted>"),
            "{shown}"
        );
    }

    #[test]
    fn credentials_come_from_the_longest_matching_prefix() {
        let cache = RepoCache::new("/unused");
        let creds = |name: &str| Credentials {
            username: Some(name.into()),
            password: Some("p".into()),
        };
        cache.set_credentials("https://git.example.com/", creds("host"));
        cache.set_credentials("https://git.example.com/team/", creds("team"));
        let user = |url: &str| cache.credentials_for(url).and_then(|c| c.username);
        assert_eq!(
            user("https://git.example.com/team/repo").as_deref(),
            Some("team")
        );
        assert_eq!(
            user("https://git.example.com/other/repo").as_deref(),
            Some("host")
        );
        assert_eq!(user("https://elsewhere.example.com/repo"), None);
        cache.set_credentials("https://git.example.com/team/", creds("team2"));
        assert_eq!(
            user("https://git.example.com/team/repo").as_deref(),
            Some("team2")
        );
    }

    #[test]
    fn credential_helper_answers_get_with_the_configured_identity() {
        let creds = Credentials {
            username: None,
            password: Some("token".into()),
        };
        let outcome = credential_helper(
            &creds,
            gix::credentials::helper::Action::get_for_url("https://git.example.com/repo"),
        )
        .expect("ok")
        .expect("an identity");
        assert_eq!(outcome.identity.username, DEFAULT_TOKEN_USERNAME);
        assert_eq!(outcome.identity.password, "token");
    }

    #[test]
    fn scrub_secrets_removes_userinfo_and_the_password() {
        let creds = Credentials {
            username: Some("u".into()),
            password: Some("tok3n".into()),
        };
        assert_eq!(
            scrub_secrets(
                "failed https://user:pass@host/x and http://tok@h2:80/y (tok3n)",
                Some(&creds)
            ),
            "failed https://host/x and http://h2:80/y (<redacted>)"
        );
        assert_eq!(display_url("https://host/repo"), "https://host/repo");
    }
}
