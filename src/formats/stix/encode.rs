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
//! The bundle is built once as [`Property`] lists, which
//! [`Format::encode`](crate::formats::Format::encode) turns into a [`Value`]
//! and [`Format::encode_lines`](crate::formats::Format::encode_lines) writes
//! straight out as JSON text, without hashing a key or copying the event.

use std::borrow::Cow;
use std::cell::RefCell;
use std::collections::HashSet;
use std::rc::Rc;
use std::sync::LazyLock;

use regex::Regex;
use serde_json::{json, Map, Value};

use super::ids::{sco_id, sdo_id, timestamp};
use super::mapping::{self, HASHES};
use super::{
    EXTENSION_ID, EXTENSION_SCHEMA, FIXED_CREATED, ID_SCHEME, PROJECT_IDENTITY_ID, SOURCE_NAME,
};
use crate::envelope::{Envelope, Meta};
use crate::error::{Error, Result};
use crate::event::{Event, Fields};
use crate::formats::{json, EncodeContext};
use crate::harmonization::parse_datetime;

static CVE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)\bcve-\d{4}-\d{4,}\b").unwrap_or_else(|error| panic!("{error}"))
});

/// An object every bundle carries unchanged, built once, with its JSON text.
struct FixedObject {
    value: Value,
    text: Vec<u8>,
}

impl FixedObject {
    /// The object `value` and its text.
    fn new(value: Value) -> Self {
        let mut text = Vec::new();
        json::write_value(&mut text, &value);
        FixedObject { value, text }
    }
}

/// The objects every bundle carries unchanged: the bridge's own identity
/// and the extension-definition it creates.
static PROJECT_OBJECTS: LazyLock<[FixedObject; 2]> = LazyLock::new(|| {
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
    .map(FixedObject::new)
});

