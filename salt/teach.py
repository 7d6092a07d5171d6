"""Teach the nets a survey from a few painted lines:
`python -m salt.teach SURVEY.sgy --painted PAINT_DIR --runs RUN... --out OUT`.

The loop an interpreter runs (docs/painting.md): lines out for painting
(`python -m salt.paint lines`), painted in any image editor, then this command:

1. tiles: the painted lines become training tiles in the Kaggle layout, each with its labelled
   mask (`python -m salt.paint tiles`, at the survey's own amplitude scaling), in OUT/tiles;
2. runs: every checkpoint of `--runs` is fine-tuned on them (`experiment=teach`: its own net,
   normalisation and weights; the unlabelled pixels in no loss term; `--minutes` each), into
   OUT/runs/<k>_<run>;
3. survey: the survey predicted by the fine-tuned runs (`python -m salt.survey`, the same
   scaling), into OUT/survey.

Each stage runs its own command as a process, its progress on the terminal. A stage whose output
is complete is skipped, a fine-tuning that was stopped continues from its last checkpoint
(`resume=`), and the survey continues from the lines it had done: run the same command again
after a stop. OUT/teach.json keeps the settings; a second run with other painted lines, runs or
settings is refused in one line (use another --out). `--devices`/`--num-nodes` go to training
and the survey alike (Lightning launches the processes, as for salt.train and salt.survey).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
import sys
from pathlib import Path

from omegaconf import OmegaConf

from salt.core.errors import DataError, SaltError, exit_on_salt_error
from salt.core.files import write_json, write_text
from salt.core.rundir import CHECKPOINT_KINDS, RunDir, checkpoint_files, run_entries
from salt.models.checkpoints import read_checkpoint

SETTINGS = "teach.json"
PAINTED_SUFFIXES = (".png", ".npy")


def painted_fingerprint(folder: Path) -> str:
    """A digest of every painted line file of `folder` (names and contents)."""
    if not folder.is_dir():
        raise DataError(folder, "painted lines folder not found (python -m salt.paint lines)")
    digest = hashlib.sha256()
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in PAINTED_SUFFIXES)
    if not files:
        raise DataError(folder, "no painted lines in it (inline_<N>.png or crossline_<N>.png)")
    for path in files:
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def check_settings(out: Path, settings: dict) -> None:
    """OUT/teach.json written on the first run; a later run must have the same settings."""
    path = out / SETTINGS
    if path.is_file():
        kept = json.loads(path.read_text())
        differ = sorted(k for k in set(kept) | set(settings) if kept.get(k) != settings.get(k))
        if differ:
            raise SaltError(
                f"{out}: taught with other {', '.join(differ)} (see {path}); "
                "give another --out to teach these"
            )
        return
    out.mkdir(parents=True, exist_ok=True)
    write_json(path, settings)


def stage(title: str, command: list[str], log_hint: Path | None = None) -> None:
    """`python -m COMMAND`, its output on this terminal; a one-line error if it fails."""
    print(f"salt.teach: {title}", flush=True)
    result = subprocess.run([sys.executable, "-m", *command])
    if result.returncode != 0:
        where = f"; its log: {log_hint}" if log_hint else ""
        raise SaltError(f"{title} failed (exit {result.returncode}){where}")


def base_model_config(checkpoint: Path, conf_dir: Path, name: str) -> dict:
    """Write the checkpoint's net config as model group option `name` under `conf_dir`; the
    checkpoint's tile options (normalisation and channels)."""
    hyper = read_checkpoint(checkpoint).get("hyper_parameters", {})
    net_config, tile_options = hyper.get("net_config"), hyper.get("tile_options")
    if not net_config or not tile_options:
        raise SaltError(f"{checkpoint}: not a salt checkpoint (no net_config/tile_options)")
    model_dir = conf_dir / "model"
    model_dir.mkdir(parents=True, exist_ok=True)
    write_text(model_dir / f"{name}.yaml", OmegaConf.to_yaml(OmegaConf.create(dict(net_config))))
    return dict(tile_options)


def fine_tune_command(args, checkpoint: Path, run_dir: Path, conf_dir: Path, name: str) -> list:
    options = base_model_config(checkpoint, conf_dir, name)
    minutes = round(args.minutes * 60)
    start = (
        [f"resume={run_dir}"]
        if RunDir(run_dir).last_checkpoint.is_file()
        else [f"finetune_from={checkpoint}"]
    )
    return [
        "salt.train",
        f"hydra.searchpath=[file://{conf_dir.resolve()}]",
        "experiment=teach",
        f"model={name}",
        "model.encoder_weights=null",  # the weights come from the checkpoint
        f"data.root={(args.out / 'tiles').resolve()}",
        f"data.mean={options['mean']}",
        f"data.std={options['std']}",
        f"data.channels={options['channels']}",
        f"trainer.max_time=00:{minutes // 3600:02d}:{minutes // 60 % 60:02d}:{minutes % 60:02d}",
        f"trainer.devices={args.devices}",
        f"trainer.num_nodes={args.num_nodes}",
        f"seed={args.seed}",
        f"hydra.run.dir={run_dir.resolve()}",
        *start,
        *args.train_override,
    ]


