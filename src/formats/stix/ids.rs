//! STIX ids and timestamps.
//!
//! - SCO ids are the specification's deterministic UUIDv5: namespace
//!   [`SCO_NAMESPACE`], name the JCS (RFC 8785) canonical JSON of the
//!   object's contributing properties.
//! - SDO and SRO ids are derived from the envelope id and the object's
//!   role (`<envelope id>/<role>`): a UUIDv5 in the bridge's namespace whose
//!   version nibble is then set to 4 (variant RFC 4122). The same event thus
//!   always gives the same ids, and they have the v4 shape the validator asks
//!   of SDOs (warning 103). STIX forbids UUIDv7, the envelope's own ids.
//! - Timestamps are UTC, `Z`, millisecond precision.

use std::fmt;
use std::hash::{Hash, Hasher};

use chrono::{DateTime, Timelike, Utc};
use serde_json::Value;
use uuid::Uuid;

use crate::envelope::{derived_id, uuid_v5};
use crate::formats::json;
use crate::harmonization::{push_date_time, push_digits};

/// The STIX 2.1 namespace for deterministic SCO ids.
pub const SCO_NAMESPACE: Uuid = Uuid::from_u128(0x00ab_edb4_aa42_466c_9c01_fed2_3315_a9b7);

/// A STIX id, `<kind>--<uuid>`: kept as its type and UUID, the UUID's text
/// made once, so that it is copied and compared without an allocation and
/// written, often several times, as a copy of bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StixId {
    kind: &'static str,
    uuid: Uuid,
    /// The UUID's hyphenated text (ASCII).
    text: [u8; uuid::fmt::Hyphenated::LENGTH],
}

/// Ids are hashed by their UUID alone: ids that are equal have the same
/// one, and it is already a hash (SHA-1 derived).
impl Hash for StixId {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_u128(self.uuid.as_u128());
    }
}

impl StixId {
    /// The id of an object of `kind` whose UUID is `uuid`.
    fn new(kind: &'static str, uuid: Uuid) -> Self {
        let mut text = [0; uuid::fmt::Hyphenated::LENGTH];
        uuid.hyphenated().encode_lower(&mut text);
        StixId { kind, uuid, text }
    }

    /// The type of the object the id names.
    pub fn kind(&self) -> &'static str {
        self.kind
    }

    /// The id's text in pieces: `<kind>`, `--`, `<uuid>`.
    fn pieces(&self) -> [&[u8]; 3] {
        [self.kind.as_bytes(), b"--", &self.text]
    }

    /// Appends the id as a JSON string (it needs no escaping).
    pub fn write_json(&self, out: &mut Vec<u8>) {
        out.push(b'"');
        for piece in self.pieces() {
            out.extend_from_slice(piece);
        }
        out.push(b'"');
    }

    /// The UUID's text.
    fn uuid_text(&self) -> &str {
        // Always ASCII: an empty text is never written.
        std::str::from_utf8(&self.text).unwrap_or_default()
    }

    /// Appends `<scheme>:<kind>--<uuid>`, the id as an alternate id of an
    /// envelope, to `text`.
    pub fn push_alternate(&self, scheme: &str, text: &mut String) {
        for piece in [scheme, ":", self.kind, "--", self.uuid_text()] {
            text.push_str(piece);
        }
    }
}

impl fmt::Display for StixId {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "{}--{}", self.kind, self.uuid_text())
    }
}

/// The id of a cyber-observable of `kind` whose contributing properties
/// are `canonical`, their canonical JSON ([`write_canonical`]).
pub fn sco_id(kind: &'static str, canonical: &[u8]) -> StixId {
    StixId::new(kind, uuid_v5(&SCO_NAMESPACE, canonical))
}

/// The id of a domain or relationship object of `kind` playing `role` for
/// the message whose (group or envelope) id is `owner`.
pub fn sdo_id(kind: &'static str, owner: &str, role: &str) -> StixId {
    SdoIds::new(owner).id(kind, role)
}

/// The ids of the domain and relationship objects of one message, whose
/// (group or envelope) id is the owner: each is derived from
/// `<owner>/<role>`, a name made in one buffer for all of them.
pub struct SdoIds {
    name: String,
    /// The length of `<owner>/`, which every name starts with.
    owner_len: usize,
}

impl SdoIds {
    /// The ids of the objects of the message whose id is `owner`.
    pub fn new(owner: &str) -> Self {
        let mut name = String::with_capacity(owner.len() + 48);
        name.push_str(owner);
        name.push('/');
        SdoIds {
            owner_len: name.len(),
            name,
        }
    }

    /// The id of the object of `kind` playing `role`.
    pub fn id(&mut self, kind: &'static str, role: &str) -> StixId {
        self.name.truncate(self.owner_len);
        self.name.push_str(role);
        let derived = derived_id(&self.name);
        StixId::new(
            kind,
            uuid::Builder::from_random_bytes(derived.into_bytes()).into_uuid(),
        )
    }
}

/// A STIX timestamp: UTC, `Z`, milliseconds.
pub fn timestamp(time: &DateTime<Utc>) -> String {
    let mut text = String::with_capacity(24);
    if push_date_time(&mut text, time).is_none() {
        return time.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string();
    }
    text.push('.');
    push_digits(&mut text, time.nanosecond() / 1_000_000, 3);
    text.push('Z');
    text
}

