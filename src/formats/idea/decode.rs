//! IDEA → envelopes.
//!
//! A message from a Warden partner is mapped field by field and split into
//! linked events when it holds several addresses (DESIGN.md: one event per
//! address when one side is multiple, sources-only then targets-only events
//! when both are). What IntelMQ has no field for is kept in `extra.idea`
//! (top-level keys) and `extra.idea_source` / `extra.idea_target` (keys of
//! the event's Source / Target entry), verbatim.
//!
//! A message the bridge wrote itself carries `_intelmq`; it is restored
//! exactly from the carried fields ([`carried_fields`]) and `_intelmq`.

use std::borrow::Cow;
use std::fmt::{self, Display};
use std::net::IpAddr;

use ipnet::{IpNet, Ipv4Subnets, Ipv6Subnets};
use serde_json::{Map, Value};
use uuid::Uuid;

use super::mapping::{Pair, SideFields, Tables};
use super::{is_idea_id, CARRY_KEY, EXTRA_SIDE_KEYS, EXTRA_TOP_KEY, NAME};
use crate::envelope::{derived_id, link_split_group, Envelope, Ids, Meta};
use crate::error::{Error, Result};
use crate::event::{Event, Fields};
use crate::formats::{raw_field, DecodeContext};
use crate::harmonization::{Harmonization, MessageType};

/// Top-level keys that become meta, or are handled per event, rather than
/// fields or `extra.idea`.
const STRUCTURAL_KEYS: [&str; 7] = [
    "Format", "ID", "AltNames", "RelID", "CorrelID", "Source", "Target",
];
/// The IDEA container version.
const FORMAT: &str = "IDEA0";
/// Room for the fields [`carried_fields`] usually gives back (times,
/// protocol, hashes, `raw`, a few of each side's), so that its map is
/// allocated once rather than grown.
const RECOVERED_CAPACITY: usize = 16;
/// Attach `Type` of the original data IntelMQ's expert attaches (`raw`).
pub(super) const ORIG_DATA: &str = "OrigData";

/// An address of a Source/Target entry, as an IntelMQ event holds it.
#[derive(Debug, Clone, PartialEq)]
enum Address {
    /// One host: `*.ip`.
    Ip(IpAddr),
    /// A network (CIDR, or one block of a range): `*.network`.
    Network(IpNet),
}

/// `Proto` read as IntelMQ's `protocol.transport` and `protocol.application`.
#[derive(Debug, Clone, PartialEq)]
struct Protocol {
    transport: Option<Value>,
    application: Option<Value>,
    /// Whether `[transport, application]` gives the IDEA list back.
    exact: bool,
}

/// One Source or Target entry, read.
struct Entry<'m> {
    /// IntelMQ fields (with their `source.`/`destination.` prefix) that
    /// every event of this entry gets.
    fields: Vec<(&'static str, Value)>,
    protocol: Option<(Protocol, &'m Value)>,
    /// One event per address; none: one event without an address.
    addresses: Vec<Address>,
    /// Keys IntelMQ has no field for, verbatim.
    leftover: Map<String, Value>,
    /// The entry's `Type` tags.
    types: Vec<&'m str>,
    /// The side's IntelMQ field names, spelt once in the tables.
    names: &'static SideFields,
}

/// Decodes one IDEA message.
pub fn decode(message: Value, context: &DecodeContext) -> Result<Vec<Envelope>> {
    let Some(object) = message.as_object() else {
        return Err(Error::shape(
            "not a JSON object: an IDEA message is an object",
        ));
    };
    let id = check_header(object)?;
    match object.get(CARRY_KEY) {
        Some(carried) => restore(object, carried, context.harmonization),
        None => plain(object, id, raw_field(&message), context),
    }
}

/// Checks what every IDEA message must have, returning its `ID`.
fn check_header(object: &Map<String, Value>) -> Result<&str> {
    match object.get("Format") {
        Some(Value::String(format)) if format == FORMAT => {}
        Some(other) => return Err(Error::invalid("Format", other, "is not \"IDEA0\"")),
        None => return Err(missing("Format")),
    }
    let id = match object.get("ID") {
        Some(Value::String(id)) if is_idea_id(id) => id,
        Some(other) => {
            return Err(Error::invalid(
                "ID",
                other,
                "is not an IDEA id (letters, digits, '.', '_', '-')",
            ))
        }
        None => return Err(missing("ID")),
    };
    if !object.contains_key("DetectTime") {
        return Err(missing("DetectTime"));
    }
    let categories = object.get("Category").ok_or_else(|| missing("Category"))?;
    for category in string_list(categories, "Category")? {
        if !is_event_tag(category) {
            let value = Value::String(category.to_owned());
            return Err(Error::invalid(
                "Category",
                &value,
                "is not an IDEA category tag",
            ));
        }
    }
    Ok(id)
}

fn missing(field: &str) -> Error {
    Error::Missing {
        field: field.to_owned(),
    }
}

/// `X` or `X.Y`, each part letters, digits, `_` and `-`.
fn is_event_tag(tag: &str) -> bool {
    let part = |p: &str| {
        !p.is_empty()
            && p.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    };
    match tag.split_once('.') {
        Some((class, sub)) => part(class) && part(sub),
        None => part(tag),
    }
}

/// A JSON list of strings, or an error naming `field`.
fn string_list<'v>(value: &'v Value, field: &(impl Display + ?Sized)) -> Result<Vec<&'v str>> {
    let items = value
        .as_array()
        .ok_or_else(|| Error::invalid(&field.to_string(), value, "is not a list"))?;
    items
        .iter()
        .map(|item| {
            item.as_str()
                .ok_or_else(|| Error::invalid(&field.to_string(), item, "is not a string"))
        })
        .collect()
}

