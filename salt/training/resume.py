"""Resuming a stopped run in place: `python -m salt.train ... resume=RUN_DIR`."""

from __future__ import annotations

import csv
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from salt.core.errors import SaltError
from salt.core.files import atomic_open
from salt.core.rundir import CONFIG, HYDRA_FILES, LAST_CHECKPOINT, RunDir
from salt.models.checkpoints import read_checkpoint

# keys that say how to run, not what to train: they may change between the run and its resume
IGNORED_KEYS = ("resume", "ckpt_path")


def last_checkpoint(run_dir) -> tuple[Path, dict]:
    """RUN_DIR/checkpoints/last.ckpt and its content; a one-line error when there is none."""
    run = RunDir(run_dir)
    path = run.last_checkpoint
    if path.is_file():
        return path, read_checkpoint(path)
    if not run.config.is_file():
        _remove_what_hydra_made(run.path)
        raise SaltError(f"{run_dir}: cannot resume: not a run directory (no {CONFIG})")
    raise SaltError(
        f"{run_dir}: cannot resume: no {LAST_CHECKPOINT} (stopped before its first epoch ended)"
    )


def _remove_what_hydra_made(run_dir: Path) -> None:
    """`resume=RUN_DIR` is also `hydra.run.dir`, so Hydra creates RUN_DIR, its `.hydra/` and its
    log before salt looks: when that is all the folder holds, remove it again."""
    if not run_dir.is_dir():
        return
    held = {str(p.relative_to(run_dir)) for p in run_dir.rglob("*") if not p.is_dir()}
    if not held <= set(HYDRA_FILES):
        return
    for name in held:
        (run_dir / name).unlink()
    for folder in (run_dir / ".hydra", run_dir):
        if folder.is_dir() and not any(folder.iterdir()):
            folder.rmdir()


def _flatten(node, prefix: str = "") -> dict[str, object]:
    if isinstance(node, dict):
        flat: dict[str, object] = {}
        for key, value in node.items():
            flat.update(_flatten(value, f"{prefix}{key}."))
        return flat
    return {prefix[:-1]: node}


def config_differences(run: RunDir, cfg: DictConfig) -> list[str]:
    """`key (saved -> now)` for every setting of `cfg` that differs from the run's config.yaml."""
    saved_config = run.read_config()
    if saved_config is None:
        return []
    saved = _flatten(saved_config)
    now = _flatten(OmegaConf.to_container(cfg, resolve=True))
    keys = [k for k in {**saved, **now} if not k.startswith(IGNORED_KEYS)]
    return [
        f"{k} ({saved.get(k, '<unset>')!r} -> {now.get(k, '<unset>')!r})"
        for k in keys
        if saved.get(k, "<unset>") != now.get(k, "<unset>")
    ]


def trim_metrics_csv(path: Path, epoch: int, step: int) -> None:
    """Drop the rows logged after the checkpoint (epoch > `epoch`, or no epoch and step >= `step`).

    The resumed run logs those epochs again, so the file then reads as one uninterrupted run.
    """
    if not path.is_file():
        return
    with open(path, newline="") as handle:
        reader = csv.DictReader(handle)
        fields, rows = reader.fieldnames or [], list(reader)

    def kept(row: dict) -> bool:
        if row.get("epoch"):
            return float(row["epoch"]) <= epoch
        return not row.get("step") or float(row["step"]) < step

    with atomic_open(path, "w", newline="") as trimmed:
        writer = csv.DictWriter(trimmed, fieldnames=fields)
        writer.writeheader()
        writer.writerows(row for row in rows if kept(row))
