//! The payload of every envelope: an IntelMQ message's flat, checked fields.

use std::borrow::Cow;

use serde::ser::{Serialize, SerializeMap, Serializer};
use serde_json::{Map, Value};

use crate::error::{Error, Result};
use crate::harmonization::{Harmonization, MessageType, EXTRA};

const TAXONOMY: &str = "classification.taxonomy";
const TYPE: &str = "classification.type";

/// A field's name: borrowed when it is a name the program holds anyway (a
/// constant, or the harmonization table's own), owned otherwise.
pub(crate) type FieldName = Cow<'static, str>;

/// The fields of one message in their order of arrival.
///
/// A list rather than a hash map: an event has a few dozen fields, so
/// comparing names in turn (length first) costs less than hashing them with
/// `serde_json::Map`'s SipHash on every insert and lookup, and a name need
/// not be an allocated copy.
#[derive(Debug, Clone, Default)]
pub struct Fields {
    entries: Vec<(FieldName, Value)>,
}

impl Fields {
    /// Empty, with room for `capacity` fields.
    fn with_capacity(capacity: usize) -> Self {
        Fields {
            entries: Vec::with_capacity(capacity),
        }
    }

    /// Where `key` stands, if it is there.
    fn position(&self, key: &str) -> Option<usize> {
        self.entries
            .iter()
            .position(|(name, _)| same_name(name, key))
    }

    /// The value of a field.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.entries
            .iter()
            .find(|(name, _)| same_name(name, key))
            .map(|(_, value)| value)
    }

    /// Whether the field is there.
    pub fn contains_key(&self, key: &str) -> bool {
        self.position(key).is_some()
    }

    /// How many fields.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Names and values in their order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = Entry<'_>> {
        self.into_iter()
    }

    /// Names in their order.
    pub fn keys(&self) -> impl ExactSizeIterator<Item = &str> {
        self.entries.iter().map(|(name, _)| name.as_ref())
    }

    /// A JSON object of the fields, in their order.
    pub fn to_map(&self) -> Map<String, Value> {
        let mut map = Map::with_capacity(self.entries.len());
        for (name, value) in &self.entries {
            map.insert(name.as_ref().to_owned(), value.clone());
        }
        map
    }

    /// Sets a field: in its place when it is there, last otherwise (as
    /// `serde_json::Map::insert` does).
    fn insert(&mut self, key: FieldName, value: Value) {
        match self.position(&key) {
            Some(at) => self.entries[at].1 = value,
            None => self.entries.push((key, value)),
        }
    }

    /// Takes a field out, keeping the order of the rest.
    fn remove(&mut self, key: &str) -> Option<Value> {
        let at = self.position(key)?;
        Some(self.entries.remove(at).1)
    }
}

/// Whether two field names are the same. Names of one length often differ
/// in their last byte (`source.fqdn`, `source.port`), which is compared before
/// the whole names are.
pub(crate) fn same_name(name: &str, key: &str) -> bool {
    name.len() == key.len() && name.as_bytes().last() == key.as_bytes().last() && name == key
}

/// The entry of [`Fields`]' list as a (name, value) pair.
type Entry<'a> = (&'a str, &'a Value);

impl<'a> IntoIterator for &'a Fields {
    type Item = Entry<'a>;
    type IntoIter = std::iter::Map<
        std::slice::Iter<'a, (FieldName, Value)>,
        fn(&'a (FieldName, Value)) -> Entry<'a>,
    >;

    fn into_iter(self) -> Self::IntoIter {
        self.entries
            .iter()
            .map(|(name, value)| (name.as_ref(), value))
    }
}

/// Equal when they hold the same fields with the same values, in any order
/// (as `serde_json::Map` compares).
impl PartialEq for Fields {
    fn eq(&self, other: &Self) -> bool {
        self.len() == other.len()
            && self
                .iter()
                .all(|(key, value)| other.get(key) == Some(value))
    }
}

/// Written as the JSON object of the fields, in their order.
impl Serialize for Fields {
    fn serialize<S: Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.entries.len()))?;
        for (name, value) in &self.entries {
            map.serialize_entry(name.as_ref(), value)?;
        }
        map.end()
    }
}

/// Fields on their way into an [`Event`] ([`Event::from_draft`]), in
/// order, each marked with whether the harmonization has accepted its value
/// for it already: such a value is kept as it is, the others are checked.
///
/// A decoder that maps a native message field by field fills one with the
/// table's own names, so the fields are not built as a JSON object first
/// and walked again.
#[derive(Debug, Clone, Default)]
pub(crate) struct Draft {
    entries: Vec<Drafted>,
}

