"""A two-node Ray cluster on loopback (head + worker, each declaring one GPU) runs a sweep of gpu=0.25
trials: they land on both nodes, never more than 4 at once per GPU, and fall back to CPU here."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tune.experiment import from_dict

pytestmark = [pytest.mark.slow, pytest.mark.integration]
RAY = str(Path(sys.executable).parent / "ray")


def _start_node(args: list[str], log: Path) -> subprocess.Popen:
    # --block keeps `ray start` in the foreground: its process group holds the node's daemons,
    # so the test stops exactly this node by its process id.
    return subprocess.Popen([RAY, "start", "--block", "--disable-usage-stats", *args], stdout=open(log, "ab"),
                            stderr=subprocess.STDOUT, start_new_session=True, env={**os.environ})


@pytest.fixture
def two_nodes_procs(tmp_path, services):
    """(address, [head, worker] processes, services) of a fresh two-node cluster on loopback."""
    import tune  # noqa: F401 -- RAY_AUTH_MODE=token before ray is imported
    import ray

    from tune.sweep import ensure_ray_token
    ensure_ray_token()
    port = services.free_port()
    common = ["--node-ip-address", "127.0.0.1", "--num-cpus", "4", "--num-gpus", "1"]
    procs = [_start_node(["--head", "--port", str(port), "--include-dashboard=false", *common], tmp_path / "head.log")]
    address = f"127.0.0.1:{port}"
    try:
        deadline = time.time() + 120
        while time.time() < deadline and not ray.is_initialized():
            try:
                ray.init(address=address, log_to_driver=False, configure_logging=False)
            except Exception:  # noqa: BLE001 -- head still starting
                time.sleep(1)
        procs.append(_start_node(["--address", address, *common], tmp_path / "worker.log"))
        while time.time() < deadline and sum(n["Alive"] for n in ray.nodes()) < 2:
            time.sleep(1)
        assert sum(n["Alive"] for n in ray.nodes()) == 2, (tmp_path / "worker.log").read_text()[-2000:]
        yield address, procs, services
    finally:
        ray.shutdown()
        for p in reversed(procs):
            services.stop(p)


@pytest.fixture
def two_nodes(two_nodes_procs):
    return two_nodes_procs[0]


def test_gpu_slices_pack_four_per_gpu_across_both_nodes(tiny_corpus, tmp_path, two_nodes):
    from tune.sweep import run_sweep
    spec = from_dict(dict(
        name="packing", corpus={"path": str(tiny_corpus)}, num_trials=8, max_concurrent=8,
        storage_path=str(tmp_path / "sweeps"), resources={"cpu": 1, "gpu": 0.25},
        config={"model": {"num_blocks": 1}, "train": {"epochs": 2, "early_stopping_patience": 0}},
        space={"train.learning_rate": {"type": "loguniform", "low": 1e-4, "high": 1e-2}},
        searcher={"algorithm": "random", "seed": 0}, scheduler={"type": "none"}, mlflow={"enabled": False}))
    summary = run_sweep(spec, address=two_nodes, verbose=0)
    assert summary["trials_by_status"]["completed"] == 8

    spans = []
    for trial in summary["trials"]:  # each trial's result.json: one JSON line per report
        reports = [json.loads(line) for line in (Path(trial["path"]) / "result.json").read_text().splitlines()]
        spans.append((reports[-1]["node_id"], reports[-1]["attempt_start"], reports[-1]["report_time"]))
    nodes = {node for node, _, _ in spans}
    assert len(nodes) == 2, "trials should land on both nodes"
    for node in nodes:
        events = sorted([(s, 1) for n, s, _ in spans if n == node] + [(e, -1) for n, _, e in spans if n == node])
        running = peak = 0
        for _, step in events:
            running += step
            peak = max(peak, running)
        assert 2 <= peak <= 4, f"node {node[:8]}: {peak} trials at once on one GPU declared (want 2..4)"


def test_a_worker_node_leaving_reschedules_its_trials_from_checkpoints(tiny_corpus, tmp_path, two_nodes_procs):
    """Stop the second node mid-sweep: its trials restart on the head from their last checkpoints."""
    import threading

    import ray

    from tune.sweep import run_sweep
    address, procs, services = two_nodes_procs
    head = ray.get_runtime_context().get_node_id()
    spec = from_dict(dict(
        name="nodeloss", corpus={"path": str(tiny_corpus)}, num_trials=4, max_concurrent=4, max_failures=3,
        storage_path=str(tmp_path / "sweeps"), resources={"cpu": 1, "gpu": 0.5},
        config={"model": {"num_blocks": 1}, "train": {"epochs": 10, "early_stopping_patience": 0}},
        space={"train.learning_rate": {"type": "loguniform", "low": 1e-3, "high": 3e-3}},
        searcher={"algorithm": "random", "seed": 0}, scheduler={"type": "none"}, mlflow={"enabled": False}))
    out: dict = {}
    driver = threading.Thread(target=lambda: out.update(summary=run_sweep(spec, address=address, verbose=0)))
    driver.start()

    def reports() -> dict[str, list[dict]]:
        found = {}
        for path in spec.sweep_dir.glob("train_trial_*/result.json"):
            found[path.parent.name] = [json.loads(x) for x in path.read_text().splitlines() if x.strip()]
        return found

    deadline = time.time() + 300
    while time.time() < deadline:
        on_worker = {k: r for k, r in reports().items() if r and r[-1]["node_id"] != head}
        if on_worker and all(len(r) >= 2 for r in on_worker.values()) and len(reports()) == 4:
            break
        time.sleep(0.3)
    else:
        raise AssertionError("no trial reached epoch 2 on the worker node in time")
    services.stop(procs[1])  # the worker node leaves: its raylet and trial processes are gone
    driver.join(timeout=600)
    assert not driver.is_alive() and out["summary"]["trials_by_status"]["completed"] == 4

    for name, first in on_worker.items():
        rows = reports()[name]
        attempts = sorted({r["attempt_start"] for r in rows})
        assert len(attempts) >= 2, f"{name} was not restarted"
        again = [r for r in rows if r["attempt_start"] == attempts[-1]]
        assert again[0]["node_id"] == head  # rescheduled on the remaining node ...
        assert again[0]["epoch"] > 1  # ... from its checkpoint, not from scratch
        assert rows[-1]["epoch"] == 10


def test_an_address_where_no_cluster_answers_fails_fast_naming_it(tiny_corpus, tmp_path, services):
    """`--address auto` with a stale address (here through RAY_ADDRESS, as a stale `ray start` file gives it):
    ray.init would retry for minutes printing GCS warnings; the sweep stops at once and says where it looked."""
    import yaml
    port = services.free_port()  # nothing listens there
    exp = tmp_path / "gone.yaml"
    exp.write_text(yaml.safe_dump(dict(
        name="gone", corpus={"path": str(tiny_corpus)}, num_trials=1, storage_path=str(tmp_path / "sweeps"),
        space={"train.learning_rate": {"type": "loguniform", "low": 1e-4, "high": 1e-2}},
        mlflow={"enabled": False})))
    env = {**os.environ, "RAY_ADDRESS": f"127.0.0.1:{port}"}
    t0 = time.time()
    done = subprocess.run([sys.executable, "-m", "slr.cli", "sweep", str(exp), "--address", "auto"], env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode != 0 and time.time() - t0 < 60, done.stderr[-2000:]
    assert f":{port} (from RAY_ADDRESS)" in done.stderr and "no Ray cluster answers" in done.stderr, done.stderr
    assert "Traceback" not in done.stderr
    # and the sweep name stays usable: nothing Ray-side was written
    assert not (tmp_path / "sweeps" / "gone" / "tuner.pkl").exists()
