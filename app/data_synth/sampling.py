"""Seeded random streams and balanced sampling, so every class occurs and every question has varied answers."""

from __future__ import annotations

import zlib
from collections import defaultdict
from collections.abc import Callable, Hashable, Sequence
from typing import TypeVar

import numpy as np

Item = TypeVar("Item")


def stream(seed: int, purpose: str) -> np.random.Generator:
    """An independent generator per (seed, purpose): changing one part of the data leaves the rest unchanged."""
    return np.random.default_rng([seed, zlib.crc32(purpose.encode("utf-8"))])


def balanced_labels(values: Sequence[str], count: int, rng: np.random.Generator) -> list[str]:
    """``count`` labels cycling through ``values`` (each occurs within one of the others), in shuffled order."""
    labels = [values[i % len(values)] for i in range(count)]
    return [labels[i] for i in rng.permutation(count)]


def select_balanced(
    candidates: Sequence[Item],
    per_group: int,
    group_key: Callable[[Item], Hashable],
    answer_key: Callable[[Item], Hashable],
    rng: np.random.Generator,
) -> list[Item]:
    """Take up to ``per_group`` candidates per group (e.g. per question text), alternating between answers.

    Groups whose candidates all share one answer are left out: such a question could be answered
    without the image. The result keeps the candidates' original order.
    """
    groups: dict[Hashable, dict[Hashable, list[int]]] = defaultdict(lambda: defaultdict(list))
    for index, candidate in enumerate(candidates):
        groups[group_key(candidate)][answer_key(candidate)].append(index)
    chosen: list[int] = []
    for by_answer in groups.values():
        if len(by_answer) < 2:
            continue
        queues = [list(np.asarray(indices)[rng.permutation(len(indices))]) for indices in by_answer.values()]
        queues = [queues[i] for i in rng.permutation(len(queues))]
        taken = 0
        while taken < per_group and any(queues):
            for queue in queues:
                if queue and taken < per_group:
                    chosen.append(int(queue.pop(0)))
                    taken += 1
    return [candidates[i] for i in sorted(chosen)]
