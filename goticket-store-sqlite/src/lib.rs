//! goticket-store-sqlite: the embedded [`Store`] on SQLite (rusqlite, bundled).
//!
//! One file, no server. Correct for many threads and many OS processes on the same
//! file: every write is one `BEGIN IMMEDIATE` transaction (writers in this process
//! queue on a mutex, other processes wait through the busy timeout), the counters
//! are updated with a guard and backed by CHECK constraints, and commits are durable
//! (`synchronous=FULL`) unless [`Synchronous::Normal`] is chosen.
//!
//! ```
//! use std::sync::Arc;
//! use goticket_core::{Service, Store};
//! use goticket_store_sqlite::SqliteStore;
//!
//! let dir = tempfile::tempdir()?;
//! let store = SqliteStore::open(dir.path().join("tickets.db"))?;
//! store.migrate()?;
//! let service = Service::new(Arc::new(store));
//! # let _ = service;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod rows;
mod schema;

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use goticket_core::outbox::{AggregateRef, AuditFilter, BookingChange, DomainEvent, RelayCursor, RelayState};
use goticket_core::records::{BookingRecord, DomainEventRecord, TicketRecord, UserRecord};
use goticket_core::users::{Account, PasswordHash, User};
use goticket_core::{
    Booking, BookingCode, BookingFilter, BookingId, BookingStatus, Email, Event, EventFilter, EventId, ExternalId,
    IdempotencyKey, PageStart, Slug, TicketSecret, Timestamp,
};
use goticket_core::{
    Commit, CounterDelta, EventKey, Locked, PoolWaitCounter, PoolWaits, Retry, SalesRow, SeatTotals, Store, Tx, TxBody,
};
use goticket_core::{Error, Result, StoreError, StoreErrorKind};
use rusqlite::ToSql;
use rusqlite::types::Value;
use rusqlite::{Connection, OpenFlags, OptionalExtension, Transaction, TransactionBehavior, params, params_from_iter};
use uuid::Uuid;

use crate::rows::{
    BOOKING_COLS, OUTBOX_COLS, db_err, event_cols, micros, read_booking_row, read_change_row, read_domain_event_row,
    read_event_row, read_sales_row, read_ticket_row,
};

/// How hard SQLite works to make a commit survive a power cut.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Synchronous {
    /// fsync on every commit: a booking reported as made survives a power cut. Default.
    #[default]
    Full,
    /// WAL with fewer fsyncs: never corrupt, but the last commits before a power cut
    /// (not a process crash) may be lost. Faster.
    Normal,
}

/// Options for opening a SQLite store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SqliteOptions {
    /// Durability level; see [`Synchronous`].
    pub synchronous: Synchronous,
    /// How long a write waits for another process's write lock before failing as busy.
    pub busy_timeout: Duration,
}

impl Default for SqliteOptions {
    fn default() -> Self {
        SqliteOptions { synchronous: Synchronous::Full, busy_timeout: Duration::from_secs(30) }
    }
}

impl SqliteOptions {
    /// Reads a database URL: `sqlite:PATH`, `sqlite://PATH` or a plain path, with
    /// optional `?synchronous=full|normal&busy_timeout_ms=N`.
    pub fn parse_url(url: &str) -> Result<(PathBuf, SqliteOptions)> {
        let rest = url.strip_prefix("sqlite://").or_else(|| url.strip_prefix("sqlite:")).unwrap_or(url);
        let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
        if path.is_empty() {
            return Err(Error::validation("db", format!("{url:?} names no database file")));
        }
        let mut opts = SqliteOptions::default();
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            match pair.split_once('=') {
                Some(("synchronous", v)) => {
                    opts.synchronous = match v.to_ascii_lowercase().as_str() {
                        "full" => Synchronous::Full,
                        "normal" => Synchronous::Normal,
                        _ => return Err(Error::validation("db", format!("synchronous={v} is not full or normal"))),
                    }
                }
                Some(("busy_timeout_ms", v)) => {
                    let ms: u64 = v
                        .parse()
                        .map_err(|_| Error::validation("db", format!("busy_timeout_ms={v} is not a number")))?;
                    opts.busy_timeout = Duration::from_millis(ms);
                }
                _ => return Err(Error::validation("db", format!("unknown option {pair:?} in {url:?}"))),
            }
        }
        Ok((PathBuf::from(path), opts))
    }
}

/// The SQLite store. Cheap to share behind an `Arc`; all methods are thread-safe.
///
/// The writing connection opens on the first write, so a database on a read-only file
/// system or a full disk can still be read: where no normal connection can be had
/// there, reads fall back to an immutable read-only one (only when no write-ahead log
/// is waiting to be merged, which it would not see), and writes fail saying which of
/// the two it is.
#[derive(Debug)]
pub struct SqliteStore {
    path: PathBuf,
    options: SqliteOptions,
    writer: Mutex<Option<Connection>>,
    /// How long transactions waited for the writer connection.
    writer_waits: PoolWaitCounter,
    readers: Mutex<Vec<Connection>>,
}

/// Free space below which the store is not ready: a commit that cannot be written is
/// refused anyway, but a readiness probe should say so before a buyer finds out.
const MIN_FREE_BYTES: u64 = 1 << 20;

/// Idle reader connections kept for reuse.
const MAX_IDLE_READERS: usize = 64;

