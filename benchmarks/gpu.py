"""GPU figures for the seed student (needs CUDA): training throughput fp32 vs bf16 autocast, cuDNN LSTM on and
off, torch.compile; FLOPs per frame and the fraction of the device's measured peak; k trials packed on one GPU
(as Ray's fractional slices: k tasks holding num_gpus=1/k each, or k plain processes capped to 1/k); CUDA CTC
against CPU CTC; the per-process memory cap a trial sets.

    python -m benchmarks.gpu                       # on a CUDA machine; writes benchmarks/results/gpu.json
    python -m benchmarks.gpu --render gpu.json     # anywhere: the docs section from a saved result
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import torch

from benchmarks._common import ROOT, save, set_command, write_section
from benchmarks.throughput import measure_loader

PACK_BATCH = 32  # experiments/bench.yaml's batch size


def make_corpus(path: Path) -> str:
    if not (path / "manifest.json").exists():
        from slr.corpus.synthetic import generate
        generate("quickstart", path, seed=0)
    return str(path)


def _trainer(corpus: str, batch_size: int, amp: bool, device: str = "cuda", **overrides: Any):  # noqa: ANN202
    from slr.config import Config
    from slr.train import Trainer
    cfg = Config().override({"data.batch_size": batch_size, "train.amp": "bf16" if amp else "off",
                             "train.device": device, "features.standardize": False, **overrides})
    return Trainer(cfg.override({"data.corpus": str(corpus)}))


def _staged(trainer, n: int) -> list:  # noqa: ANN001
    """``n`` training batches already on the device: the loader is measured apart."""
    out = []
    while len(out) < n:
        for batch in trainer.train_loader:
            out.append(batch.to(trainer.device))
            if len(out) >= n:
                break
    return out


def measure(corpus: str, batch_size: int, amp: bool, cudnn: bool = True, compiled: str = "", tf32: bool = False,
            steps: int = 40, warmup: int = 8) -> dict[str, Any]:
    torch.backends.cudnn.enabled = cudnn
    torch.backends.cuda.matmul.allow_tf32 = tf32
    try:
        trainer = _trainer(corpus, batch_size, amp)
        if compiled:
            trainer.model = torch.compile(trainer.model, dynamic=compiled == "dynamic")
        batches = _staged(trainer, steps + warmup)
        trainer.model.train()
        torch.cuda.reset_peak_memory_stats()
        t_first = time.perf_counter()
        # Warm-up: every staged batch once, so a compiled model has met every shape (and both parities of T
        # mod 4) before the clock starts; eager modes only warm their cuDNN/cuBLAS caches.
        for b in batches:
            trainer.step(b)
        torch.cuda.synchronize()
        warmup_s = time.perf_counter() - t_first
        t0, frames = time.perf_counter(), 0
        for b in batches[warmup:]:
            trainer.step(b)
            frames += int(b.lengths.sum())
        torch.cuda.synchronize()
        train_fps = frames / (time.perf_counter() - t0)
        trainer.model.eval()
        with torch.no_grad():
            for b in batches:  # eval-mode graphs are compiled separately: warm them the same way
                trainer.forward(b)
            torch.cuda.synchronize()
            t0 = time.perf_counter()
            for b in batches[warmup:]:
                trainer.forward(b)
            torch.cuda.synchronize()
            infer_fps = frames / (time.perf_counter() - t0)
        return dict(train_fps=train_fps, inference_fps=infer_fps, warmup_s=warmup_s,
                    peak_memory_mib=torch.cuda.max_memory_allocated() / 2**20,
                    mean_frames_per_batch=frames / steps)
    except Exception as err:  # noqa: BLE001 -- a mode that does not work here is a finding, not a crash
        import traceback
        return dict(error=f"{type(err).__name__}: {str(err)[:300]}", detail=traceback.format_exc()[-3000:])
    finally:
        torch.backends.cudnn.enabled = True
        torch.backends.cuda.matmul.allow_tf32 = False


def flops_per_frame(corpus: str, batch_size: int) -> dict[str, float]:
    """Counted by torch.utils.flop_counter on CPU in fp32 (there the packed LSTM runs as addmm steps, which it counts)."""
    from torch.utils.flop_counter import FlopCounterMode
    trainer = _trainer(corpus, batch_size, amp=False, device="cpu")
    b = next(iter(trainer.train_loader))
    frames = int(b.lengths.sum())
    with FlopCounterMode(display=False) as fc:
        with torch.no_grad():
            trainer.forward(b)
    fwd = fc.get_total_flops()
    with FlopCounterMode(display=False) as fc:
        trainer.loss(b).backward()
    return dict(forward_flops_per_frame=fwd / frames, train_flops_per_frame=fc.get_total_flops() / frames)


def peak_tflops(dtype: torch.dtype, n: int = 8192, reps: int = 10) -> float:
    """The device's measured dense matmul rate (TF32 off for fp32)."""
    torch.backends.cuda.matmul.allow_tf32 = False
    a, b = (torch.randn(n, n, device="cuda", dtype=dtype) for _ in range(2))
    for _ in range(3):
        a @ b
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(reps):
        a @ b
    torch.cuda.synchronize()
    return 2 * n**3 * reps / (time.perf_counter() - t0) / 1e12