/// Writes `value` as RFC 8785 (JCS) canonical JSON: keys sorted, no
/// whitespace, strings escaped as ECMAScript does (which is how
/// [`json::write_str`] escapes them). Numbers are written as ECMAScript
/// prints them for the values STIX ids use (integers, and floats without a
/// fraction as integers); contributing properties hold no other numbers.
pub fn write_canonical(out: &mut Vec<u8>, value: &Value) {
    match value {
        Value::Object(map) => {
            let mut entries: Vec<(&str, &Value)> =
                map.iter().map(|(key, item)| (key.as_str(), item)).collect();
            // JCS sorts by UTF-16 code units.
            entries.sort_by(|(a, _), (b, _)| a.encode_utf16().cmp(b.encode_utf16()));
            json::write_members(out, entries, |out, (key, item)| {
                json::write_str(out, key);
                out.push(b':');
                write_canonical(out, item);
            });
        }
        Value::Array(items) => json::write_items(out, items, write_canonical),
        Value::String(text) => json::write_str(out, text),
        Value::Number(number) => match number.as_f64() {
            Some(float) if number.is_f64() && float.fract() == 0.0 && float.abs() < 1e21 => {
                out.extend_from_slice(format!("{float:.0}").as_bytes());
            }
            _ => json::write_value(out, value),
        },
        Value::Bool(_) | Value::Null => json::write_value(out, value),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// The id of an SCO whose contributing properties are `properties`.
    fn sco_id_of(kind: &'static str, properties: Value) -> String {
        let mut canonical = Vec::new();
        write_canonical(&mut canonical, &properties);
        sco_id(kind, &canonical).to_string()
    }

    #[test]
    fn sco_ids_match_the_checked_examples() {
        assert_eq!(
            sco_id_of("ipv4-addr", json!({"value": "198.51.100.23"})),
            "ipv4-addr--cec0294c-86c8-52cc-8448-ba43593736df"
        );
        assert_eq!(
            sco_id_of("autonomous-system", json!({"number": 64511})),
            "autonomous-system--db7cbda9-7395-5be3-a796-461cd09d6dac"
        );
        // The worked example's network-traffic, keys deliberately unsorted.
        let traffic = json!({
            "src_port": 50022,
            "src_ref": "ipv4-addr--cec0294c-86c8-52cc-8448-ba43593736df",
            "protocols": ["ipv4", "tcp", "ssh"],
            "dst_port": 22,
        });
        assert_eq!(
            sco_id_of("network-traffic", traffic),
            "network-traffic--5b4d7afc-316f-56ef-888f-4f5d8a5eacb4"
        );
    }

    #[test]
    fn canonical_json_sorts_escapes_and_prints_integers() {
        let mut out = Vec::new();
        let value = json!({"b": [1.0, "x\"\\\u{1}\n"], "a": {"é": true, "Z": null}});
        write_canonical(&mut out, &value);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            r#"{"a":{"Z":null,"é":true},"b":[1,"x\"\\\u0001\n"]}"#
        );
    }

    #[test]
    fn ids_write_as_their_text() {
        let id = sdo_id("indicator", "owner", "indicator");
        let mut json = Vec::new();
        id.write_json(&mut json);
        assert_eq!(String::from_utf8(json).unwrap(), format!("\"{id}\""));
        let mut alternate = String::from("before ");
        id.push_alternate("stix", &mut alternate);
        assert_eq!(alternate, format!("before stix:{id}"));
    }

    #[test]
    fn sdo_ids_are_stable_and_v4_shaped() {
        let id = sdo_id(
            "indicator",
            "0192f3a4-5b6c-7d8e-9f00-112233445566",
            "indicator",
        );
        assert_eq!(
            id,
            sdo_id(
                "indicator",
                "0192f3a4-5b6c-7d8e-9f00-112233445566",
                "indicator"
            )
        );
        assert!(id.to_string().starts_with("indicator--"));
        assert_eq!(id.uuid.get_version_num(), 4);
        assert_eq!(id.uuid.get_variant(), uuid::Variant::RFC4122);
        let mut ids = SdoIds::new("0192f3a4-5b6c-7d8e-9f00-112233445566");
        let malware = ids.id("indicator", "malware");
        assert_ne!(id, malware);
        // A name made after another is the same as one made first.
        assert_eq!(ids.id("indicator", "indicator"), id);
        assert_eq!(ids.id("indicator", "malware"), malware);
    }

    #[test]
    fn timestamps_are_utc_milliseconds() {
        let time = DateTime::parse_from_rfc3339("2026-01-05T09:14:03.123456+01:00")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(timestamp(&time), "2026-01-05T08:14:03.123Z");
        let strftime = |time: DateTime<Utc>| time.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string();
        for seconds in [0, 1_767_225_600, -62_000_000_000, 300_000_000_000] {
            let time = DateTime::from_timestamp(seconds, 987_654_321).unwrap();
            assert_eq!(timestamp(&time), strftime(time));
        }
    }
}
