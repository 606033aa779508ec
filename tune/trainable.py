"""The trial: config dict -> slr Config -> Trainer, reporting to Tune every epoch. The only Ray glue
inside a trial; everything else about the run is slr's."""

from __future__ import annotations

import os
import shutil
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import ray
import torch
from ray import tune

from slr.checkpoint import machine_facts
from slr.config import Config
from slr.cost import measure
from slr.train import NonFiniteLossError, Trainer
from tune.sysmetrics import SystemSampler
from tune.trials import COST_PREFIX, with_rank_metric


def trial_config(base: dict[str, Any], params: dict[str, Any], max_epochs: int) -> Config:
    """The trial's resolved config: base config + sampled dotted keys, budget = the scheduler's max. A key with
    no value (None: a conditional parameter its trial did not draw, as a summary row records it) keeps the base
    config's value."""
    cfg = Config.from_dict(base).override({k: v for k, v in params.items() if v is not None})
    return cfg.override({"train.epochs": max_epochs})


def pick_device(gpu_fraction: float) -> str:
    """``cuda`` with memory capped to the trial's slice, or ``cpu`` (with one warning if a GPU was asked for)."""
    if gpu_fraction > 0 and torch.cuda.is_available():
        # Ray does not isolate fractional GPUs: cap this process to its share of device memory.
        torch.cuda.set_per_process_memory_fraction(min(1.0, gpu_fraction), 0)
        return "cuda"
    if gpu_fraction > 0:
        warnings.warn(f"trial asked for gpu={gpu_fraction} but no CUDA device is visible: training on CPU",
                      stacklevel=2)
    return "cpu"


def train_trial(params: dict[str, Any], base: dict[str, Any], max_epochs: int,
                gpu_fraction: float, costs: tuple[str, ...] = ()) -> None:
    """Ray Tune function trainable: the sweep's ``base`` config (its corpus included: ``data.corpus``) with the
    trial's ``params``, for ``max_epochs``, on its GPU slice or the CPU. Its warnings go to the driver with its
    reports (:class:`_WarningsOf`). ``costs`` (a multi-objective sweep's, slr.cost): measured once, on this
    trial's node before it trains, and reported as ``cost_<name>`` with every result."""
    caught = _WarningsOf()
    caught.start()
    try:
        _train(params, base, max_epochs, gpu_fraction, caught, costs)
    finally:
        caught.stop()


def _train(params: dict[str, Any], base: dict[str, Any], max_epochs: int, gpu_fraction: float,
           caught: _WarningsOf, costs: tuple[str, ...] = ()) -> None:
    cfg = trial_config(base, params, max_epochs)  # train.num_threads = the trial's CPUs (ExperimentSpec.base_config)
    cfg = cfg.override({"train.device": pick_device(gpu_fraction)})
    work = Path(tempfile.mkdtemp(prefix="slr-trial-"))
    report_dir = work / "report"
    # Where and since when this attempt runs: placement and concurrency are checkable from the results.
    where = {"node_id": ray.get_runtime_context().get_node_id(), "attempt_start": time.time(), "pid": os.getpid(),
             **{f"machine_{k}": v for k, v in machine_facts(cfg.train.device).items()}}

    system = SystemSampler(cfg.train.device)  # what this process used, per epoch (the MLflow run's system metrics)

    def on_epoch(metrics: dict[str, Any], ckpt_dir: Path | None) -> None:
        checkpoint = None
        if ckpt_dir is not None:
            # Hand Tune a folder holding only this epoch's checkpoint (a hard link: no copy on our side).
            shutil.rmtree(report_dir, ignore_errors=True)
            report_dir.mkdir()
            os.link(ckpt_dir / "last.pt", report_dir / "last.pt")
            checkpoint = tune.Checkpoint.from_directory(str(report_dir))
        tune.report({**with_rank_metric({k: v for k, v in metrics.items() if v is not None}), **where, **measured,
                     **system.sample(), **caught.new(), "report_time": time.time()},
                    checkpoint=checkpoint)

    measured: dict[str, float] = {}
    try:  # the work folder goes whatever happens, a trainer that cannot start included
        trainer = Trainer(cfg, out=work / "run", on_epoch=on_epoch)
        if costs:  # before training: an untrained model costs what a trained one does
            measured = {f"{COST_PREFIX}{k}": v for k, v in
                        measure(costs, trainer.features, trainer.model, trainer.corpus.fps).items()}
        restored = tune.get_checkpoint()
        if restored:
            with restored.as_directory() as d:
                shutil.copyfile(Path(d) / "last.pt", work / "resume.pt")
            trainer.fit(resume=work / "resume.pt")
        else:
            trainer.fit()
    except NonFiniteLossError as err:
        # Deterministic: retrying would fail again. End the trial with its reason instead of raising, so
        # Ray does not restart it; the searcher records it as FAIL and the MLflow run as failed.
        tune.report({**where, **measured, **caught.new(), "report_time": time.time(),
                     "epoch": trainer.state["epoch"] + 1,
                     "finished": 1,
                     "failed_reason": f"non-finite loss: {err}"})
    finally:
        shutil.rmtree(work, ignore_errors=True)


class _WarningsOf:
    """The warnings a trial raises (each distinct one once), handed over with its next report: a trial's
    output stays in its worker (``log_to_driver`` is off without ``-v``), so this is how they reach the driver."""

    def __init__(self):
        self.seen: set[str] = set()
        self.pending: list[str] = []
        self._context = warnings.catch_warnings(record=True)
        self._log: list = []

    def start(self) -> None:
        self._log = self._context.__enter__()
        warnings.simplefilter("default")  # each distinct warning once per place, as Python shows them

    def stop(self) -> None:
        self._context.__exit__(None, None, None)

    def new(self) -> dict[str, list[str]]:
        for w in self._log:
            message = f"{w.category.__name__}: {w.message}"
            if message not in self.seen:
                self.seen.add(message)
                self.pending.append(message[:500])
        self._log.clear()
        out, self.pending = ({"warnings": self.pending} if self.pending else {}), []
        return out
