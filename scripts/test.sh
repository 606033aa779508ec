#!/usr/bin/env bash
# The test command: installs (first run only) and runs the whole suite, slow integration tests included.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# The MLflow UI browser test drives the system's Chromium (Debian package), installed here when missing.
if ! command -v chromium >/dev/null && ! command -v chromium-browser >/dev/null; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "installing chromium (system package) for the browser test ..."
    (apt-get install -y -q chromium >/dev/null 2>&1 || (apt-get update -q >/dev/null && apt-get install -y -q chromium >/dev/null)) \
      || echo "could not install chromium: the browser test will fail and say why"
  else
    echo "chromium is missing and cannot be installed here (needs root + apt-get): the browser test will fail"
  fi
fi
exec .venv/bin/python -m pytest "$@"
