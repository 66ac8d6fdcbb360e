"""A trial is measured in the form it trains in: the objective hands the spec's train settings to measure."""
from pathlib import Path
from types import SimpleNamespace as NS

import pytest
import torch

import archsearch.search.objective
from archsearch.search.objective import Objective


@pytest.mark.parametrize("compile_, graph", [(True, True), (False, True), (True, False)])
def test_a_trial_is_measured_compiled_and_graphed_as_it_trains(monkeypatch, compile_, graph):
    seen = {}
    monkeypatch.setattr(archsearch.search.objective, "measure", lambda *a, **kw: seen.update(kw) or {})
    objective = Objective(NS(search=NS(decode_context=None)), None, None, Path("unused"))
    spec = NS(train=NS(compile=compile_, cuda_graph=graph))
    ir = NS(model=NS(vocab=64, seq_len=32))
    objective.measured(spec, ir, None, NS(batch=2, seq_len=32, device=torch.device("cpu"), autocast=lambda: None))
    assert (seen["compile"], seen["cuda_graph"]) == (compile_, graph)
