"""Building one component from its recipe section: the registered plugin by name, from pretrained weights, a
config or its tiny config (the model composition and the model loading both use it)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf

from medzoo.core.errors import PluginError
from medzoo.core.plugin_system.manager import components


def as_dict(section: Any) -> dict[str, Any]:
    if section is None:
        return {}
    if isinstance(section, DictConfig):
        return OmegaConf.to_container(section, resolve=True)  # type: ignore[return-value]
    return dict(section)


def build_component(kind: str, spec: dict[str, Any], shrink: bool, **extra: Any):
    """Load pretrained weights (hub id or path) or build a random model from ``config`` / the tiny config."""
    registration = components().get(kind, spec["name"])
    cls = registration.factory
    options = {**as_dict(spec.get("options")), **extra}
    source = spec.get("pretrained")
    try:
        if source and not shrink:
            return cls.from_pretrained(source, **options)
        config = spec.get("config") if not (shrink and source) else None
        return cls.from_config(dict(config) if config else cls.tiny_config(), **options)
    except PluginError:
        raise
    except OSError as error:
        where = source or "config"
        raise PluginError(f"{kind} {spec['name']!r}: cannot load {where!r}: {error}".replace("\n", " ")) from error


def build_connector(spec: dict[str, Any], vision_dim: int, language_dim: int, num_input_tokens: int):
    factory = components().get("connector", spec["name"]).factory
    connector = factory(
        vision_dim=vision_dim,
        language_dim=language_dim,
        num_input_tokens=num_input_tokens,
        **as_dict(spec.get("options")),
    )
    source = spec.get("pretrained")
    if source:
        load_module_weights(connector, source, "connector")
    return connector


def load_module_weights(module: torch.nn.Module, source: str, what: str) -> None:
    """Load a safetensors file (or ``<dir>/<what>.safetensors``) into ``module``, strictly."""
    from safetensors.torch import load_file

    path = Path(source)
    if path.is_dir():
        path = path / f"{what}.safetensors"
    if not path.is_file():
        raise PluginError(f"{what}: weights file {str(path)!r} not found (expected a .safetensors file)")
    module.load_state_dict(load_file(str(path)), strict=True)
