//! Scenarios for the defects a hostile probe found (issue "Hardening"), run by every
//! store: each failed on the code before its fix.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};

use goticket_core::import::{BookingRow, EventRow, ImportAction, ImportMode, parse_booking_row, parse_event_row};
use goticket_core::users::Password;
use goticket_core::{
    BookingRequest, BookingStatus, Error, ErrorKind, EventKey, HoldDuration, Principal, Role, Service, SignedDuration,
};

use crate::scenarios::{buy, kind};
use crate::{Fixture, Harness, admin, key, new_event, principal};

fn h(f: Fixture) -> Harness {
    Harness::new(f, 11)
}

pub(crate) fn event_rows(rows: &[&[(&str, &str)]]) -> Vec<EventRow> {
    rows.iter()
        .zip(2..)
        .map(|(pairs, line)| {
            let map: HashMap<&str, &str> = pairs.iter().copied().collect();
            parse_event_row(line, &|c| map.get(c).map(|v| (*v).to_owned())).expect("a valid test row")
        })
        .collect()
}

pub(crate) fn booking_rows(rows: &[&[(&str, &str)]]) -> Vec<BookingRow> {
    rows.iter()
        .zip(2..)
        .map(|(pairs, line)| {
            let map: HashMap<&str, &str> = pairs.iter().copied().collect();
            parse_booking_row(line, &|c| map.get(c).map(|v| (*v).to_owned())).expect("a valid test row")
        })
        .collect()
}

fn import_events(s: &Service, p: &Principal, rows: Vec<EventRow>) -> (goticket_core::Result<()>, Vec<(u64, String)>) {
    let mut seen = Vec::new();
    let r = s.import_events(p, &mut rows.into_iter(), ImportMode::AllOrNothing, &mut |line, o| {
        seen.push((line, format!("{o:?}")));
    });
    (r, seen)
}

fn import_bookings(s: &Service, p: &Principal, rows: Vec<BookingRow>) -> goticket_core::Result<()> {
    s.import_bookings(p, &mut rows.into_iter(), ImportMode::AllOrNothing, &mut |_, _| {})
}

/// Once a ticket is scanned, its booking cannot be cancelled (its seat would be sold
/// and admitted twice); cancelling the event still cancels it.
pub fn a_checked_in_booking_cannot_be_cancelled(f: Fixture) {
    let h = h(f);
    let a = admin();
    let e = key(&h.event(&a, 1, "10 EUR", None));
    let ann = buy(&h.service, &a, &e, "ann@example.com", 1).expect("ann buys the only seat").booking;
    h.service.check_in(&a, &ann.tickets[0].secret).expect("ann is admitted");
    let err = h.service.cancel_booking(&a, &ann.code).expect_err("a used booking cannot be cancelled");
    assert_eq!(err.kind(), ErrorKind::InvalidTransition, "{err}");
    assert!(err.to_string().contains("checked in"), "{err}");
    let ann_self = principal("ann@example.com", Role::Customer);
    assert_eq!(kind(h.service.cancel_booking(&ann_self, &ann.code)), ErrorKind::InvalidTransition);
    assert_eq!(kind(buy(&h.service, &a, &e, "bob@example.com", 1)), ErrorKind::SoldOut, "the seat is still ann's");
    let report = &h.service.sales_report(&a, Some(&e)).expect("report")[0];
    assert_eq!((report.capacity, report.sold, report.checked_in), (1, 1, 1));
    h.service.cancel_event(&a, &e).expect("the event can still be called off");
    assert_eq!(h.service.booking(&a, &ann.code).expect("show").status, BookingStatus::Cancelled);
    assert_eq!(kind(buy(&h.service, &a, &e, "bob@example.com", 1)), ErrorKind::NotOnSale);
}

