//! goticket-store-pg: the [`Store`] on PostgreSQL (diesel, r2d2 pool), for many
//! processes or machines selling from one database.
//!
//! Every write is one transaction. A reservation batch first locks its events' rows
//! (`SELECT ... FOR UPDATE`, in id order so two batches never deadlock on each other),
//! expires their overdue holds, then decides and writes each request in a savepoint;
//! counters move with a guarded `UPDATE` and CHECK constraints stand behind them.
//! Deadlocks and serialization failures are retried with bounded backoff, in one
//! place ([`PgStore::write`]); a lost connection is reported as retryable, never
//! retried blindly (the commit may have happened).
//!
//! ```no_run
//! use std::sync::Arc;
//! use goticket_core::{Service, Store};
//! use goticket_store_pg::PgStore;
//!
//! let store = PgStore::connect("postgres://postgres@127.0.0.1/tickets")?;
//! store.migrate()?;
//! let service = Service::new(Arc::new(store));
//! # let _ = service;
//! # Ok::<(), goticket_core::Error>(())
//! ```
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod rows;
mod schema;
pub mod testing;

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use diesel::connection::SimpleConnection;
use diesel::pg::Pg;
use diesel::prelude::*;
use diesel::r2d2::{ConnectionManager, Pool, PooledConnection};
use diesel::result::{DatabaseErrorKind, Error as DieselError};
use diesel::sql_types::{Array, Int4, Int8, Nullable, Text, Timestamptz, Uuid as SqlUuid};
use diesel_migrations::{EmbeddedMigrations, MigrationHarness, embed_migrations};
use goticket_core::outbox::{AggregateRef, AuditFilter, BookingChange, DomainEvent, RelayCursor, RelayState};
use goticket_core::records::TicketRecord;
use goticket_core::users::{Account, AddressColumn, EmailRewrite, PasswordHash, StoredAccount, User, migrate_emails};
use goticket_core::{
    Booking, BookingCode, BookingFilter, BookingId, BookingStatus, Email, Event, EventFilter, EventId, ExternalId,
    IdempotencyKey, PageStart, Slug, TicketSecret, Timestamp,
};
use goticket_core::{
    Commit, CounterDelta, EventKey, Locked, PoolWaitCounter, PoolWaits, Retry, SalesRow, SeatTotals, Store, Tx, TxBody,
};
use goticket_core::{Error, Result, StoreError, StoreErrorKind};
use uuid::Uuid;

use crate::rows::{
    BacklogRow, BookingRow, ChangeRow, EVENT_COLS, EventChanges, EventRow, HeadRow, NewBookingRow, NewEventRow,
    NewTicketRow, OUTBOX_COLS, OutboxRow, RELAY_COLS, RelayEventRow, RelayRow, SalesRowSql, TicketRow, UserRow, to_pg,
};
use crate::schema::{bookings, events, tickets, users};

const MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations");

/// Serializes concurrent `migrate` calls across processes.
const MIGRATION_LOCK: i64 = 0x676f_7469_636b_6574;

/// Options for the connection pool and retries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PgOptions {
    /// Most connections this process opens.
    pub max_connections: u32,
    /// How long a caller waits for a free connection before a retryable error.
    pub checkout_timeout: Duration,
    /// How often a transaction that hit a deadlock or serialization failure is re-run.
    pub max_retries: u32,
}

impl Default for PgOptions {
    fn default() -> Self {
        PgOptions { max_connections: 16, checkout_timeout: Duration::from_secs(10), max_retries: 10 }
    }
}

type Manager = ConnectionManager<PgConnection>;

/// The PostgreSQL store. Share it behind an `Arc`; all methods are thread-safe.
pub struct PgStore {
    pool: Pool<Manager>,
    options: PgOptions,
    url: String,
    /// The pool's checkouts and how long they waited.
    waits: std::sync::Arc<PoolWaitCounter>,
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgStore").field("options", &self.options).finish_non_exhaustive()
    }
}

/// A transaction body's error: a driver error (which may be retried) or a domain
/// decision (which is final).
enum TxErr {
    Db(DieselError),
    Domain(Error),
}

impl From<DieselError> for TxErr {
    fn from(e: DieselError) -> Self {
        TxErr::Db(e)
    }
}

impl From<Error> for TxErr {
    fn from(e: Error) -> Self {
        TxErr::Domain(e)
    }
}

type Db<T> = std::result::Result<T, TxErr>;

/// A helper's result as core's.
fn db<T>(r: Db<T>) -> Result<T> {
    r.map_err(tx_err)
}

fn message(e: &DieselError) -> String {
    match e {
        DieselError::DatabaseError(_, info) => info.message().to_owned(),
        other => other.to_string(),
    }
}

/// Failures after which the transaction was rolled back by the server, so running it
/// again is safe.
fn is_retryable(e: &DieselError) -> bool {
    match e {
        DieselError::DatabaseError(DatabaseErrorKind::SerializationFailure, _) => true,
        DieselError::DatabaseError(_, info) => {
            let m = info.message();
            m.contains("deadlock detected") || m.contains("lock timeout")
        }
        _ => false,
    }
}

/// Converts a driver error into core's error, keeping the cause: the one place a
/// PostgreSQL error is classified. A taken slug or email is a conflict, any other
/// unique value (a booking code, a ticket secret, an id, a retry key a concurrent
/// request took) a collision that is safe to re-run, a broken CHECK an integrity error.
fn pg_err(e: DieselError) -> Error {
    if let DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, info) = &e {
        let name = info.constraint_name().unwrap_or("unknown");
        return match name {
            "events_slug_key" => Error::conflict("the slug is already used by another event"),
            "users_pkey" => Error::conflict("a user with that email already exists"),
            "bookings_idempotency" => Error::collision("a concurrent request used the same idempotency key"),
            _ => Error::collision(format!("{name} is already taken")),
        };
    }
    let kind = match &e {
        _ if is_retryable(&e) => StoreErrorKind::Busy,
        DieselError::DatabaseError(DatabaseErrorKind::ClosedConnection | DatabaseErrorKind::UnableToSendCommand, _) => {
            StoreErrorKind::Unavailable
        }
        DieselError::DatabaseError(DatabaseErrorKind::CheckViolation | DatabaseErrorKind::ForeignKeyViolation, _) => {
            StoreErrorKind::Integrity
        }
        DieselError::DatabaseError(_, info) if info.message().contains("does not exist") => {
            return Error::Storage(StoreError::new(
                StoreErrorKind::Schema,
                format!("the database has no goticket schema ({}); run `goticket migrate`", info.message()),
                Some(Box::new(e)),
            ));
        }
        _ => StoreErrorKind::Other,
    };
    Error::Storage(StoreError::new(kind, format!("postgres: {}", message(&e)), Some(Box::new(e))))
}

fn tx_err(e: TxErr) -> Error {
    match e {
        TxErr::Db(e) => pg_err(e),
        TxErr::Domain(e) => e,
    }
}

impl PgStore {
    /// Connects to the database with default options. Nothing is opened until first
    /// use, so an unreachable server is reported by the first call, as retryable.
    pub fn connect(url: &str) -> Result<Self> {
        Self::connect_with(url, PgOptions::default())
    }

