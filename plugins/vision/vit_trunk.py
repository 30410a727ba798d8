"""Running a timm ViT-style trunk up to one hidden state (shared by ``biomedclip``, ``timm`` and ``open_clip``).

Hidden states are numbered like CLIP's: 0 is the embedding output (after ``norm_pre``), ``i`` the output of block
``i - 1``. The final ``norm`` is never applied, as in LLaVA. The prefix tokens (class, registers) stay in the
result; :func:`medzoo.select_tokens` drops them.
"""

from __future__ import annotations

from typing import Any

import torch
from torch.utils.checkpoint import checkpoint

from medzoo import PluginError, RecipeError

# What a timm model needs to be a ViT-style tower here.
VIT_ATTRIBUTES = ("patch_embed", "blocks", "num_prefix_tokens", "embed_dim")


def is_timm_vision_transformer(trunk: Any) -> bool:
    from timm.models.vision_transformer import VisionTransformer

    return isinstance(trunk, VisionTransformer)


def check_vit_style(trunk: Any, encoder: str, model_name: str) -> None:
    """A timm model with patch embeddings, a block list and prefix tokens; else a one-line PluginError."""
    lacking = [name for name in VIT_ATTRIBUTES if not hasattr(trunk, name)]
    if not lacking and not is_timm_vision_transformer(trunk) and not hasattr(trunk, "forward_intermediates"):
        lacking = ["forward_intermediates"]
    if lacking:
        raise PluginError(
            f"vision encoder {encoder!r}: timm model {model_name!r} is a {type(trunk).__name__} without "
            f"{', '.join(lacking)}; expected a ViT-style model (patch embedding, transformer blocks)"
        )
    size, patch = trunk.patch_embed.img_size, trunk.patch_embed.patch_size
    if size is None or size[0] != size[1] or patch[0] != patch[1]:
        raise PluginError(
            f"vision encoder {encoder!r}: timm model {model_name!r} has input size {size} and patch size {patch}; "
            "expected square ones"
        )


def run_trunk(trunk: Any, pixel_values: torch.Tensor, num_blocks: int, training: bool) -> torch.Tensor:
    """Hidden state ``num_blocks`` of a timm trunk, ``[B, prefix + P, D]`` (prefix tokens first).

    A timm ``VisionTransformer`` runs its own modules in the order of its ``forward_features``; other ViT-style
    models (EVA, ...) run through their ``forward_intermediates`` (which needs ``num_blocks >= 1``).
    """
    pixel_values = pixel_values.to(next(trunk.parameters()).dtype)
    if is_timm_vision_transformer(trunk):
        hidden = trunk.patch_embed(pixel_values)
        hidden = trunk.norm_pre(trunk.patch_drop(trunk._pos_embed(hidden)))
        for block in trunk.blocks[:num_blocks]:
            if trunk.grad_checkpointing and training and torch.is_grad_enabled():
                hidden = checkpoint(block, hidden, use_reentrant=False)
            else:
                hidden = block(hidden)
        return hidden
    if num_blocks == 0:
        raise RecipeError(
            f"timm model {type(trunk).__name__}: feature_layer 0 (the embedding output) needs a timm "
            "VisionTransformer; expected a block's output (feature_layer 1 or more, or negative)"
        )
    with_prefix = trunk.num_prefix_tokens > 0  # timm splits them off only when there are some
    (hidden,) = trunk.forward_intermediates(
        pixel_values, indices=[num_blocks - 1], return_prefix_tokens=with_prefix, norm=False, stop_early=True,
        output_fmt="NLC", intermediates_only=True,
    )
    if with_prefix:
        patches, prefix = hidden
        return torch.cat([prefix, patches], dim=1)
    return hidden
