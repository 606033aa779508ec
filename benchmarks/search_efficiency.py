"""Search efficiency, the headline: how many trial-epochs does each strategy need to find a good model?

A tabular benchmark, as HPO research does: ``build`` trains a fixed grid of configurations with the real
trainer and stores every per-epoch dev WER in a Parquet table, once per training seed (one run of a 10-epoch
configuration is partly luck: the table holds two); ``replay`` runs the strategies through
the real searcher and scheduler code (``tune.search.OptunaSearcher``, Ray's ``ASHAScheduler``, Ray Tune
itself) with a trainable that reads the table instead of training, for several seeds each:

- TPE + ASHA (ours), random + ASHA, random without early stopping (full budget), QMC + ASHA.

Reported: best dev WER so far against cumulative trial-epochs (anytime plot, PNG), and the ratio of
trial-epochs TPE + ASHA needs to come within 1 WER point of full-budget random search's final best.

    python -m benchmarks.search_efficiency build --epochs 20                  # ~28 min on 2 CPU cores
    python -m benchmarks.search_efficiency build --epochs 20 --train-seed 1   # the second run of each
    python -m benchmarks.search_efficiency replay --seeds 40 --trials 24 --grace 2 --workers 6   # 25 min

The first table (``search_table_10ep.parquet``: 10 epochs, where most configurations never left the CTC blank
plateau) stays for comparison: ``replay --table benchmarks/results/search_table_10ep.parquet``.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import os
import sys
import time
import zlib
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks._common import ROOT, save, set_command, write_section
from tune.trials import WER_THEN_LOSS

RESULTS = ROOT / "benchmarks" / "results"
DEFAULT_TABLE = RESULTS / "search_table_20ep.parquet"  # the headline; search_table_10ep.parquet: the first table
GRID = {
    "train.learning_rate": [3e-4, 1e-3, 3e-3, 1e-2],
    "model.dropout": [0.0, 0.3],
    "train.weight_decay": [1e-6, 1e-3],
    "model.num_blocks": [2, 6],
    "model.lstm_layers": [1, 2],
}
LOG_KEYS = {"train.learning_rate", "train.weight_decay"}
RANK = "dev_loss"  # the sweep's default scheduler.metric (tune.experiment.SchedulerSpec)
STRATEGIES = {  # name -> (searcher algorithm, scheduler, what ASHA ranks by, other searcher keys)
    "TPE + ASHA": ("tpe", "asha", RANK, {}),  # the sweep defaults: independent TPE, ASHA on dev loss
    "TPE + ASHA on dev WER then loss": ("tpe", "asha", WER_THEN_LOSS, {}),  # the default until 2026-11-25
    "TPE + ASHA on dev WER": ("tpe", "asha", "dev_wer", {}),
    "multivariate TPE + ASHA": ("tpe", "asha", RANK, {"multivariate": True}),
    "TPE + ASHA, 8 startup": ("tpe", "asha", RANK, {"n_startup_trials": 8}),
    "random + ASHA": ("random", "asha", RANK, {}),
    "QMC + ASHA": ("qmc", "asha", RANK, {}),
    "random, full budget": ("random", "none", RANK, {}),
}


# -- build: train the grid once --------------------------------------------------------------------------
def _train_point(args: tuple[str, int, dict[str, Any], int]) -> list[dict[str, Any]]:
    import torch

    from slr.config import Config
    from slr.train import Trainer
    corpus, epochs, point, seed = args
    torch.set_num_threads(1)
    cfg = Config().override({**point, "train.epochs": epochs, "train.warmup_epochs": 1,
                             "train.early_stopping_patience": 0, "data.batch_size": 4, "train.seed": seed})
    rows = []
    t0 = time.time()
    trainer = Trainer(cfg.override({"data.corpus": str(corpus)}), on_epoch=lambda m, _: rows.append(
        {**point, "train_seed": seed, "epoch": m["epoch"], "dev_wer": m["dev_wer"], "dev_loss": m["dev_loss"],
         "seconds": time.time() - t0}))
    try:
        trainer.fit()
    except Exception as err:  # noqa: BLE001 -- a diverging point is a row too: it costs epochs and finds nothing
        rows.append({**point, "train_seed": seed, "epoch": trainer.state["epoch"] + 1, "dev_wer": math.nan,
                     "dev_loss": math.nan, "seconds": 0.0, "error": type(err).__name__})
    return rows


def build(corpus: str, epochs: int, out: Path, workers: int, limit: int = 0, seed: int = 0) -> Path:
    """Train every grid point with training seed ``seed`` (``limit``: only points with the first ``limit``
    learning rates, for smoke tests)."""
    import pandas as pd
    # Runs of another length would make one table two benchmarks: under a cosine schedule a 10-epoch run is
    # not the first half of a 20-epoch one.
    if out.exists():
        old_epochs = int(pd.read_parquet(out, columns=["epoch"])["epoch"].max())
        if old_epochs != epochs:
            raise SystemExit(f"{out} holds {old_epochs}-epoch runs; adding {epochs}-epoch runs would mix two "
                             "benchmarks: give another --table")
    grid = {**GRID, **({"train.learning_rate": GRID["train.learning_rate"][:limit]} if limit else {})}
    if limit:
        grid = {k: (v if k == "train.learning_rate" else v[:1]) for k, v in grid.items()}
    points = [dict(zip(grid, values)) for values in itertools.product(*grid.values())]
    rows: list[dict[str, Any]] = []
    t0 = time.time()
    with ProcessPoolExecutor(workers) as pool:
        for i, result in enumerate(pool.map(_train_point, [(corpus, epochs, p, seed) for p in points]), 1):
            rows.extend(result)
            print(f"\r{i}/{len(points)} configurations trained ({time.time() - t0:.0f} s)", end="", flush=True)
    print()
    table = pd.DataFrame(rows)
    if out.exists():  # a table with other training seeds: this seed's runs are added (or replace its old ones)
        old = with_train_seed(pd.read_parquet(out))
        table = pd.concat([old[old["train_seed"] != seed], table], ignore_index=True)
    table.attrs = {}
    out.parent.mkdir(parents=True, exist_ok=True)
    table.to_parquet(out)
    return out


def with_train_seed(table):  # noqa: ANN001, ANN201 -- a pandas DataFrame
    """Tables built before training seeds were recorded hold one run per configuration, with train.seed 0."""
    return table if "train_seed" in table else table.assign(train_seed=0)


# -- replay: the real searcher and scheduler on the table ----------------------------------------------
def _snap(key: str, value: float, grid: list[Any]) -> Any:
    """The grid value nearest to a suggested value (in log space for log-scale keys)."""
    if key in LOG_KEYS:
        return min(grid, key=lambda g: abs(math.log(g) - math.log(value)))
    return min(grid, key=lambda g: abs(g - value))


class TableTrainable:
    """Ray Tune function trainable that reports the table's per-epoch dev WER of the nearest grid point. Where
    the table holds several training runs of a configuration (training seeds), each trial gets one of them,
    drawn from its suggested values and the replay's seed: as in a real sweep, a trial is one training run, with
    that run's luck."""

    def __init__(self, table_path: str, replay_seed: int = 0):
        self.table_path, self.replay_seed = table_path, replay_seed
        self.__name__ = "table"  # Ray names trials after it (and warns when a callable has no name)

    def __call__(self, params: dict[str, Any]) -> None:
        import pandas as pd
        from ray import tune

        from tune.trials import with_rank_metric
        table = with_train_seed(pd.read_parquet(self.table_path))
        point = {k: _snap(k, params[k], sorted(table[k].unique().tolist())) for k in GRID}
        rows = table
        for k, v in point.items():
            rows = rows[np.isclose(rows[k], v)]
        seeds = sorted(rows["train_seed"].unique().tolist())
        draw = zlib.crc32(json.dumps([self.replay_seed, sorted(params.items())], default=str).encode())
        rows = rows[rows["train_seed"] == seeds[draw % len(seeds)]]
        rows = rows.sort_values("epoch")
        best = math.inf
        epochs = int(table["epoch"].max())
        for _, r in rows.iterrows():
            wer = float(r["dev_wer"])
            if math.isnan(wer):  # the configuration diverged here: the trial fails
                tune.report({"epoch": int(r["epoch"]), "finished": 1, "failed_reason": "non-finite loss",
                             "report_time": time.time()})
                return
            best = min(best, wer)
            loss = {"dev_loss": float(r["dev_loss"])} if "dev_loss" in r and not math.isnan(r["dev_loss"]) else {}
            tune.report(with_rank_metric({"epoch": int(r["epoch"]), "dev_wer": wer, "best_dev_wer": best, **loss,
                                          "finished": int(r["epoch"] >= epochs), "report_time": time.time(),
                                          **self.extra(point)}))

    def extra(self, point: dict[str, Any]) -> dict[str, Any]:
        """More metrics for every report of the grid point ``point`` (a cost, pareto_efficiency.py)."""
        return {}


