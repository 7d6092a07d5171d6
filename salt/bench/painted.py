"""Teaching the nets a survey from painted lines: the 3-D IoU after 0, 1, 2, 4 painted inlines,
the ranked lines against random ones, and the calibration before and after.

    python -m salt.bench.painted --runs BASE_RUN... --out DIR [--cube 100x120x150]
        [--cube-seeds 1,2] [--frequency 0.16] [--noise 0.35] [--polarity -1] [--gain 1.5]
        [--lines 0,1,2,4] [--unpainted 0.3] [--minutes 5] [--random-draws 5] [--cores 0,1]
        [--figure PNG]

For each cube seed, a generated cube of the style given (`python -m salt.data.synthetic
--cube-only` with `--frequency/--noise/--polarity/--gain`: a style the base runs, trained on the
real tiles, have not seen), then:

- 0 lines: the base runs predict it (`python -m salt.survey --truth`);
- n lines: n inlines spread evenly over the cube (the k-th at (k + 1/2) / n of its inlines),
  painted from the truth with `--unpainted` of their pixels left unpainted (a band along the
  outline and patches, `salt.paint lines --truth --seed SEED`), then `python -m salt.teach
  --minutes M --seed SEED`: the base runs fine-tuned on them and the survey predicted again.

On the first cube seed, the ranking: the 2 top lines of the base survey's `lines_to_paint.csv`
against `--random-draws` draws of 2 lines at random among its inlines and crosslines (draw k:
numpy's default_rng(k)), each taught alike (seed 0).

Per run: the survey's 3-D IoU at 0.5, its expected calibration error (torchmetrics'
`binary_calibration_error`, 15 equal-width bins, every voxel), the fine-tuning's training
seconds (each fine-tuned run's metrics.json) and the whole teaching's wall seconds. Every
process is pinned to one core of `--cores` with one thread (as many at once as cores), so a
fine-tuning's minutes are minutes of one core. `model.encoder_weights=null`: no network.
Finished runs are kept: run the same command again after a stop. Prints the tables, writes
OUT/results.json.
"""

from __future__ import annotations

import argparse
import csv
import functools
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torchmetrics.functional.classification import binary_calibration_error

from salt.bench.quality import Job, run_jobs
from salt.core.files import write_json
from salt.core.rundir import RunDir
from salt.sections.cube import open_cube

CALIBRATION_BINS = 15
RANKED_LINES = 2


def spread_inlines(count: int, inlines: int) -> list[int]:
    """The indices of `count` inlines spread evenly over `inlines`: the k-th at (k + 1/2) / count."""
    return [int((k + 0.5) * inlines / count) for k in range(count)]


def random_lines(draw: int, inlines: int, crosslines: int, count: int) -> list[tuple[str, int]]:
    """`count` distinct lines (axis, index) drawn at random among every inline and crossline."""
    everything = [("inline", i) for i in range(inlines)] + [
        ("crossline", c) for c in range(crosslines)
    ]
    picks = np.random.default_rng(draw).choice(len(everything), size=count, replace=False)
    return [everything[int(p)] for p in sorted(picks)]


def calibration_error(probability: np.ndarray, truth: np.ndarray) -> float:
    """Expected calibration error of a probability volume against its true mask (every voxel)."""
    return float(
        binary_calibration_error(
            torch.from_numpy(np.array(probability, dtype=np.float32)).flatten(),
            torch.from_numpy(np.asarray(truth) > 0).flatten().long(),
            n_bins=CALIBRATION_BINS,
            norm="l1",
        )
    )


def run(command: list[str]) -> None:
    """`python -m COMMAND` in this process's foreground; its error exits the benchmark."""
    result = subprocess.run([sys.executable, "-m", *command], capture_output=True, text=True)
    if result.returncode != 0:
        sys.exit(f"error: {' '.join(command[:2])} failed:\n{result.stdout}{result.stderr}")


