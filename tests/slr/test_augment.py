"""Keypoint augmentation: identity at 0, masks kept, CTC-feasible lengths, seeded, train split only."""

import pytest
import torch

from slr.augment import Augmenter, mirror_index
from slr.config import AugmentConfig, Config, ConfigError
from slr.corpus.store import Corpus
from slr.data import SignDataset, collate, ctc_min_frames
from slr.features import FeaturePipeline
from slr.layout import LEFT_HAND, RIGHT_HAND

ON = dict(rotation=20.0, scale=0.2, shear=0.2, translate=0.3, speed=0.3, frame_drop=0.2, hand_dropout=0.8,
          modality_dropout=0.8, mirror=1.0)


@pytest.fixture(scope="module")
def batch(tiny_corpus):
    corpus = Corpus(tiny_corpus)
    data = SignDataset(corpus, "train", corpus.vocab)
    return collate([data[i] for i in range(6)])


def _needs(batch):
    return [ctc_min_frames(t.tolist()) for t in batch.targets.split(batch.target_lengths.tolist())]


def test_every_key_at_zero_is_the_identity(batch):
    out = Augmenter(AugmentConfig(), seed=0)(batch, step=3)
    assert torch.equal(out.x, batch.x) and torch.equal(out.point_mask, batch.point_mask)
    assert torch.equal(out.lengths, batch.lengths) and out.ids == batch.ids
    assert not AugmentConfig().enabled() and AugmentConfig(mirror=0.5).enabled()


@pytest.mark.parametrize("key", sorted(ON))
def test_each_augmentation_changes_the_batch_and_keeps_it_valid(batch, key):
    out = Augmenter(AugmentConfig(**{key: ON[key]}), seed=0)(batch, step=1)
    changed = (out.x.shape != batch.x.shape or not torch.equal(out.x, batch.x)
               or not torch.equal(out.point_mask, batch.point_mask))
    assert changed, key
    assert all(n >= need for n, need in zip(out.lengths.tolist(), _needs(batch)))  # CTC-feasible
    assert out.x.shape[1] == int(out.lengths.max()) and out.point_mask.shape == out.x.shape[:3]
    assert not out.point_mask[~out.frame_mask].any()  # nothing detected on padding
    features = FeaturePipeline(Config().features)(out.x, out.point_mask, out.frame_mask)
    assert torch.isfinite(features).all()  # never a NaN into the network
    assert torch.equal(batch.x, batch.x.clone())  # the input batch is left as it was


@pytest.mark.parametrize("key", ["rotation", "scale", "shear", "translate", "hand_dropout", "modality_dropout"])
def test_missing_points_stay_missing(batch, key):
    out = Augmenter(AugmentConfig(**{key: ON[key]}), seed=0)(batch, step=2)
    assert not (out.point_mask & ~batch.point_mask).any()  # no point appears that was not detected
    assert (out.x.float()[~out.point_mask] == 0).all()


def test_hand_and_modality_dropout_hide_points(batch):
    out = Augmenter(AugmentConfig(hand_dropout=1.0), seed=0)(batch, step=0)
    hands = slice(LEFT_HAND[0], RIGHT_HAND[1])
    assert out.point_mask[..., hands].sum() < batch.point_mask[..., hands].sum()
    assert torch.equal(out.point_mask[..., :LEFT_HAND[0]], batch.point_mask[..., :LEFT_HAND[0]])  # hands only


def test_mirror_twice_is_the_identity(batch):
    once = Augmenter(AugmentConfig(mirror=1.0), seed=0)(batch, step=0)
    twice = Augmenter(AugmentConfig(mirror=1.0), seed=0)(once, step=1)
    assert torch.equal(twice.point_mask, batch.point_mask)
    seen = batch.point_mask
    assert torch.allclose(twice.x.float()[seen], batch.x.float()[seen], atol=2e-3)  # float16 storage
    assert not torch.allclose(once.x.float()[seen], batch.x.float()[seen], atol=1e-2)
    idx = mirror_index()
    assert torch.equal(idx[idx], torch.arange(543))  # a permutation that is its own inverse
    assert idx[11] == 12 and idx[LEFT_HAND[0]] == RIGHT_HAND[0]


