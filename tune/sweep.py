"""Experiment spec -> Ray Tune run. All Tuner wiring lives here (the trainable stays thin).

One sweep = one folder ``<storage_path>/<name>/`` holding Ray's experiment state and checkpoints,
the Optuna study (``optuna.db``), the embedded MLflow store by default (``mlflow.db``), the
experiment spec (``experiment.yaml``), ``summary.json``, ``curves.json`` (every trial's reports),
``trials.csv`` and ``best_config.yaml``. With a URI storage_path (``s3://...``) Ray writes state and
checkpoints there, the SQLite stores stay in ``<local_path>/<name>/`` on the driver, and the small files
are mirrored to the URI at the end (see tune.storage).
"""

from __future__ import annotations

import json
import logging
import math
import os
import sys
import time
from pathlib import Path
from typing import Any

import yaml

from tune import storage
from tune.experiment import ExperimentSpec, check_resources
from tune.lock import DriverLock
from tune.retention import CheckpointRetention
from tune.search import METRIC, OptunaSearcher, make_scheduler, open_study, shown, trials_held
from tune.trainable import train_trial, trial_config
from tune.tracking import MlflowCallback, ProgressCallback, SweepTracker

log = logging.getLogger(__name__)


def prepare_corpus(spec: ExperimentSpec) -> str:
    """The corpus directory; an embedded synthetic preset is generated on first use."""
    path = Path(spec.corpus.path).resolve()
    if not (path / "manifest.json").exists():
        if not spec.corpus.synth:
            raise FileNotFoundError(f"corpus {path} does not exist (set corpus.synth to generate one)")
        from slr.corpus.synthetic import generate
        print(f"generating the '{spec.corpus.synth}' corpus into {path} ...", flush=True)
        generate(spec.corpus.synth, path, seed=spec.corpus.seed, progress=sys.stderr.isatty())
    from slr.corpus import Corpus
    Corpus(path).require_splits("train", "dev")  # here, not as every trial failing three times in Ray
    return str(path)


