"""Optuna as a Ray Tune searcher, with trial outcomes told truthfully.

Ray's own OptunaSearch tells Optuna that a trial ASHA stopped early is COMPLETE with its early value,
which corrupts ``best_trial`` and parameter importance. Here a trial is told:

- COMPLETE only when its trainer finished its full budget (the last report carries ``finished=1``),
  with its best dev WER over epochs;
- PRUNED when the scheduler stopped it (intermediate values were reported every epoch);
- FAIL when it raised.

The study lives in RDB storage under the sweep name, so optuna-dashboard can open it and a resumed
sweep continues the same study: the Ray trial id is kept as a user attribute of its Optuna trial.

A multi-objective sweep (``objectives:``) has a multi-objective study: one direction per objective, a completed
trial told its best dev WER and its costs, searched by Optuna's multi-objective TPE (or NSGA-II). Optuna refuses
``Trial.report`` there, and its TPE cannot rank a pruned trial's intermediate values in such a study, so the
per-epoch values (what the scheduler's rungs are rebuilt from on resume) are kept in a user attribute instead
(:func:`intermediate`); ranking pruned trials is left to the scheduler (MO-ASHA, :class:`ResumableMOASHA`).
"""

from __future__ import annotations

import copy
import logging
import math
import warnings
from pathlib import Path
from typing import Any

import optuna
from optuna.samplers._tpe import sampler as tpe_sampler
from optuna.storages._cached_storage import _CachedStorage, _StudyInfo
from optuna.storages._rdb import models as rdb_models
from optuna.storages._rdb.storage import _create_scoped_session
from ray.tune.schedulers import ASHAScheduler, FIFOScheduler, TrialScheduler
from ray.tune.search import Searcher

from slr.config import ConfigError
from tune.experiment import ExperimentSpec, ParamSpec, active_keys
from tune.pareto import oriented, promotes
from tune.trials import COST_PREFIX, METRIC, STATE_OF_STATUS, status_of

log = logging.getLogger(__name__)
BEFORE_ASK = "slr:sampler_state_before_ask"  # study system attribute (OptunaSearcher.suggest)
INTERMEDIATE = "slr:intermediate"  # a multi-objective study's per-epoch values: {epoch: value} (a user attribute)


def intermediate(t: optuna.trial.FrozenTrial) -> dict[int, float]:
    """A trial's per-epoch values of the scheduler's metric: Optuna's intermediate values, or in a multi-objective
    study the user attribute that holds them."""
    if t.intermediate_values:
        return dict(t.intermediate_values)
    return {int(k): float(v) for k, v in t.user_attrs.get(INTERMEDIATE, {}).items()}


class _Stored:
    """What the study holds of one live trial's reports, read once per driver process and then kept in step with
    every write (the driver is the only writer of a live trial), so a result costs its writes and no read."""

    def __init__(self, t: optuna.trial.FrozenTrial):
        self.finished = t.state.is_finished()  # told before a killed driver's last state save
        self.values = {str(k): v for k, v in intermediate(t).items()}  # step -> value, as the user attribute keys it
        self.attrs = {k: v for k, v in t.user_attrs.items() if k.startswith(COST_PREFIX) or k == "best_dev_wer"}


def distribution(p: ParamSpec) -> optuna.distributions.BaseDistribution:
    if p.type == "choice":
        return optuna.distributions.CategoricalDistribution(p.values)
    if p.type == "int":
        return optuna.distributions.IntDistribution(int(p.low), int(p.high), log=p.log)
    return optuna.distributions.FloatDistribution(float(p.low), float(p.high), log=p.is_log)


def make_sampler(spec: ExperimentSpec, trial_number: int | None = None) -> optuna.samplers.BaseSampler:
    """The sweep's sampler; with ``trial_number``, TPE's and random search's generator is seeded for that trial
    (see :meth:`OptunaSearcher._complete_ask`). QMC keeps the sweep's seed: its sequence is the scrambling of
    that seed, and its position is in the study."""
    s = spec.searcher
    seed = s.seed if trial_number is None or s.algorithm == "qmc" else trial_seed(s.seed, trial_number)
    if s.algorithm == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if s.algorithm == "qmc":
        return optuna.samplers.QMCSampler(seed=seed, warn_independent_sampling=False)
    if s.algorithm == "nsga2":
        return optuna.samplers.NSGAIISampler(seed=seed, population_size=s.population_size)
    return OneReadTPE(seed=seed, n_startup_trials=s.n_startup_trials, multivariate=s.multivariate)


