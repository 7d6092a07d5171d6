"""Exported models (ONNX, torch.export .pt2, TorchScript) give what salt.inference.tiles gives, with the stored contract."""

import json

import numpy as np
import pytest
import torch

from salt import export as export_cli
from salt.data.dataset import TileDataset
from salt.data.padding import pad_tile
from salt.data.synthetic import make_tile
from salt.inference.tiles import predict_tiles
from salt.models.checkpoints import load_net
from tests.helpers.tiny_net import write_checkpoint


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    run = tmp_path_factory.mktemp("export") / "run"
    write_checkpoint(run / "checkpoints" / "best.ckpt", seed=1, mean=0.5, std=0.2)
    return run


def tiles_and_expected(run, tta):
    """Real tiles, their input as the export's contract says, and salt.inference.tiles's output."""
    rng = np.random.default_rng(0)
    images = np.stack([make_tile(rng)[0] for _ in range(5)])
    checkpoint = run / "checkpoints" / "best.ckpt"
    options = {"mean": 0.5, "std": 0.2, "channels": 1}
    expected = predict_tiles(load_net(checkpoint), TileDataset(images, **options), tta=tta)
    return images, expected.masks[:, None]


def contract_input(images, metadata):
    padded = np.stack([pad_tile(image) for image in images]).astype(np.float32)
    scaled = (padded / 255 - float(metadata["salt.mean"])) / float(metadata["salt.std"])
    return np.repeat(scaled[:, None], int(metadata["salt.channels"]), axis=1)


def test_onnx_export_matches_torch(tiny_run, tmp_path, capsys):
    onnx = pytest.importorskip("onnx")
    onnxruntime = pytest.importorskip("onnxruntime")
    out = tmp_path / "model.onnx"
    export_cli.main([str(tiny_run), "--format", "onnx", "--out", str(out), "--tta"])
    printed = capsys.readouterr().out
    difference = float(printed.split("random tiles: ")[1].split()[0])
    with capsys.disabled():
        print(f"\nONNX vs torch on random tiles: max abs difference {difference:.2e}")
    assert difference <= 1e-4
    metadata = {p.key: p.value for p in onnx.load(str(out)).metadata_props}
    assert metadata["salt.mean"] == "0.5" and metadata["salt.tta"] == "none+hflip"
    images, expected = tiles_and_expected(tiny_run, ["none", "hflip"])
    session = onnxruntime.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    got = session.run(None, {"tiles": contract_input(images, metadata)})[0]
    assert got.shape == (5, 1, 101, 101)
    assert np.abs(got - expected).max() <= 1e-4
    assert not list(tmp_path.glob("*.tmp"))


def test_pt2_export_matches_torch_with_flip_tta(tiny_run, tmp_path, capsys):
    out = tmp_path / "model.pt2"
    export_cli.main([str(tiny_run), "--format", "pt2", "--out", str(out), "--tta"])
    assert f"wrote {out} (pt2, tta=hflip)" in capsys.readouterr().out
    extra = {"salt.json": ""}
    program = torch.export.load(str(out), extra_files=extra)
    metadata = json.loads(extra["salt.json"])
    assert metadata["salt.tta"] == "none+hflip" and metadata["salt.mean"] == "0.5"
    images, expected = tiles_and_expected(tiny_run, ["none", "hflip"])
    with torch.no_grad():  # 5 tiles: neither the export's example batch (2) nor its check (3)
        got = program.module()(torch.from_numpy(contract_input(images, metadata))).numpy()
    assert got.shape == (5, 1, 101, 101)
    assert np.abs(got - expected).max() <= 1e-4
    assert [p.name for p in tmp_path.iterdir()] == ["model.pt2"]


def test_torchscript_export_matches_torch(tiny_run, tmp_path):
    out = tmp_path / "model.pt"
    assert export_cli.export(tiny_run, out, "torchscript") <= 1e-4
    extra = {"salt.json": ""}
    model = torch.jit.load(str(out), _extra_files=extra)
    metadata = json.loads(extra["salt.json"])
    assert metadata["salt.tta"] == "none" and metadata["salt.std"] == "0.2"
    images, expected = tiles_and_expected(tiny_run, ["none"])
    with torch.no_grad():
        got = model(torch.from_numpy(contract_input(images, metadata))).numpy()
    assert np.abs(got - expected).max() <= 1e-4


def test_export_refuses_in_one_line(tiny_run, tmp_path, capsys, monkeypatch):
    cases = [
        ([str(tiny_run), "--checkpoint", "swa"], "run directory has no swa checkpoints"),
        ([str(tmp_path / "nowhere")], "no such run directory or checkpoint file"),
    ]
    for args, problem in cases:
        with pytest.raises(SystemExit):
            export_cli.main([*args, "--format", "torchscript", "--out", str(tmp_path / "m.pt")])
        message = capsys.readouterr().err.strip()
        assert message.startswith("error: ") and "\n" not in message and problem in message
    monkeypatch.setattr(export_cli, "TOLERANCE", -1.0)  # any difference now counts as a mismatch
    with pytest.raises(SystemExit):
        export_cli.main([str(tiny_run), "--format", "torchscript", "--out", str(tmp_path / "m.pt")])
    assert "differs from torch" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())
