//! `serve` with `[http] tls_cert` and `tls_key`: the ingest, `/healthz`
//! and `/metrics` over HTTPS on loopback, checked by a client that trusts
//! only the test's certificate authority.

mod common;

use std::time::{Duration, Instant};

use serde_json::Value;

const TOKEN: &str = "sender-token";

#[test]
fn the_listener_speaks_https_with_the_configured_certificate() {
    let dir = common::scratch("https");
    let pki = common::tls::Pki::new(&dir);
    let port = common::free_port();
    let digest = common::hex_sha256(TOKEN);
    let config = dir.join("bridge.toml");
    std::fs::write(
        &config,
        format!(
            r#"origin = "cert-tls"
[http]
listen = "127.0.0.1:{port}"
tls_cert = "{cert}"
tls_key = "{key}"
[[inputs]]
name = "in"
transport = "http"
[[partners]]
name = "sender"
format = "intelmq"
transport = "file"
path = "{own}"
token_sha256 = "{digest}"
[[partners]]
name = "archive"
format = "intelmq"
transport = "file"
path = "{archive}"
[[routes]]
input = "in"
partners = ["sender", "archive"]
"#,
            cert = pki.server_cert.display(),
            key = pki.server_key_file.display(),
            own = dir.join("sender.jsonl").display(),
            archive = dir.join("archive.jsonl").display(),
        ),
    )
    .unwrap();
    let mut server = common::spawn(&["--config", config.to_str().unwrap()]);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let ca = reqwest::Certificate::from_pem(&std::fs::read(&pki.ca).unwrap()).unwrap();
    let client = reqwest::Client::builder()
        .tls_built_in_root_certs(false)
        .add_root_certificate(ca)
        .build()
        .unwrap();
    let base = format!("https://localhost:{port}");
    runtime.block_on(async {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            match client.get(format!("{base}/healthz")).send().await {
                Ok(answer) if answer.status() == 200 => break,
                _ => assert!(Instant::now() < deadline, "serve never answered over HTTPS"),
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let event =
            r#"{"__type": "Event", "source.ip": "192.0.2.7", "classification.type": "scanner"}"#;
        let answer = client
            .post(format!("{base}/v1/events"))
            .bearer_auth(TOKEN)
            .header("Content-Type", "application/json")
            .body(event)
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), 200);
        let answer: Value = serde_json::from_slice(&answer.bytes().await.unwrap()).unwrap();
        assert_eq!(answer["accepted"], 1, "{answer}");
        // HTTP/2 is offered by ALPN, before HTTP/1.1.
        assert_eq!(alpn(port, &pki.ca, &[b"h2", b"http/1.1"]).await, b"h2");
        assert_eq!(alpn(port, &pki.ca, &[b"http/1.1"]).await, b"http/1.1");
        // A client that does not trust the authority gets no answer.
        let stranger = reqwest::Client::new();
        assert!(stranger
            .get(format!("{base}/healthz"))
            .send()
            .await
            .is_err());
    });
    // Plain HTTP on the same port is not answered as HTTP.
    assert_eq!(common::http(port, "GET", "/healthz", &[], b""), None);
    assert!(server.terminate(), "serve stops cleanly on SIGTERM");
    let archived = std::fs::read_to_string(dir.join("archive.jsonl")).unwrap();
    assert!(archived.contains("192.0.2.7"), "{archived}");
}

#[test]
fn an_unreadable_certificate_stops_serve_at_start_naming_the_key() {
    let dir = common::scratch("https-missing");
    let config = dir.join("bridge.toml");
    let missing = dir.join("no-such-cert.pem");
    std::fs::write(
        &config,
        format!(
            "origin = \"cert-tls\"\n[http]\nlisten = \"127.0.0.1:{}\"\ntls_cert = \"{}\"\ntls_key = \"{}\"\n",
            common::free_port(),
            missing.display(),
            missing.display()
        ),
    )
    .unwrap();
    let run = common::bridge(&["serve", "--config", config.to_str().unwrap()], b"");
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(run.stderr.contains("http.tls_cert"), "{}", run.stderr);
    assert!(run.stderr.contains("no-such-cert.pem"), "{}", run.stderr);
}

/// The protocol the listener on `port` picks by ALPN from `offered`, for a
/// client that trusts the authority in `ca`.
async fn alpn(port: u16, ca: &std::path::Path, offered: &[&[u8]]) -> Vec<u8> {
    use tokio_rustls::rustls;
    use tokio_rustls::rustls::pki_types::pem::PemObject as _;
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls::pki_types::CertificateDer::pem_file_iter(ca).unwrap() {
        roots.add(cert.unwrap()).unwrap();
    }
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = offered.iter().map(|p| p.to_vec()).collect();
    let connector = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config));
    let stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let tls = connector.connect(name, stream).await.unwrap();
    tls.get_ref().1.alpn_protocol().unwrap_or_default().to_vec()
}
