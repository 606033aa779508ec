"""The gloss n-gram LM (slr.lm) and beam search fused with it (slr.decode.lm_beam_search, flashlight-text)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from slr.decode import beam_search, lm_beam_search
from slr.lm import EOS, GlossLM, LMError, train_lm

SENTENCES = [["A", "B", "C"], ["A", "B", "D"], ["B", "C"], ["A", "C", "C", "B"], ["D"]]
VOCAB = ["<unk>", "A", "B", "C", "D"]


@pytest.mark.parametrize("order", [1, 2, 3, 4])
def test_probabilities_sum_to_one_in_every_context(order):
    lm = train_lm(SENTENCES, VOCAB, order=order)
    contexts = [[], ["A"], ["A", "B"], ["C", "C"], ["D", "D", "D"], ["<unk>", "B"]]  # seen and unseen
    for context in contexts:
        assert sum(lm.prob(context, w) for w in [*VOCAB, EOS]) == pytest.approx(1.0, abs=1e-12)


def test_seen_continuations_are_likelier_and_the_file_round_trips(tmp_path):
    lm = train_lm(SENTENCES, VOCAB, order=3)
    assert lm.prob(["A"], "B") > lm.prob(["A"], "D")
    assert lm.prob(["A", "B"], "C") > lm.prob(["A", "B"], "A")
    again = GlossLM.load(lm.save(tmp_path / "lm.json"), vocab=VOCAB)
    assert again.prob(["A", "B"], "D") == lm.prob(["A", "B"], "D")
    assert math.isfinite(lm.perplexity([["A", "B", "C"], ["Z"]]))  # an unseen gloss counts as <unk>


def test_a_missing_or_foreign_lm_is_a_named_error(tmp_path):
    with pytest.raises(LMError, match="nothing.json: no such gloss LM"):
        GlossLM.load(tmp_path / "nothing.json")
    path = train_lm(SENTENCES, VOCAB).save(tmp_path / "lm.json")
    with pytest.raises(LMError, match="lm.json: the LM is over other glosses"):
        GlossLM.load(path, vocab=[*VOCAB, "E"])
    (tmp_path / "bad.json").write_text("{}")
    with pytest.raises(LMError, match="bad.json: not a gloss LM"):
        GlossLM.load(tmp_path / "bad.json")


def _random_log_probs(rng: np.random.Generator, T: int, V: int) -> np.ndarray:
    return torch.log_softmax(torch.tensor(rng.normal(0, 2, (T, V)), dtype=torch.float32), -1).numpy()


def test_lm_weight_zero_decodes_as_the_beam_without_an_lm():
    rng = np.random.default_rng(0)
    labels = ["<blank>", *VOCAB]
    lm = train_lm(SENTENCES, VOCAB)
    same_as_prefix_beam = 0
    for _ in range(50):
        lp = _random_log_probs(rng, int(rng.integers(3, 12)), len(labels))
        plain = lm_beam_search(lp, labels, None, beam=16)
        assert lm_beam_search(lp, labels, lm, weight=0.0, bonus=0.0, beam=16) == plain
        same_as_prefix_beam += plain == beam_search(lp, 16)
    # flashlight merges hypotheses per LM state; on small problems it finds what slr's prefix beam search finds
    assert same_as_prefix_beam >= 45


def test_a_strong_lm_moves_an_ambiguous_frame_to_the_likely_gloss():
    labels = ["<blank>", *VOCAB]  # A=2, B=3, C=4, D=5
    lm = train_lm([["A", "B"]] * 50 + [["A", "D"]], VOCAB, order=2)
    lp = np.full((3, len(labels)), -12.0, np.float32)
    lp[0, 2] = 0.0  # A
    lp[1, 0] = -0.1  # a blank between
    lp[2, 5], lp[2, 3] = -0.5, -1.0  # the acoustics lean to D, the LM says B follows A
    lp = torch.log_softmax(torch.tensor(lp), -1).numpy()
    assert lm_beam_search(lp, labels, None, beam=8) == [2, 5]
    assert lm_beam_search(lp, labels, lm, weight=2.0, beam=8) == [2, 3]


def test_beam_lm_needs_an_lm_file():
    from slr.config import Config, ConfigError
    with pytest.raises(ConfigError, match="decode.lm_path"):
        Config().override({"decode.method": "beam_lm"})
    assert Config().override({"decode.method": "beam_lm", "decode.lm_path": "lm.json"}).decode.lm_weight == 0.5