/// One field of a [`Draft`].
#[derive(Debug, Clone)]
struct Drafted {
    name: FieldName,
    value: Value,
    /// Whether [`Harmonization::accept`] has given back `value` for `name`
    /// (as it would again).
    accepted: bool,
}

impl Draft {
    /// Empty, with room for `capacity` fields.
    pub(crate) fn with_capacity(capacity: usize) -> Self {
        Draft {
            entries: Vec::with_capacity(capacity),
        }
    }

    /// Appends a field that is not there yet, its value still to be checked.
    pub(crate) fn push(&mut self, name: FieldName, value: Value) {
        self.push_entry(name, value, false);
    }

    /// Appends a field that is not there yet with a value the harmonization
    /// has accepted for it.
    pub(crate) fn push_accepted(&mut self, name: FieldName, value: Value) {
        self.push_entry(name, value, true);
    }

    fn push_entry(&mut self, name: FieldName, value: Value, accepted: bool) {
        debug_assert!(!self.contains_key(&name), "{name} is there already");
        self.entries.push(Drafted {
            name,
            value,
            accepted,
        });
    }

    /// Sets a field, its value still to be checked: in its place when it is
    /// there, last otherwise (as `serde_json::Map::insert` does).
    pub(crate) fn insert(&mut self, name: FieldName, value: Value) {
        match self
            .entries
            .iter_mut()
            .find(|entry| same_name(&entry.name, &name))
        {
            Some(entry) => {
                entry.value = value;
                entry.accepted = false;
            }
            None => self.push(name, value),
        }
    }

    /// Appends the fields of `other`, none of which is here yet.
    pub(crate) fn append(&mut self, mut other: Draft) {
        debug_assert!(other.entries.iter().all(|e| !self.contains_key(&e.name)));
        self.entries.append(&mut other.entries);
    }

    /// Whether the field is there.
    pub(crate) fn contains_key(&self, key: &str) -> bool {
        self.entries.iter().any(|entry| same_name(&entry.name, key))
    }
}

/// Fields of a JSON object (such as those a native message carries for
/// IntelMQ), set in turn as [`Draft::insert`] does.
impl Extend<(String, Value)> for Draft {
    fn extend<I: IntoIterator<Item = (String, Value)>>(&mut self, fields: I) {
        for (name, value) in fields {
            self.insert(name.into(), value);
        }
    }
}

/// The flat dotted fields of one IntelMQ message (an Event, or a Report when
/// the envelope says so), every value accepted by IntelMQ's harmonization.
///
/// The only ways in are [`Event::from_fields`] (or [`Event::from_draft`])
/// and [`Event::set`], which check and sanitise, so an `Event` is always
/// what an IntelMQ bot would accept.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
#[serde(transparent)]
pub struct Event {
    fields: Fields,
}

impl Event {
    /// Checks every field of a flat message, as IntelMQ does when a bot
    /// receives it, and fills the taxonomy a classification type implies.
    /// Fails on the first unknown field or invalid value.
    pub fn from_fields(
        kind: MessageType,
        fields: Map<String, Value>,
        harmonization: &Harmonization,
    ) -> Result<Self> {
        let has_extra = fields.contains_key(EXTRA);
        let entries = fields.into_iter().map(|(name, value)| Drafted {
            name: name.into(),
            value,
            accepted: false,
        });
        Self::from_entries(kind, entries, has_extra, harmonization, None)
    }

    /// [`Event::from_fields`] for a [`Draft`]: its accepted values are kept
    /// without being checked again, and so is a value equal to the one
    /// `known` (the fields of an event of the same kind that the draft was
    /// rebuilt from) holds for the same field
    /// ([`Harmonization::accept_known`]). The result is the same as
    /// `from_fields` gives, at less cost.
    pub(crate) fn from_draft(
        kind: MessageType,
        draft: Draft,
        harmonization: &Harmonization,
        known: Option<&Fields>,
    ) -> Result<Self> {
        let has_extra = draft.contains_key(EXTRA);
        let entries = draft.entries.into_iter();
        Self::from_entries(kind, entries, has_extra, harmonization, known)
    }

    /// Checks fields with distinct names in turn; `has_extra` says whether
    /// one of them is `extra`.
    fn from_entries(
        kind: MessageType,
        entries: impl ExactSizeIterator<Item = Drafted>,
        has_extra: bool,
        harmonization: &Harmonization,
        known: Option<&Fields>,
    ) -> Result<Self> {
        let held = |key: &str| known.and_then(|known| known.get(key));
        let mut event = Event {
            fields: Fields::with_capacity(entries.len()),
        };
        if has_extra {
            // `extra` expands into sub-keys where it stands, which may meet
            // a sub-key also given on its own: each field is set in turn.
            for Drafted {
                name,
                value,
                accepted,
            } in entries
            {
                if accepted {
                    event.fields.insert(name, value);
                    continue;
                }
                let held = held(&name);
                event.insert_checked(kind, name, (value, held), harmonization)?;
            }
        } else {
            // The names are distinct: each value kept is appended.
            for Drafted {
                name,
                value,
                accepted,
            } in entries
            {
                let clean = if accepted {
                    Some(value)
                } else {
                    harmonization.accept_known(kind, &name, value, held(&name))?
                };
                if let Some(clean) = clean {
                    event.fields.entries.push((name, clean));
                }
            }
        }
        event.complete_classification(harmonization);
        Ok(event)
    }

