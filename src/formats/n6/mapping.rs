//! The n6 ⇄ IntelMQ tables of `mappings/n6/`, loaded once: categories,
//! fields, n6's constraints, restriction and confidence levels.

use std::net::Ipv4Addr;
use std::sync::LazyLock;

use regex::Regex;
use serde::Deserialize;
use serde_json::Value;

use crate::error::{Error, Result};
use crate::harmonization::{parse_datetime, WordMap};

const CATEGORIES_JSON: &str = include_str!("../../../mappings/n6/categories.json");
const FIELDS_JSON: &str = include_str!("../../../mappings/n6/fields.json");
const LEVELS_JSON: &str = include_str!("../../../mappings/n6/levels.json");

static TABLES: LazyLock<Tables> = LazyLock::new(|| {
    // The tables are part of the binary and covered by tests; a failure
    // here is a build defect, not bad input.
    Tables::from_json(CATEGORIES_JSON, FIELDS_JSON, LEVELS_JSON)
        .unwrap_or_else(|error| panic!("embedded n6 mapping is broken: {error}"))
});

/// An IntelMQ classification: taxonomy, type and identifier.
#[derive(Debug, Clone, Deserialize)]
pub struct Classification {
    /// `classification.taxonomy`.
    pub taxonomy: String,
    /// `classification.type`.
    #[serde(rename = "type")]
    pub kind: String,
    /// `classification.identifier`.
    pub identifier: String,
    /// Whether the event's `name` replaces the identifier when present.
    #[serde(default)]
    pub identifier_from_name: bool,
}

#[derive(Deserialize)]
struct Blacklist {
    types: Vec<String>,
    taxonomy: String,
    #[serde(rename = "type")]
    kind: String,
}

/// `categories` is read as a JSON map (ordered), so the table keeps the
/// file's order everywhere.
#[derive(Deserialize)]
struct RawCategories {
    categories: serde_json::Map<String, Value>,
    blacklist: Blacklist,
    by_type: WordMap<String, String>,
}

/// What n6's data specification accepts for one field.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConstraint {
    #[serde(rename = "enum")]
    values: Option<Vec<String>>,
    pattern: Option<String>,
    max_length: Option<usize>,
    integer: Option<(i64, i64)>,
    #[serde(default)]
    datetime: bool,
    #[serde(default)]
    ipv4: bool,
    #[serde(default)]
    boolean: bool,
    #[serde(default)]
    list_of_objects: bool,
    #[serde(default)]
    texts: bool,
}

/// A compiled n6 field constraint.
#[derive(Debug)]
struct Constraint {
    values: Option<Vec<String>>,
    pattern: Option<Regex>,
    max_length: Option<usize>,
    integer: Option<(i64, i64)>,
    datetime: bool,
    ipv4: bool,
    boolean: bool,
    list_of_objects: bool,
    /// A text, or a list of texts, each held to the other rules.
    texts: bool,
}

#[derive(Deserialize)]
struct RawFields {
    fields: serde_json::Map<String, Value>,
    address: WordMap<String, String>,
    pipeline_only: Vec<String>,
    free_form: Vec<String>,
    custom: RawConstraint,
    constraints: WordMap<String, RawConstraint>,
}

#[derive(Deserialize)]
struct AccuracyLevel {
    below: Option<f64>,
    confidence: String,
}

#[derive(Deserialize)]
struct Levels {
    restriction_to_tlp: WordMap<String, String>,
    tlp_to_restriction: WordMap<String, String>,
    default_restriction: String,
    confidence_to_accuracy: WordMap<String, f64>,
    accuracy_to_confidence: Vec<AccuracyLevel>,
    default_confidence: String,
}

/// Every n6 table, ready for lookups.
pub struct Tables {
    categories: Vec<(String, Classification)>,
    category_index: WordMap<String, usize>,
    blacklist: Blacklist,
    by_type: WordMap<String, String>,
    /// Top-level n6 fields with an IntelMQ counterpart, in table order.
    pub fields: Vec<(String, String)>,
    address: WordMap<String, String>,
    pipeline_only: Vec<String>,
    free_form: Vec<String>,
    custom: Constraint,
    constraints: WordMap<String, Constraint>,
    levels: Levels,
}

