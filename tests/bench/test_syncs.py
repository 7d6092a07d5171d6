"""`HostSyncCounter` counts copies from a device to the host: `.cpu()`, `.tolist()`,
`.to("cpu")`, `host.copy_(device)`. Checked here with tensors on the meta device (a device
without data: the copy fails after the counter has seen it), on a GPU in tests/gpu."""

from __future__ import annotations

import pytest
import torch

from salt.bench.syncs import COPY_TO_HOST, HostSyncCounter


def test_copies_from_another_device_to_the_host_are_counted():
    device_tensor = torch.zeros(3, device="meta")
    host = torch.zeros(3)
    copies = [
        device_tensor.cpu,
        device_tensor.tolist,
        lambda: device_tensor.to("cpu", non_blocking=True),
        lambda: device_tensor.numpy(force=True),
        lambda: host.copy_(device_tensor),
    ]
    with HostSyncCounter() as syncs:
        for copy in copies:
            with pytest.raises(NotImplementedError, match="meta"):
                copy()
    assert dict(syncs.by_kind) == {COPY_TO_HOST: len(copies)}


def test_copies_within_a_device_or_to_it_are_not():
    device_tensor = torch.zeros(3, device="meta")
    host = torch.ones(3)
    with HostSyncCounter() as syncs:
        host.cpu(), host.clone(), host.to(torch.float64), host.tolist(), host.numpy()
        torch.zeros(3).copy_(host)
        host.to("meta"), device_tensor.clone(), device_tensor.to(torch.float16)
        torch.zeros(3, device="meta").copy_(host)
    assert syncs.total == 0, dict(syncs.by_kind)


def test_only_copies_from_the_counted_device_count():
    device_tensor = torch.zeros(3, device="meta")
    with HostSyncCounter("cuda") as syncs:
        with pytest.raises(NotImplementedError):
            device_tensor.cpu()
    assert syncs.total == 0
    with HostSyncCounter("meta") as syncs:
        with pytest.raises(NotImplementedError):
            torch.zeros(3).copy_(device_tensor)
    assert syncs.total == 1
