"""Trainer throughput of the seed baseline: train and inference frames/s, data loader frames/s, and the
real-time factor of recognizing a 10 s sentence on one CPU core.

    python -m benchmarks.throughput --corpus corpora/quickstart
Writes benchmarks/results/throughput.json and a section of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

from benchmarks._common import ROOT, save, set_command, write_section
from benchmarks._common import best_of as timed


def measure_training(corpus: str, steps: int, batch_size: int, amp: str = "off") -> dict:
    """Frames/s inside optimizer steps (forward, CTC, backward, clip, AdamW) of the seed baseline."""
    from slr.config import Config
    from slr.train import Trainer
    cfg = Config().override({"data.batch_size": batch_size, "features.standardize": False, "train.amp": amp})
    trainer = Trainer(cfg.override({"data.corpus": str(corpus)}))
    trainer.model.train()
    batches = []
    for batch in trainer.train_loader:
        batches.append(batch)
        if len(batches) >= steps + 2:
            break
    frames = 0
    for i, batch in enumerate(batches):
        if i == 2:  # two warm-up steps
            t0, frames = time.perf_counter(), 0
        trainer.step(batch.to(trainer.device))
        frames += int(batch.lengths.sum())
    train_seconds = time.perf_counter() - t0
    trainer.model.eval()
    with torch.no_grad():
        t0 = time.perf_counter()
        inf_frames = 0
        for batch in batches[2:]:
            b = batch.to(trainer.device)
            trainer.model(trainer.features(b.x, b.point_mask, b.frame_mask.to(trainer.device)), b.lengths)
            inf_frames += int(batch.lengths.sum())
        inf_seconds = time.perf_counter() - t0
    return dict(train_fps=frames / train_seconds, inference_fps=inf_frames / inf_seconds,
                parameters=trainer.model.num_parameters(), steps=len(batches) - 2, batch_size=batch_size)


def measure_loader(corpus: str, batch_size: int, epochs: int = 2) -> dict:
    """Frames/s the data path delivers (memory-mapped corpus -> padded batches), no model."""
    from slr.config import Config
    from slr.train import Trainer
    trainer = Trainer(Config().override({"data.batch_size": batch_size, "features.standardize": False, "data.corpus": str(corpus)}))
    t0, frames = time.perf_counter(), 0
    for epoch in range(epochs):
        trainer.sampler.set_epoch(epoch)
        for batch in trainer.train_loader:
            frames += int(batch.lengths.sum())
    return dict(loader_fps=frames / (time.perf_counter() - t0))


def measure_rtf(corpus: str, seconds: float = 10.0, fps: float = 25.0, repeats: int = 30,
                vocab_size: int = 0, compiled: bool = False) -> dict:
    """Recognizing one 10 s recording (250 frames) on 1 CPU thread: features + model + greedy decoding.

    Also split by stage, and the same with the model in bf16 and int8 (``slr.evaluate.for_inference``, what
    ``slr decode --precision`` runs) and on ONNX Runtime (``slr decode --runtime onnx``; also its own dynamic
    int8 quantization, which the runtime does not offer), with how often their greedy output agrees with fp32's
    frame by frame.
    ``vocab_size``: the head's size (default: the corpus's).
    ``compiled``: also features + model under ``torch.compile`` (inductor, static shapes), with its compile time.
    """
    from slr.config import Config
    from slr.cost import model_flops
    from slr.corpus import Corpus
    from slr.decode import greedy
    from slr.evaluate import for_inference
    from slr.features import FeaturePipeline
    from slr.model import Student
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        cfg = Config()
        vocab = vocab_size or len(Corpus(corpus).vocab)
        features = FeaturePipeline(cfg.features).eval()
        model = Student(cfg.model, features.spans, vocab).eval()
        variants = {p: for_inference(model, p) for p in ("bf16", "int8")}  # what `slr decode --precision` runs
        variants.update(onnx_variants(model))  # what `slr decode --runtime onnx` runs, and ORT's own int8
        T = int(seconds * fps)
        x = torch.as_tensor(np.random.default_rng(0).normal(0, 0.3, (1, T, 543, 3)).astype(np.float32))
        mask = torch.ones(1, T, 543, dtype=torch.bool)
        frame_mask, lengths = torch.ones(1, T, dtype=torch.bool), torch.tensor([T])

        def best_of(fn) -> float:  # noqa: ANN001 -- best of `repeats` after one warm-up call
            return timed(fn, repeats)

        with torch.inference_mode():
            feats = features(x, mask, frame_mask)
            feature_s = best_of(lambda: features(x, mask, frame_mask))
            model_s = best_of(lambda: greedy(model(feats, lengths)[:, 0]))
            total = best_of(lambda: greedy(model(features(x, mask, frame_mask), lengths)[:, 0]))
            reference = model(feats, lengths)  # fp32 log-probs [T, 1, V]: what every variant is compared with
            labels = reference.argmax(-1)
            low = {}
            for name, fast in variants.items():
                low[f"{name}_latency_s"] = best_of(lambda: greedy(fast(features(x, mask, frame_mask), lengths)[:, 0]))
                low[f"{name}_times_real_time"] = seconds / low[f"{name}_latency_s"]
                low[f"{name}_frame_agreement"] = float((fast(feats, lengths).argmax(-1) == labels).float().mean())
            extra = {}
            if compiled:
                fn = torch.compile(lambda x, m, f, n: model(features(x, m, f), n), dynamic=False)
                t0 = time.perf_counter()
                out = fn(x, mask, frame_mask, lengths)
                extra = dict(compile_s=time.perf_counter() - t0,
                             compiled_max_abs_diff=float((out - reference).abs().max()),
                             compiled_latency_s=best_of(lambda: greedy(fn(x, mask, frame_mask, lengths)[:, 0])))
                extra["compiled_times_real_time"] = seconds / extra["compiled_latency_s"]
                # The model alone compiled, the features eager: inductor's CPU code for the features' masks is slower
                # than eager's, so this is what a deployment would pick.
                cm = torch.compile(model, dynamic=False)
                cm(feats, lengths)
                extra["compiled_model_latency_s"] = best_of(
                    lambda: greedy(cm(features(x, mask, frame_mask), lengths)[:, 0]))
            flops = model_flops(model, feats, lengths)
            peak = matmul_peak(best_of)
        size = sum(t.numel() * t.element_size() for t in model.state_dict().values())
    finally:
        torch.set_num_threads(threads)
    return dict(rtf_1core=total / seconds, latency_s=total, times_real_time=seconds / total, frames=T,
                features_s=feature_s, model_decode_s=model_s, vocab_size=vocab, model_bytes=size,
                **low,
                model_flops=flops, core_peak_flops=peak, model_floor_s=flops / peak, seconds=seconds, **extra)


def default_checkpoint() -> str:
    """The quickstart sweep's best checkpoint, when that sweep has run here ("" otherwise)."""
    import json
    summary = ROOT / "sweeps" / "quickstart" / "summary.json"
    if not summary.exists():
        return ""
    folder = Path(json.loads(summary.read_text()).get("best_checkpoint") or "")
    found = [folder / name for name in ("best.pt", "last.pt") if (folder / name).exists()]
    return str(found[0]) if found else ""


