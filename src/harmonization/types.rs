//! The harmonization types: one validity check and one sanitation per type,
//! following `intelmq/lib/harmonization.py` (IntelMQ 3.5).
//!
//! Where IntelMQ accepts text that is not canonical (upper-case IPv6, an
//! address given as a network), the bridge writes the canonical form, which
//! IntelMQ also accepts; where IntelMQ would silently truncate (`int(443.5)`)
//! or crash (non-base64 `raw`), the bridge rejects.

use std::net::IpAddr;

use ipnet::IpNet;
use serde::Deserialize;
use serde_json::{Number, Value};

use super::datetime::{is_canonical_datetime, parse_datetime};
use super::Classification;

/// The types of IntelMQ's `harmonization.conf`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum FieldType {
    /// Any non-empty string.
    String,
    /// A non-empty string without upper-case letters.
    LowercaseString,
    /// A non-empty string without lower-case letters.
    UppercaseString,
    /// One IPv4 or IPv6 address, not `0.0.0.0`.
    #[serde(rename = "IPAddress")]
    IpAddress,
    /// An IPv4 or IPv6 network without host bits.
    #[serde(rename = "IPNetwork")]
    IpNetwork,
    /// A lower-case domain name without trailing dot.
    #[serde(rename = "FQDN")]
    Fqdn,
    /// A URI with a network location.
    #[serde(rename = "URL")]
    Url,
    /// `YYYY-MM-DDTHH:MM:SS[.ffffff]+00:00`.
    DateTime,
    /// A JSON integer.
    Integer,
    /// A JSON number.
    Float,
    /// A JSON boolean.
    Boolean,
    /// An autonomous system number, 1 to 4294967295.
    #[serde(rename = "ASN")]
    Asn,
    /// A number from 0 to 100.
    Accuracy,
    /// Base64 text (`raw`).
    Base64,
    /// A string holding JSON (`output`).
    #[serde(rename = "JSON")]
    Json,
    /// A JSON object whose keys become sub-fields (`extra.*`).
    #[serde(rename = "JSONDict")]
    JsonDict,
    /// One of IntelMQ's taxonomies.
    ClassificationTaxonomy,
    /// One of IntelMQ's classification types.
    ClassificationType,
    /// A regional internet registry.
    Registry,
    /// A Traffic Light Protocol level.
    #[serde(rename = "TLP")]
    Tlp,
}

const REGISTRIES: [&str; 5] = ["AFRINIC", "APNIC", "ARIN", "LACNIC", "RIPE"];
const TLP_LEVELS: [&str; 4] = ["WHITE", "GREEN", "AMBER", "RED"];

impl FieldType {
    /// Whether `value` is valid exactly as it is.
    pub fn is_valid(self, value: &Value, classes: &Classification) -> bool {
        match self {
            FieldType::String => non_empty_str(value).is_some(),
            FieldType::LowercaseString => {
                non_empty_str(value).is_some_and(|s| !s.chars().any(char::is_uppercase))
            }
            FieldType::UppercaseString => {
                non_empty_str(value).is_some_and(|s| !s.chars().any(char::is_lowercase))
            }
            FieldType::IpAddress => non_empty_str(value).is_some_and(is_canonical_ip),
            FieldType::IpNetwork => non_empty_str(value).is_some_and(is_canonical_network),
            FieldType::Fqdn => non_empty_str(value).is_some_and(is_fqdn),
            FieldType::Url => non_empty_str(value).is_some_and(is_url),
            FieldType::DateTime => non_empty_str(value).is_some_and(is_canonical_datetime),
            FieldType::Integer => value.is_i64() || value.is_u64(),
            FieldType::Float => value.is_number(),
            FieldType::Boolean => value.is_boolean(),
            FieldType::Asn => value.as_u64().is_some_and(is_asn),
            FieldType::Accuracy => value.as_f64().is_some_and(is_accuracy),
            FieldType::Base64 => non_empty_str(value).is_some_and(is_base64),
            FieldType::Json => value
                .as_str()
                .is_some_and(|s| serde_json::from_str::<serde::de::IgnoredAny>(s).is_ok()),
            FieldType::JsonDict => value.as_object().is_some_and(|map| !map.is_empty()),
            FieldType::ClassificationTaxonomy => {
                value.as_str().is_some_and(|s| classes.is_taxonomy(s))
            }
            FieldType::ClassificationType => value.as_str().is_some_and(|s| classes.is_type(s)),
            FieldType::Registry => value.as_str().is_some_and(|s| REGISTRIES.contains(&s)),
            FieldType::Tlp => value.as_str().is_some_and(|s| TLP_LEVELS.contains(&s)),
        }
    }