/// `parent.key`, a path into the message spelt out only when an error names
/// it: the encoder re-reads every message it builds, and formatting every
/// key's path cost a tenth of that.
struct Dotted<'a>(&'a str, &'a str);

impl Display for Dotted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.0, self.1)
    }
}

/// `parent[index]`, spelt out only when an error names it (see [`Dotted`]).
struct Indexed<'a, P: ?Sized>(&'a P, usize);

impl<P: Display + ?Sized> Display for Indexed<'_, P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}[{}]", self.0, self.1)
    }
}

/// A message's top-level keys as reading looks them up: a parsed message's
/// map, or the keys the encoder is still assembling, so that it can read
/// them back before they become a map or text.
pub(super) trait TopLevel {
    /// The value of `key`, if the message has it.
    fn key(&self, key: &str) -> Option<&Value>;
}

/// A Source or Target entry as reading goes through it: a parsed message's
/// map, or the keys the encoder is still assembling.
pub(super) trait Object: TopLevel {
    /// The keys and values, in their order.
    fn pairs(&self) -> impl Iterator<Item = (&str, &Value)>;
}

impl TopLevel for Map<String, Value> {
    fn key(&self, key: &str) -> Option<&Value> {
        self.get(key)
    }
}

impl Object for Map<String, Value> {
    fn pairs(&self) -> impl Iterator<Item = (&str, &Value)> {
        self.iter().map(|(key, value)| (key.as_str(), value))
    }
}

