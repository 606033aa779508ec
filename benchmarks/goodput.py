"""Sweep goodput, from a finished sweep's own records (summary.json + each trial's result.json):

- per trial: time inside train/eval steps / trial wall time (from the trial's start to its last report);
- per sweep: sweep wall time / ideal, ideal = total trial compute / concurrent slots.

    slr sweep experiments/quickstart.yaml && python benchmarks/goodput.py sweeps/quickstart
Writes benchmarks/results/goodput.json and a section of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import ROOT, save, set_command, write_section  # noqa: E402


def analyze(sweep_dir: Path) -> dict:
    summary = json.loads((sweep_dir / "summary.json").read_text())
    spec = yaml.safe_load((sweep_dir / "experiment.yaml").read_text())
    trials = []
    for t in summary["trials"]:
        reports = [json.loads(x) for x in (Path(t["path"]) / "result.json").read_text().splitlines() if x.strip()]
        if not reports:
            continue
        # attempts: a restarted trial has several; sum each attempt's span
        spans: dict[float, float] = {}
        for r in reports:
            spans[r["attempt_start"]] = max(spans.get(r["attempt_start"], 0.0), r["report_time"])
        wall = sum(end - start for start, end in spans.items())
        busy = sum(r["step_seconds"] for r in reports)
        trials.append(dict(trial_id=t["trial_id"], epochs=len(reports), wall=wall, busy=busy,
                           start=min(spans), end=max(spans.values())))
    slots = spec["max_concurrent"]
    compute = sum(t["wall"] for t in trials)
    ideal = compute / slots
    first, last = min(t["start"] for t in trials), max(t["end"] for t in trials)
    return dict(sweep=summary["sweep"], trials=trials, slots=slots, goodput=sum(t["busy"] for t in trials) / compute,
                ideal_seconds=ideal, trials_span_seconds=last - first, sweep_wall_seconds=summary["wall_seconds"],
                span_over_ideal=(last - first) / ideal, wall_over_ideal=summary["wall_seconds"] / ideal)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("sweep_dir", nargs="?", default=str(ROOT / "sweeps" / "quickstart"))
    p.add_argument("--doc", default=str(ROOT / "docs" / "benchmarks.md"))
    p.add_argument("--results", default=None)
    args = p.parse_args(argv)
    set_command(__file__, argv)
    r = analyze(Path(args.sweep_dir))
    save("goodput", r, Path(args.results) if args.results else None)
    body = f"""## Sweep goodput (`{r['sweep']}` sweep, {len(r['trials'])} trials, {r['slots']} at a time)

| measure | value | target |
|---|---|---|
| time in train/eval steps / trial wall time (all trials) | **{100 * r['goodput']:.1f} %** | >= 95 % |
| first trial start -> last trial end / ideal | **{r['span_over_ideal']:.2f}x** | <= 1.1x |
| sweep wall time (driver: Ray start-up, trials, summary) / ideal | {r['wall_over_ideal']:.2f}x | |

Ideal = total trial wall time / concurrent slots = {r['ideal_seconds']:.0f} s; trials spanned
{r['trials_span_seconds']:.0f} s; the driver's `fit()` took {r['sweep_wall_seconds']:.0f} s. Trial wall time runs from
the trial function's start (after Ray placed it and the process imported torch) to its last report; the gap to the
step time is model/data setup, standardization fitting, checkpoint writes and reporting."""
    write_section(Path(args.doc), "goodput", body)
    print(body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
