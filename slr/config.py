"""One typed config tree for the whole library.

Every section is a dataclass that validates itself in ``__post_init__`` and raises
:class:`ConfigError` naming the dotted key, the value and the rule it broke (litgpt ``args.py``
style). YAML files and ``key=value`` overrides only ever *override* these defaults; the tree
dumps back to YAML losslessly so a resolved config can be saved with every run and checkpoint.

The defaults are the seed baseline (``shared/seed``: dropout 0.3, weight decay 1e-4, 6 MobileNetV3 blocks,
1 BiLSTM layer, warmup from 10 %, cosine, grad clip 1.0) with the blank-plateau fix of docs/model_quality.md:
the frame skip (``model.frame_skip``), lr 1e-3 instead of 3e-4 and a 1-epoch warmup instead of 5.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

PRECISIONS = ("fp32", "bf16", "int8")  # inference precisions (slr.evaluate.for_inference)
RUNTIMES = ("torch", "onnx")  # inference runtimes (slr.evaluate.inference_model)


class ConfigError(ValueError):
    """A config value is invalid. ``key`` is the dotted path (``train.learning_rate``)."""

    def __init__(self, key: str, value: Any, rule: str, source: str | None = None):
        self.key, self.value, self.rule, self.source = key, value, rule, source
        where = f"{source}: " if source else ""
        super().__init__(f"{where}{key}={value!r}: {rule}")

    def __reduce__(self):  # pickled across Ray processes: rebuild from the four fields, not from ``args``
        return ConfigError, (self.key, self.value, self.rule, self.source)


def _check(ok: bool, key: str, value: Any, rule: str) -> None:
    if not ok:
        raise ConfigError(key, value, rule)


@dataclass
class DataConfig:
    """Where samples come from and how they are batched."""

    corpus: str = ""  # corpus directory (see slr.corpus); may be given on the command line instead
    batch_size: int = 8  # chosen for throughput, not tuned for WER (tuning playbook)
    bucket_size: int = 16  # batches per length-sorted bucket; 1 = no bucketing
    num_workers: int = 0  # DataLoader worker processes; 0 loads in the training process
    max_frames: int = 0  # clip longer samples' frames (0 = no clip)

    def __post_init__(self) -> None:
        _check(self.batch_size >= 1, "data.batch_size", self.batch_size, "must be >= 1")
        _check(self.bucket_size >= 1, "data.bucket_size", self.bucket_size, "must be >= 1")
        _check(self.num_workers >= 0, "data.num_workers", self.num_workers, "must be >= 0")
        _check(self.max_frames >= 0, "data.max_frames", self.max_frames, "must be >= 0")


LAYOUTS = ("holistic543", "precomputed")


@dataclass
class FeaturesConfig:
    """How landmarks become the model's ``[B, T, D]`` input (see slr.features)."""

    layout: str = "holistic543"  # holistic543: derive 4 x 1629 from landmarks; precomputed: use as is
    normalize: bool = True  # centre on the shoulder midpoint, scale by shoulder width
    standardize: bool = True  # per-dimension mean/std from the train split (fitted at the start of training)
    standardize_batches: int = 32  # train batches used to fit the standardization
    temporal: list[str] = field(default_factory=lambda: ["velocity", "acceleration", "centered"])  # derived blocks
    input_dim: int = 0  # only for layout=precomputed: width D of the stored features
    modalities: dict[str, list[list[int]]] = field(default_factory=dict)  # precomputed: name -> [[start, stop], ...]

    def __post_init__(self) -> None:
        _check(self.layout in LAYOUTS, "features.layout", self.layout, f"must be one of {LAYOUTS}")
        known = ("velocity", "acceleration", "centered")
        for name in self.temporal:
            _check(name in known, "features.temporal", self.temporal, f"entries must be in {known}")
        _check(len(set(self.temporal)) == len(self.temporal), "features.temporal", self.temporal, "no repeats")
        _check(self.standardize_batches >= 1, "features.standardize_batches", self.standardize_batches, "must be >= 1")
        if self.layout == "precomputed":
            _check(self.input_dim >= 1, "features.input_dim", self.input_dim, "must be >= 1 for precomputed")
            _check(bool(self.modalities), "features.modalities", self.modalities, "required for precomputed")
            for name, spans in self.modalities.items():
                for span in spans:
                    ok = len(span) == 2 and 0 <= span[0] < span[1] <= self.input_dim
                    _check(ok, f"features.modalities.{name}", span, f"must be [start, stop] within 0..{self.input_dim}")


