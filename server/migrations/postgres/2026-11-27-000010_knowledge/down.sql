DROP TABLE index_changes;
DROP TABLE chunks;
DROP TABLE document_files;
DROP TABLE documents;
DROP TABLE collection_readers;
DROP TABLE collections;
