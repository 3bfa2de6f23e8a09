//! The command line: `translate` and `validate` over files or stdin, and
//! `serve`, whose service lives in [`crate::serve`].
//!
//! Exit status: 0 when every record went through, 1 when some were
//! rejected (each reported on stderr, kept in `--dead-letter`), 2 for usage
//! and I/O errors.

use std::fs::File;
use std::io::{self, BufRead, BufReader, BufWriter, Write};
use std::mem;
use std::num::NonZeroUsize;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use serde_json::Value;

use crate::dead_letter::{self, DeadInput, DeadLetterFile, Stage};
use crate::envelope::{Envelope, WireForm};
use crate::error::{Error, Result};
use crate::formats::{intelmq, DecodeContext, EncodeContext, Registry};
use crate::identity::{LoopGuard, SeenLocation, Verdict};
use crate::input::{Record, Records};
use crate::pipeline::{GroupBuffer, Output, Translator};
use crate::schema::Schema;
use crate::stages;

/// Name used for this instance when `--origin` is not given and the host
/// name cannot be read.
const FALLBACK_ORIGIN: &str = "intelmq-bridge";

/// intelmq-bridge: exchange security events between IntelMQ, IDEA, n6 and
/// STIX 2.1, with IEP04 ids that keep events from circling.
#[derive(Debug, Parser)]
#[command(name = "intelmq-bridge", version, about)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Translate messages from one format into another (JSON Lines on stdout).
    Translate(TranslateArgs),
    /// Check messages against a format's rules, as its own tools would.
    Validate(ValidateArgs),
    /// Run the gateway: from a configuration file (AMQP inputs and
    /// partners), or without one an HTTP ingest that writes flat IntelMQ.
    Serve(ServeArgs),
}

#[derive(Debug, Args)]
struct ServeArgs {
    /// The TOML configuration (see examples/amqp.toml); without it, the
    /// embedded default runs: no broker needed.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Embedded default: where to listen for POST /v1/events, /metrics and /healthz.
    #[arg(long, value_name = "ADDR", default_value = crate::config::DEFAULT_LISTEN)]
    listen: String,
    /// Embedded default: where flat IntelMQ events go, as JSON Lines: `-`
    /// for stdout, a file, or a directory (`output.jsonl` inside it).
    #[arg(long, value_name = "PATH", default_value = "-")]
    output: PathBuf,
    /// Embedded default: this instance's name [default: the host name].
    #[arg(long, value_name = "NAME")]
    origin: Option<String>,
}

#[derive(Debug, Args)]
struct TranslateArgs {
    /// Format of the input, or `auto` to recognise each message by its shape.
    #[arg(long, default_value = "auto", value_name = "FORMAT")]
    from: String,
    /// Format to write.
    #[arg(long, value_name = "FORMAT")]
    to: String,
    /// Write IEP04 envelopes (`--envelope`, `--envelope=iep04`) or AIL Stream
    /// Format messages (`--envelope=ail`) instead of flat IntelMQ events.
    #[arg(long, value_name = "FORM", num_args = 0..=1, require_equals = true,
          default_missing_value = "iep04")]
    envelope: Option<WireForm>,
    /// Carry the envelope's meta in `extra.iep04` of flat IntelMQ output.
    #[arg(long)]
    meta_in_extra: bool,
    /// This instance's name: the origin of messages that arrive without meta
    /// [default: the host name].
    #[arg(long, value_name = "NAME")]
    origin: Option<String>,
    /// Append every rejected record, whole and with its reason, to this file.
    #[arg(long, value_name = "FILE")]
    dead_letter: Option<PathBuf>,
    #[command(flatten)]
    identity: IdentityArgs,
    /// Input file: one JSON document, a JSON array or JSON Lines [default: stdin].
    file: Option<PathBuf>,
}

/// Loop and duplicate detection: on when a seen-store is given.
#[derive(Debug, Args)]
struct IdentityArgs {
    /// Drop duplicates and loops, remembering ids in this file across runs.
    #[arg(long, value_name = "PATH", conflicts_with = "seen_redis")]
    seen_db: Option<PathBuf>,
    /// Drop duplicates and loops, remembering ids in Redis (shared by instances).
    #[arg(long, value_name = "URL")]
    seen_redis: Option<String>,
    /// How long ids are remembered.
    #[arg(long, value_name = "DAYS", default_value_t = 7)]
    retention_days: u64,
    /// Add an `fp:` alternate id over the fields of mappings/identity/fingerprint.json,
    /// so the same outside event imported by two instances is recognised.
    #[arg(long)]
    fingerprint: bool,
}

