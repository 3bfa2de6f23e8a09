//! The hub type: the IEP04 envelope, `meta` (ids, origin, links) around an
//! IntelMQ payload. Every format decodes into it and encodes from it.
//!
//! Two wire forms map onto the same [`Envelope`] without loss: IEP04
//! (`{"meta": {...}, "payload": {...}}`, this module) and the AIL Stream
//! Format v1 that IntelMQ later adopted ([`ail`]).

mod ail;

use serde_json::{json, Map, Value};
use sha1::{Digest, Sha1};
use uuid::Uuid;

use crate::error::{Error, Result};
use crate::event::Event;
use crate::formats::json;
use crate::harmonization::{Harmonization, MessageType};

/// The only IEP04 meta version there is.
pub const VERSION: u64 = 1;

/// Meta extension key that places a split event in its group.
pub const SPLIT_KEY: &str = "x-split";

/// The bridge's UUIDv5 namespace, for ids derived from other systems' ids,
/// so that decoding the same message twice gives the same ids.
pub const NAMESPACE: Uuid = Uuid::from_u128(0x6b1e_3c2a_9f4d_5e07_8a61_2d4c_0b9e_7f35);

/// A deterministic id (UUIDv5 in [`NAMESPACE`]) for `name`, such as
/// `idea:<ID>` for a whole message or `idea:<ID>#2` for its third split event.
pub fn derived_id(name: &str) -> Uuid {
    uuid_v5(&NAMESPACE, name.as_bytes())
}

/// A UUID's lower-case hyphenated text, as ids are written everywhere,
/// made without the formatting machinery.
pub fn uuid_text(id: Uuid) -> String {
    id.hyphenated()
        .encode_lower(&mut Uuid::encode_buffer())
        .to_owned()
}

/// The UUIDv5 of `name` in `namespace` (RFC 9562), as `Uuid::new_v5` makes
/// it, but hashed by the `sha1` crate, which uses the CPU's SHA instructions
/// where it has them: a STIX bundle needs about a dozen of these per event.
pub fn uuid_v5(namespace: &Uuid, name: &[u8]) -> Uuid {
    let mut hasher = Sha1::new();
    hasher.update(namespace.as_bytes());
    hasher.update(name);
    let hash = hasher.finalize();
    let mut bytes = [0; 16];
    bytes.copy_from_slice(&hash[..16]);
    uuid::Builder::from_sha1_bytes(bytes).into_uuid()
}

/// Links events split from one message: each gets `group` in
/// `meta.uuid.group` and its place (`x-split` index and count).
pub fn link_split_group(events: &mut [Envelope], group: &str) {
    let count = events.len() as u64;
    for (index, event) in events.iter_mut().enumerate() {
        event.meta.uuid.add_group(group);
        event.meta.set_split(Split {
            index: index as u64,
            count,
        });
    }
}

/// An IntelMQ message with the IEP04 meta information that identifies it
/// across instances and formats.
#[derive(Debug, Clone, PartialEq)]
pub struct Envelope {
    /// Ids, origin, links and extensions.
    pub meta: Meta,
    /// The IntelMQ fields.
    pub payload: Event,
}

/// IEP04 `meta`.
#[derive(Debug, Clone)]
pub struct Meta {
    /// `meta.version`, always [`VERSION`].
    pub version: u64,
    /// `meta.type`: an event or a report.
    pub kind: MessageType,
    /// `meta.format`: the format the message arrived in (`intelmq`, `idea`, ...).
    pub format: String,
    /// `meta.uuid`: the message's ids.
    pub uuid: Ids,
    /// `meta.links`: typed links to other messages (IEP04 variant B).
    /// `None` when the key was absent, so that re-serialising is exact.
    pub links: Option<Vec<Link>>,
    /// Every `x-*` key of `meta`, kept verbatim.
    pub extensions: Map<String, Value>,
    /// Whether this meta arrived with the message (restored from an envelope
    /// or a format's extension spot) rather than being made when the message
    /// was decoded here. Only arrived meta can reveal a loop by its origin.
    /// Not part of the wire form, and not compared by `==`.
    pub arrived: bool,
}

impl PartialEq for Meta {
    fn eq(&self, other: &Self) -> bool {
        self.version == other.version
            && self.kind == other.kind
            && self.format == other.format
            && self.uuid == other.uuid
            && self.links == other.links
            && self.extensions == other.extensions
    }
}

