"""Which queued run starts near a time limit (a ladder's runs, a search's re-training runs)."""
from archsearch.search.time_limit import pick


def test_at_the_time_limit_a_later_run_that_fits_goes_first():
    need = {"a": 100.0, "b": None, "c": 40.0, "d": 10.0}.get
    assert pick(["a", "b", "c", "d"], need, 200) == "a"  # the plan's next run fits
    assert pick(["a", "b", "c", "d"], need, 50) == "c"  # it does not: the first later run known to fit
    assert pick(["a", "b", "c", "d"], need, 5) is None
    assert pick(["b", "a"], need, 1) == "b"  # nothing known of its family: the next run goes, as before
    assert pick(["a"], need, 0) is None and pick([], need, 100) is None
    # a run longer than the whole limit starts when at least half of the limit is left, and runs in parts
    assert pick(["a", "c"], need, 60, window=90) == "a" and pick(["a", "c"], need, 40, window=90) == "c"
    assert pick(["a", "c"], need, 60, window=120) == "c"  # a fits in a whole limit: it waits for one
    # --fill: a later run that fits still goes first; when none does, the next one starts and pauses at the limit,
    # given at least a minute (a shorter part would not repay resuming it)
    assert pick(["a", "c"], need, 61, window=120, fill=True) == "c"
    assert pick(["a", "b"], need, 61, window=120, fill=True) == "a"
    assert pick(["a", "b"], need, 59, window=120, fill=True) is None
    assert pick(["a", "b"], need, 61, window=120) is None  # without it, as before
    assert pick(["a", "b"], need, 60, window=120, fill=True) == "a"  # a minute is enough
    # a run longer than a whole limit keeps the half-limit rule: a sliver of it would not repay its start
    assert pick(["x"], {"x": 1000.0}.get, 100, window=300, fill=True) is None
    assert pick(["x"], {"x": 1000.0}.get, 150, window=300, fill=True) == "x"
