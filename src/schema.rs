//! JSON Schemas shipped in `schemas/`, compiled once, for checking the
//! shape of envelopes and native messages before the field rules run.

use std::sync::LazyLock;

use serde_json::Value;

use crate::error::{Error, Result};

/// A compiled JSON Schema with the name used in its error messages.
pub struct Schema {
    name: &'static str,
    validator: jsonschema::Validator,
}

static ENVELOPE: LazyLock<Schema> =
    LazyLock::new(|| Schema::embedded("envelope", include_str!("../schemas/envelope.schema.json")));

impl Schema {
    /// The schema of the envelope in both wire forms.
    pub fn envelope() -> &'static Schema {
        &ENVELOPE
    }

    /// Compiles a schema from its JSON text.
    pub fn compile(name: &'static str, text: &str) -> Result<Self> {
        let schema: Value =
            serde_json::from_str(text).map_err(|e| Error::Config(format!("schema {name}: {e}")))?;
        let validator = jsonschema::validator_for(&schema)
            .map_err(|e| Error::Config(format!("schema {name}: {e}")))?;
        Ok(Schema { name, validator })
    }

    /// Compiles a schema that is part of the binary. The embedded schemas
    /// are covered by tests, so a failure is a build defect, not bad input.
    pub fn embedded(name: &'static str, text: &str) -> Self {
        Schema::compile(name, text).unwrap_or_else(|error| panic!("{error}"))
    }

    /// Checks `value`, naming the first place that breaks the schema.
    pub fn check(&self, value: &Value) -> Result<()> {
        let Some(error) = self.validator.iter_errors(value).next() else {
            return Ok(());
        };
        let path = error.instance_path().to_string();
        let path = if path.is_empty() {
            "/".to_owned()
        } else {
            path
        };
        Err(Error::shape(format!(
            "{} schema: at {path}: {}",
            self.name,
            error.masked()
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn envelope_schema_accepts_both_wire_forms() {
        let schema = Schema::envelope();
        let iep04 = json!({
            "meta": {
                "version": 1, "type": "event", "format": "intelmq",
                "uuid": {"origin": "a", "id": "0192f3a4-5b6c-7d8e-9f00-112233445566"},
                "x-any": 1
            },
            "payload": {"source.ip": "192.0.2.1"}
        });
        schema.check(&iep04).unwrap();
        let ail = json!({
            "format": "intelmq", "version": 1, "type": "event",
            "meta": {"uuid": "0192f3a4-5b6c-7d8e-9f00-112233445566"},
            "payload": {"raw": "aGVsbG8="}
        });
        schema.check(&ail).unwrap();
    }

    #[test]
    fn envelope_schema_rejects_bad_meta() {
        let bad = json!({
            "meta": {
                "version": 1, "type": "alert", "format": "intelmq",
                "uuid": {"origin": "a", "id": "0192f3a4-5b6c-7d8e-9f00-112233445566"}
            },
            "payload": {"Source.IP": "192.0.2.1"}
        });
        let error = Schema::envelope().check(&bad).unwrap_err().to_string();
        assert!(error.starts_with("envelope schema: at /"), "{error}");
    }
}
