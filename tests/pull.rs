//! `serve` with pull partners, over real HTTP on loopback: a consumer
//! paging through `GET /v1/partners/{name}/events` gets every event once,
//! in order, exactly as a file partner of the same format gets them, and
//! only the partner itself may read.

mod common;

use std::io::{Read, Write};
use std::path::Path;

use common::Server;
use serde_json::Value;

const SENDER: &str = "sender-token";
const FEED: &str = "feed-token";
const OTHER: &str = "other-token";

/// `serve` with an HTTP ingest (the `sender` partner's token sends) routed
/// to `feed` (IDEA, pulled), `other` (IntelMQ, pulled) and `archive`
/// (IDEA, a file).
fn start(dir: &Path) -> (Server, u16) {
    let port = common::free_port();
    let config = format!(
        r#"{head}
[[partners]]
name = "sender"
format = "intelmq"
transport = "file"
path = "{sender}"
token_sha256 = "{sender_digest}"
[[partners]]
name = "feed"
format = "idea"
transport = "pull"
token_sha256 = "{feed_digest}"
[[partners]]
name = "other"
format = "intelmq"
transport = "pull"
token_sha256 = "{other_digest}"
[[partners]]
name = "archive"
format = "idea"
transport = "file"
path = "{archive}"
[[routes]]
input = "in"
partners = ["feed", "other", "archive"]
"#,
        head = common::ingest_config_head("cert-q", port, "", &dir.join("store")),
        sender = dir.join("sender.jsonl").display(),
        archive = dir.join("archive.jsonl").display(),
        sender_digest = common::hex_sha256(SENDER),
        feed_digest = common::hex_sha256(FEED),
        other_digest = common::hex_sha256(OTHER),
    );
    let path = dir.join("bridge.toml");
    std::fs::write(&path, config).unwrap();
    (
        common::serve(&["--config", path.to_str().unwrap()], port),
        port,
    )
}

fn ingest(port: u16, events: &[String]) {
    let token = format!("Authorization: Bearer {SENDER}");
    let (status, answer) = common::http(
        port,
        "POST",
        "/v1/events",
        &[&token],
        events.join("\n").as_bytes(),
    )
    .expect("ingest answers");
    assert_eq!(status, 200, "{answer}");
}

/// A GET with an optional bearer token: the status, the header block and
/// the body.
fn get(port: u16, path: &str, token: Option<&str>) -> (u16, String, String) {
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    let authorization = token.map_or(String::new(), |t| format!("Authorization: Bearer {t}\r\n"));
    write!(
        stream,
        "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n{authorization}\r\n"
    )
    .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    let (head, body) = answer.split_once("\r\n\r\n").unwrap();
    let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    (status, head.to_owned(), body.to_owned())
}

