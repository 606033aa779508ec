import numpy as np
import torch

from slr.config import FeaturesConfig
from slr.features import FeaturePipeline, normalize
from slr.layout import LEFT_SHOULDER, NUM_POINTS, RIGHT_SHOULDER


def _batch(T=10, B=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(B, T, NUM_POINTS, 3, generator=g)
    return x, torch.ones(B, T, NUM_POINTS, dtype=torch.bool), torch.ones(B, T, dtype=torch.bool)


def test_default_layout_is_the_seeds_6516():
    fp = FeaturePipeline(FeaturesConfig())
    assert fp.dim == 6516 == 4 * 1629
    assert set(fp.spans) == {"pose", "face", "hands", "temporal"}
    widths = {k: sum(b - a for a, b in v) for k, v in fp.spans.items()}
    assert widths == {"pose": 99, "face": 1404, "hands": 126, "temporal": 3 * 1629}


def test_nan_and_missing_points_become_zero_never_nan():
    x, pm, fm = _batch()
    x[0, 3, 501:522] = float("nan")  # undetected hand arrives as NaN
    pm[1, 4, 522:543] = False  # or as a mask
    x[1, 5, 0] = float("inf")
    fp = FeaturePipeline(FeaturesConfig())
    out = fp(x, pm, fm)
    assert torch.isfinite(out).all()
    values, valid = fp.raw(x, pm, fm)
    left = slice(501 * 3, 522 * 3)
    assert (out[0, 3, left] == 0).all() and not valid[0, 3, left].any()
    # velocity at t and t+1 touches the missing frame: zero too
    assert (out[0, 3, 1629 + 501 * 3: 1629 + 522 * 3] == 0).all()
    assert (out[0, 4, 1629 + 501 * 3: 1629 + 522 * 3] == 0).all()
    assert (out[1, 4, 522 * 3: 543 * 3] == 0).all()


def test_padding_frames_are_zero():
    x, pm, fm = _batch()
    fm[1, 6:] = False
    out = FeaturePipeline(FeaturesConfig())(x, pm, fm)
    assert (out[1, 6:] == 0).all() and out[1, :6].abs().sum() > 0


def test_normalization_centres_shoulders_and_scales_by_width():
    x, pm, fm = _batch()
    seen = (pm & fm[..., None]).float()[..., None].expand(x.shape).contiguous()  # per value, as the pipeline's
    y = normalize(x * seen, seen)
    mid = (y[..., LEFT_SHOULDER, :2] + y[..., RIGHT_SHOULDER, :2]) / 2
    width = (y[..., LEFT_SHOULDER, :2] - y[..., RIGHT_SHOULDER, :2]).norm(dim=-1)
    assert mid.mean(1).abs().max() < 1e-5
    assert torch.allclose(width.mean(1), torch.ones(2), atol=1e-4)


def test_translation_and_scale_invariance():
    x, pm, fm = _batch()
    cfg = FeaturesConfig(standardize=False)
    fp = FeaturePipeline(cfg)
    moved = x * 1.7 + torch.tensor([0.2, -0.1, 0.0])
    assert torch.allclose(fp(x, pm, fm), fp(moved, pm, fm), atol=1e-4)


def test_velocity_is_the_frame_difference():
    x, pm, fm = _batch()
    fp = FeaturePipeline(FeaturesConfig(standardize=False, normalize=False, temporal=["velocity"]))
    out = fp(x, pm, fm)
    assert fp.dim == 2 * 1629
    expected = (x[:, 1:] - x[:, :-1]).reshape(2, 9, -1)
    assert torch.allclose(out[:, 1:, 1629:], expected, atol=1e-6)
    assert (out[:, 0, 1629:] == 0).all()


def test_standardization_fits_valid_values_only():
    x, pm, fm = _batch(T=40, B=4)
    pm[:, :, 0] = False  # nose never seen: its dims keep unit scale and stay 0
    fp = FeaturePipeline(FeaturesConfig())
    fp.fit([(x, pm, fm)])
    out = fp(x, pm, fm)
    assert (fp.std[:3] == 1).all() and (out[..., :3] == 0).all()
    seen = out[..., 3:1629].reshape(-1, 1626)
    assert abs(seen.mean().item()) < 0.05 and abs(seen.std().item() - 1) < 0.1


def test_precomputed_layout_passes_features_through():
    cfg = FeaturesConfig(layout="precomputed", input_dim=10, modalities={"a": [[0, 4]], "b": [[4, 10]]},
                         standardize=False)
    fp = FeaturePipeline(cfg)
    x = torch.randn(1, 5, 10)
    x[0, 2, 3] = float("nan")
    out = fp(x, None, torch.ones(1, 5, dtype=torch.bool))
    assert out[0, 2, 3] == 0 and torch.equal(out[0, 0], x[0, 0])
    assert fp.spans == {"a": [(0, 4)], "b": [(4, 10)]}
    assert np.isfinite(out.numpy()).all()


def _reference(x, pm, fm, mean, std):
    """The features by their definitions, in float64 numpy, one sample at a time (slow, obviously right)."""
    x, pm, fm = x.double().numpy(), pm.numpy(), fm.numpy()
    out = []
    for b in range(x.shape[0]):
        seen = pm[b] & fm[b][:, None] & np.isfinite(x[b]).all(-1)  # [T, 543]
        p = np.where(seen[..., None], x[b], 0.0)
        both = seen[:, LEFT_SHOULDER] & seen[:, RIGHT_SHOULDER]
        if both.any():
            centre = ((p[both, LEFT_SHOULDER] + p[both, RIGHT_SHOULDER]) / 2).mean(0)
            width = np.linalg.norm(p[both, LEFT_SHOULDER, :2] - p[both, RIGHT_SHOULDER, :2], axis=-1).mean()
            p = np.where(seen[..., None], (p - centre) / width, 0.0)
        vel, acc, cen = np.zeros_like(p), np.zeros_like(p), np.zeros_like(p)
        ok_v, ok_a = np.zeros_like(seen), np.zeros_like(seen)
        ok_v[1:] = seen[1:] & seen[:-1]
        ok_a[2:] = seen[2:] & seen[1:-1] & seen[:-2]
        vel[1:] = p[1:] - p[:-1]
        acc[2:] = p[2:] - 2 * p[1:-1] + p[:-2]
        point_mean = p.sum(0) / np.maximum(seen.sum(0), 1)[:, None]
        cen = p - point_mean
        blocks = [(p, seen), (vel, ok_v), (acc, ok_a), (cen, seen)]
        values = np.concatenate([v.reshape(len(p), -1) for v, _ in blocks], -1)
        valid = np.concatenate([np.repeat(m, 3, axis=-1) for _, m in blocks], -1)
        out.append(np.where(valid, (values - mean) / std, 0.0))
    return np.stack(out)


def test_pipeline_matches_the_definitions_with_missing_points_and_padding():
    g = torch.Generator().manual_seed(1)
    x = torch.rand(3, 30, NUM_POINTS, 3, generator=g)
    pm = torch.rand(3, 30, NUM_POINTS, generator=g) > 0.15  # ~4x the real data's missing rate
    fm = torch.ones(3, 30, dtype=torch.bool)
    fm[1, 21:] = False
    x[0, 4, 501:522] = float("nan")
    x[2, 9, 7, 1] = float("inf")
    pm[2, :, LEFT_SHOULDER] = False  # no shoulders: sample 2 is left unnormalized
    fp = FeaturePipeline(FeaturesConfig())
    fp.fit([(x, pm, fm)])
    expected = _reference(x, pm, fm, fp.mean.double().numpy(), fp.std.double().numpy())
    got = fp(x, pm, fm).numpy()
    assert np.abs(got - expected).max() < 1e-4
    assert ((got == 0) == (expected == 0)).all()  # zero exactly where the definition says so


def test_a_reused_pipeline_equals_a_fresh_one_whatever_came_before():
    # On CPU the validity buffer is kept between calls: a later, smaller or differently masked batch must
    # not see anything of an earlier one.
    fp = FeaturePipeline(FeaturesConfig())
    x, pm, fm = _batch(T=12, B=3, seed=1)
    pm[:, :, 501:522] = False  # a first batch with a hand never seen ...
    fp(x, pm, fm)
    x2, pm2, fm2 = _batch(T=7, B=2, seed=2)
    pm2[0, 2, :33] = False  # ... then a smaller one with other gaps and padding
    fm2[1, 5:] = False
    for pipeline in (fp, FeaturePipeline(FeaturesConfig())):
        out = pipeline(x2, pm2, fm2)
        values, valid = pipeline.raw(x2, pm2, fm2)
        if pipeline is fp:
            reused = (out, values, valid)
    assert all(torch.equal(a, b) for a, b in zip(reused, (out, values, valid)))
    assert valid[0, :, 1629 * 2: 1629 * 2 + 33 * 3].any() and not valid[1, 5:].any()
