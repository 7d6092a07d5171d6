"""The throughput benchmark runs end to end and prints its table and ratios."""

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from lightning_fabric.accelerators import cuda as cuda_accelerator
from lightning_fabric.utilities.throughput import get_available_flops
from omegaconf import OmegaConf

from salt.bench import bare_loop, quality, throughput
from tests.helpers.runs import REPO_ROOT

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
    assert written["complete"] is True and written["measured_fp32_matmul_tflops"] > 0
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
    assert not list(tmp_path.glob("*.tmp*"))  # salt's temporary files: .NAME.XXXXXXXX.tmp.json


def rows_written(path: Path) -> dict:
    """The rows of the bench's JSON at `path`; none while it has not written one."""
    return json.loads(path.read_text())["rows"] if path.exists() else {}


@pytest.mark.slow
def test_a_killed_bench_keeps_the_rows_measured_before_the_kill(synthetic_root, tmp_path):
    figures, log = tmp_path / "bench.json", tmp_path / "bench.log"
    command = [sys.executable, "-m", "salt.bench.throughput", str(synthetic_root), *SMALL]
    command += ["--repeats", "1000", "--json", str(figures), "data.synthetic=null"]
    with log.open("w") as out:
        env = {**os.environ, "NO_ALBUMENTATIONS_UPDATE": "1"}  # no update check at import
        bench = subprocess.Popen(
            command, cwd=REPO_ROOT, env=env, stdout=out, stderr=out, start_new_session=True
        )
    try:  # kill it as soon as it has written a row
        deadline = time.monotonic() + 120
        while not (seen := rows_written(figures)) and bench.poll() is None:
            assert time.monotonic() < deadline, "no row written in 120 s"
            time.sleep(0.05)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(bench.pid, signal.SIGKILL)
        bench.wait(timeout=30)
    assert bench.returncode == -signal.SIGKILL, log.read_text()  # mid-run: 1000 repeats to go

    written = json.loads(figures.read_text())
    assert written["complete"] is False and "train bare" in seen
    for name, row in seen.items():  # what was written before the kill is still there
        assert written["rows"][name]["repeats"][: len(row["repeats"])] == row["repeats"]
    assert all(row["images_per_s"] > 0 for row in written["rows"].values())
    assert written["gflop_per_image_forward"] > 0 and written["measured_fp32_matmul_tflops"] is None


@pytest.mark.slow
def test_a_compiled_variant_compiles_once_across_the_repeats(synthetic_root, tmp_path, monkeypatch):
    compiled = []

    def compile_nothing(module, **options):  # counts the calls, compiles nothing
        compiled.append(options)
        return module

    monkeypatch.setattr(torch, "compile", compile_nothing)
    figures = tmp_path / "bench.json"
    variants = ["module.compile=true", "module.compile={mode: reduce-overhead}"]
    throughput.main(
        [str(synthetic_root), *SMALL, "--repeats", "2", "--batches", "4", "--predict-images", "2"]
        + [f"--variant={v}" for v in variants]
        + ["--json", str(figures), "data.synthetic=null", "data.batch_size=2"]
    )
    # once per variant, for its 2 timed epochs and the epoch that counts host syncs
    assert compiled == [{}, {"mode": "reduce-overhead"}]
    written = json.loads(figures.read_text())
    assert written["complete"] is True
    for variant in variants:
        row = written["rows"][f"train salt {variant}"]
        assert len(row["repeats"]) == 2 and row["syncs_per_step"] is not None


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


def test_a_bare_arm_passes_its_arguments_to_the_bare_loop(tmp_path):
    plain, bf16 = quality.Arm.parse("bare"), quality.Arm.parse("b16=bare --precision bf16-mixed")
    salt_arm = quality.Arm.parse("cpu=experiment=cpu seed=1")
    assert plain.bare and bf16.bare and not salt_arm.bare
    command = bf16.command(tmp_path, tmp_path / "b16", minutes=1, fold=0)
    assert command[0] == "salt.bench.bare_loop" and command[-2:] == ["--precision", "bf16-mixed"]
    assert "--precision" not in plain.command(tmp_path, tmp_path / "bare", minutes=1, fold=0)
    assert salt_arm.command(tmp_path, tmp_path / "cpu", 1, 0)[:3] == [
        "salt.train",
        "experiment=cpu",
        "seed=1",
    ]


@pytest.mark.parametrize("precision", ["32-true", "bf16-mixed"])
def test_the_bare_loop_trains_at_the_precision_asked(precision, monkeypatch):
    monkeypatch.setattr("salt.inference.tiles.cpu_has_bf16", lambda: True)
    net = torch.nn.Conv2d(1, 1, 3, padding=1)
    dtypes = set()
    net.register_forward_hook(lambda module, inputs, output: dtypes.add(output.dtype))
    batches = [(torch.rand(2, 1, 8, 8), torch.rand(2, 1, 8, 8).round())] * 2
    metrics = bare_loop.train_for(net, batches, n_images=4, seconds=0.2, precision=precision)
    assert metrics["images"] == 2 * metrics["steps"] > 0
    expected = torch.bfloat16 if precision == "bf16-mixed" else torch.float32
    assert dtypes == {expected}


