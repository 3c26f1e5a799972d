"""Run a function in a forked child process: the one helper every fork test uses."""

from __future__ import annotations

import os
import sys
import traceback
from collections.abc import Callable


def run_in_child(fn: Callable[[], object]) -> int:
    """Fork; run ``fn()`` in the child; return the child's exit status.

    0 means ``fn`` returned something true, 3 that it returned something
    false, 2 that it raised (the traceback is printed on the child's stderr,
    which pytest captures). The child leaves with ``os._exit``, so no atexit
    handler, pytest hook or inherited buffer of the parent runs there.
    """
    pid = os.fork()
    if pid == 0:  # child
        code = 1
        try:
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