impl IdentityArgs {
    /// The loop guard asked for, if any.
    fn guard(&self, origin: &str) -> Result<Option<LoopGuard>> {
        let retention = Duration::from_secs(self.retention_days.saturating_mul(24 * 3600));
        let location = match (&self.seen_db, &self.seen_redis) {
            (Some(path), _) => SeenLocation::File(path),
            (None, Some(url)) => SeenLocation::Redis(url),
            (None, None) => return Ok(None),
        };
        LoopGuard::open(origin, location, retention, self.fingerprint).map(Some)
    }
}

#[derive(Debug, Args)]
struct ValidateArgs {
    /// Format the messages must be valid in.
    #[arg(long, value_name = "FORMAT")]
    format: String,
    /// Input file [default: stdin].
    file: Option<PathBuf>,
}

/// Runs the command line and returns the process's exit status.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let outcome = match cli.command {
        Command::Translate(args) => translate(args),
        Command::Validate(args) => validate(args),
        Command::Serve(args) => serve(args),
    };
    match outcome {
        Ok(summary) if summary.rejected == 0 => ExitCode::SUCCESS,
        Ok(_) => ExitCode::from(1),
        Err(error) => {
            eprintln!("intelmq-bridge: {error}");
            ExitCode::from(2)
        }
    }
}

/// How many records went through and how many were rejected.
#[derive(Debug, Default)]
struct Summary {
    accepted: usize,
    rejected: usize,
}

fn open_input(file: Option<&Path>) -> Result<Box<dyn BufRead>> {
    Ok(match file {
        Some(path) => {
            let file = File::open(path)
                .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))?;
            Box::new(BufReader::with_capacity(1 << 16, file))
        }
        None => Box::new(BufReader::with_capacity(1 << 16, io::stdin())),
    })
}

fn default_origin() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .map(|name| name.trim().to_owned())
        .ok()
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| FALLBACK_ORIGIN.to_owned())
}

/// Reports a rejected record on stderr and keeps it in the dead-letter file.
struct Rejects {
    file: DeadLetterFile,
    count: usize,
}

impl Rejects {
    /// Reports on stderr as `<label>: <error>` and keeps the input.
    fn reject(
        &mut self,
        label: &str,
        positions: &[usize],
        stage: Stage,
        error: &Error,
        input: DeadInput<'_>,
    ) -> Result<()> {
        eprintln!("{label}: {error}");
        self.count += positions.len();
        self.file
            .write(&dead_letter::entry(positions, stage, error, input))?;
        Ok(())
    }
}

/// How a record is named in messages: its position, and its line where
/// that differs (blank lines, pretty-printed documents).
fn place(record: &Record) -> String {
    if record.line == record.position {
        format!("record {}", record.position)
    } else {
        format!("record {} (line {})", record.position, record.line)
    }
}

fn parse_record(record: &Record) -> Result<Value> {
    // Text checked as UTF-8 once, whole, is parsed without serde_json
    // checking every string again; bytes that are not UTF-8 are parsed as
    // bytes, so that the error names where they fail, as it always did.
    match std::str::from_utf8(&record.bytes) {
        Ok(text) => Ok(serde_json::from_str(text)?),
        Err(_) => Ok(serde_json::from_slice(&record.bytes)?),
    }
}