def test_nominal_peak_is_lightnings_for_the_gpu_and_precision(monkeypatch):
    asked = []

    def available_flops(device, dtype):
        asked.append((device.type, dtype))
        return {torch.bfloat16: 989.4e12, torch.float32: 66.9e12}.get(dtype)

    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "NVIDIA A100-SXM4-80GB")
    monkeypatch.setattr(throughput, "get_available_flops", available_flops)
    assert throughput.nominal_peak("cuda", "bf16-mixed") == pytest.approx(989.4)
    assert throughput.nominal_peak("cuda:1", "32-true") == pytest.approx(66.9)
    assert throughput.nominal_peak("cuda", "16-mixed") is None  # a precision the GPU lacks
    assert asked == [("cuda", torch.bfloat16), ("cuda", torch.float32), ("cuda", torch.float16)]
    assert throughput.nominal_peak("cpu", "32-true") is None  # CPUs: the measured matmul only
    assert throughput.nominal_peak("cuda", "64-true") is None


# torch's names of the GPUs: (Lightning's bf16 dense peak in TFLOP/s, the bench's); None where
# the table does not list the GPU. Lightning's H200 entries ("h200 sxm1", "h200 nvl1") match no
# name torch gives; a GH200 is in neither table.
PEAKS_BY_NAME = {
    "NVIDIA H200": (None, 989.4),
    "NVIDIA H200 NVL": (None, 835.5),
    "NVIDIA H100 80GB HBM3": (989.4, 989.4),
    "NVIDIA H100 PCIe": (756.0, 756.0),
    "NVIDIA H100 NVL": (1978.8, 1978.8),
    "NVIDIA GH200 480GB": (None, None),
    "NVIDIA A100-SXM4-80GB": (312.0, 312.0),
}


def named_gpu(monkeypatch, name: str) -> None:
    """torch.cuda reports one Hopper (Ampere or later) GPU named `name`; no GPU needed."""
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: name)
    monkeypatch.setattr(cuda_accelerator, "_is_ampere_or_later", lambda device=None: True)


@pytest.mark.parametrize("name", PEAKS_BY_NAME)
def test_nominal_peak_of_the_h200s_and_h100s_by_device_name(monkeypatch, name):
    named_gpu(monkeypatch, name)
    lightning, bench = PEAKS_BY_NAME[name]
    flops = get_available_flops(torch.device("cuda"), torch.bfloat16)
    assert (None if flops is None else flops / 1e12) == pytest.approx(lightning)
    assert throughput.nominal_peak("cuda", "bf16-mixed") == pytest.approx(bench)


def test_the_h200_has_the_h100_sxm_peaks_at_every_precision(monkeypatch):
    peaks = {}
    for name in ("NVIDIA H200", "NVIDIA H100 80GB HBM3"):
        named_gpu(monkeypatch, name)
        for matmul in ("highest", "high"):  # float32 counts as TF32 unless "highest"
            monkeypatch.setattr(torch, "get_float32_matmul_precision", lambda m=matmul: m)
            peaks[name, matmul] = [
                throughput.nominal_peak("cuda", p) for p in ("bf16-mixed", "16-mixed", "32-true")
            ]
    assert peaks["NVIDIA H200", "highest"] == peaks["NVIDIA H100 80GB HBM3", "highest"]
    assert peaks["NVIDIA H200", "high"] == peaks["NVIDIA H100 80GB HBM3", "high"]
    assert peaks["NVIDIA H200", "highest"] == pytest.approx([989.4, 989.4, 66.9])
    assert peaks["NVIDIA H200", "high"] == pytest.approx([989.4, 989.4, 494.7])


def test_flops_option_prints_the_ratio_to_a_plain_unet_and_trains_nothing(capsys):
    throughput.main(["--flops", "--experiment", "resnet34", "model.hypercolumn=false"])
    out = capsys.readouterr().out
    ratio = re.search(r'forward FLOPs: ([\d.]+)x smp.Unet\("resnet34"\)', out)
    assert ratio and 1.0 < float(ratio.group(1)) < 1.25, out
    assert "images/s" not in out


