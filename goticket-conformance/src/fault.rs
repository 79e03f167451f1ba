//! Fault injection over a real store: every call goes to the real database, except
//! for the faults each wrapper injects.
//!
//! - [`PoisonStore`]: a write that inserts a booking for a poisoned customer fails as
//!   a whole, as a batch hitting a storage error would.
//! - [`LostCommitStore`]: the next writes commit and then report the connection lost,
//!   as a server that dies during COMMIT would.
//! - [`FailingOutboxStore`]: the next writes fail when they append their domain
//!   events, the last step before COMMIT: the change must go with them.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use goticket_core::outbox::{AggregateRef, AuditFilter, BookingChange, DomainEvent, RelayCursor, RelayState};
use goticket_core::users::{Account, PasswordHash, User};
use goticket_core::{
    Booking, BookingCode, BookingFilter, BookingId, BookingStatus, Email, Event, EventFilter, EventId, ExternalId,
    IdempotencyKey, PageStart, Slug, TicketSecret, Timestamp,
};
use goticket_core::{Commit, CounterDelta, EventKey, Locked, Retry, SalesRow, Store, Tx, TxBody};
use goticket_core::{Error, Result, StoreError, StoreErrorKind};

/// A transaction that passes every primitive on, but lets `on_insert` fail a booking
/// insert first.
struct Watched<'a> {
    inner: &'a mut dyn Tx,
    on_insert: &'a dyn Fn(&[Booking]) -> Result<()>,
    on_append: &'a dyn Fn(&[DomainEvent]) -> Result<()>,
}

fn pass<T>(_: &[T]) -> Result<()> {
    Ok(())
}

impl Tx for Watched<'_> {
    fn lock_events(&mut self, ids: &[EventId], now: Timestamp) -> Result<Locked> {
        self.inner.lock_events(ids, now)
    }
    fn find_events(&mut self, keys: &[String], now: Timestamp) -> Result<Vec<Event>> {
        self.inner.find_events(keys, now)
    }
    fn event_by_slug(&mut self, slug: &Slug, now: Timestamp) -> Result<Option<Event>> {
        self.inner.event_by_slug(slug, now)
    }
    fn slug_owners(&mut self, slugs: &[Slug]) -> Result<Vec<(Slug, EventId)>> {
        self.inner.slug_owners(slugs)
    }
    fn insert_events(&mut self, events: &[Event]) -> Result<()> {
        self.inner.insert_events(events)
    }
    fn update_event(&mut self, event: &Event) -> Result<()> {
        self.inner.update_event(event)
    }
    fn add_to_counters(&mut self, deltas: &[CounterDelta]) -> Result<()> {
        self.inner.add_to_counters(deltas)
    }
    fn expire_all_holds(&mut self, now: Timestamp) -> Result<Vec<BookingChange>> {
        self.inner.expire_all_holds(now)
    }
    fn cancel_live_bookings(&mut self, event: EventId, now: Timestamp) -> Result<Vec<BookingChange>> {
        self.inner.cancel_live_bookings(event, now)
    }
    fn bookings_by_id(&mut self, ids: &[BookingId]) -> Result<Vec<Booking>> {
        self.inner.bookings_by_id(ids)
    }
    fn bookings_by_key(&mut self, keys: &[(Email, IdempotencyKey)]) -> Result<Vec<Booking>> {
        self.inner.bookings_by_key(keys)
    }
    fn bookings_by_external_id(&mut self, ids: &[ExternalId]) -> Result<Vec<Booking>> {
        self.inner.bookings_by_external_id(ids)
    }
    fn booking_by_code(&mut self, code: &BookingCode) -> Result<Option<Booking>> {
        self.inner.booking_by_code(code)
    }
    fn booking_by_secret(&mut self, secret: &TicketSecret) -> Result<Option<Booking>> {
        self.inner.booking_by_secret(secret)
    }
    fn live_seats(&mut self, of: &[(EventId, Email)]) -> Result<Vec<(EventId, Email, u32)>> {
        self.inner.live_seats(of)
    }
    fn insert_bookings(&mut self, bookings: &[Booking]) -> Result<()> {
        (self.on_insert)(bookings)?;
        self.inner.insert_bookings(bookings)
    }
    fn set_status(&mut self, id: BookingId, from: BookingStatus, to: BookingStatus, now: Timestamp) -> Result<bool> {
        self.inner.set_status(id, from, to, now)
    }
    fn check_in(&mut self, booking: BookingId, seq: u32, now: Timestamp) -> Result<bool> {
        self.inner.check_in(booking, seq, now)
    }
    fn insert_user(&mut self, account: &Account) -> Result<()> {
        self.inner.insert_user(account)
    }
    fn lock_account(&mut self, email: &Email) -> Result<Option<(Account, u64)>> {
        self.inner.lock_account(email)
    }
    fn update_user(&mut self, user: &User, hash: Option<&PasswordHash>) -> Result<()> {
        self.inner.update_user(user, hash)
    }
    fn aggregate_heads(&mut self, aggregates: &[AggregateRef]) -> Result<Vec<(AggregateRef, u64)>> {
        self.inner.aggregate_heads(aggregates)
    }
    fn lock_relay(&mut self, name: &str) -> Result<RelayState> {
        self.inner.lock_relay(name)
    }
    fn prune_events(&mut self, before: Timestamp, upto: Option<&RelayCursor>, limit: u32) -> Result<u64> {
        self.inner.prune_events(before, upto, limit)
    }
    fn put_relay(&mut self, state: &RelayState) -> Result<()> {
        self.inner.put_relay(state)
    }
    fn append_events(&mut self, events: &[DomainEvent]) -> Result<()> {
        (self.on_append)(events)?;
        self.inner.append_events(events)
    }
}

