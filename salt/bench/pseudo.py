"""What pseudo-labels buy, semi-supervised on one fold at equal training compute.

    python -m salt.bench.pseudo DATA_ROOT [--steps 150] [--seeds 0,1] [--fold 0] [--ratio 0.5]
        [--select bes] [--cores 0,1] [--out DIR] [--override KEY=VALUE ...]

Fold `--fold` of salt's split of DATA_ROOT is the validation fold of every arm. Its training
tiles are halved (stratified by salt coverage): the labelled half keeps its masks, the hidden
half's masks are never read. Per seed:

    labelled  trains on the labelled half
    pseudo    the labelled arm's net pseudo-labels the hidden half (`python -m salt.pseudo`,
              clean mode, `--select`), then a new net trains on the labelled half plus those
              labels (`data.pseudo`, `--ratio` pseudo tiles per labelled tile in every batch)
    upper     trains on every training tile of the fold, labelled

Every arm is `python -m salt.train` with the same recipe (`experiment=cpu`, random encoder
weights, `--override`s), batch size and number of optimizer steps (`--steps`, no time budget):
equal training compute whatever the load of the machine. The validation fold is predicted with
flip TTA by the last weights (no checkpoint picked on it) and scored at threshold 0.5 and with
the post-processing `salt.tune` picks on it. Each seed's arms run one after another on one core
of `--cores` (one thread), the seeds side by side. Prints one table (mean and spread over the
seeds, the share of the labelled-to-upper gap the pseudo arm closes) and writes
OUT/results.json. The hidden half never leaves DATA_ROOT's training tiles: no test tile is read.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
from omegaconf import OmegaConf

from salt.core.config import CONFIG_DIR
from salt.core.files import write_json, write_text
from salt.core.rundir import RunDir
from salt.data.folds import make_folds
from salt.data.io import load_train
from salt.data.pseudo import INFO
from salt.inference.tuning import tune

ARMS = ("labelled", "pseudo", "upper")
RECIPE = (
    "experiment=cpu",
    "model.encoder_weights=null",
    "data.num_workers=0",
    "trainer.max_time=null",
    "trainer.max_epochs=-1",
    # a fifth of the fold validated each epoch (progress only: the score is the whole fold's)
    "trainer.limit_val_batches=0.2",
    "oof_weights=last",
    "oof_tta=[none,hflip]",
    "plots=false",
    "callbacks.progress_bar=null",
    "logger.tensorboard=null",
)


def link(source: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    if not target.exists():
        target.symlink_to(source.resolve())


def split_data(data_root: Path, out: Path, fold: int) -> dict[str, Path]:
    """The data of the arms under OUT/data: `labelled` (a Kaggle-layout root of the validation
    fold and the labelled half, linked to DATA_ROOT's files), `hidden` (a folder of the hidden
    half's images only) and the fold files that keep salt's split for both roots."""
    tiles = load_train(data_root)
    folds = make_folds(tiles.ids, tiles.truth, 5, 42)
    in_fold = folds["fold"].to_numpy() == fold
    training = np.flatnonzero(~in_fold)
    halves = make_folds([tiles.ids[i] for i in training], tiles.truth[training], 2, 0)
    hidden_ids = set(halves["id"][halves["fold"] == 1])
    keep = [i for i, tile_id in enumerate(tiles.ids) if tile_id not in hidden_ids]
    data = out / "data"
    labelled, hidden = data / "labelled", data / "hidden"
    rows = pd.read_csv(data_root / "train.csv", dtype=str, keep_default_na=False)
    rows = rows.set_index("id").loc[[tiles.ids[i] for i in keep]].reset_index()
    for tile_id in rows["id"]:
        for kind in ("images", "masks"):
            link(
                data_root / "train" / kind / f"{tile_id}.png",
                labelled / "train" / kind / f"{tile_id}.png",
            )
    for tile_id in sorted(hidden_ids):
        link(data_root / "train" / "images" / f"{tile_id}.png", hidden / f"{tile_id}.png")
    if (data_root / "depths.csv").is_file():
        link(data_root / "depths.csv", labelled / "depths.csv")
    write_text(labelled / "train.csv", rows.to_csv(index=False, lineterminator="\n"))
    full_folds = data / "folds.csv"
    write_text(full_folds, folds.to_csv(index=False, lineterminator="\n"))
    labelled_folds = data / "labelled-folds.csv"
    write_text(labelled_folds, folds.iloc[keep].to_csv(index=False, lineterminator="\n"))
    print(
        f"fold {fold}: {int(in_fold.sum())} validation tiles, {len(training)} training tiles: "
        f"{len(training) - len(hidden_ids)} labelled, {len(hidden_ids)} hidden",
        flush=True,
    )
    return {
        "labelled": labelled,
        "hidden": hidden,
        "full": data_root,
        "full_folds": full_folds,
        "labelled_folds": labelled_folds,
    }


def train_command(
    root: Path, folds_csv: Path, run: Path, seed: int, args, *extra: str
) -> list[str]:
    return [
        "salt.train",
        *RECIPE,
        *args.override,
        f"data.root={root}",
        f"data.folds_csv={folds_csv}",
        f"data.fold={args.fold}",
        f"trainer.max_steps={args.steps}",
        f"seed={seed}",
        f"hydra.run.dir={run}",
        *extra,
    ]


def seed_jobs(seed: int, data: dict[str, Path], out: Path, args) -> list[tuple[str, list[str]]]:
    """(name, `python -m` arguments) of one seed's steps, in the order they must run."""
    runs = {arm: out / f"{arm}-{seed}" for arm in ARMS}
    labels = out / f"labels-{seed}"
    return [
        (
            "labelled",
            train_command(data["labelled"], data["labelled_folds"], runs["labelled"], seed, args),
        ),
        (
            "labels",
            [
                "salt.pseudo",
                f"runs=[{runs['labelled']}]",
                f"data.root={data['hidden']}",
                f"out={labels}",
                f"pseudo.select={args.select}",
                "progress=false",
            ],
        ),
        (
            "pseudo",
            train_command(
                data["labelled"],
                data["labelled_folds"],
                runs["pseudo"],
                seed,
                args,
                f"data.pseudo={labels}",
                f"data.pseudo_ratio={args.ratio}",
            ),
        ),
        ("upper", train_command(data["full"], data["full_folds"], runs["upper"], seed, args)),
    ]


def run_seed(seed: int, core: int, jobs, out: Path, failures: list[str]) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    for name, command in jobs:
        log_path = out / f"{name}-{seed}.log"
        print(f"{time.strftime('%H:%M:%S')} seed {seed}: start {name} on core {core}", flush=True)
        with open(log_path, "w") as log:
            done = subprocess.run(
                [sys.executable, "-m", *command],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                preexec_fn=lambda: os.sched_setaffinity(0, {core}),
            )
        status = "done" if done.returncode == 0 else f"failed ({done.returncode})"
        print(f"{time.strftime('%H:%M:%S')} seed {seed}: {name} {status}", flush=True)
        if done.returncode != 0:
            failures.append(f"{name}-{seed} (see {log_path})")
            return


def score(run: Path, tune_cfg) -> dict:
    metrics = RunDir(run).read_metrics() or {}
    _, at_half, tuned = tune(RunDir(run).read_oof(), tune_cfg)
    return {
        "score_at_0.5": round(at_half, 4),
        "score_tuned": round(tuned, 4),
        "steps": metrics.get("steps"),
        "train_seconds": metrics.get("train_seconds"),
    }


def summarise(rows: dict[str, list[dict]]) -> dict:
    table = {}
    for arm in ARMS:
        for column in ("score_at_0.5", "score_tuned"):
            values = np.array([row[column] for row in rows[arm]])
            table[f"{arm} {column}"] = {
                "mean": round(float(values.mean()), 4),
                "min": round(float(values.min()), 4),
                "max": round(float(values.max()), 4),
            }
    closed = {}
    for column in ("score_at_0.5", "score_tuned"):
        low, high, got = (
            table[f"{arm} {column}"]["mean"] for arm in ("labelled", "upper", "pseudo")
        )
        closed[column] = round((got - low) / (high - low), 3) if high != low else None
    return {"by_arm": table, "gap_closed": closed}


def print_table(rows: dict[str, list[dict]], summary: dict, args) -> None:
    heading = f"fold {args.fold}, {args.steps} steps per arm, seeds {args.seeds}"
    print(f"\n{heading}, flip TTA, last weights")
    print(f"{'arm':<10}{'score@0.5 (per seed)':>34}{'tuned (per seed)':>34}")
    for arm in ARMS:
        cells = []
        for column in ("score_at_0.5", "score_tuned"):
            stats = summary["by_arm"][f"{arm} {column}"]
            seeds = " ".join(f"{row[column]:.4f}" for row in rows[arm])
            cells.append(f"{stats['mean']:.4f} ({seeds})")
        print(f"{arm:<10}{cells[0]:>34}{cells[1]:>34}")
    closed = summary["gap_closed"]
    print(
        "share of the labelled-to-upper gap closed: "
        f"{closed['score_at_0.5']} at 0.5, {closed['score_tuned']} tuned"
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data_root", type=Path)
    parser.add_argument("--steps", type=int, default=150)
    parser.add_argument("--seeds", default="0,1")
    parser.add_argument("--fold", type=int, default=0)
    parser.add_argument("--ratio", type=float, default=0.5)
    parser.add_argument("--select", default="bes")
    parser.add_argument("--cores", default="0,1", help="cores to pin the seeds to, one each")
    parser.add_argument("--out", type=Path, help="default: outputs/bench-pseudo/<time>")
    parser.add_argument("--override", action="append", default=[], help="KEY=VALUE for every arm")
    args = parser.parse_args(argv)
    seeds = [int(s) for s in args.seeds.split(",")]
    cores = [int(c) for c in args.cores.split(",")]
    args.seeds = seeds
    if not (args.data_root / "train.csv").is_file():
        parser.error(f"{args.data_root}: no train.csv (give a data root in the Kaggle layout)")
    out = (args.out or Path("outputs/bench-pseudo") / time.strftime("%Y-%m-%d_%H-%M-%S")).absolute()
    out.mkdir(parents=True, exist_ok=True)
    data = split_data(args.data_root.resolve(), out, args.fold)
    failures: list[str] = []
    threads = [
        threading.Thread(
            target=run_seed,
            args=(seed, cores[i % len(cores)], seed_jobs(seed, data, out, args), out, failures),
        )
        for i, seed in enumerate(seeds)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if failures:
        sys.exit(f"error: failed: {', '.join(failures)}")
    tune_cfg = OmegaConf.load(Path(CONFIG_DIR) / "tune.yaml")
    rows = {arm: [score(out / f"{arm}-{seed}", tune_cfg) for seed in seeds] for arm in ARMS}
    summary = summarise(rows)
    print_table(rows, summary, args)
    kept = {
        seed: json.loads((out / f"labels-{seed}" / INFO).read_text())["summary"] for seed in seeds
    }
    for seed, line in kept.items():
        print(f"seed {seed} labels: {line}")
    payload = {"data_root": str(args.data_root), "fold": args.fold, "steps": args.steps}
    payload |= {
        "seeds": seeds,
        "ratio": args.ratio,
        "select": args.select,
        "override": args.override,
    }
    write_json(out / "results.json", {**payload, "arms": rows, **summary, "labels": kept})
    print(f"wrote {out / 'results.json'}")


if __name__ == "__main__":
    main()
