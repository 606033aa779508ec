#!/usr/bin/env bash
# The test command: installs (first run only) and runs the whole suite, slow integration tests included.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# System packages two tests drive for real, installed here when missing (Debian: needs root + apt-get).
need_system_package() {  # PACKAGE WHAT-FOR PRESENT-CHECK...
  local package=$1 what=$2
  shift 2
  if "$@" >/dev/null 2>&1; then return 0; fi
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "installing $package (system package) for $what ..."
    (apt-get install -y -q "$package" >/dev/null 2>&1 || (apt-get update -q >/dev/null && apt-get install -y -q "$package" >/dev/null)) \
      || echo "could not install $package: $what will fail and say why"
  else
    echo "$package is missing and cannot be installed here (needs root + apt-get): $what will fail"
  fi
}
# The MLflow UI browser test drives the system's Chromium; the cluster database test runs a real PostgreSQL server.
need_system_package chromium "the browser test" sh -c 'command -v chromium || command -v chromium-browser'
need_system_package postgresql "the cluster database test" sh -c 'ls /usr/lib/postgresql/*/bin/postgres'
if [ "$#" -gt 0 ]; then
  exec .venv/bin/python -m pytest "$@"
fi
# The whole suite in three pytest processes at once: the Ray tests that mostly wait on wall-clock (marker `paced`:
# trials replaying measured curves at a fixed pace, tracking-server outages), the other Ray tests (marker `ray`:
# tests/tune/ and the benchmark smoke tests that use Ray), and the Ray-free rest. One group's waits overlap the
# others' training. Each Ray test starts its own local cluster or servers on free loopback ports.
base=$(mktemp -d "${TMPDIR:-/tmp}/slr-tests.XXXXXX")
start=$(date +%s)
echo "running the suite in three groups: paced Ray tests ($base/paced.log), other Ray tests ($base/ray.log), the rest (below)"
.venv/bin/python -m pytest -m "ray and paced" --basetemp "$base/paced" --durations=10 > "$base/paced.log" 2>&1 &
paced_pid=$!
.venv/bin/python -m pytest -m "ray and not paced" --basetemp "$base/ray" --durations=15 > "$base/ray.log" 2>&1 &
ray_pid=$!
set +e
# One torch thread per test process: three processes on two cores, each with torch's default of a thread per core,
# spin in OpenMP waits on each other (a 30-epoch training fixture took 561 s instead of ~60). Trials on Ray get
# one thread per CPU they hold anyway; tests of the thread setting set it themselves.
OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 .venv/bin/python -m pytest -m "not ray" --basetemp "$base/rest" --durations=15
rest=$?
wait "$ray_pid"
ray_rc=$?
wait "$paced_pid"
paced_rc=$?
set -e
for group in ray paced; do
  echo
  echo "======================== the $group tests ($base/$group.log) ========================"
  cat "$base/$group.log"
done
echo
echo "suite: paced Ray tests exit $paced_rc, other Ray tests exit $ray_rc, the rest exit $rest, $(( $(date +%s) - start )) s in all"
[ "$paced_rc" = 0 ] && [ "$ray_rc" = 0 ] && [ "$rest" = 0 ]
