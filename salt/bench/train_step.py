"""Training throughput of salt's LightningModule against a bare PyTorch loop, in one process.

    python -m salt.bench.train_step [DATA_ROOT] [--experiment demo] [--batches 20] [--repeats 3]
        [--device cpu] [--precision 32-true] [override ...]

Both loops train the same net with the same criterion and optimiser on the same batches, held in
memory, so only the training step differs: Lightning's loop, logging and hooks against
`zero_grad / forward / loss / backward / step`. Without DATA_ROOT it generates a small data set.
"""

from __future__ import annotations

import argparse
import copy
import statistics
import tempfile
import time
from pathlib import Path

import pytorch_lightning as pl
import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from omegaconf import open_dict

from salt.train import CONFIG_DIR, build_module

WARMUP_BATCHES = 3


class _Timer(pl.Callback):
    """Seconds from the end of the warm-up batches to the end of the epoch."""

    def __init__(self):
        self.started = 0.0
        self.seconds = 0.0

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if batch_idx == WARMUP_BATCHES:
            self._sync(pl_module.device)
            self.started = time.perf_counter()

    def on_train_epoch_end(self, trainer, pl_module):
        self._sync(pl_module.device)
        self.seconds = time.perf_counter() - self.started

    @staticmethod
    def _sync(device):
        if device.type == "cuda":
            torch.cuda.synchronize(device)


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
    batches = []
    while len(batches) < n_batches:
        for batch in datamodule.train_dataloader():
            batches.append(batch)
            if len(batches) == n_batches:
                break
    return batches


def bare_loop(module, batches, device, precision: str) -> float:
    net, criterion = module.net.to(device).train(), module.loss
    optimizer = module.optimizer_factory(params=net.parameters())
    dtype = {"bf16-mixed": torch.bfloat16, "16-mixed": torch.float16}.get(precision)
    started = 0.0
    for index, (images, masks) in enumerate(batches):
        if index == WARMUP_BATCHES:
            _Timer._sync(torch.device(device))
            started = time.perf_counter()
        images, masks = images.to(device, non_blocking=True), masks.to(device, non_blocking=True)
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast(torch.device(device).type, dtype=dtype, enabled=dtype is not None):
            loss = criterion(net(images), masks)["loss"]
        loss.backward()
        optimizer.step()
    _Timer._sync(torch.device(device))
    return time.perf_counter() - started


def lightning_loop(module, batches, device, precision: str) -> float:
    timer = _Timer()
    trainer = pl.Trainer(
        accelerator=device,
        devices=1,
        precision=precision,
        max_epochs=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        limit_val_batches=0,
        callbacks=[timer],
    )
    trainer.fit(module, train_dataloaders=batches)
    return timer.seconds


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data_root", nargs="?", type=Path)
    parser.add_argument("--experiment", default="demo")
    parser.add_argument("--batches", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--precision", default="32-true")
    parser.add_argument("overrides", nargs="*", help="Hydra overrides, e.g. data.batch_size=32")
    args = parser.parse_args(argv)
    if args.batches <= WARMUP_BATCHES:
        parser.error(f"--batches must exceed the {WARMUP_BATCHES} warm-up batches")

    data_root = args.data_root or Path(tempfile.mkdtemp(prefix="salt-bench-data-"))
    overrides = list(args.overrides)
    if args.data_root is None:
        overrides.append("data.synthetic={n_train: 400, n_test: 1, seed: 0}")
    cfg = load_config(data_root, args.experiment, overrides)
    batches = fixed_batches(cfg, args.batches)
    pl.seed_everything(0, verbose=False)
    template = build_module(cfg)
    images_timed = sum(len(b[0]) for b in batches[WARMUP_BATCHES:])

    rates = {"bare": [], "salt": []}
    for _ in range(args.repeats):  # interleaved, so drifts in machine load hit both alike
        seconds = bare_loop(copy.deepcopy(template), batches, args.device, args.precision)
        rates["bare"].append(images_timed / seconds)
        seconds = lightning_loop(copy.deepcopy(template), batches, args.device, args.precision)
        rates["salt"].append(images_timed / seconds)

    bare, salt = statistics.median(rates["bare"]), statistics.median(rates["salt"])
    print(
        f"experiment={args.experiment} batch={cfg.data.batch_size} device={args.device} "
        f"precision={args.precision} timed_batches={args.batches - WARMUP_BATCHES} "
        f"repeats={args.repeats} threads={torch.get_num_threads()}"
    )
    print(f"{'loop':<8}{'images/s (median)':>20}{'all runs':>32}")
    for name, values in rates.items():
        print(
            f"{name:<8}{statistics.median(values):>20.1f}{'  '.join(f'{v:.1f}' for v in values):>32}"
        )
    print(f"ratio salt/bare {salt / bare:.3f}")


if __name__ == "__main__":
    main()
