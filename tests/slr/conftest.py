"""Fixtures shared by the slr tests."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from slr.config import Config

# learns the tiny corpus in seconds: a high rate after one warmup epoch, no dropout, no early stop
FAST = {"data.batch_size": 4, "train.learning_rate": 3e-3, "train.warmup_epochs": 1.0, "model.dropout": 0.0,
        "train.early_stopping_patience": 0}


@pytest.fixture(scope="session")
def fast_config() -> Callable[..., Config]:
    """``fast_config(**{"train.epochs": 4})``: the fast training settings with dotted-key changes on top."""
    def make(**changes) -> Config:
        return Config().override({**FAST, **changes})
    return make


@pytest.fixture(scope="session")
def trained(fast_config, tiny_corpus, tmp_path_factory) -> Path:
    """A tiny model trained until it recognizes something (dev WER well under 100 %): its best.pt."""
    from slr.train import Trainer
    out = tmp_path_factory.mktemp("trained")
    cfg = fast_config(**{"data.corpus": str(tiny_corpus), "train.epochs": 30})
    summary = Trainer(cfg.override({"data.corpus": str(tiny_corpus)}), out=out).fit()
    assert summary["best_dev_wer"] < 0.9
    return out / "best.pt"
