//! `goticket bench`: reproducible throughput and latency measurements through the
//! same service API every face uses.
//!
//! - `flash-sale`: a fresh event, M buyers on C threads, each one booking request;
//!   combined (the default) or one transaction per booking (`--no-combine`).
//! - `batched`: the floor the combiner aims at: one thread, N requests per
//!   transaction through the store's batch path.

use std::io::Write;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use anyhow::Result;
use goticket_core::{
    BookingRequest, Error, EventKey, NewEvent, Principal, Quantity, Service, SignedDuration, Timestamp,
};
use serde::Serialize;

use crate::args::{BatchedArgs, BenchCmd, FlashSaleArgs};
use crate::output::{Out, Tabular};

/// What a benchmark run measured.
#[derive(Debug, Serialize)]
pub struct BenchResult {
    scenario: &'static str,
    store: &'static str,
    combined: bool,
    capacity: u32,
    buyers: u32,
    concurrency: u32,
    qty: u32,
    bookings: u64,
    sold: u32,
    refused: u64,
    oversold: bool,
    #[serde(flatten)]
    timing: Timing,
    batches: Option<u64>,
    largest_batch: Option<u64>,
}

impl Tabular for BenchResult {
    fn headers() -> Vec<&'static str> {
        vec![
            "scenario",
            "store",
            "combined",
            "capacity",
            "buyers",
            "concurrency",
            "qty",
            "bookings",
            "sold",
            "refused",
            "oversold",
            "elapsed_ms",
            "bookings_per_sec",
            "p50_ms",
            "p95_ms",
            "p99_ms",
            "max_ms",
            "batches",
            "largest_batch",
        ]
    }
    fn row(&self) -> Vec<String> {
        let opt = |v: Option<u64>| v.map(|v| v.to_string()).unwrap_or_default();
        vec![
            self.scenario.into(),
            self.store.into(),
            self.combined.to_string(),
            self.capacity.to_string(),
            self.buyers.to_string(),
            self.concurrency.to_string(),
            self.qty.to_string(),
            self.bookings.to_string(),
            self.sold.to_string(),
            self.refused.to_string(),
            self.oversold.to_string(),
            format!("{:.1}", self.timing.elapsed_ms),
            format!("{:.0}", self.timing.bookings_per_sec),
            format!("{:.2}", self.timing.p50_ms),
            format!("{:.2}", self.timing.p95_ms),
            format!("{:.2}", self.timing.p99_ms),
            format!("{:.2}", self.timing.max_ms),
            opt(self.batches),
            opt(self.largest_batch),
        ]
    }
}

/// How long a run took and how its requests' latencies spread.
#[derive(Debug, Serialize)]
struct Timing {
    elapsed_ms: f64,
    bookings_per_sec: f64,
    p50_ms: f64,
    p95_ms: f64,
    p99_ms: f64,
    max_ms: f64,
}

impl Timing {
    /// From every request's latency, the run's length and the bookings it made.
    fn of(mut lat: Vec<Duration>, elapsed: Duration, bookings: u64) -> Self {
        lat.sort_unstable();
        Timing {
            elapsed_ms: ms(elapsed),
            bookings_per_sec: bookings as f64 / elapsed.as_secs_f64(),
            p50_ms: percentile(&lat, 0.50),
            p95_ms: percentile(&lat, 0.95),
            p99_ms: percentile(&lat, 0.99),
            max_ms: lat.last().map_or(0.0, |d| ms(*d)),
        }
    }
}

fn store_kind(db: &str) -> &'static str {
    crate::parse::Backend::of(db).name()
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    ms(sorted[i.min(sorted.len() - 1)])
}

fn fresh_event(s: &Service, p: &Principal, capacity: u32, label: &str) -> Result<EventKey> {
    let starts = s.now().checked_add(SignedDuration::from_hours(24 * 30))?;
    let n = NewEvent::new(
        format!("bench {label} {}", Timestamp::now()).parse()?,
        starts,
        starts.checked_add(SignedDuration::from_hours(3))?,
        capacity.try_into().map_err(|e: Error| e.in_field("--capacity"))?,
        "1.00 EUR".parse()?,
    );
    Ok(EventKey::Id(s.create_event(p, n)?.id))
}

fn quantity(qty: u32) -> Result<Quantity> {
    Ok(qty.try_into().map_err(|e: Error| e.in_field("--qty"))?)
}

