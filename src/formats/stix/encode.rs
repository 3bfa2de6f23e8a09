//! IntelMQ → STIX: one bundle per source message (a whole split group).
//!
//! Each event becomes an `observed-data` pointing at deterministic SCOs and
//! carrying the whole envelope in the bridge's property-extension, plus the
//! objects other tools read natively, chosen by `mappings/stix/`: an
//! `indicator` (`based-on` the observed-data) for IoC-like types, `malware`
//! for `malware.name` (`indicates`d by the indicator, or seen in a
//! `sighting` when there is none), `vulnerability` for CVE ids
//! (`related-to`). The producer is an `identity`; TLP is a TLP 1.0 marking.

use std::collections::HashSet;
use std::sync::LazyLock;

use regex::Regex;
use serde_json::{json, Map, Value};

use super::ids::{sco_id, sdo_id, timestamp};
use super::mapping::{self, HASHES};
use super::{
    EXTENSION_ID, EXTENSION_SCHEMA, FIXED_CREATED, ID_SCHEME, PROJECT_IDENTITY_ID, SOURCE_NAME,
};
use crate::envelope::Envelope;
use crate::error::{Error, Result};
use crate::event::Event;
use crate::formats::EncodeContext;
use crate::harmonization::parse_datetime;

static CVE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)\bcve-\d{4}-\d{4,}\b").unwrap_or_else(|error| panic!("{error}"))
});

/// The bundle for one envelope or one complete split group.
pub fn bundle(events: &[Envelope], context: &EncodeContext) -> Result<Value> {
    let first = events
        .first()
        .ok_or_else(|| Error::shape("stix: nothing to encode"))?;
    let owner = first
        .meta
        .uuid
        .groups()
        .first()
        .cloned()
        .unwrap_or_else(|| first.meta.uuid.id.to_string());
    let producer = sdo_id(
        "identity",
        &format!("origin:{}", context.origin),
        "producer",
    );
    let mut bundle = Bundle {
        objects: Vec::with_capacity(4 + events.len() * 8),
        scos: HashSet::new(),
        producer,
    };
    bundle.objects.push(json!({
        "type": "identity",
        "spec_version": "2.1",
        "id": PROJECT_IDENTITY_ID,
        "created": FIXED_CREATED,
        "modified": FIXED_CREATED,
        "name": "intelmq-bridge",
        "identity_class": "system",
    }));
    bundle.objects.push(json!({
        "type": "identity",
        "spec_version": "2.1",
        "id": bundle.producer,
        "created": FIXED_CREATED,
        "modified": FIXED_CREATED,
        "name": context.origin,
        "identity_class": "organization",
    }));
    bundle.objects.push(json!({
        "type": "extension-definition",
        "spec_version": "2.1",
        "id": EXTENSION_ID,
        "created_by_ref": PROJECT_IDENTITY_ID,
        "created": FIXED_CREATED,
        "modified": FIXED_CREATED,
        "name": "IntelMQ event (IEP04 envelope)",
        "description": "Carries the IntelMQ 3.x event and its IEP04 meta unchanged, for a lossless round trip.",
        "schema": EXTENSION_SCHEMA,
        "version": "1.0.0",
        "extension_types": ["property-extension"],
    }));
    for envelope in events {
        bundle.add_event(envelope)?;
    }
    Ok(json!({
        "type": "bundle",
        "id": sdo_id("bundle", &owner, "bundle"),
        "objects": bundle.objects,
    }))
}

/// The objects of a bundle under construction.
struct Bundle {
    objects: Vec<Value>,
    /// SCO ids already written: SCOs are shared by the events that name them.
    scos: HashSet<String>,
    producer: String,
}

/// The STIX times of one event.
struct Times {
    /// `created`/`modified`: time.observation, else time.source.
    created: String,
    /// `first_observed`, `valid_from`...: time.source, else time.observation.
    observed: String,
}

