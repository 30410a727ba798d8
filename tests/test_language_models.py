"""Language-model plugins on tiny random models, and the tiny tokenizer medzoo ships."""

from __future__ import annotations

import json
import sys
from importlib import util as import_util
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file
from transformers import AutoTokenizer, LlamaTokenizerFast

from medzoo.core.errors import PluginError, RecipeError
from medzoo.core.interfaces.language_model import LanguageModel
from medzoo.core.plugin_system.manager import components
from medzoo.plugins.language.tiny_tokenizer import (
    TINY_TOKENIZER_NAME,
    load_tiny_tokenizer,
    tiny_family_of,
    tiny_tokenizer_path,
)
from medzoo.plugins.language.tiny_tokenizer_families import TOKENIZER_FAMILIES

LANGUAGE_MODELS = components().names("language_model")
EXPECTED_LAYER = {
    "llama": "LlamaDecoderLayer", "vicuna": "LlamaDecoderLayer", "mistral": "MistralDecoderLayer",
    "qwen2": "Qwen2DecoderLayer", "qwen3": "Qwen3DecoderLayer", "llama3": "LlamaDecoderLayer",
    "phi": "PhiDecoderLayer", "phi3": "Phi3DecoderLayer", "gemma2": "Gemma2DecoderLayer",
    "gemma3": "Gemma3DecoderLayer", "hf-causal": "Olmo2DecoderLayer",
}
#: the template each family resolves with its tiny tokenizer (chat_template: the tokenizer ships one)
EXPECTED_TEMPLATE = {
    "llama": "llava_med_v1", "vicuna": "vicuna_v1", "mistral": "mistral_instruct", "qwen2": "chat_template",
    "qwen3": "qwen3", "llama3": "chat_template", "phi": "colongpt", "phi3": "chat_template",
    "gemma2": "chat_template", "gemma3": "chat_template", "hf-causal": "vicuna_v1",
}
#: the hand-written template a family falls back to when its tokenizer ships no chat template
FALLBACK_TEMPLATE = {"qwen2": "chatml", "llama3": "llama3", "phi3": "phi3", "gemma2": "gemma", "gemma3": "gemma",
                     "hf-causal": "vicuna_v1"}
SAMPLE = "[INST] <image>\nIs there a polyp in the colon? [/INST] Yes, 12 mm. </s>"


def factory(name: str):
    return components().get("language_model", name).factory


@pytest.fixture(scope="module", params=LANGUAGE_MODELS)
def tiny(request) -> tuple[str, LanguageModel]:
    torch.manual_seed(0)
    model = factory(request.param).from_config(factory(request.param).tiny_config())
    return request.param, model.eval()


def sample_ids(model: LanguageModel) -> torch.Tensor:
    return model.tokenizer([SAMPLE], return_tensors="pt").input_ids


# ---- the tiny tokenizer ------------------------------------------------------------------------------------------
def test_tiny_tokenizer_layout() -> None:
    tokenizer = AutoTokenizer.from_pretrained(str(tiny_tokenizer_path()))
    assert tokenizer.is_fast and isinstance(tokenizer, LlamaTokenizerFast)
    assert [tokenizer.unk_token_id, tokenizer.bos_token_id, tokenizer.eos_token_id] == [0, 1, 2]
    assert 1000 <= len(tokenizer) <= 2000
    for token in ("<image>", "<im_start>", "<im_end>", "<im_patch>", "<pad>"):
        assert token in tokenizer.all_special_tokens
        assert tokenizer.tokenize(f"a {token} b").count(token) == 1
    assert tokenizer.pad_token == "<pad>"
    ids = tokenizer("hello").input_ids
    assert ids[0] == tokenizer.bos_token_id and ids[-1] != tokenizer.eos_token_id
    assert sum(path.stat().st_size for path in tiny_tokenizer_path().iterdir()) < 1_000_000


@pytest.mark.parametrize("text", ["Axial CT: 3.5 cm lesion (left lobe)!", "naïve café — 日本語 😀\ttab", "two  spaces\n\nx "])
def test_tiny_tokenizer_round_trips_any_text(text: str) -> None:
    """Byte fallback makes any text round-trip (like Llama, a leading space is absorbed by the word-start mark)."""
    tokenizer = load_tiny_tokenizer()
    ids = tokenizer(text, add_special_tokens=False).input_ids
    assert tokenizer.unk_token_id not in ids
    assert tokenizer.decode(ids) == text


