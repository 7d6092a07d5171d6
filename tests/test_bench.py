"""The throughput benchmark runs end to end and prints its table and ratios."""

import re

from salt.bench import throughput


def test_throughput_bench_prints_rates_and_ratios(synthetic_root, capsys):
    throughput.main(
        [
            str(synthetic_root),
            "--experiment",
            "smoke",
            "--batches",
            "5",
            "--predict-images",
            "16",
            "--repeats",
            "1",
            "data.synthetic=null",
        ]
    )
    out = capsys.readouterr().out
    for loop in ("train bare", "train salt", "predict bare", "predict salt"):
        rate = re.search(rf"^{loop}\s+([\d.]+)", out, re.MULTILINE)
        assert rate and float(rate.group(1)) > 0, out
    for task in ("train", "predict"):
        ratio = re.search(rf"ratio {task} salt/bare ([\d.]+)", out)
        assert ratio and 0.2 < float(ratio.group(1)) < 5, out
    assert re.search(r"([\d.]+) GFLOP per image forward", out)
