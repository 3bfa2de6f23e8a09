//! Helpers shared by the integration tests: running the real binary and
//! reading fixtures.

#![allow(dead_code)] // each test crate uses its own subset

pub mod amqp;
pub mod tls;

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde_json::Value;

/// What one run of the command line gave.
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// Every stdout line parsed as JSON.
    pub fn lines(&self) -> Vec<Value> {
        self.stdout
            .lines()
            .map(|line| serde_json::from_str(line).expect("stdout line is JSON"))
            .collect()
    }
}

fn finish(output: Output) -> Run {
    Run {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8(output.stdout).expect("stdout is UTF-8"),
        stderr: String::from_utf8(output.stderr).expect("stderr is UTF-8"),
    }
}

/// Runs `intelmq-bridge` with `args` and `stdin` as standard input.
pub fn bridge(args: &[&str], stdin: &[u8]) -> Run {
    let mut child = Command::new(env!("CARGO_BIN_EXE_intelmq-bridge"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the binary starts");
    child
        .stdin
        .take()
        .expect("stdin is piped")
        .write_all(stdin)
        .expect("stdin is written");
    finish(child.wait_with_output().expect("the binary finishes"))
}

/// Absolute path of a file in the repository.
pub fn repo_path(relative: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(relative)
}

/// The `.json` files of a fixture folder, sorted, as (file name, JSON value).
pub fn fixtures(folder: &str) -> Vec<(String, Value)> {
    let mut paths: Vec<PathBuf> = fs::read_dir(repo_path(folder))
        .expect("fixture folder exists")
        .map(|entry| entry.expect("folder entry").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "json"))
        .collect();
    paths.sort();
    paths
        .into_iter()
        .map(|path| {
            let name = path
                .file_name()
                .expect("file name")
                .to_string_lossy()
                .into_owned();
            let text = fs::read_to_string(&path).expect("fixture is readable");
            (name, serde_json::from_str(&text).expect("fixture is JSON"))
        })
        .collect()
}

/// `count` flat IntelMQ events from `fixtures/intelmq/valid`, each made
/// unique by `extra.bench_seq`, as JSON text: the load of the benchmarks.
pub fn unique_events(count: usize) -> Vec<Vec<u8>> {
    let events: Vec<Value> = fixtures("fixtures/intelmq/valid")
        .into_iter()
        .map(|(_, event)| event)
        .collect();
    (0..count)
        .map(|seq| {
            let mut event = events[seq % events.len()].clone();
            event["extra.bench_seq"] = Value::from(seq);
            serde_json::to_vec(&event).expect("an event serialises")
        })
        .collect()
}

/// The start of a `serve` configuration with `origin`, the listener on
/// `port` (with `http_extra` keys), the store in `store` and one HTTP
/// ingest input named `in`; partners and routes follow.
pub fn ingest_config_head(origin: &str, port: u16, http_extra: &str, store: &Path) -> String {
    format!(
        "origin = \"{origin}\"\n[http]\nlisten = \"127.0.0.1:{port}\"\n{http_extra}\n\
         [store]\npath = \"{}\"\n[[inputs]]\nname = \"in\"\ntransport = \"http\"\n",
        store.display()
    )
}

/// An IntelMQ scanner event from `ip`, with `more` (`, "key": value` pairs)
/// added, as JSON text.
pub fn scanner_with(ip: &str, more: &str) -> String {
    format!(
        r#"{{"__type": "Event", "source.ip": "{ip}", "classification.type": "scanner", "time.source": "2026-11-23T10:00:00+00:00"{more}}}"#
    )
}

/// An IntelMQ scanner event from `ip` at TLP `tlp`, as JSON text.
pub fn scanner(ip: &str, tlp: &str) -> String {
    scanner_with(ip, &format!(r#", "tlp": "{tlp}""#))
}

/// The hex SHA-256 of a bearer token, as a partner's `token_sha256` holds it.
pub fn hex_sha256(token: &str) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(token.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The `/metrics` text of the `serve` on `port`, empty when it does not answer.
pub fn metrics(port: u16) -> String {
    http(port, "GET", "/metrics", &[], b"")
        .map(|(_, body)| body)
        .unwrap_or_default()
}

/// Asserts that the `/metrics` page of the bridge on `port` holds each of
/// `lines`, naming the first missing one and showing the page.
pub fn assert_metrics(port: u16, lines: &[&str]) {
    let metrics = metrics(port);
    for line in lines {
        assert!(metrics.contains(line), "{line}\n{metrics}");
    }
}

/// A scratch directory for one test, emptied first.
pub fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).expect("scratch directory");
    dir
}

/// A TCP port on loopback that is free right now, for a server under test.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free loopback port")
        .port()
}

/// One HTTP/1.0 exchange on loopback, with extra header lines: the status
/// and the body. A refused body may be left unread by the server; the
/// answer is what counts.
pub fn http(
    port: u16,
    method: &str,
    path: &str,
    headers: &[&str],
    body: &[u8],
) -> Option<(u16, String)> {
    use std::io::Read;
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    let mut head = format!(
        "{method} {path} HTTP/1.0\r\nHost: 127.0.0.1\r\nContent-Length: {}\r\n",
        body.len()
    );
    for header in headers {
        head.push_str(header);
        head.push_str("\r\n");
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).ok()?;
    let _ = stream.write_all(body);
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    let answer = String::from_utf8_lossy(&answer).into_owned();
    let status = answer.split_whitespace().nth(1)?.parse().ok()?;
    let (_, body) = answer.split_once("\r\n\r\n")?;
    Some((status, body.to_owned()))
}

/// A running `intelmq-bridge serve`, killed when dropped.
pub struct Server(std::process::Child);

impl Server {
    /// Sends SIGTERM and waits: whether the server then exited cleanly.
    pub fn terminate(&mut self) -> bool {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.0.id().to_string())
            .status();
        self.0.wait().is_ok_and(|status| status.success())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `intelmq-bridge serve ARGS`.
pub fn spawn(args: &[&str]) -> Server {
    let child = Command::new(env!("CARGO_BIN_EXE_intelmq-bridge"))
        .arg("serve")
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("serve starts");
    Server(child)
}

/// Starts `intelmq-bridge serve ARGS` and waits until `/healthz` answers on `port`.
pub fn serve(args: &[&str], port: u16) -> Server {
    let server = spawn(args);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while http(port, "GET", "/healthz", &[], b"").is_none() {
        assert!(std::time::Instant::now() < deadline, "serve did not start");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    server
}