class OneReadTPE(optuna.samplers.TPESampler):
    """Optuna's TPE, reading the study's trials once per trial it samples instead of once per parameter.

    With ``constant_liar`` (Optuna 5's default: running trials count as bad ones, so that concurrent trials are not
    all sent to the same point) TPE bypasses the study's trial cache and reads every trial from storage again
    for each parameter it draws: 8 full reads of a 1,000-trial study per ask in the bench space, half of an ask's
    time (docs/benchmarks.md, "the searcher at 1,000 trials"). Nothing else writes to the study while the driver
    draws one trial's parameters (the searcher is the only writer, one call at a time), and TPE leaves the trial
    being drawn out of its own data, so one read per trial gives the draws that a read per parameter gives. The
    searcher hands it the read its ask made before creating the trial (``_read``), and TPE's count of finished trials
    (random draws until ``n_startup_trials``) comes from the same read: one read of the study per ask in all.

    For the same reason TPE's split of the trials into good and bad ones, which Optuna 5 makes over all trials
    whatever the parameter, is made once per trial instead of once per parameter (sorting 1,000 trials 8 times
    was a third of an ask). :meth:`_sample` is Optuna 5.1's ``TPESampler._sample`` with the split shared; a test
    checks that the draws equal Optuna's own TPE."""

    def __init__(self, **kwargs: Any):
        super().__init__(**kwargs)
        self._read: tuple[int, list[optuna.trial.FrozenTrial]] | None = None  # (trial number, the study's trials)
        self._split: tuple[int, tuple[list, list]] | None = None  # (trial number, (good trials, bad trials))

    def _sample(self, study: optuna.Study, trial: optuna.trial.FrozenTrial,
                search_space: dict[str, optuna.distributions.BaseDistribution]) -> dict[str, Any]:
        study = _ReadOnce(study, self, trial.number)
        below, above = self._split_for(study, trial)
        mpe_below = self._build_parzen_estimator(study, search_space, below, handle_below=True)
        mpe_above = self._build_parzen_estimator(study, search_space, above, handle_below=False)
        samples_below = mpe_below.sample(self._rng.rng, self._n_ei_candidates)
        acq_func_vals = self._compute_acquisition_func(samples_below, mpe_below, mpe_above)
        ret = optuna.samplers.TPESampler._compare(samples_below, acq_func_vals)
        return {name: dist.to_external_repr(ret[name]) for name, dist in search_space.items()}

    def _split_for(self, study: _ReadOnce, trial: optuna.trial.FrozenTrial) -> tuple[list, list]:
        """The trials TPE models as good and as bad while it draws ``trial`` (running ones count as bad: the
        constant liar), split once per trial."""
        if self._split is None or self._split[0] != trial.number:
            running = optuna.trial.TrialState.RUNNING
            states = [optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED]
            trials = study._get_trials(deepcopy=False, states=[*states, running] if self._constant_liar else states)
            trials = [t for t in trials if t.number != trial.number]
            if self._gamma is None:
                self._gamma = tpe_sampler.default_gamma if len(study.directions) <= 1 else \
                    tpe_sampler.default_gamma_multiobjective
            n_below = self._gamma(sum(t.state != running for t in trials))  # running trials are not counted
            self._split = (trial.number, tpe_sampler._split_trials(study, trials, n_below))
        return self._split[1]

    def sample_independent(self, study: optuna.Study, trial: optuna.trial.FrozenTrial, param_name: str,
                           param_distribution: optuna.distributions.BaseDistribution) -> Any:  # noqa: ANN401
        return super().sample_independent(_ReadOnce(study, self, trial.number), trial, param_name,
                                          param_distribution)

    def sample_relative(self, study: optuna.Study, trial: optuna.trial.FrozenTrial,
                        search_space: dict[str, optuna.distributions.BaseDistribution]) -> dict[str, Any]:
        return super().sample_relative(_ReadOnce(study, self, trial.number), trial, search_space)


class _ReadOnce:
    """The study as :class:`OneReadTPE` sees it while it draws trial ``number``: its trials read once."""

    def __init__(self, study: optuna.Study, sampler: OneReadTPE, number: int):
        self._study, self._sampler, self._number = study, sampler, number

    def __getattr__(self, name: str) -> Any:  # noqa: ANN401 -- everything else is the study's
        return getattr(self._study, name)

    def _get_trials(self, deepcopy: bool = True, states: Any = None,  # noqa: ANN401
                    use_cache: bool = False) -> list[optuna.trial.FrozenTrial]:
        if self._sampler._read is None or self._sampler._read[0] != self._number:
            self._sampler._read = (self._number, self._study._get_trials(deepcopy=False, use_cache=False))
        trials = [t for t in self._sampler._read[1] if states is None or t.state in states]
        return copy.deepcopy(trials) if deepcopy else trials