class CubeRuns:
    """One generated cube and the runs on it, under OUT/cube_s<seed>."""

    def __init__(self, out: Path, seed: int, args: argparse.Namespace) -> None:
        self.seed, self.args = seed, args
        self.folder = out / f"cube_s{seed}"
        self.cube = self.folder / "data" / "cube.sgy"
        self.truth = self.folder / "data" / "cube_mask.npy"

    def generate(self) -> None:
        if self.truth.is_file():
            return
        style = [
            f"--{name}={value}"
            for name in ("frequency", "noise", "polarity", "gain")
            if (value := getattr(self.args, name)) is not None
        ]
        data = self.folder / "data"
        run(["salt.data.synthetic", str(data), "--cube", self.args.cube, "--cube-only",
             "--seed", str(self.seed), *style])  # fmt: skip

    @functools.cached_property
    def lines(self) -> tuple[np.ndarray, np.ndarray]:
        """The cube's inline and crossline numbers (read once, after `generate`)."""
        cube = open_cube(self.cube)
        try:
            return np.asarray(cube.axes.inlines), np.asarray(cube.axes.crosslines)
        finally:
            cube.close()

    @functools.cached_property
    def true_mask(self) -> np.ndarray:
        """The cube's truth (read once, for every run's calibration error)."""
        return np.load(self.truth)

    def base_job(self) -> Job:
        out = self.folder / "lines_0"
        return Job(
            f"s{self.seed} 0 lines",
            out,
            ["salt.survey", str(self.cube), "--runs", *self.args.runs, "--out", str(out / "survey"),
             "--truth", str(self.truth)],
        )  # fmt: skip

    def teach_job(self, name: str, lines: list[tuple[str, int]], seed: int) -> Job:
        """Paint `lines` (axis, index) from the truth now; the job teaches the runs from them."""
        out = self.folder / name
        painted = out / "painted"
        if not (painted / "lines.json").is_file():
            inlines, crosslines = self.lines
            numbers = {"inline": inlines, "crossline": crosslines}
            chosen = [f"--{axis}={int(numbers[axis][index])}" for axis, index in lines]
            run(["salt.paint", "lines", str(self.cube), *chosen, "--out", str(painted),
                 "--truth", str(self.truth), "--unpainted", str(self.args.unpainted),
                 "--seed", str(seed)])  # fmt: skip
        return Job(
            f"s{self.seed} {name}",
            out,
            ["salt.teach", str(self.cube), "--painted", str(painted), "--runs", *self.args.runs,
             "--out", str(out / "taught"), "--minutes", str(self.args.minutes),
             "--seed", str(seed), "--truth", str(self.truth),
             *(f"--train-override={o}" for o in self.args.train_override)],
        )  # fmt: skip

    def survey_dir(self, name: str) -> Path:
        if name == "lines_0":
            return self.folder / name / "survey"
        return self.folder / name / "taught" / "survey"

    def result(self, name: str, lines: list[tuple[str, int]]) -> dict:
        survey = self.survey_dir(name)
        summary = json.loads((survey / "summary.json").read_text())
        probability = np.load(survey / "probability.npy", mmap_mode="r")
        row = {
            "cube_seed": self.seed,
            "run": name,
            "lines": [f"{axis} {index}" for axis, index in lines],
            "iou": round(summary["iou"], 4),
            "ece": round(calibration_error(probability, self.true_mask), 4),
            "survey_seconds": round(summary["seconds"], 1),
        }
        runs = sorted((self.folder / name / "taught" / "runs").glob("*"))
        if runs:
            metrics = [RunDir(r).read_metrics() or {} for r in runs]
            row["fine_tune_seconds"] = round(sum(m["train_seconds"] for m in metrics), 1)
            row["fine_tune_steps"] = sum(m["steps"] for m in metrics)
        return row

    def finished(self, name: str) -> bool:
        return (self.survey_dir(name) / "summary.json").is_file()

    def ranked_lines(self) -> list[tuple[str, int]]:
        """The top lines of the base survey's lines_to_paint.csv, (axis, index)."""
        with (self.survey_dir("lines_0") / "lines_to_paint.csv").open(newline="") as rows:
            picks = list(csv.DictReader(rows))[:RANKED_LINES]
        return [(pick["axis"], int(pick["index"])) for pick in picks]


