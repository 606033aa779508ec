"""The sweep tracker's background writer against a real `mlflow server`: writes arrive in order and once, the
final flush waits for them, and with the server gone they end in the pending file, replayable."""

from __future__ import annotations

import json

import pytest
from mlflow.tracking import MlflowClient

from tune.tracking import PENDING, SweepTracker, replay

pytestmark = [pytest.mark.slow, pytest.mark.integration]


def _epochs(uri: str, run_id: str) -> list[int]:
    return [m.step for m in sorted(MlflowClient(uri).get_metric_history(run_id, "dev_wer"), key=lambda m: m.step)]


def test_background_writes_arrive_in_order_once_and_the_final_flush_waits_for_them(tmp_path, mlflow_server):
    tracker = SweepTracker(mlflow_server, "bg", "bg", tmp_path, background=True)
    tracker.start({"x": 1})
    tracker.child("t1", {"train.learning_rate": 0.001}, "train: {}\n")
    for epoch in range(1, 31):
        tracker.metrics("t1", {"epoch": epoch, "dev_wer": 1.0 / epoch, "train_loss": 2.0})
    tracker.metrics("t1", {"epoch": 30, "dev_wer": 0.5})  # a restarted trial re-reports: logged once
    tracker.finish_trial("t1", "completed", rung=2)
    tracker.flush(final=True)

    assert not tracker.pending and not tracker._writer.is_alive() and not (tmp_path / PENDING).exists()
    run = MlflowClient(mlflow_server).get_run(tracker.children["t1"])
    assert _epochs(mlflow_server, run.info.run_id) == list(range(1, 31))
    assert run.info.status == "FINISHED" and run.data.tags["slr.status"] == "completed"
    assert run.data.params["train.learning_rate"] == "0.001"
    # the UI opens the sweep's experiment in its "Model training" view
    exp = MlflowClient(mlflow_server).get_experiment(tracker.experiment_id)
    assert exp.tags["mlflow.experimentKind"] == "custom_model_development"
    # picklable with its queue (Ray saves callbacks with the experiment state), and usable again after
    import pickle
    again = pickle.loads(pickle.dumps(tracker))
    assert again.children == tracker.children and again.background


def test_background_writes_the_server_never_took_are_saved_in_order_and_replay(tmp_path, services):
    root, port = tmp_path / "mlflow", services.free_port()
    root.mkdir()
    server = services.start_mlflow(root, port)
    uri = f"http://127.0.0.1:{port}"
    sweep_dir = tmp_path / "sweep"
    sweep_dir.mkdir()
    tracker = SweepTracker(uri, "gone", "gone", sweep_dir, retry_seconds=0.5, background=True)
    tracker.start({"x": 1})
    services.stop(server)
    tracker.child("t1", {"a": 1}, "a: 1\n")  # created by the replay, not now
    for epoch in (1, 2, 3):
        tracker.metrics("t1", {"epoch": epoch, "dev_wer": 0.9 - 0.1 * epoch})
    tracker.finish_trial("t1", "completed", rung=0)
    assert tracker.known("t1")  # queued, not yet a run
    tracker.flush(final=True)

    lines = [json.loads(x) for x in (sweep_dir / PENDING).read_text().splitlines()]
    assert [x["op"] for x in lines] == ["create_child", "log_batch", "log_batch", "log_batch", "log_batch",
                                        "set_terminated"]
    assert tracker.saved_pending == 6 and not tracker.pending
    server = services.start_mlflow(root, port)
    try:
        assert replay(sweep_dir / PENDING, uri) == 6
        client = MlflowClient(uri)
        (run,) = [r for r in client.search_runs([tracker.experiment_id]) if r.data.tags.get("slr.trial_id") == "t1"]
        assert _epochs(uri, run.info.run_id) == [1, 2, 3] and run.info.status == "FINISHED"
    finally:
        services.stop(server)


def test_system_metrics_are_logged_unless_switched_off(tmp_path, mlflow_server):
    client = MlflowClient(mlflow_server)
    report = {"epoch": 1, "dev_wer": 0.5, "system/trial_cpu_percentage": 97.0, "system/trial_memory_megabytes": 812.0}
    for name, on in (("sys-on", True), ("sys-off", False)):
        tracker = SweepTracker(mlflow_server, name, name, tmp_path / name, system_metrics=on)
        tracker.start({"x": 1})
        tracker.child("t1", {"train.learning_rate": 0.001}, "train: {}\n")
        tracker.metrics("t1", report)
        tracker.flush(final=True)
        logged = client.get_run(tracker.children["t1"]).data.metrics
        assert logged["dev_wer"] == 0.5
        assert (logged.get("system/trial_cpu_percentage"), logged.get("system/trial_memory_megabytes")) == \
            ((97.0, 812.0) if on else (None, None))
