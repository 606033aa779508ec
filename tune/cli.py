"""``slr sweep | sweep status | export`` (called from slr.cli, which imports this lazily)."""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

from slr.config import ConfigError


def sweep(args: argparse.Namespace) -> int:
    """``slr sweep``. ``args.trial_fn``, when set, replaces the trainable (tests/tune/table_sweep.py: trials
    replaying measured curves run through exactly this command's checks, messages and exit codes)."""
    if args.experiment == "status":
        if not args.rest:
            raise ConfigError("sweep status", "", "usage: slr sweep status NAME_OR_DIR")
        return status(args.rest[0], args.storage or "sweeps")
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
              f"({summary['trials_by_status']['failed']} failed); see {spec.sweep_dir / 'summary.json'}",
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
    if s["best_dev_wer"] is not None:
        print(f"best dev WER {100 * s['best_dev_wer']:.2f}% (trial {s['best_trial_id']}, epoch {s['best_epoch']})")
        print(f"best params  {json.dumps(s['best_params'])}")
        print(f"best config  {Path(s['sweep_dir']) / 'best_config.yaml'}")
    ml = s["mlflow"]
    if ml.get("experiment_id"):
        print(f"MLflow       experiment '{ml['experiment']}' (id {ml['experiment_id']}), parent run "
              f"{ml['parent_run_id']}\n  open it:   mlflow ui --backend-store-uri {ml['tracking_uri']} "
              "--host 127.0.0.1 --port 5000   then http://127.0.0.1:5000")


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


# Optuna's trial states in the words the rest of slr-tune uses (summary.json, MLflow tags)
STATE_NAMES = {"RUNNING": "running", "COMPLETE": "completed", "PRUNED": "stopped-by-asha", "FAIL": "failed",
               "WAITING": "queued"}


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
    best = (math.inf, None)
    for t in study.trials:
        state = STATE_NAMES.get(t.state.name, t.state.name.lower())
        states[state] = states.get(state, 0) + 1
        # intermediate values are the scheduler's metric (maybe dev loss): the best dev WER is a user attribute
        values = [v for v in (t.user_attrs.get("best_dev_wer"), t.value) if v is not None]
        for v in values:
            if v < best[0]:
                best = (v, t.user_attrs.get("ray_trial_id", f"#{t.number}"))
    print(f"sweep {spec.name}: " + ", ".join(f"{n} {k}" for k, n in sorted(states.items())))
    if best[1] is not None:
        print(f"best dev WER so far {100 * best[0]:.2f}% (trial {best[1]})")
    from tune.lock import holder_of
    if holder := holder_of(sweep_dir):
        print(f"running: driver pid {holder.get('pid')} on {holder.get('host')} since {holder.get('since')}")
    elif (sweep_dir / "summary.json").exists():
        print(f"finished: {sweep_dir / 'summary.json'}")
    else:
        print("interrupted: no driver is running it; resume it with `slr sweep EXPERIMENT --resume` "
              f"(its definition: {sweep_dir / 'experiment.yaml'})")
    return 0


def export(args: argparse.Namespace) -> int:
    from slr.cli import refuse_to_overwrite
    from tune.export import export_best
    refuse_to_overwrite(args.out, args.force, "a file")
    out = export_best(resolve_sweep_dir(args.sweep, args.storage), args.out, register=args.register)
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
