"""Which checkpoints a list of run directories and checkpoint files stands for."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from salt.core.errors import SaltError
from salt.inference.postprocess import PostProcess

# auto: the weights the run's out-of-fold predictions (and so salt.tune) came from
CHECKPOINT_KINDS = ("auto", "best", "last", "swa", "snapshots")
POSTPROCESS_FILE = "postprocess.json"


def oof_source(run: Path) -> str:
    """The checkpoint kind of a run directory whose weights made its oof.npz (best if unknown)."""
    metrics = Path(run) / "metrics.json"
    if metrics.is_file():
        source = json.loads(metrics.read_text()).get("oof_source")
        if source in CHECKPOINT_KINDS:
            return source
    return "best"


def run_checkpoints(run: Path, kinds: Sequence[str]) -> list[Path]:
    folder = run / "checkpoints"
    unknown = [kind for kind in kinds if kind not in CHECKPOINT_KINDS]
    if unknown:
        raise SaltError(
            f"unknown checkpoint kind {unknown[0]!r} (choose from {', '.join(CHECKPOINT_KINDS)})"
        )
    kinds = [oof_source(run) if kind == "auto" else kind for kind in kinds]
    found: list[Path] = []
    for kind in kinds:
        if kind == "snapshots":
            found.extend(sorted((folder / "snapshots").glob("*.ckpt")))
        elif (folder / f"{kind}.ckpt").is_file():
            found.append(folder / f"{kind}.ckpt")
    if not found:
        raise SaltError(f"{run}: run directory has no {'/'.join(kinds)} checkpoints in {folder}")
    return found


def resolve_checkpoints(runs: Sequence[str | Path], kinds: Sequence[str] = ("auto",)) -> list[Path]:
    """Checkpoint files: given ones as they are, and the `kinds` inside each run directory."""
    if not runs:
        raise SaltError("no runs given: pass runs=[RUN_DIR,...] or checkpoint files")
    checkpoints: list[Path] = []
    for entry in map(Path, runs):
        if entry.is_file():
            checkpoints.append(entry)
        elif entry.is_dir():
            checkpoints.extend(run_checkpoints(entry, kinds))
        else:
            raise SaltError(f"{entry}: no such run directory or checkpoint file")
    return checkpoints


def run_directory(entry: Path) -> Path:
    """The run directory of a run directory or of a checkpoint inside one."""
    entry = Path(entry)
    if entry.is_file():
        return next((p for p in entry.parents if (p / "checkpoints").is_dir()), entry.parent)
    return entry


def read_tuned(run: Path) -> PostProcess:
    path = run_directory(run) / POSTPROCESS_FILE
    if not path.is_file():
        raise SaltError(
            f"{path}: not found; run `python -m salt.tune runs=[...]` first, "
            "or pass postprocess=fixed with threshold=..."
        )
    try:
        return PostProcess(**json.loads(path.read_text())["postprocess"])
    except (ValueError, KeyError, TypeError) as error:
        raise SaltError(f"{path}: not a salt.tune result ({error})") from None


def submission_message(runs: Sequence[str | Path]) -> str:
    """A Kaggle submission message naming the experiments and their out-of-fold score."""
    directories = [run_directory(Path(entry)) for entry in runs]
    metrics = [
        json.loads((d / "metrics.json").read_text())
        for d in directories
        if (d / "metrics.json").is_file()
    ]
    experiments = "+".join(sorted({str(m.get("experiment")) for m in metrics})) or "unknown"
    tuned = directories[0] / POSTPROCESS_FILE
    if tuned.is_file():
        score = json.loads(tuned.read_text())["oof_score_after"]
    else:
        scores = [m["oof_best_score"] for m in metrics if m.get("oof_best_score") is not None]
        score = sum(scores) / len(scores) if scores else float("nan")
    return f"salt {experiments}: {len(directories)} run(s), OOF score {score:.4f}"