/// A scan and a cancel of the same booking racing each other: never both.
pub fn a_scan_and_a_cancel_never_both_win(f: Fixture) {
    let h = h(f);
    let a = admin();
    let e = key(&h.event(&a, 100, "10 EUR", None));
    for round in 0..20 {
        let b = buy(&h.service, &a, &e, &format!("c{round}@example.com"), 1).expect("buy").booking;
        let (s1, s2, a1, a2) = (h.service.clone(), h.service.clone(), a.clone(), a.clone());
        let secret = b.tickets[0].secret.clone();
        let code = b.code.clone();
        let scan = std::thread::spawn(move || s1.check_in(&a1, &secret).is_ok());
        let cancel = std::thread::spawn(move || s2.cancel_booking(&a2, &code).is_ok());
        let (scanned, cancelled) = (scan.join().expect("scan thread"), cancel.join().expect("cancel thread"));
        let after = h.service.booking(&a, &b.code).expect("show");
        assert!(scanned ^ cancelled, "round {round}: exactly one wins (scanned {scanned}, cancelled {cancelled})");
        assert_eq!(after.status == BookingStatus::Cancelled, cancelled, "round {round}");
        assert_eq!(after.tickets[0].checked_in_at.is_some(), scanned, "round {round}");
    }
    let ev = h.service.event(&a, &e).expect("event");
    let cancelled = (0..20)
        .filter(|r| {
            let c: goticket_core::Email = format!("c{r}@example.com").parse().expect("valid");
            let list = h
                .service
                .list_bookings(
                    &a,
                    goticket_core::BookingFilter { customer: Some(c), ..Default::default() },
                    goticket_core::PageRequest::new(10, goticket_core::PageStart::First).expect("page"),
                )
                .expect("list");
            list.items[0].status == BookingStatus::Cancelled
        })
        .count() as u32;
    assert_eq!(ev.sold, 20 - cancelled, "the counter matches the bookings");
}

