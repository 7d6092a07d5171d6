"""The command-line options that salt.section and salt.survey share: which nets, where the
results go, how tiles are laid and predicted, how amplitudes are scaled and probabilities
thresholded; and the checks of them that both make."""

from __future__ import annotations

import argparse
from pathlib import Path

from salt.core.errors import SaltError
from salt.core.rundir import CHECKPOINT_KINDS
from salt.data.padding import TILE
from salt.inference.tiles import TTA_TRANSFORMS
from salt.sections import stitch


def add_prediction_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--runs",
        nargs="+",
        required=True,
        help="run directories, folders of runs (a multirun), .ckpt files or glob patterns",
    )
    parser.add_argument("--out", type=Path, required=True, help="output directory")
    parser.add_argument(
        "--stride", type=int, default=50, help=f"tile spacing in pixels (1..{TILE})"
    )
    parser.add_argument("--tta", nargs="+", default=["none", "hflip"], choices=TTA_TRANSFORMS)
    parser.add_argument(
        "--checkpoints", nargs="+", default=["auto"], choices=CHECKPOINT_KINDS, metavar="KIND"
    )
    parser.add_argument("--batch-size", type=int, default=64, help="tiles per forward pass")
    parser.add_argument(
        "--precision",
        default="bf16-mixed",
        help="autocast: bf16-mixed (a GPU, or a CPU with bf16 units), 16-mixed (a GPU), 32-true",
    )
    parser.add_argument(
        "--clip-percentile",
        type=float,
        default=99.0,
        help="amplitudes are clipped at this percentile of |amplitude| (default 99)",
    )
    parser.add_argument("--threshold", type=float, default=0.5, help="probability -> mask")


def add_vertical_argument(parser: argparse.ArgumentParser) -> None:
    """--vertical: what a SEG-Y survey's samples are (salt.survey and salt.paint read it alike)."""
    parser.add_argument(
        "--vertical",
        choices=("time", "depth"),
        default="time",
        help="what a SEG-Y survey's samples are: time (ms) or depth (m)",
    )


def check_stride(stride: int) -> None:
    """`--stride` refused in one line unless tiles `stride` pixels apart overlap or touch."""
    try:
        stitch.check_stride(stride)
    except ValueError as error:
        raise SaltError(f"--{error}") from None


def make_output_dir(path: Path) -> None:
    """`--out` made (with its parents), or refused in one line naming why it cannot be."""
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise SaltError(f"{path}: cannot create the output directory ({error.strerror})") from None
