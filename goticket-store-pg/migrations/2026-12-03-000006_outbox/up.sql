-- The outbox: every committed change's domain events, written in its transaction.
-- `position` is the log's order; (aggregate_type, aggregate_id, aggregate_seq) is
-- unique, so two writers that both thought they were an aggregate's next event
-- cannot both commit. Ids of events and bookings are time-ordered (UUIDv7), so both
-- indexes grow at their right edge, as the primary key does.
CREATE TABLE outbox (
    position       BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id             UUID        NOT NULL,
    type           TEXT        NOT NULL,
    aggregate_type TEXT        NOT NULL,
    aggregate_id   TEXT        NOT NULL,
    aggregate_seq  BIGINT      NOT NULL CHECK (aggregate_seq >= 1),
    event_id       UUID,
    occurred_at    TIMESTAMPTZ NOT NULL,
    actor          TEXT,
    schema_version INT4        NOT NULL,
    -- JSON text as core wrote it: kept and served as it is (jsonb would parse and
    -- re-encode every event on the write path).
    payload        TEXT        NOT NULL,
    -- The writing transaction: positions are drawn before commit, so a later position
    -- can commit first; a relay reads in (txid, position) order, only below the
    -- oldest transaction still running, and so never skips an event that commits late.
    txid           XID8        NOT NULL DEFAULT pg_current_xact_id()
);
CREATE UNIQUE INDEX outbox_aggregate ON outbox (aggregate_type, aggregate_id, aggregate_seq);
CREATE INDEX outbox_event ON outbox (event_id, position) WHERE event_id IS NOT NULL;
CREATE INDEX outbox_relay ON outbox (txid, position);

-- Each relay's cursor and lease (one row per relay name).
CREATE TABLE relay_state (
    name              TEXT        PRIMARY KEY,
    txid              BIGINT      NOT NULL DEFAULT 0,
    position          BIGINT      NOT NULL DEFAULT 0,
    owner             TEXT,
    lease_until       TIMESTAMPTZ,
    published         BIGINT      NOT NULL DEFAULT 0,
    last_published_at TIMESTAMPTZ,
    last_error        TEXT
);
