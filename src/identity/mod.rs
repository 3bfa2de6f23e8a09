//! Identity across formats: recognise an event that comes back, in any
//! format, and drop it, so that shared events never circle (IEP04's first
//! goal), and drop events received twice.
//!
//! An event is known by every id it carries: `meta.uuid.id` and each
//! alternate (`idea:…`, `n6:…`, `stix:…`, opaque ticket ids, and the
//! optional `fp:` fingerprint). The [`LoopGuard`] asks a [`SeenStore`]
//! whether any of them was seen before, and applies the own-origin rule:
//! meta that arrives naming this instance as its origin, or an IDEA message
//! whose `Node` list names this instance's node, is a loop even when the
//! store has forgotten it.

mod fingerprint;
mod redis_store;
mod store;

use std::path::Path;
use std::time::Duration;

use serde_json::Value;

use crate::envelope::Envelope;
use crate::error::Result;
use crate::formats::idea;

pub use fingerprint::Fingerprint;
pub use redis_store::RedisStore;
pub(crate) use store::unix_now;
pub use store::{FileStore, SeenStore, DEFAULT_RETENTION};

/// Where a seen-store lives.
#[derive(Debug, Clone, Copy)]
pub enum SeenLocation<'a> {
    /// A local file, kept across restarts.
    File(&'a Path),
    /// A Redis server (URL), shared by several instances.
    Redis(&'a str),
}

/// What the guard decided about one decoded message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Never seen: pass it on.
    New,
    /// One of its ids was seen before: drop it.
    Duplicate,
    /// It names this instance as its origin: it came back around; drop it.
    Loop,
}

/// Where decoded IDEA keeps the `Node` list of the message (the nodes it
/// passed, last first): see `mappings/idea/README.md`.
const IDEA_NODES: &str = "extra.idea";

/// Decides whether decoded messages are new, duplicates or loops.
pub struct LoopGuard {
    origin: String,
    /// This instance's name as an IDEA node (`Node.Name`).
    node_name: String,
    store: Box<dyn SeenStore>,
    fingerprint: Option<Fingerprint>,
}

impl LoopGuard {
    /// A guard for the instance named `origin`, remembering ids in `store`,
    /// and adding `fp:` alternates when `fingerprint` is given.
    pub fn new(origin: &str, store: Box<dyn SeenStore>, fingerprint: Option<Fingerprint>) -> Self {
        LoopGuard {
            origin: origin.to_owned(),
            node_name: idea::node_name(origin),
            store,
            fingerprint,
        }
    }

    /// Opens the seen-store at `location` and builds a guard on it; the
    /// one way the command line and the service set up identity.
    pub fn open(
        origin: &str,
        location: SeenLocation<'_>,
        retention: Duration,
        fingerprint: bool,
    ) -> Result<Self> {
        let store: Box<dyn SeenStore> = match location {
            SeenLocation::File(path) => Box::new(FileStore::open(path, retention)?),
            SeenLocation::Redis(url) => {
                let prefix = format!("intelmq-bridge:{origin}:seen:");
                Box::new(RedisStore::connect(url, &prefix, retention)?)
            }
        };
        let fingerprint = fingerprint.then(Fingerprint::standard);
        Ok(LoopGuard::new(origin, store, fingerprint))
    }

    /// Judges the events decoded from one message together (events split
    /// from one message share its ids, so they stand or fall as one), and
    /// records their ids when they are new.
    pub fn admit(&mut self, events: &mut [Envelope]) -> Result<Verdict> {
        if let Some(fingerprint) = &self.fingerprint {
            for event in events.iter_mut() {
                let id = fingerprint.id(&event.payload);
                event.meta.uuid.add_alternate(id);
            }
        }
        let own = |event: &Envelope| {
            (event.meta.arrived && event.meta.uuid.origin == self.origin)
                || idea_nodes(event).any(|name| name == self.node_name)
        };
        if events.iter().any(own) {
            return Ok(Verdict::Loop);
        }
        let mut ids: Vec<String> = Vec::new();
        for event in events.iter() {
            ids.push(event.meta.uuid.id.to_string());
            ids.extend(event.meta.uuid.alternates().iter().cloned());
        }
        ids.sort_unstable();
        ids.dedup();
        Ok(match self.store.seen_any(&ids)? {
            true => Verdict::Duplicate,
            false => Verdict::New,
        })
    }

    /// Makes every recorded id durable (call before acknowledging input).
    pub fn flush(&mut self) -> Result<()> {
        self.store.flush()
    }
}