impl SqliteStore {
    /// Opens (creating if needed) the database file with default options. Call
    /// [`Store::migrate`] before first use.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        Self::open_with(path, SqliteOptions::default())
    }

    /// Opens the database named by a URL; see [`SqliteOptions::parse_url`].
    pub fn open_url(url: &str) -> Result<Self> {
        let (path, options) = SqliteOptions::parse_url(url)?;
        Self::open_with(path, options)
    }

    /// Opens the database file with the given options. A file that can only be read
    /// (a read-only file system, a full disk) opens too; see [`SqliteStore`].
    pub fn open_with(path: impl AsRef<Path>, options: SqliteOptions) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        let writer = match connect(&path, &options) {
            Ok(c) => Some(c),
            Err(e) if read_only_may_help(&path) => {
                // Reads may still work; writes will say why they cannot.
                let _ = e;
                None
            }
            Err(e) => return Err(e),
        };
        Ok(SqliteStore {
            path,
            options,
            writer: Mutex::new(writer),
            writer_waits: PoolWaitCounter::default(),
            readers: Mutex::new(Vec::new()),
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn read<T>(&self, f: impl FnOnce(&Connection) -> Result<T>) -> Result<T> {
        let pooled = self.readers.lock().unwrap_or_else(|p| p.into_inner()).pop();
        let conn = match pooled {
            Some(c) => c,
            None => match connect(&self.path, &self.options) {
                Ok(c) => c,
                Err(e) if read_only_may_help(&self.path) => connect_immutable(&self.path).map_err(|_| e)?,
                Err(e) => return Err(e),
            },
        };
        let out = f(&conn);
        let mut idle = self.readers.lock().unwrap_or_else(|p| p.into_inner());
        if idle.len() < MAX_IDLE_READERS {
            idle.push(conn);
        }
        out
    }

    /// Runs `f` once in a `BEGIN IMMEDIATE` transaction, committed if it says so and
    /// rolled back otherwise (also when it fails or panics: the transaction rolls back
    /// when dropped). A failure of the COMMIT itself leaves the outcome unknown.
    fn transaction<T>(&self, f: impl FnOnce(&Transaction<'_>) -> Result<(T, Commit)>) -> Result<T> {
        // A panic in another writer leaves the connection usable: its transaction was
        // rolled back when the Transaction dropped.
        let asked = std::time::Instant::now();
        let mut slot = self.writer.lock().unwrap_or_else(|p| p.into_inner());
        self.writer_waits.checked_out(asked.elapsed());
        let conn = match &mut *slot {
            Some(c) => c,
            None => slot.insert(connect(&self.path, &self.options)?),
        };
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(db_err)?;
        let (out, commit) = f(&tx)?;
        match commit {
            Commit::Yes => tx.commit().map_err(|e| {
                let cause = db_err(e);
                Error::Storage(StoreError::new(
                    StoreErrorKind::OutcomeUnknown,
                    format!("the commit failed, so whether it was written is unknown ({cause})"),
                    Some(Box::new(cause)),
                ))
            })?,
            Commit::No => tx.rollback().map_err(db_err)?,
        }
        Ok(out)
    }
}

/// How often a write that found the database busy is run again.
const MAX_RETRIES: u32 = 5;

/// The one place a connection is set up; every connection goes through it (but the
/// read-only fallback, [`connect_immutable`]).
fn connect(path: &Path, options: &SqliteOptions) -> Result<Connection> {
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags).map_err(|e| open_failed(path, e))?;
    conn.busy_timeout(options.busy_timeout).map_err(db_err)?;
    let mode: String =
        conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0)).map_err(|e| open_failed(path, e))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(Error::Storage(StoreError::new(
            StoreErrorKind::Other,
            format!("{} cannot use WAL (journal_mode is {mode})", path.display()),
            None,
        )));
    }
    let sync = match options.synchronous {
        Synchronous::Full => "FULL",
        Synchronous::Normal => "NORMAL",
    };
    conn.pragma_update(None, "synchronous", sync).map_err(db_err)?;
    conn.pragma_update(None, "foreign_keys", "ON").map_err(db_err)?;
    conn.set_prepared_statement_cache_capacity(64);
    Ok(conn)
}

/// A read-only connection that never writes beside the file (no shared-memory file,
/// no lock files): for reading a database where a normal connection cannot be opened.
fn connect_immutable(path: &Path) -> Result<Connection> {
    let mut url = String::from("file:");
    for b in path.display().to_string().bytes() {
        match b {
            b'?' | b'#' | b'%' => url.push_str(&format!("%{b:02X}")),
            _ => url.push(char::from(b)),
        }
    }
    url.push_str("?immutable=1");
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_URI | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(&url, flags).map_err(|e| open_failed(path, e))?;
    conn.set_prepared_statement_cache_capacity(64);
    Ok(conn)
}

/// Whether a database that cannot be opened normally can still be read immutably: the
/// file exists, and no write-ahead log holds commits an immutable reader would miss.
/// (A database that another connection has open always has its shared-memory file,
/// so this case arises only when nobody is writing it.)
fn read_only_may_help(path: &Path) -> bool {
    let wal = PathBuf::from(format!("{}-wal", path.display()));
    path.is_file() && std::fs::metadata(&wal).map_or(true, |m| m.len() == 0)
}

/// Why a database could not be opened, naming the file and, where it can be told,
/// whether its file system is read-only or its disk is full.
fn open_failed(path: &Path, e: rusqlite::Error) -> Error {
    let read_only = std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .is_err_and(|io| io.kind() == std::io::ErrorKind::ReadOnlyFilesystem);
    let message = if read_only {
        format!("read-only: {} is on a read-only file system", path.display())
    } else {
        match db_err(e) {
            Error::Storage(s) if s.to_string().contains("disk full") => {
                format!("disk full: cannot open {} ({})", path.display(), s.to_string().trim_start_matches("storage: "))
            }
            _ => format!("cannot open database {}", path.display()),
        }
    };
    Error::Storage(StoreError::new(StoreErrorKind::Unavailable, message, None))
}

/// Free bytes on the file system that holds `path`, where the platform says.
#[cfg(unix)]
fn free_bytes(path: &Path) -> Option<u64> {
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let st = rustix::fs::statvfs(dir).ok()?;
    Some(st.f_bavail.saturating_mul(st.f_frsize))
}

#[cfg(not(unix))]
fn free_bytes(_path: &Path) -> Option<u64> {
    None
}

/// Expires overdue holds (of one event, or all) and releases their seats.
fn expire_overdue(conn: &Connection, event: Option<EventId>, now: Timestamp) -> Result<Vec<BookingChange>> {
    let now = micros(now);
    let mut released: HashMap<String, i64> = HashMap::new();
    let mut changes = Vec::new();
    {
        let sql = match event {
            Some(_) => {
                "UPDATE bookings SET status = 'expired', updated_at = ?1
                 WHERE status = 'held' AND event_id = ?2 AND expires_at <= ?1
                 RETURNING id, code, event_id, customer, quantity"
            }
            None => {
                "UPDATE bookings SET status = 'expired', updated_at = ?1
                 WHERE status = 'held' AND expires_at <= ?1 RETURNING id, code, event_id, customer, quantity"
            }
        };
        let mut stmt = conn.prepare_cached(sql).map_err(db_err)?;
        let id = event.map(|e| e.to_string());
        let mut rows = match &id {
            Some(id) => stmt.query(params![now, id]),
            None => stmt.query(params![now]),
        }
        .map_err(db_err)?;
        while let Some(row) = rows.next().map_err(db_err)? {
            let c = read_change_row(row, BookingStatus::Held).map_err(db_err)?;
            *released.entry(c.2.clone()).or_default() += c.4;
            changes.push(c);
        }
    }
    let mut stmt = conn.prepare_cached("UPDATE events SET held = held - ?1 WHERE id = ?2").map_err(db_err)?;
    for (event_id, q) in released {
        stmt.execute(params![q, event_id]).map_err(db_err)?;
    }
    changes.into_iter().map(into_change).collect()
}

