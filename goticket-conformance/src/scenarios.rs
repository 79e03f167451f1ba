//! One scenario per operation and per error, run by every store. Each takes a fresh
//! [`Fixture`] and panics with a message naming what broke.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use goticket_core::{
    BookingFilter, BookingRequest, BookingStatus, Error, ErrorKind, EventFilter, EventKey, EventPatch, EventStatus,
    HoldDuration, Page, PageRequest, PageStart, Principal, Role, Service, SignedDuration,
};

use crate::{Fixture, Harness, admin, key, new_event, principal};

fn h(f: Fixture) -> Harness {
    Harness::new(f, 7)
}

pub(crate) fn buy(
    s: &Service,
    p: &Principal,
    e: &EventKey,
    customer: &str,
    q: u32,
) -> goticket_core::Result<goticket_core::Reservation> {
    s.reserve(
        p,
        BookingRequest {
            event: e.clone(),
            customer: Some(customer.parse().expect("valid")),
            quantity: q.try_into().expect("1..=100"),
            hold: None,
            idempotency_key: None,
        },
    )
}

pub(crate) fn hold(
    s: &Service,
    p: &Principal,
    e: &EventKey,
    customer: &str,
    q: u32,
    secs: i64,
) -> goticket_core::Result<goticket_core::Reservation> {
    s.reserve(
        p,
        BookingRequest {
            event: e.clone(),
            customer: Some(customer.parse().expect("valid")),
            quantity: q.try_into().expect("1..=100"),
            hold: Some(HoldDuration::new(SignedDuration::from_secs(secs)).expect("valid hold")),
            idempotency_key: None,
        },
    )
}

/// A prepared request for one seat of `event`, with the given booking code (tests
/// that plant collisions choose it).
pub(crate) fn one_seat(
    h: &Harness,
    entropy: &goticket_core::SeededEntropy,
    event: goticket_core::EventId,
    customer: &str,
    code: &goticket_core::BookingCode,
) -> goticket_core::ReserveRequest {
    goticket_core::ReserveRequest {
        id: goticket_core::BookingId::generate(&*h.clock, entropy),
        code: code.clone(),
        event_id: event,
        customer: customer.parse().expect("valid"),
        actor: customer.parse().expect("valid"),
        quantity: 1u32.try_into().expect("valid"),
        hold_until: None,
        idempotency_key: None,
        external_id: None,
        secrets: vec![goticket_core::TicketSecret::generate(entropy)],
        restore: None,
    }
}

pub(crate) fn kind<T: std::fmt::Debug>(r: goticket_core::Result<T>) -> ErrorKind {
    r.expect_err("the operation should have been refused").kind()
}

pub(crate) fn counters(s: &Service, e: &EventKey) -> (u32, u32, u32) {
    let e = s.event(&admin(), e).expect("event exists");
    (e.held, e.sold, e.available)
}

fn all<T>(p: Page<T>) -> Vec<T> {
    p.items
}

fn page(limit: u32, start: PageStart) -> PageRequest {
    PageRequest::new(limit, start).expect("valid page")
}

/// Create an event, show it by id and by slug, with every field kept.
pub fn create_show_and_find_by_slug(f: Fixture) {
    let h = h(f);
    let mut n = new_event("Jazz at the Lake", 120, "12.50 EUR");
    n.slug = Some("jazz-lake".parse().expect("valid"));
    n.venue = Some("Lakeside".into());
    n.description = Some("Two sets.\nBring a coat.".into());
    n.max_per_customer = Some(4u32.try_into().expect("valid"));
    n.sales_start = Some("2027-01-01T00:00:00Z".parse().expect("valid"));
    n.sales_end = Some("2027-06-01T18:00:00Z".parse().expect("valid"));
    let created = h.service.create_event(&admin(), n).expect("created");
    let by_id = h.service.event(&admin(), &key(&created)).expect("by id");
    let by_slug = h.service.event(&admin(), &"jazz-lake".parse().expect("valid")).expect("by slug");
    assert_eq!(by_id, created, "stored event differs from created one");
    assert_eq!(by_slug, created);
    assert_eq!(h.service.event_id(&admin(), &"jazz-lake".parse().expect("valid")).expect("by slug"), created.id);
    assert_eq!(h.service.event_id(&admin(), &key(&created)).expect("by id"), created.id);
    assert_eq!((created.capacity.get(), created.available, created.held, created.sold), (120, 120, 0, 0));
    assert_eq!(created.organizer.as_str(), "admin@example.com");
    assert_eq!(created.status, EventStatus::Scheduled);
}

/// A second event with a taken slug is a conflict, and nothing is written.
pub fn duplicate_slug_conflicts(f: Fixture) {
    let h = h(f);
    let mut n = new_event("A", 10, "1 EUR");
    n.slug = Some("same".parse().expect("valid"));
    h.service.create_event(&admin(), n.clone()).expect("first");
    assert_eq!(kind(h.service.create_event(&admin(), n)), ErrorKind::Conflict);
    let other = h.service.create_event(&admin(), new_event("B", 10, "1 EUR")).expect("second");
    let patch = EventPatch { slug: Some(Some("same".parse().expect("valid"))), ..Default::default() };
    assert_eq!(kind(h.service.update_event(&admin(), &key(&other), &patch)), ErrorKind::Conflict);
    let events =
        all(h.service.list_events(&admin(), &EventFilter::default(), page(100, PageStart::First)).expect("list"));
    assert_eq!(events.len(), 2);
}

