"""Shared by the benchmark scripts: machine facts, JSON results, and a generated section in a docs page.

Each script writes ``benchmarks/results/<name>.json`` and replaces its own section of a markdown page
(between ``<!-- bench:<name> -->`` and ``<!-- /bench:<name> -->``), with the machine and the exact command.
"""

from __future__ import annotations

import json
import os
import platform
import re
import shlex
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def machine() -> dict[str, Any]:
    import torch
    info = dict(python=platform.python_version(), torch=torch.__version__, platform=platform.platform(),
                cpus=len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
                cpu_model=_cpu_model(), torch_threads=torch.get_num_threads(),
                gpu=torch.cuda.get_device_name(0) if torch.cuda.is_available() else None, packages=_packages())
    return info


def _packages() -> dict[str, str]:
    """Versions of the libraries a result depends on: e.g. a newer numpy or Optuna moves TPE's suggestions, so a
    replay reproduces bit for bit only under the same versions."""
    from importlib.metadata import PackageNotFoundError, version
    out = {}
    for name in ("numpy", "scipy", "pandas", "optuna", "ray", "onnxruntime", "mlflow"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            pass
    return out


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


_COMMAND: list[str] = []


def set_command(script: str, argv: list[str] | None) -> None:
    """Record the command line a result came from (``main(argv)`` may be called from Python, not a shell)."""
    _COMMAND[:] = ["-m", f"benchmarks.{Path(script).stem}", *(sys.argv[1:] if argv is None else argv)]


def command() -> str:
    """The command that reproduces a result, run from the repository root."""
    return "python " + shlex.join(_COMMAND or ["-m", f"benchmarks.{Path(sys.argv[0]).stem}", *sys.argv[1:]])


def save(name: str, results: dict[str, Any], out_dir: Path | None = None, compact: bool = False) -> Path:
    """Write ``benchmarks/results/<name>.json``; ``compact``: no indentation (raw per-event data, which indented
    takes several lines per number)."""
    out_dir = out_dir or ROOT / "benchmarks" / "results"
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{name}.json"
    payload = dict(name=name, command=command(), machine=machine(), date=time.strftime("%Y-%m-%d"), **results)
    layout = {"separators": (",", ":")} if compact else {"indent": 2}
    path.write_text(json.dumps(payload, default=float, **layout))
    return path


def write_section(doc: Path, name: str, body: str, measured: dict[str, Any] | None = None) -> None:
    """Replace (or append) this benchmark's section of ``doc``. ``measured``: a saved result (machine, date,
    command) when the section is written on another machine than the one that measured."""
    m = measured["machine"] if measured else machine()
    date = measured["date"] if measured else time.strftime("%Y-%m-%d")
    where = f"{m['cpus']} CPU cores ({m['cpu_model']})" + (f", GPU {m['gpu']}" if m["gpu"] else ", no GPU")
    versions = ", ".join([f"torch {m['torch']}", *(f"{k} {v}" for k, v in m.get("packages", {}).items())])
    block = (f"<!-- bench:{name} -->\n{body.rstrip()}\n\n*Measured {date} on {where}, "
             f"{versions}, with:* `{measured['command'] if measured else command()}`\n<!-- /bench:{name} -->")
    text = doc.read_text() if doc.exists() else ""
    pattern = re.compile(rf"<!-- bench:{re.escape(name)} -->.*?<!-- /bench:{re.escape(name)} -->", re.S)
    text = pattern.sub(lambda _: block, text) if pattern.search(text) else text.rstrip() + "\n\n" + block + "\n"
    doc.parent.mkdir(parents=True, exist_ok=True)
    doc.write_text(text)


def best_of(run, repeats: int) -> float:  # noqa: ANN001 -- a callable
    """The fastest of ``repeats`` timed calls of ``run()`` after one untimed warm-up call, in seconds."""
    times = []
    for _ in range(repeats + 1):
        t0 = time.perf_counter()
        run()
        times.append(time.perf_counter() - t0)
    return min(times[1:])
