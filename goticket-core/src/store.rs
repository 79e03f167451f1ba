//! The storage contract every backend implements: reads, and one way to run a write
//! transaction.
//!
//! A store is storage, not use cases. Its reads report state as of a given `now`
//! (holds past their expiry count as expired). Its one write method,
//! [`Store::write`], runs a body from core's [`crate::engine`] inside a transaction and
//! hands it a [`Tx`]: a small set of primitives (lock events, find bookings, insert in
//! bulk, move counters, set statuses). Every rule is decided by that body, so each use
//! case is written once, and a backend needs SQL and row mapping and nothing else.
//! Constructors are inherent methods of each store, not part of this trait.

use std::fmt;

use jiff::Timestamp;
use serde::Serialize;

use crate::booking::{Booking, BookingStatus};
use crate::error::Result;
use crate::event::{Event, EventStatus};
use crate::money::Money;
use crate::outbox::{AggregateRef, AuditFilter, BookingChange, DomainEvent, RelayCursor, RelayState};
use crate::query::{BookingFilter, EventFilter, PageStart};
use crate::types::{BookingCode, BookingId, Email, EventId, ExternalId, IdempotencyKey, Slug, TicketSecret};
use crate::users::{Account, PasswordHash, User};

/// How an event is named in a request: by id or by slug.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum EventKey {
    /// By id.
    Id(EventId),
    /// By slug.
    Slug(Slug),
}

impl std::str::FromStr for EventKey {
    type Err = crate::Error;
    /// A UUID is an id; anything else must be a slug.
    fn from_str(raw: &str) -> Result<Self> {
        if let Ok(id) = raw.parse::<EventId>() {
            return Ok(EventKey::Id(id));
        }
        raw.parse::<Slug>().map(EventKey::Slug).map_err(|_| {
            crate::Error::validation("event", format!("{} is neither an event id nor a slug", crate::error::shown(raw)))
        })
    }
}

impl fmt::Display for EventKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EventKey::Id(id) => id.fmt(f),
            EventKey::Slug(s) => s.fmt(f),
        }
    }
}

/// One event's sales figures, as of the report's `now`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SalesRow {
    /// The event.
    pub event_id: EventId,
    /// Its slug.
    pub slug: Option<Slug>,
    /// Its name.
    pub name: String,
    /// Its start.
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub starts_at: Timestamp,
    /// Its status.
    pub status: EventStatus,
    /// Seats in total.
    pub capacity: u32,
    /// Seats in live holds.
    pub held: u32,
    /// Seats sold.
    pub sold: u32,
    /// Seats left.
    pub available: u32,
    /// Confirmed bookings.
    pub confirmed_bookings: u64,
    /// Tickets scanned at the door.
    pub checked_in: u64,
    /// Sum of confirmed bookings' prices.
    pub revenue: Money,
}

impl SalesRow {
    /// The row of `e` (read as of the report's time), given its confirmed bookings, its
    /// checked-in tickets and its sold seats per unit price (minor units). Revenue is
    /// summed exactly; a sum past what [`Money`] holds is an integrity error.
    pub fn of(e: Event, confirmed_bookings: u64, checked_in: u64, seats_by_price: &[(i64, i64)]) -> Result<Self> {
        let total = seats_by_price
            .iter()
            .try_fold(0i128, |sum, &(price, seats)| sum.checked_add(i128::from(price).checked_mul(i128::from(seats))?));
        let too_big = || {
            crate::Error::Storage(crate::StoreError::new(
                crate::StoreErrorKind::Integrity,
                format!("the sales of event {} exceed the largest amount a report can show", e.id),
                None,
            ))
        };
        let revenue_minor = total.and_then(|t| i64::try_from(t).ok()).ok_or_else(too_big)?;
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
            confirmed_bookings,
            checked_in,
            revenue: Money::new(revenue_minor, e.price.currency()).map_err(|_| too_big())?,
        })
    }
}

/// Whether a write transaction's body wants its work kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Commit {
    /// Commit.
    Yes,
    /// Roll back (a dry run, a read that needed locks).
    No,
}

/// Whether a store may run a write body again after a deadlock or serialization
/// failure (the server rolled the attempt back, so a re-run is safe).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retry {
    /// The body can run again: it reads everything it decides on inside the transaction.
    Allowed,
    /// The body consumes a stream (an import) and cannot run twice.
    Never,
}

