"""The README's MLflow screenshots, taken from a finished sweep in the real UI (so they stay true when it changes).

    .venv/bin/python scripts/mlflow_screenshots.py sweeps/quickstart --out docs/images

Starts ``mlflow server`` on 127.0.0.1 (a free port) over the sweep's own tracking store, drives the system's
Chromium headless (playwright) in the UI's "Model training" view with the assistant panel closed, and writes:

- ``mlflow-sweep-runs.png``: the runs table, the sweep's parent run expanded to its trials, with the columns
  best_dev_wer, slr.status and the searched parameters;
- ``mlflow-compare.png``: the compare view of the trials, a parallel-coordinates plot of the searched parameters
  against best_dev_wer;
- ``mlflow-dev-wer.png``: every trial's dev WER per epoch.

Before it saves anything it checks, on the page's text, that the runs table shows the sweep's best dev WER from
``summary.json``. The server is stopped by its process id. Needs Chromium (``apt-get install chromium``) and the
``test`` extra (playwright); not part of the test suite (it needs a finished sweep).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

NAME_CELL = "[role=gridcell][col-id='attributes.`Run Name`']"
FILES = ("mlflow-sweep-runs.png", "mlflow-compare.png", "mlflow-dev-wer.png")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def mlflow_server(tracking_uri: str):  # noqa: ANN201 -- yields the server's URL
    """``mlflow server`` on 127.0.0.1 over ``tracking_uri``, stopped (its process group) on exit."""
    port = _free_port()
    mlflow = Path(sys.executable).with_name("mlflow")
    log = tempfile.TemporaryFile()
    proc = subprocess.Popen([str(mlflow), "server", "--backend-store-uri", tracking_uri, "--host", "127.0.0.1",
                             "--port", str(port), "--workers", "1"], stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(120):
            try:
                urllib.request.urlopen(f"{url}/health", timeout=2)
                break
            except OSError:
                if proc.poll() is not None:
                    log.seek(0)
                    raise RuntimeError(f"mlflow server exited:\n{log.read().decode()[-2000:]}") from None
                time.sleep(1)
        else:
            raise RuntimeError(f"mlflow server on {url} did not answer in 120 s")
        yield url
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)


def _chromium() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if not path:
        raise SystemExit("needs Chromium: apt-get install chromium")
    return path


def _tick_columns(page, labels: list[str]) -> None:  # noqa: ANN001 -- a playwright Page
    """In the runs table's column selector, toggle each label's checkbox."""
    page.get_by_role("button", name="Columns", exact=True).click()
    for label in labels:
        node = page.locator(".du-bois-light-tree-treenode").filter(has=page.locator(f"[title='{label}']"))
        node.locator(".du-bois-light-tree-checkbox").first.click()
    page.keyboard.press("Escape")


def _choose(page, label: str, wanted: list[str]) -> None:  # noqa: ANN001 -- a playwright Page
    """In the compare view, the multi-select after ``label`` ("Parameters:", "Metrics:") holds exactly ``wanted``
    (its defaults: the first three parameters, the last-logged metric)."""
    select = page.get_by_text(label, exact=True).first.locator(
        "xpath=following-sibling::div[contains(@class, 'du-bois-light-select')][1]")
    chosen = lambda: select.locator(".du-bois-light-select-selection-item-content").all_inner_texts()  # noqa: E731
    while other := [c for c in chosen() if c not in wanted]:
        item = select.locator(".du-bois-light-select-selection-item").filter(
            has=page.get_by_text(other[0], exact=True))
        item.locator(".du-bois-light-select-selection-item-remove").first.click()
    for name in wanted:
        if name not in chosen():
            select.locator("input").click()
            page.keyboard.type(name)  # the option list is virtual: filter it to the one wanted
            page.locator(f".du-bois-light-select-item-option[title='{name}']").click()
    page.keyboard.press("Escape")


def shoot(sweep_dir: Path, out: Path) -> list[Path]:
    from playwright.sync_api import sync_playwright
    summary = json.loads((sweep_dir / "summary.json").read_text())
    ml = summary["mlflow"]
    exp, sweep, best = ml["experiment_id"], summary["sweep"], summary["best_dev_wer"]
    searched = list(summary["best_params"])
    shots = {name: Path(tempfile.mkdtemp()) / name for name in FILES}  # moved into `out` only once all are taken
    with mlflow_server(ml["tracking_uri"]) as url, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=_chromium(), args=["--no-sandbox", "--disable-gpu"])
        try:
            page = browser.new_page(viewport={"width": 1600, "height": 900})
            page.goto(f"{url}/#/experiments/{exp}/runs?workflowType=machine_learning")
            page.locator(NAME_CELL).first.wait_for(timeout=60_000)
            closing = page.locator("button[aria-label='Close']")  # the assistant panel, when open
            if closing.count():
                closing.first.click()
            parent = page.locator(NAME_CELL).filter(has_text=sweep)
            parent.locator("button[data-component-id*=runnamecellrenderer]").first.click()
            page.wait_for_function(f"document.querySelectorAll(\"{NAME_CELL}\").length > 1")
            _tick_columns(page, ["Dataset", "Source", "Models", "best_dev_wer", "slr.status", *searched])
            page.get_by_text("best_dev_wer", exact=True).first.wait_for(timeout=30_000)
            body = page.inner_text("body")
            if repr(best) not in body and f"{best:.4g}" not in body:
                raise SystemExit(f"the runs table does not show the sweep's best dev WER {best} (summary.json): "
                                 "not saving screenshots of another sweep")
            page.screenshot(path=str(shots[FILES[0]]))

            rows = page.locator("[role=row]").filter(has=page.locator(NAME_CELL))
            picked = 0
            for i in range(rows.count()):
                name = rows.nth(i).locator(NAME_CELL).inner_text().split("\n")[-1]
                if name != sweep and not name.startswith("rerank"):
                    rows.nth(i).locator("input.ag-checkbox-input").click(force=True)
                    picked += 1
            page.get_by_role("button", name="Compare").click()
            page.get_by_text(f"Comparing {picked} Runs").first.wait_for(timeout=60_000)
            page.get_by_text("Model training", exact=True).first.click()
            _choose(page, "Parameters:", searched)
            _choose(page, "Metrics:", ["best_dev_wer"])
            page.locator(".js-plotly-plot").first.wait_for(timeout=60_000)
            time.sleep(2)  # the plot's transition
            page.screenshot(path=str(shots[FILES[1]]))

            page.get_by_role("link", name="dev_wer", exact=True).first.click()
            page.locator(".js-plotly-plot").first.wait_for(timeout=60_000)
            time.sleep(2)
            page.screenshot(path=str(shots[FILES[2]]))
        finally:
            browser.close()
    out.mkdir(parents=True, exist_ok=True)
    return [Path(shutil.move(str(shots[name]), out / name)) for name in FILES]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("sweep", type=Path, help="a finished sweep's folder (e.g. sweeps/quickstart)")
    p.add_argument("--out", type=Path, default=Path("docs/images"))
    args = p.parse_args(argv)
    if not (args.sweep / "summary.json").exists():
        raise SystemExit(f"{args.sweep / 'summary.json'} missing: screenshots are taken of a finished sweep")
    for path in shoot(args.sweep, args.out):
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
