"""When not to trust the nets: data whose scaled amplitudes are unlike the nets' training tiles.

The nets learnt from 8-bit tiles of a certain gray level, contrast and fineness of layering
(`salt.data.tile_statistics`); a section or survey whose scaled windows are typically outside
what nine training tiles in ten look like gets a one-line warning saying what was compared and
how far (docs/seismic.md, "When not to trust the nets"). The reference is the training tiles'
summary the first checkpoint kept (`training_tiles`), or the competition's tiles for a
checkpoint from before salt kept one.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from salt.data.tile_statistics import TGS_TRAINING_TILES, unlike, windows
from salt.models.checkpoints import read_checkpoint
from salt.sections.cube import AXES, Survey
from salt.sections.seismic import Scaling

DOCS = "docs/seismic.md#when-not-to-trust-the-nets"
LINES_SAMPLED = 5  # per axis of a survey


def training_reference(paths: Sequence[Path]) -> tuple[dict, str]:
    """(the summary of the tiles the first checkpoint that kept one trained on, what it is)."""
    for path in paths:
        kept = read_checkpoint(path).get("hyper_parameters", {}).get("training_tiles")
        if kept:
            return dict(kept), "nets' training tiles"
    return TGS_TRAINING_TILES, "competition's training tiles"


def domain_warning(
    source: Path, sections: Iterable[np.ndarray], scaling: Scaling, paths: Sequence[Path]
) -> str | None:
    """The warning for `sections` of `source`, scaled by `scaling` (windows of them: a large
    section is never scaled whole), against the checkpoints' training tiles; None when they
    look alike, or are too small for a tile."""
    found = [scaling(windows(section)) for section in sections]
    tiles = np.concatenate(found) if found else np.empty((0, 101, 101), np.uint8)
    if not len(tiles):
        return None
    reference, described = training_reference(paths)
    far = unlike(tiles, reference, described)
    if far is None:
        return None
    return (
        f"warning: {source}: its scaled amplitudes are unlike the {described}: {far}; "
        f"treat its salt with care ({DOCS})"
    )


def survey_sections(survey: Survey, count: int = LINES_SAMPLED):
    """`count` evenly spaced inlines and crosslines of `survey`, one at a time."""
    for axis, lines in zip(AXES, survey.shape[:2]):
        for index in np.unique(np.linspace(0, lines - 1, count).round().astype(int)):
            yield survey.line(axis, int(index))
