"""``slr tune-decode SWEEP``: the winner's decoding tuned after training, on cached posteriors.

The winner's dev log-probs are computed once (``<sweep>/decode_cache.npz``); a gloss n-gram LM is trained on the
train split's gloss sequences (``<sweep>/gloss_lm.json``, ``decode.lm_order`` / ``decode.lm_discount`` of the
winner's config); an Optuna study (same storage as the sweep, its own study name ``<sweep>-decode``) searches beam
width, LM weight and insertion bonus for the lowest dev WER. Its first trial is the plain beam (LM weight 0, no
bonus), so the tuned setting is never worse on dev than beam search without an LM. The result
(``<sweep>/decode.json``) goes into the exported config (``slr export``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

from slr.checkpoint import sha256

DECODE = "decode.json"
CACHE = "decode_cache.npz"
LM_FILE = "gloss_lm.json"


def posteriors(checkpoint: Path, corpus: str, split: str = "dev") -> tuple[list[np.ndarray], list[list[str]], Any]:
    """Every sample's log-probs ``[T, V]`` (float32) and references on ``split``, and the model's vocabulary."""
    from slr import checkpoint as ckpt_io
    from slr.config import Config
    from slr.corpus import Corpus
    from slr.data import BucketBatchSampler, SignDataset
    from slr.evaluate import load_model, loader, log_probs_of
    state = ckpt_io.load(checkpoint)
    cfg = Config.from_dict(state["config"], source=str(checkpoint))
    _, vocab, features, model = load_model(checkpoint, state=state)
    dataset = SignDataset(Corpus(corpus), split, vocab, cfg.data.max_frames, model.input_frames)
    by_id = {s.id: s for s in dataset.samples}
    sampler = BucketBatchSampler(dataset.lengths(), cfg.data.batch_size, 1, 0, shuffle=False)
    out, refs = [], []
    with torch.no_grad():
        for batch in loader(dataset, sampler):
            lp = log_probs_of(features, model, batch, torch.device("cpu"))  # [T, B, V] (T/4 for vac)
            for b, (sample_id, n) in enumerate(zip(batch.ids, model.output_lengths(batch.lengths).tolist())):
                out.append(lp[:n, b].numpy().copy())
                refs.append(list(by_id[sample_id].glosses))
    return out, refs, vocab


def _cached(sweep_dir: Path, checkpoint: Path, corpus: str) -> tuple[list[np.ndarray], list[list[str]], Any]:
    """The posteriors, computed once per checkpoint (its SHA-256 names the cache)."""
    from slr.corpus import Corpus
    digest = sha256(checkpoint)
    path = sweep_dir / CACHE
    if path.exists():
        with np.load(path, allow_pickle=False) as z:
            if str(z["digest"]) == digest:
                lps = [z[f"lp{i}"] for i in range(int(z["count"]))]
                refs = json.loads(str(z["refs"]))
                return lps, refs, Corpus(corpus).vocab
    lps, refs, vocab = posteriors(checkpoint, corpus)
    np.savez(path, digest=digest, count=len(lps), refs=json.dumps(refs), **{f"lp{i}": a for i, a in enumerate(lps)})
    return lps, refs, vocab


def tune_decode(sweep_dir: Path, trials: int = 30, beams: tuple[int, ...] = (4, 8, 16), seed: int = 0,
                progress: bool = True) -> dict[str, Any]:
    """Tune the winner's decoding; returns (and writes) ``decode.json``."""
    import optuna

    from slr.config import Config
    from slr.corpus import Corpus
    from slr.decode import greedy, lm_beam_search
    from slr.lm import train_lm
    from slr.metrics import score
    from tune.report import load_spec
    from tune.summary import checkpoint_file
    summary = json.loads((sweep_dir / "summary.json").read_text()) if (sweep_dir / "summary.json").exists() else None
    if not summary or not summary.get("best_checkpoint"):
        raise FileNotFoundError(f"{sweep_dir}: no finished sweep with a best checkpoint to tune decoding for")
    checkpoint = checkpoint_file(summary["best_checkpoint"])
    if not checkpoint.exists():
        raise FileNotFoundError(f"{checkpoint}: the winner's checkpoint is not on this machine")
    spec, corpus = load_spec(sweep_dir), summary["corpus"]
    cfg = Config.load(sweep_dir / "best_config.yaml").decode
    lps, refs, vocab = _cached(sweep_dir, checkpoint, corpus)
    labels = vocab.to_list()
    train = [list(s.glosses) for s in Corpus(corpus).split("train")]
    lm = train_lm(train, labels[1:], cfg.lm_order, cfg.lm_discount)
    lm_path = lm.save(sweep_dir / LM_FILE)

    def wer(hyps: list[list[int]]) -> float:
        return score(refs, [vocab.decode(h) for h in hyps], cfg.scorer)["wer"]
    greedy_wer = wer([[t.id for t in greedy(lp)] for lp in lps])

    def objective(trial: optuna.Trial) -> float:
        beam = trial.suggest_categorical("beam_width", list(beams))
        weight = trial.suggest_float("lm_weight", 0.0, 2.0)
        bonus = trial.suggest_float("lm_bonus", -2.0, 3.0)
        return wer([lm_beam_search(lp, labels, lm, weight, bonus, beam) for lp in lps])

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(study_name=f"{spec.name}-decode", storage=spec.optuna_storage, direction="minimize",
                                sampler=optuna.samplers.TPESampler(seed=seed), load_if_exists=True)
    if not study.trials:  # the plain beam first: the tuned setting can only improve on it
        study.enqueue_trial({"beam_width": 8 if 8 in beams else beams[0], "lm_weight": 0.0, "lm_bonus": 0.0})
    left = max(0, trials - len([t for t in study.trials if t.state.is_finished()]))
    callbacks = [_progress(trials)] if progress else []
    study.optimize(objective, n_trials=left, callbacks=callbacks)
    plain = next(t.value for t in study.trials if t.params.get("lm_weight") == 0.0 and t.value is not None)
    best = study.best_trial
    result = dict(method="beam_lm", beam_width=best.params["beam_width"], lm_weight=best.params["lm_weight"],
                  lm_bonus=best.params["lm_bonus"], lm_path=str(lm_path), lm_order=cfg.lm_order,
                  lm_discount=cfg.lm_discount, dev_wer=best.value, greedy_dev_wer=greedy_wer, beam_dev_wer=plain,
                  trials=len(study.trials), study=study.study_name, checkpoint=str(checkpoint),
                  lm_dev_perplexity=lm.perplexity(refs), samples=len(lps))
    (sweep_dir / DECODE).write_text(json.dumps(result, indent=2))
    return result


def _progress(total: int):  # noqa: ANN202
    def callback(study, trial) -> None:  # noqa: ANN001
        print(f"  decode trial {trial.number + 1}/{total}: beam {trial.params.get('beam_width')}, LM weight "
              f"{trial.params.get('lm_weight', 0):.2f}, bonus {trial.params.get('lm_bonus', 0):.2f} -> dev WER "
              f"{100 * trial.value:.2f}% (best {100 * study.best_value:.2f}%)", flush=True)
    return callback
