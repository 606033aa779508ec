"""What a finished sweep leaves behind: ``summary.json`` (every trial's outcome, the best trial), ``curves.json``
(every trial's reports), ``trials.csv`` and ``best_config.yaml``, written from Ray's results and the Optuna study
(the record of outcomes: committed at every report, where Ray's files can lag a killed driver)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from tune import storage
from tune.experiment import ExperimentSpec
from tune.pareto import front, oriented
from tune.search import intermediate, open_study, shown
from tune.tracking import SweepTracker
from tune.trainable import trial_config
from tune.trials import COST_PREFIX, CURVE_KEYS, METRIC, STATUSES, best_first, status_of, status_of_state


def summarize(spec: ExperimentSpec, grid, tracker: SweepTracker | None,  # noqa: ANN001
              wall_seconds: float, study=None) -> tuple[dict[str, Any], dict[str, list]]:  # noqa: ANN001
    """The search's summary (every trial's outcome; the best trial by its best dev WER over epochs) and every
    trial's curve, from Ray's ``grid`` and the Optuna ``study``; :func:`write` saves them."""
    import optuna

    study = study or open_study(spec)
    by_state: dict[str, int] = {}
    for t in study.trials:
        by_state[t.state.name.lower()] = by_state.get(t.state.name.lower(), 0) + 1
    # Optuna is told every outcome as it happens; Ray's restored state can be older (a killed driver)
    told = {t.user_attrs.get("ray_trial_id"): t for t in study.trials if t.state.is_finished()}
    number = {t.user_attrs.get("ray_trial_id"): t.number for t in study.trials}  # ties go to the first asked
    rows, curves = [], {}
    for result in grid:
        df = result.metrics_dataframe
        metrics = result.metrics or {}
        best = float(df[METRIC].min()) if df is not None and METRIC in df and len(df) else math.nan
        best_epoch = int(df.loc[df[METRIC].idxmin(), "epoch"]) if not math.isnan(best) else None
        trial_id = metrics.get("trial_id") or Path(result.path).name
        told_best = _told_best(told[trial_id]) if trial_id in told else (math.nan, None)
        if not math.isnan(told_best[0]):
            # Optuna's record is committed at every report; Ray's files can lack the epochs a killed driver had
            # not synced (a trial then looked worse than it was and lost the ranking)
            best, best_epoch = told_best
        status = status_of(metrics, error=bool(result.error))
        epochs = int(metrics.get("epoch", 0))
        if trial_id in told:
            status = status_of_state(told[trial_id].state.name)
            epochs = max(epochs, max(intermediate(told[trial_id]), default=0))
        params = result.config or (told[trial_id].params if trial_id in told else {})
        rows.append(dict(trial_id=trial_id, number=number.get(trial_id), path=result.path, status=status,
                         best_dev_wer=best, best_epoch=best_epoch, epochs=epochs,
                         params={k: params.get(k) for k in spec.space},
                         checkpoint=best_checkpoint(result, spec),
                         machine={k[len("machine_"):]: v for k, v in (result.metrics or {}).items()
                                  if k.startswith("machine_")},
                         costs=_costs(metrics) or _costs(told[trial_id].user_attrs if trial_id in told else {})))
        curves[trial_id] = _curve(df)
    for trial_id, t in told.items():  # told, but never in a state Ray saved (the driver was killed first)
        if trial_id and trial_id not in curves:
            best, best_epoch = _told_best(t)
            rows.append(dict(trial_id=trial_id, number=t.number, path=None, status=status_of_state(t.state.name),
                             best_dev_wer=best, best_epoch=best_epoch, epochs=max(intermediate(t), default=0),
                             params={k: t.params.get(k) for k in spec.space}, checkpoint=None, machine={},
                             costs=_costs(t.user_attrs)))
            curves[trial_id] = []
    for r in rows:  # each trial's MLflow run (export under a budget names the one it exports)
        r["mlflow_run_id"] = tracker.children.get(r["trial_id"]) if tracker else None
    ranked = best_first(rows, lambda r: r["best_dev_wer"], lambda r: math.inf if r["number"] is None else r["number"])
    best = ranked[0] if ranked else None
    sweep_dir = spec.sweep_dir
    summary = dict(
        sweep=spec.name, sweep_dir=str(sweep_dir), storage=spec.sweep_uri, corpus=str(spec.corpus_dir), num_trials=len(rows),
        trials_by_status={s: sum(r["status"] == s for r in rows) for s in STATUSES},
        optuna_states=by_state, optuna_storage=shown(spec.optuna_storage), study_name=spec.name,
        best_trial_id=best["trial_id"] if best else None, best_dev_wer=best["best_dev_wer"] if best else None,
        best_epoch=best["best_epoch"] if best else None, best_params=best["params"] if best else None,
        best_checkpoint=best["checkpoint"] if best else None, best_machine=best["machine"] if best else None,
        wall_seconds=wall_seconds,
        mlflow=dict(tracking_uri=spec.tracking_uri, experiment=tracker.experiment_name if tracker else None,
                    experiment_id=tracker.experiment_id if tracker else None,
                    parent_run_id=tracker.parent_id if tracker else None,
                    best_run_id=tracker.children.get(best["trial_id"]) if tracker and best else None),
        trials=rows,
    )
    if optuna.trial.TrialState.COMPLETE in {t.state for t in study.trials} and len(study.directions) == 1:
        summary["optuna_best_value"] = study.best_value  # (a multi-objective study has a front instead: pareto)
    if spec.objectives:
        summary["objectives"] = [dict(metric=o.metric, mode=o.mode) for o in spec.objectives]
        summary["pareto"] = pareto_front(spec, rows)
    return summary, curves


def objective_values(spec: ExperimentSpec, row: dict[str, Any]) -> list[float | None]:
    """A summary row's value of each objective: its best dev WER, and its costs."""
    return [row["best_dev_wer"] if o.metric == METRIC else row.get("costs", {}).get(o.metric) for o in spec.objectives]


