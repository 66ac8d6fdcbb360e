"""A database storage (SQLite, PostgreSQL, MySQL) as a search uses it, across processes and hosts:

- opened with a one-line error that names the URL without its password (wrong host, password or database, no driver);
- a lost connection (the database restarting, a network blip, SQLite's 'database is locked') is retried for up to
  ARCHSEARCH_DB_WAIT_S seconds (default 120), said on one line when it starts and one when it ends; past that the
  process stops with a one-line error, and what it had finished is in the database already;
- an exact trial budget: a new trial is created only while the study holds fewer than the budget, checked inside the
  transaction in which Optuna locks the study's row to number the trial, so workers on any host never overshoot.
"""
from __future__ import annotations

import importlib.util
import inspect
import json
import math
import os
import re
import sys
import threading
import time
from functools import wraps

import sqlalchemy.exc
from optuna.storages import RDBStorage
from optuna.storages._rdb import models

from ..errors import Loc, SpecError
from ..progress import whole_line
from . import interrupts

WAIT_S = float(os.environ.get("ARCHSEARCH_DB_WAIT_S", "120"))
POLL_S = 0.5
_PASSWORD = re.compile(r"^([^:/]+://[^:/@]*:)(.*)@")  # scheme://user:PASSWORD@host…, up to the last @


def redact(url: str) -> str:
    """The URL as it may be printed: its password replaced by ***."""
    return _PASSWORD.sub(r"\1***@", url)


def _password(url: str) -> str | None:
    m = _PASSWORD.match(url)
    return m.group(2) if m else None


def _reason(e: BaseException, url: str) -> str:
    """The driver's own words on one line (Optuna's wrapper of them says less), without the password should they
    quote it."""
    while e.__cause__ is not None and not isinstance(e, sqlalchemy.exc.DBAPIError):
        e = e.__cause__
    text = " ".join(str(getattr(e, "orig", None) or e).split())
    secret = _password(url)
    return text.replace(secret, "***") if secret else text


def with_driver(url: str) -> str:
    """SQLAlchemy 2.0 reads postgresql:// as psycopg2 and 2.1 as psycopg (3): a URL that names no driver gets the one
    installed."""
    if not url.startswith("postgresql://"):
        return url
    for module in ("psycopg2", "psycopg"):
        if importlib.util.find_spec(module):
            return f"postgresql+{module}://" + url[len("postgresql://"):]
    raise SpecError(Loc("--storage"), f"{redact(url)}: no PostgreSQL driver is installed (pip install psycopg2-binary)")


class BudgetSpent(Exception):
    """The study holds its budget of trials: this process starts no new one."""


class StorageLost(SpecError):
    """The database stayed unreachable for ARCHSEARCH_DB_WAIT_S seconds."""


class _Outage:
    """One process's view of a lost connection: said once when it starts and once when it ends, whichever thread
    (the trial's, or Optuna's heartbeat thread) notices it."""

    def __init__(self, url: str):
        self.url, self.since, self.gave_up, self.lock = url, None, None, threading.Lock()
        self.ended = -math.inf

    def run(self, call):
        while True:
            if self.gave_up:
                raise self.gave_up
            try:
                result = call()
            except Exception as e:
                if not _lost_connection(e):
                    raise
                self._lost(e)
                with interrupts.released():  # no transaction is open: Ctrl-C need not wait out the database
                    time.sleep(POLL_S)
                continue
            if self.since is not None:
                self._back()
            return result

    def _lost(self, e: Exception) -> None:
        with self.lock:
            now = time.monotonic()
            if self.since is None:
                self.since = now
                _say(f"storage {redact(self.url)} unreachable ({_reason(e, self.url)}): "
                     f"retrying for up to {WAIT_S:g} s")
            elif now - self.since > WAIT_S and not self.gave_up:
                self.gave_up = StorageLost(Loc("--storage"), f"{redact(self.url)} unreachable for {WAIT_S:g} s "
                                           f"({_reason(e, self.url)}); finished trials are kept: run the same command "
                                           "again once it is back")

    def _back(self) -> None:
        with self.lock:
            if self.since is not None:
                _say(f"storage {redact(self.url)} back after {time.monotonic() - self.since:.1f} s: carrying on")
                self.since, self.ended = None, time.monotonic()

    def recent(self, seconds: float) -> bool:
        """Whether the database was unreachable at any time in the last `seconds`."""
        return self.since is not None or time.monotonic() - self.ended < seconds


def _lost_connection(e: BaseException | None) -> bool:
    """A dropped or refused connection, or a locked database: worth waiting for. Optuna wraps SQLAlchemy's errors in
    its own (StorageInternalError) with the original as the cause. The original may be raised while handling the lost
    connection, not from it: Optuna's _get_trials answers an OperationalError with a second query in the same session,
    which then raises PendingRollbackError; the lost connection is its context."""
    while e is not None:
        if isinstance(e, (sqlalchemy.exc.OperationalError, sqlalchemy.exc.InterfaceError)) or \
                getattr(e, "connection_invalidated", False):
            return True
        e = e.__cause__ or e.__context__
    return False


