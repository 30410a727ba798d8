"""What a training result depends on, recorded in ``run.json`` (``reproducibility``).

With the same recipe (``recipe.yaml`` beside it), the same data and the values recorded here, a run gives the
same weights and metrics bit for bit: the seeds, the intra-op thread count and its policy (``core/cpu_threads``),
the library versions, the Python and platform, the CPU model and accelerator, the processes, and torch's
determinism flags.
"""

from __future__ import annotations

import os
import platform
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

import torch

from medzoo.core.cpu_threads import thread_record

#: distributions whose versions can change a result
LIBRARIES = ("torch", "transformers", "peft", "accelerate", "numpy", "pillow", "tokenizers", "safetensors", "medzoo")
#: environment variables that change kernels or their order
ENVIRONMENT = ("CUBLAS_WORKSPACE_CONFIG", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "MEDZOO_THREADS", "PYTHONHASHSEED")


def library_versions() -> dict[str, str | None]:
    versions: dict[str, str | None] = {}
    for name in LIBRARIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def cpu_model(cpuinfo: Path = Path("/proc/cpuinfo")) -> str:
    """The CPU's model name (``/proc/cpuinfo``), else what ``platform`` knows."""
    try:
        for line in cpuinfo.read_text(errors="replace").splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def accelerator_record() -> dict[str, Any]:
    if not torch.cuda.is_available():
        return {"cuda": None}
    return {
        "cuda": torch.version.cuda,
        "devices": [torch.cuda.get_device_name(index) for index in range(torch.cuda.device_count())],
        "cudnn": torch.backends.cudnn.version(),
    }


def determinism_flags() -> dict[str, Any]:
    return {
        "deterministic_algorithms": torch.are_deterministic_algorithms_enabled(),
        "cudnn_deterministic": bool(torch.backends.cudnn.deterministic),
        "cudnn_benchmark": bool(torch.backends.cudnn.benchmark),
        "float32_matmul_precision": torch.get_float32_matmul_precision(),
    }


def reproducibility_record(stages: list[Any], processes: int, device: str) -> dict[str, Any]:
    """The ``reproducibility`` entry of ``run.json`` for a run of ``stages`` on ``processes`` processes."""
    return {
        "seeds": {str(stage.name): int(stage.seed) for stage in stages},
        "threads": thread_record(),
        "processes": processes,
        "device": device,
        "libraries": library_versions(),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "cpu": cpu_model(),
        "accelerator": accelerator_record(),
        "determinism": determinism_flags(),
        "environment": {name: os.environ[name] for name in ENVIRONMENT if name in os.environ},
    }
