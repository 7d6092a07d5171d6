"""Reliability: resume after a crash or a kill, determinism, and bad input refused in one line
with nothing left behind. Cases already covered elsewhere are listed in RELIABILITY.md."""

from __future__ import annotations

import errno
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from hydra.utils import instantiate
from torch import nn

import salt.train
from salt.core.errors import DataError, SaltError, exit_on_salt_error
from salt.data import check
from salt.data.datamodule import SeededSampler
from salt.inference.submission import write_submission
from salt.inference.tiles import TilePredictions
from salt.models.checkpoints import load_net
from salt.predict import save_probabilities
from salt.train import train
from salt.training.checkpoint_io import AtomicCheckpointIO
from salt.training.loggers import AppendingCSVLogger
from salt.training.module import build_module
from salt.training.resume import trim_metrics_csv
from tests.helpers.runs import REPO_ROOT, compose_config, run_module


# short deterministic runs: 2 epochs (smoke) of `limit` batches of 4 tiles, no out-of-fold pass
def short(limit: int = 2) -> tuple[str, ...]:
    return (
        "trainer.deterministic=true",
        f"++trainer.limit_train_batches={limit}",
        "data.batch_size=4",
        "oof=false",
    )


SHORT = short()


def files_under(folder: Path) -> list[str]:
    if not folder.exists():
        return []
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


def state_dict(path: Path) -> dict[str, torch.Tensor]:
    return torch.load(path, map_location="cpu", weights_only=True)["state_dict"]


def assert_same_weights(a: Path, b: Path) -> None:
    first, second = state_dict(a), state_dict(b)
    assert first.keys() == second.keys()
    assert all(torch.equal(first[k], second[k]) for k in first), (a, b)


def assert_one_line(error: pytest.ExceptionInfo, *parts: str) -> None:
    message = str(error.value)
    assert "\n" not in message, message
    for part in parts:
        assert part in message, message


def copy_data(source: Path, target: Path) -> Path:
    shutil.copytree(source, target)
    return target


# ---------------------------------------------------------------- determinism and resume


def test_epoch_batches_depend_only_on_seed_and_epoch(train_config):
    def images(seed: int, epoch: int) -> torch.Tensor:
        datamodule = instantiate(train_config(f"seed={seed}").data)
        datamodule.setup("fit")
        loader = datamodule.train_dataloader()
        loader.sampler.set_epoch(epoch)
        # whatever state the global generators are in (as after a kill and a resume)
        torch.manual_seed(int(time.time_ns() % 2**31))
        np.random.seed(int(time.time_ns() % 2**31))
        return torch.cat([batch[0] for batch in loader])

    first = images(seed=3, epoch=1)
    assert torch.equal(first, images(seed=3, epoch=1))
    assert not torch.equal(first, images(seed=3, epoch=2))
    assert not torch.equal(first, images(seed=4, epoch=1))


def test_two_deterministic_runs_with_the_same_seed_are_identical(train_config, tmp_path):
    runs = [tmp_path / "one", tmp_path / "two"]
    results = [
        train(train_config(*SHORT, "trainer.max_epochs=1", output_dir=run))[0] for run in runs
    ]
    for key in ("epochs", "best_val_score", "val_score", "val_loss", "train_loss_epoch"):
        assert results[0][key] == results[1][key], key
    for name in ("last.ckpt", "best.ckpt"):
        assert_same_weights(runs[0] / "checkpoints" / name, runs[1] / "checkpoints" / name)
    logs = [pd.read_csv(run / "csv" / "metrics.csv") for run in runs]
    pd.testing.assert_frame_equal(logs[0], logs[1])


def test_resume_needs_a_last_checkpoint(train_config, tmp_path):
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    (run / "config.yaml").write_text("seed: 42\n")
    with pytest.raises(SaltError) as error:
        train(train_config(f"resume={run}", output_dir=run))
    assert_one_line(error, str(run), "cannot resume: no checkpoints/last.ckpt")
    with pytest.raises(SaltError) as error:
        train(train_config(f"resume={run}", f"ckpt_path={run}/x.ckpt", output_dir=run))
    assert_one_line(error, "pass resume=RUN_DIR or ckpt_path=FILE, not both")
    assert files_under(tmp_path) == ["run/config.yaml"]


