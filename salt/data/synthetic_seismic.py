"""What the generated tiles and sections (`salt.data.synthetic`) and the generated 3-D cubes
(`salt.data.synthetic_cube`) share, so that both look alike: the Ricker wavelet and its random
frequency, the layers' reflectivity series down a trace, and the salt's amplitudes (a weak
chaotic interior, a bright boundary, additive noise)."""

from __future__ import annotations

import numpy as np

# the generators' styles: seismic, the default (the earth model, salt.data.earth_model: salt as
# the TGS tiles show it), and speckle (salt as bright speckle in smooth layers: the first
# generator, which nets trained on the real tiles do not recognise; kept for comparison, e.g. the
# before column of salt.bench.transfer)
STYLES = ("speckle", "seismic")
DEFAULT_STYLE = "seismic"
EMPTY_FRACTION = 0.39  # of the TGS training tiles with no salt, which both styles generate
BLANK_FRACTION = 0.015  # of the tiles of one gray level

WAVELET_FREQUENCY = (0.05, 0.12)  # cycles per sample, drawn per tile, section or cube
BOUNDARY_FRACTION = (0.08, 0.25)  # of the samples that are a layer boundary, drawn likewise
BOUNDARY_GAIN = (1.5, 3.0)  # the salt's boundary reflection, times a layer's unit std
INTERIOR_STD = 0.25  # salt's chaotic interior (white noise)
NOISE_STD = 0.08  # additive noise, before the amplitudes are scaled to unit std


def ricker(frequency: float, half_width: int = 12) -> np.ndarray:
    """The Ricker (Mexican hat) wavelet of `frequency` cycles per sample, 2 * half_width + 1
    samples long, float32."""
    t = np.arange(-half_width, half_width + 1, dtype=np.float32)
    a = (np.pi * frequency * t) ** 2
    return ((1 - 2 * a) * np.exp(-a)).astype(np.float32)


def random_wavelet(rng: np.random.Generator) -> np.ndarray:
    """A Ricker wavelet of a frequency drawn from WAVELET_FREQUENCY (one draw)."""
    return ricker(float(rng.uniform(*WAVELET_FREQUENCY)))


def reflectivity_series(rng: np.random.Generator, length: int) -> np.ndarray:
    """A float32 series of `length` samples: zero but at random layer boundaries (a fraction
    drawn from BOUNDARY_FRACTION of the samples), each a standard normal reflection."""
    series = np.zeros(length, dtype=np.float32)
    boundaries = rng.random(length) < rng.uniform(*BOUNDARY_FRACTION)
    series[boundaries] = rng.normal(0, 1, boundaries.sum())
    return series
