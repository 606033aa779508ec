"""Sweeps on object storage: ``storage_path: s3://...`` against a real S3-protocol server on 127.0.0.1
(moto's server process, stopped by its pid), the AWS variables pointing at it as they would at MinIO."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request

import pyarrow.fs as pafs
import pytest
import yaml

from tune.storage import is_uri, join, uri_of

pytestmark = [pytest.mark.slow, pytest.mark.integration]


def test_join_keeps_uri_options_last():
    assert join("s3://b/sweeps", "q") == "s3://b/sweeps/q"
    assert join("s3://b/sweeps/?scheme=http&endpoint_override=h:1", "q", "summary.json") == \
        "s3://b/sweeps/q/summary.json?scheme=http&endpoint_override=h:1"
    assert is_uri("gs://x/y") and is_uri("file:///tmp/x") and not is_uri("sweeps")
    assert uri_of("file:///tmp/sweeps", "/tmp/sweeps/q/trial/checkpoint_000001") == \
        "file:///tmp/sweeps/q/trial/checkpoint_000001"
    assert uri_of("file:///tmp/sweeps", "/elsewhere/ck") == "/elsewhere/ck"


@pytest.fixture(scope="module")
def s3(tmp_path_factory, services):
    root = tmp_path_factory.mktemp("s3")
    port = services.free_port()
    proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                            stdout=open(root / "s3.log", "ab"), stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.time() + 60
    while True:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2)
            break
        except OSError:
            if proc.poll() is not None or time.time() > deadline:
                services.stop(proc)
                raise RuntimeError("S3 server did not start: " + (root / "s3.log").read_text()[-2000:])
            time.sleep(0.3)
    env = dict(AWS_ACCESS_KEY_ID="slr-test", AWS_SECRET_ACCESS_KEY="slr-test-secret", AWS_DEFAULT_REGION="us-east-1",
               AWS_ENDPOINT_URL=f"http://127.0.0.1:{port}")
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    fs = pafs.S3FileSystem(endpoint_override=f"127.0.0.1:{port}", scheme="http", allow_bucket_creation=True,
                           access_key=env["AWS_ACCESS_KEY_ID"], secret_key=env["AWS_SECRET_ACCESS_KEY"],
                           region="us-east-1")
    fs.create_dir("sweeps-bucket")
    yield fs, env
    for k, v in saved.items():
        os.environ.pop(k) if v is None else os.environ.__setitem__(k, v)
    services.stop(proc)


def _run(args, cwd, env, timeout=600):
    return subprocess.run([sys.executable, "-m", "slr.cli", *args], cwd=cwd, env={**os.environ, **env},
                          capture_output=True, text=True, timeout=timeout)


def test_sweep_on_s3_storage(s3, tiny_corpus, tmp_path):
    fs, env = s3
    exp = tmp_path / "s3sweep.yaml"
    exp.write_text(yaml.safe_dump(dict(
        name="s3sweep", corpus={"path": str(tiny_corpus)}, num_trials=2, max_concurrent=2,
        storage_path="s3://sweeps-bucket/team/sweeps", local_path=str(tmp_path / "driver"),
        config={"model": {"num_blocks": 1}, "train": {"epochs": 2, "early_stopping_patience": 0}},
        space={"train.learning_rate": {"type": "loguniform", "low": 1e-4, "high": 1e-2}},
        scheduler={"type": "none"})))
    r = _run(["sweep", str(exp)], tmp_path, env)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]

    # Ray's experiment state and every trial's checkpoint are on S3, written by the trial workers.
    remote = "sweeps-bucket/team/sweeps/s3sweep"
    names = {i.path[len(remote) + 1:] for i in fs.get_file_info(pafs.FileSelector(remote, recursive=True))}
    assert "tuner.pkl" in names
    assert sum(n.endswith("/last.pt") for n in names) >= 2, sorted(names)
    # ... and so are the sweep's own files, mirrored by the driver; SQLite stays on the driver's disk.
    for f in ("experiment.yaml", "summary.json", "curves.json", "trials.csv", "best_config.yaml"):
        assert f in names, f
    assert not any(n.endswith(".db") for n in names)
    local = tmp_path / "driver" / "s3sweep"
    assert (local / "optuna.db").exists() and (local / "mlflow.db").exists()
    summary = json.loads((local / "summary.json").read_text())
    assert summary["num_trials"] == 2 and summary["best_checkpoint"].startswith("s3://sweeps-bucket/team/sweeps/")

    # Export from anywhere: only the URI is needed (and the credentials).
    elsewhere = tmp_path / "laptop"
    elsewhere.mkdir()
    r = _run(["export", "s3://sweeps-bucket/team/sweeps/s3sweep", "--out", "best.yaml"], elsewhere, env)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    best = yaml.safe_load((elsewhere / "best.yaml").read_text())
    assert best["provenance"]["dev_wer"] == summary["best_dev_wer"]
    assert best["provenance"]["sweep_dir"] == "s3://sweeps-bucket/team/sweeps/s3sweep"
    r = _run(["report", "s3sweep", "--storage", "s3://sweeps-bucket/team/sweeps", "--no-mlflow"], elsewhere, env)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    assert "s3sweep" in (elsewhere / "s3sweep-report" / "index.html").read_text()  # here, not in the download cache

    # The state on S3 is found: a second start without --resume is refused, --resume restores from S3.
    r = _run(["sweep", str(exp)], tmp_path, env)
    assert r.returncode != 0 and "already holds sweep" in r.stderr, r.stderr[-2000:]
    r = _run(["sweep", str(exp), "--resume"], tmp_path, env)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert json.loads((local / "summary.json").read_text())["num_trials"] == 2


def test_unwritable_bucket_is_refused_before_any_trial(s3, tiny_corpus, tmp_path):
    _, env = s3
    exp = tmp_path / "nobucket.yaml"
    exp.write_text(yaml.safe_dump(dict(
        name="nobucket", corpus={"path": str(tiny_corpus)}, num_trials=1, storage_path="s3://no-such-bucket/sweeps",
        local_path=str(tmp_path / "driver"), space={"train.learning_rate": {"type": "loguniform", "low": 1e-4,
                                                                            "high": 1e-2}})))
    r = _run(["sweep", str(exp)], tmp_path, env, timeout=120)
    assert r.returncode != 0
    assert "storage_path s3://no-such-bucket/sweeps is not writable" in r.stderr, r.stderr[-2000:]
    assert "Traceback" not in r.stderr
    assert not (tmp_path / "driver" / "nobucket" / "optuna.db").exists()


def test_export_of_a_missing_remote_sweep_names_the_uri(s3, tmp_path, services):
    _, env = s3
    r = _run(["export", "s3://sweeps-bucket/team/sweeps/never-ran", "--out", "b.yaml"], tmp_path, env, timeout=120)
    assert r.returncode == 1 and "no sweep at s3://sweeps-bucket/team/sweeps/never-ran" in r.stderr, r.stderr
    r = _run(["export", "s3://no-such-bucket/sweeps/x", "--out", "b.yaml"], tmp_path, env, timeout=120)
    assert r.returncode == 1 and "s3://no-such-bucket/sweeps/x" in r.stderr, r.stderr
    down = {**env, "AWS_ENDPOINT_URL": f"http://127.0.0.1:{services.free_port()}"}  # nothing listens there
    r = _run(["export", "s3://sweeps-bucket/team/sweeps/x", "--out", "b.yaml"], tmp_path, down, timeout=300)
    assert r.returncode == 1 and "cannot read the sweep at s3://sweeps-bucket/team/sweeps/x" in r.stderr, r.stderr
    assert "Traceback" not in r.stderr and not (tmp_path / "b.yaml").exists()

