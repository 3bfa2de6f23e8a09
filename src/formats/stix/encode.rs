//! IntelMQ → STIX: one bundle per source message (a whole split group).
//!
//! Each event becomes an `observed-data` pointing at deterministic SCOs and
//! carrying the whole envelope in the bridge's property-extension, plus the
//! objects other tools read natively, chosen by `mappings/stix/`: an
//! `indicator` (`based-on` the observed-data) for IoC-like types, `malware`
//! for `malware.name` (`indicates`d by the indicator, or seen in a
//! `sighting` when there is none), `vulnerability` for CVE ids
//! (`related-to`). The producer is an `identity`; TLP is a TLP 1.0 marking.
//!
//! The bundle is written as JSON text straight from the events, object by
//! object, into the caller's buffer ([`write_bundle`], the hot path); the
//! [`Value`] form ([`bundle`]) is that text read back, so that one writer
//! serves both.

use std::borrow::Cow;
use std::collections::HashSet;
use std::sync::LazyLock;

use regex::Regex;
use serde_json::{json, Value};
use uuid::Uuid;

use super::ids::{sco_id, sdo_id, timestamp, write_canonical, SdoIds, StixId};
use super::mapping::{self, HASHES};
use super::{
    EXTENSION_ID, EXTENSION_SCHEMA, FIXED_CREATED, ID_SCHEME, PROJECT_IDENTITY_ID, SOURCE_NAME,
};
use crate::envelope::{uuid_text, Envelope};
use crate::error::{Error, Result};
use crate::event::Event;
use crate::formats::{json, EncodeContext};
use crate::harmonization::parse_datetime;

static CVE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)\bcve-\d{4}-\d{4,}\b").unwrap_or_else(|error| panic!("{error}"))
});

/// The JSON text of the objects every bundle carries unchanged, written
/// once: the bridge's own identity and the extension-definition it creates.
static PROJECT_OBJECTS: LazyLock<[Vec<u8>; 2]> = LazyLock::new(|| {
    [
        json!({
            "type": "identity",
            "spec_version": "2.1",
            "id": PROJECT_IDENTITY_ID,
            "created": FIXED_CREATED,
            "modified": FIXED_CREATED,
            "name": "intelmq-bridge",
            "identity_class": "system",
        }),
        json!({
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
        }),
    ]
    .map(|object| {
        let mut text = Vec::new();
        json::write_value(&mut text, &object);
        text
    })
});

/// The bundle for one envelope or one complete split group, as a value:
/// the text [`write_bundle`] writes, read back (serde_json keeps the keys'
/// order and, with `float_roundtrip`, reads every number back as it was).
pub fn bundle(events: &[Envelope], context: &EncodeContext) -> Result<Value> {
    let mut text = Vec::new();
    write_bundle(events, context, &mut text)?;
    serde_json::from_slice(&text).map_err(|error| {
        Error::shape(format!(
            "stix: the bundle written does not read back: {error}"
        ))
    })
}

/// The bundle for one envelope or one complete split group, appended to
/// `out` as JSON text; on an error `out` is left as it was.
pub fn write_bundle(events: &[Envelope], context: &EncodeContext, out: &mut Vec<u8>) -> Result<()> {
    let start = out.len();
    let written = write_objects(events, context, out);
    if written.is_err() {
        out.truncate(start);
    }
    written
}

/// Appends the bundle: its id, the objects every bundle carries, the
/// producer's identity, then each event's objects.
fn write_objects(events: &[Envelope], context: &EncodeContext, out: &mut Vec<u8>) -> Result<()> {
    let first = events
        .first()
        .ok_or_else(|| Error::shape("stix: nothing to encode"))?;
    let owner = match first.meta.uuid.groups().first() {
        Some(group) => Cow::Borrowed(group.as_str()),
        None => Cow::Owned(uuid_text(first.meta.uuid.id)),
    };
    let producer = context.stix_producer(|origin| {
        sdo_id("identity", &format!("origin:{origin}"), "producer").to_string()
    });
    out.extend_from_slice(b"{\"type\":\"bundle\",\"id\":");
    sdo_id("bundle", &owner, "bundle").write_json(out);
    out.extend_from_slice(b",\"objects\":[");
    let [project_identity, extension_definition] = &*PROJECT_OBJECTS;
    out.extend_from_slice(project_identity);
    let mut writer = Writer::new(out, &producer, events.len());
    writer.producer_identity(&context.origin);
    writer.out.push(b',');
    writer.out.extend_from_slice(extension_definition);
    for envelope in events {
        writer.event(envelope)?;
    }
    writer.out.extend_from_slice(b"]}");
    Ok(())
}

