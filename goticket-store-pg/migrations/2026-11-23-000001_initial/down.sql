DROP TABLE tickets;
DROP TABLE bookings;
DROP TABLE events;