ARCHS = ("student", "vac")


@dataclass
class VacConfig:
    """The VAC-style baseline (``model.arch: vac``): VAC's TemporalConv (K5-P2-K5-P2: two conv k=5 + max-pool 2,
    T/4) and BiLSTM over the student's modality embeddings, CTC at T/4 (Min et al., ICCV 2021; VIPL-SLP/VAC_CSLR
    ``TemporalConv``, ``BiLSTMLayer``). VAC's own sizes (1,024 wide, 2 x 512) are for 2D-CNN frame features."""

    width: int = 512  # TemporalConv channels (VAC: 1024)
    hidden_dim: int = 256  # BiLSTM hidden size per direction (VAC: 512)
    lstm_layers: int = 1  # BiLSTM depth (VAC: 2; one layer exports to ONNX, slr.onnx_runtime.export)

    def __post_init__(self) -> None:
        for name in ("width", "hidden_dim", "lstm_layers"):
            _check(getattr(self, name) >= 1, f"model.vac.{name}", getattr(self, name), "must be >= 1")


@dataclass
class ModelConfig:
    """The seed's student: encoders -> MobileNetV3-1D (4x down) -> ConvTranspose (4x up) -> BiLSTM -> CTC; or,
    with ``arch: vac``, the VAC-style baseline over the same encoders (:class:`VacConfig`)."""

    arch: str = "student"  # student (the seed model, one output frame per input frame) | vac (CTC at T/4, model.vac.*)

    encoder_dims: dict[str, int] = field(  # modality -> encoder width (must name the layout's modalities)
        default_factory=lambda: {"pose": 64, "hands": 128, "face": 64, "temporal": 128}
    )
    num_blocks: int = 6  # MobileNetV3-1D blocks (4x temporal downsampling for any count)
    block_channels: int = 96  # block width (after the 1x1 stem)
    block_expansion: int = 3  # inverted-bottleneck expansion factor
    block_kernel: int = 5  # depthwise kernel size in frames (odd)
    bottleneck_channels: int = 48  # width of the last block, before upsampling
    hidden_dim: int = 128  # upsampled width and BiLSTM hidden size per direction
    lstm_layers: int = 1  # BiLSTM depth
    dropout: float = 0.3  # dropout in encoders, blocks, projection and between LSTM layers
    cross_modal_attention: bool = False  # per-frame attention across modality embeddings (off: seed)
    attention_heads: int = 4  # heads of the cross-modal attention
    frame_skip: bool = True  # add the modality embeddings (linear, at T) to the upsampled path; false = the seed
    upsample: bool = True  # true (the seed): ConvTranspose back to T, BiLSTM and CTC per frame; false: on the T/4 block features
    upsample_factor: int = 4  # with upsample: how far the ConvTranspose brings the T/4 features up: 4 = to T (the seed), 2 = to T/2
    aux_ctc_weight: float = 0.0  # VAC auxiliary CTC head on the T/4 block features, weight in the loss (0 = off)
    vac: VacConfig = field(default_factory=VacConfig)  # used only with arch: vac (the student's keys are ignored then)

    def __post_init__(self) -> None:
        _check(self.arch in ARCHS, "model.arch", self.arch, f"must be one of {', '.join(ARCHS)}")
        _check(self.arch != "vac" or self.aux_ctc_weight == 0, "model.aux_ctc_weight", self.aux_ctc_weight,
               "must be 0 with model.arch: vac (the auxiliary head sits on the student's T/4 block features; "
               "the VAC-style baseline's own CTC is at T/4 already)")
        _check(self.num_blocks >= 1, "model.num_blocks", self.num_blocks, "must be >= 1")
        _check(self.lstm_layers >= 1, "model.lstm_layers", self.lstm_layers, "must be >= 1")
        _check(0.0 <= self.dropout < 1.0, "model.dropout", self.dropout, "must be in [0, 1)")
        for name in ("block_channels", "block_expansion", "bottleneck_channels", "hidden_dim", "attention_heads"):
            _check(getattr(self, name) >= 1, f"model.{name}", getattr(self, name), "must be >= 1")
        _check(self.aux_ctc_weight >= 0, "model.aux_ctc_weight", self.aux_ctc_weight, "must be >= 0")
        _check(self.upsample_factor in (2, 4), "model.upsample_factor", self.upsample_factor,
               "must be 2 (BiLSTM and CTC at T/2) or 4 (at T, the seed)")
        _check(self.block_kernel % 2 == 1, "model.block_kernel", self.block_kernel, "must be odd")
        _check(bool(self.encoder_dims), "model.encoder_dims", self.encoder_dims, "must name >= 1 modality")
        for name, dim in self.encoder_dims.items():
            _check(isinstance(dim, int) and dim >= 1, f"model.encoder_dims.{name}", dim, "must be an int >= 1")
        if self.cross_modal_attention:
            width = next(iter(self.encoder_dims.values()))
            same = all(d == width for d in self.encoder_dims.values())
            _check(same and width % self.attention_heads == 0, "model.cross_modal_attention", True,
                   "needs equal encoder_dims divisible by attention_heads")


