"""One tester over every model salt offers, as smp's tests/models/base.py over its architectures:
the nets the experiment configs build, SaltNet's options on a small net, SeedUNet and every smp
architecture as SmpNet (on timm's tiny test encoders), each held
to smp's SegmentationModel contract (output shapes, the input-shape error, `initialize()`,
`predict`, `freeze_encoder`) and to what salt does with a net (channels_last, torch.compile,
torch.export, TorchScript and ONNX parity, the net rebuilt from a checkpoint on the meta
device)."""

from __future__ import annotations

import copy
import functools
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf
from segmentation_models_pytorch.base import SegmentationModel
from torch import nn

from salt.core.errors import salt_error_in
from salt.models import SaltNet, SeedUNet, SmpNet
from salt.models.base import InputShapeError
from salt.models.checkpoints import load_net
from salt.models.smpnet import DECODER_STAGES, architectures
from salt.train import CONFIG_DIR
from tests.helpers.runs import compose_config


@dataclass(frozen=True)
class Case:
    build: Callable[[], nn.Module]
    outputs: frozenset[str]
    stride: int
    in_channels: int = 1
    heavy: bool = False  # predict, channels_last, compile and export in the slow run only


def experiment(name: str) -> Callable[[], nn.Module]:
    def build() -> nn.Module:
        overrides = [f"experiment={name}", "model.encoder_weights=null"]
        return instantiate(compose_config("train", overrides).model)

    return build


def saltnet(**options) -> Callable[[], nn.Module]:
    defaults = {"encoder_name": "resnet18", "encoder_depth": 3, "decoder_channels": [32, 16, 8]}
    return functools.partial(SaltNet, **{**defaults, "head_channels": 8, **options})


def smpnet(arch: str) -> Callable[[], nn.Module]:
    """Every output the architecture can give, on timm's tiny test encoders."""
    encoder = "tu-test_vit" if arch == "DPT" else "tu-test_resnet"
    stages = arch.lower() in DECODER_STAGES
    return functools.partial(
        SmpNet, arch=arch, encoder_name=encoder, classifier=True, deep_supervision=stages
    )


MASK = frozenset({"mask"})
EVERY = frozenset({"mask", "stage_masks", "salt_logit"})
# the encoder's output stride each smp architecture builds (dilated for DeepLab, PSPNet, PAN)
SMP_STRIDES = {
    "Unet": 32,
    "UnetPlusPlus": 32,
    "MAnet": 32,
    "Linknet": 32,
    "FPN": 32,
    "PSPNet": 8,
    "DeepLabV3": 8,
    "DeepLabV3Plus": 16,
    "PAN": 16,
    "UPerNet": 32,
    "Segformer": 32,
    "DPT": 16,
}
CASES = {
    # what the experiment configs build
    "experiment=resnet34": Case(experiment("resnet34"), EVERY, 32, heavy=True),
    "experiment=se_resnext50": Case(experiment("se_resnext50"), EVERY, 32, heavy=True),
    "experiment=demo": Case(experiment("demo"), MASK | {"salt_logit"}, 32, heavy=True),
    "experiment=cpu": Case(experiment("cpu"), MASK | {"salt_logit"}, 32),
    "experiment=smoke": Case(experiment("smoke"), MASK, 8),
    "experiment=seed": Case(experiment("seed"), MASK, 16, heavy=True),
    # SaltNet's options and another encoder family, small
    "hypercolumn-wide": Case(saltnet(hypercolumn_channels=None), MASK, 8),
    "no-hypercolumn-no-scse": Case(saltnet(hypercolumn=False, scse=False), MASK, 8),
    "image-context-deep-supervision-classifier": Case(
        saltnet(image_context=4, deep_supervision=True, classifier=True, dropout=0.5), EVERY, 8
    ),
    "center-three-channels": Case(saltnet(center=True, in_channels=3), MASK, 8, in_channels=3),
    "efficientnet-b0": Case(saltnet(encoder_name="efficientnet-b0"), MASK, 8),
    "seed-small": Case(functools.partial(SeedUNet, base_filters=4, depth=3), MASK, 8),
    # every architecture smp offers, with salt's heads
    **{
        f"smp-{arch}": Case(
            smpnet(arch),
            EVERY if arch.lower() in DECODER_STAGES else MASK | {"salt_logit"},
            SMP_STRIDES[arch],
        )
        for arch in architectures()
    },
}


