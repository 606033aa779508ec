"""A real sweep: local Ray, a real `mlflow server` over HTTP, Optuna in sqlite, real files."""

import gc
import json
import math
import os
from pathlib import Path

import optuna
import pytest
import yaml
from mlflow.tracking import MlflowClient
from ray.tune import Callback

from slr.config import Config
from tune.experiment import from_dict

pytestmark = [pytest.mark.slow, pytest.mark.integration]


def _spec(corpus, storage, tracking_uri, name="itest", **changes):
    raw = dict(
        name=name, corpus={"path": str(corpus)}, num_trials=5, max_concurrent=1, storage_path=str(storage),
        config={"data": {"batch_size": 8}, "model": {"dropout": 0.0},
                "train": {"epochs": 4, "warmup_epochs": 0.5, "early_stopping_patience": 0}},
        space={"train.learning_rate": {"type": "loguniform", "low": 1e-5, "high": 1e-2},
               "model.num_blocks": {"type": "int", "low": 1, "high": 3}},
        searcher={"algorithm": "random", "seed": 3},
        scheduler={"type": "asha", "grace_period": 1, "reduction_factor": 3},
        mlflow={"tracking_uri": tracking_uri},
    )
    raw.update(changes)
    return from_dict(raw)


SECRET = "slr-test-not-a-real-aws-secret-4f1c9e"


class FrozenWhenResultsArrive(Callback):
    """The driver's frozen objects (gc.get_freeze_count) and the collector's thresholds as each result reaches it."""
    seen: list[int] = []
    thresholds: set[tuple[int, int, int]] = set()

    def on_trial_result(self, iteration, trials, trial, result, **info):
        self.seen.append(gc.get_freeze_count())
        self.thresholds.add(gc.get_threshold())


@pytest.fixture(scope="module")
def finished_sweep(tiny_corpus, tmp_path_factory, mlflow_server, ray_local):
    from tune.sweep import run_sweep
    os.environ["AWS_SECRET_ACCESS_KEY"] = SECRET  # as on a cluster node: must never be logged
    storage = tmp_path_factory.mktemp("sweeps")
    spec = _spec(tiny_corpus, storage, mlflow_server)
    return spec, run_sweep(spec, verbose=0, extra_callbacks=(FrozenWhenResultsArrive(),))


def test_the_driver_handles_results_with_its_imported_modules_out_of_the_garbage_collectors_way(finished_sweep):
    """A full collection walks every object the collector tracks while results wait: the modules the driver
    imported are frozen before the experiment (tune.sweep.frozen_heap) and thawed after it; meanwhile the
    collector runs less often (full collections: 172 to 2 in 1,000 asks), and its thresholds are put back after."""
    from tune.sweep import DRIVER_GC_THRESHOLDS
    assert FrozenWhenResultsArrive.seen and min(FrozenWhenResultsArrive.seen) > 100_000
    assert FrozenWhenResultsArrive.thresholds == {DRIVER_GC_THRESHOLDS} != {gc.get_threshold()}
    assert gc.get_freeze_count() == 0


def test_child_runs_equal_trials_under_one_parent(finished_sweep, mlflow_server):
    spec, summary = finished_sweep
    client = MlflowClient(mlflow_server)
    exp = client.get_experiment_by_name("itest")
    runs = client.search_runs([exp.experiment_id], max_results=100)
    parents = [r for r in runs if r.data.tags.get("slr.role") == "sweep"]
    children = [r for r in runs if r.data.tags.get("slr.role") == "trial"]
    assert len(parents) == 1 and summary["mlflow"]["parent_run_id"] == parents[0].info.run_id
    assert len(children) == spec.num_trials == summary["num_trials"]
    assert {c.data.tags["mlflow.parentRunId"] for c in children} == {parents[0].info.run_id}
    assert len({c.data.tags["slr.trial_id"] for c in children}) == spec.num_trials
    # parent artifacts: best config, trials CSV, summary; and the best dev WER metric
    names = {a.path for a in client.list_artifacts(parents[0].info.run_id)}
    assert {"best_config.yaml", "trials.csv", "summary.json"} <= names
    assert parents[0].data.metrics["best_dev_wer"] == pytest.approx(summary["best_dev_wer"])


