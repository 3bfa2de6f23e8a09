//! STIX → IntelMQ.
//!
//! A bundle the bridge wrote carries each envelope whole in its
//! property-extension, and those envelopes come back exactly. Any other
//! bundle (MISP, OpenCTI, a TAXII feed) is read natively: one event per
//! `indicator` (its simple pattern, plus the observed-data it is `based-on`),
//! per other `observed-data` (its SCOs) and per `infrastructure` that
//! `consists-of` SCOs. Several events from one bundle are linked as one
//! split group. What has no IntelMQ field goes to `extra.stix`.

use std::collections::{HashMap, HashSet};

use serde_json::{json, Map, Value};

use super::mapping;
use super::pattern;
use super::{EXTENSION_ID, ID_SCHEME, NAME};
use crate::envelope::{derived_id, link_split_group, Envelope, Ids, Meta};
use crate::error::{Error, Result};
use crate::event::Event;
use crate::formats::{raw_field, DecodeContext};
use crate::harmonization::MessageType;

/// The events of a bundle whose shape the schema has already checked.
pub fn envelopes(bundle: &Value, context: &DecodeContext) -> Result<Vec<Envelope>> {
    let objects: &[Value] = bundle
        .get("objects")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    let carried: Vec<(usize, &Value)> = objects
        .iter()
        .enumerate()
        .filter_map(|(index, object)| Some((index, object.get("extensions")?.get(EXTENSION_ID)?)))
        .collect();
    if !carried.is_empty() {
        return carried
            .into_iter()
            .map(|(index, extension)| carried_envelope(index, extension, context))
            .collect();
    }
    let bundle_id = bundle.get("id").and_then(Value::as_str).unwrap_or_default();
    Foreign::new(objects).events(bundle_id, context)
}

/// The envelope in the bridge's extension on `objects[index]`.
fn carried_envelope(index: usize, extension: &Value, context: &DecodeContext) -> Result<Envelope> {
    let place = format!("objects[{index}].extensions.{EXTENSION_ID}");
    let part = |key: &str| {
        extension.get(key).cloned().ok_or_else(|| Error::Missing {
            field: format!("{place}.{key}"),
        })
    };
    let envelope = json!({"meta": part("meta")?, "payload": part("payload")?});
    Envelope::from_value(envelope, context.harmonization)
}

