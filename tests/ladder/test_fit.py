"""Power laws along a ladder: fit, extrapolation interval, interpolation."""
import math
import random

from archsearch.ladder.fit import difference, extrapolate, power_law, predict, read_off, timing_margin


def test_power_law_recovers_an_exact_law():
    xs = [1e6, 3e6, 1e7]
    ys = [5.0 * x ** -0.07 for x in xs]
    log_a, alpha = power_law(xs, ys)
    assert math.isclose(alpha, 0.07, rel_tol=1e-9) and math.isclose(math.exp(log_a), 5.0, rel_tol=1e-9)
    assert math.isclose(predict((log_a, alpha), 1e8), 5.0 * 1e8 ** -0.07, rel_tol=1e-9)


def test_extrapolation_interval_holds_the_truth_and_widens_with_noise():
    truth = lambda x: 6.0 * x ** -0.08  # noqa: E731
    quiet = {x: [truth(x) * (1 + e) for e in (-0.001, 0.0, 0.001)] for x in (2e6, 6e6, 2e7)}
    loud = {x: [truth(x) * (1 + e) for e in (-0.03, 0.0, 0.03)] for x in (2e6, 6e6, 2e7)}
    q, ld = extrapolate(quiet, 1e8), extrapolate(loud, 1e8)
    assert q["lo"] <= truth(1e8) <= q["hi"] and ld["lo"] <= truth(1e8) <= ld["hi"]
    assert ld["hi"] - ld["lo"] > 5 * (q["hi"] - q["lo"])
    assert extrapolate({1e6: [3.0]}, 1e8) is None
    single = extrapolate({1e6: [3.0], 1e7: [2.5, 2.6]}, 1e8)
    assert single["lo"] is None and single["hi"] is None and single["value"] > 0


def test_extrapolation_interval_covers_as_often_as_it_says_with_three_seeds():
    """The ladder's case: 2 or 3 sizes, 3 seeds each, normal seed noise. A bootstrap over the seeds covered the
    truth about 79% of the time for a nominal 95%; the t interval must cover about 95%."""
    rng = random.Random(1)
    truth = lambda x: 4.0 * x ** -0.1  # noqa: E731
    for sizes in ((2e6, 6e6), (2e6, 6e6, 2e7)):
        hits, n = 0, 400
        for _ in range(n):
            pts = {x: [truth(x) * (1 + rng.gauss(0, 0.01)) for _ in range(3)] for x in sizes}
            e = extrapolate(pts, 1e8)
            hits += e["lo"] <= truth(1e8) <= e["hi"]
        assert 0.92 <= hits / n <= 0.99, (sizes, hits / n)


def test_reading_off_is_log_log_and_never_extrapolates():
    pts = {1.0: [10.0, 10.0], 100.0: [1.0, 1.0]}
    assert math.isclose(read_off(pts, 10.0)["value"], math.sqrt(10.0))
    assert math.isclose(read_off(pts, 1.0)["value"], 10.0) and math.isclose(read_off(pts, 100.0)["value"], 1.0)
    assert read_off(pts, 1000.0) is None and read_off(pts, 0.5) is None
    assert read_off({1.0: [10.0], 100.0: [1.0]}, 10.0)["lo"] is None  # one seed a rung: no interval


def test_a_difference_read_off_the_line_covers_as_often_as_it_says():
    """PAM's line read off between two rungs, against another family's seeds at the budget: with normal seed noise
    and the truth a difference of 0, the interval holds 0 about 95% of the time."""
    rng = random.Random(2)
    line = lambda x: 50.0 * x ** -0.2  # noqa: E731
    hits, n = 0, 400
    for _ in range(n):
        pts = {x: [line(x) * (1 + rng.gauss(0, 0.02)) for _ in range(3)] for x in (10.0, 50.0)}
        other = [line(20.0) * (1 + rng.gauss(0, 0.02)) for _ in range(3)]
        d = difference(read_off(pts, 20.0), other)
        hits += d["low"] <= 0.0 <= d["high"]
    assert 0.92 <= hits / n <= 0.99, hits / n
    assert difference(read_off(pts, 20.0), [30.0]) is None


def _excludes(pts, budget, other):
    d = difference(read_off(pts, budget), other)
    return d["low"] > 0 or d["high"] < 0


def test_the_timing_margin_is_the_smallest_error_that_moves_the_interval_across_zero():
    """A line falling from 60 at 10 s to 30 at 40 s, and another family at 20 s with the line's own value there: the
    interval includes 0 at 20 s; a larger budget reads the line lower, and from some error on it excludes 0."""
    line = lambda x: 60.0 * (x / 10.0) ** -0.5  # noqa: E731
    pts = {x: [line(x) * (1 + e) for e in (-0.01, 0.0, 0.01)] for x in (10.0, 40.0)}
    other = [line(20.0) * (1 + e) for e in (-0.01, 0.0, 0.01)]
    assert not _excludes(pts, 20.0, other)
    e = timing_margin(pts, 20.0, other)
    assert e is not None and 0.001 <= abs(e) < 0.5
    # the crossing itself: moved there, it excludes 0; a hair short of it, not yet
    assert _excludes(pts, 20.0 * (1 + e), other) and not _excludes(pts, 20.0 * (1 + e * (1 - 1e-6)), other)
    # nothing smaller in either direction moves it (on a grid finer than the search's)
    steps = int(abs(e) / 0.0001)
    assert not any(_excludes(pts, 20.0 * (1 + s * i * 0.0001), other) for i in range(1, steps) for s in (1, -1))


def test_the_timing_margin_finds_the_way_back_to_zero_and_says_none_where_it_cannot():
    line = lambda x: 60.0 * (x / 10.0) ** -0.5  # noqa: E731
    pts = {x: [line(x) * (1 + e) for e in (-0.01, 0.0, 0.01)] for x in (10.0, 40.0)}
    # the other family 5% better than the line at 20 s: excluded; a budget a little larger reads 0 again
    better = [0.95 * line(20.0) * (1 + e) for e in (-0.01, 0.0, 0.01)]
    assert _excludes(pts, 20.0, better)
    e = timing_margin(pts, 20.0, better)
    assert e is not None and e > 0 and not _excludes(pts, 20.0 * (1 + e), better)
    # far apart: no error within the line's range moves it; one seed: no interval to move
    assert timing_margin(pts, 20.0, [0.5 * v for v in better]) is None
    assert timing_margin({10.0: [60.0], 40.0: [30.0]}, 20.0, better) is None
    # a limit that stops the search short
    assert timing_margin(pts, 20.0, better, limit=abs(e) / 2) is None
