"""Semantic checks of a loaded recipe: plugin names exist, enumerations hold, stage references resolve."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from medzoo.core.errors import PluginError, RecipeError, did_you_mean
from medzoo.core.interfaces.conversation import IMAGE_PLACEMENTS, LABEL_MASKINGS
from medzoo.core.plugin_system.manager import components
from medzoo.core.recipes.structure import stage_key

CHOICES = {
    "model.image_markup": ("placeholder", "im_start_end"),
    "model.dtype": ("float32", "bfloat16", "float16"),
    "model.attention": ("sdpa", "eager", "flash_attention_2"),
    "data.on_bad_record": ("skip", "error"),
}
STAGE_CHOICES = {
    "precision": ("fp32", "bf16", "fp16"),
    "role": ("alignment", "instruct", "downstream", "custom"),
    "label_masking": LABEL_MASKINGS,
}


def _check_choice(path: Path, key: str, value: Any, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise RecipeError(f"{path}: {key}: {value!r} is not allowed{did_you_mean(value, choices)}; expected one of {', '.join(choices)}")


def _check_plugin(path: Path, key: str, kind: str, name: str) -> None:
    try:
        components().get(kind, name)
    except PluginError as error:
        raise RecipeError(f"{path}: {key}: {error}") from None


def validate_recipe(config: Any, path: Path) -> None:
    for key, choices in CHOICES.items():
        section, leaf = key.split(".")
        _check_choice(path, key, config[section][leaf], choices)
    _check_plugin(path, "model.vision.name", "vision_encoder", config.model.vision.name)
    _check_plugin(path, "model.connector.name", "connector", config.model.connector.name)
    _check_plugin(path, "model.language.name", "language_model", config.model.language.name)
    _check_plugin(path, "model.language.template", "template", config.model.language.template)
    _check_plugin(path, "curriculum.name", "curriculum", config.curriculum.name)
    seen: list[str] = []
    for index, stage in enumerate(config.stages):
        where = stage_key(index, stage)
        if stage.name in seen:
            raise RecipeError(f"{path}: {where}.name: duplicate stage name {stage.name!r}")
        for key, choices in STAGE_CHOICES.items():
            _check_choice(path, f"{where}.{key}", stage[key], choices)
        if stage.init_from is not None and stage.init_from not in seen:
            raise RecipeError(
                f"{path}: {where}.init_from: {stage.init_from!r} is not an earlier stage"
                f"{did_you_mean(stage.init_from, seen)}; expected one of {seen or '(none: this is the first stage)'}"
            )
        if stage.template is not None:
            _check_plugin(path, f"{where}.template", "template", stage.template)
        if stage.image_placement is not None:
            _check_choice(path, f"{where}.image_placement", stage.image_placement, IMAGE_PLACEMENTS)
        for module in ("vision", "connector", "language"):
            _check_plugin(path, f"{where}.tuning.{module}", "tuning", stage.tuning[module])
        for d, dataset in enumerate(stage.datasets):
            _check_plugin(path, f"{where}.datasets[{d}].name", "dataset", dataset.name)
            if dataset.weight < 0:
                raise RecipeError(f"{path}: {where}.datasets[{d}].weight: expected a weight >= 0, got {dataset.weight}")
        if stage.global_batch_size < stage.micro_batch_size:
            raise RecipeError(
                f"{path}: {where}.global_batch_size: {stage.global_batch_size} is smaller than micro_batch_size {stage.micro_batch_size}"
            )
        seen.append(stage.name)
    for index, benchmark in enumerate(config.benchmarks):
        _check_plugin(path, f"benchmarks[{index}].name", "benchmark", benchmark.name)
