-- The outbox: every committed change's domain events, written in its transaction.
-- `position` is the log's order; (aggregate_type, aggregate_id, aggregate_seq) is
-- unique, so two writers that both thought they were an aggregate's next event
-- cannot both commit. Ids of events and bookings are time-ordered (UUIDv7), so both
-- indexes grow at their right edge, as the primary key does.
CREATE TABLE outbox (
    position       INTEGER PRIMARY KEY AUTOINCREMENT,
    id             TEXT    NOT NULL,
    type           TEXT    NOT NULL,
    aggregate_type TEXT    NOT NULL,
    aggregate_id   TEXT    NOT NULL,
    aggregate_seq  INTEGER NOT NULL CHECK (aggregate_seq >= 1),
    event_id       TEXT,
    occurred_at    INTEGER NOT NULL,
    actor          TEXT,
    schema_version INTEGER NOT NULL,
    payload        TEXT    NOT NULL
);
CREATE UNIQUE INDEX outbox_aggregate ON outbox (aggregate_type, aggregate_id, aggregate_seq);
CREATE INDEX outbox_event ON outbox (event_id, position) WHERE event_id IS NOT NULL;

-- Each relay's cursor and lease (one row per relay name). SQLite commits one writer
-- at a time, so events commit in position order and the position alone is a cursor.
CREATE TABLE relay_state (
    name              TEXT    PRIMARY KEY,
    position          INTEGER NOT NULL DEFAULT 0,
    owner             TEXT,
    lease_until       INTEGER,
    published         INTEGER NOT NULL DEFAULT 0,
    last_published_at INTEGER,
    last_error        TEXT
);
