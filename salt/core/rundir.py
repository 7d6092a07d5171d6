"""The run directory: the names of what `python -m salt.train` leaves in it, and the one reader
and writer of each file. Everything else reads and writes run directories through `RunDir`.

    config.yaml                     the resolved config (Hydra's own in .hydra/, its log train.log)
    folds.csv                       the split (data.folds_csv)
    checkpoints/best.ckpt           best by validation score     } named by conf/callbacks:
    checkpoints/last.ckpt           every epoch's state (resume) } ModelCheckpoint, CycleSWA,
    checkpoints/swa.ckpt            the weight average           } CycleSnapshots
    checkpoints/snapshots/*.ckpt    one per cosine cycle         }
    csv/metrics.csv                 the CSV logger's history
    oof.npz                         out-of-fold probabilities: ids, probabilities, masks[, salt]
    metrics.json                    the run's figures (best_val_score, oof_source, ...)
    postprocess.json                `salt.tune`'s post-processing, tuned on the runs' OOF
    plots/                          `salt.analysis.plots`
    launcher.log                    a job's output under hydra/launcher=parallel

Every problem with a file is a SaltError naming it; files are written whole or not at all
(`salt.core.files`).
"""

from __future__ import annotations

import glob
import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from omegaconf import OmegaConf

from salt.core.errors import ConfigError, DataError, SaltError
from salt.core.files import write_json, write_npz, write_text

CONFIG = "config.yaml"
# what Hydra writes into a run directory before salt runs (hydra.job.name is the command's)
HYDRA_FILES = (".hydra/config.yaml", ".hydra/hydra.yaml", ".hydra/overrides.yaml", "train.log")
CHECKPOINTS = "checkpoints"
LAST_CHECKPOINT = Path(CHECKPOINTS) / "last.ckpt"
SNAPSHOTS = Path(CHECKPOINTS) / "snapshots"
METRICS = "metrics.json"
OOF = "oof.npz"
OOF_ARRAYS = ("ids", "probabilities", "masks")  # and "salt" for nets with a "has salt" head
POSTPROCESS = "postprocess.json"
PLOTS = "plots"
HISTORY_FILES = ("csv/metrics.csv", "csv/version_0/metrics.csv")
LAUNCHER_LOG = "launcher.log"

# auto: the weights the run's out-of-fold predictions (and so salt.tune) came from
CHECKPOINT_KINDS = ("auto", "best", "last", "swa", "snapshots")
DEFAULT_OPTIMIZED_METRIC = "best_val_score"


def _read_json(path: Path) -> dict[str, Any] | None:
    """A JSON object as a dict, None when the file does not exist."""
    if not path.is_file():
        return None
    try:
        payload = json.loads(path.read_text())
    except ValueError as error:
        raise DataError(path, f"not valid JSON ({error})") from None
    if not isinstance(payload, dict):
        raise DataError(path, f"not a JSON object (a {type(payload).__name__})")
    return payload


def check_kinds(kinds: Sequence[str]) -> None:
    unknown = [kind for kind in kinds if kind not in CHECKPOINT_KINDS]
    if unknown:
        raise SaltError(
            f"unknown checkpoint kind {unknown[0]!r} (choose from {', '.join(CHECKPOINT_KINDS)})"
        )


