"""MLflow tracking for sweeps: one parent run per sweep, exactly one child run per trial.

All MLflow writes happen in the sweep driver (fed by :class:`tune.callbacks.MlflowCallback`, a Ray Tune
callback), never in trial workers, so an embedded sqlite store is only ever written by one process. This
module imports no Ray: tests and ``slr mlflow-replay`` use it as it is. Runs are found again by tags
(``slr.sweep`` on the parent, ``slr.trial_id`` on children, nested with ``mlflow.parentRunId``) rather
than by ids kept in memory (Ray's MLflowLoggerCallback), so a restored sweep reuses its runs.

Writes that fail (tracking server down) are buffered and retried; whatever is still pending when the
sweep ends is written to ``mlflow_pending.jsonl`` with a replay command. With ``mlflow.background`` the
writes go out from a background thread, in order, so the driver's event loop never waits on the tracking
server (docs/benchmarks.md, "Sweep at scale"); writes still queued when the driver is SIGKILLed are lost.
"""

from __future__ import annotations

import json
import logging
import math
import os
import sys
import threading
import time
from collections import deque
from pathlib import Path
from typing import Any

from mlflow.entities import Dataset, DatasetInput, InputTag, Metric, Param, RunTag
from mlflow.tracking import MlflowClient

from tune.trials import COST_PREFIX, FAILED, MLFLOW_METRICS

log = logging.getLogger(__name__)
logging.getLogger("mlflow").setLevel(logging.WARNING)  # no INFO lines about database migrations per sweep

PENDING = "mlflow_pending.jsonl"
# The MLflow UI opens an experiment in its "Model training" view (runs, metrics, charts), not the GenAI view
# (traces, prompts), when the experiment carries this tag: a sweep's experiment is one of training runs.
EXPERIMENT_KIND, MODEL_TRAINING = "mlflow.experimentKind", "custom_model_development"