@functools.cache
def built(name: str) -> nn.Module:
    """The case's net in eval mode, its BatchNorm statistics those of a batch of random tiles
    (as after training: PyTorch's initial ones leave a random ResNet34's logits in the hundreds)."""
    torch.manual_seed(0)
    net = CASES[name].build()
    norms = [m for m in net.modules() if isinstance(m, nn.BatchNorm2d)]
    for norm in norms:
        norm.momentum = None  # a cumulative average: here, of the one batch
        norm.reset_running_stats()
    with torch.no_grad():
        net.train()(tiles(CASES[name], batch=4, seed=1))
    for norm in norms:
        norm.momentum = 0.1
    return net.eval()


EVERY_CASE = list(CASES)
# the heavy cases marked slow, for the tests that run them more than once
SLOW_IF_HEAVY = [
    pytest.param(name, marks=pytest.mark.slow) if spec.heavy else name
    for name, spec in CASES.items()
]
# compile and export in the fast run: a SaltNet with every output, the smoke net, SeedUNet
QUICK = {"image-context-deep-supervision-classifier", "experiment=smoke", "seed-small"}
SLOW_UNLESS_QUICK = [
    name if name in QUICK else pytest.param(name, marks=pytest.mark.slow) for name in CASES
]


def tiles(
    case: Case, batch: int = 2, size: tuple[int, int] = (128, 128), seed: int = 0
) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(batch, case.in_channels, *size, generator=generator)


def forward(net: nn.Module, x: torch.Tensor) -> dict[str, torch.Tensor]:
    with torch.no_grad():
        return net(x)


