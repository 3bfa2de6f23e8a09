//! The n6 adapter end to end: fixtures both ways with snapshots, round
//! trips, split groups, ids, n6's constraints and the command line.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::LazyLock;

mod common;

use common::bridge;
use intelmq_bridge::envelope::{link_split_group, Envelope, WireForm};
use intelmq_bridge::formats::n6::N6;
use intelmq_bridge::formats::{DecodeContext, EncodeContext, Format, Registry};
use intelmq_bridge::harmonization::Harmonization;
use intelmq_bridge::schema::Schema;
use serde_json::{json, Value};

const ORIGIN: &str = "test-origin";

static N6_SCHEMA: LazyLock<Schema> =
    LazyLock::new(|| Schema::embedded("n6", include_str!("../schemas/n6.schema.json")));

fn fixtures(kind: &str) -> Vec<(String, PathBuf)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/n6")
        .join(kind);
    let mut files: Vec<(String, PathBuf)> = fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|e| e == "json"))
        .map(|path| {
            let name = path.file_stem().unwrap().to_string_lossy().into_owned();
            (name, path)
        })
        .collect();
    files.sort();
    files
}

fn read(path: &Path) -> Value {
    serde_json::from_str(&fs::read_to_string(path).unwrap()).unwrap()
}

fn decode(message: Value) -> Vec<Envelope> {
    N6.decode(message, &DecodeContext::new(ORIGIN)).unwrap()
}

/// Encodes and checks every output against n6's schema.
fn encode(envelopes: &[Envelope]) -> Vec<Value> {
    let out = N6.encode(envelopes, &EncodeContext::new(ORIGIN)).unwrap();
    for message in &out {
        if let Err(error) = N6_SCHEMA.check(message) {
            panic!("{error}\n{message:#}");
        }
    }
    out
}

fn wire(envelopes: &[Envelope]) -> Vec<Value> {
    envelopes
        .iter()
        .map(|e| e.to_wire(WireForm::Iep04))
        .collect()
}

fn envelope(value: Value) -> Envelope {
    Envelope::from_value(value, Harmonization::intelmq()).unwrap()
}

fn is_pipeline_form(message: &Value) -> bool {
    message
        .as_object()
        .unwrap()
        .keys()
        .any(|key| key == "rid" || key.starts_with('_'))
}

#[test]
fn valid_fixtures_decode_split_and_come_back() {
    let all = fixtures("valid");
    assert!(all.len() >= 15, "at least 15 valid fixtures");
    for (name, path) in all {
        let input = read(&path);
        let envelopes = decode(input.clone());
        let addresses = input
            .get("address")
            .and_then(Value::as_array)
            .map_or(0, Vec::len);
        // One event per address (not N+1 as IntelMQ's parser sends), or one.
        assert_eq!(envelopes.len(), addresses.max(1), "{name}");
        assert_eq!(
            decode(input.clone()),
            envelopes,
            "{name}: decoding is deterministic"
        );
        for (index, envelope) in envelopes.iter().enumerate() {
            let id = input["id"].as_str().unwrap();
            assert_eq!(
                envelope.meta.uuid.alternates(),
                [format!("n6:{id}")],
                "{name}"
            );
            let split = envelope.meta.split().map(|s| (s.index, s.count));
            let expected = (addresses > 1).then_some((index as u64, addresses as u64));
            assert_eq!(split, expected, "{name}");
        }
        let back = encode(&envelopes);
        assert_eq!(back.len(), 1, "{name}: a split group merges back");
        if is_pipeline_form(&input) {
            // The API form of the same event; IntelMQ fields survive exactly.
            assert_eq!(decode(back[0].clone()), envelopes, "{name}");
        } else {
            // Field for field and in the same key order.
            assert_eq!(back[0].to_string(), input.to_string(), "{name}");
        }
        insta::assert_json_snapshot!(
            format!("fixture_{name}"),
            json!({"intelmq": wire(&envelopes), "n6": back})
        );
    }
}

#[test]
fn invalid_fixtures_are_rejected_for_the_named_field() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/n6/invalid");
    let expected = fs::read_to_string(dir.join("EXPECTED.md")).unwrap();
    let all = fixtures("invalid");
    assert!(all.len() >= 8, "at least 8 invalid fixtures");
    for (name, path) in all {
        let row = expected
            .lines()
            .find(|line| line.starts_with(&format!("| `{name}.json`")))
            .unwrap_or_else(|| panic!("{name} is not in EXPECTED.md"));
        let field = row.split('`').nth(3).unwrap();
        let error = N6
            .decode(read(&path), &DecodeContext::new(ORIGIN))
            .unwrap_err()
            .to_string();
        assert!(error.starts_with(&format!("{field}: ")), "{name}: {error}");
    }
}

