"""`archsearch retime`: the cells whose runs an older training loop timed are timed again with the current one; the
report uses the new figure and says so, the runs' own records stay, and a second call has nothing to do."""
import optuna

import archsearch.ladder.runner
from archsearch.cli import main
from archsearch.ladder.retime import RETIMED, stale
from archsearch.train import LOOP

LADDER = """
ladder:
  name: tiny
  seed: 0
  tokens_per_param: 1
  lr_grid: [3.0e-3]
  seeds: 0
  rungs:
    small: {params: 9500}
task: {data: embedded, tokenizer: bytes}
train: {batch_tokens: 1024, seq_len: 64, evals: 1, eval_tokens: 4096, device: cpu}
families:
  transformer:
    spec:
      model: {d_model: 32, seq_len: 64}
      stack:
        depth: 1
        sublayers:
          - {block: softmax_attention, config: {heads: 2, rope: true}, scale: 0.1}
          - {block: swiglu, config: {expansion: 2}}
    rungs: {small: {}}
"""


def _study(out):
    return optuna.load_study(study_name="tiny", storage=f"sqlite:///{out / 'ladder.db'}")


def test_runs_of_an_older_loop_are_timed_again_and_the_report_says_so(tmp_path, monkeypatch, capsys):
    (tmp_path / "tiny.yaml").write_text(LADDER)
    out = tmp_path / "t"
    monkeypatch.setattr(archsearch.ladder.runner, "LOOP", "waited")  # as the runs before loops had names
    assert main(["run", str(tmp_path / "tiny.yaml"), "--out", str(out)]) == 0
    monkeypatch.undo()
    before = {t.number: t.user_attrs for t in _study(out).trials}
    assert sorted(stale(_study(out))) == ["transformer/small"]
    capsys.readouterr()

    assert main(["retime", str(out), "--data", "tests/fixtures/wikitext"]) == 2  # other tokens: one line, nothing kept
    assert "these tokens are not the ones" in capsys.readouterr().err and RETIMED not in _study(out).user_attrs

    assert main(["retime", str(out), "--device", "tpu"]) == 2 and "--device: " in capsys.readouterr().err
    assert main(["retime", str(out), "--storage", f"sqlite:///{tmp_path / 'other.db'}"]) == 2
    assert "holds no study 'tiny'" in capsys.readouterr().err

    assert main(["retime", str(out), "--steps", "4"]) == 0
    text = capsys.readouterr().out
    assert f"re-timing 1 cell(s) of 'tiny' with the {LOOP} loop, 4 steps each" in text
    assert "transformer/small: " in text and " now" in text
    again = _study(out).user_attrs[RETIMED]
    assert {c: (a["loop"], a["steps"], a["card"]) for c, a in again.items()} == {"transformer/small": (LOOP, 4, "cpu")}
    assert {t.number: t.user_attrs for t in _study(out).trials} == before  # the runs' own records stay
    report = (out / "report.md").read_text()
    assert "are re-timed: their runs were timed by the loop that waited for every step" in report
    tps = again["transformer/small"]["tokens_per_s"]
    row = next(line for line in report.splitlines() if line.startswith("| transformer | small |"))
    assert f"{tps:,.0f}" in row  # the tokens/s column is the new figure

    assert main(["retime", str(out)]) == 0
    assert "nothing to re-time" in capsys.readouterr().out
