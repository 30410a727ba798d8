"""Deterministic batch plans: length-grouped micro-batches in a seeded order (the data position is an index)."""

from __future__ import annotations

import random
from collections.abc import Sequence


def length_grouped_batches(
    lengths: Sequence[int], batch_size: int, seed: int, group_by_length: bool = True, megabatch_factor: int = 32
) -> list[list[int]]:
    """Shuffle indices, sort each megabatch by length (longest first), cut into batches, shuffle the batches.

    Grouping similar lengths cuts padding; shuffling megabatches and batch order keeps the data mixed.
    """
    rng = random.Random(seed)
    indices = list(range(len(lengths)))
    rng.shuffle(indices)
    if not group_by_length:
        return [indices[i : i + batch_size] for i in range(0, len(indices), batch_size)]
    megabatch = batch_size * megabatch_factor
    batches: list[list[int]] = []
    for start in range(0, len(indices), megabatch):
        chunk = sorted(indices[start : start + megabatch], key=lambda i: -lengths[i])
        batches.extend(chunk[i : i + batch_size] for i in range(0, len(chunk), batch_size))
    rng.shuffle(batches)
    return batches


def mixture_indices(sizes: Sequence[int], weights: Sequence[float], seed: int) -> list[tuple[int, int]]:
    """One epoch of a weighted mixture as (dataset, record) pairs.

    A weight is a multiplier on the dataset's size per epoch: 1.0 takes every record once, 0.5 a seeded half,
    2.0 every record twice.
    """
    rng = random.Random(seed)
    chosen: list[tuple[int, int]] = []
    for dataset, (size, weight) in enumerate(zip(sizes, weights, strict=True)):
        whole, fraction = divmod(weight, 1.0)
        for _ in range(int(whole)):
            chosen.extend((dataset, i) for i in range(size))
        extra = round(size * fraction)
        chosen.extend((dataset, i) for i in sorted(rng.sample(range(size), extra)))
    return chosen