def replay_one(table_path: Path, algorithm: str, scheduler: str, seed: int, trials: int, epochs: int,
               storage: Path, grace: int = 1, metric: str = RANK, searcher: dict[str, Any] | None = None,
               budget: int = 0) -> list[tuple[int, float]]:
    """One strategy run. Returns (trial-epochs spent, dev WER) per report in the order they happened, cut at
    ``budget`` trial-epochs when given."""
    from tune.experiment import from_dict
    from tune.sweep import build_tuner
    from tune.trials import METRIC
    name = f"{algorithm}-{scheduler}-{metric}-{'-'.join(f'{k}{v}' for k, v in (searcher or {}).items())}-{seed}"
    space = {"train.learning_rate": {"type": "loguniform", "low": 3e-4, "high": 1e-2},
             "model.dropout": {"type": "uniform", "low": 0.0, "high": 0.3},
             "train.weight_decay": {"type": "loguniform", "low": 1e-6, "high": 1e-3},
             "model.num_blocks": {"type": "int", "low": 2, "high": 6},
             "model.lstm_layers": {"type": "choice", "values": [1, 2]}}
    spec = from_dict(dict(name=name, corpus={"path": "unused"}, num_trials=trials, max_concurrent=1,
                          storage_path=str(storage), space=space, config={"train": {"epochs": epochs}},
                          searcher={"algorithm": algorithm, "seed": seed, "n_startup_trials": 4, **(searcher or {})},
                          scheduler={"type": scheduler, "grace_period": grace, "reduction_factor": 3,
                                     "metric": metric},
                          baseline_first=False, mlflow={"enabled": False}))
    spec.sweep_dir.mkdir(parents=True, exist_ok=True)
    grid = build_tuner(spec, TableTrainable(str(table_path), seed)).fit()  # the sweep's own Tuner
    events = []
    for result in grid:
        df = result.metrics_dataframe
        if df is None or not len(df):
            continue
        for _, r in df.iterrows():
            events.append((float(r["report_time"]), 0.0, r.get(METRIC)))
    # Trials ran one at a time, so the order of reports (full-precision clock) is the order of trial-epochs spent.
    events.sort(key=lambda e: e[0])
    out = [(i + 1, float(w) if w is not None and not (isinstance(w, float) and math.isnan(w)) else math.nan)
           for i, (_, _, w) in enumerate(events)]
    return out[:budget] if budget else out


