"""Model quality: convergence of the seed student against today's defaults, and an ablation of the levers.

Every run trains one configuration on the same corpus with ``train.epochs`` = the budget (no early stopping),
under several training seeds, in worker processes of one torch thread each, and records dev WER per epoch.

- ``curves``: the seed (its architecture, ``model.frame_skip=false``, and its hyperparameters) against the
  defaults, over a longer budget: the convergence curves before and after the blank-plateau fix.
- ``ablation``: each lever alone on top of the defaults, the seed's hyperparameters with the fix, and all levers
  combined, at a fixed budget: mean and spread of dev WER over the seeds.

Writes benchmarks/results/model_quality.json, docs/images/model_quality_curves.png and a section of
docs/model_quality.md.

    python -m benchmarks.model_quality --corpus corpora/quickstart --curve-epochs 20 --ablation-epochs 10 --seeds 3
"""

from __future__ import annotations

import argparse
import statistics
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from benchmarks._common import ROOT, save, set_command, write_section

# The seed document's fixed baseline: its architecture (no frame skip) and its hyperparameters.
SEED_HPARAMS = {"train.learning_rate": 3e-4, "train.warmup_epochs": 5.0, "model.dropout": 0.3,
                "train.weight_decay": 1e-4, "model.num_blocks": 6, "model.lstm_layers": 1}
SEED = {"model.frame_skip": False, **SEED_HPARAMS}
AUX = {"model.aux_ctc_weight": 1.0}
DISTILL = {**AUX, "train.self_distill_weight": 25.0, "train.self_distill_temperature": 8.0}  # VAC's values
# scale and translate are left out: the features' normalization (shoulder centre and width) cancels them
AUGMENT = {"augment.rotation": 10.0, "augment.shear": 0.1, "augment.speed": 0.2, "augment.frame_drop": 0.05,
           "augment.hand_dropout": 0.1}
CURVES = [("seed", SEED), ("defaults", {})]
ABLATION = [
    ("seed (architecture and hyperparameters)", SEED),
    ("seed hyperparameters + frame skip", SEED_HPARAMS),
    ("seed architecture, today's hyperparameters (lr 1e-3, warmup 1)", {"model.frame_skip": False}),
    ("seed architecture, today's hyperparameters + auxiliary CTC", {"model.frame_skip": False, **AUX}),
    ("defaults (frame skip, lr 1e-3, warmup 1)", {}),
    ("defaults + auxiliary CTC (weight 1)", AUX),
    ("defaults + auxiliary CTC + self-distillation (25, T=8)", DISTILL),
    ("defaults + augmentation", AUGMENT),
    ("defaults + all of them", {**DISTILL, **AUGMENT}),
]


def train(corpus: str, epochs: int, seed: int, changes: dict) -> dict:
    """One run; its dev WER per epoch."""
    import torch
    torch.set_num_threads(1)
    from slr.config import Config
    from slr.train import Trainer
    cfg = Config().override({**changes, "train.epochs": epochs, "train.early_stopping_patience": 0,
                             "train.seed": seed, "train.checkpoint": False})
    wers: list[float] = []
    t0 = time.time()
    Trainer(cfg.override({"data.corpus": str(corpus)}), on_epoch=lambda m, _: wers.append(m["dev_wer"])).fit()
    return dict(seed=seed, dev_wer=wers, seconds=time.time() - t0)


def run_all(corpus: str, rows: list[tuple[str, dict]], epochs: int, seeds: int, workers: int) -> list[dict]:
    jobs = [(name, changes, s) for name, changes in rows for s in range(seeds)]
    with ProcessPoolExecutor(workers) as pool:
        futures = [pool.submit(train, corpus, epochs, s, changes) for _, changes, s in jobs]
        runs = [f.result() for f in futures]
    out = []
    for name, changes in rows:
        mine = [r for (n, _, _), r in zip(jobs, runs) if n == name]
        out.append(dict(name=name, changes=changes, epochs=epochs, runs=mine))
    return out


def _at(row: dict, epoch: int) -> list[float]:
    return [r["dev_wer"][epoch - 1] for r in row["runs"]]


def _cell(values: list[float]) -> str:
    mean = 100 * statistics.mean(values)
    spread = 100 * (max(values) - min(values))
    return f"{mean:.1f} % (±{spread / 2:.1f})"