/// Buyers whose reservation waits for an event's lock while another transaction
/// expires that event's overdue holds are answered, never refused with a storage error.
pub fn bookings_while_holds_expire_never_fail(f: Fixture) {
    let h = h(f);
    let a = admin();
    let e = key(&h.event(&a, 5000, "10 EUR", None));
    let stop = Arc::new(AtomicBool::new(false));
    let failures = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let made = Arc::new(AtomicU32::new(0));
    // Several services, each committing on its own, so transactions really overlap.
    let services: Vec<Service> = (0..6).map(|_| h.service.clone().without_combiner()).collect();
    let mut threads = Vec::new();
    for (i, s) in services.into_iter().enumerate() {
        let (a, e, failures, made) = (a.clone(), e.clone(), failures.clone(), made.clone());
        threads.push(std::thread::spawn(move || {
            for n in 0..40 {
                let req = BookingRequest {
                    customer: Some(format!("b{i}-{n}@example.com").parse().expect("valid")),
                    hold: (n % 2 == 0).then(|| HoldDuration::new(SignedDuration::from_secs(1)).expect("valid")),
                    ..BookingRequest::buy(e.clone(), 1u32.try_into().expect("valid"))
                };
                match s.reserve(&a, req) {
                    Ok(_) => {
                        made.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(err) => failures.lock().expect("not poisoned").push(err.to_string()),
                }
            }
        }));
    }
    let (sweeper, clock, stop2, a2) = (h.service.clone(), h.clock.clone(), stop.clone(), a.clone());
    let sweep = std::thread::spawn(move || {
        while !stop2.load(Ordering::Relaxed) {
            clock.advance(SignedDuration::from_millis(300));
            if let Err(err) = sweeper.expire_holds(&a2) {
                return Err(err.to_string());
            }
        }
        Ok(())
    });
    for t in threads {
        t.join().expect("buyer thread");
    }
    stop.store(true, Ordering::Relaxed);
    sweep.join().expect("sweeper thread").expect("the sweeper never fails");
    let failures = failures.lock().expect("not poisoned");
    assert!(failures.is_empty(), "{} of 240 bookings failed: {:?}", failures.len(), &failures[..failures.len().min(5)]);
    assert_eq!(made.load(Ordering::Relaxed), 240);
    let ev = h.service.event(&a, &e).expect("event");
    assert!(ev.sold >= 120, "every outright sale counts: {}", ev.sold);
    assert!(ev.held + ev.sold <= 240);
}

/// A price near the top of the range cannot be set; at the top allowed, a sold-out
/// event's report still adds up exactly.
pub fn prices_are_bounded_and_reports_add_up(f: Fixture) {
    let h = h(f);
    let a = admin();
    let mut n = new_event("Too dear", 10, "1 EUR");
    n.price = "92233720368547758.07 EUR".parse().expect("valid money");
    assert_eq!(kind(h.service.create_event(&a, n)), ErrorKind::Validation);
    let cheap = key(&h.event(&a, 200, "1 EUR", None));
    let patch = goticket_core::EventPatch {
        price: Some("92233720368547758.07 EUR".parse().expect("valid")),
        ..Default::default()
    };
    assert_eq!(kind(h.service.update_event(&a, &cheap, &patch)), ErrorKind::Validation);
    let dear = key(&h.event(&a, 300, "1000000000.00 EUR", None));
    for c in ["ann@example.com", "bob@example.com", "cat@example.com"] {
        buy(&h.service, &a, &dear, c, 100).expect("buy 100 seats at the top price");
    }
    let r = &h.service.sales_report(&a, Some(&dear)).expect("the event's report")[0];
    assert_eq!(r.revenue.amount_minor(), 300 * 100_000_000_000, "exact");
    let all = h.service.sales_report(&a, None).expect("the global report");
    assert_eq!(all.len(), 2);
}

/// The last admin account cannot give up the role, alone or in a race of two admins
/// demoting each other.
pub fn the_last_admin_keeps_the_role(f: Fixture) {
    let h = h(f);
    let s = &h.service;
    let a = admin();
    let pw: Password = "correct horse battery".parse().expect("valid");
    let boss: goticket_core::Email = "boss@example.com".parse().expect("valid");
    s.add_user(&a, boss.clone(), Role::Admin, &pw).expect("added");
    let boss_p = principal("boss@example.com", Role::Admin);
    let err = s.set_role(&boss_p, &boss, Role::Customer).expect_err("the last admin stays admin");
    assert_eq!(err.kind(), ErrorKind::Conflict, "{err}");
    assert_eq!(kind(s.set_role(&a, &boss, Role::Organizer)), ErrorKind::Conflict, "whoever asks");
    let chief: goticket_core::Email = "chief@example.com".parse().expect("valid");
    s.add_user(&a, chief.clone(), Role::Admin, &pw).expect("a second admin");
    for _ in 0..5 {
        let (s1, s2) = (s.clone(), s.clone());
        let (b1, c1) = (boss.clone(), chief.clone());
        let one =
            std::thread::spawn(move || s1.set_role(&principal("boss@example.com", Role::Admin), &c1, Role::Customer));
        let two =
            std::thread::spawn(move || s2.set_role(&principal("chief@example.com", Role::Admin), &b1, Role::Customer));
        let (r1, r2) = (one.join().expect("thread"), two.join().expect("thread"));
        assert!(r1.is_ok() ^ r2.is_ok(), "exactly one demotion wins: {r1:?} {r2:?}");
        let admins = s.list_users(&a).expect("list").into_iter().filter(|u| u.role == Role::Admin).count();
        assert_eq!(admins, 1);
        // Make both admins again for the next round.
        for e in [&boss, &chief] {
            s.set_role(&a, e, Role::Admin).expect("re-promote");
        }
    }
}

/// Addresses that look the same are the same account; invisible characters are refused.
pub fn look_alike_emails_are_one_account(f: Fixture) {
    let h = h(f);
    let s = &h.service;
    let pw: Password = "correct horse battery".parse().expect("valid");
    s.register("cust1@example.com".parse().expect("valid"), &pw).expect("sign-up");
    let wide: goticket_core::Email = "ｃｕｓｔ１@ｅｘａｍｐｌｅ.ｃｏｍ".parse().expect("full-width letters fold");
    assert_eq!(kind(s.register(wide.clone(), &pw)), ErrorKind::Conflict, "the same account");
    assert!("cust1@example.com\u{200B}".parse::<goticket_core::Email>().is_err());
    assert_eq!(s.authenticate(&wide, "correct horse battery").expect("logs in").email().as_str(), "cust1@example.com");
    let users = s.list_users(&admin()).expect("list");
    assert_eq!(users.len(), 1);
}

/// Import: a booking names its event by a UUID that is another store's id (kept as
/// this store's external id); one file names an event once; a refused import has the
/// kind of its first refusal; the sales window is carried.
pub fn imports_resolve_moved_events_and_refuse_ambiguity(f: Fixture) {
    let h = h(f);
    let s = &h.service;
    let a = admin();
    // An export of a store whose event had no external id names it by its id.
    let old_id = "0190a0b4-1c2d-7e3f-8a9b-0c1d2e3f4a5b";
    let base: Vec<(&str, &str)> = vec![
        ("external_id", old_id),
        ("name", "Moved"),
        ("starts_at", "2027-06-01T19:00:00Z"),
        ("ends_at", "2027-06-01T23:00:00Z"),
        ("capacity", "10"),
        ("price", "5 EUR"),
        ("sales_start", "2027-01-01T00:00:00Z"),
        ("sales_end", "2027-06-01T18:00:00Z"),
    ];
    let (r, _) = import_events(s, &a, event_rows(&[&base]));
    r.expect("the events import");
    let moved = s.event(&a, &EventKey::Id(old_id.parse().expect("uuid"))).err();
    assert!(moved.is_some(), "the new store gives the event an id of its own");
    let ev = s
        .list_events(
            &a,
            &Default::default(),
            goticket_core::PageRequest::new(10, goticket_core::PageStart::First).expect("page"),
        )
        .expect("list")
        .items
        .remove(0);
    assert_eq!(ev.external_id.as_ref().map(|x| x.as_str()), Some(old_id));
    assert_eq!(ev.sales_start, Some("2027-01-01T00:00:00Z".parse().expect("valid")), "the sales window is imported");
    assert_eq!(ev.sales_end, Some("2027-06-01T18:00:00Z".parse().expect("valid")));
    import_bookings(
        s,
        &a,
        booking_rows(&[&[
            ("external_id", "b-1"),
            ("event", old_id),
            ("customer", "ann@example.com"),
            ("quantity", "2"),
            ("status", "confirmed"),
        ]]),
    )
    .expect("a booking that names the event by its old id finds it");
    assert_eq!(s.event(&a, &key(&ev)).expect("event").sold, 2);

    // The same external id twice in one file: refused, nothing written.
    let mut other = base.clone();
    other[1] = ("name", "Renamed");
    let mut fresh = base.clone();
    fresh[0] = ("external_id", "fresh-1");
    let (r, outcomes) = import_events(s, &a, event_rows(&[&fresh, &base, &other]));
    let err = r.expect_err("a file that names an event twice is refused");
    assert_eq!(err.kind(), ErrorKind::Conflict, "{err}");
    assert!(matches!(err, Error::ImportRefused { refused: 1, line: 4, .. }), "{err}");
    assert!(outcomes[2].1.contains("already appears on line 3"), "{outcomes:?}");
    assert_eq!(s.event(&a, &key(&ev)).expect("event").name.as_str(), "Moved", "nothing was written");
    assert_eq!(
        s.list_events(
            &a,
            &Default::default(),
            goticket_core::PageRequest::new(10, goticket_core::PageStart::First).expect("page")
        )
        .expect("list")
        .items
        .len(),
        1
    );

    // A refusal of a row as forbidden fails the import as forbidden (exit 6), not invalid.
    let rival = principal("rival@example.com", Role::Organizer);
    let err = import_bookings(
        s,
        &rival,
        booking_rows(&[&[
            ("external_id", "b-2"),
            ("event", old_id),
            ("customer", "zed@example.com"),
            ("quantity", "1"),
            ("status", "confirmed"),
        ]]),
    )
    .expect_err("not the rival's event");
    assert_eq!(err.kind(), ErrorKind::Forbidden, "{err}");
    assert_eq!(err.kind().exit_code(), 6);

    // A re-import without the window clears it: the file is the whole truth.
    let bare: Vec<(&str, &str)> = base[..6].to_vec();
    let (r, outcomes) = import_events(s, &a, event_rows(&[&bare]));
    r.expect("re-import");
    assert!(outcomes[0].1.contains(&format!("{:?}", ImportAction::Updated)), "{outcomes:?}");
    let ev = s.event(&a, &key(&ev)).expect("event");
    assert_eq!((ev.sales_start, ev.sales_end), (None, None));
}

/// The ids of the rows `looks_alike_rows` writes (see each store's test): an event of
/// `ＢＯＢ@example.com`, two bookings of two spellings of `cust1@example.com` that used
/// the same retry key.
pub const OLD_EVENT_ID: &str = "0190a0b4-1c2d-7e3f-8a9b-0c1d2e3f4a5b";

/// After the email migration over the rows an older goticket wrote (accounts
/// `cust1@example.com` followed by a zero-width space, an admin created first;
/// `cust1@example.com`, a customer; `ＢＯＢ@example.com`, an organizer; the event and
/// bookings above): the real account keeps its address, the look-alike is set aside
/// and reported, every row reads back in normal form, and a second run is a no-op.
pub fn check_emails_normalized(store: &dyn goticket_core::Store, notes: &[String]) {
    assert_eq!(notes.len(), 2, "{notes:?}");
    assert!(notes[0].contains("cust1@example.com\\u{200b}") && notes[0].contains("set aside"), "{notes:?}");
    assert!(notes[1].starts_with("1 bookings of") && notes[1].contains("lost their idempotency key"), "{notes:?}");
    assert!(store.migrate().expect("again").is_empty(), "the step runs once");
    let users = store.list_users().expect("every stored account reads back");
    let emails: Vec<(&str, Role)> = users.iter().map(|u| (u.email.as_str(), u.role)).collect();
    assert_eq!(
        emails,
        [("bob@example.com", Role::Organizer), ("cust1@example.com", Role::Customer)],
        "the look-alike admin did not take over the real account"
    );
    let now = goticket_core::Timestamp::now();
    let e = store.event(&EventKey::Id(OLD_EVENT_ID.parse().expect("id")), now).expect("read").expect("the old event");
    assert_eq!(e.organizer.as_str(), "bob@example.com");
    let list = store.list_bookings(&Default::default(), goticket_core::PageStart::First, 10, now).expect("read");
    assert_eq!(list.len(), 2);
    assert!(list.iter().all(|b| b.customer.as_str() == "cust1@example.com"), "every booking reads back");
}