/// A relay's row.
fn read_relay(c: &Connection, name: &str) -> Result<Option<RelayState>> {
    let row = c
        .query_row(
            "SELECT position, owner, lease_until, published, last_published_at, last_error FROM relay_state WHERE name = ?1",
            params![name],
            |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, Option<String>>(1)?,
                    r.get::<_, Option<i64>>(2)?,
                    r.get::<_, i64>(3)?,
                    r.get::<_, Option<i64>>(4)?,
                    r.get::<_, Option<String>>(5)?,
                ))
            },
        )
        .optional()
        .map_err(db_err)?;
    let Some((position, owner, until, published, last, last_error)) = row else { return Ok(None) };
    let time = |m: Option<i64>| {
        m.map(Timestamp::from_microsecond).transpose().map_err(|e| {
            Error::Storage(StoreError::new(StoreErrorKind::Integrity, format!("stored relay time: {e}"), None))
        })
    };
    Ok(Some(RelayState {
        name: name.to_owned(),
        cursor: RelayCursor { tx: 0, position },
        owner,
        lease_until: time(until)?,
        published: u64::try_from(published).unwrap_or(0),
        last_published_at: time(last)?,
        last_error,
    }))
}

/// A bulk status change's row as core's [`BookingChange`].
fn into_change(
    (id, code, event_id, customer, quantity, from): (String, String, String, String, i64, BookingStatus),
) -> Result<BookingChange> {
    let bad = |column: &str, why: String| {
        Error::Storage(StoreError::new(StoreErrorKind::Integrity, format!("stored {column} is invalid: {why}"), None))
    };
    Ok(BookingChange {
        id: id.parse().map_err(|e: Error| bad("bookings.id", e.to_string()))?,
        code: code.parse().map_err(|e: Error| bad("bookings.code", e.to_string()))?,
        event_id: event_id.parse().map_err(|e: Error| bad("bookings.event_id", e.to_string()))?,
        customer: customer.parse().map_err(|e: Error| bad("bookings.customer", e.to_string()))?,
        quantity: u32::try_from(quantity).map_err(|e| bad("bookings.quantity", e.to_string()))?,
        from,
    })
}

fn read_event(conn: &Connection, key: &EventKey, now: Timestamp) -> Result<Option<Event>> {
    let (clause, value) = match key {
        EventKey::Id(id) => ("e.id = ?2", id.to_string()),
        EventKey::Slug(s) => ("e.slug = ?2", s.as_str().to_owned()),
    };
    let sql = format!("SELECT {} FROM events e WHERE {clause}", event_cols());
    let raw = conn
        .prepare_cached(&sql)
        .and_then(|mut s| s.query_row(params![micros(now), value], read_event_row).optional())
        .map_err(db_err)?;
    raw.map(|r| r.into_event()).transpose()
}

fn read_booking(conn: &Connection, clause: &str, value: &str) -> Result<Option<Booking>> {
    let sql = format!("SELECT {BOOKING_COLS} FROM bookings b WHERE {clause}");
    let raw = conn
        .prepare_cached(&sql)
        .and_then(|mut s| s.query_row([value], read_booking_row).optional())
        .map_err(db_err)?;
    raw.map(|r| with_tickets(conn, r)).transpose()
}

fn tickets(conn: &Connection, booking_id: &Uuid) -> Result<Vec<TicketRecord>> {
    let mut stmt = conn
        .prepare_cached("SELECT seq, secret, checked_in_at FROM tickets WHERE booking_id = ?1 ORDER BY seq")
        .map_err(db_err)?;
    stmt.query_map([booking_id.hyphenated().to_string()], read_ticket_row)
        .map_err(db_err)?
        .collect::<rusqlite::Result<Vec<_>>>()
        .map_err(db_err)
}

fn with_tickets(conn: &Connection, record: BookingRecord) -> Result<Booking> {
    let tickets = tickets(conn, &record.id)?;
    record.into_booking(tickets)
}

fn insert_event_row(tx: &Connection, e: &Event) -> Result<()> {
    let (organizer, created_at, updated_at) = (e.organizer.as_str(), micros(e.created_at), micros(e.updated_at));
    let external_id = e.external_id.as_ref().map(|x| x.as_str());
    with_event_columns(e, &[&organizer, &created_at, &updated_at, &external_id], |values| {
        tx.prepare_cached(
            "INSERT INTO events (id, slug, name, description, venue, starts_at, ends_at, capacity, price_minor,
               currency, max_per_customer, sales_start, sales_end, status, organizer, held, sold, created_at,
               updated_at, external_id)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, 0, 0, ?16, ?17, ?18)",
        )
        .and_then(|mut s| s.execute(values))
    })
    .map_err(db_err)?;
    Ok(())
}

fn write_event_fields(conn: &Connection, e: &Event) -> Result<()> {
    let updated_at = micros(e.updated_at);
    let n = with_event_columns(e, &[&updated_at], |values| {
        conn.prepare_cached(
            "UPDATE events SET slug = ?2, name = ?3, description = ?4, venue = ?5, starts_at = ?6, ends_at = ?7,
               capacity = ?8, price_minor = ?9, currency = ?10, max_per_customer = ?11, sales_start = ?12,
               sales_end = ?13, status = ?14, updated_at = ?15
             WHERE id = ?1",
        )
        .and_then(|mut s| s.execute(values))
    })
    .map_err(db_err)?;
    if n != 1 {
        return Err(Error::not_found("event", e.id));
    }
    Ok(())
}

/// Runs `run` with the event's columns an insert and an update both write, as `?1` to
/// `?14` (id to status), followed by `extra`.
fn with_event_columns<R>(e: &Event, extra: &[&dyn ToSql], run: impl FnOnce(&[&dyn ToSql]) -> R) -> R {
    let id = e.id.to_string();
    let slug = e.slug.as_ref().map(|s| s.as_str());
    let (starts_at, ends_at) = (micros(e.starts_at), micros(e.ends_at));
    let (capacity, price, currency) = (e.capacity.get(), e.price.amount_minor(), e.price.currency().code());
    let max_per_customer = e.max_per_customer.map(|m| m.get());
    let (sales_start, sales_end) = (e.sales_start.map(micros), e.sales_end.map(micros));
    let (name, status) = (e.name.as_str(), e.status.as_str());
    let mut values: Vec<&dyn ToSql> = vec![
        &id,
        &slug,
        &name,
        &e.description,
        &e.venue,
        &starts_at,
        &ends_at,
        &capacity,
        &price,
        &currency,
        &max_per_customer,
        &sales_start,
        &sales_end,
        &status,
    ];
    values.extend_from_slice(extra);
    run(&values)
}

