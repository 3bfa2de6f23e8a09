//! The adapter seam: one [`Format`] trait that every message format
//! implements, and the [`Registry`], the single place where a format is added.
//!
//! A format never knows which transport carried its bytes; it turns native
//! JSON messages into envelopes and envelopes into native JSON messages.

mod flat_object;
pub mod idea;
pub mod intelmq;
pub mod json;
pub mod n6;
pub mod stix;

use std::borrow::Cow;
use std::sync::OnceLock;

use base64::Engine as _;
use serde_json::Value;

use crate::envelope::Envelope;
use crate::error::{Error, Result};
use crate::harmonization::Harmonization;

/// What decoding needs to know about the instance it runs in.
#[derive(Debug, Clone)]
pub struct DecodeContext {
    /// This instance's name, the origin of messages that arrive without meta.
    pub origin: String,
    /// The field rules payloads are checked against.
    pub harmonization: &'static Harmonization,
}

/// What encoding needs to know about the instance and the receiving partner.
#[derive(Debug, Clone)]
pub struct EncodeContext {
    /// This instance's name (IDEA `Node.Name`, n6 `source`, STIX identity).
    pub origin: String,
    /// Whether IntelMQ output carries the envelope's meta in `extra.iep04`,
    /// so that ids survive a hop through IntelMQ bots.
    pub meta_in_extra: bool,
    /// IDEA's `Node` list naming this instance alone: the same for every
    /// message, so made once ([`EncodeContext::idea_node`]).
    idea_node: PerOrigin<Value>,
    /// The id of the STIX identity naming this instance, made once
    /// ([`EncodeContext::stix_producer`]).
    stix_producer: PerOrigin<String>,
}

/// Something made from [`EncodeContext::origin`] on first use and kept
/// with the origin it was made from, so that it is made again only should
/// `origin` (a public field) have been changed since.
#[derive(Debug, Clone)]
struct PerOrigin<T>(OnceLock<(String, T)>);

impl<T: Clone> PerOrigin<T> {
    /// Nothing made yet.
    fn new() -> Self {
        PerOrigin(OnceLock::new())
    }

    /// What `make` makes from `origin`: kept from the first call, and made
    /// anew on each call for any other origin.
    fn get(&self, origin: &str, make: impl Fn(&str) -> T) -> Cow<'_, T> {
        let (made_from, made) = self.0.get_or_init(|| (origin.to_owned(), make(origin)));
        if made_from == origin {
            Cow::Borrowed(made)
        } else {
            Cow::Owned(make(origin))
        }
    }
}

impl DecodeContext {
    /// A context for an instance named `origin`, with IntelMQ 3.5's harmonization.
    pub fn new(origin: &str) -> Self {
        DecodeContext {
            origin: origin.to_owned(),
            harmonization: Harmonization::intelmq(),
        }
    }
}

impl EncodeContext {
    /// A context for an instance named `origin`, meta not exported.
    pub fn new(origin: &str) -> Self {
        EncodeContext {
            origin: origin.to_owned(),
            meta_in_extra: false,
            idea_node: PerOrigin::new(),
            stix_producer: PerOrigin::new(),
        }
    }

    /// IDEA's `Node` list naming this instance alone, as `make` makes it
    /// from `origin`: made on first use, and again only should `origin`
    /// have been changed since.
    pub(crate) fn idea_node(&self, make: impl Fn(&str) -> Value) -> Cow<'_, Value> {
        self.idea_node.get(&self.origin, make)
    }

    /// The id of the STIX identity naming this instance, as `make` makes it
    /// from `origin`: made on first use, and again only should `origin`
    /// have been changed since.
    pub(crate) fn stix_producer(&self, make: impl Fn(&str) -> String) -> Cow<'_, str> {
        match self.stix_producer.get(&self.origin, make) {
            Cow::Borrowed(id) => Cow::Borrowed(id),
            Cow::Owned(id) => Cow::Owned(id),
        }
    }
}

/// IntelMQ's `raw` for a decoded native message: base64 of its JSON text,
/// as IntelMQ parsers keep the line they parsed.
pub fn raw_field(message: &Value) -> Value {
    let mut text = Vec::with_capacity(1024);
    json::write_value(&mut text, message);
    Value::String(base64::engine::general_purpose::STANDARD.encode(text))
}

/// A message format the bridge translates from and to.
pub trait Format: Send + Sync {
    /// The name used on the command line and in `meta.format`.
    fn name(&self) -> &'static str;

