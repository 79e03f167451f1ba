//! The SQLite store runs the whole conformance suite, each test on its own real file.

use std::sync::Arc;

use goticket_conformance::Fixture;
use goticket_core::Store;
use goticket_store_sqlite::SqliteStore;

fn fixture() -> Option<Fixture> {
    let dir = tempfile::tempdir().expect("a temp dir");
    let store = SqliteStore::open(dir.path().join("conformance.db")).expect("open");
    store.migrate().expect("migrate");
    Some(Fixture { store: Arc::new(store), guard: Box::new(dir) })
}

goticket_conformance::conformance_tests!(fixture);

#[test]
fn migrate_is_idempotent_and_refuses_a_newer_schema() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let path = dir.path().join("m.db");
    let store = SqliteStore::open(&path).expect("open");
    store.migrate().expect("first");
    store.migrate().expect("second is a no-op");
    drop(store);
    let raw = rusqlite::Connection::open(&path).expect("raw open");
    raw.pragma_update(None, "user_version", 99).expect("bump version");
    drop(raw);
    let err = SqliteStore::open(&path).expect("open").migrate().expect_err("newer schema");
    assert!(err.to_string().contains("newer than this goticket"), "{err}");
}

#[test]
fn an_unmigrated_database_says_to_migrate() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let store = SqliteStore::open(dir.path().join("empty.db")).expect("open");
    let err = store.ping().expect_err("no schema");
    assert!(err.to_string().contains("goticket migrate"), "{err}");
}
