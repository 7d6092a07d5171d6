"""SaltNet's variants, decoder, FLOPs and encoder weights (the one tester over every model salt
offers, smp's SegmentationModel contract, is tests/models/test_contract.py)."""

import itertools
import time
from pathlib import Path

import pytest
import segmentation_models_pytorch as smp
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf
from segmentation_models_pytorch.decoders.unet.decoder import UnetDecoder, UnetDecoderBlock
from torch.utils.flop_counter import FlopCounterMode

from salt.core.config import CONFIG_DIR
from salt.core.errors import SaltError
from salt.models import SaltNet, SeedUNet, SmpNet
from salt.models.encoders import build_encoder
from salt.training.losses import SaltLoss
from tests.helpers.runs import compose_config

VARIANTS = list(
    itertools.product([True, False], repeat=4)
)  # scse, hypercolumn, deep sup., classifier
ENCODERS = ["resnet18", "efficientnet-b0"]


@pytest.mark.parametrize("encoder", ENCODERS)
@pytest.mark.parametrize("scse, hypercolumn, deep_supervision, classifier", VARIANTS)
def test_variant_shapes_and_one_training_step(
    encoder, scse, hypercolumn, deep_supervision, classifier
):
    torch.manual_seed(0)
    net = SaltNet(
        encoder_name=encoder,
        encoder_depth=3,
        decoder_channels=[32, 16, 8],
        scse=scse,
        hypercolumn=hypercolumn,
        deep_supervision=deep_supervision,
        classifier=classifier,
        dropout=0.1,
        head_channels=8,
    )
    images = torch.randn(2, 1, 128, 128)
    target = torch.zeros(2, 1, 128, 128)
    target[0, :, 40:90, 30:80] = 1  # one image with salt, one empty
    outputs = net(images)
    expected = (
        {"mask"}
        | ({"stage_masks"} if deep_supervision else set())
        | ({"salt_logit"} if classifier else set())
    )
    assert set(outputs) == expected
    assert outputs["mask"].shape == (2, 1, 128, 128)
    if deep_supervision:
        assert outputs["stage_masks"].shape == (2, 3, 128, 128)
    if classifier:
        assert outputs["salt_logit"].shape == (2, 1)
    assert (len([m for m in net.modules() if type(m).__name__ == "SCSEModule"]) > 0) == scse

    before = {name: p.detach().clone() for name, p in net.named_parameters()}
    losses = SaltLoss(torch.nn.BCEWithLogitsLoss())(outputs, target)
    losses["loss"].backward()
    torch.optim.SGD(net.parameters(), lr=0.1).step()
    assert torch.isfinite(losses["loss"])
    heads = ("decoder.", "segmentation_head.", "stage_heads.", "classification_head.")
    # every decoder and head weight learns from one step, and so does the encoder (whose stages
    # deeper than encoder_depth may exist in the module without being used)
    for name, param in net.named_parameters():
        if name.startswith(heads) and name.endswith("weight") and ".attention." not in name:
            assert not torch.equal(before[name], param), name
    changed = [
        name
        for name, p in net.named_parameters()
        if name.startswith("encoder.") and not torch.equal(before[name], p)
    ]
    assert changed


def test_the_decoder_is_smps_returning_every_stage():
    """smp's UnetDecoder and blocks: its own forward gives the last of the stages salt's gives;
    salt's single SCSE per block squeezes an 8-channel stage to 4 channels (smp's 16x: none)."""
    net = SaltNet("resnet18", encoder_depth=3, decoder_channels=[32, 16, 8], center=True).eval()
    assert isinstance(net.decoder, UnetDecoder)
    assert all(type(block) is UnetDecoderBlock for block in net.decoder.blocks)
    with torch.no_grad():
        features = net.encoder(torch.randn(2, 1, 64, 64))
        stages = net.decoder(features)
        assert [s.shape[1:] for s in stages] == [(32, 16, 16), (16, 32, 32), (8, 64, 64)]
        assert torch.equal(UnetDecoder.forward(net.decoder, features), stages[-1])
    last = net.decoder.blocks[-1]
    assert isinstance(last.attention1.attention, torch.nn.Identity)
    assert last.attention2.attention.cSE[1].out_channels == 4


def test_decoder_channels_must_match_the_encoder_depth():
    with pytest.raises(SaltError, match=r"model.decoder_channels needs 3 entries.*got 2"):
        SaltNet("resnet18", encoder_depth=3, decoder_channels=[16, 8])


def first_conv(net):
    return next(m for m in net.segmentation_head.modules() if isinstance(m, torch.nn.Conv2d))


