#!/usr/bin/env bash
# The main job: install (first run), sweep on the embedded quickstart corpus, export the best config.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
source .venv/bin/activate
if [ -f sweeps/quickstart/tuner.pkl ] && [ ! -f sweeps/quickstart/summary.json ]; then
  slr sweep experiments/quickstart.yaml --resume "$@"
elif [ ! -f sweeps/quickstart/summary.json ]; then
  slr sweep experiments/quickstart.yaml "$@"
fi
slr export quickstart --out best.yaml --force   # the main job's own output, rewritten on a rerun
slr report quickstart
echo "MLflow UI: mlflow ui --backend-store-uri sqlite:///$PWD/sweeps/quickstart/mlflow.db --host 127.0.0.1 --port 5000"
