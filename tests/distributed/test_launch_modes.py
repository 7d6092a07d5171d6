"""Multi-process training as users launch it, on the CPU: two ranks on gloo, real processes of
`python -m salt.train`, each launch under a hard timeout (a hang fails the test, naming the
launch mode).

The flagship's features are on: the resnet34 experiment (SCSE, hypercolumn, deep supervision,
classifier head, time-budgeted cosine cycles with snapshots and SWA, OOF), shrunk to a ResNet18
with a slim decoder. `tests.helpers.rank_probe.RankProbe` records what each rank did; the time
budget's clock reads a second per step done (the budget ends at a known step, however loaded
the machine), rank 1's three seconds ahead of rank 0's (as a process started later).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf

from salt.training.module import build_module
from tests.helpers.pseudo import threshold_labels
from tests.helpers.runs import REPO_ROOT, free_port

pytestmark = [pytest.mark.slow, pytest.mark.multiprocess]

# seconds a whole launch may take (both ranks, start to exit) before it counts as a hang
LAUNCH_TIMEOUT = 300
SMALL_FLAGSHIP = (
    "experiment=resnet34",
    "trainer=ddp",
    "trainer.accelerator=cpu",
    "trainer.devices=2",
    "trainer.precision=32-true",
    "model.encoder_name=resnet18",
    "model.encoder_weights=null",
    "model.decoder_channels=[32,16,16,8,8]",
    "data.batch_size=4",
    "data.num_workers=0",
    "data.persistent_workers=false",
    "callbacks.progress_bar=null",
    "logger.tensorboard=null",
    "plots=false",
    "+callbacks.probe._target_=tests.helpers.rank_probe.RankProbe",
)
LAUNCH_MODES = ("lightning", "torchrun", "srun")


def commands(mode: str, overrides: list[str]) -> list[tuple[list[str], dict[str, str]]]:
    """The processes a launch mode starts: (command, extra environment) each."""
    train = [sys.executable, "-m", "salt.train", *overrides]
    if mode == "lightning":  # trainer=ddp: Lightning starts rank 1 itself
        return [(train, {})]
    if mode == "torchrun":
        torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
        return [([*torchrun, "--nproc-per-node", "2", "-m", "salt.train", *overrides], {})]
    assert mode == "srun"  # the variables srun sets for each of its two tasks on one node
    port, slurm = str(free_port()), {"SLURM_NTASKS": "2", "SLURM_NTASKS_PER_NODE": "2"}
    slurm |= {"SLURM_NNODES": "1", "SLURM_NODEID": "0", "SLURM_JOB_ID": "4242"}
    slurm |= {"SLURM_JOB_NAME": "salt", "SLURM_NODELIST": "localhost", "MASTER_PORT": port}
    return [(train, {**slurm, "SLURM_PROCID": str(r), "SLURM_LOCALID": str(r)}) for r in (0, 1)]


def start(mode: str, cwd: Path, overrides: list[str]) -> list[subprocess.Popen]:
    """The processes of a launch, started from `cwd`, each in its own process group."""
    cwd.mkdir(parents=True, exist_ok=True)
    environment = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    return [
        subprocess.Popen(
            command,
            cwd=cwd,
            env={**environment, **extra},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        for command, extra in commands(mode, overrides)
    ]


def wait_for(mode: str, processes: list[subprocess.Popen], timeout: float) -> list[tuple]:
    """(stdout, stderr, seconds until it exited) of each process once all have exited; fails
    the test when one is still running after `timeout` (everything they started is killed)."""
    started = time.monotonic()
    exited: dict[int, float] = {}
    with ThreadPoolExecutor(len(processes)) as pool:
        readers = [pool.submit(process.communicate) for process in processes]
        try:
            while len(exited) < len(processes):
                for index, process in enumerate(processes):
                    if index not in exited and process.poll() is not None:
                        exited[index] = time.monotonic() - started
                if time.monotonic() - started > timeout:
                    pytest.fail(f"{mode}: still running after {timeout} s (a hang)")
                time.sleep(0.1)
        finally:
            for process in processes:
                if process.poll() is None:
                    os.killpg(process.pid, signal.SIGKILL)
    return [(*reader.result(), exited[index]) for index, reader in enumerate(readers)]


def launch(mode: str, cwd: Path, *overrides: str, timeout: float = LAUNCH_TIMEOUT) -> str:
    """Run a launch to its end from `cwd`; its output. Fails the test on a non-zero exit, or
    when it has not ended within `timeout`."""
    processes = start(mode, cwd, list(overrides))
    results = wait_for(mode, processes, timeout)
    output = "\n".join(out + err for out, err, _ in results)
    for process in processes:
        assert process.returncode == 0, f"{mode}: exit {process.returncode}\n{output[-4000:]}"
    return output


def probes(folder: Path) -> list[dict]:
    return [json.loads((folder / f"rank{r}.json").read_text()) for r in (0, 1)]


def single_process_score(run: Path, checkpoint: Path) -> float:
    """val/score of `checkpoint` on the run's own validation fold, in this one process."""
    cfg = OmegaConf.load(run / "config.yaml")
    module, datamodule = build_module(cfg), instantiate(cfg.data)
    trainer = pl.Trainer(
        accelerator="cpu",
        devices=1,
        logger=False,
        enable_progress_bar=False,
        enable_checkpointing=False,
        enable_model_summary=False,
    )
    results = trainer.validate(
        module, datamodule=datamodule, ckpt_path=str(checkpoint), verbose=False
    )
    return results[0]["val/score"]


