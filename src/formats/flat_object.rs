//! Reads the members of a JSON object straight from its text, for the flat
//! messages (IntelMQ's) whose members are mostly plain strings and small
//! numbers: keys and plain strings are borrowed from the text as they are,
//! without serde's deserializer machinery in between.
//!
//! It takes only what it reads exactly as `serde_json` does. Anything else
//! (an escape in a key, a control character, a negative or long number,
//! trailing text) makes it give up, and the caller parses the text with
//! `serde_json`, for its result or its error. A value that is not a plain
//! string, a short non-negative integer, `true`, `false` or `null` (a
//! fraction, a string with escapes, an array or object) is handed to
//! `serde_json` where it stands.

use serde_json::Value;

use super::json::next_escape;

/// One member's value as it was read.
#[derive(Debug, PartialEq)]
pub enum Item<'t> {
    /// A string without escapes, borrowed from the text.
    Text(&'t str),
    /// Any other value.
    Value(Value),
}

impl Item<'_> {
    /// The value as `serde_json` gives it.
    pub fn into_value(self) -> Value {
        match self {
            Item::Text(text) => Value::String(text.to_owned()),
            Item::Value(value) => value,
        }
    }
}

/// Most digits of an integer read here: any number of 19 digits fits a
/// `u64`; longer ones are left to `serde_json`.
const MAX_DIGITS: usize = 19;

/// Calls `member` with each key and value of the object that is the whole
/// of `text` (white space around it aside), in their order. None when the
/// text is not read here (see the module's notes) or `member` says None.
pub fn read_members<'t>(
    text: &'t str,
    mut member: impl FnMut(&'t str, Item<'t>) -> Option<()>,
) -> Option<()> {
    let mut reader = Reader { text, at: 0 };
    reader.expect(b'{')?;
    if reader.peek()? == b'}' {
        reader.at += 1;
    } else {
        loop {
            let key = reader.string()?;
            reader.expect(b':')?;
            let value = reader.value()?;
            member(key, value)?;
            match reader.next()? {
                // The next key's quote is looked for past white space.
                b',' => {}
                b'}' => break,
                _ => return None,
            }
        }
    }
    reader.skip_space();
    (reader.at == text.len()).then_some(())
}

/// A place in the text being read.
struct Reader<'t> {
    text: &'t str,
    at: usize,
}

