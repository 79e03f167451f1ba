//! Mapping between SQLite rows and domain values, and driver errors to core errors.
//! Values read back are re-validated through the domain constructors: a row that
//! fails is reported as an integrity error, never turned into a panic.

use goticket_core::error::{Error, Result, StoreError, StoreErrorKind};
use goticket_core::store::SalesRow;
use goticket_core::{Booking, BookingId, Currency, Event, EventId, EventStatus, Money, Ticket, Timestamp};
use rusqlite::{ErrorCode, Row};

/// A timestamp as stored: microseconds since the epoch.
pub(crate) fn micros(t: Timestamp) -> i64 {
    t.as_microsecond()
}

fn corrupt(column: &str, why: impl std::fmt::Display) -> Error {
    Error::Storage(StoreError::new(StoreErrorKind::Integrity, format!("stored {column} is invalid: {why}"), None))
}

fn time(column: &str, v: i64) -> Result<Timestamp> {
    Timestamp::from_microsecond(v).map_err(|e| corrupt(column, e))
}

fn parse<T: std::str::FromStr>(column: &str, v: &str) -> Result<T>
where
    T::Err: std::fmt::Display,
{
    v.parse().map_err(|e| corrupt(column, e))
}

fn money(column: &str, amount: i64, currency: &str) -> Result<Money> {
    let c: Currency = parse(column, currency)?;
    Money::new(amount, c).map_err(|e| corrupt(column, e))
}

/// Converts a driver error into core's error, keeping the cause.
pub(crate) fn db_err(e: rusqlite::Error) -> Error {
    let (kind, message) = match &e {
        rusqlite::Error::SqliteFailure(f, msg) => match f.code {
            ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked => {
                (StoreErrorKind::Busy, "the database is locked by another writer".to_owned())
            }
            ErrorCode::ConstraintViolation => {
                (StoreErrorKind::Integrity, format!("constraint violated: {}", msg.as_deref().unwrap_or("?")))
            }
            ErrorCode::CannotOpen | ErrorCode::ReadOnly | ErrorCode::DiskFull | ErrorCode::SystemIoFailure => {
                (StoreErrorKind::Unavailable, format!("sqlite: {e}"))
            }
            _ if msg.as_deref().is_some_and(|m| m.starts_with("no such table")) => {
                (StoreErrorKind::Schema, "the database has no goticket schema; run `goticket migrate`".to_owned())
            }
            _ => (StoreErrorKind::Other, format!("sqlite: {e}")),
        },
        _ => (StoreErrorKind::Other, format!("sqlite: {e}")),
    };
    Error::Storage(StoreError::new(kind, message, Some(Box::new(e))))
}

/// The event columns, with `held` as of `?1` (overdue holds not counted).
pub(crate) fn event_cols() -> &'static str {
    "e.id, e.slug, e.name, e.description, e.venue, e.starts_at, e.ends_at, e.capacity, e.price_minor, e.currency,
     e.max_per_customer, e.sales_start, e.sales_end, e.status, e.organizer, e.created_at, e.updated_at,
     e.held - COALESCE((SELECT SUM(o.quantity) FROM bookings o
                        WHERE o.event_id = e.id AND o.status = 'held' AND o.expires_at <= ?1), 0),
     e.sold"
}

pub(crate) struct RawEvent {
    id: String,
    slug: Option<String>,
    name: String,
    description: Option<String>,
    venue: Option<String>,
    starts_at: i64,
    ends_at: i64,
    capacity: i64,
    price_minor: i64,
    currency: String,
    max_per_customer: Option<i64>,
    sales_start: Option<i64>,
    sales_end: Option<i64>,
    status: String,
    organizer: String,
    created_at: i64,
    updated_at: i64,
    held: i64,
    sold: i64,
}

pub(crate) fn read_event_row(r: &Row<'_>) -> rusqlite::Result<RawEvent> {
    Ok(RawEvent {
        id: r.get(0)?,
        slug: r.get(1)?,
        name: r.get(2)?,
        description: r.get(3)?,
        venue: r.get(4)?,
        starts_at: r.get(5)?,
        ends_at: r.get(6)?,
        capacity: r.get(7)?,
        price_minor: r.get(8)?,
        currency: r.get(9)?,
        max_per_customer: r.get(10)?,
        sales_start: r.get(11)?,
        sales_end: r.get(12)?,
        status: r.get(13)?,
        organizer: r.get(14)?,
        created_at: r.get(15)?,
        updated_at: r.get(16)?,
        held: r.get(17)?,
        sold: r.get(18)?,
    })
}

