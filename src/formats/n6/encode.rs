//! IntelMQ → n6: one envelope, or a whole split group merged back into one
//! n6 event with an `address` list, in n6's API form.
//!
//! Whatever n6 cannot hold travels in the `intelmq` custom field. What goes
//! there is found by decoding the n6 event just made and comparing: every
//! IntelMQ field that decoding would not rebuild exactly (with `null` for
//! one it would add), and the meta when it is not the derived one. So a
//! round trip through n6 gives back the same envelopes, field for field.

use std::borrow::Cow;

use base64::Engine as _;
use serde_json::{Map, Value};

use super::decode::{derived_envelopes, map_written, REQUIRED};
use super::mapping::{is_n6_ipv4, Tables};
use super::{api_time, CARRIER, EXTRA_PREFIX, INTERNAL, SPLIT};
use crate::envelope::{Envelope, Meta};
use crate::error::{Error, Result};
use crate::event::{same_name, Event};
use crate::formats::intelmq::META_KEY;
use crate::formats::{json, raw_field, EncodeContext};
use crate::harmonization::{Harmonization, MessageType};

/// Longest n6 `source` (`provider.channel`).
const MAX_SOURCE: usize = 32;
/// Longest provider part of a `source` the bridge makes up.
const MAX_PROVIDER: usize = 15;
/// The channel part of a made-up `source` when the event names no feed.
const DEFAULT_CHANNEL: &str = "intelmq";

/// Encodes envelopes: each split group (by `meta.uuid.group` and
/// `x-split`) becomes one n6 event, every other envelope one event.
pub(super) fn encode(events: &[Envelope], context: &EncodeContext) -> Result<Vec<Value>> {
    groups(events)
        .iter()
        .map(|members| encode_group(members, context).map(Encoded::into_value))
        .collect()
}

/// [`encode`] written as JSON Lines onto `out`, the `intelmq` field
/// without being built as a [`Value`]; returns how many messages.
pub(super) fn encode_lines(
    events: &[Envelope],
    context: &EncodeContext,
    out: &mut Vec<u8>,
) -> Result<usize> {
    let groups = groups(events);
    let messages = groups
        .iter()
        .map(|members| encode_group(members, context))
        .collect::<Result<Vec<_>>>()?;
    for message in &messages {
        message.write_json(out);
        out.push(b'\n');
    }
    Ok(messages.len())
}

/// An n6 event made of a group, its `intelmq` field kept apart until the
/// event is written or becomes a [`Value`].
struct Encoded<'a> {
    /// The n6 event without the `intelmq` field.
    message: Value,
    carrier: Option<Carrier<'a>>,
}

impl Encoded<'_> {
    /// The whole n6 event.
    fn into_value(self) -> Value {
        let mut message = self.message;
        if let (Some(carrier), Value::Object(n6)) = (self.carrier, &mut message) {
            n6.insert(CARRIER.to_owned(), carrier.into_value());
        }
        message
    }

    /// Appends the JSON text of [`Encoded::into_value`].
    fn write_json(&self, out: &mut Vec<u8>) {
        let (Some(carrier), Value::Object(n6)) = (&self.carrier, &self.message) else {
            json::write_value(out, &self.message);
            return;
        };
        // Where `into_value` puts it: in place of a key of that name (one
        // from `extra.n6.intelmq`), else last.
        let last = (!n6.contains_key(CARRIER)).then_some((CARRIER, None));
        let members = n6.iter().map(|(key, value)| (key.as_str(), Some(value)));
        json::write_members(out, members.chain(last), |out, (key, value)| {
            json::write_str(out, key);
            out.push(b':');
            match value {
                Some(value) if key != CARRIER => json::write_value(out, value),
                _ => carrier.write_json(out),
            }
        });
    }
}

/// What the `intelmq` field holds, or one event's part of it: the IntelMQ
/// fields that decoding would not give back, then the meta when it
/// travels ([`META_KEY`]), then the parts of a merged group's events
/// ([`SPLIT`]). The meta stays a [`Meta`] until it is written.
struct Carrier<'a> {
    fields: CarriedFields<'a>,
    meta: Option<&'a Meta>,
    split: Vec<Carrier<'a>>,
}

