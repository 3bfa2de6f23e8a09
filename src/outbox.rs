//! The outbox: a durable queue per partner reached over HTTP, so that a
//! partner that is down for an hour loses nothing and an input is
//! acknowledged only once its messages are on disk.
//!
//! Every `http` (push) and `pull` partner's encoded messages are appended
//! here, in one redb file (`<store.path>/outbox.redb`), keyed by the
//! partner's name and a sequence number that strictly increases per partner
//! and survives restarts. A push worker reads from the front and removes
//! what the partner took; a pull consumer reads from a cursor (the last
//! sequence it saw) and entries stay until they are older than the
//! partner's retention.
//!
//! Sequences are given out inside the write transaction that stores the
//! entries, and redb serialises write transactions, so a reader never sees
//! a sequence before every smaller one is committed: a pull cursor never
//! skips an entry appended concurrently.
//!
//! Appends are committed in groups: while one transaction is being made
//! durable, the appends that arrive wait, and the next transaction commits
//! them all at once, so many AMQP deliveries in flight share one sync to
//! the disk instead of taking one each.

use std::path::Path;
use std::sync::mpsc;
use std::sync::{Arc, Mutex, PoisonError};

use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};

use crate::error::{Error, Result};
use crate::formats::json;
use crate::identity::unix_now;
use crate::telemetry::Telemetry;

/// (partner, sequence) → (Unix seconds when appended, the native message).
const ENTRIES: TableDefinition<(&str, u64), (u64, &[u8])> = TableDefinition::new("entries");

/// partner → (the last sequence given out, how many entries it holds).
/// The last sequence is kept even when the partner's entries are all
/// removed, so a sequence is never given out twice.
const PARTNERS: TableDefinition<&str, (u64, u64)> = TableDefinition::new("partners");

/// One message held for a partner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Its place in the partner's queue: the pull cursor, and what the
    /// push worker removes through.
    pub seq: u64,
    /// When it was appended (Unix seconds), for the pull retention.
    pub appended: u64,
    /// The native message, as the gateway encoded it.
    pub message: Vec<u8>,
}

/// The outbox file, shared by the front ends that append, the push
/// workers and the pull endpoint. Every change is one committed, durable
/// transaction, and keeps the `outbox_pending` gauge of its partner.
pub struct Outbox {
    db: Database,
    telemetry: Arc<Telemetry>,
    /// Appends waiting for the next group commit.
    waiting: Mutex<Vec<Append>>,
    /// Held by the caller that commits a group; the others wait their turn.
    committing: Mutex<()>,
}

/// One caller's append, waiting to be committed with the others.
struct Append {
    partner: String,
    messages: Vec<Vec<u8>>,
    /// Where the sequence of the first message, or why it failed, goes.
    done: mpsc::SyncSender<std::result::Result<u64, String>>,
}

fn store_error(error: impl std::fmt::Display) -> Error {
    Error::Store(format!("outbox: {error}"))
}

impl Outbox {
    /// Opens (or creates) the outbox at `path` and reports the depth of
    /// every partner it holds entries for.
    pub fn open(path: &Path, telemetry: Arc<Telemetry>) -> Result<Self> {
        let db =
            Database::create(path).map_err(|e| Error::Store(format!("{}: {e}", path.display())))?;
        let transaction = db.begin_write().map_err(store_error)?;
        {
            // Created on first use, so readers always find both tables.
            transaction.open_table(ENTRIES).map_err(store_error)?;
            let partners = transaction.open_table(PARTNERS).map_err(store_error)?;
            for row in partners.iter().map_err(store_error)? {
                let (name, state) = row.map_err(store_error)?;
                telemetry.set_outbox_pending(name.value(), state.value().1);
            }
        }
        transaction.commit().map_err(store_error)?;
        Ok(Outbox {
            db,
            telemetry,
            waiting: Mutex::new(Vec::new()),
            committing: Mutex::new(()),
        })
    }

    /// Appends `messages` for `partner` durably and returns the sequence of
    /// the first (the others follow it by one). A caller acknowledges its
    /// input only once this returned. Concurrent calls share a commit.
    pub fn append(&self, partner: &str, messages: Vec<Vec<u8>>) -> Result<u64> {
        self.enqueue(partner, messages).wait(self)
    }

