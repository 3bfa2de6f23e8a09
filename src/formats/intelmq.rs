//! IntelMQ's own wire format: the flat 3.x message an IntelMQ bot's queue
//! carries (`{"__type": "Event", "source.ip": ...}`).
//!
//! IntelMQ bots know nothing of IEP04 meta and stop on any key outside
//! their harmonization, so the flat form carries only harmonization keys.
//! When asked ([`EncodeContext::meta_in_extra`]), the meta rides along in
//! `extra.iep04`, where IntelMQ keeps it untouched; decoding restores it.

use serde_json::{Map, Value};

use super::flat_object::{self, Item};
use super::{json, DecodeContext, EncodeContext, Format};
use crate::envelope::{Envelope, Meta};
use crate::error::{Error, Result};
use crate::event::{Event, EventBuilder};
use crate::harmonization::{Harmonization, MessageType};

/// Name of this format.
pub const NAME: &str = "intelmq";
/// The key naming the message kind in IntelMQ's wire form.
pub const TYPE_KEY: &str = "__type";
/// The `extra` field that carries IEP04 meta through IntelMQ.
pub const META_KEY: &str = "extra.iep04";

/// The IntelMQ 3.x flat message format.
pub struct IntelMq;

impl Format for IntelMq {
    fn name(&self) -> &'static str {
        NAME
    }

    /// A flat object with IntelMQ's `__type`, or whose keys are all
    /// harmonization fields (the form IntelMQ's REST output posts).
    fn recognises(&self, message: &Value) -> bool {
        let Some(object) = message.as_object() else {
            return false;
        };
        if let Some(kind) = object.get(TYPE_KEY) {
            return kind
                .as_str()
                .and_then(MessageType::from_intelmq_name)
                .is_some();
        }
        let harmonization = Harmonization::intelmq();
        !object.is_empty()
            && object
                .keys()
                .all(|key| harmonization.spec(MessageType::Event, key).is_some())
    }

    fn decode(&self, message: Value, context: &DecodeContext) -> Result<Vec<Envelope>> {
        let Value::Object(mut fields) = message else {
            return Err(Error::shape(
                "not a JSON object: an IntelMQ message is a flat object",
            ));
        };
        let kind = match fields.shift_remove(TYPE_KEY) {
            None => MessageType::Event,
            Some(value) => value
                .as_str()
                .and_then(MessageType::from_intelmq_name)
                .ok_or_else(|| Error::invalid(TYPE_KEY, &value, "is not Event or Report"))?,
        };
        let meta = read_meta(fields.shift_remove(META_KEY))?;
        let payload = Event::from_fields(kind, fields, context.harmonization)?;
        Ok(vec![envelope(payload, kind, meta, context)?])
    }

    /// The flat message read field by field into the event
    /// ([`flat_object::read_members`]); any message that reading or
    /// [`EventBuilder`] does not take, or that fails, is left to
    /// [`Format::decode`], for its result and error messages. Also left
    /// there: a `__type` or `extra.iep04` given twice, or a `__type` naming
    /// another kind after fields already checked as an Event's.
    fn decode_text(&self, text: &str, context: &DecodeContext) -> Option<Vec<Envelope>> {
        let harmonization = context.harmonization;
        let mut event = EventBuilder::new(MessageType::Event);
        let mut kind_given = false;
        let mut meta = None;
        flat_object::read_members(text, |key, item| {
            match key {
                TYPE_KEY if kind_given => return None,
                TYPE_KEY => {
                    kind_given = true;
                    let Item::Text(name) = item else {
                        return None;
                    };
                    let kind = MessageType::from_intelmq_name(name)?;
                    if kind != event.kind() {
                        if !event.is_untouched() {
                            return None;
                        }
                        event = EventBuilder::new(kind);
                    }
                }
                META_KEY if meta.is_some() => return None,
                META_KEY => meta = Some(item.into_value()),
                _ => event.add_new(key, item.into_value(), harmonization).ok()?,
            }
            Some(())
        })?;
        let kind = event.kind();
        let meta = read_meta(meta).ok()?;
        let payload = event.finish(harmonization);
        envelope(payload, kind, meta, context)
            .ok()
            .map(|envelope| vec![envelope])
    }

    fn encode(&self, events: &[Envelope], context: &EncodeContext) -> Result<Vec<Value>> {
        Ok(events
            .iter()
            .map(|envelope| flat_message(envelope, context.meta_in_extra))
            .collect())
    }

    /// The flat messages written straight from the payloads, without a copy.
    fn encode_lines(
        &self,
        events: &[Envelope],
        context: &EncodeContext,
        out: &mut Vec<u8>,
    ) -> Result<usize> {
        for envelope in events {
            write_flat_message(out, envelope, context.meta_in_extra);
            out.push(b'\n');
        }
        Ok(events.len())
    }
}