/// A member of a [`Carrier`]'s JSON object.
enum Member<'c> {
    Field(&'c str, &'c Value),
    Meta(&'c Meta),
    Split(&'c [Carrier<'c>]),
}

impl Carrier<'_> {
    /// Whether it holds nothing at all.
    fn is_empty(&self) -> bool {
        self.fields.is_empty() && self.meta.is_none() && self.split.is_empty()
    }

    /// Its JSON object.
    fn into_value(self) -> Value {
        let mut object = self.fields.into_map();
        if let Some(meta) = self.meta {
            object.insert(META_KEY.to_owned(), meta.to_value());
        }
        if !self.split.is_empty() {
            let parts = self.split.into_iter().map(Carrier::into_value).collect();
            object.insert(SPLIT.to_owned(), Value::Array(parts));
        }
        Value::Object(object)
    }

    /// Appends the JSON text of [`Carrier::into_value`].
    fn write_json(&self, out: &mut Vec<u8>) {
        let fields = self
            .fields
            .iter()
            .map(|(key, value)| Member::Field(key, value));
        let meta = self.meta.map(Member::Meta);
        let split = (!self.split.is_empty()).then_some(Member::Split(&self.split));
        json::write_members(
            out,
            fields.chain(meta).chain(split),
            |out, member| match member {
                Member::Field(key, value) => json::write_entry(out, key, value),
                Member::Meta(meta) => {
                    json::write_plain_key(out, META_KEY);
                    meta.write_json(out);
                }
                Member::Split(parts) => {
                    json::write_plain_key(out, SPLIT);
                    json::write_items(out, parts, |out, part| part.write_json(out));
                }
            },
        );
    }
}

/// The IntelMQ fields of a [`Carrier`] in their order, set as
/// `serde_json::Map::insert` sets them (in place when there, last
/// otherwise): a short list of the carried event's own names and values,
/// borrowed, that are neither copied nor hashed.
#[derive(Clone, Default)]
struct CarriedFields<'a> {
    entries: Vec<(Cow<'a, str>, Cow<'a, Value>)>,
}

impl<'a> CarriedFields<'a> {
    /// The value of a field.
    fn get(&self, key: &str) -> Option<&Value> {
        self.entries
            .iter()
            .find(|(name, _)| same_name(name, key))
            .map(|(_, value)| value.as_ref())
    }

    /// Whether the field is there.
    fn contains_key(&self, key: &str) -> bool {
        self.get(key).is_some()
    }

    /// Appends a field that is not there yet.
    fn push(&mut self, key: impl Into<Cow<'a, str>>, value: Cow<'a, Value>) {
        let key = key.into();
        debug_assert!(!self.contains_key(&key), "{key} is there already");
        self.entries.push((key, value));
    }

    /// Sets a field: in its place when it is there, last otherwise.
    fn insert(&mut self, key: impl Into<Cow<'a, str>>, value: Cow<'a, Value>) {
        let key = key.into();
        match self
            .entries
            .iter_mut()
            .find(|(name, _)| same_name(name, &key))
        {
            Some(entry) => entry.1 = value,
            None => self.entries.push((key, value)),
        }
    }

    /// Keeps only the fields `keep` says to.
    fn retain(&mut self, mut keep: impl FnMut(&str, &Value) -> bool) {
        self.entries.retain(|(name, value)| keep(name, value));
    }

    /// Whether there are none.
    fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Names and values in their order.
    fn iter(&self) -> impl Iterator<Item = (&str, &Value)> {
        self.entries
            .iter()
            .map(|(name, value)| (name.as_ref(), value.as_ref()))
    }

    /// A JSON object of the fields, in their order.
    fn into_map(self) -> Map<String, Value> {
        self.entries
            .into_iter()
            .map(|(name, value)| (name.into_owned(), value.into_owned()))
            .collect()
    }
}

