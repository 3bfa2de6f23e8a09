//! One crate-wide error type, so every failure names the record, the field
//! and the value that caused it.

use serde_json::Value;

/// Longest value text quoted in an error message; longer values are cut so a
/// hostile record cannot flood a log line.
const MAX_QUOTED: usize = 120;

/// Everything that can go wrong while decoding, checking or encoding a record.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A field holds a value its harmonization type rejects.
    #[error("{field}: {value} {reason}")]
    InvalidValue {
        /// The dotted field name, e.g. `source.ip`.
        field: String,
        /// The offending value, as (possibly shortened) JSON text.
        value: String,
        /// Why it was rejected, phrased to follow the value.
        reason: String,
    },
    /// A field that IntelMQ's harmonization does not know.
    #[error("{field}: unknown field, not in IntelMQ's harmonization")]
    UnknownField {
        /// The key as it arrived.
        field: String,
    },
    /// A required field or key is absent.
    #[error("{field}: missing")]
    Missing {
        /// The key that should have been there.
        field: String,
    },
    /// The message is JSON but not shaped as the format demands.
    #[error("{0}")]
    Shape(String),
    /// The record is not JSON at all.
    #[error("not JSON: {0}")]
    Json(#[from] serde_json::Error),
    /// Reading input or writing output failed.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// The seen-store (file or Redis) failed.
    #[error("seen-store: {0}")]
    Store(String),
    /// A broker or network transport failed (the message is retried).
    #[error("transport: {0}")]
    Transport(String),
    /// A schema or mapping file shipped with the bridge is broken.
    #[error("configuration: {0}")]
    Config(String),
}

/// Result with the crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// A value rejected for `field`, quoting the value as JSON.
    pub fn invalid(field: &str, value: &Value, reason: impl Into<String>) -> Self {
        Error::InvalidValue {
            field: field.to_owned(),
            value: quote(value),
            reason: reason.into(),
        }
    }

    /// A message whose structure is wrong, described in words.
    pub fn shape(message: impl Into<String>) -> Self {
        Error::Shape(message.into())
    }
}

/// JSON text of `value`, shortened to [`MAX_QUOTED`] characters.
pub fn quote(value: &Value) -> String {
    let text = value.to_string();
    if text.chars().count() <= MAX_QUOTED {
        return text;
    }
    let mut short: String = text.chars().take(MAX_QUOTED).collect();
    short.push_str("...");
    short
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn invalid_value_names_field_and_value() {
        let error = Error::invalid("source.ip", &json!("999.1.1.1"), "is not an IP address");
        assert_eq!(
            error.to_string(),
            r#"source.ip: "999.1.1.1" is not an IP address"#
        );
    }

    #[test]
    fn long_values_are_shortened() {
        let long = Value::String("a".repeat(1000));
        let quoted = quote(&long);
        assert_eq!(quoted.chars().count(), MAX_QUOTED + 3);
        assert!(quoted.ends_with("..."));
    }
}
