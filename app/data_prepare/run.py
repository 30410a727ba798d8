"""``prepare(name, options)``: one catalogue entry fetched or converted into ``--output``, by its kind."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from medzoo.app.data_prepare.dataset_sources import DatasetSource, RemoteFile, dataset_source
from medzoo.app.data_prepare.downloads import ChecksumMismatch, DownloadSettings, sha256_of
from medzoo.app.data_prepare.fetching import Fetcher
from medzoo.app.data_prepare.image_store import place
from medzoo.app.data_prepare.manifest import Manifest
from medzoo.app.data_prepare.sources import Source, parse_source
from medzoo.app.data_prepare.summary import Summary
from medzoo.core.errors import DataError

#: overrides the NCBI FTP prefix of the PMC package URLs (as ``--pmc-mirror``)
PMC_MIRROR_ENV = "MEDZOO_PMC_MIRROR"


class NothingPrepared(DataError):
    """Every unit of a data set failed: nothing usable was fetched or converted."""


@dataclass(frozen=True)
class PrepareOptions:
    sources: tuple[str, ...] = ()
    output: Path | None = None
    download: DownloadSettings = field(default_factory=DownloadSettings)
    workers: int = 4
    limit: int | None = None
    keep_packages: bool = False
    pmc_mirror: str | None = None
    verify: bool = False
    #: LLaVA-Med json files whose figures alone are fetched (llava-med-images)
    only_for: tuple[Path, ...] = ()


@dataclass
class Context:
    dataset: DatasetSource
    sources: list[Source]
    output: Path
    fetcher: Fetcher
    options: PrepareOptions

    @property
    def downloads(self) -> Path:
        return self.output / "downloads" / self.dataset.name

    @property
    def summary(self) -> Summary:
        return self.fetcher.summary


def prepare(name: str, options: PrepareOptions) -> Summary:
    """Prepare the data set ``name``; returns what was done (also written to ``<output>/<name>.prepare.json``)."""
    dataset = dataset_source(name)
    output = Path(options.output or dataset.default_output).expanduser()
    sources = [parse_source(value) for value in options.sources]
    output.mkdir(parents=True, exist_ok=True)
    downloads = output / "downloads" / name
    manifest = Manifest(downloads / "manifest.jsonl", output)
    summary = Summary(name, output)
    context = Context(dataset, sources, output, Fetcher(manifest, options.download, summary, options.verify),
                      options)
    try:
        RUNNERS[dataset.kind](context)
    except BaseException:
        with contextlib.suppress(Exception):  # the journal is valid uncompacted; the first failure is what to report
            manifest.compact()
        raise
    manifest.compact()
    summary.write()
    return summary


# -- kinds -----------------------------------------------------------------------------------------------------

def prepare_vqa(context: Context) -> None:
    from medzoo.app.data_prepare.vqa_convert import VqaConverter
    from medzoo.app.data_prepare.vqa_inputs import classify, gather

    paths = gather(context.dataset, context.sources, context.downloads, context.fetcher)
    if not paths:
        return  # every source failed (counted)
    converter = VqaConverter(context.dataset.name, context.output / context.dataset.folder, context.summary,
                             context.fetcher.manifest, context.options.download.progress)
    converter.convert(classify(paths))


def prepare_files(context: Context) -> None:
    from medzoo.app.data_prepare.conversations import check_file

    folder = context.output / context.dataset.folder
    chosen = choose_files(context.dataset, context.sources)
    for file in context.dataset.files:
        target = folder / file.name
        if not bring(context, file, chosen.get(file.name), target):
            continue
        check_file(target, context.output / "images", context.summary)
        context.summary.written.append(str(target))


def prepare_pmc_images(context: Context) -> None:
    from medzoo.app.data_prepare.pmc_images import PmcImages, read_url_list, wanted_figures

    listing = context.dataset.files[0]
    if len(context.sources) > 1:
        raise DataError(f"{context.dataset.name}: give one --source (the image URL list, a .jsonl URL or path)")
    chosen = context.sources[0] if context.sources else None
    if chosen is not None and chosen.kind == "hub":
        raise DataError(f"--source {chosen}: {context.dataset.name} reads an image URL list (.jsonl URL or path)")
    target = context.output / (chosen.basename if chosen and chosen.kind == "url" else listing.name)
    if chosen is not None and chosen.kind == "local":
        target = chosen.path
    elif not bring(context, listing, chosen, target):
        return
    missing = [path for path in context.options.only_for if not Path(path).is_file()]
    if missing:
        raise DataError(f"--only-for {missing[0]}: no such file (a LLaVA-Med json whose figures to fetch)")
    mirror = context.options.pmc_mirror or os.environ.get(PMC_MIRROR_ENV) or None
    wanted = wanted_figures(list(context.options.only_for)) if context.options.only_for else None
    packages = read_url_list(target, context.summary, mirror, wanted)
    if context.options.limit is not None:
        packages = packages[: context.options.limit]
    images = context.output / context.dataset.folder
    runner = PmcImages(context.fetcher, images, context.downloads / "packages",
                       keep_packages=context.options.keep_packages, workers=context.options.workers,
                       progress=context.options.download.progress)
    runner.run(packages)
    context.summary.written.append(f"{images} ({sum(len(p.figures) for p in packages)} figures listed)")


def prepare_coloninst(context: Context) -> None:
    from medzoo.app.data_prepare.coloninst import prepare_coloninst as check_copy

    if not context.sources:
        raise DataError(f"{context.dataset.name}: {context.dataset.local_only}")
    if len(context.sources) != 1 or context.sources[0].kind != "local" or not context.sources[0].path.is_dir():
        raise DataError(f"{context.dataset.name}: --source must be one local folder; {context.dataset.local_only}")
    check_copy(context.sources[0].path, context.output, context.summary, context.fetcher.manifest,
               verify=context.options.verify)


def prepare_multiple_choice(context: Context) -> None:
    from medzoo.app.data_prepare.multiple_choice import prepare_multiple_choice as unpack_and_check
    from medzoo.app.data_prepare.vqa_inputs import gather

    paths = gather(context.dataset, context.sources, context.downloads, context.fetcher)
    if paths:  # else every source failed (counted)
        unpack_and_check(paths, context.output / context.dataset.folder, context.summary, context.dataset.name)


def prepare_omnimedvqa(context: Context) -> None:
    from medzoo.app.data_prepare.omnimedvqa import prepare_omnimedvqa as unpack_and_check
    from medzoo.app.data_prepare.vqa_inputs import gather

    paths = gather(context.dataset, context.sources, context.downloads, context.fetcher)
    if paths:  # else every source failed (counted)
        unpack_and_check(paths, context.output / context.dataset.folder, context.summary)


def prepare_multi_image(context: Context) -> None:
    from medzoo.app.data_prepare.multi_image_sets import prepare_multi_image_set
    from medzoo.app.data_prepare.vqa_inputs import gather

    paths = gather(context.dataset, context.sources, context.downloads, context.fetcher)
    hub_dir = context.downloads / "hub" / (context.dataset.hub_id or "").replace("/", "--")
    if paths:  # else every source failed (counted)
        prepare_multi_image_set(paths, context.output / context.dataset.folder, context.summary,
                                context.dataset.benchmark or context.dataset.name, hub_dir)


def prepare_gmai_mmbench(context: Context) -> None:
    from medzoo.app.data_prepare.gmai_mmbench import prepare_gmai_mmbench as place_and_check
    from medzoo.app.data_prepare.vqa_inputs import gather

    paths = gather(context.dataset, context.sources, context.downloads, context.fetcher)
    if paths:  # else every source failed (counted)
        place_and_check(paths, context.output / context.dataset.folder, context.summary)


RUNNERS: dict[str, Callable[[Context], None]] = {
    "vqa": prepare_vqa, "files": prepare_files, "pmc-images": prepare_pmc_images, "coloninst": prepare_coloninst,
    "multiple-choice": prepare_multiple_choice, "omnimedvqa": prepare_omnimedvqa,
    "multi-image": prepare_multi_image, "gmai-mmbench": prepare_gmai_mmbench,
}


# -- catalogue files --------------------------------------------------------------------------------------------

def choose_files(dataset: DatasetSource, sources: list[Source]) -> dict[str, Source]:
    """Which ``--source`` replaces which catalogue file: one whose name ends with the file's name, or a folder
    / base URL (ending in ``/``) holding them all."""
    names = [file.name for file in dataset.files]
    chosen: dict[str, Source] = {}
    for source in sources:
        if source.kind == "hub":
            raise DataError(f"--source {source}: {dataset.name} takes URLs or local paths, not a hub id")
        if source.kind == "url" and source.value.endswith("/"):
            chosen.update({file.name: Source("url", source.value + file.path) for file in dataset.files})
        elif source.kind == "local" and source.path.is_dir():
            for file in dataset.files:
                for candidate in (source.path / file.path, source.path / file.name):
                    if candidate.is_file():
                        chosen[file.name] = Source("local", str(candidate))
                        break
        elif source.basename in names:
            chosen[source.basename] = source
        else:
            raise DataError(
                f"--source {source}: {dataset.name} has the files {', '.join(names)}; give a URL or path ending "
                "with one of these names, or a folder or base URL (ending in '/') holding them"
            )
    return chosen


def bring(context: Context, file: RemoteFile, source: Source | None, target: Path) -> bool:
    """Put ``file`` at ``target``: downloaded from ``source`` (a URL) or the catalogue's mirrors, or placed from
    a local copy; its sha256 is checked where the catalogue has one. False when it failed (counted)."""
    fetcher, summary = context.fetcher, context.summary
    if source is not None and source.basename != file.name:
        file = RemoteFile(file.path, file.urls)  # another file than the catalogue's: nothing to check it against
    if fetcher.reuse(target, file.sha256):
        summary.reused += 1
        return True
    fetcher.manifest.claim(target)
    if source is None or source.kind == "url":
        urls = [source.value] if source is not None else list(file.urls)
        return fetcher.url(urls, target, sha256=file.sha256, size=file.size, unit=file.name) is not None
    digest = sha256_of(source.path)
    if file.sha256 is not None and digest != file.sha256:
        raise ChecksumMismatch(f"{source.path}: sha256 mismatch: expected {file.sha256}, found {digest}")
    if target.resolve() != source.path.resolve():
        place(source.path, target)
    fetcher.manifest.add_file(target, digest, str(source.path))
    summary.fetched += 1
    return True
