"""Throughput on a shared machine: training steps beside competing CPU-bound processes, as a ratio to the fair share.

Phases, in one process on the same batches: idle (threads chosen by the governor), then with ``competitors``
busy-looping processes started by this bench, once with the governor following the free cores and once with the
idle thread count held fixed (the behaviour before the governor: the baseline). The fair share of a process
that used ``t`` threads idle on ``c`` cores, beside ``k`` CPU-bound competitors, is
``idle throughput * min(1, (c / (k + 1)) / min(t, c))``: its 1/(k+1) of the cores, at its idle speed per core.
The target is a ratio of at least 0.8.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import torch

from medzoo.app.speedbench.train_step import bench_stage, medzoo_step, prepare, sample_batches
from medzoo.core.cpu_threads import ThreadGovernor, available_cores, other_runnable
from medzoo.core.model.build import build_model
from medzoo.core.training.stage_data import load_stage_data
from medzoo.core.training.trainer import apply_tuning, build_optimizer

TARGET_RATIO = 0.8
BUSY_LOOP = "while True: pass"


def fair_share(idle_throughput: float, cores: int, idle_threads: int, competitors: int) -> float:
    """What a fair scheduler leaves a process beside ``competitors`` CPU-bound ones (see the module docstring)."""
    share = (cores / (competitors + 1)) / max(1, min(idle_threads, cores))
    return idle_throughput * min(1.0, share)


@contextmanager
def competing_processes(count: int, settle_s: float = 5.0) -> Iterator[int]:
    """Start ``count`` busy-looping Python processes; yields how many other runnable tasks are then seen."""
    processes = [subprocess.Popen([sys.executable, "-c", BUSY_LOOP]) for _ in range(count)]
    try:
        deadline = time.monotonic() + settle_s
        seen = other_runnable() or 0
        while seen < count and time.monotonic() < deadline:
            time.sleep(0.05)
            seen = other_runnable() or 0
        yield seen
    finally:
        for process in processes:
            process.kill()
        for process in processes:
            process.wait()


def samples_per_second(step: Callable[[int], int], steps: int, governor: ThreadGovernor | None) -> tuple[float, int]:
    """(samples/s over ``steps`` steps, threads at the end); the governor re-checks before every step."""
    samples = 0
    started = time.perf_counter()
    for index in range(steps):
        if governor is not None:
            governor.adjust()
        samples += step(index)
    return samples / (time.perf_counter() - started), torch.get_num_threads()


def run_shared_machine_bench(recipe: Any, steps: int = 10, warmup: int = 2, competitors: int = 1, echo=print) -> dict[str, Any]:
    """Training-step throughput idle and beside ``competitors`` CPU-bound processes, governed and fixed."""
    stage = bench_stage(recipe)
    torch.manual_seed(stage.seed)
    model = build_model(recipe.model, shrink=recipe.shrink)
    apply_tuning(model, stage.tuning)
    data = load_stage_data(model, stage, recipe.data.on_bad_record)
    model.train()
    prepared = prepare(model, data, stage, {"padded": sample_batches(data, stage, 8)["padded"]})["padded"]
    train_step = medzoo_step(model, build_optimizer(model, stage), stage.max_grad_norm)

    def step(index: int) -> int:
        train_step(prepared.batches[index % len(prepared.batches)])
        return prepared.samples[index % len(prepared.samples)]

    threads_before = torch.get_num_threads()
    cores = available_cores()
    governor = ThreadGovernor(interval=0.5, fixed=False)
    try:
        others_idle = other_runnable()
        governor.adjust(force=True)
        samples_per_second(step, warmup, governor)
        idle, idle_threads = samples_per_second(step, steps, governor)
        echo(f"busy machine: idle {idle:.1f} samples/s on {idle_threads} threads ({cores} cores, "
             f"{others_idle} other runnable tasks)")
        with competing_processes(competitors) as seen:
            governor.adjust(force=True)
            samples_per_second(step, warmup, governor)
            governed, governed_threads = samples_per_second(step, steps, governor)
            torch.set_num_threads(idle_threads)
            samples_per_second(step, warmup, None)
            fixed, _ = samples_per_second(step, steps, None)
    finally:
        torch.set_num_threads(threads_before)
    fair = fair_share(idle, cores, idle_threads, competitors)
    result = {
        "stage": stage.name, "micro_batch_size": stage.micro_batch_size, "steps": steps, "warmup": warmup,
        "cores": cores, "competitors": competitors, "competitors_seen": seen, "others_when_idle": others_idle,
        "idle_samples_per_s": round(idle, 2), "idle_threads": idle_threads, "fair_share_samples_per_s": round(fair, 2),
        "governed": {"samples_per_s": round(governed, 2), "threads": governed_threads,
                     "ratio_to_fair_share": round(governed / fair, 3)},
        "fixed_threads": {"samples_per_s": round(fixed, 2), "threads": idle_threads,
                          "ratio_to_fair_share": round(fixed / fair, 3)},
        "target_ratio": TARGET_RATIO,
    }
    result["meets_target"] = result["governed"]["ratio_to_fair_share"] >= TARGET_RATIO
    echo(f"busy machine: beside {competitors} CPU-bound process(es) {governed:.1f} samples/s governed "
         f"({governed_threads} threads), {fixed:.1f} with {idle_threads} fixed threads; fair share {fair:.1f}")
    return result


def render_shared_machine(busy: dict[str, Any]) -> list[str]:
    """The section as Markdown."""
    rows = [
        ["governed (medzoo)", busy["governed"]["threads"], busy["governed"]["samples_per_s"],
         busy["fair_share_samples_per_s"], busy["governed"]["ratio_to_fair_share"]],
        ["fixed idle threads (baseline)", busy["fixed_threads"]["threads"], busy["fixed_threads"]["samples_per_s"],
         busy["fair_share_samples_per_s"], busy["fixed_threads"]["ratio_to_fair_share"]],
    ]
    header = ["threads policy", "threads", "samples/s", "fair share samples/s", "ratio (target >= 0.8)"]
    lines = [f"### Busy machine ({busy['stage']} stage, micro-batch {busy['micro_batch_size']}, {busy['cores']} "
             f"cores; idle {busy['idle_samples_per_s']} samples/s on {busy['idle_threads']} threads; beside "
             f"{busy['competitors']} CPU-bound process(es), {busy['competitors_seen']} seen)", ""]
    lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return [*lines, ""]
