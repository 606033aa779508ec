"""The student on ONNX Runtime: export to ONNX, and a drop-in inference module that runs the export.

The export takes one sentence, every frame real: ``features [1, T, D]`` (T dynamic) -> ``log_probs [T, 1, V]``.
With every frame real the BiLSTM needs no packing (which ``torch.export`` cannot trace), and single sentences
are what latency is about. The feature pipeline stays in torch (its masks are cheap there). On one CPU core ONNX
Runtime ran the seed student's fp32 model ~1.7x as fast as eager PyTorch, with outputs equal to ~1e-6
(docs/benchmarks.md, throughput).

Needs the ``onnx`` extra (``pip install 'slr-tune[onnx]'``: onnxruntime, and onnx + onnxscript for exporting).
"""

from __future__ import annotations

import copy
import io
import logging
import os
import subprocess
import sys
import tempfile
import warnings
from contextlib import contextmanager, redirect_stderr, redirect_stdout
from pathlib import Path

import torch
from torch import nn

from slr.checkpoint import sha256
from slr.model import Model, VacBaseline, strided_input_frames, strided_lengths

INPUT, OUTPUT = "features", "log_probs"
SOURCE_KEY = "slr.checkpoint_sha256"  # metadata: which checkpoint an export came from (see cached_export)
ARCH_KEY = "slr.arch"  # metadata: model.arch, which sets the output's frame rate (absent in older exports: student)
STRIDE_KEY = "slr.output_stride"  # metadata: a student's input frames per output frame (absent in older exports: 1)


def _require(module: str):  # noqa: ANN202 -- a module
    import importlib
    try:
        return importlib.import_module(module)
    except ImportError as err:
        raise RuntimeError(f"ONNX export and ONNX Runtime need the onnx extra: pip install 'slr-tune[onnx]' "
                           f"({err})") from None


class OneSentence(nn.Module):
    """What is exported: the model on one sentence whose frames are all real. ``[1, T, D] -> [T', 1, V]``."""

    def __init__(self, model: Model):
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model.forward_sentence(x)  # no packing: no padding to skip


def export(model: Model, path: str | Path, metadata: dict[str, str] | None = None) -> Path:
    """Write ``model`` as ONNX (in eval mode, on CPU; ``model`` itself is left as it is) to ``path``, with
    ``metadata`` in the file's metadata properties. Some seconds on a CPU core (torch.export)."""
    _require("onnxscript")
    if model.lstm.num_layers > 1:  # checked first: the export would succeed and then run at one length only
        key = "model.vac.lstm_layers" if model.cfg.arch == "vac" else "model.lstm_layers"
        raise RuntimeError(f"ONNX export to {path}: {key}={model.lstm.num_layers}; only a one-layer BiLSTM exports "
                           "to ONNX (torch.export fixes a multi-layer LSTM to the example's length). Run this model "
                           "on torch (--runtime torch)")
    model = copy.deepcopy(model).cpu().eval()
    metadata = {ARCH_KEY: model.cfg.arch, **(metadata or {})}
    if model.cfg.arch != "vac":
        metadata[STRIDE_KEY] = str(model.stride)
    program = _program(model)
    if not _dynamic(program):
        # torch's exporter keeps state across exports in one process: after a first export, the VAC graph's
        # floor-divided lengths come out fixed to the example's. A fresh process exports it at every length.
        program = _program_in_child(model)
    if not _dynamic(program):
        raise RuntimeError(f"ONNX export to {path}: the export is fixed to one length; run this model on torch "
                           "(--runtime torch)")
    program.model.metadata_props.update(metadata)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    program.save(str(tmp))  # then a rename: a reader never sees half a file
    os.replace(tmp, path)
    return path


def _program(model: Model):  # noqa: ANN202 -- an ONNXProgram
    """``model`` (eval, CPU) through torch's ONNX exporter, frames dynamic."""
    example = torch.zeros(1, 64, input_dim(model))
    frames = torch.export.Dim("frames", min=max(2, model.input_frames(1)), max=1_000_000)
    log = io.StringIO()  # the exporter's step-by-step lines and warnings: shown only if it fails
    try:
        with (torch.no_grad(), warnings.catch_warnings(), redirect_stdout(log), redirect_stderr(log),
              _quiet("torch.onnx")):
            warnings.simplefilter("ignore")
            return torch.onnx.export(OneSentence(model), (example,), dynamo=True, verbose=False,
                                     dynamic_shapes=({1: frames},), input_names=[INPUT], output_names=[OUTPUT])
    except Exception as err:
        raise RuntimeError(f"ONNX export failed: {err}\n{log.getvalue()[-4000:]}") from err


def _dynamic(program) -> bool:  # noqa: ANN001 -- an ONNXProgram
    """Whether the export's frame axis is symbolic (not fixed to the example's length)."""
    return not isinstance(program.model.graph.inputs[0].shape[1], int)


