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