def test_runs_are_named_for_people_and_carry_the_corpus_as_their_dataset(finished_sweep, mlflow_server,
                                                                         tiny_corpus):
    from slr.corpus import Corpus
    from tune.tracking import run_name
    spec, summary = finished_sweep
    client = MlflowClient(mlflow_server)
    runs = client.search_runs([summary["mlflow"]["experiment_id"]], max_results=100)
    parent = next(r for r in runs if r.data.tags.get("slr.role") == "sweep")
    children = sorted((r for r in runs if r.data.tags.get("slr.role") == "trial"), key=lambda r: r.info.run_name)
    assert parent.info.run_name == "itest"
    # t01..t05 in the order trials started, then each searched value as it was drawn
    assert [c.info.run_name.split()[0] for c in children] == [f"t{i:02d}" for i in range(1, spec.num_trials + 1)]
    for c in children:
        values = {k: float(c.data.params[k]) if k == "train.learning_rate" else int(c.data.params[k])
                  for k in ("train.learning_rate", "model.num_blocks")}
        assert sorted(c.info.run_name.split()[1:]) == sorted(run_name("", values).split()), c.info.run_name
    digest = Corpus(tiny_corpus).digest()
    for run in (parent, *children):
        inputs = client.get_run(run.info.run_id).inputs.dataset_inputs
        assert len(inputs) == 1, run.info.run_name
        dataset = inputs[0].dataset
        assert (dataset.name, dataset.digest, dataset.source) == ("tiny", digest, str(Path(tiny_corpus).resolve()))
        assert json.loads(dataset.profile)["samples"] == {"train": 64, "dev": 16, "test": 16}
        assert {(t.key, t.value) for t in inputs[0].tags} == {("mlflow.data.context", "training")}


def test_every_trial_run_has_its_system_metrics_per_epoch(finished_sweep, mlflow_server):
    spec, summary = finished_sweep
    client = MlflowClient(mlflow_server)
    runs = client.search_runs([summary["mlflow"]["experiment_id"]], "tags.`slr.role` = 'trial'", max_results=100)
    for run in runs:
        epochs = [m.step for m in client.get_metric_history(run.info.run_id, "dev_wer")]
        for key in ("system/trial_cpu_percentage", "system/trial_memory_megabytes",
                    "system/system_memory_usage_percentage"):
            history = client.get_metric_history(run.info.run_id, key)
            assert sorted(m.step for m in history) == sorted(epochs), (run.info.run_name, key)
        memory = [m.value for m in client.get_metric_history(run.info.run_id, "system/trial_memory_megabytes")]
        assert all(50 < mb < 24_000 for mb in memory)  # a trainer's resident memory: torch alone is ~300 MB


def test_every_reported_epoch_is_in_mlflow_once(finished_sweep, mlflow_server):
    spec, summary = finished_sweep
    client = MlflowClient(mlflow_server)
    for trial in summary["trials"]:
        run = [r for r in client.search_runs([summary["mlflow"]["experiment_id"]],
                                             f"tags.`slr.trial_id` = '{trial['trial_id']}'")][0]
        steps = [m.step for m in client.get_metric_history(run.info.run_id, "dev_wer")]
        assert steps == list(range(1, trial["epochs"] + 1))
        assert run.data.params["train.learning_rate"] == str(trial["params"]["train.learning_rate"])
        assert run.data.params["model.lstm_layers"] == "1"  # the full resolved config, not only searched keys
        assert run.data.tags["slr.status"] == trial["status"]
        assert "slr.asha_rung" in run.data.tags
        assert "config.yaml" in {a.path for a in client.list_artifacts(run.info.run_id)}


def test_asha_stops_trials_and_optuna_records_them_as_pruned(finished_sweep):
    spec, summary = finished_sweep
    stopped = summary["trials_by_status"]["stopped-by-asha"]
    assert stopped >= 1
    study = optuna.load_study(study_name=spec.name, storage=spec.optuna_storage)
    states = [t.state for t in study.trials]
    assert states.count(optuna.trial.TrialState.PRUNED) == stopped
    assert states.count(optuna.trial.TrialState.COMPLETE) == summary["trials_by_status"]["completed"]
    for t in study.trials:
        if t.state == optuna.trial.TrialState.PRUNED:
            assert t.intermediate_values  # its per-epoch values were reported before it was stopped
    if summary["trials_by_status"]["completed"]:
        assert study.best_trial.state == optuna.trial.TrialState.COMPLETE  # early values never win