impl Times {
    /// Falls back to the time in the envelope's own id (UUIDv7 and v1 carry
    /// one), else the Unix epoch, so that output never depends on the clock.
    fn of(envelope: &Envelope) -> Self {
        let field = |key| {
            envelope
                .payload
                .get_str(key)
                .and_then(parse_datetime)
                .map(|time| timestamp(&time))
        };
        let fallback = || {
            let time = envelope.meta.uuid.created_at().unwrap_or_default();
            timestamp(&time)
        };
        let source = field("time.source");
        let observation = field("time.observation");
        Times {
            created: observation
                .clone()
                .or_else(|| source.clone())
                .unwrap_or_else(fallback),
            observed: source.or(observation).unwrap_or_else(fallback),
        }
    }
}

/// What one side (source or destination) of an event contributed.
#[derive(Default)]
struct Side {
    /// The address SCO network-traffic refers to (IP, else domain).
    address: Option<String>,
    /// `ipv4` or `ipv6`, when the side has an IP address.
    family: Option<&'static str>,
    /// The IP address SCO, which `belongs-to` the autonomous system.
    ip: Option<String>,
    /// The autonomous-system SCO.
    asn: Option<String>,
}

impl Bundle {
    /// Adds an SCO once and returns its id.
    fn sco(&mut self, kind: &str, contributing: Value, more: &[(&str, Value)]) -> String {
        let id = sco_id(kind, &contributing);
        if self.scos.insert(id.clone()) {
            let mut object = Map::new();
            object.insert("type".into(), kind.into());
            object.insert("spec_version".into(), "2.1".into());
            object.insert("id".into(), id.clone().into());
            if let Value::Object(properties) = contributing {
                object.extend(properties);
            }
            for (key, value) in more {
                object.insert((*key).into(), value.clone());
            }
            self.objects.push(Value::Object(object));
        }
        id
    }

    /// The SCOs of one side of an event; their ids go to `refs`.
    fn side(&mut self, payload: &Event, prefix: &str, refs: &mut Vec<String>) -> Side {
        let get = |name: &str| payload.get(&format!("{prefix}.{name}"));
        let mut side = Side::default();
        // An IP address, else the network (STIX address values may be CIDRs).
        let address = get("ip").or_else(|| get("network"));
        if let Some(ip) = address.and_then(Value::as_str) {
            let (kind, family) = if ip.contains(':') {
                ("ipv6-addr", "ipv6")
            } else {
                ("ipv4-addr", "ipv4")
            };
            let id = self.sco(kind, json!({"value": ip}), &[]);
            side.address = Some(id.clone());
            side.ip = Some(id.clone());
            side.family = Some(family);
            refs.push(id);
        }
        if let Some(fqdn) = get("fqdn").and_then(Value::as_str) {
            let id = self.sco("domain-name", json!({"value": fqdn}), &[]);
            side.address.get_or_insert_with(|| id.clone());
            refs.push(id);
        }
        if let Some(url) = get("url").and_then(Value::as_str) {
            refs.push(self.sco("url", json!({"value": url}), &[]));
        }
        if let Some(asn) = get("asn").and_then(Value::as_u64) {
            let name: Vec<(&str, Value)> = get("as_name")
                .map(|name| ("name", name.clone()))
                .into_iter()
                .collect();
            let id = self.sco("autonomous-system", json!({"number": asn}), &name);
            side.asn = Some(id.clone());
            refs.push(id);
        }
        if let Some(account) = get("account").and_then(Value::as_str) {
            if account.contains('@') {
                refs.push(self.sco("email-addr", json!({"value": account}), &[]));
            }
        }
        side
    }

    /// The network-traffic SCO, written only with both ports: the
    /// validator's check 301 (a warning, so a failure under `--strict`)
    /// asks for both.
    fn traffic(&mut self, payload: &Event, source: &Side, destination: &Side) -> Option<String> {
        let src_port = payload.get("source.port")?.as_u64()?;
        let dst_port = payload.get("destination.port")?.as_u64()?;
        if source.address.is_none() && destination.address.is_none() {
            return None;
        }
        let mut protocols: Vec<String> = Vec::with_capacity(3);
        if let Some(family) = source.family.or(destination.family) {
            protocols.push(family.to_owned());
        }
        for key in ["protocol.transport", "protocol.application"] {
            if let Some(name) = payload.get_str(key) {
                let name = name.to_ascii_lowercase();
                if !protocols.contains(&name) {
                    protocols.push(name);
                }
            }
        }
        if protocols.is_empty() {
            return None;
        }
        let mut contributing = Map::new();
        if let Some(id) = &source.address {
            contributing.insert("src_ref".into(), id.clone().into());
        }
        if let Some(id) = &destination.address {
            contributing.insert("dst_ref".into(), id.clone().into());
        }
        contributing.insert("src_port".into(), src_port.into());
        contributing.insert("dst_port".into(), dst_port.into());
        contributing.insert("protocols".into(), protocols.into());
        Some(self.sco("network-traffic", Value::Object(contributing), &[]))
    }