/// Filters by start date, price and status; pages by cursor and by offset.
pub fn list_filters_and_pages(f: Fixture) {
    let h = h(f);
    let a = admin();
    let mut ids = Vec::new();
    for day in 1..=7 {
        let mut n = new_event(&format!("Day {day}"), 10, &format!("{day}.00 EUR"));
        n.starts_at = format!("2027-07-0{day}T19:00:00Z").parse().expect("valid");
        n.ends_at = format!("2027-07-0{day}T22:00:00Z").parse().expect("valid");
        ids.push(h.service.create_event(&a, n).expect("created").id);
    }
    h.service.create_event(&a, new_event("Dollars", 10, "3.00 USD")).expect("created");
    h.service.cancel_event(&a, &EventKey::Id(ids[6])).expect("cancelled");

    let list =
        |filter: EventFilter| all(h.service.list_events(&a, &filter, page(100, PageStart::First)).expect("list"));
    let range = EventFilter {
        starts_from: Some("2027-07-02T00:00:00Z".parse().expect("valid")),
        starts_before: Some("2027-07-05T00:00:00Z".parse().expect("valid")),
        ..Default::default()
    };
    let names: Vec<String> = list(range).iter().map(|e| e.name.to_string()).collect();
    assert_eq!(names, ["Day 2", "Day 3", "Day 4"]);
    let price = EventFilter {
        min_price: Some("2.50 EUR".parse().expect("valid")),
        max_price: Some("5.00 EUR".parse().expect("valid")),
        ..Default::default()
    };
    let names: Vec<String> = list(price).iter().map(|e| e.name.to_string()).collect();
    assert_eq!(names, ["Day 3", "Day 4", "Day 5"], "price range is inclusive and same-currency only");
    let cancelled = EventFilter { status: Some(EventStatus::Cancelled), ..Default::default() };
    assert_eq!(list(cancelled).iter().map(|e| e.id).collect::<Vec<_>>(), [ids[6]]);

    let mut seen = Vec::new();
    let mut start = PageStart::First;
    loop {
        let p = h.service.list_events(&a, &EventFilter::default(), page(3, start)).expect("page");
        assert!(p.items.len() <= 3);
        seen.extend(p.items.iter().map(|e| e.id));
        match p.next_cursor {
            Some(c) => start = PageStart::After(goticket_core::Cursor::decode(&c).expect("own cursor decodes")),
            None => break,
        }
    }
    assert_eq!(seen.len(), 8, "cursor paging visits every event once");
    assert_eq!(&seen[1..], &ids[..], "ordered by start time (the June event first)");
    let by_offset =
        all(h.service.list_events(&a, &EventFilter::default(), page(2, PageStart::Offset(5))).expect("offset"));
    assert_eq!(by_offset.iter().map(|e| e.id).collect::<Vec<_>>(), seen[5..7]);
}

/// Hold, confirm, cancel: the counters follow each step.
pub fn hold_confirm_cancel_flow(f: Fixture) {
    let h = h(f);
    let a = admin();
    let e = key(&h.event(&a, 10, "20 EUR", None));
    let r = hold(&h.service, &a, &e, "ann@example.com", 3, 900).expect("hold");
    assert!(!r.replayed);
    assert_eq!(r.booking.status, BookingStatus::Held);
    assert_eq!(r.booking.expires_at, Some(h.service.now() + SignedDuration::from_secs(900)));
    assert_eq!(r.booking.tickets.len(), 3);
    assert_eq!(counters(&h.service, &e), (3, 0, 7));
    let shown = h.service.booking(&a, &r.booking.code).expect("show");
    assert_eq!(shown, r.booking, "a stored booking reads back the same");
    let c = h.service.confirm(&a, &r.booking.code).expect("confirm");
    assert_eq!(c.status, BookingStatus::Confirmed);
    assert_eq!(counters(&h.service, &e), (0, 3, 7));
    assert_eq!(kind(h.service.confirm(&a, &r.booking.code)), ErrorKind::InvalidTransition);
    let x = h.service.cancel_booking(&a, &r.booking.code).expect("cancel");
    assert_eq!(x.status, BookingStatus::Cancelled);
    assert_eq!(counters(&h.service, &e), (0, 0, 10));
    let err = h.service.cancel_booking(&a, &r.booking.code).expect_err("final");
    assert_eq!(err.to_string(), "cannot cancel a booking that is cancelled");
}

/// Buying outright confirms at once; cancelling releases.
pub fn buy_outright_and_cancel(f: Fixture) {
    let h = h(f);
    let a = admin();
    let e = key(&h.event(&a, 5, "20 EUR", None));
    let r = buy(&h.service, &a, &e, "ann@example.com", 2).expect("buy");
    assert_eq!((r.booking.status, r.booking.expires_at), (BookingStatus::Confirmed, None));
    assert_eq!(r.booking.unit_price, "20 EUR".parse().expect("valid"));
    assert_eq!(counters(&h.service, &e), (0, 2, 3));
    let secrets: std::collections::HashSet<_> = r.booking.tickets.iter().map(|t| t.secret.clone()).collect();
    assert_eq!(secrets.len(), 2, "every ticket has its own secret");
    h.service.cancel_booking(&a, &r.booking.code).expect("cancel");
    assert_eq!(counters(&h.service, &e), (0, 0, 5));
}

/// A request past capacity is refused and says how many were left.
pub fn sold_out_says_what_is_left(f: Fixture) {
    let h = h(f);
    let a = admin();
    let e = key(&h.event(&a, 3, "1 EUR", None));
    buy(&h.service, &a, &e, "ann@example.com", 2).expect("fits");
    match buy(&h.service, &a, &e, "bob@example.com", 2) {
        Err(Error::SoldOut { requested: 2, available: 1 }) => {}
        other => panic!("expected sold out with 1 left, got {other:?}"),
    }
    hold(&h.service, &a, &e, "bob@example.com", 1, 60).expect("last seat");
    assert_eq!(kind(buy(&h.service, &a, &e, "cat@example.com", 1)), ErrorKind::SoldOut);
    assert_eq!(counters(&h.service, &e), (1, 2, 0));
}

/// Holds and sales both count against the per-customer limit; others are unaffected.
pub fn per_customer_limit_counts_holds_and_sales(f: Fixture) {
    let h = h(f);
    let a = admin();
    let e = key(&h.event(&a, 50, "1 EUR", Some(4)));
    hold(&h.service, &a, &e, "ann@example.com", 2, 60).expect("hold 2");
    buy(&h.service, &a, &e, "ann@example.com", 2).expect("buy 2");
    match buy(&h.service, &a, &e, "ann@example.com", 1) {
        Err(Error::LimitExceeded { limit: 4, already: 4, requested: 1 }) => {}
        other => panic!("expected limit exceeded, got {other:?}"),
    }
    buy(&h.service, &a, &e, "bob@example.com", 4).expect("another customer has their own limit");
    assert_eq!(kind(buy(&h.service, &a, &e, "ann@example.com", 5)), ErrorKind::LimitExceeded);
    // An expired hold no longer counts.
    h.advance_secs(61);
    buy(&h.service, &a, &e, "ann@example.com", 2).expect("expired hold frees the limit");
}

