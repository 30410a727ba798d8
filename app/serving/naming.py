"""The name a served model goes by (``/v1/models``, the chat page) when ``--model-name`` is not given."""

from __future__ import annotations

from pathlib import Path

#: folder names a run gives its models (``runs/tiny/final``, ``runs/tiny/02-instruct/model``): not names
GENERIC_FOLDER_NAMES = frozenset({"final", "model", "merged", "export", "hf"})


def served_model_name(model_dir: str | Path) -> str:
    """The folder's name, or for a run's model folder (``final``, ``<stage>/model``) the run's recipe name and
    the stage: ``tiny`` for ``runs/tiny/final``, ``tiny/02-instruct`` for a stage's model."""
    folder = Path(model_dir).resolve()
    if folder.name not in GENERIC_FOLDER_NAMES:
        return folder.name
    parent = folder.parent
    stage = None
    if folder.name == "model" and not (parent / "recipe.yaml").is_file() and (parent.parent / "recipe.yaml").is_file():
        stage, parent = parent.name, parent.parent
    name = recipe_name(parent / "recipe.yaml") or parent.name
    return f"{name}/{stage}" if stage else name


def recipe_name(path: Path) -> str | None:
    """The ``name:`` of a run's ``recipe.yaml`` (None when unreadable or absent)."""
    import yaml

    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return None
    name = data.get("name") if isinstance(data, dict) else None
    return name if isinstance(name, str) and name.strip() else None
