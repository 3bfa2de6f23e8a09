//! A partner that is a JSON Lines file, a directory, or stdout: what the
//! embedded default writes to, and a simple archive beside AMQP partners.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::Path;
use std::sync::Mutex;

use crate::error::{Error, Result};

/// Appends native messages, one per line, flushing after each batch so that
/// a message counts as delivered only once it left the process.
pub struct FileSink {
    out: Mutex<Box<dyn Write + Send>>,
}

impl FileSink {
    /// Opens `path` for appending: `-` is stdout, a directory gets
    /// `<partner>.jsonl` inside it.
    pub fn open(path: &Path, partner: &str) -> Result<Self> {
        let out: Box<dyn Write + Send> = if path == Path::new("-") {
            Box::new(io::stdout())
        } else {
            let path = if path.is_dir() {
                path.join(format!("{partner}.jsonl"))
            } else {
                path.to_owned()
            };
            let file = File::options()
                .create(true)
                .append(true)
                .open(&path)
                .map_err(|e| Error::Config(format!("{}: {e}", path.display())))?;
            Box::new(BufWriter::new(file))
        };
        Ok(FileSink {
            out: Mutex::new(out),
        })
    }

    /// Writes the messages as lines and flushes.
    pub fn write(&self, messages: &[Vec<u8>]) -> io::Result<()> {
        let mut out = self
            .out
            .lock()
            .map_err(|_| io::Error::other("output lock poisoned"))?;
        for message in messages {
            out.write_all(message)?;
            out.write_all(b"\n")?;
        }
        out.flush()
    }
}
