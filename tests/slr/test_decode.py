import itertools
import math

import numpy as np
import pytest
import torch

from slr.decode import beam_search, decode_batch, greedy


def _log_probs(path: list[int], V: int, sharp: float = 5.0) -> torch.Tensor:
    lp = torch.full((len(path), V), -sharp)
    for t, k in enumerate(path):
        lp[t, k] = 0.0
    return lp.log_softmax(-1)


def test_greedy_merges_repeats_drops_blanks_and_keeps_spans():
    tokens = greedy(_log_probs([0, 3, 3, 0, 3, 5, 5, 5, 0], V=6))
    assert [t.id for t in tokens] == [3, 3, 5]
    assert [(t.start, t.end) for t in tokens] == [(1, 3), (4, 5), (5, 8)]


def test_greedy_respects_length():
    assert [t.id for t in greedy(_log_probs([2, 0, 4, 4], V=5), length=2)] == [2]


def _brute_force_best(lp: np.ndarray) -> list[int]:
    """Most probable label sequence by summing all paths (tiny T, V only)."""
    T, V = lp.shape
    scores: dict[tuple, float] = {}
    for path in itertools.product(range(V), repeat=T):
        labels, prev = [], 0
        for k in path:
            if k != 0 and k != prev:
                labels.append(k)
            prev = k
        key = tuple(labels)
        s = sum(lp[t, k] for t, k in enumerate(path))
        scores[key] = np.logaddexp(scores.get(key, -math.inf), s)
    return list(max(scores, key=scores.get))


@pytest.mark.parametrize("seed", range(6))
def test_beam_search_finds_the_most_probable_labelling(seed):
    g = torch.Generator().manual_seed(seed)
    lp = (torch.randn(5, 3, generator=g) * 2).log_softmax(-1).numpy()
    assert beam_search(lp, beam=16) == _brute_force_best(lp)


def test_beam_can_beat_greedy():
    # Greedy picks blank at each frame, but label 1 summed over its paths is more probable.
    p = np.array([[0.4, 0.6 / 2, 0.6 / 2], [0.4, 0.6 / 2, 0.6 / 2]]) * 0 + np.array([[0.45, 0.35, 0.2]] * 2)
    lp = np.log(p)
    assert [t.id for t in greedy(torch.tensor(lp))] == []
    assert beam_search(lp, beam=4) == _brute_force_best(lp) != []


def test_decode_batch_uses_each_length():
    a = _log_probs([1, 1, 0, 2], V=3)
    b = _log_probs([2, 0, 1, 1], V=3)
    lp = torch.stack([a, b], dim=1)  # [T, B, V]
    assert decode_batch(lp, torch.tensor([4, 2])) == [[1, 2], [2]]
    assert decode_batch(lp, torch.tensor([4, 4]), method="beam", beam=4) == [[1, 2], [2, 1]]
