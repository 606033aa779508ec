"""Non-dominated sorting against a brute-force reference on random points."""

from hypothesis import given, settings
from hypothesis import strategies as st

from tune.pareto import dominates, front, non_dominated_sort, oriented

points = st.lists(st.tuples(*[st.integers(0, 6)] * 2) | st.tuples(*[st.integers(0, 6)] * 3), min_size=0, max_size=25)


def _brute_front(ps, alive):
    return sorted(i for i in alive if not any(dominates(ps[j], ps[i]) for j in alive if j != i))


@settings(max_examples=300, deadline=None)
@given(points)
def test_fronts_equal_peeling_the_brute_force_front(ps):
    if ps and len({len(p) for p in ps}) > 1:
        ps = [p[:2] for p in ps]  # one dimension per draw
    alive, expected = set(range(len(ps))), []
    while alive:
        f = _brute_front(ps, alive)
        expected.append(f)
        alive -= set(f)
    assert [sorted(f) for f in non_dominated_sort(ps)] == expected
    assert sorted(front(ps)) == (expected[0] if expected else [])


def test_dominance_and_orientation():
    assert dominates((1, 2), (1, 3)) and not dominates((1, 3), (1, 3)) and not dominates((0, 4), (1, 3))
    assert oriented([0.1, 5.0], ["min", "max"]) == (0.1, -5.0)
    assert oriented([None, float("nan")], ["min", "max"]) == (float("inf"), float("inf"))
    assert front([(0.1, 9.0), (0.2, 1.0), (0.3, 5.0), (0.1, 9.0)]) == [0, 1, 3]  # equal points both on it
