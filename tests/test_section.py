"""Whole sections: reading (SEG-Y, .npy, images), 8-bit scaling, tiling and blending, the CLI."""

import cv2
import numpy as np
import pytest

from salt import section as section_cli
from salt.data.synthetic import make_section
from salt.inference.tiles import predict_ensemble
from salt.sections.seismic import read_section, scaling_for
from salt.sections.stitch import stitch, tile_origins
from tests.helpers.runs import train_smoke
from tests.helpers.tiny_net import write_checkpoint


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """A run directory whose best checkpoint is a tiny untrained SaltNet."""
    run = tmp_path_factory.mktemp("tiny") / "run"
    write_checkpoint(run / "checkpoints" / "best.ckpt")
    return run


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory, synthetic_root):
    """The smoke experiment trained briefly: a real checkpoint, not a good model."""
    run = tmp_path_factory.mktemp("section-run") / "run"
    train_smoke(synthetic_root, run, "trainer.max_epochs=3")
    return run


def stitch_all(image, predict, **options):
    """Run `stitch` on a uint8 image; return (image rows, probabilities) as emitted, stacked."""
    rows, probabilities, tops = [], [], []

    def emit(top, image_rows, probability_rows):
        tops.append(top)
        rows.append(image_rows)
        probabilities.append(probability_rows)

    stitch(image, predict, emit, **options)
    assert tops == sorted(tops) and tops[0] == 0
    return np.concatenate(rows), np.concatenate(probabilities)


def border_ratio(probabilities, stride):
    """Mean |difference| of neighbours across tile borders / elsewhere (rows and columns)."""
    ratios = []
    for grid in (probabilities, probabilities.T):
        length = grid.shape[0]
        steps = np.abs(np.diff(grid, axis=0)).mean(1)  # steps[i]: between rows i and i+1
        origins = tile_origins(length, stride)
        borders = {b - 1 for o in origins for b in (o, o + 101) if 0 < b < length}
        inside = np.ones(len(steps), bool)
        inside[sorted(borders)] = False
        ratios.append(steps[sorted(borders)].mean() / max(steps[inside].mean(), 1e-12))
    return max(ratios)


@pytest.mark.parametrize(
    "shape, stride", [((1, 7), 50), ((60, 250), 37), ((101, 101), 50), ((203, 151), 101)]
)
def test_every_pixel_covered_and_put_back_in_place(shape, stride):
    # tiles that agree everywhere (the image itself) must blend back to exactly the image
    image = np.random.default_rng(0).integers(0, 256, shape, dtype=np.uint8)
    calls = []

    def identity(tiles):
        calls.append(len(tiles))
        return tiles.astype(np.float32) / 255

    rows, probabilities = stitch_all(image, identity, stride=stride)
    assert np.array_equal(rows, image)
    assert np.allclose(probabilities, image / 255, atol=1e-6)
    assert len(calls) == len(tile_origins(shape[0], stride))  # one strip of tiles at a time


def test_blending_hides_tiles_that_disagree():
    # every tile predicts its own constant: the Hann window blends them without steps at the
    # tile borders
    image = np.zeros((400, 600), np.uint8)
    rng = np.random.default_rng(0)

    def disagreeing(tiles):
        return np.broadcast_to(rng.random((len(tiles), 1, 1)), tiles.shape).astype(np.float32)

    for stride in (37, 50, 80):
        _, smooth = stitch_all(image, disagreeing, stride=stride)
        assert np.ptp(smooth) > 0.1  # the tiles do disagree
        assert border_ratio(smooth, stride) <= 1.5


def test_views_are_blended_each_on_its_own():
    """A prediction of several views per tile, (N, V, 101, 101), blends into (V, rows, W) per
    emitted strip: each view exactly as stitching it alone would (what the survey's
    uncertainty is computed from)."""
    image = np.random.default_rng(1).integers(0, 256, (230, 170), dtype=np.uint8)
    weights = np.random.default_rng(2).random((3, 101, 101)).astype(np.float32)

    def view(tiles, k):  # views that differ from each other and from tile to tile
        return weights[k] * (tiles.astype(np.float32) / 255) ** (k + 1)

    def views(tiles):
        return np.stack([view(tiles, k) for k in range(3)], axis=1)

    emitted = []
    stitch(image, views, lambda top, rows, probabilities: emitted.append(probabilities), stride=37)
    assert all(strip.shape[0] == 3 and strip.shape[2] == 170 for strip in emitted)
    blended = np.concatenate(emitted, axis=1)
    for k in range(3):
        _, alone = stitch_all(image, lambda tiles, k=k: view(tiles, k), stride=37)
        assert np.array_equal(blended[k], alone)
    assert not np.allclose(blended[0], blended[1], atol=1e-2)


