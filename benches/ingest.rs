//! Ingest throughput of `intelmq-bridge serve` over loopback: events per
//! second for batched `POST /v1/events` (JSON Lines) from two concurrent
//! clients authenticated by a bearer token, into an HTTP input routed to a
//! file partner, with a `[store]` for the dead letters. Every answer must accept its whole batch, and the
//! partner's file must hold every event at the end. With RabbitMQ on
//! 127.0.0.1:5672, the same into an AMQP partner (a durable queue,
//! publisher confirms), whose queue must hold every event. And into a pull
//! partner, whose messages wait in the durable outbox (one redb commit per
//! request), which must hold every event.
//!
//! `cargo bench --bench ingest` (`INGEST_BENCH_EVENTS` sets the count,
//! default 100,000; `INGEST_BENCH_BATCH` the first batch size, default
//! 1,000). It runs that batch size, then 100, then (file partner only) 1
//! with a hundredth of the events, each against a fresh server. Each
//! request is a connection of its own (HTTP/1.0, as the tests' client
//! speaks it).

#[path = "../tests/common/mod.rs"]
mod common;

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use lapin::options::QueueDeleteOptions;
use lapin::{Connection, ConnectionProperties};
use serde_json::Value;

/// Concurrent clients.
const CLIENTS: usize = 2;

/// The clients' bearer token: they send as the partner `client`, as a
/// partner of an operator's bridge would.
const CLIENT_TOKEN: &str = "bench-client";

/// Where the events go.
#[derive(Clone, Copy)]
enum Partner {
    /// A JSON Lines file in the store directory.
    File,
    /// A durable queue on the local RabbitMQ.
    Amqp,
    /// A pull partner: the durable outbox in the store directory.
    Outbox,
}

type Error = Box<dyn std::error::Error + Send + Sync>;

fn main() -> Result<(), Error> {
    let setting = |name: &str, default: usize| {
        std::env::var(name)
            .ok()
            .and_then(|value| value.parse().ok())
            .unwrap_or(default)
    };
    let count = setting("INGEST_BENCH_EVENTS", 100_000).max(1);
    let batch = setting("INGEST_BENCH_BATCH", 1_000).max(1);
    let events = common::unique_events(count);
    let broker = std::net::TcpStream::connect("127.0.0.1:5672").is_ok();
    println!("ingest: POST /v1/events, JSON Lines, {CLIENTS} clients, loopback");
    let mut runs = vec![
        (Partner::File, batch, &events[..]),
        (Partner::File, 100, &events[..]),
        (Partner::File, 1, &events[..(count / 100).max(1)]),
        (Partner::Outbox, batch, &events[..]),
        (Partner::Outbox, 100, &events[..]),
    ];
    if broker {
        runs.extend([
            (Partner::Amqp, batch, &events[..]),
            (Partner::Amqp, 100, &events[..]),
        ]);
    } else {
        println!("  (no RabbitMQ: the AMQP partner is skipped)");
    }
    for (partner, batch, events) in runs {
        let elapsed = run(partner, events, batch)?;
        let name = match partner {
            Partner::File => "file",
            Partner::Amqp => "amqp",
            Partner::Outbox => "outbox",
        };
        println!(
            "  {name} partner, batch {batch:>5}: {:>7} events in {:>6.2} s  {:>9.0} events/s",
            events.len(),
            elapsed.as_secs_f64(),
            events.len() as f64 / elapsed.as_secs_f64()
        );
    }
    Ok(())
}

