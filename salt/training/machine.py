"""The trainer's accelerator and precision, fitted to the machine the run is on.

`trainer=gpu` (what the GPU experiments such as `resnet34` use) asks for `accelerator: auto` at
`bf16-mixed`: on a machine with a CUDA GPU that is the GPU at bf16; on one without, the run goes
on on the CPU and says so in one line: at bf16 autocast where the CPU has bf16 units
(`salt.core.cpu.cpu_has_bf16`), else at 32-bit. `trainer=cpu` (the CPU experiments) asks for
`bf16-mixed` too: kept on a CPU with bf16 units, 32-bit with a one-line note on one without;
`trainer.precision=32-true` forces float32 anywhere. An explicit
`trainer.accelerator=gpu` without a GPU is refused in one line naming the fix, and so are two
settings that cannot run where the trainer lands: `trainer.sync_batchnorm=true` on the CPU
(SyncBatchNorm runs on CUDA modules only) and `trainer.deterministic=true` on a GPU (the backward
of bilinear upsampling, which every SaltNet upsampling uses, has no deterministic CUDA kernel:
PyTorch raises at the first backward; `trainer.deterministic=warn` runs, deterministic wherever
PyTorch can be, with a warning for that kernel).
"""

from __future__ import annotations

from typing import Any

import torch

from salt.core.cpu import BF16_MIXED, cpu_has_bf16
from salt.core.errors import ConfigError

# precisions meant for a GPU: on the CPU they are slow emulations or unsupported
GPU_PRECISIONS = ("bf16-mixed", "16-mixed", "bf16-true", "16-true", "bf16", "16")
CPU_PRECISION = "32-true"


def fit_trainer_to_machine(
    trainer: Any, cuda_devices: int | None = None, cpu_bf16: bool | None = None
) -> str | None:
    """Resolve `trainer.accelerator` and `trainer.precision` (a DictConfig, changed in place) for
    a machine with `cuda_devices` CUDA GPUs and, if `cpu_bf16`, a CPU with bf16 units (by
    default: this machine's). Returns the note to show when a setting fell back (a GPU setting
    to the CPU, bf16 to 32-bit), else None; raises ConfigError for a GPU request this machine
    cannot meet."""
    if cuda_devices is None:
        cuda_devices = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if cpu_bf16 is None:
        cpu_bf16 = cpu_has_bf16()
    accelerator = str(trainer.get("accelerator") or "auto")
    precision = str(trainer.get("precision") or CPU_PRECISION)
    if accelerator in ("gpu", "cuda") and not cuda_devices:
        raise ConfigError(
            "trainer.accelerator",
            f"{accelerator} asked for, but this machine has no CUDA GPU: pass trainer=cpu "
            "(or trainer.accelerator=auto: the GPU where there is one, else the CPU)",
        )
    on_gpu = accelerator in ("gpu", "cuda", "auto") and bool(cuda_devices)
    if on_gpu and trainer.get("deterministic") is True:
        raise ConfigError(
            "trainer.deterministic",
            "true fails at the first backward on a GPU (bilinear upsampling, used by every "
            "SaltNet upsampling, has no deterministic CUDA backward): pass "
            "trainer.deterministic=warn (deterministic where PyTorch can be, a warning where not)",
        )
    if not on_gpu and trainer.get("sync_batchnorm"):
        raise ConfigError(
            "trainer.sync_batchnorm",
            "SyncBatchNorm runs on CUDA GPUs only: pass trainer.sync_batchnorm=false on the CPU",
        )
    if on_gpu:
        devices = trainer.get("devices", 1)
        if isinstance(devices, int) and not isinstance(devices, bool) and devices > cuda_devices:
            raise ConfigError(
                "trainer.devices",
                f"{devices} GPUs asked for, but this machine has {cuda_devices}: "
                f"pass trainer.devices={cuda_devices} or fewer",
            )
        return None
    if precision in BF16_MIXED and (cpu_bf16 or accelerator != "auto"):
        return _bf16_on_the_cpu(trainer, accelerator, cpu_bf16)
    if accelerator == "auto" and precision in GPU_PRECISIONS:
        trainer.accelerator = "cpu"
        trainer.precision = CPU_PRECISION
        return (
            f"no CUDA GPU found: training on the CPU at 32-bit precision "
            f"(trainer.precision={CPU_PRECISION}, not {precision}; trainer=cpu chooses this "
            "without this note)"
        )
    return None


def _bf16_on_the_cpu(trainer: Any, accelerator: str, cpu_bf16: bool) -> str | None:
    """bf16 autocast asked for, the run on the CPU (a GPU experiment without a GPU, on a CPU with
    bf16 units, or the CPU trainer): kept where the CPU has bf16 units, else 32-bit (emulated
    bf16 is slower than float32)."""
    trainer.accelerator = "cpu"
    if not cpu_bf16:
        trainer.precision = CPU_PRECISION
        return (
            "this CPU has no bf16 units (oneDNN reports none): training at 32-bit precision "
            f"(trainer.precision={CPU_PRECISION}, not bf16-mixed; pass "
            f"trainer.precision={CPU_PRECISION} to choose this without this note)"
        )
    trainer.precision = "bf16-mixed"
    if accelerator != "auto":
        return None
    return (
        "no CUDA GPU found: training on the CPU at bf16 autocast (this CPU has bf16 units; "
        "trainer=cpu chooses this without this note)"
    )
