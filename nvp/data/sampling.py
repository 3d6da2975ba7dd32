"""Training samplers that give the same global batches on any number of devices.

Under DDP Lightning replaces a DataLoader's sampler by a distributed one. For a custom
sampler that is a ``DistributedSamplerWrapper`` which *shuffles the positions* of the
sampler's epoch list before splitting them over the ranks, so the samples of one
optimisation step differ from those of one process with the same global batch.
:class:`StridedShard` splits the list without reordering it: rank r takes the items r,
r + W, r + 2W, ... Consecutive batches of b items on W processes then hold exactly the
items of consecutive batches of W x b items on one process (gradients are averaged over
the ranks, so the steps agree up to the loss's own dependence on the batch split).
"""

from __future__ import annotations

from collections.abc import Iterator, Sized
from typing import Any

import torch
from torch.utils.data import DistributedSampler, Sampler


class EpochSeeded(Sampler[int]):
    """Base of samplers whose epoch ``e`` draws from a generator seeded with ``seed + e``.

    :meth:`set_epoch` (called by Lightning / :class:`StridedShard`) selects the epoch; without
    it every iteration advances to the next epoch, so each epoch gets a fresh draw. Seeding
    from the epoch also makes a resumed run see the orders it would have seen. Subclasses
    implement :meth:`draw`.
    """

    def __init__(self, seed: int = 0) -> None:
        self.seed = seed
        self.epoch = 0
        self.drawn_epoch = 0
        """The epoch of the latest draw (what :meth:`draw` is drawing)."""

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def draw(self, generator: torch.Generator) -> list[int]:
        """The item indices of one epoch."""
        raise NotImplementedError

    def __iter__(self):
        g = torch.Generator().manual_seed(self.seed + self.epoch)
        self.drawn_epoch = self.epoch
        self.epoch += 1
        return iter(self.draw(g))


class StridedShard(DistributedSampler):
    """Rank ``rank``'s share of ``sampler``'s epoch: the items ``rank::world_size`` of its list,
    padded with its first items to a multiple of ``world_size`` (as ``DistributedSampler``).

    A ``DistributedSampler`` subclass, so Lightning uses it as it is (and calls its
    ``set_epoch``, which is passed on to ``sampler``).

    Args:
        sampler: a sampler with a length, drawing the whole epoch (the same list on every rank:
            seed it identically).
        rank: this process's global rank.
        world_size: number of processes.
    """

    def __init__(self, sampler: Sampler[int], rank: int, world_size: int) -> None:
        if not isinstance(sampler, Sized):
            raise TypeError("StridedShard needs a sampler with a length")
        super().__init__(range(len(sampler)), num_replicas=world_size, rank=rank, shuffle=False)
        self.sampler = sampler

    def __iter__(self) -> Iterator[int]:
        items = list(self.sampler)
        while len(items) < self.total_size:  # pad as DistributedSampler does
            items += items[: self.total_size - len(items)]
        return iter(items[self.rank : self.total_size : self.num_replicas])

    def set_epoch(self, epoch: int) -> None:
        super().set_epoch(epoch)
        if callable(getattr(self.sampler, "set_epoch", None)):
            self.sampler.set_epoch(epoch)


def shard_for(sampler: Sampler[int], trainer: Any | None) -> Sampler[int]:
    """``sampler`` split over the processes of ``trainer`` (a :class:`StridedShard`), or
    ``sampler`` itself without a trainer or with a single process."""
    world = int(getattr(trainer, "world_size", 1) or 1) if trainer is not None else 1
    if world <= 1:
        return sampler
    return StridedShard(sampler, int(trainer.global_rank), world)
