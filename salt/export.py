"""One trained model as a file that runs without salt:
`python -m salt.export RUN_DIR_OR_CKPT --format onnx|pt2|torchscript --out FILE [--tta]`.

The exported model takes padded, normalised tiles and returns salt probabilities:
  input  "tiles"          float32 (N, C, 128, 128): each 101x101 uint8 tile reflect-padded
                          (reflect-101, 13 px before and 14 after on both axes), then
                          (tile / 255 - mean) / std and repeated over C channels;
  output "probabilities"  float32 (N, 1, 101, 101), the sigmoid of the mask logits cropped back
                          to the tile (with --tta, averaged with the horizontally flipped tile's).
mean, std and C come from the checkpoint; they are stored in the file (ONNX metadata, or the
extra file salt.json of a torch.export (.pt2) or TorchScript archive) with the rest of this
contract. pt2 is torch.export's program (`torch.export.load(FILE).module()`), the successor of
TorchScript, which torch deprecates.
"""

from __future__ import annotations

import argparse
import json
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from salt.core.errors import SaltError, exit_on_salt_error
from salt.core.files import atomic_path
from salt.core.rundir import checkpoint_files
from salt.data.padding import PAD_AFTER, PAD_BEFORE, PADDED, TILE
from salt.inference.tiles import load_model, tta_forward

FORMATS = ("onnx", "pt2", "torchscript")
TOLERANCE = 1e-4
OPSET = 18


class TileProbabilities(nn.Module):
    """Probabilities of padded tiles, with horizontal flip TTA folded in when `tta`."""

    def __init__(self, net: nn.Module, tta: bool = False):
        super().__init__()
        self.net = net
        self.tta = ["none", "hflip"] if tta else ["none"]

    def forward(self, tiles: torch.Tensor) -> torch.Tensor:
        return tta_forward(self.net, tiles, self.tta)[0]


def contract(checkpoint: Path, options: dict, tta: bool) -> dict[str, str]:
    """What the exported file expects and returns, stored inside it."""
    return {
        "salt.checkpoint": checkpoint.name,
        "salt.input": (
            f"tiles float32 (N, {options['channels']}, {PADDED}, {PADDED}): a {TILE}x{TILE} uint8 "
            f"tile reflect-padded (reflect-101, {PAD_BEFORE} px before, {PAD_AFTER} after), "
            f"then (tile / 255 - mean) / std, repeated over the channels"
        ),
        "salt.output": f"probabilities float32 (N, 1, {TILE}, {TILE})",
        "salt.mean": str(options["mean"]),
        "salt.std": str(options["std"]),
        "salt.channels": str(options["channels"]),
        "salt.tta": "none+hflip" if tta else "none",
    }


def random_tiles(batch: int, channels: int, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(batch, channels, PADDED, PADDED, generator=generator)


def export_onnx(model: nn.Module, example: torch.Tensor, path: Path, metadata: dict) -> None:
    import onnx

    batch = torch.export.Dim("batch", min=1, max=65536)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model,
            (example,),
            str(path),
            input_names=["tiles"],
            output_names=["probabilities"],
            dynamic_shapes=({0: batch},),
            opset_version=OPSET,
            dynamo=True,
            external_data=False,
            verbose=False,
        )
    proto = onnx.load(str(path))
    onnx.helper.set_model_props(proto, metadata)
    onnx.save(proto, str(path))


def run_onnx(path: Path, tiles: torch.Tensor) -> np.ndarray:
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {"tiles": tiles.numpy()})[0]


def export_pt2(model: nn.Module, example: torch.Tensor, path: Path, metadata: dict) -> None:
    batch = torch.export.Dim("batch", min=1, max=65536)
    program = torch.export.export(model, (example,), dynamic_shapes=({0: batch},))
    torch.export.save(program, str(path), extra_files={"salt.json": json.dumps(metadata)})


def run_pt2(path: Path, tiles: torch.Tensor) -> np.ndarray:
    return torch.export.load(str(path)).module()(tiles).numpy()


def export_torchscript(model: nn.Module, example: torch.Tensor, path: Path, metadata: dict) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.jit is deprecated upstream; shapes are fixed here
        traced = torch.jit.trace(model, example, check_trace=False)  # checked by `export`
        torch.jit.save(traced, str(path), _extra_files={"salt.json": json.dumps(metadata)})


def run_torchscript(path: Path, tiles: torch.Tensor) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return torch.jit.load(str(path))(tiles).numpy()


def export(source, out, format: str = "onnx", checkpoint: str = "best", tta: bool = False) -> float:
    """Export, check against torch on random tiles, then move into place. Returns the max diff."""
    if format not in FORMATS:
        raise SaltError(f"unknown format {format!r} (choose from {', '.join(FORMATS)})")
    if format == "onnx":
        try:
            import onnx  # noqa: F401
            import onnxruntime  # noqa: F401
            import onnxscript  # noqa: F401  (torch.onnx's exporter)
        except ImportError:
            raise SaltError(
                "ONNX export needs onnx, onnxscript and onnxruntime: pip install 'tgs-salt[export]'"
            ) from None
    path = checkpoint_files([source], [checkpoint])[0]
    net, options = load_model(path)
    model = TileProbabilities(net, tta).eval()
    metadata = contract(path, options, tta)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    check = random_tiles(3, options["channels"], seed=1)  # another batch size than the example
    # checked before it is renamed into place: a failed check writes nothing
    with atomic_path(out) as tmp:
        with torch.no_grad():
            if format == "onnx":
                export_onnx(model, random_tiles(2, options["channels"]), tmp, metadata)
                exported = run_onnx(tmp, check)
            elif format == "pt2":
                export_pt2(model, random_tiles(2, options["channels"]), tmp, metadata)
                exported = run_pt2(tmp, check)
            else:
                export_torchscript(model, random_tiles(2, options["channels"]), tmp, metadata)
                exported = run_torchscript(tmp, check)
            expected = model(check).numpy()
        difference = float(np.abs(exported - expected).max())
        if not difference <= TOLERANCE:
            raise SaltError(
                f"{out}: the {format} export differs from torch by {difference:.2e} "
                f"(more than {TOLERANCE:g}); nothing written"
            )
    return difference


@exit_on_salt_error
def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m salt.export", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("source", help="a run directory or a .ckpt file")
    parser.add_argument("--format", choices=FORMATS, required=True)
    parser.add_argument("--out", type=Path, required=True, help="the file to write")
    parser.add_argument(
        "--checkpoint", default="best", choices=("best", "last", "swa"), help="of a run directory"
    )
    parser.add_argument("--tta", action="store_true", help="fold horizontal flip TTA in")
    args = parser.parse_args(argv)
    difference = export(args.source, args.out, args.format, args.checkpoint, args.tta)
    print(f"max abs difference from torch on random tiles: {difference:.2e}")
    print(f"wrote {args.out} ({args.format}, tta={'hflip' if args.tta else 'none'})")


if __name__ == "__main__":
    main()