class SweepTracker:
    """Parent/child runs for one sweep, with write buffering.

    Every write after the parent run exists goes through :meth:`_do`: when the server is unreachable it is
    queued (in order) and retried at most every ``retry_seconds``, so an outage never stalls the sweep.
    Writes for a trial name the trial, not its run id: a child run created while the server is down is
    created (idempotently, found by its ``slr.trial_id`` tag first) when the queue drains.

    ``background=True`` (a sweep's tracker): writes are queued and a writer thread sends them in order, so
    the caller never waits on the server; ``flush(final=True)`` waits for the queue to drain.
    """

    def __init__(self, tracking_uri: str, experiment: str, sweep_name: str, sweep_dir: Path,
                 retry_seconds: float = 5.0, background: bool = False, artifact_location: str | None = None,
                 dataset: dict[str, Any] | None = None, system_metrics: bool = True):
        # Fail fast instead of MLflow's default minutes of HTTP retries: the queue here does the retrying.
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "1")
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "1")
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "10")
        self._client: MlflowClient | None = None
        self.tracking_uri, self.sweep_name, self.sweep_dir = tracking_uri, sweep_name, Path(sweep_dir)
        self.experiment_name = experiment
        self.dataset = dataset  # the corpus as an MLflow dataset input: name, digest, source, profile (or None)
        self.system_metrics = system_metrics  # log a trial's system/ reports (tune.sysmetrics) on its run
        self.artifact_location = artifact_location  # for an experiment created here (None: the server's default)
        self.experiment_id: str | None = None
        self.parent_id: str | None = None
        self.children: dict[str, str] = {}  # trial id -> run id
        self.open_before: set[str] = set()  # trials whose run an earlier driver left RUNNING (see close_orphans)
        self.open_params: dict[str, dict[str, str]] = {}  # their logged params, to adopt them (see child)
        self.logged_epoch: dict[str, int] = {}  # trial id -> last epoch logged (a restarted trial re-reports)
        self.logged_status: dict[str, str] = {}  # trial id -> its run's slr.status tag when start() found it
        self.pending: deque[tuple[str, dict[str, Any]]] = deque()  # (operation, kwargs) not written yet, in order
        self.retry_seconds, self.retry_at = retry_seconds, 0.0
        self.saved_pending = 0  # writes left in mlflow_pending.jsonl at the end (0 = everything logged)
        self.background = background
        self._lock = threading.Condition()  # guards pending, retry_at and the writer's state
        self._writer: threading.Thread | None = None
        self._final = False  # the sweep ended: drain, one last try when the server is down, then stop
        self._down = False  # the last write failed

    @property
    def client(self) -> MlflowClient:
        if self._client is None:
            self._client = MlflowClient(tracking_uri=self.tracking_uri)
        return self._client

    def __getstate__(self) -> dict[str, Any]:  # Ray pickles callbacks with the experiment state
        with self._lock:
            return {**self.__dict__, "_client": None, "_lock": None, "_writer": None, "pending": list(self.pending)}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state, pending=deque(state["pending"]), _lock=threading.Condition(), _writer=None)

    # -- runs -----------------------------------------------------------------------------------------
    def start(self, params: dict[str, Any]) -> str:
        """Find or create the sweep's parent run (the server must be reachable now) and re-find its children."""
        exp = self.client.get_experiment_by_name(self.experiment_name)
        self.experiment_id = exp.experiment_id if exp else self.client.create_experiment(
            self.experiment_name, artifact_location=self.artifact_location, tags={EXPERIMENT_KIND: MODEL_TRAINING})
        if exp and EXPERIMENT_KIND not in exp.tags:  # an older sweep's experiment; a kind set by hand is kept
            self.client.set_experiment_tag(self.experiment_id, EXPERIMENT_KIND, MODEL_TRAINING)
        found = self.client.search_runs([self.experiment_id], f"tags.`slr.sweep` = '{self.sweep_name}' and "
                                        "tags.`slr.role` = 'sweep'", max_results=1)
        if found:
            self.parent_id = found[0].info.run_id
            self.client.update_run(self.parent_id, status="RUNNING")
            self.client.set_tag(self.parent_id, "slr.status", "running")
        else:
            run = self.client.create_run(self.experiment_id, run_name=self.sweep_name,
                                         tags={"slr.sweep": self.sweep_name, "slr.role": "sweep",
                                               "slr.status": "running"})
            self.parent_id = run.info.run_id
            self.client.log_batch(self.parent_id, params=[Param(k, _short(v)) for k, v in params.items()])
            self._log_dataset(self.client, self.parent_id)
        for run in self.client.search_runs([self.experiment_id], f"tags.`mlflow.parentRunId` = '{self.parent_id}'",
                                           max_results=10_000):
            trial_id = run.data.tags.get("slr.trial_id", "")
            self.children[trial_id] = run.info.run_id
            self.logged_status[trial_id] = run.data.tags.get("slr.status", "")
            if run.info.status == "RUNNING":
                self.open_before.add(trial_id)
                self.open_params[trial_id] = dict(run.data.params)
            # the last epoch logged: a restored trial re-reports from its checkpoint, and those epochs are skipped.
            # Every trial reports dev_wer each epoch (train_loss only when it trains, not a replayed curve).
            self.logged_epoch[trial_id] = max((m.step for key in ("dev_wer", "train_loss")
                                               for m in self.client.get_metric_history(run.info.run_id, key)),
                                              default=0)
        return self.parent_id

    def child(self, trial_id: str, params: dict[str, Any], config_yaml: str, restored: set[str] = frozenset(),
              run_tags: dict[str, str] | None = None, name: str | None = None) -> None:
        """The trial's run: created once (queued if the server is down), named ``name`` (:func:`run_name`; the
        trial id when None).

        A driver killed after Optuna handed out a trial but before Ray saved it leaves that trial's run open,
        and after ``--resume`` the searcher gives the same configuration to a new Ray trial. That trial adopts
        the open run (same resolved config, its Ray trial not ``restored``), so a configuration has one run
        and the epochs the first attempt logged are not logged again."""
        if trial_id in self.children and self.logged_status.get(trial_id) == "interrupted":
            self.logged_status[trial_id] = "running"  # a trial an interrupted sweep stopped, going on: open again
            self._do("update_run", trial=trial_id, status="RUNNING")
            self._do("log_batch", trial=trial_id, tags=[RunTag("slr.status", "running")])
        if trial_id in self.children or self._queued("create_child", trial_id):
            return
        logged = {k: _short(v) for k, v in params.items()}
        old = next((t for t in sorted(self.open_before - set(restored)) if self.open_params.get(t) == logged), None)
        if old is not None and old in self.children:
            self.children[trial_id] = self.children[old]
            self.logged_epoch[trial_id] = self.logged_epoch.get(old, 0)
            self.open_before.discard(old)
            self._do("log_batch", trial=trial_id, tags=[RunTag("slr.trial_id", trial_id),
                                                        RunTag("slr.adopted_from", old)])
            return
        self._do("create_child", trial=trial_id, params=params, config_yaml=config_yaml,
                 run_tags=run_tags or {"slr.stage": "search"}, name=name or trial_id)

    def known(self, trial_id: str) -> bool:
        return trial_id in self.children or self._queued(None, trial_id)

    def _queued(self, op: str | None, trial_id: str) -> bool:
        """Whether a write for ``trial_id`` (of operation ``op``, or any) is waiting in the queue."""
        with self._lock:
            return any(kw.get("trial") == trial_id and op in (None, o) for o, kw in self.pending)

    def metrics(self, trial_id: str, result: dict[str, Any]) -> None:
        epoch = result.get("epoch")
        if not self.known(trial_id) or epoch is None or epoch <= self.logged_epoch.get(trial_id, 0):
            return  # an epoch re-reported after a restart from checkpoint is logged once
        first = trial_id not in self.logged_epoch
        self.logged_epoch[trial_id] = int(epoch)
        now = int(time.time() * 1000)
        keys = [*MLFLOW_METRICS, *(sorted(k for k in result if k.startswith("system/"))
                                   if getattr(self, "system_metrics", True) else ()),
                *(sorted(k for k in result if k.startswith(COST_PREFIX)) if first else ())]  # costs: once
        points = [Metric(k, float(result[k]), now, int(epoch)) for k in keys
                  if isinstance(result.get(k), (int, float)) and math.isfinite(result[k])]
        self._do("log_batch", trial=trial_id, metrics=points)

    def finish_trial(self, trial_id: str, status: str, rung: int, error: str | None = None) -> None:
        if not self.known(trial_id):
            return
        tags = [RunTag("slr.status", status), RunTag("slr.asha_rung", str(rung))]
        if error:
            tags.append(RunTag("slr.error", error[:5000]))
        self._do("log_batch", trial=trial_id, tags=tags)
        self._do("set_terminated", trial=trial_id, status="FAILED" if status == FAILED else "FINISHED")

    def close_orphans(self, trials: set[str]) -> list[str]:
        """Close, as KILLED, the runs an earlier (killed) driver left RUNNING for trials the sweep does not have
        (``trials``: the summary's, which has every trial Ray or Optuna knows) and no new trial adopted (see
        :meth:`child`): nothing else would ever close them."""
        orphans = sorted(self.open_before - trials)
        for trial_id in orphans:
            self._do("log_batch", trial=trial_id, tags=[
                RunTag("slr.status", "orphaned"),
                RunTag("slr.error", "the sweep driver was killed before Ray saved this trial, and no trial of the "
                                    "resumed sweep took its configuration")])
            self._do("set_terminated", trial=trial_id, status="KILLED")
        self.open_before -= set(orphans)
        return orphans

    def interrupted(self) -> None:
        """The sweep stopped before its trials did (Ctrl-C): the parent and every run still open end KILLED with
        ``slr.status = interrupted``. ``--resume`` reopens the parent and the restored trials log on into their
        own runs, which end with their outcome."""
        if self.parent_id is None:
            return
        for trial_id in sorted(self.open_before):
            self._do("log_batch", trial=trial_id, tags=[RunTag("slr.status", "interrupted")])
            self._do("set_terminated", trial=trial_id, status="KILLED")
        self.open_before.clear()
        self._do("log_batch", run_id=self.parent_id, tags=[RunTag("slr.status", "interrupted")])
        self._do("set_terminated", run_id=self.parent_id, status="KILLED")
        self.flush(final=True)

    def finish(self, summary: dict[str, Any], files: dict[str, Path]) -> None:
        if self.parent_id is None:
            return
        rows = [*summary.get("trials", []), *(summary.get("rerank") or {}).get("runs", [])]
        for row in rows:  # the summary (Optuna's told outcomes, the re-rank runs) is the record: runs match it
            trial_id, status = row["trial_id"], row["status"]
            if trial_id not in self.children:
                continue
            if self.logged_status.get(trial_id) != status:
                self._do("log_batch", trial=trial_id, tags=[RunTag("slr.status", status)])
            if trial_id in self.open_before:  # left open by a driver killed before it saw the trial end
                self._do("set_terminated", trial=trial_id, status="FAILED" if status == FAILED else "FINISHED")
                self.open_before.discard(trial_id)
        self.close_orphans({row["trial_id"] for row in rows})
        best = summary.get("best_dev_wer")
        if best is not None:
            self._do("log_metric", run_id=self.parent_id, key="best_dev_wer", value=float(best))
        for c in (summary.get("rerank") or {}).get("candidates", []):  # each candidate's mean and spread
            if c["mean_dev_wer"] is not None:
                self._do("log_batch", run_id=self.parent_id, metrics=[
                    Metric(f"rerank_mean_dev_wer/{c['trial_id']}", float(c["mean_dev_wer"]), _now(), 0),
                    Metric(f"rerank_std_dev_wer/{c['trial_id']}", float(c["std_dev_wer"]), _now(), 0)])
        if summary.get("rerank"):
            self._do("log_batch", run_id=self.parent_id, tags=[RunTag("slr.rerank_winner", str(summary["rerank"]["winner"]))])
        for path in files.values():
            if Path(path).exists():
                self._do("log_artifact", run_id=self.parent_id, local_path=str(path))
        self._do("log_batch", run_id=self.parent_id, tags=[RunTag("slr.status", "finished")])
        self._do("set_terminated", run_id=self.parent_id, status="FINISHED")
        self.flush(final=True)

    # -- buffering ------------------------------------------------------------------------------------
    def _execute(self, op: str, kwargs: dict[str, Any]) -> None:
        client = self.client
        if op == "create_child":
            trial = kwargs["trial"]
            found = client.search_runs([self.experiment_id], f"tags.`mlflow.parentRunId` = '{self.parent_id}' and "
                                       f"tags.`slr.trial_id` = '{trial}'", max_results=1)
            if found:  # created before a failure half-way through this op: reuse, never duplicate
                self.children[trial] = found[0].info.run_id
                return
            run = client.create_run(self.experiment_id, run_name=kwargs.get("name") or trial, tags={
                "mlflow.parentRunId": self.parent_id, "slr.sweep": self.sweep_name, "slr.trial_id": trial,
                "slr.role": "trial", "slr.status": "running", **kwargs.get("run_tags", {})})
            client.log_batch(run.info.run_id, params=[Param(k, _short(v)) for k, v in kwargs["params"].items()])
            client.log_text(run.info.run_id, kwargs["config_yaml"], "config.yaml")
            self._log_dataset(client, run.info.run_id)
            self.children[trial] = run.info.run_id
            return
        kwargs = dict(kwargs)
        trial = kwargs.pop("trial", None)
        if trial is not None:
            kwargs["run_id"] = self.children[trial]
        getattr(client, op)(**kwargs)

    def _log_dataset(self, client: MlflowClient, run_id: str) -> None:
        """The corpus as the run's dataset input (the UI's Dataset column), when the sweep named one."""
        d = getattr(self, "dataset", None)  # a tracker pickled by an older sweep has none
        if d:
            dataset = Dataset(name=d["name"], digest=d["digest"], source_type="local", source=d["source"],
                              profile=json.dumps(d["profile"]))
            client.log_inputs(run_id, [DatasetInput(dataset, [InputTag("mlflow.data.context", "training")])])

    def _do(self, op: str, **kwargs: Any) -> None:
        if self.background:
            with self._lock:
                self.pending.append((op, kwargs))
                self._lock.notify_all()
            self._start_writer()
            return
        self.flush()
        if self.pending:  # keep order: nothing overtakes what is already waiting
            self.pending.append((op, kwargs))
            return
        try:
            self._execute(op, kwargs)
        except Exception as err:  # noqa: BLE001 -- any transport error: buffer and retry later
            self._failed(err)
            self.pending.append((op, kwargs))

    def _failed(self, err: Exception) -> None:
        if not self._down:
            log.warning("MLflow unreachable (%s); buffering writes and retrying every %.0f s", type(err).__name__,
                        self.retry_seconds)
        self._down = True
        self.retry_at = time.time() + self.retry_seconds

    def _sent(self) -> None:
        if self._down and not self.pending:
            log.warning("MLflow reachable again: every buffered write is logged")
            self._down = False

    def flush(self, final: bool = False) -> None:
        """Retry queued writes in order (throttled while the server is down). ``final``: the sweep ended; what
        cannot be written now goes to the pending file. With a background writer only ``final`` does anything."""
        if self.background:
            if final:
                self._drain()
            return
        if not self.pending or (not final and time.time() < self.retry_at):
            return
        while self.pending:
            op, kwargs = self.pending[0]
            try:
                self._execute(op, kwargs)
            except Exception as err:  # noqa: BLE001
                self._failed(err)
                if final:
                    self._write_pending()
                return
            self.pending.popleft()
            self._sent()

    # -- the background writer ----------------------------------------------------------------------------
    def _start_writer(self) -> None:
        with self._lock:
            if self._writer is None or not self._writer.is_alive():
                self._writer = threading.Thread(target=self._write_loop, name="slr-mlflow-writer", daemon=True)
                self._writer.start()

    def _write_loop(self) -> None:
        """Send queued writes in order; while the server is down, retry the first every ``retry_seconds``."""
        while True:
            with self._lock:
                while not self.pending and not self._final:
                    self._lock.wait()
                if not self.pending:
                    return  # final, and everything written
                wait = self.retry_at - time.time()
                if wait > 0 and not self._final:
                    self._lock.wait(wait)  # woken early by the final flush
                    continue
                op, kwargs = self.pending[0]
            try:
                self._execute(op, kwargs)
            except Exception as err:  # noqa: BLE001 -- any transport error: keep it queued, retry later
                with self._lock:
                    self._failed(err)
                    if self._final:
                        return  # one last try failed: what is left goes to the pending file
                continue
            with self._lock:
                self.pending.popleft()
                self._sent()

    def _drain(self) -> None:
        """Wait for the writer to send everything (or to fail once more at the end), then save what is left."""
        with self._lock:
            self._final = True
            self._lock.notify_all()
        if self.pending:
            self._start_writer()
        if self._writer is not None:
            self._writer.join()
        with self._lock:
            self._final = False
            if self.pending:
                self._write_pending()

    def _write_pending(self) -> None:
        path = self.sweep_dir / PENDING
        context = dict(experiment_id=self.experiment_id, parent_id=self.parent_id, sweep=self.sweep_name,
                       children=self.children)
        with open(path, "a") as f:
            for op, kwargs in self.pending:
                f.write(json.dumps({"op": op, "kwargs": _jsonable(kwargs), "context": context}) + "\n")
        self.saved_pending = len(self.pending)
        message = (f"MLflow at {self.tracking_uri} stayed unreachable: {len(self.pending)} writes could not be "
                   f"logged and are saved in {path}; when the server is back, replay them with\n"
                   f"  slr mlflow-replay {path} --tracking-uri {self.tracking_uri}")
        log.error(message)
        print(f"slr: {message}", file=sys.stderr, flush=True)
        self.pending.clear()


