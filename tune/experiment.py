"""Experiment YAML -> a validated sweep spec, entirely before Ray starts.

    name: quickstart
    corpus: {synth: quickstart, seed: 0, path: corpora/quickstart}   # or a corpus directory path
    config: {train: {epochs: 12}, data: {batch_size: 4}}              # overrides of slr's Config
    space:
      train.learning_rate: {type: loguniform, low: 1.0e-4, high: 3.0e-3}
      model.num_blocks: {type: int, low: 2, high: 8}
      model.lstm_layers: {type: choice, values: [1, 2]}
    searcher: {algorithm: tpe, seed: 0}                              # tpe | random | qmc | nsga2
    scheduler: {type: asha, grace_period: 2, reduction_factor: 3}    # asha | mo-asha (with objectives:) | none
    num_trials: 8
    max_concurrent: 2
    resources: {cpu: 1, gpu: 0}
    storage_path: sweeps                                             # or s3://bucket/sweeps (shared by all nodes)
    mlflow: {tracking_uri: sqlite:///mlflow.db, experiment: quickstart}
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from slr.config import Config, ConfigError, apply_overrides, build, parse_override, read_yaml
from slr.cost import COSTS
from slr.corpus.synthetic import PRESETS
from tune.storage import is_uri, join
from tune.trials import RANK_METRICS

# The seed's baseline: evaluated as the first trial of every sweep (values outside a key's range are clipped).
SEED_BASELINE = {"train.learning_rate": 3e-4, "model.dropout": 0.3, "train.weight_decay": 1e-4,
                 "model.num_blocks": 6, "model.lstm_layers": 1}
DISTRIBUTIONS = ("loguniform", "uniform", "int", "choice")
# Config keys every trial sets itself, whatever the searcher draws for them.
SET_BY_THE_SWEEP = {"train.epochs": "a trial's budget is scheduler.max_epochs, else train.epochs under config:",
                    "data.corpus": "the corpus is the experiment's corpus: key",
                    "train.device": "the device follows resources.gpu"}


def _check(ok: bool, key: str, value: Any, rule: str) -> None:
    if not ok:
        raise ConfigError(key, value, rule)


def _whole(value: Any) -> bool:
    """An int and not a bool (YAML's ``true`` is an int to Python)."""
    return isinstance(value, int) and not isinstance(value, bool)


@dataclass
class ParamSpec:
    type: str
    low: float | None = None
    high: float | None = None
    values: list[Any] | None = None
    log: bool = False  # for int: sample on a log scale
    # a conditional parameter: drawn only when each named (earlier) parameter drew one of these values, e.g.
    # {model.aux_ctc_weight: [0.5, 1.0]}; otherwise the trial keeps the base config's value for this key
    when: dict[str, Any] = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        for bound in ("low", "high"):  # PyYAML (YAML 1.1) reads 3e-3 as a string: accept it as users mean it
            value = getattr(self, bound)
            if isinstance(value, str):
                try:
                    setattr(self, bound, float(value))
                except ValueError:
                    pass  # validate() names the key

    def validate(self, key: str) -> None:
        k = f"space.{key}"
        _check(self.type in DISTRIBUTIONS, f"{k}.type", self.type, f"must be one of {DISTRIBUTIONS}")
        if self.type == "choice":
            _check(isinstance(self.values, list) and len(self.values) > 0, f"{k}.values", self.values,
                   "choice needs a non-empty list of values")
            return
        for bound in ("low", "high"):
            v = getattr(self, bound)
            _check(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v), f"{k}.{bound}", v,
                   "must be a finite number")
        _check(self.low < self.high, k, [self.low, self.high], "empty or inverted range: need low < high")
        if self.type == "loguniform" or self.log:
            _check(self.low > 0, f"{k}.low", self.low, "a log-scale range must be > 0")
        if self.type == "int":
            _check(float(self.low).is_integer() and float(self.high).is_integer(), k, [self.low, self.high],
                   "int bounds must be whole numbers")

    def active(self, drawn: dict[str, Any]) -> bool:
        """Whether this parameter is drawn, given the values the parameters before it drew (``drawn``)."""
        return all(k in drawn and drawn[k] in _options(v) for k, v in self.when.items())

    @property
    def is_log(self) -> bool:
        return self.type == "loguniform" or self.log

    def clip(self, value: Any) -> Any:
        if self.type == "choice":
            return value if value in self.values else self.values[0]
        v = min(max(value, self.low), self.high)
        return int(round(v)) if self.type == "int" else float(v)


