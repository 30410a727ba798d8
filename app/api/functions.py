"""``medzoo.recipe``, ``medzoo.train``, ``medzoo.evaluate`` and ``medzoo.score``: the CLI's jobs as functions."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from medzoo.core.errors import RecipeError

if TYPE_CHECKING:
    from omegaconf import DictConfig

    from medzoo.app.api.model import Model
    from medzoo.core.recipes.loading import LoadedRecipe


def recipe(source: str | Path, overrides: Sequence[str] = ()) -> LoadedRecipe:
    """Load and validate a recipe (a built-in name such as ``tiny`` or a YAML path) with ``key=value``
    overrides; ``.config`` is the validated recipe, ``.source`` its file."""
    from medzoo.core.recipes.loading import load_recipe

    if isinstance(overrides, str):
        overrides = [overrides]
    return load_recipe(source, list(overrides))


def recipe_config(source: Any, overrides: Sequence[str] = ()) -> DictConfig:
    """The validated recipe config of a name, a path, a ``LoadedRecipe`` or a config (overrides: names and
    paths only)."""
    from omegaconf import DictConfig

    from medzoo.core.recipes.loading import LoadedRecipe

    if isinstance(source, str | Path):
        return recipe(source, overrides).config
    if overrides:
        raise RecipeError("overrides apply to a recipe name or path; pass medzoo.recipe(name, overrides) instead")
    if isinstance(source, LoadedRecipe):
        return source.config
    if isinstance(source, DictConfig):
        return source
    raise RecipeError(f"recipe: a {type(source).__name__}; expected a recipe name, a YAML path or medzoo.recipe(...)")


def train(recipe: Any, output_dir: str | Path, overrides: Sequence[str] = (), *, resume: bool = False,
          allow_recipe_change: bool = False, echo=print) -> Path:
    """Train every stage of ``recipe`` (name, path, ``medzoo.recipe(...)`` or its config) into the run folder
    ``output_dir`` as ``medzoo train`` does (the built-in synthetic data is made when the recipe asks for it);
    returns the final model folder. A folder that already holds a run needs ``resume=True``."""
    from medzoo.app.training import train_run

    config = recipe_config(recipe, [overrides] if isinstance(overrides, str) else overrides)
    return Path(train_run(config, output_dir, resume=resume, echo=echo, allow_recipe_change=allow_recipe_change))


def evaluate(model: Model | Any, benchmark: str, output_dir: str | Path | None = None, *, data: str | None = None,
             image_root: str | None = None, options: dict[str, Any] | None = None, batch_size: int = 16,
             image_ablation: str | None = None, fresh: bool = False, echo=print) -> dict[str, Any]:
    """Answer and score ``benchmark`` as ``medzoo eval`` does; returns its metrics (percent) with the protocol.

    ``model``: ``medzoo.load(...)``'s model, a ``MultimodalModel``, a contender, or what ``medzoo.load`` takes.
    Answers and ``metrics.json`` go to ``output_dir`` (a rerun resumes there); without one, to a temporary folder
    removed afterwards. ``image_ablation`` (``noise`` | ``blank``) also scores with every image replaced.
    """
    from medzoo.app.api.evaluation import evaluate_weights
    from medzoo.app.api.model import Model, load

    if isinstance(model, str | Path):
        model = load(model)
    if isinstance(model, Model):
        answerer, model_id, directory = model.model, model.name, model.directory
    else:
        answerer, model_id, directory = model, getattr(model, "model_id", None) or "model", None
    return evaluate_weights(answerer, model_id, directory, benchmark, output_dir, data=data, image_root=image_root,
                            options=options, batch_size=batch_size, image_ablation=image_ablation, fresh=fresh,
                            echo=echo)


def score(benchmark: str, predictions: str | Path, references: str | Path | None = None,
          options: dict[str, str] | None = None) -> dict[str, Any]:
    """Score a prediction file against a benchmark's references without a model, as ``medzoo score`` does:
    ``result["metrics"]`` plus counts of missing, unmatched and duplicate predictions."""
    from medzoo.app.cli.score import score_files

    return score_files(benchmark, None if references is None else str(references), str(predictions),
                       {key: str(value) for key, value in (options or {}).items()})