def render(curves: list[dict], ablation: list[dict], corpus: str, seeds: int) -> str:
    lines = []
    if curves:
        E = curves[0]["epochs"]
        marks = [e for e in (3, 5, 8, 10, 15, 20, 30, 40) if e <= E]
        lines += [f"### Convergence: the seed against the defaults ({Path(corpus).name}, {seeds} training seeds)", "",
                  "Mean dev WER over the seeds (± half the range) at each epoch; every run trains the full budget "
                  f"of {E} epochs (the cosine schedule spans it).", "",
                  "| run | " + " | ".join(f"epoch {e}" for e in marks) + " |",
                  "|---|" + "---|" * len(marks)]
        for row in curves:
            lines.append(f"| {row['name']} | " + " | ".join(_cell(_at(row, e)) for e in marks) + " |")
        lines += ["", "![dev WER per epoch, mean over seeds](images/model_quality_curves.png)", ""]
    if ablation:
        E = ablation[0]["epochs"]
        lines += [f"### Ablation at a {E}-epoch budget ({Path(corpus).name}, {seeds} training seeds)", "",
                  f"Mean dev WER (± half the range over the seeds) at epoch 5 and at epoch {E}, and the mean best "
                  "dev WER of the run.", "",
                  f"| configuration | epoch 5 | epoch {E} | best | minutes per run |", "|---|---|---|---|---|"]
        for row in ablation:
            best = [min(r["dev_wer"]) for r in row["runs"]]
            minutes = statistics.mean(r["seconds"] for r in row["runs"]) / 60
            lines.append(f"| {row['name']} | {_cell(_at(row, min(5, E)))} | {_cell(_at(row, E))} | "
                         f"{_cell(best)} | {minutes:.1f} |")
    return "\n".join(lines)


def plot(curves: list[dict], path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(6, 3.6))
    for row in curves:
        runs = [r["dev_wer"] for r in row["runs"]]
        epochs = range(1, len(runs[0]) + 1)
        mean = [100 * statistics.mean(v) for v in zip(*runs)]
        for r in runs:
            ax.plot(epochs, [100 * w for w in r], alpha=0.25, lw=0.8, color="C0" if row["name"] == "seed" else "C1")
        ax.plot(epochs, mean, lw=2, label=row["name"], color="C0" if row["name"] == "seed" else "C1")
    ax.set_xlabel("epoch")
    ax.set_ylabel("dev WER (%)")
    ax.set_ylim(0, 105)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--corpus", default=str(ROOT / "corpora" / "quickstart"))
    p.add_argument("--curve-epochs", type=int, default=20, help="budget of the convergence runs (0 = skip them)")
    p.add_argument("--ablation-epochs", type=int, default=10, help="budget of the ablation runs (0 = skip them)")
    p.add_argument("--seeds", type=int, default=3, help="training seeds per configuration")
    p.add_argument("--only", type=int, default=0, help="ablation: only the first N rows (smoke test)")
    p.add_argument("--workers", type=int, default=2, help="runs at once (one torch thread each)")
    p.add_argument("--doc", default=str(ROOT / "docs" / "model_quality.md"))
    p.add_argument("--plot", default=None, help="curves PNG (default docs/images/model_quality_curves.png)")
    p.add_argument("--results", default=None, help="folder for the JSON (default benchmarks/results)")
    args = p.parse_args(argv)
    set_command(__file__, argv)
    curves = run_all(args.corpus, CURVES, args.curve_epochs, args.seeds, args.workers) if args.curve_epochs else []
    rows = ABLATION[: args.only] if args.only else ABLATION
    ablation = run_all(args.corpus, rows, args.ablation_epochs, args.seeds, args.workers) if args.ablation_epochs \
        else []
    save("model_quality", dict(corpus=args.corpus, seeds=args.seeds, curves=curves, ablation=ablation),
         Path(args.results) if args.results else None)
    if curves:
        plot(curves, Path(args.plot) if args.plot else ROOT / "docs" / "images" / "model_quality_curves.png")
    write_section(Path(args.doc), "model_quality", render(curves, ablation, args.corpus, args.seeds))
    print(render(curves, ablation, args.corpus, args.seeds))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
