"""Kaggle submission from trained runs:
`python -m salt.predict runs=[RUN_DIR,...] data.root=DIR out=submission.csv`."""

from __future__ import annotations

import sys
from pathlib import Path

import hydra
import numpy as np
from omegaconf import DictConfig

from salt.analysis.plots import write_prediction_plot
from salt.core.checks import choice, choices, whole_number
from salt.core.config import CONFIG_DIR
from salt.core.errors import SaltError, exit_on_salt_error, run_hydra_main
from salt.core.files import write_npz
from salt.core.rundir import CHECKPOINT_KINDS, RunDir, checkpoint_files, run_entries
from salt.data.io import load_test
from salt.inference.postprocess import PostProcess, tuned_postprocess
from salt.inference.submission import write_submission
from salt.inference.tiles import TilePredictions, check_tta, predict_ensemble, resolve_device

# autocast on a GPU (bf16, 16) or none (32); ignored on the CPU
PRECISIONS = ("bf16-mixed", "16-mixed", "32-true", "bf16", "16", "32")


def warn_if_tuned_on_other_weights(runs: list[str], kinds: list[str]) -> None:
    """salt.tune tunes on the OOF predictions of one kind of weights; say so when others predict."""
    for entry in runs:
        if not Path(entry).is_dir():
            continue
        source = RunDir.of(entry).oof_source()
        if set(kinds) - {"auto", source}:
            print(
                f"warning: {entry}: post-processing was tuned on the out-of-fold predictions of "
                f"its {source} weights; checkpoints={kinds} applies it to other weights "
                "(checkpoints=[auto] predicts with the tuned ones)",
                file=sys.stderr,
            )


def postprocess_from(cfg: DictConfig, runs: list[str]) -> PostProcess:
    choice("postprocess", cfg.postprocess, ("tuned", "fixed"))
    fixed = PostProcess(  # its values are checked (one-line errors naming them) even when tuned
        threshold=cfg.threshold,
        min_size=cfg.min_size,
        fill_holes=cfg.fill_holes,
        gate=cfg.gate,
        min_area=cfg.min_area,
        salt_threshold=cfg.salt_threshold,
    )
    return tuned_postprocess(runs[0]) if cfg.postprocess == "tuned" else fixed


def check_settings(cfg: DictConfig) -> list[str]:
    """The run entries of `runs=`; the other keys' bad values refused in one line before any
    prediction (the output folders included, which would otherwise fail only at the end)."""
    runs = run_entries("runs", cfg.runs)
    choices("checkpoints", cfg.checkpoints, CHECKPOINT_KINDS)
    whole_number("batch_size", cfg.batch_size, 1)
    choice("precision", str(cfg.precision), PRECISIONS)
    for key in ("out", "save_probabilities"):
        path = Path(cfg[key]) if cfg.get(key) else None
        if path is not None and not path.absolute().parent.is_dir():
            raise SaltError(f"{path}: output folder {path.parent} does not exist")
    return runs


def save_probabilities(path: Path, ids: list[str], predictions: TilePredictions) -> None:
    """The averaged probabilities (float16) for blending, written whole or not at all."""
    arrays = {"ids": np.array(ids), "probabilities": predictions.masks.astype(np.float16)}
    if predictions.salt is not None:
        arrays["salt"] = predictions.salt
    write_npz(path, arrays)


def predict(cfg: DictConfig) -> Path:
    runs = check_settings(cfg)
    tta = check_tta(cfg.tta)
    device = resolve_device(cfg.device)
    checkpoints = checkpoint_files(runs, list(cfg.checkpoints))
    postprocess = postprocess_from(cfg, runs)
    if cfg.postprocess == "tuned":
        warn_if_tuned_on_other_weights(runs, list(cfg.checkpoints))
    test = load_test(cfg.data.root)
    print(f"predicting {len(test)} tiles with {len(checkpoints)} checkpoint(s) x {len(tta)} TTA")
    predictions = predict_ensemble(
        checkpoints,
        test.images,
        batch_size=cfg.batch_size,
        device=device,
        tta=tta,
        precision=cfg.precision,
        progress=cfg.get("progress", True),
    )
    masks = postprocess(predictions.masks, predictions.salt)
    out = write_submission(cfg.out, test.ids, masks, test.ids)
    if cfg.save_probabilities:
        save_probabilities(Path(cfg.save_probabilities), test.ids, predictions)
    empty = int((masks.reshape(len(masks), -1).max(1) == 0).sum())
    print(f"{postprocess}")
    print(f"wrote {out}: {len(masks)} rows, {empty} empty masks")
    if cfg.get("plots", True):
        print(f"wrote {write_prediction_plot(out, test.images, masks, test.ids)}")
    return out


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="predict")
@exit_on_salt_error
def main(cfg: DictConfig) -> None:
    predict(cfg)


if __name__ == "__main__":
    run_hydra_main(main)
