"""Count the operations that make the host wait for the device, on any device (CPU included).

On a GPU, `torch.cuda.set_sync_debug_mode("warn")` reports the synchronising calls; it does
nothing on a CPU. `HostSyncCounter` intercepts the same operations at the ATen dispatcher, so a
test on a CPU can show that a training step would not stall a GPU: reading a value (`.item()`,
`bool()`, `float()`), an operation whose output size depends on the data (boolean-mask
indexing, `nonzero`, `masked_select`, `unique`), or a copy from the device to the host (`.cpu()`,
`.tolist()`, `.numpy(force=True)`, `.to("cpu")`; on a CPU these copy nothing, so only tensors of
another device count).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

import torch
from torch.utils._python_dispatch import TorchDispatchMode

aten = torch.ops.aten
# the value (or the size of the output) must reach the host before the call returns
SYNCING_OPS = {
    aten._local_scalar_dense.default: "read a value (.item(), bool(), float())",
    aten.is_nonzero.default: "read a value (bool())",
    aten.equal.default: "torch.equal",
    aten.nonzero.default: "nonzero",
    aten.masked_select.default: "masked_select",
    aten._unique2.default: "unique",
    aten.unique_consecutive.default: "unique_consecutive",
    aten.unique_dim.default: "unique",
    aten.repeat_interleave.Tensor: "repeat_interleave without output_size",
}
INDEXING_OPS = {aten.index.Tensor, aten.index_put.default, aten.index_put_.default}
BOOLEAN_MASK_INDEXING = "boolean-mask indexing"
COPY_TO_HOST = "copy to the host (.cpu(), .tolist(), .to('cpu'))"


def _copied_to_host(func, args, kwargs) -> torch.Tensor | None:
    """The tensor that `func` copies from another device to the CPU, if it does."""
    if func is aten._to_copy.default:  # .cpu(), .to("cpu"), .tolist(), .numpy(force=True)
        source, target = args[0], (kwargs or {}).get("device")
        to_host = target is not None and torch.device(target).type == "cpu"
    elif func is aten.copy_.default:  # host_tensor.copy_(device_tensor)
        source, to_host = args[1], args[0].device.type == "cpu"
    else:
        return None
    if to_host and isinstance(source, torch.Tensor) and source.device.type != "cpu":
        return source
    return None


def _has_boolean_index(args) -> bool:
    indices = args[1] if len(args) > 1 else ()
    return any(
        isinstance(index, torch.Tensor) and index.dtype in (torch.bool, torch.uint8)
        for index in indices or ()
    )


class HostSyncCounter(TorchDispatchMode):
    """`with HostSyncCounter() as syncs: ...`; `syncs.total`, `syncs.by_kind` afterwards.

    Only tensors on `device` count (all devices when None), and not those passed to `ignore`:
    the step counters of optimizers live on the host even in GPU training, so reading them costs
    no wait (see `optimizer_step_counters`).
    """

    def __init__(self, device: torch.device | str | None = None):
        super().__init__()
        self.device = None if device is None else torch.device(device)
        self.by_kind: Counter[str] = Counter()
        self._ignored: set[int] = set()

    def ignore(self, tensors: Iterable[torch.Tensor]) -> None:
        self._ignored.update(t.data_ptr() for t in tensors)

    @property
    def total(self) -> int:
        return sum(self.by_kind.values())

    def _counts(self, tensor) -> bool:
        if isinstance(tensor, torch.Tensor) and tensor.data_ptr() in self._ignored:
            return False
        if self.device is None:
            return True
        return isinstance(tensor, torch.Tensor) and tensor.device.type == self.device.type

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kind, tensor = SYNCING_OPS.get(func), args[0] if args else None
        if kind is None and func in INDEXING_OPS and _has_boolean_index(args):
            kind = BOOLEAN_MASK_INDEXING
        if kind is None:
            tensor = _copied_to_host(func, args, kwargs)
            kind = None if tensor is None else COPY_TO_HOST
        if kind is not None and self._counts(tensor):
            self.by_kind[kind] += 1
        return func(*args, **(kwargs or {}))


def optimizer_step_counters(optimizers: Iterable[torch.optim.Optimizer]) -> list[torch.Tensor]:
    """The per-parameter "step" tensors of the optimizers' states (Adam's, for instance)."""
    return [
        state["step"]
        for optimizer in optimizers
        for state in optimizer.state.values()
        if isinstance(state.get("step"), torch.Tensor)
    ]


def synchronize(device: str | torch.device) -> None:
    """Wait until `device` has finished the work queued on it (for a timer that reads the clock:
    CUDA runs asynchronously); nothing to wait for on a CPU."""
    device = torch.device(device)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