/// `meta.uuid`: who made the message and every id it is known by.
///
/// The lists are `None` when absent on input, so that what was parsed is
/// written back exactly; new envelopes carry all three (empty).
#[derive(Debug, Clone, PartialEq)]
pub struct Ids {
    /// The instance that first created the message.
    pub origin: String,
    /// The message's own id, assigned once and never changed by translation.
    pub id: Uuid,
    /// Ids of otherwise related messages (correlation, meta-events).
    pub related: Option<Vec<String>>,
    /// Ids of the groups this message belongs to (split from one source message).
    pub group: Option<Vec<String>>,
    /// Every id the message had in another system, prefixed by its scheme
    /// (`idea:…`, `n6:…`, `stix:…`, `rt:…`).
    pub alternate: Option<Vec<String>>,
}

/// A typed link to another message.
#[derive(Debug, Clone, PartialEq)]
pub struct Link {
    /// What the link means, e.g. `split-from`, `replaces`.
    pub kind: String,
    /// The id linked to.
    pub id: String,
}

/// Where a split event sits in its group: the `x-split` extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Split {
    /// Zero-based place in the group.
    pub index: u64,
    /// How many events the group has.
    pub count: u64,
}

/// The two wire forms of an envelope.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum WireForm {
    /// `{"meta": {"version", "type", "format", "uuid": {...}}, "payload"}`.
    Iep04,
    /// AIL Stream Format v1: `{"format", "version", "type", "meta", "payload"}`.
    Ail,
}

impl Ids {
    /// Ids for a message created here and now: a new UUIDv7.
    pub fn new(origin: &str) -> Self {
        Ids::with_id(origin, Uuid::now_v7())
    }

    /// Ids for a message whose id is already decided (derived, or restored).
    pub fn with_id(origin: &str, id: Uuid) -> Self {
        Ids {
            origin: origin.to_owned(),
            id,
            related: Some(Vec::new()),
            group: Some(Vec::new()),
            alternate: Some(Vec::new()),
        }
    }

    /// Records an id from another system, once.
    pub fn add_alternate(&mut self, id: impl Into<String>) {
        push_unique(&mut self.alternate, id.into());
    }

    /// Records a group this message belongs to, once.
    pub fn add_group(&mut self, id: impl Into<String>) {
        push_unique(&mut self.group, id.into());
    }

    /// Records a related message, once.
    pub fn add_related(&mut self, id: impl Into<String>) {
        push_unique(&mut self.related, id.into());
    }

    /// When the message was created, as its id says: time-ordered ids
    /// (UUIDv7, and v1/v6) carry their creation time; derived ones do not.
    pub fn created_at(&self) -> Option<chrono::DateTime<chrono::Utc>> {
        let (seconds, nanos) = self.id.get_timestamp()?.to_unix();
        chrono::DateTime::from_timestamp(i64::try_from(seconds).ok()?, nanos)
    }

    /// The alternate ids (empty when none).
    pub fn alternates(&self) -> &[String] {
        self.alternate.as_deref().unwrap_or_default()
    }

    /// The group ids (empty when none).
    pub fn groups(&self) -> &[String] {
        self.group.as_deref().unwrap_or_default()
    }

    /// The related ids (empty when none).
    pub fn related_ids(&self) -> &[String] {
        self.related.as_deref().unwrap_or_default()
    }
}

fn push_unique(list: &mut Option<Vec<String>>, id: String) {
    let list = list.get_or_insert_with(Vec::new);
    if !list.contains(&id) {
        list.push(id);
    }
}

impl Meta {
    /// Meta for a message that arrives without any: version 1, a new id.
    pub fn new(kind: MessageType, format: &str, origin: &str) -> Self {
        Meta::with_ids(kind, format, Ids::new(origin))
    }

    /// Meta made here for a message whose ids are already decided (derived
    /// from a partner's id, so that decoding it again gives the same ids).
    pub fn with_ids(kind: MessageType, format: &str, uuid: Ids) -> Self {
        Meta {
            version: VERSION,
            kind,
            format: format.to_owned(),
            uuid,
            links: None,
            extensions: Map::new(),
            arrived: false,
        }
    }

    /// The event's place in its split group, if it was split.
    pub fn split(&self) -> Option<Split> {
        let split = self.extensions.get(SPLIT_KEY)?;
        Some(Split {
            index: split.get("index")?.as_u64()?,
            count: split.get("count")?.as_u64()?,
        })
    }

    /// Marks the event as part `index` of a group of `count`.
    pub fn set_split(&mut self, split: Split) {
        let value = json!({"index": split.index, "count": split.count});
        self.extensions.insert(SPLIT_KEY.to_owned(), value);
    }

