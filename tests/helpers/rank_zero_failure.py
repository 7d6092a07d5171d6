"""A callback that makes rank 0 fail after the fit, in the part of the end of a fit it does alone
(`+callbacks.fail._target_=tests.helpers.rank_zero_failure.FailAfterFit`): when training ends,
rank 0's `target` (`module:function`, the OOF prediction by default) is replaced by one that
raises the out-of-memory error a GPU would."""

from __future__ import annotations

import importlib

import pytorch_lightning as pl
import torch


class FailAfterFit(pl.Callback):
    def __init__(
        self,
        target: str = "salt.training.finish:save_out_of_fold",
        message: str = "CUDA out of memory (injected by the test)",
    ):
        self.target, self.message = target, message

    def on_train_end(self, trainer, pl_module) -> None:
        if not trainer.is_global_zero:
            return
        module, name = self.target.split(":")

        def fail(*args, **kwargs):
            raise torch.OutOfMemoryError(self.message)

        setattr(importlib.import_module(module), name, fail)
