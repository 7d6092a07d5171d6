"""What a DDP training step sends (salt.bench.collectives), on two CPU processes."""

from __future__ import annotations

import json

import pytest

from salt.bench import collectives

pytestmark = [pytest.mark.slow, pytest.mark.multiprocess]
DDP_ONLY = set(collectives.DDP_COLLECTIVES)


def test_a_plain_ddp_step_sends_only_what_ddp_sends_and_never_waits(synthetic_root, tmp_path):
    """Between the checks every 10 steps and the epoch ends, a step of the flagship config (time
    budget on) sends DDP's gradient buckets and buffer broadcast and nothing else, and reads
    nothing back from the device. Lightning's Timer and SIGTERM flag sent something every step."""
    collectives.main(
        [
            str(synthetic_root),
            "--steps",
            "12",
            "--out",
            str(tmp_path),
            "model.encoder_name=resnet18",
            "model.decoder_channels=[32,16,16,8,8]",
            "sched.cycles=1",
        ]
    )
    steps = json.loads((tmp_path / "collectives.json").read_text())["steps"]
    assert len(steps) == 12
    plain = [s for i, s in enumerate(steps[:-1]) if not s["epoch_end"] and (i + 1) % 10]
    assert len(plain) >= 8
    for step in plain:
        assert set(step["collectives"]) <= DDP_ONLY, step
        assert step["collectives"][collectives.BUCKETS] >= 1 and step["host_syncs"] == 0, step
    assert "broadcast_object_list" in steps[9]["collectives"]  # the budget, read every 10 steps