fn insert_booking(conn: &Connection, b: &Booking) -> Result<()> {
    conn.prepare_cached(
        "INSERT INTO bookings (id, code, event_id, customer, quantity, status, unit_price_minor, currency,
           expires_at, idempotency_key, created_at, updated_at, external_id)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?11, ?12)",
    )
    .and_then(|mut s| {
        s.execute(params![
            b.id.to_string(),
            b.code.as_str(),
            b.event_id.to_string(),
            b.customer.as_str(),
            b.quantity.get(),
            b.status.as_str(),
            b.unit_price.amount_minor(),
            b.unit_price.currency().code(),
            b.expires_at.map(micros),
            b.idempotency_key.as_ref().map(|k| k.as_str()),
            micros(b.created_at),
            b.external_id.as_ref().map(|x| x.as_str()),
        ])
    })
    .map_err(db_err)?;
    // A moved booking's tickets keep their check-ins.
    let mut stmt = conn
        .prepare_cached("INSERT INTO tickets (booking_id, seq, secret, checked_in_at) VALUES (?1, ?2, ?3, ?4)")
        .map_err(db_err)?;
    for t in &b.tickets {
        stmt.execute(params![b.id.to_string(), t.seq, t.secret.as_str(), t.checked_in_at.map(micros)])
            .map_err(db_err)?;
    }
    Ok(())
}

/// Adds to an event's counters with a guard: the update only happens if the seats
/// fit. The CHECK constraints stand behind it as a second line.
fn bump_counters(conn: &Connection, event: EventId, held: i64, sold: i64) -> Result<()> {
    let n = conn
        .prepare_cached(
            "UPDATE events SET held = held + ?2, sold = sold + ?3
             WHERE id = ?1 AND held + ?2 >= 0 AND sold + ?3 >= 0 AND held + sold + ?2 + ?3 <= capacity",
        )
        .and_then(|mut s| s.execute(params![event.to_string(), held, sold]))
        .map_err(db_err)?;
    if n != 1 {
        return Err(Error::Storage(StoreError::new(
            StoreErrorKind::Integrity,
            format!("counter guard refused held{held:+} sold{sold:+} on event {event}"),
            None,
        )));
    }
    Ok(())
}

fn read_booking_by_key(conn: &Connection, customer: &Email, key: &IdempotencyKey) -> Result<Option<Booking>> {
    let raw = conn
        .prepare_cached(&format!(
            "SELECT {BOOKING_COLS} FROM bookings b WHERE b.customer = ?1 AND b.idempotency_key = ?2"
        ))
        .and_then(|mut s| s.query_row(params![customer.as_str(), key.as_str()], read_booking_row).optional())
        .map_err(db_err)?;
    raw.map(|r| with_tickets(conn, r)).transpose()
}

fn customer_seats(conn: &Connection, event: EventId, customer: &Email) -> Result<u32> {
    let seats: i64 = conn
        .prepare_cached(
            "SELECT COALESCE(SUM(quantity), 0) FROM bookings
             WHERE event_id = ?1 AND customer = ?2 AND status IN ('held', 'confirmed')",
        )
        .and_then(|mut s| s.query_row(params![event.to_string(), customer.as_str()], |r| r.get(0)))
        .map_err(db_err)?;
    Ok(u32::try_from(seats).unwrap_or(u32::MAX))
}

fn read_user_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<UserRecord> {
    let ts = |i: usize| -> rusqlite::Result<Timestamp> {
        let v: i64 = r.get(i)?;
        Timestamp::from_microsecond(v)
            .map_err(|e| rusqlite::Error::FromSqlConversionFailure(i, rusqlite::types::Type::Integer, Box::new(e)))
    };
    Ok(UserRecord {
        email: r.get(0)?,
        role: r.get(1)?,
        password_hash: r.get(2)?,
        created_at: ts(3)?,
        updated_at: ts(4)?,
    })
}

fn read_account(c: &Connection, email: &Email) -> Result<Option<Account>> {
    let row = c
        .prepare_cached("SELECT email, role, password_hash, created_at, updated_at FROM users WHERE email = ?1")
        .and_then(|mut s| s.query_row([email.as_str()], read_user_row).optional())
        .map_err(db_err)?;
    row.map(UserRecord::into_account).transpose()
}

fn placeholders(from: usize, n: usize) -> String {
    (from..from + n).map(|i| format!("?{i}")).collect::<Vec<_>>().join(", ")
}

/// Runs a query with `args` and reads every row with `read`.
fn query_all<T>(
    c: &Connection,
    sql: &str,
    args: &[Value],
    read: impl FnMut(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
) -> Result<Vec<T>> {
    let mut stmt = c.prepare_cached(sql).map_err(db_err)?;
    let rows = stmt.query_map(params_from_iter(args.iter()), read).map_err(db_err)?;
    rows.collect::<rusqlite::Result<Vec<_>>>().map_err(db_err)
}

/// A write transaction's primitives. `BEGIN IMMEDIATE` already holds the database's
/// write lock, so locking an event is expiring its overdue holds and reading it.
struct SqliteTx<'a> {
    c: &'a Transaction<'a>,
}

