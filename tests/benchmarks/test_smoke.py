"""Each benchmark script runs end to end on a tiny setting and writes its JSON and its docs section.
(No timing assertions: benchmarks measure, tests only check that they work.)"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _section(doc: Path, name: str) -> str:
    text = doc.read_text()
    assert f"<!-- bench:{name} -->" in text and f"<!-- /bench:{name} -->" in text
    return text.split(f"<!-- bench:{name} -->")[1].split(f"<!-- /bench:{name} -->")[0]


def test_throughput(tiny_corpus, tmp_path):
    from benchmarks import throughput

    from slr.config import Config
    from slr.train import Trainer
    cfg = Config().override({"data.corpus": str(tiny_corpus), "train.epochs": 1, "model.num_blocks": 1})
    Trainer(cfg.override({"data.corpus": str(tiny_corpus)}), out=tmp_path / "run").fit()  # a checkpoint to score in each precision
    doc = tmp_path / "b.md"
    assert throughput.main(["--corpus", str(tiny_corpus), "--steps", "3", "--compile", "--doc", str(doc),
                            "--results", str(tmp_path), "--checkpoint", str(tmp_path / "run" / "best.pt")]) == 0
    r = json.loads((tmp_path / "throughput.json").read_text())
    assert r["train_fps"] > 0 and r["inference_fps"] > 0 and r["loader_fps"] > 0 and 0 < r["rtf_1core"]
    assert "frames/s" in _section(doc, "throughput") and "-m benchmarks.throughput" in r["command"]
    assert r["times_real_time"] == pytest.approx(1 / r["rtf_1core"]) and r["vocab_size"] == 1232
    assert 0 <= r["int8_frame_agreement"] <= 1 and r["model_bytes"] >= 4 * r["parameters"]
    assert 0 <= r["bf16_frame_agreement"] <= 1 and r["bf16_latency_s"] > 0
    section = _section(doc, "throughput")
    assert "x real time" in section
    assert r["compiled_max_abs_diff"] < 1e-3 and r["compiled_times_real_time"] > 0  # compiled = eager's numbers
    assert all(0 <= r[f"{p}_dev_wer"] for p in ("fp32", "bf16", "int8")) and "dev WER of a trained model" in section
    assert "Inference target >= 1000x real time on 1 core: fp32" in section and "fp32 on ONNX Runtime" in section
    # ONNX Runtime runs the same fp32 model: the same greedy labels and dev WER (up to float rounding)
    assert r["onnx_frame_agreement"] > 0.98 and r["onnx_latency_s"] > 0 and 0 <= r["onnx_int8_frame_agreement"] <= 1
    assert abs(r["onnx_dev_wer"] - r["fp32_dev_wer"]) <= 0.01
    # The default model's FLOPs for 250 frames: ~0.80 GFLOP: the seed's ~0.78 (of which the BiLSTM's 0.13, counted
    # once) plus the frame skip's 384 -> 128 linear layer, 2 * 384 * 128 * 250 = 0.025 GFLOP
    assert 0.78e9 < r["model_flops"] < 0.83e9 and r["core_peak_flops"] > 1e9
    assert r["model_floor_s"] == pytest.approx(r["model_flops"] / r["core_peak_flops"])


def test_corpus_memory(tiny_corpus, tmp_path):
    from benchmarks import corpus_memory
    doc = tmp_path / "b.md"
    assert corpus_memory.main(["--corpus", str(tiny_corpus), "--n", "1", "2", "--doc", str(doc),
                               "--results", str(tmp_path)]) == 0
    rows = json.loads((tmp_path / "corpus_memory.json").read_text())["rows"]
    assert [r["n"] for r in rows] == [1, 2] and all(len(r["pss_mib"]) == r["n"] for r in rows)
    assert "total PSS" in _section(doc, "corpus_memory")


def test_sensitivity(tiny_corpus, tmp_path):
    from benchmarks import sensitivity
    doc = tmp_path / "c.md"
    doc.write_text("# corpus\n\n<!-- bench:sensitivity -->\nold\n<!-- /bench:sensitivity -->\n\ntail\n")
    assert sensitivity.main(["--corpus", str(tiny_corpus), "--epochs", "1", "--only", "2", "--doc", str(doc),
                             "--results", str(tmp_path)]) == 0
    text = doc.read_text()
    assert "old" not in text and text.endswith("tail\n") and "seed baseline" in _section(doc, "sensitivity")


def test_goodput_arithmetic(tmp_path):
    from benchmarks import goodput
    sweep = tmp_path / "s"
    sweep.mkdir()
    (sweep / "experiment.yaml").write_text("max_concurrent: 2\n")
    trials = []
    for i, (start, busy) in enumerate([(0.0, 4.5), (0.0, 9.0), (10.0, 4.5)]):
        path = sweep / f"t{i}"
        path.mkdir()
        wall = busy / 0.9  # 90 % of each trial's time in steps
        reports = [dict(epoch=e + 1, attempt_start=start, report_time=start + wall * (e + 1) / 3,
                        step_seconds=busy / 3) for e in range(3)]
        (path / "result.json").write_text("".join(json.dumps(r) + "\n" for r in reports))
        trials.append(dict(trial_id=f"t{i}", path=str(path)))
    (sweep / "summary.json").write_text(json.dumps(dict(sweep="s", wall_seconds=20.0, trials=trials)))
    r = goodput.analyze(sweep)
    assert r["goodput"] == pytest.approx(0.9) and r["reuse_workers"]
    ideal = (5 + 10 + 5) / 2
    assert r["ideal_seconds"] == pytest.approx(ideal) and r["span_over_ideal"] == pytest.approx(15 / ideal)
    # a second sweep (no worker reuse, twice the wall time) is shown beside the first, with the ratio
    other = tmp_path / "other"
    other.mkdir()
    (other / "experiment.yaml").write_text("max_concurrent: 2\nreuse_workers: false\n")
    (other / "summary.json").write_text(json.dumps(dict(sweep="o", wall_seconds=40.0, trials=trials)))
    doc = tmp_path / "b.md"
    assert goodput.main([str(sweep), str(other), "--doc", str(doc), "--results", str(tmp_path)]) == 0
    section = _section(doc, "goodput")
    assert "`s` (workers reused)" in section and "`o` (a fresh process per trial)" in section
    assert "**0.50x**" in section and "| 20 s | 40 s |" in section
    assert json.loads((tmp_path / "goodput.json").read_text())["compared"][0]["sweep"] == "o"


@pytest.mark.ray
def test_search_efficiency_build_and_replay(tiny_corpus, tmp_path, monkeypatch):
    import optuna
    import pandas as pd
    from benchmarks import search_efficiency as se
    table = tmp_path / "table.parquet"
    assert se.main(["build", "--corpus", str(tiny_corpus), "--epochs", "2", "--limit", "2", "--workers", "1",
                    "--table", str(table)]) == 0
    rows = pd.read_parquet(table)
    assert len(rows) == 2 * 2 and set(rows["epoch"]) == {1, 2}  # 2 configurations x 2 epochs, real training
    # a second training seed is added to the same table; the first seed's runs stay as they were
    assert se.main(["build", "--corpus", str(tiny_corpus), "--epochs", "2", "--limit", "2", "--workers", "1",
                    "--table", str(table), "--train-seed", "1"]) == 0
    both = pd.read_parquet(table)
    assert len(both) == 2 * 2 * 2 and sorted(both["train_seed"].unique()) == [0, 1]
    assert both[both["train_seed"] == 0].reset_index(drop=True).equals(rows)
    with pytest.raises(SystemExit, match=r"table.parquet holds 2-epoch runs; adding 3-epoch runs"):
        se.main(["build", "--corpus", str(tiny_corpus), "--epochs", "3", "--limit", "2", "--workers", "1",
                 "--table", str(table), "--train-seed", "2"])
    assert pd.read_parquet(table).equals(both)  # refused before training: the table is untouched
    doc = tmp_path / "b.md"
    monkeypatch.chdir(tmp_path)  # a relative --table: Ray trials run in other folders, so it must be resolved
    assert se.main(["replay", "--table", table.name, "--seeds", "1", "--trials", "3", "--doc", str(doc),
                    "--results", str(tmp_path), "--storage", str(tmp_path / "sweeps"), "--workers", "2"]) == 0
    saved = (tmp_path / "search_efficiency_2ep_grace1.json").read_text()
    assert "\n" not in saved  # compact: the per-report runs would take several lines per number indented
    result = json.loads(saved)
    assert set(result["strategies"]) == set(se.STRATEGIES)
    full = result["runs"]["random, full budget"][0]
    assert full[-1][0] == 3 * 2  # 3 trials x 2 epochs, each reported once
    assert (tmp_path / "search_efficiency_2ep_grace1.png").read_bytes()[:4] == b"\x89PNG"
    section = _section(doc, "search_efficiency_2ep_grace1")
    assert "it reached the target in" in section and "full-budget random search itself in" in section
    # TPE's suggestions move with numpy's and Optuna's versions: the result names the ones it ran under
    optuna_version = result["machine"]["packages"]["optuna"]
    assert optuna_version == optuna.__version__ and f"optuna {optuna_version}" in section
    noise = result["seed_noise"]
    assert noise["seeds"] == [0, 1] and noise["configurations"] == 2 and noise["mean_abs_diff"] >= 0
    assert "One training run's luck" in section and "2 training seeds each" in section
    assert "## Search efficiency (tabular benchmark, 2-epoch table, ASHA grace period 1" in section
    # the section can be rebuilt from the saved JSON alone (no replay): the table it names, the same verdict
    doc.write_text("")
    assert se.main(["render", str(tmp_path / "search_efficiency_2ep_grace1.json"), "--doc", str(doc),
                    "--results", str(tmp_path)]) == 0
    assert _section(doc, "search_efficiency_2ep_grace1").split("*Measured")[0] == section.split("*Measured")[0]


def test_import_scale(tmp_path):
    from benchmarks import import_scale
    doc = tmp_path / "b.md"
    assert import_scale.main(["--samples", "12", "--frames", "20", "--doc", str(doc), "--results", str(tmp_path)]) == 0
    r = json.loads((tmp_path / "import_scale.json").read_text())
    assert all(run["samples"] == 12 for run in r["runs"].values())
    assert "reader processes" in _section(doc, "import_scale")


def test_gpu_renders_a_saved_result_and_says_when_there_is_no_cuda(tmp_path, capsys):
    from benchmarks import gpu
    import torch
    doc = tmp_path / "b.md"
    saved = ROOT / "benchmarks" / "results" / "gpu.json"
    assert gpu.main(["--render", str(saved), "--doc", str(doc)]) == 0
    section = _section(doc, "gpu")
    measured = json.loads(saved.read_text())
    assert measured["machine"]["gpu"] in section  # the machine that measured, not this one
    assert "Packing" in section and "CUDA CTC" in section
    # A focused compile run and earlier full runs are quoted beside the main one, with their own figures.
    results = ROOT / "benchmarks" / "results"
    assert gpu.main(["--render", str(saved), str(results / "gpu_run1.json"), str(results / "gpu_modes.json"),
                     "--doc", str(doc)]) == 0
    section = _section(doc, "gpu")
    later = json.loads((results / "gpu_modes.json").read_text())
    assert later["command"] in section and "torch.compile (dynamic shapes)" in section
    assert "of 2 runs" in section  # the packing verdict counts this run and the quoted earlier one
    if not torch.cuda.is_available():
        assert gpu.main(["--doc", str(doc)]) == 2
        assert "needs a CUDA device" in capsys.readouterr().err


@pytest.mark.ray
def test_gpu_packing_goes_through_ray_fractional_slices(tiny_corpus, tmp_path):
    """k trials as Ray tasks holding num_gpus=1/k each; without CUDA Ray is told of one logical GPU and the
    trials train on CPU, which checks the scheduling path (the GPU figure itself needs a GPU)."""
    from benchmarks import gpu
    import torch
    assert gpu.main(["--pack-only", "--pack", "1,2", "--pack-seconds", "1", "--pack-dtypes", "fp32",
                     "--corpus", str(tiny_corpus), "--results", str(tmp_path)]) == 0
    packs = json.loads((tmp_path / "gpu_pack.json").read_text())["packing"]["fp32"]
    assert list(packs) == ["1", "2"] and packs["1"]["speedup_vs_1"] == 1.0
    for k, row in packs.items():
        trials = row["per_trial"]
        assert len(trials) == int(k) and len({t["pid"] for t in trials}) == int(k)  # k concurrent workers
        assert row["via"] == "ray" and all(t["fps"] > 0 and t["gpu_ids"] == ["0"] for t in trials)  # one GPU, shared
        assert row["aggregate_fps"] == pytest.approx(sum(t["fps"] for t in trials))
        assert all(t["device"] == ("cuda" if torch.cuda.is_available() else "cpu") for t in trials)


def test_scale_model(tmp_path):
    from benchmarks import scale_model
    assert scale_model.asha_trial_epochs(100, 100, 10, 3) == pytest.approx(100 * 10 + 100 / 3 * 20 + 100 / 9 * 60
                                                                          + 100 / 27 * 10)
    doc = tmp_path / "b.md"
    assert scale_model.main(["--doc", str(doc), "--results", str(tmp_path)]) == 0
    m = json.loads((tmp_path / "scale_model.json").read_text())
    full, asha = (r for r in m["rows"] if r["packing"] == "4 trials per GPU")
    assert asha["device_hours"] < full["device_hours"]
    assert full["wall_hours"]["32"] <= full["wall_hours"]["8"] <= full["wall_hours"]["1"]
    assert "GPU-seconds" in _section(doc, "scale_model")


def test_model_quality(tiny_corpus, tmp_path):
    import json as _json
    from benchmarks import model_quality
    doc = tmp_path / "mq.md"
    doc.write_text("# q\n\n<!-- bench:model_quality -->\nold\n<!-- /bench:model_quality -->\n\ntail\n")
    assert model_quality.main(["--corpus", str(tiny_corpus), "--curve-epochs", "2", "--ablation-epochs", "1",
                               "--seeds", "1", "--only", "2", "--workers", "2", "--doc", str(doc),
                               "--plot", str(tmp_path / "c.png"), "--results", str(tmp_path)]) == 0
    section = _section(doc, "model_quality")
    assert "old" not in doc.read_text() and doc.read_text().endswith("tail\n")
    assert "| seed | " in section and "seed (architecture and hyperparameters)" in section
    assert (tmp_path / "c.png").stat().st_size > 1000
    result = _json.loads((tmp_path / "model_quality.json").read_text())
    assert [len(r["runs"][0]["dev_wer"]) for r in result["curves"]] == [2, 2]
    assert len(result["ablation"]) == 2 and result["ablation"][0]["changes"]["model.frame_skip"] is False


def test_distillation(tiny_corpus, tmp_path):
    from benchmarks import distillation
    doc = tmp_path / "mq.md"
    assert distillation.main(["--corpus", str(tiny_corpus), "--teacher-epochs", "1", "--epochs", "1", "--seeds", "1",
                              "--doc", str(doc), "--results", str(tmp_path)]) == 0
    section = _section(doc, "distillation")
    assert "| plain |" in section and "| distilled (kd_weight 1.0, T 2.0) |" in section and "relative" in section
    result = json.loads((tmp_path / "distillation.json").read_text())
    plain, distilled = result["rows"]
    assert distilled["changes"]["train.kd_weight"] == 1.0 and "train.kd_weight" not in plain["changes"]
    assert plain["runs"][0]["parameters"] == distilled["runs"][0]["parameters"] < result["teacher_run"]["parameters"]



def test_baseline(tiny_corpus, tmp_path):
    from benchmarks import baseline
    doc = tmp_path / "mq.md"
    assert baseline.main(["--corpus", str(tiny_corpus), "--epochs", "1", "--seeds", "1", "--teacher-epochs", "2",
                          "--doc", str(doc), "--results", str(tmp_path)]) == 0
    section = _section(doc, "baseline")
    assert "| VAC-style baseline" in section and "| seed student" in section and "3x the speed" in section
    result = json.loads((tmp_path / "baseline.json").read_text())
    vac, seed, student, strided, small, tuned, tuned_t2, distilled, self_taught, self_taught_t2 = result["rows"]
    assert vac["changes"] == {"model.arch": "vac"} and student["changes"] == {} and "train.teacher" not in distilled["changes"]
    assert strided["changes"] == {"model.upsample": False} and small["changes"]["model.upsample"] is False
    assert small["runs"][0]["parameters"] < strided["runs"][0]["parameters"] and "Small: `model.encoder_dims" in section
    assert distilled["changes"]["train.kd_weight"] == 1.0 and "distilled from the baseline" in section
    assert vac["runs"][0]["parameters"] > student["runs"][0]["parameters"]  # 512 wide against the 96-wide blocks
    # the tuned student, measured on seeds apart from the sweep's, and taught by a longer run of itself
    assert tuned["changes"] == baseline.FAST and [r["seed"] for r in tuned["runs"]] == [10]
    assert self_taught["changes"] == {**baseline.FAST, **baseline.KD} and "2-epoch run of itself" in self_taught["name"]
    assert len(self_taught["teacher"]["dev_wer"]) == 2 and self_taught["teacher"]["seed"] == baseline.TEACHER_SEED
    assert self_taught["inference"] == tuned["inference"] and distilled["inference"] == student["inference"]
    assert "Distilled from itself: mean best dev WER" in section and "Distillation: the tuned student" in section
    # at T/2: the same student with a stride-2 ConvTranspose, and its own longer run as the teacher
    assert tuned_t2["changes"] == {**baseline.FAST, "model.upsample": True, "model.upsample_factor": 2}
    assert self_taught_t2["changes"] == {**tuned_t2["changes"], **baseline.KD}
    assert self_taught_t2["teacher"]["changes"] == tuned_t2["changes"] and self_taught_t2["inference"] == tuned_t2["inference"]
    assert tuned_t2["runs"][0]["parameters"] > tuned["runs"][0]["parameters"]  # the ConvTranspose's k=2 weights
    assert "At T/2, distilled from itself: mean best dev WER" in section
    for row in result["rows"]:
        assert row["runs"][0]["train_frames_per_second"] > 0 and len(row["runs"][0]["dev_wer"]) == 1
        assert row["inference"]["torch_times_real_time"] > 0 and row["inference"]["onnx_times_real_time"] > 0


@pytest.mark.ray
def test_sweep_scale_measures_the_searcher_and_a_simulated_cluster(tiny_corpus, tmp_path):
    from benchmarks import sweep_scale
    doc = tmp_path / "b.md"
    assert sweep_scale.main(["searcher", "--trials", "14", "--running", "3", "--doc", str(doc),
                             "--results", str(tmp_path)]) == 0
    r = json.loads((tmp_path / "sweep_scale_searcher.json").read_text())
    assert r["trials"] == 14 and r["running"] == 3 and [row["study_size"] for row in r["ask"]] == ["0-10", "10-14"]
    assert [row["study_size"] for row in r["tell"]] == ["0-10", "10-14"]
    assert all(row["median_ms"] > 0 for row in r["ask"] + r["report"] + r["tell"])
    assert "every ask under 100 ms at 14 trials" in _section(doc, "sweep_scale_searcher")

    assert sweep_scale.main(["sweep", "--nodes", "2", "--slots", "2", "--trials", "5", "--epoch-s", "0.1", "--epochs", "6",
                             "--doc", str(doc), "--results", str(tmp_path)]) == 0
    r = json.loads((tmp_path / "sweep_scale.json").read_text())
    assert r["concurrent"] == 4 and r["results"] == r["trial_epochs"] > 0 and sum(r["by_status"].values()) == 5
    assert r["driver_cpu_ms_per_result"] > 0 and 0 <= r["result_wait_s"]["median"] <= r["result_wait_s"]["max"]
    assert r["mlflow_writes"] > r["results"] and r["driver_time"]["optuna ask"]["calls"] >= 5
    assert "2 simulated nodes" in _section(doc, "sweep_scale")
    assert sum(m["results"] for m in r["wait_by_minute"]) == r["results"]
    assert all(m["driver_cpu_s"] > 0 for m in r["wait_by_minute"])  # (CPU pressure where the kernel reports it)
    assert all(0 <= m["cpu_pressure"] <= 1 for m in r["wait_by_minute"] if "cpu_pressure" in m)
    assert r["driver_steps"]["count"] >= r["results"] and r["driver_steps"]["longest_s"] > 0
    split = r["wait_split"]  # each wait in two, the worker's part and the driver's: they add up to the wait
    assert 0 <= split["worker"]["median"] <= split["worker"]["max"] <= r["result_wait_s"]["max"] + 1e-6
    assert 0 <= split["driver"]["median"] <= split["driver"]["max"] <= r["result_wait_s"]["max"] + 1e-6
    assert "from the worker's queue to the driver's callbacks" in _section(doc, "sweep_scale")
    assert all(x["step_s"] > 0.5 and set(x["parts"]) <= set(r["driver_time"]) for x in r["long_steps"])
    assert len(r["long_waits"]) == r["results_waiting_over_1s"]
    assert all(x["results_before"] >= 0 and x["steps_meanwhile"] >= 0 for x in r["long_waits"])
    from tune.search import OptunaSearcher
    assert OptunaSearcher.suggest.__name__ == "suggest"  # the benchmark's timers are gone again


def test_sweep_scale_samples_what_the_loop_does_in_a_long_step_and_nothing_in_a_short_one():
    import time
    from types import SimpleNamespace

    from benchmarks import sweep_scale

    def inside_a_long_step() -> None:
        time.sleep(0.3)
    lag = SimpleNamespace(in_step=True, step_t0=time.perf_counter() - 1.0)  # a step under way for 1 s
    sampler = sweep_scale._StallSampler(lag, after=0.5, every=0.01)
    inside_a_long_step()
    lag.in_step = False
    time.sleep(0.1)  # between steps: not sampled
    out = sampler.stop()
    mine = "benchmarks/test_smoke.py:inside_a_long_step"
    assert out["samples"] >= 10 and out["inclusive"][mine] == out["innermost"][mine] >= out["samples"] - 2
    lag = SimpleNamespace(in_step=True, step_t0=time.perf_counter())  # a step that has just begun
    sampler = sweep_scale._StallSampler(lag, after=0.5, every=0.01)
    time.sleep(0.2)
    assert sampler.stop()["samples"] == 0


def test_rerank(tmp_path):
    from benchmarks import rerank
    doc = tmp_path / "b.md"
    assert rerank.main(["--replays", "50", "--doc", str(doc), "--results", str(tmp_path)]) == 0
    r = json.loads((tmp_path / "rerank.json").read_text())
    assert r["configurations"] == 64 and r["replays"] == 50 and 1 <= r["rerank_rank"] <= 64
    assert r["best_possible_true_wer"] <= min(r["single_true_wer"], r["rerank_true_wer"], r["both_true_wer"])
    assert "Re-ranked winners" in _section(doc, "rerank") and "-m benchmarks.rerank" in r["command"]


def test_lm_decoding_perplexity(shared_data, tmp_path):
    from benchmarks import lm_decoding
    doc = tmp_path / "b.md"
    assert lm_decoding.main(["--phoenix", str(shared_data / "phoenix2014"), "--doc", str(doc),
                             "--results", str(tmp_path)]) == 0
    r = json.loads((tmp_path / "lm_decoding.json").read_text())["perplexity"]
    assert r["vocab"] > 1000 and r["perplexity"]["2"] < r["perplexity"]["1"]  # the bigram beats the unigram
    assert "dev perplexity" in _section(doc, "lm_decoding")


@pytest.mark.ray
def test_pareto_efficiency(tiny_corpus, tmp_path):
    """The multi-objective replay (issue 20, item 6): every strategy through the real searcher, MO-ASHA and Ray on
    the search table, each report carrying the configuration's parameter count; hypervolume never falls."""
    from benchmarks import pareto_efficiency as pe
    doc = tmp_path / "b.md"
    assert pe.main(["--seeds", "1", "--trials", "2", "--workers", "2", "--corpus", str(tiny_corpus),
                    "--doc", str(doc), "--results", str(tmp_path), "--storage", str(tmp_path / "sweeps")]) == 0
    result = json.loads((tmp_path / "pareto_efficiency.json").read_text())
    assert set(result["strategies"]) == set(pe.STRATEGIES)
    assert len(result["setup"]["params"]) == 4 and len(set(result["setup"]["params"].values())) >= 3
    for name, curves in result["curves"].items():
        (curve,) = curves
        assert curve[-1][0] <= 2 * 20, name  # within the budget: 2 full-budget trials x 20 epochs
        hv = [h for _, h in curve]
        assert all(b >= a - 1e-12 for a, b in zip(hv, hv[1:])) and 0 <= hv[-1] <= 1.1, name  # never falls
    assert result["curves"]["random, full budget"][0][-1][0] == 40
    assert result["full_random_trial_epochs"] == 40
    section = _section(doc, "pareto_efficiency")
    assert "| MO-TPE + MO-ASHA |" in section and "Target (MO-TPE + MO-ASHA" in section
    assert (tmp_path / "pareto_efficiency.png").read_bytes()[:4] == b"\x89PNG"