impl Tables {
    /// The tables shipped in `mappings/n6/`.
    pub fn get() -> &'static Tables {
        &TABLES
    }

    fn from_json(categories: &str, fields: &str, levels: &str) -> Result<Self> {
        let config = |what: &str, e: serde_json::Error| Error::Config(format!("n6 {what}: {e}"));
        let raw: RawCategories =
            serde_json::from_str(categories).map_err(|e| config("categories", e))?;
        let categories = raw
            .categories
            .into_iter()
            .map(|(name, row)| Ok((name, serde_json::from_value(row)?)))
            .collect::<serde_json::Result<Vec<(String, Classification)>>>()
            .map_err(|e| config("categories", e))?;
        let category_index = categories
            .iter()
            .enumerate()
            .map(|(index, (name, _))| (name.clone(), index))
            .collect();
        let fields_raw: RawFields =
            serde_json::from_str(fields).map_err(|e| config("fields", e))?;
        let fields = fields_raw
            .fields
            .into_iter()
            .map(|(n6, intelmq)| match intelmq {
                Value::String(intelmq) => Ok((n6, intelmq)),
                other => Err(Error::Config(format!(
                    "n6 fields: {n6}: {other} is not a name"
                ))),
            })
            .collect::<Result<_>>()?;
        let constraints = fields_raw
            .constraints
            .into_iter()
            .map(|(name, raw)| Constraint::compile(&name, raw).map(|c| (name, c)))
            .collect::<Result<_>>()?;
        let levels: Levels = serde_json::from_str(levels).map_err(|e| config("levels", e))?;
        Ok(Tables {
            categories,
            category_index,
            blacklist: raw.blacklist,
            by_type: raw.by_type,
            fields,
            address: fields_raw.address,
            pipeline_only: fields_raw.pipeline_only,
            free_form: fields_raw.free_form,
            custom: Constraint::compile("custom", fields_raw.custom)?,
            constraints,
            levels,
        })
    }

    /// Every n6 category with its IntelMQ classification, in table order.
    pub fn categories(&self) -> impl Iterator<Item = (&str, &Classification)> {
        self.categories
            .iter()
            .map(|(name, row)| (name.as_str(), row))
    }

    /// The IntelMQ classification of an n6 category.
    pub fn classification(&self, category: &str) -> Option<&Classification> {
        let index = *self.category_index.get(category)?;
        self.categories.get(index).map(|(_, row)| row)
    }

    /// The taxonomy and type of blacklist events, when `kind` (n6 `type`)
    /// is a blacklist type.
    pub fn blacklist(&self, kind: &str) -> Option<(&str, &str)> {
        self.blacklist
            .types
            .iter()
            .any(|t| t == kind)
            .then_some((&self.blacklist.taxonomy, &self.blacklist.kind))
            .map(|(taxonomy, kind)| (taxonomy.as_str(), kind.as_str()))
    }

    /// The n6 category of an IntelMQ classification: the row that matches
    /// taxonomy, type and identifier (or `name`, where the identifier comes
    /// from it), else the category for the type, else `other`.
    pub fn category_of(
        &self,
        taxonomy: Option<&str>,
        kind: Option<&str>,
        identifier: Option<&str>,
        name: Option<&str>,
    ) -> &str {
        let exact = self.categories.iter().find(|(_, row)| {
            taxonomy == Some(row.taxonomy.as_str())
                && kind == Some(row.kind.as_str())
                && (identifier == Some(row.identifier.as_str())
                    || (row.identifier_from_name && identifier.is_some() && identifier == name))
        });
        if let Some((category, _)) = exact {
            return category;
        }
        kind.and_then(|kind| self.by_type.get(kind))
            .map_or("other", String::as_str)
    }

    /// The IntelMQ field of a top-level n6 field, if it has one.
    pub fn intelmq_field(&self, n6: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(key, _)| key == n6)
            .map(|(_, intelmq)| intelmq.as_str())
    }

    /// The IntelMQ field of an `address` item key.
    pub fn address_field(&self, key: &str) -> Option<&str> {
        self.address.get(key).map(String::as_str)
    }

    /// Whether an n6 key belongs to the pipeline only (not the API form).
    pub fn is_pipeline_only(&self, key: &str) -> bool {
        key.starts_with('_') || self.pipeline_only.iter().any(|k| k == key)
    }

    /// Checks an n6 field's value against n6's constraint for it: its own,
    /// none for free-form and pipeline-internal fields, else the rule for
    /// custom fields.
    pub fn check(&self, field: &str, value: &Value) -> Result<()> {
        match self.constraints.get(field) {
            Some(constraint) => constraint.check(field, value),
            None if self.is_pipeline_only(field) || self.free_form.iter().any(|f| f == field) => {
                Ok(())
            }
            None => self.custom.check(field, value),
        }
    }

    /// Checks a value against the constraint of `field` (such as
    /// `address.cc`), naming it `label()` (such as `address[1].cc`) on
    /// failure; the label is spelt out only then.
    pub fn check_as(
        &self,
        field: &str,
        label: impl FnOnce() -> String,
        value: &Value,
    ) -> Result<()> {
        let Some(constraint) = self.constraints.get(field) else {
            return Ok(());
        };
        constraint.check(field, value).map_err(|error| match error {
            Error::InvalidValue { value, reason, .. } => Error::InvalidValue {
                field: label(),
                value,
                reason,
            },
            other => other,
        })
    }

    /// Whether an n6 field holds a date and time (written in the API form).
    pub fn is_datetime(&self, field: &str) -> bool {
        self.constraints.get(field).is_some_and(|c| c.datetime)
    }

    /// The TLP level of an n6 restriction.
    pub fn tlp_of(&self, restriction: &str) -> Option<&str> {
        self.levels
            .restriction_to_tlp
            .get(restriction)
            .map(String::as_str)
    }

    /// The n6 restriction of a TLP level (the default without one).
    pub fn restriction_of(&self, tlp: Option<&str>) -> &str {
        tlp.and_then(|tlp| self.levels.tlp_to_restriction.get(tlp))
            .unwrap_or(&self.levels.default_restriction)
    }

    /// The `feed.accuracy` of an n6 confidence.
    pub fn accuracy_of(&self, confidence: &str) -> Option<f64> {
        self.levels.confidence_to_accuracy.get(confidence).copied()
    }

    /// The n6 confidence of a `feed.accuracy` (the default without one).
    pub fn confidence_of(&self, accuracy: Option<f64>) -> &str {
        let Some(accuracy) = accuracy else {
            return &self.levels.default_confidence;
        };
        self.levels
            .accuracy_to_confidence
            .iter()
            .find(|level| level.below.is_none_or(|below| accuracy < below))
            .map_or(&self.levels.default_confidence, |level| &level.confidence)
    }
}

