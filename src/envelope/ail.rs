//! The AIL Stream Format v1 wire form of an envelope, mapped onto IEP04
//! without loss in either direction.
//!
//! | AIL                                  | IEP04 envelope                     |
//! |--------------------------------------|------------------------------------|
//! | `format`, `version`, `type`          | `meta.format`, `.version`, `.type` |
//! | `meta.uuid`                          | `meta.uuid.id`                     |
//! | `meta["intelmq:origin"]`             | `meta.uuid.origin` (written only when it differs from `uuid_instance` / `uuid_org`) |
//! | `meta["intelmq:related"]`, `group`, `alternate`, `links` | the same lists |
//! | `meta["intelmq:x-NAME"]`             | `meta["x-NAME"]`                   |
//! | any other `meta` key `K`             | `meta["x-ail:K"]`                  |

use serde_json::{Map, Value};

use super::{
    kind_name, links_value, parse_id_list, parse_kind, parse_links, parse_string, parse_uuid,
    parse_version, payload_event, Envelope, Ids, Meta,
};
use crate::error::{Error, Result};
use crate::harmonization::Harmonization;

const PREFIX: &str = "intelmq:";
const FOREIGN: &str = "x-ail:";
/// AIL meta keys whose value can stand in for the origin name.
const ORIGIN_SOURCES: [&str; 2] = ["uuid_instance", "uuid_org"];

/// Reads an AIL Stream Format v1 message.
pub(super) fn from_ail(value: Value, harmonization: &Harmonization) -> Result<Envelope> {
    let Value::Object(object) = value else {
        return Err(Error::shape("envelope: not a JSON object"));
    };
    let (mut format, mut version, mut kind, mut meta, mut payload) = (None, None, None, None, None);
    for (key, value) in object {
        match key.as_str() {
            "format" => format = Some(parse_string("format", value)?),
            "version" => version = Some(parse_version("version", &value)?),
            "type" => kind = Some(parse_kind("type", &value)?),
            "meta" => meta = Some(value),
            "payload" => payload = Some(value),
            _ => return Err(Error::UnknownField { field: key }),
        }
    }
    let missing = |field: &str| Error::Missing {
        field: field.to_owned(),
    };
    let Some(Value::Object(ail_meta)) = meta else {
        return Err(Error::shape("meta: not a JSON object"));
    };
    let kind = kind.ok_or_else(|| missing("type"))?;
    let mut id = None;
    let mut origin = None;
    let (mut related, mut group, mut alternate) = (None, None, None);
    let mut links = None;
    let mut extensions = Map::new();
    for (key, value) in ail_meta {
        let Some(name) = key.strip_prefix(PREFIX) else {
            if key == "uuid" {
                id = Some(parse_uuid("meta.uuid", &value)?);
            } else {
                extensions.insert(format!("{FOREIGN}{key}"), value);
            }
            continue;
        };
        let field = format!("meta.{key}");
        match name {
            "origin" => origin = Some(parse_string(&field, value)?),
            "related" => related = Some(parse_id_list(&field, value)?),
            "group" => group = Some(parse_id_list(&field, value)?),
            "alternate" => alternate = Some(parse_id_list(&field, value)?),
            "links" => links = Some(parse_links(value)?),
            _ if name.starts_with("x-") => {
                extensions.insert(name.to_owned(), value);
            }
            _ => {
                extensions.insert(format!("{FOREIGN}{key}"), value);
            }
        }
    }
    let ids = Ids {
        origin: origin
            .or_else(|| implied_origin(&extensions).map(str::to_owned))
            .ok_or_else(|| missing("meta.intelmq:origin"))?,
        id: id.ok_or_else(|| missing("meta.uuid"))?,
        related,
        group,
        alternate,
    };
    let meta = Meta {
        version: version.ok_or_else(|| missing("version"))?,
        kind,
        format: format.ok_or_else(|| missing("format"))?,
        uuid: ids,
        links,
        extensions,
        arrived: true,
    };
    let payload = payload_event(
        kind,
        payload.ok_or_else(|| missing("payload"))?,
        harmonization,
    )?;
    Ok(Envelope { meta, payload })
}

/// The origin an AIL message names without `intelmq:origin`.
fn implied_origin(extensions: &Map<String, Value>) -> Option<&str> {
    ORIGIN_SOURCES
        .iter()
        .find_map(|key| extensions.get(&format!("{FOREIGN}{key}"))?.as_str())
}

