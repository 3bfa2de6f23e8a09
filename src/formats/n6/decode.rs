//! n6 → IntelMQ: one n6 event becomes one IntelMQ event per `address`
//! item (one event when it has none), linked as a split group.

use serde_json::{Map, Value};
use uuid::{Uuid, Variant};

use super::mapping::{is_n6_ipv4, Tables};
use super::{CARRIER, EXTRA_PREFIX, INTERNAL, SPLIT};
use crate::envelope::{derived_id, link_split_group, Envelope, Ids, Meta};
use crate::error::{Error, Result};
use crate::event::{Draft, Event, Fields};
use crate::formats::intelmq::META_KEY;
use crate::formats::{raw_field, DecodeContext};
use crate::harmonization::{is_ignored, Harmonization, MessageType};

/// The fields n6 requires in every event (the encoder sets them first).
pub(super) const REQUIRED: [&str; 6] = [
    "id",
    "source",
    "restriction",
    "confidence",
    "category",
    "time",
];

/// An n6 event in IntelMQ terms, before it is split into events.
pub(super) struct Mapped {
    /// The n6 `id`.
    pub id: String,
    /// The n6 `replaces`, the id of the event this one supersedes.
    pub replaces: Option<String>,
    /// The fields every split event shares.
    pub common: Draft,
    /// The `source.*` fields of each `address` item, in order.
    pub addresses: Vec<Draft>,
}

/// What the `intelmq` custom field carries: the IntelMQ fields n6 has no
/// place for, meta, and per-event differences of a merged split group.
#[derive(Default)]
struct Carried {
    fields: Map<String, Value>,
    meta: Option<Value>,
    split: Option<Vec<Carried>>,
}

/// Decodes one n6 event (API or pipeline form) into envelopes.
pub(super) fn decode(message: Value, context: &DecodeContext) -> Result<Vec<Envelope>> {
    let Value::Object(mut fields) = message else {
        return Err(Error::shape("not a JSON object: an n6 event is an object"));
    };
    let carried = fields
        .shift_remove(CARRIER)
        .map(|value| Carried::parse(value, true))
        .transpose()?
        .unwrap_or_default();
    let mapped = map_event(&Value::Object(fields), context.harmonization)?;
    build_events(mapped, carried, context)
}

/// Makes the split events: the shared fields, each event's address, then
/// whatever the `intelmq` field carries for all events and for each one.
fn build_events(
    mapped: Mapped,
    mut carried: Carried,
    context: &DecodeContext,
) -> Result<Vec<Envelope>> {
    let mut parts = carried.split.take();
    let count = parts
        .as_ref()
        .map_or(mapped.addresses.len().max(1), Vec::len);
    let mut envelopes = derived_envelopes(
        &mapped.id,
        count,
        mapped.replaces.as_deref(),
        &context.origin,
    );
    let mut addresses = mapped.addresses.into_iter();
    let mut common = mapped.common;
    for (index, envelope) in envelopes.iter_mut().enumerate() {
        let part = parts.as_mut().and_then(|parts| parts.get_mut(index));
        let part = part.map(std::mem::take);
        // The last event takes the shared fields themselves.
        let last = index + 1 == count;
        let mut fields = if last {
            std::mem::take(&mut common)
        } else {
            common.clone()
        };
        // A part that names `source.ip` itself took no address item.
        let takes_address = part
            .as_ref()
            .is_none_or(|part| !part.fields.contains_key("source.ip"));
        if takes_address {
            if let Some(address) = addresses.next() {
                fields.append(address);
            }
        }
        // What the `intelmq` field gives replaces them.
        if last {
            fields.extend(std::mem::take(&mut carried.fields));
        } else {
            fields.extend(carried.fields.clone());
        }
        let mut meta = if count == 1 {
            carried.meta.take()
        } else {
            None
        };
        if let Some(part) = part {
            fields.extend(part.fields);
            meta = part.meta.or(meta);
        }
        envelope.payload =
            Event::from_draft(MessageType::Event, fields, context.harmonization, None)?;
        if let Some(meta) = meta {
            let meta = Meta::from_value(meta)
                .map_err(|error| Error::shape(format!("{CARRIER}.{META_KEY}: {error}")))?;
            if meta.kind != MessageType::Event {
                return Err(Error::shape(format!(
                    "{CARRIER}.{META_KEY}: meta.type is not event"
                )));
            }
            envelope.meta = meta;
        }
    }
    if addresses.next().is_some() {
        return Err(Error::shape(format!(
            "address: more items than {CARRIER}.{SPLIT} has events for"
        )));
    }
    Ok(envelopes)
}

