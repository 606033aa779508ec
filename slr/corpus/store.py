"""The corpus on disk: a directory that training memory-maps and never modifies.

    DIR/manifest.json     format version, layout, frame width, fps, counts (checked against the data)
    DIR/landmarks.arrow   Arrow IPC file, one record batch per sample:
                            xyz  fixed_size_list<float16>[frame_dim]   (1629 = 543 x 3 for holistic543)
                            mask fixed_size_list<uint8>[543]            (1 = detected; holistic543 only)
    DIR/samples.parquet   id, signer, split, glosses (list<string>), frames, fps, batch
    DIR/vocab.json        the train split's glosses (slr.vocab)

One record batch per sample makes reading a sample a zero-copy view into the page cache, shared by
every process (every Ray trial) on the node. Files are written under temporary names and renamed on
close, so an interrupted write never leaves a corpus that looks complete.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.ipc as ipc
import pyarrow.parquet as pq

from slr.layout import NUM_POINTS
from slr.vocab import Vocabulary

FORMAT_VERSION = 1
SPLITS = ("train", "dev", "test")
MANIFEST, LANDMARKS, SAMPLES, VOCAB = "manifest.json", "landmarks.arrow", "samples.parquet", "vocab.json"


class CorpusError(ValueError):
    """A corpus directory or one of its files is unreadable or inconsistent."""


@dataclass(frozen=True)
class Sample:
    id: str
    signer: str
    split: str
    glosses: list[str]
    frames: int
    fps: float
    batch: int  # record batch index in landmarks.arrow


class CorpusWriter:
    """Streams samples into a corpus directory; ``close()`` writes metadata, vocab and manifest."""

    def __init__(self, out: str | Path, layout: str = "holistic543", frame_dim: int = NUM_POINTS * 3,
                 fps: float = 25.0, extra: dict[str, Any] | None = None):
        self.out = Path(out)
        self.out.mkdir(parents=True, exist_ok=True)
        self.layout, self.frame_dim, self.fps, self.extra = layout, frame_dim, fps, extra or {}
        self.has_mask = layout == "holistic543"
        fields = [pa.field("xyz", pa.list_(pa.float16(), frame_dim))]
        if self.has_mask:
            fields.append(pa.field("mask", pa.list_(pa.uint8(), NUM_POINTS)))
        self.schema = pa.schema(fields)
        self._tmp = self.out / (LANDMARKS + ".partial")
        self._sink = pa.OSFile(str(self._tmp), "wb")
        self._writer = ipc.new_file(self._sink, self.schema)
        self.rows: list[dict[str, Any]] = []
        self._ids: set[str] = set()

    def add(self, sample_id: str, signer: str, split: str, glosses: list[str], values: np.ndarray,
            mask: np.ndarray | None = None) -> None:
        """Append one sample.

        Args:
            values: ``[T, 543, 3]`` landmarks (NaN where missing) or ``[T, frame_dim]`` features.
            mask: ``[T, 543]`` True where detected; default: detected where all of xyz are finite.
        """
        try:
            flat, seen = encode(values, mask, self.has_mask)
        except CorpusError as err:
            raise CorpusError(f"sample {sample_id!r}: {err}") from None
        self.add_encoded(sample_id, signer, split, glosses, flat, seen)

    def add_encoded(self, sample_id: str, signer: str, split: str, glosses: list[str], flat: np.ndarray,
                    seen: np.ndarray | None) -> None:
        """Append a sample already encoded by :func:`encode` (importer workers encode in parallel)."""
        if sample_id in self._ids:
            raise CorpusError(f"duplicate sample id {sample_id!r}")
        if split not in SPLITS:
            raise CorpusError(f"sample {sample_id!r}: split {split!r} not in {SPLITS}")
        frames = flat.shape[0]
        if flat.shape[1] != self.frame_dim or (seen is None) == self.has_mask:
            raise CorpusError(f"sample {sample_id!r}: frame width {flat.shape[1]} != {self.frame_dim}")
        arrays = [_fixed_list(flat, pa.float16())]
        if self.has_mask:
            arrays.append(_fixed_list(seen, pa.uint8()))
        self._writer.write_batch(pa.record_batch(arrays, schema=self.schema))
        self.rows.append(dict(id=sample_id, signer=signer, split=split, glosses=list(glosses), frames=frames,
                              fps=float(self.fps), batch=len(self.rows)))
        self._ids.add(sample_id)

    def close(self, vocab: Vocabulary | None = None) -> Path:
        """Finish the files and write metadata; the vocabulary defaults to the train split's glosses."""
        self._writer.close()
        self._sink.close()
        os.replace(self._tmp, self.out / LANDMARKS)
        table = pa.Table.from_pylist(self.rows, schema=_SAMPLE_SCHEMA)
        pq.write_table(table, self.out / (SAMPLES + ".partial"))
        os.replace(self.out / (SAMPLES + ".partial"), self.out / SAMPLES)
        if vocab is None:
            vocab = Vocabulary.build(r["glosses"] for r in self.rows if r["split"] == "train")
        vocab.to_json(self.out / VOCAB)
        counts = {s: sum(r["split"] == s for r in self.rows) for s in SPLITS}
        manifest = dict(format_version=FORMAT_VERSION, layout=self.layout, frame_dim=self.frame_dim,
                        has_mask=self.has_mask, fps=self.fps, num_samples=len(self.rows), counts=counts,
                        total_frames=int(sum(r["frames"] for r in self.rows)), vocab_size=len(vocab), **self.extra)
        (self.out / MANIFEST).write_text(json.dumps(manifest, indent=2))
        return self.out