def anytime(events: list[tuple[int, float]]) -> tuple[np.ndarray, np.ndarray]:
    spent = np.array([e for e, _ in events])
    best = np.minimum.accumulate(np.array([w if not math.isnan(w) else np.inf for _, w in events]))
    return spent, best


def _start_ray() -> None:
    """A local Ray for this process (each replay worker has its own: a replay is latency-bound, not CPU-bound)."""
    import ray
    import ray.cloudpickle

    import tune  # noqa: F401 -- sets RAY_AUTH_MODE=token: must come before ray is imported
    from tune.sweep import ensure_ray_token
    module = sys.modules[TableTrainable.__module__]
    if module.__name__ != "__main__":  # imported (tests, pool workers): Ray workers cannot import benchmarks/
        ray.cloudpickle.register_pickle_by_value(module)
    ensure_ray_token()
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)


def _replay_task(args: tuple[Any, ...]) -> tuple[str, int, list[tuple[int, float]]]:
    name, seed, *rest = args
    return name, seed, replay_one(*rest)


def run_replays(tasks: list[tuple[Any, ...]], workers: int, task: Any, initializer: Any,  # noqa: ANN401
                describe: Any) -> dict[tuple[str, int], list]:  # noqa: ANN401 -- callables of the caller
    """Run ``task`` over ``tasks`` (each ``(name, seed, ...)``; it returns ``(name, seed, events)``), ``workers`` at a
    time in spawned processes set up by ``initializer`` (each its own local Ray); a line of progress per replay
    (``describe(events)``). A replay in which no trial reported is an error."""
    import multiprocessing
    done: dict[tuple[str, int], list] = {}
    t0 = time.time()
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"),
                             initializer=initializer) as pool:
        for future in as_completed([pool.submit(task, t) for t in tasks]):
            name, seed, events = future.result()
            if not events:
                raise RuntimeError(f"{name}, seed {seed}: no trial reported (see the Ray errors above)")
            done[name, seed] = events
            print(f"[{len(done)}/{len(tasks)} {time.time() - t0:.0f} s] {name:32s} seed {seed}: {describe(events)}",
                  flush=True)
    return done