/// The envelopes (empty payloads) that decoding an n6 event with `id` into
/// `count` events gives: derived ids, the `n6:` alternate, the split group,
/// the `replaces` link. Encoding compares against them to see what meta
/// must travel in the `intelmq` field.
pub(super) fn derived_envelopes(
    id: &str,
    count: usize,
    replaces: Option<&str>,
    origin: &str,
) -> Vec<Envelope> {
    let name = format!("n6:{id}");
    let mut envelopes: Vec<Envelope> = (0..count)
        .map(|index| {
            let uuid = if count > 1 {
                derived_id(&format!("{name}#{index}"))
            } else {
                bridge_id(id).unwrap_or_else(|| derived_id(&name))
            };
            let ids = Ids::with_id(origin, uuid);
            let mut meta = Meta::with_ids(MessageType::Event, super::NAME, ids);
            meta.uuid.add_alternate(name.as_str());
            if let Some(old) = replaces {
                meta.add_link("replaces", &format!("n6:{old}"));
            }
            Envelope {
                meta,
                payload: Event::default(),
            }
        })
        .collect();
    if count > 1 {
        link_split_group(&mut envelopes, &derived_id(&name).to_string());
    }
    envelopes
}

/// The envelope id an n6 id stands for when the bridge wrote it: 32 hex
/// digits of an RFC 4122 UUID of version 5 (derived) or 7 (new). About one
/// genuine n6 id in 32 has these bits too; it then serves as its own
/// envelope id, which is just as stable and unique.
pub(super) fn bridge_id(id: &str) -> Option<Uuid> {
    let uuid = Uuid::try_parse(id).ok()?;
    let ours = uuid.get_variant() == Variant::RFC4122 && matches!(uuid.get_version_num(), 5 | 7);
    ours.then_some(uuid)
}

/// Checks an n6 event (without its `intelmq` field) against n6's
/// constraints and maps it to IntelMQ fields, the whole event going to
/// `raw`.
fn map_event(message: &Value, harmonization: &Harmonization) -> Result<Mapped> {
    let Some(n6) = message.as_object() else {
        return Err(Error::shape("not a JSON object: an n6 event is an object"));
    };
    let mut mapped = map_fields(n6, harmonization, None, Checks::Run)?;
    // Base64 of a JSON text, canonical and never empty: what a `raw`
    // field holds as it is.
    mapped
        .common
        .push_accepted("raw".into(), raw_field(message));
    Ok(mapped)
}

/// [`map_event`] for an n6 event the encoder has just written, to see what
/// decoding will rebuild: every value of it has passed n6's constraints as
/// it was written, so they are not checked again, and `raw` is left out
/// (the encoder knows without writing it out whether it matches).
/// `known` holds the fields of an event the n6 event was made from: a
/// mapped value equal to that event's own is not checked again either
/// ([`Harmonization::accept_known`]).
pub(super) fn map_written(
    n6: &Map<String, Value>,
    harmonization: &Harmonization,
    known: Option<&Fields>,
) -> Result<Mapped> {
    map_fields(n6, harmonization, known, Checks::Done)
}

/// Whether n6's constraints are still to be checked: on an n6 event that
/// arrived, not on one the encoder wrote.
#[derive(Clone, Copy, PartialEq)]
enum Checks {
    Run,
    Done,
}

fn map_fields(
    n6: &Map<String, Value>,
    harmonization: &Harmonization,
    known: Option<&Fields>,
    checks: Checks,
) -> Result<Mapped> {
    let tables = Tables::get();
    // A scan of the event's few keys costs less than hashing each name.
    let missing = REQUIRED
        .into_iter()
        .filter(|_| checks == Checks::Run)
        .find(|field| !n6.keys().any(|key| key == field));
    if let Some(field) = missing {
        return Err(Error::Missing {
            field: field.to_owned(),
        });
    }
    let mut common = Draft::with_capacity(n6.len() + 4);
    let mut internal = Map::new();
    let mut named = Named::default();
    for (key, value) in n6 {
        if checks == Checks::Run {
            tables.check(key, value)?;
        }
        named.note(key, value);
        match key.as_str() {
            "id" | "address" | "category" | CARRIER => {}
            "confidence" => {
                let accuracy = value.as_str().and_then(|c| tables.accuracy_of(c));
                common.push("feed.accuracy".into(), accuracy.into());
            }
            "restriction" => {
                let tlp = value.as_str().and_then(|r| tables.tlp_of(r));
                common.push("tlp".into(), tlp.into());
                push_extra(&mut common, key, value.clone());
            }
            _ => match tables.intelmq_field(key) {
                Some(intelmq) => {
                    let held = known.and_then(|known| known.get(intelmq));
                    map_field(&mut common, key, intelmq, (value, held), harmonization)?;
                }
                None => {
                    let extra = extra_name(key);
                    if harmonization.spec(MessageType::Event, &extra).is_some() {
                        push_extra_as(&mut common, extra, value.clone());
                    } else {
                        internal.insert(key.clone(), value.clone());
                    }
                }
            },
        }
    }
    if !internal.is_empty() {
        // An n6 key `internal` of its own has this name too: replaced.
        common.insert(extra_name(INTERNAL).into(), Value::Object(internal));
    }
    classify(&mut common, &named, tables)?;
    Ok(Mapped {
        id: named.id.unwrap_or_default().to_owned(),
        replaces: named.replaces.map(str::to_owned),
        addresses: map_addresses(named.address, harmonization, known, checks)?,
        common,
    })
}