    /// The file SCO of the event's malware hashes.
    fn file(&mut self, payload: &Event) -> Option<String> {
        let hashes: Map<String, Value> = HASHES
            .iter()
            .filter_map(|(field, name)| Some(((*name).to_owned(), payload.get(field)?.clone())))
            .collect();
        let (first_name, first_value) = hashes.iter().next()?;
        let contributing = json!({"hashes": {first_name.clone(): first_value.clone()}});
        Some(self.sco("file", contributing, &[("hashes", Value::Object(hashes))]))
    }

    /// Common properties of a domain or relationship object of an event.
    fn sdo(&self, kind: &str, id: &str, own: &Own) -> Map<String, Value> {
        let mut object = Map::new();
        object.insert("type".into(), kind.into());
        object.insert("spec_version".into(), "2.1".into());
        object.insert("id".into(), id.into());
        object.insert("created_by_ref".into(), self.producer.clone().into());
        object.insert("created".into(), own.times.created.clone().into());
        object.insert("modified".into(), own.times.created.clone().into());
        if let Some(markings) = &own.markings {
            object.insert("object_marking_refs".into(), markings.clone());
        }
        object
    }

    /// Adds an object that stands for the event alone.
    fn add_own(&mut self, own: &mut Own, object: Map<String, Value>, id: String) {
        self.objects.push(Value::Object(object));
        own.ids.push(id);
    }

    /// Adds a relationship of the event.
    fn relationship(&mut self, own: &mut Own, role: &str, kind: &str, source: &str, target: &str) {
        let id = sdo_id("relationship", &own.owner, role);
        let mut object = self.sdo("relationship", &id, own);
        object.insert("relationship_type".into(), kind.into());
        object.insert("source_ref".into(), source.into());
        object.insert("target_ref".into(), target.into());
        self.add_own(own, object, id);
    }

    fn add_event(&mut self, envelope: &Envelope) -> Result<()> {
        let payload = &envelope.payload;
        let mut refs = Vec::new();
        let source = self.side(payload, "source", &mut refs);
        let destination = self.side(payload, "destination", &mut refs);
        refs.extend(self.traffic(payload, &source, &destination));
        refs.extend(self.file(payload));
        if refs.is_empty() {
            // The data the event was parsed from is what was observed.
            let raw = payload.get_str("raw").ok_or_else(|| {
                Error::shape(
                    "stix: the event has no observable (IP address, domain, URL, AS number, \
                     e-mail address, malware hash or raw data) for observed-data to refer to",
                )
            })?;
            refs.push(self.sco("artifact", json!({"payload_bin": raw}), &[]));
        }

        let mut own = Own::new(envelope);
        let indicator = self.indicator(&mut own);
        self.malware(&mut own, indicator.as_deref());
        for (side, name) in [(&source, "source"), (&destination, "destination")] {
            if let (Some(ip), Some(asn)) = (&side.ip, &side.asn) {
                let role = format!("{name}/belongs-to");
                self.relationship(&mut own, &role, "belongs-to", ip, asn);
            }
        }
        self.vulnerabilities(&mut own);
        self.observed_data(own, refs)
    }

    /// The indicator of an IoC-like event (per the classification table)
    /// and its `based-on` relationship; its id.
    fn indicator(&mut self, own: &mut Own) -> Option<String> {
        let payload = &own.envelope.payload;
        let kind = payload.get_str("classification.type")?;
        let rule = mapping::classification().encode.get(kind)?;
        let (pattern, value) = pattern(payload)?;
        let id = sdo_id("indicator", &own.owner, "indicator");
        let mut object = self.sdo("indicator", &id, own);
        object.insert("name".into(), format!("{kind} {value}").into());
        object.insert("description".into(), description(payload).into());
        let types = rule.indicator_types.clone();
        object.insert("indicator_types".into(), types.into());
        object.insert("pattern".into(), pattern.into());
        object.insert("pattern_type".into(), "stix".into());
        object.insert("pattern_version".into(), "2.1".into());
        object.insert("valid_from".into(), own.times.observed.clone().into());
        self.add_own(own, object, id.clone());
        let observed = own.observed_id.clone();
        self.relationship(own, "indicator/based-on", "based-on", &id, &observed);
        Some(id)
    }

