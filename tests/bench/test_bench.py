"""The throughput benchmark runs end to end and prints its table and ratios."""

import json
import re

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from salt.bench import quality, throughput

SMALL = ["--experiment", "smoke", "--batches", "5", "--predict-images", "16", "--repeats", "1"]


def test_throughput_bench_prints_rates_ratios_and_syncs(synthetic_root, capsys, tmp_path):
    variant = "module.channels_last=false"
    figures = tmp_path / "bench.json"
    throughput.main(
        [
            str(synthetic_root),
            *SMALL,
            "--variant",
            variant,
            "--json",
            str(figures),
            "data.synthetic=null",
        ]
    )
    out = capsys.readouterr().out
    for loop in ("train bare", "train salt", f"train salt {variant}", "predict bare"):
        rate = re.search(rf"^{re.escape(loop)}\s+([\d.]+)", out, re.MULTILINE)
        assert rate and float(rate.group(1)) > 0, out
    for ratio_name in ("train salt/bare", f"train salt/bare {variant}", "predict salt/bare"):
        ratio = re.search(rf"ratio {re.escape(ratio_name)} ([\d.]+)", out)
        assert ratio and 0.2 < float(ratio.group(1)) < 5, out
    assert re.search(r"([\d.]+) GFLOP per image forward", out)
    assert re.search(r"forward FLOPs: [\d.]+x smp.Unet\(\"resnet18\"\)", out), out
    # 2 timed steps; the NaN check reads one value back, after the epoch's last batch
    syncs = re.search(r"^train salt\s+[\d.]+\s+[\d.]+\s+([\d.]+)\s+([\d.]+)", out, re.MULTILINE)
    assert syncs and float(syncs.group(1)) == 0.5, out
    bare = re.search(r"^train bare\s+[\d.]+\s+[\d.]+\s+([\d.]+)", out, re.MULTILINE)
    assert bare and float(bare.group(1)) == 0.0, out

    # --json holds the figures of the printed table
    written = json.loads(figures.read_text())
    assert set(written["rows"]) == {
        "train bare",
        "train salt",
        f"train salt {variant}",
        "predict bare",
        "predict salt",
    }
    for name, row in written["rows"].items():
        printed = re.search(rf"^{re.escape(name)}\s+([\d.]+)", out, re.MULTILINE)
        assert f"{row['images_per_s']:.1f}" == printed.group(1)
        assert row["fraction_of_peak"] is None  # a CPU has no nominal peak
    assert written["rows"]["train salt"]["syncs_per_step"] == float(syncs.group(1))
    assert written["rows"]["predict salt"]["syncs_per_step"] is None
    assert set(written["data_images_per_s"]) == {"data per-sample, 0 workers", "data on device"}
    assert not list(tmp_path.glob("*.tmp"))


def test_a_variant_that_changes_the_data_is_refused(synthetic_root):
    with pytest.raises(SystemExit, match="--variant data.batch_size=4: give module.KEY=VALUE"):
        throughput.main([str(synthetic_root), *SMALL, "--variant", "data.batch_size=4"])


@pytest.mark.slow
def test_quality_bench_trains_every_arm_for_the_budget_and_scores_them(synthetic_root, tmp_path):
    out = tmp_path / "quality"
    quality.main(
        [
            str(synthetic_root),
            "--minutes=0.1",
            f"--out={out}",
            "--arm=bare",
            "--arm=smoke=experiment=smoke data.synthetic=null",
        ]
    )
    results = json.loads((out / "results.json").read_text())
    rows = {row["arm"]: row for row in results["arms"]}
    assert set(rows) == {"bare", "smoke"}
    for row in rows.values():
        assert row["epochs"] > 0 and row["images_per_second"] > 0
        assert 0 <= row["score_at_0.5"] <= row["score_tuned"] <= 1
    # salt's arm ran under the budget, offline
    config = OmegaConf.load(out / "smoke" / "config.yaml")
    assert config.trainer.max_time == "00:00:00:06" and config.model.encoder_weights is None
    # both arms scored the same validation fold
    ids = [np.load(out / arm / "oof.npz")["ids"].tolist() for arm in rows]
    assert ids[0] == ids[1]


def test_quality_bench_refuses_a_bad_arm(synthetic_root):
    with pytest.raises(SystemExit):
        quality.main([str(synthetic_root), "--minutes=1", "--arm=nameonly"])


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


def test_flops_option_prints_the_ratio_to_a_plain_unet_and_trains_nothing(capsys):
    throughput.main(["--flops", "--experiment", "resnet34", "model.hypercolumn=false"])
    out = capsys.readouterr().out
    ratio = re.search(r'forward FLOPs: ([\d.]+)x smp.Unet\("resnet34"\)', out)
    assert ratio and 1.0 < float(ratio.group(1)) < 1.25, out
    assert "images/s" not in out
