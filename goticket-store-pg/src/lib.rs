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
use diesel::sql_types::{Array, Int4, Int8, Text, Timestamptz, Uuid as SqlUuid};
use diesel_migrations::{EmbeddedMigrations, MigrationHarness, embed_migrations};
use goticket_core::Role;
use goticket_core::booking::{BatchState, decide_reservation, plan_reservations, replay};
use goticket_core::error::{Error, Result, StoreError, StoreErrorKind};
use goticket_core::import::{
    ImportAction, ImportBooking, ImportEvent, ImportMode, ImportState, Refusals, SeenIds, plan_event_import,
    prepare_booking_import,
};
use goticket_core::records::TicketRecord;
use goticket_core::store::{DecideBooking, DecideCheckIn, DecideEvent, DecideUser, EventKey, SalesRow, Store};
use goticket_core::users::{Account, PasswordHash, User};
use goticket_core::users::{AddressColumn, EmailRewrite, StoredAccount, migrate_emails};
use goticket_core::{
    Booking, BookingCode, BookingFilter, BookingStatus, CheckIn, Email, Event, EventFilter, EventId, PageStart,
    Reservation, ReserveRequest, TicketSecret, Timestamp,
};
use uuid::Uuid;

use crate::rows::{
    BookingRow, CountRow, EVENT_COLS, EventChanges, EventRow, NewBookingRow, NewEventRow, NewTicketRow, SalesRowSql,
    TicketRow, UserRow, to_pg,
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
    /// Not a failure: roll back on purpose (a dry run).
    Rollback,
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

type Tx<T> = std::result::Result<T, TxErr>;

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

/// Converts a driver error into core's error, keeping the cause.
fn pg_err(e: DieselError) -> Error {
    let kind = match &e {
        _ if is_retryable(&e) => StoreErrorKind::Busy,
        DieselError::DatabaseError(DatabaseErrorKind::ClosedConnection | DatabaseErrorKind::UnableToSendCommand, _) => {
            StoreErrorKind::Unavailable
        }
        DieselError::DatabaseError(
            DatabaseErrorKind::UniqueViolation
            | DatabaseErrorKind::CheckViolation
            | DatabaseErrorKind::ForeignKeyViolation,
            _,
        ) => StoreErrorKind::Integrity,
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
        TxErr::Rollback => Error::Storage(StoreError::new(StoreErrorKind::Other, "transaction rolled back", None)),
    }
}

/// A chunk of an import, decided and written inside the import's transaction.
type ImportChunk<'a, R> = dyn FnMut(&mut PgConnection, Vec<R>, &mut Refusals) -> Tx<()> + 'a;

/// Rows an import decides and writes at a time.
const IMPORT_CHUNK: usize = 5000;

/// Reads what a chunk of an import needs (locking the events it may change), plans it
/// in core, writes the plan, and reports each row, counting the refusals.
fn import_chunk(
    c: &mut PgConnection,
    chunk: Vec<ImportEvent>,
    seen: &mut SeenIds,
    now: Timestamp,
    may_update: &dyn Fn(&Event) -> Result<()>,
    refusals: &mut Refusals,
    on_row: &mut dyn FnMut(u64, &Result<ImportAction>),
) -> Tx<()> {
    let mut state = ImportState::default();
    let keys: Vec<String> =
        chunk.iter().filter_map(|r| r.event.external_id.as_ref().map(|x| x.as_str().to_owned())).collect();
    let ids: Vec<Uuid> = keys.iter().filter_map(|k| Uuid::try_parse(k).ok()).collect();
    let found: Vec<EventRow> = diesel::sql_query(format!(
        "SELECT {EVENT_COLS} FROM events e WHERE e.external_id = ANY($2) OR e.id = ANY($3) FOR UPDATE"
    ))
    .bind::<Timestamptz, _>(to_pg(now)?)
    .bind::<Array<Text>, _>(&keys)
    .bind::<Array<SqlUuid>, _>(&ids)
    .load(c)?;
    for row in found {
        let e = row.record()?.into_event()?;
        let key = e.external_id.as_ref().map_or_else(|| e.id.to_string(), |x| x.as_str().to_owned());
        if let Some(slug) = &e.slug {
            state.slugs.insert(slug.clone(), e.id);
        }
        state.existing.insert(key, e);
    }
    let slugs: Vec<&str> = chunk.iter().filter_map(|r| r.event.slug.as_ref().map(|s| s.as_str())).collect();
    if !slugs.is_empty() {
        let taken: Vec<(Option<String>, Uuid)> =
            events::table.filter(events::slug.eq_any(&slugs)).select((events::slug, events::id)).load(c)?;
        for (slug, id) in taken {
            if let Some(Ok(slug)) = slug.map(|s| s.parse()) {
                state.slugs.insert(slug, EventId::from_uuid(id));
            }
        }
    }
    let plan = plan_event_import(chunk, state, seen, now, may_update);
    let rows = plan.inserts.iter().map(NewEventRow::from_event).collect::<Result<Vec<_>>>()?;
    if !rows.is_empty() {
        // COPY (binary): an import's inserts at bulk-load speed, inside the transaction.
        diesel::copy_from(events::table).from_insertable(&rows).execute(c)?;
    }
    for e in &plan.updates {
        write_event_fields(c, e)?;
    }
    for (line, outcome) in plan.outcomes {
        refusals.report(line, outcome, on_row);
    }
    Ok(())
}

fn unique_violation_on(e: &DieselError) -> Option<String> {
    match e {
        DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, info) => {
            Some(info.constraint_name().unwrap_or("unknown").to_owned())
        }
        _ => None,
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
            return Err(Error::validation(
                "db",
                format!("{} is not a postgres:// URL", goticket_core::error::shown(url)),
            ));
        }
        if database_name(url).is_none() {
            // libpq would fill in its defaults (a local socket, the user's own database)
            // and the first command would migrate there.
            return Err(Error::validation(
                "db",
                "the PostgreSQL URL names no database: give one, as in postgres://user@host/dbname",
            ));
        }
        let pool = Pool::builder()
            .max_size(options.max_connections)
            .min_idle(Some(0))
            .connection_timeout(options.checkout_timeout)
            .test_on_check_out(true)
            .build_unchecked(ConnectionManager::new(url));
        Ok(PgStore { pool, options })
    }

    fn conn(&self) -> Result<PooledConnection<Manager>> {
        self.pool.get().map_err(|e| {
            Error::Storage(StoreError::new(
                StoreErrorKind::Unavailable,
                format!("no PostgreSQL connection within {:?}", self.options.checkout_timeout),
                Some(Box::new(e)),
            ))
        })
    }

    /// Runs `f` in one transaction, re-running it (with growing pauses) after a
    /// deadlock or serialization failure. `f` may run more than once.
    fn write<T>(&self, mut f: impl FnMut(&mut PgConnection) -> Tx<T>) -> Result<T> {
        let mut attempt = 0;
        loop {
            let mut conn = self.conn()?;
            match conn.transaction::<T, TxErr, _>(|c| f(c)) {
                Ok(v) => return Ok(v),
                Err(TxErr::Db(e)) if is_retryable(&e) && attempt < self.options.max_retries => {
                    attempt += 1;
                    std::thread::sleep(backoff(attempt));
                }
                Err(e) => return Err(tx_err(e)),
            }
        }
    }

    /// The fallback path: one savepoint per request, so a collision fails only its own.
    fn reserve_each(&self, batch: &[ReserveRequest], now: Timestamp) -> Result<Vec<Result<Reservation>>> {
        self.write(|c| {
            // Lock every event of the batch up front, in id order: two batches touching
            // the same events always lock them in the same order.
            let ids: BTreeSet<EventId> = batch.iter().map(|r| r.event_id).collect();
            let mut events: HashMap<EventId, Option<Event>> = HashMap::new();
            for id in ids {
                let event = if lock_event(c, id)? {
                    expire_overdue(c, Some(id), now)?;
                    read_event(c, &EventKey::Id(id), now)?
                } else {
                    None
                };
                events.insert(id, event);
            }
            let mut out = Vec::with_capacity(batch.len());
            for req in batch {
                let Some(event) = events.get_mut(&req.event_id).and_then(|e| e.as_mut()) else {
                    out.push(Err(Error::not_found("event", req.event_id)));
                    continue;
                };
                // A nested transaction is a savepoint: a refusal undoes only this request.
                match c.transaction::<_, TxErr, _>(|c| reserve_one(c, req, event, now)) {
                    Ok(r) => {
                        if !r.replayed {
                            let q = r.booking.quantity.get();
                            *event = match r.booking.status {
                                BookingStatus::Held => event.clone().with_counters(event.held + q, event.sold),
                                _ => event.clone().with_counters(event.held, event.sold + q),
                            };
                        }
                        out.push(Ok(r));
                    }
                    Err(TxErr::Domain(Error::Storage(e))) => return Err(TxErr::Domain(Error::Storage(e))),
                    Err(TxErr::Domain(refusal)) => out.push(Err(refusal)),
                    Err(db) => return Err(db),
                }
            }
            Ok(out)
        })
    }

    /// Runs an import: pulls rows in chunks and hands each to `chunk` (which counts its
    /// refusals) inside one transaction (all-or-nothing, or a dry run that rolls back)
    /// or one transaction per batch. No retry loop: the rows are a stream that cannot
    /// be replayed; an interrupted batch import is completed by running it again.
    fn import_loop<R>(
        &self,
        rows: &mut dyn Iterator<Item = R>,
        mode: ImportMode,
        chunk: &mut ImportChunk<'_, R>,
    ) -> Result<()> {
        let mut conn = self.conn()?;
        let mut refusals = Refusals::default();
        match mode {
            ImportMode::Batches(n) => loop {
                let batch: Vec<R> = (&mut *rows).take(n.max(1)).collect();
                if batch.is_empty() {
                    return Ok(());
                }
                conn.transaction::<_, TxErr, _>(|c| {
                    let mut batch = batch.into_iter().peekable();
                    while batch.peek().is_some() {
                        chunk(c, batch.by_ref().take(IMPORT_CHUNK).collect(), &mut refusals)?;
                    }
                    Ok(())
                })
                .map_err(tx_err)?;
            },
            ImportMode::AllOrNothing | ImportMode::DryRun => {
                let result = conn.transaction::<_, TxErr, _>(|c| {
                    loop {
                        let rows: Vec<R> = (&mut *rows).take(IMPORT_CHUNK).collect();
                        if rows.is_empty() {
                            break;
                        }
                        chunk(c, rows, &mut refusals)?;
                    }
                    if mode == ImportMode::DryRun || refusals.count() > 0 { Err(TxErr::Rollback) } else { Ok(()) }
                });
                match result {
                    Ok(()) | Err(TxErr::Rollback) => match refusals.into_error() {
                        Some(e) if mode == ImportMode::AllOrNothing => Err(e),
                        _ => Ok(()),
                    },
                    Err(e) => Err(tx_err(e)),
                }
            }
        }
    }

    fn read<T>(&self, f: impl FnOnce(&mut PgConnection) -> Tx<T>) -> Result<T> {
        let mut conn = self.conn()?;
        f(&mut conn).map_err(tx_err)
    }
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

