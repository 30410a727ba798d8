"""Which protocol a medzoo row was measured under, from what its run folder records about training.

medzoo scores VQA as LLaVA-Med does (closed accuracy / open recall) and ColonINST as ColonINST does; what
separates the protocols is whether a stage trained on the benchmark's train split. A run folder records the
stages that ran (``run.json`` ``stages``: name and role) and their datasets (``recipe.yaml``); a dataset trains
on a benchmark when its reader name or path (below ``data.root``) names it: ``vqa_rad/train.json`` for vqa-rad,
a ``colon-inst`` reader for every ColonINST task.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from medzoo.app.leaderboard.protocols import (
    CHAT_JUDGE,
    COLONINST,
    LLAVA_MED_FINETUNED,
    SYNTHETIC,
    ZERO_SHOT,
)
from medzoo.core.errors import DataError
from medzoo.core.file_io.text_files import read_text_file

CHAT_METRIC = "relative_score"
CONTENDER_TEMPLATE = "chat_template@"  # how a contender's metrics.json names its own chat template


@dataclass(frozen=True)
class StageRecord:
    """A stage that ran; ``datasets``: reader name and path of each of its datasets, None when not recorded."""

    name: str
    role: str
    datasets: tuple[str, ...] | None


def _key(text: str) -> str:
    return re.sub(r"[^a-z0-9]", "", text.lower())


def trains_on(dataset: str, benchmark: str) -> bool:
    """Whether a dataset (reader name and path) is the benchmark's training data (any ColonINST task for a
    ColonINST benchmark; ``synth-`` twins as their benchmark)."""
    name = benchmark.removeprefix("synth-")
    return _key("coloninst" if name.startswith("coloninst") else name) in _key(dataset)


def _recipe_datasets(run_dir: Path) -> dict[str, tuple[str, ...]]:
    """Stage name -> its datasets as ``reader path`` (path below ``data.root``), from ``recipe.yaml``."""
    import yaml

    path = run_dir / "recipe.yaml"
    if not path.is_file():
        return {}
    text = read_text_file(path, "the run's recipe (YAML)")
    try:
        recipe = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise DataError(f"{path}: not a readable recipe ({str(error).splitlines()[0]})") from None
    if not isinstance(recipe, dict):
        raise DataError(f"{path}: expected a recipe mapping")
    root = str((recipe.get("data") or {}).get("root") or "")
    stages: dict[str, tuple[str, ...]] = {}
    for stage in recipe.get("stages") or []:
        if isinstance(stage, dict) and isinstance(stage.get("datasets"), list):
            stages[str(stage.get("name"))] = tuple(
                f"{entry.get('name', '')} {str(entry.get('path', '')).removeprefix(root) if root else entry.get('path', '')}"
                for entry in stage["datasets"]
                if isinstance(entry, dict)
            )
    return stages


def recorded_stages(run_dir: Path, run_info: Any) -> list[StageRecord] | None:
    """The stages ``run.json`` says ran, with their datasets; None when it records no stages."""
    stages = run_info.get("stages") if isinstance(run_info, dict) else None
    if not isinstance(stages, list):
        return None
    datasets = _recipe_datasets(run_dir)
    records = []
    for stage in stages:
        if isinstance(stage, dict):
            name = str(stage.get("stage") or stage.get("name") or "")
            records.append(StageRecord(name, str(stage.get("role") or ""), datasets.get(name)))
    return records


def benchmark_protocol(
    benchmark: str, metrics: dict[str, Any], stages: list[StageRecord] | None, contender: bool = False
) -> tuple[str, str]:
    """(protocol, basis) of one benchmark's medzoo scores; ``basis`` says what the protocol was told from."""
    if CHAT_METRIC in metrics:
        return CHAT_JUDGE, ""
    name = benchmark.removeprefix("synth-")
    trained = COLONINST if name.startswith("coloninst") else LLAVA_MED_FINETUNED
    if stages is None:
        protocol = ZERO_SHOT
        basis = ("a contender, trained by its authors (not recorded): zero-shot assumed" if contender
                 else "training not recorded with these scores: zero-shot assumed")
    else:
        on_train = [s.name for s in stages if s.datasets and any(trains_on(d, benchmark) for d in s.datasets)]
        unknown = [s.name for s in stages if s.datasets is None]
        downstream = [s.name for s in stages if s.datasets is None and s.role == "downstream"]
        if on_train:
            protocol, basis = trained, f"stage {', '.join(on_train)} trained on the train split"
        elif downstream:
            protocol, basis = trained, f"downstream stage {', '.join(downstream)} ran, its data not recorded"
        elif unknown:
            protocol = ZERO_SHOT
            basis = f"no downstream stage ran (data of stage {', '.join(unknown)} not recorded): zero-shot assumed"
        else:
            protocol, basis = ZERO_SHOT, "no stage trained on the train split"
    return (SYNTHETIC if benchmark.startswith("synth-") else protocol), basis
