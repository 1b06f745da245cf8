DROP TABLE audit_checkpoints;
DROP TABLE audit_head;
DROP INDEX audit_events_action;
DROP INDEX audit_events_actor;
DROP INDEX audit_events_seq;
ALTER TABLE audit_events DROP COLUMN api_key_id;
ALTER TABLE audit_events DROP COLUMN hash;
ALTER TABLE audit_events DROP COLUMN prev_hash;
ALTER TABLE audit_events DROP COLUMN seq;
