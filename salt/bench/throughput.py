"""Train-step and predict throughput of salt against bare PyTorch loops, in one process.

    python -m salt.bench.throughput [DATA_ROOT] [--experiment demo] [--batches 12] [--predict-images 256] [--repeats 3]
        [--device cpu] [--precision 32-true] [--peak-tflops X] [--variant OVERRIDE ...] [override ...]

Train: salt's LightningModule under a Lightning Trainer against `zero_grad / forward / loss /
backward / step` over the same net (in the same memory format), criterion, optimiser and
in-memory batches. Predict:
`salt.inference.tiles.predict_tiles` with flip TTA against two bare forwards (the tile and its flip)
per batch of the same images. Repeats are interleaved, so drifts in machine load hit both alike.
FLOPs per image are counted with torch's FlopCounterMode (training = 3x forward); the achieved
rate is compared with a float32 matmul measured on the same device and, where known or given,
with the device's nominal peak (Lightning's table of GPUs, or --peak-tflops). Each `--variant`
(a `module.*` override such as `module.compile=true`, or `trainer.precision=...`) adds a salt
training row measured in the same repeats, from the same weights and batches: the before and
after of a fast-path setting. Host
syncs per training step (values read back from the device, see `salt.bench.syncs`; not the
optimizer's step counters, which live on the host) are counted in an extra untimed pass. The
data rows time making one epoch of training batches on the device: per-sample albumentations in
DataLoader workers (as configured) against `data.on_device` (tiles on the device, augmented there
batch-wise). Without DATA_ROOT it generates a small data set. `--json PATH` also writes every
figure to PATH (see `figures`), for scripts such as benchmarks/gpu_check.py.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import platform
import statistics
import tempfile
import time
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


def nominal_peak(device: str, precision: str) -> float | None:
    """The device's nominal dense peak in TFLOP/s for `precision`, from Lightning's table of
    GPUs (`get_available_flops`); None for a CPU, or a GPU or precision it does not list."""
    dtype = PRECISION_DTYPES.get(precision)
    if dtype is None or torch.device(device).type != "cuda":
        return None
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
    """{row name: (module, precision)}: salt as configured, then one per `--variant`, all from
    the template's weights."""
    variants = {"train salt": (template, args.precision)}
    for variant in args.variant:
        key, _, value = variant.partition("=")
        if key == "trainer.precision":
            variants[f"train salt {variant}"] = (template, value)
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


def data_rates(cfg, device: str, repeats: int) -> dict[str, float]:
    """Images/s of one training epoch of batches, made by the per-sample CPU path (the config's
    albumentations and workers, batches copied to `device`) and by the on-device path."""
    cuda = torch.device(device).type == "cuda"
    per_sample = instantiate(cfg.data, pin_memory=cuda)
    per_sample.setup("fit")
    on_device = instantiate(cfg.data, on_device=True)
    on_device.setup("fit")
    loaders = {
        f"data per-sample, {cfg.data.num_workers} workers": (per_sample.train_dataloader(), device),
        "data on device": (on_device.train_dataloader().to(device), None),
    }
    rates = {}
    for name, (loader, target) in loaders.items():
        runs = []
        for epoch in range(repeats):
            loader.sampler.set_epoch(epoch)
            runs.append(time_epoch(loader, device=target))
        rates[name] = statistics.median(runs)
    return rates


def count_syncs_per_step(variants: dict, template, batches, device: str, precision: str) -> dict:
    """Host syncs per timed training step of the bare loop and of every salt row."""
    steps = len(batches) - WARMUP_BATCHES
    counted = {}
    syncs = HostSyncCounter(device)
    bare_loop(copy.deepcopy(template), batches, device, precision, syncs)
    counted["train bare"] = syncs.total / steps
    for name, (module, row_precision) in variants.items():
        syncs = HostSyncCounter(device)
        lightning_loop(copy.deepcopy(module), batches, device, row_precision, syncs)
        counted[name] = syncs.total / steps
    return counted