@dataclass
class SearcherSpec:
    algorithm: str = "tpe"
    seed: int = 0
    n_startup_trials: int = 4  # TPE: random trials before the model is used
    # TPE: model the parameters jointly. Optuna 5 defaults to True; independent TPE found good configs more
    # reliably with ASHA-pruned trials in benchmarks/search_efficiency.py, so the sweep says so explicitly.
    multivariate: bool = False
    population_size: int = 8  # NSGA-II: trials per generation
    storage: str = ""  # Optuna RDB storage, any SQLAlchemy URL; default: sqlite beside the sweep

    def __post_init__(self) -> None:
        _check(self.algorithm in ("tpe", "random", "qmc", "nsga2"), "searcher.algorithm", self.algorithm,
               "must be tpe, random, qmc or nsga2")
        _check(self.n_startup_trials >= 0, "searcher.n_startup_trials", self.n_startup_trials, "must be >= 0")
        _check(_whole(self.population_size) and self.population_size >= 2, "searcher.population_size",
               self.population_size, "must be a whole number >= 2")
        _check(_whole(self.seed) and self.seed >= 0, "searcher.seed", self.seed, "must be a whole number >= 0")


SCHEDULERS = ("asha", "mo-asha", "none")  # mo-asha: ASHA ranking (scheduler.metric, costs) by Pareto fronts


@dataclass
class SchedulerSpec:
    type: str = "asha"
    grace_period: int = 2
    reduction_factor: float = 3.0
    max_epochs: int = 0  # 0 = train.epochs of the base config
    # What ASHA ranks trials by at a rung (and what Optuna records as a pruned trial's intermediate values).
    # dev_loss: early in CTC training every trial still emits only blanks, so dev WER ties at 100 % at the
    # first rungs while the dev loss already separates trials; measured better than ranking by dev WER (ties
    # broken by dev loss: dev_wer_then_loss) in the tabular benchmark and on the quickstart sweep over four
    # searcher seeds (docs/benchmarks.md). The best trial is always chosen by dev WER.
    metric: str = "dev_loss"

    def __post_init__(self) -> None:
        _check(self.type in SCHEDULERS, "scheduler.type", self.type, "must be asha, mo-asha or none")
        _check(self.metric in RANK_METRICS, "scheduler.metric", self.metric, f"must be one of {RANK_METRICS}")
        _check(self.grace_period >= 1, "scheduler.grace_period", self.grace_period, "must be >= 1")
        _check(self.reduction_factor > 1, "scheduler.reduction_factor", self.reduction_factor, "must be > 1")
        _check(self.max_epochs >= 0, "scheduler.max_epochs", self.max_epochs, "must be >= 0")


@dataclass
class ResourceSpec:
    cpu: float = 1.0
    gpu: float = 0.0

    def __post_init__(self) -> None:
        _check(self.cpu > 0, "resources.cpu", self.cpu, "must be > 0")
        _check(self.gpu >= 0, "resources.gpu", self.gpu, "must be >= 0")
        if 0 < self.gpu < 1:
            _check(abs(1 / self.gpu - round(1 / self.gpu)) < 1e-9, "resources.gpu", self.gpu,
                   "a fractional GPU must divide 1 evenly (0.5, 0.25, ...)")


