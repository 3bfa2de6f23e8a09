//! Envelopes → IDEA, following IntelMQ's IDEA expert (IntelMQ 3.5) where it
//! writes valid IDEA, and merging a whole split group into one message.
//!
//! Each message carries `_intelmq`: for every event its meta, the payload
//! fields that the IDEA keys do not give back exactly, and which Source and
//! Target entry are its own. What the IDEA keys give back is decided by
//! running the decoder's own reading ([`carried_fields`]) on the message
//! just built, so the round trip is exact by construction; only the Source
//! and Target fields copied one to one from a lone event are known to come
//! back without reading the entries ([`copied_side_fields`]).

use std::borrow::Cow;
use std::net::IpAddr;

use ipnet::IpNet;
use serde_json::{Map, Value};

use super::decode::{carried_fields, carried_fields_beside_entries, TopLevel, ORIG_DATA};
use super::mapping::Tables;
use super::{
    escape_uri, is_idea_id, node_name, scheme_uri, CARRY_KEY, EXTRA_SIDE_KEYS, EXTRA_TOP_KEY,
};
use crate::envelope::{derived_id, uuid_text, Envelope, Meta};
use crate::error::{Error, Result};
use crate::event::{same_name, Fields};
use crate::formats::{json, EncodeContext};
use crate::harmonization::{Harmonization, MessageType};

/// Top-level keys that `extra.idea` may not override: ids and structure the
/// encoder decides.
const RESERVED_KEYS: [&str; 10] = [
    "Format", "ID", "AltNames", "AggrID", "CorrelID", "RelID", "Source", "Target", "Node",
    CARRY_KEY,
];
/// The bridge's software name in its `Node` entry.
const SOFTWARE: &str = "intelmq-bridge";
/// The scheme of the IntelMQ event hash in `AltNames`.
const EVENT_HASH_SCHEME: &str = "intelmq-hash";

/// The IDEA pieces of one event, before a group is merged.
struct Parts<'a> {
    top: Keys<'a>,
    attach: Vec<Value>,
    sides: [Option<Keys<'a>>; 2],
    nodes: Vec<Value>,
}

/// One IDEA message before it becomes a [`Value`] ([`encode`]) or text
/// ([`encode_lines`]): both come from here, so they hold the same keys in
/// the same order.
struct Message<'a> {
    /// Every key but `_intelmq`.
    idea: IdeaKeys<'a>,
    /// `_intelmq`, the last key.
    carry: Carry<'a>,
}

/// A message's keys but `_intelmq`, in the message's order, each once:
/// the keys `extra.idea` may set are never the ones the encoder sets
/// itself ([`RESERVED_KEYS`]), so no key comes twice.
struct IdeaKeys<'a> {
    /// `Format`, the ids and the keys of [`generate`]'s `top`.
    before_entries: Keys<'a>,
    /// `Source` and `Target` with their entries, left out when empty.
    entries: [(&'a str, Vec<Keys<'a>>); 2],
    /// `Attach` and `Node`.
    after_entries: Keys<'a>,
}

/// The keys beside the entries, which are read on their own.
impl TopLevel for IdeaKeys<'_> {
    fn key(&self, key: &str) -> Option<&Value> {
        let before = self.before_entries.as_slice().key(key);
        before.or_else(|| self.after_entries.as_slice().key(key))
    }
}

impl Message<'_> {
    /// The message as a [`Value`].
    fn into_value(self) -> Value {
        let IdeaKeys {
            before_entries,
            entries,
            after_entries,
        } = self.idea;
        let object = |keys: Keys| {
            Value::Object(
                keys.into_iter()
                    .map(|(k, v)| (k.to_owned(), v.into_owned()))
                    .collect(),
            )
        };
        let mut idea = Map::with_capacity(before_entries.len() + after_entries.len() + 3);
        for (key, value) in before_entries {
            idea.insert(key.to_owned(), value.into_owned());
        }
        for (side, list) in entries {
            if !list.is_empty() {
                idea.insert(side.to_owned(), list.into_iter().map(object).collect());
            }
        }
        for (key, value) in after_entries {
            idea.insert(key.to_owned(), value.into_owned());
        }
        idea.insert(CARRY_KEY.into(), self.carry.into_value());
        Value::Object(idea)
    }

    /// Appends the message's JSON text: the bytes [`json::write_value`]
    /// writes of [`Message::into_value`], without building it.
    fn write(&self, out: &mut Vec<u8>) {
        let idea = &self.idea;
        out.push(b'{');
        for (key, value) in &idea.before_entries {
            json::write_entry(out, key, value);
            out.push(b',');
        }
        for (side, list) in &idea.entries {
            if list.is_empty() {
                continue;
            }
            json::write_str(out, side);
            out.push(b':');
            json::write_items(out, list, |out, entry| {
                json::write_object(out, entry.iter().map(|(key, value)| (*key, &**value)));
            });
            out.push(b',');
        }
        for (key, value) in &idea.after_entries {
            json::write_entry(out, key, value);
            out.push(b',');
        }
        json::write_str(out, CARRY_KEY);
        out.push(b':');
        self.carry.write(out);
        out.push(b'}');
    }
}

