"""`python -m tests.helpers.survey_hold LINES MARKER SURVEY_ARGS...`: salt.survey, held once it has
predicted LINES + 1 lines, before it writes the last of them, until it is killed.

It makes the moment of a kill deterministic, whatever the machine's load: the test waits for
MARKER (written when the hold begins) and then kills. A SIGKILL leaves exactly LINES line files;
a SIGTERM ends the hold (Lightning notes it in `trainer.received_sigterm`), so the line in
progress is written and the survey stops after it (salt.sections.lines.StopOnSigterm), with
LINES + 1 line files.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from salt import survey
from salt.core.program_exit import run_then_exit
from salt.sections.lines import LineWriter

HOLD_SECONDS = 300  # never killed: the hold ends and the test's own timeout reports it


def hold_before_line(lines: int, marker: Path) -> None:
    write = LineWriter.write_on_batch_end
    seen = 0

    def write_after_hold(self, trainer, *args, **kwargs) -> None:
        nonlocal seen
        seen += 1
        if seen == lines + 1:
            marker.write_text(f"held before writing line {seen}\n")
            deadline = time.monotonic() + HOLD_SECONDS
            while not trainer.received_sigterm and time.monotonic() < deadline:
                time.sleep(0.01)
        write(self, trainer, *args, **kwargs)

    LineWriter.write_on_batch_end = write_after_hold  # type: ignore[method-assign]


if __name__ == "__main__":
    hold_before_line(int(sys.argv[1]), Path(sys.argv[2]))
    run_then_exit(lambda: survey.main(sys.argv[3:]))