/// A property value of the bundle under construction: what it is made of
/// is kept as it is (the event's own values, text shared by several
/// objects) until it is turned into a [`Value`] or written out.
enum Property<'e> {
    /// A value built for the bundle.
    Owned(Value),
    /// A value of the event.
    Borrowed(&'e Value),
    /// An object every bundle carries.
    Fixed(&'e FixedObject),
    /// Text of the event, or a constant.
    Text(&'e str),
    /// Text several objects share: an id, a time.
    Shared(Rc<str>),
    /// The event's payload fields, as a JSON object.
    Fields(&'e Fields),
    /// IEP04 meta, as its JSON object.
    Meta(Box<Meta>),
    /// A JSON object.
    Object(Object<'e>),
    /// A JSON array.
    List(Vec<Property<'e>>),
}

/// The properties of a JSON object in their order, each key once: a list,
/// since nothing is looked up in it.
type Object<'e> = Vec<(&'static str, Property<'e>)>;

impl Property<'_> {
    /// The JSON value of the property.
    fn into_value(self) -> Value {
        match self {
            Property::Owned(value) => value,
            Property::Borrowed(value) => value.clone(),
            Property::Fixed(object) => object.value.clone(),
            Property::Text(text) => text.into(),
            Property::Shared(text) => text.as_ref().into(),
            Property::Fields(fields) => Value::Object(fields.to_map()),
            Property::Meta(meta) => meta.to_value(),
            Property::Object(object) => object_value(object),
            Property::List(items) => items.into_iter().map(Property::into_value).collect(),
        }
    }

    /// Appends the property's JSON text, as [`json::write_value`] writes its value.
    fn write(&self, out: &mut Vec<u8>) {
        match self {
            Property::Owned(value) => json::write_value(out, value),
            Property::Borrowed(value) => json::write_value(out, value),
            Property::Fixed(object) => out.extend_from_slice(&object.text),
            Property::Text(text) => json::write_str(out, text),
            Property::Shared(text) => json::write_str(out, text),
            Property::Fields(fields) => json::write_fields(out, fields.iter()),
            Property::Meta(meta) => meta.write_json(out),
            Property::Object(object) => json::write_members(out, object, |out, (key, property)| {
                json::write_plain_key(out, key);
                property.write(out);
            }),
            Property::List(items) => json::write_items(out, items, |out, item| item.write(out)),
        }
    }
}

/// A value of the event, or one built for the bundle.
impl<'e> From<Cow<'e, Value>> for Property<'e> {
    fn from(value: Cow<'e, Value>) -> Self {
        match value {
            Cow::Borrowed(value) => Property::Borrowed(value),
            Cow::Owned(value) => Property::Owned(value),
        }
    }
}

/// The JSON object of `object`'s properties, in their order.
fn object_value(object: Object) -> Value {
    let map: Map<String, Value> = object
        .into_iter()
        .map(|(key, property)| (key.to_owned(), property.into_value()))
        .collect();
    Value::Object(map)
}

/// The bundle for one envelope or one complete split group, as a value.
pub fn bundle(events: &[Envelope], context: &EncodeContext) -> Result<Value> {
    bundle_object(events, context).map(object_value)
}

/// [`bundle`] appended to `out` as JSON text.
pub fn write_bundle(events: &[Envelope], context: &EncodeContext, out: &mut Vec<u8>) -> Result<()> {
    Property::Object(bundle_object(events, context)?).write(out);
    Ok(())
}

/// The properties of the bundle for one envelope or one complete split group.
fn bundle_object<'e>(events: &'e [Envelope], context: &'e EncodeContext) -> Result<Object<'e>> {
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
    let producer = producer_id(&context.origin);
    let mut bundle = Bundle {
        objects: Vec::with_capacity(4 + events.len() * 8),
        scos: HashSet::new(),
        producer,
    };
    let [project_identity, extension_definition] = &*PROJECT_OBJECTS;
    bundle.objects.push(Property::Fixed(project_identity));
    bundle.objects.push(Property::Object(vec![
        ("type", Property::Text("identity")),
        ("spec_version", Property::Text("2.1")),
        ("id", Property::Shared(bundle.producer.clone())),
        ("created", Property::Text(FIXED_CREATED)),
        ("modified", Property::Text(FIXED_CREATED)),
        ("name", Property::Text(&context.origin)),
        ("identity_class", Property::Text("organization")),
    ]));
    bundle.objects.push(Property::Fixed(extension_definition));
    for envelope in events {
        bundle.add_event(envelope)?;
    }
    Ok(vec![
        ("type", Property::Text("bundle")),
        (
            "id",
            Property::Owned(sdo_id("bundle", &owner, "bundle").into()),
        ),
        ("objects", Property::List(bundle.objects)),
    ])
}

thread_local! {
    /// The last origin this thread encoded for and its producer identity's
    /// id: an instance writes every bundle for the same origin.
    static PRODUCER: RefCell<Option<(String, Rc<str>)>> = const { RefCell::new(None) };
}

/// The id of the identity of the instance named `origin`, derived once per
/// origin and thread rather than once per bundle.
fn producer_id(origin: &str) -> Rc<str> {
    PRODUCER.with_borrow_mut(|last| match last {
        Some((known, id)) if known == origin => id.clone(),
        _ => {
            let id: Rc<str> = sdo_id("identity", &format!("origin:{origin}"), "producer").into();
            *last = Some((origin.to_owned(), id.clone()));
            id
        }
    })
}

/// The objects of a bundle under construction.
struct Bundle<'e> {
    objects: Vec<Property<'e>>,
    /// SCO ids already written: SCOs are shared by the events that name them.
    scos: HashSet<Rc<str>>,
    producer: Rc<str>,
}

/// The STIX times of one event.
struct Times {
    /// `created`/`modified`: time.observation, else time.source.
    created: Rc<str>,
    /// `first_observed`, `valid_from`...: time.source, else time.observation.
    observed: Rc<str>,
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
                .map(|time| Rc::from(timestamp(&time)))
        };
        let fallback = || {
            let time = envelope.meta.uuid.created_at().unwrap_or_default();
            Rc::from(timestamp(&time))
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

/// The payload fields of one side (source or destination) of an event.
struct SideKeys {
    name: &'static str,
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
    name: "source",
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
    name: "destination",
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
    address: Option<Rc<str>>,
    /// `ipv4` or `ipv6`, when the side has an IP address.
    family: Option<&'static str>,
    /// The IP address SCO, which `belongs-to` the autonomous system.
    ip: Option<Rc<str>>,
    /// The autonomous-system SCO.
    asn: Option<Rc<str>>,
}

impl<'e> Bundle<'e> {
    /// Adds an SCO once and returns its id. Its id is derived from the
    /// `contributing` properties; `more` are written after them, or in
    /// place of the contributing one of the same name (a file's full
    /// hashes replace the one hash its id is derived from).
    fn sco(
        &mut self,
        kind: &'static str,
        contributing: Vec<(&'static str, Cow<'e, Value>)>,
        more: Vec<(&'static str, Property<'e>)>,
    ) -> Rc<str> {
        let id: Rc<str> = sco_id(
            kind,
            contributing
                .iter()
                .map(|(key, value)| (*key, value.as_ref())),
        )
        .into();
        if self.scos.insert(id.clone()) {
            let mut object: Object = Vec::with_capacity(3 + contributing.len() + more.len());
            object.push(("type", Property::Text(kind)));
            object.push(("spec_version", Property::Text("2.1")));
            object.push(("id", Property::Shared(id.clone())));
            object.extend(
                contributing
                    .into_iter()
                    .map(|(key, value)| (key, value.into())),
            );
            for (key, value) in more {
                match object.iter_mut().find(|(name, _)| *name == key) {
                    Some(entry) => entry.1 = value,
                    None => object.push((key, value)),
                }
            }
            self.objects.push(Property::Object(object));
        }
        id
    }

    /// The SCOs of one side of an event; their ids go to `refs`.
    fn side(&mut self, payload: &'e Event, keys: &SideKeys, refs: &mut Vec<Rc<str>>) -> Side {
        let mut side = Side::default();
        // An IP address, else the network (STIX address values may be CIDRs).
        let address = payload.get(keys.ip).or_else(|| payload.get(keys.network));
        if let Some(ip) = address.filter(|value| value.is_string()) {
            let (kind, family) = if ip.as_str().is_some_and(|ip| ip.contains(':')) {
                ("ipv6-addr", "ipv6")
            } else {
                ("ipv4-addr", "ipv4")
            };
            let id = self.sco(kind, vec![("value", Cow::Borrowed(ip))], Vec::new());
            side.address = Some(id.clone());
            side.ip = Some(id.clone());
            side.family = Some(family);
            refs.push(id);
        }
        if let Some(fqdn) = payload.get(keys.fqdn).filter(|value| value.is_string()) {
            let id = self.sco(
                "domain-name",
                vec![("value", Cow::Borrowed(fqdn))],
                Vec::new(),
            );
            side.address.get_or_insert_with(|| id.clone());
            refs.push(id);
        }
        if let Some(url) = payload.get(keys.url).filter(|value| value.is_string()) {
            refs.push(self.sco("url", vec![("value", Cow::Borrowed(url))], Vec::new()));
        }
        if let Some(asn) = payload.get(keys.asn).filter(|value| value.is_u64()) {
            let name: Vec<(&str, Property)> = payload
                .get(keys.as_name)
                .map(|name| ("name", Property::Borrowed(name)))
                .into_iter()
                .collect();
            let id = self.sco(
                "autonomous-system",
                vec![("number", Cow::Borrowed(asn))],
                name,
            );
            side.asn = Some(id.clone());
            refs.push(id);
        }
        if let Some(account) = payload.get(keys.account) {
            if account
                .as_str()
                .is_some_and(|account| account.contains('@'))
            {
                let value = vec![("value", Cow::Borrowed(account))];
                refs.push(self.sco("email-addr", value, Vec::new()));
            }
        }
        side
    }

    /// The network-traffic SCO, written only with both ports: the
    /// validator's check 301 (a warning, so a failure under `--strict`)
    /// asks for both.
    fn traffic(
        &mut self,
        payload: &'e Event,
        source: &Side,
        destination: &Side,
    ) -> Option<Rc<str>> {
        let src_port = payload.get("source.port").filter(|port| port.is_u64())?;
        let dst_port = payload
            .get("destination.port")
            .filter(|port| port.is_u64())?;
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
        let mut contributing = Vec::with_capacity(5);
        if let Some(id) = &source.address {
            contributing.push(("src_ref", Cow::Owned(id.as_ref().into())));
        }
        if let Some(id) = &destination.address {
            contributing.push(("dst_ref", Cow::Owned(id.as_ref().into())));
        }
        contributing.push(("src_port", Cow::Borrowed(src_port)));
        contributing.push(("dst_port", Cow::Borrowed(dst_port)));
        contributing.push(("protocols", Cow::Owned(protocols.into())));
        Some(self.sco("network-traffic", contributing, Vec::new()))
    }

    /// The file SCO of the event's malware hashes.
    fn file(&mut self, payload: &'e Event) -> Option<Rc<str>> {
        let hashes: Map<String, Value> = HASHES
            .iter()
            .filter_map(|(field, name)| Some(((*name).to_owned(), payload.get(field)?.clone())))
            .collect();
        let (first_name, first_value) = hashes.iter().next()?;
        let contributing = json!({first_name.clone(): first_value.clone()});
        let all = Property::Owned(Value::Object(hashes));
        Some(self.sco(
            "file",
            vec![("hashes", Cow::Owned(contributing))],
            vec![("hashes", all)],
        ))
    }

    /// Common properties of a domain or relationship object of an event.
    fn sdo(&self, kind: &'static str, id: &Rc<str>, own: &Own) -> Object<'e> {
        let mut object = Vec::with_capacity(12);
        object.push(("type", Property::Text(kind)));
        object.push(("spec_version", Property::Text("2.1")));
        object.push(("id", Property::Shared(id.clone())));
        object.push(("created_by_ref", Property::Shared(self.producer.clone())));
        object.push(("created", Property::Shared(own.times.created.clone())));
        object.push(("modified", Property::Shared(own.times.created.clone())));
        if let Some(marking) = own.marking {
            let markings = Property::List(vec![Property::Text(marking)]);
            object.push(("object_marking_refs", markings));
        }
        object
    }

    /// Adds an object that stands for the event alone.
    fn add_own(&mut self, own: &mut Own, object: Object<'e>, id: Rc<str>) {
        self.objects.push(Property::Object(object));
        own.ids.push(id);
    }

    /// Adds a relationship of the event.
    fn relationship(
        &mut self,
        own: &mut Own,
        role: &str,
        kind: &'static str,
        source: &Rc<str>,
        target: &Rc<str>,
    ) {
        let id = sdo_id("relationship", &own.owner, role).into();
        let mut object = self.sdo("relationship", &id, own);
        object.push(("relationship_type", Property::Text(kind)));
        object.push(("source_ref", Property::Shared(source.clone())));
        object.push(("target_ref", Property::Shared(target.clone())));
        self.add_own(own, object, id);
    }

    fn add_event(&mut self, envelope: &'e Envelope) -> Result<()> {
        let payload = &envelope.payload;
        let mut refs = Vec::new();
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
            let contributing = vec![("payload_bin", Cow::Borrowed(raw))];
            refs.push(self.sco("artifact", contributing, Vec::new()));
        }

        let mut own = Own::new(envelope);
        let indicator = self.indicator(&mut own);
        self.malware(&mut own, indicator.as_ref());
        for (side, keys) in [(&source, &SOURCE), (&destination, &DESTINATION)] {
            if let (Some(ip), Some(asn)) = (&side.ip, &side.asn) {
                let role = format!("{}/belongs-to", keys.name);
                self.relationship(&mut own, &role, "belongs-to", ip, asn);
            }
        }
        self.vulnerabilities(&mut own);
        self.observed_data(own, refs);
        Ok(())
    }

    /// The indicator of an IoC-like event (per the classification table)
    /// and its `based-on` relationship; its id.
    fn indicator(&mut self, own: &mut Own<'e>) -> Option<Rc<str>> {
        let payload = &own.envelope.payload;
        let kind = payload.get_str("classification.type")?;
        let rule = mapping::classification().encode.get(kind)?;
        let (pattern, value) = pattern(payload)?;
        let id = sdo_id("indicator", &own.owner, "indicator").into();
        let mut object = self.sdo("indicator", &id, own);
        object.push(("name", Property::Owned(format!("{kind} {value}").into())));
        object.push(("description", Property::Owned(description(payload).into())));
        let types = rule.indicator_types.iter().map(|name| Property::Text(name));
        object.push(("indicator_types", Property::List(types.collect())));
        object.push(("pattern", Property::Owned(pattern.into())));
        object.push(("pattern_type", Property::Text("stix")));
        object.push(("pattern_version", Property::Text("2.1")));
        object.push(("valid_from", Property::Shared(own.times.observed.clone())));
        self.add_own(own, object, Rc::clone(&id));
        let observed = own.observed_id.clone();
        self.relationship(own, "indicator/based-on", "based-on", &id, &observed);
        Some(id)
    }

    /// The malware a `malware.name` names: `indicates`d by the indicator,
    /// or, without one (an infected system), seen in a sighting.
    fn malware(&mut self, own: &mut Own<'e>, indicator: Option<&Rc<str>>) {
        let Some(name) = own.envelope.payload.get("malware.name") else {
            return;
        };
        if !name.is_string() {
            return;
        }
        let id: Rc<str> = sdo_id("malware", &own.owner, "malware").into();
        let mut object = self.sdo("malware", &id, own);
        object.push(("name", Property::Borrowed(name)));
        object.push(("is_family", Property::Owned(true.into())));
        self.add_own(own, object, id.clone());
        if let Some(indicator) = indicator {
            self.relationship(own, "malware/indicates", "indicates", indicator, &id);
            return;
        }
        let sighting: Rc<str> = sdo_id("sighting", &own.owner, "malware/sighting").into();
        let mut object = self.sdo("sighting", &sighting, own);
        let observed = Property::List(vec![Property::Shared(own.observed_id.clone())]);
        let sighted = Property::List(vec![Property::Shared(self.producer.clone())]);
        object.push(("sighting_of_ref", Property::Shared(id)));
        object.push(("observed_data_refs", observed));
        object.push(("where_sighted_refs", sighted));
        object.push(("first_seen", Property::Shared(own.times.observed.clone())));
        object.push(("last_seen", Property::Shared(own.times.observed.clone())));
        object.push(("count", Property::Owned(1.into())));
        self.add_own(own, object, sighting);
    }

    /// A vulnerability per CVE id, `related-to` from the observed-data.
    fn vulnerabilities(&mut self, own: &mut Own<'e>) {
        for cve in cves(&own.envelope.payload) {
            let role = format!("vulnerability/{cve}");
            let id: Rc<str> = sdo_id("vulnerability", &own.owner, &role).into();
            let mut object = self.sdo("vulnerability", &id, own);
            let reference = Property::Object(vec![
                ("source_name", Property::Text("cve")),
                ("external_id", Property::Owned(cve.clone().into())),
            ]);
            object.push(("name", Property::Owned(cve.into())));
            object.push(("external_references", Property::List(vec![reference])));
            self.add_own(own, object, id.clone());
            let observed = own.observed_id.clone();
            let role = format!("{role}/related-to");
            self.relationship(own, &role, "related-to", &observed, &id);
        }
    }

    /// The event's observed-data, last, since the envelope it carries
    /// records the ids of all the event's other objects.
    fn observed_data(&mut self, own: Own<'e>, refs: Vec<Rc<str>>) {
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
            meta.uuid.add_alternate([ID_SCHEME, ":", id].concat());
        }
        let mut object = self.sdo("observed-data", observed_id, &own);
        object.push(("first_observed", Property::Shared(times.observed.clone())));
        object.push(("last_observed", Property::Shared(times.observed.clone())));
        object.push(("number_observed", Property::Owned(1.into())));
        let refs = refs.into_iter().map(Property::Shared).collect();
        object.push(("object_refs", Property::List(refs)));
        if let Some(accuracy) = payload.get("feed.accuracy").and_then(Value::as_f64) {
            let confidence = (accuracy.round().max(0.0) as u64).min(100);
            object.push(("confidence", Property::Owned(confidence.into())));
        }
        let labels: Vec<Property> = ["classification.taxonomy", "classification.type"]
            .iter()
            .filter_map(|key| payload.get_str(key))
            .map(Property::Text)
            .collect();
        if !labels.is_empty() {
            object.push(("labels", Property::List(labels)));
        }
        object.push(("external_references", external_references(envelope)));
        let extension = vec![
            ("extension_type", Property::Text("property-extension")),
            ("meta", Property::Meta(Box::new(meta))),
            ("payload", Property::Fields(payload.fields())),
        ];
        let extensions = vec![(EXTENSION_ID, Property::Object(extension))];
        object.push(("extensions", Property::Object(extensions)));
        self.objects.push(Property::Object(object));
    }
}

/// What the objects of one event share: their owner (the envelope id) for
/// deriving ids, their times and marking, and the ids of the objects that
/// stand for this event alone, to record in the envelope's alternates.
struct Own<'e> {
    envelope: &'e Envelope,
    owner: String,
    times: Times,
    /// The TLP marking-definition id, when the event has a TLP.
    marking: Option<&'static str>,
    observed_id: Rc<str>,
    ids: Vec<Rc<str>>,
}

impl<'e> Own<'e> {
    fn new(envelope: &'e Envelope) -> Self {
        let owner = envelope.meta.uuid.id.to_string();
        let marking = envelope
            .payload
            .get_str("tlp")
            .and_then(|level| mapping::tlp().marking_id(level));
        Own {
            envelope,
            observed_id: sdo_id("observed-data", &owner, "observed-data").into(),
            owner,
            times: Times::of(envelope),
            marking,
            ids: Vec::new(),
        }
    }
}

/// The envelope's own id and its ids in other systems (except STIX ones,
/// which are the bundle's objects), as external references.
fn external_references(envelope: &Envelope) -> Property<'_> {
    let reference = |source_name, external_id| {
        Property::Object(vec![
            ("source_name", Property::Text(source_name)),
            ("external_id", external_id),
        ])
    };
    let ids = &envelope.meta.uuid;
    let own = reference(SOURCE_NAME, Property::Owned(ids.id.to_string().into()));
    let others = ids.alternates().iter().filter_map(|alternate| {
        let (scheme, id) = alternate.split_once(':')?;
        (scheme != ID_SCHEME).then(|| reference(scheme, Property::Text(id)))
    });
    Property::List(std::iter::once(own).chain(others).collect())
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