@dataclass
class MlflowSpec:
    tracking_uri: str = ""  # default: sqlite:///<storage>/<name>/mlflow.db
    experiment: str = ""  # default: the sweep name
    enabled: bool = True
    # writes from a background thread: the driver never waits on the server (large sweeps), but writes still
    # queued when the driver is SIGKILLed are lost (docs/benchmarks.md, "Sweep at scale")
    background: bool = False
    # each trial's CPU, memory and (on CUDA) GPU use per epoch as system/ metrics of its run (tune.sysmetrics)
    system_metrics: bool = True


@dataclass
class RerankSpec:
    """After the search: the ``top_k`` best trials trained again with ``seeds`` new training seeds each; the
    winner by mean dev WER (tune.rerank). ``top_k: 0`` = off."""
    top_k: int = 0
    seeds: int = 3

    def __post_init__(self) -> None:
        _check(_whole(self.top_k) and self.top_k >= 0, "rerank.top_k", self.top_k, "must be a whole number >= 0")
        _check(_whole(self.seeds) and self.seeds >= 1, "rerank.seeds", self.seeds, "must be a whole number >= 1")


OBJECTIVE_METRICS = ("dev_wer", *COSTS)  # dev WER and what a model costs (slr.cost)
MAX_OBJECTIVES = 3


@dataclass
class ObjectiveSpec:
    """One objective of a multi-objective sweep: ``{metric: dev_wer | params | mflops | latency_ms, mode: min}``."""
    metric: str = ""
    mode: str = ""  # checked with the others (_check_objectives), where the error can name its place


@dataclass
class CorpusSpec:
    path: str = ""
    synth: str = ""  # preset to generate into path when it does not exist yet
    seed: int = 0


@dataclass
class ExperimentSpec:
    name: str
    corpus: CorpusSpec
    config: dict[str, Any] = field(default_factory=dict)
    space: dict[str, ParamSpec] = field(default_factory=dict)
    searcher: SearcherSpec = field(default_factory=SearcherSpec)
    scheduler: SchedulerSpec = field(default_factory=SchedulerSpec)
    num_trials: int = 8
    max_concurrent: int = 2
    resources: ResourceSpec = field(default_factory=ResourceSpec)
    storage_path: str = "sweeps"  # a local folder, or a URI every node reaches (s3://bucket/sweeps)
    local_path: str = "sweeps"  # with a URI storage_path: the driver's own files (SQLite stores, write queue)
    mlflow: MlflowSpec = field(default_factory=MlflowSpec)
    rerank: RerankSpec = field(default_factory=RerankSpec)
    baseline_first: bool = True
    max_failures: int = 2  # per trial: restarts from its last checkpoint after a worker dies
    reuse_workers: bool = True  # a slot's worker process runs its next trial (Ray's reuse_actors)
    tensorboard: bool = False  # Ray's TensorBoard event files in each trial's folder (MLflow holds the curves)
    # [] = one objective, dev WER (the search, the scheduler and the winner); else dev WER and up to two costs,
    # whose Pareto front the summary, `slr sweep status` and `slr export --max-...` show (tune.pareto)
    objectives: list[ObjectiveSpec] = field(default_factory=list)
    source: str = ""

    def __post_init__(self) -> None:
        validate(self)  # like slr's config: a spec that exists is a valid one

    # -- derived --------------------------------------------------------------------------------------
    def base_config(self) -> Config:
        """The experiment's ``config:`` over slr's defaults, with ``data.corpus`` the experiment's corpus (its one
        source: every trial, the summary and the exported config take it from here); ``train.num_threads``, unless
        set there, is the trial's CPU count (what Ray gives it), so every trial's recorded config says how it ran
        and reproduces."""
        cfg = Config.from_dict(self.config, source=self.source or None)
        cfg = cfg.override({"data.corpus": str(self.corpus_dir)})
        if cfg.train.teacher:  # trials run in their own folders: the teacher's path must not depend on the cwd
            cfg = cfg.override({"train.teacher": str(Path(cfg.train.teacher).expanduser().resolve())})
        if "num_threads" not in (self.config.get("train") or {}):
            cfg = cfg.override({"train.num_threads": max(1, int(self.resources.cpu))})
        return cfg

    @property
    def corpus_dir(self) -> Path:
        return Path(self.corpus.path).resolve()

    @property
    def max_epochs(self) -> int:
        return self.scheduler.max_epochs or self.base_config().train.epochs

    @property
    def costs(self) -> list[str]:
        """The costs among the objectives (slr.cost's names), measured by every trial when it starts."""
        return [o.metric for o in self.objectives if o.metric in COSTS]

    @property
    def remote(self) -> bool:
        return is_uri(self.storage_path)

    @property
    def sweep_dir(self) -> Path:
        """The sweep's folder on the driver's disk (the whole sweep when storage_path is local)."""
        return Path(self.local_path if self.remote else self.storage_path).resolve() / self.name

    @property
    def ray_storage(self) -> str:
        """Ray's storage_path: experiment state and checkpoints go to ``<ray_storage>/<name>``."""
        return self.storage_path if self.remote else str(self.sweep_dir.parent)

    @property
    def sweep_uri(self) -> str:
        """Where Ray keeps this sweep's experiment state: a URI, or the local sweep folder."""
        return join(self.storage_path, self.name) if self.remote else str(self.sweep_dir)

    @property
    def tracking_uri(self) -> str:
        return self.mlflow.tracking_uri or f"sqlite:///{self.sweep_dir / 'mlflow.db'}"

    @property
    def optuna_storage(self) -> str:
        return self.searcher.storage or f"sqlite:///{self.sweep_dir / 'optuna.db'}"

    def baseline(self) -> dict[str, Any]:
        """The seed baseline restricted to (and clipped into) the searched keys."""
        values = {k: self.space[k].clip(v) for k, v in SEED_BASELINE.items() if k in self.space}
        return {k: values[k] for k in active_keys(self.space, values) if k in values}

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d.pop("source")
        for key in ("objectives", "tensorboard"):  # at their defaults, experiment.yaml is as before (--resume
            if not d[key]:                             # compares it with a sweep's own)
                d.pop(key)
        return d