def trial_seed(seed: int, trial_number: int) -> int:
    """A generator seed per (sweep seed, trial number): a trial's draw depends on the study's trials so far and
    nothing else, not on how many draws this driver process made before it."""
    import numpy as np
    return int(np.random.SeedSequence([seed, trial_number]).generate_state(1)[0])


def study_not_here(spec: ExperimentSpec) -> str | None:
    """Why the sweep's study cannot be opened on this machine (its SQLite file is on the driver), or None."""
    url = spec.optuna_storage
    if url.startswith("sqlite:///") and not Path(url.removeprefix("sqlite:///")).exists():
        return (f"the Optuna study of '{spec.name}' is in SQLite on the sweep's driver ({url}): run this there, "
                "or give the sweep a shared database (searcher.storage)")
    return None


def shown(url: str) -> str:
    """A storage URL fit for messages and summaries: any password in it replaced by ***."""
    from sqlalchemy.engine import make_url
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 -- not a SQLAlchemy URL: nothing to hide in it
        return url


def trials_held(spec: ExperimentSpec) -> int:
    """How many trials the sweep's study already holds in its storage (0: no such study yet)."""
    try:
        return len(optuna.load_study(study_name=spec.name, storage=spec.optuna_storage).get_trials(deepcopy=False))
    except KeyError:
        return 0


def directions(spec: ExperimentSpec) -> list[str]:
    """The study's directions: one per objective of a multi-objective sweep, else dev WER minimized."""
    return [f"{o.mode}imize" for o in spec.objectives] or ["minimize"]


def driver_storage(url: str) -> str | optuna.storages.BaseStorage:
    """The study's storage as the driver writes it. A SQLite study commits in write-ahead-log mode with
    ``synchronous=NORMAL``: a commit no longer waits for the disk (fsync), which a disk busy with the trials'
    checkpoints (and, on one machine, their logs) stretched from 3 ms to seconds while every result waited on the
    driver (docs/benchmarks.md, "Sweep at scale"). A killed driver loses nothing it committed; only a machine's
    power cut may lose the last commits, and the file stays whole. Other databases are used as they are."""
    if not url.startswith("sqlite:"):
        return url
    import sqlalchemy
    storage = optuna.storages.RDBStorage(url)

    def _commits_without_fsync(dbapi_connection: Any, _record: Any) -> None:  # noqa: ANN401
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")  # kept in the file: later readers and writers use it too
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()
    sqlalchemy.event.listen(storage.engine, "connect", _commits_without_fsync)
    storage.engine.dispose()  # the connections made before the listener (the schema check) are closed
    return storage


