"""scripts/lent_gpu: stale.sh (a chained call on a lent GPU machine whose checkout lacks the study the last call
returned stops before training anything; it would otherwise train finished runs again) and gpu_tests.sh's ISOLATE."""
import os
import shutil
import subprocess
import sys
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


def test_gpu_tests_isolated_fails_a_test_that_breaks_its_process_alone(tmp_path):
    """scripts/lent_gpu/gpu_tests.sh with ISOLATE=1 runs each test in a process of its own: a test that leaves its
    process broken (on a GPU, an illegal address in the CUDA context) fails alone; run together, the next one fails
    too. Here a module-level flag stands in for the broken context."""
    tests = tmp_path / "test_two.py"
    tests.write_text("BROKEN = []\n\n\ndef test_breaks():\n    BROKEN.append(1)\n    assert False\n\n\n"
                     "def test_after():\n    assert not BROKEN\n")
    script = (ROOT / "scripts/lent_gpu/gpu_tests.sh").read_text().replace("source scripts/lent_gpu/env.sh", "")
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"  # its python3: this test's interpreter

    def run(**env) -> str:
        out = tmp_path / "out"
        shutil.rmtree(out, ignore_errors=True)
        out.mkdir()
        done = subprocess.run(["bash", "-c", script], capture_output=True, text=True, cwd=tmp_path,
                              env={"PATH": path, "FILES": tests.name, "OUT": str(out), **env})
        assert (out / "gpu_tests_1.log").is_file(), done.stderr
        return done.stdout

    together = run()
    assert "2 failed" in together, together
    alone = run(ISOLATE="1")
    assert "test_breaks: " in alone and "test_after: " in alone, alone
    lines = {line.split("::")[-1].split(":")[0]: line for line in alone.splitlines() if "::" in line}
    assert "1 failed" in lines["test_breaks"] and "1 passed" in lines["test_after"], alone
