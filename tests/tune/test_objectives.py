"""A multi-objective sweep (dev WER against the student's cost): real Ray, the real trainable on the tiny corpus, a
real `mlflow server`, Optuna in sqlite. Each trial measures its costs when it starts; the summary, `slr sweep
status` and the MLflow runs carry them; the Pareto front is the non-dominated trials; `slr export --max-...` takes
the best dev WER within a budget and refuses an impossible one, naming the cheapest trial."""

import json

import pytest
import yaml
from mlflow.tracking import MlflowClient

from slr.cli import main
from tune.experiment import from_dict
from tune.pareto import dominates, oriented

pytestmark = [pytest.mark.slow, pytest.mark.integration]


@pytest.fixture(scope="module")
def mo_sweep(tiny_corpus, tmp_path_factory, mlflow_server, ray_local):
    from tune.sweep import run_sweep
    storage = tmp_path_factory.mktemp("sweeps")
    spec = from_dict(dict(
        name="mo", corpus={"path": str(tiny_corpus)}, num_trials=4, max_concurrent=2, storage_path=str(storage),
        config={"train": {"epochs": 3, "warmup_epochs": 0.5, "early_stopping_patience": 0}},
        space={"model.hidden_dim": {"type": "choice", "values": [16, 64]},
               "model.block_channels": {"type": "choice", "values": [24, 96]}},
        # multi-objective TPE and MO-ASHA (issue 20, items 2 and 3)
        searcher={"algorithm": "tpe", "seed": 1, "n_startup_trials": 2},
        scheduler={"type": "mo-asha", "grace_period": 1, "reduction_factor": 2}, baseline_first=False,
        objectives=[{"metric": "dev_wer", "mode": "min"}, {"metric": "params", "mode": "min"},
                    {"metric": "latency_ms", "mode": "min"}],
        mlflow={"tracking_uri": mlflow_server}))
    return spec, run_sweep(spec, verbose=0)


def test_every_trial_measured_its_costs_and_the_front_is_the_non_dominated_set(mo_sweep):
    spec, summary = mo_sweep
    assert summary["objectives"] == [{"metric": "dev_wer", "mode": "min"}, {"metric": "params", "mode": "min"},
                                     {"metric": "latency_ms", "mode": "min"}]
    rows = summary["trials"]
    assert len(rows) == 4 and all(set(r["costs"]) == {"params", "latency_ms"} for r in rows)
    assert all(r["costs"]["params"] > 0 and r["costs"]["latency_ms"] > 0 for r in rows)
    by_size = {(r["params"]["model.hidden_dim"], r["params"]["model.block_channels"]): r["costs"]["params"]
               for r in rows}
    assert len(set(by_size.values())) == len(by_size)  # the drawn sizes have their own parameter counts
    point = {r["trial_id"]: oriented([r["best_dev_wer"], r["costs"]["params"], r["costs"]["latency_ms"]],
                                     ["min"] * 3) for r in rows}
    on = {p["trial_id"] for p in summary["pareto"]}
    for r in rows:  # on the front exactly when no trial beats it on every objective
        beaten = any(dominates(point[o], point[r["trial_id"]]) for o in point)
        assert (r["trial_id"] in on) == (not beaten)
    costs = [p["costs"]["params"] for p in summary["pareto"]]
    assert costs == sorted(costs)  # cheapest first


def test_the_study_is_multi_objective_and_told_each_outcome(mo_sweep):
    """One direction per objective; a completed trial is told (best dev WER, params, latency), a trial MO-ASHA
    stopped is PRUNED before the last epoch, as the summary says."""
    import optuna
    spec, summary = mo_sweep
    study = optuna.load_study(study_name=spec.name, storage=spec.optuna_storage)
    assert [d.name for d in study.directions] == ["MINIMIZE"] * 3
    told = {t.user_attrs["ray_trial_id"]: t for t in study.trials}
    for r in summary["trials"]:
        t = told[r["trial_id"]]
        assert t.state.name == {"completed": "COMPLETE", "stopped-by-asha": "PRUNED"}[r["status"]]
        if t.state.name == "COMPLETE":
            assert t.values == pytest.approx([r["best_dev_wer"], r["costs"]["params"], r["costs"]["latency_ms"]])
            assert r["epochs"] == 3
        else:
            assert t.values is None and r["epochs"] < 3