def _program_in_child(model: Model):  # noqa: ANN202 -- an ONNXProgram
    """:func:`_program` in a fresh Python process (the model travels as a pickle in a temporary folder)."""
    import onnx_ir
    with tempfile.TemporaryDirectory() as tmp:
        src, out = Path(tmp) / "model.pt", Path(tmp) / "model.onnx"
        torch.save(model, src)
        code = ("import sys, torch; from slr.onnx_runtime import _program; "
                "_program(torch.load(sys.argv[1], weights_only=False)).save(sys.argv[2])")
        done = subprocess.run([sys.executable, "-c", code, str(src), str(out)], capture_output=True, text=True)
        if done.returncode:
            raise RuntimeError(f"ONNX export in a fresh process failed:\n{done.stderr[-4000:]}")
        return _Loaded(onnx_ir.load(str(out)))


class _Loaded:
    """An ONNX model read back from a file, with the two things :func:`export` uses of an ONNXProgram."""

    def __init__(self, model):  # noqa: ANN001 -- an onnx_ir.Model
        self.model = model

    def save(self, path: str) -> None:
        import onnx_ir
        onnx_ir.save(self.model, path)


@contextmanager
def _quiet(logger: str):  # noqa: ANN202 -- a context manager
    """Only errors from ``logger`` (the exporter logs a warning per torchvision op it cannot register)."""
    log = logging.getLogger(logger)
    level = log.level
    log.setLevel(logging.ERROR)
    try:
        yield
    finally:
        log.setLevel(level)


def input_dim(model: Model) -> int:
    """The features the model reads: up to the largest index any modality encoder reads (the seed's 6516)."""
    return max(int(enc.index.max()) for enc in model.encoders.values()) + 1


class OnnxStudent(nn.Module):
    """An ONNX Runtime session with the student's interface: ``(features [B, T, D], lengths [B]) -> log-probs
    [T, B, V]`` float32, so evaluation and decoding use it unchanged. Each sentence runs at its own length
    (the export takes one); log-probs on padding frames are 0 (nothing reads them: decoding and CTC stop at
    ``lengths``). CPU only. ``threads``: ONNX Runtime's intra-op threads (default: torch's thread count)."""

    def __init__(self, path: str | Path, threads: int = 0):
        super().__init__()
        ort = _require("onnxruntime")
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or torch.get_num_threads()
        options.inter_op_num_threads = 1
        self.path = Path(path)
        try:
            self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        except Exception as err:  # onnxruntime raises its own exception types for unreadable models
            raise ValueError(f"{path}: not a usable ONNX model ({err})") from None
        self.metadata = dict(self.session.get_modelmeta().custom_metadata_map)
        # The export takes the features up to the last one a modality encoder reads; any after it are unused.
        self.dim = int(self.session.get_inputs()[0].shape[-1])
        self.vac = self.metadata.get(ARCH_KEY) == "vac"
        self.stride = int(self.metadata.get(STRIDE_KEY, 1))

    def output_lengths(self, lengths: torch.Tensor) -> torch.Tensor:
        return VacBaseline.output_lengths(lengths) if self.vac else strided_lengths(lengths, self.stride)

    def input_frames(self, frames: int) -> int:
        return VacBaseline.input_frames(frames) if self.vac else strided_input_frames(frames, self.stride)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        B = x.shape[0]
        x = x.detach().float().cpu()[..., : self.dim]
        outs = self.output_lengths(lengths)
        out: torch.Tensor | None = None
        for b, (n, n_out) in enumerate(zip(lengths.tolist(), outs.tolist())):
            if n_out == 0:  # shorter than one output frame: nothing to run (such samples are excluded from CTC)
                continue
            lp = torch.from_numpy(self.session.run([OUTPUT], {INPUT: x[b: b + 1, :n].numpy()})[0])  # [n', 1, V]
            if out is None:
                out = lp.new_zeros(int(outs.max()), B, lp.shape[-1])
            out[:n_out, b] = lp[:, 0]
        return out


def cached_export(checkpoint: str | Path, model: Model) -> Path:
    """The ONNX export of ``checkpoint`` (``model`` loaded from it) beside it (``best.pt`` -> ``best.onnx``), made
    on first use and again whenever the checkpoint changes: the export records the checkpoint's SHA-256. Where
    the checkpoint's folder is not writable, the export goes to the system's temporary folder."""
    checkpoint = Path(checkpoint)
    digest = sha256(checkpoint)
    path = checkpoint.with_suffix(".onnx")
    if not os.access(checkpoint.parent, os.W_OK):
        path = Path(tempfile.gettempdir()) / f"slr-{digest[:16]}.onnx"
    if recorded_source(path) == digest:
        return path
    print(f"exporting {checkpoint} to ONNX: {path} (once per checkpoint, some seconds) ...",
          file=sys.stderr, flush=True)
    return export(model, path, {SOURCE_KEY: digest})


def recorded_source(path: str | Path) -> str | None:
    """The checkpoint digest an export at ``path`` records; None for a missing, damaged or foreign file."""
    onnx = _require("onnx")
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception:  # missing, damaged, not ONNX: export again over it
        return None
    return next((p.value for p in model.metadata_props if p.key == SOURCE_KEY), None)
