"""What only a CUDA GPU shows: bf16 training steps that never wait for the device, fp16 training
through its GradScaler, bf16 inference against float32, the CUDA generator across a resume, and
the on-device data path. Skipped without CUDA (`pytest -rs` says why); `pytest -m gpu` runs them
on a GPU machine. Seconds each on a GPU: the smoke model on a few batches of 4 tiles."""

from __future__ import annotations

import math

import numpy as np
import pytest
import pytorch_lightning as pl
import torch
from hydra.utils import instantiate as hydra_instantiate

import salt.data.datamodule
import salt.train
from salt.bench.syncs import HostSyncCounter
from salt.data.dataset import TileDataset
from salt.data.device_loader import DeviceTileLoader
from salt.data.io import load_test
from salt.inference.tiles import load_model, predict_tiles
from salt.train import train
from tests.helpers.interrupt import Interrupted, StopAt
from tests.helpers.run_if import requires_bf16, requires_cuda

TRAIN_BATCHES = 6
# bf16 against float32 probabilities of the tiny checkpoint (sigmoid outputs in 0..1). bf16
# keeps 8 bits of mantissa: on the CPU (torch.autocast("cpu", torch.bfloat16)) these
# checkpoints differ from float32 by at most 3.5e-4 per pixel (1.2e-4 on average) and 9e-4 in
# "has salt"; the bounds leave a margin of about 10 for the GPU's other kernels.
BF16_MAX_DIFFERENCE = 5e-3
BF16_MEAN_DIFFERENCE = 1e-3


def on_gpu(*overrides: str, precision: str = "bf16-mixed") -> tuple[str, ...]:
    """The smoke experiment on one GPU: `TRAIN_BATCHES` batches of 4 tiles, nothing after fit."""
    return (
        "trainer.accelerator=gpu",
        "trainer.devices=1",
        f"trainer.precision={precision}",
        f"trainer.limit_train_batches={TRAIN_BATCHES}",
        "trainer.limit_val_batches=2",
        "data.batch_size=4",
        "oof=false",
        "plots=false",
        *overrides,
    )


def train_with(cfg, monkeypatch, *callbacks: pl.Callback):
    """`train(cfg)` with `callbacks` added to the trainer's."""

    def instantiate(config, *args, **kwargs):
        if config is cfg.trainer:
            kwargs["callbacks"] = [*kwargs.get("callbacks", []), *callbacks]
        return hydra_instantiate(config, *args, **kwargs)

    monkeypatch.setattr(salt.train, "instantiate", instantiate)
    return train(cfg)


class NoSyncsWindow(pl.Callback):
    """From the start of training batch 1 to the start of the last batch (whole steps, logging
    and the progress bar between them): the host syncs and device-to-host copies of CUDA
    tensors are counted, and any call that makes the host wait for the GPU raises
    (`torch.cuda.set_sync_debug_mode("error")`, naming it)."""

    def __init__(self):
        self.syncs = HostSyncCounter("cuda")
        self.counting = False
        self.counted_batches: list[int] = []
        self.devices: set[str] = set()

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if batch_idx == trainer.num_training_batches - 1:
            self.stop()
        if batch_idx == 1:
            self.syncs.__enter__()
            torch.cuda.set_sync_debug_mode("error")
            self.counting = True
        if self.counting:
            self.counted_batches.append(batch_idx)
            self.devices.update({str(pl_module.device), *(str(t.device) for t in batch)})

    def stop(self):
        if self.counting:
            torch.cuda.set_sync_debug_mode("default")
            self.syncs.__exit__(None, None, None)
            self.counting = False

    def on_exception(self, trainer, pl_module, exception):
        self.stop()


@requires_bf16
def test_bf16_training_steps_never_wait_for_the_gpu(train_config, monkeypatch):
    """bf16-mixed, deep supervision and the classifier head, Adam, the rich progress bar and a
    step-wise logged loss: batches 1..4 read nothing back and copy nothing to the host (the
    planned read, the NaN check, comes after the epoch's last batch here, outside the window)."""
    window = NoSyncsWindow()
    cfg = train_config(
        *on_gpu(
            "loss=deep_supervision",
            "model.deep_supervision=true",
            "model.classifier=true",
            "callbacks.progress_bar={_target_: pytorch_lightning.callbacks.RichProgressBar}",
            "trainer.max_epochs=1",
            "trainer.log_every_n_steps=50",
            "module.finite_check_every_n_steps=100",
        )
    )
    try:
        metrics, objects = train_with(cfg, monkeypatch, window)
    finally:
        window.stop()
        torch.cuda.set_sync_debug_mode("default")
    assert str(objects["trainer"].precision) == "bf16-mixed"
    assert window.counted_batches == [1, 2, 3, 4] and window.devices == {"cuda:0"}
    assert window.syncs.total == 0, dict(window.syncs.by_kind)
    assert math.isfinite(metrics["train_loss_epoch"])


