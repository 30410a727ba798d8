"""The input files of a medical-VQA data set: the hub dataset's files (default), downloaded URLs or local
files and folders, each classified by what it holds (parquet shard, release json or pickle, image archive)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from medzoo.app.data_prepare import hub
from medzoo.app.data_prepare.dataset_sources import DatasetSource
from medzoo.app.data_prepare.downloads import DownloadError
from medzoo.app.data_prepare.fetching import Fetcher
from medzoo.app.data_prepare.sources import Source
from medzoo.core.errors import DataError

SPLIT_NAMES = ("train", "training", "validation", "valid", "val", "dev", "test")
INPUT_SUFFIXES = (".parquet", ".json", ".pkl", ".zip")


@dataclass(frozen=True)
class VqaInput:
    """``kind``: ``parquet``, ``slake``, ``vqa-rad`` (the OSF json), ``llava-med-test``, ``pathvqa`` (pkl) or
    ``archive`` (a zip of images); ``split`` where the file holds one split."""

    path: Path
    kind: str
    split: str | None = None


def gather(dataset: DatasetSource, sources: list[Source], downloads: Path, fetcher: Fetcher) -> list[Path]:
    """Local paths for ``sources`` (the catalogue's hub dataset when none is given), fetching what is remote."""
    paths: list[Path] = []
    for source in sources or [Source("hub", dataset.hub_id or "")]:
        if source.kind == "local":
            paths.append(source.path)
        elif source.kind == "url":
            if not source.basename:
                raise DataError(f"--source {source}: a URL must name a file (parquet, json, pkl or zip)")
            fetched = fetcher.url([source.value], downloads / "url" / source.basename)
            paths += [fetched] if fetched else []
        else:
            paths += hub_files(dataset, source.value, downloads, fetcher)
    return paths


def hub_files(dataset: DatasetSource, repo_id: str, downloads: Path, fetcher: Fetcher) -> list[Path]:
    """The hub dataset's files matching the catalogue's patterns; the listing is remembered in the manifest, so
    a finished data set reruns without asking the hub."""
    key = f"hub-listing:{repo_id}"
    local_dir = downloads / "hub" / repo_id.replace("/", "--")
    remembered = fetcher.manifest.extra.get(key)
    if isinstance(remembered, list) and all(fetcher.manifest.finished(local_dir / f["path"]) for f in remembered):
        files = [hub.HubFile(**f) for f in remembered]
    else:
        try:
            listing = hub.list_files(repo_id)
        except DownloadError as error:
            if not isinstance(remembered, list):
                fetcher.summary.fail(f"hf://datasets/{repo_id}", error.reason)
                return []
            listing = [hub.HubFile(**f) for f in remembered]  # offline: finish what an earlier run listed
        files = [f for f in listing if hub.matches(f.path, dataset.hub_patterns)]
        if not files:
            raise DataError(
                f"hf://datasets/{repo_id}: no file matches {', '.join(dataset.hub_patterns)} (it holds "
                f"{', '.join(f.path for f in listing[:12]) or 'nothing'}); give the files with --source"
            )
        if files != [hub.HubFile(**f) for f in remembered or []]:
            fetcher.manifest.remember(key, [f.to_json() for f in files])
    found = [fetcher.hub_file(repo_id, file, local_dir) for file in files]
    return [path for path in found if path is not None]


def classify(paths: list[Path]) -> list[VqaInput]:
    """Every usable file under ``paths`` (folders are searched); a file named directly that is not a VQA file
    is an error, one found in a folder is passed over."""
    from medzoo.plugins.datasets.med_vqa import detect_format

    inputs: list[VqaInput] = []
    for path in paths:
        named = path.is_file()
        candidates = [path] if named else sorted(
            p for p in path.rglob("*") if p.suffix.lower() in INPUT_SUFFIXES and p.is_file()
            and not any(part.startswith(".") for part in p.relative_to(path).parts)
        )
        for file in candidates:
            suffix = file.suffix.lower()
            if suffix == ".parquet":
                inputs.append(VqaInput(file, "parquet", split_of(file)))
            elif suffix == ".zip":
                inputs.append(VqaInput(file, "archive"))
            elif suffix == ".pkl" and (named or file.stem.endswith("_qa")):  # not ans2label.pkl and the like
                inputs.append(VqaInput(file, "pathvqa", file.stem.removesuffix("_qa") or file.parent.name))
            elif suffix == ".json":
                try:
                    kind = detect_format(file)
                except DataError:
                    if named:
                        raise
                    continue
                inputs.append(VqaInput(file, kind, None if kind == "vqa-rad" else split_of(file)))
            elif named and suffix not in INPUT_SUFFIXES:
                raise DataError(f"--source {file}: expected a parquet, json, pkl or zip file")
    return inputs


def split_of(path: Path) -> str:
    """The split a file holds, from its name (``train-00000-of-00002.parquet``, ``test.json``) or its folder or
    the one above (``default/validation/0000.parquet``); else the file's stem."""
    stem = path.stem.lower()
    for split in SPLIT_NAMES:
        if stem == split or stem.startswith((f"{split}-", f"{split}_", f"{split}.")):
            return split
    for parent in list(path.parents)[:2]:
        if parent.name.lower() in SPLIT_NAMES:
            return parent.name.lower()
    return path.stem