/// Writes the objects of a bundle, each after the bundle's first object
/// and so after a comma.
struct Writer<'w> {
    out: &'w mut Vec<u8>,
    /// The id of the producer's identity, creator of the events' objects.
    producer: &'w str,
    /// SCOs already written: SCOs are shared by the events that name them.
    scos: HashSet<StixId>,
    /// The canonical JSON an SCO id is derived from; its buffer is reused.
    canonical: Vec<u8>,
    /// The ids of an event's objects as alternate ids of its envelope, one
    /// after another, and where each ends; the buffers are reused.
    alternates: String,
    alternate_ends: Vec<usize>,
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
        let both = |time: String| Times {
            created: time.clone(),
            observed: time,
        };
        match (field("time.source"), field("time.observation")) {
            (Some(source), Some(observation)) => Times {
                created: observation,
                observed: source,
            },
            (Some(time), None) | (None, Some(time)) => both(time),
            (None, None) => both(timestamp(
                &envelope.meta.uuid.created_at().unwrap_or_default(),
            )),
        }
    }
}

/// The payload fields of one side (source or destination) of an event.
struct SideKeys {
    /// The role of the side's `belongs-to` relationship.
    belongs_to: &'static str,
    ip: &'static str,
    network: &'static str,
    fqdn: &'static str,
    url: &'static str,
    asn: &'static str,
    as_name: &'static str,
    account: &'static str,
}

/// The source side's fields.
const SOURCE: SideKeys = SideKeys {
    belongs_to: "source/belongs-to",
    ip: "source.ip",
    network: "source.network",
    fqdn: "source.fqdn",
    url: "source.url",
    asn: "source.asn",
    as_name: "source.as_name",
    account: "source.account",
};

/// The destination side's fields.
const DESTINATION: SideKeys = SideKeys {
    belongs_to: "destination/belongs-to",
    ip: "destination.ip",
    network: "destination.network",
    fqdn: "destination.fqdn",
    url: "destination.url",
    asn: "destination.asn",
    as_name: "destination.as_name",
    account: "destination.account",
};

/// What one side (source or destination) of an event contributed.
#[derive(Default)]
struct Side {
    /// The address SCO network-traffic refers to (IP, else domain).
    address: Option<StixId>,
    /// `ipv4` or `ipv6`, when the side has an IP address.
    family: Option<&'static str>,
    /// The IP address SCO, which `belongs-to` the autonomous system.
    ip: Option<StixId>,
    /// The autonomous-system SCO.
    asn: Option<StixId>,
}

/// The value of a property an SCO id is derived from.
enum Contributing<'a> {
    /// A value of the event.
    Value(&'a Value),
    /// The id of another SCO.
    Id(StixId),
    /// Names (network-traffic's protocols).
    Names(&'a [Cow<'a, str>]),
    /// A single hash, `{name: value}`.
    Hash(&'static str, &'a Value),
}

impl Contributing<'_> {
    /// Appends the value, its event values written by `write_value`
    /// (canonically for the id, as they are for the object).
    fn write(&self, out: &mut Vec<u8>, write_value: fn(&mut Vec<u8>, &Value)) {
        match self {
            Contributing::Value(value) => write_value(out, value),
            Contributing::Id(id) => id.write_json(out),
            Contributing::Names(names) => {
                json::write_items(out, names.iter(), |out, name| json::write_str(out, name));
            }
            Contributing::Hash(name, value) => {
                out.push(b'{');
                json::write_plain_key(out, name);
                write_value(out, value);
                out.push(b'}');
            }
        }
    }
}

/// Appends the canonical JSON (RFC 8785) of an SCO's contributing
/// properties: as an object, its members ordered by name (JCS orders by
/// UTF-16 code units, which for these ASCII names is byte order).
fn write_canonical_properties(out: &mut Vec<u8>, properties: &[(&str, Contributing)]) {
    // The next name after the last written, found again each time: an SCO
    // has at most five contributing properties.
    let mut last: Option<&str> = None;
    out.push(b'{');
    while let Some((name, value)) = properties
        .iter()
        .filter(|(name, _)| last.is_none_or(|last| *name > last))
        .min_by_key(|(name, _)| *name)
    {
        if last.is_some() {
            out.push(b',');
        }
        json::write_plain_key(out, name);
        value.write(out, write_canonical);
        last = Some(*name);
    }
    out.push(b'}');
}