impl RawEvent {
    pub(crate) fn into_event(self) -> Result<Event> {
        let held = u32::try_from(self.held).map_err(|e| corrupt("held", e))?;
        let sold = u32::try_from(self.sold).map_err(|e| corrupt("sold", e))?;
        let event = Event {
            id: parse("event id", &self.id)?,
            slug: self.slug.as_deref().map(|s| parse("slug", s)).transpose()?,
            name: parse("name", &self.name)?,
            description: self.description,
            venue: self.venue,
            starts_at: time("starts_at", self.starts_at)?,
            ends_at: time("ends_at", self.ends_at)?,
            capacity: self.capacity.try_into().map_err(|e| corrupt("capacity", e))?,
            held: 0,
            sold: 0,
            available: 0,
            price: money("price", self.price_minor, &self.currency)?,
            max_per_customer: self
                .max_per_customer
                .map(|m| m.try_into().map_err(|e| corrupt("max_per_customer", e)))
                .transpose()?,
            sales_start: self.sales_start.map(|t| time("sales_start", t)).transpose()?,
            sales_end: self.sales_end.map(|t| time("sales_end", t)).transpose()?,
            status: parse::<EventStatus>("status", &self.status)?,
            organizer: parse("organizer", &self.organizer)?,
            created_at: time("created_at", self.created_at)?,
            updated_at: time("updated_at", self.updated_at)?,
        };
        Ok(event.with_counters(held, sold))
    }
}

pub(crate) const BOOKING_COLS: &str = "b.id, b.code, b.event_id, b.customer, b.quantity, b.status, b.unit_price_minor, \
     b.currency, b.expires_at, b.idempotency_key, b.created_at, b.updated_at";

pub(crate) struct RawBooking {
    id: String,
    code: String,
    event_id: String,
    customer: String,
    quantity: i64,
    status: String,
    unit_price_minor: i64,
    currency: String,
    expires_at: Option<i64>,
    idempotency_key: Option<String>,
    created_at: i64,
    updated_at: i64,
}

pub(crate) fn read_booking_row(r: &Row<'_>) -> rusqlite::Result<RawBooking> {
    Ok(RawBooking {
        id: r.get(0)?,
        code: r.get(1)?,
        event_id: r.get(2)?,
        customer: r.get(3)?,
        quantity: r.get(4)?,
        status: r.get(5)?,
        unit_price_minor: r.get(6)?,
        currency: r.get(7)?,
        expires_at: r.get(8)?,
        idempotency_key: r.get(9)?,
        created_at: r.get(10)?,
        updated_at: r.get(11)?,
    })
}

impl RawBooking {
    /// The booking without its tickets (the caller loads them).
    pub(crate) fn into_booking(self) -> Result<Booking> {
        Ok(Booking {
            id: parse::<BookingId>("booking id", &self.id)?,
            code: parse("code", &self.code)?,
            event_id: parse::<EventId>("event id", &self.event_id)?,
            customer: parse("customer", &self.customer)?,
            quantity: self.quantity.try_into().map_err(|e| corrupt("quantity", e))?,
            status: parse("status", &self.status)?,
            unit_price: money("unit price", self.unit_price_minor, &self.currency)?,
            expires_at: self.expires_at.map(|t| time("expires_at", t)).transpose()?,
            idempotency_key: self.idempotency_key.as_deref().map(|k| parse("idempotency key", k)).transpose()?,
            created_at: time("created_at", self.created_at)?,
            updated_at: time("updated_at", self.updated_at)?,
            tickets: Vec::new(),
        })
    }
}

pub(crate) fn ticket_from_raw((seq, secret, checked_in_at): (i64, String, Option<i64>)) -> Result<Ticket> {
    Ok(Ticket {
        seq: u32::try_from(seq).map_err(|e| corrupt("ticket seq", e))?,
        secret: parse("ticket secret", &secret)?,
        checked_in_at: checked_in_at.map(|t| time("checked_in_at", t)).transpose()?,
    })
}

pub(crate) struct RawSales {
    event: RawEvent,
    confirmed: i64,
    checked_in: i64,
    revenue: i64,
}

pub(crate) fn read_sales_row(r: &Row<'_>) -> rusqlite::Result<RawSales> {
    Ok(RawSales { event: read_event_row(r)?, confirmed: r.get(19)?, checked_in: r.get(20)?, revenue: r.get(21)? })
}

impl RawSales {
    pub(crate) fn into_row(self) -> Result<SalesRow> {
        let e = self.event.into_event()?;
        Ok(SalesRow {
            event_id: e.id,
            slug: e.slug,
            name: e.name.to_string(),
            starts_at: e.starts_at,
            status: e.status,
            capacity: e.capacity.get(),
            held: e.held,
            sold: e.sold,
            available: e.available,
            confirmed_bookings: u64::try_from(self.confirmed).unwrap_or(0),
            checked_in: u64::try_from(self.checked_in).unwrap_or(0),
            revenue: Money::new(self.revenue, e.price.currency()).map_err(|err| corrupt("revenue", err))?,
        })
    }
}
