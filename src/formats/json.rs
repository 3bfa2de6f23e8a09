//! Compact JSON text of a [`Value`], byte for byte what
//! `serde_json::to_writer` writes, at a fraction of its cost: strings are
//! scanned sixteen bytes at a time for what needs escaping and copied in runs,
//! straight into a byte buffer the caller reuses.
//!
//! Every message the bridge writes goes through here, and so does the text
//! that `raw` encodes, so this is the hot path's last step.

use serde_json::Value;

/// Appends the compact JSON text of `value` to `out`.
pub fn write_value(out: &mut Vec<u8>, value: &Value) {
    match value {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Bool(true) => out.extend_from_slice(b"true"),
        Value::Bool(false) => out.extend_from_slice(b"false"),
        // serde_json's own serializer writes a Number (itoa, or the
        // shortest float text) straight into the buffer, without the
        // formatting machinery and the String that `to_string` goes through.
        // Writing into a Vec cannot fail; were it to, the Display text (the
        // same bytes) is written instead.
        Value::Number(number) => {
            if serde_json::to_writer(&mut *out, number).is_err() {
                out.extend_from_slice(number.to_string().as_bytes());
            }
        }
        Value::String(text) => write_str(out, text),
        Value::Array(items) => write_items(out, items, write_value),
        Value::Object(map) => write_object(out, map.iter()),
    }
}

/// Appends a JSON array of `items`, each written by `write`.
pub fn write_items<I>(
    out: &mut Vec<u8>,
    items: impl IntoIterator<Item = I>,
    write: impl FnMut(&mut Vec<u8>, I),
) {
    write_separated(out, [b'[', b']'], items, write);
}

/// Appends a JSON object of `members`, each `"key":value` written by
/// `write`.
pub fn write_members<M>(
    out: &mut Vec<u8>,
    members: impl IntoIterator<Item = M>,
    write: impl FnMut(&mut Vec<u8>, M),
) {
    write_separated(out, [b'{', b'}'], members, write);
}

/// `parts` written by `write` between `brackets`, separated by commas.
fn write_separated<P>(
    out: &mut Vec<u8>,
    [open, close]: [u8; 2],
    parts: impl IntoIterator<Item = P>,
    mut write: impl FnMut(&mut Vec<u8>, P),
) {
    out.push(open);
    for (index, part) in parts.into_iter().enumerate() {
        if index > 0 {
            out.push(b',');
        }
        write(out, part);
    }
    out.push(close);
}

/// Appends a JSON object of `entries`, in their order: a map's, or a list
/// of names and values that is written without becoming one.
pub fn write_object<'v, K: AsRef<str>>(
    out: &mut Vec<u8>,
    entries: impl IntoIterator<Item = (K, &'v Value)>,
) {
    write_members(out, entries, |out, (key, value)| {
        write_entry(out, key.as_ref(), value);
    });
}

/// Appends a JSON object of an event's fields, in their order: their names
/// need no escaping ([`write_plain_key`]).
pub fn write_fields<'v>(out: &mut Vec<u8>, fields: impl IntoIterator<Item = (&'v str, &'v Value)>) {
    write_members(out, fields, |out, (name, value)| {
        write_plain_key(out, name);
        write_value(out, value);
    });
}

/// Appends `"key":value`, without a separator.
pub fn write_entry(out: &mut Vec<u8>, key: &str, value: &Value) {
    write_str(out, key);
    out.push(b':');
    write_value(out, value);
}

/// Appends `"key":` for a key known to need no escaping: a field name of an
/// event (the harmonization's names and sub-keys are plain ASCII words and
/// dots) or a name of the bridge's own. It is copied without the scan
/// [`write_str`] makes; debug builds check that it needs none.
pub fn write_plain_key(out: &mut Vec<u8>, key: &str) {
    write_plain(out, key, b"\":");
}

/// Appends `text` as a JSON string, for text known to need no escaping:
/// an id, a time or a name of the bridge's own. It is copied without the
/// scan [`write_str`] makes; debug builds check that it needs none.
pub fn write_plain_str(out: &mut Vec<u8>, text: &str) {
    write_plain(out, text, b"\"");
}