impl<'w> Writer<'w> {
    /// A writer onto `out` of the objects of `events` events made by `producer`.
    fn new(out: &'w mut Vec<u8>, producer: &'w str, events: usize) -> Self {
        Writer {
            out,
            producer,
            // Room for the SCOs of usual events, so that the set grows seldom.
            scos: HashSet::with_capacity(8 * events),
            // Room for what a usual event needs: a bundle often holds one.
            canonical: Vec::with_capacity(256),
            alternates: String::with_capacity(1024),
            alternate_ends: Vec::with_capacity(16),
        }
    }

    /// Appends `,"key":`, the start of an object's member after its first.
    fn key(&mut self, key: &str) {
        self.out.push(b',');
        json::write_plain_key(self.out, key);
    }

    /// Appends a member whose value is `text`.
    fn text(&mut self, key: &str, text: &str) {
        self.key(key);
        json::write_str(self.out, text);
    }

    /// Appends a member whose value is text the bridge made, which needs
    /// no escaping: an id, a time, a name of its own.
    fn plain(&mut self, key: &str, text: &str) {
        self.key(key);
        json::write_plain_str(self.out, text);
    }

    /// Appends a member whose value is an event's `value`.
    fn value(&mut self, key: &str, value: &Value) {
        self.key(key);
        json::write_value(self.out, value);
    }

    /// Appends a member whose value is the JSON text `literal`.
    fn literal(&mut self, key: &str, literal: &[u8]) {
        self.key(key);
        self.out.extend_from_slice(literal);
    }

    /// Appends a member whose value is the id `id`.
    fn id(&mut self, key: &str, id: StixId) {
        self.key(key);
        id.write_json(self.out);
    }

