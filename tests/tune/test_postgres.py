"""The cluster's real database parts on loopback: a PostgreSQL server (the Debian package's binaries; scripts/test.sh
installs the package when missing) set up by `mlflow/postgres.sh`, the tracking server of `mlflow/cluster.sh`
(basic auth on) with its backend in it, and a sweep whose Optuna study lives in it -- killed mid-sweep and resumed."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

import optuna
import pytest
import yaml
from mlflow.tracking import MlflowClient

pytestmark = [pytest.mark.slow, pytest.mark.integration, pytest.mark.paced]
ROOT = Path(__file__).resolve().parents[2]
TABLE = ROOT / "benchmarks" / "results" / "search_table_20ep.parquet"
ADMIN_PASSWORD = "slr-test-admin-pw-3f9a"
NUM_TRIALS, EPOCHS = 4, 6


def _pg_bin() -> Path:
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/postgres"))
    if not found:
        pytest.fail("PostgreSQL server binaries not found under /usr/lib/postgresql: install the Debian package "
                    "postgresql (scripts/test.sh does when it runs as root)")
    return found[-1].parent


def _as_owner(cmd: list[str]) -> list[str]:
    """PostgreSQL refuses to run as root: as root, run it as the package's `postgres` user (exec, same pid)."""
    if os.getuid() != 0:
        return cmd
    return ["setpriv", "--reuid=postgres", "--regid=postgres", "--init-groups", *cmd]


