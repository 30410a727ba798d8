"""Preparing a recipe's data before training: the built-in synthetic set is written when asked for and missing."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from medzoo.core.model.build import as_dict


def ensure_data(recipe: Any, echo=print) -> None:
    """Create the built-in synthetic set when the recipe asks for it (``data.synthesize``) and it is missing."""
    if not recipe.data.synthesize:
        return
    root = Path(recipe.data.root)
    if (root / "manifest.json").is_file():
        return
    from medzoo.plugins.data.synth.generate import synthesize

    echo(f"synthesising the built-in data set into {root}")
    synthesize(root, **as_dict(recipe.data.synth_options))