/// The encoder's keys in their order, each once: a handful, so comparing
/// names costs less than hashing them.
impl TopLevel for [(&str, Cow<'_, Value>)] {
    fn key(&self, key: &str) -> Option<&Value> {
        let found = self.iter().find(|(name, _)| *name == key);
        found.map(|(_, value)| &**value)
    }
}

impl Object for [(&str, Cow<'_, Value>)] {
    fn pairs(&self) -> impl Iterator<Item = (&str, &Value)> {
        self.iter().map(|(key, value)| (*key, &**value))
    }
}

/// Where reading puts the IntelMQ fields it finds: a map, when decoding
/// goes on to change them, or a [`FieldList`], when the encoder only looks
/// at what its message gives back.
pub(super) trait FieldSink {
    /// Room for `capacity` fields.
    fn with_capacity(capacity: usize) -> Self;
    /// Sets `key` as a map insert does: in place when it is there already,
    /// at the end otherwise. Every name reading sets is a constant or the
    /// IDEA tables' own.
    fn set(&mut self, key: &'static str, value: Value);
    /// Whether `key` is set.
    fn has(&self, key: &str) -> bool;
}

impl FieldSink for Map<String, Value> {
    fn with_capacity(capacity: usize) -> Self {
        Map::with_capacity(capacity)
    }

    fn set(&mut self, key: &'static str, value: Value) {
        self.insert(key.to_owned(), value);
    }

    fn has(&self, key: &str) -> bool {
        self.contains_key(key)
    }
}

/// Fields read back, in their order, each once: a handful, so comparing
/// names costs less than hashing them, and the names are not copied.
pub(super) type FieldList = Vec<(&'static str, Value)>;

impl FieldSink for FieldList {
    fn with_capacity(capacity: usize) -> Self {
        Vec::with_capacity(capacity)
    }

    fn set(&mut self, key: &'static str, value: Value) {
        match self.iter_mut().find(|(name, _)| *name == key) {
            Some((_, slot)) => *slot = value,
            None => self.push((key, value)),
        }
    }

    fn has(&self, key: &str) -> bool {
        self.iter().any(|(name, _)| *name == key)
    }
}

/// A JSON list of objects (`Source`, `Target`, `Attach`), or an error.
fn object_list<'v>(
    object: &'v (impl TopLevel + ?Sized),
    key: &str,
) -> Result<Vec<&'v Map<String, Value>>> {
    let Some(value) = object.key(key) else {
        return Ok(Vec::new());
    };
    let items = value
        .as_array()
        .ok_or_else(|| Error::invalid(key, value, "is not a list"))?;
    items
        .iter()
        .enumerate()
        .map(|(index, item)| {
            item.as_object()
                .ok_or_else(|| Error::invalid(&format!("{key}[{index}]"), item, "is not an object"))
        })
        .collect()
}

/// The fields of the event a message was just encoded from, when the
/// encoder re-reads it: a value equal to the event's own for the same field
/// is taken as it is ([`Harmonization::accept_known`]). None when decoding.
type Known<'a> = Option<&'a Fields>;

/// Accepts `value` for IntelMQ `field`, naming the IDEA key `path` when it
/// is refused.
fn accept(
    harmonization: &Harmonization,
    known: Known<'_>,
    path: &(impl Display + ?Sized),
    field: &str,
    value: Value,
) -> Result<Option<Value>> {
    // The refusal already quotes the value as it arrived, so it is not
    // cloned up front for the rare error.
    let held = known.and_then(|fields| fields.get(field));
    harmonization
        .accept_known(MessageType::Event, field, value, held)
        .map_err(|error| match error {
            Error::InvalidValue { value, reason, .. } => Error::InvalidValue {
                field: path.to_string(),
                value,
                reason: format!("{reason} (as {field})"),
            },
            other => other,
        })
}

/// The one item of a one-item IDEA list.
fn single(value: &Value) -> Option<&Value> {
    match value.as_array().map(Vec::as_slice) {
        Some([item]) => Some(item),
        _ => None,
    }
}

/// Reads one Source/Target entry.
fn read_entry<'m>(
    entry: &'m (impl Object + ?Sized),
    path: &str,
    names: &'static SideFields,
    harmonization: &Harmonization,
    known: Known<'_>,
) -> Result<Entry<'m>> {
    let tables = Tables::get();
    let flag = |key: &str| entry.key(key).and_then(Value::as_bool) == Some(true);
    let vague = flag("Anonymised") || flag("Imprecise");
    let mut read = Entry {
        fields: Vec::new(),
        protocol: None,
        addresses: Vec::new(),
        leftover: Map::new(),
        types: Vec::new(),
        names,
    };
    for (key, value) in entry.pairs() {
        let key_path = Dotted(path, key);
        match key {
            "IP4" | "IP6" | "IP" => {
                let mut addresses = Vec::new();
                for (index, item) in string_list(value, &key_path)?.into_iter().enumerate() {
                    let item_path = Indexed(&key_path, index);
                    addresses.extend(parse_addresses(item, key, &item_path)?);
                }
                if vague {
                    read.leftover.insert(key.to_owned(), value.clone());
                } else {
                    read.addresses.extend(addresses);
                }
            }
            "LocalIP4" | "LocalIP6" => {
                let field = names.local_ip.as_str();
                match single(value).and_then(|item| {
                    accept(harmonization, known, &key_path, field, item.clone())
                        .ok()
                        .flatten()
                }) {
                    Some(ip) => read.fields.push((field, ip)),
                    None => {
                        read.leftover.insert(key.to_owned(), value.clone());
                    }
                }
            }
            "Proto" => {
                let names = string_list(value, &key_path)?;
                read.protocol = Some((read_protocol(&names, tables), value));
            }
            "Type" => {
                read.types = string_list(value, &key_path)?;
                read.leftover.insert(key.to_owned(), value.clone());
            }
            _ => match tables
                .side
                .iter()
                .zip(&names.pairs)
                .find(|(pair, _)| pair.idea == key)
            {
                Some((pair, field)) => read_side_field(
                    &mut read,
                    (pair, field),
                    key,
                    value,
                    &key_path,
                    (harmonization, known),
                )?,
                None => {
                    read.leftover.insert(key.to_owned(), value.clone());
                }
            },
        }
    }
    Ok(read)
}

