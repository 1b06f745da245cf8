-- Speech and image models a provider offers, apart from the chat models in `models` (JSON
-- arrays of the provider's own ids).
ALTER TABLE providers ADD COLUMN speech_models TEXT NOT NULL DEFAULT '[]';
ALTER TABLE providers ADD COLUMN image_models TEXT NOT NULL DEFAULT '[]';

-- Image models are priced per image, in millionths of the currency.
ALTER TABLE model_prices ADD COLUMN per_image_micros BIGINT NOT NULL DEFAULT 0;

-- Images drawn in a chat, kept with the answer that shows them and gone with its
-- conversation.
CREATE TABLE message_images (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    message_id BIGINT NOT NULL REFERENCES messages(id) ON DELETE CASCADE,
    content_type TEXT NOT NULL,
    bytes BLOB NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX message_images_message ON message_images (message_id);