_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")


def load_experiment(path: str | Path, overrides: list[str] | None = None, storage: str | None = None) -> ExperimentSpec:
    """Read and fully validate an experiment YAML; every error names the file and the key."""
    overrides = overrides or []
    raw = apply_overrides(read_yaml(path), [o for o in overrides if not o.strip().startswith("space.")])
    for text in overrides:
        if text.strip().startswith("space."):
            _override_space(raw, *parse_override(text))
    if storage:
        raw["storage_path"] = storage
    try:
        return from_dict(raw, source=str(path))
    except ConfigError as err:
        raise ConfigError(err.key, err.value, err.rule, str(path)) from None


PARAM_FIELDS = {f.name for f in dataclasses.fields(ParamSpec)}


def _override_space(raw: dict[str, Any], key: str, value: Any) -> None:
    """``space.train.learning_rate.low=1e-4`` (one field of a distribution) or ``space.model.dropout={type: uniform,
    low: 0, high: 0.3}`` (a whole one): the searched key itself holds dots, so the generic dotted override cannot
    tell where it ends. No config key ends in a distribution field's name (type, low, high, values, log)."""
    rest = key.strip()[len("space."):]
    head, _, tail = rest.rpartition(".")
    space = raw["space"] = dict(raw.get("space") or {})
    if head and tail in PARAM_FIELDS:
        current = space.get(head) or {}
        _check(isinstance(current, dict), f"space.{head}", current, "must be a distribution mapping")
        space[head] = {**current, tail: value}
    else:
        space[rest] = value


def _expand_home(path: Any) -> Any:
    """``~/sweeps`` means the home folder, as in a shell (not a folder named ``~``); URIs are left alone."""
    return os.path.expanduser(path) if isinstance(path, str) and path.startswith("~") else path


