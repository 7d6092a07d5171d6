"""Draw the plots of run directories again: `python -m salt.plots RUN [RUN ...]` (`salt-plots`)."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from salt.analysis.plots import write_run_plots
from salt.core.errors import exit_on_salt_error


@exit_on_salt_error
def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m salt.plots", description="Draw the plots of run directories again."
    )
    parser.add_argument("runs", nargs="+", type=Path, help="run directories")
    parser.add_argument("--data", type=Path, help="data root (default: data.root of the run)")
    args = parser.parse_args(argv)
    for run in args.runs:
        for path in write_run_plots(run, data_root=args.data):
            print(path)


if __name__ == "__main__":
    main()