class OptimizerSteps(pl.Callback):
    """Optimizer steps asked for (`on_before_optimizer_step`) and taken (the optimizer's step
    ran: the GradScaler skips it when the scaled gradients overflowed)."""

    def __init__(self):
        self.asked = self.taken = 0

    def on_train_start(self, trainer, pl_module):
        for optimizer in trainer.optimizers:
            optimizer.register_step_post_hook(lambda *args: self.took())

    def took(self):
        self.taken += 1

    def on_before_optimizer_step(self, trainer, pl_module, optimizer):
        self.asked += 1


@requires_cuda
def test_fp16_mixed_trains_through_its_grad_scaler(train_config, monkeypatch):
    """16-mixed: Lightning's GradScaler scales the loss, skips the steps whose gradients
    overflowed and halves its scale for each; the others are taken and the loss stays finite."""
    steps = OptimizerSteps()
    cfg = train_config(*on_gpu("trainer.max_epochs=2", precision="16-mixed"))
    initial = None

    class Weights(pl.Callback):
        def on_train_start(self, trainer, pl_module):
            nonlocal initial
            initial = {k: v.detach().clone() for k, v in pl_module.net.named_parameters()}

    metrics, objects = train_with(cfg, monkeypatch, steps, Weights())
    scaler = objects["trainer"].precision_plugin.scaler
    assert isinstance(scaler, torch.amp.GradScaler) and scaler.is_enabled()
    assert steps.asked == objects["trainer"].global_step == 2 * TRAIN_BATCHES
    assert 1 <= steps.taken <= steps.asked
    # no growth before 2000 good steps; one halving per skipped step
    assert scaler.get_scale() == 2.0**16 * 0.5 ** (steps.asked - steps.taken)
    assert math.isfinite(metrics["train_loss_epoch"]) and math.isfinite(metrics["val_loss"])
    final = dict(objects["module"].net.named_parameters())  # on the CPU after fit
    assert any(not torch.equal(initial[k].cpu(), final[k]) for k in initial)  # steps taken
    assert all(torch.isfinite(v).all() for v in final.values())


@requires_bf16
def test_bf16_inference_agrees_with_float32(synthetic_root, tmp_path):
    """`predict_tiles` of a tiny checkpoint with flip TTA: bf16 autocast on the GPU against
    float32 on the CPU, within `BF16_MAX_DIFFERENCE` per pixel and `BF16_MEAN_DIFFERENCE` on
    average, for the masks and the "has salt" head; returned as float32, and not float32's
    numbers (the autocast really ran)."""
    from tests.helpers.tiny_net import write_checkpoint

    net, inputs = load_model(write_checkpoint(tmp_path / "tiny.ckpt", seed=0))
    dataset = TileDataset(load_test(synthetic_root).images, **inputs)
    tta = ("none", "hflip")
    reference = predict_tiles(net, dataset, batch_size=4, device="cpu", tta=tta)
    bf16 = predict_tiles(net, dataset, batch_size=4, device="cuda", tta=tta, precision="bf16-mixed")
    assert bf16.masks.dtype == np.float32 and bf16.masks.shape == reference.masks.shape
    assert bf16.salt is not None and bf16.salt.dtype == np.float32
    masks = np.abs(bf16.masks - reference.masks)
    salt = np.abs(bf16.salt - reference.salt)
    assert masks.max() <= BF16_MAX_DIFFERENCE and masks.mean() <= BF16_MEAN_DIFFERENCE
    assert salt.max() <= BF16_MAX_DIFFERENCE
    assert masks.max() > 0  # bf16, not float32 again


def generator_state(device: str) -> torch.Tensor:
    return torch.cuda.get_rng_state() if device == "cuda" else torch.get_rng_state()


def next_draws(device: str, state: torch.Tensor) -> torch.Tensor:
    """The next numbers the global generator of `device` would draw from `state`."""
    generator = torch.Generator(device=device)
    generator.set_state(state)
    return torch.rand(8, generator=generator, device=device).cpu()


