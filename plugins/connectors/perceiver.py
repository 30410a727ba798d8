"""``perceiver_resampler``: Flamingo's Perceiver Resampler (the connector of Idefics2 and MiniCPM-V too).

A fixed set of learned queries (latents) reads the image features by cross-attention, so every image costs
``num_queries`` language-model positions whatever the vision encoder's token count. Each of ``depth`` layers
(Alayrac et al. 2022, fig. 4; the vision width ``d`` throughout)::

    latents += Attention(q = LN(latents), kv = [LN(features); LN(latents)])   # self_attention: true
    latents += Linear(GELU(Linear(LN(latents))))                               # d -> mlp_ratio * d -> d

With ``self_attention: false`` the keys and values are the features only (MiniCPM-V's single cross-attention).
The attention has ``heads`` heads of ``head_dim`` each (independent of ``d``, as Flamingo's). A final LayerNorm
and a Linear map the latents to the language width.

Options (defaults Flamingo's): ``num_queries`` (64, at most the input token count by default), ``depth`` (6),
``heads`` (8), ``head_dim`` (64), ``mlp_ratio`` (4), ``self_attention`` (true).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from medzoo import Connector
from medzoo.plugins.connectors.options import bool_option, check_known, int_option

NAME = "perceiver_resampler"
OPTION_KEYS = ("num_queries", "depth", "heads", "head_dim", "mlp_ratio", "self_attention")
DEFAULT_QUERIES = 64


class PerceiverAttention(nn.Module):
    """Latents attend to the (normalised) features, and to themselves when ``self_attention``."""

    def __init__(self, dim: int, heads: int, head_dim: int, self_attention: bool) -> None:
        super().__init__()
        self.heads, self.head_dim, self.self_attention = heads, head_dim, self_attention
        inner = heads * head_dim
        self.norm_features = nn.LayerNorm(dim)
        self.norm_latents = nn.LayerNorm(dim)
        self.to_q = nn.Linear(dim, inner, bias=False)
        self.to_kv = nn.Linear(dim, 2 * inner, bias=False)
        self.to_out = nn.Linear(inner, dim, bias=False)

    def split(self, tensor: torch.Tensor) -> torch.Tensor:
        batch, tokens, _ = tensor.shape
        return tensor.view(batch, tokens, self.heads, self.head_dim).transpose(1, 2)

    def forward(self, latents: torch.Tensor, features: torch.Tensor) -> torch.Tensor:
        queries = self.norm_latents(latents)
        context = self.norm_features(features)
        if self.self_attention:
            context = torch.cat([context, queries], dim=1)
        key, value = self.to_kv(context).chunk(2, dim=-1)
        attended = F.scaled_dot_product_attention(self.split(self.to_q(queries)), self.split(key), self.split(value))
        return self.to_out(attended.transpose(1, 2).flatten(2))


class PerceiverLayer(nn.Module):
    def __init__(self, dim: int, heads: int, head_dim: int, mlp_ratio: int, self_attention: bool) -> None:
        super().__init__()
        self.attention = PerceiverAttention(dim, heads, head_dim, self_attention)
        self.feed_forward = nn.Sequential(
            nn.LayerNorm(dim), nn.Linear(dim, mlp_ratio * dim), nn.GELU(), nn.Linear(mlp_ratio * dim, dim)
        )

    def forward(self, latents: torch.Tensor, features: torch.Tensor) -> torch.Tensor:
        latents = latents + self.attention(latents, features)
        return latents + self.feed_forward(latents)


class PerceiverResampler(Connector):
    """``[B, N, vision_dim] -> [B, num_queries, language_dim]`` for any ``N`` (no learned input positions)."""

    def __init__(
        self,
        vision_dim: int,
        language_dim: int,
        num_input_tokens: int,
        num_queries: int | None = None,
        depth: int = 6,
        heads: int = 8,
        head_dim: int = 64,
        mlp_ratio: int = 4,
        self_attention: bool = True,
        **unknown: Any,
    ) -> None:
        check_known(NAME, unknown, OPTION_KEYS)
        super().__init__(vision_dim, language_dim, num_input_tokens)
        if num_queries is None:
            num_queries = min(DEFAULT_QUERIES, max(1, num_input_tokens))
        self.num_queries = int_option(NAME, "num_queries", num_queries, 1, 4096)
        self.depth = int_option(NAME, "depth", depth, 1, 64)
        self.heads = int_option(NAME, "heads", heads, 1, 256)
        self.head_dim = int_option(NAME, "head_dim", head_dim, 1, 1024)
        self.mlp_ratio = int_option(NAME, "mlp_ratio", mlp_ratio, 1, 16)
        self.self_attention = bool_option(NAME, "self_attention", self_attention)
        self.latents = nn.Parameter(torch.randn(self.num_queries, vision_dim))
        self.layers = nn.ModuleList(
            PerceiverLayer(vision_dim, self.heads, self.head_dim, self.mlp_ratio, self.self_attention)
            for _ in range(self.depth)
        )
        self.norm = nn.LayerNorm(vision_dim)
        self.proj = nn.Linear(vision_dim, language_dim)

    @property
    def num_output_tokens(self) -> int:
        return self.num_queries

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        latents = self.latents.expand(features.shape[0], -1, -1)
        for layer in self.layers:
            latents = layer(latents, features)
        return self.proj(self.norm(latents))

    def options(self) -> dict[str, Any]:
        return {key: getattr(self, key) for key in OPTION_KEYS}