fn translate(args: TranslateArgs) -> Result<Summary> {
    let registry = Registry::standard();
    let from = match args.from.as_str() {
        "auto" => None,
        name => Some(registry.get(name)?),
    };
    let to = registry.get(&args.to)?;
    let output = match args.envelope {
        Some(_) if to.name() != intelmq::NAME => {
            return Err(Error::shape("--envelope applies to --to intelmq only"))
        }
        Some(form) => Output::Envelope(form),
        None => Output::Native,
    };
    let origin = args.origin.unwrap_or_else(default_origin);
    let mut encode_context = EncodeContext::new(&origin);
    encode_context.meta_in_extra = args.meta_in_extra;
    let translator = Translator::new(
        &registry,
        from,
        to,
        output,
        DecodeContext::new(&origin),
        encode_context,
    );
    let mut records = Records::new(open_input(args.file.as_deref())?);
    let line_size = LineSize::default();
    let mut admission = Admission {
        guard: args.identity.guard(&origin)?,
        buffer: GroupBuffer::new(translator.merges_groups()),
        records: 0,
        duplicates: 0,
        loops: 0,
    };
    let stdout = io::stdout();
    let mut writer = Writer {
        out: BufWriter::with_capacity(1 << 16, stdout.lock()),
        rejects: Rejects {
            file: DeadLetterFile::open(args.dead_letter.as_deref())?,
            count: 0,
        },
        written: 0,
    };
    let workers = thread::available_parallelism().map_or(1, NonZeroUsize::get);
    let batch_size = match workers {
        1 => BATCH_IN_SEQUENCE,
        _ => BATCH,
    };
    let mut read_error = None;
    let mut input_ended = false;
    let read = || {
        if input_ended {
            return Ok(None);
        }
        let mut batch = Vec::with_capacity(batch_size);
        while batch.len() < batch_size {
            match records.next() {
                Some(Ok(record)) => batch.push(record),
                // What was read before the error still goes through.
                Some(Err(error)) => {
                    read_error = Some(error);
                    input_ended = true;
                }
                None => input_ended = true,
            }
            if input_ended {
                break;
            }
        }
        Ok(Some(Batch {
            records: batch,
            last: input_ended,
        }))
    };
    stages::run(
        workers,
        read,
        |batch| batch.decode(&translator),
        |decoded| admission.admit(decoded),
        |admitted| admitted.encode(&translator, &line_size),
        |encoded| writer.write(encoded),
    )?;
    let summary = finish(admission, writer)?;
    match read_error {
        Some(error) => Err(error.into()),
        None => Ok(summary),
    }
}

/// Records handled together: decoded and encoded by one worker, passed in
/// order through the seen-store and the group buffer, and written in order.
/// Large enough that handing a batch over costs nothing noticeable, small
/// enough that memory stays flat.
const BATCH: usize = 1024;

/// [`BATCH`] when one core runs every stage in turn, with no hand-over to
/// pay for: small enough that a batch's events (a few KB each) are still in
/// the core's cache when they are encoded and written. On the development
/// machine (2 MB of L2 a core) it gives 3-9 % more events per second on one
/// core than 1024 records, which do better across threads.
const BATCH_IN_SEQUENCE: usize = 128;

/// Room for a group's output lines before any batch is encoded, enough for
/// a typical 1 KB event in most formats, so that a buffer is not regrown a
/// byte size at a time.
const LINES_CAPACITY: usize = 2048;

/// Bytes of output per group in the batch encoded last, with an eighth
/// more: the next batch's buffer is made that size at once. A STIX bundle
/// is several times its event, and a buffer regrown by doubling copies all
/// it holds each time.
#[derive(Default)]
struct LineSize(AtomicUsize);

impl LineSize {
    /// Room for the lines of `groups` groups.
    fn room_for(&self, groups: usize) -> usize {
        groups.saturating_mul(self.0.load(Ordering::Relaxed).max(LINES_CAPACITY))
    }

    /// Notes that `groups` groups took `bytes`.
    fn note(&self, groups: usize, bytes: usize) {
        if let Some(per_group) = bytes.checked_div(groups) {
            self.0.store(per_group + per_group / 8, Ordering::Relaxed);
        }
    }
}

/// Records as read; `last` when the input ends with them.
struct Batch {
    records: Vec<Record>,
    last: bool,
}

impl Batch {
    /// Decodes each record into its events (on a worker).
    fn decode(self, translator: &Translator) -> Decoded {
        let events = self
            .records
            .iter()
            .map(|record| translator.decode_bytes(&record.bytes))
            .collect();
        Decoded {
            records: self.records,
            events,
            last: self.last,
        }
    }
}

/// A batch decoded: for each record its events, or why it has none.
struct Decoded {
    records: Vec<Record>,
    events: Vec<Result<Vec<Envelope>>>,
    last: bool,
}

/// One step of a batch's output, in input order.
enum Step {
    /// Record `index` of the batch could not be decoded.
    Rejected(usize, Error),
    /// `groups[index]` is ready to encode.
    Group(usize),
}

/// A batch admitted: what to write, step by step, and the groups to encode.
struct Admitted {
    records: Vec<Record>,
    steps: Vec<Step>,
    groups: Groups,
}

