//! Test support: a throwaway PostgreSQL schema per test, so tests run in parallel
//! against one server and leave nothing behind. Used by this crate's tests and by
//! the CLI's.

use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};

use diesel::connection::SimpleConnection;
use diesel::{Connection, PgConnection};

/// The test server's URL from `GOTICKET_TEST_PG_URL`. Unset, this says loudly (once
/// per test binary, on the real stderr, past the test harness's capture) that the
/// PostgreSQL tests are skipped and returns `None`; under `CI=true` it panics
/// instead, because CI must run them.
pub fn test_url() -> Option<String> {
    match std::env::var("GOTICKET_TEST_PG_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ if std::env::var("CI").is_ok_and(|v| v == "true") => {
            panic!("GOTICKET_TEST_PG_URL is not set and CI=true: the PostgreSQL tests must run in CI")
        }
        _ => {
            static WARN: std::sync::Once = std::sync::Once::new();
            WARN.call_once(|| {
                let _ = writeln!(
                    std::io::stderr(),
                    "\n*** SKIPPED: the PostgreSQL tests did not run: GOTICKET_TEST_PG_URL is not set \
                     (e.g. GOTICKET_TEST_PG_URL=postgres://postgres@127.0.0.1:5432/test) ***\n"
                );
            });
            None
        }
    }
}

/// A schema created for one test and dropped (with everything in it) on drop.
#[derive(Debug)]
pub struct TestSchema {
    admin_url: String,
    name: String,
    url: String,
}

impl TestSchema {
    /// Creates a uniquely named, empty schema on the server at `admin_url`.
    ///
    /// # Panics
    /// If the server cannot be reached or the schema cannot be created: a test that
    /// was told where PostgreSQL is must not pass without it.
    pub fn create(admin_url: &str) -> Self {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
        let name =
            format!("gt_test_{}_{}_{}", std::process::id(), NEXT.fetch_add(1, Ordering::SeqCst), nanos % 1_000_000_000);
        let mut admin = PgConnection::establish(admin_url).unwrap_or_else(|e| panic!("cannot reach {admin_url}: {e}"));
        admin.batch_execute(&format!("CREATE SCHEMA {name}")).unwrap_or_else(|e| panic!("cannot create schema: {e}"));
        let sep = if admin_url.contains('?') { '&' } else { '?' };
        let url = format!("{admin_url}{sep}options=-c%20search_path%3D{name}");
        TestSchema { admin_url: admin_url.to_owned(), name, url }
    }

    /// A URL whose connections see only this schema.
    pub fn url(&self) -> &str {
        &self.url
    }
}

impl Drop for TestSchema {
    fn drop(&mut self) {
        if let Ok(mut c) = PgConnection::establish(&self.admin_url) {
            let _ = c.batch_execute(&format!("DROP SCHEMA IF EXISTS {} CASCADE", self.name));
        }
    }
}