/// Reads a key of the side table: one value becomes the IntelMQ field;
/// several, or one IntelMQ refuses, stay in the leftover (a strict key's
/// refused value rejects the message). `field` is the pair's full IntelMQ
/// field name on this side.
fn read_side_field(
    read: &mut Entry<'_>,
    (pair, field): (&Pair, &'static str),
    key: &str,
    value: &Value,
    path: &Dotted<'_>,
    (harmonization, known): (&Harmonization, Known<'_>),
) -> Result<()> {
    let items = value
        .as_array()
        .ok_or_else(|| Error::invalid(&path.to_string(), value, "is not a list"))?;
    let mut accepted = Vec::with_capacity(items.len());
    for item in items {
        match accept(harmonization, known, path, field, item.clone()) {
            Ok(Some(clean)) => accepted.push(clean),
            Ok(None) => {}
            Err(error) if pair.strict => return Err(error),
            Err(_) => {}
        }
    }
    match <[Value; 1]>::try_from(accepted) {
        Ok([clean]) if items.len() == 1 => read.fields.push((field, clean)),
        _ => {
            read.leftover.insert(key.to_owned(), value.clone());
        }
    }
    Ok(())
}

/// `Proto` by convention `[transport, application]`: the first name is the
/// transport when it is one; the next is the application.
fn read_protocol(names: &[&str], tables: &Tables) -> Protocol {
    let lower: Vec<Cow<str>> = names.iter().map(|name| lower_case(name)).collect();
    let (transport, rest) = match lower.split_first() {
        // The list of transports is short: comparing costs less than hashing.
        Some((first, rest)) if tables.transports.iter().any(|t| t == first) => (Some(first), rest),
        _ => (None, lower.as_slice()),
    };
    let application = rest.first();
    let exact = rest.len() <= 1 && lower.iter().zip(names).all(|(low, name)| low == name);
    let text = |name: &Cow<str>| Value::String(name.clone().into_owned());
    Protocol {
        transport: transport.map(text),
        application: application.map(text),
        exact,
    }
}

/// `name` in lower case, borrowed when it is already: protocol names
/// usually are, and are plain ASCII.
fn lower_case(name: &str) -> Cow<'_, str> {
    if name
        .bytes()
        .any(|byte| byte.is_ascii_uppercase() || !byte.is_ascii())
    {
        Cow::Owned(name.to_lowercase())
    } else {
        Cow::Borrowed(name)
    }
}

/// The addresses an `IP4`/`IP6`/`IP` item stands for: one address, one
/// network, or the networks covering an `a-b` range.
fn parse_addresses(item: &str, key: &str, path: &(impl Display + ?Sized)) -> Result<Vec<Address>> {
    let bad =
        |reason: &str| Error::invalid(&path.to_string(), &Value::String(item.to_owned()), reason);
    let family_ok = |ip: &IpAddr| match key {
        "IP4" => ip.is_ipv4(),
        "IP6" => ip.is_ipv6(),
        _ => true,
    };
    let expectation = match key {
        "IP4" => "is not an IPv4 address, CIDR or range",
        "IP6" => "is not an IPv6 address, CIDR or range",
        _ => "is not an IP address, CIDR or range",
    };
    let text = item.trim();
    if let Some((start, end)) = text.split_once('-') {
        let start: IpAddr = start.trim().parse().map_err(|_| bad(expectation))?;
        let end: IpAddr = end.trim().parse().map_err(|_| bad(expectation))?;
        if !family_ok(&start) {
            return Err(bad(expectation));
        }
        let networks: Vec<IpNet> = match (start, end) {
            (IpAddr::V4(start), IpAddr::V4(end)) => {
                Ipv4Subnets::new(start, end, 0).map(IpNet::V4).collect()
            }
            (IpAddr::V6(start), IpAddr::V6(end)) => {
                Ipv6Subnets::new(start, end, 0).map(IpNet::V6).collect()
            }
            _ => return Err(bad("mixes IPv4 and IPv6")),
        };
        if networks.is_empty() {
            return Err(bad("is a reversed range"));
        }
        return Ok(networks.into_iter().map(network_address).collect());
    }
    if text.contains('/') {
        let network: IpNet = text.parse().map_err(|_| bad(expectation))?;
        if !family_ok(&network.addr()) {
            return Err(bad(expectation));
        }
        return Ok(vec![network_address(network.trunc())]);
    }
    let ip: IpAddr = text.parse().map_err(|_| bad(expectation))?;
    if !family_ok(&ip) {
        return Err(bad(expectation));
    }
    Ok(vec![Address::Ip(ip)])
}

/// A network of one address is that address.
fn network_address(network: IpNet) -> Address {
    if network.prefix_len() == network.max_prefix_len() {
        Address::Ip(network.addr())
    } else {
        Address::Network(network)
    }
}

/// The IntelMQ fields of one event of an entry (its address, if any).
fn entry_fields(entry: &Entry<'_>, address: Option<&Address>, fields: &mut impl FieldSink) {
    for (key, value) in &entry.fields {
        fields.set(key, value.clone());
    }
    match address {
        Some(Address::Ip(ip)) => {
            fields.set(&entry.names.ip, address_text(*ip).into());
        }
        Some(Address::Network(network)) => {
            fields.set(&entry.names.network, network.to_string().into());
        }
        None => {}
    }
}

/// An address's text as `to_string` writes it; an IPv4 address, the usual
/// case, without going through the formatting machinery.
fn address_text(ip: IpAddr) -> String {
    let IpAddr::V4(v4) = ip else {
        return ip.to_string();
    };
    let mut text = String::with_capacity(15);
    for (index, octet) in v4.octets().into_iter().enumerate() {
        if index > 0 {
            text.push('.');
        }
        if octet >= 100 {
            text.push(char::from(b'0' + octet / 100));
        }
        if octet >= 10 {
            text.push(char::from(b'0' + octet / 10 % 10));
        }
        text.push(char::from(b'0' + octet % 10));
    }
    text
}

/// `protocol.transport` and `protocol.application` of an event.
fn protocol_fields(protocol: &Protocol, fields: &mut impl FieldSink) {
    for (key, value) in [
        ("protocol.transport", &protocol.transport),
        ("protocol.application", &protocol.application),
    ] {
        if let Some(value) = value {
            fields.set(key, value.clone());
        }
    }
}

/// The fields of `top`-level keys in the message table (times, `Note`).
fn message_fields(
    top: &(impl TopLevel + ?Sized),
    (harmonization, known): (&Harmonization, Known<'_>),
    fields: &mut impl FieldSink,
) -> Result<()> {
    for pair in &Tables::get().message {
        if let Some(value) = top.key(&pair.idea) {
            let clean = accept(
                harmonization,
                known,
                &pair.idea,
                &pair.intelmq,
                value.clone(),
            )?;
            if let Some(clean) = clean {
                fields.set(&pair.intelmq, clean);
            }
        }
    }
    Ok(())
}

/// The value of `key` in an `Attach` item. An item has a handful of keys,
/// so comparing their names costs less than hashing `key`; a larger one is
/// looked up in its map.
fn attach_key<'v>(attach: &'v Map<String, Value>, key: &str) -> Option<&'v Value> {
    const SCANNED_KEYS: usize = 8;
    if attach.len() > SCANNED_KEYS {
        return attach.get(key);
    }
    let found = attach.iter().find(|(name, _)| *name == key);
    found.map(|(_, value)| value)
}

