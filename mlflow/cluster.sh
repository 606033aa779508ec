#!/usr/bin/env bash
# Cluster tracking server on the Ray head: SQL backend, S3 artifacts, basic-auth app, 127.0.0.1 only.
# Credentials come from the environment (or files), never from the command line:
#   MLFLOW_BACKEND_URI      e.g. postgresql://mlflow@localhost/mlflow (password in ~/.pgpass)
#   MLFLOW_ARTIFACTS_URI    e.g. s3://my-bucket/mlflow (AWS credentials from the instance role)
#   MLFLOW_AUTH_CONFIG_PATH basic-auth config (mlflow/basic_auth.ini); admin password set on first start
# Clients authenticate with MLFLOW_TRACKING_USERNAME / MLFLOW_TRACKING_PASSWORD in their environment.
set -euo pipefail
: "${MLFLOW_BACKEND_URI:?set MLFLOW_BACKEND_URI}" "${MLFLOW_ARTIFACTS_URI:?set MLFLOW_ARTIFACTS_URI}"
export MLFLOW_AUTH_CONFIG_PATH=${MLFLOW_AUTH_CONFIG_PATH:-$(dirname "$0")/basic_auth.ini}
exec mlflow server --host 127.0.0.1 --port "${MLFLOW_PORT:-5000}" --app-name basic-auth \
  --backend-store-uri "$MLFLOW_BACKEND_URI" --artifacts-destination "$MLFLOW_ARTIFACTS_URI" --workers 4
