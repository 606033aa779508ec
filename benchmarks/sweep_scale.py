"""Sweep at scale, simulated: 1,000 trials, 128 at once, on a multi-node Ray cluster on one machine.

Two measurements (docs/benchmarks.md, "Sweep at scale"):

- ``searcher``: the real ``OptunaSearcher`` (TPE, the bench space) alone, asked and told 1,000 times against
  its SQLite study, with ASHA-like reports between: latency of ask (``suggest``), report and tell against study
  size. TPE's cost grows with the number of trials; the target is an answer in under 100 ms at 1,000 trials.
- ``sweep``: ``tune.sweep.run_sweep`` (the real searcher, ASHA, checkpoint retention, MLflow callback) on a
  ``ray.cluster_utils.Cluster`` of N nodes with G GPU slices each, MLflow on a real ``mlflow server``, trials that
  train nothing and report one epoch every few seconds with a checkpoint. Measured on the driver: CPU seconds
  per result, how long each result waited between the worker's report and the driver's callbacks (split into
  the part in the worker, its checkpoint written, and the part from the worker's queue to the driver), where the
  driver's time went (Optuna, MLflow writes, retention; and inside the longest steps of Tune's loop), MLflow writes
  per second and queue depth, per minute the machine's CPU pressure and the driver's CPU, and wall time against
  the ideal (trial-epochs x epoch time / slots). Target: no result waits more than 1 s.

    python -m benchmarks.sweep_scale searcher [--trials 1000]
    python -m benchmarks.sweep_scale sweep [--nodes 32 --slots 4 --trials 1000 --epoch-s 5]
"""

from __future__ import annotations

import argparse
import bisect
import contextlib
import json
import math
import os
import resource
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections import Counter, defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from benchmarks._common import ROOT, save, set_command, write_section
from tune.trials import with_rank_metric

EPOCHS = 20


def quality(params: dict[str, Any]) -> float:
    """A deterministic final dev WER for a configuration: best near lr 1.5e-3, dropout 0.2, 6 blocks (the shape
    of the measured tables: a bowl in log lr, mild in the rest), so that TPE has something to find and ASHA
    something to stop."""
    lr = float(params.get("train.learning_rate", 1e-3))
    bowl = (math.log10(lr) - math.log10(1.5e-3)) ** 2
    drop = (float(params.get("model.dropout", 0.2)) - 0.2) ** 2
    blocks = (int(params.get("model.num_blocks", 6)) - 6) ** 2 / 16
    return min(1.0, 0.08 + 0.6 * bowl + 0.8 * drop + 0.05 * blocks)


def sim_trial(params: dict[str, Any], base: dict[str, Any], max_epochs: int,
              gpu_fraction: float) -> None:
    """tune.trainable.train_trial's signature: reports the curve of ``quality(params)``, one epoch every
    SLR_SIM_EPOCH_S seconds, each with a checkpoint and its wall-clock report time."""
    import tempfile as tf

    from ray import tune

    from tune.trials import with_rank_metric
    _stamp_when_queued()
    final, pace = quality(params), float(os.environ.get("SLR_SIM_EPOCH_S", "5"))
    start, best = 0, 1.0
    restored = tune.get_checkpoint()
    if restored:
        with restored.as_directory() as d:
            start, best = json.loads((Path(d) / "state.json").read_text())
    for epoch in range(start + 1, max_epochs + 1):
        time.sleep(pace)
        wer = final + (1.0 - final) * math.exp(-epoch / 4.0)
        best = min(best, wer)
        with tf.TemporaryDirectory() as d:
            (Path(d) / "state.json").write_text(json.dumps([epoch, best]))
            tune.report(with_rank_metric({"epoch": epoch, "dev_wer": wer, "dev_loss": 1.0 + 10 * wer,
                                          "best_dev_wer": best, "finished": int(epoch >= max_epochs),
                                          "report_time": time.time()}),
                        checkpoint=tune.Checkpoint.from_directory(d))


