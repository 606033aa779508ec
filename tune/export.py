"""Best trial -> a complete, reproducible training config with provenance."""

from __future__ import annotations

import json
import math
import sys
import tempfile
from pathlib import Path

import yaml

from slr.checkpoint import code_version
from slr.config import Config


def export_best(sweep_dir: Path, out: str | Path, register: str | None = None, test_split: bool = True,
                incomplete: bool = False, budget: dict[str, float] | None = None) -> Path:
    """Write the best trial's full resolved config (not only the searched keys) plus provenance; with
    ``test_split``, the winner's test WER (:func:`score_test`: one more look at the lockbox) goes with it.
    ``incomplete``: a sweep that has not finished (interrupted, or still running) exports its best finished trial
    so far, from its Optuna study, marked as such; no test look and no registration (its winner may change)."""
    summary_path = sweep_dir / "summary.json"
    if summary_path.exists():
        summary = json.loads(summary_path.read_text())
        cfg = Config.load(sweep_dir / "best_config.yaml") if summary.get("best_trial_id") else None
    elif incomplete:
        if register:
            raise ValueError("--register needs a finished sweep: its winner may still change")
        summary, cfg = _so_far(sweep_dir)
        test_split = False
    else:
        raise FileNotFoundError(f"{summary_path} missing: the sweep has not finished (slr sweep status); "
                                "`slr export ... --incomplete` exports its best finished trial so far")
    if not summary.get("best_trial_id"):
        raise ValueError(f"sweep {summary['sweep']} has no trial with a dev WER to export")
    if budget:
        summary, cfg = _within(sweep_dir, summary, budget)
    decode = _tuned_decoding(sweep_dir)
    if decode:
        cfg = cfg.override({f"decode.{k}": decode[k] for k in ("method", "beam_width", "lm_weight", "lm_bonus",
                                                                "lm_path", "lm_order", "lm_discount")})
    doc = cfg.to_dict()
    if cfg.train.teacher:  # `slr train --config` refuses a teacher that changed since (slr.teacher)
        from slr.checkpoint import sha256
        doc["train"]["teacher_sha256"] = sha256(cfg.train.teacher)
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
    if decode:
        doc["provenance"]["decode"] = {k: decode[k] for k in ("dev_wer", "greedy_dev_wer", "beam_dev_wer", "trials",
                                                              "study", "lm_dev_perplexity")}
    doc["provenance"].update(_rerank_provenance(summary))  # the re-ranked winner's run, and every seed's result
    if "incomplete" in summary:
        doc["provenance"]["incomplete"] = summary["incomplete"]
    if budget:
        doc["provenance"]["budget"] = dict(budget)
        doc["provenance"]["costs"] = summary["best_costs"]
    if test_split and (test := score_test(sweep_dir, summary, cfg.decode)):
        doc["provenance"]["test"] = test
        _record_test(sweep_dir, summary, test)
    if register:
        doc["provenance"]["registered_model"] = _register(summary, register)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(f"# exported by `slr export {summary['sweep']}`; retrain: slr train --config {out.name} "
                   "--out runs/best\n" + yaml.safe_dump(doc, sort_keys=False))
    return out


def _within(sweep_dir: Path, summary: dict, budget: dict[str, float]) -> tuple[dict, Config]:
    """The summary seen from the best-dev-WER trial whose costs are all within ``budget`` ({cost: max}), and that
    trial's config: the trials' own records (a re-rank, which retrains other candidates, does not apply)."""
    from tune.report import load_spec
    from tune.trainable import trial_config
    from tune.trials import best_first
    rows = [r for r in summary["trials"] if r["best_dev_wer"] is not None and r["best_dev_wer"] == r["best_dev_wer"]]
    for cost in budget:
        if not any(cost in r.get("costs", {}) for r in rows):
            objectives = [o["metric"] for o in summary.get("objectives", [])] or ["dev_wer"]
            raise ValueError(f"sweep {summary['sweep']} measured no {cost}: its objectives are {objectives} (add "
                             f"{{metric: {cost}, mode: min}} to the experiment's objectives)")
    fits = [r for r in rows if all(r["costs"].get(c, math.inf) <= limit for c, limit in budget.items())]
    if not fits:
        cost = next(iter(budget))
        cheapest = min((r for r in rows if cost in r["costs"]), key=lambda r: r["costs"][cost])
        wanted = ", ".join(f"{c} <= {limit:g}" for c, limit in budget.items())
        raise ValueError(f"no trial of sweep {summary['sweep']} is within {wanted}: the cheapest by {cost} is trial "
                         f"{cheapest['trial_id']} ({', '.join(f'{c} {v:g}' for c, v in cheapest['costs'].items())}; "
                         f"dev WER {100 * cheapest['best_dev_wer']:.2f}%)")
    chosen = best_first(fits, lambda r: r["best_dev_wer"],
                        lambda r: math.inf if r.get("number") is None else r["number"])[0]
    spec = load_spec(sweep_dir)
    cfg = trial_config(spec.base_config().to_dict(), chosen["params"], spec.max_epochs)
    view = {k: v for k, v in summary.items() if k not in ("rerank", "best_run", "search_best")}
    view.update(best_trial_id=chosen["trial_id"], best_dev_wer=chosen["best_dev_wer"],
                best_epoch=chosen["best_epoch"], best_params=chosen["params"], best_checkpoint=chosen["checkpoint"],
                best_machine=chosen.get("machine") or {}, best_costs=chosen["costs"],
                mlflow={**summary["mlflow"], "best_run_id": chosen.get("mlflow_run_id")})
    return view, cfg


