//! Plumb's durable record: deployment history, the last sync operation,
//! rollback pins and the DORA events of every application, in sled under
//! `--data-dir`.
//!
//! It is not a cache of cluster state; everything here is Plumb's own memory
//! that must survive a restart.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::model::{OperationPhase, OperationState, RevisionHistory, RollbackPin};
use plumb_core::dora::Event;

/// DORA events kept per application (the oldest go first).
const EVENTS_KEPT: usize = 2000;

/// The error of a store operation.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database could not be opened, read or written.
    #[error("store at {path}: {source}")]
    Db {
        /// The database folder.
        path: String,
        /// What sled said.
        #[source]
        source: sled::Error,
    },
    /// A record did not decode; the store was written by another version.
    #[error("store record {key} is unreadable: {source}")]
    Decode {
        /// The record's key.
        key: String,
        /// What serde said.
        #[source]
        source: serde_json::Error,
    },
}

/// The store; cheap to clone (clones share one database).
///
/// sled refuses every write after an I/O error (a full disk) until the
/// database is opened again. The store does that on its own: a write that
/// fails on an I/O error marks it failed, and the next write (or the same
/// one, at once, when there is room on the disk again) reopens the database
/// behind a lock and goes on; reads keep answering from the old one
/// meanwhile. What was written and flushed before stays.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

struct Inner {
    dir: PathBuf,
    path: String,
    /// `None` only when a reopen failed; the next use tries again.
    trees: RwLock<Option<Trees>>,
    /// A write failed on an I/O error: reopen before the next one.
    failed: AtomicBool,
}

#[derive(Clone)]
struct Trees {
    history: sled::Tree,
    operations: sled::Tree,
    pins: sled::Tree,
    events: sled::Tree,
    db: sled::Db,
}

impl Trees {
    fn open(dir: &Path) -> Result<Trees, sled::Error> {
        // History and operation records are small and read rarely: a small page
        // cache (sled defaults to 1 GiB) keeps the memory bounded.
        let db = sled::Config::new()
            .path(dir)
            .cache_capacity(16 * 1024 * 1024)
            .open()?;
        Ok(Trees {
            history: db.open_tree("history")?,
            operations: db.open_tree("operations")?,
            pins: db.open_tree("pins")?,
            events: db.open_tree("events")?,
            db,
        })
    }

    fn put<T: Serialize>(tree: &sled::Tree, key: &[u8], value: &T) -> Result<(), sled::Error> {
        let bytes = serde_json::to_vec(value).expect("store records always serialize");
        tree.insert(key, bytes)?;
        tree.flush()?;
        Ok(())
    }
}

/// The room a reopen wants on the data disk (sled writes 512 KiB segments).
const ROOM_TO_REOPEN: u64 = 2 << 20;

/// How long a reopen waits for the old database's lock (sled's flusher
/// thread lets it go a moment after the last handle is dropped).
const REOPEN_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("path", &self.inner.path)
            .finish()
    }
}

/// History keys sort by application, then by id: `<app> 0x00 <id big-endian>`.
fn history_key(app: &str, id: i64) -> Vec<u8> {
    let mut key = history_prefix(app);
    key.extend_from_slice(&id.to_be_bytes());
    key
}

fn history_prefix(app: &str) -> Vec<u8> {
    let mut key = app.as_bytes().to_vec();
    key.push(0);
    key
}

fn decode<T: DeserializeOwned>(key: &[u8], bytes: &[u8]) -> Result<T, StoreError> {
    serde_json::from_slice(bytes).map_err(|source| StoreError::Decode {
        key: String::from_utf8_lossy(key).into_owned(),
        source,
    })
}

/// The history of `app` in `tree`, oldest first.
fn history_in(tree: &sled::Tree, app: &str) -> Result<Vec<(sled::IVec, RevisionHistory)>, Fail> {
    let mut out = Vec::new();
    for item in tree.scan_prefix(history_prefix(app)) {
        let (key, bytes) = item?;
        let entry = decode(&key, &bytes)?;
        out.push((key, entry));
    }
    Ok(out)
}

/// A failure inside a store operation: sled's (which may call for a
/// reopen) or a record's.
enum Fail {
    Db(sled::Error),
    Store(StoreError),
}

impl From<sled::Error> for Fail {
    fn from(e: sled::Error) -> Fail {
        Fail::Db(e)
    }
}