/// The same key from the same customer never books twice.
pub fn idempotent_retry_and_conflict(f: Fixture) {
    let h = h(f);
    let a = admin();
    let e = key(&h.event(&a, 10, "1 EUR", None));
    let req = |customer: &str, q: u32| BookingRequest {
        event: e.clone(),
        customer: Some(customer.parse().expect("valid")),
        quantity: q.try_into().expect("valid"),
        hold: None,
        idempotency_key: Some("order-1".parse().expect("valid")),
    };
    let first = h.service.reserve(&a, req("ann@example.com", 2)).expect("first");
    let again = h.service.reserve(&a, req("ann@example.com", 2)).expect("retry");
    assert!(again.replayed && !first.replayed);
    assert_eq!(again.booking.code, first.booking.code);
    assert_eq!(counters(&h.service, &e), (0, 2, 8), "the retry took no seats");
    assert_eq!(kind(h.service.reserve(&a, req("ann@example.com", 3))), ErrorKind::Conflict);
    let other = h.service.reserve(&a, req("bob@example.com", 2)).expect("keys are per customer");
    assert!(!other.replayed);
    assert_eq!(counters(&h.service, &e), (0, 4, 6));
}

/// Invariant 4: a hold past its expiry never blocks a buyer and is never reported as
/// held, even before the sweeper runs; confirming it is refused.
pub fn overdue_holds_never_block_or_count(f: Fixture) {
    let h = h(f);
    let a = admin();
    let e = key(&h.event(&a, 2, "1 EUR", None));
    let held = hold(&h.service, &a, &e, "ann@example.com", 2, 30).expect("hold all");
    assert_eq!(kind(buy(&h.service, &a, &e, "bob@example.com", 1)), ErrorKind::SoldOut);
    h.advance_secs(30);
    assert_eq!(counters(&h.service, &e), (0, 0, 2), "an overdue hold is not counted by reads");
    assert_eq!(h.service.booking(&a, &held.booking.code).expect("show").status, BookingStatus::Expired);
    let listed = all(h
        .service
        .list_bookings(
            &a,
            BookingFilter { status: Some(BookingStatus::Expired), ..Default::default() },
            page(10, PageStart::First),
        )
        .expect("list"));
    assert_eq!(listed.len(), 1);
    let err = h.service.confirm(&a, &held.booking.code).expect_err("expired");
    assert_eq!(err.to_string(), "cannot confirm a booking that is expired");
    buy(&h.service, &a, &e, "bob@example.com", 2).expect("the seats are free again");
    assert_eq!(counters(&h.service, &e), (0, 2, 0));
    let report = h.service.sales_report(&a, Some(&e)).expect("report");
    assert_eq!((report[0].held, report[0].sold), (0, 2));
}

/// The sweeper writes what reads already report, and says how many it expired.
pub fn sweeper_expires_and_reports(f: Fixture) {
    let h = h(f);
    let a = admin();
    let e1 = key(&h.event(&a, 10, "1 EUR", None));
    let e2 = key(&h.event(&a, 10, "1 EUR", None));
    hold(&h.service, &a, &e1, "ann@example.com", 1, 10).expect("hold");
    hold(&h.service, &a, &e2, "bob@example.com", 2, 10).expect("hold");
    let keep = hold(&h.service, &a, &e2, "cat@example.com", 3, 600).expect("hold");
    assert_eq!(h.service.expire_holds(&a).expect("sweep"), 0, "nothing overdue yet");
    h.advance_secs(11);
    assert_eq!(h.service.expire_holds(&a).expect("sweep"), 2);
    assert_eq!(h.service.expire_holds(&a).expect("sweep"), 0, "idempotent");
    assert_eq!(counters(&h.service, &e2), (3, 0, 7));
    assert_eq!(h.service.booking(&a, &keep.booking.code).expect("show").status, BookingStatus::Held);
}

/// Cancelling an event cancels its live bookings and blocks new ones and changes.
pub fn cancel_event_cascades(f: Fixture) {
    let h = h(f);
    let a = admin();
    let e = key(&h.event(&a, 10, "1 EUR", None));
    let held = hold(&h.service, &a, &e, "ann@example.com", 2, 600).expect("hold");
    let sold = buy(&h.service, &a, &e, "bob@example.com", 3).expect("buy");
    let c = h.service.cancel_event(&a, &e).expect("cancel");
    assert_eq!((c.status, c.held, c.sold, c.available), (EventStatus::Cancelled, 0, 0, 10));
    for code in [&held.booking.code, &sold.booking.code] {
        assert_eq!(h.service.booking(&a, code).expect("show").status, BookingStatus::Cancelled);
    }
    assert_eq!(kind(buy(&h.service, &a, &e, "cat@example.com", 1)), ErrorKind::NotOnSale);
    assert_eq!(kind(h.service.cancel_event(&a, &e)), ErrorKind::InvalidTransition);
    let patch = EventPatch { name: Some("Back on".parse().expect("valid")), ..Default::default() };
    assert_eq!(kind(h.service.update_event(&a, &e, &patch)), ErrorKind::InvalidTransition);
    assert_eq!(counters(&h.service, &e), (0, 0, 10));
}

