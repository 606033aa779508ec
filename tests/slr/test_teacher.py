"""Distillation from a teacher checkpoint (slr.teacher, slr.losses.distillation)."""

from __future__ import annotations

import pytest
import torch

from slr import checkpoint
from slr.config import Config, ConfigError
from slr.data import collate
from slr.losses import at_rate, distillation
from slr.train import Trainer


def _trainer(trained, tiny_corpus, **changes) -> Trainer:
    """A trainer whose student has the teacher's own config (so its weights can be the teacher's)."""
    cfg = Config.from_dict(checkpoint.load(trained)["config"]).override(
        {"data.corpus": str(tiny_corpus), "train.teacher": str(trained), "train.epochs": 1, **changes})
    return Trainer(cfg)


def _batch(trainer: Trainer):
    return collate([trainer.train_set[i] for i in range(4)]).to(trainer.device)


def test_the_kl_is_zero_when_the_student_is_the_teacher(trained, tiny_corpus):
    trainer = _trainer(trained, tiny_corpus)
    state = checkpoint.load(trained)
    trainer.model.load_state_dict(state["model"])
    trainer.features.load_state_dict(state["features"])
    trainer.model.eval()  # as the teacher runs: BatchNorm on its running statistics
    batch = _batch(trainer)
    with torch.no_grad():
        teacher, teacher_lengths = trainer.teacher.log_probs(batch)
        assert torch.equal(teacher_lengths.cpu(), batch.lengths)  # a student teacher: one frame per input frame
        kd = distillation(trainer.forward(batch), teacher, batch.lengths, 2.0, teacher_lengths)
    assert abs(kd.item()) < 1e-6


def test_the_teacher_adds_to_the_loss_and_gets_no_gradient(trained, tiny_corpus):
    with_teacher = _trainer(trained, tiny_corpus)
    without = _trainer(trained, tiny_corpus, **{"train.kd_weight": 0.0})
    batch = _batch(with_teacher)
    torch.manual_seed(0)
    a = with_teacher.loss(batch)
    torch.manual_seed(0)
    b = without.loss(batch)
    assert torch.isfinite(a) and a.item() > b.item()  # a fresh student disagrees with the teacher
    assert with_teacher.step(batch) is not None
    teacher = with_teacher.teacher.model
    assert all(p.grad is None and not p.requires_grad for p in teacher.parameters())
    assert any(p.grad is not None for p in with_teacher.model.parameters())


def test_a_teacher_at_a_quarter_rate_is_brought_to_the_students_frames_by_centres():
    teacher = torch.log_softmax(torch.randn(3, 2, 5), -1)  # [T/4, B, V]: centres at input frames 7.5, 11.5, 15.5
    up = at_rate(teacher, 24, torch.tensor([3, 3]), teacher_rate=(4, 7.5))
    nearest = [0] * 10 + [1] * 4 + [2] * 10  # frames 0-9 -> 0 (clamped below 7.5), 10-13 -> 1, 14-23 -> 2
    assert up.shape == (24, 2, 5) and torch.equal(up, teacher[nearest])
    assert at_rate(teacher, 3, torch.tensor([3, 3]), teacher_rate=(1, 0.0)) is teacher  # the same rate
    student = torch.log_softmax(torch.randn(24, 2, 5, requires_grad=True), -1)
    assert distillation(student, teacher, torch.tensor([24, 7]), 2.0, torch.tensor([3, 3]), (4, 7.5)).item() > 0


def test_per_sample_rates_never_read_the_teachers_padding():
    teacher = torch.log_softmax(torch.randn(6, 2, 5), -1)  # [T', B, V]: sample 0 has 6 frames, sample 1 only 2
    teacher[2:, 1] = float("nan")  # the teacher's padding for sample 1: must never be read
    up = at_rate(teacher, 40, torch.tensor([6, 2]), teacher_rate=(4, 7.5))
    assert not up[:, 1].isnan().any() and torch.equal(up[30:, 1], teacher[1, 1].expand(10, 5))