    /// Connects with the given options.
    pub fn connect_with(url: &str, options: PgOptions) -> Result<Self> {
        if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
            return Err(Error::validation("db", format!("{} is not a postgres:// URL", goticket_core::shown(url))));
        }
        if database_name(url).is_none() {
            // libpq would fill in its defaults (a local socket, the user's own database)
            // and the first command would migrate there.
            return Err(Error::validation(
                "db",
                "the PostgreSQL URL names no database: give one, as in postgres://user@host/dbname",
            ));
        }
        let waits = std::sync::Arc::new(PoolWaitCounter::default());
        let pool = Pool::builder()
            .event_handler(Box::new(CountWaits(waits.clone())))
            .max_size(options.max_connections)
            .min_idle(Some(0))
            .connection_timeout(options.checkout_timeout)
            .test_on_check_out(true)
            .build_unchecked(ConnectionManager::new(url));
        Ok(PgStore { pool, options, url: url.to_owned(), waits })
    }

    fn conn(&self) -> Result<PooledConnection<Manager>> {
        // No connection is open at all: ask the server once, directly, so an error
        // that waiting cannot cure (nothing listens, no such database, a wrong
        // password) is answered now, not after the checkout timeout.
        if self.pool.state().connections == 0
            && let Err(e) = PgConnection::establish(&self.url)
        {
            return Err(connect_failed(&e));
        }
        self.pool.get().map_err(|e| {
            Error::Storage(StoreError::new(
                StoreErrorKind::Unavailable,
                format!("no PostgreSQL connection within {:?}", self.options.checkout_timeout),
                Some(Box::new(e)),
            ))
        })
    }

    fn read<T>(&self, f: impl FnOnce(&mut PgConnection) -> Db<T>) -> Result<T> {
        let mut conn = self.conn()?;
        f(&mut conn).map_err(tx_err)
    }
}

/// Why a connection could not be made, in one line (libpq adds hints on lines of
/// their own). Nothing listening is retryable; a refusal by the server is not.
fn connect_failed(e: &diesel::ConnectionError) -> Error {
    let text = e.to_string();
    let first = text.lines().map(str::trim).find(|l| !l.is_empty()).unwrap_or("cannot connect");
    let first = first.replace("FATAL:  ", "");
    let refused_by_server = ["does not exist", "authentication failed", "no pg_hba.conf entry", "not permitted"]
        .iter()
        .any(|m| first.contains(m));
    let kind = if refused_by_server { StoreErrorKind::Other } else { StoreErrorKind::Unavailable };
    Error::Storage(StoreError::new(kind, format!("cannot connect to PostgreSQL: {first}"), None))
}

/// The database a `postgres://` URL names: the path after the host, or a `dbname`
/// parameter.
fn database_name(url: &str) -> Option<&str> {
    let rest = url.split_once("://")?.1;
    let (before_query, query) = rest.split_once('?').unwrap_or((rest, ""));
    let path = before_query.split_once('/').map_or("", |(_, p)| p);
    let from_query = query.split('&').find_map(|kv| kv.strip_prefix("dbname="));
    [path, from_query.unwrap_or("")].into_iter().find(|n| !n.is_empty())
}

/// 2 ms doubling up to 256 ms, with jitter so retrying transactions spread out.
fn backoff(attempt: u32) -> Duration {
    let base = 2u64 << attempt.min(7);
    let jitter =
        u64::from(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.subsec_nanos()))
            % base;
    Duration::from_millis(base / 2 + jitter / 2)
}

fn read_event(c: &mut PgConnection, key: &EventKey, now: Timestamp) -> Db<Option<Event>> {
    let q = diesel::sql_query(format!("SELECT {EVENT_COLS} FROM events e WHERE "))
        .into_boxed::<Pg>()
        .bind::<Timestamptz, _>(to_pg(now)?);
    let row: Option<EventRow> = match key {
        EventKey::Id(id) => q.sql("e.id = $2").bind::<SqlUuid, _>(id.as_uuid()).get_result(c).optional()?,
        EventKey::Slug(s) => q.sql("e.slug = $2").bind::<Text, _>(s.as_str().to_owned()).get_result(c).optional()?,
    };
    Ok(row.map(|r| r.record()?.into_event()).transpose()?)
}

/// Locks the events' rows in id order, the one order every writer uses, so writers
/// serialize per event without deadlocking each other.
fn lock_events(c: &mut PgConnection, ids: &[Uuid]) -> Db<()> {
    events::table.filter(events::id.eq_any(ids)).order(events::id).select(events::id).for_update().load::<Uuid>(c)?;
    Ok(())
}

/// Expires overdue holds (of one event, or all) and releases their seats, in one
/// statement; returns how many bookings expired. The sweep of all events first locks
/// the events it will touch, in id order, as a reservation does (the one-event form
/// runs under its caller's lock), so a sweep and a sale never deadlock.
fn expire_overdue(c: &mut PgConnection, event: Option<EventId>, now: Timestamp) -> Db<Vec<BookingChange>> {
    if event.is_none() {
        let ids: Vec<Uuid> = bookings::table
            .filter(bookings::status.eq("held"))
            .filter(bookings::expires_at.le(to_pg(now)?))
            .select(bookings::event_id)
            .distinct()
            .load(c)?;
        lock_events(c, &ids)?;
    }
    let filter = if event.is_some() { "AND event_id = $2" } else { "" };
    let sql = format!(
        "WITH expired AS (
             UPDATE bookings SET status = 'expired', updated_at = $1
             WHERE status = 'held' AND expires_at <= $1 {filter}
             RETURNING id, code, event_id, customer, quantity),
         per_event AS (SELECT event_id, SUM(quantity)::int4 AS q FROM expired GROUP BY event_id),
         released AS (UPDATE events e SET held = e.held - p.q FROM per_event p WHERE e.id = p.event_id RETURNING 1)
         SELECT id, code, event_id, customer, quantity FROM expired"
    );
    let q = diesel::sql_query(sql).into_boxed::<Pg>().bind::<Timestamptz, _>(to_pg(now)?);
    let q = match event {
        Some(id) => q.bind::<SqlUuid, _>(id.as_uuid()),
        None => q,
    };
    let rows: Vec<ChangeRow> = q.load(c)?;
    Ok(rows.into_iter().map(|r| r.change(BookingStatus::Held)).collect::<Result<_>>()?)
}

fn load_tickets(c: &mut PgConnection, ids: &[Uuid]) -> Db<HashMap<Uuid, Vec<TicketRecord>>> {
    let rows: Vec<TicketRow> = tickets::table
        .filter(tickets::booking_id.eq_any(ids))
        .order((tickets::booking_id, tickets::seq))
        .select(TicketRow::as_select())
        .load(c)?;
    let mut by_booking: HashMap<Uuid, Vec<TicketRecord>> = HashMap::new();
    for r in rows {
        let id = r.booking_id;
        by_booking.entry(id).or_default().push(r.record()?);
    }
    Ok(by_booking)
}

fn with_tickets(c: &mut PgConnection, rows: Vec<BookingRow>) -> Db<Vec<Booking>> {
    let ids: Vec<Uuid> = rows.iter().map(|r| r.id).collect();
    let mut tickets = load_tickets(c, &ids)?;
    rows.into_iter()
        .map(|r| {
            let t = tickets.remove(&r.id).unwrap_or_default();
            Ok(r.record()?.into_booking(t)?)
        })
        .collect()
}