def ctc_parity(corpus: str) -> dict[str, Any]:
    """CTC loss and gradients on CUDA (fp32) against CPU, same weights and batch; with cuDNN as trained, with
    cuDNN's TF32 off, and with cuDNN off -- which one moves the gradients tells where a difference comes from."""
    out = {}
    for name, (cudnn, tf32) in {"cudnn": (True, True), "cudnn, TF32 off": (True, False),
                                "cudnn off": (False, False)}.items():
        torch.backends.cudnn.enabled, torch.backends.cudnn.allow_tf32 = cudnn, tf32
        try:
            out[name] = _ctc_parity(corpus)
        finally:
            torch.backends.cudnn.enabled, torch.backends.cudnn.allow_tf32 = True, True
    return out


def _ctc_parity(corpus: str) -> dict[str, float]:
    # no dropout, so that both runs compute the same function (cuDNN's LSTM backward needs train mode)
    cpu = _trainer(corpus, 8, amp=False, device="cpu", **{"model.dropout": 0.0})
    gpu = _trainer(corpus, 8, amp=False, device="cuda", **{"model.dropout": 0.0})
    gpu.model.load_state_dict(cpu.model.state_dict())
    b = next(iter(cpu.train_loader))
    losses, grads = [], []
    for t in (cpu, gpu):
        t.model.train()
        loss = t.loss(b.to(t.device))
        loss.backward()
        losses.append(float(loss.detach()))
        grads.append(torch.cat([p.grad.flatten().cpu() for p in t.model.parameters() if p.grad is not None]))
    return dict(cpu_loss=losses[0], cuda_loss=losses[1], loss_rel_diff=abs(losses[0] - losses[1]) / abs(losses[0]),
                grad_max_abs_diff=float((grads[0] - grads[1]).abs().max()),
                grad_rel_norm_diff=float((grads[0] - grads[1]).norm() / grads[0].norm()))


def memory_cap(fraction: float = 0.25) -> dict[str, Any]:
    """What a trial on a 1/4 GPU slice does (tune.trainable.pick_device): allocations past its share fail."""
    total = torch.cuda.get_device_properties(0).total_memory
    torch.cuda.set_per_process_memory_fraction(fraction, 0)
    try:
        ok = torch.empty(int(total * fraction * 0.8), dtype=torch.uint8, device="cuda")
        del ok
        try:
            torch.empty(int(total * fraction * 1.2), dtype=torch.uint8, device="cuda")
            refused = False
        except torch.OutOfMemoryError:
            refused = True
    finally:
        torch.cuda.set_per_process_memory_fraction(1.0, 0)
        torch.cuda.empty_cache()
    return dict(fraction=fraction, total_gib=total / 2**30, within_share_allocated=True, over_share_refused=refused)