impl From<StoreError> for Fail {
    fn from(e: StoreError) -> Fail {
        Fail::Store(e)
    }
}

/// Free bytes for an unprivileged writer on the file system of `dir`.
fn free_bytes(dir: &Path) -> Option<u64> {
    let stat = rustix::fs::statvfs(dir).ok()?;
    Some(stat.f_bavail.saturating_mul(stat.f_frsize))
}

impl Store {
    /// Opens (or creates) the store in `dir`.
    ///
    /// # Errors
    /// When sled cannot open the folder (permissions, another process holds it).
    pub fn open(dir: &Path) -> Result<Store, StoreError> {
        let path = dir.display().to_string();
        let trees = Trees::open(dir).map_err(|source| StoreError::Db {
            path: path.clone(),
            source,
        })?;
        Ok(Store {
            inner: Arc::new(Inner {
                dir: dir.to_path_buf(),
                path,
                trees: RwLock::new(Some(trees)),
                failed: AtomicBool::new(false),
            }),
        })
    }

    fn err(&self, source: sled::Error) -> StoreError {
        StoreError::Db {
            path: self.inner.path.clone(),
            source,
        }
    }

    fn fail(&self, fail: Fail) -> StoreError {
        match fail {
            Fail::Db(e) => self.err(e),
            Fail::Store(e) => e,
        }
    }

    /// The database's handles (reopening it when a reopen failed before).
    fn trees(&self) -> Result<Trees, StoreError> {
        if let Some(trees) = self
            .inner
            .trees
            .read()
            .expect("store lock is never poisoned")
            .as_ref()
        {
            return Ok(trees.clone());
        }
        self.reopen()?;
        self.trees()
    }

