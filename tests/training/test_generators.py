"""RankGenerators: the global generators checkpointed and restored rank by rank, and seeded per
rank. (A killed and resumed run drawing what an uninterrupted one draws, end to end:
tests/training/test_reliability.py; two ranks drawing apart: tests/distributed.)"""

from __future__ import annotations

import io
import random
from types import SimpleNamespace

import numpy as np
import torch

from salt.training.generators import (
    STATES_BY_RANK_KEY,
    STATES_KEY,
    RankGenerators,
    rng_states,
    seed_this_rank,
)


def draws() -> tuple:
    return torch.rand(3).tolist(), random.random(), np.random.rand(2).tolist()


def trainer(world_size: int = 1, rank: int = 0) -> SimpleNamespace:
    return SimpleNamespace(world_size=world_size, global_rank=rank)


def test_a_checkpoint_keeps_the_generators_and_a_resumed_epoch_draws_from_them():
    torch.manual_seed(0), random.seed(0), np.random.seed(0)
    checkpoint: dict = {}
    RankGenerators().on_save_checkpoint(trainer(), None, checkpoint)
    expected = draws()
    # the checkpoint holds plain types only: it loads with weights_only
    buffer = io.BytesIO()
    torch.save(checkpoint, buffer)
    buffer.seek(0)
    loaded = torch.load(buffer, weights_only=True)

    torch.manual_seed(99), random.seed(99), np.random.seed(99)
    resumed = RankGenerators()
    resumed.on_load_checkpoint(trainer(), None, loaded)
    draws()  # Lightning draws between loading and the first epoch: not in the saved stream
    resumed.on_train_epoch_start(trainer(), None)
    assert draws() == expected
    resumed.on_train_epoch_start(trainer(), None)  # once only: the next epoch draws on
    assert draws() != expected


def test_each_rank_restores_its_own_states_and_none_from_another_world_size():
    by_rank = []
    for seed in (1, 2):
        torch.manual_seed(seed), random.seed(seed), np.random.seed(seed)
        by_rank.append(rng_states())
    checkpoint = {STATES_KEY: by_rank[0], STATES_BY_RANK_KEY: by_rank}

    generators = RankGenerators()
    generators.on_load_checkpoint(trainer(world_size=2, rank=1), None, checkpoint)
    generators.on_train_epoch_start(trainer(world_size=2, rank=1), None)
    rank_one = draws()
    torch.manual_seed(2), random.seed(2), np.random.seed(2)
    assert rank_one == draws()

    torch.manual_seed(5), random.seed(5), np.random.seed(5)
    generators.on_load_checkpoint(trainer(world_size=3, rank=1), None, checkpoint)
    generators.on_train_epoch_start(trainer(world_size=3, rank=1), None)
    kept = draws()
    torch.manual_seed(5), random.seed(5), np.random.seed(5)
    assert kept == draws()  # saved by 2 processes, resumed by 3: this fit's own draws stay


def test_ranks_are_seeded_apart_and_reproducibly_and_one_process_is_left_alone():
    def seeded(rank: int) -> tuple:
        torch.manual_seed(42)
        seed_this_rank(rank)
        return draws()

    assert seeded(0) != seeded(1)
    assert seeded(1) == seeded(1)
    torch.manual_seed(42), random.seed(42), np.random.seed(42)
    RankGenerators().on_fit_start(trainer(world_size=1), None)
    one_process = draws()
    torch.manual_seed(42), random.seed(42), np.random.seed(42)
    assert one_process == draws()
