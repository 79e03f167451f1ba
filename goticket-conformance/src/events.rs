//! Domain events (the outbox) on every store: each committed change writes its events
//! in its own transaction, a refused or rolled-back one writes none, every aggregate's
//! events are numbered from 1 without gaps, and payloads never carry a ticket secret
//! or a password hash. The audit log reads them back, scoped by role.

use std::collections::HashMap;
use std::sync::Arc;

use goticket_core::import::{EventRow, ImportMode};
use goticket_core::outbox::AuditQuery;
use goticket_core::users::Password;
use goticket_core::{
    AggregateType, DomainEvent, DomainEventType as T, ErrorKind, EventKey, EventPatch, PageRequest, PageStart, Role,
    Service,
};

use crate::fault::FailingOutboxStore;
use crate::hardening::event_rows;
use crate::scenarios::{buy, hold, kind};
use crate::{Fixture, Harness, admin, key, principal};

/// Every event in the log, read by an admin page by page (a small page, so the cursor
/// is exercised): each exactly once, in position order.
pub(crate) fn all_events(s: &Service) -> Vec<DomainEvent> {
    let mut out: Vec<DomainEvent> = Vec::new();
    let mut start = PageStart::First;
    loop {
        let page =
            s.audit(&admin(), &AuditQuery::default(), PageRequest::new(7, start).expect("valid")).expect("audit");
        out.extend(page.items);
        match page.next_cursor {
            Some(c) => {
                start = PageStart::After(goticket_core::Cursor::decode(&c).expect("the cursor the service gave"))
            }
            None => break,
        }
    }
    out
}

/// The log's invariants: positions increase; each aggregate's sequence runs 1, 2, 3...;
/// ids are unique; nothing secret is in a payload.
pub(crate) fn check_log(events: &[DomainEvent], secrets: &[String]) {
    let mut last = HashMap::new();
    let mut ids = std::collections::HashSet::new();
    for pair in events.windows(2) {
        assert!(pair[0].position < pair[1].position, "positions increase: {pair:?}");
    }
    for e in events {
        let seq = last.entry((e.aggregate_type, e.aggregate_id.clone())).or_insert(0);
        assert_eq!(
            e.aggregate_seq,
            *seq + 1,
            "{} {}: sequence without gaps: {e:?}",
            e.aggregate_type.as_str(),
            e.aggregate_id
        );
        *seq = e.aggregate_seq;
        assert!(ids.insert(e.id), "event ids are unique: {e:?}");
        assert_eq!(e.kind.aggregate(), e.aggregate_type, "{e:?}");
        assert_eq!(e.schema_version, goticket_core::outbox::SCHEMA_VERSION);
        let text = e.payload.to_string();
        for s in secrets {
            assert!(!text.contains(s.as_str()), "a payload carries a secret: {text}");
        }
        assert!(!text.contains("argon2"), "a payload carries a password hash: {text}");
    }
}

fn of(events: &[DomainEvent], aggregate: &str) -> Vec<T> {
    events.iter().filter(|e| e.aggregate_id == aggregate).map(|e| e.kind).collect()
}

