"""smp's `SegmentationModel` contract for salt's nets, with salt's one-line input-shape error."""

from __future__ import annotations

import torch
from segmentation_models_pytorch.base import SegmentationModel
from segmentation_models_pytorch.base.utils import is_torch_compiling

from salt.core.errors import SaltError


class InputShapeError(SaltError, RuntimeError):
    """An input whose height or width the net cannot take (a RuntimeError, as smp raises)."""


class SaltModel(SegmentationModel):
    """A `SegmentationModel`: `encoder` (with `output_stride`), `decoder`, `segmentation_head`,
    `classification_head` (or None), `initialize()` (called at the end of `__init__`), `predict`,
    `freeze_encoder`; `forward` returns salt's dict of logits.

    `requires_divisible_input_shape` stays True even where the decoder could interpolate to any
    size: salt trains on tiles padded to 128x128, so another size means an unpadded tile.
    """

    requires_divisible_input_shape = True

    def check_input_shape(self, x: torch.Tensor) -> None:
        """smp's check, raising an `InputShapeError` that names the padded size."""
        if not self.requires_divisible_input_shape:
            return
        height, width = (int(size) for size in x.shape[-2:])
        stride = int(self.encoder.output_stride)
        if height % stride or width % stride:
            padded = "x".join(str(-(-size // stride) * stride) for size in (height, width))
            raise InputShapeError(
                f"{type(self).__name__}: input height and width must be divisible by {stride}, "
                f"got {height}x{width}: pad the input to {padded} (salt.data.padding pads "
                "101x101 tiles to 128x128)"
            )

    def check_input_shape_eagerly(self, x: torch.Tensor) -> None:
        """The check where smp's `forward` makes it: not while scripting, tracing (ONNX,
        TorchScript), compiling or exporting (torch.compile, torch.export), which would bake the
        check into, or break, the graph."""
        if not (torch.jit.is_scripting() or torch.jit.is_tracing() or is_torch_compiling()):
            self.check_input_shape(x)
