"""Ctrl-C and SIGTERM land only where the run can take them. Python raises KeyboardInterrupt wherever the main thread
happens to be: inside a storage call it can leave the database session unusable; inside Optuna's bookkeeping after a
trial it raises an UnboundLocalError instead (optuna/study/_optimize.py's `finally` reads a name the interrupted line
never set); inside a garbage-collection callback it is printed and dropped, and the run goes on. So a signal that
arrives while interrupts are held is kept, and raised as KeyboardInterrupt the moment the outermost held region ends;
one that Python drops all the same (raised outside a held region, into a __del__ or a weakref callback) is sent again.

Held: every call on a storage that make_storage returns, a run's claim with its worker's name and its record after
training (search/retrain.py, ladder/runner.py), and the whole of a search's study.optimize except the objective's own
work (the training, where a KeyboardInterrupt is expected and marks the trial failed). Released inside a held region:
the pause between attempts to reach a database that is away (rdb.py), where no transaction is open."""
from __future__ import annotations

import functools
import inspect
import os
import signal
import sys
import threading
import time
from contextlib import contextmanager

_held = 0  # the main thread's depth of held regions: signal handlers run on the main thread only
_pending = False


def _on_signal(signum, frame):
    global _pending
    if _held:
        _pending = True
        return
    raise _Interrupt(signum)


class _Interrupt(KeyboardInterrupt):
    """The KeyboardInterrupt this module raises: it knows its signal, to raise it again should Python drop it."""

    def __init__(self, signum: int):
        super().__init__()
        self.signum = signum


def _dropped(unraisable) -> None:
    """sys.unraisablehook: Python prints and drops an exception raised in a __del__ or a weakref callback (a garbage
    collection run by SQLAlchemy, say), and a Ctrl-C raised there would be lost while the run went on. It is sent
    again, to land in the code that runs next."""
    if isinstance(unraisable.exc_value, _Interrupt):  # a moment later, from a thread: here it would be dropped again
        threading.Thread(target=_send, args=(unraisable.exc_value.signum,), daemon=True).start()
        return
    _previous_hook(unraisable)


def _send(signum: int) -> None:
    time.sleep(0.05)
    if not sys.is_finalizing():  # a process on its way out has restored the default action: it would die of it
        os.kill(os.getpid(), signum)


_previous_hook = sys.unraisablehook


def install() -> None:
    """SIGTERM (`timeout`, schedulers) stops the run as Ctrl-C does, and both wait for the end of a held region. A
    SIGINT that the process was started ignoring (a background job) stays ignored."""
    if threading.current_thread() is not threading.main_thread():
        return
    signal.signal(signal.SIGTERM, _on_signal)
    if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
        signal.signal(signal.SIGINT, _on_signal)
    sys.unraisablehook = _dropped


def _deliver() -> None:
    global _pending
    if _pending and not _held:
        _pending = False
        raise KeyboardInterrupt


@contextmanager
def held():
    """Signals wait until the outermost held region ends (on the main thread; elsewhere this does nothing)."""
    global _held, _pending
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    outer = _held
    _held = outer + 1
    try:
        yield
    except KeyboardInterrupt:  # one is on its way out already: a second, held meanwhile, is the same request
        if outer == 0:
            _pending = False
        raise
    finally:  # the depth on entry, not one less: a signal raised in a released region's exit skips its restore
        _held = outer
    _deliver()


@contextmanager
def released():
    """Inside a held region, a part where a signal is raised at once (one waiting is raised on entry)."""
    global _held
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    outer = _held
    try:
        _held = 0
        _deliver()
        yield
    finally:
        _held = outer


def take_waiting(*_) -> None:
    """Raise a waiting signal here, a point between two pieces of work (an Optuna callback: the trial is told)."""
    with released():
        pass


def guard_call(method):
    """`method`, held."""
    @functools.wraps(method)
    def call(*args, **kwargs):
        with held():
            return method(*args, **kwargs)
    return call


def guard(storage):
    """`storage` with each of its methods held (the private ones too: Optuna's _CachedStorage, which wraps an RDB
    storage, calls some of them directly), so that no signal lands between a write and its commit. The storage no
    longer pickles; nothing here pickles one."""
    for name in dir(type(storage)):
        if not name.startswith("__") and inspect.isfunction(getattr(type(storage), name)):
            setattr(storage, name, guard_call(getattr(storage, name)))
    return storage
