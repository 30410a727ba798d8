"""Multi-process settings: the FSDP wrap policy from the components' block classes, sharded-state checks."""

from __future__ import annotations

from typing import Any

from medzoo.core.errors import RecipeError
from medzoo.core.model import MultimodalModel

SHARDED = ("FSDP", "DEEPSPEED")


def block_class_names(model: MultimodalModel) -> list[str]:
    """Class names of the vision encoder's and the language model's transformer blocks (FSDP wrap units)."""
    names = [model.vision.block_class.__name__, model.language.decoder_layer_class.__name__]
    return list(dict.fromkeys(names))


def distributed_type(accelerator: Any) -> str:
    return str(getattr(accelerator.distributed_type, "value", accelerator.distributed_type)).upper()


def configure_fsdp(accelerator: Any, model: MultimodalModel) -> None:
    """Under FSDP with transformer-based wrapping and no class names given, wrap every vision and decoder block."""
    plugin = getattr(accelerator.state, "fsdp_plugin", None)
    if plugin is None:
        return
    from torch.distributed.fsdp.wrap import transformer_auto_wrap_policy

    if plugin.auto_wrap_policy in (None, transformer_auto_wrap_policy) and not plugin.transformer_cls_names_to_wrap:
        plugin.auto_wrap_policy = transformer_auto_wrap_policy
        plugin.transformer_cls_names_to_wrap = block_class_names(model)


def check_resumable(accelerator: Any, stage: Any) -> None:
    """Mid-stage checkpoints hold unsharded weights and optimizer state: refuse them under FSDP / DeepSpeed."""
    kind = distributed_type(accelerator)
    if stage.save_every_steps and any(name in kind for name in SHARDED):
        raise RecipeError(
            f"stages.{stage.name}.save_every_steps: mid-stage checkpoints are supported on one process and under "
            f"DDP, not under {kind}; unset it (stages still resume at stage boundaries)"
        )