def _timed_training(trainer, batches: list, seconds: float, wait_for_all) -> dict[str, Any]:  # noqa: ANN001
    """Warm up, wait until every packed trial is ready (``wait_for_all()``), then train for ``seconds``."""
    cuda = trainer.device.type == "cuda"
    trainer.model.train()
    for b in batches[:6]:
        trainer.step(b)
    if cuda:
        torch.cuda.synchronize()
    wait_for_all()
    t0, frames, i = time.perf_counter(), 0, 0
    while time.perf_counter() - t0 < seconds:
        b = batches[i % len(batches)]
        trainer.step(b)
        frames += int(b.lengths.sum())
        i += 1
    if cuda:
        torch.cuda.synchronize()
    return dict(fps=frames / (time.perf_counter() - t0), pid=os.getpid(), device=trainer.device.type,
                peak_memory_mib=torch.cuda.max_memory_allocated() / 2**20 if cuda else 0.0,
                reserved_mib=torch.cuda.max_memory_reserved() / 2**20 if cuda else 0.0)


def _pack_worker(rank: int, k: int, corpus: str, seconds: float, amp: bool, barrier, queue) -> None:  # noqa: ANN001
    torch.set_num_threads(1)
    torch.cuda.set_per_process_memory_fraction(1.0 / k, 0)  # as tune.trainable.pick_device does
    trainer = _trainer(corpus, PACK_BATCH, amp=amp)
    queue.put(dict(rank=rank, **_timed_training(trainer, _staged(trainer, 24), seconds, barrier.wait)))


def packing(corpus: str, ks: list[int], seconds: float, amp: bool = False) -> dict[str, Any]:
    """k plain processes on the GPU, each capped to 1/k of its memory (``--pack-via process``)."""
    ctx = torch.multiprocessing.get_context("spawn")
    out = {}
    for k in ks:
        barrier, queue = ctx.Barrier(k), ctx.Queue()
        procs = [ctx.Process(target=_pack_worker, args=(r, k, corpus, seconds, amp, barrier, queue)) for r in range(k)]
        for p in procs:
            p.start()
        rows = [queue.get(timeout=600) for _ in procs]
        for p in procs:
            p.join()
        out[str(k)] = _pack_row(rows)
    return _speedups(out, ks, via="process")


def _pack_row(rows: list[dict[str, Any]]) -> dict[str, Any]:
    return dict(aggregate_fps=sum(r["fps"] for r in rows), per_trial=rows,
                peak_memory_mib=max(r["peak_memory_mib"] for r in rows))


def _speedups(out: dict[str, Any], ks: list[int], via: str) -> dict[str, Any]:
    base = out[str(ks[0])]["aggregate_fps"]
    for k in ks:
        out[str(k)]["speedup_vs_1"] = out[str(k)]["aggregate_fps"] / base
        out[str(k)]["via"] = via
    return out


def _ray_pack_trial(k: int, corpus: str, seconds: float, amp: bool, barrier) -> dict[str, Any]:  # noqa: ANN001
    """One packed trial as a Ray task holding ``gpu: 1/k``: the device and memory cap chosen as a sweep's trial
    chooses them (``tune.trainable.pick_device``), then the same timed training as the process variant."""
    import ray

    from tune.trainable import pick_device
    torch.set_num_threads(1)
    trainer = _trainer(corpus, PACK_BATCH, amp=amp, device=pick_device(1.0 / k))

    def wait_for_all() -> None:  # a barrier across Ray workers: a counter in an actor
        ray.get(barrier.arrive.remote())
        while ray.get(barrier.count.remote()) < k:
            time.sleep(0.01)
    row = _timed_training(trainer, _staged(trainer, 24), seconds, wait_for_all)
    return dict(row, gpu_ids=[str(g) for g in ray.get_gpu_ids()],
                cuda_visible_devices=os.environ.get("CUDA_VISIBLE_DEVICES"))