impl<'t> Reader<'t> {
    fn bytes(&self) -> &'t [u8] {
        self.text.as_bytes()
    }

    fn skip_space(&mut self) {
        let rest = self.bytes().get(self.at..).unwrap_or_default();
        let space = rest
            .iter()
            .take_while(|byte| matches!(byte, b' ' | b'\t' | b'\n' | b'\r'))
            .count();
        self.at += space;
    }

    /// The next byte after white space, not consumed.
    fn peek(&mut self) -> Option<u8> {
        self.skip_space();
        self.bytes().get(self.at).copied()
    }

    /// The next byte after white space, consumed.
    fn next(&mut self) -> Option<u8> {
        let byte = self.peek()?;
        self.at += 1;
        Some(byte)
    }

    fn expect(&mut self, wanted: u8) -> Option<()> {
        (self.next()? == wanted).then_some(())
    }

    /// A string without escapes or control characters, borrowed.
    fn string(&mut self) -> Option<&'t str> {
        self.skip_space();
        self.string_here()
    }

    /// [`Reader::string`] where it stands, at its opening quote.
    fn string_here(&mut self) -> Option<&'t str> {
        if self.bytes().get(self.at) != Some(&b'"') {
            return None;
        }
        let start = self.at + 1;
        let end = next_escape(self.bytes(), start)?;
        if self.bytes().get(end) != Some(&b'"') {
            return None;
        }
        self.at = end + 1;
        // Both ends are ASCII quotes, so they lie on character boundaries.
        self.text.get(start..end)
    }

    fn value(&mut self) -> Option<Item<'t>> {
        let start = self.at;
        let item = match self.peek()? {
            b'"' => self.string_here().map(Item::Text),
            b'0'..=b'9' => self.integer().map(|number| Item::Value(number.into())),
            b't' => self.literal("true", Value::Bool(true)),
            b'f' => self.literal("false", Value::Bool(false)),
            b'n' => self.literal("null", Value::Null),
            _ => None,
        };
        match item {
            Some(item) => Some(item),
            None => {
                self.at = start;
                self.serde_value().map(Item::Value)
            }
        }
    }

    /// A non-negative integer of at most [`MAX_DIGITS`] digits with no
    /// fraction or exponent after it.
    fn integer(&mut self) -> Option<u64> {
        let rest = self.bytes().get(self.at..)?;
        let digits = rest.iter().take_while(|byte| byte.is_ascii_digit()).count();
        let ends_well = !matches!(rest.get(digits), Some(b'.' | b'e' | b'E'));
        let leading_zero = digits > 1 && rest.first() == Some(&b'0');
        if digits > MAX_DIGITS || !ends_well || leading_zero {
            return None;
        }
        let number = rest[..digits]
            .iter()
            .fold(0u64, |number, &digit| number * 10 + u64::from(digit - b'0'));
        self.at += digits;
        Some(number)
    }

    fn literal(&mut self, word: &str, value: Value) -> Option<Item<'t>> {
        let rest = self.bytes().get(self.at..)?;
        let delimited = matches!(
            rest.get(word.len()),
            None | Some(b' ' | b'\t' | b'\n' | b'\r' | b',' | b'}')
        );
        if !rest.starts_with(word.as_bytes()) || !delimited {
            return None;
        }
        self.at += word.len();
        Some(Item::Value(value))
    }

    /// The value that starts here, read by `serde_json`.
    fn serde_value(&mut self) -> Option<Value> {
        let rest = self.text.get(self.at..)?;
        let mut values = serde_json::Deserializer::from_str(rest).into_iter::<Value>();
        let value = values.next()?.ok()?;
        self.at += values.byte_offset();
        Some(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Map;

    /// The object `read_members` reads, if it reads the text.
    fn read(text: &str) -> Option<Map<String, Value>> {
        let mut map = Map::new();
        read_members(text, |key, item| {
            map.insert(key.to_owned(), item.into_value());
            Some(())
        })?;
        Some(map)
    }

    #[test]
    fn what_is_read_is_what_serde_json_reads() {
        for text in [
            "{}",
            " { } ",
            r#"{"a": "b", "n": 0, "m": 1234567890123456789, "t": true, "f": false, "z": null}"#,
            "{\"a\"\t:\r\n\"ünï — 日本\" ,\"b\":\"\"}",
            r#"{"x": 75.0, "y": 1e3, "w": -7, "v": -0, "s": "q\"uote", "u": "\u00e9"}"#,
            r#"{"list": [1, "two", {"three": [3]}], "obj": {"a": {}}, "last": 12345678901234567890}"#,
            r#"{"a": 1, "a": 2}"#,
        ] {
            let expected: Value = serde_json::from_str(text).unwrap();
            assert_eq!(read(text).map(Value::Object), Some(expected), "{text}");
        }
    }

    #[test]
    fn strings_are_borrowed_unless_escaped() {
        let mut items = Vec::new();
        read_members(r#"{"a": "plain", "b": "es\\caped"}"#, |_, item| {
            items.push(item);
            Some(())
        })
        .unwrap();
        assert_eq!(items[0], Item::Text("plain"));
        assert_eq!(items[1], Item::Value(Value::String("es\\caped".into())));
    }

    #[test]
    fn what_is_not_read_here_is_left_to_serde_json() {
        for text in [
            "",
            "[1]",
            "{",
            r#"{"a": 1"#,
            r#"{"a": 1,}"#,
            r#"{"a" 1}"#,
            r#"{"a": 1} x"#,
            r#"{"a": 1}{}"#,
            r#"{"k\u0065y": 1}"#,
            "{\"a\": \"tab\tinside\"}",
            "{\"a\u{1}\": 1}",
            r#"{"a": 01}"#,
            r#"{"a": truex}"#,
            r#"{"a": nul}"#,
            r#"{"a": -}"#,
            r#"{"a": 1.}"#,
            r#"{"a": "unterminated}"#,
            r#"{"a": [1, 2}"#,
        ] {
            assert_eq!(read(text), None, "{text}");
        }
    }

    #[test]
    fn member_can_stop_the_reading() {
        let mut seen = 0;
        let read = read_members(r#"{"a": 1, "b": 2}"#, |_, _| {
            seen += 1;
            None
        });
        assert_eq!((read, seen), (None, 1));
    }
}
