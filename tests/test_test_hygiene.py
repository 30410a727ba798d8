"""The suite's own rules: no assertion on wall-clock time anywhere in tests/, and a hang fails within minutes
saying what hung (tests/support/hang_guard.py)."""

from __future__ import annotations

import ast
import subprocess
from pathlib import Path

import pytest
from support import hang_guard

TESTS = Path(__file__).resolve().parent
#: the clocks a wall-clock assertion reads (``time.monotonic()``, ``perf_counter()`` after ``from time import``...)
CLOCKS = {"monotonic", "monotonic_ns", "perf_counter", "perf_counter_ns", "time", "time_ns"}


def reads_a_clock(node: ast.AST) -> bool:
    for call in ast.walk(node):
        if not isinstance(call, ast.Call):
            continue
        function = call.func
        if isinstance(function, ast.Attribute) and function.attr in CLOCKS and \
                isinstance(function.value, ast.Name) and function.value.id == "time":
            return True
        if isinstance(function, ast.Name) and function.id in CLOCKS - {"time"}:
            return True
    return False


def clock_names(tree: ast.AST) -> set[str]:
    """Names assigned from a clock, or from an expression of such names (``started``, ``elapsed = now - started``)."""
    names: set[str] = set()
    assignments = [node for node in ast.walk(tree) if isinstance(node, ast.Assign | ast.AnnAssign | ast.AugAssign)]
    changed = True
    while changed:
        changed = False
        for node in assignments:
            if node.value is None:
                continue
            tainted = reads_a_clock(node.value) or any(
                isinstance(name, ast.Name) and name.id in names for name in ast.walk(node.value))
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                for name in ast.walk(target):
                    if tainted and isinstance(name, ast.Name) and name.id not in names:
                        names.add(name.id)
                        changed = True
    return names


def wall_clock_assertions(source: str, filename: str) -> list[str]:
    """``file:line`` of each ``assert`` that reads a clock or a value derived from one."""
    tree = ast.parse(source, filename)
    timed = clock_names(tree)
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Assert) and (reads_a_clock(node.test) or any(
                isinstance(name, ast.Name) and name.id in timed for name in ast.walk(node.test))):
            found.append(f"{filename}:{node.lineno}")
    return found


def test_no_test_asserts_on_wall_clock_time():
    found = [hit for path in sorted(TESTS.rglob("*.py"))
             for hit in wall_clock_assertions(path.read_text(encoding="utf-8"), str(path.relative_to(TESTS)))]
    assert found == [], ("assertions on elapsed time fail on a loaded machine; assert on counts, order or "
                         f"concurrency instead: {', '.join(found)}")


@pytest.mark.parametrize("source", [
    "started = time.monotonic()\nrun()\nassert time.monotonic() - started < 20\n",
    "t0 = perf_counter()\nrun()\nelapsed = perf_counter() - t0\nassert elapsed < 1\n",
    "times = [time.time() for _ in range(2)]\nassert times[1] - times[0] >= 0.95\n",
])
def test_the_wall_clock_check_finds_elapsed_time_assertions(source):
    assert wall_clock_assertions(source, "t.py") != []


def test_the_wall_clock_check_leaves_guards_and_counts_alone():
    source = ("deadline = time.monotonic() + 600\nwhile time.monotonic() < deadline and not done():\n    pass\n"
              "assert server.request_count == 9\n")
    assert wall_clock_assertions(source, "t.py") == []


def test_the_hang_guard_is_minutes_not_an_hour():
    assert 60 <= hang_guard.SUBPROCESS_HANG_S <= 600


def test_a_hung_subprocess_fails_naming_its_command_and_output():
    expired = subprocess.TimeoutExpired(["python", "-m", "medzoo.app.cli", "train"], 600, output=b"step 3\n",
                                        stderr=b"waiting for the lock")
    message = hang_guard.describe_timeout(expired)
    assert message.startswith("hung: `python -m medzoo.app.cli train` did not exit within 600 s")
    assert message.endswith("step 3\nwaiting for the lock")


def test_a_condition_that_never_holds_fails_naming_what_was_awaited(monkeypatch):
    monkeypatch.setattr(hang_guard, "SUBPROCESS_HANG_S", 0)
    with pytest.raises(pytest.fail.Exception, match=r"^hung: the run writing its checkpoint, not within 0 s"):
        hang_guard.wait_for(lambda: False, "the run writing its checkpoint", poll_s=0)
