"""Preparing a recipe's data before training: the built-in synthetic set is written when asked for and missing."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from medzoo.core.model.components import as_dict


def ensure_data(recipe: Any, echo=print) -> None:
    """Create the built-in synthetic set when the recipe asks for it (``data.synthesize``) and it is missing or
    its synthesis was interrupted (manifest marked incomplete); a folder holding data medzoo did not synthesise
    is refused, never written over (see :func:`synthesize`)."""
    if not recipe.data.synthesize:
        return
    from medzoo.app.data_synth.generate import refuse_foreign_data, synthesis_state, synthesize

    root = Path(recipe.data.root)
    state = synthesis_state(root)
    if state == "complete":
        return
    refuse_foreign_data(root)
    why = {"incomplete": "its last synthesis was interrupted",
           "outdated": "it was written by an older generator and lacks files recipes now read"}.get(state, "it is missing")
    echo(f"synthesising the built-in data set into {root} ({why})")
    synthesize(root, **as_dict(recipe.data.synth_options))
