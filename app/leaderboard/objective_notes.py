"""The training-objective note of a leaderboard row (``+DPO``, ``+GRPO (box-iou)``), so that a DPO or GRPO model's
scores never pass for a supervised model's.

A run folder's row reads its ``run.json``; a row of ``medzoo eval`` scores reads the run folder its ``model_id``
lies in (a run's ``final/``: every stage; ``NN-<stage>/model``: the stages up to that one). A row with no training
record, or trained by supervised stages only, gets no note.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from medzoo.app.leaderboard.row_names import is_local_path
from medzoo.app.training_objectives import folder_objectives, row_note, run_objectives, up_to

RUN_MARKER = "medzoo_run.json"  # core/training/run_folder.py writes it into every run folder
STAGE_MODEL = re.compile(r"\d{2}-(.+)")


def _model_run(model_id: str) -> tuple[Path, str | None] | None:
    """(run folder, stage or None for ``final/``) of a model folder inside a medzoo run, else None."""
    if not is_local_path(model_id):
        return None
    folder = Path(model_id).expanduser()
    if folder.name == "final":
        run, stage = folder.parent, None
    elif folder.name == "model" and (match := STAGE_MODEL.fullmatch(folder.parent.name)):
        run, stage = folder.parent.parent, match.group(1)
    else:
        return None
    return (run, stage) if (run / RUN_MARKER).is_file() else None


def objective_note(run_info: Any, model_ids: Iterable[str]) -> str:
    """The row's note: from ``run.json`` when it records the stages, else from the run folder of the one local
    model the row's scores name (benchmarks naming different models get no note)."""
    recorded = run_objectives(run_info)
    if recorded:
        return row_note(recorded)
    runs = {found for model_id in dict.fromkeys(model_ids) if (found := _model_run(model_id)) is not None}
    if len(runs) != 1:
        return ""
    run, stage = runs.pop()
    return row_note(up_to(folder_objectives(run), stage))
