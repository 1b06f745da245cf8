-- OpenID Connect sign-ins in progress: the state (hashed), the nonce and the PKCE verifier,
-- each used once.
CREATE TABLE oidc_flows (
    state_hash TEXT PRIMARY KEY,
    provider TEXT NOT NULL,
    nonce TEXT NOT NULL,
    verifier TEXT NOT NULL,
    next TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
-- The provider a session signed in through, for RP-initiated logout.
ALTER TABLE sessions ADD COLUMN sso_provider TEXT;
