"""A program ended without the interpreter's teardown keeps what it relies on at exit."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

from tests.helpers.runs import REPO_ROOT

PROGRAM = textwrap.dedent(
    """
    import atexit, sys, threading, time
    from pathlib import Path
    from salt.core.errors import SaltError, exit_on_salt_error
    from salt.core.program_exit import run_then_exit

    folder, ending = Path(sys.argv[1]), sys.argv[2]

    @exit_on_salt_error
    def main():
        atexit.register(lambda: (folder / "atexit").write_text("ran"))
        def late():
            time.sleep(0.3)
            (folder / "thread").write_text("done")
        threading.Thread(target=late).start()
        sys.stdout.write("out, no newline")  # a pipe is block-buffered: lost unless flushed
        sys.stderr.write("err, no newline")
        if ending == "salt-error":
            raise SaltError("bad.sgy: not a SEG-Y file")
        if ending == "bug":
            raise KeyError("a bug")

    run_then_exit(main)
    """
)


def run_program(folder, ending: str) -> subprocess.CompletedProcess:
    folder.mkdir(exist_ok=True)
    return subprocess.run(
        [sys.executable, "-c", PROGRAM, str(folder), ending],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        env={k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"},  # buffered output
    )


def test_a_finished_program_flushes_its_output_runs_exit_handlers_and_waits_for_threads(tmp_path):
    result = run_program(tmp_path, "done")
    assert result.returncode == 0, result.stderr
    assert result.stdout == "out, no newline"
    assert result.stderr == "err, no newline"
    assert (tmp_path / "atexit").read_text() == "ran"
    assert (tmp_path / "thread").read_text() == "done"


def test_an_error_takes_pythons_usual_way_out(tmp_path):
    refused = run_program(tmp_path / "refused", "salt-error")
    assert refused.returncode == 1
    assert refused.stderr.endswith("error: bad.sgy: not a SEG-Y file\n")
    bug = run_program(tmp_path / "bug", "bug")
    assert bug.returncode == 1
    assert "Traceback" in bug.stderr and "KeyError: 'a bug'" in bug.stderr
