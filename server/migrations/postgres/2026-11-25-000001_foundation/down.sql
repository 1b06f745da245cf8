DROP TABLE audit_events;
DROP TABLE login_failures;
DROP TABLE api_tokens;
DROP TABLE sessions;
DROP TABLE group_members;
DROP TABLE groups;
DROP TABLE users;