/// Capacity may rise at any time and fall only to held + sold.
pub fn capacity_rises_and_falls_only_to_taken(f: Fixture) {
    let h = h(f);
    let a = admin();
    let e = key(&h.event(&a, 5, "1 EUR", None));
    buy(&h.service, &a, &e, "ann@example.com", 3).expect("buy");
    hold(&h.service, &a, &e, "bob@example.com", 1, 60).expect("hold");
    let cap = |c: u32| EventPatch { capacity: Some(c.try_into().expect("valid")), ..Default::default() };
    assert_eq!(kind(h.service.update_event(&a, &e, &cap(3))), ErrorKind::Conflict);
    assert_eq!(h.service.update_event(&a, &e, &cap(4)).expect("down to taken").available, 0);
    assert_eq!(kind(buy(&h.service, &a, &e, "cat@example.com", 1)), ErrorKind::SoldOut);
    assert_eq!(h.service.update_event(&a, &e, &cap(100)).expect("up").available, 96);
    buy(&h.service, &a, &e, "cat@example.com", 1).expect("fits now");
    // Once the hold is overdue its seat no longer counts as taken.
    h.advance_secs(61);
    assert_eq!(h.service.update_event(&a, &e, &cap(4)).expect("down past an expired hold").available, 0);
}

/// A ticket is checked in at most once; the second scan says when the first was.
pub fn check_in_once(f: Fixture) {
    let h = h(f);
    let a = admin();
    let e = key(&h.event(&a, 10, "1 EUR", None));
    let b = buy(&h.service, &a, &e, "ann@example.com", 2).expect("buy").booking;
    let first_at = h.service.now();
    let c = h.service.check_in(&a, &b.tickets[0].secret).expect("first scan");
    assert_eq!((c.seq, c.of, c.checked_in_at), (1, 2, first_at));
    assert_eq!(c.booking_code, b.code);
    h.advance_secs(5);
    match h.service.check_in(&a, &b.tickets[0].secret) {
        Err(Error::AlreadyCheckedIn { at }) => assert_eq!(at, first_at),
        other => panic!("expected already checked in, got {other:?}"),
    }
    h.service.check_in(&a, &b.tickets[1].secret).expect("the other seat");
    let shown = h.service.booking(&a, &b.code).expect("show");
    assert!(shown.tickets.iter().all(|t| t.checked_in_at.is_some()));
    let held = hold(&h.service, &a, &e, "bob@example.com", 1, 60).expect("hold").booking;
    assert_eq!(kind(h.service.check_in(&a, &held.tickets[0].secret)), ErrorKind::InvalidTransition);
    let unknown = goticket_core::TicketSecret::generate(&goticket_core::SeededEntropy::new(999));
    assert_eq!(kind(h.service.check_in(&a, &unknown)), ErrorKind::NotFound);
}

/// In one batch, each request gets its own outcome and a refusal does not poison the
/// others.
pub fn batch_outcomes_are_independent(f: Fixture) {
    let h = h(f);
    let a = admin();
    let e = key(&h.event(&a, 5, "1 EUR", None));
    let gone = h.service.create_event(&a, new_event("Gone", 5, "1 EUR")).expect("event");
    h.service.cancel_event(&a, &key(&gone)).expect("cancel");
    let r = |event: &EventKey, q: u32| BookingRequest {
        event: event.clone(),
        customer: Some("ann@example.com".parse().expect("valid")),
        quantity: q.try_into().expect("valid"),
        hold: None,
        idempotency_key: None,
    };
    let missing: EventKey = "no-such-event".parse().expect("valid slug");
    let out = h
        .service
        .reserve_many(&a, vec![r(&e, 3), r(&e, 3), r(&key(&gone), 1), r(&missing, 1), r(&e, 2)])
        .expect("batch");
    let kinds: Vec<Option<ErrorKind>> = out.iter().map(|o| o.as_ref().err().map(|e| e.kind())).collect();
    assert_eq!(
        kinds,
        [None, Some(ErrorKind::SoldOut), Some(ErrorKind::NotOnSale), Some(ErrorKind::NotFound), None],
        "seats go out in arrival order"
    );
    assert_eq!(counters(&h.service, &e), (0, 5, 0));
}

/// Two requests of one customer in one batch: the limit and the key still hold.
pub fn batch_same_customer_limit_and_key(f: Fixture) {
    let h = h(f);
    let a = admin();
    let e = key(&h.event(&a, 50, "1 EUR", Some(3)));
    let r = |q: u32, k: Option<&str>| BookingRequest {
        event: e.clone(),
        customer: Some("ann@example.com".parse().expect("valid")),
        quantity: q.try_into().expect("valid"),
        hold: None,
        idempotency_key: k.map(|k| k.parse().expect("valid")),
    };
    let out =
        h.service.reserve_many(&a, vec![r(2, None), r(2, None), r(1, Some("k")), r(1, Some("k"))]).expect("batch");
    assert!(out[0].is_ok());
    assert_eq!(out[1].as_ref().map_err(|e| e.kind()).err(), Some(ErrorKind::LimitExceeded));
    let (first, again) = (out[2].as_ref().expect("third"), out[3].as_ref().expect("retry in the same batch"));
    assert!(!first.replayed && again.replayed);
    assert_eq!(first.booking.code, again.booking.code);
    assert_eq!(counters(&h.service, &e), (0, 3, 47));
}

/// Sales windows and the event's end stop sales.
pub fn sales_window_and_end(f: Fixture) {
    let h = h(f);
    let a = admin();
    let mut n = new_event("Windowed", 10, "1 EUR");
    n.sales_start = Some(crate::epoch() + SignedDuration::from_secs(60));
    n.sales_end = Some(crate::epoch() + SignedDuration::from_secs(120));
    let e = key(&h.service.create_event(&a, n).expect("event"));
    assert!(buy(&h.service, &a, &e, "ann@example.com", 1).expect_err("not yet").to_string().contains("sales open"));
    h.advance_secs(60);
    buy(&h.service, &a, &e, "ann@example.com", 1).expect("open");
    h.advance_secs(60);
    assert_eq!(kind(buy(&h.service, &a, &e, "ann@example.com", 1)), ErrorKind::NotOnSale);
    let mut past = new_event("Soon over", 10, "1 EUR");
    past.starts_at = crate::epoch();
    past.ends_at = crate::epoch() + SignedDuration::from_secs(200);
    past.allow_past = true; // under way already
    let p = key(&h.service.create_event(&a, past).expect("event"));
    h.advance_secs(100);
    assert!(buy(&h.service, &a, &p, "ann@example.com", 1).expect_err("ended").to_string().contains("ended"));
}

