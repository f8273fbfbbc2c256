"""Test-run guard: fail loudly, with stacks, instead of hanging at exit on a leftover thread."""

from __future__ import annotations

import faulthandler
import gc
import os
import sys
import threading
import time

import pytest

LEFTOVER_THREADS_GRACE_S = 10.0


EXIT_STATUS = pytest.StashKey[int]()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Remember the run's status for `pytest_unconfigure`."""
    session.config.stash[EXIT_STATUS] = int(exitstatus)


def pytest_unconfigure(config: pytest.Config) -> None:
    """Fail loudly instead of hanging at exit: a non-daemon thread left running (an aiosqlite
    connection never closed, say) would keep the interpreter alive after the last test."""
    exitstatus = config.stash.get(EXIT_STATUS, 0)
    gc.collect()  # an unreachable aiosqlite connection stops its thread when collected
    deadline = time.monotonic() + LEFTOVER_THREADS_GRACE_S
    while True:
        left = [t for t in threading.enumerate()
                if t is not threading.main_thread() and not t.daemon and t.is_alive()]
        if not left or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    if left:
        names = ", ".join(t.name for t in left)
        sys.stderr.write(f"\nleftover non-daemon threads would hang the exit: {names}\n")
        faulthandler.dump_traceback(sys.stderr, all_threads=True)
        sys.stderr.flush()
        sys.stdout.flush()
        os._exit(exitstatus or 3)
