-- goticket schema v2: external ids, so re-running a batch import is a no-op.
ALTER TABLE events ADD COLUMN external_id TEXT;
CREATE UNIQUE INDEX events_by_external_id ON events (external_id) WHERE external_id IS NOT NULL;
