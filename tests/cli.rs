//! The command line as an operator uses it: exit codes, messages on
//! stderr, the dead-letter file, input forms and envelope output.

mod common;

use std::fs;

use common::{bridge, repo_path, scratch};
use serde_json::{json, Value};

const SCANNER: &str = "fixtures/intelmq/valid/01-shadowserver-accessible-telnet.json";

fn read(relative: &str) -> Vec<u8> {
    fs::read(repo_path(relative)).expect("fixture is readable")
}

#[test]
fn a_valid_file_translates_with_exit_0() {
    let run = bridge(
        &["translate", "--from", "intelmq", "--to", "intelmq", SCANNER],
        b"",
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    let expected: Value = serde_json::from_slice(&read(SCANNER)).expect("JSON");
    assert_eq!(run.lines(), vec![expected]);
    assert_eq!(run.stderr, "");
}

#[test]
fn json_lines_with_bad_records_exit_1_and_keep_the_good_ones() {
    let dir = scratch("cli-dead-letter");
    let dead = dir.join("dead.jsonl");
    let dead_arg = dead.to_str().expect("UTF-8 path");
    let run = bridge(
        &[
            "translate",
            "--from",
            "intelmq",
            "--to",
            "intelmq",
            "--dead-letter",
            dead_arg,
            "fixtures/intelmq/multi.jsonl",
        ],
        b"",
    );
    assert_eq!(run.code, 1);
    assert_eq!(run.lines().len(), 36);
    insta::assert_snapshot!("multi_stderr", run.stderr);

    let input = String::from_utf8(read("fixtures/intelmq/multi.jsonl")).expect("UTF-8");
    let lines: Vec<&str> = input.lines().collect();
    let entries: Vec<Value> = fs::read_to_string(&dead)
        .expect("dead-letter file written")
        .lines()
        .map(|line| serde_json::from_str(line).expect("entry is JSON"))
        .collect();
    let kept: Vec<(Value, Value)> = entries
        .iter()
        .map(|entry| (entry["records"].clone(), entry["stage"].clone()))
        .collect();
    assert_eq!(
        kept,
        [7, 15, 23, 31]
            .map(|n| (json!([n]), json!("decode")))
            .to_vec()
    );
    for (entry, line) in entries.iter().zip([7, 15, 23, 31]) {
        assert_eq!(entry["input"], json!(lines[line - 1].trim()), "line {line}");
        assert!(entry["reason"].as_str().is_some_and(|r| !r.is_empty()));
    }
}

#[test]
fn the_error_names_record_field_and_value() {
    let input = br#"{"__type": "Event", "source.ip": "192.0.2.1"}
{"__type": "Event", "source.ip": "999.1.1.1"}
"#;
    let run = bridge(&["translate", "--to", "intelmq"], input);
    assert_eq!(run.code, 1);
    assert_eq!(run.lines().len(), 1);
    assert!(
        run.stderr
            .starts_with("record 2: source.ip: \"999.1.1.1\" is not an IP address\n"),
        "{}",
        run.stderr
    );
}

#[test]
fn a_json_array_is_a_batch_of_records() {
    let input = br#"[
  {"__type": "Event", "source.ip": "192.0.2.1"},
  {"__type": "Event", "source.port": "http"},
  {"__type": "Event", "source.ip": "192.0.2.3"}
]"#;
    let run = bridge(&["translate", "--to", "intelmq"], input);
    assert_eq!(run.code, 1);
    assert_eq!(run.lines().len(), 2);
    assert!(
        run.stderr
            .starts_with("record 2 (line 3): source.port: \"http\" is not an integer\n"),
        "{}",
        run.stderr
    );
}

#[test]
fn usage_and_io_errors_exit_2() {
    let missing = bridge(&["translate", "--to", "intelmq", "no/such/file.json"], b"");
    assert_eq!(missing.code, 2);
    assert!(
        missing.stderr.contains("no/such/file.json"),
        "{}",
        missing.stderr
    );

    let unknown = bridge(&["translate", "--from", "misp", "--to", "intelmq"], b"");
    assert_eq!(unknown.code, 2);
    assert!(
        unknown.stderr.contains("unknown format \"misp\""),
        "{}",
        unknown.stderr
    );

    let no_target = bridge(&["translate"], b"");
    assert_eq!(no_target.code, 2);
}

