"""A model on a split: the one evaluation function the trainer (dev, every epoch) and ``slr eval`` (a checkpoint)
both call; and using a trained checkpoint: inference wrappers, CTM, recognizing single recordings.

Below training in the data flow: nothing here builds an optimizer or reads the train split.
"""

from __future__ import annotations

import copy
import dataclasses
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader

from slr import checkpoint
from slr.config import PRECISIONS, RUNTIMES, Config, DecodeConfig
from slr.corpus.store import Corpus
from slr.data import Batch, BucketBatchSampler, SignDataset, check_layout, collate
from slr.decode import align, beam_search, decode_batch, greedy
from slr.features import FeaturePipeline
from slr.metrics import score
from slr.model import Model, build_model, fold_batch_norm
from slr.vocab import Vocabulary


def loader(dataset: SignDataset, sampler: BucketBatchSampler, num_workers: int = 0,
           pin_memory: bool = False) -> DataLoader:
    """Padded batches of ``dataset`` in the order of ``sampler`` (training and evaluation alike)."""
    return DataLoader(dataset, batch_sampler=sampler, collate_fn=collate, num_workers=num_workers,
                      persistent_workers=num_workers > 0, pin_memory=pin_memory)


def log_probs_of(features: FeaturePipeline, model: nn.Module, batch: Batch, device: torch.device,
                 amp: bool = False) -> torch.Tensor:
    """Landmarks -> features -> log-probs ``[T, B, V]`` float32 (bf16 autocast when ``amp``). ``model`` may be an
    inference wrapper (:func:`for_inference`, ONNX Runtime): only its plain ``forward`` is called."""
    frame_mask = batch.frame_mask.to(device)
    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
        x = features(batch.x, batch.point_mask, frame_mask)  # [B, T, D]
        return model(x, batch.lengths.to(device)).float()


def lm_options(decode: DecodeConfig, vocab: Vocabulary) -> dict[str, Any]:
    """The gloss LM of ``decode.lm_path`` with its fusion weights, for :func:`slr.decode.lm_beam_search`; an LM
    over other glosses than the model's is refused, naming the file."""
    from slr.lm import GlossLM
    labels = vocab.to_list()
    return dict(vocab=labels, lm=GlossLM.load(decode.lm_path, vocab=labels[1:]), weight=decode.lm_weight,
                bonus=decode.lm_bonus)


@torch.no_grad()
def evaluate_split(model: nn.Module, features: FeaturePipeline, dataset: SignDataset, vocab: Vocabulary,
                   decode: DecodeConfig, batch_size: int, device: torch.device, amp: bool = False,
                   num_workers: int = 0, method: str | None = None) -> dict[str, Any]:
    """Loss, WER and S/D/I of ``model`` on ``dataset`` (decoded as ``decode`` says, or by ``method``), with the
    hypotheses (``hyps``), references (``refs``), sample ids, excluded samples and seconds taken.

    The model is put in eval mode; batches keep the dataset's length order (no shuffling), so a split's
    result does not depend on the batch composition of any training run."""
    t0 = time.perf_counter()
    sampler = BucketBatchSampler(dataset.lengths(), batch_size, 1, 0, shuffle=False)
    model.eval()
    method = method or decode.method
    fusion = lm_options(decode, vocab) if method == "beam_lm" else None
    loss_sum, ids, hyps = 0.0, [], []
    for batch in loader(dataset, sampler, num_workers, pin_memory=device.type == "cuda"):
        batch = batch.to(device)
        log_probs = log_probs_of(features, model, batch, device, amp)  # [T, B, V] (T/4 for vac)
        lengths = model.output_lengths(batch.lengths)
        loss = F.ctc_loss(log_probs, batch.targets, lengths, batch.target_lengths, reduction="sum",
                          zero_infinity=True)
        loss_sum += loss.item()
        decoded = decode_batch(log_probs, lengths, method, decode.beam_width, fusion)
        hyps += [vocab.decode(h) for h in decoded]
        ids += batch.ids
    by_id = {s.id: s for s in dataset.samples}
    refs = [by_id[i].glosses for i in ids]
    result = score(refs, hyps, decode.scorer)
    result.update(loss=loss_sum / max(1, len(ids)), ids=ids, hyps=hyps, refs=refs,
                  excluded=dict(dataset.excluded), seconds=time.perf_counter() - t0)
    return result


