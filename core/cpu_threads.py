"""CPU intra-op threads that follow the cores actually free, so a busy machine costs a fair share, not 10x.

torch runs CPU kernels on an OpenMP pool whose threads spin at every barrier. When another process holds one of
the cores, a pool thread that is descheduled stalls the others at each barrier while they burn their time
slices spinning: on 2 cores beside one CPU-bound job, a 2-thread training step ran 4x slower than with 1 thread
(``medzoo speed`` measures it, see ``docs/benchmarks.md``). The :class:`ThreadGovernor` counts the runnable
tasks of other processes (``/proc/stat`` ``procs_running`` less this process's running threads) against the
cores this process may use (affinity and cgroup quota) and sets ``torch.set_num_threads`` to the free ones,
re-checking at most every ``interval`` seconds from the training loop and the inference engine.

It stays out of the way when the thread count was chosen: ``OMP_NUM_THREADS`` or ``MEDZOO_THREADS`` in the
environment, or :func:`pin_threads` (``--threads``). Off Linux it only reads the affinity and never adapts.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from medzoo.core.errors import MedzooError

#: environment variables that fix the thread count (the governor then never changes it)
FIXED_THREADS_VARIABLES = ("MEDZOO_THREADS", "OMP_NUM_THREADS")


def available_cores(cgroup_root: Path = Path("/sys/fs/cgroup")) -> int:
    """Cores this process may run on: its CPU affinity, capped by a cgroup CPU quota (v2 ``cpu.max``, v1 CFS)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    quota = cgroup_quota(cgroup_root)
    return max(1, min(cores, math.ceil(quota))) if quota else max(1, cores)


def cgroup_quota(root: Path) -> float | None:
    """CPUs the cgroup quota grants (``cpu.max``: ``200000 100000`` -> 2.0), None when unlimited or unreadable."""
    try:
        quota, period = (root / "cpu.max").read_text().split()[:2]
        return None if quota == "max" else int(quota) / int(period)
    except (OSError, ValueError):
        pass
    try:
        quota_us = int((root / "cpu" / "cpu.cfs_quota_us").read_text())
        period_us = int((root / "cpu" / "cpu.cfs_period_us").read_text())
        return None if quota_us <= 0 else quota_us / period_us
    except (OSError, ValueError):
        return None


def runnable_tasks(proc: Path = Path("/proc")) -> int | None:
    """Tasks running or ready to run on the whole machine now (``procs_running``), None off Linux."""
    try:
        for line in (proc / "stat").read_text().splitlines():
            if line.startswith("procs_running "):
                return int(line.split()[1])
    except (OSError, ValueError):
        return None
    return None


def own_running_threads(proc: Path = Path("/proc")) -> int:
    """This process's threads in state R (at least 1: the one asking)."""
    running = 0
    try:
        tasks = list((proc / "self" / "task").iterdir())
    except OSError:
        return 1
    for task in tasks:
        try:
            state = (task / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        running += state == "R"
    return max(1, running)


def other_runnable(samples: int = 3, pause: float = 0.005, proc: Path = Path("/proc")) -> int | None:
    """Runnable tasks of other processes: the least of a few samples (a CPU-bound job is always runnable;
    a short-lived task is not counted)."""
    counts = []
    for index in range(samples):
        total = runnable_tasks(proc)
        if total is None:
            return None
        counts.append(max(0, total - own_running_threads(proc)))
        if index + 1 < samples:
            time.sleep(pause)
    return min(counts)


def threads_for(cores: int, others: int | None, most: int | None = None) -> int:
    """Intra-op threads for ``cores`` usable cores with ``others`` runnable tasks elsewhere: the free cores
    (at least 1), at most ``most``."""
    free = cores if others is None else cores - others
    return max(1, min(most or cores, free))


@dataclass
class ThreadGovernor:
    """Sets torch's intra-op threads to the free cores, at most once every ``interval`` seconds."""

    interval: float = 2.0
    cores: Callable[[], int] = available_cores
    others: Callable[[], int | None] = other_runnable
    set_threads: Callable[[int], None] | None = None
    clock: Callable[[], float] = time.monotonic
    fixed: bool = field(default_factory=lambda: any(os.environ.get(name) for name in FIXED_THREADS_VARIABLES))
    threads: int | None = None
    changes: int = 0
    _checked_at: float | None = None

    def adjust(self, force: bool = False) -> int | None:
        """Re-check the machine when ``interval`` has passed (or ``force``); the thread count in use when set."""
        if self.fixed:
            return self.threads
        now = self.clock()
        if not force and self._checked_at is not None and now - self._checked_at < self.interval:
            return self.threads
        self._checked_at = now
        wanted = threads_for(self.cores(), self.others())
        if wanted != self.threads:
            (self.set_threads or _torch_set_num_threads)(wanted)
            self.changes += self.threads is not None
            self.threads = wanted
        return self.threads


def _torch_set_num_threads(count: int) -> None:
    import torch

    torch.set_num_threads(count)


_governor: ThreadGovernor | None = None


def governor() -> ThreadGovernor:
    """The process's governor (made on first use; honours ``MEDZOO_THREADS`` when set)."""
    global _governor
    if _governor is None:
        _governor = ThreadGovernor()
        fixed = os.environ.get("MEDZOO_THREADS", "").strip()
        if fixed:
            if not fixed.isdigit() or int(fixed) < 1:
                raise MedzooError(f"environment variable MEDZOO_THREADS={fixed!r}: expected a whole number >= 1")
            pin_threads(int(fixed))
    return _governor


def adjust_threads(force: bool = False) -> int | None:
    """Called between training steps and generation batches: follow the free cores (cheap when not due)."""
    return governor().adjust(force)


def pin_threads(count: int) -> None:
    """Use exactly ``count`` threads from now on (``--threads``); the governor stops adapting."""
    global _governor
    if _governor is None:
        _governor = ThreadGovernor()
    _torch_set_num_threads(count)
    _governor.fixed, _governor.threads = True, count
