"""Conditions a test needs, as pytest marks: `@requires_cuda`, or `@run_if(cuda=True, bf16=True)`.

In the style of lightning-hydra-template's `tests/helpers/run_if.py`: the test is skipped, with
the reason shown by `pytest -rs`, where the condition does not hold; where it holds, the test
runs. Every test that needs a GPU also carries the `gpu` marker, so `pytest -m gpu` runs exactly
those on a GPU machine and `pytest -m "not gpu"` leaves them out. The marks work as a decorator
and as `pytest.param(..., marks=requires_cuda)`.
"""

from __future__ import annotations

import pytest
import torch


class Marks(list):
    """pytest marks applied together: a decorator, and a `marks=` value of `pytest.param`."""

    def __call__(self, test):
        for mark in self:
            test = mark(test)
        return test


def run_if(cuda: bool = False, bf16: bool = False) -> Marks:
    """Skip unless a CUDA device is available (`cuda`) and it computes in bfloat16 (`bf16`)."""
    reasons = []
    available = torch.cuda.is_available()
    if (cuda or bf16) and not available:
        reasons.append("a CUDA GPU (torch.cuda.is_available() is False)")
    elif bf16 and not torch.cuda.is_bf16_supported():
        reasons.append("a GPU with bfloat16 (torch.cuda.is_bf16_supported() is False)")
    marks = Marks([pytest.mark.skipif(bool(reasons), reason=f"needs {' and '.join(reasons)}")])
    if cuda or bf16:
        marks.append(pytest.mark.gpu)
    return marks


requires_cuda = run_if(cuda=True)
requires_bf16 = run_if(bf16=True)
