//! The flash-sale combiner: concurrent reservations on one store are queued, and one
//! committer thread takes every waiting request (up to a bound) and hands them to the
//! store as one batch, in arrival order, then answers each caller with its own outcome.
//!
//! With one transaction per booking, a hot event's row makes every buyer wait for the
//! commit before theirs; a batch pays that commit once for all of them. When requests
//! arrive one at a time the committer runs each at once, so an idle system adds no
//! latency. Correctness is unchanged: each batch is still one guarded transaction, so
//! several combiners (processes, machines) on one database never oversell.
//!
//! Std threads and channels only: no async runtime is forced on library users.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, Sender, SyncSender};

use crate::booking::{Reservation, ReserveRequest};
use crate::clock::Clock;
use crate::error::{Error, Result, StoreError, StoreErrorKind};
use crate::store::Store;

/// The upper bounds of the batch-size buckets (a batch larger than the last is counted
/// in one more bucket).
pub const BATCH_SIZE_BOUNDS: [u64; 9] = [1, 2, 4, 8, 16, 32, 64, 128, 256];

/// Counters of what the combiner did, for benchmarks and metrics.
#[derive(Debug, Default)]
pub struct CombinerStats {
    batches: AtomicU64,
    requests: AtomicU64,
    largest: AtomicU64,
    sizes: [AtomicU64; BATCH_SIZE_BOUNDS.len() + 1],
}

/// What the flash-sale combiner has done so far (see [`crate::Service::combiner_stats`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
pub struct CombinerSnapshot {
    /// Transactions committed.
    pub batches: u64,
    /// Requests answered.
    pub requests: u64,
    /// The largest batch so far.
    pub largest_batch: u64,
    /// Batches by size: how many had at most [`BATCH_SIZE_BOUNDS`]`[i]` requests (and
    /// more than the bound before); the last, how many had more than the last bound.
    pub batch_sizes: [u64; BATCH_SIZE_BOUNDS.len() + 1],
}

impl CombinerStats {
    /// The current counts.
    pub fn snapshot(&self) -> CombinerSnapshot {
        CombinerSnapshot {
            batches: self.batches.load(Ordering::Relaxed),
            requests: self.requests.load(Ordering::Relaxed),
            largest_batch: self.largest.load(Ordering::Relaxed),
            batch_sizes: std::array::from_fn(|i| self.sizes[i].load(Ordering::Relaxed)),
        }
    }

    fn record(&self, size: usize) {
        let size = size as u64;
        self.batches.fetch_add(1, Ordering::Relaxed);
        self.requests.fetch_add(size, Ordering::Relaxed);
        self.largest.fetch_max(size, Ordering::Relaxed);
        let bucket = BATCH_SIZE_BOUNDS.iter().position(|&b| size <= b).unwrap_or(BATCH_SIZE_BOUNDS.len());
        self.sizes[bucket].fetch_add(1, Ordering::Relaxed);
    }
}

struct Job {
    req: ReserveRequest,
    reply: SyncSender<Result<Reservation>>,
    /// The caller's span: the batch's span is the first caller's child and follows
    /// from the others, and each caller's span is told the batch's size.
    span: tracing::Span,
}