def replay(table_path: Path, seeds: int, trials: int, storage: Path, grace: int = 1,
           only: list[str] | None = None, asha_trial_factor: int = 3, workers: int = 1) -> dict[str, Any]:
    """Every strategy x seed, ``workers`` at a time, each worker process with its own local Ray."""
    import pandas as pd
    epochs = int(pd.read_parquet(table_path)["epoch"].max())
    tasks = []
    for name, (algorithm, scheduler, metric, extra) in STRATEGIES.items():
        if only and name not in {*only, "random, full budget"}:  # the reference is always replayed
            continue
        # Equal budgets: every strategy may spend what full-budget random spends (trials x epochs); early
        # stopping buys more trials inside it.
        n = trials if scheduler == "none" else trials * asha_trial_factor
        tasks += [(name, seed, table_path, algorithm, scheduler, seed, n, epochs,
                   storage / name.replace(" ", "_").replace(",", ""), grace, metric, extra, trials * epochs)
                  for seed in range(seeds)]
    done = run_replays(tasks, workers, _replay_task, _start_ray,
                       lambda events: f"best {min(anytime(events)[1]):.3f} after {events[-1][0]} trial-epochs")
    runs = {name: [done[name, seed] for seed in range(seeds)] for name in dict.fromkeys(t[0] for t in tasks)}
    return dict(epochs=epochs, trials=trials, seeds=seeds, grace=grace, asha_trials=trials * asha_trial_factor,
                runs=runs)


def efficiency(result: dict[str, Any]) -> dict[str, Any]:
    """Trial-epochs each strategy needs to come within 1 WER point of full-budget random's final best."""
    target = float(np.mean([min(anytime(r)[1]) for r in result["runs"]["random, full budget"]])) + 0.01
    full = float(np.mean([r[-1][0] for r in result["runs"]["random, full budget"]]))
    out = {}
    for name, runs in result["runs"].items():
        needed = []
        for r in runs:
            spent, best = anytime(r)
            hit = np.nonzero(best <= target)[0]
            needed.append(float(spent[hit[0]]) if len(hit) else math.nan)
        reached = [n for n in needed if not math.isnan(n)]
        # Median over all seeds, a seed that never reached the target counting as infinitely late: it is
        # finite only when more than half the seeds reached it.
        median = float(np.median([n if not math.isnan(n) else math.inf for n in needed]))
        out[name] = dict(needed=needed, reached=len(reached), median=median if math.isfinite(median) else math.nan,
                         final_best=float(np.mean([min(anytime(r)[1]) for r in runs])),
                         budget=float(np.mean([r[-1][0] for r in runs])))
        out[name]["ratio_to_full_random"] = out[name]["median"] / full
    return dict(target=target, full_random_trial_epochs=full, strategies=out)


