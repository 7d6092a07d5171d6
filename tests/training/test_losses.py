import functools
import math
from pathlib import Path

import pytest
import segmentation_models_pytorch as smp
import torch
from hydra.utils import instantiate

from salt.core.config import CONFIG_DIR
from salt.core.errors import ConfigError, salt_error_in
from salt.training.losses import LovaszHinge, SaltLoss, WeightedSum, lovasz_hinge
from salt.training.module import SaltModule, build_module
from tests.helpers.runs import compose_config


def brute_force_lovasz(logits, labels, activation="relu"):
    """The Lovász extension of the Jaccard loss by its definition, for one small image.

    With errors sorted in decreasing order e_1 >= ... >= e_p and the sets S_i of the i
    largest-error pixels, the extension is sum_i h(e_i) * (J(S_i) - J(S_{i-1})), where
    J(S) = 1 - |gt minus S| / |gt union S| is the Jaccard loss of mispredicting S.
    """
    logits, labels = logits.flatten().tolist(), labels.flatten().tolist()
    errors = [1 - z * (2 * y - 1) for z, y in zip(logits, labels)]
    order = sorted(range(len(errors)), key=lambda i: -errors[i])
    positives = {i for i, y in enumerate(labels) if y == 1}

    def jaccard(mispredicted):
        intersection = len(positives - mispredicted)
        union = len(positives | mispredicted)
        return 1 - intersection / union if union else 0.0

    def hinge(e):
        return max(e, 0.0) if activation == "relu" else (e if e > 0 else math.exp(e) - 1) + 1

    total, previous = 0.0, 0.0
    for i in range(len(order)):
        current = jaccard(set(order[: i + 1]))
        total += hinge(errors[order[i]]) * (current - previous)
        previous = current
    return total


@pytest.mark.parametrize("activation", ["relu", "elu+1"])
def test_lovasz_matches_brute_force(activation):
    generator = torch.Generator().manual_seed(0)
    for size in (2, 3):
        for _ in range(20):
            logits = torch.randn(1, 1, size, size, generator=generator) * 2
            labels = (torch.rand(1, 1, size, size, generator=generator) > 0.5).float()
            expected = brute_force_lovasz(logits, labels, activation)
            assert lovasz_hinge(logits, labels, activation=activation).item() == pytest.approx(
                expected, abs=1e-6
            )


def test_lovasz_hand_case():
    # two pixels, truth [1, 0], logits [2, 1]: errors [-1, 2]; sorted: pixel 2 (error 2) first
    # J({2}) = 1 - 1/2 = 0.5, J({1, 2}) = 1: loss = relu(2) * 0.5 + relu(-1) * 0.5 = 1.0
    loss = lovasz_hinge(torch.tensor([[2.0, 1.0]]), torch.tensor([[1.0, 0.0]]))
    assert loss.item() == pytest.approx(1.0)
    elu = lovasz_hinge(torch.tensor([[2.0, 1.0]]), torch.tensor([[1.0, 0.0]]), activation="elu+1")
    assert elu.item() == pytest.approx(3 * 0.5 + math.exp(-1) * 0.5)


def test_relu_lovasz_matches_smp_per_image_and_per_batch():
    logits = torch.randn(4, 1, 16, 16)
    labels = (torch.rand(4, 1, 16, 16) > 0.6).float()
    labels[1] = 0  # an empty image
    for per_image in (True, False):
        ours = lovasz_hinge(logits, labels, per_image=per_image)
        theirs = smp.losses.LovaszLoss("binary", per_image=per_image)(logits, labels)
        assert ours.item() == pytest.approx(theirs.item(), abs=1e-5)


def test_bce_and_dice_by_hand():
    logits, target = torch.tensor([[[[0.0, 2.0]]]]), torch.tensor([[[[1.0, 0.0]]]])
    bce = -(math.log(0.5) + math.log(1 - 1 / (1 + math.exp(-2)))) / 2
    dice_terms = WeightedSum(
        {"bce": torch.nn.BCEWithLogitsLoss(), "dice": smp.losses.DiceLoss("binary")},
        {"bce": 2.0, "dice": 1.0},
    )
    p = torch.sigmoid(logits).flatten()
    dice = 1 - (2 * (p * target.flatten()).sum()) / (p.sum() + target.sum())
    assert dice_terms(logits, target).item() == pytest.approx(2 * bce + dice.item(), abs=1e-4)
    with pytest.raises(ValueError, match="unknown loss terms"):
        WeightedSum({"bce": torch.nn.BCEWithLogitsLoss()}, {"dice": 1.0})


