"""Every shipped search space, under every one of its budgets: each baseline builds at its matched size within the
space's limits, or is a listed hybrid that the budget's depth range leaves out. A budget that would waste a GPU run on
a baseline it cannot build fails here, in milliseconds."""
from pathlib import Path

import pytest

from archsearch.compiler import compile_spec
from archsearch.ladder.config import is_ladder_file
from archsearch.search.baselines import baseline_entry, baseline_label
from archsearch.search.objective import Objective
from archsearch.search.sampling import template_for
from archsearch.search.space import load_space
from archsearch.search.study import centre_trial

ROOT = Path(__file__).resolve().parents[2]
SPACES = [p for p in sorted((ROOT / "search_spaces").glob("*.yaml")) if not is_ladder_file(str(p))]
CASES = [(p, name) for p in SPACES for name in load_space(p).budgets]


def test_the_shipped_spaces_are_found():
    assert {p.name for p in SPACES} >= {"pam_hybrids.yaml", "smoke.yaml", "memory_capacity.yaml"}


@pytest.mark.parametrize("path, budget", CASES, ids=[f"{p.stem}-{b}" for p, b in CASES])
def test_every_baseline_builds_within_the_limits(path, budget):
    space = load_space(path)
    b, s = space.budgets[budget], space.search
    objective = Objective(space, None, b, Path("unused"))
    built = 0
    for entry in s.baselines or []:
        _, spec, outside = centre_trial(objective, template_for(space, b), entry)
        if outside:
            assert not isinstance(baseline_entry(entry)[0], str), f"{baseline_label(entry)}: a pure family left out"
            continue
        ir = compile_spec(spec, vocab=4096)
        assert ir.meta["params"] <= (s.max_params or ir.meta["params"]), baseline_label(entry)
        assert ir.meta["state_bytes"] <= (s.max_state_bytes or ir.meta["state_bytes"]), baseline_label(entry)
        built += 1
    assert built >= 2