    /// Appends a member whose value is a list of the ids `ids`.
    fn ids<'i>(&mut self, key: &str, ids: impl IntoIterator<Item = &'i StixId>) {
        self.key(key);
        json::write_items(self.out, ids, |out, id| id.write_json(out));
    }

    /// Starts an object of type `kind`, after another; the caller writes
    /// its id and other members and ends it ([`Writer::close`]).
    fn open_kind(&mut self, kind: &str) {
        self.out.extend_from_slice(b",{\"type\":");
        json::write_plain_str(self.out, kind);
        self.plain("spec_version", "2.1");
    }

    /// Starts the object `id` names, after another, up to its id.
    fn open(&mut self, id: StixId) {
        self.open_kind(id.kind());
        self.id("id", id);
    }

    /// Ends an object.
    fn close(&mut self) {
        self.out.push(b'}');
    }

    /// The identity of the instance that writes the bundle.
    fn producer_identity(&mut self, origin: &str) {
        self.open_kind("identity");
        let producer = self.producer;
        self.plain("id", producer);
        self.plain("created", FIXED_CREATED);
        self.plain("modified", FIXED_CREATED);
        self.text("name", origin);
        self.plain("identity_class", "organization");
        self.close();
    }

    /// Writes an SCO unless it was written already, and returns its id. Its
    /// id is derived from the `contributing` properties; `properties`
    /// writes its members after the id.
    fn sco(
        &mut self,
        kind: &'static str,
        contributing: &[(&str, Contributing)],
        properties: impl FnOnce(&mut Self),
    ) -> StixId {
        self.canonical.clear();
        write_canonical_properties(&mut self.canonical, contributing);
        let id = sco_id(kind, &self.canonical);
        if self.scos.insert(id) {
            self.open(id);
            properties(self);
            self.close();
        }
        id
    }

    /// Appends an SCO's `properties` in their order.
    fn properties(&mut self, properties: &[(&str, Contributing)]) {
        for (key, value) in properties {
            self.key(key);
            value.write(self.out, json::write_value);
        }
    }

    /// An SCO of one property, an event's `value`, and its id.
    fn value_sco(&mut self, kind: &'static str, key: &str, value: &Value) -> StixId {
        let contributing = [(key, Contributing::Value(value))];
        self.sco(kind, &contributing, |writer| {
            writer.properties(&contributing)
        })
    }

    /// The SCOs of one side of an event; their ids go to `refs`.
    fn side(&mut self, payload: &Event, keys: &SideKeys, refs: &mut Vec<StixId>) -> Side {
        let mut side = Side::default();
        // An IP address, else the network (STIX address values may be CIDRs).
        let address = payload.get(keys.ip).or_else(|| payload.get(keys.network));
        if let Some(ip) = address.filter(|value| value.is_string()) {
            let (kind, family) = if ip.as_str().is_some_and(|ip| ip.contains(':')) {
                ("ipv6-addr", "ipv6")
            } else {
                ("ipv4-addr", "ipv4")
            };
            let id = self.value_sco(kind, "value", ip);
            side.address = Some(id);
            side.ip = Some(id);
            side.family = Some(family);
            refs.push(id);
        }
        if let Some(fqdn) = payload.get(keys.fqdn).filter(|value| value.is_string()) {
            let id = self.value_sco("domain-name", "value", fqdn);
            side.address.get_or_insert(id);
            refs.push(id);
        }
        if let Some(url) = payload.get(keys.url).filter(|value| value.is_string()) {
            refs.push(self.value_sco("url", "value", url));
        }
        if let Some(asn) = payload.get(keys.asn).filter(|value| value.is_u64()) {
            let contributing = [("number", Contributing::Value(asn))];
            let id = self.sco("autonomous-system", &contributing, |writer| {
                writer.properties(&contributing);
                if let Some(name) = payload.get(keys.as_name) {
                    writer.value("name", name);
                }
            });
            side.asn = Some(id);
            refs.push(id);
        }
        if let Some(account) = payload.get(keys.account) {
            if account
                .as_str()
                .is_some_and(|account| account.contains('@'))
            {
                refs.push(self.value_sco("email-addr", "value", account));
            }
        }
        side
    }

    /// The network-traffic SCO, written only with both ports: the
    /// validator's check 301 (a warning, so a failure under `--strict`)
    /// asks for both.
    fn traffic(&mut self, payload: &Event, source: &Side, destination: &Side) -> Option<StixId> {
        let src_port = payload.get("source.port").filter(|port| port.is_u64())?;
        let dst_port = payload
            .get("destination.port")
            .filter(|port| port.is_u64())?;
        if source.address.is_none() && destination.address.is_none() {
            return None;
        }
        let mut protocols: Vec<Cow<str>> = Vec::with_capacity(3);
        if let Some(family) = source.family.or(destination.family) {
            protocols.push(Cow::Borrowed(family));
        }
        for key in ["protocol.transport", "protocol.application"] {
            if let Some(name) = payload.get_str(key) {
                let name = if name.bytes().any(|byte| byte.is_ascii_uppercase()) {
                    Cow::Owned(name.to_ascii_lowercase())
                } else {
                    Cow::Borrowed(name)
                };
                if !protocols.contains(&name) {
                    protocols.push(name);
                }
            }
        }
        if protocols.is_empty() {
            return None;
        }
        let refs = [
            ("src_ref", source.address),
            ("dst_ref", destination.address),
        ];
        let contributing: Vec<(&str, Contributing)> = refs
            .into_iter()
            .filter_map(|(key, id)| Some((key, Contributing::Id(id?))))
            .chain([
                ("src_port", Contributing::Value(src_port)),
                ("dst_port", Contributing::Value(dst_port)),
                ("protocols", Contributing::Names(&protocols)),
            ])
            .collect();
        Some(self.sco("network-traffic", &contributing, |writer| {
            writer.properties(&contributing);
        }))
    }

    /// The file SCO of the event's malware hashes; its id is derived from
    /// the first of them.
    fn file(&mut self, payload: &Event) -> Option<StixId> {
        let hashes = || {
            HASHES
                .iter()
                .filter_map(|(field, name)| Some((*name, payload.get(field)?)))
        };
        let (first_name, first_value) = hashes().next()?;
        let contributing = [("hashes", Contributing::Hash(first_name, first_value))];
        Some(self.sco("file", &contributing, |writer| {
            writer.key("hashes");
            json::write_members(writer.out, hashes(), |out, (name, value)| {
                json::write_plain_key(out, name);
                json::write_value(out, value);
            });
        }))
    }

    /// Starts a domain or relationship object of an event, up to the
    /// members they all have.
    fn open_sdo(&mut self, id: StixId, own: &Own) {
        self.open(id);
        let producer = self.producer;
        self.plain("created_by_ref", producer);
        self.plain("created", &own.times.created);
        self.plain("modified", &own.times.created);
        if let Some(marking) = own.marking {
            self.key("object_marking_refs");
            json::write_items(self.out, [marking], json::write_str);
        }
    }

    /// Ends an object that stands for the event alone, recording its id.
    fn close_own(&mut self, own: &mut Own, id: StixId) {
        self.close();
        own.ids.push(id);
    }

    /// A relationship of the event.
    fn relationship(
        &mut self,
        own: &mut Own,
        role: &str,
        kind: &str,
        source: StixId,
        target: StixId,
    ) {
        let id = own.sdo_ids.id("relationship", role);
        self.open_sdo(id, own);
        self.plain("relationship_type", kind);
        self.id("source_ref", source);
        self.id("target_ref", target);
        self.close_own(own, id);
    }

    /// All the objects of one event, its observed-data last.
    fn event(&mut self, envelope: &Envelope) -> Result<()> {
        let payload = &envelope.payload;
        let mut refs = Vec::with_capacity(12);
        let source = self.side(payload, &SOURCE, &mut refs);
        let destination = self.side(payload, &DESTINATION, &mut refs);
        refs.extend(self.traffic(payload, &source, &destination));
        refs.extend(self.file(payload));
        if refs.is_empty() {
            // The data the event was parsed from is what was observed.
            let raw = payload
                .get("raw")
                .filter(|raw| raw.is_string())
                .ok_or_else(|| {
                    Error::shape(
                        "stix: the event has no observable (IP address, domain, URL, AS number, \
                     e-mail address, malware hash or raw data) for observed-data to refer to",
                    )
                })?;
            refs.push(self.value_sco("artifact", "payload_bin", raw));
        }

        let mut own = Own::new(envelope);
        let indicator = self.indicator(&mut own);
        self.malware(&mut own, indicator);
        for (side, keys) in [(&source, &SOURCE), (&destination, &DESTINATION)] {
            if let (Some(ip), Some(asn)) = (side.ip, side.asn) {
                self.relationship(&mut own, keys.belongs_to, "belongs-to", ip, asn);
            }
        }
        self.vulnerabilities(&mut own);
        self.observed_data(&own, &refs);
        Ok(())
    }

    /// The indicator of an IoC-like event (per the classification table)
    /// and its `based-on` relationship; its id.
    fn indicator(&mut self, own: &mut Own) -> Option<StixId> {
        let payload = &own.envelope.payload;
        let kind = payload.get_str("classification.type")?;
        let rule = mapping::classification().encode.get(kind)?;
        let pattern = Pattern::of(payload)?;
        let id = own.sdo_ids.id("indicator", "indicator");
        self.open_sdo(id, own);
        self.key("name");
        json::write_joined_str(self.out, [kind, " ", pattern.value()]);
        self.key("description");
        write_description(self.out, payload);
        self.key("indicator_types");
        let types = rule.indicator_types.iter();
        json::write_items(self.out, types, |out, name| json::write_str(out, name));
        self.key("pattern");
        pattern.write(self.out, payload);
        self.plain("pattern_type", "stix");
        self.plain("pattern_version", "2.1");
        self.plain("valid_from", &own.times.observed);
        self.close_own(own, id);
        let observed = own.observed;
        self.relationship(own, "indicator/based-on", "based-on", id, observed);
        Some(id)
    }

    /// The malware a `malware.name` names: `indicates`d by the indicator,
    /// or, without one (an infected system), seen in a sighting.
    fn malware(&mut self, own: &mut Own, indicator: Option<StixId>) {
        let payload = &own.envelope.payload;
        let Some(name) = payload.get("malware.name").filter(|name| name.is_string()) else {
            return;
        };
        let id = own.sdo_ids.id("malware", "malware");
        self.open_sdo(id, own);
        self.value("name", name);
        self.literal("is_family", b"true");
        self.close_own(own, id);
        if let Some(indicator) = indicator {
            self.relationship(own, "malware/indicates", "indicates", indicator, id);
            return;
        }
        let sighting = own.sdo_ids.id("sighting", "malware/sighting");
        self.open_sdo(sighting, own);
        self.id("sighting_of_ref", id);
        self.ids("observed_data_refs", [&own.observed]);
        self.key("where_sighted_refs");
        json::write_items(self.out, [self.producer], json::write_plain_str);
        self.plain("first_seen", &own.times.observed);
        self.plain("last_seen", &own.times.observed);
        self.literal("count", b"1");
        self.close_own(own, sighting);
    }

    /// A vulnerability per CVE id, `related-to` from the observed-data.
    fn vulnerabilities(&mut self, own: &mut Own) {
        for cve in cves(&own.envelope.payload) {
            let role = format!("vulnerability/{cve}");
            let id = own.sdo_ids.id("vulnerability", &role);
            self.open_sdo(id, own);
            self.text("name", &cve);
            self.key("external_references");
            json::write_items(self.out, [("cve", cve.as_str())], write_reference);
            self.close_own(own, id);
            let observed = own.observed;
            let role = format!("{role}/related-to");
            self.relationship(own, &role, "related-to", observed, id);
        }
    }

    /// The event's observed-data, last, since the envelope it carries
    /// records the ids of all the event's other objects.
    fn observed_data(&mut self, own: &Own, refs: &[StixId]) {
        let envelope = own.envelope;
        let payload = &envelope.payload;
        self.alternates.clear();
        self.alternate_ends.clear();
        for id in std::iter::once(&own.observed).chain(&own.ids) {
            id.push_alternate(ID_SCHEME, &mut self.alternates);
            self.alternate_ends.push(self.alternates.len());
        }
        self.open_sdo(own.observed, own);
        self.plain("first_observed", &own.times.observed);
        self.plain("last_observed", &own.times.observed);
        self.literal("number_observed", b"1");
        self.ids("object_refs", refs);
        if let Some(accuracy) = payload.get("feed.accuracy").and_then(Value::as_f64) {
            let confidence = (accuracy.round().max(0.0) as u64).min(100);
            self.value("confidence", &confidence.into());
        }
        let labels = ["classification.taxonomy", "classification.type"]
            .map(|key| payload.get_str(key))
            .into_iter()
            .flatten();
        if labels.clone().next().is_some() {
            self.key("labels");
            json::write_items(self.out, labels, json::write_str);
        }
        self.key("external_references");
        write_external_references(self.out, envelope);
        self.key("extensions");
        self.out.push(b'{');
        json::write_plain_key(self.out, EXTENSION_ID);
        self.out.push(b'{');
        json::write_plain_key(self.out, "extension_type");
        json::write_plain_str(self.out, "property-extension");
        self.key("meta");
        let starts = std::iter::once(0).chain(self.alternate_ends.iter().copied());
        let alternates = starts
            .zip(&self.alternate_ends)
            .map(|(start, &end)| &self.alternates[start..end]);
        envelope.meta.write_json_adding(self.out, alternates);
        self.key("payload");
        json::write_fields(self.out, payload.fields().iter());
        self.out.extend_from_slice(b"}}");
        self.close();
    }
}

