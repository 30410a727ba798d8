"""CPU intra-op threads that follow the cores actually free, so a busy machine costs a fair share, not 10x.

torch runs CPU kernels on an OpenMP pool whose threads spin at every barrier. When another process holds one of
the cores, a pool thread that is descheduled stalls the others at each barrier while they burn their time
slices spinning: on 2 cores beside one CPU-bound job, a 2-thread training step ran 4x slower than with 1 thread
(``medzoo speed`` measures it, see ``docs/benchmarks.md``). The :class:`ThreadGovernor` counts the runnable
tasks of other processes (``/proc/stat`` ``procs_running`` less this process's running threads) against the
cores this process may use (affinity and cgroup quota) and sets ``torch.set_num_threads`` to the free ones,
re-checking at most every ``interval`` seconds from the training loop and the inference engine.

The governor is opt-in (``MEDZOO_THREADS=auto``): a different intra-op thread count changes the order of
floating-point sums, so a run whose count followed the machine's load is not reproducible bit for bit. By
default the process pins the count once, on first use, to the cores it may use (``available_cores``): the same
machine kind gives the same count, and with the same seed and data the same weights and metrics.
``MEDZOO_THREADS=N``, ``OMP_NUM_THREADS`` or :func:`pin_threads` (``--threads``) choose another fixed count.
Off Linux the governor only reads the affinity and never adapts. :func:`thread_record` says, for ``run.json``,
which count a result was computed with.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from medzoo.core.errors import MedzooError

#: environment variables that fix the thread count (the governor then never changes it)
FIXED_THREADS_VARIABLES = ("MEDZOO_THREADS", "OMP_NUM_THREADS")
#: the ``MEDZOO_THREADS`` value that turns the governor on (the count then follows the free cores)
AUTO = "auto"


def fixed_by_environment() -> bool:
    """A thread count is chosen in the environment (``MEDZOO_THREADS=N`` or ``OMP_NUM_THREADS``)."""
    medzoo = os.environ.get("MEDZOO_THREADS", "").strip().lower()
    return bool(medzoo and medzoo != AUTO) or bool(os.environ.get("OMP_NUM_THREADS", "").strip())


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
    fixed: bool = field(default_factory=fixed_by_environment)
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
#: where the process's thread count came from: ``cores`` (the default), ``auto``, ``MEDZOO_THREADS``,
#: ``OMP_NUM_THREADS`` or ``pin_threads``
_source: str | None = None


def governor() -> ThreadGovernor:
    """The process's governor, made on first use: adaptive with ``MEDZOO_THREADS=auto``; otherwise the count is
    pinned (``MEDZOO_THREADS=N``; ``OMP_NUM_THREADS`` as torch read it; by default the usable cores)."""
    global _governor, _source
    if _governor is None:
        setting = os.environ.get("MEDZOO_THREADS", "").strip()
        if setting.lower() == AUTO:
            _governor, _source = ThreadGovernor(fixed=False), AUTO
        elif setting:
            if not setting.isdigit() or int(setting) < 1:
                raise MedzooError(
                    f"environment variable MEDZOO_THREADS={setting!r}: expected a whole number >= 1 or 'auto'"
                )
            pin_threads(int(setting), source="MEDZOO_THREADS")
        elif os.environ.get("OMP_NUM_THREADS", "").strip():
            import torch

            _governor, _source = ThreadGovernor(fixed=True, threads=torch.get_num_threads()), "OMP_NUM_THREADS"
        else:
            pin_threads(available_cores(), source="cores")
    assert _governor is not None
    return _governor


def adjust_threads(force: bool = False) -> int | None:
    """Called between training steps and generation batches: pins the count on first use, then (only with
    ``MEDZOO_THREADS=auto``) follows the free cores (cheap when not due)."""
    return governor().adjust(force)


def pin_threads(count: int, source: str = "pin_threads") -> None:
    """Use exactly ``count`` threads from now on (``--threads``); the governor stops adapting."""
    global _governor, _source
    if _governor is None:
        _governor = ThreadGovernor()
    _torch_set_num_threads(count)
    _governor.fixed, _governor.threads = True, count
    _source = source


@contextmanager
def pinned(count: int) -> Iterator[None]:
    """``count`` threads inside the block (the governor pinned too); the previous state afterwards."""
    import torch

    global _governor, _source
    saved, saved_source, threads = _governor, _source, torch.get_num_threads()
    _governor = None
    pin_threads(count, source="pinned")
    try:
        yield
    finally:
        _governor, _source = saved, saved_source
        _torch_set_num_threads(threads)


def thread_record() -> dict[str, object]:
    """What a result's thread count was, for ``run.json``: the policy (``fixed`` or ``auto``), where the count
    came from, the count now and how many times the governor changed it in this process."""
    import torch

    state = governor()
    return {
        "policy": "fixed" if state.fixed else AUTO,
        "source": _source,
        "intra_op_threads": torch.get_num_threads(),
        "inter_op_threads": torch.get_num_interop_threads(),
        "changes": state.changes,
        "usable_cores": available_cores(),
    }
