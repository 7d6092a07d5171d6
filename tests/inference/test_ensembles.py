"""Ensembles of checkpoints (`predict_ensemble`): the mean of what each checkpoint predicts alone,
the "has salt" probability averaged over the checkpoints that have the classifier head."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from salt.data.io import load_test
from salt.inference.tiles import TilePredictions, load_model, predict_ensemble

TTA = ["none", "hflip"]


@pytest.fixture(scope="module")
def images(synthetic_root) -> np.ndarray:
    return load_test(synthetic_root).images


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory) -> dict[str, Path]:
    """Three different tiny checkpoints: two with the classifier head (other seeds, other input
    normalisations), one without it."""
    from tests.helpers.tiny_net import write_checkpoint

    folder = tmp_path_factory.mktemp("ensemble")
    return {
        "a": write_checkpoint(folder / "a.ckpt", seed=0),
        "b": write_checkpoint(folder / "b.ckpt", seed=1, mean=0.5, std=0.2),
        "no_head": write_checkpoint(
            folder / "no_head.ckpt", seed=2, net_options={"classifier": False}
        ),
    }


def alone(checkpoint: Path, images: np.ndarray) -> TilePredictions:
    return predict_ensemble([checkpoint], images, tta=TTA)


def test_two_checkpoints_give_the_mean_of_their_probabilities(checkpoints, images):
    a, b = alone(checkpoints["a"], images), alone(checkpoints["b"], images)
    # the checkpoints disagree (by more than the tolerance below), so the mean is not either one
    assert np.abs(a.masks - b.masks).max() > 1e-2 and np.abs(a.salt - b.salt).max() > 1e-2

    both = predict_ensemble([checkpoints["a"], checkpoints["b"]], images, tta=TTA)
    np.testing.assert_allclose(both.masks, (a.masks + b.masks) / 2, rtol=0, atol=1e-6)
    np.testing.assert_allclose(both.salt, (a.salt + b.salt) / 2, rtol=0, atol=1e-6)
    assert both.masks.dtype == np.float32 and both.masks.shape == (len(images), 101, 101)

    # load_model results (net and input options) stand for their checkpoints
    loaded = predict_ensemble([load_model(checkpoints["a"]), checkpoints["b"]], images, tta=TTA)
    np.testing.assert_allclose(loaded.masks, both.masks, rtol=0, atol=1e-6)


def test_has_salt_is_averaged_over_the_checkpoints_with_the_classifier_head(checkpoints, images):
    a, b = alone(checkpoints["a"], images), alone(checkpoints["b"], images)
    no_head = alone(checkpoints["no_head"], images)
    assert no_head.salt is None

    all_three = predict_ensemble(
        [checkpoints["a"], checkpoints["no_head"], checkpoints["b"]], images, tta=TTA
    )
    np.testing.assert_allclose(
        all_three.masks, (a.masks + no_head.masks + b.masks) / 3, rtol=0, atol=1e-6
    )
    # two heads: their mean, not a sum over three checkpoints (which would be 2/3 of it)
    np.testing.assert_allclose(all_three.salt, (a.salt + b.salt) / 2, rtol=0, atol=1e-6)

    # the checkpoint without the head first: the one head's probabilities as they are
    one_head = predict_ensemble([checkpoints["no_head"], checkpoints["a"]], images, tta=TTA)
    np.testing.assert_allclose(one_head.salt, a.salt, rtol=0, atol=1e-6)
    np.testing.assert_allclose(one_head.masks, (no_head.masks + a.masks) / 2, rtol=0, atol=1e-6)

    assert predict_ensemble([checkpoints["no_head"]] * 2, images, tta=TTA).salt is None


def test_views_are_every_checkpoints_every_tta_view_before_the_mean(checkpoints, images):
    """`views=True`: (N, checkpoints x TTA views, 101, 101), checkpoint by checkpoint, each
    view what that checkpoint predicts with that TTA view alone; their mean is the ensemble's."""
    pair = [checkpoints["a"], checkpoints["b"]]
    views = predict_ensemble(pair, images, tta=TTA, views=True)
    assert views.masks.dtype == np.float32 and views.masks.shape == (len(images), 4, 101, 101)
    np.testing.assert_allclose(
        views.masks.mean(axis=1), predict_ensemble(pair, images, tta=TTA).masks, atol=1e-6
    )
    for k, (checkpoint, view) in enumerate(
        (c, v) for c in ("a", "b") for v in TTA
    ):  # e.g. view 1: checkpoint a's hflip
        alone = predict_ensemble([checkpoints[checkpoint]], images, tta=[view]).masks
        np.testing.assert_allclose(views.masks[:, k], alone, rtol=0, atol=1e-6)
    assert np.abs(views.masks[:, 0] - views.masks[:, 1]).max() > 1e-3  # the views differ
    assert views.salt is not None and views.salt.shape == (len(images),)