def test_seed_baseline_is_the_first_trial(finished_sweep):
    spec, _ = finished_sweep
    first = optuna.load_study(study_name=spec.name, storage=spec.optuna_storage).trials[0]
    assert first.params == {"train.learning_rate": 3e-4, "model.num_blocks": 3}  # 6 blocks clipped to the range
    assert first.user_attrs.get("baseline") is True


def test_trial_folders_have_rays_result_logs_and_no_tensorboard_files_by_default(finished_sweep):
    """tensorboard: false (the default): no event files, and none of their flushes on the driver's loop
    (tune.callbacks.tensorboard_logger); the logs the summary and the report read are there."""
    _, summary = finished_sweep
    for trial in summary["trials"]:
        folder = Path(trial["path"])
        assert (folder / "result.json").exists() and (folder / "progress.csv").exists()
        assert not list(folder.glob("events.out.tfevents*")), folder


def test_best_trial_is_chosen_by_its_best_epoch(finished_sweep):
    _, summary = finished_sweep
    best = min((t for t in summary["trials"] if not math.isnan(t["best_dev_wer"])), key=lambda t: t["best_dev_wer"])
    assert summary["best_trial_id"] == best["trial_id"]
    assert summary["best_dev_wer"] == pytest.approx(best["best_dev_wer"])