@dataclass
class TrainConfig:
    """Optimisation regime (seed: AdamW, warmup from 10 %, cosine, clip 1.0; lr and warmup length retuned)."""

    epochs: int = 100  # training budget (a sweep sets it to the scheduler's max epochs)
    learning_rate: float = 1e-3  # AdamW peak learning rate (seed: 3e-4; docs/model_quality.md)
    weight_decay: float = 1e-4  # AdamW decoupled weight decay
    warmup_epochs: float = 1.0  # linear warmup length (fractions allowed), per optimizer step (seed: 5)
    warmup_start_factor: float = 0.1  # warmup starts at this fraction of learning_rate
    min_lr_factor: float = 0.01  # cosine floor as a fraction of learning_rate
    grad_clip: float = 1.0  # max gradient norm
    early_stopping_patience: int = 15  # epochs in which neither dev WER nor dev loss improved; 0 = off
    max_nonfinite_fraction: float = 0.5  # an epoch with more skipped batches than this fails the run
    self_distill_weight: float = 0.0  # VAC: KL from the main head into the auxiliary T/4 head (needs aux_ctc_weight)
    self_distill_temperature: float = 8.0  # softmax temperature of that KL (T-squared scaled; VAC: 8)
    teacher: str = ""  # a checkpoint to distil from (any slr checkpoint, same vocabulary and layout); "" = off
    teacher_sha256: str = ""  # the teacher's SHA-256 (an exported config records it): refused if the file changed
    kd_weight: float = 1.0  # weight of the teacher's frame-level KL in the loss (used only with a teacher)
    kd_temperature: float = 2.0  # softmax temperature of that KL (T-squared scaled)
    seed: int = 0  # seeds weights, batching and dropout (CPU runs with the same num_threads are deterministic)
    num_threads: int = 0  # torch CPU threads (0 = torch's default, all cores); part of the run: float sums differ
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    amp: str = "auto"  # CUDA: auto (fp32 + TF32 matmuls, fastest for the student) | bf16 (autocast) | off (strict fp32)
    eval_every: int = 1  # epochs between dev evaluations
    checkpoint: bool = True  # write last.pt / best.pt to the run directory

    def __post_init__(self) -> None:
        _check(self.epochs >= 1, "train.epochs", self.epochs, "must be >= 1")
        _check(self.learning_rate > 0, "train.learning_rate", self.learning_rate, "must be > 0")
        _check(self.weight_decay >= 0, "train.weight_decay", self.weight_decay, "must be >= 0")
        _check(self.warmup_epochs >= 0, "train.warmup_epochs", self.warmup_epochs, "must be >= 0")
        _check(0 < self.warmup_start_factor <= 1, "train.warmup_start_factor", self.warmup_start_factor, "in (0, 1]")
        _check(0 <= self.min_lr_factor <= 1, "train.min_lr_factor", self.min_lr_factor, "must be in [0, 1]")
        _check(self.grad_clip > 0, "train.grad_clip", self.grad_clip, "must be > 0")
        _check(self.early_stopping_patience >= 0, "train.early_stopping_patience", self.early_stopping_patience,
               "must be >= 0")
        _check(0 <= self.max_nonfinite_fraction <= 1, "train.max_nonfinite_fraction", self.max_nonfinite_fraction,
               "must be in [0, 1]")
        _check(self.self_distill_weight >= 0, "train.self_distill_weight", self.self_distill_weight, "must be >= 0")
        _check(self.self_distill_temperature > 0, "train.self_distill_temperature", self.self_distill_temperature,
               "must be > 0")
        _check(self.num_threads >= 0, "train.num_threads", self.num_threads, "must be >= 0 (0 = all cores)")
        _check(self.kd_weight >= 0, "train.kd_weight", self.kd_weight, "must be >= 0")
        _check(self.kd_temperature > 0, "train.kd_temperature", self.kd_temperature, "must be > 0")
        _check(not self.teacher_sha256 or self.teacher, "train.teacher_sha256", self.teacher_sha256,
               "names a teacher digest but train.teacher is empty")
        ok_device = self.device in ("auto", "cpu", "cuda") or self.device.startswith("cuda:")
        _check(ok_device, "train.device", self.device, "must be auto, cpu, cuda or cuda:N")
        _check(self.amp in ("auto", "bf16", "off"), "train.amp", self.amp, "must be auto, bf16 or off")
        _check(self.eval_every >= 1, "train.eval_every", self.eval_every, "must be >= 1")