/// Unknown events, bookings and tickets are not found.
pub fn not_found_errors(f: Fixture) {
    let h = h(f);
    let a = admin();
    let missing: EventKey = "nope".parse().expect("valid slug");
    assert_eq!(kind(h.service.event(&a, &missing)), ErrorKind::NotFound);
    assert_eq!(kind(h.service.event_id(&a, &missing)), ErrorKind::NotFound);
    assert_eq!(kind(buy(&h.service, &a, &missing, "ann@example.com", 1)), ErrorKind::NotFound);
    let code: goticket_core::BookingCode = "AAAA-BBBB-CCCC".parse().expect("valid");
    assert_eq!(kind(h.service.booking(&a, &code)), ErrorKind::NotFound);
    assert_eq!(kind(h.service.confirm(&a, &code)), ErrorKind::NotFound);
    assert_eq!(kind(h.service.cancel_booking(&a, &code)), ErrorKind::NotFound);
    assert_eq!(kind(h.service.cancel_event(&a, &missing)), ErrorKind::NotFound);
    assert_eq!(kind(h.service.sales_report(&a, Some(&missing))), ErrorKind::NotFound);
}

/// The role rules of design section 3.
pub fn role_rules(f: Fixture) {
    let h = h(f);
    let s = &h.service;
    let a = admin();
    let org = principal("org@example.com", Role::Organizer);
    let rival = principal("rival@example.com", Role::Organizer);
    let ann = principal("ann@example.com", Role::Customer);
    let bob = principal("bob@example.com", Role::Customer);
    assert_eq!(kind(s.create_event(&ann, new_event("Mine", 10, "1 EUR"))), ErrorKind::Forbidden);
    let mut for_rival = new_event("Not yours", 10, "1 EUR");
    for_rival.organizer = Some("rival@example.com".parse().expect("valid"));
    assert_eq!(kind(s.create_event(&org, for_rival.clone())), ErrorKind::Forbidden);
    let rivals = s.create_event(&a, for_rival).expect("an admin creates for anyone");
    assert_eq!(rivals.organizer.as_str(), "rival@example.com");
    let e = h.event(&org, 10, "1 EUR", None);
    assert_eq!(e.organizer.as_str(), "org@example.com");
    let ek = key(&e);
    let rename = EventPatch { name: Some("Renamed".parse().expect("valid")), ..Default::default() };
    assert_eq!(kind(s.update_event(&rival, &ek, &rename)), ErrorKind::Forbidden);
    assert_eq!(kind(s.update_event(&ann, &ek, &rename)), ErrorKind::Forbidden);
    assert_eq!(kind(s.cancel_event(&rival, &ek)), ErrorKind::Forbidden);
    s.update_event(&org, &ek, &rename).expect("the owner updates");
    assert!(s.event(&ann, &ek).is_ok(), "events are public");

    assert_eq!(kind(buy(s, &ann, &ek, "bob@example.com", 1)), ErrorKind::Forbidden, "customers book for themselves");
    let anns = s.reserve(&ann, BookingRequest::buy(ek.clone(), 1u32.try_into().expect("valid"))).expect("own booking");
    assert_eq!(anns.booking.customer.as_str(), "ann@example.com", "customer defaults to the principal");
    buy(s, &org, &ek, "bob@example.com", 1).expect("an organizer books for anyone on own event");
    assert_eq!(kind(buy(s, &rival, &ek, "bob@example.com", 1)), ErrorKind::Forbidden);
    buy(s, &rival, &key(&rivals), "zed@example.com", 1).expect("rival on own event");

    let code = &anns.booking.code;
    assert_eq!(kind(s.booking(&bob, code)), ErrorKind::Forbidden);
    assert_eq!(kind(s.cancel_booking(&bob, code)), ErrorKind::Forbidden);
    assert_eq!(kind(s.booking(&rival, code)), ErrorKind::Forbidden);
    assert!(s.booking(&org, code).is_ok() && s.booking(&ann, code).is_ok());

    let list = |p: &Principal, filter: BookingFilter| s.list_bookings(p, filter, page(100, PageStart::First));
    assert_eq!(all(list(&ann, BookingFilter::default()).expect("own")).len(), 1);
    let bobs = BookingFilter { customer: Some("bob@example.com".parse().expect("valid")), ..Default::default() };
    assert_eq!(kind(list(&ann, bobs)), ErrorKind::Forbidden);
    assert_eq!(all(list(&org, BookingFilter::default()).expect("own events")).len(), 2);
    assert_eq!(all(list(&rival, BookingFilter::default()).expect("own events")).len(), 1);
    assert_eq!(kind(list(&rival, BookingFilter { event: Some(e.id), ..Default::default() })), ErrorKind::Forbidden);
    assert_eq!(all(list(&a, BookingFilter::default()).expect("all")).len(), 3);

    let secret = &anns.booking.tickets[0].secret;
    assert_eq!(kind(s.check_in(&ann, secret)), ErrorKind::Forbidden);
    assert_eq!(kind(s.check_in(&rival, secret)), ErrorKind::Forbidden);
    s.check_in(&org, secret).expect("the organizer checks in");

    assert_eq!(kind(s.sales_report(&ann, None)), ErrorKind::Forbidden);
    assert_eq!(kind(s.sales_report(&rival, Some(&ek))), ErrorKind::Forbidden);
    assert_eq!(s.sales_report(&org, None).expect("own").len(), 1);
    assert_eq!(s.sales_report(&a, None).expect("all").len(), 2);
    assert_eq!(kind(s.expire_holds(&org)), ErrorKind::Forbidden);
    let unscanned = s
        .reserve(&ann, BookingRequest::buy(ek.clone(), 1u32.try_into().expect("valid")))
        .expect("ann books again")
        .booking;
    s.cancel_booking(&ann, &unscanned.code).expect("a customer cancels their own booking");
    assert_eq!(kind(s.cancel_booking(&ann, code)), ErrorKind::InvalidTransition, "not once it was scanned");
}