    /// Adds a typed link.
    pub fn add_link(&mut self, kind: &str, id: &str) {
        self.links.get_or_insert_with(Vec::new).push(Link {
            kind: kind.to_owned(),
            id: id.to_owned(),
        });
    }

    /// Reads an IEP04 `meta` object, naming the key that is wrong.
    pub fn from_value(meta: Value) -> Result<Self> {
        let Value::Object(meta) = meta else {
            return Err(Error::shape("meta: not a JSON object"));
        };
        let mut version = None;
        let mut kind = None;
        let mut format = None;
        let mut uuid = None;
        let mut links = None;
        let mut extensions = Map::new();
        for (key, value) in meta {
            match key.as_str() {
                "version" => version = Some(parse_version("meta.version", &value)?),
                "type" => kind = Some(parse_kind("meta.type", &value)?),
                "format" => format = Some(parse_string("meta.format", value)?),
                "uuid" => uuid = Some(parse_ids(value)?),
                "links" => links = Some(parse_links(value)?),
                _ if key.starts_with("x-") => {
                    extensions.insert(key, value);
                }
                _ => {
                    return Err(Error::UnknownField {
                        field: format!("meta.{key}"),
                    })
                }
            }
        }
        let missing = |field: &str| Error::Missing {
            field: field.to_owned(),
        };
        Ok(Meta {
            version: version.ok_or_else(|| missing("meta.version"))?,
            kind: kind.ok_or_else(|| missing("meta.type"))?,
            format: format.ok_or_else(|| missing("meta.format"))?,
            uuid: uuid.ok_or_else(|| missing("meta.uuid"))?,
            links,
            extensions,
            arrived: true,
        })
    }

    /// The IEP04 JSON of this meta.
    pub fn to_value(&self) -> Value {
        let mut meta = Map::with_capacity(5 + self.extensions.len());
        meta.insert("version".into(), self.version.into());
        meta.insert("type".into(), kind_name(self.kind).into());
        meta.insert("format".into(), self.format.clone().into());
        let mut uuid = Map::with_capacity(5);
        uuid.insert("origin".into(), self.uuid.origin.clone().into());
        uuid.insert("id".into(), self.uuid.id.to_string().into());
        for (name, list) in [
            ("related", &self.uuid.related),
            ("group", &self.uuid.group),
            ("alternate", &self.uuid.alternate),
        ] {
            if let Some(list) = list {
                uuid.insert(name.into(), list.clone().into());
            }
        }
        meta.insert("uuid".into(), Value::Object(uuid));
        if let Some(links) = &self.links {
            meta.insert("links".into(), links_value(links));
        }
        for (key, value) in &self.extensions {
            meta.insert(key.clone(), value.clone());
        }
        Value::Object(meta)
    }

    /// Appends the JSON text of [`Meta::to_value`], the bytes
    /// [`json::write_value`] writes of it, without building the value.
    pub fn write_json(&self, out: &mut Vec<u8>) {
        self.write_json_adding(out, std::iter::empty());
    }

    /// [`Meta::write_json`] of this meta with the distinct alternate ids
    /// `more` added as [`Ids::add_alternate`] adds them (after those it
    /// has, each once), without copying the meta: for a format that records
    /// the ids it gives a message in the meta it carries.
    pub fn write_json_adding<'m>(
        &'m self,
        out: &mut Vec<u8>,
        more: impl Iterator<Item = &'m str> + Clone,
    ) {
        out.extend_from_slice(b"{\"version\":");
        json::write_value(out, &self.version.into());
        out.extend_from_slice(b",\"type\":");
        json::write_str(out, kind_name(self.kind));
        out.extend_from_slice(b",\"format\":");
        json::write_str(out, &self.format);
        out.extend_from_slice(b",\"uuid\":{\"origin\":");
        json::write_str(out, &self.uuid.origin);
        out.extend_from_slice(b",\"id\":");
        json::write_str(
            out,
            self.uuid
                .id
                .hyphenated()
                .encode_lower(&mut Uuid::encode_buffer()),
        );
        for (name, list) in [("related", &self.uuid.related), ("group", &self.uuid.group)] {
            let Some(list) = list else {
                continue;
            };
            out.push(b',');
            json::write_plain_key(out, name);
            json::write_items(out, list, |out, id| json::write_str(out, id));
        }
        let known = self.uuid.alternates();
        let added = more.filter(|id| !known.iter().any(|known| known == id));
        if self.uuid.alternate.is_some() || added.clone().next().is_some() {
            out.push(b',');
            json::write_plain_key(out, "alternate");
            let all = known.iter().map(String::as_str).chain(added);
            json::write_items(out, all, json::write_str);
        }
        out.push(b'}');
        if let Some(links) = &self.links {
            out.extend_from_slice(b",\"links\":");
            json::write_value(out, &links_value(links));
        }
        for (key, value) in &self.extensions {
            out.push(b',');
            json::write_entry(out, key, value);
        }
        out.push(b'}');
    }
}

