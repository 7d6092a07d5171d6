"""Which predicted tiles become pseudo-labels: the confidence of a prediction and the policies of
the TGS winners.

A tile's confidence is the share of its pixels predicted with p < `low` or p > `high` (1st place,
b.e.s. & phalanx: 0.2 and 0.8). Policies (`select`):

    bes      confidence >= 0.9, blank images dropped (b.e.s.)
    phalanx  confidence >= 0.97 (>= 0.99 for masks of 20 to 500 pixels), masks covering >= 90%
             of the tile dropped, every second empty mask dropped (phalanx)
    all      every tile (4th place, SeuTao: no filter)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from salt.core.checks import choice, probability, whole_number
from salt.core.errors import ConfigError

POLICIES = ("bes", "phalanx", "all")
KEPT = "kept"
LOW_CONFIDENCE = "low confidence"
BLANK_IMAGE = "blank image"
LARGE_MASK = "mask too large"
EMPTY_THINNED = "empty, every second kept"


@dataclass(frozen=True)
class Selection:
    """Per tile (in the order predicted): its confidence, its mask's coverage, why it was
    dropped (`KEPT` when kept)."""

    confidence: np.ndarray
    coverage: np.ndarray
    reasons: list[str]

    @property
    def kept(self) -> np.ndarray:
        return np.array([reason == KEPT for reason in self.reasons], dtype=bool)


def confidence(probabilities: np.ndarray, low: float, high: float) -> np.ndarray:
    """(N,) share of each tile's pixels predicted below `low` or above `high`."""
    sure = (probabilities < low) | (probabilities > high)
    return sure.reshape(len(sure), -1).mean(1)


def check_policy(settings: Mapping[str, Any], key: str = "pseudo") -> None:
    """The selection keys of conf/pseudo.yaml, refused in one line naming the key."""
    choice(f"{key}.select", settings["select"], POLICIES)
    for name in ("threshold", "low", "high"):
        probability(f"{key}.{name}", settings[name])
    if not settings["low"] < settings["high"]:
        raise ConfigError(
            f"{key}.low", f"must be below {key}.high ({settings['high']}), got {settings['low']}"
        )
    probability(f"{key}.bes.min_confidence", settings["bes"]["min_confidence"])
    phalanx = settings["phalanx"]
    for name in ("min_confidence", "small_mask_confidence", "max_coverage"):
        probability(f"{key}.phalanx.{name}", phalanx[name])
    for name in ("small_mask_min_pixels", "small_mask_max_pixels"):
        whole_number(f"{key}.phalanx.{name}", phalanx[name], 0)
    whole_number(f"{key}.phalanx.keep_every_nth_empty", phalanx["keep_every_nth_empty"], 1)


def select(
    images: np.ndarray, probabilities: np.ndarray, settings: Mapping[str, Any]
) -> tuple[np.ndarray, Selection]:
    """The masks (probabilities > `threshold`) and which tiles the policy keeps, and why not."""
    masks = (probabilities > settings["threshold"]).astype(np.uint8)
    sure = confidence(probabilities, settings["low"], settings["high"])
    pixels = masks.reshape(len(masks), -1).sum(1)
    coverage = pixels / masks[0].size if len(masks) else np.zeros(0)
    reasons = [KEPT] * len(masks)
    policy = settings["select"]
    if policy == "bes":
        flat = images.reshape(len(images), -1)
        blank = flat.min(1) == flat.max(1)
        for i in range(len(masks)):
            if blank[i]:
                reasons[i] = BLANK_IMAGE
            elif sure[i] < settings["bes"]["min_confidence"]:
                reasons[i] = LOW_CONFIDENCE
    elif policy == "phalanx":
        rules = settings["phalanx"]
        small = (pixels >= rules["small_mask_min_pixels"]) & (
            pixels <= rules["small_mask_max_pixels"]
        )
        needed = np.where(small, rules["small_mask_confidence"], rules["min_confidence"])
        empties = 0
        for i in range(len(masks)):
            if coverage[i] >= rules["max_coverage"]:
                reasons[i] = LARGE_MASK
            elif sure[i] < needed[i]:
                reasons[i] = LOW_CONFIDENCE
            elif pixels[i] == 0:
                if empties % rules["keep_every_nth_empty"]:
                    reasons[i] = EMPTY_THINNED
                empties += 1
    return masks, Selection(confidence=sure, coverage=coverage, reasons=reasons)