@dataclass
class AugmentConfig:
    """Keypoint augmentation of training batches (slr.augment); every key 0 = off. Dev and test are never augmented."""

    rotation: float = 0.0  # max in-plane rotation in degrees about the shoulder centre (uniform in +-rotation)
    scale: float = 0.0  # max relative scale change (0.1: 0.9-1.1x)
    shear: float = 0.0  # max horizontal shear factor
    translate: float = 0.0  # max shift in shoulder widths, per axis
    speed: float = 0.0  # max relative temporal rescale (0.3: 0.7-1.3x speed), lengths kept CTC-feasible
    frame_drop: float = 0.0  # probability that a frame is dropped
    hand_dropout: float = 0.0  # probability, per hand and sample, that the hand is missing for a run of frames
    modality_dropout: float = 0.0  # probability that one modality (pose, face or hands) is missing for a sample
    mirror: float = 0.0  # probability of a left/right mirror (x flipped, left and right points swapped)

    def __post_init__(self) -> None:
        _check(0 <= self.rotation <= 180, "augment.rotation", self.rotation, "must be in [0, 180] degrees")
        _check(0 <= self.scale < 1, "augment.scale", self.scale, "must be in [0, 1)")
        _check(0 <= self.shear <= 1, "augment.shear", self.shear, "must be in [0, 1]")
        _check(0 <= self.translate <= 2, "augment.translate", self.translate, "must be in [0, 2] shoulder widths")
        _check(0 <= self.speed < 1, "augment.speed", self.speed, "must be in [0, 1)")
        for name in ("frame_drop", "hand_dropout", "modality_dropout", "mirror"):
            value = getattr(self, name)
            _check(0 <= value <= 1, f"augment.{name}", value, "must be a probability in [0, 1]")
        _check(self.frame_drop < 1, "augment.frame_drop", self.frame_drop, "must be < 1 (1 drops every frame)")

    def enabled(self) -> bool:
        return any(getattr(self, f.name) for f in dataclasses.fields(self))

    def needs_landmarks(self) -> list[str]:
        """The keys that are on and act on landmark points (not on precomputed features)."""
        names = ("rotation", "scale", "shear", "translate", "mirror", "hand_dropout", "modality_dropout")
        return [f"augment.{n}" for n in names if getattr(self, n)]