/// The malware hashes of `Attach`: the first `Hash` of each known scheme.
fn hash_fields(attachments: &[&Map<String, Value>], fields: &mut impl FieldSink) {
    let tables = Tables::get();
    let hashes = attachments
        .iter()
        .filter_map(|attach| attach_key(attach, "Hash").and_then(Value::as_array))
        .flatten()
        .filter_map(Value::as_str);
    for hash in hashes {
        let Some((scheme, digest)) = hash.split_once(':') else {
            continue;
        };
        let scheme = scheme.to_ascii_lowercase();
        if let Some(pair) = tables.hashes.iter().find(|pair| pair.idea == scheme) {
            if !fields.has(&pair.intelmq) && !digest.is_empty() {
                fields.set(&pair.intelmq, digest.into());
            }
        }
    }
}

/// The fields that a message the bridge wrote carries in IDEA keys, for
/// one event with the given Source and Target entries. Encoding checks
/// what this gives back, so that `_intelmq` holds only the rest; it passes
/// the event's fields as `known`, so that the values it copied from them
/// are not checked again, and takes them as a [`FieldList`].
pub(super) fn carried_fields<S: FieldSink, E: Object + ?Sized>(
    top: &(impl TopLevel + ?Sized),
    source: Option<&E>,
    target: Option<&E>,
    harmonization: &Harmonization,
    known: Known<'_>,
) -> Result<S> {
    let tables = Tables::get();
    // Sized for the fields an entry pair and the top level usually give.
    let mut fields = S::with_capacity(RECOVERED_CAPACITY);
    message_fields(top, (harmonization, known), &mut fields)?;
    let mut protocol = None;
    for ((entry, side), names) in [source, target]
        .into_iter()
        .zip(&tables.sides)
        .zip(&tables.side_fields)
    {
        let Some(entry) = entry else { continue };
        let read = read_entry(entry, &side.idea, names, harmonization, known)?;
        let address = match read.addresses.as_slice() {
            [one] => Some(one),
            _ => None,
        };
        entry_fields(&read, address, &mut fields);
        if protocol.is_none() {
            protocol = read.protocol.map(|(protocol, _)| protocol);
        }
    }
    attached_fields(top, protocol.as_ref(), (harmonization, known), &mut fields)?;
    Ok(fields)
}

/// [`carried_fields`] but for the entries' own fields (addresses, the side
/// table, local addresses), for an encoder that copied those one to one
/// from the event `known`, so that they give back exactly its values; the
/// protocol is still read from the first entry with a `Proto`, as there.
pub(super) fn carried_fields_beside_entries<E: TopLevel + ?Sized>(
    top: &(impl TopLevel + ?Sized),
    entries: [Option<&E>; 2],
    harmonization: &Harmonization,
    known: Known<'_>,
) -> Result<FieldList> {
    let mut fields = FieldList::with_capacity(RECOVERED_CAPACITY);
    message_fields(top, (harmonization, known), &mut fields)?;
    let protocol = entries
        .into_iter()
        .flatten()
        .find_map(|entry| entry.key("Proto"))
        .map(|value| string_list(value, "Proto").map(|names| read_protocol(&names, Tables::get())))
        .transpose()?;
    attached_fields(top, protocol.as_ref(), (harmonization, known), &mut fields)?;
    Ok(fields)
}

