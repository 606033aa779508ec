"""Training on the tiny corpus: seconds per run, seeded."""

import json
import math

import pytest
import torch

from slr import checkpoint
from slr.train import NonFiniteLossError, Trainer, lr_at

def test_seed_bug_3_learning_rate_is_used_as_given(fast_config, tiny_corpus):
    cfg = fast_config(**{"train.learning_rate": 7.5e-4, "train.epochs": 20, "train.warmup_epochs": 5.0})
    t = Trainer(cfg, tiny_corpus)
    n = t.steps_per_epoch
    assert lr_at(0, n, cfg.train) == pytest.approx(0.1 * 7.5e-4)  # warmup starts at 10 %
    assert lr_at(5 * n, n, cfg.train) == pytest.approx(7.5e-4)  # and reaches the configured rate
    assert lr_at(20 * n, n, cfg.train) == pytest.approx(7.5e-4 * cfg.train.min_lr_factor)  # cosine floor
    t._set_lr(5 * n)
    assert t.optimizer.param_groups[0]["lr"] == pytest.approx(7.5e-4)


@pytest.mark.slow
def test_tiny_training_loss_falls_and_wer_is_well_under_100(fast_config, tiny_corpus, tmp_path):
    seen = []
    t = Trainer(fast_config(**{"train.epochs": 45}), tiny_corpus, tmp_path, on_epoch=lambda m, d: seen.append((m, d)))
    summary = t.fit()
    losses = [m["train_loss"] for m, _ in seen]
    assert all(math.isfinite(x) for x in losses)
    assert losses[-1] < 0.5 * losses[0]
    assert summary["best_dev_wer"] < 0.85
    keys = {"train_loss", "dev_loss", "dev_wer", "lr", "epoch_seconds", "frames_per_second", "skipped_batches"}
    assert keys <= set(seen[0][0])
    assert seen[-1][0]["finished"] == 1 and seen[0][0]["finished"] == 0
    assert all(d == tmp_path for _, d in seen)
    lines = (tmp_path / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(x)["epoch"] for x in lines] == list(range(1, 46))
    assert (tmp_path / "best.pt").exists() and (tmp_path / "last.pt").exists()


class Killed(Exception):
    pass


def _run(cfg, corpus, out, stop_after=None, resume=None):
    """Train ``cfg`` (4 epochs in the tests); ``stop_after`` kills the run after that epoch."""
    def on_epoch(metrics, _):
        if metrics["epoch"] == stop_after:
            raise Killed
    t = Trainer(cfg, corpus, out, on_epoch=on_epoch)
    try:
        return t, t.fit(resume=resume)
    except Killed:
        return t, None


def test_resume_is_exact(fast_config, tiny_corpus, tmp_path):
    full, _ = _run(fast_config(**{"train.epochs": 4}), tiny_corpus, tmp_path / "full")
    _run(fast_config(**{"train.epochs": 4}), tiny_corpus, tmp_path / "part", stop_after=2)
    resumed, _ = _run(fast_config(**{"train.epochs": 4}), tiny_corpus, tmp_path / "part", resume=tmp_path / "part" / "last.pt")
    for a, b in zip(full.model.state_dict().values(), resumed.model.state_dict().values()):
        assert torch.equal(a, b)
    assert [m["train_loss"] for m in full.state["history"]] == [m["train_loss"] for m in resumed.state["history"]]
    lines = (tmp_path / "part" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(x)["epoch"] for x in lines] == [1, 2, 3, 4]  # no epoch logged twice


def test_seeded_runs_are_identical_on_cpu(fast_config, tiny_corpus, tmp_path):
    a, _ = _run(fast_config(**{"train.epochs": 4}), tiny_corpus, None, stop_after=1)
    b, _ = _run(fast_config(**{"train.epochs": 4}), tiny_corpus, None, stop_after=1)
    assert a.state["history"][0]["train_loss"] == b.state["history"][0]["train_loss"]


def test_nonfinite_batches_are_skipped_and_counted(fast_config, tiny_corpus, monkeypatch):
    t = Trainer(fast_config(**{"train.epochs": 1}), tiny_corpus)
    real = t._loss
    calls = {"n": 0}

    def poisoned(batch):
        calls["n"] += 1
        loss = real(batch)
        return loss * float("nan") if calls["n"] == 2 else loss

    monkeypatch.setattr(t, "_loss", poisoned)
    before = {k: v.clone() for k, v in t.model.state_dict().items()}
    t.fit()
    assert t.state["history"][0]["skipped_batches"] == 1
    assert all(torch.isfinite(v).all() for v in t.model.state_dict().values() if v.is_floating_point())
    assert any(not torch.equal(before[k], v) for k, v in t.model.state_dict().items())


def test_a_run_whose_loss_stays_nonfinite_fails(fast_config, tiny_corpus, monkeypatch):
    t = Trainer(fast_config(**{"train.epochs": 2}), tiny_corpus)
    monkeypatch.setattr(t, "_loss", lambda batch: torch.tensor(float("inf"), requires_grad=True))
    with pytest.raises(NonFiniteLossError, match="non-finite"):
        t.fit()


def test_ctc_infeasible_samples_are_excluded_with_a_count(fast_config, tiny_corpus):
    t = Trainer(fast_config(**{"data.max_frames": 3}), tiny_corpus)  # clip every sample to 3 frames
    assert t.train_set.excluded and all("needed by CTC" in why for why in t.train_set.excluded.values())
    assert len(t.train_set) + len(t.train_set.excluded) == 64
    for labels in t.train_set.labels:
        assert len(labels) <= 3


def test_checkpoints_are_ours_and_loaded_safely(fast_config, tiny_corpus, tmp_path):
    _run(fast_config(**{"train.epochs": 4}), tiny_corpus, tmp_path, stop_after=1)
    state = checkpoint.load(tmp_path / "last.pt")
    assert state["format"] == "slr-checkpoint" and state["epoch"] == 1 and "config" in state
    torch.save({"weights": torch.zeros(2)}, tmp_path / "other.pt")
    with pytest.raises(checkpoint.CheckpointError, match="not an slr checkpoint"):
        checkpoint.load(tmp_path / "other.pt")

    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    torch.save({"format": "slr-checkpoint", "x": Evil()}, tmp_path / "evil.pt")
    with pytest.raises(checkpoint.CheckpointError, match="safe loader"):
        checkpoint.load(tmp_path / "evil.pt")
    (tmp_path / "trunc.pt").write_bytes((tmp_path / "last.pt").read_bytes()[:1000])
    with pytest.raises(checkpoint.CheckpointError, match="trunc.pt"):
        checkpoint.load(tmp_path / "trunc.pt")