def _so_far(sweep_dir: Path) -> tuple[dict, Config]:
    """An unfinished sweep's summary so far and its best finished trial's config, from the Optuna study alone
    (committed at every report; Ray's saved state may lag a killed driver). Writes nothing: no summary.json, so
    the sweep still reads as unfinished and ``--resume`` goes on."""
    from tune.report import load_spec
    from tune.search import open_study
    from tune.summary import summarize
    from tune.trainable import trial_config
    spec = load_spec(sweep_dir)
    study = open_study(spec)
    summary, _ = summarize(spec, [], None, wall_seconds=0.0, study=study)
    finished = sum(t.state.is_finished() for t in study.trials)
    summary["incomplete"] = (f"exported from an unfinished sweep: {finished} of {spec.num_trials} trials had "
                             "finished; the best of those")
    cfg = (trial_config(spec.base_config().to_dict(), summary["best_params"], spec.max_epochs)
           if summary.get("best_trial_id") else None)
    return summary, cfg


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


def _record_test(sweep_dir: Path, summary: dict, test: dict) -> None:
    """The test result in summary.json and on the sweep's parent MLflow run (best effort: the file is the record)."""
    summary["test"] = test
    (sweep_dir / "summary.json").write_text(json.dumps(summary, indent=2, default=str))
    parent = (summary.get("mlflow") or {}).get("parent_run_id")
    if not parent:
        return
    try:
        from mlflow.tracking import MlflowClient
        client = MlflowClient(tracking_uri=summary["mlflow"]["tracking_uri"])
        client.log_metric(parent, "test_wer", float(test["wer"]), step=test["looks"])
        client.set_tag(parent, "slr.test_looks", str(test["looks"]))
    except Exception as err:  # noqa: BLE001 -- an unreachable server must not lose the export
        print(f"slr: warning: the test WER is in {sweep_dir / 'summary.json'} but not on the MLflow parent run "
              f"({type(err).__name__})", file=sys.stderr)


def _register(summary: dict, name: str) -> str:
    """Log the winner as an MLflow Model of its run and register it as a version of ``name``: the ONNX export of
    its best checkpoint (``features [1, T, D] -> log_probs [T, 1, V]``, with that signature) and, as artifacts
    of the model, the vocabulary (``vocab.json``) and the feature layout (``features.json``: the checkpoint's
    feature config and the columns each modality reads). The checkpoint itself goes under ``checkpoint/`` of the
    run, loadable by ``slr eval`` / ``slr decode``, which also compute the features the model takes."""
    import mlflow
    from mlflow.tracking import MlflowClient
    uri, run_id, ckpt = summary["mlflow"]["tracking_uri"], summary["mlflow"]["best_run_id"], summary.get("best_checkpoint")
    if not run_id or not ckpt:
        raise ValueError("the best trial has no MLflow run or checkpoint to register")
    ckpt = _local(ckpt)
    client = MlflowClient(tracking_uri=uri)
    client.log_artifacts(run_id, ckpt, artifact_path="checkpoint")
    with tempfile.TemporaryDirectory(prefix="slr-model-") as tmp:
        from tune.summary import checkpoint_file
        onnx_model, signature, extra = _onnx_model(checkpoint_file(ckpt), Path(tmp))
        status = client.get_run(run_id).info.status
        mlflow.set_tracking_uri(uri)
        with mlflow.start_run(run_id=run_id):  # the model belongs to the winner's own run
            info = mlflow.onnx.log_model(onnx_model, name="model", signature=signature, extra_files=extra,
                                         pip_requirements=["onnxruntime", "onnx"], registered_model_name=name,
                                         metadata={"slr.sweep": summary["sweep"]})
        client.set_terminated(run_id, status=status)  # as it was (start_run reopened it)
    return f"{name}/{info.registered_model_version}"


