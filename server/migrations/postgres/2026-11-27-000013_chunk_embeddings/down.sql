DROP TABLE chunk_embeddings;
