"""The net contract of docs/customizing.md: its minimal custom net, and any smp architecture
(model=smp), train as salt's own nets do, and come back from their checkpoints."""

import inspect
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf, open_dict

from salt.export import export
from salt.models.checkpoints import load_net, read_checkpoint
from salt.train import train
from tests.helpers import custom_net
from tests.helpers.runs import REPO_ROOT, run_module


def test_the_docs_print_the_minimal_net_the_tests_train():
    docs = (REPO_ROOT / "docs" / "customizing.md").read_text()
    assert inspect.getsource(custom_net.MinimalNet) in docs


def trained(train_config, model: dict, *overrides: str) -> Path:
    cfg = train_config("trainer.max_epochs=1", *overrides)
    with open_dict(cfg):
        cfg.model = OmegaConf.create(model)
    train(cfg)
    return Path(cfg.paths.output_dir)


@pytest.mark.slow
def test_a_custom_net_trains_and_comes_back_from_its_checkpoint_offline(train_config, tmp_path):
    """No `encoder_weights` argument: the net is rebuilt (meta device) without one."""
    model = {"_target_": "tests.helpers.custom_net.MinimalNet", "in_channels": 1, "width": 4}
    run = trained(train_config, model)
    net = load_net(run / "checkpoints" / "best.ckpt")
    assert isinstance(net, custom_net.MinimalNet) and net.mask.in_channels == 4
    assert export(run, tmp_path / "net.pt2", "pt2", "best", tta=False) < 1e-4


@pytest.mark.slow
@pytest.mark.parametrize("arch", ["UnetPlusPlus", "FPN"])
def test_an_smp_architecture_trains_with_deep_supervision_and_the_salt_head(train_config, arch):
    """model=smp with the deep-supervision loss: every loss term gets its output."""
    model = OmegaConf.to_container(OmegaConf.load(REPO_ROOT / "conf" / "model" / "smp.yaml"))
    model.update(arch=arch, encoder_name="resnet18", encoder_weights=None)
    model.update(classifier=True, deep_supervision=True, encoder_depth=4 if arch != "FPN" else 5)
    if arch == "UnetPlusPlus":
        model["decoder_channels"] = [32, 16, 8, 8]
    run = trained(train_config, model, "loss=deep_supervision", "loss.warm_start_epochs=0.5")
    metrics = (run / "metrics.json").read_text()
    for term in ("train/mask", "train/stages", "train/classifier"):
        assert term.replace("/", "_") in metrics, term
    checkpoint = read_checkpoint(run / "checkpoints" / "best.ckpt")
    net = load_net("best.ckpt", checkpoint)
    outputs = net(torch.zeros(2, 1, 128, 128))
    assert set(outputs) == {"mask", "stage_masks", "salt_logit"}


@pytest.mark.slow
def test_an_smp_architecture_without_stages_trains_tunes_predicts_and_exports(
    train_config, synthetic_root, tmp_path
):
    """model=smp model.arch=DeepLabV3Plus (a decoder with no stages to supervise): the whole
    chain a user runs, each step as its command."""
    model = OmegaConf.to_container(OmegaConf.load(REPO_ROOT / "conf" / "model" / "smp.yaml"))
    model.update(arch="DeepLabV3Plus", encoder_name="resnet18", encoder_weights=None)
    model.update(classifier=True, deep_supervision=False)
    run = trained(train_config, model)
    tuned = run_module("salt.tune", f"runs=[{run}]")
    assert tuned.returncode == 0, tuned.stderr[-2000:]
    submission = tmp_path / "submission.csv"
    predicted = run_module(
        "salt.predict",
        f"runs=[{run}]",
        f"data.root={synthetic_root}",
        f"out={submission}",
        "progress=false",
    )
    assert predicted.returncode == 0, predicted.stderr[-2000:]
    assert len(submission.read_text().splitlines()) == 1 + 10  # the header, every test tile
    assert export(run, tmp_path / "net.onnx", "onnx", "best", tta=False) < 1e-4