def test_tiny_tokenizer_knows_the_domain_and_template_markers() -> None:
    tokenizer = load_tiny_tokenizer()
    for word in ("▁[INST]", "▁[/INST]", "▁###", "▁Human:", "▁Assistant:", "▁USER:", "▁ASSISTANT:", "▁polyp",
                 "▁radiograph", "▁histology", "▁colonoscopy"):
        assert word in tokenizer.get_vocab(), word


def test_padding_side_is_configurable() -> None:
    for side in ("left", "right"):
        tokenizer = load_tiny_tokenizer(padding_side=side)
        batch = tokenizer(["a", "a longer sentence"], padding=True).input_ids
        short = batch[0]
        assert (short[0] if side == "left" else short[-1]) == tokenizer.pad_token_id


def test_shipped_files_are_what_the_build_script_writes(tmp_path: Path) -> None:
    script = tiny_tokenizer_path().parent / "build_tiny_tokenizer.py"
    spec = import_util.spec_from_file_location("medzoo_build_tiny_tokenizer", script)
    module = import_util.module_from_spec(spec)
    sys.modules[spec.name] = module
    try:
        spec.loader.exec_module(module)
        written = module.build_all(tmp_path)
    finally:
        sys.modules.pop(spec.name, None)
    shipped_folders = [tiny_tokenizer_path(), *(tiny_tokenizer_path(family) for family in TOKENIZER_FAMILIES)]
    assert [folder.name for folder in written] == [folder.name for folder in shipped_folders]
    for shipped_folder in shipped_folders:
        assert sorted(path.name for path in shipped_folder.iterdir()) == ["tokenizer.json", "tokenizer_config.json"]
        for name in ("tokenizer.json", "tokenizer_config.json"):
            built = json.loads((tmp_path / shipped_folder.name / name).read_text())
            shipped = json.loads((shipped_folder / name).read_text())
            assert built == shipped, f"{shipped_folder.name}/{name}"


@pytest.mark.parametrize("family", sorted(TOKENIZER_FAMILIES))
def test_each_family_family_has_its_special_tokens_bos_and_chat_template(family: str) -> None:
    spec = TOKENIZER_FAMILIES[family]
    tokenizer = load_tiny_tokenizer(family=family)
    base = load_tiny_tokenizer()
    assert tokenizer.is_fast and len(tokenizer) <= len(base) + 8
    assert sum(path.stat().st_size for path in tiny_tokenizer_path(family).iterdir()) < 200_000
    for token in (*spec.special_tokens, *spec.added_tokens, "<image>", "<im_start>", "<im_end>", "<im_patch>"):
        assert tokenizer.tokenize(f"a {token}b").count(token) == 1, token
    assert tokenizer.eos_token == spec.eos_token and tokenizer.bos_token == spec.bos_token
    assert tokenizer.pad_token == spec.pad_token and tokenizer.pad_token_id != tokenizer.eos_token_id
    ids = tokenizer("hello").input_ids
    assert (ids[0] == tokenizer.bos_token_id) == spec.add_bos_token
    assert tokenizer.chat_template == spec.chat_template
    text = "Axial CT shows a 3.5 cm polyp (naïve café 日本語)."
    if spec.byte_level:  # Qwen's kind: byte-level BPE, every text round-trips
        assert type(tokenizer).__name__ == "Qwen2Tokenizer"
        assert tokenizer.decode(tokenizer(text).input_ids) == text
    else:  # the learned pieces are the base tokenizer's: plain text encodes the same
        assert tokenizer(text, add_special_tokens=False).input_ids == base(text, add_special_tokens=False).input_ids


def test_an_unknown_tiny_family_names_the_shipped_ones() -> None:
    from medzoo.plugins.language.hf_causal import load_tokenizer

    with pytest.raises(RecipeError, match=r"'medzoo-tiny-qwen9' is not shipped.*medzoo-tiny-qwen2"):
        load_tokenizer("medzoo-tiny-qwen9")


# ---- language models -----------------------------------------------------------------------------------------
def test_the_built_in_models_are_registered() -> None:
    assert set(EXPECTED_TEMPLATE) <= set(LANGUAGE_MODELS)