def encode(values: np.ndarray, mask: np.ndarray | None, has_mask: bool) -> tuple[np.ndarray, np.ndarray | None]:
    """Values as stored: ``[T, D]`` float16 with 0 where missing, and (landmarks) the ``[T, 543]`` uint8 mask."""
    frames = values.shape[0]
    flat = np.asarray(values, dtype=np.float32).reshape(frames, -1)
    if not has_mask:
        return np.where(np.isfinite(flat), flat, 0.0).astype(np.float16), None
    if flat.shape[1] != NUM_POINTS * 3:
        raise CorpusError(f"frame width {flat.shape[1]} != {NUM_POINTS * 3} (543 landmarks x xyz)")
    xyz = flat.reshape(frames, NUM_POINTS, 3)
    seen = np.isfinite(xyz).all(-1) if mask is None else (np.asarray(mask, bool) & np.isfinite(xyz).all(-1))
    flat = np.where(seen[..., None], xyz, 0.0).reshape(frames, -1)
    return flat.astype(np.float16), seen.astype(np.uint8)


def _fixed_list(arr: np.ndarray, typ: pa.DataType) -> pa.FixedSizeListArray:
    return pa.FixedSizeListArray.from_arrays(pa.array(arr.ravel(), type=typ), arr.shape[1])


_SAMPLE_SCHEMA = pa.schema([
    ("id", pa.string()), ("signer", pa.string()), ("split", pa.string()), ("glosses", pa.list_(pa.string())),
    ("frames", pa.int32()), ("fps", pa.float32()), ("batch", pa.int32()),
])


