//! The STIX 2.1 adapter end to end: the fixtures through the real binary,
//! round trips, foreign bundles, invalid bundles, snapshots.

use std::path::{Path, PathBuf};

mod common;

use intelmq_bridge::envelope::Envelope;
use intelmq_bridge::formats::stix::{bundle_schema, Stix};
use intelmq_bridge::formats::{DecodeContext, EncodeContext, Format};
use intelmq_bridge::harmonization::Harmonization;
use serde_json::{json, Value};

fn fixture(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/stix")
        .join(path)
}

/// Runs the bridge on a file; returns stdout lines as JSON, stderr and the exit code.
fn bridge(args: &[&str], input: &Path) -> (Vec<Value>, String, i32) {
    let input = input.to_str().expect("UTF-8 path");
    let args: Vec<&str> = args
        .iter()
        .copied()
        .chain(["--origin", "test-origin", input])
        .collect();
    let run = common::bridge(&args, b"");
    (run.lines(), run.stderr, run.code)
}

fn envelopes_in(path: &Path) -> Vec<Envelope> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .collect::<Vec<_>>()
        .join("\n")
        .split("\n{\"meta\"")
        .enumerate()
        .map(|(index, part)| {
            let text = if index == 0 {
                part.to_owned()
            } else {
                format!("{{\"meta\"{part}")
            };
            Envelope::from_value(
                serde_json::from_str(&text).unwrap(),
                Harmonization::intelmq(),
            )
            .unwrap()
        })
        .collect()
}

const FROM_INTELMQ: [&str; 10] = [
    "blocklist-network.json",
    "scanner.json",
    "phishing-url.json",
    "c2-ip.json",
    "c2-domain.json",
    "infected-system.json",
    "vulnerable-service.json",
    "ddos.json",
    "malware-hash.json",
    "split-group.jsonl",
];

fn objects_of<'a>(bundle: &'a Value, kind: &str) -> Vec<&'a Value> {
    bundle["objects"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|object| object["type"] == kind)
        .collect()
}

