//! `goticket demo`: what a newcomer sees first. Seeds a sample event into the database
//! and sells it out with concurrent buyers (buys, holds that get confirmed, holds left
//! to expire, cancellations), then shows the event, a page of bookings and the report.
//! Every step goes through the same service API as every other command.

use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use goticket_core::{
    BookingFilter, BookingRequest, Entropy, Error, EventKey, HoldDuration, NewEvent, OsEntropy, PageRequest, PageStart,
    Principal, Service, SignedDuration, Timestamp,
};

use crate::args::DemoArgs;
use crate::output::Out;

/// A tiny xorshift generator for the buyers' choices (not for secrets).
struct Dice(u64);

impl Dice {
    fn new() -> Self {
        let mut seed = [0u8; 8];
        OsEntropy.fill(&mut seed);
        Dice(u64::from_le_bytes(seed) | 1)
    }
    fn roll(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

#[derive(Default)]
struct Tally {
    bought: AtomicU64,
    confirmed: AtomicU64,
    left_to_expire: AtomicU64,
    cancelled: AtomicU64,
    sold_out: AtomicU64,
}

const SHORT_HOLD_SECS: i64 = 1;
const PER_CUSTOMER: u32 = 8;

/// One buyer: keeps booking until the event is sold out.
fn buyer(s: &Service, p: &Principal, event: &EventKey, tally: &Tally, allow_short_holds: bool) -> Result<()> {
    let mut dice = Dice::new();
    let capacity = u64::from(s.event(p, event)?.capacity.get());
    // Enough customers that their per-customer limits can always cover the capacity.
    let customers = (capacity / u64::from(PER_CUSTOMER) * 2).max(120);
    let mut refused_in_a_row = 0u32;
    loop {
        if refused_in_a_row > 10_000 {
            bail!("buyers were refused 10,000 times in a row without the event selling out");
        }
        let customer = format!("buyer{:03}@example.com", dice.roll(customers)).parse()?;
        let quantity = (1 + dice.roll(4) as u32).try_into()?;
        let roll = dice.roll(10);
        let hold = match roll {
            0..=4 => None,
            5..=7 => Some(HoldDuration::new(SignedDuration::from_mins(15))?),
            8 if allow_short_holds => Some(HoldDuration::new(SignedDuration::from_secs(SHORT_HOLD_SECS))?),
            _ => None,
        };
        let req =
            BookingRequest { event: event.clone(), customer: Some(customer), quantity, hold, idempotency_key: None };
        let outcome = s.reserve(p, req);
        refused_in_a_row = if outcome.is_ok() { 0 } else { refused_in_a_row + 1 };
        match outcome {
            Ok(r) => match (roll, hold) {
                (5..=7, Some(_)) => {
                    s.confirm(p, &r.booking.code)?;
                    tally.confirmed.fetch_add(1, Ordering::Relaxed);
                }
                (8, Some(_)) => {
                    tally.left_to_expire.fetch_add(1, Ordering::Relaxed);
                }
                (9, None) => {
                    s.cancel_booking(p, &r.booking.code)?;
                    tally.cancelled.fetch_add(1, Ordering::Relaxed);
                }
                _ => {
                    tally.bought.fetch_add(1, Ordering::Relaxed);
                }
            },
            Err(Error::SoldOut { available: 0, .. }) => {
                tally.sold_out.fetch_add(1, Ordering::Relaxed);
                return Ok(());
            }
            // A request for more seats than are left: try a smaller one.
            Err(Error::SoldOut { .. }) => {}
            Err(Error::LimitExceeded { .. }) => {}
            Err(e) => return Err(e.into()),
        }
    }
}

fn sell_out(
    s: &Service,
    p: &Principal,
    event: &EventKey,
    buyers: u32,
    tally: &Tally,
    allow_short_holds: bool,
) -> Result<()> {
    std::thread::scope(|scope| {
        let handles: Vec<_> =
            (0..buyers).map(|_| scope.spawn(|| buyer(s, p, event, tally, allow_short_holds))).collect();
        handles.into_iter().try_for_each(|h| h.join().unwrap_or_else(|_| bail!("a buyer thread panicked")))
    })
}

/// `demo`, or `demo-2`, `demo-3`... for the next runs on the same database, so the
/// event can be named by its slug afterwards (`goticket event show demo`).
fn free_slug(s: &Service, p: &Principal) -> Result<goticket_core::Slug> {
    for n in 1..=10_000u32 {
        let slug: goticket_core::Slug = if n == 1 { "demo".parse()? } else { format!("demo-{n}").parse()? };
        match s.event(p, &EventKey::Slug(slug.clone())) {
            Err(e) if e.kind() == goticket_core::ErrorKind::NotFound => return Ok(slug),
            Err(e) => return Err(e.into()),
            Ok(_) => {}
        }
    }
    Err(Error::conflict("every demo slug up to demo-10000 is taken").into())
}

/// Runs the demo.
pub fn run(s: &Service, p: &Principal, args: &DemoArgs, out: &mut Out<impl Write>) -> Result<()> {
    if args.buyers == 0 || args.buyers > 256 {
        return Err(Error::validation("--buyers", "must be between 1 and 256").into());
    }
    let now = s.now();
    let starts = now.checked_add(SignedDuration::from_hours(24 * 30))?;
    let mut n = NewEvent::new(
        "goticket demo night".parse()?,
        round_to_hour(starts),
        round_to_hour(starts).checked_add(SignedDuration::from_hours(4))?,
        args.capacity.try_into().map_err(|e: Error| e.in_field("--capacity"))?,
        "25.00 EUR".parse()?,
    );
    n.venue = Some("The Demo Hall".into());
    n.slug = Some(free_slug(s, p)?);
    n.max_per_customer = Some(PER_CUSTOMER.try_into()?);
    let event = s.create_event(p, n)?;
    let key = EventKey::Id(event.id);
    let tally = Arc::new(Tally::default());
    let started = Instant::now();

    sell_out(s, p, &key, args.buyers, &tally, true)?;
    let first_round = started.elapsed();
    // Let the short holds run out; the sweeper tidies them and the seats sell again.
    std::thread::sleep(Duration::from_millis(SHORT_HOLD_SECS as u64 * 1000 + 200));
    let expired = s.expire_holds(p)?;
    sell_out(s, p, &key, args.buyers, &tally, false)?;

    let event = s.event(p, &key)?;
    let filter = BookingFilter { event: Some(event.id), ..Default::default() };
    let bookings = s.list_bookings(p, filter, PageRequest::new(15, PageStart::First)?)?;
    let report = s.sales_report(p, Some(&key))?;
    let summary = format!(
        "{} buyers sold {} seats of {} in {:.0?} (first sell-out in {:.0?}): {} bought outright, {} holds confirmed, \
         {} holds left to expire ({} expired by the sweeper and sold again), {} cancelled; {} buyers were turned away \
         as sold out; oversold: {}",
        args.buyers,
        event.sold,
        event.capacity,
        started.elapsed(),
        first_round,
        tally.bought.load(Ordering::Relaxed),
        tally.confirmed.load(Ordering::Relaxed),
        tally.left_to_expire.load(Ordering::Relaxed),
        expired,
        tally.cancelled.load(Ordering::Relaxed),
        tally.sold_out.load(Ordering::Relaxed),
        event.sold + event.held > event.capacity.get(),
    );
    if out.is_json() {
        out.raw_json(&serde_json::json!({
            "event": event, "bookings": bookings, "report": { "items": report }, "summary": summary,
        }))?;
        return Ok(());
    }
    out.heading("The event")?;
    out.one(&event)?;
    out.heading("The first page of its bookings")?;
    out.page(&bookings)?;
    out.heading("Sales report")?;
    out.list(&report)?;
    out.heading(&summary)?;
    Ok(())
}

fn round_to_hour(t: Timestamp) -> Timestamp {
    let secs = t.as_second() - t.as_second().rem_euclid(3600);
    Timestamp::from_second(secs).unwrap_or(t)
}
