-- The ledgers' database, beside Temporal's own (created by temporalio/auto-setup).
CREATE USER booking WITH PASSWORD 'booking';
CREATE DATABASE booking OWNER booking;