def from_dict(raw: dict[str, Any], source: str = "") -> ExperimentSpec:
    known = {f.name for f in dataclasses.fields(ExperimentSpec)} - {"source"}
    for key in raw:
        _check(key in known, key, raw[key], f"unknown key; known: {sorted(known)}")
    _check(isinstance(raw.get("name"), str) and bool(_NAME.fullmatch(raw.get("name", ""))), "name", raw.get("name"),
           "required; letters, digits, _ . - (the sweep folder and MLflow experiment name)")
    corpus = raw.get("corpus")
    if isinstance(corpus, str):
        corpus = {"path": corpus}
    if isinstance(corpus, dict):
        corpus = {**corpus, "path": _expand_home(corpus.get("path"))}
    raw = {**raw, **{k: _expand_home(raw[k]) for k in ("storage_path", "local_path") if k in raw}}
    _check(isinstance(corpus, dict) and bool(corpus.get("path")), "corpus", corpus,
           "required: a corpus directory, or {path: DIR, synth: PRESET}")
    sections = {"corpus": (CorpusSpec, corpus), "searcher": (SearcherSpec, raw.get("searcher", {})),
                "scheduler": (SchedulerSpec, raw.get("scheduler", {})),
                "resources": (ResourceSpec, raw.get("resources", {})), "mlflow": (MlflowSpec, raw.get("mlflow", {})),
                "rerank": (RerankSpec, raw.get("rerank", {}))}
    built = {name: build(cls, value or {}, prefix=f"{name}.") for name, (cls, value) in sections.items()}
    space_raw = raw.get("space", {}) or {}
    _check(isinstance(space_raw, dict), "space", space_raw, "must map dotted config keys to distributions")
    space = {k: build(ParamSpec, v, prefix=f"space.{k}.") for k, v in space_raw.items()}
    objectives_raw = raw.get("objectives") or []
    _check(isinstance(objectives_raw, list) and all(isinstance(o, dict) for o in objectives_raw), "objectives",
           objectives_raw, "must be a list of {metric: ..., mode: min|max}")
    objectives = [build(ObjectiveSpec, o, prefix=f"objectives[{i}].") for i, o in enumerate(objectives_raw)]
    config = raw.get("config", {}) or {}
    _check(isinstance(config, dict), "config", config, "must be a mapping of config sections")
    spec = ExperimentSpec(name=raw["name"], config=config, space=space, source=source, objectives=objectives,
                          **{k: raw[k] for k in ("num_trials", "max_concurrent", "storage_path", "local_path",
                                                 "baseline_first", "max_failures", "reuse_workers", "tensorboard")
                                                 if k in raw},
                          **built)
    return spec


def _options(condition: Any) -> list[Any]:
    return condition if isinstance(condition, list) else [condition]


def active_keys(space: dict[str, ParamSpec], drawn: dict[str, Any]) -> list[str]:
    """The searched keys a trial with these ``drawn`` values should have, in the space's order (a conditional key
    only when its condition holds)."""
    return [k for k, p in space.items() if p.active(drawn)]


def _check_conditions(spec: ExperimentSpec) -> None:
    """``when:`` names earlier searched keys (drawn first) and values they can draw."""
    order = list(spec.space)
    for key, param in spec.space.items():
        _check(isinstance(param.when, dict), f"space.{key}.when", param.when,
               "must map earlier searched keys to a value or a list of values")
        for cond, condition in param.when.items():
            _check(cond in spec.space and order.index(cond) < order.index(key), f"space.{key}.when", cond,
                   "must name a searched key listed before this one (it is drawn first)")
            other = spec.space[cond]
            for value in _options(condition):
                ok = value in other.values if other.type == "choice" else (
                    isinstance(value, (int, float)) and other.low <= value <= other.high)
                _check(ok, f"space.{key}.when.{cond}", value, f"is not a value space.{cond} can draw")


