"""``slr report SWEEP``: what a finished sweep found, as a self-contained HTML page plus PNGs.

Reads only the sweep folder (summary.json, each trial's result.json, experiment.yaml, the Optuna study)
and logs the page and plots as artifacts of the sweep's parent MLflow run.
"""

from __future__ import annotations

import base64
import html
import json
import math
from pathlib import Path
from typing import Any

import yaml

from tune.experiment import ExperimentSpec, from_dict
from tune.storage import is_uri
from tune.trials import COMPLETED, FAILED, METRIC, STATUSES, STOPPED, asha_milestones, best_first

STATUS_STYLE = {COMPLETED: ("o", "tab:blue"), STOPPED: ("x", "tab:gray"), FAILED: ("v", "tab:red")}
IMPORTANCE_METHOD = "fANOVA (optuna.importance.FanovaImportanceEvaluator, seed 0), completed trials only"


def load_spec(sweep_dir: Path) -> ExperimentSpec:
    """The spec a sweep folder was run with, pointing at that folder wherever it is now."""
    raw = yaml.safe_load((sweep_dir / "experiment.yaml").read_text())
    if not is_uri(raw.get("storage_path", "")):
        raw["storage_path"] = str(sweep_dir.parent)  # where the folder is now, even if it was moved
    return from_dict(raw, source=str(sweep_dir))


def load_sweep(sweep_dir: Path) -> tuple[ExperimentSpec, dict[str, Any], dict[str, list[dict[str, Any]]]]:
    """(spec, summary, trial id -> its per-epoch reports)."""
    summary_path = sweep_dir / "summary.json"
    if not summary_path.exists():
        raise FileNotFoundError(f"{summary_path} missing: the sweep has not finished (see `slr sweep status`)")
    spec = load_spec(sweep_dir)
    summary = json.loads(summary_path.read_text())
    curves_path = sweep_dir / "curves.json"  # written by the sweep; the trial folders may be on S3
    curves = json.loads(curves_path.read_text()) if curves_path.exists() else {}
    for t in summary["trials"]:
        if t["trial_id"] not in curves and t["path"]:  # a sweep summarized before curves.json existed
            path = Path(t["path"]) / "result.json"
            lines = path.read_text().splitlines() if path.exists() else []
            curves[t["trial_id"]] = [json.loads(line) for line in lines if line.strip()]
    return spec, summary, curves


def ranked(summary: dict[str, Any]) -> list[dict[str, Any]]:
    """The summary's trials best first (:func:`tune.trials.best_first`: ties to the trial asked first)."""
    return best_first(summary["trials"], lambda t: t["best_dev_wer"] if _finite(t["best_dev_wer"]) else None,
                      lambda t: t.get("number", math.inf))


def boundary_warnings(spec: ExperimentSpec, summary: dict[str, Any], top: int = 3) -> list[str]:
    """A warning per numeric parameter whose best trials sit within 5 % of an edge of its range."""
    best = ranked(summary)[:top]
    out = []
    for key, p in spec.space.items():
        if p.type == "choice" or not best:
            continue
        lo, hi = (math.log(p.low), math.log(p.high)) if p.is_log else (p.low, p.high)
        pos = [((math.log(v) if p.is_log else v) - lo) / (hi - lo) for v in (t["params"][key] for t in best)]
        for edge, near in (("lower", all(x <= 0.05 for x in pos)), ("upper", all(x >= 0.95 for x in pos))):
            if near:
                out.append(f"{key}: the best {len(best)} trials sit at the {edge} edge of [{p.low:g}, {p.high:g}]; "
                           "widen the range there.")
    return out


def importance(spec: ExperimentSpec) -> dict[str, float] | str:
    """Parameter importance from the Optuna study, or why it cannot be computed."""
    import optuna

    from tune.search import open_study, study_not_here
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    if why := study_not_here(spec):
        return f"is not available here: {why}"
    study = open_study(spec)
    done = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    if len(done) < 2:
        return f"needs at least 2 completed trials (this sweep has {len(done)})"
    # importance for dev WER: a multi-objective study's trials hold each objective's value
    at = [o.metric for o in spec.objectives].index(METRIC) if spec.objectives else 0

    def wer(t: optuna.trial.FrozenTrial) -> float:
        return t.values[at]
    if len({wer(t) for t in done}) == 1:  # fANOVA has no variance to attribute
        return f"needs completed trials whose results differ (all {len(done)} scored {wer(done[0]):g})"
    try:
        return optuna.importance.get_param_importances(
            study, evaluator=optuna.importance.FanovaImportanceEvaluator(seed=0),
            target=wer if spec.objectives else None)
    except (RuntimeError, ValueError) as err:
        return f"not computable: {err}"


