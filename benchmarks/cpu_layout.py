"""Training-step images/s of an experiment's net and loss at float32 and bf16 autocast, NCHW
and channels_last, on the CPU: which layout is fastest at which precision.

    OMP_NUM_THREADS=1 taskset -c 0 python benchmarks/cpu_layout.py resnet34_cpu [STEPS]

Batch 16 of random 128 x 128 tiles, one Adam step per timing, the four arms interleaved (so a
change of the machine's load reaches every arm alike), the median of STEPS (6) after one warm-up
step each. Random encoder weights (no network).
"""

from __future__ import annotations

import copy
import statistics
import sys
import time

import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate

from salt.core.config import CONFIG_DIR

BATCH = 16


def main(experiment: str, steps: int) -> None:
    with initialize_config_dir(str(CONFIG_DIR), version_base="1.3"):
        cfg = compose("train", overrides=[f"experiment={experiment}", "model.encoder_weights=null"])
    template = instantiate(cfg.model)
    criterion = instantiate(cfg.loss)
    images = torch.randn(BATCH, 1, 128, 128)
    masks = (torch.rand(BATCH, 1, 128, 128) > 0.5).float()
    arms = {}
    for precision in ("float32", "bf16"):
        for channels_last in (False, True):
            net = copy.deepcopy(template).train()
            if channels_last:
                net = net.to(memory_format=torch.channels_last)
            arms[precision, channels_last] = (net, torch.optim.Adam(net.parameters(), 1e-3))

    def step(net, optimizer, precision: str, channels_last: bool) -> float:
        started = time.perf_counter()
        batch = images.contiguous(memory_format=torch.channels_last) if channels_last else images
        optimizer.zero_grad()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
            loss = criterion(net(batch), masks)["loss"]
        loss.backward()
        optimizer.step()
        return time.perf_counter() - started

    seconds: dict[tuple[str, bool], list[float]] = {arm: [] for arm in arms}
    for repeat in range(steps + 1):
        for arm, (net, optimizer) in arms.items():
            taken = step(net, optimizer, *arm)
            if repeat:
                seconds[arm].append(taken)
    for (precision, channels_last), times in seconds.items():
        layout = "channels_last" if channels_last else "NCHW"
        rate = BATCH / statistics.median(times)
        print(f"{experiment} {precision:8s} {layout:13s} {rate:6.1f} images/s")


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 6)
