"""A run is reproducible by default: the same recipe, seed and data give bit-identical weights whatever the
machine's load, because the intra-op thread count is pinned (the thread governor is opt-in,
``MEDZOO_THREADS=auto``); ``run.json`` records what a result depends on.

The load is simulated, not real: the governor's view of other processes is replaced by a script that says the
machine becomes busy at a known step, so the tests do not depend on this machine's load.
"""

from __future__ import annotations

import functools
import json
import platform
import sys
from importlib import metadata
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from support.tiny_run import write_recipe

from medzoo.core import cpu_threads
from medzoo.core.recipes.loading import load_recipe
from medzoo.core.training.run import train_recipe

CORES = 2
#: the step (0-based call of the governor) from which the simulated machine has a CPU-bound competitor
BUSY_FROM = 2


class SimulatedLoad:
    """Other runnable tasks as the governor would see them: none, then ``busy`` from call ``busy_from`` on."""

    def __init__(self, busy: int, busy_from: int = BUSY_FROM) -> None:
        self.busy, self.busy_from, self.calls = busy, busy_from, 0

    def __call__(self) -> int:
        self.calls += 1
        return self.busy if self.calls > self.busy_from else 0


@pytest.fixture
def process_threads(monkeypatch):
    """A fresh process-wide governor (none made yet), no thread variable set, torch's count restored after;
    yields the thread counts given to torch."""
    for name in ("MEDZOO_THREADS", "OMP_NUM_THREADS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(cpu_threads, "_governor", None)
    monkeypatch.setattr(cpu_threads, "_source", None)
    monkeypatch.setattr(cpu_threads, "available_cores", lambda *_: CORES)
    calls: list[int] = []

    def set_threads(count: int) -> None:
        calls.append(count)
        torch.set_num_threads(count)

    monkeypatch.setattr(cpu_threads, "_torch_set_num_threads", set_threads)
    threads = torch.get_num_threads()
    yield calls
    torch.set_num_threads(threads)


def train_under(load: SimulatedLoad, root: Path, monkeypatch) -> Path:
    """The tiny two-stage recipe (3 + 3 steps) trained in this process while the machine follows ``load``."""
    monkeypatch.setattr(cpu_threads, "_governor", None)
    monkeypatch.setattr(
        cpu_threads, "ThreadGovernor",
        functools.partial(cpu_threads.ThreadGovernor, cores=lambda: CORES, others=load, interval=0.0),
    )
    recipe = load_recipe(write_recipe(root / "data")).config
    train_recipe(recipe, root / "run", echo=lambda *_, **__: None)
    return root / "run"


def final_weights(run: Path) -> dict[str, torch.Tensor]:
    return {f"{file.name}:{key}": value for file in sorted((run / "final").rglob("*.safetensors"))
            for key, value in load_file(str(file)).items()}


def test_runs_under_different_load_give_bit_identical_weights(tmp_path, monkeypatch, process_threads):
    idle, busy = SimulatedLoad(busy=0), SimulatedLoad(busy=1)
    first = train_under(idle, tmp_path / "idle", monkeypatch)
    second = train_under(busy, tmp_path / "busy", monkeypatch)

    assert process_threads == [CORES, CORES], "each run pins the usable cores once and never changes them"
    weights, again = final_weights(first), final_weights(second)
    assert weights.keys() == again.keys() and len(weights) > 10
    different = [key for key in weights if not torch.equal(weights[key], again[key])]
    assert not different, f"{len(different)} tensors differ (first: {different[0]})"
    losses = [json.loads((run / "run.json").read_text())["stages"][-1]["last_loss"] for run in (first, second)]
    assert losses[0] == losses[1]


def test_the_governor_is_opt_in_and_follows_the_simulated_load(tmp_path, monkeypatch, process_threads):
    """The control: with ``MEDZOO_THREADS=auto`` the same simulated load does change the count mid-run."""
    monkeypatch.setenv("MEDZOO_THREADS", "auto")
    run = train_under(SimulatedLoad(busy=1), tmp_path, monkeypatch)
    assert process_threads[:2] == [CORES, 1], process_threads
    threads = json.loads((run / "run.json").read_text())["reproducibility"]["threads"]
    assert threads["policy"] == "auto" and threads["source"] == "auto" and threads["changes"] >= 1


def test_run_json_records_what_a_result_depends_on(tmp_path, monkeypatch, process_threads):
    run = train_under(SimulatedLoad(busy=0), tmp_path, monkeypatch)
    record = json.loads((run / "run.json").read_text())["reproducibility"]
    assert record["seeds"] == {"alignment": 3, "instruct": 3}
    assert record["threads"] == {"policy": "fixed", "source": "cores", "intra_op_threads": CORES,
                                 "inter_op_threads": torch.get_num_interop_threads(), "changes": 0,
                                 "usable_cores": CORES}
    assert record["processes"] == 1 and record["device"] == "cpu"
    for name in ("torch", "transformers", "peft", "accelerate", "numpy"):
        assert record["libraries"][name] == metadata.version(name), name
    assert record["python"] == platform.python_version() == sys.version.split()[0]
    assert record["platform"] == platform.platform() and record["cpu"]
    assert record["determinism"]["deterministic_algorithms"] is torch.are_deterministic_algorithms_enabled()
    assert set(record["determinism"]) == {"deterministic_algorithms", "cudnn_deterministic", "cudnn_benchmark",
                                          "float32_matmul_precision"}


def test_thread_settings_from_the_environment(monkeypatch, process_threads):
    monkeypatch.setenv("MEDZOO_THREADS", "1")
    assert cpu_threads.adjust_threads(force=True) == 1 and cpu_threads.thread_record()["source"] == "MEDZOO_THREADS"
    monkeypatch.setattr(cpu_threads, "_governor", None)
    monkeypatch.setenv("MEDZOO_THREADS", "AUTO")
    assert not cpu_threads.governor().fixed
    monkeypatch.setattr(cpu_threads, "_governor", None)
    monkeypatch.delenv("MEDZOO_THREADS")
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    governor = cpu_threads.governor()
    assert governor.fixed and cpu_threads.thread_record()["source"] == "OMP_NUM_THREADS"
    with cpu_threads.pinned(1):
        assert torch.get_num_threads() == 1 and cpu_threads.governor().fixed
    assert cpu_threads.governor() is governor
