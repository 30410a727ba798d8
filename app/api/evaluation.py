"""Evaluating a model's weights on a benchmark as ``medzoo eval`` does (``medzoo.evaluate``, ``Model.evaluate``),
and adding the result to the card of the run's final model when it lands in that run's ``eval/``."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any


def evaluate_weights(answerer: Any, model_id: str, directory: Path | None, benchmark: str,
                     output_dir: str | Path | None = None, *, data: str | None = None, image_root: str | None = None,
                     options: dict[str, Any] | None = None, batch_size: int = 16, image_ablation: str | None = None,
                     fresh: bool = False, echo=print) -> dict[str, Any]:
    """Answer and score ``benchmark`` with ``answerer`` (a ``MultimodalModel`` or a contender) loaded from
    ``directory`` (None: not from a model folder); returns the metrics. Without ``output_dir`` the answers go to
    a temporary folder removed afterwards."""
    from medzoo.core.evaluation.evaluate_model import evaluate as evaluate_model

    with tempfile.TemporaryDirectory(prefix="medzoo-eval-") as scratch:
        metrics = evaluate_model(
            answerer, benchmark, output_dir if output_dir is not None else scratch, data=data, image_root=image_root,
            options=options, batch_size=batch_size, image_ablation=image_ablation, model_id=model_id, echo=echo,
            fresh=fresh,
        )
    if output_dir is not None and directory is not None:
        refresh_run_card(answerer, directory, Path(output_dir))
    return metrics


def refresh_run_card(model: Any, directory: Path, output_dir: Path) -> None:
    """An evaluation into ``RUN/eval/<name>`` of ``RUN/final`` (as ``medzoo run`` writes them) joins its card."""
    from medzoo.app.model_cards.sources import run_folder_of
    from medzoo.app.model_cards.writing import refresh_model_card

    run_dir = run_folder_of(directory)
    if run_dir is not None and directory.name == "final" and output_dir.resolve().parent == (run_dir / "eval").resolve():
        refresh_model_card(directory, model)
