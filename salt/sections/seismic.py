"""A 2-D seismic section from SEG-Y, .npy or an image, and its scaling to 8-bit tiles.

The nets are trained on the competition's 8-bit grayscale tiles, so a section is brought to the
same form before it is tiled: uint8 data (8-bit images, uint8 arrays) is used as it is; signed
and float amplitudes (SEG-Y, .npy) are clipped at +-c, the `percentile`-th percentile of
|amplitude|, and mapped linearly from [-c, c] to [0, 255], so that zero amplitude is mid-gray
(~128, as in the tiles) and the strongest reflections saturate; unsigned data wider than 8 bits
(16-bit images) is clipped at its (100 - percentile)-th and percentile-th percentiles instead.
The percentiles come from an evenly strided sample of at most ~4 million values, so a
memory-mapped section is never read whole to compute them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from salt.core.errors import DataError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp")
SEGY_SUFFIXES = (".sgy", ".segy")
SAMPLE_VALUES = 4_000_000


def read_section(path, inline: int | None = None, crossline: int | None = None) -> np.ndarray:
    """A (depth, position) array: samples down the rows, traces along the columns.

    `.npy` files are memory-mapped (read lazily); SEG-Y sections and images are read whole.
    `inline`/`crossline` pick one section of a 3-D SEG-Y file.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(path, "no such file")
    suffix = path.suffix.lower()
    if (inline is not None or crossline is not None) and suffix not in SEGY_SUFFIXES:
        raise DataError(path, "--inline/--crossline apply to SEG-Y files only")
    if suffix in SEGY_SUFFIXES:
        section = read_segy(path, inline, crossline)
    elif suffix == ".npy":
        section = load_npy(path)
    elif suffix in IMAGE_SUFFIXES:
        section = read_section_image(path)
    else:
        raise DataError(
            path, f"unsupported format {suffix or '(no suffix)'!r} (SEG-Y, .npy or an image)"
        )
    if section.ndim != 2:
        raise DataError(path, f"expected a 2-D section, got an array of shape {section.shape}")
    if section.size == 0:
        raise DataError(path, f"empty section (shape {section.shape})")
    if not (np.issubdtype(section.dtype, np.number) and not np.iscomplexobj(section)):
        raise DataError(path, f"expected real numbers, got dtype {section.dtype}")
    return section


def load_npy(path: Path) -> np.ndarray:
    """A .npy file memory-mapped (read lazily), or refused in one line naming it."""
    try:
        return np.load(path, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError, EOFError) as error:  # EOFError: an empty file
        raise DataError(path, f"not a readable .npy file ({error})") from None


def read_section_image(path: Path) -> np.ndarray:
    """An image of any size and bit depth as one channel (colour converted to gray)."""
    image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if image is None:
        raise DataError(path, "not a readable image")
    if image.ndim == 3:
        image = cv2.cvtColor(image[..., :3], cv2.COLOR_BGR2GRAY)
    return image


def read_segy(path: Path, inline: int | None, crossline: int | None) -> np.ndarray:
    try:
        import segyio
    except ImportError:
        raise DataError(
            path, "reading SEG-Y needs segyio: pip install 'tgs-salt[section]'"
        ) from None
    try:
        with segyio.open(str(path), "r", strict=True) as f:
            return segy_cube_section(path, f, inline, crossline)
    except DataError:
        raise
    except Exception:  # no inline/crossline geometry: a 2-D line (or not SEG-Y at all)
        pass
    if inline is not None or crossline is not None:
        which = "--inline" if inline is not None else "--crossline"
        raise DataError(path, f"a 2-D SEG-Y line has no inlines or crosslines: drop {which}")
    try:
        with segyio.open(str(path), "r", ignore_geometry=True) as f:
            return np.ascontiguousarray(f.trace.raw[:].T, dtype=np.float32)
    except Exception as error:  # segyio raises RuntimeError, OSError, ValueError
        raise DataError(path, f"not a readable SEG-Y file ({error})") from None


def segy_cube_section(path: Path, f, inline: int | None, crossline: int | None) -> np.ndarray:
    inlines, crosslines = list(f.ilines), list(f.xlines)
    if inline is None and crossline is None:
        if len(inlines) == 1:
            inline = inlines[0]
        elif len(crosslines) == 1:
            crossline = crosslines[0]
        else:
            raise DataError(
                path,
                f"3-D SEG-Y ({len(inlines)} inlines {inlines[0]}..{inlines[-1]}, "
                f"{len(crosslines)} crosslines {crosslines[0]}..{crosslines[-1]}): "
                "pass --inline N or --crossline N",
            )
    if inline is not None:
        if inline not in inlines:
            raise DataError(path, f"no inline {inline} (inlines {inlines[0]}..{inlines[-1]})")
        traces = f.iline[inline]
    else:
        if crossline not in crosslines:
            raise DataError(
                path, f"no crossline {crossline} (crosslines {crosslines[0]}..{crosslines[-1]})"
            )
        traces = f.xline[crossline]
    return np.ascontiguousarray(np.asarray(traces).T, dtype=np.float32)


@dataclass(frozen=True)
class Scaling:
    """Linear map of [low, high] to [0, 255], clipped; identity for uint8 data (`low` None)."""

    low: float | None = None
    high: float | None = None

    def __call__(self, values: np.ndarray) -> np.ndarray:
        if self.low is None or self.high is None:
            return np.asarray(values, dtype=np.uint8)
        scaled = (np.asarray(values, dtype=np.float32) - self.low) * (
            255.0 / (self.high - self.low)
        )
        return np.rint(np.clip(np.nan_to_num(scaled, nan=127.5), 0, 255)).astype(np.uint8)

    def __str__(self) -> str:
        if self.low is None:
            return "8-bit input, used as it is"
        return f"amplitudes {self.low:.4g}..{self.high:.4g} -> 0..255 (clipped)"


def sample(section: np.ndarray) -> np.ndarray:
    """At most about SAMPLE_VALUES of `section`'s values, evenly spaced, as a float64 copy."""
    step = max(1, math.ceil(math.sqrt(section.size / SAMPLE_VALUES)))
    return np.array(section[::step, ::step], dtype=np.float64)  # a copy, even of float64


def scaling_for(section: np.ndarray, percentile: float = 99.0) -> Scaling:
    """How `section` maps to 8-bit tiles (see the module docstring)."""
    if not 50 < percentile <= 100:
        raise ValueError(f"clip percentile must be in (50, 100], got {percentile}")
    if section.dtype == np.uint8:
        return Scaling()
    values = sample(section).ravel()
    finite = np.isfinite(values)
    if not finite.all():  # no second copy of a sample that is all finite (peak memory)
        values = values[finite]
    if values.size == 0:
        return Scaling(-1.0, 1.0)
    # values is this function's own copy: partitioned and folded in place (peak memory)
    if np.issubdtype(section.dtype, np.unsignedinteger):
        percentiles = np.percentile(values, [100 - percentile, percentile], overwrite_input=True)
        low, high = (float(v) for v in percentiles)
    else:
        high = float(np.percentile(np.abs(values, out=values), percentile, overwrite_input=True))
        low = -high
    if high <= low:  # constant data: mid-gray
        low, high = low - 1.0, high + 1.0
    return Scaling(low, high)
