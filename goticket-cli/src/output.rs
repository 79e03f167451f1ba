//! Rendering: tables for people, one JSON document or CSV for scripts. Every kind of
//! result says once which columns it has; the three formats are built from that.

use std::io::{self, Write};

use comfy_table::{ColumnConstraint, ContentArrangement, Table, Width, presets};
use goticket_core::{
    Booking, BookingField, BookingStatus, CheckIn, Event, EventField, InTable, Page, Reservation, SalesRow, Timestamp,
};
use serde::Serialize;

use crate::args::Format;

/// A result that can be shown as a row of named columns.
pub trait Tabular: Serialize {
    /// Column names, in order (also the CSV header).
    fn headers() -> Vec<&'static str>;
    /// Columns left out of list tables to keep them readable (JSON and CSV keep all).
    fn wide() -> Vec<&'static str> {
        Vec::new()
    }
    /// The values, in header order.
    fn row(&self) -> Vec<String>;
    /// List-table columns to leave out, in this order, when the table is wider than
    /// the terminal (the least useful first).
    fn drop_first() -> Vec<&'static str> {
        Vec::new()
    }
}

fn opt<T: ToString>(v: &Option<T>) -> String {
    v.as_ref().map(ToString::to_string).unwrap_or_default()
}

fn time(t: &Timestamp) -> String {
    t.to_string()
}

/// An event's columns are its fields, as core describes them.
impl Tabular for Event {
    fn headers() -> Vec<&'static str> {
        EventField::ALL.iter().map(|f| f.name()).collect()
    }
    fn wide() -> Vec<&'static str> {
        EventField::ALL.iter().filter(|f| f.in_table() == InTable::Detail).map(|f| f.name()).collect()
    }
    fn row(&self) -> Vec<String> {
        EventField::ALL.iter().map(|f| f.value(self).text()).collect()
    }
    fn drop_first() -> Vec<&'static str> {
        vec!["held", "sold", "capacity", "slug", "status", "price", "available"]
    }
}

/// A booking's columns are its fields, as core describes them, and its total (the
/// amount people look for; JSON has the unit price and the quantity).
impl Tabular for Booking {
    fn headers() -> Vec<&'static str> {
        let mut h: Vec<&'static str> = BookingField::ALL.iter().map(|f| f.name()).collect();
        h.push("total");
        h
    }
    fn wide() -> Vec<&'static str> {
        BookingField::ALL.iter().filter(|f| f.in_table() == InTable::Detail).map(|f| f.name()).collect()
    }
    fn row(&self) -> Vec<String> {
        let shown = |f: &BookingField| match (f, self.status) {
            // A confirmed booking keeps its old hold expiry in JSON; in a table it
            // would read as if the sale could still lapse.
            (BookingField::ExpiresAt, BookingStatus::Confirmed | BookingStatus::Cancelled) => String::new(),
            _ => f.value(self).text(),
        };
        let mut row: Vec<String> = BookingField::ALL.iter().map(shown).collect();
        row.push(self.total().to_string());
        row
    }
    fn drop_first() -> Vec<&'static str> {
        vec!["unit_price", "expires_at", "quantity", "total"]
    }
}

impl Tabular for Reservation {
    fn headers() -> Vec<&'static str> {
        let mut h = Booking::headers();
        h.push("replayed");
        h
    }
    fn wide() -> Vec<&'static str> {
        Booking::wide()
    }
    fn row(&self) -> Vec<String> {
        let mut row = self.booking.row();
        row.push(self.replayed.to_string());
        row
    }
}

impl Tabular for SalesRow {
    fn headers() -> Vec<&'static str> {
        vec![
            "event_id",
            "slug",
            "name",
            "starts_at",
            "status",
            "capacity",
            "held",
            "sold",
            "available",
            "confirmed_bookings",
            "checked_in",
            "revenue",
        ]
    }
    fn wide() -> Vec<&'static str> {
        vec!["event_id"]
    }
    fn drop_first() -> Vec<&'static str> {
        vec!["confirmed_bookings", "held", "capacity", "checked_in", "slug", "starts_at", "status"]
    }
    fn row(&self) -> Vec<String> {
        vec![
            self.event_id.to_string(),
            opt(&self.slug),
            self.name.clone(),
            time(&self.starts_at),
            self.status.to_string(),
            self.capacity.to_string(),
            self.held.to_string(),
            self.sold.to_string(),
            self.available.to_string(),
            self.confirmed_bookings.to_string(),
            self.checked_in.to_string(),
            self.revenue.to_string(),
        ]
    }
}

