//! Where records that cannot be handled are kept, whole, with the reason:
//! nothing that arrives is silently lost.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::Path;
use std::sync::{Mutex, PoisonError};

use base64::Engine as _;
use serde_json::{json, Map, Value};

use crate::envelope::{Envelope, WireForm};
use crate::error::Error;

/// The step at which a record failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// It could not be read or decoded into an envelope.
    Decode,
    /// It was decoded but could not be written in the target format.
    Encode,
}

impl Stage {
    /// The stage's name in dead-letter entries.
    pub fn name(self) -> &'static str {
        match self {
            Stage::Decode => "decode",
            Stage::Encode => "encode",
        }
    }
}

/// One dead-letter entry as a JSON object: the positions of the records, the
/// stage, the reason, and the input itself. Input that is not UTF-8 is kept
/// as `input_base64`.
pub fn entry(positions: &[usize], stage: Stage, error: &Error, input: DeadInput<'_>) -> Value {
    entry_with_reason(positions, stage, &error.to_string(), input)
}

/// [`entry`] for a failure known by its reason's text only, as the
/// gateway's [`crate::gateway::Failure`] carries it.
pub fn entry_with_reason(
    positions: &[usize],
    stage: Stage,
    reason: &str,
    input: DeadInput<'_>,
) -> Value {
    let mut entry = Map::new();
    entry.insert("records".into(), json!(positions));
    entry.insert("stage".into(), stage.name().into());
    entry.insert("reason".into(), reason.into());
    match input {
        DeadInput::Bytes(bytes) => match std::str::from_utf8(bytes) {
            Ok(text) => {
                entry.insert("input".into(), text.into());
            }
            Err(_) => {
                let encoded = base64::engine::general_purpose::STANDARD.encode(bytes);
                entry.insert("input_base64".into(), encoded.into());
            }
        },
        DeadInput::Envelopes(envelopes) => {
            let list: Vec<Value> = envelopes
                .iter()
                .map(|e| e.to_wire(WireForm::Iep04))
                .collect();
            entry.insert("envelopes".into(), list.into());
        }
    }
    Value::Object(entry)
}

/// What a dead-letter entry keeps of the failed input.
pub enum DeadInput<'a> {
    /// The record as it arrived.
    Bytes(&'a [u8]),
    /// The envelopes it had been decoded into (for encoding failures).
    Envelopes(&'a [Envelope]),
}

/// A JSON Lines file of dead-letter entries; a no-op when none was asked for.
pub struct DeadLetterFile {
    out: Option<BufWriter<File>>,
}

impl DeadLetterFile {
    /// Opens (creating or appending to) the file at `path`, if any.
    pub fn open(path: Option<&Path>) -> io::Result<Self> {
        let out = path
            .map(|path| File::options().create(true).append(true).open(path))
            .transpose()?
            .map(BufWriter::new);
        Ok(DeadLetterFile { out })
    }

    /// Appends one entry.
    pub fn write(&mut self, entry: &Value) -> io::Result<()> {
        if let Some(out) = &mut self.out {
            serde_json::to_writer(&mut *out, entry)?;
            out.write_all(b"\n")?;
        }
        Ok(())
    }

    /// Makes sure every entry is on disk.
    pub fn flush(&mut self) -> io::Result<()> {
        match &mut self.out {
            Some(out) => out.flush(),
            None => Ok(()),
        }
    }
}

/// The service's dead-letter log, shared by every task of `serve` that has
/// no dead-letter queue: entries are on disk (or written to stderr, when no
/// store is configured) before `append` returns, so a record answered as
/// rejected is never lost.
pub struct DeadLetterLog {
    /// The file, or `None` for stderr.
    file: Mutex<Option<File>>,
}

impl DeadLetterLog {
    /// Appends to the file at `path` (created when missing), or to stderr.
    pub fn open(path: Option<&Path>) -> io::Result<Self> {
        let file = path
            .map(|path| File::options().create(true).append(true).open(path))
            .transpose()?;
        Ok(DeadLetterLog {
            file: Mutex::new(file),
        })
    }

    /// Writes `entries`, one JSON line each, in one write, and syncs the file.
    pub fn append(&self, entries: &[Value]) -> io::Result<()> {
        if entries.is_empty() {
            return Ok(());
        }
        let mut lines = Vec::new();
        for entry in entries {
            serde_json::to_writer(&mut lines, entry)?;
            lines.push(b'\n');
        }
        let mut file = self.file.lock().unwrap_or_else(PoisonError::into_inner);
        match file.as_mut() {
            Some(file) => {
                file.write_all(&lines)?;
                file.sync_data()
            }
            None => io::stderr().lock().write_all(&lines),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_keep_text_or_base64() {
        let error = Error::shape("broken");
        let text = entry(&[2], Stage::Decode, &error, DeadInput::Bytes(b"{\"a\""));
        assert_eq!(
            text,
            json!({"records": [2], "stage": "decode", "reason": "broken", "input": "{\"a\""})
        );
        let binary = entry(&[3], Stage::Decode, &error, DeadInput::Bytes(&[0xff, 0xfe]));
        assert_eq!(binary["input_base64"], json!("//4="));
    }

    #[test]
    fn the_log_appends_whole_lines() {
        let path = std::env::temp_dir().join(format!("dead-letter-log-{}", std::process::id()));
        let _ = std::fs::remove_file(&path);
        let log = DeadLetterLog::open(Some(&path)).expect("open");
        log.append(&[json!({"a": 1}), json!({"b": "x"})])
            .expect("append");
        log.append(&[json!({"c": null})]).expect("append");
        let text = std::fs::read_to_string(&path).expect("read");
        std::fs::remove_file(&path).expect("remove");
        assert_eq!(text, "{\"a\":1}\n{\"b\":\"x\"}\n{\"c\":null}\n");
    }
}