    /// IntelMQ's normalisation of `value`, or `None` when nothing sensible can
    /// be made of it. The result still has to pass [`FieldType::is_valid`].
    pub fn sanitize(self, value: &Value, classes: &Classification) -> Option<Value> {
        let text = |f: fn(&str) -> Option<String>| value.as_str().and_then(|s| f(s.trim()));
        let string = |s: String| Some(Value::String(s));
        match self {
            FieldType::String => match value {
                Value::String(s) => string(s.trim().to_owned()),
                Value::Number(n) => string(n.to_string()),
                _ => None,
            },
            FieldType::LowercaseString => string(value.as_str()?.trim().to_lowercase()),
            FieldType::UppercaseString => string(value.as_str()?.trim().to_uppercase()),
            FieldType::IpAddress => match value {
                Value::Number(n) => ip_from_integer(n).map(|ip| Value::String(ip.to_string())),
                Value::String(_) => text(sanitize_ip).map(Value::String),
                _ => None,
            },
            FieldType::IpNetwork => text(sanitize_network).map(Value::String),
            FieldType::Fqdn => text(sanitize_fqdn).map(Value::String),
            FieldType::Url => text(sanitize_url).map(Value::String),
            FieldType::DateTime => {
                text(|s| parse_datetime(s).map(|t| super::datetime::format(&t))).map(Value::String)
            }
            FieldType::Integer => to_integer(value).map(Value::from),
            FieldType::Float => to_float(value).and_then(float_value),
            FieldType::Boolean => match value {
                Value::String(s) => match s.trim().to_ascii_lowercase().as_str() {
                    "true" => Some(Value::Bool(true)),
                    "false" => Some(Value::Bool(false)),
                    _ => None,
                },
                Value::Number(n) => match n.as_u64() {
                    Some(0) => Some(Value::Bool(false)),
                    Some(1) => Some(Value::Bool(true)),
                    _ => None,
                },
                _ => None,
            },
            FieldType::Asn => {
                let number = match value {
                    Value::String(s) => {
                        let s = s.trim();
                        let digits = match s.get(..2) {
                            Some(prefix) if prefix.eq_ignore_ascii_case("as") => &s[2..],
                            _ => s,
                        };
                        digits.trim().parse::<u64>().ok()
                    }
                    other => to_integer(other).and_then(|n| u64::try_from(n).ok()),
                };
                number.filter(|n| is_asn(*n)).map(Value::from)
            }
            FieldType::Accuracy => match value {
                Value::Bool(true) => float_value(100.0),
                Value::Bool(false) => float_value(0.0),
                other => to_float(other)
                    .filter(|n| is_accuracy(*n))
                    .and_then(float_value),
            },
            FieldType::Base64 => None,
            FieldType::Json => match value {
                Value::String(s) => string(s.trim().to_owned()),
                other => string(other.to_string()),
            },
            FieldType::JsonDict => match value {
                Value::String(s) => serde_json::from_str(s.trim()).ok(),
                _ => None,
            },
            FieldType::ClassificationTaxonomy => {
                let name = value.as_str()?.trim().to_lowercase();
                let name = classes
                    .taxonomy_alias(&name)
                    .map(str::to_owned)
                    .unwrap_or(name);
                string(name)
            }
            FieldType::ClassificationType => {
                let name = value.as_str()?.trim().to_lowercase();
                let name = classes.type_alias(&name).map(str::to_owned).unwrap_or(name);
                string(name)
            }
            FieldType::Registry => {
                let name = value.as_str()?.trim().to_uppercase();
                match name.as_str() {
                    "RIPENCC" | "RIPE-NCC" => string("RIPE".to_owned()),
                    _ => string(name),
                }
            }
            FieldType::Tlp => {
                let name = value.as_str()?.trim().to_uppercase();
                let level = name.strip_prefix("TLP").unwrap_or(&name);
                let level = level.strip_prefix(':').unwrap_or(level).trim_start();
                match level {
                    "YELLOW" => string("AMBER".to_owned()),
                    other => string(other.to_owned()),
                }
            }
        }
    }

