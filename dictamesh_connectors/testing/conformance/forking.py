"""Run a function in a forked child process: the one helper every fork test uses.

No test framework needed: it returns the child's exit status, and the
caller asserts on it.

Example::

    status = run_in_child(lambda: connector.ping() is None, timeout=60)
    assert status == 0
"""

from __future__ import annotations

import gc
import os
import signal
import sys
import traceback
from collections.abc import Callable

__all__ = ["run_in_child"]


def run_in_child(fn: Callable[[], object], timeout: float | None = None) -> int:
    """Fork; run ``fn()`` in the child; return the child's exit status.

    0 means ``fn`` returned something true, 3 that it returned something
    false, 2 that it raised (the traceback is printed on the child's stderr,
    which pytest captures). The child leaves with ``os._exit``, so no atexit
    handler, pytest hook or inherited buffer of the parent runs there.

    The parent's garbage is collected before forking: an unreachable driver
    object (a librdkafka handle) collected in the child could crash it.

    Args:
        fn: What the child runs.
        timeout: Seconds the child may take: after that ``SIGALRM`` kills
            it (status ``-14``), so a deadlocked child fails the test
            instead of hanging it. ``None``: no limit.
    """
    gc.collect()
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:  # child
        code = 1
        try:
            if timeout is not None:
                signal.signal(signal.SIGALRM, signal.SIG_DFL)
                signal.alarm(max(1, int(timeout + 0.999)))
            code = 0 if fn() else 3
        except BaseException:
            traceback.print_exc()
            code = 2
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)
