//! Batch import rules: validating rows (every error, with its line and column) and
//! deciding, per row, whether an import creates, updates or leaves an event alone.
//! Reading files is the caller's job; writing is the store's; the rules are here.

use std::collections::HashMap;
use std::fmt;

use jiff::Timestamp;
use serde::Serialize;

use crate::clock::parse_timestamp;
use crate::error::{Error, Result, shown};
use crate::event::{Event, EventPatch, NewEvent};
use crate::fields::{BookingField, Columns, EventField, FieldValue};
use crate::types::{EventId, ExternalId, Slug};

/// One problem with one row of an import file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RowError {
    /// Line (CSV: counting the header as line 1; JSON Lines: from 1).
    pub line: u64,
    /// The column (or JSON key) at fault; empty for a whole-row problem.
    pub column: String,
    /// Why.
    pub reason: String,
}

impl fmt::Display for RowError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.column.is_empty() {
            write!(f, "line {}: {}", self.line, self.reason)
        } else {
            write!(f, "line {}, column {}: {}", self.line, self.column, self.reason)
        }
    }
}

/// Checks an events file's columns.
pub fn check_event_columns(columns: &[String]) -> std::result::Result<(), Vec<RowError>> {
    check_columns(columns, &EventField::columns())
}

/// The column (or JSON key) a rejects file adds to each rejected row, with its
/// errors. Imports ignore it, so a rejects file can be fixed and imported again.
pub const REASON_COLUMN: &str = "error";

/// Checks a file's columns: every required one present, nothing unknown (beyond
/// [`REASON_COLUMN`]), no repeats.
pub fn check_columns(columns: &[String], known: &Columns) -> std::result::Result<(), Vec<RowError>> {
    let (required, optional) = (&known.required, &known.optional);
    let mut errors = Vec::new();
    let err = |column: &str, reason: String| RowError { line: 1, column: column.to_owned(), reason };
    for r in required {
        if !columns.iter().any(|c| c == r) {
            errors.push(err(r, "is missing".into()));
        }
    }
    for (i, c) in columns.iter().enumerate() {
        if !known.contains(c) && c != REASON_COLUMN {
            let all = [required.as_slice(), optional.as_slice()].concat().join(", ");
            errors.push(err(c, format!("is not a known column (known: {all})")));
        }
        if columns[..i].contains(c) && c != REASON_COLUMN {
            errors.push(err(c, "appears twice".into()));
        }
    }
    if errors.is_empty() { Ok(()) } else { Err(errors) }
}

/// A validated events row: made only by [`parse_event_row`], so it always holds a
/// row that passed the rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventRow {
    /// Its line in the file.
    pub(crate) line: u64,
    /// The event to create, or to make an existing one look like (its `organizer`, if
    /// the row names one, owns a created event).
    pub(crate) event: NewEvent,
    /// Scheduled, or cancelled (an export moves cancelled events too).
    pub(crate) status: crate::EventStatus,
}

impl EventRow {
    /// Its line in the file.
    pub fn line(&self) -> u64 {
        self.line
    }
    /// The event it creates or updates.
    pub fn event(&self) -> &NewEvent {
        &self.event
    }
    /// Its status.
    pub fn status(&self) -> crate::EventStatus {
        self.status
    }
}

impl BookingRow {
    /// Its line in the file.
    pub fn line(&self) -> u64 {
        self.line
    }
    /// Its key.
    pub fn external_id(&self) -> &ExternalId {
        &self.external_id
    }
    /// Whether it moves a booking exactly (an export row, with its tickets).
    pub fn is_moved(&self) -> bool {
        self.moved.is_some()
    }
}