/// What [`carried_fields`] reads after the entries: the protocol, the
/// malware hashes and `raw` from `Attach`.
fn attached_fields(
    top: &(impl TopLevel + ?Sized),
    protocol: Option<&Protocol>,
    (harmonization, known): (&Harmonization, Known<'_>),
    fields: &mut impl FieldSink,
) -> Result<()> {
    if let Some(protocol) = protocol {
        protocol_fields(protocol, fields);
    }
    let attachments = object_list(top, "Attach")?;
    hash_fields(&attachments, fields);
    let original = attachments.iter().find(|attach| {
        attach_key(attach, "ContentEncoding").and_then(Value::as_str) == Some("base64")
            && attach_key(attach, "Type")
                .and_then(Value::as_array)
                .is_some_and(|types| types.iter().any(|t| t == ORIG_DATA))
    });
    if let Some(content) = original.and_then(|attach| attach_key(attach, "Content")) {
        let held = known.and_then(|fields| fields.get("raw"));
        let raw = harmonization.accept_known(MessageType::Event, "raw", content.clone(), held);
        if let Ok(Some(raw)) = raw {
            fields.set("raw", raw);
        }
    }
    Ok(())
}

/// Restores the events of a message the bridge wrote, from the carried
/// fields and `_intelmq`.
fn restore(
    top: &Map<String, Value>,
    carried: &Value,
    harmonization: &Harmonization,
) -> Result<Vec<Envelope>> {
    let bad = |path: &str, value: &Value, reason: &str| {
        Error::invalid(&format!("{CARRY_KEY}{path}"), value, reason)
    };
    let empty = Map::new();
    let common = match carried.get("payload") {
        Some(Value::Object(payload)) => payload,
        Some(other) => return Err(bad(".payload", other, "is not an object")),
        None => &empty,
    };
    let events = carried
        .get("events")
        .and_then(Value::as_array)
        .ok_or_else(|| bad(".events", carried, "has no list of events"))?;
    let sources = object_list(top, "Source")?;
    let targets = object_list(top, "Target")?;
    let mut envelopes = Vec::with_capacity(events.len());
    for (index, event) in events.iter().enumerate() {
        let path = format!(".events[{index}]");
        let source = carried_entry(event, "source", &sources, &path)?;
        let target = carried_entry(event, "target", &targets, &path)?;
        let mut fields: Map<String, Value> =
            carried_fields(top, source, target, harmonization, None)?;
        if let Some(absent) = event.get("absent") {
            for key in string_list(absent, &format!("{CARRY_KEY}{path}.absent"))? {
                fields.shift_remove(key);
            }
        }
        for (key, value) in common {
            fields.insert(key.clone(), value.clone());
        }
        match event.get("payload") {
            Some(Value::Object(payload)) => {
                for (key, value) in payload {
                    fields.insert(key.clone(), value.clone());
                }
            }
            Some(other) => return Err(bad(&format!("{path}.payload"), other, "is not an object")),
            None => {}
        }
        let meta = event
            .get("meta")
            .cloned()
            .ok_or_else(|| missing(&format!("{CARRY_KEY}{path}.meta")))?;
        let meta = Meta::from_value(meta)?;
        let payload = Event::from_fields(meta.kind, fields, harmonization)?;
        envelopes.push(Envelope { meta, payload });
    }
    Ok(envelopes)
}

/// The Source or Target entry (`key`) that `_intelmq` names for an event.
fn carried_entry<'m>(
    event: &Value,
    key: &str,
    list: &[&'m Map<String, Value>],
    path: &str,
) -> Result<Option<&'m Map<String, Value>>> {
    let Some(position) = event.get(key) else {
        return Ok(None);
    };
    position
        .as_u64()
        .and_then(|position| list.get(usize::try_from(position).ok()?).copied())
        .map(Some)
        .ok_or_else(|| {
            Error::invalid(
                &format!("{CARRY_KEY}{path}.{key}"),
                position,
                "is not an entry of the message",
            )
        })
}

/// One event's share of a side: the entry's position and, when the entry
/// has addresses, which of them.
type Unit = (usize, Option<usize>);

/// Decodes a message from another IDEA producer: map, split, link.
fn plain(
    object: &Map<String, Value>,
    id: &str,
    raw: Value,
    context: &DecodeContext,
) -> Result<Vec<Envelope>> {
    let harmonization = context.harmonization;
    let tables = Tables::get();
    let mut common = top_level_fields(object, harmonization)?;
    let mut sides = Vec::with_capacity(2);
    for (side, names) in tables.sides.iter().zip(&tables.side_fields) {
        let mut entries = Vec::new();
        for (index, entry) in object_list(object, &side.idea)?.into_iter().enumerate() {
            let path = format!("{}[{index}]", side.idea);
            entries.push(read_entry(entry, &path, names, harmonization, None)?);
        }
        sides.push(entries);
    }
    let [sources, targets] = sides.as_slice() else {
        return Err(Error::Config("IDEA mapping needs exactly two sides".into()));
    };
    let categories = object
        .get("Category")
        .map(|value| string_list(value, "Category"))
        .transpose()?
        .unwrap_or_default();
    let kind = tables.type_of(categories, |tag| {
        sources.iter().any(|entry| entry.types.contains(&tag))
    });
    common.insert("classification.type".to_owned(), kind.into());
    common.insert("raw".to_owned(), raw);

    let pairs = split(units(sources), units(targets));
    let count = pairs.len();
    let ids = Ids::with_id(&context.origin, Uuid::nil());
    let mut template = Meta::with_ids(MessageType::Event, NAME, ids);
    add_ids(&mut template, object, id)?;
    if count > 1 {
        template.add_link("split-from", &format!("idea:{id}"));
    }
    let mut envelopes = Vec::with_capacity(count);
    for (index, (source, target)) in pairs.into_iter().enumerate() {
        let mut fields = common.clone();
        side_fields([(source, sources), (target, targets)], &mut fields);
        let payload = Event::from_fields(MessageType::Event, fields, harmonization)?;
        let mut meta = template.clone();
        meta.uuid.id = match (count, Uuid::parse_str(id)) {
            (1, Ok(uuid)) => uuid,
            (1, Err(_)) => derived_id(&format!("idea:{id}")),
            _ => derived_id(&format!("idea:{id}#{index}")),
        };
        envelopes.push(Envelope { meta, payload });
    }
    if count > 1 {
        link_split_group(
            &mut envelopes,
            &derived_id(&format!("idea:{id}")).to_string(),
        );
    }
    Ok(envelopes)
}

