//! Joins formats into a translation: decode a message (an envelope in
//! either wire form, or a native message by its declared or recognised
//! format), hold split events until their group is complete when the target
//! format merges groups, and encode.
//!
//! The command line and the service share this; neither knows a format.

use std::collections::HashMap;

use serde_json::Value;

use crate::envelope::{Envelope, WireForm};
use crate::error::{Error, Result};
use crate::formats::{json, DecodeContext, EncodeContext, Format, Registry};

/// Most split events held back waiting for the rest of their group; past
/// this, incomplete groups are released as they are, so memory stays bounded.
const MAX_PENDING_EVENTS: usize = 100_000;

/// What a translation writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Output {
    /// The target format's native messages.
    Native,
    /// The envelopes themselves, in the given wire form.
    Envelope(WireForm),
}

/// A configured translation from one format (or any, recognised by shape)
/// to another.
pub struct Translator<'r> {
    registry: &'r Registry,
    from: Option<&'r dyn Format>,
    to: &'r dyn Format,
    output: Output,
    decode_context: DecodeContext,
    encode_context: EncodeContext,
}

impl<'r> Translator<'r> {
    /// A translation from `from` (`None`: recognise each message) to `to`.
    pub fn new(
        registry: &'r Registry,
        from: Option<&'r dyn Format>,
        to: &'r dyn Format,
        output: Output,
        decode_context: DecodeContext,
        encode_context: EncodeContext,
    ) -> Self {
        Translator {
            registry,
            from,
            to,
            output,
            decode_context,
            encode_context,
        }
    }

    /// Decodes one message into envelopes. An envelope (IEP04 or AIL) is
    /// accepted whatever the source format, since its payload is always an
    /// IntelMQ event.
    pub fn decode(&self, message: Value) -> Result<Vec<Envelope>> {
        if Envelope::wire_form(&message).is_some() {
            let envelope = Envelope::from_value(message, self.decode_context.harmonization)?;
            self.registry.get(&envelope.meta.format).map_err(|_| {
                Error::invalid(
                    "meta.format",
                    &Value::String(envelope.meta.format.clone()),
                    format!(
                        "is not a known format ({})",
                        self.registry.names().join(", ")
                    ),
                )
            })?;
            return Ok(vec![envelope]);
        }
        let format = match self.from {
            Some(format) => format,
            None => self.registry.recognise(&message).ok_or_else(|| {
                Error::shape(format!(
                    "format not recognised: not an envelope nor any of {}",
                    self.registry.names().join(", ")
                ))
            })?,
        };
        format.decode(message, &self.decode_context)
    }

    /// [`Translator::decode`] of a message as it arrived: from its text when
    /// it is UTF-8 ([`Translator::decode_text`]); bytes that are not are
    /// parsed as bytes, so the error names where they fail.
    pub fn decode_bytes(&self, bytes: &[u8]) -> Result<Vec<Envelope>> {
        match std::str::from_utf8(bytes) {
            Ok(text) => self.decode_text(text),
            Err(_) => self.decode(serde_json::from_slice(bytes)?),
        }
    }

    /// [`Translator::decode`] of a message's JSON text: straight from the
    /// text when the source format is declared and takes the message so
    /// ([`Format::decode_text`]), otherwise parsed first.
    pub fn decode_text(&self, text: &str) -> Result<Vec<Envelope>> {
        let direct = self
            .from
            .and_then(|format| format.decode_text(text, &self.decode_context));
        match direct {
            Some(envelopes) => Ok(envelopes),
            None => self.decode(serde_json::from_str(text)?),
        }
    }

    /// Encodes one envelope or a complete split group into output messages.
    pub fn encode(&self, events: &[Envelope]) -> Result<Vec<Value>> {
        match self.output {
            Output::Native => self.to.encode(events, &self.encode_context),
            Output::Envelope(form) => Ok(events.iter().map(|e| e.to_wire(form)).collect()),
        }
    }

    /// [`Translator::encode`] written as JSON Lines onto `out`; returns how
    /// many messages.
    pub fn encode_lines(&self, events: &[Envelope], out: &mut Vec<u8>) -> Result<usize> {
        match self.output {
            Output::Native => self.to.encode_lines(events, &self.encode_context, out),
            Output::Envelope(form) => {
                for event in events {
                    json::write_value(out, &event.to_wire(form));
                    out.push(b'\n');
                }
                Ok(events.len())
            }
        }
    }