def _now() -> int:
    return int(time.time() * 1000)


# Short names of the keys sweeps search most, for run names; any other key is named by its last part.
SHORT_KEYS = {"train.learning_rate": "lr", "model.dropout": "drop", "train.weight_decay": "wd",
              "model.num_blocks": "blocks", "model.lstm_layers": "lstm", "model.aux_ctc_weight": "aux",
              "train.warmup_epochs": "warmup", "data.batch_size": "batch", "model.arch": "arch"}


def run_name(prefix: str, values: dict[str, Any]) -> str:
    """A run name a person can read in the runs table: ``prefix`` then each searched value, short.
    ``run_name("t04", {"train.learning_rate": 0.001, "model.num_blocks": 8})`` -> ``t04 lr=1.0e-3 blocks=8``."""
    def value(v: Any) -> str:
        if isinstance(v, float) and v != 0 and not 0.01 <= abs(v) < 1000:
            mantissa, exponent = f"{v:.1e}".split("e")
            return f"{mantissa}e{int(exponent)}"
        return f"{v:.3g}" if isinstance(v, float) else str(v)
    parts = [f"{SHORT_KEYS.get(k, k.rsplit('.', 1)[-1])}={value(v)}" for k, v in values.items()]
    return " ".join([prefix, *parts])[:250]  # MLflow's limit on a run name is 250 characters


