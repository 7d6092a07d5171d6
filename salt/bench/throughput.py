"""Train-step and predict throughput of salt against bare PyTorch loops, in one process.

    python -m salt.bench.throughput [DATA_ROOT] [--experiment demo] [--batches 12] [--predict-images 256] [--repeats 3]
        [--device cpu] [--precision 32-true] [--peak-tflops X] [--variant OVERRIDE ...] [override ...]

Train: salt's LightningModule under a Lightning Trainer against `zero_grad / forward / loss /
backward / step` over the same net (in the same memory format), criterion, optimiser and
in-memory batches. Predict: `salt.inference.tiles.predict_tiles` with flip TTA against two bare
forwards (the tile and its flip) per batch of the same images. Repeats are interleaved, so drifts
in machine load hit both alike. FLOPs per image are counted with torch's FlopCounterMode
(training = 3x forward); the achieved rate is compared with a float32 matmul measured on the same
device and, where known or given, with the device's nominal dense peak (`nominal_peak`: the
H200s from `DENSE_PEAKS`, other GPUs from Lightning's table; or --peak-tflops). Each `--variant`
(a `module.*` override such as `module.compile=true`, or `trainer.precision=...`) adds a salt
training row measured in the same repeats, from the same weights and batches: the before and
after of a fast-path setting. Each training row's module is built once and trained from the same
weights in every repeat, so a compiled variant compiles once (its first repeat's warm-up, the
one reported, holds the compilation). Host syncs per training step (values read back from the
device, see `salt.bench.syncs`; not the optimizer's step counters, which live on the host) are
counted in an extra untimed pass. The data rows time making one epoch of training batches on the
device: per-sample albumentations in DataLoader workers (as configured) against `data.on_device`
(tiles on the device, augmented there batch-wise). Without DATA_ROOT it generates a small data
set; DATA_ROOT is read as it is (`data.synthetic=null`, whatever the experiment says). `--json
PATH` also writes every figure to PATH (see `Figures`), for scripts such as
benchmarks/gpu_check.py: the file is rewritten atomically each time a figure is measured, so a
bench killed at any moment leaves valid JSON with every figure measured before the kill, and
"complete": false until the run ends.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import platform
import statistics
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytorch_lightning as pl
import segmentation_models_pytorch as smp
import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from lightning_fabric.utilities.throughput import get_available_flops
from omegaconf import open_dict
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from salt.bench.syncs import HostSyncCounter, optimizer_step_counters, synchronize
from salt.core.config import CONFIG_DIR
from salt.core.files import write_json
from salt.data.dataset import TileDataset
from salt.data.io import load_train
from salt.data.padding import PADDED
from salt.inference.tiles import autocast_for, predict_tiles
from salt.training.module import build_module

WARMUP_BATCHES = 3


class _Timer(pl.Callback):
    """Seconds of the warm-up batches (compilation included) and from their end to the end of
    the epoch."""

    def __init__(self):
        self.started = 0.0
        self.seconds = 0.0
        self.warmup_seconds = 0.0

    def on_train_start(self, trainer, pl_module):
        self.started = time.perf_counter()

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if batch_idx == WARMUP_BATCHES:
            synchronize(pl_module.device)
            now = time.perf_counter()
            self.warmup_seconds = now - self.started
            self.started = now

    def on_train_epoch_end(self, trainer, pl_module):
        synchronize(pl_module.device)
        self.seconds = time.perf_counter() - self.started


def load_config(data_root: Path, experiment: str, overrides: list[str]):
    with initialize_config_dir(version_base="1.3", config_dir=CONFIG_DIR):
        cfg = compose(
            "train",
            overrides=[
                f"experiment={experiment}",
                f"data.root={data_root}",
                "model.encoder_weights=null",
                *overrides,
            ],
        )
    with open_dict(cfg):
        cfg.paths.output_dir = tempfile.mkdtemp(prefix="salt-bench-")
    return cfg


def fixed_batches(cfg, n_batches: int) -> list:
    datamodule = instantiate(cfg.data)
    datamodule.prepare_data()
    datamodule.setup("fit")
    batches: list = []
    while len(batches) < n_batches:
        for batch in datamodule.train_dataloader():
            batches.append(batch)
            if len(batches) == n_batches:
                break
    return batches


def bare_loop(module, batches, device, precision: str, syncs: HostSyncCounter | None = None):
    """Seconds of the timed batches; with `syncs`, their host syncs are counted."""
    net, criterion = module.net.to(device).train(), module.loss
    memory_format = torch.channels_last if module.hparams.channels_last else torch.preserve_format
    net.to(memory_format=memory_format)
    optimizer = module.optimizer_factory(params=net.parameters())
    dtype = {"bf16-mixed": torch.bfloat16, "16-mixed": torch.float16}.get(precision)
    started = 0.0
    counting = syncs or contextlib.nullcontext()
    for index, (images, masks) in enumerate(batches):
        if index == WARMUP_BATCHES:
            synchronize(device)
            started = time.perf_counter()
            if syncs:
                syncs.ignore(optimizer_step_counters([optimizer]))
            counting.__enter__()
        images = images.to(device, non_blocking=True).contiguous(memory_format=memory_format)
        masks = masks.to(device, non_blocking=True)
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast(torch.device(device).type, dtype=dtype, enabled=dtype is not None):
            loss = criterion(net(images), masks)["loss"]
        loss.backward()
        optimizer.step()
    counting.__exit__(None, None, None)
    synchronize(device)
    return time.perf_counter() - started


class _Batches:
    """A plain iterable over fixed batches: a bare list would read as a list of dataloaders."""

    def __init__(self, batches: list):
        self.batches = batches

    def __iter__(self):
        return iter(self.batches)

    def __len__(self) -> int:
        return len(self.batches)


class _CountSyncs(pl.Callback):
    """Host syncs from the end of the warm-up batches to the end of the epoch."""

    def __init__(self, counter: HostSyncCounter):
        self.counter = counter

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if batch_idx == WARMUP_BATCHES:
            self.counter.ignore(optimizer_step_counters(trainer.optimizers))
            self.counter.__enter__()

    def on_train_epoch_end(self, trainer, pl_module):
        self.counter.__exit__(None, None, None)


def lightning_loop(
    module, batches, device, precision: str, syncs: HostSyncCounter | None = None
) -> _Timer:
    """The timer of one epoch over `batches`; with `syncs`, the host syncs are counted."""
    timer = _Timer()
    callbacks: list[pl.Callback] = [timer] + ([_CountSyncs(syncs)] if syncs else [])
    trainer = pl.Trainer(
        accelerator=device,
        devices=1,
        precision=precision,  # type: ignore[arg-type]  # a Lightning precision name
        max_epochs=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        limit_val_batches=0,
        callbacks=callbacks,
    )
    trainer.fit(module, train_dataloaders=_Batches(batches))
    return timer


def device_name(device: str) -> str:
    if torch.device(device).type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"CPU {platform.machine()}, {torch.get_num_threads()} threads"


PRECISION_DTYPES = {
    "bf16-mixed": torch.bfloat16,
    "16-mixed": torch.float16,
    "32-true": torch.float32,
}
# Dense (no 2:4 sparsity) peaks per GPU in TFLOP/s, for the GPUs whose names Lightning's table
# misses: torch names an H200 SXM "NVIDIA H200" and an H200 NVL "NVIDIA H200 NVL", where Lightning
# matches only "h200 sxm1" and "h200 nvl1" (and lists those with sparsity). NVIDIA's H200
# datasheet: the SXM has the H100 SXM's figures; the NVL 60 FP32, and 835 TF32 and 1671 BF16/FP16
# with sparsity, halved here.
DENSE_PEAKS: dict[str, dict[torch.dtype | str, float]] = {
    "h200": {torch.float32: 66.9, "tfloat32": 494.7, torch.bfloat16: 989.4, torch.float16: 989.4},
    "h200 nvl": {
        torch.float32: 60.0,
        "tfloat32": 417.5,
        torch.bfloat16: 835.5,
        torch.float16: 835.5,
    },
}


def own_chip(name: str) -> str | None:
    """The key of DENSE_PEAKS for the GPU named `name` (case ignored): "h200 nvl" for a name
    with the words H200 and NVL, "h200" for another with the word H200 (a GH200 is not one);
    None for any other GPU."""
    words = name.lower().split()
    if "h200" not in words:
        return None
    return "h200 nvl" if "nvl" in words else "h200"


def nominal_peak(device: str, precision: str) -> float | None:
    """The device's nominal dense peak in TFLOP/s for `precision`: DENSE_PEAKS for a GPU it
    lists (`own_chip`), else Lightning's table of GPUs (`get_available_flops`); None for a CPU,
    or a GPU or precision neither lists. float32 counts at the TF32 peak unless
    torch.get_float32_matmul_precision() is "highest", as Lightning counts it."""
    dtype = PRECISION_DTYPES.get(precision)
    if dtype is None or torch.device(device).type != "cuda":
        return None
    chip = own_chip(torch.cuda.get_device_name(device))
    if chip is not None:
        tf32 = dtype is torch.float32 and torch.get_float32_matmul_precision() != "highest"
        return DENSE_PEAKS[chip].get("tfloat32" if tf32 else dtype)
    flops = get_available_flops(torch.device(device), dtype)
    return None if flops is None else flops / 1e12


def forward_flops(net: nn.Module, channels: int, device: str) -> float:
    """FLOPs of one forward pass over one padded 128x128 tile."""
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        net.eval().to(device)(torch.zeros(1, channels, PADDED, PADDED, device=device))
    return float(counter.get_total_flops())


def flops_against_unet(net: nn.Module, cfg, device: str) -> tuple[float, float, str]:
    """Forward FLOPs per tile of `net` and of smp.Unet on the same encoder (resnet34 for nets
    without one): (net, Unet, encoder)."""
    encoder = cfg.model.get("encoder_name", "resnet34")
    unet = smp.Unet(encoder, encoder_weights=None, in_channels=cfg.data.channels)
    channels = cfg.data.channels
    return (
        forward_flops(copy.deepcopy(net), channels, device),
        forward_flops(unet, channels, device),
        encoder,
    )


def flops_line(flops: float, unet_flops: float, encoder: str) -> str:
    return (
        f'forward FLOPs: {flops / unet_flops:.2f}x smp.Unet("{encoder}") '
        f"({flops / 1e9:.2f} against {unet_flops / 1e9:.2f} GFLOP per image)"
    )


def matmul_tflops(device: str, size: int = 2048, repeats: int = 10) -> float:
    """float32 matmul throughput measured here: the reference for "fraction of peak" on CPUs."""
    a = torch.randn(size, size, device=device)
    b = torch.randn(size, size, device=device)
    a @ b
    synchronize(device)
    started = time.perf_counter()
    for _ in range(repeats):
        a @ b
    synchronize(device)
    return 2 * size**3 * repeats / (time.perf_counter() - started) / 1e12


@torch.inference_mode()
def bare_predict(net: nn.Module, batches: list[torch.Tensor], device, precision) -> float:
    """Seconds for the bare forward of each padded batch and of its flip (flip TTA)."""
    net = net.to(device).eval()
    with autocast_for(torch.device(device), precision):
        net(batches[0][:1].to(device))  # warm-up, as predict_tiles runs after this on a warm net
        started = time.perf_counter()
        for images in batches:
            images = images.to(device, non_blocking=True)
            torch.sigmoid(net(images)["mask"]).cpu()
            torch.sigmoid(net(images.flip(-1))["mask"]).cpu()
    synchronize(device)
    return time.perf_counter() - started


def salt_predict(net: nn.Module, dataset, batch_size: int, device, precision) -> float:
    started = time.perf_counter()
    predict_tiles(net, dataset, batch_size, device, tta=["none", "hflip"], precision=precision)
    synchronize(device)
    return time.perf_counter() - started


def train_variants(args, data_root: Path, overrides: list[str], template) -> dict:
    """{row name: (module, precision)}: salt as configured, then one per `--variant`, each with a
    module of its own holding the template's weights. A row's module is built once and trained
    in every repeat (see `train_row`), so a compiled variant compiles once; the template itself
    is never trained."""
    variants = {"train salt": (copy.deepcopy(template), args.precision)}
    for variant in args.variant:
        key, _, value = variant.partition("=")
        if key == "trainer.precision":
            variants[f"train salt {variant}"] = (copy.deepcopy(template), value)
            continue
        if not key.startswith("module.") or not value:
            raise SystemExit(
                f"error: --variant {variant}: give module.KEY=VALUE or trainer.precision=VALUE "
                "(variants share the batches, so they cannot change the data)"
            )
        module = build_module(load_config(data_root, args.experiment, [*overrides, variant]))
        module.load_state_dict(template.state_dict())
        variants[f"train salt {variant}"] = (module, args.precision)
    return variants


def train_row(
    module, weights: dict, batches, device, precision: str, syncs: HostSyncCounter | None = None
) -> _Timer:
    """`lightning_loop` of `module` after loading `weights` into it in place: every repeat starts
    from the same weights, and a net that `module` compiled in an earlier epoch (its
    `module.compile` setting) stays compiled, so only the first call compiles."""
    module.load_state_dict(weights)
    return lightning_loop(module, batches, device, precision, syncs)


def time_epoch(loader, warmup_batches: int = 1, device=None) -> float:
    """Images per second of one pass over `loader` (a `DeviceTileLoader` or a `DataLoader`).

    Batches are moved to `device` (default: the loader's own device; none for a `DataLoader`,
    whose batches then stay where they are), and a CUDA device is synchronised before the clock
    starts and stops. The first `warmup_batches` (worker start-up, kernel warm-up) are not timed.
    Only producing the batches is timed, not a training step that consumes them.
    """
    device = torch.device(device) if device is not None else getattr(loader, "device", None)

    def sync():
        if device is not None:
            synchronize(device)

    def move(batch):
        return batch if device is None else [t.to(device, non_blocking=True) for t in batch]

    iterator = iter(loader)
    for _ in range(warmup_batches):
        batch = next(iterator, None)
        if batch is None:
            raise ValueError(f"the loader yields no more than warmup_batches={warmup_batches}")
        move(batch)
    sync()
    images_seen, started = 0, time.perf_counter()
    for batch in iterator:
        images_seen += len(move(batch)[0])
    sync()
    if images_seen == 0:
        raise ValueError(f"the loader yields no more than warmup_batches={warmup_batches}")
    return images_seen / (time.perf_counter() - started)


def data_rates(cfg, device: str, repeats: int) -> Iterator[tuple[str, float]]:
    """(path, images/s) of one training epoch of batches, the median of `repeats` epochs, as each
    path is measured: the per-sample CPU path (the config's albumentations and workers, batches
    copied to `device`), then the on-device path."""
    cuda = torch.device(device).type == "cuda"
    per_sample = instantiate(cfg.data, pin_memory=cuda)
    per_sample.setup("fit")
    on_device = instantiate(cfg.data, on_device=True)
    on_device.setup("fit")
    loaders = {
        f"data per-sample, {cfg.data.num_workers} workers": (per_sample.train_dataloader(), device),
        "data on device": (on_device.train_dataloader().to(device), None),
    }
    for name, (loader, target) in loaders.items():
        runs = []
        for epoch in range(repeats):
            loader.sampler.set_epoch(epoch)
            runs.append(time_epoch(loader, device=target))
        yield name, statistics.median(runs)


def count_syncs_per_step(
    variants: dict, template, weights: dict, batches, device: str, precision: str
) -> Iterator[tuple[str, float]]:
    """(row, host syncs per timed training step) of the bare loop, then of every salt row (its own
    module from `weights`, see `train_row`), as each is counted."""
    steps = len(batches) - WARMUP_BATCHES
    syncs = HostSyncCounter(device)
    bare_loop(copy.deepcopy(template), batches, device, precision, syncs)
    yield "train bare", syncs.total / steps
    for name, (module, row_precision) in variants.items():
        syncs = HostSyncCounter(device)
        train_row(module, weights, batches, device, row_precision, syncs)
        yield name, syncs.total / steps


class Figures:
    """The run's figures, gathered as they are measured; `payload()` gives them as plain values.

    With `args.json`, every `add_rate`, `add_syncs`, `add_data`, `add_matmul` and `finish`
    rewrites that file whole (`salt.core.files.write_json`: a temporary file renamed over it),
    so a run killed at any moment leaves valid JSON with every figure measured before the kill
    and "complete": false; `finish()` sets it true.
    """

    def __init__(self, args, cfg, flops: float, precisions: dict[str, str]):
        self.args, self.cfg, self.flops = args, cfg, flops
        self.precisions = precisions  # of the training rows; the others run at args.precision
        self.peaks = {
            precision: args.peak_tflops or nominal_peak(args.device, precision)
            for precision in {args.precision, *precisions.values()}
        }
        self.rates: dict[str, list[float]] = {}
        self.warmups: dict[str, float] = {}
        self.syncs: dict[str, float] = {}
        self.data: dict[str, float] = {}
        self.measured_peak: float | None = None
        self.complete = False

    def add_rate(self, row: str, images_per_s: float, warmup_s: float | None = None) -> None:
        """One repeat's images/s of `row`; its warm-up seconds are kept from the first repeat
        only, the one that compiles."""
        self.rates.setdefault(row, []).append(images_per_s)
        if warmup_s is not None:
            self.warmups.setdefault(row, warmup_s)
        self.save()

    def add_syncs(self, row: str, per_step: float) -> None:
        self.syncs[row] = per_step
        self.save()

    def add_data(self, path: str, images_per_s: float) -> None:
        self.data[path] = images_per_s
        self.save()

    def add_matmul(self, tflops: float) -> None:
        self.measured_peak = tflops
        self.save()

    def finish(self) -> None:
        self.complete = True
        self.save()

    def save(self) -> None:
        if self.args.json:
            write_json(self.args.json, self.payload())

    def median(self, row: str) -> float:
        return statistics.median(self.rates[row])

    def tflops(self, row: str) -> float:
        """Achieved TFLOP/s of `row`: training counts 3 forward passes per image, prediction 2
        (the tile and its flip)."""
        return self.median(row) * (3 if row.startswith("train") else 2) * self.flops / 1e12

    def peak(self, precision: str) -> float | None:
        """The nominal peak at `precision` (--peak-tflops if given, else `nominal_peak`)."""
        return self.peaks[precision]

    def row(self, name: str) -> dict:
        peak = self.peak(self.precisions.get(name, self.args.precision))
        return {
            "images_per_s": self.median(name),
            "tflops": self.tflops(name),
            "fraction_of_peak": self.tflops(name) / peak if peak else None,
            "syncs_per_step": self.syncs.get(name),
            "warmup_s": self.warmups.get(name),
            "repeats": self.rates[name],
        }

    def payload(self) -> dict:
        """Every figure so far as plain values. Per measured row: its median images/s,
        TFLOP/s, fraction of the nominal peak of its precision (null where unknown), host syncs
        per step (null until counted), the first repeat's warm-up seconds (salt's training rows;
        compilation included) and every repeat's images/s. Rows not yet measured are absent."""
        args, cfg = self.args, self.cfg
        return {
            "complete": self.complete,
            "device": device_name(args.device),
            "torch": torch.__version__,
            "experiment": args.experiment,
            "encoder": cfg.model.encoder_name,
            "precision": args.precision,
            "train_batch_size": cfg.data.batch_size,
            "timed_batches": args.batches - WARMUP_BATCHES,
            "predict_images": args.predict_images,
            "repeats": args.repeats,
            "gflop_per_image_forward": self.flops / 1e9,
            "nominal_peak_tflops": self.peak(args.precision),
            "measured_fp32_matmul_tflops": self.measured_peak,
            "rows": {name: self.row(name) for name in self.rates},
            "data_images_per_s": self.data,
        }