def validate(spec: ExperimentSpec) -> None:
    """Everything that can be checked without Ray: types, ranges, that every searched key exists, that every value
    the searcher can draw builds a valid config. Run by the spec itself (``ExperimentSpec.__post_init__``); the
    sections (searcher, scheduler, resources) check their own fields when they are built."""
    base = spec.base_config()  # raises with the key for a bad base config
    _check(_whole(spec.num_trials) and spec.num_trials >= 1, "num_trials", spec.num_trials, "must be a whole number >= 1")
    _check(_whole(spec.max_concurrent) and spec.max_concurrent >= 1, "max_concurrent", spec.max_concurrent,
           "must be a whole number >= 1")
    _check(_whole(spec.max_failures) and spec.max_failures >= 0, "max_failures", spec.max_failures,
           "must be a whole number >= 0")
    _check(not spec.corpus.synth or spec.corpus.synth in PRESETS, "corpus.synth", spec.corpus.synth,
           f"unknown preset; one of {sorted(PRESETS)} (or leave it empty for an existing corpus)")
    for key in ("reuse_workers", "tensorboard"):
        _check(isinstance(getattr(spec, key), bool), key, getattr(spec, key), "must be true or false")
    flat = base.flat()
    for key, param in spec.space.items():
        parent, _, leaf = key.rpartition(".")  # or an entry of a dict-valued key (model.encoder_dims.face)
        _check(key in flat or (isinstance(flat.get(parent), dict) and leaf in flat[parent]), f"space.{key}", key,
               "not a config key (e.g. train.learning_rate, model.num_blocks, model.encoder_dims.face)")
        _check(key not in SET_BY_THE_SWEEP, f"space.{key}", key,
               f"a trial cannot honour it: {SET_BY_THE_SWEEP.get(key)}")
        param.validate(key)
    _check_conditions(spec)  # before the probes, which draw each conditional key with its condition
    for key, param in spec.space.items():
        parent, _, leaf = key.rpartition(".")
        default = flat[key] if key in flat else flat[parent][leaf]
        if param.type in ("uniform", "loguniform"):
            _check(not isinstance(default, (bool, int)) or isinstance(default, float), f"space.{key}.type",
                   param.type, f"samples floats, but {key} takes {type(default).__name__} values: use type: int "
                               "or choice")
        given = {c: _options(v)[0] for c, v in param.when.items()}  # a conditional key is drawn with its condition
        for probe in _probes(param):
            for arm in _arms(spec, key):
                try:  # every value the searcher can draw, in every arm it can meet, must build a valid Config
                    base.override({**given, **arm, key: probe})
                except ConfigError as err:
                    with_arm = "".join(f" with {k}={v}" for k, v in arm.items())
                    raise ConfigError(f"space.{key}", probe, f"gives an invalid config{with_arm}: {err.rule}") from None
    _check(spec.max_epochs <= base.train.epochs, "scheduler.max_epochs", spec.scheduler.max_epochs,
           f"cannot exceed train.epochs={base.train.epochs}")
    if spec.scheduler.type != "none":
        _check(spec.scheduler.grace_period <= spec.max_epochs, "scheduler.grace_period", spec.scheduler.grace_period,
               f"cannot exceed the epoch budget ({spec.max_epochs}: scheduler.max_epochs or train.epochs)")
    for key in ("storage_path", "local_path"):
        _check(isinstance(getattr(spec, key), str) and bool(getattr(spec, key).strip()), key, getattr(spec, key),
               "must name a folder (or a URI such as s3://bucket/sweeps)")
    _check_objectives(spec.objectives)
    _check(spec.scheduler.type != "mo-asha" or bool(spec.costs), "scheduler.type", spec.scheduler.type,
           "mo-asha ranks trials by their costs too: it needs objectives: with at least one cost")
    _check(spec.rerank.top_k <= spec.num_trials, "rerank.top_k", spec.rerank.top_k,
           f"cannot exceed num_trials={spec.num_trials}")
    _check(spec.rerank.top_k == 0 or "train.seed" not in spec.space, "rerank.top_k", spec.rerank.top_k,
           "re-ranking retrains with new training seeds: it cannot be combined with searching train.seed")
    _check_storage("storage_path", spec.storage_path)
    if spec.remote:
        _check_storage("local_path", spec.local_path)


