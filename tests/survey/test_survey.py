"""salt.survey on generated 3-D SEG-Y cubes and on the real F3 crop: outputs on the input's
geometry, the merge of the passes, resume after a kill, two processes, bad input."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from salt import survey as survey_cli
from salt.data.synthetic_cube import corner_missing, make_cube, random_dead, write_segy_cube
from salt.sections import cube as cube_module
from salt.sections import segy_out
from salt.sections.cube import Survey
from salt.sections.seismic import scaling_for
from salt.sections.survey_work import DEAD, LIVE, MISSING, OUTPUTS, WORK
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
    "layout", [{"sorting": "inline", "endian": "big"}, {"sorting": "crossline", "endian": "little"}]
)
def test_outputs_lie_on_the_input_geometry(checkpoint, tmp_path, capsys, layout, monkeypatch):
    cube, truth = write_cube(tmp_path / "cube.sgy", **layout)
    if layout["sorting"] == "crossline":  # files read and written in chunks, the last one short
        for module in (cube_module, segy_out):
            monkeypatch.setattr(module, "TRACE_CHUNK", 7)  # 120 traces: 17 x 7 + 1
    np.save(tmp_path / "truth.npy", truth)
    pictures = layout["sorting"] == "inline"
    status, out, err = survey(
        capsys,
        cube,
        tmp_path / "out",
        checkpoint,
        "--truth",
        tmp_path / "truth.npy",
        pictures=pictures,
    )
    assert status == 0, err
    result = tmp_path / "out"
    written = set(OUTPUTS) - (set() if pictures else PICTURES)
    assert {p.name for p in result.iterdir()} == written
    probability, mask = np.load(result / "probability.npy"), np.load(result / "mask.npy")
    assert probability.shape == mask.shape == SHAPE and probability.dtype == np.float32
    assert np.array_equal(mask, (probability >= 0.5).astype(np.uint8))
    assert np.array_equal(np.load(result / "traces.npy"), np.full(SHAPE[:2], LIVE))
    # every header copied byte for byte, and each trace's values at its own (inline, crossline)
    assert raw_headers(result / "probability.sgy") == raw_headers(cube)
    assert raw_headers(result / "mask.sgy") == raw_headers(cube)
    endian = layout["endian"]
    with (
        segyio.open(str(result / "probability.sgy"), ignore_geometry=True, endian=endian) as p,
        segyio.open(str(result / "mask.sgy"), ignore_geometry=True, endian=endian) as m,
    ):
        assert int(p.format) == 5 and int(m.format) == 3
        for k, header in enumerate(p.header):
            inline = header[segyio.TraceField.INLINE_3D] - FIRST_INLINE
            crossline = header[segyio.TraceField.CROSSLINE_3D] - FIRST_CROSSLINE
            assert np.array_equal(p.trace[k], probability[inline, crossline])
            assert np.array_equal(m.trace[k], mask[inline, crossline])
    summary = json.loads((result / "summary.json").read_text())
    iou = np.logical_and(mask, truth).sum() / np.logical_or(mask, truth).sum()
    assert summary["iou"] == pytest.approx(iou)
    assert summary["shape"] == list(SHAPE) and summary["lines"] == {"inline": 12, "crossline": 10}
    assert "survey 12x10x60 (inlines x crosslines x samples): 12 inlines + 10 crosslines" in out


def test_the_passes_are_merged_by_their_mean(checkpoint, tmp_path, capsys):
    cube, _ = write_cube(tmp_path / "cube.sgy", shape=(6, 7, 40), seed=1)
    volumes = {}
    for axes in ("inline", "crossline", "inline,crossline"):
        out = tmp_path / axes
        status, _, err = survey(capsys, cube, out, checkpoint, "--axes", axes, "--tta", "none")
        assert status == 0, err
        volumes[axes] = np.load(out / "probability.npy")
    # the passes differ (each line is predicted as a whole section of its own direction), and
    # the default merge is their mean (float16 line files: the same values whichever run)
    assert not np.allclose(volumes["inline"], volumes["crossline"], atol=1e-3)
    expected = (volumes["inline"] + volumes["crossline"]) / 2
    assert np.array_equal(volumes["inline,crossline"], expected)


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
    missing = corner_missing(SHAPE[:2], 0.2)
    dead = random_dead(SHAPE[:2], 0.1, seed=2) & ~missing
    cube, _ = write_cube(tmp_path / "cube.sgy", missing=missing, dead=dead)
    status, _, err = survey(capsys, cube, tmp_path / "out", checkpoint)
    assert status == 0, err
    out = tmp_path / "out"
    traces = np.load(out / "traces.npy")
    assert np.array_equal(traces == MISSING, missing) and np.array_equal(traces == DEAD, dead)
    probability, mask = np.load(out / "probability.npy"), np.load(out / "mask.npy")
    assert np.isnan(probability[missing]).all() and not np.isnan(probability[~missing]).any()
    assert (probability[dead] == 0).all() and (mask[missing | dead] == 0).all()
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


def subprocess_survey(cube: Path, out: Path, checkpoint: Path, *options, env=None):
    command = [sys.executable, "-m", "salt.survey", str(cube), "--runs", str(checkpoint)]
    command += ["--out", str(out), "--accelerator", "cpu", *map(str, options)]
    return subprocess.Popen(
        command,
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1", **(env or {})},
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


def started_survey(cube: Path, out: Path, checkpoint: Path, *options, lines_done: int = 8):
    """salt.survey in a child process, returned once `lines_done` line files are written."""
    started = subprocess_survey(cube, out, checkpoint, *options)
    deadline = time.monotonic() + SUBPROCESS_TIMEOUT
    while lines_written(out) < lines_done:
        assert started.poll() is None, "the run ended before it could be killed"
        assert time.monotonic() < deadline, "no lines written"
        time.sleep(0.02)
    return started


@pytest.mark.slow
def test_killed_survey_resumes_to_identical_files(checkpoint, tmp_path):
    cube, _ = write_cube(tmp_path / "cube.sgy", shape=(16, 14, 120), seed=5)
    options = ("--stride", "25")
    finish(subprocess_survey(cube, tmp_path / "whole", checkpoint, *options))

    killed = started_survey(cube, tmp_path / "resumed", checkpoint, *options)
    os.killpg(killed.pid, signal.SIGKILL)
    killed.wait()
    done = lines_written(tmp_path / "resumed")
    assert 8 <= done < 30 and not (tmp_path / "resumed" / "summary.json").exists()
    assert not (tmp_path / "resumed" / "probability.sgy").exists()

    output = finish(subprocess_survey(cube, tmp_path / "resumed", checkpoint, *options))
    assert "survey 16x14x120" in output
    assert final_bytes(tmp_path / "resumed") == final_bytes(tmp_path / "whole")
    assert set(final_bytes(tmp_path / "whole")) == set(OUTPUTS) - {"summary.json"}
    assert not (tmp_path / "resumed" / WORK).exists()


@pytest.mark.slow
def test_sigterm_stops_the_survey_after_the_line_in_progress(checkpoint, tmp_path):
    """Lightning's predict loop only notes a SIGTERM: the survey itself must stop after the
    line in progress, saying so in one line, its lines kept and no final file written."""
    cube, _ = write_cube(tmp_path / "cube.sgy", shape=(16, 14, 120), seed=5)
    stopped = started_survey(cube, tmp_path / "out", checkpoint, "--stride", "25")
    os.killpg(stopped.pid, signal.SIGTERM)
    output = finish(stopped, status=1)
    errors = [line for line in output.splitlines() if line.startswith("error: ")]
    assert errors == [
        "error: stopped by SIGTERM; the lines predicted so far are kept: "
        "the same command continues from them"
    ], output[-3000:]
    done = lines_written(tmp_path / "out")
    assert 8 <= done < 30 and not (tmp_path / "out" / "probability.sgy").exists()


@pytest.mark.slow
@pytest.mark.multiprocess
def test_two_processes_write_the_one_process_volume(checkpoint, tmp_path, capsys):
    cube, _ = write_cube(tmp_path / "cube.sgy", shape=(9, 8, 70), seed=6)
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
    cases = [
        (line, [], "line.sgy: a 2-D line, not a 3-D survey"),
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


def test_finished_and_changed_outputs_are_refused(checkpoint, tmp_path, capsys):
    cube, _ = write_cube(tmp_path / "cube.sgy", shape=(5, 6, 30))
    out = tmp_path / "out"
    assert survey(capsys, cube, out, checkpoint, "--tta", "none")[0] == 0
    before = final_bytes(out)
    status, _, err = survey(capsys, cube, out, checkpoint, "--tta", "none")
    assert status == 1 and "holds a finished survey (summary.json): pass --overwrite" in err
    assert final_bytes(out) == before
    status, _, err = survey(capsys, cube, out, checkpoint, "--overwrite", "--tta", "none", "hflip")
    assert status == 0, err
    assert final_bytes(out) != before  # two TTA views now

    (out / "summary.json").unlink()  # an unfinished run of these settings...
    (out / WORK / "lines" / "inline").mkdir(parents=True)
    (out / WORK / "settings.json").write_text(json.dumps({"tta": ["none"]}))
    status, _, err = survey(capsys, cube, out, checkpoint, "--stride", "40")  # other settings
    assert status == 1 and "holds an unfinished survey predicted with other settings" in err


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