    /// What a valid value looks like, phrased to follow the rejected value.
    pub fn expectation(self) -> &'static str {
        match self {
            FieldType::String => "is not a non-empty string",
            FieldType::LowercaseString => "is not a lower-case string",
            FieldType::UppercaseString => "is not an upper-case string",
            FieldType::IpAddress => "is not an IP address",
            FieldType::IpNetwork => "is not an IP network",
            FieldType::Fqdn => "is not a domain name (FQDN)",
            FieldType::Url => "is not a URL with a host",
            FieldType::DateTime => "is not a date and time",
            FieldType::Integer => "is not an integer",
            FieldType::Float => "is not a number",
            FieldType::Boolean => "is not a boolean",
            FieldType::Asn => "is not an AS number (1 to 4294967295)",
            FieldType::Accuracy => "is not an accuracy (0 to 100)",
            FieldType::Base64 => "is not base64",
            FieldType::Json => "is not a JSON string",
            FieldType::JsonDict => "is not a non-empty JSON object",
            FieldType::ClassificationTaxonomy => "is not an IntelMQ taxonomy",
            FieldType::ClassificationType => "is not an IntelMQ classification type",
            FieldType::Registry => "is not a registry (AFRINIC, APNIC, ARIN, LACNIC, RIPE)",
            FieldType::Tlp => "is not a TLP level (WHITE, GREEN, AMBER, RED)",
        }
    }
}

fn non_empty_str(value: &Value) -> Option<&str> {
    value.as_str().filter(|s| !s.is_empty())
}

fn is_asn(number: u64) -> bool {
    (1..=4_294_967_295).contains(&number)
}

fn is_accuracy(number: f64) -> bool {
    (0.0..=100.0).contains(&number)
}

fn float_value(number: f64) -> Option<Value> {
    Number::from_f64(number).map(Value::Number)
}

/// Python's `int()` on a JSON value, except that fractions are refused
/// rather than truncated.
fn to_integer(value: &Value) -> Option<i64> {
    match value {
        Value::Number(n) => n.as_i64().or_else(|| {
            let f = n.as_f64()?;
            (f.fract() == 0.0 && f.abs() < 9.0e15).then_some(f as i64)
        }),
        Value::String(s) => s.trim().replace('_', "").parse().ok(),
        _ => None,
    }
}

/// Python's `float()` on a JSON value, finite numbers only.
fn to_float(value: &Value) -> Option<f64> {
    let number = match value {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }?;
    number.is_finite().then_some(number)
}

fn parse_ip(text: &str) -> Option<IpAddr> {
    let ip: IpAddr = text.parse().ok()?;
    (!ip.is_unspecified() || ip.is_ipv6()).then_some(ip)
}

fn is_canonical_ip(text: &str) -> bool {
    match parse_ip(text) {
        // The IPv4 parser takes dotted decimal without leading zeros only,
        // which is exactly how an address prints, so it need not print.
        Some(IpAddr::V4(_)) => true,
        Some(ip) => ip.to_string() == text,
        None => false,
    }
}

