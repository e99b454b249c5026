//! Plumb's durable record: deployment history, the last sync operation,
//! rollback pins and the DORA events of every application, in sled under
//! `--data-dir`.
//!
//! It is not a cache of cluster state; everything here is Plumb's own memory
//! that must survive a restart.

use std::path::Path;

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

/// The store; cheap to clone (sled handles are shared).
#[derive(Clone)]
pub struct Store {
    path: String,
    history: sled::Tree,
    operations: sled::Tree,
    pins: sled::Tree,
    events: sled::Tree,
    db: sled::Db,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("path", &self.path).finish()
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

impl Store {
    /// Opens (or creates) the store in `dir`.
    ///
    /// # Errors
    /// When sled cannot open the folder (permissions, another process holds it).
    pub fn open(dir: &Path) -> Result<Store, StoreError> {
        let path = dir.display().to_string();
        let db_err = |source| StoreError::Db {
            path: path.clone(),
            source,
        };
        // History and operation records are small and read rarely: a small page
        // cache (sled defaults to 1 GiB) keeps the memory bounded.
        let db = sled::Config::new()
            .path(dir)
            .cache_capacity(16 * 1024 * 1024)
            .open()
            .map_err(db_err)?;
        Ok(Store {
            history: db.open_tree("history").map_err(db_err)?,
            operations: db.open_tree("operations").map_err(db_err)?,
            pins: db.open_tree("pins").map_err(db_err)?,
            events: db.open_tree("events").map_err(db_err)?,
            db,
            path,
        })
    }

    fn err(&self, source: sled::Error) -> StoreError {
        StoreError::Db {
            path: self.path.clone(),
            source,
        }
    }

    fn put<T: Serialize>(
        &self,
        tree: &sled::Tree,
        key: &[u8],
        value: &T,
    ) -> Result<(), StoreError> {
        let bytes = serde_json::to_vec(value).expect("store records always serialize");
        tree.insert(key, bytes).map_err(|e| self.err(e))?;
        tree.flush().map_err(|e| self.err(e))?;
        Ok(())
    }

    fn get<T: DeserializeOwned>(
        &self,
        tree: &sled::Tree,
        key: &[u8],
    ) -> Result<Option<T>, StoreError> {
        let Some(bytes) = tree.get(key).map_err(|e| self.err(e))? else {
            return Ok(None);
        };
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|source| StoreError::Decode {
                key: String::from_utf8_lossy(key).into_owned(),
                source,
            })
    }

    /// Appends a history entry, giving it the next id, and keeps the newest
    /// `limit` entries. Returns the entry as stored.
    ///
    /// # Errors
    /// On a database failure.
    pub fn append_history(
        &self,
        app: &str,
        mut entry: RevisionHistory,
        limit: usize,
    ) -> Result<RevisionHistory, StoreError> {
        let existing = self.history(app)?;
        entry.id = existing.last().map_or(0, |e| e.id + 1);
        self.put(&self.history, &history_key(app, entry.id), &entry)?;
        let total = existing.len() + 1;
        for old in existing.iter().take(total.saturating_sub(limit)) {
            self.history
                .remove(history_key(app, old.id))
                .map_err(|e| self.err(e))?;
        }
        Ok(entry)
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
            if self.get::<RevisionHistory>(&self.history, &key)?.as_ref() != Some(entry) {
                self.put(&self.history, &key, entry)?;
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
        let mut key = history_prefix(app);
        // Time first (its sign bit flipped: negative times sort first),
        // then a sequence number for events of the same second.
        key.extend_from_slice(&((event.at() as u64) ^ (1 << 63)).to_be_bytes());
        key.extend_from_slice(
            &self
                .db
                .generate_id()
                .map_err(|e| self.err(e))?
                .to_be_bytes(),
        );
        let bytes = serde_json::to_vec(event).expect("events always serialize");
        self.events.insert(key, bytes).map_err(|e| self.err(e))?;
        let keys: Vec<sled::IVec> = self
            .events
            .scan_prefix(history_prefix(app))
            .keys()
            .collect::<Result<_, _>>()
            .map_err(|e| self.err(e))?;
        for old in keys.iter().take(keys.len().saturating_sub(EVENTS_KEPT)) {
            self.events.remove(old).map_err(|e| self.err(e))?;
        }
        Ok(())
    }

    /// The DORA events of `app`, oldest first; an unreadable one is
    /// skipped.
    ///
    /// # Errors
    /// On a database failure.
    pub fn events(&self, app: &str) -> Result<Vec<Event>, StoreError> {
        let mut out = Vec::new();
        for item in self.events.scan_prefix(history_prefix(app)) {
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
        for item in self.events.scan_prefix(history_prefix(app)).rev() {
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
        let mut out = Vec::new();
        for item in self.history.scan_prefix(history_prefix(app)) {
            let (key, bytes) = item.map_err(|e| self.err(e))?;
            out.push(
                serde_json::from_slice(&bytes).map_err(|source| StoreError::Decode {
                    key: String::from_utf8_lossy(&key).into_owned(),
                    source,
                })?,
            );
        }
        Ok(out)
    }

    /// Records the current (or last) sync operation of an application.
    ///
    /// # Errors
    /// On a database failure.
    pub fn set_operation(&self, app: &str, op: &OperationState) -> Result<(), StoreError> {
        self.put(&self.operations, app.as_bytes(), op)
    }

    /// The last sync operation of an application.
    ///
    /// # Errors
    /// On a database failure or an unreadable record.
    pub fn operation(&self, app: &str) -> Result<Option<OperationState>, StoreError> {
        self.get(&self.operations, app.as_bytes())
    }

    /// Marks every operation left `Running` by a previous process as
    /// interrupted and returns the applications concerned. Call once at start.
    ///
    /// # Errors
    /// On a database failure or an unreadable record.
    pub fn recover_interrupted(&self, now: &str) -> Result<Vec<String>, StoreError> {
        let mut apps = Vec::new();
        for item in self.operations.iter() {
            let (key, _) = item.map_err(|e| self.err(e))?;
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
        self.put(&self.pins, app.as_bytes(), pin)
    }

    /// Removes the pin of an application, resuming automated sync.
    ///
    /// # Errors
    /// On a database failure.
    pub fn clear_pin(&self, app: &str) -> Result<(), StoreError> {
        self.pins.remove(app.as_bytes()).map_err(|e| self.err(e))?;
        self.pins.flush().map_err(|e| self.err(e))?;
        Ok(())
    }

    /// The pin of an application, if a rollback set one.
    ///
    /// # Errors
    /// On a database failure or an unreadable record.
    pub fn pin(&self, app: &str) -> Result<Option<RollbackPin>, StoreError> {
        self.get(&self.pins, app.as_bytes())
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