def print_report(
    figures: Figures, train_rows: list[str], shapes: dict, unet_flops: float, encoder: str
) -> None:
    """The table of rows, the ratios to the bare loops and the fractions of the peaks, from the
    figures of a finished run; `shapes` holds train_batch, predict_batch and predict_images."""
    args, flops, rates = figures.args, figures.flops, figures.rates
    print(
        f"device: {device_name(args.device)}; torch {torch.__version__}; "
        f"experiment={args.experiment} encoder={figures.cfg.model.encoder_name} "
        f"precision={args.precision}"
    )
    print(
        f"train batch {shapes['train_batch']} x {args.batches - WARMUP_BATCHES} timed batches; "
        f"predict batch {shapes['predict_batch']} x {shapes['predict_images']} images with flip "
        f"TTA; median of {args.repeats} interleaved repeats; {flops / 1e9:.2f} GFLOP per image "
        "forward"
    )
    width = max(14, *(len(name) + 2 for name in [*rates, *figures.data]))
    print(
        f"{'loop':<{width}}{'images/s':>10}{'TFLOP/s':>10}{'syncs/step':>12}{'warm-up s':>11}"
        f"{'all repeats':>26}"
    )
    for name, values in rates.items():
        runs = "  ".join(f"{v:.1f}" for v in values)
        sync = f"{figures.syncs[name]:.1f}" if name in figures.syncs else "-"
        warmup = f"{figures.warmups[name]:.1f}" if name in figures.warmups else "-"
        print(
            f"{name:<{width}}{figures.median(name):>10.1f}{figures.tflops(name):>10.3f}"
            f"{sync:>12}{warmup:>11}{runs:>26}"
        )
    for name, rate in figures.data.items():
        print(f"{name:<{width}}{rate:>10.1f}")
    for name in train_rows:
        ratio = figures.median(name) / figures.median("train bare")
        print(f"ratio {name.replace('train salt', 'train salt/bare', 1)} {ratio:.3f}")
    predict_ratio = figures.median("predict salt") / figures.median("predict bare")
    print(f"ratio predict salt/bare {predict_ratio:.3f}")
    print(flops_line(flops, unet_flops, encoder))
    measured, peak = figures.measured_peak, figures.peak(args.precision)
    assert measured is not None  # the report follows Figures.finish
    print(f"fp32 matmul measured here: {measured:.3f} TFLOP/s")
    for task in ("train", "predict"):
        value = figures.tflops(f"{task} salt")
        line = f"{task} achieves {value / measured:.1%} of the measured fp32 matmul"
        if peak:
            line += f", {value / peak:.2%} of the nominal {peak:g} TFLOP/s peak"
        print(line)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data_root", nargs="?", type=Path)
    parser.add_argument("--experiment", default="demo")
    parser.add_argument("--batches", type=int, default=12, help="train batches (3 warm up)")
    parser.add_argument("--predict-images", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--precision", default="32-true")
    parser.add_argument("--peak-tflops", type=float, help="the device's nominal peak, if unknown")
    parser.add_argument(
        "--variant",
        action="append",
        default=[],
        help="another salt training row, e.g. module.compile=true or trainer.precision=bf16-mixed",
    )
    parser.add_argument(
        "--json", type=Path, help="also write every figure to this JSON file, as it is measured"
    )
    parser.add_argument(
        "--flops", action="store_true", help="print the forward FLOPs against smp.Unet and stop"
    )
    parser.add_argument("overrides", nargs="*", help="Hydra overrides, e.g. data.batch_size=32")
    args = parser.parse_intermixed_args(argv)
    if args.data_root is not None and "=" in str(args.data_root):  # an override, no data root
        args.overrides.insert(0, str(args.data_root))
        args.data_root = None
    if args.batches <= WARMUP_BATCHES:
        parser.error(f"--batches must exceed the {WARMUP_BATCHES} warm-up batches")
    if args.json and not args.json.parent.is_dir():
        parser.error(f"--json {args.json}: folder {args.json.parent} not found")

    if args.flops:
        cfg = load_config(Path("unused"), args.experiment, list(args.overrides))
        print(f"experiment={args.experiment} {' '.join(args.overrides)}".strip())
        print(flops_line(*flops_against_unet(instantiate(cfg.model), cfg, args.device)))
        return
    data_root = args.data_root or Path(tempfile.mkdtemp(prefix="salt-bench-data-"))
    if args.data_root is None:
        overrides = [*args.overrides, "data.synthetic={n_train: 400, n_test: 1, seed: 0}"]
    else:  # read as it is, whatever the experiment's data.synthetic (demo's) would generate
        overrides = ["data.synthetic=null", *args.overrides]
    cfg = load_config(data_root, args.experiment, overrides)
    batches = fixed_batches(cfg, args.batches)
    pl.seed_everything(0, verbose=False)
    template = build_module(cfg)
    weights = copy.deepcopy(template.state_dict())
    variants = train_variants(args, data_root, overrides, template)
    train_images = sum(len(b[0]) for b in batches[WARMUP_BATCHES:])

    tiles = load_train(data_root).images
    tiles = np.resize(tiles, (args.predict_images, *tiles.shape[1:]))
    dataset = TileDataset(tiles, mean=cfg.data.mean, std=cfg.data.std, channels=cfg.data.channels)
    predict_batch = cfg.data.val_batch_size
    padded = torch.stack([dataset[i][0] for i in range(len(dataset))]).split(predict_batch)

    flops, unet_flops, reference_encoder = flops_against_unet(template.net, cfg, args.device)
    precisions = {name: precision for name, (_, precision) in variants.items()}
    figures = Figures(args, cfg, flops, precisions)
    for _ in range(args.repeats):
        seconds = bare_loop(copy.deepcopy(template), batches, args.device, args.precision)
        figures.add_rate("train bare", train_images / seconds)
        for name, (module, precision) in variants.items():
            timer = train_row(module, weights, batches, args.device, precision)
            figures.add_rate(name, train_images / timer.seconds, timer.warmup_seconds)
        net = copy.deepcopy(template.net)
        seconds = bare_predict(net, list(padded), args.device, args.precision)
        figures.add_rate("predict bare", len(dataset) / seconds)
        seconds = salt_predict(net, dataset, predict_batch, args.device, args.precision)
        figures.add_rate("predict salt", len(dataset) / seconds)
    for name, per_step in count_syncs_per_step(
        variants, template, weights, batches, args.device, args.precision
    ):
        figures.add_syncs(name, per_step)
    for name, rate in data_rates(cfg, args.device, args.repeats):
        figures.add_data(name, rate)
    figures.add_matmul(matmul_tflops(args.device))
    figures.finish()

    shapes = {
        "train_batch": cfg.data.batch_size,
        "predict_batch": predict_batch,
        "predict_images": len(dataset),
    }
    print_report(figures, list(variants), shapes, unet_flops, reference_encoder)
    if args.json:
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