fn ip_from_integer(number: &Number) -> Option<IpAddr> {
    let n = number.as_u64()?;
    let ip = match u32::try_from(n) {
        Ok(v4) => IpAddr::from(std::net::Ipv4Addr::from(v4)),
        Err(_) => IpAddr::from(std::net::Ipv6Addr::from(u128::from(n))),
    };
    (!ip.is_unspecified()).then_some(ip)
}

/// IntelMQ's IP sanitation: integers, a `%scope` suffix and a one-address
/// network (`/32`, `/128`) are turned into the plain canonical address.
fn sanitize_ip(text: &str) -> Option<String> {
    if let Ok(n) = text.parse::<u64>() {
        return ip_from_integer(&Number::from(n)).map(|ip| ip.to_string());
    }
    let text = text.split('%').next().unwrap_or(text);
    let ip = match text.split_once('/') {
        Some(_) => {
            let net: IpNet = text.parse().ok()?;
            (net.trunc() == net && net.prefix_len() == net.max_prefix_len())
                .then_some(net.addr())?
        }
        None => text.parse().ok()?,
    };
    parse_ip(&ip.to_string()).map(|ip| ip.to_string())
}

fn is_canonical_network(text: &str) -> bool {
    text.parse::<IpNet>()
        .is_ok_and(|net| net.trunc() == net && net.to_string() == text)
}

/// Host bits dropped (`strict=False`); a lone address becomes a one-address network.
fn sanitize_network(text: &str) -> Option<String> {
    let net = match text.parse::<IpNet>() {
        Ok(net) => net,
        Err(_) => IpNet::from(text.parse::<IpAddr>().ok()?),
    };
    Some(net.trunc().to_string())
}

/// IntelMQ's FQDN rule: lower case, no leading or trailing dot, no `:` or URL
/// parts, not an IP address, and stable under IDNA encoding (so ASCII,
/// labels of 1 to 63 characters). The bridge also refuses white space.
///
/// Every host name of every event passes here, so the bytes are checked by
/// folds the compiler can run on many bytes at once. Empty labels cover the
/// leading and trailing dot; and as `:` is refused, only digits and dots can
/// still spell an (IPv4) address, so only such text is parsed.
pub(crate) fn is_fqdn(text: &str) -> bool {
    let bytes = text.as_bytes();
    let allowed = bytes
        .iter()
        .fold(true, |all, byte| all & is_fqdn_byte(*byte));
    let only_digits_and_dots = bytes.iter().fold(true, |all, byte| {
        all & (byte.is_ascii_digit() | (*byte == b'.'))
    });
    allowed
        && bytes
            .split(|byte| *byte == b'.')
            .all(|label| (1..=63).contains(&label.len()))
        && !(only_digits_and_dots && text.parse::<IpAddr>().is_ok())
}

/// Whether `byte` may appear in an FQDN: printable ASCII other than space,
/// upper-case letters and the URL delimiters `/`, `:`, `?` and `#`.
fn is_fqdn_byte(byte: u8) -> bool {
    matches!(byte, b'!'..=b'~')
        && !byte.is_ascii_uppercase()
        && !matches!(byte, b'/' | b':' | b'?' | b'#')
}

fn sanitize_fqdn(text: &str) -> Option<String> {
    let text = text.trim_matches('.');
    if text.is_ascii() {
        Some(text.to_ascii_lowercase())
    } else {
        idna::domain_to_ascii(text).ok()
    }
}

/// What follows `scheme://` (or a leading `//`) in `text`, where Python's
/// `urlsplit` finds the network location; `None` without the `//`.
fn after_authority_slashes(text: &str) -> Option<&str> {
    let bytes = text.as_bytes();
    let rest = match bytes.iter().position(|b| *b == b':') {
        Some(colon)
            if bytes[0].is_ascii_alphabetic()
                && bytes[..colon]
                    .iter()
                    .all(|b| b.is_ascii_alphanumeric() || b"+-.".contains(b)) =>
        {
            &text[colon + 1..]
        }
        _ => text,
    };
    rest.strip_prefix("//")
}

/// Whether `byte` ends a network location (`/`, `?` or `#`).
fn ends_netloc(byte: u8) -> bool {
    matches!(byte, b'/' | b'?' | b'#')
}