impl Tx for SqliteTx<'_> {
    fn lock_events(&mut self, ids: &[EventId], now: Timestamp) -> Result<Locked> {
        let ids: BTreeSet<EventId> = ids.iter().copied().collect();
        let mut out = Locked::default();
        for id in ids {
            out.expired.extend(expire_overdue(self.c, Some(id), now)?);
            out.events.extend(read_event(self.c, &EventKey::Id(id), now)?);
        }
        Ok(out)
    }

    fn find_events(&mut self, keys: &[String], now: Timestamp) -> Result<Vec<Event>> {
        // Ids are stored as lower-case hyphenated text: a key that is a UUID in any
        // other spelling is looked up in that form too.
        let mut keys: Vec<String> = keys.to_vec();
        keys.extend(keys.iter().filter_map(|k| k.parse::<EventId>().ok()).map(|id| id.to_string()).collect::<Vec<_>>());
        let mut out = Vec::new();
        for chunk in keys.chunks(10_000) {
            let sql = format!(
                "SELECT {} FROM events e WHERE e.external_id IN ({}) OR e.id IN ({})",
                event_cols(),
                placeholders(2, chunk.len()),
                placeholders(2, chunk.len())
            );
            let args: Vec<Value> = std::iter::once(Value::Integer(micros(now)))
                .chain(chunk.iter().map(|k| Value::Text(k.clone())))
                .collect();
            for r in query_all(self.c, &sql, &args, read_event_row)? {
                out.push(r.into_event()?);
            }
        }
        out.sort_by_key(|e| e.id);
        out.dedup_by_key(|e| e.id);
        Ok(out)
    }

    fn event_by_slug(&mut self, slug: &Slug, now: Timestamp) -> Result<Option<Event>> {
        read_event(self.c, &EventKey::Slug(slug.clone()), now)
    }

    fn slug_owners(&mut self, slugs: &[Slug]) -> Result<Vec<(Slug, EventId)>> {
        let mut out = Vec::new();
        for chunk in slugs.chunks(10_000) {
            let sql = format!("SELECT slug, id FROM events WHERE slug IN ({})", placeholders(1, chunk.len()));
            let args: Vec<Value> = chunk.iter().map(|s| Value::Text(s.as_str().to_owned())).collect();
            for (slug, id) in query_all(self.c, &sql, &args, |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))?
            {
                if let (Ok(slug), Ok(id)) = (slug.parse(), id.parse()) {
                    out.push((slug, id));
                }
            }
        }
        Ok(out)
    }

    fn insert_events(&mut self, events: &[Event]) -> Result<()> {
        events.iter().try_for_each(|e| insert_event_row(self.c, e))
    }

    fn update_event(&mut self, event: &Event) -> Result<()> {
        write_event_fields(self.c, event)
    }

    fn add_to_counters(&mut self, deltas: &[CounterDelta]) -> Result<()> {
        deltas.iter().try_for_each(|d| bump_counters(self.c, d.event, d.held, d.sold))
    }

    fn expire_all_holds(&mut self, now: Timestamp) -> Result<Vec<BookingChange>> {
        expire_overdue(self.c, None, now)
    }

    fn cancel_live_bookings(&mut self, event: EventId, now: Timestamp) -> Result<Vec<BookingChange>> {
        // One statement per status before, so each change knows what it came from.
        let mut out = Vec::new();
        for from in [BookingStatus::Held, BookingStatus::Confirmed] {
            let mut stmt = self
                .c
                .prepare_cached(
                    "UPDATE bookings SET status = 'cancelled', updated_at = ?2
                     WHERE event_id = ?1 AND status = ?3 RETURNING id, code, event_id, customer, quantity",
                )
                .map_err(db_err)?;
            let rows = stmt
                .query_map(params![event.to_string(), micros(now), from.as_str()], |r| read_change_row(r, from))
                .map_err(db_err)?;
            for row in rows {
                out.push(into_change(row.map_err(db_err)?)?);
            }
        }
        Ok(out)
    }

    fn prune_events(&mut self, before: Timestamp, upto: Option<&RelayCursor>, limit: u32) -> Result<u64> {
        // An aggregate's latest event stays: the next one is numbered after it.
        let n = self
            .c
            .prepare_cached(
                "DELETE FROM outbox WHERE position IN (
                     SELECT o.position FROM outbox o
                     WHERE o.occurred_at < ?1 AND (?2 IS NULL OR o.position <= ?2)
                       AND o.aggregate_seq < (SELECT MAX(h.aggregate_seq) FROM outbox h
                                              WHERE h.aggregate_type = o.aggregate_type
                                                AND h.aggregate_id = o.aggregate_id)
                     ORDER BY o.position LIMIT ?3)",
            )
            .and_then(|mut st| st.execute(params![micros(before), upto.map(|c| c.position), limit]))
            .map_err(db_err)?;
        Ok(n as u64)
    }

    fn lock_relay(&mut self, name: &str) -> Result<RelayState> {
        // BEGIN IMMEDIATE already holds the write lock: the row is ours until commit.
        self.c.execute("INSERT OR IGNORE INTO relay_state (name) VALUES (?1)", params![name]).map_err(db_err)?;
        read_relay(self.c, name)?.ok_or_else(|| Error::internal("the relay's row vanished"))
    }

    fn put_relay(&mut self, r: &RelayState) -> Result<()> {
        self.c
            .execute(
                "UPDATE relay_state SET position = ?2, owner = ?3, lease_until = ?4, published = ?5,
                        last_published_at = ?6, last_error = ?7 WHERE name = ?1",
                params![
                    r.name,
                    r.cursor.position,
                    r.owner,
                    r.lease_until.map(micros),
                    i64::try_from(r.published).unwrap_or(i64::MAX),
                    r.last_published_at.map(micros),
                    r.last_error
                ],
            )
            .map_err(db_err)?;
        Ok(())
    }

    fn aggregate_heads(&mut self, aggregates: &[AggregateRef]) -> Result<Vec<(AggregateRef, u64)>> {
        let mut stmt = self
            .c
            .prepare_cached("SELECT MAX(aggregate_seq) FROM outbox WHERE aggregate_type = ?1 AND aggregate_id = ?2")
            .map_err(db_err)?;
        let mut out = Vec::new();
        for a in aggregates {
            let last: Option<i64> = stmt.query_row(params![a.kind.as_str(), a.id], |r| r.get(0)).map_err(db_err)?;
            if let Some(n) = last {
                out.push((a.clone(), u64::try_from(n).unwrap_or(0)));
            }
        }
        Ok(out)
    }

    fn append_events(&mut self, events: &[DomainEvent]) -> Result<()> {
        let mut stmt = self
            .c
            .prepare_cached(
                "INSERT INTO outbox (id, type, aggregate_type, aggregate_id, aggregate_seq, event_id, occurred_at,
                                     actor, schema_version, payload)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
            )
            .map_err(db_err)?;
        for e in events {
            stmt.execute(params![
                e.id.to_string(),
                e.kind.as_str(),
                e.aggregate_type.as_str(),
                e.aggregate_id,
                i64::try_from(e.aggregate_seq).unwrap_or(i64::MAX),
                e.event_id.map(|id| id.to_string()),
                micros(e.occurred_at),
                e.actor.as_ref().map(|a| a.as_str()),
                e.schema_version,
                e.payload.get(),
            ])
            .map_err(db_err)?;
        }
        Ok(())
    }

    fn bookings_by_id(&mut self, ids: &[BookingId]) -> Result<Vec<Booking>> {
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            out.extend(read_booking(self.c, "b.id = ?1", &id.to_string())?);
        }
        Ok(out)
    }

    fn bookings_by_key(&mut self, keys: &[(Email, IdempotencyKey)]) -> Result<Vec<Booking>> {
        let mut out = Vec::with_capacity(keys.len());
        for (customer, key) in keys {
            out.extend(read_booking_by_key(self.c, customer, key)?);
        }
        Ok(out)
    }

    fn bookings_by_external_id(&mut self, ids: &[ExternalId]) -> Result<Vec<Booking>> {
        let mut out = Vec::with_capacity(ids.len());
        for x in ids {
            out.extend(read_booking(self.c, "b.external_id = ?1", x.as_str())?);
        }
        Ok(out)
    }

    fn booking_by_code(&mut self, code: &BookingCode) -> Result<Option<Booking>> {
        read_booking(self.c, "b.code = ?1", code.as_str())
    }

    fn booking_by_secret(&mut self, secret: &TicketSecret) -> Result<Option<Booking>> {
        read_booking(self.c, "b.id = (SELECT booking_id FROM tickets WHERE secret = ?1)", secret.as_str())
    }

    fn live_seats(&mut self, of: &[(EventId, Email)]) -> Result<Vec<(EventId, Email, u32)>> {
        let mut out = Vec::with_capacity(of.len());
        for (event, customer) in of {
            let seats = customer_seats(self.c, *event, customer)?;
            if seats > 0 {
                out.push((*event, customer.clone(), seats));
            }
        }
        Ok(out)
    }

    fn insert_bookings(&mut self, bookings: &[Booking]) -> Result<()> {
        bookings.iter().try_for_each(|b| insert_booking(self.c, b))
    }

    fn set_status(&mut self, id: BookingId, from: BookingStatus, to: BookingStatus, now: Timestamp) -> Result<bool> {
        let n = self
            .c
            .prepare_cached("UPDATE bookings SET status = ?2, updated_at = ?3 WHERE id = ?1 AND status = ?4")
            .and_then(|mut s| s.execute(params![id.to_string(), to.as_str(), micros(now), from.as_str()]))
            .map_err(db_err)?;
        Ok(n == 1)
    }

    fn check_in(&mut self, booking: BookingId, seq: u32, now: Timestamp) -> Result<bool> {
        let n = self
            .c
            .prepare_cached(
                "UPDATE tickets SET checked_in_at = ?3 WHERE booking_id = ?1 AND seq = ?2 AND checked_in_at IS NULL",
            )
            .and_then(|mut s| s.execute(params![booking.to_string(), seq, micros(now)]))
            .map_err(db_err)?;
        Ok(n == 1)
    }

    fn insert_user(&mut self, a: &Account) -> Result<()> {
        self.c
            .execute(
                "INSERT INTO users (email, role, password_hash, created_at, updated_at) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![
                    a.user.email.as_str(),
                    a.user.role.as_str(),
                    a.password_hash.as_str(),
                    micros(a.user.created_at),
                    micros(a.user.updated_at)
                ],
            )
            .map_err(db_err)?;
        Ok(())
    }

    fn lock_account(&mut self, email: &Email) -> Result<Option<(Account, u64)>> {
        let Some(account) = read_account(self.c, email)? else { return Ok(None) };
        let admins: i64 =
            self.c.query_row("SELECT COUNT(*) FROM users WHERE role = 'admin'", [], |r| r.get(0)).map_err(db_err)?;
        Ok(Some((account, u64::try_from(admins).unwrap_or(0))))
    }

    fn update_user(&mut self, user: &User, hash: Option<&PasswordHash>) -> Result<()> {
        let n = self
            .c
            .execute(
                "UPDATE users SET role = ?2, password_hash = COALESCE(?3, password_hash), updated_at = ?4
                 WHERE email = ?1",
                params![user.email.as_str(), user.role.as_str(), hash.map(|h| h.as_str()), micros(user.updated_at)],
            )
            .map_err(db_err)?;
        if n == 0 {
            return Err(Error::not_found("user", &user.email));
        }
        Ok(())
    }
}

