"""The policy's weights as vLLM's ``LlavaForConditionalGeneration`` loads them: llava-hf names
(``llava_hf_weights``, the mapping ``medzoo export --format hf-llava`` writes), LoRA adapters merged.

A LoRA layer is sent as the weight it would have after merging: the layer is copied (one layer at a time) and
peft's own ``merge`` runs on the copy, so DoRA and rsLoRA merge exactly as the export merges them, and the policy
itself is never touched (TRL merges in place and unmerges, which leaves rounding in the base weights). The
``lora_*`` tensors are not sent and peft's ``base_layer.`` infix is dropped from the names.

After the first full sync only what training changes is sent: tensors of parameters that require gradients and
the merged LoRA layers; frozen weights are already in vLLM.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch

from medzoo import ExportRefused, adapter_owner, llava_hf_weights

#: what a peft LoRA layer's own tensors are called (``q_proj.lora_A.default.weight``, DoRA's magnitude, ...)
LORA_TENSOR = ".lora_"
#: the infix peft puts before a wrapped layer's own tensors
BASE_LAYER = ".base_layer."


@dataclass(frozen=True)
class OutgoingTensor:
    """One tensor to send: its llava-hf name and where its value comes from (``merge``: a LoRA layer whose
    merged weight it is)."""

    name: str
    source: torch.Tensor
    merge: Any = None

    @property
    def dtype(self) -> torch.dtype:
        return self.source.dtype

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.source.shape)

    def value(self) -> torch.Tensor:
        """The tensor as vLLM should hold it (a merged copy for a LoRA layer's weight)."""
        if self.merge is None:
            return self.source.contiguous()
        with torch.no_grad():
            layer = copy.deepcopy(self.merge)
            layer.merge(safe_merge=True)
            return layer.get_base_layer().weight.detach().contiguous()


def outgoing_tensors(model: Any, trained_only: bool) -> list[OutgoingTensor]:
    """The tensors to send, in llava-hf naming order (``trained_only``: just those training changes)."""
    check_adapters(model)
    lora_layers = {layer.get_base_layer().weight.data_ptr(): layer for layer in lora_modules(model)}
    trained = {parameter.data_ptr() for parameter in model.parameters() if parameter.requires_grad}
    outgoing = []
    for name, tensor in llava_hf_weights(model).items():
        if LORA_TENSOR in name:
            continue
        # a LoRA layer's base weight, under peft's name or as a connector's llava_hf_export reads it
        layer = lora_layers.get(tensor.data_ptr()) if name.endswith("weight") else None
        if trained_only and layer is None and tensor.data_ptr() not in trained:
            continue
        outgoing.append(OutgoingTensor(name.replace(BASE_LAYER, "."), tensor, layer))
    return outgoing


def stream(tensors: list[OutgoingTensor]) -> Iterator[tuple[str, torch.Tensor]]:
    """(name, value) one tensor at a time (a merged LoRA weight exists only while it is being sent)."""
    for tensor in tensors:
        yield tensor.name, tensor.value()


def lora_modules(model: Any) -> list[Any]:
    from peft.tuners.lora import LoraLayer

    return [module for module in model.modules() if isinstance(module, LoraLayer)]


def check_adapters(model: Any) -> None:
    """Refuse adapters of a strategy other than LoRA (their merged weights cannot be formed without merging the
    policy itself)."""
    for module_name, module in (("vision", model.vision), ("connector", model.connector),
                                ("language", model.language.model)):
        owner = adapter_owner(module)
        if owner is not None and owner[0] != "lora":
            raise ExportRefused(f"the vLLM weight sync merges LoRA adapters; the {module_name} module carries "
                                f"{owner[0]!r} adapters: use rollouts backend: engine")
