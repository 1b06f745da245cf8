DROP TABLE model_access;