def test_resume_of_a_folder_that_is_not_a_run_leaves_nothing(synthetic_root, tmp_path):
    typo = tmp_path / "outputs" / "no-such-run"
    result = run_module("salt.train", "experiment=smoke", f"resume={typo}", timeout=120)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == (
        f"error: {typo}: cannot resume: not a run directory (no config.yaml)"
    )
    assert not typo.exists()  # Hydra made it for its own files; they are gone again


def test_resume_trims_the_stopped_epoch_from_the_csv_log_and_appends(tmp_path):
    csv = tmp_path / "csv" / "metrics.csv"
    csv.parent.mkdir()
    csv.write_text(
        "epoch,lr,step,train/loss,val/score\n"
        ",0.1,0,,\n0,,0,1.0,\n0,,1,,0.5\n,0.09,2,,\n1,,2,0.8,\n"  # epoch 1 was killed
    )
    trim_metrics_csv(csv, epoch=0, step=2)
    assert csv.read_text().splitlines()[1:] == [",0.1,0,,", "0,,0,1.0,", "0,,1,,0.5"]
    logger = AppendingCSVLogger(save_dir=tmp_path, name="csv", version="")
    logger.log_metrics({"lr": 0.09}, step=2)
    logger.log_metrics({"train/loss": 0.7, "val/iou": 0.3}, step=2)
    logger.save()
    table = pd.read_csv(csv)
    assert table["step"].tolist() == [0, 0, 1, 2, 2]
    assert table["val/score"].iloc[2] == 0.5 and table["val/iou"].iloc[4] == 0.3


@pytest.mark.slow
def test_crash_mid_epoch_then_resume_equals_the_uninterrupted_run(train_config, tmp_path):
    """In-process twin of the kill test: an exception at epoch 1, batch 1, then resume=RUN_DIR."""
    straight, crashed = tmp_path / "straight", tmp_path / "crashed"
    expected, _ = train(train_config(*SHORT, output_dir=straight))
    stop = (
        "+callbacks.stop._target_=tests.helpers.interrupt.StopAt",
        "+callbacks.stop.epoch=1",
        "+callbacks.stop.batch=1",
    )
    with pytest.raises(Exception, match="stopped at epoch 1, batch 1"):
        train(train_config(*SHORT, *stop, output_dir=crashed))
    assert state_dict(crashed / "checkpoints" / "last.ckpt")  # epoch 0, readable
    resumed, _ = train(train_config(*SHORT, f"resume={crashed}", output_dir=tmp_path / "ignored"))
    assert not (tmp_path / "ignored").exists()  # the run directory is appended to
    for key in ("epochs", "best_val_score", "val_score", "train_loss_epoch"):
        assert resumed[key] == expected[key], key
    assert_same_weights(
        straight / "checkpoints" / "last.ckpt", crashed / "checkpoints" / "last.ckpt"
    )
    pd.testing.assert_frame_equal(
        pd.read_csv(straight / "csv" / "metrics.csv"), pd.read_csv(crashed / "csv" / "metrics.csv")
    )
    config = (crashed / "config.yaml").read_text()
    assert "stop:" in config and "resume: null" in config  # the original run's config is kept


def run_train(*args: str, **popen) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "salt.train", *args],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **popen,
    )


def finish(process: subprocess.Popen, timeout: float = 540) -> str:
    out, err = process.communicate(timeout=timeout)
    assert process.returncode == 0, err[-3000:]
    return err


