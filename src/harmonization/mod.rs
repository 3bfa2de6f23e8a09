//! IntelMQ's harmonization: which fields an event may carry, and which values
//! each field accepts.
//!
//! The field table is data (`mappings/intelmq/harmonization.json`, taken from
//! IntelMQ 3.5's `harmonization.conf`), loaded once. Values are checked by one
//! function per harmonization type ([`FieldType`]), shared by every field of
//! that type, and then against the field's own length, pattern and range.
//!
//! Like IntelMQ's `Message.add`, a value is first tried as it is and, only if
//! that fails, sanitised (IntelMQ's normalisation) and tried again.

mod datetime;
mod pattern;
mod types;
mod word_hash;

use std::collections::HashMap;
use std::sync::LazyLock;

use serde::Deserialize;
use serde_json::Value;

use crate::error::{Error, Result};
use pattern::Pattern;
use word_hash::{hash_key, WordSet};

pub use datetime::parse_datetime;
pub(crate) use datetime::{push_date_time, push_digits};
pub use types::FieldType;
pub(crate) use word_hash::WordMap;

/// The harmonization table shipped with the bridge (IntelMQ 3.5.0).
const HARMONIZATION_JSON: &str = include_str!("../../mappings/intelmq/harmonization.json");
/// IntelMQ 3.5.0's closed classification lists and aliases.
const CLASSIFICATION_JSON: &str = include_str!("../../mappings/intelmq/classification.json");

/// Values IntelMQ treats as "no value" and silently drops (`Message._IGNORED_VALUES`).
const IGNORED_VALUES: [&str; 3] = ["", "-", "N/A"];

/// The field that holds free-form sub-keys (`extra.*`).
pub const EXTRA: &str = "extra";

static INTELMQ: LazyLock<Harmonization> = LazyLock::new(|| {
    // The embedded tables are part of the binary and covered by tests; a
    // failure here is a build defect, not bad input.
    Harmonization::from_json(HARMONIZATION_JSON, CLASSIFICATION_JSON)
        .unwrap_or_else(|error| panic!("embedded harmonization is broken: {error}"))
});

/// IntelMQ message kinds: each has its own field table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum MessageType {
    /// A parsed security event (`"__type": "Event"`).
    Event,
    /// A collector's raw report (`"__type": "Report"`).
    Report,
}

impl MessageType {
    /// The name IntelMQ writes in `__type`.
    pub fn intelmq_name(self) -> &'static str {
        match self {
            MessageType::Event => "Event",
            MessageType::Report => "Report",
        }
    }

    /// The kind named by IntelMQ's `__type` value.
    pub fn from_intelmq_name(name: &str) -> Option<Self> {
        match name {
            "Event" => Some(MessageType::Event),
            "Report" => Some(MessageType::Report),
            _ => None,
        }
    }
}

/// One field's rules: its type and the extra constraints IntelMQ checks.
#[derive(Debug)]
pub struct FieldSpec {
    /// The harmonization type, which decides validation and sanitation.
    pub kind: FieldType,
    /// Longest allowed text (`len(str(value))` in IntelMQ).
    length: Option<usize>,
    /// A pattern the value's text must contain a match of.
    pattern: Option<Pattern>,
    /// Inclusive integer range (the bridge's addition, for ports).
    range: Option<(i64, i64)>,
}

/// The closed classification lists and their aliases.
#[derive(Debug)]
pub struct Classification {
    taxonomy_of_type: WordMap<String, String>,
    taxonomies: WordSet<String>,
    taxonomy_aliases: WordMap<String, String>,
    type_aliases: WordMap<String, String>,
}

impl Classification {
    /// Whether `taxonomy` is one of IntelMQ's taxonomies.
    pub fn is_taxonomy(&self, taxonomy: &str) -> bool {
        self.taxonomies.contains(taxonomy)
    }

    /// Whether `kind` is one of IntelMQ's classification types.
    pub fn is_type(&self, kind: &str) -> bool {
        self.taxonomy_of_type.contains_key(kind)
    }