@pytest.mark.parametrize("mode", LAUNCH_MODES)
def test_every_launch_mode_trains_one_run_with_the_ranks_in_step(mode, synthetic_root, tmp_path):
    """The run ends (exit 0) with one complete run directory; both ranks end with the same
    weights and SWA average, having used the same learning rate at every step (their clocks
    three seconds apart: rank 0's decides) and their own dropout draws; the DDP validation score
    is the single-process score of the same weights; and the run is tuned and predicted (on the
    first mode).

    The budget, 18 s at a second a step, is read every 10 steps and at epoch ends (6 steps): at
    step 10 it plans the cosine cycles to end by step 16, three of them after step 10 (three
    snapshots), and it stops the run at the epoch end of step 18."""
    cwd = tmp_path / mode
    launch(
        mode,
        cwd,
        *SMALL_FLAGSHIP,
        f"data.root={synthetic_root}",
        "trainer.max_time=00:00:00:18",
        f"+callbacks.probe.out={tmp_path / 'probe'}",
        "+callbacks.probe.seconds_per_step=1",
        "+callbacks.probe.skew_seconds=3",
    )
    runs = list((cwd / "outputs" / "train" / "resnet34").iterdir())
    assert len(runs) == 1, runs
    run = runs[0]
    assert [p.parent for p in cwd.rglob("metrics.json")] == [run]
    checkpoints = {p.parent for p in cwd.rglob("*.ckpt")}
    assert checkpoints == {run / "checkpoints", run / "checkpoints" / "snapshots"}
    for name in ("best.ckpt", "last.ckpt", "swa.ckpt"):
        assert (run / "checkpoints" / name).is_file(), name
    assert (run / "oof.npz").is_file() and (run / "config.yaml").is_file()
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["oof_source"] in ("swa", "best") and "swa_val_score" in metrics

    first, second = probes(tmp_path / "probe")
    assert first["world_size"] == second["world_size"] == 2
    assert first["steps"] == second["steps"] == metrics["steps"] == 18
    snapshots = sorted(p.name for p in (run / "checkpoints" / "snapshots").iterdir())
    assert snapshots == ["cycle-002.ckpt", "cycle-003.ckpt", "cycle-004.ckpt"]
    assert first["lrs"] == second["lrs"] and len(first["lrs"]) == first["steps"]
    assert first["weights"] == second["weights"]
    assert first["swa"] is not None and first["swa"] == second["swa"]
    assert first["rng"] != second["rng"]  # dropout: each rank its own draws

    score = single_process_score(run, run / "checkpoints" / "best.ckpt")
    assert metrics["best_val_score"] == pytest.approx(score, abs=1e-6)

    if mode == LAUNCH_MODES[0]:
        for command in (["salt.tune", f"runs=[{run}]"], ["salt.predict", f"runs=[{run}]"]):
            if command[0] == "salt.predict":
                command += [f"data.root={synthetic_root}", f"out={tmp_path / 'submission.csv'}"]
            done = subprocess.run(
                [sys.executable, "-m", *command],
                cwd=cwd,
                capture_output=True,
                text=True,
                timeout=LAUNCH_TIMEOUT,
            )
            assert done.returncode == 0, done.stderr[-3000:]
        assert (run / "postprocess.json").is_file()
        assert len((tmp_path / "submission.csv").read_text().splitlines()) == 1 + 10


