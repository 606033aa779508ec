"""Experiment spec -> Ray Tune run. All Tuner wiring lives here (the trainable stays thin).

One sweep = one folder ``<storage_path>/<name>/`` holding Ray's experiment state and checkpoints,
the Optuna study (``optuna.db``), the embedded MLflow store by default (``mlflow.db``), the
experiment spec (``experiment.yaml``), ``summary.json``, ``curves.json`` (every trial's reports),
``trials.csv`` and ``best_config.yaml``. With a URI storage_path (``s3://...``) Ray writes state and
checkpoints there, the SQLite stores stay in ``<local_path>/<name>/`` on the driver, and the small files
are mirrored to the URI at the end (see tune.storage).
"""

from __future__ import annotations

import contextlib
import gc
import json
import logging
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from tune import rerank, savedstate, storage
from tune.callbacks import MlflowCallback, ProgressCallback, tensorboard_logger
from tune.experiment import ExperimentSpec, check_resources
from tune.lock import DriverLock
from tune.retention import CheckpointRetention
from tune.search import OptunaSearcher, make_scheduler, open_study, shown, trials_held
from tune.summary import summarize, with_rerank, write
from tune.tracking import SweepTracker, run_name
from tune.trainable import train_trial, trial_config
from tune.trials import METRIC

log = logging.getLogger(__name__)


def prepare_corpus(spec: ExperimentSpec) -> None:
    """Make sure the experiment's corpus exists and can train (an embedded synthetic preset is generated on first
    use), and that a teacher the config distils from (``train.teacher``) can teach on it."""
    path = spec.corpus_dir
    if not (path / "manifest.json").exists():
        if not spec.corpus.synth:
            raise FileNotFoundError(f"corpus {path} does not exist (set corpus.synth to generate one)")
        from slr.corpus.synthetic import generate
        print(f"generating the '{spec.corpus.synth}' corpus into {path} ...", flush=True)
        generate(spec.corpus.synth, path, seed=spec.corpus.seed, progress=sys.stderr.isatty())
    from slr.corpus import Corpus
    corpus = Corpus(path)
    corpus.require_splits("train", "dev")  # here, not as every trial failing three times in Ray
    base = spec.base_config()
    if base.train.teacher:  # the teacher's file, digest, vocabulary and layout, before any trial starts
        import torch

        from slr.teacher import Teacher
        Teacher(base.train, corpus, corpus.vocab, torch.device("cpu"))


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


def init_ray(address: str | None, spec: ExperimentSpec, verbose: bool = False) -> None:
    """Connect to ``address`` or start a private local Ray. ``verbose``: stream every trial's output to the
    driver's console (Ray's ``log_to_driver``); otherwise only the errors and warnings the callbacks print."""
    import ray
    ensure_ray_token()
    os.environ.setdefault("RAY_DEDUP_LOGS", "1")
    if ray.is_initialized():
        return
    if address:
        check_reachable(address)
        ray.init(address=address, log_to_driver=verbose)
    else:
        # address="local": always a fresh local Ray, never a cluster some earlier `ray start` left behind; its
        # session folder (logs, sockets, spilled objects) private to this user, not in the world-readable /tmp/ray
        ray.init(address="local", include_dashboard=False, log_to_driver=verbose, configure_logging=False,
                 _temp_dir=private_ray_dir())
    nodes = [n["Resources"] for n in ray.nodes() if n.get("Alive")]
    check_resources(spec, nodes)


def check_reachable(address: str) -> None:
    """Fail fast, naming the address, when no Ray cluster answers there: ``ray.init`` would retry for minutes,
    printing GCS warnings (seen with ``--address auto`` and the stale address file of a cluster long gone)."""
    import socket
    if "://" in ((os.environ.get("RAY_ADDRESS") or "") if address == "auto" else address):
        return  # Ray Client (ray://) and job-server URLs: ray.init itself reports those
    from ray._private.services import canonicalize_bootstrap_address
    from ray._private.utils import get_ray_address_file
    origin = ("RAY_ADDRESS" if os.environ.get("RAY_ADDRESS") else
              f"{get_ray_address_file(None)}, written by the last `ray start`") if address == "auto" else None
    try:
        resolved = canonicalize_bootstrap_address(address)
    except (ConnectionError, ValueError) as err:
        raise ConnectionError(f"--address {address}: {err}") from None
    if resolved is None:
        return  # "local": Ray starts one
    host, _, port = resolved.rpartition(":")
    try:
        socket.create_connection((host, int(port)), timeout=5).close()
    except OSError as err:
        where = f"{resolved} (from {origin})" if origin else resolved
        raise ConnectionError(f"no Ray cluster answers at {where}: {err.strerror or err}. Start one (`ray start "
                              "--head`, or `ray up cluster.yaml`), or leave out --address for a local Ray") from None