    /// Whether output should be handed whole split groups.
    pub fn merges_groups(&self) -> bool {
        self.output == Output::Native && self.to.merges_groups()
    }
}

/// Holds split events until every part of their group has arrived, so a
/// format that holds lists can merge them back into one message. Each event
/// travels with a tag (for example the input position it came from).
pub struct GroupBuffer<T> {
    merge: bool,
    pending: HashMap<String, Vec<(T, Envelope)>>,
    pending_events: usize,
}

impl<T> GroupBuffer<T> {
    /// A buffer that groups when `merge` is set and passes events straight
    /// through otherwise.
    pub fn new(merge: bool) -> Self {
        GroupBuffer {
            merge,
            pending: HashMap::new(),
            pending_events: 0,
        }
    }

    /// Whether [`GroupBuffer::push`] holds `envelope` back until its group
    /// is complete; any other event is a group of its own, ready at once.
    pub fn holds(&self, envelope: &Envelope) -> bool {
        let split = envelope.meta.split().filter(|split| split.count > 1);
        self.merge && split.is_some() && !envelope.meta.uuid.groups().is_empty()
    }

    /// Takes one event; returns the groups that are ready to encode.
    pub fn push(&mut self, tag: T, envelope: Envelope) -> Vec<Vec<(T, Envelope)>> {
        if !self.holds(&envelope) {
            return vec![vec![(tag, envelope)]];
        }
        let split = envelope.meta.split();
        let group = envelope.meta.uuid.groups().first().cloned();
        let (Some(split), Some(group)) = (split, group) else {
            return vec![vec![(tag, envelope)]];
        };
        let members = self.pending.entry(group.clone()).or_default();
        members.push((tag, envelope));
        self.pending_events += 1;
        if members.len() as u64 >= split.count {
            let members = self.pending.remove(&group).unwrap_or_default();
            self.pending_events -= members.len();
            return vec![members];
        }
        if self.pending_events > MAX_PENDING_EVENTS {
            return self.drain();
        }
        Vec::new()
    }

    /// Releases every incomplete group (at the end of input).
    pub fn drain(&mut self) -> Vec<Vec<(T, Envelope)>> {
        self.pending_events = 0;
        self.pending.drain().map(|(_, members)| members).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::envelope::Split;
    use crate::event::Event;
    use crate::harmonization::MessageType;

    fn part(group: &str, index: u64, count: u64) -> Envelope {
        let mut envelope = Envelope::new(Event::default(), MessageType::Event, "idea", "here");
        envelope.meta.uuid.add_group(group);
        envelope.meta.set_split(Split { index, count });
        envelope
    }

    #[test]
    fn groups_are_released_when_complete() {
        let mut buffer = GroupBuffer::new(true);
        assert!(buffer.push(1, part("g", 0, 2)).is_empty());
        assert!(buffer.push(2, part("h", 0, 2)).is_empty());
        let ready = buffer.push(3, part("g", 1, 2));
        assert_eq!(ready.len(), 1);
        assert_eq!(
            ready[0].iter().map(|(tag, _)| *tag).collect::<Vec<_>>(),
            [1, 3]
        );
        let rest = buffer.drain();
        assert_eq!(rest.len(), 1);
        assert_eq!(rest[0][0].0, 2);
    }

    #[test]
    fn only_split_parts_are_held_and_only_when_merging() {
        let lone = Envelope::new(Event::default(), MessageType::Event, "intelmq", "here");
        assert!(GroupBuffer::<()>::new(true).holds(&part("g", 0, 2)));
        assert!(!GroupBuffer::<()>::new(true).holds(&part("g", 0, 1)));
        assert!(!GroupBuffer::<()>::new(true).holds(&lone));
        assert!(!GroupBuffer::<()>::new(false).holds(&part("g", 0, 2)));
    }

    #[test]
    fn without_merging_events_pass_straight_through() {
        let mut buffer = GroupBuffer::new(false);
        assert_eq!(buffer.push(1, part("g", 0, 2)).len(), 1);
        assert!(buffer.drain().is_empty());
    }

    #[test]
    fn unsplit_events_pass_straight_through() {
        let mut buffer = GroupBuffer::new(true);
        let lone = Envelope::new(Event::default(), MessageType::Event, "intelmq", "here");
        assert_eq!(buffer.push(1, lone).len(), 1);
    }
}
