"""Writing the model card (``README.md``) of a model folder: when the folder is saved, exported or imported, and
again when evaluations are added. A README.md medzoo did not write (no :data:`CARD_MARKER`) is never replaced:
it is carried over unchanged into a folder saved again, and left alone by a refresh."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from medzoo.app.model_cards.card import render_card
from medzoo.app.model_cards.sources import CardContext, build_card
from medzoo.core.atomic_writes import write_atomically

README = "README.md"
MARKER_PREFIX = "<!-- medzoo:model-card"
#: manifest keys that are not extras describing where the model came from
_MANIFEST_KEYS = ("format", "version", "model", "architecture", "saved_modules", "adapters")


def written_by_medzoo(readme: Path) -> bool:
    """Whether ``readme`` carries medzoo's marker (a file that cannot be read is not medzoo's)."""
    try:
        return MARKER_PREFIX in readme.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return False


def _fingerprint(model: Any) -> str | None:
    if model is None:
        return None
    from medzoo.core.evaluation.answer_meta import weights_fingerprint

    return weights_fingerprint(model)


def card_context(manifest: dict[str, Any], directory: Path, model: Any = None, export: str | None = None) -> CardContext:
    """What the card of a model folder says, from its manifest and (when it is in memory) the model itself."""
    adapters = tuple(sorted(manifest.get("adapters") or {}))
    template = getattr(getattr(model, "language", None), "template_name", None) if model is not None else None
    loaded_from = getattr(model, "loaded_from", None)
    return CardContext(
        spec=dict(manifest.get("model") or {}),
        extra={key: value for key, value in manifest.items() if key not in _MANIFEST_KEYS},
        directory=Path(directory),
        template=template or (manifest.get("model") or {}).get("language", {}).get("template"),
        adapters=adapters,
        loaded_from=Path(loaded_from) if loaded_from is not None else None,
        fingerprint=_fingerprint(model),
        export=export,
    )


def write_card(staging: Path, directory: Path, context: CardContext) -> Path:
    """Write the card into ``staging`` (the folder about to replace ``directory``); a README.md medzoo did not
    write in ``directory`` is copied over instead."""
    existing = Path(directory) / README
    if existing.is_file() and not written_by_medzoo(existing):
        shutil.copy2(existing, staging / README)
        return staging / README
    target = staging / README  # the staging folder is renamed into place whole: no write of its own to make atomic
    target.write_text(render_card(build_card(context)), encoding="utf-8")
    return target


def write_model_card(staging: Path, directory: Path, manifest: dict[str, Any], model: Any = None,
                     export: str | None = None) -> Path:
    """The card of a model folder being saved (``staging`` replaces ``directory``)."""
    return write_card(Path(staging), Path(directory), card_context(manifest, Path(directory), model, export))


def refresh_model_card(directory: str | Path, model: Any = None) -> Path | None:
    """Rewrite ``directory/README.md`` from the folder's manifest and its run folder (with ``model``: only the
    evaluations of exactly its weights); a README.md medzoo did not write is left alone (returns None)."""
    from medzoo.core.model.persistence import read_manifest

    directory = Path(directory)
    readme = directory / README
    if readme.exists() and not written_by_medzoo(readme):
        return None
    context = card_context(read_manifest(directory), directory, model)
    return write_atomically(readme, render_card(build_card(context)))
