"""A stage's ``objective`` section: ``{name: ..., <options>}``, ``sft`` when the stage names none."""

from __future__ import annotations

from typing import Any

from omegaconf import DictConfig, OmegaConf

DEFAULT_OBJECTIVE = "sft"


def objective_spec(stage: Any) -> tuple[str, dict[str, Any]]:
    """The objective's name and options of ``stage`` (a stage config or its mapping)."""
    section = stage.get("objective") if isinstance(stage, dict | DictConfig) else getattr(stage, "objective", None)
    if isinstance(section, DictConfig):
        section = OmegaConf.to_container(section, resolve=True)
    spec = dict(section or {})
    name = spec.pop("name", None) or DEFAULT_OBJECTIVE
    return str(name), spec
