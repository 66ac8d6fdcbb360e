import pytest


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
