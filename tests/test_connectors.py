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
from medzoo.testing import concrete_names

VISION_DIM, LANGUAGE_DIM, GRID_SIDE = 16, 24, 8
NUM_TOKENS = GRID_SIDE * GRID_SIDE


CONNECTORS = concrete_names("connector")


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


# --- learned-query connectors: perceiver_resampler, qformer ----------------------------------------------------

QUERY_CONNECTORS = ["perceiver_resampler", "qformer"]


def tiny_options(name: str) -> dict:
    return dict(components().get("connector", name).tiny.get("options", {}))


@pytest.mark.parametrize("name", QUERY_CONNECTORS)
@pytest.mark.parametrize("tokens", [9, 64])
def test_query_connectors_emit_num_queries_tokens_and_read_every_input_token(name, tokens):
    factory = components().get("connector", name).factory
    torch.manual_seed(0)
    connector = factory(VISION_DIM, LANGUAGE_DIM, tokens, **{**tiny_options(name), "num_queries": 5})
    assert connector.num_output_tokens == 5
    inputs = torch.randn(2, tokens, VISION_DIM, requires_grad=True)
    output = connector(inputs)
    assert output.shape == (2, 5, LANGUAGE_DIM)
    # a fixed random read-out (the plain sum of a normalised output has only a rounding gradient)
    readout = torch.randn(output[0].shape, generator=torch.Generator().manual_seed(1))
    (output[0] * readout).sum().backward()
    assert (inputs.grad[0].abs().sum(dim=-1) > 1e-6).all()  # every vision token of the image counts
    assert inputs.grad[1].abs().sum() == 0  # and no other image's


@pytest.mark.parametrize("name", QUERY_CONNECTORS)
def test_query_connectors_default_to_at_most_their_input_tokens(name):
    factory = components().get("connector", name).factory
    paper = {"perceiver_resampler": 64, "qformer": 32}[name]
    assert factory(VISION_DIM, LANGUAGE_DIM, 576).num_output_tokens == paper
    assert factory(VISION_DIM, LANGUAGE_DIM, 16).num_output_tokens == 16
    assert factory(VISION_DIM, LANGUAGE_DIM, 16, num_queries=40).num_output_tokens == 40


def test_perceiver_resampler_without_latent_self_attention_reads_the_features_only():
    connector = build("perceiver_resampler", depth=1, self_attention=False).eval()
    attention = connector.layers[0].attention
    latents = connector.latents.expand(2, -1, -1)
    context = attention.norm_features(features())
    key, value = attention.to_kv(context).chunk(2, dim=-1)
    query = attention.split(attention.to_q(attention.norm_latents(latents)))
    weights = torch.softmax(query @ attention.split(key).transpose(-1, -2) / attention.head_dim**0.5, dim=-1)
    expected = attention.to_out((weights @ attention.split(value)).transpose(1, 2).flatten(2))
    with torch.no_grad():
        torch.testing.assert_close(attention(latents, features()), expected, atol=1e-5, rtol=1e-5)


