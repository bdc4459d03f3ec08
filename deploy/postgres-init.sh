#!/bin/sh
# The ledgers' database beside Temporal's own (created by temporalio/auto-setup), run once by the postgres image on
# its first start (docker-entrypoint-initdb.d). The password comes from the environment (BOOKING_DB_PASSWORD, a
# required variable in docker-compose.yml), handed to psql as a variable so that it is quoted as a literal.
set -eu
: "${BOOKING_DB_PASSWORD:?BOOKING_DB_PASSWORD is not set}"
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "${POSTGRES_DB:-$POSTGRES_USER}" \
  -v booking_password="$BOOKING_DB_PASSWORD" <<'SQL'
CREATE USER booking WITH PASSWORD :'booking_password';
CREATE DATABASE booking OWNER booking;
SQL
