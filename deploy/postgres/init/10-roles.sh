#!/usr/bin/env bash
# Creates one login role and one schema per OpenSMM service in the database
# "$POSTGRES_DB" (smm). The postgres image runs this once, on an empty data
# directory; it is idempotent, so an operator may run it again (e.g. to rotate
# passwords) with the same environment:
#   docker compose exec postgres bash /docker-entrypoint-initdb.d/10-roles.sh
#
# Passwords come from SMM_INGEST_DB_PASSWORD, SMM_PUBLISHER_DB_PASSWORD,
# SMM_INBOX_DB_PASSWORD and SMM_METRICS_DB_PASSWORD (see .env.example). With
# SMM_GRAFANA_PG_PASSWORD set it also creates smm_metrics_ro, the read-only role
# Grafana's brand analytics dashboards use on the metrics schema.
set -euo pipefail

: "${POSTGRES_USER:=postgres}"
: "${POSTGRES_DB:=smm}"

psql_args=(-v ON_ERROR_STOP=1 --no-psqlrc --quiet --username "$POSTGRES_USER" --dbname "$POSTGRES_DB")
if [[ -n "${PGHOST:-}" ]]; then psql_args+=(--host "$PGHOST"); fi

psql "${psql_args[@]}" -v db="$POSTGRES_DB" <<'SQL'
REVOKE ALL ON DATABASE :"db" FROM PUBLIC;
REVOKE ALL ON SCHEMA public FROM PUBLIC;
SQL

for service in ingest publisher inbox metrics; do
  var="SMM_${service^^}_DB_PASSWORD"
  password="${!var:-}"
  if [[ -z "$password" ]]; then
    echo "10-roles.sh: $var is not set" >&2
    exit 1
  fi
  role="smm_${service}"
  # Values travel as psql variables (:'pw' quotes a literal, :"x" an identifier),
  # never spliced into SQL text.
  psql "${psql_args[@]}" -v db="$POSTGRES_DB" -v role="$role" -v schema="$service" -v pw="$password" <<'SQL'
SELECT format('CREATE ROLE %I LOGIN', :'role')
WHERE NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = :'role')
\gexec
ALTER ROLE :"role" WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD :'pw';
GRANT CONNECT, TEMPORARY ON DATABASE :"db" TO :"role";
CREATE SCHEMA IF NOT EXISTS :"schema" AUTHORIZATION :"role";
ALTER SCHEMA :"schema" OWNER TO :"role";
ALTER ROLE :"role" IN DATABASE :"db" SET search_path = :"schema";
SQL
  echo "10-roles.sh: role $role owns schema $service"
done

if [[ -n "${SMM_GRAFANA_PG_PASSWORD:-}" ]]; then
  # SELECT on the metrics schema only, today's tables and the ones the metrics service's
  # migrations create later (default privileges of their owner, smm_metrics).
  psql "${psql_args[@]}" -v db="$POSTGRES_DB" -v pw="$SMM_GRAFANA_PG_PASSWORD" <<'SQL'
SELECT 'CREATE ROLE smm_metrics_ro LOGIN'
WHERE NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = 'smm_metrics_ro')
\gexec
ALTER ROLE smm_metrics_ro WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD :'pw';
GRANT CONNECT ON DATABASE :"db" TO smm_metrics_ro;
GRANT USAGE ON SCHEMA metrics TO smm_metrics_ro;
GRANT SELECT ON ALL TABLES IN SCHEMA metrics TO smm_metrics_ro;
ALTER DEFAULT PRIVILEGES FOR ROLE smm_metrics IN SCHEMA metrics GRANT SELECT ON TABLES TO smm_metrics_ro;
ALTER ROLE smm_metrics_ro IN DATABASE :"db" SET search_path = metrics;
SQL
  echo "10-roles.sh: role smm_metrics_ro reads schema metrics"
fi
