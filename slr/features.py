"""Landmarks -> model input, computed on the training device (never stored).

The layout facts (MediaPipe Holistic's 543 points) live in :mod:`slr.layout`. The default
``holistic543`` layout reproduces the seed's 6516 = 4 x 1629 input: normalized positions plus three
temporal blocks (velocity, acceleration, position relative to the sample's mean). The layout is data
-- modality name -> list of [start, stop) spans over the feature vector -- which the model reads, so
other layouts need no model change.

Missing points (a hand out of view) arrive masked (and possibly NaN); they become exact zeros and
every derived value that touches them is zero too. A NaN never reaches the network.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from slr.config import FeaturesConfig
from slr.layout import LEFT_SHOULDER, NUM_POINTS, POSITION_DIM, RIGHT_SHOULDER, Spans, holistic_spans


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
        self._scratch = torch.empty(0)  # CPU: the validity buffer, reused (see _validity_buffer)

    def forward(self, x: torch.Tensor, point_mask: torch.Tensor | None, frame_mask: torch.Tensor) -> torch.Tensor:
        """
        Args:
            x: ``[B, T, 543, 3]`` landmarks (holistic543) or ``[B, T, D]`` features (precomputed).
            point_mask: ``[B, T, 543]`` True where the point was detected (None for precomputed).
            frame_mask: ``[B, T]`` True on real (non-padding) frames.
        Returns:
            ``[B, T, D]`` float32, finite; exactly 0 on padding and wherever a value is missing.
        """
        values, valid = self._blocks(x, point_mask, frame_mask)  # fresh buffers: safe to update in place
        # In place, every operand contiguous [B, T, D]: fresh 6516-wide buffers cost page faults, and a mask
        # broadcast over an innermost axis of 3 (xyz) runs ~5x slower on a CPU core than a plain multiply.
        if self.cfg.standardize:
            values.sub_(self.mean).div_(self.std)
        return values.mul_(valid)

    def raw(self, x: torch.Tensor, point_mask: torch.Tensor | None,
            frame_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Unstandardized ``[B, T, D]`` values (0 where missing) and their validity (bool, same shape)."""
        values, valid = self._blocks(x, point_mask, frame_mask)
        return values * valid, valid.bool()

    def _blocks(self, x: torch.Tensor, point_mask: torch.Tensor | None,
                frame_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``[B, T, D]`` values, finite but not yet masked, and their validity, ``[B, T, D]`` 1.0 / 0.0 (float:
        cheaper to multiply, and bool slices trip torch.compile's CPU code generation).

        The hot path of both training and inference: each block and its validity are written once into
        two buffers, and values where a block is invalid are left for the caller's single masking pass.
        """
        x = x.float()
        if self.cfg.layout == "precomputed":
            valid = torch.isfinite(x) & frame_mask[..., None]
            return torch.where(valid, x, torch.zeros((), device=x.device)), valid.to(x.dtype)
        B, T = x.shape[:2]
        # x + y + z is finite exactly when all three are (a NaN or inf in any of them propagates).
        present = frame_mask[..., None] & torch.isfinite(x[..., 0] + x[..., 1] + x[..., 2])  # [B, T, 543]
        if point_mask is not None:
            present &= point_mask.bool()
        k = 1 + len(self.cfg.temporal)
        valid = self._validity_buffer(x, (B, T, k, NUM_POINTS, 3))
        # Per value, not per point: every later mask is then a plain elementwise product.
        seen = valid[:, :, 0]
        seen.copy_(present[..., None].expand(B, T, NUM_POINTS, 3))  # [B, T, 543, 3] 1.0 / 0.0
        out = x.new_empty(B, T, k, NUM_POINTS, 3)
        x = _into(out[:, :, 0], torch.nan_to_num, x, nan=0.0, posinf=0.0, neginf=0.0).mul_(seen)  # 0 where missing
        if self.cfg.normalize:
            normalize(x, seen)
        for i, name in enumerate(self.cfg.temporal, 1):
            _TEMPORAL[name](x, seen, out[:, :, i], valid[:, :, i])
        return out.view(B, T, -1), valid.view(B, T, -1)

    def _validity_buffer(self, x: torch.Tensor, shape: tuple[int, ...]) -> torch.Tensor:
        """A buffer for the validity masks. On CPU it is kept between calls: glibc returns a freed buffer this
        large to the OS, and re-faulting its pages in doubled the pipeline's time on one core. It never leaves
        the pipeline (callers get products or copies of it), so reusing it is safe (a pipeline is not for
        concurrent calls from several threads). Elsewhere (the CUDA caching
        allocator reuses memory anyway) and under torch.compile it is a fresh tensor."""
        if x.device.type != "cpu" or torch.compiler.is_compiling():
            return x.new_empty(shape)
        n = math.prod(shape)
        if self._scratch.numel() < n:
            self._scratch = torch.empty(n)
        return self._scratch[:n].view(shape)

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


def normalize(x: torch.Tensor, seen: torch.Tensor) -> torch.Tensor:
    """Centre on the shoulder midpoint and scale by shoulder width, both averaged over the sample's
    frames where both shoulders are seen (per-frame scaling would distort motion). Samples with no
    visible shoulders are left as they are. ``x`` ``[B, T, 543, 3]`` (0 where missing) and ``seen`` (1.0 / 0.0,
    per value, same shape); ``x`` is normalized in place (0 where missing) and returned."""
    both = seen[:, :, LEFT_SHOULDER, 0] * seen[:, :, RIGHT_SHOULDER, 0]  # [B, T]
    left, right = x[..., LEFT_SHOULDER, :], x[..., RIGHT_SHOULDER, :]  # [B, T, 3]
    count = both.sum(1).clamp(min=1.0)  # [B]
    centre = (((left + right) / 2) * both[..., None]).sum(1) / count[:, None]  # [B, 3]
    width = ((left - right)[..., :2].norm(dim=-1) * both).sum(1) / count  # [B]
    any_seen = both.sum(1) > 0
    centre = torch.where(any_seen[:, None], centre, torch.zeros_like(centre))
    width = torch.where(any_seen & (width > 1e-6), width, torch.ones_like(width))
    return x.sub_(centre[:, None, None, :]).mul_(seen).div_(width[:, None, None, None])  # re-zero the missing


def _into(dest: torch.Tensor, op, *args, **kwargs) -> torch.Tensor:  # noqa: ANN001 -- a torch op
    """``op(*args, out=dest)``: no temporary in eager mode. Dynamo cannot trace ``out=`` into a strided view (a graph
    break that then fails on the views), so under torch.compile it is an assignment, which Inductor fuses anyway."""
    if torch.compiler.is_compiling():
        return dest.copy_(op(*args, **kwargs))
    return op(*args, **kwargs, out=dest)


# The temporal blocks. Each writes its values into ``out`` and where they are valid into ``ok`` (1.0 / 0.0);
# ``x``, ``seen``, ``out`` and ``ok`` are all ``[B, T, 543, 3]``, ``x`` 0 where missing, so ``out`` is finite.
# ``out`` is left unmasked for the caller's single masking pass.

def velocity(x: torch.Tensor, seen: torch.Tensor, out: torch.Tensor, ok: torch.Tensor) -> None:
    """``x[t] - x[t-1]`` (frame 0: 0), valid where the point is seen in both frames."""
    out[:, :1] = 0
    _into(out[:, 1:], torch.sub, x[:, 1:], x[:, :-1])
    ok[:, :1] = 0
    _into(ok[:, 1:], torch.mul, seen[:, 1:], seen[:, :-1])


def acceleration(x: torch.Tensor, seen: torch.Tensor, out: torch.Tensor, ok: torch.Tensor) -> None:
    """The second difference, valid where the point is seen in three consecutive frames."""
    out[:, :2] = 0
    _into(out[:, 2:], torch.add, x[:, 2:], x[:, :-2]).add_(x[:, 1:-1], alpha=-2.0)
    ok[:, :2] = 0
    _into(ok[:, 2:], torch.mul, seen[:, 2:], seen[:, 1:-1]).mul_(seen[:, :-2])


def centered(x: torch.Tensor, seen: torch.Tensor, out: torch.Tensor, ok: torch.Tensor) -> None:
    """Position minus the point's mean over the frames of the sample where it is seen (``x`` is 0 elsewhere,
    so a plain sum is the sum over seen frames); valid where the point is seen."""
    count = seen.sum(1, keepdim=True).clamp(min=1.0)  # [B, 1, 543, 3]
    _into(out, torch.sub, x, x.sum(1, keepdim=True) / count)
    ok.copy_(seen)


_TEMPORAL = {"velocity": velocity, "acceleration": acceleration, "centered": centered}