/// The IEP04 meta a flat message carries in `extra.iep04`, if any.
fn read_meta(meta: Option<Value>) -> Result<Option<Meta>> {
    let meta = meta.map(Meta::from_value).transpose();
    meta.map_err(|error| Error::shape(format!("{META_KEY}: {error}")))
}

/// The envelope of a decoded payload of `kind`: around the meta the
/// message carried, which must be of the same kind, or with new meta.
fn envelope(
    payload: Event,
    kind: MessageType,
    meta: Option<Meta>,
    context: &DecodeContext,
) -> Result<Envelope> {
    match meta {
        Some(meta) if meta.kind == kind => Ok(Envelope { meta, payload }),
        Some(_) => Err(Error::shape(format!(
            "{META_KEY}: meta.type does not match __type {:?}",
            kind.intelmq_name()
        ))),
        None => Ok(Envelope::new(payload, kind, NAME, &context.origin)),
    }
}

/// The text of [`flat_message`], written from the envelope as it is: the
/// meta replaces a payload's own `extra.iep04` where it stands, as
/// inserting it into the map does.
fn write_flat_message(out: &mut Vec<u8>, envelope: &Envelope, with_meta: bool) {
    out.push(b'{');
    json::write_plain_key(out, TYPE_KEY);
    json::write_str(out, envelope.meta.kind.intelmq_name());
    let mut meta_written = !with_meta;
    // An event's keys are harmonization names and sub-keys: plain words.
    for (key, value) in envelope.payload.fields() {
        out.push(b',');
        json::write_plain_key(out, key);
        if with_meta && key == META_KEY {
            envelope.meta.write_json(out);
            meta_written = true;
        } else {
            json::write_value(out, value);
        }
    }
    if !meta_written {
        out.push(b',');
        json::write_plain_key(out, META_KEY);
        envelope.meta.write_json(out);
    }
    out.push(b'}');
}

