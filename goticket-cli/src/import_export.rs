//! `goticket import` and `goticket export`: reading and writing CSV and JSON Lines.
//! Rows are validated by core's import rules and written by the store; this module
//! only moves bytes, shows progress and reports.

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::{self, BufRead, BufReader, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use goticket_core::import::{
    BookingRow, EventRow, ImportAction, ImportMode, REASON_COLUMN, RowError, booking_export_row, event_export_row,
    event_reference, is_exported,
};
use goticket_core::{
    BookingField, Columns, Cursor, Error, EventField, EventFilter, FieldValue, PageRequest, PageStart, Principal,
    Service,
};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::Value;

use crate::args::{ExportBookingsArgs, ExportEventsArgs, FileFormat, Format, ImportArgs};
use crate::output::Out;
use crate::parse::{parse_opt, time_opt};

/// Counts the lines of what it reads, so a CSV record's physical first line is known
/// from its byte offset. (The csv crate's own line count is off after CRLF line
/// ends.) Records come in file order, so only the newlines within the reader's
/// read-ahead are kept.
struct LineCounter<R> {
    inner: R,
    read: u64,
    lines: Lines,
}

/// The newlines a [`LineCounter`] has seen and not yet passed.
#[derive(Clone, Default)]
struct Lines(std::rc::Rc<std::cell::RefCell<(u64, std::collections::VecDeque<u64>)>>);

impl<R: io::Read> LineCounter<R> {
    fn new(inner: R) -> (Self, Lines) {
        let lines = Lines::default();
        (LineCounter { inner, read: 0, lines: lines.clone() }, lines)
    }
}

impl<R: io::Read> io::Read for LineCounter<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        let mut seen = self.lines.0.borrow_mut();
        for (i, _) in buf[..n].iter().enumerate().filter(|(_, b)| **b == b'\n') {
            seen.1.push_back(self.read + i as u64);
        }
        self.read += n as u64;
        Ok(n)
    }
}

impl Lines {
    /// The line (from 1) on which the record at `position` starts.
    fn line_at(&self, position: Option<&csv::Position>) -> u64 {
        let Some(start) = position.map(csv::Position::byte) else { return 0 };
        let mut seen = self.0.borrow_mut();
        // `<=`: after a CRLF the csv reader places the next record at its `\n`.
        while seen.1.front().is_some_and(|&at| at <= start) {
            seen.1.pop_front();
            seen.0 += 1;
        }
        seen.0 + 1
    }
}

/// One row as read: its line and its fields, or why it could not be read.
struct RawRow {
    line: u64,
    fields: std::result::Result<HashMap<String, String>, RowError>,
}

fn format_of(path: &str, given: Option<FileFormat>) -> Result<FileFormat> {
    if let Some(f) = given {
        return Ok(f);
    }
    let ext = Path::new(path).extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase);
    match ext.as_deref() {
        Some("csv") => Ok(FileFormat::Csv),
        Some("jsonl" | "ndjson" | "json") => Ok(FileFormat::Jsonl),
        _ => Err(Error::validation(
            "--input-format",
            format!("cannot tell the format of {path:?}: give --input-format csv|jsonl"),
        )
        .into()),
    }
}