/// Split events grouped by their group id, in split order; others alone.
fn groups(events: &[Envelope]) -> Vec<Vec<&Envelope>> {
    let mut groups: Vec<(Option<&str>, Vec<&Envelope>)> = Vec::new();
    for event in events {
        let group = event
            .meta
            .split()
            .and(event.meta.uuid.groups().first())
            .map(String::as_str);
        let known = group.and_then(|group| groups.iter_mut().find(|(g, _)| *g == Some(group)));
        match known {
            Some((_, members)) => members.push(event),
            None => groups.push((group, vec![event])),
        }
    }
    groups
        .into_iter()
        .map(|(_, mut members)| {
            members.sort_by_key(|e| e.meta.split().map_or(0, |s| s.index));
            members
        })
        .collect()
}

fn encode_group<'a>(members: &[&'a Envelope], context: &EncodeContext) -> Result<Encoded<'a>> {
    let harmonization = Harmonization::intelmq();
    let tables = Tables::get();
    let Some(first) = members.first() else {
        return Err(Error::shape("an empty group has no n6 event"));
    };
    let payload = &first.payload;
    let mut n6 = Map::new();
    n6.insert("id".into(), n6_id(members).into());
    n6.insert("source".into(), source(payload, context).into());
    n6.insert("restriction".into(), restriction(payload, tables).into());
    let accuracy = payload.get("feed.accuracy").and_then(Value::as_f64);
    n6.insert("confidence".into(), tables.confidence_of(accuracy).into());
    n6.insert("category".into(), category(payload, tables).into());
    let time = Value::from(time(payload)?);
    // Every value the message gets has passed n6's constraints (the
    // decoding in `carried` relies on it); the time is the one made here
    // whose form is not sure to.
    tables.check("time", &time)?;
    n6.insert("time".into(), time);
    let (address, takes) = address_list(members, tables);
    if !address.is_empty() {
        n6.insert("address".into(), Value::Array(address));
    }
    for (key, intelmq) in &tables.fields {
        // Only the keys set above are there yet: the required ones and
        // `address`.
        let set_above = key == "address" || REQUIRED.contains(&key.as_str());
        if set_above && n6.contains_key(key) {
            continue;
        }
        if let Some(value) = payload.get(intelmq) {
            let kept = extra_field(payload, key);
            let value = preferred(kept, key, intelmq, value, harmonization);
            if tables.check(key, &value).is_ok() {
                n6.insert(key.clone(), value);
            }
        }
    }
    for (field, value) in payload.fields() {
        let Some(key) = field.strip_prefix(EXTRA_PREFIX) else {
            continue;
        };
        if n6.contains_key(key) || key == INTERNAL || tables.is_pipeline_only(key) {
            continue;
        }
        let value = match value.as_str().filter(|_| tables.is_datetime(key)) {
            Some(text) => api_time(text).map_or_else(|| value.clone(), Value::from),
            None => value.clone(),
        };
        if tables.check(key, &value).is_ok() {
            n6.insert(key.to_owned(), value);
        }
    }
    if !n6.contains_key("replaces") {
        if let Some(old) = replaces_link(first, tables) {
            n6.insert("replaces".into(), old.into());
        }
    }
    let (message, raw) = adopt_raw_order(Value::Object(n6), payload);
    let raw = RebuiltRaw {
        message: &message,
        first: payload.get("raw"),
        known: raw,
        written: None,
    };
    let carrier = carried(raw, members, &takes, context, harmonization)?;
    Ok(Encoded { message, carrier })
}

/// Whether decoding the n6 event gives the first member's `raw` back,
/// when [`adopt_raw_order`] can tell.
#[derive(Clone, Copy, PartialEq)]
enum RawMatch {
    /// Its `raw` holds this very n6 event, in the text decoding writes.
    Same,
    /// It has no `raw`, or one that is not the JSON text of an object
    /// (so not of this n6 event).
    Other,
    /// Only writing the event out tells.
    Unknown,
}

/// The n6 event with the `raw` decoding it gives, written out only when
/// [`RawMatch`] cannot tell whether a member's `raw` is that.
struct RebuiltRaw<'a> {
    message: &'a Value,
    /// The first member's `raw`, which `known` is about.
    first: Option<&'a Value>,
    known: RawMatch,
    written: Option<Value>,
}

impl RebuiltRaw<'_> {
    /// Whether `raw` is the `raw` decoding gives.
    fn is(&mut self, raw: &Value) -> bool {
        let first = self.first == Some(raw);
        match self.known {
            RawMatch::Same => return first,
            RawMatch::Other if first => return false,
            RawMatch::Other | RawMatch::Unknown => {}
        }
        let message = self.message;
        let written = self.written.get_or_insert_with(|| raw_field(message));
        written == raw
    }
}

