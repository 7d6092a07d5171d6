"""The SWA-start ablation: SWA from each start cycle, rebuilt from one run's snapshots."""

import json

import pytest
import torch

from salt.bench import swa_start
from salt.core.rundir import RunDir
from salt.models.checkpoints import net_weights, read_checkpoint
from salt.train import train
from tests.helpers.runs import run_main

BATCHNORM_STATISTICS = ("running_mean", "running_var", "num_batches_tracked")


@pytest.fixture
def three_cycle_run(train_config, tmp_path):
    cfg = train_config(
        "sched=cosine_cycles",
        "sched.cycles=3",
        "callbacks=snapshots",
        "callbacks.snapshots.start_cycle=0",
        "trainer.max_epochs=3",
        "plots=false",
    )
    train(cfg)
    return tmp_path / "run"


def test_swa_from_each_start_averages_the_snapshots_from_that_cycle_on(
    three_cycle_run, tmp_path, capsys
):
    run = RunDir(three_cycle_run)
    snapshots = run.snapshots()
    assert [path.name for path in snapshots] == [f"cycle-00{i}.ckpt" for i in range(3)]
    # the run's own SWA (CycleSWA, start_cycle 1, averaged online): the same weights rebuilt here
    online = net_weights(read_checkpoint(run.checkpoint("swa")))
    from_second = swa_start.average_weights(snapshots[1:])
    from_first = swa_start.average_weights(snapshots)
    weights = [key for key in online if not key.endswith(BATCHNORM_STATISTICS)]
    for key in weights:
        torch.testing.assert_close(from_second[key], online[key], rtol=1e-5, atol=1e-6)
    assert any(not torch.allclose(from_first[key], online[key]) for key in weights)

    figures = tmp_path / "swa.json"
    code, out, _ = run_main(
        swa_start.main, [str(run.path), "--starts", "0", "1", "2", "--json", str(figures)], capsys
    )
    assert code == 0
    rows = json.loads(figures.read_text())["starts"]
    assert [row["cycles_averaged"] for row in rows] == [[0, 1, 2], [1, 2], [2]]
    for row in rows:
        assert 0.0 <= row["score_at_0.5"] <= row["score_tuned"] <= 1.0
        assert f"{row['score_at_0.5']:.4f}" in out


def test_swa_start_needs_the_snapshots_in_one_line(smoke_run, capsys):
    code, _, err = run_main(swa_start.main, [str(smoke_run)], capsys)
    assert code != 0
    assert "no cycle snapshots" in err and "callbacks.snapshots.start_cycle=0" in err
    assert len(err.strip().splitlines()) == 1
