"""The stacks of transformer blocks inside a module (a tower's encoder layers, a decoder's layers), in the order
they run, cut to the blocks that do run (a tower reading hidden state -2 never runs its last block)."""

from __future__ import annotations

from torch import nn


def _block_class_names(module: nn.Module) -> set[str]:
    """A vision encoder declares ``block_classes``; a transformers model names its blocks in ``_no_split_modules``."""
    classes = getattr(module, "block_classes", None)
    if classes:
        return {cls.__name__ for cls in classes}
    return set(getattr(module, "_no_split_modules", None) or ())


#: containers a stack of blocks is held in (transformers and open_clip: ModuleList; timm: Sequential)
STACK_CONTAINERS = (nn.ModuleList, nn.Sequential)


def _homogeneous(stack: nn.Module) -> bool:
    return len(stack) > 0 and len({type(child) for child in stack}) == 1


def _blocks_that_run(root: nn.Module, name: str, count: int) -> int:
    """``count`` cut to the ``num_blocks`` of the nearest module holding the stack that declares it."""
    parts = name.split(".")
    for end in range(len(parts) - 1, -1, -1):
        holder = root.get_submodule(".".join(parts[:end])) if end else root
        declared = getattr(holder, "num_blocks", None)
        if isinstance(declared, int) and not isinstance(declared, bool):
            return min(count, declared)
    return count


def layer_stacks(module: nn.Module) -> dict[str, list[nn.Module]]:
    """Name -> the blocks that run, for every stack of blocks in ``module`` (several for a fusion of towers).

    A stack is an ``nn.ModuleList`` or ``nn.Sequential`` of the module's declared block classes; a module that
    declares none has one stack, its longest such container of one class. Empty when the module has no stack (an MLP connector).
    """
    names = _block_class_names(module)
    lists = [(name, child) for name, child in module.named_modules() if isinstance(child, STACK_CONTAINERS) and name]
    if names:
        chosen = [(name, stack) for name, stack in lists
                  if _homogeneous(stack) and type(stack[0]).__name__ in names]
    else:
        homogeneous = [(name, stack) for name, stack in lists if _homogeneous(stack)]
        chosen = [max(homogeneous, key=lambda item: len(item[1]))] if homogeneous else []
    return {name: list(stack)[: _blocks_that_run(module, name, len(stack))] for name, stack in chosen}
