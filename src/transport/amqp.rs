//! AMQP (RabbitMQ) through lapin: one task per input queue.
//!
//! Each delivery is translated by the [`Gateway`], every output is
//! published persistent, `mandatory` and with publisher confirms, and the
//! delivery is acknowledged only once every output (and any dead letter)
//! is confirmed: at least once, nothing lost. An unroutable return, a nack
//! or a failed write puts the delivery back on its queue. Deliveries are
//! pipelined up to the input's prefetch window, so confirms overlap.
//!
//! When the broker goes away the task reconnects with a growing backoff;
//! unacknowledged deliveries come back from the broker. On shutdown it
//! stops consuming, waits for the deliveries in flight, and closes.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt as _;
use lapin::message::Delivery;
use lapin::options::{
    BasicAckOptions, BasicCancelOptions, BasicConsumeOptions, BasicNackOptions,
    BasicPublishOptions, BasicQosOptions, ConfirmSelectOptions, QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Channel, Confirmation, Connection, ConnectionProperties};
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::config::{Declare, InputConfig, PartnerConfig, PartnerTransport};
use crate::dead_letter::Stage;
use crate::error::{Error, Result};
use crate::gateway::{Failure, Gateway, Outcome};
use crate::telemetry::Counted;
use crate::transport::{OutboxAppend, Partners};

/// First wait before reconnecting; doubled on each failure up to [`MAX_BACKOFF`].
const MIN_BACKOFF: Duration = Duration::from_millis(250);
/// Longest wait between reconnection attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// A session that lasted this long resets the backoff.
const STABLE_SESSION: Duration = Duration::from_secs(30);
/// Wait before returning a delivery whose output failed, so that a partner
/// that refuses everything does not make the queue spin.
const RETRY_DELAY: Duration = Duration::from_secs(1);
/// How often the seen-store is made durable while messages flow.
const FLUSH_EVERY: Duration = Duration::from_secs(1);
/// Persistent messages (AMQP delivery mode 2), as IntelMQ publishes them.
const PERSISTENT: u8 = 2;

/// Header names of a dead letter.
pub mod headers {
    /// Why the message could not be translated.
    pub const REASON: &str = "x-intelmq-bridge-reason";
    /// `decode` or `encode`.
    pub const STAGE: &str = "x-intelmq-bridge-stage";
    /// The queue the message was consumed from.
    pub const INPUT_QUEUE: &str = "x-intelmq-bridge-input-queue";
    /// The partner it could not be encoded for (encode stage).
    pub const PARTNER: &str = "x-intelmq-bridge-partner";
}

/// One AMQP input: its queue, the gateway, and the partners it can reach.
pub struct AmqpInput {
    gateway: Arc<Gateway>,
    index: usize,
    config: InputConfig,
    partners: Arc<Partners>,
}

/// The publishing side of one session: a confirming channel per broker.
struct Outlets {
    channels: HashMap<String, Channel>,
}

type Pending = Pin<Box<dyn Future<Output = Result<Confirmation, lapin::Error>> + Send>>;

/// Where one published message went, to count it once confirmed.
#[derive(Debug, Clone, Copy)]
enum Target {
    /// Partner `index`.
    Partner(usize),
    /// The input's dead-letter queue.
    DeadLetter(Stage),
}

/// What one delivery waits for before it is acknowledged.
struct InFlight {
    input: usize,
    confirms: Vec<(Target, Pending)>,
    /// Outbox partners' messages in line for a commit, by partner index.
    appends: Vec<(usize, OutboxAppend)>,
    failed: Vec<String>,
}

fn transport_error(context: &str, error: impl std::fmt::Display) -> Error {
    Error::Transport(format!("{context}: {error}"))
}

impl AmqpInput {
    /// An input task for input `index` of the gateway's configuration.
    pub fn new(
        gateway: Arc<Gateway>,
        index: usize,
        config: InputConfig,
        partners: Arc<Partners>,
    ) -> Self {
        AmqpInput {
            gateway,
            index,
            config,
            partners,
        }
    }