def test_tiny_build_and_forward(tiny) -> None:
    name, model = tiny
    assert isinstance(model, LanguageModel)
    assert model.tokenizer.is_fast
    ids = sample_ids(model)
    logits = model(input_ids=ids).logits
    assert logits.shape == (1, ids.shape[1], len(model.tokenizer))
    assert torch.isfinite(logits).all()
    assert model.hidden_size == model.tiny_config()["hidden_size"]
    assert model.embed(ids).shape == (1, ids.shape[1], model.hidden_size)
    if name in EXPECTED_TEMPLATE:
        assert model.template_name == EXPECTED_TEMPLATE[name]
    components().get("template", model.template_name)
    assert model.tokenizer.pad_token_id not in (None, model.tokenizer.eos_token_id)
    assert model.model.config.pad_token_id == model.tokenizer.pad_token_id


def test_decoder_layer_class(tiny) -> None:
    name, model = tiny
    layer_class = model.decoder_layer_class
    layers = [module for module in model.model.modules() if isinstance(module, layer_class)]
    assert len(layers) == model.tiny_config()["num_hidden_layers"]
    if name in EXPECTED_LAYER:
        assert layer_class.__name__ == EXPECTED_LAYER[name]


def test_save_and_load_round_trip(tiny, tmp_path: Path) -> None:
    name, model = tiny
    model.save_pretrained(str(tmp_path))
    loaded = factory(name).from_pretrained(str(tmp_path)).eval()
    assert loaded.tokenizer(SAMPLE).input_ids == model.tokenizer(SAMPLE).input_ids
    assert loaded.tokenizer.pad_token_id == model.tokenizer.pad_token_id
    with torch.no_grad():
        assert torch.equal(loaded(input_ids=sample_ids(model)).logits, model(input_ids=sample_ids(model)).logits)
    # the tokenizer travels with its chat template, so the model reloads with the same resolved template
    assert loaded.tokenizer.chat_template == model.tokenizer.chat_template
    family = tiny_family_of(model.tiny_config()["tokenizer"])
    assert loaded.tokenizer.chat_template == (TOKENIZER_FAMILIES[family].chat_template if family else None)
    assert loaded.template_name == model.template_name
    assert [loaded.tokenizer.bos_token, loaded.tokenizer.eos_token] == [model.tokenizer.bos_token,
                                                                         model.tokenizer.eos_token]


def test_save_without_weights_writes_config_and_tokenizer(tiny, tmp_path: Path) -> None:
    _name, model = tiny
    model.save_pretrained(str(tmp_path), save_weights=False)
    assert (tmp_path / "config.json").is_file() and (tmp_path / "tokenizer.json").is_file()
    assert not list(tmp_path.glob("*.safetensors"))


def test_add_special_tokens_grows_embeddings(tiny) -> None:
    name, _ = tiny
    model = factory(name).from_config(factory(name).tiny_config())
    before = model.input_embeddings().weight.detach().clone()
    size = len(model.tokenizer)
    ids = model.add_special_tokens(["<image>", "<seg_a>", "<seg_b>"])
    assert ids[0] == model.tokenizer.convert_tokens_to_ids("<image>") < size
    assert ids[1:] == [size, size + 1]
    assert model.input_embeddings().num_embeddings == size + 2
    assert model.model.get_output_embeddings().weight.shape[0] == size + 2
    assert torch.equal(model.input_embeddings().weight[:size], before)
    assert model.tokenizer.tokenize("x <seg_b> y").count("<seg_b>") == 1
    assert model(input_ids=torch.tensor([ids])).logits.shape[-1] == size + 2
    # the architecture config remembers the added tokens, so the shape can be rebuilt
    rebuilt = factory(name).from_config(model.architecture_config())
    assert rebuilt.input_embeddings().num_embeddings == size + 2
    assert rebuilt.tokenizer.convert_tokens_to_ids("<seg_b>") == size + 1


def test_architecture_config_rebuilds_the_same_shapes(tiny) -> None:
    name, model = tiny
    config = model.architecture_config()
    assert config["tokenizer"] == model.tiny_config()["tokenizer"]
    assert config["tokenizer"].startswith(TINY_TOKENIZER_NAME)
    rebuilt = factory(name).from_config(config)
    shapes = {key: value.shape for key, value in model.model.state_dict().items()}
    assert {key: value.shape for key, value in rebuilt.model.state_dict().items()} == shapes