def test_deep_supervision_ignores_empty_images_and_uses_has_salt_targets():
    target = torch.zeros(2, 1, 8, 8)
    target[0, :, 2:5, 2:5] = 1  # image 0 has salt, image 1 is empty
    outputs = {
        "mask": torch.randn(2, 1, 8, 8),
        "stage_masks": torch.randn(2, 3, 8, 8),
        "salt_logit": torch.tensor([[1.5], [-0.5]]),
    }
    criterion = SaltLoss(
        LovaszHinge(), torch.nn.BCEWithLogitsLoss(), stage_weight=0.1, classifier_weight=0.05
    )
    losses = criterion(outputs, target)
    changed = dict(outputs, stage_masks=outputs["stage_masks"].clone())
    changed["stage_masks"][1] = 100.0  # the empty image's stage maps
    assert criterion(changed, target)["stages"].item() == pytest.approx(losses["stages"].item())
    expected_stages = (
        sum(
            torch.nn.functional.binary_cross_entropy_with_logits(
                outputs["stage_masks"][:1, s : s + 1], target[:1]
            )
            for s in range(3)
        )
        / 3
    )
    assert losses["stages"].item() == pytest.approx(expected_stages.item(), abs=1e-6)
    expected_classifier = (
        -math.log(torch.sigmoid(torch.tensor(1.5)).item())
        - math.log(1 - torch.sigmoid(torch.tensor(-0.5)).item())
    ) / 2
    assert losses["classifier"].item() == pytest.approx(expected_classifier, abs=1e-6)
    assert losses["loss"].item() == pytest.approx(
        (losses["mask"] + 0.1 * losses["stages"] + 0.05 * losses["classifier"]).item(), abs=1e-6
    )
    all_empty = criterion(outputs, torch.zeros_like(target))
    assert all_empty["stages"].item() == 0.0


def test_gradients_flow_to_every_output():
    outputs = {
        k: torch.randn(*s, requires_grad=True)
        for k, s in {
            "mask": (2, 1, 8, 8),
            "stage_masks": (2, 2, 8, 8),
            "salt_logit": (2, 1),
        }.items()
    }
    target = (torch.rand(2, 1, 8, 8) > 0.5).float()
    SaltLoss(LovaszHinge(activation="elu+1"))(outputs, target)["loss"].backward()
    assert all(o.grad is not None and o.grad.abs().sum() > 0 for o in outputs.values())


LOSS_CONFIGS = sorted(p.stem for p in Path(CONFIG_DIR, "loss").glob("*.yaml"))
EXPERIMENTS = sorted(p.stem for p in Path(CONFIG_DIR, "experiment").glob("*.yaml"))


@pytest.mark.parametrize("name", LOSS_CONFIGS)
def test_loss_configs_instantiate_and_run(name):
    criterion = instantiate(compose_config("train", [f"loss={name}"]).loss)
    outputs = {
        "mask": torch.randn(2, 1, 8, 8),
        "stage_masks": torch.randn(2, 2, 8, 8),
        "salt_logit": torch.randn(2, 1),
    }
    losses = criterion(outputs, (torch.rand(2, 1, 8, 8) > 0.5).float())
    assert torch.isfinite(losses["loss"]) and {"mask", "stages", "classifier"} <= set(losses)


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_every_loss_config_swaps_whole_into_every_experiment(experiment):
    """No experiment writes into the loss group: `loss=NAME` needs no other key to work."""
    for name in LOSS_CONFIGS:
        cfg = compose_config("train", [f"experiment={experiment}", f"loss={name}"])
        expected = compose_config("train", [f"loss={name}"]).loss
        assert cfg.loss == expected, f"experiment={experiment} changes loss={name}"
        instantiate(cfg.loss)


