"""Registration info (description, hub ids, licence) is checked where plugins give it; every registered component
builds from its tiny config; registry.yaml's variants match the shipped recipes and its loader's errors are one line
naming the file and the key; `medzoo plugins` and `medzoo zoo`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml
from click.testing import CliRunner

from medzoo.app.cli.main import cli
from medzoo.app.zoo_variants import CatalogError, load_catalog
from medzoo.core.interfaces.conversation import Message
from medzoo.core.interfaces.instruct_backend import InstructBackend
from medzoo.core.plugin_system.manager import components
from medzoo.core.plugin_system.registry import COMPONENT_KINDS, Registration
from medzoo.core.recipes.loading import load_recipe
from medzoo.core.resources import recipes_dir

CATALOG = load_catalog()
#: every component a recipe assembles (contenders are built from tiny model folders in test_contenders)
REGISTERED = [entry for entry in components() if entry.kind in COMPONENT_KINDS]


def builtin_registrations():
    return [entry for entry in REGISTERED if entry.provider.startswith("medzoo.")]


def test_every_builtin_component_declares_its_description_once_at_registration():
    for entry in builtin_registrations():
        assert entry.description and "\n" not in entry.description, (entry.kind, entry.name)
        assert all(isinstance(hub_id, str) and "/" in hub_id for hub_id in entry.hub_ids), entry.name


def test_the_paper_components_declare_their_hub_ids_and_licences():
    clip = components().get("vision_encoder", "clip")
    assert "openai/clip-vit-large-patch14-336" in clip.hub_ids and clip.licence == "MIT"
    assert components().get("language_model", "mistral").licence == "Apache-2.0"
    assert components().get("benchmark", "vqa-rad").hub_ids == ("flaviagiammarino/vqa-rad",)


@pytest.mark.parametrize(
    ("info", "expected"),
    [
        ({"description": 3}, r"registration key 'description': expected a string, got int 3"),
        ({"hub_ids": "a/b"}, r"registration key 'hub_ids': expected a list of strings, got str 'a/b'"),
        ({"hub_ids": ["a/b", 1]}, r"registration key 'hub_ids': expected a list of strings"),
        ({"licence": ["MIT"]}, r"registration key 'licence': expected a string, got list"),
        ({"tiny": [1]}, r"registration key 'tiny': expected a mapping, got list"),
    ],
)
def test_registration_info_errors_name_the_plugin_and_key(info, expected):
    from medzoo.core.errors import PluginError
    from medzoo.core.plugin_system.registry import ComponentRegistry

    with pytest.raises(PluginError, match=rf"^my-plugin: connector 'c': {expected}") as raised:
        ComponentRegistry().add("connector", "c", object, "my-plugin", **info)
    assert "\n" not in str(raised.value)


def test_a_tiny_config_is_given_once():
    from medzoo.core.errors import PluginError
    from medzoo.core.plugin_system.registry import ComponentRegistry

    clip = components().get("vision_encoder", "clip").factory
    with pytest.raises(PluginError, match=r"^p: vision_encoder 'v': registration key 'tiny': .*give it once"):
        ComponentRegistry().add("vision_encoder", "v", clip, "p", tiny={"config": {}})


def test_concrete_names_list_a_family_by_its_examples():
    from medzoo.core.errors import PluginError
    from medzoo.core.plugin_system.registry import ComponentRegistry
    from medzoo.testing import concrete_names

    connectors = concrete_names("connector")
    assert "mlp2x_gelu" in connectors and "mlpnx_gelu" not in connectors and "linear" in connectors
    assert concrete_names("tuning") == components().names("tuning")
    registry = ComponentRegistry()
    registry.add("connector", "famx", object, "p", pattern=r"fam(?P<n>\d+)x")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("medzoo.testing.registered.components", lambda: registry)
        with pytest.raises(PluginError, match=r"^connector family 'famx' registers no examples"):
            concrete_names("connector")


def test_hub_ids_are_kept_as_tuples():
    from medzoo.core.plugin_system.registry import ComponentRegistry

    registry = ComponentRegistry()
    registry.add("connector", "c", object, "p", hub_ids=["a/b"])
    assert registry.get("connector", "c").hub_ids == ("a/b",)


@pytest.mark.parametrize("variant", CATALOG.variants, ids=lambda v: v.name)
def test_every_variant_recipe_exists_and_loads(variant):
    if variant.recipe is None:
        assert variant.weights, "a variant without a recipe must have published weights"
        return
    assert (recipes_dir() / f"{variant.recipe}.yaml").is_file()
    config = load_recipe(variant.recipe).config
    assert config.name == variant.recipe


@pytest.mark.parametrize("variant", [v for v in CATALOG.variants if v.recipe], ids=lambda v: v.name)
def test_a_variant_with_a_recipe_takes_its_description_and_citation_from_the_recipe(variant):
    config = load_recipe(variant.recipe).config
    assert variant.description and (variant.description, variant.citation) == (config.description, config.citation)
    raw = yaml.safe_load((Path(CATALOG.path)).read_text(encoding="utf-8"))
    entry = next(item for item in raw["variants"] if item["name"] == variant.name)
    assert "description" not in entry and "citation" not in entry  # written once, in the recipe


def test_every_shipped_recipe_is_a_variant():
    shipped = {path.stem for path in recipes_dir().glob("*.yaml")}
    named = {variant.recipe for variant in CATALOG.variants}
    assert shipped - named == set()


def test_published_weights_of_the_paper_models():
    v15 = CATALOG.variant("llava-med-v1.5").weights[0]
    assert (v15.source, v15.format) == ("microsoft/llava-med-v1.5-mistral-7b", "llava-med-v1.5")
    v10 = CATALOG.variant("llava-med-v1.0").weights[0]
    assert (v10.source, v10.format, v10.merged_format) == ("microsoft/llava-med-7b-delta", "delta", "llava-med-v1.0")
    assert v10.base == "huggyllama/llama-7b"


# ---- every component from its tiny config -------------------------------------------------------------------
@pytest.fixture(scope="module")
def synth_root(synthetic_data) -> Path:
    return synthetic_data(seed=3, train=10, val=5, test=10)


def substitute(value: Any, root: Path) -> Any:
    if isinstance(value, str):
        return value.replace("{synth}", str(root))
    if isinstance(value, dict):
        return {key: substitute(item, root) for key, item in value.items()}
    if isinstance(value, list):
        return [substitute(item, root) for item in value]
    return value


def build_vision(entry: Registration, factory, tiny: dict) -> None:
    encoder = factory.from_config(tiny["config"], **tiny.get("options", {}))
    channels = encoder.input_channels  # a fused pair takes both towers' pixels: 6
    with torch.no_grad():
        features = encoder(torch.rand(2, channels, encoder.image_size, encoder.image_size))
    assert features.shape == (2, encoder.num_tokens, encoder.hidden_size)


def build_connector(entry: Registration, factory, tiny: dict) -> None:
    if "name" in tiny:  # a family: one of its members
        factory = components().get("connector", tiny["name"]).factory
    vision_dim, tokens = 32, 16
    language_dim = vision_dim if entry.info.get("preserves_dim") else 64
    connector = factory(vision_dim, language_dim, tokens, **tiny.get("options", {}))
    output = connector(torch.rand(2, tokens, vision_dim))
    assert output.shape == (2, connector.num_output_tokens, language_dim)


def build_language(entry: Registration, factory, tiny: dict) -> None:
    language = factory.from_config(tiny["config"], **tiny.get("options", {}))
    ids = language.tokenizer("A chest radiograph.", return_tensors="pt").input_ids
    with torch.no_grad():
        logits = language(input_ids=ids).logits
    assert logits.shape[:2] == ids.shape and torch.isfinite(logits).all()


def build_template(entry: Registration, factory, tiny: dict) -> None:
    template = factory() if isinstance(factory, type) else factory
    messages = [Message("user", "<image>\nWhat is shown?"), Message("assistant", "A chest radiograph.")]
    rendered = template.render(messages, eos_token="</s>")
    targets = "".join(rendered.text[start:end] for start, end in rendered.target_spans)
    assert "A chest radiograph." in targets and "What is shown?" not in targets


class _Stack(torch.nn.Module):
    """Three blocks in a ModuleList: a module whose top layers partial tuning can choose."""

    def __init__(self) -> None:
        super().__init__()
        self.layers = torch.nn.ModuleList(torch.nn.Linear(8, 8) for _ in range(3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            x = layer(x)
        return x


def build_tuning(entry: Registration, factory, tiny: dict) -> None:
    """What the TuningStrategy interface promises, for any strategy: base weights kept under their names, and
    either adapters (new tensors, the only ones trained, merged away again) or a choice among the module's own.
    A strategy that refuses this machine (``check``: QLoRA without a 4-bit backend) must say so in one line; one
    that refuses the connector (partial tuning needs a layer stack) is tried on a stack of layers instead."""
    from medzoo.core.errors import RecipeError
    from medzoo.plugins.connectors.mlp import MlpGeluConnector

    strategy = factory(**tiny.get("options", {}))
    try:
        strategy.check("language", torch.device("cpu"))  # the device these tests build on
    except RecipeError as refusal:
        assert "\n" not in str(refusal) and str(refusal), refusal
        return
    try:
        strategy.check("connector", torch.device("cpu"))
        module, module_name, out_width = MlpGeluConnector(8, 16, 4, depth=2), "connector", 16
    except RecipeError:
        module, module_name, out_width = _Stack(), "language", 8
    base = dict(module.state_dict())
    module = strategy.apply(module, module_name) or module
    trainable = [name for name, parameter in module.named_parameters() if parameter.requires_grad]
    assert strategy.base_state_dict(module).keys() == base.keys()
    if strategy.has_adapters(module):
        assert trainable and not set(trainable) & set(base), trainable
    else:
        assert {name for name, _ in module.named_parameters()} == set(base) and set(trainable) <= set(base)
    output = module(torch.rand(1, 4, 8))
    assert output.requires_grad == bool(trainable)
    if trainable:
        output.sum().backward()
    for name, parameter in module.named_parameters():
        assert (parameter.grad is not None) == parameter.requires_grad, name
    merged = strategy.merge_adapters(module)
    assert {name for name, _ in merged.named_parameters()} == set(base)
    assert merged(torch.rand(1, 4, 8)).shape == (1, 4, out_width)


def build_dataset(entry: Registration, factory, tiny: dict) -> None:
    records, report = factory(**tiny.get("options", {})).read(tiny["path"], tiny.get("image_root"), "error")
    assert records and all(record.messages for record in records)


def build_curriculum(entry: Registration, factory, tiny: dict) -> None:
    stages = load_recipe("llava-med-v1.0").config.stages
    planned = factory(**tiny.get("options", {})).plan([stage.copy() for stage in stages])
    assert planned and {stage.role for stage in planned} <= set(factory.roles)


def build_benchmark(entry: Registration, factory, tiny: dict) -> None:
    benchmark = factory(**tiny.get("options", {}))
    items = benchmark.load(tiny.get("path"), tiny.get("image_root"))
    assert items and all(item.image is not None and Path(item.image).is_file() for item in items)
    assert "<image>" in benchmark.prompt(items[0])
    metrics = benchmark.score({item.question_id: item.answer for item in items}, items)
    headline = entry.info["headline_metrics"]
    assert headline and all(metrics[name] == pytest.approx(100.0) for name in headline), metrics


def build_backend(entry: Registration, factory, tiny: dict) -> None:
    backend = factory(tiny["model"], **tiny.get("options", {}))
    assert isinstance(backend, InstructBackend) and backend.model == tiny["model"]


def build_optimizer(entry: Registration, factory, tiny: dict) -> None:
    module = torch.nn.Linear(4, 1)
    optimizer = factory([{"params": module.parameters()}], lr=0.01, weight_decay=0.0, **tiny.get("options", {}))
    before = module.weight.detach().clone()
    module(torch.rand(2, 4)).sum().backward()
    optimizer.step()
    assert not torch.equal(before, module.weight), f"optimizer {entry.name!r} did not move the weights"


def build_lr_schedule(entry: Registration, factory, tiny: dict) -> None:
    optimizer = torch.optim.SGD(torch.nn.Linear(4, 1).parameters(), lr=0.1)
    schedule = factory(optimizer, warmup_steps=1, total_steps=4, **tiny.get("options", {}))
    for _ in range(4):
        optimizer.step()
        schedule.step()
    assert all(group["lr"] >= 0 for group in optimizer.param_groups)


def build_objective(entry: Registration, factory, tiny: dict) -> None:
    from medzoo.core.inference import processor_for
    from medzoo.core.interfaces.dataset import Record
    from medzoo.core.interfaces.preference import PreferenceRecord
    from medzoo.core.model.build import build_model
    from medzoo.testing import TINY_MODEL

    objective = factory(**tiny.get("options", {}))
    model = build_model(TINY_MODEL)
    prompt = [Message("user", "What is shown?")]
    if objective.records == "preference":
        records = [PreferenceRecord(f"p{i}", prompt, chosen="A chest radiograph.", rejected="A knee.") for i in range(2)]
    else:
        records = [Record(f"c{i}", [*prompt, Message("assistant", "A chest radiograph.")]) for i in range(2)]
    samples = [objective.encode(processor_for(model), record, 64) for record in records]
    normaliser = None if objective.generates_rollouts else objective.normaliser(samples)
    if objective.generates_rollouts:  # the samples are prompts: roll them out with the engine, then train on that
        from medzoo.core.training.engine_rollouts import EngineRollouts

        requests = objective.rollout_requests(samples, [1, 2], 64)
        completions = (objective.rollout_backend(None) or EngineRollouts()).generate(model, requests)
        samples, _ = objective.rollout_rows(samples, completions, lambda tensor: tensor)
        normaliser = objective.rollout_normaliser([row.completion_tokens for row in samples])
        model.train()
    batch = objective.collate(samples, [None] * len(samples), model.tokenizer.pad_token_id)
    reference = objective.reference_values(model, batch) if objective.needs_reference else None
    result = objective.loss(model, batch, normaliser, reference=reference)
    result.loss.backward()
    assert torch.isfinite(result.loss) and all(torch.isfinite(torch.as_tensor(v)) for v in result.metrics.values())
    assert any(parameter.grad is not None for parameter in model.parameters())


def build_reward(entry: Registration, factory, tiny: dict) -> None:
    from medzoo.core.interfaces.reward import Reward, RewardContext

    reward = factory(**tiny.get("options", {}))
    assert isinstance(reward, Reward) and reward.describe()["name"] == entry.name
    scores = {}
    for side in ("right", "wrong"):
        case = dict(tiny[side])
        completion = case.pop("completion")
        scores[side] = reward.score(completion, RewardContext(**{**tiny["context"], **case}))
    assert scores["right"] > scores["wrong"], scores


BUILDERS = {
    "vision_encoder": build_vision,
    "connector": build_connector,
    "language_model": build_language,
    "template": build_template,
    "tuning": build_tuning,
    "dataset": build_dataset,
    "curriculum": build_curriculum,
    "benchmark": build_benchmark,
    "instruct_backend": build_backend,
    "optimizer": build_optimizer,
    "lr_schedule": build_lr_schedule,
    "objective": build_objective,
    "reward": build_reward,
}


@pytest.mark.parametrize("entry", REGISTERED, ids=lambda e: f"{e.kind}-{e.name}")
def test_component_builds_from_its_tiny_config(entry, synth_root):
    torch.manual_seed(0)
    BUILDERS[entry.kind](entry, entry.factory, substitute(entry.tiny, synth_root))


# ---- the loader's errors ------------------------------------------------------------------------------------
GOOD_VARIANT = {"name": "v", "recipe": "tiny"}


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ({"variant": [GOOD_VARIANT]}, r"variant: unknown key \(did you mean \"variants\"\?\)"),
        ({"components": []}, r"components: unknown key; expected one of version, variants"),
        ({"variants": [{**GOOD_VARIANT, "recipe": 3}]}, r"variants\[0\]\.recipe: expected a string, got int 3"),
        ({"variants": [{**GOOD_VARIANT, "weights": [{"source": "a/b", "format": "delta",
                                                     "merged_format": "llava-med-v1.0"}]}]},
         r"variants\[0\]\.weights\[0\]\.base: missing; delta weights need the base model"),
        ({"variants": [{**GOOD_VARIANT, "weights": [{"source": "a/b", "format": "llava-med-v15"}]}]},
         r"variants\[0\]\.weights\[0\]\.format: 'llava-med-v15' is not allowed \(did you mean \"llava-med-v1.5\"\?\)"),
        ({"variants": [GOOD_VARIANT, GOOD_VARIANT]}, r"variants\[1\]: duplicate entry 'v'"),
        ({"variants": [{"name": "w", "recipe": None}]}, r"variants\[0\]: 'w' has neither a recipe nor weights"),
        ({"version": 2}, r"version: 2 is not supported; expected 1"),
        ({"variants": [{"recipe": "tiny"}]}, r"variants\[0\]\.name: missing; expected a string"),
        ({"variants": [{**GOOD_VARIANT, "citation": "x"}]},
         r"variants\[0\]\.citation: given by recipe 'tiny'; expected it there only"),
    ],
)
def test_catalogue_errors_name_the_file_and_key(tmp_path, data, expected):
    path = tmp_path / "registry.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(CatalogError, match=rf"^{path}: {expected}") as raised:
        load_catalog(path)
    assert "\n" not in str(raised.value)


def test_catalogue_yaml_syntax_error_names_the_line(tmp_path):
    path = tmp_path / "registry.yaml"
    path.write_text("variants:\n  - name: [unclosed\n")
    with pytest.raises(CatalogError, match=rf"^{path} \(line \d+, column \d+\): YAML syntax error"):
        load_catalog(path)


def test_unknown_variant_suggests_the_close_name():
    with pytest.raises(CatalogError, match=r"'llava-med-v15' is not a variant .*did you mean \"llava-med-v1.5\""):
        CATALOG.variant("llava-med-v15")


# ---- the commands -------------------------------------------------------------------------------------------
def test_plugins_command_lists_every_registered_component():
    result = CliRunner().invoke(cli, ["plugins", "--json"])
    assert result.exit_code == 0, result.output
    listed = {(row["kind"], row["name"], row["provider"]) for row in json.loads(result.output)["components"]}
    assert listed == {(entry.kind, entry.name, entry.provider) for entry in REGISTERED}
    table = CliRunner().invoke(cli, ["plugins"]).output
    assert any(line.split()[:3] == ["connector", "mlpnx_gelu", "medzoo.connectors"] for line in table.splitlines())


def test_zoo_command_prints_the_catalogue():
    result = CliRunner().invoke(cli, ["zoo", "--json"])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.output)
    assert [v["name"] for v in payload["variants"]] == [v.name for v in CATALOG.variants]
    assert [(c["kind"], c["plugin"]) for c in payload["components"]] == [(e.kind, e.name) for e in REGISTERED]
    mistral = next(c for c in payload["components"] if c["plugin"] == "mistral")
    assert mistral["hub_ids"] == ["mistralai/Mistral-7B-Instruct-v0.2"] and mistral["licence"] == "Apache-2.0"
    table = CliRunner().invoke(cli, ["zoo"]).output
    assert "microsoft/llava-med-v1.5-mistral-7b (format llava-med-v1.5)" in table
    assert "microsoft/llava-med-7b-delta (delta on huggyllama/llama-7b)" in table
    assert "[flaviagiammarino/vqa-rad] (licence: CC0-1.0)" in table
