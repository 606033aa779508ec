"""The sweep's TensorBoard logger on a real Ray Tune run: none by default (no event files, Ray's JSON and CSV logs
kept), and with ``tensorboard: true`` event files with every result, none of them flushed to disk on the driver's
loop after each result (Ray's own logger fsyncs there)."""

import os
import struct
import threading
from pathlib import Path

import pytest

from tune.callbacks import NoTensorBoard, QuietTensorBoard, tensorboard_logger

REPORTS = 4


def trainable():  # noqa: ANN201 -- a Ray Tune function trainable, pickled by value (the workers cannot import tests)
    def reports(config):  # noqa: ANN001, ANN202
        from ray import tune
        for i in range(REPORTS):
            tune.report({"x": float(i)})
    return reports


def run(tmp_path: Path, *callbacks) -> Path:  # noqa: ANN002
    from ray import tune
    tuner = tune.Tuner(trainable(), tune_config=tune.TuneConfig(num_samples=1),
                       run_config=tune.RunConfig(name=tmp_path.name, storage_path=str(tmp_path), verbose=0,
                                                 callbacks=list(callbacks)))
    grid = tuner.fit()
    assert not grid.errors
    # (each run its own name: Ray stages a run's files on the driver by name and start second, and one run in the
    # same second under the same name would see the other's trial folder)
    (trial,) = [p for p in (tmp_path / tmp_path.name).iterdir() if p.is_dir() and p.name.startswith("reports")]
    return trial


def events(path: Path) -> list[tuple[str, float]]:
    """(tag, value) of every scalar in a TensorBoard event file (TFRecord framing: length, its CRC, data, CRC)."""
    from tensorboardX.proto import event_pb2
    data, i, out = path.read_bytes(), 0, []
    while i < len(data):
        (n,) = struct.unpack("<Q", data[i:i + 8])
        event = event_pb2.Event.FromString(data[i + 12:i + 12 + n])
        out += [(v.tag, v.simple_value) for v in event.summary.value]
        i += 12 + n + 4
    return out


class FsyncsOnTheLoop:
    """Counts fsyncs of event files by the driver's main thread (Tune's loop), and at each result how many there
    had been (this callback runs after the logger's)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch):
        from ray.tune import Callback
        self.count, self.at_results = 0, []
        real = os.fsync

        def fsync(fd: int) -> None:
            if threading.current_thread() is threading.main_thread() and "tfevents" in os.readlink(f"/proc/self/fd/{fd}"):
                self.count += 1
            real(fd)
        monkeypatch.setattr(os, "fsync", fsync)
        outer = self

        class AtResults(Callback):
            def on_trial_result(self, iteration, trials, trial, result, **info):  # noqa: ANN001
                outer.at_results.append(outer.count)
        self.callback = AtResults()


def test_tensorboard_logger_picks_by_the_experiment_key():
    assert isinstance(tensorboard_logger(False), NoTensorBoard)
    assert isinstance(tensorboard_logger(True), QuietTensorBoard)


def test_no_tensorboard_by_default_and_rays_json_and_csv_logs_kept(ray_local, tmp_path):
    trial = run(tmp_path, tensorboard_logger(False))
    assert not list(trial.glob("events.out.tfevents*"))
    assert len((trial / "result.json").read_text().splitlines()) == REPORTS
    assert len((trial / "progress.csv").read_text().splitlines()) == REPORTS + 1  # and its header


def test_tensorboard_on_writes_every_result_without_a_flush_per_result_on_the_loop(ray_local, tmp_path, monkeypatch):
    probe = FsyncsOnTheLoop(monkeypatch)
    trial = run(tmp_path, tensorboard_logger(True), probe.callback)
    assert probe.at_results == [0] * REPORTS  # Ray's own logger: 1, 2, 3, 4
    (path,) = trial.glob("events.out.tfevents*")
    assert [v for tag, v in events(path) if tag == "ray/tune/x"] == [float(i) for i in range(REPORTS)]


def test_the_probe_sees_rays_own_logger_flush_after_every_result(ray_local, tmp_path, monkeypatch):
    """The check above can fail: Ray's logger, in the same run, is caught flushing on the loop after each result."""
    from ray.tune.logger import TBXLoggerCallback
    probe = FsyncsOnTheLoop(monkeypatch)
    run(tmp_path, TBXLoggerCallback(), probe.callback)
    assert probe.at_results == list(range(1, REPORTS + 1))
