DROP TABLE pending_steps;
DROP TABLE set_aside_accounts;