/// One page the `feed` partner reads: its events as JSON text, and `next`.
fn page(port: u16, query: &str) -> (Vec<String>, String) {
    let (status, _, body) = get(
        port,
        &format!("/v1/partners/feed/events{query}"),
        Some(FEED),
    );
    assert_eq!(status, 200, "{body}");
    let answer: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(answer["partner"], "feed");
    assert_eq!(answer["format"], "idea");
    let events = answer["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(Value::to_string)
        .collect();
    (events, answer["next"].as_str().unwrap().to_owned())
}

fn archive(dir: &Path) -> Vec<String> {
    std::fs::read_to_string(dir.join("archive.jsonl"))
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

#[test]
fn a_consumer_paging_through_gets_each_event_once_in_order() {
    let dir = common::scratch("pull-pages");
    let (_server, port) = start(&dir);
    let events: Vec<String> = (1..=8)
        .map(|i| {
            common::scanner(
                &format!("192.0.2.{i}"),
                if i == 5 { "RED" } else { "GREEN" },
            )
        })
        .collect();
    ingest(port, &events);

    let mut pulled = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let query = match &cursor {
            None => "?limit=3".to_owned(),
            Some(after) => format!("?after={after}&limit=3"),
        };
        let (events, next) = page(port, &query);
        assert!(events.len() <= 3);
        if events.is_empty() {
            // Nothing new: `next` stays where the consumer is.
            assert_eq!(Some(&next), cursor.as_ref());
            break;
        }
        assert_ne!(Some(&next), cursor.as_ref());
        pulled.extend(events);
        cursor = Some(next);
    }
    // Every event once, in order, exactly as the file partner got them;
    // the TLP:RED one reached neither (max_tlp is AMBER by default).
    let archive = archive(&dir);
    assert_eq!(archive.len(), 7);
    assert_eq!(pulled, archive);
    assert!(!pulled.iter().any(|e| e.contains("192.0.2.5")));

    // A new event appears on the next read from the last cursor.
    ingest(port, &[common::scanner("192.0.2.9", "GREEN")]);
    let last = cursor.unwrap();
    let (events, next) = page(port, &format!("?after={last}"));
    assert_eq!(events.len(), 1);
    assert!(events[0].contains("192.0.2.9"), "{events:?}");
    assert_eq!(page(port, &format!("?after={next}")).0.len(), 0);
    // Reading deletes nothing: from the start again, everything.
    let (events, _) = page(port, "");
    assert_eq!(events.len(), 8);

    common::assert_metrics(
        port,
        &[
            r#"intelmq_bridge_pulled_total{partner="feed"} 16"#,
            r#"intelmq_bridge_outbox_pending{partner="feed"} 8"#,
        ],
    );
}

#[test]
fn only_the_partner_itself_may_pull() {
    let dir = common::scratch("pull-auth");
    let (_server, port) = start(&dir);
    ingest(port, &[common::scanner("192.0.2.1", "GREEN")]);
    let feed = "/v1/partners/feed/events";

    let (status, head, body) = get(port, feed, None);
    assert_eq!(status, 401, "{body}");
    assert!(
        head.to_ascii_lowercase()
            .contains("www-authenticate: bearer"),
        "{head}"
    );
    assert!(body.contains("error"), "{body}");
    for token in [OTHER, SENDER, "nobody's"] {
        let (status, _, body) = get(port, feed, Some(token));
        assert_eq!(status, 403, "{token}: {body}");
        assert!(!body.contains("192.0.2.1"), "{body}");
    }
    for path in ["/v1/partners/archive/events", "/v1/partners/nosuch/events"] {
        let (status, _, body) = get(port, path, Some(FEED));
        assert_eq!(status, 404, "{path}: {body}");
    }
    // `other` reads its own events, in its own format.
    let (status, _, body) = get(port, "/v1/partners/other/events", Some(OTHER));
    assert_eq!(status, 200, "{body}");
    let answer: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(answer["format"], "intelmq");
    assert_eq!(answer["events"][0]["source.ip"], "192.0.2.1");
    assert_eq!(answer["next"], "1");

    for (query, parameter) in [
        ("?after=abc", "after"),
        ("?after=-1", "after"),
        ("?limit=0", "limit"),
        ("?limit=1001", "limit"),
        ("?limit=ten", "limit"),
    ] {
        let (status, _, body) = get(port, &format!("{feed}{query}"), Some(FEED));
        assert_eq!(status, 400, "{query}: {body}");
        let answer: Value = serde_json::from_str(&body).unwrap();
        let error = answer["error"].as_str().unwrap();
        assert!(error.starts_with(parameter), "{query}: {error}");
    }
    // Every refusal counted, by the pull partner named (a name that is no
    // pull partner's is not a label) and the reason.
    let metrics = common::metrics(port);
    for (labels, count) in [
        (r#"partner="feed",reason="unauthenticated""#, 1),
        (r#"partner="feed",reason="forbidden""#, 3),
        (r#"partner="",reason="not_found""#, 2),
        (r#"partner="feed",reason="bad_request""#, 5),
    ] {
        let line = format!("intelmq_bridge_pull_refused_total{{{labels}}} {count}");
        assert!(metrics.contains(&line), "{line}\n{metrics}");
    }
    assert!(!metrics.contains("nosuch"), "{metrics}");
}
