//! The STIX tables of `mappings/stix/`, loaded once: which objects a
//! classification gets on the way out, which classification STIX
//! vocabulary means on the way in, and the TLP marking ids.

use std::collections::HashMap;
use std::sync::LazyLock;

use serde::Deserialize;

/// IntelMQ's hash fields and the STIX hash names they become, strongest
/// last: an SCO id takes the first one present (MD5, SHA-1, SHA-256).
pub const HASHES: [(&str, &str); 3] = [
    ("malware.hash.md5", "MD5"),
    ("malware.hash.sha1", "SHA-1"),
    ("malware.hash.sha256", "SHA-256"),
];

/// The IntelMQ field of a STIX hash name, however it is spelled
/// (`SHA-256`, `SHA256`, `sha256`).
pub fn hash_field(name: &str) -> Option<&'static str> {
    let plain = |text: &str| -> String {
        text.chars()
            .filter(|c| *c != '-')
            .map(|c| c.to_ascii_uppercase())
            .collect()
    };
    let name = plain(name);
    HASHES
        .iter()
        .find(|(_, stix)| plain(stix) == name)
        .map(|(field, _)| *field)
}

/// What an IntelMQ classification type becomes besides its observed-data.
#[derive(Debug, Deserialize)]
pub struct EncodeRule {
    /// The indicator's `indicator_types`; a listed type gets an indicator.
    pub indicator_types: Vec<String>,
}

/// STIX vocabulary that names an IntelMQ classification type.
#[derive(Debug, Deserialize)]
pub struct DecodeRules {
    /// `labels` values (lower case) to classification types.
    pub labels: HashMap<String, String>,
    /// `infrastructure_types` values to classification types.
    pub infrastructure_types: HashMap<String, String>,
    /// `indicator_types` values to classification types.
    pub indicator_types: HashMap<String, String>,
}

/// `mappings/stix/classification.json`.
#[derive(Debug, Deserialize)]
pub struct ClassificationTable {
    /// Classification type to encode rule; a type not listed gets no indicator.
    pub encode: HashMap<String, EncodeRule>,
    /// Vocabulary to classification type.
    pub decode: DecodeRules,
}

/// A TLP 2.0 level: its marking id and the IntelMQ level it maps to.
#[derive(Debug, Deserialize)]
pub struct Tlp2 {
    /// The OASIS marking-definition id.
    pub id: String,
    /// IntelMQ's nearest level (IntelMQ 3.5 has no CLEAR nor AMBER+STRICT).
    pub intelmq: String,
}

/// `mappings/stix/tlp.json`.
#[derive(Debug, Deserialize)]
pub struct TlpTable {
    /// IntelMQ level to TLP 1.0 marking id (predefined by STIX 2.1).
    pub tlp1: HashMap<String, String>,
    /// TLP 2.0 level name to its marking.
    pub tlp2: HashMap<String, Tlp2>,
}

/// A TLP level read from a marking: IntelMQ's value and, when STIX said
/// something IntelMQ cannot, the original name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlpLevel {
    /// WHITE, GREEN, AMBER or RED.
    pub intelmq: String,
    /// The TLP 2.0 name when it differs from the IntelMQ level (CLEAR, AMBER+STRICT).
    pub original: Option<String>,
}

/// Drops the `_comment` keys the data files carry for their readers.
fn without_comments(text: &str) -> serde_json::Value {
    fn strip(value: &mut serde_json::Value) {
        if let serde_json::Value::Object(map) = value {
            map.remove("_comment");
            map.values_mut().for_each(strip);
        }
    }
    let mut value: serde_json::Value = serde_json::from_str(text)
        .unwrap_or_else(|error| panic!("mappings/stix: not JSON: {error}"));
    strip(&mut value);
    value
}

