"""Salt on a whole seismic section:
`python -m salt.section INPUT --runs RUN_DIR... --out OUT_DIR`.

INPUT is a 2-D section (SEG-Y, .npy or an image). It is scaled to 8-bit like the training tiles
(salt.sections.seismic), cut into overlapping 101x101 tiles, predicted with the TTA and checkpoint
ensemble of salt.predict, and blended back (salt.sections.stitch). OUT_DIR receives probability.npy
(float32, the section's shape), mask.png (0/255) and overlay.png (the section with the
predicted salt in red, and the truth's outline in green when `--truth` is given).
"""

from __future__ import annotations

import argparse
import sys
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from salt.core.errors import SaltError, exit_on_salt_error
from salt.core.files import atomic_path
from salt.core.metrics import pooled_iou
from salt.core.rundir import checkpoint_files, run_entries
from salt.data.io import write_png
from salt.inference.tiles import (
    check_tta,
    load_model,
    predict_ensemble,
    resolve_device,
)
from salt.sections.domain import domain_warning
from salt.sections.options import add_prediction_arguments, check_stride, make_output_dir
from salt.sections.seismic import read_section, scaling_for
from salt.sections.stitch import stitch
from salt.sections.truth import read_truth

SALT_COLOUR = np.array([0, 0, 255], dtype=np.float32)  # BGR red
TRUTH_COLOUR = (0, 255, 0)
SALT_ALPHA = 0.4


@dataclass
class SectionOutputs:
    """Rows arriving from `stitch`, written into the outputs (probabilities memory-mapped)."""

    probability: np.memmap
    mask: np.ndarray
    overlay: np.ndarray
    threshold: float
    salt_pixels: int = field(default=0)

    def __call__(self, top: int, image: np.ndarray, probabilities: np.ndarray) -> None:
        rows = slice(top, top + len(image))
        self.probability[rows] = probabilities
        salt = probabilities >= self.threshold
        self.mask[rows] = salt * np.uint8(255)
        gray = np.repeat(image[..., None], 3, axis=-1).astype(np.float32)
        tinted = np.where(salt[..., None], (1 - SALT_ALPHA) * gray + SALT_ALPHA * SALT_COLOUR, gray)
        self.overlay[rows] = np.rint(tinted).astype(np.uint8)
        self.salt_pixels += int(salt.sum())


def draw_outline(overlay: np.ndarray, mask: np.ndarray, colour, thickness: int = 2) -> None:
    contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_LIST, cv2.CHAIN_APPROX_SIMPLE)
    cv2.drawContours(overlay, contours, -1, colour, thickness)


def predict_section(
    input_path,
    runs,
    out_dir,
    stride: int = 50,
    tta=("none", "hflip"),
    checkpoints=("auto",),
    batch_size: int = 64,
    device: str = "auto",
    precision: str | None = "bf16-mixed",
    inline: int | None = None,
    crossline: int | None = None,
    clip_percentile: float = 99.0,
    threshold: float = 0.5,
    truth=None,
) -> dict:
    """Write OUT_DIR/probability.npy, mask.png and overlay.png; return a summary."""
    input_path, out_dir = Path(input_path), Path(out_dir)
    tta = check_tta(tta, key="--tta")
    paths = checkpoint_files(run_entries("--runs", runs), checkpoints)
    section = read_section(input_path, inline, crossline)
    truth_mask = (
        None if truth is None else np.asarray(read_truth(truth, section.shape, "section")) > 0
    )
    try:
        scaling = scaling_for(section, clip_percentile)
    except ValueError as error:
        raise SaltError(str(error)) from None
    check_stride(stride)
    device = resolve_device(device, key="--device")
    models = [load_model(path) for path in paths]  # each checkpoint once, for every strip
    warning = domain_warning(input_path, [section], scaling, paths)
    if warning:
        print(warning, file=sys.stderr)

    def predict(tiles: np.ndarray) -> np.ndarray:
        return predict_ensemble(
            models, tiles, batch_size=batch_size, device=device, tta=tta, precision=precision
        ).masks

    make_output_dir(out_dir)
    # everything goes to temporary files first, renamed together at the end (none on a failure)
    height, width = section.shape
    with ExitStack() as files:
        temporary = {
            name: files.enter_context(atomic_path(out_dir / name))
            for name in ("probability.npy", "mask.png", "overlay.png")
        }
        outputs = SectionOutputs(
            probability=np.lib.format.open_memmap(
                temporary["probability.npy"], mode="w+", dtype=np.float32, shape=(height, width)
            ),
            mask=np.zeros((height, width), dtype=np.uint8),
            overlay=np.zeros((height, width, 3), dtype=np.uint8),
            threshold=threshold,
        )
        tiles = stitch(section, predict, outputs, stride=stride, to_uint8=scaling)
        outputs.probability.flush()
        summary = {
            "shape": (height, width),
            "tiles": tiles,
            "checkpoints": len(paths),
            "tta": tta,
            "scaling": str(scaling),
            "salt_fraction": outputs.salt_pixels / (height * width),
        }
        if truth_mask is not None:
            summary["iou"] = pooled_iou(outputs.mask > 0, truth_mask)
            draw_outline(outputs.overlay, truth_mask, TRUTH_COLOUR)
        write_png(temporary["mask.png"], outputs.mask)
        write_png(temporary["overlay.png"], outputs.overlay)
    return summary


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m salt.section", description=__doc__.split("\n\n")[1]
    )
    parser.add_argument("input", type=Path, help="2-D section: .sgy/.segy, .npy or an image")
    add_prediction_arguments(parser)
    parser.add_argument("--device", default="auto", help="auto (cuda when available), cpu, cuda")
    line = parser.add_mutually_exclusive_group()
    line.add_argument("--inline", type=int, help="inline number of a 3-D SEG-Y file")
    line.add_argument("--crossline", type=int, help="crossline number of a 3-D SEG-Y file")
    parser.add_argument("--truth", type=Path, help="a true mask (image or .npy) to score")
    return parser.parse_args(argv)


@exit_on_salt_error
def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    summary = predict_section(
        args.input,
        args.runs,
        args.out,
        stride=args.stride,
        tta=args.tta,
        checkpoints=args.checkpoints,
        batch_size=args.batch_size,
        device=args.device,
        precision=args.precision,
        inline=args.inline,
        crossline=args.crossline,
        clip_percentile=args.clip_percentile,
        threshold=args.threshold,
        truth=args.truth,
    )
    height, width = summary["shape"]
    print(
        f"{args.input}: {height}x{width}, {summary['tiles']} tiles x {summary['checkpoints']} "
        f"checkpoint(s) x {len(summary['tta'])} TTA; {summary['scaling']}"
    )
    print(f"salt in {summary['salt_fraction']:.1%} of the section")
    if "iou" in summary:
        print(f"IoU against {args.truth}: {summary['iou']:.4f}")
    print(f"wrote {args.out}/probability.npy, mask.png, overlay.png")


if __name__ == "__main__":
    main()