    /// The taxonomy a classification type belongs to (the taxonomy expert's table).
    pub fn taxonomy_of(&self, kind: &str) -> Option<&str> {
        self.taxonomy_of_type.get(kind).map(String::as_str)
    }

    fn taxonomy_alias(&self, name: &str) -> Option<&str> {
        self.taxonomy_aliases.get(name).map(String::as_str)
    }

    fn type_alias(&self, name: &str) -> Option<&str> {
        self.type_aliases.get(name).map(String::as_str)
    }
}

/// One message kind's fields, sorted by name, with an index by name.
///
/// Every key of every event is looked up here, so the index is an
/// open-addressed table built when the harmonization loads: [`hash_key`]
/// picks a slot, and the slots from there on hold positions in `fields`
/// until an empty one ends the search. With at least four slots per field
/// a search seldom looks at more than one.
#[derive(Debug)]
struct FieldTable {
    fields: Vec<(String, FieldSpec)>,
    /// Positions in `fields`, or [`FieldTable::EMPTY`]; a power of two long.
    slots: Vec<usize>,
    /// How far a hash is shifted right to leave the bits of a slot number.
    shift: u32,
}

impl FieldTable {
    /// A free slot: no field is at this position.
    const EMPTY: usize = usize::MAX;

    fn new(mut fields: Vec<(String, FieldSpec)>) -> Self {
        fields.sort_by(|(a, _), (b, _)| a.cmp(b));
        let size = (fields.len() * 4).next_power_of_two().max(2);
        let mut table = FieldTable {
            slots: vec![Self::EMPTY; size],
            shift: u64::BITS - size.trailing_zeros(),
            fields: Vec::new(),
        };
        for (at, (name, _)) in fields.iter().enumerate() {
            let mut slot = table.first_slot(name);
            while table.slots[slot] != Self::EMPTY {
                slot = (slot + 1) & (size - 1);
            }
            table.slots[slot] = at;
        }
        table.fields = fields;
        table
    }

    /// The slot the search for `key` starts at.
    fn first_slot(&self, key: &str) -> usize {
        // The shift leaves fewer bits than the slot count has, so this fits.
        (hash_key(key.as_bytes()) >> self.shift) as usize
    }

    fn get(&self, key: &str) -> Option<&FieldSpec> {
        self.field(key).map(|field| field.spec)
    }

    fn field(&self, key: &str) -> Option<Field<'_>> {
        let mut slot = self.first_slot(key);
        loop {
            // An empty slot is no position in `fields`, which ends the search.
            let index = self.slots[slot];
            let (name, spec) = self.fields.get(index)?;
            if name == key {
                return Some(Field { index, name, spec });
            }
            slot = (slot + 1) & (self.slots.len() - 1);
        }
    }

    fn names(&self) -> impl Iterator<Item = &str> {
        self.fields.iter().map(|(name, _)| name.as_str())
    }
}

/// A field of a message kind's table, as the table holds it.
#[derive(Debug, Clone, Copy)]
pub struct Field<'h> {
    /// Its place in the table: distinct for every field of a kind, so a
    /// set of fields can be a set of small numbers.
    pub index: usize,
    /// Its name, the table's own copy, which lives as long as the table.
    pub name: &'h str,
    /// Its rules.
    pub spec: &'h FieldSpec,
}

/// IntelMQ's field tables for events and reports, plus the classification lists.
#[derive(Debug)]
pub struct Harmonization {
    event: FieldTable,
    report: FieldTable,
    /// The classification lists that two of the types check against.
    pub classification: Classification,
}

#[derive(Deserialize)]
struct RawSpec {
    #[serde(rename = "type")]
    kind: FieldType,
    length: Option<usize>,
    regex: Option<String>,
    iregex: Option<String>,
    range: Option<(i64, i64)>,
}

#[derive(Deserialize)]
struct RawHarmonization {
    event: HashMap<String, RawSpec>,
    report: HashMap<String, RawSpec>,
}

#[derive(Deserialize)]
struct RawClassification {
    taxonomies: HashMap<String, Vec<String>>,
    taxonomy_aliases: WordMap<String, String>,
    type_aliases: WordMap<String, String>,
}

