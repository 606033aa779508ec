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
from tune.search import open_study, shown
from tune.tracking import SweepTracker
from tune.trainable import trial_config
from tune.trials import CURVE_KEYS, METRIC, STATUSES, best_first, status_of, status_of_state


def summarize(spec: ExperimentSpec, grid, tracker: SweepTracker | None,  # noqa: ANN001
              wall_seconds: float, study=None) -> dict[str, Any]:  # noqa: ANN001 -- a ResultGrid, an optuna.Study
    """summary.json + trials.csv + best_config.yaml; the best trial by its best dev WER over epochs."""
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
            epochs = max(epochs, max(told[trial_id].intermediate_values, default=0))
        params = result.config or (told[trial_id].params if trial_id in told else {})
        rows.append(dict(trial_id=trial_id, number=number.get(trial_id), path=result.path, status=status,
                         best_dev_wer=best, best_epoch=best_epoch, epochs=epochs,
                         params={k: params.get(k) for k in spec.space},
                         checkpoint=_best_checkpoint(result, spec),
                         machine={k[len("machine_"):]: v for k, v in (result.metrics or {}).items()
                                  if k.startswith("machine_")}))
        curves[trial_id] = _curve(df)
    for trial_id, t in told.items():  # told, but never in a state Ray saved (the driver was killed first)
        if trial_id and trial_id not in curves:
            best, best_epoch = _told_best(t)
            rows.append(dict(trial_id=trial_id, number=t.number, path=None, status=status_of_state(t.state.name),
                             best_dev_wer=best, best_epoch=best_epoch, epochs=max(t.intermediate_values, default=0),
                             params={k: t.params.get(k) for k in spec.space}, checkpoint=None, machine={}))
            curves[trial_id] = []
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
    if optuna.trial.TrialState.COMPLETE in {t.state for t in study.trials}:
        summary["optuna_best_value"] = study.best_value
    (sweep_dir / "summary.json").write_text(json.dumps(summary, indent=2, default=str))
    (sweep_dir / "curves.json").write_text(json.dumps(curves))
    files = {"summary": sweep_dir / "summary.json", "trials": _write_csv(sweep_dir / "trials.csv", rows, spec)}
    if best:
        base = spec.base_config().to_dict()
        cfg = trial_config(base, best["params"], spec.max_epochs)
        (sweep_dir / "best_config.yaml").write_text(cfg.to_yaml())
        files["best_config"] = sweep_dir / "best_config.yaml"
    if spec.remote:
        storage.upload(sweep_dir, spec.sweep_uri)
    if tracker:
        tracker.finish(summary, files)
    return summary


def _told_best(t) -> tuple[float, int | None]:  # noqa: ANN001 -- an optuna FrozenTrial
    """A trial's best dev WER and its epoch as the study recorded them (for trials whose Ray reports are gone)."""
    if "best_dev_wer" in t.user_attrs:  # OptunaSearcher.on_trial_result records both as they change
        return float(t.user_attrs["best_dev_wer"]), t.user_attrs.get("best_epoch")
    if not t.intermediate_values:
        return math.nan, None
    epoch = min(t.intermediate_values, key=lambda e: t.intermediate_values[e])
    return float(t.intermediate_values[epoch]), epoch


def _best_checkpoint(result, spec: ExperimentSpec) -> str | None:
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


def _curve(df) -> list[dict[str, float]]:  # noqa: ANN001 -- a pandas DataFrame or None
    """A trial's per-epoch reports (the numbers the report plots), JSON-safe."""
    if df is None or not len(df):
        return []
    keys = [k for k in CURVE_KEYS if k in df]
    return [{k: float(v) for k, v in zip(keys, row) if v == v} for row in df[keys].itertuples(index=False)]


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
