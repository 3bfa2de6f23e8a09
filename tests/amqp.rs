//! `serve` against the real RabbitMQ on 127.0.0.1:5672 (guest/guest): the
//! bridge runs as its own process, the test publishes and reads with lapin.
//! Each test uses its own uniquely named queues and deletes them at the end.
//!
//! Without a broker these tests print "skipped: no RabbitMQ", unless `CI`
//! is set, where they must run (`.ci/services` starts one).

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use futures_util::StreamExt as _;
use intelmq_bridge::formats::Registry;
use intelmq_bridge::transport::amqp::headers;
use lapin::options::{
    BasicConsumeOptions, ConfirmSelectOptions, QueueDeclareOptions, QueueDeleteOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{Channel, Connection, ConnectionProperties};
use serde_json::{json, Value};

use common::amqp::URL;
const ORIGIN: &str = "cert-test";

/// Whether the broker is there; in CI its absence is a failure.
fn broker_available() -> bool {
    if TcpStream::connect_timeout(&"127.0.0.1:5672".parse().unwrap(), Duration::from_secs(1))
        .is_ok()
    {
        return true;
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "CI is set but RabbitMQ is not reachable on 127.0.0.1:5672"
    );
    println!("skipped: no RabbitMQ");
    false
}

/// Names unique to one test run.
fn unique(name: &str) -> String {
    format!(
        "ib-test-{name}-{}-{}",
        std::process::id(),
        uuid::Uuid::now_v7().simple()
    )
}

fn temp_dir(name: &str) -> PathBuf {
    common::scratch(&unique(name))
}

/// A test's broker side: a connection, a confirming channel, and the queues
/// to delete at the end.
struct Broker {
    connection: Connection,
    channel: Channel,
    queues: Vec<String>,
}

impl Broker {
    async fn connect() -> Self {
        let connection = Connection::connect(URL, ConnectionProperties::default())
            .await
            .unwrap();
        let channel = connection.create_channel().await.unwrap();
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await
            .unwrap();
        Broker {
            connection,
            channel,
            queues: Vec::new(),
        }
    }

    /// Declares a durable queue, IntelMQ-style (`lazy`) when asked, and
    /// remembers it for deletion.
    async fn queue(&mut self, name: &str, intelmq: bool) {
        let mut arguments = FieldTable::default();
        if intelmq {
            arguments.insert("x-queue-mode".into(), AMQPValue::LongString("lazy".into()));
        }
        self.channel
            .queue_declare(name.into(), QueueDeclareOptions::durable(), arguments)
            .await
            .unwrap();
        self.forget_later(name);
    }

    fn forget_later(&mut self, name: &str) {
        if !self.queues.iter().any(|q| q == name) {
            self.queues.push(name.to_owned());
        }
    }

    /// Publishes every body to `queue`, persistent, and waits for the confirms.
    async fn publish(&self, queue: &str, bodies: &[Vec<u8>]) {
        assert!(common::amqp::publish(&self.channel, queue, bodies)
            .await
            .unwrap());
    }

    async fn depth(&self, queue: &str) -> u32 {
        common::amqp::depth(&self.connection, queue).await.unwrap()
    }

    /// Reads messages from `queue` until `done` says so or `timeout` passes.
    async fn collect(
        &self,
        queue: &str,
        timeout: Duration,
        done: impl Fn(&[(Value, FieldTable)]) -> bool,
    ) -> Vec<(Value, FieldTable)> {
        let channel = self.connection.create_channel().await.unwrap();
        let options = BasicConsumeOptions {
            no_ack: true,
            ..BasicConsumeOptions::default()
        };
        let mut consumer = channel
            .basic_consume(
                queue.into(),
                unique("reader").as_str().into(),
                options,
                FieldTable::default(),
            )
            .await
            .unwrap();
        let mut got = Vec::new();
        let deadline = Instant::now() + timeout;
        while !done(&got) {
            let left = deadline.saturating_duration_since(Instant::now());
            match tokio::time::timeout(left, consumer.next()).await {
                Ok(Some(Ok(delivery))) => {
                    let body = serde_json::from_slice(&delivery.data).unwrap_or_else(|_| {
                        Value::String(String::from_utf8_lossy(&delivery.data).into_owned())
                    });
                    let headers = delivery.properties.headers().clone().unwrap_or_default();
                    got.push((body, headers));
                }
                _ => break,
            }
        }
        let _ = channel.close(200, "".into()).await;
        got
    }

    async fn delete_all(self) {
        for queue in &self.queues {
            let _ = self
                .channel
                .queue_delete(queue.as_str().into(), QueueDeleteOptions::default())
                .await;
        }
        let _ = self.connection.close(200, "".into()).await;
    }
}

/// One test's stage: its scratch directory, its broker side, an input
/// queue declared plainly (deleted at the end with its dead-letter queue)
/// and a port for the bridge's HTTP side.
struct Stage {
    dir: PathBuf,
    broker: Broker,
    input: String,
    port: u16,
}

impl Stage {
    async fn new(name: &str) -> Self {
        let input = unique("in");
        let mut broker = Broker::connect().await;
        broker.queue(&input, false).await;
        broker.forget_later(&format!("{input}.dead-letter"));
        Stage {
            dir: temp_dir(name),
            broker,
            input,
            port: common::free_port(),
        }
    }

    /// A new queue name, deleted at the end.
    fn output(&mut self, name: &str) -> String {
        let queue = unique(name);
        self.broker.forget_later(&queue);
        queue
    }

    /// Writes the configuration of the input and these partners.
    fn config(&self, input_extra: &str, partners: &[(&str, &str)], seen: bool) -> PathBuf {
        config(
            &self.dir,
            self.port,
            &self.input,
            input_extra,
            partners,
            seen,
        )
    }

    /// Starts the bridge on the configuration at `path`.
    fn start(&self, path: &Path) -> Bridge {
        Bridge::start(path, self.port, &self.dir.join("bridge.log"))
    }
}

/// A running `intelmq-bridge serve` process.
struct Bridge {
    child: Child,
    port: u16,
    log: PathBuf,
}

impl Bridge {
    fn start(config: &Path, port: u16, log: &Path) -> Self {
        Self::start_with_env(config, port, log, &[])
    }

    /// Starts the bridge with these environment variables set.
    fn start_with_env(config: &Path, port: u16, log: &Path, env: &[(&str, &Path)]) -> Self {
        let stderr = std::fs::File::options()
            .create(true)
            .append(true)
            .open(log)
            .unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_intelmq-bridge"))
            .args(["serve", "--config"])
            .arg(config)
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .unwrap();
        let bridge = Bridge {
            child,
            port,
            log: log.to_owned(),
        };
        bridge.wait_healthy();
        bridge
    }

    fn get(&self, path: &str) -> Option<(u16, String)> {
        common::http(self.port, "GET", path, &[], b"")
    }

    fn wait_healthy(&self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Some((200, _)) = self.get("/healthz") {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!(
            "bridge never became healthy:\n{}",
            std::fs::read_to_string(&self.log).unwrap_or_default()
        );
    }

    /// A counter's value, summed over the series that have `labels`.
    fn metric(&self, name: &str, labels: &[&str]) -> u64 {
        let (_, text) = self.get("/metrics").unwrap();
        text.lines()
            .filter(|line| line.starts_with(&format!("intelmq_bridge_{name}{{")))
            .filter(|line| labels.iter().all(|label| line.contains(label)))
            .filter_map(|line| line.rsplit(' ').next()?.parse::<u64>().ok())
            .sum()
    }

    /// Waits for a counter to reach `value`: the bridge counts a delivery
    /// when its confirm arrives, a moment after the message is visible.
    fn wait_metric(&self, name: &str, labels: &[&str], value: u64) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.metric(name, labels) < value {
            assert!(
                Instant::now() < deadline,
                "{name} {labels:?} never reached {value}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        assert_eq!(self.metric(name, labels), value, "{name} {labels:?}");
    }

    /// SIGTERM, and the exit status.
    fn stop(mut self) -> std::process::ExitStatus {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < deadline, "bridge did not stop on SIGTERM");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGKILL, as a crash would: no draining, no flushing.
    fn kill_9(self) {
        drop(self);
    }
}

/// A test that fails must not leave its bridge running.
impl Drop for Bridge {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An egress policy that withholds nothing.
const SEES_ALL: &str =
    "max_tlp = \"RED\"\nn6_restrictions = [\"public\", \"need-to-know\", \"internal\"]";

/// The TOML of a one-input configuration.
fn config(
    dir: &Path,
    port: u16,
    input: &str,
    input_extra: &str,
    partners: &[(&str, &str)],
    seen: bool,
) -> PathBuf {
    let mut text = format!("origin = \"{ORIGIN}\"\n[http]\nlisten = \"127.0.0.1:{port}\"\n");
    if seen {
        text += &format!("[seen]\npath = \"{}\"\n", dir.join("seen.redb").display());
    }
    text += &format!(
        "[[inputs]]\nname = \"in\"\nurl = \"{URL}\"\nqueue = \"{input}\"\nprefetch = 200\n{input_extra}\n"
    );
    // These partners may see everything: the egress policy is tested on
    // its own (tests/http.rs), here every fixture must get through.
    for (name, body) in partners {
        text += &format!("[[partners]]\nname = \"{name}\"\nurl = \"{URL}\"\n{SEES_ALL}\n{body}\n");
    }
    let names: Vec<String> = partners
        .iter()
        .map(|(name, _)| format!("\"{name}\""))
        .collect();
    text += &format!(
        "[[routes]]\ninput = \"in\"\npartners = [{}]\n",
        names.join(", ")
    );
    let path = dir.join("bridge.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// The valid IntelMQ fixtures as flat events.
fn intelmq_fixtures() -> Vec<serde_json::Map<String, Value>> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/intelmq/valid");
    let mut paths: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    paths.sort();
    paths
        .into_iter()
        .filter(|path| path.extension().is_some_and(|ext| ext == "json"))
        .filter_map(
            |path| match serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap() {
                Value::Object(map) => Some(map),
                _ => None,
            },
        )
        .collect()
}

/// Valid fixtures of every other format this build knows (added by their
/// adapters), sent as they are: (format, message).
fn other_format_fixtures() -> Vec<(&'static str, Vec<u8>)> {
    let mut messages = Vec::new();
    for name in Registry::standard().names() {
        if name == "intelmq" {
            continue;
        }
        let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("fixtures")
            .join(name)
            .join("valid");
        let Ok(entries) = std::fs::read_dir(dir) else {
            continue;
        };
        let mut paths: Vec<_> = entries.map(|e| e.unwrap().path()).collect();
        paths.sort();
        for path in paths
            .into_iter()
            .filter(|p| p.extension().is_some_and(|ext| ext == "json"))
        {
            messages.push((name, std::fs::read(path).unwrap()));
        }
    }
    messages
}

/// `fixture` with `extra.test_seq` set to `seq`, to follow it through.
fn numbered(
    fixture: &serde_json::Map<String, Value>,
    seq: usize,
) -> serde_json::Map<String, Value> {
    let mut event = fixture.clone();
    event.insert("extra.test_seq".into(), json!(seq));
    event
}

/// Message `seq` of the mix: a flat IntelMQ event, or every third an IEP04
/// envelope with a known id; each carries `extra.test_seq`.
fn mixed_message(fixtures: &[serde_json::Map<String, Value>], seq: usize) -> Vec<u8> {
    let mut event = numbered(&fixtures[seq % fixtures.len()], seq);
    let message = if seq % 3 == 0 {
        event.remove("__type");
        json!({
            "meta": {
                "version": 1,
                "type": "event",
                "format": "intelmq",
                "uuid": {"origin": "cert-elsewhere", "id": uuid::Uuid::now_v7().to_string(), "related": [], "group": [], "alternate": []},
            },
            "payload": event,
        })
    } else {
        Value::Object(event)
    };
    serde_json::to_vec(&message).unwrap()
}

/// A text header of a dead letter.
fn header(headers: &FieldTable, key: &str) -> String {
    match headers.inner().get(key) {
        Some(AMQPValue::LongString(text)) => text.to_string(),
        other => panic!("{key}: {other:?}"),
    }
}

/// `extra.test_seq` of an output message, flat or envelope.
fn seq_of(message: &Value) -> Option<u64> {
    message
        .get("extra.test_seq")
        .or_else(|| message.pointer("/payload/extra.test_seq"))?
        .as_u64()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_mixed_messages_reach_two_partners() {
    if !broker_available() {
        return;
    }
    const COUNT: usize = 10_000;
    let mut stage = Stage::new("mixed").await;
    let (flat, envelopes) = (stage.output("flat"), stage.output("env"));
    let flat_partner = format!("format = \"intelmq\"\nmeta = true\nqueue = \"{flat}\"");
    let envelope_partner =
        format!("format = \"intelmq\"\nenvelope = \"iep04\"\nqueue = \"{envelopes}\"");
    let bridge = stage.start(&stage.config(
        "format = \"auto\"",
        &[("flat", &flat_partner), ("envelopes", &envelope_partner)],
        true,
    ));
    let Stage { broker, input, .. } = stage;

    let fixtures = intelmq_fixtures();
    let mut bodies: Vec<Vec<u8>> = (0..COUNT)
        .map(|seq| mixed_message(&fixtures, seq))
        .collect();
    let others = other_format_fixtures();
    bodies.extend(others.iter().map(|(_, body)| body.clone()));
    broker.publish(&input, &bodies).await;

    // Every message is translated on arrival; once all are received, the
    // translated counts are final, and each partner's queue fills up to them.
    let deadline = Instant::now() + Duration::from_secs(180);
    while bridge.metric("received_total", &[]) < bodies.len() as u64 {
        assert!(Instant::now() < deadline, "not every message was received");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let translated = |partner: &str| {
        bridge.metric("translated_total", &[&format!("partner=\"{partner}\"")]) as usize
    };
    let (flat_count, envelope_count) = (translated("flat"), translated("envelopes"));
    let flat_out = broker
        .collect(&flat, Duration::from_secs(60), |got| {
            got.len() >= flat_count
        })
        .await;
    let envelope_out = broker
        .collect(&envelopes, Duration::from_secs(60), |got| {
            got.len() >= envelope_count
        })
        .await;
    let expected: BTreeSet<u64> = (0..COUNT as u64).collect();

    let registry = Registry::standard();
    let context = intelmq_bridge::formats::DecodeContext::new("checker");
    let intelmq = registry.get("intelmq").unwrap();
    let mut flat_seqs = BTreeSet::new();
    for (message, _) in &flat_out {
        assert_eq!(message["__type"], "Event", "{message}");
        assert!(message.get("meta").is_none() && message.get("payload").is_none());
        // Only harmonization keys, as an IntelMQ bot demands; the meta in extra.
        intelmq
            .validate(message, &context)
            .unwrap_or_else(|e| panic!("{e}: {message}"));
        assert!(message.get("extra.iep04").is_some(), "{message}");
        if let Some(seq) = seq_of(message) {
            flat_seqs.insert(seq);
        }
    }
    let mut envelope_seqs = BTreeSet::new();
    for (message, _) in &envelope_out {
        assert!(message.pointer("/meta/uuid/id").is_some(), "{message}");
        if let Some(seq) = seq_of(message) {
            envelope_seqs.insert(seq);
            if seq % 3 == 0 {
                assert_eq!(
                    message.pointer("/meta/uuid/origin").unwrap(),
                    "cert-elsewhere"
                );
            } else {
                assert_eq!(message.pointer("/meta/uuid/origin").unwrap(), ORIGIN);
            }
        }
    }
    assert_eq!(flat_seqs, expected, "flat partner");
    assert_eq!(envelope_seqs, expected, "envelope partner");
    // Each other format's valid fixtures were recognised as that format,
    // and none was lost: every one became events or was a duplicate.
    for (name, _) in &others {
        let sent = others.iter().filter(|(other, _)| other == name).count() as u64;
        let format = format!("format=\"{name}\"");
        assert_eq!(bridge.metric("received_total", &[&format]), sent, "{name}");
    }
    assert_eq!(flat_out.len(), flat_count);
    assert!(flat_count >= COUNT + others.len() - bridge.metric("dropped_total", &[]) as usize);
    bridge.wait_metric("published_total", &["partner=\"flat\""], flat_count as u64);
    assert_eq!(bridge.metric("dead_lettered_total", &[]), 0);
    assert!(bridge.stop().success());
    broker.delete_all().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_messages_go_to_the_dead_letter_queue_with_reasons() {
    if !broker_available() {
        return;
    }
    let mut stage = Stage::new("dead").await;
    let output = stage.output("out");
    let partner = format!("format = \"intelmq\"\nqueue = \"{output}\"");
    let bridge = stage.start(&stage.config("format = \"intelmq\"", &[("out", &partner)], false));
    let Stage { broker, input, .. } = stage;
    let dead = format!("{input}.dead-letter");

    let good = numbered(&intelmq_fixtures()[0], 1);
    let bodies = vec![
        b"this is not JSON".to_vec(),
        br#"{"__type": "Event", "source.ip": "999.1.1.1"}"#.to_vec(),
        br#"{"__type": "Event", "no.such.field": 1}"#.to_vec(),
        serde_json::to_vec(&good).unwrap(),
    ];
    broker.publish(&input, &bodies).await;
    let dead_letters = broker
        .collect(&dead, Duration::from_secs(20), |got| got.len() >= 3)
        .await;
    let delivered = broker
        .collect(&output, Duration::from_secs(20), |got| !got.is_empty())
        .await;

    assert_eq!(dead_letters.len(), 3);
    let reasons: BTreeMap<String, String> = dead_letters
        .iter()
        .map(|(body, headers)| {
            assert_eq!(header(headers, headers::STAGE), "decode");
            assert_eq!(header(headers, headers::INPUT_QUEUE), input);
            (body.to_string(), header(headers, headers::REASON))
        })
        .collect();
    assert!(
        reasons[r#""this is not JSON""#].starts_with("not JSON"),
        "{reasons:?}"
    );
    assert!(
        reasons
            .values()
            .any(|r| r.contains("source.ip") && r.contains("999.1.1.1")),
        "{reasons:?}"
    );
    assert!(
        reasons.values().any(|r| r.contains("no.such.field")),
        "{reasons:?}"
    );
    // The good message behind the poison ones went through.
    assert_eq!(delivered.len(), 1);
    assert_eq!(seq_of(&delivered[0].0), Some(1));
    bridge.wait_metric("dead_lettered_total", &["stage=\"decode\""], 3);
    assert_eq!(broker.depth(&input).await, 0);
    assert!(bridge.stop().success());
    broker.delete_all().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_one_partner_cannot_take_is_dead_lettered_for_that_partner_only() {
    if !broker_available() {
        return;
    }
    let mut stage = Stage::new("encode").await;
    let (flat, n6) = (stage.output("flat"), stage.output("n6"));
    let partners = [
        ("flat", format!("format = \"intelmq\"\nqueue = \"{flat}\"")),
        ("n6", format!("format = \"n6\"\nqueue = \"{n6}\"")),
    ];
    let partners: Vec<(&str, &str)> = partners.iter().map(|(n, b)| (*n, b.as_str())).collect();
    let bridge = stage.start(&stage.config("format = \"intelmq\"", &partners, false));
    let Stage { broker, input, .. } = stage;
    let dead = format!("{input}.dead-letter");

    // Valid IntelMQ, but n6 needs a time and this event has none.
    let mut timeless = numbered(&intelmq_fixtures()[0], 1);
    timeless.retain(|key, _| !key.starts_with("time."));
    let timely = numbered(&intelmq_fixtures()[0], 2);
    let bodies = [&timeless, &timely].map(|event| serde_json::to_vec(event).unwrap());
    broker.publish(&input, &bodies).await;

    let dead_letters = broker
        .collect(&dead, Duration::from_secs(20), |got| !got.is_empty())
        .await;
    let flat_out = broker
        .collect(&flat, Duration::from_secs(20), |got| got.len() >= 2)
        .await;
    let n6_out = broker
        .collect(&n6, Duration::from_secs(20), |got| !got.is_empty())
        .await;
    // The IntelMQ partner got both; n6 only the event it can hold.
    let seqs: Vec<u64> = flat_out.iter().filter_map(|(m, _)| seq_of(m)).collect();
    assert_eq!(seqs, [1, 2]);
    assert_eq!(n6_out.len(), 1);
    let (body, headers) = &dead_letters[0];
    assert_eq!(dead_letters.len(), 1);
    assert_eq!(
        seq_of(body),
        Some(1),
        "the original message is kept: {body}"
    );
    let header = |key: &str| header(headers, key);
    assert_eq!(header(headers::STAGE), "encode");
    assert_eq!(header(headers::PARTNER), "n6");
    assert!(
        header(headers::REASON).contains("time.source"),
        "{}",
        header(headers::REASON)
    );
    bridge.wait_metric("dead_lettered_total", &["stage=\"encode\""], 1);
    assert_eq!(broker.depth(&input).await, 0);
    assert!(bridge.stop().success());
    broker.delete_all().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_loop_and_a_duplicate_are_dropped() {
    if !broker_available() {
        return;
    }
    let mut stage = Stage::new("loop").await;
    let output = stage.output("out");
    let partner = format!("format = \"intelmq\"\nenvelope = \"iep04\"\nqueue = \"{output}\"");
    // A file partner beside the AMQP one: an archive of what went out.
    let archive = format!(
        "format = \"intelmq\"\ntransport = \"file\"\npath = \"{}\"",
        stage.dir.display()
    );
    let bridge = stage.start(&stage.config(
        "format = \"auto\"",
        &[("out", &partner), ("archive", &archive)],
        true,
    ));
    let Stage {
        broker, input, dir, ..
    } = stage;

    let payload = {
        let mut event = intelmq_fixtures()[0].clone();
        event.remove("__type");
        event
    };
    let envelope = |origin: &str, id: &str, seq: u64| {
        let mut payload = payload.clone();
        payload.insert("extra.test_seq".into(), json!(seq));
        serde_json::to_vec(&json!({
            "meta": {"version": 1, "type": "event", "format": "intelmq",
                     "uuid": {"origin": origin, "id": id, "related": [], "group": [], "alternate": []}},
            "payload": payload,
        }))
        .unwrap()
    };
    let (ours, theirs) = (
        uuid::Uuid::now_v7().to_string(),
        uuid::Uuid::now_v7().to_string(),
    );
    let bodies = vec![
        envelope(ORIGIN, &ours, 1),     // came back around: a loop
        envelope("cert-b", &theirs, 2), // new
        envelope("cert-b", &theirs, 3), // the same id again: a duplicate
        envelope("cert-b", &uuid::Uuid::now_v7().to_string(), 4), // new
    ];
    broker.publish(&input, &bodies).await;
    let delivered = broker
        .collect(&output, Duration::from_secs(20), |got| got.len() >= 2)
        .await;
    // Nothing more arrives.
    let late = broker
        .collect(&output, Duration::from_millis(500), |_| false)
        .await;
    let seqs: Vec<u64> = delivered.iter().filter_map(|(m, _)| seq_of(m)).collect();
    assert_eq!(seqs, [2, 4]);
    let archived = std::fs::read_to_string(dir.join("archive.jsonl")).unwrap();
    let archived: Vec<u64> = archived
        .lines()
        .filter_map(|line| seq_of(&serde_json::from_str(line).unwrap()))
        .collect();
    assert_eq!(archived, [2, 4]);
    assert!(late.is_empty());
    assert_eq!(bridge.metric("dropped_total", &["reason=\"loop\""]), 1);
    assert_eq!(bridge.metric("dropped_total", &["reason=\"duplicate\""]), 1);
    assert_eq!(broker.depth(&input).await, 0);
    assert!(bridge.stop().success());
    broker.delete_all().await;
}

/// An input queue holding `count` mixed messages and a configuration that
/// sends them to one IntelMQ partner queue: the set-up of the tests that
/// interrupt a run.
struct QueuedRun {
    stage: Stage,
    output: String,
    path: PathBuf,
}

impl QueuedRun {
    async fn prepare(name: &str, count: usize) -> Self {
        let mut stage = Stage::new(name).await;
        let output = stage.output("out");
        let fixtures = intelmq_fixtures();
        let bodies: Vec<Vec<u8>> = (0..count)
            .map(|seq| mixed_message(&fixtures, seq))
            .collect();
        stage.broker.publish(&stage.input, &bodies).await;
        let partner = format!("format = \"intelmq\"\nmeta = true\nqueue = \"{output}\"");
        let path = stage.config("format = \"auto\"", &[("out", &partner)], true);
        QueuedRun {
            stage,
            output,
            path,
        }
    }

    /// Starts a bridge and returns once it has delivered `part` messages.
    async fn start_and_wait_for(&self, part: usize) -> Bridge {
        let bridge = self.stage.start(&self.path);
        let deadline = Instant::now() + Duration::from_secs(60);
        while (self.depths().await.1 as usize) < part {
            assert!(Instant::now() < deadline, "the run made no progress");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        bridge
    }

    /// How many messages wait in the input and the output queue.
    async fn depths(&self) -> (u32, u32) {
        let broker = &self.stage.broker;
        (
            broker.depth(&self.stage.input).await,
            broker.depth(&self.output).await,
        )
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_mid_run_then_restart_loses_nothing() {
    if !broker_available() {
        return;
    }
    const COUNT: usize = 5_000;
    let run = QueuedRun::prepare("kill", COUNT).await;
    let first = run.start_and_wait_for(COUNT / 5).await;
    first.kill_9();
    let (left, _) = run.depths().await;
    assert!(left > 0, "killed too late to test anything");

    let second = run.stage.start(&run.path);
    let delivered = run
        .stage
        .broker
        .collect(&run.output, Duration::from_secs(120), |got| {
            got.iter()
                .filter_map(|(m, _)| seq_of(m))
                .collect::<BTreeSet<_>>()
                .len()
                >= COUNT
        })
        .await;
    let seqs: BTreeSet<u64> = delivered.iter().filter_map(|(m, _)| seq_of(m)).collect();
    assert_eq!(
        seqs,
        (0..COUNT as u64).collect::<BTreeSet<_>>(),
        "lost messages"
    );
    // At least once: only the unacknowledged window may come twice.
    assert!(
        delivered.len() <= COUNT + 200 + 50,
        "{} delivered",
        delivered.len()
    );
    assert!(second.stop().success());
    run.stage.broker.delete_all().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn intelmq_declared_queues_are_read_and_written_without_a_406() {
    if !broker_available() {
        return;
    }
    let dir = temp_dir("intelmq");
    // As IntelMQ 3.5 declares its pipeline: `<bot-id>-queue`, durable, lazy.
    let (input, output) = (unique("bridge-queue"), unique("deduplicator-queue"));
    let mut broker = Broker::connect().await;
    broker.queue(&input, true).await;
    broker.queue(&output, true).await;
    broker.forget_later(&format!("{input}.dead-letter"));
    let event = numbered(&intelmq_fixtures()[1], 7);
    for (round, declare) in ["intelmq", "passive"].iter().enumerate() {
        let port = common::free_port();
        let partner =
            format!("format = \"intelmq\"\nqueue = \"{output}\"\ndeclare = \"{declare}\"");
        let path = config(
            &dir,
            port,
            &input,
            &format!("format = \"intelmq\"\ndeclare = \"{declare}\""),
            &[("intelmq", &partner)],
            false,
        );
        let bridge = Bridge::start(&path, port, &dir.join(format!("bridge-{round}.log")));
        broker
            .publish(&input, &[serde_json::to_vec(&event).unwrap()])
            .await;
        let delivered = broker
            .collect(&output, Duration::from_secs(20), |got| !got.is_empty())
            .await;
        assert_eq!(delivered.len(), 1, "{declare}");
        let message = &delivered[0].0;
        assert_eq!(message["__type"], "Event");
        assert!(
            message.get("extra.iep04").is_none(),
            "meta not asked for: {message}"
        );
        assert_eq!(seq_of(message), Some(7));
        assert!(bridge.stop().success());
    }
    // Declaring IntelMQ's queue with other arguments is what RabbitMQ refuses.
    let port = common::free_port();
    let partner = format!("format = \"intelmq\"\nqueue = \"{output}\"");
    let path = config(
        &dir,
        port,
        &input,
        "declare = \"durable\"",
        &[("intelmq", &partner)],
        false,
    );
    failing_start(
        &path,
        &dir.join("bridge-406.log"),
        &[],
        "PRECONDITION_FAILED",
    );
    broker.delete_all().await;
}

/// Runs a bridge that cannot get going until its log says `needle` (within
/// ten seconds), then kills it; the log.
fn failing_start(path: &Path, log: &Path, env: &[(&str, &Path)], needle: &str) -> String {
    let mut child = Command::new(env!("CARGO_BIN_EXE_intelmq-bridge"))
        .args(["serve", "--config"])
        .arg(path)
        .envs(env.iter().copied())
        .stderr(std::fs::File::create(log).unwrap())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut text = String::new();
    while !text.contains(needle) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
        text = std::fs::read_to_string(log).unwrap();
    }
    let _ = child.kill();
    let _ = child.wait();
    assert!(text.contains(needle), "expected {needle:?} in:\n{text}");
    text
}

/// Closes, from the broker's side, every connection whose name contains
/// `needle`; false when `rabbitmqctl` is not at hand.
fn close_connections(needle: &str) -> bool {
    let Ok(listing) = Command::new("rabbitmqctl")
        .args([
            "list_connections",
            "--quiet",
            "--no-table-headers",
            "pid",
            "client_properties",
        ])
        .output()
    else {
        return false;
    };
    let listing = String::from_utf8_lossy(&listing.stdout).into_owned();
    let pids: Vec<&str> = listing
        .lines()
        .filter(|line| line.contains(needle))
        .filter_map(|line| line.split_whitespace().next())
        .collect();
    assert!(!pids.is_empty(), "no connection named {needle}: {listing}");
    for pid in pids {
        let closed = Command::new("rabbitmqctl")
            .args(["close_connection", pid, "test: broker went away"])
            .stdin(Stdio::null())
            .status()
            .unwrap();
        assert!(closed.success());
    }
    true
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bridge_reconnects_when_the_broker_drops_it() {
    if !broker_available() {
        return;
    }
    let mut stage = Stage::new("reconnect").await;
    let output = stage.output("out");
    let partner = format!("format = \"intelmq\"\nqueue = \"{output}\"");
    let path = stage.config("format = \"intelmq\"", &[("out", &partner)], false);
    let origin = unique("origin");
    let text = std::fs::read_to_string(&path)
        .unwrap()
        .replace(ORIGIN, &origin);
    std::fs::write(&path, text).unwrap();
    let bridge = stage.start(&path);
    let Stage {
        broker, input, dir, ..
    } = stage;
    let fixtures = intelmq_fixtures();
    let bodies: Vec<Vec<u8>> = (0..200)
        .map(|seq| serde_json::to_vec(&numbered(&fixtures[seq % fixtures.len()], seq)).unwrap())
        .collect();
    broker.publish(&input, &bodies[..100]).await;
    let first = broker
        .collect(&output, Duration::from_secs(20), |got| got.len() >= 100)
        .await;
    assert_eq!(first.len(), 100);

    if !close_connections(&origin) {
        println!("skipped: no rabbitmqctl to drop the connection");
        return;
    }
    broker.publish(&input, &bodies[100..]).await;
    let second = broker
        .collect(&output, Duration::from_secs(30), |got| got.len() >= 100)
        .await;
    let seqs: BTreeSet<u64> = first
        .iter()
        .chain(&second)
        .filter_map(|(m, _)| seq_of(m))
        .collect();
    assert_eq!(seqs, (0..200).collect::<BTreeSet<_>>());
    bridge.wait_healthy();
    assert_eq!(bridge.metric("input_up", &[]), 1);
    let log = std::fs::read_to_string(dir.join("bridge.log")).unwrap();
    assert!(log.contains("reconnecting"), "{log}");
    assert!(bridge.stop().success());
    broker.delete_all().await;
}

/// The Python interpreter that has IntelMQ's package, if any.
fn intelmq_python() -> Option<String> {
    let python = std::env::var("INTELMQ_PYTHON").unwrap_or_else(|_| "python3".to_owned());
    let found = Command::new(&python)
        .args(["-c", "import intelmq.lib.pipeline"])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success());
    found.then_some(python)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn intelmq_bots_exchange_events_with_the_bridge_through_their_own_pipeline() {
    if !broker_available() {
        return;
    }
    let Some(python) = intelmq_python() else {
        println!("skipped: IntelMQ's Python package is not installed (set INTELMQ_PYTHON)");
        return;
    };
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/intelmq/amqp_pipeline.py");
    let dir = temp_dir("intelmq-python");
    let (upstream, downstream) = (unique("bridge-queue"), unique("deduplicator-queue"));
    let mut broker = Broker::connect().await;
    for queue in [&upstream, &downstream] {
        broker.forget_later(queue);
    }
    broker.forget_later(&format!("{upstream}.dead-letter"));
    let port = common::free_port();
    let partner = format!(
        "format = \"intelmq\"\nmeta = true\nqueue = \"{downstream}\"\ndeclare = \"intelmq\""
    );
    let path = config(
        &dir,
        port,
        &upstream,
        "format = \"intelmq\"\ndeclare = \"intelmq\"",
        &[("intelmq", &partner)],
        true,
    );
    let bridge = Bridge::start(&path, port, &dir.join("bridge.log"));

    let fixtures = intelmq_fixtures();
    let mut lines = String::new();
    for (seq, event) in fixtures.iter().enumerate() {
        lines += &format!("{}\n", Value::Object(numbered(event, seq)));
    }
    // An IntelMQ bot whose destination queue the bridge consumes.
    let mut sender = Command::new(&python)
        .arg(&script)
        .args(["send", &upstream])
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    sender
        .stdin
        .take()
        .unwrap()
        .write_all(lines.as_bytes())
        .unwrap();
    assert!(sender.wait().unwrap().success());
    // The next bot, reading what the bridge wrote into its source queue.
    let receiver = Command::new(&python)
        .arg(&script)
        .args(["receive", &downstream, &fixtures.len().to_string()])
        .output()
        .unwrap();
    assert!(
        receiver.status.success(),
        "{}",
        String::from_utf8_lossy(&receiver.stderr)
    );
    let received: Vec<Value> = String::from_utf8(receiver.stdout)
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    let seqs: BTreeSet<u64> = received.iter().filter_map(seq_of).collect();
    assert_eq!(seqs, (0..fixtures.len() as u64).collect::<BTreeSet<_>>());
    for event in &received {
        // IntelMQ parsed the meta as its own `extra` data.
        assert!(event.get("extra.iep04").is_some(), "{event}");
    }
    assert!(bridge.stop().success());
    broker.delete_all().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_mid_run_drains_in_flight_without_loss_or_duplicates() {
    if !broker_available() {
        return;
    }
    const COUNT: usize = 5_000;
    let run = QueuedRun::prepare("sigterm", COUNT).await;
    let first = run.start_and_wait_for(COUNT / 5).await;
    assert!(first.stop().success());
    // Every delivery was either finished (published and acknowledged) or
    // returned untouched: the two queues together hold each message once.
    let (left, done) = run.depths().await;
    assert!(left > 0, "stopped too late to test anything");
    assert_eq!(left + done, COUNT as u32);

    let second = run.stage.start(&run.path);
    let QueuedRun { stage, output, .. } = run;
    let broker = stage.broker;
    let delivered = broker
        .collect(&output, Duration::from_secs(120), |got| got.len() >= COUNT)
        .await;
    let late = broker
        .collect(&output, Duration::from_millis(500), |_| false)
        .await;
    let seqs: BTreeSet<u64> = delivered.iter().filter_map(|(m, _)| seq_of(m)).collect();
    assert_eq!(delivered.len() + late.len(), COUNT, "duplicates");
    assert_eq!(seqs.len(), COUNT, "lost messages");
    assert!(second.stop().success());
    broker.delete_all().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unroutable_output_is_retried_until_a_queue_is_bound() {
    if !broker_available() {
        return;
    }
    let stage = Stage::new("unroutable").await;
    let (output, key) = (unique("out"), unique("key"));
    // Nothing is bound to amq.direct with this key yet.
    let partner =
        format!("format = \"intelmq\"\nexchange = \"amq.direct\"\nrouting_key = \"{key}\"");
    let bridge = stage.start(&stage.config("format = \"intelmq\"", &[("direct", &partner)], false));
    let Stage {
        mut broker, input, ..
    } = stage;
    let event = numbered(&intelmq_fixtures()[2], 5);
    broker
        .publish(&input, &[serde_json::to_vec(&event).unwrap()])
        .await;

    // The return counts as a failure: the input message is not acknowledged.
    let deadline = Instant::now() + Duration::from_secs(10);
    while bridge.metric("publish_failed_total", &["partner=\"direct\""]) == 0 {
        assert!(
            Instant::now() < deadline,
            "the unroutable return was not noticed"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(bridge.metric("published_total", &[]), 0);

    broker.queue(&output, false).await;
    broker
        .channel
        .queue_bind(
            output.as_str().into(),
            "amq.direct".into(),
            key.as_str().into(),
            lapin::options::QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    let delivered = broker
        .collect(&output, Duration::from_secs(20), |got| !got.is_empty())
        .await;
    assert_eq!(delivered.len(), 1);
    assert_eq!(seq_of(&delivered[0].0), Some(5));
    bridge.wait_metric("published_total", &["partner=\"direct\""], 1);
    assert!(bridge.stop().success());
    broker.delete_all().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_http_ingest_publishes_to_amqp_partners_and_answers_after_the_confirms() {
    if !broker_available() {
        return;
    }
    let dir = temp_dir("http-ingest");
    let output = unique("out");
    let mut broker = Broker::connect().await;
    broker.forget_later(&output);
    let port = common::free_port();
    let partner = format!("format = \"intelmq\"\nqueue = \"{output}\"\ndeclare = \"intelmq\"");
    let path = config(
        &dir,
        port,
        "unused",
        "transport = \"http\"",
        &[("intelmq", &partner)],
        false,
    );
    let bridge = Bridge::start(&path, port, &dir.join("bridge.log"));
    let fixtures = intelmq_fixtures();
    let body: String = (0..3)
        .map(|seq| format!("{}\n", Value::Object(numbered(&fixtures[seq], seq))))
        .collect();
    let (status, answer) = common::http(port, "POST", "/v1/events", &[], body.as_bytes()).unwrap();
    assert_eq!(status, 200, "{answer}");
    // Answered after the confirms: the messages are already in the queue.
    assert_eq!(broker.depth(&output).await, 3);
    let delivered = broker
        .collect(&output, Duration::from_secs(10), |got| got.len() >= 3)
        .await;
    let seqs: Vec<u64> = delivered.iter().filter_map(|(m, _)| seq_of(m)).collect();
    assert_eq!(seqs, [0, 1, 2]);
    assert!(bridge.stop().success());
    broker.delete_all().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partner_per_format_gets_every_event_in_its_own_format() {
    if !broker_available() {
        return;
    }
    const COUNT: usize = 2_000;
    let registry = Registry::standard();
    let mut stage = Stage::new("formats").await;
    // One partner per format this build knows, each on its own queue.
    let partners: Vec<(&str, String, String)> = registry
        .names()
        .into_iter()
        .map(|name| {
            let queue = stage.output(name);
            let body = format!("format = \"{name}\"\nqueue = \"{queue}\"");
            (name, queue, body)
        })
        .collect();
    let routes: Vec<(&str, &str)> = partners
        .iter()
        .map(|(name, _, body)| (*name, body.as_str()))
        .collect();
    let bridge = stage.start(&stage.config("format = \"auto\"", &routes, true));
    let Stage { broker, input, .. } = stage;
    let fixtures = intelmq_fixtures();
    let bodies: Vec<Vec<u8>> = (0..COUNT)
        .map(|seq| mixed_message(&fixtures, seq))
        .collect();
    broker.publish(&input, &bodies).await;

    let deadline = Instant::now() + Duration::from_secs(120);
    while bridge.metric("received_total", &[]) < COUNT as u64 {
        assert!(Instant::now() < deadline, "not every message was received");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let context = intelmq_bridge::formats::DecodeContext::new("checker");
    for (name, queue, _) in &partners {
        let translated =
            bridge.metric("translated_total", &[&format!("partner=\"{name}\"")]) as usize;
        let delivered = broker
            .collect(queue, Duration::from_secs(60), |got| {
                got.len() >= translated
            })
            .await;
        assert_eq!(delivered.len(), translated, "{name}");
        let format = registry.get(name).unwrap();
        let mut seqs = BTreeSet::new();
        for (message, _) in &delivered {
            // Valid as the format's own tools see it, and it decodes back
            // to the event that went in.
            format
                .validate(message, &context)
                .unwrap_or_else(|e| panic!("{name}: {e}: {message}"));
            for event in format.decode(message.clone(), &context).unwrap() {
                if let Some(seq) = event.payload.get("extra.test_seq").and_then(Value::as_u64) {
                    seqs.insert(seq);
                }
            }
        }
        assert_eq!(seqs, (0..COUNT as u64).collect::<BTreeSet<_>>(), "{name}");
    }
    assert_eq!(bridge.metric("dead_lettered_total", &[]), 0);
    assert!(bridge.stop().success());
    broker.delete_all().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inputs_and_partners_speak_amqps_and_check_the_broker_certificate() {
    if !broker_available() {
        return;
    }
    let mut stage = Stage::new("tls").await;
    let output = stage.output("out");
    let pki = common::tls::Pki::new(&stage.dir);
    let broker_address = "127.0.0.1:5672".parse().unwrap();
    let tls_port = pki.front(broker_address, false).await;
    let tls_url = format!("amqps://guest:guest@localhost:{tls_port}/%2f");
    let partner = format!("format = \"intelmq\"\nqueue = \"{output}\"");
    let path = stage.config("format = \"intelmq\"", &[("out", &partner)], false);
    // Both sides through the TLS front.
    let text = std::fs::read_to_string(&path)
        .unwrap()
        .replace(URL, &tls_url);
    std::fs::write(&path, text).unwrap();

    // Without the certificate among its trusted ones, the bridge refuses
    // the broker and never becomes healthy.
    let log = stage.dir.join("untrusted.log");
    let empty = stage.dir.join("no-ca.pem");
    std::fs::write(&empty, "").unwrap();
    let refusal = failing_start(&path, &log, &[("SSL_CERT_FILE", &empty)], "reconnecting");
    assert!(refusal.to_lowercase().contains("certificate"), "{refusal}");

    let bridge = Bridge::start_with_env(
        &path,
        stage.port,
        &stage.dir.join("bridge.log"),
        &[("SSL_CERT_FILE", &pki.ca)],
    );
    let Stage { broker, input, .. } = stage;
    let event = numbered(&intelmq_fixtures()[0], 9);
    broker
        .publish(&input, &[serde_json::to_vec(&event).unwrap()])
        .await;
    let delivered = broker
        .collect(&output, Duration::from_secs(20), |got| !got.is_empty())
        .await;
    assert_eq!(delivered.len(), 1);
    assert_eq!(seq_of(&delivered[0].0), Some(9));
    assert!(bridge.stop().success());
    broker.delete_all().await;
}

/// An AMQP input routed to a pull partner: each delivery is acknowledged
/// once its messages are in the outbox, and the partner reads them all,
/// as a file partner of the same format gets them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_amqp_input_feeds_the_outbox_of_a_pull_partner() {
    if !broker_available() {
        return;
    }
    const COUNT: usize = 40;
    const TOKEN: &str = "pull-token";
    let Stage {
        dir,
        broker,
        input,
        port,
    } = Stage::new("pull").await;
    let digest = common::hex_sha256(TOKEN);
    let archive = dir.join("archive.jsonl");
    let text = format!(
        r#"origin = "{ORIGIN}"
[http]
listen = "127.0.0.1:{port}"
[store]
path = "{store}"
[[inputs]]
name = "in"
url = "{URL}"
queue = "{input}"
[[partners]]
name = "feed"
format = "idea"
transport = "pull"
token_sha256 = "{digest}"
{SEES_ALL}
[[partners]]
name = "archive"
format = "idea"
transport = "file"
path = "{archive}"
{SEES_ALL}
[[routes]]
input = "in"
partners = ["feed", "archive"]
"#,
        store = dir.join("store").display(),
        archive = archive.display(),
    );
    let path = dir.join("bridge.toml");
    std::fs::write(&path, text).unwrap();
    let bridge = Bridge::start(&path, port, &dir.join("bridge.log"));
    let fixtures = intelmq_fixtures();
    let bodies: Vec<Vec<u8>> = (0..COUNT)
        .map(|seq| mixed_message(&fixtures, seq))
        .collect();
    broker.publish(&input, &bodies).await;
    let deadline = Instant::now() + Duration::from_secs(60);
    while bridge.metric("received_total", &[]) < COUNT as u64 || broker.depth(&input).await > 0 {
        assert!(Instant::now() < deadline, "not every message was taken");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The queue's depth counts only messages not yet handed out: the last
    // ones may still be settling. Once the counts agree and stay, every
    // message is in both the outbox and the archive, or the deadline fails.
    let authorization = format!("Authorization: Bearer {TOKEN}");
    let mut settled = None;
    let (translated, page, pulled, archived) = loop {
        let translated = bridge.metric("translated_total", &["partner=\"feed\""]);
        let (status, body) = common::http(
            port,
            "GET",
            "/v1/partners/feed/events?limit=1000",
            &[&authorization],
            b"",
        )
        .unwrap();
        assert_eq!(status, 200, "{body}");
        let page: Value = serde_json::from_str(&body).unwrap();
        let pulled: Vec<String> = page["events"]
            .as_array()
            .unwrap()
            .iter()
            .map(Value::to_string)
            .collect();
        let archived: Vec<String> = std::fs::read_to_string(&archive)
            .unwrap_or_default()
            .lines()
            .map(str::to_owned)
            .collect();
        let counts = (translated, pulled.len() as u64, archived.len() as u64);
        if counts == (translated, translated, translated) && settled == Some(counts) {
            break (translated, page, pulled, archived);
        }
        assert!(Instant::now() < deadline, "not settled: {counts:?}");
        settled = Some(counts);
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    assert!(translated > 0);
    assert_eq!(pulled, archived);
    assert_eq!(page["next"], translated.to_string());
    assert!(bridge.stop().success());
    broker.delete_all().await;
}
