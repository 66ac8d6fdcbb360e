"""Ctrl-C the instant a ladder run is claimed: the claim and its worker's name are written together, so the next
`run` recognises the run as its dead process's and trains it (a claim without a name would stay RUNNING for good)."""
import subprocess
import sys
from pathlib import Path

import optuna
from optuna.trial import TrialState

from archsearch.cli import main

ROOT = Path(__file__).resolve().parents[2]
LADDER = ROOT / "tests/fixtures/tiny_ladder.yaml"
CTRL_C_IN_THE_CLAIM = """
import os, signal, sys
import archsearch.ladder.runner as runner
made = runner.make_storage

def make_storage(url):
    storage = made(url)
    claim = storage.set_trial_state_values

    def set_trial_state_values(trial_id, state, values=None):
        if state.name == "RUNNING":
            os.kill(os.getpid(), signal.SIGINT)
        return claim(trial_id, state, values)
    storage.set_trial_state_values = set_trial_state_values
    return storage

runner.make_storage = make_storage
from archsearch.cli import main
sys.exit(main(["run", sys.argv[1], "--out", sys.argv[2]]))
"""


def test_a_run_stopped_as_it_is_claimed_is_trained_by_the_next_run(tmp_path, capsys):
    out = tmp_path / "t"
    stopped = subprocess.run([sys.executable, "-c", CTRL_C_IN_THE_CLAIM, str(LADDER), str(out)], capture_output=True,
                             text=True, cwd=ROOT)
    assert stopped.returncode == 130 and "Traceback" not in stopped.stderr, stopped.stderr[-2000:]
    (claimed,) = optuna.load_study(study_name="tiny", storage=f"sqlite:///{out / 'ladder.db'}").trials
    assert claimed.state == TrialState.RUNNING and claimed.user_attrs.get("worker")
    assert main(["run", str(LADDER), "--out", str(out)]) == 0  # in this process: the stopped one's pid is gone
    assert "1 run(s) this time, 1 finished, 0 wanted still" in capsys.readouterr().out
