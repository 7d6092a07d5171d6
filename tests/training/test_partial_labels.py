"""Training on partly labelled tiles (painted lines): every loss term and the metric see the
labelled pixels only (salt.core.labels)."""

import numpy as np
import pytest
import segmentation_models_pytorch as smp
import torch
from torch import nn

from salt.core.labels import ignore_unlabelled, split_target, stack_labelled
from salt.training.losses import LovaszHinge, SaltLoss, WeightedSum

SIZE = 12


def batch(seed=0, images=4):
    generator = torch.Generator().manual_seed(seed)
    logits = torch.randn(images, 1, SIZE, SIZE, generator=generator) * 3
    truth = (torch.rand(images, 1, SIZE, SIZE, generator=generator) > 0.6).float()
    labelled = (torch.rand(images, 1, SIZE, SIZE, generator=generator) > 0.4).float()
    labelled[0] = 1  # one tile labelled everywhere
    return logits, truth, labelled


def per_image_on_labelled(criterion, logits, truth, labelled):
    """The mean over images of the criterion on each image's labelled pixels alone."""
    values = []
    for logit, target, known in zip(logits, truth, labelled):
        keep = known.flatten() > 0
        values.append(
            criterion(logit.flatten()[keep][None, None], target.flatten()[keep][None, None])
        )
    return torch.stack(values).mean()


def on_labelled(criterion, logits, truth, labelled):
    """The criterion on the batch's labelled pixels pooled (a batch-wise criterion)."""
    keep = labelled.flatten() > 0
    return criterion(logits.flatten()[keep][None, None], truth.flatten()[keep][None, None])


CRITERIA = {
    "bce": (nn.BCEWithLogitsLoss(), on_labelled),
    "bce_pos_weight": (nn.BCEWithLogitsLoss(pos_weight=torch.tensor(3.0)), on_labelled),
    "dice": (smp.losses.DiceLoss("binary"), on_labelled),
    "lovasz_plain": (LovaszHinge(activation="elu+1"), per_image_on_labelled),
    "lovasz_symmetric": (LovaszHinge(activation="elu+1", empty="symmetric"), per_image_on_labelled),
    "lovasz_relu_symmetric": (LovaszHinge(empty="symmetric"), per_image_on_labelled),
}


@pytest.mark.parametrize("name", CRITERIA)
def test_each_criterion_on_a_partly_labelled_batch_is_its_value_on_the_labelled_pixels(name):
    criterion, reference = CRITERIA[name]
    logits, truth, labelled = batch()
    got = ignore_unlabelled(criterion, logits, truth * labelled, labelled)
    expected = reference(criterion, logits, truth * labelled, labelled)
    assert torch.allclose(got, expected, atol=1e-5), (name, float(got), float(expected))


@pytest.mark.parametrize("name", CRITERIA)
def test_unlabelled_pixels_get_no_gradient_and_do_not_move_the_loss(name):
    criterion, _ = CRITERIA[name]
    logits, truth, labelled = batch(seed=1)
    logits.requires_grad_(True)
    loss = ignore_unlabelled(criterion, logits, truth * labelled, labelled)
    loss.backward()
    assert logits.grad is not None
    assert (logits.grad[labelled == 0] == 0).all()
    assert logits.grad[labelled > 0].abs().sum() > 0
    moved = logits.detach().clone()
    moved[labelled == 0] = -moved[labelled == 0] + 5  # anything at all where unlabelled
    again = ignore_unlabelled(criterion, moved, truth * labelled, labelled)
    assert torch.allclose(loss.detach(), again, atol=1e-6)


def test_a_weighted_sum_ignores_unlabelled_pixels_term_by_term():
    terms = {"bce": nn.BCEWithLogitsLoss(), "dice": smp.losses.DiceLoss("binary")}
    logits, truth, labelled = batch(seed=2)
    truth = truth * labelled
    combined = WeightedSum(terms, {"dice": 0.5})(logits, truth, labelled)
    expected = on_labelled(terms["bce"], logits, truth, labelled) + 0.5 * on_labelled(
        terms["dice"], logits, truth, labelled
    )
    assert torch.allclose(combined, expected, atol=1e-5)


def outputs_for(logits, stages=3, seed=3):
    generator = torch.Generator().manual_seed(seed)
    return {
        "mask": logits,
        "stage_masks": torch.randn(len(logits), stages, SIZE, SIZE, generator=generator),
        "salt_logit": torch.randn(len(logits), 1, generator=generator),
    }