# -- searcher ----------------------------------------------------------------------------------------------
def _spec(storage: Path, trials: int, concurrent: int, epochs: int, corpus: str, tracking_uri: str = "",
          more: list[str] | None = None):  # noqa: ANN202
    from tune.experiment import load_experiment
    overrides = [*(more or []), f"num_trials={trials}", f"max_concurrent={concurrent}", f"storage_path={storage}",
                 f"config.train.epochs={epochs}", f"corpus.path={corpus}", "corpus.synth=tiny", "name=scale",
                 "rerank.top_k=0"]  # the search at scale (bench.yaml re-ranks after it)
    overrides += [f"mlflow.tracking_uri={tracking_uri}"] if tracking_uri else ["mlflow.enabled=false"]
    return load_experiment(ROOT / "experiments" / "bench.yaml", overrides)


def searcher_bench(trials: int, running: int = 1) -> dict[str, Any]:
    """Ask / report / tell the real OptunaSearcher ``trials`` times, ASHA-like (most trials stop at a rung), with
    ``running`` trials in flight as in a sweep of that many at once, and the heap frozen as a sweep's driver
    freezes it. Running trials weigh on an ask: Optuna reads every unfinished trial from storage again on each
    read of the study."""
    from tune.search import OptunaSearcher
    from tune.sweep import frozen_heap
    work = Path(tempfile.mkdtemp(prefix="slr-scale-"))
    spec = _spec(work, trials, running, EPOCHS, str(work / "corpus"))
    spec.sweep_dir.mkdir(parents=True)
    with frozen_heap():
        ask, report, tell = _drive(OptunaSearcher(spec), trials, running)
    return dict(trials=trials, running=running, space=sorted(spec.space),
                sampler="TPE (bench.yaml: n_startup_trials 10)", storage="sqlite", ask=_by_size(ask, trials),
                report=_by_size(report, trials), tell=_by_size(tell, trials))


def _drive(searcher: Any, trials: int, running: int) -> tuple[list, list, list]:  # noqa: ANN401
    """(trial number, seconds) of each ask, report and tell: each round every running trial reports one epoch,
    and a freed slot is asked for at once."""
    ask, report, tell = [], [], []
    active: dict[str, list] = {}  # trial id -> [number, final WER, last epoch, epoch reached]
    asked = 0
    while asked < trials or active:
        while asked < trials and len(active) < running:
            tid = f"t{asked:05d}"
            t0 = time.perf_counter()
            params = searcher.suggest(tid)
            ask.append((asked, time.perf_counter() - t0))
            last = 4 if asked % 3 else (12 if asked % 9 else EPOCHS)  # ASHA rf 3 at rungs 4 and 12
            active[tid] = [asked, quality(params), last, 0]
            asked += 1
            if asked % 100 == 0:
                print(f"  {asked} trials: ask {1e3 * ask[-1][1]:.1f} ms", flush=True)
        for tid, a in list(active.items()):
            number, final, last = a[0], a[1], a[2]
            a[3] += 1
            wer = final + (1.0 - final) * math.exp(-a[3] / 4.0)
            result = with_rank_metric({"epoch": a[3], "dev_wer": wer, "dev_loss": 1 + 10 * wer,
                                       "best_dev_wer": wer, "finished": int(a[3] >= EPOCHS)})
            t0 = time.perf_counter()
            searcher.on_trial_result(tid, result)
            report.append((number, time.perf_counter() - t0))
            if a[3] >= last:
                t0 = time.perf_counter()
                searcher.on_trial_complete(tid, result)
                tell.append((number, time.perf_counter() - t0))
                del active[tid]
    return ask, report, tell


def _by_size(samples: list[tuple[int, float]], trials: int) -> list[dict[str, float]]:
    """Median and max latency (ms) over windows of study size."""
    edges = [e for e in (0, 10, 100, 250, 500, 750) if e < trials] + [trials]
    out = []
    for lo, hi in zip(edges, edges[1:]):
        xs = [s for i, s in samples if lo <= i < hi]
        if xs:
            out.append(dict(study_size=f"{lo}-{hi}", median_ms=1e3 * statistics.median(xs), max_ms=1e3 * max(xs)))
    return out