fn booking_where(
    c: &mut PgConnection,
    filter: impl FnOnce(bookings::BoxedQuery<'static, Pg>) -> bookings::BoxedQuery<'static, Pg>,
) -> Db<Option<Booking>> {
    let row: Option<BookingRow> =
        filter(bookings::table.into_boxed()).select(BookingRow::as_select()).first(c).optional()?;
    Ok(match row {
        Some(r) => with_tickets(c, vec![r])?.pop(),
        None => None,
    })
}

fn booking_by_code(c: &mut PgConnection, code: &BookingCode) -> Db<Option<Booking>> {
    let code = code.as_str().to_owned();
    booking_where(c, |q| q.filter(bookings::code.eq(code)))
}

/// Adds to an event's counters only if the seats fit; the CHECK constraints stand
/// behind it.
fn bump_counters(c: &mut PgConnection, event: EventId, held: i64, sold: i64) -> Db<()> {
    let held = i32::try_from(held).map_err(|_| Error::validation("quantity", "out of range"))?;
    let sold = i32::try_from(sold).map_err(|_| Error::validation("quantity", "out of range"))?;
    let n = diesel::sql_query(
        "UPDATE events SET held = held + $2, sold = sold + $3
         WHERE id = $1 AND held + $2 >= 0 AND sold + $3 >= 0 AND held + sold + $2 + $3 <= capacity",
    )
    .bind::<SqlUuid, _>(event.as_uuid())
    .bind::<Int4, _>(held)
    .bind::<Int4, _>(sold)
    .execute(c)?;
    if n != 1 {
        return Err(TxErr::Domain(Error::Storage(StoreError::new(
            StoreErrorKind::Integrity,
            format!("counter guard refused held{held:+} sold{sold:+} on event {event}"),
            None,
        ))));
    }
    Ok(())
}

fn write_event_fields(c: &mut PgConnection, e: &Event) -> Db<()> {
    let changes = EventChanges::from_event(e)?;
    let n = diesel::update(events::table.find(e.id.as_uuid())).set(&changes).execute(c)?;
    if n != 1 {
        return Err(Error::not_found("event", e.id).into());
    }
    Ok(())
}

/// From this many bookings a batch is written with COPY rather than INSERT.
const COPY_THRESHOLD: usize = 32;

/// Inserts bookings and their tickets: one multi-row INSERT each for a small batch
/// (at most 31 bookings of at most 100 seats stay far under PostgreSQL's 65,535 bind
/// parameters), binary COPY for a big one.
fn insert_bookings(c: &mut PgConnection, bookings: &[Booking]) -> Db<()> {
    let rows = bookings.iter().map(NewBookingRow::from_booking).collect::<Result<Vec<_>>>()?;
    let tickets = bookings
        .iter()
        .flat_map(|b| b.tickets.iter().map(|t| NewTicketRow::new(b.id.as_uuid(), t)))
        .collect::<Result<Vec<NewTicketRow<'_>>>>()?;
    if rows.len() >= COPY_THRESHOLD {
        // Binary COPY inside the transaction: a big batch at bulk-load speed.
        diesel::copy_from(bookings::table).from_insertable(&rows).execute(c)?;
        diesel::copy_from(tickets::table).from_insertable(&tickets).execute(c)?;
        return Ok(());
    }
    if !rows.is_empty() {
        diesel::insert_into(bookings::table).values(&rows).execute(c)?;
        diesel::insert_into(tickets::table).values(&tickets).execute(c)?;
    }
    Ok(())
}

fn read_account(c: &mut PgConnection, email: &Email) -> Db<Option<Account>> {
    let row: Option<UserRow> = users::table.find(email.as_str()).select(UserRow::as_select()).first(c).optional()?;
    Ok(row.map(|r| r.record()?.into_account()).transpose()?)
}

fn collect_rows<T, R>(rows: Vec<R>, mut f: impl FnMut(R) -> Result<T>) -> Db<Vec<T>> {
    rows.into_iter().map(|r| f(r).map_err(TxErr::Domain)).collect()
}

/// Locks the events in id order, then reads them as of `now` and expires the overdue
/// holds of those that have any. Lock first, then read: the read is a statement of
/// its own, so at READ COMMITTED it sees everything committed before the lock was
/// granted (a read in the locking statement itself would recheck the event row but
/// evaluate the overdue-hold sum on the snapshot from before the wait, and count a
/// sweep that committed meanwhile twice).
fn lock_and_expire(c: &mut PgConnection, ids: &[EventId], now: Timestamp) -> Db<Locked> {
    let ids: Vec<Uuid> = ids.iter().map(|i| i.as_uuid()).collect::<BTreeSet<_>>().into_iter().collect();
    if ids.is_empty() {
        return Ok(Locked::default());
    }
    lock_events(c, &ids)?;
    let rows: Vec<EventRow> = diesel::sql_query(format!("SELECT {EVENT_COLS} FROM events e WHERE e.id = ANY($2)"))
        .bind::<Timestamptz, _>(to_pg(now)?)
        .bind::<Array<SqlUuid>, _>(&ids)
        .load(c)?;
    let mut out = Locked { events: Vec::with_capacity(rows.len()), expired: Vec::new() };
    for row in rows {
        let overdue = row.has_overdue_holds();
        let event = row.record()?.into_event()?;
        if overdue {
            out.expired.extend(expire_overdue(c, Some(event.id), now)?);
        }
        out.events.push(event);
    }
    Ok(out)
}

/// A write transaction's primitives, each a fixed number of statements however many
/// items it is given.
struct PgTx<'a> {
    c: &'a mut PgConnection,
}