impl Store for SqliteStore {
    fn migrate(&self) -> Result<Vec<String>> {
        // Every CLI process migrates on start; when the schema is current that must
        // not queue behind other processes' writes (nor need a writable file: reads
        // of a read-only database work), so look before taking the lock.
        let current = self.read(|c| c.query_row("PRAGMA user_version", [], |r| r.get::<_, i64>(0)).map_err(db_err))?;
        if current == schema::LATEST {
            return Ok(Vec::new());
        }
        let now = goticket_core::Timestamp::now();
        self.transaction(|tx| Ok((schema::migrate(tx, now)?, Commit::Yes)))
    }

    fn ping(&self) -> Result<()> {
        let read_only = self.read(|c| {
            c.query_row("SELECT count(*) FROM events", [], |_| Ok(())).map_err(db_err)?;
            c.is_readonly(rusqlite::MAIN_DB).map_err(db_err)
        })?;
        let unready = |why: String| Error::Storage(StoreError::new(StoreErrorKind::Unavailable, why, None));
        // Space first: on a full disk reads fall back to a read-only connection, and
        // the cause to name is the disk.
        if let Some(free) = free_bytes(&self.path)
            && free < MIN_FREE_BYTES
        {
            return Err(unready(format!(
                "disk full: {} KiB free where {} is (ready from {} KiB)",
                free / 1024,
                self.path.display(),
                MIN_FREE_BYTES / 1024
            )));
        }
        if read_only {
            return Err(unready(format!("read-only: {} does not take writes", self.path.display())));
        }
        Ok(())
    }

    fn event(&self, key: &EventKey, now: Timestamp) -> Result<Option<Event>> {
        self.read(|c| read_event(c, key, now))
    }

    fn list_events(&self, filter: &EventFilter, start: PageStart, fetch: u32, now: Timestamp) -> Result<Vec<Event>> {
        let mut sql = format!("SELECT {} FROM events e WHERE 1 = 1", event_cols());
        let mut args: Vec<Value> = vec![Value::Integer(micros(now))];
        let mut arg = |sql: &mut String, clause: &str, v: Value| {
            args.push(v);
            sql.push_str(&clause.replace('?', &format!("?{}", args.len())));
        };
        if let Some(t) = filter.starts_from {
            arg(&mut sql, " AND e.starts_at >= ?", Value::Integer(micros(t)));
        }
        if let Some(t) = filter.starts_before {
            arg(&mut sql, " AND e.starts_at < ?", Value::Integer(micros(t)));
        }
        if let Some(m) = filter.min_price {
            arg(&mut sql, " AND e.currency = ?", Value::Text(m.currency().code().into()));
            arg(&mut sql, " AND e.price_minor >= ?", Value::Integer(m.amount_minor()));
        }
        if let Some(m) = filter.max_price {
            arg(&mut sql, " AND e.currency = ?", Value::Text(m.currency().code().into()));
            arg(&mut sql, " AND e.price_minor <= ?", Value::Integer(m.amount_minor()));
        }
        if let Some(s) = filter.status {
            arg(&mut sql, " AND e.status = ?", Value::Text(s.as_str().into()));
        }
        if let Some(o) = &filter.organizer {
            arg(&mut sql, " AND e.organizer = ?", Value::Text(o.as_str().into()));
        }
        let mut offset = 0;
        match start {
            PageStart::First => {}
            PageStart::Offset(n) => offset = i64::try_from(n).unwrap_or(i64::MAX),
            PageStart::After(c) => {
                arg(&mut sql, " AND (e.starts_at > ?", Value::Integer(c.key));
                arg(&mut sql, " OR (e.starts_at = ?", Value::Integer(c.key));
                arg(&mut sql, " AND e.id > ?))", Value::Text(c.id.hyphenated().to_string()));
            }
        }
        arg(&mut sql, " ORDER BY e.starts_at, e.id LIMIT ?", Value::Integer(i64::from(fetch)));
        arg(&mut sql, " OFFSET ?", Value::Integer(offset));
        self.read(|c| {
            let mut stmt = c.prepare(&sql).map_err(db_err)?;
            let raws = stmt
                .query_map(params_from_iter(args.iter()), read_event_row)
                .map_err(db_err)?
                .collect::<rusqlite::Result<Vec<_>>>()
                .map_err(db_err)?;
            raws.into_iter().map(|r| r.into_event()).collect()
        })
    }