/// Validates one events row with the same rules as every other way in
/// ([`crate::EventFields`]). `get` gives a column's text (`None` or empty when absent).
/// All the row's errors are returned.
pub fn parse_event_row(
    line: u64,
    get: &dyn Fn(&str) -> Option<String>,
) -> std::result::Result<EventRow, Vec<RowError>> {
    let mut errors = Vec::new();
    let mut fields = crate::EventFields::default();
    let mut status = None;
    for &f in EventField::ALL {
        let v = f.in_file().column().and_then(get);
        match f {
            EventField::ExternalId => {
                if v.as_deref().is_none_or(|v| v.trim().is_empty()) {
                    errors.push(RowError { line, column: f.name().into(), reason: "is required".into() });
                }
                fields.external_id = v;
            }
            EventField::Slug => fields.slug = v,
            EventField::Name => fields.name = v,
            EventField::StartsAt => fields.starts_at = v,
            EventField::EndsAt => fields.ends_at = v,
            EventField::Capacity => fields.capacity = v,
            EventField::Price => fields.price = v,
            EventField::MaxPerCustomer => fields.max_per_customer = v,
            EventField::Status => status = v,
            EventField::Venue => fields.venue = v,
            EventField::SalesStart => fields.sales_start = v,
            EventField::SalesEnd => fields.sales_end = v,
            EventField::Organizer => fields.organizer = v,
            EventField::Description => fields.description = v,
            // Assigned or counted by the store, never read from a file.
            EventField::Id | EventField::Held | EventField::Sold | EventField::Available => {}
            EventField::CreatedAt | EventField::UpdatedAt => {}
        }
    }
    let status = match status.filter(|v| !v.trim().is_empty()) {
        None => Some(crate::EventStatus::Scheduled),
        Some(v) => match v.parse::<crate::EventStatus>() {
            Ok(st) => Some(st),
            Err(e) => {
                errors.push(row_error(line, e.in_field("status")));
                None
            }
        },
    };
    match (fields.parse(), status) {
        (Ok(event), Some(status)) if errors.is_empty() => Ok(EventRow { line, event, status }),
        (Ok(_), _) => Err(errors),
        (Err(field_errors), _) => {
            errors.extend(field_errors.into_iter().map(|e| row_error(line, e)));
            Err(errors)
        }
    }
}

/// A field's validation error as a row error.
fn row_error(line: u64, e: Error) -> RowError {
    match e {
        Error::Validation { field, reason } => RowError { line, column: field, reason },
        other => RowError { line, column: String::new(), reason: other.to_string() },
    }
}

/// A validated bookings row: made only by [`parse_booking_row`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BookingRow {
    /// Its line in the file.
    pub(crate) line: u64,
    /// Its key: a second row with it never books twice.
    pub(crate) external_id: ExternalId,
    /// The event: its external id, slug or id.
    pub(crate) event: String,
    /// The customer.
    pub(crate) customer: crate::Email,
    /// Seats.
    pub(crate) quantity: crate::Quantity,
    /// For a hold: when it runs out; `None` for a confirmed booking.
    pub(crate) hold_until: Option<Timestamp>,
    /// For a row of an export (it has `tickets`): the booking as it was, to be moved
    /// exactly rather than sold again.
    pub(crate) moved: Option<MovedBooking>,
}

/// What an export row carries beyond a reservation: enough to write the booking
/// exactly as it was, so a ticket issued before the move still scans once after it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MovedBooking {
    /// Its code.
    pub(crate) code: crate::BookingCode,
    /// One secret per seat, in seat order.
    pub(crate) secrets: Vec<crate::TicketSecret>,
    /// Its status, price and check-ins.
    pub(crate) restored: crate::Restored,
}

/// The `tickets` cell of an export: one `SECRET` or `SECRET@CHECKED_IN_AT` per seat,
/// separated by spaces.
pub fn tickets_cell(tickets: &[crate::Ticket]) -> String {
    let one = |t: &crate::Ticket| match t.checked_in_at {
        Some(at) => format!("{}@{at}", t.secret),
        None => t.secret.to_string(),
    };
    tickets.iter().map(one).collect::<Vec<_>>().join(" ")
}

/// Reads a `tickets` cell (see [`tickets_cell`]).
fn parse_tickets(cell: &str) -> Result<Vec<(crate::TicketSecret, Option<Timestamp>)>> {
    cell.split_whitespace()
        .map(|t| {
            let (secret, at) = t.split_once('@').map_or((t, None), |(s, at)| (s, Some(at)));
            let secret = secret.parse::<crate::TicketSecret>()?;
            let at = at.map(|a| parse_timestamp("tickets", a)).transpose()?;
            Ok((secret, at))
        })
        .collect()
}

/// A booking field's column name in files.
fn column(f: BookingField) -> &'static str {
    f.in_file().column().unwrap_or(f.name())
}

