ALTER TABLE sessions DROP COLUMN sso_provider;
DROP TABLE oidc_flows;