/// Where a STIX value goes in an IntelMQ event.
#[derive(Debug, Clone, Copy)]
enum Target {
    /// An IP address or CIDR on a side (`source`, `destination`).
    Address(&'static str),
    /// A field of a side, e.g. (`source`, `fqdn`).
    Side(&'static str, &'static str),
    /// A port on a side.
    Port(&'static str),
    /// A file hash, by STIX hash name.
    Hash,
    /// A network-traffic protocol.
    Protocol,
    /// Consistent but adds nothing (`src_ref.type`).
    Nothing,
}

/// Where the value at a pattern path goes, for the paths the bridge maps.
fn pattern_target(path: &str) -> Option<Target> {
    let (kind, property) = path.split_once(':')?;
    Some(match (kind, property) {
        ("ipv4-addr" | "ipv6-addr", "value") => Target::Address("source"),
        ("domain-name", "value") => Target::Side("source", "fqdn"),
        ("url", "value") => Target::Side("source", "url"),
        ("email-addr", "value") | ("email-message", "from_ref.value" | "sender_ref.value") => {
            Target::Side("source", "account")
        }
        ("autonomous-system", "number") => Target::Side("source", "asn"),
        ("autonomous-system", "name") => Target::Side("source", "as_name"),
        ("file", property) if property.starts_with("hashes.") => Target::Hash,
        ("network-traffic", "src_ref.value") => Target::Address("source"),
        ("network-traffic", "dst_ref.value") => Target::Address("destination"),
        ("network-traffic", "src_ref.type" | "dst_ref.type") => Target::Nothing,
        ("network-traffic", "src_port") => Target::Port("source"),
        ("network-traffic", "dst_port") => Target::Port("destination"),
        ("network-traffic", property) if property.starts_with("protocols[") => Target::Protocol,
        _ => return None,
    })
}

/// The fields of one event being gathered from STIX objects.
#[derive(Default)]
struct Draft {
    fields: Map<String, Value>,
    stix: Map<String, Value>,
    ids: Vec<String>,
}

impl Draft {
    /// Sets a field; a second, different value for it is kept in
    /// `extra.stix.more` rather than lost.
    fn set(&mut self, key: String, value: Value) {
        match self.fields.get(&key) {
            None => {
                self.fields.insert(key, value);
            }
            Some(known) if *known == value => {}
            Some(_) => self.push_stix("more", json!({"field": key, "value": value})),
        }
    }

    fn push_stix(&mut self, key: &str, value: Value) {
        let list = self.stix.entry(key).or_insert_with(|| json!([]));
        if let Value::Array(items) = list {
            items.push(value);
        }
    }

    /// Puts `value` where `target` says.
    fn apply(&mut self, target: Target, property: &str, value: &Value) {
        let text = || match value {
            Value::String(text) => text.clone(),
            other => other.to_string(),
        };
        match target {
            Target::Address(side) => {
                let text = text();
                match text.split_once('/') {
                    Some((ip, "32" | "128")) => self.set(format!("{side}.ip"), ip.into()),
                    Some(_) => self.set(format!("{side}.network"), text.into()),
                    None => self.set(format!("{side}.ip"), text.into()),
                }
            }
            Target::Side(side, field) => self.set(format!("{side}.{field}"), value.clone()),
            Target::Port(side) => {
                let port = text()
                    .parse::<u16>()
                    .map_or_else(|_| value.clone(), Value::from);
                self.set(format!("{side}.port"), port);
            }
            Target::Hash => match mapping::hash_field(property.trim_start_matches("hashes.")) {
                Some(field) => self.set(field.to_owned(), value.clone()),
                None => self.push_stix("unmapped", json!({property: value})),
            },
            Target::Protocol => {
                let name = text().to_ascii_lowercase();
                match name.as_str() {
                    "ipv4" | "ipv6" => {}
                    "tcp" | "udp" | "icmp" | "sctp" => {
                        self.set("protocol.transport".into(), name.into())
                    }
                    _ => self.set("protocol.application".into(), name.into()),
                }
            }
            Target::Nothing => {}
        }
    }
}

/// A foreign bundle's objects, indexed for following references.
struct Foreign<'a> {
    objects: &'a [Value],
    by_id: HashMap<&'a str, &'a Value>,
    /// (relationship type, source id) → target ids; for sightings,
    /// (`sighting-of`, sighted object id) → sighting ids.
    relations: HashMap<(&'a str, &'a str), Vec<&'a str>>,
}

fn str_of<'a>(object: &'a Value, key: &str) -> Option<&'a str> {
    object.get(key).and_then(Value::as_str)
}

fn strings<'a>(object: &'a Value, key: &str) -> impl Iterator<Item = &'a str> {
    object
        .get(key)
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
}

impl<'a> Foreign<'a> {
    fn new(objects: &'a [Value]) -> Self {
        let mut by_id = HashMap::with_capacity(objects.len());
        let mut relations: HashMap<(&str, &str), Vec<&str>> = HashMap::new();
        for object in objects {
            if let Some(id) = str_of(object, "id") {
                by_id.insert(id, object);
            }
            // A sighting is indexed like a relationship to what it saw.
            if str_of(object, "type") == Some("sighting") {
                if let (Some(id), Some(seen)) =
                    (str_of(object, "id"), str_of(object, "sighting_of_ref"))
                {
                    relations.entry(("sighting-of", seen)).or_default().push(id);
                }
            }
            if str_of(object, "type") == Some("relationship") {
                if let (Some(kind), Some(source), Some(target)) = (
                    str_of(object, "relationship_type"),
                    str_of(object, "source_ref"),
                    str_of(object, "target_ref"),
                ) {
                    relations.entry((kind, source)).or_default().push(target);
                }
            }
        }
        Foreign {
            objects,
            by_id,
            relations,
        }
    }

