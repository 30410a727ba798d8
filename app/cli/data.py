"""``medzoo data``: commands that produce data sets (``synth``: the built-in synthetic biomedical set)."""

from __future__ import annotations

import shutil
from pathlib import Path

import click

from medzoo.core.errors import DataError


def parse_sizes(items: tuple[str, ...]) -> dict[str, int]:
    """``("train=400", "test=150")`` -> ``{"train": 400, "test": 150}``; bad items raise DataError."""
    sizes: dict[str, int] = {}
    for item in items:
        key, separator, value = item.partition("=")
        if not separator or not key.strip() or not value.strip().isdigit():
            raise DataError(f"--size {item!r}: expected key=N with a non-negative integer N, e.g. train=400")
        sizes[key.strip()] = int(value)
    return sizes


@click.group("data")
def data() -> None:
    """Create data sets."""


@data.command("synth")
@click.option("--output", "output", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Directory to write the data set into.")
@click.option("--seed", default=None, type=int, help="Random seed (same seed: byte-identical files).")
@click.option("--size", "sizes", multiple=True, metavar="KEY=N",
              help="Images per split over all domains: train=N, val=N, test=N (repeatable).")
@click.option("--overwrite", is_flag=True,
              help="Replace a previous synthetic data set in OUTPUT (only one medzoo synthesised: its manifest says so).")
def synth(output: Path, seed: int | None, sizes: tuple[str, ...], overwrite: bool) -> None:
    """Write the synthetic biomedical data set (images, captions, LLaVA-Med, VQA-RAD, SLAKE, PathVQA, ColonINST)."""
    from medzoo.plugins.data.synth import DEFAULT_SEED, synthesize
    from medzoo.plugins.data.synth.generate import OUTPUT_ENTRIES, refuse_foreign_data, resolve_sizes

    requested = resolve_sizes(parse_sizes(sizes))
    refuse_foreign_data(output)  # real-named files without medzoo's synthesis manifest are never replaced
    existing = [entry for entry in OUTPUT_ENTRIES if (output / entry).exists()]
    if existing and not overwrite:
        raise DataError(f"{output}: already holds {', '.join(existing)}; pass --overwrite to replace them")
    for entry in existing:
        if entry == "manifest.json":
            continue  # removed last: a removal cut short leaves a folder still marked as medzoo's
        target = output / entry
        if target.is_dir() and not target.is_symlink():
            shutil.rmtree(target)
        else:
            target.unlink()
    manifest = synthesize(output, seed=DEFAULT_SEED if seed is None else seed, sizes=requested)
    images = sum(sum(by_split.values()) for by_split in manifest["images"].values())
    click.echo(f"wrote {images} images and {len(manifest['counts'])} files to {output} (seed {manifest['seed']})")
