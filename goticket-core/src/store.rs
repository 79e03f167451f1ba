//! The storage contract every backend implements.
//!
//! Methods are whole use cases and each is atomic: no transaction escapes. Where a use
//! case needs a rule decided on state read inside the transaction, the store calls
//! back into core (a rule function, or the `decide` closure it is given), so the rule
//! is written once and every store enforces it the same way. Constructors are
//! inherent methods of each store, not part of this trait.

use std::fmt;

use jiff::Timestamp;
use serde::Serialize;

use crate::auth::Role;
use crate::booking::{Booking, CheckIn, Reservation, ReserveRequest, Ticket, Transition};
use crate::error::Result;
use crate::event::{Event, EventStatus};
use crate::import::{ImportAction, ImportBooking, ImportEvent, ImportMode};
use crate::money::Money;
use crate::query::{BookingFilter, EventFilter, PageStart};
use crate::types::{BookingCode, Email, EventId, Slug, TicketSecret};
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

/// A decision callback for an event, run inside the store's transaction.
pub type DecideEvent<'a> = &'a mut dyn FnMut(&Event) -> Result<Event>;
/// A decision callback for a booking transition, run inside the store's transaction.
pub type DecideBooking<'a> = &'a mut dyn FnMut(&Booking, &Event) -> Result<Transition>;
/// A decision callback for a check-in, run inside the store's transaction.
pub type DecideCheckIn<'a> = &'a mut dyn FnMut(&Booking, &Ticket, &Event) -> Result<()>;
/// A decision callback for a change to an account, run inside the store's transaction:
/// given the account and how many admin accounts there are, the role to write (if any).
pub type DecideUser<'a> = &'a mut dyn FnMut(&User, u64) -> Result<Option<Role>>;

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

    /// Inserts a new event. A taken slug is a conflict.
    fn insert_event(&self, event: &Event) -> Result<()>;

    /// Reads one event.
    fn event(&self, key: &EventKey, now: Timestamp) -> Result<Option<Event>>;

    /// Lists events ordered by `(starts_at, id)`, returning at most `fetch` items.
    fn list_events(&self, filter: &EventFilter, start: PageStart, fetch: u32, now: Timestamp) -> Result<Vec<Event>>;

    /// Reads the event (after expiring its overdue holds), asks `decide` for the new
    /// state and writes it. A taken slug is a conflict.
    fn update_event(&self, id: EventId, now: Timestamp, decide: DecideEvent<'_>) -> Result<Event>;

    /// Asks `decide` (given the current event) and, if it agrees, writes the event it
    /// returns with status cancelled and cancels all its live bookings.
    fn cancel_event(&self, id: EventId, now: Timestamp, decide: DecideEvent<'_>) -> Result<Event>;

    /// Runs a batch of reservations in one transaction, in order. Per event touched,
    /// first expires its overdue holds; per request, answers a retry of an earlier
    /// idempotency key with [`crate::booking::replay`], otherwise asks
    /// [`crate::booking::decide_reservation`] and writes the booking. One refused
    /// request never fails the others; the outer error means nothing was written.
    fn reserve(&self, batch: &[ReserveRequest], now: Timestamp) -> Result<Vec<Result<Reservation>>>;

    /// Reads one booking with its tickets, as stored (the service applies `at(now)`).
    fn booking(&self, code: &BookingCode) -> Result<Option<Booking>>;

    /// Lists bookings ordered by id, at most `fetch` items.
    fn list_bookings(
        &self,
        filter: &BookingFilter,
        start: PageStart,
        fetch: u32,
        now: Timestamp,
    ) -> Result<Vec<Booking>>;

    /// Reads the booking and its event (after expiring that event's overdue holds),
    /// asks `decide` for the transition, writes the booking's new status and adjusts
    /// the event's counters.
    fn transition_booking(&self, code: &BookingCode, now: Timestamp, decide: DecideBooking<'_>) -> Result<Booking>;

    /// Finds the ticket by secret, asks `decide`, and marks it checked in at `now`.
    fn check_in(&self, secret: &TicketSecret, now: Timestamp, decide: DecideCheckIn<'_>) -> Result<CheckIn>;

    /// Marks every overdue hold expired and releases its seats; returns how many.
    fn expire_holds(&self, now: Timestamp) -> Result<u64>;

    /// Imports events keyed by external id, pulling rows from `rows` in chunks (a file
    /// of any size streams through), deciding each chunk with
    /// [`crate::import::plan_event_import`] (`may_update` says whether the importer
    /// may change an existing event) and telling `on_row` every row's outcome. See
    /// [`ImportMode`] for what is committed when. In `AllOrNothing` mode a refused row
    /// means nothing is written and the call fails.
    fn import_events(
        &self,
        rows: &mut dyn Iterator<Item = ImportEvent>,
        mode: ImportMode,
        now: Timestamp,
        may_update: &dyn Fn(&Event) -> Result<()>,
        on_row: &mut dyn FnMut(u64, &Result<ImportAction>),
    ) -> Result<()>;

    /// Imports bookings keyed by external id, pulling rows in chunks: resolves each
    /// row's event (by id, external id, or slug), asks `may_book`, and reserves the
    /// rest with the same batch rule as [`Store::reserve`] (capacity, per-customer
    /// limit, sales state; an external id seen before is a no-op if the row is the
    /// same, a conflict otherwise). Modes and reporting as in [`Store::import_events`].
    fn import_bookings(
        &self,
        rows: &mut dyn Iterator<Item = ImportBooking>,
        mode: ImportMode,
        now: Timestamp,
        may_book: &dyn Fn(&Event, &Email) -> Result<()>,
        on_row: &mut dyn FnMut(u64, &Result<ImportAction>),
    ) -> Result<()>;

    /// Inserts a user account; a taken email is a conflict.
    fn insert_user(&self, account: &Account) -> Result<()>;

    /// Reads one account.
    fn account(&self, email: &Email) -> Result<Option<Account>>;

    /// All users, by email.
    fn list_users(&self) -> Result<Vec<User>>;

    /// Reads the account and the number of admin accounts (so that no concurrent
    /// change can make the count stale), asks `decide` for the new role, and writes it
    /// and the password hash, if given; not found if there is no such user.
    fn update_user(
        &self,
        email: &Email,
        hash: Option<&PasswordHash>,
        now: Timestamp,
        decide: DecideUser<'_>,
    ) -> Result<User>;

    /// Sales figures for one event or, with `None`, all events (of `organizer`, if set),
    /// ordered by start time.
    fn sales_report(&self, event: Option<EventId>, organizer: Option<&Email>, now: Timestamp) -> Result<Vec<SalesRow>>;
}