/// Passes the reading half of [`Store`] on to `self.inner`.
macro_rules! reads_pass_through {
    () => {
        fn migrate(&self) -> Result<Vec<String>> {
            self.inner.migrate()
        }
        fn ping(&self) -> Result<()> {
            self.inner.ping()
        }
        fn close(&self) -> Result<()> {
            self.inner.close()
        }
        fn event(&self, key: &EventKey, now: Timestamp) -> Result<Option<Event>> {
            self.inner.event(key, now)
        }
        fn list_events(
            &self,
            filter: &EventFilter,
            start: PageStart,
            fetch: u32,
            now: Timestamp,
        ) -> Result<Vec<Event>> {
            self.inner.list_events(filter, start, fetch, now)
        }
        fn booking(&self, code: &BookingCode) -> Result<Option<Booking>> {
            self.inner.booking(code)
        }
        fn list_bookings(
            &self,
            filter: &BookingFilter,
            from: PageStart,
            max: u32,
            now: Timestamp,
        ) -> Result<Vec<Booking>> {
            self.inner.list_bookings(filter, from, max, now)
        }
        fn account(&self, email: &Email) -> Result<Option<Account>> {
            self.inner.account(email)
        }
        fn list_users(&self) -> Result<Vec<User>> {
            self.inner.list_users()
        }
        fn sales_report(
            &self,
            event: Option<EventId>,
            organizer: Option<&Email>,
            now: Timestamp,
        ) -> Result<Vec<SalesRow>> {
            self.inner.sales_report(event, organizer, now)
        }
        fn domain_events(&self, filter: &AuditFilter, after: i64, fetch: u32) -> Result<Vec<DomainEvent>> {
            self.inner.domain_events(filter, after, fetch)
        }
        fn relay_batch(&self, after: &RelayCursor, fetch: u32) -> Result<Vec<(RelayCursor, DomainEvent)>> {
            self.inner.relay_batch(after, fetch)
        }
        fn relay_state(&self, name: &str) -> Result<Option<RelayState>> {
            self.inner.relay_state(name)
        }
        fn relay_backlog(&self, after: &RelayCursor) -> Result<(u64, Option<Timestamp>)> {
            self.inner.relay_backlog(after)
        }
    };
}

/// A store that fails any write inserting a booking for `poison`.
#[derive(Debug)]
pub struct PoisonStore {
    inner: Arc<dyn Store>,
    poison: Email,
}

