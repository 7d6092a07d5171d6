"""The trainer's accelerator and precision fitted to the machine (salt.training.machine)."""

from __future__ import annotations

import pytest
from omegaconf import OmegaConf

from salt.core.errors import ConfigError
from salt.training.machine import fit_trainer_to_machine


def trainer(**settings):
    return OmegaConf.create(
        {"accelerator": "auto", "precision": "32-true", "devices": 1, **settings}
    )


@pytest.mark.parametrize("precision", ["bf16-mixed", "16-mixed", "bf16-true"])
def test_gpu_precision_with_auto_falls_back_to_the_cpu_at_32_bit_without_a_gpu_or_bf16(precision):
    settings = trainer(precision=precision)
    note = fit_trainer_to_machine(settings, cuda_devices=0, cpu_bf16=False)
    assert (settings.accelerator, settings.precision) == ("cpu", "32-true")
    assert note is not None and note.startswith("no CUDA GPU found: training on the CPU")
    assert "32-bit precision" in note and "\n" not in note


def test_bf16_with_auto_without_a_gpu_trains_on_the_cpu_at_bf16_where_it_has_bf16_units():
    settings = trainer(precision="bf16-mixed")
    note = fit_trainer_to_machine(settings, cuda_devices=0, cpu_bf16=True)
    assert (settings.accelerator, settings.precision) == ("cpu", "bf16-mixed")
    assert note == (
        "no CUDA GPU found: training on the CPU at bf16 autocast (this CPU has bf16 units; "
        "trainer=cpu chooses this without this note)"
    )


@pytest.mark.parametrize("precision", ["bf16-mixed", "bf16"])
def test_the_cpu_trainer_keeps_bf16_where_the_cpu_has_bf16_units(precision):
    settings = trainer(accelerator="cpu", precision=precision)
    assert fit_trainer_to_machine(settings, cuda_devices=0, cpu_bf16=True) is None
    assert (settings.accelerator, settings.precision) == ("cpu", "bf16-mixed")


@pytest.mark.parametrize("cuda_devices", [0, 1])
def test_the_cpu_trainer_falls_back_to_32_bit_with_a_note_on_a_cpu_without_bf16(cuda_devices):
    settings = trainer(accelerator="cpu", precision="bf16-mixed")
    note = fit_trainer_to_machine(settings, cuda_devices=cuda_devices, cpu_bf16=False)
    assert (settings.accelerator, settings.precision) == ("cpu", "32-true")
    assert note == (
        "this CPU has no bf16 units (oneDNN reports none): training at 32-bit precision "
        "(trainer.precision=32-true, not bf16-mixed; pass trainer.precision=32-true to choose "
        "this without this note)"
    )


@pytest.mark.parametrize("cpu_bf16", [True, False])
def test_32_bit_asked_for_stays_32_bit(cpu_bf16):
    settings = trainer(accelerator="cpu", precision="32-true")
    assert fit_trainer_to_machine(settings, cuda_devices=0, cpu_bf16=cpu_bf16) is None
    assert settings.precision == "32-true"


@pytest.mark.parametrize(
    "settings",
    [
        {"precision": "bf16-mixed"},  # auto on a GPU machine: the GPU at bf16
        {"accelerator": "gpu", "precision": "16-mixed"},
        {"accelerator": "auto", "devices": 2},
    ],
)
def test_a_machine_with_gpus_keeps_the_gpu_settings(settings):
    config = trainer(**settings)
    assert fit_trainer_to_machine(config, cuda_devices=2) is None
    assert config == trainer(**settings)


@pytest.mark.parametrize(
    "settings",
    [
        {},  # the default trainer: auto at 32-true
        {"accelerator": "cpu", "precision": "bf16-mixed"},  # bf16 on a CPU with bf16 units
        {"accelerator": "cpu", "precision": "16-mixed"},  # asked for on the CPU: Lightning's
    ],
)
def test_cpu_settings_stay_as_they_are(settings):
    config = trainer(**settings)
    assert fit_trainer_to_machine(config, cuda_devices=0, cpu_bf16=True) is None
    assert config == trainer(**settings)


@pytest.mark.parametrize("accelerator", ["gpu", "cuda"])
def test_an_explicit_gpu_without_one_is_refused_naming_the_fix(accelerator):
    with pytest.raises(ConfigError) as error:
        fit_trainer_to_machine(trainer(accelerator=accelerator), cuda_devices=0)
    assert str(error.value) == (
        f"trainer.accelerator: {accelerator} asked for, but this machine has no CUDA GPU: pass "
        "trainer=cpu (or trainer.accelerator=auto: the GPU where there is one, else the CPU)"
    )


def test_more_gpus_than_the_machine_has_is_refused():
    with pytest.raises(ConfigError, match=r"^trainer.devices: 4 GPUs asked for, but this "):
        fit_trainer_to_machine(trainer(accelerator="gpu", devices=4), cuda_devices=1)


@pytest.mark.parametrize("accelerator", ["gpu", "cuda", "auto"])
def test_deterministic_true_on_a_gpu_is_refused_naming_warn(accelerator):
    """Lightning's deterministic=true makes PyTorch raise at the first backward of bilinear
    upsampling on CUDA: refused before the run, with the setting that runs."""
    with pytest.raises(ConfigError) as error:
        fit_trainer_to_machine(trainer(accelerator=accelerator, deterministic=True), cuda_devices=1)
    message = str(error.value)
    assert message.startswith("trainer.deterministic: true fails at the first backward on a GPU")
    assert "trainer.deterministic=warn" in message and "\n" not in message


@pytest.mark.parametrize(
    ("settings", "cuda_devices"),
    [
        ({"deterministic": "warn"}, 1),  # warn_only: runs on a GPU
        ({"deterministic": True, "accelerator": "cpu"}, 1),  # the CPU of a GPU machine
        ({"deterministic": True}, 0),  # auto on a CPU-only machine
        ({"sync_batchnorm": True}, 1),  # SyncBatchNorm on the GPUs
    ],
)
def test_deterministic_and_sync_batchnorm_where_they_run_are_kept(settings, cuda_devices):
    config = trainer(**settings)
    fit_trainer_to_machine(config, cuda_devices=cuda_devices)
    assert all(config[key] == value for key, value in settings.items())


@pytest.mark.parametrize(
    ("settings", "cuda_devices"),
    [({"accelerator": "cpu"}, 1), ({}, 0), ({"precision": "bf16-mixed"}, 0)],
)
def test_sync_batchnorm_on_the_cpu_is_refused_in_one_line(settings, cuda_devices):
    """PyTorch's SyncBatchNorm raises on CPU modules once DDP starts: refused before."""
    with pytest.raises(ConfigError) as error:
        fit_trainer_to_machine(trainer(sync_batchnorm=True, **settings), cuda_devices=cuda_devices)
    assert str(error.value) == (
        "trainer.sync_batchnorm: SyncBatchNorm runs on CUDA GPUs only: pass "
        "trainer.sync_batchnorm=false on the CPU"
    )
