"""What this CPU computes natively: bf16 arithmetic, as torch's CPU kernels report it.

salt trains and predicts at bf16 autocast on a CPU whose oneDNN (the library behind torch's CPU
convolutions and matrix products) has bf16 kernels: AVX512-BF16 or AMX. There a training step
of a ResNet U-Net is about 1.75x the float32 one; on a CPU without them oneDNN emulates bf16,
slower than float32, so salt stays at float32 there. What is asked is oneDNN's own check, not
the CPU's name or /proc/cpuinfo: it is what decides which kernels run.
"""

from __future__ import annotations

import functools

import torch

# precision names that mean bf16 autocast (Lightning's spelling and its short form)
BF16_MIXED = ("bf16-mixed", "bf16")


@functools.cache
def cpu_has_bf16() -> bool:
    """Whether oneDNN runs bf16 convolutions and matrix products natively on this CPU."""
    if not torch.backends.mkldnn.is_available():
        return False
    # torch's own test suites and its CPU autocast docs use this check; it is not public API,
    # so a torch without it reads as "no bf16" (float32: slower, never wrong)
    check = getattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", None)
    try:
        return bool(check()) if check is not None else False
    except RuntimeError:
        return False
