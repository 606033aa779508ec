"""Keypoint augmentation of training batches, on the training device, before the feature pipeline.

``Augmenter(cfg, seed)(batch, step) -> batch``: a new :class:`~slr.data.Batch` with landmarks, detection mask
and lengths changed; the batch given is left as it is. Every draw comes from a generator seeded by
``(train.seed, step)``, so a run (and a resumed run) sees the same augmented batches every time. Every key at
0 is the identity; the trainer only builds an augmenter when some key is on, and never for dev or test.

Geometry acts in the image plane about each sample's shoulder centre (its mean over the frames where both
shoulders are seen), in units of its shoulder width, the same frame ``slr.features.normalize`` uses; depth
(z) only scales. Missing points stay missing: a point masked before is masked after, and temporal resampling
carries each point's mask with its value, so the pipeline still zeroes it and no NaN reaches the network.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from slr.config import AugmentConfig
from slr.data import Batch
from slr.layout import FACE, LEFT_HAND, LEFT_SHOULDER, NUM_POINTS, POSE, RIGHT_HAND, RIGHT_SHOULDER

# MediaPipe Pose's left/right pairs (nose 0 is on the midline); a mirror swaps each pair.
POSE_PAIRS = [(1, 4), (2, 5), (3, 6), (7, 8), (9, 10), (11, 12), (13, 14), (15, 16), (17, 18), (19, 20), (21, 22),
              (23, 24), (25, 26), (27, 28), (29, 30), (31, 32)]
MODALITY_POINTS = {"pose": [POSE], "face": [FACE], "hands": [LEFT_HAND, RIGHT_HAND]}


def mirror_index() -> torch.Tensor:
    """``[543]`` point permutation of a left/right mirror: pose pairs and the two hands swapped. The face mesh's
    points keep their indices (its 468-point symmetry table is not part of the layout), their x is flipped."""
    index = torch.arange(NUM_POINTS)
    for a, b in POSE_PAIRS:
        index[a], index[b] = b, a
    n = LEFT_HAND[1] - LEFT_HAND[0]
    index[LEFT_HAND[0]:LEFT_HAND[1]] = torch.arange(RIGHT_HAND[0], RIGHT_HAND[0] + n)
    index[RIGHT_HAND[0]:RIGHT_HAND[1]] = torch.arange(LEFT_HAND[0], LEFT_HAND[0] + n)
    return index


class Augmenter:
    """The training-split augmentations of ``augment.*`` (see :class:`slr.config.AugmentConfig`)."""

    def __init__(self, cfg: AugmentConfig, seed: int, input_frames: Callable[[int], int] | None = None):
        """``input_frames``: the model's fewest input frames for n output frames (``model.input_frames``), so
        the temporal augmentations keep every sample CTC-feasible at the output's rate (None: one per frame)."""
        self.cfg, self.seed = cfg, seed
        self.input_frames = input_frames or (lambda n: n)
        self.mirror_index = mirror_index()

    def __call__(self, batch: Batch, step: int) -> Batch:
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + step)
        x, mask, lengths = batch.x.float(), batch.point_mask, batch.lengths
        if mask is None:  # precomputed features: only the temporal augmentations apply (config checks)
            mask_b = torch.ones(x.shape[:2], dtype=torch.bool, device=x.device)
        else:
            mask_b = mask.bool()
        if x.dim() == 4:
            x, mask_b = self._geometry(x, mask_b, lengths, g)
            mask_b = self._dropouts(mask_b, lengths, g)
        need = [self.input_frames(n) for n in batch.min_frames()]
        x, mask_b, lengths = self._resample(x, mask_b, lengths, need, g)
        if x.dim() == 4:  # a missing point's value is meaningless after the transform: 0, and masked
            x = torch.where(mask_b[..., None], x, torch.zeros((), device=x.device))
        return Batch(x.to(batch.x.dtype), None if mask is None else mask_b, lengths, batch.targets,
                     batch.target_lengths, batch.ids)

    # -- geometry: x [B, T, 543, 3], mask [B, T, 543] -------------------------------------------------
    def _geometry(self, x: torch.Tensor, mask: torch.Tensor, lengths: torch.Tensor,
                  g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        c = self.cfg
        B = x.shape[0]
        if not (c.rotation or c.scale or c.shear or c.translate or c.mirror):
            return x, mask
        centre, width = _shoulder_frame(x, mask, lengths)  # [B, 2], [B]
        angle = _uniform(g, B, c.rotation) * math.pi / 180
        scale = 1 + _uniform(g, B, c.scale)
        shear = _uniform(g, B, c.shear)
        shift = torch.stack([_uniform(g, B, c.translate), _uniform(g, B, c.translate)], -1)  # [B, 2] widths
        flip = torch.rand(B, generator=g) < c.mirror
        cos, sin = torch.cos(angle), torch.sin(angle)
        # A = R(angle) @ [[1, shear], [0, 1]] * scale, with x flipped first for mirrored samples
        a = torch.stack([torch.stack([cos, cos * shear - sin], -1), torch.stack([sin, sin * shear + cos], -1)], 1)
        a = a * scale[:, None, None]  # [B, 2, 2]
        a[..., 0] *= torch.where(flip, -1.0, 1.0)[:, None]
        dev = x.device
        a, centre, width = a.to(dev), centre.to(dev), width.to(dev)
        offset = centre + shift.to(dev) * width[:, None]  # [B, 2]
        xy = torch.einsum("bij,btpj->btpi", a, x[..., :2] - centre[:, None, None]) + offset[:, None, None]
        z = x[..., 2:] * scale.to(dev)[:, None, None, None]
        out = torch.cat([xy, z], -1)
        if flip.any():  # swap left and right points of the mirrored samples
            idx = self.mirror_index.to(dev)
            rows = flip.to(dev)
            out = torch.where(rows[:, None, None, None], out[:, :, idx], out)
            mask = torch.where(rows[:, None, None], mask[:, :, idx], mask)
        return out, mask

    # -- detections: mask [B, T, 543] --------------------------------------------------------------
    def _dropouts(self, mask: torch.Tensor, lengths: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        c = self.cfg
        if not (c.hand_dropout or c.modality_dropout):
            return mask
        keep = torch.ones_like(mask, device="cpu")
        for b, n in enumerate(lengths.tolist()):
            for lo, hi in (LEFT_HAND, RIGHT_HAND):  # a hand missed for a run of frames, as MediaPipe misses it
                if torch.rand(1, generator=g).item() < c.hand_dropout:
                    run = int(torch.randint(1, max(2, n // 3 + 1), (1,), generator=g))
                    start = int(torch.randint(0, max(1, n - run + 1), (1,), generator=g))
                    keep[b, start:start + run, lo:hi] = False
            if torch.rand(1, generator=g).item() < c.modality_dropout:  # one modality gone for the whole sample
                name = list(MODALITY_POINTS)[int(torch.randint(0, len(MODALITY_POINTS), (1,), generator=g))]
                for lo, hi in MODALITY_POINTS[name]:
                    keep[b, :, lo:hi] = False
        return mask & keep.to(mask.device)

    # -- time: speed and frame drop, lengths kept CTC-feasible -----------------------------------------
    def _resample(self, x: torch.Tensor, mask: torch.Tensor, lengths: torch.Tensor, need: list[int],
                  g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        c = self.cfg
        if not (c.speed or c.frame_drop):
            return x, mask, lengths
        picks = []
        for b, n in enumerate(lengths.tolist()):
            idx = torch.arange(n)
            if c.speed:  # nearest-frame resampling at a random rate; never below what CTC needs
                rate = 1 + float(_uniform(g, 1, c.speed))
                m = max(need[b], min(round(n / rate), 4 * n))
                idx = ((torch.arange(m) + 0.5) * n / m).long().clamp(max=n - 1)
            if c.frame_drop:
                kept = idx[torch.rand(len(idx), generator=g) >= c.frame_drop]
                idx = kept if len(kept) >= need[b] else idx  # too few left for CTC: keep the sample's frames
            picks.append(idx)
        new = torch.tensor([len(p) for p in picks])
        T = int(new.max())
        dev = x.device
        index = torch.zeros(len(picks), T, dtype=torch.long)
        for b, p in enumerate(picks):
            index[b, : len(p)] = p
        index = index.to(dev)
        real = (torch.arange(T)[None] < new[:, None]).to(dev)  # [B, T]
        gx = torch.gather(x, 1, index.view(*index.shape, *([1] * (x.dim() - 2))).expand(-1, -1, *x.shape[2:]))
        gx = gx * real.view(*real.shape, *([1] * (x.dim() - 2)))
        gm = torch.gather(mask, 1, index.view(*index.shape, *([1] * (mask.dim() - 2))).expand(-1, -1, *mask.shape[2:]))
        gm = gm & real.view(*real.shape, *([1] * (mask.dim() - 2)))
        return gx, gm, new


def _uniform(g: torch.Generator, n: int, bound: float) -> torch.Tensor:
    """``[n]`` uniform in ``[-bound, bound]`` (zeros, without a draw, when ``bound`` is 0)."""
    if not bound:
        return torch.zeros(n)
    return (torch.rand(n, generator=g) * 2 - 1) * bound


def _shoulder_frame(x: torch.Tensor, mask: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per sample, the shoulder midpoint ``[B, 2]`` and shoulder width ``[B]`` averaged over real frames where both
    shoulders are seen (the image centre 0.5 and width 1 for a sample with none). On the CPU: ``[B]``-sized."""
    T = x.shape[1]
    real = torch.arange(T, device=x.device)[None] < lengths.to(x.device)[:, None]
    both = (mask[:, :, LEFT_SHOULDER] & mask[:, :, RIGHT_SHOULDER] & real).float()  # [B, T]
    left = torch.nan_to_num(x[:, :, LEFT_SHOULDER, :2])
    right = torch.nan_to_num(x[:, :, RIGHT_SHOULDER, :2])
    count = both.sum(1)
    centre = (((left + right) / 2) * both[..., None]).sum(1) / count.clamp(min=1)[:, None]
    width = ((left - right).norm(dim=-1) * both).sum(1) / count.clamp(min=1)
    seen = count > 0
    centre = torch.where(seen[:, None], centre, torch.full_like(centre, 0.5))
    width = torch.where(seen & (width > 1e-6), width, torch.ones_like(width))
    return centre.cpu(), width.cpu()
