"""Welch's interval: Student-t quantiles against a printed table, and the interval against a hand computation."""
import pytest

from archsearch.search.stats import t_quantile, welch


@pytest.mark.parametrize("df, q", [(1, 12.706), (2, 4.303), (4, 2.776), (5.8, 2.469), (8, 2.306), (30, 2.042)])
def test_t_quantiles_match_the_table(df, q):
    assert t_quantile(0.975, df) == pytest.approx(q, abs=2e-3)


def test_welch_interval_by_hand():
    # means 3 and 5, variances 2.5 and 2.5 over 5 runs: se = 1, df = 8, half-width 2.306
    w = welch([1, 2, 3, 4, 5], [3, 4, 5, 6, 7])
    assert w["diff"] == pytest.approx(-2.0) and w["df"] == pytest.approx(8.0)
    assert (w["low"], w["high"]) == pytest.approx((-4.306, 0.306), abs=1e-3)
    assert welch([1.0], [2.0, 3.0]) is None
