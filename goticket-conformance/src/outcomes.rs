//! Scenarios for what a caller is told when a write fails, run by every store: a
//! commit whose answer was lost, and both imports in every mode.

use std::sync::Arc;

use goticket_core::import::{BookingRow, EventRow, ImportAction, ImportMode};
use goticket_core::users::Password;
use goticket_core::{BookingFilter, BookingRequest, BookingStatus, ErrorKind, EventPatch, PageRequest, Role, Service};

use crate::fault::LostCommitStore;
use crate::hardening::{booking_rows, event_rows};
use crate::scenarios::{buy, counters, hold, kind};
use crate::{Fixture, Harness, admin, key, new_event};

fn bookings_of(s: &Service, e: &goticket_core::EventKey) -> Vec<goticket_core::Booking> {
    let id = s.event(&admin(), e).expect("the event").id;
    let filter = BookingFilter { event: Some(id), ..BookingFilter::default() };
    s.list_bookings(&admin(), filter, PageRequest::new(1000, Default::default()).expect("valid")).expect("list").items
}

/// Every write whose COMMIT succeeded but whose answer was lost gets its real answer:
/// the booking that was written (found by the id it was given), not a collision with
/// itself, and nothing is written twice, with or without the combiner, for single
/// requests and whole batches; every other write (confirm, cancel, check-in, event and
/// account changes) answers what it did.
pub fn a_lost_commit_answers_what_was_written(f: Fixture) {
    let lossy = Arc::new(LostCommitStore::new(f.store.clone()));
    let h = Harness::new(Fixture { store: lossy.clone(), guard: f.guard }, 21);
    let a = admin();
    let e = key(&h.event(&a, 5, "10 EUR", None));
    for service in [h.service.clone(), h.service.clone().without_combiner()] {
        lossy.lose_next(1);
        let r = buy(&service, &a, &e, "ann@example.com", 1).expect("the booking that was written");
        assert!(!r.replayed && r.booking.status == BookingStatus::Confirmed, "{r:?}");
        assert_eq!(lossy.still_to_lose(), 0, "the answer was lost once");
    }
    assert_eq!(counters(&h.service, &e), (0, 2, 3), "two bookings, each written once");
    assert_eq!(bookings_of(&h.service, &e).len(), 2);

    // A batch whose commit was lost: each request gets its own answer, and the one the
    // batch refused is decided again (still sold out).
    lossy.lose_next(1);
    let req = |c: &str, q: u32| BookingRequest {
        customer: Some(c.parse().expect("valid")),
        ..BookingRequest::buy(e.clone(), q.try_into().expect("valid"))
    };
    let out = h
        .service
        .clone()
        .without_combiner()
        .reserve_many(&a, vec![req("bob@example.com", 2), req("cat@example.com", 1), req("dan@example.com", 2)])
        .expect("the batch");
    let kinds: Vec<_> = out.iter().map(|o| o.as_ref().err().map(|e| e.kind())).collect();
    assert_eq!(kinds, [None, None, Some(ErrorKind::SoldOut)]);
    assert_eq!(counters(&h.service, &e), (0, 5, 0));
    assert_eq!(bookings_of(&h.service, &e).len(), 4, "nothing booked twice");

    // A batch that collided (two requests drew one booking code) is rerun one request
    // at a time; when the answer to one of those is lost too, it still gets its booking.
    let roomy = key(&h.event(&a, 10, "1 EUR", None));
    let id = h.service.event(&a, &roomy).expect("event").id;
    let entropy = goticket_core::SeededEntropy::new(99);
    let req = |c: &str, code: &goticket_core::BookingCode| crate::scenarios::one_seat(&h, &entropy, id, c, code);
    let (same, other) =
        (goticket_core::BookingCode::generate(&entropy), goticket_core::BookingCode::generate(&entropy));
    let batch = [req("hal@example.com", &other), req("ida@example.com", &same), req("jon@example.com", &same)];
    lossy.lose_next(1);
    let out = goticket_core::engine::reserve(&*lossy, &batch, h.service.now()).expect("the batch");
    let kinds: Vec<_> = out.iter().map(|o| o.as_ref().err().map(|e| e.kind())).collect();
    assert_eq!(kinds, [None, None, Some(ErrorKind::Busy)], "only the second of the same code collides");
    assert_eq!(counters(&h.service, &roomy), (0, 2, 8));
    assert_eq!(lossy.still_to_lose(), 0);

    // The other writes.
    let big = key(&h.event(&a, 10, "1 EUR", None));
    let held = hold(&h.service, &a, &big, "eve@example.com", 2, 600).expect("hold").booking;
    lossy.lose_next(1);
    let confirmed = h.service.confirm(&a, &held.code).expect("the confirm that was written");
    assert_eq!(confirmed.status, BookingStatus::Confirmed);
    lossy.lose_next(1);
    let scan = h.service.check_in(&a, &held.tickets[0].secret).expect("the check-in that was written");
    assert_eq!(scan.seq, 1);
    let other = buy(&h.service, &a, &big, "fay@example.com", 1).expect("buy").booking;
    lossy.lose_next(1);
    let cancelled = h.service.cancel_booking(&a, &other.code).expect("the cancel that was written");
    assert_eq!(cancelled.status, BookingStatus::Cancelled);
    assert_eq!(counters(&h.service, &big), (0, 2, 8), "each transition moved the counters once");

    lossy.lose_next(1);
    let patch = EventPatch { capacity: Some(20u32.try_into().expect("valid")), ..EventPatch::default() };
    assert_eq!(h.service.update_event(&a, &big, &patch).expect("the update").capacity.get(), 20);
    lossy.lose_next(1);
    let created = h.service.create_event(&a, new_event("Lost answer", 3, "1 EUR")).expect("the event");
    assert!(h.service.event(&a, &key(&created)).is_ok());
    lossy.lose_next(1);
    let gone = h.service.cancel_event(&a, &big).expect("the event cancel");
    assert_eq!(gone.status, goticket_core::EventStatus::Cancelled);

    let pw: Password = "a long enough password".parse().expect("valid");
    lossy.lose_next(1);
    h.service.add_user(&a, "gil@example.com".parse().expect("valid"), Role::Organizer, &pw).expect("the account");
    lossy.lose_next(1);
    let user = h.service.set_role(&a, &"gil@example.com".parse().expect("valid"), Role::Customer).expect("the role");
    assert_eq!(user.role, Role::Customer);
    assert_eq!(lossy.still_to_lose(), 0, "every injected loss was met");

    // The other half: the commit failed and nothing was written. What is read first
    // shows nothing, so the write runs again, once.
    let again = key(&h.event(&a, 10, "1 EUR", None));
    lossy.fail_next(1);
    buy(&h.service, &a, &again, "kim@example.com", 1).expect("booked by the rerun");
    assert_eq!(counters(&h.service, &again), (0, 1, 9), "booked once");
    let held = hold(&h.service, &a, &again, "lea@example.com", 2, 600).expect("hold").booking;
    lossy.fail_next(1);
    let cancelled = h.service.cancel_booking(&a, &held.code).expect("cancelled by the rerun");
    assert_eq!(cancelled.status, BookingStatus::Cancelled, "a hold made this instant is not taken for its cancel");
    assert_eq!(counters(&h.service, &again), (0, 1, 9));
    lossy.fail_next(1);
    let created = h.service.create_event(&a, new_event("Failed commit", 3, "1 EUR")).expect("created by the rerun");
    assert_eq!(h.service.event(&a, &key(&created)).expect("there").name.as_str(), "Failed commit");
    let sold = buy(&h.service, &a, &again, "max@example.com", 1).expect("buy").booking;
    lossy.fail_next(1);
    h.service.check_in(&a, &sold.tickets[0].secret).expect("scanned by the rerun");
    assert_eq!(
        kind(h.service.check_in(&a, &sold.tickets[0].secret)),
        ErrorKind::AlreadyCheckedIn,
        "the rerun really scanned it"
    );
    lossy.fail_next(1);
    let patch = EventPatch { capacity: Some(12u32.try_into().expect("valid")), ..EventPatch::default() };
    assert_eq!(h.service.update_event(&a, &again, &patch).expect("updated by the rerun").capacity.get(), 12);
    assert_eq!(h.service.event(&a, &again).expect("event").capacity.get(), 12, "written");
    lossy.fail_next(1);
    let user = h.service.set_role(&a, &"gil@example.com".parse().expect("valid"), Role::Organizer).expect("the rerun");
    assert_eq!((user.role, user.updated_at), (Role::Organizer, h.service.now()));
    let stored = h.service.list_users(&a).expect("users").into_iter().find(|u| u.email.as_str() == "gil@example.com");
    assert_eq!(stored.map(|u| u.role), Some(Role::Organizer), "written");

    // An event with holds and no sales: its cancel (failed once, run again) empties
    // the counters.
    let held_only = key(&h.event(&a, 6, "1 EUR", None));
    hold(&h.service, &a, &held_only, "ned@example.com", 2, 600).expect("hold");
    lossy.fail_next(1);
    let gone = h.service.cancel_event(&a, &held_only).expect("cancelled by the rerun");
    assert_eq!((gone.status, gone.held, gone.sold), (goticket_core::EventStatus::Cancelled, 0, 0));
    let stored = h.service.event(&a, &held_only).expect("event");
    assert_eq!((stored.status, stored.held, stored.sold), (goticket_core::EventStatus::Cancelled, 0, 0));
}

