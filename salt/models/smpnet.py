"""SmpNet: any segmentation_models_pytorch architecture on salt's output contract."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

import segmentation_models_pytorch as smp
import torch
from segmentation_models_pytorch.base import SegmentationModel
from segmentation_models_pytorch.base import initialization as init
from torch import nn

from salt.core.errors import ConfigError, SaltError
from salt.models.base import SaltModel
from salt.models.blocks import upsample_to
from salt.models.encoders import build_encoder, check_encoder_name

# the decoder modules whose outputs are an architecture's stages, deepest first (what deep
# supervision puts a 1x1 head on); the other architectures expose no stages
DECODER_STAGES: dict[str, Callable[[Any], list[nn.Module]]] = {
    "unet": lambda decoder: list(decoder.blocks),
    "unetplusplus": lambda decoder: [decoder.blocks[f"x_0_{i}"] for i in range(decoder.depth + 1)],
    "fpn": lambda decoder: [decoder.p5, decoder.p4, decoder.p3, decoder.p2],
    "linknet": lambda decoder: list(decoder.blocks),
    "manet": lambda decoder: list(decoder.blocks),
}


def architectures() -> list[str]:
    """Every architecture smp offers, by its class name (Unet, UnetPlusPlus, FPN, ...)."""
    return [model.__name__ for model in smp.MODEL_ARCHITECTURES_MAPPING.values()]


class SmpNet(SaltModel):
    """Any smp architecture (`smp.create_model(arch, ...)`, e.g. UnetPlusPlus, FPN,
    DeepLabV3Plus, Segformer), built by smp and run by smp's own `forward`, its logits returned
    as salt's dict:
      - "mask": (N, 1, H, W), always;
      - "salt_logit": (N, 1), image-level "has salt", when `classifier`: smp's classification head
        (`aux_params`) on the encoder's deepest features, for every architecture;
      - "stage_masks": (N, S, H, W), when `deep_supervision`: a 1x1 head on each decoder stage
        (read with forward hooks, so smp's forward runs unchanged), upsampled to the input.
        Only the architectures of `DECODER_STAGES` expose stages; the others refuse it.

    `encoder_weights`: None, a pretrained name smp knows (e.g. "imagenet") or a local file, as
    SaltNet's. `arch_options` go to the architecture's class (e.g. `decoder_channels`,
    `encoder_depth`, `decoder_attention_type="scse"`, `encoder_output_stride`). An input whose
    height or width the encoder cannot take raises salt's `InputShapeError`.
    """

    def __init__(
        self,
        arch: str = "Unet",
        encoder_name: str = "resnet34",
        encoder_weights: str | None = None,
        in_channels: int = 1,
        classifier: bool = False,
        deep_supervision: bool = False,
        dropout: float = 0.0,
        **arch_options: Any,
    ):
        super().__init__()
        key = str(arch).lower()
        if key not in smp.MODEL_ARCHITECTURES_MAPPING:
            raise ConfigError(
                "model.arch", f"unknown architecture {arch!r}: one of {', '.join(architectures())}"
            )
        if deep_supervision and key not in DECODER_STAGES:
            staged = ", ".join(smp.MODEL_ARCHITECTURES_MAPPING[k].__name__ for k in DECODER_STAGES)
            raise ConfigError(
                "model.deep_supervision",
                f"{arch} exposes no decoder stages; deep supervision needs one of {staged}",
            )
        check_encoder_name(encoder_name)
        aux_params = {"classes": 1, "dropout": dropout or None} if classifier else None
        try:
            model = smp.create_model(
                key,
                encoder_name=encoder_name,
                encoder_weights=None,
                in_channels=in_channels,
                classes=1,
                aux_params=aux_params,
                **arch_options,
            )
        except (TypeError, ValueError) as error:
            raise ConfigError("model", f"{arch}: {error}") from None
        self.model = cast(SegmentationModel, model)
        if encoder_weights is not None:
            self._load_encoder_weights(encoder_name, encoder_weights, in_channels)
        self._stage_outputs: list[torch.Tensor] = []
        self.stage_heads: nn.ModuleList | None = None
        if deep_supervision:
            for stage in DECODER_STAGES[key](self.model.decoder):
                stage.register_forward_hook(self._keep_stage_output)
            channels = self._stage_channels(in_channels)
            self.stage_heads = nn.ModuleList(nn.Conv2d(c, 1, kernel_size=1) for c in channels)
            init.initialize_head(self.stage_heads)

    # smp's SegmentationModel parts, for its initialize(), predict() and freeze_encoder()
    @property
    def encoder(self) -> nn.Module:
        return self.model.encoder

    @property
    def decoder(self) -> nn.Module:
        return self.model.decoder

    @property
    def segmentation_head(self) -> nn.Module:
        return self.model.segmentation_head

    @property
    def classification_head(self) -> nn.Module | None:
        return self.model.classification_head

    def initialize(self) -> None:
        """smp's initialisation (decoder, heads) and the stage heads'; the encoder keeps its
        own (or pretrained) weights. A head's BatchNorm (DPT's), which smp's head
        initialisation skips, is reset to unit as smp's decoders' are."""
        super().initialize()
        for module in self.segmentation_head.modules():
            if isinstance(module, nn.BatchNorm2d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)
        if self.stage_heads is not None:
            init.initialize_head(self.stage_heads)

    def freeze_encoder(self) -> None:
        """smp's: the encoder's weights and normalisation statistics fixed, also in train mode."""
        self.model.freeze_encoder()
        self._is_encoder_frozen = True

    def unfreeze_encoder(self) -> None:
        self.model.unfreeze_encoder()
        self._is_encoder_frozen = False

    def _load_encoder_weights(self, name: str, weights: str, in_channels: int) -> None:
        depth = len(self.model.encoder.out_channels) - 1
        pretrained = build_encoder(name, weights, in_channels, depth)
        try:
            self.model.encoder.load_state_dict(pretrained.state_dict())
        except RuntimeError:
            raise SaltError(
                f"model.encoder_weights: {weights} weights of {name} do not fit "
                f"{type(self.model).__name__}'s encoder"
            ) from None

    def _keep_stage_output(self, module: nn.Module, inputs: Any, output: torch.Tensor) -> None:
        self._stage_outputs.append(output)

    def _stage_channels(self, in_channels: int) -> list[int]:
        """Each stage's channels, from one forward pass of a small batch: in eval mode (the
        BatchNorm statistics untouched), or on the meta device when the net is built there (no
        compute) in train mode (PyTorch's meta BatchNorm has no eval kernel; the statistics are
        the checkpoint's anyway)."""
        if any(parameter.is_meta for parameter in self.model.parameters()):
            # smp builds a 1-channel encoder's first convolution with torch.Tensor(...), on the
            # CPU whatever the device context: all on meta, the checkpoint replaces them all
            self.model.to("meta")
        device = next(self.model.parameters()).device
        size = 2 * int(self.model.encoder.output_stride)
        was_training = self.model.training
        self.model.train(device.type == "meta")
        try:
            with torch.no_grad():
                self._stage_outputs.clear()
                self.model(torch.zeros(2, in_channels, size, size, device=device))
                return [int(output.shape[1]) for output in self._stage_outputs]
        finally:
            self._stage_outputs.clear()
            self.model.train(was_training)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        self.check_input_shape_eagerly(x)
        self._stage_outputs.clear()
        output = self.model(x)
        mask, salt_logit = output if isinstance(output, tuple) else (output, None)
        outputs = {"mask": mask}
        if self.stage_heads is not None:
            size = x.shape[-2:]
            stages = zip(self.stage_heads, self._stage_outputs)
            outputs["stage_masks"] = torch.cat(
                [upsample_to(head(stage), size) for head, stage in stages], dim=1
            )
            self._stage_outputs.clear()
        if salt_logit is not None:
            outputs["salt_logit"] = salt_logit
        return outputs