impl Admitted {
    /// Encodes the groups one after the other into one buffer (on a worker).
    /// What only a rejection report would need is dropped here, so that the
    /// writer's thread does not spend its time freeing events.
    fn encode(self, translator: &Translator, line_size: &LineSize) -> Encoded {
        let Admitted {
            mut records,
            steps,
            mut groups,
        } = self;
        let mut text = Vec::with_capacity(line_size.room_for(groups.ranges.len()));
        let results: Vec<_> = groups
            .ranges
            .iter()
            .map(|range| {
                let envelopes = groups.envelopes.get(range.clone()).unwrap_or_default();
                let start = text.len();
                match translator.encode_lines(envelopes, &mut text) {
                    Ok(count) => Ok((start..text.len(), count)),
                    Err(error) => {
                        text.truncate(start);
                        Err(error)
                    }
                }
            })
            .collect();
        line_size.note(groups.ranges.len(), text.len());
        if results.iter().all(Result::is_ok) {
            groups = Groups::default();
        }
        if !steps.iter().any(|step| matches!(step, Step::Rejected(..))) {
            records = Vec::new();
        }
        Encoded {
            records,
            steps,
            groups,
            text,
            results,
        }
    }
}

/// A batch encoded: its steps, and for each group where its lines lie in
/// `text` and how many messages they are, or why it could not be encoded.
/// `records` and `groups` are kept only when a step rejects them.
struct Encoded {
    records: Vec<Record>,
    steps: Vec<Step>,
    groups: Groups,
    text: Vec<u8>,
    results: Vec<Result<(Range<usize>, usize)>>,
}

/// A batch's groups ready to encode, in flat lists rather than a pair of
/// lists per group: each event with its input position, and each group a
/// range of them.
#[derive(Default)]
struct Groups {
    positions: Vec<usize>,
    envelopes: Vec<Envelope>,
    ranges: Vec<Range<usize>>,
}

impl Groups {
    /// Adds a group of (input position, event) members; returns its index.
    fn push(&mut self, members: impl IntoIterator<Item = (usize, Envelope)>) -> usize {
        let start = self.envelopes.len();
        for (position, envelope) in members {
            self.positions.push(position);
            self.envelopes.push(envelope);
        }
        self.ranges.push(start..self.envelopes.len());
        self.ranges.len() - 1
    }

    /// The input positions and the events of group `index`.
    fn get(&self, index: usize) -> Option<(&[usize], &[Envelope])> {
        let range = self.ranges.get(index)?;
        let positions = self.positions.get(range.clone())?;
        let envelopes = self.envelopes.get(range.clone())?;
        Some((positions, envelopes))
    }
}

/// The ordered middle of a `translate` run: the seen-store and the group
/// buffer, which see every event in input order.
struct Admission {
    guard: Option<LoopGuard>,
    buffer: GroupBuffer<usize>,
    records: usize,
    duplicates: usize,
    loops: usize,
}

impl Admission {
    /// Drops duplicates and loops, and groups the rest for encoding; after
    /// the last batch, also the groups still waiting for members.
    fn admit(&mut self, batch: Decoded) -> Result<Admitted> {
        self.records += batch.records.len();
        let mut steps = Vec::with_capacity(batch.records.len());
        let mut groups = Groups::default();
        for (index, (record, decoded)) in batch.records.iter().zip(batch.events).enumerate() {
            let mut envelopes = match decoded {
                Ok(envelopes) => envelopes,
                Err(error) => {
                    steps.push(Step::Rejected(index, error));
                    continue;
                }
            };
            let verdict = match &mut self.guard {
                Some(guard) => guard.admit(&mut envelopes)?,
                None => Verdict::New,
            };
            match verdict {
                Verdict::New => {}
                Verdict::Duplicate => self.duplicates += 1,
                Verdict::Loop => self.loops += 1,
            }
            if verdict != Verdict::New {
                continue;
            }
            for envelope in envelopes {
                if !self.buffer.holds(&envelope) {
                    let group = groups.push([(record.position, envelope)]);
                    steps.push(Step::Group(group));
                    continue;
                }
                for group in self.buffer.push(record.position, envelope) {
                    steps.push(Step::Group(groups.push(group)));
                }
            }
        }
        if batch.last {
            for group in self.buffer.drain() {
                steps.push(Step::Group(groups.push(group)));
            }
        }
        Ok(Admitted {
            records: batch.records,
            steps,
            groups,
        })
    }
}

/// The end of a `translate` run: output and rejection reports, in input
/// order.
struct Writer<W: Write> {
    out: W,
    rejects: Rejects,
    written: usize,
}

