DROP TABLE ingest_uploads;
DROP TABLE ingest_jobs;
