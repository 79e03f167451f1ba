-- goticket schema v4: user accounts (argon2id hashes; never a clear password).
CREATE TABLE users (
    email         TEXT    PRIMARY KEY NOT NULL,
    role          TEXT    NOT NULL CHECK (role IN ('admin', 'organizer', 'customer')),
    password_hash TEXT    NOT NULL,
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL
) STRICT;
