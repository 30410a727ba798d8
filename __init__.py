"""medzoo: a plugin-based model zoo for biomedical vision-language assistants.

``PUBLIC_API`` is the whole API a plugin needs (``from medzoo import hookimpl, VisionEncoder, ...``);
``USER_API`` the Python API for using models (``medzoo.load(...).ask(image, question)``, ``medzoo.train``,
``medzoo.evaluate``, ``medzoo.score``, ``medzoo.recipe``; docs/python-api.md). Every name resolves on first use,
so ``import medzoo`` stays cheap (torch is imported only by what needs it).
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

#: public name -> the core module that defines it
PUBLIC_API: dict[str, str] = {
    # the plugin system
    "hookimpl": "medzoo.core.plugin_system.hookspecs",
    "Register": "medzoo.core.plugin_system.hookspecs",
    "components": "medzoo.core.plugin_system.manager",
    "register_plugin": "medzoo.core.plugin_system.manager",
    "unregister_plugin": "medzoo.core.plugin_system.manager",
    # component interfaces
    "Buildable": "medzoo.core.interfaces.buildable",
    "VisionEncoder": "medzoo.core.interfaces.vision_encoder",
    "FeatureSelect": "medzoo.core.interfaces.vision_encoder",
    "Connector": "medzoo.core.interfaces.connector",
    "LanguageModel": "medzoo.core.interfaces.language_model",
    "ConversationTemplate": "medzoo.core.interfaces.conversation",
    "Message": "medzoo.core.interfaces.conversation",
    "RenderedConversation": "medzoo.core.interfaces.conversation",
    "TextBuilder": "medzoo.core.interfaces.conversation",
    "IMAGE_PLACEHOLDER": "medzoo.core.interfaces.conversation",
    "DatasetReader": "medzoo.core.interfaces.dataset",
    "Record": "medzoo.core.interfaces.dataset",
    "LoadReport": "medzoo.core.interfaces.dataset",
    "BadRecord": "medzoo.core.interfaces.dataset",
    "Curriculum": "medzoo.core.interfaces.curriculum",
    "TuningStrategy": "medzoo.core.interfaces.tuning",
    "OptimizerFactory": "medzoo.core.interfaces.optimizer",
    "LRScheduleFactory": "medzoo.core.interfaces.lr_schedule",
    "Benchmark": "medzoo.core.interfaces.benchmark",
    "BenchmarkItem": "medzoo.core.interfaces.benchmark",
    "InstructBackend": "medzoo.core.interfaces.instruct_backend",
    # helpers a plugin needs
    "blocks_to_run": "medzoo.core.interfaces.vision_encoder",
    "ImageTransform": "medzoo.core.model.image_processing",
    # a data writer replacing a file whole or not at all (synthetic sets)
    "write_atomically": "medzoo.core.files",
    "IMAGE_OPTION_DEFAULTS": "medzoo.core.model.image_processing",
    "image_options": "medzoo.core.model.image_processing",
    "build_image_transform": "medzoo.core.model.image_processing",
    # the registered tuning strategy whose adapters a module carries (a strategy merges another's first)
    "adapter_owner": "medzoo.core.model.adapters",
    # the composed model
    "MultimodalModel": "medzoo.core.model.multimodal",
    "build_model": "medzoo.core.model.build",
    "load_recipe": "medzoo.core.recipes.loading",
    # errors
    "MedzooError": "medzoo.core.errors",
    "PluginError": "medzoo.core.errors",
    "RecipeError": "medzoo.core.errors",
    "DataError": "medzoo.core.errors",
    "TrainingError": "medzoo.core.errors",
    "did_you_mean": "medzoo.core.errors",
}

#: public name -> the module of the Python API that defines it
USER_API: dict[str, str] = {
    name: "medzoo.app.api" for name in ("load", "Model", "Chat", "train", "evaluate", "score", "recipe")
}

__all__ = sorted([*PUBLIC_API, *USER_API])


def __getattr__(name: str) -> Any:
    module = PUBLIC_API.get(name) or USER_API.get(name)
    if module is None:
        raise AttributeError(f"module 'medzoo' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # resolved once
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *PUBLIC_API, *USER_API])
