"""Search spaces: parsing with located errors, and define-by-run sampling with conditional parameters."""
import optuna
import pytest

from archsearch.errors import SpecError
from archsearch.search.baselines import CentreTrial
from archsearch.search.sampling import sample
from archsearch.search.space import load_space
from archsearch.spec import parse

SPACE = """
search:
  name: t
  lr: {log: [1.0e-4, 1.0e-2]}
  budgets: {cpu: {trials: 2, tokens: 1000}}
spec:
  model: {d_model: {choice: [32, 64]}, seq_len: 16, vocab: 50}
  stack:
    depth: {int: [2, 4]}
    sublayers:
      - block: {per_layer: [pam, softmax_attention]}
        config:
          pam: {heads: {int: [1, 2]}, head_dim: 8}
          softmax_attention: {heads: 2}
      - {block: {choice: [mlp, swiglu]}, config: {mlp: {expansion: 2}}}
"""


def _space(tmp_path, text=SPACE):
    p = tmp_path / "s.yaml"
    p.write_text(text)
    return load_space(p)


def test_sampling_is_define_by_run_and_conditional(tmp_path):
    space = _space(tmp_path)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    seen = set()
    for _ in range(12):
        trial = study.ask()
        doc = sample(space, trial)
        spec = parse(doc)  # every sample is a valid spec
        depth = spec.stack.depth
        names = [b.name for b in spec.stack.sublayers[0].blocks]
        assert len(names) == depth and 2 <= depth <= 4
        has_pam = "pam" in names
        assert ("stack.sublayers[0].config.pam.heads" in trial.params) == has_pam  # conditional on the choice
        assert {f"stack.sublayers[0].block[{i}]" for i in range(depth)} <= set(trial.params)
        channel = spec.stack.sublayers[1].blocks[0]
        assert dict(channel.config) == ({"expansion": 2} if channel.name == "mlp" else {})
        seen.add(tuple(names))
        study.tell(trial, 0.0)
    assert len(seen) > 3


def test_fixed_parameters_reproduce_a_spec(tmp_path):
    space = _space(tmp_path)
    params = {"model.d_model": 64, "stack.depth": 2, "stack.sublayers[0].block[0]": "pam",
              "stack.sublayers[0].block[1]": "pam", "stack.sublayers[0].config.pam.heads": 2,
              "stack.sublayers[1].block": "mlp"}
    doc = sample(space, optuna.trial.FixedTrial(params))
    assert doc["stack"]["sublayers"][0] == {"block": ["pam", "pam"], "config": {"pam": {"heads": 2, "head_dim": 8}}}
    assert doc["model"]["d_model"] == 64


@pytest.mark.parametrize("new,message", [
    ("depth: {int: [4, 2]}", "stack.depth.int: low 4 is above high 2"),
    ("depth: {int: [2]}", "stack.depth.int: 'int' needs \\[low, high\\] numbers"),
    ("depth: {int: [2, 4], step: 2, log: 1}", "stack.depth: a 'int' distribution takes no other key"),
])
def test_bad_distribution(tmp_path, new, message):
    with pytest.raises(SpecError, match=message):
        _space(tmp_path, SPACE.replace("depth: {int: [2, 4]}", new))


def test_unknown_search_key_and_cost(tmp_path):
    with pytest.raises(SpecError, match="search.samplr: unknown key 'samplr' \\(did you mean 'sampler'\\?\\)"):
        _space(tmp_path, SPACE.replace("  name: t\n", "  name: t\n  samplr: tpe\n"))
    with pytest.raises(SpecError, match="unknown cost 'latency' \\(did you mean 'latency_train_ms'\\?\\)"):
        _space(tmp_path, SPACE.replace("  name: t\n", "  name: t\n  weights: {latency: 1.0}\n"))


@pytest.mark.parametrize("line, message", [
    ("weights: true", "search.weights: expected a mapping {cost name: weight}, got True"),
    ("weights: [[]]", "search.weights: expected a mapping {cost name: weight}, got \\[\\[\\]\\]"),
    ("weights: {params: fast}", "search.weights.params: expected a number \\(the cost's weight\\), got 'fast'"),
    ("pareto_costs: true", "search.pareto_costs: expected a list of cost names, got True"),
    ("pareto_costs: [[params]]", "search.pareto_costs: unknown cost"),
])
def test_costs_of_the_wrong_shape_are_one_error(tmp_path, line, message):
    """Found by the spec fuzzer (tests/test_spec_fuzz.py): these raised TypeErrors."""
    with pytest.raises(SpecError, match=message):
        _space(tmp_path, SPACE.replace("  name: t\n", f"  name: t\n  {line}\n"))


