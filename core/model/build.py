"""Model composition: build a MultimodalModel from a recipe's ``model`` section, its components resolved by name
(:mod:`components`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from medzoo.core.dtypes import torch_dtype
from medzoo.core.model.anyres import check_grid_early, shrunk_grid
from medzoo.core.model.components import (
    as_dict,
    build_component,
    build_connector,
    connector_input_width,
    wants_newline,
)
from medzoo.core.model.multimodal import MultimodalModel
from medzoo.core.model.multiscale import check_square_tokens, multiscale_for, scaled_transform
from medzoo.core.plugin_system.manager import components


def shrunk_to_width(language_spec: dict[str, Any], width: int) -> dict[str, Any]:
    """The language model's tiny config at the vision tower's width, so a width-preserving connector
    (``identity``) still composes under ``shrink``."""
    factory = components().get("language_model", language_spec["name"]).factory
    return {**language_spec, "pretrained": None, "config": {**factory.tiny_config(), "hidden_size": width}}


def build_model(model_config: Any, shrink: bool = False) -> MultimodalModel:
    """Compose encoder + connector + language model as the recipe's ``model`` section says."""
    spec = as_dict(model_config)
    return compose(spec, shrink, build_component).to(torch_dtype(spec.get("dtype", "float32")))


def compose(spec: dict[str, Any], shrink: bool, build: Callable[..., Any]) -> MultimodalModel:
    """The model of ``spec``, each component made by ``build(kind, component_spec, shrink, **options)`` (the
    connector's pretrained weights loaded unless ``build`` is :func:`~medzoo.core.model.weightless.weightless`)."""
    vision = build("vision_encoder", spec["vision"], shrink)
    if shrink and spec["vision"].get("pretrained") and (spec["vision"].get("options") or {}).get(
            "image_grid_pinpoints") is not None:  # the tiny tower's crops are smaller: the same grid in crops
        options = as_dict(spec["vision"]["options"])
        options["image_grid_pinpoints"] = shrunk_grid(options["image_grid_pinpoints"], vision.image_size)
        spec["vision"] = {**spec["vision"], "options": options}
    check_grid_early(as_dict(spec["vision"].get("options")), vision.image_size)  # before the language model loads
    scales = multiscale_for(spec)  # the scales, checked before the language model loads
    if scales:
        check_square_tokens(vision.num_tokens, scales)
        scaled_transform(vision.transform, scales)
    language_spec = spec["language"]
    if shrink and components().get("connector", spec["connector"]["name"]).info.get("preserves_dim"):
        language_spec = shrunk_to_width(language_spec, connector_input_width(spec, vision.hidden_size))
    language = build(
        "language_model",
        language_spec,
        shrink,
        template=language_spec.get("template"),
        attention=spec.get("attention", "sdpa"),
    )
    connector_spec = spec["connector"] if build is build_component else {**spec["connector"], "pretrained": None}
    connector = build_connector(
        connector_spec, connector_input_width(spec, vision.hidden_size), language.hidden_size, vision.num_tokens,
        wants_newline(spec),
    )
    model = MultimodalModel(vision, connector, language, spec.get("image_markup", "placeholder"), spec=spec)
    model.spec["shrink"] = shrink
    return model
