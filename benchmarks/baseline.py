"""The student against the VAC-style baseline (``model.arch: vac``) at the same budget.

Each configuration trains for the same number of epochs (no early stopping) under several training seeds, in
worker processes of one torch thread each: the baseline, the seed student, the default student and its variants,
the student tuned for speed (experiments/fast.yaml's winner) at T/4 and at T/2, and three distilled students
(``train.kd_weight`` 1, ``train.kd_temperature`` 2): the default student taught by the baseline's first-seed run (a
teacher at T/4, brought to the student's frame rate by slr.losses.at_rate), and the tuned student at either rate
taught by a longer run of its own configuration (``--teacher-epochs``, 30). The seeds start at 10, apart from those
the sweep chose its winner with. Then each model's inference
on one CPU thread: a 10 s sentence at 25 fps through the feature pipeline, the model and greedy decoding, on torch
(fp32) and on ONNX Runtime, best of several runs, as times real time. Writes benchmarks/results/baseline.json and
the ``baseline`` section of docs/model_quality.md.

    python -m benchmarks.baseline --corpus corpora/quickstart --epochs 10 --seeds 10 --first-seed 10
"""

from __future__ import annotations

import argparse
import math
import statistics
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import NamedTuple

from benchmarks._common import ROOT, best_of, save, set_command, write_section
from benchmarks.model_quality import SEED

# A student sized for speed: the modality encoders (the temporal one reads 4,887 of the 6,516 feature dimensions),
# the blocks and the BiLSTM narrowed (experiments/pareto.yaml searches these keys).
SMALL = {"model.encoder_dims.temporal": 32, "model.encoder_dims.face": 16, "model.encoder_dims.hands": 64,
         "model.encoder_dims.pose": 32, "model.num_blocks": 2, "model.block_channels": 48,
         "model.bottleneck_channels": 32, "model.hidden_dim": 64}
# The student tuned for speed: experiments/fast.yaml's winner (2026-12-05: 40 trials, TPE + ASHA, re-ranked over
# training seeds 1-3 at 0.85 % mean dev WER). Its fixed part is the recipe's; the rest is what the search chose.
FAST = {"features.temporal": ["velocity"], "model.upsample": False, "model.encoder_dims.pose": 32,
        "model.encoder_dims.hands": 128, "model.encoder_dims.face": 16, "model.encoder_dims.temporal": 16,
        "model.bottleneck_channels": 48, "model.num_blocks": 4, "model.block_channels": 64, "model.hidden_dim": 96,
        "model.block_kernel": 5, "model.aux_ctc_weight": 1.0, "model.dropout": 0.0027427447470420654,
        "train.learning_rate": 0.0015333591657833597, "train.weight_decay": 0.0002623168569223652,
        "data.batch_size": 4}
# The same student with its BiLSTM and CTC at T/2 (model.upsample_factor 2: a stride-2 ConvTranspose from the T/4
# blocks): most errors left at T/4 are a repeated gloss merged into one, and T/2 leaves room for the blank between.
FAST_T2 = {**FAST, "model.upsample": True, "model.upsample_factor": 2}
ARMS = [
    ("VAC-style baseline (model.arch: vac, defaults of model.vac)", {"model.arch": "vac"}),
    ("seed student (seed architecture and hyperparameters)", SEED),
    ("student, defaults (frame skip, lr 1e-3, warmup 1)", {}),
    ("student without upsampling (model.upsample: false: BiLSTM and CTC at T/4)", {"model.upsample": False}),
    ("student, small, without upsampling (sizes below)", {"model.upsample": False, **SMALL}),
    ("student tuned for speed (experiments/fast.yaml's winner, below)", FAST),
    ("student tuned for speed, at T/2 (the winner with model.upsample_factor 2)", FAST_T2),
]
TUNED, TUNED_T2 = ARMS[-2][0], ARMS[-1][0]
KD = {"train.kd_weight": 1.0, "train.kd_temperature": 2.0}