/// Validates one bookings row; all the row's errors are returned.
pub fn parse_booking_row(
    line: u64,
    get: &dyn Fn(&str) -> Option<String>,
) -> std::result::Result<BookingRow, Vec<RowError>> {
    use BookingField as F;
    let mut errors = Vec::new();
    let text = |f: F| f.in_file().column().and_then(get).map(|v| v.trim().to_owned()).filter(|v| !v.is_empty());
    let mut bad = |f: F, e: Error| {
        let reason = match e {
            Error::Validation { reason, .. } => reason,
            other => other.to_string(),
        };
        errors.push(RowError { line, column: column(f).to_owned(), reason });
    };
    let mut need = |f: F| {
        let v = text(f);
        if v.is_none() {
            bad(f, Error::validation(column(f), "is required"));
        }
        v
    };
    // Every field of the description, read or not: a new one does not compile until
    // it is decided here.
    let (mut x, mut event, mut customer, mut quantity, mut status) = (None, None, None, None, None);
    for &f in BookingField::ALL {
        match f {
            F::ExternalId => x = need(f),
            F::EventId => event = need(f),
            F::Customer => customer = need(f),
            F::Quantity => quantity = need(f),
            F::Status => status = need(f),
            // Read below: the hold's end, and what moves a booking exactly.
            F::ExpiresAt | F::Code | F::UnitPrice | F::Tickets => {}
            // The store's own, never read from a file (a retry key is not moved).
            F::Id | F::IdempotencyKey | F::CreatedAt | F::UpdatedAt => {}
        }
    }
    let external_id = x.and_then(|v| v.parse::<ExternalId>().map_err(|e| bad(F::ExternalId, e)).ok());
    let customer = customer.and_then(|v| v.parse::<crate::Email>().map_err(|e| bad(F::Customer, e)).ok());
    let quantity = quantity.and_then(|v| v.parse::<crate::Quantity>().map_err(|e| bad(F::Quantity, e)).ok());
    let hold_until = text(F::ExpiresAt)
        .and_then(|v| parse_timestamp(column(F::ExpiresAt), &v).map_err(|e| bad(F::ExpiresAt, e)).ok());
    let moving = text(F::Tickets).is_some();
    let status = status.and_then(|v| match v.parse::<crate::BookingStatus>() {
        Ok(st) if moving || !matches!(st, crate::BookingStatus::Cancelled | crate::BookingStatus::Expired) => Some(st),
        Ok(_) => {
            let why = "cancelled and expired bookings move only with their tickets (an export with --all)";
            bad(F::Status, Error::validation("status", why));
            None
        }
        Err(e) => {
            bad(F::Status, e);
            None
        }
    });
    let held = status.map(|s| s == crate::BookingStatus::Held);
    match (held, hold_until.is_some()) {
        (Some(true), false) if text(F::ExpiresAt).is_none() => {
            bad(F::ExpiresAt, Error::validation(column(F::ExpiresAt), "is required for a held booking"))
        }
        (Some(false), true) if !moving => {
            bad(F::ExpiresAt, Error::validation(column(F::ExpiresAt), "is only for held bookings"))
        }
        _ => {}
    }
    let moved = if moving { moved_booking(&text, quantity, status, &mut bad) } else { None };
    match (external_id, event, customer, quantity, status) {
        (Some(external_id), Some(event), Some(customer), Some(quantity), Some(_)) if errors.is_empty() => {
            Ok(BookingRow { line, external_id, event, customer, quantity, hold_until, moved })
        }
        _ => Err(errors),
    }
}

/// The columns of an export row that move a booking exactly: `code`, `unit_price` and
/// `tickets` (one per seat); each problem is reported through `bad`.
fn moved_booking(
    text: &dyn Fn(BookingField) -> Option<String>,
    quantity: Option<crate::Quantity>,
    status: Option<crate::BookingStatus>,
    bad: &mut dyn FnMut(BookingField, Error),
) -> Option<MovedBooking> {
    use BookingField as F;
    let mut need = |f: F| {
        let v = text(f);
        if v.is_none() {
            bad(f, Error::validation(column(f), "is required with tickets"));
        }
        v
    };
    let (code, price) = (need(F::Code), need(F::UnitPrice));
    let code = code.and_then(|v| v.parse::<crate::BookingCode>().map_err(|e| bad(F::Code, e)).ok());
    let unit_price = price.and_then(|v| v.parse::<crate::Money>().map_err(|e| bad(F::UnitPrice, e)).ok());
    let tickets = text(F::Tickets).and_then(|v| parse_tickets(&v).map_err(|e| bad(F::Tickets, e)).ok());
    if let (Some(t), Some(q)) = (&tickets, quantity)
        && t.len() != q.get() as usize
    {
        let why = format!("has {} tickets for {} seats", t.len(), q.get());
        bad(F::Tickets, Error::validation(column(F::Tickets), why));
        return None;
    }
    let (secrets, checked_in) = tickets?.into_iter().unzip();
    Some(MovedBooking {
        code: code?,
        secrets,
        restored: crate::Restored { status: status?, unit_price: unit_price?, checked_in },
    })
}

/// How an import or export file names an event: its external id or, for an event
/// created without one, its id (which an import into another store then keeps as the
/// new event's external id).
pub fn event_reference(e: &Event) -> String {
    e.external_id.as_ref().map_or_else(|| e.id.to_string(), |x| x.to_string())
}

/// How a file names a booking: its external id or, lacking one, its id.
pub fn booking_reference(b: &crate::Booking) -> String {
    b.external_id.as_ref().map_or_else(|| b.id.to_string(), |x| x.to_string())
}

/// Which bookings an export carries: the live ones (held, not yet overdue, and
/// confirmed), as `b` stands at the export's time (see [`crate::Booking::at`]); with
/// `all`, the cancelled and expired ones too.
pub fn is_exported(b: &crate::Booking, all: bool) -> bool {
    all || b.status.is_live()
}

