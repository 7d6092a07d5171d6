"""Synthetic pretraining against training on the real tiles alone, at equal compute.

    python -m salt.bench.pretrain REAL_ROOT --generated GENERATED_ROOT --steps 480
        [--pretrain-share 0.5] [--fractions 0.1,0.25,1] [--seeds 0,1] [--fold 0]
        [--experiment resnet34_cpu] [--cores 0,1] [--out DIR]

Every arm gets the same optimizer steps (`--steps`, batch and net of `--experiment`):

- `real`: `--steps` on `fraction` of the real training folds (`data.train_fraction`: the same
  tiles for every seed, spread over salt coverage);
- `pretrained`: a pretraining run of `--pretrain-share` of the steps on the generated tiles
  (fold 0's training folds of GENERATED_ROOT, one run per seed, shared by the fractions), then
  `finetune_from` it for the rest on the same real tiles as `real` (a fresh optimizer and
  schedule).

Steps, not minutes, make the budget: the arms compare the same compute whatever else the
machine runs (their seconds are printed, not compared). No run validates while it trains (the
validation fold is the one scored: choosing a checkpoint on it would flatter every arm); each
ends annealed (one cosine over its steps) and its last weights predict the real validation fold
with flip TTA, scored by the competition metric at threshold 0.5 and with the post-processing
`salt.tune` picks on that fold (optimistic alike for every arm). Each run's loss warm start
(BCE + Dice before the Lovász hinge) lasts `WARM_START_SHARE` of its steps, the share the
recipe's 2 epochs hold of its 40-minute budget. Processes are pinned one per core of `--cores`
with one thread, `model.encoder_weights=null` (no network). Prints one table, writes
OUT/results.json.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import pandas as pd
from omegaconf import OmegaConf

from salt.bench.quality import Job, run_jobs
from salt.core.config import CONFIG_DIR
from salt.core.files import write_json
from salt.core.rundir import RunDir
from salt.inference.tuning import tune

# the loss warm start's share of a run's steps: experiment=resnet34_cpu warms up 2 of the about
# 9 epochs its 40 minutes hold on one core (BENCHMARKS.md, "The time budget spent on training")
WARM_START_SHARE = 2 / 9
N_FOLDS = 5
NO_VALIDATION = 10**6  # check_val_every_n_epoch of a run that never validates while it trains


def training_tiles(root: Path, fraction: float) -> int:
    """The tiles a run trains on: `fraction` of the training folds of ROOT's split."""
    tiles = len(pd.read_csv(root / "train.csv")) * (N_FOLDS - 1) // N_FOLDS
    return max(1, round(fraction * tiles))


def run_command(
    experiment: str,
    root: Path,
    run_dir: Path,
    steps: int,
    seed: int,
    fold: int,
    fraction: float = 1.0,
    extra: tuple[str, ...] = (),
) -> list[str]:
    """salt.train's command for `steps` optimizer steps of `experiment` on `fraction` of ROOT's
    training folds, never validating while it trains, its last weights predicting the fold."""
    batch = OmegaConf.load(Path(CONFIG_DIR) / "experiment" / f"{experiment}.yaml")
    batch_size = OmegaConf.select(batch, "data.batch_size", default=None)
    if batch_size is None:
        raise SystemExit(f"error: --experiment {experiment}: sets no data.batch_size")
    epochs = steps * batch_size / training_tiles(root, fraction)
    return [
        "salt.train",
        f"experiment={experiment}",
        f"data.root={root}",
        f"data.fold={fold}",
        f"data.train_fraction={fraction}",
        f"seed={seed}",
        "trainer.max_time=null",
        f"trainer.max_steps={steps}",
        "trainer.max_epochs=-1",
        f"trainer.check_val_every_n_epoch={NO_VALIDATION}",
        f"loss.warm_start_epochs={WARM_START_SHARE * epochs:.4f}",
        "oof_weights=last",
        "model.encoder_weights=null",
        "data.num_workers=0",
        "oof_tta=[none,hflip]",
        "plots=false",
        f"hydra.run.dir={run_dir}",
        *extra,
    ]


def score_run(run_dir: Path, tune_cfg) -> dict:
    run = RunDir(run_dir)
    metrics = run.read_metrics() or {}
    _, at_half, tuned = tune(run.read_oof(), tune_cfg)
    return {
        "steps": metrics["steps"],
        "train_seconds": round(metrics["train_seconds"], 1),
        "score_at_0.5": round(at_half, 4),
        "score_tuned": round(tuned, 4),
    }


