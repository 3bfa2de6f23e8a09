//! A fingerprint over an event's stable fields, for the same outside event
//! imported independently by two instances (different UUIDs, same content).
//!
//! Unlike IntelMQ's `Message.hash()` (Python `repr` of each value), the
//! canonical form here is plain JSON: `[[field, value], ...]` for the
//! configured fields present, in the configured order, so any
//! implementation can compute the same id.

use std::sync::LazyLock;

use serde::Deserialize;
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::event::Event;

/// Scheme of fingerprint alternate ids.
pub const SCHEME: &str = "fp:";

/// Hex digits of the SHA-256 kept in the id (128 bits).
const HEX_DIGITS: usize = 32;

static STANDARD: LazyLock<Vec<String>> = LazyLock::new(|| {
    #[derive(Deserialize)]
    struct Table {
        fields: Vec<String>,
    }
    let table: Result<Table, _> =
        serde_json::from_str(include_str!("../../mappings/identity/fingerprint.json"));
    // The table is part of the binary and covered by tests.
    table
        .map(|table| table.fields)
        .unwrap_or_else(|error| panic!("mappings/identity/fingerprint.json: {error}"))
});

/// Computes `fp:` ids over a list of fields.
#[derive(Debug, Clone)]
pub struct Fingerprint {
    fields: Vec<String>,
}

impl Fingerprint {
    /// The field list of `mappings/identity/fingerprint.json`.
    pub fn standard() -> Self {
        Fingerprint {
            fields: STANDARD.clone(),
        }
    }

    /// A fingerprint over the given fields.
    pub fn over(fields: Vec<String>) -> Self {
        Fingerprint { fields }
    }

    /// The event's fingerprint id, `fp:<32 hex digits>`.
    pub fn id(&self, event: &Event) -> String {
        let pairs: Vec<(&str, &Value)> = self
            .fields
            .iter()
            .filter_map(|field| Some((field.as_str(), event.get(field)?)))
            .collect();
        let canonical = serde_json::to_vec(&pairs).unwrap_or_default();
        let digest = Sha256::digest(&canonical);
        let mut id = String::with_capacity(SCHEME.len() + HEX_DIGITS);
        id.push_str(SCHEME);
        for byte in digest.iter().take(HEX_DIGITS / 2) {
            id.push_str(&format!("{byte:02x}"));
        }
        id
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::harmonization::{Harmonization, MessageType};
    use serde_json::json;

    fn event(value: Value) -> Event {
        let Value::Object(map) = value else {
            unreachable!()
        };
        Event::from_fields(MessageType::Event, map, Harmonization::intelmq()).unwrap()
    }

    #[test]
    fn the_canonical_form_is_documented_json() {
        let fingerprint = Fingerprint::over(vec!["source.ip".into(), "source.port".into()]);
        let id = fingerprint.id(&event(json!({"source.port": 22, "source.ip": "192.0.2.1"})));
        // sha256 of [["source.ip","192.0.2.1"],["source.port",22]]
        let expected = Sha256::digest(br#"[["source.ip","192.0.2.1"],["source.port",22]]"#);
        let hex: String = expected
            .iter()
            .take(16)
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(id, format!("fp:{hex}"));
    }

    #[test]
    fn only_the_listed_fields_count() {
        let fingerprint = Fingerprint::standard();
        let a = event(json!({"source.ip": "192.0.2.1", "comment": "first import"}));
        let b = event(json!({"source.ip": "192.0.2.1", "comment": "second import"}));
        let c = event(json!({"source.ip": "192.0.2.2"}));
        assert_eq!(fingerprint.id(&a), fingerprint.id(&b));
        assert_ne!(fingerprint.id(&a), fingerprint.id(&c));
    }
}
