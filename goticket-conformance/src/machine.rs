//! The state machine: random sequences of operations run against the store (through
//! the service) and against a reference model, compared outcome by outcome, with every
//! invariant of design section 3 checked on the store's own data after every step.
//!
//! The model is deliberately naive and independent of core's rules: it keeps a list of
//! bookings and recomputes every counter by summing them.

use std::collections::HashMap;

use goticket_core::{
    BookingCode, BookingFilter, BookingRequest, BookingStatus, ErrorKind, EventId, EventKey, EventPatch, HoldDuration,
    PageRequest, PageStart, Result as CoreResult, SignedDuration, TicketSecret, Timestamp,
};
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;

use crate::{Fixture, Harness, admin};

/// One booking request inside a [`Op::Reserve`] batch.
#[derive(Debug, Clone)]
pub struct Req {
    event: usize,
    customer: usize,
    qty: u32,
    hold_secs: Option<i64>,
    key: Option<u8>,
}

/// One step of a sequence.
#[derive(Debug, Clone)]
pub enum Op {
    /// Create an event.
    CreateEvent {
        /// Seats.
        capacity: u32,
        /// Per-customer limit.
        limit: Option<u32>,
    },
    /// Reserve a batch in one store transaction.
    Reserve(Vec<Req>),
    /// Confirm the n-th booking (modulo the count).
    Confirm(usize),
    /// Cancel the n-th booking.
    Cancel(usize),
    /// Cancel the n-th event.
    CancelEvent(usize),
    /// Set the n-th event's capacity.
    SetCapacity(usize, u32),
    /// Let time pass.
    Advance(i64),
    /// Run the hold sweeper.
    ExpireHolds,
    /// Check in ticket t of booking n.
    CheckIn(usize, usize),
}

/// Cases per run: `PROPTEST_CASES` or 64.
pub fn cases() -> u32 {
    std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(64)
}

fn req() -> impl Strategy<Value = Req> {
    (0usize..4, 0usize..3, 1u32..=4, prop::option::weighted(0.5, 1i64..=120), prop::option::weighted(0.3, 0u8..3))
        .prop_map(|(event, customer, qty, hold_secs, key)| Req { event, customer, qty, hold_secs, key })
}

