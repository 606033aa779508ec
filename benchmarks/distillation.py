"""Distillation: a small student trained with and without a larger teacher at the same budget.

Trains the teacher once (a wider, deeper student: ``TEACHER``), then the small student (``STUDENT``) over several
training seeds, plain and distilled from that teacher (``train.teacher``, ``train.kd_weight``,
``train.kd_temperature``), each for the same number of epochs, in worker processes of one torch thread each.
Writes benchmarks/results/distillation.json and the ``distillation`` section of docs/model_quality.md.

    python -m benchmarks.distillation --corpus corpora/quickstart --teacher-epochs 20 --epochs 10 --seeds 3
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from benchmarks._common import ROOT, save, set_command, write_section

TEACHER = {"model.block_channels": 192, "model.hidden_dim": 256, "model.lstm_layers": 2}
STUDENT = {"model.block_channels": 48, "model.bottleneck_channels": 32, "model.hidden_dim": 64}
BASE = {"data.batch_size": 4, "train.early_stopping_patience": 0}


def train(corpus: str, epochs: int, seed: int, changes: dict, out: str | None = None) -> dict:
    """One run: its dev WER per epoch, parameter count and wall seconds (and ``out``/best.pt when ``out``)."""
    import torch
    torch.set_num_threads(1)
    from slr.config import Config
    from slr.train import Trainer
    cfg = Config().override({**BASE, **changes, "data.corpus": corpus, "train.epochs": epochs, "train.seed": seed,
                             "train.checkpoint": bool(out)})
    wers: list[float] = []
    t0 = time.time()
    trainer = Trainer(cfg, out=out, on_epoch=lambda m, _: wers.append(m["dev_wer"]))
    trainer.fit()
    return dict(seed=seed, dev_wer=wers, seconds=time.time() - t0, parameters=trainer.model.num_parameters())


def render(teacher: dict, rows: list[dict], corpus: str, epochs: int) -> str:
    def cell(values: list[float]) -> str:
        return f"{100 * statistics.mean(values):.1f} % (±{50 * (max(values) - min(values)):.1f})"
    lines = [f"### Distillation ({Path(corpus).name}, {epochs}-epoch budget, {len(rows[0]['runs'])} training seeds)",
             "", f"The teacher: {TEACHER} ({teacher['parameters']:,} parameters), trained once for "
             f"{len(teacher['dev_wer'])} epochs: best dev WER {100 * min(teacher['dev_wer']):.1f} %. The student: "
             f"{STUDENT}. Mean best dev WER over the seeds (± half the range) and at the last epoch.", "",
             "| student | parameters | best dev WER | last epoch | minutes per run |", "|---|---|---|---|---|"]
    for row in rows:
        runs = row["runs"]
        lines.append(f"| {row['name']} | {runs[0]['parameters']:,} | {cell([min(r['dev_wer']) for r in runs])} | "
                     f"{cell([r['dev_wer'][-1] for r in runs])} | "
                     f"{statistics.mean(r['seconds'] for r in runs) / 60:.1f} |")
    plain, distilled = (statistics.mean(min(r["dev_wer"]) for r in row["runs"]) for row in rows[:2])
    lines += ["", f"Distilled against plain: {100 * (plain - distilled) / plain:.0f} % lower mean best dev WER, relative "
              "(negative: higher; the model-quality target is at least 15 % lower)."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--corpus", default=str(ROOT / "corpora" / "quickstart"))
    p.add_argument("--teacher-epochs", type=int, default=20)
    p.add_argument("--epochs", type=int, default=10, help="the students' budget")
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--kd-weight", type=float, default=1.0)
    p.add_argument("--kd-temperature", type=float, default=2.0)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--doc", default=str(ROOT / "docs" / "model_quality.md"))
    p.add_argument("--results", default=None, help="folder for the JSON (default benchmarks/results)")
    args = p.parse_args(argv)
    set_command(__file__, argv)
    with tempfile.TemporaryDirectory(prefix="slr-teacher-") as tmp:
        teacher = train(args.corpus, args.teacher_epochs, 0, TEACHER, out=tmp)
        kd = {"train.teacher": str(Path(tmp) / "best.pt"), "train.kd_weight": args.kd_weight,
              "train.kd_temperature": args.kd_temperature}
        arms = [("plain", STUDENT), (f"distilled (kd_weight {args.kd_weight}, T {args.kd_temperature})",
                                     {**STUDENT, **kd})]
        with ProcessPoolExecutor(args.workers) as pool:
            futures = {(name, s): pool.submit(train, args.corpus, args.epochs, s, changes)
                       for name, changes in arms for s in range(args.seeds)}
            rows = [dict(name=name, changes={k: v for k, v in changes.items() if k != "train.teacher"},
                         runs=[futures[(name, s)].result() for s in range(args.seeds)]) for name, changes in arms]
    save("distillation", dict(corpus=args.corpus, teacher=TEACHER, teacher_run=teacher, epochs=args.epochs, rows=rows),
         Path(args.results) if args.results else None)
    body = render(teacher, rows, args.corpus, args.epochs)
    write_section(Path(args.doc), "distillation", body)
    print(body)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