/// A running combiner. Dropping it stops its committer thread and waits for it.
#[derive(Debug)]
pub struct Combiner {
    /// `None` only while dropping.
    tx: Option<Sender<Job>>,
    stats: Arc<CombinerStats>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Combiner {
    /// Stops the committer and waits for it: once the last handle is gone, the thread
    /// (and the store it holds) is gone too, so a process that drops its service before
    /// it exits never has a second thread closing database connections during exit.
    fn drop(&mut self) {
        drop(self.tx.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl std::fmt::Debug for Job {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Job").field("code", &self.req.code).finish_non_exhaustive()
    }
}

fn stopped() -> Error {
    Error::Storage(StoreError::new(StoreErrorKind::Unavailable, "the reservation combiner has stopped", None))
}

impl Combiner {
    /// Starts a committer thread for `store` that commits batches of at most
    /// `max_batch` requests.
    pub fn start(store: Arc<dyn Store>, clock: Arc<dyn Clock>, max_batch: usize) -> Result<Self> {
        let (tx, rx) = mpsc::channel();
        let stats = Arc::new(CombinerStats::default());
        let thread_stats = stats.clone();
        let thread = std::thread::Builder::new()
            .name("goticket-combiner".into())
            .spawn(move || commit_loop(&rx, &*store, &*clock, max_batch.max(1), &thread_stats))
            .map_err(|e| Error::internal(format!("cannot start the combiner thread: {e}")))?;
        Ok(Combiner { tx: Some(tx), stats, thread: Some(thread) })
    }

    /// Queues one prepared reservation and waits for its outcome.
    pub fn submit(&self, req: ReserveRequest) -> Result<Reservation> {
        let (reply, answer) = mpsc::sync_channel(1);
        self.tx
            .as_ref()
            .ok_or_else(stopped)?
            .send(Job { req, reply, span: tracing::Span::current() })
            .map_err(|_| stopped())?;
        answer.recv().map_err(|_| stopped())?
    }

    /// What the combiner has done so far.
    pub fn stats(&self) -> CombinerSnapshot {
        self.stats.snapshot()
    }
}

fn commit_loop(rx: &Receiver<Job>, store: &dyn Store, clock: &dyn Clock, max_batch: usize, stats: &CombinerStats) {
    // Blocks while idle; ends when every sender (every Service clone) is gone.
    while let Ok(first) = rx.recv() {
        let mut jobs = vec![first];
        while jobs.len() < max_batch {
            match rx.try_recv() {
                Ok(job) => jobs.push(job),
                Err(_) => break,
            }
        }
        stats.record(jobs.len());
        let batch = tracing::info_span!(parent: jobs[0].span.id(), "reserve_batch", batch_size = jobs.len());
        for (i, job) in jobs.iter().enumerate() {
            job.span.record("batch_size", jobs.len());
            if i > 0 {
                batch.follows_from(job.span.id());
            }
        }
        let _entered = batch.enter();
        let (reqs, replies): (Vec<ReserveRequest>, Vec<SyncSender<Result<Reservation>>>) =
            jobs.into_iter().map(|j| (j.req, j.reply)).unzip();
        // A caller that gave up waiting is not an error, hence the ignored sends.
        match run_batch(store, &reqs, clock) {
            Ok(outcomes) if outcomes.len() == replies.len() => {
                for (reply, outcome) in replies.into_iter().zip(outcomes) {
                    let _ = reply.send(outcome);
                }
            }
            Ok(outcomes) => {
                let why = format!("a batch of {} requests got {} outcomes", replies.len(), outcomes.len());
                for reply in replies {
                    let _ = reply.send(Err(Error::internal(why.clone())));
                }
            }
            Err(e) => {
                // The batch failed as a whole and `engine::reserve` did not split it:
                // a busy or unreachable store, or a panic. Nothing was written.
                for reply in replies {
                    let _ = reply.send(Err(e.replicate()));
                }
            }
        }
    }
}

/// One batch through the use case; a panic inside it becomes an error instead of
/// killing the committer (and with it every later reservation).
fn run_batch(store: &dyn Store, reqs: &[ReserveRequest], clock: &dyn Clock) -> Result<Vec<Result<Reservation>>> {
    match catch_unwind(AssertUnwindSafe(|| crate::engine::reserve(store, reqs, clock.now()))) {
        Ok(outcomes) => outcomes,
        Err(_) => Err(Error::internal("a reservation batch panicked")),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, AtomicU32};
    use std::time::Duration;

    use super::*;
    use crate::memory::MemoryStore;
    use crate::query::{BookingFilter, EventFilter, PageStart};
    use crate::store::{EventKey, Retry, SalesRow, TxBody};
    use crate::{
        Booking, BookingCode, BookingRequest, Email, ErrorKind, Event, EventId, ManualClock, NewEvent, Principal, Role,
        SeededEntropy, Service, Timestamp,
    };

    /// The in-memory store with a slow disk (each write takes `delay`) and a planted
    /// bug (a write panics while `panic` is set).
    #[derive(Debug, Default)]
    struct Flaky {
        inner: MemoryStore,
        delay: Duration,
        panic: AtomicBool,
        /// Every write fails with this, without running its body.
        fail: std::sync::Mutex<Option<StoreErrorKind>>,
        writes: AtomicU32,
    }

    impl Store for Flaky {
        fn migrate(&self) -> Result<Vec<String>> {
            self.inner.migrate()
        }
        fn ping(&self) -> Result<()> {
            self.inner.ping()
        }
        fn event(&self, key: &EventKey, now: Timestamp) -> Result<Option<Event>> {
            self.inner.event(key, now)
        }
        fn list_events(&self, f: &EventFilter, from: PageStart, max: u32, now: Timestamp) -> Result<Vec<Event>> {
            self.inner.list_events(f, from, max, now)
        }
        fn booking(&self, code: &BookingCode) -> Result<Option<Booking>> {
            self.inner.booking(code)
        }
        fn list_bookings(&self, f: &BookingFilter, from: PageStart, max: u32, now: Timestamp) -> Result<Vec<Booking>> {
            self.inner.list_bookings(f, from, max, now)
        }
        fn domain_events(
            &self,
            f: &crate::outbox::AuditFilter,
            after: i64,
            fetch: u32,
        ) -> Result<Vec<crate::outbox::DomainEvent>> {
            self.inner.domain_events(f, after, fetch)
        }
        fn relay_batch(
            &self,
            after: &crate::outbox::RelayCursor,
            fetch: u32,
        ) -> Result<Vec<(crate::outbox::RelayCursor, crate::outbox::DomainEvent)>> {
            self.inner.relay_batch(after, fetch)
        }
        fn relay_state(&self, name: &str) -> Result<Option<crate::outbox::RelayState>> {
            self.inner.relay_state(name)
        }
        fn relay_backlog(&self, after: &crate::outbox::RelayCursor) -> Result<(u64, Option<Timestamp>)> {
            self.inner.relay_backlog(after)
        }
        fn account(&self, email: &Email) -> Result<Option<crate::users::Account>> {
            self.inner.account(email)
        }
        fn list_users(&self) -> Result<Vec<crate::users::User>> {
            self.inner.list_users()
        }
        fn sales_report(&self, e: Option<EventId>, o: Option<&Email>, now: Timestamp) -> Result<Vec<SalesRow>> {
            self.inner.sales_report(e, o, now)
        }
        fn write(&self, retry: Retry, body: &mut TxBody<'_>) -> Result<()> {
            self.writes.fetch_add(1, Ordering::SeqCst);
            assert!(!self.panic.load(Ordering::SeqCst), "a planted bug");
            if let Some(kind) = *self.fail.lock().unwrap() {
                return Err(Error::Storage(StoreError::new(kind, "injected", None)));
            }
            std::thread::sleep(self.delay);
            self.inner.write(retry, body)
        }
    }

    fn service(store: Arc<Flaky>) -> (Service, EventKey) {
        let clock = Arc::new(ManualClock::new("2027-01-01T12:00:00Z".parse().unwrap()));
        let s = Service::with_sources(store, clock, Arc::new(SeededEntropy::new(3)));
        let admin = Principal::new("a@example.com".parse().unwrap(), Role::Admin);
        let t = |x: &str| x.parse().unwrap();
        let new = NewEvent::new(
            "Hot".parse().unwrap(),
            t("2027-06-01T19:00:00Z"),
            t("2027-06-01T23:00:00Z"),
            150u32.try_into().unwrap(),
            "1 EUR".parse().unwrap(),
        );
        let e = s.create_event(&admin, new).unwrap();
        (s, EventKey::Id(e.id))
    }

    fn buy(s: &Service, e: &EventKey, who: &str) -> Result<Reservation> {
        let p = Principal::new(who.parse().unwrap(), Role::Customer);
        s.reserve(&p, BookingRequest::buy(e.clone(), 1u32.try_into().unwrap()))
    }

    #[test]
    fn concurrent_buyers_share_transactions_and_never_oversell() {
        let store = Arc::new(Flaky { delay: Duration::from_millis(3), ..Flaky::default() });
        let (s, e) = service(store.clone());
        let sold = AtomicU32::new(0);
        std::thread::scope(|scope| {
            for t in 0..24 {
                let (s, e, sold) = (&s, &e, &sold);
                scope.spawn(move || {
                    loop {
                        match buy(s, e, &format!("b{t}@example.com")) {
                            Ok(_) => {
                                sold.fetch_add(1, Ordering::SeqCst);
                            }
                            Err(err) if err.kind() == ErrorKind::SoldOut => break,
                            Err(err) => panic!("only sold out may refuse: {err}"),
                        }
                    }
                });
            }
        });
        assert_eq!(sold.load(Ordering::SeqCst), 150);
        let admin = Principal::new("a@example.com".parse().unwrap(), Role::Admin);
        assert_eq!(s.event(&admin, &e).unwrap().sold, 150);
        let stats = s.combiner_stats().expect("the combiner ran");
        assert!(stats.largest_batch > 1, "waiting buyers were combined: {stats:?}");
        assert_eq!(stats.batch_sizes.iter().sum::<u64>(), stats.batches, "every batch is in one bucket: {stats:?}");
        assert!(stats.batch_sizes[1..].iter().any(|&n| n > 0), "some batch had more than one request: {stats:?}");
        assert!(stats.batches < stats.requests, "{stats:?}");
        assert!(u64::from(store.writes.load(Ordering::SeqCst)) <= stats.batches + 1, "one write per batch");
    }

    #[test]
    fn a_panicking_batch_is_an_internal_error_and_the_combiner_lives_on() {
        let store = Arc::new(Flaky::default());
        let (s, e) = service(store.clone());
        store.panic.store(true, Ordering::SeqCst);
        let err = buy(&s, &e, "x@example.com").unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Internal, "{err}");
        store.panic.store(false, Ordering::SeqCst);
        assert!(buy(&s, &e, "x@example.com").is_ok(), "the committer survived the panic");
    }

    /// A batch that fails as a whole is split only when that can help: a store that is
    /// busy or down is asked once, not once more per request; any other failure reruns
    /// each request alone (a single request is not rerun).
    #[test]
    fn a_failed_batch_is_split_only_when_that_can_help() {
        let store = Arc::new(Flaky::default());
        let (s, e) = service(store.clone());
        let id = match e {
            EventKey::Id(id) => id,
            EventKey::Slug(_) => unreachable!("the test names events by id"),
        };
        let entropy = SeededEntropy::new(9);
        let clock = ManualClock::new("2027-01-01T12:00:00Z".parse().unwrap());
        let req = |c: &str| ReserveRequest {
            id: crate::BookingId::generate(&clock, &entropy),
            code: BookingCode::generate(&entropy),
            event_id: id,
            customer: c.parse().unwrap(),
            actor: c.parse().unwrap(),
            quantity: 1u32.try_into().unwrap(),
            hold_until: None,
            idempotency_key: None,
            external_id: None,
            secrets: vec![crate::TicketSecret::generate(&entropy)],
            restore: None,
        };
        let batch = [req("a@example.com"), req("b@example.com"), req("c@example.com")];
        let writes = || store.writes.swap(0, Ordering::SeqCst);
        writes();
        for (kind, batch_writes) in
            [(StoreErrorKind::Busy, 1), (StoreErrorKind::Unavailable, 1), (StoreErrorKind::Integrity, 4)]
        {
            *store.fail.lock().unwrap() = Some(kind);
            match crate::engine::reserve(&*store, &batch, s.now()) {
                Err(err) => assert!(err.is_retryable() && batch_writes == 1, "{kind:?}: {err}"),
                Ok(outcomes) => {
                    assert_eq!(batch_writes, 4, "{kind:?} was split");
                    assert!(outcomes.iter().all(|o| o.as_ref().is_err_and(|e| !e.is_retryable())), "{kind:?}");
                }
            }
            assert_eq!(writes(), batch_writes, "{kind:?}: writes for a batch of three");
            assert!(crate::engine::reserve(&*store, &batch[..1], s.now()).is_err());
            assert_eq!(writes(), 1, "{kind:?}: a single request is not rerun");
        }
        *store.fail.lock().unwrap() = None;
        let outcomes = crate::engine::reserve(&*store, &batch, s.now()).unwrap();
        assert!(outcomes.iter().all(Result::is_ok));
        assert_eq!(writes(), 1);
    }

    /// Once the service is dropped, nothing but its caller holds the store: the
    /// committer thread has ended and let go of it.
    #[test]
    fn dropping_the_service_releases_the_store() {
        let store = Arc::new(Flaky::default());
        let (s, e) = service(store.clone());
        buy(&s, &e, "x@example.com").expect("a sale through the combiner");
        assert!(Arc::strong_count(&store) > 1, "the service (and through it its committer) holds the store");
        drop(s);
        assert_eq!(Arc::strong_count(&store), 1, "the committer has stopped and let go");
    }

    #[test]
    fn a_stopped_combiner_is_unavailable_not_a_hang() {
        let (tx, rx) = mpsc::channel::<Job>();
        drop(rx);
        let c = Combiner { tx: Some(tx), stats: Arc::default(), thread: None };
        let e = SeededEntropy::new(1);
        let req = ReserveRequest {
            id: crate::BookingId::generate(&ManualClock::new(Timestamp::UNIX_EPOCH), &e),
            code: BookingCode::generate(&e),
            event_id: EventId::generate(&ManualClock::new(Timestamp::UNIX_EPOCH), &e),
            customer: "c@example.com".parse().unwrap(),
            actor: "c@example.com".parse().unwrap(),
            quantity: 1u32.try_into().unwrap(),
            hold_until: None,
            idempotency_key: None,
            external_id: None,
            secrets: vec![crate::TicketSecret::generate(&e)],
            restore: None,
        };
        let err = c.submit(req).unwrap_err();
        assert!(err.is_retryable(), "{err}");
    }
}