    /// Adds or replaces one field after checking (and if need be sanitising)
    /// its value. A JSON object given for `extra` becomes `extra.*` fields.
    pub fn set(
        &mut self,
        kind: MessageType,
        key: &str,
        value: Value,
        harmonization: &Harmonization,
    ) -> Result<()> {
        self.insert_checked(kind, key.to_owned().into(), (value, None), harmonization)
    }

    /// [`Event::set`] for a key the caller already owns, so it is not copied,
    /// with the value a known event holds for it, if any
    /// ([`Harmonization::accept_known`]).
    fn insert_checked(
        &mut self,
        kind: MessageType,
        key: FieldName,
        (value, held): (Value, Option<&Value>),
        harmonization: &Harmonization,
    ) -> Result<()> {
        let Some(value) = harmonization.accept_known(kind, &key, value, held)? else {
            self.fields.remove(&key);
            return Ok(());
        };
        match value {
            Value::Object(map) if key == EXTRA => {
                for (sub, item) in map {
                    let sub_key = format!("{EXTRA}.{sub}");
                    if harmonization.spec(kind, &sub_key).is_none() {
                        return Err(Error::UnknownField { field: sub_key });
                    }
                    self.fields.insert(sub_key.into(), item);
                }
            }
            value => self.fields.insert(key, value),
        }
        Ok(())
    }

    /// Sets `classification.taxonomy` from `classification.type` when only
    /// the type is known, as IntelMQ's taxonomy expert does.
    pub fn complete_classification(&mut self, harmonization: &Harmonization) {
        if self.fields.contains_key(TAXONOMY) {
            return;
        }
        let taxonomy = self
            .get_str(TYPE)
            .and_then(|kind| harmonization.classification.taxonomy_of(kind));
        if let Some(taxonomy) = taxonomy {
            let taxonomy = Value::String(taxonomy.to_owned());
            self.fields
                .entries
                .push((Cow::Borrowed(TAXONOMY), taxonomy));
        }
    }

    /// The value of a field.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.fields.get(key)
    }

    /// The value of a field that holds text.
    pub fn get_str(&self, key: &str) -> Option<&str> {
        self.fields.get(key).and_then(Value::as_str)
    }

    /// Takes a field out of the event.
    pub fn remove(&mut self, key: &str) -> Option<Value> {
        self.fields.remove(key)
    }

    /// Whether the event has no fields at all.
    pub fn is_empty(&self) -> bool {
        self.fields.is_empty()
    }

    /// All fields in their order of arrival.
    pub fn fields(&self) -> &Fields {
        &self.fields
    }
}

/// Room for the fields of a typical event, so that the list is not regrown
/// while it fills.
const FIELDS_CAPACITY: usize = 32;

/// The most fields [`EventBuilder`] takes: finding a repeated key compares
/// it with every field before it, which stays cheap only for a message of
/// ordinary size; a larger one is left to [`Event::from_fields`].
const MAX_BUILT_FIELDS: usize = 64;

/// An [`Event`] being filled from a message's fields in their order, each
/// checked as it comes, without the message being built first.
///
/// Only a message whose every key is a field given once is taken this way:
/// a key repeated (where a parsed message keeps the last value at the first
/// place), the whole `extra` object, an invalid value or very many fields
/// is an error, and the caller decodes the message with
/// [`Event::from_fields`] instead.
#[derive(Debug)]
pub(crate) struct EventBuilder {
    kind: MessageType,
    event: Event,
    /// The table's fields given so far, kept or not, one bit each by their
    /// place in the table ([`crate::harmonization::Field::index`]): a repeat is found without
    /// comparing names.
    given: u128,
    /// Other keys (sub-keys such as `extra.foo`) whose values IntelMQ
    /// ignores, kept to notice them repeated.
    dropped: Vec<String>,
}

impl EventBuilder {
    /// Starts an event of `kind`.
    pub(crate) fn new(kind: MessageType) -> Self {
        EventBuilder {
            kind,
            event: Event {
                fields: Fields::with_capacity(FIELDS_CAPACITY),
            },
            given: 0,
            dropped: Vec::new(),
        }
    }

