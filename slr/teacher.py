"""Distillation from a teacher checkpoint (``train.teacher``): a frozen model whose CTC posteriors the student
learns from, through a frame-level KL (:func:`slr.losses.distillation`) added to its CTC loss.

The teacher is any checkpoint slr can load, of any size or architecture, trained on the same vocabulary and
landmark layout. It keeps its own feature pipeline (its standardization statistics), runs in eval mode with no
gradients on the same (augmented) batch as the student, and is checked before training starts: a missing file, a
changed file (``train.teacher_sha256``, which an exported config records), another vocabulary or another layout
is an error naming the teacher and the corpus."""

from __future__ import annotations

from pathlib import Path

import torch

from slr import checkpoint
from slr.checkpoint import sha256
from slr.config import Config, ConfigError, TrainConfig
from slr.corpus.store import Corpus
from slr.data import Batch, check_layout
from slr.evaluate import load_model, log_probs_of
from slr.vocab import Vocabulary


class Teacher:
    """``Teacher(cfg.train, corpus, vocab, device).log_probs(batch)`` -> (``[T_t, B, V]`` float32, no gradients;
    ``[B]`` frames per sample at the teacher's rate: T for a student, T/4 for ``vac``)."""

    def __init__(self, cfg: TrainConfig, corpus: Corpus, vocab: Vocabulary, device: torch.device):
        self.path = Path(cfg.teacher).expanduser()
        if not self.path.is_file():
            raise ConfigError("train.teacher", cfg.teacher, "no such checkpoint file")
        self.sha256 = sha256(self.path)
        if cfg.teacher_sha256 and cfg.teacher_sha256 != self.sha256:
            raise ConfigError("train.teacher_sha256", cfg.teacher_sha256,
                              f"{self.path} has changed since it was recorded (its SHA-256 is now {self.sha256}): "
                              "retrain it, or point train.teacher at the file the config was made with")
        state = checkpoint.load(self.path, map_location=device)
        if state["vocab"] != vocab.to_list():  # checked on the file, before any model is built from it
            raise ValueError(f"teacher {self.path} and corpus {corpus.root} have different vocabularies "
                             f"({len(state['vocab'])} and {len(vocab)} labels): a teacher must be trained on the "
                             "student's glosses, in the same order")
        try:
            check_layout(Config.from_dict(state["config"], source=str(self.path)), corpus)
        except ValueError as err:
            raise ValueError(f"teacher {self.path} does not read corpus {corpus.root}: {err}") from None
        _, _, self.features, self.model = load_model(self.path, device=str(device), state=state)
        self.model.requires_grad_(False)
        self.features.requires_grad_(False)
        self.device = device

    @torch.no_grad()
    def log_probs(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        lengths = self.model.output_lengths(batch.lengths).to(self.device)
        return log_probs_of(self.features, self.model, batch, self.device), lengths
