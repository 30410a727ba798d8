"""Connectors: every registered one (families through their example members), plus per-connector semantics."""

from __future__ import annotations

import pytest
import torch
from transformers import LlavaConfig
from transformers.models.llava.modeling_llava import LlavaMultiModalProjector

from medzoo.core.errors import PluginError, RecipeError
from medzoo.core.interfaces.connector import Connector
from medzoo.core.plugin_system.manager import components
from medzoo.plugins.connectors.multigranularity import fit_grids

VISION_DIM, LANGUAGE_DIM, GRID_SIDE = 16, 24, 8
NUM_TOKENS = GRID_SIDE * GRID_SIDE


def concrete_connector_names() -> list[str]:
    """Registered names, with each family (``pattern=``) replaced by its ``examples``."""
    names = []
    for name in components().names("connector"):
        info = components().get("connector", name).info
        if info.get("pattern"):
            examples = info.get("examples")
            assert examples, f"connector family {name!r} registers no examples to test"
            names.extend(examples)
        else:
            names.append(name)
    return names


CONNECTORS = concrete_connector_names()


def build(name: str, vision_dim: int = VISION_DIM, language_dim: int | None = None, **options) -> Connector:
    registration = components().get("connector", name)
    if language_dim is None:
        language_dim = vision_dim if registration.info.get("preserves_dim") else LANGUAGE_DIM
    torch.manual_seed(0)
    return registration.factory(vision_dim, language_dim, NUM_TOKENS, **options)


def features(batch: int = 2) -> torch.Tensor:
    return torch.randn(batch, NUM_TOKENS, VISION_DIM, generator=torch.Generator().manual_seed(3))


def test_builtin_connectors_are_registered():
    assert {"linear", "mlpnx_gelu", "identity", "multigranularity"} <= set(components().names("connector"))
    assert {"mlp1x_gelu", "mlp2x_gelu", "mlp3x_gelu"} <= set(CONNECTORS)


@pytest.mark.parametrize("name", CONNECTORS)
def test_forward_shape_and_determinism(name):
    connector = build(name).eval()
    assert isinstance(connector, Connector)
    inputs = features()
    with torch.no_grad():
        first, second = connector(inputs), connector(inputs)
    assert first.shape == (2, connector.num_output_tokens, connector.language_dim)
    assert torch.equal(first, second)


@pytest.mark.parametrize("name", CONNECTORS)
def test_gradients_flow_to_inputs_and_every_parameter(name):
    connector = build(name).train()
    inputs = features().requires_grad_(True)
    connector(inputs).square().mean().backward()
    assert inputs.grad is not None and inputs.grad.abs().sum() > 0
    for key, parameter in connector.named_parameters():
        assert parameter.grad is not None and parameter.grad.abs().sum() > 0, key


@pytest.mark.parametrize("name", CONNECTORS)
def test_options_rebuild_the_same_connector(name):
    connector = build(name).eval()
    rebuilt = build(name, **connector.options()).eval()
    assert rebuilt.options() == connector.options()
    assert rebuilt.num_output_tokens == connector.num_output_tokens
    rebuilt.load_state_dict(connector.state_dict())
    with torch.no_grad():
        assert torch.equal(rebuilt(features()), connector(features()))


# --- names -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name", ["mlp2x_gelu_extra", "xmlp2x_gelu", "mlp0x_gelu", "mlpx_gelu", "mlp2x_relu", "MLP2x_gelu"]
)
def test_near_miss_names_do_not_resolve(name):
    with pytest.raises(PluginError, match="unknown connector"):
        components().get("connector", name)


def test_family_members_get_their_depth():
    registration = components().get("connector", "mlp12x_gelu")
    assert registration.info["family"] == "mlpnx_gelu"
    connector = registration.factory(VISION_DIM, LANGUAGE_DIM, NUM_TOKENS)
    assert connector.options() == {"depth": 12}
    assert sum(isinstance(layer, torch.nn.Linear) for layer in connector.layers) == 12
    with pytest.raises(RecipeError, match="family"):
        components().get("connector", "mlpnx_gelu").factory(VISION_DIM, LANGUAGE_DIM, NUM_TOKENS)


# --- linear / mlp / identity -----------------------------------------------------------------------------------


def test_linear_is_one_linear_layer():
    connector = build("linear")
    assert sorted(connector.state_dict()) == ["proj.bias", "proj.weight"]
    inputs = features()
    assert torch.allclose(connector(inputs), inputs @ connector.proj.weight.T + connector.proj.bias)


