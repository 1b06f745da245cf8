-- Users whose audit events retention must keep, and whose conversations may not be deleted,
-- while a legal hold is in place.
CREATE TABLE legal_holds (
    user_id BIGINT PRIMARY KEY REFERENCES users(id),
    reason TEXT NOT NULL,
    placed_by TEXT NOT NULL,
    placed_at BIGINT NOT NULL
);