@dataclass
class DecodeConfig:
    """How log-probs become glosses, and how they are scored."""

    method: str = "greedy"  # greedy | beam | beam_lm (beam search fused with a gloss n-gram LM: needs flashlight-text)
    beam_width: int = 8  # prefix beam search width (method=beam or beam_lm)
    scorer: str = "plain"  # plain | phoenix2014
    lm_path: str = ""  # the gloss LM file (method=beam_lm; written by slr tune-decode or slr.lm)
    lm_weight: float = 0.5  # LM log-probability weight in the fused score (method=beam_lm)
    lm_bonus: float = 0.0  # insertion bonus per gloss (method=beam_lm; > 0 counters the LM's bias to short output)
    lm_order: int = 2  # n-gram order of an LM trained by slr tune-decode (2: the lowest PHOENIX dev perplexity, docs/benchmarks.md)
    lm_discount: float = 0.75  # absolute discount of that LM's smoothing (interpolated, slr.lm)

    def __post_init__(self) -> None:
        _check(self.method in ("greedy", "beam", "beam_lm"), "decode.method", self.method,
               "must be greedy, beam or beam_lm")
        _check(self.beam_width >= 1, "decode.beam_width", self.beam_width, "must be >= 1")
        _check(self.method != "beam_lm" or bool(self.lm_path), "decode.lm_path", self.lm_path,
               "method beam_lm needs a gloss LM file (slr tune-decode SWEEP trains one)")
        _check(self.lm_weight >= 0, "decode.lm_weight", self.lm_weight, "must be >= 0")
        _check(self.lm_order >= 1, "decode.lm_order", self.lm_order, "must be >= 1")
        _check(0 < self.lm_discount < 1, "decode.lm_discount", self.lm_discount, "must be in (0, 1)")
        _check(self.scorer in ("plain", "phoenix2014"), "decode.scorer", self.scorer, "must be plain or phoenix2014")


