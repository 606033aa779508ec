#!/usr/bin/env bash
# The cluster's database: a login role and two databases on a PostgreSQL server -- `mlflow` (the tracking
# server's backend, mlflow/cluster.sh) and `optuna` (the sweeps' studies, searcher.storage) -- with the role's
# password in a pgpass file (0600) that libpq, and so MLflow and Optuna, read. Idempotent: run again, it keeps
# the password it made. The password is generated here, goes to the server on stdin and to the pgpass file,
# never onto a command line or into any output.
#
# On the Ray head (cluster.yaml's head_setup_commands):
#   sudo apt-get install -y postgresql            # Debian/Ubuntu; the server listens on localhost only
#   PSQL="sudo -u postgres psql" bash mlflow/postgres.sh
#   export MLFLOW_BACKEND_URI=postgresql://slr@127.0.0.1:5432/mlflow
#   # experiments: searcher.storage=postgresql://slr@127.0.0.1:5432/optuna
#
# Environment: PSQL (a superuser's psql command; default `psql` with the PG* environment), SLR_DB_HOST
# (127.0.0.1), SLR_DB_PORT (5432), SLR_DB_USER (slr), PGPASSFILE (~/.pgpass).
set -euo pipefail
psql_cmd=${PSQL:-psql}
host=${SLR_DB_HOST:-127.0.0.1}
port=${SLR_DB_PORT:-5432}
user=${SLR_DB_USER:-slr}
pgpass=${PGPASSFILE:-$HOME/.pgpass}
case $user in *[!a-z0-9_]*|"") echo "SLR_DB_USER must be lower-case letters, digits and _" >&2; exit 2;; esac

password=""
if [ -f "$pgpass" ]; then
  password=$(awk -F: -v h="$host" -v p="$port" -v u="$user" '$1 == h && $2 == p && $4 == u { print $5; exit }' "$pgpass")
fi
if [ -z "$password" ]; then
  password=$(python3 -c "import secrets; print(secrets.token_hex(24))")
  (umask 077; echo "$host:$port:*:$user:$password" >> "$pgpass")
fi
chmod 600 "$pgpass"

$psql_cmd -v ON_ERROR_STOP=1 -q -d postgres <<SQL
SELECT format('CREATE ROLE %I LOGIN', '$user') WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '$user')\gexec
ALTER ROLE $user PASSWORD '$password';
SELECT format('CREATE DATABASE %I OWNER %I', d, '$user') FROM unnest(ARRAY['mlflow', 'optuna']) AS d
  WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = d)\gexec
SQL
echo "databases mlflow and optuna ready for role $user on $host:$port (password in $pgpass)"