/// An import row for the store: the reservation it makes, and how its event is named
/// (the store resolves it in its transaction).
#[derive(Debug, Clone)]
pub struct ImportBooking {
    /// Its line in the file.
    pub line: u64,
    /// The event: its external id, slug or id.
    pub event: String,
    /// The reservation, prepared; its `event_id` is set by the store.
    pub request: crate::ReserveRequest,
}

/// What an import did with one row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ImportAction {
    /// A new event.
    Created,
    /// An existing event (same external id) was changed to match the row.
    Updated,
    /// An existing event already matched the row.
    Unchanged,
}

/// How an import writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImportMode {
    /// Everything in one transaction; any refused row and nothing is written.
    AllOrNothing,
    /// Decide everything as `AllOrNothing` would, then roll back.
    DryRun,
    /// Commit every this many rows; refused rows are reported and skipped. A re-run
    /// after an interruption completes the import exactly (rows carry external ids).
    Batches(usize),
}

/// What an import has refused so far: how many rows, and the first one. An
/// all-or-nothing import that refused any row fails with
/// [`Error::ImportRefused`], whose kind (and so exit code) is the first refusal's.
#[derive(Debug, Default)]
pub struct Refusals {
    count: u64,
    first: Option<(u64, Error)>,
}

impl Refusals {
    /// Tells `on_row` a row's outcome and keeps count of the refusals.
    pub fn report(
        &mut self,
        line: u64,
        outcome: Result<ImportAction>,
        on_row: &mut dyn FnMut(u64, &Result<ImportAction>),
    ) {
        on_row(line, &outcome);
        if let Err(e) = outcome {
            self.count += 1;
            if self.first.is_none() {
                self.first = Some((line, e));
            }
        }
    }

    /// How many rows were refused.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// The error an all-or-nothing import fails with, if it refused a row.
    pub fn into_error(self) -> Option<Error> {
        let (line, first) = self.first?;
        Some(Error::ImportRefused { refused: self.count, line, first: Box::new(first) })
    }
}

/// An import row ready for the engine: the event it would create, or why the row
/// cannot make one (a row built by hand that skipped [`parse_event_row`]'s checks),
/// which is reported as that row's refusal.
#[derive(Debug)]
pub struct ImportEvent {
    /// Its line in the file.
    pub line: u64,
    /// The event, with a fresh id, owner and timestamps.
    pub event: Result<Event>,
}

/// What a store read before planning a chunk of an import.
#[derive(Debug, Default)]
pub struct ImportState {
    /// Existing events by external id (or, for events that never had one, by id text:
    /// an export writes the id there).
    pub existing: HashMap<String, Event>,
    /// Slugs in use, and by which event.
    pub slugs: HashMap<Slug, EventId>,
}

/// What a chunk of an import does.
#[derive(Debug, Default)]
pub struct ImportPlan {
    /// Per row: its line and outcome.
    pub outcomes: Vec<(u64, Result<ImportAction>)>,
    /// Events to insert.
    pub inserts: Vec<Event>,
    /// Events to rewrite (the whole new state).
    pub updates: Vec<Event>,
}

/// The external ids an import run has seen, with their lines: one file names each
/// event once. Kept for the whole run (every chunk), so it grows with the number of
/// distinct ids in the file (about a hundred bytes each).
#[derive(Debug, Default)]
pub struct SeenIds(HashMap<String, u64>);

/// The import rule, row by row in file order: an unknown external id creates the
/// event (if its slug is free); a known one is updated where the domain allows it
/// (never below the seats held and sold, never a cancelled event) or left alone when
/// it already matches. An external id seen earlier in the same file is refused as a
/// conflict, whatever the row says: a file that names one event twice is ambiguous.
pub fn plan_event_import(
    rows: Vec<ImportEvent>,
    mut state: ImportState,
    seen: &mut SeenIds,
    now: Timestamp,
    may_update: &dyn Fn(&Event) -> Result<()>,
) -> ImportPlan {
    let mut plan = ImportPlan::default();
    let mut updated: HashMap<EventId, usize> = HashMap::new();
    for row in rows {
        let event = match row.event {
            Ok(e) => e,
            Err(refused) => {
                plan.outcomes.push((row.line, Err(refused)));
                continue;
            }
        };
        let row = EventImportRow { line: row.line, event };
        let key = row.event.external_id.as_ref().map(|x| x.as_str().to_owned()).unwrap_or_default();
        if let Some(first) = seen.0.get(&key) {
            let reason = format!("external id {} already appears on line {first} of this file", shown(&key));
            plan.outcomes.push((row.line, Err(Error::conflict(reason))));
            continue;
        }
        seen.0.insert(key.clone(), row.line);
        let outcome = match state.existing.get(&key).cloned() {
            Some(current) => {
                may_update(&current).and_then(|()| import_change(&current, &row.event, now)).and_then(|next| match next
                {
                    None => Ok(ImportAction::Unchanged),
                    Some(next) => {
                        claim_slug(&mut state.slugs, &next)?;
                        if let Some(old) = &current.slug
                            && next.slug.as_ref() != Some(old)
                        {
                            state.slugs.remove(old);
                        }
                        match updated.get(&next.id) {
                            Some(&i) => plan.updates[i] = next.clone(),
                            None => {
                                updated.insert(next.id, plan.updates.len());
                                plan.updates.push(next.clone());
                            }
                        }
                        state.existing.insert(key.clone(), next);
                        Ok(ImportAction::Updated)
                    }
                })
            }
            None => claim_slug(&mut state.slugs, &row.event).map(|()| {
                state.existing.insert(key.clone(), row.event.clone());
                plan.inserts.push(row.event);
                ImportAction::Created
            }),
        };
        plan.outcomes.push((row.line, outcome));
    }
    plan
}

