DROP TABLE audit_sinks;