def test_the_vac_rate_is_where_each_output_frame_reads_the_input():
    """Nudging input frame t changes exactly the VAC output frames whose window holds t; the frame at_rate maps t
    to is among them (frames the quarter rate covers), and its centre is the nearest."""
    from slr.config import FeaturesConfig, ModelConfig, VacConfig
    from slr.features import FeaturePipeline
    from slr.model import build_model
    torch.manual_seed(0)
    model = build_model(ModelConfig(arch="vac", dropout=0.0, vac=VacConfig(width=8, hidden_dim=4)),
                        FeaturePipeline(FeaturesConfig()).spans, 5).eval()
    x = torch.randn(1, 40, 6516)
    with torch.no_grad():
        convs = lambda x: _temporal_only(model, x)  # noqa: E731
        base = convs(x)
        n = base.shape[-1]
        index = at_rate(torch.arange(n, dtype=torch.float)[:, None, None].expand(n, 1, 1), 40, torch.tensor([n]),
                        model.rate)[:, 0, 0].long()
        for t in range(8, 32):  # frames inside the covered span
            nudged = x.clone()
            nudged[0, t] += 10.0
            reads = (convs(nudged) - base).abs().sum(1)[0].nonzero().flatten().tolist()  # output frames that moved
            assert reads and int(index[t]) in reads, (t, reads, int(index[t]))
            centres = [model.rate[0] * j + model.rate[1] for j in reads]
            assert abs(centres[reads.index(int(index[t]))] - t) == min(abs(c - t) for c in centres)


def _temporal_only(model, x):  # noqa: ANN001, ANN202 -- the TemporalConv's output [1, W, T'] (no BiLSTM mixing)
    from slr.model import embed
    h = embed(model, x).transpose(1, 2)
    for stage in model.stages:
        h = stage(h)
    return h


def test_a_vac_teacher_distils_into_a_student(tiny_corpus, tmp_path):
    """A teacher at VAC's quarter rate: its lengths come from its own rule and the KL is finite."""
    base = Config().override({"data.corpus": str(tiny_corpus), "train.epochs": 1, "data.batch_size": 4})
    Trainer(base.override({"model.arch": "vac", "model.vac.width": 32, "model.vac.hidden_dim": 16}),
            out=tmp_path / "vac").fit()
    student = Trainer(base.override({"train.teacher": str(tmp_path / "vac" / "best.pt")}))
    batch = _batch(student)
    teacher, teacher_lengths = student.teacher.log_probs(batch)
    assert teacher_lengths.tolist() == [((n - 4) // 2 - 4) // 2 for n in batch.lengths.tolist()]
    assert teacher.shape[0] == int(teacher_lengths.max())
    loss = student.loss(batch)
    assert torch.isfinite(loss)


def test_a_missing_or_changed_teacher_is_named(trained, tiny_corpus, tmp_path):
    with pytest.raises(ConfigError, match="train.teacher"):
        _trainer(trained, tiny_corpus, **{"train.teacher": str(tmp_path / "nope.pt")})
    with pytest.raises(ConfigError, match=r"train\.teacher_sha256.*has changed"):
        _trainer(trained, tiny_corpus, **{"train.teacher_sha256": "0" * 64})
    assert _trainer(trained, tiny_corpus, **{"train.teacher_sha256": checkpoint.sha256(trained)}).teacher


def test_a_teacher_of_another_vocabulary_or_layout_is_refused_naming_both(trained, tiny_corpus, tmp_path):
    state = checkpoint.load(trained)
    other = tmp_path / "other_vocab.pt"
    checkpoint.save({**state, "vocab": [*state["vocab"][:2], *reversed(state["vocab"][2:])]}, other)  # blank, unk
    with pytest.raises(ValueError, match=rf"teacher {other} and corpus {tiny_corpus} have different vocabularies"):
        _trainer(trained, tiny_corpus, **{"train.teacher": str(other)})
    layout = tmp_path / "precomputed.pt"
    config = {**state["config"], "features": {**state["config"]["features"], "layout": "precomputed",
                                              "input_dim": 16, "modalities": {"pose": [[0, 16]]}}}
    checkpoint.save({**state, "config": config}, layout)
    with pytest.raises(ValueError, match=rf"teacher {layout} does not read corpus {tiny_corpus}"):
        _trainer(trained, tiny_corpus, **{"train.teacher": str(layout)})