#[test]
fn envelopes_in_both_wire_forms_translate_back_to_the_same_event() {
    let original: Value = serde_json::from_slice(&read(SCANNER)).expect("JSON");
    for form in ["--envelope", "--envelope=iep04", "--envelope=ail"] {
        let wrapped = bridge(
            &[
                "translate",
                "--to",
                "intelmq",
                form,
                "--origin",
                "cert-a",
                SCANNER,
            ],
            b"",
        );
        assert_eq!(wrapped.code, 0, "{form}: {}", wrapped.stderr);
        let envelope = wrapped.stdout.clone();
        let flat = bridge(
            &["translate", "--from", "auto", "--to", "intelmq"],
            envelope.as_bytes(),
        );
        assert_eq!(flat.code, 0, "{form}: {}", flat.stderr);
        assert_eq!(flat.lines(), vec![original.clone()], "{form}");
    }
}

#[test]
fn ids_survive_an_intelmq_hop_with_meta_in_extra() {
    let wrapped = bridge(
        &["translate", "--to", "intelmq", "--envelope", SCANNER],
        b"",
    );
    let id = wrapped.lines()[0]["meta"]["uuid"]["id"].clone();
    let flat = bridge(
        &["translate", "--to", "intelmq", "--meta-in-extra"],
        wrapped.stdout.as_bytes(),
    );
    assert_eq!(flat.lines()[0]["extra.iep04"]["uuid"]["id"], id);
    let again = bridge(
        &["translate", "--to", "intelmq", "--envelope"],
        flat.stdout.as_bytes(),
    );
    assert_eq!(again.lines()[0]["meta"]["uuid"]["id"], id);
}

#[test]
fn new_messages_get_the_given_origin_and_fresh_ids() {
    let input = read(SCANNER);
    let first = bridge(
        &[
            "translate",
            "--to",
            "intelmq",
            "--envelope",
            "--origin",
            "cert-xy",
        ],
        &input,
    );
    let second = bridge(
        &[
            "translate",
            "--to",
            "intelmq",
            "--envelope",
            "--origin",
            "cert-xy",
        ],
        &input,
    );
    let (first, second) = (&first.lines()[0], &second.lines()[0]);
    assert_eq!(first["meta"]["uuid"]["origin"], json!("cert-xy"));
    assert_ne!(first["meta"]["uuid"]["id"], second["meta"]["uuid"]["id"]);
}

#[test]
fn validate_reports_each_bad_record() {
    let good = bridge(&["validate", "--format", "intelmq", SCANNER], b"");
    assert_eq!(good.code, 0);
    assert_eq!(good.stdout, "1 valid, 0 invalid\n");

    let run = bridge(
        &[
            "validate",
            "--format",
            "intelmq",
            "fixtures/intelmq/multi.jsonl",
        ],
        b"",
    );
    assert_eq!(run.code, 1);
    assert_eq!(run.stdout, "36 valid, 4 invalid\n");
    assert_eq!(run.stderr.lines().count(), 4);
}

#[test]
fn validate_checks_envelopes_against_the_schema() {
    let envelope = json!({
        "meta": {"version": 1, "type": "event", "format": "intelmq",
                 "uuid": {"origin": "a", "id": "not-a-uuid"}},
        "payload": {"source.ip": "192.0.2.1"}
    });
    let run = bridge(
        &["validate", "--format", "intelmq"],
        envelope.to_string().as_bytes(),
    );
    assert_eq!(run.code, 1);
    assert!(
        run.stderr.starts_with("record 1: envelope schema: at /"),
        "{}",
        run.stderr
    );
}

#[test]
fn no_input_panics() {
    let hostile: [&[u8]; 6] = [
        b"\xff\xfe\x00garbage",
        b"[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[",
        b"{\"meta\": 5, \"payload\": []}",
        b"{\"__type\": \"Event\", \"extra\": \"{\\\"a\\\": \"}",
        b"]]]",
        b"\"just a string\"",
    ];
    for input in hostile {
        let run = bridge(&["translate", "--to", "intelmq"], input);
        assert!(matches!(run.code, 1 | 2), "{input:?}: {}", run.stderr);
        assert!(
            !run.stderr.contains("panicked"),
            "{input:?}: {}",
            run.stderr
        );
    }
}