def packing_ray(corpus: str, ks: list[int], seconds: float, amp: bool = False) -> dict[str, Any]:
    """k trials on one GPU as Ray schedules them: k tasks each asking for ``num_gpus=1/k`` on a local Ray with one
    GPU (``--pack-via ray``, the default). Without CUDA, Ray is told of one logical GPU and the trials train on
    CPU: that checks the scheduling path, it measures nothing about GPUs."""
    from tune.sweep import ensure_ray_token
    ensure_ray_token()  # token auth on, as for a sweep (importing tune set RAY_AUTH_MODE before ray loaded)
    import ray

    @ray.remote(num_cpus=0)
    class Barrier:
        def __init__(self) -> None:
            self.n = 0

        def arrive(self) -> int:
            self.n += 1
            return self.n

        def count(self) -> int:
            return self.n

    here = str(Path(__file__).resolve().parent)
    path = os.pathsep.join([here, str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])
    ray.init(address="local", include_dashboard=False, log_to_driver=False, configure_logging=False,
             num_gpus=None if torch.cuda.is_available() else 1, runtime_env={"env_vars": {"PYTHONPATH": path}})
    out = {}
    try:
        for k in ks:
            barrier = Barrier.remote()
            # max_calls=1: a fresh worker per trial, so no memory cap or CUDA context carries over between k
            task = ray.remote(num_gpus=1.0 / k, num_cpus=1, max_calls=1)(_ray_pack_trial)
            rows = ray.get([task.remote(k, corpus, seconds, amp, barrier) for _ in range(k)], timeout=900)
            out[str(k)] = _pack_row(rows)
            ray.kill(barrier)
    finally:
        ray.shutdown()
    return _speedups(out, ks, via="ray")


def _err(m: dict[str, Any]) -> str:
    return m["error"].splitlines()[0] + (" " + m["error"].splitlines()[1] if len(m["error"].splitlines()) > 1 else "")


def _mode_rows(modes: dict[str, Any], batch_size: int, train_flops: float, peak_bf16: float, peak_fp32: float) -> list[str]:
    rows = ["| mode (batch %d) | training frames/s | inference frames/s | peak memory | achieved TFLOP/s (%% of peak) |"
            % batch_size, "|---|---|---|---|---|"]
    for name, m in modes.items():
        if "error" in m:
            rows.append(f"| {name} | failed: `{_err(m)}` | | | |")
            continue
        peak = peak_bf16 if "bf16" in name else peak_fp32
        achieved = m["train_fps"] * train_flops / 1e12
        rows.append(f"| {name} | {m['train_fps']:,.0f} | {m['inference_fps']:,.0f} | {m['peak_memory_mib']:,.0f} MiB | "
                    f"{achieved:.2f} ({100 * achieved / peak:.2f} % of {'bf16' if 'bf16' in name else 'fp32'}) |")
    return rows


def _compile_note(later: dict[str, Any] | None, rows: list[str]) -> str:
    """What the docs say about torch.compile: from the focused later run when there is one."""
    if later is None:
        return "`torch.compile` failed in this torch build (errors in the table), so it is not used."
    m = later["modes"]
    eager, dyn = m.get("fp32", {}), m.get("fp32 + torch.compile (dynamic shapes)", {})
    gain = (f" Compiled with dynamic shapes, training runs at **{dyn['train_fps'] / eager['train_fps']:.2f}x** eager fp32 "
            f"and inference at {dyn['inference_fps'] / eager['inference_fps']:.2f}x, after {dyn['warmup_s']:.0f} s of "
            f"warm-up (compiling) against {eager['warmup_s']:.0f} s eager." if "train_fps" in dyn and "train_fps" in eager else "")
    return (f"`torch.compile`, measured in a separate run ({later['date']}, same kind of machine) after the model stopped using "
            f"`%` and `max_pool1d(ceil_mode=True)` on sequence lengths (both made dynamic-shape compilation fail or "
            f"re-specialize), with `{later['command']}` (every staged batch once as warm-up, eager included):\n\n"
            + "\n".join(rows) + f"\n\n{gain.strip()} Absolute rates differ between machines of the same kind (eager fp32 "
            f"here against the table above), so compare within one run. Static shapes still fail in this build's Triton (a fused LayerNorm + GELU "
            "backward kernel). The trainer does not compile: the warm-up costs more than a short trial's gain.")


