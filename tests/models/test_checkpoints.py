"""Checkpoints read back (salt.models.checkpoints): memory-mapped, any torch.save format."""

from __future__ import annotations

import pytest
import torch

from salt.core.errors import SaltError
from salt.models.checkpoints import load_net, net_weights, read_checkpoint
from tests.helpers.tiny_net import write_checkpoint


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