/// A row whose event could be made.
struct EventImportRow {
    line: u64,
    event: Event,
}

fn claim_slug(slugs: &mut HashMap<Slug, EventId>, e: &Event) -> Result<()> {
    let Some(slug) = &e.slug else { return Ok(()) };
    match slugs.get(slug) {
        Some(owner) if *owner != e.id => {
            Err(Error::conflict(format!("slug {slug:?} is already used by another event")))
        }
        _ => {
            slugs.insert(slug.clone(), e.id);
            Ok(())
        }
    }
}

/// How `current` must change to match an imported row: `None` if it already does.
pub fn import_change(current: &Event, row: &Event, now: Timestamp) -> Result<Option<Event>> {
    let mut patch = EventPatch::default();
    for &f in EventField::ALL {
        if f.value(current) == f.value(row) {
            continue;
        }
        match f {
            EventField::Slug => patch.slug = Some(row.slug.clone()),
            EventField::Name => patch.name = Some(row.name.clone()),
            EventField::StartsAt => patch.starts_at = Some(row.starts_at),
            EventField::EndsAt => patch.ends_at = Some(row.ends_at),
            EventField::Capacity => patch.capacity = Some(row.capacity),
            EventField::Price => patch.price = Some(row.price),
            EventField::MaxPerCustomer => patch.max_per_customer = Some(row.max_per_customer),
            EventField::Venue => patch.venue = Some(row.venue.clone()),
            EventField::SalesStart => patch.sales_start = Some(row.sales_start),
            EventField::SalesEnd => patch.sales_end = Some(row.sales_end),
            EventField::Description => patch.description = Some(row.description.clone()),
            EventField::Status => {
                return Err(Error::conflict(format!(
                    "event {} is {} here and {} in the file; an import does not cancel or restore an event \
                     (use `goticket event cancel`)",
                    event_reference(current),
                    current.status,
                    row.status
                )));
            }
            // The key the row was matched by, and the owner: an update keeps both.
            EventField::ExternalId | EventField::Organizer => {}
            // The store's own: a new id, counters, and the import's timestamps.
            EventField::Id | EventField::Held | EventField::Sold | EventField::Available => {}
            EventField::CreatedAt | EventField::UpdatedAt => {}
        }
    }
    if patch.is_empty() {
        return Ok(None);
    }
    patch.apply(current, now).map(Some)
}

/// An event as the cells of an export row, in file order.
pub fn event_export_row(e: &Event) -> Vec<(&'static str, FieldValue)> {
    EventField::ALL.iter().filter_map(|f| Some((f.in_file().column()?, f.export_value(e)))).collect()
}