@pytest.fixture(scope="module")
def postgres(services):
    """A fresh PostgreSQL server on 127.0.0.1 (password auth over TCP), databases made by mlflow/postgres.sh;
    stopped by its process id."""
    bin_dir, port = _pg_bin(), services.free_port()
    home = Path(tempfile.mkdtemp(prefix="slr-pg-"))  # not under pytest's 0700 root-owned tmp: postgres reads it
    if os.getuid() == 0:
        shutil.chown(home, "postgres", "postgres")
    data, log = home / "data", open(home / "server.log", "ab")
    subprocess.run(_as_owner([str(bin_dir / "initdb"), "-D", str(data), "-U", "postgres", "--auth-local=trust",
                              "--auth-host=scram-sha-256", "-E", "UTF8", "--no-sync"]),
                   check=True, stdout=log, stderr=subprocess.STDOUT)
    server = subprocess.Popen(_as_owner([str(bin_dir / "postgres"), "-D", str(data), "-p", str(port), "-k", str(home),
                                         "-c", "listen_addresses=127.0.0.1", "-c", "fsync=off"]),
                              stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.time() + 60
        while subprocess.run([str(bin_dir / "pg_isready"), "-q", "-h", "127.0.0.1", "-p", str(port)]).returncode:
            assert server.poll() is None and time.time() < deadline, (home / "server.log").read_text()[-2000:]
            time.sleep(0.2)
        pgpass = Path(tempfile.mkdtemp(prefix="slr-pgpass-")) / "pgpass"
        env = {**os.environ, "PGHOST": str(home), "PGPORT": str(port), "PGUSER": "postgres",
               "SLR_DB_PORT": str(port), "PGPASSFILE": str(pgpass), "PATH": f"{bin_dir}:{os.environ['PATH']}"}
        for _ in range(2):  # idempotent: the second run keeps the password and the databases
            setup = subprocess.run(["bash", str(ROOT / "mlflow" / "postgres.sh")], env=env, capture_output=True,
                                   text=True, timeout=60)
            assert setup.returncode == 0, setup.stderr
        password = pgpass.read_text().strip().rsplit(":", 1)[1]
        assert len(pgpass.read_text().splitlines()) == 1 and oct(pgpass.stat().st_mode & 0o777) == "0o600"
        assert password not in setup.stdout + setup.stderr
        yield SimpleNamespace(port=port, pgpass=pgpass, password=password,
                              url=lambda db: f"postgresql://slr@127.0.0.1:{port}/{db}")
    finally:
        if server.poll() is None:
            os.kill(server.pid, signal.SIGINT)  # fast shutdown, by the server's own pid
        server.wait(timeout=60)
        shutil.rmtree(home, ignore_errors=True)


def _sql(postgres, db: str, query: str) -> list[tuple]:
    import psycopg
    with psycopg.connect(host="127.0.0.1", port=postgres.port, user="slr", dbname=db,
                          passfile=str(postgres.pgpass)) as con, con.cursor() as cur:
        cur.execute(query)
        return cur.fetchall()


def test_the_role_needs_its_password(postgres):
    import psycopg
    assert _sql(postgres, "optuna", "SELECT current_user") == [("slr",)]
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        psycopg.connect(host="127.0.0.1", port=postgres.port, user="slr", dbname="optuna", password="wrong")


def test_sweep_on_postgres_behind_the_cluster_tracking_server_resumes(postgres, services, tiny_corpus, tmp_path):
    port = services.free_port()
    env = {**os.environ, "PGPASSFILE": str(postgres.pgpass), "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    server_env = {**env, "MLFLOW_BACKEND_URI": postgres.url("mlflow"), "MLFLOW_ARTIFACTS_URI": str(tmp_path / "art"),
                  "MLFLOW_ADMIN_PASSWORD": ADMIN_PASSWORD, "MLFLOW_PORT": str(port), "MLFLOW_WORKERS": "1",
                  "MLFLOW_STATE_DIR": str(tmp_path / "mlflow-state")}
    server = subprocess.Popen(["bash", str(ROOT / "mlflow" / "cluster.sh")], env=server_env, start_new_session=True,
                              stdout=open(tmp_path / "mlflow.log", "ab"), stderr=subprocess.STDOUT)
    try:
        summary = _sweep_killed_and_resumed(postgres, f"http://127.0.0.1:{port}", env, server, tiny_corpus, tmp_path)
        assert summary["trials_by_status"]["failed"] == 0 and len(summary["trials"]) == NUM_TRIALS
    finally:
        services.stop(server)


def _wait_for_server(uri: str, server: subprocess.Popen, log: Path) -> None:
    import urllib.request
    deadline = time.time() + 120
    while time.time() < deadline:
        try:
            urllib.request.urlopen(f"{uri}/health", timeout=2)
            return
        except OSError:
            assert server.poll() is None, log.read_text()[-3000:]
            time.sleep(0.5)
    raise AssertionError("the tracking server did not come up: " + log.read_text()[-3000:])


def _finished(postgres) -> int:
    try:
        return _sql(postgres, "optuna", "SELECT COUNT(*) FROM trials WHERE state NOT IN ('RUNNING', 'WAITING')")[0][0]
    except Exception:  # noqa: BLE001 -- the driver has not made the tables yet
        return 0


def _sweep_killed_and_resumed(postgres, uri: str, env: dict, server, corpus: Path, tmp_path: Path) -> dict:
    """Kill the sweep mid-way, resume it, check study, runs and summary; returns the summary."""
    _wait_for_server(uri, server, tmp_path / "mlflow.log")
    env = {**env, "MLFLOW_TRACKING_USERNAME": "admin", "MLFLOW_TRACKING_PASSWORD": ADMIN_PASSWORD}
    exp = tmp_path / "pg.yaml"
    raw = dict(name="pg", corpus={"path": str(corpus)}, num_trials=NUM_TRIALS, max_concurrent=1,
               storage_path=str(tmp_path / "sweeps"), resources={"cpu": 1, "gpu": 0}, baseline_first=False,
               config={"train": {"epochs": EPOCHS}},
               space={"train.learning_rate": {"type": "loguniform", "low": 3e-4, "high": 1e-2},
                      "model.num_blocks": {"type": "int", "low": 2, "high": 6}},
               searcher={"algorithm": "tpe", "seed": 0, "n_startup_trials": 2,
                         "storage": postgres.url("optuna")},
               scheduler={"type": "asha", "grace_period": 2, "reduction_factor": 2},
               mlflow={"tracking_uri": uri})
    exp.write_text(yaml.safe_dump(raw))
    log = open(tmp_path / "driver.log", "ab")
    cmd = [sys.executable, str(ROOT / "tests" / "tune" / "table_sweep.py"), str(exp), str(TABLE)]

    driver = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.time() + 300
    while _finished(postgres) < 2 and time.time() < deadline and driver.poll() is None:
        time.sleep(0.1)
    assert driver.poll() is None, "the sweep ended before it could be killed: " + (tmp_path / "driver.log").read_text()[-3000:]
    os.killpg(driver.pid, signal.SIGKILL)  # the driver and its local Ray, mid-sweep
    driver.wait()
    resumed = subprocess.run([*cmd, "--resume"], env=env, stdout=log, stderr=subprocess.STDOUT, timeout=600)
    assert resumed.returncode == 0, (tmp_path / "driver.log").read_text()[-3000:]

    # the study is in PostgreSQL, complete, and nothing of it went to a SQLite file
    study = optuna.load_study(study_name="pg", storage=postgres.url("optuna").replace(
        "slr@", f"slr:{postgres.password}@"))
    assert len(study.trials) == NUM_TRIALS
    states = {t.state.name for t in study.trials}
    assert states <= {"COMPLETE", "PRUNED"} and "COMPLETE" in states, states
    assert not list((tmp_path / "sweeps").rglob("optuna.db"))

    # the tracking server kept its runs in PostgreSQL: one parent, one child per trial, every epoch once
    assert _sql(postgres, "mlflow", "SELECT COUNT(*) FROM runs")[0][0] == NUM_TRIALS + 1
    os.environ.update(MLFLOW_TRACKING_USERNAME="admin", MLFLOW_TRACKING_PASSWORD=ADMIN_PASSWORD)
    try:
        client = MlflowClient(uri)
        runs = client.search_runs([client.get_experiment_by_name("pg").experiment_id], max_results=100)
        children = {r.data.tags["slr.trial_id"]: r for r in runs if "mlflow.parentRunId" in r.data.tags}
        assert len(runs) == NUM_TRIALS + 1 and len(children) == NUM_TRIALS
        assert all(r.info.status == "FINISHED" for r in runs)
        outcome = {"COMPLETE": "completed", "PRUNED": "stopped-by-asha"}
        for t in study.trials:
            run = children[t.user_attrs["ray_trial_id"]]
            steps = sorted(m.step for m in client.get_metric_history(run.info.run_id, "dev_wer"))
            assert steps == sorted(t.intermediate_values), (t.number, steps)
            assert run.data.tags["slr.status"] == outcome[t.state.name], (t.number, run.data.tags["slr.status"])
        # the summary lists every trial of the study, those Ray's last state save never saw included
        summary = json.loads((tmp_path / "sweeps" / "pg" / "summary.json").read_text())
        assert sorted(r["trial_id"] for r in summary["trials"]) == sorted(children)
        assert summary["best_dev_wer"] == pytest.approx(min(t.user_attrs["best_dev_wer"] for t in study.trials))
    finally:
        for key in ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"):
            os.environ.pop(key, None)

    # a new sweep under the same name, elsewhere, must not quietly continue the shared study
    exp.write_text(yaml.safe_dump({**raw, "storage_path": str(tmp_path / "other")}))
    again = subprocess.run([sys.executable, "-m", "slr.cli", "sweep", str(exp)], env=env, capture_output=True,
                           text=True, timeout=300)
    assert again.returncode == 1 and "Traceback" not in again.stderr, again.stderr
    assert f"study 'pg' in searcher.storage postgresql://slr@127.0.0.1:{postgres.port}/optuna already holds " \
           f"{NUM_TRIALS} trials: pass --resume" in again.stderr, again.stderr
    return summary
