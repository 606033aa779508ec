"""tune.trials: the one home of a trial's status, the ranking and the ASHA rungs."""

from __future__ import annotations

import math

import pytest
from ray.tune.schedulers.async_hyperband import _Bracket

from tune.trials import (COMPLETED, FAILED, STATE_OF_STATUS, STOPPED, asha_milestones, asha_rung, best_first,
                         status_of, status_of_state)


@pytest.mark.parametrize("grace, factor, max_t", [(1, 3, 9), (2, 3, 10), (1, 2, 20), (2, 2.5, 30), (4, 4, 64),
                                                  (3, 3, 3), (1, 1.5, 12)])
def test_milestones_are_rays_own(grace, factor, max_t):
    bracket = _Bracket(min_t=grace, max_t=max_t, reduction_factor=factor, s=0)
    assert asha_milestones(grace, factor, max_t) == sorted(m for m, _ in bracket._rungs)


def test_rung_reached():
    # grace 2, factor 3, budget 10: rungs at epochs 2 and 6
    assert [asha_rung(e, 2, 3, 10) for e in (0, 1, 2, 5, 6, 10)] == [0, 0, 0, 0, 1, 1]


def test_status_of_a_last_report():
    assert status_of({"finished": 1, "best_dev_wer": 0.2}) == COMPLETED
    assert status_of({"finished": 0, "best_dev_wer": 0.2}) == STOPPED  # the scheduler ended it
    assert status_of({"finished": 1, "best_dev_wer": math.nan}) == FAILED  # a full budget and nothing to show
    assert status_of({"finished": 1, "failed_reason": "non-finite loss"}) == FAILED
    assert status_of({"finished": 1, "best_dev_wer": 0.2}, error=True) == FAILED
    assert status_of(None) == FAILED
    assert {status_of_state(STATE_OF_STATUS[s]) for s in (COMPLETED, STOPPED, FAILED)} == {COMPLETED, STOPPED, FAILED}
    assert status_of_state("RUNNING") == "running"


def test_best_first_breaks_ties_by_the_trial_asked_first_and_drops_unscored():
    rows = [dict(id="c", wer=0.1, n=7), dict(id="a", wer=0.1, n=2), dict(id="b", wer=0.05, n=9),
            dict(id="x", wer=math.nan, n=0), dict(id="y", wer=None, n=1)]
    assert [r["id"] for r in best_first(rows, lambda r: r["wer"], lambda r: r["n"])] == ["b", "a", "c"]