/// A booking as the cells of an export row, in file order: what `import bookings`
/// needs to move it exactly. `event_ref` names its event ([`event_reference`]).
pub fn booking_export_row(b: &crate::Booking, event_ref: &str) -> Vec<(&'static str, FieldValue)> {
    BookingField::ALL.iter().filter_map(|f| Some((f.in_file().column()?, f.export_value(b, event_ref)))).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        move |c| map.get(c).cloned()
    }

    const GOOD: &[(&str, &str)] = &[
        ("external_id", "ev-1"),
        ("name", "Gig"),
        ("starts_at", "2090-01-01T19:00:00Z"),
        ("ends_at", "2090-01-01T22:00:00Z"),
        ("capacity", "100"),
        ("price", "12.50 EUR"),
    ];

    #[test]
    fn a_good_row_parses() {
        let r = parse_event_row(2, &row(GOOD)).unwrap();
        assert_eq!(r.event.capacity.get(), 100);
        assert_eq!(r.event.external_id.unwrap().as_str(), "ev-1");
    }

    #[test]
    fn every_error_of_a_row_is_reported_with_line_and_column() {
        let bad = [
            ("external_id", ""),
            ("name", "Gig"),
            ("starts_at", "tomorrow"),
            ("ends_at", "2090-01-01T22:00:00Z"),
            ("capacity", "0"),
            ("price", "-3 EUR"),
            ("slug", "Not A Slug"),
        ];
        let errs = parse_event_row(7, &row(&bad)).unwrap_err();
        let cols: Vec<&str> = errs.iter().map(|e| e.column.as_str()).collect();
        assert_eq!(cols, ["external_id", "starts_at", "capacity", "price", "slug"]);
        assert!(errs.iter().all(|e| e.line == 7));
        assert_eq!(errs[2].to_string(), "line 7, column capacity: must be between 1 and 10000000, got 0");
    }

    #[test]
    fn dates_are_checked_together() {
        let mut r = GOOD.to_vec();
        r[3] = ("ends_at", "2090-01-01T18:00:00Z");
        let errs = parse_event_row(3, &row(&r)).unwrap_err();
        assert_eq!(errs[0].column, "ends_at");
    }

    fn import_row(line: u64, pairs: &[(&str, &str)]) -> ImportEvent {
        let r = parse_event_row(line, &row(pairs)).unwrap();
        let id = EventId::from_uuid(uuid::Uuid::from_u128(u128::from(line)));
        let now = "2029-01-01T00:00:00Z".parse().unwrap();
        ImportEvent { line, event: r.event.into_event(id, "o@example.com".parse().unwrap(), now) }
    }

    #[test]
    fn one_file_names_an_event_once() {
        let mut other = GOOD.to_vec();
        other[4] = ("capacity", "200");
        let now = "2029-01-01T00:00:00Z".parse().unwrap();
        let mut seen = SeenIds::default();
        let plan = plan_event_import(
            vec![import_row(2, GOOD), import_row(3, &other)],
            ImportState::default(),
            &mut seen,
            now,
            &|_| Ok(()),
        );
        assert_eq!(plan.inserts.len(), 1);
        let err = plan.outcomes[1].1.as_ref().unwrap_err();
        assert_eq!(err.to_string(), "conflict: external id \"ev-1\" already appears on line 2 of this file");
        // Across chunks too: the next chunk of the same run sees the same ids.
        let plan = plan_event_import(vec![import_row(9, GOOD)], ImportState::default(), &mut seen, now, &|_| Ok(()));
        assert!(plan.outcomes[0].1.is_err(), "an identical repeat is refused as well");
    }

    #[test]
    fn the_sales_window_is_imported_and_updated() {
        let mut r = GOOD.to_vec();
        r.push(("sales_start", "2029-06-01T00:00:00Z"));
        r.push(("sales_end", "2029-12-01T00:00:00Z"));
        let first = import_row(2, &r).event.unwrap();
        assert_eq!(first.sales_end, Some("2029-12-01T00:00:00Z".parse().unwrap()));
        r.pop();
        let second = import_row(2, &r).event.unwrap();
        let changed = import_change(&first, &second, "2029-01-02T00:00:00Z".parse().unwrap()).unwrap();
        assert_eq!(changed.expect("the window changed").sales_end, None, "an empty cell clears it on import");
    }

    #[test]
    fn a_row_built_by_hand_is_refused_not_a_panic() {
        let mut bad = parse_event_row(2, &row(GOOD)).unwrap();
        bad.event.ends_at = bad.event.starts_at;
        let good = parse_event_row(3, &row(&[GOOD, &[("external_id", "ev-2")]].concat()[1..])).unwrap();
        let service = crate::Service::new(std::sync::Arc::new(crate::MemoryStore::new()));
        let admin = crate::Principal::new("a@example.com".parse().unwrap(), crate::Role::Admin);
        let mut seen = Vec::new();
        let err = service
            .import_events(
                &admin,
                &mut vec![bad.clone(), good.clone()].into_iter(),
                ImportMode::AllOrNothing,
                &mut |l, o| seen.push((l, o.is_ok())),
            )
            .unwrap_err();
        assert_eq!(err.kind(), crate::ErrorKind::Validation, "{err}");
        assert_eq!(seen, [(2, false), (3, true)]);
        let mut seen = Vec::new();
        service
            .import_events(&admin, &mut vec![bad, good].into_iter(), ImportMode::Batches(10), &mut |l, o| {
                seen.push((l, o.is_ok()))
            })
            .expect("batches skip the refused row");
        assert_eq!(seen, [(2, false), (3, true)]);
    }

    #[test]
    fn files_name_records_by_external_id_else_by_id() {
        let e = import_row(2, GOOD).event.unwrap();
        assert_eq!(event_reference(&e), "ev-1");
        let bare = Event { external_id: None, ..e.clone() };
        assert_eq!(event_reference(&bare), bare.id.to_string());
    }

    #[test]
    fn columns_are_checked() {
        let cols: Vec<String> =
            ["external_id", "name", "starts_at", "capacity", "price", "colour", "name"].map(String::from).to_vec();
        let errs = check_event_columns(&cols).unwrap_err();
        let msgs: Vec<String> = errs.iter().map(ToString::to_string).collect();
        assert!(msgs.iter().any(|m| m.contains("column ends_at: is missing")), "{msgs:?}");
        assert!(msgs.iter().any(|m| m.contains("column colour: is not a known column")), "{msgs:?}");
        assert!(msgs.iter().any(|m| m.contains("column name: appears twice")), "{msgs:?}");
        assert_eq!(errs.len(), 3, "the known columns pass: {msgs:?}");
        let with_reasons: Vec<String> = [EventField::columns().required, vec![REASON_COLUMN, "venue"]]
            .concat()
            .into_iter()
            .map(String::from)
            .collect();
        assert!(check_event_columns(&with_reasons).is_ok(), "a rejects file's error column is ignored");
    }

    #[test]
    fn an_event_row_needs_its_external_id_and_keeps_its_status() {
        let without: Vec<(&str, &str)> = GOOD[1..].to_vec();
        let errs = parse_event_row(4, &row(&without)).unwrap_err();
        assert_eq!((errs.len(), errs[0].column.as_str()), (1, "external_id"), "{errs:?}");
        let mut cancelled = GOOD.to_vec();
        cancelled.push(("status", "cancelled"));
        assert_eq!(parse_event_row(2, &row(&cancelled)).unwrap().status, crate::EventStatus::Cancelled);
        let mut blank = GOOD.to_vec();
        blank.push(("status", " "));
        assert_eq!(parse_event_row(2, &row(&blank)).unwrap().status, crate::EventStatus::Scheduled);
    }

    const BOOKING: &[(&str, &str)] = &[
        ("external_id", "b-1"),
        ("event", "ev-1"),
        ("customer", "ann@example.com"),
        ("quantity", "2"),
        ("status", "confirmed"),
    ];

    fn booking(extra: &[(&str, &str)]) -> std::result::Result<BookingRow, Vec<RowError>> {
        let mut pairs = BOOKING.to_vec();
        for (k, v) in extra {
            pairs.retain(|(c, _)| c != k);
            pairs.push((k, v));
        }
        parse_booking_row(3, &row(&pairs))
    }

    fn columns_of(r: std::result::Result<BookingRow, Vec<RowError>>) -> Vec<String> {
        r.map(|_| Vec::new())
            .unwrap_or_else(|errs| errs.into_iter().map(|e| format!("{}: {}", e.column, e.reason)).collect())
    }

    /// The bookings-row rules: which statuses need which columns.
    #[test]
    fn booking_rows_follow_the_status_rules() {
        assert!(booking(&[]).is_ok());
        let held = columns_of(booking(&[("status", "held")]));
        assert_eq!(held, ["hold_until: is required for a held booking"]);
        assert!(booking(&[("status", "held"), ("hold_until", "2090-01-01T00:00:00Z")]).is_ok());
        let unreadable = columns_of(booking(&[("status", "held"), ("hold_until", "tomorrow")]));
        assert_eq!(unreadable.len(), 1, "a bad hold end is one error, not also a missing one: {unreadable:?}");
        let confirmed_hold = columns_of(booking(&[("hold_until", "2090-01-01T00:00:00Z")]));
        assert_eq!(confirmed_hold, ["hold_until: is only for held bookings"]);
        let cancelled = columns_of(booking(&[("status", "cancelled")]));
        assert!(cancelled[0].starts_with("status: cancelled and expired bookings move only with their tickets"));
        // With its tickets (an export row), a booking moves in any status, hold end and all.
        let moved = [
            ("status", "cancelled"),
            ("code", "7K3M-Q9TX-2BHD"),
            ("unit_price", "5 EUR"),
            ("tickets", "0123456789ABCDEFGHJKMNPQRS 0123456789ABCDEFGHJKMNPQRT"),
            ("hold_until", "2090-01-01T00:00:00Z"),
        ];
        let r = booking(&moved).expect("an exported cancelled booking");
        assert!(r.is_moved() && r.hold_until.is_some());
        let mut bad_code = moved.to_vec();
        bad_code[1] = ("code", "nope");
        assert_eq!(columns_of(booking(&bad_code)).len(), 1, "one bad cell refuses the row");
        let missing = columns_of(parse_booking_row(5, &row(&BOOKING[1..])));
        assert_eq!(missing, ["external_id: is required"]);
    }
}