fn read_event(c: &mut PgConnection, key: &EventKey, now: Timestamp) -> Tx<Option<Event>> {
    let q = diesel::sql_query(format!("SELECT {EVENT_COLS} FROM events e WHERE "))
        .into_boxed::<Pg>()
        .bind::<Timestamptz, _>(to_pg(now)?);
    let row: Option<EventRow> = match key {
        EventKey::Id(id) => q.sql("e.id = $2").bind::<SqlUuid, _>(id.as_uuid()).get_result(c).optional()?,
        EventKey::Slug(s) => q.sql("e.slug = $2").bind::<Text, _>(s.as_str().to_owned()).get_result(c).optional()?,
    };
    Ok(row.map(|r| r.record()?.into_event()).transpose()?)
}

/// Locks the event's row for the rest of the transaction; false if it does not exist.
fn lock_event(c: &mut PgConnection, id: EventId) -> Tx<bool> {
    let found: Option<Uuid> = events::table.find(id.as_uuid()).select(events::id).for_update().first(c).optional()?;
    Ok(found.is_some())
}

/// Locks the events' rows in id order, the one order every writer uses, so writers
/// serialize per event without deadlocking each other.
fn lock_events(c: &mut PgConnection, ids: &[Uuid]) -> Tx<()> {
    events::table.filter(events::id.eq_any(ids)).order(events::id).select(events::id).for_update().load::<Uuid>(c)?;
    Ok(())
}