/// The fields every event of a message shares: the message table, hashes,
/// `Description`, `Confidence`, a web `Ref`, and `extra.idea` with every
/// top-level key not mapped completely.
fn top_level_fields(
    object: &Map<String, Value>,
    harmonization: &Harmonization,
) -> Result<Map<String, Value>> {
    let tables = Tables::get();
    let mut common = Map::new();
    let mut extra = Map::new();
    message_fields(object, (harmonization, None), &mut common)?;
    hash_fields(&object_list(object, "Attach")?, &mut common);
    for (key, value) in object {
        match key.as_str() {
            key if STRUCTURAL_KEYS.contains(&key) => {}
            key if tables.message.iter().any(|pair| pair.idea == key) => {}
            "Description" => {
                match accept(
                    harmonization,
                    None,
                    key,
                    "event_description.text",
                    value.clone(),
                ) {
                    Ok(Some(text)) => {
                        common.insert("event_description.text".to_owned(), text);
                    }
                    _ => {
                        extra.insert(key.to_owned(), value.clone());
                    }
                }
            }
            "Confidence" => {
                let confidence = value
                    .as_f64()
                    .filter(|c| (0.0..=1.0).contains(c))
                    .ok_or_else(|| Error::invalid(key, value, "is not a number from 0 to 1"))?;
                // Rounded, so that 0.3 gives 30 and not 30.000000000000004.
                let accuracy = (confidence * 100.0 * 1e6).round() / 1e6;
                if let Some(accuracy) =
                    accept(harmonization, None, key, "feed.accuracy", accuracy.into())?
                {
                    common.insert("feed.accuracy".to_owned(), accuracy);
                }
            }
            "Ref" => {
                let refs = string_list(value, key)?;
                let field = "event_description.url";
                let url = refs
                    .iter()
                    .filter(|r| r.starts_with("http://") || r.starts_with("https://"))
                    .find_map(|r| accept(harmonization, None, key, field, Value::from(*r)).ok()?);
                let complete = refs.len() == 1 && url.is_some();
                if let Some(url) = url {
                    common.insert(field.to_owned(), url);
                }
                if !complete {
                    extra.insert(key.to_owned(), value.clone());
                }
            }
            _ => {
                extra.insert(key.clone(), value.clone());
            }
        }
    }
    if !extra.is_empty() {
        common.insert(EXTRA_TOP_KEY.to_owned(), Value::Object(extra));
    }
    Ok(common)
}

/// Every unit of a side: one per address of each entry, one for an entry
/// without addresses.
fn units(entries: &[Entry<'_>]) -> Vec<Unit> {
    let mut units = Vec::with_capacity(entries.len());
    for (index, entry) in entries.iter().enumerate() {
        match entry.addresses.len() {
            0 => units.push((index, None)),
            count => units.extend((0..count).map(|address| (index, Some(address)))),
        }
    }
    units
}

/// DESIGN.md's split: at most one unit on each side, one event; one side
/// several, one event per unit with the single other side repeated; both
/// sides several, sources-only events then targets-only events (never the
/// cartesian product).
fn split(sources: Vec<Unit>, targets: Vec<Unit>) -> Vec<(Option<Unit>, Option<Unit>)> {
    let only_source = sources.first().copied();
    let only_target = targets.first().copied();
    match (sources.len(), targets.len()) {
        (s, t) if s > 1 && t > 1 => sources
            .into_iter()
            .map(|unit| (Some(unit), None))
            .chain(targets.into_iter().map(|unit| (None, Some(unit))))
            .collect(),
        (_, t) if t > 1 => targets
            .into_iter()
            .map(|unit| (only_source, Some(unit)))
            .collect(),
        (s, _) if s > 0 => sources
            .into_iter()
            .map(|unit| (Some(unit), only_target))
            .collect(),
        _ => vec![(None, only_target)],
    }
}

/// An event's unit of a side, with the side's entries.
type Chosen<'a, 'm> = (Option<Unit>, &'a [Entry<'m>]);

/// The entry and address a unit stands for.
fn unit_entry<'a, 'm>(
    (unit, entries): &Chosen<'a, 'm>,
) -> Option<(&'a Entry<'m>, Option<&'a Address>)> {
    let (entry, address) = (*unit)?;
    let entry = entries.get(entry)?;
    Some((entry, address.and_then(|a| entry.addresses.get(a))))
}

/// The fields of an event's Source and Target units: addresses, entry
/// fields, the protocol (the Source's, else the Target's), and the keys not
/// mapped completely in `extra.idea_source` / `extra.idea_target`.
fn side_fields(chosen: [Chosen<'_, '_>; 2], fields: &mut Map<String, Value>) {
    let protocol = chosen
        .iter()
        .filter_map(unit_entry)
        .find_map(|(entry, _)| entry.protocol.as_ref().map(|(p, _)| p));
    for (side, extra_key) in chosen.iter().zip(EXTRA_SIDE_KEYS) {
        let Some((entry, address)) = unit_entry(side) else {
            continue;
        };
        entry_fields(entry, address, fields);
        let mut leftover = entry.leftover.clone();
        if let Some((own, value)) = &entry.protocol {
            if !own.exact || Some(own) != protocol {
                leftover.insert("Proto".to_owned(), (*value).clone());
            }
        }
        if !leftover.is_empty() {
            fields.insert(extra_key.to_owned(), Value::Object(leftover));
        }
    }
    if let Some(protocol) = protocol {
        protocol_fields(protocol, fields);
    }
}

