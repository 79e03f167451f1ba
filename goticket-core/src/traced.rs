//! A [`Store`] that opens a `tracing` span around every call into the store it wraps,
//! so a trace shows each store call (its name, how long it took, whether it failed)
//! under the request that made it. [`crate::Service`] wraps its store in one.
//!
//! Spans are data, not I/O: with no subscriber installed they cost a load and a
//! branch. What records or exports them is the embedding program's choice (`goticket
//! serve` logs them, and exports them over OTLP when told to).

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use jiff::Timestamp;

use crate::booking::Booking;
use crate::error::{Error, Result, StoreErrorKind};
use crate::event::Event;
use crate::outbox::{AuditFilter, DomainEvent, RelayCursor, RelayState};
use crate::query::{BookingFilter, EventFilter, PageStart};
use crate::store::{EventKey, PoolWaits, Retry, SalesRow, SeatTotals, Store, TxBody};
use crate::types::{BookingCode, Email, EventId};
use crate::users::{Account, User};

/// The store, traced, with its errors counted by kind.
pub(crate) struct Traced(pub(crate) Arc<dyn Store>, pub(crate) Arc<StoreErrorCounts>);

impl fmt::Debug for Traced {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// Storage errors (busy, unavailable, integrity...) the store returned, by kind, since
/// the service started (see [`crate::Service::store_errors`]).
#[derive(Debug, Default)]
pub(crate) struct StoreErrorCounts([AtomicU64; StoreErrorKind::ALL.len()]);

impl StoreErrorCounts {
    fn count(&self, e: &Error) {
        if let Error::Storage(e) = e {
            let at = StoreErrorKind::ALL.iter().position(|k| *k == e.kind()).unwrap_or(StoreErrorKind::ALL.len() - 1);
            self.0[at].fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Each kind with its count, in [`StoreErrorKind::ALL`]'s order.
    pub(crate) fn snapshot(&self) -> [(StoreErrorKind, u64); StoreErrorKind::ALL.len()] {
        std::array::from_fn(|i| (StoreErrorKind::ALL[i], self.0[i].load(Ordering::Relaxed)))
    }
}

/// Runs `call` in a span named `name` (`store.write`, ...) that says whether it failed
/// and, if so, with which error kind.
macro_rules! traced {
    ($self:ident, $name:literal, $call:expr) => {{
        let span =
            tracing::info_span!($name, otel.status_code = tracing::field::Empty, error.kind = tracing::field::Empty,);
        let result = span.in_scope(|| $call);
        if let Err(e) = &result {
            $self.1.count(e);
            // A refusal decided inside a write (sold out, a wrong transition) is the
            // caller's answer, not the store failing: its kind is kept, not ERROR.
            if matches!(e, Error::Storage(_) | Error::Internal { .. }) {
                span.record("otel.status_code", "ERROR");
            }
            span.record("error.kind", e.kind().as_str());
        }
        result
    }};
}

impl Store for Traced {
    fn migrate(&self) -> Result<Vec<String>> {
        traced!(self, "store.migrate", self.0.migrate())
    }
    fn ping(&self) -> Result<()> {
        traced!(self, "store.ping", self.0.ping())
    }
    fn close(&self) -> Result<()> {
        traced!(self, "store.close", self.0.close())
    }
    fn event(&self, key: &EventKey, now: Timestamp) -> Result<Option<Event>> {
        traced!(self, "store.event", self.0.event(key, now))
    }
    fn list_events(&self, filter: &EventFilter, start: PageStart, fetch: u32, now: Timestamp) -> Result<Vec<Event>> {
        traced!(self, "store.list_events", self.0.list_events(filter, start, fetch, now))
    }
    fn booking(&self, code: &BookingCode) -> Result<Option<Booking>> {
        traced!(self, "store.booking", self.0.booking(code))
    }
    fn list_bookings(&self, filter: &BookingFilter, from: PageStart, max: u32, now: Timestamp) -> Result<Vec<Booking>> {
        traced!(self, "store.list_bookings", self.0.list_bookings(filter, from, max, now))
    }
    fn account(&self, email: &Email) -> Result<Option<Account>> {
        traced!(self, "store.account", self.0.account(email))
    }
    fn list_users(&self) -> Result<Vec<User>> {
        traced!(self, "store.list_users", self.0.list_users())
    }
    fn sales_report(&self, event: Option<EventId>, organizer: Option<&Email>, now: Timestamp) -> Result<Vec<SalesRow>> {
        traced!(self, "store.sales_report", self.0.sales_report(event, organizer, now))
    }
    fn domain_events(&self, filter: &AuditFilter, after: i64, fetch: u32) -> Result<Vec<DomainEvent>> {
        traced!(self, "store.domain_events", self.0.domain_events(filter, after, fetch))
    }
    fn relay_batch(&self, after: &RelayCursor, fetch: u32) -> Result<Vec<(RelayCursor, DomainEvent)>> {
        traced!(self, "store.relay_batch", self.0.relay_batch(after, fetch))
    }
    fn relay_state(&self, name: &str) -> Result<Option<RelayState>> {
        traced!(self, "store.relay_state", self.0.relay_state(name))
    }
    fn relay_backlog(&self, after: &RelayCursor) -> Result<(u64, Option<Timestamp>)> {
        traced!(self, "store.relay_backlog", self.0.relay_backlog(after))
    }
    fn seat_totals(&self, now: Timestamp) -> Result<SeatTotals> {
        traced!(self, "store.seat_totals", self.0.seat_totals(now))
    }
    fn pool_waits(&self) -> Option<PoolWaits> {
        self.0.pool_waits()
    }
    fn write(&self, retry: Retry, body: &mut TxBody<'_>) -> Result<()> {
        traced!(self, "store.write", self.0.write(retry, body))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use tracing::span::{Attributes, Id, Record};
    use tracing::subscriber::Subscriber;

    use super::*;
    use crate::memory::MemoryStore;

    /// A subscriber that keeps the names of the spans opened and the fields recorded.
    #[derive(Default)]
    struct Spans {
        seen: Mutex<Vec<String>>,
    }

    struct Fields<'a>(&'a mut String);

    impl tracing::field::Visit for Fields<'_> {
        fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn fmt::Debug) {
            self.0.push_str(&format!(" {}={value:?}", field.name()));
        }
        fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
            self.0.push_str(&format!(" {}={value}", field.name()));
        }
    }