def test_a_multirun_of_multi_process_jobs_is_refused_in_one_line(synthetic_root, tmp_path):
    """Lightning's launcher would re-run the whole sweep (`-m data.fold=0,1`) in rank 1."""
    done = subprocess.run(
        [sys.executable, "-m", "salt.train", "-m", "data.fold=0,1", *SMALL_FLAGSHIP[:5]],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
        capture_output=True,
        text=True,
        timeout=LAUNCH_TIMEOUT,
    )
    assert done.returncode == 1
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "hydra/launcher=parallel" in errors[0], done.stderr[-2000:]
    assert "Traceback" not in done.stderr
    assert not list(tmp_path.rglob("*.ckpt"))


# the smoke experiment's tiny net, 2 steps, as two ranks on the CPU; at its full encoder depth
# (at depth 3 smp keeps the unused layer3 and layer4, which DDP refuses)
TINY_DDP = (
    "experiment=smoke",
    "model.encoder_depth=5",
    "model.decoder_channels=[16,8,8,8,8]",
    "trainer=ddp",
    "trainer.accelerator=cpu",
    "trainer.devices=2",
    "trainer.precision=32-true",
    "trainer.max_epochs=1",
    "+trainer.limit_train_batches=2",
    "data.synthetic=null",
    "data.num_workers=0",
    "data.persistent_workers=false",
    "logger.tensorboard=null",
    "plots=false",
)
# seconds both ranks may take to exit after the first one did: far below the process group's
# timeout (30 minutes), which the other rank waited for
EXIT_TOGETHER_SECONDS = 60


def test_a_failure_of_rank_zero_after_the_fit_stops_every_rank_at_once(synthetic_root, tmp_path):
    """Rank 0 runs out of memory in the OOF prediction, which it does alone after the fit (two
    srun tasks): both exit 1 within seconds of each other, rank 1 naming rank 0's error in one
    line; no metrics.json."""
    processes = start(
        "srun",
        tmp_path,
        [
            *TINY_DDP,
            f"data.root={synthetic_root}",
            "+callbacks.fail._target_=tests.helpers.rank_zero_failure.FailAfterFit",
        ],
    )
    (_, rank0_err, rank0_exit), (_, rank1_err, rank1_exit) = wait_for(
        "srun", processes, LAUNCH_TIMEOUT
    )
    assert [p.returncode for p in processes] == [1, 1], rank0_err[-3000:] + rank1_err[-3000:]
    assert abs(rank0_exit - rank1_exit) < EXIT_TOGETHER_SECONDS
    assert "torch.OutOfMemoryError: CUDA out of memory (injected by the test)" in rank0_err
    errors = [line for line in rank1_err.splitlines() if line.startswith("error: ")]
    assert errors == [
        "error: rank 0 failed, so rank 1 stops too: "
        "OutOfMemoryError: CUDA out of memory (injected by the test)"
    ], rank1_err[-3000:]
    assert "Traceback" not in rank1_err
    assert not list(tmp_path.rglob("metrics.json")) and list(tmp_path.rglob("last.ckpt"))


