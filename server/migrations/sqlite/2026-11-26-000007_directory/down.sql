ALTER TABLE users DROP COLUMN external_id;
DROP INDEX directory_mappings_rule;
DROP TABLE directory_mappings;
