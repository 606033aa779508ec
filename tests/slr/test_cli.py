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