impl Tx for PgTx<'_> {
    fn lock_events(&mut self, ids: &[EventId], now: Timestamp) -> Result<Locked> {
        db(lock_and_expire(self.c, ids, now))
    }

    fn find_events(&mut self, keys: &[String], now: Timestamp) -> Result<Vec<Event>> {
        let as_ids: Vec<Uuid> = keys.iter().filter_map(|k| Uuid::try_parse(k).ok()).collect();
        let rows: Vec<EventRow> = diesel::sql_query(format!(
            "SELECT {EVENT_COLS} FROM events e WHERE e.external_id = ANY($2) OR e.id = ANY($3)"
        ))
        .bind::<Timestamptz, _>(to_pg(now)?)
        .bind::<Array<Text>, _>(keys)
        .bind::<Array<SqlUuid>, _>(&as_ids)
        .load(self.c)
        .map_err(pg_err)?;
        rows.into_iter().map(|r| r.record()?.into_event()).collect()
    }

    fn event_by_slug(&mut self, slug: &Slug, now: Timestamp) -> Result<Option<Event>> {
        db(read_event(self.c, &EventKey::Slug(slug.clone()), now))
    }

    fn slug_owners(&mut self, slugs: &[Slug]) -> Result<Vec<(Slug, EventId)>> {
        let slugs: Vec<&str> = slugs.iter().map(|s| s.as_str()).collect();
        let taken: Vec<(Option<String>, Uuid)> = events::table
            .filter(events::slug.eq_any(&slugs))
            .select((events::slug, events::id))
            .load(self.c)
            .map_err(pg_err)?;
        Ok(taken.into_iter().filter_map(|(slug, id)| Some((slug?.parse().ok()?, EventId::from_uuid(id)))).collect())
    }

    fn insert_events(&mut self, events: &[Event]) -> Result<()> {
        let rows = events.iter().map(NewEventRow::from_event).collect::<Result<Vec<_>>>()?;
        let written = if rows.len() >= COPY_THRESHOLD {
            // COPY (binary): an import's inserts at bulk-load speed, inside the transaction.
            diesel::copy_from(events::table).from_insertable(&rows).execute(self.c)
        } else {
            diesel::insert_into(events::table).values(&rows).execute(self.c)
        };
        written.map_err(pg_err)?;
        Ok(())
    }

    fn update_event(&mut self, event: &Event) -> Result<()> {
        db(write_event_fields(self.c, event))
    }

    fn add_to_counters(&mut self, deltas: &[CounterDelta]) -> Result<()> {
        deltas.iter().try_for_each(|d| db(bump_counters(self.c, d.event, d.held, d.sold)))
    }

    fn expire_all_holds(&mut self, now: Timestamp) -> Result<Vec<BookingChange>> {
        db(expire_overdue(self.c, None, now))
    }

    fn cancel_live_bookings(&mut self, event: EventId, now: Timestamp) -> Result<Vec<BookingChange>> {
        // One statement per status before, so each change knows what it came from.
        let mut out = Vec::new();
        for from in [BookingStatus::Held, BookingStatus::Confirmed] {
            let rows: Vec<ChangeRow> = diesel::sql_query(
                "UPDATE bookings SET status = 'cancelled', updated_at = $2
                 WHERE event_id = $1 AND status = $3 RETURNING id, code, event_id, customer, quantity",
            )
            .bind::<SqlUuid, _>(event.as_uuid())
            .bind::<Timestamptz, _>(to_pg(now)?)
            .bind::<Text, _>(from.as_str())
            .load(self.c)
            .map_err(pg_err)?;
            for r in rows {
                out.push(r.change(from)?);
            }
        }
        Ok(out)
    }

    fn prune_events(&mut self, before: Timestamp, upto: Option<&RelayCursor>, limit: u32) -> Result<u64> {
        // An aggregate's latest event stays: the next one is numbered after it.
        let n = diesel::sql_query(
            "DELETE FROM outbox WHERE position IN (
                 SELECT o.position FROM outbox o
                 WHERE o.occurred_at < $1
                   AND ($2 OR (o.txid, o.position) <= ($3::text::xid8, $4))
                   AND o.aggregate_seq < (SELECT MAX(h.aggregate_seq) FROM outbox h
                                          WHERE h.aggregate_type = o.aggregate_type
                                            AND h.aggregate_id = o.aggregate_id)
                 ORDER BY o.position LIMIT $5)",
        )
        .bind::<Timestamptz, _>(to_pg(before)?)
        .bind::<diesel::sql_types::Bool, _>(upto.is_none())
        .bind::<Text, _>(upto.map_or(0, |c| c.tx).to_string())
        .bind::<Int8, _>(upto.map_or(0, |c| c.position))
        .bind::<Int8, _>(i64::from(limit))
        .execute(self.c)
        .map_err(pg_err)?;
        Ok(n as u64)
    }

    fn lock_relay(&mut self, name: &str) -> Result<RelayState> {
        diesel::sql_query("INSERT INTO relay_state (name) VALUES ($1) ON CONFLICT (name) DO NOTHING")
            .bind::<Text, _>(name)
            .execute(self.c)
            .map_err(pg_err)?;
        let row: RelayRow =
            diesel::sql_query(format!("SELECT {RELAY_COLS} FROM relay_state WHERE name = $1 FOR UPDATE"))
                .bind::<Text, _>(name)
                .get_result(self.c)
                .map_err(pg_err)?;
        row.state()
    }

    fn put_relay(&mut self, r: &RelayState) -> Result<()> {
        diesel::sql_query(
            "UPDATE relay_state SET txid = $2, position = $3, owner = $4, lease_until = $5, published = $6,
                    last_published_at = $7, last_error = $8 WHERE name = $1",
        )
        .bind::<Text, _>(&r.name)
        .bind::<Int8, _>(r.cursor.tx)
        .bind::<Int8, _>(r.cursor.position)
        .bind::<Nullable<Text>, _>(r.owner.as_deref())
        .bind::<Nullable<Timestamptz>, _>(r.lease_until.map(to_pg).transpose()?)
        .bind::<Int8, _>(i64::try_from(r.published).unwrap_or(i64::MAX))
        .bind::<Nullable<Timestamptz>, _>(r.last_published_at.map(to_pg).transpose()?)
        .bind::<Nullable<Text>, _>(r.last_error.as_deref())
        .execute(self.c)
        .map_err(pg_err)?;
        Ok(())
    }

    fn aggregate_heads(&mut self, aggregates: &[AggregateRef]) -> Result<Vec<(AggregateRef, u64)>> {
        let kinds: Vec<&str> = aggregates.iter().map(|a| a.kind.as_str()).collect();
        let ids: Vec<&str> = aggregates.iter().map(|a| a.id.as_str()).collect();
        let rows: Vec<HeadRow> = diesel::sql_query(
            "SELECT a.t AS aggregate_type, a.i AS aggregate_id, h.last
             FROM UNNEST($1::text[], $2::text[]) AS a(t, i)
             CROSS JOIN LATERAL (SELECT MAX(aggregate_seq) AS last FROM outbox o
                                 WHERE o.aggregate_type = a.t AND o.aggregate_id = a.i) h
             WHERE h.last IS NOT NULL",
        )
        .bind::<Array<Text>, _>(&kinds)
        .bind::<Array<Text>, _>(&ids)
        .load(self.c)
        .map_err(pg_err)?;
        rows.into_iter()
            .map(|r| {
                let kind = r.aggregate_type.parse()?;
                Ok((AggregateRef { kind, id: r.aggregate_id }, u64::try_from(r.last).unwrap_or(0)))
            })
            .collect()
    }

    fn append_events(&mut self, events: &[DomainEvent]) -> Result<()> {
        if events.is_empty() {
            return Ok(());
        }
        let col = |f: &dyn Fn(&DomainEvent) -> String| events.iter().map(f).collect::<Vec<String>>();
        let ids: Vec<Uuid> = events.iter().map(|e| e.id).collect();
        let seqs: Vec<i64> = events.iter().map(|e| i64::try_from(e.aggregate_seq).unwrap_or(i64::MAX)).collect();
        let event_ids: Vec<Option<Uuid>> = events.iter().map(|e| e.event_id.map(|id| id.as_uuid())).collect();
        let times = events.iter().map(|e| to_pg(e.occurred_at)).collect::<Result<Vec<_>>>()?;
        let actors: Vec<Option<String>> =
            events.iter().map(|e| e.actor.as_ref().map(|a| a.as_str().to_owned())).collect();
        let versions: Vec<i32> = events.iter().map(|e| i32::try_from(e.schema_version).unwrap_or(i32::MAX)).collect();
        // One statement for the batch; WITH ORDINALITY keeps the given order, so
        // positions follow it.
        diesel::sql_query(
            "INSERT INTO outbox (id, type, aggregate_type, aggregate_id, aggregate_seq, event_id, occurred_at,
                                 actor, schema_version, payload)
             SELECT id, type, aggregate_type, aggregate_id, seq, event_id, at, actor, version, payload
             FROM UNNEST($1::uuid[], $2::text[], $3::text[], $4::text[], $5::int8[], $6::uuid[], $7::timestamptz[],
                         $8::text[], $9::int4[], $10::text[])
                  WITH ORDINALITY AS e(id, type, aggregate_type, aggregate_id, seq, event_id, at, actor, version,
                                       payload, n)
             ORDER BY n",
        )
        .bind::<Array<SqlUuid>, _>(&ids)
        .bind::<Array<Text>, _>(col(&|e| e.kind.as_str().to_owned()))
        .bind::<Array<Text>, _>(col(&|e| e.aggregate_type.as_str().to_owned()))
        .bind::<Array<Text>, _>(col(&|e| e.aggregate_id.clone()))
        .bind::<Array<Int8>, _>(&seqs)
        .bind::<Array<Nullable<SqlUuid>>, _>(&event_ids)
        .bind::<Array<Timestamptz>, _>(&times)
        .bind::<Array<Nullable<Text>>, _>(&actors)
        .bind::<Array<Int4>, _>(&versions)
        .bind::<Array<Text>, _>(col(&|e| e.payload.get().to_owned()))
        .execute(self.c)
        .map_err(pg_err)?;
        Ok(())
    }

    fn bookings_by_id(&mut self, ids: &[BookingId]) -> Result<Vec<Booking>> {
        let ids: Vec<Uuid> = ids.iter().map(|i| i.as_uuid()).collect();
        let rows: Vec<BookingRow> = bookings::table
            .filter(bookings::id.eq_any(&ids))
            .select(BookingRow::as_select())
            .load(self.c)
            .map_err(pg_err)?;
        db(with_tickets(self.c, rows))
    }

    fn bookings_by_key(&mut self, keys: &[(Email, IdempotencyKey)]) -> Result<Vec<Booking>> {
        // Customers and keys matched separately: a superset of the pairs, which the
        // caller looks up by exact pair.
        let customers: Vec<&str> = keys.iter().map(|(c, _)| c.as_str()).collect();
        let keys: Vec<&str> = keys.iter().map(|(_, k)| k.as_str()).collect();
        let rows: Vec<BookingRow> = bookings::table
            .filter(bookings::customer.eq_any(customers))
            .filter(bookings::idempotency_key.eq_any(keys))
            .select(BookingRow::as_select())
            .load(self.c)
            .map_err(pg_err)?;
        db(with_tickets(self.c, rows))
    }

    fn bookings_by_external_id(&mut self, ids: &[ExternalId]) -> Result<Vec<Booking>> {
        let ids: Vec<&str> = ids.iter().map(|x| x.as_str()).collect();
        let rows: Vec<BookingRow> = bookings::table
            .filter(bookings::external_id.eq_any(&ids))
            .select(BookingRow::as_select())
            .load(self.c)
            .map_err(pg_err)?;
        db(with_tickets(self.c, rows))
    }

    fn booking_by_code(&mut self, code: &BookingCode) -> Result<Option<Booking>> {
        db(booking_by_code(self.c, code))
    }

    fn booking_by_secret(&mut self, secret: &TicketSecret) -> Result<Option<Booking>> {
        let owner = tickets::table.filter(tickets::secret.eq(secret.as_str().to_owned())).select(tickets::booking_id);
        let rows: Vec<BookingRow> = bookings::table
            .filter(bookings::id.eq_any(owner))
            .select(BookingRow::as_select())
            .load(self.c)
            .map_err(pg_err)?;
        Ok(db(with_tickets(self.c, rows))?.pop())
    }

    fn live_seats(&mut self, of: &[(EventId, Email)]) -> Result<Vec<(EventId, Email, u32)>> {
        let events: Vec<Uuid> = of.iter().map(|(e, _)| e.as_uuid()).collect();
        let customers: Vec<&str> = of.iter().map(|(_, c)| c.as_str()).collect();
        let rows: Vec<(Uuid, String, Option<i64>)> = bookings::table
            .filter(bookings::event_id.eq_any(&events))
            .filter(bookings::customer.eq_any(customers))
            .filter(bookings::status.eq_any(["held", "confirmed"]))
            .group_by((bookings::event_id, bookings::customer))
            .select((bookings::event_id, bookings::customer, diesel::dsl::sum(bookings::quantity)))
            .load(self.c)
            .map_err(pg_err)?;
        rows.into_iter()
            .map(|(event, customer, seats)| {
                Ok((
                    EventId::from_uuid(event),
                    customer.parse()?,
                    u32::try_from(seats.unwrap_or(0)).unwrap_or(u32::MAX),
                ))
            })
            .collect()
    }

    fn insert_bookings(&mut self, bookings: &[Booking]) -> Result<()> {
        db(insert_bookings(self.c, bookings))
    }

    fn set_status(&mut self, id: BookingId, from: BookingStatus, to: BookingStatus, now: Timestamp) -> Result<bool> {
        let n = diesel::update(bookings::table.find(id.as_uuid()).filter(bookings::status.eq(from.as_str())))
            .set((bookings::status.eq(to.as_str()), bookings::updated_at.eq(to_pg(now)?)))
            .execute(self.c)
            .map_err(pg_err)?;
        Ok(n == 1)
    }

    fn check_in(&mut self, booking: BookingId, seq: u32, now: Timestamp) -> Result<bool> {
        let seq = i32::try_from(seq).map_err(|_| Error::validation("seq", "out of range"))?;
        let n = diesel::update(
            tickets::table
                .filter(tickets::booking_id.eq(booking.as_uuid()))
                .filter(tickets::seq.eq(seq))
                .filter(tickets::checked_in_at.is_null()),
        )
        .set(tickets::checked_in_at.eq(to_pg(now)?))
        .execute(self.c)
        .map_err(pg_err)?;
        Ok(n == 1)
    }

    fn insert_user(&mut self, a: &Account) -> Result<()> {
        diesel::insert_into(users::table)
            .values((
                users::email.eq(a.user.email.as_str()),
                users::role.eq(a.user.role.as_str()),
                users::password_hash.eq(a.password_hash.as_str()),
                users::created_at.eq(to_pg(a.user.created_at)?),
                users::updated_at.eq(to_pg(a.user.updated_at)?),
            ))
            .execute(self.c)
            .map_err(pg_err)?;
        Ok(())
    }

    fn lock_account(&mut self, email: &Email) -> Result<Option<(Account, u64)>> {
        // Lock the admin rows (in email order) and the account: two admins demoting
        // each other at once serialize here, and the second sees the first's change
        // (at READ COMMITTED a locked row is re-read, and one no longer admin drops
        // out of the count).
        let admins: Vec<String> = users::table
            .filter(users::role.eq("admin"))
            .order(users::email)
            .select(users::email)
            .for_update()
            .load(self.c)
            .map_err(pg_err)?;
        let row: Option<UserRow> = users::table
            .find(email.as_str())
            .select(UserRow::as_select())
            .for_update()
            .first(self.c)
            .optional()
            .map_err(pg_err)?;
        match row {
            Some(r) => Ok(Some((r.record()?.into_account()?, admins.len() as u64))),
            None => Ok(None),
        }
    }

    fn update_user(&mut self, user: &User, hash: Option<&PasswordHash>) -> Result<()> {
        let n = diesel::sql_query(
            "UPDATE users SET role = $2, password_hash = COALESCE($3, password_hash), updated_at = $4 WHERE email = $1",
        )
        .bind::<Text, _>(user.email.as_str())
        .bind::<Text, _>(user.role.as_str())
        .bind::<diesel::sql_types::Nullable<Text>, _>(hash.map(|h| h.as_str()))
        .bind::<Timestamptz, _>(to_pg(user.updated_at)?)
        .execute(self.c)
        .map_err(pg_err)?;
        if n == 0 {
            return Err(Error::not_found("user", &user.email));
        }
        Ok(())
    }
}

