//! The IDEA tables of `mappings/idea/`, loaded once: which IDEA key holds
//! which IntelMQ field, and how `Category` and `classification.type`
//! correspond. An integrator changes a mapping there, not here.

use std::collections::HashSet;
use std::sync::LazyLock;

use serde::Deserialize;

use crate::harmonization::WordMap;

const CATEGORY_JSON: &str = include_str!("../../../mappings/idea/category.json");
const FIELDS_JSON: &str = include_str!("../../../mappings/idea/fields.json");

static TABLES: LazyLock<Tables> = LazyLock::new(|| {
    // The tables are part of the binary and covered by tests; a failure
    // here is a build defect, not bad input.
    Tables::from_json(CATEGORY_JSON, FIELDS_JSON)
        .unwrap_or_else(|error| panic!("embedded IDEA mapping is broken: {error}"))
});

/// One IDEA key and the IntelMQ field (or field suffix) it holds.
#[derive(Debug, Deserialize)]
pub struct Pair {
    /// The IDEA key, e.g. `DetectTime` or `Hostname`.
    pub idea: String,
    /// The IntelMQ field, e.g. `time.observation`, or for a Source/Target
    /// key the part after `source.`/`destination.`, e.g. `fqdn`.
    pub intelmq: String,
    /// Whether a value IntelMQ refuses rejects the message (IDEA integers)
    /// rather than staying in `extra`.
    #[serde(default)]
    pub strict: bool,
}

/// A rule turning an IDEA category into an IntelMQ classification type.
#[derive(Debug, Deserialize)]
pub struct TypeRule {
    /// The IntelMQ classification type.
    #[serde(rename = "type")]
    pub kind: String,
    /// The rule applies only when some Source has one of these Types.
    #[serde(default)]
    pub if_source_type: Vec<String>,
}

/// An IntelMQ field written into IDEA `Ref`.
#[derive(Debug, Deserialize)]
pub struct RefRule {
    /// The IntelMQ field.
    pub intelmq: String,
    /// The URI scheme put before the value; none when the value is a URL.
    pub scheme: Option<String>,
}

#[derive(Deserialize)]
struct CategoryTable {
    to_idea: WordMap<String, String>,
    default_type: String,
    source_type: WordMap<String, String>,
    tor_node_type: String,
    from_idea: WordMap<String, Vec<TypeRule>>,
    fallback: String,
}

#[derive(Deserialize)]
struct FieldTable {
    message: Vec<Pair>,
    sides: Vec<Pair>,
    side: Vec<Pair>,
    side_note: String,
    hashes: Vec<Pair>,
    refs: Vec<RefRule>,
    transports: HashSet<String>,
}

/// Every IDEA mapping table.
pub struct Tables {
    category: CategoryTable,
    /// Top-level IDEA keys holding one IntelMQ field each (times, `Note`).
    pub message: Vec<Pair>,
    /// `Source` → `source`, `Target` → `destination`.
    pub sides: Vec<Pair>,
    /// Source/Target keys holding one IntelMQ field each (as one-item lists).
    pub side: Vec<Pair>,
    /// The IntelMQ field that IntelMQ's IDEA expert writes as Source/Target `Note`.
    pub side_note: String,
    /// Attach `Hash` schemes and the malware hash fields they hold.
    pub hashes: Vec<Pair>,
    /// IntelMQ fields written into `Ref`.
    pub refs: Vec<RefRule>,
    /// Protocol names that are transports (the first item of `Proto`).
    pub transports: HashSet<String>,
    /// For each of `sides`, its full IntelMQ field names.
    pub side_fields: Vec<SideFields>,
}

/// One side's full IntelMQ field names (`source.ip`, ...), spelt once when
/// the tables load instead of formatted for every event.
pub struct SideFields {
    /// `<side>.ip`.
    pub ip: String,
    /// `<side>.network`.
    pub network: String,
    /// `<side>.local_ip`.
    pub local_ip: String,
    /// `<side>.<pair.intelmq>` for each pair of [`Tables::side`], in its order.
    pub pairs: Vec<String>,
}

impl SideFields {
    fn new(side: &str, pairs: &[Pair]) -> Self {
        let name = |suffix: &str| format!("{side}.{suffix}");
        SideFields {
            ip: name("ip"),
            network: name("network"),
            local_ip: name("local_ip"),
            pairs: pairs.iter().map(|pair| name(&pair.intelmq)).collect(),
        }
    }
}

