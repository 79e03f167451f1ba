//! Moving a store to another exactly: an export (`--all` for bookings) imported into an
//! empty store of either kind gives back every event with all its fields and status,
//! and every booking in every status with its code, external id, hold expiry, unit
//! price, ticket secrets and check-ins, so a ticket issued before the move scans once
//! after it.

use super::*;

/// Events with every optional field set and with none, one cancelled; bookings held,
/// confirmed, checked in, cancelled and expired.
fn populate(db: &TestDb) -> (String, String) {
    let full = db.ok(&[
        "event",
        "create",
        "--name",
        "Gala, \"the big one\"",
        "--starts-at",
        "2090-05-01T19:00:00Z",
        "--ends-at",
        "2090-05-01T23:00:00Z",
        "--capacity",
        "50",
        "--price",
        "30.50 EUR",
        "--slug",
        "gala",
        "--venue",
        "Main hall",
        "--description",
        "Black tie;\nno photos",
        "--max-per-customer",
        "6",
        "--sales-start",
        "2026-01-01T00:00:00Z",
        "--sales-end",
        "2090-05-01T18:00:00Z",
    ]);
    let bare = db.ok(&[
        "event",
        "create",
        "--name",
        "Bare",
        "--starts-at",
        "2090-06-01T19:00:00Z",
        "--ends-at",
        "2090-06-01T21:00:00Z",
        "--capacity",
        "5",
        "--price",
        "0 JPY",
    ]);
    let gone = db.ok(&[
        "event",
        "create",
        "--name",
        "Called off",
        "--starts-at",
        "2090-07-01T19:00:00Z",
        "--ends-at",
        "2090-07-01T21:00:00Z",
        "--capacity",
        "9",
        "--price",
        "1.234 BHD",
    ]);
    let (full, bare, gone) = (s(&full["id"]).to_owned(), s(&bare["id"]).to_owned(), s(&gone["id"]).to_owned());
    let confirmed = db.ok(&["book", &full, "--customer", "ann@example.com", "--qty", "3"]);
    db.ok(&["book", &full, "--customer", "bob@example.com", "--qty", "2", "--hold", "2h"]);
    let scanned = s(&confirmed["tickets"][1]["secret"]).to_owned();
    db.ok(&["checkin", &scanned]);
    let dropped = db.ok(&["book", &bare, "--customer", "cat@example.com", "--qty", "1"]);
    db.ok(&["booking", "cancel", s(&dropped["code"])]);
    db.ok(&["book", &bare, "--customer", "dan@example.com", "--qty", "1", "--hold", "1s"]);
    db.ok(&["book", &gone, "--customer", "eve@example.com", "--qty", "4"]);
    db.ok(&["event", "cancel", &gone]);
    std::thread::sleep(std::time::Duration::from_millis(1100)); // dan's hold runs out
    (scanned, s(&confirmed["tickets"][0]["secret"]).to_owned())
}

/// Every line of an export, sorted (the order of records with equal keys may differ
/// between stores; their content may not).
fn lines(text: &str) -> Vec<String> {
    let mut v: Vec<String> = text.lines().map(str::to_owned).collect();
    v.sort();
    v
}

fn export(db: &TestDb, args: &[&str]) -> String {
    let out = db.run(args);
    assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).expect("utf-8")
}

fn moves_exactly(from: &TestDb, to: &TestDb, format: &str) {
    let (scanned, unscanned) = populate(from);
    let events = export(from, &["export", "events", "--output-format", format]);
    let bookings = export(from, &["export", "bookings", "--all", "--output-format", format]);
    assert_eq!(bookings.lines().count() - usize::from(format == "csv"), 5, "every booking, --all: {bookings}");
    let ext = if format == "csv" { "csv" } else { "jsonl" };
    let (ef, bf) = (to.file(&format!("events.{ext}"), &events), to.file(&format!("bookings.{ext}"), &bookings));
    let n = |v: &Value, k: &str| v[k].as_u64().unwrap_or(u64::MAX);
    assert_eq!(n(&to.ok(&["import", "events", &ef]), "created"), 3);
    let b = to.ok(&["import", "bookings", &bf]);
    assert_eq!((n(&b, "created"), n(&b, "rejected")), (5, 0), "{b}");

    // Field for field: what the new store exports is what the old one did.
    assert_eq!(lines(&export(to, &["export", "events", "--output-format", format])), lines(&events));
    let again = export(to, &["export", "bookings", "--all", "--output-format", format]);
    assert_eq!(lines(&again), lines(&bookings));
    // And the counters the bookings imply.
    let listed = to.ok(&["event", "list"]);
    let counts: Vec<(u64, u64, &str)> = listed["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|e| (e["held"].as_u64().unwrap_or(99), e["sold"].as_u64().unwrap_or(99), s(&e["status"])))
        .collect();
    assert_eq!(counts, [(2, 3, "scheduled"), (0, 0, "scheduled"), (0, 0, "cancelled")]);

    // A ticket issued before the move scans once after it; one scanned before is used.
    assert_eq!(to.run(&["checkin", &scanned]).status.code(), Some(4), "scanned before the move");
    to.ok(&["checkin", &unscanned]);
    assert_eq!(to.run(&["checkin", &unscanned]).status.code(), Some(4), "once");
    // A re-run moves nothing twice.
    assert_eq!(n(&to.ok(&["import", "bookings", &bf]), "unchanged"), 5);
}

#[test]
fn a_store_moves_exactly_to_sqlite_in_csv_and_json_lines() {
    moves_exactly(&TestDb::sqlite(), &TestDb::sqlite(), "csv");
    moves_exactly(&TestDb::sqlite(), &TestDb::sqlite(), "jsonl");
}

#[test]
#[cfg_attr(pg_tests_skipped, ignore = "needs PostgreSQL: set GOTICKET_TEST_PG_URL")]
fn a_store_moves_exactly_between_sqlite_and_postgres() {
    let Some(pg) = TestDb::postgres() else { return };
    moves_exactly(&TestDb::sqlite(), &pg, "csv");
    let Some(pg) = TestDb::postgres() else { return };
    moves_exactly(&pg, &TestDb::sqlite(), "jsonl");
}
