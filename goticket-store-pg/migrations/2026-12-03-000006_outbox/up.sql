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
    payload        JSONB       NOT NULL
);
CREATE UNIQUE INDEX outbox_aggregate ON outbox (aggregate_type, aggregate_id, aggregate_seq);
CREATE INDEX outbox_event ON outbox (event_id, position) WHERE event_id IS NOT NULL;
