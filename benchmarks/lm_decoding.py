"""Gloss language models: their perplexity on real PHOENIX-2014 dev glosses, and what beam search fused with one
does to a sweep winner's WER (greedy vs beam vs beam + LM, the LM settings tuned on dev by tune.decoding).

Perplexity: the LM (slr.lm, interpolated absolute discounting) trained on the PHOENIX-2014 train ground truth,
scored on the dev ground truth (a gloss unseen in train counts as ``<unk>``), for orders 1 (the add-one unigram) to
4. Decoding (``--sweep DIR``, a finished sweep): dev WER of each decoding, and test WER of each (this benchmark
looks at test three times, outside the sweep's lockbox: it measures the decoders, it does not pick a model).
Writes benchmarks/results/lm_decoding.json and a section of docs/benchmarks.md.

    python -m benchmarks.lm_decoding --phoenix ../shared/data/phoenix2014 --sweep sweeps/quickstart --trials 30
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from benchmarks._common import ROOT, save, set_command, write_section


def perplexities(phoenix: Path, orders: tuple[int, ...] = (1, 2, 3, 4)) -> dict[str, Any]:
    from slr.corpus.annotations import read_annotations
    from slr.lm import UNK, train_lm
    train = [list(a.glosses) for a in read_annotations(phoenix / "phoenix2014-groundtruth-train.stm")]
    dev = [list(a.glosses) for a in read_annotations(phoenix / "phoenix2014-groundtruth-dev.stm")]
    vocab = [UNK, *sorted({g for s in train for g in s})]
    seen = set(vocab)
    return dict(train_sentences=len(train), dev_sentences=len(dev), vocab=len(vocab) - 1,
                dev_oov_tokens=sum(g not in seen for s in dev for g in s), dev_tokens=sum(map(len, dev)),
                perplexity={n: train_lm(train, vocab, order=n).perplexity(dev) for n in orders})


def decodings(sweep: Path, trials: int) -> dict[str, Any]:
    import json

    from slr.config import Config
    from slr.evaluate import evaluate_checkpoint
    from tune.decoding import tune_decode
    tuned = tune_decode(sweep, trials=trials, progress=False)
    summary = json.loads((sweep / "summary.json").read_text())
    checkpoint = Path(summary["best_checkpoint"]) / "last.pt"
    base = Config.load(sweep / "best_config.yaml")
    settings = {"greedy": {"decode.method": "greedy"},
                "beam": {"decode.method": "beam", "decode.beam_width": tuned["beam_width"]},
                "beam + LM": {f"decode.{k}": tuned[k] for k in ("method", "beam_width", "lm_weight", "lm_bonus",
                                                                 "lm_path")}}
    out = {}
    for name, over in settings.items():
        decode = base.override(over).decode
        out[name] = {split: evaluate_checkpoint(checkpoint, summary["corpus"], split, decode=decode)["wer"]
                     for split in ("dev", "test")}
    keys = ("beam_width", "lm_weight", "lm_bonus", "trials", "lm_order", "lm_dev_perplexity")
    return dict(sweep=str(sweep), tuned={k: tuned[k] for k in keys}, wer=out)


def render(r: dict[str, Any]) -> str:
    parts = ["### Gloss language models and beam search fused with one\n"]
    if p := r.get("perplexity"):
        rows = "\n".join(f"| {n} | {v:.1f} |" for n, v in p["perplexity"].items())
        parts.append(f"""Perplexity on the real PHOENIX-2014 dev ground truth ({p['dev_sentences']} sentences, {p['dev_tokens']}
glosses, {p['dev_oov_tokens']} unseen in train and scored as `<unk>`) of the LM trained on the train ground truth
({p['train_sentences']} sentences, {p['vocab']} glosses); every sentence end is a predicted token:

| order | dev perplexity |
|---|---|
{rows}

Order 1 is the add-one unigram model, the baseline an n-gram LM is measured against.""")
    for d in r.get("decoding", []):
        rows = "\n".join(f"| {name} | {100 * w['dev']:.2f} % | {100 * w['test']:.2f} % |" for name, w in d["wer"].items())
        t = d["tuned"]
        parts.append(f"""
The winner of `{d['sweep']}`, decoded three ways (the LM: order {d['tuned']['lm_order']} on the corpus's train split; its settings tuned on
dev by `slr tune-decode`, {t['trials']} Optuna trials: beam {t['beam_width']}, LM weight {t['lm_weight']:.2f}, bonus
{t['lm_bonus']:.2f}; LM dev perplexity {t['lm_dev_perplexity']:.1f}):

| decoding | dev WER | test WER |
|---|---|---|
{rows}""")
    return "\n".join(parts)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--phoenix", type=Path, help="folder of the PHOENIX-2014 ground-truth .stm files")
    ap.add_argument("--sweep", type=Path, action="append", default=[],
                    help="a finished sweep whose winner is decoded (repeat for several)")
    ap.add_argument("--trials", type=int, default=30)
    ap.add_argument("--doc", type=Path, default=ROOT / "docs" / "benchmarks.md")
    ap.add_argument("--results", type=Path, default=None)
    args = ap.parse_args(argv)
    set_command(__file__, argv)
    result: dict[str, Any] = {}
    if args.phoenix:
        result["perplexity"] = perplexities(args.phoenix)
    if args.sweep:
        result["decoding"] = [decodings(sweep, args.trials) for sweep in args.sweep]
    if not result:
        ap.error("give --phoenix, --sweep or both")
    path = save("lm_decoding", result, args.results)
    write_section(args.doc, "lm_decoding", render(result))
    print(render(result))
    print(f"\nwrote {path} and the lm_decoding section of {args.doc}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