/// The event as it stands at `now`, its row locked and its overdue holds expired, for
/// a change decided in this transaction.
fn event_for_change(c: &mut PgConnection, id: EventId, now: Timestamp) -> Tx<Event> {
    if !lock_event(c, id)? {
        return Err(Error::not_found("event", id).into());
    }
    expire_overdue(c, Some(id), now)?;
    Ok(read_event(c, &EventKey::Id(id), now)?.ok_or_else(|| Error::not_found("event", id))?)
}

/// Expires overdue holds (of one event, or all) and releases their seats, in one
/// statement; returns how many bookings expired. The sweep of all events first locks
/// the events it will touch, in id order, as a reservation does (the one-event form
/// runs under its caller's lock), so a sweep and a sale never deadlock.
fn expire_overdue(c: &mut PgConnection, event: Option<EventId>, now: Timestamp) -> Tx<u64> {
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
             RETURNING event_id, quantity),
         per_event AS (SELECT event_id, SUM(quantity)::int4 AS q, COUNT(*) AS n FROM expired GROUP BY event_id),
         released AS (UPDATE events e SET held = e.held - p.q FROM per_event p WHERE e.id = p.event_id RETURNING 1)
         SELECT COALESCE(SUM(n), 0)::int8 AS n FROM per_event"
    );
    let q = diesel::sql_query(sql).into_boxed::<Pg>().bind::<Timestamptz, _>(to_pg(now)?);
    let q = match event {
        Some(id) => q.bind::<SqlUuid, _>(id.as_uuid()),
        None => q,
    };
    let row: CountRow = q.get_result(c)?;
    Ok(u64::try_from(row.n).unwrap_or(0))
}