/// Appends `"`, `text`, which needs no escaping, and `end`.
fn write_plain(out: &mut Vec<u8>, text: &str, end: &[u8]) {
    debug_assert!(
        next_escape(text.as_bytes(), 0).is_none(),
        "{text:?} needs escaping"
    );
    out.push(b'"');
    out.extend_from_slice(text.as_bytes());
    out.extend_from_slice(end);
}

/// Bytes looked at together when searching for one that needs escaping.
const BLOCK: usize = 16;

/// Where the first byte of `block` that is written escaped stands, if any:
/// a control character, `"` or `\`.
#[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
fn block_escape(block: &[u8; BLOCK]) -> Option<usize> {
    // SAFETY: the only requirement of `sse2_block_escape` is that the
    // processor has SSE2, which the cfg above makes part of this build's
    // target (it is the x86-64 baseline).
    unsafe { sse2_block_escape(block) }
}

/// [`block_escape`] with SSE2, which compares all sixteen bytes at once.
#[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
#[target_feature(enable = "sse2")]
fn sse2_block_escape(block: &[u8; BLOCK]) -> Option<usize> {
    use std::arch::x86_64::{
        _mm_cmpeq_epi8, _mm_max_epu8, _mm_movemask_epi8, _mm_or_si128, _mm_set1_epi8,
        _mm_set_epi64x,
    };
    let [low, high] = [&block[..8], &block[8..]].map(|half| {
        let mut word = [0u8; 8];
        word.copy_from_slice(half);
        i64::from_le_bytes(word)
    });
    let bytes = _mm_set_epi64x(high, low);
    let quote = _mm_cmpeq_epi8(bytes, _mm_set1_epi8(b'"' as i8));
    let backslash = _mm_cmpeq_epi8(bytes, _mm_set1_epi8(b'\\' as i8));
    // A byte is below 0x20 when raising it to at least 0x1F leaves 0x1F.
    let floor = _mm_set1_epi8(0x1F);
    let control = _mm_cmpeq_epi8(_mm_max_epu8(bytes, floor), floor);
    let found = _mm_or_si128(_mm_or_si128(quote, backslash), control);
    let mask = _mm_movemask_epi8(found);
    (mask != 0).then(|| mask.trailing_zeros() as usize)
}

/// [`block_escape`] elsewhere: a byte at a time.
#[cfg(not(all(target_arch = "x86_64", target_feature = "sse2")))]
fn block_escape(block: &[u8; BLOCK]) -> Option<usize> {
    block.iter().position(|&byte| is_escaped(byte))
}

/// The escape serde_json writes for a byte, if it needs one: a control
/// character, `"` or `\`.
fn escape_of(byte: u8) -> Option<&'static [u8]> {
    Some(match byte {
        b'"' => b"\\\"",
        b'\\' => b"\\\\",
        0x08 => b"\\b",
        0x09 => b"\\t",
        0x0A => b"\\n",
        0x0C => b"\\f",
        0x0D => b"\\r",
        0x00..=0x1F => b"\\u00",
        _ => return None,
    })
}

/// Whether a byte is written escaped: a control character, `"` or `\`.
#[cfg(any(test, not(all(target_arch = "x86_64", target_feature = "sse2"))))]
fn is_escaped(byte: u8) -> bool {
    byte < 0x20 || byte == b'"' || byte == b'\\'
}

/// The position of the first byte at or after `from` that needs escaping:
/// a control character, `"` or `\`. Reading a string, the same search
/// finds where it ends or is no longer plain.
#[inline]
pub(super) fn next_escape(bytes: &[u8], from: usize) -> Option<usize> {
    let rest = bytes.get(from..)?;
    let mut blocks = rest.chunks_exact(BLOCK);
    let mut offset = from;
    for block in &mut blocks {
        let mut whole = [0u8; BLOCK];
        whole.copy_from_slice(block);
        if let Some(at) = block_escape(&whole) {
            return Some(offset + at);
        }
        offset += BLOCK;
    }
    // The last bytes, padded with spaces, which never need escaping.
    let tail = blocks.remainder();
    let mut padded = [b' '; BLOCK];
    padded[..tail.len()].copy_from_slice(tail);
    block_escape(&padded).map(|at| offset + at)
}

/// Appends `text` as a quoted JSON string.
pub fn write_str(out: &mut Vec<u8>, text: &str) {
    out.reserve(text.len() + 2);
    out.push(b'"');
    write_escaped(out, text);
    out.push(b'"');
}

