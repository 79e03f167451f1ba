//! The PostgreSQL store runs the whole conformance suite against a real server, each
//! test in its own schema (dropped afterwards), so the suite runs in parallel.
//!
//! The server comes from `GOTICKET_TEST_PG_URL`. Unset, every test says loudly that
//! it skipped; under `CI=true` that is a failure instead.

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

goticket_conformance::conformance_tests!(fixture);

#[test]
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

#[test]
fn a_non_postgres_url_is_refused() {
    assert_eq!(PgStore::connect("mysql://x").expect_err("not postgres").kind(), ErrorKind::Validation);
}