    /// The objects `source` points at with relationships of `kind`.
    fn related(&self, kind: &str, source: &str) -> Vec<&'a Value> {
        self.relations
            .get(&(kind, source))
            .into_iter()
            .flatten()
            .filter_map(|id| self.by_id.get(id).copied())
            .collect()
    }

    fn events(&self, bundle_id: &str, context: &DecodeContext) -> Result<Vec<Envelope>> {
        // observed-data an indicator is based on become part of its event,
        // wherever they stand in the bundle.
        let covered: HashSet<&str> = self
            .relations
            .iter()
            .filter(|((kind, source), _)| *kind == "based-on" && source.starts_with("indicator--"))
            .flat_map(|(_, targets)| targets.iter().copied())
            .collect();
        let mut drafts: Vec<(&Value, Draft)> = Vec::new();
        for object in self.objects {
            let (Some(kind), Some(id)) = (str_of(object, "type"), str_of(object, "id")) else {
                continue;
            };
            let draft = match kind {
                "indicator" => {
                    let mut draft = self.indicator(object);
                    for observed in self.related("based-on", id) {
                        if let Some(observed_id) = str_of(observed, "id") {
                            draft.ids.push(observed_id.to_owned());
                        }
                        self.observed_data(observed, &mut draft);
                    }
                    draft
                }
                "observed-data" if !covered.contains(id) => {
                    let mut draft = Draft::default();
                    self.observed_data(object, &mut draft);
                    draft
                }
                "infrastructure" => {
                    let parts = self.related("consists-of", id);
                    if parts.is_empty() {
                        continue;
                    }
                    let mut draft = Draft::default();
                    self.observables(&parts, &mut draft);
                    draft
                }
                _ => continue,
            };
            drafts.push((object, draft));
        }
        if drafts.is_empty() {
            return Err(Error::shape(
                "stix bundle: no indicator, observed-data or infrastructure to make an event of",
            ));
        }
        let mut events = drafts
            .into_iter()
            .map(|(object, draft)| self.finish(object, draft, context))
            .collect::<Result<Vec<_>>>()?;
        if events.len() > 1 {
            let group = derived_id(&format!("{ID_SCHEME}:{bundle_id}"));
            link_split_group(&mut events, &group.to_string());
        }
        Ok(events)
    }

    /// An indicator's pattern fields, when the pattern is simple.
    fn indicator(&self, object: &Value) -> Draft {
        let mut draft = Draft::default();
        let Some(text) = str_of(object, "pattern") else {
            return draft;
        };
        draft.stix.insert("pattern".into(), text.into());
        let simple = (str_of(object, "pattern_type").unwrap_or("stix") == "stix")
            .then(|| pattern::parse(text))
            .flatten();
        for comparison in simple.into_iter().flatten() {
            let property = comparison.path.split_once(':').map_or("", |(_, p)| p);
            match pattern_target(&comparison.path) {
                Some(target) => draft.apply(target, property, &Value::String(comparison.value)),
                None => draft.push_stix("unmapped", json!({comparison.path: comparison.value})),
            }
        }
        draft
    }

    /// An observed-data's SCOs (`object_refs`, or the deprecated `objects`).
    fn observed_data(&self, object: &Value, draft: &mut Draft) {
        if let Some(time) = str_of(object, "first_observed") {
            draft
                .fields
                .entry("time.source")
                .or_insert_with(|| time.into());
        }
        let mut parts: Vec<&Value> = strings(object, "object_refs")
            .filter_map(|id| self.by_id.get(id).copied())
            .collect();
        if let Some(embedded) = object.get("objects").and_then(Value::as_object) {
            parts.extend(embedded.values());
        }
        self.observables(&parts, draft);
    }

    /// Fields from SCOs: network-traffic first, since its references say
    /// which side an address is on; other addresses are the source.
    fn observables(&self, parts: &[&Value], draft: &mut Draft) {
        let mut placed: HashSet<&str> = HashSet::new();
        for traffic in parts
            .iter()
            .filter(|o| str_of(o, "type") == Some("network-traffic"))
        {
            for (reference, side) in [("src_ref", "source"), ("dst_ref", "destination")] {
                let Some(id) = str_of(traffic, reference) else {
                    continue;
                };
                let found = self
                    .by_id
                    .get(id)
                    .copied()
                    .or_else(|| parts.iter().copied().find(|o| str_of(o, "id") == Some(id)));
                if let Some(address) = found {
                    placed.insert(id);
                    self.observable(address, side, draft);
                }
            }
            for (port, target) in [("src_port", "source"), ("dst_port", "destination")] {
                if let Some(value) = traffic.get(port) {
                    draft.apply(Target::Port(target), port, value);
                }
            }
            for protocol in traffic
                .get("protocols")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                draft.apply(Target::Protocol, "protocols", protocol);
            }
        }
        for part in parts {
            let kind = str_of(part, "type");
            let is_placed = str_of(part, "id").is_some_and(|id| placed.contains(id));
            if kind != Some("network-traffic") && !is_placed {
                self.observable(part, "source", draft);
            }
        }
    }

    /// Fields from one SCO on one side.
    fn observable(&self, object: &Value, side: &'static str, draft: &mut Draft) {
        let value = object.get("value");
        match (str_of(object, "type").unwrap_or_default(), value) {
            ("ipv4-addr" | "ipv6-addr", Some(value)) => {
                draft.apply(Target::Address(side), "value", value)
            }
            ("domain-name", Some(value)) => draft.apply(Target::Side(side, "fqdn"), "value", value),
            ("url", Some(value)) => draft.apply(Target::Side(side, "url"), "value", value),
            ("email-addr", Some(value)) => {
                draft.apply(Target::Side(side, "account"), "value", value)
            }
            ("autonomous-system", _) => {
                for (property, field) in [("number", "asn"), ("name", "as_name")] {
                    if let Some(value) = object.get(property) {
                        draft.apply(Target::Side(side, field), property, value);
                    }
                }
            }
            ("file", _) => {
                let hashes = object
                    .get("hashes")
                    .and_then(Value::as_object)
                    .into_iter()
                    .flatten();
                for (name, value) in hashes {
                    draft.apply(Target::Hash, &format!("hashes.{name}"), value);
                }
                if let Some(name) = object.get("name") {
                    draft.stix.insert("file_name".into(), name.clone());
                }
            }
            _ => draft.push_stix("unmapped", (*object).clone()),
        }
    }

    /// The TLP level of an object's markings (TLP 1.0 and 2.0 ids, or a
    /// TLP marking-definition in the bundle).
    fn tlp(&self, object: &Value) -> Option<mapping::TlpLevel> {
        let table = mapping::tlp();
        strings(object, "object_marking_refs").find_map(|id| {
            table.level_of_id(id).or_else(|| {
                let marking = self.by_id.get(id)?;
                let named = marking
                    .get("definition")
                    .and_then(|definition| definition.get("tlp"))
                    .and_then(Value::as_str)
                    .or_else(|| {
                        marking
                            .get("extensions")?
                            .as_object()?
                            .values()
                            .find_map(|extension| extension.get("tlp_2_0")?.as_str())
                    })
                    .or_else(|| str_of(marking, "name"))?;
                table.level_of_name(named)
            })
        })
    }

    /// The classification type STIX vocabulary names, via the table.
    fn classify(&self, object: &Value, context: &DecodeContext) -> Option<String> {
        let classes = &context.harmonization.classification;
        let rules = &mapping::classification().decode;
        strings(object, "labels")
            .map(str::to_ascii_lowercase)
            .find_map(|label| {
                if classes.is_type(&label) {
                    return Some(label);
                }
                rules.labels.get(&label).cloned()
            })
            .or_else(|| {
                strings(object, "infrastructure_types")
                    .find_map(|kind| rules.infrastructure_types.get(kind).cloned())
            })
            .or_else(|| {
                strings(object, "indicator_types")
                    .find_map(|kind| rules.indicator_types.get(kind).cloned())
            })
    }

    /// Completes a draft with what the source object says about the event
    /// as a whole, and checks it as an IntelMQ event.
    fn finish(
        &self,
        object: &Value,
        mut draft: Draft,
        context: &DecodeContext,
    ) -> Result<Envelope> {
        let id = str_of(object, "id").unwrap_or_default();
        let kind = self
            .classify(object, context)
            .unwrap_or_else(|| "undetermined".to_owned());
        draft
            .fields
            .insert("classification.type".into(), kind.into());
        for key in ["valid_from", "first_seen"] {
            if let Some(time) = str_of(object, key) {
                draft.fields.insert("time.source".into(), time.into());
            }
        }
        if let Some(level) = self.tlp(object) {
            draft.fields.insert("tlp".into(), level.intelmq.into());
            if let Some(original) = level.original {
                draft.stix.insert("tlp".into(), original.into());
            }
        }
        let creator = str_of(object, "created_by_ref").and_then(|id| self.by_id.get(id));
        if let Some(name) = creator.and_then(|identity| identity.get("name")) {
            draft.fields.insert("feed.provider".into(), name.clone());
        }
        if let Some(confidence) = object.get("confidence").and_then(Value::as_f64) {
            draft
                .fields
                .insert("feed.accuracy".into(), confidence.into());
        }
        if let Some(description) = object.get("description") {
            draft.fields.insert("comment".into(), description.clone());
        }
        for relation in ["indicates", "controls"] {
            for malware in self.related(relation, id) {
                if str_of(malware, "type") == Some("malware") {
                    if let Some(name) = malware.get("name") {
                        draft.set("malware.name".into(), name.clone());
                    }
                }
            }
        }
        for sighting in self.related("sighting-of", id) {
            let mut seen = Map::new();
            for key in ["first_seen", "last_seen", "count"] {
                if let Some(value) = sighting.get(key) {
                    seen.insert(key.into(), value.clone());
                }
            }
            let places: Vec<Value> = strings(sighting, "where_sighted_refs")
                .filter_map(|place| self.by_id.get(place)?.get("name").cloned())
                .collect();
            if !places.is_empty() {
                seen.insert("where_sighted".into(), places.into());
            }
            draft.push_stix("sightings", Value::Object(seen));
        }
        for key in [
            "name",
            "labels",
            "indicator_types",
            "infrastructure_types",
            "last_observed",
            "number_observed",
        ] {
            if let Some(value) = object.get(key) {
                draft.stix.insert(key.into(), value.clone());
            }
        }
        draft.fields.insert("raw".into(), raw_field(object));
        if !draft.stix.is_empty() {
            draft
                .fields
                .insert("extra.stix".into(), Value::Object(draft.stix));
        }
        let payload = Event::from_fields(MessageType::Event, draft.fields, context.harmonization)?;
        let ids = Ids::with_id(&context.origin, derived_id(&format!("{ID_SCHEME}:{id}")));
        let mut meta = Meta::with_ids(MessageType::Event, NAME, ids);
        meta.uuid.add_alternate(format!("{ID_SCHEME}:{id}"));
        for other in draft.ids {
            meta.uuid.add_alternate(format!("{ID_SCHEME}:{other}"));
        }
        Ok(Envelope { meta, payload })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(objects: Value) -> Result<Vec<Envelope>> {
        let bundle = json!({"type": "bundle", "id": "bundle--44af6c39-c09b-49c5-9de2-394224b04982", "objects": objects});
        envelopes(&bundle, &DecodeContext::new("here"))
    }

    fn indicator(pattern: &str) -> Value {
        json!({
            "type": "indicator", "spec_version": "2.1",
            "id": "indicator--33fe3b22-0201-47cf-85d0-97c02164528d",
            "created": "2014-05-08T09:00:00.000Z", "modified": "2014-05-08T09:00:00.000Z",
            "pattern": pattern, "pattern_type": "stix", "valid_from": "2014-05-08T09:00:00Z",
            "labels": ["Phishing"]
        })
    }

    #[test]
    fn unknown_paths_and_second_values_go_to_extra() {
        let events = decode(json!([indicator(
            "[ipv4-addr:value = '192.0.2.1'] AND [ipv4-addr:value = '192.0.2.2'] AND [process:pid = 4]"
        )]))
        .unwrap();
        let payload = &events[0].payload;
        assert_eq!(payload.get_str("source.ip"), Some("192.0.2.1"));
        assert_eq!(payload.get_str("classification.type"), Some("phishing"));
        let stix = payload.get("extra.stix").unwrap();
        assert_eq!(
            stix["more"],
            json!([{"field": "source.ip", "value": "192.0.2.2"}])
        );
        assert_eq!(stix["unmapped"], json!([{"process:pid": "4"}]));
        assert_eq!(
            events[0].meta.uuid.id,
            derived_id("stix:indicator--33fe3b22-0201-47cf-85d0-97c02164528d")
        );
    }

    #[test]
    fn unknown_object_types_are_skipped_not_fatal() {
        let mut objects = vec![
            json!({"type": "x-anything", "id": "x-anything--33fe3b22-0201-47cf-85d0-97c02164528d", "what": [1]}),
        ];
        assert!(decode(json!(objects.clone())).is_err());
        objects.push(indicator("[domain-name:value = 'example.org']"));
        let events = decode(json!(objects)).unwrap();
        assert_eq!(events.len(), 1);
        assert_eq!(
            events[0].payload.get_str("source.fqdn"),
            Some("example.org")
        );
    }
}
