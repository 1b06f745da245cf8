DROP TABLE notice_acknowledgements;
DROP TABLE theme;