/// The `intelmq` field: what decoding the n6 event would not give back.
fn carried<'a>(
    mut raw: RebuiltRaw,
    members: &[&'a Envelope],
    takes: &[bool],
    context: &EncodeContext,
    harmonization: &Harmonization,
) -> Result<Option<Carrier<'a>>> {
    let known = members
        .first()
        .filter(|first| first.meta.kind == MessageType::Event)
        .map(|first| first.payload.fields());
    let Some(n6) = raw.message.as_object() else {
        return Err(Error::shape("not a JSON object: an n6 event is an object"));
    };
    let mapped = map_written(n6, harmonization, known)?;
    let count = members.len();
    // Meta that n6's decoding did not make differs from what it makes in
    // its format at least: then it travels, without the other being made.
    let from_n6 = members
        .iter()
        .any(|member| member.meta.format == super::NAME);
    let derived = if from_n6 {
        derived_envelopes(
            &mapped.id,
            count,
            mapped.replaces.as_deref(),
            &context.origin,
        )
    } else {
        Vec::new()
    };
    let mut addresses = mapped.addresses.into_iter();
    let mut common = mapped.common;
    let mut parts = Vec::with_capacity(count);
    for (index, (member, takes)) in members.iter().zip(takes).enumerate() {
        // The last member takes the shared fields themselves.
        let mut fields = if index + 1 == count {
            std::mem::take(&mut common)
        } else {
            common.clone()
        };
        if *takes {
            if let Some(address) = addresses.next() {
                fields.append(address);
            }
        }
        // The member's values were checked when it was made; only a value
        // that differs from its own for the same field is checked again.
        let own = member.payload.fields();
        let known = (member.meta.kind == MessageType::Event).then_some(own);
        let rebuilt = Event::from_draft(MessageType::Event, fields, harmonization, known)?;
        let mut fields = difference(&member.payload, &rebuilt, &mut raw);
        if count > 1 && !*takes {
            let ip = member.payload.get("source.ip");
            fields.insert(
                "source.ip",
                ip.map_or(Cow::Owned(Value::Null), Cow::Borrowed),
            );
        }
        let mut meta = None;
        if derived
            .get(index)
            .is_none_or(|derived| member.meta != derived.meta)
        {
            if fields.contains_key(META_KEY) {
                // A field of that name holds the place the meta takes.
                fields.insert(META_KEY, Cow::Owned(member.meta.to_value()));
            } else {
                meta = Some(&member.meta);
            }
        }
        parts.push(Carrier {
            fields,
            meta,
            split: Vec::new(),
        });
    }
    let mut parts = parts.into_iter();
    let Some(mut shared) = parts.next() else {
        return Ok(None);
    };
    let mut rest: Vec<Carrier> = parts.collect();
    if !rest.is_empty() {
        // Fields all events carry alike are written once; the rest per event.
        let mut own = Carrier {
            fields: shared.fields.clone(),
            meta: shared.meta.take(),
            split: Vec::new(),
        };
        shared.fields.retain(|key, value| {
            key != META_KEY
                && key != "source.ip"
                && rest.iter().all(|p| p.fields.get(key) == Some(value))
        });
        own.fields.retain(|key, _| !shared.fields.contains_key(key));
        for part in &mut rest {
            part.fields
                .retain(|key, _| !shared.fields.contains_key(key));
        }
        rest.insert(0, own);
        if rest.iter().any(|part| !part.is_empty()) {
            shared.split = rest;
        }
    }
    Ok((!shared.is_empty()).then_some(shared))
}

