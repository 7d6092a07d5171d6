"""Head-to-head quality at equal compute: salt's recipes against a bare PyTorch loop.

    python -m salt.bench.quality DATA_ROOT --minutes 40 [--fold 0] [--cores 0,1] [--out DIR]
        [--arm bare] [--arm 'NAME=bare --precision bf16-mixed']
        [--arm 'NAME=experiment=cpu key=value ...'] ...

Every arm trains for the same wall-clock minutes on the training folds of salt's split, each
process pinned to one core of `--cores` with one thread (as many arms at once as cores, the
others queued), then the validation fold is predicted with flip TTA and scored with the
competition metric: at threshold 0.5, and with the post-processing `salt.tune` picks on it
(threshold, small components, empty-mask gate, holes; tuned and scored on the same fold, so
that column is optimistic for every arm alike). `bare` is `salt.bench.bare_loop` (at float32;
`NAME=bare ARGS` passes ARGS to it, e.g. `--precision bf16-mixed`); any other arm
is `python -m salt.train` with its overrides, `trainer.max_time` set to the budget and
`model.encoder_weights=null` (no network). salt's time includes its validation passes; the
final prediction of the fold is outside every arm's budget. Prints one table and writes
OUT/results.json.
"""

from __future__ import annotations

import argparse
import os
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from omegaconf import OmegaConf

from salt.core.config import CONFIG_DIR
from salt.core.files import write_json
from salt.core.rundir import RunDir
from salt.inference.tuning import tune

DEFAULT_ARMS = ["bare", "cpu=experiment=cpu"]


@dataclass
class Arm:
    name: str
    overrides: list[str] = field(default_factory=list)
    """salt.train's overrides, or the bare loop's arguments"""
    bare: bool = False

    @classmethod
    def parse(cls, spec: str) -> Arm:
        if spec == "bare":
            return cls("bare", bare=True)
        name, sep, overrides = spec.partition("=")
        if not sep or not name or not overrides.strip():
            raise ValueError(
                f"--arm {spec!r}: give bare, NAME=bare ARGS or NAME=OVERRIDES "
                "(e.g. cpu=experiment=cpu)"
            )
        words = shlex.split(overrides)
        if words[0] == "bare":
            return cls(name, words[1:], bare=True)
        return cls(name, words)

    def command(self, data_root: Path, run_dir: Path, minutes: float, fold: int) -> list[str]:
        if self.bare:
            module_args = ["salt.bench.bare_loop", str(data_root), str(run_dir)]
            return [*module_args, f"--minutes={minutes}", f"--fold={fold}", *self.overrides]
        budget = time.strftime("%H:%M:%S", time.gmtime(round(minutes * 60)))
        return [
            "salt.train",
            *self.overrides,
            f"data.root={data_root}",
            f"data.fold={fold}",
            f"trainer.max_time=00:{budget}",
            "model.encoder_weights=null",
            "data.num_workers=0",
            "oof_tta=[none,hflip]",
            "plots=false",
            f"hydra.run.dir={run_dir}",
        ]


def launch(command: list[str], run_dir: Path, core: int):
    """`python -m COMMAND` pinned to `core` with one thread, its output in RUN_DIR/bench.log."""
    run_dir.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    log = open(run_dir / "bench.log", "w")  # noqa: SIM115 (closed when the process ends)
    process = subprocess.Popen(
        [sys.executable, "-m", *command],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
        preexec_fn=lambda: os.sched_setaffinity(0, {core}),
    )
    return process, log


@dataclass
class Job:
    """One process of a benchmark: `python -m COMMAND` writing into `run_dir`."""

    name: str
    run_dir: Path
    command: list[str]


def run_jobs(jobs: list[Job], cores: list[int]) -> list[str]:
    """Run every job, as many at once as there are cores, one core each; the names of those
    whose process failed."""
    queue, failed = list(jobs), []
    running: dict[int, tuple[Job, subprocess.Popen, IO[str]]] = {}
    while queue or running:
        free = [c for c in cores if c not in running]
        while queue and free:
            job, core = queue.pop(0), free.pop(0)
            print(f"{time.strftime('%H:%M:%S')} start {job.name} on core {core}", flush=True)
            running[core] = (job, *launch(job.command, job.run_dir, core))
        time.sleep(2)
        for core, (job, process, log) in list(running.items()):
            if process.poll() is None:
                continue
            log.close()
            del running[core]
            status = "done" if process.returncode == 0 else f"failed ({process.returncode})"
            print(f"{time.strftime('%H:%M:%S')} {job.name} {status}", flush=True)
            if process.returncode != 0:
                failed.append(job.name)
    return failed


