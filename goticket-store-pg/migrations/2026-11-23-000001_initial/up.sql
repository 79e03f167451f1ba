-- goticket schema v1 for PostgreSQL. Never edit a released migration: add a new one.
CREATE TABLE events (
    id               UUID        PRIMARY KEY,
    slug             TEXT        UNIQUE,
    name             TEXT        NOT NULL CHECK (length(name) BETWEEN 1 AND 800),
    description      TEXT,
    venue            TEXT,
    starts_at        TIMESTAMPTZ NOT NULL,
    ends_at          TIMESTAMPTZ NOT NULL,
    capacity         INTEGER     NOT NULL CHECK (capacity BETWEEN 1 AND 10000000),
    price_minor      BIGINT      NOT NULL CHECK (price_minor >= 0),
    currency         TEXT        NOT NULL CHECK (length(currency) = 3),
    max_per_customer INTEGER     CHECK (max_per_customer IS NULL OR max_per_customer >= 1),
    sales_start      TIMESTAMPTZ,
    sales_end        TIMESTAMPTZ,
    status           TEXT        NOT NULL CHECK (status IN ('scheduled', 'cancelled')),
    organizer        TEXT        NOT NULL,
    held             INTEGER     NOT NULL DEFAULT 0 CHECK (held >= 0),
    sold             INTEGER     NOT NULL DEFAULT 0 CHECK (sold >= 0),
    created_at       TIMESTAMPTZ NOT NULL,
    updated_at       TIMESTAMPTZ NOT NULL,
    CONSTRAINT events_not_oversold CHECK (held + sold <= capacity),
    CONSTRAINT events_dates CHECK (starts_at < ends_at)
);
CREATE INDEX events_by_start ON events (starts_at, id);
CREATE INDEX events_by_organizer ON events (organizer, starts_at);

CREATE TABLE bookings (
    id               UUID        PRIMARY KEY,
    code             TEXT        NOT NULL UNIQUE,
    event_id         UUID        NOT NULL REFERENCES events (id),
    customer         TEXT        NOT NULL,
    quantity         INTEGER     NOT NULL CHECK (quantity BETWEEN 1 AND 100),
    status           TEXT        NOT NULL CHECK (status IN ('held', 'confirmed', 'cancelled', 'expired')),
    unit_price_minor BIGINT      NOT NULL CHECK (unit_price_minor >= 0),
    currency         TEXT        NOT NULL CHECK (length(currency) = 3),
    expires_at       TIMESTAMPTZ,
    idempotency_key  TEXT,
    created_at       TIMESTAMPTZ NOT NULL,
    updated_at       TIMESTAMPTZ NOT NULL,
    CHECK (status <> 'held' OR expires_at IS NOT NULL)
);
-- Every index on a random key costs a page write per booking, so there are only
-- the ones queries need. Keyless bookings stay out of the idempotency index.
CREATE UNIQUE INDEX bookings_idempotency ON bookings (customer, idempotency_key) WHERE idempotency_key IS NOT NULL;
CREATE INDEX bookings_by_customer ON bookings (customer, event_id);
CREATE INDEX bookings_by_event ON bookings (event_id, id);
CREATE INDEX bookings_live_holds ON bookings (event_id, expires_at) WHERE status = 'held';
CREATE INDEX bookings_hold_expiry ON bookings (expires_at) WHERE status = 'held';

CREATE TABLE tickets (
    booking_id    UUID        NOT NULL REFERENCES bookings (id),
    seq           INTEGER     NOT NULL CHECK (seq BETWEEN 1 AND 100),
    secret        TEXT        NOT NULL UNIQUE,
    checked_in_at TIMESTAMPTZ,
    PRIMARY KEY (booking_id, seq)
);