/// Writes an envelope as an AIL Stream Format v1 message.
pub(super) fn to_ail(envelope: &Envelope) -> Value {
    let meta = &envelope.meta;
    let mut ail_meta = Map::new();
    ail_meta.insert("uuid".into(), meta.uuid.id.to_string().into());
    for (key, value) in &meta.extensions {
        if let Some(foreign) = key.strip_prefix(FOREIGN) {
            ail_meta.insert(foreign.to_owned(), value.clone());
        }
    }
    if implied_origin(&meta.extensions) != Some(meta.uuid.origin.as_str()) {
        ail_meta.insert(format!("{PREFIX}origin"), meta.uuid.origin.clone().into());
    }
    for (name, list) in [
        ("related", &meta.uuid.related),
        ("group", &meta.uuid.group),
        ("alternate", &meta.uuid.alternate),
    ] {
        if let Some(list) = list {
            ail_meta.insert(format!("{PREFIX}{name}"), list.clone().into());
        }
    }
    if let Some(links) = &meta.links {
        ail_meta.insert(format!("{PREFIX}links"), links_value(links));
    }
    for (key, value) in &meta.extensions {
        if !key.starts_with(FOREIGN) {
            ail_meta.insert(format!("{PREFIX}{key}"), value.clone());
        }
    }
    let mut object = Map::new();
    object.insert("format".into(), meta.format.clone().into());
    object.insert("version".into(), meta.version.into());
    object.insert("type".into(), kind_name(meta.kind).into());
    object.insert("meta".into(), Value::Object(ail_meta));
    object.insert(
        "payload".into(),
        serde_json::to_value(&envelope.payload).unwrap_or_default(),
    );
    Value::Object(object)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::envelope::WireForm;
    use serde_json::json;

    fn ail_sample() -> Value {
        json!({
            "format": "intelmq",
            "version": 1,
            "type": "event",
            "meta": {
                "uuid": "0192f3a4-5b6c-7d8e-9f00-112233445566",
                "uuid_org": "5677fa4f-1b54-4b4d-9c6a-0f0f0f0f0f0f",
                "tags": ["tlp:amber"],
                "misp:event": 42,
                "intelmq:origin": "cert-xy",
                "intelmq:group": ["g1"],
                "intelmq:alternate": ["idea:4d2f"],
                "intelmq:x-split": {"index": 1, "count": 3}
            },
            "payload": {"source.ip": "192.0.2.1", "raw": "aGVsbG8="}
        })
    }

    #[test]
    fn ail_reads_into_iep04() {
        let envelope = Envelope::from_value(ail_sample(), Harmonization::intelmq()).unwrap();
        assert_eq!(
            envelope.to_wire(WireForm::Iep04),
            json!({
                "meta": {
                    "version": 1,
                    "type": "event",
                    "format": "intelmq",
                    "uuid": {
                        "origin": "cert-xy",
                        "id": "0192f3a4-5b6c-7d8e-9f00-112233445566",
                        "group": ["g1"],
                        "alternate": ["idea:4d2f"]
                    },
                    "x-ail:uuid_org": "5677fa4f-1b54-4b4d-9c6a-0f0f0f0f0f0f",
                    "x-ail:tags": ["tlp:amber"],
                    "x-ail:misp:event": 42,
                    "x-split": {"index": 1, "count": 3}
                },
                "payload": {"source.ip": "192.0.2.1", "raw": "aGVsbG8="}
            })
        );
    }

    #[test]
    fn ail_round_trips_through_iep04() {
        let harmonization = Harmonization::intelmq();
        let envelope = Envelope::from_value(ail_sample(), harmonization).unwrap();
        let iep04 = envelope.to_wire(WireForm::Iep04);
        let again = Envelope::from_value(iep04, harmonization).unwrap();
        assert_eq!(again.to_wire(WireForm::Ail), ail_sample());
    }

    #[test]
    fn origin_falls_back_to_the_instance_uuid() {
        let mut value = ail_sample();
        let meta = value["meta"].as_object_mut().unwrap();
        meta.remove("intelmq:origin");
        meta.insert("uuid_instance".into(), json!("inst-1"));
        let envelope = Envelope::from_value(value.clone(), Harmonization::intelmq()).unwrap();
        assert_eq!(envelope.meta.uuid.origin, "inst-1");
        assert_eq!(envelope.to_wire(WireForm::Ail), value);
    }

    #[test]
    fn iep04_writes_as_ail_and_back() {
        let harmonization = Harmonization::intelmq();
        let mut envelope = Envelope::from_value(ail_sample(), harmonization).unwrap();
        envelope.meta.add_link("replaces", "n6:abc");
        let ail = envelope.to_wire(WireForm::Ail);
        assert_eq!(
            ail["meta"]["intelmq:links"],
            json!([{"type": "replaces", "id": "n6:abc"}])
        );
        assert_eq!(Envelope::from_value(ail, harmonization).unwrap(), envelope);
    }
}
