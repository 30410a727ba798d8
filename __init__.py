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
    # what a benchmark's load sets in question_counts: questions in the file, skipped and left out
    "InstructBackend": "medzoo.core.interfaces.instruct_backend",
    # what a vision encoder's / connector's llava_hf_export returns (how llava-hf holds it)
    "LlavaHfTower": "medzoo.core.interfaces.llava_hf",
    "LlavaHfProjector": "medzoo.core.interfaces.llava_hf",
    # vision-tower bases: a tower over one network of blocks, and one over a transformers vision model
    "VisionTowerBase": "medzoo.core.model.vision_tower",
    "TransformersVisionTower": "medzoo.core.model.transformers_vision_tower",
    "TINY_VIT_CONFIG": "medzoo.core.model.vision_tower",  # the tiny ViT shape of every ViT tower's tiny_config
    "Objective": "medzoo.core.interfaces.objective",
    "ObjectiveLoss": "medzoo.core.interfaces.objective",
    "RecordRejected": "medzoo.core.interfaces.objective",
    "PREFERENCE_RECORDS": "medzoo.core.interfaces.objective",  # the record kind a preference dataset registers
    "PreferenceRecord": "medzoo.core.interfaces.preference",
    "Reward": "medzoo.core.interfaces.reward",  # a verifiable reward of one generated answer (GRPO)
    "RewardContext": "medzoo.core.interfaces.reward",  # what a reward knows of the prompt: reference, metadata
    "RolloutBackend": "medzoo.core.interfaces.rollout_backend",  # where rollouts are generated (engine, vLLM)
    "RolloutRequest": "medzoo.core.interfaces.rollout_backend",  # G seeded completions wanted for one prompt
    "RolloutCompletion": "medzoo.core.interfaces.rollout_backend",  # one sampled completion: token ids, text
    "EngineRollouts": "medzoo.core.training.engine_rollouts",  # rollouts from medzoo's engine (the default)
    # a model's tensors under llava-hf's names (the hf-llava export's mapping; vLLM's weight sync)
    "llava_hf_weights": "medzoo.core.model.llava_hf_weights",
    "processor_for": "medzoo.core.inference.processing",  # conversations -> token ids as the model is prompted
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
    "ImageTransform": "medzoo.core.model.image_processing",
    # a data writer replacing a file whole or not at all (synthetic sets)
    "IMAGE_OPTION_DEFAULTS": "medzoo.core.model.image_processing",
    "image_options": "medzoo.core.model.image_processing",
    "build_image_transform": "medzoo.core.model.image_processing",
    "read_text_file": "medzoo.core.file_io.text_files",  # the one decoding rule: UTF-8 or a line naming file, line, offset
    "iter_text_lines": "medzoo.core.file_io.text_files",  # the same rule, line by line (JSON-lines files)
    "decode_utf8": "medzoo.core.file_io.text_files",  # the same rule for bytes already read
    "write_atomically": "medzoo.core.atomic_writes",  # a file written whole or not at all (temporary file, fsync, rename)
    # what objectives build on: encoded samples, batches, log-probabilities of labelled tokens
    "EncodedSample": "medzoo.core.model.processor",
    "IGNORE_INDEX": "medzoo.core.model.processor",
    "collate": "medzoo.core.model.processor",
    "summed_loss": "medzoo.core.training.loss",
    "token_log_probs": "medzoo.core.training.log_probs",
    "row_sums": "medzoo.core.training.log_probs",
    "row_counts": "medzoo.core.training.log_probs",
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
    # what the built-in plugins need beyond the interfaces (a third-party plugin may use the same)
    "InteropError": "medzoo.core.errors",  # an import, export or merge cannot be done as asked
    "ExportRefused": "medzoo.core.errors",  # a component cannot be written in an export's format
    "BadRecordPolicy": "medzoo.core.interfaces.dataset",  # "skip" or "error": what a reader does with a bad record
    "split_system": "medzoo.core.interfaces.conversation",  # a conversation's leading system message and the rest
    "template_for": "medzoo.core.plugin_system.template_lookup",  # a registered template bound to a tokenizer
    "ParamGroups": "medzoo.core.interfaces.optimizer",  # the parameter groups an optimizer factory receives
    "adapter_owner": "medzoo.core.model.adapters",  # which registered tuning strategy's adapters a module carries
    "set_activation_checkpointing": "medzoo.core.model.activation_checkpointing",  # on a transformers model
    "DTYPE_NAMES": "medzoo.core.dtypes",  # the dtype names a recipe may give
    "PRECISIONS": "medzoo.core.dtypes",  # the mixed-precision names a recipe may give
    "dtype_name": "medzoo.core.dtypes",  # a torch dtype's recipe name
    "torch_dtype": "medzoo.core.dtypes",  # a recipe's dtype name as a torch dtype
    # reading files so a damaged one is a one-line error naming the file
    "first_line": "medzoo.core.checked_reads",
    "json_type": "medzoo.core.checked_reads",
    "read_json": "medzoo.core.checked_reads",
    "check_safetensors": "medzoo.core.checked_reads",
    "read_safetensors": "medzoo.core.checked_reads",
    "safetensors_shapes": "medzoo.core.checked_reads",
    "shape_mismatch": "medzoo.core.checked_reads",
    "check_checkpoint_folder": "medzoo.core.checked_reads",
    # evaluation: what benchmarks, contenders and instruction backends exchange with medzoo
    "QuestionCounts": "medzoo.core.evaluation.question_counts",  # a benchmark's questions: asked, skipped by reason
    "Answerer": "medzoo.core.interfaces.answerer",  # what a contender factory returns
    "check_multi_image_policy": "medzoo.core.evaluation.multi_image",  # a contender's multi_image option checked
    "PromptChoice": "medzoo.core.interfaces.answerer",  # a contender's answer to "which prompt do you use?"
    "ChatRequest": "medzoo.core.inference",  # one chat to answer: messages and images
    "SamplingSettings": "medzoo.core.inference",  # decoding settings of a request
    "weights_fingerprint": "medzoo.core.evaluation.answer_meta",  # a hash of a model's weights, for answer files
    "BackendReply": "medzoo.core.interfaces.instruct_backend",  # an instruction backend's answer
    "BackendError": "medzoo.core.interfaces.instruct_backend",  # a backend failure retrying will not fix
    "TransientBackendError": "medzoo.core.interfaces.instruct_backend",  # a backend failure worth retrying
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
