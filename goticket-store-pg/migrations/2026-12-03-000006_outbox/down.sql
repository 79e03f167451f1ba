DROP TABLE relay_state;
DROP TABLE outbox;
