"""Scale model on paper: what a PHOENIX-2014-size sweep costs, from the measured per-frame rates.

Inputs: the GPU result (``benchmarks/results/gpu.json``: one trial's and k = 4 packed trials' training frames/s,
inference frames/s), the CPU result (``throughput.json``) and the sweep shape of ``experiments/phoenix2014.yaml``
(100 trials, 100 epochs max, ASHA grace 10, reduction factor 3). The ASHA budget is successive halving's
(every trial reaches the first rung, 1/rf of them the next, ...); asynchronous promotion spends a little more.

    python -m benchmarks.scale_model
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from benchmarks._common import ROOT, save, set_command, write_section

TRAIN_SENTENCES, DEV_SENTENCES, FRAMES = 5672, 540, 140  # PHOENIX-2014 train / dev, ~140 frames per sentence


def asha_trial_epochs(trials: int, max_t: int, grace: int, rf: float) -> float:
    """Successive halving's budget: all trials run to the first rung, a 1/rf share of them on to each next."""
    rungs, r = [], grace
    while r < max_t:
        rungs.append(r)
        r = int(round(r * rf))
    rungs.append(max_t)
    total, alive, done = 0.0, float(trials), 0
    for rung in rungs:
        total += alive * (rung - done)
        done, alive = rung, alive / rf
    return total


def model(gpu: dict[str, Any], cpu: dict[str, Any], trials: int = 100, epochs: int = 100, grace: int = 10,
          rf: float = 3.0, k: int = 4) -> dict[str, Any]:
    fp32 = gpu["packing"]["fp32"] if "fp32" in gpu["packing"] else gpu["packing"]
    one, packed = fp32["1"]["aggregate_fps"], fp32[str(k)]["aggregate_fps"]
    infer = max(m.get("inference_fps", 0) for m in gpu["modes"].values())
    train_frames, dev_frames = TRAIN_SENTENCES * FRAMES, DEV_SENTENCES * FRAMES
    # GPU-seconds per trial-epoch: training at the measured rate, plus the dev pass
    per_epoch = {"1 trial per GPU": train_frames / one + dev_frames / infer,
                 f"{k} trials per GPU": (train_frames / packed) + dev_frames / infer / k,
                 "CPU, 1 trial on 2 cores (for scale)": train_frames / cpu["train_fps"] + dev_frames / cpu["inference_fps"]}
    budgets = {"full budget": trials * epochs, "ASHA": asha_trial_epochs(trials, epochs, grace, rf)}
    out: dict[str, Any] = dict(per_trial_epoch_s=per_epoch, trial_epochs=budgets, rows=[])
    for packing, sec in per_epoch.items():
        for name, te in budgets.items():
            hours = te * sec / 3600
            slots_per_gpu = k if packing.startswith(str(k)) else 1
            row = dict(packing=packing, budget=name, trial_epochs=te, device_hours=hours, wall_hours={})
            # a trial's epochs run one after another: its epoch takes slots_per_gpu x the GPU-seconds when packed
            longest = epochs * sec * slots_per_gpu / 3600
            for gpus in (1, 8, 32):  # the work spread over the GPUs, never shorter than one full-length trial
                row["wall_hours"][gpus] = max(hours / gpus, longest)
            out["rows"].append(row)
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--gpu", default=str(ROOT / "benchmarks" / "results" / "gpu.json"))
    p.add_argument("--cpu", default=str(ROOT / "benchmarks" / "results" / "throughput.json"))
    p.add_argument("--doc", default=str(ROOT / "docs" / "benchmarks.md"))
    p.add_argument("--results", default=None)
    args = p.parse_args(argv)
    set_command(__file__, argv)
    gpu, cpu = json.loads(Path(args.gpu).read_text()), json.loads(Path(args.cpu).read_text())
    m = model(gpu, cpu)
    save("scale_model", m, Path(args.results) if args.results else None)
    rows = ["| placement | budget | trial-epochs | device-hours | wall on 1 GPU | on 8 GPUs | on 32 GPUs |",
            "|---|---|---|---|---|---|---|"]
    for r in m["rows"]:
        cpu_row = r["packing"].startswith("CPU")
        walls = (["(2 cores) " + f"{r['wall_hours'][1]:,.0f} h", "", ""] if cpu_row
                 else [f"{r['wall_hours'][g]:,.1f} h" for g in (1, 8, 32)])
        rows.append(f"| {r['packing']} | {r['budget']} | {r['trial_epochs']:,.0f} | {r['device_hours']:,.1f} | "
                    + " | ".join(walls) + " |")
    te = m["trial_epochs"]
    body = f"""## Scale model: a PHOENIX-2014-size sweep on paper

{TRAIN_SENTENCES:,} training sentences x {FRAMES} frames per epoch plus a {DEV_SENTENCES}-sentence dev pass; 100 trials, 100 epochs
max (`experiments/phoenix2014.yaml`); ASHA grace 10, reduction factor 3 spends {te['ASHA']:,.0f} trial-epochs
({te['ASHA'] / te['full budget']:.0%} of the full budget's {te['full budget']:,.0f}). Per-frame rates are the H100 measurements
above (fp32, seed student, batch 32; one trial per GPU, and 4 packed trials per GPU) and the 2-core CPU throughput;
one trial-epoch costs {m['per_trial_epoch_s']['1 trial per GPU']:.0f} GPU-seconds alone and {m['per_trial_epoch_s']['4 trials per GPU']:.1f} GPU-seconds packed 4 to a GPU.

{chr(10).join(rows)}

Read it as an estimate, not a measurement: PHOENIX sentences are ~3x longer than the quickstart ones the rates
were measured on (longer sequences usually use a GPU better, so this is on the expensive side), data loading is
taken as free (measured at 13x what one GPU trial consumes), and wall times assume the cluster is up (autoscaler
start-up not counted). With 32 GPUs x 4 slots the 100 trials all run at once, so wall time is one trial's 100
epochs."""
    write_section(Path(args.doc), "scale_model", body)
    print(body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