/// What the objects of one event share: their owner (the envelope id) for
/// deriving ids, their times and marking, and the ids of the objects that
/// stand for this event alone, to record in the envelope's alternates.
struct Own<'e> {
    envelope: &'e Envelope,
    /// The ids of the event's objects, derived from its envelope id.
    sdo_ids: SdoIds,
    times: Times,
    /// The TLP marking-definition id, when the event has a TLP.
    marking: Option<&'static str>,
    observed: StixId,
    ids: Vec<StixId>,
}

impl<'e> Own<'e> {
    fn new(envelope: &'e Envelope) -> Self {
        let owner = envelope.meta.uuid.id.hyphenated();
        let mut sdo_ids = SdoIds::new(owner.encode_lower(&mut Uuid::encode_buffer()));
        let marking = envelope
            .payload
            .get_str("tlp")
            .and_then(|level| mapping::tlp().marking_id(level));
        Own {
            envelope,
            observed: sdo_ids.id("observed-data", "observed-data"),
            sdo_ids,
            times: Times::of(envelope),
            marking,
            ids: Vec::with_capacity(8),
        }
    }
}

/// Appends an external reference: `{"source_name":…,"external_id":…}`.
fn write_reference(out: &mut Vec<u8>, (source_name, external_id): (&str, &str)) {
    out.push(b'{');
    json::write_plain_key(out, "source_name");
    json::write_str(out, source_name);
    out.push(b',');
    json::write_plain_key(out, "external_id");
    json::write_str(out, external_id);
    out.push(b'}');
}