    /// Whether a native message has this format's shape (`--from auto`).
    fn recognises(&self, message: &Value) -> bool;

    /// Decodes one native message into envelopes: several when a
    /// multi-value message is split into linked events.
    fn decode(&self, message: Value, context: &DecodeContext) -> Result<Vec<Envelope>>;

    /// Decodes one native message from its JSON text straight into
    /// envelopes, without building the message as a [`Value`] first.
    /// `None` when the format has no such path, or the text is anything but
    /// a plain message that the path takes (an envelope, an error, a
    /// repeated key, ...): then the parsed text goes to [`Format::decode`],
    /// which gives the same result and the error messages.
    fn decode_text(&self, _text: &str, _context: &DecodeContext) -> Option<Vec<Envelope>> {
        None
    }

    /// Encodes one envelope, or a complete split group, into native messages.
    fn encode(&self, events: &[Envelope], context: &EncodeContext) -> Result<Vec<Value>>;

    /// [`Format::encode`] written as JSON Lines onto `out`, one message a
    /// line; returns how many messages. A format overrides it when it can
    /// write its messages without building them as [`Value`] trees first.
    fn encode_lines(
        &self,
        events: &[Envelope],
        context: &EncodeContext,
        out: &mut Vec<u8>,
    ) -> Result<usize> {
        let messages = self.encode(events, context)?;
        for message in &messages {
            json::write_value(out, message);
            out.push(b'\n');
        }
        Ok(messages.len())
    }

    /// Whether [`Format::encode`] merges a split group into one message, so
    /// that callers should hand it whole groups.
    fn merges_groups(&self) -> bool {
        false
    }

    /// Checks a native message as strictly as the format's own tools do.
    fn validate(&self, message: &Value, context: &DecodeContext) -> Result<()> {
        self.decode(message.clone(), context).map(drop)
    }
}

/// Every format the bridge knows, looked up by name or recognised by shape.
pub struct Registry {
    formats: Vec<Box<dyn Format>>,
}

impl Registry {
    /// The formats this build supports. Adding a format means adding it here.
    /// Recognition tries them in this order, so the permissive flat IntelMQ
    /// check comes last.
    pub fn standard() -> Self {
        Registry {
            formats: vec![
                Box::new(idea::Idea),
                Box::new(n6::N6),
                Box::new(stix::Stix),
                Box::new(intelmq::IntelMq),
            ],
        }
    }

    /// The format called `name`.
    pub fn get(&self, name: &str) -> Result<&dyn Format> {
        self.formats
            .iter()
            .find(|format| format.name() == name)
            .map(Box::as_ref)
            .ok_or_else(|| {
                Error::shape(format!(
                    "unknown format {name:?} (known: {})",
                    self.names().join(", ")
                ))
            })
    }

    /// The names of all formats, in registration order.
    pub fn names(&self) -> Vec<&'static str> {
        self.formats.iter().map(|format| format.name()).collect()
    }

    /// The first format that recognises the message's shape.
    pub fn recognise(&self, message: &Value) -> Option<&dyn Format> {
        self.formats
            .iter()
            .find(|format| format.recognises(message))
            .map(Box::as_ref)
    }
}

/// The envelopes of each fixture file in `folder` (under the crate's root),
/// a file's together, for the encoders' tests: a file holds JSON documents,
/// one after another or as a list, each an envelope or a flat IntelMQ
/// message.
#[cfg(test)]
pub(crate) fn fixture_envelopes(folder: &str, context: &DecodeContext) -> Vec<Vec<Envelope>> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut paths: Vec<_> = std::fs::read_dir(root.join(folder))
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .collect();
    paths.sort();
    let decode = |message: Value| match Envelope::wire_form(&message) {
        Some(_) => Envelope::from_value(message, context.harmonization).map(|one| vec![one]),
        None => intelmq::IntelMq.decode(message, context),
    };
    paths
        .iter()
        .map(|path| {
            let text = std::fs::read_to_string(path).unwrap();
            let mut events = Vec::new();
            for document in serde_json::Deserializer::from_str(&text).into_iter::<Value>() {
                let messages = match document.unwrap() {
                    Value::Array(items) => items,
                    one => vec![one],
                };
                for message in messages {
                    events.extend(decode(message).unwrap());
                }
            }
            events
        })
        .collect()
}
