"""The re-ranking stage: the search's top-k trials retrained with new training seeds, the winner by mean dev WER.

One training run is largely luck (a configuration's best dev WER moves ~9 points between two training seeds on the
search table, docs/benchmarks.md), and the search's best run is the luckiest of many: its WER is biased low. So
after the search, each of the ``rerank.top_k`` best trials (by best dev WER) is trained again at the full budget
with ``rerank.seeds`` new training seeds (``train.seed`` + 1, + 2, ...), as Ray trials in parallel on the sweep's
resources. The winner is the candidate with the lowest mean dev WER over its new runs; the search run itself is
left out of the mean (it was selected for being low). The stage is its own Ray experiment in
``<sweep>/rerank``, so a killed driver's ``--resume`` continues it; its MLflow runs are children of the sweep's
parent run tagged ``slr.stage=rerank``; none is an Optuna trial.
"""

from __future__ import annotations

import math
import statistics
from pathlib import Path
from typing import Any

from tune import savedstate, storage
from tune.experiment import ExperimentSpec
from tune.trials import COMPLETED, METRIC, best_first, status_of

STAGE = "rerank"  # the stage's Ray experiment name (a folder of the sweep) and its slr.stage tag


def candidates(spec: ExperimentSpec, summary: dict[str, Any]) -> list[dict[str, Any]]:
    """The search's ``top_k`` best trials (rows of the summary), best first."""
    ranked = best_first(summary["trials"], lambda r: r["best_dev_wer"],
                        lambda r: math.inf if r.get("number") is None else r["number"])
    return ranked[: spec.rerank.top_k]


def seed_runs(spec: ExperimentSpec, cands: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One run per (candidate, new seed): the candidate's searched values with ``train.seed`` moved on by 1..seeds
    from the seed its search run trained with."""
    base_seed = spec.base_config().train.seed
    runs = []
    for rank, c in enumerate(cands, 1):
        seed0 = int(c["params"].get("train.seed", base_seed))
        for i in range(1, spec.rerank.seeds + 1):
            runs.append(dict(candidate=c["trial_id"], rank=rank, seed=seed0 + i,
                             params={**c["params"], "train.seed": seed0 + i}))
    return runs


def rerank_trial(config: dict[str, Any], trial_fn, base: dict[str, Any], max_epochs: int,  # noqa: ANN001
                 gpu_fraction: float) -> None:
    """The Ray trainable of a re-rank run: the sweep's own trial function on the run's values."""
    return trial_fn(config["run"]["params"], base=base, max_epochs=max_epochs, gpu_fraction=gpu_fraction)


def stage_uri(spec: ExperimentSpec) -> str:
    return storage.join(spec.sweep_uri, STAGE) if spec.remote else str(spec.sweep_dir / STAGE)


def run_stage(spec: ExperimentSpec, summary: dict[str, Any], trial_fn, base: dict[str, Any],  # noqa: ANN001
              callbacks: list, verbose: int):  # noqa: ANN201 -- a ray.tune.ResultGrid
    """Train every (candidate, seed) run, or go on with the runs a killed driver left (its saved state)."""
    from ray import tune
    trainable = tune.with_resources(
        tune.with_parameters(rerank_trial, trial_fn=trial_fn, base=base, max_epochs=spec.max_epochs,
                             gpu_fraction=spec.resources.gpu),
        {"cpu": spec.resources.cpu, "gpu": spec.resources.gpu})
    uri = stage_uri(spec)
    if tune.Tuner.can_restore(uri):
        savedstate.repair(uri)
        tuner = tune.Tuner.restore(uri, trainable=trainable, resume_errored=True, restart_errored=False)
    else:
        runs = seed_runs(spec, candidates(spec, summary))
        tuner = tune.Tuner(
            trainable, param_space={"run": tune.grid_search(runs)},
            tune_config=tune.TuneConfig(num_samples=1, max_concurrent_trials=spec.max_concurrent,
                                        reuse_actors=spec.reuse_workers),
            run_config=tune.RunConfig(
                name=STAGE, storage_path=spec.sweep_uri, callbacks=callbacks, verbose=verbose,
                failure_config=tune.FailureConfig(max_failures=spec.max_failures),
                checkpoint_config=tune.CheckpointConfig(num_to_keep=None, checkpoint_score_attribute=METRIC,
                                                        checkpoint_score_order="min")))
        savedstate.keep_all(uri)
    return tuner.fit()


def unfinished_runs(grid) -> int:  # noqa: ANN001 -- a ray.tune.ResultGrid
    """Runs that neither finished their budget nor failed: the stage was interrupted."""
    return sum(1 for r in grid if not r.error and not (r.metrics or {}).get("finished"))


def results(spec: ExperimentSpec, grid, run_ids: dict[str, str]) -> dict[str, Any]:  # noqa: ANN001
    """The stage's record: every run's outcome, each candidate's mean and spread, the winner."""
    from tune.summary import best_checkpoint
    runs = []
    for r in grid:
        m, df = r.metrics or {}, r.metrics_dataframe
        run = r.config["run"]
        wers = [] if df is None or METRIC not in df else [float(w) for w in df[METRIC] if w == w]
        best = min(wers, default=math.nan)
        epoch = int(df.loc[df[METRIC].idxmin(), "epoch"]) if wers else None
        trial_id = m.get("trial_id") or Path(r.path).name
        runs.append(dict(trial_id=trial_id, candidate=run["candidate"], seed=run["seed"], params=run["params"],
                         status=status_of(m, error=bool(r.error)), best_dev_wer=best, best_epoch=epoch,
                         checkpoint=best_checkpoint(r, spec), run_id=run_ids.get(trial_id),
                         machine={k[len("machine_"):]: v for k, v in m.items() if k.startswith("machine_")}))
    cands = []
    for cid in dict.fromkeys(r["candidate"] for r in runs):
        mine = sorted((r for r in runs if r["candidate"] == cid), key=lambda r: r["seed"])
        scored = [r["best_dev_wer"] for r in mine if r["status"] == COMPLETED and math.isfinite(r["best_dev_wer"])]
        cands.append(dict(trial_id=cid, params={k: v for k, v in mine[0]["params"].items() if k != "train.seed"},
                          runs=[r["trial_id"] for r in mine], seeds=[r["seed"] for r in mine],
                          dev_wers=[r["best_dev_wer"] for r in mine],
                          mean_dev_wer=statistics.fmean(scored) if scored else None,
                          std_dev_wer=statistics.stdev(scored) if len(scored) > 1 else 0.0 if scored else None,
                          complete=len(scored) == len(mine)))
    order = {c["trial_id"]: k for k, c in enumerate(cands)}  # the search's ranking breaks ties
    ranked = best_first(cands, lambda c: c["mean_dev_wer"], lambda c: order[c["trial_id"]])
    winner = ranked[0] if ranked else None
    best_run = None
    if winner:
        mine = [r for r in runs if r["candidate"] == winner["trial_id"] and math.isfinite(r["best_dev_wer"])]
        best_run = min(mine, key=lambda r: (r["best_dev_wer"], r["seed"]))
    return dict(top_k=spec.rerank.top_k, seeds=spec.rerank.seeds, candidates=ranked, runs=runs,
                winner=winner["trial_id"] if winner else None, best_run=best_run,
                trial_epochs=sum(int((r.metrics or {}).get("epoch", 0)) for r in grid))