/// Parses a table shipped in the binary. The tables are covered by tests,
/// so a failure is a build defect, not bad input.
fn load<T: for<'de> Deserialize<'de>>(name: &str, text: &str) -> T {
    serde_json::from_value(without_comments(text))
        .unwrap_or_else(|error| panic!("mappings/stix/{name}: {error}"))
}

static CLASSIFICATION: LazyLock<ClassificationTable> = LazyLock::new(|| {
    load(
        "classification.json",
        include_str!("../../../mappings/stix/classification.json"),
    )
});

static TLP: LazyLock<TlpTable> =
    LazyLock::new(|| load("tlp.json", include_str!("../../../mappings/stix/tlp.json")));

/// The classification table.
pub fn classification() -> &'static ClassificationTable {
    &CLASSIFICATION
}

/// The TLP table.
pub fn tlp() -> &'static TlpTable {
    &TLP
}

impl TlpTable {
    /// The TLP 1.0 marking id for an IntelMQ level.
    pub fn marking_id(&self, level: &str) -> Option<&str> {
        self.tlp1.get(level).map(String::as_str)
    }

    /// The level a predefined marking id (TLP 1.0 or 2.0) stands for.
    pub fn level_of_id(&self, id: &str) -> Option<TlpLevel> {
        if let Some((level, _)) = self.tlp1.iter().find(|(_, known)| *known == id) {
            return Some(TlpLevel {
                intelmq: level.clone(),
                original: None,
            });
        }
        self.tlp2
            .iter()
            .find(|(_, marking)| marking.id == id)
            .map(|(name, marking)| self.level_of_tlp2(name, marking))
    }

    /// The level a TLP name stands for (`white`, `clear`, `amber+strict`...).
    pub fn level_of_name(&self, name: &str) -> Option<TlpLevel> {
        let name = name.trim().trim_start_matches("TLP:").to_ascii_uppercase();
        if self.tlp1.contains_key(&name) {
            return Some(TlpLevel {
                intelmq: name,
                original: None,
            });
        }
        let marking = self.tlp2.get(&name)?;
        Some(self.level_of_tlp2(&name, marking))
    }

    fn level_of_tlp2(&self, name: &str, marking: &Tlp2) -> TlpLevel {
        TlpLevel {
            original: (name != marking.intelmq).then(|| name.to_owned()),
            intelmq: marking.intelmq.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::harmonization::Harmonization;

    #[test]
    fn tables_load_and_name_real_classification_types() {
        let classes = &Harmonization::intelmq().classification;
        let table = classification();
        for kind in table.encode.keys() {
            assert!(classes.is_type(kind), "encode: {kind}");
        }
        let decode = &table.decode;
        for kind in decode
            .labels
            .values()
            .chain(decode.infrastructure_types.values())
            .chain(decode.indicator_types.values())
        {
            assert!(classes.is_type(kind), "decode: {kind}");
        }
    }

    #[test]
    fn hash_names_in_any_spelling() {
        assert_eq!(hash_field("SHA-256"), Some("malware.hash.sha256"));
        assert_eq!(hash_field("sha1"), Some("malware.hash.sha1"));
        assert_eq!(hash_field("MD5"), Some("malware.hash.md5"));
        assert_eq!(hash_field("SHA-512"), None);
    }

    #[test]
    fn tlp_levels_from_ids_and_names() {
        let table = tlp();
        let green = table.marking_id("GREEN").unwrap();
        assert_eq!(table.level_of_id(green).unwrap().intelmq, "GREEN");
        let clear = table
            .level_of_id("marking-definition--94868c89-83c2-464b-929b-a1a8aa3c8487")
            .unwrap();
        assert_eq!(clear.intelmq, "WHITE");
        assert_eq!(clear.original.as_deref(), Some("CLEAR"));
        assert_eq!(
            table.level_of_name("amber+strict").unwrap().intelmq,
            "AMBER"
        );
        assert_eq!(table.level_of_name("TLP:RED").unwrap().original, None);
        assert!(table.level_of_name("purple").is_none());
    }
}
