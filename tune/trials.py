"""The ground floor of ``tune``: what a trial reports, what its outcome is called, how trials rank, where the
ASHA rungs are. Every other module of ``tune`` (searcher, scheduler, tracking, summary, report, CLI) takes these
rules from here; this module imports neither Ray, Optuna nor MLflow.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

# -- metric names ---------------------------------------------------------------------------------------
METRIC = "dev_wer"  # what a trial is judged on: its best checkpoint's dev WER (never its last report)
WER_THEN_LOSS = "dev_wer_then_loss"  # dev WER, ties broken by dev loss (with_rank_metric)
RANK_METRICS = (WER_THEN_LOSS, "dev_wer", "dev_loss")  # what ASHA's rungs may rank by (scheduler.metric)
TIE_BREAK = 1e-4  # dev loss (nats, ~1-15) x this stays below one word of dev WER on any usable dev set
MLFLOW_METRICS = ("train_loss", "dev_loss", "dev_wer", "best_dev_wer", "lr", "epoch_seconds", "step_seconds",
                  "frames_per_second", "skipped_batches")  # logged per epoch on a trial's run
COST_PREFIX = "cost_"  # a trial's costs (slr.cost: cost_params, cost_mflops, cost_latency_ms), in every report
CURVE_KEYS = ("epoch", "dev_wer", "dev_loss", "train_loss", "lr", "best_dev_wer", "epoch_seconds")  # curves.json


def with_rank_metric(metrics: dict[str, Any]) -> dict[str, Any]:
    """Add ``dev_wer_then_loss``: dev WER, ties (the blank plateau: everything at 100 %) broken by dev loss."""
    wer, loss = metrics.get("dev_wer"), metrics.get("dev_loss")
    if wer is not None and loss is not None and math.isfinite(wer) and math.isfinite(loss):
        return {**metrics, WER_THEN_LOSS: wer + TIE_BREAK * min(loss, 100.0)}
    return metrics


# -- a trial's outcome ----------------------------------------------------------------------------------
COMPLETED, STOPPED, FAILED = "completed", "stopped-by-asha", "failed"
STATUSES = (COMPLETED, STOPPED, FAILED)
# Optuna's trial states (by name) in these words (summary.json, MLflow tags, `slr sweep status`), and back
STATUS_OF_STATE = {"COMPLETE": COMPLETED, "PRUNED": STOPPED, "FAIL": FAILED, "RUNNING": "running",
                   "WAITING": "queued"}
STATE_OF_STATUS = {COMPLETED: "COMPLETE", STOPPED: "PRUNED", FAILED: "FAIL"}


def status_of(result: dict[str, Any] | None, error: bool = False) -> str:
    """A finished trial's outcome from its last report: ``failed`` when it raised, reported a failure, or
    finished its budget without a finite best dev WER; ``completed`` when its trainer finished (budget or early
    stopping: ``finished=1``); otherwise ``stopped-by-asha`` (the scheduler ended it)."""
    if error or not result or result.get("failed_reason"):
        return FAILED
    if not result.get("finished"):
        return STOPPED
    best = result.get("best_dev_wer")
    return COMPLETED if best is not None and math.isfinite(best) else FAILED


def status_of_state(state_name: str) -> str:
    """The status of an Optuna trial state, by its name (``COMPLETE`` -> ``completed``)."""
    return STATUS_OF_STATE.get(state_name, state_name.lower())


# -- ranking --------------------------------------------------------------------------------------------
T = TypeVar("T")


def best_first(items: Iterable[T], wer: Callable[[T], float | None], number: Callable[[T], float]) -> list[T]:
    """Trials ranked by best dev WER, lowest first; ties go to the trial asked first (its Optuna number), so the
    summary, ``slr sweep status`` and the export agree whatever order Ray lists trials in. Trials without a
    finite WER are left out."""
    scored = [(w, number(i), k, i) for k, i in enumerate(items)
              if (w := wer(i)) is not None and math.isfinite(w)]
    return [i for *_, i in sorted(scored, key=lambda s: s[:3])]


# -- ASHA rungs -----------------------------------------------------------------------------------------
def asha_milestones(grace: int, factor: float, max_t: int) -> list[float]:
    """The epochs of ASHA's rungs, lowest first, exactly as Ray's ``_Bracket`` places them (rung k at
    ``grace * factor**k``, as many as ``int(log(max_t / grace) / log(factor) + 1)``)."""
    count = int(math.log(max_t / grace) / math.log(factor) + 1)
    return [grace * factor ** k for k in range(count)]


def asha_rung(epochs: int, grace: int, factor: float, max_t: int) -> int:
    """The highest rung a trial reached after ``epochs`` reports (0 also before the first rung)."""
    return max(0, sum(m <= epochs for m in asha_milestones(grace, factor, max_t)) - 1)
