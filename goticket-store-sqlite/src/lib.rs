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

use std::collections::hash_map::Entry;
use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use goticket_core::Role;
use goticket_core::booking::{BatchState, decide_reservation, plan_reservations, replay};
use goticket_core::error::{Error, Result, StoreError, StoreErrorKind};
use goticket_core::import::{
    ImportAction, ImportBooking, ImportEvent, ImportMode, ImportState, Refusals, SeenIds, plan_event_import,
    prepare_booking_import,
};
use goticket_core::records::{BookingRecord, TicketRecord, UserRecord};
use goticket_core::store::{DecideBooking, DecideCheckIn, DecideEvent, DecideUser, EventKey, SalesRow, Store};
use goticket_core::users::{Account, PasswordHash, User};
use goticket_core::{
    Booking, BookingCode, BookingFilter, BookingStatus, CheckIn, Email, Event, EventFilter, EventId, IdempotencyKey,
    PageStart, Reservation, ReserveRequest, Slug, TicketSecret, Timestamp,
};
use rusqlite::ToSql;
use rusqlite::types::Value;
use rusqlite::{Connection, OpenFlags, OptionalExtension, Transaction, TransactionBehavior, params, params_from_iter};
use uuid::Uuid;

use crate::rows::{
    BOOKING_COLS, db_err, event_cols, micros, read_booking_row, read_event_row, read_sales_row, read_ticket_row,
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
    readers: Mutex<Vec<Connection>>,
}