class Distilled(NamedTuple):
    """A distilled arm. The baseline teaches at the budget (its first seed's run: ``teacher`` None); the tuned
    student is taught by a longer run of its own configuration (--teacher-epochs, 30; training seed 0, none of the
    measured seeds): a teacher at the same output rate and alignment, whose epochs are not in the budget."""

    name: str  # may hold {epochs}, the teacher's
    student: dict
    teacher: dict | None  # the teacher's configuration, trained --teacher-epochs; None: the baseline's own run
    model_of: str  # the undistilled arm with the same model (distillation changes only the training)


TEACHER_SEED = 0
DISTILLED = [
    Distilled("student, defaults, distilled from the baseline (kd_weight 1, T 2)", KD, None, ARMS[2][0]),
    Distilled("student tuned for speed, distilled from a {epochs}-epoch run of itself (kd_weight 1, T 2; the "
              "teacher's epochs not in the budget)", {**FAST, **KD}, FAST, TUNED),
    Distilled("student tuned for speed at T/2, distilled from a {epochs}-epoch run of itself (kd_weight 1, T 2; the "
              "teacher's epochs not in the budget)", {**FAST_T2, **KD}, FAST_T2, TUNED_T2),
]


def train(corpus: str, epochs: int, seed: int, changes: dict, out: str | None = None) -> dict:
    """One run: dev WER per epoch, training frames per second, parameters and wall seconds."""
    import torch
    torch.set_num_threads(1)
    from slr.config import Config
    from slr.train import Trainer
    cfg = Config().override({**changes, "data.corpus": corpus, "train.epochs": epochs, "train.seed": seed,
                             "train.early_stopping_patience": 0, "train.checkpoint": bool(out)})
    wers, fps = [], []

    def on_epoch(m: dict, _) -> None:  # noqa: ANN001
        wers.append(m["dev_wer"])
        fps.append(m["frames_per_second"])

    t0 = time.time()
    trainer = Trainer(cfg, out=out, on_epoch=on_epoch)
    trainer.fit()
    return dict(seed=seed, dev_wer=wers, train_frames_per_second=statistics.median(fps),
                seconds=time.time() - t0, parameters=trainer.model.num_parameters())


def inference(changes: dict, vocab_size: int, seconds: float = 10.0, fps: float = 25.0, repeats: int = 5) -> dict:
    """Times real time of features + model + greedy for one sentence on one thread: torch fp32 and ONNX Runtime."""
    import torch
    torch.set_num_threads(1)
    from slr.config import Config
    from slr.cost import sentence
    from slr.decode import greedy
    from slr.features import FeaturePipeline
    from slr.model import build_model
    from slr.onnx_runtime import OnnxStudent, export
    cfg = Config().override(changes)
    features = FeaturePipeline(cfg.features).eval()
    model = build_model(cfg.model, features.spans, vocab_size).eval()
    x, mask, frame_mask = sentence(features, fps, seconds)
    lengths = torch.tensor([x.shape[1]])
    with tempfile.TemporaryDirectory() as tmp, torch.inference_mode():
        onnx = OnnxStudent(export(model, Path(tmp) / "model.onnx"), threads=1)
        torch_s = best_of(lambda: greedy(model(features(x, mask, frame_mask), lengths)[:, 0]), repeats)
        onnx_s = best_of(lambda: greedy(onnx(features(x, mask, frame_mask), lengths)[:, 0]), repeats)
    return dict(torch_latency_s=torch_s, onnx_latency_s=onnx_s, torch_times_real_time=seconds / torch_s,
                onnx_times_real_time=seconds / onnx_s)


def _cell(values: list[float]) -> str:
    return f"{100 * statistics.mean(values):.1f} % (±{50 * (max(values) - min(values)):.1f})"