/// Appends one quoted JSON string whose text is `pieces` joined, without
/// joining them first: escaping works a byte at a time, so each piece is
/// escaped on its own.
pub fn write_joined_str<'t>(out: &mut Vec<u8>, pieces: impl IntoIterator<Item = &'t str>) {
    out.push(b'"');
    for piece in pieces {
        write_escaped(out, piece);
    }
    out.push(b'"');
}

/// Appends `text` escaped, without quotes. Always inlined, so that
/// [`write_str`], the most called writer, stays one loop.
#[inline(always)]
fn write_escaped(out: &mut Vec<u8>, text: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let bytes = text.as_bytes();
    let mut start = 0;
    while let Some(at) = next_escape(bytes, start) {
        let byte = bytes[at];
        out.extend_from_slice(&bytes[start..at]);
        if let Some(escape) = escape_of(byte) {
            out.extend_from_slice(escape);
            if escape == b"\\u00" {
                out.push(HEX[usize::from(byte >> 4)]);
                out.push(HEX[usize::from(byte & 0xF)]);
            }
        }
        start = at + 1;
    }
    out.extend_from_slice(&bytes[start..]);
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn same_as_serde(value: &Value) {
        let mut ours = Vec::new();
        write_value(&mut ours, value);
        let theirs = serde_json::to_vec(value).unwrap();
        assert_eq!(
            String::from_utf8_lossy(&ours),
            String::from_utf8_lossy(&theirs)
        );
    }

    #[test]
    fn strings_escape_as_serde_json_does() {
        let mut every_byte = String::new();
        for byte in 0u8..0x80 {
            every_byte.push(char::from(byte));
        }
        for text in [
            "",
            "plain",
            "exactly8",
            "sixteen bytes!!!",
            "quote \" and backslash \\ in the middle of a long line",
            "\u{0}\u{1f}\u{7f}\t\n\r\u{8}\u{c}",
            "ünïcödé — 日本語 \u{1F600} and \"q\"",
            "tail after eight \n",
            &every_byte,
            &every_byte.repeat(3)[5..],
        ] {
            same_as_serde(&Value::String(text.to_owned()));
        }
    }

    #[test]
    fn joined_strings_are_the_joined_text_escaped() {
        let pieces = ["a\"b", "", "\u{1}c\\", " d"];
        let mut joined = Vec::new();
        write_joined_str(&mut joined, pieces);
        let mut whole = Vec::new();
        write_str(&mut whole, &pieces.concat());
        assert_eq!(joined, whole);
    }

    #[test]
    fn a_block_finds_the_first_byte_to_escape_wherever_it_stands() {
        for byte in 0..=u8::MAX {
            for at in 0..BLOCK {
                let mut block = [b'a'; BLOCK];
                block[at] = byte;
                let expected = is_escaped(byte).then_some(at);
                assert_eq!(block_escape(&block), expected, "{byte:#x} at {at}");
                block[BLOCK - 1] = b'"';
                let expected = expected.unwrap_or(BLOCK - 1);
                assert_eq!(block_escape(&block), Some(expected), "{byte:#x} at {at}");
            }
        }
    }

    #[test]
    fn values_write_as_serde_json_does() {
        same_as_serde(&json!({
            "null": null, "t": true, "f": false,
            "n": [0, -1, 18446744073709551615u64, -9223372036854775808i64,
                  0.5, 75.0, 1e300, -2.5e-8, 0.30000000000000004],
            "nested": {"a": [[], {}, [{"k\"ey": "v\\al"}]], "": ""},
        }));
    }

    /// Every JSON document and JSON line under `dir`, recursively.
    fn documents(dir: &std::path::Path, found: &mut Vec<Value>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                documents(&path, found);
                continue;
            }
            let Ok(text) = std::fs::read_to_string(&path) else {
                continue;
            };
            match serde_json::from_str::<Value>(&text) {
                Ok(value) => found.push(value),
                Err(_) => found.extend(text.lines().filter_map(|l| serde_json::from_str(l).ok())),
            }
        }
    }

    #[test]
    fn fixtures_write_as_serde_json_does() {
        let mut found = Vec::new();
        documents(
            &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures"),
            &mut found,
        );
        assert!(found.len() > 50);
        for value in &found {
            same_as_serde(value);
        }
    }
}