/// The fields of `wanted` that `rebuilt` (with `raw`) lacks or holds
/// otherwise, and `null` for those `rebuilt` has in excess. Decoding puts
/// `raw` after the shared fields and before the address's, which are the
/// member's own and so never in excess: its `null` comes last.
fn difference<'a>(wanted: &'a Event, rebuilt: &Event, raw: &mut RebuiltRaw) -> CarriedFields<'a> {
    let mut part = CarriedFields::default();
    for (key, value) in wanted.fields() {
        let same = match key {
            "raw" => raw.is(value),
            _ => rebuilt.get(key) == Some(value),
        };
        // The names of an event are distinct.
        if !same {
            part.push(key, Cow::Borrowed(value));
        }
    }
    for key in rebuilt.fields().keys() {
        if wanted.get(key).is_none() {
            part.push(key.to_owned(), Cow::Owned(Value::Null));
        }
    }
    if wanted.get("raw").is_none() {
        part.insert("raw", Cow::Owned(Value::Null));
    }
    part
}

/// When `raw` holds this very n6 event, its key order is kept, so decoding
/// gives the same `raw` again; also whether it does.
fn adopt_raw_order(message: Value, payload: &Event) -> (Value, RawMatch) {
    let Some(raw) = payload
        .get_str("raw")
        .filter(|raw| !starts_with_no_object(raw))
    else {
        return (message, RawMatch::Other);
    };
    let Ok(bytes) = base64::engine::general_purpose::STANDARD.decode(raw) else {
        return (message, RawMatch::Other);
    };
    match serde_json::from_slice::<Value>(&bytes) {
        Ok(original) if original == message && raw_field(&original).as_str() == Some(raw) => {
            (original, RawMatch::Same)
        }
        Ok(_) => (message, RawMatch::Unknown),
        Err(_) => (message, RawMatch::Other),
    }
}

/// Whether base64 `raw` begins with a text that is no JSON object (such as
/// a parser's CSV line), told by its first three bytes, before the whole
/// text is decoded and parsed.
fn starts_with_no_object(raw: &str) -> bool {
    let mut head = [0; 3];
    let decoded = raw
        .get(..4)
        .and_then(|symbols| {
            let engine = base64::engine::general_purpose::STANDARD;
            engine.decode_slice(symbols, &mut head).ok()
        })
        .unwrap_or(0);
    let first = head[..decoded]
        .iter()
        .find(|byte| !matches!(byte, b' ' | b'\t' | b'\n' | b'\r'));
    first.is_some_and(|byte| *byte != b'{')
}

/// The n6 id: the event's own n6 id when it came from n6, else the group's
/// or the envelope's id as 32 lower-case hex digits.
fn n6_id(members: &[&Envelope]) -> String {
    let tables = Tables::get();
    let known = members
        .iter()
        .flat_map(|m| m.meta.uuid.alternates())
        .filter_map(|alternate| alternate.strip_prefix("n6:"))
        .find(|id| tables.check("id", &Value::from(*id)).is_ok());
    if let Some(id) = known {
        return id.to_owned();
    }
    let group = (members.len() > 1)
        .then(|| members.first().and_then(|m| m.meta.uuid.groups().first()))
        .flatten()
        .and_then(|group| uuid::Uuid::try_parse(group).ok());
    let own = members.first().map(|m| m.meta.uuid.id);
    group.or(own).unwrap_or_default().simple().to_string()
}

/// The n6 `replaces` from a `replaces` link to an n6 id.
fn replaces_link<'a>(envelope: &'a Envelope, tables: &Tables) -> Option<&'a str> {
    envelope
        .meta
        .links
        .as_deref()?
        .iter()
        .filter(|link| link.kind == "replaces")
        .filter_map(|link| link.id.strip_prefix("n6:"))
        .find(|id| tables.check("replaces", &Value::from(*id)).is_ok())
}

/// `source`: the n6 source the event came with, else
/// `<origin>.<feed>` made of this instance's name and the feed's name
/// (or code), reduced to n6's characters and length.
fn source(payload: &Event, context: &EncodeContext) -> String {
    let tables = Tables::get();
    if let Some(source) = extra_field(payload, "source") {
        if let (Some(text), true) = (source.as_str(), tables.check("source", source).is_ok()) {
            return text.to_owned();
        }
    }
    let feed = payload
        .get_str("feed.name")
        .or_else(|| payload.get_str("feed.code"))
        .unwrap_or(DEFAULT_CHANNEL);
    let provider = slug(&context.origin, MAX_PROVIDER);
    let channel = slug(feed, MAX_SOURCE - provider.len() - 1);
    format!("{provider}.{channel}")
}

