//! The PostgreSQL store runs the whole conformance suite against a real server, each
//! test in its own schema (dropped afterwards), so the suite runs in parallel.
//!
//! The server comes from `GOTICKET_TEST_PG_URL`. Unset, the tests that need it are
//! compiled as ignored (see `build.rs`), so the summary counts them as ignored; under
//! `CI=true` they run and fail instead.

use std::sync::Arc;

use goticket_conformance::Fixture;
use goticket_core::{ErrorKind, Store};
use goticket_store_pg::testing::{TestSchema, test_url};
use goticket_store_pg::{PgOptions, PgStore};

/// A fresh schema on the test server and a store whose connections use it.
fn schema_store(options: PgOptions) -> Option<(PgStore, TestSchema)> {
    let schema = TestSchema::create(&test_url()?);
    let store = PgStore::connect_with(schema.url(), options).expect("connect");
    store.migrate().expect("migrate");
    Some((store, schema))
}

fn fixture() -> Option<Fixture> {
    let (store, schema) = schema_store(PgOptions::default())?;
    Some(Fixture { store: Arc::new(store), guard: Box::new(schema) })
}

goticket_conformance::conformance_tests!(fixture, #[cfg_attr(pg_tests_skipped, ignore = "needs PostgreSQL: set GOTICKET_TEST_PG_URL")]);

#[test]
#[cfg_attr(pg_tests_skipped, ignore = "needs PostgreSQL: set GOTICKET_TEST_PG_URL")]
fn sixty_four_threads_never_oversell() {
    let Some((store, schema)) = schema_store(PgOptions { max_connections: 32, ..PgOptions::default() }) else {
        return;
    };
    goticket_conformance::scenarios::hot_event_stress(
        Fixture { store: Arc::new(store), guard: Box::new(schema) },
        64,
        1000,
    );
}

#[test]
#[cfg_attr(pg_tests_skipped, ignore = "needs PostgreSQL: set GOTICKET_TEST_PG_URL")]
fn migrate_is_idempotent_and_concurrent_safe() {
    let Some((store, schema)) = schema_store(PgOptions::default()) else { return };
    let url = schema.url().to_owned();
    let store = Arc::new(store);
    let handles: Vec<_> = (0..4)
        .map(|_| {
            let url = url.clone();
            std::thread::spawn(move || PgStore::connect(&url).expect("connect").migrate())
        })
        .collect();
    for h in handles {
        h.join().expect("thread").expect("a concurrent migrate succeeds");
    }
    store.migrate().expect("again");
    store.ping().expect("ping");
}

#[test]
#[cfg_attr(pg_tests_skipped, ignore = "needs PostgreSQL: set GOTICKET_TEST_PG_URL")]
fn an_unmigrated_schema_says_to_migrate() {
    let Some(url) = test_url() else { return };
    let schema = TestSchema::create(&url);
    let store = PgStore::connect(schema.url()).expect("connect");
    let err = store.ping().expect_err("no schema");
    assert!(err.to_string().contains("goticket migrate"), "{err}");
}

#[test]
fn an_unreachable_server_is_a_retryable_error_not_a_panic() {
    // Port 1 on loopback: nothing listens there.
    let store = PgStore::connect_with(
        "postgres://postgres@127.0.0.1:1/none",
        PgOptions { checkout_timeout: std::time::Duration::from_millis(300), ..PgOptions::default() },
    )
    .expect("building the pool does not connect");
    let err = store.ping().expect_err("no server");
    assert_eq!(err.kind(), ErrorKind::Busy, "{err}");
    assert_eq!(err.kind().exit_code(), 1);
}

/// An error that waiting cannot cure (no such database) is answered at once, in one
/// line, not after the checkout timeout.
#[test]
#[cfg_attr(pg_tests_skipped, ignore = "needs PostgreSQL: set GOTICKET_TEST_PG_URL")]
fn a_missing_database_fails_at_once_in_one_line() {
    let Some(url) = test_url() else { return };
    let base = url.split('?').next().unwrap_or(&url);
    let missing = format!("{}/goticket_no_such_database", &base[..base.rfind('/').expect("a database path")]);
    let timeout = std::time::Duration::from_secs(30);
    let store = PgStore::connect_with(&missing, PgOptions { checkout_timeout: timeout, ..PgOptions::default() })
        .expect("building the pool does not connect");
    let started = std::time::Instant::now();
    let err = store.ping().expect_err("no such database");
    assert!(started.elapsed() < timeout / 3, "answered at once, not after the checkout timeout");
    let text = err.to_string();
    assert!(text.contains("does not exist") && !text.contains('\n'), "{text}");
    assert!(!err.is_retryable(), "waiting will not create the database: {text}");
}

#[test]
fn a_non_postgres_url_is_refused() {
    assert_eq!(PgStore::connect("mysql://x").expect_err("not postgres").kind(), ErrorKind::Validation);
}

#[test]
fn a_url_without_a_database_is_refused() {
    for url in [
        "postgres://",
        "postgres://postgres@127.0.0.1",
        "postgres://postgres@127.0.0.1:5432/",
        "postgresql://h/?sslmode=disable",
    ] {
        let err = PgStore::connect(url).expect_err(url);
        assert_eq!(err.kind(), ErrorKind::Validation, "{url}: {err}");
        assert!(err.to_string().contains("names no database"), "{url}: {err}");
    }
    PgStore::connect("postgres://postgres@127.0.0.1/test").expect("a database by path");
    PgStore::connect("postgres://postgres@127.0.0.1/?dbname=test").expect("a database by parameter");
}

/// Rows written before email normalization (look-alike accounts and addresses), then
/// the migration step: the real account keeps its address, the look-alike is set aside
/// and reported, and every row reads back.
#[test]
#[cfg_attr(pg_tests_skipped, ignore = "needs PostgreSQL: set GOTICKET_TEST_PG_URL")]
fn migrating_normalizes_stored_emails_and_reports_look_alikes() {
    use diesel::Connection as _;
    use diesel::connection::SimpleConnection as _;
    let Some((store, schema)) = schema_store(PgOptions::default()) else { return };
    let mut raw = diesel::PgConnection::establish(schema.url()).expect("raw connection");
    let hash = "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0c2FsdA$3Jm0XJuHg6kaa6eyvpYw2Znpb4nqCOYIi0sEQkgu0VY";
    raw.batch_execute(&format!(
        "INSERT INTO users (email, role, password_hash, created_at, updated_at) VALUES
           (E'cust1@example.com\\u200B', 'admin', '{hash}', '2027-01-01Z', '2027-01-01Z'),
           ('cust1@example.com', 'customer', '{hash}', '2027-01-02Z', '2027-01-02Z'),
           ('ＢＯＢ@example.com', 'organizer', '{hash}', '2027-01-03Z', '2027-01-03Z');
         INSERT INTO events (id, name, starts_at, ends_at, capacity, price_minor, currency, status, organizer,
           held, sold, created_at, updated_at)
         VALUES ('0190a0b4-1c2d-7e3f-8a9b-0c1d2e3f4a5b', 'Old', '2090-01-01Z', '2090-01-02Z', 10, 100, 'EUR',
                 'scheduled', 'ＢＯＢ@example.com', 0, 2, now(), now());
         INSERT INTO bookings (id, code, event_id, customer, quantity, status, unit_price_minor, currency,
           idempotency_key, created_at, updated_at) VALUES
           ('0190a0b4-1c2d-7e3f-8a9b-0c1d2e3f4a01', 'AAAA-BBBB-CCC1', '0190a0b4-1c2d-7e3f-8a9b-0c1d2e3f4a5b',
            'cust1@example.com', 1, 'confirmed', 100, 'EUR', 'k1', now(), now()),
           ('0190a0b4-1c2d-7e3f-8a9b-0c1d2e3f4a02', 'AAAA-BBBB-CCC2', '0190a0b4-1c2d-7e3f-8a9b-0c1d2e3f4a5b',
            E'Cust1@Example.com\\u2060', 1, 'confirmed', 100, 'EUR', 'k1', now(), now());
         INSERT INTO pending_steps (name) VALUES ('normalize_emails');"
    ))
    .expect("rows as an older goticket wrote them");
    let notes = store.migrate().expect("migrate");
    goticket_conformance::hardening::check_emails_normalized(&store, &notes);
}

/// The relay never skips an event that commits late: a transaction that appended an
/// event first (lower position) and commits after a later one holds the relay back
/// until it commits, and then both are published, the late one included.
#[test]
#[cfg_attr(pg_tests_skipped, ignore = "needs PostgreSQL: set GOTICKET_TEST_PG_URL")]
fn the_relay_waits_for_an_event_that_commits_late() {
    use diesel::Connection as _;
    use diesel::connection::SimpleConnection as _;
    use goticket_core::{RelayCursor, Service};
    let Some((store, schema)) = schema_store(PgOptions::default()) else { return };
    let store: Arc<dyn Store> = Arc::new(store);
    let service = Service::new(store.clone());
    let admin = goticket_core::Principal::new("admin@example.com".parse().expect("valid"), goticket_core::Role::Admin);
    // An open transaction appends an event (drawing the lower position) and waits.
    let mut slow = diesel::PgConnection::establish(schema.url()).expect("raw connection");
    slow.batch_execute(
        "BEGIN;
         INSERT INTO outbox (id, type, aggregate_type, aggregate_id, aggregate_seq, occurred_at, actor,
                             schema_version, payload)
         VALUES ('0190a0b4-1c2d-7e3f-8a9b-0c1d2e3f4a5b', 'user.created', 'user', 'late@example.com', 1, now(),
                 'admin@example.com', 1, '{\"email\":\"late@example.com\",\"role\":\"customer\"}');",
    )
    .expect("the slow transaction's event");
    // Then a change commits, with a later position.
    service.create_event(&admin, goticket_conformance::new_event("On time", 5, "1 EUR")).expect("event");
    let visible = store.relay_batch(&RelayCursor::default(), 100).expect("batch");
    assert!(visible.is_empty(), "nothing past a transaction still running: {visible:?}");
    assert_eq!(store.relay_backlog(&RelayCursor::default()).expect("backlog").0, 1, "the committed one waits");
    slow.batch_execute("COMMIT").expect("commit");
    // Other tests' transactions on the cluster may hold the horizon a moment longer.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let batch = loop {
        let b = store.relay_batch(&RelayCursor::default(), 100).expect("batch");
        if b.len() == 2 || std::time::Instant::now() > deadline {
            break b;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    let positions: Vec<i64> = batch.iter().map(|(c, _)| c.position).collect();
    assert_eq!(batch.len(), 2, "both, the late one included: {positions:?}");
    assert!(batch.iter().any(|(_, e)| e.aggregate_id == "late@example.com"));
    // The cursor of the last one covers both: a relay resuming there skips neither.
    let after = store.relay_batch(&batch[1].0, 100).expect("batch");
    assert!(after.is_empty());
}
