"""Metrics: plain-python scoring (``scoring``) and ``evaluate`` modules wrapping it (``medvqa``, ``coloninst``)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

METRIC_NAMES = ("medvqa", "coloninst")


def metric_path(name: str) -> Path:
    """The folder of a shipped ``evaluate`` module, for ``evaluate.load(str(metric_path(name)))``."""
    if name not in METRIC_NAMES:
        from medzoo import PluginError

        raise PluginError(f"unknown metric {name!r}; expected one of {', '.join(METRIC_NAMES)}")
    return Path(__file__).resolve().parent / name


def load_metric(name: str) -> Any:
    """Load a shipped metric through ``evaluate`` from its local folder, never from the hub."""
    os.environ.setdefault("HF_EVALUATE_OFFLINE", "1")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import evaluate

    return evaluate.load(str(metric_path(name)))