/// A failed COMMIT: of unknown outcome when the connection broke (the server may have
/// written it), a plain failure when the server answered (it rolled back).
fn commit_failed(e: DieselError) -> Error {
    match e {
        DieselError::DatabaseError(DatabaseErrorKind::ClosedConnection | DatabaseErrorKind::UnableToSendCommand, _)
        | DieselError::BrokenTransactionManager => Error::Storage(StoreError::new(
            StoreErrorKind::OutcomeUnknown,
            format!("the connection failed during COMMIT, so whether it was written is unknown ({e})"),
            Some(Box::new(e)),
        )),
        other => pg_err(other),
    }
}

/// Runs `body` once in a transaction on `c`. A failure while committing that is not
/// the server's answer (the connection broke) leaves the outcome unknown; a refusal
/// by the server (a serialization failure at COMMIT) means nothing was written.
fn run_once(c: &mut PgConnection, body: &mut TxBody<'_>) -> Result<()> {
    use diesel::connection::TransactionManager;
    type Tm = <PgConnection as diesel::Connection>::TransactionManager;
    Tm::begin_transaction(c).map_err(pg_err)?;
    match body(&mut PgTx { c: &mut *c }) {
        Ok(Commit::Yes) => Tm::commit_transaction(c).map_err(|e| match e {
            // The commit failed and so did the rollback after it: judged by the commit.
            DieselError::RollbackErrorOnCommit { commit_error, .. } => commit_failed(*commit_error),
            other => commit_failed(other),
        }),
        Ok(Commit::No) => Tm::rollback_transaction(c).map_err(pg_err),
        Err(e) => {
            // A rollback that fails leaves the connection broken; the pool drops it.
            let _ = Tm::rollback_transaction(c);
            Err(e)
        }
    }
}