def test_config_errors_name_the_key() -> None:
    llama = factory("llama")
    with pytest.raises(RecipeError, match="'hiden_size'.*did you mean"):
        llama.from_config({**llama.tiny_config(), "hiden_size": 32})
    with pytest.raises(RecipeError, match="'vocab_size'"):
        llama.from_config({**llama.tiny_config(), "vocab_size": 100})
    with pytest.raises(RecipeError, match="dtype"):
        llama.from_config(llama.tiny_config(), dtype="float8")
    with pytest.raises(PluginError, match="unknown template 'no_such_template'"):
        llama.from_config(llama.tiny_config(), template="no_such_template")


def test_from_config_options(tiny) -> None:
    name, _ = tiny
    model = factory(name).from_config(factory(name).tiny_config(), dtype="bfloat16", padding_side="left",
                                      template="plain", attention="eager")
    assert model.input_embeddings().weight.dtype == torch.bfloat16
    assert model.tokenizer.padding_side == "left"
    assert model.template_name == "plain"
    model.enable_gradient_checkpointing()
    assert getattr(model.model, "is_activation_checkpointing", None) or model.model.is_gradient_checkpointing


def test_from_pretrained_rejects_another_family(tmp_path: Path) -> None:
    mistral = factory("mistral").from_config(factory("mistral").tiny_config())
    mistral.save_pretrained(str(tmp_path))
    with pytest.raises(RecipeError, match="model_type 'mistral'"):
        factory("llama").from_pretrained(str(tmp_path))
    with pytest.raises(RecipeError, match="cannot read a config"):
        factory("llama").from_pretrained(str(tmp_path / "missing"))


def test_mistral_reads_the_language_model_of_a_llava_mistral_checkpoint(tmp_path: Path) -> None:
    mistral = factory("mistral").from_config(factory("mistral").tiny_config()).eval()
    mistral.save_pretrained(str(tmp_path))
    config_path = tmp_path / "config.json"
    config = json.loads(config_path.read_text())
    config.update(model_type="llava_mistral", architectures=["LlavaMistralForCausalLM"],
                  mm_projector_type="mlp2x_gelu", mm_hidden_size=16, feature_outs="encoder+decoder")
    config_path.write_text(json.dumps(config))
    weights = load_file(str(tmp_path / "model.safetensors"))
    weights["model.mm_projector.0.weight"] = torch.zeros(64, 16)
    save_file(weights, str(tmp_path / "model.safetensors"), metadata={"format": "pt"})
    loaded = factory("mistral").from_pretrained(str(tmp_path)).eval()
    ids = sample_ids(mistral)
    with torch.no_grad():
        assert torch.equal(loaded(input_ids=ids).logits, mistral(input_ids=ids).logits)
    assert "feature_outs" not in loaded.architecture_config()


#: families that read the language model of another (LLaVA-style) checkpoint type
LLAVA_STYLE = [(family, model_type) for family in LANGUAGE_MODELS
               for model_type in factory(family).compatible_model_types]


@pytest.mark.parametrize(("family", "model_type"), [pair for pair in LLAVA_STYLE if pair[0] != "mistral"])
def test_a_family_reads_the_language_model_of_its_llava_style_checkpoint(family: str, model_type: str,
                                                                         tmp_path: Path) -> None:
    model = factory(family).from_config(factory(family).tiny_config()).eval()
    model.save_pretrained(str(tmp_path))
    config = json.loads((tmp_path / "config.json").read_text())
    config.update(model_type=model_type, mm_projector_type="mlp2x_gelu", mm_hidden_size=16)
    (tmp_path / "config.json").write_text(json.dumps(config))
    weights = load_file(str(tmp_path / "model.safetensors"))
    weights["model.mm_projector.0.weight"] = torch.zeros(64, 16)
    if model_type == "colongpt-phi":  # ColonGPT's lm_head has no bias
        del weights["lm_head.bias"]
        with torch.no_grad():
            model.model.lm_head.bias.zero_()
    save_file(weights, str(tmp_path / "model.safetensors"), metadata={"format": "pt"})
    loaded = factory(family).from_pretrained(str(tmp_path)).eval()
    ids = sample_ids(model)
    with torch.no_grad():
        torch.testing.assert_close(loaded(input_ids=ids).logits, model(input_ids=ids).logits, rtol=0, atol=0)
    assert loaded.template_name == model.template_name


