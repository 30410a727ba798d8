"""The main job: data (synthesised if missing) -> every stage -> every benchmark of the recipe -> leaderboard."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from medzoo.app.model_cards.writing import refresh_model_card
from medzoo.app.training import train_run
from medzoo.core.evaluation.evaluate_model import evaluate
from medzoo.core.model.components import as_dict
from medzoo.core.model.multimodal import MultimodalModel
from medzoo.core.training.run_folder import clear_run
from medzoo.core.training.tracking import RunTracking


def run_recipe(
    recipe: Any,
    output_dir: str | Path,
    resume: bool = True,
    batch_size: int = 16,
    image_ablation: str | None = None,
    echo=print,
    allow_recipe_change: bool = False,
    fresh: bool = False,
) -> dict[str, dict[str, Any]]:
    """Train and evaluate ``recipe``; results land in ``output_dir/eval/<benchmark>/metrics.json``, and with the
    training's steps in the recipe's experiment trackers (``eval/<benchmark>/...``, the image-ablation drop too).

    ``fresh`` first removes what medzoo wrote into ``output_dir`` (trained stages, final model, answers), never
    anything else (see :func:`clear_run`); ``allow_recipe_change`` lets a resumed run continue with a recipe that
    trains differently from the one it started with.
    """
    output_dir = Path(output_dir)
    if fresh:
        removed = clear_run(output_dir)
        if removed:
            echo(f"--fresh: removed {', '.join(removed)} from {output_dir}")
    with RunTracking.for_recipe(recipe, echo) as tracking:
        final = train_run(recipe, output_dir, resume=resume, echo=echo, allow_recipe_change=allow_recipe_change,
                          tracking=tracking)
        model = MultimodalModel.from_pretrained(str(final))
        results = {}
        for benchmark in recipe.benchmarks:
            spec = as_dict(benchmark)
            echo(f"evaluating {spec['name']}")
            results[spec["name"]] = evaluate(
                model, spec["name"], output_dir / "eval" / spec["name"], data=spec.get("path"),
                image_root=spec.get("image_root"), options=spec.get("options") or {}, batch_size=batch_size,
                image_ablation=image_ablation, model_id=recipe.name, echo=echo, redo_stale=True,
            )
            tracking.log_evaluation(spec["name"], results[spec["name"]])
            refresh_model_card(final, model)  # final/README.md lists the evaluations of these weights so far
    return results