def main_effects(table) -> dict[str, dict[str, Any]]:  # noqa: ANN001 -- a pandas DataFrame
    """Full-factorial main effects: mean (over the rest of the grid) of each configuration's best dev WER
    (averaged over its training seeds), per level of each hyperparameter; the spread between levels ranks what
    moves dev WER most."""
    runs = with_train_seed(table).groupby([*GRID, "train_seed"])["dev_wer"].min().fillna(1.0)
    best = runs.groupby(list(GRID)).mean().reset_index()  # over training seeds
    out = {}
    for key in GRID:
        levels = best.groupby(key)["dev_wer"].mean()
        out[key] = dict(levels={str(k): float(v) for k, v in levels.items()},
                        spread=float(levels.max() - levels.min()))
    return dict(sorted(out.items(), key=lambda kv: -kv[1]["spread"]))


def seed_noise(table, target: float) -> dict[str, Any] | None:  # noqa: ANN001 -- a pandas DataFrame
    """How much of a configuration's result is the luck of one training run: per configuration, the best dev
    WER of each training seed; their Spearman rank correlation, mean absolute difference, and how many
    configurations reach ``target`` with each seed (None for a table with one seed)."""
    best = with_train_seed(table).groupby([*GRID, "train_seed"])["dev_wer"].min().fillna(1.0).unstack("train_seed")
    if best.shape[1] < 2:
        return None
    a, b = best.iloc[:, 0], best.iloc[:, 1]
    # undefined where one seed ranks every configuration alike (all on the blank plateau: a smoke-test table)
    spearman = float(np.corrcoef(a.rank(), b.rank())[0, 1]) if a.nunique() > 1 and b.nunique() > 1 else math.nan
    return dict(seeds=[int(c) for c in best.columns], configurations=len(best),
                spearman=spearman, mean_abs_diff=float((a - b).abs().mean()),
                max_abs_diff=float((a - b).abs().max()),
                within_target={str(int(c)): int((best[c] <= target).sum()) for c in best.columns},
                within_target_mean=int((best.mean(axis=1) <= target).sum()))