    /// Puts `messages` for `partner` in line for the next commit, without
    /// waiting: appends are stored in the order they were enqueued. Nothing
    /// is durable until [`Queued::wait`] returns.
    pub fn enqueue(&self, partner: &str, messages: Vec<Vec<u8>>) -> Queued {
        let (done, result) = mpsc::sync_channel(1);
        lock(&self.waiting).push(Append {
            partner: partner.to_owned(),
            messages,
            done,
        });
        Queued(result)
    }

    /// Commits a group of appends in one transaction and tells each caller
    /// its first sequence, or the error.
    fn commit_group(&self, group: Vec<Append>) {
        let now = unix_now();
        let committed = (|| {
            let transaction = self.db.begin_write().map_err(store_error)?;
            let mut firsts = Vec::with_capacity(group.len());
            let mut depths = Vec::new();
            {
                let mut entries = transaction.open_table(ENTRIES).map_err(store_error)?;
                let mut partners = transaction.open_table(PARTNERS).map_err(store_error)?;
                for append in &group {
                    let partner = append.partner.as_str();
                    let (last, count) = partners
                        .get(partner)
                        .map_err(store_error)?
                        .map_or((0, 0), |state| state.value());
                    for (seq, message) in (last + 1..).zip(&append.messages) {
                        entries
                            .insert((partner, seq), (now, message.as_slice()))
                            .map_err(store_error)?;
                    }
                    let added = append.messages.len() as u64;
                    partners
                        .insert(partner, (last + added, count + added))
                        .map_err(store_error)?;
                    firsts.push(last + 1);
                    depths.push((partner, count + added));
                }
            }
            transaction.commit().map_err(store_error)?;
            // The last depth of each partner is its depth now.
            for (partner, depth) in depths {
                self.telemetry.set_outbox_pending(partner, depth);
            }
            Ok::<_, Error>(firsts)
        })();
        match committed {
            Ok(firsts) => {
                for (append, first) in group.iter().zip(firsts) {
                    let _ = append.done.send(Ok(first));
                }
            }
            Err(error) => {
                for append in &group {
                    let _ = append.done.send(Err(error.to_string()));
                }
            }
        }
    }

    /// Up to `limit` of `partner`'s entries after sequence `after`, in order.
    pub fn read(&self, partner: &str, after: u64, limit: usize) -> Result<Vec<Entry>> {
        let Some(first) = after.checked_add(1) else {
            return Ok(Vec::new());
        };
        let transaction = self.db.begin_read().map_err(store_error)?;
        let entries = transaction.open_table(ENTRIES).map_err(store_error)?;
        let mut found = Vec::new();
        for row in entries
            .range((partner, first)..=(partner, u64::MAX))
            .map_err(store_error)?
            .take(limit)
        {
            let (key, value) = row.map_err(store_error)?;
            let (appended, message) = value.value();
            found.push(Entry {
                seq: key.value().1,
                appended,
                message: message.to_vec(),
            });
        }
        Ok(found)
    }

    /// Removes `partner`'s entries up to and including `seq`: what the push
    /// worker has settled (delivered, or dead-lettered).
    pub fn remove_through(&self, partner: &str, seq: u64) -> Result<()> {
        self.remove_while(partner, seq, |_| true).map(drop)
    }

    /// Removes `partner`'s entries appended before `before` (Unix seconds):
    /// the pull retention. Returns how many were removed.
    pub fn prune(&self, partner: &str, before: u64) -> Result<u64> {
        self.remove_while(partner, u64::MAX, |appended| appended < before)
    }

    /// How many entries `partner` has waiting.
    pub fn depth(&self, partner: &str) -> Result<u64> {
        let transaction = self.db.begin_read().map_err(store_error)?;
        let partners = transaction.open_table(PARTNERS).map_err(store_error)?;
        let state = partners.get(partner).map_err(store_error)?;
        Ok(state.map_or(0, |state| state.value().1))
    }

    /// Removes `partner`'s entries from the front, up to sequence `through`,
    /// as long as `remove` holds for their time of appending; how many.
    fn remove_while(
        &self,
        partner: &str,
        through: u64,
        remove: impl Fn(u64) -> bool,
    ) -> Result<u64> {
        self.change(partner, |entries, (last, count)| {
            let mut doomed = Vec::new();
            for row in entries
                .range((partner, 0)..=(partner, through))
                .map_err(store_error)?
            {
                let (key, value) = row.map_err(store_error)?;
                if !remove(value.value().0) {
                    break;
                }
                doomed.push(key.value().1);
            }
            for seq in &doomed {
                entries.remove((partner, *seq)).map_err(store_error)?;
            }
            let removed = doomed.len() as u64;
            Ok(((last, count.saturating_sub(removed)), removed))
        })
    }

