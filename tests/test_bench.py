"""The throughput benchmark runs end to end and prints its table and ratios."""

import re

import pytest
import torch

from salt.bench import throughput

SMALL = ["--experiment", "smoke", "--batches", "5", "--predict-images", "16", "--repeats", "1"]


def test_throughput_bench_prints_rates_ratios_and_syncs(synthetic_root, capsys):
    variant = "module.channels_last=false"
    throughput.main([str(synthetic_root), *SMALL, "--variant", variant, "data.synthetic=null"])
    out = capsys.readouterr().out
    for loop in ("train bare", "train salt", f"train salt {variant}", "predict bare"):
        rate = re.search(rf"^{re.escape(loop)}\s+([\d.]+)", out, re.MULTILINE)
        assert rate and float(rate.group(1)) > 0, out
    for ratio_name in ("train salt/bare", f"train salt/bare {variant}", "predict salt/bare"):
        ratio = re.search(rf"ratio {re.escape(ratio_name)} ([\d.]+)", out)
        assert ratio and 0.2 < float(ratio.group(1)) < 5, out
    assert re.search(r"([\d.]+) GFLOP per image forward", out)
    # 2 timed steps; the NaN check reads one value back, after the epoch's last batch
    syncs = re.search(r"^train salt\s+[\d.]+\s+[\d.]+\s+([\d.]+)\s+([\d.]+)", out, re.MULTILINE)
    assert syncs and float(syncs.group(1)) == 0.5, out
    bare = re.search(r"^train bare\s+[\d.]+\s+[\d.]+\s+([\d.]+)", out, re.MULTILINE)
    assert bare and float(bare.group(1)) == 0.0, out


def test_a_variant_that_changes_the_data_is_refused(synthetic_root):
    with pytest.raises(SystemExit, match="--variant data.batch_size=4: give module.KEY=VALUE"):
        throughput.main([str(synthetic_root), *SMALL, "--variant", "data.batch_size=4"])


def test_nominal_peak_is_lightnings_for_the_gpu_and_precision(monkeypatch):
    asked = []

    def available_flops(device, dtype):
        asked.append((device.type, dtype))
        return {torch.bfloat16: 989.4e12, torch.float32: 66.9e12}.get(dtype)

    monkeypatch.setattr(throughput, "get_available_flops", available_flops)
    assert throughput.nominal_peak("cuda", "bf16-mixed") == pytest.approx(989.4)
    assert throughput.nominal_peak("cuda:1", "32-true") == pytest.approx(66.9)
    assert throughput.nominal_peak("cuda", "16-mixed") is None  # a precision the GPU lacks
    assert asked == [("cuda", torch.bfloat16), ("cuda", torch.float32), ("cuda", torch.float16)]
    assert throughput.nominal_peak("cpu", "32-true") is None  # CPUs: the measured matmul only
    assert throughput.nominal_peak("cuda", "64-true") is None