#[test]
fn intelmq_fixtures_become_one_valid_bundle_each_and_come_back_exactly() {
    for name in FROM_INTELMQ {
        let path = fixture(&format!("from-intelmq/{name}"));
        let (bundles, stderr, code) =
            bridge(&["translate", "--from", "auto", "--to", "stix"], &path);
        assert_eq!(code, 0, "{name}: {stderr}");
        let [bundle] = bundles.as_slice() else {
            panic!("{name}: one bundle expected, got {}", bundles.len())
        };
        bundle_schema().check(bundle).unwrap();
        insta::assert_json_snapshot!(format!("encode-{name}"), bundle);

        // Back through the CLI: every envelope whole, payload exact.
        let out = std::env::temp_dir().join(format!("stix-test-{name}.json"));
        std::fs::write(&out, bundle.to_string()).unwrap();
        let (back, stderr, code) = bridge(
            &[
                "translate",
                "--from",
                "auto",
                "--to",
                "intelmq",
                "--envelope",
            ],
            &out,
        );
        assert_eq!(code, 0, "{name}: {stderr}");
        let originals = envelopes_in(&path);
        assert_eq!(back.len(), originals.len(), "{name}");
        for (back, original) in back.iter().zip(&originals) {
            let back = Envelope::from_value(back.clone(), Harmonization::intelmq()).unwrap();
            assert_eq!(back.payload, original.payload, "{name}");
            let mut expected = original.meta.clone();
            let stix_ids: Vec<&String> = back
                .meta
                .uuid
                .alternates()
                .iter()
                .filter(|id| id.starts_with("stix:"))
                .collect();
            assert!(!stix_ids.is_empty(), "{name}");
            for id in stix_ids {
                expected.uuid.add_alternate(id.clone());
                let stix_id = id.trim_start_matches("stix:");
                assert!(
                    bundle["objects"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .any(|o| o["id"] == stix_id),
                    "{name}: {id} not in the bundle"
                );
            }
            assert_eq!(back.meta, expected, "{name}");
        }
    }
}

#[test]
fn encoding_is_deterministic_and_decoding_our_bundle_is_exact() {
    let envelopes = envelopes_in(&fixture("from-intelmq/scanner.json"));
    let context = EncodeContext::new("test-origin");
    let first = Stix.encode(&envelopes, &context).unwrap();
    assert_eq!(first, Stix.encode(&envelopes, &context).unwrap());
    let decoded = Stix
        .decode(first[0].clone(), &DecodeContext::new("elsewhere"))
        .unwrap();
    // Encoding again what came back gives the same bundle: the STIX ids
    // recorded in alternate are the ones derived again.
    assert_eq!(Stix.encode(&decoded, &context).unwrap(), first);
}

#[test]
fn kinds_get_the_native_objects_of_the_mapping() {
    let encode = |name: &str| {
        let envelopes = envelopes_in(&fixture(&format!("from-intelmq/{name}")));
        Stix.encode(&envelopes, &EncodeContext::new("test-origin"))
            .unwrap()
            .remove(0)
    };
    let scanner = encode("scanner.json");
    let [indicator] = objects_of(&scanner, "indicator")[..] else {
        panic!("one indicator")
    };
    assert_eq!(indicator["pattern"], "[ipv4-addr:value = '198.51.100.23']");
    assert_eq!(indicator["indicator_types"], json!(["anomalous-activity"]));
    assert_eq!(
        indicator["object_marking_refs"],
        json!(["marking-definition--34098fce-860f-48ae-8e50-ebd3cc5e41da"])
    );
    let traffic = objects_of(&scanner, "network-traffic");
    assert_eq!(traffic[0]["protocols"], json!(["ipv4", "tcp", "ssh"]));

    let phishing = encode("phishing-url.json");
    assert_eq!(
        objects_of(&phishing, "indicator")[0]["pattern"],
        "[url:value = 'http://paypa1.example.com/login.php?user=a\\'b']"
    );

    let c2 = encode("c2-ip.json");
    assert_eq!(
        objects_of(&c2, "indicator")[0]["pattern"],
        "[ipv6-addr:value = '2001:db8::c2']"
    );
    assert_eq!(objects_of(&c2, "malware")[0]["name"], "emotet");
    let kinds: Vec<&Value> = objects_of(&c2, "relationship")
        .iter()
        .map(|r| &r["relationship_type"])
        .collect();
    assert_eq!(kinds, [&json!("based-on"), &json!("indicates")]);

    let infected = encode("infected-system.json");
    assert!(objects_of(&infected, "indicator").is_empty());
    let [sighting] = objects_of(&infected, "sighting")[..] else {
        panic!("one sighting")
    };
    assert_eq!(
        sighting["sighting_of_ref"],
        objects_of(&infected, "malware")[0]["id"]
    );

    let vulnerable = encode("vulnerable-service.json");
    let names: Vec<&Value> = objects_of(&vulnerable, "vulnerability")
        .iter()
        .map(|v| &v["name"])
        .collect();
    assert_eq!(names, [&json!("CVE-2021-26855"), &json!("CVE-2021-27065")]);

    let ddos = encode("ddos.json");
    assert!(objects_of(&ddos, "indicator").is_empty());
    assert_eq!(objects_of(&ddos, "ipv4-addr").len(), 2);

    let hashes = encode("malware-hash.json");
    assert_eq!(
        objects_of(&hashes, "file")[0]["hashes"]["SHA-256"]
            .as_str()
            .unwrap()
            .len(),
        64
    );
}

#[test]
fn a_split_group_becomes_one_bundle() {
    let envelopes = envelopes_in(&fixture("from-intelmq/split-group.jsonl"));
    assert!(Stix.merges_groups());
    let bundles = Stix
        .encode(&envelopes, &EncodeContext::new("test-origin"))
        .unwrap();
    assert_eq!(bundles.len(), 1);
    assert_eq!(objects_of(&bundles[0], "observed-data").len(), 2);
    assert_eq!(objects_of(&bundles[0], "identity").len(), 2);
}

#[test]
fn flat_intelmq_events_get_stix_ids_that_are_never_v7() {
    let input = std::env::temp_dir().join("stix-test-flat.json");
    std::fs::write(
        &input,
        r#"{"__type": "Event", "classification.type": "scanner", "source.ip": "192.0.2.1"}"#,
    )
    .unwrap();
    let (bundles, stderr, code) =
        bridge(&["translate", "--from", "intelmq", "--to", "stix"], &input);
    assert_eq!(code, 0, "{stderr}");
    let id_pattern = regex::Regex::new(
        "^[a-z0-9-]+--[0-9a-f]{8}-[0-9a-f]{4}-[45][0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$",
    )
    .unwrap();
    for object in bundles[0]["objects"].as_array().unwrap() {
        let id = object["id"].as_str().unwrap();
        assert!(id_pattern.is_match(id), "{id}");
        if let Some(created) = object["created"].as_str() {
            assert!(created.ends_with('Z') && created.len() == 24, "{created}");
        }
    }
}

#[test]
fn an_event_without_observable_is_rejected_with_a_reason() {
    let input = std::env::temp_dir().join("stix-test-no-observable.json");
    std::fs::write(&input, r#"{"__type": "Event", "feed.name": "x"}"#).unwrap();
    let (bundles, stderr, code) =
        bridge(&["translate", "--from", "intelmq", "--to", "stix"], &input);
    assert!(bundles.is_empty());
    assert_eq!(code, 1);
    assert!(
        stderr.contains("record 1: stix: the event has no observable"),
        "{stderr}"
    );
}

const FOREIGN: [&str; 6] = [
    "misp-stix-attributes-ip-src-ip-dst-port-url-sha256.json",
    "misp-stix-event-grouping-observed-data-as-domain.json",
    "oasis-indicator-c2-ip.json",
    "oasis-infrastructure-c2-malware-ipv4.json",
    "oasis-sighting-of-indicator-url.json",
    "opencti-tlp2-mixed.json",
];

#[test]
fn foreign_bundles_give_the_fields_their_patterns_and_scos_hold() {
    for name in FOREIGN {
        let (events, stderr, code) = bridge(
            &[
                "translate",
                "--from",
                "auto",
                "--to",
                "intelmq",
                "--envelope",
            ],
            &fixture(&format!("foreign/{name}")),
        );
        assert_eq!(code, 0, "{name}: {stderr}");
        assert!(!events.is_empty(), "{name}");
        insta::assert_json_snapshot!(format!("decode-{name}"), events);
        let groups: Vec<&Value> = events.iter().map(|e| &e["meta"]["uuid"]["group"]).collect();
        if events.len() > 1 {
            assert!(
                groups.iter().all(|g| *g == groups[0] && g[0].is_string()),
                "{name}"
            );
        }
    }
}

#[test]
fn foreign_events_reencode_to_valid_bundles() {
    let (events, _, code) = bridge(
        &[
            "translate",
            "--from",
            "auto",
            "--to",
            "intelmq",
            "--envelope",
        ],
        &fixture("foreign/misp-stix-attributes-ip-src-ip-dst-port-url-sha256.json"),
    );
    assert_eq!(code, 0);
    let envelopes: Vec<Envelope> = events
        .into_iter()
        .map(|e| Envelope::from_value(e, Harmonization::intelmq()).unwrap())
        .collect();
    let bundles = Stix
        .encode(&envelopes, &EncodeContext::new("test-origin"))
        .unwrap();
    assert_eq!(bundles.len(), 1);
    bundle_schema().check(&bundles[0]).unwrap();
    let back = Stix
        .decode(bundles[0].clone(), &DecodeContext::new("test-origin"))
        .unwrap();
    assert_eq!(back.len(), envelopes.len());
    for (back, original) in back.iter().zip(&envelopes) {
        assert_eq!(back.payload, original.payload);
    }
}

#[test]
fn invalid_bundles_are_rejected_naming_the_field() {
    let expected = [
        ("uuidv7-bundle-id.json", "at /id:"),
        (
            "indicator-without-pattern.json",
            "\"pattern\" is a required property",
        ),
        (
            "timestamp-with-offset.json",
            "at /objects/0/first_observed:",
        ),
        ("objects-not-a-list.json", "at /objects:"),
        ("malware-family-as-string.json", "at /objects/1/is_family:"),
        (
            "pattern-bad-ip.json",
            "source.ip: \"300.1.2.3\" is not an IP address",
        ),
        (
            "extension-bad-source-ip.json",
            "source.ip: \"999.1.1.1\" is not an IP address",
        ),
        (
            "nothing-to-map.json",
            "no indicator, observed-data or infrastructure",
        ),
    ];
    let listed = std::fs::read_dir(fixture("invalid"))
        .unwrap()
        .filter(|entry| {
            entry
                .as_ref()
                .unwrap()
                .path()
                .extension()
                .and_then(|e| e.to_str())
                == Some("json")
        })
        .count();
    assert_eq!(listed, expected.len(), "every invalid fixture is checked");
    for (name, reason) in expected {
        let (events, stderr, code) = bridge(
            &["translate", "--from", "stix", "--to", "intelmq"],
            &fixture(&format!("invalid/{name}")),
        );
        assert!(events.is_empty(), "{name}");
        assert_eq!(code, 1, "{name}: {stderr}");
        assert!(stderr.starts_with("record 1: "), "{name}: {stderr}");
        assert!(stderr.contains(reason), "{name}: {stderr}");
    }
}

#[test]
fn bundles_are_recognised_by_shape_and_validated() {
    let bundle = json!({"type": "bundle", "id": "bundle--44af6c39-c09b-49c5-9de2-394224b04982", "objects": []});
    assert!(Stix.recognises(&bundle));
    assert!(!Stix.recognises(&json!({"type": "indicator"})));
    let registry = intelmq_bridge::formats::Registry::standard();
    assert_eq!(registry.recognise(&bundle).unwrap().name(), "stix");
    let path = fixture("foreign/oasis-indicator-c2-ip.json");
    let path = path.to_str().expect("UTF-8 path");
    let run = common::bridge(&["validate", "--format", "stix", path], b"");
    assert_eq!(run.code, 0);
    assert_eq!(run.stdout, "1 valid, 0 invalid\n");
}