    /// Runs `apply` on the entries table and `partner`'s (last sequence,
    /// count) in one write transaction, stores the new state it returns,
    /// commits, and updates the partner's gauge.
    fn change<T>(
        &self,
        partner: &str,
        apply: impl FnOnce(
            &mut redb::Table<(&str, u64), (u64, &[u8])>,
            (u64, u64),
        ) -> Result<((u64, u64), T)>,
    ) -> Result<T> {
        let transaction = self.db.begin_write().map_err(store_error)?;
        let (count, result) = {
            let mut entries = transaction.open_table(ENTRIES).map_err(store_error)?;
            let mut partners = transaction.open_table(PARTNERS).map_err(store_error)?;
            let state = partners
                .get(partner)
                .map_err(store_error)?
                .map_or((0, 0), |state| state.value());
            let (state, result) = apply(&mut entries, state)?;
            partners.insert(partner, state).map_err(store_error)?;
            (state.1, result)
        };
        transaction.commit().map_err(store_error)?;
        self.telemetry.set_outbox_pending(partner, count);
        Ok(result)
    }
}

/// An append in line for a commit.
pub struct Queued(mpsc::Receiver<std::result::Result<u64, String>>);

impl Queued {
    /// Blocks until the append is committed (committing the appends in
    /// line, this one's among them, unless another caller already is):
    /// the sequence of its first message.
    pub fn wait(self, outbox: &Outbox) -> Result<u64> {
        {
            let _turn = lock(&outbox.committing);
            let group = std::mem::take(&mut *lock(&outbox.waiting));
            if !group.is_empty() {
                outbox.commit_group(group);
            }
        }
        self.0
            .recv()
            .map_err(|_| Error::Store("outbox: an append was lost".into()))?
            .map_err(Error::Store)
    }
}

/// A lock, also when another holder panicked: the data it guards (a list
/// of waiting appends, or nothing) stays consistent.
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The messages of `entries` as one JSON array, byte for byte as the
/// outbox holds them: the body of a push, the `events` of a pull page.
pub fn json_array(entries: &[Entry]) -> Vec<u8> {
    let size = entries.iter().map(|e| e.message.len() + 1).sum::<usize>() + 2;
    let mut array = Vec::with_capacity(size);
    json::write_items(&mut array, entries, |out, entry| {
        out.extend_from_slice(&entry.message);
    });
    array
}