    /// The kind of message the fields are checked for.
    pub(crate) fn kind(&self) -> MessageType {
        self.kind
    }

    /// Whether no field has been added (or dropped) yet.
    pub(crate) fn is_untouched(&self) -> bool {
        self.given == 0 && self.event.fields.is_empty() && self.dropped.is_empty()
    }

    /// Checks and adds the next field, as [`Event::from_fields`] does. A
    /// field of the table keeps the table's copy of its name. Inlined into
    /// its one caller, the IntelMQ reader's loop, which it is most of.
    #[inline]
    pub(crate) fn add_new(
        &mut self,
        key: &str,
        value: Value,
        harmonization: &'static Harmonization,
    ) -> Result<()> {
        let fields = &mut self.event.fields;
        let taken_whole = || Error::shape(format!("{key}: taken only with the whole message"));
        if key == EXTRA || fields.len() + self.dropped.len() >= MAX_BUILT_FIELDS {
            return Err(taken_whole());
        }
        let field = harmonization.field(self.kind, key);
        if let Some(field) = field.filter(|field| field.index < u128::BITS as usize) {
            let bit = 1 << field.index;
            if self.given & bit != 0 {
                return Err(taken_whole());
            }
            self.given |= bit;
            if let Some(value) = harmonization.accept_field(field, value)? {
                fields.entries.push((Cow::Borrowed(field.name), value));
            }
            return Ok(());
        }
        if fields.contains_key(key) || self.dropped.iter().any(|dropped| dropped == key) {
            return Err(taken_whole());
        }
        match harmonization.accept(self.kind, key, value)? {
            Some(value) => fields.entries.push((Cow::Owned(key.to_owned()), value)),
            None => self.dropped.push(key.to_owned()),
        }
        Ok(())
    }

    /// The event, with the taxonomy its classification type implies.
    pub(crate) fn finish(mut self, harmonization: &Harmonization) -> Event {
        self.event.complete_classification(harmonization);
        self.event
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn event(value: Value) -> Result<Event> {
        let Value::Object(map) = value else {
            panic!("test input must be an object")
        };
        Event::from_fields(MessageType::Event, map, Harmonization::intelmq())
    }

    #[test]
    fn fields_are_sanitised_and_taxonomy_filled() {
        let event = event(json!({
            "source.ip": "2001:DB8::1",
            "source.fqdn": "Example.COM.",
            "classification.type": "scanner",
            "time.source": "2026-01-01 10:00:00Z",
            "comment": "-",
        }))
        .unwrap();
        assert_eq!(
            serde_json::to_value(&event).unwrap(),
            json!({
                "source.ip": "2001:db8::1",
                "source.fqdn": "example.com",
                "classification.type": "scanner",
                "time.source": "2026-01-01T10:00:00+00:00",
                "classification.taxonomy": "information-gathering",
            })
        );
    }

    #[test]
    fn extra_object_expands_into_subkeys() {
        let event = event(json!({"extra": {"tag": "x", "nested": {"a": [1, 2]}}})).unwrap();
        assert_eq!(event.get("extra.tag"), Some(&json!("x")));
        assert_eq!(event.get("extra.nested"), Some(&json!({"a": [1, 2]})));
        assert!(event.get("extra").is_none());
    }

    #[test]
    fn extra_with_bad_subkey_is_rejected() {
        let error = event(json!({"extra": {"Bad-Key": 1}})).unwrap_err();
        assert_eq!(
            error.to_string(),
            "extra.Bad-Key: unknown field, not in IntelMQ's harmonization"
        );
    }

    #[test]
    fn the_first_bad_field_is_named() {
        let error =
            event(json!({"source.ip": "192.0.2.1", "destination.ip": "999.1.1.1"})).unwrap_err();
        assert_eq!(
            error.to_string(),
            r#"destination.ip: "999.1.1.1" is not an IP address"#
        );
    }

    #[test]
    fn a_given_taxonomy_is_kept() {
        let event = event(json!({
            "classification.taxonomy": "other",
            "classification.type": "scanner",
        }))
        .unwrap();
        assert_eq!(event.get_str("classification.taxonomy"), Some("other"));
    }

    #[test]
    fn reports_have_their_own_table() {
        let map = json!({"feed.name": "x", "raw": "aGVsbG8="});
        let Value::Object(map) = map else {
            unreachable!()
        };
        assert!(Event::from_fields(MessageType::Report, map, Harmonization::intelmq()).is_ok());
        let map = json!({"source.ip": "192.0.2.1"});
        let Value::Object(map) = map else {
            unreachable!()
        };
        assert!(Event::from_fields(MessageType::Report, map, Harmonization::intelmq()).is_err());
    }
}
