//! Splits an input stream into records without reading it whole: one JSON
//! document, a JSON array (each element a record), concatenated documents,
//! or JSON Lines (each line a record).
//!
//! JSON Lines is recognised when the first value ends on its first line;
//! then every following line is a record of its own, so one broken line
//! never swallows the lines after it.

use std::io::{self, BufRead};

/// One record of the input, not yet parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// 1-based place of the record in the input.
    pub position: usize,
    /// 1-based line of the input on which the record starts.
    pub line: usize,
    /// The record's bytes, as they arrived.
    pub bytes: Vec<u8>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Start,
    Lines,
    Values,
    Array,
    Done,
}

/// An iterator over the records of a byte stream.
pub struct Records<R> {
    reader: R,
    mode: Mode,
    position: usize,
    /// Newlines consumed so far.
    newlines: usize,
    /// A line being read in JSON Lines mode that runs past the reader's
    /// buffer, kept so that its room is reused.
    line: Vec<u8>,
}

impl<R: BufRead> Records<R> {
    /// Reads records from `reader`.
    pub fn new(reader: R) -> Self {
        Records {
            reader,
            mode: Mode::Start,
            position: 0,
            newlines: 0,
            line: Vec::new(),
        }
    }

    fn record(&mut self, line: usize, bytes: Vec<u8>) -> Option<Record> {
        self.position += 1;
        Some(Record {
            position: self.position,
            line,
            bytes,
        })
    }

    /// Consumes `count` bytes of the reader's buffer, counting newlines.
    fn consume(&mut self, count: usize) -> io::Result<()> {
        let buffer = self.reader.fill_buf()?;
        self.newlines += buffer[..count].iter().filter(|b| **b == b'\n').count();
        self.reader.consume(count);
        Ok(())
    }

    fn next_record(&mut self) -> io::Result<Option<Record>> {
        loop {
            match self.mode {
                Mode::Done => return Ok(None),
                Mode::Start => match self.skip_whitespace()? {
                    None => self.mode = Mode::Done,
                    Some(b'[') => {
                        self.consume(1)?;
                        self.mode = Mode::Array;
                    }
                    Some(_) => {
                        let line = self.newlines + 1;
                        let (bytes, spans_lines) = self.scan_value()?;
                        let alone_on_line = self.rest_of_line_is_blank()?;
                        self.mode = if !spans_lines && alone_on_line {
                            Mode::Lines
                        } else {
                            Mode::Values
                        };
                        return Ok(self.record(line, bytes));
                    }
                },
                Mode::Lines => {
                    let Some(text) = self.next_line()? else {
                        self.mode = Mode::Done;
                        continue;
                    };
                    self.newlines += 1;
                    if !text.is_empty() {
                        return Ok(self.record(self.newlines, text));
                    }
                }
                Mode::Values => {
                    if self.skip_whitespace()?.is_none() {
                        self.mode = Mode::Done;
                        continue;
                    }
                    let line = self.newlines + 1;
                    let (bytes, _) = self.scan_value()?;
                    return Ok(self.record(line, bytes));
                }
                Mode::Array => match self.skip_whitespace()? {
                    None => {
                        return Err(io::Error::new(
                            io::ErrorKind::UnexpectedEof,
                            "input ends inside the top-level JSON array",
                        ))
                    }
                    Some(b',') => self.consume(1)?,
                    Some(b']') => {
                        self.consume(1)?;
                        self.mode = Mode::Values;
                    }
                    Some(_) => {
                        let line = self.newlines + 1;
                        let (bytes, _) = self.scan_value()?;
                        return Ok(self.record(line, bytes));
                    }
                },
            }
        }
    }