impl<W: Write> Writer<W> {
    /// Writes a batch's lines and reports its rejected records.
    fn write(&mut self, batch: Encoded) -> Result<()> {
        // Groups encoded one after another lie side by side in the text:
        // their lines go out in one piece, which a whole batch's worth
        // sends past the output buffer rather than through it.
        let mut lines = 0..0;
        for step in batch.steps {
            match step {
                Step::Group(index) => match batch.results.get(index) {
                    Some(Ok((group, count))) => {
                        if group.start != lines.end {
                            self.write_text(&batch.text, &lines)?;
                            lines.start = group.start;
                        }
                        lines.end = group.end;
                        self.written += count;
                    }
                    Some(Err(error)) => {
                        self.write_text(&batch.text, &mem::take(&mut lines))?;
                        if let Some((positions, envelopes)) = batch.groups.get(index) {
                            self.reject_group(positions, envelopes, error)?;
                        }
                    }
                    None => {}
                },
                Step::Rejected(index, error) => {
                    self.write_text(&batch.text, &mem::take(&mut lines))?;
                    let Some(record) = batch.records.get(index) else {
                        continue;
                    };
                    let input = DeadInput::Bytes(&record.bytes);
                    let at = [record.position];
                    self.rejects
                        .reject(&place(record), &at, Stage::Decode, &error, input)?;
                }
            }
        }
        self.write_text(&batch.text, &lines)
    }

    /// Writes the lines at `lines` of a batch's text.
    fn write_text(&mut self, text: &[u8], lines: &Range<usize>) -> Result<()> {
        self.out
            .write_all(text.get(lines.clone()).unwrap_or_default())?;
        Ok(())
    }

    /// Reports a group that could not be encoded, naming its records.
    fn reject_group(
        &mut self,
        positions: &[usize],
        envelopes: &[Envelope],
        error: &Error,
    ) -> Result<()> {
        let mut positions = positions.to_vec();
        positions.dedup();
        let places: Vec<String> = positions.iter().map(usize::to_string).collect();
        let noun = if positions.len() == 1 {
            "record"
        } else {
            "records"
        };
        let label = format!("{noun} {}", places.join(", "));
        let input = DeadInput::Envelopes(envelopes);
        self.rejects
            .reject(&label, &positions, Stage::Encode, error, input)
    }
}

/// Flushes everything and prints the run's counts.
fn finish<W: Write>(mut admission: Admission, mut writer: Writer<W>) -> Result<Summary> {
    writer.out.flush()?;
    writer.rejects.file.flush()?;
    if let Some(guard) = &mut admission.guard {
        guard.flush()?;
        if admission.duplicates + admission.loops > 0 {
            eprintln!(
                "dropped {} duplicates and {} loops",
                admission.duplicates, admission.loops
            );
        }
    }
    let rejected = writer.rejects.count;
    if rejected > 0 {
        eprintln!(
            "{} records read, {} messages written, {rejected} records rejected",
            admission.records, writer.written
        );
    }
    Ok(Summary {
        accepted: admission.records.saturating_sub(rejected),
        rejected,
    })
}

fn serve(args: ServeArgs) -> Result<Summary> {
    let origin = args.origin.unwrap_or_else(default_origin);
    crate::serve::main(args.config.as_deref(), &origin, &args.listen, &args.output)?;
    Ok(Summary::default())
}

fn validate(args: ValidateArgs) -> Result<Summary> {
    let registry = Registry::standard();
    let format = registry.get(&args.format)?;
    let context = DecodeContext::new(&default_origin());
    let input = open_input(args.file.as_deref())?;
    let mut summary = Summary::default();
    for record in Records::new(input) {
        let record = record?;
        let checked = parse_record(&record).and_then(|value| {
            if Envelope::wire_form(&value).is_some() {
                Schema::envelope().check(&value)?;
                Envelope::from_value(value, context.harmonization).map(drop)
            } else {
                format.validate(&value, &context)
            }
        });
        match checked {
            Ok(()) => summary.accepted += 1,
            Err(error) => {
                eprintln!("{}: {error}", place(&record));
                summary.rejected += 1;
            }
        }
    }
    println!("{} valid, {} invalid", summary.accepted, summary.rejected);
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffers_are_sized_from_the_last_batch_with_an_eighth_more() {
        let line_size = LineSize::default();
        assert_eq!(line_size.room_for(3), 3 * LINES_CAPACITY);
        line_size.note(4, 4 * 8_000);
        assert_eq!(line_size.room_for(2), 2 * 9_000);
        // A batch with no group to write says nothing of the next one.
        line_size.note(0, 0);
        assert_eq!(line_size.room_for(1), 9_000);
        // Small lines never size a buffer below the default room.
        line_size.note(10, 10 * 100);
        assert_eq!(line_size.room_for(1), LINES_CAPACITY);
    }
}
