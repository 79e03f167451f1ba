//! The CLI side of the hardening issue: moving a store to another keeps the bookings
//! of events that had no external id and every event's sales window; imports exit with
//! the kind of their first refusal; a database URL must name a database; changing
//! one's own password needs the current one.

use super::*;

/// Events created without an external id (the CLI's and HTTP's default), bookings on
/// them, a sales window: exported from one store and imported into an empty one of
/// the other kind, the bookings follow their events and the window is kept.
fn moved_to(from: &TestDb, to: &TestDb) {
    from.ok(&[
        "event",
        "create",
        "--name",
        "Gala",
        "--starts-at",
        "2090-05-01T19:00:00Z",
        "--ends-at",
        "2090-05-01T23:00:00Z",
        "--capacity",
        "50",
        "--price",
        "30 EUR",
        "--sales-start",
        "2026-01-01T00:00:00Z",
        "--sales-end",
        "2090-05-01T18:00:00Z",
    ]);
    let id = s(&from.ok(&["event", "list"])["items"][0]["id"]).to_owned();
    from.ok(&["book", &id, "--customer", "ann@example.com", "--qty", "2"]);
    from.ok(&["book", &id, "--customer", "bob@example.com", "--qty", "1", "--hold", "2h"]);
    let events = from.file("events.csv", &from.export_kind("events"));
    let bookings = from.file("bookings.csv", &from.export_kind("bookings"));
    assert!(std::fs::read_to_string(&events).expect("read").contains("2026-01-01T00:00:00Z"), "the window is exported");
    let n = |v: &Value, k: &str| v[k].as_u64().unwrap_or(u64::MAX);
    let ev = to.ok(&["import", "events", &events]);
    assert_eq!(n(&ev, "created"), 1, "{ev}");
    let b = to.ok(&["import", "bookings", &bookings]);
    assert_eq!((n(&b, "created"), n(&b, "rejected")), (2, 0), "the bookings find their moved event: {b}");
    let moved = &to.ok(&["event", "list"])["items"][0];
    assert_eq!(moved["external_id"], id.as_str(), "the old id is the new event's external id");
    assert_eq!((moved["sold"].as_u64(), moved["held"].as_u64()), (Some(2), Some(1)));
    assert_eq!(moved["sales_start"], "2026-01-01T00:00:00Z");
    assert_eq!(moved["sales_end"], "2090-05-01T18:00:00Z");
    // A re-run is a no-op, on both files.
    assert_eq!(n(&to.ok(&["import", "events", &events]), "unchanged"), 1);
    assert_eq!(n(&to.ok(&["import", "bookings", &bookings]), "unchanged"), 2);
}

#[test]
fn an_export_moves_to_an_empty_store_of_the_same_kind() {
    moved_to(&TestDb::sqlite(), &TestDb::sqlite());
}

#[test]
#[cfg_attr(pg_tests_skipped, ignore = "needs PostgreSQL: set GOTICKET_TEST_PG_URL")]
fn an_export_moves_to_an_empty_store_of_the_other_kind() {
    let Some(pg) = TestDb::postgres() else { return };
    moved_to(&TestDb::sqlite(), &pg);
    let Some(pg) = TestDb::postgres() else { return };
    moved_to(&pg, &TestDb::sqlite());
}

/// A refused import exits as its first refusal: a conflict 4, a forbidden row 6.
fn refused_imports_exit_as_their_first_refusal(s: &TestDb) {
    let twice = s.file(
        "twice.csv",
        "external_id,name,starts_at,ends_at,capacity,price
ev-1,One,2090-04-01T19:00:00Z,2090-04-01T22:00:00Z,10,1 EUR
ev-1,One again,2090-04-01T19:00:00Z,2090-04-01T22:00:00Z,20,1 EUR
",
    );
    let out = s.run(&["import", "events", &twice]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(4), "{err}");
    assert!(err.contains("line 3: conflict: external id \"ev-1\" already appears on line 2"), "{err}");
    assert_eq!(s.count(), 0, "nothing was written");
    let good = s.file(
        "good.csv",
        "external_id,name,starts_at,ends_at,capacity,price
ev-1,One,2090-04-01T19:00:00Z,2090-04-01T22:00:00Z,10,1 EUR
",
    );
    s.ok(&["import", "events", &good]);
    let bookings =
        s.file("b.csv", "external_id,event,customer,quantity,status\nb-1,ev-1,someone@example.com,1,confirmed\n");
    let out = s.run(&["--as", "rival@example.com", "import", "bookings", &bookings]);
    assert_eq!(out.status.code(), Some(6), "forbidden is 6: {}", String::from_utf8_lossy(&out.stderr));
}

on_both_stores!(refused_imports_exit_as_their_first_refusal);

#[test]
fn a_postgres_url_without_a_database_is_refused() {
    let db = Db::new();
    for url in ["postgres://", "postgresql://postgres@127.0.0.1:5432"] {
        let out = Command::new(BIN).args(["--db", url, "event", "list"]).output().expect("runs");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(5), "{url}: {err}");
        assert!(err.contains("names no database"), "{url}: {err}");
    }
    drop(db);
}

#[test]
fn changing_ones_own_password_needs_the_current_one() {
    let db = Db::new();
    let add = with_stdin(
        &db,
        &["user", "add", "--email", "ann@example.com", "--role", "customer", "--password-stdin"],
        "first long secret\n",
    );
    assert!(add.status.success());
    let as_ann = ["--as", "ann@example.com", "user", "passwd", "--email", "ann@example.com", "--password-stdin"];
    let wrong = with_stdin(&db, &as_ann, "not my password\nsecond long secret\n");
    assert_eq!(wrong.status.code(), Some(5), "{}", String::from_utf8_lossy(&wrong.stderr));
    assert!(String::from_utf8_lossy(&wrong.stderr).contains("current_password"));
    let right = with_stdin(&db, &as_ann, "first long secret\nsecond long secret\n");
    assert!(right.status.success(), "{}", String::from_utf8_lossy(&right.stderr));
    // The operator (the CLI's admin) sets anyone's password without it.
    let admin =
        with_stdin(&db, &["user", "passwd", "--email", "ann@example.com", "--password-stdin"], "third long secret\n");
    assert!(admin.status.success(), "{}", String::from_utf8_lossy(&admin.stderr));
}
