"""Salt in a whole 3-D survey:
`python -m salt.survey SURVEY.sgy --runs RUN_DIR... --out OUT_DIR`.

Every inline and every crossline of a 3-D post-stack SEG-Y file is predicted as a whole section
(salt.section's tiling and blending, salt.predict's TTA and checkpoint ensemble), the two passes
are averaged into one probability volume, and OUT_DIR receives probability.sgy and mask.sgy (the
input's headers, trace for trace), probability.npy and mask.npy ([inline, crossline, sample]),
uncertainty.sgy and uncertainty.npy (the standard deviation of every view's probability: each
checkpoint's each TTA view, on the inline and on the crossline; salt.sections.uncertainty),
lines_to_paint.csv (the lines whose painting would teach the nets most, spread out), traces.npy
(missing, live or dead trace at each grid position), bodies.csv (the 3-D salt bodies),
slices.png and bodies.png (pictures) and summary.json. Lines are streamed and written as they
are predicted, shared between processes by Lightning's predict loop (--devices, --num-nodes, or
torchrun/srun), and a killed run continues from the lines it had done.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytorch_lightning as pl
from pytorch_lightning.utilities import rank_zero_only
from scipy import ndimage

from salt.core.errors import DataError, SaltError, exit_on_salt_error
from salt.core.files import atomic_path, write_json
from salt.core.program_exit import run_then_exit
from salt.core.rundir import checkpoint_files, run_entries
from salt.inference.tiles import check_tta, load_model
from salt.sections.bodies import fill_enclosed_holes, find_bodies, write_bodies_csv
from salt.sections.cube import AXES, Survey
from salt.sections.domain import domain_warning, survey_sections
from salt.sections.lines import (
    LinePredictor,
    LineProgressBar,
    LineWriter,
    StopOnSigterm,
    SurveyLines,
)
from salt.sections.options import (
    add_prediction_arguments,
    add_vertical_argument,
    check_stride,
    make_output_dir,
)
from salt.sections.paging import Slices, return_freed_memory
from salt.sections.pictures import bodies_figure, slices_figure
from salt.sections.segy_out import IEEE_FLOAT, INT16, write_segy_like
from salt.sections.survey_work import (
    BODIES_CSV,
    BODIES_PNG,
    DEAD,
    LINE_FILE,
    LINES_TO_PAINT,
    LIVE,
    MASK_SEGY,
    MERGES,
    MISSING,
    OUTPUTS,
    PROBABILITY_SEGY,
    SLICES_PNG,
    SUMMARY,
    UNCERTAINTY_SEGY,
    SurveyWork,
)
from salt.sections.truth import read_truth
from salt.sections.uncertainty import rank_lines, write_lines_to_paint

PICTURE_SIZE = 96  # the most voxels along an axis of the volume the bodies are rendered from


def parse_axes(text: str) -> list[str]:
    axes = [a.strip() for a in text.split(",") if a.strip()]
    unknown = [a for a in axes if a not in AXES]
    if not axes or unknown or len(set(axes)) != len(axes):
        raise argparse.ArgumentTypeError(f"expected inline, crossline or both, got {text!r}")
    return [a for a in AXES if a in axes]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m salt.survey", description=__doc__.split("\n\n")[1]
    )
    parser.add_argument("input", type=Path, help="3-D post-stack SEG-Y file (.sgy/.segy)")
    add_prediction_arguments(parser)
    parser.add_argument(
        "--axes",
        type=parse_axes,
        default=list(AXES),
        help="which lines to predict: inline,crossline (default), inline or crossline",
    )
    parser.add_argument(
        "--merge", choices=MERGES, default="mean", help="how the two passes are combined"
    )
    parser.add_argument(
        "--min-voxels", type=int, default=0, help="drop salt bodies smaller than this"
    )
    parser.add_argument(
        "--fill-holes", action="store_true", help="fill holes enclosed in a salt body"
    )
    add_vertical_argument(parser)
    parser.add_argument(
        "--suggest",
        type=int,
        default=10,
        help="how many lines lines_to_paint.csv suggests painting next (default 10)",
    )
    parser.add_argument(
        "--suggest-spacing",
        type=int,
        default=10,
        help="a suggested line down-weights the lines of its axis closer than this many lines "
        "to it (distance / spacing), so that the suggestions spread out (default 10; 1: not)",
    )
    parser.add_argument("--no-pictures", action="store_true", help="skip slices.png and bodies.png")
    parser.add_argument("--truth", type=Path, help="a true mask (.npy, the cube's shape) to score")
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="replace a finished survey or an unfinished one of other settings "
        "(an unfinished one of these settings is continued)",
    )
    parser.add_argument("--accelerator", default="auto", help="auto, cpu or gpu (Lightning's)")
    parser.add_argument("--devices", type=int, default=1, help="processes per node")
    parser.add_argument("--num-nodes", type=int, default=1)
    parser.add_argument(
        "--workers", type=int, default=0, help="DataLoader worker processes reading lines"
    )
    return parser.parse_args(argv)


def file_identity(path: Path) -> dict[str, Any]:
    stat = path.stat()
    return {"path": str(path.resolve()), "bytes": stat.st_size, "mtime_ns": stat.st_mtime_ns}


def check_options(args: argparse.Namespace) -> None:
    check_stride(args.stride)
    if not 0 < args.threshold < 1:
        raise SaltError(f"--threshold: must be in (0, 1), got {args.threshold}")
    if args.min_voxels < 0:
        raise SaltError(f"--min-voxels: must be at least 0, got {args.min_voxels}")
    if args.batch_size < 1:
        raise SaltError(f"--batch-size: must be at least 1, got {args.batch_size}")
    if args.workers < 0:
        raise SaltError(f"--workers: must be at least 0, got {args.workers}")
    if args.suggest < 0:
        raise SaltError(f"--suggest: must be at least 0, got {args.suggest}")
    if args.suggest_spacing < 1:
        raise SaltError(f"--suggest-spacing: must be at least 1, got {args.suggest_spacing}")


@dataclass
class MaskViews:
    """What one pass over the final mask gathers: its salt voxels, the voxels it shares with the
    truth and their union, the salt of the three picture slices through `position`, and the
    mask shrunk to at most PICTURE_SIZE voxels an axis (a block is salt where any voxel is)."""

    salt_voxels: int
    shared_voxels: int
    union_voxels: int
    slices: dict[str, np.ndarray]
    small: np.ndarray
    step: tuple[int, int, int]


def picture_position(shape: tuple[int, int, int], bodies) -> tuple[int, int, int]:
    """The centre of the largest body's bounding box; the survey's centre without salt."""
    if not bodies:
        return (shape[0] // 2, shape[1] // 2, shape[2] // 2)
    middle = (np.array(bodies[0].start) + np.array(bodies[0].stop) - 1) // 2
    return (int(middle[0]), int(middle[1]), int(middle[2]))


def mask_views(mask, position, truth: Slices | None = None) -> MaskViews:
    shape = mask.shape
    inline, crossline, sample = position
    step = tuple(max(1, math.ceil(n / PICTURE_SIZE)) for n in shape)
    small = np.zeros([math.ceil(n / s) for n, s in zip(shape, step)], dtype=bool)
    slices = {
        "inline": np.zeros(shape[1:], dtype=bool),
        "crossline": np.zeros((shape[0], shape[2]), dtype=bool),
        "slice": np.zeros(shape[:2], dtype=bool),
    }
    salt = shared = union = 0
    for index in range(shape[0]):
        plane = mask[index] > 0
        salt += int(np.count_nonzero(plane))
        if truth is not None:
            true = truth[index] > 0
            shared += int(np.count_nonzero(plane & true))
            union += int(np.count_nonzero(plane | true))
        if index == inline:
            slices["inline"] = plane
        slices["crossline"][index] = plane[crossline]
        slices["slice"][index] = plane[:, sample]
        padded = np.pad(plane, [(0, -n % s) for n, s in zip(plane.shape, step[1:])])
        blocks = padded.reshape(small.shape[1], step[1], small.shape[2], step[2])
        small[index // step[0]] |= blocks.any(axis=(1, 3))
    return MaskViews(salt, shared, union, slices, small, (step[0], step[1], step[2]))


def labelled_by_size(small: np.ndarray) -> np.ndarray:
    """The bodies of a small mask numbered by size, 1 = the largest."""
    labels, count = ndimage.label(small)
    sizes = np.bincount(labels.ravel(), minlength=count + 1)[1:]
    rank = np.zeros(count + 1, dtype=np.int32)
    rank[1 + np.argsort(-sizes, kind="stable")] = np.arange(1, count + 1)
    return rank[labels]


def draw_pictures(
    work, survey, scaling, time_slice, views: MaskViews, position, files: ExitStack
) -> None:
    inline, crossline, _ = position
    seismic = {
        "inline": scaling(survey.line("inline", inline)).T,
        "crossline": scaling(survey.line("crossline", crossline)).T,
        "slice": scaling(time_slice),
    }
    slices_figure(
        files.enter_context(atomic_path(work.output(SLICES_PNG))),
        seismic,
        views.slices,
        survey.axes,
        position,
    )
    return_freed_memory()  # the figure's canvas and images, before the next one
    bodies_figure(
        files.enter_context(atomic_path(work.output(BODIES_PNG))),
        labelled_by_size(views.small),
        survey.axes,
        views.step,
    )


def finish(
    args,
    survey: Survey,
    work: SurveyWork,
    scaling,
    models: int,
    truth: Slices | None,
    started: float,
) -> dict:
    """Merge the passes and write every final file (one process)."""
    predicted = time.perf_counter()
    with ExitStack() as files:
        summary_path = files.enter_context(atomic_path(work.output(SUMMARY)))  # renamed last
        merged = work.merge(survey, args.axes, args.threshold, files, args.merge)
        mask = merged.mask
        filled = fill_enclosed_holes(mask, mask) if args.fill_holes else 0
        bodies = find_bodies(mask, mask, args.min_voxels)
        for name, slices, sample_format in (
            (PROBABILITY_SEGY, merged.probability, IEEE_FLOAT),
            (MASK_SEGY, mask, INT16),
            (UNCERTAINTY_SEGY, merged.uncertainty, IEEE_FLOAT),
        ):
            slices.flush()
            path = files.enter_context(atomic_path(work.output(name)))
            write_segy_like(survey, path, slices.volume, sample_format)
        write_bodies_csv(
            files.enter_context(atomic_path(work.output(BODIES_CSV))), bodies, survey.axes
        )
        scores = {axis: merged.scores.scores[axis] for axis in args.axes}
        picks = rank_lines(scores, args.suggest, args.suggest_spacing)
        write_lines_to_paint(
            files.enter_context(atomic_path(work.output(LINES_TO_PAINT))), picks, survey.axes
        )
        position = picture_position(survey.shape, bodies)
        dead, time_slice = survey.scan_traces(sample=position[2])
        traces = work.write_traces(survey, dead, files)
        views = mask_views(mask, position, truth)
        return_freed_memory()  # what the stages above freed, before the figures' canvases
        if not args.no_pictures:
            draw_pictures(work, survey, scaling, time_slice, views, position, files)
        live = traces == LIVE
        live_voxels = max(1, int(live.sum()) * survey.shape[2])
        numbers = {"inline": survey.axes.inlines, "crossline": survey.axes.crosslines}
        pictures = {SLICES_PNG, BODIES_PNG} if args.no_pictures else set()
        summary: dict[str, Any] = {
            "input": str(args.input),
            "shape": list(survey.shape),
            "lines": {axis: survey.line_count(axis) for axis in args.axes},
            "checkpoints": models,
            "tta": args.tta,
            "merge": args.merge,
            "scaling": str(scaling),
            "missing_traces": int(np.count_nonzero(traces == MISSING)),
            "dead_traces": int(np.count_nonzero(traces == DEAD)),
            # of the voxels of live traces (missing and dead ones hold no data, and no salt)
            "salt_fraction": views.salt_voxels / live_voxels,
            "filled_voxels": int(filled),
            "bodies": len(bodies),
            # the mean over the live traces' voxels (missing traces hold NaN, dead ones 0)
            "uncertainty": {"mean": merged.scores.total / live_voxels, "max": merged.scores.max},
            "lines_to_paint": [f"{p.axis} {int(numbers[p.axis][p.index])}" for p in picks],
            "files": [name for name in OUTPUTS if name not in pictures],
            "seconds": round(time.perf_counter() - started, 1),
            "finish_seconds": round(time.perf_counter() - predicted, 1),
        }
        if truth is not None:
            union = views.union_voxels
            summary["iou"] = 1.0 if union == 0 else views.shared_voxels / union
        write_json(summary_path, summary)
    work.remove_work()
    return summary


def summary_line(summary: dict, out: Path) -> str:
    shape = "x".join(str(n) for n in summary["shape"])
    lines = " + ".join(f"{n} {axis}s" for axis, n in summary["lines"].items())
    minutes, seconds = divmod(summary["seconds"], 60)
    text = (
        f"survey {shape} (inlines x crosslines x samples): {lines}, "
        f"{summary['checkpoints']} checkpoint(s) x {len(summary['tta'])} TTA, "
        f"salt {summary['salt_fraction']:.1%}, {summary['bodies']} bodies, "
        f"{int(minutes)} min {seconds:.0f} s -> {out}"
    )
    if "iou" in summary:
        text += f"; 3-D IoU {summary['iou']:.4f}"
    return text


def predict_survey(args: argparse.Namespace) -> dict | None:
    """Predict every line not yet done, then (rank 0) merge and write; rank 0's summary."""
    started = time.perf_counter()
    check_options(args)
    tta = check_tta(args.tta, key="--tta")
    if args.input.suffix.lower() not in (".sgy", ".segy"):
        raise DataError(args.input, "expected a 3-D SEG-Y file (.sgy or .segy)")
    survey = Survey(args.input, vertical=args.vertical)
    paths = checkpoint_files(run_entries("--runs", args.runs), args.checkpoints)
    try:
        scaling = survey.scaling(args.clip_percentile)
    except ValueError as error:
        raise SaltError(f"--clip-percentile: {error}") from None
    settings = {
        "input": file_identity(args.input),
        "checkpoints": [file_identity(Path(p)) for p in paths],
        "tta": tta,
        "stride": args.stride,
        "axes": args.axes,
        "scaling": str(scaling),
        "precision": args.precision,
        "line_file": LINE_FILE,
    }
    truth = None if args.truth is None else Slices(read_truth(args.truth, survey.shape, "survey"))
    work = SurveyWork(args.out)
    work.check(settings, args.overwrite)
    warning = domain_warning(args.input, survey_sections(survey), scaling, paths)
    if warning and rank_zero_only.rank == 0:  # type: ignore[attr-defined]
        print(warning, file=sys.stderr)
    make_output_dir(args.out)
    if predict_lines(args, survey, work, settings, scaling, paths, tta):
        return finish(args, survey, work, scaling, len(paths), truth, started)
    return None