/// Lower-case ASCII letters, digits and single dashes, at most `max`
/// characters, never empty (`unknown` then, cut to `max`).
fn slug(text: &str, max: usize) -> String {
    let mut slug = String::with_capacity(text.len().min(max));
    for c in text.chars() {
        let c = c.to_ascii_lowercase();
        if c.is_ascii_lowercase() || c.is_ascii_digit() {
            slug.push(c);
        } else if !slug.is_empty() && !slug.ends_with('-') {
            slug.push('-');
        }
    }
    // Only ASCII was pushed, so cutting at a byte count is safe.
    slug.truncate(max);
    let slug = slug.trim_end_matches('-');
    let slug = if slug.is_empty() { "unknown" } else { slug };
    slug.chars().take(max).collect()
}

/// `restriction`: the n6 one the event came with while it still agrees
/// with `tlp`, else the one `tlp` maps to.
pub(super) fn restriction<'a>(payload: &'a Event, tables: &'a Tables) -> &'a str {
    let tlp = payload.get_str("tlp");
    let kept = extra_field(payload, "restriction")
        .and_then(Value::as_str)
        .filter(|r| tables.tlp_of(r).is_some() && (tlp.is_none() || tables.tlp_of(r) == tlp));
    kept.unwrap_or_else(|| tables.restriction_of(tlp))
}

/// `category`: kept for blacklist events, else from the classification.
fn category<'a>(payload: &'a Event, tables: &'a Tables) -> &'a str {
    let kept = extra_field(payload, "category")
        .and_then(Value::as_str)
        .filter(|c| tables.classification(c).is_some());
    kept.unwrap_or_else(|| {
        tables.category_of(
            payload.get_str("classification.taxonomy"),
            payload.get_str("classification.type"),
            payload.get_str("classification.identifier"),
            payload.get_str("malware.name"),
        )
    })
}

/// `time`: `time.source`, else `time.observation`, in the API form.
fn time(payload: &Event) -> Result<String> {
    let text = payload
        .get_str("time.source")
        .or_else(|| payload.get_str("time.observation"))
        .ok_or_else(|| Error::Missing {
            field: "time.source".into(),
        })?;
    api_time(text)
        .ok_or_else(|| Error::invalid("time.source", &text.into(), "is not a date and time"))
}

/// The value of `extra.n6.<key>`, found without spelling out its name.
fn extra_field<'a>(payload: &'a Event, key: &str) -> Option<&'a Value> {
    payload
        .fields()
        .iter()
        .find(|(name, _)| name.strip_prefix(EXTRA_PREFIX) == Some(key))
        .map(|(_, value)| value)
}

/// The n6 value of a mapped field: the original n6 value `kept` in
/// `extra.n6.<field>` while IntelMQ's value is still its form, else
/// IntelMQ's value.
fn preferred(
    kept: Option<&Value>,
    key: &str,
    intelmq: &str,
    value: &Value,
    harmonization: &Harmonization,
) -> Value {
    // A kept value equal to IntelMQ's gives the same either way.
    if key == "time" || kept == Some(value) {
        return value.clone();
    }
    let kept = kept.filter(|kept| {
        harmonization
            .accept(MessageType::Event, intelmq, (*kept).clone())
            .is_ok_and(|accepted| accepted.as_ref() == Some(value))
    });
    kept.unwrap_or(value).clone()
}