@pytest.mark.slow
def test_sigkill_mid_epoch_then_resume_equals_the_uninterrupted_run(synthetic_root, tmp_path):
    """A real training process, killed with SIGKILL in the middle of epoch 2 (of 4), resumed.

    With snapshots and SWA over epochs 1-3 (from the second cycle, by default) (its running average is part of the checkpoint), a cosine schedule
    and dropout (the global generators are part of the checkpoint).
    """
    common = (
        "experiment=smoke",
        f"data.root={synthetic_root}",
        "data.synthetic=null",
        "logger.tensorboard=null",
        "trainer.deterministic=true",
        "trainer.max_epochs=4",
        "++trainer.limit_train_batches=3",
        "data.batch_size=4",
        "callbacks=snapshots",
        "++sched.cycle_epochs=1",
        "model.dropout=0.2",
        "oof_tta=[none]",
    )
    straight, killed = tmp_path / "straight", tmp_path / "killed"
    marker = tmp_path / "at-epoch-2-batch-1"
    victim = run_train(
        *common,
        f"hydra.run.dir={killed}",
        "+callbacks.stop._target_=tests.helpers.interrupt.StopAt",
        "+callbacks.stop.epoch=2",
        "+callbacks.stop.batch=1",
        "+callbacks.stop.action=sleep",
        f"+callbacks.stop.marker={marker}",
        start_new_session=True,
    )
    try:
        finish(run_train(*common, f"hydra.run.dir={straight}"))
        deadline = time.time() + 300
        while not marker.exists():
            assert victim.poll() is None, victim.communicate()[1][-3000:]
            assert time.time() < deadline, "the run never reached epoch 2"
            time.sleep(0.2)
        os.killpg(victim.pid, signal.SIGKILL)
        victim.communicate(timeout=60)
    finally:
        if victim.poll() is None:
            os.killpg(victim.pid, signal.SIGKILL)
    assert victim.returncode == -signal.SIGKILL
    stopped_at = torch.load(killed / "checkpoints" / "last.ckpt", weights_only=True)
    assert stopped_at["epoch"] == 1 and not (killed / "metrics.json").exists()
    assert [p.name for p in killed.rglob("*.tmp*")] == []

    warnings = finish(run_train(*common, f"resume={killed}"))
    assert "settings that differ from the run's: callbacks.stop" in warnings
    expected = json.loads((straight / "metrics.json").read_text())
    resumed = json.loads((killed / "metrics.json").read_text())
    assert resumed["epochs"] == expected["epochs"] == 4
    for key in ("best_val_score", "val_score", "swa_val_score", "oof_score"):
        assert resumed[key] == expected[key], key
    for name in ("last.ckpt", "best.ckpt", "swa.ckpt", "snapshots/cycle-003.ckpt"):
        assert_same_weights(straight / "checkpoints" / name, killed / "checkpoints" / name)
    snapshots = sorted(p.name for p in (killed / "checkpoints" / "snapshots").iterdir())
    assert snapshots == [f"cycle-00{i}.ckpt" for i in range(1, 4)]
    pd.testing.assert_frame_equal(
        pd.read_csv(straight / "csv" / "metrics.csv"), pd.read_csv(killed / "csv" / "metrics.csv")
    )


def test_a_failed_checkpoint_write_keeps_the_previous_file(tmp_path, monkeypatch):
    path = tmp_path / "last.ckpt"
    io = AtomicCheckpointIO()
    io.save_checkpoint({"state_dict": {"w": torch.ones(3)}}, path)

    def dies_halfway(obj, handle):
        handle.write(b"PK\x03\x04 half a checkpoint")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr("salt.training.checkpoint_io.torch.save", dies_halfway)
    with pytest.raises(OSError, match="No space left"):
        io.save_checkpoint({"state_dict": {"w": torch.zeros(3)}}, path)
    assert torch.equal(state_dict(path)["w"], torch.ones(3))
    assert [p.name for p in tmp_path.iterdir()] == ["last.ckpt"]


# ---------------------------------------------------------------- bad input


def break_data(root: Path, case: str) -> tuple[Path, str, str]:
    """Damage a copy of the data; return (data root, path named, problem) of the error."""
    image = sorted((root / "train" / "images").glob("*.png"))[3]
    if case == "missing root":
        shutil.rmtree(root)
        return root, str(root), "data root not found"
    if case == "missing train.csv":
        (root / "train.csv").unlink()
        return root, str(root / "train.csv"), "file not found"
    if case == "empty image folder":
        for path in (root / "train" / "images").iterdir():
            path.unlink()
        return root, str(root / "train" / "images"), "image folder is empty"
    if case == "corrupt PNG":
        image.write_bytes(image.read_bytes()[:100])
        return root, str(image), "cannot be decoded as an image"
    if case == "malformed depths.csv":
        (root / "depths.csv").write_text("id,z\nx,deep\n")
        return root, str(root / "depths.csv"), "not a number"
    raise ValueError(case)