    /// Consumes until `shutdown` turns true, reconnecting when the broker
    /// goes away.
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        let telemetry = self.gateway.telemetry();
        let mut backoff = MIN_BACKOFF;
        loop {
            let started = Instant::now();
            let outcome = self.session(&mut shutdown).await;
            telemetry.set_connected(&self.config.name, false);
            let error = match outcome {
                Ok(()) => return,
                Err(error) => error,
            };
            if started.elapsed() > STABLE_SESSION {
                backoff = MIN_BACKOFF;
            }
            tracing::warn!(input = %self.config.name, %error, ?backoff, "AMQP session ended; reconnecting");
            tokio::select! {
                _ = tokio::time::sleep(backoff) => {}
                _ = shutdown.changed() => return,
            }
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    }

    /// One connection's life: set up, consume, and on shutdown drain.
    async fn session(&self, shutdown: &mut watch::Receiver<bool>) -> Result<()> {
        let queue = self.config.queue_name();
        let name = format!(
            "intelmq-bridge {} input {}",
            self.gateway.origin(),
            self.config.name
        );
        let connection = connect(&self.config.url, &name).await?;
        let consuming = channel(&connection).await?;
        declare_queue(&consuming, queue, self.config.declare).await?;
        consuming
            .basic_qos(self.config.prefetch, BasicQosOptions::default())
            .await
            .map_err(|e| transport_error("basic.qos", e))?;
        let (outlets, connections) = self.open_outlets(&connection, &name).await?;
        let tag = format!("intelmq-bridge-{}-{}", self.config.name, std::process::id());
        let mut consumer = consuming
            .basic_consume(
                queue.into(),
                tag.as_str().into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await
            .map_err(|e| transport_error(&format!("basic.consume {queue}"), e))?;
        self.gateway
            .telemetry()
            .set_connected(&self.config.name, true);
        tracing::info!(input = %self.config.name, queue, "consuming");
        let mut in_flight: JoinSet<Result<()>> = JoinSet::new();
        let mut flush = tokio::time::interval(FLUSH_EVERY);
        let outcome = loop {
            tokio::select! {
                _ = shutdown.changed() => break Ok(()),
                Some(done) = in_flight.join_next(), if !in_flight.is_empty() => {
                    if let Err(error) = done.map_err(|e| transport_error("delivery task", e)).and_then(|r| r) {
                        break Err(error);
                    }
                }
                _ = flush.tick() => {
                    if let Err(error) = self.gateway.flush() {
                        tracing::error!(%error, "flushing the seen-store");
                    }
                }
                delivery = consumer.next() => match delivery {
                    None => break Err(Error::Transport(format!("{queue}: the broker cancelled the consumer"))),
                    Some(Err(error)) => break Err(transport_error(queue, error)),
                    Some(Ok(delivery)) => match self.handle(&delivery, &outlets).await {
                        Ok(waiting) => {
                            in_flight.spawn(finish(self.gateway.clone(), delivery, waiting));
                        }
                        Err(error) => break Err(error),
                    },
                },
            }
        };
        if outcome.is_ok() {
            tracing::info!(input = %self.config.name, in_flight = in_flight.len(), "stopping: draining deliveries in flight");
            let _ = consuming
                .basic_cancel(tag.as_str().into(), BasicCancelOptions::default())
                .await;
        }
        while let Some(done) = in_flight.join_next().await {
            if let Err(error) = done
                .map_err(|e| transport_error("delivery task", e))
                .and_then(|r| r)
            {
                tracing::warn!(%error, "delivery left unacknowledged; the broker will redeliver it");
            }
        }
        if let Err(error) = self.gateway.flush() {
            tracing::error!(%error, "flushing the seen-store");
        }
        for other in connections.iter().chain([&connection]) {
            let _ = other.close(200, "shutdown".into()).await;
        }
        outcome
    }

    /// Opens a confirming channel on the input's broker (for the dead
    /// letters) and on every partner's, declaring the queues to publish
    /// into; returns the channels and the extra connections it opened.
    async fn open_outlets(
        &self,
        connection: &Connection,
        name: &str,
    ) -> Result<(Outlets, Vec<Connection>)> {
        let mut connections = vec![];
        let mut outlets = Outlets {
            channels: HashMap::new(),
        };
        let input_outlet = channel(connection).await?;
        confirm(&input_outlet).await?;
        // The dead letters are declared like the input queue: IntelMQ's
        // arguments for an IntelMQ queue, and passively when the input is.
        declare_queue(
            &input_outlet,
            &self.config.dead_letter_name(),
            self.config.declare,
        )
        .await?;
        outlets
            .channels
            .insert(self.config.url.clone(), input_outlet);
        for partner in self.amqp_partners() {
            let url = partner.broker_url();
            if !outlets.channels.contains_key(url) {
                let other = connect(url, name).await?;
                let outlet = channel(&other).await?;
                confirm(&outlet).await?;
                outlets.channels.insert(url.to_owned(), outlet);
                connections.push(other);
            }
            if let (Some(queue), Some(outlet)) = (&partner.queue, outlets.channels.get(url)) {
                declare_queue(outlet, queue, partner.declare).await?;
            }
        }
        Ok((outlets, connections))
    }

    /// Partners this input routes to that are reached over AMQP.
    fn amqp_partners(&self) -> impl Iterator<Item = &PartnerConfig> {
        self.gateway
            .routed_partners(self.index)
            .map(|index| &self.partners.configs[index])
            .filter(|partner| partner.transport == PartnerTransport::Amqp)
    }

    /// Translates one delivery and starts publishing what comes out.
    async fn handle(&self, delivery: &Delivery, outlets: &Outlets) -> Result<InFlight> {
        let outcome = self
            .gateway
            .process(self.index, &delivery.data, delivery.redelivered)?;
        let mut waiting = InFlight {
            input: self.index,
            confirms: Vec::new(),
            appends: Vec::new(),
            failed: Vec::new(),
        };
        match outcome {
            Outcome::Dropped(_) => {}
            Outcome::Undecodable(failure) => {
                self.dead_letter(delivery, &failure, outlets, &mut waiting)
                    .await?
            }
            Outcome::Routed {
                deliveries,
                failures,
                ..
            } => {
                for failure in &failures {
                    self.dead_letter(delivery, failure, outlets, &mut waiting)
                        .await?;
                }
                for routed in deliveries {
                    let partner = &self.partners.configs[routed.partner];
                    if let Some(file) = self.partners.file(routed.partner) {
                        match file.write(&routed.messages) {
                            Ok(()) => self.gateway.telemetry().record(Counted::Published {
                                partner: &partner.name,
                                format: self.gateway.partner_format(routed.partner),
                                messages: routed.messages.len() as u64,
                            }),
                            Err(error) => {
                                tracing::error!(partner = %partner.name, %error, "writing");
                                waiting.failed.push(partner.name.clone());
                            }
                        }
                        continue;
                    }
                    if partner.transport.uses_outbox() {
                        // In line now, so the outbox keeps the input's
                        // order; durable before the delivery is
                        // acknowledged, in a commit shared with the other
                        // deliveries in flight.
                        match self.partners.enqueue(routed.partner, routed.messages) {
                            Ok(append) => waiting.appends.push((routed.partner, append)),
                            Err(error) => {
                                tracing::error!(partner = %partner.name, %error, "appending to the outbox");
                                waiting.failed.push(partner.name.clone());
                            }
                        }
                        continue;
                    }
                    let outlet = outlets.channels.get(partner.broker_url()).ok_or_else(|| {
                        Error::Transport(format!("no channel for partner {}", partner.name))
                    })?;
                    let (exchange, routing_key) = partner.destination();
                    for message in &routed.messages {
                        let pending =
                            publish(outlet, exchange, routing_key, message, json_properties())
                                .await?;
                        waiting
                            .confirms
                            .push((Target::Partner(routed.partner), pending));
                    }
                }
            }
        }
        Ok(waiting)
    }

    /// Publishes the delivery, body and headers as they arrived, to the
    /// input's dead-letter queue with the reason, stage and input queue.
    async fn dead_letter(
        &self,
        delivery: &Delivery,
        failure: &Failure,
        outlets: &Outlets,
        waiting: &mut InFlight,
    ) -> Result<()> {
        tracing::warn!(input = %self.config.name, stage = failure.stage.name(), partner = ?failure.partner, reason = %failure.reason, "dead letter");
        let mut table = delivery.properties.headers().clone().unwrap_or_default();
        let mut set = |key: &str, value: &str| {
            table.insert(key.into(), AMQPValue::LongString(value.into()));
        };
        set(headers::REASON, &failure.reason);
        set(headers::STAGE, failure.stage.name());
        set(headers::INPUT_QUEUE, self.config.queue_name());
        if let Some(partner) = &failure.partner {
            set(headers::PARTNER, partner);
        }
        let properties = delivery
            .properties
            .clone()
            .with_headers(table)
            .with_delivery_mode(PERSISTENT);
        let outlet = outlets
            .channels
            .get(&self.config.url)
            .ok_or_else(|| Error::Transport("no channel for the dead letters".into()))?;
        let queue = self.config.dead_letter_name();
        let pending = publish(outlet, "", &queue, &delivery.data, properties).await?;
        waiting
            .confirms
            .push((Target::DeadLetter(failure.stage), pending));
        Ok(())
    }
}

/// Waits for every output of one delivery, then acknowledges it; when any
/// failed, returns it to the queue (after a pause) to be tried again.
async fn finish(gateway: Arc<Gateway>, delivery: Delivery, waiting: InFlight) -> Result<()> {
    let mut failed = waiting.failed;
    for (partner, append) in waiting.appends {
        if let Err(error) = append.settle().await {
            let name = gateway.partner_name(partner);
            tracing::error!(partner = name, %error, "appending to the outbox");
            failed.push(name.to_owned());
        }
    }
    let mut confirmed = Vec::new();
    for (destination, pending) in waiting.confirms {
        let target = match destination {
            Target::Partner(index) => gateway.partner_name(index),
            Target::DeadLetter(_) => "dead-letter",
        };
        let confirmation = pending
            .await
            .map_err(|e| transport_error("publisher confirm", e))?;
        match delivered(confirmation) {
            Ok(()) => confirmed.push(destination),
            Err(reason) => {
                tracing::error!(target, %reason, "not delivered");
                failed.push(target.to_owned());
            }
        }
    }
    let telemetry = gateway.telemetry();
    if failed.is_empty() {
        let input = gateway.input_name(waiting.input);
        for destination in confirmed {
            telemetry.record(match destination {
                Target::Partner(index) => Counted::Published {
                    partner: gateway.partner_name(index),
                    format: gateway.partner_format(index),
                    messages: 1,
                },
                Target::DeadLetter(stage) => Counted::DeadLettered { input, stage },
            });
        }
        return delivery
            .acker
            .ack(BasicAckOptions::default())
            .await
            .map(drop)
            .map_err(|e| transport_error("basic.ack", e));
    }
    for partner in &failed {
        telemetry.record(Counted::PublishFailed { partner });
    }
    tokio::time::sleep(RETRY_DELAY).await;
    let requeue = BasicNackOptions {
        multiple: false,
        requeue: true,
    };
    delivery
        .acker
        .nack(requeue)
        .await
        .map(drop)
        .map_err(|e| transport_error("basic.nack", e))
}

/// Whether a confirmation means delivered: with `mandatory`, a message no
/// queue is bound for comes back as an acknowledged return, which is as much
/// a failure as a nack.
fn delivered(confirmation: Confirmation) -> std::result::Result<(), String> {
    match confirmation {
        Confirmation::Ack(None) => Ok(()),
        Confirmation::Ack(Some(returned)) => Err(format!(
            "unroutable ({}): no queue is bound",
            returned.reply_text
        )),
        Confirmation::Nack(_) => Err("the broker refused the message (nack)".into()),
        Confirmation::NotRequested => Err("publisher confirms are off".into()),
    }
}

/// Publishes to one partner for front ends that have no AMQP session of
/// their own (the HTTP ingest): connects on first use, waits for every
/// confirm, and connects afresh after a failure.
pub struct Publisher {
    partner: PartnerConfig,
    name: String,
    link: tokio::sync::Mutex<Option<(Connection, Channel)>>,
}

impl Publisher {
    /// A publisher for `partner`, naming its connection `name`.
    pub fn new(partner: &PartnerConfig, name: String) -> Self {
        Publisher {
            partner: partner.clone(),
            name,
            link: tokio::sync::Mutex::new(None),
        }
    }

