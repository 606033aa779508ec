"""slr export on a finished sweep's files (no Ray, no server: the sweep's summary and best config as a sweep
writes them)."""

from __future__ import annotations

import json

import pytest
import yaml

from slr.checkpoint import sha256
from slr.config import Config, ConfigError
from tune.export import export_best


def _finished_sweep(tmp_path, teacher: str) -> object:
    sweep = tmp_path / "distill"
    sweep.mkdir()
    cfg = Config().override({"train.teacher": teacher, "train.kd_weight": 2.0, "train.epochs": 4})
    (sweep / "best_config.yaml").write_text(cfg.to_yaml())
    (sweep / "summary.json").write_text(json.dumps(dict(
        sweep="distill", best_trial_id="t1", best_dev_wer=0.25, best_epoch=3, best_params={"train.kd_weight": 2.0},
        mlflow=dict(tracking_uri="sqlite:///x.db", best_run_id="r1", parent_run_id="p1"))))
    return sweep


def test_an_exported_config_records_its_teachers_digest_and_training_from_it_refuses_a_changed_teacher(tmp_path):
    teacher = tmp_path / "teacher.pt"
    teacher.write_bytes(b"the teacher's weights")
    out = export_best(_finished_sweep(tmp_path, str(teacher)), tmp_path / "best.yaml", test_split=False)
    doc = yaml.safe_load(out.read_text())
    assert doc["train"]["teacher"] == str(teacher) and doc["train"]["teacher_sha256"] == sha256(teacher)
    assert doc["provenance"]["trial_id"] == "t1"
    # the digest travels with the config; the trainer's teacher check (slr.teacher) compares it with the file
    from slr.teacher import Teacher
    teacher.write_bytes(b"retrained since")
    cfg = Config.load(out)
    assert cfg.train.teacher_sha256 == doc["train"]["teacher_sha256"]
    with pytest.raises(ConfigError, match="train.teacher_sha256"):
        Teacher(cfg.train, corpus=None, vocab=None, device=None)


def test_without_a_teacher_no_digest_is_written(tmp_path):
    out = export_best(_finished_sweep(tmp_path, ""), tmp_path / "best.yaml", test_split=False)
    assert yaml.safe_load(out.read_text())["train"]["teacher_sha256"] == ""