impl PoisonStore {
    /// Wraps a real store.
    pub fn new(inner: Arc<dyn Store>, poison: &str) -> Self {
        PoisonStore { inner, poison: poison.parse().expect("a valid test email") }
    }
}

impl Store for PoisonStore {
    reads_pass_through!();

    fn write(&self, retry: Retry, body: &mut TxBody<'_>) -> Result<()> {
        let on_insert = |bookings: &[Booking]| {
            if bookings.iter().any(|b| b.customer == self.poison) {
                return Err(Error::Storage(StoreError::new(StoreErrorKind::Integrity, "injected batch failure", None)));
            }
            Ok(())
        };
        self.inner.write(retry, &mut |tx| body(&mut Watched { inner: tx, on_insert: &on_insert, on_append: &pass }))
    }
}

/// A store whose next `n` writes fail as they append their domain events (a storage
/// error that is not retried, so the caller sees it), so whatever the use case wrote
/// before must roll back with them.
#[derive(Debug)]
pub struct FailingOutboxStore {
    inner: Arc<dyn Store>,
    fail: AtomicU32,
}

impl FailingOutboxStore {
    /// Wraps a real store, failing nothing until [`FailingOutboxStore::fail_next`].
    pub fn new(inner: Arc<dyn Store>) -> Self {
        FailingOutboxStore { inner, fail: AtomicU32::new(0) }
    }

    /// The next `n` appends of domain events fail.
    pub fn fail_next(&self, n: u32) {
        self.fail.store(n, Ordering::SeqCst);
    }
}

impl Store for FailingOutboxStore {
    reads_pass_through!();

    fn write(&self, retry: Retry, body: &mut TxBody<'_>) -> Result<()> {
        let on_append = |_: &[DomainEvent]| {
            if self.fail.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1)).is_ok() {
                return Err(Error::Storage(StoreError::new(
                    StoreErrorKind::Integrity,
                    "injected: outbox append failed",
                    None,
                )));
            }
            Ok(())
        };
        self.inner.write(retry, &mut |tx| body(&mut Watched { inner: tx, on_insert: &pass, on_append: &on_append }))
    }
}

/// A store whose next `lose` committed writes (of any kind) fail, after committing, as
/// if the connection had been lost during COMMIT, and whose next `fail` writes fail the
/// same way without committing: the caller cannot tell whether they were written.
#[derive(Debug)]
pub struct LostCommitStore {
    inner: Arc<dyn Store>,
    lose: AtomicU32,
    fail: AtomicU32,
}

impl LostCommitStore {
    /// Wraps a real store, losing nothing until [`LostCommitStore::lose_next`].
    pub fn new(inner: Arc<dyn Store>) -> Self {
        LostCommitStore { inner, lose: AtomicU32::new(0), fail: AtomicU32::new(0) }
    }

    /// The next `n` writes that would commit are rolled back instead, and reported as
    /// of unknown outcome: the other half of what a caller cannot tell apart.
    pub fn fail_next(&self, n: u32) {
        self.fail.store(n, Ordering::SeqCst);
    }

    /// The next `n` committed writes lose their answer.
    pub fn lose_next(&self, n: u32) {
        self.lose.store(n, Ordering::SeqCst);
    }

    /// How many lost answers are still to come.
    pub fn still_to_lose(&self) -> u32 {
        self.lose.load(Ordering::SeqCst)
    }
}

impl Store for LostCommitStore {
    reads_pass_through!();

    fn write(&self, retry: Retry, body: &mut TxBody<'_>) -> Result<()> {
        let (mut committed, mut failed) = (false, false);
        let take = |n: &AtomicU32| n.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1)).is_ok();
        self.inner.write(retry, &mut |tx| {
            let c = body(tx)?;
            if c == Commit::Yes && self.fail.load(Ordering::SeqCst) > 0 {
                failed = take(&self.fail);
                return Ok(if failed { Commit::No } else { c });
            }
            committed = c == Commit::Yes;
            Ok(c)
        })?;
        if failed || (committed && take(&self.lose)) {
            return Err(Error::Storage(StoreError::new(
                StoreErrorKind::OutcomeUnknown,
                "injected: the connection was lost during COMMIT",
                None,
            )));
        }
        Ok(())
    }
}
