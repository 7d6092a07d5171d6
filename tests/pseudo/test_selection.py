"""Which predicted tiles become pseudo-labels: the confidence and the three policies."""

from __future__ import annotations

import numpy as np
import pytest
from omegaconf import OmegaConf

from salt.core.errors import ConfigError
from salt.inference.selection import (
    BLANK_IMAGE,
    EMPTY_THINNED,
    KEPT,
    LARGE_MASK,
    LOW_CONFIDENCE,
    check_policy,
    confidence,
    select,
)
from tests.helpers.runs import compose_config


def settings(**changes):
    pseudo = OmegaConf.to_container(compose_config("pseudo", ["runs=[x]", "out=y"]).pseudo)
    for key, value in changes.items():
        node = pseudo
        *parents, last = key.split(".")
        for parent in parents:
            node = node[parent]
        node[last] = value
    return pseudo


def tile(probability: float, salt_pixels: int = 0, sure: float = 0.99) -> np.ndarray:
    """A 101x101 probability map whose confidence is `probability`: the first `salt_pixels`
    pixels at `sure`, the others at 1 - `sure`, but the last `1 - probability` of them at 0.5."""
    values = np.full(101 * 101, 1 - sure, dtype=np.float32)
    values[:salt_pixels] = sure
    unsure = round((1 - probability) * values.size)
    values[values.size - unsure :] = 0.5
    return values.reshape(101, 101)


def textured(count: int) -> np.ndarray:
    return np.random.default_rng(0).integers(0, 255, (count, 101, 101), dtype=np.uint8)


def test_confidence_is_the_share_of_pixels_outside_low_and_high():
    probabilities = np.stack([tile(1.0), tile(0.5)])
    assert confidence(probabilities, 0.2, 0.8) == pytest.approx([1.0, 0.5], abs=1e-3)


def test_bes_keeps_confident_tiles_and_drops_blank_images():
    probabilities = np.stack([tile(0.95, 3000), tile(0.85, 3000), tile(1.0)])
    images = textured(3)
    images[2] = 7  # blank
    masks, selection = select(images, probabilities, settings(select="bes"))
    assert selection.reasons == [KEPT, LOW_CONFIDENCE, BLANK_IMAGE]
    assert masks[0].sum() == 3000 and selection.coverage[0] == pytest.approx(3000 / 101**2)


def test_phalanx_drops_huge_masks_demands_more_of_small_ones_and_thins_empty_ones():
    probabilities = np.stack(
        [
            tile(1.0, 101 * 101 - 50),  # covers 99.5%
            tile(0.98, 300),  # small mask under 0.99
            tile(0.995, 300),  # small mask over 0.99
            tile(0.98, 3000),  # large mask over 0.97
            tile(1.0),  # empty: first kept
            tile(1.0),  # empty: second dropped
            tile(1.0),  # empty: third kept
        ]
    )
    _, selection = select(textured(7), probabilities, settings(select="phalanx"))
    assert selection.reasons == [
        LARGE_MASK,
        LOW_CONFIDENCE,
        KEPT,
        KEPT,
        KEPT,
        EMPTY_THINNED,
        KEPT,
    ]


def test_all_keeps_every_tile():
    images = textured(2)
    images[1] = 0
    _, selection = select(images, np.stack([tile(0.1), tile(1.0)]), settings(select="all"))
    assert selection.kept.tolist() == [True, True]


@pytest.mark.parametrize(
    "change, message",
    [
        ({"select": "best"}, "pseudo.select: unknown value 'best'"),
        ({"low": 0.9}, "pseudo.low: must be below pseudo.high"),
        ({"bes.min_confidence": 1.5}, "pseudo.bes.min_confidence: must be a number between 0"),
        ({"phalanx.keep_every_nth_empty": 0}, "pseudo.phalanx.keep_every_nth_empty"),
    ],
)
def test_a_bad_selection_key_is_refused_by_name(change, message):
    with pytest.raises(ConfigError, match="^" + message.replace(".", r"\.")):
        check_policy(settings(**change))
