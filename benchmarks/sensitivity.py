"""Which of the five searched hyperparameters move dev WER most? One-at-a-time from the seed baseline.

Every run trains the same corpus for the same epoch budget (seed 0); each variant changes one
hyperparameter to a low or a high value of the quickstart search range, plus the two "bad" learning
rates the issue names. Writes benchmarks/results/sensitivity.json and a section of docs/corpus.md.

    python -m benchmarks.sensitivity --corpus corpora/quickstart --epochs 12
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

from benchmarks._common import ROOT, save, set_command, write_section

BASE = {"data.batch_size": 4, "train.warmup_epochs": 1, "train.early_stopping_patience": 0}
VARIANTS = [
    ("seed baseline", {}),
    ("learning_rate 1e-6 (bad)", {"train.learning_rate": 1e-6}),
    ("learning_rate 1e-1 (bad)", {"train.learning_rate": 1e-1}),
    ("learning_rate 3e-3", {"train.learning_rate": 3e-3}),
    ("dropout 0.0", {"model.dropout": 0.0}),
    ("dropout 0.5", {"model.dropout": 0.5}),
    ("weight_decay 1e-6", {"train.weight_decay": 1e-6}),
    ("weight_decay 1e-2", {"train.weight_decay": 1e-2}),
    ("num_blocks 2", {"model.num_blocks": 2}),
    ("num_blocks 8", {"model.num_blocks": 8}),
    ("lstm_layers 2", {"model.lstm_layers": 2}),
]
PARAM_OF = {"learning_rate": "train.learning_rate", "dropout": "model.dropout", "weight_decay": "train.weight_decay",
            "num_blocks": "model.num_blocks", "lstm_layers": "model.lstm_layers"}


def run(corpus: str, epochs: int, changes: dict) -> dict:
    from slr.config import Config
    from slr.train import NonFiniteLossError, Trainer
    cfg = Config().override({**BASE, "train.epochs": epochs, **changes})
    t0 = time.time()
    try:
        summary = Trainer(cfg.override({"data.corpus": str(corpus)})).fit()
        best = summary["best_dev_wer"]
    except NonFiniteLossError:
        best = math.nan
    return dict(best_dev_wer=best, seconds=time.time() - t0)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--corpus", default=str(ROOT / "corpora" / "quickstart"))
    p.add_argument("--epochs", type=int, default=12)
    p.add_argument("--only", type=int, default=0, help="run only the first N variants (smoke test)")
    p.add_argument("--doc", default=str(ROOT / "docs" / "corpus.md"))
    p.add_argument("--results", default=None, help="folder for the JSON (default benchmarks/results)")
    args = p.parse_args(argv)
    set_command(__file__, argv)
    import torch
    torch.set_num_threads(2)
    rows = []
    for name, changes in VARIANTS[: args.only or None]:
        r = run(args.corpus, args.epochs, changes)
        rows.append(dict(variant=name, changes=changes, **r))
        print(f"{name:28s} best dev WER {100 * r['best_dev_wer']:6.1f}%  ({r['seconds']:.0f} s)", flush=True)
    base = rows[0]["best_dev_wer"]
    spread = {}
    for param, key in PARAM_OF.items():
        wers = [r["best_dev_wer"] for r in rows if key in r["changes"] and "bad" not in r["variant"]]
        if wers:
            spread[param] = max(abs(w - base) for w in wers)
    ranking = sorted(spread, key=lambda k: -spread[k])
    save("sensitivity", dict(epochs=args.epochs, corpus=args.corpus, rows=rows, spread=spread, ranking=ranking),
         Path(args.results) if args.results else None)
    table = ["| variant | best dev WER | wall |", "|---|---|---|"]
    table += [f"| {r['variant']} | {100 * r['best_dev_wer']:.1f} % | {r['seconds']:.0f} s |" for r in rows]
    rank = ", ".join(f"{k} ({100 * spread[k]:.1f} points)" for k in ranking)
    body = (f"### One-at-a-time sensitivity ({args.epochs} epochs each, batch 4, warmup 1 epoch)\n\n"
            + "\n".join(table) + "\n\n"
            + (f"Largest change of best dev WER from the baseline, per hyperparameter (within the quickstart search "
               f"range): {rank}." if ranking else f"Only the first {len(rows)} variants were run (`--only`)."))
    write_section(Path(args.doc), "sensitivity", body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
