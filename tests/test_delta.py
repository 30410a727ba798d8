"""LLaVA-Med v1.0 delta weights: make-delta then apply-delta reproduces the target exactly; the merged model
imports with the v1.0 template and markup and gives the source model's logits."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image
from support import official_llava as helpers
from transformers import LlamaConfig, LlamaForCausalLM

from medzoo.app.cli.main import cli
from medzoo.app.interop import InteropError
from medzoo.app.interop.checkpoint_files import load_state_dict
from medzoo.app.interop.delta import apply_delta, make_delta
from medzoo.app.interop.llava_import import import_checkpoint
from medzoo.core.inference import processor_for
from medzoo.core.interfaces.conversation import Message
from medzoo.core.model.multimodal import MultimodalModel


@pytest.fixture(autouse=True)
def offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
def test_round_trip_is_exact_with_extra_token_rows(dtype):
    generator = torch.Generator().manual_seed(0)
    base = {"model.embed_tokens.weight": torch.randn(10, 4, generator=generator).to(dtype),
            "model.layers.0.mlp.up_proj.weight": torch.randn(6, 4, generator=generator).to(dtype) * 1e3,
            "model.norm.weight": torch.ones(4, dtype=dtype)}
    target = {"model.embed_tokens.weight": torch.randn(13, 4, generator=generator).to(dtype),
              "model.layers.0.mlp.up_proj.weight": torch.randn(6, 4, generator=generator).to(dtype) * 1e-4,
              "model.norm.weight": torch.rand(4, generator=generator).to(dtype),
              "model.mm_projector.weight": torch.randn(4, 3, generator=generator).to(dtype)}
    delta, dtypes, report = make_delta(base, target)
    rebuilt, applied = apply_delta(base, delta, dtypes)
    assert rebuilt.keys() == target.keys()
    for name, tensor in target.items():
        assert rebuilt[name].dtype == tensor.dtype
        assert torch.equal(rebuilt[name], tensor), name
    assert report.extended == applied.extended == {"model.embed_tokens.weight": (10, 13)}
    assert applied.delta_only == ["model.mm_projector.weight"]
    assert torch.equal(delta["model.embed_tokens.weight"][10:].to(dtype), target["model.embed_tokens.weight"][10:])


def test_official_fp16_delta_adds_like_the_official_script():
    generator = torch.Generator().manual_seed(1)
    base = {"lm_head.weight": torch.randn(5, 3, generator=generator).half()}
    delta = {"lm_head.weight": torch.randn(7, 3, generator=generator).half()}
    target, report = apply_delta(base, delta)
    expected = delta["lm_head.weight"].clone()
    expected[:5] += base["lm_head.weight"]
    assert target["lm_head.weight"].dtype == torch.float16
    assert torch.equal(target["lm_head.weight"], expected)
    assert report.extended == {"lm_head.weight": (5, 7)}


def test_shape_mismatch_outside_the_vocabulary_is_an_error():
    base = {"model.layers.0.self_attn.q_proj.weight": torch.zeros(4, 4)}
    delta = {"model.layers.0.self_attn.q_proj.weight": torch.zeros(6, 4)}
    with pytest.raises(InteropError, match="right base model"):
        apply_delta(base, delta)


@pytest.fixture(scope="module")
def v1_checkpoints(tmp_path_factory):
    """A LLaMA base, a LLaVA-Med v1.0 target in the official layout (no vision weights) and its CLIP tower."""
    root = tmp_path_factory.mktemp("v1")
    torch.manual_seed(21)
    tower = helpers.save_tower(helpers.tiny_clip(), root / "tower")
    target = helpers.official_model("llama", tower_dir=tower, projector="linear", v1_markup=True, seed=7)
    with torch.no_grad():
        for parameter in target.lm.parameters():
            parameter.add_(torch.randn_like(parameter) * 0.01)
    target_dir = target.save(root / "target", with_vision=False)
    base_tokenizer = helpers.tiny_tokenizer()
    # the base predates the image markup tokens (the last ids of the tiny tokenizer): the target has extra rows
    markup_ids = [base_tokenizer.convert_tokens_to_ids(t) for t in ["<image>", *helpers.V1_TOKENS]]
    assert sorted(markup_ids) == list(range(len(base_tokenizer) - 4, len(base_tokenizer)))
    base = LlamaForCausalLM(LlamaConfig(vocab_size=len(base_tokenizer) - 4, hidden_size=64, intermediate_size=128,
                                        num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                                        max_position_embeddings=256))
    base.save_pretrained(str(root / "base"))
    base_tokenizer.save_pretrained(str(root / "base"))
    return root, target, target_dir


def run(*args: str) -> str:
    result = CliRunner().invoke(cli, list(args))
    assert result.exit_code == 0, result.output
    return result.output


def test_cli_make_delta_apply_delta_reproduces_the_target_exactly(v1_checkpoints, tmp_path):
    root, _, target_dir = v1_checkpoints
    output = run("make-delta", "--base", str(root / "base"), "--target", str(target_dir),
                 "--output", str(tmp_path / "delta"))
    assert "new-token row(s) kept whole" in output
    run("apply-delta", "--base", str(root / "base"), "--delta", str(tmp_path / "delta"),
        "--output", str(tmp_path / "merged"), "--output-format", "llava")
    merged, original = load_state_dict(tmp_path / "merged"), load_state_dict(target_dir)
    assert merged.keys() == original.keys()
    for name, tensor in original.items():
        assert merged[name].dtype == tensor.dtype and torch.equal(merged[name], tensor), name
    assert "medzoo_delta" not in (tmp_path / "merged" / "config.json").read_text()


def test_importing_delta_weights_directly_is_refused(v1_checkpoints, tmp_path):
    root, _, target_dir = v1_checkpoints
    run("make-delta", "--base", str(root / "base"), "--target", str(target_dir), "--output", str(tmp_path / "delta"))
    with pytest.raises(InteropError, match="made by medzoo make-delta.*apply-delta"):
        import_checkpoint(tmp_path / "delta", "llava-med-v1.0", tmp_path / "imported")
    # an official delta carries no marker: its near-zero final norm gives it away
    config_path = tmp_path / "delta" / "config.json"
    config = json.loads(config_path.read_text())
    del config["medzoo_delta"]
    config_path.write_text(json.dumps(config))
    with pytest.raises(InteropError, match="looks like delta weights.*apply-delta"):
        import_checkpoint(tmp_path / "delta", "llava-med-v1.0", tmp_path / "imported")


def test_apply_delta_to_medzoo_model_with_v1_recipe(v1_checkpoints, tmp_path):
    root, source, target_dir = v1_checkpoints
    run("make-delta", "--base", str(root / "base"), "--target", str(target_dir), "--output", str(tmp_path / "delta"))
    output = run("apply-delta", "--base", str(root / "base"), "--delta", str(tmp_path / "delta"),
                 "--output", str(tmp_path / "model"))
    assert "vision tower weights were not in the checkpoint" in output

    model = MultimodalModel.from_pretrained(str(tmp_path / "model"))
    assert model.spec["language"] == {"name": "llama", "template": "llava_med_v1"}
    assert model.markup.kind == "im_start_end"
    assert model.spec["connector"]["name"] == "linear"
    for token in helpers.V1_TOKENS:
        assert model.tokenizer.convert_tokens_to_ids(token) == source.tokenizer.convert_tokens_to_ids(token)

    messages = [Message("user", "What does the slide show?\n<image>")]
    picture = Image.fromarray(np.random.default_rng(2).integers(0, 255, (32, 48, 3), dtype=np.uint8))
    sample = processor_for(model).encode(messages, [picture], add_generation_prompt=True)
    assert sample.input_ids.count(model.markup.fill_id) == model.num_image_tokens
    assert model.markup.start_id in sample.input_ids and model.markup.end_id in sample.input_ids
    with torch.no_grad():
        ours = model(torch.tensor([sample.input_ids]), pixel_values=sample.pixel_values).logits[0]
    theirs = source.logits(sample.input_ids, sample.pixel_values)
    torch.testing.assert_close(ours, theirs, atol=1e-5, rtol=0)
