//! Sustained messages per second through `intelmq-bridge serve` on the local
//! RabbitMQ, with publisher confirms and acknowledgement after confirm,
//! beside a plain consume→publish pass-through with the same guarantees,
//! measured in the same run: the cost of the translation itself. Flat
//! IntelMQ events go in; they come out as IntelMQ, and as IDEA when the
//! build has it.
//!
//! `cargo bench --bench amqp` (`AMQP_BENCH_MESSAGES` sets the count,
//! default 20,000). Each pass preloads the input queue, then times from the
//! moment the consumer is ready until the output queue holds every message.

#[path = "../tests/common/mod.rs"]
mod common;

use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use futures_util::StreamExt as _;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, BasicQosOptions,
    ConfirmSelectOptions, QueueDeclareOptions, QueueDeleteOptions,
};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel, Confirmation, Connection, ConnectionProperties};

use common::amqp::URL;
const PREFETCH: u16 = 256;

type Error = Box<dyn std::error::Error>;

fn main() -> Result<(), Error> {
    if TcpStream::connect("127.0.0.1:5672").is_err() {
        println!("skipped: no RabbitMQ");
        return Ok(());
    }
    let count: usize = std::env::var("AMQP_BENCH_MESSAGES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(20_000);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(run(count))
}

async fn run(count: usize) -> Result<(), Error> {
    let connection = Connection::connect(URL, ConnectionProperties::default()).await?;
    let channel = connection.create_channel().await?;
    channel
        .confirm_select(ConfirmSelectOptions::default())
        .await?;
    let tag = format!("ib-bench-{}", std::process::id());
    let queues: Vec<String> = ["pt-in", "pt-out", "br-in", "br-out", "idea-in", "idea-out"]
        .iter()
        .map(|name| format!("{tag}-{name}"))
        .collect();
    for queue in &queues {
        channel
            .queue_declare(
                queue.as_str().into(),
                QueueDeclareOptions::durable(),
                FieldTable::default(),
            )
            .await?;
    }
    let bodies = common::unique_events(count);

    preload(&channel, &queues[0], &bodies).await?;
    let passthrough = passthrough(&connection, &queues[0], &queues[1], count).await?;

    preload(&channel, &queues[2], &bodies).await?;
    let bridge_intelmq = bridge(&connection, &queues[2], &queues[3], "intelmq", count).await?;

    // A format other than the input's, when this build has IDEA.
    let idea = match intelmq_bridge::formats::Registry::standard().get("idea") {
        Ok(_) => {
            preload(&channel, &queues[4], &bodies).await?;
            Some(bridge(&connection, &queues[4], &queues[5], "idea", count).await?)
        }
        Err(_) => None,
    };

    let dead_letters = [&queues[2], &queues[4]].map(|queue| format!("{queue}.dead-letter"));
    for queue in queues.iter().chain(&dead_letters) {
        let _ = channel
            .queue_delete(queue.as_str().into(), QueueDeleteOptions::default())
            .await;
    }
    let _ = connection.close(200, "".into()).await;

    let rate = |elapsed: Duration| count as f64 / elapsed.as_secs_f64();
    println!(
        "amqp: {count} persistent messages, confirms on, ack after confirm, prefetch {PREFETCH}"
    );
    println!(
        "  pass-through (consume -> publish):        {:>9.0} msg/s  ({:.2} s)",
        rate(passthrough),
        passthrough.as_secs_f64()
    );
    println!(
        "  intelmq-bridge serve (intelmq -> intelmq): {:>9.0} msg/s  ({:.2} s)  ratio {:.2}",
        rate(bridge_intelmq),
        bridge_intelmq.as_secs_f64(),
        rate(bridge_intelmq) / rate(passthrough)
    );
    if let Some(idea) = idea {
        println!(
            "  intelmq-bridge serve (intelmq -> idea):    {:>9.0} msg/s  ({:.2} s)  ratio {:.2}",
            rate(idea),
            idea.as_secs_f64(),
            rate(idea) / rate(passthrough)
        );
    }
    Ok(())
}

async fn preload(channel: &Channel, queue: &str, bodies: &[Vec<u8>]) -> Result<(), Error> {
    match common::amqp::publish(channel, queue, bodies).await? {
        true => Ok(()),
        false => Err(format!("{queue}: the broker refused some messages").into()),
    }
}

/// Waits until `queue` holds `count` messages; the time since `start`.
async fn until_full(
    connection: &Connection,
    queue: &str,
    count: usize,
    start: Instant,
) -> Result<Duration, Error> {
    let deadline = start + Duration::from_secs(600);
    while (common::amqp::depth(connection, queue).await? as usize) < count {
        if Instant::now() > deadline {
            return Err(format!("{queue}: not all {count} messages arrived").into());
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    Ok(start.elapsed())
}

/// Consume, publish the same bytes with confirms, ack after the confirm:
/// the bridge's guarantees without the translation.
async fn passthrough(
    connection: &Connection,
    input: &str,
    output: &str,
    count: usize,
) -> Result<Duration, Error> {
    let consuming = connection.create_channel().await?;
    consuming
        .basic_qos(PREFETCH, BasicQosOptions::default())
        .await?;
    let publishing = connection.create_channel().await?;
    publishing
        .confirm_select(ConfirmSelectOptions::default())
        .await?;
    let mut consumer = consuming
        .basic_consume(
            input.into(),
            "ib-bench-passthrough".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await?;
    let output_name = output.to_owned();
    let start = Instant::now();
    let pump = tokio::spawn(async move {
        let options = BasicPublishOptions {
            mandatory: true,
            ..BasicPublishOptions::default()
        };
        let properties = BasicProperties::default()
            .with_delivery_mode(2)
            .with_content_type("application/json".into());
        let mut done = 0;
        while done < count {
            let Some(Ok(delivery)) = consumer.next().await else {
                break;
            };
            let confirm = publishing
                .basic_publish(
                    "".into(),
                    output_name.as_str().into(),
                    options,
                    &delivery.data,
                    properties.clone(),
                )
                .await?;
            tokio::spawn(async move {
                if let Ok(Confirmation::Ack(None)) = confirm.await {
                    let _ = delivery.acker.ack(BasicAckOptions::default()).await;
                }
            });
            done += 1;
        }
        Ok::<_, lapin::Error>(())
    });
    let elapsed = until_full(connection, output, count, start).await?;
    pump.await??;
    let _ = consuming.close(200, "".into()).await;
    Ok(elapsed)
}

/// Runs the release binary on the preloaded queue, writing `format`.
async fn bridge(
    connection: &Connection,
    input: &str,
    output: &str,
    format: &str,
    count: usize,
) -> Result<Duration, Error> {
    let dir = std::env::temp_dir().join(format!("ib-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let config = format!(
        r#"origin = "bench"
[http]
listen = "127.0.0.1:{port}"
[seen]
path = "{seen}"
[[inputs]]
name = "in"
url = "{URL}"
queue = "{input}"
format = "intelmq"
prefetch = {PREFETCH}
[[partners]]
name = "out"
format = "{format}"
url = "{URL}"
queue = "{output}"
# Every fixture goes out, TLP:RED and n6 `internal` included.
max_tlp = "RED"
n6_restrictions = ["public", "need-to-know", "internal"]
[[routes]]
input = "in"
partners = ["out"]
"#,
        seen = dir.join("seen.redb").display()
    );
    let path = dir.join("bridge.toml");
    std::fs::write(&path, config)?;
    let start = Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_intelmq-bridge"))
        .args(["serve", "--config"])
        .arg(&path)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .spawn()?;
    // The clock starts when the process does: its start-up (well under a
    // second) is charged to the bridge.
    let elapsed = until_full(connection, output, count, start).await;
    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status();
    child.wait()?;
    let _ = std::fs::remove_dir_all(&dir);
    elapsed
}