/// Runs `work` on the outbox on a thread where blocking is allowed: every
/// outbox call waits for the disk.
pub async fn blocking<T: Send + 'static>(
    outbox: &Arc<Outbox>,
    work: impl FnOnce(&Outbox) -> Result<T> + Send + 'static,
) -> Result<T> {
    let outbox = outbox.clone();
    tokio::task::spawn_blocking(move || work(&outbox))
        .await
        .map_err(|e| Error::Store(format!("outbox task: {e}")))?
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("ib-outbox-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir.join("outbox.redb")
    }

    fn messages(texts: &[&str]) -> Vec<Vec<u8>> {
        texts.iter().map(|t| t.as_bytes().to_vec()).collect()
    }

    fn bodies(entries: &[Entry]) -> Vec<(u64, String)> {
        entries
            .iter()
            .map(|e| (e.seq, String::from_utf8_lossy(&e.message).into_owned()))
            .collect()
    }

    #[test]
    fn appended_messages_are_read_in_order_per_partner() {
        let telemetry = Arc::new(Telemetry::new());
        let outbox = Outbox::open(&scratch("order"), telemetry.clone()).unwrap();
        assert_eq!(outbox.append("a", messages(&["1", "2", "3"])).unwrap(), 1);
        assert_eq!(outbox.append("b", messages(&["x"])).unwrap(), 1);
        assert_eq!(outbox.append("a", messages(&["4"])).unwrap(), 4);
        let all = outbox.read("a", 0, 100).unwrap();
        assert_eq!(
            bodies(&all),
            [(1, "1"), (2, "2"), (3, "3"), (4, "4")].map(|(s, t)| (s, t.to_owned()))
        );
        assert_eq!(bodies(&outbox.read("a", 1, 2).unwrap())[0].0, 2);
        assert_eq!(outbox.read("a", 1, 2).unwrap().len(), 2);
        assert!(outbox.read("a", 4, 10).unwrap().is_empty());
        assert!(outbox.read("a", u64::MAX, 10).unwrap().is_empty());
        assert_eq!(bodies(&outbox.read("b", 0, 10).unwrap()), [(1, "x".into())]);
        assert!(outbox.read("c", 0, 10).unwrap().is_empty());
        assert_eq!(outbox.depth("a").unwrap(), 4);
        assert_eq!(telemetry.outbox_pending("a"), Some(4));
    }

    #[test]
    fn concurrent_appends_get_every_sequence_once_in_their_own_order() {
        let telemetry = Arc::new(Telemetry::new());
        let outbox = Arc::new(Outbox::open(&scratch("group"), telemetry.clone()).unwrap());
        std::thread::scope(|scope| {
            for thread in 0..8 {
                let outbox = outbox.clone();
                scope.spawn(move || {
                    let partner = ["a", "b"][thread % 2];
                    for n in 0..25 {
                        let texts = [format!("{thread}-{n}-x"), format!("{thread}-{n}-y")];
                        let texts: Vec<&str> = texts.iter().map(String::as_str).collect();
                        let first = outbox.append(partner, messages(&texts)).unwrap();
                        // The two messages of one append are adjacent.
                        let read = outbox.read(partner, first - 1, 2).unwrap();
                        assert_eq!(bodies(&read)[0].1, texts[0]);
                        assert_eq!(bodies(&read)[1].1, texts[1]);
                    }
                });
            }
        });
        for partner in ["a", "b"] {
            let all = outbox.read(partner, 0, 1000).unwrap();
            let seqs: Vec<u64> = all.iter().map(|e| e.seq).collect();
            assert_eq!(seqs, (1..=200).collect::<Vec<_>>(), "{partner}");
            assert_eq!(telemetry.outbox_pending(partner), Some(200));
        }
    }

    #[test]
    fn removal_settles_the_front_and_sequences_survive_a_reopen() {
        let path = scratch("reopen");
        let telemetry = Arc::new(Telemetry::new());
        {
            let outbox = Outbox::open(&path, telemetry.clone()).unwrap();
            outbox.append("a", messages(&["1", "2", "3"])).unwrap();
            outbox.remove_through("a", 2).unwrap();
            assert_eq!(bodies(&outbox.read("a", 0, 10).unwrap()), [(3, "3".into())]);
            outbox.remove_through("a", 3).unwrap();
            assert_eq!(outbox.depth("a").unwrap(), 0);
        }
        let telemetry = Arc::new(Telemetry::new());
        let outbox = Outbox::open(&path, telemetry.clone()).unwrap();
        assert_eq!(telemetry.outbox_pending("a"), Some(0));
        // Emptied, reopened: the next sequence still follows the last one.
        assert_eq!(outbox.append("a", messages(&["4"])).unwrap(), 4);
        assert_eq!(bodies(&outbox.read("a", 0, 10).unwrap()), [(4, "4".into())]);
    }

    #[test]
    fn prune_removes_only_entries_older_than_the_cutoff() {
        let outbox = Outbox::open(&scratch("prune"), Arc::new(Telemetry::new())).unwrap();
        outbox.append("a", messages(&["1", "2"])).unwrap();
        assert_eq!(outbox.prune("a", 0).unwrap(), 0);
        assert_eq!(outbox.read("a", 0, 10).unwrap().len(), 2);
        assert_eq!(outbox.prune("a", unix_now() + 10).unwrap(), 2);
        assert!(outbox.read("a", 0, 10).unwrap().is_empty());
        assert_eq!(outbox.depth("a").unwrap(), 0);
    }

    #[test]
    fn entries_join_into_a_json_array() {
        let entry = |seq, text: &str| Entry {
            seq,
            appended: 0,
            message: text.as_bytes().to_vec(),
        };
        assert_eq!(json_array(&[]), b"[]");
        assert_eq!(
            json_array(&[entry(1, r#"{"a":1}"#), entry(2, "[2]")]),
            br#"[{"a":1},[2]]"#
        );
    }
}
