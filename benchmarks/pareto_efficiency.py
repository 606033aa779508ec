"""Multi-objective search efficiency: how many trial-epochs does each strategy need to find the WER/size front?

The search-efficiency table (``search_efficiency.py``: 64 configurations x 20 epochs x 2 training seeds, trained
with the real trainer) with a cost per configuration: its trainable parameters (``slr.cost.parameters`` of the
model the configuration builds for the table's corpus). The strategies run through the real searcher, scheduler and
Ray Tune (``tune.sweep.build_tuner``) with a trainable that replays the table and reports the cost with every
result, one trial at a time, several replay seeds each:

- multi-objective TPE + MO-ASHA (``searcher.algorithm: tpe`` with ``objectives:``, ``scheduler.type: mo-asha``);
- random + MO-ASHA;
- random + ASHA on the dev loss alone (the single-objective scheduler in a multi-objective sweep);
- random search at the full budget (no early stopping): the reference.

Each strategy may spend what full-budget random spends (trials x epochs); early stopping buys more trials in it.
Reported: the dominated hypervolume of (best dev WER so far, parameters) over every trial so far, against
cumulative trial-epochs (anytime plot), and the trial-epochs each strategy needs to reach 95 % of full-budget
random search's final hypervolume (median over seeds, a seed that never reaches it counting as never).
Objectives normalized: dev WER in [0, 1], parameters divided by the largest configuration's; reference point
(1, 1.1): a trial at 100 % WER adds nothing, the largest model can add.

    python -m benchmarks.pareto_efficiency --seeds 10 --trials 24 --workers 4
"""

from __future__ import annotations

import argparse
import math
import shutil
import statistics
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks._common import ROOT, save, set_command, write_section
from benchmarks.search_efficiency import DEFAULT_TABLE, GRID, RANK, TableTrainable, _start_ray, run_replays

STRATEGIES = {  # name -> (searcher algorithm, scheduler)
    "MO-TPE + MO-ASHA": ("tpe", "mo-asha"),
    "random + MO-ASHA": ("random", "mo-asha"),
    "random + ASHA (dev loss alone)": ("random", "asha"),
    "random, full budget": ("random", "none"),
}
REFERENCE = (1.0, 1.1)  # (dev WER, parameters / the largest configuration's)
TARGET = 0.95  # of full-budget random search's final hypervolume
SIZE_KEYS = ("model.num_blocks", "model.lstm_layers")  # the grid keys that change the model's size


def sizes(table_path: Path, corpus: str) -> dict[tuple[int, int], int]:
    """Trainable parameters of each (num_blocks, lstm_layers) of the table's grid, built for the table's corpus
    (made as ``search_efficiency build`` makes it when absent)."""
    import pandas as pd

    from slr.config import Config
    from slr.corpus import Corpus
    from slr.cost import parameters
    from slr.features import FeaturePipeline
    from slr.model import build_model
    if not (Path(corpus) / "manifest.json").exists():
        from slr.corpus.synthetic import generate, with_overrides
        generate(with_overrides("quickstart", types=12, train=192, dev=48, test=48, length_mean=3.0,
                                length_max=5), corpus, seed=0)
    vocab = len(Corpus(corpus).vocab)
    table = pd.read_parquet(table_path)
    out = {}
    for blocks in sorted(table["model.num_blocks"].unique()):
        for layers in sorted(table["model.lstm_layers"].unique()):
            cfg = Config().override({"model.num_blocks": int(blocks), "model.lstm_layers": int(layers)})
            features = FeaturePipeline(cfg.features)
            out[int(blocks), int(layers)] = parameters(build_model(cfg.model, features.spans, vocab))
    return out


class CostTableTrainable(TableTrainable):
    """The table's trainable, each report carrying the configuration's parameter count as ``cost_params`` (as a
    real trial reports the costs it measured when it started)."""

    def __init__(self, table_path: str, replay_seed: int, params: dict[tuple[int, int], int]):
        super().__init__(table_path, replay_seed)
        self.params = params

    def extra(self, point: dict[str, Any]) -> dict[str, Any]:
        return {"cost_params": float(self.params[int(point["model.num_blocks"]), int(point["model.lstm_layers"])])}


