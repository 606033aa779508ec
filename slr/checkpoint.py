"""Checkpoints: plain tensors and primitives only, written atomically, loaded with weights_only=True.

A checkpoint holds everything needed for an exact resume (model, optimizer, step, epoch, RNG state,
early-stopping state, history) and everything needed to use the model alone (resolved config,
vocabulary, code version). ``load`` refuses files that are not ours before touching their contents.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import subprocess
import tempfile
import zipfile
from functools import lru_cache
from pathlib import Path
from typing import Any

import torch

import slr

FORMAT = "slr-checkpoint"
VERSION = 1


class CheckpointError(ValueError):
    """The file is not a readable slr checkpoint."""


def save(state: dict[str, Any], path: str | Path) -> Path:
    """Write ``state`` to ``path`` via a temporary file + rename: a crash mid-write leaves the old file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {"format": FORMAT, "version": VERSION, "code_version": code_version(), **state}
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(payload, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def load(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a checkpoint safely (no code execution); raise CheckpointError naming the file otherwise."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, zipfile.BadZipFile, OSError, ValueError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise CheckpointError(f"{path}: not a loadable slr checkpoint (refused by the safe loader: {first})") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not an slr checkpoint (no '{FORMAT}' marker)")
    if state.get("version") != VERSION:
        raise CheckpointError(f"{path}: checkpoint version {state.get('version')!r}, this slr reads {VERSION}")
    model = (state.get("config") or {}).get("model")
    if isinstance(model, dict) and "frame_skip" not in model:
        model["frame_skip"] = False  # written before model.frame_skip existed: a seed model, which has no skip
    return state


def sha256(path: str | Path) -> str:
    """A file's SHA-256 (hex), read in 1 MiB chunks: which checkpoint an export or a distillation came from.
    Remembered for the file as it is (path, size, modification time, inode): a checkpoint rewritten at the same
    path is read again (keyed by the path alone, a retrained teacher or checkpoint kept its old digest)."""
    st = os.stat(path)
    return _sha256(str(Path(path).resolve()), st.st_size, st.st_mtime_ns, st.st_ino)


@lru_cache(maxsize=8)
def _sha256(path: str, size: int, mtime_ns: int, inode: int) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def code_version() -> str:
    """Package version plus the git commit (``+dirty`` if the tree has changes) when run from a checkout."""
    root = Path(slr.__file__).resolve().parent.parent
    try:
        commit = subprocess.run(["git", "-C", str(root), "rev-parse", "--short", "HEAD"], capture_output=True,
                                text=True, timeout=5).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        commit, dirty = "", ""
    return f"{slr.__version__}+{commit}{'.dirty' if dirty else ''}" if commit else slr.__version__


def machine_facts(device: str = "cpu") -> dict[str, str]:
    """What a run's float results depend on besides the config: torch's version and the CPU kernels it dispatches
    to (``AVX2``, ``AVX512``, ...). Two CPU runs of one config with the same thread count agree bit for bit when
    these agree; CUDA kernels are not deterministic, so a CUDA run is recorded as such."""
    import torch
    facts = dict(torch=torch.__version__, cpu_capability=torch.backends.cpu.get_cpu_capability(), device=device)
    if device.startswith("cuda"):
        facts["cuda"] = "nondeterministic kernels: a retrain matches within a tolerance, not bit for bit"
    return facts


def differing_facts(recorded: dict[str, str], here: dict[str, str]) -> list[str]:
    """``["torch 2.13.0 (run) != 2.14.1 (here)", ...]`` for the facts a CPU retrain's exactness depends on."""
    return [f"{k} {recorded[k]} (run) != {here[k]} (here)" for k in ("torch", "cpu_capability")
            if k in recorded and recorded[k] != here.get(k)]
