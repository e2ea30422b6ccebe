"""Shared by the tests: the import path, the repository, bounded waits."""

from __future__ import annotations

import faulthandler
import os
import sys
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
PYROOT = HERE.parent  # bindings/python
REPO = PYROOT.parent.parent
#: RSTATE_TEST_INSTALLED=1: test the copy pip installed (make
#: python-install-check), never the checkout's package or build/ library.
INSTALLED = os.environ.get("RSTATE_TEST_INSTALLED") == "1"
if not INSTALLED and str(PYROOT) not in sys.path:
    sys.path.insert(0, str(PYROOT))

import reactivestate as rs  # noqa: E402

if INSTALLED:
    from reactivestate import _native  # noqa: E402

    _where = Path(rs.__file__).resolve()
    if PYROOT in _where.parents or os.environ.get("REACTIVESTATE_LIB"):
        raise SystemExit(f"RSTATE_TEST_INSTALLED: the package was imported from {_where} "
                         f"(REACTIVESTATE_LIB={os.environ.get('REACTIVESTATE_LIB')!r}), not an installed copy")
    if Path(_native.lib._name).resolve().parent != _where.parent:
        raise SystemExit(f"RSTATE_TEST_INSTALLED: the library was loaded from {_native.lib._name}, "
                         f"not from the installed package {_where.parent}")

#: The environment of a child python that imports the package under test.
CHILD_ENV = dict(os.environ) if INSTALLED else dict(os.environ, PYTHONPATH=str(PYROOT))

#: Upper bound of every wait in the tests: a failure, never a hang.
WAIT_S = float(os.environ.get("RSTATE_TEST_WAIT_S", "10"))
# And of the whole run: a deadlock prints every thread's stack and exits.
faulthandler.dump_traceback_later(float(os.environ.get("RSTATE_TEST_RUN_S", "300")), exit=True)


def wait_for(predicate, what: str, timeout: float = WAIT_S) -> None:
    """Waits until predicate() is true; fails the test with `what` after
    timeout seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.001)


class Recorder:
    """A watch callback that records events, thread-safely."""

    def __init__(self) -> None:
        self.events: list = []
        self.threads: set = set()
        self.lock = threading.Lock()
        self.cond = threading.Condition(self.lock)

    def __call__(self, ev: "rs.Event") -> None:
        with self.cond:
            self.events.append(ev)
            self.threads.add(threading.get_ident())
            self.cond.notify_all()

    def wait(self, n: int, timeout: float = WAIT_S) -> list:
        with self.cond:
            if not self.cond.wait_for(lambda: len(self.events) >= n, timeout):
                raise AssertionError(f"timed out after {timeout:.0f} s: {len(self.events)} events of {n}: {self.events}")
            return list(self.events)

    def values(self) -> list:
        with self.lock:
            return [e.new for e in self.events]


class Unraisable:
    """Context manager capturing what sys.unraisablehook receives."""

    def __enter__(self) -> "Unraisable":
        self.seen: list = []
        self._old = sys.unraisablehook
        sys.unraisablehook = self.seen.append
        return self

    def __exit__(self, *exc: object) -> None:
        sys.unraisablehook = self._old
