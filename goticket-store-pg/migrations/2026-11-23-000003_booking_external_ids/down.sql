DROP INDEX bookings_by_external_id;
ALTER TABLE bookings DROP COLUMN external_id;
