"""How long a test waits for a subprocess or a condition before calling it hung, and the waits that use it.

A guard against hangs only, never a speed check: a subprocess of the suite (a 2-step training run, a DeepSpeed
launch that builds its shared-memory op, a pip install) may take many times its idle time on a machine shared with
other jobs and must still pass there; a hung one fails within minutes, saying what hung.
"""

from __future__ import annotations

import asyncio
import subprocess
import time
from collections.abc import Callable

import pytest

#: seconds; the slowest subprocess of the suite (a two-process DeepSpeed launch building its op, about a minute
#: idle) several times over on a loaded 2-core machine, and still minutes, not an hour
SUBPROCESS_HANG_S = 600
#: characters of a hung subprocess's output shown in the failure
OUTPUT_TAIL = 2000


def _text(output: bytes | str | None) -> str:
    if isinstance(output, bytes):
        return output.decode("utf-8", "replace")
    return output or ""


def describe_timeout(expired: subprocess.TimeoutExpired) -> str:
    """The failure for a subprocess that ran past the guard: its command and the end of what it wrote."""
    command = expired.cmd if isinstance(expired.cmd, str) else " ".join(map(str, expired.cmd))
    output = (_text(expired.stdout) + _text(expired.stderr))[-OUTPUT_TAIL:]
    return (f"hung: `{command}` did not exit within {expired.timeout:g} s (tests/support/hang_guard.py); "
            f"its output ends: {output or '(nothing)'}")


def _fail(what: str) -> None:
    pytest.fail(f"hung: {what}, not within {SUBPROCESS_HANG_S} s (tests/support/hang_guard.py)", pytrace=False)


def wait_for(condition: Callable[[], object], what: str, poll_s: float = 0.05) -> None:
    """Return as soon as ``condition()`` is true; fail naming ``what`` (e.g. "the run writing its checkpoint")
    once the guard has passed."""
    deadline = time.monotonic() + SUBPROCESS_HANG_S
    while not condition():
        if time.monotonic() > deadline:
            _fail(what)
        time.sleep(poll_s)


async def wait_for_async(condition: Callable[[], object], what: str, poll_s: float = 0.02) -> None:
    """:func:`wait_for` inside an event loop (the loop keeps running while it waits)."""
    deadline = time.monotonic() + SUBPROCESS_HANG_S
    while not condition():
        if time.monotonic() > deadline:
            _fail(what)
        await asyncio.sleep(poll_s)
