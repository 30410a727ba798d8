"""``perceiver-resampler``: a fixed number of learned latent queries read the image features through
cross-attention (Flamingo's Perceiver Resampler, the idea behind BLIP-2's Q-Former), so every image costs
``num_latents`` language-model positions whatever the vision encoder's token count.

Each layer: ``latents += Attention(q=LN(latents), kv=[LN(features); LN(latents)])``, then
``latents += MLP(LN(latents))``. The features are first projected to the language width and given learned
positions; a final LayerNorm closes the stack.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from medzoo import Connector, RecipeError


class ResamplerLayer(nn.Module):
    """Latents attend to the features and to themselves, then pass an MLP; both with residuals."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: int) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.norm_features = nn.LayerNorm(dim)
        self.norm_latents = nn.LayerNorm(dim)
        self.to_q = nn.Linear(dim, dim, bias=False)
        self.to_kv = nn.Linear(dim, 2 * dim, bias=False)
        self.to_out = nn.Linear(dim, dim, bias=False)
        self.mlp = nn.Sequential(
            nn.LayerNorm(dim), nn.Linear(dim, mlp_ratio * dim), nn.GELU(), nn.Linear(mlp_ratio * dim, dim)
        )

    def heads(self, tensor: torch.Tensor) -> torch.Tensor:
        batch, tokens, dim = tensor.shape
        return tensor.view(batch, tokens, self.num_heads, dim // self.num_heads).transpose(1, 2)

    def forward(self, latents: torch.Tensor, features: torch.Tensor) -> torch.Tensor:
        queries = self.norm_latents(latents)
        context = torch.cat([self.norm_features(features), queries], dim=1)
        key, value = self.to_kv(context).chunk(2, dim=-1)
        attended = F.scaled_dot_product_attention(
            self.heads(self.to_q(queries)), self.heads(key), self.heads(value)
        )
        latents = latents + self.to_out(attended.transpose(1, 2).flatten(2))
        return latents + self.mlp(latents)


class PerceiverResampler(Connector):
    """``[B, N, vision_dim] -> [B, num_latents, language_dim]``.

    Options: ``num_latents`` (output tokens per image), ``depth`` (layers), ``num_heads`` (must divide
    ``language_dim``), ``mlp_ratio`` (MLP width / ``language_dim``).
    """

    def __init__(
        self,
        vision_dim: int,
        language_dim: int,
        num_input_tokens: int,
        num_latents: int = 8,
        depth: int = 2,
        num_heads: int = 8,
        mlp_ratio: int = 4,
        **options: Any,
    ) -> None:
        for key, value in {
            "num_latents": num_latents,
            "depth": depth,
            "num_heads": num_heads,
            "mlp_ratio": mlp_ratio,
        }.items():
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise RecipeError(
                    f"connector 'perceiver-resampler': {key} must be a positive integer, got {value!r}"
                )
        if language_dim % num_heads:
            raise RecipeError(
                f"connector 'perceiver-resampler': num_heads {num_heads} does not divide the language width "
                f"{language_dim}; set options.num_heads to a divisor"
            )
        super().__init__(vision_dim, language_dim, num_input_tokens)
        self.num_latents, self.depth, self.num_heads, self.mlp_ratio = (
            num_latents,
            depth,
            num_heads,
            mlp_ratio,
        )
        self.input_proj = nn.Linear(vision_dim, language_dim)
        self.positions = nn.Parameter(0.02 * torch.randn(num_input_tokens, language_dim))
        self.latents = nn.Parameter(torch.randn(num_latents, language_dim))
        self.layers = nn.ModuleList(ResamplerLayer(language_dim, num_heads, mlp_ratio) for _ in range(depth))
        self.norm = nn.LayerNorm(language_dim)

    @property
    def num_output_tokens(self) -> int:
        return self.num_latents

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        if features.shape[1] != self.num_input_tokens:
            raise ValueError(
                f"perceiver-resampler built for {self.num_input_tokens} tokens, got {features.shape[1]}"
            )
        features = self.input_proj(features) + self.positions
        latents = self.latents.expand(features.shape[0], -1, -1)
        for layer in self.layers:
            latents = layer(latents, features)
        return self.norm(latents)

    def options(self) -> dict[str, Any]:
        return {
            "num_latents": self.num_latents,
            "depth": self.depth,
            "num_heads": self.num_heads,
            "mlp_ratio": self.mlp_ratio,
        }