impl Envelope {
    /// Wraps a payload that arrived without meta, giving it a new id.
    pub fn new(payload: Event, kind: MessageType, format: &str, origin: &str) -> Self {
        Envelope {
            meta: Meta::new(kind, format, origin),
            payload,
        }
    }

    /// Which wire form `value` has, if it is an envelope at all.
    pub fn wire_form(value: &Value) -> Option<WireForm> {
        let object = value.as_object()?;
        object.get("payload")?;
        let meta = object.get("meta")?.as_object()?;
        match meta.get("uuid")? {
            Value::Object(_) => Some(WireForm::Iep04),
            Value::String(_) if object.contains_key("format") => Some(WireForm::Ail),
            _ => None,
        }
    }

    /// Reads an envelope in either wire form, checking the payload against
    /// the harmonization.
    pub fn from_value(value: Value, harmonization: &Harmonization) -> Result<Self> {
        match Envelope::wire_form(&value) {
            Some(WireForm::Iep04) => Envelope::from_iep04(value, harmonization),
            Some(WireForm::Ail) => ail::from_ail(value, harmonization),
            None => Err(Error::shape(
                "not an envelope: expected \"meta\" with \"uuid\" and \"payload\"",
            )),
        }
    }

    fn from_iep04(value: Value, harmonization: &Harmonization) -> Result<Self> {
        let Value::Object(object) = value else {
            return Err(Error::shape("envelope: not a JSON object"));
        };
        let mut meta = None;
        let mut payload = None;
        for (key, value) in object {
            match key.as_str() {
                "meta" => meta = Some(Meta::from_value(value)?),
                "payload" => payload = Some(value),
                _ => return Err(Error::UnknownField { field: key }),
            }
        }
        let meta = meta.ok_or_else(|| Error::Missing {
            field: "meta".into(),
        })?;
        let payload = payload.ok_or_else(|| Error::Missing {
            field: "payload".into(),
        })?;
        let payload = payload_event(meta.kind, payload, harmonization)?;
        Ok(Envelope { meta, payload })
    }

    /// The envelope in the given wire form.
    pub fn to_wire(&self, form: WireForm) -> Value {
        match form {
            WireForm::Iep04 => json!({
                "meta": self.meta.to_value(),
                "payload": &self.payload,
            }),
            WireForm::Ail => ail::to_ail(self),
        }
    }
}

/// Checks an envelope's payload against the harmonization of its type.
fn payload_event(
    kind: MessageType,
    payload: Value,
    harmonization: &Harmonization,
) -> Result<Event> {
    let Value::Object(fields) = payload else {
        return Err(Error::shape("payload: not a JSON object"));
    };
    if fields.contains_key("__type") {
        return Err(Error::UnknownField {
            field: "payload.__type".into(),
        });
    }
    Event::from_fields(kind, fields, harmonization)
}

fn kind_name(kind: MessageType) -> &'static str {
    match kind {
        MessageType::Event => "event",
        MessageType::Report => "report",
    }
}

fn parse_version(field: &str, value: &Value) -> Result<u64> {
    match value.as_u64() {
        Some(VERSION) => Ok(VERSION),
        _ => Err(Error::invalid(
            field,
            value,
            "is not a supported version (1)",
        )),
    }
}

fn parse_kind(field: &str, value: &Value) -> Result<MessageType> {
    match value.as_str() {
        Some("event") => Ok(MessageType::Event),
        Some("report") => Ok(MessageType::Report),
        _ => Err(Error::invalid(
            field,
            value,
            "is not a message type (event, report)",
        )),
    }
}

fn parse_string(field: &str, value: Value) -> Result<String> {
    match value {
        Value::String(text) if !text.is_empty() => Ok(text),
        other => Err(Error::invalid(field, &other, "is not a non-empty string")),
    }
}

fn parse_uuid(field: &str, value: &Value) -> Result<Uuid> {
    value
        .as_str()
        .and_then(|text| Uuid::parse_str(text).ok())
        .ok_or_else(|| Error::invalid(field, value, "is not a UUID"))
}

