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

/// A database from before email normalization (schema v4), with look-alike accounts
/// and addresses, written by raw SQL as an older goticket would have.
fn v4_database(path: &std::path::Path) {
    let raw = rusqlite::Connection::open(path).expect("raw open");
    for sql in [
        include_str!("../migrations/0001_initial.sql"),
        include_str!("../migrations/0002_external_ids.sql"),
        include_str!("../migrations/0003_booking_external_ids.sql"),
        include_str!("../migrations/0004_users.sql"),
    ] {
        raw.execute_batch(sql).expect("an old migration");
    }
    raw.pragma_update(None, "user_version", 4).expect("version");
    let hash = "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0c2FsdA$3Jm0XJuHg6kaa6eyvpYw2Znpb4nqCOYIi0sEQkgu0VY";
    for (email, role, at) in [
        ("cust1@example.com\u{200B}", "admin", 1),
        ("cust1@example.com", "customer", 2),
        ("ＢＯＢ@example.com", "organizer", 3),
    ] {
        raw.execute(
            "INSERT INTO users (email, role, password_hash, created_at, updated_at) VALUES (?1, ?2, ?3, ?4, ?4)",
            rusqlite::params![email, role, hash, at],
        )
        .expect("an old account");
    }
    let t = 1_800_000_000_000_000i64;
    raw.execute(
        "INSERT INTO events (id, name, starts_at, ends_at, capacity, price_minor, currency, status, organizer,
           held, sold, created_at, updated_at)
         VALUES ('0190a0b4-1c2d-7e3f-8a9b-0c1d2e3f4a5b', 'Old', ?1, ?2, 10, 100, 'EUR', 'scheduled',
                 'ＢＯＢ@example.com', 0, 2, 0, 0)",
        [t, t + 3_600_000_000],
    )
    .expect("an old event");
    for (id, code, customer, key) in [
        ("0190a0b4-1c2d-7e3f-8a9b-0c1d2e3f4a01", "AAAA-BBBB-CCC1", "cust1@example.com", "k1"),
        ("0190a0b4-1c2d-7e3f-8a9b-0c1d2e3f4a02", "AAAA-BBBB-CCC2", "Cust1@Example.com\u{2060}", "k1"),
    ] {
        raw.execute(
            "INSERT INTO bookings (id, code, event_id, customer, quantity, status, unit_price_minor, currency,
               idempotency_key, created_at, updated_at)
             VALUES (?1, ?2, '0190a0b4-1c2d-7e3f-8a9b-0c1d2e3f4a5b', ?3, 1, 'confirmed', 100, 'EUR', ?4, 0, 0)",
            [id, code, customer, key],
        )
        .expect("an old booking");
    }
}

#[test]
fn migrating_normalizes_stored_emails_and_reports_look_alikes() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let path = dir.path().join("v4.db");
    v4_database(&path);
    let store = SqliteStore::open(&path).expect("open");
    let notes = store.migrate().expect("migrate");
    goticket_conformance::hardening::check_emails_normalized(&store, &notes);
    let raw = rusqlite::Connection::open(&path).expect("raw");
    let aside: String = raw.query_row("SELECT email FROM set_aside_accounts", [], |r| r.get(0)).expect("kept aside");
    assert_eq!(aside, "cust1@example.com\u{200B}");
}

/// A read-only mount (root ignores file modes, so a mode would prove nothing) and a
/// full disk: reads work, writes and readiness say which it is. Needs root to mount a
/// small tmpfs; elsewhere it says it skipped, and under CI=true it fails instead.
#[test]
fn a_read_only_mount_and_a_full_disk_are_named() {
    let Some(mount) = Tmpfs::new() else { return };
    let path = mount.dir.join("t.db");
    {
        let store = SqliteStore::open(&path).expect("open");
        store.migrate().expect("migrate");
        let service = goticket_core::Service::new(std::sync::Arc::new(store));
        let admin = goticket_core::Principal::new("a@example.com".parse().expect("valid"), goticket_core::Role::Admin);
        service
            .create_event(&admin, goticket_conformance::new_event("Kept", 10, "1 EUR"))
            .expect("an event before the trouble");
    }
    let count = |store: &SqliteStore| {
        store
            .list_events(&Default::default(), goticket_core::PageStart::First, 10, goticket_core::Timestamp::now())
            .map(|v| v.len())
    };
    let write = |store: &SqliteStore| {
        let e = goticket_conformance::new_event("New", 10, "1 EUR")
            .into_event(
                goticket_core::EventId::generate(&goticket_core::SystemClock, &goticket_core::OsEntropy),
                "a@example.com".parse().expect("valid"),
                goticket_core::Timestamp::now(),
            )
            .expect("valid");
        goticket_core::engine::create_event(store, &e, &e.organizer)
    };

    // Full disk.
    mount.fill();
    let store = SqliteStore::open(&path).expect("a full disk still opens");
    assert_eq!(store.migrate().expect("a current schema needs no write"), Vec::<String>::new());
    assert_eq!(count(&store).expect("reads work on a full disk"), 1);
    let err = write(&store).expect_err("no room to write");
    assert!(err.to_string().contains("disk full"), "{err}");
    let err = store.ping().expect_err("not ready");
    assert!(err.to_string().contains("disk full"), "{err}");
    drop(store);
    mount.unfill();

    // Read-only mount.
    mount.remount("ro");
    let store = SqliteStore::open(&path).expect("a read-only file still opens");
    store.migrate().expect("a current schema needs no write");
    assert_eq!(count(&store).expect("reads work on a read-only mount"), 1);
    let err = write(&store).expect_err("read-only");
    assert!(err.to_string().contains("read-only"), "{err}");
    let err = store.ping().expect_err("not ready");
    assert!(err.to_string().contains("read-only"), "{err}");
    drop(store);
    mount.remount("rw");
    let store = SqliteStore::open(&path).expect("open");
    store.ping().expect("ready again");
    write(&store).expect("writes again");
}

/// A 4 MiB tmpfs, unmounted on drop.
struct Tmpfs {
    dir: std::path::PathBuf,
    _parent: tempfile::TempDir,
}

impl Tmpfs {
    fn new() -> Option<Self> {
        let parent = tempfile::tempdir().expect("a temp dir");
        let dir = parent.path().join("mnt");
        std::fs::create_dir(&dir).expect("mount point");
        let ok = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=4m", "tmpfs"])
            .arg(&dir)
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "cannot mount a tmpfs (not root?) and CI=true: this test must run in CI"
            );
            eprintln!("*** SKIPPED a_read_only_mount_and_a_full_disk_are_named: cannot mount a tmpfs (needs root) ***");
            return None;
        }
        Some(Tmpfs { dir, _parent: parent })
    }

    fn fill(&self) {
        let mut f = std::fs::File::create(self.dir.join("fill")).expect("filler");
        let block = vec![0u8; 64 * 1024];
        while std::io::Write::write_all(&mut f, &block).is_ok() {}
        let _ = f.sync_all();
    }

    fn unfill(&self) {
        std::fs::remove_file(self.dir.join("fill")).expect("remove filler");
    }

    fn remount(&self, mode: &str) {
        let ok = std::process::Command::new("mount")
            .args(["-o", &format!("remount,{mode}")])
            .arg(&self.dir)
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "remount {mode}");
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg("-l").arg(&self.dir).status();
    }
}