type Outcomes = (Option<ErrorKind>, Vec<Result<ImportAction, ErrorKind>>);

fn outcomes(result: goticket_core::Result<()>, seen: Vec<(u64, Result<ImportAction, ErrorKind>)>) -> Outcomes {
    (result.err().map(|e| e.kind()), seen.into_iter().map(|(_, o)| o).collect())
}

fn import_events(s: &Service, mode: ImportMode, rows: Vec<EventRow>) -> Outcomes {
    let mut seen = Vec::new();
    let r = s.import_events(&admin(), &mut rows.into_iter(), mode, &mut |line, o| {
        seen.push((line, o.as_ref().map(|a| *a).map_err(|e| e.kind())))
    });
    outcomes(r, seen)
}

const GIG: &[(&str, &str)] = &[
    ("external_id", "gig"),
    ("name", "Gig"),
    ("starts_at", "2027-06-01T19:00:00Z"),
    ("ends_at", "2027-06-01T23:00:00Z"),
    ("capacity", "3"),
    ("price", "10 EUR"),
    ("slug", "the-gig"),
];
const FAIR: &[(&str, &str)] = &[
    ("external_id", "fair"),
    ("name", "Fair"),
    ("starts_at", "2027-07-01T10:00:00Z"),
    ("ends_at", "2027-07-01T18:00:00Z"),
    ("capacity", "100"),
    ("price", "5 EUR"),
    ("slug", "the-gig"),
];

