"""Pseudo-labels without training: a pseudo-label folder of the test tiles of a generated data
root labelled by a brightness threshold, and run directories that salt.pseudo reads as trained
runs (config.yaml and a tiny checkpoint)."""

from __future__ import annotations

import functools
import io
import tempfile
from pathlib import Path

import pandas as pd
import torch

from salt.core.rundir import RunDir
from salt.data.folds import load_or_make_folds
from salt.data.io import load_test, load_train
from salt.data.pseudo import LabelSet, write_pseudo_folder
from tests.helpers.tiny_net import write_checkpoint


def threshold_labels(data_root: Path, out: Path, made_by: Path) -> Path:
    """Every test tile of `data_root` labelled salt where brighter than 128; `made_by` stands
    for the run that made them (it must exist)."""
    tiles = load_test(data_root)
    masks = (tiles.images > 128).astype("uint8")
    info = {"validation": "ensemble", "runs": [str(made_by)], "folds": {}}
    manifest = pd.DataFrame({"id": tiles.ids, "labels": "all", "kept": True, "reason": "kept"})
    labels = LabelSet(fold=None, ids=tiles.ids, images=tiles.images, masks=masks)
    return write_pseudo_folder(out, [labels], manifest, info)


@functools.cache
def constant_checkpoint(salt: bool) -> bytes:
    """The bytes of a tiny net's checkpoint that predicts salt everywhere (`salt`) or nowhere
    (made once: building a net takes a while)."""
    with tempfile.TemporaryDirectory() as folder:
        path = write_checkpoint(Path(folder) / "net.ckpt", net_options={"classifier": False})
        state = torch.load(path, weights_only=False)
    head = "net.segmentation_head.2.0"  # the 1x1 conv to the mask logit: a constant logit
    state["state_dict"][f"{head}.weight"].zero_()
    state["state_dict"][f"{head}.bias"].fill_(10.0 if salt else -10.0)
    buffer = io.BytesIO()
    torch.save(state, buffer)
    return buffer.getvalue()


def fake_run(
    run: Path,
    data_root: Path,
    fold: int,
    *,
    salt: bool = False,
    n_folds: int = 5,
    fold_seed: int = 42,
    folds_csv: Path | None | str = "own",
    pseudo: Path | None = None,
    finetune_from: Path | None = None,
) -> Path:
    """A run directory as salt.train leaves it, as far as salt.pseudo reads one, without
    training: config.yaml, checkpoints/best.ckpt of a tiny net that predicts salt everywhere
    (`salt`) or nowhere, and metrics.json (a finished run: `runs=` refuses unfinished ones). `folds_csv="own"`: the run's folds.csv, written from `data_root` as
    training writes it; a path: that file (written when missing); None: no fold file."""
    run.mkdir(parents=True, exist_ok=True)
    if folds_csv == "own":
        folds_csv = run / "folds.csv"
    if folds_csv is not None:
        tiles = load_train(data_root)
        load_or_make_folds(folds_csv, tiles.ids, tiles.truth, n_folds, fold_seed)
    data = {
        "root": str(data_root),
        "fold": fold,
        "n_folds": n_folds,
        "fold_seed": fold_seed,
        "folds_csv": None if folds_csv is None else str(folds_csv),
        "pseudo": None if pseudo is None else str(pseudo),
    }
    config = {"data": data, "finetune_from": None if finetune_from is None else str(finetune_from)}
    RunDir(run).write_config(config)
    checkpoint = run / "checkpoints" / "best.ckpt"
    checkpoint.parent.mkdir(exist_ok=True)
    checkpoint.write_bytes(constant_checkpoint(salt))
    RunDir(run).write_metrics({"oof_source": "best"})
    return run