/// `_intelmq` before it becomes a [`Value`] or text, its fields borrowed
/// from the events rather than copied.
struct Carry<'a> {
    /// The fields every event of a group carries with the same value.
    common: Vec<(&'a str, &'a Value)>,
    /// Each event's share, in the message's order.
    events: Vec<Carried<'a>>,
}

/// One event's share of `_intelmq`.
struct Carried<'a> {
    /// The event's meta.
    meta: &'a Meta,
    /// The fields the IDEA keys do not give back exactly.
    payload: Vec<(&'a str, &'a Value)>,
    /// The fields the IDEA keys give that the event lacks.
    absent: Vec<&'static str>,
    /// The positions of its Source and Target entries.
    source: Option<usize>,
    target: Option<usize>,
}

impl Carry<'_> {
    /// `_intelmq` as a [`Value`].
    fn into_value(self) -> Value {
        let object = |pairs: Vec<(&str, &Value)>| {
            let map = pairs.into_iter().map(|(k, v)| (k.to_owned(), v.clone()));
            Value::Object(map.collect())
        };
        let mut carry = Map::with_capacity(2);
        if !self.common.is_empty() {
            carry.insert("payload".into(), object(self.common));
        }
        let list: Vec<Value> = self
            .events
            .into_iter()
            .map(|event| {
                let mut entry = Map::with_capacity(5);
                entry.insert("meta".into(), event.meta.to_value());
                if !event.payload.is_empty() {
                    entry.insert("payload".into(), object(event.payload));
                }
                if !event.absent.is_empty() {
                    entry.insert("absent".into(), event.absent.into());
                }
                for (key, at) in [("source", event.source), ("target", event.target)] {
                    if let Some(at) = at {
                        entry.insert(key.into(), at.into());
                    }
                }
                Value::Object(entry)
            })
            .collect();
        carry.insert("events".into(), list.into());
        Value::Object(carry)
    }

    /// Appends `_intelmq`'s JSON text: the bytes [`json::write_value`]
    /// writes of [`Carry::into_value`], without building it.
    fn write(&self, out: &mut Vec<u8>) {
        out.push(b'{');
        if !self.common.is_empty() {
            json::write_str(out, "payload");
            out.push(b':');
            json::write_fields(out, self.common.iter().copied());
            out.push(b',');
        }
        json::write_str(out, "events");
        out.push(b':');
        json::write_items(out, &self.events, |out, event| {
            out.push(b'{');
            json::write_plain_key(out, "meta");
            event.meta.write_json(out);
            if !event.payload.is_empty() {
                out.push(b',');
                json::write_str(out, "payload");
                out.push(b':');
                json::write_fields(out, event.payload.iter().copied());
            }
            if !event.absent.is_empty() {
                out.push(b',');
                json::write_str(out, "absent");
                out.push(b':');
                json::write_items(out, &event.absent, |out, key| json::write_str(out, key));
            }
            for (key, at) in [("source", event.source), ("target", event.target)] {
                if let Some(at) = at {
                    out.push(b',');
                    json::write_entry(out, key, &at.into());
                }
            }
            out.push(b'}');
        });
        out.push(b'}');
    }
}

/// The messages of `events`: a complete split group becomes one message,
/// anything else one message per envelope.
fn messages<'a>(events: &'a [Envelope], context: &'a EncodeContext) -> Result<Vec<Message<'a>>> {
    if let Some((group, members)) = complete_group(events) {
        return Ok(vec![message(&members, Some(group), context)?]);
    }
    events
        .iter()
        .map(|event| message(&[event], None, context))
        .collect()
}

/// Encodes envelopes into IDEA messages ([`messages`]).
pub fn encode(events: &[Envelope], context: &EncodeContext) -> Result<Vec<Value>> {
    let messages = messages(events, context)?;
    Ok(messages.into_iter().map(Message::into_value).collect())
}

/// Writes the IDEA messages of envelopes ([`messages`]) as JSON Lines onto
/// `out`, straight from their pieces; returns how many. Nothing is written
/// when one fails, as with [`encode`].
pub fn encode_lines(
    events: &[Envelope],
    context: &EncodeContext,
    out: &mut Vec<u8>,
) -> Result<usize> {
    let messages = messages(events, context)?;
    for message in &messages {
        message.write(out);
        out.push(b'\n');
    }
    Ok(messages.len())
}

/// The group id and the members in split order, when `events` are exactly
/// all parts of one split group.
fn complete_group(events: &[Envelope]) -> Option<(&str, Vec<&Envelope>)> {
    let first = events.first()?;
    let group = first.meta.uuid.groups().first()?;
    if events.len() < 2 {
        return None;
    }
    let mut members: Vec<Option<&Envelope>> = vec![None; events.len()];
    for event in events {
        let split = event.meta.split()?;
        let slot = members.get_mut(usize::try_from(split.index).ok()?)?;
        let same_group = event.meta.uuid.groups().first() == Some(group);
        if split.count != events.len() as u64 || !same_group || slot.is_some() {
            return None;
        }
        *slot = Some(event);
    }
    let members = members.into_iter().collect::<Option<Vec<_>>>()?;
    Some((group.as_str(), members))
}