def predict_synthetic_section(run, tmp_path, height, width, seed=0):
    """salt.section's CLI on a generated section with its truth: (probabilities, mask, IoU)."""
    amplitude, truth = make_section(height, width, seed=seed, amplitudes=True)
    np.save(tmp_path / "section.npy", amplitude)
    cv2.imwrite(str(tmp_path / "truth.png"), truth * 255)
    out = tmp_path / "out"
    args = [str(tmp_path / "section.npy"), "--runs", str(run), "--out", str(out)]
    section_cli.main([*args, "--truth", str(tmp_path / "truth.png")])
    probabilities = np.load(out / "probability.npy")
    mask = cv2.imread(str(out / "mask.png"), cv2.IMREAD_UNCHANGED) > 0
    overlay = cv2.imread(str(out / "overlay.png"))
    assert probabilities.shape == mask.shape == overlay.shape[:2] == (height, width)
    assert np.array_equal(mask, probabilities >= 0.5)
    assert not list(out.glob("*.tmp*"))
    union = np.logical_or(mask, truth).sum()
    return probabilities, mask, 1.0 if union == 0 else np.logical_and(mask, truth).sum() / union


def test_section_prediction_is_seamless_and_scored(tiny_run, tmp_path, capsys):
    probabilities, _, iou = predict_synthetic_section(tiny_run, tmp_path, 200, 400)
    printed = capsys.readouterr().out
    assert f"IoU against {tmp_path / 'truth.png'}: {iou:.4f}" in printed
    ratio = border_ratio(probabilities.astype(np.float64), 50)
    with capsys.disabled():
        print(f"\nuntrained net: seam ratio {ratio:.3f}, IoU {iou:.4f}")
    assert probabilities.std() > 0  # the net's output varies: there would be seams to see
    assert ratio <= 1.5


@pytest.mark.slow
def test_trained_model_finds_the_salt_of_a_section(smoke_run, tmp_path, capsys):
    probabilities, mask, iou = predict_synthetic_section(smoke_run, tmp_path, 300, 700)
    ratio = border_ratio(probabilities.astype(np.float64), 50)
    with capsys.disabled():
        print(f"\nsmoke model: seam ratio {ratio:.3f}, IoU {iou:.4f}")
    assert ratio <= 1.5
    # predicting salt everywhere scores the coverage, 0.32 on this (seismic-style) section; the
    # smoke model scored 0.67 (2026-12-07, 2 CPU cores)
    assert iou > 0.5


def test_one_tile_section_is_the_single_tile_prediction(tiny_run, tmp_path):
    image, _ = make_section(101, 101, seed=4)
    cv2.imwrite(str(tmp_path / "tile.png"), image)
    tta = ["none", "hflip"]
    summary = section_cli.predict_section(  # float32: bf16 would blur what stitching adds
        tmp_path / "tile.png", [tiny_run], tmp_path / "out", tta=tta, precision="32-true"
    )
    assert summary["tiles"] == 1
    stitched = np.load(tmp_path / "out" / "probability.npy")
    single = predict_ensemble([tiny_run / "checkpoints" / "best.ckpt"], image[None], tta=tta)
    assert stitched.std() > 0
    assert np.abs(stitched - single.masks[0]).max() <= 1e-5


def test_runs_take_a_folder_of_runs_and_globs(tiny_run, tmp_path, capsys):
    image, _ = make_section(101, 101, seed=4)
    cv2.imwrite(str(tmp_path / "tile.png"), image)
    outputs = []
    for runs in ([str(tiny_run)], [str(tiny_run.parent)], [f"{tiny_run.parent}/ru*"]):
        out = tmp_path / f"out{len(outputs)}"
        section_cli.main([str(tmp_path / "tile.png"), "--runs", *runs, "--out", str(out)])
        outputs.append(np.load(out / "probability.npy"))
    assert all(np.array_equal(outputs[0], other) for other in outputs[1:])
    with pytest.raises(SystemExit):
        section_cli.main([str(tmp_path / "tile.png"), "--runs", f"{tmp_path}/x*", "--out", "o"])
    error = capsys.readouterr().err.strip()
    assert error == f"error: --runs: {tmp_path}/x*: the pattern matches no file or folder"


def test_scaling_to_8_bit():
    amplitude, _ = make_section(200, 300, seed=1, amplitudes=True)
    scaling = scaling_for(amplitude, 99)
    clip = np.percentile(np.abs(amplitude), 99)
    assert scaling.low == pytest.approx(-clip) and scaling.high == pytest.approx(clip)
    image = scaling(amplitude)
    # zero is mid-gray: 127.5, which float32 rounding sends to 127 or 128 depending on the clip
    assert image.dtype == np.uint8 and scaling(np.zeros(1))[0] in (127, 128)
    assert (image == 255).mean() == pytest.approx((amplitude >= clip).mean(), abs=2e-3)
    eight_bit = make_section(50, 60, seed=1)[0]
    assert np.array_equal(scaling_for(eight_bit)(eight_bit), eight_bit)
    wide = (amplitude * 1000 + 30000).astype(np.uint16)
    low, high = np.percentile(wide, [1, 99])
    assert (scaling_for(wide).low, scaling_for(wide).high) == pytest.approx((low, high))