/// Opens the rows of a file. For CSV the header is checked first; a bad header
/// fails the whole import (exit 5) before any row is read.
fn read_rows(path: &Path, format: FileFormat, columns: &Columns) -> Result<Box<dyn Iterator<Item = RawRow>>> {
    let file =
        BufReader::with_capacity(1 << 16, File::open(path).with_context(|| format!("opening {}", path.display()))?);
    match format {
        FileFormat::Csv => {
            let (file, lines) = LineCounter::new(file);
            let mut reader = csv::ReaderBuilder::new().has_headers(true).from_reader(file);
            let headers: Vec<String> = reader
                .headers()
                .map_err(|e| Error::validation("header", format!("line 1: {e}")))?
                .iter()
                .map(|h| h.trim().to_owned())
                .collect();
            if let Err(errors) = goticket_core::import::check_columns(&headers, columns) {
                let lines: Vec<String> = errors.iter().map(ToString::to_string).collect();
                return Err(Error::validation("header", lines.join("; ")).into());
            }
            Ok(Box::new(reader.into_records().map(move |r| match r {
                Ok(rec) => RawRow {
                    line: lines.line_at(rec.position()),
                    fields: Ok(headers.iter().cloned().zip(rec.iter().map(str::to_owned)).collect()),
                },
                Err(e) => {
                    let line = lines.line_at(e.position());
                    RawRow { line, fields: Err(RowError { line, column: String::new(), reason: e.to_string() }) }
                }
            })))
        }
        FileFormat::Jsonl => {
            let columns = columns.clone();
            Ok(Box::new(file.lines().zip(1u64..).filter_map(move |(l, line)| {
                let fields = match l {
                    Err(e) => Err(RowError { line, column: String::new(), reason: format!("cannot read: {e}") }),
                    Ok(text) if text.trim().is_empty() => return None,
                    // A byte-order mark before the first line, as some editors write.
                    Ok(text) if line == 1 => json_fields(line, text.trim_start_matches('\u{feff}'), &columns),
                    Ok(text) => json_fields(line, &text, &columns),
                };
                Some(RawRow { line, fields })
            })))
        }
    }
}

fn json_fields(line: u64, text: &str, columns: &Columns) -> std::result::Result<HashMap<String, String>, RowError> {
    let err = |column: &str, reason: String| RowError { line, column: column.to_owned(), reason };
    let obj: serde_json::Map<String, Value> =
        serde_json::from_str(text).map_err(|e| err("", format!("not a JSON object: {e}")))?;
    let mut fields = HashMap::new();
    for (k, v) in obj {
        if k == REASON_COLUMN {
            continue;
        }
        if !columns.contains(&k) {
            return Err(err(&k, "is not a known key".into()));
        }
        let text = match v {
            Value::String(s) => s,
            Value::Number(n) => n.to_string(),
            Value::Null => continue,
            Value::Object(ref o) if k == "price" => {
                // The export's and the API's shape: {"amount_minor": 1250, "currency": "EUR"}.
                let m: goticket_core::Money = serde_json::from_value(Value::Object(o.clone()))
                    .map_err(|e| err(&k, format!("is not a price: {e}")))?;
                m.to_string()
            }
            other => return Err(err(&k, format!("must be text or a number, got {other}"))),
        };
        fields.insert(k, text);
    }
    Ok(fields)
}

/// A row parser of core's: line and field getter in, a validated row or all its
/// errors out.
type Parser<T> = fn(u64, &dyn Fn(&str) -> Option<String>) -> std::result::Result<T, Vec<RowError>>;

fn validate<T>(parse: Parser<T>, raw: RawRow) -> std::result::Result<T, Vec<RowError>> {
    let fields = raw.fields.map_err(|e| vec![e])?;
    parse(raw.line, &|c| fields.get(c).cloned())
}

/// The service call that writes one kind of row.
type Run<'a, T> = &'a dyn Fn(
    &mut dyn Iterator<Item = T>,
    ImportMode,
    &mut dyn FnMut(u64, &goticket_core::Result<ImportAction>),
) -> goticket_core::Result<()>;

/// Standard input is spooled to a temporary file: all-or-nothing needs two passes.
fn local_path(file: &str) -> Result<(PathBuf, Option<tempfile::NamedTempFile>)> {
    if file != "-" {
        return Ok((PathBuf::from(file), None));
    }
    let mut spool = tempfile::NamedTempFile::new().context("creating a temporary file for standard input")?;
    io::copy(&mut io::stdin().lock(), &mut spool).context("reading standard input")?;
    Ok((spool.path().to_path_buf(), Some(spool)))
}

