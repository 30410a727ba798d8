"""What each stage of a run optimised, read back from what the run recorded, for the model card and the leaderboard.

A run records every stage's objective (its name and options, defaults filled in) in the stage's ``DONE.json`` and
in ``run.json`` (``objectives``: ``{"stage", "name", <options>}`` per stage); a GRPO stage's options hold its
``rewards`` (``{name: {weight, <options>}}``, or the recipe's ``{name: weight}``) and its ``rollouts`` backend.
Supervised stages (``sft``) are the default; anything else is named wherever the model is shown, so that a DPO or
GRPO model never passes for a supervised one.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SUPERVISED = "sft"
#: options shown apart from the others (and not repeated among them)
APART = ("rewards", "rollouts")


@dataclass(frozen=True)
class RewardWeight:
    """One reward of a stage with its weight and options."""

    name: str
    weight: float
    options: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class StageObjective:
    """The objective one stage trained with."""

    stage: str
    name: str
    options: dict[str, Any] = field(default_factory=dict)

    @property
    def supervised(self) -> bool:
        return self.name == SUPERVISED

    @property
    def rewards(self) -> list[RewardWeight]:
        """The stage's rewards (GRPO-style objectives), in recipe order."""
        spec = self.options.get("rewards")
        if not isinstance(spec, Mapping):
            return []
        rewards = []
        for name, value in spec.items():
            options = dict(value) if isinstance(value, Mapping) else {"weight": value}
            weight = options.pop("weight", 1.0)
            rewards.append(RewardWeight(str(name), float(weight) if _number(weight) else math.nan, options))
        return rewards

    @property
    def rollout_backend(self) -> str | None:
        """The backend that generated the stage's rollouts (``engine`` unless the record says otherwise), or None
        for an objective without rollouts."""
        rollouts = self.options.get("rollouts")
        if isinstance(rollouts, Mapping):
            return str(rollouts.get("backend", "engine"))
        return "engine" if "rewards" in self.options else None


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def objective_of(stage: str, record: Any) -> StageObjective:
    """A stage's objective from its record (``{"name": ..., <options>}``; ``sft`` when absent)."""
    spec = dict(record) if isinstance(record, Mapping) else {}
    spec.pop("stage", None)
    name = spec.pop("name", None) or SUPERVISED
    return StageObjective(stage, str(name), spec)


def run_objectives(run_info: Any) -> list[StageObjective]:
    """Every stage's objective from ``run.json`` (its ``objectives``, else its ``stages``' ``objective``); empty
    when it records no stages."""
    if not isinstance(run_info, Mapping):
        return []
    listed = run_info.get("objectives")
    if isinstance(listed, list) and listed:
        return [objective_of(str(entry.get("stage", "")), entry) for entry in listed if isinstance(entry, Mapping)]
    stages = run_info.get("stages")
    if not isinstance(stages, list):
        return []
    return [objective_of(str(entry.get("stage") or entry.get("name") or ""), entry.get("objective"))
            for entry in stages if isinstance(entry, Mapping)]


def up_to(objectives: Sequence[StageObjective], stage: str | None) -> list[StageObjective]:
    """The objectives of the stages up to and including ``stage`` (all of them when ``stage`` is None or not
    among them): what the weights saved after ``stage`` were trained with."""
    names = [objective.stage for objective in objectives]
    if stage is None or stage not in names:
        return list(objectives)
    return list(objectives[: names.index(stage) + 1])


def _weight(value: float) -> str:
    return "nan" if math.isnan(value) else f"{value:g}"


def reward_list(objective: StageObjective, weights: bool = True) -> str:
    """``box-iou 1, format 0.5`` (names only without ``weights``)."""
    return ", ".join(f"{reward.name} {_weight(reward.weight)}" if weights else reward.name
                     for reward in objective.rewards)


def row_note(objectives: Sequence[StageObjective]) -> str:
    """The leaderboard note of a model trained with ``objectives``: each stage beyond supervised tuning in order,
    ``+DPO``, ``+GRPO (box-iou)`` (a reward's weight shown when several differ from 1); ``""`` for SFT only."""
    notes = []
    for objective in objectives:
        if objective.supervised:
            continue
        rewards = objective.rewards
        note = f"+{objective.name.upper()}"
        if rewards:
            note += f" ({reward_list(objective, weights=any(r.weight != 1.0 for r in rewards))})"
        notes.append(note)
    return " ".join(notes)


def _value(value: Any) -> str:
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{k}: {_value(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_value(v) for v in value) + "]"
    return "null" if value is None else str(value).lower() if isinstance(value, bool) else str(value)


def card_line(objective: StageObjective) -> str:
    """One markdown line of the card's "Training objectives": the stage, its objective, the rewards with their
    weights and the rollout backend (rollout objectives), then every other option."""
    described = "supervised next-token cross-entropy on the replies" if objective.supervised else ""
    parts = []
    if objective.rewards:
        parts.append("rewards " + "; ".join(
            f"`{r.name}` x {_weight(r.weight)}" + (f" ({_value(r.options)[1:-1]})" if r.options else "")
            for r in objective.rewards))
    if objective.rollout_backend is not None:
        parts.append(f"rollouts from `{objective.rollout_backend}`")
    others = {key: value for key, value in objective.options.items() if key not in APART}
    if others:
        parts.append(", ".join(f"{key} {_value(value)}" for key, value in others.items()))
    details = "; ".join(part for part in (described, *parts) if part)
    return f"stage `{objective.stage}`: `{objective.name}`" + (f" ({details})" if details else "")


def folder_objectives(run_dir: Path) -> list[StageObjective]:
    """The objectives of a run folder's trained stages: ``run.json``'s once the run finished, else each finished
    stage's ``DONE.json`` (``NN-<stage>/``, in order)."""
    recorded = run_objectives(_read_json(run_dir / "run.json"))
    if recorded:
        return recorded
    objectives = []
    for folder in sorted(run_dir.glob("[0-9][0-9]-*")):
        done = _read_json(folder / "DONE.json")
        if isinstance(done, Mapping):
            objectives.append(objective_of(str(done.get("stage") or folder.name[3:]), done.get("objective")))
    return objectives


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