/// IntelMQ events with fixed meta, as another instance would send them.
fn intelmq_events() -> Vec<(&'static str, Envelope)> {
    let meta = |id: &str| {
        json!({"version": 1, "type": "event", "format": "intelmq",
               "uuid": {"origin": "cert-xy", "id": id, "related": [], "group": [],
                        "alternate": ["rt:CERT-XY#42"]}})
    };
    vec![
        (
            "scanner_with_ipv6_destination",
            envelope(
                json!({"meta": meta("0192f3a4-5b6c-7d8e-9f00-112233445566"), "payload": {
                "feed.name": "Shadowserver Scan", "feed.provider": "Shadowserver",
                "feed.accuracy": 90, "source.ip": "198.51.100.7", "source.port": 41234,
                "source.geolocation.cc": "AT", "source.asn": 64496,
                "source.reverse_dns": "scanner.example.net",
                "destination.ip": "2001:db8::1", "destination.port": 22,
                "protocol.transport": "tcp", "protocol.application": "ssh",
                "classification.taxonomy": "information-gathering",
                "classification.type": "scanner", "classification.identifier": "ssh",
                "time.source": "2026-03-01T12:00:00+00:00",
                "time.observation": "2026-03-01T12:05:00+00:00",
                "extra.tags": ["ssh", "brute"], "tlp": "GREEN",
                "raw": "c2Nhbm5lciBsaW5l"}}),
            ),
        ),
        (
            "c2_server_ipv6_source_only",
            envelope(
                json!({"meta": meta("0192f3a4-5b6c-7d8e-9f00-112233445577"), "payload": {
                "feed.name": "Abuse.ch Feodo", "source.ip": "2001:db8::beef",
                "source.fqdn": "c2.example.org", "source.url": "http://c2.example.org/gate",
                "malware.name": "qakbot", "malware.hash.sha256":
                    "4f2e8c2fd6c1b9a3a0e0b2e7d3d1c0b9a8f7e6d5c4b3a2918070605040302010",
                "classification.taxonomy": "malicious-code", "classification.type": "c2-server",
                "time.observation": "2026-03-02T08:00:00.5+00:00", "tlp": "RED"}}),
            ),
        ),
        (
            "brute_force_without_tlp",
            envelope(
                json!({"meta": meta("0192f3a4-5b6c-7d8e-9f00-112233445588"), "payload": {
                "source.ip": "203.0.113.9", "destination.account": "root",
                "classification.taxonomy": "intrusion-attempts",
                "classification.type": "brute-force",
                "time.source": "2026-03-03T01:02:03+00:00", "feed.accuracy": 66.0,
                "extra.n6.tags": ["ssh", "root"], "extra.n6.detail": {"attempts": 40}}}),
            ),
        ),
    ]
}

#[test]
fn intelmq_events_become_n6_and_come_back_exactly() {
    for (name, original) in intelmq_events() {
        let n6 = encode(std::slice::from_ref(&original));
        assert_eq!(n6.len(), 1);
        let back = decode(n6[0].clone());
        assert_eq!(back, vec![original], "{name}");
        insta::assert_json_snapshot!(format!("from_intelmq_{name}"), n6[0]);
    }
}

/// Three events of one split group (two IPv4 sources, one IPv6), as a
/// multi-source IDEA message decodes into.
fn split_group() -> Vec<Envelope> {
    let event = |id: &str, ip: &str| {
        envelope(json!({
            "meta": {"version": 1, "type": "event", "format": "idea",
                     "uuid": {"origin": "cert-cz", "id": id, "related": [], "group": [],
                              "alternate": ["idea:4d2f0c3e-aaaa-4bbb-8ccc-000000000001"]}},
            "payload": {"source.ip": ip, "destination.port": 445,
                        "classification.taxonomy": "intrusion-attempts",
                        "classification.type": "exploit",
                        "time.source": "2026-03-04T10:00:00+00:00",
                        "feed.name": "Warden"}
        }))
    };
    let mut events = vec![
        event("0192f3a4-5b6c-7d8e-9f00-000000000001", "192.0.2.10"),
        event("0192f3a4-5b6c-7d8e-9f00-000000000002", "2001:db8::10"),
        event("0192f3a4-5b6c-7d8e-9f00-000000000003", "192.0.2.11"),
    ];
    link_split_group(&mut events, "0192f3a4-5b6c-7d8e-9f00-0000000000ff");
    events
}