def _short(v: Any) -> str:
    return str(v)[:6000]


def _jsonable(kwargs: dict[str, Any]) -> dict[str, Any]:
    out = dict(kwargs)
    for key in ("metrics", "params", "tags"):
        if key in out and isinstance(out[key], list):
            out[key] = [(x.key, x.value, getattr(x, "timestamp", None), getattr(x, "step", None)) for x in out[key]]
    return out


def replay(path: str | Path, tracking_uri: str) -> int:
    """Write the operations a sweep saved because its tracking server never came back (in order)."""
    done = 0
    tracker: SweepTracker | None = None
    for line in Path(path).read_text().splitlines():
        item = json.loads(line)
        ctx, kwargs = item["context"], item["kwargs"]
        if tracker is None:
            tracker = SweepTracker(tracking_uri, "", ctx["sweep"], Path(path).parent)
            tracker.experiment_id, tracker.parent_id = ctx["experiment_id"], ctx["parent_id"]
        for trial, run_id in ctx["children"].items():
            tracker.children.setdefault(trial, run_id)
        if "metrics" in kwargs:
            kwargs["metrics"] = [Metric(k, v, t, s) for k, v, t, s in kwargs["metrics"]]
        if "tags" in kwargs:
            kwargs["tags"] = [RunTag(k, v) for k, v, _, _ in kwargs["tags"]]
        if "params" in kwargs and isinstance(kwargs["params"], list):
            kwargs["params"] = [Param(k, v) for k, v, _, _ in kwargs["params"]]
        tracker._execute(item["op"], kwargs)
        done += 1
    return done