    /// Publishes the messages and returns once the broker confirmed them all.
    pub async fn publish(&self, messages: &[Vec<u8>]) -> Result<()> {
        let mut link = self.link.lock().await;
        let outcome = self.publish_on(&mut link, messages).await;
        if outcome.is_err() {
            *link = None;
        }
        outcome
    }

    async fn publish_on(
        &self,
        link: &mut Option<(Connection, Channel)>,
        messages: &[Vec<u8>],
    ) -> Result<()> {
        let outlet = match link {
            Some((_, outlet)) => outlet,
            None => {
                let connection = connect(self.partner.broker_url(), &self.name).await?;
                let outlet = channel(&connection).await?;
                confirm(&outlet).await?;
                if let Some(queue) = &self.partner.queue {
                    declare_queue(&outlet, queue, self.partner.declare).await?;
                }
                &link.insert((connection, outlet)).1
            }
        };
        let (exchange, routing_key) = self.partner.destination();
        let mut pending = Vec::new();
        for message in messages {
            pending.push(publish(outlet, exchange, routing_key, message, json_properties()).await?);
        }
        for confirm in pending {
            let confirmation = confirm
                .await
                .map_err(|e| transport_error("publisher confirm", e))?;
            delivered(confirmation)
                .map_err(|reason| Error::Transport(format!("{}: {reason}", self.partner.name)))?;
        }
        Ok(())
    }
}

/// Properties of a translated message: persistent JSON.
fn json_properties() -> BasicProperties {
    BasicProperties::default()
        .with_delivery_mode(PERSISTENT)
        .with_content_type("application/json".into())
}

async fn publish(
    channel: &Channel,
    exchange: &str,
    routing_key: &str,
    body: &[u8],
    properties: BasicProperties,
) -> Result<Pending> {
    let options = BasicPublishOptions {
        mandatory: true,
        ..BasicPublishOptions::default()
    };
    let confirm = channel
        .basic_publish(
            exchange.into(),
            routing_key.into(),
            options,
            body,
            properties,
        )
        .await
        .map_err(|e| transport_error(&format!("basic.publish {exchange}/{routing_key}"), e))?;
    Ok(Box::pin(confirm))
}

/// Connects to the broker at `url`, naming the connection `name` for the
/// broker's management tools; must run inside the tokio runtime.
pub async fn connect(url: &str, name: &str) -> Result<Connection> {
    let properties = ConnectionProperties::default().with_connection_name(name.into());
    Connection::connect(url, properties)
        .await
        .map_err(|e| transport_error(&redact(url), e))
}

async fn channel(connection: &Connection) -> Result<Channel> {
    connection
        .create_channel()
        .await
        .map_err(|e| transport_error("channel.open", e))
}

async fn confirm(channel: &Channel) -> Result<()> {
    channel
        .confirm_select(ConfirmSelectOptions::default())
        .await
        .map_err(|e| transport_error("confirm.select", e))
}

/// Declares `queue` as asked. IntelMQ's declaration must be matched
/// exactly (durable, `x-queue-mode=lazy`) or RabbitMQ answers 406.
pub async fn declare_queue(channel: &Channel, queue: &str, declare: Declare) -> Result<()> {
    let mut arguments = FieldTable::default();
    let options = match declare {
        Declare::Passive => QueueDeclareOptions {
            passive: true,
            ..QueueDeclareOptions::default()
        },
        Declare::Durable => QueueDeclareOptions::durable(),
        Declare::Intelmq => {
            arguments.insert("x-queue-mode".into(), AMQPValue::LongString("lazy".into()));
            QueueDeclareOptions::durable()
        }
    };
    channel
        .queue_declare(queue.into(), options, arguments)
        .await
        .map(drop)
        .map_err(|e| transport_error(&format!("queue.declare {queue}"), e))
}

/// The URL without its password, for messages.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let credentials = &url[scheme + 3..at];
            let user = credentials.split(':').next().unwrap_or_default();
            format!("{}{user}:***{}", &url[..scheme + 3], &url[at..])
        }
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_not_logged() {
        assert_eq!(
            redact("amqp://guest:secret@127.0.0.1:5672/%2f"),
            "amqp://guest:***@127.0.0.1:5672/%2f"
        );
        assert_eq!(redact("amqp://127.0.0.1"), "amqp://127.0.0.1");
    }
}