class SearcherCache(_CachedStorage):
    """Optuna's trial cache, for the searcher's study: a running trial is read again only after it changed, not on
    every read of the study.

    Optuna's cache keeps finished trials and reads every unfinished one again, in full, on each read, since another
    process may have written to it. In a sweep the searcher writes its study through this cache (one call at a
    time), and the only other writer, the scheduler rebuilding its rungs on restore, changes trials' states. With
    128 trials at once those full reads were two thirds of an ask (docs/benchmarks.md, "Sweep at scale"). So a read
    asks the database for the states of the unfinished trials (one small query), and reads in full only the trials
    that are new, whose state changed, or that were written through this cache since the last read (between two
    asks, the trials that reported: ~16 of 128 in the 128-at-once benchmark)."""

    def __init__(self, backend: optuna.storages.RDBStorage) -> None:
        super().__init__(backend)
        self._read_up_to: dict[int, int] = {}  # study id -> the newest trial id read from the database
        self._written: set[int] = set()  # trials written through this cache since the last read

    def set_trial_param(self, trial_id: int, param_name: str, param_value_internal: float,
                        distribution: optuna.distributions.BaseDistribution) -> None:
        super().set_trial_param(trial_id, param_name, param_value_internal, distribution)
        self._wrote(trial_id)

    def set_trial_state_values(self, trial_id: int, state: optuna.trial.TrialState,
                               values: Any = None) -> bool:  # noqa: ANN401 -- a sequence of floats or None
        try:
            return super().set_trial_state_values(trial_id, state, values)
        finally:
            self._wrote(trial_id)

    def set_trial_intermediate_value(self, trial_id: int, step: int, intermediate_value: float) -> None:
        super().set_trial_intermediate_value(trial_id, step, intermediate_value)
        self._wrote(trial_id)

    def set_trial_user_attr(self, trial_id: int, key: str, value: Any) -> None:  # noqa: ANN401
        super().set_trial_user_attr(trial_id, key, value)
        self._wrote(trial_id)

    def set_trial_system_attr(self, trial_id: int, key: str, value: Any) -> None:  # noqa: ANN401
        super().set_trial_system_attr(trial_id, key, value)
        self._wrote(trial_id)

    def write_result(self, trial_id: int, intermediate: tuple[int, float] | None, user_attrs: dict[str, Any]) -> None:
        """One result's writes to a trial, an intermediate value (step, value) and user attributes, in one
        transaction (what ``set_trial_intermediate_value`` and ``set_trial_user_attr`` write, one commit each)."""
        backend, attr = self._backend, rdb_models.TrialUserAttributeModel
        with _create_scoped_session(backend.scoped_session, True) as session:
            if intermediate is not None:
                backend._set_trial_intermediate_value_without_commit(session, trial_id, *intermediate)
            for key, value in user_attrs.items():
                backend._set_trial_attr_without_commit(session, attr, trial_id, key, value)
        self._wrote(trial_id)

    def _wrote(self, trial_id: int) -> None:
        with self._lock:
            self._written.add(trial_id)

    def _read_trials_from_remote_storage(self, study_id: int) -> None:
        with self._lock:
            study = self._studies.setdefault(study_id, _StudyInfo())
            cached = {i: study.trials[self._trial_id_to_study_id_and_number[i][1]].state
                      for i in study.unfinished_trial_ids}  # as last read or written: trial id -> its state
            now = self._states(cached)
            stale = {i for i, state in cached.items() if now.get(i) != state} | (self._written & cached.keys())
            self._written.clear()
            newest = self._read_up_to.get(study_id, -1)
            trials = self._backend._get_trials(study_id, states=None, included_trial_ids=stale,
                                               trial_id_greater_than=newest)
            if not trials:
                return
            self._read_up_to[study_id] = max(newest, *(t._trial_id for t in trials))
            self._add_trials_to_cache(study_id, trials)
            for trial in trials:  # as Optuna's cache keeps its books
                if not trial.state.is_finished():
                    study.unfinished_trial_ids.add(trial._trial_id)
                    continue
                study.last_finished_trial_id = max(study.last_finished_trial_id, trial._trial_id)
                study.unfinished_trial_ids.discard(trial._trial_id)

    def _states(self, trial_ids: Any) -> dict[int, optuna.trial.TrialState]:  # noqa: ANN401 -- a collection of ids
        """The trials' states in the database now (one query)."""
        if not trial_ids:
            return {}
        model = rdb_models.TrialModel
        with _create_scoped_session(self._backend.scoped_session) as session:
            rows = session.query(model.trial_id, model.state).filter(model.trial_id.in_(list(trial_ids))).all()
        return dict(rows)


