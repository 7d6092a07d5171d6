"""Which trainer settings start several processes, and the launch mode refused (the multi-process
runs themselves are in tests/distributed/)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from salt.core.errors import ConfigError
from salt.training.distributed import check_launch_mode, is_multi_process
from salt.training.module import build_module


@pytest.mark.parametrize(
    ("trainer", "cuda_devices", "several"),
    [
        ({"devices": 1}, 8, False),
        ({"devices": 2}, 0, True),  # two CPU processes
        ({"devices": "auto"}, 4, True),  # every GPU
        ({"devices": "auto"}, 1, False),
        ({"devices": "auto", "accelerator": "cpu"}, 4, False),  # one CPU process
        ({"devices": -1}, 2, True),
        ({"devices": [0, 1]}, 2, True),
        ({"devices": "0,1"}, 2, True),
        ({"devices": 1, "num_nodes": 2}, 1, True),
    ],
)
def test_which_settings_start_several_processes(trainer, cuda_devices, several):
    assert is_multi_process(trainer, cuda_devices=cuda_devices) is several


def test_a_multirun_of_multi_process_jobs_is_refused_and_one_process_jobs_are_not(monkeypatch):
    for key in ("TORCHELASTIC_RUN_ID", "SLURM_NTASKS"):
        monkeypatch.delenv(key, raising=False)
    check_launch_mode({"devices": 2}, multirun=False)
    check_launch_mode({"devices": 1}, multirun=True)
    with pytest.raises(ConfigError, match=r"^trainer.devices: a multirun \(-m\) cannot start"):
        check_launch_mode({"devices": 2}, multirun=True)


def test_channels_last_is_set_in_setup_before_ddp_wraps_the_net(train_config):
    """Lightning calls the module's `setup` before the strategy wraps it (DDP's gradient buckets
    are laid out from the weights' strides then); `on_fit_start` came after the wrap."""
    module = build_module(train_config("module.channels_last=true"))
    convolutions = [m.weight for m in module.net.modules() if isinstance(m, nn.Conv2d)]
    assert not all(w.is_contiguous(memory_format=torch.channels_last) for w in convolutions)
    module.setup("fit")
    assert all(w.is_contiguous(memory_format=torch.channels_last) for w in convolutions)


def test_the_sigterm_flag_is_sent_every_n_steps_under_ddp_and_left_alone_in_one_process():
    from types import SimpleNamespace

    from salt.training.distributed import SigtermCheckEveryNSteps

    sent: list[int] = []

    def trainer(world_size: int) -> SimpleNamespace:
        loop = SimpleNamespace()
        stub = SimpleNamespace(world_size=world_size, global_step=0)
        loop._broadcast_sigterm_tensor = lambda: sent.append(stub.global_step)
        stub.fit_loop = SimpleNamespace(epoch_loop=loop)
        return stub

    def steps_sent(world_size: int, steps: int) -> list[int]:
        sent.clear()
        stub = trainer(world_size)
        SigtermCheckEveryNSteps(every_n_steps=10).on_fit_start(stub, None)
        for step in range(steps):
            stub.global_step = step
            stub.fit_loop.epoch_loop._broadcast_sigterm_tensor()
        return list(sent)

    assert steps_sent(world_size=2, steps=25) == [0, 10, 20]
    assert steps_sent(world_size=1, steps=3) == [0, 1, 2]