fn progress(len: Option<u64>) -> ProgressBar {
    if !io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let style = |template: &str, fallback: ProgressStyle| {
        ProgressStyle::with_template(template)
            .map(|s| {
                s.with_key("rate", |st: &indicatif::ProgressState, w: &mut dyn std::fmt::Write| {
                    let _ = write!(w, "{}", rate(st.per_sec()));
                })
            })
            .unwrap_or(fallback)
    };
    let bar = match len {
        Some(n) => ProgressBar::new(n)
            .with_style(style("{bar:40} {pos}/{len} rows  {rate}  eta {eta}", ProgressStyle::default_bar())),
        None => ProgressBar::new_spinner()
            .with_style(style("{spinner} {pos} rows  {rate}  {elapsed}", ProgressStyle::default_spinner())),
    };
    bar.set_draw_target(indicatif::ProgressDrawTarget::stderr());
    bar
}

/// A rate people read: `78,544 rows/s` (whole rows, thousands grouped).
fn rate(per_sec: f64) -> String {
    let n = if per_sec.is_finite() && per_sec > 0.0 { per_sec.round() as u64 } else { 0 };
    format!("{} rows/s", grouped(n))
}

fn grouped(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[derive(Default, serde::Serialize)]
struct Summary {
    rows: u64,
    created: u64,
    updated: u64,
    unchanged: u64,
    rejected: u64,
    dry_run: bool,
    seconds: f64,
    rows_per_sec: f64,
}

impl Summary {
    fn count(&mut self, outcome: &goticket_core::Result<ImportAction>) {
        self.rows += 1;
        match outcome {
            Ok(ImportAction::Created) => self.created += 1,
            Ok(ImportAction::Updated) => self.updated += 1,
            Ok(ImportAction::Unchanged) => self.unchanged += 1,
            Err(_) => self.rejected += 1,
        }
    }
}

/// Writes the rows an import rejected to `out`, in the input's format and columns,
/// each with an [`REASON_COLUMN`] cell (key) holding every reason: the file can be
/// fixed and imported again as it is (imports ignore that column; a rejects file made
/// from a rejects file overwrites it). A second pass over the input finds the rows by
/// line, so nothing but the reasons is kept in memory.
fn write_rejects(input: &Path, format: FileFormat, out: &File, reasons: &BTreeMap<u64, String>) -> Result<()> {
    let file =
        BufReader::with_capacity(1 << 16, File::open(input).with_context(|| format!("opening {}", input.display()))?);
    match format {
        FileFormat::Csv => {
            let (file, lines) = LineCounter::new(file);
            let mut r = csv::ReaderBuilder::new().has_headers(true).flexible(true).from_reader(file);
            // Flexible: a rejected row with more cells than the header is kept whole.
            let mut w = csv::WriterBuilder::new().flexible(true).from_writer(io::BufWriter::new(out));
            let mut header = r.byte_headers()?.clone();
            let reason_at = match header.iter().position(|h| h.trim_ascii() == REASON_COLUMN.as_bytes()) {
                Some(i) => i,
                None => {
                    header.push_field(REASON_COLUMN.as_bytes());
                    header.len() - 1
                }
            };
            w.write_byte_record(&header)?;
            for rec in r.byte_records() {
                let Ok(rec) = rec else { continue };
                let Some(why) = reasons.get(&lines.line_at(rec.position())) else { continue };
                // Every cell the row had (a row with too many is kept whole, to be seen).
                let mut row: Vec<&[u8]> = rec.iter().collect();
                if row.len() < header.len() {
                    row.resize(header.len(), b"");
                }
                row[reason_at] = why.as_bytes();
                w.write_record(row)?;
            }
            w.flush()?;
        }
        FileFormat::Jsonl => {
            let mut w = io::BufWriter::new(out);
            for (bytes, line) in file.split(b'\n').zip(1u64..) {
                let Some(why) = reasons.get(&line) else { continue };
                let text = String::from_utf8_lossy(&bytes?).into_owned();
                // A line that is not a JSON object is kept as text under "raw", to be
                // rewritten by hand.
                let mut obj = match serde_json::from_str::<serde_json::Map<String, Value>>(&text) {
                    Ok(obj) => obj,
                    Err(_) => serde_json::Map::from_iter([("raw".to_owned(), Value::String(text))]),
                };
                obj.insert(REASON_COLUMN.to_owned(), Value::String(why.clone()));
                serde_json::to_writer(&mut w, &obj)?;
                w.write_all(b"\n")?;
            }
            w.flush()?;
        }
    }
    Ok(())
}

/// The rejects file, made before the import writes anything (so a path that cannot
/// be written fails first), as a temporary file beside it that is renamed into place
/// when complete. It may not be the input.
fn open_rejects(path: &Path, input: &Path) -> Result<tempfile::NamedTempFile> {
    let same = |a: &Path, b: &Path| a.canonicalize().ok().zip(b.canonicalize().ok()).is_some_and(|(a, b)| a == b);
    if same(path, input) {
        return Err(Error::validation("--rejects", format!("{} is the input file", path.display())).into());
    }
    if path.is_dir() {
        return Err(Error::validation("--rejects", format!("{} is a directory", path.display())).into());
    }
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let mut builder = tempfile::Builder::new();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        // A file for people to edit: readable as a file they made would be.
        builder.permissions(std::fs::Permissions::from_mode(0o644));
    }
    builder.tempfile_in(dir).with_context(|| format!("creating {}", path.display()))
}