    /// The malware a `malware.name` names: `indicates`d by the indicator,
    /// or, without one (an infected system), seen in a sighting.
    fn malware(&mut self, own: &mut Own, indicator: Option<&str>) {
        let Some(name) = own.envelope.payload.get_str("malware.name") else {
            return;
        };
        let id = sdo_id("malware", &own.owner, "malware");
        let mut object = self.sdo("malware", &id, own);
        object.insert("name".into(), name.into());
        object.insert("is_family".into(), true.into());
        self.add_own(own, object, id.clone());
        if let Some(indicator) = indicator {
            self.relationship(own, "malware/indicates", "indicates", indicator, &id);
            return;
        }
        let sighting = sdo_id("sighting", &own.owner, "malware/sighting");
        let mut object = self.sdo("sighting", &sighting, own);
        object.insert("sighting_of_ref".into(), id.into());
        object.insert("observed_data_refs".into(), json!([own.observed_id]));
        object.insert("where_sighted_refs".into(), json!([self.producer]));
        object.insert("first_seen".into(), own.times.observed.clone().into());
        object.insert("last_seen".into(), own.times.observed.clone().into());
        object.insert("count".into(), 1.into());
        self.add_own(own, object, sighting);
    }

    /// A vulnerability per CVE id, `related-to` from the observed-data.
    fn vulnerabilities(&mut self, own: &mut Own) {
        for cve in cves(&own.envelope.payload) {
            let role = format!("vulnerability/{cve}");
            let id = sdo_id("vulnerability", &own.owner, &role);
            let mut object = self.sdo("vulnerability", &id, own);
            object.insert("name".into(), cve.clone().into());
            let reference = json!([{"source_name": "cve", "external_id": cve}]);
            object.insert("external_references".into(), reference);
            self.add_own(own, object, id.clone());
            let observed = own.observed_id.clone();
            let role = format!("{role}/related-to");
            self.relationship(own, &role, "related-to", &observed, &id);
        }
    }

    /// The event's observed-data, last, since the envelope it carries
    /// records the ids of all the event's other objects.
    fn observed_data(&mut self, own: Own, refs: Vec<String>) -> Result<()> {
        let Own {
            envelope,
            times,
            observed_id,
            ids,
            ..
        } = &own;
        let payload = &envelope.payload;
        let mut meta = envelope.meta.clone();
        for id in std::iter::once(observed_id).chain(ids) {
            meta.uuid.add_alternate(format!("{ID_SCHEME}:{id}"));
        }
        let mut object = self.sdo("observed-data", observed_id, &own);
        object.insert("first_observed".into(), times.observed.clone().into());
        object.insert("last_observed".into(), times.observed.clone().into());
        object.insert("number_observed".into(), 1.into());
        object.insert("object_refs".into(), refs.into());
        if let Some(accuracy) = payload.get("feed.accuracy").and_then(Value::as_f64) {
            let confidence = (accuracy.round().max(0.0) as u64).min(100);
            object.insert("confidence".into(), confidence.into());
        }
        let labels: Vec<&str> = ["classification.taxonomy", "classification.type"]
            .iter()
            .filter_map(|key| payload.get_str(key))
            .collect();
        if !labels.is_empty() {
            object.insert("labels".into(), labels.into());
        }
        object.insert("external_references".into(), external_references(envelope));
        let mut extension = Map::new();
        extension.insert("extension_type".into(), "property-extension".into());
        extension.insert("meta".into(), meta.to_value());
        // A copy of the checked fields; to_value would re-serialise them key by key.
        extension.insert("payload".into(), Value::Object(payload.fields().to_map()));
        let mut extensions = Map::new();
        extensions.insert(EXTENSION_ID.into(), Value::Object(extension));
        object.insert("extensions".into(), Value::Object(extensions));
        self.objects.push(Value::Object(object));
        Ok(())
    }
}