#[test]
fn a_split_group_merges_into_one_event_with_an_address_list() {
    let group = split_group();
    let n6 = encode(&group);
    assert_eq!(n6.len(), 1);
    assert_eq!(n6[0]["id"], "0192f3a45b6c7d8e9f000000000000ff");
    assert_eq!(
        n6[0]["address"],
        json!([{"ip": "192.0.2.10"}, {"ip": "192.0.2.11"}])
    );
    assert_eq!(decode(n6[0].clone()), group);
    insta::assert_json_snapshot!("from_intelmq_split_group", n6[0]);
}

#[test]
fn a_bridge_id_maps_straight_back_without_the_intelmq_field() {
    for (name, original) in intelmq_events() {
        let mut n6 = encode(std::slice::from_ref(&original)).remove(0);
        n6.as_object_mut().unwrap().remove("intelmq");
        let back = decode(n6);
        assert_eq!(back[0].meta.uuid.id, original.meta.uuid.id, "{name}");
    }
    // A genuine n6 id (MD5) gets a derived id instead.
    let fixture = read(&fixtures("valid")[0].1);
    let decoded = decode(fixture);
    assert_eq!(decoded[0].meta.uuid.id.get_version_num(), 5);
}

#[test]
fn replaces_becomes_a_typed_link_and_comes_back() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/n6/valid/stream-bl-change-cnc-replaces-two-addresses.json");
    let input = read(&path);
    let envelopes = decode(input.clone());
    let old = input["replaces"].as_str().unwrap();
    for envelope in &envelopes {
        let links = envelope.meta.links.as_deref().unwrap();
        assert_eq!(links.len(), 1);
        assert_eq!(links[0].kind, "replaces");
        assert_eq!(links[0].id, format!("n6:{old}"));
        assert_eq!(
            envelope.payload.get_str("classification.type"),
            Some("blacklist")
        );
        assert_eq!(envelope.payload.get_str("extra.n6.category"), Some("cnc"));
    }
}

#[test]
fn n6_is_recognised_by_shape_and_only_n6() {
    let registry = Registry::standard();
    for (name, path) in fixtures("valid") {
        let format = registry.recognise(&read(&path)).map(|f| f.name());
        assert_eq!(format, Some("n6"), "{name}");
    }
    let flat = json!({"__type": "Event", "source.ip": "192.0.2.1"});
    assert_eq!(registry.recognise(&flat).map(|f| f.name()), Some("intelmq"));
    assert!(!N6.recognises(&json!({"Format": "IDEA0", "ID": "x"})));
}

#[test]
fn cli_translates_n6_by_shape_and_merges_groups_back() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/n6/valid/stream-bots-sinkhole-three-addresses.json");
    let input = fs::read(&path).unwrap();
    let to_intelmq = bridge(
        &[
            "translate",
            "--from",
            "auto",
            "--to",
            "intelmq",
            "--envelope",
            "--origin",
            ORIGIN,
        ],
        &input,
    );
    assert_eq!(to_intelmq.code, 0);
    assert_eq!(to_intelmq.stdout.lines().count(), 3);
    let to_n6 = bridge(
        &[
            "translate",
            "--from",
            "auto",
            "--to",
            "n6",
            "--origin",
            ORIGIN,
        ],
        to_intelmq.stdout.as_bytes(),
    );
    assert_eq!(to_n6.code, 0);
    let back: Value = serde_json::from_str(&to_n6.stdout).unwrap();
    assert_eq!(back, read(&path));
}

#[test]
fn cli_rejects_bad_n6_with_field_and_exit_status_1() {
    let good = fs::read_to_string(&fixtures("valid")[0].1).unwrap();
    let bad = r#"{"id": "0123456789abcdef0123456789abcdef", "source": "hidden.1",
        "restriction": "public", "confidence": "low", "category": "scanning",
        "time": "2026-03-01T00:00:00Z", "address": [{"ip": "192.0.2.1"}, {"ip": "192.0.2.1"}]}"#;
    let input = format!("[{good}, {bad}]");
    let out = bridge(
        &[
            "translate",
            "--from",
            "n6",
            "--to",
            "intelmq",
            "--origin",
            ORIGIN,
        ],
        input.as_bytes(),
    );
    assert_eq!(out.code, 1);
    let stderr = &out.stderr;
    assert!(
        stderr.contains(r#"record 2 (line 20): address[1].ip: "192.0.2.1" is listed twice"#),
        "{stderr}"
    );
    let out = bridge(&["validate", "--format", "n6"], input.as_bytes());
    assert_eq!(out.code, 1);
    assert_eq!(out.stdout, "1 valid, 1 invalid\n");
}
