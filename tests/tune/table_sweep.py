"""A whole sweep (``tune.sweep.run_sweep``: the real searcher, scheduler, callbacks and Ray) whose trials replay
the search-efficiency table's measured per-epoch curves instead of training: deterministic and fast, so tests
can compare an interrupted-and-resumed sweep's decisions with an uninterrupted one's.

    python tests/tune/table_sweep.py EXPERIMENT.yaml TABLE.parquet|--real-training [key=value ...] [--resume]

Each trial reports one epoch every ``SLR_TABLE_EPOCH_S`` seconds (default 0.25) with a checkpoint, and resumes
from its checkpoint as a real trial does. ``--real-training``: the real trainable instead.

Fault injection (tests only; the product has no such switch): with ``SLR_TEST_NONFINITE_FROM_EPOCH=E`` every
training loss from epoch E on is NaN, in every trial or, with ``SLR_TEST_NONFINITE_WHEN=key=value``, in the trials
that drew that value; a table trial then ends as the real trainable ends a trial whose loss stays non-finite.
"""

from __future__ import annotations

import json
import math
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
LOG_KEYS = {"train.learning_rate", "train.weight_decay"}


def _nearest(key: str, value: float, grid: list[float]) -> float:
    if key in LOG_KEYS:
        return min(grid, key=lambda g: abs(math.log(g) - math.log(value)))
    return min(grid, key=lambda g: abs(g - value))


def curve(table_path: str, config: dict[str, Any]) -> list[dict[str, float]]:
    """The table's run of the grid point nearest to the flat ``config``, by epoch: the table's training seed
    ``train.seed`` modulo the seeds it holds (a re-rank run's new seed gets the other measured run)."""
    import numpy as np
    import pandas as pd
    rows = pd.read_parquet(table_path)
    if "train_seed" in rows:
        seeds = sorted(rows["train_seed"].unique().tolist())
        rows = rows[rows["train_seed"] == seeds[int(config.get("train.seed", 0)) % len(seeds)]]
    for key in [k for k in rows.columns if k in config]:
        grid = sorted(rows[key].unique().tolist())
        rows = rows[np.isclose(rows[key], _nearest(key, float(config[key]), grid))]
    return rows.sort_values("epoch")[["epoch", "dev_wer", "dev_loss"]].to_dict("records")


def nonfinite_from(params: dict[str, Any]) -> int:
    """The epoch from which this trial's training loss is made NaN (0: never), from the environment."""
    epoch = int(os.environ.get("SLR_TEST_NONFINITE_FROM_EPOCH", "0"))
    key, _, value = os.environ.get("SLR_TEST_NONFINITE_WHEN", "").partition("=")
    return epoch if not key or str(params.get(key)) == value else 0


def real_trial(params: dict[str, Any], base: dict[str, Any], max_epochs: int, gpu_fraction: float) -> None:
    """The real trainable (``tune.trainable.train_trial``), with the fault of :func:`nonfinite_from` injected into
    this trial's trainer (this worker process only, and only for this trial: workers are reused)."""
    from slr.train import Trainer
    from tune.trainable import train_trial
    epoch = nonfinite_from(params)
    if not epoch:
        return train_trial(params, base, max_epochs, gpu_fraction)
    loss = Trainer.loss

    def poisoned(self, batch):  # noqa: ANN001, ANN202 -- the epoch being trained is the one after the last done
        value = loss(self, batch)
        if self.state["epoch"] + 1 < epoch:
            return value
        import warnings
        warnings.warn("table_sweep: NaN loss injected", stacklevel=1)  # every batch: the driver shows it once
        return value * float("nan")
    Trainer.loss = poisoned
    try:
        return train_trial(params, base, max_epochs, gpu_fraction)
    finally:
        Trainer.loss = loss


def table_trial(params: dict[str, Any], base: dict[str, Any], max_epochs: int,
                gpu_fraction: float) -> None:
    """tune.trainable.train_trial's signature; the table path comes in the environment (SLR_TABLE)."""
    from ray import tune

    from tune.trainable import trial_config
    from tune.trials import with_rank_metric
    cfg = trial_config(base, params, max_epochs)
    if nonfinite_from(params):  # as the real trainable ends a trial whose loss stays non-finite
        tune.report({"epoch": 1, "finished": 1, "failed_reason": "non-finite loss: injected (table trial)"})
        return
    epochs = curve(os.environ["SLR_TABLE"], cfg.flat())[:max_epochs]
    start, best = 0, math.inf
    restored = tune.get_checkpoint()
    if restored:
        with restored.as_directory() as d:
            state = json.loads((Path(d) / "state.json").read_text())
        start, best = state["epoch"], state["best"]
    for row in epochs[start:]:
        time.sleep(float(os.environ.get("SLR_TABLE_EPOCH_S", "0.25")))
        epoch, best = int(row["epoch"]), min(best, float(row["dev_wer"]))
        with tempfile.TemporaryDirectory() as d:
            (Path(d) / "state.json").write_text(json.dumps({"epoch": epoch, "best": best}))
            tune.report(with_rank_metric({"epoch": epoch, "dev_wer": float(row["dev_wer"]),
                                          "dev_loss": float(row["dev_loss"]), "best_dev_wer": best,
                                          "finished": int(epoch >= len(epochs))}),
                        checkpoint=tune.Checkpoint.from_directory(d))


def main(argv: list[str]) -> int:
    """``slr sweep EXPERIMENT [key=value ...] [--resume]`` with table trials: the same checks, messages and exit
    codes; the summary's best dev WER and trial count as a last JSON line."""
    from slr.cli import build_parser, run
    experiment, table, rest = argv[0], argv[1], argv[2:]
    if table != "--real-training":
        os.environ["SLR_TABLE"] = str(Path(table).resolve())
    args = build_parser().parse_args(["sweep", experiment, *rest])
    args.trial_fn = real_trial if table == "--real-training" else table_trial
    code = run(args)
    if code == 0:
        from tune.experiment import load_experiment
        summary = json.loads((load_experiment(experiment, args.rest).sweep_dir / "summary.json").read_text())
        print(json.dumps({"best_dev_wer": summary["best_dev_wer"], "trials": len(summary["trials"])}))
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
