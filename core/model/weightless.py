"""A recipe's model built without its weights: every parameter on the ``meta`` device, nothing read but configs
and tokenizers. Composing it runs the model's own checks of what a recipe asks of its shapes (the tiling grid
against the tower's crops, the image-token cap against one crop's tokens, multi-scale features), and the modules
it holds are what tuning strategies check their options against (``TuningStrategy.check_module``), all before
any weights load.

A component built from a config (or its tiny config: ``shrink``) is built from it as usual, on ``meta``; one
loaded from pretrained weights is built by its class's ``weightless(source, **options)``. A class that cannot
say its architecture without loading (``weightless`` returns ``None``) leaves the model unknown here, and so
does anything but a ``RecipeError`` on the way (a source that cannot be read, an architecture that cannot be
built on ``meta``): the real build then runs the same checks and reports the rest in its own words.
"""

from __future__ import annotations

import copy
from typing import Any

import torch

from medzoo.core.errors import RecipeError
from medzoo.core.model.build import compose
from medzoo.core.model.components import as_dict
from medzoo.core.model.multimodal import MultimodalModel
from medzoo.core.plugin_system.manager import components


class UnknownWithoutWeights(Exception):
    """A component whose architecture only loading its weights tells."""


def weightless(kind: str, spec: dict[str, Any], shrink: bool, **extra: Any) -> Any:
    """The component of ``spec`` as :func:`~medzoo.core.model.components.build_component` builds it, its
    parameters on the meta device and no weights read."""
    cls = components().get(kind, spec["name"]).factory
    options = {**as_dict(spec.get("options")), **extra}
    source = spec.get("pretrained")
    with torch.device("meta"):
        if source and not shrink:
            built = cls.weightless(source, **options)
            if built is None:
                raise UnknownWithoutWeights(f"{kind} {spec['name']!r}")
            return built
        config = spec.get("config") if not (shrink and source) else None
        return cls.from_config(dict(config) if config else cls.tiny_config(), **options)


def weightless_model(model_config: Any, shrink: bool = False) -> MultimodalModel | None:
    """The model ``model_config`` describes, weightless (``None`` where it cannot be built so); a recipe's bad
    shapes raise their one-line ``RecipeError`` here as they would while the weights load."""
    spec = copy.deepcopy(as_dict(model_config))
    try:
        with torch.device("meta"):
            return compose(spec, shrink, weightless)
    except RecipeError:
        raise
    except Exception:  # noqa: BLE001 - unknown here: the real build checks it and says what went wrong
        return None
