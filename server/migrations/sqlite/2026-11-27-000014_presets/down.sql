ALTER TABLE conversations DROP COLUMN preset_id;
DROP TABLE preset_collections;
DROP TABLE presets;