class Corpus:
    """A read-only, memory-mapped corpus directory."""

    def __init__(self, root: str | Path):
        self.root = Path(root)
        self.manifest = self._read_manifest()
        self.samples = self._read_samples()
        self.vocab = self._read_vocab()
        self._reader: ipc.RecordBatchFileReader | None = None
        self._check_landmarks()

    # -- opening and validation -----------------------------------------------------------------
    def _read_manifest(self) -> dict[str, Any]:
        path = self.root / MANIFEST
        if not self.root.is_dir():
            raise CorpusError(f"{self.root}: corpus directory does not exist")
        if not path.is_file():
            raise CorpusError(f"{path}: missing (not a corpus directory? make one with `slr data synth`)")
        try:
            manifest = json.loads(path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise CorpusError(f"{path}: not valid JSON ({err})") from None
        version = manifest.get("format_version") if isinstance(manifest, dict) else None
        if version != FORMAT_VERSION:
            raise CorpusError(f"{path}: format_version {version!r}, this slr reads {FORMAT_VERSION}")
        for key in ("layout", "frame_dim", "has_mask", "num_samples", "fps"):
            if key not in manifest:
                raise CorpusError(f"{path}: missing key {key!r}")
        return manifest

    def _read_samples(self) -> list[Sample]:
        path = self.root / SAMPLES
        try:
            table = pq.read_table(path)
        except (OSError, pa.ArrowException) as err:
            raise CorpusError(f"{path}: unreadable Parquet ({err})") from None
        missing = set(_SAMPLE_SCHEMA.names) - set(table.column_names)
        if missing:
            raise CorpusError(f"{path}: missing columns {sorted(missing)}")
        samples = [Sample(**{k: row[k] for k in _SAMPLE_SCHEMA.names}) for row in table.to_pylist()]
        if len(samples) != self.manifest["num_samples"]:
            raise CorpusError(f"{path}: {len(samples)} samples but {MANIFEST} says {self.manifest['num_samples']}")
        return samples

    def _read_vocab(self) -> Vocabulary:
        path = self.root / VOCAB
        try:
            return Vocabulary.from_json(path)
        except (OSError, ValueError, KeyError, TypeError) as err:
            raise CorpusError(f"{path}: unreadable vocabulary ({err})") from None

    def _check_landmarks(self) -> None:
        reader = self.reader
        path = self.root / LANDMARKS
        if reader.num_record_batches != len(self.samples):
            raise CorpusError(f"{path}: {reader.num_record_batches} samples stored, {SAMPLES} lists {len(self.samples)}")
        width = reader.schema.field("xyz").type.list_size
        if width != self.manifest["frame_dim"]:
            raise CorpusError(f"{path}: frame width {width} but {MANIFEST} says {self.manifest['frame_dim']}")

    @property
    def reader(self) -> ipc.RecordBatchFileReader:
        if self._reader is None:
            path = self.root / LANDMARKS
            try:
                self._reader = ipc.open_file(pa.memory_map(str(path), "r"))
            except (OSError, pa.ArrowException) as err:
                raise CorpusError(f"{path}: unreadable Arrow IPC file ({err})") from None
        return self._reader

    def __getstate__(self) -> dict[str, Any]:  # DataLoader workers / Ray reopen the memory map
        return {**self.__dict__, "_reader": None}

    # -- access ---------------------------------------------------------------------------------
    @property
    def layout(self) -> str:
        return self.manifest["layout"]

    @property
    def fps(self) -> float:
        return float(self.manifest["fps"])

    def split(self, name: str) -> list[Sample]:
        return [s for s in self.samples if s.split == name]

    def require_splits(self, *names: str, purpose: str = "training") -> None:
        """Training needs train samples to learn from and dev samples to score and select on; evaluation, the
        split it scores."""
        missing = [n for n in names if not self.split(n)]
        if missing:
            present = sorted({s.split for s in self.samples})
            raise CorpusError(f"{self.root}: no {' and no '.join(missing)} samples (its splits: "
                              f"{', '.join(present) or 'none'}); {purpose} needs {' and '.join(names)}")

    def load(self, sample: Sample) -> tuple[np.ndarray, np.ndarray | None]:
        """Zero-copy views: ``xyz`` float16 ``[T, 543, 3]`` (or ``[T, D]``) and ``mask`` uint8 ``[T, 543]``."""
        try:
            batch = self.reader.get_batch(sample.batch)
            xyz = batch.column(0).values.to_numpy(zero_copy_only=True)
            mask = batch.column(1).values.to_numpy(zero_copy_only=True) if self.manifest["has_mask"] else None
        except (OSError, pa.ArrowException, IndexError) as err:
            raise CorpusError(f"{self.root / LANDMARKS}: sample {sample.id!r} unreadable ({err})") from None
        if xyz.size != sample.frames * self.manifest["frame_dim"]:
            raise CorpusError(f"{self.root / LANDMARKS}: sample {sample.id!r} has {xyz.size} values, "
                              f"expected {sample.frames} frames x {self.manifest['frame_dim']}")
        if mask is None:
            return xyz.reshape(sample.frames, -1), None
        return xyz.reshape(sample.frames, NUM_POINTS, 3), mask.reshape(sample.frames, NUM_POINTS)

    def digest(self) -> str:
        """A short content fingerprint: SHA-256 over the manifest, the sample index, the vocabulary and the
        landmark file's size (the index names every sample with its length and glosses, so hashing gigabytes of
        landmarks would add little). Two copies of one corpus share it; any re-import or re-synthesis changes it."""
        h = hashlib.sha256()
        for name in (MANIFEST, SAMPLES, VOCAB):
            h.update((self.root / name).read_bytes())
        h.update(str((self.root / LANDMARKS).stat().st_size).encode())
        return h.hexdigest()[:16]

    def stats(self) -> dict[str, Any]:
        """Counts, lengths, vocabulary and missing-point rate (reads every sample once)."""
        frames = np.array([s.frames for s in self.samples])
        glosses = np.array([len(s.glosses) for s in self.samples])
        missing = seen = 0
        if self.manifest["has_mask"]:
            for s in self.samples:
                m = self.load(s)[1]
                missing += int(m.size - m.sum(dtype=np.int64))
                seen += m.size
        train = {g for s in self.split("train") for g in s.glosses}
        unseen = {sp: sum(g not in train for s in self.split(sp) for g in s.glosses) for sp in ("dev", "test")}
        size = sum(p.stat().st_size for p in self.root.iterdir() if p.is_file())
        return dict(
            root=str(self.root), layout=self.layout, fps=self.fps,
            samples={sp: len(self.split(sp)) for sp in SPLITS},
            signers=sorted({s.signer for s in self.samples}), vocab_size=len(self.vocab),
            frames=dict(total=int(frames.sum()), mean=float(frames.mean()) if len(frames) else 0.0,
                        max=int(frames.max()) if len(frames) else 0),
            glosses_per_sample=dict(mean=float(glosses.mean()) if len(glosses) else 0.0,
                                    max=int(glosses.max()) if len(glosses) else 0),
            unseen_gloss_tokens=unseen, missing_point_fraction=(missing / seen) if seen else 0.0,
            disk_bytes=size,
        )