/// The n6 fields that mapping reads by name too, besides mapping each in
/// turn: noted as the mapping meets them, not looked up again.
#[derive(Default)]
struct Named<'n> {
    id: Option<&'n str>,
    replaces: Option<&'n str>,
    category: Option<&'n str>,
    name: Option<&'n str>,
    /// `type`.
    kind: Option<&'n str>,
    address: Option<&'n Value>,
}

impl<'n> Named<'n> {
    /// Notes the value of `key` when it is one of them.
    fn note(&mut self, key: &str, value: &'n Value) {
        let text = value.as_str();
        match key {
            "id" => self.id = text,
            "replaces" => self.replaces = text,
            "category" => self.category = text,
            "name" => self.name = text,
            "type" => self.kind = text,
            "address" => self.address = Some(value),
            _ => {}
        }
    }
}

/// Keeps an n6 value as it is in `extra.n6.<key>`, for a `key` whose name
/// there IntelMQ's sub-key rule accepts (the tables' own field names).
fn push_extra(common: &mut Draft, key: &str, value: Value) {
    push_extra_as(common, extra_name(key), value);
}

/// Adds `extra` (an `extra.n6.*` name IntelMQ's sub-key rule accepts) with
/// an n6 value as it is: a sub-key of `extra` holds any JSON value, so the
/// harmonization accepts it as it is unless it is one IntelMQ drops.
fn push_extra_as(common: &mut Draft, extra: String, value: Value) {
    if is_ignored(&value) {
        common.push(extra.into(), value);
    } else {
        common.push_accepted(extra.into(), value);
    }
}

/// `extra.n6.<key>`, the IntelMQ field of an n6 key kept as it is.
fn extra_name(key: &str) -> String {
    [EXTRA_PREFIX, key].concat()
}

/// Maps a field with an IntelMQ counterpart. When IntelMQ holds the value
/// in another form (or cannot hold it), the n6 value is kept in
/// `extra.n6.<field>` too, so the way back gives it exactly. `time` is
/// always written in the API form, so only its IntelMQ form is kept.
/// `held` is a known event's value of the IntelMQ field, if any. True
/// The IntelMQ field is set only to a value the harmonization accepted.
fn map_field(
    common: &mut Draft,
    key: &str,
    intelmq: &'static str,
    (value, held): (&Value, Option<&Value>),
    harmonization: &Harmonization,
) -> Result<()> {
    let accepted = harmonization.accept_known(MessageType::Event, intelmq, value.clone(), held);
    if key == "time" {
        let time = accepted?.ok_or_else(|| Error::invalid(key, value, "is not a date and time"))?;
        common.push_accepted(intelmq.into(), time);
        return Ok(());
    }
    match accepted {
        Ok(Some(accepted)) => {
            let same = accepted == *value;
            common.push_accepted(intelmq.into(), accepted);
            if !same {
                push_extra(common, key, value.clone());
            }
        }
        Ok(None) | Err(_) => push_extra(common, key, value.clone()),
    }
    Ok(())
}

/// `category` (and `type` for blacklists, `name` for bots) → the IntelMQ
/// classification.
fn classify(common: &mut Draft, named: &Named, tables: &Tables) -> Result<()> {
    let category = named.category.unwrap_or_default();
    let row = tables
        .classification(category)
        .ok_or_else(|| Error::invalid("category", &category.into(), "has no classification"))?;
    let identifier = match named.name {
        Some(name) if row.identifier_from_name => name,
        _ => row.identifier.as_str(),
    };
    let blacklist = named.kind.and_then(|kind| tables.blacklist(kind));
    let (taxonomy, kind) = match blacklist {
        Some(pair) => {
            // The category is not recoverable from other / blacklist.
            push_extra(common, "category", category.into());
            pair
        }
        None => (row.taxonomy.as_str(), row.kind.as_str()),
    };
    common.push("classification.taxonomy".into(), taxonomy.into());
    common.push("classification.type".into(), kind.into());
    common.push("classification.identifier".into(), identifier.into());
    Ok(())
}