/// A scripted flow through every use case writes exactly its events, each with its
/// actor, in order per aggregate.
pub fn every_change_writes_its_events(f: Fixture) {
    let h = Harness::new(f, 31);
    let s = &h.service;
    let a = admin();
    let org = principal("org@example.com", Role::Organizer);
    let e = h.event(&org, 10, "12.50 EUR", None);
    let k = key(&e);
    let held = hold(s, &org, &k, "ann@example.com", 2, 600).expect("hold").booking;
    s.confirm(&org, &held.code).expect("confirm");
    let sold = buy(s, &org, &k, "bob@example.com", 1).expect("buy").booking;
    s.check_in(&org, &sold.tickets[0].secret).expect("scan");
    let gone = buy(s, &org, &k, "cat@example.com", 1).expect("buy").booking;
    s.cancel_booking(&org, &gone.code).expect("cancel");
    let lapsed = hold(s, &org, &k, "dan@example.com", 1, 10).expect("hold").booking;
    let swept = hold(s, &org, &k, "eve@example.com", 1, 10).expect("hold").booking;
    assert_eq!(kind(buy(s, &org, &k, "fay@example.com", 50)), ErrorKind::SoldOut, "a refusal");
    h.advance_secs(11);
    // A sale locks the event and expires one overdue hold... both, in fact: they are
    // on the same event. The sweeper then finds nothing left.
    let late = buy(s, &org, &k, "gus@example.com", 1).expect("buy").booking;
    assert_eq!(s.expire_holds(&a).expect("sweep"), 0);
    let patch = EventPatch { name: Some("Renamed night".parse().expect("valid")), ..Default::default() };
    s.update_event(&org, &k, &patch).expect("update");
    s.cancel_event(&a, &k).expect("cancel the event");
    let pw: Password = "correct horse battery".parse().expect("valid");
    let u = s.add_user(&a, "new@example.com".parse().expect("valid"), Role::Customer, &pw).expect("user");
    s.set_role(&a, &u.email, Role::Organizer).expect("role");
    s.change_user(&a, &u.email, None, Some(&pw), None).expect("password");

    let log = all_events(s);
    let secrets: Vec<String> = [&held, &sold, &gone, &lapsed, &swept, &late]
        .iter()
        .flat_map(|b| b.tickets.iter().map(|t| t.secret.to_string()))
        .collect();
    check_log(&log, &secrets);
    let eid = e.id.to_string();
    assert_eq!(of(&log, &eid), [T::EventCreated, T::EventChanged, T::EventCancelled]);
    assert_eq!(of(&log, &held.id.to_string()), [T::BookingHeld, T::BookingConfirmed, T::BookingCancelled]);
    assert_eq!(of(&log, &sold.id.to_string()), [T::BookingConfirmed, T::TicketCheckedIn, T::BookingCancelled]);
    assert_eq!(of(&log, &gone.id.to_string()), [T::BookingConfirmed, T::BookingCancelled]);
    assert_eq!(of(&log, &lapsed.id.to_string()), [T::BookingHeld, T::BookingExpired]);
    assert_eq!(of(&log, &swept.id.to_string()), [T::BookingHeld, T::BookingExpired]);
    assert_eq!(of(&log, &late.id.to_string()), [T::BookingConfirmed, T::BookingCancelled]);
    assert_eq!(of(&log, "new@example.com"), [T::UserCreated, T::UserRoleChanged, T::UserPasswordChanged]);
    assert_eq!(log.len(), 3 + 3 + 3 + 2 + 2 + 2 + 2 + 3, "nothing else: no event for the refused sale");

    let find = |id: &str, t: T| log.iter().find(|e| e.aggregate_id == id && e.kind == t).expect("there");
    let org_email = org.email().clone();
    assert_eq!(find(&eid, T::EventCreated).actor.as_ref(), Some(&org_email));
    assert_eq!(find(&eid, T::EventCancelled).actor.as_ref(), Some(a.email()));
    assert_eq!(find(&lapsed.id.to_string(), T::BookingExpired).actor, None, "time expired it, not a person");
    let confirmed = find(&held.id.to_string(), T::BookingConfirmed);
    assert_eq!(
        (confirmed.payload_json()["from"].as_str(), confirmed.payload_json()["status"].as_str()),
        (Some("held"), Some("confirmed"))
    );
    assert_eq!(confirmed.payload_json()["customer"], "ann@example.com");
    assert_eq!(confirmed.event_id, Some(e.id));
    let by_event = find(&sold.id.to_string(), T::BookingCancelled);
    assert_eq!(by_event.payload_json()["reason"], "event_cancelled");
    assert_eq!(find(&eid, T::EventCancelled).payload_json()["bookings_cancelled"], 3, "held, sold and late were live");
    let scan = find(&sold.id.to_string(), T::TicketCheckedIn);
    assert_eq!(scan.payload_json()["seat"], 1);
    let created = find(&held.id.to_string(), T::BookingHeld);
    assert_eq!(created.payload_json()["unit_price"]["amount_minor"], 1250);
    assert_eq!(created.occurred_at, held.created_at);
    let role = find("new@example.com", T::UserRoleChanged);
    assert_eq!(
        (role.payload_json()["from"].as_str(), role.payload_json()["role"].as_str()),
        (Some("customer"), Some("organizer"))
    );
    assert!(log.iter().all(|e| e.aggregate_type != AggregateType::User || e.event_id.is_none()));
}