class SweepInterrupted(Exception):
    """The sweep ended before its trials did (Ctrl-C, or Ray stopped it): nothing was summarized."""

    def __init__(self, name: str, where: str):
        self.name = name
        super().__init__(f"sweep '{name}' was interrupted: {where} (saved with their checkpoints); nothing was "
                         "summarized or exported")


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


# The collector's thresholds while a Ray experiment runs: a young collection every 5,000 new objects (Python's
# default 700) and a full one every 100th older one (default 10). With the modules frozen the full collections'
# own brake (objects new since the last one over 25 % of the old, unfrozen ones) no longer holds them back: at the
# defaults a 1,000-trial ask loop ran 172 full collections, 4 s in all and up to 160 ms each; at these, 2
# (docs/benchmarks.md, "the searcher at 1,000 trials"). Cycles are freed later, not lost.
DRIVER_GC_THRESHOLDS = (5000, 20, 100)


@contextlib.contextmanager
def frozen_heap() -> Iterator[None]:
    """The driver's objects as they are before a Ray experiment (the modules it imported: torch, Ray, Optuna,
    MLflow; hundreds of thousands of objects) left out of the cyclic garbage collector until it ends. A full
    collection walks every object it tracks with the event loop stopped, and every waiting result waits behind
    it: 125 ms of each of the searcher's slowest asks, 15 ms with them frozen (docs/benchmarks.md, "the searcher
    at 1,000 trials"). What the experiment allocates is collected, less often (:data:`DRIVER_GC_THRESHOLDS`)."""
    gc.collect()
    gc.freeze()
    thresholds = gc.get_threshold()
    gc.set_threshold(*DRIVER_GC_THRESHOLDS)
    try:
        yield
    finally:
        gc.set_threshold(*thresholds)
        gc.unfreeze()


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
    prepare_corpus(spec)
    sweep_dir.mkdir(parents=True, exist_ok=True)
    # Absolute folders: status, report and export find the stores from any working directory.
    doc = {**spec.to_dict(), ("local_path" if spec.remote else "storage_path"): str(sweep_dir.parent)}
    if resume:
        _check_unchanged(sweep_dir / "experiment.yaml", doc)
    else:
        (sweep_dir / "experiment.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
        if spec.remote:
            storage.upload(sweep_dir, spec.sweep_uri, ("experiment.yaml",))
    init_ray(address, spec, verbose=verbose > 0)

    base = spec.base_config().to_dict()
    max_t = spec.max_epochs
    trainable = tune.with_resources(
        tune.with_parameters(trial_fn, base=base, max_epochs=max_t, gpu_fraction=spec.resources.gpu,
                             **({"costs": tuple(spec.costs)} if spec.costs else {})),
        {"cpu": spec.resources.cpu, "gpu": spec.resources.gpu})
    sweep_params = {"sweep": spec.name, "corpus": str(spec.corpus_dir), "num_trials": spec.num_trials,
                    "searcher": spec.searcher.algorithm, "scheduler": spec.scheduler.type,
                    **{f"space.{k}": json.dumps(v.__dict__) for k, v in spec.space.items()}}
    callbacks = _stage_callbacks(spec, spec.sweep_uri, spec.num_trials, verbose)
    if spec.mlflow.enabled:
        callbacks.append(MlflowCallback(_tracker(spec, background=spec.mlflow.background), sweep_params, _ParamsOf(base, max_t),
                                        spec.scheduler.grace_period, spec.scheduler.reduction_factor, max_t,
                                        name_of=_search_run_name))
    tuner = build_tuner(spec, trainable, [*callbacks, *extra_callbacks], verbose, resume)
    t0 = time.time()
    with frozen_heap():
        grid = tuner.fit()  # Ctrl-C: Ray stops the trials, saves the experiment state and returns
    tracker = _open_tracker(spec, sweep_params)
    study = open_study(spec)  # opened once: the record of outcomes for both questions below
    if left := unfinished(spec, study):
        if tracker:
            tracker.interrupted()
        raise SweepInterrupted(spec.name, f"{left[0]} of {spec.num_trials} trials finished, {left[1]} were still "
                                          "running")
    summary, curves = summarize(spec, grid, tracker, wall_seconds=time.time() - t0, study=study)
    if spec.rerank.top_k and summary["best_trial_id"]:
        with frozen_heap():
            stage = _rerank(spec, summary, trial_fn, base, sweep_params, verbose, extra_callbacks)
        tracker = _open_tracker(spec, sweep_params)  # finds the stage's runs too
        if left := rerank.unfinished_runs(stage):
            if tracker:
                tracker.interrupted()
            raise SweepInterrupted(spec.name, f"the search is done, but {left} re-rank runs of "
                                              f"{spec.rerank.top_k * spec.rerank.seeds} were not")
        summary = with_rerank(summary, rerank.results(spec, stage, tracker.children if tracker else {}),
                              tracker.children if tracker else {})
    summary["wall_seconds"] = time.time() - t0
    return write(spec, summary, curves, tracker)


def _stage_callbacks(spec: ExperimentSpec, uri: str, runs: int, verbose: int) -> list:
    """The callbacks every Tuner of a sweep (the search, the re-rank stage) starts with: checkpoint retention (Ray
    keeps every checkpoint; CheckpointRetention deletes one only once the saved state has moved past it), the
    TensorBoard logger the experiment asks for, and the console's progress over ``runs`` unless Ray prints its own."""
    callbacks: list = [CheckpointRetention(uri), tensorboard_logger(spec.tensorboard)]
    if verbose == 0:
        callbacks.append(ProgressCallback(runs))
    return callbacks


def _rerank(spec: ExperimentSpec, summary: dict[str, Any], trial_fn, base: dict[str, Any],  # noqa: ANN001, ANN202
            sweep_params: dict[str, Any], verbose: int, extra_callbacks: tuple):
    """The re-ranking stage (tune.rerank) with the sweep's callbacks: checkpoint retention, progress, MLflow."""
    n = spec.rerank.top_k * spec.rerank.seeds
    print(f"re-ranking the {spec.rerank.top_k} best trials over {spec.rerank.seeds} new training seeds each "
          f"({n} runs) ...", flush=True)
    callbacks = _stage_callbacks(spec, rerank.stage_uri(spec), n, verbose)
    if spec.mlflow.enabled:
        callbacks.append(MlflowCallback(_tracker(spec, background=spec.mlflow.background), sweep_params,
                                        _ParamsOf(base, spec.max_epochs, key="run"), spec.max_epochs, 2,
                                        spec.max_epochs, tags_of=_rerank_tags, name_of=_rerank_run_name))
    return rerank.run_stage(spec, summary, trial_fn, base, [*callbacks, *extra_callbacks], verbose)


def _rerank_tags(trial) -> dict[str, str]:  # noqa: ANN001
    run = trial.config["run"]
    return {"slr.stage": rerank.STAGE, "slr.rerank_of": str(run["candidate"]), "slr.rerank_seed": str(run["seed"])}


def _search_run_name(trial) -> str:  # noqa: ANN001
    """``t04 lr=1.0e-3 blocks=8``: the trial's place in the order trials started (Ray's counter, from 1) and its
    searched values."""
    number = trial.experiment_tag.split("_", 1)[0]
    return run_name(f"t{int(number):02d}" if number.isdigit() else trial.trial_id, trial.config)


def _rerank_run_name(trial) -> str:  # noqa: ANN001
    """``rerank #1 seed=2 lr=1.0e-3 ...``: the candidate's rank in the search, its new seed, its values."""
    run = trial.config["run"]
    values = {k: v for k, v in run["params"].items() if k != "train.seed"}
    return run_name(f"rerank #{run.get('rank', '?')} seed={run['seed']}", values)


def _open_tracker(spec: ExperimentSpec, sweep_params: dict[str, Any]) -> SweepTracker | None:
    """The driver's own tracker with the sweep's runs found (by tags: the same after a restore), or None when MLflow
    is off or unreachable (the sweep's results must not depend on the server)."""
    tracker = _tracker(spec)
    if tracker:
        try:
            tracker.start(sweep_params)
        except Exception as err:  # noqa: BLE001
            print(f"slr: MLflow at {spec.tracking_uri} is unreachable ({type(err).__name__}); the summary, trials.csv "
                  f"and best config are in {spec.sweep_dir} but not on the parent run", file=sys.stderr)
            tracker = None
    return tracker


def build_tuner(spec: ExperimentSpec, trainable, callbacks: list | tuple = (), verbose: int = 0,  # noqa: ANN001
                resume: bool = False):  # noqa: ANN201 -- a ray.tune.Tuner
    """The sweep's Tuner, all its wiring in one expression: the Optuna searcher, ASHA (or FIFO), the run and
    checkpoint configuration; or, with ``resume``, the same sweep restored from its saved state. ``trainable`` is
    any Ray Tune trainable (the sweep's :func:`tune.trainable.train_trial` with its resources, or a benchmark's
    table replay)."""
    from ray import tune
    if resume:
        savedstate.repair(spec.sweep_uri)  # a state file a killed driver left cut short
        return tune.Tuner.restore(spec.sweep_uri, trainable=trainable, resume_errored=True, restart_errored=False,
                                  param_space=None)
    run_config = tune.RunConfig(
        name=spec.name, storage_path=spec.ray_storage, callbacks=list(callbacks), verbose=verbose,
        failure_config=tune.FailureConfig(max_failures=spec.max_failures),
        # Ray keeps every checkpoint; tune.retention.CheckpointRetention deletes one only once the saved state
        # has moved past it
        checkpoint_config=tune.CheckpointConfig(num_to_keep=None, checkpoint_score_attribute=METRIC,
                                                checkpoint_score_order="min"))
    # The scheduler and the searcher carry their own metrics (ASHA may rank by dev loss), so none here; the
    # searcher ends the sweep at num_trials. reuse_workers (Ray's reuse_actors): a slot's worker process runs its
    # next trial, with no process start, imports or corpus mapping per trial (docs/benchmarks.md, goodput). A
    # driver killed just after a trial starts can leave an Optuna trial that Ray's last state save never saw: the
    # searcher re-runs it as a new trial on resume and the tracker closes its old MLflow run as KILLED (orphaned).
    tuner = tune.Tuner(trainable, run_config=run_config, tune_config=tune.TuneConfig(
        search_alg=OptunaSearcher(spec), scheduler=make_scheduler(spec),
        num_samples=-1, max_concurrent_trials=spec.max_concurrent, reuse_actors=spec.reuse_workers))
    savedstate.keep_all(spec.sweep_uri)  # tuner.pkl, just written: a resumed driver rewrites it
    return tuner


def unfinished(spec: ExperimentSpec, study=None) -> tuple[int, int] | None:  # noqa: ANN001 -- an optuna.Study
    """(finished, running) trials of a sweep that is not done yet, from its study (the record of outcomes); None
    when every trial has its outcome."""
    import optuna
    trials = (study or open_study(spec)).get_trials(deepcopy=False)
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
                        background=background, artifact_location=artifacts, dataset=_dataset(spec),
                        system_metrics=spec.mlflow.system_metrics)