/// Checks the `address` list as n6 does (its items' constraints only when
/// `checks` says so) and maps each item to `source.*`; a value equal to
/// the `known` event's own is not checked again.
fn map_addresses(
    address: Option<&Value>,
    harmonization: &Harmonization,
    known: Option<&Fields>,
    checks: Checks,
) -> Result<Vec<Draft>> {
    let Some(address) = address else {
        return Ok(Vec::new());
    };
    let tables = Tables::get();
    let items = match address.as_array() {
        Some(items) if !items.is_empty() => items,
        _ => {
            return Err(Error::invalid(
                "address",
                address,
                "is not a non-empty list of {ip, cc, asn} objects",
            ))
        }
    };
    let mut seen: Vec<&str> = Vec::with_capacity(items.len());
    items
        .iter()
        .enumerate()
        .map(|(index, item)| {
            let label = |key: &str| format!("address[{index}].{key}");
            let Some(item) = item.as_object() else {
                return Err(Error::invalid(
                    &format!("address[{index}]"),
                    item,
                    "is not an object",
                ));
            };
            let ip = item
                .get("ip")
                .ok_or_else(|| Error::Missing { field: label("ip") })?;
            let text = ip.as_str().filter(|ip| is_n6_ipv4(ip));
            let text = text.ok_or_else(|| {
                Error::invalid(
                    &label("ip"),
                    ip,
                    "is not an IPv4 address other than 0.0.0.0",
                )
            })?;
            if seen.contains(&text) {
                return Err(Error::invalid(&label("ip"), ip, "is listed twice"));
            }
            seen.push(text);
            let mut fields = Draft::with_capacity(item.len());
            // `address.<key>`, the constraint's name, spelt in one buffer.
            let mut constraint = String::new();
            for (key, value) in item {
                let Some(intelmq) = tables.address_field(key) else {
                    return Err(Error::invalid(
                        &label(key),
                        value,
                        "is not in an n6 address item (ip, cc, asn)",
                    ));
                };
                if checks == Checks::Run {
                    constraint.clear();
                    constraint.push_str("address.");
                    constraint.push_str(key);
                    tables.check_as(&constraint, || label(key), value)?;
                }
                let held = known.and_then(|known| known.get(intelmq));
                let accepted = harmonization
                    .accept_known(MessageType::Event, intelmq, value.clone(), held)
                    .map_err(|_| Error::invalid(&label(key), value, "is refused by IntelMQ"))?;
                if let Some(accepted) = accepted {
                    fields.push_accepted(intelmq.into(), accepted);
                }
            }
            Ok(fields)
        })
        .collect()
}

impl Carried {
    /// Reads the `intelmq` custom field; `top` allows the per-event `split` list.
    fn parse(value: Value, top: bool) -> Result<Self> {
        let Value::Object(mut fields) = value else {
            return Err(Error::invalid(
                CARRIER,
                &value,
                "is not an object of IntelMQ fields",
            ));
        };
        let meta = fields.shift_remove(META_KEY);
        let split = match fields.shift_remove(SPLIT) {
            Some(Value::Array(parts)) if top && !parts.is_empty() => Some(
                parts
                    .into_iter()
                    .map(|part| Carried::parse(part, false))
                    .collect::<Result<Vec<_>>>()?,
            ),
            Some(other) => {
                return Err(Error::invalid(
                    &format!("{CARRIER}.{SPLIT}"),
                    &other,
                    "is not a list of per-event objects",
                ))
            }
            None => None,
        };
        Ok(Carried {
            fields,
            meta,
            split,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// [`push_extra`] relies on it.
    #[test]
    fn the_tables_fields_are_extra_sub_keys() {
        let harmonization = Harmonization::intelmq();
        let tables = Tables::get();
        let keys = tables.fields.iter().map(|(key, _)| key.as_str());
        for key in keys.chain(["restriction", "category"]) {
            let extra = extra_name(key);
            assert!(
                harmonization.spec(MessageType::Event, &extra).is_some(),
                "{extra}"
            );
        }
    }

    /// [`map_event`] relies on it.
    #[test]
    fn raw_is_accepted_as_written() {
        let raw = raw_field(&json!({"id": "é\n", "address": [{"ip": "192.0.2.1"}]}));
        let accepted = Harmonization::intelmq().accept(MessageType::Event, "raw", raw.clone());
        assert_eq!(accepted.unwrap(), Some(raw));
    }
}
