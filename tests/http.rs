//! `serve --config` over real HTTP on loopback: the authenticated ingest
//! (tokens, rate limit, content type, declared format, body limit, hostile
//! bodies), the dead letters of rejected records, the ids in the answer and
//! the egress policy, with file partners as the outputs.

mod common;

use std::path::{Path, PathBuf};

use common::Server;
use serde_json::Value;

const SENDER_TOKEN: &str = "sender-secret-token";
const SLOW_TOKEN: &str = "slow-secret-token";
/// Large enough for a body of several megabytes and 100,000 `[`.
const MAX_BODY: usize = 4 * 1024 * 1024;

/// Starts `serve`, its store in `dir`, with an HTTP input routed to four
/// file partners: `sender` (which also sends, with a token), `amber` (the
/// default policy), `n6` (n6, allowed up to RED but not `internal`) and
/// `archive` (IEP04 envelopes, everything); `slow` may only send, one
/// request.
fn start(dir: &Path) -> (Server, u16) {
    let port = common::free_port();
    let file = |name: &str| dir.join(format!("{name}.jsonl")).display().to_string();
    let config = format!(
        r#"{head}
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
name = "archive"
format = "intelmq"
envelope = "iep04"
transport = "file"
path = "{archive}"
max_tlp = "RED"
n6_restrictions = ["public", "need-to-know", "internal"]
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
partners = ["sender", "amber", "n6", "archive"]
"#,
        head = common::ingest_config_head(
            "cert-h",
            port,
            &format!("max_body_bytes = {MAX_BODY}"),
            dir
        ),
        archive = file("archive"),
        sender = file("sender"),
        amber = file("amber"),
        n6 = file("n6"),
        slow = file("slow"),
        sender_digest = common::hex_sha256(SENDER_TOKEN),
        slow_digest = common::hex_sha256(SLOW_TOKEN),
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

#[test]
fn without_a_known_token_nothing_is_delivered() {
    let dir = temp_dir("auth");
    let (_server, port) = start(&dir);
    let body = common::scanner_with("192.0.2.1", "");
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
    for partner in ["sender", "amber", "n6", "archive"] {
        assert!(received(&dir, partner).is_empty(), "{partner}");
    }
    let dead_letters = std::fs::read_to_string(dir.join("dead-letters.jsonl")).unwrap();
    assert!(dead_letters.is_empty(), "{dead_letters}");
    common::assert_metrics(
        port,
        &[r#"intelmq_bridge_ingest_refused_total{partner="",reason="forbidden"} 1"#],
    );
}

#[test]
fn a_mixed_batch_is_answered_per_record_and_the_egress_policy_holds() {
    let dir = temp_dir("batch");
    let (_server, port) = start(&dir);
    // n6 needs `time.source`: the last record cannot be encoded for it.
    let untimed = r#"{"__type": "Event", "source.ip": "192.0.2.5", "classification.type": "scanner", "tlp": "GREEN"}"#;
    let body = [
        common::scanner("192.0.2.1", "GREEN"),
        common::scanner_with("999.1.1.1", ""),
        common::scanner("192.0.2.3", "RED"),
        common::scanner_with(
            "192.0.2.4",
            r#", "tlp": "WHITE", "extra.n6.restriction": "internal""#,
        ),
        untimed.to_owned(),
    ]
    .join("\n");
    let token = bearer(SENDER_TOKEN);
    let headers = [token.as_str(), "Content-Type: application/x-ndjson"];
    let (status, answer) = request(port, "/v1/events", &headers, body.as_bytes()).unwrap();
    assert_eq!(status, 422, "{answer}");
    let answer: Value = serde_json::from_str(&answer).unwrap();
    assert_eq!(answer["accepted"], 3, "{answer}");
    assert_eq!(answer["rejected"], 2, "{answer}");
    let results = answer["results"].as_array().unwrap();
    let statuses: Vec<&str> = results
        .iter()
        .map(|r| r["status"].as_str().unwrap())
        .collect();
    assert_eq!(
        statuses,
        ["accepted", "rejected", "accepted", "accepted", "rejected"]
    );
    assert!(results[1]["reason"].as_str().unwrap().contains("source.ip"));
    assert_eq!(results[4]["stage"], "encode", "{answer}");
    assert_eq!(results[4]["failures"][0]["partner"], "n6", "{answer}");

    // Both rejected records are kept, with their numbers, reasons, input
    // and sender, before the answer.
    let dead = std::fs::read_to_string(dir.join("dead-letters.jsonl")).unwrap();
    let dead: Vec<Value> = dead
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert_eq!(dead.len(), 2, "{dead:?}");
    assert_eq!(dead[0]["records"], serde_json::json!([2]));
    assert_eq!(dead[0]["stage"], "decode");
    assert!(dead[0]["reason"].as_str().unwrap().contains("999.1.1.1"));
    assert!(dead[0]["input"].as_str().unwrap().contains("999.1.1.1"));
    assert_eq!(dead[0]["input_name"], "in");
    assert_eq!(dead[0]["sender"], "sender");
    assert_eq!(dead[1]["records"], serde_json::json!([5]));
    assert_eq!(dead[1]["stage"], "encode");
    assert_eq!(dead[1]["partner"], "n6");
    assert!(dead[1]["reason"].as_str().unwrap().contains("time.source"));
    assert_eq!(dead[1]["input"], untimed);

    // AMBER at most, no `internal`: the GREEN events, the one n6 could not
    // take included.
    let amber = received(&dir, "amber");
    let ips: Vec<&str> = amber
        .iter()
        .map(|event| event["source.ip"].as_str().unwrap())
        .collect();
    assert_eq!(ips, ["192.0.2.1", "192.0.2.5"]);
    // Up to RED, but an n6 RED event would be `internal`: withheld too.
    let n6 = received(&dir, "n6");
    assert_eq!(n6.len(), 1, "{n6:?}");
    assert_eq!(n6[0]["restriction"], "need-to-know");
    // The sender is never sent its own events back.
    assert!(received(&dir, "sender").is_empty());

    common::assert_metrics(
        port,
        &[
            r#"intelmq_bridge_ingested_total{partner="sender",status="accepted"} 3"#,
            r#"intelmq_bridge_ingested_total{partner="sender",status="rejected"} 2"#,
            r#"intelmq_bridge_dead_lettered_total{input="in",stage="encode"} 1"#,
            r#"intelmq_bridge_withheld_total{partner="amber",reason="tlp"} 1"#,
            r#"intelmq_bridge_withheld_total{partner="amber",reason="restriction"} 1"#,
            r#"intelmq_bridge_withheld_total{partner="n6",reason="restriction"} 2"#,
        ],
    );
}

#[test]
fn accepted_records_name_the_ids_of_their_events() {
    let dir = temp_dir("ids");
    let (_server, port) = start(&dir);
    // An IDEA message with an address range: a split group of three events.
    let range: Value = serde_json::from_str(
        &std::fs::read_to_string(common::repo_path("fixtures/idea/valid/05-range.json")).unwrap(),
    )
    .unwrap();
    let body = format!("{}\n{}", common::scanner_with("192.0.2.1", ""), range);
    let token = bearer(SENDER_TOKEN);
    let (status, answer) = request(port, "/v1/events", &[&token], body.as_bytes()).unwrap();
    assert_eq!(status, 200, "{answer}");
    let answer: Value = serde_json::from_str(&answer).unwrap();
    let ids: Vec<&Value> = answer["results"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|result| result["ids"].as_array().unwrap())
        .collect();
    assert_eq!(answer["results"][0]["ids"].as_array().unwrap().len(), 1);
    assert_eq!(answer["results"][1]["ids"].as_array().unwrap().len(), 3);
    // The archive holds the envelopes, in order, under those ids.
    let archived: Vec<Value> = received(&dir, "archive")
        .iter()
        .map(|envelope| envelope["meta"]["uuid"]["id"].clone())
        .collect();
    assert_eq!(archived.iter().collect::<Vec<_>>(), ids);
}

/// Whether the server still answers `/healthz` and takes a good record.
fn still_serving(port: u16, token: &str) -> bool {
    let good = common::scanner_with("192.0.2.9", "");
    get(port, "/healthz").is_some_and(|body| body.starts_with("ok"))
        && request(port, "/v1/events", &[token], good.as_bytes())
            .is_some_and(|(status, _)| status == 200)
}

#[test]
fn bad_requests_get_clear_4xx_answers_and_the_server_keeps_serving() {
    let dir = temp_dir("hostile");
    let (_server, port) = start(&dir);
    let token = bearer(SENDER_TOKEN);
    let auth = [token.as_str()];
    let good = common::scanner_with("192.0.2.9", "");
    let rejected_because = |answer: &str| -> String {
        let answer: Value = serde_json::from_str(answer).unwrap();
        assert_eq!(answer["rejected"], 1, "{answer}");
        answer["results"][0]["reason"].as_str().unwrap().to_owned()
    };

    // One byte over the limit.
    let head = r#"{"__type": "Event", "source.ip": "192.0.2.1", "time.source": "2026-11-23T10:00:00+00:00", "comment": ""#;
    let tail = r#""}"#;
    let oversized = format!(
        "{head}{}{tail}",
        "x".repeat(MAX_BODY + 1 - head.len() - tail.len())
    );
    assert_eq!(oversized.len(), MAX_BODY + 1);
    let (status, answer) = request(port, "/v1/events", &auth, oversized.as_bytes()).unwrap();
    assert_eq!(status, 413, "{answer}");
    assert!(answer.contains("larger than"), "{answer}");
    assert!(still_serving(port, &token));

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
    rejected_because(&answer);
    assert!(still_serving(port, &token));

    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    let (status, answer) = request(port, "/v1/events", &auth, deep.as_bytes()).unwrap();
    // The array's one element nests too deep for the decoder: that record
    // is rejected with the reason.
    assert_eq!(status, 422, "{answer}");
    let reason = rejected_because(&answer);
    assert!(reason.contains("recursion limit"), "{reason}");
    assert!(still_serving(port, &token));

    // A string of 3 MB, within the limit, is an event like any other.
    let huge = format!("{head}{}{tail}", "y".repeat(3_000_000));
    let (status, answer) = request(port, "/v1/events", &auth, huge.as_bytes()).unwrap();
    assert_eq!(status, 200, "{}", &answer[..answer.len().min(500)]);
    assert!(received(&dir, "archive")
        .iter()
        .any(|envelope| envelope["payload"]["comment"]
            .as_str()
            .is_some_and(|comment| comment.len() == 3_000_000)));
    assert!(still_serving(port, &token));

    // A record cut short is rejected; an array cut short cannot be split
    // into records at all.
    let cut = &good[..good.len() / 2];
    let (status, answer) = request(port, "/v1/events", &auth, cut.as_bytes()).unwrap();
    assert_eq!(status, 422, "{answer}");
    assert!(rejected_because(&answer).contains("not JSON"));
    let cut_array = format!("[{good}, {cut}");
    let (status, answer) = request(port, "/v1/events", &auth, cut_array.as_bytes()).unwrap();
    assert_eq!(status, 400, "{answer}");
    assert!(answer.contains("nothing was delivered"), "{answer}");
    assert!(still_serving(port, &token));

    // Declared as IntelMQ: served too.
    let (status, answer) =
        request(port, "/v1/events?format=intelmq", &auth, good.as_bytes()).unwrap();
    assert_eq!(status, 200, "{answer}");
}

/// Every write to the dead-letter log fails (it is `/dev/full`), and the
/// second partner's broker is not there: only the file partner `local`
/// can be delivered to.
#[cfg(target_os = "linux")]
fn start_failing(dir: &Path) -> (Server, u16) {
    std::os::unix::fs::symlink("/dev/full", dir.join("dead-letters.jsonl")).unwrap();
    let port = common::free_port();
    let config = format!(
        r#"{head}
[[partners]]
name = "local"
format = "intelmq"
transport = "file"
path = "{local}"
[[partners]]
name = "down"
format = "intelmq"
url = "amqp://guest:guest@127.0.0.1:1/%2f"
queue = "nowhere"
[[routes]]
input = "in"
partners = ["local", "down"]
"#,
        head = common::ingest_config_head("cert-h", port, "", dir),
        local = dir.join("local.jsonl").display(),
    );
    let path = dir.join("bridge.toml");
    std::fs::write(&path, config).unwrap();
    let config = path.to_str().expect("UTF-8 path");
    (common::serve(&["--config", config], port), port)
}

#[cfg(target_os = "linux")]
#[test]
fn what_cannot_be_kept_or_confirmed_is_answered_503_to_be_sent_again() {
    let dir = temp_dir("unavailable");
    let (_server, port) = start_failing(&dir);
    let good = [
        common::scanner_with("192.0.2.1", ""),
        common::scanner_with("192.0.2.2", ""),
    ]
    .join("\n");
    let (status, answer) = request(port, "/v1/events", &[], good.as_bytes()).unwrap();
    assert_eq!(status, 503, "{answer}");
    let answer: Value = serde_json::from_str(&answer).unwrap();
    assert_eq!(answer["unconfirmed"], serde_json::json!([1, 2]), "{answer}");
    let error = answer["error"].as_str().unwrap();
    assert!(error.contains(r#""down""#), "{error}");
    assert!(error.contains("send the whole body again"), "{error}");
    // The partners before the one that failed got the whole body.
    assert_eq!(received(&dir, "local").len(), 2);

    let mixed = [
        common::scanner_with("192.0.2.3", ""),
        common::scanner_with("999.1.1.1", ""),
    ]
    .join("\n");
    let (status, answer) = request(port, "/v1/events", &[], mixed.as_bytes()).unwrap();
    assert_eq!(status, 503, "{answer}");
    assert!(answer.contains("could not be kept"), "{answer}");
    // Nothing left before the rejected record was kept.
    assert_eq!(received(&dir, "local").len(), 2);
    let metrics = get(port, "/metrics").unwrap();
    assert!(
        !metrics.contains("intelmq_bridge_ingested_total{"),
        "{metrics}"
    );
}

#[test]
fn a_partner_over_its_rate_gets_429() {
    let dir = temp_dir("rate");
    let (_server, port) = start(&dir);
    let token = bearer(SLOW_TOKEN);
    let body = common::scanner_with("192.0.2.1", "");
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
