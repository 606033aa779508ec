"""Sweep goodput, from a finished sweep's own records (summary.json + each trial's result.json):

- per trial: time inside train/eval steps / trial wall time (from the trial's start to its last report);
- per sweep: sweep wall time / ideal, ideal = total trial compute / concurrent slots.

    slr sweep experiments/quickstart.yaml && python -m benchmarks.goodput sweeps/quickstart
    # side by side: the same sweep with a fresh worker process per trial
    slr sweep experiments/quickstart.yaml name=qs_noreuse reuse_workers=false
    python -m benchmarks.goodput sweeps/quickstart sweeps/qs_noreuse
Writes benchmarks/results/goodput.json and a section of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import yaml

from benchmarks._common import ROOT, save, set_command, write_section


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
    return dict(sweep=summary["sweep"], reuse_workers=bool(spec.get("reuse_workers", True)), trials=trials,
                slots=slots, goodput=sum(t["busy"] for t in trials) / compute, ideal_seconds=ideal, trials_span_seconds=last - first, sweep_wall_seconds=summary["wall_seconds"],
                span_over_ideal=(last - first) / ideal, wall_over_ideal=summary["wall_seconds"] / ideal)


def _label(r: dict) -> str:
    return f"`{r['sweep']}` ({'workers reused' if r['reuse_workers'] else 'a fresh process per trial'})"


def render(runs: list[dict]) -> str:
    """The first sweep is the headline (held to the targets); any others are columns beside it."""
    r = runs[0]

    def row(name: str, fmt, target: str = "") -> str:  # noqa: ANN001
        return f"| {name} | " + " | ".join(fmt(x) for x in runs) + f" | {target} |"
    ratio = "" if len(runs) < 2 else (f"\n\nSweep wall time {_label(r)} / {_label(runs[1])}: "
                                      f"**{r['sweep_wall_seconds'] / runs[1]['sweep_wall_seconds']:.2f}x**, one "
                                      "after the other on the same machine, same corpus, searcher seed and trials.")
    return f"""## Sweep goodput (`{r['sweep']}` sweep, {len(r['trials'])} trials, {r['slots']} at a time)

| measure | {' | '.join(_label(x) for x in runs)} | target |
|---|{'---|' * len(runs)}---|
{row("time in train/eval steps / trial wall time (all trials)", lambda x: f"**{100 * x['goodput']:.1f} %**", ">= 95 %")}
{row("first trial start -> last trial end / ideal", lambda x: f"**{x['span_over_ideal']:.2f}x**", "<= 1.1x")}
{row("sweep wall time (driver: Ray start-up, trials, summary) / ideal", lambda x: f"{x['wall_over_ideal']:.2f}x")}
{row("ideal = total trial wall time / concurrent slots", lambda x: f"{x['ideal_seconds']:.0f} s")}
{row("trials spanned", lambda x: f"{x['trials_span_seconds']:.0f} s")}
{row("the driver's `fit()`", lambda x: f"{x['sweep_wall_seconds']:.0f} s")}

Trial wall time runs from the trial function's start (after Ray placed it and, without reuse, a fresh process
imported torch) to its last report; the gap to the step time is model/data setup, standardization fitting,
checkpoint writes and reporting. Time between trials (a new worker process starting) counts against the span,
not against goodput.{ratio}"""


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("sweep_dirs", nargs="*", default=[str(ROOT / "sweeps" / "quickstart")],
                   help="finished sweeps; the first is held to the targets, any others are shown beside it")
    p.add_argument("--doc", default=str(ROOT / "docs" / "benchmarks.md"))
    p.add_argument("--results", default=None)
    args = p.parse_args(argv)
    set_command(__file__, argv)
    runs = [analyze(Path(d)) for d in args.sweep_dirs]
    save("goodput", {**runs[0], "compared": runs[1:]}, Path(args.results) if args.results else None)
    body = render(runs)
    write_section(Path(args.doc), "goodput", body)
    print(body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
