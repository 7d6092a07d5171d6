"""python -m salt.augmentations: the spec drawn through both data paths, or the reason the device
cannot run it."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from salt.analysis.augmentations import cpu_draws, device_draws
from salt.augmentations import main, tiles_with_salt
from salt.data.device_augment import BatchAugment


def test_the_grid_has_both_paths_and_a_refused_spec_drops_the_device(
    synthetic_root, tmp_path, capsys
):
    both = tmp_path / "both.png"
    main([f"data.root={synthetic_root}", "--tiles", "2", "--draws", "3", "--out", str(both)])
    cpu_only = tmp_path / "cpu.png"
    main(
        [
            f"data.root={synthetic_root}",
            "data.train_transform.transforms=[{_target_: albumentations.GaussNoise, p: 1}]",
            "--tiles=2",
            "--draws=3",
            f"--out={cpu_only}",
        ]
    )
    err = capsys.readouterr().err
    assert "on-device path: data.train_transform: GaussNoise cannot run on the device" in err
    width_both, height = Image.open(both).size
    width_cpu, height_cpu = Image.open(cpu_only).size
    assert height == height_cpu and width_both > 1.5 * width_cpu  # 7 columns against 4


def test_the_device_column_is_the_loaders_batch_and_the_cpu_column_the_datasets():
    rng = np.random.default_rng(0)
    image = rng.integers(0, 255, (101, 101), dtype=np.uint8)
    mask = (image > 100).astype(np.uint8)
    flip = BatchAugment(hflip_p=1, affine_p=0, brightness_contrast_p=0)
    ((device_image, device_mask),) = device_draws(image, mask, flip, [7])
    ((cpu_image, cpu_mask),) = cpu_draws(image, mask, None, [0])
    assert device_image.shape == cpu_image.shape == (128, 128)
    assert np.array_equal(device_image[13:114, 13:114], image[:, ::-1])
    assert np.array_equal(cpu_image[13:114, 13:114], image)
    assert np.array_equal(device_mask[13:114, 13:114], mask[:, ::-1])


def test_rows_are_tiles_with_salt_spread_over_coverage():
    masks = np.zeros((6, 10, 10), np.uint8)
    for i, rows in enumerate([0, 5, 2, 10, 8, 1]):
        masks[i, :rows] = 1
    assert tiles_with_salt(masks, 2) == [4, 5]  # 80% and 10%: the ends; not empty nor full
    assert tiles_with_salt(masks, 9) == [1, 2, 4, 5]


@pytest.mark.parametrize("option", ["--tiles=0", "--draws=0"])
def test_a_count_below_one_is_refused(option, capsys):
    with pytest.raises(SystemExit) as stop:
        main([option])
    assert stop.value.code == 2 and "must be at least 1" in capsys.readouterr().err
