"""The load check (slow, run with ``-m slow``): 32 concurrent clients get >= 4x the throughput of one."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from support.hang_guard import SUBPROCESS_HANG_S

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "serve_load.py"


@pytest.mark.slow
def test_dynamic_batching_multiplies_throughput():
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--check", "--clients", "32", "--requests-per-client", "8", "--sequential", "24"],
        capture_output=True, text=True, timeout=SUBPROCESS_HANG_S,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["concurrent"]["requests"] == 256 and report["concurrent"]["failures"] == 0
    assert report["speedup"] >= 4.0 and max(report["recent_batch_sizes"]) > 8
