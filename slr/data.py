"""Samples -> padded batches. Feature derivation happens later, on the training device."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from slr.config import Config
from slr.corpus.store import Corpus, Sample
from slr.vocab import Vocabulary


def check_layout(cfg: Config, corpus: Corpus) -> None:
    """A config reads a corpus only in the layout it was made for: landmarks (holistic543) or precomputed
    features of the width the config declares."""
    want = "precomputed" if cfg.features.layout == "precomputed" else "holistic543"
    if corpus.layout != want:
        raise ValueError(f"{corpus.root}: corpus layout {corpus.layout!r} does not match "
                         f"features.layout={cfg.features.layout!r}")
    if want == "precomputed" and corpus.manifest["frame_dim"] != cfg.features.input_dim:
        raise ValueError(f"{corpus.root}: frame width {corpus.manifest['frame_dim']} != "
                         f"features.input_dim={cfg.features.input_dim}")


def ctc_min_frames(labels: list[int]) -> int:
    """Fewest frames CTC needs for ``labels``: one per label plus a blank between adjacent repeats."""
    return len(labels) + sum(a == b for a, b in zip(labels, labels[1:]))


@dataclass
class Batch:
    x: torch.Tensor  # [B, T, 543, 3] landmarks or [B, T, D] features, float16
    point_mask: torch.Tensor | None  # [B, T, 543] bool, True = detected
    lengths: torch.Tensor  # [B] int64 frames
    targets: torch.Tensor  # [sum(L)] int64 concatenated labels (never blank)
    target_lengths: torch.Tensor  # [B] int64
    ids: list[str]

    def min_frames(self) -> list[int]:
        """Per sample, the fewest frames CTC needs for its labels (:func:`ctc_min_frames`)."""
        return [ctc_min_frames(t.tolist()) for t in self.targets.split(self.target_lengths.tolist())]

    @property
    def frame_mask(self) -> torch.Tensor:  # [B, T]
        return torch.arange(self.x.shape[1])[None] < self.lengths[:, None]

    def to(self, device: torch.device) -> Batch:
        move = lambda t: None if t is None else t.to(device, non_blocking=True)  # noqa: E731
        return Batch(move(self.x), move(self.point_mask), self.lengths, self.targets, self.target_lengths, self.ids)


class SignDataset(Dataset):
    """One split of a corpus. Samples CTC cannot align (too few frames) are excluded and counted."""

    def __init__(self, corpus: Corpus, split: str, vocab: Vocabulary, max_frames: int = 0,
                 input_frames: Callable[[int], int] | None = None):
        """``input_frames``: the model's fewest input frames for n output frames (``model.input_frames``; None:
        one output frame per input frame), so a sample is kept only if CTC can align it at the output's rate."""
        self.corpus, self.vocab, self.max_frames = corpus, vocab, max_frames
        needed = input_frames or (lambda n: n)
        self.samples: list[Sample] = []
        self.labels: list[list[int]] = []
        self.excluded: dict[str, str] = {}
        for s in corpus.split(split):
            labels = vocab.encode(s.glosses)
            frames = min(s.frames, max_frames) if max_frames else s.frames
            if not labels:
                self.excluded[s.id] = "empty gloss list"
            elif frames < needed(ctc_min_frames(labels)):
                self.excluded[s.id] = f"{frames} frames < {needed(ctc_min_frames(labels))} needed by CTC"
            else:
                self.samples.append(s)
                self.labels.append(labels)

    def __len__(self) -> int:
        return len(self.samples)

    def lengths(self) -> list[int]:
        return [min(s.frames, self.max_frames) if self.max_frames else s.frames for s in self.samples]

    def __getitem__(self, i: int) -> tuple[np.ndarray, np.ndarray | None, list[int], str]:
        xyz, mask = self.corpus.load(self.samples[i])
        if self.max_frames:
            xyz, mask = xyz[: self.max_frames], None if mask is None else mask[: self.max_frames]
        return xyz, mask, self.labels[i], self.samples[i].id


def collate(items: list[tuple[np.ndarray, np.ndarray | None, list[int], str]]) -> Batch:
    """Pad to the longest sample; the copy out of the memory map happens here, once."""
    lengths = torch.tensor([len(x) for x, *_ in items])
    T = int(lengths.max())
    first = items[0][0]
    x = torch.zeros((len(items), T, *first.shape[1:]), dtype=torch.float16)
    mask = None if items[0][1] is None else torch.zeros((len(items), T, first.shape[1]), dtype=torch.bool)
    xn, mn = x.numpy(), None if mask is None else mask.numpy()  # write through numpy: the sources are read-only maps
    for i, (xyz, m, _, _) in enumerate(items):
        xn[i, : len(xyz)] = xyz
        if mn is not None:
            mn[i, : len(m)] = m
    targets = torch.tensor([t for *_, labels, _ in items for t in labels], dtype=torch.long)
    target_lengths = torch.tensor([len(labels) for *_, labels, _ in items])
    return Batch(x, mask, lengths, targets, target_lengths, [i for *_, i in items])


class BucketBatchSampler(Sampler[list[int]]):
    """Length-bucketed, shuffled batches: shuffle, cut into buckets of ``bucket`` batches, sort each
    bucket by length, batch, shuffle the batches. Deterministic in (seed, epoch), so a resumed run
    sees the same order as an uninterrupted one."""

    def __init__(self, lengths: list[int], batch_size: int, bucket: int, seed: int, shuffle: bool = True):
        self.lengths, self.batch_size, self.bucket, self.seed, self.shuffle = lengths, batch_size, bucket, seed, shuffle
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def batches(self) -> list[list[int]]:
        n = len(self.lengths)
        if not self.shuffle:  # evaluation: sorted by length for the least padding
            order = sorted(range(n), key=lambda i: self.lengths[i])
            return [order[i: i + self.batch_size] for i in range(0, n, self.batch_size)]
        g = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
        order = torch.randperm(n, generator=g).tolist()
        span = self.batch_size * self.bucket
        batches = []
        for start in range(0, n, span):
            chunk = sorted(order[start: start + span], key=lambda i: self.lengths[i])
            batches += [chunk[i: i + self.batch_size] for i in range(0, len(chunk), self.batch_size)]
        perm = torch.randperm(len(batches), generator=g).tolist()
        return [batches[i] for i in perm]

    def __iter__(self):
        return iter(self.batches())

    def __len__(self) -> int:
        return (len(self.lengths) + self.batch_size - 1) // self.batch_size