/// Appends the envelope's own id and its ids in other systems (except
/// STIX ones, which are the bundle's objects), as external references.
fn write_external_references(out: &mut Vec<u8>, envelope: &Envelope) {
    let ids = &envelope.meta.uuid;
    let own = uuid_text(ids.id);
    let others = ids.alternates().iter().filter_map(|alternate| {
        let (scheme, id) = alternate.split_once(':')?;
        (scheme != ID_SCHEME).then_some((scheme, id))
    });
    let references = std::iter::once((SOURCE_NAME, own.as_str())).chain(others);
    json::write_items(out, references, write_reference);
}

/// The pieces of `value` escaped for a single-quoted STIX pattern string:
/// `\` and `'` get a backslash before them.
fn quoted(value: &str) -> impl Iterator<Item = &str> {
    value.split_inclusive(['\\', '\'']).flat_map(|part| {
        let (text, last) = part.split_at(part.len() - usize::from(part.ends_with(['\\', '\''])));
        [text, if last.is_empty() { "" } else { "\\" }, last]
    })
}

/// The payload fields an indicator's pattern may name, most specific
/// first, source side before destination: the field, the object path and
/// the comparison (a network is a subset test).
const PATTERN_FIELDS: [(&str, &str, &str); 8] = [
    ("source.url", "url:value", "="),
    ("source.fqdn", "domain-name:value", "="),
    ("source.ip", "ipv4-addr:value", "="),
    ("source.network", "ipv4-addr:value", "ISSUBSET"),
    ("destination.url", "url:value", "="),
    ("destination.fqdn", "domain-name:value", "="),
    ("destination.ip", "ipv4-addr:value", "="),
    ("destination.network", "ipv4-addr:value", "ISSUBSET"),
];