def test_qformer_equals_blip2_query_path():
    """With BLIP-2's weights (query tokens, Q-Former, projection, the tower's post-LayerNorm) the connector gives
    ``Blip2ForConditionalGeneration.get_image_features`` from the tower's last hidden state."""
    from transformers import Blip2Config, Blip2ForConditionalGeneration

    config = Blip2Config(
        vision_config={"hidden_size": VISION_DIM, "intermediate_size": 32, "num_hidden_layers": 1,
                       "num_attention_heads": 2, "image_size": 32, "patch_size": 8},
        qformer_config={"hidden_size": 32, "num_hidden_layers": 3, "num_attention_heads": 4,
                        "intermediate_size": 48, "encoder_hidden_size": VISION_DIM},
        text_config={"model_type": "opt", "hidden_size": LANGUAGE_DIM, "num_hidden_layers": 1,
                     "num_attention_heads": 2, "ffn_dim": 32, "word_embed_proj_dim": LANGUAGE_DIM,
                     "vocab_size": 64},
        num_query_tokens=6,
    )
    torch.manual_seed(4)
    blip = Blip2ForConditionalGeneration(config).eval()
    with torch.no_grad():
        blip.query_tokens.normal_()
        blip.vision_model.post_layernorm.weight.normal_()
    connector = components().get("connector", "qformer").factory(
        VISION_DIM, LANGUAGE_DIM, 16, num_queries=6, depth=3, hidden_size=32, heads=4, intermediate_size=48
    ).eval()
    weights = {key: value for key, value in blip.state_dict().items() if key.startswith(("qformer.", "query_"))}
    weights |= {f"projection.{key}": value for key, value in blip.language_projection.state_dict().items()}
    weights |= {f"vision_norm.{key}": value for key, value in blip.vision_model.post_layernorm.state_dict().items()}
    connector.load_state_dict(weights, strict=True)
    pixels = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        expected = blip.get_image_features(pixels).pooler_output
        hidden = blip.vision_model(pixels, output_hidden_states=True).hidden_states[-1]
        torch.testing.assert_close(connector(hidden), expected, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize(
    ("name", "options", "message"),
    [
        ("perceiver_resampler", {"num_queries": 0}, "options.num_queries must be an integer from 1 to 4096, got 0"),
        ("perceiver_resampler", {"depth": 2.0}, "options.depth must be an integer from 1 to 64, got 2.0"),
        ("perceiver_resampler", {"heads": True}, "options.heads must be an integer from 1 to 256, got True"),
        ("perceiver_resampler", {"self_attention": "no"}, "options.self_attention must be true or false, got 'no'"),
        ("perceiver_resampler", {"num_latents": 8}, "unknown option 'num_latents'; expected some of num_queries"),
        ("qformer", {"num_querys": 8}, "unknown option 'num_querys' \\(did you mean \"num_queries\"\\?\\)"),
        ("qformer", {"hidden_size": 30, "heads": 4}, "options.heads 4 does not divide hidden_size 30"),
        ("qformer", {"depth": 65}, "options.depth must be an integer from 1 to 64, got 65"),
        ("qformer", {"cross_attention_every": 0}, "options.cross_attention_every must be an integer from 1 to 64"),
    ],
)
def test_query_connector_options_are_checked_in_one_line(name, options, message):
    with pytest.raises(RecipeError, match=f"^connector '{name}': {message}") as caught:
        build(name, **options)
    assert "\n" not in str(caught.value)


def test_qformer_default_heads_are_64_wide():
    from medzoo.plugins.connectors.qformer import default_heads

    assert [default_heads(width) for width in (768, 1024, 32, 96, 200)] == [12, 16, 1, 1, 2]


@pytest.mark.parametrize("name", QUERY_CONNECTORS)
def test_composed_model_with_a_query_connector_saves_loads_and_generates(name, tmp_path, monkeypatch):
    from PIL import Image

    from medzoo.core.inference import processor_for
    from medzoo.core.interfaces.conversation import Message
    from medzoo.core.model.build import build_model
    from medzoo.core.model.multimodal import MultimodalModel
    from medzoo.core.model.processor import collate

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    language = components().get("language_model", "mistral").factory.tiny_config()
    spec = {"vision": {"name": "clip"}, "connector": {"name": name, "options": tiny_options(name)},
            "language": {"name": "mistral", "config": language}}
    torch.manual_seed(0)
    model = build_model(spec).eval()
    assert model.num_image_tokens == tiny_options(name)["num_queries"] < model.vision.num_tokens
    picture = Image.fromarray(torch.randint(0, 256, (30, 40, 3), dtype=torch.uint8).numpy())
    sample = processor_for(model).encode([Message("user", "<image>\nWhat is shown?")], [picture],
                                         add_generation_prompt=True)
    assert sample.input_ids.count(model.markup.fill_id) == model.num_image_tokens
    batch = collate([sample], model.tokenizer.pad_token_id)
    batch.pop("labels")
    model.save_pretrained(str(tmp_path / "model"))
    loaded = MultimodalModel.from_pretrained(str(tmp_path / "model"))
    assert loaded.connector.options() == model.connector.options()
    with torch.no_grad():
        torch.testing.assert_close(loaded(**batch).logits, model(**batch).logits, atol=0, rtol=0)
    settings = {"max_new_tokens": 4, "min_new_tokens": 4, "do_sample": False}
    generated = model.generate(**batch, **settings)
    assert generated.shape == (1, 4) and loaded.generate(**batch, **settings).tolist() == generated.tolist()