@pytest.mark.parametrize("family", sorted(FALLBACK_TEMPLATE))
def test_a_family_without_a_chat_template_in_its_tokenizer_uses_its_hand_written_template(family: str) -> None:
    config = {**factory(family).tiny_config(), "tokenizer": TINY_TOKENIZER_NAME}
    model = factory(family).from_config(config)
    assert model.tokenizer.chat_template is None
    assert model.template_name == FALLBACK_TEMPLATE[family]
    assert factory(family).from_config(config, template="plain").template_name == "plain"
    with pytest.raises(RecipeError, match=r"template 'chat_template': tokenizer '.*' has no chat_template"):
        factory(family).from_config(config, template="chat_template")


def test_gemma2_builds_with_eager_attention_when_sdpa_is_asked_for() -> None:
    gemma2 = factory("gemma2").from_config(factory("gemma2").tiny_config(), attention="sdpa")
    assert gemma2.model.config._attn_implementation == "eager"


def test_hf_causal_reads_any_causal_lm_checkpoint_and_rebuilds_it_from_its_architecture(tmp_path: Path) -> None:
    qwen2 = factory("qwen2").from_config(factory("qwen2").tiny_config()).eval()
    qwen2.save_pretrained(str(tmp_path))
    loaded = factory("hf-causal").from_pretrained(str(tmp_path)).eval()
    assert type(loaded.model).__name__ == "Qwen2ForCausalLM"
    assert loaded.template_name == "chat_template" and loaded.decoder_layer_class.__name__ == "Qwen2DecoderLayer"
    ids = sample_ids(qwen2)
    with torch.no_grad():
        assert torch.equal(loaded(input_ids=ids).logits, qwen2(input_ids=ids).logits)
    config = loaded.architecture_config()
    assert config["model_type"] == "qwen2" and config["tie_word_embeddings"] is True
    rebuilt = factory("hf-causal").from_config(config)
    assert {k: v.shape for k, v in rebuilt.model.state_dict().items()} == {
        k: v.shape for k, v in qwen2.model.state_dict().items()}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"model_type": None}, r"config key 'model_type' is missing; expected a transformers model type"),
        ({"model_type": "qwen22"}, r"'qwen22' is not a transformers causal LM \(did you mean \"qwen2\"\?\)"),
        ({"hiden_size": 8}, r"unknown config key 'hiden_size'.*expected Olmo2Config fields"),
    ],
)
def test_hf_causal_config_errors_name_the_key(change: dict, message: str) -> None:
    config = {**factory("hf-causal").tiny_config(), **change}
    config = {key: value for key, value in config.items() if value is not None}
    with pytest.raises(RecipeError, match=message) as raised:
        factory("hf-causal").from_config(config)
    assert "\n" not in str(raised.value)


@pytest.mark.parametrize("family", ["qwen2", "phi"])
def test_a_saved_model_reloads_with_the_same_resolved_template_and_encoding(family: str, tmp_path: Path) -> None:
    from medzoo.core.inference import processor_for
    from medzoo.core.interfaces.conversation import Message
    from medzoo.core.model.build import build_model
    from medzoo.core.model.multimodal import MultimodalModel
    from medzoo.core.model.persistence import load_model, save_model

    spec = {"vision": {"name": "clip"}, "connector": {"name": "mlp2x_gelu"},
            "language": {"name": family, "config": factory(family).tiny_config()}}
    model = build_model(spec).eval()
    save_model(model, tmp_path)
    loaded = load_model(MultimodalModel, tmp_path)
    assert loaded.language.template_name == model.language.template_name == EXPECTED_TEMPLATE[family]
    messages = [Message("user", "<image>\nWhat is shown?"), Message("assistant", "A polyp.")]
    before, after = processor_for(model).encode_text(messages, 1), processor_for(loaded).encode_text(messages, 1)
    assert (after.input_ids, after.labels) == (before.input_ids, before.labels)
    assert processor_for(loaded).template.stop_strings == processor_for(model).template.stop_strings