/// An indicator's pattern, kept as what it is made of until written.
#[derive(Clone, Copy)]
enum Pattern<'e> {
    /// `[<path> <operator> '<value>']`.
    Observable {
        path: &'static str,
        operator: &'static str,
        value: &'e str,
    },
    /// The malware's file hashes, all compared; `strongest` is the value
    /// the indicator is named after.
    Hashes { strongest: &'e str },
}

impl<'e> Pattern<'e> {
    /// The pattern of the most specific observable of the source side
    /// (URL, domain, IP, network as `ISSUBSET`), else of the destination
    /// side, else of the malware's file hashes.
    fn of(payload: &'e Event) -> Option<Self> {
        for (field, path, operator) in PATTERN_FIELDS {
            if let Some(value) = payload.get_str(field) {
                let path = if path.starts_with("ipv4") && value.contains(':') {
                    "ipv6-addr:value"
                } else {
                    path
                };
                return Some(Pattern::Observable {
                    path,
                    operator,
                    value,
                });
            }
        }
        let strongest = HASHES
            .iter()
            .rev()
            .find_map(|(field, _)| payload.get_str(field))?;
        Some(Pattern::Hashes { strongest })
    }

    /// The value the indicator is named after.
    fn value(&self) -> &'e str {
        match *self {
            Pattern::Observable { value, .. } => value,
            Pattern::Hashes { strongest } => strongest,
        }
    }

    /// Appends the pattern as a JSON string.
    fn write(&self, out: &mut Vec<u8>, payload: &Event) {
        match *self {
            Pattern::Observable {
                path,
                operator,
                value,
            } => {
                let start = ["[", path, " ", operator, " '"];
                let pieces = start.into_iter().chain(quoted(value)).chain(["']"]);
                json::write_joined_str(out, pieces);
            }
            Pattern::Hashes { .. } => {
                let hashes = HASHES
                    .iter()
                    .filter_map(|(field, name)| Some((*name, payload.get_str(field)?)));
                let comparisons = hashes.enumerate().flat_map(|(index, (name, value))| {
                    let and = if index > 0 { " AND " } else { "" };
                    [and, "file:hashes.'", name, "' = '"]
                        .into_iter()
                        .chain(quoted(value))
                        .chain(["'"])
                });
                let pieces = std::iter::once("[").chain(comparisons).chain(["]"]);
                json::write_joined_str(out, pieces);
            }
        }
    }
}

/// Appends the indicator's description (the validator wants one, check
/// 303): the event's own text, else its classification and feed.
fn write_description(out: &mut Vec<u8>, payload: &Event) {
    if let Some(text) = payload.get_str("event_description.text") {
        return json::write_str(out, text);
    }
    let field = |key| payload.get_str(key).unwrap_or("unknown");
    let feed = payload.get_str("feed.name");
    json::write_joined_str(
        out,
        [
            "IntelMQ ",
            field("classification.taxonomy"),
            "/",
            field("classification.type"),
            " event",
            if feed.is_some() { " from feed " } else { "" },
            feed.unwrap_or(""),
            ".",
        ],
    );
}