def replay_one(table_path: Path, algorithm: str, scheduler: str, seed: int, trials: int, epochs: int,
               storage: Path, params: dict[tuple[int, int], int], budget: int) -> list[tuple[int, float, float]]:
    """One strategy run: (trial-epochs spent, the trial's best dev WER so far, its parameters) per report, in the
    order they happened, cut at ``budget`` trial-epochs."""
    from tune.experiment import from_dict
    from tune.sweep import build_tuner
    from tune.trials import COST_PREFIX
    space = {"train.learning_rate": {"type": "loguniform", "low": 3e-4, "high": 1e-2},
             "model.dropout": {"type": "uniform", "low": 0.0, "high": 0.3},
             "train.weight_decay": {"type": "loguniform", "low": 1e-6, "high": 1e-3},
             "model.num_blocks": {"type": "int", "low": 2, "high": 6},
             "model.lstm_layers": {"type": "choice", "values": [1, 2]}}
    spec = from_dict(dict(name=f"{algorithm}-{scheduler}-{seed}", corpus={"path": "unused"}, num_trials=trials,
                          max_concurrent=1, storage_path=str(storage), space=space,
                          config={"train": {"epochs": epochs}},
                          searcher={"algorithm": algorithm, "seed": seed, "n_startup_trials": 4},
                          scheduler={"type": scheduler, "grace_period": 1, "reduction_factor": 3, "metric": RANK},
                          objectives=[{"metric": "dev_wer", "mode": "min"}, {"metric": "params", "mode": "min"}],
                          baseline_first=False, mlflow={"enabled": False}))
    spec.sweep_dir.mkdir(parents=True, exist_ok=True)
    grid = build_tuner(spec, CostTableTrainable(str(table_path), seed, params)).fit()
    events = []
    for result in grid:
        df = result.metrics_dataframe
        if df is None or not len(df):
            continue
        for _, r in df.iterrows():
            wer = r.get("best_dev_wer")
            events.append((float(r["report_time"]), float(wer) if wer is not None and wer == wer else math.nan,
                           float(r.get(f"{COST_PREFIX}params", math.nan)), result.path))
    events.sort(key=lambda e: e[0])  # one trial at a time: report order is the order trial-epochs were spent
    return [(i + 1, wer, size, trial) for i, (_, wer, size, trial) in enumerate(events)][:budget]


def anytime_hypervolume(events: list[tuple[int, float, float, str]], largest: float) -> list[tuple[int, float]]:
    """(trial-epochs, hypervolume of every trial's current (best dev WER, normalized parameters)) after each
    report."""
    from tune.pareto import hypervolume
    current: dict[str, tuple[float, float]] = {}
    out = []
    for spent, wer, size, trial in events:
        if not math.isnan(wer):
            current[trial] = (wer, size / largest)
        out.append((spent, hypervolume(list(current.values()), REFERENCE)))
    return out


def _task(args: tuple[Any, ...]) -> tuple[str, int, list[tuple[int, float, float, str]]]:
    from benchmarks import pareto_efficiency  # by its name (not __main__), so Ray's workers get the class by value
    name, seed, *rest = args
    return name, seed, pareto_efficiency.replay_one(*rest)


def _start() -> None:
    """A pool worker: its own local Ray (search_efficiency._start_ray), this module's trainable sent by value (Ray's
    workers cannot import benchmarks/)."""
    import ray.cloudpickle

    from benchmarks import pareto_efficiency
    _start_ray()
    ray.cloudpickle.register_pickle_by_value(pareto_efficiency)


def replay(table_path: Path, seeds: int, trials: int, storage: Path, params: dict[tuple[int, int], int],
           workers: int, asha_trial_factor: int = 3) -> dict[str, Any]:
    import pandas as pd
    epochs = int(pd.read_parquet(table_path)["epoch"].max())
    budget = trials * epochs
    tasks = [(name, seed, table_path, algorithm, scheduler, seed,
              trials if scheduler == "none" else trials * asha_trial_factor, epochs,
              storage / name.replace(" ", "_").replace(",", "").replace("(", "").replace(")", ""), params, budget)
             for name, (algorithm, scheduler) in STRATEGIES.items() for seed in range(seeds)]
    done = run_replays(tasks, workers, _task, _start, lambda events: f"{events[-1][0]} trial-epochs")
    largest = float(max(params.values()))
    curves = {name: [anytime_hypervolume(done[name, s], largest) for s in range(seeds)] for name in STRATEGIES}
    return dict(epochs=epochs, trials=trials, seeds=seeds, budget=budget, asha_trials=trials * asha_trial_factor,
                params={f"{b}x{l}": n for (b, l), n in params.items()}, curves=curves)


def efficiency(result: dict[str, Any]) -> dict[str, Any]:
    """Per strategy: final hypervolume (mean over seeds) and the trial-epochs it needs to reach TARGET x full-budget
    random's final hypervolume (median over seeds; never = infinite), as a share of full random's trial-epochs."""
    reference = statistics.mean(c[-1][1] for c in result["curves"]["random, full budget"])
    full = statistics.mean(c[-1][0] for c in result["curves"]["random, full budget"])
    out = {}
    for name, curves in result["curves"].items():
        needed = [next((spent for spent, hv in c if hv >= TARGET * reference), math.inf) for c in curves]
        median = float(np.median(needed))
        out[name] = dict(final=statistics.mean(c[-1][1] for c in curves), needed=needed,
                         reached=sum(math.isfinite(n) for n in needed), median=median,
                         share_of_full_random=median / full if math.isfinite(median) else math.nan)
    return dict(reference_hypervolume=reference, target=TARGET * reference, full_random_trial_epochs=full,
                strategies=out)