def curve_figure(rows: list[dict], ranking: list[dict], path: Path) -> Path:
    """The 3-D IoU against the painted inlines (each cube and their mean), and at 2 lines the
    ranked lines and the random draws; the target 0.8 dashed."""
    from salt.analysis.plots import new_figure, save_figure

    figure = new_figure(6.4, 4.2)
    ax = figure.add_subplot(1, 1, 1)
    counts = sorted({int(row["run"].split("_")[1]) for row in rows})
    for seed in sorted({row["cube_seed"] for row in rows}):
        mine = {int(r["run"].split("_")[1]): r["iou"] for r in rows if r["cube_seed"] == seed}
        ax.plot(counts, [mine[c] for c in counts], "o-", alpha=0.5, label=f"cube seed {seed}")
    means = [statistics.mean(r["iou"] for r in rows if r["run"] == f"lines_{c}") for c in counts]
    ax.plot(counts, means, "s-", color="black", linewidth=2, label="mean")
    randoms = [r["iou"] for r in ranking if r["run"].startswith("random")]
    if ranking:
        ax.plot([RANKED_LINES + 0.12] * len(randoms), randoms, "x", color="gray",
                label=f"{RANKED_LINES} random lines")  # fmt: skip
        ax.plot([RANKED_LINES + 0.12], [ranking[0]["iou"]], "*", color="crimson", markersize=12,
                label=f"the {RANKED_LINES} top lines of lines_to_paint.csv")  # fmt: skip
    ax.axhline(0.8, linestyle="--", color="gray", linewidth=1)
    ax.set_xticks(counts)
    ax.set_xlabel("painted lines (inlines spread evenly; ranked/random: any axis)")
    ax.set_ylabel("3-D IoU of the survey")
    ax.set_ylim(0, 1)
    ax.legend(loc="best", fontsize=8)
    ax.set_title("Teaching the nets a survey of an unseen style", fontsize=10)
    return save_figure(figure, path)


def parse_list(text: str, kind=int) -> list:
    return [kind(word) for word in text.split(",") if word.strip()]