def test_export_then_retrain_reproduces_the_dev_wer(finished_sweep, tmp_path):
    """The README's retrain command, as a user runs it (a fresh process, nothing set by the test): the trial's run
    again, the same dev WER at every epoch, because best.yaml records the trial's thread count."""
    import subprocess
    import sys
    from tune.export import export_best
    spec, summary = finished_sweep
    out = export_best(spec.sweep_dir, tmp_path / "best.yaml")
    doc = out.read_text()
    assert "provenance:" in doc and summary["best_trial_id"] in doc
    cfg = Config.load(out)
    assert cfg.train.learning_rate == pytest.approx(summary["best_params"]["train.learning_rate"])
    assert cfg.model.lstm_layers == 1 and cfg.data.corpus  # complete config
    assert cfg.train.num_threads == 1  # the trial's CPUs (resources.cpu: 1)
    provenance = yaml.safe_load(doc)["provenance"]
    import torch
    assert provenance["machine"]["torch"] == torch.__version__ and provenance["machine"]["cpu_capability"]
    assert "exactly" in provenance["reproduces"]
    slr = Path(sys.executable).with_name("slr")
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    run = subprocess.run([str(slr), "train", "--config", str(out), "--out", str(tmp_path / "run"), "--quiet"],
                         capture_output=True, text=True, env=env, timeout=600)
    assert run.returncode == 0, run.stderr
    assert "warning" not in run.stderr  # same machine: nothing to warn about
    retrained = [json.loads(x)["dev_wer"] for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    trial = [p["dev_wer"] for p in json.loads((spec.sweep_dir / "curves.json").read_text())[summary["best_trial_id"]]]
    assert trial and retrained[: len(trial)] == trial  # bit for bit, every epoch the trial ran


def test_retrain_warns_when_the_machine_differs(finished_sweep, tmp_path):
    from tune.export import export_best
    spec, _ = finished_sweep
    out = export_best(spec.sweep_dir, tmp_path / "best.yaml")
    doc = yaml.safe_load(out.read_text())
    doc["provenance"]["machine"]["torch"] = "0.0.1"
    doc["train"]["epochs"] = 1
    out.write_text(yaml.safe_dump(doc))
    import subprocess
    import sys
    slr = Path(sys.executable).with_name("slr")
    run = subprocess.run([str(slr), "train", "--config", str(out), "--out", str(tmp_path / "run"), "--quiet"],
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 0 and "warning" in run.stderr and "torch 0.0.1 (run)" in run.stderr, run.stderr


def test_status_reads_the_sweep_storage(finished_sweep, capsys):
    from tune.cli import status
    spec, summary = finished_sweep
    assert status(str(spec.sweep_dir), "unused") == 0
    out = capsys.readouterr().out
    assert "stopped-by-asha" in out and "completed" in out and "best dev WER so far" in out


def test_existing_sweep_needs_resume(finished_sweep):
    from tune.sweep import run_sweep
    spec, _ = finished_sweep
    with pytest.raises(FileExistsError, match="--resume"):
        run_sweep(spec)


def test_report_has_every_plot_and_is_logged_to_the_parent_run(finished_sweep, mlflow_server, tmp_path):
    from tune.report import make_report
    spec, summary = finished_sweep
    page = make_report(spec.sweep_dir, tmp_path / "report")
    text = page.read_text()
    for alt in ("hyperparameter axis plots", "learning curves", "trial outcomes"):
        assert f'alt="{alt}" src="data:image/png;base64,' in text  # self-contained
    assert "Parameter importance" in text and ("fANOVA" in text or "needs at least 2 completed" in text
                                               or "needs completed trials whose results differ" in text)
    assert f"{100 * summary['best_dev_wer']:.2f} %" in text
    assert "slr train --config best.yaml" in text
    for png in ("params.png", "curves.png", "outcomes.png"):
        assert (tmp_path / "report" / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    client = MlflowClient(mlflow_server)
    logged = {a.path for a in client.list_artifacts(summary["mlflow"]["parent_run_id"], "report")}
    assert "report/index.html" in logged and "report/curves.png" in logged


def test_report_warns_when_the_best_trials_sit_on_a_range_edge(finished_sweep):
    from tune.report import boundary_warnings
    spec, summary = finished_sweep
    low = spec.space["train.learning_rate"].low
    edge = {**summary, "trials": [dict(t, best_dev_wer=0.1 * i, params={**t["params"], "train.learning_rate": low})
                                  for i, t in enumerate(summary["trials"])]}
    warnings = boundary_warnings(spec, edge)
    assert any(w.startswith("train.learning_rate") and "lower edge" in w for w in warnings)
    middle = {**summary, "trials": [dict(t, best_dev_wer=0.1 * i, params={**t["params"], "train.learning_rate": 1e-3,
                                                                           "model.num_blocks": 2})
                                    for i, t in enumerate(summary["trials"])]}
    assert boundary_warnings(spec, middle) == []


NAME_CELL = "[role=gridcell][col-id='attributes.`Run Name`']"


def _chromium() -> str:
    import shutil
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    assert path, "the browser test needs Chromium: `apt-get install chromium` (scripts/test.sh installs it)"
    return path


def test_mlflow_ui_in_a_real_browser(finished_sweep, mlflow_server, tmp_path):
    """Headless Chromium on the real MLflow UI: the sweep's parent run with its trials nested under it,
    the compare view of the trials, and their dev WER chart."""
    from playwright.sync_api import sync_playwright
    spec, summary = finished_sweep
    exp_id = summary["mlflow"]["experiment_id"]
    # the trial runs' names as the UI shows them: "t01 lr=3.0e-4 blocks=3", ...
    trial_names = sorted(r.info.run_name for r in MlflowClient(mlflow_server).search_runs(
        [exp_id], "tags.`slr.role` = 'trial'", max_results=100))
    assert len(trial_names) == len(summary["trials"])
    shots = tmp_path / "screenshots"
    shots.mkdir()
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=_chromium(), args=["--no-sandbox", "--disable-gpu"])
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            page.goto(f"{mlflow_server}/#/experiments/{exp_id}/runs")
            names = page.locator(NAME_CELL)
            names.first.wait_for(timeout=60_000)
            assert [n.split("\n")[-1] for n in names.all_inner_texts()] == [spec.name]  # trials folded under it
            names.filter(has_text=spec.name).locator("button[data-component-id*=runnamecellrenderer]").click()
            page.wait_for_function(f"document.querySelectorAll(\"{NAME_CELL}\").length > {len(trial_names)}")
            shown = [n.split("\n")[-1] for n in names.all_inner_texts()]
            assert shown[0] == spec.name and sorted(shown[1:]) == trial_names
            page.screenshot(path=str(shots / "runs.png"))

            rows = page.locator("[role=row]").filter(has=page.locator(NAME_CELL))
            for i in range(rows.count()):
                if rows.nth(i).locator(NAME_CELL).inner_text().split("\n")[-1] != spec.name:
                    rows.nth(i).locator("input.ag-checkbox-input").click(force=True)
            page.get_by_role("button", name="Compare").click()
            page.get_by_text(f"Comparing {len(trial_names)} Runs").first.wait_for(timeout=60_000)
            body = page.inner_text("body")
            assert all(t in body for t in trial_names) and "dev_wer" in body
            page.screenshot(path=str(shots / "compare.png"), full_page=True)

            page.get_by_role("link", name="dev_wer", exact=True).first.click()
            page.locator(".js-plotly-plot").first.wait_for(timeout=60_000)
            best = summary["best_dev_wer"]
            shown_best = f"{int(best) if float(best).is_integer() else best} (step={summary['best_epoch']})"
            page.get_by_text(shown_best).first.wait_for(timeout=30_000)  # the chart's table: the best trial's min
            page.screenshot(path=str(shots / "dev_wer.png"))
        finally:
            browser.close()
    assert all((shots / f).stat().st_size > 10_000 for f in ("runs.png", "compare.png", "dev_wer.png"))


def test_no_secret_reaches_mlflow_or_the_sweep_files(finished_sweep, mlflow_server):
    """Params are the resolved config only: no environment value (keys, tokens) is logged anywhere."""
    spec, summary = finished_sweep
    secrets = [SECRET]
    token_file = Path.home() / ".ray" / "auth_token"
    if token_file.exists():
        secrets.append(token_file.read_text().strip())
    client = MlflowClient(mlflow_server)
    runs = client.search_runs([summary["mlflow"]["experiment_id"]], max_results=100)
    logged = [str(v) for r in runs for v in (*r.data.params.values(), *r.data.tags.values())]
    files = [p.read_text(errors="ignore") for p in spec.sweep_dir.rglob("*")
             if p.is_file() and p.suffix in (".json", ".yaml", ".csv", ".jsonl", ".txt", ".html")]
    # Ray's own logs too: Ray Tune copies AWS_* into each trial's runtime environment, which the runtime-env
    # agent logs (tune.sweep keeps them out: a local Ray's workers inherit them, cluster nodes have their own)
    import ray
    session = Path(ray._private.worker._global_node.get_session_dir_path())
    ray_logs = [p.read_text(errors="ignore") for p in (session / "logs").rglob("*") if p.is_file()]
    assert any("runtime_env" in p.name for p in (session / "logs").rglob("*")), "the agent's log should be there"
    for secret in secrets:
        assert not any(secret in text for text in logged + files)
        assert not any(secret in text for text in ray_logs), "a secret reached Ray's session logs"


def test_optuna_dashboard_opens_the_sweeps_study(finished_sweep, services, tmp_path):
    """optuna-dashboard on loopback, pointed at the sweep's storage URL, serves the study and its trials."""
    import subprocess
    import sys
    import time
    import urllib.request

    spec, summary = finished_sweep
    port = services.free_port()
    exe = str(Path(sys.executable).parent / "optuna-dashboard")
    proc = subprocess.Popen([exe, spec.optuna_storage, "--host", "127.0.0.1", "--port", str(port)],
                            stdout=open(tmp_path / "dash.log", "ab"), stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline, studies = time.time() + 60, None
        while time.time() < deadline and studies is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/studies", timeout=2) as r:
                    studies = json.loads(r.read())["study_summaries"]
            except OSError:
                time.sleep(0.5)
        assert studies is not None, (tmp_path / "dash.log").read_text()[-2000:]
        (study,) = [s for s in studies if s["study_name"] == spec.name]
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/studies/{study['study_id']}?after=0", timeout=10) as r:
            detail = json.loads(r.read())
        assert len(detail["trials"]) == summary["num_trials"]
        assert {t["state"] for t in detail["trials"]} >= {"Complete", "Pruned"}
    finally:
        services.stop(proc)


def test_export_can_register_the_best_checkpoint(finished_sweep, mlflow_server, tmp_path):
    from tune.export import export_best
    spec, summary = finished_sweep
    out = export_best(spec.sweep_dir, tmp_path / "best.yaml", register="slr-itest-student")
    registered = yaml.safe_load(out.read_text())["provenance"]["registered_model"]
    name, version = registered.split("/")
    client = MlflowClient(mlflow_server)
    mv = client.get_model_version(name, version)
    assert mv.run_id == summary["mlflow"]["best_run_id"]
    files = {a.path for a in client.list_artifacts(mv.run_id, "checkpoint")}
    assert "checkpoint/last.pt" in files  # the best epoch's checkpoint, loadable by slr
    assert client.get_run(mv.run_id).info.status == "FINISHED"  # the winner's run, as it was

    # the registered version is an MLflow Model: loaded back from the server, it gives slr's own log-probs
    import mlflow
    import numpy as np
    import torch

    from slr.corpus import Corpus
    from slr.data import SignDataset, collate
    from slr.evaluate import load_model, log_probs_of
    from tune.summary import checkpoint_file
    mlflow.set_tracking_uri(mlflow_server)
    served = mlflow.pyfunc.load_model(f"models:/{name}/{version}")
    cfg, vocab, features, model = load_model(checkpoint_file(Path(summary["best_checkpoint"])))
    batch = collate([SignDataset(Corpus(cfg.data.corpus), "dev", vocab, cfg.data.max_frames)[0]])
    with torch.no_grad():
        x = features(batch.x, batch.point_mask, batch.frame_mask)  # [1, T, D]
        expected = log_probs_of(features, model, batch, torch.device("cpu")).numpy()  # [T, 1, V]
    dim = served.metadata.get_input_schema().inputs[0].shape[-1]  # the columns up to the last one a modality reads
    got = served.predict(x[:, :, :dim].numpy())
    got = got["log_probs"] if isinstance(got, dict) else np.asarray(got)
    assert got.shape == expected.shape and np.allclose(got, expected, atol=1e-4)
    local = Path(mlflow.artifacts.download_artifacts(f"models:/{name}/{version}"))
    assert json.loads((local / "extra_files" / "vocab.json").read_text()) == vocab.to_list()
    layout = json.loads((local / "extra_files" / "features.json").read_text())
    assert layout["input_dim"] == dim and set(layout["modalities"]) == set(model.encoders)


def test_the_registered_model_serves_over_http_as_the_docs_say(finished_sweep, mlflow_server, tmp_path):
    """docs/experiments.md's command: `mlflow models serve -m models:/NAME/VERSION --env-manager local` on
    127.0.0.1; a POST of one sentence's features to /invocations gives slr's own log-probs."""
    import signal
    import subprocess
    import sys
    import time
    import urllib.request

    import numpy as np
    import torch

    from slr.corpus import Corpus
    from slr.data import SignDataset, collate
    from slr.evaluate import load_model, log_probs_of
    from tune.export import export_best
    from tune.summary import checkpoint_file
    spec, summary = finished_sweep
    out = export_best(spec.sweep_dir, tmp_path / "best.yaml", register="slr-itest-served", test_split=False)
    name, version = yaml.safe_load(out.read_text())["provenance"]["registered_model"].split("/")
    import socket
    with socket.socket() as sock:  # a free loopback port
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    mlflow_cli = str(Path(sys.executable).with_name("mlflow"))
    proc = subprocess.Popen([mlflow_cli, "models", "serve", "-m", f"models:/{name}/{version}", "--env-manager",
                             "local", "--host", "127.0.0.1", "-p", str(port)], start_new_session=True,
                            # the server execs `uvicorn`: the environment's bin folder on PATH, as when it is active
                            env={**os.environ, "MLFLOW_TRACKING_URI": mlflow_server,
                                 "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"},
                            stdout=open(tmp_path / "serve.log", "w"), stderr=subprocess.STDOUT)
    try:
        for _ in range(120):
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=2)
                break
            except OSError:
                assert proc.poll() is None, f"mlflow models serve exited:\n{(tmp_path / 'serve.log').read_text()}"
                time.sleep(1)
        else:
            raise AssertionError(f"no answer in 120 s:\n{(tmp_path / 'serve.log').read_text()[-3000:]}")
        cfg, vocab, features, model = load_model(checkpoint_file(Path(summary["best_checkpoint"])))
        batch = collate([SignDataset(Corpus(cfg.data.corpus), "dev", vocab, cfg.data.max_frames)[0]])
        with torch.no_grad():
            x = features(batch.x, batch.point_mask, batch.frame_mask)  # [1, T, D]
            expected = log_probs_of(features, model, batch, torch.device("cpu")).numpy()  # [T, 1, V]
        from slr.onnx_runtime import input_dim
        body = json.dumps({"inputs": {"features": x[:, :, :input_dim(model)].tolist()}}).encode()
        request = urllib.request.Request(f"http://127.0.0.1:{port}/invocations", data=body,
                                         headers={"Content-Type": "application/json"})
        answer = json.loads(urllib.request.urlopen(request, timeout=60).read())["predictions"]
        got = np.asarray(answer["log_probs"] if isinstance(answer, dict) else answer, dtype=np.float32)
        assert got.shape == expected.shape and np.allclose(got, expected, atol=1e-4)
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(30)


def test_report_opens_in_a_real_browser_with_every_plot(finished_sweep, tmp_path):
    from playwright.sync_api import sync_playwright

    from tune.report import make_report
    spec, _ = finished_sweep
    page_path = make_report(spec.sweep_dir, tmp_path / "report", log_to_mlflow=False)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=_chromium(), args=["--no-sandbox", "--disable-gpu"])
        try:
            page = browser.new_page(viewport={"width": 1200, "height": 900})
            page.goto(page_path.as_uri())
            page.get_by_role("heading", name="Learning curves").wait_for(timeout=30_000)
            sizes = page.eval_on_selector_all("img", "imgs => imgs.map(i => [i.alt, i.complete && i.naturalWidth])")
            alts = {alt for alt, width in sizes if width and width > 100}
            assert {"hyperparameter axis plots", "learning curves", "trial outcomes"} <= alts
            page.screenshot(path=str(tmp_path / "report.png"), full_page=True)
        finally:
            browser.close()


def test_the_test_split_is_a_lockbox(finished_sweep, mlflow_server, tmp_path):
    """No trial looks at test; `slr export` scores the winner on it, and every further look is counted and
    recorded (lockbox.json, summary.json, the parent run)."""
    import subprocess
    import sys

    from slr.evaluate import evaluate_checkpoint
    spec, summary = finished_sweep
    for trial in summary["trials"]:  # every report of every trial: train and dev only
        for line in (Path(trial["path"]) / "result.json").read_text().splitlines():
            assert not [k for k in json.loads(line) if k.startswith("test")]
    lockbox = spec.sweep_dir / "lockbox.json"
    before = len(json.loads(lockbox.read_text())["looks"]) if lockbox.exists() else 0

    def export(*extra: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "slr.cli", "export", str(spec.sweep_dir), "--out",
                               str(tmp_path / "best.yaml"), "--force", *extra], capture_output=True, text=True,
                              timeout=600)
    first = export()
    assert first.returncode == 0, first.stderr
    test = yaml.safe_load((tmp_path / "best.yaml").read_text())["provenance"]["test"]
    expected = evaluate_checkpoint(Path(summary["best_checkpoint"]) / "last.pt", summary["corpus"], "test")
    assert test["wer"] == pytest.approx(expected["wer"]) and test["scorer"] == "plain"
    assert {"substitutions", "deletions", "insertions", "words"} <= set(test) and test["looks"] == before + 1
    assert f"looked at {before + 1} time" in first.stdout
    assert json.loads((spec.sweep_dir / "summary.json").read_text())["test"]["looks"] == before + 1
    parent = MlflowClient(mlflow_server).get_run(summary["mlflow"]["parent_run_id"])
    assert parent.data.metrics["test_wer"] == pytest.approx(expected["wer"])
    again = export()
    assert again.returncode == 0 and f"looked at {before + 2} times" in again.stdout and "report the first" in again.stdout
    assert len(json.loads(lockbox.read_text())["looks"]) == before + 2
    quiet = export("--no-test")
    assert quiet.returncode == 0 and "test" not in yaml.safe_load((tmp_path / "best.yaml").read_text())["provenance"]
    assert len(json.loads(lockbox.read_text())["looks"]) == before + 2