def render(rows: list[dict], corpus: str, epochs: int) -> str:
    seeds = len(rows[0]["runs"])
    lines = [f"### The student against the VAC-style baseline ({Path(corpus).name}, {epochs}-epoch budget, {seeds} "
             "training seeds)", "",
             "Mean dev WER over the seeds (± half the range): the best of each run and at the last epoch. Training "
             "frames per second: the median epoch of a run, one torch thread, mean over the seeds. Inference: a 10 s "
             "sentence at 25 fps, features + model + greedy decoding, one thread, best of 5, in times real time.", "",
             "| model | parameters | best dev WER | last epoch | training frames/s | inference torch | inference "
             "ONNX Runtime | speed against the baseline (torch / ONNX) |", "|---|---|---|---|---|---|---|---|"]
    speed = {r["name"]: (r["inference"]["torch_times_real_time"] / rows[0]["inference"]["torch_times_real_time"],
                         r["inference"]["onnx_times_real_time"] / rows[0]["inference"]["onnx_times_real_time"])
             for r in rows}  # against the baseline: torch, ONNX Runtime
    for row in rows:
        runs, inf = row["runs"], row["inference"]
        lines.append(f"| {row['name']} | {runs[0]['parameters']:,} | {_cell([min(r['dev_wer']) for r in runs])} | "
                     f"{_cell([r['dev_wer'][-1] for r in runs])} | "
                     f"{statistics.mean(r['train_frames_per_second'] for r in runs):,.0f} | "
                     f"{inf['torch_times_real_time']:.0f}x | {inf['onnx_times_real_time']:.0f}x | "
                     f"{speed[row['name']][0]:.1f}x / {speed[row['name']][1]:.1f}x |")
    lines += ["", "Small: " + ", ".join(f"`{k}` {v}" for k, v in SMALL.items()) + ".",
              "", "Tuned for speed: " + ", ".join(f"`{k}` {_value(v)}" for k, v in FAST.items()) + "; at T/2 "
              "the same with `model.upsample` True, `model.upsample_factor` 2."]
    best = {r["name"]: statistics.mean(min(x["dev_wer"]) for x in r["runs"]) for r in rows}
    vac, default = rows[0]["name"], rows[2]["name"]
    from_vac, self_taught, self_taught_t2 = rows[len(ARMS):len(ARMS) + 3]
    lines += ["", f"Training seeds {', '.join(str(r['seed']) for r in rows[0]['runs'])}. Teachers: the baseline's "
              f"first-seed run (best dev WER {100 * min(from_vac['teacher']['dev_wer']):.1f} %); the tuned student's "
              f"configuration trained {len(self_taught['teacher']['dev_wer'])} epochs with seed {TEACHER_SEED} "
              f"({100 * min(self_taught['teacher']['dev_wer']):.1f} %; at T/2 "
              f"{100 * min(self_taught_t2['teacher']['dev_wer']):.1f} %).", ""]
    by_name = {r["name"]: r for r in rows}
    for name, label in ((TUNED, "The student tuned for speed"), (self_taught["name"], "Distilled from itself"),
                        (TUNED_T2, "The student tuned for speed, at T/2"),
                        (self_taught_t2["name"], "At T/2, distilled from itself")):
        met = best[name] < best[vac] and min(speed[name]) >= 3.0
        difference, clear = _difference(by_name[name], rows[0])
        verdict = ("met" if clear else "met on the mean, not beyond the seeds' noise") if met else "not met"
        lines.append(f"- {label}: mean best dev WER {100 * best[name]:.2f} % against the baseline's "
                     f"{100 * best[vac]:.2f} %{difference}, inference {speed[name][0]:.1f}x as fast on torch and "
                     f"{speed[name][1]:.1f}x on ONNX Runtime (the target: a better WER at 3x the speed): "
                     f"**{verdict}**.")
    lines += [f"- Distillation: the tuned student {100 * best[TUNED]:.2f} % without a teacher, "
              f"{100 * best[self_taught['name']]:.2f} % with one "
              f"({100 * (1 - best[self_taught['name']] / best[TUNED]):.0f} % lower; the target: 15 %); at T/2 "
              f"{100 * best[TUNED_T2]:.2f} % and {100 * best[self_taught_t2['name']]:.2f} % "
              f"({100 * (1 - best[self_taught_t2['name']] / best[TUNED_T2]):.0f} % lower). The default "
              f"student {100 * best[default]:.1f} %, distilled from the baseline {100 * best[from_vac['name']]:.1f} %."]
    return "\n".join(lines)