def test_a_weighted_sum_mask_loss_reports_each_term_for_the_logs():
    bce, dice = torch.nn.BCEWithLogitsLoss(), smp.losses.DiceLoss("binary")
    loss = SaltLoss(WeightedSum({"bce": bce, "dice": dice}, {"bce": 2.0}))
    logits = torch.randn(2, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    target = (torch.rand(2, 1, 8, 8, generator=torch.Generator().manual_seed(1)) > 0.5).float()
    losses = loss({"mask": logits}, target)
    assert set(losses) == {"mask", "mask/bce", "mask/dice", "loss"}
    torch.testing.assert_close(losses["mask/bce"], bce(logits, target))
    torch.testing.assert_close(losses["mask/dice"], dice(logits, target))
    torch.testing.assert_close(losses["mask"], 2 * losses["mask/bce"] + losses["mask/dice"])
    assert set(SaltLoss(LovaszHinge())({"mask": logits}, target)) == {"mask", "loss"}


class TakesEpoch(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.epochs: list = []

    def forward(self, outputs, target, epoch=None):
        self.epochs.append(epoch)
        return {"loss": outputs["mask"].sum() * 0}


class NoEpoch(torch.nn.Module):
    def forward(self, outputs, target):
        return {"loss": outputs["mask"].sum() * 0}


def test_the_fractional_epoch_goes_to_every_loss_whose_forward_takes_it():
    """Whatever its attributes: a loss with no warm start gets it too, one without the
    argument is called without it."""
    optimizer = functools.partial(torch.optim.SGD, lr=0.1)
    outputs, target = {"mask": torch.zeros(1, 1, 4, 4)}, torch.zeros(1, 1, 4, 4)
    takes = TakesEpoch()
    SaltModule(torch.nn.Identity(), takes, optimizer)._criterion(outputs, target, 1.25)
    assert takes.epochs == [1.25]
    assert SaltModule(torch.nn.Identity(), NoEpoch(), optimizer)._criterion(outputs, target, 2.0)


def test_unknown_activation():
    with pytest.raises(ValueError, match="activation must be one of"):
        LovaszHinge(activation="softplus")


class Recording(torch.nn.Module):
    """A criterion that returns a constant and counts its calls."""

    def __init__(self, value: float):
        super().__init__()
        self.value, self.calls = value, 0

    def forward(self, logits, target):
        self.calls += 1
        return logits.sum() * 0 + self.value


def test_warm_start_uses_its_criterion_before_the_switch_epoch_and_the_main_one_after():
    warm, main = Recording(1.0), Recording(2.0)
    loss = SaltLoss(main, warm_start_mask_loss=warm, warm_start_epochs=1.5)
    outputs, target = {"mask": torch.zeros(2, 1, 4, 4)}, torch.zeros(2, 1, 4, 4)
    assert [loss(outputs, target, epoch=e)["mask"].item() for e in (0.0, 1.49, 1.5, 7)] == [
        1.0,
        1.0,
        2.0,
        2.0,
    ]
    assert loss(outputs, target)["mask"].item() == 2.0  # no epoch (inference): the main one
    with pytest.raises(
        ValueError, match="^loss.warm_start_epochs: .* needs a warm_start_mask_loss"
    ):
        SaltLoss(main, warm_start_epochs=2)


def test_training_passes_the_fractional_epoch_to_the_warm_start(train_config, monkeypatch):
    """A real fit of 2 epochs of 4 batches: the criterion sees the fractional epoch in training
    and the epoch just trained in validation, so the switch happens where it is configured."""
    from salt.train import train

    seen = []
    original = SaltLoss.mask_criterion

    def recording(self, epoch=None):
        seen.append(epoch)
        return original(self, epoch)

    monkeypatch.setattr(SaltLoss, "mask_criterion", recording)
    cfg = train_config(
        "loss=lovasz",
        "loss.warm_start_epochs=1",
        "trainer.max_epochs=2",
        "trainer.limit_train_batches=4",
        "trainer.limit_val_batches=1",
        "data.batch_size=4",
        "oof=false",
        "plots=false",
    )
    train(cfg)
    assert seen == [0, 0.25, 0.5, 0.75, 0.0, 1, 1.25, 1.5, 1.75, 1.0]


def empty_tile_gradient(remedy: str) -> torch.Tensor:
    logits = torch.randn(1, 1, 8, 8, generator=torch.Generator().manual_seed(0)).requires_grad_()
    LovaszHinge(per_image=True, activation="elu+1", empty=remedy)(
        logits, torch.zeros(1, 1, 8, 8)
    ).backward()
    return logits.grad


def test_plain_lovasz_on_an_empty_tile_pushes_one_pixel_and_symmetric_pushes_all():
    assert int((empty_tile_gradient("plain") != 0).sum()) == 1
    assert int((empty_tile_gradient("symmetric") != 0).sum()) == 64
    assert int((empty_tile_gradient("skip") != 0).sum()) == 0


def test_skip_remedy_is_the_mean_hinge_over_the_tiles_with_salt():
    generator = torch.Generator().manual_seed(1)
    logits = torch.randn(3, 1, 6, 6, generator=generator)
    target = torch.zeros(3, 1, 6, 6)
    target[0, :, :3] = 1
    target[2, :, 2:5, 1:4] = 1
    per_image = lovasz_hinge(logits, target, activation="elu+1", reduction="none")
    skip = LovaszHinge(activation="elu+1", empty="skip")(logits, target)
    assert skip.item() == pytest.approx(((per_image[0] + per_image[2]) / 2).item())
    symmetric = LovaszHinge(activation="elu+1", empty="symmetric")(logits, target)
    flipped = lovasz_hinge(-logits, 1 - target, activation="elu+1")
    assert symmetric.item() == pytest.approx((0.5 * (per_image.mean() + flipped)).item(), abs=1e-6)
    with pytest.raises(ValueError, match="empty must be one of"):
        LovaszHinge(empty="drop")


def test_skip_alone_as_the_mask_loss_is_refused_naming_the_key_and_the_remedy():
    """Run F's r34skip arm (BENCHMARKS.md): with nothing else on the fused mask, the tiles without
    salt got no mask loss and the net filled them (validation 0.36). lovasz_salt_bce pairs it."""
    with pytest.raises(ConfigError, match=r"^loss.mask_loss.empty: skip alone .*lovasz_salt_bce"):
        SaltLoss(LovaszHinge(empty="skip"))
    SaltLoss(
        WeightedSum({"lovasz": LovaszHinge(empty="skip"), "bce": torch.nn.BCEWithLogitsLoss()})
    )
    assert isinstance(instantiate(compose_config("train", ["loss=lovasz_salt_bce"]).loss), SaltLoss)
    overrides = ["experiment=smoke", "loss=deep_supervision", "loss.mask_loss.empty=skip"]
    with pytest.raises(Exception) as raised:  # noqa: PT011 (Hydra wraps it; the cause is ours)
        build_module(compose_config("train", overrides))
    error = salt_error_in(raised.value)
    assert isinstance(error, ConfigError) and error.key == "loss.mask_loss.empty"
