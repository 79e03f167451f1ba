//! Embedded, versioned migrations. The schema version lives in SQLite's
//! `user_version`; migrations are append-only (never edit or remove a released one).

use goticket_core::error::{Error, Result, StoreError, StoreErrorKind};
use rusqlite::Transaction;

use crate::rows::db_err;

/// Every migration in order; index + 1 is the version it brings the schema to.
const MIGRATIONS: &[&str] = &[
    include_str!("../migrations/0001_initial.sql"),
    include_str!("../migrations/0002_external_ids.sql"),
    include_str!("../migrations/0003_booking_external_ids.sql"),
    include_str!("../migrations/0004_users.sql"),
];

/// The schema version this build writes.
pub(crate) const LATEST: i64 = MIGRATIONS.len() as i64;

/// Applies the missing migrations inside the caller's write transaction, so
/// concurrent processes migrating the same file never apply one twice.
pub(crate) fn migrate(tx: &Transaction<'_>) -> Result<()> {
    let current: i64 = tx.query_row("PRAGMA user_version", [], |r| r.get(0)).map_err(db_err)?;
    if current > LATEST {
        return Err(Error::Storage(StoreError::new(
            StoreErrorKind::Schema,
            format!("the database has schema version {current}, newer than this goticket ({LATEST}); upgrade goticket"),
            None,
        )));
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(usize::try_from(current).unwrap_or(0)) {
        tx.execute_batch(sql).map_err(db_err)?;
        tx.pragma_update(None, "user_version", i as i64 + 1).map_err(db_err)?;
    }
    Ok(())
}