def measure_precision_wer(checkpoint: str) -> dict:
    """Dev WER of a trained checkpoint with its model in each precision (on its own corpus)."""
    from slr.config import PRECISIONS
    from slr.evaluate import evaluate_checkpoint
    wer = {f"{p}_dev_wer": evaluate_checkpoint(checkpoint, None, "dev", precision=p)["wer"] for p in PRECISIONS}
    return {**wer, "onnx_dev_wer": evaluate_checkpoint(checkpoint, None, "dev", runtime="onnx")["wer"]}


def matmul_peak(best_of, n: int = 2048) -> float:  # noqa: ANN001 -- the caller's best-of timer
    """FLOP/s of one n^3 fp32 matmul on the current thread count: what one core sustains at best."""
    a = torch.randn(n, n)
    return 2 * n**3 / best_of(lambda: a @ a)


def seconds_real(rtf: dict, key: str) -> float:
    """x real time for a latency in ``rtf`` (``model_floor_s``: the model at the core's matmul peak, features free)."""
    return rtf["seconds"] / rtf[key]


def onnx_variants(model) -> dict:  # noqa: ANN001 -- a Student
    """The model on ONNX Runtime, 1 thread: fp32 (``--runtime onnx``) and ORT's dynamic int8 quantization of it."""
    import logging
    import tempfile

    from onnxruntime.quantization import QuantType, quantize_dynamic

    from slr.onnx_runtime import OnnxStudent, export
    folder = Path(tempfile.mkdtemp(prefix="slr-onnx-bench-"))
    fp32 = export(model, folder / "fp32.onnx")
    logging.disable(logging.WARNING)  # the quantizer's advice on pre-processing, logged per tensor
    try:
        quantize_dynamic(str(fp32), str(folder / "int8.onnx"), weight_type=QuantType.QInt8)
    finally:
        logging.disable(logging.NOTSET)
    return {"onnx": OnnxStudent(fp32, threads=1), "onnx_int8": OnnxStudent(folder / "int8.onnx", threads=1)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--corpus", default=str(ROOT / "corpora" / "quickstart"))
    p.add_argument("--steps", type=int, default=40)
    p.add_argument("--batch-size", type=int, default=4, help="the seed's batch size")
    p.add_argument("--vocab-size", type=int, default=1232,
                   help="output vocabulary for the real-time factor (default: PHOENIX-2014's 1,232 glosses)")
    p.add_argument("--checkpoint", default=None,
                   help="a trained checkpoint whose dev WER is measured in each precision (default: the quickstart "
                        "sweep's best, when sweeps/quickstart has run; '' to skip)")
    p.add_argument("--compile", action="store_true",
                   help="also time the 10 s sentence under torch.compile (about a minute of compiling)")
    p.add_argument("--doc", default=str(ROOT / "docs" / "benchmarks.md"))
    p.add_argument("--results", default=None)
    args = p.parse_args(argv)
    set_command(__file__, argv)
    train = measure_training(args.corpus, args.steps, args.batch_size)
    loader = measure_loader(args.corpus, args.batch_size)
    rtf = measure_rtf(args.corpus, vocab_size=args.vocab_size, compiled=args.compile)
    checkpoint = default_checkpoint() if args.checkpoint is None else args.checkpoint
    if checkpoint:
        rtf.update(measure_precision_wer(checkpoint), wer_checkpoint=checkpoint)
    ratio = loader["loader_fps"] / train["train_fps"]
    results = dict(**train, **loader, **rtf, loader_over_train=ratio, threads=torch.get_num_threads())
    save("throughput", results, Path(args.results) if args.results else None)
    compiled_row = (f"| features + model under `torch.compile` (inductor, static shapes) | "
                    f"{rtf['compiled_latency_s'] * 1000:.1f} ms = {rtf['compiled_times_real_time']:.0f}x real time; "
                    f"first call {rtf['compile_s']:.0f} s (compiling, or loading inductor's on-disk cache); "
                    f"largest log-prob difference from eager {rtf['compiled_max_abs_diff']:.1e} |\n"
                    f"| the model alone under `torch.compile`, features eager | "
                    f"{rtf['compiled_model_latency_s'] * 1000:.1f} ms = "
                    f"{seconds_real(rtf, 'compiled_model_latency_s'):.0f}x real time |\n"
                    if "compile_s" in rtf else "")
    wer_row = ("| dev WER of a trained model in each precision (" + Path(rtf["wer_checkpoint"]).parent.parent.name[:19]
               + f"..., the quickstart sweep's best) | fp32 {rtf['fp32_dev_wer']:.2%}, bf16 {rtf['bf16_dev_wer']:.2%}, "
               f"int8 {rtf['int8_dev_wer']:.2%}, ONNX Runtime fp32 {rtf['onnx_dev_wer']:.2%} |\n"
               if "wer_checkpoint" in rtf else "")
    verdict = "; ".join(f"{name} {rtf[key]:.0f}x: " + ("met" if rtf[key] >= 1000 else f"{1000 / rtf[key]:.2f}x short")
                        for name, key in (("fp32", "times_real_time"), ("bf16", "bf16_times_real_time"),
                                          ("int8", "int8_times_real_time"),
                                          ("fp32 on ONNX Runtime", "onnx_times_real_time")))
    body = f"""## Trainer throughput (seed baseline, CPU)

| measure | value |
|---|---|
| parameters | {train['parameters']:,} |
| training (forward + CTC + backward + AdamW), batch {args.batch_size} | {train['train_fps']:,.0f} frames/s |
| inference (features + model), batch {args.batch_size} | {train['inference_fps']:,.0f} frames/s |
| data loader (memory-mapped corpus -> padded batches) | {loader['loader_fps']:,.0f} frames/s = **{ratio:.0f}x** what training consumes (target >= 5x) |
| recognizing a 10 s sentence (250 frames, 1 core, {rtf['vocab_size']:,} glosses) | {rtf['latency_s'] * 1000:.1f} ms = **{rtf['times_real_time']:.0f}x real time** (real-time factor {rtf['rtf_1core']:.4f}) |
| of which: features (543 x 3 landmarks -> 6516 per frame) | {rtf['features_s'] * 1000:.1f} ms |
| of which: model + greedy decoding | {rtf['model_decode_s'] * 1000:.1f} ms |
| the same with the model in bf16 (`slr decode --precision bf16`: weights and activations, BatchNorm folded into the convolutions; this CPU has AVX-512 BF16) | {rtf['bf16_latency_s'] * 1000:.1f} ms = **{rtf['bf16_times_real_time']:.0f}x real time**; greedy labels agree with fp32 on {rtf['bf16_frame_agreement']:.1%} of frames (untrained weights) |
| the same with the model int8 (`--precision int8`: Linear layers dynamically quantized, BatchNorm folded, LSTM fp32) | {rtf['int8_latency_s'] * 1000:.1f} ms = **{rtf['int8_times_real_time']:.0f}x real time**; greedy labels agree with fp32 on {rtf['int8_frame_agreement']:.1%} of frames (untrained weights) |
| the same with the model on ONNX Runtime (`slr decode --runtime onnx`: fp32, 1 thread; features in torch) | {rtf['onnx_latency_s'] * 1000:.1f} ms = **{rtf['onnx_times_real_time']:.0f}x real time**; greedy labels agree with fp32 on {rtf['onnx_frame_agreement']:.1%} of frames |
| ONNX Runtime's own dynamic int8 quantization of that model (not offered by `slr`: see the text) | {rtf['onnx_int8_latency_s'] * 1000:.1f} ms = {rtf['onnx_int8_times_real_time']:.0f}x real time; greedy labels agree with fp32 on {rtf['onnx_int8_frame_agreement']:.1%} of frames (untrained weights) |
{wer_row}{compiled_row}| model FLOPs for the sentence (flop counter, BiLSTM included) / this core's fp32 matmul peak | {rtf['model_flops'] / 1e9:.2f} GFLOP / {rtf['core_peak_flops'] / 1e9:.0f} GFLOP/s = at least {rtf['model_floor_s'] * 1000:.1f} ms for the model alone, {seconds_real(rtf, 'model_floor_s'):.0f}x real time at best |
| model size | {train['parameters']:,} parameters, {rtf['model_bytes'] / 2**20:.1f} MiB fp32 |

Inference target >= 1000x real time on 1 core: {verdict}.
{torch.get_num_threads()} torch threads for training and loading; the real-time factor uses 1 thread."""
    write_section(Path(args.doc), "throughput", body)
    print(body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