impl Store for PgStore {
    fn migrate(&self) -> Result<Vec<String>> {
        let mut c = self.conn()?;
        // Every CLI process migrates on start; when the schema is current that must be
        // two small queries, not a trip through the migration lock.
        if c.has_pending_migration(MIGRATIONS).is_ok_and(|pending| !pending) && !has_pending_steps(&mut c) {
            return Ok(Vec::new());
        }
        // Advisory lock: two processes migrating at once must not both apply a step.
        c.batch_execute(&format!("SELECT pg_advisory_lock({MIGRATION_LOCK})")).map_err(pg_err)?;
        let result = c
            .run_pending_migrations(MIGRATIONS)
            .map(|_| ())
            .map_err(|e| {
                Error::Storage(StoreError::new(StoreErrorKind::Schema, format!("migration failed: {e}"), None))
            })
            .and_then(|()| {
                // The steps a migration left for Rust, each in one transaction with the
                // removal of its marker, so a crash leaves it pending, never half done.
                let now = to_pg(Timestamp::now())?;
                c.transaction::<_, TxErr, _>(|c| {
                    let pending: Vec<String> =
                        diesel::sql_query("SELECT name FROM pending_steps WHERE name = 'normalize_emails' FOR UPDATE")
                            .load::<NameRow>(c)?
                            .into_iter()
                            .map(|r| r.name)
                            .collect();
                    if pending.is_empty() {
                        return Ok(Vec::new());
                    }
                    let notes = migrate_emails(&mut Rewrite { c, now })?;
                    diesel::sql_query("DELETE FROM pending_steps WHERE name = 'normalize_emails'").execute(c)?;
                    Ok(notes)
                })
                .map_err(tx_err)
            });
        c.batch_execute(&format!("SELECT pg_advisory_unlock({MIGRATION_LOCK})")).map_err(pg_err)?;
        result
    }

    fn ping(&self) -> Result<()> {
        self.read(|c| {
            c.batch_execute("SELECT 1 FROM events LIMIT 1")?;
            // A standby, or a database set read-only, answers reads but takes no writes.
            let row: ReadOnlyRow = diesel::sql_query(
                "SELECT (pg_is_in_recovery() OR current_setting('transaction_read_only') = 'on') AS read_only",
            )
            .get_result(c)?;
            if row.read_only {
                return Err(Error::Storage(StoreError::new(
                    StoreErrorKind::Unavailable,
                    "read-only: the PostgreSQL server takes no writes (a standby, or transaction_read_only is on)",
                    None,
                ))
                .into());
            }
            Ok(())
        })
    }

    fn event(&self, key: &EventKey, now: Timestamp) -> Result<Option<Event>> {
        self.read(|c| read_event(c, key, now))
    }

    fn list_events(&self, filter: &EventFilter, start: PageStart, fetch: u32, now: Timestamp) -> Result<Vec<Event>> {
        self.read(|c| {
            let mut q = diesel::sql_query(format!("SELECT {EVENT_COLS} FROM events e WHERE true"))
                .into_boxed::<Pg>()
                .bind::<Timestamptz, _>(to_pg(now)?);
            let mut n = 1;
            let mut next = || {
                n += 1;
                n
            };
            if let Some(t) = filter.starts_from {
                q = q.sql(format!(" AND e.starts_at >= ${}", next())).bind::<Timestamptz, _>(to_pg(t)?);
            }
            if let Some(t) = filter.starts_before {
                q = q.sql(format!(" AND e.starts_at < ${}", next())).bind::<Timestamptz, _>(to_pg(t)?);
            }
            for (m, op) in [(filter.min_price, ">="), (filter.max_price, "<=")] {
                if let Some(m) = m {
                    q = q.sql(format!(" AND e.currency = ${}", next())).bind::<Text, _>(m.currency().code().to_owned());
                    q = q.sql(format!(" AND e.price_minor {op} ${}", next())).bind::<Int8, _>(m.amount_minor());
                }
            }
            if let Some(s) = filter.status {
                q = q.sql(format!(" AND e.status = ${}", next())).bind::<Text, _>(s.as_str().to_owned());
            }
            if let Some(o) = &filter.organizer {
                q = q.sql(format!(" AND e.organizer = ${}", next())).bind::<Text, _>(o.as_str().to_owned());
            }
            let mut offset = 0i64;
            match start {
                PageStart::First => {}
                PageStart::Offset(o) => offset = i64::try_from(o).unwrap_or(i64::MAX),
                PageStart::After(cur) => {
                    let at = goticket_core::Timestamp::from_microsecond(cur.key)
                        .map_err(|_| Error::validation("cursor", "is not a cursor this server handed out"))?;
                    let (a, b) = (next(), next());
                    q = q
                        .sql(format!(" AND (e.starts_at, e.id) > (${a}, ${b})"))
                        .bind::<Timestamptz, _>(to_pg(at)?)
                        .bind::<SqlUuid, _>(cur.id);
                }
            }
            let (l, o) = (next(), next());
            q = q
                .sql(format!(" ORDER BY e.starts_at, e.id LIMIT ${l} OFFSET ${o}"))
                .bind::<Int8, _>(i64::from(fetch))
                .bind::<Int8, _>(offset);
            let rows: Vec<EventRow> = q.load(c)?;
            collect_rows(rows, |r| r.record()?.into_event())
        })
    }

