//! Mapping SQLite rows to core's plain records (core turns those into domain values
//! and re-validates them), and driver errors to core errors.

use goticket_core::Timestamp;
use goticket_core::records::{BookingRecord, EventRecord, TicketRecord};
use goticket_core::{Error, StoreError, StoreErrorKind};
use rusqlite::types::Type;
use rusqlite::{ErrorCode, Row};
use uuid::Uuid;

/// A timestamp as stored: microseconds since the epoch.
pub(crate) fn micros(t: Timestamp) -> i64 {
    t.as_microsecond()
}

fn ts(r: &Row<'_>, i: usize) -> rusqlite::Result<Timestamp> {
    let v: i64 = r.get(i)?;
    Timestamp::from_microsecond(v).map_err(|e| rusqlite::Error::FromSqlConversionFailure(i, Type::Integer, Box::new(e)))
}

fn ts_opt(r: &Row<'_>, i: usize) -> rusqlite::Result<Option<Timestamp>> {
    match r.get::<_, Option<i64>>(i)? {
        None => Ok(None),
        Some(_) => ts(r, i).map(Some),
    }
}

fn uuid(r: &Row<'_>, i: usize) -> rusqlite::Result<Uuid> {
    let v: String = r.get(i)?;
    Uuid::try_parse(&v).map_err(|e| rusqlite::Error::FromSqlConversionFailure(i, Type::Text, Box::new(e)))
}

/// SQLite's extended result code for "cannot grow the shared-memory file", which is
/// what a full disk looks like when a connection first maps a WAL database.
const SQLITE_IOERR_SHMSIZE: i32 = 4874;
/// SQLite's extended result codes for a UNIQUE index and a PRIMARY KEY violated.
const SQLITE_CONSTRAINT_UNIQUE: i32 = 2067;
const SQLITE_CONSTRAINT_PRIMARYKEY: i32 = 1555;

