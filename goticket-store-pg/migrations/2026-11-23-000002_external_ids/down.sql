DROP INDEX events_by_external_id;
ALTER TABLE events DROP COLUMN external_id;
