"""4-bit base weights through bitsandbytes: which devices have a backend, how a Linear layer is quantised and
dequantised. QLoRA (``qlora``) goes through :func:`four_bit_backend` only, so tests can hand it a recorder in
place of the ``bitsandbytes`` module.

The calls mirror transformers' own 4-bit loading (transformers/integrations/bitsandbytes.py:
``bnb.nn.Linear4bit(in, out, bias, compute_dtype, compress_statistics=, quant_type=, quant_storage=)`` and the
weight as ``bnb.nn.Params4bit(value, requires_grad=False, ...)`` quantised by ``.to(device)``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from types import ModuleType
from typing import Any

import torch
from torch import nn

QUANT_TYPES = ("nf4", "fp4")
COMPUTE_DTYPES = ("bfloat16", "float16", "float32")
#: the device types whose 4-bit layers medzoo trains QLoRA on (bitsandbytes' CUDA kernels)
FOUR_BIT_DEVICES = ("cuda",)


@dataclass(frozen=True)
class QuantisationPlan:
    """How the base weights are stored: what bitsandbytes is asked for, saved beside the adapters."""

    quant_type: str = "nf4"
    double_quant: bool = True
    compute_dtype: str = "bfloat16"
    quant_storage: str = "uint8"

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class BitsAndBytes:
    """The bitsandbytes 4-bit layer on the devices in ``devices``; ``bnb`` stands in for the module in tests."""

    def __init__(self, bnb: ModuleType | Any | None = None, devices: tuple[str, ...] = FOUR_BIT_DEVICES) -> None:
        self._bnb = bnb
        self.devices = devices

    @property
    def bnb(self) -> Any:
        if self._bnb is None:
            import bitsandbytes

            self._bnb = bitsandbytes
        return self._bnb

    def unavailable(self, device: torch.device) -> str | None:
        """Why ``device`` has no 4-bit backend, or ``None`` when it has one."""
        if device.type not in self.devices:
            return f"device {device.type!r} has none (bitsandbytes 4-bit layers run on {', '.join(self.devices)})"
        try:
            self.bnb  # noqa: B018 - the import is the check
        except ImportError:
            return "bitsandbytes is not installed (pip install bitsandbytes)"
        return None

    def is_quantised(self, layer: nn.Module) -> bool:
        return isinstance(layer, self.bnb.nn.Linear4bit)

    def quantise(self, linear: nn.Linear, plan: QuantisationPlan, device: torch.device) -> nn.Module:
        """A 4-bit copy of ``linear`` on ``device`` (bitsandbytes quantises the weight as it moves there)."""
        bnb = self.bnb
        settings = {"compress_statistics": plan.double_quant, "quant_type": plan.quant_type,
                    "quant_storage": getattr(torch, plan.quant_storage)}
        layer = bnb.nn.Linear4bit(linear.in_features, linear.out_features, linear.bias is not None,
                                  getattr(torch, plan.compute_dtype), **settings)
        layer.weight = bnb.nn.Params4bit(linear.weight.data, requires_grad=False, **settings)
        if linear.bias is not None:
            layer.bias = nn.Parameter(linear.bias.data, requires_grad=False)
        return layer.to(device)

    def dequantise(self, layer: nn.Module) -> torch.Tensor:
        """The layer's weight back in floating point (the base weight the adapters were trained on)."""
        return self.bnb.functional.dequantize_4bit(layer.weight.data, getattr(layer.weight, "quant_state", None))


def four_bit_backend() -> BitsAndBytes:
    """The backend QLoRA quantises through."""
    return BitsAndBytes()


def run_device() -> torch.device:
    """The device a run here trains on (the accelerator's choice: CUDA when there is one)."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")
