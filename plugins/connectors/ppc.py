"""``ppc_{grids}``: ColonGPT's multigranularity adapter (``mm_projector_type ppc_14_7_1``), layer for layer.

ai4colonoscopy/IntelliScope ``colongpt/model/multimodal_projector/builder.py`` (``PPC``): the patch tokens go
through ``Linear(vision, language) + GELU``, are laid out on their square grid and adaptively average-pooled to
each grid side; every pooled level but the last passes one shared 3x3 convolution; the levels are flattened
(row-major), concatenated finest first and mapped by a final ``Linear(language, language)``. On SigLIP-SO400M-384's
27x27 grid ``ppc_14_7_1`` gives 196 + 49 + 1 = 246 tokens.

Parameter names equal the official module's below ``mm_projector.model.`` (``token_trans_layer.0``, ``conv``,
``linear_layer``), so a ColonGPT projector state dict loads key for key. Grids larger than half the input grid
are scaled down by the rule of :func:`medzoo.plugins.connectors.multigranularity.fit_grids` (it leaves
``14_7_1`` on 27x27 unchanged, as the official code runs it).
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from medzoo import Connector, RecipeError
from medzoo.plugins.connectors.multigranularity import fit_grids

FAMILY_PATTERN = r"ppc(?P<grids>(?:_[1-9][0-9]*)+)"


def parse_grids(grids: str | list[int] | tuple[int, ...]) -> list[int]:
    """``"_14_7_1"`` (the family name's tail) or a list of ints -> ``[14, 7, 1]``."""
    if isinstance(grids, str):
        parts = [part for part in grids.split("_") if part]
        if not parts or not all(part.isdigit() for part in parts):
            raise RecipeError(f"connector 'ppc': grids {grids!r} must look like _14_7_1 (ppc_14_7_1)")
        return [int(part) for part in parts]
    return list(grids)


class PyramidPoolingConnector(Connector):
    """ColonGPT's ``PPC``: Linear + GELU, multi-grid average pooling, a shared conv on all but the coarsest level,
    a final Linear."""

    def __init__(
        self,
        vision_dim: int,
        language_dim: int,
        num_input_tokens: int,
        grids: str | list[int] | None = None,
        **options: Any,
    ):
        if grids is None:
            raise RecipeError("connector 'ppc' is a family: name a member such as 'ppc_14_7_1'")
        side = math.isqrt(num_input_tokens)
        if side * side != num_input_tokens:
            raise RecipeError(
                f"connector 'ppc' needs a square grid of patch tokens, got {num_input_tokens} tokens; "
                "use the vision encoder's feature_select 'patch' (a class token makes the count non-square)"
            )
        super().__init__(vision_dim, language_dim, num_input_tokens)
        self.side = side
        self.requested_grids = parse_grids(grids)
        self.grids = fit_grids(self.requested_grids, side)
        self.token_trans_layer = nn.Sequential(nn.Linear(vision_dim, language_dim), nn.GELU())
        self.conv = nn.Conv2d(language_dim, language_dim, 3, 1, 1, bias=True)
        self.linear_layer = nn.Linear(language_dim, language_dim)

    @property
    def num_output_tokens(self) -> int:
        return sum(grid * grid for grid in self.grids)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        batch, tokens, _ = features.shape
        if tokens != self.num_input_tokens:
            raise ValueError(f"ppc connector built for {self.num_input_tokens} tokens, got {tokens}")
        projected = self.token_trans_layer(features)
        grid = projected.transpose(1, 2).reshape(batch, self.language_dim, self.side, self.side)
        levels = []
        for index, size in enumerate(self.grids):
            pooled = F.adaptive_avg_pool2d(grid, size)
            if index < len(self.grids) - 1:
                pooled = self.conv(pooled)
            levels.append(pooled.flatten(2).transpose(1, 2))
        return self.linear_layer(torch.cat(levels, dim=1))

    def options(self) -> dict[str, Any]:
        return {"grids": list(self.requested_grids)}