class RunDir:
    """One run directory: its files by name, and their readers and writers."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)

    @classmethod
    def of(cls, entry: str | os.PathLike) -> RunDir:
        """The run directory of a run directory, or of a checkpoint file inside one."""
        entry = Path(entry)
        if entry.is_file():
            return cls(next((p for p in entry.parents if (p / CHECKPOINTS).is_dir()), entry.parent))
        return cls(entry)

    def __repr__(self) -> str:
        return f"RunDir({str(self.path)!r})"

    def __str__(self) -> str:
        return str(self.path)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, RunDir) and other.path == self.path

    def __hash__(self) -> int:
        return hash(self.path)

    # ------------------------------------------------------------------ names

    @property
    def config(self) -> Path:
        return self.path / CONFIG

    @property
    def metrics(self) -> Path:
        return self.path / METRICS

    @property
    def oof(self) -> Path:
        return self.path / OOF

    @property
    def postprocess(self) -> Path:
        return self.path / POSTPROCESS

    @property
    def plots(self) -> Path:
        return self.path / PLOTS

    @property
    def checkpoints(self) -> Path:
        return self.path / CHECKPOINTS

    @property
    def last_checkpoint(self) -> Path:
        return self.path / LAST_CHECKPOINT

    @property
    def launcher_log(self) -> Path:
        return self.path / LAUNCHER_LOG

    def checkpoint(self, kind: str) -> Path:
        """checkpoints/KIND.ckpt of one file kind: best, last or swa."""
        if kind not in ("best", "last", "swa"):
            raise ValueError(f"no single checkpoint file of kind {kind!r}")
        return self.checkpoints / f"{kind}.ckpt"

    def snapshots(self) -> list[Path]:
        """The cycle snapshots, in cycle order."""
        return sorted((self.path / SNAPSHOTS).glob("*.ckpt"))

    def history(self) -> Path | None:
        """The CSV logger's metrics.csv, or None (CSV logger disabled)."""
        for name in HISTORY_FILES:
            if (self.path / name).is_file():
                return self.path / name
        found = sorted(self.path.glob("csv/**/metrics.csv"))
        return found[-1] if found else None

    # ------------------------------------------------------------------ config.yaml

    def read_config(self) -> dict[str, Any] | None:
        """The resolved config the run was trained with, None when there is none."""
        if not self.config.is_file():
            return None
        try:
            loaded = OmegaConf.to_container(OmegaConf.load(self.config))
        except Exception as error:  # YAML and OmegaConf raise many types
            raise DataError(self.config, f"not a readable config ({error})") from None
        if not isinstance(loaded, dict):
            raise DataError(self.config, "not a config (a YAML mapping)")
        return {str(key): value for key, value in loaded.items()}

    def write_config(self, cfg) -> None:
        """The config, resolved (`cfg` a DictConfig or a dict)."""
        write_text(self.config, OmegaConf.to_yaml(cfg, resolve=True))

    # ------------------------------------------------------------------ metrics.json

    def read_metrics(self) -> dict[str, Any] | None:
        return _read_json(self.metrics)

    def write_metrics(self, metrics: Mapping[str, Any]) -> None:
        write_json(self.metrics, dict(metrics), sort_keys=True)

    def is_unfinished(self) -> bool:
        """A run salt.train started (config.yaml, its first file) and did not finish (no
        metrics.json, its last): crashed, killed or still training."""
        return self.config.is_file() and not self.metrics.is_file()

    def oof_source(self) -> str:
        """The checkpoint kind whose weights made oof.npz (metrics.json's `oof_source`; best
        when it does not say)."""
        source = (self.read_metrics() or {}).get("oof_source")
        return source if source in CHECKPOINT_KINDS and source != "auto" else "best"

    # ------------------------------------------------------------------ postprocess.json

    def read_postprocess(self) -> dict[str, Any] | None:
        """`salt.tune`'s result ({"postprocess": {...}, "oof_score_after": ...}), None if untuned."""
        return _read_json(self.postprocess)

    def write_postprocess(self, payload: Mapping[str, Any]) -> None:
        write_json(self.postprocess, dict(payload))

    # ------------------------------------------------------------------ oof.npz

    def read_oof(self) -> dict[str, np.ndarray]:
        """The out-of-fold arrays: ids (str), probabilities (float32), masks, and salt when the
        net has a "has salt" head; checked to be one image each, of equal shapes."""
        path = self.oof
        if not path.is_file():
            raise SaltError(f"{path}: not found (train with oof=true)")
        try:
            with np.load(path) as data:
                oof = {key: data[key] for key in data.files}
        except Exception as error:  # numpy and zipfile raise many types for a damaged file
            raise DataError(path, f"not a readable .npz ({error})") from None
        missing = [key for key in OOF_ARRAYS if key not in oof]
        if missing:
            raise DataError(path, f"missing array(s) {', '.join(missing)}")
        arrays = [key for key in (*OOF_ARRAYS, "salt") if key in oof]
        if any(oof[key].ndim == 0 for key in arrays) or len({len(oof[k]) for k in arrays}) > 1:
            shapes = ", ".join(f"{key} {oof[key].shape}" for key in arrays)
            raise DataError(path, f"arrays of different lengths ({shapes})")
        if oof["probabilities"].shape != oof["masks"].shape:
            raise DataError(
                path,
                f"probabilities {oof['probabilities'].shape} and masks {oof['masks'].shape} "
                "differ in shape",
            )
        oof["probabilities"] = oof["probabilities"].astype(np.float32)
        oof["ids"] = np.asarray(oof["ids"]).astype(str)
        return oof

    def write_oof(
        self, ids, probabilities: np.ndarray, masks: np.ndarray, salt: np.ndarray | None = None
    ) -> None:
        arrays = {"ids": np.asarray(ids), "probabilities": probabilities, "masks": masks}
        if salt is not None:
            arrays["salt"] = salt
        write_npz(self.oof, arrays)

    # ------------------------------------------------------------------ checkpoints

    def checkpoint_files(self, kinds: Sequence[str] = ("auto",)) -> list[Path]:
        """The run's checkpoints of `kinds` (auto: the kind its oof.npz came from); a SaltError
        when it has none of them."""
        check_kinds(kinds)
        kinds = [self.oof_source() if kind == "auto" else kind for kind in kinds]
        found: list[Path] = []
        for kind in kinds:
            if kind == "snapshots":
                found.extend(self.snapshots())
            elif self.checkpoint(kind).is_file():
                found.append(self.checkpoint(kind))
        if not found:
            raise SaltError(
                f"{self.path}: run directory has no {'/'.join(kinds)} checkpoints "
                f"in {self.checkpoints}"
            )
        return found


def is_run(folder: Path) -> bool:
    """A run directory: a folder holding checkpoints/, config.yaml or oof.npz."""
    return any((folder / name).exists() for name in (CHECKPOINTS, CONFIG, OOF))