/// A write transaction's body: runs inside the transaction and says whether to commit.
/// It may run more than once (see [`Retry`]).
pub type TxBody<'a> = dyn FnMut(&mut dyn Tx) -> Result<Commit> + 'a;

/// A per-event change of the counters, in seats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CounterDelta {
    /// The event.
    pub event: EventId,
    /// Change to `held`.
    pub held: i64,
    /// Change to `sold`.
    pub sold: i64,
}

/// Seats over every event, as of a time: in live holds, and sold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct SeatTotals {
    /// Seats in holds that have not expired.
    pub held: u64,
    /// Seats sold.
    pub sold: u64,
}

/// How long callers have waited for a database connection: a checkout from a pool
/// (PostgreSQL), or the one writer connection (SQLite). Counts since the store opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct PoolWaits {
    /// Connections handed out.
    pub checkouts: u64,
    /// Time spent waiting for them, in microseconds, in total.
    pub waited_micros: u64,
    /// Waits that gave up (the pool's checkout timeout).
    pub timeouts: u64,
}

/// Counts [`PoolWaits`] for a store; lock-free, shareable between threads.
#[derive(Debug, Default)]
pub struct PoolWaitCounter {
    checkouts: std::sync::atomic::AtomicU64,
    waited_micros: std::sync::atomic::AtomicU64,
    timeouts: std::sync::atomic::AtomicU64,
}

impl PoolWaitCounter {
    /// A connection was handed out after `waited`.
    pub fn checked_out(&self, waited: std::time::Duration) {
        use std::sync::atomic::Ordering::Relaxed;
        self.checkouts.fetch_add(1, Relaxed);
        self.waited_micros.fetch_add(u64::try_from(waited.as_micros()).unwrap_or(u64::MAX), Relaxed);
    }

    /// A wait gave up.
    pub fn timed_out(&self) {
        self.timeouts.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    /// The counts so far.
    pub fn snapshot(&self) -> PoolWaits {
        use std::sync::atomic::Ordering::Relaxed;
        PoolWaits {
            checkouts: self.checkouts.load(Relaxed),
            waited_micros: self.waited_micros.load(Relaxed),
            timeouts: self.timeouts.load(Relaxed),
        }
    }
}

impl SeatTotals {
    /// The totals from a store's signed sums; a negative one means corrupt counters,
    /// an integrity error.
    pub fn from_sums(held: i64, sold: i64) -> Result<Self> {
        let count = |n: i64, what: &str| {
            u64::try_from(n).map_err(|_| {
                crate::Error::Storage(crate::StoreError::new(
                    crate::StoreErrorKind::Integrity,
                    format!("the {what} seats over every event add up to {n}"),
                    None,
                ))
            })
        };
        Ok(SeatTotals { held: count(held, "held")?, sold: count(sold, "sold")? })
    }
}

/// A goticket storage backend. Sync, object-safe, shareable between threads.
///
/// Every reading method takes `now` and reports state as of then: holds past their
/// expiry count as expired (not held) even before a sweeper has written that.
pub trait Store: Send + Sync + fmt::Debug {
    /// Brings the schema up to date; safe to call concurrently and repeatedly. Returns
    /// notes for the operator about what a migration did to existing data (accounts
    /// set aside by the email normalization); empty when there is nothing to say.
    fn migrate(&self) -> Result<Vec<String>>;

    /// Checks that the store answers and can take writes (for readiness probes): a
    /// read-only database or a full disk is not ready.
    fn ping(&self) -> Result<()>;

    /// Makes what was committed durable in the store's own files before the process
    /// ends (SQLite merges its write-ahead log into the database file, so a copy of
    /// that file alone is complete). Writes may still follow. Nothing to do by default.
    fn close(&self) -> Result<()> {
        Ok(())
    }

    /// Reads one event.
    fn event(&self, key: &EventKey, now: Timestamp) -> Result<Option<Event>>;

    /// Lists events ordered by `(starts_at, id)`, returning at most `fetch` items.
    fn list_events(&self, filter: &EventFilter, start: PageStart, fetch: u32, now: Timestamp) -> Result<Vec<Event>>;

    /// Reads one booking with its tickets, as stored (the service applies `at(now)`).
    fn booking(&self, code: &BookingCode) -> Result<Option<Booking>>;

    /// Lists bookings ordered by id, at most `fetch` items.
    fn list_bookings(&self, filter: &BookingFilter, from: PageStart, max: u32, now: Timestamp) -> Result<Vec<Booking>>;

