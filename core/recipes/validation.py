"""The one validation path of a recipe: merged YAML data in, a checked omegaconf config out.

1. ``check_structure`` (structure.py): every key is known, every value has its schema type, nothing required is
   missing; interpolations (``${data.root}``) are left for step 2.
2. ``to_config``: omegaconf merges the data into the schema and resolves interpolations.
3. ``check_semantics``: what needs the resolved values or the plugins: plugin names exist, enumerations hold,
   numbers are in range (``STAGE_RANGES``), stage references resolve, optimizer and schedule options are ones the
   chosen plugins take.

Each step raises a one-line ``RecipeError`` naming the file and the key path.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import InterpolationKeyError, OmegaConfBaseException

from medzoo.core.dtypes import DTYPE_NAMES, PRECISIONS
from medzoo.core.errors import PluginError, RecipeError, did_you_mean
from medzoo.core.interfaces.conversation import IMAGE_PLACEMENTS, LABEL_MASKINGS
from medzoo.core.interfaces.optimizer import keyword_options
from medzoo.core.plugin_system.manager import components
from medzoo.core.recipes.objective_section import objective_spec
from medzoo.core.recipes.schema import OPTIMIZER_PLUGIN_KEYS, TRACKERS, Recipe
from medzoo.core.recipes.structure import check_structure, stage_key

CHOICES = {
    "model.image_markup": ("placeholder", "im_start_end"),
    "model.dtype": DTYPE_NAMES,
    "model.attention": ("sdpa", "eager", "flash_attention_2"),
    "data.on_bad_record": ("skip", "error"),
}
STAGE_CHOICES = {
    "precision": tuple(PRECISIONS),
    "label_masking": LABEL_MASKINGS,
}
#: plugin kind of each model component's name
MODEL_PLUGINS = {"vision": "vision_encoder", "connector": "connector", "language": "language_model"}
#: keyword arguments the trainer itself passes to optimizer and schedule plugins
OPTIMIZER_ARGUMENTS = frozenset({"lr", "weight_decay"})
SCHEDULE_ARGUMENTS = frozenset({"warmup_steps", "total_steps"})


@dataclass(frozen=True)
class Range:
    """The finite numbers from ``low`` to ``high`` (open ends exclude the bound); ``unset``: values that mean
    "not set" (null, or 0 where the trainer reads 0 as off) and are allowed besides."""

    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    integer: bool = False
    unset: tuple[Any, ...] = ()
    #: what an unset value means, for the message
    meaning: str = ""

    def allows(self, value: Any) -> bool:
        if value is None:
            return None in self.unset
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            return False
        if any(value == off for off in self.unset if off is not None):
            return True
        if self.low is not None and (value <= self.low if self.low_open else value < self.low):
            return False
        return self.high is None or (value < self.high if self.high_open else value <= self.high)

    def describe(self) -> str:
        kind = "an integer" if self.integer else "a number"
        if self.low is not None and self.high is not None:
            text = f"{kind} in {'(' if self.low_open else '['}{_number(self.low)}, {_number(self.high)}{')' if self.high_open else ']'}"
        elif self.low is not None:
            text = f"{kind} {'>' if self.low_open else '>='} {_number(self.low)}"
        else:
            text = f"{kind} {'<' if self.high_open else '<='} {_number(self.high)}"
        if self.unset:
            text += f", or {' / '.join('null' if off is None else _number(off) for off in self.unset)}"
        return f"{text} ({self.meaning})" if self.meaning else text


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


POSITIVE = Range(low=0, low_open=True)
NON_NEGATIVE = Range(low=0)
COUNT = Range(low=1, integer=True)
#: allowed values of a stage's numeric keys (relative to the stage); optimizer.betas has its own check
STAGE_RANGES: dict[str, Range] = {
    "optimizer.lr": POSITIVE,
    "optimizer.weight_decay": NON_NEGATIVE,
    "optimizer.momentum": Range(low=0, unset=(None,), meaning="the optimizer's default"),
    "schedule.warmup_ratio": Range(low=0, high=1),
    "epochs": POSITIVE,
    "max_steps": Range(low=1, integer=True, unset=(None, 0), meaning="no step limit: epochs decide"),
    "global_batch_size": COUNT,
    "micro_batch_size": COUNT,
    "max_length": COUNT,
    "seed": Range(low=0, integer=True),
    "save_every_steps": Range(low=1, integer=True, unset=(None, 0), meaning="no checkpoints during the stage"),
    "max_grad_norm": Range(low=0, meaning="0: no clipping"),
}
#: allowed values of a dataset's numeric keys
DATASET_RANGES: dict[str, Range] = {
    "weight": NON_NEGATIVE,
    "limit": Range(low=1, integer=True, unset=(None, 0), meaning="all records"),
}
BETA = Range(low=0, high=1, high_open=True)
#: the modules a stage's tuning and optimizer.module_lr address
TRAINABLE_MODULES = ("vision", "connector", "language")


def validate(data: dict[str, Any], path: Path) -> DictConfig:
    """Run the three steps on ``data`` (read from ``path``); returns the resolved config."""
    check_structure(data, path)
    config = to_config(data, path)
    check_semantics(config, path)
    return config


def to_config(data: dict[str, Any], path: Path) -> DictConfig:
    """``data`` merged into the schema with its interpolations resolved."""
    try:
        config = OmegaConf.merge(OmegaConf.structured(Recipe), data)
        OmegaConf.to_container(config, resolve=True, throw_on_missing=True)
    except OmegaConfBaseException as error:
        raise _omegaconf_error(path, error) from None
    return config


def _omegaconf_error(path: Path, error: OmegaConfBaseException) -> RecipeError:
    """What step 1 cannot see: an interpolation to no key, or an interpolated value of the wrong type."""
    key = str(getattr(error, "full_key", None) or getattr(error, "key", None) or "?")
    message = str(error).splitlines()[0]
    if isinstance(error, InterpolationKeyError):
        reference = message.split("'")[1] if message.count("'") >= 2 else "?"
        known = _key_paths(OmegaConf.to_container(OmegaConf.structured(Recipe)))
        return RecipeError(
            f"{path}: {key}: ${{{reference}}} refers to no key{did_you_mean(reference, known)}; "
            "expected the dotted path of a recipe key such as data.root"
        )
    return RecipeError(f"{path}: {key}: {message}")


def _key_paths(node: Any, prefix: str = "") -> list[str]:
    """Dotted paths of every mapping key (interpolation targets)."""
    if not isinstance(node, dict):
        return []
    paths = []
    for key, value in node.items():
        dotted = f"{prefix}.{key}" if prefix else str(key)
        paths.append(dotted)
        paths.extend(_key_paths(value, dotted))
    return paths


def check_semantics(config: Any, path: Path) -> None:
    for key, choices in CHOICES.items():
        section, leaf = key.split(".")
        _check_choice(path, key, config[section][leaf], choices)
    for module, kind in MODEL_PLUGINS.items():
        _check_plugin(path, f"model.{module}.name", kind, config.model[module].name)
    _check_plugin(path, "model.language.template", "template", config.model.language.template)
    _check_plugin(path, "curriculum.name", "curriculum", config.curriculum.name)
    roles = components().get("curriculum", config.curriculum.name).factory.roles
    seen: list[str] = []
    for index, stage in enumerate(config.stages):
        where = stage_key(index, stage)
        _check_stage(path, where, stage, seen)
        if stage.role not in roles:
            raise RecipeError(f"{path}: {where}.role: {stage.role!r} is not a role of curriculum "
                              f"{config.curriculum.name!r}{did_you_mean(stage.role, roles)}; expected one of "
                              f"{', '.join(roles)}")
        _check_objective(path, where, stage)
        seen.append(stage.name)
    for index, benchmark in enumerate(config.benchmarks):
        _check_plugin(path, f"benchmarks[{index}].name", "benchmark", benchmark.name)
    _check_logging(path, config.logging)


def _check_logging(path: Path, logging: Any) -> None:
    """``trackers``: null, none, one tracker name or a list of them; ``options`` keyed by tracker name."""
    trackers = logging.trackers
    expected = f"{', '.join(TRACKERS)}, a list of them, [] or none (no tracker), or null (tensorboard when installed)"
    if trackers is not None and not isinstance(trackers, str):
        if not OmegaConf.is_list(trackers) and not isinstance(trackers, list):
            raise RecipeError(f"{path}: logging.trackers: {trackers!r} is not allowed; expected {expected}")
        for index, name in enumerate(trackers):
            if name not in TRACKERS:
                raise RecipeError(f"{path}: logging.trackers[{index}]: {name!r} is not a tracker"
                                  f"{did_you_mean(str(name), TRACKERS)}; expected one of {', '.join(TRACKERS)}")
    elif isinstance(trackers, str) and trackers.strip().lower() not in ("none", "", *TRACKERS):
        raise RecipeError(f"{path}: logging.trackers: {trackers!r} is not a tracker{did_you_mean(trackers, TRACKERS)}; "
                          f"expected {expected}")
    _check_range(path, "logging.every_steps", logging.every_steps, COUNT)
    for name in logging.options:
        if name not in TRACKERS:
            raise RecipeError(f"{path}: logging.options.{name}: not a tracker{did_you_mean(str(name), TRACKERS)}; "
                              f"expected one of {', '.join(TRACKERS)}")


def _check_stage(path: Path, where: str, stage: Any, earlier: list[str]) -> None:
    if stage.name in earlier:
        raise RecipeError(f"{path}: {where}.name: duplicate stage name {stage.name!r}")
    for key, choices in STAGE_CHOICES.items():
        _check_choice(path, f"{where}.{key}", stage[key], choices)
    if stage.init_from is not None and stage.init_from not in earlier:
        raise RecipeError(
            f"{path}: {where}.init_from: {stage.init_from!r} is not an earlier stage"
            f"{did_you_mean(stage.init_from, earlier)}; expected one of {earlier or '(none: this is the first stage)'}"
        )
    if stage.template is not None:
        _check_plugin(path, f"{where}.template", "template", stage.template)
    if stage.image_placement is not None:
        _check_choice(path, f"{where}.image_placement", stage.image_placement, IMAGE_PLACEMENTS)
    for module in MODEL_PLUGINS:
        _check_plugin(path, f"{where}.tuning.{module}", "tuning", stage.tuning[module])
    for d, dataset in enumerate(stage.datasets):
        _check_plugin(path, f"{where}.datasets[{d}].name", "dataset", dataset.name)
        for key, allowed in DATASET_RANGES.items():
            _check_range(path, f"{where}.datasets[{d}].{key}", dataset[key], allowed)
    for key, allowed in STAGE_RANGES.items():
        section, _, leaf = key.rpartition(".")
        _check_range(path, f"{where}.{key}", (stage[section] if section else stage)[leaf], allowed)
    _check_betas(path, f"{where}.optimizer.betas", stage.optimizer.betas)
    _check_module_lr(path, f"{where}.optimizer.module_lr", stage.optimizer.module_lr)
    if stage.global_batch_size < stage.micro_batch_size:
        raise RecipeError(
            f"{path}: {where}.global_batch_size: {stage.global_batch_size} is smaller than micro_batch_size {stage.micro_batch_size}"
        )
    _check_optimisation(path, where, stage)


def _check_objective(path: Path, where: str, stage: Any) -> None:
    """The objective plugin exists, takes the given options with values it accepts, reads the records the
    stage's datasets give, and supports the stage's settings."""
    name, options = objective_spec(stage)
    _check_plugin(path, f"{where}.objective.name", "objective", name)
    factory = components().get("objective", name).factory
    accepted = keyword_options(factory, positional=0)
    if accepted is not None:
        for option in options:
            if option not in accepted:
                raise RecipeError(
                    f"{path}: {where}.objective.{option}: objective {name!r} takes no option {option!r}"
                    f"{did_you_mean(str(option), sorted(accepted))}; expected one of {', '.join(sorted(accepted)) or '(none)'}"
                )
    try:
        objective = factory(**options)
    except (TypeError, ValueError) as error:
        raise RecipeError(f"{path}: {where}.objective.{str(error).splitlines()[0]}") from None
    if stage.packing and not objective.supports_packing:
        raise RecipeError(f"{path}: {where}.packing: true, but objective {name!r} cannot pack samples; expected false")
    for d, dataset in enumerate(stage.datasets):
        records = components().get("dataset", dataset.name).info.get("records", "conversation")
        if records != objective.records:
            raise RecipeError(
                f"{path}: {where}.datasets[{d}].name: dataset {dataset.name!r} gives {records} records, but objective "
                f"{name!r} trains on {objective.records} records; expected a {objective.records} dataset "
                f"({', '.join(_datasets_giving(objective.records)) or 'none registered'})"
            )


def _datasets_giving(records: str) -> list[str]:
    return [entry.name for entry in components() if entry.kind == "dataset"
            and entry.info.get("records", "conversation") == records]


def _check_optimisation(path: Path, where: str, stage: Any) -> None:
    optimizer, schedule = stage.optimizer, stage.schedule
    given = {key: key for key in OPTIMIZER_PLUGIN_KEYS if optimizer[key] is not None}
    given |= {str(key): f"options.{key}" for key in optimizer.options}
    _check_options(path, f"{where}.optimizer", "optimizer", optimizer.name, given, OPTIMIZER_ARGUMENTS)
    given = {str(key): f"options.{key}" for key in schedule.options}
    _check_options(path, f"{where}.schedule", "lr_schedule", schedule.name, given, SCHEDULE_ARGUMENTS)


def _check_options(
    path: Path, section: str, kind: str, name: str, given: dict[str, str], reserved: frozenset[str]
) -> None:
    """``given`` (option -> key under ``section``) are keyword arguments the ``kind`` plugin ``name`` takes."""
    _check_plugin(path, f"{section}.name", kind, name)
    accepted = keyword_options(components().get(kind, name).factory)
    if accepted is None:
        return
    accepted = sorted(accepted - reserved)
    for option, key in given.items():
        if option not in accepted:
            raise RecipeError(
                f"{path}: {section}.{key}: {kind} {name!r} takes no option {option!r}{did_you_mean(option, accepted)}; "
                f"expected one of {', '.join(accepted) or '(none)'}"
            )


def _check_range(path: Path, key: str, value: Any, allowed: Range) -> None:
    if not allowed.allows(value):
        raise RecipeError(f"{path}: {key}: {value!r} is out of range; expected {allowed.describe()}")


def _check_module_lr(path: Path, key: str, module_lr: Any) -> None:
    """Keys are model modules, values positive learning rates."""
    for module, lr in (module_lr or {}).items():
        if module not in TRAINABLE_MODULES:
            raise RecipeError(
                f"{path}: {key}.{module}: not a module of the model{did_you_mean(str(module), TRAINABLE_MODULES)}; "
                f"expected one of {', '.join(TRAINABLE_MODULES)}"
            )
        _check_range(path, f"{key}.{module}", lr, POSITIVE)


def _check_betas(path: Path, key: str, betas: Any) -> None:
    """null (the optimizer's default) or exactly two numbers, each in [0, 1)."""
    if betas is None:
        return
    values = list(betas)
    expected = f"null (the optimizer's default) or two numbers, each {BETA.describe().removeprefix('a number ')}"
    if len(values) != 2 or not all(BETA.allows(value) for value in values):
        shown = "[" + ", ".join(repr(value) for value in values) + "]"
        raise RecipeError(f"{path}: {key}: {shown} is out of range; expected {expected}")


def _check_choice(path: Path, key: str, value: Any, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise RecipeError(f"{path}: {key}: {value!r} is not allowed{did_you_mean(value, choices)}; expected one of {', '.join(choices)}")


def _check_plugin(path: Path, key: str, kind: str, name: str) -> None:
    try:
        components().get(kind, name)
    except PluginError as error:
        raise RecipeError(f"{path}: {key}: {error}") from None
