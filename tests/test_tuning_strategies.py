"""Every registered tuning strategy (and each variant its registration declares: LoRA's DoRA and rsLoRA) trains
the tiny model's language model for a step, saves and loads back with identical logits, merges to logits within
tolerance of the unmerged model, and exports merged to llava-hf with the same logits. Then each strategy's own
facts: partial tuning's top layers, DoRA and rsLoRA as PEFT configures them, the QLoRA request to bitsandbytes
(recorded: this machine has no 4-bit backend) and the one-line refusals before any weights load."""

from __future__ import annotations

import json
import math
import re

import pytest
import torch
from PIL import Image
from support.recorded_bnb import Recorder, recorded_bnb
from torch import nn

from medzoo.core.errors import MedzooError, RecipeError
from medzoo.core.inference import processor_for
from medzoo.core.interfaces.conversation import Message
from medzoo.core.model.adapters import adapted_modules, merge_adapters
from medzoo.core.model.build import build_model
from medzoo.core.model.multimodal import MultimodalModel
from medzoo.core.model.processor import collate
from medzoo.core.plugin_system.manager import components
from medzoo.plugins.tuning import four_bit
from medzoo.plugins.tuning.four_bit import BitsAndBytes


def strategy_cases() -> list[tuple[str, dict]]:
    """(strategy name, options) for every registered strategy's tiny options and every declared variant."""
    cases = []
    for name in components().names("tuning"):
        tiny = components().get("tuning", name).tiny
        cases.append((name, tiny.get("options", {})))
        cases.extend((name, {**tiny.get("options", {}), **extra}) for extra in tiny.get("variants", {}).values())
    return cases


CASES = strategy_cases()
IDS = [name + "".join(f"+{k}" for k, v in options.items() if v is True) for name, options in CASES]


@pytest.fixture(autouse=True)
def offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


@pytest.fixture
def recorder(monkeypatch) -> Recorder:
    """QLoRA's bitsandbytes replaced by a recorder that this CPU may use."""
    recorded = Recorder()
    backend = BitsAndBytes(bnb=recorded_bnb(recorded), devices=("cpu",))
    monkeypatch.setattr(four_bit, "four_bit_backend", lambda: backend)
    return recorded


def tiny(tiny_model_spec) -> MultimodalModel:
    torch.manual_seed(0)
    return build_model(tiny_model_spec)


def batch_of(model: MultimodalModel) -> dict[str, torch.Tensor]:
    messages = [Message("user", "<image>\nWhat does the image show?"), Message("assistant", "A chest radiograph.")]
    images = [Image.new("RGB", (40, 30), (200, 40, 40)), Image.new("RGB", (30, 40), (30, 60, 210))]
    samples = [processor_for(model).encode(messages, [image]) for image in images]
    return collate(samples, model.tokenizer.pad_token_id)