/// Every reason of each rejected row, by line, as one text per row.
fn reasons_by_line(errors: &[RowError]) -> BTreeMap<u64, String> {
    let mut by_line: BTreeMap<u64, String> = BTreeMap::new();
    for e in errors {
        let one = if e.column.is_empty() { e.reason.clone() } else { format!("{}: {}", e.column, e.reason) };
        by_line.entry(e.line).and_modify(|t| *t = format!("{t}; {one}")).or_insert(one);
    }
    by_line
}

fn refusal(line: u64, e: &Error) -> RowError {
    RowError { line, column: String::new(), reason: e.to_string() }
}

/// Prints at most 50 errors to stderr, then how many more there were.
fn report_errors(errors: &[RowError], total: u64) {
    let mut err = io::stderr().lock();
    for e in errors.iter().take(50) {
        let _ = writeln!(err, "goticket: {e}");
    }
    if total > 50 {
        let _ = writeln!(err, "goticket: ... and {} more", total - 50);
    }
}

/// `goticket import events`.
pub fn import_events(s: &Service, p: &Principal, a: &ImportArgs, out: &mut Out<impl Write>) -> Result<()> {
    let run: Run<'_, EventRow> = &|rows, mode, on_row| s.import_events(p, rows, mode, on_row);
    import(a, out, &EventField::columns(), goticket_core::import::parse_event_row, run)
}

/// `goticket import bookings`.
pub fn import_bookings(s: &Service, p: &Principal, a: &ImportArgs, out: &mut Out<impl Write>) -> Result<()> {
    let run: Run<'_, BookingRow> = &|rows, mode, on_row| s.import_bookings(p, rows, mode, on_row);
    import(a, out, &BookingField::columns(), goticket_core::import::parse_booking_row, run)
}