def ensure_ray_token() -> None:
    """Token authentication on (the cluster's lock); make ``~/.ray/auth_token`` (0600) if no token is set.
    The token is never printed or logged."""
    os.environ.setdefault("RAY_AUTH_MODE", "token")
    if os.environ.get("RAY_AUTH_TOKEN") or os.environ.get("RAY_AUTH_TOKEN_PATH"):
        return
    path = Path.home() / ".ray" / "auth_token"
    if not path.exists():
        import secrets
        path.parent.mkdir(parents=True, exist_ok=True)
        # written whole, then linked into place: a driver starting at the same moment never reads half a token,
        # and of two drivers making it at once the first one's token wins for both
        tmp = path.with_name(f".auth_token.{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_hex(32))
        try:
            os.link(tmp, path)
        except FileExistsError:
            pass
        finally:
            tmp.unlink()


def init_ray(address: str | None, spec: ExperimentSpec) -> None:
    import ray
    ensure_ray_token()
    os.environ.setdefault("RAY_DEDUP_LOGS", "1")
    if ray.is_initialized():
        return
    if address:
        ray.init(address=address, log_to_driver=False)
    else:
        # address="local": always a fresh local Ray, never a cluster some earlier `ray start` left behind; its
        # session folder (logs, sockets, spilled objects) private to this user, not in the world-readable /tmp/ray
        ray.init(address="local", include_dashboard=False, log_to_driver=False, configure_logging=False,
                 _temp_dir=private_ray_dir())
    nodes = [n["Resources"] for n in ray.nodes() if n.get("Alive")]
    check_resources(spec, nodes)


class SweepInterrupted(Exception):
    """The sweep ended before its trials did (Ctrl-C, or Ray stopped it): nothing was summarized."""

    def __init__(self, name: str, finished: int, running: int, total: int):
        self.name, self.finished, self.running, self.total = name, finished, running, total
        super().__init__(f"sweep '{name}' was interrupted: {finished} of {total} trials finished, {running} were "
                         "still running (saved with their checkpoints); nothing was summarized or exported")


def private_ray_dir() -> str:
    """``$TMPDIR/slr-<uid>/ray``: Ray makes its own folder world-writable (0777), so the privacy is the parent's,
    mode 0700 (a short path: Ray's socket paths must fit in 107 characters)."""
    parent = Path(os.environ.get("TMPDIR", "/tmp")) / f"slr-{os.getuid()}"
    parent.mkdir(mode=0o700, exist_ok=True)
    parent.chmod(0o700)
    return str(parent / "ray")


# Ray Tune copies these from the driver into every trial's runtime environment, which Ray's runtime-env agent
# writes to its log (world-readable by default). A local Ray's workers inherit the driver's environment anyway; a
# cluster's nodes get their own credentials (cluster.yaml's instance profile, docs/cluster.md).
SECRET_ENV = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SECURITY_TOKEN", "AWS_SESSION_TOKEN")


def _keep_secrets_out_of_runtime_envs() -> None:
    from ray.tune.execution import class_cache
    class_cache.ENV_VARS_TO_PROPAGATE.difference_update(SECRET_ENV)


def run_sweep(spec: ExperimentSpec, resume: bool = False, address: str | None = None,
              verbose: int = 1, trial_fn=train_trial, extra_callbacks: tuple = ()) -> dict[str, Any]:  # noqa: ANN001
    """Run (or resume) a sweep to completion; returns the summary written to ``summary.json``. ``trial_fn``
    has :func:`tune.trainable.train_trial`'s signature (tests and benchmarks drive the whole sweep with a
    table-driven one); ``extra_callbacks``: more Ray Tune callbacks, run after the sweep's own.

    One driver at a time (:class:`tune.lock.DriverLock`); raises :class:`SweepInterrupted` when the sweep stops
    before its trials are done (Ctrl-C: Ray saves the state, ``--resume`` goes on from it)."""
    if why := _mlflow_unreachable(spec):  # before anything is written: the sweep name stays usable
        raise ConnectionError(why)
    with DriverLock(spec.sweep_dir) as lock:
        if lock.stale:
            log.info("sweep %s: taking over the lock of driver pid %s, which is no longer running", spec.name,
                     lock.stale.get("pid"))
        return _run_locked(spec, resume, address, verbose, trial_fn, extra_callbacks)


def _mlflow_unreachable(spec: ExperimentSpec) -> str | None:
    """Why the sweep's MLflow server cannot be used now (an http(s) tracking URI that does not answer), or None."""
    uri = spec.tracking_uri
    if not spec.mlflow.enabled or not uri.startswith(("http://", "https://")):
        return None
    import urllib.error
    import urllib.request
    try:
        with urllib.request.urlopen(f"{uri.rstrip('/')}/health", timeout=10):
            return None
    except urllib.error.HTTPError:  # it answers (maybe 401 without credentials, 404 behind a proxy)
        return None
    except OSError as err:
        return (f"the MLflow tracking server {uri} is unreachable ({err}): start it, fix mlflow.tracking_uri, or "
                "set mlflow.enabled=false; nothing was started")


def _run_locked(spec: ExperimentSpec, resume: bool, address: str | None, verbose: int, trial_fn,  # noqa: ANN001
                extra_callbacks: tuple) -> dict[str, Any]:
    from ray import tune

    _keep_secrets_out_of_runtime_envs()
    sweep_dir = spec.sweep_dir
    if spec.remote:
        storage.check_writable(spec.sweep_uri, spec.storage_path)  # a missing bucket or bad credentials: fail before any trial
    state_exists = (storage.exists(storage.join(spec.sweep_uri, "tuner.pkl")) if spec.remote
                    else (sweep_dir / "tuner.pkl").exists())
    if resume and not state_exists:
        raise FileNotFoundError(f"nothing to resume: no sweep state in {spec.sweep_uri}")
    if not resume and state_exists:
        raise FileExistsError(f"{spec.sweep_uri} already holds sweep '{spec.name}': pass --resume to continue it, "
                              "or choose another name / storage_path")
    if not resume and spec.searcher.storage and (held := trials_held(spec)):
        # a shared database outlives any one storage_path: a new sweep must not quietly continue an old study
        raise FileExistsError(f"the Optuna study '{spec.name}' in searcher.storage {shown(spec.optuna_storage)} "
                              f"already holds {held} trials: pass --resume to continue that sweep, or choose "
                              "another name")
    corpus = prepare_corpus(spec)
    sweep_dir.mkdir(parents=True, exist_ok=True)
    # Absolute folders: status, report and export find the stores from any working directory.
    doc = {**spec.to_dict(), ("local_path" if spec.remote else "storage_path"): str(sweep_dir.parent)}
    if resume:
        _check_unchanged(sweep_dir / "experiment.yaml", doc)
    else:
        (sweep_dir / "experiment.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
        if spec.remote:
            storage.upload(sweep_dir, spec.sweep_uri, ("experiment.yaml",))
    init_ray(address, spec)

    base = spec.base_config().override({"data.corpus": corpus}).to_dict()
    max_t = spec.max_epochs
    trainable = tune.with_resources(
        tune.with_parameters(trial_fn, base=base, corpus=corpus, max_epochs=max_t,
                             gpu_fraction=spec.resources.gpu),
        {"cpu": spec.resources.cpu, "gpu": spec.resources.gpu})
    sweep_params = {"sweep": spec.name, "corpus": corpus, "num_trials": spec.num_trials,
                    "searcher": spec.searcher.algorithm, "scheduler": spec.scheduler.type,
                    **{f"space.{k}": json.dumps(v.__dict__) for k, v in spec.space.items()}}
    # Ray keeps every checkpoint; CheckpointRetention deletes one only once the saved state has moved past it
    callbacks: list = [CheckpointRetention(spec.sweep_uri)]
    if verbose == 0:
        callbacks.append(ProgressCallback(spec.num_trials))
    if spec.mlflow.enabled:
        callbacks.append(MlflowCallback(_tracker(spec, background=spec.mlflow.background), sweep_params, _ParamsOf(base, max_t),
                                        spec.scheduler.grace_period, spec.scheduler.reduction_factor, max_t))
    run_config = tune.RunConfig(
        name=spec.name, storage_path=spec.ray_storage, callbacks=[*callbacks, *extra_callbacks], verbose=verbose,
        failure_config=tune.FailureConfig(max_failures=spec.max_failures),
        checkpoint_config=tune.CheckpointConfig(num_to_keep=None, checkpoint_score_attribute=METRIC,
                                                checkpoint_score_order="min"))
    if resume:
        tuner = tune.Tuner.restore(spec.sweep_uri, trainable=trainable, resume_errored=True, restart_errored=False,
                                   param_space=None)
    else:
        # The scheduler and the searcher carry their own metrics (ASHA may rank by dev loss), so none here.
        # reuse_workers (Ray's reuse_actors): a slot's worker process runs its next trial, with no process start,
        # imports or corpus mapping per trial (docs/benchmarks.md, goodput). A driver killed just
        # after a trial starts can leave an Optuna trial that Ray's last state save never saw: the searcher
        # re-runs it as a new trial on resume and the tracker closes its old MLflow run as KILLED (orphaned).
        tuner = tune.Tuner(trainable, run_config=run_config, tune_config=tune.TuneConfig(
            search_alg=OptunaSearcher(spec), scheduler=make_scheduler(spec),
            num_samples=-1, max_concurrent_trials=spec.max_concurrent, reuse_actors=spec.reuse_workers))
    t0 = time.time()
    grid = tuner.fit()  # Ctrl-C: Ray stops the trials, saves the experiment state and returns
    tracker = _tracker(spec)
    if tracker:  # runs are found by tags, so this works the same after a restore
        try:
            tracker.start(sweep_params)
        except Exception as err:  # noqa: BLE001 -- the sweep's results must not depend on the server
            print(f"slr: MLflow at {spec.tracking_uri} is unreachable ({type(err).__name__}); the summary, trials.csv "
                  f"and best config are in {spec.sweep_dir} but not on the parent run", file=sys.stderr)
            tracker = None
    if left := unfinished(spec):
        if tracker:
            tracker.interrupted()
        raise SweepInterrupted(spec.name, *left, spec.num_trials)
    return summarize(spec, grid, corpus, tracker, wall_seconds=time.time() - t0)


def unfinished(spec: ExperimentSpec) -> tuple[int, int] | None:
    """(finished, running) trials of a sweep that is not done yet, from its study (the record of outcomes); None
    when every trial has its outcome."""
    import optuna
    trials = open_study(spec).get_trials(deepcopy=False)
    finished = sum(t.state.is_finished() for t in trials)
    running = sum(t.state == optuna.trial.TrialState.RUNNING for t in trials)
    return None if running == 0 and finished >= spec.num_trials else (finished, running)


def _check_unchanged(path: Path, doc: dict[str, Any]) -> None:
    """A resumed sweep goes on as it was defined: a changed experiment (more trials, another space) would be
    recorded as if the sweep had always been so while Ray restores the old one."""
    if not path.exists():  # a sweep on a URI resumed from another machine: Ray's own state is the definition
        return
    old, new = _flat(yaml.safe_load(path.read_text()) or {}), _flat(doc)
    changed = sorted(k for k in old.keys() | new.keys() if old.get(k) != new.get(k))
    if changed:
        shown_ = "; ".join(f"{k}: {old.get(k)!r} -> {new.get(k)!r}" for k in changed[:6])
        raise ValueError(f"--resume: the experiment differs from the sweep's own ({path}) in {shown_}. A resumed "
                         "sweep goes on as it was started: undo the change, or start a new sweep (another name)")


def _flat(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, dict) and v:
            out.update(_flat(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def _tracker(spec: ExperimentSpec, background: bool = False) -> SweepTracker | None:
    if not spec.mlflow.enabled:
        return None
    # The embedded default store keeps its artifacts in the sweep folder, not in ./mlruns of wherever it ran
    artifacts = None if spec.mlflow.tracking_uri else (spec.sweep_dir / "mlartifacts").as_uri()
    return SweepTracker(spec.tracking_uri, spec.mlflow.experiment or spec.name, spec.name, spec.sweep_dir,
                        background=background, artifact_location=artifacts)


class _ParamsOf:
    """Trial -> (flattened resolved config, config YAML) for its MLflow run (picklable, unlike a lambda)."""

    def __init__(self, base: dict[str, Any], max_t: int):
        self.base, self.max_t = base, max_t

    def __call__(self, trial) -> tuple[dict[str, Any], str]:  # noqa: ANN001
        cfg = trial_config(self.base, trial.config, self.max_t)
        return cfg.flat(), cfg.to_yaml()


def summarize(spec: ExperimentSpec, grid, corpus: str, tracker: SweepTracker | None,
              wall_seconds: float) -> dict[str, Any]:
    """summary.json + trials.csv + best_config.yaml; the best trial by its best dev WER over epochs."""
    import optuna

    study = open_study(spec)
    by_state: dict[str, int] = {}
    for t in study.trials:
        by_state[t.state.name.lower()] = by_state.get(t.state.name.lower(), 0) + 1
    # Optuna is told every outcome as it happens; Ray's restored state can be older (a killed driver)
    told = {t.user_attrs.get("ray_trial_id"): t for t in study.trials if t.state.is_finished()}
    outcome = {"COMPLETE": "completed", "PRUNED": "stopped-by-asha", "FAIL": "failed"}
    rows, curves = [], {}
    for result in grid:
        df = result.metrics_dataframe
        metrics = result.metrics or {}
        best = float(df[METRIC].min()) if df is not None and METRIC in df and len(df) else math.nan
        best_epoch = int(df.loc[df[METRIC].idxmin(), "epoch"]) if not math.isnan(best) else None
        trial_id = metrics.get("trial_id") or Path(result.path).name
        told_best = _told_best(told[trial_id]) if trial_id in told else (math.nan, None)
        if not math.isnan(told_best[0]):
            # Optuna's record is committed at every report; Ray's files can lack the epochs a killed driver had
            # not synced (a trial then looked worse than it was and lost the ranking)
            best, best_epoch = told_best
        failed = result.error or metrics.get("failed_reason")
        status = "failed" if failed else ("completed" if metrics.get("finished") else "stopped-by-asha")
        epochs = int(metrics.get("epoch", 0))
        if trial_id in told:
            status = outcome.get(told[trial_id].state.name, status)
            epochs = max(epochs, max(told[trial_id].intermediate_values, default=0))
        params = result.config or (told[trial_id].params if trial_id in told else {})
        rows.append(dict(trial_id=trial_id, path=result.path, status=status, best_dev_wer=best,
                         best_epoch=best_epoch, epochs=epochs,
                         params={k: params.get(k) for k in spec.space},
                         checkpoint=_best_checkpoint(result, spec),
                         machine={k[len("machine_"):]: v for k, v in (result.metrics or {}).items()
                                  if k.startswith("machine_")}))
        curves[trial_id] = _curve(df)
    for trial_id, t in told.items():  # told, but never in a state Ray saved (the driver was killed first)
        if trial_id and trial_id not in curves:
            best, best_epoch = _told_best(t)
            rows.append(dict(trial_id=trial_id, path=None, status=outcome.get(t.state.name, "failed"),
                             best_dev_wer=best, best_epoch=best_epoch, epochs=max(t.intermediate_values, default=0),
                             params={k: t.params.get(k) for k in spec.space}, checkpoint=None, machine={}))
            curves[trial_id] = []
    # ties go to the trial Optuna asked first, as `slr sweep status` has it, whatever order Ray lists them in
    number = {t.user_attrs.get("ray_trial_id"): t.number for t in study.trials}
    ranked = sorted((r for r in rows if not math.isnan(r["best_dev_wer"])),
                    key=lambda r: (r["best_dev_wer"], number.get(r["trial_id"], math.inf)))
    best = ranked[0] if ranked else None
    sweep_dir = spec.sweep_dir
    summary = dict(
        sweep=spec.name, sweep_dir=str(sweep_dir), storage=spec.sweep_uri, corpus=corpus, num_trials=len(rows),
        trials_by_status={s: sum(r["status"] == s for r in rows) for s in ("completed", "stopped-by-asha", "failed")},
        optuna_states=by_state, optuna_storage=shown(spec.optuna_storage), study_name=spec.name,
        best_trial_id=best["trial_id"] if best else None, best_dev_wer=best["best_dev_wer"] if best else None,
        best_epoch=best["best_epoch"] if best else None, best_params=best["params"] if best else None,
        best_checkpoint=best["checkpoint"] if best else None, best_machine=best["machine"] if best else None,
        wall_seconds=wall_seconds,
        mlflow=dict(tracking_uri=spec.tracking_uri, experiment=tracker.experiment_name if tracker else None,
                    experiment_id=tracker.experiment_id if tracker else None,
                    parent_run_id=tracker.parent_id if tracker else None,
                    best_run_id=tracker.children.get(best["trial_id"]) if tracker and best else None),
        trials=rows,
    )
    if optuna.trial.TrialState.COMPLETE in {t.state for t in study.trials}:
        summary["optuna_best_value"] = study.best_value
    (sweep_dir / "summary.json").write_text(json.dumps(summary, indent=2, default=str))
    (sweep_dir / "curves.json").write_text(json.dumps(curves))
    files = {"summary": sweep_dir / "summary.json", "trials": _write_csv(sweep_dir / "trials.csv", rows, spec)}
    if best:
        base = spec.base_config().override({"data.corpus": corpus}).to_dict()
        cfg = trial_config(base, best["params"], spec.max_epochs)
        (sweep_dir / "best_config.yaml").write_text(cfg.to_yaml())
        files["best_config"] = sweep_dir / "best_config.yaml"
    if spec.remote:
        storage.upload(sweep_dir, spec.sweep_uri)
    if tracker:
        tracker.finish(summary, files)
    return summary


def _told_best(t) -> tuple[float, int | None]:  # noqa: ANN001 -- an optuna FrozenTrial
    """A trial's best dev WER and its epoch as the study recorded them (for trials whose Ray reports are gone)."""
    if "best_dev_wer" in t.user_attrs:  # OptunaSearcher.on_trial_result records both as they change
        return float(t.user_attrs["best_dev_wer"]), t.user_attrs.get("best_epoch")
    if not t.intermediate_values:
        return math.nan, None
    epoch = min(t.intermediate_values, key=lambda e: t.intermediate_values[e])
    return float(t.intermediate_values[epoch]), epoch


def _best_checkpoint(result, spec: ExperimentSpec) -> str | None:
    """The trial's best checkpoint: a local path, or a URI under a remote storage_path."""
    try:
        from ray.train._internal.storage import _exists_at_fs_path
        # the state lists checkpoints CheckpointRetention deleted after Ray's final save: only existing ones
        pairs = [(m.get(METRIC), c.path) for c, m in result.best_checkpoints
                 if m.get(METRIC) is not None and _exists_at_fs_path(c.filesystem, c.path)]
    except Exception:  # noqa: BLE001 -- a trial without checkpoints
        return None
    if not pairs:
        return None
    path = min(pairs)[1]
    return storage.uri_of(spec.storage_path, path) if spec.remote else path


CURVE_KEYS = ("epoch", "dev_wer", "dev_loss", "train_loss", "lr", "best_dev_wer", "epoch_seconds")


def _curve(df) -> list[dict[str, float]]:  # noqa: ANN001 -- a pandas DataFrame or None
    """A trial's per-epoch reports (the numbers the report plots), JSON-safe."""
    if df is None or not len(df):
        return []
    keys = [k for k in CURVE_KEYS if k in df]
    return [{k: float(v) for k, v in zip(keys, row) if v == v} for row in df[keys].itertuples(index=False)]


def _write_csv(path: Path, rows: list[dict[str, Any]], spec: ExperimentSpec) -> Path:
    import csv
    keys = ["trial_id", "status", "best_dev_wer", "best_epoch", "epochs", *spec.space]
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(keys)
        for r in rows:
            w.writerow([r["trial_id"], r["status"], r["best_dev_wer"], r["best_epoch"], r["epochs"],
                        *(r["params"].get(k) for k in spec.space)])
    return path
