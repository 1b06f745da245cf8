-- Directory groups (LDAP group names, OIDC group claims) mapped to an Ayush role and/or an Ayush
-- group, re-evaluated at each sign-in and each directory sync.
CREATE TABLE directory_mappings (
    id BIGSERIAL PRIMARY KEY,
    directory_group TEXT NOT NULL,
    role TEXT,
    group_id BIGINT REFERENCES groups(id) ON DELETE CASCADE,
    created_at BIGINT NOT NULL,
    CHECK (role IS NOT NULL OR group_id IS NOT NULL)
);
CREATE UNIQUE INDEX directory_mappings_rule ON directory_mappings(lower(directory_group), COALESCE(role, ''), COALESCE(group_id, 0));
-- Where a directory account came from: its DN (LDAP).
ALTER TABLE users ADD COLUMN external_id TEXT;
