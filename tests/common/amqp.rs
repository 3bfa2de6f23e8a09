//! The broker side shared by the AMQP tests and the AMQP benchmark: the
//! publishing and queue-depth steps both need, with the same guarantees.

use lapin::options::{BasicPublishOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel, Connection};

/// The local RabbitMQ (guest/guest, default vhost).
pub const URL: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";

/// Publishes every body to `queue` through the default exchange,
/// persistent, on a confirming `channel`; true when the broker confirmed
/// them all.
pub async fn publish(channel: &Channel, queue: &str, bodies: &[Vec<u8>]) -> lapin::Result<bool> {
    let properties = BasicProperties::default().with_delivery_mode(2);
    for body in bodies {
        let _confirm = channel
            .basic_publish(
                "".into(),
                queue.into(),
                BasicPublishOptions::default(),
                body,
                properties.clone(),
            )
            .await?;
    }
    Ok(channel.wait_for_confirms().await?.is_empty())
}

/// How many messages `queue` holds, asked on a channel of its own.
pub async fn depth(connection: &Connection, queue: &str) -> lapin::Result<u32> {
    let channel = connection.create_channel().await?;
    let passive = QueueDeclareOptions {
        passive: true,
        ..QueueDeclareOptions::default()
    };
    let declared = channel
        .queue_declare(queue.into(), passive, FieldTable::default())
        .await?;
    let _ = channel.close(200, "".into()).await;
    Ok(declared.message_count())
}