impl Tables {
    /// The tables shipped with the bridge.
    pub fn get() -> &'static Tables {
        &TABLES
    }

    fn from_json(category: &str, fields: &str) -> Result<Self, serde_json::Error> {
        let category: CategoryTable = serde_json::from_str(category)?;
        let fields: FieldTable = serde_json::from_str(fields)?;
        let side_fields = fields
            .sides
            .iter()
            .map(|side| SideFields::new(&side.intelmq, &fields.side))
            .collect();
        Ok(Tables {
            side_fields,
            category,
            message: fields.message,
            sides: fields.sides,
            side: fields.side,
            side_note: fields.side_note,
            hashes: fields.hashes,
            refs: fields.refs,
            transports: fields.transports,
        })
    }

    /// The IDEA category of an IntelMQ classification type (none given:
    /// the expert's `undetermined`).
    pub fn category_of(&self, kind: Option<&str>) -> Option<&str> {
        let kind = kind.unwrap_or(&self.category.default_type);
        self.category.to_idea.get(kind).map(String::as_str)
    }

    /// The Source `Type` tag IntelMQ's expert gives a classification type.
    pub fn source_type_of(&self, kind: &str) -> Option<&str> {
        self.category.source_type.get(kind).map(String::as_str)
    }

    /// The Source/Target `Type` tag of a Tor node.
    pub fn tor_node_type(&self) -> &str {
        &self.category.tor_node_type
    }

    /// The IntelMQ classification type of a list of IDEA categories: the
    /// first category that maps (by full tag, then by class) to a type other
    /// than the fallback decides, so `["Anomaly.Traffic", "Recon.Scanning"]`
    /// is a scan; `has_source_type` tells whether some Source has a given Type.
    pub fn type_of<'a>(
        &self,
        categories: impl IntoIterator<Item = &'a str>,
        has_source_type: impl Fn(&str) -> bool,
    ) -> &str {
        let fallback = self.category.fallback.as_str();
        categories
            .into_iter()
            .filter_map(|category| {
                let class = category.split('.').next().unwrap_or(category);
                let rules = self
                    .category
                    .from_idea
                    .get(category)
                    .or_else(|| self.category.from_idea.get(class))?;
                rules.iter().find(|rule| {
                    rule.if_source_type.is_empty()
                        || rule.if_source_type.iter().any(|t| has_source_type(t))
                })
            })
            .map(|rule| rule.kind.as_str())
            .find(|kind| *kind != fallback)
            .unwrap_or(fallback)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::harmonization::{Harmonization, MessageType};

    #[test]
    fn every_intelmq_type_has_a_category_and_back() {
        let tables = Tables::get();
        let classes = &Harmonization::intelmq().classification;
        for (kind, category) in &tables.category.to_idea {
            assert!(classes.is_type(kind), "{kind} is not an IntelMQ type");
            assert_ne!(tables.type_of([category.as_str()], |_| false), "");
        }
        for rules in tables.category.from_idea.values() {
            for rule in rules {
                assert!(classes.is_type(&rule.kind), "{}", rule.kind);
            }
        }
        assert!(classes.is_type(&tables.category.fallback));
        let table: serde_json::Value = serde_json::from_str(include_str!(
            "../../../mappings/intelmq/classification.json"
        ))
        .unwrap();
        for kinds in table["taxonomies"].as_object().unwrap().values() {
            for kind in kinds.as_array().unwrap() {
                let kind = kind.as_str().unwrap();
                assert!(tables.category_of(Some(kind)).is_some(), "{kind}");
            }
        }
        assert_eq!(tables.category_of(None), Some("Other"));
        let harmonization = Harmonization::intelmq();
        for pair in tables.side.iter() {
            for side in &tables.sides {
                let field = format!("{}.{}", side.intelmq, pair.intelmq);
                assert!(harmonization.spec(MessageType::Event, &field).is_some());
            }
        }
    }

    #[test]
    fn categories_map_by_tag_then_class_then_fallback() {
        let tables = Tables::get();
        assert_eq!(tables.type_of(["Recon.Scanning"], |_| false), "scanner");
        assert_eq!(
            tables.type_of(["Malware.Ransomware"], |_| false),
            "infected-system"
        );
        assert_eq!(
            tables.type_of(["Malware"], |t| t == "Malware"),
            "malware-distribution"
        );
        assert_eq!(
            tables.type_of(["Intrusion.Botnet"], |t| t == "CC"),
            "c2-server"
        );
        assert_eq!(
            tables.type_of(["Bogus.Thing", "Abusive.Spam"], |_| false),
            "spam"
        );
        assert_eq!(
            tables.type_of(["Suspicious.Miner"], |_| false),
            "undetermined"
        );
        assert_eq!(tables.type_of(["Nothing"], |_| false), "undetermined");
    }
}
