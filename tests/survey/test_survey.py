"""salt.survey on generated 3-D SEG-Y cubes and on the real F3 crop: outputs on the input's
geometry, the merge of the passes, resume after a kill, two processes, bad input."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import SimpleNamespace

import cv2
import numpy as np
import pytest
import torch

from salt import survey as survey_cli
from salt.core.errors import SaltError
from salt.data.synthetic_cube import corner_missing, make_cube, random_dead, write_segy_cube
from salt.sections import cube as cube_module
from salt.sections import lines as lines_module
from salt.sections import segy_out
from salt.sections.cube import Survey
from salt.sections.seismic import scaling_for
from salt.sections.survey_work import DEAD, LIVE, MISSING, OUTPUTS, WORK, SurveyWork
from salt.sections.uncertainty import rank_lines
from tests.helpers.runs import REPO_ROOT, run_main
from tests.helpers.tiny_net import write_checkpoint

segyio = pytest.importorskip("segyio")

SHARED_SEISMIC = REPO_ROOT.parent / "shared" / "seismic"
SHAPE = (12, 10, 60)
FIRST_INLINE, FIRST_CROSSLINE = 100, 300
SUBPROCESS_TIMEOUT = 240


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    return write_checkpoint(tmp_path_factory.mktemp("survey") / "best.ckpt", seed=3)


def write_cube(path: Path, shape=SHAPE, seed: int = 0, **options) -> tuple[Path, np.ndarray]:
    amplitude, mask = make_cube(shape, seed)
    write_segy_cube(
        path,
        amplitude,
        inline_numbers=range(FIRST_INLINE, FIRST_INLINE + shape[0]),
        crossline_numbers=range(FIRST_CROSSLINE, FIRST_CROSSLINE + shape[1]),
        **options,
    )
    return path, mask


def survey(
    capsys, cube: Path, out: Path, checkpoint: Path, *options, pictures: bool = False
) -> tuple[int, str, str]:
    """salt.survey in this process; one TTA view unless `options` say otherwise, and no
    pictures unless asked (they take seconds)."""
    tta = [] if "--tta" in options else ["--tta", "none"]
    quick = [*tta, *([] if pictures else ["--no-pictures"])]
    return run_main(
        survey_cli.main,
        [cube, "--runs", checkpoint, "--out", out, "--accelerator", "cpu", *quick, *options],
        capsys,
    )


PICTURES = {"slices.png", "bodies.png"}


@pytest.fixture
def gray_level_net(monkeypatch):
    """The nets replaced by one that predicts each pixel's own gray level / 255: a line's
    probabilities are then its scaled amplitudes, so every voxel of the result is known from the
    input alone, wherever the line it was predicted in lies (`gray_levels`)."""

    def predict(models, tiles, views=False, **options):
        assert views  # the survey keeps every view (one here)
        return SimpleNamespace(masks=tiles[:, None].astype(np.float32) / 255)

    monkeypatch.setattr(lines_module, "predict_ensemble", predict)


@pytest.fixture
def two_view_net(monkeypatch):
    """The nets replaced by two views of each pixel's own gray level g (/ 255): g and g^2. Every
    view of a voxel is then known from the input alone and is the same in either pass, so its
    uncertainty is the deviation of {g, g^2}: |g - g^2| / 2, 0 exactly where g is 0 or 1."""

    def predict(models, tiles, views=False, **options):
        assert views
        gray = tiles.astype(np.float32) / 255
        return SimpleNamespace(masks=np.stack([gray, gray**2], axis=1))

    monkeypatch.setattr(lines_module, "predict_ensemble", predict)


def gray_levels(cube: Path, amplitude: np.ndarray) -> np.ndarray:
    """What `gray_level_net` predicts for `amplitude` (any shape) of the survey `cube`."""
    return Survey(cube).scaling()(amplitude).astype(np.float32) / 255


# a probability is stored as float16 in its line file: 2^-11 of 1 at most
FLOAT16_STEP = 2.0**-11


def trace_headers(path: Path, endian: str) -> list[dict]:
    with segyio.open(str(path), ignore_geometry=True, endian=endian) as f:
        return [dict(h) for h in f.header]


def raw_headers(path: Path) -> tuple[bytes, list[bytes]]:
    """The file's textual + binary header bytes (format code blanked) and every trace header."""
    data = path.read_bytes()
    with segyio.open(str(path), ignore_geometry=True, endian=Survey(path).endian) as f:
        samples, count, width = len(f.samples), f.tracecount, {3: 2, 8: 1}.get(int(f.format), 4)
    head = bytearray(data[:3600])
    head[3224:3226] = b"\0\0"
    step = 240 + samples * width
    return bytes(head), [data[3600 + k * step : 3600 + k * step + 240] for k in range(count)]


