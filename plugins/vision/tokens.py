"""Token selection shared by the vision towers: drop the prefix tokens, keep the class token on request."""

from __future__ import annotations

import torch

from medzoo.core.errors import RecipeError


def require_class_token(encoder: str, feature_select: str, has_cls_token: bool, why: str = "") -> None:
    """``cls_patch`` on a tower without a class token is a recipe error (it would silently mean ``patch``)."""
    if feature_select == "cls_patch" and not has_cls_token:
        raise RecipeError(
            f"vision encoder {encoder!r}: feature_select 'cls_patch' needs a class token and this tower has none"
            f"{f' ({why})' if why else ''}; expected feature_select 'patch'"
        )


def select_tokens(hidden: torch.Tensor, num_prefix_tokens: int, keep_cls: bool) -> torch.Tensor:
    """``hidden`` ``[B, prefix + P, D]`` without its prefix tokens (class, registers); ``keep_cls`` puts the
    class token (the first prefix token) back in front."""
    patches = hidden[:, num_prefix_tokens:]
    if keep_cls:
        return torch.cat([hidden[:, :1], patches], dim=1)
    return patches