class MaskOnly(nn.Module):
    """The mask logits, as salt's export wraps a net."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)["mask"]


@pytest.mark.parametrize("name", EVERY_CASE)
def test_is_an_smp_segmentation_model(name):
    spec = CASES[name]
    net = built(name)
    assert isinstance(net, SegmentationModel) and net.requires_divisible_input_shape
    assert net.encoder.output_stride == spec.stride


@pytest.mark.parametrize("name", EVERY_CASE)
def test_output_shapes(name):
    spec = CASES[name]
    outputs = forward(built(name), tiles(spec))
    assert set(outputs) == spec.outputs
    assert outputs["mask"].shape == (2, 1, 128, 128)
    if "stage_masks" in outputs:
        stages = len(built(name).stage_heads)
        assert outputs["stage_masks"].shape == (2, stages, 128, 128)
    if "salt_logit" in outputs:
        assert outputs["salt_logit"].shape == (2, 1)
    assert all(torch.isfinite(o).all() for o in outputs.values())


@pytest.mark.parametrize("name", EVERY_CASE)
@pytest.mark.parametrize("size", [(101, 101), (128, 100)], ids=["101x101", "128x100"])
def test_an_input_of_the_wrong_size_names_the_padding(name, size):
    spec = CASES[name]
    padded = "x".join(str(math.ceil(s / spec.stride) * spec.stride) for s in size)
    expected = (
        f"{type(built(name)).__name__}: input height and width must be divisible by "
        f"{spec.stride}, got {size[0]}x{size[1]}: pad the input to {padded} "
        "(salt.data.padding pads 101x101 tiles to 128x128)"
    )
    with pytest.raises(InputShapeError) as raised:
        forward(built(name), tiles(spec, batch=1, size=size))
    assert str(raised.value) == expected
    # a SaltError (the CLIs print it as one line) and a RuntimeError, as smp raises
    assert salt_error_in(raised.value) is raised.value and isinstance(raised.value, RuntimeError)


def initialised(net: nn.Module, kinds: tuple[type, ...]):
    """The modules of these kinds that `initialize()` sets: all but those of a (pretrained)
    encoder, and the transposed convolutions (PyTorch's default, as smp leaves them)."""
    for qualified, module in net.named_modules():
        if isinstance(net, SaltNet | SmpNet) and qualified.removeprefix("model.").startswith(
            "encoder."
        ):
            continue
        if isinstance(module, kinds):
            yield qualified, module


@pytest.mark.parametrize("name", EVERY_CASE)
def test_initialize_sets_every_layer_smps_way(name):
    """After spoiling every weight `initialize()` sets: smp's He / Xavier uniform weights, zero
    biases, unit BatchNorm; a SaltNet's or SmpNet's encoder untouched; the same weights from the
    same seed."""
    net = copy.deepcopy(built(name))
    encoder = {k: v.clone() for k, v in net.encoder.state_dict().items()}
    layers = dict(initialised(net, (nn.Conv2d, nn.Linear)))
    norms = dict(initialised(net, (nn.BatchNorm2d,)))
    with torch.no_grad():
        for module in [*layers.values(), *norms.values()]:
            for param in module.parameters(recurse=False):
                param.fill_(0.5)
    torch.manual_seed(0)
    net.initialize()
    again = copy.deepcopy(net)
    torch.manual_seed(0)
    again.initialize()
    for qualified, layer in layers.items():
        fan_in = layer.weight[0].numel()
        fan_out = layer.weight.shape[0] * layer.weight[0, 0].numel()
        he, xavier = math.sqrt(6 / fan_in), math.sqrt(6 / (fan_in + fan_out))
        largest = layer.weight.abs().max().item()
        # drawn from U(-bound, bound) of one of them: the largest of many draws is near it
        assert min(he, xavier) / 2 < largest <= max(he, xavier), qualified
        assert layer.bias is None or not layer.bias.any(), qualified
    for qualified, norm in norms.items():
        assert torch.all(norm.weight == 1) and not norm.bias.any(), qualified
    if isinstance(net, SaltNet | SmpNet):
        assert all(torch.equal(v, encoder[k]) for k, v in net.encoder.state_dict().items())
    for (key, value), other in zip(net.state_dict().items(), again.state_dict().values()):
        assert torch.equal(value, other), key


@pytest.mark.parametrize("name", SLOW_IF_HEAVY)
def test_predict_and_freeze_encoder(name):
    """smp's `predict` (eval mode, no autograd) and `freeze_encoder` (no gradients, BatchNorm
    statistics kept even in train mode)."""
    spec = CASES[name]
    net = copy.deepcopy(built(name)).train()
    x = tiles(spec)
    predicted = net.predict(x)
    assert not net.training and not predicted["mask"].requires_grad
    torch.testing.assert_close(predicted["mask"], forward(net, x)["mask"])
    net.freeze_encoder()
    net.train()
    assert not any(p.requires_grad for p in net.encoder.parameters())
    assert all(not m.training for m in net.encoder.modules() if isinstance(m, nn.BatchNorm2d))


@pytest.mark.parametrize("name", SLOW_IF_HEAVY)
def test_channels_last_gives_the_same_logits(name):
    spec = CASES[name]
    net = copy.deepcopy(built(name))
    x = tiles(spec)
    reference = forward(net, x)["mask"]
    net = net.to(memory_format=torch.channels_last)
    fast = forward(net, x.contiguous(memory_format=torch.channels_last))["mask"]
    torch.testing.assert_close(fast, reference, atol=1e-3, rtol=1e-4)  # summation order


@pytest.mark.parametrize("name", SLOW_UNLESS_QUICK)
def test_torch_compile_captures_one_graph(name):
    """The input-shape check is skipped while compiling, as smp's: one graph (`fullgraph`),
    through dynamo's capture only (the `eager` backend: no C++ build)."""
    spec = CASES[name]
    net = built(name)
    x = tiles(spec)
    torch._dynamo.reset()
    compiled = torch.compile(net, backend="eager", fullgraph=True)
    got, expected = forward(compiled, x), forward(net, x)
    for key in spec.outputs:
        torch.testing.assert_close(got[key], expected[key])


@pytest.mark.parametrize("name", SLOW_UNLESS_QUICK)
def test_torch_export_and_torchscript_trace_match_eager(name):
    """As salt.export exports a net: pt2 with a dynamic batch, TorchScript by tracing."""
    spec = CASES[name]
    net = MaskOnly(built(name)).eval()
    x = tiles(spec, batch=3)
    expected = forward(net, x)
    batch = torch.export.Dim("batch", min=1, max=64)
    program = torch.export.export(net, (tiles(spec),), dynamic_shapes=({0: batch},))
    torch.testing.assert_close(program.module()(x), expected, atol=1e-5, rtol=1e-5)
    traced = torch.jit.trace(net, x, check_trace=False)
    torch.testing.assert_close(forward(traced, x), expected, atol=1e-5, rtol=1e-5)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["experiment=resnet34", "experiment=seed"])