@dataclass
class Config:
    data: DataConfig = field(default_factory=DataConfig)
    features: FeaturesConfig = field(default_factory=FeaturesConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    decode: DecodeConfig = field(default_factory=DecodeConfig)

    def __post_init__(self) -> None:
        _check(self.train.self_distill_weight == 0 or self.model.aux_ctc_weight > 0, "train.self_distill_weight",
               self.train.self_distill_weight, "distils into the auxiliary head: needs model.aux_ctc_weight > 0")
        on_points = self.augment.needs_landmarks()
        if self.features.layout == "precomputed" and on_points:
            key = on_points[0]
            raise ConfigError(key, getattr(self.augment, key.split(".")[1]),
                              "needs landmarks (features.layout=holistic543); precomputed features take only "
                              "augment.speed and augment.frame_drop")

    # -- construction ---------------------------------------------------------------------------
    @classmethod
    def from_dict(cls, raw: dict[str, Any] | None, source: str | None = None) -> Config:
        """Build from a nested dict; unknown keys and wrong types raise ConfigError."""
        try:
            return build(cls, _without_retired(raw or {}), prefix="")
        except ConfigError as err:
            if source and not err.source:
                raise ConfigError(err.key, err.value, err.rule, source) from None
            raise

    @classmethod
    def load(cls, path: str | Path, overrides: list[str] | None = None) -> Config:
        """Load a YAML file (a full config or a file with a top-level ``config:`` section)."""
        raw = read_yaml(path)
        raw.pop("provenance", None)  # exported configs (slr export) carry where they came from
        if "config" in raw and isinstance(raw["config"], dict) and not (set(raw) & {"train", "model"}):
            raw = raw["config"]
        raw = apply_overrides(raw, overrides or [])
        return cls.from_dict(raw, source=str(path))

    # -- serialisation --------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)

    def flat(self) -> dict[str, Any]:
        """``{"train.learning_rate": 3e-4, "model.vac.width": 512, ...}``: nested sections (``model.vac``) are
        flattened too; a field whose value is a dict (``model.encoder_dims``) is kept as one value."""
        def walk(obj: Any, prefix: str) -> dict[str, Any]:
            out: dict[str, Any] = {}
            for f in dataclasses.fields(obj):
                value = getattr(obj, f.name)
                if dataclasses.is_dataclass(value):
                    out.update(walk(value, f"{prefix}{f.name}."))
                else:
                    out[f"{prefix}{f.name}"] = copy.deepcopy(value)  # a dict or list value: the caller's own copy
            return out
        return walk(self, "")

    def override(self, updates: dict[str, Any]) -> Config:
        """A new validated Config with dotted-key updates applied."""
        raw = self.to_dict()
        for key, value in updates.items():
            _set_dotted(raw, key, value)
        return Config.from_dict(raw)


# Keys that configs no longer have, with the value that meant "off": older checkpoints and exported configs hold
# them and still load; any other value is an error naming the key.
RETIRED = {"train.inject_nonfinite_from_epoch": (0, "it was a fault injection for tests; tests now inject faults "
                                                    "with their own trial function (tests/tune/table_sweep.py)")}


def _without_retired(raw: dict[str, Any]) -> dict[str, Any]:
    raw = dict(raw)
    for key, (off, why) in RETIRED.items():
        section, _, name = key.partition(".")
        if isinstance(raw.get(section), dict) and name in raw[section]:
            raw[section] = dict(raw[section])
            value = raw[section].pop(name)
            if value != off:
                raise ConfigError(key, value, f"no longer a config key: {why}")
    return raw


def read_yaml(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise ConfigError("file", str(path), "no such file")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise ConfigError("file", str(path), f"not valid YAML: {err}") from None
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise ConfigError("file", str(path), f"top level must be a mapping, got {type(raw).__name__}")
    return raw


def parse_override(text: str) -> tuple[str, Any]:
    """``"train.learning_rate=3e-4"`` -> ``("train.learning_rate", 0.0003)`` (value parsed as YAML)."""
    if "=" not in text:
        raise ConfigError(text, text, "override must look like key=value")
    key, _, value = text.partition("=")
    try:
        parsed = yaml.safe_load(value) if value.strip() else ""
    except yaml.YAMLError:
        parsed = value
    return key.strip(), parsed


def apply_overrides(raw: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    raw = dict(raw)
    for text in overrides:
        key, value = parse_override(text)
        _set_dotted(raw, key, value)
    return raw


def _set_dotted(raw: dict[str, Any], key: str, value: Any) -> None:
    parts = key.split(".")
    node = raw
    for part in parts[:-1]:
        child = node.get(part)
        if child is None:
            child = node[part] = {}
        elif not isinstance(child, dict):
            raise ConfigError(key, value, f"{part} is not a section")
        else:
            child = node[part] = dict(child)
        node = child
    node[parts[-1]] = value


def build(cls: type, raw: Any, prefix: str = "") -> Any:
    """A dataclass of type ``cls`` from a mapping, every value type-checked against its field's hint and nested
    dataclasses built the same way; the dataclass's ``__post_init__`` then checks its own rules. Unknown keys and
    wrong types raise :class:`ConfigError` naming the dotted key (``prefix`` + field). slr's config tree and
    tune's experiment spec are both built this way."""
    if not isinstance(raw, dict):
        raise ConfigError(prefix or "config", raw, "must be a mapping")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    for key in raw:
        if key not in names:
            raise ConfigError(f"{prefix}{key}", raw[key], f"unknown key; known: {sorted(names)}")
    kwargs = {}
    for name, value in raw.items():
        hint, key = hints[name], f"{prefix}{name}"
        if dataclasses.is_dataclass(hint):
            kwargs[name] = build(hint, value, prefix=f"{key}.")
        else:
            kwargs[name] = _coerce(hint, value, key)
    return cls(**kwargs)


def _coerce(hint: Any, value: Any, key: str) -> Any:
    """Type-check a YAML value against a field hint; ints are accepted for floats."""
    origin = typing.get_origin(hint)
    if hint is float:
        if isinstance(value, str):  # PyYAML (YAML 1.1) reads 1e-3 as a string; accept it as users mean it
            try:
                value = float(value)
            except ValueError:
                raise ConfigError(key, value, "must be a number") from None
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(key, value, "must be a number")
        if not math.isfinite(value):  # inf/nan pass every comparison-based rule and break training later
            raise ConfigError(key, value, "must be a finite number")
        return float(value)
    if hint in (int, bool, str):
        if hint is int and isinstance(value, float) and value.is_integer():
            value = int(value)
        if type(value) is not hint:
            raise ConfigError(key, value, f"must be {hint.__name__}")
        return value
    if origin is list:
        if not isinstance(value, list):
            raise ConfigError(key, value, "must be a list")
        (item,) = typing.get_args(hint)
        return [_coerce(item, v, key) for v in value]
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(key, value, "must be a mapping")
        _, item = typing.get_args(hint)
        return {str(k): _coerce(item, v, f"{key}.{k}") for k, v in value.items()}
    if origin in (typing.Union, types.UnionType):
        return value
    return value
