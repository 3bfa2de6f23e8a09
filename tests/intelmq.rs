//! The IntelMQ format against its fixtures: every valid event survives
//! flat → envelope → flat, sanitisable ones come out as IntelMQ sanitises
//! them, and every invalid one is rejected naming its field.

mod common;

use common::{fixtures, repo_path};
use intelmq_bridge::envelope::{Envelope, WireForm};
use intelmq_bridge::formats::{intelmq::IntelMq, DecodeContext, EncodeContext, Format};
use intelmq_bridge::harmonization::Harmonization;
use serde_json::Value;

fn decode(message: Value) -> intelmq_bridge::Result<Vec<Envelope>> {
    IntelMq.decode(message, &DecodeContext::new("test-origin"))
}

fn encode(envelopes: &[Envelope]) -> Vec<Value> {
    IntelMq
        .encode(envelopes, &EncodeContext::new("test-origin"))
        .expect("encodes")
}

#[test]
fn there_are_enough_fixtures() {
    assert!(fixtures("fixtures/intelmq/valid").len() >= 25);
    assert!(fixtures("fixtures/intelmq/invalid").len() >= 10);
}

#[test]
fn valid_events_lose_no_field_through_the_envelope() {
    for (name, event) in fixtures("fixtures/intelmq/valid") {
        let envelopes = decode(event.clone()).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(encode(&envelopes), vec![event.clone()], "{name}");
        // And through both wire forms of the envelope.
        for form in [WireForm::Iep04, WireForm::Ail] {
            let wire = envelopes[0].to_wire(form);
            let back = Envelope::from_value(wire, Harmonization::intelmq())
                .unwrap_or_else(|e| panic!("{name} {form:?}: {e}"));
            assert_eq!(back, envelopes[0], "{name} {form:?}");
        }
    }
}

#[test]
fn sanitisable_events_come_out_as_intelmq_sanitises_them() {
    for (name, input) in fixtures("fixtures/intelmq/sanitizable") {
        let Some(stem) = name
            .strip_suffix(".json")
            .filter(|s| !s.ends_with(".expected"))
        else {
            continue;
        };
        let expected_path = repo_path(&format!(
            "fixtures/intelmq/sanitizable/{stem}.expected.json"
        ));
        let expected: Value =
            serde_json::from_str(&std::fs::read_to_string(expected_path).expect("expected file"))
                .expect("expected is JSON");
        let envelopes = decode(input).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(encode(&envelopes), vec![expected], "{name}");
    }
}

/// The field each invalid fixture must be rejected for, from EXPECTED.md.
fn expected_fields() -> Vec<(String, String)> {
    let table = std::fs::read_to_string(repo_path("fixtures/intelmq/invalid/EXPECTED.md"))
        .expect("EXPECTED.md");
    table
        .lines()
        .filter_map(|row| {
            let cells: Vec<&str> = row.split('|').map(str::trim).collect();
            let file = cells.get(1)?.strip_prefix('`')?.strip_suffix('`')?;
            let field = cells.get(2)?.trim_matches('`');
            Some((file.to_owned(), field.to_owned()))
        })
        .collect()
}

#[test]
fn invalid_events_are_rejected_naming_the_field() {
    let expected = expected_fields();
    let invalid = fixtures("fixtures/intelmq/invalid");
    for (name, event) in invalid {
        let error = decode(event).expect_err(&name).to_string();
        let (_, field) = expected
            .iter()
            .find(|(file, _)| *file == name)
            .unwrap_or_else(|| panic!("{name} is not in EXPECTED.md"));
        if field != "—" {
            assert!(error.starts_with(&format!("{field}:")), "{name}: {error}");
        }
    }
}

#[test]
fn envelope_of_a_scanner_event() {
    let (_, event) = fixtures("fixtures/intelmq/valid").remove(0);
    let envelopes = decode(event).expect("valid");
    insta::assert_json_snapshot!(
        "scanner_iep04",
        envelopes[0].to_wire(WireForm::Iep04),
        {".meta.uuid.id" => "[new uuid v7]"}
    );
    insta::assert_json_snapshot!(
        "scanner_ail",
        envelopes[0].to_wire(WireForm::Ail),
        {".meta.uuid" => "[new uuid v7]"}
    );
}
