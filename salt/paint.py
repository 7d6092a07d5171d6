"""Lines of a survey out for painting, and painted lines in as training tiles:
`python -m salt.paint lines SURVEY --inline N --crossline N --out DIR`, then
`python -m salt.paint tiles DIR --survey SURVEY --out DATA_ROOT`.

`lines` writes each line asked for as a PNG (DIR/inline_<N>.png, crossline_<N>.png) at the
scaling salt.survey feeds the nets, with DIR/lines.json and DIR/LEGEND.md (paint salt red
(255, 0, 0), not-salt blue (0, 0, 255), leave the rest gray). `tiles` reads the painted lines
(PNGs, or .npy label arrays of 1, 0, -1; and/or --mask-cube, a label cube on the survey's
geometry), checks them against the survey, and writes 101x101 training tiles in the Kaggle
layout at DATA_ROOT with a per-pixel labelled mask (train/labelled/<id>.png) beside the salt
mask (salt.sections.painting).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from salt.core.errors import SaltError, exit_on_salt_error
from salt.sections.cube import AXES, open_cube
from salt.sections.options import add_vertical_argument
from salt.sections.painting import (
    DEFAULT_PERCENTILE,
    DEFAULT_STRIDE,
    LEGEND_MD,
    PaintedLine,
    PaintProblems,
    lines_json_percentile,
    mask_cube_lines,
    merged_lines,
    painted_lines,
    write_lines,
    write_tiles,
)

AXES_CHOICES = {"both": AXES, "inline": ("inline",), "crossline": ("crossline",)}


def add_survey_arguments(parser: argparse.ArgumentParser) -> None:
    add_vertical_argument(parser)
    parser.add_argument(
        "--overwrite", action="store_true", help="replace what an earlier call wrote there"
    )


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m salt.paint", description=__doc__.split("\n\n")[1]
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="{lines,tiles}")
    lines = commands.add_parser(
        "lines",
        help="write lines of a survey as PNGs to paint",
        description="write lines of a survey as PNGs to paint, at the scaling the nets see",
    )
    lines.add_argument("survey", type=Path, help="3-D SEG-Y file (.sgy/.segy) or .npy cube")
    lines.add_argument(
        "--inline", type=int, action="append", default=[], metavar="N", help="an inline number"
    )
    lines.add_argument(
        "--crossline", type=int, action="append", default=[], metavar="N", help="a crossline number"
    )
    lines.add_argument("--out", type=Path, required=True, help="folder for the PNGs")
    lines.add_argument(
        "--clip-percentile",
        type=float,
        default=DEFAULT_PERCENTILE,
        help="amplitudes are clipped at this percentile of |amplitude| (default 99, as "
        "salt.survey's)",
    )
    lines.add_argument(
        "--truth",
        type=Path,
        help="a true mask (.npy of the survey's shape, nonzero salt): write the lines painted "
        "from it, part left unpainted (to try the loop, or measure it, without an editor)",
    )
    lines.add_argument(
        "--unpainted", type=float, default=0.3, help="with --truth: the share left unpainted"
    )
    lines.add_argument("--seed", type=int, default=0, help="with --truth: where it is unpainted")
    add_survey_arguments(lines)
    tiles = commands.add_parser(
        "tiles",
        help="turn painted lines into training tiles",
        description="turn painted lines into training tiles in the Kaggle layout",
    )
    tiles.add_argument(
        "paint_dir",
        type=Path,
        nargs="?",
        help="folder of painted lines: inline_<N>.png / crossline_<N>.png (or .npy of 1, 0, -1)",
    )
    tiles.add_argument("--survey", type=Path, required=True, help="the survey the lines are of")
    tiles.add_argument("--out", type=Path, required=True, help="the data root to write")
    tiles.add_argument(
        "--mask-cube",
        type=Path,
        help="a label cube on the survey's geometry (.npy or SEG-Y: 1 salt, 0 not salt, "
        "-1 unlabelled): every line holding a labelled voxel is taken",
    )
    tiles.add_argument(
        "--axes",
        choices=tuple(AXES_CHOICES),
        default="both",
        help="which lines of --mask-cube are taken (default both)",
    )
    tiles.add_argument(
        "--stride", type=int, default=DEFAULT_STRIDE, help="tile spacing in pixels (1..101)"
    )
    tiles.add_argument(
        "--clip-percentile",
        type=float,
        help="amplitude clip percentile (default: the one PAINT_DIR/lines.json records, else 99)",
    )
    add_survey_arguments(tiles)
    return parser.parse_args(argv)


def lines_command(args: argparse.Namespace) -> None:
    cube = open_cube(args.survey, vertical=args.vertical)
    record = write_lines(
        cube,
        args.inline,
        args.crossline,
        args.out,
        percentile=args.clip_percentile,
        overwrite=args.overwrite,
        truth=args.truth,
        unpainted=args.unpainted,
        seed=args.seed,
    )
    written = dict.fromkeys(
        [f"inline_{n}.png" for n in args.inline] + [f"crossline_{n}.png" for n in args.crossline]
    )
    painted = " (painted from the truth)" if args.truth is not None else ""
    print(f"wrote {', '.join(written)} to {args.out}{painted}; {record['scaling']['text']}")
    print(f"paint them as {args.out / LEGEND_MD} says")


def tiles_command(args: argparse.Namespace) -> None:
    if args.paint_dir is None and args.mask_cube is None:
        raise SaltError("pass PAINT_DIR (the painted lines), --mask-cube MASK, or both")
    cube = open_cube(args.survey, vertical=args.vertical)
    percentile = args.clip_percentile
    if percentile is None:
        percentile = lines_json_percentile(args.paint_dir, cube) or DEFAULT_PERCENTILE
    lines: list[PaintedLine] = []
    if args.paint_dir is not None:
        lines = painted_lines(args.paint_dir, cube)
    if args.mask_cube is not None:
        lines = merged_lines(lines, mask_cube_lines(args.mask_cube, cube, AXES_CHOICES[args.axes]))
    record = write_tiles(
        cube, lines, args.out, stride=args.stride, percentile=percentile, overwrite=args.overwrite
    )
    counts = {axis: sum(line["axis"] == axis for line in record["lines"]) for axis in AXES}
    labelled = sum(line["labelled_pixels"] for line in record["lines"])
    salt = sum(line["salt_pixels"] for line in record["lines"])
    print(
        f"{args.out}: {record['tiles']} tiles (101x101, stride {args.stride}) from "
        f"{counts['inline']} inline(s) and {counts['crossline']} crossline(s); "
        f"{labelled} labelled pixels, {salt / max(1, labelled):.1%} of them salt; "
        f"{record['scaling']['text']}"
    )


@exit_on_salt_error
def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    try:
        if args.command == "lines":
            lines_command(args)
        else:
            tiles_command(args)
    except PaintProblems as problems:  # one line each
        for problem in problems.problems:
            print(f"error: {problem}", file=sys.stderr)
        raise SystemExit(1) from None


if __name__ == "__main__":
    main()