def plot(result: dict[str, Any], path: Path, target: float | None = None) -> Path:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(7, 4))
    colors = ["tab:blue", "tab:purple", "tab:brown", "tab:red", "tab:orange", "tab:green", "tab:gray"]
    for (name, runs), color in zip(result["runs"].items(), colors):
        horizon = max(r[-1][0] for r in runs)
        xs = np.arange(1, horizon + 1)
        curves = []
        for r in runs:
            spent, best = anytime(r)
            curves.append(np.array([best[spent <= x].min() if (spent <= x).any() else np.inf for x in xs]))
        curves = np.array(curves)
        median = np.median(curves, axis=0)
        ax.plot(xs, np.where(np.isfinite(median), median, np.nan), label=name, color=color)
        ax.fill_between(xs, np.percentile(curves, 25, axis=0), np.percentile(curves, 75, axis=0), color=color,
                        alpha=0.15)
    ax.set_xlabel("cumulative trial-epochs")
    ax.set_ylabel("best dev WER so far (median, IQR over seeds)")
    if target is not None:
        ax.axhline(target, color="black", linestyle=":", linewidth=1, label="target")
    ax.set_ylim(top=1.0)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="action", required=True)
    b = sub.add_parser("build", help="train the grid once; write the Parquet table")
    b.add_argument("--corpus", default=str(ROOT / "corpora" / "search-table"),
                   help="made if absent: the quickstart preset cut to 12 glosses, 192 train sentences of mean 3")
    b.add_argument("--epochs", type=int, default=20)
    b.add_argument("--table", default=None, help="default: benchmarks/results/search_table_<epochs>ep.parquet")
    b.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1))
    b.add_argument("--limit", type=int, default=0, help="smoke test: first N learning rates, one value of the rest")
    b.add_argument("--train-seed", type=int, default=0, help="train.seed of every run (a second table with another "
                   "seed measures how much one training run's result is luck)")
    r = sub.add_parser("replay", help="replay the strategies on the table; write the figure and docs section")
    r.add_argument("--table", default=str(DEFAULT_TABLE))
    r.add_argument("--seeds", type=int, default=5)
    r.add_argument("--trials", type=int, default=24)
    r.add_argument("--doc", default=str(ROOT / "docs" / "benchmarks.md"))
    r.add_argument("--results", default=None)
    r.add_argument("--storage", default="/tmp/slr-search-efficiency")
    r.add_argument("--grace", type=int, default=1, help="ASHA grace period (epochs before the first rung)")
    r.add_argument("--only", nargs="*", choices=list(STRATEGIES), help="replay only these strategies")
    r.add_argument("--workers", type=int, default=4, help="replays at a time, each with its own local Ray (a "
                   "replay mostly waits on Ray's trial loop: 4 fit on 2 cores)")
    r.add_argument("--asha-trial-factor", type=int, default=3,
                   help="early-stopping strategies may start this many times more trials (same trial-epoch budget)")
    d = sub.add_parser("render", help="rewrite the figure and docs section from a saved replay JSON")
    d.add_argument("saved", help="a search_efficiency_*.json written by replay")
    d.add_argument("--table", default=None, help="default: the table the saved replay read")
    d.add_argument("--doc", default=str(ROOT / "docs" / "benchmarks.md"))
    d.add_argument("--results", default=None)
    args = p.parse_args(argv)
    set_command(__file__, argv)
    if args.action == "build":
        if not (Path(args.corpus) / "manifest.json").exists():
            from slr.corpus.synthetic import generate, with_overrides
            generate(with_overrides("quickstart", types=12, train=192, dev=48, test=48, length_mean=3.0,
                                    length_max=5), args.corpus, seed=0)
        out = Path(args.table or RESULTS / f"search_table_{args.epochs}ep.parquet")
        table = build(args.corpus, args.epochs, out, args.workers, args.limit, args.train_seed)
        print(f"wrote {table}")
        return 0
    if args.action == "render":
        saved = json.loads(Path(args.saved).read_text())
        args.table = args.table or str(ROOT / saved["table"])
        result = dict(runs=saved["runs"], **saved["setup"])
        return render(result, args, measured=saved)
    import shutil
    shutil.rmtree(args.storage, ignore_errors=True)
    result = replay(Path(args.table).resolve(), args.seeds, args.trials, Path(args.storage), args.grace, args.only,
                    args.asha_trial_factor, args.workers)
    return render(result, args)