/// The `address` list (IPv4 sources, each once) and, per member, whether
/// it gave an item.
fn address_list(members: &[&Envelope], tables: &Tables) -> (Vec<Value>, Vec<bool>) {
    let mut items: Vec<Value> = Vec::with_capacity(members.len());
    let mut seen: Vec<&str> = Vec::with_capacity(members.len());
    let mut takes = Vec::with_capacity(members.len());
    for member in members {
        let payload = &member.payload;
        let ip = payload
            .get_str("source.ip")
            .filter(|ip| is_n6_ipv4(ip) && !seen.contains(ip));
        let Some(ip) = ip else {
            takes.push(false);
            continue;
        };
        seen.push(ip);
        let mut item = Map::with_capacity(3);
        item.insert("ip".into(), ip.into());
        for (key, constraint) in [("cc", "address.cc"), ("asn", "address.asn")] {
            let value = tables
                .address_field(key)
                .and_then(|field| payload.get(field));
            if let Some(value) = value.filter(|v| tables.check(constraint, v).is_ok()) {
                item.insert(key.into(), value.clone());
            }
        }
        items.push(Value::Object(item));
        takes.push(true);
    }
    (items, takes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::envelope::link_split_group;

    fn envelope(feed: Option<&str>) -> Envelope {
        let mut fields = Map::new();
        if let Some(feed) = feed {
            fields.insert("feed.name".into(), feed.into());
        }
        let payload = Event::from_fields(MessageType::Event, fields, Harmonization::intelmq());
        Envelope::new(payload.unwrap(), MessageType::Event, "intelmq", "here")
    }

    #[test]
    fn made_up_sources_obey_n6s_rule() {
        let tables = Tables::get();
        let cases = [
            (
                "cert-xy",
                Some("Shadowserver Scan"),
                "cert-xy.shadowserver-scan",
            ),
            ("CERT.XY", None, "cert-xy.intelmq"),
            ("", Some("!!!"), "unknown.unknown"),
            (
                "a-very-long-instance-name-indeed",
                Some("an even longer feed name, really long"),
                "a-very-long-ins.an-even-longer-f",
            ),
        ];
        for (origin, feed, expected) in cases {
            let made = source(&envelope(feed).payload, &EncodeContext::new(origin));
            assert_eq!(made, expected);
            assert!(tables.check("source", &Value::from(made)).is_ok());
        }
    }

    #[test]
    fn lines_are_the_messages_written_out() {
        let event = |feed: &str, ip: &str| {
            let mut fields = Map::new();
            fields.insert("feed.name".into(), feed.into());
            fields.insert("source.ip".into(), ip.into());
            fields.insert("time.source".into(), "2026-01-01T10:00:00+00:00".into());
            let payload = Event::from_fields(MessageType::Event, fields, Harmonization::intelmq());
            Envelope::new(payload.unwrap(), MessageType::Event, "intelmq", "here")
        };
        // A group whose events differ (its carrier has a split list, with
        // the meta of each event) and an event alone.
        let mut group = vec![event("a", "192.0.2.1"), event("b", "2001:db8::1")];
        link_split_group(&mut group, "g");
        group.push(event("c", "192.0.2.3"));
        let context = EncodeContext::new("here");
        let mut expected = Vec::new();
        for message in encode(&group, &context).unwrap() {
            json::write_value(&mut expected, &message);
            expected.push(b'\n');
        }
        let mut lines = Vec::new();
        assert_eq!(encode_lines(&group, &context, &mut lines).unwrap(), 2);
        let lines = String::from_utf8(lines).unwrap();
        assert!(lines.contains(r#""split":[{"#) && lines.contains(META_KEY));
        assert_eq!(Ok(lines), String::from_utf8(expected));
    }

    #[test]
    fn only_raws_that_may_hold_an_object_are_read() {
        let raw = |text: &str| base64::engine::general_purpose::STANDARD.encode(text);
        assert!(starts_with_no_object(&raw("2026-01-01,192.0.2.1")));
        assert!(starts_with_no_object(&raw("[{}]")));
        assert!(!starts_with_no_object(&raw("{\"id\": 1}")));
        assert!(!starts_with_no_object(&raw(" \n\t{}")));
        assert!(!starts_with_no_object(&raw("   ")));
        assert!(!starts_with_no_object("no base64"));
    }

    #[test]
    fn unrelated_events_stay_apart_and_groups_come_together() {
        let mut group = vec![envelope(None), envelope(None)];
        link_split_group(&mut group, "g");
        group.reverse();
        let events = vec![
            envelope(None),
            group[0].clone(),
            envelope(None),
            group[1].clone(),
        ];
        let grouped = groups(&events);
        let sizes: Vec<usize> = grouped.iter().map(Vec::len).collect();
        assert_eq!(sizes, [1, 2, 1]);
        let order: Vec<u64> = grouped[1]
            .iter()
            .filter_map(|e| e.meta.split())
            .map(|s| s.index)
            .collect();
        assert_eq!(order, [0, 1]);
    }
}
