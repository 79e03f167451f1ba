//! Fault injection over a real store: every call goes to the real database, except
//! that a reservation batch holding a poisoned customer fails as a whole, as a batch
//! hitting a storage error would.

use std::sync::Arc;

use goticket_core::error::{Error, Result, StoreError, StoreErrorKind};
use goticket_core::store::{DecideBooking, DecideCheckIn, DecideEvent, EventKey, SalesRow, Store};
use goticket_core::{
    Booking, BookingCode, BookingFilter, CheckIn, Email, Event, EventFilter, EventId, PageStart, Reservation,
    ReserveRequest, TicketSecret, Timestamp,
};

/// A store that fails any reservation batch containing `poison`.
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
    fn migrate(&self) -> Result<Vec<String>> {
        self.inner.migrate()
    }
    fn ping(&self) -> Result<()> {
        self.inner.ping()
    }
    fn insert_event(&self, event: &Event) -> Result<()> {
        self.inner.insert_event(event)
    }
    fn event(&self, key: &EventKey, now: Timestamp) -> Result<Option<Event>> {
        self.inner.event(key, now)
    }
    fn list_events(&self, filter: &EventFilter, start: PageStart, fetch: u32, now: Timestamp) -> Result<Vec<Event>> {
        self.inner.list_events(filter, start, fetch, now)
    }
    fn update_event(&self, id: EventId, now: Timestamp, decide: DecideEvent<'_>) -> Result<Event> {
        self.inner.update_event(id, now, decide)
    }
    fn cancel_event(&self, id: EventId, now: Timestamp, decide: DecideEvent<'_>) -> Result<Event> {
        self.inner.cancel_event(id, now, decide)
    }
    fn reserve(&self, batch: &[ReserveRequest], now: Timestamp) -> Result<Vec<Result<Reservation>>> {
        if batch.iter().any(|r| r.customer == self.poison) {
            return Err(Error::Storage(StoreError::new(StoreErrorKind::Integrity, "injected batch failure", None)));
        }
        self.inner.reserve(batch, now)
    }
    fn booking(&self, code: &BookingCode) -> Result<Option<Booking>> {
        self.inner.booking(code)
    }
    fn list_bookings(
        &self,
        filter: &BookingFilter,
        start: PageStart,
        fetch: u32,
        now: Timestamp,
    ) -> Result<Vec<Booking>> {
        self.inner.list_bookings(filter, start, fetch, now)
    }
    fn transition_booking(&self, code: &BookingCode, now: Timestamp, decide: DecideBooking<'_>) -> Result<Booking> {
        self.inner.transition_booking(code, now, decide)
    }
    fn check_in(&self, secret: &TicketSecret, now: Timestamp, decide: DecideCheckIn<'_>) -> Result<CheckIn> {
        self.inner.check_in(secret, now, decide)
    }
    fn expire_holds(&self, now: Timestamp) -> Result<u64> {
        self.inner.expire_holds(now)
    }
    fn import_events(
        &self,
        rows: &mut dyn Iterator<Item = goticket_core::import::ImportEvent>,
        mode: goticket_core::import::ImportMode,
        now: Timestamp,
        may_update: &dyn Fn(&Event) -> Result<()>,
        on_row: &mut dyn FnMut(u64, &Result<goticket_core::import::ImportAction>),
    ) -> Result<()> {
        self.inner.import_events(rows, mode, now, may_update, on_row)
    }
    fn import_bookings(
        &self,
        rows: &mut dyn Iterator<Item = goticket_core::import::ImportBooking>,
        mode: goticket_core::import::ImportMode,
        now: Timestamp,
        may_book: &dyn Fn(&Event, &Email) -> Result<()>,
        on_row: &mut dyn FnMut(u64, &Result<goticket_core::import::ImportAction>),
    ) -> Result<()> {
        self.inner.import_bookings(rows, mode, now, may_book, on_row)
    }
    fn insert_user(&self, account: &goticket_core::users::Account) -> Result<()> {
        self.inner.insert_user(account)
    }
    fn account(&self, email: &Email) -> Result<Option<goticket_core::users::Account>> {
        self.inner.account(email)
    }
    fn list_users(&self) -> Result<Vec<goticket_core::users::User>> {
        self.inner.list_users()
    }
    fn update_user(
        &self,
        email: &Email,
        hash: Option<&goticket_core::users::PasswordHash>,
        now: Timestamp,
        decide: goticket_core::store::DecideUser<'_>,
    ) -> Result<goticket_core::users::User> {
        self.inner.update_user(email, hash, now, decide)
    }
    fn sales_report(&self, event: Option<EventId>, organizer: Option<&Email>, now: Timestamp) -> Result<Vec<SalesRow>> {
        self.inner.sales_report(event, organizer, now)
    }
}
