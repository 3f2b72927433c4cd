#!/usr/bin/env bash
# Run once by the postgres image on a new cluster (/docker-entrypoint-initdb.d): covid-etl's two
# roles with their passwords from the secrets, and nothing for PUBLIC. The same roles and grants as
# scripts/stack.sh gives the Docker-free stack.
set -euo pipefail
loader="$(head -n 1 /run/secrets/covid_loader_password)"
reader="$(head -n 1 /run/secrets/covid_reader_password)"
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
  -v loader="$loader" -v reader="$reader" <<'SQL'
CREATE ROLE covid_loader LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS
  PASSWORD :'loader';
CREATE ROLE covid_reader LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS
  PASSWORD :'reader';
-- The loader makes its env schemas (and stages each load in a temporary table); the reader only
-- connects, and the loader's migrations grant it SELECT on each env's tables.
REVOKE ALL ON DATABASE covid FROM PUBLIC;
GRANT CONNECT, CREATE, TEMPORARY ON DATABASE covid TO covid_loader;
GRANT CONNECT ON DATABASE covid TO covid_reader;
REVOKE CREATE ON SCHEMA public FROM PUBLIC;
SQL
