"""A whole sweep (``tune.sweep.run_sweep``: the real searcher, scheduler, callbacks and Ray) whose trials replay
the search-efficiency table's measured per-epoch curves instead of training: deterministic and fast, so tests
can compare an interrupted-and-resumed sweep's decisions with an uninterrupted one's.

    python tests/tune/table_sweep.py EXPERIMENT.yaml TABLE.parquet [key=value ...] [--resume]

Each trial reports one epoch every ``SLR_TABLE_EPOCH_S`` seconds (default 0.25) with a checkpoint, and resumes
from its checkpoint as a real trial does.
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
    """The table's training seed 0 run of the grid point nearest to the flat ``config``, by epoch."""
    import numpy as np
    import pandas as pd
    rows = pd.read_parquet(table_path)
    if "train_seed" in rows:
        rows = rows[rows["train_seed"] == 0]
    for key in [k for k in rows.columns if k in config]:
        grid = sorted(rows[key].unique().tolist())
        rows = rows[np.isclose(rows[key], _nearest(key, float(config[key]), grid))]
    return rows.sort_values("epoch")[["epoch", "dev_wer", "dev_loss"]].to_dict("records")


def table_trial(params: dict[str, Any], base: dict[str, Any], corpus: str, max_epochs: int,
                gpu_fraction: float) -> None:
    """tune.trainable.train_trial's signature; the table path comes in the environment (SLR_TABLE)."""
    from ray import tune

    from tune.search import with_rank_metric
    from tune.trainable import trial_config
    cfg = trial_config(base, params, max_epochs)
    if cfg.train.inject_nonfinite_from_epoch:  # as the real trainable ends a trial whose loss stays non-finite
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
    os.environ["SLR_TABLE"] = str(Path(table).resolve())
    args = build_parser().parse_args(["sweep", experiment, *rest])
    args.trial_fn = table_trial
    code = run(args)
    if code == 0:
        from tune.experiment import load_experiment
        summary = json.loads((load_experiment(experiment, args.rest).sweep_dir / "summary.json").read_text())
        print(json.dumps({"best_dev_wer": summary["best_dev_wer"], "trials": len(summary["trials"])}))
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