def _check_objectives(objectives: list[ObjectiveSpec]) -> None:
    """None (one objective: dev WER), or dev WER minimized and one or two distinct costs."""
    if not objectives:
        return
    for i, o in enumerate(objectives):
        _check(o.metric in OBJECTIVE_METRICS, f"objectives[{i}].metric", o.metric,
               f"one of {', '.join(OBJECTIVE_METRICS)}")
        _check(o.mode in ("min", "max"), f"objectives[{i}].mode", o.mode, "required: min or max")
    metrics = [o.metric for o in objectives]
    _check(len(objectives) <= MAX_OBJECTIVES, "objectives", metrics, f"at most {MAX_OBJECTIVES} objectives")
    _check(len(objectives) >= 2, "objectives", metrics, "dev_wer and at least one cost (or none: dev WER alone)")
    _check(len(set(metrics)) == len(metrics), "objectives", metrics, "each metric once")
    _check("dev_wer" in metrics, "objectives", metrics, "must include dev_wer: what every trial is trained for")
    for i, o in enumerate(objectives):
        _check(o.metric != "dev_wer" or o.mode == "min", f"objectives[{i}].mode", o.mode, "dev_wer is minimized")


def _arms(spec: ExperimentSpec, key: str) -> list[dict[str, Any]]:
    """The arms a parameter can be drawn in: no other key set, then each value of every other unconditioned
    ``choice`` key (``model.arch: [student, vac]``), restricted to the values the parameter's own condition allows,
    so that a key valid in one arm and not in another is caught before Ray starts."""
    when = spec.space[key].when
    arms: list[dict[str, Any]] = [{}]
    for other, param in spec.space.items():
        if other != key and param.type == "choice" and not param.when:
            arms += [{other: v} for v in param.values if other not in when or v in _options(when[other])]
    return arms


def _probes(param: ParamSpec) -> list[Any]:
    """The values to try a space on: every choice; every integer of a small int range (an odd-only key's even
    values fail there), else its ends and middle; a float range's ends and middle."""
    if param.type == "choice":
        return list(param.values)
    if param.type == "int":
        low, high = int(param.low), int(param.high)
        return list(range(low, high + 1)) if high - low <= 64 else [low, (low + high) // 2, high]
    return [param.clip(param.low), (param.low + param.high) / 2, param.clip(param.high)]


URI_SCHEMES = ("s3", "gs", "gcs", "hdfs", "viewfs", "abfs", "abfss", "file")


def _check_storage(key: str, path: str) -> None:
    """A local folder must be creatable; a URI must name a file system pyarrow knows (its bucket is
    probed for a write when the sweep starts, see tune.storage.check_writable)."""
    if is_uri(path):
        scheme = path.split("://", 1)[0]
        _check(key == "storage_path" and scheme in URI_SCHEMES, key, path,
               f"unsupported URI scheme '{scheme}'; use a local folder or one of {', '.join(URI_SCHEMES)}")
        return
    p = Path(path).resolve()
    existing = next((q for q in [p, *p.parents] if q.exists()), None)
    ok = existing is not None and existing.is_dir() and os.access(existing, os.W_OK)
    _check(ok, key, path, f"cannot be created or written ({existing} is not a writable directory)")


def check_resources(spec: ExperimentSpec, nodes: list[dict[str, float]]) -> None:
    """A trial must fit on at least one node (``nodes``: each node's total resources)."""
    fits = [n for n in nodes if n.get("CPU", 0) >= spec.resources.cpu and n.get("GPU", 0) >= spec.resources.gpu]
    if not fits:
        biggest = {"CPU": max((n.get("CPU", 0) for n in nodes), default=0),
                   "GPU": max((n.get("GPU", 0) for n in nodes), default=0)}
        raise ConfigError("resources", dataclasses.asdict(spec.resources),
                          f"no node can run a trial: the largest node has {biggest}")
