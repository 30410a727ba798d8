"""``ppc_{grids}`` against ColonGPT's ``PPC`` projector: the same parameter names load strictly and give the same
output on SigLIP-SO400M-384's 27x27 grid; token counts; bad names and grids are one-line RecipeErrors."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from medzoo.core.errors import RecipeError
from medzoo.core.plugin_system.manager import components
from medzoo.plugins.connectors.ppc import PyramidPoolingConnector


class OfficialPpc(nn.Module):
    """The structure of IntelliScope's ``PPC`` (colongpt/model/multimodal_projector/builder.py), written out for
    comparison: Linear+GELU, pool to each shape, the shared conv on every level but the last, then a Linear."""

    def __init__(self, inc: int, ouc: int, shapes: list[int]):
        super().__init__()
        self.token_trans_layer = nn.Sequential(nn.Linear(inc, ouc), nn.GELU())
        self.pools = [nn.AdaptiveAvgPool2d((shape, shape)) for shape in shapes]
        self.conv = nn.Conv2d(ouc, ouc, 3, 1, 1, bias=True)
        self.linear_layer = nn.Linear(ouc, ouc)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        tokens = self.token_trans_layer(tokens)
        batch, count, channels = tokens.shape
        side = int(math.sqrt(count))
        spatial = tokens.permute(0, 2, 1).reshape(batch, -1, side, side)
        levels = []
        for index, pool in enumerate(self.pools):
            pooled = pool(spatial)
            if index < len(self.pools) - 1:
                pooled = self.conv(pooled)
            levels.append(pooled.flatten(2).transpose(1, 2))
        return self.linear_layer(torch.cat(levels, dim=1))


def connector(name: str, vision_dim: int, language_dim: int, tokens: int) -> PyramidPoolingConnector:
    return components().get("connector", name).factory(vision_dim, language_dim, tokens)


def test_colongpt_grid_gives_246_tokens_equal_to_the_official_projector():
    torch.manual_seed(0)
    official = OfficialPpc(12, 16, [14, 7, 1])
    ours = connector("ppc_14_7_1", 12, 16, 27 * 27)
    ours.load_state_dict(official.state_dict(), strict=True)
    features = torch.randn(2, 27 * 27, 12)
    assert ours.num_output_tokens == 246
    torch.testing.assert_close(ours(features), official(features), rtol=0, atol=0)


def test_small_grids_are_scaled_by_the_multigranularity_rule():
    ours = connector("ppc_14_7_1", 8, 8, 16)
    assert ours.grids == [2, 1] and ours.num_output_tokens == 5
    assert ours(torch.randn(1, 16, 8)).shape == (1, 5, 8)
    assert ours.options() == {"grids": [14, 7, 1]}


def test_every_input_token_reaches_the_output():
    torch.manual_seed(0)
    ours = connector("ppc_2_1", 8, 8, 16)
    features = torch.randn(1, 16, 8, requires_grad=True)
    readout = torch.randn(ours.num_output_tokens, 8)
    (ours(features) * readout).sum().backward()
    assert bool((features.grad.abs().sum(dim=-1) > 0).all())


def test_a_non_square_token_count_is_a_one_line_recipe_error():
    with pytest.raises(RecipeError, match=r"^connector 'ppc' needs a square grid of patch tokens, got 17 tokens"):
        connector("ppc_2_1", 8, 8, 17)


def test_the_family_name_alone_is_refused():
    with pytest.raises(RecipeError, match="is a family: name a member such as 'ppc_14_7_1'"):
        PyramidPoolingConnector(8, 8, 16)