/// The CVE ids the event names (classification.identifier,
/// product.vulnerabilities), upper case, each once.
fn cves(payload: &Event) -> Vec<String> {
    let mut found: Vec<String> = Vec::new();
    for key in ["classification.identifier", "product.vulnerabilities"] {
        let Some(text) = payload.get_str(key) else {
            continue;
        };
        // Most texts name no CVE: those without the literal part of one
        // are not searched.
        let bytes = text.as_bytes();
        if !bytes
            .windows(4)
            .any(|part| part.eq_ignore_ascii_case(b"cve-"))
        {
            continue;
        }
        for hit in CVE.find_iter(text) {
            let id = hit.as_str().to_ascii_uppercase();
            if !found.contains(&id) {
                found.push(id);
            }
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::formats::intelmq::IntelMq;
    use crate::formats::{fixture_envelopes, DecodeContext, Format};

    /// The envelopes of every STIX fixture, a file's together (so a split
    /// group makes one batch), and every valid IntelMQ fixture alone.
    fn fixture_batches() -> Vec<Vec<Envelope>> {
        let context = DecodeContext::new("test-origin");
        let mut batches = fixture_envelopes("fixtures/stix/from-intelmq", &context);
        for events in fixture_envelopes("fixtures/intelmq/valid", &context) {
            batches.extend(events.into_iter().map(|event| vec![event]));
        }
        batches
    }

    /// What `write_bundle` writes is the text of what `bundle` returns, and
    /// a bundle that cannot be written leaves nothing behind.
    #[test]
    fn the_text_is_the_bundles() {
        let context = EncodeContext::new("test-origin");
        let mut written = 0;
        for events in fixture_batches() {
            let mut text = b"before\n".to_vec();
            match (
                write_bundle(&events, &context, &mut text),
                bundle(&events, &context),
            ) {
                (Ok(()), Ok(value)) => {
                    let mut expected = b"before\n".to_vec();
                    json::write_value(&mut expected, &value);
                    assert_eq!(String::from_utf8(text), String::from_utf8(expected));
                    written += 1;
                }
                (Err(_), Err(_)) => assert_eq!(text, b"before\n"),
                (text, value) => panic!("{text:?} but {value:?}"),
            }
        }
        assert!(written > 10, "only {written} bundles");
    }

    /// A bundle that cannot be written (its second event has nothing for
    /// observed-data to refer to) leaves nothing behind.
    #[test]
    fn a_bundle_that_fails_leaves_nothing() {
        let context = DecodeContext::new("test-origin");
        let mut events = Vec::new();
        for message in [
            json!({"__type": "Event", "source.ip": "192.0.2.1"}),
            json!({"__type": "Event", "feed.name": "x"}),
        ] {
            events.extend(IntelMq.decode(message, &context).unwrap());
        }
        let mut text = b"before\n".to_vec();
        let written = write_bundle(&events, &EncodeContext::new("test-origin"), &mut text);
        assert!(written.is_err());
        assert_eq!(text, b"before\n");
        assert!(write_bundle(&events[..1], &EncodeContext::new("test-origin"), &mut text).is_ok());
    }

    /// Numbers read back from the text are the event's own, floats too.
    #[test]
    fn numbers_read_back_as_they_were() {
        let context = DecodeContext::new("test-origin");
        let message = json!({
            "source.ip": "192.0.2.1",
            "source.asn": 64496,
            "feed.accuracy": 99.99999999999999,
            "extra.numbers": [0.30000000000000004, 1e-7, 5e-324, 1.7976931348623157e308, -0.0, 12345678901234567890u64, -9007199254740993i64],
        });
        let events = IntelMq.decode(message, &context).unwrap();
        let bundle = bundle(&events, &EncodeContext::new("test-origin")).unwrap();
        let objects = bundle["objects"].as_array().unwrap();
        let observed = objects.last().unwrap();
        let payload = &observed["extensions"][EXTENSION_ID]["payload"];
        for key in ["feed.accuracy", "extra.numbers"] {
            assert_eq!(Some(&payload[key]), events[0].payload.get(key), "{key}");
        }
    }

    /// The STIX type names of the SCOs the encoder writes and their
    /// contributing properties.
    const CONTRIBUTING: [(&str, &[&str]); 9] = [
        ("ipv4-addr", &["value"]),
        ("ipv6-addr", &["value"]),
        ("domain-name", &["value"]),
        ("url", &["value"]),
        ("email-addr", &["value"]),
        ("autonomous-system", &["number"]),
        ("artifact", &["payload_bin"]),
        (
            "network-traffic",
            &["src_ref", "dst_ref", "src_port", "dst_port", "protocols"],
        ),
        ("file", &["hashes"]),
    ];

    /// Every SCO's id is the one of its contributing properties, as the
    /// specification derives it (a file's from its first hash alone).
    #[test]
    fn sco_ids_are_those_of_their_contributing_properties() {
        let context = EncodeContext::new("test-origin");
        let mut checked = 0;
        for events in fixture_batches() {
            let Ok(bundle) = bundle(&events, &context) else {
                continue;
            };
            for object in bundle["objects"].as_array().unwrap() {
                let kind = object["type"].as_str().unwrap();
                let Some((kind, keys)) = CONTRIBUTING.iter().find(|(name, _)| *name == kind) else {
                    continue;
                };
                let mut properties = serde_json::Map::new();
                for key in *keys {
                    if let Some(value) = object.get(*key) {
                        properties.insert((*key).to_owned(), value.clone());
                    }
                }
                if let Some(Value::Object(hashes)) = properties.get_mut("hashes") {
                    let first = hashes.iter().next().map(|(k, v)| (k.clone(), v.clone()));
                    *hashes = first.into_iter().collect();
                }
                let mut canonical = Vec::new();
                write_canonical(&mut canonical, &Value::Object(properties));
                assert_eq!(object["id"], sco_id(kind, &canonical).to_string());
                checked += 1;
            }
        }
        assert!(checked > 20, "only {checked} SCOs");
    }
}
