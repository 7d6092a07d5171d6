"""What the nets' input looks like, in three numbers per 101x101 tile, and how far data is from it.

Per tile (8-bit gray, as the nets see it):
- `gray_mean`: its mean gray level (0..255);
- `gray_std`: its standard deviation (contrast);
- `vertical_frequency`: the centroid of its vertical amplitude spectrum (each column's mean
  removed, the spectra of its columns averaged), in cycles per pixel: how fine its layering
  is, which follows the wavelet's frequency and the sampling.

A set of tiles is summarised by the 5th, 50th and 95th percentiles of each (`summarise`); a
trained run keeps its training tiles' summary in its checkpoints (`training_tiles`). Data are
"unlike" the training tiles when the median of one statistic over their windows lies outside
the training tiles' 5th..95th percentiles (`unlike`): the typical window of the data is then
unlike nine tiles in ten the nets learnt from. Blank tiles (one gray level) are left out.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from salt.data.padding import TILE

STATISTICS = ("gray_mean", "gray_std", "vertical_frequency")
PERCENTILES = (5, 50, 95)
# the summary of the 3,200 training tiles of the competition (../shared/tgs, blank tiles left
# out), measured with `summarise` on 2026-12-07: the reference of checkpoints that predate
# `training_tiles` (every such run trained on these tiles or on generated tiles made like them)
TGS_TRAINING_TILES: dict[str, list[float]] = {
    "gray_mean": [83.86, 123.5497, 162.2195],
    "gray_std": [15.4058, 28.2052, 42.1425],
    "vertical_frequency": [0.0745, 0.0956, 0.177],
}


def vertical_spectrum(images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(frequencies in cycles per pixel, amplitude spectrum per image (N, F)) of (N, H, W)
    images down their columns, each column's mean removed."""
    images = np.asarray(images, dtype=np.float32)
    columns = images - images.mean(axis=1, keepdims=True)
    spectrum = np.abs(np.fft.rfft(columns, axis=1)).mean(axis=2)
    return np.fft.rfftfreq(images.shape[1]), spectrum


def per_tile(images: np.ndarray) -> dict[str, np.ndarray]:
    """Each statistic of each of the (N, H, W) images that is not blank."""
    images = np.asarray(images, dtype=np.float32)
    live = images.reshape(len(images), -1).std(axis=1) > 0
    images = images[live]
    frequencies, spectrum = vertical_spectrum(images)
    power = spectrum.sum(axis=1)
    return {
        "gray_mean": images.mean(axis=(1, 2)),
        "gray_std": images.std(axis=(1, 2)),
        "vertical_frequency": (spectrum * frequencies).sum(axis=1) / np.maximum(power, 1e-12),
    }


def summarise(images: np.ndarray) -> dict[str, list[float]]:
    """The 5th, 50th and 95th percentiles of each statistic over the images; {} when every
    image is blank."""
    values = per_tile(images)
    if not len(values["gray_mean"]):
        return {}
    return {
        name: [round(float(v), 4) for v in np.percentile(values[name], PERCENTILES)]
        for name in STATISTICS
    }


def windows(section: np.ndarray, most: int = 400) -> np.ndarray:
    """At most `most` 101x101 windows of a 2-D 8-bit section, from a grid that tiles it without
    overlap, evenly spaced over the grid; (0, 101, 101) for a section smaller than a tile."""
    rows, columns = section.shape[0] // TILE, section.shape[1] // TILE
    corners = [(r * TILE, c * TILE) for r in range(rows) for c in range(columns)]
    if len(corners) > most:
        picked = np.linspace(0, len(corners) - 1, most).round().astype(int)
        corners = [corners[i] for i in picked]
    if not corners:
        return np.empty((0, TILE, TILE), np.uint8)
    return np.stack([section[r : r + TILE, c : c + TILE] for r, c in corners])


def unlike(
    images: np.ndarray, reference: Mapping[str, list[float]], described: str = "training tiles"
) -> str | None:
    """None when the median of every statistic of `images` lies within the reference's 5th..95th
    percentiles; else what is out, how far, and against what, in one line."""
    found = summarise(images)
    if not found or not reference:
        return None
    out = []
    for name in STATISTICS:
        low, _, high = reference[name]
        median = found[name][1]
        if not low <= median <= high:
            out.append(
                f"{name} {median:.3g} (the {described}' 5th..95th percentiles: "
                f"{low:.3g}..{high:.3g})"
            )
    return "; ".join(out) or None