/// The strategy for sequences of 1 to 40 operations.
pub fn ops() -> impl Strategy<Value = Vec<Op>> {
    let op = prop_oneof![
        2 => (1u32..=12, prop::option::weighted(0.5, 1u32..=5))
            .prop_map(|(capacity, limit)| Op::CreateEvent { capacity, limit }),
        8 => prop::collection::vec(req(), 1..=3).prop_map(Op::Reserve),
        3 => (0usize..64).prop_map(Op::Confirm),
        2 => (0usize..64).prop_map(Op::Cancel),
        1 => (0usize..4).prop_map(Op::CancelEvent),
        1 => (0usize..4, 1u32..=15).prop_map(|(e, c)| Op::SetCapacity(e, c)),
        3 => (1i64..=90).prop_map(Op::Advance),
        1 => Just(Op::ExpireHolds),
        2 => (0usize..64, 0usize..4).prop_map(|(b, t)| Op::CheckIn(b, t)),
    ];
    prop::collection::vec(op, 1..40)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum St {
    Held,
    Confirmed,
    Cancelled,
}

#[derive(Debug)]
struct MEvent {
    id: EventId,
    capacity: u32,
    limit: Option<u32>,
    cancelled: bool,
}

#[derive(Debug)]
struct MBooking {
    event: usize,
    customer: usize,
    qty: u32,
    hold_until: Option<Timestamp>,
    status: St,
    key: Option<u8>,
    code: BookingCode,
    secrets: Vec<TicketSecret>,
    checked: Vec<Option<Timestamp>>,
}

impl MBooking {
    fn status_at(&self, now: Timestamp) -> BookingStatus {
        match self.status {
            St::Held if self.hold_until.is_some_and(|t| t <= now) => BookingStatus::Expired,
            St::Held => BookingStatus::Held,
            St::Confirmed => BookingStatus::Confirmed,
            St::Cancelled => BookingStatus::Cancelled,
        }
    }
}

#[derive(Debug, Default)]
struct Model {
    events: Vec<MEvent>,
    bookings: Vec<MBooking>,
}

impl Model {
    fn sum(&self, event: usize, status: BookingStatus, now: Timestamp, customer: Option<usize>) -> u32 {
        self.bookings
            .iter()
            .filter(|b| b.event == event && b.status_at(now) == status && customer.is_none_or(|c| c == b.customer))
            .map(|b| b.qty)
            .sum()
    }
}

const CUSTOMERS: [&str; 3] = ["ann@example.com", "bob@example.com", "cat@example.com"];

fn kind<T>(r: &CoreResult<T>) -> Option<ErrorKind> {
    r.as_ref().err().map(|e| e.kind())
}

fn expect_kind<T: std::fmt::Debug>(what: &str, got: &CoreResult<T>, want: Option<ErrorKind>) -> Result<(), String> {
    if kind(got) != want {
        return Err(format!(
            "{what}: store gave {got:?}, model expected {}",
            want.map_or("success".into(), |k| k.to_string())
        ));
    }
    Ok(())
}

/// Runs one sequence; fails with the step, the operation and the disagreement.
pub fn run(fixture: Fixture, ops: &[Op]) -> Result<(), TestCaseError> {
    let h = Harness::new(fixture, 42);
    let mut m = Model::default();
    for (step, op) in ops.iter().enumerate() {
        apply(&h, &mut m, op)
            .and_then(|()| check(&h, &m))
            .map_err(|e| TestCaseError::fail(format!("step {step} {op:?}: {e}")))?;
    }
    Ok(())
}

fn apply(h: &Harness, m: &mut Model, op: &Op) -> Result<(), String> {
    let admin = admin();
    let s = &h.service;
    let now = s.now();
    match op {
        Op::CreateEvent { capacity, limit } => {
            let e = h.event(&admin, *capacity, "10.00 EUR", *limit);
            m.events.push(MEvent { id: e.id, capacity: *capacity, limit: *limit, cancelled: false });
        }
        Op::Reserve(reqs) => {
            if m.events.is_empty() {
                return Ok(());
            }
            let requests = reqs
                .iter()
                .map(|r| BookingRequest {
                    event: EventKey::Id(m.events[r.event % m.events.len()].id),
                    customer: Some(CUSTOMERS[r.customer].parse().expect("valid")),
                    quantity: r.qty.try_into().expect("1..=4"),
                    hold: r.hold_secs.map(|s| HoldDuration::new(SignedDuration::from_secs(s)).expect("1..=120s")),
                    idempotency_key: r.key.map(|k| format!("key-{k}").parse().expect("valid")),
                })
                .collect();
            let results = s.reserve_many(&admin, requests).map_err(|e| format!("batch failed: {e}"))?;
            for (r, got) in reqs.iter().zip(results) {
                let ev = r.event % m.events.len();
                if let Some(k) = r.key
                    && let Some(orig) = m.bookings.iter().find(|b| b.customer == r.customer && b.key == Some(k))
                {
                    let same =
                        orig.event == ev && orig.qty == r.qty && orig.hold_until.is_some() == r.hold_secs.is_some();
                    expect_kind("retry", &got, (!same).then_some(ErrorKind::Conflict))?;
                    if let Ok(res) = got
                        && (!res.replayed || res.booking.code != orig.code)
                    {
                        return Err(format!("retry did not replay {}: {res:?}", orig.code));
                    }
                    continue;
                }
                let e = &m.events[ev];
                let held = m.sum(ev, BookingStatus::Held, now, None);
                let sold = m.sum(ev, BookingStatus::Confirmed, now, None);
                let already = m.sum(ev, BookingStatus::Held, now, Some(r.customer))
                    + m.sum(ev, BookingStatus::Confirmed, now, Some(r.customer));
                let want = if e.cancelled {
                    Some(ErrorKind::NotOnSale)
                } else if e.limit.is_some_and(|l| already + r.qty > l) {
                    Some(ErrorKind::LimitExceeded)
                } else if e.capacity.saturating_sub(held + sold) < r.qty {
                    Some(ErrorKind::SoldOut)
                } else {
                    None
                };
                expect_kind("reserve", &got, want)?;
                if let Ok(res) = got {
                    let b = res.booking;
                    let status = if r.hold_secs.is_some() { BookingStatus::Held } else { BookingStatus::Confirmed };
                    if res.replayed
                        || b.status != status
                        || b.quantity.get() != r.qty
                        || b.tickets.len() != r.qty as usize
                    {
                        return Err(format!("reserve made the wrong booking: {b:?}"));
                    }
                    m.bookings.push(MBooking {
                        event: ev,
                        customer: r.customer,
                        qty: r.qty,
                        hold_until: b.expires_at,
                        status: if r.hold_secs.is_some() { St::Held } else { St::Confirmed },
                        key: r.key,
                        code: b.code.clone(),
                        secrets: b.tickets.iter().map(|t| t.secret.clone()).collect(),
                        checked: vec![None; r.qty as usize],
                    });
                }
            }
        }
        Op::Confirm(i) | Op::Cancel(i) => {
            if m.bookings.is_empty() {
                return Ok(());
            }
            let n = m.bookings.len();
            let b = &mut m.bookings[i % n];
            let current = b.status_at(now);
            let (got, next) = match op {
                Op::Confirm(_) => {
                    (s.confirm(&admin, &b.code), (current == BookingStatus::Held).then_some(St::Confirmed))
                }
                // A booking with a scanned ticket is used: it cannot be cancelled.
                _ => {
                    let used = b.checked.iter().any(Option::is_some);
                    (s.cancel_booking(&admin, &b.code), (current.is_live() && !used).then_some(St::Cancelled))
                }
            };
            expect_kind("transition", &got, next.is_none().then_some(ErrorKind::InvalidTransition))?;
            if let Some(next) = next {
                b.status = next;
            }
        }
        Op::CancelEvent(i) => {
            if m.events.is_empty() {
                return Ok(());
            }
            let ev = i % m.events.len();
            let got = s.cancel_event(&admin, &EventKey::Id(m.events[ev].id));
            expect_kind("cancel event", &got, m.events[ev].cancelled.then_some(ErrorKind::InvalidTransition))?;
            if got.is_ok() {
                m.events[ev].cancelled = true;
                for b in m.bookings.iter_mut().filter(|b| b.event == ev && b.status_at(now).is_live()) {
                    b.status = St::Cancelled;
                }
            }
        }
        Op::SetCapacity(i, c) => {
            if m.events.is_empty() {
                return Ok(());
            }
            let ev = i % m.events.len();
            let taken = m.sum(ev, BookingStatus::Held, now, None) + m.sum(ev, BookingStatus::Confirmed, now, None);
            let want = if m.events[ev].cancelled {
                Some(ErrorKind::InvalidTransition)
            } else if *c < taken {
                Some(ErrorKind::Conflict)
            } else {
                None
            };
            let patch = EventPatch { capacity: Some((*c).try_into().expect("1..=15")), ..Default::default() };
            let got = s.update_event(&admin, &EventKey::Id(m.events[ev].id), &patch);
            expect_kind("set capacity", &got, want)?;
            if got.is_ok() {
                m.events[ev].capacity = *c;
            }
        }
        Op::Advance(secs) => h.advance_secs(*secs),
        Op::ExpireHolds => {
            s.expire_holds(&admin).map_err(|e| format!("sweeper failed: {e}"))?;
        }
        Op::CheckIn(i, t) => {
            if m.bookings.is_empty() {
                return Ok(());
            }
            let n = m.bookings.len();
            let b = &mut m.bookings[i % n];
            let t = t % b.qty as usize;
            let got = s.check_in(&admin, &b.secrets[t]);
            let want = match (b.checked[t], b.status_at(now)) {
                (Some(_), _) => Some(ErrorKind::AlreadyCheckedIn),
                (None, BookingStatus::Confirmed) => None,
                (None, _) => Some(ErrorKind::InvalidTransition),
            };
            expect_kind("check in", &got, want)?;
            if let (Some(at), Err(goticket_core::Error::AlreadyCheckedIn { at: said })) = (b.checked[t], &got)
                && at != *said
            {
                return Err(format!("second scan says first was at {said}, model says {at}"));
            }
            if got.is_ok() {
                b.checked[t] = Some(now);
            }
        }
    }
    Ok(())
}

/// Invariants 1-4 on the store's own data, and agreement with the model.
fn check(h: &Harness, m: &Model) -> Result<(), String> {
    let admin = admin();
    let s = &h.service;
    let now = s.now();
    for (ev, me) in m.events.iter().enumerate() {
        let e = s.event(&admin, &EventKey::Id(me.id)).map_err(|e| e.to_string())?;
        let (held, sold) = (m.sum(ev, BookingStatus::Held, now, None), m.sum(ev, BookingStatus::Confirmed, now, None));
        if (e.held, e.sold, e.capacity.get()) != (held, sold, me.capacity) {
            return Err(format!(
                "event {ev}: store held/sold/capacity {}/{}/{}, model {held}/{sold}/{}",
                e.held, e.sold, e.capacity, me.capacity
            ));
        }
        if e.held + e.sold > e.capacity.get() || e.available != e.capacity.get() - e.held - e.sold {
            return Err(format!("event {ev}: counters broken: {e:?}"));
        }
        let filter = BookingFilter { event: Some(me.id), ..Default::default() };
        let page = PageRequest::new(1000, PageStart::First).expect("valid");
        let stored = s.list_bookings(&admin, filter, page).map_err(|e| e.to_string())?.items;
        let sum = |st: BookingStatus| stored.iter().filter(|b| b.status == st).map(|b| b.quantity.get()).sum::<u32>();
        if (sum(BookingStatus::Held), sum(BookingStatus::Confirmed)) != (e.held, e.sold) {
            return Err(format!("event {ev}: bookings do not add up to the counters {}/{}", e.held, e.sold));
        }
        if let Some(limit) = me.limit {
            let mut per: HashMap<&str, u32> = HashMap::new();
            for b in stored.iter().filter(|b| b.status.is_live()) {
                *per.entry(b.customer.as_str()).or_default() += b.quantity.get();
            }
            if let Some((c, q)) = per.into_iter().find(|(_, q)| *q > limit) {
                return Err(format!("event {ev}: {c} has {q} seats, limit {limit}"));
            }
        }
        for b in stored {
            let mb = m.bookings.iter().find(|x| x.code == b.code).ok_or(format!("unknown booking {}", b.code))?;
            if b.status != mb.status_at(now) {
                return Err(format!("booking {}: store says {}, model {}", b.code, b.status, mb.status_at(now)));
            }
            for (t, mt) in b.tickets.iter().zip(&mb.checked) {
                if t.checked_in_at != *mt {
                    return Err(format!("booking {} ticket {}: check-in time differs", b.code, t.seq));
                }
            }
        }
    }
    Ok(())
}
