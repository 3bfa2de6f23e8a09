//! n6 (CERT Polska): the events of n6's REST and Stream APIs, and of its
//! internal pipeline, as IntelMQ events and back.
//!
//! - Decoding ([`decode`]) accepts the API form (`…Z` times, `type` on
//!   Stream events, anonymised `hidden.*` sources and `adip`) and the
//!   pipeline form (naive UTC times with a space, `rid`). An event with
//!   several `address` items becomes that many IntelMQ events, linked as a
//!   split group; n6 fields IntelMQ has no field for go to `extra.n6.*`.
//! - Encoding ([`encode`]) writes the API form and merges a split group
//!   back into one event with an `address` list. What n6 cannot hold
//!   travels in n6's `intelmq` custom field, so a round trip is exact.
//! - The tables (categories, fields, n6's constraints, restriction and
//!   confidence levels) are data in `mappings/n6/` ([`mapping`]).

mod decode;
mod encode;
pub mod mapping;

use std::fmt::Write as _;

use chrono::{Datelike, SecondsFormat, Timelike};
use serde_json::Value;

use super::{DecodeContext, EncodeContext, Format};
use crate::envelope::Envelope;
use crate::error::Result;
use crate::harmonization::parse_datetime;

/// Name of this format.
pub const NAME: &str = "n6";
/// n6's custom field for what only IntelMQ has (as n6's own adapter uses it).
pub const CARRIER: &str = "intelmq";
/// Key in [`CARRIER`] listing the per-event differences of a merged group.
pub const SPLIT: &str = "split";
/// Where n6 fields without an IntelMQ counterpart go.
pub const EXTRA_PREFIX: &str = "extra.n6.";
/// Sub-key of [`EXTRA_PREFIX`] for n6 keys IntelMQ's key rule refuses
/// (the pipeline's `_…` keys), kept together as one object.
pub const INTERNAL: &str = "internal";

/// The n6 event format.
pub struct N6;

impl Format for N6 {
    fn name(&self) -> &'static str {
        NAME
    }

    /// An object with n6's `id`, `source` and `category` as strings: no
    /// other format has all three bare keys.
    fn recognises(&self, message: &Value) -> bool {
        message.as_object().is_some_and(|object| {
            ["id", "source", "category"]
                .iter()
                .all(|key| object.get(*key).is_some_and(Value::is_string))
        })
    }

    fn decode(&self, message: Value, context: &DecodeContext) -> Result<Vec<Envelope>> {
        decode::decode(message, context)
    }

    fn encode(&self, events: &[Envelope], context: &EncodeContext) -> Result<Vec<Value>> {
        encode::encode(events, context)
    }

    /// The messages written with their `intelmq` field's meta as it is,
    /// without building it as a [`Value`] first.
    fn encode_lines(
        &self,
        events: &[Envelope],
        context: &EncodeContext,
        out: &mut Vec<u8>,
    ) -> Result<usize> {
        encode::encode_lines(events, context, out)
    }

    fn merges_groups(&self) -> bool {
        true
    }
}

/// The `restriction` the encoder writes for an event: the egress policy
/// must judge an event by what an n6 partner would actually receive.
pub fn restriction(payload: &crate::event::Event) -> &str {
    encode::restriction(payload, mapping::Tables::get())
}

/// A time in n6's API form, `YYYY-MM-DDTHH:MM:SS[.ffffff]Z`, from any
/// accepted time text (IntelMQ's `+00:00`, n6's pipeline form).
pub fn api_time(text: &str) -> Option<String> {
    let time = parse_datetime(text)?;
    let micros = time.nanosecond() / 1000;
    // RFC 3339 in whole seconds is the same text for four-digit years and
    // no leap second, without parsing a format string each time.
    let mut api = if (0..=9999).contains(&time.year()) && micros < 1_000_000 {
        time.to_rfc3339_opts(SecondsFormat::Secs, true)
    } else {
        format!("{}Z", time.format("%Y-%m-%dT%H:%M:%S"))
    };
    if micros != 0 {
        api.pop();
        let _ = write!(api, ".{micros:06}Z");
    }
    Some(api)
}
