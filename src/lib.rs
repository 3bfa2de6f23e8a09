//! intelmq-bridge: a gateway that lets CERTs and SOCs exchange security
//! events between IntelMQ, IDEA (CESNET Warden), n6 (CERT Polska) and
//! STIX 2.1, carrying IEP04 ids so that events never circle.
//!
//! # Layout
//!
//! - [`envelope`]: the hub type, the IEP04 envelope (and its AIL wire form).
//! - [`event`]: the envelope's payload, an IntelMQ message's checked fields.
//! - [`harmonization`]: IntelMQ's field table and value types, as data.
//! - [`formats`]: the [`formats::Format`] trait, one module per format, and
//!   the [`formats::Registry`] where formats are added.
//! - [`identity`]: loop and duplicate detection, the seen-store, fingerprints.
//! - [`pipeline`]: decode, hold split groups, encode; shared by every front end.
//! - [`input`]: splitting a byte stream into records (document, array, JSON Lines).
//! - [`dead_letter`]: keeping what cannot be handled, with its reason.
//! - [`outbox`]: the durable queue of messages for partners reached over HTTP.
//! - [`schema`]: the JSON Schemas of `schemas/`, compiled once.
//! - [`config`]: the `serve` configuration (TOML), checked at start.
//! - [`policy`]: the egress policy: which TLP levels and n6 restrictions
//!   each partner may receive.
//! - [`gateway`]: what `serve` does to one message, whatever the transport.
//! - [`transport`]: AMQP, HTTP and file inputs and outputs.
//! - [`telemetry`]: the service's counters and logs, one variant per event.
//! - [`auth`]: partners' bearer tokens on the HTTP ingest, stored hashed.
//! - [`rate_limit`]: the token bucket that limits a partner's requests.
//! - [`serve`]: the `serve` command: tasks, signals, shutdown.
//! - [`cli`]: the `intelmq-bridge` command line.
//! - [`error`]: the crate-wide error type.

pub mod auth;
pub mod cli;
pub mod config;
pub mod dead_letter;
pub mod envelope;
pub mod error;
pub mod event;
pub mod formats;
pub mod gateway;
pub mod harmonization;
pub mod identity;
pub mod input;
pub mod outbox;
pub mod pipeline;
pub mod policy;
pub mod rate_limit;
pub mod schema;
pub mod serve;
pub mod stages;
pub mod telemetry;
pub mod transport;

pub use envelope::Envelope;
pub use error::{Error, Result};
pub use event::Event;