@pytest.mark.parametrize(
    "layout, workers",
    [
        ({"sorting": "inline", "endian": "big"}, 0),
        ({"sorting": "crossline", "endian": "little"}, 2),
    ],
    ids=["inline-sorted", "crossline-sorted-2-workers"],
)
def test_outputs_lie_on_the_input_geometry(
    checkpoint, tmp_path, capsys, layout, workers, monkeypatch, gray_level_net
):
    """Every output trace is its own input trace's prediction: with the gray-level net, the input
    trace scaled, whichever pass and line predicted it. The crossline-sorted file is read by two
    DataLoader workers (forked processes)."""
    cube, _ = write_cube(tmp_path / "cube.sgy", **layout)
    if layout["sorting"] == "crossline":  # files read and written in chunks, the last one short
        for module in (cube_module, segy_out):
            monkeypatch.setattr(module, "TRACE_CHUNK", 7)  # 120 traces: 17 x 7 + 1
    expected = gray_levels(cube, make_cube(SHAPE, 0)[0])
    salt = expected >= 0.5
    truth = salt.copy()
    truth[0] = True  # the first inline all salt: a truth the mask overlaps by a known fraction
    np.save(tmp_path / "truth.npy", truth.astype(np.uint8))
    pictures = layout["sorting"] == "inline"
    status, out, err = survey(
        capsys,
        cube,
        tmp_path / "out",
        checkpoint,
        "--truth",
        tmp_path / "truth.npy",
        "--workers",
        workers,
        pictures=pictures,
    )
    assert status == 0, err
    result = tmp_path / "out"
    written = set(OUTPUTS) - (set() if pictures else PICTURES)
    assert {p.name for p in result.iterdir()} == written
    probability, mask = np.load(result / "probability.npy"), np.load(result / "mask.npy")
    assert probability.shape == mask.shape == SHAPE and probability.dtype == np.float32
    assert np.allclose(probability, expected, rtol=0, atol=FLOAT16_STEP)
    assert np.array_equal(mask, salt.astype(np.uint8))
    assert np.array_equal(np.load(result / "traces.npy"), np.full(SHAPE[:2], LIVE))
    # every header copied byte for byte, and each trace the prediction of its own input trace
    assert raw_headers(result / "probability.sgy") == raw_headers(cube)
    assert raw_headers(result / "mask.sgy") == raw_headers(cube)
    endian = layout["endian"]
    scaling = Survey(cube).scaling()
    with (
        segyio.open(str(cube), ignore_geometry=True, endian=endian) as i,
        segyio.open(str(result / "probability.sgy"), ignore_geometry=True, endian=endian) as p,
        segyio.open(str(result / "mask.sgy"), ignore_geometry=True, endian=endian) as m,
    ):
        assert int(p.format) == 5 and int(m.format) == 3
        for k in range(i.tracecount):
            gray = scaling(i.trace[k]).astype(np.float32) / 255
            assert np.allclose(p.trace[k], gray, rtol=0, atol=FLOAT16_STEP)
            assert np.array_equal(m.trace[k], gray >= 0.5)
    summary = json.loads((result / "summary.json").read_text())
    assert 0 < (~salt[0]).sum() < salt.sum()
    assert summary["iou"] == pytest.approx(salt.sum() / (salt.sum() + (~salt[0]).sum()), abs=1e-12)
    assert summary["shape"] == list(SHAPE) and summary["lines"] == {"inline": 12, "crossline": 10}
    assert "survey 12x10x60 (inlines x crosslines x samples): 12 inlines + 10 crosslines" in out


