"""Adapters are saved, loaded and merged through the tuning strategy that owns them, whichever it is."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from medzoo import TuningStrategy, hookimpl, register_plugin, unregister_plugin
from medzoo.core.model.adapters import adapted_modules, merge_adapters
from medzoo.core.model.build import build_model
from medzoo.core.model.multimodal import MultimodalModel


class ScaleAdapter(nn.Module):
    """A toy adapter: multiplies a Linear layer's output by a learnt per-feature scale."""

    def __init__(self, base: nn.Linear) -> None:
        super().__init__()
        self.base = base
        self.scale = nn.Parameter(torch.ones(base.out_features))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.base(x) * self.scale


class ScaleTuning(TuningStrategy):
    """A third-party adapter strategy: wraps the connector's Linear layers."""

    name = "scale"

    def apply(self, module: nn.Module, module_name: str) -> nn.Module:
        module.requires_grad_(False)
        for name, child in list(module.named_modules()):
            if isinstance(child, nn.Linear) and not isinstance(_parent(module, name), ScaleAdapter):
                _replace(module, name, ScaleAdapter(child))
        return module

    def has_adapters(self, module: nn.Module) -> bool:
        return any(isinstance(child, ScaleAdapter) for child in module.modules())

    def base_state_dict(self, module: nn.Module) -> dict[str, torch.Tensor]:
        return {k.replace(".base.", "."): v for k, v in module.state_dict().items() if not k.endswith(".scale")}

    def save_adapters(self, module, directory, module_name, base_model) -> dict:
        directory.mkdir(parents=True, exist_ok=True)
        scales = {name: child.scale.tolist() for name, child in module.named_modules() if isinstance(child, ScaleAdapter)}
        (directory / "scales.json").write_text(json.dumps(scales))
        return {"layers": len(scales)}

    def load_adapters(self, module, directory, module_name):
        self.apply(module, module_name)
        for name, values in json.loads((directory / "scales.json").read_text()).items():
            module.get_submodule(name).scale.data = torch.tensor(values)
        return module

    def merge_adapters(self, module: nn.Module) -> nn.Module:
        for name, child in list(module.named_modules()):
            if isinstance(child, ScaleAdapter):
                child.base.weight.data *= child.scale.data[:, None]
                if child.base.bias is not None:
                    child.base.bias.data *= child.scale.data
                _replace(module, name, child.base)
        return module


def _parent(root: nn.Module, name: str) -> nn.Module:
    parent_name = name.rpartition(".")[0]
    return root.get_submodule(parent_name) if parent_name else root


def _replace(root: nn.Module, name: str, new: nn.Module) -> None:
    setattr(_parent(root, name), name.rpartition(".")[2], new)


class ScalePlugin:
    @hookimpl
    def register_tuning_strategies(self, register):
        register("scale", ScaleTuning, description="per-feature output scales (test plugin)")


@pytest.fixture
def scale_plugin():
    plugin = ScalePlugin()
    register_plugin(plugin, name="scale-test")
    yield
    unregister_plugin(plugin)


def _connector_output(model: MultimodalModel) -> torch.Tensor:
    torch.manual_seed(1)
    features = torch.randn(1, model.vision.num_tokens, model.vision.hidden_size)
    with torch.no_grad():
        return model.connector(features)


def test_a_third_party_strategy_round_trips_and_merges(scale_plugin, tiny_model_spec, tmp_path):
    torch.manual_seed(0)
    model = build_model(tiny_model_spec)
    ScaleTuning().apply(model.connector, "connector")
    for module in model.connector.modules():
        if isinstance(module, ScaleAdapter):
            module.scale.data.uniform_(0.5, 1.5)
    assert set(adapted_modules(model)) == {"connector"}
    expected = _connector_output(model)
    model.trained_modules = {"connector"}
    model.save_pretrained(str(tmp_path / "m"))
    manifest = json.loads((tmp_path / "m" / "medzoo_model.json").read_text())
    assert manifest["adapters"]["connector"]["strategy"] == "scale"

    reloaded = MultimodalModel.from_pretrained(str(tmp_path / "m"))
    assert set(adapted_modules(reloaded)) == {"connector"}
    torch.testing.assert_close(_connector_output(reloaded), expected)
    assert merge_adapters(reloaded) == ["connector"]
    assert adapted_modules(reloaded) == {}
    torch.testing.assert_close(_connector_output(reloaded), expected)


def test_lora_adapters_are_recorded_with_their_strategy(tiny_model_spec, tmp_path):
    from medzoo.plugins.tuning.lora import LoraTuning

    torch.manual_seed(0)
    model = build_model(tiny_model_spec)
    LoraTuning(r=2, alpha=4).apply(model.language.model, "language")
    model.save_pretrained(str(tmp_path / "m"))
    manifest_path = tmp_path / "m" / "medzoo_model.json"
    manifest = json.loads(manifest_path.read_text())
    assert manifest["adapters"]["language"] == {"path": "adapters/language", "strategy": "lora", "r": 2, "alpha": 4}
    # a directory written before the manifest named the strategy still loads (LoRA assumed)
    del manifest["adapters"]["language"]["strategy"]
    manifest_path.write_text(json.dumps(manifest))
    reloaded = MultimodalModel.from_pretrained(str(tmp_path / "m"))
    assert set(adapted_modules(reloaded)) == {"language"}