def pareto_front(spec: ExperimentSpec, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The trials no other trial beats on every objective (among those with a dev WER and every cost; a trial ASHA
    stopped early is on it with the dev WER it reached), cheapest first by the first cost."""
    modes = [o.mode for o in spec.objectives]
    candidates = [r for r in rows if all(v is not None and v == v for v in objective_values(spec, r))]
    on = front([oriented(objective_values(spec, r), modes) for r in candidates])
    cost = spec.costs[0]
    members = sorted((candidates[i] for i in on), key=lambda r: (r["costs"][cost], r["best_dev_wer"]))
    return [dict(trial_id=r["trial_id"], status=r["status"], best_dev_wer=r["best_dev_wer"], costs=r["costs"],
                 params=r["params"]) for r in members]


def _costs(values: dict[str, Any]) -> dict[str, float]:
    """The ``cost_*`` entries of a trial's report or of its Optuna record, by cost name."""
    return {k[len(COST_PREFIX):]: float(v) for k, v in values.items() if k.startswith(COST_PREFIX)}


def with_rerank(summary: dict[str, Any], stage: dict[str, Any], run_ids: dict[str, str]) -> dict[str, Any]:
    """The summary with the re-ranking stage's record (tune.rerank.results) and its winner as the sweep's best:
    ``best_dev_wer`` is then the winner's mean over its new seeds, ``best_run`` the run its exported config
    retrains; the search's own best stays as ``search_best``."""
    summary = {**summary, "rerank": stage, "search_best": {k: summary[k] for k in (
        "best_trial_id", "best_dev_wer", "best_epoch", "best_params", "best_checkpoint")}}
    winner, run = next((c for c in stage["candidates"] if c["trial_id"] == stage["winner"]), None), stage["best_run"]
    if winner is None or run is None:
        return summary  # no candidate finished a run: the search's best stays the best
    summary.update(best_trial_id=winner["trial_id"], best_dev_wer=winner["mean_dev_wer"],
                   best_epoch=run["best_epoch"], best_params=winner["params"], best_checkpoint=run["checkpoint"],
                   best_machine=run["machine"], best_run=run)
    summary["mlflow"] = {**summary["mlflow"], "best_run_id": run_ids.get(run["trial_id"])}
    return summary


def write(spec: ExperimentSpec, summary: dict[str, Any], curves: dict[str, list],
          tracker: SweepTracker | None) -> dict[str, Any]:
    """summary.json, curves.json, trials.csv and best_config.yaml (the best trial's full config; after a re-rank,
    the winner's with the training seed of its best run); mirrored to a URI storage; the MLflow runs closed."""
    sweep_dir = spec.sweep_dir
    (sweep_dir / "summary.json").write_text(json.dumps(summary, indent=2, default=str))
    (sweep_dir / "curves.json").write_text(json.dumps(curves))
    files = {"summary": sweep_dir / "summary.json",
             "trials": _write_csv(sweep_dir / "trials.csv", summary["trials"], spec)}
    if summary["best_trial_id"]:
        params = (summary.get("best_run") or {}).get("params") or summary["best_params"]
        cfg = trial_config(spec.base_config().to_dict(), params, spec.max_epochs)
        (sweep_dir / "best_config.yaml").write_text(cfg.to_yaml())
        files["best_config"] = sweep_dir / "best_config.yaml"
    if summary.get("rerank"):
        (sweep_dir / "rerank.json").write_text(json.dumps(summary["rerank"], indent=2, default=str))
        files["rerank"] = sweep_dir / "rerank.json"
    if summary.get("pareto") is not None:
        files["pareto"] = _write_pareto_csv(sweep_dir / "pareto.csv", summary, spec)
    if spec.remote:
        storage.upload(sweep_dir, spec.sweep_uri)
    if tracker:
        tracker.finish(summary, files)
    return summary


def _told_best(t) -> tuple[float, int | None]:  # noqa: ANN001 -- an optuna FrozenTrial
    """A trial's best dev WER and its epoch as the study recorded them (for trials whose Ray reports are gone)."""
    if "best_dev_wer" in t.user_attrs:  # OptunaSearcher.on_trial_result records both as they change
        return float(t.user_attrs["best_dev_wer"]), t.user_attrs.get("best_epoch")
    values = intermediate(t)
    if not values:
        return math.nan, None
    epoch = min(values, key=lambda e: values[e])
    return float(values[epoch]), epoch


def best_checkpoint(result, spec: ExperimentSpec) -> str | None:  # noqa: ANN001 -- a ray.tune.Result
    """The trial's best checkpoint: a local path, or a URI under a remote storage_path."""
    try:
        from ray.train._internal.storage import _exists_at_fs_path
        # the state lists checkpoints CheckpointRetention deleted after Ray's final save: only existing ones
        pairs = [(m.get(METRIC), c.path) for c, m in result.best_checkpoints
                 if m.get(METRIC) is not None and _exists_at_fs_path(c.filesystem, c.path)]
    except Exception:  # noqa: BLE001 -- a trial without checkpoints
        return None
    if not pairs:
        return None
    path = min(pairs)[1]
    return storage.uri_of(spec.storage_path, path) if spec.remote else path


def checkpoint_file(folder: str | Path) -> Path:
    """The trainer's checkpoint inside a trial's checkpoint folder (``last.pt``, as the trainable reports it)."""
    return Path(folder) / "last.pt"


def _curve(df) -> list[dict[str, float]]:  # noqa: ANN001 -- a pandas DataFrame or None
    """A trial's per-epoch reports (the numbers the report plots), JSON-safe."""
    if df is None or not len(df):
        return []
    keys = [k for k in CURVE_KEYS if k in df]
    return [{k: float(v) for k, v in zip(keys, row) if v == v} for row in df[keys].itertuples(index=False)]


def _write_pareto_csv(path: Path, summary: dict[str, Any], spec: ExperimentSpec) -> Path:
    """Every trial's objectives and whether it is on the Pareto front (the parent MLflow run's pareto.csv)."""
    import csv
    on = {p["trial_id"] for p in summary["pareto"]}
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["trial_id", "status", "on_front", *(o.metric for o in spec.objectives), *spec.space])
        for r in summary["trials"]:
            w.writerow([r["trial_id"], r["status"], int(r["trial_id"] in on), *objective_values(spec, r),
                        *(r["params"].get(k) for k in spec.space)])
    return path


def _write_csv(path: Path, rows: list[dict[str, Any]], spec: ExperimentSpec) -> Path:
    import csv
    keys = ["trial_id", "status", "best_dev_wer", "best_epoch", "epochs", *spec.space]
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(keys)
        for r in rows:
            w.writerow([r["trial_id"], r["status"], r["best_dev_wer"], r["best_epoch"], r["epochs"],
                        *(r["params"].get(k) for k in spec.space)])
    return path