def _dataset(spec: ExperimentSpec) -> dict[str, Any] | None:
    """The sweep's corpus as an MLflow dataset input (name, content digest, source, splits and sizes)."""
    from slr.corpus import Corpus
    try:
        corpus = Corpus(spec.corpus_dir)
    except Exception:  # noqa: BLE001 -- not made yet (the sweep synthesizes it later) or unreadable: no input
        return None
    m = corpus.manifest
    return dict(name=spec.corpus_dir.name, digest=corpus.digest(), source=str(spec.corpus_dir.resolve()),
                profile={"samples": m.get("counts", {}), "total_frames": m.get("total_frames"),
                         "vocab_size": len(corpus.vocab), "layout": m["layout"], "fps": m["fps"]})


class _ParamsOf:
    """Trial -> (flattened resolved config, config YAML) for its MLflow run (picklable, unlike a lambda).
    ``key``: where the trial's values sit in its Ray config (a re-rank run's under ``run``)."""

    def __init__(self, base: dict[str, Any], max_t: int, key: str | None = None):
        self.base, self.max_t, self.key = base, max_t, key

    def __call__(self, trial) -> tuple[dict[str, Any], str]:  # noqa: ANN001
        values = trial.config[self.key]["params"] if self.key else trial.config
        cfg = trial_config(self.base, values, self.max_t)
        return cfg.flat(), cfg.to_yaml()
