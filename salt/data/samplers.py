"""The training samplers: an epoch's order and augmentation seeds from (seed, epoch) alone,
sharded across DDP ranks; `MixedSampler` deals labelled and pseudo-labelled tiles into every
batch at a fixed ratio."""

from __future__ import annotations

import math

import numpy as np
import torch
from torch.utils.data import Dataset, DistributedSampler


def augmentation_seed(seed: int, epoch: int, index: int, repeat: int = 0) -> int:
    """The seed of one tile's augmentation in one epoch: a function of (seed, epoch, index) only
    (and of `repeat`, the how-manieth time the tile comes up in the epoch, when it is not the
    first)."""
    entropy = [seed, epoch, index, repeat] if repeat else [seed, epoch, index]
    return int(np.random.SeedSequence(entropy).generate_state(1)[0])


class SeededSampler(DistributedSampler):
    """Shuffles with a generator seeded from (seed, epoch) and yields `(index, augmentation seed)`.

    The order and the augmentations of an epoch then depend on nothing but the seed and the epoch
    (not on the global RNG, the number of workers or what ran before), so a run resumed from a
    checkpoint replays exactly the batches of an uninterrupted one. Lightning calls `set_epoch`
    before every epoch. Being a `DistributedSampler`, it shards the epoch itself under DDP and
    Lightning leaves it in place.
    """

    def __init__(self, dataset: Dataset, seed: int = 0, num_replicas: int = 1, rank: int = 0):
        super().__init__(dataset, num_replicas=num_replicas, rank=rank, shuffle=True, seed=seed)

    def __iter__(self):
        for index in super().__iter__():
            yield index, augmentation_seed(self.seed, self.epoch, index)


class MixedSampler(SeededSampler):
    """Labelled tiles (dataset indices `0..labelled-1`) and pseudo-labelled ones (the rest),
    `ratio` pseudo tiles per labelled tile in every batch of every rank (the 4th place's mix).

    An epoch is every labelled tile once, in a shuffled order, and `round(labelled * ratio)`
    pseudo tiles drawn without replacement (reshuffled when they run out). Each rank's stream
    places a pseudo tile where the running share of pseudo tiles falls behind
    `ratio / (1 + ratio)`, so every local batch holds the ratio (to one tile). The ranks take
    the global positions in turn, as `DistributedSampler` deals them, and global position
    (rank r, local j) draws the labelled or pseudo tile `world * (its kind's slots before j) +
    r` of the epoch's order: the ranks together see the tiles one process of their summed batch
    size would see, in the same global batches.
    """

    def __init__(
        self,
        dataset: Dataset,
        labelled: int,
        ratio: float,
        seed: int = 0,
        num_replicas: int = 1,
        rank: int = 0,
    ):
        super().__init__(dataset, seed=seed, num_replicas=num_replicas, rank=rank)
        pseudo = len(dataset) - labelled  # type: ignore[arg-type]
        if labelled < 1 or pseudo < 1 or ratio <= 0:
            raise ValueError(
                f"need labelled and pseudo tiles and a ratio > 0 ({labelled}, {pseudo}, {ratio})"
            )
        self.labelled, self.pseudo, self.ratio = labelled, pseudo, ratio
        self.share = ratio / (1 + ratio)
        epoch_length = labelled + round(labelled * ratio)
        self.num_samples = math.ceil(epoch_length / num_replicas)
        self.total_size = self.num_samples * num_replicas

    def _pseudo_slots_before(self, local: int) -> int:
        return math.floor(local * self.share + 1e-9)

    def _order(self, generator: torch.Generator, length: int, count: int) -> list[int]:
        """`count` draws of `range(length)`: shuffled passes, one after the other."""
        passes = math.ceil(count / length)
        order = [torch.randperm(length, generator=generator).tolist() for _ in range(passes)]
        return [index for one_pass in order for index in one_pass][:count]

    def __iter__(self):
        generator = torch.Generator()
        generator.manual_seed(self.seed + self.epoch)
        world, rank = self.num_replicas, self.rank
        local_pseudo = self._pseudo_slots_before(self.num_samples)
        labelled_order = self._order(
            generator, self.labelled, world * (self.num_samples - local_pseudo)
        )
        pseudo_order = self._order(generator, self.pseudo, world * max(local_pseudo, 1))
        for local in range(self.num_samples):
            before = self._pseudo_slots_before(local)
            if self._pseudo_slots_before(local + 1) > before:
                position = world * before + rank
                index = self.labelled + pseudo_order[position]
                repeat = position // self.pseudo
            else:
                position = world * (local - before) + rank
                index = labelled_order[position]
                repeat = position // self.labelled
            yield index, augmentation_seed(self.seed, self.epoch, index, repeat)

    def __len__(self) -> int:
        return self.num_samples