/// One IDEA message for one event, or for a whole group.
fn message<'a>(
    events: &[&'a Envelope],
    group: Option<&str>,
    context: &'a EncodeContext,
) -> Result<Message<'a>> {
    let tables = Tables::get();
    let parts = events
        .iter()
        .map(|event| generate(event, tables))
        .collect::<Result<Vec<_>>>()?;
    // The parts are owned, so their pieces move into the message; the first
    // part gives the top-level keys and the nodes.
    let mut first: Option<(Keys, Vec<Value>)> = None;
    let mut sides: [Vec<Keys>; 2] = [Vec::new(), Vec::new()];
    let mut positions = Vec::with_capacity(parts.len());
    let mut attach: Vec<Value> = Vec::new();
    for part in parts {
        let mut position = [None, None];
        for ((entry, list), slot) in part.sides.into_iter().zip(&mut sides).zip(&mut position) {
            if let Some(entry) = entry {
                *slot = Some(merge_entry(list, entry));
            }
        }
        positions.push(position);
        for item in part.attach {
            if !attach.contains(&item) {
                attach.push(item);
            }
        }
        first.get_or_insert((part.top, part.nodes));
    }
    let Some((top, earlier_nodes)) = first else {
        return Err(Error::shape("nothing to encode"));
    };

    // Sized for every key a message can get, so the list never grows.
    let mut before_entries = Vec::with_capacity(top.len() + RESERVED_KEYS.len());
    before_entries.push(("Format", Cow::Owned("IDEA0".into())));
    ids(&mut before_entries, events, group);
    before_entries.extend(top);
    let [source, target] = sides;
    let [source_key, target_key] =
        [0, 1].map(|side| tables.sides.get(side).map_or("", |side| side.idea.as_str()));
    let mut after_entries = Vec::with_capacity(2);
    if !attach.is_empty() {
        after_entries.push(("Attach", Cow::Owned(attach.into())));
    }
    after_entries.push(("Node", nodes(context, &earlier_nodes)));
    let idea = IdeaKeys {
        before_entries,
        entries: [(source_key, source), (target_key, target)],
        after_entries,
    };
    let carry = carry(&idea, events, &positions, tables)?;
    Ok(Message { idea, carry })
}

/// `_intelmq` for a message built from `events`: each event's meta, the
/// fields the message's IDEA keys do not give back exactly (as the decoder
/// reads them), the fields they give that the event lacks, and the
/// positions of its Source and Target entries.
fn carry<'a>(
    idea: &IdeaKeys,
    events: &[&'a Envelope],
    positions: &[[Option<usize>; 2]],
    tables: &Tables,
) -> Result<Carry<'a>> {
    let harmonization = Harmonization::intelmq();
    // The message's own Source and Target entries, read where they lie.
    let entry = |side: usize, at: Option<usize>| {
        let (_, list) = idea.entries.get(side)?;
        list.get(at?).map(Vec::as_slice)
    };
    let mut carried = Vec::with_capacity(events.len());
    for (event, position) in events.iter().zip(positions) {
        let [source, target] = *position;
        let fields = event.payload.fields();
        // A Report's fields were checked against the Report table.
        let known = (event.meta.kind == MessageType::Event).then_some(fields);
        let entries = [entry(0, source), entry(1, target)];
        let copied = match known {
            Some(fields) if events.len() == 1 => copied_side_fields(fields, entries, tables),
            _ => None,
        };
        let (recovered, copied) = match copied {
            Some(copied) => {
                let recovered = carried_fields_beside_entries(idea, entries, harmonization, known)?;
                (recovered, copied)
            }
            None => {
                let [source, target] = entries;
                let recovered = carried_fields(idea, source, target, harmonization, known)?;
                (recovered, Vec::new())
            }
        };
        // `recovered` holds a handful of fields: comparing their names
        // costs less than hashing each of the event's to look it up.
        let given_back = |key: &str| {
            let found = recovered.iter().find(|(name, _)| same_name(name, key));
            found.map(|(_, value)| value)
        };
        // Sized for every field, so the list never grows while filling.
        let mut payload = Vec::with_capacity(fields.len());
        payload.extend(
            fields
                .iter()
                .zip(copied.into_iter().chain(std::iter::repeat(false)))
                .filter(|&((key, value), copied)| !copied && given_back(key) != Some(value))
                .map(|(field, _)| field),
        );
        let absent = recovered
            .iter()
            .map(|(key, _)| key)
            .filter(|key| !fields.contains_key(key))
            .copied()
            .collect();
        carried.push(Carried {
            meta: &event.meta,
            payload,
            absent,
            source,
            target,
        });
    }
    let common = common_fields(&mut carried);
    Ok(Carry {
        common,
        events: carried,
    })
}

