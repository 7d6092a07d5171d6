import json
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest

from salt.core.errors import DataError
from salt.data.io import load_test, load_train
from salt.data.rle import rle_decode
from salt.data.synthetic import generate, generate_into_new_folder, make_section
from tests.helpers.runs import run_module


def test_layout_formats_and_quirks(tmp_path):
    root = generate(tmp_path / "a", n_train=80, n_test=10, seed=3)
    train, test = load_train(root), load_test(root)
    assert len(train) == 80 and len(test) == 10
    assert not set(train.ids) & set(test.ids)
    assert all(len(i) == 10 and int(i, 16) >= 0 for i in train.ids + test.ids)
    table = pd.read_csv(root / "train.csv", dtype=str, keep_default_na=False)
    for tile_id, rle in zip(table["id"], table["rle_mask"]):
        image = cv2.imread(str(root / "train/images" / f"{tile_id}.png"), cv2.IMREAD_UNCHANGED)
        assert image.shape == (101, 101, 3) and (image == image[..., :1]).all()
        mask = cv2.imread(str(root / "train/masks" / f"{tile_id}.png"), cv2.IMREAD_UNCHANGED)
        if rle:
            assert mask.dtype == np.uint16 and set(np.unique(mask)) == {0, 65535}
        else:
            assert mask.dtype == np.uint8 and not mask.any()
        assert np.array_equal(rle_decode(rle), (mask > 0).astype(np.uint8))
    depths = pd.read_csv(root / "depths.csv", dtype={"id": str})
    assert set(depths["id"]) == set(train.ids + test.ids) and depths["z"].between(50, 960).all()


def test_same_seed_same_bytes_other_seed_other_images(tmp_path):
    first, second = generate(tmp_path / "a", 20, 5, seed=1), generate(tmp_path / "b", 20, 5, seed=1)
    files = sorted(p.relative_to(first) for p in first.rglob("*") if p.is_file())
    assert len(files) == 20 * 2 + 5 + 4  # images, masks, test images; 3 csv, synthetic.json
    for name in files:
        assert (first / name).read_bytes() == (second / name).read_bytes(), name
    other = load_train(generate(tmp_path / "c", 20, 5, seed=2))
    assert not np.array_equal(other.images, load_train(first).images)


def test_coverage_mix_is_like_the_competition(tmp_path):
    # 39% empty in the real data, almost none fully salt, coverage spread over the rest
    masks = load_train(generate(tmp_path, n_train=400, n_test=1, seed=0)).masks
    coverage = masks.reshape(len(masks), -1).mean(1)
    assert 0.3 <= (coverage == 0).mean() <= 0.5
    assert (coverage > 0.99).mean() <= 0.02
    deciles = np.histogram(coverage[coverage > 0], bins=10, range=(0, 1))[0]
    assert (deciles > 0).sum() >= 8


def test_blank_images_have_empty_masks(tmp_path):
    train = load_train(generate(tmp_path, n_train=400, n_test=1, seed=0))
    blank = train.images.reshape(len(train), -1).std(1) == 0
    assert 1 <= blank.sum() <= 20
    assert not train.masks[blank].any()


def test_section():
    image, mask = make_section(300, 700, seed=0)
    assert image.shape == mask.shape == (300, 700) and image.dtype == np.uint8
    assert 0.05 < mask.mean() < 0.5


def test_cli(tmp_path):
    ok = run_module(
        "salt.data.synthetic", tmp_path / "d", "--train", "5", "--test", "2", "--section", "150x300"
    )
    assert ok.returncode == 0, ok.stderr
    assert (tmp_path / "d" / "train.csv").is_file() and (tmp_path / "d" / "section.png").is_file()
    bad = run_module("salt.data.synthetic", tmp_path / "e", "--train", "0")
    assert bad.returncode != 0 and "must be at least 1" in bad.stderr
    assert not (tmp_path / "e").exists()


def test_section_only_cli_writes_amplitudes_image_and_truth(tmp_path):
    out = tmp_path / "s"
    result = run_module(
        "salt.data.synthetic", out, "--section", "120x250", "--section-only", "--seed", "5"
    )
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in out.iterdir()) == [
        "section.npy",
        "section.png",
        "section_mask.png",
    ]
    amplitude = np.load(out / "section.npy")
    image, mask = make_section(120, 250, seed=5)
    assert amplitude.dtype == np.float32 and amplitude.shape == (120, 250)
    assert abs(amplitude.mean()) < 0.1 and abs(amplitude.std() - 1) < 0.01
    assert np.array_equal(cv2.imread(str(out / "section.png"), cv2.IMREAD_GRAYSCALE), image)
    assert np.array_equal(
        cv2.imread(str(out / "section_mask.png"), cv2.IMREAD_UNCHANGED), mask * 255
    )
    assert np.corrcoef(amplitude.ravel(), image.ravel().astype(np.float32))[0, 1] > 0.95