impl Tabular for goticket_core::users::User {
    fn headers() -> Vec<&'static str> {
        vec!["email", "role", "created_at", "updated_at"]
    }
    fn row(&self) -> Vec<String> {
        vec![self.email.to_string(), self.role.to_string(), time(&self.created_at), time(&self.updated_at)]
    }
}

/// An audit log entry: who did what to which aggregate, and when; the payload as JSON
/// (tables leave it out; `--format json` or csv keep it).
impl Tabular for goticket_core::DomainEvent {
    fn headers() -> Vec<&'static str> {
        vec![
            "position",
            "occurred_at",
            "type",
            "actor",
            "aggregate_type",
            "aggregate_id",
            "aggregate_seq",
            "event_id",
            "id",
            "payload",
        ]
    }
    fn wide() -> Vec<&'static str> {
        vec!["id", "payload", "event_id"]
    }
    fn row(&self) -> Vec<String> {
        vec![
            self.position.to_string(),
            time(&self.occurred_at),
            self.kind.to_string(),
            self.actor.as_ref().map_or_else(|| "(system)".to_owned(), ToString::to_string),
            self.aggregate_type.as_str().to_owned(),
            self.aggregate_id.clone(),
            self.aggregate_seq.to_string(),
            opt(&self.event_id),
            self.id.to_string(),
            self.payload.to_string(),
        ]
    }
    fn drop_first() -> Vec<&'static str> {
        vec!["aggregate_seq", "aggregate_type", "position"]
    }
}

/// A relay's status: where it is, who holds the lease, how far behind it is.
impl Tabular for goticket_core::RelayStatus {
    fn headers() -> Vec<&'static str> {
        vec![
            "name",
            "published",
            "backlog",
            "lag_seconds",
            "oldest_unpublished",
            "owner",
            "lease_until",
            "last_published_at",
            "last_error",
            "position",
        ]
    }
    fn row(&self) -> Vec<String> {
        vec![
            self.state.name.clone(),
            self.state.published.to_string(),
            self.backlog.to_string(),
            self.lag_seconds.to_string(),
            opt(&self.oldest_unpublished),
            opt(&self.state.owner),
            opt(&self.state.lease_until),
            opt(&self.state.last_published_at),
            opt(&self.state.last_error),
            self.state.cursor.position.to_string(),
        ]
    }
}

impl Tabular for CheckIn {
    fn headers() -> Vec<&'static str> {
        vec!["booking_code", "seat", "customer", "event_id", "event_name", "checked_in_at"]
    }
    fn row(&self) -> Vec<String> {
        vec![
            self.booking_code.to_string(),
            format!("{} of {}", self.seq, self.of),
            self.customer.to_string(),
            self.event_id.to_string(),
            self.event_name.clone(),
            time(&self.checked_in_at),
        ]
    }
}

/// Where results go, in the chosen format.
pub struct Out<W: Write> {
    format: Format,
    /// Whether the format was asked for, not the default for what stdout is.
    chosen: bool,
    /// Whether a heading was written (the first has no blank line before it).
    headed: bool,
    w: W,
}

impl<W: Write> Out<W> {
    /// Output to `w`.
    pub fn new(format: Format, w: W) -> Self {
        Out { format, chosen: true, headed: false, w }
    }

    /// Whether the format was asked for (`--format`, `GOTICKET_FORMAT`) rather than
    /// taken from what stdout is.
    pub fn chosen(mut self, chosen: bool) -> Self {
        self.chosen = chosen;
        self
    }

    /// See [`Out::chosen`].
    pub fn was_chosen(&self) -> bool {
        self.chosen
    }

    /// The output format: `--format`, else a table on a terminal and TSV elsewhere.
    pub fn format(&self) -> Format {
        self.format
    }