/// The fuzzing harness for every parser that reads outside input (rows, money,
/// dates, durations, codes, ids). `data` is split on newlines into field values.
/// It must never panic; the fuzz target and the regression test both call it.
#[doc(hidden)]
pub fn fuzz_parsers(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let values: Vec<&str> = text.split('\n').collect();
    // The order the committed corpus was made with (each input line feeds one column);
    // a column the description adds is fed after them.
    let mut columns = vec![
        "external_id",
        "name",
        "starts_at",
        "ends_at",
        "capacity",
        "price",
        "slug",
        "venue",
        "description",
        "max_per_customer",
        "sales_start",
        "sales_end",
        "status",
        "organizer",
    ];
    for c in EventField::file_order() {
        if !columns.contains(&c) {
            columns.push(c);
        }
    }
    let get = |c: &str| columns.iter().position(|k| *k == c).and_then(|i| values.get(i)).map(|v| (*v).to_owned());
    let _ = parse_event_row(1, &get);
    for v in &values {
        let _ = v.parse::<crate::Money>();
        let _ = parse_timestamp("t", v);
        let _ = v.parse::<crate::HoldDuration>();
        let _ = v.parse::<crate::BookingCode>();
        let _ = v.parse::<crate::TicketSecret>();
        let _ = v.parse::<crate::Email>();
        let _ = v.parse::<crate::Slug>();
        let _ = crate::Cursor::decode(v);
        let _ = v.parse::<crate::EventKey>();
    }
}