def test_generated_data_goes_only_into_a_new_or_empty_folder(tmp_path, monkeypatch):
    new = generate_into_new_folder(tmp_path / "new" / "syn", n_train=6, n_test=2, seed=0)
    assert len(load_train(new)) == 6
    (tmp_path / "empty").mkdir()
    assert len(load_train(generate_into_new_folder(tmp_path / "empty", n_train=6, n_test=2))) == 6
    before = (new / "train.csv").stat().st_mtime_ns
    # the same settings (the default style spelt out or not): the data set is reused as it is
    assert generate_into_new_folder(new, n_train=6, n_test=2, seed=0, style="seismic") == new
    assert (new / "train.csv").stat().st_mtime_ns == before

    other = tmp_path / "download"
    (other / "train").mkdir(parents=True)
    (other / "depths.csv").write_text("id,z\n")
    with pytest.raises(DataError) as error:
        generate_into_new_folder(other, n_train=6, n_test=2)
    assert str(error.value).startswith(
        f"{other}: not empty and has no train.csv: refusing to generate synthetic data into it"
    )
    assert sorted(p.name for p in other.rglob("*")) == ["depths.csv", "train"]

    def interrupted(out, **options):
        (Path(out) / "train").mkdir()
        raise KeyboardInterrupt

    monkeypatch.setattr("salt.data.synthetic.generate", interrupted)
    with pytest.raises(KeyboardInterrupt):
        generate_into_new_folder(tmp_path / "cut" / "syn", n_train=6)
    assert list((tmp_path / "cut").iterdir()) == []  # neither the folder nor a staging one


def test_a_generated_set_is_reused_only_for_the_settings_it_records(tmp_path):
    """A folder generated with one style (or count, or seed) is never reused for another: its
    synthetic.json records what it was generated with, and data.synthetic asking for anything
    else is refused in one line naming the folder and the keys; a data set without the record
    (generated before it existed, or real data) is refused likewise."""
    old = generate(tmp_path / "old", n_train=6, n_test=2, seed=0, style="speckle")
    assert json.loads((old / "synthetic.json").read_text()) == {
        "n_train": 6,
        "n_test": 2,
        "seed": 0,
        "style": "speckle",
        "frequency": None,
        "noise": None,
        "polarity": None,
        "gain": None,
    }
    files = sorted(p.stat().st_mtime_ns for p in old.rglob("*"))
    with pytest.raises(DataError) as error:
        generate_into_new_folder(old, n_train=6, n_test=2, seed=0)  # the default: seismic
    assert str(error.value) == (
        f"{old}: generated with style=speckle (synthetic.json), but data.synthetic asks for "
        "style=seismic: pass data.root=DIR of a new or empty folder to generate them, or "
        "data.synthetic=null to read this one as it is"
    )
    with pytest.raises(
        DataError,
        match=r"generated with n_train=6, seed=0 \(synthetic.json\), "
        r"but data.synthetic asks for n_train=9, seed=1: ",
    ):
        generate_into_new_folder(old, n_train=9, n_test=2, seed=1, style="speckle")
    assert generate_into_new_folder(old, n_train=6, n_test=2, seed=0, style="speckle") == old
    assert sorted(p.stat().st_mtime_ns for p in old.rglob("*")) == files  # nothing rewritten

    (old / "synthetic.json").unlink()  # a set generated before the record, or a real one
    with pytest.raises(DataError) as error:
        generate_into_new_folder(old, n_train=6, n_test=2, seed=0, style="speckle")
    assert str(error.value).startswith(
        f"{old}: holds a data set but no synthetic.json recording the settings it was generated "
        "with (generated before salt recorded them, or not generated), so data.synthetic cannot "
        "reuse it: "
    )
    (old / "synthetic.json").write_text("[1, 2]")
    with pytest.raises(DataError, match=r"synthetic.json: not a settings record \(not a JSON"):
        generate_into_new_folder(old, n_train=6, n_test=2, seed=0, style="speckle")