def _local(ckpt: str) -> str:
    """A trial's checkpoint folder on this machine: one on a URI storage (S3 with the sweep) is fetched first."""
    from tune import storage
    if storage.is_uri(ckpt):
        return str(storage.fetch_dir(ckpt, Path(tempfile.mkdtemp(prefix="slr-ckpt-"))))
    return ckpt


def _onnx_model(path: Path, tmp: Path):  # noqa: ANN202 -- (onnx.ModelProto, ModelSignature, list[str])
    """The checkpoint's ONNX export, its tensor signature, and the vocabulary and feature-layout files."""
    import numpy as np
    import onnx
    from mlflow.models import ModelSignature
    from mlflow.types import Schema, TensorSpec

    from slr.evaluate import load_model
    from slr.onnx_runtime import INPUT, OUTPUT, export, input_dim
    cfg, vocab, features, model = load_model(path)
    exported = export(model, tmp / "model.onnx")
    dim = input_dim(model)
    signature = ModelSignature(inputs=Schema([TensorSpec(np.dtype(np.float32), (1, -1, dim), INPUT)]),
                               outputs=Schema([TensorSpec(np.dtype(np.float32), (-1, 1, len(vocab)), OUTPUT)]))
    (tmp / "vocab.json").write_text(json.dumps(vocab.to_list()))
    (tmp / "features.json").write_text(json.dumps(dict(
        input=INPUT, input_dim=dim, output=OUTPUT, blank_index=0, config=cfg.to_dict()["features"],
        modalities={name: [int(i) for i in enc.index] for name, enc in model.encoders.items()},
        note="features come from the landmarks through slr's FeaturePipeline (its fitted statistics are in the "
             "run's checkpoint/): slr.evaluate.load_model(checkpoint) returns it"), indent=1))
    return onnx.load(str(exported)), signature, [str(tmp / "vocab.json"), str(tmp / "features.json")]


LOCKBOX = "lockbox.json"  # every look at a sweep's test split: when, which checkpoint, the result


def _tuned_decoding(sweep_dir: Path) -> dict | None:
    """``slr tune-decode``'s result for this sweep's winner, if it was run for the current winner."""
    from tune.decoding import DECODE
    path = sweep_dir / DECODE
    return json.loads(path.read_text()) if path.exists() else None


def score_test(sweep_dir: Path, summary: dict, decode=None) -> dict | None:  # noqa: ANN001 -- a DecodeConfig
    """The winner's test WER (with S/D/I and the scorer), computed here and nowhere else for a sweep: no trial and no
    re-rank run evaluates test (slr.train.Trainer refuses). Each call is a look at the lockbox, recorded in
    ``<sweep>/lockbox.json``; the returned record says how many looks there have been. None when the corpus has no
    test split or the winner has no checkpoint."""
    import time

    from slr.corpus import Corpus
    from slr.evaluate import evaluate_checkpoint
    ckpt = summary.get("best_checkpoint")
    corpus = summary.get("corpus")
    if not ckpt or not corpus or not Path(corpus).exists() or not Corpus(corpus).split("test"):
        return None
    from tune.summary import checkpoint_file
    model = checkpoint_file(_local(ckpt))
    if not model.exists():  # a trial that replays curves (tests) holds no model
        print(f"slr: note: {model.parent} holds no model checkpoint ({model.name}): no test WER", file=sys.stderr)
        return None
    result = evaluate_checkpoint(model, corpus, "test", decode=decode)
    path = sweep_dir / LOCKBOX
    looks = json.loads(path.read_text())["looks"] if path.exists() else []
    record = dict(trial_id=summary["best_trial_id"], checkpoint=summary.get("best_checkpoint"),
                  wer=result["wer"], substitutions=result["substitutions"], deletions=result["deletions"],
                  insertions=result["insertions"], words=result["words"], sentences=result["sentences"],
                  scorer=result["scorer"], decode=decode.method if decode else "greedy", when=time.strftime("%Y-%m-%dT%H:%M:%S%z"))
    looks.append(record)
    path.write_text(json.dumps({"looks": looks}, indent=2))
    return {**record, "looks": len(looks)}