/// Python's `urlsplit(text).netloc`: the part after `scheme://` (or a
/// leading `//`) up to the first `/`, `?` or `#`.
fn netloc(text: &str) -> &str {
    let Some(after) = after_authority_slashes(text) else {
        return "";
    };
    let end = after.bytes().position(ends_netloc).unwrap_or(after.len());
    &after[..end]
}

/// IntelMQ's URL rule: a network location that is not empty, which is
/// already known once the byte after the `//` is neither end nor missing.
pub(crate) fn is_url(text: &str) -> bool {
    !text.starts_with(|c: char| c.is_whitespace())
        && after_authority_slashes(text)
            .and_then(|after| after.bytes().next())
            .is_some_and(|byte| !ends_netloc(byte))
}

fn sanitize_url(text: &str) -> Option<String> {
    let text = text
        .replace("hxxp://", "http://")
        .replace("hxxps://", "https://");
    if let Some(path) = text.strip_prefix("file:") {
        if netloc(&text).is_empty() {
            let path = path.strip_prefix("//").unwrap_or(path);
            return Some(format!("file://localhost{path}"));
        }
    }
    Some(text)
}

/// Whether the `base64` crate's `STANDARD` engine would decode `text`
/// (standard alphabet, canonical `=` padding, no bits left over), checked
/// without decoding into a buffer: `raw` is the longest value of an event.
fn is_base64(text: &str) -> bool {
    let bytes = text.as_bytes();
    if bytes.len() % 4 != 0 {
        return false;
    }
    let symbols = bytes
        .strip_suffix(b"==")
        .or_else(|| bytes.strip_suffix(b"="))
        .unwrap_or(bytes);
    // Folding without stopping early lets the compiler test many bytes at once.
    let in_alphabet = symbols
        .iter()
        .fold(true, |all, byte| all & is_base64_symbol(*byte));
    // The last symbol before padding carries bits no byte uses (4 of them
    // before `==`, 2 before `=`); canonical base64 leaves them zero.
    let unused_bits = match bytes.len() - symbols.len() {
        2 => 0b1111,
        1 => 0b11,
        _ => 0,
    };
    in_alphabet
        && symbols
            .last()
            .is_none_or(|last| base64_symbol_value(*last) & unused_bits == 0)
}

/// Whether `byte` is one of the standard base64 alphabet's 64 symbols.
fn is_base64_symbol(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || byte == b'+' || byte == b'/'
}

