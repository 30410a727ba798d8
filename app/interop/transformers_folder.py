"""Telling a transformers model folder from a medzoo model directory, so ``medzoo eval FOLDER`` can answer with
the ``hf-vlm`` contender when FOLDER holds a transformers image-text-to-text model (``config.json``, no
``medzoo_model.json``) and say what to pass when it holds something else."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from medzoo.core.errors import MedzooError
from medzoo.core.model.persistence import MANIFEST

#: the contender a transformers image-text-to-text folder is answered with
HF_CONTENDER = "hf-vlm"


@dataclass(frozen=True)
class TransformersFolder:
    """A folder holding a transformers image-text-to-text model: where, and its ``config.json`` model type."""

    path: Path
    model_type: str

    def reason(self) -> str:
        """Why it was recognised (recorded in metrics.json)."""
        return f"config.json model_type {self.model_type!r} is an image-text-to-text model; no {MANIFEST}"


def _image_text_to_text_types() -> set[str]:
    """The ``model_type`` values ``AutoModelForImageTextToText`` loads in the installed transformers."""
    from transformers.models.auto.modeling_auto import MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES

    return set(MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES)


def transformers_folder(reference: str) -> TransformersFolder | None:
    """The transformers image-text-to-text model in folder ``reference``, or None when ``reference`` is not a
    folder or is a medzoo model directory (or holds no ``config.json``: the caller's own error says what is
    missing). A ``config.json`` of another kind of model is a one-line MedzooError naming ``--contender hf-vlm``."""
    path = Path(reference).expanduser()
    config_path = path / "config.json"
    if not path.is_dir() or (path / MANIFEST).is_file() or not config_path.is_file():
        return None
    hint = (f"not a medzoo model directory (no {MANIFEST}); to answer with a transformers model anyway, pass "
            f"--contender {HF_CONTENDER}")
    try:
        config = json.loads(config_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise MedzooError(f"{config_path}: not a readable transformers config ({type(error).__name__}); {hint}") \
            from None
    model_type = config.get("model_type") if isinstance(config, dict) else None
    if not isinstance(model_type, str) or not model_type:
        raise MedzooError(f"{config_path}: no model_type, so this is no transformers model medzoo recognises; {hint}")
    if model_type not in _image_text_to_text_types():
        raise MedzooError(f"{config_path}: model_type {model_type!r} is not an image-text-to-text model "
                          f"(AutoModelForImageTextToText does not load it); {hint}")
    return TransformersFolder(path, model_type)
