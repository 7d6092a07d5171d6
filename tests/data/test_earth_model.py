"""The earth model's generated seismic: salt as the TGS tiles show it (a dim, reflection-poor
body under a bright top), the look's knobs, and the tiles' shares of empty and blank tiles."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from salt.data.earth_model import Style, earth_tiles, make_earth_section
from salt.data.synthetic import make_section, make_tiles
from salt.data.synthetic_cube import make_cube
from tests.data.test_synthetic_cube import look


def section(seed: int = 0, **knobs):
    return make_earth_section((200, 400), np.random.default_rng(seed), Style(**knobs), bodies=2)


def vertical_roughness(images: np.ndarray, masks: np.ndarray) -> tuple[float, float]:
    """The mean |vertical gradient| inside salt and outside it, over tiles with both."""
    gradient = np.abs(np.diff(images.astype(np.float32), axis=1))
    salt = masks[:, 1:].astype(bool)
    coverage = masks.reshape(len(masks), -1).mean(axis=1)
    both = (coverage > 0.1) & (coverage < 0.9)
    return float(gradient[both][salt[both]].mean()), float(gradient[both][~salt[both]].mean())


@pytest.mark.parametrize("style, smoother", [("seismic", True), ("speckle", False)])
def test_salt_is_smoother_than_the_layers_around_it_as_in_the_tgs_tiles(style, smoother):
    """TGS's training tiles: the vertical gradient inside salt is 0.48x the one outside. The
    earth model's salt is reflection-poor; the speckle style's (the generator before) is not."""
    tiles = make_tiles(np.random.default_rng(0), 200, style)
    images, masks = (np.stack(t) for t in zip(*tiles, strict=True))
    inside, outside = vertical_roughness(images, masks)
    assert (inside / outside < 0.6) == smoother, inside / outside


@pytest.mark.parametrize("polarity", [1, -1])
def test_the_top_of_salt_is_bright_with_the_polarity_asked_for(polarity):
    generated = section(polarity=polarity, noise=0.05)
    mask = generated.mask.astype(bool)
    traces = np.flatnonzero(mask.any(axis=0) & ~mask[0])
    tops = mask[:, traces].argmax(axis=0)  # the first salt sample down each trace
    # the strongest sample within a sample of the boundary, trace by trace
    near = np.stack([generated.amplitude[np.clip(tops + d, 0, 199), traces] for d in (-1, 0, 1)])
    peaks = near[np.abs(near).argmax(axis=0), np.arange(len(traces))]
    layers = np.abs(generated.amplitude[~mask]).mean()
    assert np.sign(np.median(peaks)) == polarity
    assert np.median(np.abs(peaks)) > 1.5 * layers


def test_polarity_negates_the_section_and_the_knobs_leave_the_other_draws_alone():
    up, down = section(polarity=1), section(polarity=-1)
    np.testing.assert_array_equal(up.mask, down.mask)
    np.testing.assert_allclose(up.amplitude, -down.amplitude, atol=1e-5)


def spectrum_centroid(amplitude: np.ndarray) -> float:
    spectrum = np.abs(np.fft.rfft(amplitude, axis=0)).mean(axis=1)
    frequencies = np.fft.rfftfreq(amplitude.shape[0])
    return float((frequencies * spectrum).sum() / spectrum.sum())


def test_frequency_noise_and_gain_change_what_they_name():
    low, high = section(frequency=0.05, noise=0.05), section(frequency=0.12, noise=0.05)
    assert spectrum_centroid(high.amplitude) > 1.5 * spectrum_centroid(low.amplitude)

    quiet, noisy = section(noise=0.02), section(noise=1.0)
    # deep inside the salt, away from its top reflection, the noise is most of what it shows
    salt = cv2.erode(quiet.mask, np.ones((3, 3), np.uint8), iterations=10).astype(bool)
    assert noisy.amplitude[salt].std() > 2 * quiet.amplitude[salt].std()

    flat, gained = section(gain=0.0, noise=0.05), section(gain=3.0, noise=0.05)
    for generated in (flat, gained):
        assert generated.style.gain in (0.0, 3.0)
    deep_over_shallow = [
        np.abs(g.amplitude[150:]).mean() / np.abs(g.amplitude[:50]).mean() for g in (flat, gained)
    ]
    assert deep_over_shallow[1] > 2 * deep_over_shallow[0]

    with pytest.raises(ValueError, match="polarity must be 1 or -1, got 0"):
        section(polarity=0)


def test_tiles_hold_tgs_shares_of_empty_and_blank_tiles_and_repeat_from_the_seed():
    tiles = earth_tiles(np.random.default_rng(3), 400)
    masks = np.stack([mask for _, mask in tiles])
    images = np.stack([image for image, _ in tiles])
    empty = ~masks.reshape(400, -1).any(axis=1)
    blank = images.reshape(400, -1).std(axis=1) == 0
    assert abs(empty.mean() - 0.39) < 0.08 and blank.sum() <= 20
    assert images.shape == (400, 101, 101) and images.dtype == np.uint8
    again = earth_tiles(np.random.default_rng(3), 400)
    assert all(np.array_equal(a[0], b[0]) for a, b in zip(tiles, again, strict=True))


def test_a_cube_takes_the_look_and_its_polarity_negates_it():
    up, mask_up = make_cube((6, 20, 40), seed=2, style="seismic", look=Style(polarity=1))
    down, mask_down = make_cube((6, 20, 40), seed=2, style="seismic", look=Style(polarity=-1))
    np.testing.assert_array_equal(mask_up, mask_down)
    np.testing.assert_allclose(up, -down, atol=1e-4)
    old, _ = make_cube((6, 20, 40), seed=2, style="speckle")
    assert not np.allclose(old, up)


def test_cube_inlines_and_crosslines_look_like_the_2d_sections():
    """In both directions of a seismic cube as in a seismic section: layers continuous from
    trace to trace, a top of salt brighter than the layers far from salt, a dim salt interior;
    and the cube looks the same along its inlines and its crosslines (its noise is smoothed
    across both, each inline still computed alone)."""
    amplitude, mask = make_cube((32, 64, 96), seed=0, style="seismic")
    section, section_mask = make_section(96, 200, seed=0, amplitudes=True, style="seismic")
    expected = look(section.T, section_mask.T)
    across_inlines = look(amplitude, mask)
    across_crosslines = look(amplitude.transpose(1, 0, 2), mask.transpose(1, 0, 2))
    for seen in (expected, across_inlines, across_crosslines):
        assert seen["layer_coherence"] > 0.9
        assert seen["top_brightness"] > 2
        assert seen["salt_brightness"] < 0.5
    for key in ("layer_coherence", "salt_coherence"):
        assert abs(across_inlines[key] - across_crosslines[key]) < 0.1, key


def test_the_style_reaches_the_tiles_from_the_command_line_and_from_data_synthetic(tmp_path):
    from salt.core.errors import ConfigError
    from salt.data.datamodule import TGSDataModule
    from salt.data.io import load_train
    from tests.helpers.runs import run_module

    command = run_module(
        "salt.data.synthetic",
        tmp_path / "cli",
        "--train",
        "40",
        "--test",
        "2",
        "--style",
        "seismic",
        "--polarity",
        "-1",
    )
    assert command.returncode == 0, command.stderr
    bad = run_module("salt.data.synthetic", tmp_path / "bad", "--polarity", "2")
    assert bad.returncode == 2 and "--polarity: invalid choice" in bad.stderr
    # the earth model's look (salt smoother than the layers) by default, speckle's when asked
    for style, smoother in (({}, True), ({"style": "speckle"}, False)):
        root = tmp_path / f"config-{style.get('style', 'default')}"
        configured = TGSDataModule(root=str(root), synthetic={"n_train": 40, "n_test": 2, **style})
        configured.prepare_data()
        tiles = load_train(root)
        inside, outside = vertical_roughness(tiles.images, tiles.truth)
        assert (inside / outside < 0.6) == smoother, (style, inside / outside)
    with pytest.raises(ConfigError, match="data.synthetic.style: choose from speckle, seismic"):
        TGSDataModule(root=str(tmp_path / "x"), synthetic={"style": "cartoon"})