@pytest.mark.parametrize(
    ("name", "keys"),
    [
        ("mlp1x_gelu", ["layers.0.bias", "layers.0.weight"]),
        ("mlp2x_gelu", ["layers.0.bias", "layers.0.weight", "layers.2.bias", "layers.2.weight"]),
        ("mlp3x_gelu", [f"layers.{i}.{p}" for i in (0, 2, 4) for p in ("bias", "weight")]),
    ],
)
def test_mlp_state_dict_keys_follow_the_official_mm_projector_layout(name, keys):
    assert sorted(build(name).state_dict()) == keys


def test_mlp2x_gelu_equals_transformers_llava_projector():
    config = LlavaConfig(
        vision_config={
            "model_type": "clip_vision_model",
            "hidden_size": VISION_DIM,
            "num_attention_heads": 4,
        },
        text_config={"model_type": "llama", "hidden_size": LANGUAGE_DIM, "num_attention_heads": 4},
        projector_hidden_act="gelu",
        vision_feature_layer=-2,
    )
    torch.manual_seed(1)
    projector = LlavaMultiModalProjector(config).eval()
    connector = build("mlp2x_gelu").eval()
    connector.load_state_dict(
        {
            "layers.0.weight": projector.linear_1.weight,
            "layers.0.bias": projector.linear_1.bias,
            "layers.2.weight": projector.linear_2.weight,
            "layers.2.bias": projector.linear_2.bias,
        }
    )
    inputs = features()
    with torch.no_grad():
        assert torch.allclose(connector(inputs), projector(inputs), atol=1e-6)


def test_identity_passes_features_through_and_rejects_width_mismatch():
    connector = build("identity")
    inputs = features()
    assert connector(inputs) is inputs
    assert list(connector.parameters()) == []
    with pytest.raises(RecipeError, match="identity.*16.*24"):
        build("identity", language_dim=24)


# --- multigranularity -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("grids", "side", "expected"),
    [
        ([14, 7, 1], 27, [14, 7, 1]),  # ColonGPT: SigLIP-384 27x27 -> 246 tokens
        ([14, 7, 1], 24, [12, 6, 1]),  # CLIP ViT-L/14-336
        ([14, 7, 1], 16, [8, 4, 1]),  # CLIP ViT-L/14-224
        ([14, 7, 1], 8, [4, 2, 1]),
        ([14, 7, 1], 2, [1]),  # duplicates after scaling are dropped
        ([3, 1], 8, [3, 1]),  # fits: unchanged
    ],
)
def test_multigranularity_grid_rule(grids, side, expected):
    assert fit_grids(grids, side) == expected


def test_multigranularity_default_on_colongpt_grid_gives_246_tokens():
    registration = components().get("connector", "multigranularity")
    connector = registration.factory(VISION_DIM, LANGUAGE_DIM, 27 * 27)
    assert connector.num_output_tokens == 14 * 14 + 7 * 7 + 1 == 246


def test_multigranularity_pools_the_projected_grid():
    connector = build("multigranularity").eval()
    assert connector.options() == {"grids": [4, 2, 1], "depth": 2}
    assert connector.num_output_tokens == 16 + 4 + 1
    inputs = features()
    with torch.no_grad():
        output = connector(inputs)
        projected = connector.layers(inputs)
    grid = projected.reshape(2, GRID_SIDE, GRID_SIDE, LANGUAGE_DIM)
    # finest grid first, row-major: token 1 of the 4x4 grid averages rows 0-1, columns 2-3
    assert torch.allclose(output[:, 1], grid[:, 0:2, 2:4].mean(dim=(1, 2)), atol=1e-6)
    # then the 2x2 grid: its last token averages the bottom-right quadrant
    assert torch.allclose(output[:, 16 + 3], grid[:, 4:, 4:].mean(dim=(1, 2)), atol=1e-6)
    # the 1x1 grid is the mean of every projected token
    assert torch.allclose(output[:, -1], projected.mean(dim=1), atol=1e-6)


def test_multigranularity_rejects_non_square_inputs_and_bad_options():
    factory = components().get("connector", "multigranularity").factory
    with pytest.raises(RecipeError, match="square grid.*65 tokens.*patch"):
        factory(VISION_DIM, LANGUAGE_DIM, NUM_TOKENS + 1)  # feature_select cls_patch adds the class token
    with pytest.raises(RecipeError, match="grids"):
        factory(VISION_DIM, LANGUAGE_DIM, NUM_TOKENS, grids=[4, 0])
    with pytest.raises(RecipeError, match="depth"):
        factory(VISION_DIM, LANGUAGE_DIM, NUM_TOKENS, depth=0)