def predict_lines(args, survey: Survey, work: SurveyWork, settings, scaling, paths, tta) -> bool:
    """Every line not yet done predicted into its line file, by every process; whether this
    process is rank 0. The nets and the Trainer are gone on return: the end runs without them."""
    world = args.devices * args.num_nodes
    trainer = pl.Trainer(
        accelerator=args.accelerator,
        devices=args.devices,
        num_nodes=args.num_nodes,
        strategy="ddp" if world > 1 else "auto",
        use_distributed_sampler=False,  # each rank takes its share (salt.sections.lines)
        logger=False,
        enable_checkpointing=False,
        enable_model_summary=False,
        callbacks=[LineWriter(work.write_line), StopOnSigterm(), LineProgressBar()],
    )
    module = LinePredictor(
        [load_model(path) for path in paths], tta, args.stride, args.batch_size, args.precision
    )
    lines = SurveyLines(survey, work, settings, args.overwrite, args.axes, scaling, args.workers)
    trainer.predict(module, datamodule=lines, return_predictions=False)
    trainer.strategy.barrier("survey-predicted")
    rank_zero = trainer.is_global_zero
    del trainer, module, lines  # the nets: in a reference cycle of the Trainer's
    return_freed_memory()
    return rank_zero


@exit_on_salt_error
def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    summary = predict_survey(args)
    if summary is not None:
        print(summary_line(summary, args.out))


def run() -> None:
    """The program (`salt-survey`, `python -m salt.survey`): `main`, then the process ends without
    the interpreter's teardown, which would page in unused CUDA libraries (salt.core.program_exit)."""
    run_then_exit(main)


if __name__ == "__main__":
    run()