class _Cast(nn.Module):
    """``model`` (moved, not copied) with its weights in ``dtype``; features are cast on the way in (log-probs
    stay float32)."""

    def __init__(self, model: nn.Module, dtype: torch.dtype):
        super().__init__()
        self.model, self.dtype = model.to(dtype), dtype

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        return self.model(x.to(self.dtype), lengths)

    def output_lengths(self, lengths: torch.Tensor) -> torch.Tensor:
        return self.model.output_lengths(lengths)


def for_inference(model: Model, precision: str = "fp32") -> nn.Module:
    """The model for inference in ``precision``; the model given is left as it is.

    ``bf16``: weights and activations in bfloat16 (fast on CPUs with bf16 matmuls, e.g. AVX-512 BF16 or AMX,
    and on GPUs). ``int8``: CPU only; the Linear layers (the modality encoders, which hold most of the FLOPs,
    and the head) dynamically quantized, int8 weights and per-batch int8 activations; the LSTM stays fp32 (its
    quantized kernel is slower here: docs/benchmarks.md, throughput). Both also fold BatchNorm into the
    convolutions (:func:`slr.model.fold_batch_norm`). Both change the output slightly: check the WER
    (``slr eval --precision``) before deploying one. ``fp32`` is the model itself, bit for bit as trained."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision {precision!r}: must be one of {', '.join(PRECISIONS)}")
    if precision == "fp32":
        return model
    if precision == "int8" and next(model.parameters()).device.type != "cpu":
        raise ValueError("precision int8: dynamic quantization runs on CPU only (use bf16 on a GPU)")
    # folding needs eval mode; a model given in training mode keeps its mode (a copy is switched)
    folded = fold_batch_norm(copy.deepcopy(model).eval() if model.training else model)
    if precision == "bf16":
        return _Cast(folded, torch.bfloat16).eval()
    with warnings.catch_warnings():  # torch's notice that eager-mode quantization will move to torchao
        warnings.filterwarnings("ignore", message=r"(?s).*(torchao|quantize_per_tensor)")
        return torch.ao.quantization.quantize_dynamic(folded, {nn.Linear}, dtype=torch.qint8, inplace=True).eval()


def inference_model(checkpoint: str | Path, model: Model, precision: str = "fp32",
                    runtime: str = "torch") -> nn.Module:
    """``model`` (loaded from ``checkpoint``) ready for inference: :func:`for_inference` in ``precision`` on
    torch, or the checkpoint's ONNX export on ONNX Runtime (fp32 only; exported beside the checkpoint on first
    use: :func:`slr.onnx_runtime.cached_export`)."""
    if runtime not in RUNTIMES:
        raise ValueError(f"runtime {runtime!r}: must be one of {', '.join(RUNTIMES)}")
    if runtime == "torch":
        return for_inference(model, precision)
    if precision != "fp32":
        raise ValueError(f"runtime onnx runs the model in fp32 only (precision {precision!r} is torch's; "
                         "ONNX Runtime's own int8 was slower than its fp32 here: docs/benchmarks.md)")
    from slr.onnx_runtime import OnnxStudent, cached_export
    return OnnxStudent(cached_export(checkpoint, model))


def load_model(path: str | Path, device: str = "cpu", state: dict[str, Any] | None = None
               ) -> tuple[Config, Vocabulary, FeaturePipeline, Model]:
    """Rebuild features and model from a checkpoint (safe load) in eval mode; ``state``: the checkpoint at
    ``path`` already loaded (``checkpoint.load``), so a caller that needs more of it reads it once."""
    state = state if state is not None else checkpoint.load(path, map_location=device)
    cfg = Config.from_dict(state["config"], source=str(path))
    vocab = Vocabulary.from_list(state["vocab"], source=str(path))
    features = FeaturePipeline(cfg.features)
    model = build_model(cfg.model, features.spans, len(vocab))
    model.load_state_dict(state["model"])
    features.load_state_dict(state["features"])
    return cfg, vocab, features.to(device).eval(), model.to(device).eval()


def evaluate_checkpoint(path: str | Path, corpus: str | Path | None, split: str, scorer: str | None = None,
                        beam: int = 0, precision: str = "fp32", runtime: str = "torch",
                        decode: DecodeConfig | None = None) -> dict[str, Any]:
    """WER, S/D/I and hypotheses of a checkpoint on a corpus split (greedy unless ``beam`` > 0), on CPU, with
    the model in ``precision`` on ``runtime`` (:func:`inference_model`)."""
    state = checkpoint.load(path)
    updates: dict[str, Any] = {}
    if scorer:
        updates["decode.scorer"] = scorer
    if beam:
        updates.update({"decode.method": "beam", "decode.beam_width": beam})
    cfg = Config.from_dict(state["config"], source=str(path))
    if decode is not None:  # e.g. an exported config's tuned decoding (slr tune-decode)
        updates = {**{f"decode.{k}": v for k, v in dataclasses.asdict(decode).items()}, **updates}
    cfg = cfg.override(updates)
    if not (corpus or cfg.data.corpus):
        raise ValueError(f"{path}: the checkpoint names no corpus (data.corpus); give one with --corpus DIR")
    data = Corpus(corpus or cfg.data.corpus)
    if data.vocab.to_list() != state["vocab"]:
        raise ValueError(f"{path}: the model's vocabulary differs from {data.root}'s; evaluate on the corpus "
                         "it was trained on (or one imported with its vocabulary)")
    data.require_splits(split, purpose="evaluation")
    check_layout(cfg, data)
    _, vocab, features, model = load_model(path, state=state)
    dataset = SignDataset(data, split, vocab, cfg.data.max_frames, model.input_frames)
    model = inference_model(path, model, precision, runtime)
    result = evaluate_split(model, features, dataset, vocab, cfg.decode, cfg.data.batch_size, torch.device("cpu"))
    result.update(scorer=cfg.decode.scorer, fps=data.fps, precision=precision, runtime=runtime)
    return result


def write_ctm(path: str | Path, ids: list[str], hyps: list[list[str]], fps: float = 25.0) -> Path:
    """CTM as the PHOENIX-2014 evaluation reads it: ``id 1 start duration gloss``, one gloss per line.
    Greedy spans are not kept per sentence here, so glosses are spaced evenly at one frame each."""
    path = Path(path)
    lines = []
    for sample_id, glosses in zip(ids, hyps):
        for k, gloss in enumerate(glosses):
            lines.append(f"{sample_id} 1 {k / fps:.3f} {1 / fps:.3f} {gloss}")
    path.write_text("".join(line + "\n" for line in lines))
    return path


def recognize(features: FeaturePipeline, model: nn.Module, vocab: Vocabulary, xyz: np.ndarray,
              mask: np.ndarray | None, beam: int = 0) -> list[dict[str, Any]]:
    """One recording ``[T, 543, 3]`` (or ``[T, D]``) -> glosses with frame spans ``[start, end)``."""
    x = torch.as_tensor(np.asarray(xyz, dtype=np.float32))[None]
    m = None if mask is None else torch.as_tensor(np.asarray(mask, dtype=bool))[None]
    T = x.shape[1]
    with torch.no_grad():
        feats = features(x, m, torch.ones(1, T, dtype=torch.bool))
        log_probs = model(feats, torch.tensor([T]))[:, 0]  # [T', V]: T' = T (the student), ~T/4 (vac)
    tokens = align(log_probs, beam_search(log_probs, beam)) if beam else greedy(log_probs)
    scale = T / max(1, log_probs.shape[0])  # output frames -> input frames
    return [dict(gloss=vocab.decode([t.id])[0], start=int(t.start * scale), end=min(T, round(t.end * scale)))
            for t in tokens]
