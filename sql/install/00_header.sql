\echo Use "CREATE EXTENSION meter" to load this file. \quit
-- meter: usage metering inside PostgreSQL. Assembled from sql/install/*.sql in name order.