def matching(key: str, entry: str | os.PathLike) -> list[Path]:
    """`entry` as a path, or the paths its glob pattern matches (sorted); a pattern matching
    nothing is a ConfigError naming `key` and the pattern."""
    if Path(entry).exists() or not glob.has_magic(str(entry)):
        return [Path(entry)]
    found = sorted(map(Path, glob.glob(str(entry))))
    if not found:
        raise ConfigError(key, f"{entry}: the pattern matches no file or folder")
    return found


def run_entries(key: str, runs: Any) -> list[str]:
    """The run directories and checkpoint files that `runs=` (config key or option `key`) stands
    for, in order: a checkpoint file as it is; a run directory as one run; a folder of run
    directories (a multirun's) as every run inside it, sorted; a glob pattern as what it
    matches (each match a file, a run or a folder of runs; other files are skipped). A ConfigError
    naming `key` when nothing is given, an entry does not exist or matches nothing, a folder
    neither is nor holds runs, one run comes twice, or a run directory is unfinished (its
    mid-training checkpoints are used only when named as files)."""
    entries = [runs] if isinstance(runs, str | os.PathLike) else list(runs or [])
    if not entries:
        raise ConfigError(key, f"no runs given: pass {key}=[RUN_DIR,...] or checkpoint files")
    resolved: list[Path] = []
    for entry in entries:
        matches = matching(key, entry)
        pattern = matches != [Path(entry)]
        found = []
        for path in matches:
            if not path.exists():
                raise ConfigError(key, f"{path}: no such run directory or checkpoint file")
            if path.is_file():
                if not pattern or path.suffix == ".ckpt":
                    found.append(path)
            elif is_run(path):
                found.append(path)
            else:
                inside = sorted(p for p in path.iterdir() if p.is_dir() and is_run(p))
                if not inside and not pattern:
                    raise ConfigError(
                        key,
                        f"{path}: not a run directory (no checkpoints/, config.yaml or "
                        "oof.npz) and holds none",
                    )
                found.extend(inside)
        if not found:
            raise ConfigError(key, f"{entry}: the pattern matches no run directory or checkpoint")
        resolved.extend(found)
    seen: dict[Path, Path] = {}
    for path in resolved:
        if path.resolve() in seen:
            raise ConfigError(key, f"{path}: given twice (pass each run once)")
        seen[path.resolve()] = path
    refuse_unfinished(key, resolved)
    return [str(path) for path in resolved]


def refuse_unfinished(key: str, entries: Sequence[Path]) -> None:
    """A ConfigError naming every run directory of `entries` that salt.train has not finished:
    its best.ckpt is a mid-training one and it has no OOF. Checkpoint files pass: naming one is
    how a user takes an unfinished run's weights on purpose."""
    unfinished = [path for path in entries if RunDir(path).is_unfinished()]
    if not unfinished:
        return
    example = unfinished[0] / LAST_CHECKPOINT
    if not example.is_file():
        example = RunDir(unfinished[0]).checkpoint("best")
    runs = "1 run is" if len(unfinished) == 1 else f"{len(unfinished)} runs are"
    raise ConfigError(
        key,
        f"{runs} unfinished (no {METRICS}: crashed, killed or still training): "
        f"{', '.join(map(str, unfinished))}; to use one anyway, name its checkpoint file "
        f"(e.g. {example})",
    )


def checkpoint_files(
    entries: Sequence[str | os.PathLike], kinds: Sequence[str] = ("auto",)
) -> list[Path]:
    """The checkpoints that `runs=[...]` entries stand for: a checkpoint file as it is, the
    `kinds` inside a run directory."""
    if not entries:
        raise SaltError("no runs given: pass runs=[RUN_DIR,...] or checkpoint files")
    checkpoints: list[Path] = []
    for entry in map(Path, entries):
        if entry.is_file():
            checkpoints.append(entry)
        elif entry.is_dir():
            checkpoints.extend(RunDir(entry).checkpoint_files(kinds))
        else:
            raise SaltError(f"{entry}: no such run directory or checkpoint file")
    return checkpoints


def metric_value(
    metrics: Mapping[str, Any], name: str | None, source: object = METRICS
) -> float | None:
    """The figure `optimized_metric` names (best_val_score when unset) among a run's `metrics`:
    what `salt.train` returns to a sweeper. None when the run has no value for it (no
    checkpoint callback); a name the metrics lack, or a value that is not a number, is a
    SaltError naming the metrics there are."""
    name = name or DEFAULT_OPTIMIZED_METRIC
    numbers = sorted(
        key
        for key, value in metrics.items()
        if isinstance(value, int | float) and not isinstance(value, bool)
    )
    if name not in metrics:
        raise SaltError(
            f"optimized_metric={name}: no such metric in {source} "
            f"(there are: {', '.join(numbers) or 'none'})"
        )
    value = metrics[name]
    if value is None:
        return None
    if name not in numbers:
        raise SaltError(
            f"optimized_metric={name}: {value!r} in {source} is not a number "
            f"(numbers: {', '.join(numbers)})"
        )
    return float(value)
