"""A sweep's lifecycle with real drivers (the lifecycle issue): Ctrl-C, a second driver, a stale lock, a changed
experiment on --resume, an unreachable tracking server at start. The sweeps' trials replay measured curves at a
fixed pace (tests/tune/table_sweep.py runs them through `slr sweep`'s own checks, messages and exit codes)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
import yaml
from mlflow.tracking import MlflowClient

pytestmark = [pytest.mark.slow, pytest.mark.integration, pytest.mark.paced]
ROOT = Path(__file__).resolve().parents[2]
TABLE = ROOT / "benchmarks" / "results" / "search_table_20ep.parquet"
EPOCHS = 6


def _experiment(tmp_path: Path, corpus: Path, name: str, **changes) -> Path:
    raw = dict(name=name, corpus={"path": str(corpus)}, num_trials=3, max_concurrent=1,
               storage_path=str(tmp_path / "sweeps"), resources={"cpu": 1, "gpu": 0}, baseline_first=False,
               config={"train": {"epochs": EPOCHS}},
               space={"train.learning_rate": {"type": "loguniform", "low": 3e-4, "high": 1e-2}},
               searcher={"algorithm": "random", "seed": 0}, scheduler={"type": "none"}, mlflow={"enabled": False})
    raw.update(changes)
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def _driver(exp: Path, log: Path, *extra: str, epoch_s: float = 0.6) -> subprocess.Popen:
    env = {**os.environ, "SLR_TABLE_EPOCH_S": str(epoch_s)}
    return subprocess.Popen([sys.executable, str(ROOT / "tests" / "tune" / "table_sweep.py"), str(exp), str(TABLE),
                             *extra], stdout=open(log, "ab"), stderr=subprocess.STDOUT, env=env,
                            start_new_session=True)


def _slr(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "slr.cli", *args], capture_output=True, text=True, timeout=timeout)


def _study(sweep: Path, name: str) -> list[optuna.trial.FrozenTrial]:
    return optuna.load_study(study_name=name, storage=f"sqlite:///{sweep / 'optuna.db'}").get_trials()


def _reported(sweep: Path) -> int:
    """Epochs reported so far, all trials together: the study's intermediate values, committed at every report
    (Ray's result.json files lag by seconds)."""
    import sqlite3
    if not (sweep / "optuna.db").exists():
        return 0
    try:
        with sqlite3.connect(f"file:{sweep / 'optuna.db'}?mode=ro", uri=True, timeout=1) as con:
            return con.execute("SELECT COUNT(*) FROM trial_intermediate_values").fetchone()[0]
    except sqlite3.Error:
        return 0


def _wait(predicate, proc: subprocess.Popen, log: Path, timeout: float = 240) -> None:
    deadline = time.time() + timeout
    while not predicate():
        assert proc.poll() is None, "the sweep ended early:\n" + log.read_text()[-3000:]
        assert time.time() < deadline, "timed out:\n" + log.read_text()[-3000:]
        time.sleep(0.2)


def _end(proc: subprocess.Popen, timeout: float = 300) -> int:
    try:
        return proc.wait(timeout=timeout)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def test_ctrl_c_interrupts_the_sweep_and_resume_finishes_it(tiny_corpus, tmp_path, mlflow_server):
    """SIGINT to the driver's process group, as Ctrl-C in a terminal: exit 130 with the resume command, no
    summary, no export, status says interrupted, MLflow runs KILLED/interrupted and the interrupted trial still
    RUNNING in Optuna (not told PRUNED: no ASHA here). --resume ends it with every epoch logged once."""
    exp = _experiment(tmp_path, tiny_corpus, "ctrlc", mlflow={"tracking_uri": mlflow_server})
    sweep, log = tmp_path / "sweeps" / "ctrlc", tmp_path / "driver.log"
    driver = _driver(exp, log)
    _wait(lambda: _reported(sweep) >= EPOCHS + 2, driver, log)  # the second trial is half-way
    os.killpg(driver.pid, signal.SIGINT)
    assert _end(driver) == 130, log.read_text()[-3000:]
    text = log.read_text()
    assert "was interrupted" in text and f"resume it with:  slr sweep {exp} --resume" in text
    assert not (sweep / "summary.json").exists()
    states = [t.state for t in _study(sweep, "ctrlc")]
    assert optuna.trial.TrialState.PRUNED not in states and optuna.trial.TrialState.RUNNING in states
    status = _slr("sweep", "status", str(sweep))
    assert status.returncode == 0 and "interrupted" in status.stdout and "finished" not in status.stdout
    export = _slr("export", str(sweep), "--out", str(tmp_path / "best.yaml"))
    assert export.returncode == 1 and "has not finished" in export.stderr and not (tmp_path / "best.yaml").exists()
    assert "--incomplete" in export.stderr
    # asked for: the best finished trial so far, said so, with no look at the test split and nothing written
    export = _slr("export", str(sweep), "--out", str(tmp_path / "so-far.yaml"), "--incomplete")
    assert export.returncode == 0, export.stderr
    doc = yaml.safe_load((tmp_path / "so-far.yaml").read_text())
    first = min((t for t in _study(sweep, "ctrlc") if t.state == optuna.trial.TrialState.COMPLETE),
                key=lambda t: (t.user_attrs["best_dev_wer"], t.number))  # the summary's ranking
    assert doc["train"]["learning_rate"] == pytest.approx(first.params["train.learning_rate"])
    assert "of 3 trials had finished" in doc["provenance"]["incomplete"] and "note:" in export.stdout
    assert "test" not in doc["provenance"] and not (sweep / "lockbox.json").exists()
    assert not (sweep / "summary.json").exists()
    client = MlflowClient(mlflow_server)
    runs = client.search_runs([client.get_experiment_by_name("ctrlc").experiment_id])
    parent = next(r for r in runs if r.data.tags["slr.role"] == "sweep")
    assert (parent.info.status, parent.data.tags["slr.status"]) == ("KILLED", "interrupted")
    assert "RUNNING" not in {r.info.status for r in runs}
    assert "interrupted" in {r.data.tags.get("slr.status") for r in runs if r.data.tags["slr.role"] == "trial"}

    resumed = _driver(exp, log, "--resume", epoch_s=0.2)
    assert _end(resumed) == 0, log.read_text()[-3000:]
    summary = json.loads((sweep / "summary.json").read_text())
    assert summary["trials_by_status"]["completed"] == 3
    drawn = [t.params["train.learning_rate"] for t in _study(sweep, "ctrlc")]
    assert len(set(drawn)) == 3  # the resumed driver's new sampler did not replay an earlier trial's draw
    runs = client.search_runs([client.get_experiment_by_name("ctrlc").experiment_id])
    children = [r for r in runs if r.data.tags["slr.role"] == "trial"]
    assert len(children) == 3
    for run in children:
        assert (run.info.status, run.data.tags["slr.status"]) == ("FINISHED", "completed")
        steps = sorted(m.step for m in client.get_metric_history(run.info.run_id, "dev_wer"))
        assert steps == list(range(1, EPOCHS + 1)), run.data.tags["slr.trial_id"]
    parent = next(r for r in runs if r.data.tags["slr.role"] == "sweep")
    assert (parent.info.status, parent.data.tags["slr.status"]) == ("FINISHED", "finished")


def test_one_driver_per_sweep_a_stale_lock_is_taken_over_and_a_changed_experiment_refused(tiny_corpus, tmp_path):
    exp = _experiment(tmp_path, tiny_corpus, "solo")
    sweep, log = tmp_path / "sweeps" / "solo", tmp_path / "driver.log"
    first = _driver(exp, log, epoch_s=3.5)  # 63 s of reports: the second driver and status run meanwhile
    _wait(lambda: _reported(sweep) >= 1, first, log)
    second = subprocess.run([sys.executable, str(ROOT / "tests" / "tune" / "table_sweep.py"), str(exp), str(TABLE),
                             "--resume"], capture_output=True, text=True, timeout=120)
    assert second.returncode == 1, second.stdout + second.stderr
    assert f"being run by another driver (pid {first.pid}" in second.stderr
    assert first.poll() is None, "the first driver must still be running"
    status = _slr("sweep", "status", str(sweep))
    assert f"running: driver pid {first.pid}" in status.stdout
    assert first.poll() is None, "the first driver must still be running"

    os.killpg(first.pid, signal.SIGKILL)  # its lock file stays behind, naming a dead driver
    first.wait()
    assert json.loads((sweep / "driver.lock").read_text())["pid"] == first.pid
    assert "interrupted" in _slr("sweep", "status", str(sweep)).stdout

    changed = subprocess.run([sys.executable, str(ROOT / "tests" / "tune" / "table_sweep.py"), str(exp), str(TABLE),
                              "num_trials=5", "--resume"], capture_output=True, text=True, timeout=120)
    assert changed.returncode == 1 and "num_trials: 3 -> 5" in changed.stderr, changed.stderr
    assert yaml.safe_load((sweep / "experiment.yaml").read_text())["num_trials"] == 3  # not rewritten

    resumed = _driver(exp, log, "--resume", epoch_s=0.2)
    assert _end(resumed) == 0, log.read_text()[-3000:]
    trials = _study(sweep, "solo")
    assert len(trials) == 3 and all(t.state == optuna.trial.TrialState.COMPLETE for t in trials)
    assert all(sorted(t.intermediate_values) == list(range(1, EPOCHS + 1)) for t in trials)  # every epoch reported
    for path in sweep.glob("*_trial_*/result.json"):  # one driver at a time: no epoch trained twice at once
        # (Ray's result.json lags the study: a trial that ended just before the kill may miss its last lines)
        epochs = [json.loads(x)["epoch"] for x in path.read_text().splitlines()]
        assert len(epochs) == len(set(epochs)) and set(epochs) <= set(range(1, EPOCHS + 1))
    assert "finished" in _slr("sweep", "status", str(sweep)).stdout


def test_an_unreachable_tracking_server_is_refused_before_anything_is_written(tiny_corpus, tmp_path, services):
    uri = f"http://127.0.0.1:{services.free_port()}"  # nothing listens there
    exp = _experiment(tmp_path, tiny_corpus, "nomlflow", mlflow={"tracking_uri": uri})
    run = _slr("sweep", str(exp), timeout=120)
    assert run.returncode == 1 and "unreachable" in run.stderr and uri in run.stderr, run.stderr
    assert "Traceback" not in run.stderr
    assert not (tmp_path / "sweeps" / "nomlflow").exists()  # the name stays usable: no state, no study


def test_a_sweep_whose_every_trial_failed_exits_non_zero_and_keeps_its_artifacts_in_its_folder(tiny_corpus,
                                                                                             tmp_path):
    """Nothing to export is a failure scripts must see; and the embedded MLflow store's artifacts (each trial's
    config.yaml, the parent's files) live in the sweep folder, not in ./mlruns of wherever the sweep ran."""
    exp = _experiment(tmp_path, tiny_corpus, "allfail", num_trials=2, mlflow={})
    cwd = tmp_path / "elsewhere"
    cwd.mkdir()
    run = subprocess.run([sys.executable, str(ROOT / "tests" / "tune" / "table_sweep.py"), str(exp), str(TABLE)],
                         capture_output=True, text=True, timeout=300, cwd=cwd,
                         env={**os.environ, "SLR_TEST_NONFINITE_FROM_EPOCH": "1"})  # every trial's loss NaN
    assert run.returncode == 1, run.stdout + run.stderr
    assert "no trial of sweep 'allfail' finished with a dev WER (2 failed)" in run.stderr
    sweep = tmp_path / "sweeps" / "allfail"
    assert json.loads((sweep / "summary.json").read_text())["trials_by_status"]["failed"] == 2
    assert not (cwd / "mlruns").exists()
    client = MlflowClient(f"sqlite:///{sweep / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("allfail")
    assert experiment.artifact_location == (sweep / "mlartifacts").as_uri()
    assert len(list((sweep / "mlartifacts").rglob("config.yaml"))) == 2  # one per trial's run
    report = _slr("report", str(sweep), "--no-mlflow")
    assert report.returncode == 0, report.stderr
    page = (sweep / "report" / "index.html").read_text()
    assert "No trial finished with a dev WER" in page and "slr export" not in page and "None" not in page
    # the local Ray's session folder (logs, sockets) is private to this user, not in world-readable /tmp/ray
    private = Path(os.environ.get("TMPDIR", "/tmp")) / f"slr-{os.getuid()}"
    assert private.stat().st_mode & 0o777 == 0o700 and list((private / "ray").glob("session_*"))
