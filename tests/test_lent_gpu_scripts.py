"""scripts/lent_gpu/stale.sh: a chained call on a lent GPU machine whose checkout lacks the study the last call
returned stops before training anything (it would otherwise train finished runs again)."""
import os
import shutil
import subprocess
from pathlib import Path

import optuna

ROOT = Path(__file__).resolve().parents[1]


def _stale_sh(command: str, machine: Path, **env) -> subprocess.CompletedProcess:
    """`command` after sourcing stale.sh, with the machine's /tmp (where the last call's study is kept) at `machine`."""
    script = (ROOT / "scripts/lent_gpu/stale.sh").read_text().replace("/tmp/last_", f"{machine}/last_")
    return subprocess.run(["bash", "-c", f"{script}\n{command}"], capture_output=True, text=True,
                          env={"PATH": os.environ["PATH"], **env})


def test_a_call_whose_checkout_lacks_the_last_calls_trials_stops(tmp_path):
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    db, machine, before = tmp_path / "study" / "ladder.db", tmp_path / "machine", tmp_path / "before.db"
    db.parent.mkdir()
    machine.mkdir()
    study = optuna.create_study(study_name="s", storage=f"sqlite:///{db}")
    study.add_trial(optuna.trial.create_trial(value=1.0))
    shutil.copy(db, before)  # the checkout's copy before the last call
    study.add_trial(optuna.trial.create_trial(value=2.0))
    guard = f"refuse_stale {db} && echo go"
    assert _stale_sh(guard, machine).stdout.strip() == "go"  # no call before on this machine
    assert _stale_sh(f"keep_last {db}", machine).returncode == 0 and (machine / "last_study.db").is_file()
    assert _stale_sh(guard, machine).stdout.strip() == "go"  # the study the last call returned
    shutil.copy(before, db)  # that call's study not unpacked
    stale = _stale_sh(guard, machine)
    assert stale.returncode == 1 and "records 1 trials, the last call on this machine returned 2" in stale.stdout
    assert _stale_sh(guard, machine, FORCE="1").stdout.strip() == "go"
