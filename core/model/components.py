"""Building one component from its recipe section: the registered plugin by name, from pretrained weights, a
config or its tiny config (the model composition and the model loading both use it)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf

from medzoo.core.errors import PluginError
from medzoo.core.model.anyres import NEWLINE, new_image_newline
from medzoo.core.model.multiscale import multiscale_for
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


def build_connector(
    spec: dict[str, Any], vision_dim: int, language_dim: int, num_input_tokens: int, newline: bool = False
):
    """The connector, with pretrained weights when ``spec`` names them; ``newline`` adds tiling's learned
    ``image_newline`` (fresh: a LLaVA-1.5 projector has none) after those load."""
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
    if newline:
        connector.register_parameter(NEWLINE, new_image_newline(language_dim))
    return connector


def connector_input_width(model_spec: dict[str, Any], vision_width: int) -> int:
    """The width of the features the connector takes: the tower's, times the scales of multi-scale features."""
    scales = multiscale_for(model_spec)
    return vision_width * (len(scales) if scales else 1)


def wants_newline(model_spec: dict[str, Any]) -> bool:
    """Whether the spec tiles its images with LLaVA-NeXT's newline token."""
    options = (model_spec.get("vision") or {}).get("options") or {}
    return options.get("image_grid_pinpoints") is not None and options.get("newline", True) is True


def load_module_weights(module: torch.nn.Module, source: str, what: str) -> None:
    """Load a safetensors file (or ``<dir>/<what>.safetensors``) into ``module``, strictly."""
    from safetensors.torch import load_file

    path = Path(source)
    if path.is_dir():
        path = path / f"{what}.safetensors"
    if not path.is_file():
        raise PluginError(f"{what}: weights file {str(path)!r} not found (expected a .safetensors file)")
    module.load_state_dict(load_file(str(path)), strict=True)
