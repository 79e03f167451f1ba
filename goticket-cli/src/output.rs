//! Rendering: tables for people, one JSON document or CSV for scripts. Every kind of
//! result says once which columns it has; the three formats are built from that.

use std::io::{self, Write};

use comfy_table::{ContentArrangement, Table, presets};
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
}

/// A booking's columns are its fields, as core describes them.
impl Tabular for Booking {
    fn headers() -> Vec<&'static str> {
        BookingField::ALL.iter().map(|f| f.name()).collect()
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
        BookingField::ALL.iter().map(shown).collect()
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
    /// Whether a heading was written (the first has no blank line before it).
    headed: bool,
    w: W,
}

impl<W: Write> Out<W> {
    /// Output to `w`.
    pub fn new(format: Format, w: W) -> Self {
        Out { format, headed: false, w }
    }

    /// The output format asked for with `--format`.
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

    /// One item: a two-column table, a JSON object, or a CSV header and row.
    pub fn one<T: Tabular>(&mut self, item: &T) -> io::Result<()> {
        match self.format {
            Format::Json => self.json(item),
            Format::Csv => self.csv(std::slice::from_ref(item)),
            Format::Table => {
                let mut t = new_table();
                for (h, v) in T::headers().iter().zip(item.row()) {
                    if !v.is_empty() {
                        t.add_row(vec![h.to_string(), v]);
                    }
                }
                writeln!(self.w, "{t}")
            }
        }
    }

    /// A page of items: a table and the next cursor, `{"items", "next_cursor"}`, or CSV.
    pub fn page<T: Tabular>(&mut self, page: &Page<T>) -> io::Result<()> {
        match self.format {
            Format::Json => self.json(page),
            Format::Csv => self.csv(&page.items),
            Format::Table => {
                self.table(&page.items)?;
                match &page.next_cursor {
                    Some(c) => writeln!(self.w, "{} shown; more with --cursor {c}", page.items.len()),
                    None => writeln!(self.w, "{} shown", page.items.len()),
                }
            }
        }
    }

    /// A whole list (no paging): a table, `{"items": [...]}`, or CSV.
    pub fn list<T: Tabular>(&mut self, items: &[T]) -> io::Result<()> {
        match self.format {
            Format::Json => self.json(&serde_json::json!({ "items": items })),
            Format::Csv => self.csv(items),
            Format::Table => self.table(items),
        }
    }

    fn table<T: Tabular>(&mut self, items: &[T]) -> io::Result<()> {
        let (headers, wide) = (T::headers(), T::wide());
        let keep: Vec<usize> = headers.iter().enumerate().filter(|(_, h)| !wide.contains(h)).map(|(i, _)| i).collect();
        let mut t = new_table();
        t.set_header(keep.iter().map(|&i| headers[i]));
        for item in items {
            let row = item.row();
            t.add_row(keep.iter().map(|&i| row[i].clone()));
        }
        writeln!(self.w, "{t}")
    }

    /// A plain result: `text` for tables and CSV readers, `json` for scripts.
    pub fn message(&mut self, text: &str, json: serde_json::Value) -> io::Result<()> {
        match self.format {
            Format::Json => self.json(&json),
            Format::Table | Format::Csv => writeln!(self.w, "{text}"),
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

fn new_table() -> Table {
    let mut t = Table::new();
    t.load_style(presets::UTF8_FULL_CONDENSED).set_content_arrangement(ContentArrangement::Dynamic);
    t
}