fn parse_id_list(field: &str, value: Value) -> Result<Vec<String>> {
    let Value::Array(items) = value else {
        return Err(Error::invalid(field, &value, "is not a list of ids"));
    };
    items
        .into_iter()
        .map(|item| parse_string(field, item))
        .collect()
}

fn parse_ids(value: Value) -> Result<Ids> {
    let Value::Object(object) = value else {
        return Err(Error::invalid("meta.uuid", &value, "is not an object"));
    };
    let mut origin = None;
    let mut id = None;
    let (mut related, mut group, mut alternate) = (None, None, None);
    for (key, value) in object {
        match key.as_str() {
            "origin" => origin = Some(parse_string("meta.uuid.origin", value)?),
            "id" => id = Some(parse_uuid("meta.uuid.id", &value)?),
            "related" => related = Some(parse_id_list("meta.uuid.related", value)?),
            "group" => group = Some(parse_id_list("meta.uuid.group", value)?),
            "alternate" => alternate = Some(parse_id_list("meta.uuid.alternate", value)?),
            _ => {
                return Err(Error::UnknownField {
                    field: format!("meta.uuid.{key}"),
                })
            }
        }
    }
    Ok(Ids {
        origin: origin.ok_or_else(|| Error::Missing {
            field: "meta.uuid.origin".into(),
        })?,
        id: id.ok_or_else(|| Error::Missing {
            field: "meta.uuid.id".into(),
        })?,
        related,
        group,
        alternate,
    })
}

fn parse_links(value: Value) -> Result<Vec<Link>> {
    let Value::Array(items) = value else {
        return Err(Error::invalid("meta.links", &value, "is not a list"));
    };
    items
        .into_iter()
        .map(|item| {
            let kind = item.get("type").cloned().unwrap_or(Value::Null);
            let id = item.get("id").cloned().unwrap_or(Value::Null);
            let extra_keys = item
                .as_object()
                .is_none_or(|object| object.keys().any(|k| k != "type" && k != "id"));
            if extra_keys {
                return Err(Error::invalid(
                    "meta.links",
                    &item,
                    "is not a {type, id} link",
                ));
            }
            Ok(Link {
                kind: parse_string("meta.links.type", kind)?,
                id: parse_string("meta.links.id", id)?,
            })
        })
        .collect()
}