class DrawEveryBatch(pl.Callback):
    """Draws from the training device's global generator after every training batch, as dropout
    does, and records the generator's state where every batch starts."""

    def __init__(self, device: str):
        self.device = device
        self.states: dict[tuple[int, int], torch.Tensor] = {}

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        self.states[(trainer.current_epoch, batch_idx)] = generator_state(self.device)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        torch.rand(16, device=self.device)


@pytest.mark.parametrize(
    "device",
    [pytest.param("cpu", marks=pytest.mark.slow), pytest.param("cuda", marks=requires_cuda)],
)
def test_resume_restores_the_global_generator_of_the_device(
    device, train_config, tmp_path, monkeypatch
):
    """A run stopped at epoch 1, batch 1 and resumed draws, in epoch 1, what the run left alone
    draws: the generator state saved with last.ckpt (after epoch 0) is restored. On the CPU
    the generator is torch's, on a GPU the CUDA one (dropout on the GPU draws from it)."""
    overrides = ("trainer.max_epochs=2", "trainer.limit_train_batches=3", "data.batch_size=4")
    overrides += ("oof=false", "plots=false")
    if device == "cuda":
        overrides += ("trainer.accelerator=gpu", "trainer.devices=1")
    straight, stopped = tmp_path / "straight", tmp_path / "stopped"

    alone = DrawEveryBatch(device)
    train_with(train_config(*overrides, output_dir=straight), monkeypatch, alone)
    with pytest.raises(Interrupted):
        train_with(
            train_config(*overrides, output_dir=stopped),
            monkeypatch,
            DrawEveryBatch(device),
            StopAt(epoch=1, batch=1),
        )
    resumed = DrawEveryBatch(device)
    train_with(
        train_config(*overrides, f"resume={stopped}", output_dir=tmp_path / "unused"),
        monkeypatch,
        resumed,
    )
    assert sorted(resumed.states) == [(1, 0), (1, 1), (1, 2)]
    for key, state in resumed.states.items():
        assert torch.equal(state, alone.states[key]), f"epoch {key[0]}, batch {key[1]}"
        assert torch.equal(next_draws(device, state), next_draws(device, alone.states[key]))
    # the draws of epoch 0 moved the generator: an unrestored one would not be where it was
    assert not torch.equal(alone.states[(1, 0)], alone.states[(0, 0)])


class BatchDevices(pl.Callback):
    """The devices of every training and validation batch's tensors."""

    def __init__(self):
        self.devices: set[str] = set()
        self.batches = 0

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        self.batches += 1
        self.devices.update(str(t.device) for t in batch)

    def on_validation_batch_start(self, trainer, pl_module, batch, batch_idx, dataloader_idx=0):
        self.devices.update(str(t.device) for t in batch)


@requires_cuda
def test_on_device_data_trains_with_its_batches_on_the_gpu(train_config, monkeypatch):
    """`data.on_device=true`: the tiles go to the GPU once (train and validation images and
    masks: four copies in two epochs), every batch is gathered and augmented there, and an
    augmented epoch of the loader never waits for the GPU."""
    uploads = []
    original = salt.data.datamodule.tiles_to_tensor

    def counting(tiles, device="cpu"):
        uploads.append(str(torch.device(device)))
        return original(tiles, device)

    monkeypatch.setattr(salt.data.datamodule, "tiles_to_tensor", counting)
    devices = BatchDevices()
    cfg = train_config(*on_gpu("data.on_device=true", "trainer.max_epochs=2"))
    metrics, objects = train_with(cfg, monkeypatch, devices)
    assert devices.batches == 2 * TRAIN_BATCHES and devices.devices == {"cuda:0"}
    assert uploads == ["cuda:0"] * 4
    assert math.isfinite(metrics["best_val_score"]) and math.isfinite(metrics["train_loss_epoch"])

    loader = objects["datamodule"].train_dataloader()
    assert isinstance(loader, DeviceTileLoader) and loader.device.type == "cuda"
    assert loader.augment is not None and len(uploads) == 4  # still cached
    syncs = HostSyncCounter("cuda")
    torch.cuda.synchronize()
    try:
        torch.cuda.set_sync_debug_mode("error")
        with syncs:
            batches = list(loader)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert syncs.total == 0, dict(syncs.by_kind)
    assert len(batches) == len(loader) and batches[0][0].device.type == "cuda"