# -- sweep on a simulated cluster --------------------------------------------------------------------------
class _Timed:
    """Wraps methods of the sweep's own classes to add up where the driver's time goes (benchmark only)."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)
        self.calls: dict[str, int] = defaultdict(int)
        self.slowest: dict[str, float] = defaultdict(float)

        self.originals: list[tuple[type, str, Any]] = []

    def wrap(self, cls: type, name: str, label: str) -> None:
        inner = cls.__dict__[name]
        self.originals.append((cls, name, inner))

        def timed(*a, **kw):  # noqa: ANN002, ANN003, ANN202
            t0 = time.perf_counter()
            try:
                return inner(*a, **kw)
            finally:
                dt = time.perf_counter() - t0
                self.seconds[label] += dt
                self.calls[label] += 1
                self.slowest[label] = max(self.slowest[label], dt)
        setattr(cls, name, timed)

    def restore(self) -> None:
        for cls, name, inner in reversed(self.originals):
            setattr(cls, name, inner)


class _StallSampler:
    """What Tune's loop was doing in its long steps beyond our timed parts (benchmark only): while a step has run
    over ``after`` seconds, the driver's main thread's stack is sampled every ``every`` seconds, and each function
    on it counted once per sample (inclusive) and the innermost one apart (where the time was spent itself)."""

    def __init__(self, lag: Any, after: float = 0.5, every: float = 0.02) -> None:  # noqa: ANN401 -- the Lag callback
        self.inclusive: Counter[str] = Counter()
        self.innermost: Counter[str] = Counter()
        self.samples, self.every = 0, every
        self._stop = threading.Event()
        self._main = threading.main_thread().ident
        self._thread = threading.Thread(target=self._run, args=(lag, after, every), daemon=True)
        self._thread.start()

    def _run(self, lag: Any, after: float, every: float) -> None:  # noqa: ANN401
        while not self._stop.wait(every):
            if lag.in_step and time.perf_counter() - lag.step_t0 > after:
                frame = sys._current_frames().get(self._main)
                if frame is None:
                    continue
                self.innermost[_where(frame)] += 1
                seen = set()
                while frame is not None:
                    seen.add(_where(frame))
                    frame = frame.f_back
                self.inclusive.update(seen)
                self.samples += 1

    def stop(self) -> dict[str, Any]:
        self._stop.set()
        self._thread.join()
        return dict(samples=self.samples, every_s=self.every, inclusive=dict(self.inclusive.most_common(40)),
                    innermost=dict(self.innermost.most_common(15)))


def _below_step(inclusive: dict[str, int], samples: int) -> list[tuple[str, int]]:
    """The sampled functions that are not on every sample's stack (the benchmark's own frames and Tune's loop
    down to ``step`` are), most often first."""
    return sorted(((k, v) for k, v in inclusive.items() if v < samples), key=lambda kv: -kv[1])


def _where(frame: Any) -> str:  # noqa: ANN401 -- a frame
    path = frame.f_code.co_filename
    short = "/".join(Path(path).parts[-2:]) if "site-packages" in path or str(ROOT) in path else Path(path).name
    return f"{short}:{frame.f_code.co_name}"


@contextlib.contextmanager
def _mlflow_server(root: Path) -> Iterator[str]:
    """A real `mlflow server` on 127.0.0.1 (sqlite store), stopped by its process group at the end."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    root.mkdir(parents=True, exist_ok=True)
    proc = subprocess.Popen([sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port),
                             "--backend-store-uri", f"sqlite:///{root / 'mlflow.db'}", "--artifacts-destination",
                             str(root / "art"), "--workers", "1"], stdout=open(root / "server.log", "ab"),
                            stderr=subprocess.STDOUT, start_new_session=True)
    uri = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 120
        while True:
            try:
                urllib.request.urlopen(f"{uri}/health", timeout=2)
                break
            except OSError:
                if proc.poll() is not None or time.time() > deadline:
                    raise RuntimeError("mlflow server did not start: " + (root / "server.log").read_text()[-2000:])
                time.sleep(0.5)
        yield uri
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)


def _stamp_when_queued() -> None:
    """Instrumentation in a trial's worker (benchmark only): each result stamped ``queued_time`` when it leaves
    the trial, its checkpoint written to storage and the result put where the driver fetches it, so that a result's
    wait splits into the worker's part and the driver's. This hooks Ray's internal report path (no public API
    says when a result is queued); if Ray moves it, results carry no stamp and the split is left out."""
    try:
        from ray.train._internal.session import _TrainSession
    except ImportError:
        return
    original = _TrainSession._report_training_result
    if getattr(original, "stamped", False):
        return

    def stamped(self, result):  # noqa: ANN001, ANN202
        result.metrics["queued_time"] = time.time()
        return original(self, result)
    stamped.stamped = True
    _TrainSession._report_training_result = stamped


