-- Which groups may use a model. A model with no rows is open to every signed-in user; with
-- rows, only to members of those groups. Rows stay when a model file is removed, so a file
-- re-imported under the same name is still restricted.
CREATE TABLE model_access (
    model TEXT NOT NULL,
    group_id BIGINT NOT NULL REFERENCES groups(id) ON DELETE CASCADE,
    granted_at BIGINT NOT NULL,
    PRIMARY KEY (model, group_id)
);
CREATE INDEX model_access_group ON model_access(group_id);