    /// The next line's bytes without the white space around them, up to
    /// its newline or the end of input; None at the end.
    fn next_line(&mut self) -> io::Result<Option<Vec<u8>>> {
        let buffer = self.reader.fill_buf()?;
        if buffer.is_empty() {
            return Ok(None);
        }
        // Most lines lie whole in the reader's buffer: copied once, from there.
        if let Some(at) = memchr::memchr(b'\n', buffer) {
            let text = buffer[..at].trim_ascii().to_vec();
            self.reader.consume(at + 1);
            return Ok(Some(text));
        }
        self.line.clear();
        self.reader.read_until(b'\n', &mut self.line)?;
        Ok(Some(self.line.trim_ascii().to_vec()))
    }

    /// Skips white space and returns the next byte without consuming it.
    fn skip_whitespace(&mut self) -> io::Result<Option<u8>> {
        loop {
            let buffer = self.reader.fill_buf()?;
            if buffer.is_empty() {
                return Ok(None);
            }
            match buffer.iter().position(|b| !b.is_ascii_whitespace()) {
                Some(at) => {
                    let byte = buffer[at];
                    self.consume(at)?;
                    return Ok(Some(byte));
                }
                None => {
                    let all = buffer.len();
                    self.consume(all)?;
                }
            }
        }
    }

    /// Whether only blank space follows on the current line; consumes it.
    fn rest_of_line_is_blank(&mut self) -> io::Result<bool> {
        loop {
            let buffer = self.reader.fill_buf()?;
            let Some(&byte) = buffer.first() else {
                return Ok(true);
            };
            match byte {
                b'\n' => {
                    self.consume(1)?;
                    return Ok(true);
                }
                b' ' | b'\t' | b'\r' => self.consume(1)?,
                _ => return Ok(false),
            }
        }
    }

    /// Reads one JSON value's bytes by tracking nesting and strings (the
    /// parser checks them later). Returns the bytes and whether they span
    /// more than one line. A value cut off by the end of input is returned
    /// as it is, to fail in the parser with its position.
    fn scan_value(&mut self) -> io::Result<(Vec<u8>, bool)> {
        let mut scan = Scanner::default();
        let mut bytes = Vec::new();
        loop {
            let buffer = self.reader.fill_buf()?;
            if buffer.is_empty() {
                return Ok((bytes, scan.newline));
            }
            match scan.feed(buffer) {
                Some(end) => {
                    bytes.extend_from_slice(&buffer[..end]);
                    self.consume(end)?;
                    return Ok((bytes, scan.newline));
                }
                None => {
                    let all = buffer.len();
                    bytes.extend_from_slice(buffer);
                    self.consume(all)?;
                }
            }
        }
    }
}

/// The state of a scan through one JSON value.
#[derive(Default)]
struct Scanner {
    depth: usize,
    started: bool,
    in_string: bool,
    escaped: bool,
    newline: bool,
}

impl Scanner {
    /// Feeds bytes; returns how many belong to the value once it is complete.
    fn feed(&mut self, bytes: &[u8]) -> Option<usize> {
        for (at, &byte) in bytes.iter().enumerate() {
            if byte == b'\n' {
                self.newline = true;
            }
            if self.in_string {
                match byte {
                    _ if self.escaped => self.escaped = false,
                    b'\\' => self.escaped = true,
                    b'"' => {
                        self.in_string = false;
                        if self.depth == 0 {
                            return Some(at + 1);
                        }
                    }
                    _ => {}
                }
                continue;
            }
            match byte {
                b'"' => self.in_string = true,
                b'{' | b'[' => self.depth += 1,
                b'}' | b']' if self.depth > 0 => {
                    self.depth -= 1;
                    if self.depth == 0 {
                        return Some(at + 1);
                    }
                }
                // A scalar (or stray byte) at the top level ends at a delimiter.
                b',' | b']' | b'}' | b' ' | b'\t' | b'\r' | b'\n' if self.depth == 0 => {
                    if self.started {
                        return Some(at);
                    }
                    // A lone delimiter is a record of its own, so it fails to parse.
                    return Some(at + 1);
                }
                _ => {}
            }
            self.started = true;
        }
        None
    }
}

impl<R: BufRead> Iterator for Records<R> {
    type Item = io::Result<Record>;