    fn json<T: Serialize + ?Sized>(&mut self, v: &T) -> io::Result<()> {
        serde_json::to_writer_pretty(&mut self.w, v).map_err(io::Error::other)?;
        writeln!(self.w)
    }

    fn csv<T: Tabular>(&mut self, items: &[T]) -> io::Result<()> {
        let mut c = csv::Writer::from_writer(&mut self.w);
        c.write_record(T::headers()).map_err(io::Error::other)?;
        for item in items {
            c.write_record(item.row()).map_err(io::Error::other)?;
        }
        c.flush()
    }

    /// Tab-separated lines, a header first; a tab, newline, carriage return or
    /// backslash in a value is written `\t`, `\n`, `\r`, `\\` (as PostgreSQL's text
    /// COPY does), so every record is one line for `cut`, `awk` and `sort`.
    fn tsv<T: Tabular>(&mut self, items: &[T]) -> io::Result<()> {
        writeln!(self.w, "{}", T::headers().join("\t"))?;
        for item in items {
            let cells: Vec<String> = item.row().iter().map(|c| tsv_cell(c)).collect();
            writeln!(self.w, "{}", cells.join("\t"))?;
        }
        Ok(())
    }

    /// One item: a two-column table, a JSON object, or a CSV/TSV header and row.
    pub fn one<T: Tabular>(&mut self, item: &T) -> io::Result<()> {
        match self.format {
            Format::Json => self.json(item),
            Format::Csv => self.csv(std::slice::from_ref(item)),
            Format::Tsv => self.tsv(std::slice::from_ref(item)),
            Format::Table => {
                let mut t = new_table(terminal_width());
                for (h, v) in T::headers().iter().zip(item.row()) {
                    if !v.is_empty() {
                        t.add_row(vec![h.to_string(), cell(v)]);
                    }
                }
                writeln!(self.w, "{t}")
            }
        }
    }

    /// A page of items: a table and the next cursor, `{"items", "next_cursor"}`, or
    /// CSV/TSV rows (with the cursor on stderr, so the rows stay machine-readable).
    pub fn page<T: Tabular>(&mut self, page: &Page<T>) -> io::Result<()> {
        let hint = match &page.next_cursor {
            Some(c) => format!("{} shown; more with --cursor {c}", page.items.len()),
            None => format!("{} shown", page.items.len()),
        };
        match self.format {
            Format::Json => self.json(page),
            Format::Csv | Format::Tsv => {
                if self.format == Format::Csv { self.csv(&page.items) } else { self.tsv(&page.items) }?;
                if page.next_cursor.is_some() {
                    eprintln!("goticket: {hint}");
                }
                Ok(())
            }
            Format::Table => {
                self.table(&page.items)?;
                writeln!(self.w, "{hint}")
            }
        }
    }

    /// A whole list (no paging): a table, `{"items": [...]}`, or CSV/TSV.
    pub fn list<T: Tabular>(&mut self, items: &[T]) -> io::Result<()> {
        match self.format {
            Format::Json => self.json(&serde_json::json!({ "items": items })),
            Format::Csv => self.csv(items),
            Format::Tsv => self.tsv(items),
            Format::Table => self.table(items),
        }
    }

    /// A list table that fits the terminal: the record's detail columns left out,
    /// timestamps to the minute, then columns dropped in the record's
    /// [`Tabular::drop_first`] order until the columns that cannot wrap (ids,
    /// timestamps, amounts) fit; what still does not fit wraps inside text columns.
    fn table<T: Tabular>(&mut self, items: &[T]) -> io::Result<()> {
        let width = terminal_width();
        let (headers, wide) = (T::headers(), T::wide());
        let mut names: Vec<&str> = headers.iter().copied().filter(|h| !wide.contains(h)).collect();
        let mut rows: Vec<Vec<String>> = items
            .iter()
            .map(|item| {
                let row = item.row();
                headers.iter().zip(row).filter(|(h, _)| names.contains(h)).map(|(_, v)| cell(short_time(v))).collect()
            })
            .collect();
        for candidate in T::drop_first() {
            if needed_width(&names, &rows) <= usize::from(width) {
                break;
            }
            if let Some(i) = names.iter().position(|n| *n == candidate) {
                names.remove(i);
                for r in &mut rows {
                    r.remove(i);
                }
            }
        }
        let mut t = new_table(width);
        t.set_header(names.iter().copied());
        for r in rows {
            t.add_row(r);
        }
        for (i, col) in t.column_max_content_widths().into_iter().enumerate() {
            // Ids, codes and timestamps read only whole; names, emails and amounts wrap.
            if names.get(i).is_some_and(|n| unbreakable(n))
                && let Some(c) = t.column_mut(i)
            {
                c.set_constraint(ColumnConstraint::LowerBoundary(Width::Fixed(col.saturating_add(2))));
            }
        }
        writeln!(self.w, "{t}")
    }