/// The report's figures: seats, bookings, check-ins and revenue.
pub fn sales_report_figures(f: Fixture) {
    let h = h(f);
    let a = admin();
    let e = key(&h.event(&a, 20, "12.50 EUR", None));
    let other = key(&h.event(&a, 5, "1000 JPY", None));
    let b = buy(&h.service, &a, &e, "ann@example.com", 3).expect("buy").booking;
    buy(&h.service, &a, &e, "bob@example.com", 1).expect("buy");
    hold(&h.service, &a, &e, "cat@example.com", 2, 600).expect("hold");
    let x = buy(&h.service, &a, &e, "dan@example.com", 4).expect("buy").booking;
    h.service.cancel_booking(&a, &x.code).expect("cancel");
    h.service.check_in(&a, &b.tickets[0].secret).expect("check in");
    buy(&h.service, &a, &other, "ann@example.com", 2).expect("buy");
    let r = h.service.sales_report(&a, Some(&e)).expect("report");
    assert_eq!(r.len(), 1);
    let r = &r[0];
    assert_eq!((r.capacity, r.held, r.sold, r.available), (20, 2, 4, 14));
    assert_eq!((r.confirmed_bookings, r.checked_in), (2, 1));
    assert_eq!(r.revenue.to_string(), "50.00 EUR");
    let all = h.service.sales_report(&a, None).expect("all");
    assert_eq!(all.len(), 2);
    let yen = all.iter().find(|r| r.revenue.currency().code() == "JPY").expect("the JPY event is listed");
    assert_eq!(yen.revenue.to_string(), "2000 JPY");
    // The totals over every event (the store's own query, not the default's sum):
    // the live hold counts, an overdue one does not.
    hold(&h.service, &a, &other, "eve@example.com", 1, 60).expect("hold");
    h.advance_secs(120);
    let totals = h.service.seat_totals(&a).expect("totals");
    assert_eq!((totals.held, totals.sold), (2, 6), "an overdue hold is not counted");
    let all = h.service.sales_report(&a, None).expect("all");
    assert_eq!(totals.held, all.iter().map(|r| u64::from(r.held)).sum::<u64>());
    assert_eq!(totals.sold, all.iter().map(|r| u64::from(r.sold)).sum::<u64>());
    let ann = principal("ann@example.com", Role::Customer);
    assert_eq!(kind(h.service.seat_totals(&ann)), ErrorKind::Forbidden, "only admins see the totals");
    // A store that counts its connection waits has counted these writes.
    if let Some(waits) = h.fixture.store.pool_waits() {
        assert!(waits.checkouts >= 5, "{waits:?}");
        assert_eq!(waits.timeouts, 0, "{waits:?}");
    }
}

/// Every updatable field is written and read back; optional fields can be cleared.
pub fn update_event_fields(f: Fixture) {
    let h = h(f);
    let a = admin();
    let mut n = new_event("Before", 10, "1.00 EUR");
    n.venue = Some("Old hall".into());
    let e = key(&h.service.create_event(&a, n).expect("event"));
    h.advance_secs(1);
    let patch = EventPatch {
        name: Some("After".parse().expect("valid")),
        slug: Some(Some("after".parse().expect("valid"))),
        description: Some(Some("New text".into())),
        venue: Some(None),
        starts_at: Some("2027-08-01T18:00:00Z".parse().expect("valid")),
        ends_at: Some("2027-08-01T22:00:00Z".parse().expect("valid")),
        capacity: Some(30u32.try_into().expect("valid")),
        price: Some("2.50 USD".parse().expect("valid")),
        max_per_customer: Some(Some(2u32.try_into().expect("valid"))),
        sales_start: Some(Some("2027-01-01T00:00:00Z".parse().expect("valid"))),
        sales_end: Some(Some("2027-07-31T00:00:00Z".parse().expect("valid"))),
        allow_past: false,
    };
    let updated = h.service.update_event(&a, &e, &patch).expect("update");
    let read = h.service.event(&a, &"after".parse().expect("valid")).expect("by new slug");
    assert_eq!(read, updated);
    assert_eq!(read.venue, None);
    assert_eq!(read.price.to_string(), "2.50 USD");
    assert_eq!(read.updated_at, h.service.now());
    assert!(read.updated_at > read.created_at);
    let bad = EventPatch { ends_at: Some("2027-08-01T17:00:00Z".parse().expect("valid")), ..Default::default() };
    assert_eq!(kind(h.service.update_event(&a, &e, &bad)), ErrorKind::Validation);
    assert_eq!(kind(h.service.update_event(&a, &e, &EventPatch::default())), ErrorKind::Validation);
}

/// 32 threads each book one ticket at a time on one hot event of capacity 1,000 until
/// refused: exactly 1,000 sold, and the counters equal the bookings.
pub fn concurrent_threads_never_oversell(f: Fixture) {
    hot_event_stress(f, 32, 1000);
}

/// `threads` buyers each book one ticket at a time on one event of `capacity` until
/// refused: exactly `capacity` sold, every refusal is "sold out", and the stored
/// bookings add up to the counters.
pub fn hot_event_stress(f: Fixture, threads: usize, capacity: u32) {
    let h = h(f);
    let a = admin();
    let e = key(&h.event(&a, capacity, "1 EUR", None));
    let service = Arc::new(h.service.clone());
    let booked = Arc::new(AtomicU32::new(0));
    let threads: Vec<_> = (0..threads)
        .map(|t| {
            let (service, e, booked) = (service.clone(), e.clone(), booked.clone());
            std::thread::spawn(move || {
                let me = format!("buyer{t}@example.com");
                loop {
                    match buy(&service, &admin(), &e, &me, 1) {
                        Ok(_) => {
                            booked.fetch_add(1, Ordering::SeqCst);
                        }
                        Err(Error::SoldOut { available: 0, .. }) => return,
                        Err(other) => panic!("thread {t}: only sold out may refuse, got {other}"),
                    }
                }
            })
        })
        .collect();
    for t in threads {
        t.join().expect("buyer thread finished");
    }
    assert_eq!(booked.load(Ordering::SeqCst), capacity, "successful bookings");
    assert_eq!(counters(&h.service, &e), (0, capacity, 0));
    let mut start = PageStart::First;
    let mut total = 0;
    loop {
        let filter = BookingFilter { event: Some(service.event(&a, &e).expect("event").id), ..Default::default() };
        let p = service.list_bookings(&a, filter, page(1000, start)).expect("list");
        total += p.items.iter().map(|b| b.quantity.get()).sum::<u32>();
        match p.next_cursor {
            Some(c) => start = PageStart::After(goticket_core::Cursor::decode(&c).expect("own cursor")),
            None => break,
        }
    }
    assert_eq!(total, capacity, "stored bookings add up to the sold counter");
}