def figures(args, cfg, rates, warmups, syncs, data, flops, measured_peak, precisions) -> dict:
    """Every figure of the run as plain values: per row its median images/s, TFLOP/s, fraction of
    the nominal peak of its precision (null where unknown), host syncs per step and warm-up."""
    rows = {}
    for name, values in rates.items():
        factor = 3 if name.startswith("train") else 2
        tflops = statistics.median(values) * factor * flops / 1e12
        peak = args.peak_tflops or nominal_peak(args.device, precisions.get(name, args.precision))
        rows[name] = {
            "images_per_s": statistics.median(values),
            "tflops": tflops,
            "fraction_of_peak": tflops / peak if peak else None,
            "syncs_per_step": syncs.get(name),
            "warmup_s": statistics.median(warmups[name]) if name in warmups else None,
            "repeats": values,
        }
    return {
        "device": device_name(args.device),
        "torch": torch.__version__,
        "experiment": args.experiment,
        "encoder": cfg.model.encoder_name,
        "precision": args.precision,
        "train_batch_size": cfg.data.batch_size,
        "timed_batches": args.batches - WARMUP_BATCHES,
        "predict_images": args.predict_images,
        "repeats": args.repeats,
        "gflop_per_image_forward": flops / 1e9,
        "nominal_peak_tflops": args.peak_tflops or nominal_peak(args.device, args.precision),
        "measured_fp32_matmul_tflops": measured_peak,
        "rows": rows,
        "data_images_per_s": data,
    }


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
    parser.add_argument("--json", type=Path, help="also write every figure to this JSON file")
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
    overrides = list(args.overrides)
    if args.data_root is None:
        overrides.append("data.synthetic={n_train: 400, n_test: 1, seed: 0}")
    cfg = load_config(data_root, args.experiment, overrides)
    batches = fixed_batches(cfg, args.batches)
    pl.seed_everything(0, verbose=False)
    template = build_module(cfg)
    variants = train_variants(args, data_root, overrides, template)
    batch_size = cfg.data.batch_size
    train_images = sum(len(b[0]) for b in batches[WARMUP_BATCHES:])

    tiles = load_train(data_root).images
    tiles = np.resize(tiles, (args.predict_images, *tiles.shape[1:]))
    dataset = TileDataset(tiles, mean=cfg.data.mean, std=cfg.data.std, channels=cfg.data.channels)
    predict_batch = cfg.data.val_batch_size
    padded = torch.stack([dataset[i][0] for i in range(len(dataset))]).split(predict_batch)

    rows = ["train bare", *variants, "predict bare", "predict salt"]
    rates: dict[str, list[float]] = {k: [] for k in rows}
    warmups: dict[str, list[float]] = {k: [] for k in variants}
    for _ in range(args.repeats):
        seconds = bare_loop(copy.deepcopy(template), batches, args.device, args.precision)
        rates["train bare"].append(train_images / seconds)
        for name, (module, precision) in variants.items():
            timer = lightning_loop(copy.deepcopy(module), batches, args.device, precision)
            rates[name].append(train_images / timer.seconds)
            warmups[name].append(timer.warmup_seconds)
        net = copy.deepcopy(template.net)
        seconds = bare_predict(net, list(padded), args.device, args.precision)
        rates["predict bare"].append(len(dataset) / seconds)
        seconds = salt_predict(net, dataset, predict_batch, args.device, args.precision)
        rates["predict salt"].append(len(dataset) / seconds)
    median = {k: statistics.median(v) for k, v in rates.items()}
    syncs = count_syncs_per_step(variants, template, batches, args.device, args.precision)
    data = data_rates(cfg, args.device, args.repeats)

    flops, unet_flops, reference_encoder = flops_against_unet(template.net, cfg, args.device)
    measured_peak = matmul_tflops(args.device)
    peak = args.peak_tflops or nominal_peak(args.device, args.precision)
    achieved = {
        "train": median["train salt"] * 3 * flops / 1e12,
        "predict": median["predict salt"] * 2 * flops / 1e12,
    }
    print(
        f"device: {device_name(args.device)}; torch {torch.__version__}; "
        f"experiment={args.experiment} encoder={cfg.model.encoder_name} precision={args.precision}"
    )
    print(
        f"train batch {batch_size} x {args.batches - WARMUP_BATCHES} timed batches; predict batch "
        f"{predict_batch} x {len(dataset)} images with flip TTA; median of {args.repeats} "
        f"interleaved repeats; {flops / 1e9:.2f} GFLOP per image forward"
    )
    width = max(14, *(len(name) + 2 for name in [*rows, *data]))
    print(
        f"{'loop':<{width}}{'images/s':>10}{'TFLOP/s':>10}{'syncs/step':>12}{'warm-up s':>11}"
        f"{'all repeats':>26}"
    )
    for name, values in rates.items():
        factor = 3 if name.startswith("train") else 2
        tflops = statistics.median(values) * factor * flops / 1e12
        runs = "  ".join(f"{v:.1f}" for v in values)
        sync = f"{syncs[name]:.1f}" if name in syncs else "-"
        warmup = f"{statistics.median(warmups[name]):.1f}" if name in warmups else "-"
        print(
            f"{name:<{width}}{statistics.median(values):>10.1f}{tflops:>10.3f}{sync:>12}"
            f"{warmup:>11}{runs:>26}"
        )
    for name, rate in data.items():
        print(f"{name:<{width}}{rate:>10.1f}")
    for name in variants:
        ratio = median[name] / median["train bare"]
        print(f"ratio {name.replace('train salt', 'train salt/bare', 1)} {ratio:.3f}")
    print(f"ratio predict salt/bare {median['predict salt'] / median['predict bare']:.3f}")
    print(flops_line(flops, unet_flops, reference_encoder))
    print(f"fp32 matmul measured here: {measured_peak:.3f} TFLOP/s")
    for task, value in achieved.items():
        line = f"{task} achieves {value / measured_peak:.1%} of the measured fp32 matmul"
        if peak:
            line += f", {value / peak:.2%} of the nominal {peak:g} TFLOP/s peak"
        print(line)
    if args.json:
        precisions = {name: precision for name, (_, precision) in variants.items()}
        payload = figures(args, cfg, rates, warmups, syncs, data, flops, measured_peak, precisions)
        write_json(args.json, payload)
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
