//! Transports: how bytes arrive and leave. They know no format; they hand
//! each message to the [`crate::gateway::Gateway`] and deliver what it
//! returns, acknowledging the input only after every output is delivered.
//!
//! - [`amqp`]: RabbitMQ queues in, exchanges and queues out (lapin).
//! - [`http`]: `/metrics`, `/healthz` and the `POST /v1/events` ingest (warp).
//! - [`file`](mod@file): JSON Lines appended to a file or stdout.
//! - [`push`]: POSTing what waits in the [`Outbox`] to `http` partners.
//! - [`pull`]: `GET /v1/partners/{name}/events`, the outbox of `pull`
//!   partners served page by page.
//!
//! [`Partners`] holds every partner's way out for the HTTP ingest (and the
//! outbox for every front end); an AMQP input publishes to AMQP partners on
//! channels of its own session.

pub mod amqp;
pub mod file;
pub mod http;
pub mod pull;
pub mod push;
pub mod tls;

use std::future::Future;
use std::sync::Arc;

use tokio::sync::{watch, Notify};

use crate::auth::Tokens;
use crate::config::{Config, PartnerConfig, PartnerTransport};
use crate::error::{Error, Result};
use crate::outbox::{self, Outbox};
use crate::telemetry::Telemetry;
use amqp::Publisher;
use file::FileSink;

/// How one partner is reached outside an AMQP input's own session.
enum Sink {
    /// Appended to a file or stdout.
    File(FileSink),
    /// Published on a connection of the partner's own.
    Amqp(Box<Publisher>),
    /// Appended to the outbox; `wake` tells the partner's push worker that
    /// there is something new (nobody waits on it for a pull partner).
    Outbox {
        /// Notified after every append.
        wake: Arc<Notify>,
    },
}

/// Messages in line for the outbox, and whom to wake once they are in.
pub struct OutboxAppend {
    queued: outbox::Queued,
    outbox: Arc<Outbox>,
    wake: Arc<Notify>,
}

impl OutboxAppend {
    /// Returns once the messages are durable, then wakes the partner's
    /// push worker.
    pub async fn settle(self) -> Result<()> {
        let OutboxAppend {
            queued,
            outbox,
            wake,
        } = self;
        outbox::blocking(&outbox, move |outbox| queued.wait(outbox)).await?;
        wake.notify_one();
        Ok(())
    }
}

/// Where the service's partners live, by partner index.
pub struct Partners {
    pub(crate) configs: Vec<PartnerConfig>,
    sinks: Vec<Sink>,
    /// The outbox, when some partner is `http` or `pull`.
    outbox: Option<Arc<Outbox>>,
    /// The partners' token digests: who may pull.
    tokens: Tokens,
}

impl Partners {
    /// Opens the file partners and, when some partner is `http` or `pull`,
    /// the outbox in the `[store]` directory; AMQP partners connect on first
    /// use (AMQP inputs publish on channels of their own session instead).
    pub fn open(config: &Config, telemetry: Arc<Telemetry>) -> Result<Self> {
        let outbox = match &config.store {
            Some(store) if config.partners.iter().any(|p| p.transport.uses_outbox()) => {
                let path = store.outbox_path();
                std::fs::create_dir_all(&store.path).map_err(|e| {
                    Error::Config(format!("store.path: {}: {e}", store.path.display()))
                })?;
                let outbox = Outbox::open(&path, telemetry.clone())?;
                // Every outbox partner's gauge is there from the start.
                for partner in config.partners.iter().filter(|p| p.transport.uses_outbox()) {
                    telemetry.set_outbox_pending(&partner.name, outbox.depth(&partner.name)?);
                }
                Some(Arc::new(outbox))
            }
            _ => None,
        };
        let sinks = config
            .partners
            .iter()
            .map(|partner| match (&partner.transport, &partner.path) {
                (PartnerTransport::File, Some(path)) => {
                    FileSink::open(path, &partner.name).map(Sink::File)
                }
                (PartnerTransport::Http | PartnerTransport::Pull, _) => Ok(Sink::Outbox {
                    wake: Arc::new(Notify::new()),
                }),
                _ => {
                    let name = format!("intelmq-bridge {} partner {}", config.origin, partner.name);
                    Ok(Sink::Amqp(Box::new(Publisher::new(partner, name))))
                }
            })
            .collect::<Result<_>>()?;
        Ok(Partners {
            configs: config.partners.clone(),
            sinks,
            outbox,
            tokens: Tokens::from_config(config)?,
        })
    }

    /// Delivers messages to partner `index` from a front end without an
    /// AMQP session of the partner's broker (the HTTP ingest; an AMQP input
    /// for outbox partners); returns once they are written, confirmed, or
    /// durable in the outbox.
    pub async fn deliver(&self, index: usize, messages: &[Vec<u8>]) -> Result<()> {
        match self.sinks.get(index) {
            Some(Sink::File(file)) => Ok(file.write(messages)?),
            Some(Sink::Amqp(publisher)) => publisher.publish(messages).await,
            Some(Sink::Outbox { .. }) => self.enqueue(index, messages.to_vec())?.settle().await,
            None => Err(Error::Transport(format!("no partner {index}"))),
        }
    }

    /// The file of partner `index`, when it is a file partner.
    pub fn file(&self, index: usize) -> Option<&FileSink> {
        match self.sinks.get(index) {
            Some(Sink::File(file)) => Some(file),
            _ => None,
        }
    }

    /// The outbox, when some partner is `http` or `pull`.
    pub fn outbox(&self) -> Option<&Arc<Outbox>> {
        self.outbox.as_ref()
    }

    /// Puts messages for outbox partner `index` in line, in the order of
    /// the calls; they are durable once the returned append is settled.
    /// An AMQP input enqueues while it reads and settles with the other
    /// outputs of a delivery, so deliveries in flight share commits.
    pub fn enqueue(&self, index: usize, messages: Vec<Vec<u8>>) -> Result<OutboxAppend> {
        let (Some(outbox), Some(Sink::Outbox { wake }), Some(config)) = (
            self.outbox.as_ref(),
            self.sinks.get(index),
            self.configs.get(index),
        ) else {
            return Err(Error::Store(format!("partner {index} has no outbox")));
        };
        Ok(OutboxAppend {
            queued: outbox.enqueue(&config.name, messages),
            outbox: outbox.clone(),
            wake: wake.clone(),
        })
    }

    /// What wakes the push worker of partner `index` when messages for it
    /// are appended (an outbox partner's only).
    pub fn waker(&self, index: usize) -> Option<Arc<Notify>> {
        match self.sinks.get(index) {
            Some(Sink::Outbox { wake }) => Some(wake.clone()),
            _ => None,
        }
    }

    /// The partners' bearer-token digests, to know who pulls.
    pub fn tokens(&self) -> &Tokens {
        &self.tokens
    }
}

/// Runs `work` unless `shutdown` turns true first (`None` then): how the
/// service's background tasks wait without delaying a shutdown.
pub(crate) async fn or_stop<F: Future>(
    shutdown: &mut watch::Receiver<bool>,
    work: F,
) -> Option<F::Output> {
    tokio::select! {
        biased;
        // Err: the sender is gone, which also means stop.
        _ = shutdown.wait_for(|stop| *stop) => None,
        output = work => Some(output),
    }
}
