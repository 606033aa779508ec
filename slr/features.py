"""Landmarks -> model input, computed on the training device (never stored).

MediaPipe Holistic order (543 points): pose 33, face 468, left hand 21, right hand 21. The default
``holistic543`` layout reproduces the seed's 6516 = 4 x 1629 input: normalized positions plus three
temporal blocks (velocity, acceleration, position relative to the sample's mean). The layout is data
-- modality name -> list of [start, stop) spans over the feature vector -- which the model reads, so
other layouts need no model change.

Missing points (a hand out of view) arrive masked (and possibly NaN); they become exact zeros and
every derived value that touches them is zero too. A NaN never reaches the network.
"""

from __future__ import annotations

import torch
from torch import nn

from slr.config import FeaturesConfig

NUM_POINTS = 543
POSE = (0, 33)
FACE = (33, 501)
LEFT_HAND = (501, 522)
RIGHT_HAND = (522, 543)
LEFT_SHOULDER, RIGHT_SHOULDER = 11, 12
POSITION_DIM = NUM_POINTS * 3  # 1629

Spans = dict[str, list[tuple[int, int]]]


def holistic_spans(num_temporal: int) -> Spans:
    """Modality -> feature spans for the holistic543 layout (positions first, temporal blocks after)."""
    def xyz(span: tuple[int, int]) -> tuple[int, int]:
        return span[0] * 3, span[1] * 3
    return {
        "pose": [xyz(POSE)],
        "face": [xyz(FACE)],
        "hands": [(xyz(LEFT_HAND)[0], xyz(RIGHT_HAND)[1])],
        "temporal": [(POSITION_DIM, POSITION_DIM * (1 + num_temporal))] if num_temporal else [],
    }


