"""The CPU thread governor: cores from affinity and cgroup quota, other runnable tasks from /proc, threads set to the
free cores at most once per interval, and never when the thread count was chosen."""

from __future__ import annotations

import subprocess
import sys

import pytest
from support.hang_guard import wait_for

from medzoo.app.speedbench.shared_machine import fair_share
from medzoo.core import cpu_threads
from medzoo.core.cpu_threads import ThreadGovernor, cgroup_quota, other_runnable, runnable_tasks, threads_for
from medzoo.core.errors import MedzooError


@pytest.mark.parametrize(("text", "expected"), [("max 100000\n", None), ("200000 100000\n", 2.0),
                                                 ("150000 100000", 1.5), ("garbage", None)])
def test_cgroup_v2_quota(tmp_path, text, expected):
    (tmp_path / "cpu.max").write_text(text)
    assert cgroup_quota(tmp_path) == expected


def test_cgroup_v1_quota_and_no_cgroup(tmp_path):
    assert cgroup_quota(tmp_path) is None
    (tmp_path / "cpu").mkdir()
    (tmp_path / "cpu" / "cpu.cfs_quota_us").write_text("50000\n")
    (tmp_path / "cpu" / "cpu.cfs_period_us").write_text("100000\n")
    assert cgroup_quota(tmp_path) == 0.5
    (tmp_path / "cpu" / "cpu.cfs_quota_us").write_text("-1\n")
    assert cgroup_quota(tmp_path) is None


def test_available_cores_is_capped_by_the_quota(tmp_path):
    (tmp_path / "cpu.max").write_text("100000 100000\n")
    assert cpu_threads.available_cores(tmp_path) == 1
    (tmp_path / "cpu.max").write_text("max 100000\n")
    assert cpu_threads.available_cores(tmp_path) >= 1


def _fake_proc(root, procs_running, states):
    (root / "stat").write_text(f"cpu  1 2 3\nprocs_running {procs_running}\nprocs_blocked 0\n")
    for index, state in enumerate(states):
        task = root / "self" / "task" / str(100 + index)
        task.mkdir(parents=True)
        task.joinpath("stat").write_text(f"{100 + index} (python (odd) name) {state} 1 2 3\n")
    return root


def test_other_runnable_subtracts_this_process_s_running_threads(tmp_path):
    proc = _fake_proc(tmp_path, 5, ["R", "S", "R"])
    assert runnable_tasks(proc) == 5
    assert other_runnable(samples=2, pause=0, proc=proc) == 3


def test_other_runnable_off_linux(tmp_path):
    assert other_runnable(proc=tmp_path) is None


@pytest.mark.parametrize(("cores", "others", "most", "expected"), [
    (2, 0, None, 2), (2, 1, None, 1), (2, 5, None, 1), (8, 3, None, 5), (8, 0, 4, 4), (2, None, None, 2)])
def test_threads_for_the_free_cores(cores, others, most, expected):
    assert threads_for(cores, others, most) == expected


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def test_governor_follows_the_load_at_most_once_per_interval():
    load, clock, calls = {"others": 0}, Clock(), []
    governor = ThreadGovernor(interval=2.0, cores=lambda: 2, others=lambda: load["others"], set_threads=calls.append,
                              clock=clock, fixed=False)
    assert governor.adjust() == 2 and calls == [2]
    load["others"] = 1
    clock.now = 1.0
    assert governor.adjust() == 2 and calls == [2]  # not due yet
    clock.now = 2.5
    assert governor.adjust() == 1 and calls == [2, 1]
    assert governor.adjust(force=True) == 1 and calls == [2, 1]  # unchanged: torch is not called again
    load["others"] = 0
    clock.now = 5.0
    assert governor.adjust() == 2 and calls == [2, 1, 2] and governor.changes == 2


def test_a_chosen_thread_count_is_never_changed(monkeypatch):
    calls = []
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    governor = ThreadGovernor(cores=lambda: 2, others=lambda: 1, set_threads=calls.append)
    assert governor.fixed and governor.adjust(force=True) is None and calls == []


def test_medzoo_threads_pins_and_a_bad_value_is_one_line(monkeypatch):
    calls = []
    monkeypatch.setattr(cpu_threads, "_torch_set_num_threads", calls.append)
    monkeypatch.setattr(cpu_threads, "_governor", None)
    monkeypatch.setenv("MEDZOO_THREADS", "1")
    assert cpu_threads.adjust_threads(force=True) == 1 and calls == [1]
    monkeypatch.setattr(cpu_threads, "_governor", None)
    monkeypatch.setenv("MEDZOO_THREADS", "two")
    with pytest.raises(MedzooError, match=r"MEDZOO_THREADS='two': expected a whole number >= 1"):
        cpu_threads.adjust_threads()


def test_a_real_competitor_is_seen_on_linux():
    if runnable_tasks() is None:
        pytest.skip("no /proc/stat here")
    competitor = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        wait_for(lambda: (other_runnable() or 0) >= 1, "the busy-looping competitor showing in /proc/stat")
    finally:
        competitor.kill()
        competitor.wait()


@pytest.mark.parametrize(("cores", "threads", "competitors", "share"), [
    (2, 2, 1, 0.5), (2, 1, 1, 1.0), (2, 2, 3, 0.25), (8, 4, 1, 1.0), (2, 2, 0, 1.0)])
def test_fair_share(cores, threads, competitors, share):
    assert fair_share(100.0, cores, threads, competitors) == pytest.approx(100.0 * share)