/// A write that fails at its last step (appending its events) keeps nothing: no
/// booking, no seats taken, no event; and a refused or dry-run change writes no event.
pub fn a_rolled_back_change_leaves_no_event(f: Fixture) {
    let failing = Arc::new(FailingOutboxStore::new(f.store.clone()));
    let h = Harness::new(Fixture { store: failing.clone(), guard: f.guard }, 32);
    let s = &h.service;
    let a = admin();
    let e = h.event(&a, 5, "1 EUR", None);
    let k = key(&e);
    let before = all_events(s).len();

    failing.fail_next(1);
    assert_eq!(kind(buy(s, &a, &k, "ann@example.com", 2)), ErrorKind::Storage);
    assert_eq!(s.event(&a, &k).expect("event").available, 5, "the seats were not taken");
    let listed = s.list_bookings(&a, Default::default(), PageRequest::new(10, PageStart::First).expect("ok"));
    assert!(listed.expect("bookings").items.is_empty(), "the booking was rolled back with its event");
    failing.fail_next(1);
    let gone = h.service.create_event(&a, crate::new_event("Never", 3, "1 EUR"));
    assert_eq!(kind(gone), ErrorKind::Storage);
    failing.fail_next(1);
    assert_eq!(kind(s.cancel_event(&a, &k)), ErrorKind::Storage);
    assert_eq!(s.event(&a, &k).expect("event").status, goticket_core::EventStatus::Scheduled);
    assert_eq!(all_events(s).len(), before, "no event from any of them");

    assert_eq!(kind(buy(s, &a, &k, "ann@example.com", 6)), ErrorKind::SoldOut);
    let rows = event_rows(&[&[
        ("external_id", "x1"),
        ("name", "Dry"),
        ("starts_at", "2027-06-01T19:00:00Z"),
        ("ends_at", "2027-06-01T23:00:00Z"),
        ("capacity", "3"),
        ("price", "10 EUR"),
    ]]);
    s.import_events(&a, &mut rows.into_iter(), ImportMode::DryRun, &mut |_, _| {}).expect("dry run");
    assert_eq!(all_events(s).len(), before, "a refusal and a dry run write no event");

    // The same sale once the outbox takes it: one event, and the seats.
    let sold = buy(s, &a, &k, "ann@example.com", 2).expect("buy").booking;
    let log = all_events(s);
    assert_eq!(log.len(), before + 1);
    assert_eq!((log[before].kind, log[before].aggregate_id.clone()), (T::BookingConfirmed, sold.id.to_string()));
}

/// An import writes one event per created or changed row, none for an unchanged one.
pub fn imports_write_one_event_per_row(f: Fixture) {
    let h = Harness::new(f, 33);
    let s = &h.service;
    let a = admin();
    let row = |x: &str, capacity: &str| {
        event_rows(&[&[
            ("external_id", x),
            ("name", "Imported"),
            ("starts_at", "2027-06-01T19:00:00Z"),
            ("ends_at", "2027-06-01T23:00:00Z"),
            ("capacity", capacity),
            ("price", "10 EUR"),
        ]])
        .remove(0)
    };
    let import = |rows: Vec<EventRow>| {
        s.import_events(&a, &mut rows.into_iter(), ImportMode::AllOrNothing, &mut |_, _| {}).expect("import")
    };
    import(vec![row("a", "3"), row("b", "4")]);
    import(vec![row("a", "3"), row("b", "5")]);
    let log = all_events(s);
    check_log(&log, &[]);
    let kinds: Vec<T> = log.iter().map(|e| e.kind).collect();
    assert_eq!(kinds, [T::EventCreated, T::EventCreated, T::EventChanged], "{log:?}");
    assert_eq!(log[2].payload_json()["event"]["capacity"], 5);
    assert_eq!(log[2].actor.as_ref(), Some(a.email()));
}