def score_arm(arm: Arm, run_dir: Path, tune_cfg) -> dict:
    run = RunDir(run_dir)
    metrics = run.read_metrics() or {}
    out_of_fold = run.read_oof()
    postprocess, at_half, tuned = tune(out_of_fold, tune_cfg)  # at_half: threshold 0.5
    if arm.bare:
        epochs, rate, source = metrics["epochs"], metrics["images_per_second"], "last"
        images = metrics["images"]
    else:
        epochs = metrics["steps"] / metrics["train_batches_per_epoch"]
        images = metrics["steps"] * metrics["batch_size"]
        rate = images / metrics["train_seconds"]
        source = run.oof_source()
    return {
        "arm": arm.name,
        "bare": arm.bare,
        "overrides": arm.overrides,
        "images": images,
        "epochs": round(epochs, 2),
        "images_per_second": round(rate, 2),
        "weights": source,
        "score_at_0.5": round(at_half, 4),
        "score_tuned": round(tuned, 4),
        "tuned_postprocess": str(postprocess),
    }


def print_table(rows: list[dict], minutes: float, fold: int) -> None:
    print(f"\n{minutes:g} minutes per arm, one core each, fold {fold}, flip TTA")
    print(
        f"{'arm':<16}{'images':>8}{'epochs':>8}{'images/s':>10}{'weights':>9}"
        f"{'score@0.5':>11}{'tuned':>8}"
    )
    for row in rows:
        print(
            f"{row['arm']:<16}{row['images']:>8}{row['epochs']:>8.2f}"
            f"{row['images_per_second']:>10.2f}{row['weights']!s:>9}"
            f"{row['score_at_0.5']:>11.4f}{row['score_tuned']:>8.4f}"
        )
    bare_rows = [r for r in rows if r["bare"]]
    for row in rows:
        for bare in bare_rows if not row["bare"] else []:
            print(
                f"{row['arm']} - {bare['arm']}: "
                f"{row['score_at_0.5'] - bare['score_at_0.5']:+.4f} at 0.5, "
                f"{row['score_tuned'] - bare['score_tuned']:+.4f} tuned, "
                f"images trained {row['images'] / bare['images']:.3f} of {bare['arm']}'s"
            )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data_root", type=Path)
    parser.add_argument("--minutes", type=float, required=True)
    parser.add_argument("--fold", type=int, default=0)
    parser.add_argument("--cores", default="0,1", help="cores to pin the arms to, one each")
    parser.add_argument("--out", type=Path, help="default: outputs/quality/<time>")
    parser.add_argument("--arm", action="append", help=f"default: {' '.join(DEFAULT_ARMS)}")
    args = parser.parse_args(argv)
    try:
        arms = [Arm.parse(spec) for spec in args.arm or DEFAULT_ARMS]
        cores = [int(c) for c in args.cores.split(",")]
    except ValueError as error:
        parser.error(str(error))
    if len({arm.name for arm in arms}) != len(arms):
        parser.error("arm names must differ")
    if not (args.data_root / "train.csv").is_file():
        parser.error(f"{args.data_root}: no train.csv (give a data root in the Kaggle layout)")
    out = args.out or Path("outputs/quality") / time.strftime("%Y-%m-%d_%H-%M-%S")
    root = args.data_root.resolve()
    jobs = [
        Job(arm.name, out / arm.name, arm.command(root, out / arm.name, args.minutes, args.fold))
        for arm in arms
    ]
    failed = run_jobs(jobs, cores)
    if failed:
        sys.exit(f"error: arm(s) {', '.join(failed)} failed: see {out}/<arm>/bench.log")
    tune_cfg = OmegaConf.load(Path(CONFIG_DIR) / "tune.yaml")
    rows = [score_arm(arm, out / arm.name, tune_cfg) for arm in arms]
    print_table(rows, args.minutes, args.fold)
    payload = {"minutes": args.minutes, "fold": args.fold, "data_root": str(args.data_root)}
    write_json(out / "results.json", {**payload, "arms": rows})
    print(f"wrote {out / 'results.json'}")


if __name__ == "__main__":
    main()