fn links_value(links: &[Link]) -> Value {
    links
        .iter()
        .map(|link| json!({"type": link.kind, "id": link.id}))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(value: Value) -> Result<Envelope> {
        Envelope::from_value(value, Harmonization::intelmq())
    }

    fn sample() -> Value {
        json!({
            "meta": {
                "version": 1,
                "type": "event",
                "format": "idea",
                "uuid": {
                    "origin": "cert-xy",
                    "id": "0192f3a4-5b6c-7d8e-9f00-112233445566",
                    "related": [],
                    "group": ["0192f3a4-0000-7000-8000-000000000001"],
                    "alternate": ["idea:4d2f", "rt:CESNET-RT#2235"]
                },
                "links": [{"type": "split-from", "id": "idea:4d2f"}],
                "x-split": {"index": 0, "count": 2},
                "x-vendor": {"anything": [1, 2, 3]}
            },
            "payload": {
                "source.ip": "192.0.2.1",
                "classification.taxonomy": "information-gathering",
                "classification.type": "scanner",
                "time.source": "2026-01-01T00:00:00+00:00"
            }
        })
    }

    #[test]
    fn iep04_round_trips_exactly() {
        let envelope = parse(sample()).unwrap();
        assert_eq!(envelope.to_wire(WireForm::Iep04), sample());
        assert_eq!(envelope.meta.split(), Some(Split { index: 0, count: 2 }));
    }

    #[test]
    fn meta_is_written_as_its_value_is() {
        let full = parse(sample()).unwrap().meta;
        let mut other = Meta::new(MessageType::Report, "n\"6", "or\\igin\u{1}");
        other.uuid.related = None;
        other.uuid.group = None;
        other.uuid.add_alternate("idea:x\"y");
        other
            .extensions
            .insert("x-a\"b".into(), json!({"k": [1, "v"]}));
        for meta in [
            full,
            other,
            Meta::new(MessageType::Event, "intelmq", "here"),
        ] {
            let mut written = Vec::new();
            meta.write_json(&mut written);
            let mut expected = Vec::new();
            json::write_value(&mut expected, &meta.to_value());
            assert_eq!(String::from_utf8(written), String::from_utf8(expected));
        }
    }

    #[test]
    fn absent_lists_stay_absent() {
        let mut value = sample();
        let uuid = value["meta"]["uuid"].as_object_mut().unwrap();
        uuid.remove("related");
        uuid.remove("group");
        value["meta"].as_object_mut().unwrap().remove("links");
        let envelope = parse(value.clone()).unwrap();
        assert_eq!(envelope.to_wire(WireForm::Iep04), value);
    }

    #[test]
    fn bad_meta_is_named() {
        let mut value = sample();
        value["meta"]["uuid"]["id"] = json!("not-a-uuid");
        assert_eq!(
            parse(value).unwrap_err().to_string(),
            r#"meta.uuid.id: "not-a-uuid" is not a UUID"#
        );
        let mut value = sample();
        value["meta"]["colour"] = json!("red");
        assert_eq!(
            parse(value).unwrap_err().to_string(),
            "meta.colour: unknown field, not in IntelMQ's harmonization"
        );
        let mut value = sample();
        value["meta"]["version"] = json!(2);
        assert!(parse(value)
            .unwrap_err()
            .to_string()
            .starts_with("meta.version: 2"));
    }

    #[test]
    fn payload_is_checked() {
        let mut value = sample();
        value["payload"]["source.ip"] = json!("999.1.1.1");
        assert_eq!(
            parse(value).unwrap_err().to_string(),
            r#"source.ip: "999.1.1.1" is not an IP address"#
        );
    }

    #[test]
    fn new_ids_are_uuid_v7_with_all_lists() {
        let ids = Ids::new("here");
        assert_eq!(ids.id.get_version_num(), 7);
        let meta = Meta::new(MessageType::Event, "intelmq", "here").to_value();
        assert_eq!(meta["uuid"]["related"], json!([]));
        assert_eq!(meta["uuid"]["group"], json!([]));
        assert_eq!(meta["uuid"]["alternate"], json!([]));
    }

    #[test]
    fn creation_time_comes_from_time_ordered_ids_only() {
        let made = Ids::new("here");
        let age = chrono::Utc::now() - made.created_at().unwrap();
        assert!(age.num_seconds().abs() < 60);
        assert_eq!(
            Ids::with_id("here", derived_id("idea:1")).created_at(),
            None
        );
    }

    #[test]
    fn derived_ids_are_stable_v5() {
        let id = derived_id("idea:4d2f");
        assert_eq!(id, derived_id("idea:4d2f"));
        assert_ne!(id, derived_id("idea:4d2f#1"));
        assert_eq!(id.get_version_num(), 5);
    }

    #[test]
    fn uuid_v5_is_the_rfcs() {
        // RFC 9562 appendix A.4: "www.example.com" in the DNS namespace.
        let dns = uuid_v5(&Uuid::NAMESPACE_DNS, b"www.example.com");
        assert_eq!(dns.to_string(), "2ed6657d-e927-568b-95e1-2665a8aea6a2");
    }

    #[test]
    fn split_groups_share_a_group_and_know_their_place() {
        let event = || Envelope::new(Event::default(), MessageType::Event, "idea", "here");
        let mut events = vec![event(), event(), event()];
        link_split_group(&mut events, "g-1");
        for (index, event) in events.iter().enumerate() {
            assert_eq!(event.meta.uuid.groups(), ["g-1"]);
            assert_eq!(
                event.meta.split(),
                Some(Split {
                    index: index as u64,
                    count: 3
                })
            );
        }
    }

    #[test]
    fn alternates_are_kept_once() {
        let mut ids = Ids::new("here");
        ids.add_alternate("idea:1");
        ids.add_alternate("idea:1");
        assert_eq!(ids.alternates(), ["idea:1"]);
    }

    #[test]
    fn meta_is_written_with_alternates_added_as_if_added() {
        let more = ["stix:a", "idea:1", "stix:b"];
        let mut absent = Meta::new(MessageType::Event, "intelmq", "here");
        absent.uuid.alternate = None;
        let mut known = absent.clone();
        known.uuid.add_alternate("idea:1");
        for meta in [absent, known] {
            let mut added = meta.clone();
            for id in more {
                added.uuid.add_alternate(id);
            }
            let mut expected = Vec::new();
            added.write_json(&mut expected);
            let mut written = Vec::new();
            meta.write_json_adding(&mut written, more.into_iter());
            assert_eq!(String::from_utf8(written), String::from_utf8(expected));
        }
    }
}