    impl Subscriber for Spans {
        fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
            true
        }
        fn new_span(&self, span: &Attributes<'_>) -> Id {
            let mut seen = self.seen.lock().unwrap();
            seen.push(span.metadata().name().to_owned());
            Id::from_u64(seen.len() as u64)
        }
        fn record(&self, id: &Id, values: &Record<'_>) {
            let mut seen = self.seen.lock().unwrap();
            let at = usize::try_from(id.into_u64()).unwrap() - 1;
            values.record(&mut Fields(&mut seen[at]));
        }
        fn record_follows_from(&self, _: &Id, _: &Id) {}
        fn event(&self, _: &tracing::Event<'_>) {}
        fn enter(&self, _: &Id) {}
        fn exit(&self, _: &Id) {}
    }

    /// Each call is a span of its own name; a failed one says so, with its kind.
    #[test]
    fn every_call_is_a_span_and_a_failure_is_marked() {
        let spans = Arc::new(Spans::default());
        let traced = Traced(Arc::new(MemoryStore::new()), Arc::default());
        tracing::subscriber::with_default(spans.clone(), || {
            traced.ping().unwrap();
            let missing: BookingCode = "ABCD-EFGH-JKMN".parse().unwrap();
            assert!(traced.booking(&missing).unwrap().is_none());
            let err = traced.write(Retry::Allowed, &mut |_| Err(crate::Error::internal("refused"))).unwrap_err();
            assert_eq!(err.kind(), crate::ErrorKind::Internal);
            let refused = traced.write(Retry::Allowed, &mut |_| Err(crate::Error::validation("x", "refused")));
            assert_eq!(refused.unwrap_err().kind(), crate::ErrorKind::Validation);
        });
        let seen = spans.seen.lock().unwrap().clone();
        assert_eq!(
            seen,
            [
                "store.ping",
                "store.booking",
                "store.write otel.status_code=ERROR error.kind=internal",
                "store.write error.kind=validation",
            ],
            "a refusal keeps its kind and is no error"
        );
        assert!(traced.1.snapshot().iter().all(|(_, n)| *n == 0), "an internal error is not the store's");
        let busy = || Err(crate::Error::Storage(crate::StoreError::new(StoreErrorKind::Busy, "locked", None)));
        for _ in 0..2 {
            assert!(traced.write(Retry::Allowed, &mut |_| busy()).is_err());
        }
        let counts = traced.1.snapshot();
        assert_eq!(counts[0], (StoreErrorKind::Busy, 2));
        assert!(counts[1..].iter().all(|(_, n)| *n == 0), "{counts:?}");
    }
}