impl Harmonization {
    /// The harmonization of IntelMQ 3.5.0 that the bridge ships with.
    pub fn intelmq() -> &'static Harmonization {
        &INTELMQ
    }

    /// Builds a harmonization from the JSON of a field table and a classification table.
    pub fn from_json(harmonization: &str, classification: &str) -> Result<Self> {
        let raw: RawHarmonization = serde_json::from_str(harmonization)
            .map_err(|e| Error::Config(format!("harmonization table: {e}")))?;
        let classes: RawClassification = serde_json::from_str(classification)
            .map_err(|e| Error::Config(format!("classification table: {e}")))?;
        let mut taxonomy_of_type = WordMap::default();
        for (taxonomy, kinds) in &classes.taxonomies {
            for kind in kinds {
                taxonomy_of_type.insert(kind.clone(), taxonomy.clone());
            }
        }
        Ok(Harmonization {
            event: compile_table(raw.event)?,
            report: compile_table(raw.report)?,
            classification: Classification {
                taxonomy_of_type,
                taxonomies: classes.taxonomies.into_keys().collect(),
                taxonomy_aliases: classes.taxonomy_aliases,
                type_aliases: classes.type_aliases,
            },
        })
    }

    /// The rules for `key` in a message of `kind`: the field itself, or the
    /// JSONDict field a sub-key such as `extra.foo` belongs to.
    pub fn spec(&self, kind: MessageType, key: &str) -> Option<&FieldSpec> {
        let table = match kind {
            MessageType::Event => &self.event,
            MessageType::Report => &self.report,
        };
        if let Some(spec) = table.get(key) {
            return Some(spec);
        }
        // A byte search: `split_once('.')` costs more than the rest of the
        // sub-key path together on these short keys.
        let dot = key.bytes().position(|byte| byte == b'.')?;
        table
            .get(&key[..dot])
            .filter(|spec| spec.kind == FieldType::JsonDict && is_valid_subkey(key))
    }

    /// The field of the table of `kind` named exactly `key` (a sub-key such
    /// as `extra.foo` is none), with its place and the table's copy of its
    /// name.
    pub fn field(&self, kind: MessageType, key: &str) -> Option<Field<'_>> {
        let table = match kind {
            MessageType::Event => &self.event,
            MessageType::Report => &self.report,
        };
        table.field(key)
    }

    /// Every field name of a message kind, for documentation and tests.
    pub fn field_names(&self, kind: MessageType) -> impl Iterator<Item = &str> {
        let table = match kind {
            MessageType::Event => &self.event,
            MessageType::Report => &self.report,
        };
        table.names()
    }

    /// Checks `value` for `key` the way IntelMQ's `Message.add` does: as it is
    /// first, then sanitised. `Ok(None)` means IntelMQ would drop the value
    /// (`null`, `""`, `"-"`, `"N/A"`); sub-keys of `extra` keep any JSON value.
    pub fn accept(&self, kind: MessageType, key: &str, value: Value) -> Result<Option<Value>> {
        self.accept_known(kind, key, value, None)
    }

    /// [`Harmonization::accept`], given the value an [`Event`] of `kind`
    /// already holds for `key`, if any. A value equal to it comes back as it
    /// is without being checked again: it passed `accept` when it entered
    /// the event, which returns only values that are valid and within the
    /// field's constraints, and returns those unchanged.
    ///
    /// [`Event`]: crate::event::Event
    pub fn accept_known(
        &self,
        kind: MessageType,
        key: &str,
        value: Value,
        known: Option<&Value>,
    ) -> Result<Option<Value>> {
        if is_ignored(&value) {
            return Ok(None);
        }
        if known == Some(&value) {
            return Ok(Some(value));
        }
        let spec = self.spec(kind, key).ok_or_else(|| Error::UnknownField {
            field: key.to_owned(),
        })?;
        self.check(spec, key, value)
    }

    /// [`Harmonization::accept`] for a field whose rules the caller has
    /// already looked up ([`Harmonization::field`]), so the table is not
    /// searched again.
    pub fn accept_field(&self, field: Field, value: Value) -> Result<Option<Value>> {
        if is_ignored(&value) {
            return Ok(None);
        }
        self.check(field.spec, field.name, value)
    }

    /// Checks a value that is not ignored against the rules of `key`: as it
    /// is first, then sanitised.
    fn check(&self, spec: &FieldSpec, key: &str, value: Value) -> Result<Option<Value>> {
        let holds = (spec.kind == FieldType::JsonDict && key != EXTRA)
            || (spec.kind.is_valid(&value, &self.classification)
                && spec.constraint_error(&value).is_none());
        if holds {
            return Ok(Some(value));
        }
        self.check_sanitised(spec, key, value)
    }

    /// [`Harmonization::check`] for a value that is not valid as it is,
    /// kept out of the way of the common case.
    #[cold]
    #[inline(never)]
    fn check_sanitised(&self, spec: &FieldSpec, key: &str, value: Value) -> Result<Option<Value>> {
        match spec.kind.sanitize(&value, &self.classification) {
            Some(clean) if spec.kind.is_valid(&clean, &self.classification) => {
                match spec.constraint_error(&clean) {
                    None => Ok(Some(clean)),
                    Some(reason) => Err(Error::invalid(key, &value, reason)),
                }
            }
            _ => Err(Error::invalid(key, &value, spec.kind.expectation())),
        }
    }
}