/// The Source and Target fields of a lone event that [`sides`] copied one
/// to one into the message's `entries` (its address from `*.ip`, the side
/// table, its local address), when nothing else shapes those entries: no
/// `extra.idea*` keys, no address from `*.network`. The decoder gives these
/// back exactly as the event holds them, so they need not be read back
/// ([`carried_fields_beside_entries`]); None when the entries must be read.
/// Says for each of the event's fields, in their order, whether it is one,
/// so that `carry` need not look names up.
fn copied_side_fields(
    fields: &Fields,
    entries: [Option<&[Key]>; 2],
    tables: &Tables,
) -> Option<Vec<bool>> {
    // One pass over the event's fields, matching names by their side
    // prefix and suffix: cheaper than hashing every name the tables have.
    let mut copied = Vec::with_capacity(fields.len());
    let mut address = [Address::None; 2];
    for (key, value) in fields {
        if key.starts_with(EXTRA_TOP_KEY)
            && (key == EXTRA_TOP_KEY || EXTRA_SIDE_KEYS.contains(&key))
        {
            return None;
        }
        let mut was_copied = false;
        for ((side, entry), address) in tables.sides.iter().zip(entries).zip(&mut address) {
            let suffix = side_suffix(key, &side.intelmq);
            let (Some(suffix), Some(_)) = (suffix, entry) else {
                continue;
            };
            match suffix {
                "ip" if value.is_string() => {
                    was_copied = true;
                    *address = Address::Ip;
                }
                "ip" => return None,
                "network" if *address == Address::None => *address = Address::Network,
                "local_ip" if value.is_string() => was_copied = true,
                _ => was_copied |= tables.side.iter().any(|pair| pair.intelmq == suffix),
            }
        }
        copied.push(was_copied);
    }
    // An address from `*.network` is read back in its own way.
    (!address.contains(&Address::Network)).then_some(copied)
}

/// Where a side's address comes from, as far as [`copied_side_fields`] has
/// seen.
#[derive(Clone, Copy, PartialEq)]
enum Address {
    None,
    Ip,
    Network,
}

/// Takes the fields every event of a group carries with the same value out
/// of the events, so that a message's `raw` and `extra.idea` appear once.
fn common_fields<'a>(carried: &mut [Carried<'a>]) -> Vec<(&'a str, &'a Value)> {
    let mut common = Vec::new();
    let Some((first, rest)) = carried.split_first() else {
        return common;
    };
    if rest.is_empty() {
        return common;
    }
    // An event's fields are each named once, so a name found is the field.
    let value_of = |payload: &[(&str, &'a Value)], key: &str| {
        let found = payload.iter().find(|(name, _)| *name == key);
        found.map(|(_, value)| *value)
    };
    for &(key, value) in &first.payload {
        if rest
            .iter()
            .all(|event| value_of(&event.payload, key) == Some(value))
        {
            common.push((key, value));
        }
    }
    for event in carried.iter_mut() {
        event
            .payload
            .retain(|(key, _)| !common.iter().any(|(name, _)| name == key));
    }
    common
}

/// `ID` and the id lists. One event: its id, its groups as `CorrelID` (the
/// message it was split from). A group: the group id, its members as
/// `AggrID`. Alternates become `AltNames`, related ids `RelID`.
fn ids(keys: &mut Keys<'_>, events: &[&Envelope], group: Option<&str>) {
    let mut alternates: Vec<Value> = Vec::new();
    let mut related: Vec<Value> = Vec::new();
    for event in events {
        let hash = event
            .payload
            .get_str("event_hash")
            .map(|hash| [EVENT_HASH_SCHEME, ":", hash].concat());
        for name in event.meta.uuid.alternates().iter().cloned().chain(hash) {
            push_unique(&mut alternates, name);
        }
        for id in event.meta.uuid.related_ids() {
            let bare = id.strip_prefix("idea:").unwrap_or(id);
            if is_idea_id(bare) {
                push_unique(&mut related, bare.to_owned());
            }
        }
    }
    let (id, linked_key, linked): (String, &str, Vec<Value>) = match (group, events) {
        (Some(group), _) => {
            let id = if is_idea_id(group) {
                group.to_owned()
            } else {
                uuid_text(derived_id(group))
            };
            let members = events
                .iter()
                .map(|event| uuid_text(event.meta.uuid.id).into())
                .collect();
            (id, "AggrID", members)
        }
        (None, [event, ..]) => {
            let groups = event
                .meta
                .uuid
                .groups()
                .iter()
                .filter(|id| is_idea_id(id))
                .map(|id| id.as_str().into())
                .collect();
            (uuid_text(event.meta.uuid.id), "CorrelID", groups)
        }
        (None, []) => (String::new(), "CorrelID", Vec::new()),
    };
    keys.push(("ID", Cow::Owned(id.into())));
    for (key, list) in [
        ("AltNames", alternates),
        (linked_key, linked),
        ("RelID", related),
    ] {
        if !list.is_empty() {
            keys.push((key, Cow::Owned(list.into())));
        }
    }
}

fn push_unique(list: &mut Vec<Value>, item: String) {
    if !list
        .iter()
        .any(|existing| existing.as_str() == Some(item.as_str()))
    {
        list.push(item.into());
    }
}

/// `Node`: the bridge first, as Warden requires of a sender, then the
/// nodes the event had passed before. The bridge alone, the usual `Node`,
/// is made once per context and borrowed.
fn nodes<'c>(context: &'c EncodeContext, earlier: &[Value]) -> Cow<'c, Value> {
    let alone = context.idea_node(bridge_node);
    let Some(bridge) = alone.get(0) else {
        return alone;
    };
    let name = bridge.get("Name").and_then(Value::as_str);
    let mut others = earlier
        .iter()
        .filter(|node| node.get("Name").and_then(Value::as_str) != name)
        .peekable();
    if others.peek().is_none() {
        return alone;
    }
    let mut list = vec![bridge.clone()];
    list.extend(others.cloned());
    Cow::Owned(list.into())
}

