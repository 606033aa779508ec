"""tune's commands join `slr` through the entry point seam; without them `slr` says how to install them."""

from __future__ import annotations

import subprocess
import sys

import pytest

import slr.cli
from slr.cli import build_parser, main


def test_tune_adds_its_commands_through_the_entry_point_seam():
    assert {"sweep", "export", "report", "mlflow-replay"} <= build_parser().command_names
    assert "tune" not in slr.cli.__dict__  # slr names no tune module
    assert "--version" in subprocess.run([sys.executable, "-m", "slr.cli", "--help"], capture_output=True,
                                         text=True).stdout


def test_version():
    run = subprocess.run([sys.executable, "-m", "slr.cli", "--version"], capture_output=True, text=True)
    assert run.returncode == 0 and run.stdout.startswith("slr-tune ") and "unknown" not in run.stdout


def test_without_the_extension_a_sweep_command_says_how_to_install_it(monkeypatch, capsys):
    monkeypatch.setattr(slr.cli, "command_plugins", lambda: [])  # as on an install without tune
    assert main(["sweep", "experiments/quickstart.yaml"]) == 2
    assert "pip install 'slr-tune[tune]'" in capsys.readouterr().err


def test_without_ray_the_commands_say_how_to_install_it(tmp_path):
    code = ("import sys; sys.modules['ray'] = None; sys.modules['optuna'] = None; "
            "from slr.cli import main; sys.exit(main(['sweep', 'status', 'nothing', '--storage', sys.argv[1]]))")
    (tmp_path / "nothing").mkdir()
    (tmp_path / "nothing" / "experiment.yaml").write_text("name: nothing\ncorpus: c\n")
    run = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True)
    assert run.returncode == 1, run.stderr
    assert "pip install 'slr-tune[tune]'" in run.stderr and "Traceback" not in run.stderr


@pytest.mark.parametrize("argv, message", [
    (["sweep", "resume"], "usage: slr sweep resume EXPERIMENT"),
    (["sweep", "status"], "usage: slr sweep status NAME_OR_DIR"),
])
def test_sweep_actions_need_their_argument(argv, message, capsys):
    assert main(argv) == 2 and message in capsys.readouterr().err


def test_sweep_resume_is_run_with_resume(tmp_path, capsys):
    exp = tmp_path / "e.yaml"
    exp.write_text(f"name: e\ncorpus: {tmp_path / 'c'}\nstorage_path: {tmp_path / 'sweeps'}\nmlflow: {{enabled: false}}\n"
                   "space: {train.learning_rate: {type: loguniform, low: 1.0e-4, high: 1.0e-3}}\n")
    assert main(["sweep", "resume", str(exp)]) == 1  # before Ray starts: there is no saved state to resume
    assert "nothing to resume" in capsys.readouterr().err