    fn booking(&self, code: &BookingCode) -> Result<Option<Booking>> {
        self.read(|c| read_booking(c, "b.code = ?1", code.as_str()))
    }

    fn list_bookings(&self, filter: &BookingFilter, from: PageStart, max: u32, now: Timestamp) -> Result<Vec<Booking>> {
        let mut sql = format!("SELECT {BOOKING_COLS} FROM bookings b WHERE 1 = 1");
        let mut args: Vec<Value> = vec![Value::Integer(micros(now))];
        let mut arg = |sql: &mut String, clause: &str, v: Value| {
            args.push(v);
            sql.push_str(&clause.replace('?', &format!("?{}", args.len())));
        };
        if let Some(e) = filter.event {
            arg(&mut sql, " AND b.event_id = ?", Value::Text(e.to_string()));
        }
        if let Some(c) = &filter.customer {
            arg(&mut sql, " AND b.customer = ?", Value::Text(c.as_str().into()));
        }
        if let Some(o) = &filter.organizer {
            arg(
                &mut sql,
                " AND b.event_id IN (SELECT id FROM events WHERE organizer = ?)",
                Value::Text(o.as_str().into()),
            );
        }
        match filter.status {
            None => {}
            Some(BookingStatus::Held) => sql.push_str(" AND b.status = 'held' AND b.expires_at > ?1"),
            Some(BookingStatus::Expired) => {
                sql.push_str(" AND (b.status = 'expired' OR (b.status = 'held' AND b.expires_at <= ?1))")
            }
            Some(s) => arg(&mut sql, " AND b.status = ?", Value::Text(s.as_str().into())),
        }
        let mut offset = 0;
        match from {
            PageStart::First => {}
            PageStart::Offset(n) => offset = i64::try_from(n).unwrap_or(i64::MAX),
            PageStart::After(c) => arg(&mut sql, " AND b.id > ?", Value::Text(c.id.hyphenated().to_string())),
        }
        arg(&mut sql, " ORDER BY b.id LIMIT ?", Value::Integer(i64::from(max)));
        arg(&mut sql, " OFFSET ?", Value::Integer(offset));
        // ?1 (now) is only referenced by the status clauses; SQLite accepts unused
        // numbered parameters.
        self.read(|c| {
            let mut stmt = c.prepare(&sql).map_err(db_err)?;
            let raws = stmt
                .query_map(params_from_iter(args.iter()), read_booking_row)
                .map_err(db_err)?
                .collect::<rusqlite::Result<Vec<_>>>()
                .map_err(db_err)?;
            raws.into_iter().map(|r| with_tickets(c, r)).collect()
        })
    }