def _lag_callback(trackers: list, timed: _Timed, background: bool):  # noqa: ANN202 -- a ray.tune Callback
    from ray.tune import Callback

    class Lag(Callback):
        """How long each result waited on the driver, and the tracker's queue depth, sampled every step."""

        def __init__(self) -> None:
            self.lags: list[float] = []
            self.split: list[tuple[float, float]] = []  # each wait: (in the worker, from its queue to the driver)
            self.when: list[float] = []  # seconds into the sweep at which each of ``lags`` was taken
            self.results, self.queue, self.t0 = 0, [], time.time()
            self.steps: list[float] = []  # seconds of each step of Tune's event loop on the driver
            self.step_t0 = time.perf_counter()  # when the step under way began
            self.in_step = False  # between on_step_begin and on_step_end (for _StallSampler)
            self.parts0: tuple[dict, dict] = ({}, {})  # the timed parts' seconds and calls when it began
            self.long: list[dict[str, Any]] = []  # steps over 0.5 s: when, how long, our timed parts in them
            self.marks: dict[int, tuple] = {}  # minute -> _machine_marks() as it began
            self.step_ends: list[float] = []  # seconds into the sweep at which each step of the loop ended
            self.long_waits: list[dict[str, float]] = []  # each wait over 1 s: what the driver did meanwhile

        def on_trial_result(self, iteration, trials, trial, result, **info):  # noqa: ANN001
            if "report_time" in result:
                now = time.time()
                self.lags.append(now - result["report_time"])
                self.when.append(now - self.t0)
                if "queued_time" in result:  # (in the worker, from the worker's queue to here)
                    self.split.append((result["queued_time"] - result["report_time"], now - result["queued_time"]))
                if self.lags[-1] > 1.0:  # while it waited, how many results and steps the driver took before it
                    since = result.get("queued_time", result["report_time"]) - self.t0
                    self.long_waits.append(dict(
                        at_s=self.when[-1], wait_s=self.lags[-1],
                        results_before=len(self.when) - 1 - bisect.bisect_left(self.when, since),
                        steps_meanwhile=len(self.step_ends) - bisect.bisect_left(self.step_ends, since)))
            self.results += 1

        def on_step_begin(self, iteration, trials, **info):  # noqa: ANN001
            self.step_t0 = time.perf_counter()
            self.in_step = True
            self.parts0 = (dict(timed.seconds), dict(timed.calls))

        def on_step_end(self, iteration, trials, **info):  # noqa: ANN001
            # one step of Tune's loop: the driver takes a result (or another event) and runs every callback on it
            self.in_step = False
            self.steps.append(time.perf_counter() - self.step_t0)
            self.step_ends.append(time.time() - self.t0)
            minute = int((time.time() - self.t0) // 60)
            if minute not in self.marks:  # once a minute: not a file read on every step of the loop measured
                self.marks[minute] = _machine_marks()
            if self.steps[-1] > 0.5:
                self._long_step(self.steps[-1])
            depth = max((len(t.pending) for t in trackers), default=0)
            self.queue.append((round(time.time() - self.t0, 1), depth))

        def _long_step(self, seconds: float) -> None:
            """What our timed parts took inside one long step (the MLflow writes too when they are synchronous;
            in the background they run on their own thread, outside the step)."""
            seconds0, calls0 = self.parts0
            parts = {k: dict(seconds=v - seconds0.get(k, 0.0), calls=timed.calls[k] - calls0.get(k, 0))
                     for k, v in timed.seconds.items() if not (background and k == "mlflow write")}
            self.long.append(dict(at_s=time.time() - self.t0, step_s=seconds,
                                  parts={k: v for k, v in parts.items() if v["calls"]}))
    return Lag()


def sweep_bench(nodes: int, slots: int, trials: int, epoch_s: float, epochs: int = EPOCHS,
                background: bool = False) -> dict[str, Any]:
    import tune  # noqa: F401 -- token authentication before Ray starts
    from slr.corpus.synthetic import generate

    work = Path(tempfile.mkdtemp(prefix="slr-scale-"))
    corpus = generate("tiny", work / "corpus", seed=0)
    os.environ["SLR_SIM_EPOCH_S"] = str(epoch_s)
    # the nodes started below pass this to their workers, which import sim_trial from this file by name
    os.environ["PYTHONPATH"] = os.pathsep.join([str(ROOT / "benchmarks"), str(ROOT), os.environ.get("PYTHONPATH", "")])
    with _mlflow_server(work / "mlflow") as uri:
        return _sweep_on_cluster(work, corpus, uri, nodes, slots, trials, epoch_s, epochs, background)


def _sweep_on_cluster(work: Path, corpus: Path, uri: str, nodes: int, slots: int, trials: int, epoch_s: float,
                      epochs: int, background: bool) -> dict[str, Any]:
    import ray
    from ray.cluster_utils import Cluster

    from tune import callbacks, retention, search, tracking
    from tune.sweep import ensure_ray_token, run_sweep
    ensure_ray_token()
    # no pool of idle workers per node on top of the trials' own (one per CPU, 4 x nodes processes that would
    # compete for this machine's cores while they start)
    os.environ.setdefault("RAY_enable_worker_prestart", "0")
    os.environ.setdefault("RAY_prestart_worker_first_driver", "0")
    cluster = Cluster()
    t_nodes = time.time()
    for i in range(nodes):  # each node: one (fake) GPU in `slots` slices, a CPU per slice
        cluster.add_node(num_cpus=slots, num_gpus=1, **({"include_dashboard": False} if i == 0 else {}))
    cluster.wait_for_nodes()
    t_nodes = time.time() - t_nodes
    timed = _Timed()
    for cls, name, label in [(search.OptunaSearcher, "suggest", "optuna ask"),
                             (search.OptunaSearcher, "on_trial_result", "optuna report"),
                             (search.OptunaSearcher, "on_trial_complete", "optuna tell"),
                             (tracking.SweepTracker, "_execute", "mlflow write"),
                             (retention.CheckpointRetention, "on_step_end", "checkpoint retention"),
                             (callbacks.MlflowCallback, "on_trial_result", "mlflow callback (result)")]:
        timed.wrap(cls, name, label)
    trackers: list = []  # the sweep's trackers, for their queue depth
    timed.wrap(tracking.SweepTracker, "_do", "mlflow enqueue or write")
    original_do = tracking.SweepTracker._do

    def do(self, *a, **kw):  # noqa: ANN001, ANN002, ANN003, ANN202
        if self not in trackers:
            trackers.append(self)
        return original_do(self, *a, **kw)
    tracking.SweepTracker._do = do
    spec = _spec(work / "sweeps", trials, nodes * slots, epochs, str(corpus), uri,
                 [f"resources.gpu={1.0 / slots}", "resources.cpu=1", f"mlflow.background={str(background).lower()}"])
    lag = _lag_callback(trackers, timed, background)
    stalls = _StallSampler(lag)
    try:
        cpu0, t0 = resource.getrusage(resource.RUSAGE_SELF), time.time()
        summary = run_sweep(spec, address=cluster.address, verbose=0, trial_fn=sim_trial, extra_callbacks=(lag,))
        wall = time.time() - t0
        cpu1, end_marks = resource.getrusage(resource.RUSAGE_SELF), _machine_marks()
    finally:
        stall_stacks = stalls.stop()
        timed.restore()
        ray.shutdown()
        cluster.shutdown()
    driver_cpu = (cpu1.ru_utime + cpu1.ru_stime) - (cpu0.ru_utime + cpu0.ru_stime)
    trial_epochs = sum(t.get("epochs") or 0 for t in summary["trials"])
    ideal = trial_epochs * epoch_s / (nodes * slots)
    lags = sorted(lag.lags)
    writes = timed.calls["mlflow write"]
    return dict(
        mlflow_background=background, nodes=nodes, slots_per_node=slots, concurrent=nodes * slots, trials=trials, epoch_s=epoch_s,
        node_start_s=t_nodes, results=lag.results, trial_epochs=trial_epochs, wall_s=wall, ideal_s=ideal,
        wall_over_ideal=wall / ideal if ideal else None, driver_cpu_s=driver_cpu,
        driver_cpu_ms_per_result=1e3 * driver_cpu / max(1, lag.results),
        result_wait_s=_spread(lags),
        results_waiting_over_1s=sum(x > 1.0 for x in lags),
        wait_by_minute=_by_minute(lag.when, lag.lags, {**lag.marks, max(lag.marks, default=-1) + 1: end_marks}),
        wait_split=_split(lag.split),
        driver_steps=dict(count=len(lag.steps), longest_s=max(lag.steps, default=0.0),
                          over_1s=sum(x > 1.0 for x in lag.steps)),
        long_steps=sorted(lag.long, key=lambda x: -x["step_s"])[:12], long_step_stacks=stall_stacks,
        long_waits=lag.long_waits,
        mlflow_writes=writes, mlflow_writes_per_s=writes / wall, mlflow_queue_max=max(d for _, d in lag.queue),
        driver_time={k: dict(seconds=v, calls=timed.calls[k], slowest_ms=1e3 * timed.slowest[k])
                     for k, v in timed.seconds.items()},
        by_status=summary["trials_by_status"], best_dev_wer=summary["best_dev_wer"])


def _split(split: list[tuple[float, float]]) -> dict[str, dict[str, float]] | None:
    """A result's wait in two: in the worker (its checkpoint written to storage) and from the worker's queue to
    the driver's callbacks (the driver fetching, deserializing and handling the results before it)."""
    if not split:
        return None
    out = {}
    for part, xs in (("worker", sorted(w for w, _ in split)), ("driver", sorted(d for _, d in split))):
        out[part] = dict(_spread(xs), over_1s=sum(x > 1.0 for x in xs))
    return out


def _spread(xs: list[float]) -> dict[str, float]:
    """Median, p99 and max of sorted seconds."""
    return dict(median=statistics.median(xs), p99=xs[int(0.99 * (len(xs) - 1))], max=xs[-1])


def _machine_marks() -> tuple[float, float | None, float]:
    """(now; seconds that some process on this machine has waited for a core, from Linux's pressure stall information,
    None where the kernel has none; CPU seconds the driver process has used, all its threads)."""
    try:
        some = Path("/proc/pressure/cpu").read_text().splitlines()[0]
        stalled = int(some.rsplit("total=", 1)[1]) / 1e6
    except (OSError, IndexError, ValueError):
        stalled = None
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return time.time(), stalled, usage.ru_utime + usage.ru_stime


def _by_minute(when: list[float], lags: list[float],
               marks: dict[int, tuple[float, float | None, float]] | None = None) -> list[dict[str, float]]:
    """Per minute of the sweep: results, the longest wait, and how many waited over 1 s (where in the sweep the
    driver fell behind: the trials' start, ASHA's rungs, or all along); with ``marks`` (minute -> _machine_marks()
    as it began), the share of that minute in which some process waited for a core, and the driver's CPU use."""
    out: dict[int, dict[str, float]] = {}
    for t, x in zip(when, lags):
        m = out.setdefault(int(t // 60), dict(minute=int(t // 60), results=0, max_wait_s=0.0, over_1s=0))
        m["results"] += 1
        m["max_wait_s"] = max(m["max_wait_s"], x)
        m["over_1s"] += x > 1.0
    for k, m in out.items():
        a, b = (marks or {}).get(k), (marks or {}).get(k + 1)
        if a and b and b[0] > a[0]:
            m["driver_cpu_s"] = b[2] - a[2]
            if a[1] is not None and b[1] is not None:
                m["cpu_pressure"] = (b[1] - a[1]) / (b[0] - a[0])
    return [out[k] for k in sorted(out)]


# -- report ------------------------------------------------------------------------------------------------
def render_searcher(r: dict[str, Any]) -> str:
    rows = ["| study size | ask median / max (ms) | report median / max (ms) | tell median / max (ms) |",
            "|---|---|---|---|"]
    for a, p, t in zip(r["ask"], r["report"], r["tell"]):
        rows.append(f"| {a['study_size']} | {a['median_ms']:.1f} / {a['max_ms']:.1f} | {p['median_ms']:.1f} / "
                    f"{p['max_ms']:.1f} | {t['median_ms']:.1f} / {t['max_ms']:.1f} |")
    last = r["ask"][-1]
    verdict = "met" if last["max_ms"] < 100 else "not met"
    running = r.get("running", 1)
    flight = (f"with {running} trials running at once (as in a sweep of {running} at once: each round every "
              f"running trial reports an epoch, a freed slot is asked for at once)" if running > 1 else
              "one trial at a time")
    return (f"## Sweep at scale: the searcher at {r['trials']:,} trials\n\nThe real `OptunaSearcher` ({r['sampler']}, "
            f"{len(r['space'])} parameters, {r['storage']} study), {r['trials']} trials asked, reported ASHA-like "
            f"(two of three stop at epoch 4) and told, {flight}, the garbage collector set as a sweep's driver sets it "
            f"(`tune.sweep.frozen_heap`: the imported modules frozen, collections less often). The first ask "
            f"creates the study's tables. "
            f"Target: every ask under 100 ms at {r['trials']} trials: "
            f"**{verdict}** (slowest ask at {last['study_size']}: {last['max_ms']:.0f} ms).\n\n" + "\n".join(rows))


def _pct(x: float | None) -> str:
    return "" if x is None else f"{100 * x:.0f} %"


def _num(x: float | None) -> str:
    return "" if x is None else f"{x:.1f}"


def render_sweep(r: dict[str, Any]) -> str:
    w = r["result_wait_s"]
    verdict = "met" if r["results_waiting_over_1s"] == 0 else "not met"
    mode = "from a background thread (`mlflow.background: true`)" if r.get("mlflow_background") else \
        "synchronous, the default"
    lines = [f"## Sweep at scale: {r['trials']} trials, {r['concurrent']} at once, {r['nodes']} simulated nodes, "
             f"MLflow writes {mode}",
             "",
             f"`ray.cluster_utils.Cluster` with {r['nodes']} nodes x {r['slots_per_node']} GPU slices (fake GPUs, "
             f"one machine), `run_sweep` with the bench space, TPE, ASHA and MLflow on a real `mlflow server`; trials "
             f"report one epoch every {r['epoch_s']} s with a checkpoint and train nothing.",
             "",
             "| measure | value |", "|---|---|",
             f"| results | {r['results']} ({r['trial_epochs']} trial-epochs; {r['by_status']}) |",
             f"| wall time / ideal (trial-epochs x {r['epoch_s']} s / {r['concurrent']} slots) | "
             f"{r['wall_s']:.0f} s / {r['ideal_s']:.0f} s = {r['wall_over_ideal']:.2f}x |",
             f"| driver CPU per result | {r['driver_cpu_ms_per_result']:.1f} ms ({r['driver_cpu_s']:.0f} s in all) |",
             f"| result wait on the driver: median / p99 / max | {w['median']:.2f} / {w['p99']:.2f} / "
             f"{w['max']:.2f} s |",
             f"| results that waited over 1 s (target 0) | {r['results_waiting_over_1s']} (**{verdict}**) |",
             *[f"| of the wait, {label}: median / p99 / max; over 1 s | {p['median']:.2f} / {p['p99']:.2f} / "
               f"{p['max']:.2f} s; {p['over_1s']} |"
               for label, p in ((lbl, (r.get("wait_split") or {}).get(k)) for k, lbl in (
                   ("worker", "in the trial's worker (checkpoint written to storage)"),
                   ("driver", "from the worker's queue to the driver's callbacks"))) if p],
             f"| MLflow writes | {r['mlflow_writes']} ({r['mlflow_writes_per_s']:.1f}/s), queue depth max "
             f"{r['mlflow_queue_max']} |",
             *([f"| steps of Tune's event loop on the driver: count / longest / over 1 s | "
                f"{r['driver_steps']['count']} / {r['driver_steps']['longest_s']:.2f} s / "
                f"{r['driver_steps']['over_1s']} |"] if "driver_steps" in r else []),
             "", "Where the driver's time went (our code):", "",
             "| part | seconds | calls | slowest (ms) |", "|---|---|---|---|"]
    for k, v in sorted(r["driver_time"].items(), key=lambda kv: -kv[1]["seconds"]):
        lines.append(f"| {k} | {v['seconds']:.1f} | {v['calls']} | {v['slowest_ms']:.0f} |")
    if r.get("long_steps"):
        lines += ["", "The longest steps of Tune's event loop, and our timed parts in them (what is left of a step is "
                  "Ray's own work, or the driver waiting for a core):", "",
                  "| seconds into the sweep | step (s) | our parts in it: seconds (calls) |", "|---|---|---|"]
        lines += [f"| {x['at_s']:.0f} | {x['step_s']:.2f} | " + (", ".join(
            f"{k} {v['seconds']:.2f} ({v['calls']})" for k, v in sorted(x["parts"].items(),
                                                                    key=lambda kv: -kv[1]["seconds"])) or "none")
                  + " |" for x in r["long_steps"]]
    if (stacks := r.get("long_step_stacks")) and stacks["samples"]:
        lines += ["", f"Inside the steps over 0.5 s, the driver's main thread sampled every {stacks['every_s'] * 1e3:.0f} "
                  f"ms ({stacks['samples']} samples): the functions found most often, below Tune's `step` (share of the "
                  "samples; a function counts once per sample wherever it is on the stack):", "",
                  "| function | samples |", "|---|---|"]
        below = _below_step(stacks["inclusive"], stacks["samples"])
        lines += [f"| `{k}` | {v} ({v / stacks['samples']:.0%}) |" for k, v in below[:10]]
        lines += ["", "Innermost (where the sampled time was spent itself): " + ", ".join(
            f"`{k}` {v} ({v / stacks['samples']:.0%})" for k, v in list(stacks["innermost"].items())[:5]) + "."]
    if "long_waits" in r:
        lines += ["", "Each result that waited over 1 s, and what the driver did while it waited (results it handled "
                  "before it, steps of its loop):" if r["long_waits"] else "No result waited over 1 s."]
        if r["long_waits"]:
            lines += ["", "| seconds into the sweep | wait (s) | results before it | steps meanwhile |",
                      "|---|---|---|---|"]
            lines += [f"| {x['at_s']:.0f} | {x['wait_s']:.2f} | {x['results_before']} | {x['steps_meanwhile']} |"
                      for x in sorted(r["long_waits"], key=lambda x: -x["wait_s"])[:12]]
    if r.get("wait_by_minute"):
        lines += ["", "When results waited (minutes into the sweep; CPU pressure: the share of the minute in which some "
                  "process on the machine waited for a core, from /proc/pressure/cpu; the driver's CPU: seconds it "
                  "used in the minute, all its threads):", "",
                  "| minute | results | longest wait (s) | waited over 1 s | CPU pressure | driver's CPU (s) |",
                  "|---|---|---|---|---|---|"]
        lines += [f"| {m['minute']} | {m['results']} | {m['max_wait_s']:.2f} | {m['over_1s']} | "
                  f"{_pct(m.get('cpu_pressure'))} | {_num(m.get('driver_cpu_s'))} |" for m in r["wait_by_minute"]]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="what", required=True)
    s = sub.add_parser("searcher", help="ask/report/tell latency of the real searcher against study size")
    s.add_argument("--trials", type=int, default=1000)
    s.add_argument("--running", type=int, default=1, help="trials in flight at once (a sweep's max_concurrent)")
    w = sub.add_parser("sweep", help="a whole sweep on a simulated multi-node cluster")
    w.add_argument("--nodes", type=int, default=32)
    w.add_argument("--slots", type=int, default=4, help="GPU slices per node (trials at once per node)")
    w.add_argument("--trials", type=int, default=1000)
    w.add_argument("--epoch-s", type=float, default=5.0, help="seconds between a trial's reports")
    w.add_argument("--epochs", type=int, default=EPOCHS, help="a trial's budget (bench.yaml's ASHA: rungs 4, 12)")
    w.add_argument("--background", action="store_true", help="mlflow.background=true: MLflow writes off the loop")
    w.add_argument("--name", default=None, help="the result's file and docs section (default: sweep_scale, or "
                                                "sweep_scale_background with --background)")
    for q in (s, w):
        q.add_argument("--doc", default=str(ROOT / "docs" / "benchmarks.md"))
        q.add_argument("--results", default=None, help="folder for the JSON (default benchmarks/results)")
    args = p.parse_args(argv)
    set_command(__file__, argv)
    if args.what == "searcher":
        result = searcher_bench(args.trials, args.running)
        save("sweep_scale_searcher", result, Path(args.results) if args.results else None)
        write_section(Path(args.doc), "sweep_scale_searcher", render_searcher(result))
    else:
        result = sweep_bench(args.nodes, args.slots, args.trials, args.epoch_s, args.epochs, args.background)
        name = args.name or ("sweep_scale_background" if args.background else "sweep_scale")
        save(name, result, Path(args.results) if args.results else None)
        write_section(Path(args.doc), name, render_sweep(result))
    print(json.dumps(result, indent=1, default=float)[:3000])
    return 0


if __name__ == "__main__":
    sys.exit(main())
