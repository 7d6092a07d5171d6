"""Whole-survey benchmark: salt.survey against a bare loop, and its peak memory.

    python -m salt.bench.survey OUT_DIR [--shape 200x200x400] [--runs RUN_OR_CKPT]
    python -m salt.bench.survey OUT_DIR --memory --shape 800x800x800 --stride 101 --tta none \
        --net model.encoder_name=resnet18 model.encoder_depth=3 'model.decoder_channels=[32,16,8]'

Throughput (the default): a generated cube (salt.data.synthetic_cube, float32 SEG-Y) predicted
by `python -m salt.survey` in a child process, and by a bare loop in another child process that
predicts the same lines with the same net, TTA, stride and precision (segyio's line reads, the
survey's scaling, salt.sections.stitch with salt.inference's ensemble, results kept in a numpy
volume, nothing written). The two run at the same time, each pinned to one core with one thread, so
that both see the same machine; the cores are swapped every repeat. Each repeat reports wall
seconds, samples (of the cube) per second and the ratio of the survey's throughput to the bare
loop's. The checkpoint is `--runs`, or the
net of experiment resnet34 with random weights (no download). `--memory`: one salt.survey run
on the cube: its own peak resident memory (ru_maxrss, see `child`), wall time and summary line.
Everything is appended to OUT_DIR/results.jsonl.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from salt.core.config import CONFIG_DIR
from salt.core.rundir import checkpoint_files
from salt.data.synthetic import parse_cube_shape

BARE_LOOP = """
import sys, time, json
import numpy as np, segyio, torch
from salt.inference.tiles import load_model, predict_ensemble
from salt.sections.cube import Survey
from salt.sections.stitch import stitch
path, checkpoint, stride, tta = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4].split(",")
precision = sys.argv[5]
started = time.perf_counter()
models = [load_model(checkpoint)]
survey = Survey(path)
scaling = survey.scaling()
with segyio.open(path, "r", strict=True) as f:
    volumes = {}
    for axis, lines, read in (("inline", f.ilines, f.iline), ("crossline", f.xlines, f.xline)):
        volume = np.zeros(survey.shape, dtype=np.float16)
        for index, number in enumerate(lines):
            image = scaling(np.asarray(read[number], dtype=np.float32).T)
            rows = np.zeros(image.shape, dtype=np.float16)
            def emit(top, _image, probability):
                rows[top : top + len(probability)] = probability
            predict = lambda tiles: predict_ensemble(models, tiles, batch_size=64, device="cpu", tta=tta, precision=precision).masks
            stitch(image, predict, emit, stride=stride)
            if axis == "inline":
                volume[index] = rows.T
            else:
                volume[:, index] = rows.T
        volumes[axis] = volume
merged = (volumes["inline"].astype(np.float32) + volumes["crossline"].astype(np.float32)) / 2
print(json.dumps({"seconds": time.perf_counter() - started, "salt": float((merged >= 0.5).mean())}))
"""


def random_checkpoint(path: Path, overrides: list[str]) -> Path:
    """experiment resnet34's net (changed by `overrides`) with random weights, saved as
    salt.train saves a checkpoint."""
    from hydra import compose, initialize_config_dir
    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        cfg = compose(
            "train",
            overrides=["experiment=resnet34", "model.encoder_weights=null", *overrides],
        )
    torch.manual_seed(0)
    net = instantiate(cfg.model).eval()
    torch.save(
        {
            "state_dict": {f"net.{k}": v for k, v in net.state_dict().items()},
            "hyper_parameters": {
                "net_config": OmegaConf.to_container(cfg.model, resolve=True),
                "tile_options": {
                    "mean": cfg.data.mean,
                    "std": cfg.data.std,
                    "channels": cfg.data.channels,
                },
            },
        },
        path,
    )
    return path


def generated_cube(out: Path, shape: tuple[int, int, int]) -> Path:
    from salt.data.synthetic_cube import cube_inlines, write_segy_cube

    path = out / f"cube_{'x'.join(map(str, shape))}.sgy"
    if not path.is_file():
        write_segy_cube(
            path,
            (amplitude for _, amplitude, _ in cube_inlines(shape, seed=0)),
            inline_numbers=range(1000, 1000 + shape[0]),
            crossline_numbers=range(2000, 2000 + shape[1]),
        )
    return path


# Starts argv[2:] and writes its peak resident memory (kB) to the file argv[1].
PEAK_OF_ITS_CHILD = """
import os, sys
pid = os.posix_spawn(sys.argv[2], sys.argv[2:], os.environ)
_, status, usage = os.wait4(pid, 0)
with open(sys.argv[1], "w") as peak:
    peak.write(str(usage.ru_maxrss))
