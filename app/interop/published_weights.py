"""Models by registry name: ``medzoo eval llava-med-v1.5`` finds the variant's published weights in
``registry.yaml`` and imports them once into the import cache (``$MEDZOO_IMPORT_CACHE`` or
``~/.cache/medzoo/imported``, the cache ``import_cached`` uses); later calls reuse the imported directory
without touching the hub. Delta weights (LLaVA-Med v1.0) are added to their base model first.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from pathlib import Path

from medzoo.app.interop import InteropError
from medzoo.app.zoo_variants import Catalog, PublishedWeights, load_catalog
from medzoo.core.errors import did_you_mean

#: the files of a hub repository that make up a tokenizer (fetched alone: no weights)
TOKENIZER_PATTERNS = ["tokenizer*", "special_tokens_map.json", "added_tokens.json", "*.model", "*.tiktoken"]


def import_cache_root(cache_root: str | Path | None = None) -> Path:
    from medzoo.app.interop.llava_import import DEFAULT_CACHE

    return Path(cache_root or os.environ.get("MEDZOO_IMPORT_CACHE") or DEFAULT_CACHE).expanduser()


def resolve_model(
    reference: str,
    *,
    catalog: Catalog | None = None,
    cache_root: str | Path | None = None,
    delta_base: str | None = None,
    echo: Callable[[str], None] = print,
) -> Path:
    """A medzoo model directory for ``reference``: a directory as it is, or a registry variant's published
    weights (imported on first use). ``delta_base`` replaces the registry's base model of delta weights."""
    path = Path(reference).expanduser()
    if path.is_dir():
        return path
    catalog = catalog or load_catalog()
    published = [variant.name for variant in catalog.variants if variant.weights]
    if not catalog.has_variant(reference):
        raise InteropError(
            f"{reference}: no such model directory, and not a variant of {catalog.path}"
            f"{did_you_mean(reference, published)}; variants with published weights: {', '.join(published)}"
        )
    variant = catalog.variant(reference)
    if not variant.weights:
        raise InteropError(
            f"variant {reference!r} has no published weights in {catalog.path}; train it with "
            f"`medzoo train {variant.recipe} --output-dir DIR` and pass DIR/final (published: {', '.join(published)})"
        )
    return fetch_published(variant.weights[0], cache_root=cache_root, delta_base=delta_base, echo=echo)


def fetch_published(
    weights: PublishedWeights,
    *,
    cache_root: str | Path | None = None,
    delta_base: str | None = None,
    echo: Callable[[str], None] = print,
) -> Path:
    """The imported directory of ``weights`` in the cache, importing (and for deltas merging) it first."""
    from medzoo.app.interop.checkpoint_files import resolve_checkpoint_dir
    from medzoo.app.interop.llava_import import import_checkpoint, is_current_import

    root = import_cache_root(cache_root)
    if not weights.is_delta:
        target = root / _cache_name(f"{weights.source}@{weights.format}")
        if is_current_import(target):
            return target
        _say_why_again(target, echo)
        echo(f"importing {weights.source} ({weights.format}) into {target}")
        checkpoint = resolve_checkpoint_dir(weights.source)
        tokenizer = tokenizer_dir(weights.tokenizer) if weights.tokenizer else None
        import_checkpoint(checkpoint, weights.format, target, tokenizer=tokenizer)
        return target
    base = delta_base or weights.base
    target = root / _cache_name(f"{weights.source}+{base}@{weights.merged_format}")
    if not is_current_import(target):
        _say_why_again(target, echo)
        echo(f"applying the delta {weights.source} to {base} into {target}")
        _merge_delta(weights, str(base), target)
    return target


def _say_why_again(target: Path, echo: Callable[[str], None]) -> None:
    from medzoo.core.model.persistence import MANIFEST

    if (target / MANIFEST).is_file():
        echo(f"{target}: imported with out-of-date image preprocessing settings; importing it again")


def _merge_delta(weights: PublishedWeights, base: str, target: Path) -> None:
    from medzoo.app.interop.delta import apply_delta_dirs
    from medzoo.app.interop.llava_import import convert_checkpoint, write_imported

    tensors, config, delta_dir, _ = apply_delta_dirs(base, weights.source)
    tokenizer = tokenizer_dir(weights.tokenizer) if weights.tokenizer else str(delta_dir)
    model, report = convert_checkpoint(
        tensors, config, str(weights.merged_format), tokenizer_source=tokenizer, source=f"{base} + {weights.source}",
    )
    write_imported(model, report, target)


def tokenizer_dir(source: str) -> str:
    """A local directory as it is; a hub id's tokenizer files (no weights) downloaded to the cache."""
    if Path(source).expanduser().is_dir():
        return str(Path(source).expanduser())
    from huggingface_hub import snapshot_download

    try:
        return str(snapshot_download(source, allow_patterns=TOKENIZER_PATTERNS))
    except Exception as error:  # huggingface_hub raises many types (offline, missing or gated repo)
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise InteropError(f"{source}: cannot download the tokenizer: {first}") from None


def _cache_name(key: str) -> str:
    return re.sub(r"[^\w.-]+", "--", key)