def test_the_passes_are_merged_by_their_mean(checkpoint, tmp_path, capsys):
    """The probability is the passes' mean, and the uncertainty their disagreement: with one
    view a pass (one checkpoint, no TTA), 0 for one pass and |inline - crossline| / 2 (the
    deviation of the two views) for both."""
    cube, _ = write_cube(tmp_path / "cube.sgy", shape=(6, 7, 40), seed=1)
    volumes, uncertainty = {}, {}
    for axes in ("inline", "crossline", "inline,crossline"):
        out = tmp_path / axes
        status, _, err = survey(capsys, cube, out, checkpoint, "--axes", axes, "--tta", "none")
        assert status == 0, err
        volumes[axes] = np.load(out / "probability.npy")
        uncertainty[axes] = np.load(out / "uncertainty.npy")
    # the passes differ (each line is predicted as a whole section of its own direction), and
    # the default merge is their mean (float16 line files: the same values whichever run)
    assert not np.allclose(volumes["inline"], volumes["crossline"], atol=1e-3)
    expected = (volumes["inline"] + volumes["crossline"]) / 2
    assert np.array_equal(volumes["inline,crossline"], expected)
    assert not uncertainty["inline"].any() and not uncertainty["crossline"].any()
    disagreement = np.abs(volumes["inline"] - volumes["crossline"]) / 2
    np.testing.assert_allclose(uncertainty["inline,crossline"], disagreement, rtol=1e-6, atol=1e-8)
    assert disagreement.max() > 1e-2


def read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def test_uncertainty_is_the_spread_of_the_views(tmp_path, capsys, checkpoint, two_view_net):
    """With two known views a pixel (g and g^2, the same in either pass), uncertainty.npy and
    uncertainty.sgy hold |g - g^2| / 2 (0 where the views agree, NaN on missing traces, 0 on
    dead ones) on the input's geometry and headers; lines_to_paint.csv ranks the lines by their
    summed uncertainty, spread out; summary.json names the files."""
    missing = corner_missing(SHAPE[:2], 0.2)
    dead = random_dead(SHAPE[:2], 0.1, seed=2) & ~missing
    cube, _ = write_cube(tmp_path / "cube.sgy", missing=missing, dead=dead)
    options = ("--suggest", "6", "--suggest-spacing", "3")
    status, _, err = survey(capsys, cube, tmp_path / "out", checkpoint, *options)
    assert status == 0, err
    out = tmp_path / "out"
    gray = gray_levels(cube, make_cube(SHAPE, 0)[0])
    gray[dead] = 0  # blank traces: no salt in any view
    expected = np.abs(gray - gray**2) / 2
    uncertainty = np.load(out / "uncertainty.npy")
    assert uncertainty.dtype == np.float32 and uncertainty.shape == SHAPE
    assert np.isnan(uncertainty[missing]).all() and (uncertainty[dead] == 0).all()
    present = ~missing
    np.testing.assert_allclose(uncertainty[present], expected[present], rtol=0, atol=FLOAT16_STEP)
    agree = present[..., None] & ((gray == 0) | (gray == 1))  # clipped: both views 0, or both 1
    assert agree.sum() > 10 and (uncertainty[agree] == 0).all()
    disagree = present[..., None] & (gray > 0.1) & (gray < 0.9)
    assert (uncertainty[disagree] > 0.04).all()

    assert raw_headers(out / "uncertainty.sgy") == raw_headers(cube)
    with segyio.open(str(out / "uncertainty.sgy"), ignore_geometry=True) as u:
        assert int(u.format) == 5 and u.tracecount == int(present.sum())
        for k, header in enumerate(u.header):
            inline = header[segyio.TraceField.INLINE_3D] - FIRST_INLINE
            crossline = header[segyio.TraceField.CROSSLINE_3D] - FIRST_CROSSLINE
            assert np.array_equal(u.trace[k], uncertainty[inline, crossline])

    # the lines ranked by their summed uncertainty, 6 of them, spread by 3 lines
    values = np.nan_to_num(uncertainty.astype(np.float64))
    scores = {"inline": values.sum(axis=(1, 2)), "crossline": values.sum(axis=(0, 2))}
    picks = rank_lines(scores, 6, spacing=3)
    rows = read_csv(out / "lines_to_paint.csv")
    first = {"inline": FIRST_INLINE, "crossline": FIRST_CROSSLINE}
    assert [(r["rank"], r["axis"], r["line"], r["index"]) for r in rows] == [
        (str(p.rank), p.axis, str(first[p.axis] + p.index), str(p.index)) for p in picks
    ]
    for row, pick in zip(rows, picks):
        assert float(row["score"]) == pytest.approx(pick.score, rel=1e-5)
        assert float(row["weighted_score"]) == pytest.approx(pick.weighted_score, rel=1e-5)
    best = max((s[i], a, i) for a, s in scores.items() for i in range(len(s)))
    assert (rows[0]["axis"], int(rows[0]["index"])) == best[1:]  # the most uncertain line first
    unspread = rank_lines(scores, 6, spacing=1)  # --suggest-spacing 3 changed the picks
    assert [(p.axis, p.index) for p in picks] != [(p.axis, p.index) for p in unspread]

    summary = json.loads((out / "summary.json").read_text())
    assert {"uncertainty.sgy", "uncertainty.npy", "lines_to_paint.csv"} <= set(summary["files"])
    assert set(summary["files"]) == set(OUTPUTS) - PICTURES
    assert summary["lines_to_paint"] == [f"{r['axis']} {r['line']}" for r in rows]
    live = present & ~dead
    assert summary["uncertainty"]["mean"] == pytest.approx(values.sum() / (live.sum() * SHAPE[2]))
    assert summary["uncertainty"]["max"] == pytest.approx(float(np.nanmax(uncertainty)))


