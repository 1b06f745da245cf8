DROP TABLE message_images;
ALTER TABLE model_prices DROP COLUMN per_image_micros;
ALTER TABLE providers DROP COLUMN image_models;
ALTER TABLE providers DROP COLUMN speech_models;
