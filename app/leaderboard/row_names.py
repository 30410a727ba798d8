"""What a leaderboard row is called when its folder has no ``run.json`` name: the ``model_id`` its
``metrics.json`` files record (``medzoo eval`` writes what MODEL was given as, a contender its hub id or folder).

A hub id (``llava-hf/llava-1.5-7b-hf``) or a variant name is shown as it is; a local path by its folder's name,
a medzoo run's ``final/`` by the run's (``/data/runs/tiny/final`` -> ``tiny``), as ``medzoo.load`` names it; the
full value goes into the row's details. ``model`` (an unnamed model's placeholder) names nothing.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

#: model ids that say nothing about the model (``MedzooAnswerer``'s default)
PLACEHOLDER_IDS = frozenset({"", "model"})
_WINDOWS_DRIVE = re.compile(r"^[A-Za-z]:[\\/]")


def is_local_path(model_id: str) -> bool:
    """Whether ``model_id`` is a path rather than a hub id (``org/name``: one slash, no leading ``/ ~ .``)."""
    return (model_id.startswith(("/", "~", ".", "\\")) or "\\" in model_id or model_id.count("/") > 1
            or bool(_WINDOWS_DRIVE.match(model_id)))


def shown_model_id(model_id: str) -> str:
    """``model_id`` as a row shows it: a local path by its folder's name (a run's ``final/`` by the run's)."""
    if not is_local_path(model_id):
        return model_id
    parts = [part for part in re.split(r"[\\/]+", model_id) if part not in ("", ".", "~")]
    if len(parts) > 1 and parts[-1] == "final":
        parts.pop()
    return parts[-1] if parts else model_id


def name_from_model_ids(ids: Sequence[tuple[str, str]]) -> tuple[str | None, str]:
    """(row name, details) from each benchmark's ``(benchmark, model_id)``: the id they agree on, shortened,
    or ``mixed: a, b`` when they disagree; details keep every full id. (None, "") when no id names a model."""
    named = [(benchmark, model_id.strip()) for benchmark, model_id in ids if model_id.strip() not in PLACEHOLDER_IDS]
    distinct = list(dict.fromkeys(model_id for _, model_id in named))
    if not distinct:
        return None, ""
    if len(distinct) == 1:
        shown = shown_model_id(distinct[0])
        return shown, ("" if shown == distinct[0] else f"model_id {distinct[0]}")
    shown_ids = list(dict.fromkeys(shown_model_id(model_id) for model_id in distinct))
    per_benchmark = "; ".join(f"{benchmark}: {model_id}" for benchmark, model_id in named)
    return f"mixed: {', '.join(shown_ids)}", f"model_id differs between benchmarks ({per_benchmark})"