impl Constraint {
    fn compile(name: &str, raw: RawConstraint) -> Result<Self> {
        let pattern = raw
            .pattern
            .map(|p| Regex::new(&p))
            .transpose()
            .map_err(|e| Error::Config(format!("n6 constraint {name}: {e}")))?;
        Ok(Constraint {
            values: raw.values,
            pattern,
            max_length: raw.max_length,
            integer: raw.integer,
            datetime: raw.datetime,
            ipv4: raw.ipv4,
            boolean: raw.boolean,
            list_of_objects: raw.list_of_objects,
            texts: raw.texts,
        })
    }

    fn check(&self, field: &str, value: &Value) -> Result<()> {
        if let (true, Some(items)) = (self.texts, value.as_array()) {
            return items.iter().try_for_each(|item| match item {
                Value::String(_) => self.check_text(field, item),
                _ => Err(Error::invalid(
                    field,
                    value,
                    "is not a text or a list of texts",
                )),
            });
        }
        self.check_text(field, value)
    }

    fn check_text(&self, field: &str, value: &Value) -> Result<()> {
        let fail = |reason: String| Err(Error::invalid(field, value, reason));
        if let Some((low, high)) = self.integer {
            return match value.as_i64() {
                Some(n) if (low..=high).contains(&n) => Ok(()),
                _ => fail(format!("is not an integer in {low}..{high}")),
            };
        }
        if self.boolean {
            return match value {
                Value::Bool(_) => Ok(()),
                _ => fail("is not true or false".into()),
            };
        }
        if self.list_of_objects {
            return match value.as_array() {
                Some(items) if items.iter().all(Value::is_object) => Ok(()),
                _ => fail("is not a list of objects".into()),
            };
        }
        let Some(text) = value.as_str() else {
            return fail("is not a string".into());
        };
        if let Some(values) = &self.values {
            if !values.iter().any(|v| v == text) {
                return fail(format!("is not one of n6's values ({})", values.join(", ")));
            }
        }
        if let Some(max) = self.max_length {
            if text.chars().count() > max {
                return fail(format!("is longer than {max} characters"));
            }
        }
        if let Some(pattern) = &self.pattern {
            if !pattern.is_match(text) {
                return fail(format!("does not match {}", pattern.as_str()));
            }
        }
        if self.datetime && parse_datetime(text).is_none() {
            return fail("is not a date and time".into());
        }
        if self.ipv4 && !is_n6_ipv4(text) {
            return fail("is not an IPv4 address other than 0.0.0.0".into());
        }
        Ok(())
    }
}