def make_report(sweep_dir: Path, out: Path | None = None, log_to_mlflow: bool = True) -> Path:
    """Write ``<out>/index.html`` and its PNGs (default ``<sweep>/report``); returns the HTML path."""
    import matplotlib
    matplotlib.use("Agg")

    spec, summary, curves = load_sweep(sweep_dir)
    out = out or sweep_dir / "report"
    out.mkdir(parents=True, exist_ok=True)
    pngs = {"params": _plot_params(spec, summary, out / "params.png"),
            "curves": _plot_curves(spec, summary, curves, out / "curves.png")}
    imp = importance(spec)
    if isinstance(imp, dict):
        pngs["importance"] = _plot_importance(imp, out / "importance.png")
    pngs["outcomes"] = _plot_outcomes(summary, out / "outcomes.png")
    if summary.get("pareto") is not None:
        pngs["pareto"] = _plot_pareto(summary, out / "pareto.png")
    page = out / "index.html"
    page.write_text(_html(spec, summary, pngs, imp, boundary_warnings(spec, summary), sweep_dir))
    if log_to_mlflow and summary["mlflow"].get("parent_run_id"):
        from mlflow.tracking import MlflowClient
        client = MlflowClient(tracking_uri=summary["mlflow"]["tracking_uri"])
        client.log_artifacts(summary["mlflow"]["parent_run_id"], str(out), artifact_path="report")
    return page


# -- plots ------------------------------------------------------------------------------------------
def _finite(x: Any) -> bool:
    return isinstance(x, (int, float)) and math.isfinite(x)


