"""accelerate's tracker for each name in ``logging.trackers``, set up to write under ``<run>/logs/<tracker>/``.

Nothing here imports a tracker's package: accelerate's tracker imports it when it starts, so a tracker that is
not installed fails to start like any other (and the run continues without it).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from medzoo.core.errors import RecipeError
from medzoo.core.recipes.schema import TRACKERS

LOGS = "logs"


def tensorboard_installed() -> bool:
    from accelerate.utils import is_tensorboard_available

    return is_tensorboard_available()


def build_tracker(name: str, run_dir: Path, project: str, run_name: str, options: dict[str, Any]) -> Any:
    """An unstarted accelerate tracker; ``options`` are the recipe's ``logging.options.<name>``."""
    if name not in TRACKERS:
        raise RecipeError(f"logging.trackers: {name!r} is not a tracker; expected one of {', '.join(TRACKERS)}")
    directory = run_dir / LOGS / name
    directory.mkdir(parents=True, exist_ok=True)
    return {"tensorboard": _tensorboard, "wandb": _wandb, "mlflow": _mlflow}[name](
        directory, project, run_name, dict(options))


def _tensorboard(directory: Path, project: str, run_name: str, options: dict[str, Any]) -> Any:
    from accelerate.tracking import TensorBoardTracker

    # accelerate writes into logging_dir/run_name
    return TensorBoardTracker(directory.name, str(directory.parent), **options)


def _wandb(directory: Path, project: str, run_name: str, options: dict[str, Any]) -> Any:
    from accelerate.tracking import WandBTracker

    options.setdefault("mode", "offline")  # syncing to wandb.ai is the recipe's explicit choice (mode: online)
    options.setdefault("dir", str(directory))
    options.setdefault("name", run_name)
    options.setdefault("settings", {"console": "off"})  # leave the terminal (progress bars) alone
    return WandBTracker(project, **options)


def _mlflow(directory: Path, project: str, run_name: str, options: dict[str, Any]) -> Any:
    from accelerate.tracking import MLflowTracker

    # the recipe's store, else the run's own (not MLFLOW_TRACKING_URI: mlflow sets it for the process itself)
    uri = options.pop("tracking_uri", None) or f"file:{directory}"
    if uri.startswith("file:"):
        os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")  # mlflow 3 asks for a database otherwise
    tracker = MLflowTracker(experiment_name=project, run_name=options.pop("run_name", run_name), **options)
    tracker.tracking_uri = uri
    return tracker


def start_tracker(tracker: Any) -> None:
    """``tracker.start()``; MLflow's first points mlflow at the run's store."""
    uri = getattr(tracker, "tracking_uri", None)
    if uri is not None:
        import mlflow

        mlflow.set_tracking_uri(uri)
    tracker.start()