def print_table(rows: list[dict], steps: int, pretrain_steps: int) -> None:
    print(
        f"\n{steps} steps per arm ({pretrain_steps} of them pretraining on generated tiles in "
        "the pretrained arm), flip TTA, last weights"
    )
    print(f"{'fraction':>9}{'tiles':>7}{'arm':>12}{'seeds: score@0.5':>34}{'mean':>8}{'tuned':>8}")
    for fraction in sorted({row["fraction"] for row in rows}):
        for arm in ("real", "pretrained"):
            picked = [r for r in rows if r["fraction"] == fraction and r["arm"] == arm]
            seeds = " ".join(f"{r['score_at_0.5']:.4f}" for r in picked)
            at_half = statistics.mean(r["score_at_0.5"] for r in picked)
            tuned = statistics.mean(r["score_tuned"] for r in picked)
            tiles = picked[0]["tiles"]
            print(f"{fraction:>9g}{tiles:>7}{arm:>12}{seeds:>34}{at_half:>8.4f}{tuned:>8.4f}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("real_root", type=Path)
    parser.add_argument("--generated", type=Path, required=True, help="generated tiles' root")
    parser.add_argument("--steps", type=int, required=True, help="optimizer steps per arm")
    parser.add_argument("--pretrain-share", type=float, default=0.5)
    parser.add_argument("--fractions", default="0.1,0.25,1")
    parser.add_argument("--seeds", default="0,1")
    parser.add_argument("--fold", type=int, default=0)
    parser.add_argument("--experiment", default="resnet34_cpu")
    parser.add_argument("--cores", default="0,1", help="cores to pin the runs to, one each")
    parser.add_argument("--out", type=Path, help="default: outputs/pretrain/<time>")
    args = parser.parse_args(argv)
    try:
        fractions = [float(f) for f in args.fractions.split(",")]
        seeds = [int(s) for s in args.seeds.split(",")]
        cores = [int(c) for c in args.cores.split(",")]
    except ValueError as error:
        parser.error(f"--fractions, --seeds, --cores: comma-separated numbers ({error})")
    if not all(0 < f <= 1 for f in fractions):
        parser.error(f"--fractions: each in (0, 1], got {args.fractions}")
    pretrain_steps = round(args.pretrain_share * args.steps)
    if not 0 < pretrain_steps < args.steps:
        parser.error(f"--pretrain-share {args.pretrain_share}: leaves no steps to one stage")
    for flag, root in (("real_root", args.real_root), ("--generated", args.generated)):
        if not (root / "train.csv").is_file():
            parser.error(f"{flag} {root}: no train.csv (give a data root in the Kaggle layout)")
    real, generated = args.real_root.resolve(), args.generated.resolve()
    out = (args.out or Path("outputs/pretrain") / time.strftime("%Y-%m-%d_%H-%M-%S")).resolve()

    def job(name: str, root: Path, steps: int, seed: int, fraction=1.0, extra=()) -> Job:
        command = run_command(
            args.experiment, root, out / name, steps, seed, args.fold, fraction, tuple(extra)
        )
        return Job(name, out / name, command)

    stage_one = [
        job(f"generated_s{s}", generated, pretrain_steps, s, extra=["oof=false"]) for s in seeds
    ]
    stage_two, arms = [], []
    for seed in seeds:
        for fraction in fractions:
            pretrained = out / f"generated_s{seed}" / "checkpoints" / "last.ckpt"
            stage_two.append(job(f"real_f{fraction:g}_s{seed}", real, args.steps, seed, fraction))
            stage_two.append(
                job(
                    f"pretrained_f{fraction:g}_s{seed}",
                    real,
                    args.steps - pretrain_steps,
                    seed,
                    fraction,
                    [f"finetune_from={pretrained}"],
                )
            )
            arms += [("real", fraction, seed), ("pretrained", fraction, seed)]
    for stage in (stage_one, stage_two):
        failed = run_jobs([j for j in stage if not RunDir(j.run_dir).metrics.is_file()], cores)
        if failed:
            sys.exit(f"error: run(s) {', '.join(failed)} failed: see {out}/<run>/bench.log")
    tune_cfg = OmegaConf.load(Path(CONFIG_DIR) / "tune.yaml")
    rows = [
        {
            "arm": arm,
            "fraction": fraction,
            "seed": seed,
            "tiles": training_tiles(real, fraction),
            **score_run(out / f"{arm}_f{fraction:g}_s{seed}", tune_cfg),
        }
        for arm, fraction, seed in arms
    ]
    print_table(rows, args.steps, pretrain_steps)
    payload = {
        "steps": args.steps,
        "pretrain_steps": pretrain_steps,
        "experiment": args.experiment,
        "real_root": str(real),
        "generated_root": str(generated),
        "fold": args.fold,
    }
    write_json(out / "results.json", {**payload, "runs": rows})
    print(f"wrote {out / 'results.json'}")


if __name__ == "__main__":
    main()
