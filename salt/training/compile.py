"""Opt-in `torch.compile` that falls back to the eager module when compiling fails."""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import torch
from torch import nn

# inputs of this many kinds (shapes, strides, dtypes...) are probed with the state saved; beyond,
# only a call that compiles is probed, and without putting the buffers back
MAX_KINDS_PROBED = 32


def compile_options(setting: bool | Mapping | None) -> dict[str, Any] | None:
    """`module.compile` as `torch.compile` keyword arguments: false/null -> None (eager),
    true -> {} (the defaults), a mapping -> itself (e.g. {mode: reduce-overhead} for CUDA graphs)."""
    if setting is None or setting is False:
        return None
    if setting is True:
        return {}
    if isinstance(setting, Mapping):
        return dict(setting)
    raise ValueError(
        f"module.compile must be true, false or torch.compile options, got {setting!r}"
    )


def _graphs_compiled() -> int:
    """How many graphs dynamo has compiled in this process (any module): a call that changes it
    compiled something."""
    from torch._dynamo.utils import counters

    return counters["stats"]["unique_graphs"]


def _tensors(value: Any) -> Iterator[torch.Tensor]:
    """The tensors in a tensor, a mapping (e.g. SaltNet's dict of logits) or a list/tuple."""
    if isinstance(value, torch.Tensor):
        yield value
    elif isinstance(value, Mapping):
        for item in value.values():
            yield from _tensors(item)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _tensors(item)


class _SavedState:
    """The module's buffers (BatchNorm statistics) and the random number generators (CPU, and the
    CUDA devices the module or inputs are on), to undo a probe's forward."""

    def __init__(self, module: nn.Module, inputs: list[torch.Tensor]):
        self.buffers = [(b, b.detach().clone()) for b in module.buffers()]
        devices = {t.device for t in [*module.parameters(), *module.buffers(), *inputs]}
        self.cpu_rng = torch.get_rng_state()
        self.cuda_rng = {d: torch.cuda.get_rng_state(d) for d in devices if d.type == "cuda"}

    def restore(self) -> None:
        with torch.no_grad():
            for buffer, saved in self.buffers:
                buffer.copy_(saved)
        torch.set_rng_state(self.cpu_rng)
        for device, state in self.cuda_rng.items():
            torch.cuda.set_rng_state(state, device)


class CompiledOrEager:
    """Calls `torch.compile(module, **options)`; where compiling fails (a missing C compiler, an
    unsupported operation or backend), warns once and calls `module` itself from then on.

    Not an `nn.Module`, so the owner's state dict keeps the module's own keys. Compilation is lazy:
    failures show on the first call, or on a later one with new input shapes.

    The backward too: with AOTAutograd the backward graph is compiled at the first `backward()`,
    outside this wrapper, and dynamo reuses graphs across instances of a module class. So in
    grad mode a call with inputs of a kind not seen before (shapes, strides, dtypes, devices:
    the first call, a partial last batch) or one that compiled new graphs checks the backward
    before it returns (a probe): `torch.autograd.grad` of the sum of the outputs w.r.t. the
    parameters and inputs that require grad (nothing goes into `.grad`).
    Then the module's buffers (BatchNorm statistics) and random number generators are put back
    as they were before the call, and the call runs again for real: compiled, or eager where
    the probe failed, so the step that hits a failure gets the eager module's outputs and
    gradients. Those calls pay one more forward and backward; the others a counter read and a
    look-up of their kind. Calls without grad (validation) are not probed.
    """

    def __init__(self, module: nn.Module, **options):
        self.module = module
        self.options = options
        self.compiled: Callable[..., Any] | None = None
        self._kinds_seen: set[tuple] = set()
        try:
            self.compiled = torch.compile(module, **options)
        except Exception as error:  # e.g. an unknown backend or mode
            self._give_up(error)

    @property
    def active(self) -> bool:
        return self.compiled is not None

    def _give_up(self, error: Exception) -> None:
        self.compiled = None
        root: BaseException = error
        # dynamo wraps what the backend raised
        while (inner := getattr(root, "inner_exception", None) or root.__cause__) is not None:
            root = inner
        first_line = (str(root).strip().splitlines() or [""])[0]
        options = ", ".join(f"{k}={v}" for k, v in self.options.items())
        warnings.warn(
            f"torch.compile({options}) failed ({type(root).__name__}: {first_line}); "
            "running without it",
            RuntimeWarning,
            stacklevel=3,
        )

    def __call__(self, *args, **kwargs):
        if self.compiled is None:
            return self.module(*args, **kwargs)
        if not torch.is_grad_enabled():  # no backward to check
            try:
                return self.compiled(*args, **kwargs)
            except Exception as error:
                self._give_up(error)
            return self.module(*args, **kwargs)
        inputs = list(_tensors((args, kwargs)))
        saved = self._state_if_new_kind(inputs)
        try:
            return self._call_and_check(self.compiled, saved, inputs, args, kwargs)
        except Exception as error:
            # leaving the except clause drops the traceback, and with it the probe's graph
            self._give_up(error)
        if saved is not None:
            saved.restore()
        return self.module(*args, **kwargs)

    def _call_and_check(
        self,
        compiled: Callable[..., Any],
        saved: _SavedState | None,
        inputs: list[torch.Tensor],
        args: tuple,
        kwargs: dict,
    ) -> Any:
        graphs = _graphs_compiled()
        outputs = compiled(*args, **kwargs)
        if saved is None and _graphs_compiled() == graphs:  # known inputs, nothing compiled
            return outputs
        self._probe_backward(outputs, inputs)
        del outputs
        if saved is not None:
            saved.restore()
        return compiled(*args, **kwargs)

    def _state_if_new_kind(self, inputs: list[torch.Tensor]) -> _SavedState | None:
        """For inputs of a kind (what dynamo guards on) not seen before: the state to put back
        after the probe they get. None for a known kind."""
        kind = (
            self.module.training,
            tuple((t.shape, t.stride(), t.dtype, t.device, t.requires_grad) for t in inputs),
        )
        if kind in self._kinds_seen or len(self._kinds_seen) >= MAX_KINDS_PROBED:
            return None
        self._kinds_seen.add(kind)
        return _SavedState(self.module, inputs)

    def _probe_backward(self, outputs: Any, inputs: list[torch.Tensor]) -> None:
        """Runs the backward of `outputs` w.r.t. what requires grad, without keeping the result:
        compiles the backward graphs, raising where that fails."""
        ends = [t for t in _tensors(outputs) if t.requires_grad and t.is_floating_point()]
        wrt: list[torch.Tensor] = [p for p in self.module.parameters() if p.requires_grad]
        wrt += [t for t in inputs if t.requires_grad]
        if not ends or not wrt:
            return
        ones = [torch.ones_like(t) for t in ends]  # the gradient of the sum of the outputs
        with contextlib.ExitStack() as no_autocast:  # as a training step's backward()
            for kind in {t.device.type for t in ends}:
                if torch.amp.is_autocast_available(kind):
                    no_autocast.enter_context(torch.autocast(kind, enabled=False))
            torch.autograd.grad(ends, wrt, ones, allow_unused=True)