    fn booking(&self, code: &BookingCode) -> Result<Option<Booking>> {
        self.read(|c| booking_by_code(c, code))
    }

    fn list_bookings(&self, filter: &BookingFilter, from: PageStart, max: u32, now: Timestamp) -> Result<Vec<Booking>> {
        self.read(|c| {
            let mut q = bookings::table.into_boxed::<Pg>();
            if let Some(e) = filter.event {
                q = q.filter(bookings::event_id.eq(e.as_uuid()));
            }
            if let Some(cu) = &filter.customer {
                q = q.filter(bookings::customer.eq(cu.as_str().to_owned()));
            }
            if let Some(o) = &filter.organizer {
                let theirs = events::table.filter(events::organizer.eq(o.as_str().to_owned())).select(events::id);
                q = q.filter(bookings::event_id.eq_any(theirs));
            }
            let now = to_pg(now)?;
            q = match filter.status {
                None => q,
                Some(BookingStatus::Held) => q.filter(bookings::status.eq("held")).filter(bookings::expires_at.gt(now)),
                Some(BookingStatus::Expired) => q.filter(
                    bookings::status.eq("expired").or(bookings::status.eq("held").and(bookings::expires_at.le(now))),
                ),
                Some(s) => q.filter(bookings::status.eq(s.as_str())),
            };
            let mut offset = 0;
            match from {
                PageStart::First => {}
                PageStart::Offset(o) => offset = i64::try_from(o).unwrap_or(i64::MAX),
                PageStart::After(cur) => q = q.filter(bookings::id.gt(cur.id)),
            }
            let rows: Vec<BookingRow> =
                q.order(bookings::id).limit(i64::from(max)).offset(offset).select(BookingRow::as_select()).load(c)?;
            with_tickets(c, rows)
        })
    }

    fn write(&self, retry: Retry, body: &mut TxBody<'_>) -> Result<()> {
        let mut attempt = 0;
        loop {
            let mut conn = self.conn()?;
            match run_once(&mut conn, body) {
                // A deadlock or serialization failure: the server rolled the attempt
                // back, so a body that reads what it decides on may run again.
                Err(Error::Storage(e))
                    if retry == Retry::Allowed
                        && e.kind() == StoreErrorKind::Busy
                        && attempt < self.options.max_retries =>
                {
                    attempt += 1;
                    std::thread::sleep(backoff(attempt));
                }
                other => return other,
            }
        }
    }

    fn account(&self, email: &Email) -> Result<Option<Account>> {
        self.read(|c| read_account(c, email))
    }

    fn list_users(&self) -> Result<Vec<User>> {
        self.read(|c| {
            let rows: Vec<UserRow> = users::table.order(users::email).select(UserRow::as_select()).load(c)?;
            collect_rows(rows, |r| r.record()?.into_account().map(|a| a.user))
        })
    }

    fn domain_events(&self, filter: &AuditFilter, after: i64, fetch: u32) -> Result<Vec<DomainEvent>> {
        // Every filter is a parameter; an absent one is NULL and matches everything.
        let rows: Vec<OutboxRow> = self.read(|c| {
            Ok(diesel::sql_query(format!(
                "SELECT {OUTBOX_COLS} FROM outbox
                 WHERE position > $1
                   AND ($2::uuid IS NULL OR event_id = $2)
                   AND ($3::text IS NULL OR (aggregate_type = 'booking' AND aggregate_id = $3))
                   AND ($4::text IS NULL OR actor = $4)
                   AND ($5::timestamptz IS NULL OR occurred_at >= $5)
                   AND ($6::text IS NULL OR event_id IN (SELECT id FROM events WHERE organizer = $6))
                 ORDER BY position LIMIT $7"
            ))
            .bind::<Int8, _>(after)
            .bind::<Nullable<SqlUuid>, _>(filter.event.map(|e| e.as_uuid()))
            .bind::<Nullable<Text>, _>(filter.booking.map(|b| b.to_string()))
            .bind::<Nullable<Text>, _>(filter.actor.as_ref().map(|a| a.as_str().to_owned()))
            .bind::<Nullable<Timestamptz>, _>(filter.since.map(to_pg).transpose()?)
            .bind::<Nullable<Text>, _>(filter.organizer.as_ref().map(|o| o.as_str().to_owned()))
            .bind::<Int8, _>(i64::from(fetch))
            .load(c)?)
        })?;
        rows.into_iter().map(OutboxRow::into_domain_event).collect()
    }

    fn relay_batch(&self, after: &RelayCursor, fetch: u32) -> Result<Vec<(RelayCursor, DomainEvent)>> {
        // Below the oldest running transaction's id every transaction has ended, so no
        // event can still appear there: reading up to it in (txid, position) order
        // never skips one that commits after a later position.
        let rows: Vec<RelayEventRow> = self.read(|c| {
            Ok(diesel::sql_query(format!(
                "SELECT txid::text::int8 AS tx, {OUTBOX_COLS} FROM outbox
                 WHERE (txid, position) > ($1::text::xid8, $2)
                   AND txid < pg_snapshot_xmin(pg_current_snapshot())
                 ORDER BY txid, position LIMIT $3"
            ))
            .bind::<Text, _>(after.tx.to_string())
            .bind::<Int8, _>(after.position)
            .bind::<Int8, _>(i64::from(fetch))
            .load(c)?)
        })?;
        rows.into_iter()
            .map(|r| {
                let position = r.event.position;
                Ok((RelayCursor { tx: r.tx, position }, r.event.into_domain_event()?))
            })
            .collect()
    }

    fn relay_state(&self, name: &str) -> Result<Option<RelayState>> {
        let rows: Vec<RelayRow> = self.read(|c| {
            Ok(diesel::sql_query(format!("SELECT {RELAY_COLS} FROM relay_state WHERE name = $1"))
                .bind::<Text, _>(name)
                .load(c)?)
        })?;
        rows.into_iter().next().map(RelayRow::state).transpose()
    }