#[cfg(test)]
mod fuzz_tests {
    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig { cases: 2000, ..Default::default() })]
        /// The fuzz harness on arbitrary text, every CI run.
        #[test]
        fn parsers_never_panic(s in "(?s).{0,200}") {
            super::fuzz_parsers(s.as_bytes());
        }

        /// And on text shaped like the real thing.
        #[test]
        fn parsers_never_panic_on_near_misses(
            amount in "[-+]?[0-9]{0,25}([.][0-9]{0,6})?",
            code in "[A-Za-z]{0,4}",
            year in "[-+]?[0-9]{1,7}",
        ) {
            super::fuzz_parsers(format!("{amount} {code}\n{year}-01-01T00:00:00Z\n{amount}").as_bytes());
        }
    }
}

/// A chunk of a bookings import between resolving its rows and reserving them.
#[derive(Debug)]
pub struct BookingImportChunk {
    /// The reservations to run, in file order, as one batch.
    pub batch: Vec<crate::ReserveRequest>,
    slots: Vec<usize>,
    outcomes: Vec<(u64, Option<Result<ImportAction>>)>,
}

/// The first half of the bookings-import rule: each row's event is resolved (with the
/// store's `resolve`, inside its transaction), the importer must be allowed to book
/// for the row's customer, and the rows that pass become one reservation batch.
pub fn prepare_booking_import(
    chunk: Vec<ImportBooking>,
    resolve: &mut dyn FnMut(&str) -> Result<Option<Event>>,
    may_book: &dyn Fn(&Event, &crate::Email) -> Result<()>,
) -> Result<BookingImportChunk> {
    let mut events: HashMap<String, Option<Event>> = HashMap::new();
    let mut plan =
        BookingImportChunk { batch: Vec::new(), slots: Vec::new(), outcomes: Vec::with_capacity(chunk.len()) };
    for row in chunk {
        if !events.contains_key(&row.event) {
            let e = resolve(&row.event)?;
            events.insert(row.event.clone(), e);
        }
        let outcome = match &events[&row.event] {
            None => Some(Err(Error::not_found("event", &row.event))),
            Some(e) => match may_book(e, &row.request.customer) {
                Err(refused) => Some(Err(refused)),
                Ok(()) => {
                    let mut req = row.request;
                    req.event_id = e.id;
                    plan.slots.push(plan.outcomes.len());
                    plan.batch.push(req);
                    None
                }
            },
        };
        plan.outcomes.push((row.line, outcome));
    }
    Ok(plan)
}

impl BookingImportChunk {
    /// The second half: the batch's outcomes merged back in file order, each row
    /// reported to `on_row` (a replayed external id is `Unchanged`) and its refusal
    /// counted.
    pub fn finish(
        mut self,
        results: Vec<Result<crate::Reservation>>,
        refusals: &mut Refusals,
        on_row: &mut dyn FnMut(u64, &Result<ImportAction>),
    ) {
        for (slot, result) in self.slots.into_iter().zip(results) {
            self.outcomes[slot].1 =
                Some(result.map(|r| if r.replayed { ImportAction::Unchanged } else { ImportAction::Created }));
        }
        for (line, outcome) in self.outcomes {
            refusals.report(line, outcome.expect("the batch answers every request it was given"), on_row);
        }
    }
}
