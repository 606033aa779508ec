"""``tune``'s commands: ``slr sweep [run] | resume | status``, ``slr export``, ``slr report``, ``slr mlflow-replay``.

They join the ``slr`` command line through the ``slr.commands`` entry point group (pyproject.toml), which calls
:func:`add_commands`; ``slr`` itself never imports ``tune``. This module imports nothing of Ray, Optuna or MLflow
at load, so ``slr --help`` stays fast and works without them; a command that needs them says how to install them.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from slr.config import ConfigError
from tune.trials import COMPLETED, FAILED, best_first, status_of_state


INSTALL = "sweeps need Ray Tune, Optuna and MLflow: pip install 'slr-tune[tune]'"
ACTIONS = ("run", "resume", "status")


def add_commands(sub: argparse._SubParsersAction) -> None:
    """Add tune's commands to ``slr``'s subparsers (the ``slr.commands`` entry point)."""
    sweep_ = sub.add_parser(
        "sweep", help="run, resume or inspect a Ray Tune sweep from an experiment YAML",
        usage="slr sweep [run] EXPERIMENT [key=value ...] | slr sweep resume EXPERIMENT [key=value ...] | "
              "slr sweep status NAME", description="run: a new sweep (the default action); resume: go on with a "
              "sweep whose driver stopped (the same as --resume); status: trials by state and the best dev WER so "
              "far, from the sweep's Optuna storage, also while it runs.")
    sweep_.add_argument("experiment", metavar="[ACTION] EXPERIMENT", help="an experiment YAML, or an action "
                        f"({' | '.join(ACTIONS)}) followed by the experiment (for status: a sweep name or folder)")
    sweep_.add_argument("rest", nargs="*", metavar="key=value", help="dotted overrides of the experiment")
    sweep_.add_argument("--resume", action="store_true", help="restore a sweep whose driver died")
    sweep_.add_argument("--address", help="Ray cluster address (default: start a local Ray)")
    sweep_.add_argument("--storage", help="storage path override (default: the experiment's)")
    sweep_.set_defaults(func=_needs_deps(sweep))

    exp = sub.add_parser("export", help="export a sweep's best trial as a complete training config")
    exp.add_argument("sweep", help="sweep name (under --storage), sweep directory, or URI (s3://bucket/sweeps/NAME)")
    exp.add_argument("--out", required=True, help="the YAML to write (complete config + provenance)")
    exp.add_argument("--storage", default="sweeps", help="where sweeps live: a folder or a URI (default: sweeps)")
    exp.add_argument("--register", metavar="MODEL_NAME",
                     help="also log the winner as an MLflow Model (its ONNX export) and register a version")
    exp.add_argument("--force", action="store_true", help="replace the file --out if it exists")
    exp.add_argument("--incomplete", action="store_true", help="a sweep that has not finished (interrupted or "
                     "running): export its best finished trial so far, marked so in the provenance (no test look)")
    exp.add_argument("--no-test", action="store_true", help="do not score the winner on the test split (the "
                     "lockbox: every export that scores it is one more look, counted in SWEEP/lockbox.json)")
    for cost, unit in (("params", "N"), ("mflops", "F"), ("latency-ms", "MS")):
        exp.add_argument(f"--max-{cost}", type=float, metavar=unit, help=f"export the best-dev-WER trial whose "
                         f"{cost.replace('-', '_')} is at most this (a sweep with that cost among its objectives)")
    exp.set_defaults(func=_needs_deps(export))

    rep = sub.add_parser("report", help="HTML report with plots of a finished sweep (also logged to MLflow)")
    rep.add_argument("sweep", help="sweep name (under --storage), sweep directory, or URI (s3://bucket/sweeps/NAME)")
    rep.add_argument("--storage", default="sweeps", help="where sweeps live: a folder or a URI (default: sweeps)")
    rep.add_argument("--out", help="output folder (default: SWEEP/report; ./NAME-report for a sweep on a URI)")
    rep.add_argument("--no-mlflow", action="store_true", help="do not log the report to the parent MLflow run")
    rep.set_defaults(func=_needs_deps(report))

    td = sub.add_parser("tune-decode", help="tune the winner's decoding (beam width, gloss LM weight, insertion "
                        "bonus) on its cached dev posteriors", description="Computes the winner's dev log-probs "
                        "once, trains a gloss n-gram LM on the train split and runs an Optuna study (the sweep's "
                        "storage, study SWEEP-decode) over beam width, LM weight and insertion bonus; slr export "
                        "then writes the tuned decoding into the exported config. Needs flashlight-text "
                        "(pip install 'slr-tune[lm]').")
    td.add_argument("sweep", help="sweep name (under --storage) or sweep directory")
    td.add_argument("--storage", default="sweeps", help="where sweeps live (default: sweeps)")
    td.add_argument("--trials", type=int, default=30, help="decoding settings to try (default: 30)")
    td.set_defaults(func=_needs_deps(tune_decode))

    rp = sub.add_parser("mlflow-replay", help="write the MLflow writes a sweep saved while its server was down",
                        description="A sweep whose tracking server never came back saves the writes it could not "
                        "make in SWEEP/mlflow_pending.jsonl; this sends them, in order, once the server is back.")
    rp.add_argument("file", help="the sweep's mlflow_pending.jsonl")
    rp.add_argument("--tracking-uri", required=True, help="the MLflow tracking server (or store) to write to")
    rp.set_defaults(func=_needs_deps(mlflow_replay))


def _needs_deps(command):  # noqa: ANN001, ANN202
    """``command``, whose missing Ray / Optuna / MLflow is one clear line with the install command."""
    import functools

    @functools.wraps(command)
    def run(args: argparse.Namespace) -> int:
        try:
            return command(args)
        except ModuleNotFoundError as err:
            if err.name and err.name.split(".")[0] in ("ray", "optuna", "mlflow", "matplotlib", "pandas"):
                raise RuntimeError(f"{INSTALL} ({err})") from None
            raise
    return run


def sweep(args: argparse.Namespace) -> int:
    """``slr sweep [run | resume | status] ...``. ``args.trial_fn``, when set, replaces the trainable
    (tests/tune/table_sweep.py: trials replaying measured curves run through exactly this command's checks,
    messages and exit codes)."""
    if args.experiment in ACTIONS:
        action = args.experiment
        if not args.rest:
            raise ConfigError(f"sweep {action}", "", f"usage: slr sweep {action} "
                              + ("NAME_OR_DIR" if action == "status" else "EXPERIMENT [key=value ...]"))
        args.experiment, args.rest = args.rest[0], args.rest[1:]
        if action == "status":
            return status(args.experiment, args.storage or "sweeps")
        args.resume = args.resume or action == "resume"
    from tune.experiment import load_experiment
    from tune.sweep import SweepInterrupted, run_sweep
    spec = load_experiment(args.experiment, args.rest, storage=args.storage)
    print(f"sweep '{spec.name}': {spec.num_trials} trials, {spec.searcher.algorithm.upper()} + "
          f"{spec.scheduler.type.upper()}, {spec.max_concurrent} at a time, {spec.resources.cpu:g} CPU / "
          f"{spec.resources.gpu:g} GPU each -> {spec.sweep_dir}", flush=True)
    try:
        summary = run_sweep(spec, resume=args.resume, address=args.address, verbose=2 if args.verbose else 0,
                            **({"trial_fn": args.trial_fn} if getattr(args, "trial_fn", None) else {}))
    except SweepInterrupted as err:
        print(f"\nslr: {err}\nresume it with:  {resume_command(args)}", file=sys.stderr, flush=True)
        return 130
    _print_summary(summary)
    if summary["best_dev_wer"] is None:  # every trial failed: nothing to export, and scripts must see it
        print(f"slr: error: no trial of sweep '{spec.name}' finished with a dev WER "
              f"({summary['trials_by_status'][FAILED]} failed); see {spec.sweep_dir / 'summary.json'}",
              file=sys.stderr)
        return 1
    return 0


def resume_command(args: argparse.Namespace) -> str:
    """The command that resumes this sweep: the same experiment and overrides, plus --resume."""
    import shlex
    parts = ["slr", "sweep", args.experiment, *args.rest]
    for flag in ("storage", "address"):
        if getattr(args, flag, None):
            parts += [f"--{flag}", getattr(args, flag)]
    return shlex.join([*parts, "--resume"])


def _print_summary(s: dict) -> None:
    counts = ", ".join(f"{v} {k}" for k, v in s["trials_by_status"].items())
    print(f"\nsweep '{s['sweep']}' done in {s['wall_seconds']:.0f}s: {s['num_trials']} trials ({counts})")
    if s.get("rerank"):
        print(rerank_table(s["rerank"]))
    if s.get("pareto"):
        print(pareto_table(s))
    if s["best_dev_wer"] is not None and s.get("best_run"):
        run = s["best_run"]
        print(f"best dev WER {100 * s['best_dev_wer']:.2f}% (trial {s['best_trial_id']}, mean of its "
              f"{s['rerank']['seeds']} re-rank seeds; its best run: seed {run['seed']}, {100 * run['best_dev_wer']:.2f}% "
              f"at epoch {run['best_epoch']})")
    elif s["best_dev_wer"] is not None:
        print(f"best dev WER {100 * s['best_dev_wer']:.2f}% (trial {s['best_trial_id']}, epoch {s['best_epoch']})")
    if s["best_dev_wer"] is not None:
        print(f"best params  {json.dumps(s['best_params'])}")
        print(f"best config  {Path(s['sweep_dir']) / 'best_config.yaml'}")
    ml = s["mlflow"]
    if ml.get("experiment_id"):
        print(f"MLflow       experiment '{ml['experiment']}' (id {ml['experiment_id']}), parent run "
              f"{ml['parent_run_id']}\n  open it:   mlflow ui --backend-store-uri {ml['tracking_uri']} "
              "--host 127.0.0.1 --port 5000   then http://127.0.0.1:5000")


def rerank_table(stage: dict) -> str:
    """The re-ranking stage's candidates, winner first: mean and spread over the new seeds, each run's WER."""
    lines = [f"re-ranked the search's {len(stage['candidates'])} best trials over {stage['seeds']} new training seeds "
             f"({stage['trial_epochs']} trial-epochs):"]
    for c in stage["candidates"]:
        mean = "-" if c["mean_dev_wer"] is None else f"{100 * c['mean_dev_wer']:.2f}% +- {100 * c['std_dev_wer']:.2f}"
        runs = ", ".join(f"seed {s}: " + ("-" if w != w else f"{100 * w:.1f}%") for s, w in zip(c["seeds"], c["dev_wers"]))
        mark = "  <- winner" if c["trial_id"] == stage["winner"] else ""
        lines.append(f"  trial {c['trial_id']}  mean dev WER {mean}  ({runs}){mark}")
    return "\n".join(lines)


def resolve_sweep_dir(name_or_dir: str, storage: str = "sweeps") -> Path:
    """A sweep's folder on this machine, from a name (under ``storage``), a folder, or a URI
    (``s3://bucket/sweeps/NAME``: its small files are fetched into a local cache first)."""
    from tune import storage as st
    if st.is_uri(name_or_dir) or st.is_uri(storage):
        uri = name_or_dir if st.is_uri(name_or_dir) else st.join(storage, name_or_dir)
        return st.download(uri)
    path = Path(name_or_dir)
    for candidate in (path, Path(storage) / name_or_dir):
        if (candidate / "experiment.yaml").exists():
            return candidate.resolve()
    raise FileNotFoundError(f"no sweep '{name_or_dir}' (looked in {path} and {Path(storage) / name_or_dir})")


def status(name_or_dir: str, storage: str) -> int:
    """Trials by state and the best dev WER so far, read from the sweep's Optuna storage."""
    import optuna

    from tune.report import load_spec
    from tune.search import study_not_here
    sweep_dir = resolve_sweep_dir(name_or_dir, storage)
    spec = load_spec(sweep_dir)
    if why := study_not_here(spec):
        raise FileNotFoundError(why)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.load_study(study_name=spec.name, storage=spec.optuna_storage)
    states: dict[str, int] = {}
    for t in study.trials:
        state = status_of_state(t.state.name)
        states[state] = states.get(state, 0) + 1
    print(f"sweep {spec.name}: " + ", ".join(f"{n} {k}" for k, n in sorted(states.items())))
    if ranked := best_first(study.trials, _best_so_far, lambda t: t.number):
        t = ranked[0]
        print(f"best dev WER so far {100 * _best_so_far(t):.2f}% (trial {t.user_attrs.get('ray_trial_id', f'#{t.number}')})")
    from tune.lock import holder_of
    if holder := holder_of(sweep_dir):
        print(f"running: driver pid {holder.get('pid')} on {holder.get('host')} since {holder.get('since')}")
    elif (sweep_dir / "summary.json").exists():
        summary = json.loads((sweep_dir / "summary.json").read_text())
        if summary.get("rerank"):
            print(rerank_table(summary["rerank"]))
        if summary.get("pareto"):
            print(pareto_table(summary))
        print(f"finished: {sweep_dir / 'summary.json'}")
    else:
        print("interrupted: no driver is running it; resume it with `slr sweep EXPERIMENT --resume` "
              f"(its definition: {sweep_dir / 'experiment.yaml'})")
    return 0


def pareto_table(summary: dict) -> str:
    """The Pareto front of a multi-objective sweep, cheapest first: dev WER and each cost in its unit."""
    from slr.cost import COSTS
    costs = [o["metric"] for o in summary["objectives"] if o["metric"] in COSTS]
    lines = [f"Pareto front ({len(summary['pareto'])} trials): dev WER against {', '.join(costs)}",
             "  trial             dev WER  " + "  ".join(f"{c} ({COSTS[c]})" for c in costs)]
    for r in summary["pareto"]:
        lines.append(f"  {r['trial_id']:<16} {100 * r['best_dev_wer']:6.2f}%  "
                     + "  ".join(f"{r['costs'][c]:g}" for c in costs) + ("" if r["status"] == COMPLETED else
                                                                         f"  ({r['status']})"))
    return "\n".join(lines)


def _best_so_far(t) -> float | None:  # noqa: ANN001 -- an optuna FrozenTrial
    """A trial's best dev WER so far: intermediate values are the scheduler's metric (maybe dev loss), so it is the
    user attribute the searcher keeps (or the value of a completed trial)."""
    told = t.values[0] if t.values and len(t.values) == 1 else None  # a multi-objective trial: the user attribute
    values = [v for v in (t.user_attrs.get("best_dev_wer"), told) if v is not None]
    return min(values, default=None)


def tune_decode(args: argparse.Namespace) -> int:
    from tune.decoding import DECODE, tune_decode as run
    sweep_dir = resolve_sweep_dir(args.sweep, args.storage)
    r = run(sweep_dir, trials=args.trials)
    print(f"dev WER: greedy {100 * r['greedy_dev_wer']:.2f}%, beam {100 * r['beam_dev_wer']:.2f}%, beam + gloss LM "
          f"{100 * r['dev_wer']:.2f}% (beam {r['beam_width']}, LM weight {r['lm_weight']:.2f}, bonus "
          f"{r['lm_bonus']:.2f}; LM dev perplexity {r['lm_dev_perplexity']:.1f})\nwrote {sweep_dir / DECODE}; "
          f"`slr export {args.sweep}` puts these settings in the exported config")
    return 0


def mlflow_replay(args: argparse.Namespace) -> int:
    from tune.tracking import replay
    print(f"replayed {replay(args.file, args.tracking_uri)} operations")
    return 0


def export(args: argparse.Namespace) -> int:
    import yaml

    from slr.cli import refuse_to_overwrite
    from tune.export import export_best
    refuse_to_overwrite(args.out, args.force, "a file")
    budget = {cost: limit for cost, limit in (("params", args.max_params), ("mflops", args.max_mflops),
                                              ("latency_ms", args.max_latency_ms)) if limit is not None}
    out = export_best(resolve_sweep_dir(args.sweep, args.storage), args.out, register=args.register,
                      test_split=not args.no_test, incomplete=args.incomplete, budget=budget or None)
    test = (yaml.safe_load(Path(out).read_text()).get("provenance") or {}).get("test")
    if test:
        print(f"test WER {100 * test['wer']:.2f}% (S {test['substitutions']}  D {test['deletions']}  "
              f"I {test['insertions']}  N {test['words']}, scorer {test['scorer']}): the sweep's test split has now "
              f"been looked at {test['looks']} time{'s' if test['looks'] > 1 else ''}"
              + (" -- every look after the first is recorded: report the first" if test["looks"] > 1 else ""))
    if incomplete := (yaml.safe_load(Path(out).read_text()).get("provenance") or {}).get("incomplete"):
        print(f"note: {incomplete}")
    print(f"wrote {out}\nretrain it:  slr train --config {out} --out runs/best")
    return 0


def report(args: argparse.Namespace) -> int:
    from tune.report import make_report
    from tune.storage import is_uri
    sweep_dir = resolve_sweep_dir(args.sweep, args.storage)
    out = Path(args.out) if args.out else None
    if out is None and (is_uri(args.sweep) or is_uri(args.storage)):  # not into the download cache
        out = Path(f"{sweep_dir.name}-report")
    page = make_report(sweep_dir, out, log_to_mlflow=not args.no_mlflow)
    print(f"wrote {page}  (open it in a browser; also logged to the sweep's parent MLflow run)")
    return 0