def test_the_child_runs_carry_the_costs(mo_sweep, mlflow_server):
    spec, summary = mo_sweep
    client = MlflowClient(mlflow_server)
    runs = client.search_runs([summary["mlflow"]["experiment_id"]], "tags.`slr.role` = 'trial'")
    assert len(runs) == 4
    by_trial = {r["trial_id"]: r for r in summary["trials"]}
    for run in runs:
        row = by_trial[run.data.tags["slr.trial_id"]]
        assert run.data.metrics["cost_params"] == row["costs"]["params"]
        assert run.data.metrics["cost_latency_ms"] == pytest.approx(row["costs"]["latency_ms"])
        assert len(client.get_metric_history(run.info.run_id, "cost_params")) == 1  # logged once, not per epoch
        assert row["mlflow_run_id"] == run.info.run_id


def test_status_shows_the_front(mo_sweep, capsys):
    spec, summary = mo_sweep
    assert main(["sweep", "status", str(spec.sweep_dir)]) == 0
    out = capsys.readouterr().out
    assert f"Pareto front ({len(summary['pareto'])} trials): dev WER against params, latency_ms" in out
    assert all(p["trial_id"] in out for p in summary["pareto"])


def test_export_under_a_budget_takes_the_best_trial_that_fits_and_names_the_cheapest_when_none_does(
        mo_sweep, tmp_path, capsys):
    spec, summary = mo_sweep
    rows = summary["trials"]
    limit = sorted(r["costs"]["params"] for r in rows)[1]  # the two smallest models fit
    fits = [r for r in rows if r["costs"]["params"] <= limit]
    expected = min(fits, key=lambda r: (r["best_dev_wer"], r["number"]))
    out = tmp_path / "small.yaml"
    assert main(["export", str(spec.sweep_dir), "--out", str(out), "--max-params", str(limit), "--no-test"]) == 0
    doc = yaml.safe_load(out.read_text())
    assert doc["provenance"]["trial_id"] == expected["trial_id"]
    assert doc["provenance"]["budget"] == {"params": limit} and doc["provenance"]["costs"] == expected["costs"]
    assert doc["model"]["hidden_dim"] == expected["params"]["model.hidden_dim"]
    assert doc["provenance"]["mlflow_run_id"] == expected["mlflow_run_id"]
    # plain export keeps choosing the best dev WER
    plain = tmp_path / "best.yaml"
    assert main(["export", str(spec.sweep_dir), "--out", str(plain), "--no-test"]) == 0
    assert yaml.safe_load(plain.read_text())["provenance"]["trial_id"] == summary["best_trial_id"]
    # nothing fits: the error names the cheapest trial
    capsys.readouterr()
    cheapest = min(rows, key=lambda r: r["costs"]["params"])
    assert main(["export", str(spec.sweep_dir), "--out", str(tmp_path / "none.yaml"), "--max-params", "10",
                 "--no-test"]) != 0
    err = capsys.readouterr().err
    assert "params <= 10" in err and cheapest["trial_id"] in err and not (tmp_path / "none.yaml").exists()
    # a cost the sweep did not measure
    assert main(["export", str(spec.sweep_dir), "--out", str(tmp_path / "m.yaml"), "--max-mflops", "5",
                 "--no-test"]) != 0
    assert "measured no mflops" in capsys.readouterr().err
    assert json.loads((spec.sweep_dir / "summary.json").read_text())["best_trial_id"] == summary["best_trial_id"]


def test_the_report_and_the_parent_run_show_the_front(mo_sweep, mlflow_server):
    import csv

    from tune.report import make_report
    spec, summary = mo_sweep
    page = make_report(spec.sweep_dir, log_to_mlflow=False).read_text()
    assert "Pareto front: dev WER against params, latency_ms" in page and "params (parameters)" in page
    assert all(p["trial_id"] in page for p in summary["pareto"])
    assert (spec.sweep_dir / "report" / "pareto.png").stat().st_size > 5_000
    client = MlflowClient(mlflow_server)
    parent = summary["mlflow"]["parent_run_id"]
    assert "pareto.csv" in {a.path for a in client.list_artifacts(parent)}
    rows = list(csv.DictReader(open(client.download_artifacts(parent, "pareto.csv", str(spec.sweep_dir / "dl")))))
    assert len(rows) == 4 and {r["trial_id"] for r in rows if r["on_front"] == "1"} == \
        {p["trial_id"] for p in summary["pareto"]}
    assert all(float(r["params"]) > 0 for r in rows)