def open_study(spec: ExperimentSpec, storage: str | None = None, searcher: bool = False) -> optuna.Study:
    """Create or load the sweep's study; a new study gets the seed baseline enqueued first. ``searcher``: the
    study as the searcher holds it (:class:`SearcherCache`)."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    store = driver_storage(storage or spec.optuna_storage)
    if searcher:
        store = SearcherCache(store if isinstance(store, optuna.storages.RDBStorage)
                              else optuna.storages.RDBStorage(store))
    study = optuna.create_study(study_name=spec.name, storage=store, directions=directions(spec),
                                sampler=make_sampler(spec), load_if_exists=True)
    held = [d.name.lower() for d in study.directions]
    if held != directions(spec):
        raise ConfigError("objectives", [o.metric for o in spec.objectives] or ["dev_wer"],
                          f"the study '{spec.name}' in {shown(storage or spec.optuna_storage)} was created with "
                          f"{len(held)} objective(s) ({', '.join(held)}): give the sweep another name")
    if not study.trials:
        if len(spec.objectives) > 1 and not study.metric_names:
            with warnings.catch_warnings():  # experimental in Optuna 5, and only labels
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                study.set_metric_names([o.metric for o in spec.objectives])  # optuna-dashboard's axis labels
        if spec.baseline_first and spec.baseline():
            study.enqueue_trial(spec.baseline(), user_attrs={"baseline": True})
    return study


def make_scheduler(spec: ExperimentSpec, storage: str | None = None):  # noqa: ANN201 -- a ray.tune TrialScheduler
    """ASHA over epochs, ranking by ``scheduler.metric`` (or FIFO: every trial gets its full budget); both
    resume exactly (see :class:`_ResumesFromStudy`)."""
    s = spec.scheduler
    if s.type == "none":
        return ResumableFIFO(spec, storage)
    kind = ResumableMOASHA if s.type == "mo-asha" else ResumableASHA
    return kind(spec, storage, metric=s.metric, mode="min", time_attr="training_iteration",
                max_t=spec.max_epochs, grace_period=s.grace_period, reduction_factor=s.reduction_factor)


class _ResumesFromStudy:
    """A scheduler that takes up a restored sweep where the killed driver left it, using the Optuna study
    (committed at every report, unlike Ray's periodic experiment state) as the record of what happened.

    Ray restores a sweep's trials from its last state save, which can be older than the study: a trial the
    searcher already told Optuna it finished (completed, or stopped by ASHA) can come back PENDING. Such a
    trial is counted done -- stopped before it runs -- instead of training on past its outcome."""

    def __init__(self, spec: ExperimentSpec, storage: str | None):
        self.spec, self.storage = spec, storage or spec.optuna_storage
        self._restored_checked = False

    def __getstate__(self) -> dict[str, Any]:  # pickled with the tuner: a restore checks again
        return {**self.__dict__, "_restored_checked": False}

    def _study_trials(self) -> list[optuna.trial.FrozenTrial]:
        return open_study(self.spec, self.storage).get_trials(deepcopy=False)

    def choose_trial_to_run(self, tune_controller):  # noqa: ANN001, ANN201
        if not self._restored_checked:
            self._restored_checked = True
            done = {t.user_attrs.get("ray_trial_id") for t in self._study_trials() if t.state.is_finished()}
            for trial in tune_controller.get_trials():
                if trial.status == "PENDING" and trial.trial_id in done:
                    log.info("trial %s: Optuna holds its outcome from before the restart; counted done", trial)
                    tune_controller.stop_trial(trial)
        return super().choose_trial_to_run(tune_controller)


class ResumableFIFO(_ResumesFromStudy, FIFOScheduler):
    def __init__(self, spec: ExperimentSpec, storage: str | None = None):
        _ResumesFromStudy.__init__(self, spec, storage)
        FIFOScheduler.__init__(self)


class ResumableASHA(_ResumesFromStudy, ASHAScheduler):
    """Ray's ASHA, whose rung records are rebuilt from the study on restore (Ray brings the scheduler back as it
    was built, with empty rungs: ray-project/ray#30838), so a resumed sweep stops exactly the trials, at exactly
    the epochs, an uninterrupted one would. A trial's record at a rung is its metric at that epoch, which
    :class:`OptunaSearcher` stores as the trial's intermediate value (one report per epoch)."""

    def __init__(self, spec: ExperimentSpec, storage: str | None = None, **asha: Any):
        _ResumesFromStudy.__init__(self, spec, storage)
        ASHAScheduler.__init__(self, **asha)
        self._rebuilt = False

    def __getstate__(self) -> dict[str, Any]:
        return {**super().__getstate__(), "_rebuilt": False}

    def on_trial_add(self, tune_controller, trial) -> None:  # noqa: ANN001
        super().on_trial_add(tune_controller, trial)
        if not self._rebuilt:  # the first trial of this driver: a restore brings every earlier one first
            self._rebuilt = True
            self.rebuild(self._study_trials())

    def rebuild(self, trials: list[optuna.trial.FrozenTrial]) -> int:
        """Record every trial's value at every rung it reached; returns how many records were made.

        An unfinished trial whose last value sits exactly on a rung may have been killed between ASHA's decision
        there and Optuna's record of the outcome. That decision is taken again here, against the rung as the
        other trials left it. The same as the lost one when trials run one at a time; with several at once, the
        rung may also hold trials that reached it later. A trial it stops is told PRUNED now, so that
        :meth:`choose_trial_to_run` counts it done instead of letting it train past the rung."""
        (bracket,) = self._brackets  # one bracket (make_scheduler): every trial's records are in it
        made, pending = 0, []
        for t in trials:
            ray_id, values = t.user_attrs.get("ray_trial_id"), intermediate(t)
            for milestone, recorded in bracket._rungs:
                # ASHA records a trial at its first report at or past the milestone
                step = min((e for e in values if e >= milestone), default=None)
                if not ray_id or step is None or ray_id in recorded:
                    continue
                if not t.state.is_finished() and step == max(values):
                    pending.append((t, recorded, self.record(values[step], t.user_attrs)))
                    continue
                recorded[ray_id] = self.record(values[step], t.user_attrs)
                made += 1
        for t, recorded, reward in pending:
            stop = self.stops(bracket, recorded, reward)
            recorded[t.user_attrs["ray_trial_id"]] = reward
            made += 1
            if stop:
                log.info("trial %s: ASHA's decision at epoch %d was lost with the driver; taken again: stop",
                         t.user_attrs["ray_trial_id"], max(intermediate(t)))
                open_study(self.spec, self.storage).tell(t.number, state=optuna.trial.TrialState.PRUNED)
        return made

    def record(self, value: float, attrs: dict[str, Any]) -> Any:  # noqa: ANN401 -- what a rung holds
        """What a rung records for a trial whose scheduler metric was ``value`` there (Ray's: the metric signed
        so that larger is better)."""
        return self._metric_op * value

    @staticmethod
    def stops(bracket: Any, recorded: dict[str, Any], reward: Any) -> bool:  # noqa: ANN401
        """Ray's rule at a rung: stop below the (1 - 1/factor) quantile of what the rung holds."""
        cutoff = bracket.cutoff(recorded)
        return cutoff is not None and reward < cutoff


class ResumableMOASHA(ResumableASHA):
    """MO-ASHA (Schmucker et al. 2021): ASHA whose rungs rank trials by non-dominated sorting of (the scheduler's
    metric, each cost of the sweep's objectives), ties by NSGA-II's crowding distance (:func:`tune.pareto.promotes`):
    a cheap model with a worse loss can go on where single-objective ASHA would stop it. A trial's costs come with
    every report (``cost_*``, measured when it starts). Its rungs hold one point per trial, all minimized, and are
    rebuilt on resume from the study like ASHA's (the costs from the trials' user attributes)."""

    def __init__(self, spec: ExperimentSpec, storage: str | None = None, **asha: Any):
        super().__init__(spec, storage, **asha)
        self.costs = [(o.metric, o.mode) for o in spec.objectives if o.metric != METRIC]

    def record(self, value: float, attrs: dict[str, Any]) -> tuple[float, ...]:
        """``(metric, cost, ...)``, every entry minimized (a ``max`` cost negated; a missing one worst)."""
        return oriented([value, *(attrs.get(f"{COST_PREFIX}{m}") for m, _ in self.costs)],
                        ["min", *(mode for _, mode in self.costs)])

    @staticmethod
    def stops(bracket: Any, recorded: dict[str, Any], reward: Any) -> bool:  # noqa: ANN401
        return not promotes(list(recorded.values()), reward, bracket.rf)

    def on_trial_result(self, tune_controller, trial, result: dict[str, Any]) -> str:  # noqa: ANN001
        if self._time_attr not in result or self._metric not in result:
            return TrialScheduler.CONTINUE
        if result[self._time_attr] >= self._max_t and self._stop_last_trials:
            action = TrialScheduler.STOP
        else:
            action = self._decide(trial.trial_id, result[self._time_attr], self.record(result[self._metric], result))
        if action == TrialScheduler.STOP:
            self._num_stopped += 1
        return action

    def on_trial_complete(self, tune_controller, trial, result: dict[str, Any]) -> None:  # noqa: ANN001
        if self._time_attr in result and self._metric in result:
            self._decide(trial.trial_id, result[self._time_attr], self.record(result[self._metric], result))
        self._trial_info.pop(trial.trial_id, None)

    def _decide(self, trial_id: str, epoch: float, point: tuple[float, ...]) -> str:
        """Ray's ``_Bracket.on_result`` with the Pareto rule: at the first rung this report reaches that has no
        record of the trial yet, record it, and stop it unless it ranks in the rung's top 1/factor."""
        (bracket,) = self._brackets
        for milestone, recorded in bracket._rungs:  # highest milestone first
            if epoch < milestone or trial_id in recorded:
                continue
            stop = self.stops(bracket, recorded, point)
            recorded[trial_id] = point
            return TrialScheduler.STOP if stop else TrialScheduler.CONTINUE
        return TrialScheduler.CONTINUE


class OptunaSearcher(Searcher):
    """Ray Tune searcher asking Optuna for configs and telling it COMPLETE / PRUNED / FAIL."""

    def __init__(self, spec: ExperimentSpec, storage: str | None = None):
        super().__init__(metric=METRIC, mode="min")
        self.spec = spec
        self.storage = storage or spec.optuna_storage
        self.dists = {k: distribution(p) for k, p in spec.space.items()}
        self._study: optuna.Study | None = None
        self._live: dict[str, int] = {}  # Ray trial id -> Optuna storage trial id
        self._restored = False  # _live came from Ray's checkpoint of this searcher
        self._orphans: list[int] = []  # RUNNING Optuna trials no restored Ray trial will finish
        self._stored: dict[int, _Stored] = {}  # Optuna trial id -> its reports as stored (this process's reads)

    @property
    def study(self) -> optuna.Study:
        if self._study is None:
            self._study = open_study(self.spec, self.storage, searcher=True)
            self._adopt_running()
        return self._study

    def __getstate__(self) -> dict[str, Any]:  # Ray pickles the searcher; the study reopens from storage
        return {**self.__dict__, "_study": None, "_stored": {}}  # a restored driver reads each trial again

    def __setstate__(self, state: dict[str, Any]) -> None:  # also a searcher pickled before _stored existed
        self.__dict__.update({**state, "_stored": {}})

    def _adopt_running(self) -> None:
        """After a driver restart, re-link Ray trials to their still-RUNNING Optuna trials. A RUNNING trial
        asked after Ray's last experiment-state save (which holds this searcher's map), or one whose ask the kill
        interrupted (no Ray trial id yet, perhaps not all its parameters), has no Ray trial to come back: it is an
        orphan, handed to the next new Ray trial instead of being left RUNNING forever."""
        for t in self._study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
            rid = t.user_attrs.get("ray_trial_id")
            if not rid or (self._restored and rid not in self._live):
                self._orphans.append(t._trial_id)
            else:
                self._live[rid] = t._trial_id

    def suggest(self, trial_id: str) -> dict[str, Any] | None:
        if trial_id in self._live:  # a restored trial asks again: give it the same parameters
            return dict(optuna.trial.Trial(self.study, self._live[trial_id]).params)
        study = self.study  # first use opens the study and finds the orphans
        while self._orphans:  # an orphan's configuration runs before anything new is asked
            tid = self._orphans.pop(0)
            if study._storage.get_trial(tid).state != optuna.trial.TrialState.RUNNING:
                continue  # told meanwhile (ASHA's lost decision, taken again on restore)
            trial = self._complete_ask(study, tid, orphan=True)
            trial.set_user_attr("ray_trial_id", trial_id)
            self._live[trial_id] = tid
            return dict(trial.params)
        # One read of the study serves the count, the queue and TPE's data (which leaves the trial it draws out):
        # each read costs a fresh read of every running trial (Optuna's cache keeps only finished ones), so three
        # reads per ask cost three times as much at 128 trials at once (docs/benchmarks.md, "the searcher").
        read = study._get_trials(deepcopy=False, use_cache=False)
        waiting = optuna.trial.TrialState.WAITING
        if sum(t.state != waiting for t in read) >= self.spec.num_trials:
            return Searcher.FINISHED
        # The sampler's state in the study (QMC's sequence position) as it was before this ask: a kill inside
        # the ask can leave the trial without its parameters but the state moved on (see _complete_ask).
        attrs = study._storage.get_study_system_attrs(study._study_id)
        study._storage.set_study_system_attr(study._study_id, BEFORE_ASK,
                                             {k: v for k, v in attrs.items() if k != BEFORE_ASK})
        # Study.ask, with the sampler seeded for the trial it draws (_complete_ask)
        tid = study._pop_waiting_trial_id() if any(t.state == waiting for t in read) else None
        if tid is None:
            tid = study._storage.create_new_trial(study._study_id)
        trial = self._complete_ask(study, tid, read=read)
        trial.set_user_attr("ray_trial_id", trial_id)
        self._live[trial_id] = trial._trial_id
        return dict(trial.params)

    def _complete_ask(self, study: optuna.Study, tid: int, orphan: bool = False,
                      read: list[optuna.trial.FrozenTrial] | None = None) -> optuna.trial.Trial:
        """Trial ``tid`` with every parameter drawn. For an ``orphan`` whose ask the kill interrupted, the ask is
        finished as it would have been, with the sampler's study state put back to where that ask began (asks run
        one at a time, so only the newest trial can be incomplete and the snapshot is its own)."""
        # TPE's and random search's draws are seeded per trial number: a driver restarted from scratch (its
        # sampler's generator new) draws what the uninterrupted one would have, and never an earlier trial's
        # startup point again (the same seed, replayed from its first draw, did exactly that).
        number = study._storage.get_trial_number_from_id(tid)
        study.sampler = make_sampler(self.spec, number)
        if read is not None and isinstance(study.sampler, OneReadTPE):  # ``read``: the study as it is now
            study.sampler._read = (number, read)
        study._thread_local.cached_all_trials = None  # as Study.ask: the sampler sees the storage as it is now
        trial = optuna.trial.Trial(study, tid)
        if orphan and set(trial.params) != set(active_keys(self.spec.space, trial.params)):
            attrs = study._storage.get_study_system_attrs(study._study_id)
            for key, value in attrs.get(BEFORE_ASK, {}).items():
                if attrs.get(key) != value:
                    study._storage.set_study_system_attr(study._study_id, key, value)
            log.info("Optuna trial %d: its ask was interrupted by the driver's end; its parameters drawn again",
                     trial.number)
            trial = optuna.trial.Trial(study, tid)  # a fresh look at the sampler's (restored) state
        drawn: dict[str, Any] = {}
        for name, dist in self.dists.items():  # in the space's order: a conditional key after what it names
            if self.spec.space[name].active(drawn):
                drawn[name] = trial._suggest(name, dist)  # what Study.ask does; one stored before a kill is kept
        return trial

    def on_trial_result(self, trial_id: str, result: dict[str, Any]) -> None:
        """Intermediate values = the scheduler's metric, so that TPE ranks pruned trials the way ASHA did."""
        tid = self._live.get(trial_id)
        value = result.get(self.spec.scheduler.metric)
        if tid is None or value is None or not math.isfinite(value):
            return
        step = int(result.get("epoch", result.get("training_iteration", 0)))
        stored = self._stored.get(tid)
        if stored is None:
            stored = self._stored[tid] = _Stored(self.study._storage.get_trial(tid))
        if stored.finished:  # told before a killed driver's last state save; Ray re-runs it on resume
            return
        try:
            self._store(tid, stored, step, float(value), result)
        except optuna.exceptions.UpdateFinishedTrialError:  # told since this driver read it: Optuna keeps its outcome
            stored.finished = True

    def _store(self, tid: int, stored: _Stored, step: int, value: float, result: dict[str, Any]) -> None:
        """Writes what the study lacks of one result (``stored`` says what it holds) in one transaction, and keeps
        ``stored`` in step."""
        intermediate, attrs = None, {}
        if str(step) not in stored.values:  # a resumed trial re-reports
            if self.spec.objectives:  # Trial.report is refused in a multi-objective study
                attrs[INTERMEDIATE] = {**stored.values, str(step): value}
            else:  # what Trial.report stores, without building a Trial (a second read and the sampler's hook)
                intermediate = (step, value)
        for key, cost in result.items():  # a multi-objective sweep's costs: the summary's record if Ray's files lag
            if key.startswith(COST_PREFIX) and key not in stored.attrs:
                attrs[key] = float(cost)
        best = result.get("best_dev_wer")
        if best is not None and math.isfinite(best) and best != stored.attrs.get("best_dev_wer"):
            attrs["best_dev_wer"] = float(best)  # for `slr sweep status`
            # the epoch it was reached (this one, when it changed): the summary's record if Ray's files lag
            attrs["best_epoch"] = int(result.get("best_epoch") or step)
        if intermediate is None and not attrs:
            return
        self.study._storage.write_result(tid, intermediate, attrs)
        stored.values.setdefault(str(step), value)
        stored.attrs.update({k: v for k, v in attrs.items() if k != INTERMEDIATE})

    def on_trial_complete(self, trial_id: str, result: dict[str, Any] | None = None, error: bool = False) -> None:
        if result:  # the result a scheduler stopped the trial on reaches only this hook
            self.on_trial_result(trial_id, result)
        tid = self._live.pop(trial_id, None)
        if tid is None:
            return
        self._stored.pop(tid, None)
        if self.study._storage.get_trial(tid).state.is_finished():  # as in on_trial_result: Optuna keeps its outcome
            log.info("trial %s: Optuna already holds its outcome (told before the driver stopped); kept", trial_id)
            return
        state, value = outcome(result, error)
        if result and result.get("failed_reason"):
            self.study._storage.set_trial_user_attr(tid, "fail_reason", str(result["failed_reason"])[:1000])
        values = None
        if state == optuna.trial.TrialState.COMPLETE:
            values = self.objective_values(value, self.study._storage.get_trial(tid).user_attrs)
        try:
            self.study.tell(optuna.trial.Trial(self.study, tid), values, state=state)
        except (RuntimeError, ValueError) as err:  # already told (e.g. a duplicate completion after restore)
            log.debug("optuna tell for trial %s skipped: %s", trial_id, err)

    def objective_values(self, best_dev_wer: float, attrs: dict[str, Any]) -> float | list[float]:
        """What a completed trial is told: its best dev WER, or in a multi-objective study each objective's value
        (its costs as :meth:`on_trial_result` recorded them)."""
        if not self.spec.objectives:
            return best_dev_wer
        return [best_dev_wer if o.metric == METRIC else float(attrs.get(f"{COST_PREFIX}{o.metric}", math.nan))
                for o in self.spec.objectives]

    # Ray saves the searcher with the experiment state; the study itself is in RDB storage.
    def save(self, checkpoint_path: str) -> None:
        import json
        with open(checkpoint_path, "w") as f:
            json.dump({"live": self._live}, f)

    def restore(self, checkpoint_path: str) -> None:
        import json
        with open(checkpoint_path) as f:
            self._live = {k: int(v) for k, v in json.load(f)["live"].items()}
        self._restored = True

    def set_search_properties(self, metric, mode, config, **spec) -> bool:  # noqa: ANN001
        return True


def outcome(result: dict[str, Any] | None, error: bool) -> tuple[optuna.trial.TrialState, float | None]:
    """How a finished Ray trial is told to Optuna: its status (:func:`tune.trials.status_of`) as a trial state,
    with the best dev WER as the value of a completed one."""
    state = optuna.trial.TrialState[STATE_OF_STATUS[status_of(result, error)]]
    return state, (float(result["best_dev_wer"]) if state == optuna.trial.TrialState.COMPLETE else None)