def deep_supervision():
    return SaltLoss(
        mask_loss=LovaszHinge(activation="elu+1", empty="symmetric"),
        stage_loss=nn.BCEWithLogitsLoss(),
        warm_start_mask_loss=WeightedSum(
            {"bce": nn.BCEWithLogitsLoss(), "dice": smp.losses.DiceLoss("binary")}
        ),
        warm_start_epochs=1,
    )


@pytest.mark.parametrize("epoch", [0.0, 2.0])  # the warm start, then the hinge
def test_a_target_labelled_everywhere_trains_as_a_plain_mask(epoch):
    loss = deep_supervision()
    logits, truth, _ = batch(seed=4)
    outputs = outputs_for(logits)
    plain = loss(outputs, truth, epoch=epoch)
    two_channels = loss(outputs, torch.cat([truth, torch.ones_like(truth)], dim=1), epoch=epoch)
    assert plain.keys() == two_channels.keys()
    for key in plain:
        assert torch.allclose(plain[key], two_channels[key], atol=1e-6), key


def test_every_salt_loss_term_ignores_the_unlabelled_pixels():
    loss = deep_supervision()
    logits, truth, labelled = batch(seed=5)
    target = torch.cat([truth * labelled, labelled], dim=1)
    outputs = outputs_for(logits)
    for tensor in outputs.values():
        tensor.requires_grad_(True)
    for epoch in (0.0, 2.0):
        losses = loss(outputs, target, epoch=epoch)
        grads = torch.autograd.grad(losses["loss"], [outputs["mask"], outputs["stage_masks"]])
        unlabelled = (labelled == 0).expand_as(grads[1])
        assert (grads[0][labelled == 0] == 0).all()
        assert (grads[1][unlabelled] == 0).all()
        assert grads[1][~unlabelled].abs().sum() > 0


def test_the_classifier_learns_from_the_tiles_labelled_everywhere_only():
    loss = deep_supervision()
    logits, truth, labelled = batch(seed=6)  # tile 0 labelled everywhere, the others in part
    outputs = outputs_for(logits)
    outputs["salt_logit"].requires_grad_(True)
    losses = loss(outputs, torch.cat([truth * labelled, labelled], dim=1))
    (grad,) = torch.autograd.grad(losses["classifier"], outputs["salt_logit"])
    assert grad[0].abs().sum() > 0
    assert (grad[1:] == 0).all()
    has_salt = truth[0].amax()
    expected = nn.functional.binary_cross_entropy_with_logits(outputs["salt_logit"][0, 0], has_salt)
    assert torch.allclose(losses["classifier"], expected)


def test_stage_bce_is_the_mean_over_the_labelled_pixels_of_the_tiles_with_salt():
    loss = deep_supervision()
    logits, truth, labelled = batch(seed=7)
    truth[1] = 0  # tile 1: no salt painted, so no stage term
    outputs = outputs_for(logits)
    losses = loss(outputs, torch.cat([truth * labelled, labelled], dim=1))
    per_image = []
    for i in range(len(logits)):
        if (truth[i] * labelled[i]).amax() == 0:
            continue
        keep = (labelled[i] > 0).expand(3, -1, -1)
        stage = outputs["stage_masks"][i][keep]
        target = (truth[i] * labelled[i]).expand(3, -1, -1)[keep]
        per_image.append(nn.functional.binary_cross_entropy_with_logits(stage, target))
    assert torch.allclose(losses["stages"], torch.stack(per_image).mean(), atol=1e-6)


def test_split_target_keeps_salt_only_where_labelled_and_refuses_other_shapes():
    truth = torch.ones(2, 1, 4, 4)
    labelled = torch.zeros(2, 1, 4, 4)
    labelled[:, :, :2] = 1
    salt, known = split_target(torch.cat([truth, labelled], dim=1))
    assert known is not None and torch.equal(salt, labelled)
    assert split_target(truth)[1] is None
    with pytest.raises(ValueError, match=r"\(B, 2, H, W\), got \(2, 3, 4, 4\)"):
        split_target(torch.ones(2, 3, 4, 4))


def test_stack_labelled_puts_the_channels_last_and_clears_unlabelled_salt():
    masks = np.ones((3, 5, 5), np.uint8)
    labelled = np.zeros((3, 5, 5), np.uint8)
    labelled[:, 2:] = 1
    stacked = stack_labelled(masks, labelled)
    assert stacked.shape == (3, 5, 5, 2) and stacked.dtype == np.uint8
    assert (stacked[..., 0] == labelled).all() and (stacked[..., 1] == labelled).all()
    assert stack_labelled(masks, None) is masks
