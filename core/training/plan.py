"""The data plan of a stage: global batches (one per optimizer step) from the seed alone, split over processes.

A step's samples do not depend on the number of processes or the micro-batch size, so one process and N
processes with the same global batch see the same data, and a resumed run needs only the step number.
"""

from __future__ import annotations

from collections.abc import Sequence

from medzoo.core.training.batching import length_grouped_batches, mixture_indices


class StepPlan:
    """Global batches of every epoch; an epoch's incomplete last batch is dropped."""

    def __init__(
        self,
        lengths: Sequence[int],
        sizes: Sequence[int],
        weights: Sequence[float],
        global_batch_size: int,
        seed: int,
        group_by_length: bool,
    ) -> None:
        self.lengths = list(lengths)
        self.sizes = list(sizes)
        self.weights = list(weights)
        self.global_batch_size = global_batch_size
        self.seed = seed
        self.group_by_length = group_by_length
        self.offsets = [sum(sizes[:i]) for i in range(len(sizes))]
        self._cache: dict[int, list[list[int]]] = {}
        self.per_epoch = len(self._epoch(0))

    def _epoch(self, epoch: int) -> list[list[int]]:
        if epoch not in self._cache:
            pairs = mixture_indices(self.sizes, self.weights, self.seed + epoch)
            samples = [self.offsets[d] + i for d, i in pairs]
            lengths = [self.lengths[s] for s in samples]
            batches = length_grouped_batches(lengths, self.global_batch_size, self.seed + epoch, self.group_by_length)
            full = [[samples[i] for i in batch] for batch in batches if len(batch) == self.global_batch_size]
            self._cache = {epoch: full}
        return self._cache[epoch]

    def step_batch(self, step: int) -> list[int]:
        """Sample indices of optimizer step ``step`` (0-based, counting across epochs)."""
        if self.per_epoch == 0:
            raise ValueError("fewer samples than one global batch")
        return self._epoch(step // self.per_epoch)[step % self.per_epoch]


def micro_batches(global_batch: Sequence[int], world: int, rank: int, micro_batch_size: int) -> list[list[int]]:
    """This process's share of a global batch (a contiguous slice), cut into near-equal micro-batches.

    Every process gets the same number of micro-batches (DDP needs the same number of backward passes).
    """
    per_process = len(global_batch) // world
    if per_process * world != len(global_batch) or per_process == 0:
        raise ValueError(f"a global batch of {len(global_batch)} samples cannot be split over {world} processes")
    share = list(global_batch[rank * per_process : (rank + 1) * per_process])
    count = -(-per_process // micro_batch_size)
    base, extra = divmod(per_process, count)
    out, start = [], 0
    for i in range(count):
        size = base + (1 if i < extra else 0)
        out.append(share[start : start + size])
        start += size
    return out
