//! Transports: how bytes arrive and leave. They know no format; they hand
//! each message to the [`crate::gateway::Gateway`] and deliver what it
//! returns, acknowledging the input only after every output is delivered.
//!
//! - [`amqp`]: RabbitMQ queues in, exchanges and queues out (lapin).
//! - [`http`]: `/metrics`, `/healthz` and the `POST /v1/events` ingest (warp).
//! - [`file`](mod@file): JSON Lines appended to a file or stdout.
//!
//! [`Partners`] holds every partner's way out for the HTTP ingest; an AMQP
//! input publishes on channels of its own session.

pub mod amqp;
pub mod file;
pub mod http;

use crate::config::{PartnerConfig, PartnerTransport};
use crate::error::Result;
use amqp::Publisher;
use file::FileSink;

/// How one partner is reached outside an AMQP input's own session.
enum Sink {
    /// Appended to a file or stdout.
    File(FileSink),
    /// Published on a connection of the partner's own.
    Amqp(Box<Publisher>),
}

/// Where the service's partners live, by partner index.
pub struct Partners {
    pub(crate) configs: Vec<PartnerConfig>,
    sinks: Vec<Sink>,
}

impl Partners {
    /// Opens the file partners; AMQP partners connect on first use (AMQP
    /// inputs publish on channels of their own session instead).
    pub fn open(origin: &str, configs: &[PartnerConfig]) -> Result<Self> {
        let sinks = configs
            .iter()
            .map(|partner| match (&partner.transport, &partner.path) {
                (PartnerTransport::File, Some(path)) => {
                    FileSink::open(path, &partner.name).map(Sink::File)
                }
                _ => {
                    let name = format!("intelmq-bridge {origin} partner {}", partner.name);
                    Ok(Sink::Amqp(Box::new(Publisher::new(partner, name))))
                }
            })
            .collect::<Result<_>>()?;
        Ok(Partners {
            configs: configs.to_vec(),
            sinks,
        })
    }

    /// Delivers messages to partner `index` from a front end without an
    /// AMQP session (the HTTP ingest); returns once they are written or
    /// confirmed.
    pub async fn deliver(&self, index: usize, messages: &[Vec<u8>]) -> Result<()> {
        match self.sinks.get(index) {
            Some(Sink::File(file)) => Ok(file.write(messages)?),
            Some(Sink::Amqp(publisher)) => publisher.publish(messages).await,
            None => Err(crate::error::Error::Transport(format!(
                "no partner {index}"
            ))),
        }
    }

    /// The file of partner `index`, when it is a file partner.
    pub fn file(&self, index: usize) -> Option<&FileSink> {
        match self.sinks.get(index) {
            Some(Sink::File(file)) => Some(file),
            _ => None,
        }
    }
}