/// The events import in every mode: a dry run decides and writes nothing; all or
/// nothing writes nothing when one row is refused; batches skip the refused row and
/// keep the rest; a re-run leaves matching events unchanged and updates changed ones.
pub fn event_imports_in_every_mode(f: Fixture) {
    let h = Harness::new(f, 22);
    let s = &h.service;
    let a = admin();
    let list = || s.list_events(&a, &Default::default(), PageRequest::new(100, Default::default()).expect("ok"));
    // FAIR takes GIG's slug: refused as a conflict.
    let (err, seen) = import_events(s, ImportMode::DryRun, event_rows(&[GIG, FAIR]));
    assert_eq!((err, seen), (None, vec![Ok(ImportAction::Created), Err(ErrorKind::Conflict)]));
    assert!(list().expect("list").items.is_empty(), "a dry run writes nothing");
    let (err, _) = import_events(s, ImportMode::AllOrNothing, event_rows(&[GIG, FAIR]));
    assert_eq!(err, Some(ErrorKind::Conflict));
    assert!(list().expect("list").items.is_empty(), "all or nothing wrote nothing");
    let (err, seen) = import_events(s, ImportMode::Batches(1), event_rows(&[GIG, FAIR]));
    assert_eq!((err, seen), (None, vec![Ok(ImportAction::Created), Err(ErrorKind::Conflict)]));
    assert_eq!(list().expect("list").items.len(), 1, "the refused row was skipped, the other kept");
    let mut bigger = GIG.to_vec();
    bigger[4] = ("capacity", "30");
    let (err, seen) = import_events(s, ImportMode::AllOrNothing, event_rows(&[&bigger]));
    assert_eq!((err, seen), (None, vec![Ok(ImportAction::Updated)]));
    let (err, seen) = import_events(s, ImportMode::AllOrNothing, event_rows(&[&bigger]));
    assert_eq!((err, seen), (None, vec![Ok(ImportAction::Unchanged)]));
    let gig = &list().expect("list").items[0];
    assert_eq!((gig.capacity.get(), gig.external_id.as_ref().map(|x| x.as_str())), (30, Some("gig")));

    // Holds that ran out do not count against a lower capacity: the import locks the
    // event and expires them first (on every store).
    let e = key(gig);
    hold(s, &a, &e, "ann@example.com", 20, 60).expect("a hold");
    buy(s, &a, &e, "bob@example.com", 2).expect("a sale");
    h.advance_secs(61);
    let mut smaller = GIG.to_vec();
    smaller[4] = ("capacity", "5");
    let (err, seen) = import_events(s, ImportMode::AllOrNothing, event_rows(&[&smaller]));
    assert_eq!((err, seen), (None, vec![Ok(ImportAction::Updated)]));
    assert_eq!(counters(s, &e), (0, 2, 3));
}

