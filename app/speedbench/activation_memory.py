"""Activation memory of one forward pass on any device (CPU has no peak-memory counter), counted two ways with
parameters, buffers and the batch left out (they are held whether or not a step runs):

- ``saved``: unique storages handed to autograd's pack hook (``saved_tensors_hooks``) during the forward pass
  and still alive when it returns: what the graph keeps for backward. Under non-reentrant checkpointing,
  checkpoint pushes its own pack hook inside each checkpointed layer and the innermost hook wins: the layer's
  tensors never reach ours (checkpoint keeps a placeholder and recomputes them in backward); the layer's
  inputs, which checkpoint saves for the recomputation outside its hook, do. Packed storages that die before
  the forward ends (checkpoint frames of a frozen tower, whose graph is dropped) are not counted;
- ``held``: storages created during the forward pass (seen by a dispatch mode) still alive when it returns,
  whichever mechanism holds them, so it does not depend on how checkpoint keeps its inputs.

Storages are referenced weakly (``StorageWeakRef``), so counting keeps nothing alive.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import torch
from torch.multiprocessing.reductions import StorageWeakRef
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves


@dataclass(frozen=True)
class ActivationBytes:
    saved: int
    held: int


class _Births(TorchDispatchMode):
    """Weak references to the storage of every tensor an op returns, keyed by the storage's address."""

    def __init__(self) -> None:
        super().__init__()
        self.storages: dict[int, tuple[StorageWeakRef, int]] = {}

    def __torch_dispatch__(self, func: Any, types: Any, args: tuple = (), kwargs: dict | None = None) -> Any:
        output = func(*args, **(kwargs or {}))
        for value in tree_leaves(output):
            if isinstance(value, torch.Tensor):
                _remember(self.storages, value)
        return output


def _address(tensor: torch.Tensor) -> int:
    return tensor.untyped_storage().data_ptr()


def activation_bytes(forward: Callable[[], torch.Tensor],
                     held_anyway: Iterable[torch.Tensor]) -> tuple[torch.Tensor, ActivationBytes]:
    """Run ``forward`` once; its output and the bytes saved / held for backward, less ``held_anyway``'s storages."""
    saved: dict[int, tuple[StorageWeakRef, int]] = {}

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        _remember(saved, tensor)
        return tensor

    births = _Births()
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor), births:
        output = forward()
    excluded = {_address(tensor) for tensor in held_anyway}
    return output, ActivationBytes(saved=_alive(saved, excluded), held=_alive(births.storages, excluded))


def _remember(storages: dict[int, tuple[StorageWeakRef, int]], tensor: torch.Tensor) -> None:
    storage = tensor.untyped_storage()
    storages[storage.data_ptr()] = (StorageWeakRef(storage), storage.nbytes())


def _alive(storages: dict[int, tuple[StorageWeakRef, int]], excluded: set[int]) -> int:
    """Bytes of the storages still alive (an address freed and reused keeps only its last storage)."""
    return sum(size for address, (ref, size) in storages.items() if not ref.expired() and address not in excluded)


def model_activation_bytes(model: torch.nn.Module, batch: dict[str, torch.Tensor],
                           loss_of: Callable[[dict[str, torch.Tensor]], torch.Tensor]) -> ActivationBytes:
    """Bytes saved / held for backward by ``loss_of(batch)`` (the graph is freed, nothing is trained)."""
    anyway = [*model.parameters(), *model.buffers(), *batch.values()]
    loss, counted = activation_bytes(lambda: loss_of(batch), anyway)
    del loss
    return counted
