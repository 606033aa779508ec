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
# The cluster database test runs a real PostgreSQL server (Debian package), installed here when missing.
if ! compgen -G "/usr/lib/postgresql/*/bin/postgres" >/dev/null; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "installing postgresql (system package) for the cluster database test ..."
    (apt-get install -y -q postgresql >/dev/null 2>&1 || (apt-get update -q >/dev/null && apt-get install -y -q postgresql >/dev/null)) \
      || echo "could not install postgresql: the cluster database test will fail and say why"
  else
    echo "postgresql is missing and cannot be installed here (needs root + apt-get): the cluster database test will fail"
  fi
fi
if [ "$#" -gt 0 ]; then
  exec .venv/bin/python -m pytest "$@"
fi
# The whole suite: the tests that start Ray (marker `ray`: tests/tune/ and the benchmark smoke tests that use it)
# run beside the Ray-free ones, two pytest processes at once, so that one's waits on wall-clock (server restarts,
# outages, paced trials) overlap the other's training. Never two Ray clusters at once: one group has them all.
base=$(mktemp -d "${TMPDIR:-/tmp}/slr-tests.XXXXXX")
start=$(date +%s)
echo "running the suite in two groups: Ray tests (log: $base/ray.log) beside the rest (below)"
.venv/bin/python -m pytest -m ray --basetemp "$base/ray" --durations=15 > "$base/ray.log" 2>&1 &
ray_pid=$!
set +e
.venv/bin/python -m pytest -m "not ray" --basetemp "$base/rest" --durations=15
rest=$?
wait "$ray_pid"
ray_rc=$?
set -e
echo
echo "======================== the Ray tests ($base/ray.log) ========================"
cat "$base/ray.log"
echo
echo "suite: Ray tests exit $ray_rc, the rest exit $rest, $(( $(date +%s) - start )) s in all"
[ "$ray_rc" = 0 ] && [ "$rest" = 0 ]
