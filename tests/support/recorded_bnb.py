"""A stand-in for the ``bitsandbytes`` module that records what QLoRA asks of it.

Its ``nn.Linear4bit`` is a plain ``nn.Linear`` (the weights stay in floating point, so a model "quantised" through
it computes what the unquantised model computes) that records its constructor's arguments; ``nn.Params4bit``
records its tensor and keyword arguments; ``functional.dequantize_4bit`` hands the weight back. What is recorded
is exactly what medzoo passes to bitsandbytes, to be compared with transformers' own 4-bit loading.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import torch
from torch import nn


@dataclass
class Recorder:
    layers: list[dict[str, Any]] = field(default_factory=list)
    params: list[dict[str, Any]] = field(default_factory=list)
    moved_to: list[torch.device] = field(default_factory=list)


def recorded_bnb(recorder: Recorder) -> SimpleNamespace:
    class Linear4bit(nn.Linear):
        def __init__(self, input_features, output_features, bias=True, compute_dtype=None, compress_statistics=True,
                     quant_type="fp4", quant_storage=torch.uint8, device=None):
            super().__init__(input_features, output_features, bias, device=device)
            recorder.layers.append({"in": input_features, "out": output_features, "bias": bias,
                                    "compute_dtype": compute_dtype, "compress_statistics": compress_statistics,
                                    "quant_type": quant_type, "quant_storage": quant_storage})

        def to(self, *args, **kwargs):
            recorder.moved_to.append(torch.device(args[0]) if args else kwargs.get("device"))
            return super().to(*args, **kwargs)

    def params_4bit(data: torch.Tensor, requires_grad: bool = False, **settings: Any) -> nn.Parameter:
        recorder.params.append({"data": data.clone(), "requires_grad": requires_grad, **settings})
        return nn.Parameter(data.clone(), requires_grad=requires_grad)

    def dequantize_4bit(data: torch.Tensor, quant_state: Any = None) -> torch.Tensor:
        return data

    return SimpleNamespace(nn=SimpleNamespace(Linear4bit=Linear4bit, Params4bit=params_4bit),
                           functional=SimpleNamespace(dequantize_4bit=dequantize_4bit))
