//! Embedded, versioned migrations. The schema version lives in SQLite's
//! `user_version`; migrations are append-only (never edit or remove a released one).

use goticket_core::users::{AddressColumn, EmailRewrite, StoredAccount, migrate_emails};
use goticket_core::{Email, Timestamp};
use goticket_core::{Error, Result, StoreError, StoreErrorKind};
use rusqlite::{Transaction, params};

use crate::rows::db_err;

/// Every migration in order; index + 1 is the version it brings the schema to.
const MIGRATIONS: &[&str] = &[
    include_str!("../migrations/0001_initial.sql"),
    include_str!("../migrations/0002_external_ids.sql"),
    include_str!("../migrations/0003_booking_external_ids.sql"),
    include_str!("../migrations/0004_users.sql"),
    include_str!("../migrations/0005_email_normalization.sql"),
    include_str!("../migrations/0006_outbox.sql"),
];

/// The schema version this build writes.
pub(crate) const LATEST: i64 = MIGRATIONS.len() as i64;

/// Applies the missing migrations inside the caller's write transaction, so
/// concurrent processes migrating the same file never apply one twice; then the steps
/// a migration left pending, in the same transaction. Returns notes for the operator.
pub(crate) fn migrate(tx: &Transaction<'_>, now: Timestamp) -> Result<Vec<String>> {
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
    let pending: i64 = tx
        .query_row("SELECT COUNT(*) FROM pending_steps WHERE name = 'normalize_emails'", [], |r| r.get(0))
        .map_err(db_err)?;
    if pending == 0 {
        return Ok(Vec::new());
    }
    let notes = migrate_emails(&mut Rewrite { tx, now: now.as_microsecond() })?;
    tx.execute("DELETE FROM pending_steps WHERE name = 'normalize_emails'", []).map_err(db_err)?;
    Ok(notes)
}

/// The email migration's storage primitives (core's `migrate_emails` runs the rule).
struct Rewrite<'a, 'c> {
    tx: &'a Transaction<'c>,
    now: i64,
}

impl EmailRewrite for Rewrite<'_, '_> {
    fn accounts(&mut self) -> Result<Vec<StoredAccount>> {
        let mut stmt = self.tx.prepare("SELECT email, created_at FROM users").map_err(db_err)?;
        let rows = stmt
            .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))
            .map_err(db_err)?
            .collect::<rusqlite::Result<Vec<_>>>()
            .map_err(db_err)?;
        Ok(rows
            .into_iter()
            .map(|(email, t)| StoredAccount {
                email,
                created_at: Timestamp::from_microsecond(t).unwrap_or(Timestamp::MIN),
            })
            .collect())
    }

    fn set_aside(&mut self, email: &str, reason: &str) -> Result<()> {
        self.tx
            .execute(
                "INSERT INTO set_aside_accounts (email, role, password_hash, created_at, updated_at, set_aside_at, reason)
                 SELECT email, role, password_hash, created_at, updated_at, ?2, ?3 FROM users WHERE email = ?1",
                params![email, self.now, reason],
            )
            .map_err(db_err)?;
        self.tx.execute("DELETE FROM users WHERE email = ?1", [email]).map_err(db_err)?;
        Ok(())
    }

    fn rename_account(&mut self, from: &str, to: &Email) -> Result<()> {
        self.tx.execute("UPDATE users SET email = ?2 WHERE email = ?1", [from, to.as_str()]).map_err(db_err)?;
        Ok(())
    }

    fn addresses(&mut self, column: AddressColumn) -> Result<Vec<String>> {
        let (table, col) = table_of(column);
        self.tx
            .prepare(&format!("SELECT DISTINCT {col} FROM {table}"))
            .and_then(|mut s| s.query_map([], |r| r.get(0))?.collect())
            .map_err(db_err)
    }

    fn rename_address(&mut self, column: AddressColumn, from: &str, to: &Email) -> Result<u64> {
        let (table, col) = table_of(column);
        let dropped = match column {
            AddressColumn::Customer => self
                .tx
                .execute(
                    "UPDATE bookings SET idempotency_key = NULL WHERE customer = ?1
                       AND idempotency_key IN (SELECT idempotency_key FROM bookings
                                               WHERE customer = ?2 AND idempotency_key IS NOT NULL)",
                    [from, to.as_str()],
                )
                .map_err(db_err)?,
            AddressColumn::Organizer => 0,
        };
        self.tx
            .execute(&format!("UPDATE {table} SET {col} = ?2 WHERE {col} = ?1"), [from, to.as_str()])
            .map_err(db_err)?;
        Ok(dropped as u64)
    }
}

fn table_of(column: AddressColumn) -> (&'static str, &'static str) {
    match column {
        AddressColumn::Organizer => ("events", "organizer"),
        AddressColumn::Customer => ("bookings", "customer"),
    }
}
