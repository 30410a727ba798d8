"""A Vision Transformer with a convolutional stem (Xiao et al. 2021, "Early convolutions help transformers see
better"): ``log2(patch_size)`` stride-2 3x3 convolutions and a 1x1 convolution replace the patchify layer.

GroupNorm (one group) stands in for the paper's BatchNorm so that an image's features never depend on the
other images of its batch.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass(frozen=True)
class ConvViTConfig:
    """Architecture; the field names follow transformers' ``CLIPVisionConfig`` so CLIP configs carry over."""

    image_size: int = 224
    patch_size: int = 16
    hidden_size: int = 384
    intermediate_size: int = 1536
    num_hidden_layers: int = 12
    num_attention_heads: int = 6
    layer_norm_eps: float = 1e-6

    @property
    def stem_depth(self) -> int:
        return self.patch_size.bit_length() - 1

    @property
    def num_patches(self) -> int:
        return (self.image_size // self.patch_size) ** 2

    def problems(self) -> list[str]:
        """What is wrong with this config (empty when it is buildable)."""
        found = []
        if self.patch_size < 2 or self.patch_size & (self.patch_size - 1):
            found.append(
                f"patch_size must be a power of two >= 2 (one stride-2 conv per halving), got {self.patch_size}"
            )
        elif self.image_size % self.patch_size:
            found.append(f"image_size {self.image_size} is not a multiple of patch_size {self.patch_size}")
        if self.hidden_size % self.num_attention_heads:
            found.append(
                f"hidden_size {self.hidden_size} is not divisible by num_attention_heads {self.num_attention_heads}"
            )
        return found


class ConvStem(nn.Module):
    """3x3 stride-2 convolutions (widths doubling up to ``hidden_size / 2``), then a 1x1 projection."""

    def __init__(self, config: ConvViTConfig, in_channels: int = 3) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        channels = in_channels
        for index in range(config.stem_depth):
            width = max(8, config.hidden_size >> (config.stem_depth - index))
            layers += [
                nn.Conv2d(channels, width, 3, stride=2, padding=1, bias=False),
                nn.GroupNorm(1, width),
                nn.GELU(),
            ]
            channels = width
        layers.append(nn.Conv2d(channels, config.hidden_size, 1))
        self.layers = nn.Sequential(*layers)

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        """``[B, 3, H, W] -> [B, (H / patch) * (W / patch), hidden]``."""
        return self.layers(pixels).flatten(2).transpose(1, 2)


class Block(nn.Module):
    """Pre-norm transformer block: multi-head self-attention and a GELU MLP, each with a residual."""

    def __init__(self, config: ConvViTConfig) -> None:
        super().__init__()
        dim = config.hidden_size
        self.num_heads = config.num_attention_heads
        self.norm1 = nn.LayerNorm(dim, eps=config.layer_norm_eps)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.norm2 = nn.LayerNorm(dim, eps=config.layer_norm_eps)
        self.mlp = nn.Sequential(
            nn.Linear(dim, config.intermediate_size), nn.GELU(), nn.Linear(config.intermediate_size, dim)
        )

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        batch, tokens, dim = hidden.shape
        qkv = self.qkv(self.norm1(hidden)).view(batch, tokens, 3, self.num_heads, dim // self.num_heads)
        query, key, value = qkv.permute(2, 0, 3, 1, 4)
        attended = (
            F.scaled_dot_product_attention(query, key, value).transpose(1, 2).reshape(batch, tokens, dim)
        )
        hidden = hidden + self.proj(attended)
        return hidden + self.mlp(self.norm2(hidden))


class ConvStemViT(nn.Module):
    """Stem, class token, learned positions and the blocks; no final norm (features come from a hidden layer)."""

    def __init__(self, config: ConvViTConfig) -> None:
        super().__init__()
        self.config = config
        self.stem = ConvStem(config)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, config.hidden_size))
        self.pos_embed = nn.Parameter(0.02 * torch.randn(1, 1 + config.num_patches, config.hidden_size))
        self.blocks = nn.ModuleList(Block(config) for _ in range(config.num_hidden_layers))

    def embed(self, pixels: torch.Tensor) -> torch.Tensor:
        """Hidden state 0: ``[B, 1 + num_patches, hidden]`` (class token first)."""
        patches = self.stem(pixels)
        cls = self.cls_token.expand(patches.shape[0], -1, -1)
        return torch.cat([cls, patches], dim=1) + self.pos_embed