fn import<T>(
    a: &ImportArgs,
    out: &mut Out<impl Write>,
    columns: &Columns,
    parse: Parser<T>,
    run: Run<'_, T>,
) -> Result<()> {
    let format = format_of(&a.file, a.input_format)?;
    let (path, _spool) = local_path(&a.file)?;
    let started = Instant::now();
    let mut summary = Summary { dry_run: a.dry_run, ..Summary::default() };

    let mut rejected_errors: Vec<RowError> = Vec::new();
    let rejects = match a.rejects.as_deref() {
        Some(p) if a.skip_invalid => Some((p, open_rejects(p, &path)?)),
        _ => None,
    };
    if a.skip_invalid {
        // One pass: invalid rows are set aside, valid ones are committed in batches; a
        // re-run after an interruption completes the import exactly.
        let bar = progress(None);
        let mut invalid: Vec<RowError> = Vec::new();
        let mut rejected_rows = 0u64;
        let mut rows = read_rows(&path, format, columns)?.filter_map(|raw| match validate(parse, raw) {
            Ok(row) => Some(row),
            Err(errors) => {
                rejected_rows += 1;
                invalid.extend(errors);
                None
            }
        });
        let mut refused: Vec<RowError> = Vec::new();
        run(&mut rows, ImportMode::Batches(a.batch_size.max(1)), &mut |line, outcome| {
            summary.count(outcome);
            bar.inc(1);
            if let Err(e) = outcome {
                refused.push(refusal(line, e));
            }
        })?;
        drop(rows);
        bar.finish_and_clear();
        summary.rows += rejected_rows;
        summary.rejected += rejected_rows;
        rejected_errors = invalid.into_iter().chain(refused).collect();
        rejected_errors.sort_by_key(|e| e.line);
    } else {
        // Pass 1: validate every row, keeping none of them in memory.
        let mut errors = Vec::new();
        let (mut valid, mut bad) = (0u64, 0u64);
        for raw in read_rows(&path, format, columns)? {
            match validate(parse, raw) {
                Ok(_) => valid += 1,
                Err(e) => {
                    bad += 1;
                    if errors.len() < 50 {
                        errors.extend(e);
                    }
                }
            }
        }
        if bad > 0 {
            report_errors(&errors, errors.len() as u64);
            bail!(Error::validation(
                "import",
                format!("{bad} of {} rows are invalid; nothing was written", valid + bad)
            ));
        }
        // Pass 2: one transaction (or a dry run that rolls back).
        let bar = progress(Some(valid));
        let mode = if a.dry_run { ImportMode::DryRun } else { ImportMode::AllOrNothing };
        let mut refused = Vec::new();
        let mut rows = read_rows(&path, format, columns)?.filter_map(|raw| validate(parse, raw).ok());
        let result = run(&mut rows, mode, &mut |line, outcome| {
            summary.count(outcome);
            bar.inc(1);
            if let Err(e) = outcome {
                refused.push(refusal(line, e));
            }
        });
        bar.finish_and_clear();
        if let Err(e) = result {
            report_errors(&refused, refused.len() as u64);
            return Err(e.into());
        }
    }
    summary.seconds = started.elapsed().as_secs_f64();
    summary.rows_per_sec = if summary.seconds > 0.0 { summary.rows as f64 / summary.seconds } else { 0.0 };
    let text = format!(
        "{}{} rows: {} created, {} updated, {} unchanged, {} rejected, in {:.2} s ({})",
        if summary.dry_run { "dry run, nothing written: " } else { "" },
        summary.rows,
        summary.created,
        summary.updated,
        summary.unchanged,
        summary.rejected,
        summary.seconds,
        rate(summary.rows_per_sec)
    );
    out.message(&text, serde_json::to_value(&summary)?)?;
    if let Some((dest, file)) = rejects {
        write_rejects(&path, format, file.as_file(), &reasons_by_line(&rejected_errors))
            .and_then(|()| file.persist(dest).map(drop).map_err(|e| e.error.into()))
            .with_context(|| format!("writing the rejected rows to {}", dest.display()))?;
    }
    if summary.rejected > 0 {
        report_errors(&rejected_errors, rejected_errors.len() as u64);
        let whither = match &a.rejects {
            Some(p) => format!("written to {} to fix and import again", p.display()),
            None => "listed above (--rejects FILE writes them to fix and import again)".to_owned(),
        };
        bail!(Error::validation(
            "import",
            format!(
                "{} of {} rows were rejected, {whither}; the other rows were written",
                summary.rejected, summary.rows
            )
        ));
    }
    Ok(())
}