def _difference(row: dict, baseline: dict) -> tuple[str, bool]:
    """The baseline's mean best dev WER minus the row's, in points, with its standard error (runs of the two
    models are independent: seed k of one has nothing to do with seed k of the other), and whether the row is
    better by more than twice that error: a difference a reader can trust, not the luck of a few seeds."""
    a, b = ([min(r["dev_wer"]) for r in x["runs"]] for x in (row, baseline))
    if min(len(a), len(b)) < 2:
        return " (one seed: no standard error)", False
    diff = statistics.mean(b) - statistics.mean(a)
    se = math.sqrt(statistics.variance(a) / len(a) + statistics.variance(b) / len(b))
    clear = abs(diff) > 2 * se
    return (f" ({'better' if diff > 0 else 'worse'} by {100 * abs(diff):.2f} points, standard error {100 * se:.2f}: "
            f"{'more' if clear else 'no more'} than twice it)"), clear and diff > 0


def _value(v: object) -> str:
    return f"{v:.3g}" if isinstance(v, float) else str(v)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--corpus", default=str(ROOT / "corpora" / "quickstart"))
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--seeds", type=int, default=10)
    p.add_argument("--first-seed", type=int, default=10,
                   help="training seeds first-seed .. first-seed + seeds - 1 (10: none of the seeds "
                        "experiments/fast.yaml chose its winner with, 0-3)")
    p.add_argument("--teacher-epochs", type=int, default=30, help="epochs of the tuned student's own teacher")
    p.add_argument("--workers", type=int, default=2, help="runs at once (one torch thread each)")
    p.add_argument("--doc", default=str(ROOT / "docs" / "model_quality.md"))
    p.add_argument("--results", default=None, help="folder for the JSON (default benchmarks/results)")
    args = p.parse_args(argv)
    set_command(__file__, argv)
    from slr.corpus import Corpus
    vocab_size = len(Corpus(args.corpus).vocab)
    seeds = range(args.first_seed, args.first_seed + args.seeds)
    with tempfile.TemporaryDirectory(prefix="slr-baseline-") as tmp, ProcessPoolExecutor(args.workers) as pool:
        teachers = [str(Path(tmp) / f"teacher{i}") for i in range(len(DISTILLED))]
        # the baseline's first-seed run first: it keeps its best checkpoint, the first distilled arm's teacher
        futures = {(name, s): pool.submit(train, args.corpus, args.epochs, s, changes,
                                          teachers[0] if (name, s) == (ARMS[0][0], seeds[0]) else None)
                   for name, changes in ARMS for s in seeds}
        taught = {0: futures[(ARMS[0][0], seeds[0])]}
        taught.update({i: pool.submit(train, args.corpus, args.teacher_epochs, TEACHER_SEED, d.teacher, teachers[i])
                       for i, d in enumerate(DISTILLED) if d.teacher is not None})
        distilled = [d._replace(name=d.name.format(epochs=args.teacher_epochs)) for d in DISTILLED]
        for i, d in enumerate(distilled):
            taught[i].result()
            with_teacher = {**d.student, "train.teacher": str(Path(teachers[i]) / "best.pt")}
            futures.update({(d.name, s): pool.submit(train, args.corpus, args.epochs, s, with_teacher) for s in seeds})
        arms = [*ARMS, *((d.name, d.student) for d in distilled)]
        rows = [dict(name=name, changes=changes, runs=[futures[(name, s)].result() for s in seeds])
                for name, changes in arms]  # the teachers' temporary paths are not recorded
        for i, (row, d) in enumerate(zip(rows[len(ARMS):], distilled)):
            row["teacher"] = dict(taught[i].result(), changes=d.teacher or ARMS[0][1])
    for row in rows[:len(ARMS)]:  # one at a time, the machine otherwise idle
        with ProcessPoolExecutor(1) as pool:
            row["inference"] = pool.submit(inference, row["changes"], vocab_size).result()
    by_name = {row["name"]: row for row in rows}
    for row, d in zip(rows[len(ARMS):], DISTILLED):
        row["inference"] = by_name[d.model_of]["inference"]
    save("baseline", dict(corpus=args.corpus, epochs=args.epochs, rows=rows),
         Path(args.results) if args.results else None)
    body = render(rows, args.corpus, args.epochs)
    write_section(Path(args.doc), "baseline", body)
    print(body)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