    fn close(&self) -> Result<()> {
        let slot = self.writer.lock().unwrap_or_else(|p| p.into_inner());
        // Only a process that wrote has a log of its own to merge.
        if let Some(conn) = &*slot {
            conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(())).map_err(db_err)?;
        }
        Ok(())
    }

    fn write(&self, retry: Retry, body: &mut TxBody<'_>) -> Result<()> {
        let mut attempt = 0;
        loop {
            let outcome = self.transaction(|tx| Ok(((), body(&mut SqliteTx { c: tx })?)));
            match outcome {
                // Another process held the lock past the busy timeout: nothing was
                // written, so a body that reads what it decides on may run again.
                Err(Error::Storage(e))
                    if retry == Retry::Allowed && e.kind() == StoreErrorKind::Busy && attempt < MAX_RETRIES =>
                {
                    attempt += 1;
                    std::thread::sleep(Duration::from_millis(10 << attempt));
                }
                other => return other,
            }
        }
    }

    fn account(&self, email: &Email) -> Result<Option<Account>> {
        self.read(|c| read_account(c, email))
    }

    fn domain_events(&self, filter: &AuditFilter, after: i64, fetch: u32) -> Result<Vec<DomainEvent>> {
        let mut sql = format!("SELECT {OUTBOX_COLS} FROM outbox WHERE position > ?1");
        let mut args: Vec<Value> = vec![Value::Integer(after)];
        let mut and = |clause: &str, v: Value, args: &mut Vec<Value>| {
            args.push(v);
            sql.push_str(&format!(" AND {}", clause.replace('#', &args.len().to_string())));
        };
        if let Some(e) = filter.event {
            and("event_id = ?#", Value::Text(e.to_string()), &mut args);
        }
        if let Some(b) = filter.booking {
            and("aggregate_type = 'booking' AND aggregate_id = ?#", Value::Text(b.to_string()), &mut args);
        }
        if let Some(a) = &filter.actor {
            and("actor = ?#", Value::Text(a.as_str().into()), &mut args);
        }
        if let Some(t) = filter.since {
            and("occurred_at >= ?#", Value::Integer(micros(t)), &mut args);
        }
        if let Some(o) = &filter.organizer {
            and("event_id IN (SELECT id FROM events WHERE organizer = ?#)", Value::Text(o.as_str().into()), &mut args);
        }
        args.push(Value::Integer(i64::from(fetch)));
        sql.push_str(&format!(" ORDER BY position LIMIT ?{}", args.len()));
        self.read(|c| {
            query_all(c, &sql, &args, read_domain_event_row)?
                .into_iter()
                .map(DomainEventRecord::into_domain_event)
                .collect()
        })
    }

    fn relay_batch(&self, after: &RelayCursor, fetch: u32) -> Result<Vec<(RelayCursor, DomainEvent)>> {
        let sql = format!("SELECT {OUTBOX_COLS} FROM outbox WHERE position > ?1 ORDER BY position LIMIT ?2");
        let args = [Value::Integer(after.position), Value::Integer(i64::from(fetch))];
        self.read(|c| {
            query_all(c, &sql, &args, read_domain_event_row)?
                .into_iter()
                .map(|r| Ok((RelayCursor { tx: 0, position: r.position }, r.into_domain_event()?)))
                .collect()
        })
    }

    fn relay_state(&self, name: &str) -> Result<Option<RelayState>> {
        self.read(|c| read_relay(c, name))
    }

    fn relay_backlog(&self, after: &RelayCursor) -> Result<(u64, Option<Timestamp>)> {
        self.read(|c| {
            let (n, oldest): (i64, Option<i64>) = c
                .query_row(
                    // Counted up to a million (see the PostgreSQL store).
                    "SELECT COUNT(*), MIN(occurred_at) FROM (
                         SELECT occurred_at FROM outbox WHERE position > ?1 ORDER BY position LIMIT 1000000)",
                    params![after.position],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .map_err(db_err)?;
            let oldest = oldest.map(Timestamp::from_microsecond).transpose().map_err(|e| {
                Error::Storage(StoreError::new(StoreErrorKind::Integrity, format!("stored outbox time: {e}"), None))
            })?;
            Ok((u64::try_from(n).unwrap_or(0), oldest))
        })
    }

    fn list_users(&self) -> Result<Vec<User>> {
        self.read(|c| {
            let mut stmt = c
                .prepare_cached("SELECT email, role, password_hash, created_at, updated_at FROM users ORDER BY email")
                .map_err(db_err)?;
            let rows = stmt
                .query_map([], read_user_row)
                .map_err(db_err)?
                .collect::<rusqlite::Result<Vec<_>>>()
                .map_err(db_err)?;
            rows.into_iter().map(|r| r.into_account().map(|a| a.user)).collect()
        })
    }

    /// Waits for the one writer connection (readers never wait: one is opened when
    /// none is idle).
    fn pool_waits(&self) -> Option<PoolWaits> {
        Some(self.writer_waits.snapshot())
    }

    fn seat_totals(&self, now: Timestamp) -> Result<SeatTotals> {
        // One scan of the events' counters; the overdue holds come from the partial
        // index of held bookings by expiry.
        let (held, sold) = self.read(|c| {
            c.query_row(
                "SELECT COALESCE(SUM(e.held), 0)
                        - (SELECT COALESCE(SUM(o.quantity), 0) FROM bookings o
                            WHERE o.status = 'held' AND o.expires_at <= ?1),
                        COALESCE(SUM(e.sold), 0)
                   FROM events e",
                [micros(now)],
                |r| Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?)),
            )
            .map_err(db_err)
        })?;
        SeatTotals::from_sums(held, sold)
    }

    fn sales_report(&self, event: Option<EventId>, organizer: Option<&Email>, now: Timestamp) -> Result<Vec<SalesRow>> {
        let mut sql = format!(
            "SELECT {},
               (SELECT COUNT(*) FROM bookings b WHERE b.event_id = e.id AND b.status = 'confirmed'),
               (SELECT COUNT(*) FROM tickets t JOIN bookings b ON b.id = t.booking_id
                  WHERE b.event_id = e.id AND t.checked_in_at IS NOT NULL)
             FROM events e WHERE 1 = 1",
            event_cols()
        );
        // Seats sold per unit price: sums of at most 10,000,000 seats, which cannot
        // overflow; core multiplies and adds them with checked arithmetic.
        let mut by_price = String::from(
            "SELECT b.event_id, b.unit_price_minor, SUM(b.quantity) FROM bookings b
               JOIN events e ON e.id = b.event_id WHERE b.status = 'confirmed'",
        );
        let mut args: Vec<Value> = vec![Value::Integer(micros(now))];
        if let Some(id) = event {
            args.push(Value::Text(id.to_string()));
            sql.push_str(&format!(" AND e.id = ?{}", args.len()));
            by_price.push_str(&format!(" AND e.id = ?{}", args.len()));
        }
        if let Some(o) = organizer {
            args.push(Value::Text(o.as_str().into()));
            sql.push_str(&format!(" AND e.organizer = ?{}", args.len()));
            by_price.push_str(&format!(" AND e.organizer = ?{}", args.len()));
        }
        sql.push_str(" ORDER BY e.starts_at, e.id");
        by_price.push_str(" AND ?1 = ?1 GROUP BY b.event_id, b.unit_price_minor");
        self.read(|c| {
            let mut stmt = c.prepare(&by_price).map_err(db_err)?;
            let mut sold: HashMap<String, Vec<(i64, i64)>> = HashMap::new();
            let parts = stmt
                .query_map(params_from_iter(args.iter()), |r| {
                    Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?, r.get::<_, i64>(2)?))
                })
                .map_err(db_err)?
                .collect::<rusqlite::Result<Vec<_>>>()
                .map_err(db_err)?;
            for (id, price, seats) in parts {
                sold.entry(id).or_default().push((price, seats));
            }
            let mut stmt = c.prepare(&sql).map_err(db_err)?;
            let raws = stmt
                .query_map(params_from_iter(args.iter()), read_sales_row)
                .map_err(db_err)?
                .collect::<rusqlite::Result<Vec<_>>>()
                .map_err(db_err)?;
            raws.into_iter()
                .map(|(e, confirmed, checked_in)| {
                    let parts = sold.remove(&e.id.hyphenated().to_string()).unwrap_or_default();
                    e.into_sales_row(confirmed, checked_in, &parts)
                })
                .collect()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_parse() {
        let (p, o) = SqliteOptions::parse_url("sqlite:/tmp/x.db?synchronous=normal&busy_timeout_ms=250").unwrap();
        assert_eq!(p, PathBuf::from("/tmp/x.db"));
        assert_eq!(o.synchronous, Synchronous::Normal);
        assert_eq!(o.busy_timeout, Duration::from_millis(250));
        assert_eq!(SqliteOptions::parse_url("tickets.db").unwrap().0, PathBuf::from("tickets.db"));
        assert_eq!(SqliteOptions::parse_url("sqlite://./a.db").unwrap().0, PathBuf::from("./a.db"));
        assert!(SqliteOptions::parse_url("sqlite:").is_err());
        assert!(SqliteOptions::parse_url("x.db?synchronous=off").is_err());
        assert!(SqliteOptions::parse_url("x.db?colour=red").is_err());
    }

    #[test]
    fn connections_are_configured() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path().join("t.db")).unwrap();
        let guard = store.writer.lock().unwrap();
        let conn = guard.as_ref().expect("opened with the store");
        let get = |p: &str| conn.query_row(&format!("PRAGMA {p}"), [], |r| r.get::<_, i64>(0)).unwrap();
        assert_eq!(get("foreign_keys"), 1);
        assert_eq!(get("synchronous"), 2, "FULL");
        assert_eq!(get("busy_timeout"), 30_000);
        let mode: String = conn.query_row("PRAGMA journal_mode", [], |r| r.get(0)).unwrap();
        assert_eq!(mode, "wal");
    }
}
