#!/usr/bin/env bash
# Installs everything slr-tune needs into ./.venv (idempotent). Torch is pinned to a CPU build that
# installs fast; on a GPU machine set SLR_TORCH="torch==2.13.0 --index-url https://download.pytorch.org/whl/cu126".
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
stamp=.venv/.slr-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  echo "installing slr-tune and its dependencies into .venv (log: .venv/install.log) ..."
  {
    .venv/bin/python -m pip install --upgrade pip &&
    # shellcheck disable=SC2086
    .venv/bin/python -m pip install ${SLR_TORCH:-torch==2.13.0} &&
    .venv/bin/python -m pip install -e ".[tune,onnx,lm,test]"
  } > .venv/install.log 2>&1 || { tail -30 .venv/install.log; echo "setup failed; full log: .venv/install.log"; exit 1; }
  touch "$stamp"
fi