/// The bookings import in every mode: rows book with the reservation rules (capacity,
/// the event named by external id or slug); a re-run of the same rows books nothing
/// more; a row that changes an imported booking is a conflict; a dry run writes
/// nothing; batches skip refused rows and keep the rest.
pub fn booking_imports_in_every_mode(f: Fixture) {
    let h = Harness::new(f, 23);
    let s = &h.service;
    let a = admin();
    let (err, _) = import_events(s, ImportMode::AllOrNothing, event_rows(&[GIG]));
    assert_eq!(err, None);
    let e = goticket_core::EventKey::Slug("the-gig".parse().expect("valid"));
    let row =
        |x: &'static str, event: &'static str, c: &'static str, q: &'static str| -> Vec<(&'static str, &'static str)> {
            vec![("external_id", x), ("event", event), ("customer", c), ("quantity", q), ("status", "confirmed")]
        };
    let import = |mode, r: &[&[(&str, &str)]]| {
        let mut seen = Vec::new();
        let list: Vec<BookingRow> = booking_rows(r);
        let res = s.import_bookings(&a, &mut list.into_iter(), mode, &mut |line, o| {
            seen.push((line, o.as_ref().map(|a| *a).map_err(|e| e.kind())))
        });
        outcomes(res, seen)
    };
    let (b1, b2, b3) = (
        row("b1", "gig", "ann@example.com", "2"),
        row("b2", "the-gig", "bob@example.com", "1"),
        row("b3", "gig", "cat@example.com", "1"),
    );
    let (err, seen) = import(ImportMode::DryRun, &[&b1, &b2, &b3]);
    assert_eq!(
        (err, seen),
        (None, vec![Ok(ImportAction::Created), Ok(ImportAction::Created), Err(ErrorKind::SoldOut)])
    );
    assert_eq!(counters(s, &e), (0, 0, 3), "a dry run books nothing");
    let (err, _) = import(ImportMode::AllOrNothing, &[&b1, &b2, &b3]);
    assert_eq!(err, Some(ErrorKind::SoldOut));
    assert_eq!(counters(s, &e), (0, 0, 3), "all or nothing booked nothing");
    let (err, seen) = import(ImportMode::Batches(2), &[&b1, &b3, &b2]);
    assert_eq!(
        (err, seen),
        (None, vec![Ok(ImportAction::Created), Ok(ImportAction::Created), Err(ErrorKind::SoldOut)])
    );
    assert_eq!(counters(s, &e), (0, 3, 0));
    let (err, seen) = import(ImportMode::AllOrNothing, &[&b1, &b3]);
    assert_eq!(
        (err, seen),
        (None, vec![Ok(ImportAction::Unchanged), Ok(ImportAction::Unchanged)]),
        "a re-run books nothing"
    );
    let changed = row("b1", "gig", "ann@example.com", "1");
    let (err, _) = import(ImportMode::AllOrNothing, &[&changed]);
    assert_eq!(err, Some(ErrorKind::Conflict), "an imported booking is not changed by a different row");
    assert_eq!(counters(s, &e), (0, 3, 0));
    assert_eq!(bookings_of(s, &e).len(), 2);
    assert_eq!(kind(buy(s, &a, &e, "dan@example.com", 1)), ErrorKind::SoldOut);
}