def logits(model: MultimodalModel, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    with torch.no_grad():
        return model.eval()(**batch).logits


def one_step(model: MultimodalModel, batch: dict[str, torch.Tensor]) -> None:
    model.train()
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    model(**batch).loss.backward()
    optimizer.step()


@pytest.mark.parametrize(("name", "options"), CASES, ids=IDS)
def test_every_strategy_trains_saves_loads_merges_and_exports(name, options, recorder, tiny_model_spec, tmp_path):
    from transformers import LlavaForConditionalGeneration

    from medzoo.app.interop.hf_llava_export import export_hf_llava

    model = tiny(tiny_model_spec)
    batch = batch_of(model)
    before = logits(model, batch)
    model.requires_grad_(False)
    strategy = components().get("tuning", name).factory(**options)
    strategy.check("language", torch.device("cpu"))
    strategy.apply(model.language.model, "language")
    if name != "frozen":
        model.trained_modules = {"language"}  # as a stage's tuning records it
        one_step(model, batch)
    trained = logits(model, batch)
    assert (name == "frozen") == torch.equal(trained, before), "one step must change the logits of a tuned module"

    model.save_pretrained(str(tmp_path / "model"))
    loaded = MultimodalModel.from_pretrained(str(tmp_path / "model"))
    torch.testing.assert_close(logits(loaded, batch), trained, rtol=0, atol=0)
    adapted = adapted_modules(loaded)
    assert set(adapted) == ({"language"} if name in ("lora", "qlora") else set())
    if adapted:
        assert adapted["language"][0] == name

    assert merge_adapters(loaded) == list(adapted)
    assert adapted_modules(loaded) == {}
    torch.testing.assert_close(logits(loaded, batch), trained, rtol=1e-4, atol=1e-5)

    export_hf_llava(loaded, tmp_path / "hf")
    hf, info = LlavaForConditionalGeneration.from_pretrained(str(tmp_path / "hf"), output_loading_info=True)
    assert not any(info.values()), info
    batch.pop("labels")
    with torch.no_grad():
        theirs = hf.eval()(**batch).logits
    torch.testing.assert_close(theirs, trained, rtol=1e-4, atol=1e-4)


# ---- partial: the top N layers -------------------------------------------------------------------------------
def trainable(module: nn.Module) -> set[str]:
    return {name for name, parameter in module.named_parameters() if parameter.requires_grad}


def test_partial_trains_the_top_decoder_layers_only(tiny_model_spec):
    from medzoo.plugins.tuning.partial import PartialTuning

    model = tiny(tiny_model_spec)
    language = model.language.model
    assert len(language.model.layers) == 2
    PartialTuning(top_layers=1).apply(language, "language")
    assert trainable(language) == {f"model.layers.1.{name}" for name, _ in language.model.layers[1].named_parameters()}
    PartialTuning(top_layers=2).apply(language, "language")
    assert {name.split(".")[2] for name in trainable(language)} == {"0", "1"}
    assert not any(name.startswith(("model.embed_tokens", "model.norm", "lm_head")) for name in trainable(language))


def test_partial_on_a_tower_trains_the_top_blocks_that_run(tiny_model_spec):
    from medzoo.plugins.tuning.partial import PartialTuning

    model = tiny(tiny_model_spec)
    vision = model.vision
    assert len(vision.model.encoder.layers) == 2 and vision.num_blocks == 1  # feature_layer -2: block 1 never runs
    PartialTuning(top_layers=1).apply(vision, "vision")
    assert trainable(vision) and all(name.startswith("model.encoder.layers.0.") for name in trainable(vision))
    with pytest.raises(RecipeError) as refused:
        PartialTuning(top_layers=2).apply(vision, "vision")
    assert str(refused.value) == ("tuning.options.vision.top_layers: 2 exceeds the vision's 1 layers that run; "
                                  "expected an integer from 1 to 1")


@pytest.mark.parametrize(("options", "message"), [
    ({"top_layers": 0}, "tuning.options.language.top_layers: 0; expected an integer >= 1"),
    ({"top_layers": -2}, "tuning.options.language.top_layers: -2; expected an integer >= 1"),
    ({"top_layers": "2"}, "tuning.options.language.top_layers: '2'; expected an integer >= 1"),
    ({"top_layers": True}, "tuning.options.language.top_layers: True; expected an integer >= 1"),
    ({}, "tuning.options.language.top_layers: missing; expected an integer >= 1"),
    ({"top_layers": 1, "layers": 2}, "tuning.options.language: unknown partial option(s) ['layers']"),
])
def test_partial_bad_counts_are_refused_in_one_line_before_weights_load(options, message):
    from medzoo.plugins.tuning.partial import PartialTuning

    with pytest.raises(RecipeError, match="^" + re.escape(message)) as refused:
        PartialTuning(**options).check("language")
    assert "\n" not in str(refused.value)


def test_partial_beyond_the_decoder_depth_or_on_the_connector_is_refused(tiny_model_spec):
    from medzoo.plugins.tuning.partial import PartialTuning

    model = tiny(tiny_model_spec)
    before = {name: p.requires_grad for name, p in model.language.model.named_parameters()}
    with pytest.raises(RecipeError) as refused:
        PartialTuning(top_layers=3).apply(model.language.model, "language")
    assert str(refused.value) == ("tuning.options.language.top_layers: 3 exceeds the language's 2 layers that run; "
                                  "expected an integer from 1 to 2")
    assert before == {name: p.requires_grad for name, p in model.language.model.named_parameters()}
    with pytest.raises(RecipeError, match=r"^tuning.connector: 'partial' trains the top layers of a stack of blocks; "
                                          r"allowed on vision and language"):
        PartialTuning(top_layers=1).check("connector")


# ---- DoRA and rsLoRA: PEFT's variants, as options of lora ---------------------------------------------------------
def test_dora_and_rslora_are_configured_as_peft_does_and_saved_in_its_format(tiny_model_spec, tmp_path):
    from peft.tuners.lora import LoraLayer

    from medzoo.plugins.tuning.lora import LoraTuning

    model = tiny(tiny_model_spec)
    LoraTuning(r=4, alpha=8, use_rslora=True).apply(model.language.model, "language")
    layers = [m for m in model.language.model.modules() if isinstance(m, LoraLayer)]
    # rank-stabilised scaling alpha / sqrt(r) (Kalajdzievski 2023; peft/tuners/lora/layer.py update_layer)
    assert layers and all(layer.scaling["default"] == pytest.approx(8 / math.sqrt(4)) for layer in layers)
    LoraTuning(r=4, alpha=8, use_dora=True).apply(model.connector, "connector")
    dora = [m for m in model.connector.modules() if isinstance(m, LoraLayer)]
    assert dora and all("default" in layer.lora_magnitude_vector for layer in dora)
    assert all(layer.scaling["default"] == pytest.approx(8 / 4) for layer in dora)
    model.trained_modules = {"language", "connector"}
    model.save_pretrained(str(tmp_path / "m"))
    manifest = json.loads((tmp_path / "m" / "medzoo_model.json").read_text())
    assert manifest["adapters"]["language"] == {"path": "adapters/language", "strategy": "lora", "r": 4, "alpha": 8,
                                                "use_rslora": True}
    assert manifest["adapters"]["connector"]["use_dora"] is True
    config = json.loads((tmp_path / "m" / "adapters" / "connector" / "adapter_config.json").read_text())
    assert config["use_dora"] is True and config["use_rslora"] is False


class WithAttention(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.attn = nn.MultiheadAttention(8, 2, batch_first=True)
        self.fc1 = nn.Linear(8, 8)


def test_dora_on_a_layer_type_peft_does_not_adapt_is_refused_before_any_adapter():
    from medzoo.plugins.tuning.lora import LoraTuning, has_lora

    module = WithAttention()
    with pytest.raises(RecipeError) as refused:
        LoraTuning(use_dora=True, target_modules=["attn", "fc1"]).apply(module, "vision")
    assert str(refused.value) == (
        "tuning.options.vision.use_dora: true on 'attn' (MultiheadAttention); PEFT's DoRA adapts Linear, Embedding, "
        "Conv1d, Conv2d, Conv3d, Conv1D layers only: expected target_modules naming those, or use_dora: false")
    assert not has_lora(module)
    LoraTuning(use_dora=True, target_modules=["out_proj", "fc1"]).apply(module, "vision")  # Linear subclasses
    assert has_lora(module)


def test_lora_variant_switches_must_be_booleans():
    from medzoo.plugins.tuning.lora import LoraTuning

    with pytest.raises(RecipeError, match=r"^tuning.options.language.use_dora: 'yes'; expected true or false$"):
        LoraTuning(use_dora="yes").check("language")


# ---- QLoRA: the request to bitsandbytes and the refusal where there is no 4-bit backend ---------------------------
def test_qlora_asks_bitsandbytes_for_what_transformers_asks(recorder, tiny_model_spec):
    from medzoo.plugins.tuning.qlora import QLoraTuning

    model = tiny(tiny_model_spec)
    language = model.language.model
    linears = {name: module for name, module in language.named_modules() if isinstance(module, nn.Linear)}
    weights = {name: module.weight.detach().clone() for name, module in linears.items()}
    QLoraTuning(r=4, alpha=8).apply(language, "language")
    quantised = [name for name in linears if name != "lm_head"]
    assert "lm_head" in linears and len(recorder.layers) == len(quantised) > 0
    # transformers/integrations/bitsandbytes.py: Linear4bit(in, out, bias, compute_dtype, compress_statistics=,
    # quant_type=, quant_storage=) with the QLoRA defaults nf4, double quantisation, bfloat16 compute
    for name, layer in zip(quantised, recorder.layers, strict=True):
        assert layer == {"in": linears[name].in_features, "out": linears[name].out_features,
                         "bias": linears[name].bias is not None, "compute_dtype": torch.bfloat16,
                         "compress_statistics": True, "quant_type": "nf4", "quant_storage": torch.uint8}
    for name, param in zip(quantised, recorder.params, strict=True):
        assert torch.equal(param.pop("data"), weights[name])
        assert param == {"requires_grad": False, "compress_statistics": True, "quant_type": "nf4",
                         "quant_storage": torch.uint8}
    assert set(recorder.moved_to) == {torch.device("cpu")}
    assert trainable(language) and all("lora_" in name for name in trainable(language))


def test_qlora_options_reach_bitsandbytes_and_skip_attention_internals(recorder):
    from medzoo.plugins.tuning.qlora import QLoraTuning

    module = WithAttention()
    QLoraTuning(quant_type="fp4", double_quant=False, compute_dtype="float16", target_modules=["fc1"]).apply(
        module, "vision")
    # nn.MultiheadAttention reads out_proj.weight itself: only fc1 is quantised
    assert recorder.layers == [{"in": 8, "out": 8, "bias": True, "compute_dtype": torch.float16,
                                "compress_statistics": False, "quant_type": "fp4", "quant_storage": torch.uint8}]


@pytest.mark.parametrize(("options", "message"), [
    ({"quant_type": "int4"}, "tuning.options.language.quant_type: 'int4'; expected one of ['nf4', 'fp4']"),
    ({"compute_dtype": "float8"}, "tuning.options.language.compute_dtype: 'float8'; expected one of "
                                  "['bfloat16', 'float16', 'float32']"),
    ({"double_quant": 1}, "tuning.options.language.double_quant: 1; expected true or false"),
    ({"use_dora": True}, "tuning.options.language.use_dora: true; expected false with qlora"),
])
def test_qlora_bad_options_are_refused_in_one_line(options, message, recorder):
    from medzoo.plugins.tuning.qlora import QLoraTuning

    with pytest.raises(RecipeError, match="^" + re.escape(message)):
        QLoraTuning(**options).check("language", torch.device("cpu"))


def test_qlora_without_a_4bit_backend_is_refused_naming_key_value_and_what_is_allowed():
    from medzoo.plugins.tuning.qlora import QLoraTuning

    with pytest.raises(RecipeError) as refused:
        QLoraTuning().check("language", torch.device("cpu"))
    assert str(refused.value) == (
        "tuning.language: 'qlora' needs a 4-bit backend and device 'cpu' has none (bitsandbytes 4-bit layers run on "
        "cuda); expected a device of cuda with bitsandbytes installed, or lora")


def test_a_qlora_run_is_refused_before_any_weights_load(tmp_path, monkeypatch):
    import yaml

    from medzoo.core.recipes.loading import load_recipe
    from medzoo.core.training import run
    from medzoo.testing import TINY_MODEL

    def no_build(*args, **kwargs):
        raise AssertionError("weights were loaded before the refusal")

    monkeypatch.setattr(run, "build_model", no_build)
    stage = {"name": "instruct", "role": "instruct", "max_steps": 1, "datasets": [],
             "tuning": {"vision": "frozen", "connector": "full", "language": "qlora",
                        "options": {"language": {"r": 4, "alpha": 8}}}}
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump({"name": "qlora-tiny", "model": TINY_MODEL, "stages": [stage]}))
    with pytest.raises(RecipeError) as refused:
        run.train_recipe(load_recipe(str(path)).config, tmp_path / "run", echo=lambda *_: None)
    assert str(refused.value).startswith("stages.instruct.tuning.language: 'qlora' needs a 4-bit backend and device "
                                         "'cpu' has none")
    assert not (tmp_path / "run" / "recipe.yaml").exists()


def test_a_qlora_model_does_not_load_where_there_is_no_4bit_backend(recorder, tiny_model_spec, tmp_path, monkeypatch):
    from medzoo.plugins.tuning.qlora import QLoraTuning

    model = tiny(tiny_model_spec)
    QLoraTuning(r=4, alpha=8).apply(model.language.model, "language")
    model.trained_modules = {"language"}
    model.save_pretrained(str(tmp_path / "m"))
    assert json.loads((tmp_path / "m" / "adapters" / "language" / "quantisation.json").read_text()) == {
        "quant_type": "nf4", "double_quant": True, "compute_dtype": "bfloat16", "quant_storage": "uint8"}
    monkeypatch.setattr(four_bit, "four_bit_backend", BitsAndBytes)
    with pytest.raises(MedzooError) as refused:
        MultimodalModel.from_pretrained(str(tmp_path / "m"))
    assert str(refused.value).startswith(f"{tmp_path / 'm' / 'adapters' / 'language' / 'quantisation.json'}: 'qlora' "
                                         "needs a 4-bit backend and device 'cpu' has none")


def test_a_qlora_adapter_is_refused_unmerged_export_in_one_line(recorder, tiny_model_spec, tmp_path):
    from medzoo.app.interop.hf_llava_export import export_hf_llava
    from medzoo.core.errors import ExportRefused
    from medzoo.plugins.tuning.qlora import QLoraTuning

    model = tiny(tiny_model_spec)
    QLoraTuning(r=4, alpha=8).apply(model.language.model, "language")
    model.trained_modules = {"language"}
    with pytest.raises(ExportRefused) as refused:
        export_hf_llava(model, tmp_path / "hf", merge_lora=False)
    assert str(refused.value) == ("--no-merge writes LoRA adapters in PEFT format; the language model's adapters "
                                  "are 'qlora''s (export without --no-merge to merge them)")
    assert not (tmp_path / "hf" / "adapter").exists()


@pytest.mark.gpu
def test_qlora_on_cuda_trains_saves_loads_and_merges(tiny_model_spec, tmp_path):
    """The real bitsandbytes path (benchmarks/gpu_bench.sh runs it on a GPU machine; never run on this CPU)."""
    bnb = pytest.importorskip("bitsandbytes")
    from medzoo.plugins.tuning.qlora import QLoraTuning

    model = tiny(tiny_model_spec).cuda()
    QLoraTuning(r=4, alpha=8, compute_dtype="float32").apply(model.language.model, "language")
    four_bit_layers = [m for m in model.language.model.modules() if isinstance(m, bnb.nn.Linear4bit)]
    assert four_bit_layers and all(m.weight.device.type == "cuda" for m in four_bit_layers)
    model.trained_modules = {"language"}
    batch = {k: v.cuda() for k, v in batch_of(model).items()}
    one_step(model, batch)
    trained = logits(model, batch)
    model.save_pretrained(str(tmp_path / "m"))
    loaded = MultimodalModel.from_pretrained(str(tmp_path / "m")).cuda()
    torch.testing.assert_close(logits(loaded, batch), trained, rtol=0, atol=0)
    merge_adapters(loaded)
    torch.testing.assert_close(logits(loaded, batch), trained, rtol=1e-3, atol=1e-3)


@pytest.mark.parametrize("switch", ["use_dora", "use_rslora"])
def test_dora_and_rslora_export_unmerged_as_a_peft_adapter_giving_the_merged_logits(switch, tiny_model_spec, tmp_path):
    import copy

    from peft import PeftModel
    from transformers import LlavaForConditionalGeneration

    from medzoo.app.interop.hf_llava_export import export_hf_llava
    from medzoo.plugins.tuning.lora import LoraTuning

    model = tiny(tiny_model_spec)
    batch = batch_of(model)
    LoraTuning(r=4, alpha=8, **{switch: True}).apply(model.language.model, "language")
    model.trained_modules = {"language"}
    one_step(model, batch)
    batch.pop("labels")
    expected = logits(model, batch)
    export_hf_llava(copy.deepcopy(model), tmp_path / "merged")
    export_hf_llava(model, tmp_path / "hf", merge_lora=False)
    assert json.loads((tmp_path / "hf" / "adapter" / "adapter_config.json").read_text())[switch] is True
    with torch.no_grad():
        merged = LlavaForConditionalGeneration.from_pretrained(str(tmp_path / "merged")).eval()(**batch).logits
        base = LlavaForConditionalGeneration.from_pretrained(str(tmp_path / "hf"))
        adapted = PeftModel.from_pretrained(base, str(tmp_path / "hf" / "adapter")).eval()(**batch).logits
    torch.testing.assert_close(merged, expected, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(adapted, expected, rtol=1e-4, atol=1e-4)


# ---- partial on every tower and language family: the trained blocks are ones that run -------------------------
def members(kind: str) -> list[str]:
    names = []
    for name in components().names(kind):
        info = components().get(kind, name).info
        names.extend(info.get("examples", ())) if info.get("pattern") else names.append(name)
    return names


PARTIAL_CASES = [("vision", name) for name in members("vision_encoder")] + [
    ("language", name) for name in members("language_model")]


@pytest.mark.parametrize(("module_name", "name"), PARTIAL_CASES, ids=[f"{m}:{n}" for m, n in PARTIAL_CASES])
def test_partial_top_layer_of_every_tower_and_language_family_gets_gradients(module_name, name, tiny_model_spec):
    from medzoo.plugins.tuning.layer_stacks import layer_stacks
    from medzoo.plugins.tuning.partial import PartialTuning

    spec = {**tiny_model_spec, module_name: {"name": name}}
    model = tiny(spec)
    module = model.vision if module_name == "vision" else model.language.model
    stacks = layer_stacks(module)
    assert stacks, f"{name}: no stack of blocks found"
    model.requires_grad_(False)
    PartialTuning(top_layers=1).apply(module, module_name)
    top_blocks = [blocks[-1] for blocks in stacks.values()]
    top_parameters = {id(p) for block in top_blocks for p in block.parameters()}
    trained = [p for p in model.parameters() if p.requires_grad]
    assert trained and {id(p) for p in trained} == top_parameters
    model.train()
    model(**batch_of(model)).loss.backward()
    for block in top_blocks:  # a block that never runs would get no gradient and train nothing
        assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in block.parameters()), name


def test_a_recipe_run_trains_only_the_partial_top_layer_and_dora_on_the_tower(tmp_path):
    from support.tiny_run import train

    run, _ = train(tmp_path, "stages.instruct.tuning.language=partial",
                   "stages.instruct.tuning.options={language: {top_layers: 1}, vision: {r: 2, alpha: 4, use_dora: true}}",
                   "stages.instruct.tuning.vision=lora", "stages.alignment.max_steps=1", "stages.instruct.max_steps=1")
    first = MultimodalModel.from_pretrained(str(run / "01-alignment" / "model"))
    final = MultimodalModel.from_pretrained(str(run / "final"))
    manifest = json.loads((run / "final" / "medzoo_model.json").read_text())
    assert manifest["adapters"]["vision"]["strategy"] == "lora" and manifest["adapters"]["vision"]["use_dora"] is True
    before, after = first.language.model.state_dict(), final.language.model.state_dict()
    changed = {key.split(".")[2] for key in before if key.startswith("model.layers.")
               and not torch.equal(before[key], after[key])}
    assert changed == {"1"}
    assert all(torch.equal(before[key], after[key]) for key in before if not key.startswith("model.layers.1."))
