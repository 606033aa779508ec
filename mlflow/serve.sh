#!/usr/bin/env bash
# Embedded tracking server: sqlite file + local artifacts, bound to 127.0.0.1 only.
#   bash mlflow/serve.sh [STORE_DIR] [PORT]
# Reach it from elsewhere through an SSH tunnel (ssh -L 5000:127.0.0.1:5000 head), never by opening the port.
set -euo pipefail
store=${1:-mlflow-store}
port=${2:-5000}
mkdir -p "$store/artifacts"
exec mlflow server --host 127.0.0.1 --port "$port" \
  --backend-store-uri "sqlite:///$(cd "$store" && pwd)/mlflow.db" \
  --artifacts-destination "$(cd "$store" && pwd)/artifacts" --workers 2
