"""A command's process ended as soon as its work is done, without the interpreter's teardown.

After `main` returns, Python would join its threads, run the exit handlers, free every module and
then let the C runtime run the static destructors of every shared library loaded. With torch's
CUDA build those destructors page in parts of the CUDA libraries that a run never used (cuBLASLt,
cuSPARSELt, libtorch_cuda): measured on this project's machines, a process that only imports
salt.survey ends at 960 MiB of peak resident memory instead of 832, and 1.4 s later (BENCHMARKS.md,
"Peak memory on a cube larger than 2 GB"). `run_then_exit` keeps what a program relies on at
exit (its non-daemon threads finish, `atexit` handlers run, stdout and stderr are flushed) and
skips the rest with `os._exit`. Only for a program's own process (`__main__` or a console
script): a caller in the same process, a test calling `main(argv)`, calls `main` itself.
"""

from __future__ import annotations

import atexit
import os
import sys
import threading
from collections.abc import Callable
from typing import NoReturn


def finish_threads() -> None:
    """Wait for every non-daemon thread, as the interpreter does before it exits."""
    for thread in threading.enumerate():
        if thread is not threading.current_thread() and not thread.daemon:
            thread.join()


def run_then_exit(main: Callable[[], object]) -> NoReturn:
    """Call `main()`; when it returns, end the process with status 0 without the teardown.

    An exception or SystemExit out of `main` (a bad input's one-line error, a bug's traceback)
    takes Python's usual way out: error paths keep their exact behaviour."""
    main()
    finish_threads()
    atexit._run_exitfuncs()  # what the interpreter runs at exit: logging's flush, multiprocessing
    for stream in (sys.stdout, sys.stderr):
        if stream is not None:
            stream.flush()
    os._exit(0)
