//! IDEA0, the event format of CESNET's Warden and Mentat.
//!
//! - Encoding follows IntelMQ's IDEA expert (IntelMQ 3.5), writing valid
//!   IDEA where the expert does not; the bridge's own `Node` comes first, as
//!   Warden requires of a sender; a complete split group becomes one message
//!   with several Source/Target entries, `ID` = the group id.
//! - Decoding maps every key IntelMQ can hold, splits multi-address messages
//!   into linked events (DESIGN.md), and keeps the rest in `extra.idea*`.
//! - Nothing is lost: what IDEA has no key for travels in the private
//!   `_intelmq` object, so IntelMQ → IDEA → IntelMQ is exact.
//!
//! The tables are in `mappings/idea/` ([`mapping`]); the choices are
//! documented in `mappings/idea/README.md`.

mod decode;
mod encode;
pub mod mapping;

use std::sync::LazyLock;

use serde_json::Value;

use super::{DecodeContext, EncodeContext, Format};
use crate::envelope::Envelope;
use crate::error::Result;
use crate::schema::Schema;

/// Name of this format.
pub const NAME: &str = "idea";
/// The private key that carries what IDEA has no key for.
pub const CARRY_KEY: &str = "_intelmq";
/// The IntelMQ field holding the top-level IDEA keys IntelMQ has no field for.
pub const EXTRA_TOP_KEY: &str = "extra.idea";
/// The IntelMQ fields holding the unmapped keys of an event's Source and
/// Target entry.
pub const EXTRA_SIDE_KEYS: [&str; 2] = ["extra.idea_source", "extra.idea_target"];

static SCHEMA: LazyLock<Schema> =
    LazyLock::new(|| Schema::embedded("IDEA0", include_str!("../../../schemas/idea0.schema.json")));

/// The IDEA0 format.
pub struct Idea;

impl Idea {
    /// The IDEA0 JSON Schema (`schemas/idea0.schema.json`), as Warden checks
    /// messages it receives.
    pub fn schema() -> &'static Schema {
        &SCHEMA
    }
}

impl Format for Idea {
    fn name(&self) -> &'static str {
        NAME
    }

    /// An object whose `Format` names an IDEA version.
    fn recognises(&self, message: &Value) -> bool {
        message
            .get("Format")
            .and_then(Value::as_str)
            .is_some_and(|format| format.starts_with("IDEA"))
    }

    fn decode(&self, message: Value, context: &DecodeContext) -> Result<Vec<Envelope>> {
        decode::decode(message, context)
    }

    fn encode(&self, events: &[Envelope], context: &EncodeContext) -> Result<Vec<Value>> {
        encode::encode(events, context)
    }

    /// The messages written straight from their pieces, without building
    /// them as [`Value`] trees first.
    fn encode_lines(
        &self,
        events: &[Envelope],
        context: &EncodeContext,
        out: &mut Vec<u8>,
    ) -> Result<usize> {
        encode::encode_lines(events, context, out)
    }

    fn merges_groups(&self) -> bool {
        true
    }

    /// The schema, as Warden checks, then everything decoding checks.
    fn validate(&self, message: &Value, context: &DecodeContext) -> Result<()> {
        Idea::schema().check(message)?;
        decode::decode(message.clone(), context).map(drop)
    }
}