impl FieldSpec {
    /// Why `value` breaks this field's length, pattern or range, if it does.
    fn constraint_error(&self, value: &Value) -> Option<String> {
        if let Some(length) = self.length {
            if is_longer_than(value, length) {
                return Some(format!("is longer than {length} characters"));
            }
        }
        if let Some(pattern) = &self.pattern {
            // Values of the types that have patterns are strings; anything
            // else is matched as printed.
            let matches = match value {
                Value::String(text) => pattern.is_match(text),
                other => pattern.is_match(&other.to_string()),
            };
            if !matches {
                return Some(format!("does not match {}", pattern.as_str()));
            }
        }
        if let Some((low, high)) = self.range {
            match value.as_i64() {
                Some(number) if (low..=high).contains(&number) => {}
                _ => return Some(format!("is outside {low}..{high}")),
            }
        }
        None
    }
}

/// Whether `str(value)` in IntelMQ, the text the bridge writes, has more than
/// `limit` characters. Integers (ports) are measured without being printed,
/// and text without being counted when its bytes, never fewer than its
/// characters, are within the limit.
fn is_longer_than(value: &Value, limit: usize) -> bool {
    let digits = |number: u64| number.checked_ilog10().map_or(1, |log| log as usize + 1);
    match value {
        Value::String(text) => text.len() > limit && text.chars().count() > limit,
        Value::Number(number) => match (number.as_u64(), number.as_i64()) {
            (Some(positive), _) => digits(positive) > limit,
            (None, Some(negative)) => 1 + digits(negative.unsigned_abs()) > limit,
            (None, None) => number.to_string().len() > limit,
        },
        other => other.to_string().chars().count() > limit,
    }
}