/// The `Node` list of the bridge alone, named after `origin`.
fn bridge_node(origin: &str) -> Value {
    // A map sized for its three keys, where `json!` grows one key by key.
    let mut bridge = Map::with_capacity(3);
    bridge.insert("Name".into(), node_name(origin).into());
    bridge.insert("Type".into(), list_of("Relay"));
    bridge.insert("SW".into(), list_of(SOFTWARE));
    vec![Value::Object(bridge)].into()
}

/// An entry's keys and values other than its addresses, compared where
/// they lie.
fn without_addresses<'e, 'a>(entry: &'e Keys<'a>) -> impl Iterator<Item = &'e Key<'a>> {
    entry
        .iter()
        .filter(|(key, _)| !matches!(*key, "IP4" | "IP6"))
}

/// Puts `entry` into `list`: an entry that differs from one already there
/// only by its addresses joins it (so a split entry becomes one again).
/// Returns its position.
fn merge_entry<'a>(list: &mut Vec<Keys<'a>>, entry: Keys<'a>) -> usize {
    let found = list
        .iter()
        .position(|existing| without_addresses(existing).eq(without_addresses(&entry)));
    let Some(at) = found else {
        list.push(entry);
        return list.len() - 1;
    };
    if let Some(existing) = list.get_mut(at) {
        for key in ["IP4", "IP6"] {
            let Some(Value::Array(new)) = entry.as_slice().key(key) else {
                continue;
            };
            // As a map's entry: where the key is, or added at the end.
            let slot = match existing.iter().position(|(name, _)| *name == key) {
                Some(slot) => slot,
                None => {
                    existing.push((key, Cow::Owned(Value::Array(Vec::new()))));
                    existing.len() - 1
                }
            };
            let addresses = existing.get_mut(slot).map(|(_, value)| value.to_mut());
            if let Some(Value::Array(addresses)) = addresses {
                for address in new {
                    if !addresses.contains(address) {
                        addresses.push(address.clone());
                    }
                }
            }
        }
    }
    at
}

/// The IDEA pieces of one event, as IntelMQ's IDEA expert maps them.
fn generate<'a>(event: &'a Envelope, tables: &'static Tables) -> Result<Parts<'a>> {
    let fields = event.payload.fields();
    let text = |key: &str| fields.get(key).and_then(Value::as_str);
    let kind = text("classification.type");
    // Sized for the table and the five computed keys, so it rarely grows.
    let mut top = Keys::with_capacity(tables.message.len() + 5);
    for pair in &tables.message {
        if let Some(value) = fields.get(&pair.intelmq) {
            set_key(&mut top, &pair.idea, Cow::Borrowed(value));
        }
    }
    if !top.iter().any(|(key, _)| *key == "DetectTime") {
        set_key(&mut top, "DetectTime", detect_time(event)?);
    }
    if let Some(category) = tables.category_of(kind) {
        set_key(&mut top, "Category", Cow::Owned(list_of(category)));
    }
    let what = text("event_description.text")
        .or_else(|| text("comment"))
        .or(kind)
        .unwrap_or("undetermined");
    let description = match text("feed.name") {
        Some(feed) => [feed, ": ", what].concat(),
        None => what.to_owned(),
    };
    set_key(&mut top, "Description", Cow::Owned(description.into()));
    if let Some(accuracy) = fields.get("feed.accuracy").and_then(Value::as_f64) {
        set_key(
            &mut top,
            "Confidence",
            Cow::Owned((accuracy / 100.0).clamp(0.0, 1.0).into()),
        );
    }
    let refs: Vec<Value> = tables
        .refs
        .iter()
        .filter_map(|rule| {
            let value = field_text(fields.get(&rule.intelmq)?)?;
            Some(match &rule.scheme {
                Some(scheme) => scheme_uri(scheme, &value),
                None => escape_uri(&value, true),
            })
        })
        .map(Value::String)
        .collect();
    if !refs.is_empty() {
        set_key(&mut top, "Ref", Cow::Owned(refs.into()));
    }
    let mut attach = attachments(fields, tables);
    let mut nodes = Vec::new();
    if let Some(Value::Object(extra)) = fields.get(EXTRA_TOP_KEY) {
        for (key, value) in extra {
            match key.as_str() {
                "Attach" => attach = value.as_array().cloned().unwrap_or_default(),
                "Node" => nodes = value.as_array().cloned().unwrap_or_default(),
                key if RESERVED_KEYS.contains(&key) => {}
                _ => {
                    set_key(&mut top, key, Cow::Borrowed(value));
                }
            }
        }
    }
    Ok(Parts {
        top,
        attach,
        sides: sides(fields, kind, tables),
        nodes,
    })
}