def test_decode_latency_is_a_weightable_cost_when_it_is_measured(tmp_path):
    decode = "  name: t\n  weights: {latency_decode_ms: 0.2}\n"
    assert _space(tmp_path, SPACE.replace("  name: t\n", decode)).search.weights == {"latency_decode_ms": 0.2}
    with pytest.raises(SpecError, match="search.decode_context: is 0 \\(decode not measured\\), but 'latency_decode_ms'"):
        _space(tmp_path, SPACE.replace("  name: t\n", decode + "  decode_context: 0\n"))


def test_a_budget_can_narrow_the_spec(tmp_path):
    from archsearch.search.sampling import merge, template_for

    assert merge({"a": 1, "b": [{"x": 1, "y": 2}, 5]}, {"b": [{"y": 3}]}) == {"a": 1, "b": [{"x": 1, "y": 3}, 5]}
    assert merge({"d": {"int": [2, 8]}}, {"d": {"int": [2, 3]}}) == {"d": {"int": [2, 3]}}
    text = SPACE.replace("  budgets: {cpu: {trials: 2, tokens: 1000}}",
                         "  budgets: {cpu: {trials: 2, tokens: 1000, spec: {model: {d_model: 16}, stack: {sublayers: "
                         "[{config: {pam: {heads: 1}}}]}}}}")
    space = _space(tmp_path, text)
    t = template_for(space, space.budgets["cpu"])
    assert t["model"] == {"d_model": 16, "seq_len": 16, "vocab": 50}
    assert t["stack"]["sublayers"][0]["config"]["pam"] == {"heads": 1, "head_dim": 8}
    assert t["stack"]["sublayers"][0]["block"] == {"per_layer": ["pam", "softmax_attention"]}


def test_budgets_take_any_name_and_their_former_key_profiles_still_reads(tmp_path):
    named = _space(tmp_path, SPACE.replace("budgets: {cpu: {", "budgets: {wiki-6m: {trials: 3}, cpu: {"))
    assert list(named.budgets) == ["wiki-6m", "cpu"] and named.budgets["wiki-6m"].trials == 3
    assert _space(tmp_path, SPACE.replace("budgets:", "profiles:")).budgets["cpu"].tokens == 1000
    with pytest.raises(SpecError, match=r"search.profiles: is the former name of 'budgets': give only 'budgets'"):
        _space(tmp_path, SPACE.replace("  budgets:", "  profiles: {}\n  budgets:"))
    with pytest.raises(SpecError, match=r"search.budgets.a b: a budget's name is a word .*got 'a b'"):
        _space(tmp_path, SPACE.replace("budgets: {cpu: {", "budgets: {'a b': {}, cpu: {"))


def test_centre_trial_places_baselines_in_the_middle(tmp_path):
    from archsearch.search.sampling import sample_lr

    space = _space(tmp_path)
    centre = CentreTrial({"stack.sublayers[0].block[0]": "pam", "stack.sublayers[0].block[1]": "pam",
                          "stack.sublayers[0].block[2]": "pam"})
    doc = sample(space, centre)
    assert doc["model"]["d_model"] == 32 and doc["stack"]["depth"] == 3  # middle option (lower of two), middle int
    assert doc["stack"]["sublayers"][0]["block"] == ["pam"] * 3
    assert sample_lr(space, centre, 0.0) == pytest.approx(1e-3)  # geometric middle of [1e-4, 1e-2]
    assert centre.params["stack.sublayers[0].config.pam.heads"] == 1
    # the recorded parameters reproduce the same spec through Optuna's FixedTrial
    assert sample(space, optuna.trial.FixedTrial(centre.params)) == doc


