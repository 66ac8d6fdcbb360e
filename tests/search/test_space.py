"""Search spaces: parsing with located errors, and define-by-run sampling with conditional parameters."""
import optuna
import pytest

from archsearch.errors import SpecError
from archsearch.search.space import load_space, sample
from archsearch.spec import parse

SPACE = """
search:
  name: t
  lr: {log: [1.0e-4, 1.0e-2]}
  profiles: {cpu: {trials: 2, tokens: 1000}}
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


def test_decode_latency_is_a_weightable_cost_when_it_is_measured(tmp_path):
    decode = "  name: t\n  weights: {latency_decode_ms: 0.2}\n"
    assert _space(tmp_path, SPACE.replace("  name: t\n", decode)).search.weights == {"latency_decode_ms": 0.2}
    with pytest.raises(SpecError, match="search.decode_context: is 0 \\(decode not measured\\), but 'latency_decode_ms'"):
        _space(tmp_path, SPACE.replace("  name: t\n", decode + "  decode_context: 0\n"))


def test_a_profile_can_narrow_the_spec(tmp_path):
    from archsearch.search.space import merge, template_for

    assert merge({"a": 1, "b": [{"x": 1, "y": 2}, 5]}, {"b": [{"y": 3}]}) == {"a": 1, "b": [{"x": 1, "y": 3}, 5]}
    assert merge({"d": {"int": [2, 8]}}, {"d": {"int": [2, 3]}}) == {"d": {"int": [2, 3]}}
    text = SPACE.replace("  profiles: {cpu: {trials: 2, tokens: 1000}}",
                         "  profiles: {cpu: {trials: 2, tokens: 1000, spec: {model: {d_model: 16}, stack: {sublayers: "
                         "[{config: {pam: {heads: 1}}}]}}}}")
    space = _space(tmp_path, text)
    t = template_for(space, space.profiles["cpu"])
    assert t["model"] == {"d_model": 16, "seq_len": 16, "vocab": 50}
    assert t["stack"]["sublayers"][0]["config"]["pam"] == {"heads": 1, "head_dim": 8}
    assert t["stack"]["sublayers"][0]["block"] == {"per_layer": ["pam", "softmax_attention"]}


def test_centre_trial_places_baselines_in_the_middle(tmp_path):
    from archsearch.search.space import CentreTrial, sample_lr

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
    from archsearch.search.space import lr_grid, retrain_settings

    space = _space(tmp_path, SPACE.replace("lr: {log: [1.0e-4, 1.0e-2]}", "lr: {grid: [0.001, 0.003]}\n  retrain: {top_k: 1, seeds: 4}"))
    assert lr_grid(space) == [0.001, 0.003] and retrain_settings(space) == (1, 4)
    assert retrain_settings(_space(tmp_path)) == (3, 3)
    with pytest.raises(SpecError) as e:
        _space(tmp_path, SPACE.replace("lr: {log: [1.0e-4, 1.0e-2]}", "retrain: {top: 1}"))
    assert "search.retrain.top: unknown key 'top'" in str(e.value)