@pytest.mark.slow
def test_transfer_bench_scores_a_run_on_both_styles_and_back(synthetic_root, smoke_run, tmp_path):
    """The smoke run stands for both nets (its generated data for the real tiles): every figure
    of the table is measured, the section's and the cube's by salt.section and salt.survey."""
    from salt.bench.transfer import main as transfer

    run = smoke_run
    out = tmp_path / "transfer"
    transfer(
        [
            f"--real={synthetic_root}",
            f"--out={out}",
            f"--real-run={run}",
            f"--generated-run={run}",
            "--tiles=20",
            "--section=101x202",
            "--cube=4x16x40",
        ]
    )
    results = json.loads((out / "results.json").read_text())
    assert set(results["statistics"]) == {"real", "speckle", "seismic"}
    for style in ("speckle", "seismic"):
        figures = results["real_to_generated"][style]
        for key in ("score", "iou_salted", "section_iou", "cube_iou", "tiles_against_real"):
            assert 0 <= figures[key] <= 1 or key == "tiles_against_real", (style, key)
    back = results["generated_to_real"]
    assert back["tiles"] == 12 and 0 <= back["score"] <= 1  # fold 0 of the 60 tiles


def test_the_pretraining_arms_compose_to_equal_steps_without_validation(synthetic_root, tmp_path):
    from salt.bench import pretrain
    from tests.helpers.runs import compose_config

    command = pretrain.run_command(
        "resnet34_cpu",
        synthetic_root,
        tmp_path / "arm",
        steps=96,
        seed=1,
        fold=0,
        fraction=0.25,
        extra=("finetune_from=somewhere",),
    )
    assert command[0] == "salt.train"
    overrides = [o for o in command[1:] if not o.startswith("hydra.")]
    cfg = compose_config("train", overrides)
    assert cfg.trainer.max_steps == 96 and cfg.trainer.max_time is None
    assert cfg.trainer.check_val_every_n_epoch == pretrain.NO_VALIDATION
    assert cfg.oof_weights == "last" and cfg.data.train_fraction == 0.25 and cfg.seed == 1
    # the warm start: the recipe's share of this run's epochs (96 steps of 16 over 12 tiles)
    tiles = pretrain.training_tiles(synthetic_root, 0.25)
    assert tiles == 12
    assert cfg.loss.warm_start_epochs == pytest.approx(
        pretrain.WARM_START_SHARE * 96 * 16 / 12, 1e-3
    )
    assert cfg.finetune_from == "somewhere"


@pytest.mark.parametrize(
    ("args", "problem"),
    [
        (["--pretrain-share", "1.0"], "leaves no steps to one stage"),
        (["--fractions", "0.1,2"], "--fractions: each in (0, 1]"),
        (["--seeds", "a"], "comma-separated numbers"),
    ],
)
def test_the_pretraining_bench_refuses_bad_options(synthetic_root, args, problem, capsys):
    from salt.bench import pretrain

    with pytest.raises(SystemExit):
        pretrain.main(
            [str(synthetic_root), "--generated", str(synthetic_root), "--steps", "10", *args]
        )
    assert problem in capsys.readouterr().err


def test_painted_inlines_spread_evenly_and_random_lines_are_distinct():
    from salt.bench import painted

    assert painted.spread_inlines(1, 100) == [50]
    assert painted.spread_inlines(2, 100) == [25, 75]
    assert painted.spread_inlines(4, 100) == [12, 37, 62, 87]
    draws = [painted.random_lines(draw, 100, 120, 2) for draw in range(5)]
    for lines in draws:
        assert len(set(lines)) == 2
        for axis, index in lines:
            assert 0 <= index < (100 if axis == "inline" else 120)
    assert draws[0] == painted.random_lines(0, 100, 120, 2)  # a draw is its seed's
    assert len({tuple(lines) for lines in draws}) == 5


def test_the_calibration_error_is_the_gap_between_confidence_and_the_salt_share():
    from salt.bench import painted

    truth = np.zeros((4, 5, 6), dtype=np.uint8)
    truth[:2] = 1  # half the voxels are salt
    assert painted.calibration_error(np.full(truth.shape, 0.5), truth) == pytest.approx(0)
    assert painted.calibration_error(np.full(truth.shape, 0.8), truth) == pytest.approx(
        0.3, abs=1e-6
    )
    certain = truth.astype(np.float32)
    assert painted.calibration_error(certain, truth) == pytest.approx(0)
    assert painted.calibration_error(1 - certain, truth) == pytest.approx(1, abs=1e-6)


def test_the_painted_lines_bench_refuses_a_folder_that_is_not_a_run(tmp_path, capsys):
    from salt.bench import painted

    with pytest.raises(SystemExit):
        painted.main(["--runs", str(tmp_path), "--out", str(tmp_path / "out")])
    assert f"--runs {tmp_path}: not a run directory" in capsys.readouterr().err


def test_the_painted_lines_curve_is_drawn_from_the_rows(tmp_path):
    from salt.bench import painted

    rows = [
        {"cube_seed": seed, "run": f"lines_{count}", "iou": 0.1 * count + 0.01 * seed}
        for seed in (1, 2)
        for count in (0, 1, 2, 4)
    ]
    ranking = [{"run": "ranked", "iou": 0.5}, {"run": "random_0", "iou": 0.3}]
    path = painted.curve_figure(rows, ranking, tmp_path / "curve.png")
    assert path.read_bytes().startswith(b"\x89PNG")
