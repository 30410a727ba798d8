"""``identity``: features pass through unchanged (vision and language widths must agree)."""

from __future__ import annotations

from typing import Any

import torch

from medzoo import Connector, LlavaHfProjector, RecipeError


class IdentityConnector(Connector):
    """No parameters; only valid when ``vision_dim == language_dim``."""

    def __init__(self, vision_dim: int, language_dim: int, num_input_tokens: int, **options: Any):
        if vision_dim != language_dim:
            raise RecipeError(
                f"connector 'identity' needs equal widths, got vision {vision_dim} and language {language_dim}; "
                "use 'linear' or 'mlp2x_gelu' instead"
            )
        super().__init__(vision_dim, language_dim, num_input_tokens)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return features

    def llava_hf_export(self, name: str) -> LlavaHfProjector:
        """Written exactly as llava-hf's projector of two identity layers with the identity activation."""
        return LlavaHfProjector.identity(self.vision_dim, self.language_dim)
