DROP TABLE message_citations;
DROP TABLE conversation_collections;
