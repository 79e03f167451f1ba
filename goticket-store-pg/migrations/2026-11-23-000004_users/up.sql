-- User accounts (argon2id hashes; never a clear password).
CREATE TABLE users (
    email         TEXT        PRIMARY KEY,
    role          TEXT        NOT NULL CHECK (role IN ('admin', 'organizer', 'customer')),
    password_hash TEXT        NOT NULL,
    created_at    TIMESTAMPTZ NOT NULL,
    updated_at    TIMESTAMPTZ NOT NULL
);
