"""Pareto fronts over several objectives: which trials no other trial beats on every objective at once.

Every objective is minimized here (a ``max`` objective is negated by the caller, :func:`oriented`). Plain Python:
the summary, ``slr sweep status`` and ``slr export --max-...`` use it; it imports neither Ray, Optuna nor MLflow.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

Point = Sequence[float]


def dominates(a: Point, b: Point) -> bool:
    """``a`` is no worse than ``b`` on every objective and better on at least one (all minimized)."""
    return all(x <= y for x, y in zip(a, b)) and any(x < y for x, y in zip(a, b))


def non_dominated_sort(points: Sequence[Point]) -> list[list[int]]:
    """The points' indices in fronts (Deb et al. 2002, fast non-dominated sorting, O(M N^2)): front 0 is the
    Pareto front; each later front is the front of what remains once the earlier ones are taken away."""
    n = len(points)
    beats: list[list[int]] = [[] for _ in range(n)]  # the points each point dominates
    beaten_by = [0] * n  # how many points dominate it
    for i in range(n):
        for j in range(i + 1, n):
            if dominates(points[i], points[j]):
                beats[i].append(j)
                beaten_by[j] += 1
            elif dominates(points[j], points[i]):
                beats[j].append(i)
                beaten_by[i] += 1
    fronts, current = [], [i for i in range(n) if beaten_by[i] == 0]
    while current:
        fronts.append(current)
        following = []
        for i in current:
            for j in beats[i]:
                beaten_by[j] -= 1
                if beaten_by[j] == 0:
                    following.append(j)
        current = sorted(following)
    return fronts


def front(points: Sequence[Point]) -> list[int]:
    """Indices of the non-dominated points (ties: equal points are all on the front)."""
    return non_dominated_sort(points)[0] if points else []


def oriented(values: Sequence[float], modes: Sequence[str]) -> tuple[float, ...]:
    """A point with every objective minimized (``max`` ones negated); a missing or NaN value is worst."""
    return tuple(math.inf if v is None or v != v else (v if m == "min" else -v) for v, m in zip(values, modes))


def crowding(points: Sequence[Point]) -> list[float]:
    """NSGA-II's crowding distance of each point within its set (Deb et al. 2002): the sum over objectives of the
    gap between its two neighbours, normalized by the objective's range; the extremes of each objective are
    infinitely far (kept first, so a front's ends survive)."""
    n = len(points)
    distance = [0.0] * n
    if n <= 2:
        return [math.inf] * n
    for m in range(len(points[0])):
        order = sorted(range(n), key=lambda i: points[i][m])
        low, high = points[order[0]][m], points[order[-1]][m]
        distance[order[0]] = distance[order[-1]] = math.inf
        if not math.isfinite(high - low) or high == low:
            continue
        for k in range(1, n - 1):
            distance[order[k]] += (points[order[k + 1]][m] - points[order[k - 1]][m]) / (high - low)
    return distance


def ranked(points: Sequence[Point]) -> list[int]:
    """The points' indices best first: by front (:func:`non_dominated_sort`), within a front by crowding distance
    (largest first: the most isolated trade-off), then by the first objective (in MO-ASHA the scheduler's metric,
    the one training still moves: of two ends of a front, the one with the better loss goes on, not the one
    that is merely cheap), then by index (the earlier point first)."""
    order: list[int] = []
    for members in non_dominated_sort(points):
        distance = crowding([points[i] for i in members])
        order += [i for _, i in sorted(zip(distance, members), key=lambda di: (-di[0], points[di[1]][0], di[1]))]
    return order


def promotes(recorded: Sequence[Point], point: Point, factor: float) -> bool:
    """MO-ASHA's decision at a rung (Schmucker et al. 2021, NSGA-II selection): ``point`` goes on when it ranks
    among the best ``ceil(n / factor)`` of the ``n`` points the rung holds with it (:func:`ranked`). With one
    objective this keeps the top 1/factor of the rung, as single-objective ASHA does."""
    points = [*recorded, point]
    return ranked(points).index(len(recorded)) < max(1, math.ceil(len(points) / factor))


def hypervolume(points: Sequence[Point], reference: Point) -> float:
    """The volume (all objectives minimized) that the points dominate inside the box below ``reference``: exact,
    by slicing along the last objective (fine for the tens of points of a sweep's front). Points not strictly
    better than the reference in every objective add nothing."""
    inside = sorted((tuple(p) for p in points if all(x < r for x, r in zip(p, reference))), key=lambda p: p[-1])
    if not inside:
        return 0.0
    if len(reference) == 1:
        return reference[0] - inside[0][0]
    volume = 0.0
    for i, p in enumerate(inside):
        upper = inside[i + 1][-1] if i + 1 < len(inside) else reference[-1]
        if upper > p[-1]:  # the slab [p[-1], upper): dominated by the points at or below it
            volume += hypervolume([q[:-1] for q in inside[: i + 1]], reference[:-1]) * (upper - p[-1])
    return volume