    fn next(&mut self) -> Option<Self::Item> {
        match self.next_record() {
            Ok(record) => record.map(Ok),
            Err(error) => {
                self.mode = Mode::Done;
                Some(Err(error))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn records(input: &str) -> Vec<String> {
        Records::new(input.as_bytes())
            .map(|record| String::from_utf8(record.unwrap().bytes).unwrap())
            .collect()
    }

    #[test]
    fn one_document() {
        assert_eq!(records("{\n  \"a\": 1\n}\n"), ["{\n  \"a\": 1\n}"]);
    }

    #[test]
    fn array_elements_are_records() {
        assert_eq!(
            records("[\n {\"a\": \"x]\"},\n {\"b\": [1, 2]} , 3\n]\n"),
            ["{\"a\": \"x]\"}", "{\"b\": [1, 2]}", "3"]
        );
        assert!(records("[]").is_empty());
    }

    #[test]
    fn json_lines_keep_broken_lines_apart() {
        assert_eq!(
            records("{\"a\": 1}\n{\"b\": \n\nnot json\n{\"c\": \"}\"}\n"),
            ["{\"a\": 1}", "{\"b\":", "not json", "{\"c\": \"}\"}"]
        );
    }

    #[test]
    fn lines_longer_than_the_readers_buffer_are_read_whole() {
        let input = "{\"a\": \"long enough\"}\n\n  {\"b\": 2}  \r\n{\"c\": [1, 2, 3]}";
        let read = |reader: Box<dyn BufRead>| -> Vec<(usize, String)> {
            Records::new(reader)
                .map(|record| record.unwrap())
                .map(|record| (record.line, String::from_utf8(record.bytes).unwrap()))
                .collect()
        };
        let whole = read(Box::new(input.as_bytes()));
        assert_eq!(
            whole,
            [
                (1, "{\"a\": \"long enough\"}".to_owned()),
                (3, "{\"b\": 2}".to_owned()),
                (4, "{\"c\": [1, 2, 3]}".to_owned()),
            ]
        );
        for capacity in [1, 7, 16] {
            let small = io::BufReader::with_capacity(capacity, input.as_bytes());
            assert_eq!(read(Box::new(small)), whole, "buffer of {capacity}");
        }
    }

    #[test]
    fn concatenated_documents() {
        assert_eq!(
            records("{\n\"a\": 1\n}\n{\n\"b\": 2\n}"),
            ["{\n\"a\": 1\n}", "{\n\"b\": 2\n}"]
        );
    }

    #[test]
    fn positions_count_from_one() {
        let positions: Vec<usize> = Records::new(&b"{}\n{}\n{}\n"[..])
            .map(|record| record.unwrap().position)
            .collect();
        assert_eq!(positions, [1, 2, 3]);
    }

    #[test]
    fn lines_are_counted_from_one() {
        let input = "\n{\"a\": 1}\n\n{\"b\": 2}\n";
        let lines: Vec<usize> = Records::new(input.as_bytes())
            .map(|record| record.unwrap().line)
            .collect();
        assert_eq!(lines, [2, 4]);
        let pretty = "[\n  {},\n  {\n  }\n]";
        let lines: Vec<usize> = Records::new(pretty.as_bytes())
            .map(|record| record.unwrap().line)
            .collect();
        assert_eq!(lines, [2, 3]);
    }

    #[test]
    fn unterminated_array_is_an_error_after_its_records() {
        let mut records = Records::new(&b"[{\"a\": 1}, "[..]);
        assert!(records.next().unwrap().is_ok());
        assert!(records.next().unwrap().is_err());
        assert!(records.next().is_none());
    }

    #[test]
    fn escaped_quotes_do_not_end_strings() {
        assert_eq!(
            records(r#"{"a": "q\"}"} {"b": 1}"#),
            [r#"{"a": "q\"}"}"#, r#"{"b": 1}"#]
        );
    }

    #[test]
    fn empty_input_has_no_records() {
        assert!(records("  \n\n").is_empty());
    }
}
