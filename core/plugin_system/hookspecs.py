"""The plugin surface of medzoo: every hook hands the plugin a ``register(name, factory, **info)`` callback.

Built-in components and third-party packages (entry-point group ``medzoo``) use exactly these hooks.
The core validates names and rejects duplicates, naming both providers.
"""

from __future__ import annotations

from typing import Any, Protocol

import pluggy

PROJECT_NAME = "medzoo"

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)


class Register(Protocol):
    """The callback a registration hook receives."""

    def __call__(self, name: str, factory: Any, **info: Any) -> None: ...


@hookspec
def register_vision_encoders(register: Register) -> None:
    """Register VisionEncoder classes (factory: a ``medzoo.core.interfaces.vision_encoder.VisionEncoder`` subclass)."""


@hookspec
def register_connectors(register: Register) -> None:
    """Register Connector classes (factory: a ``medzoo.core.interfaces.connector.Connector`` subclass)."""


@hookspec
def register_language_models(register: Register) -> None:
    """Register LanguageModel classes (factory: a ``medzoo.core.interfaces.language_model.LanguageModel`` subclass)."""


@hookspec
def register_conversation_templates(register: Register) -> None:
    """Register conversation templates (factory: a ``ConversationTemplate`` instance)."""


@hookspec
def register_tuning_strategies(register: Register) -> None:
    """Register tuning strategies (factory: a ``medzoo.core.interfaces.tuning.TuningStrategy`` subclass)."""


@hookspec
def register_datasets(register: Register) -> None:
    """Register dataset readers (factory: a ``medzoo.core.interfaces.dataset.DatasetReader`` subclass)."""


@hookspec
def register_curricula(register: Register) -> None:
    """Register curriculum schedules (factory: a ``medzoo.core.interfaces.curriculum.Curriculum`` subclass)."""


@hookspec
def register_optimizers(register: Register) -> None:
    """Register optimizers (factory: ``medzoo.core.interfaces.optimizer.OptimizerFactory``, a callable
    ``(param_groups, *, lr, weight_decay, **options) -> torch.optim.Optimizer``)."""


@hookspec
def register_lr_schedules(register: Register) -> None:
    """Register learning-rate schedules (factory: ``medzoo.core.interfaces.lr_schedule.LRScheduleFactory``, a
    callable ``(optimizer, *, warmup_steps, total_steps, **options) -> LRScheduler``)."""


@hookspec
def register_objectives(register: Register) -> None:
    """Register training objectives (factory: a ``medzoo.core.interfaces.objective.Objective`` subclass), named by
    a recipe stage's ``objective.name``."""


@hookspec
def register_rewards(register: Register) -> None:
    """Register rewards for objectives that learn from rewards (factory: a ``medzoo.core.interfaces.reward.Reward``
    subclass), named with a weight each in a GRPO stage's ``objective.rewards``."""


@hookspec
def register_benchmarks(register: Register) -> None:
    """Register benchmarks (factory: a ``medzoo.core.interfaces.benchmark.Benchmark`` subclass)."""


@hookspec
def register_instruct_backends(register: Register) -> None:
    """Register text-generation backends for instruction generation and judging
    (factory: a ``medzoo.core.interfaces.instruct_backend.InstructBackend`` subclass)."""


@hookspec
def register_contenders(register: Register) -> None:
    """Register evaluation contenders: models from outside medzoo that ``medzoo eval --contender NAME SOURCE``
    answers benchmarks with (factory: a callable ``(source, **options) -> medzoo.core.interfaces.answerer.Answerer``;
    registered in the component registry as kind ``contender``)."""


@hookspec
def register_commands(cli: Any) -> None:
    """Add click commands or groups to the ``medzoo`` command line (``cli`` is the root click group)."""
