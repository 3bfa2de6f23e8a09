//! Transports: how bytes arrive and leave. They know no format; they hand
//! each message to the [`crate::gateway::Gateway`] and deliver what it
//! returns, acknowledging the input only after every output is delivered.
//!
//! - [`amqp`]: RabbitMQ queues in, exchanges and queues out (lapin).
//! - [`http`]: `/metrics`, `/healthz` and the `POST /v1/events` ingest (warp).
//! - [`file`](mod@file): JSON Lines appended to a file or stdout.

pub mod amqp;
pub mod file;
pub mod http;

use crate::config::{PartnerConfig, PartnerTransport};
use crate::error::Result;
use file::FileSink;

/// Where the service's partners live, by partner index.
pub struct Partners {
    pub(crate) configs: Vec<PartnerConfig>,
    files: Vec<Option<FileSink>>,
}

impl Partners {
    /// Opens the file partners; AMQP partners connect per session.
    pub fn open(configs: &[PartnerConfig]) -> Result<Self> {
        let files = configs
            .iter()
            .map(|partner| match (&partner.transport, &partner.path) {
                (PartnerTransport::File, Some(path)) => {
                    FileSink::open(path, &partner.name).map(Some)
                }
                _ => Ok(None),
            })
            .collect::<Result<_>>()?;
        Ok(Partners {
            configs: configs.to_vec(),
            files,
        })
    }

    /// The file of partner `index`, when it is a file partner.
    pub fn file(&self, index: usize) -> Option<&FileSink> {
        self.files.get(index).and_then(Option::as_ref)
    }
}
