"""Best trial -> a complete, reproducible training config with provenance."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from slr.checkpoint import code_version
from slr.config import Config


def export_best(sweep_dir: Path, out: str | Path, register: str | None = None) -> Path:
    """Write the best trial's full resolved config (not only the searched keys) plus provenance."""
    summary_path = sweep_dir / "summary.json"
    if not summary_path.exists():
        raise FileNotFoundError(f"{summary_path} missing: the sweep has not finished (slr sweep status)")
    summary = json.loads(summary_path.read_text())
    if not summary.get("best_trial_id"):
        raise ValueError(f"sweep {summary['sweep']} has no trial with a dev WER to export")
    cfg = Config.load(sweep_dir / "best_config.yaml")
    doc = cfg.to_dict()
    machine = summary.get("best_machine") or {}
    doc["provenance"] = dict(
        sweep=summary["sweep"], sweep_dir=summary.get("storage") or str(sweep_dir), trial_id=summary["best_trial_id"],
        mlflow_tracking_uri=summary["mlflow"]["tracking_uri"], mlflow_run_id=summary["mlflow"]["best_run_id"],
        mlflow_parent_run_id=summary["mlflow"]["parent_run_id"], dev_wer=summary["best_dev_wer"],
        epoch=summary["best_epoch"], checkpoint=summary.get("best_checkpoint"), code_version=code_version(),
        searched=summary["best_params"],
        # what the trial ran on: `slr train --config` warns when its torch or CPU kernels differ (then the
        # retrain is a close run, not the same run); on CUDA it never is bit for bit
        machine=machine,
        reproduces=("within a tolerance: CUDA kernels are nondeterministic" if "cuda" in machine
                    else "exactly on CPU with the same torch, CPU kernels and train.num_threads"),
    )
    doc["provenance"].update(_rerank_provenance(summary))  # the re-ranked winner's run, and every seed's result
    if register:
        doc["provenance"]["registered_model"] = _register(summary, register)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(f"# exported by `slr export {summary['sweep']}`; retrain: slr train --config {out.name} "
                   "--out runs/best\n" + yaml.safe_dump(doc, sort_keys=False))
    return out


def _rerank_provenance(summary: dict) -> dict:
    """After a re-rank: the config is the winner's with its best run's training seed; record every seed's result."""
    stage, run = summary.get("rerank"), summary.get("best_run")
    if not stage or not run:
        return {}
    winner = next(c for c in stage["candidates"] if c["trial_id"] == stage["winner"])
    return dict(dev_wer=run["best_dev_wer"], trial_id=run["trial_id"], rerank=dict(
        candidate=winner["trial_id"], mean_dev_wer=winner["mean_dev_wer"], std_dev_wer=winner["std_dev_wer"],
        seeds=winner["seeds"], dev_wers=winner["dev_wers"], run_ids=winner["runs"],
        search_dev_wer=summary["search_best"]["best_dev_wer"], search_trial_id=summary["search_best"]["best_trial_id"],
        candidates={c["trial_id"]: c["mean_dev_wer"] for c in stage["candidates"]}))


def _register(summary: dict, name: str) -> str:
    """Log the best checkpoint as an artifact of its run and register it as a model version."""
    from mlflow.tracking import MlflowClient
    client = MlflowClient(tracking_uri=summary["mlflow"]["tracking_uri"])
    run_id, ckpt = summary["mlflow"]["best_run_id"], summary.get("best_checkpoint")
    if not run_id or not ckpt:
        raise ValueError("the best trial has no MLflow run or checkpoint to register")
    from tune import storage
    if storage.is_uri(ckpt):  # on S3 with the sweep: fetch it first
        import tempfile
        ckpt = str(storage.fetch_dir(ckpt, Path(tempfile.mkdtemp(prefix="slr-ckpt-"))))
    client.log_artifacts(run_id, ckpt, artifact_path="checkpoint")
    try:
        client.create_registered_model(name)
    except Exception:  # noqa: BLE001 -- already registered
        pass
    version = client.create_model_version(name, f"runs:/{run_id}/checkpoint", run_id=run_id)
    return f"{name}/{version.version}"