def test_decoding_is_tuned_on_cached_posteriors_and_exported(finished_sweep, tmp_path):
    """`slr tune-decode`: the winner's dev posteriors once, a gloss LM from the train split, a real Optuna study over
    beam width, LM weight and bonus whose first trial is the plain beam; the export carries the tuned decoding."""
    import subprocess
    import sys
    spec, summary = finished_sweep
    run = subprocess.run([sys.executable, "-m", "slr.cli", "tune-decode", str(spec.sweep_dir), "--trials", "4"],
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr
    assert "beam + gloss LM" in run.stdout
    r = json.loads((spec.sweep_dir / "decode.json").read_text())
    assert r["dev_wer"] <= r["beam_dev_wer"] and r["method"] == "beam_lm" and Path(r["lm_path"]).exists()
    assert (spec.sweep_dir / "decode_cache.npz").exists() and r["samples"] > 0 and r["lm_dev_perplexity"] > 1
    study = optuna.load_study(study_name=f"{spec.name}-decode", storage=spec.optuna_storage)
    assert len(study.trials) == 4 and study.trials[0].params["lm_weight"] == 0.0
    assert study.best_value == pytest.approx(r["dev_wer"])
    again = subprocess.run([sys.executable, "-m", "slr.cli", "tune-decode", str(spec.sweep_dir), "--trials", "5"],
                           capture_output=True, text=True, timeout=600)  # goes on with the same study
    assert again.returncode == 0 and len(optuna.load_study(study_name=f"{spec.name}-decode",
                                                           storage=spec.optuna_storage).trials) == 5
    from tune.export import export_best
    doc = yaml.safe_load(export_best(spec.sweep_dir, tmp_path / "best.yaml", test_split=False).read_text())
    tuned = json.loads((spec.sweep_dir / "decode.json").read_text())
    assert doc["decode"]["method"] == "beam_lm" and doc["decode"]["lm_weight"] == pytest.approx(tuned["lm_weight"])
    assert doc["provenance"]["decode"]["beam_dev_wer"] == pytest.approx(tuned["beam_dev_wer"])
    (spec.sweep_dir / "decode.json").unlink()  # the other tests export the plain winner


def test_a_sweep_searches_the_architecture_and_trains_both(tiny_corpus, tmp_path, mlflow_server, ray_local):
    """model.arch searched (issue 18): VAC-style and student trials train in one real sweep, each drawing only its
    own architecture's keys (`when:`), each a child run with its per-epoch metrics and its checkpoints."""
    from tune.sweep import run_sweep
    spec = _spec(tiny_corpus, tmp_path, mlflow_server, name="archs", num_trials=4, baseline_first=False,
                 config={"data": {"batch_size": 8}, "model": {"dropout": 0.0},
                         "train": {"epochs": 2, "warmup_epochs": 0.5, "early_stopping_patience": 0}},
                 space={"model.arch": {"type": "choice", "values": ["student", "vac"]},
                        "model.vac.width": {"type": "choice", "values": [32, 64], "when": {"model.arch": "vac"}},
                        "model.num_blocks": {"type": "int", "low": 1, "high": 2, "when": {"model.arch": "student"}}},
                 searcher={"algorithm": "random", "seed": 0}, scheduler={"type": "none"})
    summary = run_sweep(spec, verbose=0)
    assert summary["trials_by_status"]["completed"] == 4
    archs = [t["params"]["model.arch"] for t in summary["trials"]]
    assert sorted(set(archs)) == ["student", "vac"], archs
    for t in summary["trials"]:
        vac = t["params"]["model.arch"] == "vac"
        assert (t["params"]["model.vac.width"] is not None) == vac
        assert (t["params"]["model.num_blocks"] is not None) == (not vac)
        assert t["epochs"] == 2 and 0.0 <= t["best_dev_wer"] <= 1.0 and t["checkpoint"]
        run = MlflowClient(mlflow_server).get_run(t["mlflow_run_id"])
        assert run.data.params["model.arch"] == t["params"]["model.arch"]
        assert len(MlflowClient(mlflow_server).get_metric_history(t["mlflow_run_id"], "dev_wer")) == 2
