-- goticket schema v5: emails are stored in one normal form (NFKC, lower case, nothing
-- invisible). The rewrite itself needs Unicode tables, so it runs in Rust right after
-- this file, in the same transaction, as the pending step 'normalize_emails'.
-- Accounts whose address another account already has once normalized are moved here,
-- never merged: they hold different people's passwords.
CREATE TABLE set_aside_accounts (
    email         TEXT    PRIMARY KEY NOT NULL,
    role          TEXT    NOT NULL,
    password_hash TEXT    NOT NULL,
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL,
    set_aside_at  INTEGER NOT NULL,
    reason        TEXT    NOT NULL
) STRICT;
CREATE TABLE pending_steps (name TEXT PRIMARY KEY NOT NULL) STRICT;
INSERT INTO pending_steps (name) VALUES ('normalize_emails');