class FeaturePipeline(nn.Module):
    """``(x, point_mask, frame_mask) -> [B, T, D]`` features.

    Its only state is the per-dimension standardization (mean, std over the train split's valid
    values, fitted once by :meth:`fit` and saved with the model): with Adam, inputs of very different
    scale (positions ~0.5, velocities ~0.04 shoulder widths) would otherwise learn at different speeds.
    """

    def __init__(self, cfg: FeaturesConfig):
        super().__init__()
        self.cfg = cfg
        if cfg.layout == "holistic543":
            self.dim = POSITION_DIM * (1 + len(cfg.temporal))
            self.spans: Spans = {k: v for k, v in holistic_spans(len(cfg.temporal)).items() if v}
        else:
            self.dim = cfg.input_dim
            self.spans = {k: [tuple(s) for s in v] for k, v in cfg.modalities.items()}
        self.register_buffer("mean", torch.zeros(self.dim))
        self.register_buffer("std", torch.ones(self.dim))

    def forward(self, x: torch.Tensor, point_mask: torch.Tensor | None, frame_mask: torch.Tensor) -> torch.Tensor:
        """
        Args:
            x: ``[B, T, 543, 3]`` landmarks (holistic543) or ``[B, T, D]`` features (precomputed).
            point_mask: ``[B, T, 543]`` True where the point was detected (None for precomputed).
            frame_mask: ``[B, T]`` True on real (non-padding) frames.
        Returns:
            ``[B, T, D]`` float32, finite; exactly 0 on padding and wherever a value is missing.
        """
        values, valid = self._blocks(x, point_mask, frame_mask)  # a fresh buffer: safe to update in place
        # In place: each new 6516-wide buffer costs page faults, which dominated this function on one core.
        if self.cfg.standardize:
            values.sub_(self.mean).div_(self.std)
        # valid is [B, T, D] (precomputed) or per point [B, T, 1 + k, 543, 1]: broadcast, never expanded.
        values.view(valid.shape[:-1] + (-1,)).mul_(valid)
        return values

    def raw(self, x: torch.Tensor, point_mask: torch.Tensor | None,
            frame_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Unstandardized ``[B, T, D]`` values (0 where missing) and their validity (bool, same shape)."""
        values, valid = self._blocks(x, point_mask, frame_mask)
        if valid.dim() == 5:  # per point [B, T, 1 + k, 543, 1] -> per value [B, T, D]
            valid = valid.expand(-1, -1, -1, -1, 3).reshape(values.shape)
        return values * valid, valid.bool()

    def _blocks(self, x: torch.Tensor, point_mask: torch.Tensor | None,
                frame_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``[B, T, D]`` values, finite but not yet masked, and a validity mask (1.0 / 0.0, float: cheaper to
        multiply, and bool slices trip torch.compile's CPU code generation) that broadcasts onto them.

        The hot path of both training and inference: each block is written once into one buffer, and
        values where a block is invalid are left for the caller's single masking pass to zero.
        """
        x = x.float()
        if self.cfg.layout == "precomputed":
            valid = torch.isfinite(x) & frame_mask[..., None]
            return torch.where(valid, x, torch.zeros((), device=x.device)), valid.to(x.dtype)
        B, T = x.shape[:2]
        present = frame_mask[..., None] & torch.isfinite(x).all(-1)  # [B, T, 543]
        if point_mask is not None:
            present &= point_mask.bool()
        x = torch.where(present[..., None], x, torch.zeros((), device=x.device))  # [B, T, 543, 3]
        if self.cfg.normalize:
            x = normalize(x, present)
        out = x.new_empty(B, T, 1 + len(self.cfg.temporal), NUM_POINTS, 3)
        out[:, :, 0] = x
        seen = present.to(x.dtype)  # [B, T, 543] 1.0 / 0.0
        masks = [seen]
        for i, name in enumerate(self.cfg.temporal, 1):
            masks.append(_TEMPORAL[name](x, seen, out[:, :, i]))
        valid = torch.stack(masks, 2)[..., None]  # [B, T, 1 + k, 543, 1]
        return out.view(B, T, -1), valid

    @torch.no_grad()
    def fit(self, batches) -> None:
        """Set mean/std from ``(x, point_mask, frame_mask)`` batches, over valid values only."""
        total = torch.zeros(self.dim, dtype=torch.float64)
        square = torch.zeros(self.dim, dtype=torch.float64)
        count = torch.zeros(self.dim, dtype=torch.float64)
        for x, point_mask, frame_mask in batches:
            values, valid = self.raw(x.to(self.mean.device), None if point_mask is None else
                                     point_mask.to(self.mean.device), frame_mask.to(self.mean.device))
            v, m = values.double().reshape(-1, self.dim).cpu(), valid.reshape(-1, self.dim).cpu()
            total += (v * m).sum(0)
            square += (v * v * m).sum(0)
            count += m.sum(0)
        mean = total / count.clamp(min=1)
        std = (square / count.clamp(min=1) - mean**2).clamp(min=0).sqrt()
        # Dimensions never (or barely) seen or constant keep unit scale instead of exploding.
        std = torch.where((count > 1) & (std > 1e-4), std, torch.ones_like(std))
        self.mean.copy_(mean.float())
        self.std.copy_(std.float())


def normalize(x: torch.Tensor, present: torch.Tensor) -> torch.Tensor:
    """Centre on the shoulder midpoint and scale by shoulder width, both averaged over the sample's
    frames where both shoulders are seen (per-frame scaling would distort motion). Samples with no
    visible shoulders are left as they are."""
    both = (present[..., LEFT_SHOULDER] & present[..., RIGHT_SHOULDER]).float()  # [B, T]
    left, right = x[..., LEFT_SHOULDER, :], x[..., RIGHT_SHOULDER, :]  # [B, T, 3]
    count = both.sum(1).clamp(min=1.0)  # [B]
    centre = (((left + right) / 2) * both[..., None]).sum(1) / count[:, None]  # [B, 3]
    width = ((left - right)[..., :2].norm(dim=-1) * both).sum(1) / count  # [B]
    seen = both.sum(1) > 0
    centre = torch.where(seen[:, None], centre, torch.zeros_like(centre))
    width = torch.where(seen & (width > 1e-6), width, torch.ones_like(width))
    # one pass for the scale and the mask together: [B, T, 543, 1] = present / width
    return (x - centre[:, None, None, :]).mul_((present / width[:, None, None])[..., None])


def velocity(x: torch.Tensor, present: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
    """Writes ``x[t] - x[t-1]`` into ``out`` (frame 0: 0); returns where it is valid: the point is seen in
    both frames. ``out`` is left unmasked (finite, since ``x`` is 0 where missing) for the caller to mask.
    ``present`` and the returned validity are float masks (1.0 seen, 0.0 not), ``[B, T, 543]``."""
    out[:, :1] = 0
    torch.sub(x[:, 1:], x[:, :-1], out=out[:, 1:])
    ok = torch.zeros_like(present)
    ok[:, 1:] = present[:, 1:] * present[:, :-1]
    return ok


def acceleration(x: torch.Tensor, present: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
    """Writes the second difference into ``out``; valid where the point is seen in three consecutive frames."""
    out[:, :2] = 0
    torch.add(x[:, 2:], x[:, :-2], out=out[:, 2:]).add_(x[:, 1:-1], alpha=-2.0)
    ok = torch.zeros_like(present)
    ok[:, 2:] = present[:, 2:] * present[:, 1:-1] * present[:, :-2]
    return ok


def centered(x: torch.Tensor, present: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
    """Writes position minus the point's mean over the frames of the sample where it is seen (``x`` is 0
    elsewhere, so a plain sum is the sum over seen frames); valid where the point is seen."""
    count = present.sum(1, keepdim=True).clamp(min=1.0)[..., None]  # [B, 1, 543, 1]
    torch.sub(x, x.sum(1, keepdim=True) / count, out=out)
    return present


_TEMPORAL = {"velocity": velocity, "acceleration": acceleration, "centered": centered}