@pytest.mark.parametrize("lr, message", [
    ("{grid: []}", "'grid' needs a non-empty list of positive learning rates"),
    ("{grid: [0.001, -1]}", "'grid' needs a non-empty list of positive learning rates"),
    ("-0.1", "expected a positive learning rate, a distribution or {grid: [...]}, got -0.1"),
    ("{steps: 3}", "expected a number, a distribution or {grid: [...]}, got keys ['steps']"),
])
def test_bad_learning_rate(tmp_path, lr, message):
    with pytest.raises(SpecError, match=None) as e:
        _space(tmp_path, SPACE.replace("lr: {log: [1.0e-4, 1.0e-2]}", f"lr: {lr}"))
    assert str(e.value).endswith(message) and "search.lr" in str(e.value)


def test_lr_grid_and_retrain_settings(tmp_path):
    from archsearch.search.sampling import lr_grid
    from archsearch.search.space import retrain_settings

    space = _space(tmp_path, SPACE.replace("lr: {log: [1.0e-4, 1.0e-2]}", "lr: {grid: [0.001, 0.003]}\n  retrain: {top_k: 1, seeds: 4}"))
    assert lr_grid(space) == [0.001, 0.003] and retrain_settings(space) == (1, 4, 5)
    assert retrain_settings(_space(tmp_path)) == (3, 3, 5)
    with pytest.raises(SpecError) as e:
        _space(tmp_path, SPACE.replace("lr: {log: [1.0e-4, 1.0e-2]}", "retrain: {top: 1}"))
    assert "search.retrain.top: unknown key 'top'" in str(e.value)


def test_a_baseline_grid_outside_the_searched_range_is_refused(tmp_path):
    text = SPACE.replace("budgets: {cpu: {", "budgets: {gpu: {baseline_lr_grid: [1.0e-5, 1.0e-3]}, cpu: {")
    assert text != SPACE
    with pytest.raises(SpecError, match="baseline_lr_grid: rate 1e-05 lies outside the searched lr range"):
        _space(tmp_path, text)


def test_budget_lr_and_baseline_params(tmp_path):
    from archsearch.search.space import lr_distribution, lr_setting

    text = SPACE.replace("budgets: {cpu: {", "budgets: {gpu: {lr: {log: [1.0e-5, 1.0e-2]}, baseline_lr_grid: [1.0e-5], "
                                               "baseline_params: {model.d_model: 32}, baseline_matched: width}, cpu: {")
    space = _space(tmp_path, text)
    gpu = space.budgets["gpu"]
    assert lr_setting(space, gpu) == {"log": [1.0e-5, 1.0e-2]} and lr_distribution(space, gpu).low == 1e-5
    assert gpu.baseline_params == {"model.d_model": 32} and gpu.baseline_matched == "width"


NAMED = SPACE.replace(
    "      - {block: {choice: [mlp, swiglu]}, config: {mlp: {expansion: 2}}}",
    "      - {block: {choice: {real: swiglu, complex: cgu}, name: skeleton}, config: {cgu: {expansion: 2}}}\n"
    "    norm: {choice: {real: rmsnorm, complex: complex_norm}, name: skeleton}")


def test_choices_with_one_name_move_together(tmp_path):
    space = _space(tmp_path, NAMED)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=1))
    seen = set()
    for _ in range(10):
        trial = study.ask()
        spec = parse(sample(space, trial))
        skeleton = trial.params["skeleton"]
        channel = spec.stack.sublayers[1].blocks[0]
        assert (channel.name, spec.stack.sublayers[1].norm.name) == {"real": ("swiglu", "rmsnorm"),
                                                         "complex": ("cgu", "complex_norm")}[skeleton]
        assert dict(channel.config) == ({"expansion": 2} if skeleton == "complex" else {})
        assert not any(k.startswith("stack.norm") or k.startswith("stack.sublayers[1].block") for k in trial.params)
        seen.add(skeleton)
        study.tell(trial, 0.0)
    assert seen == {"real", "complex"}