    fn relay_backlog(&self, after: &RelayCursor) -> Result<(u64, Option<Timestamp>)> {
        let row: BacklogRow = self.read(|c| {
            // Counted up to a million: past that the figure says "at least", and the
            // count stays cheap however far behind the relay is.
            Ok(diesel::sql_query(
                "SELECT COUNT(*) AS n, MIN(occurred_at) AS oldest FROM (
                     SELECT occurred_at FROM outbox WHERE (txid, position) > ($1::text::xid8, $2)
                     ORDER BY txid, position LIMIT 1000000) later",
            )
            .bind::<Text, _>(after.tx.to_string())
            .bind::<Int8, _>(after.position)
            .get_result(c)?)
        })?;
        row.figures()
    }

    fn sales_report(&self, event: Option<EventId>, organizer: Option<&Email>, now: Timestamp) -> Result<Vec<SalesRow>> {
        self.read(|c| {
            let mut q = diesel::sql_query(format!(
                "SELECT {EVENT_COLS},
                   (SELECT COUNT(*) FROM bookings b WHERE b.event_id = e.id AND b.status = 'confirmed') AS confirmed,
                   (SELECT COUNT(*) FROM tickets t JOIN bookings b ON b.id = t.booking_id
                      WHERE b.event_id = e.id AND t.checked_in_at IS NOT NULL) AS checked_in
                 FROM events e WHERE true"
            ))
            .into_boxed::<Pg>()
            .bind::<Timestamptz, _>(to_pg(now)?);
            // Seats sold per unit price: sums of at most 10,000,000 seats, which cannot
            // overflow; core multiplies and adds them with checked arithmetic.
            let mut by_price = bookings::table
                .inner_join(events::table)
                .filter(bookings::status.eq("confirmed"))
                .group_by((bookings::event_id, bookings::unit_price_minor))
                .select((bookings::event_id, bookings::unit_price_minor, diesel::dsl::sum(bookings::quantity)))
                .into_boxed::<Pg>();
            let mut n = 1;
            if let Some(id) = event {
                n += 1;
                q = q.sql(format!(" AND e.id = ${n}")).bind::<SqlUuid, _>(id.as_uuid());
                by_price = by_price.filter(events::id.eq(id.as_uuid()));
            }
            if let Some(o) = organizer {
                n += 1;
                q = q.sql(format!(" AND e.organizer = ${n}")).bind::<Text, _>(o.as_str().to_owned());
                by_price = by_price.filter(events::organizer.eq(o.as_str().to_owned()));
            }
            let mut sold: HashMap<Uuid, Vec<(i64, i64)>> = HashMap::new();
            for (id, price, seats) in by_price.load::<(Uuid, i64, Option<i64>)>(c)? {
                sold.entry(id).or_default().push((price, seats.unwrap_or(0)));
            }
            let rows: Vec<SalesRowSql> = q.sql(" ORDER BY e.starts_at, e.id").load(c)?;
            collect_rows(rows, |r| {
                let parts = sold.remove(&r.event.id()).unwrap_or_default();
                r.event.record()?.into_sales_row(r.confirmed, r.checked_in, &parts)
            })
        })
    }

    fn pool_waits(&self) -> Option<PoolWaits> {
        Some(self.waits.snapshot())
    }

    fn seat_totals(&self, now: Timestamp) -> Result<SeatTotals> {
        // One scan of the events' counters; the overdue holds come from the partial
        // index of held bookings by expiry.
        let row: TotalsRow = self.read(|c| {
            Ok(diesel::sql_query(
                "SELECT (COALESCE(SUM(e.held), 0)
                         - (SELECT COALESCE(SUM(o.quantity), 0) FROM bookings o
                             WHERE o.status = 'held' AND o.expires_at <= $1))::int8 AS held,
                        COALESCE(SUM(e.sold), 0)::int8 AS sold
                   FROM events e",
            )
            .bind::<Timestamptz, _>(to_pg(now)?)
            .get_result(c)?)
        })?;
        SeatTotals::from_sums(row.held, row.sold)
    }
}

/// Counts the pool's checkouts, their waits and its timeouts.
#[derive(Debug)]
struct CountWaits(std::sync::Arc<PoolWaitCounter>);

impl diesel::r2d2::HandleEvent for CountWaits {
    fn handle_checkout(&self, event: diesel::r2d2::event::CheckoutEvent) {
        self.0.checked_out(event.duration());
    }
    fn handle_timeout(&self, _: diesel::r2d2::event::TimeoutEvent) {
        self.0.timed_out();
    }
}

#[derive(QueryableByName)]
struct TotalsRow {
    #[diesel(sql_type = diesel::sql_types::Int8)]
    held: i64,
    #[diesel(sql_type = diesel::sql_types::Int8)]
    sold: i64,
}

/// Whether a migration left a step for Rust to run (see [`PgStore::migrate`]). A
/// schema without the table has none.
fn has_pending_steps(c: &mut PgConnection) -> bool {
    diesel::sql_query("SELECT name FROM pending_steps LIMIT 1").load::<NameRow>(c).map_or(true, |r| !r.is_empty())
}

#[derive(QueryableByName)]
struct NameRow {
    #[diesel(sql_type = Text)]
    name: String,
}

#[derive(QueryableByName)]
struct ReadOnlyRow {
    #[diesel(sql_type = diesel::sql_types::Bool)]
    read_only: bool,
}

/// The email migration's storage primitives (core's `migrate_emails` runs the rule).
struct Rewrite<'a> {
    c: &'a mut PgConnection,
    now: time::OffsetDateTime,
}

impl EmailRewrite for Rewrite<'_> {
    fn accounts(&mut self) -> Result<Vec<StoredAccount>> {
        let rows: Vec<(String, time::OffsetDateTime)> =
            users::table.select((users::email, users::created_at)).load(self.c).map_err(pg_err)?;
        Ok(rows
            .into_iter()
            .map(|(email, t)| StoredAccount {
                email,
                created_at: Timestamp::from_microsecond(i64::try_from(t.unix_timestamp_nanos() / 1000).unwrap_or(0))
                    .unwrap_or(Timestamp::MIN),
            })
            .collect())
    }

    fn set_aside(&mut self, email: &str, reason: &str) -> Result<()> {
        diesel::sql_query(
            "INSERT INTO set_aside_accounts (email, role, password_hash, created_at, updated_at, set_aside_at, reason)
             SELECT email, role, password_hash, created_at, updated_at, $2, $3 FROM users WHERE email = $1",
        )
        .bind::<Text, _>(email)
        .bind::<Timestamptz, _>(self.now)
        .bind::<Text, _>(reason)
        .execute(self.c)
        .map_err(pg_err)?;
        diesel::delete(users::table.find(email)).execute(self.c).map_err(pg_err)?;
        Ok(())
    }

    fn rename_account(&mut self, from: &str, to: &Email) -> Result<()> {
        diesel::update(users::table.find(from)).set(users::email.eq(to.as_str())).execute(self.c).map_err(pg_err)?;
        Ok(())
    }

    fn addresses(&mut self, column: AddressColumn) -> Result<Vec<String>> {
        match column {
            AddressColumn::Organizer => events::table.select(events::organizer).distinct().load(self.c),
            AddressColumn::Customer => bookings::table.select(bookings::customer).distinct().load(self.c),
        }
        .map_err(pg_err)
    }

    fn rename_address(&mut self, column: AddressColumn, from: &str, to: &Email) -> Result<u64> {
        match column {
            AddressColumn::Organizer => {
                diesel::update(events::table.filter(events::organizer.eq(from)))
                    .set(events::organizer.eq(to.as_str()))
                    .execute(self.c)
                    .map_err(pg_err)?;
                Ok(0)
            }
            AddressColumn::Customer => {
                let dropped = diesel::sql_query(
                    "UPDATE bookings SET idempotency_key = NULL WHERE customer = $1
                       AND idempotency_key IN (SELECT idempotency_key FROM bookings
                                               WHERE customer = $2 AND idempotency_key IS NOT NULL)",
                )
                .bind::<Text, _>(from)
                .bind::<Text, _>(to.as_str())
                .execute(self.c)
                .map_err(pg_err)?;
                diesel::update(bookings::table.filter(bookings::customer.eq(from)))
                    .set(bookings::customer.eq(to.as_str()))
                    .execute(self.c)
                    .map_err(pg_err)?;
                Ok(dropped as u64)
            }
        }
    }
}