def test_a_line_without_traces_is_a_row_of_missing_traces(
    checkpoint, tmp_path, capsys, gray_level_net
):
    """Inline 103 and crossline 306 hold no trace: each keeps its place, as missing traces, and
    the lines across them are predicted in place (the gap was closed up: the crosslines spliced
    inline 102 to 104, the volume one inline and one crossline short)."""
    shape = (7, 9, 40)
    missing = np.zeros(shape[:2], dtype=bool)
    missing[3, :] = missing[:, 6] = True
    cube, _ = write_cube(tmp_path / "cube.sgy", shape=shape, missing=missing)
    status, out, err = survey(capsys, cube, tmp_path / "out", checkpoint)
    assert status == 0, err
    assert "survey 7x9x40 (inlines x crosslines x samples): 7 inlines + 9 crosslines" in out
    result = tmp_path / "out"
    assert np.array_equal(np.load(result / "traces.npy") == MISSING, missing)
    probability = np.load(result / "probability.npy")
    expected = gray_levels(cube, make_cube(shape, 0)[0])
    assert np.isnan(probability[missing]).all()
    assert np.allclose(probability[~missing], expected[~missing], rtol=0, atol=FLOAT16_STEP)


def test_the_survey_scaling_leaves_dead_and_missing_traces_out(tmp_path):
    """Dead traces (all zeros) in the sample would pull the clip percentile towards 0."""
    missing = corner_missing(SHAPE[:2], 0.2)
    dead = random_dead(SHAPE[:2], 0.3, seed=2) & ~missing
    cube, _ = write_cube(tmp_path / "cube.sgy", missing=missing, dead=dead)
    amplitude, _ = make_cube(SHAPE, 0)
    live = amplitude[~missing & ~dead]  # (traces, samples): every trace, as the sample is small
    scaling = Survey(cube).scaling()
    assert (scaling.low, scaling.high) == pytest.approx(
        (scaling_for(live).low, scaling_for(live).high), rel=1e-6
    )
    assert scaling.high != pytest.approx(scaling_for(amplitude.reshape(-1, SHAPE[2])).high)


