-- Emails are stored in one normal form (NFKC, lower case, nothing invisible). The
-- rewrite needs Unicode tables, so it runs in Rust after the migrations, in one
-- transaction, as the pending step 'normalize_emails'. Accounts whose address another
-- account already has once normalized are moved here, never merged: they hold
-- different people's passwords.
CREATE TABLE set_aside_accounts (
    email         TEXT        PRIMARY KEY,
    role          TEXT        NOT NULL,
    password_hash TEXT        NOT NULL,
    created_at    TIMESTAMPTZ NOT NULL,
    updated_at    TIMESTAMPTZ NOT NULL,
    set_aside_at  TIMESTAMPTZ NOT NULL,
    reason        TEXT        NOT NULL
);
CREATE TABLE pending_steps (name TEXT PRIMARY KEY);
INSERT INTO pending_steps (name) VALUES ('normalize_emails');
