"""Importing at corpus scale is streaming and uses every core: N recordings of T frames (PHOENIX-2014 is
~6,800 x ~140) are written as .npy files, imported with 1 and with all reader processes, and the peak
memory of the importer (and of its worker processes) is compared with the size of the input.

    python -m benchmarks.import_scale --samples 1000 --frames 140
Writes benchmarks/results/import_scale.json and a section of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from benchmarks._common import ROOT, save, set_command, write_section

MiB = 2**20
CHILD = """
import resource, sys, time, json
from slr.corpus.importer import import_corpus
t0 = time.time()
report = import_corpus([sys.argv[1]], sys.argv[2], [sys.argv[3]], workers=int(sys.argv[4]))
print(json.dumps(dict(seconds=time.time() - t0, samples=sum(report.samples.values()),
                      self_kib=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
                      children_kib=resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)))
"""


def make_inputs(folder: Path, samples: int, frames: int, seed: int = 0) -> tuple[Path, int]:
    """``samples`` .npy recordings ``[frames +- 20 %, 543, 3]`` float32 with 4 % missing points, plus a csv."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    lines = ["id,signer,split,glosses"]
    total = 0
    for i in range(samples):
        t = int(frames * rng.uniform(0.8, 1.2))
        x = rng.normal(0, 0.3, (t, 543, 3)).astype(np.float32)
        x[rng.random((t, 543)) < 0.04] = np.nan
        np.save(folder / f"s{i:05d}.npy", x)
        total += x.nbytes
        split = "train" if i % 10 < 8 else ("dev" if i % 10 == 8 else "test")
        lines.append(f"s{i:05d},signer{i % 9},{split},G{i % 50} G{(i * 7) % 50} G{(i * 3) % 50}")
    (folder / "ann.csv").write_text("\n".join(lines) + "\n")
    return folder / "ann.csv", total


def run_import(inputs: Path, ann: Path, out: Path, workers: int) -> dict:
    import json
    shutil.rmtree(out, ignore_errors=True)
    proc = subprocess.run([sys.executable, "-c", CHILD, str(inputs), str(out), str(ann), str(workers)],
                          capture_output=True, text=True, check=True)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--samples", type=int, default=1000)
    p.add_argument("--frames", type=int, default=140)
    p.add_argument("--doc", default=str(ROOT / "docs" / "benchmarks.md"))
    p.add_argument("--results", default=None)
    args = p.parse_args(argv)
    set_command(__file__, argv)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    with tempfile.TemporaryDirectory(prefix="slr-import-") as tmp:
        tmp = Path(tmp)
        ann, input_bytes = make_inputs(tmp / "in", args.samples, args.frames)
        rows = {}
        for workers in sorted({1, cores}):
            rows[workers] = run_import(tmp / "in", ann, tmp / f"out{workers}", workers)
        corpus_bytes = sum(f.stat().st_size for f in (tmp / f"out{cores}").iterdir())
    one, many = rows[1], rows[cores]
    results = dict(samples=args.samples, frames=args.frames, cores=cores, input_mib=input_bytes / MiB,
                   corpus_mib=corpus_bytes / MiB, runs={str(k): v for k, v in rows.items()},
                   speedup=one["seconds"] / many["seconds"])
    save("import_scale", results, Path(args.results) if args.results else None)
    body = f"""## Import at scale (streaming, all cores)

{args.samples} NumPy recordings of ~{args.frames} frames (`[T, 543, 3]` float32, 4 % points missing):
{input_bytes / MiB:,.0f} MiB of input -> a {corpus_bytes / MiB:,.0f} MiB corpus (fp16 + mask).

| reader processes | wall time | samples/s | peak RSS, importer | peak RSS, largest reader |
|---|---|---|---|---|
| 1 (in process) | {one['seconds']:.1f} s | {one['samples'] / one['seconds']:.0f} | {one['self_kib'] / 1024:.0f} MiB | - |
| {cores} | {many['seconds']:.1f} s | {many['samples'] / many['seconds']:.0f} | {many['self_kib'] / 1024:.0f} MiB | {many['children_kib'] / 1024:.0f} MiB |

Speed-up with {cores} readers: **{results['speedup']:.2f}x**. Readers parse, resample, check and encode (fp16 +
mask) each recording; the single writer only receives the encoded arrays and appends them, and for `.npy`
input (cheap to parse) that serial share bounds the speed-up. Peak memory stays far below the input size: the
readers work a bounded window ({4 * cores} recordings) ahead of the single writer, which appends one Arrow
record batch per sample; only per-sample metadata is kept in memory. At PHOENIX-2014 scale (~6,800 x ~140
frames, ~5.8 GiB as float32 `.npy`) the same window applies."""
    write_section(Path(args.doc), "import_scale", body)
    print(body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
