"""The three numbers per tile the nets' data are compared on, and when data are unlike."""

from pathlib import Path

import numpy as np
import pytest

from salt.data.earth_model import Style
from salt.data.synthetic import make_section, make_tiles
from salt.data.tile_statistics import (
    TGS_TRAINING_TILES,
    per_tile,
    summarise,
    unlike,
    windows,
)
from salt.sections.seismic import scaling_for

SHARED_TGS = Path(__file__).resolve().parents[3] / "shared" / "tgs"


def test_each_statistic_of_a_tile_by_hand():
    def layered(period: float) -> np.ndarray:
        layers = np.rint(130 + 40 * np.sin(2 * np.pi * np.arange(101) / period))
        return np.repeat(layers.astype(np.uint8)[:, None], 101, axis=1)

    tiles = np.stack([layered(20), layered(10), np.full((101, 101), 7, np.uint8), layered(5)])
    values = per_tile(tiles)  # the blank one left out
    assert len(values["gray_mean"]) == 3
    assert values["gray_mean"][1] == pytest.approx(tiles[1].mean())
    assert values["gray_std"][1] == pytest.approx(40 / np.sqrt(2), abs=0.5)
    # finer layering, a higher centroid (near 1 / period: the spectrum leaks upwards a little)
    assert 0.05 <= values["vertical_frequency"][0] < values["vertical_frequency"][1]
    assert values["vertical_frequency"][1] < values["vertical_frequency"][2] <= 0.25


def test_the_summary_is_the_5th_50th_and_95th_percentiles():
    rng = np.random.default_rng(0)
    images = np.clip(rng.normal(128, rng.uniform(5, 50, (200, 1, 1)), (200, 101, 101)), 0, 255)
    summary = summarise(images.astype(np.uint8))
    stds = per_tile(images.astype(np.uint8))["gray_std"]
    assert summary["gray_std"] == pytest.approx(np.percentile(stds, [5, 50, 95]), abs=1e-3)
    assert summarise(np.zeros((3, 101, 101), np.uint8)) == {}


def test_windows_tile_the_section_without_overlap_and_at_most_as_many_as_asked():
    section = np.arange(303 * 505).reshape(303, 505)
    found = windows(section)
    assert found.shape == (15, 101, 101)
    assert found[0, 0, 0] == 0 and found[-1, -1, -1] == section[-1, -1]
    assert windows(section, most=4).shape == (4, 101, 101)
    assert windows(section[:100]).shape == (0, 101, 101)


def seismic_section() -> np.ndarray:
    amplitudes, _ = make_section(303, 808, seed=3, style="seismic", amplitudes=True)
    return scaling_for(amplitudes)(amplitudes)


def test_generated_seismic_is_like_the_competition_tiles_and_a_damaged_copy_is_not():
    section = seismic_section()
    assert unlike(windows(section), TGS_TRAINING_TILES) is None
    tiles = np.stack([image for image, _ in make_tiles(np.random.default_rng(1), 100, "seismic")])
    assert unlike(tiles, TGS_TRAINING_TILES) is None
    flat = (128 + 0.3 * (section.astype(np.float32) - 128)).astype(np.uint8)
    assert unlike(windows(flat), TGS_TRAINING_TILES).startswith("gray_std 11 (")
    bright = np.clip(section.astype(np.int32) + 60, 0, 255).astype(np.uint8)
    message = unlike(windows(bright), TGS_TRAINING_TILES, "nets' training tiles")
    assert message.startswith("gray_mean 18") and "percentiles: 83.9..162" in message
    noise = np.random.default_rng(2).normal(0, 60, section.shape)
    noisy = np.clip(section + noise, 0, 255).astype(np.uint8)
    assert "vertical_frequency" in unlike(windows(noisy), TGS_TRAINING_TILES)


@pytest.mark.skipif(not SHARED_TGS.is_dir(), reason=f"{SHARED_TGS} absent: the real tiles")
def test_the_recorded_reference_is_the_summary_of_the_competition_tiles():
    from salt.data.io import load_train

    measured = summarise(load_train(SHARED_TGS, check_masks=False).images)
    for name, values in TGS_TRAINING_TILES.items():
        assert measured[name] == pytest.approx(values, abs=1e-3), name


def test_a_style_the_nets_have_not_seen_can_be_unlike_them():
    look = Style(frequency=0.3, noise=0.25)  # far finer layering than any tile's
    amplitudes, _ = make_section(303, 808, seed=3, style="seismic", look=look, amplitudes=True)
    scaled = scaling_for(amplitudes)(amplitudes)
    assert "vertical_frequency" in unlike(windows(scaled), TGS_TRAINING_TILES)