/// Whether `text` is an IPv4 address n6 accepts: dotted quad, not 0.0.0.0.
pub fn is_n6_ipv4(text: &str) -> bool {
    text.parse::<Ipv4Addr>()
        .is_ok_and(|ip| !ip.is_unspecified())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::harmonization::Harmonization;
    use serde_json::json;

    #[test]
    fn all_27_categories_have_valid_intelmq_3_values() {
        let tables = Tables::get();
        let classes = &Harmonization::intelmq().classification;
        assert_eq!(tables.categories().count(), 27);
        for (name, row) in tables.categories() {
            assert!(classes.is_taxonomy(&row.taxonomy), "{name}");
            assert!(classes.is_type(&row.kind), "{name}");
            assert_eq!(
                tables.category_of(
                    Some(&row.taxonomy),
                    Some(&row.kind),
                    Some(&row.identifier),
                    None
                ),
                name
            );
        }
    }

    #[test]
    fn every_intelmq_type_has_a_category() {
        let tables = Tables::get();
        for kind in ["brute-force", "ddos-amplifier", "c2-server", "weak-crypto"] {
            assert_ne!(tables.by_type.get(kind), None, "{kind}");
        }
        assert_eq!(
            tables.category_of(None, Some("no-such"), None, None),
            "other"
        );
        assert_eq!(
            tables.category_of(
                Some("malicious-code"),
                Some("infected-system"),
                Some("mirai"),
                Some("mirai")
            ),
            "bots"
        );
    }

    #[test]
    fn levels_follow_n6s_adapter() {
        let tables = Tables::get();
        assert_eq!(tables.confidence_of(Some(33.0)), "low");
        assert_eq!(tables.confidence_of(Some(66.0)), "medium");
        assert_eq!(tables.confidence_of(Some(67.0)), "high");
        assert_eq!(tables.confidence_of(None), "low");
        assert_eq!(tables.restriction_of(Some("GREEN")), "need-to-know");
        assert_eq!(tables.restriction_of(None), "need-to-know");
        assert_eq!(tables.tlp_of("internal"), Some("RED"));
    }

    #[test]
    fn constraints_name_field_and_value() {
        let tables = Tables::get();
        assert!(tables.check("dport", &json!(22)).is_ok());
        let error = tables.check("dport", &json!(70000)).unwrap_err();
        assert_eq!(
            error.to_string(),
            "dport: 70000 is not an integer in 0..65535"
        );
        assert!(tables.check("dip", &json!("0.0.0.0")).is_err());
        assert!(tables.check("adip", &json!("x.x.51.198")).is_ok());
        assert!(tables.check("time", &json!("2022-02-21 15:05:35")).is_ok());
        assert!(tables.check("origin", &json!("cloud")).is_err());
        // Custom fields: a text or a list of texts, at most 3000 characters.
        assert!(tables.check("user_agent", &json!("curl/8")).is_ok());
        assert!(tables.check("tags", &json!(["a", "b"])).is_ok());
        assert!(tables.check("tags", &json!([1])).is_err());
        assert!(tables.check("detail", &json!({"x": 1})).is_err());
        assert!(tables.check("detail", &json!("x".repeat(3001))).is_err());
        assert!(tables.check("product", &json!({"x": 1})).is_ok());
    }
}
