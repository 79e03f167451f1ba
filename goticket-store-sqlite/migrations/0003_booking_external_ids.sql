-- goticket schema v3: external ids on bookings, so re-running a bookings import is a no-op.
ALTER TABLE bookings ADD COLUMN external_id TEXT;
CREATE UNIQUE INDEX bookings_by_external_id ON bookings (external_id) WHERE external_id IS NOT NULL;
