"""Opt-in `torch.compile` that falls back to the eager module when compiling fails."""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch import nn


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


class CompiledOrEager:
    """Calls `torch.compile(module, **options)`; where compiling fails (a missing C compiler, an
    unsupported operation or backend), warns once and calls `module` itself from then on.

    Not an `nn.Module`, so the owner's state dict keeps the module's own keys. Compilation is lazy:
    failures show on the first call, or on a later one with new input shapes.
    """

    def __init__(self, module: nn.Module, **options):
        self.module = module
        self.options = options
        self.compiled: Callable[..., Any] | None = None
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
        if self.compiled is not None:
            try:
                return self.compiled(*args, **kwargs)
            except Exception as error:
                self._give_up(error)
        return self.module(*args, **kwargs)