/// Converts a driver error into core's error, keeping the cause: the one place a
/// SQLite error is classified. A taken slug or email is a conflict, any other unique
/// value a collision (safe to re-run), a broken CHECK an integrity error. A full disk
/// and a read-only database are named as such: an operator must know which one to fix.
pub(crate) fn db_err(e: rusqlite::Error) -> Error {
    let (kind, message) = match &e {
        rusqlite::Error::SqliteFailure(f, msg) => match f.code {
            ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked => {
                (StoreErrorKind::Busy, "the database is locked by another writer".to_owned())
            }
            ErrorCode::ConstraintViolation => {
                let msg = msg.as_deref().unwrap_or("?");
                let unique = matches!(f.extended_code, SQLITE_CONSTRAINT_UNIQUE | SQLITE_CONSTRAINT_PRIMARYKEY);
                match msg.strip_prefix("UNIQUE constraint failed: ") {
                    Some(c) if unique && c.starts_with("events.slug") => {
                        return Error::conflict("the slug is already used by another event");
                    }
                    Some(c) if unique && c.starts_with("users.email") => {
                        return Error::conflict("a user with that email already exists");
                    }
                    // A random key drawn twice (a booking code, a ticket secret, an id)
                    // or a retry key a concurrent request took: nothing is kept, and
                    // the same request may run again.
                    Some(c) if unique => return Error::collision(format!("{c} is already taken")),
                    _ => (StoreErrorKind::Integrity, format!("constraint violated: {msg}")),
                }
            }
            ErrorCode::DiskFull => {
                (StoreErrorKind::Unavailable, "disk full: the database's disk has no space left".to_owned())
            }
            ErrorCode::SystemIoFailure if f.extended_code == SQLITE_IOERR_SHMSIZE => (
                StoreErrorKind::Unavailable,
                "disk full: SQLite cannot create its shared-memory file beside the database".to_owned(),
            ),
            ErrorCode::ReadOnly => (
                StoreErrorKind::Unavailable,
                "read-only: the database file or its file system does not take writes".to_owned(),
            ),
            ErrorCode::CannotOpen | ErrorCode::SystemIoFailure => (StoreErrorKind::Unavailable, format!("sqlite: {e}")),
            _ if msg.as_deref().is_some_and(|m| m.starts_with("no such table")) => {
                (StoreErrorKind::Schema, "the database has no goticket schema; run `goticket migrate`".to_owned())
            }
            _ => (StoreErrorKind::Other, format!("sqlite: {e}")),
        },
        rusqlite::Error::FromSqlConversionFailure(..) => {
            (StoreErrorKind::Integrity, format!("stored value is invalid: {e}"))
        }
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
     e.sold, e.external_id"
}

/// Reads the columns of [`event_cols`].
pub(crate) fn read_event_row(r: &Row<'_>) -> rusqlite::Result<EventRecord> {
    Ok(EventRecord {
        id: uuid(r, 0)?,
        slug: r.get(1)?,
        name: r.get(2)?,
        description: r.get(3)?,
        venue: r.get(4)?,
        starts_at: ts(r, 5)?,
        ends_at: ts(r, 6)?,
        capacity: r.get(7)?,
        price_minor: r.get(8)?,
        currency: r.get(9)?,
        max_per_customer: r.get(10)?,
        sales_start: ts_opt(r, 11)?,
        sales_end: ts_opt(r, 12)?,
        status: r.get(13)?,
        organizer: r.get(14)?,
        created_at: ts(r, 15)?,
        updated_at: ts(r, 16)?,
        held: r.get(17)?,
        sold: r.get(18)?,
        external_id: r.get(19)?,
    })
}

pub(crate) const BOOKING_COLS: &str = "b.id, b.code, b.event_id, b.customer, b.quantity, b.status, b.unit_price_minor, \
     b.currency, b.expires_at, b.idempotency_key, b.created_at, b.updated_at, b.external_id";

/// Reads the columns of [`BOOKING_COLS`].
pub(crate) fn read_booking_row(r: &Row<'_>) -> rusqlite::Result<BookingRecord> {
    Ok(BookingRecord {
        id: uuid(r, 0)?,
        code: r.get(1)?,
        event_id: uuid(r, 2)?,
        customer: r.get(3)?,
        quantity: r.get(4)?,
        status: r.get(5)?,
        unit_price_minor: r.get(6)?,
        currency: r.get(7)?,
        expires_at: ts_opt(r, 8)?,
        idempotency_key: r.get(9)?,
        created_at: ts(r, 10)?,
        updated_at: ts(r, 11)?,
        external_id: r.get(12)?,
    })
}

/// Reads `seq, secret, checked_in_at`.
pub(crate) fn read_ticket_row(r: &Row<'_>) -> rusqlite::Result<TicketRecord> {
    Ok(TicketRecord { seq: r.get(0)?, secret: r.get(1)?, checked_in_at: ts_opt(r, 2)? })
}

/// An event row followed by the report's two counts.
pub(crate) fn read_sales_row(r: &Row<'_>) -> rusqlite::Result<(EventRecord, i64, i64)> {
    Ok((read_event_row(r)?, r.get(20)?, r.get(21)?))
}

/// The outbox's columns, in the order [`read_domain_event_row`] reads them.
pub(crate) const OUTBOX_COLS: &str = "position, id, type, aggregate_type, aggregate_id, aggregate_seq, event_id, \
     occurred_at, actor, schema_version, payload";

pub(crate) fn read_domain_event_row(r: &Row<'_>) -> rusqlite::Result<goticket_core::records::DomainEventRecord> {
    let event_id = match r.get::<_, Option<String>>(6)? {
        None => None,
        Some(_) => Some(uuid(r, 6)?),
    };
    Ok(goticket_core::records::DomainEventRecord {
        position: r.get(0)?,
        id: uuid(r, 1)?,
        kind: r.get(2)?,
        aggregate_type: r.get(3)?,
        aggregate_id: r.get(4)?,
        aggregate_seq: r.get(5)?,
        event_id,
        occurred_at: ts(r, 7)?,
        actor: r.get(8)?,
        schema_version: r.get(9)?,
        payload: r.get(10)?,
    })
}

/// A booking a bulk status change touched: `id, code, event_id, customer, quantity`.
pub(crate) fn read_change_row(
    r: &Row<'_>,
    from: goticket_core::BookingStatus,
) -> rusqlite::Result<(String, String, String, String, i64, goticket_core::BookingStatus)> {
    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, from))
}
