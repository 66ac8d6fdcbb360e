"""The PostgreSQL storage in itself: a study that cannot be opened is one line on stderr (exit status 2, the URL
named without its password, no traceback), and the database keeps the trial budget however many processes ask."""
import threading

import optuna
import pytest

from archsearch import cli
from archsearch.search.rdb import BudgetSpent, open_rdb
from pg_server import PASSWORD, USER


def _run(root, tmp_path, capsys, url):
    code = cli.main(["run", str(root / "search_spaces/smoke.yaml"), "--out", str(tmp_path / "o"), "--storage", url,
                     "--trials", "1", "--budget", "cpu", "--device", "cpu"])
    out, err = capsys.readouterr()
    assert code == 2 and out == "" and len(err.splitlines()) == 1, err
    assert PASSWORD not in err and "wrong-pw" not in err and "Traceback" not in err
    return err.strip()


@pytest.mark.parametrize("case, url, says", [
    ("wrong password", "postgresql://{user}:wrong-pw@127.0.0.1:{port}/postgres",
     'cannot open postgresql://{user}:***@127.0.0.1:{port}/postgres: connection to server at "127.0.0.1", port {port} '
     'failed: FATAL: password authentication failed for user "{user}"'),
    ("no such database", "postgresql://{user}:{pw}@127.0.0.1:{port}/no_such_db",
     'cannot open postgresql://{user}:***@127.0.0.1:{port}/no_such_db: connection to server at "127.0.0.1", port '
     '{port} failed: FATAL: database "no_such_db" does not exist'),
    ("nothing listening", "postgresql://{user}:{pw}@127.0.0.1:1/archsearch",
     'cannot open postgresql://{user}:***@127.0.0.1:1/archsearch: connection to server at "127.0.0.1", port 1 '
     'failed: Connection refused'),
    ("wrong scheme", "postgres://{user}:{pw}@127.0.0.1:{port}/postgres",
     "'postgres://{user}:***@127.0.0.1:{port}/postgres': expected sqlite:///FILE, postgresql://…"),
    ("not a URL", "postgresql://{user}:{pw}@127.0.0.1:port/postgres",
     "postgresql://{user}:***@127.0.0.1:port/postgres: not a database URL"),
])
def test_a_study_that_cannot_be_opened_is_one_line_without_the_password(pg, root, tmp_path, capsys, case, url, says):
    fill = {"user": USER, "pw": PASSWORD, "port": pg.port}
    err = _run(root, tmp_path, capsys, url.format(**fill))
    assert err.startswith("--storage: ") and says.format(**fill) in err, (case, err)


def test_the_database_keeps_the_budget_exactly_however_many_ask_at_once(pg):
    url = pg.fresh_db("budget")
    stores = [open_rdb(url) for _ in range(4)]  # as four workers, each with its own connections
    studies = [optuna.create_study(study_name="b", storage=s, load_if_exists=True) for s in stores]
    for s in stores:
        s.limit_trials("b", 3, "retry_of")
    start, made, refused = threading.Barrier(4), [], []

    def worker(study):
        start.wait()
        while True:
            try:
                made.append(study.ask().number)
            except BudgetSpent:
                refused.append(1)
                return

    threads = [threading.Thread(target=worker, args=(s,)) for s in studies]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert sorted(made) == [0, 1, 2] and len(refused) == 4
    # a failed trial and its retry count once: the retry is claimed from the queue, and still no new trial is made
    study = studies[0]
    study.tell(0, state=optuna.trial.TrialState.FAIL)
    study.enqueue_trial({}, user_attrs={"retry_of": 0})
    assert study.ask().number == 3
    with pytest.raises(BudgetSpent):
        study.ask()


def test_a_database_gone_for_longer_than_the_wait_stops_with_one_line(pg, monkeypatch, capsys):
    from archsearch.search import rdb

    monkeypatch.setattr(rdb, "WAIT_S", 1.0)
    store = open_rdb(pg.fresh_db("gone"))
    optuna.create_study(study_name="g", storage=store)
    pg.stop()
    try:
        with pytest.raises(rdb.StorageLost) as lost:
            store.get_all_studies()
    finally:
        pg.start()
    said = capsys.readouterr().err.splitlines()
    assert len(said) == 1 and said[0].startswith(f"storage postgresql://{USER}:***@127.0.0.1:{pg.port}/gone "
                                                 "unreachable (") and said[0].endswith("retrying for up to 1 s")
    assert str(lost.value).startswith(f"--storage: postgresql://{USER}:***@127.0.0.1:{pg.port}/gone unreachable for "
                                      "1 s (") and str(lost.value).endswith("run the same command again once it is back")
    assert PASSWORD not in str(lost.value) and "\n" not in str(lost.value)


def test_a_connection_lost_in_the_middle_of_a_call_is_waited_out_whatever_optuna_raises_next(pg, capsys):
    """The server drops the connection mid-call, and the call does what Optuna's _get_trials does on an
    OperationalError: a second query in the same session. That raises PendingRollbackError, inside the handler, so
    Optuna's StorageInternalError is caused by it and the lost connection is only its context (a CI run's worker once
    died of exactly this during the outage of test_postgres_search)."""
    import psycopg2
    import sqlalchemy
    from optuna.storages._rdb.storage import _create_scoped_session

    store = open_rdb(pg.fresh_db("midcall"))
    calls = []

    def call():
        calls.append(1)
        with _create_scoped_session(store.scoped_session) as session:
            if len(calls) == 1:  # the server drops this session's connection, once
                pid = session.execute(sqlalchemy.text("SELECT pg_backend_pid()")).scalar()
                killer = psycopg2.connect(host="127.0.0.1", port=pg.port, user=USER, password=PASSWORD,
                                          dbname="midcall")
                killer.autocommit = True
                killer.cursor().execute("SELECT pg_terminate_backend(%s)", (pid,))
                killer.close()
                try:
                    session.execute(sqlalchemy.text("SELECT 1"))
                except sqlalchemy.exc.OperationalError:
                    session.execute(sqlalchemy.text("SELECT 1"))  # Optuna's slower fallback
            return session.execute(sqlalchemy.text("SELECT 42")).scalar()

    assert store._outage.run(call) == 42 and len(calls) == 2
    said = capsys.readouterr().err.splitlines()
    assert len(said) == 2 and "/midcall unreachable (" in said[0] and "/midcall back after" in said[1], said
