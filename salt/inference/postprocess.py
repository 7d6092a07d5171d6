"""From probabilities to masks: threshold, small-component removal, hole filling, empty gating;
and the post-processing `salt.tune` saved in a run directory."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass

import cv2
import numpy as np

from salt.core.checks import choice, probability, whole_number
from salt.core.errors import ConfigError, SaltError
from salt.core.rundir import RunDir

GATES = (None, "area", "classifier")


@dataclass(frozen=True)
class PostProcess:
    """How probabilities become masks.

    `gate`: "area" empties masks with fewer than `min_area` salt pixels; "classifier" empties
    masks whose "has salt" probability is under `salt_threshold`; None keeps every mask.
    A bad value is a ConfigError named by its field (salt.predict's keys have the same names):
    the thresholds are numbers in (0, 1), the sizes whole numbers >= 0.
    """

    threshold: float = 0.5
    min_size: int = 0
    fill_holes: bool = False
    gate: str | None = None
    min_area: int = 0
    salt_threshold: float = 0.5

    def __post_init__(self):
        probability("threshold", self.threshold)
        probability("salt_threshold", self.salt_threshold)
        whole_number("min_size", self.min_size, 0)
        whole_number("min_area", self.min_area, 0)
        choice("fill_holes", self.fill_holes, (False, True))
        choice("gate", self.gate, GATES)

    def as_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_tuned(cls, tuned: Mapping, source) -> PostProcess:
        """The post-processing of a `salt.tune` result (what postprocess.json holds)."""
        try:
            return cls(**tuned["postprocess"])
        except (ValueError, KeyError, TypeError) as error:
            raise SaltError(f"{source}: not a salt.tune result ({error})") from None

    def __call__(
        self, probabilities: np.ndarray, salt_probabilities: np.ndarray | None = None
    ) -> np.ndarray:
        masks = (probabilities > self.threshold).astype(np.uint8)
        if self.min_size > 0:
            masks = np.stack([remove_small_components(m, self.min_size) for m in masks])
        if self.fill_holes:
            masks = np.stack([fill_holes(m) for m in masks])
        if self.gate == "area":
            masks[masks.reshape(len(masks), -1).sum(1) < self.min_area] = 0
        elif self.gate == "classifier":
            if salt_probabilities is None:
                raise ConfigError(
                    "gate",
                    "classifier needs a model with a classifier head: pass gate=area or null",
                )
            masks[np.asarray(salt_probabilities) < self.salt_threshold] = 0
        return masks


def tuned_postprocess(entry) -> PostProcess:
    """The post-processing `salt.tune` saved in a run directory (or in the run of a checkpoint)."""
    run = RunDir.of(entry)
    tuned = run.read_postprocess()
    if tuned is None:
        raise SaltError(
            f"{run.postprocess}: not found; run `python -m salt.tune runs=[...]` first, "
            "or pass postprocess=fixed with threshold=..."
        )
    return PostProcess.from_tuned(tuned, run.postprocess)


def remove_small_components(mask: np.ndarray, min_size: int) -> np.ndarray:
    count, labels, stats, _ = cv2.connectedComponentsWithStats(
        mask.astype(np.uint8), connectivity=8
    )
    keep = np.zeros(count, dtype=np.uint8)
    keep[1:] = stats[1:, cv2.CC_STAT_AREA] >= min_size
    return keep[labels]


def fill_holes(mask: np.ndarray) -> np.ndarray:
    """Fill background regions that do not touch the tile border."""
    background = (mask == 0).astype(np.uint8)
    count, labels = cv2.connectedComponents(background, connectivity=4)
    border = np.unique(np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]]))
    hole = np.isin(labels, border, invert=True) & (background == 1)
    return (mask.astype(bool) | hole).astype(np.uint8)
