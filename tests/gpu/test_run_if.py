"""`run_if`/`requires_cuda`: skip (with the reason) where the GPU is missing, run where it is."""

from __future__ import annotations

import torch

from tests.helpers.run_if import run_if


def skip(marks) -> tuple[bool, str]:
    skipif = next(mark for mark in marks if mark.name == "skipif")
    return skipif.args[0], skipif.kwargs["reason"]


def test_gpu_tests_are_skipped_without_cuda_and_marked_gpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    for marks in (run_if(cuda=True), run_if(bf16=True)):
        assert skip(marks) == (True, "needs a CUDA GPU (torch.cuda.is_available() is False)")
        assert [mark.name for mark in marks] == ["skipif", "gpu"]
    assert skip(run_if())[0] is False and [m.name for m in run_if()] == ["skipif"]


def test_they_run_with_cuda_and_bf16_needs_its_support(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: False)
    assert skip(run_if(cuda=True))[0] is False
    assert skip(run_if(bf16=True)) == (
        True,
        "needs a GPU with bfloat16 (torch.cuda.is_bf16_supported() is False)",
    )


@run_if(cuda=True)
def test_the_marks_decorate_a_test():
    assert torch.cuda.is_available()  # skipped where it is not


def test_a_decorated_test_carries_them():
    names = [mark.name for mark in test_the_marks_decorate_a_test.pytestmark]
    assert sorted(names) == ["gpu", "skipif"]
