"""Checkpoints read back (salt.models.checkpoints): memory-mapped, any torch.save format."""

from __future__ import annotations

import pytest
import torch
from hydra.utils import instantiate

from salt.core.errors import SaltError
from salt.models.checkpoints import load_net, net_weights, read_checkpoint
from tests.helpers.tiny_net import NET_CONFIG, write_checkpoint


def test_the_legacy_format_loads_the_same_weights(tmp_path):
    path = write_checkpoint(tmp_path / "new.ckpt", seed=3)
    legacy = tmp_path / "legacy.ckpt"
    torch.save(torch.load(path, weights_only=True), legacy, _use_new_zipfile_serialization=False)
    expected = net_weights(read_checkpoint(path))
    loaded = net_weights(read_checkpoint(legacy))
    assert expected.keys() == loaded.keys()
    assert all(torch.equal(expected[k], loaded[k]) for k in expected)


def test_writing_into_a_loaded_tensor_leaves_the_file_alone(tmp_path):
    path = write_checkpoint(tmp_path / "a.ckpt", seed=1)
    weights = net_weights(read_checkpoint(path))
    name = next(iter(weights))
    before = weights[name].clone()
    weights[name].add_(1.0)
    assert torch.equal(net_weights(read_checkpoint(path))[name], before)
    net = load_net(path)
    assert torch.equal(net.state_dict()[name], before)


def test_a_truncated_checkpoint_is_refused_in_one_line(tmp_path):
    path = write_checkpoint(tmp_path / "a.ckpt")
    path.write_bytes(path.read_bytes()[:5000])
    with pytest.raises(SaltError, match=r"a\.ckpt: not a readable checkpoint"):
        read_checkpoint(path)


def test_a_loaded_net_holds_the_checkpoint_tensors_themselves(tmp_path):
    """No copy: with a memory-mapped checkpoint the net's weights are the file's pages, so a
    weight the net never uses is never read into memory."""
    path = write_checkpoint(tmp_path / "a.ckpt", seed=2)
    checkpoint = read_checkpoint(path)
    weights = net_weights(checkpoint)
    net = load_net(path, checkpoint)
    state = net.state_dict()
    assert state.keys() == weights.keys()
    assert all(state[k].data_ptr() == weights[k].data_ptr() for k in weights)
    assert all(isinstance(p, torch.nn.Parameter) and p.requires_grad for p in net.parameters())
    assert not net.training


def test_a_loaded_net_predicts_as_one_built_and_loaded_in_memory(tmp_path):
    path = write_checkpoint(tmp_path / "a.ckpt", seed=4)
    built = instantiate({**NET_CONFIG})
    built.load_state_dict(net_weights(torch.load(path, weights_only=True)))
    images = torch.rand(2, 1, 128, 128, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        expected, loaded = built.eval()(images), load_net(path)(images)
    assert expected.keys() == loaded.keys()
    assert all(torch.equal(expected[k], loaded[k]) for k in expected)


class NetWithScratch(torch.nn.Module):
    """A net with a tensor that no state dict holds (a non-persistent buffer)."""

    def __init__(self, encoder_weights=None) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(1, 1, 3)
        self.register_buffer("scratch", torch.zeros(3), persistent=False)


def test_a_net_with_a_tensor_outside_its_state_dict_is_refused_in_one_line(tmp_path):
    path = tmp_path / "scratch.ckpt"
    torch.save(
        {
            "state_dict": {f"net.{k}": v for k, v in NetWithScratch().state_dict().items()},
            "hyper_parameters": {
                "net_config": {"_target_": f"{__name__}.NetWithScratch"},
                "tile_options": {"mean": 0.5, "std": 0.2, "channels": 1},
            },
        },
        path,
    )
    expected = r"scratch\.ckpt: the net has tensors its checkpoint cannot hold \(scratch\)"
    with pytest.raises(SaltError, match=expected):
        load_net(path)