def render(result: dict[str, Any], args: argparse.Namespace, measured: dict[str, Any] | None = None) -> int:
    """Write the JSON (fresh runs only), the anytime plot and the docs section for one replay result."""
    import pandas as pd
    grace = result["grace"]
    tag = f"_{result['epochs']}ep_grace{grace}"
    eff = efficiency(result)
    out_dir = Path(args.results) if args.results else RESULTS
    out_dir.mkdir(parents=True, exist_ok=True)
    png = plot(result, out_dir / f"search_efficiency{tag}.png", eff["target"])
    table = pd.read_parquet(args.table)
    effects = main_effects(table)
    noise = seed_noise(table, eff["target"])
    setup = {k: result[k] for k in ("epochs", "trials", "seeds", "grace", "asha_trials")}
    if measured is None:
        save(f"search_efficiency{tag}", dict(**eff, setup=setup, table=os.path.relpath(args.table, ROOT),
                                              main_effects=effects, seed_noise=noise, runs=result["runs"]), out_dir,
             compact=True)  # every report of every replay: 7.6 MB indented for the 40-seed table, 2.5 MB compact
    train_seeds = sorted(with_train_seed(table)["train_seed"].unique().tolist())
    trained = ("trained once with the real trainer" if len(train_seeds) == 1 else
               f"trained with the real trainer under {len(train_seeds)} training seeds each (`train.seed` "
               f"{', '.join(map(str, train_seeds))}; a trial gets one of the runs, drawn from its suggested values)")
    noise_note = "" if noise is None else (
        f"\n\nOne training run's luck: between training seeds {noise['seeds'][0]} and {noise['seeds'][1]}, a "
        f"configuration's best dev WER differs by {100 * noise['mean_abs_diff']:.1f} points on average (at most "
        f"{100 * noise['max_abs_diff']:.1f}); Spearman rank correlation of the {noise['configurations']} "
        f"configurations {noise['spearman']:.2f}. Configurations within the target: "
        + ", ".join(f"{n} with seed {k}" for k, n in noise["within_target"].items())
        + f", {noise['within_target_mean']} on the mean of the seeds.")
    rows = ["| strategy | reached target (seeds) | median trial-epochs to target | ratio to full-budget random "
            "| final best (mean) | trial-epochs spent (mean) |", "|---|---|---|---|---|---|"]
    for name, s in eff["strategies"].items():
        median, ratio = ((f"{s['median']:.0f}", f"{s['ratio_to_full_random']:.0%}") if math.isfinite(s["median"])
                         else ("never (half the seeds or more missed)", "-"))
        rows.append(f"| {name} | {s['reached']}/{len(s['needed'])} | {median} | {ratio} | "
                    f"{100 * s['final_best']:.1f} % | {s['budget']:.0f} |")
    ours, ref = eff["strategies"]["TPE + ASHA"], eff["strategies"]["random, full budget"]
    seeds = len(ours["needed"])
    met = ours["ratio_to_full_random"] <= 0.25
    verdict = (f"**TPE + ASHA: median {ours['ratio_to_full_random']:.0%} of full-budget random search's trial-epochs "
               f"over {seeds} seeds (target <= 25 %: {'met' if met else 'not met'}); it reached the target in "
               f"{ours['reached']}/{seeds} seeds, full-budget random search itself in {ref['reached']}/{seeds}.** "
               "The median counts a seed that never reached the target as infinitely late.")
    title = f"{result['epochs']}-epoch table, ASHA grace period {grace}"
    title += f", {len(train_seeds)} training seeds per configuration" if len(train_seeds) > 1 else ""
    body = (f"## Search efficiency (tabular benchmark, {title})\n\nTable: {len(table.groupby(list(GRID)))} "
            f"configurations x {result['epochs']} epochs {trained} "
            f"(`{os.path.relpath(args.table, ROOT)}`); grid: "
            + "; ".join(f"`{k}` {sorted(table[k].unique().tolist())}" for k in GRID)
            + f". Each strategy: the same budget of {result['trials'] * result['epochs']} trial-epochs "
            "(full-budget random: "
            f"{result['trials']} trials; with ASHA up to {result['asha_trials']} trials, since early stopping frees "
            f"epochs for more), one trial at a time, {result['seeds']} seeds, through the real "
            f"`OptunaSearcher` and Ray's `ASHAScheduler` as the sweep builds them (`tune.search.make_scheduler`: grace "
            f"{grace}, reduction factor 3, ranking trials at a rung by dev CTC loss -- the default `scheduler.metric: "
            f"dev_loss` -- or by dev WER, ties broken by dev loss, or dev WER alone where named); "
            "suggested values snap to the nearest grid point. Target: within 1 WER point of full-budget random "
            f"search's final best, averaged over seeds ({100 * eff['target']:.1f} % dev WER); full-budget random "
            f"spends {eff['full_random_trial_epochs']:.0f} trial-epochs.\n\n" + "\n".join(rows)
            + "\n\n" + verdict + noise_note
            + "\n\n![anytime curves, median and interquartile range over seeds; dotted: the target]"
            + f"({os.path.relpath(png, Path(args.doc).parent)})"
            + "\n\nMain effects on the same table (mean best dev WER over the rest of the grid, per level): "
            + "; ".join(f"`{k}` spread {100 * e['spread']:.1f} points ("
                        + ", ".join(f"{lv}: {100 * v:.1f} %" for lv, v in e["levels"].items()) + ")"
                        for k, e in effects.items()) + ".")
    write_section(Path(args.doc), f"search_efficiency{tag}", body, measured=measured)
    print(body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