def plot(result: dict[str, Any], eff: dict[str, Any], path: Path) -> Path:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(7, 4))
    xs = np.arange(1, result["budget"] + 1)
    for (name, curves), color in zip(result["curves"].items(), ["tab:blue", "tab:orange", "tab:green", "tab:gray"]):
        ys = np.array([[max((hv for spent, hv in c if spent <= x), default=0.0) for x in xs] for c in curves])
        ax.plot(xs, np.median(ys, axis=0), label=name, color=color)
        ax.fill_between(xs, np.percentile(ys, 25, axis=0), np.percentile(ys, 75, axis=0), color=color, alpha=0.15)
    ax.axhline(eff["target"], color="black", linestyle=":", linewidth=1, label=f"{TARGET:.0%} of full random's final")
    ax.set_xlabel("cumulative trial-epochs")
    ax.set_ylabel("hypervolume of (dev WER, parameters)\n(median, IQR over seeds)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def render(result: dict[str, Any], eff: dict[str, Any], png: Path) -> str:
    lines = [f"Table `{result['table']}` ({result['epochs']} epochs, grid {', '.join(GRID)}), cost = trainable "
             f"parameters per (num_blocks x lstm_layers): "
             + ", ".join(f"{k} {v / 1e6:.2f} M" for k, v in result["params"].items())
             + f". {result['seeds']} replay seeds, one trial at a time, budget {result['budget']} trial-epochs "
             f"({result['trials']} full-budget trials; the early-stopping strategies may start "
             f"{result['asha_trials']}); ASHA and MO-ASHA grace 1 epoch, reduction factor 3, rungs on dev loss. "
             f"Hypervolume of (best dev WER, parameters / largest) against reference {REFERENCE}.", "",
             "| strategy | final hypervolume (mean) | trial-epochs to 95 % of full random's final (median) | "
             "share of full random's trial-epochs | seeds that reach it |", "|---|---|---|---|---|"]
    for name, s in eff["strategies"].items():
        median = f"{s['median']:.0f}" if math.isfinite(s["median"]) else "never (median)"
        share = f"{100 * s['share_of_full_random']:.0f} %" if not math.isnan(s["share_of_full_random"]) else "-"
        lines.append(f"| {name} | {s['final']:.4f} | {median} | {share} | {s['reached']}/{len(s['needed'])} |")
    ours = eff["strategies"]["MO-TPE + MO-ASHA"]["share_of_full_random"]
    met = not math.isnan(ours) and ours <= 0.30
    lines += ["", f"Target (MO-TPE + MO-ASHA at 95 % of full random's final hypervolume within 30 % of its "
              f"trial-epochs, median over seeds): **{'met' if met else 'not met'}** "
              f"({'-' if math.isnan(ours) else f'{100 * ours:.0f} %'}).", "",
              f"![anytime hypervolume](../benchmarks/results/{png.name})"]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--table", default=str(DEFAULT_TABLE))
    p.add_argument("--corpus", default=str(ROOT / "corpora" / "search-table"), help="the table's corpus (for the "
                   "vocabulary size; made as search_efficiency build makes it when absent)")
    p.add_argument("--seeds", type=int, default=10)
    p.add_argument("--trials", type=int, default=24, help="full-budget trials (the budget: trials x epochs)")
    p.add_argument("--workers", type=int, default=4, help="replays at a time, each with its own local Ray")
    p.add_argument("--storage", default="/tmp/slr-pareto-efficiency")
    p.add_argument("--doc", default=str(ROOT / "docs" / "benchmarks.md"))
    p.add_argument("--results", default=None)
    args = p.parse_args(argv)
    set_command(__file__, argv)
    shutil.rmtree(args.storage, ignore_errors=True)
    table = Path(args.table).resolve()
    result = replay(table, args.seeds, args.trials, Path(args.storage), sizes(table, args.corpus), args.workers)
    result["table"] = str(table.relative_to(ROOT)) if table.is_relative_to(ROOT) else str(table)
    eff = efficiency(result)
    out_dir = Path(args.results) if args.results else ROOT / "benchmarks" / "results"
    out_dir.mkdir(parents=True, exist_ok=True)
    png = plot(result, eff, out_dir / "pareto_efficiency.png")
    save("pareto_efficiency", dict(**eff, setup={k: v for k, v in result.items() if k != "curves"},
                                   curves=result["curves"]), out_dir, compact=True)
    body = render(result, eff, png)
    write_section(Path(args.doc), "pareto_efficiency", body)
    print(body)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
