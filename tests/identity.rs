//! Identity across formats, with real bridge processes: three instances
//! (three origins, three seen-stores) pass an event around in every
//! ordering of the formats, and the origin drops it when it comes back.

mod common;

use std::path::Path;

use common::{bridge, scratch, Run};
use intelmq_bridge::formats::Registry;
use intelmq_bridge::identity::{RedisStore, SeenStore};

const EVENT: &str = "fixtures/intelmq/valid/05-feodotracker-c2-server.json";

/// One instance's hop: decode whatever arrives, encode as `to`.
fn hop(origin: &str, store: &Path, to: &str, input: &[u8]) -> Run {
    let store = store.to_str().expect("UTF-8 path");
    let mut args = vec![
        "translate",
        "--from",
        "auto",
        "--to",
        to,
        "--origin",
        origin,
        "--seen-db",
        store,
    ];
    if to == "intelmq" {
        // Ids ride through IntelMQ bots in extra.iep04.
        args.push("--meta-in-extra");
    }
    let run = bridge(&args, input);
    assert_eq!(run.code, 0, "{origin} -> {to}: {}", run.stderr);
    run
}

/// A creates the event from its IntelMQ pipeline and sends it on as `first`.
fn created_at_a(store: &Path, first: &str) -> Run {
    let event = std::fs::read(common::repo_path(EVENT)).expect("fixture");
    hop("cert-a", store, first, &event)
}

fn formats() -> Vec<&'static str> {
    Registry::standard().names()
}

fn assert_dropped(run: &Run, route: &str) {
    assert_eq!(run.stdout, "", "{route}: the event came back through");
    assert!(
        run.stderr.starts_with("dropped "),
        "{route}: {}",
        run.stderr
    );
}

#[test]
fn an_event_never_circles_through_three_instances() {
    let formats = formats();
    for &first in &formats {
        for &second in &formats {
            for &third in &formats {
                if first == second || second == third || first == third && formats.len() > 2 {
                    continue;
                }
                let route = format!("A -{first}-> B -{second}-> C -{third}-> A");
                let dir = scratch(&format!("circle-{first}-{second}-{third}"));
                let (a, b, c) = (dir.join("a.redb"), dir.join("b.redb"), dir.join("c.redb"));
                let to_b = created_at_a(&a, first);
                let to_c = hop("cert-b", &b, second, to_b.stdout.as_bytes());
                assert!(!to_c.stdout.is_empty(), "{route}: B dropped it");
                let to_a = hop("cert-c", &c, third, to_c.stdout.as_bytes());
                assert!(!to_a.stdout.is_empty(), "{route}: C dropped it");
                let back = hop("cert-a", &a, "intelmq", to_a.stdout.as_bytes());
                assert_dropped(&back, &route);
            }
        }
    }
}

#[test]
fn an_event_never_bounces_between_two_instances() {
    for first in formats() {
        for second in formats() {
            let route = format!("A -{first}-> B -{second}-> A");
            let dir = scratch(&format!("bounce-{first}-{second}"));
            let (a, b) = (dir.join("a.redb"), dir.join("b.redb"));
            let to_b = created_at_a(&a, first);
            let back = hop("cert-b", &b, second, to_b.stdout.as_bytes());
            let at_a = hop("cert-a", &a, "intelmq", back.stdout.as_bytes());
            assert_dropped(&at_a, &route);
        }
    }
}

#[test]
fn the_own_origin_rule_holds_when_the_store_has_forgotten() {
    for format in formats() {
        let dir = scratch(&format!("own-origin-{format}"));
        let sent = created_at_a(&dir.join("a.redb"), format);
        let relayed = hop(
            "cert-b",
            &dir.join("b.redb"),
            format,
            sent.stdout.as_bytes(),
        );
        // A comes back with an empty store: only the origin can tell.
        let back = hop(
            "cert-a",
            &dir.join("a-new.redb"),
            "intelmq",
            relayed.stdout.as_bytes(),
        );
        assert_dropped(&back, &format!("{format} with a fresh store"));
        assert!(back.stderr.contains("1 loops"), "{format}: {}", back.stderr);
    }
}

#[test]
fn the_same_event_sent_twice_is_dropped_once() {
    for format in formats() {
        let dir = scratch(&format!("twice-{format}"));
        let sent = created_at_a(&dir.join("a.redb"), format);
        let b = dir.join("b.redb");
        let first = hop("cert-b", &b, "intelmq", sent.stdout.as_bytes());
        assert!(!first.stdout.is_empty(), "{format}: first delivery dropped");
        // A second run is a restart of B: the store on disk remembers.
        let again = hop("cert-b", &b, "intelmq", sent.stdout.as_bytes());
        assert_dropped(&again, &format!("{format} twice"));
        assert!(
            again.stderr.contains("1 duplicates"),
            "{format}: {}",
            again.stderr
        );
    }
}

#[test]
fn fingerprints_recognise_one_outside_event_imported_twice() {
    let dir = scratch("fingerprint");
    let store = dir.join("b.redb");
    let store = store.to_str().expect("UTF-8 path");
    let event = std::fs::read(common::repo_path(EVENT)).expect("fixture");
    let args = [
        "translate",
        "--to",
        "intelmq",
        "--envelope",
        "--fingerprint",
        "--seen-db",
        store,
    ];
    // Two instances import the same feed line: different UUIDs.
    let import_1 = bridge(
        &[
            "translate",
            "--to",
            "intelmq",
            "--envelope",
            "--origin",
            "x",
        ],
        &event,
    );
    let import_2 = bridge(
        &[
            "translate",
            "--to",
            "intelmq",
            "--envelope",
            "--origin",
            "y",
        ],
        &event,
    );
    assert_ne!(import_1.stdout, import_2.stdout);
    let first = bridge(&args, import_1.stdout.as_bytes());
    assert_eq!(first.lines().len(), 1, "{}", first.stderr);
    let fp = first.lines()[0]["meta"]["uuid"]["alternate"][0].clone();
    assert!(fp.as_str().is_some_and(|id| id.starts_with("fp:")), "{fp}");
    let second = bridge(&args, import_2.stdout.as_bytes());
    assert_dropped(&second, "second import");
}

/// Needs the Redis server that `.ci/run` makes sure of (127.0.0.1:6379).
/// Outside CI, a machine without Redis skips it (and says so).
#[test]
fn redis_store_is_shared_between_instances() {
    let url = "redis://127.0.0.1:6379/0";
    if std::net::TcpStream::connect("127.0.0.1:6379").is_err() && std::env::var_os("CI").is_none() {
        eprintln!("skipped: no Redis on 127.0.0.1:6379 (CI starts one)");
        return;
    }
    let prefix = format!("intelmq-bridge-test:{}:{}:", std::process::id(), line!());
    let retention = std::time::Duration::from_secs(60);
    let mut one = RedisStore::connect(url, &prefix, retention).expect("Redis is reachable");
    let mut two = RedisStore::connect(url, &prefix, retention).expect("Redis is reachable");
    let ids = vec!["idea:abc".to_owned(), "n6:0123".to_owned()];
    assert!(!one.seen_any(&ids).expect("SET NX"));
    assert!(two.seen_any(&ids[1..]).expect("SET NX"));
    assert!(one.seen_any(&ids).expect("SET NX"));
}