    /// Reads one account.
    fn account(&self, email: &Email) -> Result<Option<Account>>;

    /// All users, by email.
    fn list_users(&self) -> Result<Vec<User>>;

    /// Sales figures for one event or, with `None`, all events (of `organizer`, if set),
    /// ordered by start time.
    fn sales_report(&self, event: Option<EventId>, organizer: Option<&Email>, now: Timestamp) -> Result<Vec<SalesRow>>;

    /// Seats held (overdue holds not counted) and sold over every event, as of `now`:
    /// the sums of [`Store::sales_report`]'s `held` and `sold`, which is what this
    /// default computes. A store overrides it with one aggregate query.
    fn seat_totals(&self, now: Timestamp) -> Result<SeatTotals> {
        let rows = self.sales_report(None, None, now)?;
        Ok(rows.iter().fold(SeatTotals::default(), |t, r| SeatTotals {
            held: t.held + u64::from(r.held),
            sold: t.sold + u64::from(r.sold),
        }))
    }

    /// Domain events matching `filter` with a position after `after`, in position
    /// order, at most `fetch` of them (the audit log, and what a relay publishes).
    fn domain_events(&self, filter: &AuditFilter, after: i64, fetch: u32) -> Result<Vec<DomainEvent>>;

    /// The next events a relay may publish after `after`, in publishing order, at most
    /// `fetch`: only events whose transaction committed, and never one that a
    /// transaction still running could come before (see [`RelayCursor`]).
    fn relay_batch(&self, after: &RelayCursor, fetch: u32) -> Result<Vec<(RelayCursor, DomainEvent)>>;

    /// A relay's row, if it ever ran.
    fn relay_state(&self, name: &str) -> Result<Option<RelayState>>;

    /// How many committed events come after `after`, and when the oldest happened.
    fn relay_backlog(&self, after: &RelayCursor) -> Result<(u64, Option<Timestamp>)>;

    /// How long callers have waited for connections, if the store counts it.
    fn pool_waits(&self) -> Option<PoolWaits> {
        None
    }

    /// Runs `body` in one write transaction, committed when it returns
    /// `Ok(Commit::Yes)` and rolled back otherwise. With [`Retry::Allowed`], a deadlock
    /// or serialization failure runs the body again (bounded); that retry lives here,
    /// once per store. A failure while committing is reported as
    /// [`crate::StoreErrorKind::OutcomeUnknown`], never retried.
    fn write(&self, retry: Retry, body: &mut TxBody<'_>) -> Result<()>;
}

/// The primitives a write transaction offers core's use cases. Each is one statement
/// (or a fixed few) whatever the number of items it is given, so a batch costs a fixed
/// number of round trips. Reads see the transaction's own writes.
///
/// Errors: a unique value taken by a concurrent writer or a random key drawn twice is
/// [`crate::Error::Collision`] (nothing kept; safe to re-run), a taken slug or email is
/// [`crate::Error::Conflict`], a broken guard is an integrity [`crate::StoreError`].
/// Each store classifies its driver's constraint errors in one function.
pub trait Tx {
    /// Locks the events' rows, in id order (the one order every writer uses, so writers
    /// serialize per event without deadlocking), expires their overdue holds (releasing
    /// the seats), and returns them as of `now`, with the holds it expired. Unknown ids
    /// are left out.
    fn lock_events(&mut self, ids: &[EventId], now: Timestamp) -> Result<Locked>;

    /// The events whose external id, or whose id written as text (an export names an
    /// event without an external id by its id), is one of `keys`, as of `now`; not
    /// locked (lock them by id, in id order, to change them).
    fn find_events(&mut self, keys: &[String], now: Timestamp) -> Result<Vec<Event>>;

    /// The event with this slug, if any (not locked: lock it by id to change it).
    fn event_by_slug(&mut self, slug: &Slug, now: Timestamp) -> Result<Option<Event>>;

    /// Which events hold these slugs.
    fn slug_owners(&mut self, slugs: &[Slug]) -> Result<Vec<(Slug, EventId)>>;

    /// Inserts new events with zero counters. A taken slug is a conflict.
    fn insert_events(&mut self, events: &[Event]) -> Result<()>;

    /// Writes an event's fields and status (not its counters). A taken slug is a
    /// conflict; an unknown id is not found.
    fn update_event(&mut self, event: &Event) -> Result<()>;

