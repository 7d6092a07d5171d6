"""benchmarks/gpu_check.py, the GPU machine's one command, end to end on the CPU: the smoke
experiment on generated data and a tiny bench, so that it cannot rot between GPU runs."""

from __future__ import annotations

import csv
import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers.runs import REPO_ROOT, load_script

GPU_CHECK = REPO_ROOT / "benchmarks" / "gpu_check.py"
TINY_BENCH = [
    *("--bench-batches", 4, "--bench-predict-images", 8, "--bench-repeats", 1),
    *("--bench-override=data.batch_size=2", "--bench-override=data.synthetic=null"),
]
CPU = ["--experiment", "smoke", "--device", "cpu", "--precision", "32-true"]


def gpu_check(*args, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(GPU_CHECK), *map(str, args)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def ids_of(path: Path) -> list[str]:
    with path.open(newline="") as rows:
        return [row["id"] for row in csv.DictReader(rows)]


@pytest.mark.slow
def test_gpu_check_on_the_cpu_writes_every_figure_and_a_submission(synthetic_root, tmp_path):
    out = tmp_path / "out"
    # two cosine cycles of one epoch: a snapshot per cycle and SWA, as resnet34 has
    schedule = ["callbacks=snapshots", "sched=cosine_restarts", "sched.cycle_epochs=1"]
    small = [
        "data.synthetic=null",
        "data.batch_size=4",
        "trainer.limit_train_batches=3",
        "plots=false",
    ]
    overrides = [*small, *schedule, "trainer.max_epochs=2"]
    result = gpu_check(
        "--data", synthetic_root, "--test", synthetic_root, "--out", out, *CPU, *TINY_BENCH,
        "--train-minutes", 3, "--variant", "module.channels_last=false",
        *(f"--train-override={o}" for o in overrides),
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    results = json.loads((out / "results.json").read_text())

    assert results["status"] == "ok" and results["failed_steps"] == []
    for step in ("install", "environment", "bench", "train", "tune", "predict"):
        record = results["steps"][step]
        assert record["status"] == "ok" and record["seconds"] > 0, (step, record)
        assert Path(record["log"]).is_file()
    assert results["steps"]["install"]["installed"] is False  # salt's imports work here
    environment = results["environment"]
    assert environment["device_name"].startswith("CPU") and environment["gpus"] == 0
    assert environment["torch"] and "cuda" in environment and environment["salt_commit"]

    assert results["bench"]["complete"] is True
    rows = results["bench"]["rows"]
    variant = "train salt module.channels_last=false"
    for row in ("train bare", "train salt", variant, "predict bare", "predict salt"):
        assert rows[row]["images_per_s"] > 0, row
        assert "fraction_of_peak" in rows[row]
    assert rows["train salt"]["syncs_per_step"] is not None
    assert results["bench"]["data_images_per_s"]["data on device"] > 0

    train = results["train"]
    assert train["time_budget_seconds"] == 180
    assert train["epochs"] == train["max_epochs"] == 2 and train["full_schedule"] is True
    for score in ("best_val_score", "swa_val_score", "oof_best_score"):
        assert 0 <= train[score] <= 1, score
    # oof_weights=auto: SWA unless the best checkpoint validated higher
    higher = "swa" if train["swa_val_score"] >= train["best_val_score"] else "best"
    assert train["oof_source"] == higher
    config = (Path(train["run_dir"]) / "config.yaml").read_text()
    assert "max_time: 00:00:03:00" in config and "on_device: true" in config

    tune = results["tune"]
    assert tune["oof_images"] == 12 and tune["oof_score_after"] >= tune["oof_score_before"]

    predict = results["predict"]
    # the weights the post-processing was tuned on
    assert predict["checkpoint"] == train["oof_source"]
    submission = out / "submission.csv"
    assert ids_of(submission) == ids_of(synthetic_root / "sample_submission.csv")
    assert predict["rows"] == len(ids_of(submission)) == 10
    assert sorted(p.name for p in out.glob("*.log")) == [
        f"{s}.log" for s in ("bench", "environment", "install", "predict", "train", "tune")
    ]
    assert not list(out.rglob("*.tmp*"))


def fake_python(tmp_path: Path) -> Path:
    """A Python whose salt imports fail until `pip install` has run; it logs that call."""
    marker, calls = tmp_path / "installed", tmp_path / "pip-calls"
    script = tmp_path / "python"
    script.write_text(
        "#!/usr/bin/env bash\n"
        f'if [ "$1 $2 $3" = "-m pip install" ]; then echo "$@" >> {calls}; touch {marker}; exit 0; fi\n'
        f'if [[ "$2" == "import salt."* ]] && [ ! -e {marker} ]; then exit 1; fi\n'
        f'exec {sys.executable} "$@"\n'
    )
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    return script


@pytest.mark.slow
@pytest.mark.skipif(os.name != "posix", reason="the fake Python is a bash script")
def test_gpu_check_installs_the_wheelhouse_and_records_failed_steps(synthetic_root, tmp_path):
    bundle = tmp_path / "bundle"
    (bundle / "wheels").mkdir(parents=True)
    (bundle / "wheels" / "demo-1.0-py3-none-any.whl").write_bytes(b"")
    out = tmp_path / "out"
    result = gpu_check(
        "--bundle", bundle, "--data", synthetic_root, "--test", synthetic_root, "--out", out,
        *CPU, *TINY_BENCH, "--python", fake_python(tmp_path),
        "--variant", "data.batch_size=4",  # refused by the bench
        "--train-override", "trainer.no_such_key=1",  # refused by Hydra
    )  # fmt: skip
    assert result.returncode == 1, result.stdout + result.stderr
    results = json.loads((out / "results.json").read_text())

    pip = (tmp_path / "pip-calls").read_text()
    assert "--no-index" in pip and f"--find-links {bundle / 'wheels'}" in pip
    assert f"--target {out / 'work' / 'site'}" in pip  # the machine's Python is left alone
    assert str(bundle / "wheels" / "demo-1.0-py3-none-any.whl") in pip
    steps = results["steps"]
    assert steps["install"]["status"] == "ok" and steps["install"]["installed"] is True
    assert results["status"] == "failed" and results["failed_steps"] == ["bench", "train"]
    assert (
        "error: --variant data.batch_size=4: give module.KEY=VALUE"
        in (out / "bench.log").read_text()
    )
    assert "error: Could not override 'trainer.no_such_key'" in (out / "train.log").read_text()
    assert steps["tune"] == {**steps["tune"], "status": "skipped", "reason": "needs train"}
    assert steps["predict"]["status"] == "skipped"
    assert results["bench"] is None and results["train"] is None and results["predict"] is None
    assert not (out / "submission.csv").exists()


@pytest.mark.parametrize(
    "args, message",
    [
        (["--data", "{missing}"], "error: --data {missing}: no train.csv"),
        (["--test", "{missing}"], "error: --test {missing}: expected sample_submission.csv"),
        (["--device", "tpu"], "error: --device tpu: give cuda or cpu"),
        (["--train-minutes", "0"], "error: --train-minutes 0.0: must be positive"),
    ],
)
def test_bad_input_is_one_line_and_writes_nothing(synthetic_root, tmp_path, args, message):
    missing = tmp_path / "missing"
    args = [a.format(missing=missing) for a in args]
    defaults = {"--data": synthetic_root, "--test": synthetic_root}
    for key, value in defaults.items():
        if key not in args:
            args += [key, str(value)]
    out = tmp_path / "out"
    result = gpu_check(*args, "--out", out, timeout=60)
    assert result.returncode == 2
    assert result.stderr.startswith(message.format(missing=missing)), result.stderr
    assert len(result.stderr.splitlines()) == 1 and not result.stdout
    assert not out.exists()


def test_a_used_work_folder_is_refused(synthetic_root, tmp_path):
    (tmp_path / "work" / "train").mkdir(parents=True)
    result = gpu_check(
        "--data", synthetic_root, "--test", synthetic_root, "--work", tmp_path / "work",
        "--out", tmp_path / "out", timeout=60,
    )  # fmt: skip
    assert result.returncode == 2
    assert (
        result.stderr
        == f"error: --work {tmp_path / 'work'}: holds a train/ run already; give a fresh folder\n"
    )
    assert not (tmp_path / "out").exists()


def test_the_training_budget_is_what_the_total_leaves_after_the_reserve(tmp_path):
    script = load_script("gpu_check")
    check = script.Check(script.parse_args(["--out", str(tmp_path / "out")]))
    check.started -= 120  # two minutes spent on the steps before training
    reserve = script.RESERVE_SECONDS
    assert check.train_seconds() == pytest.approx(9 * 60 - 120 - reserve, abs=2)
    check.args.total_minutes = 3  # nothing left: training still gets a minute
    assert check.train_seconds() == 60
    check.args.train_minutes = 2.5
    assert check.train_seconds() == 150
    assert script.max_time(150) == "00:00:02:30" and script.max_time(3725) == "00:01:02:05"


def fake_bench(tmp_path: Path, rows: list[str] | None, then: str) -> Path:
    """A Python whose `-m salt.bench.throughput ... --json PATH` writes `rows` into PATH as the
    bench does after measuring them ("complete": false; nothing when None), then runs `then`."""
    write = ""
    if rows is not None:
        payload = {"complete": False, "rows": {row: {"images_per_s": 1.0} for row in rows}}
        write = f"echo '{json.dumps(payload)}' > \"$2\"\n"
    script = tmp_path / "python"
    script.write_text(
        "#!/usr/bin/env bash\n"
        'while [ "$#" -gt 0 ] && [ "$1" != --json ]; do shift; done\n'
        f"{write}{then}\n"
    )
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    return script


def bench_check(tmp_path: Path, python: Path):
    """gpu_check's Check with fresh OUT and WORK folders, running the bench with `python`."""
    script = load_script("gpu_check")
    check = script.Check(script.parse_args(["--out", str(tmp_path / "out")]))
    check.args.out.mkdir(parents=True)
    check.args.work.mkdir()
    check.args.python = str(python)
    return check


@pytest.mark.skipif(os.name != "posix", reason="the fake Python is a bash script")
@pytest.mark.parametrize(
    "then, reason", [("exec sleep 60", "timed out after 2 s"), ("exit 3", "exit status 3")]
)
def test_a_bench_that_times_out_or_fails_keeps_the_rows_it_measured(tmp_path, then, reason):
    check = bench_check(tmp_path, fake_bench(tmp_path, ["train bare", "train salt"], then))
    check.args.bench_minutes = 2 / 60
    (check.args.work / ".bench.json.1a2b3c4d.tmp.json").write_text("{")  # a kill mid-write
    check.step("bench", check.bench)

    results = json.loads(check.path.read_text())
    assert results["failed_steps"] == ["bench"]
    step = results["steps"]["bench"]
    assert step["status"] == "failed" and step["reason"] == f"{reason} (rows kept: 2)"
    assert results["bench"]["complete"] is False
    assert list(results["bench"]["rows"]) == ["train bare", "train salt"]
    assert not list(check.args.work.glob(".bench.json.*"))


@pytest.mark.skipif(os.name != "posix", reason="the fake Python is a bash script")
def test_a_bench_that_measured_nothing_leaves_no_rows_of_an_earlier_run(tmp_path):
    check = bench_check(tmp_path, fake_bench(tmp_path, None, "exit 1"))
    (check.args.work / "bench.json").write_text('{"complete": true, "rows": {"train bare": {}}}')
    check.step("bench", check.bench)

    results = json.loads(check.path.read_text())
    assert results["steps"]["bench"]["reason"] == "exit status 1"
    assert results["bench"] is None
