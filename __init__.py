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
    # what a vision encoder's / connector's llava_hf_export returns (how llava-hf holds it)
    "LlavaHfTower": "medzoo.core.interfaces.llava_hf",
    "LlavaHfProjector": "medzoo.core.interfaces.llava_hf",
    # vision-tower bases: a tower over one network of blocks, and one over a transformers vision model
    "VisionTowerBase": "medzoo.core.model.vision_tower",
    "TransformersVisionTower": "medzoo.core.model.transformers_vision_tower",
    "TINY_VIT_CONFIG": "medzoo.core.model.vision_tower",  # the tiny ViT shape of every ViT tower's tiny_config
    # helpers a plugin needs
    "blocks_to_run": "medzoo.core.interfaces.vision_encoder",
    "select_tokens": "medzoo.core.model.vision_tower",  # drop the prefix tokens, keep the class token on request
    "require_class_token": "medzoo.core.model.vision_tower",  # cls_patch on a tower without one: RecipeError
    "resolve_dtype": "medzoo.core.dtypes",  # a component's dtype option (None, a name or a torch dtype)
    # reading a transformers vision checkpoint (hub id or folder): one-line PluginErrors naming the file
    "load_vision_model": "medzoo.core.model.transformers_vision_files",
    "read_model_config": "medzoo.core.model.transformers_vision_files",
    "read_preprocessor": "medzoo.core.model.transformers_vision_files",
    "image_statistics": "medzoo.core.model.transformers_vision_files",
    "square_side": "medzoo.core.model.transformers_vision_files",
    # reading files a plugin loads: one-line errors (of the class passed in) naming the file
    "first_line": "medzoo.core.file_checks",  # an exception's first line, for a one-line message
    "read_json": "medzoo.core.file_checks",  # JSON of an expected type; unreadable, non-UTF-8, invalid: one line
    "check_safetensors": "medzoo.core.file_checks",  # a safetensors file's header and length are whole
    "safetensors_shapes": "medzoo.core.file_checks",  # tensor name -> shape, read from the header only
    "shape_mismatch": "medzoo.core.file_checks",  # the first tensor whose shape differs from the expected one
    "ImageTransform": "medzoo.core.model.image_processing",
    "IMAGE_OPTION_DEFAULTS": "medzoo.core.model.image_processing",
    "image_options": "medzoo.core.model.image_processing",
    "build_image_transform": "medzoo.core.model.image_processing",
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
    "ExportRefused": "medzoo.core.errors",  # a component's llava_hf_export: the format cannot hold it
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