/// Where exported rows go: CSV with the import's header, or JSON Lines.
enum Sink {
    Csv(Box<csv::Writer<Box<dyn Write>>>, Vec<&'static str>),
    Jsonl(Box<dyn Write>, Vec<&'static str>),
}

impl Sink {
    /// The file format: `--output-format`, else the `--output` file's extension, else
    /// the global `--format` (json: JSON Lines, csv: CSV), else CSV.
    fn open(
        output: Option<&Path>,
        format: Option<FileFormat>,
        global: (Format, bool),
        names: Vec<&'static str>,
    ) -> Result<Self> {
        let by_extension = output.and_then(|path| format_of(&path.display().to_string(), None).ok());
        let format = match (format, by_extension, global) {
            (Some(f), _, _) | (None, Some(f), _) => f,
            (None, None, (Format::Json, _)) => FileFormat::Jsonl,
            (None, None, (Format::Tsv, true)) => {
                let why = "export writes CSV or JSON Lines, not tsv: give --output-format csv|jsonl, \
                           an --output file ending .csv or .jsonl, or --format csv|json";
                return Err(Error::validation("--format", why).into());
            }
            (None, None, (Format::Csv | Format::Table | Format::Tsv, _)) => FileFormat::Csv,
        };
        let file: Box<dyn Write> = match output {
            Some(path) => Box::new(io::BufWriter::new(
                File::create(path).with_context(|| format!("creating {}", path.display()))?,
            )),
            None => Box::new(io::BufWriter::new(io::stdout().lock())),
        };
        Ok(match format {
            FileFormat::Csv => {
                let mut w = csv::Writer::from_writer(file);
                w.write_record(&names)?;
                Sink::Csv(Box::new(w), names)
            }
            FileFormat::Jsonl => Sink::Jsonl(file, names),
        })
    }

    /// Writes one row, its cells found by column name. A row must have exactly the
    /// columns the importer reads: one that has more or fewer is a bug, refused here
    /// rather than written shifted.
    fn row(&mut self, row: Vec<(&'static str, FieldValue)>) -> Result<()> {
        let names = match self {
            Sink::Csv(_, n) | Sink::Jsonl(_, n) => n,
        };
        // Both come from core's record description, in its order; a row that differs
        // is a bug, refused rather than written shifted.
        if !row.iter().map(|(k, _)| *k).eq(names.iter().copied()) {
            let keys: Vec<&str> = row.iter().map(|(k, _)| *k).collect();
            bail!("internal error: an export row has columns {keys:?} where the file has {names:?}");
        }
        match self {
            Sink::Csv(w, _) => w.write_record(row.iter().map(|(_, v)| v.text()))?,
            Sink::Jsonl(w, _) => {
                // Files carry text and counts (a price as `12.50 EUR`, as in CSV).
                let obj: serde_json::Map<String, Value> = row
                    .into_iter()
                    .filter_map(|(k, v)| {
                        let json = match v {
                            FieldValue::Null => return None,
                            FieldValue::Number(n) => Value::from(n),
                            other => Value::String(other.text()),
                        };
                        Some((k.to_owned(), json))
                    })
                    .collect();
                serde_json::to_writer(&mut *w, &obj)?;
                w.write_all(b"\n")?;
            }
        }
        Ok(())
    }

    fn finish(self) -> Result<()> {
        match self {
            Sink::Csv(mut w, _) => w.flush()?,
            Sink::Jsonl(mut w, _) => w.flush()?,
        }
        Ok(())
    }
}

/// `goticket export events`: pages through the events (a page at a time, so memory
/// stays flat) and writes the columns `import events` reads.
pub fn export_events(s: &Service, p: &Principal, a: &ExportEventsArgs, out: &mut Out<impl Write>) -> Result<()> {
    let filter = EventFilter {
        starts_from: time_opt("--from", a.from.as_deref())?,
        starts_before: time_opt("--to", a.to.as_deref())?,
        status: parse_opt("--status", a.status.as_deref())?,
        ..EventFilter::default()
    };
    let mut sink =
        Sink::open(a.output.as_deref(), a.output_format, (out.format(), out.was_chosen()), EventField::file_order())?;
    let mut count = 0u64;
    each_item(
        |page| s.list_events(p, &filter, page),
        |e| {
            count += 1;
            sink.row(event_export_row(e))
        },
    )?;
    sink.finish()?;
    exported(out, a.output.is_some(), count, "events")
}

/// Calls `each` for every item of a list, fetched 1,000 at a time so memory stays flat.
fn each_item<T>(
    mut fetch: impl FnMut(PageRequest) -> goticket_core::Result<goticket_core::Page<T>>,
    mut each: impl FnMut(&T) -> Result<()>,
) -> Result<()> {
    let mut start = PageStart::First;
    loop {
        let page = fetch(PageRequest::new(1000, start)?)?;
        for item in &page.items {
            each(item)?;
        }
        match page.next_cursor {
            Some(c) => start = PageStart::After(Cursor::decode(&c)?),
            None => return Ok(()),
        }
    }
}

/// Says how many rows went to the output file (nothing when they went to stdout).
fn exported(out: &mut Out<impl Write>, to_file: bool, count: u64, what: &str) -> Result<()> {
    if to_file {
        out.message(&format!("exported {count} {what}"), serde_json::json!({ "exported": count }))?;
    }
    Ok(())
}

/// `goticket export bookings`: the live bookings (held and confirmed; with `--all`
/// every booking), a page at a time, in the columns `import bookings` reads, with what
/// moves each exactly (its code, unit price and tickets with their check-ins). The event
/// column holds the event's external id (or, lacking one, its id), as `export events`
/// does.
pub fn export_bookings(s: &Service, p: &Principal, a: &ExportBookingsArgs, out: &mut Out<impl Write>) -> Result<()> {
    let event = match parse_opt::<goticket_core::EventKey>("--event", a.event.as_deref())? {
        Some(key) => Some(s.event_id(p, &key)?),
        None => None,
    };
    let filter = goticket_core::BookingFilter {
        event,
        customer: parse_opt("--customer", a.customer.as_deref())?,
        ..goticket_core::BookingFilter::default()
    };
    let mut sink =
        Sink::open(a.output.as_deref(), a.output_format, (out.format(), out.was_chosen()), BookingField::file_order())?;
    let mut event_refs: HashMap<goticket_core::EventId, String> = HashMap::new();
    let mut count = 0u64;
    each_item(
        |page| s.list_bookings(p, filter.clone(), page),
        |b| {
            if !is_exported(b, a.all) {
                return Ok(());
            }
            let event_ref = match event_refs.entry(b.event_id) {
                std::collections::hash_map::Entry::Occupied(o) => o.get().clone(),
                std::collections::hash_map::Entry::Vacant(v) => {
                    let e = s.event(p, &goticket_core::EventKey::Id(b.event_id))?;
                    v.insert(event_reference(&e)).clone()
                }
            };
            count += 1;
            sink.row(booking_export_row(b, &event_ref))
        },
    )?;
    sink.finish()?;
    exported(out, a.output.is_some(), count, "bookings")
}

#[cfg(test)]
mod round_trip;

#[cfg(test)]
mod tests {
    #[test]
    fn rates_read_as_whole_grouped_rows() {
        assert_eq!(super::rate(78_543.749_8), "78,544 rows/s");
        assert_eq!(super::rate(999.4), "999 rows/s");
        assert_eq!(super::rate(1_000.0), "1,000 rows/s");
        assert_eq!(super::rate(f64::NAN), "0 rows/s");
        assert_eq!(super::grouped(1_234_567), "1,234,567");
    }
}