def _plot_params(spec: ExperimentSpec, summary: dict[str, Any], path: Path) -> Path:
    import matplotlib.pyplot as plt
    keys = list(spec.space)
    fig, axes = plt.subplots(1, len(keys), figsize=(3.6 * len(keys), 3.2), squeeze=False, sharey=True)
    best_id = summary.get("best_trial_id")
    for ax, key in zip(axes[0], keys):
        p = spec.space[key]
        for status, (marker, color) in STATUS_STYLE.items():
            pts = [(t["params"][key], t["best_dev_wer"] if _finite(t["best_dev_wer"]) else 1.05)
                   for t in summary["trials"] if t["status"] == status]
            if pts:
                xs, ys = zip(*pts)
                ax.scatter([str(x) for x in xs] if p.type == "choice" else xs, ys, marker=marker, color=color,
                           label=status)
        for t in summary["trials"]:
            if t["trial_id"] == best_id:
                x = str(t["params"][key]) if p.type == "choice" else t["params"][key]
                ax.scatter([x], [t["best_dev_wer"]], s=160, facecolors="none", edgecolors="tab:green", label="best")
        if p.type != "choice":
            ax.set_xscale("log" if p.is_log else "linear")
            ax.axvspan(p.low, p.high, color="tab:green", alpha=0.04)
        ax.set_xlabel(key)
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("best dev WER (failed: 1.05)")
    axes[0][-1].legend(fontsize=7, loc="best")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def _plot_curves(spec: ExperimentSpec, summary: dict[str, Any], curves: dict[str, list[dict[str, Any]]],
                 path: Path, top: int = 3) -> Path:
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(7, 4))
    order = [t["trial_id"] for t in ranked(summary)]
    for tid, reports in curves.items():
        pts = [(r["epoch"], r["dev_wer"]) for r in reports if _finite(r.get("dev_wer"))]
        if pts and tid not in order[:top]:
            ax.plot(*zip(*pts), color="gray", alpha=0.3, lw=1)
    for rank, tid in enumerate(order[:top]):
        pts = [(r["epoch"], r["dev_wer"]) for r in curves.get(tid, []) if _finite(r.get("dev_wer"))]
        if pts:
            ax.plot(*zip(*pts), marker="o", lw=2, label=f"#{rank + 1} {tid}")
    if spec.scheduler.type != "none":  # asha or mo-asha: the same rungs
        s = spec.scheduler
        for rung in asha_milestones(s.grace_period, s.reduction_factor, spec.max_epochs):
            if rung < spec.max_epochs:  # the budget itself ends every trial: no decision there
                ax.axvline(rung, color="tab:orange", ls="--", lw=1)
        ax.plot([], [], color="tab:orange", ls="--", label="ASHA rungs")
    ax.set_xlabel("epoch")
    ax.set_ylabel("dev WER")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def _plot_importance(imp: dict[str, float], path: Path) -> Path:
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(6, 0.5 + 0.45 * len(imp)))
    names = list(imp)[::-1]
    ax.barh(names, [imp[n] for n in names], color="tab:blue")
    ax.set_xlabel("importance (fANOVA, completed trials)")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def _plot_outcomes(summary: dict[str, Any], path: Path) -> Path:
    import matplotlib.pyplot as plt
    counts = dict(summary["trials_by_status"])
    states = summary.get("optuna_states", {})
    fig, ax = plt.subplots(figsize=(5, 2.6))
    labels = list(STATUSES)
    total = max(1, sum(counts.get(k, 0) for k in labels))
    ax.bar(labels, [counts.get(k, 0) / total for k in labels], color=[STATUS_STYLE[k][1] for k in labels])
    ax.set_ylabel("fraction of trials")
    ax.set_title(f"{total} trials; Optuna: " + ", ".join(f"{v} {k}" for k, v in sorted(states.items())), fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def _plot_pareto(summary: dict[str, Any], path: Path) -> Path:
    """Dev WER against each cost (its own axis, in its unit): every trial by its outcome, the front joined."""
    import matplotlib.pyplot as plt

    from slr.cost import COSTS
    costs = [o["metric"] for o in summary["objectives"] if o["metric"] in COSTS]
    on = {p["trial_id"] for p in summary["pareto"]}
    fig, axes = plt.subplots(1, len(costs), figsize=(5 * len(costs), 3.6), squeeze=False, sharey=True)
    for ax, cost in zip(axes[0], costs):
        for status, (marker, color) in STATUS_STYLE.items():
            pts = [(t["costs"][cost], 100 * t["best_dev_wer"]) for t in summary["trials"]
                   if t["status"] == status and cost in t.get("costs", {}) and _finite(t["best_dev_wer"])]
            if pts:
                ax.scatter(*zip(*pts), marker=marker, color=color, label=status, alpha=0.8)
        line = sorted((t["costs"][cost], 100 * t["best_dev_wer"]) for t in summary["trials"]
                      if t["trial_id"] in on and cost in t.get("costs", {}))
        if line:
            ax.plot(*zip(*line), color="tab:green", lw=1.5, label="Pareto front")
        ax.set_xlabel(f"{cost} ({COSTS[cost]})")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("best dev WER (%)")
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def _pareto_html(summary: dict[str, Any], pngs: dict[str, Path], esc) -> str:  # noqa: ANN001 -- html.escape
    if summary.get("pareto") is None:
        return ""
    from slr.cost import COSTS
    costs = [o["metric"] for o in summary["objectives"] if o["metric"] in COSTS]
    rows = "".join(f"<tr><td><code>{esc(str(p['trial_id']))}</code></td><td>{esc(p['status'])}</td>"
                   f"<td>{100 * p['best_dev_wer']:.2f} %</td>" + "".join(f"<td>{p['costs'][c]:g}</td>" for c in costs)
                   + "</tr>" for p in summary["pareto"])
    head = "".join(f"<th>{esc(c)} ({esc(COSTS[c])})</th>" for c in costs)
    return (f"<h2>Pareto front: dev WER against {esc(', '.join(costs))}</h2>{_img(pngs['pareto'], 'Pareto front')}"
            "<p>Every trial by its outcome (a trial stopped by ASHA with the dev WER it reached); the green line "
            "joins the trials no other trial beats on every objective. <code>slr export SWEEP --max-"
            f"{esc(costs[0].replace('_', '-'))} X</code> exports the best dev WER within a budget.</p>"
            f"<table><tr><th>trial</th><th>status</th><th>best dev WER</th>{head}</tr>{rows}</table>")


# -- the page ---------------------------------------------------------------------------------------
def _rerank_html(stage: dict[str, Any] | None, esc) -> str:  # noqa: ANN001 -- html.escape
    """The re-ranking stage's table: each candidate's mean and spread over its new seeds, and each run."""
    if not stage:
        return ""
    rows = ""
    for c in stage["candidates"]:
        mean = "-" if c["mean_dev_wer"] is None else f"{100 * c['mean_dev_wer']:.2f} % &plusmn; {100 * c['std_dev_wer']:.2f}"
        runs = ", ".join(f"seed {s}: {'-' if w != w else f'{100 * w:.1f} %'}" for s, w in zip(c["seeds"], c["dev_wers"]))
        won = " (winner)" if c["trial_id"] == stage["winner"] else ""
        rows += f"<tr><td><code>{esc(str(c['trial_id']))}</code>{won}</td><td>{mean}</td><td>{esc(runs)}</td></tr>"
    return (f"<h3>Re-ranked over {stage['seeds']} new training seeds</h3><p>The search's {len(stage['candidates'])} "
            f"best trials trained again ({stage['trial_epochs']} trial-epochs); the winner has the best mean dev WER "
            "(the search's own run, selected for being low, is not in the mean).</p>"
            f"<table><tr><th>trial</th><th>mean dev WER &plusmn; spread</th><th>runs</th></tr>{rows}</table>")


def _img(path: Path, alt: str) -> str:
    data = base64.b64encode(path.read_bytes()).decode()
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'


def _html(spec: ExperimentSpec, summary: dict[str, Any], pngs: dict[str, Path], imp: dict[str, float] | str,
          warnings: list[str], sweep_dir: Path) -> str:
    esc = html.escape
    counts = summary["trials_by_status"]
    n = max(1, summary["num_trials"])
    failed = [t for t in summary["trials"] if t["status"] == FAILED]
    best_cfg = sweep_dir / "best_config.yaml"
    rows = ""
    if best_cfg.exists():
        from slr.config import Config
        flat = Config.load(best_cfg).flat()
        rows = "".join(f"<tr><td>{esc(k)}</td><td>{esc(str(v))}</td>"
                       f"<td>{'searched' if k in spec.space else ''}</td></tr>" for k, v in flat.items())
    imp_html = (_img(pngs["importance"], "parameter importance") + f"<p>Method: {esc(IMPORTANCE_METHOD)}.</p>"
                if isinstance(imp, dict) else f"<p>Parameter importance {esc(imp)}.</p>")
    warn_html = "".join(f'<p class="warn">&#9888; {esc(w)}</p>' for w in warnings)
    best = summary.get("best_dev_wer")
    reproduce = (f"slr export {summary.get('storage') or summary['sweep_dir']} --out best.yaml\nslr train --config best.yaml --out runs/best")
    if best is None:  # every trial failed or none reported a dev WER: nothing to reproduce or export
        best_html = ("<p class=\"warn\">No trial finished with a dev WER: there is no best trial to export. The "
                     "trial outcomes below say why each one ended.</p>")
    else:
        best_html = (f"<p>Dev WER <b>{100 * best:.2f} %</b>: trial <code>{esc(str(summary.get('best_trial_id')))}"
                     f"</code>, epoch {summary.get('best_epoch')}, MLflow run "
                     f"<code>{esc(str(summary['mlflow'].get('best_run_id')))}</code>.</p>"
                     f"<p>Reproduce it:</p><pre>{esc(reproduce)}</pre>")
    best_html += _rerank_html(summary.get("rerank"), esc)
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>Sweep {esc(spec.name)}</title>
<style>body{{font-family:sans-serif;max-width:1100px;margin:2em auto}} img{{max-width:100%}}
table{{border-collapse:collapse}} td,th{{border:1px solid #ccc;padding:2px 8px;font-size:13px}}
.warn{{color:#a60;font-weight:bold}} pre{{background:#f4f4f4;padding:8px}}</style></head><body>
<h1>Sweep <code>{esc(spec.name)}</code></h1>
<p>{summary['num_trials']} trials: {counts.get(COMPLETED, 0)} completed, {counts.get(STOPPED, 0)} stopped
by ASHA ({100 * counts.get(STOPPED, 0) / n:.0f} %), {counts.get(FAILED, 0)} failed
({100 * counts.get(FAILED, 0) / n:.0f} %, infeasible: {len(failed)}). Searcher {esc(spec.searcher.algorithm)},
scheduler {esc(spec.scheduler.type)}, wall time {summary['wall_seconds']:.0f} s.</p>
<h2>Best trial</h2>
{best_html}
{warn_html}
{_pareto_html(summary, pngs, esc)}
<h2>Hyperparameters against best dev WER</h2>{_img(pngs['params'], 'hyperparameter axis plots')}
<p>Circles: completed; crosses: stopped by ASHA; red triangles: failed; green ring: the best trial.</p>
<h2>Learning curves</h2>{_img(pngs['curves'], 'learning curves')}
<h2>Parameter importance</h2>{imp_html}
<h2>Trial outcomes</h2>{_img(pngs['outcomes'], 'trial outcomes')}
<h2>Best config</h2><table><tr><th>key</th><th>value</th><th></th></tr>{rows}</table>
</body></html>
"""
