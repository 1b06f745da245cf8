DROP TABLE usage_totals;
DROP TABLE messages;
DROP TABLE conversations;
