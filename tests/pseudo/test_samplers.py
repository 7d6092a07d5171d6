"""MixedSampler: the ratio of pseudo tiles in every batch, every labelled tile once an epoch,
and the shards of DDP ranks adding up to one process's batches."""

from __future__ import annotations

import pytest

from salt.data.samplers import MixedSampler

LABELLED, PSEUDO = 24, 10


def indices(ratio: float, world: int = 1, rank: int = 0, epoch: int = 0) -> list[int]:
    sampler = MixedSampler(
        list(range(LABELLED + PSEUDO)), LABELLED, ratio, seed=3, num_replicas=world, rank=rank
    )
    sampler.set_epoch(epoch)
    keys = list(sampler)
    assert len(keys) == len(sampler)
    return [index for index, _ in keys]


def is_pseudo(index: int) -> bool:
    return index >= LABELLED


@pytest.mark.parametrize("ratio, batch, pseudo_per_batch", [(0.5, 6, 2), (1.0, 8, 4)])
def test_every_batch_holds_the_ratio_and_every_labelled_tile_comes_once(
    ratio, batch, pseudo_per_batch
):
    epoch = indices(ratio)
    assert len(epoch) == LABELLED + round(LABELLED * ratio)
    batches = [epoch[i : i + batch] for i in range(0, len(epoch), batch)]
    assert [sum(map(is_pseudo, b)) for b in batches] == [pseudo_per_batch] * len(batches)
    assert sorted(i for i in epoch if not is_pseudo(i)) == list(range(LABELLED))
    pseudo = [i for i in epoch if is_pseudo(i)]
    assert set(pseudo) == set(range(LABELLED, LABELLED + PSEUDO))  # drawn in passes
    assert (
        max(pseudo.count(i) for i in set(pseudo)) - min(pseudo.count(i) for i in set(pseudo)) <= 1
    )


def test_the_order_is_a_function_of_seed_and_epoch():
    assert indices(0.5, epoch=1) == indices(0.5, epoch=1) != indices(0.5, epoch=2)


@pytest.mark.parametrize("ratio, batch", [(0.5, 6), (1.0, 4)])
def test_two_ranks_see_the_global_batches_of_one_process_of_twice_the_batch(ratio, batch):
    """Exact when a rank's batch holds a whole number of pseudo tiles (else to one tile)."""
    one = indices(ratio)
    ranks = [indices(ratio, world=2, rank=r) for r in (0, 1)]
    for step in range(len(one) // (2 * batch)):
        local = slice(step * batch, (step + 1) * batch)
        together = ranks[0][local] + ranks[1][local]
        expected = one[2 * batch * step : 2 * batch * (step + 1)]
        assert sorted(together) == sorted(expected), f"step {step}"
    labelled = [i for rank in ranks for i in rank if not is_pseudo(i)]
    assert sorted(labelled) == list(range(LABELLED))  # the ranks share the epoch, no repeats
    for rank in ranks:
        assert sum(map(is_pseudo, rank[:batch])) == round(batch * ratio / (1 + ratio))


def test_a_repeated_pseudo_tile_gets_a_new_augmentation():
    sampler = MixedSampler(list(range(LABELLED + PSEUDO)), LABELLED, 1.0, seed=3)
    seeds: dict[int, set[int]] = {}
    for index, seed in sampler:
        seeds.setdefault(index, set()).add(seed)
    repeated = [i for i in range(LABELLED, LABELLED + PSEUDO) if len(seeds[i]) > 1]
    assert repeated  # 24 pseudo slots over 10 tiles: drawn two or three times, seeded apart
