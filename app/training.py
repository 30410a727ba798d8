"""Training as the application runs it (``medzoo train``, ``medzoo run``, ``medzoo.train``): the core's
``train_recipe`` with the application's additions, the built-in synthetic data made when the recipe asks for it,
each stage's plots drawn once it is saved, and a model card in every model folder saved."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def train_run(recipe: Any, output_dir: str | Path, *, echo=print, **options: Any) -> Path:
    """Train every stage of ``recipe`` into ``output_dir`` with the application's additions; ``options`` go to
    :func:`medzoo.core.training.run.train_recipe` (``resume``, ``allow_recipe_change``, ``tracking``, ...).
    Returns the final model folder."""
    from medzoo.app.data_setup import ensure_data
    from medzoo.app.model_cards.writing import write_model_card
    from medzoo.app.plots.run_plots import stage_plotter
    from medzoo.core.training.run import train_recipe

    options.setdefault("prepare_data", ensure_data)
    options.setdefault("after_stage", stage_plotter(echo))
    options.setdefault("folder_files", write_model_card)
    return train_recipe(recipe, output_dir, echo=echo, **options)