/// The message's ids in meta: `idea:<ID>` and `AltNames` as alternates,
/// `RelID` and `CorrelID` as related `idea:` ids.
fn add_ids(meta: &mut Meta, object: &Map<String, Value>, id: &str) -> Result<()> {
    meta.uuid.add_alternate(format!("idea:{id}"));
    if let Some(names) = object.get("AltNames") {
        for name in string_list(names, "AltNames")? {
            meta.uuid.add_alternate(name);
        }
    }
    for key in ["RelID", "CorrelID"] {
        let Some(ids) = object.get(key) else { continue };
        for related in string_list(ids, key)? {
            if !is_idea_id(related) {
                return Err(Error::invalid(
                    key,
                    &Value::from(related),
                    "is not an IDEA id",
                ));
            }
            meta.uuid.add_related(format!("idea:{related}"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addresses(item: &str, key: &str) -> Result<Vec<String>> {
        Ok(parse_addresses(item, key, "Source[0].IP4[0]")?
            .into_iter()
            .map(|address| match address {
                Address::Ip(ip) => ip.to_string(),
                Address::Network(network) => network.to_string(),
            })
            .collect())
    }

    #[test]
    fn addresses_ranges_and_networks() {
        assert_eq!(addresses("192.0.2.1", "IP4").unwrap(), ["192.0.2.1"]);
        assert_eq!(addresses("192.0.2.1/32", "IP4").unwrap(), ["192.0.2.1"]);
        assert_eq!(addresses("192.0.2.77/24", "IP4").unwrap(), ["192.0.2.0/24"]);
        assert_eq!(
            addresses("192.0.2.0-192.0.2.255", "IP4").unwrap(),
            ["192.0.2.0/24"]
        );
        assert_eq!(addresses("2001:DB8::1", "IP").unwrap(), ["2001:db8::1"]);
        let error = addresses("192.0.2.1", "IP6").unwrap_err().to_string();
        assert_eq!(
            error,
            r#"Source[0].IP4[0]: "192.0.2.1" is not an IPv6 address, CIDR or range"#
        );
        assert!(addresses("192.0.2.9-192.0.2.1", "IP4")
            .unwrap_err()
            .to_string()
            .ends_with("is a reversed range"));
    }

    #[test]
    fn addresses_are_written_as_to_string_writes_them() {
        for text in [
            "0.0.0.0",
            "1.2.3.4",
            "10.100.9.255",
            "203.197.249.201",
            "99.199.200.109",
            "::1",
            "2001:db8::1",
        ] {
            let ip: IpAddr = text.parse().unwrap();
            assert_eq!(address_text(ip), ip.to_string());
        }
        for octet in 0..=u8::MAX {
            let ip = IpAddr::from([octet, 0, octet, 255]);
            assert_eq!(address_text(ip), ip.to_string());
        }
    }

    #[test]
    fn protocols_read_as_transport_then_application() {
        let tables = Tables::get();
        let read = read_protocol(&["tcp", "ssh"], tables);
        assert_eq!(read.transport, Some(json_str("tcp")));
        assert_eq!(read.application, Some(json_str("ssh")));
        assert!(read.exact);
        let read = read_protocol(&["smtp"], tables);
        assert_eq!(
            (read.transport, read.application),
            (None, Some(json_str("smtp")))
        );
        assert!(!read_protocol(&["tcp", "http", "www"], tables).exact);
        assert!(!read_protocol(&["TCP"], tables).exact);
    }

    fn json_str(text: &str) -> Value {
        Value::String(text.to_owned())
    }

    #[test]
    fn splits_never_make_the_cartesian_product() {
        let side = |n: usize| (0..n).map(|i| (i, None)).collect::<Vec<Unit>>();
        assert_eq!(
            split(side(1), side(1)),
            [(Some((0, None)), Some((0, None)))]
        );
        assert_eq!(split(side(0), side(0)), [(None, None)]);
        assert_eq!(split(side(0), side(2)).len(), 2);
        assert_eq!(split(side(3), side(1)).len(), 3);
        let both = split(side(2), side(3));
        assert_eq!(both.len(), 5);
        assert!(both[..2].iter().all(|(s, t)| s.is_some() && t.is_none()));
        assert!(both[2..].iter().all(|(s, t)| s.is_none() && t.is_some()));
    }

    #[test]
    fn event_tags() {
        assert!(is_event_tag("Recon.Scanning"));
        assert!(is_event_tag("Other"));
        assert!(!is_event_tag("Recon Scanning"));
        assert!(!is_event_tag("A.B.C"));
        assert!(!is_event_tag("A."));
    }
}
