"""``medzoo data``: commands that produce data sets (``synth``: the built-in synthetic biomedical set;
``prepare``: a named public data set downloaded or converted into the layout medzoo reads)."""

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
@click.option("--output", "-O", "output", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Directory to write the data set into.")
@click.option("--seed", default=None, type=int, help="Random seed (same seed: byte-identical files).")
@click.option("--size", "sizes", multiple=True, metavar="KEY=N",
              help="Images per split over all domains: train=N, val=N, test=N; rl=N colonoscopy frames for GRPO "
                   "prompts (default 0.6 x train) (repeatable).")
@click.option("--overwrite", is_flag=True,
              help="Replace a previous synthetic data set in OUTPUT (only one medzoo synthesised: its manifest says so).")
def synth(output: Path, seed: int | None, sizes: tuple[str, ...], overwrite: bool) -> None:
    """Write the synthetic biomedical data set (images, captions, LLaVA-Med, VQA-RAD, SLAKE, PathVQA, ColonINST)."""
    from medzoo.app.data_synth import DEFAULT_SEED, synthesize
    from medzoo.app.data_synth.generate import OUTPUT_ENTRIES, refuse_foreign_data, resolve_sizes

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


def _prepare_help() -> str:
    from medzoo.app.data_prepare.dataset_sources import CATALOGUE

    rows = "\n".join(f"  {name:<20} {source.description}" for name, source in CATALOGUE.items())
    return f"\b\nNAME is one of:\n{rows}"


@data.command("prepare", epilog=_prepare_help())
@click.argument("name")
@click.option("--source", "sources", multiple=True, metavar="HUB_ID|URL|PATH",
              help="Where to take NAME from instead of its default (repeatable): a Hugging Face dataset id, an "
                   "http(s) URL (a base URL ending in / for several files) or a local file or folder.")
@click.option("--output", "-O", default=None, type=click.Path(file_okay=False, path_type=Path),
              help="Data root to write into (default: data/llava-med; data/ColonINST for coloninst).")
@click.option("--workers", default=4, show_default=True, type=click.IntRange(min=1),
              help="PMC packages fetched at the same time (llava-med-images).")
@click.option("--limit", default=None, type=click.IntRange(min=1),
              help="Fetch at most N PMC packages (a trial run of llava-med-images).")
@click.option("--only-for", "only_for", multiple=True, type=click.Path(dir_okay=False, path_type=Path),
              metavar="JSON", help="Fetch only the figures this LLaVA-Med json names (repeatable; llava-med-images).")
@click.option("--keep-packages", is_flag=True, help="Keep each PMC package after its figures are extracted.")
@click.option("--pmc-mirror", default=None, metavar="URL",
              help="Replace https://ftp.ncbi.nlm.nih.gov/pub/pmc/ in the package URLs (or set MEDZOO_PMC_MIRROR).")
@click.option("--retries", default=5, show_default=True, type=click.IntRange(min=0),
              help="Attempts after a transient HTTP error or a broken connection, per file.")
@click.option("--backoff", default=1.0, show_default=True, type=click.FloatRange(min=0),
              help="Backoff factor in seconds between attempts (doubling each time).")
@click.option("--timeout", default=60.0, show_default=True, type=click.FloatRange(min=0.1),
              help="Seconds to wait to connect, and between two reads, per file.")
@click.option("--verify", is_flag=True, help="Hash finished files again (refetch those that changed); "
                                             "for coloninst also decode every image.")
@click.option("--no-progress", is_flag=True, help="No progress bars.")
def prepare_command(name: str, sources: tuple[str, ...], output: Path | None, workers: int, limit: int | None,
                    only_for: tuple[Path, ...], keep_packages: bool, pmc_mirror: str | None, retries: int, backoff: float, timeout: float,
                    verify: bool, no_progress: bool) -> None:
    """Download NAME (or convert a local copy) into the layout medzoo's readers and benchmarks read.

    Resumable: finished files are recorded (size, sha256) in OUTPUT/downloads/NAME/manifest.jsonl and never
    fetched again; a file cut short continues from its .part. Ends with a summary (also in
    OUTPUT/NAME.prepare.json); every failed or skipped unit is listed in OUTPUT/NAME.failures.tsv."""
    from medzoo.app.data_prepare.downloads import DownloadSettings
    from medzoo.app.data_prepare.run import NothingPrepared, PrepareOptions, prepare

    options = PrepareOptions(
        sources=sources, output=output, workers=workers, limit=limit, keep_packages=keep_packages,
        pmc_mirror=pmc_mirror, verify=verify, only_for=only_for,
        download=DownloadSettings(retries=retries, backoff=backoff, timeout=timeout, progress=not no_progress),
    )
    summary = prepare(name, options)
    for line in summary.lines():
        click.echo(line)
    if summary.nothing_usable:
        raise NothingPrepared(f"{name}: nothing could be prepared (every unit failed); see {summary.failures_file}")
