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


@settings(max_examples=300, deadline=None)
@given(points, st.sampled_from([2.0, 3.0, 4.0]))
def test_mo_asha_keeps_the_top_of_the_rung_by_front_then_crowding(ps, factor):
    """promotes(): a point that no recorded point beats and that beats one goes on; a point every recorded point
    beats is stopped once the rung holds at least `factor` of them; the number of recorded points ranked ahead of
    a promoted one is below ceil(n / factor)."""
    from tune.pareto import promotes, ranked
    if not ps:
        return
    ps = [p[:2] for p in ps]
    *recorded, point = ps
    order = ranked(ps)
    assert sorted(order) == list(range(len(ps)))
    fronts = non_dominated_sort(ps)
    rank_of = {i: k for k, f in enumerate(fronts) for i in f}
    assert [rank_of[i] for i in order] == sorted(rank_of[i] for i in order)  # fronts in order
    kept = promotes(recorded, point, factor)
    assert kept == (order.index(len(recorded)) < max(1, -(-len(ps) // factor)))
    if recorded and all(dominates(point, r) for r in recorded):
        assert kept
    if len(ps) >= factor + 1 and all(dominates(r, point) for r in recorded):
        assert not kept


def test_crowding_keeps_the_ends_of_a_front_and_prefers_isolated_points():
    from tune.pareto import crowding, ranked
    front3 = [(0.0, 10.0), (1.0, 9.0), (5.0, 5.0), (10.0, 0.0), (9.0, 1.0)]
    d = crowding(front3)
    assert d[0] == d[3] == float("inf")
    assert d[2] > d[1] and d[2] > d[4]  # the middle of the knee is the most isolated
    assert ranked(front3)[:3] == [0, 3, 2]


def test_with_one_objective_mo_asha_keeps_the_best_third():
    from tune.pareto import promotes
    rung = [(5.0,), (3.0,), (4.0,), (6.0,), (7.0,)]
    assert promotes(rung, (2.0,), 3) and promotes(rung, (3.5,), 3)  # top 2 of 6
    assert not promotes(rung, (4.5,), 3)
    assert promotes([], (9.0,), 3)  # the first at a rung always goes on


@settings(max_examples=200, deadline=None)
@given(points)
def test_hypervolume_counts_the_dominated_cells(ps):
    """On integer points with the reference at 7, the hypervolume is the number of unit cells some point
    dominates (brute force over the grid)."""
    import itertools

    from tune.pareto import hypervolume
    if ps and len({len(p) for p in ps}) > 1:
        ps = [p[:2] for p in ps]
    dims = len(ps[0]) if ps else 2
    cells = sum(any(all(c >= x for c, x in zip(cell, p)) for p in ps)
                for cell in itertools.product(range(7), repeat=dims))
    assert hypervolume(ps, (7,) * dims) == cells


def test_of_two_ends_of_a_front_the_better_metric_goes_on():
    """Seen in the pareto recipe: a rung holding a cheap trial with a poor loss and a dearer one; a third trial with
    the best loss (and the highest latency) is an end of the front like the cheap one. With one place to give, it
    goes on: the crowding tie is broken by the first objective, the metric training still moves."""
    from tune.pareto import promotes
    rung = [(9.0, 5.9), (7.0, 9.59)]  # (dev loss, latency ms)
    assert promotes(rung, (6.0, 9.63), 3)
    assert not promotes([(6.0, 9.63), (7.0, 9.59)], (9.0, 5.9), 3)