def test_mirror_swaps_hands_and_flips_x(batch):
    out = Augmenter(AugmentConfig(mirror=1.0), seed=0)(batch, step=0)
    assert torch.equal(out.point_mask[..., LEFT_HAND[0]:LEFT_HAND[1]],
                       batch.point_mask[..., RIGHT_HAND[0]:RIGHT_HAND[1]])
    # the new left wrist is the old right wrist reflected about the sample's vertical shoulder axis x = c:
    # x_new[left] + x_old[right] = 2c on every frame, and y is kept
    x0, x1 = batch.x.float(), out.x.float()
    lw, rw = 15, 16
    for b, n in enumerate(batch.lengths.tolist()):
        both = batch.point_mask[b, :n, rw]
        total = x1[b, :n, lw, 0][both] + x0[b, :n, rw, 0][both]
        assert total.std() < 2e-3 and (total - x1[b, :n, lw, 0][both]).abs().mean() > 0.01
        assert torch.allclose(x1[b, :n, lw, 1][both], x0[b, :n, rw, 1][both], atol=2e-3)


def test_deterministic_by_seed_and_step(batch):
    cfg = AugmentConfig(**ON)
    a, b = Augmenter(cfg, seed=0)(batch, step=5), Augmenter(cfg, seed=0)(batch, step=5)
    assert torch.equal(a.x, b.x) and torch.equal(a.point_mask, b.point_mask) and torch.equal(a.lengths, b.lengths)
    c = Augmenter(cfg, seed=1)(batch, step=5)
    d = Augmenter(cfg, seed=0)(batch, step=6)
    assert not torch.equal(a.lengths, c.lengths) or not torch.equal(a.x, c.x)
    assert not torch.equal(a.lengths, d.lengths) or not torch.equal(a.x, d.x)


def test_speed_keeps_lengths_feasible_even_for_short_samples(batch):
    out = Augmenter(AugmentConfig(speed=0.99, frame_drop=0.9), seed=0)(batch, step=0)
    assert all(n >= need for n, need in zip(out.lengths.tolist(), _needs(batch)))


def test_dev_batches_are_never_augmented(fast_config, tiny_corpus):
    from slr.train import Trainer
    t = Trainer(fast_config(**{"augment.mirror": 1.0, "augment.speed": 0.3, "train.epochs": 1,
                               "data.corpus": str(tiny_corpus)}))
    plain = Trainer(fast_config(**{"train.epochs": 1, "data.corpus": str(tiny_corpus)}))
    calls = []
    augment = t.augment

    def counting(b, step):
        calls.append(step)
        return augment(b, step)

    t.augment = counting
    assert t.evaluate("dev")["hyps"] == plain.evaluate("dev")["hyps"] and not calls  # same weights, no augment
    assert t.evaluate("dev")["loss"] == plain.evaluate("dev")["loss"]
    t.fit()
    assert calls == list(range(t.steps_per_epoch))  # every training step, once


@pytest.mark.parametrize("key,value", [("augment.rotation", 181.0), ("augment.rotation", -1.0),
                                       ("augment.mirror", -0.1), ("augment.frame_drop", 1.0),
                                       ("augment.hand_dropout", 1.5), ("augment.speed", 1.0),
                                       ("augment.scale", -0.2), ("augment.modality_dropout", 2.0)])
def test_bad_values_name_the_key(key, value):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        Config().override({key: value})


def test_geometry_needs_landmarks():
    raw = {"features.layout": "precomputed", "features.input_dim": 8, "features.modalities": {"a": [[0, 8]]}}
    with pytest.raises(ConfigError, match=r"augment\.rotation.*landmarks"):
        Config().override({**raw, "augment.rotation": 10.0})
    assert Config().override({**raw, "augment.speed": 0.2}).augment.speed == 0.2
