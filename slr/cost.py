"""What a model costs to run: the objectives a multi-objective sweep weighs against dev WER.

- ``params``: trainable parameters;
- ``mflops``: model MFLOPs per frame, counted by ``torch.utils.flop_counter`` on one 10 s sentence at the corpus's
  frame rate (the BiLSTM included: a packed LSTM runs as matmul steps, which the counter sees);
- ``latency_ms``: milliseconds for that sentence through the feature pipeline, the model and greedy decoding on one
  CPU thread, the median of several runs after a warm-up (measured where it is called: a trial measures it on its
  own node).

``params`` and ``mflops`` are known before any training; ``latency_ms`` depends on the machine.
"""

from __future__ import annotations

import statistics
import time

import numpy as np
import torch
from torch import nn

from slr.decode import greedy
from slr.features import FeaturePipeline

COSTS = {"params": "parameters", "mflops": "MFLOPs per frame", "latency_ms": "ms per 10 s sentence, 1 CPU thread"}
SENTENCE_SECONDS = 10.0


def sentence(features: FeaturePipeline, fps: float, seconds: float = SENTENCE_SECONDS
             ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor]:
    """One sentence of plausible landmarks (``[1, T, 543, 3]``, or ``[1, T, D]`` for precomputed features), its
    point mask and its frame mask, every frame real; fixed values, so every call measures the same input."""
    T = max(1, int(round(seconds * fps)))
    rng = np.random.default_rng(0)
    if features.cfg.layout == "precomputed":
        x = rng.normal(0, 1, (1, T, features.cfg.input_dim))
        return torch.as_tensor(x, dtype=torch.float32), None, torch.ones(1, T, dtype=torch.bool)
    x = rng.normal(0, 0.3, (1, T, 543, 3)).astype(np.float32)
    return torch.as_tensor(x), torch.ones(1, T, 543, dtype=torch.bool), torch.ones(1, T, dtype=torch.bool)


def parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def model_flops(model: nn.Module, feats: torch.Tensor, lengths: torch.Tensor) -> float:
    """The model's FLOPs on ``feats [B, T, D]``, in inference mode: there a packed CPU LSTM runs as matmul steps,
    which the counter sees; with autograd on or under no_grad it is one fused kernel, which it does not (the default
    student's 0.13 GFLOP BiLSTM in a 10 s sentence would go uncounted)."""
    from torch.utils.flop_counter import FlopCounterMode
    with torch.inference_mode(), FlopCounterMode(display=False) as counter:
        model(feats, lengths)
    return float(counter.get_total_flops())


def measure(kinds: list[str] | tuple[str, ...], features: FeaturePipeline, model: nn.Module, fps: float,
            runs: int = 5) -> dict[str, float]:
    """``{kind: value}`` for each of ``kinds`` (keys of :data:`COSTS`), on copies of ``features`` and ``model``
    moved to the CPU in eval mode (the originals are left as they are, training included)."""
    unknown = sorted(set(kinds) - set(COSTS))
    if unknown:
        raise ValueError(f"unknown cost {unknown}: one of {sorted(COSTS)}")
    import copy
    features, model = copy.deepcopy(features).cpu().eval(), copy.deepcopy(model).cpu().eval()
    x, mask, frame_mask = sentence(features, fps)
    T = x.shape[1]
    lengths = torch.tensor([T])
    out: dict[str, float] = {}
    if "params" in kinds:
        out["params"] = float(parameters(model))
    if "mflops" in kinds:
        with torch.no_grad():
            feats = features(x, mask, frame_mask)
        out["mflops"] = model_flops(model, feats, lengths) / T / 1e6
    if "latency_ms" in kinds:
        out["latency_ms"] = _latency_ms(features, model, x, mask, frame_mask, lengths, runs)
    return out


def _latency_ms(features: FeaturePipeline, model: nn.Module, x: torch.Tensor, mask: torch.Tensor | None,
                frame_mask: torch.Tensor, lengths: torch.Tensor, runs: int) -> float:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        times = []
        with torch.inference_mode():
            for _ in range(runs + 1):  # the first call warms up (allocations, lazy kernels): not counted
                t0 = time.perf_counter()
                greedy(model(features(x, mask, frame_mask), lengths)[:, 0])
                times.append(time.perf_counter() - t0)
        return 1000 * statistics.median(times[1:])
    finally:
        torch.set_num_threads(threads)