def print_rows(title: str, rows: list[dict]) -> None:
    print(f"\n{title}")
    print(
        f"{'cube':>5} {'run':<14}{'3-D IoU':>9}{'ECE':>8}{'fine-tune s':>13}  lines (axis, index)"
    )
    for row in rows:
        seconds = row.get("fine_tune_seconds")
        spent = f"{seconds:>13.0f}" if seconds is not None else f"{'':>13}"
        print(f"{row['cube_seed']:>5} {row['run']:<14}{row['iou']:>9.4f}{row['ece']:>8.4f}{spent}"
              f"  {', '.join(row['lines'])}")  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", nargs="+", required=True, help="the base runs (real tiles)")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--cube", default="100x120x150", help="IxXxT of the generated cubes")
    parser.add_argument("--cube-seeds", default="1,2")
    parser.add_argument("--frequency", type=float, default=0.16)
    parser.add_argument("--noise", type=float, default=0.35)
    parser.add_argument("--polarity", type=int, default=-1, choices=(1, -1))
    parser.add_argument("--gain", type=float, default=1.5)
    parser.add_argument("--lines", default="0,1,2,4", help="painted inlines per run")
    parser.add_argument("--unpainted", type=float, default=0.3)
    parser.add_argument("--minutes", type=float, default=5.0, help="fine-tuning per checkpoint")
    parser.add_argument("--random-draws", type=int, default=5, help="0: no ranking runs")
    parser.add_argument("--cores", default="0,1", help="cores to pin the runs to, one each")
    parser.add_argument("--train-override", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--figure", type=Path, help="draw the curve as a PNG here")
    args = parser.parse_args(argv)
    try:
        cube_seeds, counts, cores = (
            parse_list(t) for t in (args.cube_seeds, args.lines, args.cores)
        )
    except ValueError as error:
        parser.error(f"--cube-seeds, --lines, --cores: comma-separated integers ({error})")
    if not cube_seeds or any(c < 0 for c in counts):
        parser.error("--cube-seeds: at least one; --lines: counts of 0 or more")
    for run_dir in args.runs:
        if not RunDir(Path(run_dir)).checkpoints.is_dir():
            parser.error(f"--runs {run_dir}: not a run directory (no checkpoints/)")
    args.runs = [str(Path(r).resolve()) for r in args.runs]
    out = args.out.resolve()
    started = time.time()

    cubes = [CubeRuns(out, seed, args) for seed in cube_seeds]
    taught: list[tuple[CubeRuns, str, list[tuple[str, int]]]] = []
    jobs: list[tuple[Job, bool]] = []  # each with whether it is finished
    for cube in cubes:
        cube.generate()
        inlines = len(cube.lines[0])
        for count in counts:
            if count == 0:
                jobs.append((cube.base_job(), cube.finished("lines_0")))
                taught.append((cube, "lines_0", []))
                continue
            lines = [("inline", index) for index in spread_inlines(count, inlines)]
            name = f"lines_{count}"
            jobs.append((cube.teach_job(name, lines, seed=cube.seed), cube.finished(name)))
            taught.append((cube, name, lines))
    ranking = args.random_draws > 0
    if ranking and not any(name == "lines_0" for cube, name, _ in taught if cube is cubes[0]):
        # the ranking needs the base survey's picks
        jobs.insert(0, (cubes[0].base_job(), cubes[0].finished("lines_0")))
    failed = run_jobs([j for j, done in jobs if not done], cores)
    if failed:
        sys.exit(f"error: run(s) {', '.join(failed)} failed: see {out}/<cube>/<run>/bench.log")

    ranked: list[tuple[CubeRuns, str, list[tuple[str, int]]]] = []
    if ranking:
        cube = cubes[0]
        inlines, crosslines = (len(a) for a in cube.lines)
        ranked.append((cube, "ranked", cube.ranked_lines()))
        for draw in range(args.random_draws):
            ranked.append(
                (cube, f"random_{draw}", random_lines(draw, inlines, crosslines, RANKED_LINES))
            )
        failed = run_jobs(
            [c.teach_job(n, lines, seed=0) for c, n, lines in ranked if not c.finished(n)], cores
        )
        if failed:
            sys.exit(f"error: run(s) {', '.join(failed)} failed: see {out}/<cube>/<run>/bench.log")

    rows = [cube.result(name, lines) for cube, name, lines in taught]
    print_rows("painted inlines, spread evenly (3-D IoU at 0.5, ECE of the probability)", rows)
    by_count: dict[str, list[float]] = {}
    for row in rows:
        by_count.setdefault(row["run"], []).append(row["iou"])
    for name, values in by_count.items():
        print(f"  {name}: mean 3-D IoU {statistics.mean(values):.4f} over {len(values)} cube(s)")
    ranking_rows = [cube.result(name, lines) for cube, name, lines in ranked]
    if ranking_rows:
        print_rows(f"{RANKED_LINES} lines: the uncertainty ranking against random", ranking_rows)
        randoms = [r["iou"] for r in ranking_rows if r["run"].startswith("random")]
        print(f"  ranked {ranking_rows[0]['iou']:.4f}; random mean {statistics.mean(randoms):.4f}"
              f" (min {min(randoms):.4f}, max {max(randoms):.4f})")  # fmt: skip
    if args.figure:
        print(f"wrote {curve_figure(rows, ranking_rows, args.figure)}")
    settings = {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}
    write_json(
        out / "results.json",
        {"settings": settings, "runs": rows, "ranking": ranking_rows,
         "wall_seconds": round(time.time() - started, 1)},
    )  # fmt: skip
    print(f"wrote {out / 'results.json'}")


if __name__ == "__main__":
    main()