sys.exit(os.waitstatus_to_exitcode(status))
"""


def child(command: list[str]) -> tuple[float, float, str]:
    """(wall seconds, peak resident MiB, stdout) of a child process run to its end
    (`command[0]`: the program's path, not looked up in PATH).

    Linux carries a process's high-water mark across exec into its new program's ru_maxrss, so
    a child started by this process (which may just have generated a 2 GB cube) would report
    this process's peak if it were higher than its own. The command is therefore started by a
    bare Python (`-S`, a few MiB), which reports its child's ru_maxrss."""
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as scratch:
        peak_file = Path(scratch) / "peak"
        launcher = [sys.executable, "-S", "-c", PEAK_OF_ITS_CHILD, str(peak_file)]
        result = subprocess.run([*launcher, *command], capture_output=True, text=True)
        seconds = time.perf_counter() - started
        if result.returncode != 0:
            raise SystemExit(f"failed: {' '.join(command)}\n{result.stderr[-3000:]}")
        peak = int(peak_file.read_text()) / 1024
    return seconds, peak, result.stdout


def side_by_side(
    commands: dict[str, list[str]], cores: dict[str, int], logs: Path
) -> dict[str, float]:
    """Wall seconds of commands run at the same time, each pinned to its own core with one
    thread (taskset): both see the same machine, whatever else runs on it. Their output goes
    to `logs`/NAME.log."""
    environment = {**os.environ, "OMP_NUM_THREADS": "1"}
    started = time.perf_counter()
    processes = {}
    for name, command in commands.items():
        with open(logs / f"{name}.log", "w") as log:
            processes[name] = subprocess.Popen(
                ["taskset", "-c", str(cores[name]), *command],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=environment,
            )
    seconds: dict[str, float] = {}
    while len(seconds) < len(processes):
        for name, process in processes.items():
            if name not in seconds and process.poll() is not None:
                if process.returncode != 0:
                    raise SystemExit(f"failed: {name} (see {logs / name}.log)")
                seconds[name] = time.perf_counter() - started
        time.sleep(0.05)
    return seconds


def survey_command(cube: Path, checkpoint: Path, out: Path, args) -> list[str]:
    return [
        sys.executable,
        "-m",
        "salt.survey",
        str(cube),
        "--runs",
        str(checkpoint),
        "--out",
        str(out),
        "--overwrite",
        "--accelerator",
        "cpu",
        "--stride",
        str(args.stride),
        "--precision",
        args.precision,
        "--tta",
        *args.tta.split(","),
    ]


def record(out: Path, row: dict[str, Any]) -> None:
    row = {"date": time.strftime("%Y-%m-%d %H:%M"), "load": os.getloadavg()[0], **row}
    print(json.dumps(row), flush=True)
    with open(out / "results.jsonl", "a") as results:
        results.write(json.dumps(row) + "\n")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--shape", type=parse_cube_shape, default=(200, 200, 400))
    parser.add_argument("--runs", help="a run directory or .ckpt (default: random resnet34)")
    parser.add_argument(
        "--net",
        nargs="*",
        default=[],
        metavar="OVERRIDE",
        help="overrides of the random net, e.g. model.encoder_name=resnet18",
    )
    parser.add_argument("--stride", type=int, default=50)
    parser.add_argument("--tta", default="none,hflip")
    parser.add_argument(
        "--precision",
        default="bf16-mixed",
        help="both sides' autocast, as salt.survey's --precision (bf16 on a CPU with bf16 units)",
    )
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--memory", action="store_true", help="peak memory of one survey run")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    checkpoint = (
        checkpoint_files([args.runs])[0]
        if args.runs
        else random_checkpoint(args.out / "random.ckpt", args.net)
    )
    started = time.perf_counter()
    cube = generated_cube(args.out, args.shape)
    samples = int(np.prod(args.shape))
    net = str(checkpoint) if args.runs else f"random resnet34 {' '.join(args.net)}".strip()
    common = {
        "shape": args.shape,
        "stride": args.stride,
        "tta": args.tta,
        "precision": args.precision,
        "net": net,
    }
    print(
        f"cube {cube} ({cube.stat().st_size / 2**30:.2f} GiB) in {time.perf_counter() - started:.0f} s"
    )
    if args.memory:
        memory_seconds, peak, output = child(
            survey_command(cube, checkpoint, args.out / "survey", args)
        )
        record(
            args.out,
            {
                **common,
                "what": "survey memory",
                "cube_bytes": cube.stat().st_size,
                "seconds": round(memory_seconds, 1),
                "peak_rss_mib": round(peak),
                "summary": output.strip().splitlines()[-1],
            },
        )
        return
    bare = [sys.executable, "-c", BARE_LOOP, str(cube), str(checkpoint), str(args.stride)]
    commands = {
        "bare": [*bare, args.tta, args.precision],
        "survey": survey_command(cube, checkpoint, args.out / "survey", args),
    }
    for repeat in range(args.repeats):
        cores = {"bare": repeat % 2, "survey": 1 - repeat % 2}  # swapped every repeat
        ended = side_by_side(commands, cores, args.out)
        bare_seconds, survey_seconds = ended["bare"], ended["survey"]
        record(
            args.out,
            {
                **common,
                "what": "throughput",
                "repeat": repeat,
                "cores": cores,
                "bare_seconds": round(bare_seconds, 1),
                "survey_seconds": round(survey_seconds, 1),
                "bare_samples_per_s": round(samples / bare_seconds),
                "survey_samples_per_s": round(samples / survey_seconds),
                "ratio": round(bare_seconds / survey_seconds, 3),
            },
        )


if __name__ == "__main__":
    main()