def test_segy_round_trip_2d_and_3d(tmp_path):
    segyio = pytest.importorskip("segyio")
    rng = np.random.default_rng(0)
    line = rng.normal(size=(40, 64)).astype(np.float32)  # traces x samples
    segyio.tools.from_array2D(str(tmp_path / "line.sgy"), line)
    assert np.array_equal(read_section(tmp_path / "line.sgy"), line.T)

    spec = segyio.spec()  # a 2-D line without inline/crossline numbers in its headers
    spec.format, spec.samples, spec.tracecount = 1, list(range(64)), 40
    with segyio.create(str(tmp_path / "plain.segy"), spec) as f:
        f.trace = list(line)
    assert np.array_equal(read_section(tmp_path / "plain.segy"), line.T)

    cube = rng.normal(size=(5, 7, 32)).astype(np.float32)  # inlines x crosslines x samples
    segyio.tools.from_array3D(str(tmp_path / "cube.sgy"), cube)
    assert np.array_equal(read_section(tmp_path / "cube.sgy", inline=3), cube[2].T)
    assert np.array_equal(read_section(tmp_path / "cube.sgy", crossline=6), cube[:, 5].T)


def test_bad_input_is_one_line_naming_the_file(tiny_run, tmp_path, capsys):
    segyio = pytest.importorskip("segyio")
    rng = np.random.default_rng(0)
    segyio.tools.from_array3D(str(tmp_path / "cube.sgy"), rng.normal(size=(3, 4, 16)))
    np.save(tmp_path / "flat.npy", np.zeros(500, np.float32))
    np.save(tmp_path / "small.npy", np.zeros((20, 30), np.float32))
    (tmp_path / "broken.npy").write_bytes(b"not numpy")
    (tmp_path / "broken.png").write_bytes(b"not an image")
    (tmp_path / "notes.txt").write_text("x")
    (tmp_path / "empty.npy").write_bytes(b"")
    np.save(tmp_path / "truth.npy", np.zeros((20, 31), np.uint8))
    line = tmp_path / "line.sgy"
    spec = segyio.spec()
    spec.format, spec.samples, spec.tracecount = 1, list(range(16)), 3
    with segyio.create(str(line), spec) as f:
        f.trace = list(rng.normal(size=(3, 16)).astype(np.float32))
    cases = [
        (["missing.npy"], "missing.npy: no such file"),
        (["flat.npy"], "flat.npy: expected a 2-D section, got an array of shape (500,)"),
        (["broken.npy"], "broken.npy: not a readable .npy file"),
        (["broken.png"], "broken.png: not a readable image"),
        (["notes.txt"], "notes.txt: unsupported format '.txt'"),
        (["cube.sgy"], "cube.sgy: 3-D SEG-Y (3 inlines 1..3, 4 crosslines 1..4): pass --inline"),
        (["cube.sgy", "--inline", "7"], "cube.sgy: no inline 7 (inlines 1..3)"),
        (["line.sgy", "--crossline", "2"], "line.sgy: a 2-D SEG-Y line has no inlines"),
        (["small.npy", "--stride", "0"], "--stride must be in 1..101"),
        (["empty.npy"], "empty.npy: not a readable .npy file"),
        (
            ["small.npy", "--truth", str(tmp_path / "truth.npy")],
            "truth.npy: truth of shape (20, 31) does not match the section (20, 30)",
        ),
        (
            ["small.npy", "--out", str(tmp_path / "notes.txt" / "out")],
            "notes.txt/out: cannot create the output directory (Not a directory)",
        ),
    ]
    for args, problem in cases:
        out = tmp_path / "out"
        with pytest.raises(SystemExit) as exit:
            section_cli.main(
                [str(tmp_path / args[0]), "--runs", str(tiny_run), "--out", str(out), *args[1:]]
            )
        assert exit.value.code == 1
        message = capsys.readouterr().err.strip()
        assert message.count("\n") == 0 and message.startswith("error: "), message
        assert problem in message, message
        assert not out.exists()


def test_the_scaling_leaves_the_section_alone():
    """The percentile is taken in place, on the scaling's own copy, also of a float64 section."""
    section = np.random.default_rng(0).normal(size=(50, 40))
    before = section.copy()
    scaling = scaling_for(section)
    assert np.array_equal(section, before)
    assert scaling.high == pytest.approx(np.percentile(np.abs(before), 99.0))