/// An IDEA object's keys in their order, each once: a handful, so a list
/// searched by name costs less than a map that hashes each key.
type Keys<'a> = Vec<Key<'a>>;

/// One key of an IDEA object and its value, borrowed from the event when
/// it is the event's own.
type Key<'a> = (&'a str, Cow<'a, Value>);

/// Sets `key` in `keys` as a map insert does: in place when it is there
/// already, at the end otherwise.
fn set_key<'a>(keys: &mut Keys<'a>, key: &'a str, value: Cow<'a, Value>) {
    match keys.iter_mut().find(|(name, _)| *name == key) {
        Some((_, slot)) => *slot = value,
        None => keys.push((key, value)),
    }
}

/// `DetectTime` (required) for an event without `time.observation`:
/// `time.source`, else the creation time a time-ordered id (UUIDv7) holds.
fn detect_time(event: &Envelope) -> Result<Cow<'_, Value>> {
    if let Some(time) = event.payload.get("time.source") {
        return Ok(Cow::Borrowed(time));
    }
    event
        .meta
        .uuid
        .created_at()
        .map(|time| Cow::Owned(time.format("%Y-%m-%dT%H:%M:%S+00:00").to_string().into()))
        .ok_or_else(|| Error::Missing {
            field: "time.observation".into(),
        })
}

/// The text of a field for `Ref` (`rtir_id` is a number), borrowed when
/// it is a string.
fn field_text(value: &Value) -> Option<Cow<'_, str>> {
    match value {
        Value::String(text) => Some(Cow::Borrowed(text)),
        Value::Number(number) => Some(Cow::Owned(number.to_string())),
        _ => None,
    }
}

/// `Attach`: the malware hashes and name, and `raw` as the original data.
fn attachments(fields: &Fields, tables: &Tables) -> Vec<Value> {
    let text = |key: &str| fields.get(key).and_then(Value::as_str);
    let mut attach = Vec::new();
    let hashes: Vec<Value> = tables
        .hashes
        .iter()
        .filter_map(|pair| Some(scheme_uri(&pair.idea, text(&pair.intelmq)?)))
        .map(Value::String)
        .collect();
    let malware = text("malware.name").map(|name| {
        let mut reference = scheme_uri("malware", name);
        if let Some(version) = text("malware.version") {
            reference.push('-');
            reference.push_str(&escape_uri(version, false));
        }
        reference
    });
    // Each item's map is sized for its keys, so it never grows.
    if !hashes.is_empty() || malware.is_some() {
        let mut item = Map::with_capacity(2);
        if !hashes.is_empty() {
            item.insert("Hash".into(), hashes.into());
        }
        if let Some(reference) = malware {
            item.insert("Ref".into(), list_of(reference));
        }
        attach.push(Value::Object(item));
    }
    if let Some(raw) = text("raw") {
        let mut item = Map::with_capacity(4);
        item.insert("Type".into(), list_of(ORIG_DATA));
        item.insert("ContentEncoding".into(), "base64".into());
        item.insert("Content".into(), raw.into());
        if let Some(url) = text("feed.url") {
            item.insert("Ref".into(), list_of(escape_uri(url, true)));
        }
        attach.push(Value::Object(item));
    }
    attach
}

