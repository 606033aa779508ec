"""A model's costs: parameters, FLOPs per frame and one-thread latency, on copies (the model is left as it is)."""

import pytest
import torch

from slr.config import Config, FeaturesConfig, ModelConfig
from slr.cost import COSTS, measure, parameters
from slr.features import FeaturePipeline
from slr.model import build_model


def _pair(vocab: int = 12, **model):
    features = FeaturePipeline(FeaturesConfig())
    return features, build_model(ModelConfig(**model), features.spans, vocab)


def test_costs_grow_with_the_model_and_leave_it_as_it_was():
    small_f, small = _pair(block_channels=48, hidden_dim=64)
    big_f, big = _pair(vocab=1232)  # the bench corpus's vocabulary, as docs/benchmarks.md's throughput
    big.train()
    before = {k: v.clone() for k, v in big.state_dict().items()}
    a = measure(list(COSTS), small_f, small, fps=25.0, runs=2)
    b = measure(list(COSTS), big_f, big, fps=25.0, runs=2)
    assert set(a) == set(COSTS) and all(v > 0 for v in (*a.values(), *b.values()))
    assert a["params"] == parameters(small) < b["params"] == parameters(big)
    assert a["mflops"] < b["mflops"]
    # the default student: ~0.80 GFLOP for a 10 s sentence at 25 fps (docs/benchmarks.md, throughput)
    assert 0.78e3 / 250 < b["mflops"] < 0.83e3 / 250
    assert big.training and all(torch.equal(before[k], v) for k, v in big.state_dict().items())


def test_the_vac_baseline_has_its_costs_too():
    f, vac = _pair(arch="vac")
    got = measure(["params", "mflops"], f, vac, fps=25.0)
    assert got["params"] == parameters(vac) and got["mflops"] > 0


def test_only_the_costs_asked_are_measured_and_unknown_ones_are_named():
    f, m = _pair()
    assert set(measure(["params"], f, m, fps=25.0)) == {"params"}
    with pytest.raises(ValueError, match="watts"):
        measure(["watts"], f, m, fps=25.0)


def test_precomputed_features_are_measured_at_their_own_width():
    cfg = Config().override({"features.layout": "precomputed", "features.input_dim": 96,
                             "features.modalities": {"pose": [[0, 24]], "hands": [[24, 48]], "face": [[48, 72]],
                                                     "temporal": [[72, 96]]}})
    features = FeaturePipeline(cfg.features)
    model = build_model(cfg.model, features.spans, 7)
    assert measure(["mflops"], features, model, fps=25.0)["mflops"] > 0