fn load_tickets(c: &mut PgConnection, ids: &[Uuid]) -> Tx<HashMap<Uuid, Vec<TicketRecord>>> {
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

fn with_tickets(c: &mut PgConnection, rows: Vec<BookingRow>) -> Tx<Vec<Booking>> {
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
) -> Tx<Option<Booking>> {
    let row: Option<BookingRow> =
        filter(bookings::table.into_boxed()).select(BookingRow::as_select()).first(c).optional()?;
    Ok(match row {
        Some(r) => with_tickets(c, vec![r])?.pop(),
        None => None,
    })
}

fn booking_by_code(c: &mut PgConnection, code: &BookingCode) -> Tx<Option<Booking>> {
    let code = code.as_str().to_owned();
    booking_where(c, |q| q.filter(bookings::code.eq(code)))
}

/// Adds to an event's counters only if the seats fit; the CHECK constraints stand
/// behind it.
fn bump_counters(c: &mut PgConnection, event: EventId, held: i64, sold: i64) -> Tx<()> {
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

fn write_event_fields(c: &mut PgConnection, e: &Event) -> Tx<()> {
    let changes = EventChanges::from_event(e)?;
    let n = diesel::update(events::table.find(e.id.as_uuid()))
        .set(&changes)
        .execute(c)
        .map_err(|err| slug_conflict(err, e))?;
    if n != 1 {
        return Err(Error::not_found("event", e.id).into());
    }
    Ok(())
}

fn slug_conflict(err: DieselError, e: &Event) -> TxErr {
    if unique_violation_on(&err).is_some_and(|c| c.contains("slug")) {
        let slug = e.slug.as_ref().map(|s| s.as_str()).unwrap_or_default();
        return Error::conflict(format!("slug {slug:?} is already used by another event")).into();
    }
    err.into()
}

/// From this many bookings a batch is written with COPY rather than INSERT.
const COPY_THRESHOLD: usize = 32;

/// Inserts bookings and their tickets: one multi-row INSERT each for a small batch
/// (at most 31 bookings of at most 100 seats stay far under PostgreSQL's 65,535 bind
/// parameters), binary COPY for a big one. A unique collision is a conflict.
fn insert_bookings(c: &mut PgConnection, bookings: &[Booking]) -> Tx<()> {
    let collision = |err: DieselError| -> TxErr {
        match unique_violation_on(&err) {
            Some(name) if name.contains("idempotency") => {
                Error::conflict("a concurrent request used the same idempotency key").into()
            }
            Some(name) => Error::conflict(format!("{name} collision; please retry")).into(),
            None => err.into(),
        }
    };
    let rows = bookings.iter().map(NewBookingRow::from_booking).collect::<Result<Vec<_>>>()?;
    let tickets: Vec<NewTicketRow<'_>> =
        bookings.iter().flat_map(|b| b.tickets.iter().map(|t| NewTicketRow::new(b.id.as_uuid(), t))).collect();
    if rows.len() >= COPY_THRESHOLD {
        // Binary COPY inside the transaction: a big batch at bulk-load speed.
        diesel::copy_from(bookings::table).from_insertable(&rows).execute(c).map_err(collision)?;
        diesel::copy_from(tickets::table).from_insertable(&tickets).execute(c).map_err(collision)?;
        return Ok(());
    }
    if !rows.is_empty() {
        diesel::insert_into(bookings::table).values(&rows).execute(c).map_err(collision)?;
        diesel::insert_into(tickets::table).values(&tickets).execute(c).map_err(collision)?;
    }
    Ok(())
}

fn reserve_one(c: &mut PgConnection, req: &ReserveRequest, event: &Event, now: Timestamp) -> Tx<Reservation> {
    if let Some(key) = &req.idempotency_key {
        let (customer, key) = (req.customer.as_str().to_owned(), key.as_str().to_owned());
        let existing =
            booking_where(c, |q| q.filter(bookings::customer.eq(customer)).filter(bookings::idempotency_key.eq(key)))?;
        if let Some(existing) = existing {
            return Ok(replay(req, existing, now)?);
        }
    }
    let already: i64 = match event.max_per_customer {
        Some(_) => bookings::table
            .filter(bookings::event_id.eq(req.event_id.as_uuid()))
            .filter(bookings::customer.eq(req.customer.as_str()))
            .filter(bookings::status.eq_any(["held", "confirmed"]))
            .select(diesel::dsl::sum(bookings::quantity))
            .first::<Option<i64>>(c)?
            .unwrap_or(0),
        None => 0,
    };
    let booking = decide_reservation(req, event, u32::try_from(already).unwrap_or(u32::MAX), now)?;
    insert_bookings(c, std::slice::from_ref(&booking))?;
    let q = i64::from(booking.quantity.get());
    match booking.status {
        BookingStatus::Held => bump_counters(c, event.id, q, 0)?,
        _ => bump_counters(c, event.id, 0, q)?,
    }
    Ok(Reservation { booking, replayed: false })
}

/// The batch path: a few queries to read what the batch needs, core's plan, and bulk
/// writes, so a batch of a hundred costs about what a batch of one does.
fn reserve_planned(c: &mut PgConnection, batch: &[ReserveRequest], now: Timestamp) -> Tx<Vec<Result<Reservation>>> {
    let mut state = BatchState::default();
    // Lock first, then read. The lock takes the batch's events in id order (two
    // batches touching the same events lock them alike). The read is a statement of
    // its own, so at READ COMMITTED it sees everything committed before the lock was
    // granted: a read in the locking statement itself would recheck the event row but
    // evaluate the overdue-hold sum on the snapshot from before the wait, and count a
    // sweep that committed meanwhile twice.
    let ids: Vec<Uuid> = batch.iter().map(|r| r.event_id.as_uuid()).collect::<BTreeSet<_>>().into_iter().collect();
    lock_events(c, &ids)?;
    let rows: Vec<EventRow> = diesel::sql_query(format!("SELECT {EVENT_COLS} FROM events e WHERE e.id = ANY($2)"))
        .bind::<Timestamptz, _>(to_pg(now)?)
        .bind::<Array<SqlUuid>, _>(&ids)
        .load(c)?;
    for row in rows {
        let overdue = row.has_overdue_holds();
        let event = row.record()?.into_event()?;
        if overdue {
            expire_overdue(c, Some(event.id), now)?;
        }
        state.events.insert(event.id, event);
    }
    let external: Vec<&str> = batch.iter().filter_map(|r| r.external_id.as_ref().map(|x| x.as_str())).collect();
    if !external.is_empty() {
        let rows: Vec<BookingRow> =
            bookings::table.filter(bookings::external_id.eq_any(&external)).select(BookingRow::as_select()).load(c)?;
        for b in with_tickets(c, rows)? {
            if let Some(x) = b.external_id.clone() {
                state.by_external.insert(x, b);
            }
        }
    }
    let keyed: Vec<&ReserveRequest> = batch.iter().filter(|r| r.idempotency_key.is_some()).collect();
    if !keyed.is_empty() {
        let customers: Vec<&str> = keyed.iter().map(|r| r.customer.as_str()).collect();
        let keys: Vec<&str> = keyed.iter().filter_map(|r| r.idempotency_key.as_ref().map(|k| k.as_str())).collect();
        let rows: Vec<BookingRow> = bookings::table
            .filter(bookings::customer.eq_any(customers))
            .filter(bookings::idempotency_key.eq_any(keys))
            .select(BookingRow::as_select())
            .load(c)?;
        for b in with_tickets(c, rows)? {
            if let Some(k) = b.idempotency_key.clone() {
                state.by_key.insert((b.customer.clone(), k), b);
            }
        }
    }
    let limited: Vec<Uuid> =
        state.events.values().filter(|e| e.max_per_customer.is_some()).map(|e| e.id.as_uuid()).collect();
    if !limited.is_empty() {
        let customers: Vec<&str> =
            batch.iter().filter(|r| limited.contains(&r.event_id.as_uuid())).map(|r| r.customer.as_str()).collect();
        let rows: Vec<(Uuid, String, Option<i64>)> = bookings::table
            .filter(bookings::event_id.eq_any(&limited))
            .filter(bookings::customer.eq_any(customers))
            .filter(bookings::status.eq_any(["held", "confirmed"]))
            .group_by((bookings::event_id, bookings::customer))
            .select((bookings::event_id, bookings::customer, diesel::dsl::sum(bookings::quantity)))
            .load(c)?;
        for (event, customer, seats) in rows {
            let seats = u32::try_from(seats.unwrap_or(0)).unwrap_or(u32::MAX);
            state.seats_by_customer.insert((EventId::from_uuid(event), customer.parse()?), seats);
        }
    }
    let plan = plan_reservations(batch, state, now);
    insert_bookings(c, &plan.inserts)?;
    for (id, held, sold) in &plan.deltas {
        bump_counters(c, *id, *held, *sold)?;
    }
    Ok(plan.outcomes)
}

/// An event named by an import row: its id, else its external id, else its slug.
/// A UUID that is no event's id may still be an external id: an export names an event
/// that had none by its id, and importing that export into another store keeps the id
/// as the new event's external id.
fn resolve_event(c: &mut PgConnection, raw: &str, now: Timestamp) -> Tx<Option<Event>> {
    if let Ok(id) = raw.parse::<EventId>()
        && let Some(e) = read_event(c, &EventKey::Id(id), now)?
    {
        return Ok(Some(e));
    }
    let found: Option<EventRow> =
        diesel::sql_query(format!("SELECT {EVENT_COLS} FROM events e WHERE e.external_id = $2"))
            .bind::<Timestamptz, _>(to_pg(now)?)
            .bind::<Text, _>(raw)
            .get_result(c)
            .optional()?;
    if let Some(row) = found {
        return Ok(Some(row.record()?.into_event()?));
    }
    match raw.parse::<goticket_core::Slug>() {
        Ok(slug) => read_event(c, &EventKey::Slug(slug), now),
        Err(_) => Ok(None),
    }
}

/// A bookings-import chunk: core resolves and authorizes the rows (with this store's
/// event lookup), the store reserves them as one planned batch, core reports.
fn import_bookings_chunk(
    c: &mut PgConnection,
    chunk: Vec<ImportBooking>,
    now: Timestamp,
    may_book: &dyn Fn(&Event, &Email) -> Result<()>,
    refusals: &mut Refusals,
    on_row: &mut dyn FnMut(u64, &Result<ImportAction>),
) -> Tx<()> {
    let plan = prepare_booking_import(chunk, &mut |raw| resolve_event(c, raw, now).map_err(tx_err), may_book)?;
    let results = reserve_planned(c, &plan.batch, now)?;
    plan.finish(results, refusals, on_row);
    Ok(())
}

fn read_account(c: &mut PgConnection, email: &Email) -> Tx<Option<Account>> {
    let row: Option<UserRow> = users::table.find(email.as_str()).select(UserRow::as_select()).first(c).optional()?;
    Ok(row.map(|r| r.record()?.into_account()).transpose()?)
}

fn collect_rows<T, R>(rows: Vec<R>, mut f: impl FnMut(R) -> Result<T>) -> Tx<Vec<T>> {
    rows.into_iter().map(|r| f(r).map_err(TxErr::Domain)).collect()
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

    fn insert_event(&self, e: &Event) -> Result<()> {
        self.write(|c| {
            diesel::insert_into(events::table)
                .values(NewEventRow::from_event(e)?)
                .execute(c)
                .map_err(|err| slug_conflict(err, e))?;
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

    fn update_event(&self, id: EventId, now: Timestamp, decide: DecideEvent<'_>) -> Result<Event> {
        self.write(|c| {
            let next = decide(&event_for_change(c, id, now)?)?;
            write_event_fields(c, &next)?;
            Ok(next)
        })
    }

    fn cancel_event(&self, id: EventId, now: Timestamp, decide: DecideEvent<'_>) -> Result<Event> {
        self.write(|c| {
            let next = decide(&event_for_change(c, id, now)?)?;
            diesel::update(
                bookings::table
                    .filter(bookings::event_id.eq(id.as_uuid()))
                    .filter(bookings::status.eq_any(["held", "confirmed"])),
            )
            .set((bookings::status.eq("cancelled"), bookings::updated_at.eq(to_pg(now)?)))
            .execute(c)?;
            diesel::update(events::table.find(id.as_uuid()))
                .set((events::held.eq(0), events::sold.eq(0)))
                .execute(c)?;
            write_event_fields(c, &next)?;
            Ok(next)
        })
    }

    fn reserve(&self, batch: &[ReserveRequest], now: Timestamp) -> Result<Vec<Result<Reservation>>> {
        match self.write(|c| reserve_planned(c, batch, now)) {
            // A unique key collided while writing the plan (a booking code, a ticket
            // secret, a concurrent idempotency key): nothing was written; run the batch
            // one request at a time so the collision fails only its own request.
            Err(Error::Conflict { .. }) => self.reserve_each(batch, now),
            other => other,
        }
    }

    fn booking(&self, code: &BookingCode) -> Result<Option<Booking>> {
        self.read(|c| booking_by_code(c, code))
    }

    fn list_bookings(
        &self,
        filter: &BookingFilter,
        start: PageStart,
        fetch: u32,
        now: Timestamp,
    ) -> Result<Vec<Booking>> {
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
            match start {
                PageStart::First => {}
                PageStart::Offset(o) => offset = i64::try_from(o).unwrap_or(i64::MAX),
                PageStart::After(cur) => q = q.filter(bookings::id.gt(cur.id)),
            }
            let rows: Vec<BookingRow> =
                q.order(bookings::id).limit(i64::from(fetch)).offset(offset).select(BookingRow::as_select()).load(c)?;
            with_tickets(c, rows)
        })
    }

    fn transition_booking(&self, code: &BookingCode, now: Timestamp, decide: DecideBooking<'_>) -> Result<Booking> {
        self.write(|c| {
            let before = booking_by_code(c, code)?.ok_or_else(|| Error::not_found("booking", code))?;
            lock_event(c, before.event_id)?;
            expire_overdue(c, Some(before.event_id), now)?;
            let mut booking = booking_by_code(c, code)?.unwrap_or(before);
            let event = read_event(c, &EventKey::Id(booking.event_id), now)?
                .ok_or_else(|| Error::not_found("event", booking.event_id))?;
            let t = decide(&booking, &event)?;
            let n = diesel::update(
                bookings::table.find(booking.id.as_uuid()).filter(bookings::status.eq(booking.status.as_str())),
            )
            .set((bookings::status.eq(t.to.as_str()), bookings::updated_at.eq(to_pg(now)?)))
            .execute(c)?;
            if n != 1 {
                return Err(Error::conflict(format!("booking {code} changed concurrently; retry")).into());
            }
            bump_counters(c, event.id, t.held_delta, t.sold_delta)?;
            booking.status = t.to;
            booking.updated_at = now;
            Ok(booking)
        })
    }

    fn check_in(&self, secret: &TicketSecret, now: Timestamp, decide: DecideCheckIn<'_>) -> Result<CheckIn> {
        self.write(|c| {
            let found: Option<(Uuid, i32)> = tickets::table
                .filter(tickets::secret.eq(secret.as_str()))
                .select((tickets::booking_id, tickets::seq))
                .first(c)
                .optional()?;
            let (booking_id, seq) = found.ok_or_else(|| Error::not_found("ticket", "with that secret"))?;
            // A scan and a cancel of the same booking serialize on its event's row (a
            // cancel locks it too), so a cancel never misses a scan that committed.
            let event_id: Uuid = bookings::table.find(booking_id).select(bookings::event_id).first(c)?;
            lock_event(c, EventId::from_uuid(event_id))?;
            let booking = booking_where(c, |q| q.filter(bookings::id.eq(booking_id)))?
                .ok_or_else(|| Error::not_found("booking", booking_id))?;
            let ticket = booking
                .tickets
                .iter()
                .find(|t| i64::from(t.seq) == i64::from(seq))
                .ok_or_else(|| Error::not_found("ticket", "with that secret"))?;
            let event = read_event(c, &EventKey::Id(booking.event_id), now)?
                .ok_or_else(|| Error::not_found("event", booking.event_id))?;
            decide(&booking, ticket, &event)?;
            let n = diesel::update(
                tickets::table
                    .filter(tickets::booking_id.eq(booking_id))
                    .filter(tickets::seq.eq(seq))
                    .filter(tickets::checked_in_at.is_null()),
            )
            .set(tickets::checked_in_at.eq(to_pg(now)?))
            .execute(c)?;
            if n != 1 {
                return Err(Error::conflict("ticket was checked in concurrently").into());
            }
            Ok(CheckIn::of(&booking, ticket, &event, now))
        })
    }

    fn expire_holds(&self, now: Timestamp) -> Result<u64> {
        self.write(|c| expire_overdue(c, None, now))
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
        self.import_loop(rows, mode, &mut |c, chunk, refusals| {
            import_chunk(c, chunk, &mut seen, now, may_update, refusals, &mut *on_row)
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
        self.import_loop(rows, mode, &mut |c, chunk, refusals| {
            import_bookings_chunk(c, chunk, now, may_book, refusals, &mut *on_row)
        })
    }

    fn insert_user(&self, a: &Account) -> Result<()> {
        self.write(|c| {
            diesel::insert_into(users::table)
                .values((
                    users::email.eq(a.user.email.as_str()),
                    users::role.eq(a.user.role.as_str()),
                    users::password_hash.eq(a.password_hash.as_str()),
                    users::created_at.eq(to_pg(a.user.created_at)?),
                    users::updated_at.eq(to_pg(a.user.updated_at)?),
                ))
                .execute(c)
                .map_err(|e| match unique_violation_on(&e) {
                    Some(_) => TxErr::Domain(Error::conflict(format!("a user {} already exists", a.user.email))),
                    None => TxErr::Db(e),
                })?;
            Ok(())
        })
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

    fn update_user(
        &self,
        email: &Email,
        hash: Option<&PasswordHash>,
        now: Timestamp,
        decide: DecideUser<'_>,
    ) -> Result<User> {
        self.write(|c| {
            // Lock the admin rows (in email order) and the account: two admins demoting
            // each other at once serialize here, and the second sees the first's change
            // (at READ COMMITTED a locked row is re-read, and one no longer admin drops
            // out of the count).
            let admins: Vec<String> = users::table
                .filter(users::role.eq("admin"))
                .order(users::email)
                .select(users::email)
                .for_update()
                .load(c)?;
            let row: Option<UserRow> =
                users::table.find(email.as_str()).select(UserRow::as_select()).for_update().first(c).optional()?;
            let current = row.ok_or_else(|| Error::not_found("user", email))?.record()?.into_account()?;
            let role: Option<Role> = decide(&current.user, admins.len() as u64)?;
            let n = diesel::sql_query(
                "UPDATE users SET role = COALESCE($2, role), password_hash = COALESCE($3, password_hash),
                   updated_at = $4 WHERE email = $1",
            )
            .bind::<Text, _>(email.as_str())
            .bind::<diesel::sql_types::Nullable<Text>, _>(role.map(|r| r.as_str()))
            .bind::<diesel::sql_types::Nullable<Text>, _>(hash.map(|h| h.as_str()))
            .bind::<Timestamptz, _>(to_pg(now)?)
            .execute(c)?;
            if n == 0 {
                return Err(Error::not_found("user", email).into());
            }
            Ok(read_account(c, email)?.ok_or_else(|| Error::not_found("user", email))?.user)
        })
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