@pytest.mark.parametrize("old,new,message", [
    ("{real: rmsnorm, complex: complex_norm}, name: skeleton}", "{real: rmsnorm, cplx: complex_norm}, name: skeleton}",
     "stack.norm: choice 'skeleton' offers \\['real', 'cplx'\\] here but \\['real', 'complex'\\]"),
    ("{real: rmsnorm, complex: complex_norm}, name: skeleton}", "{real: rmsnorm, complex: complex_norm}}",
     "stack.norm: a named choice needs labelled options"),
    ("{real: rmsnorm, complex: complex_norm}, name: skeleton}", "[rmsnorm, complex_norm], name: skeleton}",
     "stack.norm: a named choice needs labelled options"),
])
def test_bad_named_choice(tmp_path, old, new, message):
    with pytest.raises(SpecError, match=message):
        _space(tmp_path, NAMED.replace(old, new))


def test_baselines_take_names_lists_and_fixed_parameters(tmp_path):
    from archsearch.search.baselines import baseline_label
    from archsearch.search.study import baseline_params

    entries = "[pam, [pam, softmax_attention], {mixers: pam, params: {skeleton: complex}}]"
    space = _space(tmp_path, NAMED.replace("  name: t\n", f"  name: t\n  baselines: {entries}\n"))
    pure, listed, fixed = space.search.baselines
    template = space.template
    assert baseline_params(template, pure) == {f"stack.sublayers[0].block[{i}]": "pam" for i in range(4)}
    assert baseline_params(template, listed) == {"stack.depth": 2, "stack.sublayers[0].block[0]": "pam",
                                                 "stack.sublayers[0].block[1]": "softmax_attention"}
    assert baseline_params(template, fixed)["skeleton"] == "complex"
    assert [baseline_label(e) for e in (pure, listed, fixed)] == ["pam", "pam+softmax_attention", "pam skeleton=complex"]
    doc = sample(space, CentreTrial(baseline_params(template, fixed)))
    assert doc["stack"]["norm"] == "complex_norm" and doc["stack"]["sublayers"][0]["block"] == ["pam"] * 3


@pytest.mark.parametrize("baselines,message", [
    ("[{mixer: pam}]", "search.baselines\\[0\\]: expected {mixers: NAME or \\[NAME, ...\\], params"),
    ("[[]]", "search.baselines\\[0\\]: expected a mixer name or a non-empty list of them"),
    ("[{mixers: pam, params: 3}]", "search.baselines\\[0\\].params: expected a mapping"),
    ("pam", "search.baselines: expected a list of baselines"),
])
def test_bad_baselines(tmp_path, baselines, message):
    with pytest.raises(SpecError, match=message):
        _space(tmp_path, SPACE.replace("  name: t\n", f"  name: t\n  baselines: {baselines}\n"))


@pytest.mark.parametrize("budget,message", [
    ("train_seconds: 0", "search.budgets.cpu.train_seconds: must be > 0, got 0"),
    ("fidelity: {trials: 2, factor: 4}", "search.budgets.cpu.fidelity.trials: needs a whole number >= 3"),
    ("fidelity: {trials: 8, factor: 1}", "search.budgets.cpu.fidelity.factor: needs a number > 1, got 1"),
    ("fidelity: 4", "search.budgets.cpu.fidelity: expected {trials: N, factor: F, min_rank: R"),
    ("fidelity: {trials: 8, factor: 4, min_rank: 2}", "search.budgets.cpu.fidelity.min_rank: needs a rank correlation in"),
    ("fidelity: {trials: 8, factor: 4, min_rank: -0.5}", "fidelity.min_rank: needs a rank correlation in \\(0, 1\\]"),
    ("fidelity: {trials: 8, factor: 4, rank: 0.8}", "search.budgets.cpu.fidelity: expected {trials: N, factor: F"),
])
def test_bad_iso_time_and_fidelity(tmp_path, budget, message):
    with pytest.raises(SpecError, match=message):
        _space(tmp_path, SPACE.replace("{cpu: {trials: 2, tokens: 1000}}", f"{{cpu: {{trials: 2, tokens: 1000, {budget}}}}}"))


def test_iso_time_tokens_fill_the_measured_time():
    from archsearch.search.objective import iso_time_tokens
    from archsearch.spec import TrainConfig

    cfg = TrainConfig(batch_tokens=4096)
    assert iso_time_tokens(cfg, 128, seconds=2.0, latency_ms=30.0) == 66 * 4096  # floor(2000 / 30) steps
    assert iso_time_tokens(cfg, 128, seconds=0.01, latency_ms=30.0) == 4096  # at least one step