/// After a run: the event must show exactly what its bookings add up to, within
/// capacity. With `shared` (other processes sold too) only the event-wide figures
/// are compared; otherwise this run's bookings must be all of them.
fn oversold(
    s: &Service,
    p: &Principal,
    event: &EventKey,
    bookings: u64,
    qty: u32,
    shared: bool,
) -> Result<(u32, bool)> {
    let e = s.event(p, event)?;
    let report = s.sales_report(p, Some(event))?;
    let confirmed = report.first().map_or(0, |r| r.confirmed_bookings);
    let mine = shared || (confirmed == bookings && u64::from(e.sold) == bookings * u64::from(qty));
    let consistent = mine && u64::from(e.sold) == confirmed * u64::from(qty) && e.sold + e.held <= e.capacity.get();
    Ok((e.sold, !consistent))
}

/// Runs a benchmark command.
pub fn run(s: &Service, p: &Principal, db: &str, cmd: BenchCmd, out: &mut Out<impl Write>) -> Result<()> {
    let result = match cmd {
        BenchCmd::FlashSale(a) => flash_sale(s, p, db, &a)?,
        BenchCmd::Batched(a) => batched(s, p, db, &a)?,
        #[cfg(feature = "http")]
        BenchCmd::Http(a) => http(&a)?,
    };
    out.one(&result)?;
    Ok(())
}

fn flash_sale(s: &Service, p: &Principal, db: &str, a: &FlashSaleArgs) -> Result<BenchResult> {
    if a.concurrency == 0 || a.concurrency > 1024 {
        return Err(Error::validation("--concurrency", "must be between 1 and 1024").into());
    }
    let qty = quantity(a.qty)?;
    let service = if a.no_combine { s.clone().without_combiner() } else { s.clone().with_max_batch(a.max_batch) };
    let (event, capacity) = match &a.event {
        Some(raw) => {
            let key: EventKey = raw.parse().map_err(|e: Error| e.in_field("--event"))?;
            let e = s.event(p, &key)?;
            (EventKey::Id(e.id), e.capacity.get())
        }
        None => (fresh_event(&service, p, a.capacity, "flash-sale")?, a.capacity),
    };
    let next = AtomicU32::new(0);
    let started = Instant::now();
    let per_thread: Vec<Result<(Vec<Duration>, u64, u64)>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..a.concurrency)
            .map(|_| {
                let (service, event, next) = (&service, &event, &next);
                scope.spawn(move || -> Result<(Vec<Duration>, u64, u64)> {
                    let (mut lat, mut ok, mut refused) = (Vec::new(), 0u64, 0u64);
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        if i >= a.buyers {
                            return Ok((lat, ok, refused));
                        }
                        let req = BookingRequest {
                            event: event.clone(),
                            customer: Some(format!("buyer{i}@bench.example.com").parse()?),
                            quantity: qty,
                            hold: None,
                            idempotency_key: None,
                        };
                        let t = Instant::now();
                        let outcome = service.reserve(p, req);
                        lat.push(t.elapsed());
                        match outcome {
                            Ok(_) => ok += 1,
                            Err(Error::SoldOut { .. }) => refused += 1,
                            Err(e) => return Err(e.into()),
                        }
                    }
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|_| Err(anyhow::anyhow!("a buyer thread panicked"))))
            .collect()
    });
    let elapsed = started.elapsed();
    let (mut lat, mut bookings, mut refused) = (Vec::new(), 0, 0);
    for r in per_thread {
        let (l, ok, no) = r?;
        lat.extend(l);
        bookings += ok;
        refused += no;
    }
    let (sold, oversold) = oversold(s, p, &event, bookings, a.qty, a.event.is_some())?;
    let stats = service.combiner_stats();
    Ok(BenchResult {
        scenario: "flash-sale",
        store: store_kind(db),
        combined: service.is_combining(),
        capacity,
        buyers: a.buyers,
        concurrency: a.concurrency,
        qty: a.qty,
        bookings,
        sold,
        refused,
        oversold,
        timing: Timing::of(lat, elapsed, bookings),
        batches: stats.map(|s| s.batches),
        largest_batch: stats.map(|s| s.largest_batch),
    })
}

