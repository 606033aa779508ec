"""The sweep driver is SIGKILLed mid-sweep; `slr sweep --resume` finishes it with no duplicate MLflow runs
and no lost or duplicated Optuna trials (real mlflow server over HTTP, local Ray, sqlite Optuna)."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time

import optuna
import pytest
import yaml
from mlflow.tracking import MlflowClient

pytestmark = [pytest.mark.slow, pytest.mark.integration]
NUM_TRIALS = 4


def _finished_trials(db) -> int:
    """Optuna trials in a final state, read straight from the sweep's study storage."""
    if not db.exists():
        return 0
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1) as con:
            return con.execute("SELECT COUNT(*) FROM trials WHERE state != 'RUNNING' AND state != 'WAITING'"
                               ).fetchone()[0]
    except sqlite3.Error:
        return 0


def _sweep(exp, *extra) -> list[str]:
    return [sys.executable, "-m", "slr.cli", "sweep", str(exp), *extra]


def test_resume_after_the_driver_is_killed(tiny_corpus, tmp_path, mlflow_server):
    exp = tmp_path / "resume.yaml"
    exp.write_text(yaml.safe_dump(dict(
        name="resume", corpus={"path": str(tiny_corpus)}, num_trials=NUM_TRIALS, max_concurrent=1,
        storage_path=str(tmp_path / "sweeps"), resources={"cpu": 1, "gpu": 0},
        config={"model": {"num_blocks": 1}, "train": {"epochs": 4, "early_stopping_patience": 0}},
        space={"train.learning_rate": {"type": "loguniform", "low": 1e-4, "high": 1e-2}},
        searcher={"algorithm": "tpe", "seed": 0, "n_startup_trials": 2}, scheduler={"type": "none"},
        mlflow={"tracking_uri": mlflow_server})))
    env = {**os.environ, "TUNE_GLOBAL_CHECKPOINT_S": "1"}  # save experiment state often, as a long sweep would
    log = open(tmp_path / "driver.log", "ab")
    driver = subprocess.Popen(_sweep(exp), stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    db = tmp_path / "sweeps" / "resume" / "optuna.db"
    deadline = time.time() + 300
    while _finished_trials(db) < 1 and time.time() < deadline and driver.poll() is None:
        time.sleep(0.5)
    assert _finished_trials(db) >= 1, "no trial finished: " + (tmp_path / "driver.log").read_text()[-3000:]
    live = subprocess.run([sys.executable, "-m", "slr.cli", "sweep", "status", "resume", "--storage",
                           str(tmp_path / "sweeps")], capture_output=True, text=True, timeout=120)
    assert live.returncode == 0, live.stderr
    assert "running" in live.stdout and "completed" in live.stdout and "best dev WER so far" in live.stdout, live.stdout
    time.sleep(2)  # into the second trial, past a state save
    assert driver.poll() is None, "the sweep ended before it could be killed: " + (tmp_path / "driver.log").read_text()[-3000:]
    os.killpg(driver.pid, signal.SIGKILL)  # the driver and the local Ray it started, as a lost head would
    driver.wait()
    assert _finished_trials(db) < NUM_TRIALS

    resumed = subprocess.run(_sweep(exp, "--resume"), stdout=log, stderr=subprocess.STDOUT, env=env, timeout=600,
                             start_new_session=True)
    assert resumed.returncode == 0, (tmp_path / "driver.log").read_text()[-3000:]

    study = optuna.load_study(study_name="resume", storage=f"sqlite:///{db}")
    assert len(study.trials) == NUM_TRIALS
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in study.trials)

    client = MlflowClient(mlflow_server)
    exp_id = client.get_experiment_by_name("resume").experiment_id
    runs = client.search_runs([exp_id], max_results=100)
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    # A trial Optuna handed out after Ray's last state save is re-run as a new Ray trial; its old run is closed
    orphans = [r for r in runs if r.data.tags.get("slr.status") == "orphaned"]
    assert all(r.info.status == "KILLED" for r in orphans)
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags and r not in orphans]
    assert len(parents) == 1 and len(orphans) <= 1
    assert len(children) == NUM_TRIALS and all(r.info.status == "FINISHED" for r in children)
    assert len({r.data.tags["slr.trial_id"] for r in children}) == NUM_TRIALS
    for run in children:  # the interrupted trial resumed from its checkpoint: every epoch once
        steps = [m.step for m in client.get_metric_history(run.info.run_id, "dev_wer")]
        assert sorted(steps) == [1, 2, 3, 4], (run.data.tags["slr.trial_id"], steps)


def test_runs_left_open_by_a_killed_driver_are_closed_unless_ray_restored_them(tmp_path, mlflow_server):
    from tune.tracking import SweepTracker
    first = SweepTracker(mlflow_server, "orphans", "orphans", tmp_path)
    first.start({"num_trials": 4})
    for trial in ("done", "restored", "lost"):
        first.child(trial, {"train.learning_rate": 0.01}, "train: {}\n")
    first.finish_trial("done", "completed", rung=0)
    # the driver dies here: "restored" is in Ray's saved state, "lost" was started after the last save
    second = SweepTracker(mlflow_server, "orphans", "orphans", tmp_path)
    second.start({"num_trials": 4})
    second.child("new", {"train.learning_rate": 0.01}, "train: {}\n")
    assert second.close_orphans({"restored", "new"}) == ["lost"]
    assert second.close_orphans({"restored", "new"}) == []  # closed once

    client = MlflowClient(mlflow_server)
    status = {trial: client.get_run(run_id).info.status for trial, run_id in second.children.items()}
    assert status == {"done": "FINISHED", "restored": "RUNNING", "lost": "KILLED", "new": "RUNNING"}
    lost = client.get_run(second.children["lost"]).data.tags
    assert lost["slr.status"] == "orphaned" and "ran again as a new trial" in lost["slr.error"]