def test_irregular_geometry_and_dead_traces_are_marked_not_shifted(checkpoint, tmp_path, capsys):
    """Missing and dead traces hold no salt, `--fill-holes` included (a trace's column of
    background reaches the top and the bottom of the cube: it is no enclosed hole), and the salt
    fraction is that of the live traces' voxels."""
    missing = corner_missing(SHAPE[:2], 0.2)
    dead = random_dead(SHAPE[:2], 0.1, seed=2) & ~missing
    cube, _ = write_cube(tmp_path / "cube.sgy", missing=missing, dead=dead)
    status, _, err = survey(capsys, cube, tmp_path / "out", checkpoint, "--fill-holes")
    assert status == 0, err
    out = tmp_path / "out"
    traces = np.load(out / "traces.npy")
    assert np.array_equal(traces == MISSING, missing) and np.array_equal(traces == DEAD, dead)
    probability, mask = np.load(out / "probability.npy"), np.load(out / "mask.npy")
    assert np.isnan(probability[missing]).all() and not np.isnan(probability[~missing]).any()
    assert (probability[dead] == 0).all() and (mask[missing | dead] == 0).all()
    live = ~missing & ~dead
    summary = json.loads((out / "summary.json").read_text())
    assert summary["missing_traces"] == missing.sum() and summary["dead_traces"] == dead.sum()
    assert 0 < mask.sum() and summary["salt_fraction"] == mask.sum() / (live.sum() * SHAPE[2])
    assert raw_headers(out / "probability.sgy") == raw_headers(cube)
    with segyio.open(str(out / "probability.sgy"), ignore_geometry=True) as p:
        assert p.tracecount == int((~missing).sum())
        for k, header in enumerate(p.header):
            inline = header[segyio.TraceField.INLINE_3D] - FIRST_INLINE
            crossline = header[segyio.TraceField.CROSSLINE_3D] - FIRST_CROSSLINE
            assert np.array_equal(p.trace[k], probability[inline, crossline])


@pytest.mark.parametrize("name", ["f3.sgy", "f3-lsb.sgy"])
def test_real_f3_cube_round_trip(checkpoint, tmp_path, capsys, name):
    path = SHARED_SEISMIC / name
    if not path.is_file():
        pytest.skip(f"{path} is absent (the real SEG-Y files live in ../shared/seismic)")
    status, out, err = survey(capsys, path, tmp_path / "out", checkpoint, pictures=True)
    assert status == 0, err
    for picture in PICTURES:  # the real file's geometry drawn: line numbers, times
        assert cv2.imread(str(tmp_path / "out" / picture)).shape[1] > 1000
    # 23 x 18 x 75: smaller than a tile in every direction, predicted padded
    assert "survey 23x18x75" in out
    for result in ("probability.sgy", "mask.sgy"):
        assert raw_headers(tmp_path / "out" / result) == raw_headers(path)
    original = Survey(path)
    copy = Survey(tmp_path / "out" / "probability.sgy")
    assert copy.endian == original.endian
    assert np.array_equal(copy.trace_index, original.trace_index)
    assert np.array_equal(copy.axes.samples, original.axes.samples)
    assert copy.axes.bin_size == original.axes.bin_size
    assert original.axes.bin_size == pytest.approx((25.0, 25.0), rel=1e-3)  # F3's 25 m bins


def subprocess_survey(cube: Path, out: Path, checkpoint: Path, *options, hold=None):
    """salt.survey in a child process (its own session); with `hold=(lines, marker)`, held
    before it writes line `lines + 1` (tests/helpers/survey_hold.py)."""
    program = ["salt.survey"] if hold is None else ["tests.helpers.survey_hold", *map(str, hold)]
    command = [sys.executable, "-m", *program, str(cube), "--runs", str(checkpoint)]
    command += ["--out", str(out), "--accelerator", "cpu", *map(str, options)]
    return subprocess.Popen(
        command,
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        start_new_session=True,
    )


def finish(process: subprocess.Popen, status: int = 0) -> str:
    """The output of `process`, once it has ended with exit `status` (a hang fails the test)."""
    try:
        output = process.communicate(timeout=SUBPROCESS_TIMEOUT)[0]
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        pytest.fail(f"salt.survey still running after {SUBPROCESS_TIMEOUT} s (a hang)")
    assert process.returncode == status, output[-3000:]
    return output


