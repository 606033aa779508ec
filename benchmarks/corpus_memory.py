"""Corpus memory with N trials on a node: every trial memory-maps the same Arrow file, so the landmarks
live once in the page cache whatever N is. Measures each reader process's PSS and USS (Linux
/proc/PID/smaps_rollup) after it has read every sample, for N = 1, 2, 4 concurrent readers.

    python -m benchmarks.corpus_memory --corpus corpora/quickstart
Writes benchmarks/results/corpus_memory.json and a section of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import sys
from pathlib import Path

from benchmarks._common import ROOT, save, set_command, write_section

MiB = 2**20


def _rollup(pid: int) -> dict[str, int]:
    """Pss, Rss, Private_* of a process in bytes."""
    out = {}
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()[1:]:
        key, value = line.split(":", 1)
        out[key.strip()] = int(value.split()[0]) * 1024
    return out


def _reader(corpus: str, ready, go, done) -> None:
    """One 'trial': open the corpus and touch every sample (as an epoch does), then wait to be measured."""
    import numpy as np

    from slr.corpus import Corpus
    c = Corpus(corpus)
    total = 0.0
    for s in c.samples:
        xyz, mask = c.load(s)
        total += float(np.asarray(xyz[:, 0, 0], dtype=np.float32).sum()) + float(mask.sum() if mask is not None else 0)
        total += float(xyz.astype(np.float32).max())  # read every value
    ready.set()
    go.wait()
    done.wait()


def measure(corpus: str, n: int) -> dict:
    ctx = mp.get_context("spawn")
    go, done = ctx.Event(), ctx.Event()
    readies = [ctx.Event() for _ in range(n)]
    procs = [ctx.Process(target=_reader, args=(corpus, r, go, done)) for r in readies]
    for p in procs:
        p.start()
    for r in readies:
        r.wait(timeout=600)
    rolls = [_rollup(p.pid) for p in procs]
    go.set()
    done.set()
    for p in procs:
        p.join()
    uss = [r.get("Private_Clean", 0) + r.get("Private_Dirty", 0) for r in rolls]
    return dict(n=n, pss_mib=[r["Pss"] / MiB for r in rolls], uss_mib=[u / MiB for u in uss],
                rss_mib=[r["Rss"] / MiB for r in rolls], total_pss_mib=sum(r["Pss"] for r in rolls) / MiB)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--corpus", default=str(ROOT / "corpora" / "quickstart"))
    p.add_argument("--n", type=int, nargs="+", default=[1, 2, 4])
    p.add_argument("--doc", default=str(ROOT / "docs" / "benchmarks.md"))
    p.add_argument("--results", default=None)
    args = p.parse_args(argv)
    set_command(__file__, argv)
    landmarks = (Path(args.corpus) / "landmarks.arrow").stat().st_size / MiB
    frames = json.loads((Path(args.corpus) / "manifest.json").read_text())["total_frames"]
    fp32_features = frames * 6516 * 4 / MiB  # what storing the derived 6516-d input as fp32 would take
    rows = [measure(args.corpus, n) for n in args.n]
    base = rows[0]["total_pss_mib"]
    save("corpus_memory", dict(corpus=args.corpus, landmarks_mib=landmarks, rows=rows),
         Path(args.results) if args.results else None)
    table = ["| readers N | total PSS | PSS per reader | USS per reader | RSS per reader | total PSS - N=1 |",
             "|---|---|---|---|---|---|"]
    for r in rows:
        table.append(f"| {r['n']} | {r['total_pss_mib']:.0f} MiB | {sum(r['pss_mib']) / r['n']:.0f} MiB | "
                     f"{sum(r['uss_mib']) / r['n']:.0f} MiB | {sum(r['rss_mib']) / r['n']:.0f} MiB | "
                     f"{r['total_pss_mib'] - base:+.0f} MiB |")
    body = (f"## Corpus memory with N trials on a node\n\nEach reader process opens the corpus "
            f"(`landmarks.arrow`: {landmarks:.0f} MiB, fp16 landmarks + mask) and reads every sample, as a trial's "
            "epoch does. RSS counts the shared page-cache pages in every process; PSS divides them among the "
            "processes sharing them; USS is what each process holds alone (Python, torch, its own buffers).\n\n"
            + "\n".join(table) + "\n\nThe landmark file is mapped, not copied: USS per reader stays the size of "
            "the interpreter and libraries, and the growth of total PSS with N is that per-process part, not "
            "the corpus. Temporal features (velocity, acceleration, centered: 4 x 1629 per frame) are derived "
            "on the training device per batch; storing them as fp32 would take "
            f"{fp32_features:.0f} MiB instead of {landmarks:.0f} MiB ({fp32_features / landmarks:.1f}x).")
    write_section(Path(args.doc), "corpus_memory", body)
    print(body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
