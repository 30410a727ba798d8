"""What a figure was measured on: machine, versions, command."""

from __future__ import annotations

import os
import platform
import shlex
import sys
from typing import Any

import torch


def environment(command: list[str] | None = None) -> dict[str, Any]:
    import accelerate
    import transformers

    info: dict[str, Any] = {
        "command": shlex.join(command if command is not None else ["medzoo", *sys.argv[1:]]),
        "machine": platform.machine(),
        "cpu_cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "accelerate": accelerate.__version__,
        "device": "cpu",
    }
    if torch.cuda.is_available():
        info["device"] = "cuda"
        info["gpu"] = torch.cuda.get_device_name(0)
        info["cuda"] = torch.version.cuda
    return info
