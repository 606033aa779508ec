"""On a CUDA device (skipped where there is none, e.g. CI; run on the GPU machine with
`python -m pytest tests/slr/test_cuda.py`): bf16 training, CUDA CTC, a checkpoint that loads on CPU."""

from __future__ import annotations

import math

import pytest
import torch

from slr import checkpoint
from slr.config import Config
from slr.train import Trainer

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


def test_bf16_training_on_cuda_and_the_checkpoint_loads_on_cpu(tiny_corpus, tmp_path):
    cfg = Config().override({"train.device": "cuda", "train.amp": "bf16", "train.epochs": 3,
                             "train.warmup_epochs": 1, "model.num_blocks": 2, "data.batch_size": 8})
    trainer = Trainer(cfg.override({"data.corpus": str(tiny_corpus)}), out=tmp_path)
    assert trainer.amp and next(trainer.model.parameters()).is_cuda
    summary = trainer.fit()
    history = trainer.state["history"]
    assert len(history) == 3 and all(math.isfinite(h["train_loss"]) for h in history)
    assert history[-1]["train_loss"] < history[0]["train_loss"]  # it learns
    assert 0.0 <= summary["best_dev_wer"] <= 1.0
    state = checkpoint.load(tmp_path / "last.pt")  # saved from CUDA, loaded on CPU
    assert all(not v.is_cuda for v in state["model"].values() if isinstance(v, torch.Tensor))


def test_cuda_ctc_matches_cpu(tiny_corpus):
    over = {"model.dropout": 0.0, "train.amp": "off", "data.batch_size": 4, "model.num_blocks": 2}
    cpu = Trainer(Config().override({**over, "train.device": "cpu", "data.corpus": str(tiny_corpus)}))
    gpu = Trainer(Config().override({**over, "train.device": "cuda", "data.corpus": str(tiny_corpus)}))
    gpu.model.load_state_dict(cpu.model.state_dict())
    batch = next(iter(cpu.train_loader))
    losses = [float(t.loss(batch.to(t.device)).detach()) for t in (cpu, gpu)]
    assert losses[0] == pytest.approx(losses[1], rel=1e-4)
