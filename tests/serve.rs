//! `intelmq-bridge serve` without a broker: the embedded default (HTTP
//! ingest, flat IntelMQ out), its endpoints, shutdown, and configuration
//! errors that name the key.

mod common;

use std::path::PathBuf;
use std::process::Command;

use serde_json::Value;

fn http(port: u16, method: &str, path: &str, body: &[u8]) -> Option<(u16, String)> {
    common::http(port, method, path, &[], body)
}

fn start(args: &[&str], port: u16) -> common::Server {
    common::serve(args, port)
}

fn temp_dir(name: &str) -> PathBuf {
    common::scratch(&format!("serve-{name}"))
}

#[test]
fn the_embedded_default_ingests_over_http_and_writes_flat_intelmq() {
    let dir = temp_dir("embedded");
    let port = common::free_port();
    let listen = format!("127.0.0.1:{port}");
    let output = dir.to_str().unwrap();
    let mut server = start(
        &[
            "--listen", &listen, "--output", output, "--origin", "cert-e",
        ],
        port,
    );
    assert_eq!(http(port, "GET", "/healthz", b"").unwrap().0, 200);

    let valid = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/fixtures/intelmq/valid/01-shadowserver-accessible-telnet.json"
    ))
    .unwrap();
    let event: Value = serde_json::from_str(&valid).unwrap();
    let envelope = serde_json::json!({
        "meta": {"version": 1, "type": "event", "format": "intelmq",
                 "uuid": {"origin": "cert-b", "id": "0192f3a4-5b6c-7d8e-9f00-112233445566",
                          "related": [], "group": [], "alternate": []}},
        "payload": {"source.ip": "192.0.2.1", "classification.type": "scanner"},
    });
    let body = format!(
        "{}\n{}\nnot json\n{{\"__type\": \"Event\", \"source.ip\": \"999.1.1.1\"}}\n",
        event, envelope
    );
    let (status, answer) = http(port, "POST", "/v1/events", body.as_bytes()).unwrap();
    let answer: Value = serde_json::from_str(&answer).unwrap();
    assert_eq!(status, 422, "{answer}");
    assert_eq!(answer["accepted"], 2);
    assert_eq!(answer["rejected"], 2);
    assert_eq!(answer["results"][2]["stage"], "decode");
    assert!(answer["results"][3]["reason"]
        .as_str()
        .unwrap()
        .contains("source.ip"));

    // A JSON array, all good: 200.
    let (status, _) = http(port, "POST", "/v1/events", format!("[{event}]").as_bytes()).unwrap();
    assert_eq!(status, 200);

    let (_, metrics) = http(port, "GET", "/metrics", b"").unwrap();
    assert!(
        metrics.contains(r#"intelmq_bridge_published_total{partner="output",format="intelmq"} 3"#),
        "{metrics}"
    );

    assert!(server.terminate(), "serve did not stop cleanly on SIGTERM");

    let written = std::fs::read_to_string(dir.join("output.jsonl")).unwrap();
    let lines: Vec<Value> = written
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert_eq!(lines.len(), 3);
    for line in &lines {
        assert_eq!(line["__type"], "Event");
        assert!(line.get("meta").is_none() && line.get("extra.iep04").is_none());
    }
    assert_eq!(lines[1]["source.ip"], "192.0.2.1");
}

#[test]
fn configuration_errors_name_the_key() {
    let dir = temp_dir("config");
    let path = dir.join("bad.toml");
    std::fs::write(
        &path,
        "origin = \"x\"\n[[partners]]\nname = \"p\"\nformat = \"misp\"\nqueue = \"q\"\n",
    )
    .unwrap();
    let run = Command::new(env!("CARGO_BIN_EXE_intelmq-bridge"))
        .args(["serve", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(run.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(
        stderr.contains(r#"partners[0].format: "misp" is not a known format"#),
        "{stderr}"
    );

    std::fs::write(
        &path,
        "origin = \"x\"\n[[inputs]]\nname = \"i\"\nqeue = \"q\"\n",
    )
    .unwrap();
    let run = Command::new(env!("CARGO_BIN_EXE_intelmq-bridge"))
        .args(["serve", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(stderr.contains("unknown field `qeue`"), "{stderr}");
}