    /// Opens the database again after a write failed on an I/O error, when
    /// the disk has room for it; does nothing when another caller did.
    fn reopen(&self) -> Result<(), StoreError> {
        let mut trees = self
            .inner
            .trees
            .write()
            .expect("store lock is never poisoned");
        if trees.is_some() && !self.inner.failed.load(Ordering::SeqCst) {
            return Ok(());
        }
        if let Some(free) = free_bytes(&self.inner.dir)
            && free < ROOM_TO_REOPEN
        {
            return Err(self.err(sled::Error::Io(std::io::Error::other(format!(
                "a write failed on an I/O error before, and the disk has {free} bytes free; \
                 the store opens again when {ROOM_TO_REOPEN} are"
            )))));
        }
        // sled holds the folder's lock until its last handle is gone.
        drop(trees.take());
        let start = std::time::Instant::now();
        loop {
            match Trees::open(&self.inner.dir) {
                Ok(fresh) => {
                    *trees = Some(fresh);
                    self.inner.failed.store(false, Ordering::SeqCst);
                    tracing::warn!(store = %self.inner.path, "store opened again after a failed write");
                    return Ok(());
                }
                Err(e)
                    if e.to_string().contains("could not acquire lock")
                        && start.elapsed() < REOPEN_WAIT =>
                {
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
                Err(e) => return Err(self.err(e)),
            }
        }
    }

    /// Runs a write. One that fails on an I/O error marks the store failed
    /// and, when the disk has room again, runs once more on the database
    /// opened again (sled refuses every write after an I/O error).
    fn write<R>(&self, f: impl Fn(&Trees) -> Result<R, Fail>) -> Result<R, StoreError> {
        if self.inner.failed.load(Ordering::SeqCst) {
            self.reopen()?;
        }
        let trees = self.trees()?;
        match f(&trees) {
            Ok(r) => Ok(r),
            Err(Fail::Db(sled::Error::Io(e))) => {
                drop(trees);
                self.inner.failed.store(true, Ordering::SeqCst);
                tracing::error!(store = %self.inner.path, error = %e, "a store write failed");
                if self.reopen().is_ok() {
                    return f(&self.trees()?).map_err(|fail| self.fail(fail));
                }
                Err(self.err(sled::Error::Io(e)))
            }
            Err(fail) => Err(self.fail(fail)),
        }
    }

    fn put<T: Serialize>(
        &self,
        tree: fn(&Trees) -> &sled::Tree,
        key: &[u8],
        value: &T,
    ) -> Result<(), StoreError> {
        self.write(|t| Ok(Trees::put(tree(t), key, value)?))
    }

    fn get<T: DeserializeOwned>(
        &self,
        tree: fn(&Trees) -> &sled::Tree,
        key: &[u8],
    ) -> Result<Option<T>, StoreError> {
        let trees = self.trees()?;
        let Some(bytes) = tree(&trees).get(key).map_err(|e| self.err(e))? else {
            return Ok(None);
        };
        decode(key, &bytes).map(Some)
    }

    /// Appends a history entry, giving it the next id, and keeps the newest
    /// `limit` entries. Returns the entry as stored.
    ///
    /// # Errors
    /// On a database failure.
    pub fn append_history(
        &self,
        app: &str,
        entry: RevisionHistory,
        limit: usize,
    ) -> Result<RevisionHistory, StoreError> {
        self.append(app, entry, limit, None)
    }

    /// Appends a history entry as [`Store::append_history`] does and
    /// records the operation that made it, ended, in the same write: a
    /// crash leaves both or neither, never a record beside an operation
    /// that says it did not finish.
    ///
    /// # Errors
    /// On a database failure.
    pub fn append_history_ending(
        &self,
        app: &str,
        entry: RevisionHistory,
        limit: usize,
        op: &OperationState,
    ) -> Result<RevisionHistory, StoreError> {
        self.append(app, entry, limit, Some(op))
    }

    fn append(
        &self,
        app: &str,
        entry: RevisionHistory,
        limit: usize,
        op: Option<&OperationState>,
    ) -> Result<RevisionHistory, StoreError> {
        use sled::Transactional;
        use sled::transaction::{ConflictableTransactionError, TransactionError};
        let op = op.map(|op| serde_json::to_vec(op).expect("store records always serialize"));
        self.write(|t| {
            let existing = history_in(&t.history, app)?;
            let mut entry = entry.clone();
            entry.id = existing.last().map_or(0, |(_, e)| e.id + 1);
            let bytes = serde_json::to_vec(&entry).expect("store records always serialize");
            let total = existing.len() + 1;
            let old = &existing[..total.saturating_sub(limit).min(existing.len())];
            (&t.history, &t.operations)
                .transaction(|(history, operations)| {
                    history.insert(history_key(app, entry.id), bytes.clone())?;
                    for (key, _) in old {
                        history.remove(key)?;
                    }
                    if let Some(op) = &op {
                        operations.insert(app.as_bytes(), op.clone())?;
                    }
                    Ok::<_, ConflictableTransactionError<()>>(())
                })
                .map_err(|e| match e {
                    TransactionError::Storage(e) => e,
                    TransactionError::Abort(()) => {
                        unreachable!("the transaction never aborts")
                    }
                })?;
            t.db.flush()?;
            Ok(entry)
        })
    }

    /// Takes `entries` (an Application object's `status.history`, written
    /// by the leader before this replica) into the history under their own
    /// ids, over what this store holds under the same ids; other entries
    /// stay. Returns how many were new or different.
    ///
    /// # Errors
    /// On a database failure.
    pub fn import_history(
        &self,
        app: &str,
        entries: &[RevisionHistory],
    ) -> Result<usize, StoreError> {
        let mut changed = 0;
        for entry in entries {
            let key = history_key(app, entry.id);
            if self.get::<RevisionHistory>(|t| &t.history, &key)?.as_ref() != Some(entry) {
                self.put(|t| &t.history, &key, entry)?;
                changed += 1;
            }
        }
        Ok(changed)
    }

    /// Records a DORA event of `app`, keeping its newest [`EVENTS_KEPT`].
    /// Not flushed at once (sled flushes on its own): a crash may lose the
    /// last events, never the history.
    ///
    /// # Errors
    /// On a database failure.
    pub fn record_event(&self, app: &str, event: &Event) -> Result<(), StoreError> {
        let bytes = serde_json::to_vec(event).expect("events always serialize");
        self.write(|t| {
            let mut key = history_prefix(app);
            // Time first (its sign bit flipped: negative times sort first),
            // then a sequence number for events of the same second.
            key.extend_from_slice(&((event.at() as u64) ^ (1 << 63)).to_be_bytes());
            key.extend_from_slice(&t.db.generate_id()?.to_be_bytes());
            t.events.insert(key, bytes.clone())?;
            let keys: Vec<sled::IVec> = t
                .events
                .scan_prefix(history_prefix(app))
                .keys()
                .collect::<Result<_, _>>()?;
            for old in keys.iter().take(keys.len().saturating_sub(EVENTS_KEPT)) {
                t.events.remove(old)?;
            }
            Ok(())
        })
    }

    /// The DORA events of `app`, oldest first; an unreadable one is
    /// skipped.
    ///
    /// # Errors
    /// On a database failure.
    pub fn events(&self, app: &str) -> Result<Vec<Event>, StoreError> {
        let trees = self.trees()?;
        let mut out = Vec::new();
        for item in trees.events.scan_prefix(history_prefix(app)) {
            let (_, bytes) = item.map_err(|e| self.err(e))?;
            if let Ok(event) = serde_json::from_slice(&bytes) {
                out.push(event);
            }
        }
        Ok(out)
    }

    /// The last health recorded for `app` as (healthy, degraded); Healthy
    /// when none was.
    ///
    /// # Errors
    /// On a database failure.
    pub fn last_health(&self, app: &str) -> Result<(bool, bool), StoreError> {
        let trees = self.trees()?;
        for item in trees.events.scan_prefix(history_prefix(app)).rev() {
            let (_, bytes) = item.map_err(|e| self.err(e))?;
            if let Ok(Event::Health {
                healthy, degraded, ..
            }) = serde_json::from_slice(&bytes)
            {
                return Ok((healthy, degraded));
            }
        }
        Ok((true, false))
    }

    /// The history of an application, oldest first.
    ///
    /// # Errors
    /// On a database failure or an unreadable record.
    pub fn history(&self, app: &str) -> Result<Vec<RevisionHistory>, StoreError> {
        let trees = self.trees()?;
        match history_in(&trees.history, app) {
            Ok(entries) => Ok(entries.into_iter().map(|(_, e)| e).collect()),
            Err(fail) => Err(self.fail(fail)),
        }
    }

    /// Records the current (or last) sync operation of an application.
    ///
    /// # Errors
    /// On a database failure.
    pub fn set_operation(&self, app: &str, op: &OperationState) -> Result<(), StoreError> {
        self.put(|t| &t.operations, app.as_bytes(), op)
    }

    /// The last sync operation of an application.
    ///
    /// # Errors
    /// On a database failure or an unreadable record.
    pub fn operation(&self, app: &str) -> Result<Option<OperationState>, StoreError> {
        self.get(|t| &t.operations, app.as_bytes())
    }

    /// Marks every operation left `Running` by a previous process as
    /// interrupted and returns the applications concerned. Call once at start.
    ///
    /// # Errors
    /// On a database failure or an unreadable record.
    pub fn recover_interrupted(&self, now: &str) -> Result<Vec<String>, StoreError> {
        let keys: Vec<sled::IVec> = self
            .trees()?
            .operations
            .iter()
            .keys()
            .collect::<Result<_, _>>()
            .map_err(|e| self.err(e))?;
        let mut apps = Vec::new();
        for key in keys {
            let app = String::from_utf8_lossy(&key).into_owned();
            let Some(mut op) = self.operation(&app)? else {
                continue;
            };
            if op.phase == OperationPhase::Running {
                op.phase = OperationPhase::Failed;
                op.message = format!(
                    "Plumb stopped while this operation ran (it started at {}); it did not finish. \
                     The next sync will complete it.",
                    op.started_at
                );
                op.finished_at = Some(now.to_string());
                self.set_operation(&app, &op)?;
                apps.push(app);
            }
        }
        Ok(apps)
    }

    /// Pins an application to a revision after a rollback.
    ///
    /// # Errors
    /// On a database failure.
    pub fn set_pin(&self, app: &str, pin: &RollbackPin) -> Result<(), StoreError> {
        self.put(|t| &t.pins, app.as_bytes(), pin)
    }

    /// Removes the pin of an application, resuming automated sync.
    ///
    /// # Errors
    /// On a database failure.
    pub fn clear_pin(&self, app: &str) -> Result<(), StoreError> {
        self.write(|t| {
            t.pins.remove(app.as_bytes())?;
            t.pins.flush()?;
            Ok(())
        })
    }

    /// The pin of an application, if a rollback set one.
    ///
    /// # Errors
    /// On a database failure or an unreadable record.
    pub fn pin(&self, app: &str) -> Result<Option<RollbackPin>, StoreError> {
        self.get(|t| &t.pins, app.as_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_sort_by_time_per_application_and_the_last_health_is_found() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path()).expect("open");
        let health = |at, healthy| Event::Health {
            at,
            healthy,
            degraded: !healthy,
        };
        store
            .record_event("web", &health(20, false))
            .expect("record");
        store
            .record_event("web", &Event::SyncFailed { at: 10 })
            .expect("record");
        store
            .record_event("web-2", &health(5, false))
            .expect("record");
        assert_eq!(
            store.events("web").expect("events"),
            vec![Event::SyncFailed { at: 10 }, health(20, false)]
        );
        assert_eq!(store.last_health("web").expect("health"), (false, true));
        assert_eq!(store.last_health("api").expect("health"), (true, false));
    }

    fn entry(revision: &str) -> RevisionHistory {
        RevisionHistory {
            revision: revision.into(),
            deployed_at: "t".into(),
            ..Default::default()
        }
    }

    #[test]
    fn history_ids_increase_and_old_entries_are_trimmed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path()).expect("open");
        for rev in ["a", "b", "c", "d"] {
            store.append_history("app", entry(rev), 3).expect("append");
        }
        store
            .append_history("app-two", entry("x"), 3)
            .expect("append");
        let h = store.history("app").expect("history");
        assert_eq!(
            h.iter()
                .map(|e| (e.id, e.revision.as_str()))
                .collect::<Vec<_>>(),
            [(1, "b"), (2, "c"), (3, "d")]
        );
        assert_eq!(store.history("app-two").expect("history").len(), 1);
    }

    #[test]
    fn imported_history_keeps_its_ids_and_the_next_entry_follows_them() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path()).expect("open");
        store.append_history("app", entry("a"), 10).expect("append");
        let from_object = [
            RevisionHistory {
                id: 3,
                ..entry("c")
            },
            RevisionHistory {
                id: 4,
                ..entry("d")
            },
        ];
        assert_eq!(
            store.import_history("app", &from_object).expect("import"),
            2
        );
        // The same again changes nothing.
        assert_eq!(
            store.import_history("app", &from_object).expect("import"),
            0
        );
        let next = store.append_history("app", entry("e"), 10).expect("append");
        assert_eq!(next.id, 5);
        let ids: Vec<(i64, String)> = store
            .history("app")
            .expect("history")
            .into_iter()
            .map(|e| (e.id, e.revision))
            .collect();
        assert_eq!(
            ids,
            [
                (0, "a".into()),
                (3, "c".into()),
                (4, "d".into()),
                (5, "e".into())
            ]
        );
    }

    /// Opens the store again after a drop. sled's flusher thread may hold the
    /// folder's lock for a moment after the last handle is gone (a new
    /// process never meets it), so the test waits for it.
    fn reopen(dir: &Path) -> Store {
        let start = std::time::Instant::now();
        loop {
            match Store::open(dir) {
                Ok(store) => return store,
                Err(_) if start.elapsed() < std::time::Duration::from_secs(10) => {
                    std::thread::sleep(std::time::Duration::from_millis(50));
                }
                Err(e) => panic!("reopen: {e}"),
            }
        }
    }

    #[test]
    fn history_and_pins_survive_reopening() {
        let dir = tempfile::tempdir().expect("tempdir");
        {
            let store = Store::open(dir.path()).expect("open");
            store.append_history("app", entry("a"), 10).expect("append");
            let pin = RollbackPin {
                revision: "a".into(),
                history_id: 0,
                at: "t".into(),
            };
            store.set_pin("app", &pin).expect("pin");
        }
        let store = reopen(dir.path());
        assert_eq!(store.history("app").expect("history")[0].revision, "a");
        assert_eq!(store.pin("app").expect("pin").expect("set").revision, "a");
        store.clear_pin("app").expect("clear");
        assert!(store.pin("app").expect("pin").is_none());
    }

    #[test]
    fn running_operations_are_marked_interrupted_on_recovery() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path()).expect("open");
        let running = OperationState {
            started_at: "t0".into(),
            ..Default::default()
        };
        store.set_operation("crashed", &running).expect("set");
        let done = OperationState {
            phase: OperationPhase::Succeeded,
            ..running.clone()
        };
        store.set_operation("fine", &done).expect("set");
        assert_eq!(
            store.recover_interrupted("t1").expect("recover"),
            ["crashed"]
        );
        let op = store.operation("crashed").expect("get").expect("present");
        assert_eq!(op.phase, OperationPhase::Failed);
        assert!(op.message.contains("did not finish"), "{}", op.message);
        assert_eq!(
            store
                .operation("fine")
                .expect("get")
                .expect("present")
                .phase,
            OperationPhase::Succeeded
        );
    }
}