    /// Adds to events' counters, each under a guard (`0 <= held`, `0 <= sold`,
    /// `held + sold <= capacity`); a guard that refuses is an integrity error.
    fn add_to_counters(&mut self, deltas: &[CounterDelta]) -> Result<()>;

    /// Marks every overdue hold of every event expired and releases its seats, locking
    /// the events it touches in id order; returns the bookings it expired.
    fn expire_all_holds(&mut self, now: Timestamp) -> Result<Vec<BookingChange>>;

    /// Marks every live booking of the event cancelled (counters untouched); returns
    /// them.
    fn cancel_live_bookings(&mut self, event: EventId, now: Timestamp) -> Result<Vec<BookingChange>>;

    /// Bookings by id, with their tickets.
    fn bookings_by_id(&mut self, ids: &[BookingId]) -> Result<Vec<Booking>>;

    /// Bookings by customer and retry key, with their tickets.
    fn bookings_by_key(&mut self, keys: &[(Email, IdempotencyKey)]) -> Result<Vec<Booking>>;

    /// Bookings by external id, with their tickets.
    fn bookings_by_external_id(&mut self, ids: &[ExternalId]) -> Result<Vec<Booking>>;

    /// One booking by code, with its tickets.
    fn booking_by_code(&mut self, code: &BookingCode) -> Result<Option<Booking>>;

    /// The booking one of whose tickets has this secret, with its tickets.
    fn booking_by_secret(&mut self, secret: &TicketSecret) -> Result<Option<Booking>>;

    /// Seats in live bookings (held or confirmed, counted as stored) per event and
    /// customer; pairs with none are left out.
    fn live_seats(&mut self, of: &[(EventId, Email)]) -> Result<Vec<(EventId, Email, u32)>>;

    /// Inserts bookings and their tickets.
    fn insert_bookings(&mut self, bookings: &[Booking]) -> Result<()>;

    /// Moves a booking from one status to another; false if it was not in `from`.
    fn set_status(&mut self, id: BookingId, from: BookingStatus, to: BookingStatus, now: Timestamp) -> Result<bool>;

    /// Records a ticket's check-in at `now`; false if it was already checked in.
    fn check_in(&mut self, booking: BookingId, seq: u32, now: Timestamp) -> Result<bool>;

    /// Inserts an account. A taken email is a conflict.
    fn insert_user(&mut self, account: &Account) -> Result<()>;

    /// The account, locked, and the number of admin accounts (their rows locked too,
    /// so no concurrent change can make the count stale); `None` if there is none.
    fn lock_account(&mut self, email: &Email) -> Result<Option<(Account, u64)>>;

    /// Writes an account's role and update time (from `user`) and, if given, its new
    /// password hash; an unknown email is not found.
    fn update_user(&mut self, user: &User, hash: Option<&PasswordHash>) -> Result<()>;

    /// The last sequence number written for each of these aggregates; aggregates with
    /// no event yet are left out.
    fn aggregate_heads(&mut self, aggregates: &[AggregateRef]) -> Result<Vec<(AggregateRef, u64)>>;

    /// Deletes at most `limit` domain events that happened before `before` and, with
    /// `upto`, that a relay has published (at or before that cursor), oldest first;
    /// never an aggregate's latest event, whose sequence number the next one follows.
    /// Returns how many it deleted.
    fn prune_events(&mut self, before: Timestamp, upto: Option<&RelayCursor>, limit: u32) -> Result<u64>;

    /// A relay's row, locked (created empty if it is the relay's first run).
    fn lock_relay(&mut self, name: &str) -> Result<RelayState>;

    /// Writes a relay's row (locked by [`Tx::lock_relay`] in this transaction).
    fn put_relay(&mut self, state: &RelayState) -> Result<()>;

    /// Appends domain events (numbered by core) to the outbox, positions in the given
    /// order. A sequence number already taken for its aggregate is a
    /// [`crate::Error::Collision`] (a concurrent writer got there first).
    fn append_events(&mut self, events: &[DomainEvent]) -> Result<()>;
}

/// What [`Tx::lock_events`] found: the events, and the holds it expired on them.
#[derive(Debug, Clone, Default)]
pub struct Locked {
    /// The locked events, as of the transaction's time.
    pub events: Vec<Event>,
    /// Overdue holds of those events, now expired.
    pub expired: Vec<BookingChange>,
}
