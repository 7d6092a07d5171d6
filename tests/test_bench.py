"""The throughput benchmark runs end to end and prints its table and ratios."""

import json
import re

import pytest

from salt.bench import throughput

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
