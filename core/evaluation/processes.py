"""The processes answering one evaluation together (``accelerate launch --num_processes N ... eval``).

The launcher (torchrun underneath) sets ``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK``; the processes join one
gloo group (on CPU and GPU alike: it only carries barriers), each answers every N-th pending question and the main
process merges and scores. A single process (no launcher) needs no group at all.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import TypeVar

T = TypeVar("T")
#: how long a process waits at a barrier for the others (a shard of a large benchmark on a slow model)
BARRIER_TIMEOUT = timedelta(hours=24)


@dataclass(frozen=True)
class EvalProcesses:
    """This process's place among those answering one evaluation (``rank`` of ``world``)."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world > 1

    def shard(self, items: Sequence[T]) -> list[T]:
        """This process's share of ``items``: every ``world``-th one from position ``rank`` (deterministic)."""
        return list(items[self.rank :: self.world])

    def barrier(self) -> None:
        """Wait until every process got here."""
        if self.distributed:
            import torch.distributed as dist

            dist.barrier()

    @contextmanager
    def main_first(self) -> Iterator[None]:
        """Run the block on the main process first, then on the others (a block that may write caches)."""
        if not self.is_main:
            self.barrier()
        yield
        if self.is_main:
            self.barrier()

    def device(self, requested: str = "auto") -> str:
        """``auto``: this process's GPU (``cuda:LOCAL_RANK``) when there is one, else the CPU."""
        if requested != "auto":
            return requested
        import torch

        return f"cuda:{self.local_rank}" if torch.cuda.is_available() else "cpu"


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name, "")
    return int(value) if value.strip().isdigit() else default


def eval_processes() -> EvalProcesses:
    """This process's place, joining the launcher's process group on first use (one process: no group)."""
    world = _env_int("WORLD_SIZE", 1)
    processes = EvalProcesses(_env_int("RANK", 0), world, _env_int("LOCAL_RANK", 0))
    if processes.distributed:
        import torch.distributed as dist

        if not dist.is_initialized():
            dist.init_process_group("gloo", timeout=BARRIER_TIMEOUT)
    return processes