@pytest.mark.parametrize(
    "case",
    [
        "missing root",
        "missing train.csv",
        "empty image folder",
        "corrupt PNG",
        "malformed depths.csv",
    ],
)
def test_bad_data_stops_training_before_it_writes_anything(
    case, synthetic_root, train_config, tmp_path
):
    root, named, problem = break_data(copy_data(synthetic_root, tmp_path / "data"), case)
    run = tmp_path / "run"
    with pytest.raises(DataError) as error:
        train(train_config(f"data.root={root}", output_dir=run))
    assert_one_line(error, named, problem)
    assert files_under(run) == []


def test_data_check_refuses_a_missing_depths_csv(synthetic_root, tmp_path, capsys):
    root = copy_data(synthetic_root, tmp_path / "data")
    (root / "depths.csv").unlink()
    with pytest.raises(SystemExit) as stop:
        check.main([str(root)])
    assert stop.value.code == 1
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last == f"error: {root / 'depths.csv'}: file not found"


def test_unknown_config_key_is_refused_by_name(synthetic_root, tmp_path):
    run = tmp_path / "run"
    result = run_module(
        "salt.train",
        "experiment=smoke",
        f"data.root={synthetic_root}",
        "trainer.max_epoch=3",
        f"hydra.run.dir={run}",
        timeout=120,
    )
    assert result.returncode == 1
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("error: Could not override 'trainer.max_epoch'"), result.stderr
    assert "Key 'max_epoch' is not in struct" in last
    assert "Traceback" not in result.stderr and "HYDRA_FULL_ERROR" not in result.stderr
    assert not run.exists()


def test_imagenet_weights_offline_name_the_fix(train_config, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr("salt.models.encoders._hub_reachable", lambda timeout=3.0: False)
    monkeypatch.setattr("huggingface_hub.try_to_load_from_cache", lambda *a, **k: None)
    run = tmp_path / "run"
    cfg = train_config("model.encoder_weights=imagenet", output_dir=run)
    with pytest.raises(SystemExit) as stop:  # as `python -m salt.train` runs it
        exit_on_salt_error(train)(cfg)
    assert stop.value.code == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1] == (
        "error: cannot download imagenet weights for encoder resnet18: the weights hub is "
        "unreachable; pass model.encoder_weights=null (random init) or a local weights file"
    )
    assert files_under(run) == []


@pytest.fixture
def foreign_checkpoint(tmp_path) -> Path:
    """A checkpoint of a net with other decoder widths."""
    other = compose_config(
        "train", ["experiment=smoke", "model.decoder_channels=[16,8,4]", "model.scse=false"]
    )
    path = tmp_path / "foreign" / "checkpoints" / "last.ckpt"
    path.parent.mkdir(parents=True)
    torch.save({"state_dict": build_module(other).state_dict(), "epoch": 0, "global_step": 6}, path)
    return path


@pytest.mark.parametrize("how", ["ckpt_path", "resume"])
def test_checkpoint_of_another_architecture(how, foreign_checkpoint, train_config, tmp_path):
    run = foreign_checkpoint.parent.parent
    option = f"ckpt_path={foreign_checkpoint}" if how == "ckpt_path" else f"resume={run}"
    with pytest.raises(SaltError) as error:
        train(train_config(option, output_dir=run))
    assert_one_line(error, str(foreign_checkpoint), "a checkpoint of another architecture")
    assert files_under(run) == ["checkpoints/last.ckpt"]


def test_inference_refuses_weights_that_do_not_fit_their_net_config(
    foreign_checkpoint, train_config, tmp_path
):
    module = build_module(train_config())
    checkpoint = {
        "state_dict": torch.load(foreign_checkpoint, weights_only=True)["state_dict"],
        "hyper_parameters": dict(module.hparams),
    }
    torch.save(checkpoint, tmp_path / "tampered.ckpt")
    with pytest.raises(SaltError) as error:
        load_net(tmp_path / "tampered.ckpt")
    assert_one_line(error, "tampered.ckpt", "weights do not fit the architecture")