def test_sigkill_of_both_ranks_then_resume_ends_as_the_uninterrupted_run(synthetic_root, tmp_path):
    """Both ranks killed in epoch 1 (of 2), resumed with resume=RUN_DIR: each rank ends with the
    weights of the uninterrupted run (dropout on: each rank's generators are restored to its
    own state, not rank 0's)."""
    common = [
        *SMALL_FLAGSHIP,
        f"data.root={synthetic_root}",
        "trainer.max_epochs=2",
        "+trainer.limit_train_batches=3",  # killed at epoch 1's batch 2, as it ends at 3
        "trainer.deterministic=true",
        "oof=false",
    ]
    straight, killed = tmp_path / "straight", tmp_path / "killed"
    marker = tmp_path / "at-epoch-1-batch-2"
    environment = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    victim = subprocess.Popen(
        [sys.executable, "-m", "salt.train", *common, f"hydra.run.dir={killed}"]
        + ["+callbacks.stop._target_=tests.helpers.interrupt.StopAt", "+callbacks.stop.epoch=1"]
        + ["+callbacks.stop.batch=2", "+callbacks.stop.action=sleep"]
        + [f"+callbacks.stop.marker={marker}", f"+callbacks.probe.out={tmp_path / 'unused'}"],
        cwd=tmp_path,
        env=environment,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        launch(
            "lightning",
            tmp_path,
            *common,
            f"hydra.run.dir={straight}",
            f"+callbacks.probe.out={tmp_path / 'straight-probe'}",
        )
        deadline = time.monotonic() + LAUNCH_TIMEOUT
        while not marker.exists():
            assert victim.poll() is None, victim.communicate()[1][-3000:]
            assert time.monotonic() < deadline, "lightning: the run to kill never reached epoch 1"
            time.sleep(0.2)
        os.killpg(victim.pid, signal.SIGKILL)  # both ranks: Lightning's rank 1 is in its group
        victim.communicate(timeout=60)
    finally:
        if victim.poll() is None:
            os.killpg(victim.pid, signal.SIGKILL)
    assert victim.returncode == -signal.SIGKILL
    launch(
        "lightning",
        tmp_path,
        *common,
        f"resume={killed}",
        f"+callbacks.probe.out={tmp_path / 'resumed-probe'}",
    )
    expected, resumed = probes(tmp_path / "straight-probe"), probes(tmp_path / "resumed-probe")
    for rank in (0, 1):
        assert resumed[rank]["steps"] == expected[rank]["steps"]
        assert resumed[rank]["weights"] == expected[rank]["weights"], f"rank {rank}"
        assert resumed[rank]["swa"] == expected[rank]["swa"], f"rank {rank}"


def test_two_ranks_of_8_tiles_step_as_one_process_of_16(synthetic_root, tmp_path):
    """The proof that DDP averages the gradients right: 6 steps of 2 ranks x 8 tiles give the
    weights of 6 steps of one process x 16 tiles, the same tiles in the same order (the sampler
    deals each global batch out to the ranks), half of every batch pseudo-labelled tiles
    (`data.pseudo`, `MixedSampler`'s shards). BatchNorm is held in eval mode (fixed statistics:
    SyncBatchNorm runs only on CUDA, and per-rank BatchNorm would normalise each half with its
    own statistics), dropout is off and the loss is a per-pixel mean (BCE)."""
    common = [
        *SMALL_FLAGSHIP,
        f"data.root={synthetic_root}",
        "model.deep_supervision=false",
        "model.classifier=false",
        "model.dropout=0",
        "loss=bce",
        "callbacks=default",
        "callbacks.progress_bar=null",
        "oof=false",
        "+callbacks.probe.freeze_batchnorm=true",
        "trainer.max_epochs=1",  # 48 labelled + 48 pseudo tiles, 16 a step: 6 steps
        f"data.pseudo={threshold_labels(synthetic_root, tmp_path / 'labels', tmp_path)}",
        "data.pseudo_ratio=1",
    ]
    launch(
        "lightning",
        tmp_path,
        *common,
        "data.batch_size=8",
        f"hydra.run.dir={tmp_path / 'two'}",
        f"+callbacks.probe.out={tmp_path / 'two-probe'}",
    )
    launch(
        "lightning",
        tmp_path,
        *common,
        "trainer.devices=1",
        "data.batch_size=16",
        f"hydra.run.dir={tmp_path / 'one'}",
        f"+callbacks.probe.out={tmp_path / 'one-probe'}",
    )
    two, one = (
        torch.load(tmp_path / name / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]
        for name in ("two", "one")
    )
    steps = json.loads((tmp_path / "two-probe" / "rank0.json").read_text())["steps"]
    assert steps == json.loads((tmp_path / "one-probe" / "rank0.json").read_text())["steps"] == 6
    config = OmegaConf.load(tmp_path / "one" / "config.yaml")
    pl.seed_everything(config.seed, verbose=False)  # as salt.train does before building the net
    initial = build_module(config).state_dict()
    weights = [key for key, value in one.items() if value.is_floating_point()]

    def update(state: dict) -> torch.Tensor:  # what the 6 steps changed, every weight in a row
        return torch.cat([(state[k] - initial[k]).flatten().double() for k in weights])

    # equal but for float summation order (measured: 6e-4 of the update); summed instead of
    # averaged gradients, or each rank on other tiles, differ by the update's own size
    single, double = update(one), update(two)
    assert single.norm() > 0.1
    assert (double - single).norm() / single.norm() < 1e-2