/// A unique collision while writing a batch (two requests drew the same booking
/// code) fails only the request that collided; its neighbours are booked.
pub fn batch_collision_fails_only_its_request(f: Fixture) {
    let h = h(f);
    let a = admin();
    let e = h.event(&a, 10, "1 EUR", None);
    let entropy = goticket_core::SeededEntropy::new(77);
    let code = goticket_core::BookingCode::generate(&entropy);
    let req = |customer: &str, code: &goticket_core::BookingCode| one_seat(&h, &entropy, e.id, customer, code);
    let other = goticket_core::BookingCode::generate(&entropy);
    let batch = [req("ann@example.com", &code), req("bob@example.com", &code), req("cat@example.com", &other)];
    let out = goticket_core::engine::reserve(&*h.fixture.store, &batch, h.service.now())
        .expect("the batch as a whole succeeds");
    let kinds: Vec<Option<ErrorKind>> = out.iter().map(|o| o.as_ref().err().map(|e| e.kind())).collect();
    assert_eq!(kinds, [None, Some(ErrorKind::Busy), None], "a collision alone is safe to retry");
    assert_eq!(counters(&h.service, &key(&e)), (0, 2, 8));

    // The same in a big batch (stores may bulk-load those differently).
    let big = h.event(&a, 100, "1 EUR", None);
    let mut batch: Vec<_> = (0..40)
        .map(|i| {
            let mut r = req(&format!("c{i}@example.com"), &goticket_core::BookingCode::generate(&entropy));
            r.event_id = big.id;
            r
        })
        .collect();
    batch[25].code = batch[7].code.clone();
    let out = goticket_core::engine::reserve(&*h.fixture.store, &batch, h.service.now())
        .expect("the batch as a whole succeeds");
    let refused: Vec<usize> = out.iter().enumerate().filter(|(_, o)| o.is_err()).map(|(i, _)| i).collect();
    assert_eq!(refused, [25], "only the colliding request fails");
    assert_eq!(counters(&h.service, &key(&big)), (0, 39, 61));
}

/// The hot event again with combining turned off: one transaction per booking.
pub fn concurrent_threads_without_combiner(f: Fixture) {
    let h = h(f);
    let service = h.service.clone().without_combiner();
    let e = key(&h.event(&admin(), 300, "1 EUR", None));
    std::thread::scope(|s| {
        for t in 0..16 {
            let (service, e) = (&service, &e);
            s.spawn(move || while buy(service, &admin(), e, &format!("u{t}@example.com"), 1).is_ok() {});
        }
    });
    assert_eq!(counters(&h.service, &e), (0, 300, 0));
    assert!(service.combiner_stats().is_none(), "nothing went through a combiner");
}

/// Many buyers through the combiner at once, with mixed quantities, a per-customer
/// limit, retries of the same idempotency key and refusals mixed into the same
/// batches: exactly the capacity is sold, no request is split, no limit is broken,
/// every retry gets its original booking, and batches really were shared.
pub fn combined_buyers_mixed_quantities_limits_and_keys(f: Fixture) {
    let h = h(f);
    let a = admin();
    let capacity = 600;
    let e = key(&h.event(&a, capacity, "1 EUR", Some(6)));
    let closed = key(&h.event(&a, 10, "1 EUR", None));
    h.service.cancel_event(&a, &closed).expect("cancel");
    let booked = std::sync::Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for t in 0..24u64 {
            let (service, e, closed, booked) = (&h.service, &e, &closed, &booked);
            s.spawn(move || {
                let mut x = t.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
                for i in 0..10_000 {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    if t == 0 && i % 3 == 0 {
                        // A request that must fail, in the middle of others' batches.
                        assert_eq!(kind(buy(service, &admin(), closed, "x@example.com", 1)), ErrorKind::NotOnSale);
                    }
                    let q = 1 + (x % 4) as u32;
                    let customer = format!("c{}@example.com", x % 200);
                    let req = BookingRequest {
                        event: e.clone(),
                        customer: Some(customer.parse().expect("valid")),
                        quantity: q.try_into().expect("valid"),
                        hold: None,
                        idempotency_key: Some(format!("t{t}-i{i}").parse().expect("valid")),
                    };
                    match service.reserve(&admin(), req.clone()) {
                        Ok(r) => {
                            assert!(!r.replayed);
                            assert_eq!(r.booking.tickets.len() as u32, q, "a request is never split");
                            let again = service.reserve(&admin(), req).expect("a retry gets the original back");
                            assert!(again.replayed && again.booking.code == r.booking.code);
                            booked.lock().expect("lock").push(r.booking);
                        }
                        Err(Error::SoldOut { available: 0, .. }) => return,
                        Err(Error::SoldOut { .. } | Error::LimitExceeded { .. }) => {}
                        Err(other) => panic!("unexpected refusal: {other}"),
                    }
                }
                panic!("thread {t} never saw the event sell out");
            });
        }
    });
    let booked = booked.into_inner().expect("lock");
    let sold: u32 = booked.iter().map(|b| b.quantity.get()).sum();
    assert_eq!(sold, capacity, "exactly the capacity sold");
    assert_eq!(counters(&h.service, &e), (0, capacity, 0));
    let mut per_customer: std::collections::HashMap<&str, u32> = std::collections::HashMap::new();
    for b in &booked {
        *per_customer.entry(b.customer.as_str()).or_default() += b.quantity.get();
    }
    assert!(per_customer.values().all(|&q| q <= 6), "per-customer limit held inside shared batches");
    let stats = h.service.combiner_stats().expect("the combiner ran");
    assert!(stats.largest_batch > 1, "concurrent requests shared batches: {stats:?}");
    assert!(stats.batches < stats.requests, "{stats:?}");
}

