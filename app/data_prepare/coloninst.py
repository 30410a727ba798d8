"""A local ColonINST copy checked and laid out as the ``colongpt`` recipe and the ``coloninst-*`` benchmarks
read it: ``Json-file/{train,val,test}/ColonINST-*.json`` and ``Positive-images/<source data set>/...``.

ColonINST's images come from 19 data sets that each must be requested, so nothing is downloaded: every record's
image is looked up (by ``image``, then by ``id``, as the ``colon-inst`` reader does) and each missing one is
counted under its source data set (the first folder of its id), which tells which data sets are still to be
requested. The json files are kept exactly as released (the evaluation checks their record counts); with an
``--output`` other than the source they are linked (or copied) there and ``Positive-images`` becomes a
symbolic link to the source's image folder.
"""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path

from medzoo.app.data_prepare.downloads import sha256_of
from medzoo.app.data_prepare.image_store import place
from medzoo.app.data_prepare.manifest import Manifest
from medzoo.app.data_prepare.summary import Summary
from medzoo.core.errors import DataError

JSON_FOLDER = "Json-file"
IMAGE_FOLDER = "Positive-images"


def json_files(root: Path) -> tuple[Path, list[Path]]:
    """(the json folder, its ColonINST json files) of a local copy."""
    folder = root / JSON_FOLDER if (root / JSON_FOLDER).is_dir() else root
    files = sorted(p for p in folder.rglob("*.json") if p.is_file()
                   and not any(part.startswith(".") for part in p.relative_to(folder).parts)
                   and not p.is_relative_to(root / IMAGE_FOLDER))
    if not files:
        raise DataError(
            f"{root}: no ColonINST json files (expected {JSON_FOLDER}/{{train,val,test}}/ColonINST-*.json, as "
            "downloaded from ai4colonoscopy/ColonINST-v1)"
        )
    return folder, files


def prepare_coloninst(root: Path, output: Path, summary: Summary, manifest: Manifest, verify: bool = False) -> None:
    from medzoo.plugins.datasets.colon_inst import load_coloninst_json
    from medzoo.plugins.datasets.image_checks import decode_problem
    from medzoo.plugins.datasets.med_vqa import resolve_image

    folder, files = json_files(root)
    images = root / IMAGE_FOLDER
    in_place = output.resolve() == root.resolve()
    if not images.is_dir():
        summary.notes.append(f"no {IMAGE_FOLDER}/ under {root}: every record's image is missing")
    missing: Counter = Counter()
    for path in files:
        for index, record in enumerate(load_coloninst_json(path)):
            unit = f"{path.name}:{record.get('id', index) if isinstance(record, dict) else index}"
            if not isinstance(record, dict) or not isinstance(record.get("conversations"), list):
                summary.skip(unit, "no conversations list")
                continue
            names = [record[key] for key in ("image", "id") if isinstance(record.get(key), str) and record[key]]
            found = next((hit for name in names if (hit := resolve_image(name, [images])) is not None), None)
            if found is None:
                source = str(record.get("id", "")).split("/", 1)[0] or "unknown"
                missing[source] += 1
                summary.skip(unit, f"image missing ({source})")
                continue
            if verify and decode_problem(found):
                summary.skip(unit, "unreadable image")
                continue
            summary.converted += 1
        target = output / JSON_FOLDER / path.relative_to(folder)
        if not in_place and manifest.finished(target) is None:
            manifest.claim(target)
            place(path, target)
            manifest.add_file(target, sha256_of(target), str(path))
        summary.written.append(str(target if not in_place else path))
    if missing:
        by_source = ", ".join(f"{source} {count}" for source, count in missing.most_common())
        summary.notes.append(f"records whose image is missing, by source data set: {by_source}")
    if not in_place and images.is_dir():
        link_images(images, output / IMAGE_FOLDER, summary)


def link_images(images: Path, link: Path, summary: Summary) -> None:
    """``link`` -> ``images`` (a symbolic link), unless ``link`` already exists."""
    if link.is_symlink() and Path(os.readlink(link)) == images.resolve():
        return
    if link.exists() or link.is_symlink():
        summary.notes.append(f"{link} exists already and was left as it is")
        return
    link.parent.mkdir(parents=True, exist_ok=True)
    os.symlink(images.resolve(), link, target_is_directory=True)
    summary.notes.append(f"{link} links to {images.resolve()}")