def _say(line: str) -> None:
    rank = os.environ.get("ARCHSEARCH_WORKER")
    whole_line(sys.stderr, f"[worker {rank}] {line}" if rank else line)


_inside = threading.local()  # the outermost storage call of a thread retries; the calls it makes do not


def _retrying(fn):
    @wraps(fn)
    def call(self, *args, **kwargs):
        if getattr(_inside, "call", False):
            return fn(self, *args, **kwargs)
        _inside.call = True
        try:
            return self._outage.run(lambda: fn(self, *args, **kwargs))
        finally:
            _inside.call = False
    return call


class SearchRDBStorage(RDBStorage):
    """Optuna's RDBStorage that waits out a lost connection and keeps a study's trial budget exactly."""

    def __init__(self, url: str, outage: _Outage | None = None, **kwargs):
        self._outage = outage or _Outage(url)
        self._budgets: dict[int, tuple[int, str]] = {}
        super().__init__(url, **kwargs)

    def limit_trials(self, study_name: str, n: int, retry_key: str) -> None:
        """At most n trials in the study, not counting those that a later trial retries (its user attribute
        `retry_key` names the trial it repeats): creating one more raises BudgetSpent."""
        self._budgets[self.get_study_id_from_name(study_name)] = (n, retry_key)

    def _get_prepared_new_trial(self, study_id, template_trial, session):
        # Optuna calls this with the study's row locked (SELECT … FOR UPDATE) to number the new trial, so the count
        # below and the insert that follows are one step for every worker on every host. Enqueued trials (a
        # template) are not new work: baselines and retries are counted when they are queued.
        if template_trial is None and study_id in self._budgets:
            n, retry_key = self._budgets[study_id]
            trials = session.query(models.TrialModel).filter(models.TrialModel.study_id == study_id).count()
            retried = {json.loads(v) for (v,) in session.query(models.TrialUserAttributeModel.value_json)
                       .join(models.TrialModel).filter(models.TrialModel.study_id == study_id,
                                                       models.TrialUserAttributeModel.key == retry_key)}
            if trials - len(retried) >= n:
                raise BudgetSpent
        return super()._get_prepared_new_trial(study_id, template_trial, session)

    def _get_stale_trial_ids(self, study_id: int) -> list[int]:
        # nobody could beat while the database was away: until every live worker has beaten again, a trial of any of
        # them would look dead, so none is failed within a grace period of an outage this process saw
        if self._outage.recent(self.grace_period or 2 * (self.heartbeat_interval or 0)):
            return []
        return self._outage.run(lambda: RDBStorage._get_stale_trial_ids(self, study_id))

    def record_heartbeat(self, trial_id: int) -> None:
        # Optuna's heartbeat thread: once the database is given up, the trial's own thread says so
        try:
            self._outage.run(lambda: RDBStorage.record_heartbeat(self, trial_id))
        except StorageLost:
            pass


# every public call of Optuna's storage API retries, and the private ones that Optuna's cache in front of it calls;
# heartbeats and stale trials have their own methods above
_NOT_RETRIED = {"record_heartbeat", "remove_session", "upgrade", "get_current_version", "get_head_version",
                "get_all_versions", "get_heartbeat_interval", "get_heartbeat_stale_trial_callback"}
_CACHE_CALLS = {"_create_new_trial", "_set_trial_param", "_get_trials", "_get_best_trial_id"}
for _name, _fn in list(vars(RDBStorage).items()):
    if inspect.isfunction(_fn) and (not _name.startswith("_") or _name in _CACHE_CALLS) and _name not in _NOT_RETRIED:
        setattr(SearchRDBStorage, _name, _retrying(_fn))


def open_rdb(url: str, wait: bool = False, **kwargs) -> SearchRDBStorage:
    """The storage at `url`; a one-line SpecError naming the URL without its password when it cannot be opened. With
    `wait` (a worker, whose coordinator has opened it already) a database that is away is waited for as in a study."""
    outage = _Outage(url)  # the URL as the user wrote it (with_driver names the driver); one outage for the process

    def connect():
        # a connection the database dropped (it restarted) is replaced before use instead of failing a query
        return SearchRDBStorage(with_driver(url), outage, engine_kwargs={"pool_pre_ping": True}, **kwargs)

    try:
        return outage.run(connect) if wait else connect()
    except ImportError as e:
        raise SpecError(Loc("--storage"), f"{redact(url)}: its database driver is not installed "
                                          f"({_reason(e.__cause__ or e, url)})") from None
    except (sqlalchemy.exc.ArgumentError, ValueError) as e:
        raise SpecError(Loc("--storage"), f"{redact(url)}: not a database URL ({_reason(e, url)})") from None
    except sqlalchemy.exc.DBAPIError as e:
        raise SpecError(Loc("--storage"), f"cannot open {redact(url)}: {_reason(e, url)}") from None