def test_hypercolumn_feeds_every_stage_to_the_head():
    def net(**options):
        return SaltNet("resnet18", encoder_depth=3, decoder_channels=[32, 16, 8], **options)

    assert first_conv(net(hypercolumn=True, hypercolumn_channels=None)).in_channels == 32 + 16 + 8
    assert first_conv(net(hypercolumn=False)).in_channels == 8
    slim = net(hypercolumn=True, hypercolumn_channels=4)
    assert first_conv(slim).in_channels == 3 * 4
    assert [r[0].in_channels for r in slim.hypercolumn.reducers] == [32, 16, 8]
    context = net(hypercolumn=True, hypercolumn_channels=4, image_context=5)
    assert first_conv(context).in_channels == 3 * 4 + 5
    # the image-level context differs between images and is the same at every pixel
    features = context.encoder(torch.randn(2, 1, 128, 128))
    broadcast = context.image_context(features[-1], (128, 128))
    assert broadcast.shape == (2, 5, 128, 128)
    assert torch.equal(broadcast[:, :, 0, 0], broadcast[:, :, 77, 3])


def forward_gflops(net: torch.nn.Module) -> float:
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        net.eval()(torch.zeros(1, 1, 128, 128))
    return counter.get_total_flops() / 1e9


def test_resnet34_experiment_costs_at_most_a_quarter_more_than_a_plain_unet():
    """The hypercolumn at a fair price: the net experiment=resnet34 builds against
    smp.Unet("resnet34"), forward FLOPs at 128x128 (the wide hypercolumn is 3.4x)."""
    cfg = compose_config("train", ["experiment=resnet34", "model.encoder_weights=null"])
    flagship = forward_gflops(instantiate(cfg.model))
    unet = forward_gflops(smp.Unet("resnet34", encoder_weights=None, in_channels=1))
    assert flagship <= 1.25 * unet, (flagship, unet)
    wide = instantiate(cfg.model, hypercolumn_channels=None, head_channels=64)
    assert forward_gflops(wide) > 3 * unet


def test_head_dropout_comes_after_the_batchnorm():
    """BatchNorm statistics are gathered as inference sees its input: without dropout."""
    head = list(
        SaltNet(
            "resnet18", encoder_depth=3, decoder_channels=[8, 8, 8], dropout=0.5
        ).segmentation_head.modules()
    )
    kinds = [type(m).__name__ for m in head]
    assert kinds.index("BatchNorm2d") < kinds.index("Dropout2d")


def test_seed_unet_trains_every_weight_and_has_no_pretrained_weights():
    torch.manual_seed(0)
    net = SeedUNet(base_filters=4, depth=3)
    outputs = net(torch.randn(2, 1, 128, 128))
    loss = SaltLoss(torch.nn.BCEWithLogitsLoss())(outputs, torch.ones(2, 1, 128, 128))["loss"]
    loss.backward()
    assert all(p.grad is not None for p in net.parameters())
    with pytest.raises(SaltError, match="pass model.encoder_weights=null"):
        SeedUNet(encoder_weights="imagenet")


def test_local_weights_file_loads_and_adapts_to_one_channel(tmp_path):
    torch.manual_seed(1)
    three = build_encoder("resnet18", None, in_channels=3, depth=5)
    torch.save(three.state_dict(), tmp_path / "encoder.pth")
    net = SaltNet("resnet18", encoder_weights=str(tmp_path / "encoder.pth"), in_channels=3)
    for key, value in three.state_dict().items():
        assert torch.equal(net.encoder.state_dict()[key], value), key
    one = SaltNet("resnet18", encoder_weights=str(tmp_path / "encoder.pth"), in_channels=1)
    assert torch.allclose(one.encoder.conv1.weight, three.conv1.weight.sum(1, keepdim=True))
    assert torch.equal(one.encoder.layer1[0].conv1.weight, three.layer1[0].conv1.weight)
    # a salt checkpoint's state_dict (net.encoder.* keys) works too
    torch.save(
        {"state_dict": {f"net.encoder.{k}": v for k, v in one.encoder.state_dict().items()}},
        tmp_path / "run.ckpt",
    )
    again = SaltNet("resnet18", encoder_weights=str(tmp_path / "run.ckpt"))
    assert torch.equal(again.encoder.conv1.weight, one.encoder.conv1.weight)


def test_missing_or_foreign_weights_file(tmp_path):
    with pytest.raises(SaltError, match="encoder weights file not found"):
        SaltNet("resnet18", encoder_weights=str(tmp_path / "nowhere.pth"))
    torch.save(build_encoder("resnet34", None, 3, 5).state_dict(), tmp_path / "r34.pth")
    with pytest.raises(SaltError, match="weights do not fit encoder resnet18"):
        SaltNet("resnet18", encoder_weights=str(tmp_path / "r34.pth"))


def test_imagenet_without_network_fails_fast_naming_the_fix():
    started = time.time()
    try:
        SaltNet("resnet18", encoder_weights="imagenet")
    except SaltError as error:
        assert "model.encoder_weights=null" in str(error) and "\n" not in str(error)
        assert time.time() - started < 20
    else:
        pytest.skip("the weights hub is reachable (or cached) here")


@pytest.mark.parametrize(
    "path", sorted(Path(CONFIG_DIR, "model").glob("*.yaml")), ids=lambda p: p.stem
)
def test_model_configs_instantiate(path):
    cfg = OmegaConf.load(path)
    cfg.encoder_weights = None
    assert isinstance(instantiate(cfg), (SaltNet, SeedUNet, SmpNet))