/// The flat IntelMQ message of an envelope: `__type` first, then the payload.
pub fn flat_message(envelope: &Envelope, with_meta: bool) -> Value {
    let fields = envelope.payload.fields();
    let mut flat = Map::with_capacity(fields.len() + 2);
    flat.insert(
        TYPE_KEY.to_owned(),
        envelope.meta.kind.intelmq_name().into(),
    );
    for (key, value) in fields {
        flat.insert(key.to_owned(), value.clone());
    }
    if with_meta {
        flat.insert(META_KEY.to_owned(), envelope.meta.to_value());
    }
    Value::Object(flat)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn decode(message: Value) -> Result<Vec<Envelope>> {
        IntelMq.decode(message, &DecodeContext::new("cert-test"))
    }

    fn scanner() -> Value {
        json!({
            "__type": "Event",
            "feed.name": "Shadowserver Scan",
            "source.ip": "198.51.100.7",
            "source.port": 41234,
            "classification.taxonomy": "information-gathering",
            "classification.type": "scanner",
            "time.source": "2026-03-01T12:00:00+00:00",
            "extra.tags": ["ssh"]
        })
    }

    #[test]
    fn flat_event_gets_new_meta_and_round_trips() {
        let envelopes = decode(scanner()).unwrap();
        let [envelope] = envelopes.as_slice() else {
            panic!("one event expected")
        };
        assert_eq!(envelope.meta.format, "intelmq");
        assert_eq!(envelope.meta.uuid.origin, "cert-test");
        assert_eq!(envelope.meta.uuid.id.get_version_num(), 7);
        let out = IntelMq
            .encode(&envelopes, &EncodeContext::new("cert-test"))
            .unwrap();
        assert_eq!(out, vec![scanner()]);
    }

    #[test]
    fn meta_survives_an_intelmq_hop_in_extra() {
        let envelopes = decode(scanner()).unwrap();
        let mut context = EncodeContext::new("cert-test");
        context.meta_in_extra = true;
        let flat = IntelMq.encode(&envelopes, &context).unwrap().remove(0);
        assert!(flat["extra.iep04"]["uuid"]["id"].is_string());
        let context = DecodeContext::new("cert-test");
        let straight = IntelMq.decode_text(&flat.to_string(), &context);
        assert_eq!(straight.as_ref(), Some(&envelopes));
        let again = decode(flat).unwrap();
        assert_eq!(again, envelopes);
    }

    #[test]
    fn text_is_read_straight_or_left_to_decode() {
        let context = DecodeContext::new("cert-test");
        let straight = |text: &str| IntelMq.decode_text(text, &context);
        let report = json!({"__type": "Report", "feed.name": "x", "feed.code": "-"});
        for message in [scanner(), report, json!({})] {
            let read = straight(&message.to_string()).unwrap();
            let parsed = decode(message).unwrap();
            assert_eq!(read.len(), 1);
            assert_eq!(read[0].payload, parsed[0].payload);
            assert_eq!(read[0].meta.kind, parsed[0].meta.kind);
        }
        for text in [
            r#"{"source.ip": "192.0.2.1", "source.ip": "192.0.2.2"}"#,
            r#"{"comment": "-", "comment": "x"}"#,
            r#"{"comment": "x", "comment": "-"}"#,
            r#"{"__type": "Event", "__type": "Event"}"#,
            r#"{"extra.iep04": null}"#,
            r#"{"extra": {"a": 1}}"#,
            r#"{"feed.name": "x", "__type": "Report"}"#,
            r#"{"meta": {}, "payload": {}}"#,
            r#"{"source.ip": "999.1.1.1"}"#,
            r#"{"source.ip": "192.0.2.1"} x"#,
            r#"{"source\u002eip": "192.0.2.1"}"#,
            r#"{"extra.a": 1, "extra.a": 2}"#,
            r#"{"extra.a": "", "extra.a": 2}"#,
            "[1]",
        ] {
            assert!(straight(text).is_none(), "{text}");
        }
        // Very many fields are left to `decode` too, which takes them.
        let many: Map<String, Value> = (0..70).map(|i| (format!("extra.k{i}"), i.into())).collect();
        let many = Value::Object(many);
        assert!(straight(&many.to_string()).is_none());
        assert_eq!(decode(many).unwrap()[0].payload.fields().len(), 70);
    }

    #[test]
    fn lines_are_the_messages_text() {
        let mut envelopes = decode(scanner()).unwrap();
        let mut own_meta = envelopes[0].clone();
        let harmonization = Harmonization::intelmq();
        let meta_field = json!({"not": "this meta"});
        own_meta
            .payload
            .set(MessageType::Event, META_KEY, meta_field, harmonization)
            .unwrap();
        own_meta
            .payload
            .set(MessageType::Event, "comment", "after".into(), harmonization)
            .unwrap();
        envelopes.push(own_meta);
        for meta_in_extra in [false, true] {
            let mut context = EncodeContext::new("cert-test");
            context.meta_in_extra = meta_in_extra;
            let mut lines = Vec::new();
            let count = IntelMq
                .encode_lines(&envelopes, &context, &mut lines)
                .unwrap();
            let mut expected = Vec::new();
            for message in IntelMq.encode(&envelopes, &context).unwrap() {
                serde_json::to_writer(&mut expected, &message).unwrap();
                expected.push(b'\n');
            }
            assert_eq!(count, 2);
            assert_eq!(String::from_utf8(lines), String::from_utf8(expected));
        }
    }

    #[test]
    fn recognises_flat_messages_only() {
        assert!(IntelMq.recognises(&scanner()));
        assert!(IntelMq.recognises(&json!({"source.ip": "192.0.2.1"})));
        assert!(!IntelMq.recognises(&json!({"Format": "IDEA0"})));
        assert!(!IntelMq.recognises(&json!({"__type": "Bogus"})));
        assert!(!IntelMq.recognises(&json!([1, 2])));
    }

    #[test]
    fn bad_type_and_shape_are_named() {
        let error = decode(json!({"__type": "Alert"})).unwrap_err();
        assert_eq!(
            error.to_string(),
            r#"__type: "Alert" is not Event or Report"#
        );
        let error = decode(json!({"__type": "Event", "source": {"ip": "192.0.2.1"}})).unwrap_err();
        assert_eq!(
            error.to_string(),
            "source: unknown field, not in IntelMQ's harmonization"
        );
        assert!(decode(json!(["a"])).is_err());
    }
}