    /// A plain result: `text` for tables, CSV and TSV readers, `json` for scripts.
    pub fn message(&mut self, text: &str, json: serde_json::Value) -> io::Result<()> {
        match self.format {
            Format::Json => self.json(&json),
            Format::Table | Format::Csv | Format::Tsv => writeln!(self.w, "{text}"),
        }
    }

    /// A line of prose in table mode only (headings in the demo).
    /// Headings after the first are set off by a blank line; the output never starts
    /// with one.
    pub fn heading(&mut self, text: &str) -> io::Result<()> {
        if self.format != Format::Table {
            return Ok(());
        }
        let gap = if self.headed { "\n" } else { "" };
        self.headed = true;
        writeln!(self.w, "{gap}{text}")
    }

    /// Raw JSON document (for combined results).
    pub fn raw_json(&mut self, v: &serde_json::Value) -> io::Result<()> {
        self.json(v)
    }

    /// Whether results are JSON.
    pub fn is_json(&self) -> bool {
        self.format == Format::Json
    }

    /// Flushes the output.
    pub fn flush(&mut self) -> io::Result<()> {
        self.w.flush()
    }
}

fn new_table(width: u16) -> Table {
    let mut t = Table::new();
    t.load_style(presets::UTF8_FULL_CONDENSED).set_content_arrangement(ContentArrangement::Dynamic).set_width(width);
    t
}

/// The width tables fit: `COLUMNS` if set, else the terminal's, else 80 (a terminal
/// that reports less than 40 columns, or 0, gets 80 too).
pub fn terminal_width() -> u16 {
    let given = std::env::var("COLUMNS").ok().and_then(|c| c.trim().parse::<u16>().ok());
    let probed = || Table::new().width();
    given.or_else(probed).filter(|w| *w >= 40).unwrap_or(80)
}

/// Columns' content plus borders and padding, counting a column that can wrap (one
/// whose cells have spaces) at most 16 wide.
fn needed_width(names: &[&str], rows: &[Vec<String>]) -> usize {
    let chars = |s: &str| s.chars().count();
    let mut total = 1;
    for (i, name) in names.iter().enumerate() {
        let cells = rows.iter().map(|r| r[i].as_str());
        let widest = cells.clone().map(chars).max().unwrap_or(0).max(chars(name));
        let wraps = !unbreakable(name);
        total += if wraps { widest.min(16) } else { widest } + 3;
    }
    total
}

/// A value as a table cell: a tab would misalign the borders, so it shows as spaces.
fn cell(v: String) -> String {
    if v.contains('\t') { v.replace('\t', "    ") } else { v }
}

/// Columns a table never breaks across lines: ids, codes and timestamps.
fn unbreakable(column: &str) -> bool {
    matches!(column, "id" | "code" | "event_id" | "booking_code") || column.ends_with("_at")
}

/// An RFC 3339 UTC timestamp to the minute (`2090-03-01 19:00Z`) for list tables;
/// anything else as it is.
fn short_time(v: String) -> String {
    let b = v.as_bytes();
    let looks = b.len() >= 20 && b[4] == b'-' && b[10] == b'T' && b[13] == b':' && v.ends_with('Z');
    if looks && v.is_char_boundary(16) { format!("{} {}Z", &v[..10], &v[11..16]) } else { v }
}

fn tsv_cell(c: &str) -> String {
    let mut out = String::with_capacity(c.len());
    for ch in c.chars() {
        match ch {
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\\' => out.push_str("\\\\"),
            other => out.push(other),
        }
    }
    out
}
