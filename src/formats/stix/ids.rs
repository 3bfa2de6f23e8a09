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

use std::fmt::Write as _;

use chrono::{DateTime, Datelike, SecondsFormat, Timelike, Utc};
use serde_json::Value;
use uuid::Uuid;

use crate::envelope::{derived_id, uuid_v5};

/// The STIX 2.1 namespace for deterministic SCO ids.
pub const SCO_NAMESPACE: Uuid = Uuid::from_u128(0x00ab_edb4_aa42_466c_9c01_fed2_3315_a9b7);

/// The id of a cyber-observable of `kind` whose contributing properties
/// (those present) are `contributing`.
pub fn sco_id<'v>(
    kind: &str,
    contributing: impl IntoIterator<Item = (&'v str, &'v Value)>,
) -> String {
    let mut canonical = String::new();
    write_canonical_object(&mut canonical, contributing.into_iter().collect());
    typed_id(kind, uuid_v5(&SCO_NAMESPACE, canonical.as_bytes()))
}

/// The id of a domain or relationship object of `kind` playing `role` for
/// the message whose (group or envelope) id is `owner`.
pub fn sdo_id(kind: &str, owner: &str, role: &str) -> String {
    let mut name = String::with_capacity(owner.len() + 1 + role.len());
    name.push_str(owner);
    name.push('/');
    name.push_str(role);
    let derived = derived_id(&name);
    typed_id(
        kind,
        uuid::Builder::from_random_bytes(derived.into_bytes()).into_uuid(),
    )
}

/// `<kind>--<uuid>`, the form of every STIX id, written without the
/// formatting machinery.
fn typed_id(kind: &str, uuid: Uuid) -> String {
    let mut id = String::with_capacity(kind.len() + 2 + uuid::fmt::Hyphenated::LENGTH);
    id.push_str(kind);
    id.push_str("--");
    id.push_str(uuid.hyphenated().encode_lower(&mut Uuid::encode_buffer()));
    id
}

/// A STIX timestamp: UTC, `Z`, milliseconds.
pub fn timestamp(time: &DateTime<Utc>) -> String {
    // RFC 3339 writes the same text for four-digit years and no leap
    // second, without parsing a format string each time.
    if (0..=9999).contains(&time.year()) && time.nanosecond() < 1_000_000_000 {
        return time.to_rfc3339_opts(SecondsFormat::Millis, true);
    }
    time.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}

/// Writes `value` as RFC 8785 (JCS) canonical JSON: keys sorted, no
/// whitespace, strings escaped as ECMAScript does. Numbers are written as
/// ECMAScript prints them for the values STIX ids use (integers, and
/// floats without a fraction as integers); contributing properties hold no
/// other numbers.
pub fn write_canonical(out: &mut String, value: &Value) {
    match value {
        Value::Object(map) => {
            let entries = map.iter().map(|(key, item)| (key.as_str(), item));
            write_canonical_object(out, entries.collect());
        }
        Value::Array(items) => {
            out.push('[');
            for (index, item) in items.iter().enumerate() {
                if index > 0 {
                    out.push(',');
                }
                write_canonical(out, item);
            }
            out.push(']');
        }
        Value::String(text) => write_string(out, text),
        Value::Number(number) => match number.as_f64() {
            Some(float) if number.is_f64() && float.fract() == 0.0 && float.abs() < 1e21 => {
                let _ = write!(out, "{float:.0}");
            }
            _ => {
                let _ = write!(out, "{number}");
            }
        },
        Value::Bool(flag) => out.push_str(if *flag { "true" } else { "false" }),
        Value::Null => out.push_str("null"),
    }
}

/// Writes a JSON object of `entries` canonically: sorted by key.
fn write_canonical_object(out: &mut String, mut entries: Vec<(&str, &Value)>) {
    // JCS sorts by UTF-16 code units.
    entries.sort_by(|(a, _), (b, _)| a.encode_utf16().cmp(b.encode_utf16()));
    out.push('{');
    for (index, (key, item)) in entries.into_iter().enumerate() {
        if index > 0 {
            out.push(',');
        }
        write_string(out, key);
        out.push(':');
        write_canonical(out, item);
    }
    out.push('}');
}

/// Writes `text` as a JCS string: the runs between escapes are copied
/// whole (every escaped character is ASCII, so a byte scan finds them).
fn write_string(out: &mut String, text: &str) {
    out.push('"');
    let mut start = 0;
    for (at, byte) in text.bytes().enumerate() {
        let escape = match byte {
            b'"' => Some("\\\""),
            b'\\' => Some("\\\\"),
            0x08 => Some("\\b"),
            0x0c => Some("\\f"),
            b'\n' => Some("\\n"),
            b'\r' => Some("\\r"),
            b'\t' => Some("\\t"),
            control if control < 0x20 => None,
            _ => continue,
        };
        out.push_str(&text[start..at]);
        match escape {
            Some(escape) => out.push_str(escape),
            None => {
                let _ = write!(out, "\\u{byte:04x}");
            }
        }
        start = at + 1;
    }
    out.push_str(&text[start..]);
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn sco_ids_match_the_checked_examples() {
        assert_eq!(
            sco_id("ipv4-addr", [("value", &json!("198.51.100.23"))]),
            "ipv4-addr--cec0294c-86c8-52cc-8448-ba43593736df"
        );
        assert_eq!(
            sco_id("autonomous-system", [("number", &json!(64511))]),
            "autonomous-system--db7cbda9-7395-5be3-a796-461cd09d6dac"
        );
        // The worked example's network-traffic, keys deliberately unsorted.
        let src_ref = json!("ipv4-addr--cec0294c-86c8-52cc-8448-ba43593736df");
        let protocols = json!(["ipv4", "tcp", "ssh"]);
        let traffic = [
            ("src_port", &json!(50022)),
            ("src_ref", &src_ref),
            ("protocols", &protocols),
            ("dst_port", &json!(22)),
        ];
        assert_eq!(
            sco_id("network-traffic", traffic),
            "network-traffic--5b4d7afc-316f-56ef-888f-4f5d8a5eacb4"
        );
    }

    #[test]
    fn canonical_json_sorts_escapes_and_prints_integers() {
        let mut out = String::new();
        let value = json!({"b": [1.0, "x\"\\\u{1}\n"], "a": {"é": true, "Z": null}});
        write_canonical(&mut out, &value);
        assert_eq!(out, r#"{"a":{"Z":null,"é":true},"b":[1,"x\"\\\u0001\n"]}"#);
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
        let uuid = Uuid::parse_str(id.trim_start_matches("indicator--")).unwrap();
        assert_eq!(uuid.get_version_num(), 4);
        assert_eq!(uuid.get_variant(), uuid::Variant::RFC4122);
        assert_ne!(
            id,
            sdo_id(
                "indicator",
                "0192f3a4-5b6c-7d8e-9f00-112233445566",
                "malware"
            )
        );
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
