import json

import pytest

from slr.cli import main


def test_help_lists_the_commands(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    for cmd in ("data", "train", "eval", "sweep", "export"):
        assert cmd in out


def test_stats_and_train_and_eval_end_to_end(tiny_corpus, tmp_path, capsys):
    assert main(["data", "stats", str(tiny_corpus), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["samples"]["train"] == 64
    run = tmp_path / "run"
    assert main(["train", "--corpus", str(tiny_corpus), "--out", str(run), "--quiet", "train.epochs=2",
                 "model.num_blocks=1"]) == 0
    assert (run / "config.yaml").exists() and (run / "best.pt").exists()
    capsys.readouterr()
    assert main(["eval", "--checkpoint", str(run / "best.pt"), "--split", "test", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["split"] == "test" and 0 <= result["wer"] and result["sentences"] == 16
    ctm = run / "best.test.ctm"
    assert ctm.exists()


def test_config_errors_are_one_clear_line(tiny_corpus, tmp_path, capsys):
    code = main(["train", "--corpus", str(tiny_corpus), "--out", str(tmp_path / "r"), "model.dropout=1.5"])
    assert code == 2
    err = capsys.readouterr().err
    assert "model.dropout=1.5" in err and "Traceback" not in err


def test_refuses_to_overwrite_a_run_without_resume(tiny_corpus, tmp_path):
    run = tmp_path / "run"
    assert main(["train", "--corpus", str(tiny_corpus), "--out", str(run), "--quiet", "train.epochs=1",
                 "model.num_blocks=1"]) == 0
    assert main(["train", "--corpus", str(tiny_corpus), "--out", str(run), "--quiet", "train.epochs=1"]) == 1


def test_resume_without_config_goes_on_with_the_runs_own_config(tiny_corpus, tmp_path):
    """Not the defaults: the run's config.yaml (a default model would not even load the checkpoint)."""
    import yaml
    run = tmp_path / "run"
    assert main(["train", "--corpus", str(tiny_corpus), "--out", str(run), "--quiet", "train.epochs=1",
                 "model.num_blocks=1", "model.lstm_layers=1"]) == 0
    assert main(["train", "--out", str(run), "--resume", "--quiet", "train.epochs=2"]) == 0
    cfg = yaml.safe_load((run / "config.yaml").read_text())
    assert cfg["model"]["num_blocks"] == 1 and cfg["train"]["epochs"] == 2
    assert [json.loads(x)["epoch"] for x in (run / "metrics.jsonl").read_text().splitlines()] == [1, 2]


def test_resume_of_nothing_is_refused(tmp_path, capsys):
    assert main(["train", "--out", str(tmp_path / "none"), "--resume"]) == 1
    assert "nothing to resume" in capsys.readouterr().err


def test_a_corpus_without_dev_is_refused_before_anything_is_written(tmp_path, capsys):
    import numpy as np

    from slr.corpus import CorpusWriter
    writer = CorpusWriter(tmp_path / "nodev")
    rng = np.random.default_rng(0)
    for i, split in enumerate(["train"] * 3 + ["test"]):
        writer.add(f"s{i}", "a", split, ["X", "Y"], rng.normal(size=(20, 543, 3)).astype(np.float32))
    writer.close()
    run = tmp_path / "run"
    assert main(["train", "--corpus", str(tmp_path / "nodev"), "--out", str(run)]) == 1
    err = capsys.readouterr().err
    assert "no dev samples" in err and "nodev" in err
    assert not run.exists()


def test_outputs_are_never_replaced_without_force(tmp_path, capsys):
    out = tmp_path / "corpus"
    out.mkdir()
    (out / "mine.txt").write_text("precious")
    assert main(["data", "synth", "--preset", "tiny", "--out", str(out)]) == 1
    assert "--force" in capsys.readouterr().err and (out / "mine.txt").read_text() == "precious"
    assert main(["data", "synth", "--preset", "tiny", "--out", str(out), "--force"]) == 0
    assert (out / "manifest.json").exists()
    exp = tmp_path / "exp.yaml"
    exp.write_text("name: x\n")
    assert main(["export", "anything", "--out", str(exp)]) == 1
    assert "--force" in capsys.readouterr().err and exp.read_text() == "name: x\n"


def test_train_into_a_log_file_writes_a_line_per_epoch_and_no_bar(tiny_corpus, tmp_path):
    import subprocess
    import sys
    log = tmp_path / "train.log"
    with open(log, "w") as f:  # not a terminal: the batch bar would be a line per redraw
        done = subprocess.run([sys.executable, "-m", "slr.cli", "train", "--corpus", str(tiny_corpus), "--out",
                               str(tmp_path / "run"), "train.epochs=3", "model.num_blocks=1"],
                              stdout=f, stderr=subprocess.STDOUT, timeout=300)
    text = log.read_text()
    assert done.returncode == 0, text
    assert [line.split()[:2] for line in text.splitlines() if line.startswith("epoch")] == \
        [["epoch", "1"], ["epoch", "2"], ["epoch", "3"]]
    assert "batch/s" not in text and "\r" not in text and "it/s" not in text