def render(r: dict[str, Any], repeats: list[dict[str, Any]] | None = None) -> str:
    later = next((x for x in repeats or [] if x.get("name") == "gpu_modes"), None)
    repeats = [x for x in repeats or [] if x.get("name") != "gpu_modes"]
    modes = r["modes"]
    peak_bf16, peak_fp32 = r["peak_tflops"]["bf16"], r["peak_tflops"]["fp32"]
    train_flops = r["flops"]["train_flops_per_frame"]
    rows = _mode_rows(modes, r["batch_size"], train_flops, peak_bf16, peak_fp32)
    compile_note = _compile_note(later, later and _mode_rows(later["modes"], later["batch_size"], train_flops,
                                                             peak_bf16, peak_fp32))
    packs = r["packing"] if "1" not in r["packing"] else {"bf16": r["packing"]}
    prow = ["| trials on one GPU (k) | " + " | ".join(f"{d}: aggregate frames/s (x one trial)" for d in packs)
            + " | peak memory per trial |", "|---|" + "---|" * len(packs) + "---|"]
    ks = list(next(iter(packs.values())))
    for k in ks:
        prow.append(f"| {k} | " + " | ".join(f"{p[k]['aggregate_fps']:,.0f} ({p[k]['speedup_vs_1']:.2f}x)"
                                             for p in packs.values())
                    + f" | {max(p[k]['peak_memory_mib'] for p in packs.values()):,.0f} MiB |")
    k4 = {d: p["4"]["speedup_vs_1"] for d, p in packs.items() if "4" in p}
    best = max((m.get("train_fps", 0), n) for n, m in modes.items())
    ctc = r["ctc"] if "cudnn" in r["ctc"] else {"cudnn": r["ctc"]}
    crow = "; ".join(f"{name}: loss {c['cuda_loss']:.4f} vs CPU {c['cpu_loss']:.4f} (relative {c['loss_rel_diff']:.1e}), "
                     f"gradients {c['grad_rel_norm_diff']:.1e} (relative norm)" for name, c in ctc.items())
    cap = r["memory_cap"]
    loader = r["loader_fps"]
    verdict = "; ".join(f"{d} {v:.2f}x" for d, v in k4.items())
    again, runs_met = [], []
    for rep in repeats or []:
        rp = rep["packing"] if "1" not in rep["packing"] else {"bf16": rep["packing"]}
        again.append(", ".join(f"{d} {p['4']['speedup_vs_1']:.2f}x" for d, p in rp.items() if "4" in p))
        runs_met.append(any(p["4"]["speedup_vs_1"] >= 3.5 for p in rp.values() if "4" in p))
    met = any(v >= 3.5 for v in k4.values())
    via = next(iter(next(iter(packs.values())).values())).get("via", "process")
    how = ("k Ray tasks on a local Ray with one GPU, each holding `num_gpus=1/k` and choosing its device and memory "
           "cap as a sweep's trial does (`tune.trainable.pick_device`);" if via == "ray" else
           "k processes on one GPU, each capping its CUDA memory to 1/k as a trial on a `gpu: 1/k` slice does, "
           "not scheduled by Ray;")
    repeat_note = (f" Other runs of this script the same day, on other machines of the same kind, measured k = 4 at "
                   f"{'; '.join(again)}: the target was met in {sum(runs_met) + met} of {len(runs_met) + 1} runs, so "
                   "packing gains vary by several tenths between runs and sit around the target." if again else "")
    tf32_gap = ctc.get("cudnn", {}).get("grad_rel_norm_diff", 0) > 10 * ctc.get("cudnn, TF32 off", {}).get("grad_rel_norm_diff", 1)
    ctc_note = ("The CTC loss agrees; the gradient gap with cuDNN's default TF32 vanishes with TF32 off, so it is TF32 "
                "rounding in the convolutions and LSTM, not CTC." if tf32_gap else
                "Loss and gradients agree to float32 rounding in every setting.")
    return f"""## GPU: trainer throughput, packing, CUDA CTC

Seed student ({r['parameters']:,} parameters) on the quickstart corpus (mean {modes['fp32']['mean_frames_per_batch'] / r['batch_size']:.0f} frames per sentence), batches staged on the
GPU. FLOPs counted by `torch.utils.flop_counter` on CPU: {r['flops']['forward_flops_per_frame'] / 1e6:.2f} MFLOP per frame forward,
{train_flops / 1e6:.2f} MFLOP per frame for a training step (forward + backward). Device peak measured here with an 8192^3
matmul: {peak_bf16:.0f} TFLOP/s bf16, {peak_fp32:.0f} TFLOP/s fp32 (TF32 off).

{chr(10).join(rows)}

The student is far too small to load a Hopper GPU: at {train_flops / 1e6:.1f} MFLOP per frame and batch {r['batch_size']} the device
waits on kernel launches, so the fraction of peak is tiny, bf16 autocast adds cast kernels (training slower
than fp32), TF32 tensor-core matmuls help, and cuDNN's fused LSTM is what matters: `train.amp: auto` therefore means
fp32 with TF32 on CUDA (`bf16` and strict-fp32 `off` remain selectable). Fastest: **{best[1]}**
({best[0]:,.0f} frames/s). The data loader (CPU, memory-mapped corpus -> padded batches, one process) delivers
{loader:,.0f} frames/s = **{loader / best[0]:.1f}x** the fastest single-trial training rate (target >= 5x).

{compile_note}

**Packing** ({how}
batch {PACK_BATCH}, {r['pack_seconds']:.0f} s each after warm-up, batches staged on the GPU, 1 CPU thread each):

{chr(10).join(prow)}

**k = 4: {verdict} one trial (target >= 3.5x): {'met' if met else 'not met'}.** Packing pays because one trial leaves the
GPU idle between launches; k = 8 packs further.{repeat_note}

**CUDA CTC** against CPU CTC, same weights and batch, fp32 -- {crow}. {ctc_note} **Memory cap**: with
`set_per_process_memory_fraction({cap['fraction']})` on the {cap['total_gib']:.0f} GiB device, an allocation inside the share
succeeds and one past it is {'refused (out of memory)' if cap['over_share_refused'] else 'NOT refused'}."""


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--corpus", default=str(ROOT / "corpora" / "quickstart"), help="made if absent (quickstart preset)")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--steps", type=int, default=40)
    p.add_argument("--pack", default="1,2,4,8", help="k values for packing")
    p.add_argument("--pack-seconds", type=float, default=20.0)
    p.add_argument("--pack-dtypes", default="fp32,bf16", help="packing runs: fp32 and/or bf16 (autocast)")
    p.add_argument("--pack-via", choices=("ray", "process"), default="ray",
                   help="ray: k Ray tasks holding num_gpus=1/k each, as a sweep's trials (default); process: k plain "
                   "processes capped to 1/k of the memory")
    p.add_argument("--pack-only", action="store_true", help="measure packing and nothing else, saved as "
                   "gpu_pack.json; runs without CUDA too (Ray is told of one logical GPU and the trials train on "
                   "CPU: a check of the path, not a GPU figure)")
    p.add_argument("--modes", default="", help="only these trainer modes, ';'-separated exact names "
                   "(e.g. 'fp32;fp32 + torch.compile (dynamic shapes)'); default: all")
    p.add_argument("--modes-only", action="store_true", help="measure the modes and nothing else, saved as "
                   "gpu_modes.json (give it to --render after the full run's JSON to quote it)")
    p.add_argument("--results", default=None)
    p.add_argument("--doc", default=str(ROOT / "docs" / "benchmarks.md"))
    p.add_argument("--render", nargs="+", help="write the docs section from saved results instead of measuring "
                   "(the first; the others are earlier runs whose packing figures are quoted)")
    args = p.parse_args(argv)
    if args.render:
        result, *repeats = (json.loads(Path(f).read_text()) for f in args.render)
        body = render(result, repeats) + ("\n\nThis section was written from saved results with `python -m benchmarks.gpu "
                                          f"--render {' '.join(os.path.relpath(Path(f).resolve(), ROOT) for f in args.render)}`.")
        write_section(Path(args.doc), "gpu", body, measured=result)
        print(body)
        return 0
    if not torch.cuda.is_available() and not args.pack_only:
        print("benchmarks/gpu.py needs a CUDA device (only --pack-only runs without one)", file=sys.stderr)
        return 2
    set_command(__file__, argv)
    corpus = make_corpus(Path(args.corpus))
    pack = packing_ray if args.pack_via == "ray" else packing
    if args.pack_only:
        ks = [int(k) for k in args.pack.split(",")]
        result = dict(cuda=torch.cuda.is_available(), pack_seconds=args.pack_seconds,
                      packing={d: pack(corpus, ks, args.pack_seconds, amp=d == "bf16")
                               for d in args.pack_dtypes.split(",")})
        path = save("gpu_pack", result, Path(args.results) if args.results else None)
        print(f"wrote {path}: " + "; ".join(f"{d} k={k}: {row['aggregate_fps']:,.0f} frames/s ({row['speedup_vs_1']:.2f}x)"
                                           for d, rows in result["packing"].items() for k, row in rows.items()))
        return 0
    t0 = time.time()
    modes = {}
    for name, kw in {"fp32": dict(amp=False), "fp32, TF32 matmuls": dict(amp=False, tf32=True),
                     "bf16 autocast": dict(amp=True), "fp32, cuDNN off (native LSTM)": dict(amp=False, cudnn=False),
                     "fp32 + torch.compile (dynamic shapes)": dict(amp=False, compiled="dynamic"),
                     "fp32 + torch.compile (static shapes)": dict(amp=False, compiled="static")}.items():
        if args.modes and name not in args.modes.split(";"):
            continue
        modes[name] = measure(corpus, args.batch_size, steps=args.steps, **kw)
        print(f"{name}: {modes[name]} ({time.time() - t0:.0f} s)", flush=True)
    if args.modes_only:  # a focused run: its own result, quoted beside the full run's by --render
        path = save("gpu_modes", dict(batch_size=args.batch_size, modes=modes), Path(args.results) if args.results else None)
        print(f"wrote {path}")
        return 0
    result = dict(batch_size=args.batch_size, modes=modes, flops=flops_per_frame(corpus, args.batch_size),
                  peak_tflops={"bf16": peak_tflops(torch.bfloat16), "fp32": peak_tflops(torch.float32)},
                  ctc=ctc_parity(corpus), memory_cap=memory_cap(),
                  loader_fps=measure_loader(corpus, args.batch_size)["loader_fps"],
                  parameters=_trainer(corpus, 4, amp=False, device="cpu").model.num_parameters(),
                  pack_seconds=args.pack_seconds)
    print(f"flops/peak/ctc/cap/loader done ({time.time() - t0:.0f} s): {json.dumps(result)}", flush=True)
    result["packing"] = {}
    out = Path(args.results) if args.results else None
    save("gpu_partial", result, out)  # what a run cut short still leaves
    for dtype in args.pack_dtypes.split(","):
        result["packing"][dtype] = pack(corpus, [int(k) for k in args.pack.split(",")], args.pack_seconds,
                                           amp=dtype == "bf16")
        print(f"packing {dtype}: {json.dumps(result['packing'][dtype])}", flush=True)
        save("gpu_partial", result, out)
    path = save("gpu", result, out)
    print(f"wrote {path}\n" + render(json.loads(path.read_text())))
    return 0


if __name__ == "__main__":
    sys.exit(main())
