#!/usr/bin/env bash
# The test command: installs (first run only) and runs the whole suite, slow integration tests included.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/python -m pytest "$@"