/// `Source` and `Target` entries of one event (none when empty).
fn sides<'a>(
    fields: &'a Fields,
    kind: Option<&str>,
    tables: &'static Tables,
) -> [Option<Keys<'a>>; 2] {
    // Sized for the side table and the other keys `sides` writes.
    let capacity = tables.side.len() + 5;
    let mut entries: [Keys; 2] = [Vec::with_capacity(capacity), Vec::with_capacity(capacity)];
    let mut has_content = [false, false];
    let found = side_values(fields, tables);
    let status = fields.get(&tables.side_note);
    let extras = EXTRA_SIDE_KEYS.map(|key| fields.get(key));
    // Each key below is set once, so it is added at the end.
    for (index, (((values, entry), content), extra)) in found
        .iter()
        .zip(entries.iter_mut())
        .zip(has_content.iter_mut())
        .zip(&extras)
        .enumerate()
    {
        let mut types = Vec::new();
        if index == 0 {
            types.extend(kind.and_then(|kind| tables.source_type_of(kind)));
        }
        if values.tor_node == Some(&Value::Bool(true)) {
            types.push(tables.tor_node_type());
        }
        if !types.is_empty() {
            entry.push(("Type", Cow::Owned(types.into())));
        }
        let address = values
            .ip
            .and_then(Value::as_str)
            .map(str::to_owned)
            .or_else(|| {
                let network: IpNet = values.network?.as_str()?.parse().ok()?;
                Some(if network.prefix_len() == network.max_prefix_len() {
                    network.addr().to_string()
                } else {
                    network.to_string()
                })
            });
        if let Some(address) = address {
            let key = address_key(&address, "IP4", "IP6");
            entry.push((key, Cow::Owned(list_of(address))));
        }
        for (pair, value) in tables.side.iter().zip(&values.pairs) {
            if let Some(value) = value {
                entry.push((pair.idea.as_str(), Cow::Owned(list_of((*value).clone()))));
            }
        }
        if let Some(local) = values.local_ip.and_then(Value::as_str) {
            let key = address_key(local, "LocalIP4", "LocalIP6");
            entry.push((key, Cow::Owned(list_of(local))));
        }
        let beside_type = |entry: &Keys| entry.iter().any(|(key, _)| *key != "Type");
        if let Some(status) = status {
            if beside_type(entry) {
                entry.push(("Note", Cow::Borrowed(status)));
            }
        }
        *content = beside_type(entry) || extra.is_some();
    }
    let protocol: Vec<Value> = ["protocol.transport", "protocol.application"]
        .iter()
        .filter_map(|key| fields.get(key).cloned())
        .collect();
    let mut result: [Option<Keys>; 2] = [None, None];
    for (((mut entry, content), extra), slot) in entries
        .into_iter()
        .zip(has_content)
        .zip(extras)
        .zip(result.iter_mut())
    {
        // A side with nothing but the Type the classification implies says
        // nothing about the event, so it is left out (the expert keeps it).
        if !content {
            continue;
        }
        if !protocol.is_empty() {
            entry.push(("Proto", Cow::Owned(protocol.clone().into())));
        }
        if let Some(Value::Object(extra)) = extra {
            for (key, value) in extra {
                set_key(&mut entry, key, Cow::Borrowed(value));
            }
        }
        *slot = Some(entry);
    }
    result
}

/// One side's fields that [`sides`] reads, found in one pass over the
/// event's fields: cheaper than hashing every name the side table has, most
/// of which an event lacks.
#[derive(Default)]
struct SideValues<'f> {
    /// `<side>.ip`.
    ip: Option<&'f Value>,
    /// `<side>.network`.
    network: Option<&'f Value>,
    /// `<side>.local_ip`.
    local_ip: Option<&'f Value>,
    /// `<side>.tor_node`.
    tor_node: Option<&'f Value>,
    /// `<side>.<pair.intelmq>` for each pair of [`Tables::side`], in its order.
    pairs: Vec<Option<&'f Value>>,
}

/// The [`SideValues`] of `Source` and `Target`, in the order of
/// [`Tables::sides`].
fn side_values<'f>(fields: &'f Fields, tables: &Tables) -> [SideValues<'f>; 2] {
    let mut found: [SideValues<'f>; 2] = Default::default();
    for values in &mut found {
        values.pairs = vec![None; tables.side.len()];
    }
    for (key, value) in fields {
        for (side, values) in tables.sides.iter().zip(&mut found) {
            let Some(suffix) = side_suffix(key, &side.intelmq) else {
                continue;
            };
            match suffix {
                "ip" => values.ip = Some(value),
                "network" => values.network = Some(value),
                "local_ip" => values.local_ip = Some(value),
                "tor_node" => values.tor_node = Some(value),
                _ => {}
            }
            for (pair, slot) in tables.side.iter().zip(&mut values.pairs) {
                if pair.intelmq == suffix {
                    *slot = Some(value);
                }
            }
        }
    }
    found
}

/// What follows `<side>.` in a field name of that side (`port` of
/// `source.port`), if it is one.
fn side_suffix<'k>(key: &'k str, side: &str) -> Option<&'k str> {
    // Most fields belong to neither side, and their first byte already
    // says so: cheaper to see than comparing the whole prefix.
    let (key_start, side_start) = (key.as_bytes().first(), side.as_bytes().first());
    if key_start.is_some() && side_start.is_some() && key_start != side_start {
        return None;
    }
    key.strip_prefix(side)?.strip_prefix('.')
}

/// A one-item IDEA list, built as it is rather than serialised into a
/// `Value` as `json!` does.
fn list_of(item: impl Into<Value>) -> Value {
    Value::Array(vec![item.into()])
}