/// A request that makes its whole batch fail (here: a store that refuses any batch
/// holding a poisoned customer) fails alone; the combiner reruns its neighbours one
/// by one and they are booked.
pub fn a_failing_request_does_not_poison_its_batch(f: Fixture) {
    let poisoned = Fixture {
        store: Arc::new(crate::fault::PoisonStore::new(f.store.clone(), "poison@example.com")),
        guard: f.guard,
    };
    let h = h(poisoned);
    let e = key(&h.event(&admin(), 1000, "1 EUR", None));
    let failures = AtomicU32::new(0);
    std::thread::scope(|s| {
        for t in 0..12 {
            let (service, e, failures) = (&h.service, &e, &failures);
            s.spawn(move || {
                for i in 0..30 {
                    let customer = if t == 0 && i % 2 == 0 {
                        "poison@example.com".to_owned()
                    } else {
                        format!("ok{t}@example.com")
                    };
                    match buy(service, &admin(), e, &customer, 1) {
                        Ok(_) => assert_ne!(customer, "poison@example.com"),
                        Err(err) => {
                            assert_eq!(customer, "poison@example.com", "a healthy request failed: {err}");
                            failures.fetch_add(1, Ordering::SeqCst);
                        }
                    }
                }
            });
        }
    });
    assert_eq!(failures.load(Ordering::SeqCst), 15);
    assert_eq!(counters(&h.service, &e).1, 12 * 30 - 15);
}

/// User accounts: argon2id passwords, roles, who may manage whom, and login that says
/// the same for an unknown email as for a wrong password.
pub fn users_roles_and_passwords(f: Fixture) {
    use goticket_core::users::Password;
    let h = h(f);
    let s = &h.service;
    let a = admin();
    let pw: Password = "correct horse battery".parse().expect("valid");
    let org: goticket_core::Email = "org@example.com".parse().expect("valid");
    let u = s.add_user(&a, "Org@Example.com".parse().expect("valid"), Role::Organizer, &pw).expect("added");
    assert_eq!((u.email.as_str(), u.role), ("org@example.com", Role::Organizer));
    assert_eq!(kind(s.add_user(&a, org.clone(), Role::Customer, &pw)), ErrorKind::Conflict);
    let ann = principal("ann@example.com", Role::Customer);
    assert_eq!(kind(s.add_user(&ann, "x@example.com".parse().expect("valid"), Role::Admin, &pw)), ErrorKind::Forbidden);
    assert_eq!(kind(s.list_users(&ann)), ErrorKind::Forbidden);
    assert_eq!(kind(s.set_role(&ann, &org, Role::Admin)), ErrorKind::Forbidden);

    assert_eq!(s.authenticate(&org, "correct horse battery").expect("right password").role(), Role::Organizer);
    assert_eq!(kind(s.authenticate(&org, "correct horse batter")), ErrorKind::Unauthenticated);
    let unknown = s.authenticate(&"nobody@example.com".parse().expect("valid"), "correct horse battery");
    let wrong = s.authenticate(&org, "wrong password!!");
    assert_eq!(format!("{:?}", unknown.map(|_| ())), format!("{:?}", wrong.map(|_| ())), "no hint which emails exist");

    let boss: goticket_core::Email = "boss@example.com".parse().expect("valid");
    s.add_user(&a, boss.clone(), Role::Admin, &pw).expect("a first admin account");
    assert_eq!(s.set_role(&a, &org, Role::Admin).expect("admin sets role").role, Role::Admin);
    assert_eq!(s.principal_for(org.clone()).expect("known").role(), Role::Admin);
    assert_eq!(s.principal_for("zed@example.com".parse().expect("valid")).expect("unknown").role(), Role::Customer);
    assert_eq!(kind(s.set_role(&a, &"ghost@example.com".parse().expect("valid"), Role::Customer)), ErrorKind::NotFound);

    let new_pw: Password = "another long secret".parse().expect("valid");
    let self_org = principal("org@example.com", Role::Organizer);
    assert_eq!(
        kind(s.set_password(&ann, &org, &new_pw, None)),
        ErrorKind::Forbidden,
        "only admins change others' passwords"
    );
    assert_eq!(
        kind(s.set_password(&self_org, &org, &new_pw, None)),
        ErrorKind::Validation,
        "one's own password needs the current one"
    );
    assert_eq!(kind(s.set_password(&self_org, &org, &new_pw, Some("a wrong guess!"))), ErrorKind::Validation);
    s.authenticate(&org, "correct horse battery").expect("refused changes left the password");
    s.set_password(&self_org, &org, &new_pw, Some("correct horse battery")).expect("with the current password");
    assert_eq!(kind(s.authenticate(&org, "correct horse battery")), ErrorKind::Unauthenticated);
    s.authenticate(&org, "another long secret").expect("the new password works");

    // Role and password in one change: both or neither.
    let third: Password = "a third long secret".parse().expect("valid");
    assert_eq!(
        kind(s.change_user(&self_org, &org, Some(Role::Customer), Some(&third), Some("another long secret"))),
        ErrorKind::Forbidden,
        "a user may not change their own role"
    );
    s.authenticate(&org, "another long secret").expect("the refused change left the password");
    let changed = s.change_user(&a, &org, Some(Role::Organizer), Some(&third), None).expect("an admin changes both");
    assert_eq!(changed.role, Role::Organizer);
    assert_eq!(s.authenticate(&org, "a third long secret").expect("new password").role(), Role::Organizer);
    assert_eq!(kind(s.change_user(&a, &org, None, None, None)), ErrorKind::Validation);

    assert_eq!(s.register("ann@example.com".parse().expect("valid"), &pw).expect("sign-up").role, Role::Customer);
    let users = s.list_users(&a).expect("admin lists");
    assert_eq!(
        users.iter().map(|u| u.email.as_str()).collect::<Vec<_>>(),
        ["ann@example.com", "boss@example.com", "org@example.com"]
    );
}
