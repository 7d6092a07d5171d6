"""One row per training run: `python -m salt.report outputs/ [--out DIR]`.

Finds every run directory (one holding metrics.json) under the given folders, prints a table and
writes it as report.csv and report.md (into the first folder, or `--out`).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import pandas as pd
from rich.console import Console
from rich.table import Table

from salt.core.errors import SaltError, exit_on_salt_error
from salt.core.files import write_text
from salt.core.rundir import METRICS, RunDir, matching

COLUMNS = {
    "run": "run",
    "experiment": "experiment",
    "fold": "fold",
    "encoder": "encoder",
    "epochs": "epochs",
    "best_val_score": "best val",
    "oof_score": "OOF",
    "oof_from": "OOF from",
    "wall_seconds": "wall",
}


def find_runs(paths: Sequence[Path]) -> list[Path]:
    """Run directories (holding metrics.json) under `paths` (folders, files or glob patterns),
    sorted, each once."""
    runs: set[Path] = set()
    for path in (match for pattern in paths for match in matching("paths", pattern)):
        if not path.exists():
            raise SaltError(f"{path}: no such file or directory")
        if path.is_file():
            path = path.parent
        runs.update(found.parent for found in path.rglob(METRICS))
    return sorted(runs)


def run_row(run: Path, relative_to: Path | None = None) -> dict:
    """The report row of one run directory.

    The OOF score is the tuned one (postprocess.json of `python -m salt.tune`, over every run
    tuned together) when there is one, else the run's best-threshold out-of-fold score.
    """
    metrics = RunDir(run).read_metrics() or {}
    tuned = RunDir(run).read_postprocess()
    if tuned and tuned.get("oof_score_after") is not None:
        oof_score, oof_from = tuned["oof_score_after"], "tuned"
    elif metrics.get("oof_best_score") is not None:
        threshold = metrics.get("oof_best_threshold")
        oof_score, oof_from = metrics["oof_best_score"], f"threshold {threshold:g}"
    else:
        oof_score, oof_from = None, ""
    name = run
    if relative_to is not None and run.is_relative_to(relative_to):
        name = run.relative_to(relative_to)
    return {
        "run": str(name),
        "experiment": metrics.get("experiment"),
        "fold": metrics.get("fold"),
        "encoder": metrics.get("encoder"),
        "epochs": metrics.get("epochs"),
        "best_val_score": metrics.get("best_val_score"),
        "oof_score": oof_score,
        "oof_from": oof_from,
        "wall_seconds": metrics.get("wall_seconds"),
    }


def report_table(paths: Sequence[Path]) -> pd.DataFrame:
    """The report of every run under `paths` (one row each, columns as `COLUMNS`)."""
    runs = find_runs(paths)
    if not runs:
        shown = ", ".join(map(str, paths))
        raise SaltError(f"{shown}: no run directories found (no {METRICS} below)")
    base = Path(paths[0]) if len(paths) == 1 and Path(paths[0]).is_dir() else None
    return pd.DataFrame([run_row(run, base) for run in runs], columns=list(COLUMNS))


def wall_time(seconds) -> str:
    if seconds is None or pd.isna(seconds):
        return ""
    minutes, seconds = divmod(round(float(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{seconds:02d}" if hours else f"{minutes}:{seconds:02d}"


def display_rows(table: pd.DataFrame) -> list[list[str]]:
    """The table's cells as text: scores with 4 decimals, wall time as [h:]mm:ss."""

    def cell(column: str, value) -> str:
        if value is None or (not isinstance(value, str) and pd.isna(value)):
            return ""
        if column in ("best_val_score", "oof_score"):
            return f"{float(value):.4f}"
        if column == "wall_seconds":
            return wall_time(value)
        if column in ("fold", "epochs"):
            return str(int(value))
        return str(value)

    return [[cell(c, row[c]) for c in COLUMNS] for _, row in table.iterrows()]


def markdown(table: pd.DataFrame) -> str:
    lines = [
        "| " + " | ".join(COLUMNS.values()) + " |",
        "|" + "|".join(" --- " for _ in COLUMNS) + "|",
    ]
    lines += ["| " + " | ".join(row) + " |" for row in display_rows(table)]
    return "\n".join(lines) + "\n"


def write_report(table: pd.DataFrame, out: Path) -> tuple[Path, Path]:
    if not out.is_dir():
        raise SaltError(f"{out}: output folder does not exist")
    csv_path, md_path = out / "report.csv", out / "report.md"
    write_text(csv_path, table.to_csv(index=False, lineterminator="\n"))
    write_text(md_path, markdown(table))
    return csv_path, md_path


def print_table(table: pd.DataFrame, console: Console | None = None) -> None:
    rich_table = Table(title=f"{len(table)} run(s)")
    for column, header in COLUMNS.items():
        numeric = column in ("fold", "epochs", "best_val_score", "oof_score", "wall_seconds")
        rich_table.add_column(
            header,
            justify="right" if numeric else "left",
            overflow="fold" if column == "run" else "ellipsis",
        )
    for row in display_rows(table):
        rich_table.add_row(*row)
    if console is None:  # rich assumes 80 columns when not on a terminal: too narrow here
        console = Console() if sys.stdout.isatty() else Console(width=120)
    console.print(rich_table)


@exit_on_salt_error
def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m salt.report",
        description="Tabulate every run directory (metrics.json) under the given folders.",
    )
    parser.add_argument("paths", nargs="+", type=Path, help="folders holding run directories")
    parser.add_argument(
        "--out", type=Path, help="where report.csv and report.md go (default: the first folder)"
    )
    args = parser.parse_args(argv)
    table = report_table(args.paths)
    out = args.out or (args.paths[0] if args.paths[0].is_dir() else args.paths[0].parent)
    csv_path, md_path = write_report(table, out)
    print_table(table)
    print(f"wrote {csv_path} and {md_path}")


if __name__ == "__main__":
    main()