def run_name(checkpoint: Path) -> str:
    """RUN for RUN/checkpoints/KIND.ckpt; the file's stem for a checkpoint elsewhere."""
    if checkpoint.parent.name == "checkpoints":
        return f"{checkpoint.parent.parent.name}_{checkpoint.stem}"
    return checkpoint.stem


def teach(args: argparse.Namespace) -> Path:
    """Run the three stages (each skipped when done); the survey's output directory."""
    out: Path = args.out
    paths = checkpoint_files(run_entries("--runs", args.runs), args.checkpoints)
    settings = {
        "survey": str(args.survey.resolve()),
        "painted": painted_fingerprint(args.painted),
        "checkpoints": [str(Path(p).resolve()) for p in paths],
        "minutes": args.minutes,
        "clip_percentile": args.clip_percentile,
        "seed": args.seed,
        "train_override": list(args.train_override),
    }  # --axes, --truth, --devices: the survey's own settings (it refuses a change itself)
    check_settings(out, settings)
    tiles = out / "tiles"
    if not (tiles / "train.csv").is_file():
        stage(
            f"[1/3] tiles from the painted lines of {args.painted}",
            [
                "salt.paint",
                "tiles",
                str(args.painted),
                "--survey",
                str(args.survey),
                "--out",
                str(tiles),
                "--clip-percentile",
                str(args.clip_percentile),
            ],
        )
    painted_tiles = sum(1 for _ in (tiles / "train" / "images").glob("*.png"))
    if painted_tiles < 2:
        raise DataError(tiles, f"{painted_tiles} tile from the painted lines: paint more of them")
    conf_dir = out / "conf"
    for index, path in enumerate(paths):
        name = f"{index:02d}_{run_name(Path(path))}"
        run_dir = out / "runs" / name
        if RunDir(run_dir).metrics.is_file():
            continue
        stage(
            f"[2/3] fine-tuning {path} ({index + 1} of {len(paths)}, {args.minutes:g} min)",
            [
                *fine_tune_command(args, Path(path), run_dir, conf_dir, f"base_{index:02d}"),
                f"data.n_folds={min(5, painted_tiles)}",  # a fold split of a few tiles
            ],
            run_dir / "train.log",
        )
    survey_out = out / "survey"
    if (survey_out / "summary.json").is_file():
        return survey_out  # predicted whole already
    stage(
        f"[3/3] the survey {args.survey} with the fine-tuned runs",
        [
            "salt.survey",
            str(args.survey),
            "--runs",
            str(out / "runs"),
            "--out",
            str(survey_out),
            "--clip-percentile",
            str(args.clip_percentile),
            "--devices",
            str(args.devices),
            "--num-nodes",
            str(args.num_nodes),
            "--axes",
            args.axes,
            *(["--truth", str(args.truth)] if args.truth else []),
        ],
    )
    return survey_out


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m salt.teach", description=__doc__.splitlines()[0]
    )
    parser.add_argument("survey", type=Path, help="the 3-D SEG-Y survey the lines come from")
    parser.add_argument("--painted", type=Path, required=True, help="the painted lines' folder")
    parser.add_argument("--runs", nargs="+", required=True, help="trained runs to fine-tune")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument(
        "--checkpoints",
        nargs="+",
        default=["auto"],
        choices=CHECKPOINT_KINDS,
        help="which checkpoint of each run starts the fine-tuning (default: auto)",
    )
    parser.add_argument("--minutes", type=float, default=5.0, help="fine-tuning per checkpoint")
    parser.add_argument("--clip-percentile", type=float, default=99.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--devices", type=int, default=1)
    parser.add_argument("--num-nodes", type=int, default=1)
    parser.add_argument("--truth", type=Path, help="the survey's true salt, to score it")
    parser.add_argument(
        "--axes",
        default="inline,crossline",
        help="the passes of the survey's prediction: inline,crossline, inline or crossline",
    )
    parser.add_argument(
        "--train-override",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="an override for salt.train's fine-tuning (repeatable), e.g. optim.lr=3e-4",
    )
    args = parser.parse_args(argv)
    if not args.minutes > 0:
        parser.error(f"--minutes must be positive, got {args.minutes}")
    if not args.survey.is_file():
        parser.error(f"{args.survey}: no such survey file")
    return args


@exit_on_salt_error
def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    survey_out = teach(args)
    print(f"salt.teach: the survey predicted by the taught runs is in {survey_out}")


if __name__ == "__main__":
    main()
