"""The true salt mask that `--truth` scores a prediction against: for a section (salt.section) an
image or a .npy file, for a survey (salt.survey) a .npy volume, of the prediction's shape; nonzero
is salt. A .npy file is memory-mapped: a survey's truth is read a slice at a time, never whole."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from salt.core.errors import DataError
from salt.sections.seismic import load_npy, read_section


def read_truth(path, shape: tuple[int, ...], what: str) -> np.ndarray:
    """The truth at `path`, checked to have `shape`, the shape of the `what` ("section",
    "survey") it scores; refused in one line naming the file otherwise."""
    path = Path(path)
    if len(shape) == 2:
        truth = read_section(path)
    elif path.is_file():
        truth = load_npy(path)
    else:
        raise DataError(path, "no such file")
    if truth.shape != shape:
        raise DataError(path, f"truth of shape {truth.shape} does not match the {what} {shape}")
    return truth