/// The audit log by role and filter: an admin reads everything; an organizer reads
/// what concerns their own events and no account's; a customer reads nothing; every
/// filter narrows; the log pages by cursor only.
pub fn audit_log_scopes_and_filters(f: Fixture) {
    let h = Harness::new(f, 34);
    let s = &h.service;
    let a = admin();
    let org = principal("org@example.com", Role::Organizer);
    let rival = principal("rival@example.com", Role::Organizer);
    let mine = h.event(&org, 10, "1 EUR", None);
    let theirs = h.event(&rival, 10, "1 EUR", None);
    let ann = buy(s, &org, &key(&mine), "ann@example.com", 1).expect("buy").booking;
    h.advance_secs(5);
    let since = s.now();
    buy(s, &rival, &key(&theirs), "bob@example.com", 1).expect("buy");
    s.cancel_booking(&org, &ann.code).expect("cancel");
    let pw: Password = "correct horse battery".parse().expect("valid");
    s.add_user(&a, "u@example.com".parse().expect("valid"), Role::Customer, &pw).expect("user");

    let read = |p: &goticket_core::Principal, q: AuditQuery| {
        s.audit(p, &q, PageRequest::new(100, PageStart::First).expect("ok")).map(|page| page.items)
    };
    assert_eq!(read(&a, AuditQuery::default()).expect("admin").len(), 6);
    let own = read(&org, AuditQuery::default()).expect("organizer");
    assert!(own.iter().all(|e| e.event_id == Some(mine.id)), "only their event's: {own:?}");
    assert_eq!(own.len(), 3, "created, sold, cancelled");
    let q = AuditQuery { event: Some(EventKey::Id(theirs.id)), ..Default::default() };
    assert_eq!(kind(read(&org, q.clone())), ErrorKind::Forbidden);
    assert_eq!(read(&rival, q).expect("their own").len(), 2);
    assert_eq!(kind(read(&principal("ann@example.com", Role::Customer), AuditQuery::default())), ErrorKind::Forbidden);

    let q = AuditQuery { booking: Some(ann.code.clone()), ..Default::default() };
    let kinds: Vec<T> = read(&a, q).expect("by booking").iter().map(|e| e.kind).collect();
    assert_eq!(kinds, [T::BookingConfirmed, T::BookingCancelled]);
    let q = AuditQuery { actor: Some(rival.email().clone()), ..Default::default() };
    assert_eq!(read(&a, q).expect("by actor").len(), 2);
    let q = AuditQuery { since: Some(since), ..Default::default() };
    assert_eq!(read(&a, q).expect("since").len(), 3, "the rival's sale, the cancel, the user");
    let q = AuditQuery { event: Some(EventKey::Id(mine.id)), actor: Some(a.email().clone()), ..Default::default() };
    assert!(read(&a, q).expect("both").is_empty(), "filters combine");
    let offset = s.audit(&a, &AuditQuery::default(), PageRequest::new(10, PageStart::Offset(2)).expect("ok"));
    assert_eq!(kind(offset), ErrorKind::Validation);
}