/// `IP4`-style key for an IPv4 address or network, `IP6`-style otherwise.
fn address_key<'k>(address: &str, v4: &'k str, v6: &'k str) -> &'k str {
    // Without a `:` no text is an IPv6 address, so it need not be parsed.
    if !address.bytes().any(|byte| byte == b':') {
        return v4;
    }
    let host = address.split('/').next().unwrap_or(address);
    match host.parse::<IpAddr>() {
        Ok(IpAddr::V6(_)) => v6,
        _ => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::formats::idea::decode::FieldList;
    use crate::formats::{fixture_envelopes, DecodeContext, Format};

    /// Every IntelMQ fixture event, flat or as an envelope.
    fn fixture_events() -> Vec<Envelope> {
        let context = DecodeContext::new("cert-test");
        ["fixtures/intelmq/valid", "fixtures/idea/from-intelmq"]
            .iter()
            .flat_map(|folder| fixture_envelopes(folder, &context))
            .flatten()
            .collect()
    }

    /// Every fixture event alone, and the events each IDEA fixture splits
    /// into, together: with a split message, they make a group.
    fn fixture_batches() -> Vec<Vec<Envelope>> {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let context = DecodeContext::new("cert-test");
        let mut batches: Vec<Vec<Envelope>> = fixture_events()
            .into_iter()
            .map(|event| vec![event])
            .collect();
        for file in std::fs::read_dir(root.join("fixtures/idea/valid")).unwrap() {
            let text = std::fs::read_to_string(file.unwrap().path()).unwrap();
            let message: Value = serde_json::from_str(&text).unwrap();
            batches.push(super::super::Idea.decode(message, &context).unwrap());
        }
        batches
    }

    /// What `encode_lines` writes is the text of what `encode` returns,
    /// for lone events and for whole groups.
    #[test]
    fn lines_are_the_messages_text() {
        let context = EncodeContext::new("cert-test");
        let mut groups = 0;
        for events in fixture_batches() {
            let mut lines = Vec::new();
            let count = encode_lines(&events, &context, &mut lines).unwrap();
            let messages = encode(&events, &context).unwrap();
            let mut expected = Vec::new();
            for message in &messages {
                json::write_value(&mut expected, message);
                expected.push(b'\n');
            }
            assert_eq!(count, messages.len());
            assert_eq!(String::from_utf8(lines), String::from_utf8(expected));
            groups += usize::from(events.len() > 1 && messages.len() == 1);
        }
        assert!(groups > 3, "only {groups} groups were merged");
    }

    /// What `carry` relies on: for a lone event whose side fields were
    /// copied one to one, reading the entries gives back exactly those
    /// fields with the event's values, and nothing else changes.
    #[test]
    fn copied_side_fields_are_what_the_entries_give_back() {
        let tables = Tables::get();
        let harmonization = Harmonization::intelmq();
        let context = EncodeContext::new("cert-test");
        let mut checked = 0;
        for event in fixture_events() {
            let pieces = message(&[&event], None, &context).unwrap();
            let idea = &pieces.idea;
            let fields = event.payload.fields();
            let entry = |side: usize| idea.entries[side].1.first().map(Vec::as_slice);
            let entries = [entry(0), entry(1)];
            let [source, target] = entries;
            let full: Map<String, Value> =
                carried_fields(idea, source, target, harmonization, Some(fields)).unwrap();
            // Read into a list, as `carry` does, the same fields in the same order.
            let listed: FieldList =
                carried_fields(idea, source, target, harmonization, Some(fields)).unwrap();
            let listed: Vec<(&str, &Value)> = listed.iter().map(|(k, v)| (*k, v)).collect();
            let full_listed: Vec<(&str, &Value)> =
                full.iter().map(|(k, v)| (k.as_str(), v)).collect();
            assert_eq!(listed, full_listed);
            // The pieces read as the message they become does.
            let built = message(&[&event], None, &context).unwrap();
            let Value::Object(parsed) = built.into_value() else {
                panic!("an IDEA message is an object")
            };
            let parsed_entry = |side: &str| {
                let list = parsed.get(side)?.as_array()?;
                list.first()?.as_object()
            };
            let (source, target) = (parsed_entry("Source"), parsed_entry("Target"));
            let read: Map<String, Value> =
                carried_fields(&parsed, source, target, harmonization, Some(fields)).unwrap();
            assert_eq!(read, full);
            let Some(copied) = copied_side_fields(fields, entries, tables) else {
                continue;
            };
            assert_eq!(copied.len(), fields.len());
            let copied: Vec<&str> = fields
                .keys()
                .zip(copied)
                .filter_map(|(key, copied)| copied.then_some(key))
                .collect();
            let beside =
                carried_fields_beside_entries(idea, entries, harmonization, Some(fields)).unwrap();
            for key in &copied {
                assert_eq!(full.get(*key), fields.get(key), "{key}");
            }
            let rest: Vec<(&str, &Value)> = full
                .iter()
                .map(|(key, value)| (key.as_str(), value))
                .filter(|(key, _)| !copied.contains(key))
                .collect();
            let beside: Vec<(&str, &Value)> = beside.iter().map(|(k, v)| (*k, v)).collect();
            assert_eq!(rest, beside);
            checked += 1;
        }
        assert!(checked > 5, "only {checked} events took the short way");
    }
}