class PoisonedLoss(nn.Module):
    """The real criterion, except its loss is `value` from training batch `batch` of `epoch`."""

    def __init__(self, loss: nn.Module, owner: list, epoch: int, batch: int, value: float):
        super().__init__()
        self.loss, self.owner = loss, owner  # the module in a list: not a submodule
        self.at, self.value = (epoch, batch), value

    def forward(self, outputs, masks):
        losses = self.loss(outputs, masks)
        module = self.owner[0]
        batch = module.trainer.fit_loop.epoch_loop.batch_idx
        if module.training and (module.current_epoch, batch) == self.at:
            losses["loss"] = losses["loss"] * self.value
        return losses


@pytest.mark.parametrize(
    "value, epoch, kept",
    [(float("nan"), 1, "the last good checkpoint is"), (float("inf"), 0, "no checkpoint saved")],
    ids=["nan-after-a-good-epoch", "inf-in-the-first-epoch"],
)
def test_non_finite_loss_stops_and_keeps_the_last_good_checkpoint(
    value, epoch, kept, train_config, tmp_path, monkeypatch
):
    def poisoned(cfg):
        module = build_module(cfg)
        module.loss = PoisonedLoss(module.loss, [module], epoch=epoch, batch=0, value=value)
        return module

    monkeypatch.setattr(salt.train, "build_module", poisoned)
    run = tmp_path / "run"
    with pytest.raises(SaltError) as error:
        train(train_config(*short(limit=1), output_dir=run))
    assert_one_line(
        error, f"training loss is {value} at epoch {epoch}, batch 0: training stopped; {kept}"
    )
    assert not (run / "metrics.json").exists() and not list(run.rglob("*.tmp*"))
    if epoch == 0:
        assert not (run / "checkpoints").exists()
    else:
        assert str(run / "checkpoints" / "last.ckpt") in str(error.value)
        last = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)
        assert last["epoch"] == 0
        assert all(
            torch.isfinite(v).all() for v in last["state_dict"].values() if v.is_floating_point()
        )


@pytest.mark.parametrize(
    "code, words", [(errno.EROFS, "Read-only file system"), (errno.EACCES, "Permission denied")]
)
def test_submission_into_a_read_only_folder(code, words, tmp_path, monkeypatch):
    def refused(*args, **kwargs):
        raise OSError(code, words)

    monkeypatch.setattr("salt.core.files.tempfile.mkstemp", refused)
    masks = np.zeros((2, 101, 101), dtype=np.uint8)
    with pytest.raises(SaltError) as error:
        write_submission(tmp_path / "s.csv", ["a", "b"], masks, ["a", "b"])
    assert_one_line(error, str(tmp_path / "s.csv"), f"cannot write in {tmp_path} ({words})")
    assert list(tmp_path.iterdir()) == []


def test_probabilities_on_a_full_disk_leave_no_partial_file(tmp_path, monkeypatch):
    def full(file, **arrays):
        file.write(b"partial")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr("salt.predict.np.savez_compressed", full)
    predictions = TilePredictions(masks=np.zeros((2, 101, 101), dtype=np.float32))
    with pytest.raises(SaltError) as error:
        save_probabilities(tmp_path / "p.npz", ["a", "b"], predictions)
    assert_one_line(error, str(tmp_path / "p.npz"), "No space left on device")
    assert list(tmp_path.iterdir()) == []


def test_seeded_sampler_shards_an_epoch_between_ranks():
    dataset = list(range(10))
    ranks = [SeededSampler(dataset, seed=5, num_replicas=2, rank=r) for r in range(2)]
    for sampler in ranks:
        sampler.set_epoch(3)
    keys = [list(sampler) for sampler in ranks]
    assert len(keys[0]) == len(keys[1]) == 5
    assert sorted(index for shard in keys for index, _ in shard) == dataset
    alone = SeededSampler(dataset, seed=5)
    alone.set_epoch(3)
    # a tile's augmentation seed is the same whichever rank draws it
    assert dict(pair for shard in keys for pair in shard) == dict(alone)
