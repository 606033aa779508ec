"""Landmark recordings in: ``.pose`` (pose-format) and NumPy ``.npy``/``.npz`` -> ``[T, 543, 3]`` + mask.

Every reader returns a :class:`Recording` in the MediaPipe Holistic order of ``slr.features`` (pose 33,
face 468, left hand 21, right hand 21) with NaN where a point was not detected, or -- for precomputed
features -- ``[T, D]``. Problems raise :class:`RecordingError` naming the file and what is wrong.
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from slr.layout import NUM_POINTS

# pose-format component name -> points the holistic543 layout keeps (in this order)
HOLISTIC_COMPONENTS = (("POSE_LANDMARKS", 33), ("FACE_LANDMARKS", 468), ("LEFT_HAND_LANDMARKS", 21),
                       ("RIGHT_HAND_LANDMARKS", 21))
FACE_WITH_IRISES = 478  # MediaPipe's refined face mesh: 468 mesh points + 10 iris points (dropped)
SUFFIXES = (".pose", ".npy", ".npz")


class RecordingError(ValueError):
    """A landmark file cannot be read or does not hold what the corpus layout needs."""


@dataclass
class Recording:
    values: np.ndarray  # float32 [T, 543, 3] (NaN = missing) or [T, D] features
    fps: float | None  # None when the file does not say (NumPy)

    @property
    def frames(self) -> int:
        return int(self.values.shape[0])

    @property
    def is_landmarks(self) -> bool:
        return self.values.ndim == 3


def read_recording(path: str | Path, fps: float | None = None, feature_dim: int | None = None) -> Recording:
    """Read any supported file, resampled to ``fps`` when the file's own rate differs."""
    path = Path(path)
    if path.suffix == ".pose":
        rec = read_pose(path)
    elif path.suffix in (".npy", ".npz"):
        rec = read_numpy(path, feature_dim)
    else:
        raise RecordingError(f"{path}: unsupported file type {path.suffix!r} (expected one of {SUFFIXES})")
    if rec.frames == 0:
        raise RecordingError(f"{path}: no frames")
    if fps and rec.fps and abs(rec.fps - fps) > 1e-3:
        rec = Recording(resample(rec.values, rec.fps, fps), fps)
    return rec


def read_pose(path: str | Path) -> Recording:
    """A pose-format file of MediaPipe Holistic landmarks; components are found by name, first person only."""
    from pose_format import Pose  # optional dependency of the import path only

    path = Path(path)
    try:
        pose = Pose.read(path.read_bytes())
    except Exception as err:  # pose-format raises bare struct/numpy errors on damaged files
        raise RecordingError(f"{path}: not a readable .pose file ({type(err).__name__}: {err})") from None
    components = {c.name: (c, i) for i, c in enumerate(pose.header.components)}
    offsets = np.cumsum([0] + [len(c.points) for c in pose.header.components])
    data = pose.body.data  # masked array [T, people, points, dims]
    if data.ndim != 4 or data.shape[1] < 1:
        raise RecordingError(f"{path}: no person in the recording (data shape {data.shape})")
    xyz = np.ma.getdata(data)[:, 0].astype(np.float32)
    missing = np.ma.getmaskarray(data)[:, 0].any(-1)
    if xyz.shape[-1] < 3:
        raise RecordingError(f"{path}: points have {xyz.shape[-1]} coordinates, need x, y, z")
    parts = []
    for name, keep in HOLISTIC_COMPONENTS:
        if name not in components:
            raise RecordingError(f"{path}: component {name} missing (has {', '.join(components) or 'none'}); "
                                 "the holistic543 layout needs pose, face, left and right hand")
        comp, i = components[name]
        n = len(comp.points)
        if n < keep or (name == "FACE_LANDMARKS" and n not in (keep, FACE_WITH_IRISES)) or \
                (name != "FACE_LANDMARKS" and n != keep):
            raise RecordingError(f"{path}: component {name} has {n} points, the holistic543 layout needs {keep}"
                                 + (" (or 478 with irises)" if name == "FACE_LANDMARKS" else ""))
        sl = slice(int(offsets[i]), int(offsets[i]) + keep)  # a 478-point face keeps its first 468 (the mesh)
        part = xyz[:, sl, :3].copy()
        part[missing[:, sl]] = np.nan
        parts.append(part)
    values = np.concatenate(parts, axis=1)
    values[~np.isfinite(values).all(-1)] = np.nan
    fps = float(pose.body.fps) if pose.body.fps and pose.body.fps > 0 else None
    return Recording(values, fps)


def read_numpy(path: str | Path, feature_dim: int | None = None) -> Recording:
    """``.npy`` holding ``[T, 543, 3]`` landmarks (NaN = missing) or ``[T, D]`` features; ``.npz`` with one
    array, or ``landmarks``/``features`` (and optionally ``fps``)."""
    path = Path(path)
    fps = None
    try:
        if path.suffix == ".npz":
            with np.load(path, allow_pickle=False) as z:
                keys = [k for k in z.files if k != "fps"]
                key = next((k for k in ("landmarks", "features") if k in z.files), keys[0] if len(keys) == 1 else None)
                if key is None:
                    raise RecordingError(f"{path}: .npz holds {z.files}; name the array 'landmarks' or 'features'")
                arr = z[key]
                fps = float(z["fps"]) if "fps" in z.files else None
        else:
            arr = np.load(path, allow_pickle=False)
    except RecordingError:
        raise
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as err:
        raise RecordingError(f"{path}: not a readable NumPy file ({err})") from None
    if not np.issubdtype(arr.dtype, np.number):
        raise RecordingError(f"{path}: dtype {arr.dtype} is not numeric")
    arr = arr.astype(np.float32)
    if arr.ndim == 3 and arr.shape[1:] == (NUM_POINTS, 3):
        return Recording(arr, fps)
    if arr.ndim == 2 and feature_dim and arr.shape[1] == feature_dim:
        return Recording(arr, fps)
    expected = f"[T, {NUM_POINTS}, 3] landmarks" + (f" or [T, {feature_dim}] features" if feature_dim else "")
    raise RecordingError(f"{path}: array shape {list(arr.shape)}, expected {expected}")


def resample(values: np.ndarray, src_fps: float, dst_fps: float) -> np.ndarray:
    """Linear interpolation in time; a point is present at a new frame only if both neighbours have it."""
    T = values.shape[0]
    n = max(1, int(round(T * dst_fps / src_fps)))
    pos = np.arange(n) * (src_fps / dst_fps)
    lo = np.clip(np.floor(pos).astype(int), 0, T - 1)
    hi = np.clip(lo + 1, 0, T - 1)
    w = (pos - lo).reshape(-1, *([1] * (values.ndim - 1))).astype(np.float32)
    out = values[lo] * (1 - w) + values[hi] * w  # NaN in either neighbour stays NaN
    return np.where(w == 0, values[lo], out).astype(np.float32)
