"""Pictures of a survey's salt for geoscientists: orthogonal slices and 3-D bodies, as PNG.

    slices_figure(path, seismic, salt, axes, position)   inline, crossline and time (or depth)
                                                         slice through `position`, salt overlaid
    bodies_figure(path, labels, axes, step)              the salt bodies as shaded isosurfaces

Both are drawn with matplotlib's Agg renderer outside pyplot (no display, nothing to close), at
DPI dots per inch, in a figure of a fixed size in inches (so a fixed size in pixels), and written
through a temporary file (`salt.core.files.atomic_path`). Axes carry the survey's line numbers
and vertical units from `CubeAxes`; the vertical axis points down. The 3-D view needs
scikit-image (`pip install 'tgs-salt[section]'`).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import cast

import contourpy
import numpy as np
from matplotlib.artist import Artist
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.collections import LineCollection
from matplotlib.colors import to_rgb
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from scipy import ndimage

from salt.core.files import atomic_path
from salt.sections.axes import CubeAxes

DPI = 180
SLICES_SIZE = (15.0, 5.6)  # inches: 2700 x 1008 pixels at DPI
BODIES_SIZE = (10.0, 7.5)  # inches: 1800 x 1350 pixels at DPI
SLICE_NAMES = ("inline", "crossline", "slice")
SALT_COLOR = "#ff5a1f"
SALT_ALPHA = 0.35  # the overlay's opacity where salt is certain
# the colour of each slice: its panel's title and the line that marks it on the other panels
CUT_COLORS = {"inline": "#2f9be0", "crossline": "#3cc46b", "slice": "#f2c230"}
BODY_COLORS = (
    "#e4572e", "#3d8fd1", "#f2c230", "#59b36b", "#a66cc7", "#e38fb4", "#35b7b0", "#b08045",
)  # fmt: skip
OTHER_BODIES_COLOR = "#a8a8a8"
MAX_FACES = 60_000  # triangles in the 3-D view, all bodies together (rendering time)
VIEW = {"elev": 22.0, "azim": -57.0}
# towards the light in the box's coordinates: from the viewer's left, above (z points down)
LIGHT = np.array([0.5, -0.6, -0.8])


def new_figure(size: tuple[float, float]) -> Figure:
    """A figure on the Agg canvas, outside pyplot's global state."""
    figure = Figure(figsize=size, layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def save_png(figure: Figure, path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as temporary:
        figure.savefig(temporary, dpi=DPI, format="png", facecolor="white")
    return path


def vertical_label(axes: CubeAxes) -> str:
    return f"{axes.vertical} ({axes.vertical_unit})"


def cell_edges(values: np.ndarray) -> tuple[float, float]:
    """The outer edges of cells centred on `values` (increasing), for imshow's extent."""
    half = (values[1] - values[0]) / 2 if len(values) > 1 else 0.5
    return float(values[0] - half), float(values[-1] + half)


# --- three orthogonal slices -------------------------------------------------------------------


def _panels(axes: CubeAxes, position: tuple[int, int, int]) -> dict[str, dict]:
    """What each slice shows: its title, the coordinates of its horizontal and vertical image
    axes (the second flipped: time down, or inlines up the map), and where the other two cut."""
    inline, crossline, sample = position
    vertical = axes.samples
    unit = axes.vertical_unit
    return {
        "inline": {
            "title": f"inline {axes.inlines[inline]:g}",
            "across": (axes.crosslines, "crossline"),
            "down": (vertical, vertical_label(axes)),
            "cuts": {"crossline": ("x", axes.crosslines[crossline]), "slice": ("y", vertical[sample])},
        },
        "crossline": {
            "title": f"crossline {axes.crosslines[crossline]:g}",
            "across": (axes.inlines, "inline"),
            "down": (vertical, vertical_label(axes)),
            "cuts": {"inline": ("x", axes.inlines[inline]), "slice": ("y", vertical[sample])},
        },
        "slice": {
            "title": f"{axes.vertical} {vertical[sample]:g} {unit}",
            "across": (axes.crosslines, "crossline"),
            "down": (axes.inlines, "inline"),
            "cuts": {"inline": ("y", axes.inlines[inline]), "crossline": ("x", axes.crosslines[crossline])},
        },
    }  # fmt: skip


def _expected_shapes(axes: CubeAxes) -> dict[str, tuple[int, int]]:
    inlines, crosslines, samples = axes.shape
    return {"inline": (crosslines, samples), "crossline": (inlines, samples), "slice": (inlines, crosslines)}  # fmt: skip


def _checked_slices(
    seismic: Mapping[str, np.ndarray], salt: Mapping[str, np.ndarray], axes: CubeAxes
) -> None:
    for name, shape in _expected_shapes(axes).items():
        for kind, arrays in (("seismic", seismic), ("salt", salt)):
            if name not in arrays:
                raise ValueError(f"{kind} has no {name!r} slice (needs {', '.join(SLICE_NAMES)})")
            if np.shape(arrays[name]) != shape:
                raise ValueError(
                    f"{kind}[{name!r}]: expected shape {shape} for a survey of "
                    f"{axes.shape}, got {np.shape(arrays[name])}"
                )


def _checked_position(position: tuple[int, int, int], axes: CubeAxes) -> tuple[int, int, int]:
    if len(position) != 3 or not all(0 <= p < n for p, n in zip(position, axes.shape)):
        raise ValueError(f"position {position} is outside the survey's {axes.shape} samples")
    inline, crossline, sample = (int(p) for p in position)
    return inline, crossline, sample


def tinted_section(seismic: np.ndarray, salt: np.ndarray) -> np.ndarray:
    """The picture of a section: opaque uint8 RGBA (rows, columns, 4) of `seismic` (uint8
    amplitudes, in gray) with the salt colour blended in as `SALT_ALPHA` x the salt's certainty
    (a bool mask or a probability; NaN: none).

    One opaque uint8 RGBA image per panel, composited here, rather than a gray image under a
    translucent one: matplotlib resamples every image in float, an opaque RGBA one in float32
    without a premultiplied copy (an RGB one gains a float64 alpha channel). With the outline of
    `salt_outline`, drawing slices.png of three 800 x 800 slices takes 60 MiB instead of 150
    (BENCHMARKS.md, "Peak memory on a cube larger than 2 GB")."""
    gray = np.asarray(seismic, dtype=np.float32)
    opacity = np.clip(np.nan_to_num(np.asarray(salt, dtype=np.float32)), 0, 1)
    opacity *= np.float32(SALT_ALPHA)
    rgba = np.empty(gray.shape + (4,), np.uint8)
    rgba[..., 3] = 255
    for channel, value in enumerate(np.array(to_rgb(SALT_COLOR), np.float32) * 255):
        rgba[..., channel] = np.rint(gray + (value - gray) * opacity)
    return rgba


def salt_outline(
    salt: np.ndarray, across: np.ndarray, down: np.ndarray, level: float = 0.5
) -> list[np.ndarray]:
    """The lines where `salt` ((across, down), bool or probability) crosses `level`, each an
    (points, 2) array of (across, down) coordinates: what `Axes.contour` draws, without the
    coordinate grids (two float64 copies of the section) that a ContourSet keeps."""
    generator = contourpy.contour_generator(
        z=np.asarray(salt, dtype=np.float32).T, line_type=contourpy.LineType.Separate
    )
    scales = []
    for values in (np.asarray(across, dtype=float), np.asarray(down, dtype=float)):
        step = values[1] - values[0] if len(values) > 1 else 1.0
        scales.append((values[0], step))
    (across_start, across_step), (down_start, down_step) = scales
    lines = cast(list[np.ndarray], generator.lines(level))  # LineType.Separate: (points, 2) each
    return [
        np.column_stack(
            (across_start + line[:, 0] * across_step, down_start + line[:, 1] * down_step)
        )
        for line in lines
    ]


def _draw_slice(ax, panel: dict, seismic: np.ndarray, salt: np.ndarray) -> None:
    """One panel: `seismic` and `salt` are (across, down) arrays, drawn with `across` to the
    right and `down` down the page."""
    (across, across_label), (down, down_label) = panel["across"], panel["down"]
    left, right = cell_edges(np.asarray(across, dtype=float))
    top, bottom = cell_edges(np.asarray(down, dtype=float))
    extent = (left, right, bottom, top)  # origin "upper": row 0 at the top
    picture = tinted_section(np.asarray(seismic).T, np.asarray(salt).T)
    ax.imshow(picture, extent=extent, aspect="auto")
    if min(np.shape(salt)) > 1 and np.ptp(np.asarray(salt, dtype=np.float32)) > 0:
        outline = salt_outline(salt, across, down)
        ax.add_collection(LineCollection(outline, colors=[SALT_COLOR], linewidths=1.3))
    for name, (direction, value) in panel["cuts"].items():
        line = ax.axvline if direction == "x" else ax.axhline
        line(value, color=CUT_COLORS[name], linewidth=1.1, linestyle=(0, (6, 3)))
    ax.set_xlim(left, right)
    ax.set_ylim(bottom, top)
    ax.set_xlabel(across_label, fontsize=10)
    ax.set_ylabel(down_label, fontsize=10)
    ax.tick_params(labelsize=9)


def _slices_legend(figure: Figure, probability: bool, vertical: str) -> None:
    salt_label = "salt (opacity: probability, line: 0.5)" if probability else "salt"
    handles: list[Artist] = [
        Patch(facecolor=SALT_COLOR, alpha=0.6, edgecolor=SALT_COLOR, label=salt_label)
    ]
    handles += [
        Line2D([], [], color=CUT_COLORS[name], linestyle=(0, (6, 3)), label=f"{label} position")
        for name, label in (("inline", "inline"), ("crossline", "crossline"), ("slice", vertical))
    ]
    figure.legend(handles=handles, loc="outside lower center", ncol=4, fontsize=9, frameon=False)


def _width_ratios(axes: CubeAxes) -> list[float]:
    """Panel widths: each section as wide as its traces ask, within a factor 2 of the others."""
    inlines, crosslines, _ = axes.shape
    widths = np.array([crosslines, inlines, crosslines], dtype=float)
    return list(np.clip(widths / widths.max(), 0.5, 1.0))


def slices_figure(
    path,
    seismic: Mapping[str, np.ndarray],
    salt: Mapping[str, np.ndarray],
    axes: CubeAxes,
    position: tuple[int, int, int],
) -> Path:
    """Write three orthogonal slices through the survey at `position` (inline index, crossline
    index, sample index) as a PNG at `path` (SLICES_SIZE inches at DPI); return `path`.

    For `name` in ("inline", "crossline", "slice"), `seismic[name]` is the slice's amplitudes
    scaled to uint8 (drawn in gray, 0 black) and `salt[name]` its salt, a bool mask or a
    probability in 0..1 (drawn in SALT_COLOR, opacity SALT_ALPHA x probability, outlined at
    0.5). Both index as the volume `[inline, crossline, sample]` does:

        "inline"     volume[i, :, :]   (crosslines, samples)   crosslines across, time down
        "crossline"  volume[:, x, :]   (inlines, samples)      inlines across, time down
        "slice"      volume[:, :, t]   (inlines, crosslines)   crosslines across, inlines up

    Axes are in line numbers and `axes.vertical_unit`; titles read "inline 123", "crossline
    880", "time 200 ms"; dashed lines in each slice's colour mark where it cuts the others.
    """
    position = _checked_position(position, axes)
    _checked_slices(seismic, salt, axes)
    panels = _panels(axes, position)
    figure = new_figure(SLICES_SIZE)
    grid = figure.subplots(1, 3, gridspec_kw={"width_ratios": _width_ratios(axes)})
    for ax, name in zip(grid, SLICE_NAMES):
        # the map is (inlines, crosslines): crosslines across, like the sections' traces
        across_down = (lambda a: np.asarray(a).T) if name == "slice" else np.asarray
        _draw_slice(ax, panels[name], across_down(seismic[name]), across_down(salt[name]))
        ax.set_title(panels[name]["title"], fontsize=13, fontweight="bold", color="#222222")
        for spine in ax.spines.values():
            spine.set_edgecolor(CUT_COLORS[name])
            spine.set_linewidth(2.5)
    grid[2].invert_yaxis()  # map view: inline numbers increase up the page
    probability = any(np.asarray(salt[name]).dtype != bool for name in SLICE_NAMES)
    _slices_legend(figure, probability, f"{axes.vertical} slice")
    return save_png(figure, path)


# --- 3-D bodies --------------------------------------------------------------------------------


def body_ids_by_size(labels: np.ndarray) -> list[tuple[int, int]]:
    """(body id, voxels) of every body in `labels`, the largest first (ties: smaller id)."""
    counts = np.bincount(labels.ravel())
    ids = np.flatnonzero(counts)
    ids = ids[ids > 0]
    order = sorted(ids, key=lambda i: (-counts[i], i))
    return [(int(i), int(counts[i])) for i in order]


def _line_coordinates(axes: CubeAxes, step: tuple[int, int, int]) -> list[np.ndarray]:
    """Per axis of the downsampled volume, a function's table: voxel index -> survey value."""
    values = (axes.inlines, axes.crosslines, axes.samples)
    return [np.asarray(v, dtype=float)[np.arange(0, len(v), s)] for v, s in zip(values, step)]


def _to_survey(vertices: np.ndarray, coordinates: list[np.ndarray]) -> np.ndarray:
    """Marching-cubes vertices (voxel indices, fractional) -> (inline, crossline, vertical)."""
    survey = np.empty_like(vertices, dtype=float)
    for axis, table in enumerate(coordinates):
        if len(table) == 1:
            survey[:, axis] = table[0] + (vertices[:, axis] - 0)  # one voxel: unit width
        else:
            index = np.arange(len(table))
            spacing = table[1] - table[0]
            # np.interp clamps: extend linearly for the half voxel outside the first and last
            below, above = vertices[:, axis] < 0, vertices[:, axis] > len(table) - 1
            survey[:, axis] = np.interp(vertices[:, axis], index, table)
            survey[below, axis] = table[0] + vertices[below, axis] * spacing
            survey[above, axis] = table[-1] + (vertices[above, axis] - len(table) + 1) * spacing
    return survey


def body_surface(body: np.ndarray, step_size: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """A closed isosurface of a boolean volume (zero-padded, so a body cut by the survey's side is
    closed by it), lightly smoothed: (vertices (V, 3) in voxel indices, faces (F, 3))."""
    from skimage import filters, measure  # the 'section' extra

    corner = np.array([max(0, w.min() - 2) for w in np.nonzero(body)])
    upper = np.array([w.max() + 3 for w in np.nonzero(body)])
    crop = body[tuple(slice(a, b) for a, b in zip(corner, upper))]
    padded = np.pad(crop.astype(np.float32), 1)
    smooth = filters.gaussian(padded, sigma=0.8, preserve_range=True)
    level = min(0.5, 0.5 * float(smooth.max()))  # a one-voxel body still gets a surface
    try:
        vertices, faces, _, _ = measure.marching_cubes(
            smooth, level=level, step_size=step_size, allow_degenerate=False
        )
    except RuntimeError:  # a body smaller than the step falls between the sampled voxels
        vertices, faces, _, _ = measure.marching_cubes(smooth, level=level, allow_degenerate=False)
    return vertices + corner - 1, faces


def shaded_colors(
    vertices: np.ndarray, faces: np.ndarray, color: str, scale: np.ndarray
) -> np.ndarray:
    """Face colours (F, 4) of a triangle mesh lit by LIGHT (two-sided Lambert with ambient
    light), smooth: each face gets the mean brightness of its corners, whose normals average the
    faces around them. `scale` maps survey units to the drawn box, so that normals follow the
    shape as drawn."""
    box = vertices * scale
    corners = box[faces]
    face_normals = np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0])
    normals = np.zeros_like(box)
    for corner in range(3):  # area-weighted: the cross product's length is twice the area
        np.add.at(normals, faces[:, corner], face_normals)
    normals /= np.linalg.norm(normals, axis=1, keepdims=True) + 1e-12
    light = LIGHT / np.linalg.norm(LIGHT)
    brightness = (0.3 + 0.7 * np.abs(normals @ light))[faces].mean(axis=1)
    rgb = np.clip(np.asarray(to_rgb(color))[None, :] * brightness[:, None], 0, 1)
    return np.concatenate([rgb, np.ones((len(rgb), 1))], axis=1)


def _box_scale(axes: CubeAxes) -> np.ndarray:
    """Survey units (inline number, crossline number, vertical) per unit of the drawn box, so the
    box shows the survey's horizontal proportions (from `axes.bin_size`) and a vertical side 0.6
    of the longer horizontal one."""
    extent = np.array([np.ptp(axes.inlines), np.ptp(axes.crosslines), np.ptp(axes.samples)])
    extent = np.where(extent > 0, extent, 1.0)
    metres = extent[:2].copy()
    if axes.bin_size is not None:
        steps = [
            np.median(np.diff(v)) if len(v) > 1 else 1.0 for v in (axes.inlines, axes.crosslines)
        ]
        metres = extent[:2] / np.asarray(steps) * np.asarray(axes.bin_size)
    sides = np.array([*metres / metres.max(), 0.6])
    return sides / extent


def _set_limits(ax, axes: CubeAxes) -> np.ndarray:
    """The box's (3, 2) limits, the vertical axis pointing down."""
    values = (axes.inlines, axes.crosslines, axes.samples)
    limits = np.array([cell_edges(np.asarray(v, dtype=float)) for v in values])
    ax.set_xlim(*limits[0])
    ax.set_ylim(*limits[1])
    ax.set_zlim(limits[2][1], limits[2][0])
    return limits


def _box_edges(ax, limits: np.ndarray) -> tuple[list, list]:
    """The twelve edges of the box, split into those behind the bodies and those in front of
    them (on a face that looks at the viewer), as (start, end) corner pairs."""
    elev, azim = np.radians(VIEW["elev"]), np.radians(VIEW["azim"])
    towards_viewer = np.array(
        [np.cos(elev) * np.cos(azim), np.cos(elev) * np.sin(azim), np.sin(elev)]
    )
    shown = np.array([ax.get_xlim(), ax.get_ylim(), ax.get_zlim()])  # (from, to) as drawn
    viewer_side = np.where(towards_viewer > 0, shown[:, 1], shown[:, 0])
    corners = np.array(np.meshgrid(*limits, indexing="ij")).reshape(3, -1).T
    back: list[tuple[np.ndarray, np.ndarray]] = []
    front: list[tuple[np.ndarray, np.ndarray]] = []
    for a in range(8):
        for b in range(a + 1, 8):
            varying = corners[a] != corners[b]
            if np.count_nonzero(varying) != 1:
                continue
            fixed = ~varying
            on_front_face = np.any(np.isclose(corners[a][fixed], viewer_side[fixed]))
            (front if on_front_face else back).append((corners[a], corners[b]))
    return back, front


def _draw_edges(ax, edges: list) -> None:
    for start, end in edges:
        ax.plot(*zip(start, end), color="#555555", linewidth=0.9)


def _faces_budget_step(bodies: list[np.ndarray]) -> int:
    """marching_cubes' step_size that keeps all surfaces near MAX_FACES triangles."""
    surface_voxels = 0
    for body in bodies:  # its faces across the first axis, those on the survey's sides included
        surface_voxels += int(np.count_nonzero(np.diff(body, axis=0, prepend=False, append=False)))
    estimate = 4 * surface_voxels  # about four triangles per surface voxel
    return max(1, int(np.ceil(np.sqrt(estimate / MAX_FACES))))


def bodies_figure(
    path, labels: np.ndarray, axes: CubeAxes, step: tuple[int, int, int] = (1, 1, 1)
) -> Path:
    """Write a 3-D view of the salt bodies as a PNG at `path` (BODIES_SIZE inches at DPI);
    return `path`.

    `labels` (int, indexed [inline, crossline, sample]) is the survey's body labels taken every
    `step` samples along each axis (`labels = full[::s0, ::s1, ::s2]`): 0 no salt, k > 0 body k.
    Each body is drawn as a shaded isosurface (marching cubes of the body, lightly smoothed,
    closed where the survey's sides cut it), the eight largest in distinct colours (legend: share
    of the salt), the rest in gray, inside the survey's bounding box; axes in inline and
    crossline numbers and `axes.vertical_unit`, the vertical axis pointing down. Without
    bodies the figure says "no salt".
    """
    labels = np.asarray(labels)
    expected = tuple(len(range(0, n, s)) for n, s in zip(axes.shape, step))
    if labels.ndim != 3 or labels.shape != expected:
        raise ValueError(
            f"labels: expected shape {expected} (a survey of {axes.shape} every {step}), "
            f"got {labels.shape}"
        )
    figure = new_figure(BODIES_SIZE)
    ax = figure.add_subplot(projection="3d", computed_zorder=False)
    scale = _box_scale(axes)
    ax.set_box_aspect(tuple(np.ptp(np.array([cell_edges(np.asarray(v, float)) for v in (axes.inlines, axes.crosslines, axes.samples)]), axis=1) * scale))  # fmt: skip
    ax.view_init(**VIEW)
    limits = _set_limits(ax, axes)
    back, front = _box_edges(ax, limits)
    _draw_edges(ax, back)
    bodies = body_ids_by_size(labels)
    if bodies:
        _draw_bodies(ax, labels, bodies, _line_coordinates(axes, step), scale, limits)
        total = sum(voxels for _, voxels in bodies)
        _bodies_legend(figure, bodies, total)
        title = f"salt bodies: {len(bodies)}"
    else:
        title = "no salt"
        figure.text(0.5, 0.5, "no salt", ha="center", va="center", fontsize=28, color="#777777")
    _draw_edges(ax, front)
    ax.set_title(title, fontsize=14, fontweight="bold")
    ax.set_xlabel("inline", fontsize=10, labelpad=8)
    ax.set_ylabel("crossline", fontsize=10, labelpad=8)
    ax.set_zlabel(vertical_label(axes), fontsize=10, labelpad=8)
    ax.tick_params(labelsize=8)
    return save_png(figure, path)


def _draw_bodies(ax, labels, bodies, coordinates, scale, limits) -> None:
    from mpl_toolkits.mplot3d.art3d import Poly3DCollection

    boxes = ndimage.find_objects(labels)
    crops = [(labels[boxes[body_id - 1]] == body_id, boxes[body_id - 1]) for body_id, _ in bodies]
    step_size = _faces_budget_step([mask for mask, _ in crops])
    for rank, (mask, box) in enumerate(crops):
        vertices, faces = body_surface(mask, step_size=step_size)
        if len(faces) == 0:
            continue
        vertices += [side.start for side in box]
        survey = np.clip(_to_survey(vertices, coordinates), limits[:, 0], limits[:, 1])
        color = BODY_COLORS[rank] if rank < len(BODY_COLORS) else OTHER_BODIES_COLOR
        colors = shaded_colors(survey, faces, color, scale)
        collection = Poly3DCollection(survey[faces], facecolors=colors, linewidths=0)
        ax.add_collection3d(collection)


def _bodies_legend(figure: Figure, bodies: list[tuple[int, int]], total: int) -> None:
    handles = [
        Patch(color=BODY_COLORS[rank], label=f"body {body_id}: {voxels / total:.0%} of the salt")
        for rank, (body_id, voxels) in enumerate(bodies[: len(BODY_COLORS)])
    ]
    others = bodies[len(BODY_COLORS) :]
    if others:
        share = sum(v for _, v in others) / total
        handles.append(Patch(color=OTHER_BODIES_COLOR, label=f"{len(others)} more: {share:.0%}"))
    figure.legend(handles=handles, loc="outside right center", fontsize=9, frameon=False)