/// Many buyers at once through the combiner: every booking has exactly one event,
/// numbered 1, and nothing else is written.
pub fn combined_sales_write_one_event_each(f: Fixture) {
    let h = Harness::new(f, 35);
    let a = admin();
    let e = key(&h.event(&a, 200, "1 EUR", None));
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let (s, e, a) = (h.service.clone(), e.clone(), a.clone());
            std::thread::spawn(move || {
                (0..20)
                    .map(|i| buy(&s, &a, &e, &format!("t{t}-{i}@example.com"), 1).expect("seats left").booking.id)
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let ids: Vec<String> =
        threads.into_iter().flat_map(|t| t.join().expect("no panic")).map(|id| id.to_string()).collect();
    let log = all_events(&h.service);
    check_log(&log, &[]);
    let sales: Vec<&DomainEvent> = log.iter().filter(|e| e.kind == T::BookingConfirmed).collect();
    assert_eq!(sales.len(), 160);
    for id in &ids {
        assert_eq!(sales.iter().filter(|e| &e.aggregate_id == id).count(), 1, "one event for {id}");
    }
}

/// Pruning: only past the age, only what the relay published (unless asked), never an
/// aggregate's latest event, whose number the next one follows; admins only.
pub fn pruning_keeps_what_is_unpublished_and_each_latest(f: Fixture) {
    let h = Harness::new(f, 36);
    let s = &h.service;
    let a = admin();
    let keep: goticket_core::Retention = "1d".parse().expect("valid");
    let e1 = h.event(&a, 10, "1 EUR", None);
    let b = hold(s, &a, &key(&e1), "ann@example.com", 1, 600).expect("hold").booking;
    s.confirm(&a, &b.code).expect("confirm");
    s.cancel_booking(&a, &b.code).expect("cancel");
    h.advance_secs(2 * 86_400);
    assert_eq!(s.prune_events(&a, keep, "default", false).expect("prune"), 0, "no relay ran: nothing is published");

    let lease = goticket_core::RelayLease {
        name: "default".into(),
        owner: "test".into(),
        ttl: goticket_core::SignedDuration::from_secs(30),
    };
    // Until caught up: on PostgreSQL a batch stops below the oldest running transaction
    // in the cluster (other tests'), so the four may take more than one step.
    let mut sent = 0;
    while s.relay_status(&a, "default").expect("status").backlog > 0 {
        let step = step_past_idle(s, &lease, &mut |events| {
            sent += events.len();
            Ok(())
        });
        assert!(matches!(step.expect("step"), goticket_core::RelayStep::Published { .. }));
    }
    assert_eq!(sent, 4);
    let e2 = h.event(&a, 10, "1 EUR", None);
    h.advance_secs(2 * 86_400);
    let customer = principal("ann@example.com", Role::Customer);
    assert_eq!(kind(s.prune_events(&customer, keep, "default", false)), ErrorKind::Forbidden);
    assert_eq!(s.prune_events(&a, keep, "default", false).expect("prune"), 2, "held and confirmed; each latest stays");
    let left: Vec<(String, T)> = all_events(s).into_iter().map(|e| (e.aggregate_id, e.kind)).collect();
    assert_eq!(
        left,
        [
            (e1.id.to_string(), T::EventCreated),
            (b.id.to_string(), T::BookingCancelled),
            (e2.id.to_string(), T::EventCreated)
        ]
    );
    // The next event of a pruned aggregate follows its latest.
    let patch = EventPatch { name: Some("Later".parse().expect("valid")), ..Default::default() };
    s.update_event(&a, &key(&e1), &patch).expect("update");
    let log = all_events(s);
    let e1_seqs: Vec<u64> =
        log.iter().filter(|e| e.aggregate_id == e1.id.to_string()).map(|e| e.aggregate_seq).collect();
    assert_eq!(e1_seqs, [1, 2], "numbered after the kept latest");
    h.advance_secs(2 * 86_400);
    assert_eq!(s.prune_events(&a, keep, "default", true).expect("prune"), 1, "e1's created, published or not");
    assert_eq!(s.prune_events(&a, keep, "default", true).expect("prune"), 0, "each aggregate's latest stays");
    for bad in ["30m", "x", "0d", "1000000w"] {
        assert_eq!(kind(bad.parse::<goticket_core::Retention>()), ErrorKind::Validation, "{bad}");
    }
    assert_eq!("2w".parse::<goticket_core::Retention>().expect("valid").get().as_hours(), 336);
}

/// One relay step, taken again while it finds nothing: on PostgreSQL the relay reads
/// only below the oldest transaction still running in the cluster, and other tests'
/// transactions may hold that back for a moment.
fn step_past_idle(
    s: &Service,
    lease: &goticket_core::RelayLease,
    publish: &mut dyn FnMut(&[DomainEvent]) -> Result<(), String>,
) -> goticket_core::Result<goticket_core::RelayStep> {
    for _ in 0..400 {
        match s.relay_step(&admin(), lease, 100, publish)? {
            goticket_core::RelayStep::Idle => std::thread::sleep(std::time::Duration::from_millis(25)),
            other => return Ok(other),
        }
    }
    Ok(goticket_core::RelayStep::Idle)
}

/// The relay's lease: a batch whose lease ran out while the broker confirmed it still
/// counts if nobody took the lease; a relay that took it over makes the other's batch
/// not count (it goes out again, from the new holder, with the same ids).
pub fn a_relay_batch_counts_unless_the_lease_was_taken(f: Fixture) {
    let h = Harness::new(f, 37);
    let s = &h.service;
    let a = admin();
    h.event(&a, 10, "1 EUR", None);
    let lease = |owner: &str| goticket_core::RelayLease {
        name: "default".into(),
        owner: owner.into(),
        ttl: goticket_core::SignedDuration::from_secs(10),
    };
    // The broker takes 30 s to confirm: the lease ran out, but nobody took it.
    let step = step_past_idle(s, &lease("slow"), &mut |_| {
        h.advance_secs(30);
        Ok(())
    });
    assert_eq!(step.expect("step"), goticket_core::RelayStep::Published { count: 1 });
    assert_eq!(s.relay_status(&a, "default").expect("status").backlog, 0);

    h.event(&a, 10, "1 EUR", None);
    h.advance_secs(30);
    // While "slow" publishes, its lease runs out and "quick" takes over and publishes.
    let mut inner = None;
    let step = step_past_idle(s, &lease("slow"), &mut |_| {
        h.advance_secs(30);
        inner = Some(step_past_idle(s, &lease("quick"), &mut |_| Ok(())));
        Ok(())
    });
    assert_eq!(step.expect("step"), goticket_core::RelayStep::LostLease);
    assert_eq!(inner.expect("ran").expect("step"), goticket_core::RelayStep::Published { count: 1 });
    let status = s.relay_status(&a, "default").expect("status");
    assert_eq!((status.state.published, status.backlog), (2, 0), "counted once, by the holder");
    assert_eq!(status.state.owner.as_deref(), Some("quick"));
    // While "quick" holds a live lease, "slow" stands by.
    let step = s.relay_step(&a, &lease("slow"), 100, &mut |_| panic!("a standby never publishes"));
    assert!(matches!(step.expect("step"), goticket_core::RelayStep::Standby { holder, .. } if holder == "quick"));
    // A failure keeps the cursor and says why.
    h.event(&a, 10, "1 EUR", None);
    let step = step_past_idle(s, &lease("quick"), &mut |_| Err("broker down".into()));
    assert_eq!(step.expect("step"), goticket_core::RelayStep::Failed { error: "broker down".into() });
    let status = s.relay_status(&a, "default").expect("status");
    assert_eq!((status.backlog, status.state.last_error.as_deref()), (1, Some("broker down")));
    s.relay_release(&a, &lease("quick")).expect("release");
    assert_eq!(s.relay_status(&a, "default").expect("status").state.owner, None);
    let customer = principal("ann@example.com", Role::Customer);
    assert_eq!(kind(s.relay_step(&customer, &lease("x"), 1, &mut |_| Ok(()))), ErrorKind::Forbidden);
}

/// A change whose commit outcome was unknown runs again; the rerun of an update that
/// was written, or a patch that changes nothing, writes no second event.
pub fn a_rerun_or_a_no_op_writes_no_second_event(f: Fixture) {
    let lossy = Arc::new(crate::fault::LostCommitStore::new(f.store.clone()));
    let h = Harness::new(Fixture { store: lossy.clone(), guard: f.guard }, 38);
    let s = &h.service;
    let a = admin();
    let e = h.event(&a, 10, "1 EUR", None);
    let patch = EventPatch { name: Some("Renamed".parse().expect("valid")), ..Default::default() };
    lossy.lose_next(1);
    s.update_event(&a, &key(&e), &patch).expect("answered by the rerun");
    s.update_event(&a, &key(&e), &patch).expect("the same patch again: nothing changes");
    let pw: Password = "correct horse battery".parse().expect("valid");
    let u = s.add_user(&a, "rerun@example.com".parse().expect("valid"), Role::Customer, &pw).expect("user");
    lossy.lose_next(1);
    s.set_role(&a, &u.email, Role::Organizer).expect("answered by the rerun");
    let log = all_events(s);
    check_log(&log, &[]);
    let kinds: Vec<T> = log.iter().map(|e| e.kind).collect();
    assert_eq!(kinds, [T::EventCreated, T::EventChanged, T::UserCreated, T::UserRoleChanged], "{log:?}");
}