def test_onnx_export_matches_eager(name, tmp_path):
    onnxruntime = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    spec = CASES[name]
    net = MaskOnly(built(name)).eval()
    x = tiles(spec, batch=3)
    batch = torch.export.Dim("batch", min=1, max=64)
    torch.onnx.export(
        net,
        (tiles(spec),),
        str(tmp_path / "net.onnx"),
        input_names=["tiles"],
        dynamic_shapes=({0: batch},),
        dynamo=True,
        external_data=False,
        verbose=False,
    )
    session = onnxruntime.InferenceSession(
        str(tmp_path / "net.onnx"), providers=["CPUExecutionProvider"]
    )
    got = torch.from_numpy(session.run(None, {"tiles": x.numpy()})[0])
    # logits (about +-6 here): a ResNet34's summation order moves them by up to 2e-4
    torch.testing.assert_close(got, forward(net, x), atol=1e-3, rtol=1e-4)


def net_config(name: str) -> dict:
    """The Hydra config a training run would record for the case's net (its `net_config`)."""
    build = CASES[name].build
    if isinstance(build, functools.partial):
        target = f"{build.func.__module__}.{build.func.__qualname__}"
        return {"_target_": target, **build.keywords}
    return model_config(name.removeprefix("experiment="))


@pytest.mark.parametrize("name", EVERY_CASE)
def test_a_checkpoint_rebuilds_the_net_on_the_meta_device(name):
    """What predict, tune, export and the survey do with a run's net: rebuilt from its config on
    the meta device, offline, taking the checkpoint's tensors, the same logits."""
    net = built(name)
    checkpoint = {
        "state_dict": {f"net.{k}": v.clone() for k, v in net.state_dict().items()},
        "hyper_parameters": {"net_config": net_config(name)},
    }
    rebuilt = load_net("case.ckpt", checkpoint)
    x = tiles(CASES[name])
    expected = forward(net, x)
    got = forward(rebuilt, x)
    assert set(got) == set(expected)
    for key in expected:
        torch.testing.assert_close(got[key], expected[key])


def model_config(name: str) -> dict:
    cfg = compose_config("train", [f"experiment={name}", "model.encoder_weights=null"])
    return OmegaConf.to_container(cfg.model, resolve=True)


# experiments that build no net of their own: salt.teach gives them the checkpoint's (model=)
NET_FROM_CHECKPOINT = {"teach"}


def test_every_experiment_is_a_case():
    """A new experiment config needs its case here, unless it builds the net of one that has
    (experiment=resnet34_cpu trains the net of experiment=resnet34 with another schedule)."""
    experiments = {p.stem for p in Path(CONFIG_DIR, "experiment").glob("*.yaml")}
    cased = {name.removeprefix("experiment=") for name in CASES if name.startswith("experiment=")}
    nets = [model_config(name) for name in sorted(cased)]
    for name in sorted(experiments - cased - NET_FROM_CHECKPOINT):
        assert model_config(name) in nets, f"experiment={name} builds a net no case builds"