/// What the objects of one event share: their owner (the envelope id) for
/// deriving ids, their times and markings, and the ids of the objects that
/// stand for this event alone, to record in the envelope's alternates.
struct Own<'e> {
    envelope: &'e Envelope,
    owner: String,
    times: Times,
    markings: Option<Value>,
    observed_id: String,
    ids: Vec<String>,
}

impl<'e> Own<'e> {
    fn new(envelope: &'e Envelope) -> Self {
        let owner = envelope.meta.uuid.id.to_string();
        let markings = envelope
            .payload
            .get_str("tlp")
            .and_then(|level| mapping::tlp().marking_id(level))
            .map(|id| json!([id]));
        Own {
            envelope,
            observed_id: sdo_id("observed-data", &owner, "observed-data"),
            owner,
            times: Times::of(envelope),
            markings,
            ids: Vec::new(),
        }
    }
}

/// The envelope's own id and its ids in other systems (except STIX ones,
/// which are the bundle's objects), as external references.
fn external_references(envelope: &Envelope) -> Value {
    let ids = &envelope.meta.uuid;
    let own = json!({"source_name": SOURCE_NAME, "external_id": ids.id.to_string()});
    let others = ids.alternates().iter().filter_map(|alternate| {
        let (scheme, id) = alternate.split_once(':')?;
        (scheme != ID_SCHEME).then(|| json!({"source_name": scheme, "external_id": id}))
    });
    std::iter::once(own).chain(others).collect()
}

/// Escapes a value for a single-quoted STIX pattern string.
fn quote(value: &str) -> String {
    value.replace('\\', "\\\\").replace('\'', "\\'")
}

/// The indicator's pattern and the value it names: the most specific
/// observable of the source side (URL, domain, IP, network as `ISSUBSET`),
/// else of the destination side, else the malware's file hashes.
fn pattern(payload: &Event) -> Option<(String, String)> {
    for prefix in ["source", "destination"] {
        for (field, path, operator) in [
            ("url", "url:value", "="),
            ("fqdn", "domain-name:value", "="),
            ("ip", "ipv4-addr:value", "="),
            ("network", "ipv4-addr:value", "ISSUBSET"),
        ] {
            if let Some(value) = payload.get_str(&format!("{prefix}.{field}")) {
                let path = if path.starts_with("ipv4") && value.contains(':') {
                    "ipv6-addr:value"
                } else {
                    path
                };
                let pattern = format!("[{path} {operator} '{}']", quote(value));
                return Some((pattern, value.to_owned()));
            }
        }
    }
    let comparisons: Vec<String> = HASHES
        .iter()
        .filter_map(|(field, name)| {
            let value = payload.get_str(field)?;
            Some(format!("file:hashes.'{name}' = '{}'", quote(value)))
        })
        .collect();
    let value = HASHES
        .iter()
        .rev()
        .find_map(|(field, _)| payload.get_str(field))?;
    Some((format!("[{}]", comparisons.join(" AND ")), value.to_owned()))
}

/// The indicator's description (the validator wants one, check 303): the
/// event's own text, else its classification and feed.
fn description(payload: &Event) -> String {
    if let Some(text) = payload.get_str("event_description.text") {
        return text.to_owned();
    }
    let field = |key| payload.get_str(key).unwrap_or("unknown");
    let mut text = format!(
        "IntelMQ {}/{} event",
        field("classification.taxonomy"),
        field("classification.type")
    );
    if let Some(feed) = payload.get_str("feed.name") {
        text.push_str(&format!(" from feed {feed}"));
    }
    text.push('.');
    text
}

/// The CVE ids the event names (classification.identifier,
/// product.vulnerabilities), upper case, each once.
fn cves(payload: &Event) -> Vec<String> {
    let mut found: Vec<String> = Vec::new();
    for key in ["classification.identifier", "product.vulnerabilities"] {
        let Some(text) = payload.get_str(key) else {
            continue;
        };
        for hit in CVE.find_iter(text) {
            let id = hit.as_str().to_ascii_uppercase();
            if !found.contains(&id) {
                found.push(id);
            }
        }
    }
    found
}