fn compile_table(raw: HashMap<String, RawSpec>) -> Result<FieldTable> {
    let fields = raw
        .into_iter()
        .map(|(name, spec)| {
            let source = match (spec.regex, spec.iregex) {
                (Some(regex), _) => Some(regex),
                (None, Some(iregex)) => Some(format!("(?i){iregex}")),
                (None, None) => None,
            };
            let pattern = source
                .map(Pattern::new)
                .transpose()
                .map_err(|e| Error::Config(format!("{name}: bad pattern: {e}")))?;
            let field = FieldSpec {
                kind: spec.kind,
                length: spec.length,
                pattern,
                range: spec.range,
            };
            Ok((name, field))
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(FieldTable::new(fields))
}

/// IntelMQ's key rule for sub-keys: `^[a-z_][a-z_0-9]+(\.[a-z_0-9]+)*$`,
/// checked in one pass over the bytes since every `extra.*` key passes here.
fn is_valid_subkey(key: &str) -> bool {
    let bytes = key.as_bytes();
    let starts_well = bytes
        .first()
        .is_some_and(|b| b.is_ascii_lowercase() || *b == b'_');
    let first_part = bytes.iter().position(|b| *b == b'.').unwrap_or(bytes.len());
    // Starting as if after a dot makes an empty key or part fail below.
    let mut previous = b'.';
    for &byte in bytes {
        let allowed = match byte {
            b'.' => previous != b'.',
            _ => byte.is_ascii_lowercase() || byte.is_ascii_digit() || byte == b'_',
        };
        if !allowed {
            return false;
        }
        previous = byte;
    }
    starts_well && first_part >= 2 && previous != b'.'
}

/// Whether IntelMQ drops `value` rather than set a field to it (`null`,
/// `""`, `"-"`, `"N/A"`).
pub fn is_ignored(value: &Value) -> bool {
    match value {
        Value::Null => true,
        Value::String(text) => IGNORED_VALUES.contains(&text.as_str()),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn accept(key: &str, value: Value) -> Result<Option<Value>> {
        Harmonization::intelmq().accept(MessageType::Event, key, value)
    }

    #[test]
    fn the_event_table_has_intelmq_35s_89_fields() {
        let harmonization = Harmonization::intelmq();
        assert_eq!(harmonization.field_names(MessageType::Event).count(), 89);
        assert_eq!(harmonization.field_names(MessageType::Report).count(), 10);
    }

    #[test]
    fn fields_have_distinct_places_and_the_tables_names() {
        let harmonization = Harmonization::intelmq();
        for kind in [MessageType::Event, MessageType::Report] {
            let mut places = std::collections::HashSet::new();
            for name in harmonization.field_names(kind) {
                let field = harmonization.field(kind, name).unwrap();
                assert_eq!(field.name, name);
                assert!(places.insert(field.index), "{name}");
            }
        }
        let event = MessageType::Event;
        assert!(harmonization.field(event, "extra").is_some());
        assert!(harmonization.field(event, "extra.foo").is_none());
        assert!(harmonization.field(event, "source.ipx").is_none());
    }

    #[test]
    fn unknown_fields_are_named() {
        let error = accept("source.ipaddress", json!("192.0.2.1")).unwrap_err();
        assert_eq!(
            error.to_string(),
            "source.ipaddress: unknown field, not in IntelMQ's harmonization"
        );
    }

    #[test]
    fn extra_subkeys_take_any_value_but_follow_the_key_rule() {
        assert_eq!(
            accept("extra.tags", json!(["a", {"b": 1}])).unwrap(),
            Some(json!(["a", {"b": 1}]))
        );
        assert!(accept("extra.Upper", json!(1)).is_err());
        assert!(accept("extra..x", json!(1)).is_err());
        // Only JSONDict fields have sub-keys.
        assert!(accept("comment.x", json!("a")).is_err());
    }

    #[test]
    fn ignored_values_are_dropped_like_intelmq_does() {
        for value in [json!(""), json!("-"), json!("N/A"), Value::Null] {
            assert_eq!(accept("source.ip", value).unwrap(), None);
        }
    }

    #[test]
    fn length_and_pattern_constraints_apply_after_sanitation() {
        assert_eq!(
            accept("source.geolocation.cc", json!("at")).unwrap(),
            Some(json!("AT"))
        );
        let error = accept("source.geolocation.cc", json!("AUT")).unwrap_err();
        assert_eq!(
            error.to_string(),
            r#"source.geolocation.cc: "AUT" is longer than 2 characters"#
        );
        assert!(accept("severity", json!("extreme")).is_err());
        assert_eq!(
            accept("severity", json!("High")).unwrap(),
            Some(json!("high"))
        );
        assert!(accept("event_hash", json!("XYZ")).is_err());
        assert_eq!(
            accept("protocol.transport", json!("TCP")).unwrap(),
            Some(json!("tcp"))
        );
        assert!(accept("protocol.transport", json!("tcpx")).is_err());
        assert!(accept("malware.hash.md5", json!("ab\u{7}cd")).is_err());
    }

    #[test]
    fn ports_are_limited_to_their_range() {
        assert_eq!(
            accept("destination.port", json!("443")).unwrap(),
            Some(json!(443))
        );
        let error = accept("destination.port", json!(70000)).unwrap_err();
        assert_eq!(
            error.to_string(),
            "destination.port: 70000 is outside 0..65535"
        );
        assert!(accept("source.port", json!("http")).is_err());
    }

    #[test]
    fn classification_uses_the_closed_lists_and_aliases() {
        assert_eq!(
            accept("classification.type", json!("c&c")).unwrap(),
            Some(json!("c2-server"))
        );
        assert_eq!(
            accept("classification.taxonomy", json!("Malicious Code")).unwrap(),
            Some(json!("malicious-code"))
        );
        assert!(accept("classification.type", json!("botnet")).is_err());
        assert!(accept("classification.taxonomy", json!("malware")).is_err());
        let classes = &Harmonization::intelmq().classification;
        assert_eq!(
            classes.taxonomy_of("scanner"),
            Some("information-gathering")
        );
        assert_eq!(classes.taxonomy_of("ddos-amplifier"), Some("vulnerable"));
    }

    #[test]
    fn length_is_measured_as_the_printed_text() {
        let values = [
            json!(""),
            json!("ab"),
            json!("äb"),
            json!("äö"),
            json!("日本語"),
            json!("a\u{1F600}"),
            json!(0),
            json!(9),
            json!(10),
            json!(65535),
            json!(100000),
            json!(u64::MAX),
            json!(-1),
            json!(-10),
            json!(i64::MIN),
            json!(1.5),
            json!(-0.25),
            json!(true),
            json!(["a"]),
        ];
        for value in &values {
            let printed = match value {
                Value::String(text) => text.chars().count(),
                other => other.to_string().chars().count(),
            };
            for limit in 0..25 {
                assert_eq!(
                    is_longer_than(value, limit),
                    printed > limit,
                    "{value} {limit}"
                );
            }
        }
    }

    #[test]
    fn subkey_rule_matches_intelmq() {
        assert!(is_valid_subkey("extra.a_b.c1"));
        assert!(is_valid_subkey("extra._x"));
        assert!(!is_valid_subkey("extra.a-b"));
        assert!(!is_valid_subkey("extra."));
        let rule = regex::Regex::new(r"^[a-z_][a-z_0-9]+(\.[a-z_0-9]+)*$").unwrap();
        let pieces = ["", ".", "..", "a", "ab", "_", "9", "A", "-", "é", "extra"];
        for first in pieces {
            for second in pieces {
                for third in pieces {
                    let key = format!("{first}{second}{third}");
                    assert_eq!(is_valid_subkey(&key), rule.is_match(&key), "{key:?}");
                }
            }
        }
    }

    #[test]
    fn field_lookup_finds_exactly_the_tables_fields() {
        let harmonization = Harmonization::intelmq();
        let raw: RawHarmonization = serde_json::from_str(HARMONIZATION_JSON).unwrap();
        for (kind, table) in [
            (MessageType::Event, &raw.event),
            (MessageType::Report, &raw.report),
        ] {
            for (name, raw_spec) in table {
                let spec = harmonization.spec(kind, name).unwrap();
                assert_eq!(spec.kind, raw_spec.kind, "{name}");
                assert_eq!(spec.length, raw_spec.length, "{name}");
                // Near misses: one byte short, one byte more, one byte changed.
                let mut changed = name.clone().into_bytes();
                changed[0] ^= 0x20;
                let near = [
                    name[..name.len() - 1].to_owned(),
                    format!("{name}s"),
                    format!("x{name}"),
                    String::from_utf8(changed).unwrap(),
                ];
                for miss in near.iter().filter(|miss| !table.contains_key(*miss)) {
                    assert!(harmonization.spec(kind, miss).is_none(), "{miss}");
                }
            }
        }
        let extra = harmonization.spec(MessageType::Event, EXTRA).unwrap();
        let sub = harmonization.spec(MessageType::Event, "extra.a.b").unwrap();
        assert!(std::ptr::eq(extra, sub));
        assert!(harmonization.spec(MessageType::Event, "extra.A").is_none());
        assert!(harmonization.spec(MessageType::Event, "extrax.a").is_none());
        assert!(harmonization.spec(MessageType::Event, ".extra").is_none());
    }
}