/// Whether `text` is an IDEA id: letters, digits, `.`, `_` and `-` only.
pub fn is_idea_id(text: &str) -> bool {
    !text.is_empty()
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// The IDEA `Node.Name` (an NSID, as `idea.valid` accepts it: dotted labels
/// `[a-z_][a-z0-9_]*`) of an instance name: lower case, every other
/// character `_`, a label starting with a digit prefixed by `_`, empty
/// labels dropped.
pub fn node_name(origin: &str) -> String {
    // An instance name that is an NSID already, the usual case, is its own.
    if is_nsid(origin) {
        return origin.to_owned();
    }
    let labels: Vec<String> = origin
        .split('.')
        .filter(|label| !label.is_empty())
        .map(|label| {
            let mut clean: String = label
                .chars()
                .map(|c| match c.to_ascii_lowercase() {
                    c @ ('a'..='z' | '0'..='9' | '_') => c,
                    _ => '_',
                })
                .collect();
            if clean.starts_with(|c: char| c.is_ascii_digit()) {
                clean.insert(0, '_');
            }
            clean
        })
        .collect();
    if labels.is_empty() {
        "_".to_owned()
    } else {
        labels.join(".")
    }
}

/// Whether `name` is an NSID as [`node_name`] writes one: dotted labels
/// `[a-z_][a-z0-9_]*`, none empty.
fn is_nsid(name: &str) -> bool {
    name.split('.').all(|label| {
        label.starts_with(|c: char| c.is_ascii_lowercase() || c == '_')
            && label
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
    })
}

/// Percent-encodes what an IDEA URI may not contain after its scheme. For
/// a whole URL (`url`) the characters URIs allow stay; for a value after a
/// scheme, only unreserved characters do.
pub fn escape_uri(text: &str, url: bool) -> String {
    let mut escaped = String::with_capacity(text.len());
    push_escaped_uri(&mut escaped, text, url);
    escaped
}

/// `scheme:value`, the value percent-encoded as after a scheme
/// ([`escape_uri`]), built in one string.
pub fn scheme_uri(scheme: &str, value: &str) -> String {
    let mut uri = String::with_capacity(scheme.len() + 1 + value.len());
    uri.push_str(scheme);
    uri.push(':');
    push_escaped_uri(&mut uri, value, false);
    uri
}

/// Which bytes percent-encoding keeps as they are, after a scheme (`[0]`)
/// and in a URL (`[1]`): a table made at compile time, so that each byte
/// costs one look-up instead of a search of the URL characters.
const KEPT_IN_URI: [[bool; 256]; 2] = kept_in_uri();

const fn kept_in_uri() -> [[bool; 256]; 2] {
    const URI_CHARS: &[u8] = b"[]._~:/?#@*'&()+,;=%-";
    let mut kept = [[false; 256]; 2];
    let mut index = 0;
    while index < 256 {
        let byte = index as u8;
        let plain = byte.is_ascii_alphanumeric() || matches!(byte, b'.' | b'_' | b'~' | b'-');
        let mut url = plain;
        let mut at = 0;
        while at < URI_CHARS.len() {
            url |= URI_CHARS[at] == byte;
            at += 1;
        }
        kept[0][index] = plain;
        kept[1][index] = url;
        index += 1;
    }
    kept
}

/// Appends `text` percent-encoded as [`escape_uri`] says, copying the runs
/// of characters that stay as they are.
fn push_escaped_uri(out: &mut String, text: &str, url: bool) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let keep = &KEPT_IN_URI[usize::from(url)];
    let mut start = 0;
    for (at, byte) in text.bytes().enumerate() {
        if keep[usize::from(byte)] {
            continue;
        }
        // Kept bytes are ASCII, so a run of them begins and ends on
        // character boundaries; an empty run may not, and is nothing.
        out.push_str(text.get(start..at).unwrap_or_default());
        out.push('%');
        out.push(char::from(HEX[usize::from(byte >> 4)]));
        out.push(char::from(HEX[usize::from(byte & 0xF)]));
        start = at + 1;
    }
    out.push_str(text.get(start..).unwrap_or_default());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_schema_compiles_and_checks() {
        let schema = Idea::schema();
        let message = serde_json::json!({
            "Format": "IDEA0", "ID": "a-1", "DetectTime": "2026-01-01T00:00:00Z",
            "Category": ["Recon.Scanning"], "Ref": ["cve:CVE-2013-5634", "urn:x:[1]"],
            "Source": [{"IP4": ["192.0.2.1-192.0.2.9"], "Proto": ["tcp", "ssh"]}]
        });
        schema.check(&message).unwrap();
        let mut bad = message.clone();
        bad["Ref"] = serde_json::json!(["misp_event:1"]);
        assert!(schema.check(&bad).is_err());
        let mut bad = message;
        bad["Source"][0]["Proto"] = serde_json::json!(["t--x"]);
        assert!(schema.check(&bad).is_err());
    }

    #[test]
    fn node_names_are_valid_nsids() {
        assert_eq!(node_name("test-origin"), "test_origin");
        assert_eq!(node_name("CERT.Example-1.9x"), "cert.example_1._9x");
        assert_eq!(node_name(".."), "_");
        assert_eq!(node_name(""), "_");
        // A name that is an NSID already is kept as it is.
        for name in ["vm", "cert.example_1._9x", "_x.y2"] {
            assert!(is_nsid(name));
            assert_eq!(node_name(name), name);
        }
        for name in ["", "a..b", ".a", "a.", "9a", "a.1b", "A", "a-b", "é"] {
            assert!(!is_nsid(name));
        }
    }

    /// The table keeps exactly the unreserved characters, and in a URL
    /// also the characters a URL may hold.
    #[test]
    fn the_uri_table_keeps_what_the_rule_keeps() {
        let url_chars = b"[]._~:/?#@*'&()+,;=%-";
        for byte in 0..=u8::MAX {
            let plain = byte.is_ascii_alphanumeric() || b"._~-".contains(&byte);
            assert_eq!(KEPT_IN_URI[0][usize::from(byte)], plain, "{byte:#x}");
            let url = plain || url_chars.contains(&byte);
            assert_eq!(KEPT_IN_URI[1][usize::from(byte)], url, "{byte:#x}");
        }
    }

    #[test]
    fn uris_are_escaped() {
        assert_eq!(escape_uri("a b/c", false), "a%20b%2Fc");
        assert_eq!(escape_uri("http://x/a b?q=1", true), "http://x/a%20b?q=1");
        assert_eq!(escape_uri("é\u{1F600}x\"", false), "%C3%A9%F0%9F%98%80x%22");
        assert_eq!(scheme_uri("malid", "a b"), "malid:a%20b");
        // As each byte was escaped before: `%XX`, upper case.
        for text in [
            "",
            "plain",
            "a b/c?d",
            "ünï cödé",
            "[x]%41",
            "~.-_",
            "\u{7f}\u{0}",
        ] {
            for url in [false, true] {
                let mut expected = String::new();
                for byte in text.bytes() {
                    let keep = byte.is_ascii_alphanumeric()
                        || matches!(byte, b'.' | b'_' | b'~' | b'-')
                        || (url && b"[]._~:/?#@*'&()+,;=%-".contains(&byte));
                    if keep {
                        expected.push(char::from(byte));
                    } else {
                        expected.push_str(&format!("%{byte:02X}"));
                    }
                }
                assert_eq!(escape_uri(text, url), expected, "{text}");
            }
        }
    }

    #[test]
    fn ids_follow_the_idea_rule() {
        assert!(is_idea_id("4390fc3f-c753-4a3e.x_1"));
        assert!(!is_idea_id("n6:abc"));
        assert!(!is_idea_id(""));
    }
}
