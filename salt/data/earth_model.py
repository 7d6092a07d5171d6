"""Generated seismic that looks like the TGS tiles: an earth model of layered sediments and salt,
imaged as a seismic section is.

The earth is a log-impedance field, samples running down the trace:

- sediments: a layered log-impedance series (layer thicknesses exponential, steps normal, a
  compaction trend down), dipped and folded, offset by normal faults, and dragged up against the
  salt's flanks (the displacement decays with the distance to the salt);
- salt: one value well above the sediments' (salt is fast and dense), with a faint chaotic
  interior and, now and then, a few thin internal stringers. The label is the salt's geometry.

It is imaged by its reflectivity (half the log-impedance step from one sample to the next, so the
top of salt is a strong reflection of one sign, its base of the other, and a steep flank barely
reflects: the layers just end against it), convolved with a Ricker wavelet down the trace,
smeared a little across traces (migration's lateral resolution), with band-limited noise,
an optional gain with depth, and a polarity. That is why salt comes out as the TGS tiles show it:
a smooth, dim, reflection-poor body under a bright top, the layers truncated at its flanks.

`Style` holds the knobs a survey's look depends on (wavelet frequency, noise, polarity, gain with
depth), each drawn at random when left None. The parameters' ranges were set once, offline, by
eye and against the TGS training tiles' statistics (`salt.bench.transfer` prints them for both):
vertical amplitude spectrum, the vertical gradient inside the salt against outside it (real
0.48x), gray-level mean and spread per tile (real: mean 123, per-tile std 17.7 to 39.2 gray
levels, p10 to p90), coverage of the tiles with salt. Nothing here reads a real tile at run time.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from salt.data.padding import TILE
from salt.data.synthetic_seismic import BLANK_FRACTION, EMPTY_FRACTION

FREQUENCY = (0.03, 0.12)  # the Ricker wavelet's peak, cycles per sample
NOISE = (0.04, 0.25)  # band-limited noise std, relative to the signal's
GAIN = 0.0  # amplitude times (1 + gain * depth / height); 0: none
LATERAL_SMEAR = (0.4, 1.2)  # Gaussian sigma across traces, samples
LAYER_STEP = (0.04, 0.09)  # std of the sediments' log-impedance steps
COMPACTION = (0.0, 0.4)  # log-impedance rise over the section's depth
SALT_CONTRAST = (2.5, 5.0)  # salt's log-impedance above the sediments' mean, in layer steps
SALT_CHAOS = 0.04  # the salt interior's white log-impedance noise, in layer steps
NOISE_SMEAR = (0.8, 2.0)  # the noise's Gaussian sigma across traces (migration), samples
STRINGER_CHANCE = 0.3
DRAG = (0.0, 0.12)  # upward drag at the salt flank, a fraction of the section's height
DRAG_LENGTH = (0.03, 0.12)  # its decay distance, a fraction of the section's width


@dataclass(frozen=True)
class Style:
    """A seismic survey's look. None: drawn at random per section, tile or cube.

    `frequency`: the Ricker wavelet's peak, cycles per sample (0.03 to 0.12 when drawn);
    `noise`: band-limited noise std relative to the signal's (0.04 to 0.25);
    `polarity`: +1, a rise of impedance downwards (the top of salt) is a peak (positive, bright),
    -1 a trough (dark); drawn +-1;
    `gain`: amplitudes times (1 + gain * depth / depth of the section), 0 when not given.
    """

    frequency: float | None = None
    noise: float | None = None
    polarity: int | None = None
    gain: float | None = None

    def drawn(self, rng: np.random.Generator) -> Style:
        """Every None replaced by a random draw (always the same draws, so a fixed knob does not
        change the others')."""
        frequency, noise = rng.uniform(*FREQUENCY), rng.uniform(*NOISE)
        polarity = 1 if rng.random() < 0.5 else -1
        return Style(
            self.frequency if self.frequency is not None else float(frequency),
            self.noise if self.noise is not None else float(noise),
            self.polarity if self.polarity is not None else polarity,
            self.gain if self.gain is not None else GAIN,
        )

    def check(self) -> Style:
        if self.frequency is not None and not 0.01 <= self.frequency <= 0.45:
            raise ValueError(
                f"frequency must be 0.01..0.45 cycles per sample, got {self.frequency}"
            )
        if self.noise is not None and not 0 <= self.noise <= 2:
            raise ValueError(f"noise must be 0..2 (relative to the signal), got {self.noise}")
        if self.polarity not in (None, 1, -1):
            raise ValueError(f"polarity must be 1 or -1, got {self.polarity}")
        if self.gain is not None and not -0.9 <= self.gain <= 10:
            raise ValueError(f"gain must be -0.9..10, got {self.gain}")
        return self


ANY_LOOK = Style()  # every knob drawn


def ricker(frequency: float) -> np.ndarray:
    """The Ricker wavelet of peak `frequency` cycles per sample, float32, +-1.5 periods long."""
    half_width = max(3, int(np.ceil(1.5 / frequency)))
    t = np.arange(-half_width, half_width + 1, dtype=np.float64)
    a = (np.pi * frequency * t) ** 2
    return ((1 - 2 * a) * np.exp(-a)).astype(np.float32)


def smooth_field(rng: np.random.Generator, shape: tuple[int, int], cells: float) -> np.ndarray:
    """Unit-std smooth noise over `shape` with about `cells` undulations along its longer side."""
    ratio = shape[0] / max(shape)
    coarse_shape = (max(2, int(round(cells * ratio)) + 1), max(2, int(round(cells / ratio)) + 1))
    coarse = rng.standard_normal(
        (coarse_shape[0], int(coarse_shape[1] * shape[1] / max(shape)) + 2)
    )
    field = cv2.resize(
        coarse.astype(np.float32), (shape[1], shape[0]), interpolation=cv2.INTER_CUBIC
    )
    return field / (field.std() + 1e-6)


# --- the earth model of a section: mask[z, x] and log-impedance[z, x] ------------------------


def sediment_series(
    rng: np.random.Generator, length: int, thickness: float
) -> tuple[np.ndarray, float]:
    """A layered log-impedance series (float32): layers of exponential thickness (mean
    `thickness` samples, at least 1), steps of a drawn std (returned too), a compaction
    trend down."""
    step = rng.uniform(*LAYER_STEP)
    count = int(length / max(thickness, 1.0) * 2) + 8
    widths = np.maximum(1.0, rng.exponential(thickness, count))
    edges = np.cumsum(widths)
    values = np.cumsum(rng.normal(0, step, count))
    values -= np.linspace(0, values[-1], count)  # layers, not a random walk's drift
    series = values[np.minimum(np.searchsorted(edges, np.arange(length)), count - 1)]
    trend = rng.uniform(*COMPACTION) * np.arange(length) / length
    return (series + trend).astype(np.float32), float(step)


def salt_geometry(rng: np.random.Generator, shape: tuple[int, int], bodies: int) -> np.ndarray:
    """`bodies` salt bodies on a (depth, width) section, uint8 0/1: diapirs and domes rising from
    below the section (a rounded top, flanks steepening down, a stem narrower than the cap or
    not, tilted), and sheets (a lens with a rounded top and a flatter base)."""
    height, width = shape
    z = np.arange(height, dtype=np.float32)[:, None]
    x = np.arange(width, dtype=np.float32)[None, :]
    inside = np.full(shape, np.inf, dtype=np.float32)  # a signed distance-like field: < 0 salt
    for _ in range(bodies):
        if rng.random() < 0.75:
            centre = rng.uniform(-0.05, 1.05) * width
            top = rng.uniform(0.1, 0.75) * height
            cap = rng.uniform(0.08, 0.3) * width  # half-width at the top
            stem = cap * rng.uniform(0.35, 1.1)
            cap_depth = rng.uniform(0.1, 0.5) * height
            tilt = rng.uniform(-0.5, 0.5)
            roundness = rng.uniform(0.5, 2.5)
            axis = centre + tilt * (z - top)
            half = stem + (cap - stem) * np.exp(-np.maximum(z - top, 0) / cap_depth)
            top_surface = top + roundness * cap * ((x - axis) / cap) ** 2 * 0.5
            field = np.maximum(top_surface - z, np.abs(x - axis) - half)
        else:
            middle = rng.uniform(0.1, 0.9) * width
            length = rng.uniform(0.25, 0.6) * width
            top = rng.uniform(0.15, 0.6) * height
            thick = rng.uniform(0.1, 0.3) * height
            along = (x - middle) / length
            lens = np.clip(1 - along**2, 0, None)
            top_surface = top + thick * 0.25 * (1 - lens)
            base = top + thick * np.sqrt(lens)
            field = np.maximum(np.maximum(top_surface - z, z - base), (np.abs(along) - 1) * length)
        inside = np.minimum(inside, field)
    rough = smooth_field(rng, shape, rng.uniform(4, 10)) * rng.uniform(1.0, 4.0)
    return (inside + rough < 0).astype(np.uint8)


def sediment_coordinates(
    rng: np.random.Generator, shape: tuple[int, int], mask: np.ndarray, margin: int
) -> np.ndarray:
    """Where each sample of the section reads the layer series (float32 (depth, width)): its
    depth, dipped, folded, offset across normal faults and dragged up near the salt."""
    height, width = shape
    z = np.arange(height, dtype=np.float32)[:, None]
    x = np.arange(width, dtype=np.float32)[None, :]
    source = z + margin + rng.uniform(-0.3, 0.3) * x
    for _ in range(int(rng.integers(1, 4))):
        period = rng.uniform(0.4, 2.5) * width
        amplitude = rng.uniform(0.0, 0.06) * height
        source = source + amplitude * np.sin(2 * np.pi * x / period + rng.uniform(0, 2 * np.pi))
    for _ in range(int(rng.choice([0, 0, 1, 1, 2]))):
        at = rng.uniform(0, width)
        slope = rng.uniform(0.2, 0.7) * (1 if rng.random() < 0.5 else -1)  # x per sample down
        throw = rng.uniform(0.01, 0.06) * height
        hanging = (x - at - slope * z) * np.sign(slope) > 0
        source = source - throw * hanging
    if mask.any():
        distance = cv2.distanceTransform((1 - mask).astype(np.uint8), cv2.DIST_L2, 5)
        drag = rng.uniform(*DRAG) * height
        source = source + drag * np.exp(-distance / (rng.uniform(*DRAG_LENGTH) * width))
    return source.astype(np.float32)


def log_impedance(rng: np.random.Generator, mask: np.ndarray, thickness: float) -> np.ndarray:
    """The section's log-impedance (float32 (depth, width)): layered sediments, salt where
    `mask` is 1."""
    height, width = mask.shape
    margin = height
    series, step = sediment_series(rng, 3 * height + 2 * margin, thickness)
    coordinates = sediment_coordinates(rng, mask.shape, mask, margin)
    coordinates = np.clip(coordinates, 0, len(series) - 2)
    sediments = cv2.remap(
        series[:, None],
        np.zeros_like(coordinates),
        coordinates,
        cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_REFLECT_101,
    )
    # lateral changes of the layers' strength
    sediments = sediments * (1 + 0.25 * smooth_field(rng, mask.shape, rng.uniform(2, 6)))
    salt = sediments.mean() + rng.uniform(*SALT_CONTRAST) * step
    interior = salt + rng.normal(0, SALT_CHAOS * step, mask.shape).astype(np.float32)
    if rng.random() < STRINGER_CHANCE:
        stringers = sediment_series(rng, height + 2 * margin, thickness * 4)[0]
        bent = coordinates - margin * 0.5
        interior += 0.3 * cv2.remap(
            stringers[:, None] - stringers.mean(),
            np.zeros_like(bent),
            np.clip(bent, 0, len(stringers) - 2),
            cv2.INTER_LINEAR,
        )
    return np.where(mask > 0, interior, sediments).astype(np.float32)


# --- imaging: log-impedance (traces down axis 0) to amplitudes --------------------------------


def image(
    rng: np.random.Generator,
    impedance: np.ndarray,
    style: Style,
    smear: float | None = None,
    normalise: bool = True,
    noise: np.ndarray | None = None,
    noise_smear: float | None = None,
) -> np.ndarray:
    """Seismic amplitudes (float32, the section's shape; zero mean and unit std if `normalise`)
    of a log-impedance section whose axis 0 runs down the traces, in `style` (drawn already).
    `noise`: the white noise to image (standard normal, the section's shape), drawn when None;
    `smear` and `noise_smear`: the signal's and the noise's Gaussian sigma across traces."""
    assert style.frequency is not None and style.noise is not None
    reflectivity = np.zeros_like(impedance)
    reflectivity[:-1] = 0.5 * np.diff(impedance, axis=0)
    reflectivity *= steepness_weight(impedance)
    wavelet = ricker(style.frequency) * (style.polarity or 1)
    border = cv2.BORDER_REFLECT_101
    signal = cv2.filter2D(reflectivity, -1, wavelet[:, None], borderType=border)
    sigma = rng.uniform(*LATERAL_SMEAR) if smear is None else smear
    signal = cv2.GaussianBlur(signal, (0, 0), sigmaX=sigma, sigmaY=0.01)
    if noise is None:
        noise = rng.standard_normal(impedance.shape).astype(np.float32)
    noise = cv2.GaussianBlur(
        cv2.filter2D(noise.astype(np.float32), -1, wavelet[:, None], borderType=border),
        (0, 0),
        sigmaX=rng.uniform(*NOISE_SMEAR) if noise_smear is None else noise_smear,
        sigmaY=0.01,
    )
    signal_std = float(signal.std()) + 1e-12
    amplitude = signal + noise * (style.noise * signal_std / (float(noise.std()) + 1e-12))
    if style.gain:
        depth = np.arange(impedance.shape[0], dtype=np.float32)[:, None] / impedance.shape[0]
        amplitude = amplitude * (1 + style.gain * depth)
    if not normalise:
        return amplitude.astype(np.float32)
    amplitude -= amplitude.mean()
    return (amplitude / (amplitude.std() + 1e-12)).astype(np.float32)


def steepness_weight(impedance: np.ndarray, power: float = 2.0) -> np.ndarray:
    """cos(dip) ** power of the impedance's contours (axis 0 down the traces), float32: a
    boundary imaged from above reflects less the steeper it is, and a near-vertical salt flank
    hardly at all (without it, every trace that crosses a flank would see the full step)."""
    smooth = cv2.GaussianBlur(impedance, (0, 0), 1.5)
    down = cv2.Sobel(smooth, cv2.CV_32F, 0, 1, ksize=3)
    across = cv2.Sobel(smooth, cv2.CV_32F, 1, 0, ksize=3)
    floor = 1e-6 * float(np.abs(down).max() + 1e-12) ** 2
    return ((down * down + floor) / (down * down + across * across + floor)) ** (power / 2)


@dataclass(frozen=True)
class Section:
    """One generated section: amplitudes (float32 (depth, width), zero mean, unit std), its salt
    (uint8 0/1) and the style it was imaged in."""

    amplitude: np.ndarray
    mask: np.ndarray
    style: Style


def make_earth_section(
    shape: tuple[int, int],
    rng: np.random.Generator,
    style: Style = ANY_LOOK,
    bodies: int | None = None,
) -> Section:
    """A generated section of `shape` (depth, width) with `bodies` salt bodies (1 to 3 when
    None; 0: none)."""
    drawn = style.check().drawn(rng)
    assert drawn.frequency is not None
    count = int(rng.integers(1, 4)) if bodies is None else bodies
    mask = salt_geometry(rng, shape, count) if count else np.zeros(shape, np.uint8)
    thickness = rng.uniform(0.12, 0.45) / drawn.frequency
    impedance = log_impedance(rng, mask, thickness)
    return Section(image(rng, impedance, drawn), mask, drawn)


# --- tiles and sections as the TGS data holds them: 8-bit gray ---------------------------------

COVERAGE_POWER = 1.3  # a salted tile's coverage is U(0, 1) ** this (TGS: median 0.37)
CONTRAST = (20.0, 40.0)  # gray levels per amplitude std, drawn per section
BRIGHTNESS = (-5.0, 20.0)  # mean and std of a tile's gray offset from 128
BACKGROUND = (0.0, 20.0)  # gray levels of a slow background swell, drawn per section
TILES_PER_SECTION = 8
WINDOW_TRIES = 60


def to_gray(amplitude: np.ndarray, contrast: float, offset: float) -> np.ndarray:
    return np.clip(np.round(128 + offset + contrast * amplitude), 0, 255).astype(np.uint8)


def coverage_target(rng: np.random.Generator) -> float:
    """A tile's salt coverage: 0 for EMPTY_FRACTION of the tiles, else U(0, 1) ** power."""
    if rng.random() < EMPTY_FRACTION:
        return 0.0
    return float(max(0.003, rng.random() ** COVERAGE_POWER))


def window_coverage(mask: np.ndarray, size: int) -> np.ndarray:
    """Salt coverage of every size x size window of `mask`, by its top-left corner."""
    total = cv2.integral(mask.astype(np.uint8))
    sums = total[size:, size:] - total[:-size, size:] - total[size:, :-size] + total[:-size, :-size]
    return sums / float(size * size)


def earth_tiles(rng: np.random.Generator, count: int, style: Style = ANY_LOOK):
    """`count` (image uint8 (101, 101), mask uint8 0/1) tiles cut from generated sections, with
    TGS's share of empty and blank tiles and its spread of coverage, gray levels and scales."""
    tiles: list[tuple[np.ndarray, np.ndarray]] = []
    size = TILE
    while len(tiles) < count:
        shape = (int(size * rng.uniform(2.0, 3.5)), int(size * rng.uniform(3.0, 6.0)))
        section = make_earth_section(shape, rng, style)
        contrast = rng.uniform(*CONTRAST)
        background = smooth_field(rng, shape, rng.uniform(3, 8)) * rng.uniform(*BACKGROUND)
        gray = section.amplitude * contrast + background
        coverage = window_coverage(section.mask, size)
        for _ in range(min(TILES_PER_SECTION, count - len(tiles))):
            if rng.random() < BLANK_FRACTION:
                blank = np.full((size, size), int(rng.integers(0, 256)), np.uint8)
                tiles.append((blank, np.zeros((size, size), np.uint8)))
                continue
            target = coverage_target(rng)
            rows = rng.integers(0, coverage.shape[0], WINDOW_TRIES)
            columns = rng.integers(0, coverage.shape[1], WINDOW_TRIES)
            miss = np.abs(coverage[rows, columns] - target) + (coverage[rows, columns] > 0) * (
                target == 0
            )
            best = int(np.argmin(miss))
            if miss[best] > 0.15:
                continue  # this section has no such window: another section will
            top, left = int(rows[best]), int(columns[best])
            window = (slice(top, top + size), slice(left, left + size))
            offset = rng.normal(*BRIGHTNESS)
            image = np.clip(np.round(128 + offset + gray[window]), 0, 255).astype(np.uint8)
            tiles.append((image, section.mask[window].copy()))
    return tiles
