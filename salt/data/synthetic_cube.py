"""Generated 3-D seismic cubes with salt bodies, and a streamed SEG-Y writer for them.

A cube is indexed `[inline, crossline, sample]`, samples running down the trace (time). It is the
2-D generator of `salt.data.synthetic` grown by one dimension, with the same look and quirks, so
that every inline and every crossline section looks like `make_section(..., amplitudes=True)`:

- layers: one random reflectivity series down the trace, shifted by a smooth surface of the two
  horizontal coordinates (a dip along each axis and a few folds in random directions), so the
  reflectors are parallel and undulate gently in 3-D;
- salt: a few bodies (domes: one to three overlapping ellipsoids; diapirs: a stem rising from
  below the cube, tilted, with a wider cap), each a sum of Gaussian kernels modulated by smooth
  3-D noise and thresholded, the threshold chosen on a coarse grid so that salt fills 12-25% of
  the cube. Bodies may touch the cube's sides; diapirs always touch its bottom;
- amplitudes, in the `seismic` style (the default): the earth model's imaging
  (`salt.data.earth_model`) of each inline: the layers' log-impedance dragged up near the salt,
  salt one fast unit with a faint chaotic interior, its reflectivity convolved with a Ricker
  wavelet along time, smeared across traces, with noise smoothed across inlines and crosslines
  alike; in the `speckle` style (the first generator, kept for comparison), as
  `seismic_amplitude` does for a section: a weak chaotic interior (white noise, std 0.25) in the
  salt, a bright boundary (the 3-D morphological gradient of the mask, 3x3x3, times 1.5-3), the
  layers outside, convolved with one Ricker wavelet along time, plus noise (std 0.08). Either
  way divided by one standard deviation for the whole cube (estimated on up to 8 inlines), so
  amplitudes are zero-mean float32 with about unit std.

Everything is a function of the seed and the cube's shape. The cube is produced one inline at a
time (`cube_inlines`), each inline needing only its two neighbours' masks, so a cube larger than
memory streams to SEG-Y (`write_segy_cube`) with a few inlines in memory; `make_cube` stacks the
same inlines. `python -m salt.data.synthetic OUT_DIR --cube IxXxT` writes one (`write_cube`).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from salt.core.files import atomic_path
from salt.data import earth_model
from salt.data.earth_model import ANY_LOOK, Style
from salt.data.synthetic_seismic import (
    BOUNDARY_GAIN,
    DEFAULT_STYLE,
    INTERIOR_STD,
    NOISE_STD,
    STYLES,
    random_wavelet,
    reflectivity_series,
)

Shape3 = tuple[int, int, int]

COVERAGE_RANGE = (0.12, 0.25)  # fraction of the cube that is salt, drawn per cube
COARSE_POINTS = 40  # per axis, for the coverage threshold
STD_INLINES = 8  # inlines the amplitude std is estimated on
NOISE_COMPONENTS = 6  # plane waves in the smooth 3-D noise that roughens the bodies
NOISE_STRENGTH = 0.3
BODY_SPACING = 0.5  # body units between bodies' centres, where it can be had
FIRST_INLINE = 100  # line numbers of generated cubes (not 0 or 1: numbers are not indices)
FIRST_CROSSLINE = 300
SURVEY_ORIGIN_M = (500_000.0, 6_500_000.0)  # easting, northing of the first trace
COORDINATE_SCALAR = -100  # SEG-Y: coordinates stored in centimetres
INT16_SCALE = 2000.0  # format 3: stored value = round(amplitude * scale), +-16 std before clipping
SORTINGS = {"crossline": 1, "inline": 2}  # segyio.TraceSortingFormat
FORMATS = (3, 5)
SEISMIC_TRACE, DEAD_TRACE = 1, 2  # SEG-Y trace identification codes


def body_scale(shape: Shape3) -> float:
    """The length, in samples, of one body unit: the geometric mean of the cube's sides, so that
    bodies are round in samples (as the 2-D generator's are in pixels) and the cube's volume is
    one cubic unit whatever its proportions."""
    return float(np.prod(shape, dtype=np.float64) ** (1 / 3))


def body_positions(count: int, scale: float) -> np.ndarray:
    """Sample centres along an axis of `count` samples, in body units (0..count / scale)."""
    return (np.arange(count) + 0.5) / scale


@dataclass(frozen=True)
class Kernels:
    """Gaussian kernels in body units (u_inline, u_crossline, u_time; see `body_scale`).

    Kernel k is `weight[k] * exp(-Q_k(du_inline, du_crossline) - (du_time / time_radius[k])^2)`,
    Q_k a positive quadratic form (an ellipse rotated in the horizontal plane): `quadratic`
    holds its (A, B, C) in `A di^2 + 2 B di dx + C dx^2`. Because time is not rotated, one inline
    of a kernel is the outer product of a crossline and a time profile.
    """

    centre: np.ndarray  # (K, 3)
    quadratic: np.ndarray  # (K, 3)
    time_radius: np.ndarray  # (K,)
    weight: np.ndarray  # (K,)

    def inline(self, u_inline: float, u_cross: np.ndarray, u_time: np.ndarray) -> np.ndarray:
        """The kernels' sum on one inline: (len(u_cross), len(u_time)) float64."""
        total = np.zeros((len(u_cross), len(u_time)))
        for centre, (a, b, c), time_radius, weight in zip(
            self.centre, self.quadratic, self.time_radius, self.weight
        ):
            di, dx = u_inline - centre[0], u_cross - centre[1]
            across = weight * np.exp(-(a * di * di + 2 * b * di * dx + c * dx * dx))
            down = np.exp(-(((u_time - centre[2]) / time_radius) ** 2))
            rows, columns = _support(across), _support(down)
            if rows.start < rows.stop and columns.start < columns.stop:
                total[rows, columns] += np.outer(across[rows], down[columns])
        return total


def _support(profile: np.ndarray, floor: float = 1e-4) -> slice:
    """The index range where a unimodal profile exceeds `floor` (empty if nowhere)."""
    where = np.flatnonzero(profile > floor)
    return slice(int(where[0]), int(where[-1]) + 1) if where.size else slice(0, 0)


@dataclass(frozen=True)
class SmoothNoise:
    """Sum of plane waves cos(2 pi k.u + phase), scaled to unit variance; |value| <= bound."""

    wavenumbers: np.ndarray  # (N, 3) cycles per unit length
    phases: np.ndarray  # (N,)

    @property
    def bound(self) -> float:
        return math.sqrt(2 * len(self.phases))

    def inline(self, u_inline: float, u_cross: np.ndarray, u_time: np.ndarray) -> np.ndarray:
        # cos(a + b) = cos a cos b - sin a sin b: two outer products per wave
        total = np.zeros((len(u_cross), len(u_time)))
        for k, phase in zip(self.wavenumbers, self.phases):
            across = 2 * np.pi * (k[0] * u_inline + k[1] * u_cross) + phase
            down = 2 * np.pi * k[2] * u_time
            total += np.outer(np.cos(across), np.cos(down)) - np.outer(np.sin(across), np.sin(down))
        return total * math.sqrt(2 / len(self.phases))


@dataclass(frozen=True)
class SaltBodies:
    """Salt where kernels(u) * (1 + NOISE_STRENGTH * noise(u)) > threshold."""

    kernels: Kernels
    noise: SmoothNoise
    threshold: float = 0.5

    def field(self, u_inline: float, u_cross: np.ndarray, u_time: np.ndarray) -> np.ndarray:
        field = self.kernels.inline(u_inline, u_cross, u_time)
        # the noise can raise a kernel by at most this factor: skip it where salt is impossible
        reach = np.argwhere(field * (1 + NOISE_STRENGTH * self.noise.bound) > self.threshold)
        if reach.size:
            (r0, c0), (r1, c1) = reach.min(axis=0), reach.max(axis=0) + 1
            noise = self.noise.inline(u_inline, u_cross[r0:r1], u_time[c0:c1])
            field[r0:r1, c0:c1] *= 1 + NOISE_STRENGTH * noise
        return field

    def mask(self, u_inline: float, u_cross: np.ndarray, u_time: np.ndarray) -> np.ndarray:
        return (self.field(u_inline, u_cross, u_time) > self.threshold).astype(np.uint8)


def _horizontal_quadratic(radius_a: float, radius_b: float, angle: float) -> list[float]:
    cos, sin = math.cos(angle), math.sin(angle)
    a = cos * cos / radius_a**2 + sin * sin / radius_b**2
    b = cos * sin * (1 / radius_a**2 - 1 / radius_b**2)
    c = sin * sin / radius_a**2 + cos * cos / radius_b**2
    return [a, b, c]


def _horizontal_centre(
    rng: np.random.Generator, extent: np.ndarray, at_edge: bool, others: list[list[float]]
) -> list[float]:
    """A body's horizontal centre, at least BODY_SPACING from the `others` where 30 tries find
    one (so that most bodies stay apart), on the survey's side if `at_edge`."""
    best: list[float] = []
    for _ in range(30):
        centre = list(rng.uniform(0.05, 0.95, 2))
        if at_edge:  # a body cut by the survey's side
            axis = int(rng.integers(0, 2))
            side = rng.uniform(-0.05, 0.08) if rng.random() < 0.5 else rng.uniform(0.92, 1.05)
            centre[axis] = side
        best = [centre[0] * extent[0], centre[1] * extent[1]]
        if all(math.dist(best, other) >= BODY_SPACING for other in others):
            break
    others.append(best)
    return best


def _dome(rng: np.random.Generator, extent: np.ndarray, centre: list[float]) -> list[tuple]:
    """One to three overlapping ellipsoids: (centre, quadratic, time radius, weight) each."""
    ci, cx = centre
    ct = rng.uniform(0.35, 0.75) * extent[2]
    kernels = []
    for lobe in range(int(rng.integers(1, 4))):
        scale = 1.0 if lobe == 0 else rng.uniform(0.5, 0.8)
        offset = np.zeros(3) if lobe == 0 else rng.normal(0, 0.1, 3) * [1, 1, 0.6]
        radii = rng.uniform(0.2, 0.38, 2) * scale
        kernels.append(
            (
                [ci + offset[0], cx + offset[1], ct + offset[2]],
                _horizontal_quadratic(radii[0], radii[1], rng.uniform(0, np.pi)),
                rng.uniform(0.18, 0.32) * scale,
                1.0,
            )
        )
    return kernels


def _diapir(rng: np.random.Generator, extent: np.ndarray, centre: list[float]) -> list[tuple]:
    """A stem rising from below the cube to a top, bent and tilted, with a wider cap."""
    ci, cx = centre
    bottom = extent[2]
    top = rng.uniform(0.2, 0.55) * bottom
    stem = rng.uniform(0.1, 0.17)
    lean = rng.normal(0, 0.08, 2)
    angle = rng.uniform(0, np.pi)
    squash = rng.uniform(0.7, 1.0)
    spacing = 0.5 * stem
    # overlapping kernels along a line sum to about sqrt(pi) * radius / spacing: divide it out
    chain_weight = spacing / (math.sqrt(math.pi) * stem)
    kernels = []
    for ct in np.arange(bottom + 2 * stem, top, -spacing):
        height = (bottom - ct) / (bottom - top)  # 0 at the bottom, 1 at the top
        kernels.append(
            (
                [ci + lean[0] * height**2, cx + lean[1] * height**2, ct],
                _horizontal_quadratic(stem, stem * squash, angle),
                stem,
                chain_weight,
            )
        )
    cap = stem * rng.uniform(1.5, 2.3)
    kernels.append(
        (
            [ci + lean[0], cx + lean[1], top + 0.02],
            _horizontal_quadratic(cap, cap * squash, angle),
            rng.uniform(0.06, 0.1),
            1.0,
        )
    )
    return kernels


def random_bodies(rng: np.random.Generator, extent: np.ndarray) -> SaltBodies:
    """Two to five domes and diapirs in a cube of `extent` (its sides in body units), with the
    smooth noise that roughens them (threshold 0.5)."""
    count = int(rng.integers(2, 6))
    edge_body = int(rng.integers(0, count)) if rng.random() < 0.7 else -1
    kernels: list[tuple] = []
    centres: list[list[float]] = []
    for body in range(count):
        shape = _dome if rng.random() < 0.5 else _diapir
        kernels += shape(rng, extent, _horizontal_centre(rng, extent, body == edge_body, centres))
    centre, quadratic, time_radius, weight = (np.array(column) for column in zip(*kernels))
    directions = rng.normal(size=(NOISE_COMPONENTS, 3))
    directions /= np.linalg.norm(directions, axis=1, keepdims=True)
    wavenumbers = directions * rng.uniform(1.0, 3.0, (NOISE_COMPONENTS, 1))
    noise = SmoothNoise(wavenumbers, rng.uniform(0, 2 * np.pi, NOISE_COMPONENTS))
    return SaltBodies(Kernels(centre, quadratic, time_radius, weight), noise)


def calibrated(bodies: SaltBodies, shape: Shape3, coverage: float) -> SaltBodies:
    """`bodies` with the threshold that makes `coverage` of the cube salt, measured on a grid of
    at most COARSE_POINTS samples per axis (clamped to 0.08..0.85 to keep the shapes)."""
    scale = body_scale(shape)
    axes = [
        body_positions(n, scale)[np.linspace(0, n - 1, min(n, COARSE_POINTS)).astype(int)]
        for n in shape
    ]
    values = np.stack([bodies.field(float(u), axes[1], axes[2]) for u in axes[0]])
    threshold = float(np.clip(np.quantile(values, 1 - coverage), 0.08, 0.85))
    return SaltBodies(bodies.kernels, bodies.noise, threshold)


@dataclass(frozen=True)
class Layers:
    """Reflectivity of parallel layers: `series` read at t + margin + shift(inline, crossline)."""

    series: np.ndarray  # (T + 2 margin,) float32
    margin: int
    dips: tuple[float, float]  # samples per inline, per crossline
    folds: np.ndarray  # (F, 4): amplitude (samples), direction angle, period (traces), phase

    def shift(self, inline: int, crosslines: int) -> np.ndarray:
        x = np.arange(crosslines, dtype=np.float64)
        shift = self.dips[0] * inline + self.dips[1] * x
        for amplitude, angle, period, phase in self.folds:
            along = inline * math.cos(angle) + x * math.sin(angle)
            shift += amplitude * np.sin(2 * np.pi * along / period + phase)
        return shift

    def inline(
        self, inline: int, crosslines: int, samples: int, lift: np.ndarray | None = None
    ) -> np.ndarray:
        """(crosslines, samples) float32, linearly interpolated as cv2.remap does in 2-D; `lift`
        (crosslines, samples) raises the layers there by that many samples (drag)."""
        position = self.margin + self.shift(inline, crosslines)[:, None] + np.arange(samples)
        if lift is not None:
            position = position + lift
        position = np.clip(position, 0, len(self.series) - 1.001)
        index = position.astype(np.int64)
        fraction = (position - index).astype(np.float32)
        below, above = self.series[index], self.series[index + 1]
        return below + fraction * (above - below)


def random_layers(
    rng: np.random.Generator, shape: Shape3, series: np.ndarray | None = None
) -> Layers:
    """Layer boundaries as in `salt.data.synthetic.layered_reflectivity`, dipping and folded
    gently in both horizontal directions."""
    inlines, crosslines, samples = shape
    dips = (float(rng.uniform(-0.25, 0.25)), float(rng.uniform(-0.25, 0.25)))
    folds = np.array(
        [
            [
                rng.uniform(0.01, 0.08) * samples,
                rng.uniform(0, np.pi),
                rng.uniform(0.5, 3) * max(inlines, crosslines),
                rng.uniform(0, 2 * np.pi),
            ]
            for _ in range(int(rng.integers(1, 4)))
        ]
    )
    reach = abs(dips[0]) * inlines + abs(dips[1]) * crosslines + folds[:, 0].sum()
    margin = int(math.ceil(reach)) + 2 + (samples if series is not None else 0)
    if series is None:
        series = reflectivity_series(rng, samples + 2 * margin)
    return Layers(series, margin, dips, folds)


@dataclass(frozen=True)
class CubeModel:
    """Everything random about one cube; `inline(i)` computes inline i from it alone."""

    shape: Shape3
    seed: int
    layers: Layers
    bodies: SaltBodies
    wavelet: np.ndarray
    boundary_gain: float
    amplitude_std: float = 1.0
    style: str = DEFAULT_STYLE  # seismic uses the fields below; cube_model sets either style
    look: Style = ANY_LOOK  # drawn: every knob set
    impedance: tuple[float, float, float, float] = (0.0, 0.0, 0.0, 0.0)
    """the seismic style's salt log-impedance, layer step, drag (samples), drag length (traces)"""
    smear: float = 0.8
    noise_smear: float = 1.5

    def mask(self, inline: int) -> np.ndarray:
        """Inline `inline`'s salt: (crosslines, samples) uint8 0/1."""
        _, crosslines, samples = self.shape
        scale = body_scale(self.shape)
        u_inline = (inline + 0.5) / scale
        return self.bodies.mask(
            u_inline, body_positions(crosslines, scale), body_positions(samples, scale)
        )

    def amplitude(self, inline: int, masks: Sequence[np.ndarray | None]) -> np.ndarray:
        """Inline `inline`'s amplitudes (crosslines, samples) float32 from the masks of the
        inlines around it (`masks[1]` its own, `masks[0]`/`masks[2]` its neighbours' where they
        exist), as `salt.data.synthetic.seismic_amplitude` makes a section's."""
        mask = masks[1]
        assert mask is not None, "an inline needs its own mask"
        rng = np.random.default_rng([self.seed, inline])
        if self.style == "seismic":
            return self._seismic_amplitude(inline, mask, rng)
        salt = mask.astype(np.float32)
        interior = rng.standard_normal(mask.shape, dtype=np.float32) * INTERIOR_STD
        reflectivity = self.layers.inline(inline, *mask.shape)
        field = reflectivity * (1 - salt) + interior * salt
        field += boundary_3d(masks).astype(np.float32) * self.boundary_gain
        # correlation with the symmetric wavelet along time (axis 1) is its convolution
        amplitude = np.asarray(
            cv2.filter2D(field, -1, self.wavelet[None, :], borderType=cv2.BORDER_REFLECT_101),
            dtype=np.float32,
        )
        amplitude += rng.standard_normal(mask.shape, dtype=np.float32) * NOISE_STD
        amplitude /= self.amplitude_std
        return amplitude

    def _seismic_amplitude(
        self, inline: int, mask: np.ndarray, rng: np.random.Generator
    ) -> np.ndarray:
        """The earth model's imaging (`salt.data.earth_model`) of one inline: the layers read
        where they were dragged up near the salt of this inline, salt one fast unit."""
        salt_value, step, drag, drag_length = self.impedance
        crosslines, samples = mask.shape
        lift = None
        if mask.any() and drag:
            distance = cv2.distanceTransform((1 - mask).astype(np.uint8), cv2.DIST_L2, 5)
            lift = drag * np.exp(-distance / drag_length)
        sediments = self.layers.inline(inline, crosslines, samples, lift)
        interior = salt_value + rng.normal(0, earth_model.SALT_CHAOS * step, mask.shape)
        impedance = np.where(mask > 0, interior.astype(np.float32), sediments)
        amplitude = earth_model.image(
            rng,
            np.ascontiguousarray(impedance.T),
            self.look,
            self.smear,
            normalise=False,
            noise=np.ascontiguousarray(self._noise(inline, mask.shape).T),
            noise_smear=self.noise_smear,
        ).T
        return np.ascontiguousarray(amplitude / self.amplitude_std, dtype=np.float32)

    def _noise(self, inline: int, shape: tuple[int, int]) -> np.ndarray:
        """Inline `inline`'s white noise, smoothed across inlines as `image` smooths it across
        crosslines (a Gaussian of `noise_smear` inlines over the inlines' own draws), so the
        noise looks the same along both axes and each inline is still computed alone."""
        reach = int(math.ceil(2 * self.noise_smear))
        weights = np.exp(-0.5 * (np.arange(-reach, reach + 1) / self.noise_smear) ** 2)
        weights /= math.sqrt((weights**2).sum())
        total = np.zeros(shape, np.float32)
        for offset, weight in zip(range(-reach, reach + 1), weights, strict=True):
            draws = np.random.default_rng([self.seed, inline + offset + reach, 1])
            total += weight * draws.standard_normal(shape, dtype=np.float32)
        return total


def boundary_3d(masks: Sequence[np.ndarray | None]) -> np.ndarray:
    """The 3x3x3 morphological gradient (dilation - erosion) of the middle mask of `masks`
    (a window of 2 or 3 consecutive inlines; at the cube's first and last inline one
    neighbour), uint8 0/1. Beyond the cube's sides nothing counts, as cv2 does in 2-D."""
    square = np.ones((3, 3), np.uint8)
    window = [m for m in masks if m is not None]
    dilated = np.maximum.reduce([cv2.dilate(m, square) for m in window])
    eroded = np.minimum.reduce([cv2.erode(m, square) for m in window])
    return dilated - eroded


def cube_model(
    shape: Shape3, seed: int = 0, style: str = DEFAULT_STYLE, look: Style = ANY_LOOK
) -> CubeModel:
    """The random parameters of the cube (`shape`, `seed`), its amplitude std estimated.
    `style` seismic: the earth model's imaging, `look` fixing its knobs (drawn per cube when
    not given), the default; speckle: the first generator, kept for comparison."""
    shape = _checked_shape(shape)
    if seed < 0:
        raise ValueError(f"seed must be non-negative, got {seed}")
    if style not in STYLES:
        raise ValueError(f"style must be one of {', '.join(STYLES)}, got {style!r}")
    rng = np.random.default_rng(seed)
    if style == "speckle":
        layers = random_layers(rng, shape)
    else:
        look = look.check().drawn(rng)
        assert look.frequency is not None
        thickness = rng.uniform(0.12, 0.45) / look.frequency
        series, step = earth_model.sediment_series(rng, 6 * shape[2] + 64, thickness)
        layers = random_layers(rng, shape, series)
    coverage = float(rng.uniform(*COVERAGE_RANGE))
    extent = np.asarray(shape, dtype=np.float64) / body_scale(shape)
    bodies = calibrated(random_bodies(rng, extent), shape, coverage)
    wavelet = random_wavelet(rng)
    model = CubeModel(
        shape, seed, layers, bodies, wavelet, float(rng.uniform(*BOUNDARY_GAIN)), style=style
    )
    if style == "seismic":
        impedance = (
            float(series.mean() + rng.uniform(*earth_model.SALT_CONTRAST) * step),
            step,
            float(rng.uniform(*earth_model.DRAG) * shape[2]),
            float(rng.uniform(*earth_model.DRAG_LENGTH) * shape[1]),
        )
        model = replace(
            model,
            look=look,
            impedance=impedance,
            smear=float(rng.uniform(*earth_model.LATERAL_SMEAR)),
            noise_smear=float(rng.uniform(*earth_model.NOISE_SMEAR)),
        )
    return _with_amplitude_std(model)


def _with_amplitude_std(model: CubeModel) -> CubeModel:
    inlines = model.shape[0]
    total = squares = count = 0.0
    for inline in np.unique(np.linspace(0, inlines - 1, min(inlines, STD_INLINES)).astype(int)):
        window = [
            model.mask(int(i)) if 0 <= i < inlines else None
            for i in (inline - 1, inline, inline + 1)
        ]
        amplitude = model.amplitude(int(inline), window).astype(np.float64)
        total, squares, count = (
            total + amplitude.sum(),
            squares + (amplitude**2).sum(),
            count + amplitude.size,
        )
    std = math.sqrt(max(squares / count - (total / count) ** 2, 0.0))
    return replace(model, amplitude_std=std + 1e-6)


def _checked_shape(shape: Sequence[int]) -> Shape3:
    if len(shape) != 3 or any(int(n) < 1 for n in shape):
        raise ValueError(f"expected a positive (inlines, crosslines, samples) shape, got {shape}")
    inlines, crosslines, samples = (int(n) for n in shape)
    return inlines, crosslines, samples


def cube_inlines(
    shape: Shape3,
    seed: int = 0,
    model: CubeModel | None = None,
    style: str = DEFAULT_STYLE,
    look: Style = ANY_LOOK,
) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
    """The cube (`shape` = (inlines, crosslines, samples), `seed`) one inline at a time:
    (inline index, amplitude (crosslines, samples) float32, mask (crosslines, samples) uint8
    0/1), in inline order. Holds three inlines' masks at a time; the values are those of
    `make_cube(shape, seed)`. `model` (from `cube_model(shape, seed)`) saves estimating it again.
    """
    model = model or cube_model(shape, seed, style, look)
    inlines = model.shape[0]
    window: list[np.ndarray | None] = [None, model.mask(0), model.mask(1) if inlines > 1 else None]
    for inline in range(inlines):
        mask = window[1]
        assert mask is not None
        yield inline, model.amplitude(inline, window), mask
        following = model.mask(inline + 2) if inline + 2 < inlines else None
        window = [window[1], window[2], following]


def make_cube(
    shape: Shape3, seed: int = 0, style: str = DEFAULT_STYLE, look: Style = ANY_LOOK
) -> tuple[np.ndarray, np.ndarray]:
    """A whole cube: (amplitude float32 (I, X, T), zero mean and about unit std; salt mask uint8
    0/1 (I, X, T)), samples along axis 2 running down in time. The same `shape` and `seed` give
    the same values; `cube_inlines` streams them."""
    amplitude = np.empty(_checked_shape(shape), np.float32)
    mask = np.empty(amplitude.shape, np.uint8)
    for inline, inline_amplitude, inline_mask in cube_inlines(shape, seed, None, style, look):
        amplitude[inline], mask[inline] = inline_amplitude, inline_mask
    return amplitude, mask


def corner_missing(shape: tuple[int, int], fraction: float) -> np.ndarray:
    """An irregular survey outline: a boolean (inlines, crosslines) grid, True for the traces
    left out, a triangle cut off the last inlines' last crosslines holding about `fraction` of
    the traces (none for 0)."""
    inlines, crosslines = shape
    i = (np.arange(inlines)[:, None] + 0.5) / inlines
    x = (np.arange(crosslines)[None, :] + 0.5) / crosslines
    # the triangle i + x > 2 - s covers s^2 / 2 of the unit square
    return (i + x) > 2 - math.sqrt(2 * min(max(fraction, 0.0), 0.5))


def random_dead(shape: tuple[int, int], fraction: float, seed: int = 0) -> np.ndarray:
    """Dead traces scattered over the survey: a boolean (inlines, crosslines) grid with about
    `fraction` of it True."""
    return np.random.default_rng([seed, 1_000_003]).random(shape) < fraction


def write_segy_cube(
    path,
    inlines: Iterable[np.ndarray],
    *,
    inline_numbers: Sequence[int] | np.ndarray,
    crossline_numbers: Sequence[int] | np.ndarray,
    sample_interval_ms: float = 4.0,
    delay_ms: int = 0,
    sorting: str = "inline",
    endian: str = "big",
    format: int = 5,
    int16_scale: float = INT16_SCALE,
    bin_size_m: float = 25.0,
    origin_m: tuple[float, float] = SURVEY_ORIGIN_M,
    missing: np.ndarray | None = None,
    dead: np.ndarray | None = None,
    description: str = "synthetic salt cube",
) -> Path:
    """Write a 3-D post-stack SEG-Y file at `path`, atomically, one inline at a time.

    `inlines` yields one (crosslines, samples) array per inline, in the order of
    `inline_numbers` (a (I, X, T) array does). Traces are laid out inline by inline
    (`sorting="inline"`: crosslines vary fastest) or crossline by crossline; `endian` is the
    byte order; `format` 5 stores IEEE float32, 3 stores int16 `round(amplitude * int16_scale)`
    clipped to +-32767. `missing` (bool (I, X)) traces are left out of the file (irregular
    geometry: segyio opens it only with `ignore_geometry=True`); `dead` (bool (I, X)) traces
    are written as zeros with trace identification code 2. Headers written:

    - textual: `description`, the byte positions below, format, sorting, interval;
    - binary: sample interval (us), samples per trace, format, metres, sorting code 4;
    - each trace: INLINE_3D (189), CROSSLINE_3D (193), CDP_X (181) and CDP_Y (185) with the
      coordinate scalar SourceGroupScalar (71) = -100 (centimetres), TRACE_SAMPLE_COUNT (115),
      TRACE_SAMPLE_INTERVAL (117, us), DelayRecordingTime (109, ms), CDP (21, the ensemble
      number, 1-based), TRACE_SEQUENCE_LINE/FILE (1, 5), TraceIdentificationCode (29).

    Trace (i, x) sits at easting `origin_m[0] + x * bin_size_m`, northing
    `origin_m[1] + i * bin_size_m` (crosslines along east, inlines along north), so neighbouring
    inlines and crosslines are `bin_size_m` apart. Returns `path`.
    """
    import segyio  # the 'section' extra

    path = Path(path)
    inline_array = np.asarray(inline_numbers, dtype=np.int64)
    crossline_array = np.asarray(crossline_numbers, dtype=np.int64)
    grid = (len(inline_array), len(crossline_array))
    missing = _trace_grid(missing, grid, "missing")
    dead = _trace_grid(dead, grid, "dead")
    _check_options(inline_array, crossline_array, sorting, endian, format, delay_ms)
    iterator = iter(inlines)
    first = next(iterator, None)
    if first is None:
        raise ValueError("no inlines to write")
    samples = int(np.shape(first)[1])
    positions = trace_positions(~missing, sorting)
    spec = segyio.spec()
    spec.iline, spec.xline = segyio.TraceField.INLINE_3D, segyio.TraceField.CROSSLINE_3D
    spec.format, spec.endian = format, endian
    spec.samples = delay_ms + sample_interval_ms * np.arange(samples)
    if missing.any():
        spec.tracecount = int((~missing).sum())
    else:
        spec.ilines, spec.xlines, spec.offsets = inline_array, crossline_array, [1]
        spec.sorting = SORTINGS[sorting]
    interval_us = int(round(sample_interval_ms * 1000))
    fixed = {
        segyio.TraceField.SourceGroupScalar: COORDINATE_SCALAR,
        segyio.TraceField.TRACE_SAMPLE_COUNT: samples,
        segyio.TraceField.TRACE_SAMPLE_INTERVAL: interval_us,
        segyio.TraceField.DelayRecordingTime: int(delay_ms),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as temporary, segyio.create(str(temporary), spec) as f:
        f.text[0] = _text_header(
            description, sorting, format, int16_scale, sample_interval_ms, delay_ms
        )
        f.bin.update(
            hdt=interval_us,
            dto=interval_us,
            hns=samples,
            nso=samples,
            format=format,
            mfeet=1,
            tsort=4,
        )
        written = 0
        for index, values in enumerate(_chained(first, iterator)):
            if index >= grid[0]:
                raise ValueError(f"more inlines than the {grid[0]} inline numbers")
            stored = _stored(np.asarray(values), (grid[1], samples), format, int16_scale, index)
            for x in np.flatnonzero(~missing[index]):
                trace = int(positions[index, x])
                is_dead = bool(dead[index, x])
                f.header[trace] = {
                    **fixed,
                    segyio.TraceField.TRACE_SEQUENCE_LINE: trace + 1,
                    segyio.TraceField.TRACE_SEQUENCE_FILE: trace + 1,
                    segyio.TraceField.CDP: index * grid[1] + int(x) + 1,
                    segyio.TraceField.TraceIdentificationCode: DEAD_TRACE
                    if is_dead
                    else SEISMIC_TRACE,
                    segyio.TraceField.INLINE_3D: int(inline_array[index]),
                    segyio.TraceField.CROSSLINE_3D: int(crossline_array[x]),
                    segyio.TraceField.CDP_X: _stored_coordinate(origin_m[0] + x * bin_size_m),
                    segyio.TraceField.CDP_Y: _stored_coordinate(origin_m[1] + index * bin_size_m),
                }
                f.trace[trace] = np.zeros_like(stored[x]) if is_dead else stored[x]
            written = index + 1
        if written != grid[0]:
            raise ValueError(f"got {written} inlines for {grid[0]} inline numbers")
    return path


def _chained(first: np.ndarray, rest: Iterator[np.ndarray]) -> Iterator[np.ndarray]:
    yield first
    yield from rest


def _stored(
    values: np.ndarray, shape: tuple[int, int], format: int, int16_scale: float, index: int
) -> np.ndarray:
    """One inline's traces in the file's sample type."""
    if values.shape != shape:
        raise ValueError(f"inline {index}: expected shape {shape}, got {values.shape}")
    if format == 5:
        return np.ascontiguousarray(values, dtype=np.float32)
    scaled = np.rint(np.asarray(values, dtype=np.float32) * int16_scale)
    return np.clip(scaled, -32767, 32767).astype(np.int16)


def _stored_coordinate(metres: float) -> int:
    # SourceGroupScalar -100: the stored integer is the coordinate times 100
    return int(round(metres * -COORDINATE_SCALAR))


def trace_positions(present: np.ndarray, sorting: str) -> np.ndarray:
    """Where each present trace of a (I, X) grid sits in the file: its index among the present
    traces, inline by inline (`sorting="inline"`) or crossline by crossline; -1 where absent."""
    ordered = present if sorting == "inline" else present.T
    positions = np.cumsum(ordered.ravel()).reshape(ordered.shape) - 1
    positions = np.where(ordered, positions, -1)
    return positions if sorting == "inline" else positions.T


def _trace_grid(grid: np.ndarray | None, shape: tuple[int, int], name: str) -> np.ndarray:
    if grid is None:
        return np.zeros(shape, dtype=bool)
    grid = np.asarray(grid, dtype=bool)
    if grid.shape != shape:
        raise ValueError(
            f"{name}: expected a (inlines, crosslines) = {shape} grid, got {grid.shape}"
        )
    return grid


def _check_options(
    inline_numbers: np.ndarray,
    crossline_numbers: np.ndarray,
    sorting: str,
    endian: str,
    format: int,
    delay_ms: int,
) -> None:
    for name, numbers in (("inline", inline_numbers), ("crossline", crossline_numbers)):
        if len(numbers) == 0 or np.any(np.diff(numbers) <= 0):
            raise ValueError(f"{name} numbers must be increasing and not empty")
    if sorting not in SORTINGS:
        raise ValueError(f"sorting must be one of {sorted(SORTINGS)}, got {sorting!r}")
    if endian not in ("big", "little"):
        raise ValueError(f"endian must be 'big' or 'little', got {endian!r}")
    if format not in FORMATS:
        raise ValueError(f"format must be 5 (IEEE float) or 3 (int16), got {format}")
    if delay_ms != int(delay_ms) or not -32768 <= delay_ms <= 32767:
        raise ValueError(f"delay_ms must be a whole number of ms in int16 range, got {delay_ms}")


def _text_header(
    description: str,
    sorting: str,
    format: int,
    int16_scale: float,
    sample_interval_ms: float,
    delay_ms: int,
) -> bytes:
    import segyio

    kind = "IEEE FLOAT32" if format == 5 else f"INT16, AMPLITUDE x {int16_scale:g}"
    lines = {
        1: description.upper()[:70],
        2: "WRITTEN BY SALT.DATA.SYNTHETIC_CUBE",
        4: f"SAMPLE FORMAT {format}: {kind}",
        5: f"SAMPLE INTERVAL {sample_interval_ms:g} MS, DELAY {delay_ms} MS, TIME DOWN",
        6: f"TRACES SORTED BY {sorting.upper()}",
        11: "TRACE HEADER POSITION:",
        12: "  INLINE BYTES 189-192    | CROSSLINE BYTES 193-196",
        13: "  CDP X BYTES 181-184     | CDP Y BYTES 185-188",
        14: "  COORDINATE SCALAR BYTES 71-72: -100 (CENTIMETRES)",
        40: "END TEXTUAL HEADER",
    }
    return segyio.tools.create_text_header(lines).encode("ascii")


def write_cube(
    out_dir,
    shape: Shape3,
    seed: int = 0,
    missing_fraction: float = 0.0,
    dead_fraction: float = 0.0,
    style: str = DEFAULT_STYLE,
    look: Style = ANY_LOOK,
    **segy_options: Any,
) -> tuple[Path, Path]:
    """OUT_DIR/cube.sgy (the cube (`shape`, `seed`) as SEG-Y, inlines numbered from
    FIRST_INLINE and crosslines from FIRST_CROSSLINE, `segy_options` as in `write_segy_cube`)
    and OUT_DIR/cube_mask.npy (its salt, uint8 0/1 (I, X, T), all traces: missing and dead
    ones too), streamed one inline at a time, each file written atomically. About
    `missing_fraction` of the traces (a corner) are left out and `dead_fraction` (scattered)
    written as zeros. Returns the two paths."""
    shape = _checked_shape(shape)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    segy_path, mask_path = out / "cube.sgy", out / "cube_mask.npy"
    grid = shape[:2]
    with atomic_path(mask_path) as temporary, open(temporary, "wb") as mask_file:
        header = {"descr": "|u1", "fortran_order": False, "shape": shape}
        np.lib.format.write_array_header_1_0(mask_file, header)
        write_segy_cube(
            segy_path,
            _amplitudes_saving_masks(cube_inlines(shape, seed, None, style, look), mask_file),
            inline_numbers=FIRST_INLINE + np.arange(shape[0]),
            crossline_numbers=FIRST_CROSSLINE + np.arange(shape[1]),
            missing=corner_missing(grid, missing_fraction) if missing_fraction else None,
            dead=random_dead(grid, dead_fraction, seed) if dead_fraction else None,
            description=f"synthetic salt cube {shape[0]}x{shape[1]}x{shape[2]} seed {seed}",
            **segy_options,
        )
    return segy_path, mask_path


def _amplitudes_saving_masks(
    inlines: Iterator[tuple[int, np.ndarray, np.ndarray]], mask_file
) -> Iterator[np.ndarray]:
    for _, amplitude, mask in inlines:
        mask_file.write(np.ascontiguousarray(mask).tobytes())
        yield amplitude