/// A chunk of an import, decided and written inside the import's transaction.
type ImportChunk<'a, R> = dyn FnMut(&Transaction<'_>, Vec<R>, &mut Refusals) -> Result<()> + 'a;

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
        Ok(SqliteStore { path, options, writer: Mutex::new(writer), readers: Mutex::new(Vec::new()) })
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

    /// Runs `f` in one `BEGIN IMMEDIATE` transaction: committed if it returns `Ok`,
    /// rolled back otherwise.
    fn write<T>(&self, f: impl FnOnce(&mut Transaction<'_>) -> Result<T>) -> Result<T> {
        self.write_with(|tx| f(tx).map(|out| (out, true)))
    }

    /// Runs an import: pulls rows in chunks and hands each to `chunk` (which counts its
    /// refusals) inside one transaction (all-or-nothing, or a dry run that rolls back)
    /// or one transaction per batch.
    fn import_loop<R>(
        &self,
        rows: &mut dyn Iterator<Item = R>,
        mode: ImportMode,
        chunk: &mut ImportChunk<'_, R>,
    ) -> Result<()> {
        let mut refusals = Refusals::default();
        match mode {
            ImportMode::Batches(n) => loop {
                let batch: Vec<R> = (&mut *rows).take(n.max(1)).collect();
                if batch.is_empty() {
                    return Ok(());
                }
                self.write(|tx| {
                    let mut batch = batch.into_iter().peekable();
                    while batch.peek().is_some() {
                        chunk(tx, batch.by_ref().take(IMPORT_CHUNK).collect(), &mut refusals)?;
                    }
                    Ok(())
                })?;
            },
            ImportMode::AllOrNothing | ImportMode::DryRun => {
                self.write_with(|tx| {
                    loop {
                        let rows: Vec<R> = (&mut *rows).take(IMPORT_CHUNK).collect();
                        if rows.is_empty() {
                            break;
                        }
                        chunk(tx, rows, &mut refusals)?;
                    }
                    Ok(((), mode == ImportMode::AllOrNothing && refusals.count() == 0))
                })?;
                match refusals.into_error() {
                    Some(e) if mode == ImportMode::AllOrNothing => Err(e),
                    _ => Ok(()),
                }
            }
        }
    }

    /// Like [`SqliteStore::write`], but `f` also says whether to commit (a dry run
    /// decides everything and then rolls back).
    fn write_with<T>(&self, f: impl FnOnce(&mut Transaction<'_>) -> Result<(T, bool)>) -> Result<T> {
        // A panic in another writer leaves the connection usable: its transaction was
        // rolled back when the Transaction dropped.
        let mut slot = self.writer.lock().unwrap_or_else(|p| p.into_inner());
        let conn = match &mut *slot {
            Some(c) => c,
            None => slot.insert(connect(&self.path, &self.options)?),
        };
        let mut tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(db_err)?;
        let (out, commit) = f(&mut tx)?;
        if commit {
            tx.commit().map_err(db_err)?;
        } else {
            tx.rollback().map_err(db_err)?;
        }
        Ok(out)
    }
}

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

/// The event as it stands at `now`, its overdue holds expired, for a change decided
/// in this (write) transaction.
fn event_for_change(conn: &Connection, id: EventId, now: Timestamp) -> Result<Event> {
    expire_overdue(conn, Some(id), now)?;
    read_event(conn, &EventKey::Id(id), now)?.ok_or_else(|| Error::not_found("event", id))
}

/// Expires overdue holds (of one event, or all) and releases their seats.
fn expire_overdue(conn: &Connection, event: Option<EventId>, now: Timestamp) -> Result<u64> {
    let now = micros(now);
    let mut released: HashMap<String, i64> = HashMap::new();
    let mut count = 0;
    {
        let sql = match event {
            Some(_) => {
                "UPDATE bookings SET status = 'expired', updated_at = ?1
                 WHERE status = 'held' AND event_id = ?2 AND expires_at <= ?1 RETURNING event_id, quantity"
            }
            None => {
                "UPDATE bookings SET status = 'expired', updated_at = ?1
                 WHERE status = 'held' AND expires_at <= ?1 RETURNING event_id, quantity"
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
            let (event_id, q): (String, i64) = (row.get(0).map_err(db_err)?, row.get(1).map_err(db_err)?);
            *released.entry(event_id).or_default() += q;
            count += 1;
        }
    }
    let mut stmt = conn.prepare_cached("UPDATE events SET held = held - ?1 WHERE id = ?2").map_err(db_err)?;
    for (event_id, q) in released {
        stmt.execute(params![q, event_id]).map_err(db_err)?;
    }
    Ok(count)
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
    .map_err(|err| slug_conflict(err, e))?;
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
    .map_err(|err| slug_conflict(err, e))?;
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

fn slug_conflict(err: rusqlite::Error, e: &Event) -> Error {
    if err.to_string().contains("events.slug") {
        let slug = e.slug.as_ref().map(|s| s.as_str()).unwrap_or_default();
        return Error::conflict(format!("slug {slug:?} is already used by another event"));
    }
    db_err(err)
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
    .map_err(|e| {
        if e.to_string().contains("bookings.code") || e.to_string().contains("bookings.external_id") {
            Error::conflict("booking code collision; please retry")
        } else {
            db_err(e)
        }
    })?;
    let mut stmt =
        conn.prepare_cached("INSERT INTO tickets (booking_id, seq, secret) VALUES (?1, ?2, ?3)").map_err(db_err)?;
    for t in &b.tickets {
        stmt.execute(params![b.id.to_string(), t.seq, t.secret.as_str()]).map_err(|e| {
            if e.to_string().contains("tickets.secret") {
                Error::conflict("ticket secret collision; please retry")
            } else {
                db_err(e)
            }
        })?;
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

fn reserve_one(conn: &Connection, req: &ReserveRequest, event: &Event, now: Timestamp) -> Result<Reservation> {
    if let Some(key) = &req.idempotency_key
        && let Some(existing) = read_booking_by_key(conn, &req.customer, key)?
    {
        return replay(req, existing, now);
    }
    let already = match event.max_per_customer {
        Some(_) => customer_seats(conn, req.event_id, &req.customer)?,
        None => 0,
    };
    let booking = decide_reservation(req, event, already, now)?;
    insert_booking(conn, &booking)?;
    let q = i64::from(booking.quantity.get());
    match booking.status {
        BookingStatus::Held => bump_counters(conn, event.id, q, 0)?,
        _ => bump_counters(conn, event.id, 0, q)?,
    }
    Ok(Reservation { booking, replayed: false })
}

/// The batch path: read what the batch needs, let core plan it, write the plan.
fn reserve_planned(tx: &Transaction<'_>, batch: &[ReserveRequest], now: Timestamp) -> Result<Vec<Result<Reservation>>> {
    let mut state = BatchState::default();
    let ids: BTreeSet<EventId> = batch.iter().map(|r| r.event_id).collect();
    for id in ids {
        expire_overdue(tx, Some(id), now)?;
        if let Some(e) = read_event(tx, &EventKey::Id(id), now)? {
            state.events.insert(id, e);
        }
    }
    for req in batch {
        if let Some(x) = &req.external_id
            && !state.by_external.contains_key(x)
            && let Some(b) = read_booking(tx, "b.external_id = ?1", x.as_str())?
        {
            state.by_external.insert(x.clone(), b);
        }
        if let Some(key) = &req.idempotency_key {
            let k = (req.customer.clone(), key.clone());
            if !state.by_key.contains_key(&k)
                && let Some(b) = read_booking_by_key(tx, &req.customer, key)?
            {
                state.by_key.insert(k, b);
            }
        }
        let limited = state.events.get(&req.event_id).is_some_and(|e| e.max_per_customer.is_some());
        let k = (req.event_id, req.customer.clone());
        if limited && !state.seats_by_customer.contains_key(&k) {
            let seats = customer_seats(tx, req.event_id, &req.customer)?;
            state.seats_by_customer.insert(k, seats);
        }
    }
    let plan = plan_reservations(batch, state, now);
    for b in &plan.inserts {
        insert_booking(tx, b)?;
    }
    for (id, held, sold) in &plan.deltas {
        bump_counters(tx, *id, *held, *sold)?;
    }
    Ok(plan.outcomes)
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

/// The fallback path: one savepoint per request, so a collision fails only its own.
fn reserve_each(store: &SqliteStore, batch: &[ReserveRequest], now: Timestamp) -> Result<Vec<Result<Reservation>>> {
    store.write(|tx| {
        let mut events: HashMap<EventId, Option<Event>> = HashMap::new();
        let mut out = Vec::with_capacity(batch.len());
        for req in batch {
            let slot = match events.entry(req.event_id) {
                Entry::Occupied(o) => o.into_mut(),
                Entry::Vacant(v) => {
                    expire_overdue(tx, Some(req.event_id), now)?;
                    v.insert(read_event(tx, &EventKey::Id(req.event_id), now)?)
                }
            };
            let Some(event) = slot.as_mut() else {
                out.push(Err(Error::not_found("event", req.event_id)));
                continue;
            };
            // A savepoint per request: a refusal or a failed insert undoes only
            // that request, never its neighbours in the batch.
            let sp = tx.savepoint().map_err(db_err)?;
            match reserve_one(&sp, req, event, now) {
                Ok(r) => {
                    sp.commit().map_err(db_err)?;
                    if !r.replayed {
                        let q = r.booking.quantity.get();
                        *event = match r.booking.status {
                            BookingStatus::Held => event.clone().with_counters(event.held + q, event.sold),
                            _ => event.clone().with_counters(event.held, event.sold + q),
                        };
                    }
                    out.push(Ok(r));
                }
                Err(Error::Storage(e)) => return Err(Error::Storage(e)),
                Err(refusal) => out.push(Err(refusal)),
            }
        }
        Ok(out)
    })
}

/// Rows an import decides and writes at a time.
const IMPORT_CHUNK: usize = 1000;

fn placeholders(from: usize, n: usize) -> String {
    (from..from + n).map(|i| format!("?{i}")).collect::<Vec<_>>().join(", ")
}

/// Reads what a chunk of an import needs, plans it in core, writes the plan, and
/// reports each row, counting the refusals.
fn import_chunk(
    tx: &Connection,
    chunk: Vec<ImportEvent>,
    seen: &mut SeenIds,
    now: Timestamp,
    may_update: &dyn Fn(&Event) -> Result<()>,
    refusals: &mut Refusals,
    on_row: &mut dyn FnMut(u64, &Result<ImportAction>),
) -> Result<()> {
    let mut state = ImportState::default();
    let keys: Vec<String> =
        chunk.iter().filter_map(|r| r.event.external_id.as_ref().map(|x| x.as_str().to_owned())).collect();
    if !keys.is_empty() {
        let sql = format!(
            "SELECT {} FROM events e WHERE e.external_id IN ({}) OR e.id IN ({})",
            event_cols(),
            placeholders(2, keys.len()),
            placeholders(2, keys.len())
        );
        let args: Vec<Value> =
            std::iter::once(Value::Integer(micros(now))).chain(keys.iter().map(|k| Value::Text(k.clone()))).collect();
        let mut stmt = tx.prepare(&sql).map_err(db_err)?;
        let found = stmt
            .query_map(params_from_iter(args.iter()), read_event_row)
            .map_err(db_err)?
            .collect::<rusqlite::Result<Vec<_>>>()
            .map_err(db_err)?;
        for r in found {
            let e = r.into_event()?;
            let key = e.external_id.as_ref().map_or_else(|| e.id.to_string(), |x| x.as_str().to_owned());
            if let Some(slug) = &e.slug {
                state.slugs.insert(slug.clone(), e.id);
            }
            state.existing.insert(key, e);
        }
    }
    let slugs: Vec<String> =
        chunk.iter().filter_map(|r| r.event.slug.as_ref().map(|s| s.as_str().to_owned())).collect();
    if !slugs.is_empty() {
        let sql = format!("SELECT slug, id FROM events WHERE slug IN ({})", placeholders(1, slugs.len()));
        let mut stmt = tx.prepare(&sql).map_err(db_err)?;
        let taken = stmt
            .query_map(params_from_iter(slugs.iter()), |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))
            .map_err(db_err)?
            .collect::<rusqlite::Result<Vec<_>>>()
            .map_err(db_err)?;
        for (slug, id) in taken {
            if let (Ok(slug), Ok(id)) = (slug.parse(), id.parse()) {
                state.slugs.insert(slug, id);
            }
        }
    }
    let plan = plan_event_import(chunk, state, seen, now, may_update);
    for e in &plan.inserts {
        insert_event_row(tx, e)?;
    }
    for e in &plan.updates {
        write_event_fields(tx, e)?;
    }
    for (line, outcome) in plan.outcomes {
        refusals.report(line, outcome, on_row);
    }
    Ok(())
}

/// An event named by an import row: its id, else its external id, else its slug.
/// A UUID that is no event's id may still be an external id: an export names an event
/// that had none by its id, and importing that export into another store keeps the id
/// as the new event's external id.
fn resolve_event(tx: &Connection, raw: &str, now: Timestamp) -> Result<Option<Event>> {
    if let Ok(id) = raw.parse::<EventId>()
        && let Some(e) = read_event(tx, &EventKey::Id(id), now)?
    {
        return Ok(Some(e));
    }
    let found = tx
        .prepare_cached(&format!("SELECT {} FROM events e WHERE e.external_id = ?2", event_cols()))
        .and_then(|mut s| s.query_row(params![micros(now), raw], read_event_row).optional())
        .map_err(db_err)?;
    if let Some(r) = found {
        return r.into_event().map(Some);
    }
    match raw.parse::<Slug>() {
        Ok(slug) => read_event(tx, &EventKey::Slug(slug), now),
        Err(_) => Ok(None),
    }
}

/// A bookings-import chunk: core resolves and authorizes the rows (with this store's
/// event lookup), the store reserves them as one planned batch, core reports.
fn import_bookings_chunk(
    tx: &Transaction<'_>,
    chunk: Vec<ImportBooking>,
    now: Timestamp,
    may_book: &dyn Fn(&Event, &Email) -> Result<()>,
    refusals: &mut Refusals,
    on_row: &mut dyn FnMut(u64, &Result<ImportAction>),
) -> Result<()> {
    let plan = prepare_booking_import(chunk, &mut |raw| resolve_event(tx, raw, now), may_book)?;
    let results = reserve_planned(tx, &plan.batch, now)?;
    plan.finish(results, refusals, on_row);
    Ok(())
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
        self.write(|tx| schema::migrate(tx, now))
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

    fn insert_event(&self, e: &Event) -> Result<()> {
        self.write(|tx| insert_event_row(tx, e))
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

    fn update_event(&self, id: EventId, now: Timestamp, decide: DecideEvent<'_>) -> Result<Event> {
        self.write(|tx| {
            let next = decide(&event_for_change(tx, id, now)?)?;
            write_event_fields(tx, &next)?;
            Ok(next)
        })
    }

    fn cancel_event(&self, id: EventId, now: Timestamp, decide: DecideEvent<'_>) -> Result<Event> {
        self.write(|tx| {
            let next = decide(&event_for_change(tx, id, now)?)?;
            tx.execute(
                "UPDATE bookings SET status = 'cancelled', updated_at = ?2
                 WHERE event_id = ?1 AND status IN ('held', 'confirmed')",
                params![id.to_string(), micros(now)],
            )
            .map_err(db_err)?;
            tx.execute("UPDATE events SET held = 0, sold = 0 WHERE id = ?1", [id.to_string()]).map_err(db_err)?;
            write_event_fields(tx, &next)?;
            Ok(next)
        })
    }

    fn reserve(&self, batch: &[ReserveRequest], now: Timestamp) -> Result<Vec<Result<Reservation>>> {
        match self.write(|tx| reserve_planned(tx, batch, now)) {
            // A unique key collided while writing the plan (a booking code, a ticket
            // secret): nothing was written; run the batch one request at a time so the
            // collision fails only its own request.
            Err(Error::Conflict { .. }) => reserve_each(self, batch, now),
            other => other,
        }
    }

    fn booking(&self, code: &BookingCode) -> Result<Option<Booking>> {
        self.read(|c| read_booking(c, "b.code = ?1", code.as_str()))
    }

    fn list_bookings(
        &self,
        filter: &BookingFilter,
        start: PageStart,
        fetch: u32,
        now: Timestamp,
    ) -> Result<Vec<Booking>> {
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
        match start {
            PageStart::First => {}
            PageStart::Offset(n) => offset = i64::try_from(n).unwrap_or(i64::MAX),
            PageStart::After(c) => arg(&mut sql, " AND b.id > ?", Value::Text(c.id.hyphenated().to_string())),
        }
        arg(&mut sql, " ORDER BY b.id LIMIT ?", Value::Integer(i64::from(fetch)));
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

    fn transition_booking(&self, code: &BookingCode, now: Timestamp, decide: DecideBooking<'_>) -> Result<Booking> {
        self.write(|tx| {
            let before =
                read_booking(tx, "b.code = ?1", code.as_str())?.ok_or_else(|| Error::not_found("booking", code))?;
            expire_overdue(tx, Some(before.event_id), now)?;
            let mut booking = read_booking(tx, "b.code = ?1", code.as_str())?.unwrap_or(before);
            let event = read_event(tx, &EventKey::Id(booking.event_id), now)?
                .ok_or_else(|| Error::not_found("event", booking.event_id))?;
            let t = decide(&booking, &event)?;
            let n = tx
                .execute(
                    "UPDATE bookings SET status = ?2, updated_at = ?3 WHERE id = ?1 AND status = ?4",
                    params![booking.id.to_string(), t.to.as_str(), micros(now), booking.status.as_str()],
                )
                .map_err(db_err)?;
            if n != 1 {
                return Err(Error::conflict(format!("booking {code} changed concurrently; retry")));
            }
            bump_counters(tx, event.id, t.held_delta, t.sold_delta)?;
            booking.status = t.to;
            booking.updated_at = now;
            Ok(booking)
        })
    }

    fn check_in(&self, secret: &TicketSecret, now: Timestamp, decide: DecideCheckIn<'_>) -> Result<CheckIn> {
        self.write(|tx| {
            let found: Option<(String, i64)> = tx
                .query_row("SELECT booking_id, seq FROM tickets WHERE secret = ?1", [secret.as_str()], |r| {
                    Ok((r.get(0)?, r.get(1)?))
                })
                .optional()
                .map_err(db_err)?;
            let (booking_id, seq) = found.ok_or_else(|| Error::not_found("ticket", "with that secret"))?;
            let booking = read_booking(tx, "b.id = ?1", &booking_id)?
                .ok_or_else(|| Error::not_found("booking", &booking_id))?;
            let ticket = booking
                .tickets
                .iter()
                .find(|t| i64::from(t.seq) == seq)
                .ok_or_else(|| Error::not_found("ticket", "with that secret"))?;
            let event = read_event(tx, &EventKey::Id(booking.event_id), now)?
                .ok_or_else(|| Error::not_found("event", booking.event_id))?;
            decide(&booking, ticket, &event)?;
            let n = tx
                .execute(
                    "UPDATE tickets SET checked_in_at = ?3 WHERE booking_id = ?1 AND seq = ?2 AND checked_in_at IS NULL",
                    params![booking_id, seq, micros(now)],
                )
                .map_err(db_err)?;
            if n != 1 {
                return Err(Error::conflict("ticket was checked in concurrently"));
            }
            Ok(CheckIn::of(&booking, ticket, &event, now))
        })
    }

    fn expire_holds(&self, now: Timestamp) -> Result<u64> {
        self.write(|tx| expire_overdue(tx, None, now))
    }

    fn import_events(
        &self,
        rows: &mut dyn Iterator<Item = ImportEvent>,
        mode: ImportMode,
        now: Timestamp,
        may_update: &dyn Fn(&Event) -> Result<()>,
        on_row: &mut dyn FnMut(u64, &Result<ImportAction>),
    ) -> Result<()> {
        let mut seen = SeenIds::default();
        self.import_loop(rows, mode, &mut |tx, chunk, refusals| {
            import_chunk(tx, chunk, &mut seen, now, may_update, refusals, &mut *on_row)
        })
    }

    fn import_bookings(
        &self,
        rows: &mut dyn Iterator<Item = ImportBooking>,
        mode: ImportMode,
        now: Timestamp,
        may_book: &dyn Fn(&Event, &Email) -> Result<()>,
        on_row: &mut dyn FnMut(u64, &Result<ImportAction>),
    ) -> Result<()> {
        self.import_loop(rows, mode, &mut |tx, chunk, refusals| {
            import_bookings_chunk(tx, chunk, now, may_book, refusals, &mut *on_row)
        })
    }

    fn insert_user(&self, a: &Account) -> Result<()> {
        self.write(|tx| {
            tx.execute(
                "INSERT INTO users (email, role, password_hash, created_at, updated_at) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![
                    a.user.email.as_str(),
                    a.user.role.as_str(),
                    a.password_hash.as_str(),
                    micros(a.user.created_at),
                    micros(a.user.updated_at)
                ],
            )
            .map_err(|e| {
                if e.to_string().contains("users.email") {
                    Error::conflict(format!("a user {} already exists", a.user.email))
                } else {
                    db_err(e)
                }
            })?;
            Ok(())
        })
    }

    fn account(&self, email: &Email) -> Result<Option<Account>> {
        self.read(|c| read_account(c, email))
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

    fn update_user(
        &self,
        email: &Email,
        hash: Option<&PasswordHash>,
        now: Timestamp,
        decide: DecideUser<'_>,
    ) -> Result<User> {
        self.write(|tx| {
            let current = read_account(tx, email)?.ok_or_else(|| Error::not_found("user", email))?;
            let admins: i64 =
                tx.query_row("SELECT COUNT(*) FROM users WHERE role = 'admin'", [], |r| r.get(0)).map_err(db_err)?;
            let role: Option<Role> = decide(&current.user, u64::try_from(admins).unwrap_or(0))?;
            let n = tx
                .execute(
                    "UPDATE users SET role = COALESCE(?2, role), password_hash = COALESCE(?3, password_hash),
                       updated_at = ?4 WHERE email = ?1",
                    params![email.as_str(), role.map(|r| r.as_str()), hash.map(|h| h.as_str()), micros(now)],
                )
                .map_err(db_err)?;
            if n == 0 {
                return Err(Error::not_found("user", email));
            }
            Ok(read_account(tx, email)?.ok_or_else(|| Error::not_found("user", email))?.user)
        })
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