/// Starts a server, posts `events` in batches of `batch` from the clients,
/// and checks that everything was accepted and written: the time from the
/// first request to the last answer.
fn run(partner: Partner, events: &[Vec<u8>], batch: usize) -> Result<Duration, Error> {
    let dir = common::scratch(&format!("ingest-bench-{batch}"));
    let port = common::free_port();
    let queue = format!("ib-ingest-bench-{}-{batch}", std::process::id());
    let way = match partner {
        Partner::File => format!("transport = \"file\"\npath = \"{}\"", dir.display()),
        Partner::Amqp => format!("url = \"{}\"\nqueue = \"{queue}\"", common::amqp::URL),
        Partner::Outbox => format!(
            "transport = \"pull\"\ntoken_sha256 = \"{}\"",
            common::hex_sha256("bench-feed")
        ),
    };
    let config = format!(
        r#"{head}format = "intelmq"
[[partners]]
name = "out"
format = "intelmq"
{way}
max_tlp = "RED"
n6_restrictions = ["public", "need-to-know", "internal"]
[[partners]]
name = "client"
format = "intelmq"
transport = "file"
path = "{client}"
token_sha256 = "{client_digest}"
# The bench measures throughput, not the rate limit.
rate_limit = 1000000
rate_burst = 1000000
[[routes]]
input = "in"
partners = ["out"]
"#,
        head = common::ingest_config_head("bench", port, "", &dir),
        client = dir.join("client.jsonl").display(),
        client_digest = common::hex_sha256(CLIENT_TOKEN),
    );
    let path = dir.join("bridge.toml");
    std::fs::write(&path, config)?;
    let path = path.to_str().ok_or("the scratch path is not UTF-8")?;
    let bodies: Vec<Vec<u8>> = events
        .chunks(batch)
        .map(|chunk| chunk.join(&b'\n'))
        .collect();
    let server = common::serve(&["--config", path], port);

    let next = AtomicUsize::new(0);
    let start = Instant::now();
    std::thread::scope(|scope| {
        let clients: Vec<_> = (0..CLIENTS)
            .map(|_| scope.spawn(|| post_all(port, &bodies, &next)))
            .collect();
        clients
            .into_iter()
            .try_for_each(|client| client.join().map_err(|_| "a client panicked")?)
    })?;
    let elapsed = start.elapsed();
    let pending = outbox_pending(port);
    drop(server);

    let written = match partner {
        Partner::File => lines(&dir.join("out.jsonl"))?,
        Partner::Amqp => delete_queue(&queue)?,
        Partner::Outbox => pending,
    };
    if written != events.len() {
        return Err(format!("the partner holds {written} events, not {}", events.len()).into());
    }
    std::fs::remove_dir_all(&dir)?;
    Ok(elapsed)
}

/// Takes the next body until none is left, posts it, and checks that each
/// of its records was accepted.
fn post_all(port: u16, bodies: &[Vec<u8>], next: &AtomicUsize) -> Result<(), Error> {
    let authorization = format!("Authorization: Bearer {CLIENT_TOKEN}");
    let headers = ["Content-Type: application/x-ndjson", authorization.as_str()];
    while let Some(body) = bodies.get(next.fetch_add(1, Ordering::Relaxed)) {
        let (status, answer) = common::http(port, "POST", "/v1/events", &headers, body)
            .ok_or("no answer from the server")?;
        let records = body.split(|byte| *byte == b'\n').count();
        let answer: Value = serde_json::from_str(&answer)?;
        if status != 200 || answer["accepted"] != records {
            return Err(format!("status {status}, not all {records} accepted: {answer}").into());
        }
    }
    Ok(())
}

/// Deletes a queue of the local RabbitMQ: how many messages it held.
fn delete_queue(queue: &str) -> Result<usize, Error> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let connection =
            Connection::connect(common::amqp::URL, ConnectionProperties::default()).await?;
        let channel = connection.create_channel().await?;
        let held = channel
            .queue_delete(queue.into(), QueueDeleteOptions::default())
            .await?;
        let _ = connection.close(200, "".into()).await;
        Ok(held as usize)
    })
}

/// How many messages the outbox holds for the partner `out`.
fn outbox_pending(port: u16) -> usize {
    let gauge = r#"intelmq_bridge_outbox_pending{partner="out"} "#;
    common::metrics(port)
        .lines()
        .find_map(|line| line.strip_prefix(gauge)?.parse().ok())
        .unwrap_or(0)
}

/// How many lines a file holds.
fn lines(path: &Path) -> std::io::Result<usize> {
    Ok(std::fs::read(path)?
        .iter()
        .filter(|byte| **byte == b'\n')
        .count())
}