/// The 6 bits a standard base64 symbol stands for (`/` for anything else).
fn base64_symbol_value(symbol: u8) -> u8 {
    match symbol {
        b'A'..=b'Z' => symbol - b'A',
        b'a'..=b'z' => symbol - b'a' + 26,
        b'0'..=b'9' => symbol - b'0' + 52,
        b'+' => 62,
        _ => 63,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::harmonization::Harmonization;
    use serde_json::json;

    /// What IntelMQ's lenient add keeps for `value` (as-is, else sanitised).
    fn accept(kind: FieldType, value: Value) -> Option<Value> {
        let classes = &Harmonization::intelmq().classification;
        if kind.is_valid(&value, classes) {
            return Some(value);
        }
        kind.sanitize(&value, classes)
            .filter(|v| kind.is_valid(v, classes))
    }

    fn check(kind: FieldType, cases: &[(Value, Option<Value>)]) {
        for (input, expected) in cases {
            assert_eq!(
                &accept(kind, input.clone()),
                expected,
                "{kind:?} on {input}"
            );
        }
    }

    #[test]
    fn string() {
        check(
            FieldType::String,
            &[
                (json!("Shadowserver"), Some(json!("Shadowserver"))),
                (json!("  padded "), Some(json!("  padded "))),
                (json!(42), Some(json!("42"))),
                (json!(""), None),
                (json!(true), None),
                (json!(["a"]), None),
            ],
        );
    }

    #[test]
    fn lower_and_upper_case_strings() {
        check(
            FieldType::LowercaseString,
            &[
                (json!("emotet"), Some(json!("emotet"))),
                (json!(" Emotet "), Some(json!("emotet"))),
                (json!(5), None),
            ],
        );
        check(
            FieldType::UppercaseString,
            &[
                (json!("AT"), Some(json!("AT"))),
                (json!("at "), Some(json!("AT"))),
                (json!(null), None),
            ],
        );
    }

    #[test]
    fn ip_address() {
        check(
            FieldType::IpAddress,
            &[
                (json!("192.0.2.1"), Some(json!("192.0.2.1"))),
                (json!("2001:DB8::1"), Some(json!("2001:db8::1"))),
                (json!("2001:0db8:0000::0001"), Some(json!("2001:db8::1"))),
                (json!(" 192.0.2.1 "), Some(json!("192.0.2.1"))),
                (json!("192.0.2.1/32"), Some(json!("192.0.2.1"))),
                (json!("fe80::1%eth0"), Some(json!("fe80::1"))),
                (json!(3221225985_u64), Some(json!("192.0.2.1"))),
                (json!("3221225985"), Some(json!("192.0.2.1"))),
                (json!("999.1.1.1"), None),
                (json!("0.0.0.0"), None),
                (json!("192.0.2.0/24"), None),
                (json!("192.0.2.1/24"), None),
                (json!("010.1.1.1"), None),
                (json!("example.com"), None),
                (json!(false), None),
            ],
        );
    }

    #[test]
    fn ip_network() {
        check(
            FieldType::IpNetwork,
            &[
                (json!("192.0.2.0/24"), Some(json!("192.0.2.0/24"))),
                (json!("192.0.2.77/24"), Some(json!("192.0.2.0/24"))),
                (json!("2001:DB8::/32"), Some(json!("2001:db8::/32"))),
                (json!("192.0.2.1"), Some(json!("192.0.2.1/32"))),
                (json!("192.0.2.0/33"), None),
                (json!("not a net"), None),
            ],
        );
    }

    #[test]
    fn fqdn() {
        check(
            FieldType::Fqdn,
            &[
                (json!("example.com"), Some(json!("example.com"))),
                (json!("Example.COM."), Some(json!("example.com"))),
                (
                    json!("xn--bcher-kva.example"),
                    Some(json!("xn--bcher-kva.example")),
                ),
                (
                    json!("bücher.example"),
                    Some(json!("xn--bcher-kva.example")),
                ),
                (json!("example.com:8080"), None),
                (json!("192.0.2.1"), None),
                (json!("http://example.com"), None),
                (json!("a..example"), None),
                (json!("exa mple.com"), None),
                (json!(format!("{}.example", "a".repeat(64))), None),
            ],
        );
    }

    #[test]
    fn url() {
        check(
            FieldType::Url,
            &[
                (
                    json!("http://example.com/a?b#c"),
                    Some(json!("http://example.com/a?b#c")),
                ),
                // Valid as it is, so IntelMQ keeps it; sanitation only runs on invalid values.
                (
                    json!("hxxps://example.com/x"),
                    Some(json!("hxxps://example.com/x")),
                ),
                (
                    json!(" hxxps://example.com/x"),
                    Some(json!("https://example.com/x")),
                ),
                (
                    json!("file:///etc/passwd"),
                    Some(json!("file://localhost/etc/passwd")),
                ),
                (json!("//example.com/x"), Some(json!("//example.com/x"))),
                (
                    json!(" http://example.com/"),
                    Some(json!("http://example.com/")),
                ),
                (json!("example.com/path"), None),
                (json!("http:///path"), None),
                (json!("mailto:abuse@example.com"), None),
            ],
        );
    }

    #[test]
    fn date_time() {
        check(
            FieldType::DateTime,
            &[
                (
                    json!("2026-01-01T10:00:00+00:00"),
                    Some(json!("2026-01-01T10:00:00+00:00")),
                ),
                (
                    json!("2026-01-01T10:00:00.5+00:00"),
                    Some(json!("2026-01-01T10:00:00.5+00:00")),
                ),
                (
                    json!("2026-01-01T10:00:00Z"),
                    Some(json!("2026-01-01T10:00:00+00:00")),
                ),
                (
                    json!("2026-01-01 10:00:00"),
                    Some(json!("2026-01-01T10:00:00+00:00")),
                ),
                (
                    json!("2026-01-01t12:00:00.250+02:00"),
                    Some(json!("2026-01-01T10:00:00.250000+00:00")),
                ),
                (
                    json!("2026-01-01"),
                    Some(json!("2026-01-01T00:00:00+00:00")),
                ),
                (json!("yesterday"), None),
                (json!("2026-02-30T00:00:00+00:00"), None),
                (json!(1700000000), None),
            ],
        );
    }

    #[test]
    fn numbers() {
        check(
            FieldType::Integer,
            &[
                (json!(443), Some(json!(443))),
                (json!("443"), Some(json!(443))),
                (json!(443.0), Some(json!(443))),
                (json!(443.5), None),
                (json!(true), None),
                (json!("http"), None),
            ],
        );
        check(
            FieldType::Float,
            &[
                (json!(48.2), Some(json!(48.2))),
                (json!(48), Some(json!(48))),
                (json!("16.37"), Some(json!(16.37))),
                (json!("nan"), None),
                (json!(true), None),
            ],
        );
        check(
            FieldType::Accuracy,
            &[
                (json!(50), Some(json!(50))),
                (json!("75.5"), Some(json!(75.5))),
                (json!(true), Some(json!(100.0))),
                (json!(150), None),
                (json!(-1), None),
            ],
        );
        check(
            FieldType::Asn,
            &[
                (json!(64496), Some(json!(64496))),
                (json!("AS64496"), Some(json!(64496))),
                (json!("as 64496"), Some(json!(64496))),
                (json!(0), None),
                (json!(4294967296_u64), None),
                (json!("ASX"), None),
            ],
        );
    }

    #[test]
    fn boolean() {
        check(
            FieldType::Boolean,
            &[
                (json!(true), Some(json!(true))),
                (json!(" False"), Some(json!(false))),
                (json!(1), Some(json!(true))),
                (json!(2), None),
                (json!("yes"), None),
            ],
        );
    }

    #[test]
    fn base64_and_json() {
        check(
            FieldType::Base64,
            &[
                (json!("aGVsbG8="), Some(json!("aGVsbG8="))),
                (json!("not base64!"), None),
                (json!("aGVsbG8"), None),
            ],
        );
        check(
            FieldType::Json,
            &[
                (json!("{\"a\": 1}"), Some(json!("{\"a\": 1}"))),
                (json!({"a": 1}), Some(json!("{\"a\":1}"))),
                (json!("{broken"), None),
            ],
        );
        check(
            FieldType::JsonDict,
            &[
                (json!({"a": 1}), Some(json!({"a": 1}))),
                (json!("{\"a\": 1}"), Some(json!({"a": 1}))),
                (json!({}), None),
                (json!("[1]"), None),
            ],
        );
    }

    /// Every string of up to `max_length` symbols drawn from `symbols`.
    fn all_strings(symbols: &[&str], max_length: usize) -> Vec<String> {
        let mut all = vec![String::new()];
        let mut last = vec![String::new()];
        for _ in 0..max_length {
            last = last
                .iter()
                .flat_map(|start| symbols.iter().map(move |symbol| format!("{start}{symbol}")))
                .collect();
            all.extend(last.iter().cloned());
        }
        all
    }

    #[test]
    fn base64_check_agrees_with_the_base64_crate() {
        use base64::Engine as _;
        let decodes = |text: &str| {
            base64::engine::general_purpose::STANDARD
                .decode(text)
                .is_ok()
        };
        // Symbols with all, some and none of the low bits set, padding,
        // and bytes outside the alphabet.
        let wide = ["A", "B", "E", "Q", "/", "=", " ", "é"];
        let long = ["A", "B", "E", "=", "\n"];
        let mut cases = all_strings(&wide, 6);
        cases.extend(all_strings(&long, 8));
        for length in 0..40_u8 {
            let bytes: Vec<u8> = (0..length).map(|at| at.wrapping_mul(97) ^ 0x5a).collect();
            let encoded = base64::engine::general_purpose::STANDARD.encode(&bytes);
            cases.push(format!("{encoded}\n"));
            cases.push(format!("{encoded}="));
            cases.push(encoded.replace('=', ""));
            cases.push(encoded);
        }
        for text in &cases {
            assert_eq!(is_base64(text), decodes(text), "{text:?}");
        }
    }

    #[test]
    fn fqdn_check_keeps_the_rule() {
        let by_rule = |text: &str| {
            text.is_ascii()
                && !text.starts_with('.')
                && !text.ends_with('.')
                && !text.bytes().any(|b| {
                    b.is_ascii_uppercase()
                        || b.is_ascii_whitespace()
                        || b.is_ascii_control()
                        || b"/:?#".contains(&b)
                })
                && text.parse::<IpAddr>().is_err()
                && text.split('.').all(|label| (1..=63).contains(&label.len()))
        };
        let symbols = ["a", "1", "0", ".", "-", "A", ":", " ", "é", "255", "1.2.3"];
        let mut cases = all_strings(&symbols, 4);
        cases.extend((0..=0x80_u8).map(|byte| format!("a{}b.c", char::from(byte))));
        let label = "a".repeat(63);
        cases.extend([
            format!("{label}.example"),
            format!("{label}a.example"),
            format!("example.{label}"),
            format!("example.{label}a"),
            "::1".to_owned(),
            "1.2.3.4".to_owned(),
            "1.2.3.4.5".to_owned(),
            "01.2.3.4".to_owned(),
        ]);
        for text in &cases {
            assert_eq!(is_fqdn(text), by_rule(text), "{text:?}");
        }
    }

    #[test]
    fn url_check_is_a_non_empty_netloc() {
        let symbols = ["http", ":", "/", "//", "a", "?", "#", " ", "1", "+"];
        for text in all_strings(&symbols, 5) {
            let by_rule = !text.starts_with(char::is_whitespace) && !netloc(&text).is_empty();
            assert_eq!(is_url(&text), by_rule, "{text:?}");
        }
        assert_eq!(netloc("https://example.com:8/a?b#c"), "example.com:8");
        assert_eq!(netloc("//host?q"), "host");
        assert_eq!(netloc("a1+.-://host#x"), "host");
        assert_eq!(netloc("1a://host"), "");
        assert_eq!(netloc("mailto:x@example.com"), "");
    }

    #[test]
    fn enumerations() {
        check(
            FieldType::Registry,
            &[
                (json!("RIPE"), Some(json!("RIPE"))),
                (json!("ripe-ncc"), Some(json!("RIPE"))),
                (json!("IANA"), None),
            ],
        );
        check(
            FieldType::Tlp,
            &[
                (json!("AMBER"), Some(json!("AMBER"))),
                (json!("tlp:amber"), Some(json!("AMBER"))),
                (json!("TLP: yellow"), Some(json!("AMBER"))),
                // IntelMQ 3.5 knows no TLP 2.0 CLEAR; the STIX adapter maps it.
                (json!("TLP:CLEAR"), None),
                (json!("PURPLE"), None),
            ],
        );
        check(
            FieldType::ClassificationType,
            &[
                (json!("scanner"), Some(json!("scanner"))),
                (json!("Botnet Drone"), Some(json!("infected-system"))),
                (json!("unknown"), Some(json!("undetermined"))),
                (json!("botnet"), None),
            ],
        );
        check(
            FieldType::ClassificationTaxonomy,
            &[
                (json!("fraud"), Some(json!("fraud"))),
                (json!("Abusive Content"), Some(json!("abusive-content"))),
                (json!("malware"), None),
            ],
        );
    }
}
