from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def pg():
    """One throwaway PostgreSQL server for the session (tests/pg_server.py); each test makes its own database."""
    from pg_server import PgServer, find_bin

    bindir = find_bin()
    if bindir is None:
        pytest.skip("PostgreSQL is not installed (no initdb; .ci/run installs Debian's postgresql package)")
    pytest.importorskip("psycopg2", reason="the PostgreSQL driver is not installed (pip install -e '.[dev]')")
    server = PgServer(bindir)
    yield server
    server.close()


@pytest.fixture
def root() -> Path:
    return ROOT


@pytest.fixture(scope="session")
def small_corpus(tmp_path_factory) -> str:
    """A small text corpus for the tests that run whole searches (`--data`): this project's docs, about 200 KB, whose
    validation and test splits (5% each) are scored whole by every trial and again by the report's check. On the
    embedded corpus (476k validation bytes) those scores cost more than the trials' training."""
    folder = tmp_path_factory.mktemp("small-corpus")
    docs = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    (folder / "docs.txt").write_text("".join(p.read_text() for p in docs))
    return str(folder)


@pytest.fixture(scope="session")
def smoke_study(tmp_path_factory, small_corpus):
    """The README's search as a user runs it (`archsearch run`, a real process), at two trials on the small corpus,
    with its fairness re-training: (its run folder, the study, what it printed). Shared by the end-to-end search test
    (which resumes a copy) and the tests that read a finished study (report, export); they must not change it."""
    import subprocess
    import sys

    import optuna

    out = tmp_path_factory.mktemp("smoke-study") / "smoke"
    r = subprocess.run([sys.executable, "-m", "archsearch", "run", str(ROOT / "search_spaces/smoke.yaml"), "--out",
                        str(out), "--trials", "2", "--data", small_corpus], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]
    return out, optuna.load_study(study_name="smoke", storage=f"sqlite:///{out / 'study.db'}"), r.stdout


@pytest.fixture(scope="session", autouse=True)
def isolated_cache(tmp_path_factory):
    """Tokenizers and token arrays are cached in a folder of this test session, never in the user's cache."""
    import os

    os.environ["ARCHSEARCH_CACHE"] = str(tmp_path_factory.mktemp("archsearch-cache"))


def _interpret_triton_on_cpu() -> None:
    """Without a GPU, run the Triton kernels (mode: triton) in Triton's interpreter, so the block contract covers
    them. Read when a kernel is defined, so it is set before any test imports blocks.kernels."""
    import os

    import torch

    if not torch.cuda.is_available():
        os.environ.setdefault("TRITON_INTERPRET", "1")


_interpret_triton_on_cpu()