/// One request of the HTTP load test: its status and how long it took.
#[cfg(feature = "http")]
fn http_book(agent: &ureq::Agent, url: &str, token: &str, i: u32) -> (u16, Duration) {
    let t = Instant::now();
    let body = format!(r#"{{"quantity":1,"customer":"http{i}@bench.example.com"}}"#);
    let status = match agent
        .post(url)
        .set("Authorization", &format!("Bearer {token}"))
        .set("Content-Type", "application/json")
        .send_string(&body)
    {
        Ok(r) => r.status(),
        Err(ureq::Error::Status(code, _)) => code,
        Err(_) => 0,
    };
    (status, t.elapsed())
}

/// `bench http`: many connections book one event of a running server until it is
/// sold out; every answer must be 201 or 409 (no 5xx), and the server's counters
/// must equal the 201s.
#[cfg(feature = "http")]
pub fn http(a: &crate::args::HttpBenchArgs) -> Result<BenchResult> {
    let base = a.url.trim_end_matches('/');
    let agent = ureq::AgentBuilder::new().max_idle_connections_per_host(a.concurrency as usize).build();
    let event_url = format!("{base}/v1/events/{}", a.event);
    let get_event = || -> Result<serde_json::Value> {
        Ok(agent.get(&event_url).set("Authorization", &format!("Bearer {}", a.token)).call()?.into_json()?)
    };
    let event = get_event()?;
    let capacity = event["capacity"].as_u64().unwrap_or(0) as u32;
    // Book by id, as front ends do: an id's owner is cached by the service, a slug is
    // looked up each time (a slug can move to another event).
    let id = event["id"].as_str().ok_or_else(|| anyhow::anyhow!("the server's event has no id"))?;
    let book_url = format!("{base}/v1/events/{id}/bookings");
    let (next, sold_out) = (AtomicU32::new(0), std::sync::atomic::AtomicBool::new(false));
    let started = Instant::now();
    let per_thread: Vec<(Vec<Duration>, u64, u64, u64)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..a.concurrency)
            .map(|_| {
                let (agent, book_url, next, sold_out) = (&agent, &book_url, &next, &sold_out);
                scope.spawn(move || {
                    let (mut lat, mut ok, mut refused, mut failed) = (Vec::new(), 0, 0, 0);
                    while !sold_out.load(Ordering::Relaxed) {
                        let (status, took) = http_book(agent, book_url, &a.token, next.fetch_add(1, Ordering::Relaxed));
                        lat.push(took);
                        match status {
                            201 => ok += 1,
                            409 => {
                                refused += 1;
                                sold_out.store(true, Ordering::Relaxed);
                            }
                            _ => failed += 1,
                        }
                    }
                    (lat, ok, refused, failed)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap_or_default()).collect()
    });
    let elapsed = started.elapsed();
    let (mut lat, mut bookings, mut refused, mut failed) = (Vec::new(), 0u64, 0u64, 0u64);
    for (l, ok, no, bad) in per_thread {
        lat.extend(l);
        bookings += ok;
        refused += no;
        failed += bad;
    }
    let e = get_event()?;
    let sold = e["sold"].as_u64().unwrap_or(0) as u32;
    if failed > 0 {
        return Err(anyhow::anyhow!("{failed} requests got neither 201 nor 409 (a 5xx or a transport error)"));
    }
    Ok(BenchResult {
        scenario: "http",
        store: "server",
        combined: true,
        capacity,
        buyers: next.load(Ordering::Relaxed),
        concurrency: a.concurrency,
        qty: 1,
        bookings,
        sold,
        refused,
        oversold: u64::from(sold) != bookings || sold > capacity,
        timing: Timing::of(lat, elapsed, bookings),
        batches: None,
        largest_batch: None,
    })
}

fn batched(s: &Service, p: &Principal, db: &str, a: &BatchedArgs) -> Result<BenchResult> {
    if a.batch == 0 || a.batch > 10_000 {
        return Err(Error::validation("--batch", "must be between 1 and 10000").into());
    }
    let qty = quantity(a.qty)?;
    let event = fresh_event(s, p, a.capacity, "batched")?;
    let buyers = a.capacity / a.qty.max(1);
    let (mut lat, mut bookings, mut refused) = (Vec::new(), 0u64, 0u64);
    let started = Instant::now();
    let mut i = 0;
    while i < buyers {
        let reqs = (i..(i + a.batch).min(buyers))
            .map(|n| {
                Ok(BookingRequest {
                    event: event.clone(),
                    customer: Some(format!("buyer{n}@bench.example.com").parse()?),
                    quantity: qty,
                    hold: None,
                    idempotency_key: None,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        i += reqs.len() as u32;
        let t = Instant::now();
        for outcome in s.reserve_many(p, reqs)? {
            match outcome {
                Ok(_) => bookings += 1,
                Err(Error::SoldOut { .. }) => refused += 1,
                Err(e) => return Err(e.into()),
            }
        }
        lat.push(t.elapsed());
    }
    let elapsed = started.elapsed();
    let (sold, oversold) = oversold(s, p, &event, bookings, a.qty, false)?;
    Ok(BenchResult {
        scenario: "batched",
        store: store_kind(db),
        combined: false,
        capacity: a.capacity,
        buyers,
        concurrency: 1,
        qty: a.qty,
        bookings,
        sold,
        refused,
        oversold,
        batches: Some(lat.len() as u64),
        timing: Timing::of(lat, elapsed, bookings),
        largest_batch: Some(u64::from(a.batch)),
    })
}
