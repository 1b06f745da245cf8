DROP TABLE ingest_claims;
DROP TABLE leases;