/// The names in the IDEA `Node` list an event was decoded with.
fn idea_nodes(event: &Envelope) -> impl Iterator<Item = &str> {
    event
        .payload
        .get(IDEA_NODES)
        .and_then(|idea| idea.get("Node"))
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|node| node.get("Name").and_then(Value::as_str))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Event;
    use crate::harmonization::MessageType;

    fn guard(dir: &std::path::Path) -> LoopGuard {
        let store = FileStore::open(&dir.join("seen.redb"), DEFAULT_RETENTION).unwrap();
        LoopGuard::new("cert-a", Box::new(store), None)
    }

    fn event(origin: &str) -> Envelope {
        Envelope::new(Event::default(), MessageType::Event, "intelmq", origin)
    }

    fn temp_dir(name: &str) -> std::path::PathBuf {
        let dir =
            std::env::temp_dir().join(format!("intelmq-bridge-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn a_second_sighting_of_any_id_is_a_duplicate() {
        let dir = temp_dir("dup");
        let mut guard = guard(&dir);
        let mut first = event("cert-b");
        first.meta.uuid.add_alternate("idea:x1");
        assert_eq!(guard.admit(&mut [first.clone()]).unwrap(), Verdict::New);
        assert_eq!(guard.admit(&mut [first]).unwrap(), Verdict::Duplicate);
        // A different message that shares only an alternate id.
        let mut other = event("cert-c");
        other.meta.uuid.add_alternate("idea:x1");
        assert_eq!(guard.admit(&mut [other]).unwrap(), Verdict::Duplicate);
    }

    #[test]
    fn split_events_of_one_message_are_judged_together() {
        let dir = temp_dir("split");
        let mut guard = guard(&dir);
        let mut parts = [event("cert-b"), event("cert-b")];
        for part in &mut parts {
            part.meta.uuid.add_alternate("n6:abc");
        }
        assert_eq!(guard.admit(&mut parts).unwrap(), Verdict::New);
    }

    #[test]
    fn own_origin_is_a_loop_only_when_the_meta_arrived() {
        let dir = temp_dir("own");
        let mut guard = guard(&dir);
        let mut made_here = event("cert-a");
        assert_eq!(
            guard.admit(std::slice::from_mut(&mut made_here)).unwrap(),
            Verdict::New
        );
        let mut came_back = event("cert-a");
        came_back.meta.arrived = true;
        assert_eq!(guard.admit(&mut [came_back]).unwrap(), Verdict::Loop);
    }

    #[test]
    fn an_idea_node_list_naming_this_instance_is_a_loop() {
        let dir = temp_dir("node");
        let mut guard = guard(&dir);
        let warden = serde_json::json!({
            "Format": "IDEA0", "ID": "w-1", "DetectTime": "2026-01-01T00:00:00Z",
            "Category": ["Recon.Scanning"], "Source": [{"IP4": ["192.0.2.1"]}],
            "Node": [{"Name": "org.partner.relay"}, {"Name": "cert_a"}]
        });
        let context = crate::formats::DecodeContext::new("cert-x");
        let mut events = crate::formats::Format::decode(&idea::Idea, warden, &context).unwrap();
        assert_eq!(guard.admit(&mut events).unwrap(), Verdict::Loop);
    }

    #[test]
    fn the_store_survives_a_restart_and_forgets_after_retention() {
        let dir = temp_dir("restart");
        let seen = event("cert-b");
        {
            let mut guard = guard(&dir);
            assert_eq!(guard.admit(&mut [seen.clone()]).unwrap(), Verdict::New);
            guard.flush().unwrap();
        }
        let mut guard = guard(&dir);
        assert_eq!(
            guard.admit(&mut [seen.clone()]).unwrap(),
            Verdict::Duplicate
        );
        drop(guard);
        let store = FileStore::open(&dir.join("seen.redb"), Duration::ZERO).unwrap();
        let mut forgetful = LoopGuard::new("cert-a", Box::new(store), None);
        assert_eq!(forgetful.admit(&mut [seen]).unwrap(), Verdict::New);
    }

    #[test]
    fn fingerprints_join_events_imported_twice() {
        let dir = temp_dir("fp");
        let store = FileStore::open(&dir.join("seen.redb"), DEFAULT_RETENTION).unwrap();
        let mut guard = LoopGuard::new("cert-a", Box::new(store), Some(Fingerprint::standard()));
        let fields =
            serde_json::json!({"source.ip": "192.0.2.1", "classification.type": "scanner"});
        let serde_json::Value::Object(fields) = fields else {
            unreachable!()
        };
        let payload = Event::from_fields(
            MessageType::Event,
            fields,
            crate::harmonization::Harmonization::intelmq(),
        )
        .unwrap();
        let import = || Envelope::new(payload.clone(), MessageType::Event, "intelmq", "cert-x");
        assert_eq!(guard.admit(&mut [import()]).unwrap(), Verdict::New);
        assert_eq!(guard.admit(&mut [import()]).unwrap(), Verdict::Duplicate);
    }
}
