//! The seen-store: which ids this instance has met, for how long.
//!
//! [`FileStore`] keeps them in one embedded file (redb: pure Rust, one file,
//! crash-safe transactions, bounded page cache), so a restart forgets
//! nothing. Ids recorded since the last [`SeenStore::flush`] wait in memory
//! and are written in one transaction, so the per-message cost is a read.

use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use redb::{Database, ReadOnlyTable, ReadableDatabase, TableDefinition};

use crate::error::{Error, Result};

/// How long an id is remembered unless configured otherwise: seven days.
pub const DEFAULT_RETENTION: Duration = Duration::from_secs(7 * 24 * 3600);

/// Ids waiting in memory before they are written; past this, `seen_any`
/// flushes by itself, so memory stays bounded.
const MAX_PENDING: usize = 50_000;

/// id → when it was first seen (Unix seconds); the retention is applied on
/// reading, so a shorter retention takes effect at once.
const SEEN: TableDefinition<&str, u64> = TableDefinition::new("seen");

/// Remembers ids for a retention period; shared by every front end.
pub trait SeenStore: Send {
    /// Whether any of `ids` was seen within the retention; records the
    /// ones not yet known either way.
    fn seen_any(&mut self, ids: &[String]) -> Result<bool>;

    /// Makes every recorded id durable.
    fn flush(&mut self) -> Result<()>;
}

/// A seen-store in one local file.
pub struct FileStore {
    db: Database,
    retention: Duration,
    pending: HashMap<String, u64>,
    /// A snapshot of the file, valid until the next flush: only this store
    /// writes, and its own writes since are in `pending`.
    snapshot: Option<ReadOnlyTable<&'static str, u64>>,
}

fn store_error(error: impl std::fmt::Display) -> Error {
    Error::Store(error.to_string())
}

/// Seconds since the Unix epoch (also the outbox's clock).
pub(crate) fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|elapsed| elapsed.as_secs())
        .unwrap_or(0)
}

impl FileStore {
    /// Opens (or creates) the store at `path`, dropping ids older than
    /// `retention`.
    pub fn open(path: &Path, retention: Duration) -> Result<Self> {
        let db =
            Database::create(path).map_err(|e| Error::Store(format!("{}: {e}", path.display())))?;
        let store = FileStore {
            db,
            retention,
            pending: HashMap::new(),
            snapshot: None,
        };
        store.expire(unix_now())?;
        Ok(store)
    }

    /// Whether an id first seen at `seen_at` is still remembered at `now`.
    fn remembered(&self, seen_at: u64, now: u64) -> bool {
        seen_at.saturating_add(self.retention.as_secs()) > now
    }

    /// Removes every id whose time is up (and creates the table on first use).
    fn expire(&self, now: u64) -> Result<()> {
        let transaction = self.db.begin_write().map_err(store_error)?;
        {
            let mut table = transaction.open_table(SEEN).map_err(store_error)?;
            table
                .retain(|_, seen_at| self.remembered(seen_at, now))
                .map_err(store_error)?;
        }
        transaction.commit().map_err(store_error)
    }
}

impl SeenStore for FileStore {
    fn seen_any(&mut self, ids: &[String]) -> Result<bool> {
        let now = unix_now();
        let table = match self.snapshot.take() {
            Some(table) => table,
            None => {
                let transaction = self.db.begin_read().map_err(store_error)?;
                transaction.open_table(SEEN).map_err(store_error)?
            }
        };
        let mut seen = false;
        let mut unknown = Vec::new();
        for id in ids {
            let stored = match self.pending.get(id.as_str()) {
                Some(seen_at) => Some(*seen_at),
                None => table
                    .get(id.as_str())
                    .map_err(store_error)?
                    .map(|seen_at| seen_at.value()),
            };
            match stored {
                Some(seen_at) if self.remembered(seen_at, now) => seen = true,
                _ => unknown.push(id),
            }
        }
        for id in unknown {
            self.pending.insert(id.clone(), now);
        }
        self.snapshot = Some(table);
        if self.pending.len() > MAX_PENDING {
            self.flush()?;
        }
        Ok(seen)
    }

    fn flush(&mut self) -> Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        self.snapshot = None;
        let transaction = self.db.begin_write().map_err(store_error)?;
        {
            let mut table = transaction.open_table(SEEN).map_err(store_error)?;
            for (id, seen_at) in &self.pending {
                table.insert(id.as_str(), seen_at).map_err(store_error)?;
            }
        }
        transaction.commit().map_err(store_error)?;
        self.pending.clear();
        Ok(())
    }
}