def final_bytes(out: Path) -> dict[str, bytes]:
    """Every final file written, but summary.json (it holds the wall time)."""
    return {
        name: (out / name).read_bytes()
        for name in OUTPUTS
        if (out / name).exists() and name != "summary.json"
    }


def lines_written(out: Path) -> int:
    """The line files a survey into `out` has finished (its progress record)."""
    return len(list((out / WORK / "lines").glob("*/[0-9]*.npy")))


@contextmanager
def one_thread() -> Iterator[None]:
    """torch on one thread in this process, as in the child processes (OMP_NUM_THREADS=1)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def held_survey(cube: Path, out: Path, checkpoint: Path, *options, lines: int):
    """salt.survey in a child process, returned once it has predicted `lines` + 1 lines and holds
    before writing the last: `lines` are written, and it will not end before it is killed."""
    marker = out.parent / f"{out.name}.held"
    held = subprocess_survey(cube, out, checkpoint, *options, hold=(lines, marker))
    deadline = time.monotonic() + SUBPROCESS_TIMEOUT
    while not marker.exists():
        if held.poll() is not None:
            pytest.fail(f"the survey ended before it held: {held.communicate()[0][-3000:]}")
        if time.monotonic() > deadline:
            os.killpg(held.pid, signal.SIGKILL)
            pytest.fail(f"the survey did not reach line {lines + 1} in {SUBPROCESS_TIMEOUT} s")
        time.sleep(0.05)
    return held


RUNS = ("whole", "resumed")


@pytest.mark.slow
@pytest.mark.multiprocess
def test_killed_survey_resumes_to_identical_files(checkpoint, tmp_path, capsys):
    """SIGKILLed with one line left and a half-written line file beside the others, then the same
    command on two processes: one of them has no line to predict. Every final file is the
    uninterrupted run's, byte for byte: the uncertainty of both TTA views and both passes and
    the lines to paint next included."""
    shape = (10, 9, 120)
    cube, _ = write_cube(tmp_path / "cube.sgy", shape=shape, seed=5)
    options = ("--stride", "25", "--tta", "none", "hflip", "--no-pictures")
    with one_thread():  # as the child processes run: the same sums in the same order
        whole = survey(capsys, cube, tmp_path / "whole", checkpoint, *options)
    assert whole[0] == 0, whole[2]

    lines = shape[0] + shape[1] - 1
    killed = held_survey(cube, tmp_path / "resumed", checkpoint, *options, lines=lines)
    os.killpg(killed.pid, signal.SIGKILL)
    killed.wait(timeout=SUBPROCESS_TIMEOUT)
    assert lines_written(tmp_path / "resumed") == lines
    assert [p.name for p in (tmp_path / "resumed").iterdir()] == [WORK]  # no final file
    # what a kill in the middle of writing a line leaves (salt.core.files.atomic_path's name)
    (
        tmp_path / "resumed" / WORK / "lines" / "crossline" / ".000008.npy.1a2b3c4d.tmp.npy"
    ).write_bytes(b"\x93NUMPY half a line")

    resumed = subprocess_survey(cube, tmp_path / "resumed", checkpoint, *options, "--devices", 2)
    output = finish(resumed)
    assert "Starting with 2 processes" in output and "survey 10x9x120" in output
    assert final_bytes(tmp_path / "resumed") == final_bytes(tmp_path / "whole")
    assert set(final_bytes(tmp_path / "whole")) == set(OUTPUTS) - {"summary.json"} - PICTURES
    assert not (tmp_path / "resumed" / WORK).exists()
    assert np.load(tmp_path / "whole" / "uncertainty.npy").max() > 1e-2
    assert len(read_csv(tmp_path / "whole" / "lines_to_paint.csv")) == 10  # --suggest's default
    summaries = [json.loads((tmp_path / r / "summary.json").read_text()) for r in RUNS]
    assert [s["uncertainty"] for s in summaries] == [summaries[0]["uncertainty"]] * 2
    assert [s["lines_to_paint"] for s in summaries] == [summaries[0]["lines_to_paint"]] * 2


@pytest.mark.slow
def test_sigterm_stops_the_survey_after_the_line_in_progress(checkpoint, tmp_path):
    """Lightning's predict loop only notes a SIGTERM: the survey itself must stop after the
    line in progress (written: 8 lines before it, 9 after), saying so in one line, its lines
    kept and no final file written."""
    cube, _ = write_cube(tmp_path / "cube.sgy", shape=(8, 7, 40), seed=5)
    stopped = held_survey(cube, tmp_path / "out", checkpoint, "--tta", "none", lines=8)
    os.killpg(stopped.pid, signal.SIGTERM)
    output = finish(stopped, status=1)
    errors = [line for line in output.splitlines() if line.startswith("error: ")]
    assert errors == [
        "error: stopped by SIGTERM; the lines predicted so far are kept: "
        "the same command continues from them"
    ], output[-3000:]
    assert lines_written(tmp_path / "out") == 9
    assert [p.name for p in (tmp_path / "out").iterdir()] == [WORK]


@pytest.mark.slow
@pytest.mark.multiprocess
def test_two_processes_write_the_one_process_volume(checkpoint, tmp_path, capsys):
    cube, _ = write_cube(tmp_path / "cube.sgy", shape=(9, 8, 70), seed=6)
    with one_thread():  # as the child processes run: the same sums in the same order (other
        # threads' sums can round a line's float16 value the other way; |inline - crossline|
        # in uncertainty.npy shows what the passes' mean may hide)
        one = survey(capsys, cube, tmp_path / "one", checkpoint, pictures=True)
    assert one[0] == 0, one[2]
    output = finish(
        subprocess_survey(cube, tmp_path / "two", checkpoint, "--tta", "none", "--devices", "2")
    )
    assert "Starting with 2 processes" in output
    assert final_bytes(tmp_path / "two") == final_bytes(tmp_path / "one")


def test_bad_input_is_one_line_and_writes_nothing(checkpoint, tmp_path, capsys):
    cube, _ = write_cube(tmp_path / "cube.sgy", shape=(5, 6, 30))
    line = rng_line(tmp_path / "line.sgy")
    broken = tmp_path / "broken.sgy"
    broken.write_bytes(cube.read_bytes()[:5000])
    (tmp_path / "cube.npy").write_bytes(b"")
    uneven, _ = write_cube(tmp_path / "uneven.sgy", shape=(4, 6, 30))
    with segyio.open(str(uneven), "r+", ignore_geometry=True) as f:  # inlines 100, 102, 104, 105
        for trace, header in enumerate(f.header):
            header[segyio.TraceField.INLINE_3D] = (100, 102, 104, 105)[trace // 6]
    np.save(tmp_path / "truth.npy", np.zeros((5, 6, 29), np.uint8))
    (tmp_path / "file").write_text("")
    cases = [
        (line, [], "line.sgy: a 2-D line, not a 3-D survey"),
        (
            uneven,
            [],
            "uneven.sgy: inline numbers have no regular increment: most are 2 apart, but 105",
        ),
        (cube, ["--truth", tmp_path / "truth.npy"], "truth.npy: truth of shape (5, 6, 29) does"),
        (cube, ["--truth", tmp_path / "cube.npy"], "cube.npy: not a readable .npy file"),
        (cube, ["--workers", "-1"], "--workers: must be at least 0, got -1"),
        (cube, ["--suggest", "-1"], "--suggest: must be at least 0, got -1"),
        (cube, ["--suggest-spacing", "0"], "--suggest-spacing: must be at least 1, got 0"),
        (cube, ["--out", tmp_path / "file" / "out"], "cannot create the output directory"),
        (broken, [], "broken.sgy: not a readable SEG-Y file"),
        (tmp_path / "absent.sgy", [], "absent.sgy: no such file"),
        (tmp_path / "cube.npy", [], "cube.npy: expected a 3-D SEG-Y file"),
        (cube, ["--stride", "0"], "--stride must be in 1..101"),
        (cube, ["--threshold", "1.5"], "--threshold: must be in (0, 1)"),
        (cube, ["--clip-percentile", "30"], "--clip-percentile: clip percentile must be in"),
    ]
    for path, options, problem in cases:
        out = tmp_path / "out"
        status, _, err = survey(capsys, path, out, checkpoint, *options)
        assert status == 1 and err.count("\n") == 1 and err.startswith("error: "), err
        assert problem in err, err
        assert not out.exists()


def rng_line(path: Path) -> Path:
    line = np.random.default_rng(0).normal(size=(40, 64)).astype(np.float32)
    segyio.tools.from_array2D(str(path), line)
    return path


def record_lines(monkeypatch, stop_after: int | None = None) -> list[tuple[str, int]]:
    """The lines the surveys of this test write, in order, from now on; with `stop_after`, a
    survey fails (as a killed one stops) instead of writing any line after that many."""
    write = SurveyWork.write_line
    written: list[tuple[str, int]] = []

    def write_line(self, axis, index, line):
        if stop_after is not None and len(written) == stop_after:
            raise SaltError("stopped by the test")
        write(self, axis, index, line)
        written.append((axis, index))

    monkeypatch.setattr(SurveyWork, "write_line", write_line)
    return written


def test_overwrite_replaces_finished_or_other_surveys_and_continues_its_own(
    checkpoint, tmp_path, capsys, monkeypatch
):
    """`--overwrite` replaces a finished survey or an unfinished one of other settings; an
    unfinished one of its own settings (a preempted `--overwrite` run, rerun by a scheduler's
    requeue) is continued from its lines, as without it."""
    cube, _ = write_cube(tmp_path / "cube.sgy", shape=(5, 6, 30))
    out = tmp_path / "out"
    every_line = [("inline", i) for i in range(5)] + [("crossline", x) for x in range(6)]
    with monkeypatch.context() as patch:  # stopped after 4 lines, with the default stride
        record_lines(patch, stop_after=4)
        status, _, err = survey(capsys, cube, out, checkpoint)
        assert status == 1 and err == "error: stopped by the test\n", err
    # only the stride differs from the lines' settings: refused naming it, the lines kept
    status, _, err = survey(capsys, cube, out, checkpoint, "--stride", "40")
    assert status == 1 and err.count("\n") == 1, err
    assert "holds an unfinished survey predicted with other settings (stride): " in err
    assert lines_written(out) == 4

    with monkeypatch.context() as patch:  # other settings, --overwrite: started again
        written = record_lines(patch)
        status, _, err = survey(capsys, cube, out, checkpoint, "--stride", "40", "--overwrite")
        assert status == 0, err
        assert written == every_line
    finished = final_bytes(out)
    status, _, err = survey(capsys, cube, out, checkpoint, "--stride", "40")
    assert status == 1 and "holds a finished survey (summary.json): pass --overwrite" in err
    assert final_bytes(out) == finished

    # a finished survey replaced by an --overwrite run that stops after 4 lines ...
    with monkeypatch.context() as patch:
        record_lines(patch, stop_after=4)
        options = ("--stride", "40", "--overwrite")
        assert survey(capsys, cube, out, checkpoint, *options)[0] == 1
    assert not (out / "summary.json").exists() and lines_written(out) == 4
    with monkeypatch.context() as patch:  # ... and the same command goes on from those 4
        written = record_lines(patch)
        status, _, err = survey(capsys, cube, out, checkpoint, *options)
        assert status == 0, err
        assert written == every_line[4:]
    assert final_bytes(out) == finished


def test_a_full_disk_leaves_no_final_file(checkpoint, tmp_path, capsys, monkeypatch):
    cube, _ = write_cube(tmp_path / "cube.sgy", shape=(5, 6, 30))
    out = tmp_path / "out"

    def full_disk(survey, path, volume, sample_format):
        Path(path).write_bytes(b"\0" * 100)
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(survey_cli, "write_segy_like", full_disk)
    status, _, err = survey(capsys, cube, out, checkpoint)
    assert status == 1 and err.count("\n") == 1, err
    assert "probability.sgy: could not be written (No space left on device)" in err
    assert [p.name for p in out.iterdir()] == [WORK]  # the predicted lines, kept for a resume
    monkeypatch.undo()
    status, _, err = survey(capsys, cube, out, checkpoint)
    assert status == 0, err
    assert {p.name for p in out.iterdir()} == set(OUTPUTS) - PICTURES
