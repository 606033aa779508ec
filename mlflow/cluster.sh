#!/usr/bin/env bash
# Cluster tracking server on the Ray head: SQL backend, S3 artifacts, basic-auth app, 127.0.0.1 only.
# Credentials come from the environment (or files), never from the command line:
#   MLFLOW_BACKEND_URI      e.g. postgresql://mlflow@localhost/mlflow (password in ~/.pgpass)
#   MLFLOW_ARTIFACTS_URI    e.g. s3://my-bucket/mlflow (AWS credentials from the instance role)
#   MLFLOW_ADMIN_PASSWORD   admin password of the basic-auth app (or MLFLOW_AUTH_CONFIG_PATH: your own config)
#   MLFLOW_FLASK_SERVER_SECRET_KEY  secret for the auth app's sessions (generated when unset)
# Clients authenticate with MLFLOW_TRACKING_USERNAME / MLFLOW_TRACKING_PASSWORD in their environment.
set -euo pipefail
: "${MLFLOW_BACKEND_URI:?set MLFLOW_BACKEND_URI}" "${MLFLOW_ARTIFACTS_URI:?set MLFLOW_ARTIFACTS_URI}"
state=${MLFLOW_STATE_DIR:-$HOME/.slr-mlflow}
mkdir -p "$state" && chmod 700 "$state"
if [ -z "${MLFLOW_AUTH_CONFIG_PATH:-}" ]; then
  : "${MLFLOW_ADMIN_PASSWORD:?set MLFLOW_ADMIN_PASSWORD (or MLFLOW_AUTH_CONFIG_PATH)}"
  # The auth config is written with the password from the environment, readable by this user only.
  (umask 077; sed -e "s|^admin_password = .*|admin_password = ${MLFLOW_ADMIN_PASSWORD}|" \
       -e "s|^database_uri = .*|database_uri = sqlite:///${state}/basic_auth.db|" \
       "$(dirname "$0")/basic_auth.ini" > "$state/basic_auth.ini")
  export MLFLOW_AUTH_CONFIG_PATH=$state/basic_auth.ini
fi
if [ -z "${MLFLOW_FLASK_SERVER_SECRET_KEY:-}" ]; then
  MLFLOW_FLASK_SERVER_SECRET_KEY=$(python3 -c "import secrets; print(secrets.token_hex(32))")
  export MLFLOW_FLASK_SERVER_SECRET_KEY
fi
exec mlflow server --host 127.0.0.1 --port "${MLFLOW_PORT:-5000}" --app-name basic-auth \
  --backend-store-uri "$MLFLOW_BACKEND_URI" --artifacts-destination "$MLFLOW_ARTIFACTS_URI" --workers "${MLFLOW_WORKERS:-4}"
