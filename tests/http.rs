//! `serve --config` over real HTTP on loopback: the authenticated ingest
//! (tokens, rate limit, content type, declared format, body limit, hostile
//! bodies) and the egress policy, with file partners as the outputs.

mod common;

use std::path::{Path, PathBuf};

use common::Server;
use serde_json::Value;
use sha2::{Digest, Sha256};

const SENDER_TOKEN: &str = "sender-secret-token";
const SLOW_TOKEN: &str = "slow-secret-token";
const MAX_BODY: usize = 65_536;

fn hex_sha256(token: &str) -> String {
    Sha256::digest(token.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Starts `serve` with an HTTP input routed to three file partners:
/// `sender` (which also sends, with a token), `amber` (the default policy)
/// and `n6` (n6, allowed up to RED but not `internal`); `slow` may only
/// send, one request.
fn start(dir: &Path) -> (Server, u16) {
    let port = common::free_port();
    let file = |name: &str| dir.join(format!("{name}.jsonl")).display().to_string();
    let config = format!(
        r#"
origin = "cert-h"
[http]
listen = "127.0.0.1:{port}"
max_body_bytes = {MAX_BODY}
[[inputs]]
name = "in"
transport = "http"
[[partners]]
name = "sender"
format = "intelmq"
transport = "file"
path = "{sender}"
token_sha256 = "{sender_digest}"
[[partners]]
name = "amber"
format = "intelmq"
transport = "file"
path = "{amber}"
[[partners]]
name = "n6"
format = "n6"
transport = "file"
path = "{n6}"
max_tlp = "RED"
[[partners]]
name = "slow"
format = "intelmq"
transport = "file"
path = "{slow}"
token_sha256 = "{slow_digest}"
rate_limit = 0.001
rate_burst = 1
[[routes]]
input = "in"
partners = ["sender", "amber", "n6"]
"#,
        sender = file("sender"),
        amber = file("amber"),
        n6 = file("n6"),
        slow = file("slow"),
        sender_digest = hex_sha256(SENDER_TOKEN),
        slow_digest = hex_sha256(SLOW_TOKEN),
    );
    let path = dir.join("bridge.toml");
    std::fs::write(&path, config).unwrap();
    let config = path.to_str().expect("UTF-8 path");
    (common::serve(&["--config", config], port), port)
}

fn request(port: u16, path: &str, headers: &[&str], body: &[u8]) -> Option<(u16, String)> {
    common::http(port, "POST", path, headers, body)
}

fn get(port: u16, path: &str) -> Option<String> {
    common::http(port, "GET", path, &[], b"").map(|(_, body)| body)
}

fn temp_dir(name: &str) -> PathBuf {
    common::scratch(&format!("http-{name}"))
}

/// The JSON lines a file partner received.
fn received(dir: &Path, partner: &str) -> Vec<Value> {
    std::fs::read_to_string(dir.join(format!("{partner}.jsonl")))
        .unwrap_or_default()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect()
}

fn bearer(token: &str) -> String {
    format!("Authorization: Bearer {token}")
}

fn scanner(ip: &str, extra: &str) -> String {
    format!(
        r#"{{"__type": "Event", "source.ip": "{ip}", "classification.type": "scanner", "time.source": "2026-11-23T10:00:00+00:00"{extra}}}"#
    )
}

#[test]
fn without_a_known_token_nothing_is_delivered() {
    let dir = temp_dir("auth");
    let (_server, port) = start(&dir);
    let body = scanner("192.0.2.1", "");
    let (status, answer) = request(port, "/v1/events", &[], body.as_bytes()).unwrap();
    assert_eq!(status, 401, "{answer}");
    assert!(answer.contains("Bearer"), "{answer}");
    let basic = "Authorization: Basic c2VuZGVy";
    assert_eq!(
        request(port, "/v1/events", &[basic], body.as_bytes())
            .unwrap()
            .0,
        401
    );
    let wrong = bearer("not-a-partner");
    let (status, answer) = request(port, "/v1/events", &[&wrong], body.as_bytes()).unwrap();
    assert_eq!(status, 403, "{answer}");
    for partner in ["sender", "amber", "n6"] {
        assert!(received(&dir, partner).is_empty(), "{partner}");
    }
    let metrics = get(port, "/metrics").unwrap();
    assert!(
        metrics.contains(r#"intelmq_bridge_ingest_refused_total{partner="",reason="forbidden"} 1"#),
        "{metrics}"
    );
}

#[test]
fn a_mixed_batch_is_answered_per_record_and_the_egress_policy_holds() {
    let dir = temp_dir("batch");
    let (_server, port) = start(&dir);
    let body = [
        scanner("192.0.2.1", r#", "tlp": "GREEN""#),
        scanner("999.1.1.1", ""),
        scanner("192.0.2.3", r#", "tlp": "RED""#),
        scanner(
            "192.0.2.4",
            r#", "tlp": "WHITE", "extra.n6.restriction": "internal""#,
        ),
    ]
    .join("\n");
    let token = bearer(SENDER_TOKEN);
    let headers = [token.as_str(), "Content-Type: application/x-ndjson"];
    let (status, answer) = request(port, "/v1/events", &headers, body.as_bytes()).unwrap();
    assert_eq!(status, 422, "{answer}");
    let answer: Value = serde_json::from_str(&answer).unwrap();
    assert_eq!(answer["accepted"], 3, "{answer}");
    assert_eq!(answer["rejected"], 1, "{answer}");
    let results = answer["results"].as_array().unwrap();
    let statuses: Vec<&str> = results
        .iter()
        .map(|r| r["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["accepted", "rejected", "accepted", "accepted"]);
    assert!(results[1]["reason"].as_str().unwrap().contains("source.ip"));

    // AMBER at most, no `internal`: only the GREEN event.
    let amber = received(&dir, "amber");
    assert_eq!(amber.len(), 1, "{amber:?}");
    assert_eq!(amber[0]["source.ip"], "192.0.2.1");
    // Up to RED, but an n6 RED event would be `internal`: withheld too.
    let n6 = received(&dir, "n6");
    assert_eq!(n6.len(), 1, "{n6:?}");
    assert_eq!(n6[0]["restriction"], "need-to-know");
    // The sender is never sent its own events back.
    assert!(received(&dir, "sender").is_empty());

    let metrics = get(port, "/metrics").unwrap();
    for line in [
        r#"intelmq_bridge_withheld_total{partner="amber",reason="tlp"} 1"#,
        r#"intelmq_bridge_withheld_total{partner="amber",reason="restriction"} 1"#,
        r#"intelmq_bridge_withheld_total{partner="n6",reason="restriction"} 2"#,
    ] {
        assert!(metrics.contains(line), "{line}\n{metrics}");
    }
}

#[test]
fn bad_requests_get_clear_4xx_answers_and_the_server_keeps_serving() {
    let dir = temp_dir("hostile");
    let (_server, port) = start(&dir);
    let token = bearer(SENDER_TOKEN);
    let auth = [token.as_str()];
    let good = scanner("192.0.2.9", "");

    let oversized = format!(
        r#"{{"__type": "Event", "source.ip": "192.0.2.1", "comment": "{}"}}"#,
        "x".repeat(2 * MAX_BODY)
    );
    let (status, answer) = request(port, "/v1/events", &auth, oversized.as_bytes()).unwrap();
    assert_eq!(status, 413, "{answer}");
    assert!(answer.contains("larger than"), "{answer}");

    let xml = [token.as_str(), "Content-Type: application/xml"];
    let (status, answer) = request(port, "/v1/events", &xml, good.as_bytes()).unwrap();
    assert_eq!(status, 415, "{answer}");
    assert!(answer.contains("application/xml"), "{answer}");

    let (status, answer) = request(port, "/v1/events?format=misp", &auth, good.as_bytes()).unwrap();
    assert_eq!(status, 400, "{answer}");
    assert!(
        answer.contains(r#"\"misp\" is not a known format"#),
        "{answer}"
    );

    let mut invalid_utf8 =
        br#"{"__type": "Event", "source.ip": "192.0.2.1", "comment": ""#.to_vec();
    invalid_utf8.extend_from_slice(b"\xff\xfe\"}");
    let (status, answer) = request(port, "/v1/events", &auth, &invalid_utf8).unwrap();
    assert_eq!(status, 422, "{answer}");
    let answer: Value = serde_json::from_str(&answer).unwrap();
    assert_eq!(answer["rejected"], 1, "{answer}");

    let deep = format!("{}{}", "[".repeat(20_000), "]".repeat(20_000));
    let (status, answer) = request(port, "/v1/events", &auth, deep.as_bytes()).unwrap();
    // The array's one element nests too deep for the decoder: that record
    // is rejected with the reason.
    assert_eq!(status, 422, "{answer}");
    let answer: Value = serde_json::from_str(&answer).unwrap();
    let reason = answer["results"][0]["reason"].as_str().unwrap();
    assert!(reason.contains("recursion limit"), "{reason}");

    // Declared as IntelMQ, and a plain good request: still served.
    let (status, answer) =
        request(port, "/v1/events?format=intelmq", &auth, good.as_bytes()).unwrap();
    assert_eq!(status, 200, "{answer}");
    let (status, answer) = request(port, "/v1/events", &auth, good.as_bytes()).unwrap();
    assert_eq!(status, 200, "{answer}");
    assert_eq!(received(&dir, "amber").len(), 2);
}

#[test]
fn a_partner_over_its_rate_gets_429() {
    let dir = temp_dir("rate");
    let (_server, port) = start(&dir);
    let token = bearer(SLOW_TOKEN);
    let body = scanner("192.0.2.1", "");
    let (status, answer) = request(port, "/v1/events", &[&token], body.as_bytes()).unwrap();
    assert_eq!(status, 200, "{answer}");
    let (status, answer) = request(port, "/v1/events", &[&token], body.as_bytes()).unwrap();
    assert_eq!(status, 429, "{answer}");
    // Another partner's allowance is its own.
    let other = bearer(SENDER_TOKEN);
    assert_eq!(
        request(port, "/v1/events", &[&other], body.as_bytes())
            .unwrap()
            .0,
        200
    );
}
