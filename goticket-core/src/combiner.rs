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

/// Counters of what the combiner did, for benchmarks and metrics.
#[derive(Debug, Default)]
pub struct CombinerStats {
    batches: AtomicU64,
    requests: AtomicU64,
    largest: AtomicU64,
}

/// A snapshot of [`CombinerStats`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
pub struct CombinerSnapshot {
    /// Transactions committed.
    pub batches: u64,
    /// Requests answered.
    pub requests: u64,
    /// The largest batch so far.
    pub largest_batch: u64,
}

impl CombinerStats {
    /// The current counts.
    pub fn snapshot(&self) -> CombinerSnapshot {
        CombinerSnapshot {
            batches: self.batches.load(Ordering::Relaxed),
            requests: self.requests.load(Ordering::Relaxed),
            largest_batch: self.largest.load(Ordering::Relaxed),
        }
    }

    fn record(&self, size: usize) {
        let size = size as u64;
        self.batches.fetch_add(1, Ordering::Relaxed);
        self.requests.fetch_add(size, Ordering::Relaxed);
        self.largest.fetch_max(size, Ordering::Relaxed);
    }
}

struct Job {
    req: ReserveRequest,
    reply: SyncSender<Result<Reservation>>,
}

/// A running combiner. Dropping the last handle stops its committer thread once the
/// queue is empty.
#[derive(Debug)]
pub struct Combiner {
    tx: Sender<Job>,
    stats: Arc<CombinerStats>,
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
        std::thread::Builder::new()
            .name("goticket-combiner".into())
            .spawn(move || commit_loop(&rx, &*store, &*clock, max_batch.max(1), &thread_stats))
            .map_err(|e| Error::internal(format!("cannot start the combiner thread: {e}")))?;
        Ok(Combiner { tx, stats })
    }

    /// Queues one prepared reservation and waits for its outcome.
    pub fn submit(&self, req: ReserveRequest) -> Result<Reservation> {
        let (reply, answer) = mpsc::sync_channel(1);
        self.tx.send(Job { req, reply }).map_err(|_| stopped())?;
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
